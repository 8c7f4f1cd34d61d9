"""Steering sweeps: a metric under ``add(vector * coef)`` for each coefficient, beside random
directions of the same norm.

Each coefficient runs the prompts once with the vector and once with each random direction
(drawn from a seeded ``torch.Generator``, normal then scaled to the vector's norm); coefficient
0 is the unsteered run every change is measured from. Every prompt is scored by the metric
(a :mod:`interp_magics.patching.metrics` metric or any function of the logits), and the changes
go through :func:`~.statistics.dose_response`. With ``generate=``, each prompt is also
continued at each coefficient (the vector only) so the text can be read side by side.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from ..core import events
from ..core.traced import unwrap
from ..intervene import edit as edits
from ..intervene.engine import intervene, intervention_record
from ..patching.metrics import CallableMetric, Metric, as_metric
from .inputs import Prompts, SteeringError, as_prompts
from .result import SweepResult
from .statistics import dose_response
from .vector import SteeringVector, one_site


def sweep(
    model: Any,
    vector: SteeringVector,
    prompts: Any,
    metric: Any,
    *,
    coefficients: Sequence[float] = (-8, -4, -2, 0, 2, 4, 8),
    controls: int = 5,
    seed: int = 0,
    positions: Any = None,
    generate: dict[str, Any] | None = None,
    tokenizer: Any = None,
    alpha: float = 0.05,
    progress: bool = True,
    batch_size: int = 32,
) -> SweepResult:
    """Return the dose-response of ``metric`` to steering along ``vector``, with controls.

    Args:
        model: a HuggingFace-style causal LM (dispatched and nnsight-wrapped ones too).
        vector: a :class:`SteeringVector` (from :func:`vector`, or built from a tensor and a
            site: ``SteeringVector(direction, "resid_post.3")``).
        prompts: texts (with ``tokenizer`` or the model's ``.tokenizer``), token ids ``[n, T]``,
            lists of ids or a tokenizer output. Texts of unequal length are left-padded and run
            with position ids counted over real tokens.
        metric: ``patching.logit_diff(...)``, ``logprob(...)``, ``kl_to_clean()`` (KL from the
            unsteered run), or any function ``logits [n, T, V] -> [n]`` (or
            ``(logits, attention_mask) -> [n]``); higher or lower is whatever it measures.
        coefficients: multiples of the vector to add (0 is added when missing: the baseline).
        controls: random directions of the vector's norm (at least 2).
        seed: seeds the random directions.
        positions: token positions to steer (None: all; see ``intervene.edit``).
        generate: keyword arguments for ``model.generate`` (e.g. ``dict(max_new_tokens=20)``);
            greedy unless they say otherwise. The generated text (or ids, without a tokenizer)
            of each prompt at each coefficient is in ``result.generations``.
        tokenizer: for text prompts and decoding generations.
        alpha: level of the tests and 1 - coverage of the intervals.
        progress: show a progress bar (tqdm).
        batch_size: prompts per forward.
    """
    coefs = _check(vector, coefficients, controls, alpha, generate)
    base = unwrap(model)
    tok = tokenizer if tokenizer is not None else getattr(base, "tokenizer", None)
    batch = as_prompts(prompts, tok, "prompts", padding="left")
    scorer = as_metric(metric)
    scorer.check_batch(len(batch))
    one_site(model, vector.site)
    # binding checks the site, the vector's width and the positions, before any forward
    intervene(model, [vector.edit(1.0, positions=positions)], record=False)
    directions = random_directions(controls, vector.direction, seed)
    scores, control_scores = _all_scores(
        model, batch, scorer, vector, directions, coefs, positions, batch_size, progress
    )
    baseline = scores[coefs.index(0.0)]
    stats = dose_response(
        np.asarray(coefs), scores - baseline, control_scores - baseline, alpha=alpha
    )
    generations = None
    if generate is not None:
        generations = _generations(model, batch, vector, coefs, positions, generate, tok)
    events.emit(intervention_record([vector.edit(1.0)], baseline="random"))
    return SweepResult(
        coefficients=np.asarray(coefs),
        scores=scores,
        control_scores=control_scores,
        control_directions=directions,
        stats=stats,
        metric=scorer.name,
        site=vector.site,
        method=vector.method,
        norm=vector.norm,
        seed=seed,
        positions=positions,
        prompts=batch.labels,
        model=type(base).__name__,
        generations=generations,
    )


def _check(
    vector: Any, coefficients: Sequence[float], controls: Any, alpha: float, generate: Any
) -> list[float]:
    """Return the sorted coefficients (0 added) once every option of a sweep is usable."""
    if not isinstance(vector, SteeringVector):
        raise SteeringError(
            "vector must be a SteeringVector: steering.vector(model, positive, negative, site), "
            "or SteeringVector(direction, 'resid_post.3') for a direction you have"
        )
    if isinstance(controls, bool) or not isinstance(controls, int) or controls < 2:
        raise SteeringError(
            f"controls must be at least 2 random directions (their spread is the band), not "
            f"{controls!r}"
        )
    if not 0 < alpha < 1:
        raise SteeringError(f"alpha must be between 0 and 1, not {alpha}")
    if generate is not None and not isinstance(generate, dict):
        raise SteeringError(
            "generate must be a dict of generate() arguments, e.g. {'max_new_tokens': 20}"
        )
    return _coefficients(coefficients)


def _all_scores(
    model: Any,
    batch: Prompts,
    metric: Metric,
    vector: SteeringVector,
    directions: torch.Tensor,
    coefs: list[float],
    positions: Any,
    batch_size: int,
    progress: bool,
) -> tuple[np.ndarray, np.ndarray]:
    """Return the metric ``[C, n]`` under the vector and ``[K, C, n]`` under each random
    direction; coefficient 0 is the one unsteered pass."""
    from tqdm.auto import tqdm

    controls = int(directions.shape[0])
    baseline, clean = _run(model, batch, metric, None, batch_size, None)
    scores = np.empty((len(coefs), len(batch)))
    control_scores = np.empty((controls, len(coefs), len(batch)))
    zero = coefs.index(0.0)
    scores[zero] = baseline
    control_scores[:, zero] = baseline
    runs = [(i, k) for i, c in enumerate(coefs) if c != 0 for k in range(-1, controls)]
    for i, k in tqdm(runs, desc="steering sweep", disable=not progress, leave=False):
        direction = vector.direction if k < 0 else directions[k]
        add = edits.add(vector.site, direction, coefs[i], positions=positions)
        values, _ = _run(model, batch, metric, add, batch_size, clean)
        if k < 0:
            scores[i] = values
        else:
            control_scores[k, i] = values
    return scores, control_scores


def random_directions(k: int, direction: torch.Tensor, seed: int) -> torch.Tensor:
    """Return ``k`` random directions ``[k, d]`` (seeded normal draws) of ``direction``'s norm."""
    g = torch.Generator().manual_seed(seed)
    draws = torch.randn(k, direction.numel(), generator=g, dtype=torch.float64)
    norm = direction.double().norm()
    scaled = draws / draws.norm(dim=1, keepdim=True) * norm
    out: torch.Tensor = scaled.to(direction.dtype).reshape(k, *direction.shape)
    return out


def _coefficients(coefficients: Sequence[float]) -> list[float]:
    try:
        values = [float(c) for c in coefficients]
    except (TypeError, ValueError):
        raise SteeringError(
            f"coefficients must be numbers, e.g. (-4, -2, 0, 2, 4); got {coefficients!r}"
        ) from None
    if not values or not all(math.isfinite(c) for c in values):
        raise SteeringError(f"coefficients must be finite numbers, got {coefficients!r}")
    if len(set(values)) != len(values):
        raise SteeringError(f"coefficients repeat a value: {values}")
    return sorted({*values, 0.0})


def _run(
    model: Any,
    batch: Prompts,
    metric: Metric,
    add: Any,
    batch_size: int,
    clean: torch.Tensor | None,
) -> tuple[np.ndarray, torch.Tensor]:
    """Return the metric per prompt (and the log-probabilities at the scored positions) of one
    pass over the prompts, with ``add`` applied (None: unsteered)."""
    out: list[torch.Tensor] = []
    logprobs: list[torch.Tensor] = []
    for start in range(0, len(batch), batch_size):
        chunk = batch.batch(start, start + batch_size)
        with torch.no_grad():
            result = intervene(model, [add] if add is not None else [], record=False).run(chunk)
        logits = getattr(result, "logits", None)
        if not isinstance(logits, torch.Tensor):
            raise SteeringError(f"{type(unwrap(model)).__name__} returned no logits to score")
        part_clean = None if clean is None else clean[start : start + batch_size]
        values, lp = _score(
            metric, logits.detach().float().cpu(), chunk["attention_mask"], part_clean
        )
        out.append(values)
        logprobs.append(lp)
    return torch.cat(out).numpy().astype(np.float64), torch.cat(logprobs)


def _score(
    metric: Metric, logits: torch.Tensor, mask: torch.Tensor, clean: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Return the metric per example and the log-probabilities at its scored positions."""
    n = logits.shape[0]
    examples = torch.arange(n)
    if isinstance(metric, CallableMetric):
        metric.mask_ = mask.cpu()  # the function sees the batch's own mask
        values = metric.score(logits, examples, None)
        return values.float(), logits[:, -1].log_softmax(-1)
    metric.check_vocab(int(logits.shape[-1]))
    picked = logits[examples, metric.resolve_positions(mask.cpu())]
    logprobs = picked.log_softmax(-1)
    rows = metric.rows()
    scored = picked if rows is None else picked[:, rows]
    if clean is None and metric.needs_clean_distribution():
        clean = logprobs  # the unsteered run is its own reference (KL 0)
    return metric.score(scored, examples, clean).float(), logprobs


def _generations(
    model: Any,
    batch: Prompts,
    vector: SteeringVector,
    coefs: list[float],
    positions: Any,
    generate: dict[str, Any],
    tokenizer: Any,
) -> Any:
    """Return a DataFrame, prompt x coefficient, of each prompt's continuation."""
    import pandas as pd

    base = unwrap(model)
    pad = getattr(tokenizer, "pad_token_id", None)
    if not isinstance(pad, int):
        pad = getattr(tokenizer, "eos_token_id", None)
    options = {"do_sample": False, "pad_token_id": pad if isinstance(pad, int) else 0, **generate}
    length = int(batch.ids.shape[1])
    columns: dict[float, list[Any]] = {}
    for coef in coefs:
        steer = [vector.edit(coef, positions=positions)] if coef != 0 else []
        with torch.no_grad(), intervene(model, steer, record=False):
            out = base.generate(input_ids=batch.ids, attention_mask=batch.mask, **options)
        sequences = out if isinstance(out, torch.Tensor) else out.sequences
        new = sequences[:, length:].cpu()
        if tokenizer is not None and hasattr(tokenizer, "decode"):
            columns[coef] = [tokenizer.decode(row, skip_special_tokens=True) for row in new]
        else:
            columns[coef] = [row.tolist() for row in new]
    frame = pd.DataFrame(columns, index=pd.Index(batch.labels, name="prompt"))
    frame.columns.name = "coefficient"
    return frame
