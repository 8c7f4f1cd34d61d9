"""Ownership of the hooks interp-magics installs.

Every hook the package adds goes through a :class:`HookSet`, which keeps the exact
``RemovableHandle`` it got back. Removal only ever uses those handles, so hooks the user or
other libraries installed are never touched. :func:`owned_hooks` lists the hooks currently
installed by the package; after any capture ends it is empty.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from torch import nn


class Removable(Protocol):
    """Anything installed on a model that can be undone: a hook handle, a forward override."""

    def remove(self) -> None: ...


_lock = threading.Lock()
_live: dict[int, HookSet] = {}


@dataclass(frozen=True)
class OwnedHook:
    """One installed hook: who owns it, on which module path, and its kind."""

    owner: str
    module: str
    kind: str  # "forward", "forward_pre", "tensor_grad", "forward_override"


class HookSet:
    """A group of hooks installed together and removed together."""

    def __init__(self, owner: str) -> None:
        self.owner = owner
        self._hooks: list[tuple[Removable, OwnedHook]] = []
        with _lock:
            _live[id(self)] = self

    def add(self, handle: Removable, module: str, kind: str) -> None:
        """Take ownership of ``handle`` (a hook just installed on ``module``)."""
        with _lock:
            self._hooks.append((handle, OwnedHook(self.owner, module, kind)))

    def remove_all(self) -> None:
        """Remove every hook of this set; safe to call more than once."""
        # One at a time, so an interrupt during removal leaves the rest listed (and removable).
        while True:
            with _lock:
                if not self._hooks:
                    _live.pop(id(self), None)
                    return
                handle, _ = self._hooks.pop()
            handle.remove()

    def __len__(self) -> int:
        return len(self._hooks)

    def describe(self) -> list[OwnedHook]:
        """Return a description of each hook in this set."""
        with _lock:
            return [info for _, info in self._hooks]


def owned_hooks() -> list[OwnedHook]:
    """Return every hook interp-magics currently has installed (empty between captures)."""
    with _lock:
        sets = list(_live.values())
    return [info for s in sets for info in s.describe()]


def remove_owned_hooks() -> int:
    """Remove every hook interp-magics installed (all captures); return how many were removed."""
    with _lock:
        sets = list(_live.values())
    count = 0
    for hook_set in sets:
        count += len(hook_set)
        hook_set.remove_all()
    return count


class ForwardOverride:
    """A temporary instance-level ``forward`` of a module; ``remove()`` restores what was there.

    accelerate installs its own instance-level ``forward`` (the wrapper that loads offloaded
    weights and moves inputs): that one is kept and put back, never deleted.
    """

    def __init__(self, module: nn.Module, forward: Any) -> None:
        self.module = module
        self.previous = module.__dict__.get("forward")
        module.forward = forward

    def remove(self) -> None:
        if self.previous is not None:
            self.module.forward = self.previous
        elif "forward" in self.module.__dict__:
            del self.module.forward
