"""Your own combiners and datasets, one file each, without editing this package: ``COVR_EXTENSIONS``.

``COVR_EXTENSIONS`` names Python files (``.py``) or importable module names, ``os.pathsep``-separated. The
combiner registry (``covr_core.combiners``) and the dataset registry (``covr_core.datasets``) import them
once, when they are first imported, so a ``@register_combiner("NAME")`` or a
``register_dataset(DatasetSpec(...))`` in such a file is offered by the app (combiner lists, Compare) and by
every job (``--dataset`` choices, ``precompute.evaluate``'s combiners) like a built-in one::

    COVR_EXTENSIONS=my_combiner.py:my_dataset.py \
        python -m precompute.queries --dataset mine --root ... --out ...

The operator's own code runs, as with ``PYTHONPATH``: set it only to files you trust.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from pathlib import Path
from types import ModuleType

EXTENSIONS_ENV = "COVR_EXTENSIONS"
_imported: dict[str, ModuleType | None] = {}


def extension_names(value: str | None = None) -> list[str]:
    """The entries of ``COVR_EXTENSIONS`` (or ``value``), empty ones dropped."""
    value = os.environ.get(EXTENSIONS_ENV, "") if value is None else value
    return [entry.strip() for entry in value.split(os.pathsep) if entry.strip()]


def _import_one(entry: str) -> ModuleType:
    if not entry.endswith(".py"):
        return importlib.import_module(entry)
    path = Path(entry).expanduser().resolve()
    if not path.is_file():
        raise FileNotFoundError(f"{EXTENSIONS_ENV} names {entry}, which is not a file")
    name = f"covr_extension_{path.stem}"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # importable by name while it runs (dataclasses, pickling)
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    return module


def load_extensions() -> list[ModuleType]:
    """Import every module ``COVR_EXTENSIONS`` names (each once per process); returns them in order.

    An entry that cannot be imported raises (ImportError, FileNotFoundError, or the module's own error) with a
    note naming the variable."""
    modules = []
    for entry in extension_names():
        if entry not in _imported:
            _imported[entry] = None  # under way: an extension importing the other registry does not re-enter
            try:
                _imported[entry] = _import_one(entry)
            except BaseException as exc:
                del _imported[entry]
                exc.add_note(f"(imported because {EXTENSIONS_ENV} names {entry})")
                raise
        if _imported[entry] is not None:
            modules.append(_imported[entry])
    return modules
