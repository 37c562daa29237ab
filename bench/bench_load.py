"""Load test: the app (lite encoder) under 20 concurrent ``gradio_client`` users, 200 queries in total.

Starts ``python app.py --encoder lite`` as a subprocess (its own temporary data and Gradio temp folders,
or ``--data-dir``), warms it up with ``--warmup`` queries at the same concurrency (caches, thread pools and
sessions fill up; on a 2-core machine RSS still rises after 100 warm-up queries and is flat after 300),
then runs ``--users`` threads, each
with its own ``gradio_client.Client`` (its own session), sharing ``--queries`` queries: a mix of bundled
gallery images as references and the gallery's captions and short edits as texts (some users reuse a
reference with a new text: the cached-reference path). Prints one JSON line:

``throughput_qps``, ``p50_s``/``p95_s``/``max_s`` latency (submit -> result), ``errors`` (with the first
messages), ``answered``, ``queued`` (queries seen waiting in Gradio's queue: the app runs at most
COVR_MAX_CONCURRENT_JOBS at once), server RSS (process + children) ``rss_peak_mb``,
``rss_after_warmup_mb``, ``rss_end_mb`` and ``rss_growth_mb_per_query`` (end minus after-warm-up over
the loaded queries). Exit status 1 unless: zero errors, every query answered, and RSS growth below
``--max-growth-mb-per-query`` (default 0.25 MB/query).

Usage: ``python bench/bench_load.py [--users 20] [--queries 200] [--warmup 300] [--data-dir DIR]``
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

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

from helpers.live_app import LiveApp, search_parts, start_app  # noqa: E402

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


def run_phase(app: LiveApp, users: int, jobs: list[tuple[Path, str]]) -> tuple[list, float]:
    """``users`` threads, each with its own client, share ``jobs``; returns (per-query results, wall s)."""
    jobs = list(jobs)
    lock = threading.Lock()
    results: list[tuple[float, bool, str | None]] = []
    clients = [app.client() for _ in range(users)]

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


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line flags."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--users", type=int, default=20, help="concurrent gradio_client users")
    p.add_argument("--queries", type=int, default=200, help="queries in total, shared by the users")
    p.add_argument("--warmup", type=int, default=300, help="queries (same concurrency) before measuring")
    p.add_argument("--data-dir", default=None, help="COVR_DATA_DIR to reuse (default: a temporary folder)")
    p.add_argument("--max-growth-mb-per-query", type=float, default=0.25, help="RSS growth allowed per query")
    p.add_argument("--seed", type=int, default=0)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run the load test, print one JSON line; exit 1 when a requirement fails."""
    a = parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="covr-load-"))
    data = Path(a.data_dir) if a.data_dir else tmp / "data"
    app = start_app(data, temp_dir=tmp / "gradio-tmp")
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
