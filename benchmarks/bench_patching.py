"""Activation patching speed: ours vs TransformerLens 4, side by side in one run.

Model: 6-layer GPT-2 (d_model 384, 6 heads, GPT-2 vocabulary, random weights), batch 8, sequence
lengths 32, 64 and 128. Clean and corrupted prompts are different random token sequences of the
same length, so every position differs and no cell can be skipped as unchanged (the least
favourable case for us). Metric: logit difference at the last position between the clean run's
top prediction and the corrupted run's, normalised (corrupted 0, clean 1); choosing the models'
own predictions gives the metric a clean-corrupted gap of about 1.5 logits, so the normalised
values compare numerics rather than amplified rounding.

- TransformerLens: ``transformer_lens.patching.get_act_patch_resid_pre`` on a ``TransformerBridge``
  over a copy of the same model: one forward per (layer, position). At 32 tokens the full sweep
  is timed; at 64 and 128 a spread sample of cells is timed through ``generic_activation_patch``
  with ``index_df`` and scaled to the full sweep (every cell is one equal forward).
- Ours: ``patching.activation_patch(..., site="resid_pre", by=("layer", "pos"))`` exact, the full
  sweep, and ``method="attribution"``.
Values are compared cell by cell (max abs difference of the normalised metric).

    .venv/bin/python benchmarks/bench_patching.py            # about 4 minutes
    .venv/bin/python benchmarks/bench_patching.py --quick    # 32 tokens only
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import time
import warnings
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import pandas as pd
import torch

from interp_magics import patching, testing

RESULTS = Path(__file__).parent / "results"
B, LAYERS, VOCAB = 8, 6, 50257


def setup(model, length: int):
    g = torch.Generator().manual_seed(length)
    clean = torch.randint(0, VOCAB, (B, length), generator=g)
    corrupt = torch.randint(0, VOCAB, (B, length), generator=g)
    with torch.no_grad():
        correct = model(clean).logits[:, -1].argmax(-1)
        wrong = model(corrupt).logits[:, -1].argmax(-1)
    return clean, corrupt, correct, wrong


def tl_sweep(bridge, clean, corrupt, correct, wrong, cells: int | None):
    """Return (seconds per cell, values {(layer, pos): value}) of TransformerLens patching."""
    import transformer_lens.patching as tlp

    def ld(logits):
        lg = logits[:, -1]
        n = torch.arange(lg.shape[0])
        return lg[n, correct] - lg[n, wrong]

    with torch.no_grad():
        clean_logits, clean_cache = bridge.run_with_cache(clean)
        c, k = ld(clean_logits).mean(), ld(bridge(corrupt)).mean()

        def metric(logits):
            return (ld(logits).mean() - k) / (c - k)

        length = clean.shape[1]
        start = time.perf_counter()
        if cells is None:
            out = tlp.get_act_patch_resid_pre(bridge, corrupt, clean_cache, metric)
            seconds = time.perf_counter() - start
            values = {
                (layer, pos): float(out[layer, pos])
                for layer in range(LAYERS)
                for pos in range(length)
            }
            return seconds / (LAYERS * length), values
        pick = torch.randperm(LAYERS * length, generator=torch.Generator().manual_seed(1))[:cells]
        index = pd.DataFrame({"layer": (pick // length).tolist(), "pos": (pick % length).tolist()})
        out = tlp.generic_activation_patch(
            bridge,
            corrupt,
            clean_cache,
            metric,
            patch_setter=tlp.layer_pos_patch_setter,
            activation_name="resid_pre",
            index_df=index,
        )
        seconds = time.perf_counter() - start
        values = {
            (int(r.layer), int(r.pos)): float(v)
            for r, v in zip(index.itertuples(), out, strict=True)
        }
        return seconds / cells, values


def ours(model, clean, corrupt, correct, wrong, method):
    metric = patching.logit_diff(correct, wrong)
    start = time.perf_counter()
    result = patching.activation_patch(model, clean, corrupt, metric, method=method, progress=False)
    return time.perf_counter() - start, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    torch.manual_seed(0)
    model = testing.gpt2(n_layer=LAYERS, n_embd=384, n_head=6, vocab_size=VOCAB)
    bridge = testing.transformer_bridge(copy.deepcopy(model))  # the bridge rewires its model
    rows = []
    for length in (32,) if args.quick else (32, 64, 128):
        clean, corrupt, correct, wrong = setup(model, length)
        ours(model, clean[:, :8], corrupt[:, :8], correct, wrong, "exact")  # warm-up
        exact_s, exact = ours(model, clean, corrupt, correct, wrong, "exact")
        attr_s, attr = ours(model, clean, corrupt, correct, wrong, "attribution")
        per_cell, tl_values = tl_sweep(
            bridge, clean, corrupt, correct, wrong, None if length == 32 else 24
        )
        tl_total = per_cell * LAYERS * length
        diff = max(
            abs(float(exact.values[layer, pos]) - v) for (layer, pos), v in tl_values.items()
        )
        rows.append(
            {
                "tokens": length,
                "cells": LAYERS * length,
                "tl_seconds": tl_total,
                "tl_measured": "full sweep" if length == 32 else f"{len(tl_values)} cells, scaled",
                "exact_seconds": exact_s,
                "exact_speedup": tl_total / exact_s,
                "attribution_seconds": attr_s,
                "attribution_speedup": tl_total / attr_s,
                "max_abs_diff_vs_tl": diff,
                "cells_compared": len(tl_values),
                "attribution_vs_exact_corr": float(
                    torch.corrcoef(torch.stack([attr.values.flatten(), exact.values.flatten()]))[
                        0, 1
                    ]
                ),
            }
        )
        print(rows[-1], flush=True)
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / ("patching-quick.json" if args.quick else "patching.json")
    path.write_text(
        json.dumps(
            {"batch": B, "layers": LAYERS, "threads": torch.get_num_threads(), "rows": rows},
            indent=2,
        )
    )
    print(
        f"\n{'tokens':>6} {'TL s':>8} {'exact s':>8} {'x':>6} {'attr s':>7} {'x':>7} {'max|diff|':>10} {'attr~exact r':>12}"
    )
    for r in rows:
        print(
            f"{r['tokens']:>6} {r['tl_seconds']:8.1f} {r['exact_seconds']:8.2f} {r['exact_speedup']:6.1f} "
            f"{r['attribution_seconds']:7.2f} {r['attribution_speedup']:7.0f} {r['max_abs_diff_vs_tl']:10.2e} "
            f"{r['attribution_vs_exact_corr']:12.3f}"
        )
    print(f"written to {path}")


if __name__ == "__main__":
    main()
