"""The kernel side of the sidebar panels (jupyter/bridge/) through real components.

A real IPython shell with the extension loaded, real GPT-2 models and captures, and the real
``comm`` package: its ``CommManager`` receives the front end's ``comm_open`` / ``comm_msg`` /
``comm_close`` messages, and comms are a ``BaseComm`` subclass whose ``publish_msg`` (the
package's transport extension point, which ipykernel fills with iopub sends) records what would
go to the front end, as JSON.
"""

from __future__ import annotations

import gc
import io
import json
import re
import uuid
import weakref
from contextlib import redirect_stderr, redirect_stdout
from datetime import datetime, timezone
from typing import Any

import comm
import pytest
import torch
from comm.base_comm import BaseComm, CommManager
from IPython.core.error import UsageError

import interp_magics
from interp_magics.core import units
from interp_magics.core.cache import ActivationCache, EntryInfo
from interp_magics.core.units import format_bytes
from interp_magics.jupyter.bridge import (
    CacheListing,
    KernelBridge,
    displays,
    freeing,
    snapshot_display,
    snapshots,
)
from interp_magics.jupyter.bridge.protocol import (
    MAX_COMMS,
    MAX_ENTRIES,
    MAX_LEDGER,
    MAX_TEXT,
    TARGET,
)
from interp_magics.jupyter.state import get_bridge, get_ledger

HELLO = {"v": 1, "type": "hello"}
REFRESH = {"v": 1, "type": "refresh"}
MLP = "transformer.h.*.mlp"
CAPTURE = f'%%activations model -m "{MLP}" -o acts\nout = model(ids)\n'
SESSION = uuid.uuid4().hex


class RecordingComm(BaseComm):
    """A kernel-side comm whose transport records the messages instead of sending them."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.published: list[tuple[str, Any]] = []
        super().__init__(*args, **kwargs)

    def publish_msg(
        self,
        msg_type: str,
        data: dict[str, Any] | None = None,
        metadata: dict[str, Any] | None = None,
        buffers: list[bytes] | None = None,
        **keys: Any,
    ) -> None:
        # What goes on the wire is JSON, and NaN is not JSON: serialise strictly, as a
        # front end would parse it.
        wire = json.loads(json.dumps({} if data is None else data, allow_nan=False))
        self.published.append((msg_type, wire))

    @property
    def received(self) -> list[dict[str, Any]]:
        """The comm_msg payloads the front end would receive, oldest first."""
        return [data for kind, data in self.published if kind == "comm_msg"]


def jupyter_msg(msg_type: str, content: dict[str, Any]) -> dict[str, Any]:
    """A Jupyter protocol message as the kernel's shell channel delivers it."""
    msg_id = uuid.uuid4().hex
    header = {
        "msg_id": msg_id,
        "msg_type": msg_type,
        "username": "test",
        "session": SESSION,
        "date": datetime.now(timezone.utc).isoformat(),
        "version": "5.3",
    }
    return {
        "header": header,
        "msg_id": msg_id,
        "msg_type": msg_type,
        "parent_header": {},
        "metadata": {},
        "content": content,
        "buffers": [],
    }


class Kernel:
    """The shell plus the comm manager; the front end's side of the comm protocol."""

    def __init__(self, shell: Any, manager: CommManager) -> None:
        self.shell = shell
        self.manager = manager

    @property
    def ns(self) -> dict[str, Any]:
        return self.shell.user_ns

    @property
    def bridge(self) -> KernelBridge:
        bridge = get_bridge(self.shell)
        assert bridge is not None
        return bridge

    def run(self, code: str, ok: bool = True) -> Any:
        out = io.StringIO()
        with redirect_stdout(out), redirect_stderr(out):
            result = self.shell.run_cell(code, store_history=True)
        assert result.success is ok, out.getvalue()
        return result

    def open(self, data: Any = HELLO) -> RecordingComm:
        comm_id = uuid.uuid4().hex
        content = {"comm_id": comm_id, "target_name": TARGET, "data": data}
        self.manager.comm_open(stream=None, ident=None, msg=jupyter_msg("comm_open", content))
        c = self.manager.comms[comm_id]
        assert isinstance(c, RecordingComm)
        return c

    def send(self, c: RecordingComm, data: Any) -> list[dict[str, Any]]:
        """Send ``data`` from the front end on ``c``; return the replies it produced."""
        before = len(c.received)
        content = {"comm_id": c.comm_id, "data": data}
        self.manager.comm_msg(stream=None, ident=None, msg=jupyter_msg("comm_msg", content))
        return c.received[before:]

    def close(self, c: RecordingComm) -> None:
        content = {"comm_id": c.comm_id, "data": {}}
        self.manager.comm_close(stream=None, ident=None, msg=jupyter_msg("comm_close", content))


@pytest.fixture
def kernel(shell):
    """The extension loaded against a fresh CommManager that creates RecordingComms.

    Replaces ``comm.create_comm`` and ``comm.get_comm_manager`` as ipykernel does at import,
    then reloads the extension so its bridge registers the target with this manager.
    """
    manager = CommManager()
    saved = comm.create_comm, comm.get_comm_manager
    comm.create_comm = RecordingComm
    comm.get_comm_manager = lambda: manager
    try:
        shell.run_line_magic("unload_ext", "interp_magics")
        shell.run_line_magic("load_ext", "interp_magics")
        assert manager.targets[TARGET] == get_bridge(shell)._open_comm
        yield Kernel(shell, manager)
        if "interp_magics" in shell.extension_manager.loaded:
            shell.run_line_magic("unload_ext", "interp_magics")
        assert TARGET not in manager.targets
    finally:
        comm.create_comm, comm.get_comm_manager = saved
        if "interp_magics" not in shell.extension_manager.loaded:
            shell.run_line_magic("load_ext", "interp_magics")  # as the shell fixture left it


@pytest.fixture
def nb(kernel, gpt2, ids):
    kernel.ns.update(model=gpt2, ids=ids)
    return kernel


def entries_of(cache: ActivationCache) -> list[dict[str, Any]]:
    return [
        {
            "key": key,
            "shape": list(t.shape),
            "dtype": str(t.dtype).removeprefix("torch."),
            "device": str(t.device),
            "bytes": t.element_size() * t.nelement(),
        }
        for key, t in cache.items()
    ]


def by_name(snapshot: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in snapshot["caches"]}


def cache_ref(ns: dict[str, Any], name: str) -> tuple[weakref.ref, int]:
    """A weak reference to the cache bound to ``name`` and its size (no strong reference)."""
    return weakref.ref(ns[name]), ns[name].nbytes


# -- 1. hello and the snapshot ---------------------------------------------------------------


def test_hello_answers_with_a_snapshot_of_caches_models_and_sizes(nb):
    nb.run(CAPTURE)
    nb.run('%%activations model -m "transformer.h.0.attn" -o other -q\nout = model(ids)\n')
    nb.run("same = acts")  # one cache under two names
    acts, other, model = nb.ns["acts"], nb.ns["other"], nb.ns["model"]

    c = nb.open()
    assert len(c.received) == 1  # the hello's answer, nothing else
    snap = c.received[0]
    assert snap["v"] == 1
    assert snap["type"] == "snapshot"
    assert snap["version"] == interp_magics.__version__
    assert isinstance(snap["seq"], int) and snap["seq"] >= 1
    assert snap["busy"] is False

    caches = by_name(snap)
    assert [c["name"] for c in snap["caches"]] == ["acts", "other", "same"]  # sorted
    assert caches["acts"] == {
        "name": "acts",
        "tensors": 3,
        "bytes": acts.nbytes,
        "dtypes": ["float32"],
        "devices": ["cpu"],
        "model": acts.model_name,
        "entries": entries_of(acts),
        "truncated": False,
        "rev": caches["acts"]["rev"],
    }
    assert isinstance(caches["acts"]["rev"], int)
    assert [e["key"] for e in caches["acts"]["entries"]] == [
        f"transformer.h.{i}.mlp" for i in range(3)
    ]
    assert caches["acts"]["entries"][0]["shape"] == [2, 9, 64]
    assert caches["same"] == {**caches["acts"], "name": "same"}
    assert caches["other"]["tensors"] == 1
    assert caches["other"]["bytes"] == other.nbytes
    assert caches["other"]["entries"] == entries_of(other)
    # the cache bound to two names counts once
    assert snap["total_bytes"] == acts.nbytes + other.nbytes
    assert snap["total_bytes"] < sum(c["bytes"] for c in snap["caches"])

    # GPT-2 ties lm_head to the token embedding: parameters() yields it once
    assert model.lm_head.weight is model.transformer.wte.weight
    count = sum(p.numel() for p in model.parameters())
    assert count < sum(p.numel() for _, p in model.named_parameters(remove_duplicate=False))
    assert snap["models"] == [
        {
            "name": "model",
            "class": "GPT2LMHeadModel",
            "parameters": count,
            "bytes": sum(p.numel() * p.element_size() for p in model.parameters()),
            "dtype": "float32",
            "device": "cpu",
        }
    ]
    # summaries only: no tensor data or reprs
    assert "tensor(" not in json.dumps(snap)


def test_snapshot_skips_private_and_ipython_names_and_shortens_long_names(nb):
    nb.run(CAPTURE)
    long = "a" * (MAX_TEXT + 50)
    nb.ns["_hidden"] = nb.ns["acts"]
    nb.ns[long] = nb.ns["acts"]
    snap = nb.bridge.snapshot()
    names = [c["name"] for c in snap["caches"]]
    assert "_hidden" not in names
    assert names == ["a" * (MAX_TEXT - 1) + "…", "acts"]
    assert snap["total_bytes"] == nb.ns["acts"].nbytes


def test_snapshot_of_a_float16_cache_and_an_empty_namespace(nb):
    snap = nb.bridge.snapshot()
    assert snap["caches"] == [] and snap["total_bytes"] == 0
    assert [m["name"] for m in snap["models"]] == ["model"]
    nb.run(f'%%activations model -m "{MLP}" --dtype float16 -o half -q\nout = model(ids)\n')
    half = by_name(nb.bridge.snapshot())["half"]
    assert half["dtypes"] == ["float16"]
    assert half["bytes"] == nb.ns["half"].nbytes == 3 * 2 * 9 * 64 * 2
    assert all(e["dtype"] == "float16" and e["bytes"] == 2 * 9 * 64 * 2 for e in half["entries"])


def test_format_bytes_spells_sizes_in_binary_units_like_the_core():
    for module in (displays, freeing):  # one spelling for the package
        assert module.format_bytes is units.format_bytes
    expected = {
        0: "0 B",
        1023: "1023 B",
        1024: "1.0 KiB",
        1536: "1.5 KiB",
        18 * 2**20: "18.0 MiB",
        5 * 2**30 + 1: "5.0 GiB",
        3 * 2**40: "3072.0 GiB",
    }
    assert {n: format_bytes(n) for n in expected} == expected


# -- 2. pushes after cells ---------------------------------------------------------------------


def test_each_outermost_cell_that_changes_something_pushes_one_snapshot(nb):
    c = nb.open()
    nb.run("x = 1")  # the first cell after a hello always pushes
    assert len(c.received) == 2
    nb.run("y = 2")  # no cache, model or ledger entry changed: nothing to send
    nb.run("1 / 0", ok=False)
    assert len(c.received) == 2
    nb.run(CAPTURE)  # a cell magic runs its body as a nested cell: still one push
    assert len(c.received) == 3
    nb.run("import torch\nlinear = torch.nn.Linear(2, 2)")  # a new model
    assert len(c.received) == 4
    seqs = [m["seq"] for m in c.received]
    assert seqs == sorted(seqs) and len(set(seqs)) == 4
    assert all(m["type"] == "snapshot" for m in c.received)
    assert [x["name"] for x in c.received[1]["caches"]] == []
    assert [x["name"] for x in c.received[2]["caches"]] == ["acts"]
    assert c.received[2]["busy"] is False  # pushed once the cell has ended
    assert "linear" in [m["name"] for m in c.received[3]["models"]]
    assert nb.bridge._depth == 0


def test_a_push_carries_only_the_entries_the_previous_push_did_not(nb):
    c = nb.open()
    nb.run(CAPTURE)  # first push after the hello: every entry
    first = by_name(c.received[-1])["acts"]
    assert first["entries"] == entries_of(nb.ns["acts"])
    nb.run("same = acts\nimport torch\nlinear = torch.nn.Linear(2, 2)")
    pushed = by_name(c.received[-1])
    # unchanged summaries (same rev) come without their entries; the panel copies them
    assert pushed["acts"]["rev"] == pushed["same"]["rev"] == first["rev"]
    assert pushed["acts"]["entries"] is None and pushed["same"]["entries"] is None
    nb.run(CAPTURE.replace("-o acts", "-o acts2"))
    pushed = by_name(c.received[-1])
    assert pushed["acts2"]["entries"] == entries_of(nb.ns["acts2"])
    assert pushed["acts"]["entries"] is None
    # a refresh answers with every entry, and the push after it starts afresh
    reply = nb.send(c, {"v": 1, "type": "refresh"})[-1]
    assert by_name(reply)["acts"]["entries"] == entries_of(nb.ns["acts"])
    nb.run("del same")
    assert by_name(c.received[-1])["acts"]["entries"] == entries_of(nb.ns["acts"])


def test_a_refresh_during_a_cell_is_followed_by_a_push(nb):
    c = nb.open()
    nb.run("x = 1")
    # The panel asks while a cell runs: its answer says busy, so the push after the cell
    # must go out even though nothing else changed.
    nb.ns["COMM"] = c
    nb.run(
        "__import__('interp_magics.jupyter.state', fromlist=['_']).get_bridge(get_ipython())"
        "._handle(COMM, {'content': {'data': {'v': 1, 'type': 'refresh'}}})"
    )
    assert [m["busy"] for m in c.received[-2:]] == [True, False]


def test_every_open_comm_gets_the_same_push_and_closed_ones_get_nothing(nb):
    nb.run("x = 1")  # no comm open: nothing to send, nothing fails
    assert nb.bridge.push() == 0
    a, b = nb.open(), nb.open()
    nb.run("y = 2")
    assert a.received[-1] == b.received[-1]
    assert a.received[-1]["seq"] > b.received[0]["seq"] > a.received[0]["seq"]

    nb.close(a)  # the front end closes its comm (tab closed)
    assert nb.bridge.comms == [b]
    sent = len(a.published)
    nb.run(CAPTURE)
    assert len(a.published) == sent
    assert len(b.received) == 3

    nb.close(b)
    assert nb.bridge.comms == []
    assert nb.bridge.push() == 0
    nb.run("del acts")
    assert len(b.published) == 3


def test_a_comm_beyond_the_limit_closes_the_oldest(nb):
    comms = [nb.open() for _ in range(MAX_COMMS + 1)]
    oldest = comms[0]
    assert oldest._closed and oldest.published[-1][0] == "comm_close"
    assert oldest.comm_id not in nb.manager.comms
    assert nb.bridge.comms == comms[1:]
    nb.run("x = 1")
    assert len(oldest.received) == 1
    assert all(len(c.received) == 2 for c in comms[1:])


def test_snapshot_taken_inside_a_cell_says_busy(nb):
    nb.run("inside = __import__('interp_magics.jupyter.state', fromlist=['_'])")
    nb.run("snap = inside.get_bridge(get_ipython()).snapshot()")
    assert nb.ns["snap"]["busy"] is True
    assert nb.bridge.snapshot()["busy"] is False
    with interp_magics.capture(nb.ns["model"], [MLP]):  # a capture outside any cell
        nb.ns["model"](nb.ns["ids"])
        assert nb.bridge.busy
        assert nb.bridge.snapshot()["busy"] is True
    assert not nb.bridge.busy


# -- 3. ledger tail ----------------------------------------------------------------------------


def test_snapshot_carries_the_ledger_tail_with_the_cells_execution_count(nb):
    c = nb.open()
    assert c.received[0]["ledger"] == {"schema": 1, "entries": []}
    result = nb.run(CAPTURE)
    count = result.execution_count
    del result
    ledger = c.received[-1]["ledger"]
    assert ledger["schema"] == 1
    (entry,) = ledger["entries"]
    acts = nb.ns["acts"]
    assert entry["kind"] == "capture"
    assert entry["model"] == "GPT2LMHeadModel"
    assert entry["patterns"] == [MLP]
    assert entry["tensors"] == 3
    assert entry["bytes"] == acts.nbytes
    # the push came after the ledger closed the cell: its execution count is filled in
    assert entry["execution_count"] == count
    assert entry["source_sha1"] is not None
    assert ledger == get_ledger(nb.shell).to_json()
    json.dumps(c.received[-1], allow_nan=False)


def test_ledger_values_are_made_json_safe_and_only_the_newest_are_sent(nb):
    c = nb.open()
    nb.run(
        # The ledger's subscriber interface takes any dict: what reaches the panel is made
        # JSON-safe whatever a record carries.
        "from interp_magics.jupyter import get_ledger\n"
        "import torch\n"
        "get_ledger(get_ipython()).record(dict(kind='probe', score=float('nan'),\n"
        "    inf=float('inf'), tensor=torch.arange(3), text='x' * 500,\n"
        "    nested={'a': [1, 2.5, {'b': float('nan')}]}))\n"
    )
    (entry,) = c.received[-1]["ledger"]["entries"]
    assert entry["kind"] == "probe"
    assert entry["score"] is None and entry["inf"] is None
    assert entry["tensor"] == "tensor([0, 1, 2])"
    assert entry["text"] == "x" * (MAX_TEXT - 1) + "…"
    # shallow: deeper than three levels becomes text
    assert entry["nested"] == {"a": [1, 2.5, "{'b': nan}"]}

    nb.run(
        "from interp_magics.core import events, records\n"
        f"for i in range({MAX_LEDGER + 10}):\n"
        "    events.emit(records.StatTestRecord(test='t', p_values=i, corrected=False))\n"
    )
    entries = c.received[-1]["ledger"]["entries"]
    assert len(entries) == MAX_LEDGER
    assert [e["p_values"] for e in entries] == list(range(10, MAX_LEDGER + 10))
    assert len(get_ledger(nb.shell).entries) == MAX_LEDGER + 11
    json.dumps(c.received[-1], allow_nan=False)


# -- 4. free -----------------------------------------------------------------------------------


def test_free_of_a_displayed_cache_releases_it_from_out_and_underscores(nb):
    c = nb.open()
    n = nb.run(CAPTURE).execution_count  # displayed: Out[n], _n and _ hold it
    assert nb.ns["Out"][n] is nb.ns["acts"] and nb.ns["_"] is nb.ns["acts"]
    m = nb.run("acts").execution_count  # shown again: also Out[m], __
    assert nb.ns["__"] is nb.ns["acts"] and nb.ns[f"_{m}"] is nb.ns["acts"]
    nb.run("keep = 41 + 1")
    ref, nbytes = cache_ref(nb.ns, "acts")

    replies = nb.send(c, {"v": 1, "type": "free", "name": "acts"})
    assert replies[0] == {
        "v": 1,
        "type": "freed",
        "name": "acts",
        "ok": True,
        "bytes": nbytes,
        "message": f"freed {format_bytes(nbytes)}",
    }
    # then every panel gets a snapshot without the name
    assert [r["type"] for r in replies] == ["freed", "snapshot"]
    assert replies[1]["caches"] == [] and replies[1]["total_bytes"] == 0
    assert ref() is None
    assert "acts" not in nb.ns
    assert n not in nb.ns["Out"] and m not in nb.ns["Out"]
    assert f"_{n}" not in nb.ns and f"_{m}" not in nb.ns
    assert nb.ns["keep"] == 42
    # IPython's output history goes on working
    nb.run("7 * 6")
    assert nb.ns["_"] == 42


def test_free_of_a_cache_still_bound_to_another_name(nb):
    nb.run(CAPTURE)
    nb.run("alias = acts")
    ref, nbytes = cache_ref(nb.ns, "acts")
    reply = nb.bridge.free("acts")
    assert reply["ok"] is False
    assert reply["bytes"] == 0
    assert "`alias`" in reply["message"]
    assert format_bytes(nbytes) in reply["message"]
    assert "acts" not in nb.ns and nb.ns["alias"] is ref()  # the name went, the cache did not
    assert by_name(nb.bridge.snapshot()).keys() == {"alias"}


def test_free_with_a_tensor_taken_out_reports_what_stays(nb):
    c = nb.open()
    nb.run(CAPTURE)
    nb.run('x = acts["transformer.h.0.mlp"]')
    ref, nbytes = cache_ref(nb.ns, "acts")
    kept = nb.ns["x"].element_size() * nb.ns["x"].nelement()
    replies = nb.send(c, {"v": 1, "type": "free", "name": "acts"})
    reply = replies[0]
    assert reply["ok"] is False
    assert reply["bytes"] == nbytes - kept
    assert 0 < reply["bytes"] < nbytes
    assert "tensors taken from the cache" in reply["message"]
    assert format_bytes(kept) in reply["message"]
    assert ref() is None  # the cache object itself is gone
    assert nb.ns["x"].shape == (2, 9, 64)
    assert [r["type"] for r in replies] == ["freed", "snapshot"]


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("nope", "no activation cache named 'nope' in this kernel"),
        ("number", "no activation cache named 'number' in this kernel ('number' is a int)"),
        ("model", "('model' is a GPT2LMHeadModel)"),
        ("_x", "no activation cache named '_x' in this kernel"),
        ("Out", "no activation cache named 'Out' in this kernel ('Out' is a dict)"),
    ],
)
def test_free_refuses_what_is_not_a_cache_and_changes_nothing(nb, name, message):
    c = nb.open()
    nb.run(CAPTURE)
    nb.run("number = 3\n_x = acts")
    before = dict(nb.ns)
    replies = nb.send(c, {"v": 1, "type": "free", "name": name})
    assert replies[0]["type"] == "freed"
    assert replies[0]["name"] == name
    assert replies[0]["ok"] is False and replies[0]["bytes"] == 0
    assert message in replies[0]["message"]
    assert "busy" not in replies[0]
    # the asking panel's list was stale: it gets a fresh snapshot
    assert [r["type"] for r in replies] == ["freed", "snapshot"]
    assert dict(nb.ns) == before
    assert all(nb.ns[k] is v for k, v in before.items())


def test_free_is_refused_while_a_cell_or_a_capture_runs(nb):
    c = nb.open()
    nb.run(CAPTURE)
    ref, _ = cache_ref(nb.ns, "acts")
    nb.run(
        "reply = __import__('interp_magics.jupyter.state', fromlist=['_'])"
        ".get_bridge(get_ipython()).free('acts')"
    )
    reply = nb.ns["reply"]
    assert reply["busy"] is True and reply["ok"] is False and reply["bytes"] == 0
    assert "busy" in reply["message"]
    assert nb.ns["acts"] is ref()

    with interp_magics.capture(nb.ns["model"], [MLP]):
        nb.ns["model"](nb.ns["ids"])
        replies = nb.send(c, {"v": 1, "type": "free", "name": "acts"})
    assert len(replies) == 1  # no snapshot after a busy refusal
    assert replies[0]["busy"] is True and replies[0]["ok"] is False
    assert nb.ns["acts"] is ref()
    assert nb.bridge.free("acts")["ok"] is True  # once idle it works
    gc.collect()
    assert ref() is None


# -- 5. malformed messages ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "text"),
    [
        ({"v": 2, "type": "refresh"}, "unsupported protocol version 2"),
        ({"v": True, "type": "refresh"}, "unsupported protocol version True"),
        ({"type": "refresh"}, "unsupported protocol version None"),
        ({"v": 1, "type": "explode"}, "unknown message type 'explode'; expected free, hello"),
        ({"v": 1}, "unknown message type None"),
        ([1, 2], "expected a JSON object like {'v': 1, 'type': 'free'}, got list"),
        ("refresh", "got str"),
        (None, "got NoneType"),
        ({"v": 1, "type": "free"}, "'free' needs the name of a cache"),
        ({"v": 1, "type": "free", "name": 5}, "'free' needs the name of a cache"),
        ({"v": 1, "type": "free", "name": ""}, "'free' needs the name of a cache"),
    ],
)
def test_malformed_messages_get_an_error_and_the_comm_stays_usable(nb, data, text):
    c = nb.open()
    replies = nb.send(c, data)
    assert len(replies) == 1
    assert replies[0]["v"] == 1 and replies[0]["type"] == "error"
    assert text in replies[0]["message"]
    if "protocol version" in text:
        assert "speaks version 1" in replies[0]["message"]
    assert not c._closed and nb.bridge.comms == [c]
    (snap,) = nb.send(c, REFRESH)
    assert snap["type"] == "snapshot" and [x["name"] for x in snap["models"]] == ["model"]
    assert snap["seq"] > c.received[0]["seq"]


def test_a_malformed_hello_gets_an_error_and_the_comm_stays_open(nb):
    c = nb.open({"v": 9, "type": "hello"})
    (reply,) = c.received
    assert reply["type"] == "error" and "unsupported protocol version 9" in reply["message"]
    d = nb.open({"v": 1, "type": "refresh"})  # only hello opens
    assert d.received[0]["type"] == "error"
    assert "expected hello" in d.received[0]["message"]
    assert nb.bridge.comms == [c, d]
    (snap,) = nb.send(c, REFRESH)
    assert snap["type"] == "snapshot"
    (snap,) = nb.send(d, HELLO)  # hello is also a request
    assert snap["type"] == "snapshot"


# -- 6. unload and load again ------------------------------------------------------------------


def test_unload_takes_back_target_comms_and_events_and_loading_again_works(nb):
    old = nb.bridge
    c = nb.open()
    nb.run("%unload_ext interp_magics")
    assert get_bridge(nb.shell) is None
    assert TARGET not in nb.manager.targets
    assert c._closed and c.published[-1][0] == "comm_close"
    assert c.comm_id not in nb.manager.comms
    assert old.comms == []
    for event, callback in old._callbacks.items():
        assert callback not in nb.shell.events.callbacks[event]
    sent = len(c.published)
    nb.run("x = 1")
    assert len(c.published) == sent
    # a panel knocking now finds no target: the manager closes its comm
    orphan_id = uuid.uuid4().hex
    content = {"comm_id": orphan_id, "target_name": TARGET, "data": HELLO}
    nb.manager.comm_open(stream=None, ident=None, msg=jupyter_msg("comm_open", content))
    assert orphan_id not in nb.manager.comms

    nb.run("%load_ext interp_magics")
    new = nb.bridge
    assert new is not old
    assert nb.manager.targets[TARGET] == new._open_comm
    nb.run(CAPTURE)
    d = nb.open()
    assert d.received[0]["type"] == "snapshot"
    assert [x["name"] for x in d.received[0]["caches"]] == ["acts"]
    # removing the old bridge again must not take the new one's target
    old.remove()
    assert nb.manager.targets[TARGET] == new._open_comm
    nb.run("y = 2")
    assert len(d.received) == 2 and d.received[1]["seq"] > d.received[0]["seq"]


# -- 7. snapshot_display -----------------------------------------------------------------------


def json_payload(obj: Any) -> Any:
    data = obj._repr_json_()
    return data[0] if isinstance(data, tuple) else data


def test_snapshot_display_serves_the_snapshot_without_comms(nb):
    nb.run(CAPTURE)
    data = json_payload(snapshot_display())
    assert data["type"] == "snapshot" and data["v"] == 1
    assert data["version"] == interp_magics.__version__
    assert [x["name"] for x in data["caches"]] == ["acts"]
    assert data["total_bytes"] == nb.ns["acts"].nbytes
    json.dumps(data, allow_nan=False)

    expr = "__import__('interp_magics.jupyter').jupyter.snapshot_display()"
    reply = nb.shell.user_expressions({"im": expr})["im"]
    assert reply["status"] == "ok"
    got = reply["data"]["application/json"]
    assert got["type"] == "snapshot" and got["seq"] > data["seq"]
    assert got == {**data, "seq": got["seq"]}


def test_snapshot_display_without_the_extension_says_not_loaded(nb):
    nb.run("%unload_ext interp_magics")
    assert json_payload(snapshot_display()) == {"v": 1, "type": "not-loaded"}
    expr = "__import__('interp_magics.jupyter').jupyter.snapshot_display()"
    reply = nb.shell.user_expressions({"im": expr})["im"]
    assert reply["data"]["application/json"] == {"v": 1, "type": "not-loaded"}


# -- 8. %activations with no body --------------------------------------------------------------


def split_row(line: str) -> list[str]:
    return re.split(r"\s{2,}", line.strip())


def test_activations_alone_lists_the_caches(nb):
    listing = nb.shell.run_line_magic("activations", "")
    assert isinstance(listing, CacheListing) and listing.caches == []
    assert repr(listing) == (
        "no activation caches in this kernel; capture one with %%activations MODEL -m PATTERN"
    )
    assert "no activation caches" in listing._repr_html_()

    nb.run(CAPTURE)
    nb.run('%%activations model -m "transformer.h.0.attn" -o other -q\nout = model(ids)\n')
    nb.run("same = acts")
    result = nb.run("%activations")
    listing = result.result
    assert isinstance(listing, CacheListing)
    acts, other = nb.ns["acts"], nb.ns["other"]
    total = acts.nbytes + other.nbytes
    assert listing.total_bytes == total
    lines = repr(listing).splitlines()
    assert lines[0] == f"3 activation caches, {format_bytes(total)} in all"
    assert split_row(lines[1]) == ["name", "tensors", "bytes", "dtypes", "devices"]
    assert split_row(lines[2]) == ["acts", "3", format_bytes(acts.nbytes), "float32", "cpu"]
    assert split_row(lines[3]) == ["other", "1", format_bytes(other.nbytes), "float32", "cpu"]
    assert split_row(lines[4]) == ["same", "3", format_bytes(acts.nbytes), "float32", "cpu"]
    assert split_row(lines[5]) == ["total", format_bytes(total)]

    page = listing._repr_html_()
    for name in ("acts", "other", "same"):
        assert f"<code>{name}</code>" in page
    assert f"<td>{format_bytes(acts.nbytes)}</td>" in page
    assert f"<th>{format_bytes(total)}</th>" in page
    assert "<td>3</td>" in page and "<td>1</td>" in page
    assert f"3 activation caches, {format_bytes(total)} in all" in page
    # the listing holds summaries, not the caches
    assert "acts" in nb.ns and not any(
        isinstance(v, ActivationCache) for row in listing.caches for v in row.values()
    )


def test_activations_listing_escapes_html(nb):
    nb.run(CAPTURE)
    evil = "<script>alert(1)</script>"
    nb.ns[evil] = nb.ns["acts"]  # any string key can sit in the namespace
    listing = nb.shell.run_line_magic("activations", "")
    page = listing._repr_html_()
    assert "<script" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert evil in repr(listing)  # plain text shows it as it is
    crafted = CacheListing(
        caches=[
            {
                "name": "a&b",
                "tensors": 1,
                "bytes": 10,
                "dtypes": ["<img src=x onerror=alert(1)>"],
                "devices": ['"cpu"'],
            }
        ],
        total_bytes=10,
    )
    page = crafted._repr_html_()
    assert "<img" not in page and "a&amp;b" in page and "&quot;cpu&quot;" in page


def test_activations_with_arguments_but_no_body_is_a_usage_error(nb):
    with pytest.raises(UsageError, match="%%activations -m foo") as info:
        nb.shell.run_line_magic("activations", "-m foo")
    assert "needs a cell body" in str(info.value)
    result = nb.run("%activations model -m foo", ok=False)
    assert isinstance(result.error_in_exec, UsageError)
    assert "%%activations model -m foo" in str(result.error_in_exec)


# -- 9. size limits ----------------------------------------------------------------------------


def test_a_cache_with_more_than_max_entries_tensors_is_truncated(nb):
    calls = MAX_ENTRIES // 3 + 4  # three modules per call: more than MAX_ENTRIES tensors
    nb.run(
        f'%%activations model -m "{MLP}" -o many -q\nfor _i in range({calls}):\n'
        "    out = model(ids)\n"
    )
    many = nb.ns["many"]
    assert len(many) == 3 * calls > MAX_ENTRIES
    c = nb.open()
    summary = by_name(c.received[0])["many"]
    assert summary["tensors"] == len(many)
    assert summary["bytes"] == many.nbytes == c.received[0]["total_bytes"]
    assert summary["truncated"] is True
    assert summary["entries"] == entries_of(many)[:MAX_ENTRIES]
    assert "transformer.h.0.mlp#1" in [e["key"] for e in summary["entries"]]


def test_entries_over_the_byte_budget_are_cut_from_the_later_caches(nb, monkeypatch):
    first = ActivationCache(model_name="m")
    second = ActivationCache(model_name="m")
    for i in range(20):
        for cache in (first, second):
            cache._put(f"k{i}", torch.zeros(2, 3), EntryInfo(module=f"k{i}", kind="output"))
    nb.ns.update(a=first, b=second)
    size = len(json.dumps(entries_of(first)))
    monkeypatch.setattr(snapshots, "MAX_ENTRY_BYTES", size * 3 // 2)
    caches = by_name(nb.bridge.snapshot())
    assert caches["a"]["entries"] == entries_of(first) and caches["a"]["truncated"] is False
    assert caches["b"]["truncated"] is True
    assert caches["b"]["entries"] == entries_of(second)[: len(caches["b"]["entries"])]
    assert 0 < len(caches["b"]["entries"]) < 20
    assert caches["b"]["tensors"] == 20 and caches["b"]["bytes"] == second.nbytes
    monkeypatch.undo()
    assert by_name(nb.bridge.snapshot())["b"]["truncated"] is False


# -- regressions: shared storage, lazy modules, blank nested cells ------------------------------


@pytest.mark.parametrize("take", [".detach()", ".numpy()"])
def test_free_counts_memory_kept_through_shared_storage(nb, take):
    nb.run(CAPTURE)
    nb.run(f'x = acts["transformer.h.0.mlp"]{take}')
    _, nbytes = cache_ref(nb.ns, "acts")
    reply = nb.bridge.free("acts")
    assert reply["ok"] is False
    assert reply["bytes"] == nbytes - 2 * 9 * 64 * 4


def test_dispatched_and_nnsight_models_say_where_their_weights_live(nb):
    nb.run(
        "import tempfile, nnsight\n"
        "from accelerate import dispatch_model\n"
        "from interp_magics.testing import gpt2\n"
        "where = {'transformer.wte': 'disk', 'transformer.wpe': 'cpu', 'transformer.drop': 'cpu',"
        " 'transformer.h.0': 'cpu', 'transformer.h.1': 'disk', 'transformer.h.2': 'cpu',"
        " 'transformer.ln_f': 'cpu', 'lm_head': 'disk'}\n"
        "big = dispatch_model(gpt2(), device_map=where, offload_dir=tempfile.mkdtemp())\n"
        "plain = gpt2()\n"
        "wrapped = nnsight.NNsight(plain)\n"
        "broken = gpt2(); broken.transformer.h[1].to('meta')"
    )
    plain = nb.ns["plain"]
    models = {m["name"]: m for m in nb.open().received[0]["models"]}
    sizes = {n: p.numel() * p.element_size() for n, p in plain.named_parameters()}
    on_disk = sum(
        v for k, v in sizes.items() if k.startswith(("transformer.wte.", "transformer.h.1."))
    )
    assert models["big"]["placement"] == {
        "devices": ["cpu"],
        "resident": {"cpu": sum(sizes.values()) - on_disk},
        "offloaded": {"disk": on_disk},
    }
    assert "placement" not in models["plain"]
    assert models["wrapped"]["class"] == "NNsight(GPT2LMHeadModel)"
    assert models["wrapped"]["parameters"] == models["plain"]["parameters"]
    # weights left on meta: still listed (its device says so), without a placement line
    assert models["broken"]["device"] == "cpu, meta" and "placement" not in models["broken"]


def test_an_uninitialised_lazy_module_does_not_break_the_snapshot(nb):
    nb.run("import torch\nlazy = torch.nn.LazyLinear(4)")
    c = nb.open()
    assert [m["type"] for m in c.received] == ["snapshot"]
    assert "lazy" in [m["name"] for m in c.received[0]["models"]]


def test_a_nested_blank_run_keeps_the_cell_busy(nb):
    c = nb.open()
    nb.run(
        "get_ipython().run_cell('')\n"
        "busy = __import__('interp_magics.jupyter.state', fromlist=['_'])"
        ".get_bridge(get_ipython()).busy\n"
    )
    assert nb.ns["busy"] is True
    assert len(c.received) == 2  # the hello's answer and one push after the cell


def test_open_stores_are_listed_with_their_size_on_disk(nb, tmp_path):
    path = str(tmp_path / "acts.zarr")
    nb.run(
        "import torch\nfrom interp_magics.store import harvest\nfrom interp_magics.testing import gpt2\n"
        f"store = harvest(gpt2(), [torch.randint(1, 90, (4, 6))], 'resid_post', {path!r}, "
        "progress=False)"
    )
    store = nb.ns["store"]
    snap = nb.open().received[0]
    assert snap["stores"] == [
        {
            "name": "store",
            "path": path,
            "examples": 4,
            "tensors": 3,
            "bytes": store.nbytes,
            "complete": True,
        }
    ]
    assert snap["total_bytes"] == sum(c["bytes"] for c in snap["caches"])  # stores stay on disk
