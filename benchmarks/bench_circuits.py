"""Circuit tools: edge attribution against one forward and backward, and path patching against
one forward per sender-receiver pair, as ratios in one run.

- EAP: ``circuits.eap`` over every edge of the graph (one clean and one corrupted reference run,
  then one forward and backward with a zero input per receiver) against a plain forward and
  backward of the same batch; EAP-IG with 5 steps too. Goal: EAP at most 4x.
- Path patching: ``circuits.path_patch`` against one whole forward per sender-receiver pair
  from layer 0, through the same hooks, with nothing reused or skipped and the model's own
  activation functions: what a hand-written path-patching loop does. The values are compared.
  Goal: at least 5x. What ``path_patch`` does differently, each exact:
  cells are stacked along the batch (on a CPU, as many as keep the widest activation within
  ``CPU_STACK_BYTES``); each run starts at its receivers' layer; positions before the first
  corrupted token come from the base run's cache; the first block's query/key/value
  projections are read from the base run; the last block computes its queries, output
  projection and MLP at the scored position only; GPT-2's GELU runs in place (the same bits).
  The speed-up without the in-place GELU is reported too.

Times are this process's CPU time (one thread): on a shared virtual machine, wall time also
counts the time the hypervisor gives to other machines, which came and went by 20% here.

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
        start = time.process_time()
        fn()
        out.append(time.process_time() - start)
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
    saved = (runs._prefix, runs._run_chunk, runs._reuse_projections)
    lean, restrict = Runner._lean_activations, Runner._restrict_last_block

    def fast() -> object:
        return circuits.path_patch(model, clean, corrupt, metric, **kw)

    def plain_gelu() -> object:
        Runner._lean_activations = lambda *a: None  # type: ignore[method-assign]
        try:
            return fast()
        finally:
            Runner._lean_activations = lean  # type: ignore[method-assign]

    def one_by_one() -> object:
        # the same hooks with nothing reused or skipped: a whole forward per pair
        chunk = saved[1]
        runs._prefix = lambda *a: 0
        runs._run_chunk = lambda setup, base, delta, cells, start, pre: chunk(
            setup, base, delta, cells, 0, 0
        )
        runs._reuse_projections = lambda *a: None
        Runner._restrict_last_block = lambda *a: None  # type: ignore[method-assign]
        Runner._lean_activations = lambda *a: None  # type: ignore[method-assign]
        try:
            return circuits.path_patch(
                model, clean, corrupt, metric, batch_tokens=int(clean.numel()), **kw
            )
        finally:
            runs._prefix, runs._run_chunk, runs._reuse_projections = saved
            Runner._restrict_last_block = restrict  # type: ignore[method-assign]
            Runner._lean_activations = lean  # type: ignore[method-assign]

    a, b = fast(), one_by_one()  # warm up, and the values to compare
    plain_gelu()
    t_fast, t_plain, t_slow = [], [], []
    times: dict[str, list[float]] = {"fast": t_fast, "plain": t_plain, "slow": t_slow}
    runs_ = {"fast": fast, "plain": plain_gelu, "slow": one_by_one}
    order = list(runs_)
    for r in range(rounds):  # interleaved in rotating order, so load changes hit all alike
        for name in order[r % 3 :] + order[: r % 3]:
            times[name] += timed(runs_[name], 1)
    med = statistics.median
    per_round = [s / f for s, f in zip(t_slow, t_fast, strict=True)]
    return {
        "sender x receiver-set cells": int(a.edge.sum()),  # type: ignore[attr-defined]
        "path_patch (s)": med(t_fast),
        "one forward per pair (s)": med(t_slow),
        "speed-up": med(t_slow) / med(t_fast),
        "speed-up, lowest round": min(per_round),
        "speed-up, model's own GELU": med(t_slow) / med(t_plain),
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
