"""Activation patching and ablation against independent one-forward-per-cell references."""

import pytest
import torch

from interp_magics import owned_hooks, patching
from interp_magics.patching import PatchingError
from interp_magics.patching.metrics import MetricError

# The random-weight test models barely tell clean from corrupted prompts; the warning about
# that is asserted where it is tested.
pytestmark = pytest.mark.filterwarnings("ignore:the clean-corrupted gap:UserWarning")

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
    # and as many cells drawn at random from the rest, where attribution saw little
    rand = v["random"]["cells"]
    top = {(c["layer"], c["head"]) for c in v["cells"]}
    assert len(rand) == 5 and not top & {(c["layer"], c["head"]) for c in rand}
    for cell in rand:
        ex = float(exact.raw[cell["layer"], cell["head"]] - exact.corrupt_baseline)
        assert cell["exact"] == pytest.approx(ex, abs=1e-5)
    signs = [(c["attribution"] > 0) == (c["exact"] > 0) for c in v["cells"]]
    assert v["sign_agreement"] == pytest.approx(sum(signs) / 5)
    sizes = [abs(c["attribution"] - c["exact"]) / abs(c["exact"]) for c in v["cells"]]
    assert v["size_error"] == pytest.approx(sizes)
    assert r.verification["summary"].startswith(
        "attribution checked by exact patching; top 5 cells: signs agree on"
    )


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
    r = patching.ablate(
        gpt2, clean, "attn_out", kind, metric=metric, seed=2, resamples=3, progress=False
    )
    with torch.no_grad():
        base = ld(gpt2(clean).logits)
    assert r.method == f"{kind}-ablation" and r.corrupt_baseline is None
    perms = r_perms(B, 2, 3)
    for layer in range(3):
        act = record(gpt2, clean, "attn_out", layer)
        repls = {
            "zero": [torch.zeros_like(act)],
            "mean": [act.mean(0, keepdim=True).expand_as(act)],
            "resample": [act[p] for p in perms],
        }[kind]
        refs = []
        for repl in repls:
            h = gpt2.transformer.h[layer].attn.register_forward_hook(
                lambda m, a, o, v=repl: (v, *o[1:])
            )
            with torch.no_grad():
                refs.append(ld(gpt2(clean).logits))
            h.remove()
        ref = torch.stack(refs).mean(0)  # resampling: each example averaged over the draws
        torch.testing.assert_close(r.per_example[layer], ref, atol=1e-5, rtol=0)
        assert float(r.values[layer]) == pytest.approx(float(ref.mean() - base.mean()), abs=1e-5)


def test_ablate_defaults_to_mean_ablation(gpt2):
    clean, _ = inputs()
    metric = patching.logit_diff(CORRECT, WRONG)
    default = patching.ablate(gpt2, clean, "attn_out", metric=metric, progress=False)
    mean = patching.ablate(gpt2, clean, "attn_out", "mean", metric=metric, progress=False)
    assert default.method == "mean-ablation"
    assert torch.equal(default.per_example, mean.per_example)


def r_perms(b, seed, draws):
    """The documented resampling without padding: ``draws`` derangements from one generator."""
    gen = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(draws):
        perm = torch.randperm(b, generator=gen)
        while bool((perm == torch.arange(b)).any()):
            perm = torch.randperm(b, generator=gen)
        out.append(perm)
    return out


def test_resample_ablation_never_writes_a_pad_into_a_real_token(gpt2):
    from interp_magics.patching.corruption import resample_donors

    mask = torch.ones(5, T, dtype=torch.bool)
    mask[0, 5:] = False  # right padding of different lengths
    mask[3, 3:] = False
    mask[4, 7:] = False
    for seed in range(30):
        donors = resample_donors(mask, torch.Generator().manual_seed(seed))
        for i in range(5):
            for p in range(T):
                if not mask[i, p]:
                    assert donors[i, p] == i  # a pad keeps its own value
                    continue
                others = [j for j in range(5) if j != i and mask[j, p]]
                assert bool(mask[donors[i, p], p]) and (donors[i, p] != i or not others)
    # End to end: the pads' token ids cannot reach the result (they used to, through the donors).
    g = torch.Generator().manual_seed(3)
    ids = torch.randint(1, 90, (5, T), generator=g)
    metric = patching.logit_diff(5, 8)
    runs = []
    for pad_id in (0, 77):
        batch = {"input_ids": torch.where(mask, ids, pad_id), "attention_mask": mask.long()}
        runs.append(
            patching.ablate(gpt2, batch, "mlp_out", "resample", metric=metric, progress=False)
        )
    torch.testing.assert_close(runs[0].per_example, runs[1].per_example, atol=1e-5, rtol=0)


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
    assert list(df.columns) == [
        "layer",
        "pos",
        "token",
        "value",
        "raw",
        "ci_low",
        "ci_high",
        "p_value",
        "p_corrected",
        "significant",
    ]
    assert len(df) == 3 * T
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
    # per-cell statistics travel with the values; non-significant cells are hatched in the PNG
    for trait, column in (
        ("ci_low", r.ci_low),
        ("ci_high", r.ci_high),
        ("p_corrected", r.p_corrected),
    ):
        got = np.frombuffer(getattr(view, trait), dtype=np.float32).reshape(3, T)
        np.testing.assert_allclose(got, column.numpy(), rtol=1e-6)
    sig = np.frombuffer(view.significant, dtype=np.uint8).reshape(3, T)
    assert np.array_equal(sig.astype(bool), r.significant.numpy())
    from matplotlib.figure import Figure

    ax = Figure().add_subplot()
    hatched = view._hatch_not_significant(ax, (3, T))
    assert hatched == int((~r.significant).sum()) == len([p for p in ax.patches if p.get_hatch()])
    assert view.meta["notes"][0] == r.stats_note and "sign-flip" in r.stats_note
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


# -- per-cell uncertainty ----------------------------------------------------------------------


def _flip_reference(d):
    """Brute force: every sign pattern, scipy's t-statistic, per-cell and max-|t| p-values."""
    import itertools

    import numpy as np
    from scipy import stats

    n = d.shape[1]
    tested = np.any(d != 0, axis=1)
    t_obs = np.array(
        [
            stats.ttest_1samp(row, 0).statistic if t else 0.0
            for row, t in zip(d, tested, strict=True)
        ]
    )
    above = np.zeros(len(d))
    above_max = np.zeros(len(d))
    patterns = list(itertools.product([-1.0, 1.0], repeat=n))
    for signs in patterns:
        flipped = np.array(
            [
                abs(stats.ttest_1samp(row * signs, 0).statistic) if t else 0.0
                for row, t in zip(d, tested, strict=True)
            ]
        )
        above += flipped >= np.abs(t_obs) - 1e-9
        above_max += flipped.max() >= np.abs(t_obs) - 1e-9
    p = np.where(tested, above / len(patterns), 1.0)
    return t_obs, p, np.where(tested, above_max / len(patterns), 1.0)


def test_cell_stats_equal_brute_force_sign_flips_and_scipy_intervals():
    import numpy as np
    from scipy import stats
    from statsmodels.stats.multitest import multipletests

    from interp_magics.patching.uncertainty import cell_stats

    rng = np.random.default_rng(0)
    d = rng.standard_normal((6, 7)) + np.array([0, 0.5, 1.5, -2.0, 0, 0])[:, None]
    d[4] = 0.0  # a cell the patch did not change
    s = cell_stats(d, flips=9999)
    t_ref, p_ref, pmax_ref = _flip_reference(d)
    assert s.exact and s.flips == 2**7
    np.testing.assert_allclose(s.t[:4], t_ref[:4], rtol=1e-9)
    np.testing.assert_allclose(s.p, p_ref, atol=1e-12)
    np.testing.assert_allclose(s.p_corrected, pmax_ref, atol=1e-12)
    assert s.p[4] == 1 and not s.tested[4] and s.tested.sum() == 5
    for c in (0, 1, 2, 3, 5):
        ci = stats.ttest_1samp(d[c], 0).confidence_interval(0.95)
        assert (s.low[c], s.high[c]) == pytest.approx((ci.low, ci.high), abs=1e-12)
    holm = cell_stats(d, flips=9999, correction="holm")
    tested = s.tested
    np.testing.assert_allclose(
        holm.p_corrected[tested], multipletests(p_ref[tested], method="holm")[1], atol=1e-12
    )
    assert holm.p_corrected[4] == 1
    none = cell_stats(d, correction="none")
    np.testing.assert_allclose(none.p_corrected, none.p)
    # More examples than patterns to enumerate: seeded random flips, near the exact p-values.
    d14 = rng.standard_normal((3, 14)) + np.array([0.0, 0.4, 0.9])[:, None]
    mc = cell_stats(d14, flips=4000, seed=1)
    exact = cell_stats(d14, flips=2**14)
    assert not mc.exact and exact.exact
    se = np.sqrt(exact.p * (1 - exact.p) / 4000) + 1 / 4000
    assert np.all(np.abs(mc.p - exact.p) <= 4 * se)
    assert np.all(mc.p >= 1 / 4001)
    again = cell_stats(d14, flips=4000, seed=1)
    assert np.array_equal(mc.p, again.p)


def test_skewed_changes_are_measured_and_named_in_the_summary():
    import numpy as np
    from scipy import stats

    from interp_magics.patching.uncertainty import cell_stats, describe_stats, pooled_skewness

    rng = np.random.default_rng(3)
    skewed = rng.exponential(1.0, (24, 16)) - 1.0 + 0.9
    normal = rng.standard_normal((24, 16)) + 0.9
    # Pooled over cells: the mean of the per-cell biased skewness estimates (scaled by ddof=1 sd).
    ref = np.mean([stats.skew(row) * (15 / 16) ** 1.5 for row in skewed])
    assert pooled_skewness(skewed) == pytest.approx(ref, rel=1e-9)
    s_skewed, s_normal = cell_stats(skewed, flips=999), cell_stats(normal, flips=999)
    assert s_skewed.skewness > 0.5 and abs(s_normal.skewness) < 0.5
    assert "skewed (pooled skewness +" in describe_stats(s_skewed, 16, 0.05)
    assert "skewed" not in describe_stats(s_normal, 16, 0.05)
    # No significant cell: nothing to warn about.
    centred = rng.exponential(1.0, (4, 16))
    null = cell_stats(centred - centred.mean(1, keepdims=True), flips=999)  # means exactly 0
    assert abs(null.skewness) > 0.5 and not (null.p_corrected < 0.05).any()
    assert "skewed" not in describe_stats(null, 16, 0.05)
    assert pooled_skewness(np.zeros((3, 8))) == 0.0


def _separating(model, clean, corrupt):
    """Answers per example whose logit difference is larger in the clean run than the corrupted."""
    with torch.no_grad():
        gap = model(clean).logits[:, -1] - model(corrupt).logits[:, -1]
    return gap.argmax(-1), gap.argmin(-1)


def test_patch_result_intervals_and_tests_against_scipy(gpt2):
    import numpy as np
    from scipy import stats

    b = 8
    g = torch.Generator().manual_seed(4)
    clean = torch.randint(1, 90, (b, T), generator=g)
    corrupt = clean.clone()
    corrupt[:, 3] = (corrupt[:, 3] + 11) % 90 + 1
    metric = patching.logit_diff(*_separating(gpt2, clean, corrupt))
    for direction in ("denoising", "noising"):
        r = patching.activation_patch(
            gpt2, clean, corrupt, metric, direction=direction, progress=False
        )
        base = r.corrupt_per_example if direction == "denoising" else r.clean_per_example
        span = r.clean_baseline - r.corrupt_baseline
        offset = float(base.mean()) - r.corrupt_baseline
        d = (r.per_example - base).double().numpy()
        for layer, pos in [(0, 3), (1, 3), (2, 5), (2, 7)]:
            ci = stats.ttest_1samp(d[layer, pos], 0).confidence_interval(0.95)
            low, high = sorted([(ci.low + offset) / span, (ci.high + offset) / span])
            assert float(r.ci_low[layer, pos]) == pytest.approx(low, abs=1e-4)
            assert float(r.ci_high[layer, pos]) == pytest.approx(high, abs=1e-4)
            assert (
                r.ci_low[layer, pos] <= r.values[layer, pos] + 1e-5 <= r.ci_high[layer, pos] + 2e-5
            )
        _, p_ref, pmax_ref = _flip_reference(
            d.reshape(-1, b) * (np.abs(d.reshape(-1, b)) > 1e-5 * float(base.abs().max()))
        )
        np.testing.assert_allclose(r.p_values.reshape(-1).numpy(), p_ref, atol=1e-6)
        np.testing.assert_allclose(r.p_corrected.reshape(-1).numpy(), pmax_ref, atol=1e-6)
        # positions before the corrupted token are exactly the unpatched run: no test, p = 1
        assert torch.all(r.p_values[:, :3] == 1) and not r.significant[:, :3].any()
    # Patching the whole stream moves every example's metric the same way: detected.
    whole = patching.activation_patch(gpt2, clean, corrupt, metric, by="layer", progress=False)
    assert whole.significant.all() and float(whole.p_corrected.max()) == pytest.approx(2 / 2**b)
    df = whole.to_dataframe()
    assert list(df.columns) == [
        "layer",
        "value",
        "raw",
        "ci_low",
        "ci_high",
        "p_value",
        "p_corrected",
        "significant",
    ]
    assert "significant at alpha 0.05" in whole.describe()


def test_ablation_intervals_and_multipletests_corrections(gpt2):
    import numpy as np
    from scipy import stats
    from statsmodels.stats.multitest import multipletests

    g = torch.Generator().manual_seed(6)
    clean = torch.randint(1, 90, (16, T), generator=g)
    metric = patching.logit_diff(5, 8)
    r = patching.ablate(gpt2, clean, "mlp_out", metric=metric, correction="fdr_bh", progress=False)
    d = (r.per_example - r.clean_per_example).double().numpy()
    for layer in range(3):
        ci = stats.ttest_1samp(d[layer], 0).confidence_interval(0.95)
        assert (float(r.ci_low[layer]), float(r.ci_high[layer])) == pytest.approx(
            (ci.low, ci.high), abs=1e-5
        )
    # 16 examples: 9999 seeded random sign patterns, one added for the observed
    assert torch.all(r.p_values >= 1 / 10000)
    expect = multipletests(r.p_values.double().numpy(), method="fdr_bh")[1]
    np.testing.assert_allclose(r.p_corrected.numpy(), expect, rtol=1e-6)
    assert torch.equal(r.significant, r.p_corrected < 0.05)
    with pytest.raises(PatchingError, match="correction must be one of"):
        patching.ablate(gpt2, clean, "mlp_out", metric=metric, correction="bogus")


def test_ledger_records_corrected_tests_for_the_rigor_checker(gpt2):
    from interp_magics.core import events
    from interp_magics.rigor.ledger import p_values, read_entry

    seen = []
    clean, corrupt = inputs()
    metric = patching.logit_diff(CORRECT, WRONG)
    unsubscribe = events.subscribe(seen.append)
    try:
        patching.activation_patch(gpt2, clean, corrupt, metric, progress=False)
        patching.activation_patch(gpt2, clean, corrupt, metric, correction="none", progress=False)
        patching.ablate(gpt2, clean, "attn_out", metric=metric, progress=False)
    finally:
        unsubscribe()
    seen = [r for r in seen if r["kind"] in ("patch", "ablation")]
    entries = [read_entry(r) for r in seen]
    # what STA001 counts: one test per cell, corrected unless the user asked for none
    assert [p_values(e) for e in entries] == [(3 * T, True), (3 * T, False), (3, True)]
    assert seen[0]["correction"] == "max-t" and seen[1]["correction"] is None


def test_small_clean_corrupted_gap_warns_and_large_one_does_not(gpt2):
    import warnings

    clean, corrupt = inputs()
    with pytest.warns(UserWarning, match="standard errors from 0"):
        r = patching.activation_patch(
            gpt2, clean, corrupt, patching.logit_diff(CORRECT, WRONG), progress=False
        )
    assert any("noisy number" in n for n in r.notes)
    g = torch.Generator().manual_seed(4)
    clean8 = torch.randint(1, 90, (8, T), generator=g)
    corrupt8 = clean8.clone()
    corrupt8[:, 3] = (corrupt8[:, 3] + 11) % 90 + 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ok = patching.activation_patch(
            gpt2,
            clean8,
            corrupt8,
            patching.logit_diff(*_separating(gpt2, clean8, corrupt8)),
            progress=False,
        )
    assert not any("noisy number" in n for n in ok.notes)


def test_noising_summary_lists_the_smallest_cells(gpt2):
    clean, corrupt = inputs()
    r = patching.activation_patch(
        gpt2,
        clean,
        corrupt,
        patching.logit_diff(CORRECT, WRONG),
        direction="noising",
        progress=False,
    )
    line = next(x for x in r.describe().splitlines() if x.startswith("cells whose patch destroys"))
    lowest = r.lowest(5)
    first = lowest.iloc[0]
    assert f"layer {int(first.layer)}, pos {int(first.pos)}" in line.split(";")[0]
    assert float(first.value) == pytest.approx(float(r.values.min()))


def test_bad_metric_and_noise_inputs_say_what_to_fix(gpt2, minilm):
    clean, corrupt = inputs()
    cases = [
        (
            dict(corrupt=corrupt, metric=patching.logit_diff([5, 6], [7, 8])),
            "2 correct answer ids for a batch of 3",
        ),
        (dict(corrupt=corrupt, metric=patching.logprob([5, 6])), "2 answer ids for a batch of 3"),
        (
            dict(noise=3.0, noise_positions=[50], metric=patching.logit_diff(5, 8)),
            "noise_positions \\[50\\] are outside the 8",
        ),
        (dict(corrupt=corrupt, metric=patching.logit_diff(5, 8), alpha=2.0), "alpha must be"),
        (dict(corrupt=corrupt, metric=patching.logit_diff(5, 8), flips=10), "flips must be"),
    ]
    for kwargs, message in cases:
        with pytest.raises((PatchingError, MetricError), match=message):
            patching.activation_patch(gpt2, clean, **kwargs, progress=False)
    model, tok = minilm
    a = tok(["the cat sat"], return_tensors="pt")
    b = tok(["the dog sat"], return_tensors="pt")
    for metric in (patching.kl_to_clean(), patching.logit_diff(5, 8)):
        with pytest.raises(MetricError, match="no language-model head"):
            patching.activation_patch(model, a, b, metric, progress=False)


def _calibration():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parent.parent / "benchmarks" / "calibration_patching.py"
    spec = importlib.util.spec_from_file_location("calibration_patching", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_quick_calibration_of_the_per_cell_tests_and_intervals():
    cal = _calibration()
    rows = {r["statistic"]: r for r in cal.null_rows(300, 8, "normal", 999, seed=11)}
    for name in (
        "per-cell false-positive rate at alpha 0.05",
        "per-cell false-positive rate at alpha 0.10",
        "family-wise error, max-t corrected, alpha 0.05",
    ):
        r = rows[name]
        assert r["observed"] <= r["nominal"] + 3 * r["binomial_se"], r
    # without a correction, some cell of 24 is "significant" in most null sweeps
    assert rows["family-wise error, uncorrected, alpha 0.05"]["observed"] > 0.25
    (cov,) = cal.coverage_rows(400, 12, "normal", seed=12)
    assert abs(cov["observed"] - 0.95) <= 3 * cov["binomial_se"], cov
