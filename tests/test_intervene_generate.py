"""Interventions during ``generate`` (greedy, KV cache): the generated ids and the last step's
logits equal a hand-written hook that tracks the forwards itself (forward 0 is the prompt,
forward k >= 1 continues ``prompt_len + k - 1`` cached tokens), for during = all, prompt, new,
absolute position lists (positions reached only by generated tokens included), negative
positions and left-padded batches; an interrupt at any step leaves no hook behind."""

from __future__ import annotations

import random

import pytest
import torch

from interp_magics import owned_hooks
from interp_magics.intervene import edit, intervene
from interp_magics.testing import gpt2, llama

FAMILIES = {"gpt2": (gpt2, "transformer.h"), "llama": (llama, "model.layers")}
NEW = 5
V = torch.randn(64, generator=torch.Generator().manual_seed(1))


@pytest.fixture(scope="module", params=sorted(FAMILIES))
def fam(request):
    build, blocks = FAMILIES[request.param]
    return build(), blocks


@pytest.fixture(scope="module")
def prompt():
    g = torch.Generator().manual_seed(4)
    ids = torch.randint(1, 90, (2, 6), generator=g)
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids)}


def _generate(model, batch):
    with torch.no_grad():
        out = model.generate(
            **batch,
            max_new_tokens=NEW,
            do_sample=False,
            use_cache=True,
            pad_token_id=0,
            output_logits=True,
            return_dict_in_generate=True,
        )
    return out.sequences, out.logits[-1]


def _reference(model, block, batch, fn):
    """Generate with ``fn(x, offset, forward_index)`` applied to ``block``'s output, the offset
    counted by the test itself from the number of root forwards so far."""
    prompt_len = batch["input_ids"].shape[1]
    calls = []
    root = model.register_forward_pre_hook(lambda m, a: calls.append(1))

    def hook(m, a, out):
        k = len(calls) - 1
        offset = 0 if k == 0 else prompt_len + k - 1
        return fn(out, offset, k)

    handle = model.get_submodule(block).register_forward_hook(hook)
    try:
        out = _generate(model, batch)
    finally:
        handle.remove()
        root.remove()
    assert len(calls) == NEW
    return out


def add_at(positions, coef, forwards):
    """Reference edit: add coef*V at absolute ``positions`` (None: all; -1: the last token so
    far) in the forwards ``forwards`` accepts."""

    def fn(x, offset, k):
        if not forwards(k):
            return x
        y = x.clone()
        length = x.shape[1]
        total = offset + length
        for local in range(length):
            absolute = offset + local
            wanted = (
                positions is None
                or (positions == -1 and absolute == total - 1)
                or (isinstance(positions, list) and absolute in positions)
            )
            if wanted:
                y[:, local] = y[:, local] + coef * V
        return y

    return fn


CASES = {
    "during all": (dict(during="all"), add_at(None, 4.0, lambda k: True)),
    "during prompt": (dict(during="prompt"), add_at(None, 4.0, lambda k: k == 0)),
    "during new": (dict(during="new"), add_at(None, 4.0, lambda k: k > 0)),
    "positions in the prompt and in generated tokens": (
        dict(positions=[2, 7, 9]),
        add_at([2, 7, 9], 4.0, lambda k: True),
    ),
    "the last token of every forward": (dict(positions=-1), add_at(-1, 4.0, lambda k: True)),
    "positions only while generating": (
        dict(positions=[1, 8], during="new"),
        add_at([1, 8], 4.0, lambda k: k > 0),
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_generate_equals_a_hand_written_hook(fam, prompt, case):
    model, blocks = fam
    kwargs, fn = CASES[case]
    plain_ids, _ = _generate(model, prompt)
    ref_ids, ref_logits = _reference(model, f"{blocks}.1", prompt, fn)
    with intervene(model, [edit.add("resid_post.1", V, coef=4.0, **kwargs)]) as iv:
        got_ids, got_logits = _generate(model, prompt)
    assert iv.forwards == NEW
    assert torch.equal(got_ids, ref_ids)
    torch.testing.assert_close(got_logits, ref_logits, atol=1e-6, rtol=0)
    assert not torch.equal(ref_ids, plain_ids) or case == "positions only while generating"
    assert owned_hooks() == []


def test_the_calls_during_is_overridden_per_edit(fam, prompt):
    model, blocks = fam

    def both(x, offset, k):
        x = add_at(None, 3.0, lambda k: k == 0)(x, offset, k)
        return add_at(None, -2.0, lambda k: k > 0)(x, offset, k)

    ref_ids, ref_logits = _reference(model, f"{blocks}.0", prompt, both)
    edits = [
        edit.add("resid_post.0", V, coef=3.0),  # follows the call: prompt
        edit.add("resid_post.0", V, coef=-2.0, during="new"),
    ]
    with intervene(model, edits, during="prompt"):
        got_ids, got_logits = _generate(model, prompt)
    assert torch.equal(got_ids, ref_ids)
    torch.testing.assert_close(got_logits, ref_logits, atol=1e-6, rtol=0)


def test_left_padded_batches_use_column_positions(fam):
    model, blocks = fam
    ids = torch.randint(1, 90, (2, 6), generator=torch.Generator().manual_seed(8))
    mask = torch.ones_like(ids)
    mask[0, :2] = 0
    ids[0, :2] = 0
    batch = {"input_ids": ids, "attention_mask": mask}
    ref_ids, ref_logits = _reference(
        model, f"{blocks}.2", batch, add_at([3, 6, 8], -5.0, lambda k: True)
    )
    with intervene(model, [edit.add("resid_post.2", V, coef=-5.0, positions=[3, 6, 8])]):
        got_ids, got_logits = _generate(model, batch)
    assert torch.equal(got_ids, ref_ids)
    torch.testing.assert_close(got_logits, ref_logits, atol=1e-6, rtol=0)


def test_a_cached_prompt_is_patched_in_only_where_it_has_positions(fam, prompt):
    """set from a cache of another prompt, during the prompt's forward (its positions); during
    generation the cache has no new positions, which is a clear error."""
    from interp_magics import capture
    from interp_magics.intervene import InterventionError

    model, blocks = fam
    other = torch.randint(1, 90, (2, 6), generator=torch.Generator().manual_seed(5))
    with capture(model, "resid_post.1") as cache, torch.no_grad():
        model(other)

    def patch(x, offset, k):
        if k:
            return x
        y = x.clone()
        y[:, [0, 4]] = cache["resid_post.1"][:, [0, 4]]
        return y

    ref_ids, ref_logits = _reference(model, f"{blocks}.1", prompt, patch)
    with intervene(model, [edit.set("resid_post.1", cache, positions=[0, 4], during="prompt")]):
        got_ids, got_logits = _generate(model, prompt)
    assert torch.equal(got_ids, ref_ids)
    torch.testing.assert_close(got_logits, ref_logits, atol=1e-6, rtol=0)
    with pytest.raises(InterventionError, match="source holds positions 0..5"):
        with intervene(model, [edit.set("resid_post.1", cache)]):
            _generate(model, prompt)
    assert owned_hooks() == []


def _hook_ids(model):
    return {
        (name, attr): tuple(getattr(m, attr).keys())
        for name, m in model.named_modules()
        for attr in ("_forward_hooks", "_forward_pre_hooks", "_forward_hooks_with_kwargs")
    }


def test_a_keyboard_interrupt_mid_generation_leaves_no_hook(fam, prompt):
    model, blocks = fam
    before = _hook_ids(model)
    plain = _generate(model, prompt)
    calls = []

    def interrupt(m, a, o):
        calls.append(1)
        if len(calls) == 3:  # the third forward: the second new token
            raise KeyboardInterrupt

    handle = model.get_submodule(f"{blocks}.0").register_forward_hook(interrupt)
    try:
        with pytest.raises(KeyboardInterrupt):
            with intervene(model, [edit.add("resid_post.1", V, coef=4.0, positions=-1)]) as iv:
                _generate(model, prompt)
    finally:
        handle.remove()
    assert iv.forwards == 3
    assert owned_hooks() == [] and _hook_ids(model) == before
    again = _generate(model, prompt)
    assert torch.equal(again[0], plain[0]) and torch.equal(again[1], plain[1])


def test_fuzz_interrupts_at_random_steps_and_modules(fam, prompt):
    model, blocks = fam
    before = _hook_ids(model)
    plain = _generate(model, prompt)
    rng = random.Random(1)
    edits = [
        edit.add("resid_post.1", V, coef=4.0, during="new"),
        edit.zero("head_out.0", heads=[1], positions=-1),
        edit.scale("mlp_out.2", 0.5),
    ]
    modules = [f"{blocks}.{i}" for i in range(3)] + [""]
    for _ in range(12):
        step, where = rng.randrange(1, NEW + 1), rng.choice(modules)
        kind = rng.choice([KeyboardInterrupt, RuntimeError])
        count = []

        def stop(m, a, o, step=step, kind=kind, count=count):
            count.append(1)
            if len(count) == step:
                raise kind("stop")

        handle = model.get_submodule(where).register_forward_hook(stop)
        try:
            with pytest.raises(kind), intervene(model, rng.sample(edits, rng.randrange(1, 4))):
                _generate(model, prompt)
        finally:
            handle.remove()
        assert owned_hooks() == [] and _hook_ids(model) == before
    again = _generate(model, prompt)
    assert torch.equal(again[0], plain[0]) and torch.equal(again[1], plain[1])
