"""Where modules are found: the model's own, and parts spliced into its forward from outside.

An attachment runs a module on a site's tensor inside the model's forward: a forward hook (or
pre-hook, for input sites) on the site's module replaces the tensor with the attachment's
output. The attached module never becomes part of the model: it is not in ``named_modules()``,
``parameters()`` or ``state_dict()``, so saving the model, counting its parameters and the
memory guard's weight budget are unchanged, and detaching restores the model exactly.

What an attachment exposes (for a sparse autoencoder: its feature activations, named
``sae:resid_post.1``) is found by :func:`find_module` and matched by the site grammar like any
module path, so captures, interventions and hooks of this package treat it as a module. The
splice hook is owned (owner ``"attach"``): it is listed by ``owned_hooks()`` while attached.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from .adapters import Target
from .errors import CaptureError
from .hooks import HookSet

_lock = threading.Lock()
_attached: weakref.WeakKeyDictionary[nn.Module, dict[str, Attachment]] = weakref.WeakKeyDictionary()


@dataclass
class Attachment:
    """One module spliced in at ``site``: it maps the site's tensor to a tensor of that shape."""

    key: str
    site: str  # the site's key, e.g. "resid_post.1"
    path: str  # the model's module whose tensor is replaced
    io: str  # "output" or "input"
    module: nn.Module
    exposed: dict[str, nn.Module]  # names the site grammar matches -> modules to hook
    hooks: HookSet = field(repr=False, default_factory=lambda: HookSet("attach"))


def attach(
    model: nn.Module,
    key: str,
    target: Target,
    module: nn.Module,
    *,
    exposed: Mapping[str, nn.Module] | None = None,
) -> Attachment:
    """Return the attachment of ``module`` at ``target`` of ``model``, installed and registered.

    ``target`` is one resolved site of the model (from
    :func:`~interp_magics.core.targets.resolve_targets`). ``exposed`` maps the names under which
    the attachment's parts are found by :func:`find_module` and patterns (default
    ``{key: module}``); names must not collide with the model's own module paths or another
    attachment's. Attaching again under the same key replaces the earlier attachment.
    """
    if not isinstance(model, nn.Module):
        raise CaptureError(f"attach needs a torch.nn.Module, got {type(model).__name__}")
    if not isinstance(module, nn.Module):
        raise CaptureError(
            f"the attached part must be a torch.nn.Module, got {type(module).__name__}"
        )
    if target.path in exposed_modules(model):
        raise CaptureError(f"{target.key!r} is itself attached; attach at a site of the model")
    names = dict(exposed) if exposed is not None else {key: module}
    model_paths = {name for name, _ in model.named_modules()}
    clash = sorted(n for n in names if n in model_paths)
    if clash:
        raise CaptureError(f"{', '.join(clash)} already name modules of the model; pick a new key")
    detach(model, key)
    others = {n for a in attachments(model).values() for n in a.exposed}
    clash = sorted(n for n in names if n in others)
    if clash:
        raise CaptureError(f"{', '.join(clash)} already name another attachment; detach it first")
    host = model.get_submodule(target.path)
    item = Attachment(key, target.key, target.path, target.io, module, names)
    index = target.select if isinstance(target.select, int) else 0
    if target.io == "input":

        def pre(mod: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
            if args:
                return (_run(module, args[0]), *args[1:]), kwargs
            return args, {**kwargs, "hidden_states": _run(module, kwargs["hidden_states"])}

        item.hooks.add(host.register_forward_pre_hook(pre, with_kwargs=True), key, "splice")
    else:

        def post(mod: nn.Module, args: tuple[Any, ...], output: Any) -> Any:
            if isinstance(output, torch.Tensor):
                return _run(module, output)
            if isinstance(output, tuple):
                return (*output[:index], _run(module, output[index]), *output[index + 1 :])
            raise CaptureError(
                f"cannot splice into the {type(output).__name__} output of {target.path}"
            )

        item.hooks.add(host.register_forward_hook(post), key, "splice")
    with _lock:
        _attached.setdefault(model, {})[key] = item
    return item


def _run(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    out = module(x)
    if not isinstance(out, torch.Tensor) or out.shape != x.shape:
        raise CaptureError(
            f"an attached {type(module).__name__} must return a tensor of its input's shape "
            f"{tuple(x.shape)}, got {getattr(out, 'shape', type(out).__name__)}"
        )
    return out


def detach(model: nn.Module, key: str | None = None) -> int:
    """Return how many attachments were removed from ``model`` (``key``, or all when None)."""
    with _lock:
        table = _attached.get(model, {})
        keys = list(table) if key is None else [k for k in table if k == key]
        removed = [table.pop(k) for k in keys]
        if model in _attached and not table:
            del _attached[model]
    for item in removed:
        item.hooks.remove_all()
    return len(removed)


def attachments(model: nn.Module) -> dict[str, Attachment]:
    """Return ``model``'s attachments by key (a copy).

    An attachment whose splice hook is gone (``remove_owned_hooks()``, which unloading the
    extension calls) is no longer spliced in: it is dropped here, so nothing finds it.
    """
    with _lock:
        table = _attached.get(model, {})
        for key in [k for k, item in table.items() if len(item.hooks) == 0]:
            del table[key]
        return dict(table)


def exposed_modules(model: nn.Module) -> dict[str, nn.Module]:
    """Return every name the attachments of ``model`` expose, with its module."""
    return {n: m for a in attachments(model).values() for n, m in a.exposed.items()}


def find_module(model: nn.Module, path: str) -> nn.Module:
    """Return the module at ``path``: one of ``model``'s own or one an attachment exposes."""
    found = exposed_modules(model).get(path)
    return found if found is not None else model.get_submodule(path)
