"""Jupyter integration: the IPython extension's state, magics, ledger, kernel bridge and server.

Everything here is thin: it parses, calls the analyses and displays. Importing this package
imports neither torch nor IPython; each entry point below loads what it needs on first use.
``snapshot_display`` is the kernel side of the Activations panel's fallback for front ends
without comms (the panel evaluates ``__import__('interp_magics.jupyter').jupyter
.snapshot_display()`` as a user expression), so its name and place are part of the protocol.
"""

from __future__ import annotations

from typing import Any


def get_ledger(shell: Any) -> Any:
    """Return the analysis :class:`~interp_magics.jupyter.ledger.Ledger` of ``shell`` (or None)."""
    from .state import get_ledger as _get_ledger

    return _get_ledger(shell)


def snapshot_display() -> Any:
    """Return the Activations panel's snapshot as a displayable JSON object."""
    from .bridge import snapshot_display as _snapshot_display

    return _snapshot_display()
