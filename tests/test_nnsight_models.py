"""nnsight models (``NNsight(module)``, ``LanguageModel``) run in-process: every analysis accepts
them and gives the HuggingFace path's values; :meth:`Capture.run` captures through a trace (the
path that runs on NDIF with ``remote=True``, which is not reachable from these machines)."""

from __future__ import annotations

import nnsight
import numpy as np
import pytest
import torch

from interp_magics import CaptureBudgetError, CaptureError, capture, owned_hooks
from interp_magics.attention import attention_patterns
from interp_magics.core.traced import execution_order, is_nnsight, unwrap
from interp_magics.patching import ablate, activation_patch
from interp_magics.patching.metrics import logit_diff
from interp_magics.testing import bpe_tokenizer, gpt2, llama

SITES = ["resid_pre", "resid_post", "attn_out", "mlp_out", "head_out"]


def _wrap(kind: str):
    if kind == "NNsight(gpt2)":
        model = gpt2(n_layer=3)
        return model, nnsight.NNsight(model)
    model = llama(n_layer=3)
    if kind == "LanguageModel(llama)":
        # deprecated in nnsight 0.8 in favour of TransformersModel, and still what most code uses
        with pytest.warns(FutureWarning, match="LanguageModel is deprecated"):
            return model, nnsight.LanguageModel(model, tokenizer=bpe_tokenizer())
    return model, nnsight.TransformersModel(model, tokenizer=bpe_tokenizer())


@pytest.fixture(
    scope="module", params=["NNsight(gpt2)", "LanguageModel(llama)", "TransformersModel(llama)"]
)
def pair(request):
    return _wrap(request.param)


@pytest.fixture(scope="module")
def tokens():
    g = torch.Generator().manual_seed(1)
    clean = torch.randint(1, 90, (5, 7), generator=g)
    corrupt = clean.clone()
    corrupt[:, 2] = torch.randint(1, 90, (5,), generator=g)
    answers = torch.randint(1, 90, (5, 2), generator=g)
    return clean, corrupt, logit_diff(answers[:, 0], answers[:, 1])


def test_recognised_and_unwrapped(pair):
    plain, wrapped = pair
    assert is_nnsight(wrapped) and not is_nnsight(plain)
    assert unwrap(wrapped) is plain and unwrap(plain) is plain


def test_a_traced_capture_equals_the_hooked_capture(pair, tokens):
    plain, wrapped = pair
    clean, _, _ = tokens
    with capture(plain, SITES) as ref:
        plain(clean)
    got = capture(wrapped, SITES).run(clean)
    assert sorted(got.keys()) == sorted(ref.keys()) and len(ref.keys()) == 15
    for key in ref:
        torch.testing.assert_close(got[key], ref[key], atol=1e-5, rtol=0)
    torch.testing.assert_close(got.input_ids, clean)
    assert owned_hooks() == []


def test_positions_are_selected_inside_the_trace(pair, tokens):
    plain, wrapped = pair
    clean, _, _ = tokens
    mask = torch.ones_like(clean)
    mask[0, -2:] = 0
    batch = {"input_ids": clean, "attention_mask": mask}
    with capture(plain, "resid_post", positions=[0, -1]) as ref:
        plain(**batch)
    got = capture(wrapped, "resid_post", positions=[0, -1]).run(batch)
    assert got["resid_post.1"].shape == (5, 2, plain.config.hidden_size)
    assert got.positions == ref.positions == (0, 6)
    for key in ref:
        torch.testing.assert_close(got[key], ref[key], atol=1e-5, rtol=0)
    torch.testing.assert_close(got.attention_mask, mask)


def test_the_context_manager_hooks_the_wrapped_module_during_a_local_trace(pair, tokens):
    plain, wrapped = pair
    clean, _, _ = tokens
    with capture(plain, "resid_post") as ref:
        plain(clean)
    with capture(wrapped, "resid_post") as got, wrapped.trace(clean):
        pass
    for key in ref:
        torch.testing.assert_close(got[key], ref[key], atol=1e-5, rtol=0)
    assert owned_hooks() == []


def test_the_memory_guard_refuses_a_trace_before_it_runs(pair, tokens):
    plain, wrapped = pair
    clean, _, _ = tokens
    calls = []
    handle = plain.register_forward_pre_hook(lambda *a: calls.append(1))
    try:
        with pytest.raises(CaptureBudgetError):
            capture(wrapped, "resid_post", max_bytes=1000).run(clean)
    finally:
        handle.remove()
    assert calls == []


def test_trace_errors_are_clear(pair, tokens):
    _, wrapped = pair
    clean, _, _ = tokens
    with pytest.raises(CaptureError, match="matches no module"):
        capture(wrapped, "transformer.nope.*")
    with pytest.raises(CaptureError, match="token ids or a tokenizer's output"):
        capture(wrapped, "resid_post").run([1, 2, 3])
    with pytest.raises(CaptureError, match="needs an nnsight model"):
        capture(unwrap(wrapped), "resid_post").run(clean, remote=True)


def test_execution_order_puts_inputs_before_outputs_and_blocks_in_order(pair):
    plain, _ = pair
    from interp_magics.core.targets import resolve_targets

    targets, _ = resolve_targets(plain, ["resid_post", "resid_pre", "mlp_out", "attn_out"])
    ordered = [t.key for t in execution_order(plain, targets)]
    assert ordered[:4] == ["resid_pre.0", "attn_out.0", "mlp_out.0", "resid_post.0"]
    assert ordered.index("resid_post.0") < ordered.index("resid_pre.1")


@pytest.mark.filterwarnings("ignore:the clean-corrupted gap")
@pytest.mark.parametrize("method", ["exact", "attribution"])
def test_patching_and_ablation_accept_nnsight_models(pair, tokens, method):
    plain, wrapped = pair
    clean, corrupt, metric = tokens
    kw = dict(method=method, progress=False, flips=999)
    ref = activation_patch(plain, clean, corrupt, metric, **kw)
    got = activation_patch(wrapped, clean, corrupt, metric, **kw)
    torch.testing.assert_close(got.raw, ref.raw, atol=1e-5, rtol=0)
    torch.testing.assert_close(got.per_example, ref.per_example, atol=1e-5, rtol=0)
    ref = ablate(plain, clean, metric=metric, progress=False, flips=999)
    got = ablate(wrapped, clean, metric=metric, progress=False, flips=999)
    torch.testing.assert_close(got.values, ref.values, atol=1e-5, rtol=0)


def test_attention_view_accepts_nnsight_models(pair, tokens):
    plain, wrapped = pair
    clean, _, _ = tokens
    ref, got = attention_patterns(plain, clean), attention_patterns(wrapped, clean)
    torch.testing.assert_close(got.pattern, ref.pattern, atol=1e-5, rtol=0)
    traced = attention_patterns(wrapped, clean, trace=True)
    torch.testing.assert_close(traced.pattern, ref.pattern, atol=1e-5, rtol=0)


@pytest.mark.parametrize("build", ["gpt2", "neox", "llama"])
def test_patterns_through_a_trace_equal_the_eager_weights(build, tokens):
    """sdpa gives no weights: queries, keys and rotary are saved and the softmax done here."""
    from interp_magics import testing

    plain = getattr(testing, build)(n_layer=2)
    wrapped = nnsight.NNsight(plain)
    clean, _, _ = tokens
    mask = torch.ones_like(clean)
    mask[1, :2] = 0  # left padding: those query rows attend to nothing real
    batch = {"input_ids": clean, "attention_mask": mask}
    got = capture(wrapped, ["pattern", "resid_post.1"], positions=[3, -1]).run(batch)
    with torch.no_grad(), capture(plain, ["pattern", "resid_post.1"], positions=[3, -1]) as ref:
        plain(**batch)
    assert sorted(got.keys()) == sorted(ref.keys()) == ["pattern.0", "pattern.1", "resid_post.1"]
    assert got["pattern.1"].shape == (5, plain.config.num_attention_heads, 2, 7)
    real = mask.bool()[:, None, [3, -1], None].expand_as(ref["pattern.1"])
    for key in ("pattern.0", "pattern.1"):
        torch.testing.assert_close(got[key][real], ref[key][real], atol=1e-5, rtol=0)
        rows = got[key].sum(-1)
        torch.testing.assert_close(rows, torch.ones_like(rows), atol=1e-5, rtol=0)
    torch.testing.assert_close(got["resid_post.1"], ref["resid_post.1"], atol=1e-5, rtol=0)
    assert owned_hooks() == []


def test_patterns_through_a_trace_refuse_what_they_cannot_recompute(tokens):
    plain = llama(n_layer=2)
    plain.config.sliding_window = 4
    with pytest.raises(CaptureError, match="sliding_window"):
        capture(nnsight.NNsight(plain), "pattern").run(tokens[0])


@pytest.mark.filterwarnings("ignore:the clean-corrupted gap")
@pytest.mark.parametrize(
    ("site", "by", "metric_name", "direction"),
    [
        ("resid_pre", ("layer", "pos"), "logit_diff", "denoising"),
        ("attn_out", ("layer", "pos"), "kl_to_clean", "noising"),
        ("mlp_out", ("layer",), "logprob", "denoising"),
        ("resid_post", ("layer",), "logit_diff", "noising"),
        ("head_out", ("layer", "head"), "logit_diff", "denoising"),
        ("head_out", ("layer", "head", "pos"), "logprob", "noising"),
    ],
)
def test_patching_through_traces_equals_the_hooked_sweep(
    pair, tokens, site, by, metric_name, direction
):
    from interp_magics.patching.metrics import kl_to_clean, logprob

    plain, wrapped = pair
    clean, corrupt, diff = tokens
    metric = {"logit_diff": diff, "kl_to_clean": kl_to_clean(), "logprob": logprob(diff.correct)}[
        metric_name
    ]
    kw = dict(site=site, by=by, direction=direction, progress=False, flips=999)
    ref = activation_patch(plain, clean, corrupt, metric, **kw)
    forwards = []
    handle = plain.register_forward_pre_hook(lambda *a: forwards.append(1))
    try:
        # 35 tokens a trace: one cell (5 examples x 7 tokens) at a time
        got = activation_patch(wrapped, clean, corrupt, metric, trace=True, batch_tokens=70, **kw)
    finally:
        handle.remove()
    cells = ref.values.numel()
    assert len(forwards) == 2 + -(-cells // 2)  # two reference traces, then two cells a trace
    torch.testing.assert_close(got.per_example, ref.per_example, atol=1e-5, rtol=0)
    torch.testing.assert_close(got.raw, ref.raw, atol=1e-5, rtol=0)
    # token labels come from the wrapper's tokenizer where it has one
    assert got.labels.keys() == ref.labels.keys() and got.labels["layer"] == ref.labels["layer"]
    assert got.method == "exact" and got.site == site
    torch.testing.assert_close(got.p_corrected, ref.p_corrected, atol=0.01, rtol=0)
    assert owned_hooks() == []


@pytest.mark.filterwarnings("ignore:the clean-corrupted gap")
@pytest.mark.parametrize(
    ("site", "by", "metric_name", "direction"),
    [
        ("resid_pre", ("layer", "pos"), "logit_diff", "denoising"),
        ("attn_out", ("layer",), "logprob", "noising"),
        ("head_out", ("layer", "head"), "logprob", "denoising"),
    ],
)
def test_attribution_through_one_trace_equals_the_hooked_attribution(
    pair, tokens, site, by, metric_name, direction
):
    from interp_magics.patching.metrics import kl_to_clean, logprob

    plain, wrapped = pair
    clean, corrupt, diff = tokens
    metric = {"logit_diff": diff, "kl_to_clean": kl_to_clean(), "logprob": logprob(diff.correct)}[
        metric_name
    ]
    kw = dict(site=site, by=by, direction=direction, progress=False, flips=999)
    ref = activation_patch(plain, clean, corrupt, metric, method="attribution", **kw)
    forwards = []
    handle = plain.register_forward_pre_hook(lambda *a: forwards.append(1))
    try:
        got = activation_patch(
            wrapped, clean, corrupt, metric, method="attribution", trace=True, **kw
        )
    finally:
        handle.remove()
    assert len(forwards) == 3  # two reference traces, then one with its backward
    torch.testing.assert_close(got.per_example, ref.per_example, atol=1e-5, rtol=0)
    assert got.method == "attribution"
    assert owned_hooks() == []


@pytest.mark.filterwarnings("ignore:the clean-corrupted gap")
def test_traced_attribution_is_verified_by_traced_exact_patching(pair, tokens):
    plain, wrapped = pair
    clean, corrupt, metric = tokens
    kw = dict(site="resid_pre", method="attribution", verify_top=3, progress=False, flips=999)
    ref = activation_patch(plain, clean, corrupt, metric, **kw)
    got = activation_patch(wrapped, clean, corrupt, metric, trace=True, **kw)
    for part in (got.verification, got.verification["random"]):
        want = ref.verification if part is got.verification else ref.verification["random"]
        assert [(c["layer"], c["pos"]) for c in part["cells"]] == [
            (c["layer"], c["pos"]) for c in want["cells"]
        ]
        np.testing.assert_allclose(
            [c["exact"] for c in part["cells"]], [c["exact"] for c in want["cells"]], atol=1e-5
        )
    assert got.verification["summary"].startswith("attribution checked by exact patching")


@pytest.mark.filterwarnings("ignore:the clean-corrupted gap")
def test_traced_attribution_reaches_frozen_weights(tokens):
    from nnsight import NNsight

    clean, corrupt, metric = tokens
    plain = gpt2()
    for p in plain.parameters():
        p.requires_grad_(False)
    kw = dict(method="attribution", progress=False, flips=999)
    ref = activation_patch(plain, clean, corrupt, metric, **kw)
    got = activation_patch(NNsight(plain), clean, corrupt, metric, trace=True, **kw)
    torch.testing.assert_close(got.per_example, ref.per_example, atol=1e-5, rtol=0)
    assert float(got.per_example.std()) > 0


def test_traced_patching_refuses_what_it_cannot_run(pair, tokens):
    from interp_magics.patching.inputs import PatchingError

    plain, wrapped = pair
    clean, corrupt, metric = tokens
    cases = [(dict(corrupt=None, noise=3.0), "noise corruption is not traced")]
    for kw, message in cases:
        args = {"corrupt": corrupt, **kw}
        with pytest.raises(PatchingError, match=message):
            activation_patch(wrapped, clean, args.pop("corrupt"), metric, trace=True, **args)
    with pytest.raises(PatchingError, match="need an nnsight model"):
        activation_patch(plain, clean, corrupt, metric, remote=True)
    with pytest.raises(PatchingError, match="could not be found"):
        activation_patch(wrapped, clean, corrupt, lambda logits: logits.mean((1, 2)), trace=True)


@pytest.mark.parametrize(
    ("kind", "site", "by"),
    [
        ("mean", "attn_out", ("layer",)),
        ("resample", "attn_out", ("layer", "pos")),
        ("mean", "head_out", ("layer", "head")),
    ],
)
def test_ablation_through_traces_equals_the_hooked_sweep(pair, tokens, kind, site, by):
    plain, wrapped = pair
    clean, _, metric = tokens
    kw = dict(sites=site, kind=kind, by=by, metric=metric, resamples=2, progress=False)
    ref = ablate(plain, clean, flips=999, **kw)
    got = ablate(wrapped, clean, flips=999, trace=True, batch_tokens=70, **kw)
    torch.testing.assert_close(got.per_example, ref.per_example, atol=1e-5, rtol=0)
    torch.testing.assert_close(got.values, ref.values, atol=1e-5, rtol=0)
    assert got.method == ref.method == f"{kind}-ablation" and got.corruption == ref.corruption
    with pytest.raises(CaptureError, match="need an nnsight model"):
        ablate(plain, clean, remote=True, **kw)
