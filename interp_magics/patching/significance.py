"""A sweep's per-cell statistics as result fields, and the checks that come with them.

:mod:`.uncertainty` computes intervals and tests from plain arrays; this module feeds it a
sweep's per-example changes, maps the intervals onto the scale of the result's values, says how
the tests were made, and warns when normalised values divide by a gap that is mostly noise.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from .inputs import PatchingError
from .result import PatchResult
from .uncertainty import StatOptions, cell_stats, check_options, describe_stats, on_value_scale


def stat_options(alpha: float, correction: str, flips: int, seed: int) -> StatOptions:
    """Return the per-cell test options, checked before any run."""
    try:
        check_options(correction, alpha, flips)
    except ValueError as e:
        raise PatchingError(str(e)) from None
    return StatOptions(alpha=float(alpha), correction=correction, flips=int(flips), seed=seed)


def small_gap(gap: torch.Tensor) -> str:
    """Return a warning when the mean clean-corrupted gap is under 3 standard errors from 0."""
    n = gap.numel()
    if n < 2:
        return ""
    mean, se = float(gap.mean()), float(gap.std()) / n**0.5
    if se == 0 or abs(mean) >= 3 * se:
        return ""
    return (
        f"the clean-corrupted gap ({mean:.4g}) is only {abs(mean) / se:.1f} standard errors from "
        "0, so normalised values divide by a noisy number and can be far outside 0..1; read the "
        "raw values and intervals, use more examples, or a corruption that changes the metric more"
    )


def cell_fields(
    per_example: torch.Tensor,
    base: torch.Tensor,
    *,
    offset: float,
    factor: float,
    options: StatOptions,
) -> dict[str, Any]:
    """Return a result's per-cell intervals, tests and their description, as result fields.

    The changes tested are each example's metric minus its own unpatched metric (``base``);
    ``(change + offset) * factor`` is the scale of the result's values.
    """
    changes = (per_example - base.to(per_example.dtype)).double().numpy()
    scale = float(base.abs().max()) if base.numel() else None
    stats = cell_stats(
        changes,
        level=1 - options.alpha,
        correction=options.correction,
        flips=options.flips,
        seed=options.seed,
        scale=scale,
    )
    low, high = on_value_scale(stats, offset, factor)

    def tensor(a: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(a)).float()

    return {
        "ci_low": tensor(low),
        "ci_high": tensor(high),
        "p_values": tensor(stats.p),
        "p_corrected": tensor(stats.p_corrected),
        "significant": torch.from_numpy(stats.p_corrected < options.alpha),
        "alpha": options.alpha,
        "correction": options.correction,
        "stats_note": describe_stats(stats, int(per_example.shape[-1]), options.alpha),
    }


def tests_for_ledger(result: PatchResult) -> dict[str, Any]:
    """Return the ledger fields of a result's per-cell tests: how many, and their correction."""
    assert result.p_values is not None
    return {
        "p_values": int(result.p_values.numel()),
        "corrected": result.correction != "none",
        "correction": None if result.correction == "none" else result.correction,
    }
