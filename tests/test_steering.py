"""Steering: the vector against a difference of means computed by hand from
``output_hidden_states``; the sweep's values against forwards with a hand-written hook; the
control directions' norm; a toy-model induction experiment whose dose-response has the right
sign beyond the random directions' band; and the statistics proved by simulation (family-wise
false positives and interval coverage), not asserted."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from interp_magics import owned_hooks, toy
from interp_magics.core import events
from interp_magics.intervene import InterventionError, edit, intervene
from interp_magics.patching.metrics import kl_to_clean, logit_diff, logprob
from interp_magics.steering import (
    SteeringError,
    SteeringVector,
    SweepResult,
    dose_response,
    random_directions,
    sweep,
    vector,
)
from interp_magics.steering.statistics import holm
from interp_magics.testing import bpe_tokenizer, gpt2, llama


@pytest.fixture(scope="module")
def model():
    return gpt2()


def _hidden(model, ids, mask, layer):
    """Hidden state ``layer`` (the input of block ``layer``) by plain HF output_hidden_states."""
    with torch.no_grad():
        return model(input_ids=ids, attention_mask=mask, output_hidden_states=True).hidden_states[
            layer
        ]


def _last_real(mask):
    return torch.tensor([int(row.nonzero().max()) for row in mask])


# -- the vector -----------------------------------------------------------------------------------


@pytest.mark.parametrize("build", [gpt2, llama])
def test_the_vector_is_the_difference_of_means_of_hidden_states(build):
    model = build()
    g = torch.Generator().manual_seed(0)
    pos_ids = torch.randint(1, 90, (5, 7), generator=g)
    neg_ids = torch.randint(1, 90, (4, 7), generator=g)
    pos_mask = torch.ones_like(pos_ids)
    pos_mask[1, 5:] = 0  # right padding
    pos_mask[3, 4:] = 0
    positive = {"input_ids": pos_ids, "attention_mask": pos_mask}
    # resid_post.1 is the input of block 2: hidden_states[2]
    h_pos = _hidden(model, pos_ids, pos_mask, 2)
    h_neg = _hidden(model, neg_ids, torch.ones_like(neg_ids), 2)
    last = _last_real(pos_mask)
    ref = h_pos[torch.arange(5), last].double().mean(0) - h_neg[:, -1].double().mean(0)
    v = vector(model, positive, neg_ids, "resid_post.1", batch_size=2)
    torch.testing.assert_close(v.direction.double(), ref, atol=1e-5, rtol=0)
    assert (v.site, v.method, v.n_positive, v.n_negative) == ("resid_post.1", "mean_diff", 5, 4)
    assert v.norm == pytest.approx(float(ref.norm()), rel=1e-5)
    # another position: the second real token counted from the end
    ref2 = h_pos[torch.arange(5), last - 1].double().mean(0) - h_neg[:, -2].double().mean(0)
    v2 = vector(model, positive, neg_ids, "resid_post.1", position=-2)
    torch.testing.assert_close(v2.direction.double(), ref2, atol=1e-5, rtol=0)
    assert owned_hooks() == []


def test_text_prompts_are_read_at_their_last_real_token():
    model, tok = gpt2(vocab_size=400), bpe_tokenizer()
    positive = ["the cat sat on the mat", "attention is all you need"]
    negative = ["the quick brown fox", "when mary and john went to the store"]

    def mean_last(texts):
        rows = []
        for text in texts:
            ids = torch.tensor([tok(text)["input_ids"]])
            rows.append(_hidden(model, ids, torch.ones_like(ids), 1)[0, -1])
        return torch.stack(rows).double().mean(0)

    ref = mean_last(positive) - mean_last(negative)
    v = vector(model, positive, negative, "resid_pre.1", tokenizer=tok)
    torch.testing.assert_close(v.direction.double(), ref, atol=1e-5, rtol=0)


def test_the_probe_direction_is_a_logistic_regressions_normal_at_the_mean_difference_norm(model):
    from sklearn.linear_model import LogisticRegression

    g = torch.Generator().manual_seed(1)
    pos_ids = torch.randint(1, 90, (12, 6), generator=g)
    neg_ids = torch.randint(1, 90, (12, 6), generator=g)
    a = _hidden(model, pos_ids, torch.ones_like(pos_ids), 1)[:, -1].double()
    b = _hidden(model, neg_ids, torch.ones_like(neg_ids), 1)[:, -1].double()
    fit = LogisticRegression(max_iter=5000).fit(
        torch.cat([a, b]).numpy(), np.r_[np.ones(12), np.zeros(12)]
    )
    w = torch.as_tensor(fit.coef_[0])
    norm = float((a.mean(0) - b.mean(0)).norm())
    v = vector(model, pos_ids, neg_ids, "resid_pre.1", method="probe")
    assert v.norm == pytest.approx(norm, rel=1e-5)
    cosine = float(torch.nn.functional.cosine_similarity(v.direction.double(), w, dim=0))
    assert cosine == pytest.approx(1.0, abs=1e-4)
    assert v.probe_accuracy == pytest.approx(
        fit.score(torch.cat([a, b]).numpy(), np.r_[np.ones(12), np.zeros(12)])
    )


def test_a_steering_vector_is_an_add_edit(model):
    ids = torch.randint(1, 90, (2, 6), generator=torch.Generator().manual_seed(2))
    v = SteeringVector(torch.randn(64, generator=torch.Generator().manual_seed(3)), "resid_post.0")
    ref = intervene(model, [edit.add("resid_post.0", v.direction, coef=2.5)]).run(ids).logits
    assert torch.equal(intervene(model, [v.edit(2.5)]).run(ids).logits, ref)
    assert torch.equal(v * 2.0, v.direction * 2.0) and torch.equal(-v, -v.direction)
    assert "resid_post.0" in repr(v)


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda m, ids: vector(m, ids, ids, "resid_post"), "one site of one layer"),
        (lambda m, ids: vector(m, ids, ids, "resid_post.7"), "out of range"),
        (lambda m, ids: vector(m, ids, ids, "resid_post.0", method="pca"), "method must be"),
        (lambda m, ids: vector(m, ids, ids, "resid_post.0", position=9), "position 9"),
        (lambda m, ids: vector(m, ["a text"], ids, "resid_post.0"), "pass tokenizer="),
        (lambda m, ids: vector(m, ids.float(), ids, "resid_post.0"), "token ids"),
    ],
)
def test_vector_errors_are_clear(model, call, match):
    ids = torch.randint(1, 90, (3, 6))
    with pytest.raises(SteeringError, match=match):
        call(model, ids)
    assert owned_hooks() == []


# -- the sweep ------------------------------------------------------------------------------------


def _hooked_logits(model, direction, coef, ids, positions=None):
    """Logits with coef * direction added to the output of block 1 (at ``positions``)."""

    def hook(m, a, out):
        y = out.clone()
        if positions is None:
            y = y + coef * direction
        else:
            y[:, positions] = y[:, positions] + coef * direction
        return y

    handle = model.transformer.h[1].register_forward_hook(hook)
    try:
        with torch.no_grad():
            return model(ids).logits
    finally:
        handle.remove()


def test_sweep_values_equal_forwards_with_a_hand_written_hook(model):
    g = torch.Generator().manual_seed(4)
    ids = torch.randint(1, 90, (6, 8), generator=g)
    a, b = torch.randint(1, 90, (6,), generator=g), torch.randint(1, 90, (6,), generator=g)
    v = SteeringVector(torch.randn(64, generator=g), "resid_post.1")
    coefs = (-2.0, 0.0, 3.0)
    result = sweep(
        model,
        v,
        ids,
        logit_diff(a, b),
        coefficients=coefs,
        controls=3,
        positions=[-1],
        progress=False,
    )
    n = torch.arange(6)
    for i, c in enumerate(coefs):
        logits = _hooked_logits(model, v.direction, c, ids, positions=[7])[:, -1]
        np.testing.assert_allclose(
            result.scores[i], (logits[n, a] - logits[n, b]).numpy(), atol=1e-5
        )
        for k in range(3):
            logits = _hooked_logits(model, result.control_directions[k], c, ids, [7])[:, -1]
            np.testing.assert_allclose(
                result.control_scores[k, i], (logits[n, a] - logits[n, b]).numpy(), atol=1e-5
            )
    np.testing.assert_allclose(result.changes, result.scores - result.scores[1])
    assert result.stats.mean[1] == 0 and not result.stats.tested[1]


def test_a_function_metric_and_kl_to_the_unsteered_run(model):
    g = torch.Generator().manual_seed(5)
    ids = torch.randint(1, 90, (4, 7), generator=g)
    v = SteeringVector(torch.randn(64, generator=g), "resid_post.1")

    def entropy(logits):
        lp = logits[:, -1].log_softmax(-1)
        return -(lp.exp() * lp).sum(-1)

    result = sweep(model, v, ids, entropy, coefficients=(0, 2), controls=2, progress=False)
    for i, c in enumerate((0.0, 2.0)):
        ref = entropy(_hooked_logits(model, v.direction, c, ids))
        np.testing.assert_allclose(result.scores[i], ref.numpy(), atol=1e-5)
    kl = sweep(model, v, ids, kl_to_clean(), coefficients=(0, 2), controls=2, progress=False)
    clean = _hooked_logits(model, v.direction, 0.0, ids)[:, -1].log_softmax(-1)
    steered = _hooked_logits(model, v.direction, 2.0, ids)[:, -1].log_softmax(-1)
    ref = (clean.exp() * (clean - steered)).sum(-1)
    np.testing.assert_allclose(kl.scores[1], ref.numpy(), atol=1e-5)
    assert np.all(kl.scores[0] == 0)


def test_control_directions_have_the_vectors_norm_and_follow_the_seed():
    direction = torch.randn(64, generator=torch.Generator().manual_seed(6)) * 3
    dirs = random_directions(6, direction, seed=1)
    assert dirs.shape == (6, 64)
    torch.testing.assert_close(dirs.norm(dim=1), direction.norm().expand(6), atol=1e-5, rtol=0)
    assert torch.equal(dirs, random_directions(6, direction, seed=1))
    assert not torch.allclose(dirs, random_directions(6, direction, seed=2))
    cos = torch.nn.functional.normalize(dirs, dim=1) @ torch.nn.functional.normalize(dirs, dim=1).T
    assert (cos - torch.eye(6)).abs().max() < 0.6  # distinct directions


def test_generations_side_by_side_and_one_ledger_record(model):
    g = torch.Generator().manual_seed(7)
    ids = torch.randint(1, 90, (3, 5), generator=g)
    v = SteeringVector(torch.randn(64, generator=g) * 5, "resid_post.1")
    seen = []
    unsubscribe = events.subscribe(seen.append)
    try:
        result = sweep(
            model,
            v,
            ids,
            logprob(3),
            coefficients=(-4, 4),
            controls=2,
            progress=False,
            generate={"max_new_tokens": 3},
        )
    finally:
        unsubscribe()
    assert [r["kind"] for r in seen] == ["intervention"]
    assert seen[0]["direction"] is True and seen[0]["baseline"] == "random"
    assert seen[0]["sites"] == ["resid_post.1"] and seen[0]["operations"] == ["add"]
    frame = result.generations
    assert list(frame.columns) == [-4.0, 0.0, 4.0] and len(frame) == 3
    for c in (-4.0, 0.0, 4.0):
        with intervene(model, [v.edit(c)] if c else [], record=False):
            out = model.generate(ids, max_new_tokens=3, do_sample=False, pad_token_id=0)
        assert frame[c].tolist() == out[:, 5:].tolist()


def test_the_result_as_table_picture_and_words(model):
    g = torch.Generator().manual_seed(8)
    ids = torch.randint(1, 90, (5, 6), generator=g)
    v = SteeringVector(torch.randn(64, generator=g), "resid_post.1")
    result = sweep(model, v, ids, logprob(4), coefficients=(-2, 2), controls=3, progress=False)
    assert isinstance(result, SweepResult)
    frame = result.to_dataframe()
    assert list(frame.columns) == [
        "coefficient",
        "kind",
        "mean",
        "low",
        "high",
        "p",
        "p_prompts",
        "p_directions",
        "significant",
    ]
    assert len(frame) == 6 and set(frame["kind"]) == {"steer", "control"}
    steer = frame[frame.kind == "steer"].set_index("coefficient")
    np.testing.assert_allclose(steer["mean"], result.changes.mean(1))
    assert np.isnan(steer.loc[0.0, "p"])
    text = repr(result)
    assert text.splitlines()[0].startswith(("Steering along", "No coefficient"))
    assert "random directions of the same norm" in text.splitlines()[0]
    png = result._repr_png_()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(result.per_prompt()) == 15


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(controls=1), "at least 2"),
        (dict(coefficients=(1, 1)), "repeat"),
        (dict(coefficients=(float("nan"),)), "finite"),
        (dict(alpha=2.0), "alpha"),
        (dict(generate=5), "generate must be a dict"),
        (dict(positions="x"), "cannot read positions"),
    ],
)
def test_sweep_errors_come_before_any_forward(model, kwargs, match):
    ids = torch.randint(1, 90, (3, 6))
    v = SteeringVector(torch.randn(64), "resid_post.1")
    calls = []
    spy = model.register_forward_pre_hook(lambda *a: calls.append(1))
    try:
        with pytest.raises(Exception, match=match):
            sweep(model, v, ids, logprob(3), progress=False, **kwargs)
    finally:
        spy.remove()
    assert calls == []
    with pytest.raises(SteeringError, match="SteeringVector"):
        sweep(model, torch.randn(64), ids, logprob(3), progress=False)
    spy = model.register_forward_pre_hook(lambda *a: calls.append(1))
    try:
        with pytest.raises(InterventionError, match="shape \\(10,\\)"):
            sweep(model, SteeringVector(torch.randn(10), "resid_post.1"), ids, logprob(3))
    finally:
        spy.remove()
    assert calls == [] and owned_hooks() == []


def test_a_vector_that_cannot_move_the_metric_is_never_significant(model):
    """Steering only the last token cannot change the logits at position 2 (causal attention):
    every change is 0, so no coefficient is a test and none is significant."""
    ids = torch.randint(1, 90, (6, 7), generator=torch.Generator().manual_seed(9))
    v = SteeringVector(
        torch.randn(64, generator=torch.Generator().manual_seed(10)) * 4, "resid_post.0"
    )
    result = sweep(
        model, v, ids, logprob(5, position=2), positions=[-1], controls=3, progress=False
    )
    assert np.abs(result.changes).max() < 1e-5
    assert not result.stats.significant.any()
    assert result.verdict().startswith("No coefficient")


def _dispatched(model, folder):
    """``model`` (a 3-block GPT-2) dispatched by accelerate: block 1 and the ends on disk."""
    import copy

    import accelerate

    device = "cuda:0" if torch.cuda.is_available() else "cpu"
    dm = {"lm_head": "disk", "transformer.wte": "disk", "transformer.wpe": device}
    dm.update({"transformer.ln_f": device, "transformer.drop": device})
    dm.update({f"transformer.h.{i}": "disk" if i == 1 else device for i in range(3)})
    return accelerate.dispatch_model(copy.deepcopy(model), device_map=dm, offload_dir=str(folder))


@pytest.mark.parametrize("kind", ["nnsight", "dispatched"])
def test_wrapped_and_dispatched_models_give_the_plain_values(model, kind, tmp_path):
    import nnsight

    other = nnsight.NNsight(model) if kind == "nnsight" else _dispatched(model, tmp_path)
    g = torch.Generator().manual_seed(14)
    pos, neg = torch.randint(1, 90, (4, 6), generator=g), torch.randint(1, 90, (4, 6), generator=g)
    ids = torch.randint(1, 90, (5, 6), generator=g)
    ref_v = vector(model, pos, neg, "resid_post.1")
    got_v = vector(other, pos, neg, "resid_post.1")
    torch.testing.assert_close(got_v.direction, ref_v.direction, atol=1e-5, rtol=0)
    kw = dict(coefficients=(-2, 0, 2), controls=2, positions=[-1], progress=False)
    ref = sweep(model, ref_v, ids, logprob(3), **kw)
    got = sweep(other, ref_v, ids, logprob(3), **kw)
    np.testing.assert_allclose(got.scores, ref.scores, atol=1e-5)
    np.testing.assert_allclose(got.control_scores, ref.control_scores, atol=1e-5)
    assert owned_hooks() == []


# -- the toy model: induction -----------------------------------------------------------------------


def _single_repeats(n, length, seed):
    """Random distinct tokens after <bos>; the last token repeats one earlier token, so an
    induction circuit predicts the token that followed it (the target)."""
    g = torch.Generator().manual_seed(seed)
    rows, targets = [], []
    for _ in range(n):
        seq = torch.cat(
            [torch.tensor([toy.BOS]), torch.randperm(48, generator=g)[: length - 1] + 1]
        )
        j = int(torch.randint(1, length - 3, (1,), generator=g))
        seq[-1] = seq[j]
        rows.append(seq)
        targets.append(seq[j + 1])
    return torch.stack(rows), torch.stack(targets)


def test_a_repeated_minus_random_vector_steers_induction_beyond_random_directions():
    model = toy.load()
    g = torch.Generator().manual_seed(0)
    repeated = toy.repeated_sequences(64, seed=1)[:, :25]  # 8 tokens into the repeat
    random_ids = torch.cat(
        [
            torch.zeros(64, 1, dtype=torch.long),
            torch.stack([torch.randperm(48, generator=g)[:24] + 1 for _ in range(64)]),
        ],
        1,
    )
    v = vector(model, repeated, random_ids, "attn_out.1")
    prompts, targets = _single_repeats(32, 25, seed=5)
    coefs = (-0.1, -0.05, 0, 0.05, 0.1)
    result = sweep(
        model, v, prompts, logprob(targets), coefficients=coefs, controls=6, progress=False
    )
    s = result.stats
    # the sign is right: adding the vector raises the induction target's log-probability,
    # subtracting it lowers it, monotonically
    assert s.slope > 0
    assert np.all(np.diff(s.mean) > 0)
    assert s.mean[0] < 0 < s.mean[-1]
    # beyond the band random directions of the same norm give, and significant after Holm
    for c in (-0.05, 0.05, 0.1):
        i = coefs.index(c)
        assert (s.mean[i] > s.control_high[i]) if c > 0 else (s.mean[i] < s.control_low[i])
    assert s.significant[coefs.index(0.05)] and s.significant[coefs.index(0.1)]
    assert result.verdict().startswith("Steering along the mean_diff vector at attn_out.1")


# -- the statistics, by simulation --------------------------------------------------------------------


def test_holm_equals_statsmodels():
    from statsmodels.stats.multitest import multipletests

    rng = np.random.default_rng(0)
    for _ in range(5):  # statsmodels' holm runs gc.collect() each call: slow with a model loaded
        p = rng.uniform(0, 1, rng.integers(1, 9)) ** 3
        np.testing.assert_allclose(holm(p), multipletests(p, method="holm")[1])


COEFS = np.array([-8.0, -4.0, -2.0, 0.0, 2.0, 4.0, 8.0])


def _simulate(rng, *, n=20, k=5, steer_effect=None, direction_sd=0.0):
    """Per-prompt changes of one simulated sweep: every direction j has a mean effect
    ``a_j * coef`` (a_j ~ N(0, direction_sd), or ``steer_effect`` for the vector) plus prompt
    noise growing with |coef|; coefficient 0 changes nothing."""
    scale = 0.2 + 0.1 * np.abs(COEFS)  # noise per prompt
    a = rng.normal(0.0, direction_sd, k + 1)
    if steer_effect is not None:
        a[0] = steer_effect
    true = a[:, None] * COEFS[None, :] / 8  # [k+1, C]
    changes = true[:, :, None] + rng.normal(0, 1, (k + 1, len(COEFS), n)) * scale[None, :, None]
    changes[:, COEFS == 0] = 0.0
    return changes[0], changes[1:], true[0]


@pytest.mark.parametrize("direction_sd", [0.0, 0.3])
def test_family_wise_false_positives_are_at_most_alpha(direction_sd):
    """Null 1 (sd 0): no direction moves the metric. Null 2 (sd 0.3): the vector is just
    another random direction; directions differ from each other. 'significant' at any
    coefficient happens in at most alpha + 2 SE of 400 sweeps in both; the paired test alone
    fails null 2 (that is why the directions test is there)."""
    rng = np.random.default_rng(123 + int(direction_sd * 10))
    alpha, sims = 0.05, 400
    any_hit = paired_only = 0
    for _ in range(sims):
        steer, controls, _ = _simulate(rng, direction_sd=direction_sd)
        s = dose_response(COEFS, steer, controls, alpha=alpha)
        any_hit += bool(s.significant.any())
        paired_only += bool((s.p_prompts[s.tested] < alpha).any())
    rate = any_hit / sims
    se = np.sqrt(alpha * (1 - alpha) / sims)
    assert rate <= alpha + 2 * se, rate
    if direction_sd > 0:
        # the paired test alone calls a random direction real far more often than alpha
        assert paired_only / sims > 4 * alpha


def test_intervals_cover_the_mean_change_at_their_level():
    rng = np.random.default_rng(7)
    alpha, sims = 0.05, 400
    covered = total = 0
    for _ in range(sims):
        steer, controls, true = _simulate(rng, steer_effect=rng.normal(0, 1), direction_sd=0.3)
        s = dose_response(COEFS, steer, controls, alpha=alpha)
        tested = s.tested
        covered += int(((s.low <= true) & (true <= s.high))[tested].sum())
        total += int(tested.sum())
    coverage = covered / total
    se = np.sqrt(alpha * (1 - alpha) / total)
    assert abs(coverage - (1 - alpha)) <= 2 * se, coverage


def test_a_real_effect_is_found():
    rng = np.random.default_rng(11)
    found = 0
    for _ in range(100):
        steer, controls, _ = _simulate(rng, steer_effect=3.0, direction_sd=0.3)
        s = dose_response(COEFS, steer, controls)
        found += bool(s.significant[[0, -1]].all()) and s.slope > 0
    assert found >= 80
