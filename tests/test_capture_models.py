"""Captured activations equal the models' own outputs, exactly, for every supported family."""

import pytest
import torch

from interp_magics import capture


def _resid_checks(model, ids, final_norm):
    n = model.config.num_hidden_layers
    with capture(model, ["resid_pre", "resid_post"]) as acts:
        out = model(ids, output_hidden_states=True)
    hs = out.hidden_states
    assert len(acts) == 2 * n
    for layer in range(n):
        assert torch.equal(acts[f"resid_pre.{layer}"], hs[layer])
    for layer in range(n - 1):
        assert torch.equal(acts[f"resid_post.{layer}"], hs[layer + 1])
    # HF applies the final norm to the last hidden state; the block output is before it.
    assert torch.equal(final_norm(acts[f"resid_post.{n - 1}"]), hs[n])
    assert acts.adapter is not None
    return acts


def test_gpt2_block_outputs_equal_hidden_states(gpt2, ids):
    acts = _resid_checks(gpt2, ids, gpt2.transformer.ln_f)
    assert acts.adapter == "gpt2"
    with capture(gpt2, "transformer.h.*") as globbed:
        gpt2(ids)
    for layer in range(3):
        assert torch.equal(globbed[f"transformer.h.{layer}"], acts[f"resid_post.{layer}"])


def test_llama_gqa_block_outputs_equal_hidden_states(llama, ids):
    acts = _resid_checks(llama, ids, llama.model.norm)
    assert acts.adapter == "llama"


def test_neox_block_outputs_equal_hidden_states(neox, ids):
    acts = _resid_checks(neox, ids, neox.gpt_neox.final_layer_norm)
    assert acts.adapter == "gpt-neox"


@pytest.mark.parametrize("family", ["gpt2", "llama"])
def test_sequential_residual_decomposes_exactly(family, gpt2, llama, ids):
    model = {"gpt2": gpt2, "llama": llama}[family]
    with capture(model, ["resid_pre", "resid_post", "attn_out", "mlp_out"]) as acts:
        model(ids)
    for layer in range(3):
        mid = acts[f"attn_out.{layer}"] + acts[f"resid_pre.{layer}"]
        assert torch.equal(mid + acts[f"mlp_out.{layer}"], acts[f"resid_post.{layer}"])


def test_neox_parallel_residual_decomposes(neox, ids):
    with capture(neox, ["resid_pre", "resid_post", "attn_out", "mlp_out"]) as acts:
        neox(ids)
    for layer in range(3):
        total = acts[f"resid_pre.{layer}"] + acts[f"attn_out.{layer}"] + acts[f"mlp_out.{layer}"]
        torch.testing.assert_close(total, acts[f"resid_post.{layer}"], rtol=0, atol=1e-5)


def _batch(tok):
    return tok(
        ["The cat sat on the mat.", "Attention is all you need, they said."],
        padding=True,
        return_tensors="pt",
    )


def test_minilm_layer_outputs_equal_hidden_states(minilm):
    model, tok = minilm
    batch = _batch(tok)
    with capture(model, ["encoder.layer.*.output"]) as acts:
        out = model(**batch, output_hidden_states=True)
    assert list(acts) == [f"encoder.layer.{i}.output" for i in range(6)]
    assert torch.equal(acts.stack("encoder.layer.*.output"), torch.stack(out.hidden_states[1:]))
    # padding is recorded so later analyses can skip pad positions
    assert torch.equal(acts.attention_mask, batch["attention_mask"])
    assert torch.equal(acts.input_ids, batch["input_ids"])
    assert int((acts.attention_mask == 0).sum()) > 0


def test_minilm_canonical_sites_compose_through_layernorm(minilm):
    model, tok = minilm
    batch = _batch(tok)
    with capture(
        model,
        ["resid_pre", "resid_post", "attn_out", "mlp_out", "encoder.layer.*.attention.output"],
    ) as acts:
        out = model(**batch, output_hidden_states=True)
    assert acts.adapter == "bert"
    for layer in range(6):
        block = model.encoder.layer[layer]
        assert torch.equal(acts[f"resid_pre.{layer}"], out.hidden_states[layer])
        assert torch.equal(acts[f"resid_post.{layer}"], out.hidden_states[layer + 1])
        mid = acts[f"encoder.layer.{layer}.attention.output"]
        assert torch.equal(
            block.attention.output.LayerNorm(
                acts[f"attn_out.{layer}"] + acts[f"resid_pre.{layer}"]
            ),
            mid,
        )
        assert torch.equal(
            block.output.LayerNorm(acts[f"mlp_out.{layer}"] + mid), acts[f"resid_post.{layer}"]
        )


def _eager_attentions(model, *args, **kwargs):
    impl = model.config._attn_implementation
    model.set_attn_implementation("eager")
    try:
        return model(*args, output_attentions=True, **kwargs).attentions
    finally:
        model.set_attn_implementation(impl)


@pytest.mark.parametrize("family", ["gpt2", "llama", "neox"])
def test_patterns_equal_eager_attentions_and_restore_kernel(family, gpt2, llama, neox, ids):
    model = {"gpt2": gpt2, "llama": llama, "neox": neox}[family]
    assert model.config._attn_implementation == "sdpa"
    with capture(model, "pattern") as acts:
        model(ids)
    assert model.config._attn_implementation == "sdpa"
    assert any("eager" in note for note in acts.notes)
    ref = _eager_attentions(model, ids)
    for layer in range(3):
        p = acts[f"pattern.{layer}"]
        assert p.shape == (2, 4, 9, 9)  # per query head, also with 2 KV heads (GQA)
        assert torch.equal(p, ref[layer])
        torch.testing.assert_close(p.sum(-1), torch.ones(2, 4, 9))
        assert torch.all(torch.triu(p, diagonal=1) == 0)  # causal


def test_minilm_patterns_ignore_padding(minilm):
    model, tok = minilm
    batch = _batch(tok)
    with capture(model, "pattern.{0-1}") as acts:
        model(**batch)
    ref = _eager_attentions(model, **batch)
    assert torch.equal(acts["pattern.0"], ref[0])
    short = int(batch["attention_mask"][0].sum())
    assert acts["pattern.1"][0, :, :, short:].abs().max() < 1e-6  # pad keys get no attention


def test_transformer_bridge_matches_hf_and_run_with_cache(bridge, ids):
    br, hf = bridge
    with capture(br, ["resid_pre", "resid_post", "pattern", "blocks.*.hook_mlp_out"]) as acts:
        br(ids)
    assert acts.adapter == "transformer-lens"
    hs = hf(ids, output_hidden_states=True).hidden_states
    _, cache = br.run_with_cache(ids)
    for layer in range(3):
        assert torch.equal(acts[f"resid_pre.{layer}"], hs[layer])
        assert torch.equal(acts[f"resid_post.{layer}"], cache[f"blocks.{layer}.hook_resid_post"])
        assert torch.equal(acts[f"pattern.{layer}"], cache[f"blocks.{layer}.attn.hook_pattern"])
        assert torch.equal(
            acts[f"blocks.{layer}.hook_mlp_out"], cache[f"blocks.{layer}.hook_mlp_out"]
        )
    assert torch.equal(acts["resid_post.1"], hs[2])


def test_transformer_bridge_heads_have_the_hf_layout(bridge, ids):
    """``head_out`` is ``[batch, pos, head, d_head]`` on a bridge as on the HF model, whether the
    TransformerLens version keeps ``hook_z`` per head or flattens it."""
    br, hf = bridge
    with torch.no_grad(), capture(br, "head_out.1") as got:
        br(ids)
    with torch.no_grad(), capture(hf, "head_out.1") as want:
        hf(ids)
    assert got["head_out.1"].shape == want["head_out.1"].shape
    assert got["head_out.1"].shape[2] == hf.config.n_head
    torch.testing.assert_close(got["head_out.1"], want["head_out.1"], atol=1e-5, rtol=0)
