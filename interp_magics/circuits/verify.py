"""Edge attribution checked by exact edge patches, as ``verify_top`` checks node attribution.

The top edges by |score| and a seeded random sample of the others are patched exactly (the
receiver reads the sender's corrupted output, everything else clean; one stacked forward
serves many edges) and compared with their scores: signs, sizes, the largest error and the
Spearman rank correlation. The random edges show the errors where attribution saw little,
which the top edges cannot.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from ..patching.inputs import PatchingError
from ..patching.uncertainty import t_interval
from .runs import Cell, Reference, Setup, run_cells

if TYPE_CHECKING:
    import pandas as pd


@dataclass(repr=False)
class EdgeVerification:
    """Attribution against exact edge patching on chosen edges.

    ``rows`` holds, per edge, ``sender``, ``receiver``, ``group`` ("top" or "random"),
    ``attribution`` and ``exact`` (batch-mean metric changes) and the exact change's
    t-interval (``exact_low``, ``exact_high``). ``spearman``: rank correlation per group and
    over all checked edges.
    """

    rows: list[dict[str, Any]]
    spearman: dict[str, float]
    sign_agreement: dict[str, float]
    max_abs_error: dict[str, float]

    def to_dataframe(self) -> pd.DataFrame:
        """Return one row per checked edge."""
        import pandas as pd

        return pd.DataFrame(self.rows)

    def describe(self) -> str:
        """Return one line per group: signs, largest error, rank correlation."""
        lines = ["EdgeVerification: attribution vs exact edge patching"]
        for group in ("top", "random", "all"):
            if group not in self.spearman:
                continue
            n = sum(1 for r in self.rows if group == "all" or r["group"] == group)
            lines.append(
                f"{group} ({n} edges): signs agree on {self.sign_agreement[group]:.0%}, largest "
                f"error {self.max_abs_error[group]:.4g}, Spearman {self.spearman[group]:.2f}"
            )
        return "\n".join(lines)

    def __repr__(self) -> str:
        return self.describe()


def verify_edges(
    setup: Setup,
    clean: Reference,
    delta: torch.Tensor,
    scores: torch.Tensor,
    ranked: list[tuple[int, int]],
    budget: tuple[int, int, int],
) -> EdgeVerification:
    """Return the exact patches of the top and random edges (``budget``: top, random, seed)."""
    from scipy import stats

    top, random, seed = budget
    if isinstance(top, bool) or isinstance(random, bool) or int(top) < 0 or int(random) < 0:
        raise PatchingError(f"top and random must be numbers of edges >= 0, got {top}, {random}")
    chosen = ranked[: int(top)]
    rest = ranked[int(top) :]
    gen = torch.Generator().manual_seed(seed)
    pick = torch.randperm(len(rest), generator=gen)[: int(random)].tolist()
    sample = [rest[i] for i in sorted(pick)]
    edges = chosen + sample
    groups = ["top"] * len(chosen) + ["random"] * len(sample)
    per_example = run_cells(
        setup, clean, delta, [Cell(s, (r,)) for s, r in edges], desc="verifying edges"
    )
    change = (per_example - clean.values).double().numpy()
    low, high = t_interval(change)
    graph = setup.graph
    rows = [
        {
            "sender": graph.senders[s].name,
            "receiver": graph.receivers[r].name,
            "group": g,
            "attribution": float(scores[s, r]),
            "exact": float(change[i].mean()),
            "exact_low": float(low[i]),
            "exact_high": float(high[i]),
        }
        for i, ((s, r), g) in enumerate(zip(edges, groups, strict=True))
    ]
    spearman, signs, errors = {}, {}, {}
    for group in ("top", "random", "all"):
        sel = [row for row in rows if group == "all" or row["group"] == group]
        if not sel:
            continue
        a = torch.tensor([row["attribution"] for row in sel], dtype=torch.float64)
        e = torch.tensor([row["exact"] for row in sel], dtype=torch.float64)
        varies = len(sel) > 2 and bool((a != a[0]).any() and (e != e[0]).any())
        spearman[group] = float(stats.spearmanr(a, e).statistic) if varies else float("nan")
        scale = max(float(e.abs().max()), 1e-12)
        tiny = 1e-6 * scale
        same = (torch.sign(a) == torch.sign(e)) | ((a.abs() <= tiny) & (e.abs() <= tiny))
        signs[group] = float(same.double().mean())
        errors[group] = float((a - e).abs().max())
    return EdgeVerification(rows, spearman, signs, errors)
