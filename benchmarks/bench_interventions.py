"""Interventions during generation: ``generate`` under ``intervene`` against plain ``generate``
and against the hand-written forward hook a user would otherwise write, as ratios in one run.

A 6-layer GPT-2 (d_model 384, random weights), 4 prompts of 32 tokens, 32 new tokens each,
greedy, with the KV cache. The edit adds a steering vector (times 4) to block 3's output at
every position of every forward; the hand-written hook does the same. Rounds are interleaved
and medians compared. Goal: at most 1.05x plain ``generate``. The generated tokens of the
hand-written hook and of ``intervene`` are compared (they must be equal).

    .venv/bin/python benchmarks/bench_interventions.py
"""

from __future__ import annotations

import json
import os
import statistics
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import torch

RESULTS = Path(__file__).parent / "results"


def main() -> None:
    import argparse

    from interp_magics import testing
    from interp_magics.intervene import edit, intervene

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model = testing.gpt2(n_layer=6, n_embd=384, n_head=6, vocab_size=4000).eval()
    ids = torch.randint(1, 4000, (4, 32), generator=torch.Generator().manual_seed(0))
    steer = torch.randn(384, generator=torch.Generator().manual_seed(1))
    settings = dict(max_new_tokens=32, do_sample=False, pad_token_id=0, min_new_tokens=32)

    def plain() -> torch.Tensor:
        with torch.no_grad():
            return model.generate(ids, **settings)

    def by_hand() -> torch.Tensor:
        def hook(mod, args, out):  # type: ignore[no-untyped-def]
            if isinstance(out, torch.Tensor):
                return out + 4 * steer
            return (out[0] + 4 * steer, *out[1:])

        handle = model.transformer.h[3].register_forward_hook(hook)
        try:
            return plain()
        finally:
            handle.remove()

    def ours() -> torch.Tensor:
        with intervene(model, [edit.add("resid_post.3", steer, coef=4.0)], record=False):
            return plain()

    same = torch.equal(by_hand(), ours())
    times: dict[str, list[float]] = {"plain": [], "hook": [], "intervene": []}
    for _ in range(args.rounds):
        for name, fn in (("plain", plain), ("hook", by_hand), ("intervene", ours)):
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    med = {k: statistics.median(v) for k, v in times.items()}
    report = {
        "plain generate (s)": med["plain"],
        "hand-written hook (s)": med["hook"],
        "intervene (s)": med["intervene"],
        "intervene / plain generate": med["intervene"] / med["plain"],
        "intervene / hand-written hook": med["intervene"] / med["hook"],
        "same tokens as the hand-written hook": float(same),
    }
    for k, v in report.items():
        print(f"{k:<40} {v:.4g}")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "bench_interventions.json").write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
