"""Ways to run BLIP's ViT (the cost of every new image), chosen automatically or forced by name.

=========================  =========================================================================
backend                    what runs
=========================  =========================================================================
``transformers``           transformers' ``BlipVisionModel`` as it is (eager attention; the baseline)
``sdpa``                   :class:`~covr_core.blip_towers.FastVision` in eager torch (SDPA attention)
``compile``                ``FastVision`` under ``torch.compile`` (inductor, weight freezing)
``compile-max-autotune``   the same with ``max_autotune`` (inductor's CPU GEMM templates)
``openvino``               ``FastVision`` exported once to OpenVINO IR (cached on disk), OpenVINO CPU runtime
``onnxruntime``            ``FastVision`` exported once to ONNX (cached on disk), ONNX Runtime (float32 only)
=========================  =========================================================================

``auto`` (the default; ``COVR_VISION_BACKEND`` or ``vision_backend=`` forces one): on CPU ``openvino`` when
the package is installed and the ViT is real-size (width >= 384, where the one-time export pays back), else
``sdpa``; on other devices ``sdpa``. docs/PERFORMANCE.md has the measurements
behind this choice. Every backend computes in the encoder's dtype: ``float32`` stays float32 (OpenVINO is told
so explicitly: its CPU default is bfloat16 on CPUs with bf16 units), ``bfloat16`` computes in bfloat16.
A backend that cannot be built (package missing, export failure) falls back to ``sdpa`` with a warning.
"""

from __future__ import annotations

import contextlib
import copy
import json
import logging
import os
import threading
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from covr_core.artifact_cache import ArtifactCache, artifact_key, tensor_fingerprint
from covr_core.blip_towers import FastVision

logger = logging.getLogger(__name__)

ENV_VAR = "COVR_VISION_BACKEND"
BACKENDS = ("auto", "transformers", "sdpa", "compile", "compile-max-autotune", "openvino", "onnxruntime")
EXPORT_FORMAT = "covr-vit-export-1"  #: bump when the exported graph changes
AUTO_EXPORT_MIN_WIDTH = 384  #: ``auto`` exports only ViTs at least this wide (tiny test models stay eager)


class BackendUnavailable(RuntimeError):
    """The requested backend cannot run here (package missing, unsupported dtype or device)."""


@dataclass
class VisionRunner:
    """A built backend: ``run(pixels [N, 3, S, S]) -> last_hidden_state [N, tokens, width]``."""

    name: str
    run: Callable[[torch.Tensor], torch.Tensor]
    detail: str = ""


def requested_backend(name: str | None = None) -> str:
    """``name``, else ``$COVR_VISION_BACKEND``, else ``auto``; raises ValueError for an unknown name."""
    value = (name or os.environ.get(ENV_VAR, "") or "auto").strip().lower()
    if value not in BACKENDS:
        raise ValueError(f"unknown vision backend {value!r} ({ENV_VAR}); choose one of {', '.join(BACKENDS)}")
    return value


def resolve_backend(name: str | None, vision_model: torch.nn.Module) -> str:
    """The concrete backend that ``name`` (``auto`` or a forced name) means for ``vision_model``."""
    value = requested_backend(name)
    if value != "auto":
        return value
    on_cpu = next(vision_model.parameters()).device.type == "cpu"
    big = int(vision_model.config.hidden_size) >= AUTO_EXPORT_MIN_WIDTH
    if on_cpu and big and _has_module("openvino"):
        return "openvino"
    return "sdpa"


def build_vision_runner(vision_model: torch.nn.Module, name: str, cache: ArtifactCache | None = None) -> VisionRunner:
    """Build backend ``name`` (not ``auto``) for ``vision_model`` (its device and dtype); may raise
    :class:`BackendUnavailable`."""
    builders = {
        "transformers": _transformers,
        "sdpa": _sdpa,
        "compile": lambda vm, _c: _compiled(vm, max_autotune=False),
        "compile-max-autotune": lambda vm, _c: _compiled(vm, max_autotune=True),
        "openvino": _openvino,
        "onnxruntime": _onnxruntime,
    }
    if name not in builders:
        raise ValueError(f"cannot build vision backend {name!r}")
    return builders[name](vision_model, cache)


# ---------------------------------------------------------------------------------------------- torch
def _transformers(vm, _cache) -> VisionRunner:
    return VisionRunner("transformers", lambda px: vm(pixel_values=px).last_hidden_state, "eager attention")


def _sdpa(vm, _cache) -> VisionRunner:
    return VisionRunner("sdpa", FastVision(vm), "torch eager, SDPA attention")


def _compiled(vm, max_autotune: bool) -> VisionRunner:
    fast = FastVision(vm).eval()
    options = {"freezing": True, "max_autotune": max_autotune}
    compiled = torch.compile(fast, options=options)
    name = "compile-max-autotune" if max_autotune else "compile"
    return VisionRunner(name, compiled, f"torch.compile inductor {options} (compiles on first use)")


# ---------------------------------------------------------------------------------------------- exports
def _check_cpu_export(vm, backend: str, dtypes: tuple[torch.dtype, ...]) -> None:
    if not _has_module(backend):
        raise BackendUnavailable(f"{backend} is not installed (pip install {backend})")
    param = next(vm.parameters())
    if param.device.type != "cpu":
        raise BackendUnavailable(f"{backend} runs the ViT on CPU only (model on {param.device})")
    if param.dtype not in dtypes:
        raise BackendUnavailable(f"{backend} does not run {param.dtype} here")


def _image_size(vm) -> int:
    size = vm.config.image_size
    return int(size[0] if isinstance(size, (list, tuple)) else size)


def _float32_module(vm) -> FastVision:
    """FastVision over float32 weights (a float32 copy when the model is in another dtype: exact for bf16)."""
    if next(vm.parameters()).dtype == torch.float32:
        return FastVision(vm).eval()
    return FastVision(copy.deepcopy(vm).float()).eval()


def _export_key(vm, backend: str, library_version: str) -> str:
    config = json.dumps(vm.config.to_dict(), sort_keys=True, default=str)
    return artifact_key(EXPORT_FORMAT, backend, library_version, torch.__version__, tensor_fingerprint(vm),
                        config, str(next(vm.parameters()).dtype))


def _cached_export(cache: ArtifactCache | None, key: str, export: Callable[[Path], list[str]], info: dict):
    """The folder holding the export: from ``cache`` (built on a miss), or a temp folder without a cache."""
    if cache is not None:
        return cache.get_or_build(key, export, info), None
    import tempfile

    tmp = tempfile.TemporaryDirectory(prefix="covr-export-")
    export(Path(tmp.name))
    return Path(tmp.name), tmp


def _openvino(vm, cache: ArtifactCache | None) -> VisionRunner:
    _check_cpu_export(vm, "openvino", (torch.float32, torch.bfloat16))
    import openvino as ov

    size, dtype = _image_size(vm), next(vm.parameters()).dtype

    def export(folder: Path) -> list[str]:
        module = _float32_module(vm)
        with torch.no_grad(), warnings.catch_warnings(), _openvino_telemetry_off():
            warnings.simplefilter("ignore")  # tracing touches deprecated transformers properties
            graph = ov.convert_model(module, example_input=torch.zeros(1, 3, size, size))
        graph.reshape({graph.inputs[0]: ov.PartialShape([-1, 3, size, size])})
        ov.save_model(graph, folder / "vision.xml", compress_to_fp16=False)
        return ["vision.xml", "vision.bin"]

    key = _export_key(vm, "openvino", ov.__version__)
    folder, tmp = _cached_export(cache, key, export, {"backend": "openvino", "version": ov.__version__})
    core = ov.Core()
    precision = "f32" if dtype == torch.float32 else "bf16"
    config = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": precision,
              "INFERENCE_NUM_THREADS": torch.get_num_threads()}
    if precision == "f32":
        config["EXECUTION_MODE_HINT"] = "ACCURACY"
    compiled = core.compile_model(core.read_model(folder / "vision.xml"), "CPU", config)
    if tmp is not None:
        tmp.cleanup()
    request, lock = compiled.create_infer_request(), threading.Lock()

    def run(pixels: torch.Tensor) -> torch.Tensor:
        arr = np.ascontiguousarray(pixels.detach().to("cpu", torch.float32).numpy())
        with lock:
            out = request.infer({0: ov.Tensor(arr, shared_memory=True)})
            states = torch.from_numpy(np.array(out[0], dtype=np.float32, copy=True))
        return states.to(dtype)

    return VisionRunner("openvino", run, f"OpenVINO {ov.__version__.split('-')[0]} {precision}")


@contextlib.contextmanager
def _openvino_telemetry_off():
    """``convert_model`` reports usage to Intel unless the user opted out or ``CI`` is set (openvino-telemetry);
    a public Space must not send visitors' usage anywhere, so the export runs with ``CI=true``."""
    previous = os.environ.get("CI")
    os.environ["CI"] = "true"
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop("CI", None)
        else:
            os.environ["CI"] = previous


def _onnxruntime(vm, cache: ArtifactCache | None) -> VisionRunner:
    _check_cpu_export(vm, "onnxruntime", (torch.float32,))
    if not _has_module("onnx"):
        raise BackendUnavailable("the ONNX export needs the onnx package (pip install onnx)")
    import onnxruntime as ort

    size = _image_size(vm)

    def export(folder: Path) -> list[str]:
        module = _float32_module(vm)
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the TorchScript exporter is deprecated; the graph is the same
            torch.onnx.export(module, (torch.zeros(1, 3, size, size),), str(folder / "vision.onnx"),
                              input_names=["pixel_values"], output_names=["states"],
                              dynamic_axes={"pixel_values": {0: "batch"}, "states": {0: "batch"}},
                              dynamo=False, external_data=True)
        return [p.name for p in folder.iterdir() if p.is_file()]

    key = _export_key(vm, "onnxruntime", ort.__version__)
    folder, tmp = _cached_export(cache, key, export, {"backend": "onnxruntime", "version": ort.__version__})
    options = ort.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = ort.InferenceSession(str(folder / "vision.onnx"), options, providers=["CPUExecutionProvider"])
    if tmp is not None:
        tmp.cleanup()

    def run(pixels: torch.Tensor) -> torch.Tensor:
        arr = np.ascontiguousarray(pixels.detach().to("cpu", torch.float32).numpy())
        return torch.from_numpy(session.run(["states"], {"pixel_values": arr})[0])

    return VisionRunner("onnxruntime", run, f"ONNX Runtime {ort.__version__} f32")


def _has_module(name: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(name) is not None


class LazyVision:
    """The encoder's ViT runner: resolves the backend now, builds it on first use (thread-safe), builds again
    when the weights move to another device or dtype (e.g. a GPU worker), and falls back to ``sdpa`` when the
    chosen backend cannot be built."""

    def __init__(self, vision_model: torch.nn.Module, requested: str | None, cache_factory) -> None:
        self.vm = vision_model
        self.requested = requested
        self.name = resolve_backend(requested, vision_model)
        self.forced = requested_backend(requested) != "auto"
        self.detail = ""
        self._cache_factory = cache_factory
        self._runner: VisionRunner | None = None
        self._built_for: tuple | None = None
        self._lock = threading.Lock()

    def _placement(self) -> tuple:
        param = next(self.vm.parameters())
        return param.device, param.dtype

    def runner(self) -> VisionRunner:
        """The built runner (building it on the first call, or when the weights moved)."""
        placement = self._placement()
        if self._runner is None or self._built_for != placement:
            with self._lock:
                if self._runner is None or self._built_for != placement:
                    if self._built_for is not None:
                        self.name = resolve_backend(self.requested, self.vm)
                    self._runner, self._built_for = self._build(), placement
                    self.name, self.detail = self._runner.name, self._runner.detail
        return self._runner

    def _build(self) -> VisionRunner:
        try:
            return build_vision_runner(self.vm, self.name, self._cache_factory())
        except Exception as exc:  # noqa: BLE001 - any export/runtime failure falls back to eager torch
            if self.name == "sdpa":
                raise
            level = logging.WARNING if self.forced or not isinstance(exc, BackendUnavailable) else logging.INFO
            logger.log(level, "vision backend %s unavailable (%s); using sdpa", self.name, exc)
            runner = _sdpa(self.vm, None)
            runner.detail = f"{runner.detail}; {self.name} unavailable: {str(exc)[:120]}"
            return runner

    def __call__(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.runner().run(pixel_values)
