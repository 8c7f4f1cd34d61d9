"""The kernel side of the JupyterLab sidebar panels: a comm target and small snapshots.

The front end first asks, with a silent ``user_expressions`` request that runs no cell and
imports nothing of this package, whether the comm manager has the target ``"interp_magics"``
(``PROBE_EXPRESSION`` in ``labextension/src/kernel.ts``): a comm opened to a kernel without the
target would be refused, logged in the kernel and reported as "Comm not found" in the page.
While the IPython extension is loaded, the front end then opens a comm to that target
with ``{"v": 1, "type": "hello"}``; the kernel answers with a snapshot and
pushes a fresh one after each outermost cell run (``post_run_cell``) that changed what it
lists. A snapshot lists the activation caches and models bound to top-level names in the
notebook, with sizes, plus the tail of the analysis ledger. It holds summaries only (names,
shapes, dtypes, devices, bytes), never tensor data or reprs, so a push stays cheap and small
whatever the tensors hold. Each cache summary has a ``rev``; in a push, ``"entries": null``
means "the tensors of this ``rev`` as in the previous snapshot" (replies to hello and refresh
always carry every cache's entries).

Messages from the front end (all carry ``"v": 1``):

- ``{"type": "hello"}`` (comm open data) or ``{"type": "refresh"}``: reply with a snapshot.
- ``{"type": "free", "name": "acts"}``: delete that cache from the namespace and from IPython's
  output history, collect garbage, and reply ``{"type": "freed", "ok", "bytes", "message"}``;
  refused with ``"busy": true`` while a cell or a capture runs.

Anything else gets ``{"type": "error", "message": ...}``; handlers never raise.
:func:`snapshot_display` serves the same snapshot to front ends that cannot open comms.

Modules: :mod:`.protocol` (message types, versions, limits, request checks), :mod:`.snapshots`
(summaries of caches, models and the ledger), :mod:`.freeing` (the "Free" action),
:mod:`.comms` (the comm target, :class:`KernelBridge`) and :mod:`.displays` (the table of
``%activations`` and the JSON fallback). This is the notebook-integration layer: it may use
IPython and ``comm``, but it never imports torch itself (a kernel that never imported torch
has no tensors to describe).
"""

from __future__ import annotations

from .comms import KernelBridge
from .displays import CacheListing, cache_listing, snapshot_display

__all__ = ["CacheListing", "KernelBridge", "cache_listing", "snapshot_display"]
