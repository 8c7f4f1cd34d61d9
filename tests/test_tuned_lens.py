"""The tuned lens through the ``tuned-lens`` package: identity translators equal the logit lens,
a lens trained a few dozen steps on the toy model's data decodes layer 0 closer to the final
distribution (checked by the test's own KL computation), and save -> load round-trips through
the package's published layout and loader."""

from __future__ import annotations

import json

import pytest
import torch
from tuned_lens.nn import TunedLens

from interp_magics import owned_hooks, toy
from interp_magics.core.anatomy import anatomy
from interp_magics.lens import (
    LensError,
    load_tuned_lens,
    logit_lens,
    new_tuned_lens,
    train_tuned_lens,
    tuned_lens,
)
from interp_magics.testing import gpt2, llama


@pytest.fixture(scope="module")
def toy_model():
    return toy.load()


@pytest.fixture(scope="module")
def trained(toy_model):
    """A lens trained 30 steps on the toy model's training distribution (seeded)."""
    data = toy.training_batch(96, generator=torch.Generator().manual_seed(1))
    lens = train_tuned_lens(toy_model, data, steps=30, batch_size=16, progress=False, seed=0)
    return lens, data


@pytest.fixture(scope="module")
def held_out():
    return toy.training_batch(8, generator=torch.Generator().manual_seed(2))


@pytest.mark.parametrize("build", [gpt2, llama])
def test_a_fresh_lens_is_the_logit_lens(build):
    model = build()
    ids = torch.randint(1, 97, (2, 6), generator=torch.Generator().manual_seed(0))
    lens = new_tuned_lens(model)
    assert isinstance(lens, TunedLens) and len(lens) == anatomy(model).n_layers
    # the lens holds its translators only: the model's norm and unembedding stay in place
    assert {k.split(".")[0] for k in lens.state_dict()} == {"layer_translators"}
    got = tuned_lens(model, ids, lens=lens, answer=3)
    ref = logit_lens(model, ids, answer=3)
    assert got.method == "tuned lens" and ref.method == "logit lens"
    assert torch.equal(got.top_ids, ref.top_ids)
    for name in ("top_probs", "kl_to_final", "entropy", "answer_logprob"):
        torch.testing.assert_close(getattr(got, name), getattr(ref, name), atol=1e-5, rtol=0)


def _kl_by_hand(model, lens, ids, layer):
    """KL(final || lens at ``layer``), averaged over tokens, from plain torch: the translator
    ``h + W h + b`` on HF's hidden state, the model's own final norm and head."""
    out = model(ids, output_hidden_states=True)
    h = out.hidden_states[layer]
    if lens is not None:
        t = lens.layer_translators[layer]
        h = h + h @ t.weight.T + t.bias
    logp = model.lm_head(model.model.norm(h)).float().log_softmax(-1)
    final = out.logits.float().log_softmax(-1)
    kl = torch.nn.functional.kl_div(logp, final, log_target=True, reduction="none").sum(-1)
    return kl.detach()


def test_training_brings_layer_0_closer_to_the_final_layer(toy_model, trained, held_out):
    lens, _ = trained
    tuned = tuned_lens(toy_model, held_out, lens=lens)
    plain = logit_lens(toy_model, held_out)
    for layer in (0, 1):
        torch.testing.assert_close(
            tuned.kl_to_final[layer], _kl_by_hand(toy_model, lens, held_out, layer), atol=1e-5,
            rtol=0,
        )  # fmt: skip
        torch.testing.assert_close(
            plain.kl_to_final[layer], _kl_by_hand(toy_model, None, held_out, layer), atol=1e-5,
            rtol=0,
        )  # fmt: skip
    before, after = float(plain.kl_to_final[0].mean()), float(tuned.kl_to_final[0].mean())
    # measured on held-out data: 1.45 nats for the logit lens, 1.12 after 30 steps
    assert before > 1.3 and after < before - 0.2
    assert float(tuned.kl_to_final[1].mean()) < float(plain.kl_to_final[1].mean())
    assert torch.all(tuned.kl_to_final[-1] == 0)  # the last stream is the model's output


def test_training_is_seeded_and_leaves_the_model_alone(toy_model, trained):
    lens, data = trained
    before = {k: v.clone() for k, v in toy_model.state_dict().items()}
    again = train_tuned_lens(toy_model, data, steps=30, batch_size=16, progress=False, seed=0)
    for a, b in zip(lens.parameters(), again.parameters(), strict=True):
        assert torch.equal(a, b)
    assert all(torch.equal(v, toy_model.state_dict()[k]) for k, v in before.items())
    assert all(p.grad is None for p in toy_model.parameters())
    assert owned_hooks() == []


def test_progress_is_shown_with_tqdm(toy_model, capsys):
    data = toy.training_batch(4, generator=torch.Generator().manual_seed(3))
    train_tuned_lens(toy_model, data, steps=2, batch_size=4, progress=True)
    err = capsys.readouterr().err
    assert "training the tuned lens" in err and "2/2" in err and "kl=" in err


def test_save_and_load_round_trip(toy_model, trained, held_out, tmp_path):
    lens, _ = trained
    lens.save(tmp_path / "lens")  # the package's published layout
    assert sorted(p.name for p in (tmp_path / "lens").iterdir()) == ["config.json", "params.pt"]
    config = json.loads((tmp_path / "lens" / "config.json").read_text())
    assert config["d_model"] == 64 and config["num_hidden_layers"] == 2
    loaded = load_tuned_lens(toy_model, tmp_path / "lens")
    for a, b in zip(lens.parameters(), loaded.parameters(), strict=True):
        assert torch.equal(a, b)
    ref = tuned_lens(toy_model, held_out, lens=lens, answer=5)
    for got in (
        tuned_lens(toy_model, held_out, lens=loaded, answer=5),
        tuned_lens(toy_model, held_out, lens=str(tmp_path / "lens"), answer=5),
    ):
        assert torch.equal(got.top_ids, ref.top_ids)
        assert torch.equal(got.top_probs, ref.top_probs)
        assert torch.equal(got.answer_rank, ref.answer_rank)


def test_texts_train_with_the_tokenizer(toy_model):
    texts = ["ABCDABCD", "EFGHEFGH", "IJKLIJKL"]
    lens = train_tuned_lens(toy_model, texts, steps=3, batch_size=3, progress=False)
    ids = toy.Tokenizer()(texts)["input_ids"]
    by_ids = train_tuned_lens(toy_model, ids, steps=3, batch_size=3, progress=False)
    for a, b in zip(lens.parameters(), by_ids.parameters(), strict=True):
        assert torch.equal(a, b)
    assert any(float(p.detach().abs().max()) > 0 for p in lens.parameters())


def test_lenses_that_do_not_fit_are_refused(toy_model, tmp_path):
    other = new_tuned_lens(gpt2(n_embd=32, n_head=2))
    ids = toy.repeated_sequences(2, half=4)
    with pytest.raises(LensError, match="3 translators of width 32; LlamaForCausalLM needs 2"):
        tuned_lens(toy_model, ids, lens=other)
    with pytest.raises(LensError, match="must be a tuned_lens.nn.TunedLens"):
        tuned_lens(toy_model, ids, lens=torch.nn.Linear(64, 64))
    other.save(tmp_path / "other")
    with pytest.raises(LensError, match="d_model 32 and 3 layers; LlamaForCausalLM has d_model 64"):
        load_tuned_lens(toy_model, tmp_path / "other")
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "config.json").write_text("{}")
    with pytest.raises(LensError, match="not a tuned-lens folder: it lacks params.pt"):
        tuned_lens(toy_model, ids, lens=tmp_path / "half")
    with pytest.raises(LensError, match="steps must be a positive integer"):
        train_tuned_lens(toy_model, ids, steps=0)
    with pytest.raises(LensError, match="no training data"):
        train_tuned_lens(toy_model, [], steps=1)
