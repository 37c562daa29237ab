"""``python -m precompute.asset_builder``: rebuild ``assets/`` (see ``build.py``)."""

from precompute.asset_builder.build import main

if __name__ == "__main__":
    raise SystemExit(main())
