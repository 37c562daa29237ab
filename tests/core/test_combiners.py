"""Combiners: definitions of NA/AVG/TEXT/IMAGE, MLP weights, registry, MLP save/load and fork loading."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from covr_core.combiners import (
    MLPCombiner,
    combine,
    list_combiners,
    load_mlp_combiner,
    mlp_from_state_dict,
    register_combiner,
    save_mlp_combiner,
)
from covr_core.convert import convert_covr_state_dict
from covr_core.types import QueryEmbeddings
from helpers.tiny_blip import make_covr_state_dict

DIM = 16


def _unit(rng, *shape):
    x = rng.standard_normal((*shape, DIM)).astype(np.float32)
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


@pytest.fixture(params=["single", "batch"])
def emb(request):
    rng = np.random.default_rng(0)
    shape = () if request.param == "single" else (5,)
    return QueryEmbeddings(f_mm=_unit(rng, *shape), f_img=_unit(rng, *shape), f_txt=_unit(rng, *shape))


@pytest.fixture
def trained_mlp():
    gen = torch.Generator().manual_seed(0)
    sd = {
        "weight_predictor.0.weight": torch.randn(128, 3 * DIM, generator=gen),
        "weight_predictor.0.bias": torch.randn(128, generator=gen),
        "weight_predictor.2.weight": torch.randn(3, 128, generator=gen),
        "weight_predictor.2.bias": torch.randn(3, generator=gen),
    }
    return mlp_from_state_dict(sd, record={"source": "test"})


def _norm(x):
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def test_fixed_combiners_equal_their_definitions(emb):
    expect = {
        "NA": (emb.f_mm, (1, 0, 0)),
        "AVG": (_norm((emb.f_mm + emb.f_img + emb.f_txt) / 3), (1 / 3, 1 / 3, 1 / 3)),
        "TEXT": (emb.f_txt, (0, 0, 1)),
        "IMAGE": (emb.f_img, (0, 1, 0)),
    }
    for name, (query, weights) in expect.items():
        out = combine(name, emb)
        assert out.combiner == name and out.query.dtype == np.float32
        assert out.query.shape == emb.f_mm.shape
        np.testing.assert_allclose(out.query, query, atol=1e-6)
        np.testing.assert_allclose(out.weights, np.broadcast_to(np.float32(weights), out.weights.shape), atol=1e-7)
        assert out.weights.shape == emb.f_mm.shape[:-1] + (3,)


def test_mlp_weights_are_a_distribution_and_define_the_query(emb, trained_mlp):
    out = combine("MLP", emb, trained_mlp)
    w = out.weights
    assert (w >= 0).all()
    np.testing.assert_allclose(w.sum(axis=-1), 1.0, atol=1e-6)
    stacked = emb.stacked()
    flat = torch.from_numpy(stacked.reshape(*stacked.shape[:-2], 3 * DIM))
    logits = trained_mlp.weight_predictor(flat).detach().numpy()
    expect_w = np.exp(logits - logits.max(-1, keepdims=True))
    expect_w /= expect_w.sum(-1, keepdims=True)
    np.testing.assert_allclose(w, expect_w, atol=1e-6)
    query = _norm(expect_w[..., 0:1] * emb.f_mm + expect_w[..., 1:2] * emb.f_img + expect_w[..., 2:3] * emb.f_txt)
    np.testing.assert_allclose(out.query, query, atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(out.query, axis=-1), 1.0, atol=1e-6)


def test_all_combiner_weights_non_negative_sum_to_one(emb, trained_mlp):
    for name in list_combiners(trained_mlp):
        w = combine(name, emb, trained_mlp).weights
        assert (w >= 0).all() and np.allclose(w.sum(axis=-1), 1.0, atol=1e-6), name


def test_untrained_mlp_is_never_offered(emb):
    assert list_combiners() == ["NA", "AVG", "TEXT", "IMAGE"]
    fresh = MLPCombiner(dim=DIM)
    assert fresh.trained is False
    assert "MLP" not in list_combiners(fresh)
    with pytest.raises(ValueError, match="trained"):
        combine("MLP", emb, fresh)
    with pytest.raises(ValueError):
        combine("MLP", emb, None)
    with pytest.raises(KeyError):
        combine("NOPE", emb)


def test_save_and_load_round_trip(tmp_path, emb, trained_mlp):
    path = tmp_path / "mlp" / "mlp_combiner.safetensors"
    save_mlp_combiner(trained_mlp, path, record={"trained_on": "cirr", "epochs": 3})
    assert path.with_suffix(".json").is_file()
    loaded = load_mlp_combiner(path)
    assert loaded.trained and loaded.record["trained_on"] == "cirr" and loaded.dim == DIM
    np.testing.assert_allclose(combine("MLP", emb, loaded).query, combine("MLP", emb, trained_mlp).query, atol=1e-7)
    untrained = MLPCombiner(dim=DIM)
    save_mlp_combiner(untrained, tmp_path / "u.safetensors", record={})
    with pytest.raises(ValueError, match="untrained"):
        load_mlp_combiner(tmp_path / "u.safetensors")


def test_mlp_from_fork_checkpoint_keys_map_one_to_one():
    sd = make_covr_state_dict(seed=0, std=0.02, weight_predictor=True)
    conv = convert_covr_state_dict(sd)
    mlp = mlp_from_state_dict(conv.mlp_state_dict)
    assert mlp.trained and mlp.dim == 64 and mlp.hidden == 128
    own = mlp.state_dict()
    for key in ("weight_predictor.0.weight", "weight_predictor.0.bias", "weight_predictor.2.weight", "weight_predictor.2.bias"):
        assert torch.equal(own[key], sd[key])
    with pytest.raises(ValueError):
        mlp_from_state_dict({"0.weight": torch.zeros(128, 10)})


def test_register_custom_combiner(emb):
    @register_combiner("TEST_HALF")
    def _half(e, mlp=None):
        w = np.broadcast_to(np.float32([0.5, 0.0, 0.5]), e.f_mm.shape[:-1] + (3,)).copy()
        return _norm(e.f_mm + e.f_txt).astype(np.float32), w

    try:
        assert "TEST_HALF" in list_combiners()
        np.testing.assert_allclose(combine("TEST_HALF", emb).query, _norm(emb.f_mm + emb.f_txt), atol=1e-6)
    finally:
        from covr_core import combiners

        combiners._REGISTRY.pop("TEST_HALF", None)
