"""Extension points, one file each (docs/ARCHITECTURE.md, issue 16): a new combiner and a new dataset spec
are each ONE module written here to tmp_path; nothing else is edited. Imported from Python, the combiner then
shows in the registry, in ``precompute.evaluate``'s per-combiner report, in the explorer's choices, Compare
table, weights chart and Explore tab; the dataset in the registry, in the gallery and queries jobs'
``--dataset`` choices and through both jobs to an evaluation. Named in ``COVR_EXTENSIONS`` instead, the same
two files reach the command-line jobs (a fresh process). Real parts: a tiny random-weight BLIP, the real
jobs, FAISS, Services."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from types import ModuleType

import numpy as np
import pandas as pd
import pytest

from covr_core import combiners as combiner_registry
from covr_core import extensions
from covr_core.datasets import registry as dataset_registry

REPO = Path(__file__).resolve().parents[2]

#: The whole new combiner: one file (what docs/ARCHITECTURE.md tells a contributor to write).
HALF_COMBINER = '''
"""HALF: half reference image, half modification text (a trivial combiner in one file)."""
import numpy as np

from covr_core.combiners import register_combiner
from covr_core.encoder import l2_normalise


@register_combiner("HALF")
def half(emb, mlp=None):
    """normalise(0.5 f_img + 0.5 f_txt); weights (w_mm, w_img, w_txt) = (0, 0.5, 0.5)."""
    weights = np.broadcast_to(np.float32([0.0, 0.5, 0.5]), np.shape(emb.f_mm)[:-1] + (3,)).copy()
    return l2_normalise(0.5 * np.asarray(emb.f_img) + 0.5 * np.asarray(emb.f_txt)), weights
'''

#: The whole new dataset: one file reading two small CSVs (images + triplets), scored with the CIRR protocol.
TINY_DATASET = '''
"""tinycsv: <root>/items.csv (id, file, caption) and <root>/triplets.csv (pairid, reference, caption, target,
set): a trivial dataset spec in one file."""
import json
from pathlib import Path

import numpy as np
import pandas as pd

from covr_core.datasets import DatasetSelection, DatasetSpec, ItemList, register_dataset
from covr_core.datasets.registry import GALLERY_COLUMNS, QUERY_COLUMNS


def _items(sel: DatasetSelection) -> pd.DataFrame:
    return pd.read_csv(Path(sel.root) / "items.csv", dtype=str, keep_default_na=False)


def list_gallery(sel: DatasetSelection) -> ItemList:
    root, df = Path(sel.root).resolve(), _items(sel)
    items = pd.DataFrame({"id": df["id"], "kind": "image", "path": [str(root / f) for f in df["file"]],
                          "media": df["file"], "caption": df["caption"], "split": "tiny", "duration": np.nan,
                          "scores": ""}, columns=list(GALLERY_COLUMNS))
    return ItemList(items, root, "tiny")


def list_queries(sel: DatasetSelection) -> ItemList:
    root, files = Path(sel.root).resolve(), dict(zip(_items(sel)["id"], _items(sel)["file"]))
    t = pd.read_csv(root / "triplets.csv", dtype=str, keep_default_na=False)
    in_set = {s: [*t["reference"][t["set"] == s], *t["target"][t["set"] == s]] for s in t["set"]}
    rows = pd.DataFrame({"id": t["pairid"], "query_id": t["pairid"].astype(int), "reference": t["reference"],
                         "target": t["target"], "caption": t["caption"],
                         "members": [json.dumps(sorted(set(in_set[s]))) for s in t["set"]],
                         "target_soft": [json.dumps({x: 1.0}) for x in t["target"]],
                         "path": [str(root / files[r]) for r in t["reference"]], "kind": "image"},
                        columns=list(QUERY_COLUMNS))
    return ItemList(rows, root, "tiny")


register_dataset(DatasetSpec(
    name="tinycsv", description="two CSVs: images and triplets", media="image", list_gallery=list_gallery,
    list_queries=list_queries, key=lambda s: f"tinycsv:{Path(s.root).resolve()}", required=("root",),
    exclusion="reference", benchmark="cirr"))
'''


def _import_file(path: Path) -> ModuleType:
    """Import one module file by path (as a contributor's own module would be imported)."""
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture()
def clean_registries(monkeypatch):
    """Both registries (and the record of imported extensions) are restored after the test."""
    monkeypatch.setattr(combiner_registry, "_REGISTRY", dict(combiner_registry._REGISTRY))
    monkeypatch.setattr(dataset_registry, "_REGISTRY", dict(dataset_registry._REGISTRY))
    monkeypatch.setattr(extensions, "_imported", {})


@pytest.fixture()
def extension_files(tmp_path) -> dict[str, Path]:
    """The two extension files, each complete on its own."""
    ext = tmp_path / "ext"
    ext.mkdir()
    files = {"combiner": ext / "covr_ext_half.py", "dataset": ext / "covr_ext_tinycsv.py"}
    files["combiner"].write_text(textwrap.dedent(HALF_COMBINER))
    files["dataset"].write_text(textwrap.dedent(TINY_DATASET))
    return files


@pytest.fixture()
def imported_extensions(clean_registries, extension_files, monkeypatch):
    """The two extension files imported from Python."""
    for path in extension_files.values():
        monkeypatch.setitem(sys.modules, path.stem, _import_file(path))
    return extension_files


@pytest.fixture(scope="module")
def tiny_blip_dir(tmp_path_factory) -> Path:
    """A tiny random-weight BLIP folder (tests/helpers/tiny_blip.py)."""
    from helpers.tiny_blip import make_tiny_blip_folder

    return make_tiny_blip_folder(tmp_path_factory.mktemp("tinyblip") / "m")


@pytest.fixture(scope="module")
def tiny_encoder(tiny_blip_dir):
    """The tiny BLIP loaded through the real path."""
    from covr_core.blip_load import load_blip_encoder

    return load_blip_encoder(str(tiny_blip_dir))


def _tiny_dataset(root: Path) -> Path:
    """6 images in 2 sets of 3 and 4 triplets, in the two CSVs the tinycsv spec reads."""
    from helpers.synthetic_data import pattern_image

    (root / "img").mkdir(parents=True)
    ids = [f"pic{i}" for i in range(6)]
    for i, item in enumerate(ids):
        pattern_image(i, (48, 40)).save(root / "img" / f"{item}.png")
    items = {"id": ids, "file": [f"img/{i}.png" for i in ids], "caption": [f"picture {i}" for i in range(6)]}
    pd.DataFrame(items).to_csv(root / "items.csv", index=False)
    pd.DataFrame({"pairid": ["10", "11", "12", "13"], "reference": ["pic0", "pic1", "pic3", "pic4"],
                  "caption": ["make it red", "add a dog", "at night", "two of them"],
                  "target": ["pic1", "pic2", "pic4", "pic5"], "set": ["a", "a", "b", "b"]}
                 ).to_csv(root / "triplets.csv", index=False)
    return root


def test_a_combiner_and_a_dataset_in_one_file_each_work_end_to_end(imported_extensions, tiny_encoder,
                                                                    tmp_path):
    from covr_core.datasets import get_dataset, list_datasets, query_datasets
    from covr_core.figure_style import WEIGHT_COLOURS
    from covr_core.settings import Settings
    from covr_core.types import WEIGHT_NAMES
    from explorer.browse import load_benchmark, wide_table
    from explorer.compare import compare_outcome
    from explorer.plots import weights_bar_figure
    from explorer.query import make_reference, run_query
    from explorer.search import load_reference
    from explorer.services import Services
    from explorer.weights import weight_histograms
    from precompute import evaluate, gallery, queries

    # the registries list both
    assert "HALF" in combiner_registry.list_combiners() and "HALF" in evaluate.available_combiners()
    assert "tinycsv" in list_datasets() and "tinycsv" in query_datasets()
    spec = get_dataset("tinycsv")

    # both jobs accept it by name, on the command line too (their --dataset choices come from the registry)
    data = tmp_path / "data"
    root = _tiny_dataset(data / "media" / "tiny")  # inside the data folder: the app serves its media
    gal_dir, q_dir = data / "galleries" / "tiny-g", data / "queries" / "tiny-q"
    eval_dir = data / "evaluations" / "tiny"
    for job, out in ((gallery, gal_dir), (queries, q_dir)):
        args = job.parse_args(["--dataset", "tinycsv", "--root", str(root), "--out", str(out)])
        assert args.dataset == "tinycsv"
    common = dict(dataset="tinycsv", root=str(root), encoder=tiny_encoder, batch_size=4)
    assert gallery.run(out=str(gal_dir), name="tiny-g", **common).complete
    assert queries.run(out=str(q_dir), **common).complete

    # the evaluation reports the new combiner like the built-in ones, with the dataset's protocol
    report = evaluate.run(q_dir, gal_dir, spec.benchmark, eval_dir)
    assert "HALF" in report["info"]["combiners"] and {"NA", "AVG"} <= set(report["results"])
    half = report["results"]["HALF"]
    assert {"R@1", "R@5", "Rs@1", "Avg"} <= set(half)
    assert "| HALF |" in (eval_dir / "metrics.md").read_text()
    assert "HALF" in pd.read_csv(eval_dir / "metrics.csv").iloc[:, 1].tolist()
    per_query = load_benchmark(eval_dir).per_query  # the evaluation folder through the explorer's reader
    rows = per_query[per_query["combiner"] == "HALF"].set_index("query_id")
    np.testing.assert_allclose(rows[list(WEIGHT_NAMES)].to_numpy(), np.tile([0.0, 0.5, 0.5], (4, 1)))
    assert half["R@1"] == pytest.approx(100 * np.mean(rows["rank"] <= 1))

    # the explorer: Search's combiner choices; each triplet searched in the app gives HALF's query
    # normalise(f_img + f_txt) and the rank the evaluation stored (FAISS search vs the job's matrix product)
    services = Services(tiny_encoder, Settings(data_dir=data), "tiny-g")
    assert "HALF" in services.combiners()
    for t in pd.read_csv(root / "triplets.csv", dtype=str).to_dict("records"):
        image = load_reference(str(root / "img" / f"{t['reference']}.png"))
        ref = make_reference(services, image, gallery_id=t["reference"])
        result = run_query(services, ref, t["caption"], services.combiners(), "tiny-g", k=3,
                           target_id=t["target"])
        emb = tiny_encoder.encode_query(image, t["caption"])
        want = (emb.f_img + emb.f_txt) / np.linalg.norm(emb.f_img + emb.f_txt)
        np.testing.assert_allclose(result.outcomes["HALF"].query, want, atol=1e-5)
        assert result.outcomes["HALF"].target_rank == rows.loc[t["pairid"], "rank"], t
    # the Compare table and the weights chart (of the last query)
    table = compare_outcome(result).table.set_index("combiner")
    assert table.loc["HALF", list(WEIGHT_NAMES)].tolist() == [0.0, 0.5, 0.5]
    bar = weights_bar_figure(result.outcomes["HALF"].weights, "HALF")
    assert bar.layout.title.text == "weights (HALF)" and list(bar.data[0].y) == [0.0, 0.5, 0.5]
    # figure colours are per weight (w_mm / w_img / w_txt), never per combiner: a new combiner needs none
    assert list(bar.data[0].marker.color) == [WEIGHT_COLOURS[n] for n in WEIGHT_NAMES]

    # the Explore tab: the evaluation's combiner choices, the per-query table, the weights histograms
    assert "HALF" in services.benchmark_combiners("tiny") and "HALF" in services.all_benchmark_combiners()
    bench = services.get_benchmark("tiny")
    wide = wide_table(bench, "HALF")
    assert "rank_HALF" in wide.columns and (wide["w_img"] == 0.5).all()
    hist = weight_histograms(bench.per_query[bench.per_query["combiner"] == "HALF"])
    assert hist.mean == pytest.approx({"w_mm": 0.0, "w_img": 0.5, "w_txt": 0.5})


def test_covr_extensions_imports_each_named_file_once(clean_registries, extension_files, monkeypatch,
                                                      tmp_path):
    monkeypatch.setenv(extensions.EXTENSIONS_ENV, f" {extension_files['combiner']} {os.pathsep}{os.pathsep}"
                                                  f"{extension_files['dataset']}")
    first = extensions.load_extensions()
    assert [m.__file__ for m in first] == [str(p) for p in extension_files.values()]
    assert "HALF" in combiner_registry.list_combiners() and "tinycsv" in dataset_registry.list_datasets()
    assert extensions.load_extensions() == first  # imported once per process
    monkeypatch.setitem(sys.modules, "covr_ext_by_name", _import_file(extension_files["combiner"]))
    monkeypatch.setenv(extensions.EXTENSIONS_ENV, "covr_ext_by_name")  # a module name works too
    assert extensions.load_extensions() == [sys.modules["covr_ext_by_name"]]
    monkeypatch.setenv(extensions.EXTENSIONS_ENV, str(tmp_path / "missing.py"))
    with pytest.raises(FileNotFoundError, match="missing.py") as err:
        extensions.load_extensions()
    assert extensions.EXTENSIONS_ENV in "".join(err.value.__notes__)


@pytest.mark.slow  # three job processes
def test_covr_extensions_reach_the_command_line_jobs(extension_files, tiny_blip_dir, tmp_path):
    """A fresh process with ``COVR_EXTENSIONS`` naming the two files: the gallery and queries jobs embed the
    dataset by name, and ``precompute.evaluate --combiners HALF`` scores the combiner."""
    root, data = _tiny_dataset(tmp_path / "tiny"), tmp_path / "data"
    env = {**os.environ, extensions.EXTENSIONS_ENV: os.pathsep.join(map(str, extension_files.values())),
           "TQDM_DISABLE": "1"}
    encoder = ["--encoder", "blip", "--blip-source", str(tiny_blip_dir), "--device", "cpu"]
    dataset = ["--dataset", "tinycsv", "--root", str(root)]
    runs = [("precompute.gallery", [*dataset, "--out", str(data / "g"), *encoder]),
            ("precompute.queries", [*dataset, "--out", str(data / "q"), *encoder]),
            ("precompute.evaluate", ["--queries", str(data / "q"), "--gallery", str(data / "g"),
                                     "--benchmark", "cirr", "--out", str(data / "e"), "--combiners", "HALF"])]
    for module, args in runs:
        res = subprocess.run([sys.executable, "-m", module, *args], cwd=tmp_path, env=env,
                             capture_output=True, text=True, timeout=300)
        assert res.returncode == 0, f"{module}: {res.stderr[-3000:]}"
    report = json.loads((data / "e" / "metrics.json").read_text())
    assert report["info"]["combiners"] == ["HALF"] and report["info"]["num_queries"] == 4
    assert report["info"]["num_gallery"] == 6


def test_the_registries_are_restored_after_the_extension_tests():
    """Runs after the tests above: the fixture restored both registries (nothing leaks into other tests)."""
    assert "HALF" not in combiner_registry.list_combiners()
    assert "tinycsv" not in dataset_registry.list_datasets()
