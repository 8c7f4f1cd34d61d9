"""Faithfulness: how much of the model's behaviour a circuit carries on its own.

Every edge *outside* the circuit is ablated: its receiver reads the sender's ablated value
instead of the sender's actual output in that forward (:class:`~.edges.LiveAblation`); edges
inside the circuit carry the actual outputs. The metric is then compared with the full model
and with everything ablated (the empty circuit), per example:

    faithfulness = mean(m(circuit) - m(empty)) / mean(m(full) - m(empty))

so the empty circuit scores 0 and the full graph 1 (both exactly, by construction). The
*complement* is the same fraction with the circuit's own edges ablated and every other edge
kept: a complete circuit leaves the rest of the model with nothing to do, near 0.

Ablations: ``"mean"`` (each sender's mean output over the batch at each position, real tokens
only), ``"resample"`` (another example's output, over ``resamples`` seeded derangements,
averaged per example), ``"corrupt"`` (the sender's output on the corrupted prompt). With
``"resample"`` the everything-ablated run is each example run as its donor, so a metric that
reads the same answer tokens for every example has the same batch mean there as the full
model and leaves nothing to normalise by: give per-example answers.

The interval is a delta-method t-interval for a ratio of two paired means: with ``a_i`` and
``b_i`` the numerator and denominator terms, ``f = mean(a) / mean(b)`` and its standard error
is ``sd(a_i - f b_i) / (sqrt(n) |mean(b)|)`` (Student t with ``n - 1`` degrees of freedom).
It says how well the batch pins down the expected fraction on data like it; it is unreliable
when the denominator's mean is within a few standard errors of 0, and the result says so.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from ..core import events
from ..core.records import FaithfulnessRecord
from ..patching.corruption import resample_donors
from ..patching.inputs import PatchingError
from ..patching.sweep import BATCH_TOKENS
from .circuit import Circuit
from .edges import LiveAblation, edited
from .graph import CircuitError
from .runs import Reference, Setup, prepare, reference

if TYPE_CHECKING:
    import pandas as pd

#: Memory the ablated values of one stacked forward may take (senders x rows x tokens x d).
LIVE_BYTES = 512 * 2**20
CONDITIONS = ("full", "empty", "circuit", "complement")


@dataclass(repr=False)
class Faithfulness:
    """A circuit's share of the model's behaviour, and the share left without it.

    ``faithfulness`` and ``complement`` are fractions of the full model's metric above the
    everything-ablated baseline, each with its ``level`` t-interval (``ci``,
    ``complement_ci``). ``per_example`` holds the metric of every example under each condition
    (``full``, ``empty``, ``circuit``, ``complement``).
    """

    faithfulness: float
    ci: tuple[float, float]
    complement: float
    complement_ci: tuple[float, float]
    per_example: dict[str, torch.Tensor]
    circuit: Circuit
    ablation: str
    metric: str
    level: float
    notes: list[str] = field(default_factory=list)

    def to_dataframe(self) -> pd.DataFrame:
        """Return one row per measure (circuit kept, circuit removed) with its interval."""
        import pandas as pd

        means = {k: float(v.mean()) for k, v in self.per_example.items()}
        return pd.DataFrame(
            [
                {
                    "measure": "faithfulness",
                    "kept": "circuit",
                    "value": self.faithfulness,
                    "ci_low": self.ci[0],
                    "ci_high": self.ci[1],
                    "metric_mean": means["circuit"],
                },
                {
                    "measure": "complement",
                    "kept": "everything but the circuit",
                    "value": self.complement,
                    "ci_low": self.complement_ci[0],
                    "ci_high": self.complement_ci[1],
                    "metric_mean": means["complement"],
                },
            ]
        ).assign(
            full_metric=means["full"],
            empty_metric=means["empty"],
            ablation=self.ablation,
            edges=len(self.circuit),
            total_edges=self.circuit.graph.n_edges,
        )

    def describe(self) -> str:
        """Return the two fractions with their intervals, in words."""
        n = len(self.circuit)
        total = self.circuit.graph.n_edges
        pct = f"{self.level:.0%}"
        lines = [
            f"Faithfulness of a {n}-edge circuit ({n / max(total, 1):.1%} of {total} edges), "
            f"{self.ablation} ablation, metric: {self.metric}",
            f"the circuit alone recovers {self.faithfulness:.3f} of the full model's metric "
            f"({pct} CI [{self.ci[0]:.3f}, {self.ci[1]:.3f}]; 0 = everything ablated, 1 = full)",
            f"without the circuit the rest recovers {self.complement:.3f} ({pct} CI "
            f"[{self.complement_ci[0]:.3f}, {self.complement_ci[1]:.3f}]); a complete circuit "
            "leaves it near 0",
        ]
        return "\n".join(lines + self.notes)

    def __repr__(self) -> str:
        return self.describe()

    def _repr_png_(self) -> bytes:
        import io

        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        fig = Figure(figsize=(4.2, 2.6), dpi=100)
        FigureCanvasAgg(fig)
        ax = fig.add_subplot()
        vals = [self.faithfulness, self.complement]
        lows = [self.ci[0], self.complement_ci[0]]
        highs = [self.ci[1], self.complement_ci[1]]
        err = np.array(
            [
                [v - lo for v, lo in zip(vals, lows, strict=True)],
                [hi - v for v, hi in zip(vals, highs, strict=True)],
            ]
        )
        ax.bar(["circuit", "complement"], vals, yerr=err, color=["#2166ac", "#b2182b"], capsize=4)
        ax.axhline(1.0, color="grey", linewidth=0.8, linestyle="--")
        ax.axhline(0.0, color="black", linewidth=0.8)
        ax.set_ylabel("fraction of full metric")
        ax.set_title(f"{len(self.circuit)} edges, {self.ablation} ablation", fontsize=9)
        fig.tight_layout()
        buf = io.BytesIO()
        fig.savefig(buf, format="png")
        return buf.getvalue()


def faithfulness(
    model: Any,
    circuit: Circuit | Any,
    clean: Any,
    corrupt: Any = None,
    metric: Any = None,
    *,
    ablation: str = "mean",
    resamples: int = 1,
    seed: int = 0,
    level: float = 0.95,
    batch_tokens: int = BATCH_TOKENS,
    progress: bool = True,
) -> Faithfulness:
    """Return the faithfulness of ``circuit`` and of its complement, with t-intervals.

    Args:
        model: a HuggingFace GPT-2, GPT-NeoX/Pythia or Llama-family causal LM.
        circuit: a :class:`Circuit` (e.g. ``scores.circuit(top_k=50)``) or edges as pairs
            ``(sender, receiver)`` or ``"sender->receiver"`` strings.
        clean: the prompts the behaviour is measured on; corrupt: counterfactual prompts (only
            for ``ablation="corrupt"``).
        metric: ``patching.logit_diff(...)``, ``logprob(...)``, ``kl_to_clean()`` or a function
            of the logits.
        ablation: ``"mean"``, ``"resample"`` or ``"corrupt"`` (see the module docstring).
        resamples: derangements averaged with ``"resample"`` (drawn with ``seed``).
        level: coverage of the intervals.
    """
    if ablation not in ("mean", "resample", "corrupt"):
        raise PatchingError(f"ablation must be 'mean', 'resample' or 'corrupt', not {ablation!r}")
    if ablation != "corrupt" and corrupt is not None:
        raise PatchingError(f"{ablation} ablation uses no corrupted prompts: drop corrupt")
    if isinstance(resamples, bool) or int(resamples) < 1:
        raise PatchingError(f"resamples must be a positive number of derangements, got {resamples}")
    if not 0 < level < 1:
        raise PatchingError(f"level must be between 0 and 1 (e.g. 0.95), got {level}")
    setup = prepare(
        model,
        clean,
        corrupt,
        metric,
        need_corrupt=ablation == "corrupt",
        batch_tokens=batch_tokens,
        progress=progress,
    )
    chosen = _as_circuit(setup, circuit)
    if ablation == "resample" and setup.clean["input_ids"].shape[0] < 2:
        raise PatchingError("resample ablation takes values from other examples: give at least 2")
    clean_run = reference(setup, setup.clean, keep_logprobs=setup.metric.needs_clean_distribution())
    draws = _ablated(setup, clean_run, ablation, int(resamples), seed)
    per = _conditions(setup, clean_run, draws, chosen.mask)
    frac, ci = ratio_ci(per["circuit"] - per["empty"], per["full"] - per["empty"], level)
    comp, comp_ci = ratio_ci(per["complement"] - per["empty"], per["full"] - per["empty"], level)
    notes = []
    gap = (per["full"] - per["empty"]).double()
    if gap.numel() > 1 and float(gap.mean().abs()) < 3 * float(gap.std()) / math.sqrt(len(gap)):
        notes.append(
            "the full model's metric is within 3 standard errors of the everything-ablated "
            "baseline, so both fractions divide by noise; use more examples or another metric"
        )
    what = ablation + (
        f" ({int(resamples)} derangements, seed {seed})" if ablation == "resample" else ""
    )
    events.emit(
        FaithfulnessRecord(
            edges=len(chosen.edges),
            ablation=ablation,
            metric=setup.metric.name,
            faithfulness=float(frac),
            completeness=True,  # the complement (the circuit removed) is always run
        )
    )
    return Faithfulness(
        faithfulness=frac,
        ci=ci,
        complement=comp,
        complement_ci=comp_ci,
        per_example=per,
        circuit=chosen,
        ablation=what,
        metric=setup.metric.name,
        level=level,
        notes=notes,
    )


def ratio_ci(a: torch.Tensor, b: torch.Tensor, level: float) -> tuple[float, tuple[float, float]]:
    """Return ``mean(a) / mean(b)`` and its delta-method t-interval (paired examples)."""
    from scipy import stats

    x, y = a.double().numpy(), b.double().numpy()
    n = len(x)
    my = float(y.mean())
    if my == 0:
        return float("nan"), (float("nan"), float("nan"))
    f = float(x.mean()) / my
    if n < 2:
        return f, (-math.inf, math.inf)
    resid = x - f * y
    se = float(resid.std(ddof=1)) / (math.sqrt(n) * abs(my))
    half = float(stats.t.ppf(0.5 + level / 2, n - 1)) * se
    return f, (f - half, f + half)


def _as_circuit(setup: Setup, circuit: Any) -> Circuit:
    """Return ``circuit`` as a :class:`Circuit` of this model's graph."""
    graph = setup.graph
    if isinstance(circuit, Circuit):
        if circuit.graph.anatomy != graph.anatomy:
            raise CircuitError(
                "this circuit belongs to another model's graph (its nodes differ); extract it "
                "from this model's edge scores or build it with Circuit.from_edges(model, ...)"
            )
        return circuit
    if isinstance(circuit, str) or not hasattr(circuit, "__iter__"):
        raise CircuitError(
            "circuit must be a Circuit or edges as (sender, receiver) pairs, e.g. "
            "[('L0H2', 'L1H0.k')]"
        )
    return Circuit.from_edges(graph, circuit)


def _ablated(
    setup: Setup, run: Reference, ablation: str, draws: int, seed: int
) -> list[torch.Tensor]:
    """Return, per draw, every sender's ablated output ``[senders, B, T, d]``."""
    senders = run.senders
    mask = setup.clean["attention_mask"].bool().to(senders.device)
    if ablation == "corrupt":
        assert setup.corrupt is not None
        return [reference(setup, setup.corrupt).senders]
    if ablation == "mean":
        m = mask[None, :, :, None].to(senders.dtype)
        mean = (senders * m).sum(1, keepdim=True) / m.sum(1, keepdim=True).clamp_min(1)
        return [mean.expand_as(senders).clone()]
    gen = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(draws):
        donors = resample_donors(mask.cpu(), gen).to(senders.device)
        pos = torch.arange(donors.shape[1], device=senders.device).expand_as(donors)
        out.append(senders[:, donors, pos])
    return out


def _conditions(
    setup: Setup, run: Reference, draws: list[torch.Tensor], circuit: torch.Tensor
) -> dict[str, torch.Tensor]:
    """Return the metric per example under each condition, averaged over ablation draws."""
    from tqdm.auto import tqdm

    edges = setup.graph.edges
    masks = {
        "full": torch.zeros_like(edges),
        "empty": edges,
        "circuit": edges & ~circuit,
        "complement": circuit,
    }
    b, t = run.batch["input_ids"].shape
    plan = [("full", 0)] + [(c, d) for d in range(len(draws)) for c in CONDITIONS[1:]]
    rows = [(c, d, e) for c, d in plan for e in range(b)]
    s, _, _, dim = run.senders.shape
    per_row = s * t * dim * run.senders.element_size() * 2  # ablated values and live diffs
    step = max(1, min(setup.batch_tokens // max(1, t), LIVE_BYTES // max(1, per_row)))
    values = torch.zeros(len(rows))
    chunks = range(0, len(rows), step)
    bar = tqdm(chunks, desc="faithfulness", unit="pass", disable=not setup.progress)
    try:
        with torch.inference_mode():
            for i in bar:
                part = rows[i : i + step]
                examples = torch.tensor([e for _, _, e in part])
                live = LiveAblation(
                    masks=torch.stack([masks[c].T for c, _, _ in part]),
                    values=torch.stack([draws[d][:, e] for _, d, e in part], dim=1),
                )
                with edited(setup.parts, live=live):
                    logits = setup.runner.run(run.batch, examples)
                values[i : i + len(part)] = setup.runner.score(logits, examples)
    finally:
        bar.close()
    out: dict[str, list[torch.Tensor]] = {c: [] for c in CONDITIONS}
    for k, (c, _, _) in enumerate(rows[::b]):
        out[c].append(values[k * b : (k + 1) * b])
    return {c: torch.stack(v).mean(0) for c, v in out.items()}
