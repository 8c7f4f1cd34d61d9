"""Loading and unloading the IPython extension (``%load_ext`` / ``%unload_ext interp_magics``).

Load and unload are idempotent: unload removes exactly the callables, subscriptions, comm
target and magics that load installed (IPython's ``events.unregister`` raises for anything
else), and any hooks an interrupted analysis still owns.
"""

from __future__ import annotations

import contextlib
from typing import Any

from ..core import events
from .bridge import KernelBridge
from .circuit_magics import CircuitMagics
from .intervene_magics import InterveneMagics
from .ledger import Ledger
from .magics import InterpMagics
from .state import ShellState, get_state, set_state


def load(shell: Any) -> None:
    """Install the magics, ledger events and subscriptions in ``shell`` (idempotent)."""
    if get_state(shell) is not None:
        return
    ledger = Ledger()
    callbacks = {"pre_run_cell": ledger.pre_run_cell, "post_run_cell": ledger.post_run_cell}
    for name, callback in callbacks.items():
        shell.events.register(name, callback)
    unsubscribe = events.subscribe(ledger.record)
    # After the ledger's events: the snapshot pushed on post_run_cell then carries the ledger
    # entries of the cell that just ended, with their execution counts.
    bridge = KernelBridge(shell, ledger)
    bridge.install()
    magics = (InterpMagics(shell), CircuitMagics(shell), InterveneMagics(shell))
    for group in magics:
        shell.register_magics(group)
    set_state(shell, ShellState(ledger, bridge, magics, callbacks, unsubscribe))


def unload(shell: Any) -> None:
    """Remove everything :func:`load` installed from ``shell``, and any hooks still owned."""
    from ..core.hooks import remove_owned_hooks

    state = get_state(shell)
    if state is not None:
        _remove(shell, state)
        set_state(shell, None)
    remove_owned_hooks()


def _remove(shell: Any, state: ShellState) -> None:
    state.bridge.remove()
    for name, callback in state.callbacks.items():
        with contextlib.suppress(ValueError):  # already gone: unload must be idempotent
            shell.events.unregister(name, callback)
    state.unsubscribe()
    manager = shell.magics_manager
    for group in state.magics:
        for kind, table in group.magics.items():
            for name in table:
                registered = manager.magics[kind].get(name)
                if getattr(registered, "__self__", None) is group:
                    del manager.magics[kind][name]
        if manager.registry.get(type(group).__name__) is group:
            del manager.registry[type(group).__name__]
