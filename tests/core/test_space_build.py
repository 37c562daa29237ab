"""The Space builds: valid front matter, Python 3.12, a torch per Space kind, and a requirement set that
resolves for Python 3.12 from the package index (pip's resolver, ``--dry-run``, nothing installed).

A Space reads the README front matter, ``pre-requirements.txt`` (installed first: the torch build) and
``requirements.txt``. As committed they describe a CPU Space; a ZeroGPU Space swaps in
``deploy/pre-requirements-zerogpu.txt``.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tomllib
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import yaml

from covr_core.encoder_registry import get_model_config

REPO = Path(__file__).resolve().parents[2]
ZEROGPU_TORCH = {"2.8.0", "2.9.1", "2.10.0", "2.11.0"}  # spaces.md / the ZeroGPU docs
CPU_INDEX = "https://download.pytorch.org/whl/cpu"


def front_matter() -> dict:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    match = re.match(r"^---\n(.*?)\n---\n", text, re.S)
    assert match, "README.md must start with a YAML front-matter block"
    return yaml.safe_load(match.group(1))


def requirement_lines(path: Path) -> list[str]:
    return [
        ln.strip() for ln in path.read_text().splitlines() if ln.strip() and not ln.strip().startswith("#")
    ]


def pins(path: Path) -> dict[str, str]:
    return {
        m[1].lower(): m[2] for ln in requirement_lines(path) if (m := re.match(r"^([\w.-]+)==(\S+)$", ln))
    }


def test_front_matter_is_a_valid_space_config():
    import gradio

    fm = front_matter()
    assert fm["sdk"] == "gradio" and fm["app_file"] == "app.py" and (REPO / fm["app_file"]).is_file()
    assert str(fm["sdk_version"]) == pins(REPO / "requirements.txt")["gradio"] == gradio.__version__
    assert fm["python_version"] == "3.12"  # ZeroGPU offers 3.12.12; our pins need >= 3.11
    assert {"title", "emoji", "colorFrom", "colorTo", "license", "short_description"} <= set(fm)
    assert len(fm["short_description"]) <= 60
    assert "suggested_storage" not in fm  # persistent storage is no longer offered
    # preload_from_hub: the BLIP-L base config and the default CoVR checkpoint, as the registry names them
    blip = get_model_config("blip-large")
    default = blip.get_weights(blip.default_weights)
    entries = {tuple(e.split()[:2]) for e in fm["preload_from_hub"]}
    assert (blip.base_repo, "config.json") in entries
    assert (default.hub_repo, default.filename) in entries
    for repo, files in entries:
        assert re.fullmatch(r"[\w.-]+/[\w.-]+", repo) and all(files.split(","))
    assert {blip.base_repo, default.hub_repo} <= set(fm["models"])


def test_python_and_torch_choices():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert project["requires-python"] == ">=3.11"
    req = requirement_lines(REPO / "requirements.txt")
    assert not any(re.match(r"^torch\b", ln) for ln in req), (
        "torch comes from pre-requirements.txt / the Makefile"
    )
    assert pins(REPO / "requirements.txt")["spaces"] == "0.51.3"
    cpu = requirement_lines(REPO / "pre-requirements.txt")
    assert f"--extra-index-url {CPU_INDEX}" in cpu
    assert any(re.fullmatch(r"torch==[\d.]+\+cpu", ln) for ln in cpu)
    zero = pins(REPO / "deploy" / "pre-requirements-zerogpu.txt")
    assert zero["torch"] in ZEROGPU_TORCH
    assert (
        "torch==2.13.0" in (REPO / "Makefile").read_text()
    )  # local tests keep the CPU wheel of this machine


def _resolve(*requirement_files: Path, extra: tuple[str, ...] = ()) -> dict[str, str]:
    """pip's resolver for CPython 3.12 on this platform, wheels only: {name: version} or AssertionError."""
    report = Path(requirement_files[0]).with_suffix(".report.json")
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "install",
        "--dry-run",
        "--quiet",
        "--ignore-installed",
        "--python-version",
        "3.12",
        "--only-binary=:all:",
        "--report",
        str(report),
        *extra,
    ]
    for f in requirement_files:
        cmd += ["-r", str(f)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    errors = [ln for ln in proc.stderr.splitlines() if "is ignored" not in ln]
    assert proc.returncode == 0, "\n".join(errors[-20:])
    data = json.loads(report.read_text())
    return {i["metadata"]["name"].lower(): i["metadata"]["version"] for i in data["install"]}


def _reachable(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=5):  # noqa: S310 - fixed https URL
            return True
    except Exception:  # noqa: BLE001
        return False


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_space_requirements_resolve_for_python_3_12(tmp_path):
    """Both Space kinds resolve on Python 3.12 from the package index (pip --dry-run, no install).

    The CPU kind's torch comes from PyTorch's CPU index; where that index cannot be reached (this
    machine's network reaches PyPI only), the same torch version is resolved from PyPI instead, which
    proves the rest of the set accepts it (the CPU build differs only by having no CUDA dependencies)."""
    zero_pre = REPO / "deploy" / "pre-requirements-zerogpu.txt"
    cpu_torch = next(
        ln for ln in requirement_lines(REPO / "pre-requirements.txt") if ln.startswith("torch==")
    )
    cpu_pre = tmp_path / "pre-cpu.txt"
    if _reachable(f"{CPU_INDEX}/torch/"):
        cpu_pre.write_text((REPO / "pre-requirements.txt").read_text())
    else:
        cpu_pre.write_text(cpu_torch.split("+")[0] + "\n")
    zero_copy = tmp_path / "pre-zero.txt"
    zero_copy.write_text(zero_pre.read_text())
    req = REPO / "requirements.txt"
    with ThreadPoolExecutor(2) as pool:
        zero_job = pool.submit(_resolve, zero_copy, req)
        cpu_job = pool.submit(_resolve, cpu_pre, req)
        zero, cpu = zero_job.result(), cpu_job.result()
    for resolved in (zero, cpu):
        for name, version in pins(req).items():
            assert resolved[name] == version, (name, resolved.get(name), version)
    assert zero["torch"] == pins(zero_pre)["torch"]
    assert cpu["torch"].split("+")[0] == cpu_torch.split("==")[1].split("+")[0]
