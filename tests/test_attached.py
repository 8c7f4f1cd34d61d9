"""Modules spliced into a model from outside it: found, captured, invisible to the model."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from interp_magics.core.capturing import capture
from interp_magics.core.errors import CaptureError
from interp_magics.core.hooks import owned_hooks
from interp_magics.core.modules import attach, attachments, detach, find_module
from interp_magics.core.targets import resolve_targets
from interp_magics.testing import gpt2


class Doubler(nn.Module):
    """Scales the site's tensor by 2 and exposes what it saw through an identity child."""

    def __init__(self) -> None:
        super().__init__()
        self.seen = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 2 * self.seen(x)


def _site(model: nn.Module, pattern: str):  # type: ignore[no-untyped-def]
    targets, _ = resolve_targets(model, pattern)
    assert len(targets) == 1
    return targets[0]


def test_splice_changes_the_site_and_detach_restores_the_model_exactly() -> None:
    model = gpt2().eval()
    ids = torch.randint(0, 50, (2, 6))
    with torch.no_grad():
        plain = model(ids).logits
        names = [n for n, _ in model.named_modules()]
        keys = list(model.state_dict())
        part = Doubler()
        attach(
            model,
            "x:resid_post.0",
            _site(model, "resid_post.0"),
            part,
            exposed={"x:resid_post.0": part.seen},
        )
        assert [n for n, _ in model.named_modules()] == names
        assert list(model.state_dict()) == keys
        assert find_module(model, "x:resid_post.0") is part.seen

        def doubled(mod, args, out):  # type: ignore[no-untyped-def]
            return 2 * out if isinstance(out, torch.Tensor) else (2 * out[0], *out[1:])

        detach(model, "x:resid_post.0")
        assert owned_hooks() == []
        handle = model.transformer.h[0].register_forward_hook(doubled)
        reference = model(ids).logits
        handle.remove()
        attach(
            model,
            "x:resid_post.0",
            _site(model, "resid_post.0"),
            part,
            exposed={"x:resid_post.0": part.seen},
        )
        spliced = model(ids).logits
        assert torch.allclose(spliced, reference, atol=1e-6)
        assert len(owned_hooks()) == 1
        assert detach(model) == 1
        assert attachments(model) == {}
        assert torch.equal(model(ids).logits, plain)


def test_exposed_parts_are_captured_by_name_and_glob() -> None:
    model = gpt2().eval()
    ids = torch.randint(0, 50, (2, 5))
    part = Doubler()
    attach(
        model,
        "x:resid_post.1",
        _site(model, "resid_post.1"),
        part,
        exposed={"x:resid_post.1": part.seen},
    )
    try:
        with torch.no_grad():
            hidden = model(ids, output_hidden_states=True).hidden_states
            cache = capture(model, ["x:resid_post.*"]).run(ids)
        assert list(cache) == ["x:resid_post.1"]
        # what the part saw is the block's own output (hidden_states[2] is after the splice)
        assert torch.allclose(cache["x:resid_post.1"], hidden[2] / 2, atol=1e-6)
    finally:
        detach(model)
    assert owned_hooks() == []


def test_bad_attachments_are_refused_before_any_hook() -> None:
    model = gpt2().eval()
    part = Doubler()
    site = _site(model, "resid_post.0")
    with pytest.raises(CaptureError, match="already name modules"):
        attach(model, "k", site, part, exposed={"transformer.h.0": part.seen})
    with pytest.raises(CaptureError, match="must be a torch.nn.Module"):
        attach(model, "k", site, lambda x: x)  # type: ignore[arg-type]
    attach(model, "a", site, part, exposed={"a:x": part.seen})
    try:
        with pytest.raises(CaptureError, match="another attachment"):
            attach(model, "b", _site(model, "resid_post.1"), Doubler(), exposed={"a:x": part})
        with pytest.raises(CaptureError, match="itself attached"):
            attach(model, "c", _site(model, "a:x"), Doubler())
        assert len(owned_hooks()) == 1
    finally:
        detach(model)
    assert owned_hooks() == []


def test_a_part_that_changes_the_shape_is_refused_with_the_shapes() -> None:
    model = gpt2().eval()
    attach(model, "bad", _site(model, "resid_post.0"), nn.Linear(64, 3))
    try:
        with pytest.raises(CaptureError, match="must return a tensor of its input's shape"):
            model(torch.randint(0, 50, (1, 4)))
    finally:
        detach(model)


def test_an_attachment_whose_hook_was_removed_is_gone() -> None:
    from interp_magics.core.hooks import remove_owned_hooks

    model = gpt2().eval()
    part = Doubler()
    attach(model, "x", _site(model, "resid_post.0"), part, exposed={"x:seen": part.seen})
    assert remove_owned_hooks() == 1  # what unloading the extension does
    assert attachments(model) == {}
    with pytest.raises(AttributeError):
        find_module(model, "x:seen")
    with pytest.raises(CaptureError, match="matches no module"):
        resolve_targets(model, "x:seen")
