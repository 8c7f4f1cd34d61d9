"""The shipped toy model: a real trained transformer whose induction circuit is known."""

from __future__ import annotations

import pytest
import torch

from interp_magics import capture, patching, toy


@pytest.fixture(scope="module")
def model():
    return toy.load()


@pytest.fixture(scope="module")
def ids():
    return toy.repeated_sequences(64, seed=7)


def test_weights_are_small_safetensors_with_their_recipe():
    assert toy.WEIGHTS.suffix == ".safetensors"
    assert toy.WEIGHTS.stat().st_size < 300 * 1024
    assert toy.recipe_of() == toy.Recipe()


def test_it_predicts_the_repeat_in_context_and_nothing_else(model, ids):
    acc = toy.induction_accuracy(model, ids)
    assert acc["repeated_half"] > 0.98
    assert acc["first_half"] < 0.06  # chance is 1/48 for unseen random tokens
    # the first token of the repeat cannot be predicted either (nothing says the run restarts)
    pred = model(ids).logits.argmax(-1)
    assert (pred[:, toy.HALF] == ids[:, toy.HALF + 1]).float().mean() < 0.2


def test_the_circuit_is_the_documented_one(model, ids):
    scores = toy.head_scores(model, ids)
    prev, induction = scores["previous_token"], scores["induction"]
    assert prev.shape == induction.shape == (2, 4)
    assert tuple(int(i) for i in divmod(int(prev.argmax()), 4)) == toy.PREVIOUS_TOKEN_HEAD
    assert prev[toy.PREVIOUS_TOKEN_HEAD] > 0.8
    others = [prev[0, h] for h in range(4) if (0, h) != toy.PREVIOUS_TOKEN_HEAD]
    assert max(others) < 0.3
    for layer, head in toy.INDUCTION_HEADS:
        assert induction[layer, head] > 0.6
    assert induction[0].max() < 0.1  # layer 0 cannot do induction on its own


def test_head_scores_match_an_independent_loop(model):
    ids = toy.repeated_sequences(3, half=10, seed=1)
    pattern = model(ids, output_attentions=True).attentions
    half = 10
    expect_prev = torch.zeros(2, 4)
    expect_ind = torch.zeros(2, 4)
    for layer in range(2):
        for head in range(4):
            p = pattern[layer][:, head]
            expect_prev[layer, head] = torch.stack(
                [p[:, t, t - 1] for t in range(2, 2 * half + 1)]
            ).mean()
            expect_ind[layer, head] = torch.stack(
                [p[:, t, t - half + 1] for t in range(half + 1, 2 * half + 1)]
            ).mean()
    scores = toy.head_scores(model, ids)
    torch.testing.assert_close(scores["previous_token"], expect_prev)
    torch.testing.assert_close(scores["induction"], expect_ind)


def test_ablating_the_previous_token_head_breaks_induction_and_other_heads_do_not(model, ids):
    inputs, answers = ids[:, :-1], ids[:, -1]
    result = patching.ablate(
        model,
        inputs,
        "head_out",
        kind="mean",
        by=("layer", "head"),
        metric=patching.logprob(answers),
        progress=False,
    )
    drop = torch.as_tensor(result.values)  # logprob(ablated) - logprob(clean), [layer, head]
    assert drop.shape == (2, 4)
    assert drop[toy.PREVIOUS_TOKEN_HEAD] < -2.0  # the copy needs the previous-token head
    for head in range(4):
        if (0, head) != toy.PREVIOUS_TOKEN_HEAD:
            assert drop[0, head] > -0.5, (head, drop)


def test_canonical_sites_and_patterns_capture_from_the_toy(model, ids):
    with capture(model, ["pattern", "mlp_out", "resid_post"]) as acts:
        out = model(ids[:2], output_attentions=True)
    names = list(acts)
    pattern = [n for n in names if "pattern" in n or "attn" in n]
    assert pattern, names
    mlp = [acts[n] for n in names if "mlp" in n]
    assert mlp and all(torch.count_nonzero(t) == 0 for t in mlp)  # attention-only
    first = acts[pattern[0]]
    torch.testing.assert_close(first, out.attentions[0])


def test_bad_input_says_what_to_fix(tmp_path):
    with pytest.raises(ValueError, match="half"):
        toy.repeated_sequences(4, half=60)
    with pytest.raises(ValueError, match="n >= 1"):
        toy.repeated_sequences(0)
    with pytest.raises(ValueError, match="one sequence"):
        toy.tokens(torch.zeros(2, 3, dtype=torch.long))
    with pytest.raises(ValueError, match="A-Z and a-v"):
        toy.encode("hello world")
    with pytest.raises(FileNotFoundError, match="train_toy"):
        toy.load(tmp_path / "missing.safetensors")
    assert toy.tokens(toy.encode("AB")[0]) == ["<bos>", "A", "B"]


def test_task_data_is_seeded_and_repeats(ids):
    again = toy.repeated_sequences(64, seed=7)
    assert torch.equal(ids, again)
    assert not torch.equal(ids, toy.repeated_sequences(64, seed=8))
    assert torch.equal(ids[:, 1 : 1 + toy.HALF], ids[:, 1 + toy.HALF :])
    assert (ids[:, 0] == toy.BOS).all()
    first = ids[:, 1 : 1 + toy.HALF]
    assert all(len(set(row.tolist())) == toy.HALF for row in first)  # distinct within a half
    g = torch.Generator().manual_seed(0)
    batch = toy.training_batch(32, generator=g)
    assert batch.shape == (32, 1 + 2 * toy.HALF) and (batch[:, 0] == toy.BOS).all()


@pytest.mark.slow
def test_retraining_from_the_recipe_reproduces_the_circuit():
    """The training script's recipe, from scratch: the same heads do the same jobs."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # as scripts/train_toy.py does
    try:
        model, losses = toy.train(toy.Recipe())
    finally:
        torch.set_num_threads(before)
    assert losses[0] > 3.5 and sum(losses[-100:]) / 100 < 2.9
    ids = toy.repeated_sequences(64, seed=7)
    assert toy.induction_accuracy(model, ids)["repeated_half"] > 0.98
    scores = toy.head_scores(model, ids)
    assert tuple(int(i) for i in divmod(int(scores["previous_token"].argmax()), 4)) == (
        toy.PREVIOUS_TOKEN_HEAD
    )
    assert all(scores["induction"][lh] > 0.6 for lh in toy.INDUCTION_HEADS)


def test_the_attention_viewer_labels_toy_tokens(model):
    from interp_magics.attention import attention_patterns

    ids = toy.repeated_sequences(2, half=5, seed=3)
    result = attention_patterns(model, ids)
    assert result.tokens[0] == toy.tokens(ids[0])
    assert result.shape == (2, 2, 4, 11, 11)
    text = attention_patterns(model, ["ABCAB", "uvauv"])
    assert text.tokens[1] == ["<bos>", "u", "v", "a", "u", "v"]
    with pytest.raises(ValueError, match="equal length"):
        toy.Tokenizer()(["AB", "ABC"])
