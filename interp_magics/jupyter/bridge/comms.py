"""The comm target behind the panels: one comm per panel, a push after each outermost cell.

:class:`KernelBridge` registers the target ``"interp_magics"`` and the run-cell events of one
shell. It answers each panel's ``hello`` and ``refresh`` with a snapshot, pushes a fresh one
to every open comm after an outermost cell that changed what it lists, and frees caches on
request. Comm messages can arrive on another thread while a cell runs, so the comms, the run
depth and the snapshot state share one lock. Handlers never raise: a failing comm callback
would make the comm manager close the panel's comm.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import comm

from ..ledger import started
from .freeing import free_cache, refused_busy
from .protocol import MAX_COMMS, REQUESTS, TARGET, Message, check, error, request_data
from .snapshots import Snapshots, capture_running, listed_names

log = logging.getLogger(__name__)


class KernelBridge:
    """The comm target, the snapshot push and ``free`` for one IPython shell.

    Created by the extension's loader with the shell and its ledger; :meth:`install` registers
    the comm target and the run-cell events, :meth:`remove` takes back exactly those.
    """

    def __init__(self, shell: Any, ledger: Any) -> None:
        self.shell = shell
        self.ledger = ledger
        # Comm messages can arrive on another thread while a cell runs (ipykernel >= 7
        # subshells), so the comms, the run depth and the snapshots share one lock.
        # Re-entrant: a send or a garbage collection must not deadlock against its own thread.
        self._lock = threading.RLock()
        self._comms: OrderedDict[str, Any] = OrderedDict()
        self._depth = 0
        self._snapshots = Snapshots()
        self._manager: Any = None
        self._pushed: tuple[Any, ...] | None = None  # content of the last push
        self._pushed_revs: set[int] = set()  # cache summaries whose entries it carried
        # Keep the exact callables registered, so removal takes back these and nothing else.
        self._target: Callable[[Any, Message], None] = self._open_comm
        self._callbacks: dict[str, Callable[[Any], None]] = {
            "pre_run_cell": self._pre_run_cell,
            "post_run_cell": self._post_run_cell,
        }

    # -- installation -----------------------------------------------------------------------
    def install(self) -> None:
        """Register the comm target and the run-cell events (register after the ledger's)."""
        for name, callback in self._callbacks.items():
            self.shell.events.register(name, callback)
        # comm.get_comm_manager is replaced by ipykernel at import: look it up at call time.
        self._manager = comm.get_comm_manager()
        self._manager.register_target(TARGET, self._target)

    def remove(self) -> None:
        """Unregister what :meth:`install` registered and close the open comms."""
        for name, callback in self._callbacks.items():
            with contextlib.suppress(ValueError):  # already gone: removal must be idempotent
                self.shell.events.unregister(name, callback)
        manager, self._manager = self._manager, None
        targets = getattr(manager, "targets", {})
        # comm's unregister_target pops whatever is registered under the name; only take
        # back our own callable (a newer load may have registered another one).
        if manager is not None and targets.get(TARGET) == self._target:
            manager.unregister_target(TARGET, self._target)
        with self._lock:
            comms = list(self._comms.values())
            self._comms.clear()
            self._snapshots.clear()
            self._pushed, self._pushed_revs = None, set()
        for c in comms:
            _close(c)

    # -- IPython events ---------------------------------------------------------------------
    def _pre_run_cell(self, info: Any) -> None:
        with self._lock:
            self._depth += 1

    def _post_run_cell(self, result: Any) -> None:
        if not started(result):
            return
        with self._lock:
            self._depth = max(0, self._depth - 1)
            if self._depth or not self._comms:
                return
        # Only the outermost run pushes: a cell magic that runs its body fires nested events.
        self.push()

    @property
    def busy(self) -> bool:
        """Return whether a cell or a capture is running in this kernel."""
        with self._lock:
            depth = self._depth
        return depth > 0 or capture_running()

    # -- comms ------------------------------------------------------------------------------
    @property
    def comms(self) -> list[Any]:
        """Return the open comms, oldest first."""
        with self._lock:
            return list(self._comms.values())

    def _open_comm(self, c: Any, msg: Message) -> None:
        """Comm target callback: keep ``c`` and answer its hello with a snapshot."""
        try:
            evicted = []
            with self._lock:
                self._comms[c.comm_id] = c
                while len(self._comms) > MAX_COMMS:
                    evicted.append(self._comms.popitem(last=False)[1])
            c.on_msg(lambda m, _c=c: self._handle(_c, m))
            c.on_close(lambda m, _id=c.comm_id: self._forget(_id))
            for old in evicted:
                _close(old)
            problem = check(request_data(msg), {"hello"})
            self._send(c, problem if problem else self._reply_snapshot())
        except Exception:  # a failing target makes the comm manager close the comm
            log.exception("interp_magics: opening the panel comm failed")

    def _forget(self, comm_id: str) -> None:
        with self._lock:
            self._comms.pop(comm_id, None)

    def _handle(self, c: Any, msg: Message) -> None:
        """Comm message callback: dispatch one front-end request; never raises."""
        try:
            data = request_data(msg)
            problem = check(data, REQUESTS)
            if problem or not isinstance(data, dict):
                self._send(c, problem or error("malformed message"))
            elif data["type"] == "free":
                self._handle_free(c, data.get("name"))
            else:
                self._send(c, self._reply_snapshot())
        except Exception as exc:
            log.exception("interp_magics: a panel request failed")
            self._send(c, error(f"the kernel could not answer: {type(exc).__name__}: {exc}"))

    def _handle_free(self, c: Any, name: Any) -> None:
        if not isinstance(name, str) or not name:
            self._send(c, error("'free' needs the name of a cache, e.g. {'name': 'acts'}"))
            return
        reply, removed = self._free(name)
        self._send(c, reply)
        if removed:
            self.push()  # every panel shows the name gone
        elif not reply.get("busy"):
            self._send(c, self._reply_snapshot())  # the asking panel's list was stale

    def _send(self, c: Any, data: Message) -> bool:
        """Send ``data`` on ``c``; drop the comm when it is closed or sending fails."""
        if getattr(c, "_closed", False):
            self._forget(c.comm_id)
            return False
        try:
            c.send(data)
            return True
        except Exception:
            log.warning("interp_magics: dropping a panel comm that failed to send", exc_info=True)
            self._forget(c.comm_id)
            return False

    # -- snapshots --------------------------------------------------------------------------
    def snapshot(self) -> Message:
        """Return the snapshot message: caches, models, sizes and the ledger's tail."""
        with self._lock:
            names = listed_names(self.shell)
            return self._snapshots.take(names, self.ledger, busy=self._depth > 0)

    def _reply_snapshot(self) -> Message:
        """Return a snapshot for one comm; the next push then goes out even if unchanged.

        That comm may now hold a snapshot the others lack (taken while a cell ran, so
        ``busy``): the push after the cell brings every panel to the same state.
        """
        with self._lock:
            self._pushed, self._pushed_revs = None, set()
            return self.snapshot()

    def push(self, *, force: bool = False) -> int:
        """Send a fresh snapshot to every open comm; return how many received it.

        Skipped (returns 0) when the caches, models and ledger are what the last push sent,
        unless ``force``: most cells change none of them, and an unchanged list needs no
        message (with a hundred caches a snapshot is about 100 KiB).
        """
        try:
            with self._lock:  # build and send under the lock: every comm sees seq increase
                if not self._comms:
                    return 0
                data = self.snapshot()
                content = (data["caches"], data["models"], data["ledger"], data["busy"])
                if not force and content == self._pushed:
                    return 0
                self._pushed = content
                data["caches"] = self._known_entries_dropped(data["caches"])
                return sum(self._send(c, data) for c in list(self._comms.values()))
        except Exception:  # a post_run_cell callback must never disturb the user's cell
            log.exception("interp_magics: pushing the panel snapshot failed")
            return 0

    def _known_entries_dropped(self, caches: list[Message]) -> list[Message]:
        """Return ``caches`` with ``entries: null`` where the previous push carried them.

        Every open comm received the previous push (a comm that got its own snapshot since
        resets ``_pushed_revs``), so the panels copy those entries from it by ``rev``: a push
        after a cell that added one cache carries that cache's tensors, not all of them.
        """
        known = self._pushed_revs
        self._pushed_revs = {c["rev"] for c in caches}
        return [{**c, "entries": None} if c["rev"] in known else c for c in caches]

    # -- free -------------------------------------------------------------------------------
    def free(self, name: str) -> Message:
        """Return the ``freed`` reply after deleting the cache bound to ``name``.

        Deletes the name and the references IPython's output history holds (``Out``, ``_``,
        ``_N``, the display hook), collects garbage and empties the CUDA cache; ``ok`` says
        whether all of the cache's memory was released. Refused while a cell or a capture runs.
        """
        return self._free(name)[0]

    def _free(self, name: str) -> tuple[Message, bool]:
        with self._lock:  # no snapshot or cell start may interleave with the deletion
            if self.busy:
                return refused_busy(name), False
            return free_cache(self.shell, name, self._snapshots.forget)


def _close(c: Any) -> None:
    try:
        c.close()
    except Exception:  # already closed or never registered with the manager
        log.debug("interp_magics: closing a panel comm failed", exc_info=True)
