"""Capture overhead: a forward with capture of every block's output vs the same forward without,
and TransformerLens 4 ``run_with_cache`` on the same model, in one run.

Model: 6-layer GPT-2 (d_model 384, 6 heads, GPT-2 vocabulary, random weights); batch 16 x 128.
Each round runs every case once in a shuffled order under ``torch.no_grad()``; the report gives
the median of per-round ratios to the plain forward and the ratio of the fastest runs. Memory is
the growth of the process's peak RSS over a plain forward, each measured in a fresh process.

    .venv/bin/python benchmarks/bench_capture.py            # full run (a few minutes on 2 cores)
    .venv/bin/python benchmarks/bench_capture.py --quick    # smaller, for a smoke check
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import psutil
import torch

from interp_magics import capture, testing

RESULTS = Path(__file__).parent / "results"


def build(quick: bool):
    """Return (hf model, input ids) for the benchmark configuration."""
    if quick:
        model = testing.gpt2(n_layer=6, n_embd=128, n_head=4, vocab_size=1000)
        ids = torch.randint(0, 1000, (4, 64), generator=torch.Generator().manual_seed(0))
    else:
        model = testing.gpt2(n_layer=6, n_embd=384, n_head=6, vocab_size=50257)
        ids = torch.randint(0, 50257, (16, 128), generator=torch.Generator().manual_seed(0))
    return model, ids


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def tensor_bytes(tensors) -> int:
    """Return the bytes of the distinct storages behind ``tensors`` (views count once)."""
    storages = {t.untyped_storage().data_ptr(): t.untyped_storage().nbytes() for t in tensors}
    return sum(storages.values())


def timing(quick: bool, repeats: int) -> dict:
    model, ids = build(quick)
    bridge = testing.transformer_bridge(model)
    resid = lambda name: name.endswith("hook_resid_post")  # noqa: E731
    cases = {
        "forward": lambda: model(ids),
        "capture_block_outputs": lambda: _capture_forward(model, ids),
        "bridge_forward": lambda: bridge(ids),
        "tl_run_with_cache_block_outputs": lambda: bridge.run_with_cache(ids, names_filter=resid),
        "tl_run_with_cache_all": lambda: bridge.run_with_cache(ids),
    }
    times: dict[str, list[float]] = {name: [] for name in cases}
    order = list(cases)
    rng = random.Random(0)
    with torch.no_grad():
        for fn in cases.values():  # warm-up
            fn()
        for _ in range(repeats):
            # Every round runs each case once, in a new random order, so drift and cache
            # effects of the case before hit every case alike; ratios are taken per round.
            rng.shuffle(order)
            for name in order:
                times[name].append(_timed(cases[name]))
        with capture(model, "transformer.h.*") as acts:
            model(ids)
        _, tl_resid = bridge.run_with_cache(ids, names_filter=resid)
        _, tl_all = bridge.run_with_cache(ids)
    med = {name: statistics.median(v) for name, v in times.items()}
    return {
        "config": {
            "layers": 6,
            "d_model": model.config.n_embd,
            "vocab": model.config.vocab_size,
            "batch": list(ids.shape),
            "repeats": repeats,
            "threads": torch.get_num_threads(),
            "torch": torch.__version__,
        },
        "median_s": med,
        "min_s": {name: min(v) for name, v in times.items()},
        # median over rounds of (case time / forward time in the same round)
        "ratio_vs_forward": {
            name: statistics.median(
                a / b for a, b in zip(times[name], times["forward"], strict=True)
            )
            for name in times
        },
        # ratio of the fastest runs: the least disturbed by other load on the machine
        "min_ratio_vs_forward": {name: min(v) / min(times["forward"]) for name, v in times.items()},
        "bytes_cached": {
            "capture_block_outputs": acts.nbytes,
            "tl_run_with_cache_block_outputs": tensor_bytes(tl_resid.values()),
            "tl_run_with_cache_all": tensor_bytes(tl_all.values()),
        },
        "tensors_cached": {
            "capture_block_outputs": len(acts),
            "tl_run_with_cache_block_outputs": len(tl_resid),
            "tl_run_with_cache_all": len(tl_all),
        },
    }


def _capture_logits(model, ids):
    with capture(model, "transformer.h.*") as acts:
        logits = model(ids).logits
    return logits, acts


def _capture_forward(model, ids):
    with capture(model, "transformer.h.*") as acts:
        model(ids)
    return acts


def peak_rss() -> int:
    """Return this process's peak resident set size in bytes (Linux ``VmHWM``).

    Unlike ``getrusage``'s ``ru_maxrss``, which a child inherits from its parent across
    fork and exec, ``VmHWM`` belongs to this process's own address space.
    """
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("VmHWM not found in /proc/self/status (Linux only)")


def peak_child(mode: str, quick: bool) -> None:
    """Print the peak-RSS growth of one forward in ``mode`` over a plain forward (subprocess)."""
    model, ids = build(quick)
    bridge = testing.transformer_bridge(model) if mode.startswith("tl") else None
    names = lambda n: n.endswith("hook_resid_post")  # noqa: E731
    runs = {
        "plain": lambda: (model(ids).logits, {}),
        "capture": lambda: _capture_logits(model, ids),
        "tl_resid": lambda: bridge.run_with_cache(ids, names_filter=names),
        "tl_all": lambda: bridge.run_with_cache(ids),
    }
    with torch.no_grad():
        (bridge or model)(ids)  # a plain forward sets the baseline high-water mark
        model(ids)
        gc.collect()
        base = peak_rss()
        rss_before = psutil.Process().memory_info().rss
        logits, kept_tensors = runs[mode]()
        del logits  # what stays is what each tool keeps: the cached tensors
        gc.collect()
        kept = tensor_bytes(kept_tensors.values())
        rss_after = psutil.Process().memory_info().rss
        peak = peak_rss()
    record = {
        "mode": mode,
        "peak_growth": peak - base,
        "retained_growth": rss_after - rss_before,
        "kept_bytes": kept,
    }
    print(json.dumps(record))


def memory(quick: bool) -> dict:
    out = {}
    # Every large allocation as its own mapping, returned to the OS when freed: RSS then follows
    # live tensor memory instead of the allocator's reuse of freed blocks.
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "131072"}
    for mode in ("plain", "capture", "tl_resid", "tl_all"):
        cmd = [sys.executable, __file__, "--peak", mode] + (["--quick"] if quick else [])
        line = subprocess.run(
            cmd, check=True, capture_output=True, text=True, env=env
        ).stdout.strip()
        out[mode] = json.loads(line.splitlines()[-1])
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small model, for a smoke check")
    parser.add_argument("--repeats", type=int, default=None, help="timed repeats per case")
    parser.add_argument("--peak", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.peak:
        peak_child(args.peak, args.quick)
        return
    repeats = args.repeats or (5 if args.quick else 31)
    result = timing(args.quick, repeats)
    result["memory"] = memory(args.quick)
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / ("capture-quick.json" if args.quick else "capture.json")
    path.write_text(json.dumps(result, indent=2))
    mib = 2**20
    print(f"config: {result['config']}")
    head = ("case", "median", "x forward", "min", "x fwd(min)", "cached", "tensors")
    print("{:34s} {:>9s} {:>9s} {:>9s} {:>10s} {:>10s} {:>7s}".format(*head))
    for name, t in result["median_s"].items():
        cached = result["bytes_cached"].get(name)
        count = result["tensors_cached"].get(name, "")
        cached_s = f"{cached / mib:8.1f}Mi" if cached is not None else ""
        ratio = result["ratio_vs_forward"][name]
        fastest, min_ratio = result["min_s"][name], result["min_ratio_vs_forward"][name]
        print(
            f"{name:34s} {t * 1000:7.1f}ms {ratio:9.3f} {fastest * 1000:7.1f}ms {min_ratio:10.3f}"
            f" {cached_s:>10s} {count!s:>7s}"
        )
    print("memory of one forward, fresh process each (MiB):")
    print(f"  {'mode':10s} {'peak RSS growth':>16s} {'RSS retained':>13s} {'tensors kept':>13s}")
    for mode, m in result["memory"].items():
        print(
            f"  {mode:10s} {m['peak_growth'] / mib:16.1f} {m['retained_growth'] / mib:13.1f}"
            f" {m['kept_bytes'] / mib:13.1f}"
        )
    print(f"written to {path}")


if __name__ == "__main__":
    main()
