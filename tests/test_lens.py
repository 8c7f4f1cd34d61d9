"""The logit lens against plain-torch references: the model's own logits at the last layer,
``lm_head(final_norm(hidden_states[l]))`` at every other, ranks by ``argsort``; on GPT-2,
Llama (grouped-query) and GPT-NeoX built from configs, dispatched with disk offload and
wrapped by nnsight; and the errors that come before any forward pass."""

from __future__ import annotations

import copy

import accelerate
import nnsight
import pytest
import torch

from interp_magics import owned_hooks, toy
from interp_magics.core.anatomy import anatomy
from interp_magics.lens import LensError, LensResult, logit_lens
from interp_magics.lens.inputs import lens_model
from interp_magics.lens.readout import Readout
from interp_magics.testing import bpe_tokenizer, gpt2, llama, neox

BUILDERS = {"gpt2": gpt2, "llama": llama, "neox": neox}
VOCAB = 97


@pytest.fixture(scope="module", params=sorted(BUILDERS))
def model(request):
    return BUILDERS[request.param]()


@pytest.fixture(scope="module")
def ids():
    g = torch.Generator().manual_seed(3)
    return torch.randint(1, VOCAB, (3, 8), generator=g)


def _reference(model, ids):
    """Per residual stream, the log-probabilities computed by hand (HF's hidden states; the
    last one is HF's already-normed output, so the model's logits stand for it)."""
    out = model(ids, output_hidden_states=True)
    anat = anatomy(model)
    norm, unembed = model.get_submodule(anat.final_norm), model.get_submodule(anat.unembed)
    streams = [unembed(norm(h)) for h in out.hidden_states[:-1]] + [out.logits]
    return [s.detach().float().log_softmax(-1) for s in streams]


def test_the_last_layer_is_the_models_own_output(model, ids):
    ref = model(ids).logits.detach()
    # the readout applied to the last block's output (a plain hook) gives the logits themselves
    anat = anatomy(model)
    seen = []
    block = model.get_submodule(anat.block(anat.n_layers - 1))
    handle = block.register_forward_hook(
        lambda m, a, out: seen.append((out[0] if isinstance(out, tuple) else out).detach())
    )
    try:
        model(ids)
    finally:
        handle.remove()
    logits = Readout(model, anat).logits(seen[0]).detach()
    torch.testing.assert_close(logits, ref, atol=1e-5, rtol=0)
    # and the lens keeps the whole distribution when k is the vocabulary
    result = logit_lens(model, ids, k=VOCAB)
    probs, order = ref.softmax(-1).sort(-1, descending=True)
    torch.testing.assert_close(result.top_probs[-1], probs, atol=1e-6, rtol=0)
    assert torch.equal(result.top_ids[-1, ..., :5], order[..., :5])
    assert result.layer_labels[-1] == f"L{anat.n_layers - 1}"
    assert torch.all(result.kl_to_final[-1] == 0)


def test_every_layer_matches_the_hidden_states_reference(model, ids):
    result = logit_lens(model, ids, k=5)
    ref = _reference(model, ids)
    n = anatomy(model).n_layers
    assert result.layers == tuple(range(n + 1))
    assert result.layer_labels == ["embed"] + [f"L{i}" for i in range(n)]
    assert result.top_ids.shape == (n + 1, 3, 8, 5)
    final = ref[-1]
    for layer, logp in enumerate(ref):
        values, top = logp.topk(5)
        torch.testing.assert_close(result.top_probs[layer], values.exp(), atol=1e-5, rtol=0)
        assert torch.equal(result.top_ids[layer], top)
        kl = torch.nn.functional.kl_div(logp, final, log_target=True, reduction="none").sum(-1)
        torch.testing.assert_close(result.kl_to_final[layer], kl, atol=1e-5, rtol=0)
        entropy = -(logp.exp() * logp).sum(-1)
        torch.testing.assert_close(result.entropy[layer], entropy, atol=1e-5, rtol=0)
    # early layers of a random model decode far from its output; the last decodes to it
    assert float(result.kl_to_final[0].mean()) > 1e-4


def test_answer_rank_trajectory_equals_argsort(model, ids):
    answer = torch.tensor([5, 17, 60])
    result = logit_lens(model, ids, answer=answer)
    ref = _reference(model, ids)
    for layer, logp in enumerate(ref):
        order = logp.argsort(-1, descending=True)
        rank = (order == answer[:, None, None]).float().argmax(-1)
        assert torch.equal(result.answer_rank[layer], rank)
        picked = logp.gather(-1, answer[:, None, None].expand(3, 8, 1)).squeeze(-1)
        torch.testing.assert_close(result.answer_logprob[layer], picked, atol=1e-5, rtol=0)
    torch.testing.assert_close(result.answer_prob, result.answer_logprob.exp())
    table = result.trajectory(1)
    assert table.attrs["position"] == 7 and list(table["layer"]) == list(result.layers)
    assert list(table["answer_rank"]) == result.answer_rank[:, 1, -1].tolist()
    assert table["answer_prob"].tolist() == pytest.approx(result.answer_prob[:, 1, -1].tolist())
    # one id stands for every example
    single = logit_lens(model, ids, answer=5)
    assert torch.equal(single.answer_rank[:, 0], result.answer_rank[:, 0])


def test_layers_and_positions_select_from_the_full_result(model, ids):
    full = logit_lens(model, ids, k=3, answer=4)
    n = anatomy(model).n_layers
    part = logit_lens(model, ids, k=3, answer=4, layers=[-1, 0, 1], positions=[2, -1])
    assert part.layers == (0, 1, n) and part.positions == (2, 7)
    assert part.layer_labels == ["embed", "L0", f"L{n - 1}"]
    rows, cols = [0, 1, n], [2, 7]
    for name in ("top_ids", "top_probs", "kl_to_final", "answer_rank", "answer_logprob"):
        expected = getattr(full, name)[rows][:, :, cols]
        torch.testing.assert_close(getattr(part, name), expected, atol=1e-6, rtol=0)


def test_the_dataframe_is_tidy_and_skips_padding():
    model = toy.load()  # carries a tokenizer: token strings in every table
    ids = toy.repeated_sequences(2, half=4)
    mask = torch.ones_like(ids)
    mask[1, -2:] = 0  # right padding in example 1
    result = logit_lens(model, {"input_ids": ids, "attention_mask": mask}, k=2)
    frame = result.to_dataframe()
    n_layer, length = 3, ids.shape[1]
    assert len(frame) == n_layer * (2 * length - 2) * 2
    assert list(frame.columns) == [
        "layer", "layer_label", "example", "position", "input_token", "rank", "token_id",
        "token", "prob",
    ]  # fmt: skip
    assert not ((frame["example"] == 1) & (frame["position"] >= length - 2)).any()
    row = frame[(frame.layer == 2) & (frame.example == 0) & (frame.position == 5)]
    assert row["token_id"].tolist() == result.top_ids[2, 0, 5].tolist()
    assert row["prob"].tolist() == pytest.approx(result.top_probs[2, 0, 5].tolist())
    assert row["token"].tolist() == toy.tokens(result.top_ids[2, 0, 5])
    assert row["input_token"].iloc[0] == toy.tokens(ids[0])[5]
    # the trajectory of the padded example reads its last real token
    assert result.trajectory(1).attrs["position"] == length - 3
    assert result.labels["position"] == toy.tokens(ids[0])


def test_texts_go_through_the_tokenizer():
    model = toy.load()
    texts = ["ABCABC", "DEFDEF"]
    by_text = logit_lens(model, texts, answer=1)
    by_ids = logit_lens(model, toy.Tokenizer()(texts)["input_ids"], answer=1)
    assert torch.equal(by_text.top_ids, by_ids.top_ids)
    assert torch.equal(by_text.top_probs, by_ids.top_probs)
    assert by_text.input_tokens(1) == ["<bos>", "D", "E", "F", "D", "E", "F"]


def test_the_toy_models_induction_shows_at_the_last_layer_only():
    model = toy.load()
    ids = toy.repeated_sequences(8, half=12)
    inputs, answer = ids[:, :-1], ids[:, -1]
    result = logit_lens(model, inputs, answer=answer)
    ranks = result.answer_rank[:, :, -1]
    # the repeated token is predicted by the induction heads in layer 1 (the last block)
    assert (ranks[-1] == 0).float().mean() >= 0.75
    assert (ranks[0] == 0).float().mean() <= 0.25


def test_text_and_picture():
    model = toy.load()
    result = logit_lens(model, toy.repeated_sequences(2, half=4), answer=3)
    text = repr(result)
    assert text.startswith("LensResult: logit lens of LlamaForCausalLM, 3 residual streams")
    assert "rank of the answer 'C' by layer" in text
    assert "mean KL to the final layer over real tokens" in text
    png = result._repr_png_()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5_000
    assert isinstance(result, LensResult) and result.axes == (
        "layer",
        "example",
        "position",
        "rank",
    )


# -- engines: dispatched and nnsight models ---------------------------------------------------


def _dispatched(model, blocks, folder):
    """The same weights dispatched: every other block, the embedding and the head on disk."""
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
    return accelerate.dispatch_model(copy.deepcopy(model), device_map=dm, offload_dir=str(folder))


@pytest.mark.parametrize(("build", "blocks"), [(gpt2, "transformer.h"), (llama, "model.layers")])
def test_dispatched_models_give_the_plain_values(build, blocks, ids, tmp_path):
    plain = build(n_layer=4)
    dispatched = _dispatched(plain, blocks, tmp_path)
    ref = logit_lens(plain, ids, answer=[3, 4, 5])
    got = logit_lens(dispatched, ids, answer=[3, 4, 5])
    assert torch.equal(got.top_ids, ref.top_ids)
    for name in ("top_probs", "kl_to_final", "answer_logprob"):
        torch.testing.assert_close(getattr(got, name), getattr(ref, name), atol=1e-5, rtol=0)
    assert torch.equal(got.answer_rank, ref.answer_rank)
    assert owned_hooks() == []
    assert all(hasattr(m, "_hf_hook") for m in dispatched.modules() if list(m.parameters(False)))


def test_nnsight_models_give_the_plain_values(ids):
    plain = llama()
    for wrapped in (
        nnsight.NNsight(plain),
        nnsight.TransformersModel(plain, tokenizer=bpe_tokenizer()),
    ):
        ref = logit_lens(plain, ids, answer=2)
        got = logit_lens(wrapped, ids, answer=2)
        assert torch.equal(got.top_ids, ref.top_ids)
        torch.testing.assert_close(got.top_probs, ref.top_probs, atol=1e-5, rtol=0)
        torch.testing.assert_close(got.answer_logprob, ref.answer_logprob, atol=1e-5, rtol=0)
    with pytest.raises(LensError, match="remote=True .* not supported"):
        logit_lens(nnsight.NNsight(plain), ids, remote=True)


# -- errors before work ------------------------------------------------------------------------


def _calls(model):
    calls = []
    handle = model.register_forward_pre_hook(lambda *a: calls.append(1))
    return calls, handle


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"layers": [0, 4]}, r"layers \[4\] are out of range: this model has 4 residual streams"),
        ({"layers": [-5]}, r"layers \[-5\] are out of range"),
        ({"layers": []}, "layers is empty"),
        ({"k": 0}, r"k must be an integer from 1 to the vocabulary size \(97\); got 0"),
        ({"k": 98}, "k must be an integer from 1"),
        ({"answer": 97}, r"answer ids \[97\] are outside the model's vocabulary \(0..96\)"),
        ({"answer": [-1]}, r"answer ids \[-1\] are outside"),
        ({"answer": [1, 2]}, "2 answer ids for a batch of 3 examples"),
        ({"answer": 1.5}, "answer must be token ids"),
        ({"positions": [9]}, r"positions \[9\] are out of range for sequence length 8"),
        ({"remote": True}, "remote=True"),
    ],
)
def test_bad_arguments_fail_before_the_forward_pass(ids, kwargs, message):
    model = gpt2()
    calls, handle = _calls(model)
    try:
        with pytest.raises(LensError, match=message):
            logit_lens(model, ids, **kwargs)
    finally:
        handle.remove()
    assert calls == [] and owned_hooks() == []


def test_models_without_a_known_readout_are_refused(ids):
    from transformers import BertConfig, BertForMaskedLM

    bert = BertForMaskedLM(
        BertConfig(
            vocab_size=VOCAB, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
            intermediate_size=64,
        )
    ).eval()  # fmt: skip
    with pytest.raises(LensError, match="no lens for this model: .*bert family"):
        logit_lens(bert, ids)
    with pytest.raises(LensError, match="an unknown architecture"):
        logit_lens(torch.nn.Sequential(torch.nn.Linear(4, 4)), ids)
    with pytest.raises(LensError, match="texts need a tokenizer"):
        logit_lens(gpt2(), ["some text"])
    with pytest.raises(LensError, match="inputs must be a tokenizer output"):
        logit_lens(gpt2(), 3.5)
    base = lens_model(gpt2()).module.transformer  # a decoder without its LM head
    with pytest.raises(LensError, match="has no unembedding"):
        logit_lens(base, ids)
    assert owned_hooks() == []
