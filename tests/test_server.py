"""The jupyter-server extension: the rigor checker over authenticated REST.

Each test starts a real jupyter server (pytest-jupyter) with the extension enabled and talks to
it over HTTP, comparing what the endpoints reply with what ``interp_magics.rigor.check``
computes in this process for the same notebook and ledger.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from jupyter_server.auth import Authorizer
from jupyter_server.services.contents.largefilemanager import AsyncLargeFileManager
from tornado.httpclient import AsyncHTTPClient, HTTPRequest
from traitlets.config import Config

import interp_magics
from interp_magics.jupyter import rigor_request, server
from interp_magics.jupyter.rigor_pool import CheckPool
from interp_magics.rigor import RULES, check

pytest_plugins = ["pytest_jupyter.jupyter_server"]

FIXTURES = Path(__file__).parent / "fixtures" / "rigor"
CLAIM = "Head 2.1 is responsible for the answer."  # a causal claim: CAU001 without interventions


def fixture_nb(rule: str, kind: str = "bad") -> dict[str, Any]:
    return json.loads((FIXTURES / f"{rule}_{kind}.ipynb").read_text(encoding="utf-8"))


def code(source: str, cell_id: str, **extra: Any) -> dict[str, Any]:
    cell = {
        "cell_type": "code",
        "id": cell_id,
        "source": source,
        "metadata": {},
        "outputs": [],
        "execution_count": None,
    }
    return {**cell, **extra}


def markdown(source: str, cell_id: str) -> dict[str, Any]:
    return {"cell_type": "markdown", "id": cell_id, "source": source, "metadata": {}}


def notebook(*cells: dict[str, Any]) -> dict[str, Any]:
    return {"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": list(cells)}


def expected(nb: Any, *, name: str = "notebook", ledger: Any = None) -> list[dict[str, Any]]:
    """The findings the endpoint must reply with: ``check`` in this process, plus the title."""
    return [
        {**f.to_dict(), "title": RULES[f.rule].title} for f in check(nb, ledger=ledger, name=name)
    ]


def key(findings: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return [(f["rule"], f["cell_id"], f["line"], f["message"]) for f in findings]


# -- the server ----------------------------------------------------------------------------------


@pytest.fixture
def extra_config() -> dict[str, Any]:
    """More server configuration; tests parametrize this to change it."""
    return {}


@pytest.fixture
def jp_server_config(extra_config: dict[str, Any]) -> Config:
    config = Config({"ServerApp": {"jpserver_extensions": {"interp_magics": True}}})
    config.merge(Config(extra_config))
    return config


@pytest.fixture
def rigor(jp_fetch):
    """POST a body to the rigor endpoint; return (status code, decoded JSON reply)."""

    async def post(body: Any, **kwargs: Any) -> tuple[int, Any]:
        if not isinstance(body, bytes):
            body = json.dumps(body).encode()
        response = await jp_fetch(
            "interp-magics", "rigor", method="POST", body=body, raise_error=False, **kwargs
        )
        assert response.headers["Content-Type"].startswith("application/json"), response.headers
        return response.code, json.loads(response.body)

    return post


async def bad_request(rigor, body: Any, code: int = 400) -> str:
    """Post ``body``, assert the reply is ``code`` with a JSON message, and return that."""
    status, reply = await rigor(body)
    assert status == code, reply
    assert isinstance(reply["message"], str) and reply["message"], reply
    assert "findings" not in reply
    return reply["message"]


# -- status --------------------------------------------------------------------------------------


async def test_status_reports_the_version_and_every_rule(jp_fetch):
    response = await jp_fetch("interp-magics", "status")
    assert response.code == 200
    assert response.headers["Content-Type"].startswith("application/json")
    reply = json.loads(response.body)
    assert reply["version"] == interp_magics.__version__
    assert set(reply["rules"]) == set(RULES)
    for rule_id, info in reply["rules"].items():
        rule = RULES[rule_id]
        assert info["title"] == rule.title and info["title"]
        assert info["severity"] == rule.severity and info["severity"] in ("error", "warning")
        assert info["fix"] == rule.fix and info["fix"]
        assert info["reference"] == rule.reference and info["reference"]
        assert info["alternatives"] == rule.alternatives


# -- a posted notebook model ---------------------------------------------------------------------


@pytest.mark.parametrize("rule", ["STA001", "PRB001", "CAU003", "REP001", "ATT001"])
async def test_posted_notebook_gets_the_same_findings_as_check(rigor, rule):
    nb = fixture_nb(rule)
    status, reply = await rigor({"notebook": nb})
    assert status == 200, reply
    want = expected(nb)
    assert want and rule in {f["rule"] for f in want}  # the fixture does produce findings
    assert key(reply["findings"]) == key(want)
    assert reply["findings"] == want  # every field, not only the location and message
    for finding in reply["findings"]:
        assert finding["title"] == RULES[finding["rule"]].title
        assert finding["notebook"] == "notebook"
    assert reply["summary"] == check(nb).summary()
    assert reply["version"] == interp_magics.__version__
    assert reply["notebook"] == "notebook"
    assert "notes" not in reply


async def test_a_clean_notebook_has_no_findings(rigor):
    nb = fixture_nb("STA001", "good")
    assert check(nb) == []
    status, reply = await rigor({"notebook": nb})
    assert status == 200, reply
    assert reply["findings"] == [] and reply["summary"] == "0 errors, 0 warnings"


async def test_list_sources_and_the_path_as_display_name(rigor):
    """Sources as lists of lines are joined; with a path the reply names the notebook by it."""
    nb = fixture_nb("STA001")
    for cell in nb["cells"]:
        if isinstance(cell["source"], str):
            cell["source"] = cell["source"].splitlines(keepends=True)
    status, reply = await rigor({"notebook": nb, "path": "work/analysis.ipynb"})
    assert status == 200, reply
    assert reply["notebook"] == "analysis.ipynb"
    assert reply["findings"] == expected(nb, name="analysis.ipynb")
    assert reply["findings"] and all(f["notebook"] == "analysis.ipynb" for f in reply["findings"])


async def test_suppressed_findings_are_reported_as_suppressed(rigor):
    nb = notebook(markdown(CLAIM + "  <!-- rigor: ignore[CAU001] -- a hypothesis -->", "m1"))
    status, reply = await rigor({"notebook": nb})
    assert status == 200, reply
    assert [(f["rule"], f["suppressed"]) for f in reply["findings"]] == [("CAU001", True)]
    assert reply["findings"] == expected(nb)
    assert reply["summary"] == "0 errors, 0 warnings, 1 suppressed"


async def test_overlong_cells_are_noted_and_not_checked(rigor, monkeypatch):
    monkeypatch.setattr(rigor_request, "MAX_CELL_SOURCE", 30)
    nb = notebook(markdown(CLAIM, "m1"), code("x = 1", "c2"))
    assert len(CLAIM) > 30 and "CAU001" in {f.rule for f in check(nb)}
    status, reply = await rigor({"notebook": nb})
    assert status == 200, reply
    assert reply["findings"] == []
    assert reply["notes"] == [
        f"cell 1 ({len(CLAIM)} characters) is longer than 30 characters and was not checked"
    ]


# -- a notebook on the server, by path -----------------------------------------------------------


@pytest.mark.parametrize("where", ["x.ipynb", "sub dir/nested/x.ipynb"])
async def test_path_reads_the_notebook_through_the_contents_manager(rigor, jp_root_dir, where):
    target = jp_root_dir / where
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(FIXTURES / "STA001_bad.ipynb", target)
    status, reply = await rigor({"path": where})
    assert status == 200, reply
    nb = fixture_nb("STA001")
    want = expected(nb, name="x.ipynb")
    assert key(reply["findings"]) == key(want) and [f["rule"] for f in want] == ["STA001"]
    assert reply["findings"] == want
    assert reply["notebook"] == "x.ipynb"
    assert reply["summary"] == check(nb).summary()


async def test_path_with_a_ledger(rigor, jp_root_dir):
    (jp_root_dir / "x.ipynb").write_text(json.dumps(notebook(code("x = 1", "c1"))))
    ledger = [{"kind": "test", "cell_id": "c1", "p_values": 3, "corrected": False}]
    status, reply = await rigor({"path": "x.ipynb", "ledger": ledger})
    assert status == 200, reply
    assert [(f["rule"], f["source"]) for f in reply["findings"]] == [("STA001", "ledger")]


async def test_a_missing_path_is_404(rigor, jp_root_dir):
    message = await bad_request(rigor, {"path": "missing.ipynb"}, 404)
    assert "missing.ipynb" in message


@pytest.mark.parametrize("hidden", [".hidden.ipynb", ".secret/x.ipynb"])
async def test_hidden_notebooks_are_404_unless_allowed(rigor, jp_root_dir, jp_serverapp, hidden):
    target = jp_root_dir / hidden
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(FIXTURES / "STA001_bad.ipynb", target)
    assert jp_serverapp.contents_manager.allow_hidden is False  # the default
    message = await bad_request(rigor, {"path": hidden}, 404)
    assert message == f"no notebook at {hidden} on this server"
    # as with the contents API, ContentsManager.allow_hidden opens hidden files
    jp_serverapp.contents_manager.allow_hidden = True
    status, reply = await rigor({"path": hidden})
    assert status == 200, reply
    assert [f["rule"] for f in reply["findings"]] == ["STA001"]


async def test_paths_outside_the_root_are_404(rigor, jp_root_dir, tmp_path):
    outside = tmp_path / "outside.ipynb"  # jp_root_dir is tmp_path / "root_dir"
    assert jp_root_dir.parent == tmp_path
    shutil.copy(FIXTURES / "STA001_bad.ipynb", outside)
    for path in ["../outside.ipynb", "sub/../../outside.ipynb", str(outside)]:
        status, reply = await rigor({"path": path})
        assert status == 404, (path, reply)
        assert "findings" not in reply and reply["message"]


async def test_a_path_that_is_not_a_notebook_is_400(rigor, jp_root_dir):
    (jp_root_dir / "notes.txt").write_text("hello")
    (jp_root_dir / "folder").mkdir()
    (jp_root_dir / "broken.ipynb").write_text("{not json")
    (jp_root_dir / "list.ipynb").write_text("[]")
    for path in ["notes.txt", "folder", "broken.ipynb", "list.ipynb"]:
        status, reply = await rigor({"path": path})
        assert status == 400, (path, status, reply)
        assert path in reply["message"] and "findings" not in reply


async def test_messages_with_a_percent_sign_are_formatted(rigor, jp_root_dir):
    """The extension's own errors carry the path as an argument, so a "%" in it is kept."""
    shutil.copy(FIXTURES / "STA001_bad.ipynb", jp_root_dir / ".100% %s.ipynb")
    message = await bad_request(rigor, {"path": ".100% %s.ipynb"}, 404)
    assert message == "no notebook at .100% %s.ipynb on this server"


async def test_contents_manager_messages_with_a_percent_sign_are_formatted(rigor, jp_root_dir):
    message = await bad_request(rigor, {"path": "a 50% b.ipynb"}, 404)
    assert message == "No such file or directory: a 50% b.ipynb"


async def test_a_notebook_file_over_max_body_is_413(rigor, jp_root_dir, monkeypatch):
    nb = notebook(code("x = 1\n" * 500, "c1"))
    (jp_root_dir / "big.ipynb").write_text(json.dumps(nb))
    monkeypatch.setattr(server, "MAX_BODY", 1000)
    message = await bad_request(rigor, {"path": "big.ipynb"}, 413)
    assert "MiB" in message


# -- the ledger ----------------------------------------------------------------------------------

P_VALUES = {"kind": "test", "cell_id": "c1", "p_values": 4, "corrected": False}
NOISY_PATCH = {"kind": "patch", "cell_id": "c2", "corruption": "Gaussian noise on embeddings"}


def ledger_notebook() -> dict[str, Any]:
    return notebook(markdown(CLAIM, "m1"), code("x = 1", "c2"), code("y = 2", "c1"))


@pytest.mark.parametrize(
    ("entry", "rule"), [(P_VALUES, "STA001"), (NOISY_PATCH, "CAU003")], ids=["STA001", "CAU003"]
)
async def test_the_ledger_adds_what_the_kernel_ran(rigor, entry, rule):
    nb = ledger_notebook()
    status, reply = await rigor({"notebook": nb})
    assert status == 200, reply
    assert rule not in {f["rule"] for f in reply["findings"]}
    assert reply["findings"] == expected(nb)

    for ledger in ([entry], {"schema": 1, "entries": [entry]}, {"entries": [entry]}):
        status, reply = await rigor({"notebook": nb, "ledger": ledger})
        assert status == 200, reply
        found = {f["rule"]: f for f in reply["findings"]}
        assert found[rule]["source"] == "ledger"
        assert found[rule]["cell_id"] == entry["cell_id"]
        assert reply["findings"] == expected(nb, ledger=[entry])
    if rule == "STA001":
        assert "this kernel produced 4 p-values" in found[rule]["message"]


WRONG_TYPES = {
    "p_values-str": (P_VALUES, "p_values", "many"),
    "p_values-bool": (P_VALUES, "p_values", True),
    "p_values-float": (P_VALUES, "p_values", 4.0),
    "p_values-negative": (P_VALUES, "p_values", -4),
    "p_values-huge": (P_VALUES, "p_values", 10**9),
    "p_values-list": (P_VALUES, "p_values", [1, 2, 3, 4]),
    "cell_id-number": (P_VALUES, "cell_id", 1),
    "corruption-list": (NOISY_PATCH, "corruption", ["Gaussian noise"]),
    "corruption-object": (NOISY_PATCH, "corruption", {"noise": True}),
    "kind-number": (NOISY_PATCH, "kind", 7),
    "cell_id-object": (NOISY_PATCH, "cell_id", {"id": "c2"}),
}


@pytest.mark.parametrize(("entry", "field", "value"), WRONG_TYPES.values(), ids=WRONG_TYPES.keys())
async def test_wrongly_typed_ledger_fields_are_dropped(rigor, entry, field, value):
    """A field of the wrong type is dropped: the checker sees the entry without it."""
    nb = ledger_notebook()
    sent = [{**entry, field: value}, {"note": {"nested": 1}, "float": float("inf")}]
    body = json.dumps({"notebook": nb, "ledger": sent}, allow_nan=True).encode()
    status, reply = await rigor(body)
    assert status == 200, reply
    assert not {"STA001", "CAU003"} & {f["rule"] for f in reply["findings"]}
    assert not any(f["source"] == "ledger" for f in reply["findings"])
    without = {k: v for k, v in entry.items() if k != field}
    assert reply["findings"] == expected(nb, ledger=[without])


@pytest.mark.parametrize(
    ("ledger", "says"),
    [
        ({"schema": 2, "entries": [P_VALUES]}, "ledger schema 2 is not supported"),
        ({"schema": "1", "entries": []}, "ledger schema '1' is not supported"),
        ({"schema": 1}, "'ledger' must have an 'entries' list"),
        ({"schema": 1, "entries": {"a": P_VALUES}}, "'ledger' must have an 'entries' list"),
        ("entries", "got a string"),
        (7, "got a int"),
        ([P_VALUES, "x"], "ledger entry 2 must be an object, not a string"),
    ],
    ids=["schema-2", "schema-str", "no-entries", "entries-dict", "string", "number", "entry"],
)
async def test_malformed_ledgers_are_400(rigor, ledger, says):
    message = await bad_request(rigor, {"notebook": ledger_notebook(), "ledger": ledger})
    assert says in message


async def test_too_many_ledger_entries_are_400(rigor, monkeypatch):
    monkeypatch.setattr(rigor_request, "MAX_LEDGER_ENTRIES", 3)
    body = {"notebook": ledger_notebook(), "ledger": [P_VALUES] * 4}
    message = await bad_request(rigor, body)
    assert message == "the ledger has 4 entries; at most 3 are accepted"
    status, _ = await rigor({**body, "ledger": [P_VALUES] * 3})
    assert status == 200


# -- malformed requests --------------------------------------------------------------------------


def cells(*cells: Any) -> dict[str, Any]:
    return {"notebook": {"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": list(cells)}}


MALFORMED = {
    "not-json": (b"{not json", "the request body is not valid JSON"),
    "not-utf8": (b'{"path": "\xff.ipynb"}', "the request body is not valid JSON"),
    "empty": (b"", "the request body is not valid JSON"),
    "too-deep": (b"[" * 100_000, "the request body is not valid JSON (RecursionError)"),
    "list": ([{"notebook": {}}], "the request body must be a JSON object"),
    "string": ("notebook", "the request body must be a JSON object"),
    "neither": ({"ledger": []}, "give 'notebook' (the notebook model) or 'path'"),
    "nulls": ({"notebook": None, "path": None}, "give 'notebook' (the notebook model) or 'path'"),
    "path-number": ({"path": 3}, "'path' must be a non-empty string"),
    "path-empty": ({"path": ""}, "'path' must be a non-empty string"),
    "path-nul": ({"path": "a\0.ipynb"}, "'path' must be a non-empty string"),
    "notebook-list": ({"notebook": []}, "'notebook' must be a notebook object, not a list"),
    "notebook-str": ({"notebook": "{}"}, "'notebook' must be a notebook object, not a string"),
    "no-cells": ({"notebook": {"nbformat": 4, "metadata": {}}}, "not a notebook (no cells)"),
    "cells-dict": ({"notebook": {"cells": {}}}, "not a notebook (no cells)"),
    "nbformat-5": (
        {"notebook": {"nbformat": 5, "cells": []}},
        "the notebook is nbformat 5; Jupyter and this checker read versions 1 to 4",
    ),
    "nbformat-str": (
        {"notebook": {"nbformat": "4", "cells": []}},
        'states "nbformat": "4", which is not a version number',
    ),
    "nbformat-bool": ({"notebook": {"nbformat": True, "cells": []}}, "'nbformat' is true"),
    "cell-type": (cells({"cell_type": "foo", "source": ""}), "cell 1 has cell_type 'foo'"),
    "cell-type-2": (
        cells(code("x", "a"), {"cell_type": None, "source": ""}),
        "cell 2 has cell_type None; expected code, markdown or raw",
    ),
    "source-number": (
        cells(code(42, "a")),
        "cell 1 has a source that is not text (a string or a list of strings)",
    ),
    "source-mixed-list": (
        cells(code(["x = 1\n", 2], "a")),
        "cell 1 has a source that is not text",
    ),
    "cell-not-object": (cells("x = 1"), "cell 1 must be an object, not a string"),
    "id-number": (cells(code("x", 5)), "cell 1 has a malformed 'id' (a int)"),
    "metadata-list": (cells(code("x", "a", metadata=[])), "cell 1 has a malformed 'metadata'"),
    "outputs-dict": (cells(code("x", "a", outputs={})), "cell 1 has a malformed 'outputs'"),
    "count-str": (
        cells(code("x", "a", execution_count="3")),
        "cell 1 has an execution_count that is not an integer",
    ),
    "count-bool": (
        cells(code("x", "a", execution_count=True)),
        "cell 1 has an execution_count that is not an integer",
    ),
    "v3-no-worksheets": (
        {"notebook": {"nbformat": 3, "cells": []}},
        "this nbformat 3 notebook has no 'worksheets' list of cell lists",
    ),
    "v3-bad-worksheet": (
        {"notebook": {"nbformat": 3, "worksheets": [{"cells": "x"}]}},
        "this nbformat 3 notebook has no 'worksheets' list of cell lists",
    ),
}


@pytest.mark.parametrize(("body", "says"), MALFORMED.values(), ids=MALFORMED.keys())
async def test_malformed_requests_are_400_with_a_message(rigor, body, says):
    message = await bad_request(rigor, body)
    assert says in message, message


MALFORMED_METADATA = {
    "tags-null": cells(code("x = 1", "a", metadata={"tags": None})),
    "tags-number": cells(code("x = 1", "a", metadata={"tags": 3})),
    "cell-ignore-number": cells(code("x = 1", "a", metadata={"interp_magics": {"ignore": 3}})),
    "notebook-ignore-number": {
        "notebook": {
            **notebook(code("x = 1", "a")),
            "metadata": {"interp_magics": {"rigor": {"ignore": 3}}},
        }
    },
    "output-text-numbers": cells(
        code("x = 1", "a", outputs=[{"output_type": "stream", "name": "stdout", "text": [1]}])
    ),
    "output-data-numbers": cells(
        code(
            "x = 1",
            "a",
            outputs=[
                {"output_type": "execute_result", "data": {"text/plain": [1]}, "metadata": {}}
            ],
        )
    ),
}


@pytest.mark.parametrize("body", MALFORMED_METADATA.values(), ids=MALFORMED_METADATA.keys())
async def test_malformed_metadata_and_outputs_are_not_a_server_error(rigor, body):
    status, reply = await rigor(body)
    assert status == 200, reply


async def test_too_many_cells_are_400(rigor, monkeypatch):
    monkeypatch.setattr(rigor_request, "MAX_CELLS", 2)
    nb = notebook(*(code("x = 1", f"c{i}") for i in range(3)))
    message = await bad_request(rigor, {"notebook": nb})
    assert message == "the notebook has 3 cells; the checker reads at most 2"


async def test_bodies_over_max_body_are_413(rigor, monkeypatch):
    monkeypatch.setattr(server, "MAX_BODY", 1000)
    small = {"notebook": notebook(markdown(CLAIM, "m1"))}
    assert len(json.dumps(small)) < 1000
    status, reply = await rigor(small)
    assert status == 200 and [f["rule"] for f in reply["findings"]] == ["CAU001"]

    big = {"notebook": notebook(code("x = 1\n" * 1000, "c1"))}
    message = await bad_request(rigor, big, 413)
    assert "MiB" in message and "at most" in message


async def test_a_chunked_body_is_collected(jp_fetch):
    """A body sent without Content-Length (chunked) is read through data_received too."""
    body = json.dumps({"notebook": notebook(markdown(CLAIM, "m1"))}).encode()

    async def producer(write):
        for i in range(0, len(body), 50):
            await write(body[i : i + 50])

    response = await jp_fetch(
        "interp-magics", "rigor", method="POST", body_producer=producer, raise_error=False
    )
    assert response.code == 200, response.body
    assert [f["rule"] for f in json.loads(response.body)["findings"]] == ["CAU001"]


# -- authentication and authorization ------------------------------------------------------------


@pytest.fixture
def url(jp_fetch, jp_http_port, jp_base_url):
    """The absolute URL of an endpoint (jp_fetch starts the HTTP server)."""
    return lambda name: f"http://127.0.0.1:{jp_http_port}{jp_base_url}interp-magics/{name}"


async def raw_fetch(url: str, **kwargs: Any):
    client = AsyncHTTPClient(force_instance=True)
    try:
        return await client.fetch(HTTPRequest(url, **kwargs), raise_error=False)
    finally:
        client.close()


async def test_requests_without_the_token_are_refused(url, jp_serverapp):
    body = json.dumps({"notebook": notebook(markdown(CLAIM, "m1"))})
    response = await raw_fetch(url("status"))
    assert response.code in (401, 403), response.code
    assert b"rules" not in (response.body or b"")

    response = await raw_fetch(url("rigor"), method="POST", body=body)
    assert response.code in (401, 403), response.code
    assert b"findings" not in (response.body or b"")

    # with a valid XSRF cookie and header, the lack of a token still refuses the request
    xsrf = {"Cookie": "_xsrf=abc", "X-XSRFToken": "abc"}
    response = await raw_fetch(url("rigor"), method="POST", body=body, headers=xsrf)
    assert response.code in (401, 403), response.code
    assert b"findings" not in (response.body or b"")

    wrong = {"Authorization": "token not-the-token"}
    for name, kwargs in [("status", {}), ("rigor", {"method": "POST", "body": body})]:
        response = await raw_fetch(url(name), headers=wrong, **kwargs)
        assert response.code in (401, 403), (name, response.code)


async def test_token_auth_needs_no_xsrf(url, jp_serverapp):
    token = jp_serverapp.identity_provider.token
    body = json.dumps({"notebook": notebook(markdown(CLAIM, "m1"))})
    headers = {"Authorization": f"token {token}"}  # no cookie, no X-XSRFToken
    response = await raw_fetch(url("rigor"), method="POST", body=body, headers=headers)
    assert response.code == 200, response.body
    assert [f["rule"] for f in json.loads(response.body)["findings"]] == ["CAU001"]
    response = await raw_fetch(url("status"), headers=headers)
    assert response.code == 200


ASKED: list[tuple[str, str]] = []


class _RecordingAuthorizer(Authorizer):
    """Denies everything, recording what each request asked for."""

    def is_authorized(self, handler, user, action, resource):
        ASKED.append((action, resource))
        return False


@pytest.mark.parametrize(
    "extra_config", [{"ServerApp": {"authorizer_class": _RecordingAuthorizer}}]
)
async def test_the_contents_read_permission_governs_both_endpoints(rigor, jp_fetch):
    ASKED.clear()
    response = await jp_fetch("interp-magics", "status", raise_error=False)
    assert response.code == 403
    assert ASKED == [("read", "contents")]
    status, reply = await rigor({"notebook": notebook(markdown(CLAIM, "m1"))})
    assert status == 403 and "findings" not in reply
    assert ASKED == [("read", "contents")] * 2


# -- nbformat 1 to 3 -------------------------------------------------------------------------------

V3 = {
    "nbformat": 3,
    "nbformat_minor": 0,
    "metadata": {"name": "old"},
    "worksheets": [
        {
            "cells": [
                {"cell_type": "heading", "level": 1, "source": "Old analysis", "metadata": {}},
                {"cell_type": "markdown", "source": CLAIM, "metadata": {}},
                {
                    "cell_type": "code",
                    "input": "x = 1",
                    "language": "python",
                    "collapsed": False,
                    "outputs": [],
                    "metadata": {},
                },
            ]
        }
    ],
}


async def test_nbformat_3_is_converted_and_checked(rigor):
    status, reply = await rigor({"notebook": V3})
    assert status == 200, reply
    want = expected(V3)
    assert [f["rule"] for f in want] == ["CAU001"]

    # nbformat gives converted cells fresh ids, so compare everything else
    def strip(findings):
        return [{k: v for k, v in f.items() if k != "cell_id"} for f in findings]

    assert strip(reply["findings"]) == strip(want)
    assert reply["findings"][0]["cell_index"] == 2  # the heading became markdown cell 1
    assert reply["summary"] == check(V3).summary()


@pytest.mark.parametrize(
    "old",
    [
        {**V3, "nbformat": 2},
        {k: v for k, v in V3.items() if k not in ("nbformat", "nbformat_minor")},
    ],
    ids=["nbformat-2", "worksheets-only"],
)
async def test_older_notebooks_jupyter_opens_are_converted_too(rigor, old):
    status, reply = await rigor({"notebook": old})
    assert status == 200, reply
    assert [(f["rule"], f["cell_index"]) for f in reply["findings"]] == [("CAU001", 2)]


async def test_nbformat_3_file_by_path(rigor, jp_root_dir):
    (jp_root_dir / "old.ipynb").write_text(json.dumps(V3))
    status, reply = await rigor({"path": "old.ipynb"})
    assert status == 200, reply
    assert [(f["rule"], f["cell_index"]) for f in reply["findings"]] == [("CAU001", 2)]


# -- worker processes: time limit, limits on parallel checks -------------------------------------

STALL = "RIGOR-TEST-STALL"  # RigorChecks.stall_marker: a cell with it keeps the worker spinning


def stalling(*cells: dict[str, Any]) -> dict[str, Any]:
    """A notebook whose check never ends by itself (under the stall_marker setting)."""
    return notebook(markdown(f"{CLAIM} {STALL}", "m1"), *cells)


@pytest.fixture
def pool(jp_serverapp):
    return jp_serverapp.web_app.settings[server.POOL]


async def until(condition, what: str, timeout: float = 60.0) -> None:
    """Wait until ``condition()`` holds (polling), or fail saying ``what`` never happened."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        assert loop.time() < deadline, f"{what} did not happen within {timeout} s"
        await asyncio.sleep(0.05)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def test_checks_run_in_a_warm_worker_process(rigor, pool):
    nb = fixture_nb("STA001")
    assert pool.pids() == []  # started on first use
    status, reply = await rigor({"notebook": nb})
    assert status == 200 and reply["status"] == "checked"
    assert reply["findings"] == expected(nb)
    (pid,) = pool.pids()
    assert pid != os.getpid() and alive(pid)
    status, reply = await rigor({"notebook": nb})
    assert status == 200 and reply["findings"] == expected(nb)
    assert pool.pids() == [pid]  # the same worker again


@pytest.mark.parametrize("extra_config", [{"RigorChecks": {"timeout": 3.0, "stall_marker": STALL}}])
async def test_a_check_past_the_time_limit_is_killed_and_its_worker_replaced(rigor, pool, jp_fetch):
    status, reply = await rigor({"notebook": notebook(markdown(CLAIM, "m1"))})
    assert status == 200 and [f["rule"] for f in reply["findings"]] == ["CAU001"]
    (first,) = pool.pids()

    slow = asyncio.ensure_future(rigor({"notebook": stalling(), "path": "slow.ipynb"}))
    await until(lambda: pool.running == 1, "the stalled check starting")
    # the server answers other requests while a check spins holding its worker's GIL
    contents = await jp_fetch("api", "contents", raise_error=False)
    assert contents.code == 200 and not slow.done()

    status, reply = await slow
    assert status == 504, reply
    assert reply["status"] == "timed-out" and reply["timeout"] == 3.0
    assert reply["message"].startswith("check timed out: checking slow.ipynb took longer")
    assert reply["notebook"] == "slow.ipynb" and "findings" not in reply
    await until(lambda: not alive(first), "the killed worker exiting")
    await until(lambda: len(pool.pids()) == 1, "a replacement worker starting")
    (second,) = pool.pids()
    assert second != first and alive(second)

    nb = fixture_nb("STA001")
    status, reply = await rigor({"notebook": nb})
    assert status == 200 and reply["findings"] == expected(nb)
    assert pool.pids() == [second] and pool.running == 0


@pytest.mark.parametrize(
    "extra_config", [{"RigorChecks": {"max_checks": 1, "stall_marker": STALL}}]
)
async def test_a_check_beyond_the_global_limit_is_503(rigor, pool, jp_fetch):
    slow = asyncio.ensure_future(rigor({"notebook": stalling(), "path": "a.ipynb"}))
    await until(lambda: pool.running == 1, "the stalled check starting")
    for body in ({"notebook": notebook(markdown(CLAIM, "m1"))}, {"path": "b.ipynb"}):
        response = await jp_fetch(
            "interp-magics", "rigor", method="POST", body=json.dumps(body), raise_error=False
        )
        assert response.code == 503, response.body
        assert response.headers["Retry-After"] == "1"
        reply = json.loads(response.body)
        assert reply["status"] == "busy" and reply["retry_after"] == 1
        assert reply["message"] == (
            "the server is already running 1 rigor check, as many as it allows at once; "
            "try again in a moment"
        )
    assert not slow.done() and pool.running == 1
    # a newer check of the same notebook is not refused: it replaces the stalled one
    status, reply = await rigor({"notebook": notebook(markdown(CLAIM, "m1")), "path": "a.ipynb"})
    assert status == 200 and [f["rule"] for f in reply["findings"]] == ["CAU001"]
    status, reply = await slow
    assert status == 409 and reply["status"] == "superseded"


@pytest.mark.parametrize(
    "extra_config", [{"RigorChecks": {"max_checks": 3, "stall_marker": STALL}}]
)
async def test_one_check_per_notebook_a_newer_one_supersedes(rigor, pool):
    old = asyncio.ensure_future(rigor({"notebook": stalling(), "path": "work/n.ipynb"}))
    await until(lambda: pool.running == 1, "the stalled check starting")
    (stalled,) = [w.proc.pid for w in pool._workers if w.busy]

    # another notebook is checked beside it
    nb = fixture_nb("STA001")
    status, reply = await rigor({"notebook": nb, "path": "work/other.ipynb"})
    assert status == 200 and reply["findings"] == expected(nb, name="other.ipynb")
    assert not old.done() and pool.running == 1

    # the same notebook (the same path, however written) replaces the running check
    status, reply = await rigor({"notebook": nb, "path": "/work/./x/../n.ipynb"})
    assert status == 200 and reply["findings"] == expected(nb, name="n.ipynb")
    status, reply = await old
    assert status == 409, reply
    assert reply == {
        "status": "superseded",
        "message": "a newer check of this notebook replaced this one",
        "reason": "superseded",
    }
    await until(lambda: not alive(stalled), "the superseded check's worker exiting")
    assert pool.running == 0 and stalled not in pool.pids()


async def test_a_worker_that_died_between_checks_is_replaced(rigor, pool):
    nb = fixture_nb("STA001")
    status, _ = await rigor({"notebook": nb})
    assert status == 200
    (dead,) = pool.pids()
    os.kill(dead, signal.SIGKILL)
    await until(lambda: pool._workers[0].proc.poll() is not None, "the worker dying")
    status, reply = await rigor({"notebook": nb})
    assert status == 200 and reply["findings"] == expected(nb)
    (pid,) = pool.pids()
    assert pid != dead and alive(pid)


async def test_the_workers_stop_with_the_server(rigor, pool, jp_serverapp):
    status, _ = await rigor({"notebook": notebook(markdown(CLAIM, "m1"))})
    assert status == 200
    pids = pool.pids()
    assert len(pids) == 1 and alive(pids[0])
    await jp_serverapp.cleanup_extensions()  # what the server's shutdown runs
    assert pool.pids() == [] and not any(alive(pid) for pid in pids)


def test_idle_workers_beyond_one_are_stopped():
    nb = fixture_nb("STA001")
    task = {"notebook": server.checked_notebook(nb, []), "ledger": None, "name": "n", "notes": []}

    async def run() -> None:
        pool = CheckPool(2, 30.0, idle_seconds=0.3)
        try:
            answers = await asyncio.gather(pool.check(None, task), pool.check(None, task))
            assert [a["reply"]["findings"] for a in answers] == [expected(nb, name="n")] * 2
            pids = pool.pids()
            assert len(pids) == 2  # two checks at once: two workers
            await until(lambda: len(pool.pids()) == 1, "an idle worker stopping")
            (kept,) = pool.pids()
            assert kept in pids
            await until(lambda: sum(alive(pid) for pid in pids) == 1, "its process exiting")
        finally:
            await pool.close()

    asyncio.run(run())


def test_the_worker_imports_only_the_checker():
    code = (
        "import sys; from interp_magics.jupyter import rigor_worker; import interp_magics.rigor; "
        "print(sorted({'torch', 'numpy', 'tornado', 'jupyter_server'} "
        "& set(sys.modules)))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.strip() == "[]", result.stderr


# -- the body is read only after authorization ---------------------------------------------------

BIG = 20 * 2**20  # the real MAX_BODY: a body the size limit alone would let through


@pytest.fixture
def received(monkeypatch):
    """The bytes that reached RigorHandler.data_received, per request."""
    seen: list[int] = []
    collect = server.RigorHandler.data_received

    def data_received(self, chunk):
        seen.append(len(chunk))
        return collect(self, chunk)

    monkeypatch.setattr(server.RigorHandler, "data_received", data_received)
    return seen


async def test_an_unauthenticated_big_body_is_never_read(url, jp_serverapp, received):
    assert server.MAX_BODY == BIG
    small = json.dumps({"notebook": notebook(markdown(CLAIM, "m1"))}).encode()
    token = {"Authorization": f"token {jp_serverapp.identity_provider.token}"}
    response = await raw_fetch(url("rigor"), method="POST", body=small, headers=token)
    assert response.code == 200 and sum(received) == len(small)  # the count works

    received.clear()
    for headers in ({}, {"Authorization": "token not-the-token"}):
        response = await raw_fetch(url("rigor"), method="POST", body=b" " * BIG, headers=headers)
        assert response.code in (401, 403), response.code
        assert received == []


@pytest.mark.parametrize(
    "extra_config", [{"ServerApp": {"authorizer_class": _RecordingAuthorizer}}]
)
async def test_an_unauthorized_big_body_is_never_read(jp_fetch, received):
    ASKED.clear()
    response = await jp_fetch(
        "interp-magics", "rigor", method="POST", body=b" " * BIG, raise_error=False
    )
    assert response.code == 403
    assert json.loads(response.body)["message"] == (
        "User is not authorized to read on resource: contents."
    )
    assert ASKED == [("read", "contents")]
    assert received == []


async def test_a_chunked_body_past_the_limit_is_413(jp_fetch, monkeypatch, received):
    """Without a Content-Length the limit applies as the body streams in."""
    monkeypatch.setattr(server, "MAX_BODY", 1000)
    stored: list[list[bytes]] = []
    original = server.RigorHandler.post

    async def post(self):
        stored.append(list(self._chunks))
        return await original(self)

    monkeypatch.setattr(server.RigorHandler, "post", post)

    async def producer(write):
        for _ in range(30):
            await write(b" " * 50)

    response = await jp_fetch(
        "interp-magics", "rigor", method="POST", body_producer=producer, raise_error=False
    )
    assert response.code == 413, response.body
    assert json.loads(response.body)["message"].startswith("the request is 0.0 MiB")
    assert 1000 < sum(received) <= 1500  # refused as it streamed in, past the limit, ...
    assert stored in ([], [[]])  # ... and nothing kept (post() runs if the body completes)


# -- reading by path: sizes and error messages ---------------------------------------------------


async def test_the_size_limit_reads_the_symlink_target(rigor, jp_root_dir, tmp_path, monkeypatch):
    monkeypatch.setattr(server, "MAX_BODY", 1000)
    big = tmp_path / "big.ipynb"
    big.write_text(json.dumps(notebook(code("x = 1\n" * 500, "c1"))))
    small = jp_root_dir / "small.ipynb"
    small.write_text(json.dumps(notebook(markdown(CLAIM, "m1"))))
    (jp_root_dir / "link.ipynb").symlink_to(big)
    (jp_root_dir / "small-link.ipynb").symlink_to(small)
    assert (jp_root_dir / "link.ipynb").lstat().st_size < 1000 < big.stat().st_size

    message = await bad_request(rigor, {"path": "link.ipynb"}, 413)
    assert message.startswith("the notebook is 0.0 MiB; the rigor endpoint reads at most")
    status, reply = await rigor({"path": "small-link.ipynb"})  # symlinks themselves still work
    assert status == 200 and [f["rule"] for f in reply["findings"]] == ["CAU001"]


class _GrowingContentsManager(AsyncLargeFileManager):
    """Appends to a notebook's file just before reading it (a file that grows meanwhile)."""

    async def get(self, path, content=True, type=None, format=None, **kwargs):
        if content and path.endswith("grows.ipynb"):
            nb = notebook(code("x = 1\n" * 500, "c1"))
            (Path(self.root_dir) / path).write_text(json.dumps(nb))
        return await super().get(path, content=content, type=type, format=format, **kwargs)


@pytest.mark.parametrize(
    "extra_config",
    [{"ServerApp": {"contents_manager_class": _GrowingContentsManager}}],
)
async def test_the_size_is_checked_again_after_reading(rigor, jp_root_dir, monkeypatch):
    monkeypatch.setattr(server, "MAX_BODY", 1000)
    (jp_root_dir / "grows.ipynb").write_text(json.dumps(notebook(markdown(CLAIM, "m1"))))
    assert (jp_root_dir / "grows.ipynb").stat().st_size < 1000
    message = await bad_request(rigor, {"path": "grows.ipynb"}, 413)
    assert "the rigor endpoint reads at most" in message


ABSOLUTE = re.compile(r"(?:^|[\s'\"(=:,])(?:/|~/|[A-Za-z]:\\)\w")


async def test_errors_name_no_server_path(rigor, jp_root_dir, tmp_path, monkeypatch):
    monkeypatch.setattr(server, "MAX_BODY", 5000)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "big.ipynb").write_text(json.dumps(notebook(code("x = 1\n" * 2000, "c1"))))
    root = jp_root_dir
    (root / "notes.ipynb").write_text("hello")
    (root / "latin1.ipynb").write_bytes(b'{"cells": "\xe9"}')
    (root / "list.ipynb").write_text("[]")
    (root / "folder.ipynb").mkdir()
    os.mkfifo(root / "fifo.ipynb")
    (root / "dangling.ipynb").symlink_to(outside / "gone.ipynb")
    (root / "to-dir.ipynb").symlink_to(outside)
    (root / "big.ipynb").symlink_to(outside / "big.ipynb")
    cases = {
        "missing.ipynb": 404,
        "dangling.ipynb": 404,
        "../outside/big.ipynb": 404,
        str(outside / "big.ipynb"): 404,
        "notes.ipynb": 400,
        "latin1.ipynb": 400,
        "list.ipynb": 400,
        "folder.ipynb": 400,
        "fifo.ipynb": 400,
        "to-dir.ipynb": 400,
        "big.ipynb": 413,
    }
    for path, code_ in cases.items():
        status, reply = await rigor({"path": path})
        assert status == code_, (path, status, reply)
        message = reply["message"]
        assert str(tmp_path) not in message and str(Path.home()) not in message, (path, message)
        assert not ABSOLUTE.search(message), (path, message)
        if code_ == 400:
            assert path in message, (path, message)


# -- rule pages ----------------------------------------------------------------------------------


def render_page():
    try:
        from interp_magics.rigor.pages import render_page
    except ImportError as exc:
        pytest.fail(f"interp_magics/rigor/pages.py with render_page() is missing: {exc}")
    return render_page


async def test_rule_pages_are_served_as_html(jp_fetch):
    render = render_page()
    for rule in RULES:
        response = await jp_fetch("interp-magics", "rules", rule)
        assert response.code == 200
        assert response.headers["Content-Type"] == "text/html; charset=UTF-8"
        assert response.body.decode() == render(rule, "html")
        policy = response.headers["Content-Security-Policy"]
        assert "default-src 'none'" in policy and "script-src" not in policy
    for fmt, kind in (("markdown", "text/markdown"), ("text", "text/plain")):
        response = await jp_fetch("interp-magics", "rules", "PRB001", params={"format": fmt})
        assert response.headers["Content-Type"] == f"{kind}; charset=UTF-8"
        assert response.body.decode() == render("PRB001", fmt)


async def test_unknown_rule_pages_are_404(jp_fetch):
    render_page()
    response = await jp_fetch("interp-magics", "rules", "XYZ999", raise_error=False)
    assert response.code == 404
    assert json.loads(response.body)["message"] == (
        "no rule XYZ999: GET /interp-magics/status lists the rules"
    )
    response = await jp_fetch("interp-magics", "rules", "a.b", raise_error=False)
    assert response.code == 404  # not a rule id: no handler
    response = await jp_fetch(
        "interp-magics", "rules", "PRB001", params={"format": "pdf"}, raise_error=False
    )
    assert response.code == 400
    assert json.loads(response.body)["message"] == "format must be html, markdown or text"
    # ids are matched without regard to case, as on the command line
    response = await jp_fetch("interp-magics", "rules", "prb001")
    assert response.body.decode() == render_page()("PRB001", "html")


async def test_rule_pages_need_the_token(url):
    response = await raw_fetch(url("rules/PRB001"))
    assert response.code in (401, 403)


# -- packaging -----------------------------------------------------------------------------------


def test_importing_the_server_module_does_not_import_torch():
    code = "import interp_magics.jupyter.server, sys; print('torch' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.strip() == "False", result.stderr


def test_server_extension_points():
    assert interp_magics._jupyter_server_extension_points() == [
        {"module": "interp_magics.jupyter.server"}
    ]
