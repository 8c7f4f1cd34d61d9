"""Training a small SAE offline on the toy model, saving and loading it through sae-lens.

The report's numbers are checked against the same quantities computed here from the SAE's own
``encode``/``decode`` on activations read with ``output_hidden_states``.
"""

from __future__ import annotations

import time

import pytest
import torch
from sae_lens import SAE, StandardSAE, TopKSAE

from interp_magics import toy
from interp_magics.features import FeatureError, attach_sae, load_sae, train_sae


@pytest.fixture(scope="module")
def model():
    return toy.load()


def _resid0(model, ids):
    with torch.no_grad():
        return model(ids, output_hidden_states=True).hidden_states[1].reshape(-1, 64)


def test_a_trained_sae_explains_the_residual_stream_and_round_trips_through_sae_lens(
    model, tmp_path
):
    data = toy.repeated_sequences(200, seed=1)
    threads = torch.get_num_threads()
    start = time.perf_counter()
    sae, report = train_sae(
        model, data, "resid_post.0", d_sae=256, steps=400, batch_size=256, progress=False
    )
    seconds = time.perf_counter() - start
    print(f"train_sae: 400 steps on {report.n_tokens} tokens in {seconds:.2f} s, {report}")
    assert torch.get_num_threads() == threads  # the one-thread loop restores the setting
    assert isinstance(sae, StandardSAE)
    assert report.evaluated_on == "held-out" and report.n_eval_tokens == 20 * 33
    assert report.fve > 0.8
    # By hand, on every token (the held-out part is a tenth of them).
    x = _resid0(model, data)
    f = sae.encode(x)
    recon = sae.decode(f)
    fve = 1 - ((recon - x) ** 2).sum() / ((x - x.mean(0)) ** 2).sum()
    assert fve > 0.8
    assert report.dead == int((f > 0).sum(0).eq(0).sum())
    assert len(report.losses) == 400 and report.losses[-1] < report.losses[0]
    assert report.to_dataframe().shape == (400, 2)
    assert report._repr_png_().startswith(b"\x89PNG")
    # Decoder rows are unit norm (renormalised each step; the scale is folded elsewhere).
    assert torch.allclose(sae.W_dec.norm(dim=-1), torch.ones(256), atol=1e-5)

    sae.save_model(tmp_path / "sae")
    for loaded in (SAE.load_from_disk(tmp_path / "sae"), load_sae(tmp_path / "sae")):
        assert torch.equal(loaded.encode(x), f)
        assert loaded.cfg.metadata.hook_name == "resid_post.0"
    fs = attach_sae(model, load_sae(tmp_path / "sae"))  # the site comes from the metadata
    try:
        assert fs.key == "sae:resid_post.0"
    finally:
        fs.detach()


def test_a_topk_sae_keeps_k_features_per_token(model):
    data = toy.repeated_sequences(60, seed=2)
    sae, report = train_sae(
        model,
        data,
        "resid_post.0",
        d_sae=128,
        steps=200,
        batch_size=256,
        architecture="topk",
        k=6,
        progress=False,
    )
    assert isinstance(sae, TopKSAE)
    f = sae.encode(_resid0(model, data))
    active = (f > 0).sum(-1).float()
    assert active.max() <= 6
    assert report.evaluated_on == "held-out"  # 6 of the 60 sequences
    assert 0 < report.l0 <= 6


def test_bad_training_and_loading_input_is_refused(model, tmp_path):
    ids = toy.repeated_sequences(4)
    for kwargs, message in [
        ({"steps": 0}, "steps must be a positive integer"),
        ({"architecture": "gated"}, "architecture must be"),
        ({"architecture": "topk"}, "needs k"),
        ({"l1": -1.0}, "l1 must be"),
        ({"d_sae": 16, "architecture": "topk", "k": 17}, "k must be between"),
    ]:
        with pytest.raises(FeatureError, match=message):
            train_sae(model, ids, "resid_post.0", progress=False, **kwargs)
    with pytest.raises(FeatureError, match="names 2 tensors"):
        train_sae(model, ids, "resid_post", progress=False)
    with pytest.raises(FeatureError, match="not a folder"):
        load_sae(tmp_path / "missing")
    with pytest.raises(FeatureError, match="no cfg.json"):
        load_sae(tmp_path)
    with pytest.raises(FeatureError, match="no published SAE release"):
        load_sae("gpt2-smal-res-jb", "blocks.8.hook_resid_pre")
    with pytest.raises(FeatureError, match="has no SAE"):
        load_sae("gpt2-small-res-jb", "blocks.99.hook_resid_pre")
    # These machines are offline (HF_HUB_OFFLINE=1): the error says how to load it offline.
    with pytest.raises(FeatureError, match="save_model"):
        load_sae("gpt2-small-res-jb", "blocks.8.hook_resid_pre")
