"""Hook hygiene: every hook capture adds is removed, whatever happens; no other hook is touched."""

import pytest
import torch

from interp_magics import CaptureError, capture, owned_hooks
from interp_magics.core.hooks import HookSet, remove_owned_hooks


def _hook_ids(model):
    """Snapshot of every hook dict on every module (ids of installed hooks)."""
    out = {}
    for name, m in model.named_modules():
        for attr in (
            "_forward_hooks",
            "_forward_pre_hooks",
            "_backward_hooks",
            "_forward_hooks_with_kwargs",
            "_forward_pre_hooks_with_kwargs",
        ):
            out[(name, attr)] = tuple(getattr(m, attr).keys())
    return out


@pytest.fixture
def user_hooks(gpt2):
    """Hooks a user installed before capturing: they must survive every capture."""
    calls = []
    handles = [
        gpt2.transformer.h[1].register_forward_hook(lambda m, a, o: calls.append("post")),
        gpt2.transformer.h[1].register_forward_pre_hook(lambda m, a: calls.append("pre")),
        gpt2.register_forward_hook(lambda m, a, o: calls.append("root")),
    ]
    yield calls
    for h in handles:
        h.remove()


def _assert_clean(model, before, calls, ids):
    assert owned_hooks() == []
    assert _hook_ids(model) == before
    calls.clear()
    model(ids)
    assert calls == ["pre", "post", "root"]  # the user's hooks still run


def test_hooks_listed_during_capture_and_gone_after(gpt2, ids, user_hooks):
    before = _hook_ids(gpt2)
    with capture(gpt2, ["resid_pre", "resid_post", "pattern"], grad=True) as acts:
        during = owned_hooks()
        modules = {h.module for h in during}
        assert "transformer.h.0" in modules and "transformer.h.2.attn" in modules
        assert {h.kind for h in during} == {"forward", "forward_pre"}
        gpt2(ids).logits.sum().backward()
        assert "tensor_grad" in {h.kind for h in owned_hooks()}
    assert len(acts) == 18
    _assert_clean(gpt2, before, user_hooks, ids)


def test_exception_in_the_block(gpt2, ids, user_hooks):
    before = _hook_ids(gpt2)
    with pytest.raises(RuntimeError, match="user error"), capture(gpt2, "resid_post") as acts:
        gpt2(ids)
        raise RuntimeError("user error")
    assert len(acts) == 0  # a failed capture keeps no partial results
    _assert_clean(gpt2, before, user_hooks, ids)


def test_exception_in_a_hook_mid_forward(gpt2, ids, user_hooks):
    before = _hook_ids(gpt2)

    def bad(m, a, o):
        raise ValueError("hook failed")

    h = gpt2.transformer.h[2].register_forward_hook(bad)
    try:
        with pytest.raises(ValueError, match="hook failed"), capture(gpt2, "resid_post"):
            gpt2(ids)
    finally:
        h.remove()
    _assert_clean(gpt2, before, user_hooks, ids)


def test_keyboard_interrupt_mid_forward(gpt2, ids, user_hooks):
    before = _hook_ids(gpt2)

    def interrupt(m, a, o):
        raise KeyboardInterrupt

    h = gpt2.transformer.h[1].attn.register_forward_hook(interrupt)
    try:
        with pytest.raises(KeyboardInterrupt), capture(gpt2, ["resid_post", "pattern"]) as acts:
            gpt2(ids)
    finally:
        h.remove()
    assert len(acts) == 0
    assert gpt2.config._attn_implementation == "sdpa"  # eager switch undone too
    _assert_clean(gpt2, before, user_hooks, ids)


def test_install_failing_partway(gpt2, ids, user_hooks, monkeypatch):
    before = _hook_ids(gpt2)
    target = gpt2.transformer.h[2]
    real = target.register_forward_hook

    def broken(*a, **k):
        raise RuntimeError("cannot hook this module")

    monkeypatch.setattr(target, "register_forward_hook", broken)
    with pytest.raises(RuntimeError, match="cannot hook"):
        with capture(gpt2, ["resid_post", "pattern"]):
            pytest.fail("the block must not run")
    monkeypatch.setattr(target, "register_forward_hook", real)
    assert gpt2.config._attn_implementation == "sdpa"
    _assert_clean(gpt2, before, user_hooks, ids)


def test_error_raised_by_capture_itself(gpt2, ids, user_hooks):
    before = _hook_ids(gpt2)
    with (
        pytest.raises(CaptureError, match="out of range"),
        capture(gpt2, "resid_post", positions=[50]),
    ):
        gpt2(ids)
    _assert_clean(gpt2, before, user_hooks, ids)


def test_remove_owned_hooks_only_removes_ours(gpt2, ids, user_hooks):
    before = _hook_ids(gpt2)
    hs = HookSet("test")
    hs.add(
        gpt2.transformer.h[0].register_forward_hook(lambda m, a, o: None),
        "transformer.h.0",
        "forward",
    )
    assert len(owned_hooks()) == 1
    assert remove_owned_hooks() == 1
    _assert_clean(gpt2, before, user_hooks, ids)


def test_nested_captures_are_independent(gpt2, ids):
    before = _hook_ids(gpt2)
    with capture(gpt2, "resid_post.0") as outer:
        with capture(gpt2, "resid_post.{0-1}") as inner:
            gpt2(ids)
        assert len(owned_hooks()) == 2  # the outer capture's root and block hook
    assert list(outer) == ["resid_post.0"] and list(inner) == ["resid_post.0", "resid_post.1"]
    assert torch.equal(outer["resid_post.0"], inner["resid_post.0"])
    assert _hook_ids(gpt2) == before
