"""The jupyter-server extension: the rigor checker over authenticated REST, for the sidebar.

Endpoints (under the server's base URL):

- ``GET /interp-magics/status``: ``{"version", "rules": {RULE_ID: {title, severity, fix,
  reference, alternatives}}}``, so the panel can tell the extension is enabled and which
  version of the checker runs in the server's environment.
- ``POST /interp-magics/rigor`` with ``{"path"?, "notebook"?, "ledger"?}``: the findings of
  :func:`interp_magics.rigor.check` (the same function as ``%rigor`` and ``interp-rigor``) for
  the posted notebook model, or for the notebook at ``path`` read through the contents manager
  when no model is posted, combined with the ledger the kernel pushed to the panel.

The notebook is parsed (``ast``), never executed and never written. Everything sent is
untrusted: the body is size-limited, the notebook's shape and the ledger's fields are checked
before the checker sees them, and the work runs in an executor so the server never blocks.
Importing this module does not import torch.
"""

from __future__ import annotations

import json
import posixpath
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast

import tornado.web
from jupyter_core.utils import ensure_async
from jupyter_server.auth.decorator import authorized
from jupyter_server.base.handlers import APIHandler
from jupyter_server.utils import url_path_join
from tornado.ioloop import IOLoop

from ..core.records import clean_entry
from ..version import __version__

MAX_BODY = 20 * 2**20  # bytes of one request; a 1,000-cell notebook model is about 300 KB
MAX_CELLS = 10_000
MAX_CELL_SOURCE = 1_000_000  # characters; longer cells are reported, not parsed
MAX_LEDGER_ENTRIES = 10_000

_CELL_TYPES = frozenset({"code", "markdown", "raw"})


class RequestError(ValueError):
    """The request body is not what the endpoint accepts; the message says what is wrong."""


@dataclass
class RigorRequest:
    """A checked ``POST /interp-magics/rigor`` body."""

    notebook: dict[str, Any] | None
    path: str | None
    ledger: list[dict[str, Any]] | None
    notes: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return posixpath.basename(self.path) if self.path else "notebook"


def parse_request(body: bytes) -> RigorRequest:
    """Return the checked rigor request in ``body`` (JSON); raise RequestError if malformed."""
    try:
        data = json.loads(body)
    except (ValueError, RecursionError, MemoryError) as exc:  # bad JSON, UTF-8 or nesting
        detail = exc.msg if isinstance(exc, json.JSONDecodeError) else type(exc).__name__
        raise RequestError(f"the request body is not valid JSON ({detail})") from None
    if not isinstance(data, dict):
        raise RequestError(
            "the request body must be a JSON object with 'notebook' (a notebook model) "
            "and/or 'path', and optionally 'ledger'"
        )
    path = data.get("path")
    if path is not None and (not isinstance(path, str) or not path or "\0" in path):
        raise RequestError("'path' must be a non-empty string: the notebook's path on the server")
    notebook = data.get("notebook")
    if notebook is None and path is None:
        raise RequestError("give 'notebook' (the notebook model) or 'path' (a notebook file)")
    request = RigorRequest(None, path, ledger_entries(data.get("ledger")))
    if notebook is not None:
        request.notebook = checked_notebook(notebook, request.notes)
    return request


def checked_notebook(notebook: Any, notes: list[str]) -> dict[str, Any]:
    """Return ``notebook`` as a version-4 notebook dict whose cells the checker can read.

    Raises RequestError when it is not a notebook. nbformat 3 is converted in memory. Cells
    whose source is longer than MAX_CELL_SOURCE are checked as empty and a note says so.
    """
    if not isinstance(notebook, dict):
        raise RequestError(f"'notebook' must be a notebook object, not {_kind(notebook)}")
    version = notebook.get("nbformat", 4)
    if not isinstance(version, int) or isinstance(version, bool) or version not in (3, 4):
        raise RequestError(f"nbformat {version!r} is not supported: send an nbformat 4 notebook")
    if version == 3:
        notebook = _upgraded(notebook)
    cells = notebook.get("cells")
    if not isinstance(cells, list):
        raise RequestError("the notebook has no 'cells' list; is it a notebook?")
    too_many = f"the notebook has {len(cells)} cells; the checker reads at most {MAX_CELLS}"
    clean = []
    for i, cell in _objects(cells, MAX_CELLS, too_many, "cell"):
        kind = cell.get("cell_type", "code")
        if kind not in _CELL_TYPES:
            raise RequestError(
                f"cell {i} has cell_type {_short(kind)}; expected code, markdown or raw"
            )
        source = cell.get("source", "")
        if isinstance(source, list) and all(isinstance(s, str) for s in source):
            source = "".join(source)
        if not isinstance(source, str):
            raise RequestError(
                f"cell {i} has a source that is not text (a string or a list of strings)"
            )
        for key, types in (("id", (str,)), ("metadata", (dict,)), ("outputs", (list,))):
            if cell.get(key) is not None and not isinstance(cell[key], types):
                raise RequestError(f"cell {i} has a malformed {key!r} ({_kind(cell[key])})")
        count = cell.get("execution_count")
        if count is not None and (not isinstance(count, int) or isinstance(count, bool)):
            raise RequestError(f"cell {i} has an execution_count that is not an integer")
        if len(source) > MAX_CELL_SOURCE:
            notes.append(
                f"cell {i} ({len(source):,} characters) is longer than "
                f"{MAX_CELL_SOURCE:,} characters and was not checked"
            )
            source = ""
        clean.append({**cell, "cell_type": kind, "source": source})
    metadata = notebook.get("metadata")
    return {
        "nbformat": 4,
        "nbformat_minor": notebook.get("nbformat_minor", 5),
        "metadata": metadata if isinstance(metadata, dict) else {},
        "cells": clean,
    }


def _upgraded(notebook: dict[str, Any]) -> dict[str, Any]:
    """Return an nbformat 3 notebook as version 4 (in memory), as the checker converts it."""
    from ..rigor.notebook import NotebookError, upgrade_v3

    try:
        return upgrade_v3(notebook)
    except NotebookError as exc:
        raise RequestError(str(exc)) from None


def ledger_entries(ledger: Any) -> list[dict[str, Any]] | None:
    """Return the ledger's entries with only well-typed fields (None when not given).

    Accepts ``{"schema": 1, "entries": [...]}`` or a list of entries; each entry must be an
    object, and is cleaned like every ledger entry from outside the kernel
    (:func:`interp_magics.core.records.clean_entry`).
    """
    if ledger is None:
        return None
    if isinstance(ledger, dict):
        schema = ledger.get("schema", 1)
        if schema != 1:
            raise RequestError(f"ledger schema {_short(schema)} is not supported (1)")
        ledger = ledger.get("entries")
        if not isinstance(ledger, list):
            raise RequestError("'ledger' must have an 'entries' list")
    if not isinstance(ledger, list):
        raise RequestError(
            "'ledger' must be {'schema': 1, 'entries': [...]}, a list of "
            f"entries, or null; got {_kind(ledger)}"
        )
    too_many = f"the ledger has {len(ledger)} entries; at most {MAX_LEDGER_ENTRIES} are accepted"
    return [
        clean_entry(e) for _, e in _objects(ledger, MAX_LEDGER_ENTRIES, too_many, "ledger entry")
    ]


def run_check(
    notebook: dict[str, Any], ledger: list[dict[str, Any]] | None, name: str, notes: list[str]
) -> dict[str, Any]:
    """Return the rigor endpoint's reply for a checked notebook and ledger."""
    from ..rigor import RULES, NotebookError, check

    try:
        findings = check(notebook, ledger=ledger, name=name)
    except NotebookError as exc:
        raise RequestError(str(exc)) from None
    except (RecursionError, MemoryError) as exc:
        raise RequestError(f"the notebook could not be checked: {type(exc).__name__}") from None
    reply: dict[str, Any] = {
        "version": __version__,
        "summary": findings.summary(),
        "findings": [{**f.to_dict(), "title": RULES[f.rule].title} for f in findings],
        "notebook": name,
    }
    if notes:
        reply["notes"] = notes
    return reply


def status() -> dict[str, Any]:
    """Return the status reply: this version and every rule the checker runs."""
    from ..rigor import RULES

    return {
        "version": __version__,
        "rules": {
            rule.id: {
                "title": rule.title,
                "severity": rule.severity,
                "fix": rule.fix,
                "reference": rule.reference,
                "alternatives": rule.alternatives,
            }
            for rule in RULES.values()
        },
    }


def _objects(
    items: list[Any], limit: int, too_many: str, name: str
) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield each item with its 1-based index, checking that there are at most ``limit``
    (else RequestError saying ``too_many``) and that each is an object (named ``name i``)."""
    if len(items) > limit:
        raise RequestError(too_many)
    for i, item in enumerate(items, 1):
        if not isinstance(item, dict):
            raise RequestError(f"{name} {i} must be an object, not {_kind(item)}")
        yield i, item


def _kind(value: Any) -> str:
    names = {dict: "an object", list: "a list", str: "a string", type(None): "null"}
    return names.get(type(value), f"a {type(value).__name__}")


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:39] + "…"


_Method = TypeVar("_Method", bound=Callable[..., Awaitable[None]])


def _read_contents(method: _Method) -> _Method:
    """Return ``method`` requiring the "read" permission on "contents" (typed wrapper)."""
    # Explicit action: a POST would otherwise be authorized as "write".
    decorator: Any = authorized(action="read", resource="contents")
    return cast("_Method", decorator(method))


class _Handler(APIHandler):
    # Reading notebooks is what these endpoints do, so the "contents" permission governs
    # them (custom authorizers such as JupyterHub's RBAC then apply as for the contents API).
    auth_resource = "contents"

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        """Reply ``{"message": ..., "reason": ...}`` with the error's formatted message."""
        exc = (kwargs.get("exc_info") or (None, None, None))[1]
        if isinstance(exc, tornado.web.HTTPError) and exc.log_message:
            # Our messages carry user data as arguments, so logging never misreads a "%" in
            # a path; APIHandler.write_error would reply with the unformatted template. Errors
            # raised without arguments (the contents manager's) have every "%" doubled.
            self.set_header("Content-Type", "application/json")
            message = exc.log_message % exc.args
            self.finish(json.dumps({"message": message, "reason": exc.reason}))
            return
        super().write_error(status_code, **kwargs)


class StatusHandler(_Handler):
    """``GET /interp-magics/status``."""

    @tornado.web.authenticated
    @_read_contents
    async def get(self) -> None:
        """Reply with the version and the rules."""
        await self.finish(json.dumps(status()))


@tornado.web.stream_request_body
class RigorHandler(_Handler):
    """``POST /interp-magics/rigor``: findings for a notebook model or path."""

    _chunks: list[bytes]
    _size: int

    async def prepare(self) -> None:  # type: ignore[override]
        """Authenticate, then refuse bodies over MAX_BODY before reading them."""
        await super().prepare()
        self._chunks, self._size = [], 0
        if self.current_user is None:
            # Refuse before reading a body: @authenticated on post() would only do so after.
            raise tornado.web.HTTPError(403, "authentication required")
        length = self.request.headers.get("Content-Length")
        if length is not None and length.isdigit() and int(length) > MAX_BODY:
            raise tornado.web.HTTPError(413, "%s", _too_big(int(length)))
        if self.request.connection is not None:
            # A chunked body has no length up front: tornado stops reading past this.
            self.request.connection.set_max_body_size(MAX_BODY)  # type: ignore[attr-defined]

    def data_received(self, chunk: bytes) -> None:
        """Collect the body, within MAX_BODY."""
        self._size += len(chunk)
        if self._size > MAX_BODY:
            raise tornado.web.HTTPError(413, "%s", _too_big(self._size))
        self._chunks.append(chunk)

    @tornado.web.authenticated
    @_read_contents
    async def post(self) -> None:
        """Check the notebook and reply with the findings."""
        loop = IOLoop.current()
        body = b"".join(self._chunks)
        self._chunks = []
        try:
            request = await loop.run_in_executor(None, parse_request, body)
            del body
            notebook = request.notebook
            if notebook is None:
                assert request.path is not None  # parse_request requires one of the two
                content = await self._read(request.path)
                notebook = await loop.run_in_executor(
                    None, checked_notebook, content, request.notes
                )
            reply = await loop.run_in_executor(
                None, run_check, notebook, request.ledger, request.name, request.notes
            )
        except RequestError as exc:
            raise tornado.web.HTTPError(400, "%s", str(exc)) from None
        await self.finish(json.dumps(reply))

    async def _read(self, path: str) -> Any:
        """Return the content of the notebook at ``path`` through the contents manager."""
        cm: Any = self.contents_manager  # its methods are untyped
        missing = tornado.web.HTTPError(404, "no notebook at %s on this server", path)
        try:
            # The contents API checks hidden files in its handler, not in the manager.
            if not cm.allow_hidden and await ensure_async(cm.is_hidden(path)):
                raise missing
            # Paths outside the root directory raise 404 in the manager.
            model = await ensure_async(cm.get(path, content=False))
            size = model.get("size")
            if isinstance(size, int) and size > MAX_BODY:
                raise tornado.web.HTTPError(413, "%s", _too_big(size))
            model = await ensure_async(cm.get(path, content=True, type="notebook"))
        except tornado.web.HTTPError:
            raise
        except (OSError, ValueError):
            raise missing from None
        return model.get("content")


def _too_big(size: int) -> str:
    return (
        f"the request is {size / 2**20:.1f} MiB; the rigor endpoint accepts at most "
        f"{MAX_BODY // 2**20} MiB (send the notebook without outputs)"
    )


def _load_jupyter_server_extension(serverapp: Any) -> None:
    """Register the interp-magics handlers with the server (jupyter-server's entry point)."""
    web_app = serverapp.web_app
    base = url_path_join(web_app.settings["base_url"], "interp-magics")
    web_app.add_handlers(
        ".*$",
        [
            (url_path_join(base, "status"), StatusHandler),
            (url_path_join(base, "rigor"), RigorHandler),
        ],
    )
    serverapp.log.info("interp-magics %s: rigor endpoints at %s", __version__, base)
