"""Sidebar panels: what the kernel pays per cell for the snapshot push, its size, and the
server's rigor endpoint on a 1,000-cell notebook.

- Push: a real IPython shell with the extension loaded and 100 activation caches (6 tensors
  each, captured from a 6-layer GPT-2) plus the model in the namespace runs small cells with one
  panel comm open and with none, interleaved in blocks; the difference of the medians is what
  the panel costs per cell: for cells that change what it lists (a snapshot is built,
  serialised with ``jupyter_client``'s ``json_packer`` as ipykernel does, and sent) and for
  cells that do not (built and compared with the last push; nothing is sent). Also: the extension loaded vs not loaded at all (the ledger's
  and the bridge's run-cell events, no comm).
- Size: bytes of that snapshot message as sent.
- Server: ``POST /interp-magics/rigor`` with a 1,000-cell notebook model (the payload the
  panel sends: sources, ids, metadata, no outputs) to a real ``jupyter server`` subprocess with
  a token, round trip from a client, median of 7 after a warm-up; next to ``rigor.check`` on
  the same notebook in-process.
- Workers: the server runs each check in a worker process (``rigor_pool``). In-process, on
  the same 1,000-cell model: a worker's start-up (process start to the checker imported,
  median of 7 fresh pools), a check in a warm worker next to the same check in a thread (what
  the server did before: the difference is what the process costs per check), and how long a
  killed worker's replacement takes to be ready. Also the server's own time to validate a
  maximal (20 MiB) request body, the linear work it still does before handing over.
- Bundles: bytes of the built JupyterLab extension (all its JavaScript chunks) and of each
  widget's bundle (JavaScript + CSS), raw and gzipped.

    .venv/bin/python benchmarks/bench_panels.py            # everything
    .venv/bin/python benchmarks/bench_panels.py --server   # the rigor endpoint and workers only
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

RESULTS = Path(__file__).parent / "results"
ROOT = Path(__file__).parent.parent

CACHES = 100
BLOCKS = 15
CELLS_PER_BLOCK = 100

SETUP = f"""
import torch
from interp_magics import capture, testing
model = testing.gpt2(n_layer=6, n_embd=64)
batch = torch.randint(1, 97, (4, 32))
for i in range({CACHES}):
    with capture(model, "transformer.h.*") as cache:
        model(batch)
    globals()[f"acts{{i}}"] = cache
del cache
x = 0
"""


class PackingComm:
    """A comm whose send serialises the message the way ipykernel's session does."""

    def __init__(self) -> None:
        from comm.base_comm import BaseComm
        from jupyter_client.session import json_packer

        outer = self
        self.sizes: list[int] = []

        class _Comm(BaseComm):
            def publish_msg(
                self,
                msg_type: str,
                data: Any = None,
                metadata: Any = None,
                buffers: Any = None,
                **keys: Any,
            ) -> None:
                content = {"data": data or {}, "comm_id": self.comm_id, **keys}
                outer.sizes.append(len(json_packer(content)))

        self.cls = _Comm


def push_cost() -> dict[str, Any]:
    import comm
    from IPython.core.interactiveshell import InteractiveShell
    from traitlets.config import Config

    cfg = Config()
    cfg.HistoryAccessor.enabled = False
    shell = InteractiveShell.instance(config=cfg)
    shell.run_line_magic("load_ext", "interp_magics")
    packing = PackingComm()
    comm.create_comm = packing.cls  # what ipykernel does, so comm_open builds our comm
    manager = comm.get_comm_manager()
    quiet = io.StringIO()
    with contextlib.redirect_stdout(quiet):
        result = shell.run_cell(SETUP)
    result.raise_error()

    def open_comm(comm_id: str) -> None:
        manager.comm_open(
            None,
            None,
            {
                "content": {
                    "comm_id": comm_id,
                    "target_name": "interp_magics",
                    "data": {"v": 1, "type": "hello"},
                }
            },
        )

    def close_comm(comm_id: str) -> None:
        manager.comm_close(None, None, {"content": {"comm_id": comm_id, "data": {}}})

    def block(tag: str, changing: bool = False) -> float:
        start = time.perf_counter()
        for i in range(CELLS_PER_BLOCK):
            # Changing cells bind and delete `extra` in turn (one more cache listed, then one
            # fewer), so every one sends a snapshot; the other kind changes nothing listed.
            code = ("del extra" if i % 2 else "extra = acts0") if changing else f"x = x + {i}"
            shell.run_cell(code, cell_id=f"{tag}{i}")
        return (time.perf_counter() - start) / CELLS_PER_BLOCK

    # Phase 1: one comm open vs none, for cells that change what the panel lists and for
    # cells that do not, with the 100 captures in the ledger.
    modes: dict[str, list[float]] = {
        "comm": [],
        "no comm": [],
        "comm, changing": [],
        "no comm, changing": [],
        "not loaded": [],
    }
    size = 0
    push_sizes: list[int] = []
    for b in range(BLOCKS + 1):  # block 0 warms up
        for changing in (False, True):
            suffix = ", changing" if changing else ""
            for mode in ("comm", "no comm") if b % 2 else ("no comm", "comm"):
                if mode == "comm":
                    open_comm(f"c{b}{suffix}")
                    packing.sizes.clear()
                t = block(f"{mode}{b}{suffix}", changing)
                if mode == "comm":
                    sent = len(packing.sizes)
                    # (the hello's answer was cleared) a push per changing cell; when
                    # nothing changes only the first cell after the hello pushes
                    assert sent == (CELLS_PER_BLOCK if changing else 1), (sent, changing)
                    if changing:  # the first push carries every entry, later ones new ones
                        size = max(size, packing.sizes[0])
                        push_sizes.extend(packing.sizes[1:])
                    close_comm(f"c{b}{suffix}")
                if b:
                    modes[mode + suffix].append(t)
    from interp_magics.jupyter.state import get_bridge

    bridge = get_bridge(shell)
    assert bridge is not None
    snap = bridge.snapshot()
    # Phase 2: the extension's run-cell events without a panel vs not loaded (reloading
    # starts a new, empty ledger, hence after phase 1).
    for b in range(BLOCKS + 1):
        for mode in ("no comm", "not loaded") if b % 2 else ("not loaded", "no comm"):
            if mode == "not loaded":
                shell.run_line_magic("unload_ext", "interp_magics")
            t = block(f"{mode}{b}")
            if mode == "not loaded":
                shell.run_line_magic("load_ext", "interp_magics")
            if b:
                modes["not loaded" if mode == "not loaded" else "no comm"].append(t)
    med = {k: statistics.median(v) * 1000 for k, v in modes.items()}
    shell.run_line_magic("unload_ext", "interp_magics")
    return {
        "caches": len(snap["caches"]),
        "tensors": sum(c["tensors"] for c in snap["caches"]),
        "ledger_entries": len(snap["ledger"]["entries"]),
        "cell_ms_with_comm": med["comm"],
        "cell_ms_no_comm": med["no comm"],
        "cell_ms_not_loaded": med["not loaded"],
        "push_ms_per_cell": med["comm"] - med["no comm"],
        "cell_ms_with_comm_changing": med["comm, changing"],
        "cell_ms_no_comm_changing": med["no comm, changing"],
        "push_ms_per_changing_cell": med["comm, changing"] - med["no comm, changing"],
        "extension_ms_per_cell_without_comm": med["no comm"] - med["not loaded"],
        "snapshot_message_bytes": size,
        "push_message_bytes_median": statistics.median(push_sizes),
    }


# -- server ---------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def jupyter_server(root: Path) -> Iterator[tuple[str, str]]:
    port, token = _free_port(), secrets.token_hex(16)
    env = {
        **os.environ,
        "JUPYTER_CONFIG_DIR": str(root / ".config"),
        "JUPYTER_RUNTIME_DIR": str(root / ".runtime"),
    }
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "jupyter_server",
            "--no-browser",
            "--allow-root",
            "--ServerApp.ip=127.0.0.1",
            f"--ServerApp.port={port}",
            "--ServerApp.port_retries=0",
            f"--IdentityProvider.token={token}",
            f"--ServerApp.root_dir={root}",
            "--ServerApp.jpserver_extensions=interp_magics=True",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                _request(url + "/interp-magics/status", token)
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(
                        f"jupyter server did not start: {proc.stderr.read() if proc.stderr else ''}"
                    ) from None
                time.sleep(0.2)
        yield url, token
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def _request(url: str, token: str, body: bytes | None = None) -> dict[str, Any]:
    req = urllib.request.Request(
        url,
        data=body,
        headers={"Authorization": f"token {token}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=60) as resp:
        return json.loads(resp.read())  # type: ignore[no-any-return]


def server_latency() -> dict[str, Any]:
    from interp_magics import rigor

    model = _model_1000()
    body = json.dumps({"path": "big.ipynb", "notebook": model, "ledger": None}).encode()
    rigor.check(model)  # warm-up
    local = []
    for _ in range(7):
        start = time.perf_counter()
        expected = rigor.check(model, name="big.ipynb")
        local.append(time.perf_counter() - start)
    with tempfile.TemporaryDirectory() as tmp, jupyter_server(Path(tmp)) as (url, token):
        _request(url + "/interp-magics/rigor", token, body)  # warm-up (imports)
        times = []
        for _ in range(7):
            start = time.perf_counter()
            reply = _request(url + "/interp-magics/rigor", token, body)
            times.append(time.perf_counter() - start)
    assert len(reply["findings"]) == len(expected), (len(reply["findings"]), len(expected))
    return {
        "server_rigor_1000_cells_s": statistics.median(times),
        "in_process_check_1000_cells_s": statistics.median(local),
        "request_bytes": len(body),
        "findings": len(reply["findings"]),
    }


def _model_1000() -> dict[str, Any]:
    """Return the 1,000-cell notebook model the panel would post (no outputs)."""
    sys.path.insert(0, str(Path(__file__).parent))
    from bench_rigor import big_notebook

    nb = big_notebook(1000)
    return {
        "nbformat": 4,
        "nbformat_minor": 5,
        "metadata": dict(nb.metadata),
        "cells": [
            {
                "id": c["id"],
                "cell_type": c["cell_type"],
                "source": c["source"],
                "metadata": dict(c["metadata"]),
                "execution_count": c.get("execution_count"),
            }
            for c in nb.cells
        ],
    }


def worker_costs(repeats: int = 7) -> dict[str, Any]:
    """Return a worker's start-up, the per-check cost of the process, the replacement time."""
    import asyncio

    from interp_magics import rigor
    from interp_magics.jupyter.rigor_pool import CheckPool, CheckTimedOut
    from interp_magics.jupyter.server import checked_notebook

    model = checked_notebook(_model_1000(), [])
    task = {"notebook": model, "ledger": None, "name": "big.ipynb", "notes": []}

    async def measure() -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        startups = []
        for _ in range(repeats):
            pool = CheckPool(1, 60.0)
            start = time.perf_counter()
            worker = await pool._acquire()
            startups.append(time.perf_counter() - start)
            pool._release(worker)
            await pool.close()
        pool = CheckPool(1, 60.0)
        answer = await pool.check(None, task)  # warm-up: start the worker
        in_worker, in_thread = [], []
        for _ in range(repeats):  # interleaved, so load on the machine hits both alike
            start = time.perf_counter()
            answer = await pool.check(None, task)
            in_worker.append(time.perf_counter() - start)
            start = time.perf_counter()
            local = await loop.run_in_executor(None, lambda: rigor.check(model, name="big.ipynb"))
            in_thread.append(time.perf_counter() - start)
        assert len(answer["reply"]["findings"]) == len(local)
        stall = CheckPool(1, 0.5)
        await stall.check(None, task)
        (first,) = stall.pids()
        marked = {**task, "stall_marker": model["cells"][0]["source"]}  # stalls on cell 1
        try:
            await stall.check(None, marked)
            raise AssertionError("the stalled check was not stopped")
        except CheckTimedOut:
            killed = time.perf_counter()
        replacement = stall._workers[0]
        await replacement.ready
        replaced = time.perf_counter() - killed
        assert stall.pids() != [first]
        await stall.close()
        await pool.close()
        return {
            "worker_startup_s": statistics.median(startups),
            "check_in_worker_1000_cells_s": statistics.median(in_worker),
            "check_in_thread_1000_cells_s": statistics.median(in_thread),
            "worker_overhead_per_check_s": statistics.median(in_worker)
            - statistics.median(in_thread),
            "replacement_ready_s": replaced,
        }

    return asyncio.run(measure())


def validation_cost() -> dict[str, Any]:
    """Return the server's time to parse and validate a 20 MiB request (before a check)."""
    from interp_magics.jupyter.server import MAX_BODY, parse_request

    line = "x = compute(layer, head)  # a line of code\n"
    escaped = len(json.dumps(line)) - 2  # "\n" is two characters in JSON
    source = line * (MAX_BODY // 5000 // escaped - 2)  # 5,000 cells just under MAX_BODY
    cells = [
        {"cell_type": "code", "id": f"c{i}", "metadata": {}, "execution_count": i, "source": source}
        for i in range(5000)
    ]
    body = json.dumps({"notebook": {"nbformat": 4, "metadata": {}, "cells": cells}}).encode()
    assert len(body) <= MAX_BODY, len(body)
    times = []
    for _ in range(5):
        start = time.perf_counter()
        parse_request(body)
        times.append(time.perf_counter() - start)
    return {"validate_20mib_s": statistics.median(times), "validate_bytes": len(body)}


def bundle_sizes() -> dict[str, Any]:
    """Return bytes (raw and gzipped) of the built labextension and of each widget bundle."""
    import gzip

    def size(paths: list[Path]) -> dict[str, int]:
        data = [p.read_bytes() for p in paths]
        return {
            "bytes": sum(len(d) for d in data),
            "gzip": sum(len(gzip.compress(d, 9)) for d in data),
        }

    lab = ROOT / "interp_magics" / "labextension" / "static"
    widgets = ROOT / "interp_magics" / "widgets" / "static"
    sizes = {"labextension": size(sorted(lab.glob("*.js")))}
    for js in sorted(widgets.glob("*.js")):
        sizes[f"widget {js.stem}"] = size([js, *widgets.glob(f"{js.stem}.css")])
    return sizes


def main() -> None:
    if "--server" in sys.argv:
        report_server()
        return
    push = push_cost()
    server = server_latency()
    workers = {**worker_costs(), **validation_cost()}
    bundles = bundle_sizes()
    result = {**push, **server, **workers, "bundles": bundles}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "panels.json").write_text(json.dumps(result, indent=2))
    print(
        f"panel open, {push['caches']} caches ({push['tensors']} tensors), "
        f"{push['ledger_entries']} ledger entries; median of {BLOCKS} blocks of "
        f"{CELLS_PER_BLOCK} cells; goal < 2 ms per cell:"
    )
    print(
        f"  cell that changes nothing listed: +{push['push_ms_per_cell']:.3f} ms "
        f"({push['cell_ms_with_comm']:.3f} vs {push['cell_ms_no_comm']:.3f} ms; snapshot built "
        "and compared, nothing sent)"
    )
    print(
        f"  cell that changes the list: +{push['push_ms_per_changing_cell']:.3f} ms "
        f"({push['cell_ms_with_comm_changing']:.3f} vs {push['cell_ms_no_comm_changing']:.3f} "
        "ms; snapshot built, serialised and sent)"
    )
    print(
        f"extension loaded, no panel open: {push['extension_ms_per_cell_without_comm']:.3f} ms "
        f"per cell over not loaded ({push['cell_ms_not_loaded']:.3f} ms)"
    )
    print(
        f"messages as sent: full snapshot (answer to hello, first push) "
        f"{push['snapshot_message_bytes'] / 1024:.1f} KiB; later pushes "
        f"{push['push_message_bytes_median'] / 1024:.1f} KiB (median)"
    )
    _print_server(server, workers)
    for name, b in bundles.items():
        print(f"bundle {name}: {b['bytes'] / 1024:.1f} KiB ({b['gzip'] / 1024:.1f} KiB gzipped)")


def report_server() -> None:
    """Measure and print the rigor endpoint and its workers only (``--server``)."""
    _print_server(server_latency(), {**worker_costs(), **validation_cost()})


def _print_server(server: dict[str, Any], workers: dict[str, Any]) -> None:
    print(
        f"POST /interp-magics/rigor, 1,000-cell notebook ({server['request_bytes'] / 1024:.0f} KiB): "
        f"{server['server_rigor_1000_cells_s'] * 1000:.0f} ms round trip (median of 7; "
        f"{server['findings']} findings); rigor.check in-process "
        f"{server['in_process_check_1000_cells_s'] * 1000:.0f} ms; goal < 1 s"
    )
    print(
        f"rigor worker: start-up {workers['worker_startup_s'] * 1000:.0f} ms (process start to "
        f"checker imported); 1,000-cell check {workers['check_in_worker_1000_cells_s'] * 1000:.0f}"
        f" ms in a warm worker vs {workers['check_in_thread_1000_cells_s'] * 1000:.0f} ms in a "
        f"thread ({workers['worker_overhead_per_check_s'] * 1000:+.0f} ms per check); a killed "
        f"worker's replacement ready {workers['replacement_ready_s'] * 1000:.0f} ms after the kill"
    )
    print(
        f"server-side validation of a {workers['validate_bytes'] / 2**20:.1f} MiB request "
        f"(before the worker): {workers['validate_20mib_s'] * 1000:.0f} ms"
    )


if __name__ == "__main__":
    main()
