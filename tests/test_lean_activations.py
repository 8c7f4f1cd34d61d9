"""Lean activation forms equal the model's own bit for bit, and step aside for autograd.

The reference is HuggingFace's own ``NewGELUActivation.forward`` (GPT-2's ``gelu_new``).
"""

from __future__ import annotations

import pytest
import torch
from transformers.activations import NewGELUActivation

from interp_magics import testing
from interp_magics.core.activations import BLOCK, gelu_new, lean_activations, lean_modules
from interp_magics.core.hooks import HookSet

pytestmark = pytest.mark.filterwarnings("ignore:the clean-corrupted gap")


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16, torch.float16])
def test_gelu_new_equals_huggingface_bit_for_bit(dtype):
    g = torch.Generator().manual_seed(0)
    # more elements than a block (two whole blocks and a part), and a transposed view
    x = torch.randn(64, 3, 1517, generator=g) * 4
    assert x.numel() > 2 * BLOCK
    x[0, 0, :6] = torch.tensor([0.0, -0.0, 1e-30, -1e-30, 30.0, -30.0])
    x = x.to(dtype)
    before = x.clone()
    assert torch.equal(gelu_new(x), NewGELUActivation()(x))
    assert torch.equal(x, before)  # the input is not written to
    assert torch.equal(gelu_new(x.transpose(0, 2)), NewGELUActivation()(x.transpose(0, 2)))
    small = x[:1, :1, :7]
    assert torch.equal(gelu_new(small), NewGELUActivation()(small))


def test_a_model_under_lean_activations_gives_the_same_bits_and_restores_its_modules():
    model = testing.gpt2(vocab_size=97)
    ids = torch.randint(1, 97, (3, 11), generator=torch.Generator().manual_seed(1))
    modules = lean_modules(model)
    assert len(modules) == model.config.n_layer  # one GELU per MLP
    with torch.inference_mode():
        plain = model(ids).logits
    hooks = HookSet("test")
    calls: list[int] = []
    try:
        lean_activations(hooks, [(m, lambda x: calls.append(1) or gelu_new(x)) for m, _ in modules])
        with torch.inference_mode():
            lean = model(ids).logits
        # with gradients on, the module's own forward runs (in-place operations would break
        # the backward), and the gradients are the plain model's
        before = len(calls)
        out = model(ids).logits[:, -1, 5].sum()
        out.backward()
    finally:
        hooks.remove_all()
    assert len(calls) == model.config.n_layer and before == len(calls)
    assert torch.equal(plain, lean)
    assert all("forward" not in m.__dict__ for m, _ in modules)


def test_a_replaced_forward_is_kept():
    model = testing.gpt2(vocab_size=97)
    act = lean_modules(model)[0][0]
    mine = act.forward
    act.forward = mine  # an instance-level forward, as accelerate installs
    hooks = HookSet("test")
    try:
        lean_activations(hooks, lean_modules(model))
        assert act.__dict__["forward"] is mine
    finally:
        hooks.remove_all()
        del act.forward


def test_patching_runs_use_the_lean_form_and_give_the_plain_values(monkeypatch):
    from interp_magics.core import activations
    from interp_magics.patching import activation_patch, logit_diff
    from interp_magics.patching.runner import Runner

    model = testing.gpt2(vocab_size=97)
    g = torch.Generator().manual_seed(2)
    clean = torch.randint(1, 97, (3, 9), generator=g)
    corrupt = torch.randint(1, 97, (3, 9), generator=g)
    calls: list[int] = []

    def counted(x: torch.Tensor) -> torch.Tensor:
        calls.append(1)
        return gelu_new(x)

    key = ("transformers.activations", "NewGELUActivation")
    monkeypatch.setitem(activations.LEAN, key, counted)
    kw = dict(site="resid_pre", by=("layer", "pos"), progress=False)
    lean = activation_patch(model, clean, corrupt, logit_diff(5, 6), **kw)
    assert calls
    monkeypatch.setattr(Runner, "_lean_activations", lambda *a: None)
    plain = activation_patch(model, clean, corrupt, logit_diff(5, 6), **kw)
    assert torch.equal(lean.per_example, plain.per_example)
