"""Activation stores: harvest throughput against a plain forward, peak memory as the store
grows, and the streaming ridge probe against the in-memory one, as ratios in one run.

- Throughput: a 6-layer GPT-2 (d_model 384, random weights) over batches of 32 x 64 tokens,
  every block's output (``resid_post``) kept in float16: ``harvest`` into a local store against
  the same forwards with nothing kept (interleaved rounds, medians).
- Peak memory: ``harvest`` in a fresh process into stores of growing size (the number of
  batches grows, nothing else), then a streaming ridge probe of one layer of that store in
  another; peak resident memory of each read from the operating system.
- Streaming probe: ``probes.probe`` with 1,000 label permutations on ``N x 768`` float16
  activations from a store, against the same activations loaded in memory; values compared.
  The logistic probe likewise, with 99 permutations (it reads the rows once per solver step).

    .venv/bin/python benchmarks/bench_store.py                   # sizes 64, 128, 256 MiB; N 20,000
    .venv/bin/python benchmarks/bench_store.py --sizes 1024 2048 4096 --examples 100000
    .venv/bin/python benchmarks/bench_store.py --only memory --sizes 1024 2048 4096
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import numpy as np
import torch

RESULTS = Path(__file__).parent / "results"
B, T = 32, 64


def model():
    from interp_magics import testing

    return testing.gpt2(n_layer=6, n_embd=384, n_head=6, vocab_size=4000)


def batches(n: int, seed: int = 0) -> list[dict[str, torch.Tensor]]:
    g = torch.Generator().manual_seed(seed)
    return [{"input_ids": torch.randint(0, 4000, (B, T), generator=g)} for _ in range(n)]


def throughput(rounds: int, n_batches: int, threads: int) -> dict[str, float]:
    """Return the median seconds of plain forwards and of a harvest over the same batches,
    with the forward on ``threads`` CPU threads."""
    from interp_magics.store import harvest

    torch.set_num_threads(threads)
    m, data = model(), batches(n_batches)
    plain, harvested = [], []
    for _ in range(rounds):
        start = time.perf_counter()
        with torch.no_grad():
            for b in data:
                m(**b)
        plain.append(time.perf_counter() - start)
        with tempfile.TemporaryDirectory() as folder:
            start = time.perf_counter()
            harvest(m, data, "resid_post", f"{folder}/s.zarr", batch_size=B, progress=False)
            harvested.append(time.perf_counter() - start)
    ratio = statistics.median(p / h for p, h in zip(plain, harvested, strict=True))
    return {
        f"{threads} forward threads: plain forwards (s)": statistics.median(plain),
        f"{threads} forward threads: harvest (s)": statistics.median(harvested),
        f"{threads} forward threads: throughput, harvest / plain": ratio,
    }


HARVEST = """
import resource, sys
sys.path.insert(0, {here!r})
from bench_store import batches, model
from interp_magics.store import harvest
store = harvest(model(), batches({n}), "resid_post", {path!r}, batch_size=32, progress=False)
print(store.nbytes_uncompressed, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
"""

PROBE = """
import resource, numpy as np
from interp_magics import probes
from interp_magics.store import open_store
store = open_store({path!r})
x = store["resid_post.5"][:, -1]
y = (np.arange(x.shape[0]) % 2)
probes.probe(x, y, n_permutations=99, progress=False, controls=("shuffled",))
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
"""


def _child(code: str) -> list[str]:
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.split()


def peak_memory(sizes_mib: list[int]) -> dict[str, float]:
    """Return the peak resident memory of harvests into stores of the given sizes (MiB), and of
    a streaming ridge probe (99 permutations) over one layer of each store."""
    per_batch = B * T * 384 * 2 * 6  # float16, 6 layers
    out = {}
    for size in sizes_mib:
        n = max(1, size * 2**20 // per_batch)
        with tempfile.TemporaryDirectory() as folder:
            path = f"{folder}/s.zarr"
            line = _child(HARVEST.format(here=str(Path(__file__).parent), n=n, path=path))
            stored, peak = int(line[0]), int(line[1])
            probe_peak = int(_child(PROBE.format(path=path))[0])
        name = f"store {stored / 2**20:.0f} MiB"
        out[f"{name}: harvest peak resident (MiB)"] = peak / 2**20
        out[f"{name}: streaming probe peak resident (MiB)"] = probe_peak / 2**20
    return out


def streaming_probe(
    n: int, d: int = 768, perms: int = 1000, estimator: str = "ridge"
) -> dict[str, float]:
    """Return seconds of the in-memory and streaming probe, and whether they agree."""
    import dask.array as da

    from interp_magics import probes
    from interp_magics.store.lazy import open_group

    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, d)).astype(np.float16)
    y = (x[:, :5].astype(np.float32).sum(1) + rng.standard_normal(n) > 0).astype(int)
    with tempfile.TemporaryDirectory() as folder:
        group = open_group(f"{folder}/x.zarr", mode="w")
        group.create_array("x", shape=x.shape, chunks=(4096, d), dtype=x.dtype)[:] = x
        lazy = da.from_zarr(group["x"])
        kw = dict(n_permutations=perms, progress=False, controls=("shuffled",), estimator=estimator)
        start = time.perf_counter()
        ref = probes.probe(x.astype(np.float32), y, **kw)
        t_mem = time.perf_counter() - start
        start = time.perf_counter()
        got = probes.probe(lazy, y, **kw)
        t_stream = time.perf_counter() - start
    name = f"{estimator}, {n} x {d}, {perms} permutations"
    return {
        f"{name}: in memory (s)": t_mem,
        f"{name}: streaming from the store (s)": t_stream,
        f"{name}: streaming / in-memory": t_stream / t_mem,
        f"{name}: same accuracy and p-value": float(
            got.accuracy == ref.accuracy
            and got.permutation["p_value"] == ref.permutation["p_value"]
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batches", type=int, default=16)
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 128, 256])
    parser.add_argument("--examples", type=int, default=20_000)
    parser.add_argument(
        "--only", choices=["throughput", "memory", "probe"], help="run one part of the benchmark"
    )
    args = parser.parse_args()
    parts = {args.only} if args.only else {"throughput", "memory", "probe"}
    cores = max(1, os.cpu_count() or 1)
    report: dict[str, float] = {}
    if "throughput" in parts:
        # all cores for the forward (the writer competes for them), then one core left free
        # for the writer, as when the forward runs on a GPU
        report |= throughput(args.rounds, args.batches, cores)
        if cores > 1:
            report |= throughput(args.rounds, args.batches, cores - 1)
    if "memory" in parts:
        report |= peak_memory(args.sizes)
    if "probe" in parts:
        torch.set_num_threads(cores)
        report |= streaming_probe(args.examples)
        report |= streaming_probe(min(args.examples, 20_000), perms=99, estimator="logistic")
    for k, v in report.items():
        print(f"{k:<52} {v:.4g}")
    RESULTS.mkdir(exist_ok=True)
    suffix = f"_{args.only}" if args.only else ""
    (RESULTS / f"bench_store{suffix}.json").write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
