"""The ZeroGPU boundary: module-level GPU functions, plain data in and out, the reference cache kept in
the main process.

ZeroGPU runs ``@spaces.GPU`` functions in a forked worker and pickles their arguments and results; the
real mode needs the platform (and a CUDA build of torch), so here every function is wrapped to do
exactly that crossing — pickle the arguments, run on the unpickled copies, pickle the result — during a
real search, a text edit and a compare over a tiny BLIP gallery.
"""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
from PIL import Image

import explorer.spaces as zgpu
from covr_core.factory import resolve_device, resolve_dtype_name
from covr_core.types import QueryEmbeddings
from explorer.search import load_reference, search_with_session
from explorer.services import Session


def _plain(value, path="value"):
    """Assert ``value`` is plain data: no CUDA tensor, no lock, no model; recurse into containers."""
    if isinstance(value, torch.Tensor):
        assert value.device.type == "cpu", f"{path} is on {value.device}"
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            _plain(v, f"{path}[{i}]")
    elif isinstance(value, dict):
        for k, v in value.items():
            _plain(v, f"{path}[{k!r}]")
    elif hasattr(value, "__dataclass_fields__"):
        for k in value.__dataclass_fields__:
            _plain(getattr(value, k), f"{path}.{k}")
    else:
        assert isinstance(value, (str, int, float, bool, type(None), np.ndarray, np.generic)), (
            f"{path} is a {type(value).__name__}"
        )


@pytest.fixture
def crossings(monkeypatch):
    """Wrap every GPU function so that its call crosses a pickle boundary, and record the calls."""
    calls: list[tuple[str, tuple, object, int]] = []
    for name in zgpu.GPU_FUNCTIONS:
        real = getattr(zgpu, name)

        def crossing(*args, _real=real, _name=name):
            sent = pickle.dumps(args)  # what ZeroGPU puts on its queue to the worker
            result = _real(*pickle.loads(sent))  # the worker works on copies
            back = pickle.dumps(result)
            calls.append((_name, args, result, len(sent) + len(back)))
            return pickle.loads(back)

        monkeypatch.setattr(zgpu, name, crossing)
    return calls


def test_gpu_functions_are_module_level_and_unchanged_without_zero_gpu(monkeypatch):
    import spaces  # pinned in requirements.txt: the Space's runtime package

    monkeypatch.delenv("SPACES_ZERO_GPU", raising=False)
    assert zgpu.spaces_available() and not zgpu.zero_gpu()

    def f(x):
        return x

    assert spaces.GPU(duration=5)(f) is f  # outside ZeroGPU the decorator changes nothing
    for name in zgpu.GPU_FUNCTIONS:
        fn = getattr(zgpu, name)
        assert fn.__module__ == "explorer.spaces" and fn.__qualname__ == name  # module-level, not a method
        assert pickle.loads(pickle.dumps(fn)) is fn  # picklable by reference, as the worker needs
        assert not hasattr(fn, "zerogpu")


def test_services_do_not_cross_the_boundary(tiny_services):
    """Why the GPU work had to move out of Services: it holds locks (the PicklingError of issue 11)."""
    with pytest.raises((TypeError, pickle.PicklingError)):
        pickle.dumps(tiny_services)
    assert type(tiny_services.encoder).__name__ == "GpuEncoder"


def test_search_text_edit_and_compare_cross_only_plain_data(tiny_services, crossings, tmp_path):
    path = tmp_path / "ref.png"
    Image.new("RGB", (61, 43), (201, 17, 99)).save(path)  # pixels no other test uses: not cached yet
    ref = load_reference(str(path))
    enc = tiny_services.encoder
    inner = enc.inner

    # upload: the reference is encoded at once (the ViT crosses once), its state stays in this process
    key = tiny_services.prepare_reference(ref)
    assert [c[0] for c in crossings] == ["gpu_reference_state"]
    state = enc.reference_cache.get(key)
    assert state.states.device.type == "cpu" and state.key == key

    # search, then a text edit, then compare: only the text pass crosses (no second vision call)
    s = Session()
    first = search_with_session(tiny_services, s, str(path), None, "make it red", "AVG", "pics", 4)
    second = search_with_session(tiny_services, s, str(path), None, "make it blue", "AVG", "pics", 4)
    res = search_with_session(
        tiny_services, s, str(path), None, "make it green", ["NA", "AVG", "TEXT", "IMAGE"], "pics", 4
    )  # compare: one encoded query, every combiner
    names = [c[0] for c in crossings]
    assert names.count("gpu_reference_state") == 1
    assert names.count("gpu_query_from_reference") >= 3 and set(names) == {
        "gpu_reference_state",
        "gpu_query_from_reference",
    }
    assert len(first.outcomes["AVG"].hits) == len(second.outcomes["AVG"].hits) == 4
    assert list(res.outcomes) == ["NA", "AVG", "TEXT", "IMAGE"]

    for name, args, result, size in crossings:
        _plain(args, f"{name} args")
        _plain(result, f"{name} result")
        assert isinstance(args[0], str)  # the encoder travels as its registry key, never as an object
        assert size < 2_000_000, f"{name} moved {size} bytes"
    # the numbers are those of the encoder called directly (nothing lost on the way)
    direct = inner.encode_query(ref, "make it blue")
    via = tiny_services.encode_query(ref, "make it blue")
    for a, b in zip((direct.f_mm, direct.f_img, direct.f_txt), (via.f_mm, via.f_img, via.f_txt)):
        np.testing.assert_allclose(a, b, atol=1e-6)


def test_batched_paths_cross_as_arrays(tiny_services, crossings):
    enc = tiny_services.encoder
    imgs = [Image.new("RGB", (30 + i, 20), (10 * i, 50, 90)) for i in range(3)]
    q = enc.encode_queries(imgs, ["a", "b", "c"])
    targets = enc.encode_images(imgs)
    texts = enc.encode_texts(["a", "b"])
    assert isinstance(q, QueryEmbeddings) and q.f_mm.shape == (3, enc.info.dim)
    np.testing.assert_allclose(targets, q.f_img, atol=1e-5)
    assert texts.shape == (2, enc.info.dim)
    assert [c[0] for c in crossings] == ["gpu_encode_queries", "gpu_encode_pixels", "gpu_encode_texts"]
    for name, args, result, _size in crossings:
        _plain(args, name)
        _plain(result, name)


def test_device_auto_is_cuda_when_present(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device("auto") == "cuda" and resolve_device(None) == "cuda"
    assert resolve_dtype_name("auto", "cuda") == "bfloat16"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == "cpu" and resolve_dtype_name("auto", "cpu") == "float32"
    assert resolve_device("cuda:1") == "cuda:1" and resolve_dtype_name("float16", "cuda") == "float16"


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_on_a_gpu_the_model_sits_on_cuda_and_states_come_back_on_the_cpu(tmp_path):
    from helpers.tiny_blip import make_tiny_blip_folder

    from covr_core.blip_load import load_blip_encoder
    from covr_core.factory import resolve_device

    enc = load_blip_encoder(str(make_tiny_blip_folder(tmp_path / "m")), device=resolve_device("auto"))
    gpu_enc = zgpu.GpuEncoder(enc)
    assert next(enc.model.parameters()).device.type == "cuda"
    img = Image.new("RGB", (50, 40), (1, 2, 3))
    gpu_enc.prepare_reference(img)
    state = gpu_enc.reference_state(img)
    assert state.states.device.type == "cpu"
    q = gpu_enc.encode_query(img, "make it red")
    ref = enc.encode_query(img, "make it red")
    np.testing.assert_allclose(q.f_mm, ref.f_mm, atol=1e-4)
