"""The anatomy the adapters give lenses and circuits: final norm, unembedding, block norms and
query/key/value projections, checked against each model's own modules."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from interp_magics import CaptureError, testing, toy
from interp_magics.core.anatomy import anatomy

BUILDERS = {"gpt2": testing.gpt2, "llama": testing.llama, "gpt-neox": testing.neox}


@pytest.mark.parametrize("family", list(BUILDERS))
def test_the_anatomy_names_the_modules_the_model_runs(family):
    model = BUILDERS[family]()
    a = anatomy(model)
    modules = dict(model.named_modules())
    assert a.family == family and a.n_layers == model.config.num_hidden_layers
    # the final norm and unembedding are what the model applies to its last hidden state
    ids = torch.randint(0, 50, (2, 6))
    with torch.no_grad():
        out = model(input_ids=ids, output_hidden_states=True)
        last = out.hidden_states[-1]
        # transformers' last hidden state is already normed: recompute from the last block
        block_out = {}
        handle = modules[a.block(a.n_layers - 1)].register_forward_hook(
            lambda m, i, o: block_out.setdefault("h", o[0] if isinstance(o, tuple) else o)
        )
        try:
            model(input_ids=ids)
        finally:
            handle.remove()
        logits = modules[a.unembed](modules[a.final_norm](block_out["h"]))
    torch.testing.assert_close(logits, out.logits, atol=1e-5, rtol=0)
    torch.testing.assert_close(modules[a.final_norm](block_out["h"]), last, atol=1e-5, rtol=0)
    for layer in range(a.n_layers):
        for rel in (a.attn_norm, a.mlp_norm, *a.qkv_paths):
            assert rel is not None and isinstance(modules[a.in_block(layer, rel)], nn.Module)
    q_out = modules[a.in_block(0, a.qkv_paths[0])]
    width = q_out.weight.shape[1] if family == "gpt2" else q_out.weight.shape[0]  # Conv1D
    want = {"gpt2": 3 * a.d_model, "gpt-neox": 3 * a.d_model, "llama": a.n_heads * a.d_head}
    assert width == want[family]
    assert a.parallel == (family == "gpt-neox")
    if family == "llama":
        assert a.n_kv_heads < a.n_heads  # the builder's grouped-query attention


def test_the_toy_model_has_the_llama_anatomy():
    a = anatomy(toy.load())
    assert (a.family, a.n_layers, a.n_heads, a.d_head) == ("llama", 2, 4, 16)
    assert a.final_norm == "model.norm" and a.unembed == "lm_head"


def test_families_without_an_anatomy_are_refused_clearly():
    from transformers import BertConfig, BertModel

    bert = BertModel(
        BertConfig(num_hidden_layers=1, hidden_size=32, num_attention_heads=2, intermediate_size=8)
    )
    with pytest.raises(CaptureError, match="bert family; lenses and circuits know GPT-2"):
        anatomy(bert)
    with pytest.raises(CaptureError, match="unknown architecture"):
        anatomy(nn.Sequential(nn.Linear(2, 2)))
    with pytest.raises(CaptureError, match="layer 5 is out of range"):
        anatomy(testing.gpt2()).block(5)
