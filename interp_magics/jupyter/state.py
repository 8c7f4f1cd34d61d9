"""Per-shell state of the IPython extension: what ``%load_ext`` installed in one shell.

The magics, the kernel bridge and the extension's load/unload all read it from here, so no
module has to reach into another's globals (or into ``sys.modules``) to find the ledger or the
bridge of a shell. The state lives on the shell object, so two shells in one process (tests,
embedded kernels) never share a ledger.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .bridge import KernelBridge
    from .ledger import Ledger

_ATTR = "_interp_magics_state"


@dataclass
class ShellState:
    """What the extension installed in one shell, so unload removes exactly that."""

    ledger: Ledger
    bridge: KernelBridge
    magics: tuple[Any, ...]  # the Magics objects registered (removed again on unload)
    callbacks: dict[str, Any] = field(default_factory=dict)
    unsubscribe: Any = None


def get_state(shell: Any) -> ShellState | None:
    """Return the extension's state in ``shell`` while it is loaded there, else None."""
    state = getattr(shell, _ATTR, None) if shell is not None else None
    return state if isinstance(state, ShellState) else None


def set_state(shell: Any, state: ShellState | None) -> None:
    """Attach ``state`` to ``shell`` (None when the extension is unloaded)."""
    setattr(shell, _ATTR, state)


def get_ledger(shell: Any) -> Ledger | None:
    """Return the ledger of ``shell`` while the extension is loaded there, else None."""
    state = get_state(shell)
    return state.ledger if state is not None else None


def get_bridge(shell: Any) -> KernelBridge | None:
    """Return the sidebar bridge of ``shell`` while the extension is loaded there, else None."""
    state = get_state(shell)
    return state.bridge if state is not None else None
