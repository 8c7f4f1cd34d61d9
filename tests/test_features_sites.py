"""SAE features as sites: spliced in without changing the model, captured, edited, refused.

References are computed in the tests from the plain model (``output_hidden_states``, hooks
written here) and the SAE's own ``encode``/``decode``.
"""

from __future__ import annotations

import pytest
import torch
from sae_lens import (
    StandardSAE,
    StandardSAEConfig,
    TopKSAE,
    TopKSAEConfig,
    Transcoder,
    TranscoderConfig,
)
from sae_lens.saes.sae import SAEMetadata

from interp_magics import capture, owned_hooks, probes, testing, toy
from interp_magics.core.modules import attachments
from interp_magics.features import (
    FeatureError,
    FeatureSplice,
    ablate_features,
    attach_sae,
    detach_sae,
    spliced,
)


def _sae(d_in: int = 64, d_sae: int = 128, seed: int = 0, **kw) -> StandardSAE:
    torch.manual_seed(seed)
    sae = StandardSAE(StandardSAEConfig(d_in=d_in, d_sae=d_sae, **kw))
    with torch.no_grad():  # a nonzero decoder bias and encoder bias, so both are exercised
        sae.b_dec.normal_(0, 0.1)
        sae.b_enc.normal_(0, 0.1)
    return sae


MODELS = {  # builder, vocabulary, site, index of the site in hidden_states
    "gpt2": (testing.gpt2, 97, "resid_post.1", 2),
    "llama": (testing.llama, 97, "resid_post.1", 2),
    # The toy model has 2 layers: hidden_states[2] is after its final norm.
    "toy": (toy.load, len(toy.VOCAB), "resid_post.0", 1),
}


@pytest.mark.parametrize("name", ["gpt2", "llama", "toy"])
def test_a_spliced_sae_changes_no_logit_and_its_features_are_the_encoding(name):
    build, vocab, site, hidden_index = MODELS[name]
    model = build()
    ids = torch.randint(1, vocab, (3, 10), generator=torch.Generator().manual_seed(2))
    sae = _sae()
    with torch.no_grad():
        out = model(ids, output_hidden_states=True)
        plain, hidden = out.logits, out.hidden_states[hidden_index]
        names = [n for n, _ in model.named_modules()]
        with spliced(model, sae, site) as fs:
            assert fs.key == f"sae:{site}"
            assert [n for n, _ in model.named_modules()] == names
            quiet = model(ids).logits  # nothing hooks the features: one decode
            with capture(model, [fs.key, fs.error_key]) as cache:
                watched = model(ids).logits  # hooked: the unedited features are kept aside
        assert attachments(model) == {}
    assert (quiet - plain).abs().max() < 1e-5
    assert (watched - plain).abs().max() < 1e-5
    expected = sae.encode(hidden)
    assert cache[fs.key].shape == (3, 10, 128)
    assert torch.allclose(cache[fs.key], expected, atol=1e-6)
    assert torch.allclose(cache[fs.error_key], hidden - sae.decode(expected), atol=1e-5)


@pytest.mark.parametrize("kind", ["standard", "layer_norm", "topk", "in_place"])
def test_an_edit_of_the_features_changes_the_site_by_the_decoders_change(kind):
    model = testing.llama()
    ids = torch.randint(1, 97, (2, 7), generator=torch.Generator().manual_seed(3))
    torch.manual_seed(1)
    if kind == "topk":
        sae = TopKSAE(TopKSAEConfig(d_in=64, d_sae=96, k=12))
    else:
        norm = "layer_norm" if kind == "layer_norm" else "none"
        sae = _sae(d_sae=96, normalize_activations=norm)
    scale = torch.linspace(0.0, 2.0, 96)

    def by_hand(mod, args, output):  # the splice, written out: x + decode(f') - decode(f)
        x = output[0] if isinstance(output, tuple) else output
        f = sae.encode(x)
        recon = sae.decode(f)  # layer_norm SAEs decode once per encode
        edited = sae.decode(sae.encode(x) * scale)
        y = x + edited - recon
        return (y, *output[1:]) if isinstance(output, tuple) else y

    with torch.no_grad():
        handle = model.model.layers[1].register_forward_hook(by_hand)
        try:
            reference = model(ids).logits
        finally:
            handle.remove()
        with spliced(model, sae, "resid_post.1") as fs:

            def in_place(mod, args, f):  # edits the features and returns None
                f.mul_(scale)

            hook = in_place if kind == "in_place" else (lambda m, a, f: f * scale)
            edit = fs.splice.features.register_forward_hook(hook)
            try:
                edited = model(ids).logits
            finally:
                edit.remove()
    assert (edited - reference).abs().max() < 1e-5


def test_a_transcoder_reads_its_input_site_and_writes_its_output_site():
    model = testing.gpt2()
    ids = torch.randint(1, 97, (2, 8), generator=torch.Generator().manual_seed(4))
    torch.manual_seed(0)
    tc = Transcoder(TranscoderConfig(d_in=64, d_sae=80, d_out=64, apply_b_dec_to_input=False))
    seen = {}

    def keep_input(mod, args):
        seen["x"] = args[0]

    def zero_feature_5(mod, args, out):  # by hand: out - f_5 * W_dec[5]
        f = tc.encode(seen["x"])
        return out - f[..., 5:6] * tc.W_dec[5]

    mlp = model.transformer.h[1].mlp
    with torch.no_grad():
        plain = model(ids).logits
        h1 = mlp.register_forward_pre_hook(keep_input)
        h2 = mlp.register_forward_hook(zero_feature_5)
        try:
            reference = model(ids).logits
        finally:
            h1.remove()
            h2.remove()
        with spliced(model, tc, "mlp_out.1", input_site="transformer.h.1.mlp:input") as fs:
            assert fs.input_site == "transformer.h.1.mlp:input"
            cache = capture(model, [fs.key, "transformer.h.1.mlp"], inputs=True).run(ids)
            unedited = model(ids).logits

            def zero(mod, args, f):
                f = f.clone()
                f[..., 5] = 0
                return f

            handle = fs.splice.features.register_forward_hook(zero)
            try:
                edited = model(ids).logits
            finally:
                handle.remove()
    assert (unedited - plain).abs().max() < 1e-5
    assert torch.allclose(cache[fs.key], tc.encode(cache["transformer.h.1.mlp:input"]), atol=1e-6)
    assert (edited - reference).abs().max() < 1e-5


def test_the_site_comes_from_the_saes_metadata_and_detaching_restores_everything():
    model = testing.gpt2()
    ids = torch.randint(1, 97, (2, 6), generator=torch.Generator().manual_seed(5))
    tl_named = _sae(metadata=SAEMetadata(hook_name="blocks.2.hook_resid_pre"))
    ours = _sae(seed=1, metadata=SAEMetadata(hook_name="mlp_out.0"))
    with torch.no_grad():
        plain = model(ids).logits
        a = attach_sae(model, tl_named)
        b = attach_sae(model, ours)
        assert (a.key, a.site, a.residual) == ("sae:resid_pre.2", "resid_pre.2", True)
        assert (b.key, b.site) == ("sae:mlp_out.0", "mlp_out.0")
        assert len(owned_hooks()) == 2
        assert isinstance(attachments(model)["sae:resid_pre.2"].module, FeatureSplice)
        assert detach_sae(model, "resid_pre.2") == 1  # by its site
        assert not a.attached and b.attached
        assert detach_sae(model) == 1
    assert owned_hooks() == []
    assert torch.equal(model(ids).logits, plain)


def test_bad_saes_and_sites_are_refused_before_anything_is_attached():
    model = testing.gpt2()
    cases = [
        (_sae(d_in=32), "resid_post.1", "width 32"),
        (_sae(), "resid_post", "names 3 tensors"),
        (_sae(), "pattern.1", "attention patterns"),
        (_sae(), "resid_post.7", "out of range"),
        (_sae(), "transformer.h.1.nope", "matches no module"),
        (_sae(normalize_activations="expected_average_only_in"), "resid_post.1", "fold it"),
        (torch.nn.Linear(64, 64), "resid_post.1", "expected a sae-lens SAE"),
        (_sae(), None, "give the site"),
    ]
    for sae, site, message in cases:
        with pytest.raises(FeatureError, match=message):
            attach_sae(model, sae, site)
    z = _sae(metadata=SAEMetadata(hook_name="blocks.0.attn.hook_z"), reshape_activations="hook_z")
    with pytest.raises(FeatureError, match="turn_off_forward_pass_hook_z_reshaping"):
        attach_sae(model, z)
    z.turn_off_forward_pass_hook_z_reshaping()
    ids = torch.randint(1, 97, (2, 5), generator=torch.Generator().manual_seed(6))
    with torch.no_grad():
        plain = model(ids).logits
        with spliced(model, z) as fs:  # then it reads head_out.0: the heads' outputs, flattened
            assert fs.site == "head_out.0"
            assert (model(ids).logits - plain).abs().max() < 1e-5
    tc = Transcoder(TranscoderConfig(d_in=64, d_sae=8, d_out=64, apply_b_dec_to_input=False))
    with pytest.raises(FeatureError, match="give input_site"):
        attach_sae(model, tc, "mlp_out.1")
    with pytest.raises(FeatureError, match="input_site is for transcoders"):
        attach_sae(model, _sae(), "mlp_out.1", input_site="transformer.h.1.mlp:input")
    with pytest.raises(FeatureError, match="no SAE is attached"):
        ablate_features(model, torch.ones(1, 3, dtype=torch.long), "resid_post.1", [0], lambda x: x)
    assert attachments(model) == {}
    assert owned_hooks() == []


def test_probes_accept_captured_features():
    model = toy.load()
    ids = toy.repeated_sequences(40, seed=3)
    sae = _sae(d_sae=256)
    with spliced(model, sae, "resid_post.0") as fs:
        feats = capture(model, fs.key).run(ids)[fs.key]
    X = feats[:, 1:17].reshape(-1, 256).numpy()  # the first half: each token once per sequence
    y = (ids[:, 1:17].reshape(-1) <= 24).numpy()  # which half of the alphabet the token is in
    report = probes.probe(X, y, n_permutations=50, seed=0)
    assert report.n_examples == len(y) == 640
    assert report.accuracy == pytest.approx(float((report.predictions == report.labels).mean()))
    # the token's identity is in the residual stream after block 0, and in 256 ReLU features of it
    assert report.accuracy > 0.85
    assert report.p_value < 0.05


def test_the_sae_moves_to_the_sites_dtype_at_call_time():
    model = testing.gpt2().double()
    ids = torch.randint(1, 97, (2, 6), generator=torch.Generator().manual_seed(7))
    sae = _sae()
    with torch.no_grad():
        out = model(ids, output_hidden_states=True)
        expected = sae.encode(out.hidden_states[2].float()).double()  # float32, before splicing
        with spliced(model, sae, "resid_post.1") as fs:
            cache = capture(model, fs.key).run(ids)
            spliced_logits = model(ids).logits
    assert sae.W_dec.dtype == torch.float64 and sae.cfg.dtype == "float64"
    assert cache[fs.key].dtype == torch.float64
    assert torch.allclose(cache[fs.key], expected, atol=1e-5)
    assert (spliced_logits - out.logits).abs().max() < 1e-12
