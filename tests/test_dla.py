"""Direct logit attribution against plain-torch references: components summing to the model's
own logit difference, heads plus bias summing to the attention output, one head's attribution
equal to the frozen-scale change when only its z is zeroed (later sub-layers held at their clean
outputs), t-intervals equal to scipy's; on GPT-2, Llama (grouped-query) and GPT-NeoX (parallel
residual), dispatched with disk offload and wrapped by nnsight."""

from __future__ import annotations

import copy

import accelerate
import nnsight
import pytest
import torch
from scipy import stats

from interp_magics import owned_hooks, toy
from interp_magics.core.adapters import adapter_for
from interp_magics.core.anatomy import anatomy
from interp_magics.lens import DLAResult, LensError, dla
from interp_magics.lens.components import head_vectors, projection_bias
from interp_magics.patching.metrics import MetricError, logit_diff, logprob
from interp_magics.testing import gpt2, llama, neox

BUILDERS = {"gpt2": gpt2, "llama": llama, "neox": neox}
VOCAB = 97


@pytest.fixture(scope="module", params=sorted(BUILDERS))
def model(request):
    return BUILDERS[request.param]()


@pytest.fixture(scope="module")
def data():
    g = torch.Generator().manual_seed(5)
    ids = torch.randint(1, VOCAB, (4, 7), generator=g)
    answers = torch.randint(1, VOCAB, (4, 2), generator=g)
    return ids, answers


def _hook_outputs(model, modules, **call):
    """Run ``model`` and return each module's (first) output, read by plain forward hooks."""
    seen, handles = {}, []
    for name, module in modules.items():

        def hook(m, a, out, name=name):
            seen[name] = (out[0] if isinstance(out, tuple) else out).detach()

        handles.append(module.register_forward_hook(hook))
    try:
        out = model(**call)
    finally:
        for h in handles:
            h.remove()
    return seen, out


def _frozen_readout(model, final, scale, direction):
    """The final norm at a frozen scale, then the logit-difference direction (test's own)."""
    norm = model.get_submodule(anatomy(model).final_norm)
    x, weight = final.double(), norm.weight.detach().double()
    if isinstance(norm, torch.nn.LayerNorm):
        y = (x - x.mean(-1, keepdim=True)) / scale[:, None] * weight + norm.bias.detach().double()
    else:
        y = x / scale[:, None] * weight
    return (y * direction).sum(-1)


def _direction(model, answers):
    w = model.get_output_embeddings().weight.detach().double()
    return w[answers[:, 0]] - w[answers[:, 1]]


def test_components_sum_to_the_models_logit_difference(model, data):
    ids, answers = data
    result = dla(model, ids, logit_diff(answers[:, 0], answers[:, 1]))
    logits = model(ids).logits.detach()[:, -1]
    total = logits[torch.arange(4), answers[:, 0]] - logits[torch.arange(4), answers[:, 1]]
    torch.testing.assert_close(result.values.sum(0).float(), total, atol=1e-4, rtol=0)
    torch.testing.assert_close(result.total.float(), total, atol=1e-6, rtol=0)
    anat = anatomy(model)
    kinds = [c.kind for c in result.components]
    assert kinds.count("head") == anat.n_layers * anat.n_heads
    assert kinds.count("mlp") == anat.n_layers
    expected_embeds = ["embed", "pos_embed"] if anat.family == "gpt2" else ["embed"]
    assert [c.name for c in result.components if "embed" in c.kind] == expected_embeds
    # biases: GPT-2 and NeoX projections and norms have them, Llama has none
    has_bias = anat.family != "llama"
    assert ("attn_bias" in kinds) == has_bias and ("norm_bias" in kinds) == has_bias
    assert result.norm == ("RMSNorm" if anat.family == "llama" else "LayerNorm")
    assert anat.parallel == (anat.family == "gpt-neox")  # the parallel residual still adds up
    assert float(result.unexplained.abs().max()) < 1e-4


def test_heads_plus_bias_are_the_attention_output(model, data):
    ids, answers = data
    anat, adapter = anatomy(model), adapter_for(model)
    attn = {
        f"attn{i}": model.get_submodule(adapter.target("attn_out", i).path)
        for i in range(anat.n_layers)
    }
    projections = {
        i: model.get_submodule(adapter.target("head_out", i).path) for i in range(anat.n_layers)
    }
    z = {}
    handles = [
        p.register_forward_pre_hook(lambda m, a, i=i: z.__setitem__(i, a[0].detach()))
        for i, p in projections.items()
    ]
    try:
        outs, _ = _hook_outputs(model, attn, input_ids=ids)
    finally:
        for h in handles:
            h.remove()
    for layer, proj in projections.items():
        heads = head_vectors(proj, z[layer].unflatten(-1, (anat.n_heads, -1)), anat.n_heads)
        bias = projection_bias(proj)
        summed = heads.sum(-2) + (bias if bias is not None else 0)
        torch.testing.assert_close(summed.float(), outs[f"attn{layer}"], atol=1e-5, rtol=0)
    # in logit units too: a layer's heads and bias add up to its attention output, read by the
    # test's own frozen readout
    result = dla(model, ids, (answers[:, 0], answers[:, 1]))
    final = _hook_outputs(model, {"last": model.get_submodule(anat.block(anat.n_layers - 1))},
                          input_ids=ids)[0]["last"][:, -1]  # fmt: skip
    direction = _direction(model, answers)
    for layer in range(anat.n_layers):
        parts = [
            i
            for i, c in enumerate(result.components)
            if c.layer == layer and c.kind in ("head", "attn_bias")
        ]
        ref = _frozen_readout(model, outs[f"attn{layer}"][:, -1], result.scale, direction)
        if anat.family != "llama":  # the norm's bias is its own component, not the layer's
            bias = model.get_submodule(anat.final_norm).bias.detach().double()
            ref = ref - (bias * direction).sum(-1)
        torch.testing.assert_close(result.values[parts].sum(0), ref, atol=1e-5, rtol=0)
    assert result.attn_error < 1e-5
    # the frozen scale is the run's own: the norm at that scale is the norm itself
    norm = model.get_submodule(anat.final_norm)
    ref = (norm(final).detach().double() * direction).sum(-1)
    torch.testing.assert_close(_frozen_readout(model, final, result.scale, direction), ref,
                               atol=1e-5, rtol=0)  # fmt: skip


@pytest.mark.parametrize("layer", [0, -1])
def test_one_heads_attribution_is_its_direct_effect(model, data, layer):
    """Zero one head's z (plain hook on the output projection's input), hold every later
    sub-layer at its clean output, and read the frozen-scale logit difference: the change is
    that head's attribution."""
    ids, answers = data
    anat, adapter = anatomy(model), adapter_for(model)
    n = anat.n_layers
    layer %= n
    head = 1
    result = dla(model, ids, logit_diff(answers[:, 0], answers[:, 1]))
    later = {}
    for i in range(layer, n):
        if i > layer:
            later[f"attn{i}"] = model.get_submodule(adapter.target("attn_out", i).path)
        later[f"mlp{i}"] = model.get_submodule(adapter.target("mlp_out", i).path)
    last = {"last": model.get_submodule(anat.block(n - 1))}
    clean, _ = _hook_outputs(model, {**later, **last}, input_ids=ids)

    def zero_head(m, args):
        z = args[0].clone()
        d = anat.d_head
        z[..., head * d : (head + 1) * d] = 0
        return (z, *args[1:])

    def hold(name):
        def hook(m, a, out):
            if isinstance(out, tuple):
                return (clean[name], *out[1:])
            return clean[name]

        return hook

    handles = [
        model.get_submodule(adapter.target("head_out", layer).path).register_forward_pre_hook(
            zero_head
        )
    ]
    handles += [module.register_forward_hook(hold(name)) for name, module in later.items()]
    try:
        ablated, _ = _hook_outputs(model, last, input_ids=ids)
    finally:
        for h in handles:
            h.remove()
    direction = _direction(model, answers)
    before = _frozen_readout(model, clean["last"][:, -1], result.scale, direction)
    after = _frozen_readout(model, ablated["last"][:, -1], result.scale, direction)
    torch.testing.assert_close(result.value(f"L{layer}H{head}"), before - after, atol=1e-5,
                               rtol=0)  # fmt: skip
    assert float((before - after).abs().max()) > 1e-4  # the head does contribute


def test_intervals_are_student_t_over_examples(data):
    ids, answers = data
    result = dla(gpt2(), ids, answers, level=0.9)
    values = result.values.numpy()
    # GPT-2's projection and norm biases start at 0: no spread, the interval is the mean
    spread = stats.sem(values, axis=1) > 0
    flat = [c.kind for c, s in zip(result.components, spread, strict=True) if not s]
    assert flat == ["attn_bias"] * 3 + ["norm_bias"]
    low, high = stats.t.interval(
        0.9, values.shape[1] - 1, loc=values[spread].mean(1), scale=stats.sem(values[spread], 1)
    )
    keep = torch.from_numpy(spread)
    torch.testing.assert_close(result.ci_low[keep], torch.from_numpy(low), atol=1e-10, rtol=0)
    torch.testing.assert_close(result.ci_high[keep], torch.from_numpy(high), atol=1e-10, rtol=0)
    assert torch.equal(result.ci_low[~keep], result.mean[~keep])
    one = dla(gpt2(), ids[:1], answers[:1])
    assert torch.isinf(one.ci_low).all() and torch.isinf(one.ci_high).all()


def test_padding_and_positions_read_each_examples_own_token():
    model = llama()
    g = torch.Generator().manual_seed(2)
    ids = torch.randint(1, VOCAB, (3, 6), generator=g)
    mask = torch.ones_like(ids)
    mask[0, -2:] = 0
    mask[2, -1:] = 0
    result = dla(model, {"input_ids": ids, "attention_mask": mask}, ([1, 2, 3], 4))
    assert result.positions.tolist() == [3, 5, 4]
    logits = model(input_ids=ids, attention_mask=mask).logits.detach()
    rows = torch.arange(3)
    total = (
        logits[rows, result.positions, torch.tensor([1, 2, 3])] - logits[rows, result.positions, 4]
    )
    torch.testing.assert_close(result.values.sum(0).float(), total, atol=1e-4, rtol=0)
    fixed = dla(model, ids, logit_diff(1, 4, position=2))
    assert fixed.positions.tolist() == [2, 2, 2]
    torch.testing.assert_close(
        fixed.values.sum(0).float(), model(ids).logits.detach()[:, 2, 1] - model(ids).logits.detach()[:, 2, 4],
        atol=1e-4, rtol=0,
    )  # fmt: skip


def test_the_toy_models_induction_heads_carry_the_answer():
    model = toy.load()
    ids = toy.repeated_sequences(12, half=10, seed=1)
    inputs, correct = ids[:, :-1], ids[:, -1]
    wrong = (correct % 48) + 1  # another content token
    result = dla(model, inputs, (correct, wrong))
    top = result.top(4)
    assert set(zip(top["layer"], top["head"], strict=True)) == set(toy.INDUCTION_HEADS)
    assert (top["mean"] > 0).all() and (top["ci_low"] > 0).sum() >= 2
    assert result.heads().shape == (2, 4)
    assert float(result.heads()[1].sum()) > 0.5 * float(result.total.mean())


def test_tables_text_and_picture(data):
    ids, answers = data
    result = dla(gpt2(), ids, answers)
    frame = result.to_dataframe()
    assert list(frame.columns) == ["component", "kind", "layer", "head", "mean", "ci_low",
                                   "ci_high"]  # fmt: skip
    assert len(frame) == len(result.components)
    assert frame["mean"].tolist() == pytest.approx(result.values.mean(1).tolist())
    long = result.to_dataframe(per_example=True)
    assert len(long) == len(result.components) * 4
    row = long[(long.component == "L1H2") & (long.example == 3)]
    assert row["value"].item() == pytest.approx(float(result.value("L1H2")[3]))
    assert (row["layer"].item(), row["head"].item()) == (1, 2)
    top = result.top(3)
    assert top["mean"].abs().tolist() == sorted(frame["mean"].abs(), reverse=True)[:3]
    grid = result.heads()
    assert float(grid[2, 1]) == pytest.approx(float(result.value("L2H1").mean()))
    text = repr(result)
    assert text.startswith("DLAResult: direct logit attribution of the logit difference")
    assert "LayerNorm scale frozen" in text and "95% t-interval" in text
    png = result._repr_png_()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5_000
    assert isinstance(result, DLAResult)


# -- engines: dispatched and nnsight models ---------------------------------------------------


def _dispatched(model, blocks, folder, overlap=False):
    """The same weights dispatched: every other block, the embedding and the head on disk.

    ``overlap`` also names the blocks' list, so accelerate hooks offloaded modules twice
    (a ``SequentialHook``, which ``align_module_device`` alone does not load)."""
    devices = [f"cuda:{i}" for i in range(torch.cuda.device_count())] or ["cpu"]
    base = blocks.split(".")[0]
    dm = {name: "disk" for name, _ in model.named_children() if name != base}
    for name, _ in model.get_submodule(base).named_children():
        if f"{base}.{name}" != blocks:
            dm[f"{base}.{name}"] = devices[0]
    for i in range(len(model.get_submodule(blocks))):
        dm[f"{blocks}.{i}"] = "disk" if i % 2 else devices[i % len(devices)]
    embed = next(p for p, m in model.named_modules() if m is model.get_input_embeddings())
    dm[embed] = "disk"
    if overlap:
        dm[blocks] = devices[0]
    return accelerate.dispatch_model(copy.deepcopy(model), device_map=dm, offload_dir=str(folder))


@pytest.mark.parametrize(
    ("build", "blocks", "overlap"),
    [(gpt2, "transformer.h", False), (llama, "model.layers", False), (gpt2, "transformer.h", True)],
)
def test_dispatched_models_give_the_plain_values(build, blocks, overlap, data, tmp_path):
    ids, answers = data
    plain = build(n_layer=4)
    dispatched = _dispatched(plain, blocks, tmp_path, overlap)
    proj = dispatched.get_submodule(f"{blocks}.1").get_submodule(
        "attn.c_proj" if build is gpt2 else "self_attn.o_proj"
    )
    assert type(proj._hf_hook).__name__ == ("SequentialHook" if overlap else "AlignDevicesHook")
    ref = dla(plain, ids, answers)
    got = dla(dispatched, ids, answers)
    assert got.names == ref.names
    torch.testing.assert_close(got.values, ref.values, atol=1e-5, rtol=0)
    torch.testing.assert_close(got.total, ref.total, atol=1e-5, rtol=0)
    assert owned_hooks() == []


def test_nnsight_models_give_the_plain_values(data):
    ids, answers = data
    plain = gpt2()
    got = dla(nnsight.NNsight(plain), ids, answers)
    ref = dla(plain, ids, answers)
    torch.testing.assert_close(got.values, ref.values, atol=1e-5, rtol=0)
    with pytest.raises(LensError, match="remote=True"):
        dla(nnsight.NNsight(plain), ids, answers, remote=True)


# -- errors before work ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("metric", "error", "message"),
    [
        (logprob(3), LensError, "decomposes a logit difference"),
        (lambda logits: logits[:, -1, 0], LensError, "decomposes a logit difference"),
        ("3,4", LensError, "metric must be patching.logit_diff"),
        (([1, 2, 3], 4), MetricError, "3 correct answer ids for a batch of 4 examples"),
        ((1, 97), MetricError, r"answer token ids \[97\] are outside the model's vocabulary"),
        (logit_diff(1, 2, position=9), MetricError, "metric position 9 is outside the 7 tokens"),
    ],
)
def test_bad_metrics_fail_before_the_forward_pass(data, metric, error, message):
    ids, _ = data
    model = gpt2()
    calls = []
    handle = model.register_forward_pre_hook(lambda *a: calls.append(1))
    try:
        with pytest.raises(error, match=message):
            dla(model, ids, metric)
        with pytest.raises(LensError, match="level must be between 0 and 1"):
            dla(model, ids, (1, 2), level=1.5)
    finally:
        handle.remove()
    assert calls == [] and owned_hooks() == []


def test_unknown_families_are_refused(data, minilm):
    ids, _ = data
    bert, _ = minilm
    with pytest.raises(LensError, match="no lens for this model: .*bert family"):
        dla(bert, ids, (1, 2))


class _ScaledNorm(torch.nn.LayerNorm):
    """A final norm that is not the formula DLA freezes (a Gemma-like ``1 + weight``)."""

    def forward(self, x):
        return super().forward(x) * 2.0


def test_norms_and_blocks_it_cannot_decompose_are_refused(data):
    ids, answers = data
    model = gpt2()
    model.transformer.ln_f = _ScaledNorm(64).eval()
    with pytest.raises(LensError, match=r"final norm \(_ScaledNorm\) does not compute the Layer"):
        dla(model, ids, answers)
    model.transformer.ln_f = torch.nn.Identity()  # no norm the frozen scale knows
    with pytest.raises(LensError, match="final norm is a Identity; .* knows LayerNorm and RMS"):
        dla(model, ids, answers)
    # torch's own RMSNorm is the formula: it decomposes exactly
    model.transformer.ln_f = torch.nn.RMSNorm(64, eps=1e-6)
    torch.nn.init.normal_(model.transformer.ln_f.weight)
    result = dla(model, ids, answers)
    logits = model(ids).logits.detach()[:, -1]
    total = logits.gather(1, answers[:, :1]) - logits.gather(1, answers[:, 1:])
    torch.testing.assert_close(result.values.sum(0).float(), total[:, 0], atol=1e-4, rtol=0)
    # something writes to the residual stream outside attention and MLP: no exact split
    model = gpt2()
    handle = model.transformer.h[1].register_forward_hook(
        lambda m, a, out: (out[0] + 1.0, *out[1:]) if isinstance(out, tuple) else out + 1.0
    )
    try:
        with pytest.raises(LensError, match="do not add up to its last residual stream"):
            dla(model, ids, answers)
    finally:
        handle.remove()
    assert owned_hooks() == []
