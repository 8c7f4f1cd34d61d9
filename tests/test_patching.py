"""Activation patching and ablation against independent one-forward-per-cell references."""

import pytest
import torch

from interp_magics import owned_hooks, patching
from interp_magics.patching import PatchingError
from interp_magics.patching.metrics import MetricError

B, T = 3, 8
CORRECT, WRONG = torch.tensor([5, 6, 7]), torch.tensor([8, 9, 10])


def inputs(seed=0, flip=3):
    g = torch.Generator().manual_seed(seed)
    clean = torch.randint(1, 90, (B, T), generator=g)
    corrupt = clean.clone()
    corrupt[:, flip] = (corrupt[:, flip] + 11) % 90 + 1
    return clean, corrupt


def ld(logits, pos=-1):
    lg = logits[:, pos]
    n = torch.arange(lg.shape[0])
    return lg[n, CORRECT] - lg[n, WRONG]


def blocks(model):
    return model.transformer.h if hasattr(model, "transformer") else model.model.layers


def site_module(model, site, layer):
    block = blocks(model)[layer]
    if site in ("resid_pre", "resid_post"):
        return block
    if hasattr(block, "attn"):  # GPT-2
        return {"attn_out": block.attn, "mlp_out": block.mlp, "head_out": block.attn.c_proj}[site]
    return {"attn_out": block.self_attn, "mlp_out": block.mlp, "head_out": block.self_attn.o_proj}[
        site
    ]


def record(model, ids, site, layer):
    """The activation at a site in one plain forward, recorded with a hook of the test's own."""
    box = {}
    mod = site_module(model, site, layer)
    if site in ("resid_pre", "head_out"):
        h = mod.register_forward_pre_hook(lambda m, a: box.__setitem__("x", a[0].detach().clone()))
    else:
        h = mod.register_forward_hook(
            lambda m, a, o: box.__setitem__(
                "x", (o if isinstance(o, torch.Tensor) else o[0]).detach().clone()
            )
        )
    with torch.no_grad():
        model(ids)
    h.remove()
    return box["x"]


def reference(model, run_ids, src_ids, site, layer, pos=None, head=None, n_heads=4, metric=ld):
    """One full forward of run_ids with one cell replaced by its value from src_ids."""
    src = record(model, src_ids, site, layer)

    def put(x):
        x = x.clone()
        if head is not None:
            v, s = x.view(*x.shape[:2], n_heads, -1), src.view(*src.shape[:2], n_heads, -1)
            if pos is None:
                v[:, :, head] = s[:, :, head]
            else:
                v[:, pos, head] = s[:, pos, head]
        elif pos is None:
            x[:] = src
        else:
            x[:, pos] = src[:, pos]
        return x

    mod = site_module(model, site, layer)
    if site in ("resid_pre", "head_out"):
        h = mod.register_forward_pre_hook(lambda m, a: (put(a[0]), *a[1:]))
    else:
        h = mod.register_forward_hook(
            lambda m, a, o: put(o) if isinstance(o, torch.Tensor) else (put(o[0]), *o[1:])
        )
    with torch.no_grad():
        out = metric(model(run_ids).logits)
    h.remove()
    return out


@pytest.mark.parametrize("family", ["gpt2", "llama"])
@pytest.mark.parametrize(
    ("site", "by"),
    [
        ("resid_pre", ("layer", "pos")),
        ("resid_post", ("layer", "pos")),
        ("attn_out", ("layer", "pos")),
        ("mlp_out", ("layer",)),
        ("head_out", ("layer", "head")),
        ("head_out", ("layer", "head", "pos")),
    ],
)
@pytest.mark.parametrize("direction", ["denoising", "noising"])
def test_exact_sweep_equals_one_forward_per_cell(family, site, by, direction, gpt2, llama):
    model = {"gpt2": gpt2, "llama": llama}[family]
    clean, corrupt = inputs()
    result = patching.activation_patch(
        model,
        clean,
        corrupt,
        patching.logit_diff(CORRECT, WRONG),
        site=site,
        by=by,
        direction=direction,
        progress=False,
    )
    run_ids, src_ids = (corrupt, clean) if direction == "denoising" else (clean, corrupt)
    layers = range(3)
    heads = range(4) if "head" in by else [None]
    positions = range(T) if "pos" in by else [None]
    worst = 0.0
    for layer in layers:
        for head in heads:
            for pos in positions:
                ref = reference(model, run_ids, src_ids, site, layer, pos, head)
                idx = (
                    [layer]
                    + ([head] if head is not None else [])
                    + ([pos] if pos is not None else [])
                )
                worst = max(worst, float((result.per_example[tuple(idx)] - ref).abs().max()))
    assert worst < 1e-5
    assert result.direction == direction and result.per_example.shape[-1] == B
    with torch.no_grad():
        clean_ld, corrupt_ld = (
            float(ld(model(clean).logits).mean()),
            float(ld(model(corrupt).logits).mean()),
        )
    assert result.clean_baseline == pytest.approx(clean_ld, abs=1e-5)
    assert result.corrupt_baseline == pytest.approx(corrupt_ld, abs=1e-5)


def test_normalisation_and_whole_stream_patches(gpt2):
    clean, corrupt = inputs()
    metric = patching.logit_diff(CORRECT, WRONG)
    r = patching.activation_patch(gpt2, clean, corrupt, metric, by=("layer",), progress=False)
    # Patching the whole residual stream restores the clean run exactly: normalised value 1.
    torch.testing.assert_close(r.values, torch.ones(3), atol=1e-5, rtol=0)
    expected = (r.raw - r.corrupt_baseline) / (r.clean_baseline - r.corrupt_baseline)
    torch.testing.assert_close(r.values, expected)
    full = patching.activation_patch(gpt2, clean, corrupt, metric, progress=False)
    # positions before the corrupted token are identical in both runs: exactly the baseline
    assert torch.equal(
        full.per_example[:, :3],
        r.corrupt_per_example.expand(3, 3, B),
    )
    assert torch.all(full.values[:, :3] == 0)
    noising = patching.activation_patch(
        gpt2, clean, corrupt, metric, by=("layer",), direction="noising", progress=False
    )
    torch.testing.assert_close(noising.values, torch.zeros(3), atol=1e-5, rtol=0)


@pytest.mark.parametrize("name", ["logprob", "kl", "callable"])
def test_other_metrics(gpt2, name):
    clean, corrupt = inputs()
    answer = torch.tensor([4, 4, 4])

    def lp(logits):
        return logits[:, -1].log_softmax(-1)[torch.arange(B), answer]

    def kl(logits):
        ref = gpt2(clean).logits[:, -1].log_softmax(-1)
        return (ref.exp() * (ref - logits[:, -1].log_softmax(-1))).sum(-1)

    metric, fn = {
        "logprob": (patching.logprob(answer), lp),
        "kl": (patching.kl_to_clean(), kl),
        "callable": (lp, lp),
    }[name]
    r = patching.activation_patch(gpt2, clean, corrupt, metric, site="attn_out", progress=False)
    for layer in range(3):
        for pos in (3, 7):
            ref = reference(gpt2, corrupt, clean, "attn_out", layer, pos, metric=fn)
            torch.testing.assert_close(r.per_example[layer, pos], ref, atol=2e-5, rtol=0)
    if name == "kl":
        assert r.clean_baseline == pytest.approx(0, abs=1e-6) and r.corrupt_baseline > 0
        whole = patching.activation_patch(
            gpt2, clean, corrupt, metric, by=("layer",), progress=False
        )
        torch.testing.assert_close(whole.values, torch.ones(3), atol=1e-4, rtol=0)


def test_attribution_equals_gradient_times_difference(gpt2):
    clean, corrupt = inputs()
    metric = patching.logit_diff(CORRECT, WRONG)
    r = patching.activation_patch(
        gpt2, clean, corrupt, metric, method="attribution", progress=False
    )
    # independent reference: gradient at the corrupted run, by retain_grad on hidden states
    out = gpt2(corrupt, output_hidden_states=True)
    hs = out.hidden_states
    for h in hs:
        h.retain_grad()
    ld(out.logits).sum().backward()
    gpt2.zero_grad()
    clean_hs = gpt2(clean, output_hidden_states=True).hidden_states
    for layer in range(3):
        expect = ((clean_hs[layer] - hs[layer]) * hs[layer].grad).sum(-1)  # [B, T]
        got = r.per_example[layer] - r.corrupt_per_example  # [T, B]
        torch.testing.assert_close(got.T, expect.detach(), atol=1e-5, rtol=1e-4)
    assert all(p.grad is None for p in gpt2.parameters())  # the user's model keeps no gradients


def test_attribution_verification(gpt2):
    clean, corrupt = inputs()
    metric = patching.logit_diff(CORRECT, WRONG)
    r = patching.activation_patch(
        gpt2,
        clean,
        corrupt,
        metric,
        site="head_out",
        by=("layer", "head"),
        method="attribution",
        verify_top=5,
        progress=False,
    )
    exact = patching.activation_patch(
        gpt2, clean, corrupt, metric, site="head_out", by=("layer", "head"), progress=False
    )
    v = r.verification
    assert v["k"] == 5 and len(v["cells"]) == 5
    for cell in v["cells"]:
        ex = float(exact.raw[cell["layer"], cell["head"]] - exact.corrupt_baseline)
        assert cell["exact"] == pytest.approx(ex, abs=1e-5)
        assert cell["attribution"] == pytest.approx(
            float(r.raw[cell["layer"], cell["head"]] - r.corrupt_baseline), abs=1e-5
        )
    assert -1 <= v["spearman"] <= 1 and "Spearman" in r.describe()


def test_gaussian_noise_corruption(gpt2):
    clean, _ = inputs()
    metric = patching.logit_diff(CORRECT, WRONG)
    r = patching.activation_patch(
        gpt2,
        clean,
        None,
        metric,
        noise=3.0,
        noise_positions=[2, 3],
        seed=1,
        by=("layer",),
        progress=False,
    )
    assert "Gaussian noise" in r.corruption and "seed 1" in r.corruption
    again = patching.activation_patch(
        gpt2,
        clean,
        None,
        metric,
        noise=3.0,
        noise_positions=[2, 3],
        seed=1,
        by=("layer",),
        progress=False,
    )
    assert torch.equal(r.per_example, again.per_example)  # seeded
    assert r.corrupt_baseline != pytest.approx(r.clean_baseline)
    torch.testing.assert_close(r.values, torch.ones(3), atol=1e-5, rtol=0)  # whole stream restores
    # noise only where asked: positions 0, 1 keep clean activations, so patching them is a no-op
    full = patching.activation_patch(
        gpt2, clean, None, metric, noise=3.0, noise_positions=[2, 3], seed=1, progress=False
    )
    assert torch.all(full.values[:, :2] == 0)


@pytest.mark.parametrize("kind", ["zero", "mean", "resample"])
def test_ablation_equals_reference(gpt2, kind):
    clean, _ = inputs()
    metric = patching.logit_diff(CORRECT, WRONG)
    r = patching.ablate(gpt2, clean, "attn_out", kind, metric=metric, seed=2, progress=False)
    with torch.no_grad():
        base = ld(gpt2(clean).logits)
    assert r.method == f"{kind}-ablation" and r.corrupt_baseline is None
    for layer in range(3):
        act = record(gpt2, clean, "attn_out", layer)
        repl = {
            "zero": torch.zeros_like(act),
            "mean": act.mean(0, keepdim=True).expand_as(act),
        }.get(kind)
        if kind == "resample":
            repl = act[r_perm(B, 2)]
        h = gpt2.transformer.h[layer].attn.register_forward_hook(
            lambda m, a, o, v=repl: (v, *o[1:])
        )
        with torch.no_grad():
            ref = ld(gpt2(clean).logits)
        h.remove()
        torch.testing.assert_close(r.per_example[layer], ref, atol=1e-5, rtol=0)
        assert float(r.values[layer]) == pytest.approx(float(ref.mean() - base.mean()), abs=1e-5)


def r_perm(b, seed):
    """The documented resampling: a derangement drawn from ``seed``."""
    gen = torch.Generator().manual_seed(seed)
    perm = torch.randperm(b, generator=gen)
    while bool((perm == torch.arange(b)).any()):
        perm = torch.randperm(b, generator=gen)
    return perm


@pytest.mark.parametrize("side", ["right", "left"])
def test_padding_gives_the_values_of_unpadded_runs(gpt2, side):
    g = torch.Generator().manual_seed(5)
    long_clean = torch.randint(1, 90, (1, 8), generator=g)
    short_clean = torch.randint(1, 90, (1, 6), generator=g)
    long_corrupt, short_corrupt = long_clean.clone(), short_clean.clone()
    long_corrupt[0, 4] = 3
    short_corrupt[0, 2] = 3
    metric_one = patching.logit_diff(5, 8)

    def padded(a, b):
        pad = torch.zeros(1, 2, dtype=torch.long)
        b2 = torch.cat([b, pad], 1) if side == "right" else torch.cat([pad, b], 1)
        mask = torch.ones(2, 8, dtype=torch.long)
        if side == "right":
            mask[1, 6:] = 0
        else:
            mask[1, :2] = 0
        batch = {"input_ids": torch.cat([a, b2]), "attention_mask": mask}
        if side == "left":  # GPT-2 counts positions from 0 at the first real token only if told
            batch["position_ids"] = (mask.cumsum(-1) - 1).clamp_min(0)
        return batch

    r = patching.activation_patch(
        gpt2,
        padded(long_clean, short_clean),
        padded(long_corrupt, short_corrupt),
        metric_one,
        progress=False,
    )
    alone_long = patching.activation_patch(
        gpt2, long_clean, long_corrupt, metric_one, progress=False
    )
    alone_short = patching.activation_patch(
        gpt2, short_clean, short_corrupt, metric_one, progress=False
    )
    torch.testing.assert_close(
        r.per_example[..., 0], alone_long.per_example[..., 0], atol=1e-4, rtol=0
    )
    shift = 0 if side == "right" else 2
    torch.testing.assert_close(
        r.per_example[:, shift : shift + 6, 1], alone_short.per_example[..., 0], atol=1e-4, rtol=0
    )
    assert r.corrupt_per_example[1] == pytest.approx(
        float(alone_short.corrupt_per_example[0]), abs=1e-4
    )


def test_bad_input_fails_before_any_run(gpt2, monkeypatch):
    clean, corrupt = inputs()
    metric = patching.logit_diff(CORRECT, WRONG)
    calls = []
    monkeypatch.setattr(patching.api, "exact_sweep", lambda *a, **k: calls.append(1))
    cases = [
        (
            dict(clean=clean, corrupt=corrupt[:2], metric=metric),
            PatchingError,
            "3 examples but corrupt has 2",
        ),
        (dict(clean=clean, corrupt=corrupt[:, :7], metric=metric), PatchingError, "same length"),
        (
            dict(
                clean={"input_ids": clean, "attention_mask": torch.ones(B, T)},
                corrupt={"input_ids": corrupt, "attention_mask": torch.tril(torch.ones(B, T))},
                metric=metric,
            ),
            PatchingError,
            "padded differently",
        ),
        (
            dict(clean=clean, corrupt=corrupt, metric=patching.logit_diff(5, 500)),
            MetricError,
            "outside the model's vocabulary",
        ),
        (
            dict(clean=clean, corrupt=corrupt, metric=lambda logits: logits[:, -1, 5].mean()),
            MetricError,
            "one number per example",
        ),
        (
            dict(clean=clean, corrupt=corrupt, metric=metric, site="resid_mid"),
            PatchingError,
            "unknown site 'resid_mid'",
        ),
        (
            dict(clean=clean, corrupt=corrupt, metric=metric, by=("pos",)),
            PatchingError,
            "not supported",
        ),
        (
            dict(clean=clean, corrupt=corrupt, metric=metric, by=("layer", "head")),
            PatchingError,
            "site='head_out'",
        ),
        (
            dict(clean=clean, corrupt=corrupt, metric=metric, method="fast"),
            PatchingError,
            "method must be",
        ),
        (
            dict(clean=clean, corrupt=corrupt, metric=metric, verify_top=3),
            PatchingError,
            "method='attribution'",
        ),
        (
            dict(clean=clean, corrupt=corrupt, metric=patching.kl_to_clean(), method="attribution"),
            PatchingError,
            "zero gradient",
        ),
        (dict(clean=clean, metric=metric), PatchingError, "give corrupt"),
        (dict(clean=clean, corrupt=corrupt, noise=3.0, metric=metric), PatchingError, "not both"),
        (dict(clean=clean, noise=-1.0, metric=metric), PatchingError, "positive"),
        (dict(clean=clean, corrupt=corrupt, metric=None), PatchingError, "give a metric"),
        (
            dict(clean=clean, corrupt=corrupt, metric=metric, layers=[7]),
            PatchingError,
            "out of range",
        ),
        (dict(clean=clean.float(), corrupt=corrupt, metric=metric), PatchingError, "token ids"),
    ]
    for kwargs, error, message in cases:
        with pytest.raises(error, match=message):
            patching.activation_patch(gpt2, **kwargs, progress=False)
    with pytest.raises(PatchingError, match="resample ablation"):
        patching.ablate(gpt2, clean[:1], "attn_out", "resample", metric=metric)
    with pytest.raises(CaptureErrorType(), match="patching needs a model"):
        patching.activation_patch(torch.nn.Linear(2, 2), clean, corrupt, metric)
    assert calls == []  # no sweep ever started


def CaptureErrorType():
    from interp_magics import CaptureError

    return CaptureError


def test_interrupt_leaves_no_hooks_and_restores_the_model(gpt2):
    clean, corrupt = inputs()
    n = {"calls": 0}

    def metric(logits):
        n["calls"] += 1
        if n["calls"] > 3:
            raise KeyboardInterrupt
        return ld(logits)

    with pytest.raises(KeyboardInterrupt):
        patching.activation_patch(gpt2, clean, corrupt, metric, progress=False)
    assert owned_hooks() == []
    assert all("forward" not in m.__dict__ for m in gpt2.modules())
    for m in gpt2.modules():
        assert not m._forward_hooks and not m._forward_pre_hooks
    assert gpt2(clean).logits.shape == (B, T, 97)  # the model runs normally afterwards


def test_progress_bar_and_dataframe(gpt2, capsys):
    clean, corrupt = inputs()
    r = patching.activation_patch(
        gpt2, clean, corrupt, patching.logit_diff(CORRECT, WRONG), progress=True
    )
    assert "patching" in capsys.readouterr().err
    df = r.to_dataframe()
    assert list(df.columns) == ["layer", "pos", "token", "value", "raw"] and len(df) == 3 * T
    assert df.loc[(df.layer == 2) & (df.pos == 5), "value"].item() == pytest.approx(
        float(r.values[2, 5])
    )
    top = r.top(3)
    assert abs(top["value"].iloc[0]) == pytest.approx(float(r.values.abs().max()))
    text = r.describe()
    assert (
        "clean baseline" in text
        and "corrupted baseline" in text
        and "0 = corrupted run, 1 = clean run" in text
    )


def test_token_labels_show_the_replaced_token(minilm):
    model, tok = minilm  # BERT has no LM head: a function of the hidden states is the metric
    clean = tok(["the cat sat on the mat"], return_tensors="pt")
    corrupt = tok(["the dog sat on the mat"], return_tensors="pt")

    def cls_norm(hidden):
        return hidden[:, 0].norm(dim=-1)

    r = patching.activation_patch(
        model, clean, corrupt, cls_norm, site="resid_post", tokenizer=tok, progress=False
    )
    assert r.labels["pos"][2] == "cat→dog" and r.labels["pos"][0] == "[CLS]"
    torch.testing.assert_close(r.values[-1, :], r.values[-1, :])  # finite
    assert torch.isfinite(r.values).all()


def test_ledger_records_patching(shell):
    from interp_magics.jupyter import get_ledger

    ledger = get_ledger(shell)
    ledger.clear()
    model = __import__("interp_magics.testing", fromlist=["gpt2"]).gpt2()
    clean, corrupt = inputs()
    shell.user_ns.update(
        model=model, clean=clean, corrupt=corrupt, metric=patching.logit_diff(CORRECT, WRONG)
    )
    result = shell.run_cell(
        "%patch model --clean clean --corrupt corrupt --metric metric --by layer -o res",
        cell_id="p1",
    )
    assert result.success, result.error_in_exec
    res = shell.user_ns["res"]
    assert result.result is res and res.values.shape == (3,)
    kinds = [(e["kind"], e["cell_id"]) for e in ledger.entries]
    assert ("patch", "p1") in kinds
    entry = next(e for e in ledger.entries if e["kind"] == "patch")
    assert (
        entry["method"] == "exact"
        and entry["direction"] == "denoising"
        and entry["corruption"] == "counterfactual prompts"
    )
    for line, message in [
        ("%patch model --clean clean --metric metric", "give --corrupt"),
        (
            "%patch model --clean clean --corrupt corrupt --metric metric --site nope",
            "unknown site 'nope'",
        ),
        ("%patch model --clean clean --corrupt corrupt --metric metric --layers x", "--layers"),
        (
            "%patch model --clean clean --corrupt corrupt --metric nothing",
            "name 'nothing' is not defined",
        ),
    ]:
        result = shell.run_cell(line)
        assert message in str(result.error_in_exec), line
    result = shell.run_cell(
        "%patch model --clean clean --corrupt corrupt --metric metric --method attribution --verify-top 3 --layers {1-2}"
    )
    assert (
        result.success
        and result.result.verification["k"] == 3
        and result.result.labels["layer"] == ["1", "2"]
    )


def test_heatmap_widget_payload_and_fallback(gpt2):
    import numpy as np

    from interp_magics.widgets import PatchingHeatmap

    clean, corrupt = inputs()
    r = patching.activation_patch(
        gpt2, clean, corrupt, patching.logit_diff(CORRECT, WRONG), progress=False
    )
    view = r.widget()
    assert isinstance(view, PatchingHeatmap)
    values = np.frombuffer(view.values, dtype=np.float32).reshape(3, T)
    np.testing.assert_allclose(values, r.values.numpy(), rtol=1e-6)
    assert (
        view.meta["axes"] == ["layer", "pos"]
        and view.meta["labels"]["pos"][3] == f"{int(clean[0, 3])}→{int(corrupt[0, 3])}"
    )
    assert view.cell_values == b""
    view.selected = [2, 5]  # what a click sends: the per-example values of that cell follow
    np.testing.assert_allclose(
        np.frombuffer(view.cell_values, dtype=np.float32), r.per_example[2, 5].numpy(), rtol=1e-6
    )
    with pytest.raises(Exception, match="inside 3 x 8"):
        view.selected = [3, 0]
    data, _ = r._repr_mimebundle_()
    assert {"image/png", "text/html", "text/plain"} <= set(data)
    assert data["image/png"][:4] == b"\x89PNG"
    assert "corrupted baseline" in data["text/plain"] and "<script" not in data["text/html"].lower()
    assert f"{float(r.values.abs().max()):.4g}"[:4] in data["text/html"]  # the numbers, as text
    heads = patching.activation_patch(
        gpt2,
        clean,
        corrupt,
        patching.logit_diff(CORRECT, WRONG),
        site="head_out",
        by=("layer", "head", "pos"),
        progress=False,
    )
    hv = heads.widget(slice_index=2)
    hv.selected = [1, 4]
    np.testing.assert_allclose(
        np.frombuffer(hv.cell_values, dtype=np.float32),
        heads.per_example[1, 2, 4].numpy(),
        rtol=1e-6,
    )
    assert "(head 2)" in hv.fallback_text() or hv.fallback_png()[:4] == b"\x89PNG"
    ab = patching.ablate(
        gpt2, clean, "mlp_out", "zero", metric=patching.logit_diff(CORRECT, WRONG), progress=False
    )
    assert (
        ab.widget().meta["value_name"].startswith("change in")
        and "change in the metric" in ab.describe()
    )
