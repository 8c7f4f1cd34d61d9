"""Patching with a metric function, the way researchers write it: ours vs a lean hook loop.

Model: 6-layer GPT-2 (d_model 256, 4 heads, vocabulary 4,000, random weights), batch 8 x 24
tokens, corrupted prompts differ from the clean ones at 2 positions. Metric:
``def metric(logits): return logits[:, -1, a] - logits[:, -1, b]``.

- Lean loop: what a researcher writes without a library: the clean run's ``resid_pre`` of
  every block kept once, then one forward of the corrupted batch per (layer, position) cell
  with a forward pre-hook that writes the clean value at that position, scored by the function.
- Ours: ``patching.activation_patch(model, clean, corrupt, metric, site="resid_pre")``: the
  function's reads are found and proved before the sweep (one position per example, two
  vocabulary rows), so the sweep unembeds only those and reuses unchanged prefixes.
- Ours, full logits: the same call with the function given full logits (the reads not used),
  and the built-in ``patching.logit_diff(a, b)``.
Values are compared cell by cell (the raw batch-mean metric of each patched run); rounds are interleaved and the median is reported.

    .venv/bin/python benchmarks/bench_metric_functions.py            # 5 rounds
    .venv/bin/python benchmarks/bench_metric_functions.py --rounds 3
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
import warnings
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import torch

import interp_magics.patching.metrics as metrics_module
from interp_magics import patching, testing

RESULTS = Path(__file__).parent / "results"
B, T, LAYERS, VOCAB, A, W = 8, 24, 6, 4000, 11, 42


def metric(logits: torch.Tensor) -> torch.Tensor:
    return logits[:, -1, A] - logits[:, -1, W]


def inputs() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    clean = torch.randint(0, VOCAB, (B, T), generator=g)
    corrupt = clean.clone()
    for pos in (3, 7):
        corrupt[:, pos] = torch.randint(0, VOCAB, (B,), generator=g)
    return clean, corrupt


@torch.no_grad()
def lean_loop(model, clean, corrupt) -> tuple[float, torch.Tensor]:
    """Return seconds and ``[layer, pos]`` mean metric of a one-forward-per-cell loop."""
    start = time.perf_counter()
    blocks = model.transformer.h
    kept: list[torch.Tensor] = []
    handles = [b.register_forward_pre_hook(lambda m, a: kept.append(a[0].clone())) for b in blocks]
    model(clean)
    for h in handles:
        h.remove()
    out = torch.empty(LAYERS, T)
    for layer, block in enumerate(blocks):
        for pos in range(T):

            def write(module, args, layer=layer, pos=pos):
                hidden = args[0].clone()
                hidden[:, pos] = kept[layer][:, pos]
                return (hidden, *args[1:])

            handle = block.register_forward_pre_hook(write)
            out[layer, pos] = metric(model(corrupt).logits).mean()
            handle.remove()
    return time.perf_counter() - start, out


def ours(model, clean, corrupt, fn) -> tuple[float, torch.Tensor]:
    start = time.perf_counter()
    result = patching.activation_patch(model, clean, corrupt, fn, site="resid_pre", progress=False)
    return time.perf_counter() - start, torch.as_tensor(result.raw)


def ours_full_logits(model, clean, corrupt) -> tuple[float, torch.Tensor]:
    infer = metrics_module.infer_reads
    metrics_module.infer_reads = lambda *args, **kwargs: None  # type: ignore[assignment]
    try:
        return ours(model, clean, corrupt, metric)
    finally:
        metrics_module.infer_reads = infer  # type: ignore[assignment]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    model = testing.gpt2(n_layer=LAYERS, n_embd=256, n_head=4, vocab_size=VOCAB)
    clean, corrupt = inputs()
    cases = {
        "lean loop": lambda: lean_loop(model, clean, corrupt),
        "ours, function": lambda: ours(model, clean, corrupt, metric),
        "ours, function with full logits": lambda: ours_full_logits(model, clean, corrupt),
        "ours, built-in logit_diff": lambda: ours(model, clean, corrupt, patching.logit_diff(A, W)),
    }
    for run in cases.values():  # warm-up
        run()
    times: dict[str, list[float]] = {name: [] for name in cases}
    values: dict[str, torch.Tensor] = {}
    for _ in range(args.rounds):
        for name, run in cases.items():
            seconds, values[name] = run()
            times[name].append(seconds)
    lean = statistics.median(times["lean loop"])
    rows = []
    for name in cases:
        median = statistics.median(times[name])
        diff = float((values[name] - values["lean loop"]).abs().max())
        rows.append(
            {"case": name, "seconds": median, "speedup": lean / median, "max_abs_diff": diff}
        )
        print(f"{name:34} {median:7.3f} s  {lean / median:5.1f}x  max|diff| {diff:.1e}")
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / "metric_functions.json"
    path.write_text(json.dumps({"threads": torch.get_num_threads(), "rows": rows}, indent=2))
    print(f"written to {path}")


if __name__ == "__main__":
    main()
