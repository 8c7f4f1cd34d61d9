"""Dispatched and nnsight models: our capture and patching against the engines' own runs.

Model: 6-layer GPT-2 (d_model 256, 4 heads, vocabulary 4,000, random weights), batch 8 x 24
tokens, dispatched by accelerate with blocks 1 and 4, the embedding and the unembedding
offloaded to disk and the rest on the CPU (the machine's only device here; with GPUs the blocks
would spread over them).

- accelerate forward: ``model(ids)`` on the dispatched model (weights loaded from disk for each
  forward by accelerate's hooks), against the same forward inside ``capture(model, "resid_post")``.
- exact patching: ``activation_patch(..., site="resid_pre")`` over every (layer, position) cell,
  against a lean loop of accelerate forwards, one per cell, with a pre-hook that writes the
  clean value (what a researcher writes by hand); values are compared cell by cell.
- nnsight: a plain ``NNsight`` trace saving every block's output, against
  ``capture(nnsight_model, "resid_post").run(ids)`` (the same saves through our plan).

Rounds are interleaved; medians and the median of per-round ratios are reported.

    .venv/bin/python benchmarks/bench_dispatch.py            # 5 rounds
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
import warnings
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import torch
from bench_metric_functions import LAYERS, VOCAB, A, B, T, W, inputs  # the same model and data

from interp_magics import capture, patching, testing

RESULTS = Path(__file__).parent / "results"


def dispatched(folder: str):
    """Return the benchmark model dispatched over the CPU and disk."""
    from accelerate import dispatch_model

    model = testing.gpt2(n_layer=LAYERS, n_embd=256, n_head=4, vocab_size=VOCAB)
    dm = {"transformer.wte": "disk", "transformer.wpe": "cpu", "transformer.drop": "cpu"}
    dm |= {f"transformer.h.{i}": "disk" if i in (1, 4) else "cpu" for i in range(LAYERS)}
    dm |= {"transformer.ln_f": "cpu", "lm_head": "disk"}
    return dispatch_model(model, device_map=dm, offload_dir=folder)


def timed(fn) -> tuple[float, object]:
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


@torch.no_grad()
def lean_loop(model, clean, corrupt) -> torch.Tensor:
    """Return the ``[layer, pos]`` mean logit difference of one forward per patched cell."""
    blocks = model.transformer.h
    kept: dict[int, torch.Tensor] = {}
    handles = [
        b.register_forward_pre_hook(lambda m, a, i=i: kept.__setitem__(i, a[0].clone()))
        for i, b in enumerate(blocks)
    ]
    model(clean)
    for h in handles:
        h.remove()
    out = torch.zeros(LAYERS, T)
    for layer in range(LAYERS):
        for pos in range(T):

            def pre(m, args, layer=layer, pos=pos):
                x = args[0].clone()
                x[:, pos] = kept[layer][:, pos].to(x.device)
                return (x, *args[1:])

            handle = blocks[layer].register_forward_pre_hook(pre)
            logits = model(corrupt).logits
            handle.remove()
            out[layer, pos] = (logits[:, -1, A] - logits[:, -1, W]).mean()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    clean, corrupt = inputs()
    metric = patching.logit_diff(torch.full((B,), A), torch.full((B,), W))
    import nnsight

    rows: dict[str, list[float]] = {k: [] for k in ("fwd", "cap", "loop", "ours", "nns", "nns_cap")}
    with tempfile.TemporaryDirectory() as folder:
        model = dispatched(folder)
        nn_model = nnsight.NNsight(
            testing.gpt2(n_layer=LAYERS, n_embd=256, n_head=4, vocab_size=VOCAB)
        )
        blocks = nn_model.transformer.h
        max_err = 0.0
        for _ in range(args.rounds):
            with torch.no_grad():
                rows["fwd"].append(timed(lambda: model(clean))[0])

                def captured():
                    with capture(model, "resid_post") as acts:
                        model(clean)
                    return acts

                rows["cap"].append(timed(captured)[0])
            t_loop, ref = timed(lambda: lean_loop(model, clean, corrupt))
            t_ours, res = timed(
                lambda: patching.activation_patch(
                    model, clean, corrupt, metric, site="resid_pre", progress=False, flips=999
                )
            )
            rows["loop"].append(t_loop)
            rows["ours"].append(t_ours)
            max_err = max(max_err, float((res.raw - ref).abs().max()))

            def plain_trace():
                saved = []
                with torch.no_grad(), nn_model.trace(clean):
                    for i in range(LAYERS):
                        saved.append(blocks[i].output.save())
                return saved

            rows["nns"].append(timed(plain_trace)[0])
            with torch.no_grad():
                rows["nns_cap"].append(timed(lambda: capture(nn_model, "resid_post").run(clean))[0])

    def ratio(a: str, b: str) -> float:
        return statistics.median(x / y for x, y in zip(rows[a], rows[b], strict=True))

    med = {k: statistics.median(v) for k, v in rows.items()}
    cells = LAYERS * T
    report = {
        "accelerate forward (s)": med["fwd"],
        "capture resid_post forward / accelerate forward": ratio("cap", "fwd"),
        "lean loop of accelerate forwards (s)": med["loop"],
        "activation_patch exact (s)": med["ours"],
        "activation_patch / lean loop": ratio("ours", "loop"),
        "activation_patch per cell / accelerate forward": med["ours"] / cells / med["fwd"],
        "max |ours - lean loop|": max_err,
        "nnsight trace with saves (s)": med["nns"],
        "capture(nnsight).run / nnsight trace": ratio("nns_cap", "nns"),
    }
    for k, v in report.items():
        print(f"{k:<52} {v:.4g}")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "bench_dispatch.json").write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
