"""Load test: the app (lite encoder) under 20 concurrent ``gradio_client`` users, 200 queries in total.

Starts ``python app.py --encoder lite`` as a subprocess (its own temporary data and Gradio temp folders,
or ``--data-dir``), warms it up with ``--warmup`` queries at the same concurrency (caches, thread pools and
sessions fill up; on a 2-core machine RSS still rises after 100 warm-up queries and is flat after 300),
then runs ``--users`` threads, each
with its own ``gradio_client.Client`` (its own session and its own client address, sent as
``X-Forwarded-For`` as a proxy would), sharing ``--queries`` queries: a mix of bundled
gallery images as references and the gallery's captions and short edits as texts (some users reuse a
reference with a new text: the cached-reference path). Prints one JSON line:

``throughput_qps``, ``p50_s``/``p95_s``/``max_s`` latency (submit -> result), ``errors`` (with the first
messages), ``answered``, ``queued`` (queries seen waiting in Gradio's queue: the app runs at most
COVR_MAX_CONCURRENT_JOBS at once), server RSS (process + children) ``rss_peak_mb``,
``rss_after_warmup_mb``, ``rss_end_mb`` and ``rss_growth_mb_per_query`` (end minus after-warm-up over
the loaded queries). Exit status 1 unless: zero errors, every query answered, and RSS growth below
``--max-growth-mb-per-query`` (default 0.25 MB/query).

``--hostile`` (issue 12): after the warm-up, the same normal workload runs twice in one server run, first
alone (``baseline``), then while two hostile clients run (``hostile``): a flooder that posts ``/search``
events as fast as it can over raw HTTP without ever reading a result (one address), and a client that
keeps sending 121-byte 12000x1 PNGs. One JSON line per phase, then a summary with the p50/p95 ratios of
the normal users (goal: p95 at most 2x) and what the hostile clients got (accepted / refused events).

Usage: ``python bench/bench_load.py [--users 20] [--queries 200] [--warmup 300] [--data-dir DIR] [--hostile]``
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import random
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

from tests.helpers.live_app import LiveApp, search_parts, start_app

REPO = Path(__file__).resolve().parents[1]
ASSETS = REPO / "assets"
EDITS = ["make it red", "show it at night", "add a dog", "make it smaller", "in the snow", "on a wooden table",
         "make it an orange", "two of them", "seen from above", "in black and white"]


def workload(n: int, seed: int = 0) -> list[tuple[Path, str]]:
    """``n`` (reference image, text) pairs from the bundled gallery: captions and short edits, mixed."""
    with open(ASSETS / "gallery.csv", newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if r["kind"] == "image"]
    rng = random.Random(seed)
    out = []
    for i in range(n):
        row = rng.choice(rows)
        text = rng.choice(EDITS) if i % 2 else (rows[(i * 7) % len(rows)]["caption"] or rng.choice(EDITS))
        out.append((ASSETS / row["media"], text[:200]))
    return out


class RssSampler(threading.Thread):
    """Samples the server's RSS (process + children) every ``period`` seconds; keeps the peak."""

    def __init__(self, pid: int, period: float = 0.25):
        super().__init__(daemon=True)
        import psutil

        self.proc = psutil.Process(pid)
        self.period = period
        self.peak = 0
        self._halt = threading.Event()

    def rss(self) -> int:
        import psutil

        total = 0
        for p in [self.proc, *self.proc.children(recursive=True)]:
            try:
                total += p.memory_info().rss
            except psutil.NoSuchProcess:
                pass
        self.peak = max(self.peak, total)
        return total

    def run(self) -> None:
        while not self._halt.is_set():
            self.rss()
            self._halt.wait(self.period)

    def stop(self) -> None:
        self._halt.set()


def one_query(client, image: Path, text: str, k: int = 10) -> tuple[float, bool, str | None]:
    """Submit one /search; returns (latency s, was queued, error message or None)."""
    from gradio_client import handle_file
    from gradio_client.utils import Status

    t0 = time.perf_counter()
    queued = False
    try:
        job = client.submit(handle_file(str(image)), None, text, "AVG", None, k, api_name="/search")
        while not job.done():
            st = job.status()
            if st.code == Status.IN_QUEUE or (st.rank or 0) > 0:
                queued = True
            time.sleep(0.05)
        _gallery, _status, record = search_parts(job.result())
        if len(record.get("results", [])) != k:
            return time.perf_counter() - t0, queued, f"short result: {str(record)[:200]}"
        return time.perf_counter() - t0, queued, None
    except Exception as exc:  # noqa: BLE001 - every failure is counted and reported
        return time.perf_counter() - t0, queued, f"{type(exc).__name__}: {str(exc)[:200]}"


def user_client(app: LiveApp, user: int):
    """A ``gradio_client.Client`` for simulated user ``user``: its own session and client address."""
    from gradio_client import Client

    return Client(app.url, verbose=False, download_files=False,
                  headers={"X-Forwarded-For": f"10.{user // 250}.{user % 250}.7"})  # fmt: skip


def run_phase(app: LiveApp, users: int, jobs: list[tuple[Path, str]]) -> tuple[list, float]:
    """``users`` threads, each with its own client, share ``jobs``; returns (per-query results, wall s)."""
    jobs = list(jobs)
    lock = threading.Lock()
    results: list[tuple[float, bool, str | None]] = []
    clients = [user_client(app, u) for u in range(users)]

    def worker(client) -> None:
        while True:
            with lock:
                if not jobs:
                    return
                image, text = jobs.pop()
            res = one_query(client, image, text)
            with lock:
                results.append(res)

    t0 = time.perf_counter()
    threads = [threading.Thread(target=worker, args=(c,), daemon=True) for c in clients]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results, time.perf_counter() - t0


def run_load(app: LiveApp, users: int, queries: int, warmup: int, seed: int = 0) -> dict:
    """Warm up under the same concurrency, then run ``users`` clients over ``queries`` queries."""
    sampler = RssSampler(app.proc.pid)
    sampler.start()
    rss_start = sampler.rss()
    warm, _ = run_phase(app, users, workload(warmup, seed + 1))  # fills caches, thread pools, sessions
    warm_errors = [r[2] for r in warm if r[2]]
    time.sleep(1.0)
    rss_warm = sampler.rss()
    results, wall = run_phase(app, users, workload(queries, seed))
    time.sleep(1.0)
    rss_end = sampler.rss()
    sampler.stop()
    lat = sorted(r[0] for r in results)
    errors = [r[2] for r in results if r[2]] + warm_errors
    mb = 1024 * 1024
    return {
        "bench": "load", "encoder": "lite", "users": users, "queries": queries, "warmup": warmup,
        "answered": sum(1 for r in results if not r[2]), "errors": len(errors), "error_samples": errors[:3],
        "queued": sum(1 for r in results if r[1]), "wall_s": round(wall, 2),
        "throughput_qps": round(len(results) / wall, 2) if wall else 0.0,
        "p50_s": round(statistics.median(lat), 3) if lat else None,
        "p95_s": round(lat[min(len(lat) - 1, int(0.95 * len(lat)))], 3) if lat else None,
        "max_s": round(lat[-1], 3) if lat else None,
        "rss_start_mb": round(rss_start / mb, 1), "rss_peak_mb": round(sampler.peak / mb, 1),
        "rss_after_warmup_mb": round(rss_warm / mb, 1), "rss_end_mb": round(rss_end / mb, 1),
        "rss_growth_mb_per_query": round((rss_end - rss_warm) / mb / max(queries, 1), 4),
        "max_concurrent_jobs": int(app.env.get("COVR_MAX_CONCURRENT_JOBS", "2")),
        "cpus": os.cpu_count(), "python": platform.python_version(),
    }


def latency_summary(results: list) -> dict:
    """p50/p95/max latency and error count of one phase's per-query results."""
    lat = sorted(r[0] for r in results if not r[2])
    errors = [r[2] for r in results if r[2]]
    pick = lambda q: round(lat[min(len(lat) - 1, int(q * len(lat)))], 3) if lat else None  # noqa: E731
    return {"answered": len(lat), "errors": len(errors), "error_samples": errors[:3], "p50_s": pick(0.5),
            "p95_s": pick(0.95), "max_s": round(lat[-1], 3) if lat else None}  # fmt: skip


class Flooder(threading.Thread):
    """Posts /search events over raw HTTP as fast as it can, never reading a result (one client address)."""

    def __init__(self, app: LiveApp, address: str = "203.0.113.66"):
        super().__init__(daemon=True)
        self.app, self.headers = app, {"X-Forwarded-For": address}
        self.accepted = self.refused = 0
        self.halt = threading.Event()

    def run(self) -> None:
        import httpx

        with httpx.Client(base_url=self.app.url, headers=self.headers, timeout=30) as http:
            up = http.post("gradio_api/upload", files={"files": ("a.jpg", (ASSETS / "images" / "apple.jpg").read_bytes())})
            payload = {"path": up.json()[0], "meta": {"_type": "gradio.FileData"}}
            while not self.halt.is_set():
                r = http.post("gradio_api/call/search", json={"data": [payload, None, "flood", "AVG", None, 10]})
                if r.status_code == 200:
                    self.accepted += 1
                else:
                    self.refused += 1
                self.halt.wait(0.01)


class ElongatedSender(threading.Thread):
    """Keeps sending a 121-byte 12000x1 PNG as the reference image (each one is refused)."""

    def __init__(self, app: LiveApp, folder: Path, address: str = "203.0.113.67"):
        super().__init__(daemon=True)
        from gradio_client import Client
        from PIL import Image

        self.png = folder / "line.png"
        Image.new("L", (12000, 1)).save(self.png, optimize=True)
        self.client = Client(app.url, verbose=False, download_files=False, headers={"X-Forwarded-For": address})
        self.sent = self.refused = 0
        self.messages: set[str] = set()
        self.halt = threading.Event()

    def run(self) -> None:
        from gradio_client import handle_file

        while not self.halt.is_set():
            self.sent += 1
            try:
                self.client.predict(handle_file(str(self.png)), None, "x", "AVG", None, 10, api_name="/search")
            except Exception as exc:  # noqa: BLE001 - the refusal is what we count
                self.refused += 1
                self.messages.add(str(exc)[:120])


def run_hostile(app: LiveApp, users: int, queries: int, warmup: int, folder: Path, seed: int = 0) -> list[dict]:
    """Warm up, then the normal workload alone and again with a flooder and an elongated-image sender."""
    run_phase(app, users, workload(warmup, seed + 1))
    base, base_wall = run_phase(app, users, workload(queries, seed))
    flooder, elongated = Flooder(app), ElongatedSender(app, folder)
    flooder.start()
    elongated.start()
    time.sleep(2.0)  # the flood is under way before the normal users start
    hostile, hostile_wall = run_phase(app, users, workload(queries, seed + 2))
    flooder.halt.set()
    elongated.halt.set()
    flooder.join(30)
    elongated.join(60)
    lines = [{"bench": "load_hostile", "phase": "baseline", "users": users, "queries": queries,
              "wall_s": round(base_wall, 2), **latency_summary(base)},
             {"bench": "load_hostile", "phase": "hostile", "users": users, "queries": queries,
              "wall_s": round(hostile_wall, 2), **latency_summary(hostile),
              "flood_accepted": flooder.accepted, "flood_refused": flooder.refused,
              "elongated_sent": elongated.sent, "elongated_refused": elongated.refused,
              "elongated_messages": sorted(elongated.messages)[:2]}]  # fmt: skip
    b, h = lines[0], lines[1]
    ratio = lambda k: round(h[k] / b[k], 2) if b[k] and h[k] else None  # noqa: E731
    lines.append({"bench": "load_hostile_summary", "p50_ratio": ratio("p50_s"), "p95_ratio": ratio("p95_s"),
                  "goal_p95_ratio": 2.0, "ok": bool(ratio("p95_s") and ratio("p95_s") <= 2.0
                                                   and b["errors"] == 0 and h["errors"] == 0),
                  "max_concurrent_jobs": int(app.env.get("COVR_MAX_CONCURRENT_JOBS", "2")),
                  "cpus": os.cpu_count(), "python": platform.python_version()})  # fmt: skip
    return lines


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line flags."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--users", type=int, default=20, help="concurrent gradio_client users")
    p.add_argument("--queries", type=int, default=200, help="queries in total, shared by the users")
    p.add_argument("--warmup", type=int, default=300, help="queries (same concurrency) before measuring")
    p.add_argument("--data-dir", default=None, help="COVR_DATA_DIR to reuse (default: a temporary folder)")
    p.add_argument("--max-growth-mb-per-query", type=float, default=0.25, help="RSS growth allowed per query")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--hostile", action="store_true",
                   help="baseline vs. the same load with a queue flooder and an elongated-image sender")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run the load test, print one JSON line; exit 1 when a requirement fails."""
    a = parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="covr-load-"))
    data = Path(a.data_dir) if a.data_dir else tmp / "data"
    app = start_app(data, temp_dir=tmp / "gradio-tmp")
    if a.hostile:
        try:
            lines = run_hostile(app, a.users, a.queries, a.warmup, tmp, a.seed)
            lines[-1]["server_alive"] = app.alive()
        finally:
            app.stop()
            shutil.rmtree(tmp, ignore_errors=True)
        for line in lines:
            print(json.dumps(line), flush=True)
        return 0 if lines[-1]["ok"] and lines[-1]["server_alive"] else 1
    try:
        report = run_load(app, a.users, a.queries, a.warmup, a.seed)
        report["server_alive"] = app.alive()
    finally:
        app.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    report["ok"] = bool(report["errors"] == 0 and report["answered"] == a.queries and report["server_alive"]
                        and report["rss_growth_mb_per_query"] <= a.max_growth_mb_per_query)
    print(json.dumps(report), flush=True)
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
