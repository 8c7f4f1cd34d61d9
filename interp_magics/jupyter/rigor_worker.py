"""The rigor checker's worker process: it checks the notebooks the server sends, one at a time.

The server's pool (:mod:`interp_magics.jupyter.rigor_pool`) starts it as a fresh interpreter
(``python -I -c ...``, the server's ``sys.path`` passed explicitly) and talks to it over its
stdin and stdout in frames, each an 8-byte big-endian length followed by the payload:

- worker to server, once, after the checker is imported: ``{"ready": pid}`` (JSON), so no
  check pays for the imports;
- server to worker: a task, pickled (it comes from the server, which started this process):
  ``{"notebook", "ledger", "name", "notes", "cpu_seconds", "stall_marker"}``, the notebook
  already checked for shape by the server;
- worker to server: ``{"reply": {...}}``, the endpoint's reply, or ``{"error": message}``
  (with ``"internal": true`` for a fault of the checker rather than of the notebook), as JSON:
  the server never unpickles what a process that parsed untrusted text sends back.

The server kills this process when a check overruns its time limit; stdin closing (the server
shut its pool down, or died) ends it between checks, and a CPU-time limit ends a check the
server no longer watches. Only the checker is imported here: no torch, tornado or
jupyter_server.
"""

from __future__ import annotations

import json
import os
import pickle
import struct
import sys
from typing import IO, Any

from ..version import __version__

_LENGTH = struct.Struct(">Q")


def write_frame(stream: IO[bytes], payload: bytes) -> None:
    """Write one frame (length, then ``payload``) to ``stream`` and flush it."""
    stream.write(_LENGTH.pack(len(payload)))
    stream.write(payload)
    stream.flush()


def read_frame(stream: IO[bytes]) -> bytes | None:
    """Return the payload of the next frame on ``stream``, or None if the stream ended."""
    header = stream.read(_LENGTH.size)
    if len(header) < _LENGTH.size:
        return None
    (size,) = _LENGTH.unpack(header)
    payload = stream.read(size)
    return payload if len(payload) == size else None


def run_task(task: dict[str, Any]) -> dict[str, Any]:
    """Return ``{"reply": ...}`` with the findings for a task, or ``{"error": ...}``."""
    from ..rigor import RULES, NotebookError, check

    notebook = task["notebook"]
    _stall_if_marked(notebook, task.get("stall_marker") or "")
    try:
        findings = check(notebook, ledger=task.get("ledger"), name=task["name"])
    except NotebookError as exc:
        return {"error": str(exc)}
    except (RecursionError, MemoryError) as exc:
        return {"error": f"the notebook could not be checked: {type(exc).__name__}"}
    reply: dict[str, Any] = {
        "version": __version__,
        "status": "checked",
        "summary": findings.summary(),
        "findings": [{**f.to_dict(), "title": RULES[f.rule].title} for f in findings],
        "notebook": task["name"],
    }
    if task.get("notes"):
        reply["notes"] = task["notes"]
    return {"reply": reply}


def _stall_if_marked(notebook: dict[str, Any], marker: str) -> None:
    """Spin forever, holding the interpreter lock, when a cell contains ``marker``.

    A test hook (``RigorChecks.stall_marker``, empty by default): it stands for a check that
    never ends, such as a regular expression backtracking on a crafted notebook. Each call
    below stays inside the regex engine for seconds without releasing the lock, which would
    freeze a server that ran checks in one of its own threads.
    """
    if not marker or not any(marker in cell.get("source", "") for cell in notebook["cells"]):
        return
    import re

    pattern = re.compile(r"(a+)+$")
    while True:  # ended by the server's time limit
        pattern.match("a" * 26 + "b")


def _limit_cpu(seconds: float) -> None:
    """Let the kernel end this process once it has used ``seconds`` more CPU time.

    The server kills a worker at its time limit; this covers a server that died or stopped
    watching mid-check. No effect where ``resource`` is missing (Windows).
    """
    try:
        import resource
    except ImportError:
        return
    usage = resource.getrusage(resource.RUSAGE_SELF)
    _, hard = resource.getrlimit(resource.RLIMIT_CPU)
    soft = int(usage.ru_utime + usage.ru_stime + seconds) + 1
    if hard != resource.RLIM_INFINITY:
        soft = min(soft, hard)
    resource.setrlimit(resource.RLIMIT_CPU, (soft, hard))


def _answer(task: dict[str, Any]) -> dict[str, Any]:
    """Return the answer to ``task``; a fault of the checker is an answer, not an exit."""
    try:
        _limit_cpu(float(task.get("cpu_seconds", 600.0)))
        return run_task(task)
    except Exception as exc:  # a bug in a rule must not end the worker or reach the user raw
        import traceback

        traceback.print_exc(file=sys.stderr)
        return {"error": f"the checker failed ({type(exc).__name__})", "internal": True}


def main() -> None:
    """Serve tasks from stdin until it closes (the worker process's entry point)."""
    import signal
    import warnings

    # Ctrl-C in the server's terminal reaches this process group too: the server decides
    # when a worker ends. Warnings from ast.parse on users' code are not the server's log.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    warnings.simplefilter("ignore")
    # Frames go to the original stdout; anything printed goes to stderr (the server's log).
    out = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    sys.stdout = sys.stderr
    source = sys.stdin.buffer

    import interp_magics.rigor  # noqa: F401  (warm: imported once, before the first task)

    write_frame(out, json.dumps({"ready": os.getpid()}).encode())
    while (frame := read_frame(source)) is not None:
        task = pickle.loads(frame)
        write_frame(out, json.dumps(_answer(task)).encode())
