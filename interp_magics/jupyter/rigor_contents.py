"""Reading a notebook for the rigor endpoint by its path, through the contents manager.

Paths go through the server's contents manager only (its root, hidden-file and permission
rules apply), with two additions:

- size: a notebook larger than the endpoint's limit is refused before it is read, measured on
  the file a symlink resolves to (the contents model's ``size`` is the link's own ``lstat``
  size), and again after reading, in case the file grew in between;
- errors: the reply never names a filesystem path of the server. The contents manager's
  messages can (``Unreadable Notebook: /home/.../x.ipynb``, ``... is not UTF-8 encoded``), so
  they are rewritten with the notebook's API path, or replaced by a plain message.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from typing import Any

import tornado.web
from jupyter_core.utils import ensure_async
from tornado.ioloop import IOLoop

# A path that starts at a filesystem root: "/x", "~/x", "C:\x", "\\server\x".
_ABSOLUTE = re.compile(r"(?:^|(?<=[\s'\"(\[=:,]))(?:/|~/|[A-Za-z]:[\\/]|\\\\)[^\s'\"]")


async def read_notebook(cm: Any, path: str, max_bytes: int, too_big: Callable[[int], str]) -> Any:
    """Return the content of the notebook at ``path`` read through the contents manager ``cm``.

    Raises ``HTTPError`` 404 (missing, hidden or outside the root), 413 (over ``max_bytes``,
    with the message ``too_big(size)``), or the manager's own error with every server path
    taken out of its message.
    """
    os_path = _os_path(cm, path)
    missing = tornado.web.HTTPError(404, "no notebook at %s on this server", path)
    try:
        # The contents API checks hidden files in its handler, not in the manager.
        if not cm.allow_hidden and await ensure_async(cm.is_hidden(path)):
            raise missing
        # Paths outside the root directory raise 404 in the manager.
        model = await ensure_async(cm.get(path, content=False))
        size = _resolved_size(os_path) if os_path else model.get("size")
        _check_size(size, max_bytes, too_big)
        model = await ensure_async(cm.get(path, content=True, type="notebook"))
        content = model.get("content")
        if os_path:
            after = _resolved_size(os_path)
        else:  # no file to stat: measure what was read
            after = await IOLoop.current().run_in_executor(None, _json_size, content)
        _check_size(after, max_bytes, too_big)
    except tornado.web.HTTPError as exc:
        if exc is missing or exc.status_code == 413:
            raise
        raise tornado.web.HTTPError(
            exc.status_code, "%s", _without_server_paths(exc, path, cm, os_path), reason=exc.reason
        ) from None
    except (OSError, ValueError):
        raise missing from None
    return content


def _os_path(cm: Any, path: str) -> str | None:
    """Return the file ``path`` names for a file-backed contents manager, else None."""
    get_os_path = getattr(cm, "_get_os_path", None)
    if get_os_path is None:
        return None
    try:
        return str(get_os_path(path.strip("/")))
    except (tornado.web.HTTPError, OSError, ValueError, TypeError):
        return None  # outside the root: the manager's own get() answers 404


def _resolved_size(os_path: str) -> int:
    """Return the size of the file ``os_path`` is or links to (``stat`` follows symlinks)."""
    return os.stat(os_path).st_size


def _json_size(content: Any) -> int:
    return len(json.dumps(content, default=str))


def _check_size(size: Any, max_bytes: int, too_big: Callable[[int], str]) -> None:
    if isinstance(size, int) and size > max_bytes:
        raise tornado.web.HTTPError(413, "%s", too_big(size))


def _without_server_paths(
    exc: tornado.web.HTTPError, path: str, cm: Any, os_path: str | None
) -> str:
    """Return the error's message with the server's paths replaced by the API ``path``."""
    try:  # tornado doubles every "%" of a message raised without arguments
        message = (exc.log_message or "") % exc.args
    except (TypeError, ValueError):
        message = exc.log_message or ""
    api = path.strip("/")
    if os_path:
        for local in {os.path.realpath(os_path), os.path.abspath(os_path), os_path}:
            message = message.replace(local, api)
    root = getattr(cm, "root_dir", None)
    if isinstance(root, str) and root:
        for local in {os.path.realpath(root), os.path.abspath(root), root}:
            message = message.replace(local.rstrip(os.sep) + os.sep, "")
    if _ABSOLUTE.search(message.replace(api, "")):
        return f"the notebook at {api} could not be read"
    return message
