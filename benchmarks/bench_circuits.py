"""Circuit tools: edge attribution against one forward and backward, and path patching against
one forward per sender-receiver pair, as ratios in one run.

- EAP: ``circuits.eap`` over every edge of the graph (one clean and one corrupted reference run,
  then one forward and backward with a zero input per receiver) against a plain forward and
  backward of the same batch; EAP-IG with 5 steps too. Goal: EAP at most 4x.
- Path patching: ``circuits.path_patch`` (cells stacked along the batch, each run started at its
  receivers' layer, positions before the first corrupted token taken from the base run's cache,
  the first block's query/key/value projections read from the base run, the last block's MLP
  computed at the scored position only) against the same engine run one
  whole forward per sender-receiver pair from layer 0 with nothing reused or skipped, which is
  what a hand-written path-patching loop does; the values are compared.
  Goal: at least 5x.

    .venv/bin/python benchmarks/bench_circuits.py
"""

from __future__ import annotations

import json
import os
import statistics
import time
import warnings
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import torch

RESULTS = Path(__file__).parent / "results"


def timed(fn: Callable[[], object], rounds: int) -> list[float]:
    out = []
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        out.append(time.perf_counter() - start)
    return out


def eap_cost(rounds: int) -> dict[str, float]:
    """Return EAP and EAP-IG time as multiples of one forward and backward (medians)."""
    from interp_magics import circuits, testing
    from interp_magics.patching import logit_diff

    model = testing.gpt2(n_layer=6, n_embd=384, n_head=6, vocab_size=97)
    gen = torch.Generator().manual_seed(0)
    clean = torch.randint(1, 97, (8, 24), generator=gen)
    corrupt = clean.clone()
    corrupt[:, 10] = (corrupt[:, 10] + 1) % 97
    metric = logit_diff(5, 6)

    def plain() -> None:
        with torch.enable_grad():
            logits = model(clean).logits
            (logits[:, -1, 5] - logits[:, -1, 6]).sum().backward()
        model.zero_grad(set_to_none=True)

    def run_eap() -> None:
        circuits.eap(model, clean, corrupt, metric, progress=False)

    def run_ig() -> None:
        circuits.eap(model, clean, corrupt, metric, method="eap-ig", steps=5, progress=False)

    plain()
    run_eap()  # warm up
    base, eap, ig = [], [], []
    for _ in range(rounds):  # interleaved, so load changes hit all three alike
        base += timed(plain, 1)
        eap += timed(run_eap, 1)
        ig += timed(run_ig, 1)
    edges = int(circuits.graph_of(model).edges.sum())
    return {
        "edges": edges,
        "forward + backward (ms)": 1e3 * statistics.median(base),
        "EAP, every edge (ms)": 1e3 * statistics.median(eap),
        "EAP / (forward + backward)": statistics.median(eap) / statistics.median(base),
        "EAP-IG 5 steps / (forward + backward)": statistics.median(ig) / statistics.median(base),
    }


def path_patching_speed(rounds: int) -> dict[str, float]:
    """Return path patching's time against one forward per pair, and the largest difference."""
    from interp_magics import circuits, testing
    from interp_magics.circuits import runs
    from interp_magics.patching import logit_diff
    from interp_magics.patching.runner import Runner

    model = testing.gpt2(n_layer=6, n_embd=384, n_head=6, vocab_size=97)
    gen = torch.Generator().manual_seed(0)
    clean = torch.randint(1, 97, (8, 24), generator=gen)
    corrupt = clean.clone()
    corrupt[:, 10] = (corrupt[:, 10] + 1) % 97
    metric = logit_diff(5, 6)
    kw = dict(senders=["embed", "L0H*", "L2H*"], progress=False)

    def fast() -> object:
        return circuits.path_patch(model, clean, corrupt, metric, **kw)

    prefix, chunk, reuse = runs._prefix, runs._run_chunk, runs._reuse_projections
    restrict = Runner._restrict_last_mlp

    def one_by_one() -> object:
        # the same engine with nothing reused or skipped: a whole forward per pair
        runs._prefix = lambda *a: 0
        runs._run_chunk = lambda setup, base, delta, cells, start, pre: chunk(
            setup, base, delta, cells, 0, 0
        )
        Runner._restrict_last_mlp = lambda *a: None  # type: ignore[method-assign]
        runs._reuse_projections = lambda *a: None
        try:
            return circuits.path_patch(
                model, clean, corrupt, metric, batch_tokens=int(clean.numel()), **kw
            )
        finally:
            runs._prefix, runs._run_chunk, runs._reuse_projections = prefix, chunk, reuse
            Runner._restrict_last_mlp = restrict  # type: ignore[method-assign]

    a, b = fast(), one_by_one()  # warm up, and the values to compare
    t_fast, t_slow = [], []
    for _ in range(rounds):
        t_fast += timed(fast, 1)
        t_slow += timed(one_by_one, 1)
    return {
        "sender x receiver-set cells": int(a.edge.sum()),  # type: ignore[attr-defined]
        "path_patch (s)": statistics.median(t_fast),
        "one forward per pair (s)": statistics.median(t_slow),
        "speed-up": statistics.median(t_slow) / statistics.median(t_fast),
        "largest difference": float(
            (a.per_example - b.per_example).abs().max()  # type: ignore[attr-defined]
        ),
    }


def main() -> None:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    torch.set_num_threads(args.threads)
    report: dict[str, float] = {}
    report |= eap_cost(args.rounds)
    report |= path_patching_speed(args.rounds)
    for k, v in report.items():
        print(f"{k:<44} {v:.4g}")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "bench_circuits.json").write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
