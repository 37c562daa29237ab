"""Reproduce the study end to end with one command: embeddings, evaluations, MLP, filter, tables, Figure 1.

    python -m precompute.reproduce --cirr-root datasets/CIRR --data-dir data --name study-lite --encoder lite
    python -m precompute.reproduce --cirr-root datasets/CIRR --encoder blip --checkpoint webvid-covr.ckpt \\
        --webvid-csv webvid8m-covr_test.csv --video-root WebVid/8M/train \\
        --filter-csv webvid2m-covr_train.csv --cleanvid-map cleanvid-15m_map.parquet --name study-webvid-covr

Stages (each one is the project's own job, called through its command line; see docs/REPRODUCE.md):

1. CIRR val: ``precompute.gallery`` -> ``precompute.queries`` -> ``precompute.evaluate`` (NA, AVG, TEXT, IMAGE);
2. the MLP: with a CIRR train split under the root, ``precompute.train_combiner`` on train (validation: 10 %
   of its image sets) and ``evaluate --mlp`` on all of val; without one, train on CIRR val split by image set
   (train 40 % / val 20 % / held out 40 %) and evaluate every combiner on the held-out 40 % only, so the MLP is
   never judged on queries it saw. A run that never beats the untrained MLP is reported and not evaluated;
3. CIRR test1 (when its annotations are under the root): the submission files of every combiner;
4. WebVid-CoVR (``--webvid-csv``): gallery (one entry per target video), queries, evaluate;
5. the WebVid-CoVR filter (``--filter-csv`` + ``--cleanvid-map``): ``precompute.filter_webvid`` (Table 4);
6. the report folder ``<data>/reports/<name>/``: ``table1``, ``webvid``, ``table4`` (``.md``, ``.csv``,
   ``.tex``), ``figure1.pdf``/``.png``, ``submissions/``, ``provenance.json``, ``README.md``.

Outputs go where the app looks (``<data>/galleries``, ``queries``, ``evaluations``, ``webvid_filter``), so a
running app lists the new evaluations on its next refresh. Resumable: a finished stage is recorded in
``<report>/state.json`` and skipped when run again; an interrupted embedding job resumes from its parts.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import shutil
import sys
import time
from pathlib import Path
from typing import Any, Callable, Sequence

from covr_core.atomic import atomic_write_json, atomic_write_text
from covr_core.datasets.cirr import find_cirr_annotation
from covr_core.evaluation_folder import Evaluation
from covr_core.filter_run import TABLE4_HEAD, FilterRun
from covr_core.query_folder import QuerySet
from precompute import _study_report as R
from precompute import evaluate, filter_webvid

from .engine import common as C

log = logging.getLogger(__name__)

FIXED_COMBINERS = ("NA", "AVG", "TEXT", "IMAGE")
#: CIRR val without a train split: image sets go 40 % train / 20 % val (early stopping) / 40 % held out.
VAL_ONLY_SPLIT = {"val_fraction": 0.2, "holdout_fraction": 0.4}


class Reproduction:
    """One reproduction run: where things go, the encoder flags, and the stage bookkeeping."""

    def __init__(self, a: argparse.Namespace, argv: Sequence[str] | None) -> None:
        self.a = a
        self.data = Path(a.data_dir)
        self.name = a.name
        self.report = self.data / "reports" / a.name
        self.report.mkdir(parents=True, exist_ok=True)
        self.state_path = self.report / "state.json"
        self.state: dict[str, Any] = self._load_state()
        self.command = C.provenance(argv, {"job": "reproduce"})["command"]

    # ---- bookkeeping ------------------------------------------------------------------------------
    def fingerprint(self) -> str:
        """Hash of everything that changes the outputs (encoder flags and inputs)."""
        keys = ("encoder", "weights", "checkpoint", "blip_source", "cirr_root", "webvid_csv", "video_root",
                "filter_csv", "cleanvid_map", "mlp_epochs", "seed")
        blob = json.dumps({k: getattr(self.a, k) for k in keys}, sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    def _load_state(self) -> dict[str, Any]:
        if self.state_path.is_file():
            state = json.loads(self.state_path.read_text())
            if state.get("fingerprint") == self.fingerprint():
                return state
            log.warning("the inputs or encoder changed since the last run of %s: every stage runs again", self.name)
        return {"fingerprint": self.fingerprint(), "stages": {}}

    def stage(self, key: str, fn: Callable[[], dict]) -> dict:
        """Run ``fn`` unless the stage already finished; record its result and time."""
        done = self.state["stages"].get(key)
        if done is not None:
            log.info("stage %s: done in an earlier run, skipped", key)
            return done["result"]
        log.info("stage %s ...", key)
        t0 = time.perf_counter()
        result = fn()
        self.state["stages"][key] = {"result": result, "seconds": round(time.perf_counter() - t0, 2)}
        atomic_write_json(self.state_path, self.state)
        return result

    # ---- job command lines -------------------------------------------------------------------------
    def encoder_argv(self) -> list[str]:
        """The encoder flags every embedding job gets (``--weights`` only when given: issue #11's flag)."""
        a = self.a
        out = ["--encoder", a.encoder, "--device", a.device, "--batch-size", str(a.batch_size),
               "--num-workers", str(a.num_workers)]
        for flag, value in (("--checkpoint", a.checkpoint), ("--blip-source", a.blip_source), ("--weights", a.weights)):
            if value:
                out += [flag, str(value)]
        return out

    def embed(self, job: str, dataset_argv: list[str], out: Path) -> dict:
        """Run ``precompute.<job>`` (gallery or queries) through its ``main`` and check it finished."""
        import importlib

        module = importlib.import_module(f"precompute.{job}")
        argv = [*dataset_argv, "--out", str(out), *self.encoder_argv()]
        if job == "gallery" and self.a.no_thumbs:
            argv.append("--no-thumbs")
        module.main(argv)
        finished = (out / "manifest.json").is_file() if job == "gallery" else QuerySet.exists(out)
        if not finished:
            raise RuntimeError(f"precompute.{job} did not finish {out} (see {out / 'failures.csv'}); run the same "
                               "command again to resume")
        manifest = json.loads((out / "manifest.json").read_text())
        return {"folder": str(out), "count": manifest.get("count"), "failed": manifest.get("failed", 0),
                "encoder": manifest.get("encoder"), "encoder_version": manifest.get("encoder_version"),
                "checkpoint": manifest.get("checkpoint"), "checkpoint_sha256": manifest.get("checkpoint_sha256")}

    def evaluate(self, queries: Path, gallery: Path, benchmark: str, out: Path, mlp: Path | None = None,
                 query_ids: Path | None = None, combiners: Sequence[str] | None = None) -> dict:
        """``precompute.evaluate`` through its ``main``; returns the evaluation folder."""
        argv = ["--queries", str(queries), "--gallery", str(gallery), "--benchmark", benchmark, "--out", str(out),
                "--pretraining", self.a.label or self.a.encoder]
        if mlp:
            argv += ["--mlp", str(mlp)]
        if query_ids:
            argv += ["--query-ids", str(query_ids)]
        if combiners:
            argv += ["--combiners", *combiners]
        evaluate.main(argv)
        return {"folder": str(out)}

    def filter(self, out: Path) -> dict:
        """``precompute.filter_webvid`` through its ``main`` into ``out`` (where the app lists filter runs)."""
        filter_webvid.main(["--csv", *map(str, self.a.filter_csv), "--map", str(self.a.cleanvid_map), "--out", str(out)])
        return {"folder": str(out)}

    # ---- stages ------------------------------------------------------------------------------------
    def cirr_split(self, split: str) -> dict:
        """Gallery + queries of one CIRR split."""
        root = ["--dataset", "cirr", "--root", str(self.a.cirr_root), "--split", split]
        tag = f"{self.name}-cirr-{split}"
        g = self.stage(f"gallery:cirr-{split}", lambda: self.embed("gallery", root, self.data / "galleries" / tag))
        q = self.stage(f"queries:cirr-{split}", lambda: self.embed("queries", root, self.data / "queries" / tag))
        return {"gallery": Path(g["folder"]), "queries": Path(q["folder"]), "embedded": {"gallery": g, "queries": q}}

    def train_mlp(self, val: dict, train: dict | None) -> dict:
        """Train the MLP on the documented split; returns its record (``trained`` may be False)."""
        from precompute import train_combiner

        out = self.data / "mlp" / f"{self.name}.safetensors"
        argv = ["--out", str(out), "--epochs", str(self.a.mlp_epochs), "--seed", str(self.a.seed),
                "--split-seed", str(self.a.seed)]
        if train is not None:
            argv += ["--train-queries", str(train["queries"]), "--gallery", str(train["gallery"]),
                     "--split-by", "image-set", "--val-fraction", "0.1"]
        else:
            argv += ["--train-queries", str(val["queries"]), "--gallery", str(val["gallery"]), "--split-by",
                     "image-set", "--val-fraction", str(VAL_ONLY_SPLIT["val_fraction"]), "--holdout-fraction",
                     str(VAL_ONLY_SPLIT["holdout_fraction"])]
        record = train_combiner.main(argv)
        return {"path": str(out), **{k: record.get(k) for k in ("trained", "status", "best_epoch", "best_val_R@1",
                                                                 "initial_val_R@1", "split", "leakage", "overlap")}}


def _sha256_or_none(path: str | Path | None) -> str | None:
    return C.sha256_file(path) if path and Path(path).is_file() else None


def data_hashes(a: argparse.Namespace) -> dict[str, str]:
    """sha256 of every annotation / CSV / map file the run read."""
    files: list[Path] = []
    if a.cirr_root:
        for split in ("val", "test1", "train"):
            try:
                files.extend(find_cirr_annotation(a.cirr_root, split))
            except FileNotFoundError:
                pass
    files += [Path(p) for p in [a.webvid_csv, *(a.filter_csv or []), a.cleanvid_map] if p]
    return {str(p): C.sha256_file(p) for p in files if p.is_file()}


def has_cirr_split(root: str | Path, split: str) -> bool:
    """True when the CIRR root holds that split's annotations."""
    try:
        find_cirr_annotation(root, split)
    except FileNotFoundError:
        return False
    return True


def run(a: argparse.Namespace, argv: Sequence[str] | None = None) -> dict:
    """Every stage (see the module docstring); returns the report record (``<report>/provenance.json``)."""
    from precompute._paper_figures import figure1

    if not (a.cirr_root or a.webvid_csv or a.filter_csv):
        raise ValueError("nothing to reproduce: give --cirr-root, --webvid-csv and/or --filter-csv")
    if a.webvid_csv and not a.video_root:
        raise ValueError("--webvid-csv needs --video-root (videos are <video-root>/<pth>.mp4)")
    if bool(a.filter_csv) != bool(a.cleanvid_map):
        raise ValueError("the filter needs both --filter-csv and --cleanvid-map")
    rep = Reproduction(a, argv)
    ev_dir = rep.data / "evaluations"
    cirr_evals: dict[str, dict] = {}
    webvid_evals: dict[str, dict] = {}
    mlp: dict | None = None
    extra_notes: list[str] = []
    figure_note = "not drawn: no trained MLP in this run"
    embedded: dict[str, dict] = {}

    if a.cirr_root:
        val = rep.cirr_split("val")
        embedded["cirr-val"] = val["embedded"]
        name = f"{rep.name}-cirr-val"
        rep.stage("evaluate:cirr-val", lambda: rep.evaluate(val["queries"], val["gallery"], "cirr", ev_dir / name,
                                                            combiners=FIXED_COMBINERS))
        cirr_evals[name] = Evaluation.read_report(ev_dir / name)
        train = None
        if has_cirr_split(a.cirr_root, "train"):
            train = rep.cirr_split("train")
            embedded["cirr-train"] = train["embedded"]
        mlp = rep.stage("train:mlp", lambda: rep.train_mlp(val, train))
        if mlp["trained"]:
            mlp_eval = f"{rep.name}-cirr-val-mlp" if train else f"{rep.name}-cirr-val-heldout"
            held = None if train else Path(mlp["path"]).with_name(Path(mlp["path"]).stem + ".heldout.txt")
            rep.stage("evaluate:cirr-val-mlp", lambda: rep.evaluate(val["queries"], val["gallery"], "cirr",
                                                                    ev_dir / mlp_eval, mlp=Path(mlp["path"]),
                                                                    query_ids=held))
            cirr_evals[mlp_eval] = Evaluation.read_report(ev_dir / mlp_eval)
            weights = R.mlp_weights(ev_dir / mlp_eval)
            paths = figure1(weights, rep.report / "figure1",
                                    f"MLP weights over {len(weights):,} CIRR queries ({mlp_eval})")
            figure_note = f"{', '.join(p.name for p in paths)}: MLP weights of `{mlp_eval}` ({len(weights):,} queries)"
        else:
            extra_notes.append(f"MLP: {mlp['status']}; no MLP row is reported")
        if has_cirr_split(a.cirr_root, "test1"):
            test1 = rep.cirr_split("test1")
            embedded["cirr-test1"] = test1["embedded"]
            t_name = f"{rep.name}-cirr-test1"
            rep.stage("evaluate:cirr-test1", lambda: rep.evaluate(
                test1["queries"], test1["gallery"], "cirr", ev_dir / t_name,
                mlp=Path(mlp["path"]) if mlp and mlp["trained"] else None))
            sub = rep.report / "submissions"
            shutil.rmtree(sub, ignore_errors=True)
            shutil.copytree(ev_dir / t_name / "submissions", sub)
        model = a.label or a.encoder
        R.write_table(rep.report, "table1", ["model", "evaluation", "queries", "method", *R.TABLE1_METRICS],
                      R.metric_rows(cirr_evals, R.TABLE1_METRICS, model),
                      "Table 1 layout: CIRR val recalls per combiner (Avg = (R@5 + Rs@1) / 2).")

    if a.webvid_csv:
        wv = ["--dataset", "webvid", "--csv", str(a.webvid_csv), "--video-root", str(a.video_root)]
        tag = f"{rep.name}-webvid-{Path(a.webvid_csv).stem}"
        g = rep.stage("gallery:webvid", lambda: rep.embed("gallery", wv, rep.data / "galleries" / tag))
        q = rep.stage("queries:webvid", lambda: rep.embed("queries", wv, rep.data / "queries" / tag))
        embedded["webvid"] = {"gallery": g, "queries": q}
        rep.stage("evaluate:webvid", lambda: rep.evaluate(Path(q["folder"]), Path(g["folder"]), "webvid", ev_dir / tag,
                                                          combiners=FIXED_COMBINERS))
        webvid_evals[tag] = Evaluation.read_report(ev_dir / tag)
        R.write_table(rep.report, "webvid", ["model", "evaluation", "queries", "method", *R.WEBVID_METRICS],
                      R.metric_rows(webvid_evals, R.WEBVID_METRICS, a.label or a.encoder),
                      "WebVid-CoVR recalls per combiner (meanR4 = the Avg of later papers).")

    if a.filter_csv:
        f_out = rep.data / "webvid_filter" / rep.name
        rep.stage("filter", lambda: rep.filter(f_out))
        filtered = FilterRun.load(f_out)
        R.write_table(rep.report, "table4", list(TABLE4_HEAD), R.table4_rows(filtered.stats),
                      "Table 4 layout: WebVid-CoVR filtered by CleanVid metadata.")
        extra_notes += [f"filter: {w}" for w in filtered.warnings]

    record = {
        "name": rep.name,
        "command": rep.command,
        "encoder": {"name": a.encoder, "weights": a.weights, "checkpoint": a.checkpoint,
                    "checkpoint_file_sha256": _sha256_or_none(a.checkpoint), "blip_source": a.blip_source,
                    "label": a.label or a.encoder},
        "embedded": embedded,
        "evaluations": {n: str(ev_dir / n) for n in [*cirr_evals, *webvid_evals]},
        "mlp": mlp,
        "data_sha256": data_hashes(a),
        "stages": {k: v["seconds"] for k, v in rep.state["stages"].items()},
        "versions": C.package_versions(),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    atomic_write_json(rep.report / "provenance.json", record)
    files = sorted(p.relative_to(rep.report).as_posix() for p in rep.report.rglob("*")
                   if p.is_file() and p.name not in ("README.md", "state.json"))
    atomic_write_text(rep.report / "README.md", R.index_markdown(rep.name, files, {**cirr_evals, **webvid_evals},
                                                                mlp, figure_note, extra_notes))
    log.info("report: %s", rep.report)
    return record


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line flags of ``python -m precompute.reproduce``."""
    p = C.make_parser("python -m precompute.reproduce", __doc__)
    d = p.add_argument_group("data")
    d.add_argument("--cirr-root", help="CIRR root (annotations + images of val; test1 and train when present)")
    d.add_argument("--webvid-csv", help="WebVid-CoVR CSV to evaluate (e.g. webvid8m-covr_test.csv)")
    d.add_argument("--video-root", help="WebVid videos: <video-root>/<pth>.mp4")
    d.add_argument("--filter-csv", nargs="+", help="WebVid-CoVR CSV(s) to filter for Table 4 (e.g. the train CSV)")
    d.add_argument("--cleanvid-map", help="CleanVid map (id, author, categories) as .csv or .parquet")
    e = p.add_argument_group("encoder")
    e.add_argument("--encoder", choices=C.encoder_choices(), default="auto", help="encoder of every embedding job")
    e.add_argument("--weights", default=None, help="weight tag passed to the jobs as --weights (e.g. webvid-covr)")
    e.add_argument("--checkpoint", default=None, help="CoVR .ckpt/.pth/.safetensors applied on top of BLIP")
    e.add_argument("--blip-source", default=None, help="hub id or local folder of the BLIP backbone")
    e.add_argument("--label", default=None, help="model label in the tables (default: the encoder name)")
    e.add_argument("--device", default="auto", help="torch device of the embedding jobs")
    e.add_argument("--batch-size", type=int, default=64, help="images per forward pass")
    e.add_argument("--num-workers", type=int, default=0, help="DataLoader workers of the embedding jobs")
    o = p.add_argument_group("run")
    o.add_argument("--data-dir", default="data", help="the app's data folder (galleries, evaluations, reports...)")
    o.add_argument("--name", required=True, help="name of this reproduction (prefix of every output folder)")
    o.add_argument("--mlp-epochs", type=int, default=30, help="maximum MLP training epochs (early stopping)")
    o.add_argument("--seed", type=int, default=1234, help="seed of the MLP and of the image-set split")
    o.add_argument("--no-thumbs", action="store_true", help="do not write gallery thumbnails (faster)")
    C.add_log_arg(o)
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m precompute.reproduce``."""
    return C.run_main(parse_args, lambda a: run(a, argv if argv is not None else sys.argv[1:]), argv)


if __name__ == "__main__":
    raise SystemExit(main())
