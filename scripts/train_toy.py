"""Train the toy induction model from its recipe and write the weights the package ships.

    .venv/bin/python scripts/train_toy.py   # writes interp_magics/data/toy_induction.safetensors
    .venv/bin/python scripts/train_toy.py --seed 3 --out /tmp/toy.safetensors

Prints the loss curve, the in-context accuracy on the repeated half and each head's
previous-token and induction scores, so a retrained model can be compared with the shipped one.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace
from pathlib import Path

import torch

from interp_magics import toy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=toy.Recipe.seed)
    parser.add_argument("--steps", type=int, default=toy.Recipe.steps)
    parser.add_argument("--out", type=Path, default=toy.WEIGHTS)
    args = parser.parse_args()
    torch.set_num_threads(1)  # the same arithmetic on every machine size
    recipe = replace(toy.Recipe(), seed=args.seed, steps=args.steps)
    start = time.perf_counter()
    model, losses = toy.train(recipe, progress=True)
    print(f"trained in {time.perf_counter() - start:.0f} s; recipe {recipe}")
    step = max(1, len(losses) // 10)
    print("loss every", step, "steps:", " ".join(f"{x:.3f}" for x in losses[::step]))
    ids = toy.repeated_sequences(200, seed=1234)
    acc = toy.induction_accuracy(model, ids)
    print(f"accuracy: first half {acc['first_half']:.3f}, repeated half {acc['repeated_half']:.3f}")
    for name, scores in toy.head_scores(model, ids).items():
        print(f"{name} scores [layer, head]:")
        print(scores.numpy().round(3))
    path = toy.save(model, args.out, recipe)
    print(f"wrote {path} ({path.stat().st_size / 1024:.0f} KiB)")


if __name__ == "__main__":
    main()
