"""Activation stores: harvest throughput against a plain forward, peak memory as the store
grows, and the streaming ridge probe against the in-memory one, as ratios in one run.

- Throughput: a 6-layer GPT-2 (d_model 384, random weights) over batches of 32 x 64 tokens,
  every block's output (``resid_post``) kept in float16: ``harvest`` into a local store against
  the same forwards with nothing kept (interleaved rounds, medians).
- Peak memory: ``harvest`` in a fresh process into stores of growing size (the number of
  batches grows, nothing else), peak resident memory read from the operating system.
- Streaming probe: ``probes.probe`` with 1,000 label permutations on ``N x 768`` float16
  activations from a store, against the same activations loaded in memory; values compared.

    .venv/bin/python benchmarks/bench_store.py                   # sizes 64, 128, 256 MiB; N 20,000
    .venv/bin/python benchmarks/bench_store.py --sizes 1024 2048 4096 --examples 100000
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


def throughput(rounds: int, n_batches: int) -> dict[str, float]:
    """Return the median seconds of plain forwards and of a harvest over the same batches."""
    from interp_magics.store import harvest

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
        "plain forwards (s)": statistics.median(plain),
        "harvest (s)": statistics.median(harvested),
        "throughput, harvest / plain": ratio,
    }


CHILD = """
import resource, sys, tempfile
sys.path.insert(0, {here!r})
from bench_store import batches, model
from interp_magics.store import harvest
with tempfile.TemporaryDirectory() as folder:
    store = harvest(model(), batches({n}), "resid_post", folder + "/s.zarr", batch_size=32,
                    progress=False)
    print(store.nbytes_uncompressed, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
"""


def peak_memory(sizes_mib: list[int]) -> dict[str, float]:
    """Return the peak resident memory of harvests into stores of the given sizes (MiB)."""
    per_batch = B * T * 384 * 2 * 6  # float16, 6 layers
    out = {}
    for size in sizes_mib:
        n = max(1, size * 2**20 // per_batch)
        code = CHILD.format(here=str(Path(__file__).parent), n=n)
        line = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        ).stdout.split()
        stored, peak = int(line[0]), int(line[1])
        out[f"store {stored / 2**20:.0f} MiB: peak resident (MiB)"] = peak / 2**20
    return out


def streaming_probe(n: int, d: int = 768, perms: int = 1000) -> dict[str, float]:
    """Return seconds of the in-memory and streaming ridge probe, and whether they agree."""
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
        kw = dict(n_permutations=perms, progress=False, controls=("shuffled",))
        start = time.perf_counter()
        ref = probes.probe(x.astype(np.float32), y, **kw)
        t_mem = time.perf_counter() - start
        start = time.perf_counter()
        got = probes.probe(lazy, y, **kw)
        t_stream = time.perf_counter() - start
    return {
        "examples": n,
        "in-memory ridge + 1000 permutations (s)": t_mem,
        "streaming from the store (s)": t_stream,
        "streaming / in-memory": t_stream / t_mem,
        "same accuracy and p-value": float(
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
    args = parser.parse_args()
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    report: dict[str, float] = {}
    report |= throughput(args.rounds, args.batches)
    report |= peak_memory(args.sizes)
    report |= streaming_probe(args.examples)
    for k, v in report.items():
        print(f"{k:<52} {v:.4g}")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "bench_store.json").write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
