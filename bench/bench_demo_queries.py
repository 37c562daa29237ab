"""Does the offline demo compose? Top-1 / top-3 of the demo query set per combiner, plus the mini benchmarks.

Runs ``assets/benchmark/demo_queries.json`` (composed queries written for the bundled demo gallery)
through the app's own query path (``explorer.query.run_query``, default settings: near-duplicates of
the reference hidden) and prints one JSON line per combiner:
``{"bench": "demo_queries", "case": "NA", "top1": ..., "top3": ..., "queries": 48, ...}``; then one line
per combiner of each mini-benchmark evaluation the app made at start (``<data>/evaluations/mini-*``).

Run: ``.venv/bin/python bench/bench_demo_queries.py [--encoder lite] [--data-dir DIR]`` (the first run
in a fresh data folder builds the demo gallery and evaluates the mini benchmarks, about a minute).
"""

from __future__ import annotations

import argparse
import json
import tempfile


def main(argv: list[str] | None = None) -> int:
    """Evaluate and print JSON lines."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--encoder", default="lite", help="encoder of the app (lite runs offline)")
    p.add_argument("--data-dir", default=None, help="app data folder (default: a temporary one)")
    p.add_argument("--queries", default=None, help="query set file (default: the bundled demo set)")
    args = p.parse_args(argv)

    from explorer.query_set import DEMO_QUERIES, ComposedQuerySet, evaluate_query_set, summarise
    from explorer.services import Services

    with tempfile.TemporaryDirectory(prefix="covr-bench-demo-") as tmp:
        services = Services.create(encoder=args.encoder, data_dir=args.data_dir or tmp)
        qset = ComposedQuerySet.load(args.queries or DEMO_QUERIES)
        gallery = services.get_gallery()
        qset.check_ids(gallery.items["id"].astype(str))
        ranks = evaluate_query_set(services, qset)
        for row in summarise(ranks).to_dict("records"):
            print(
                json.dumps(
                    {
                        "bench": "demo_queries",
                        "case": row.pop("combiner"),
                        "encoder": services.info.name,
                        "version": services.info.version,
                        "set": qset.name,
                        **row,
                    }
                ),
                flush=True,
            )
        for name in services.benchmark_names():
            metrics = json.loads((services.data_dir / "evaluations" / name / "metrics.json").read_text())
            for combiner, values in metrics.get("results", {}).items():
                shown = {
                    k: round(float(v), 2)
                    for k, v in values.items()
                    if isinstance(v, (int, float)) and (k.startswith("R") or k.startswith("mean"))
                }
                print(
                    json.dumps({"bench": "demo_queries", "case": f"{name}/{combiner}", **shown}), flush=True
                )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
