"""The jupyter-server extension: the rigor checker over authenticated REST, for the sidebar.

Endpoints (under the server's base URL):

- ``GET /interp-magics/status``: ``{"version", "rules": {RULE_ID: {title, severity, fix,
  reference, alternatives}}}``, so the panel can tell the extension is enabled and which
  version of the checker runs in the server's environment.
- ``POST /interp-magics/rigor`` with ``{"path"?, "notebook"?, "ledger"?}``: the findings of
  :func:`interp_magics.rigor.check` (the same function as ``%rigor`` and ``interp-rigor``) for
  the posted notebook model, or for the notebook at ``path`` read through the contents manager
  when no model is posted, combined with the ledger the kernel pushed to the panel. The reply's
  ``status`` is ``"checked"``; a check that overran the time limit answers 504 with ``status``
  ``"timed-out"``, a server running its limit of checks 503 ``"busy"`` (with ``Retry-After``),
  and a check replaced by a newer one for the same notebook 409 ``"superseded"``.
- ``GET /interp-magics/rules/RULE_ID``: the rule's page (HTML; ``?format=markdown`` or
  ``text``), which the panel links to.

The notebook is parsed (``ast``), never executed and never written. Everything sent is
untrusted: the request is authorized before its body is read, the body is size-limited, the
notebook's shape and the ledger's fields are checked here, and the check itself runs in a
worker process with a time limit (:mod:`.rigor_pool`), so no notebook can stall the server.
``c.RigorChecks`` configures the limits. Importing this module does not import torch.
"""

from __future__ import annotations

import json
import os
import posixpath
from collections.abc import Awaitable, Callable
from functools import lru_cache
from typing import Any, TypeVar, cast

import tornado.web
from jupyter_core.utils import ensure_async
from jupyter_server.auth.decorator import authorized
from jupyter_server.base.handlers import APIHandler
from jupyter_server.utils import url_path_join
from tornado.ioloop import IOLoop
from traitlets import Float, Int, Unicode
from traitlets.config import Configurable

from ..version import __version__
from .rigor_contents import read_notebook
from .rigor_pool import CheckPool, CheckTimedOut, PoolBusy, Superseded, WorkerFailed
from .rigor_request import RequestError, RigorRequest, checked_notebook, parse_request

__all__ = ["RequestError", "RigorChecks", "checked_notebook", "parse_request", "status"]

MAX_BODY = 20 * 2**20  # bytes of one request; a 1,000-cell notebook model is about 300 KB


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


class RigorChecks(Configurable):
    """How the server runs rigor checks: ``c.RigorChecks.timeout = 20`` in its configuration."""

    timeout = Float(
        20.0,
        min=0.1,
        help="Seconds one check may run: its worker process is then killed, and the reply "
        "says the check timed out.",
    ).tag(config=True)
    max_checks = Int(
        min(4, max(2, os.cpu_count() or 2)),
        min=1,
        help="Checks that may run at once, each in its own worker process; a request beyond "
        "them is answered 503.",
    ).tag(config=True)
    stall_marker = Unicode(
        "",
        help="For tests only: a notebook with this text in a cell keeps its worker busy, "
        "holding the interpreter lock, until the time limit. Empty (off) by default.",
    ).tag(config=True)


# The message of @authorized, which RigorHandler.prepare() does the work of.
_NOT_AUTHORIZED = "User is not authorized to read on resource: contents."
POOL = "interp_magics_rigor_pool"  # web_app.settings keys
CHECKS = "interp_magics_rigor_checks"

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
            message = exc.log_message % exc.args
            self._reply(status_code, {"message": message, "reason": exc.reason})
            return
        super().write_error(status_code, **kwargs)

    def _reply(self, status_code: int, reply: dict[str, Any]) -> None:
        self.set_status(status_code)
        self.finish(json.dumps(reply))


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
    _refused: bool

    async def prepare(self) -> None:  # type: ignore[override]
        """Authenticate, authorize and refuse bodies over MAX_BODY, all before reading one.

        Tornado reads a streamed body only once this returns; raising here answers without
        reading it, so an unauthorized 20 MiB body is never buffered.
        """
        self._chunks, self._size, self._refused = [], 0, False
        await super().prepare()
        user = self.current_user
        if user is None:
            raise tornado.web.HTTPError(403, "authentication required")
        # What @authorized does on post(), which tornado calls only after the body is read.
        allowed = await ensure_async(self.authorizer.is_authorized(self, user, "read", "contents"))
        if not allowed:
            raise tornado.web.HTTPError(403, "%s", _NOT_AUTHORIZED)
        length = self.request.headers.get("Content-Length")
        if length is not None and length.isdigit() and int(length) > MAX_BODY:
            raise tornado.web.HTTPError(413, "%s", _too_big(int(length)))
        if self.request.connection is not None:
            # A backstop for chunked bodies (data_received answers 413 past MAX_BODY): tornado
            # stops reading, with a bare 400, a chunk that would take the body past this.
            limit = MAX_BODY + 2**16
            self.request.connection.set_max_body_size(limit)  # type: ignore[attr-defined]

    def data_received(self, chunk: bytes) -> None:
        """Collect the body within MAX_BODY; past it, answer 413 and drop what came."""
        if self._refused:
            return
        self._size += len(chunk)
        if self._size > MAX_BODY:  # a chunked body: no Content-Length to refuse up front
            self._refused, self._chunks = True, []
            self._reply(
                413, {"message": _too_big(self._size), "reason": "Request Entity Too Large"}
            )
            return
        self._chunks.append(chunk)

    @tornado.web.authenticated  # authorized in prepare()
    async def post(self) -> None:
        """Check the notebook in a worker process and reply with the findings."""
        if self._refused:  # answered 413 while the body came in
            return
        loop = IOLoop.current()
        body = b"".join(self._chunks)
        self._chunks = []
        pool: CheckPool = self.settings[POOL]
        try:
            request = await loop.run_in_executor(None, parse_request, body)
            del body
            key = self._key(request.path)
            if not pool.accepts(key):  # before reading a file for nothing
                raise PoolBusy(pool.running)
            notebook = request.notebook
            if notebook is None:
                assert request.path is not None  # parse_request requires one of the two
                content = await read_notebook(
                    self.contents_manager, request.path, MAX_BODY, _file_too_big
                )
                notebook = await loop.run_in_executor(
                    None, checked_notebook, content, request.notes
                )
            answer = await pool.check(key, self._task(notebook, request))
        except RequestError as exc:
            raise tornado.web.HTTPError(400, "%s", str(exc)) from None
        except PoolBusy as exc:
            self.set_header("Retry-After", "1")
            self._reply(503, _busy(exc.args[0] if exc.args else pool.size))
            return
        except Superseded:
            self._reply(409, _superseded())
            return
        except CheckTimedOut:
            self._reply(504, _timed_out(request.name, pool.timeout))
            return
        except WorkerFailed as exc:
            message = f"the rigor check could not run: {exc}"
            raise tornado.web.HTTPError(500, "%s", message) from None
        if "error" in answer:
            code = 500 if answer.get("internal") else 400
            raise tornado.web.HTTPError(code, "%s", str(answer["error"]))
        await self.finish(json.dumps(answer["reply"]))

    def _key(self, path: str | None) -> str | None:
        """Return the key under which one check per notebook runs (None without a path).

        The path alone: users of one server share its files, and a token-authenticated
        request may carry a new anonymous user each time.
        """
        return None if path is None else posixpath.normpath("/" + path.strip("/"))

    def _task(self, notebook: dict[str, Any], request: RigorRequest) -> dict[str, Any]:
        """Return what the worker needs for one check (see :mod:`.rigor_worker`)."""
        checks: RigorChecks = self.settings[CHECKS]
        return {
            "notebook": notebook,
            "ledger": request.ledger,
            "name": request.name,
            "notes": request.notes,
            # The worker's own CPU-time limit only backs up the pool's (a server gone
            # mid-check): well above it, so the pool always decides first.
            "cpu_seconds": 2 * checks.timeout + 10,
            "stall_marker": checks.stall_marker,
        }


class RulePageHandler(_Handler):
    """``GET /interp-magics/rules/RULE_ID``: the rule's page, HTML unless ``?format=``."""

    @property
    def content_security_policy(self) -> str:
        """Return the API's policy (nothing loads, nothing runs) plus the page's own styles."""
        return f"{super().content_security_policy}; style-src 'unsafe-inline'"

    @tornado.web.authenticated
    @_read_contents
    async def get(self, rule_id: str) -> None:
        """Reply with the page of ``rule_id``; 404 for a rule that does not exist."""
        fmt = self.get_argument("format", "html")
        if fmt not in _PAGE_TYPES:
            raise tornado.web.HTTPError(400, "format must be html, markdown or text")
        try:
            page = _rule_page(rule_id.upper(), fmt)
        except KeyError:
            raise tornado.web.HTTPError(
                404, "no rule %s: GET /interp-magics/status lists the rules", rule_id
            ) from None
        await self.finish(page, set_content_type=_PAGE_TYPES[fmt])


_PAGE_TYPES = {
    "html": "text/html; charset=UTF-8",
    "markdown": "text/markdown; charset=UTF-8",
    "text": "text/plain; charset=UTF-8",
}


@lru_cache(maxsize=64)
def _rule_page(rule_id: str, fmt: str) -> str:
    """Return the page of a rule (pages are static: rendered once per format)."""
    from ..rigor.pages import render_page

    return render_page(rule_id, fmt)


def _too_big(size: int, what: str = "the request") -> str:
    return (
        f"{what} is {size / 2**20:.1f} MiB; the rigor endpoint reads at most "
        f"{MAX_BODY // 2**20} MiB (send the notebook without outputs)"
    )


def _file_too_big(size: int) -> str:
    return _too_big(size, "the notebook")


def _busy(running: int) -> dict[str, Any]:
    checks = f"{running} rigor check{'' if running == 1 else 's'}"
    return {
        "status": "busy",
        "message": f"the server is already running {checks}, as many as it allows at once; "
        "try again in a moment",
        "reason": "busy",
        "retry_after": 1,
    }


def _superseded() -> dict[str, Any]:
    return {
        "status": "superseded",
        "message": "a newer check of this notebook replaced this one",
        "reason": "superseded",
    }


def _timed_out(name: str, timeout: float) -> dict[str, Any]:
    return {
        "status": "timed-out",
        "message": f"check timed out: checking {name} took longer than the server's limit "
        f"of {timeout:g} s, so it was stopped (very long cells or outputs can cause this; "
        "the limit is RigorChecks.timeout in the server's configuration)",
        "reason": "check timed out",
        "timeout": timeout,
        "notebook": name,
        "version": __version__,
    }


def _load_jupyter_server_extension(serverapp: Any) -> None:
    """Register the interp-magics handlers with the server (jupyter-server's entry point)."""
    checks = RigorChecks(parent=serverapp)
    pool = CheckPool(checks.max_checks, checks.timeout)
    web_app = serverapp.web_app
    web_app.settings[CHECKS] = checks
    web_app.settings[POOL] = pool
    base = url_path_join(web_app.settings["base_url"], "interp-magics")
    web_app.add_handlers(
        ".*$",
        [
            (url_path_join(base, "status"), StatusHandler),
            (url_path_join(base, "rigor"), RigorHandler),
            (url_path_join(base, "rules", "([A-Za-z0-9_-]{1,32})"), RulePageHandler),
        ],
    )
    _close_with_server(serverapp, pool)
    serverapp.log.info("interp-magics %s: rigor endpoints at %s", __version__, base)


def _close_with_server(serverapp: Any, pool: CheckPool) -> None:
    """Make the server stop ``pool``'s workers when it shuts its extensions down.

    jupyter-server calls stop hooks only on extension applications; this extension is a
    module, so its pool closes first in the server's own ``cleanup_extensions`` (which its
    shutdown, and pytest-jupyter's teardown, await). Workers also exit by themselves when
    the server dies: their stdin closes.
    """
    cleanup = serverapp.cleanup_extensions

    async def cleanup_extensions() -> None:
        try:
            await pool.close()
        finally:
            await cleanup()

    serverapp.cleanup_extensions = cleanup_extensions
