"""Feature ablation and attribution, against one forward per feature with a splice written here.

The reference splice is a plain forward hook on the site's module that encodes the site's
tensor with the SAE, edits one feature and adds the decoder's change: ``x + decode(f') -
decode(f)``; metrics are read from the full logits by hand.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sae_lens import StandardSAE, StandardSAEConfig

from interp_magics import owned_hooks, testing, toy
from interp_magics.features import (
    FeatureError,
    ablate_features,
    attribute,
    spliced,
)
from interp_magics.features.result import summarise
from interp_magics.patching import MetricError, kl_to_clean, logit_diff
from interp_magics.patching.uncertainty import StatOptions


def _sae(d_in: int = 64, d_sae: int = 48, seed: int = 0) -> StandardSAE:
    torch.manual_seed(seed)
    sae = StandardSAE(StandardSAEConfig(d_in=d_in, d_sae=d_sae))
    with torch.no_grad():
        sae.W_dec.mul_(3.0)  # features large enough to move the logits
        sae.b_enc.normal_(0, 0.1)
    return sae


def _module(model, site):
    layer = int(site.split(".")[1])
    blocks = model.model.layers if hasattr(model, "model") else model.transformer.h
    block = blocks[layer]
    if site.startswith("mlp_out"):
        return block.mlp, "output"
    return block, ("input" if site.startswith("resid_pre") else "output")


def _by_hand(model, sae, site, ids, edit):
    """Return the logits with ``edit(f) -> f'`` applied in a splice written here."""
    module, io = _module(model, site)

    def spliced_x(x):
        f = sae.encode(x)
        return x + sae.decode(edit(f)) - sae.decode(f)

    if io == "input":
        handle = module.register_forward_pre_hook(
            lambda m, args, kwargs: (
                ((spliced_x(args[0]), *args[1:]), kwargs)
                if args
                else (args, {**kwargs, "hidden_states": spliced_x(kwargs["hidden_states"])})
            ),
            with_kwargs=True,
        )
    else:
        handle = module.register_forward_hook(
            lambda m, a, out: (
                (spliced_x(out[0]), *out[1:]) if isinstance(out, tuple) else spliced_x(out)
            )
        )
    try:
        with torch.no_grad():
            return model(ids).logits
    finally:
        handle.remove()


def _ld(logits, correct, wrong):
    last = logits[:, -1]
    n = torch.arange(len(correct))
    return last[n, correct] - last[n, wrong]


CASES = [
    ("llama", "resid_post.1", "zero"),  # runs start at block 1 from the cached residual
    ("llama", "resid_pre.2", "mean"),  # a block's input: runs start one block earlier
    ("gpt2", "mlp_out.1", "zero"),
    ("toy", "resid_post.0", "mean"),
]


@pytest.mark.parametrize(("name", "site", "kind"), CASES)
def test_each_features_effect_equals_a_forward_with_it_ablated_by_hand(name, site, kind):
    model = {"llama": testing.llama, "gpt2": testing.gpt2, "toy": toy.load}[name]()
    vocab = 49 if name == "toy" else 97
    g = torch.Generator().manual_seed(7)
    ids = torch.randint(1, vocab, (5, 9), generator=g)
    correct, wrong = (
        torch.randint(1, vocab, (5,), generator=g),
        torch.randint(1, vocab, (5,), generator=g),
    )
    sae = _sae()
    feats = [0, 3, 11, 20, 47]
    with spliced(model, sae, site) as fs:
        # 2 features per stacked forward: the chunks and their boundaries are exercised
        result = ablate_features(
            model,
            ids,
            fs.key,
            feats,
            logit_diff(correct, wrong),
            kind=kind,
            batch_tokens=2 * 5 * 9,
            progress=False,
        )
        assert len(owned_hooks()) == 1  # only the splice
    base = _ld(_by_hand(model, sae, site, ids, lambda f: f), correct, wrong)
    module, io = _module(model, site)
    seen = {}

    def keep(*hook_args):  # (module, args, kwargs) before it runs or (module, args, out) after
        if io == "input":
            args, kwargs = hook_args[1], hook_args[2]
            seen["x"] = args[0] if args else kwargs["hidden_states"]
        else:
            out = hook_args[2]
            seen["x"] = out[0] if isinstance(out, tuple) else out

    with torch.no_grad():  # the feature values mean ablation puts in: per-position batch means
        h = (
            module.register_forward_pre_hook(keep, with_kwargs=True)
            if io == "input"
            else module.register_forward_hook(keep)
        )
        model(ids)
        h.remove()
        mean = sae.encode(seen["x"]).mean(0)
    for i, j in enumerate(feats):

        def edit(f, j=j):
            f = f.clone()
            f[..., j] = 0.0 if kind == "zero" else mean[:, j]
            return f

        expected = _ld(_by_hand(model, sae, site, ids, edit), correct, wrong) - base
        assert torch.allclose(result.per_example[i].float(), expected, atol=1e-5), (i, j)
    assert result.features.tolist() == feats
    assert torch.allclose(result.effect, result.per_example.mean(1))
    assert result.method == f"{kind} ablation"
    df = result.to_dataframe()
    assert list(df.columns) == [
        "feature",
        "effect",
        "low",
        "high",
        "p",
        "p_corrected",
        "significant",
    ]
    assert (df["low"] <= df["effect"]).all() and (df["effect"] <= df["high"]).all()
    assert str(result).startswith(f"{int(result.significant.sum())} of 5 features")
    assert result._repr_png_().startswith(b"\x89PNG")


def test_ablating_at_given_positions_edits_only_those():
    model = testing.gpt2()
    g = torch.Generator().manual_seed(8)
    ids = torch.randint(1, 97, (4, 8), generator=g)
    correct, wrong = torch.full((4,), 3), torch.full((4,), 5)
    sae = _sae()
    with spliced(model, sae, "resid_post.0") as fs:
        result = ablate_features(
            model, ids, fs, [2, 9], logit_diff(correct, wrong), positions=[1, 6], progress=False
        )
    base = _ld(_by_hand(model, sae, "resid_post.0", ids, lambda f: f), correct, wrong)
    for i, j in enumerate([2, 9]):

        def edit(f, j=j):
            f = f.clone()
            f[:, [1, 6], j] = 0.0
            return f

        expected = _ld(_by_hand(model, sae, "resid_post.0", ids, edit), correct, wrong) - base
        assert torch.allclose(result.per_example[i].float(), expected, atol=1e-5)


def test_attribution_is_gradient_times_activation_and_verify_top_is_exact_ablation():
    model = testing.llama()
    g = torch.Generator().manual_seed(9)
    ids = torch.randint(1, 97, (4, 8), generator=g)
    correct, wrong = (
        torch.randint(1, 97, (4,), generator=g),
        torch.randint(1, 97, (4,), generator=g),
    )
    sae = _sae()
    metric = logit_diff(correct, wrong)
    from interp_magics.core import events

    recorded: list[dict] = []
    unsubscribe = events.subscribe(recorded.append)
    try:
        with spliced(model, sae, "resid_post.1") as fs:
            result = attribute(model, ids, fs.key, metric, verify_top=3, progress=False)
            exact = ablate_features(model, ids, fs.key, result.features, metric, progress=False)
    finally:
        unsubscribe()
    # both are in the ledger: the attribution with its exact check, the ablation sweep
    recorded = [r for r in recorded if r["kind"] != "capture"]  # its reference capture
    assert [r["kind"] for r in recorded] == ["patch", "ablation"]
    assert recorded[0]["method"] == "attribution" and recorded[0]["verified"] == 3
    assert recorded[0]["by"] == ["feature"] and recorded[0]["site"] == "sae:resid_post.1"
    # By hand: the features as a leaf of the graph, one backward of the summed metric.
    block = model.model.layers[1]
    leaf = {}

    def hook(mod, args, out):
        x = out[0] if isinstance(out, tuple) else out
        f = sae.encode(x).detach().requires_grad_(True)
        leaf["f"] = f
        y = x + sae.decode(f) - sae.decode(f.detach())
        return (y, *out[1:]) if isinstance(out, tuple) else y

    handle = block.register_forward_hook(hook)
    try:
        _ld(model(ids).logits, correct, wrong).sum().backward()
    finally:
        handle.remove()
    f = leaf["f"]
    by_hand = (-(f * f.grad)).sum(1).T.detach()  # [features, examples]
    active = (f != 0).flatten(0, 1).any(0)
    assert result.features.tolist() == active.nonzero().flatten().tolist()
    scale = float(by_hand.abs().max())
    assert (result.per_example.float() - by_hand[result.features]).abs().max() < 1e-5 * scale
    v = result.verification
    assert v is not None and v["k"] == 3 and len(v["random"]["features"]) == 3
    exact_by_feature = dict(zip(exact.features.tolist(), exact.effect.tolist(), strict=True))
    for row in v["features"] + v["random"]["features"]:
        assert row["exact"] == pytest.approx(exact_by_feature[row["feature"]], abs=1e-6)
    top = torch.topk(result.effect.abs(), 3).indices
    assert [r["feature"] for r in v["features"]] == result.features[top].tolist()
    assert "attribution checked by exact zero ablation" in str(result)


def test_features_that_cannot_act_are_never_significant():
    model = testing.gpt2()
    g = torch.Generator().manual_seed(10)
    ids = torch.randint(1, 97, (12, 7), generator=g)
    sae = _sae()
    null = list(range(0, 48, 2))
    with torch.no_grad():
        sae.W_dec[null] = 0.0  # these features write nothing: ablating them changes nothing
    metric = logit_diff(torch.randint(1, 97, (12,), generator=g), torch.tensor([4]))
    with spliced(model, sae, "resid_post.1") as fs:
        result = ablate_features(model, ids, fs.key, null, metric, progress=False)
        att = attribute(model, ids, fs.key, metric, features=null, progress=False)
    for r in (result, att):
        assert not r.significant.any()
        assert not r.tested.any()
        assert (r.p == 1).all()
        assert r.per_example.abs().max() < 1e-5


def test_the_false_positive_rate_under_the_null_is_alpha():
    # Per-example changes symmetric about 0: each test rejects with probability alpha, and the
    # max-t correction keeps the chance of any rejection among 10 features at alpha.
    alpha, n_sims, rng = 0.05, 2000, np.random.default_rng(0)
    se = np.sqrt(alpha * (1 - alpha) / n_sims)
    changes = torch.from_numpy(rng.standard_normal((n_sims, 12)))
    base = torch.ones(12)
    raw = summarise(
        changes,
        torch.arange(n_sims),
        base,
        site="sae:x",
        method="zero ablation",
        metric="m",
        options=StatOptions(alpha=alpha, correction="none", flips=9999, seed=0),
    )
    rate = float(raw.significant.double().mean())
    print(f"uncorrected false-positive rate {rate:.4f} (alpha {alpha}, SE {se:.4f})")
    assert abs(rate - alpha) < 2 * se + 1 / 2**12  # exact sign-flip p-values are discrete
    n_fam = 400
    fam_se = np.sqrt(alpha * (1 - alpha) / n_fam)
    any_rejected = 0
    for i in range(n_fam):
        family = torch.from_numpy(rng.standard_normal((10, 12)))
        out = summarise(
            family,
            torch.arange(10),
            base,
            site="sae:x",
            method="zero ablation",
            metric="m",
            options=StatOptions(alpha=alpha, flips=999, seed=i),
        )
        any_rejected += bool(out.significant.any())
    fwer = any_rejected / n_fam
    print(f"max-t family-wise error over 10 features {fwer:.4f} (SE {fam_se:.4f})")
    assert fwer <= alpha + 2 * fam_se


def test_bad_input_is_refused_before_any_run():
    model = testing.gpt2()
    ids = torch.randint(1, 97, (2, 5))
    metric = logit_diff(torch.tensor([1]), torch.tensor([2]))
    with spliced(model, _sae(), "resid_post.1") as fs:
        calls = []
        handle = model.register_forward_pre_hook(lambda m, a: calls.append(1))
        try:
            for kwargs, error, message in [
                ({"kind": "resample"}, FeatureError, "kind must be"),
                ({"features": [48]}, FeatureError, "out of range"),
                ({"features": [1, 1]}, FeatureError, "twice"),
                ({"metric": None}, MetricError, "give a metric"),
                ({"positions": [9]}, FeatureError, "out of range"),
                ({"alpha": 2.0}, Exception, "alpha must be"),
            ]:
                args = {"features": [0], "metric": metric, **kwargs}
                with pytest.raises(error, match=message):
                    ablate_features(model, ids, fs.key, progress=False, **args)
            with pytest.raises(MetricError, match="zero gradient"):
                attribute(model, ids, fs.key, kl_to_clean(), progress=False)
            with pytest.raises(FeatureError, match="no SAE is attached at 'sae:mlp_out.1'"):
                attribute(model, ids, "sae:mlp_out.1", metric, progress=False)
        finally:
            handle.remove()
        assert calls == []
