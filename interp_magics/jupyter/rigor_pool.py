"""The worker processes that run the rigor checks for the server, with a time limit each.

A check parses untrusted text with ``ast`` and regular expressions; a crafted notebook can make
that slow, and a regular expression holds the interpreter lock for as long as it runs, so a
check in one of the server's threads stalls its event loop (every request to the server
waits). Each check therefore runs in a separate process (:mod:`.rigor_worker`), which is killed
when the check overruns its time limit, and replaced.

- Workers are fresh interpreters (``python -I``, with the server's ``sys.path``), never forks of
  the server: they import only the checker, not the server's ``__main__`` (a spawned
  ``multiprocessing`` child would import jupyter_server or jupyterlab again) and not torch.
  They start on first use (about 0.2 s) and stay warm; extra idle ones are stopped after
  ``idle_seconds``.
- At most ``size`` checks run at once; one more is refused (:class:`PoolBusy`, a 503).
- At most one check per notebook (``key``) runs at a time: a newer request for the same
  notebook supersedes the running one, whose worker is killed (:class:`Superseded`, a 409).
  The panel shows only the answer to its latest request, so finishing the older check would
  only delay that answer, by up to the time limit on a slow notebook.
- Blocking pipe I/O runs in the pool's own threads, so the contents manager's executor is
  never short of threads; asyncio subprocesses are avoided because jupyter-server runs a
  selector event loop on Windows, which has none.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import pickle
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from .rigor_worker import read_frame, write_frame

# Imports the worker with exactly the server's sys.path (argv[1]); -I keeps the server's
# working directory (often the notebooks' root) and PYTHON* variables out of it.
_BOOT = (
    "import sys, json; sys.path[:] = json.loads(sys.argv[1]); "
    "from interp_magics.jupyter.rigor_worker import main; main()"
)


class PoolBusy(Exception):
    """As many checks as the pool allows are running; try again shortly."""


class Superseded(Exception):
    """A newer request for the same notebook replaced this check."""


class CheckTimedOut(Exception):
    """The check ran past the time limit; its worker was killed."""


class WorkerFailed(Exception):
    """The worker process could not start or ended without answering."""


@dataclass(eq=False)
class _Worker:
    proc: subprocess.Popen[bytes]
    ready: asyncio.Future[Any]
    busy: bool = False
    dead: bool = False
    last_used: float = field(default_factory=time.monotonic)


@dataclass(eq=False)
class _Job:
    key: str | None
    worker: _Worker | None = None
    superseded: bool = False


class CheckPool:
    """Worker processes for rigor checks: a time limit each, ``size`` at once, one per key."""

    def __init__(
        self,
        size: int,
        timeout: float,
        *,
        start_timeout: float = 60.0,
        idle_seconds: float = 600.0,
    ) -> None:
        self.size = max(1, size)
        self.timeout = timeout
        self.start_timeout = start_timeout
        self.idle_seconds = idle_seconds
        self._workers: list[_Worker] = []
        self._jobs: list[_Job] = []
        self._by_key: dict[str, _Job] = {}
        self._io = ThreadPoolExecutor(2 * self.size + 2, thread_name_prefix="rigor-worker-io")
        self._freed: asyncio.Event | None = None
        self._reaper: asyncio.TimerHandle | None = None
        self._closed = False

    # -- what tests and the handler read ---------------------------------------------------

    def pids(self) -> list[int]:
        """Return the process ids of the live workers."""
        return [w.proc.pid for w in self._workers if not w.dead]

    @property
    def running(self) -> int:
        """Return how many checks run now."""
        return len(self._jobs)

    def accepts(self, key: str | None) -> bool:
        """Return whether a check for ``key`` would start now (not refused as busy)."""
        return not self._closed and (
            len(self._jobs) < self.size or (key is not None and key in self._by_key)
        )

    # -- running a check ---------------------------------------------------------------------

    async def check(self, key: str | None, task: dict[str, Any]) -> dict[str, Any]:
        """Return the worker's answer to ``task`` (``{"reply": ...}`` or ``{"error": ...}``).

        Raises PoolBusy, Superseded (a newer check for ``key`` started), CheckTimedOut or
        WorkerFailed.
        """
        if key is not None and key in self._by_key:
            self._supersede(self._by_key[key])
        if not self.accepts(key):
            raise PoolBusy(len(self._jobs))
        job = _Job(key)
        self._jobs.append(job)
        if key is not None:
            self._by_key[key] = job
        try:
            return await self._run(job, task)
        finally:
            self._end(job)

    async def _run(self, job: _Job, task: dict[str, Any]) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        frame = await loop.run_in_executor(self._io, pickle.dumps, task, 5)
        worker = await self._acquire()
        if job.superseded:  # replaced while a worker was being found: it never ran
            self._release(worker)
            raise Superseded
        job.worker = worker
        answer = loop.run_in_executor(self._io, _round_trip, worker.proc, frame)
        try:
            data = await asyncio.wait_for(answer, self.timeout)
        except asyncio.TimeoutError:
            self._kill(worker)
            raise CheckTimedOut(self.timeout) from None
        except asyncio.CancelledError:  # the server is stopping, or the client left
            self._kill(worker)
            raise
        if data is None:
            self._kill(worker)
            if job.superseded:
                raise Superseded
            raise WorkerFailed("the checker's worker process ended without answering")
        self._release(worker)
        return json.loads(data)  # type: ignore[no-any-return]

    def _supersede(self, job: _Job) -> None:
        """Stop ``job`` (killing its worker if it runs) and free its place at once."""
        job.superseded = True
        if job.worker is not None:
            self._kill(job.worker)
        self._end(job)

    def _end(self, job: _Job) -> None:
        if job in self._jobs:
            self._jobs.remove(job)
        if job.key is not None and self._by_key.get(job.key) is job:
            del self._by_key[job.key]

    # -- workers -----------------------------------------------------------------------------

    async def _acquire(self) -> _Worker:
        """Return a ready idle worker, starting one when there are fewer than ``size``."""
        while True:
            if self._closed:
                raise WorkerFailed("the server is shutting down")
            worker = self._idle()
            if worker is None and len(self._workers) < self.size:
                try:
                    worker = self._start()
                except OSError as exc:  # strerror: the message would name the executable
                    why = exc.strerror or type(exc).__name__
                    raise WorkerFailed(f"the worker process did not start ({why})") from None
            if worker is not None:
                worker.busy = True
                try:
                    await asyncio.wait_for(asyncio.shield(worker.ready), self.start_timeout)
                except (asyncio.TimeoutError, WorkerFailed) as exc:
                    self._kill(worker, replace=False)  # a failing start is not retried forever
                    raise WorkerFailed(f"the worker process did not start ({exc})") from None
                return worker
            # Only while a superseded check still holds its worker: wait until one is free.
            if self._freed is None:
                self._freed = asyncio.Event()
            self._freed.clear()
            await self._freed.wait()

    def _idle(self) -> _Worker | None:
        """Return an idle worker, dropping any that exited on its own (it is not replaced)."""
        for worker in list(self._workers):
            if worker.busy or worker.dead:
                continue
            if worker.proc.poll() is None:
                return worker
            self._kill(worker, replace=False)
        return None

    def _start(self) -> _Worker:
        """Start a worker process; its ``ready`` resolves once the checker is imported."""
        paths = json.dumps([p for p in sys.path if p])
        proc = subprocess.Popen(
            [sys.executable, "-I", "-c", _BOOT, paths],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        ready = asyncio.get_running_loop().run_in_executor(self._io, _read_ready, proc)
        worker = _Worker(proc, ready)
        # A replacement nobody waits for yet may fail: mark its error seen (asyncio warns
        # otherwise); the next check that picks this worker meets the failure and drops it.
        ready.add_done_callback(_seen)
        self._workers.append(worker)
        return worker

    def _release(self, worker: _Worker) -> None:
        worker.busy = False
        worker.last_used = time.monotonic()
        self._notify()
        idle = [w for w in self._workers if not w.busy and not w.dead]
        if len(idle) > 1 and self._reaper is None and not self._closed:
            loop = asyncio.get_running_loop()
            self._reaper = loop.call_later(self.idle_seconds, self._reap)

    def _kill(self, worker: _Worker, *, replace: bool = True) -> None:
        """Kill ``worker`` and, with ``replace``, start its replacement (kept warm)."""
        if worker.dead:
            return
        worker.dead = True
        if worker in self._workers:
            self._workers.remove(worker)
        with contextlib.suppress(OSError):
            worker.proc.kill()
        self._background(_reap_process, worker.proc)
        self._notify()
        if replace and not self._closed and len(self._workers) < self.size:
            with contextlib.suppress(OSError):
                self._start()

    def _reap(self) -> None:
        """Stop the workers idle for ``idle_seconds``, keeping one warm."""
        self._reaper = None
        now = time.monotonic()
        idle = [w for w in self._workers if not w.busy and not w.dead and w.ready.done()]
        for worker in sorted(idle, key=lambda w: w.last_used)[:-1]:
            if now - worker.last_used >= self.idle_seconds:
                worker.dead = True
                self._workers.remove(worker)
                self._background(_stop_process, worker.proc)
        if len([w for w in self._workers if not w.busy]) > 1:
            self._reaper = asyncio.get_running_loop().call_later(self.idle_seconds, self._reap)

    def _background(self, job: Callable[[subprocess.Popen[bytes]], None], proc: Any) -> None:
        """Run ``job(proc)`` in a pool thread (in a thread of its own once the pool is closed)."""
        try:
            self._io.submit(job, proc)
        except RuntimeError:  # the executor is shut down: a check ended after close()
            threading.Thread(target=job, args=(proc,), daemon=True).start()

    def _notify(self) -> None:
        if self._freed is not None:
            self._freed.set()

    async def close(self) -> None:
        """Stop every worker (idle ones by closing their stdin, busy ones by killing them)."""
        self._closed = True
        if self._reaper is not None:
            self._reaper.cancel()
            self._reaper = None
        workers, self._workers = self._workers, []
        for worker in workers:
            worker.dead = True
            if worker.busy:
                with contextlib.suppress(OSError):
                    worker.proc.kill()
        self._notify()
        loop = asyncio.get_running_loop()
        await asyncio.gather(
            *(loop.run_in_executor(self._io, _stop_process, w.proc) for w in workers)
        )
        self._io.shutdown(wait=False)


def _seen(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()


def _round_trip(proc: subprocess.Popen[bytes], frame: bytes) -> bytes | None:
    """Send a task frame and return the answer's payload (None if the worker is gone)."""
    assert proc.stdin is not None and proc.stdout is not None
    try:
        write_frame(proc.stdin, frame)
    except OSError:  # killed (superseded, or the pool is closing)
        return None
    return read_frame(proc.stdout)


def _read_ready(proc: subprocess.Popen[bytes]) -> int:
    """Return the worker's pid from its first frame; raise WorkerFailed if none comes."""
    assert proc.stdout is not None
    frame = read_frame(proc.stdout)
    if frame is None:
        raise WorkerFailed(f"it exited with status {proc.wait()}")
    return int(json.loads(frame)["ready"])


def _reap_process(proc: subprocess.Popen[bytes]) -> None:
    """Wait for a killed process (no zombie) and close its pipes."""
    proc.wait()
    for stream in (proc.stdin, proc.stdout):
        if stream is not None:
            with contextlib.suppress(OSError):
                stream.close()


def _stop_process(proc: subprocess.Popen[bytes], grace: float = 5.0) -> None:
    """End a worker: close its stdin (it exits between checks), kill it after ``grace``."""
    if proc.stdin is not None:
        with contextlib.suppress(OSError):
            proc.stdin.close()
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        proc.kill()
    _reap_process(proc)
