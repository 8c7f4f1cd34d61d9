"""Edge attribution patching: every edge's effect to first order, from a few forwards and backwards.

Patching edge ``u -> v`` (receiver ``v`` reads sender ``u``'s corrupted output, everything else
clean) changes the metric by about

    score(u -> v) = (a_u(corrupt) - a_u(clean)) . dMetric / d(input of v)

(Syed et al. 2023), summed over positions and averaged over examples. The gradient with
respect to *one receiver's* input needs that input separated from the other receivers that
read the same residual stream; here the copies are separable by construction: each receiver
reads its residual plus a zero tensor of its own (:mod:`.edges`: a head's query, key or value
columns are recomputed from ``norm(residual + 0)``), and the gradient with respect to that
zero is the receiver's input gradient. One clean forward and one backward give every edge.

EAP-IG (Hanna et al. 2024) averages that gradient over ``steps`` points on the straight line
from the corrupted to the clean input (the block-0 residual, i.e. the embeddings), at
``k / steps`` for ``k = 1..steps``; ``steps`` forwards and backwards, stacked along the batch.

:meth:`EdgeScores.verify` runs exact edge patches of the top edges and a seeded random sample
and reports the approximation's error; :meth:`EdgeScores.circuit` extracts a circuit at a
budget.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch

from ..core import events
from ..core.display import WidgetDisplay
from ..core.records import EdgeAttributionRecord
from ..patching.inputs import PatchingError
from ..patching.sweep import BATCH_TOKENS
from .circuit import Circuit
from .edges import Edit, edited
from .graph import Graph
from .runs import Reference, Setup, prepare, reference
from .verify import EdgeVerification, verify_edges

if TYPE_CHECKING:
    import pandas as pd

#: Memory the zero tensors of one attribution pass may take (receivers x rows x tokens x d).
GRAD_BYTES = 512 * 2**20


@dataclass
class _Context:
    """What exact verification needs: the checked setup and the two reference runs."""

    setup: Setup
    clean: Reference
    corrupt: Reference


@dataclass(repr=False)
class EdgeScores(WidgetDisplay):
    """First-order effects of patching each edge (noising: the clean run with one edge
    corrupted), in the metric's units. Shows as ``widgets.CircuitGraph`` in notebooks; its
    bundle carries :meth:`_repr_png_` and a table of the top edges for static front ends.

    Attributes:
        graph: the model's graph; scores: ``[senders, receivers]`` batch-mean scores (0 where
            there is no edge, see ``graph.edges``); per_example: ``[senders, receivers, batch]``.
        method: ``"eap"`` or ``"eap-ig"`` (with ``steps``); metric: its name;
        clean_baseline, corrupt_baseline: batch-mean metric of the two runs.
    """

    WIDGET = "CircuitGraph"

    graph: Graph
    scores: torch.Tensor
    per_example: torch.Tensor
    method: str
    steps: int
    metric: str
    clean_baseline: float
    corrupt_baseline: float
    #: the last exact check of these scores (:meth:`verify` keeps it here)
    verification: EdgeVerification | None = field(default=None, compare=False)
    _context: _Context | None = field(default=None, compare=False)

    def to_dataframe(self) -> pd.DataFrame:
        """Return one row per edge: sender, receiver, their layers, score, rank by |score|."""
        import pandas as pd

        idx = self.graph.edges.nonzero()
        vals = self.scores[idx[:, 0], idx[:, 1]]
        rank = torch.empty(len(vals), dtype=torch.long)
        rank[vals.abs().argsort(descending=True, stable=True)] = torch.arange(len(vals))
        return pd.DataFrame(
            {
                "sender": [self.graph.senders[i].name for i in idx[:, 0].tolist()],
                "receiver": [self.graph.receivers[j].name for j in idx[:, 1].tolist()],
                "sender_layer": [self.graph.senders[i].layer for i in idx[:, 0].tolist()],
                "receiver_layer": [self.graph.receivers[j].layer for j in idx[:, 1].tolist()],
                "score": vals.tolist(),
                "rank": (rank + 1).tolist(),
            }
        )

    def top(self, k: int = 10) -> pd.DataFrame:
        """Return the ``k`` edges of largest |score|, largest first."""
        return self.to_dataframe().sort_values("rank").head(k).reset_index(drop=True)

    def ranked(self) -> list[tuple[int, int]]:
        """Return every edge ``(sender index, receiver index)``, largest |score| first."""
        idx = self.graph.edges.nonzero()
        vals = self.scores[idx[:, 0], idx[:, 1]].abs()
        order = vals.argsort(descending=True, stable=True)
        return [(int(i), int(j)) for i, j in idx[order].tolist()]

    def circuit(self, *, top_k: int | None = None, threshold: float | None = None) -> Circuit:
        """Return the circuit of the ``top_k`` edges by |score|, or of every edge whose
        |score| is at least ``threshold`` (give exactly one)."""
        if (top_k is None) == (threshold is None):
            raise PatchingError("give exactly one budget: top_k=... (edges) or threshold=...")
        ranked = self.ranked()
        if top_k is not None:
            if isinstance(top_k, bool) or int(top_k) < 0:
                raise PatchingError(f"top_k must be a number of edges >= 0, got {top_k}")
            chosen = ranked[: int(top_k)]
            how = f"top {len(chosen)} edges by |{self.method} score|"
        else:
            assert threshold is not None
            chosen = [(i, j) for i, j in ranked if abs(float(self.scores[i, j])) >= threshold]
            how = f"edges with |{self.method} score| >= {threshold:g}"
        edges = tuple((self.graph.senders[i].name, self.graph.receivers[j].name) for i, j in chosen)
        scores = tuple(float(self.scores[i, j]) for i, j in chosen)
        return Circuit(self.graph, edges, scores, how)

    def verify(self, top: int = 10, random: int = 10, seed: int = 0) -> EdgeVerification:
        """Return the exact edge patches of the ``top`` edges and of ``random`` edges drawn
        (with ``seed``) from the rest, next to their scores, with the rank correlation (also
        kept as ``verification``)."""
        if self._context is None:
            raise PatchingError("these scores carry no model to verify them with")
        ctx = self._context
        delta = ctx.corrupt.senders - ctx.clean.senders
        checked = verify_edges(
            ctx.setup, ctx.clean, delta, self.scores, self.ranked(), (top, random, seed)
        )
        events.emit(
            EdgeAttributionRecord(
                method=self.method,
                edges=int(self.graph.edges.sum()),
                metric=self.metric,
                verified=len(checked.rows),
            )
        )
        self.verification = checked
        return checked

    def describe(self) -> str:
        """Return a short text summary: method, baselines, the strongest edges, and the last
        verification's agreement when there is one."""
        head = self.top(8)
        edges = "; ".join(f"{r.sender} -> {r.receiver}: {r.score:+.4g}" for r in head.itertuples())
        how = f"EAP-IG ({self.steps} steps)" if self.method == "eap-ig" else "EAP"
        lines = [
            f"EdgeScores: {how} over {self.graph.n_edges} edges; metric: {self.metric}",
            f"clean baseline {self.clean_baseline:.4g}, corrupted baseline "
            f"{self.corrupt_baseline:.4g}; a score approximates the change in the metric "
            "when that one edge is corrupted",
            f"strongest edges: {edges}",
        ]
        if self.verification is not None:
            lines += [f"verified {s}" for s in self.verification.describe().splitlines()[1:]]
        return "\n".join(lines)

    def __repr__(self) -> str:
        return self.describe()

    def _repr_png_(self) -> bytes:
        from .plots import heatmap_png

        values = torch.where(self.graph.edges, self.scores, torch.tensor(float("nan")))
        return heatmap_png(
            values.numpy(),
            [s.name for s in self.graph.senders],
            [r.name for r in self.graph.receivers],
            center=0.0,
            title=f"{self.method} edge scores ({self.metric})",
            label="approximate metric change",
        )


def eap(
    model: Any,
    clean: Any,
    corrupt: Any,
    metric: Any,
    *,
    method: str = "eap",
    steps: int = 5,
    batch_tokens: int = BATCH_TOKENS,
    progress: bool = True,
) -> EdgeScores:
    """Return the attribution score of every edge of ``model``'s graph.

    Args:
        model: a HuggingFace GPT-2, GPT-NeoX/Pythia or Llama-family causal LM.
        clean, corrupt: tokenizer outputs or token-id tensors of equal shape.
        metric: ``patching.logit_diff(...)``, ``logprob(...)`` or a differentiable function of
            the logits (``kl_to_clean`` has zero gradient at the clean run).
        method: ``"eap"`` (gradient at the clean run) or ``"eap-ig"`` (averaged over ``steps``
            points from the corrupted to the clean embeddings).
        batch_tokens: how many tokens one stacked forward may hold (memory knob).
    """
    if method not in ("eap", "eap-ig"):
        raise PatchingError(f"method must be 'eap' or 'eap-ig', not {method!r}")
    if isinstance(steps, bool) or int(steps) < 1:
        raise PatchingError(f"steps must be a positive number of points, got {steps}")
    setup = prepare(
        model, clean, corrupt, metric, gradient=True, batch_tokens=batch_tokens, progress=progress
    )
    assert setup.corrupt is not None
    clean_run = reference(setup, setup.clean)
    corrupt_run = reference(setup, setup.corrupt)
    alphas = [k / int(steps) for k in range(1, int(steps) + 1)] if method == "eap-ig" else [1.0]
    grads = receiver_gradients(setup, clean_run, corrupt_run, alphas, ig=method == "eap-ig")
    delta = (corrupt_run.senders - clean_run.senders).to(grads.dtype)
    per_example = torch.einsum("sbtd,rbtd->srb", delta, grads).float().cpu()
    per_example = per_example * setup.graph.edges[..., None]
    events.emit(
        EdgeAttributionRecord(
            method=method, edges=int(setup.graph.edges.sum()), metric=setup.metric.name
        )
    )
    return EdgeScores(
        graph=setup.graph,
        scores=per_example.mean(-1),
        per_example=per_example,
        method=method,
        steps=int(steps) if method == "eap-ig" else 1,
        metric=setup.metric.name,
        clean_baseline=float(clean_run.values.mean()),
        corrupt_baseline=float(corrupt_run.values.mean()),
        _context=_Context(setup, clean_run, corrupt_run),
    )


def receiver_gradients(
    setup: Setup, clean: Reference, corrupt: Reference, alphas: list[float], *, ig: bool
) -> torch.Tensor:
    """Return dMetric/d(input of each receiver) ``[receivers, B, T, d]``, per example.

    With ``ig`` the gradient is averaged over the block-0 inputs ``corrupt + a (clean -
    corrupt)`` for ``a`` in ``alphas``; else it is taken at the clean run.
    """
    from tqdm.auto import tqdm

    graph, runner = setup.graph, setup.runner
    r_count = len(graph.receivers)
    x0c = clean.resid[0]
    b, t, d = x0c.shape
    steps = len(alphas)
    per_row = r_count * t * d * x0c.element_size()
    rows = max(1, min(setup.batch_tokens // max(1, t), GRAD_BYTES // max(1, per_row)))
    per = max(1, rows // steps)  # examples per pass, each with all its steps
    out = torch.zeros((r_count, b, t, d), dtype=x0c.dtype, device=x0c.device)
    chunks = [list(range(i, min(b, i + per))) for i in range(0, b, per)]
    bar = tqdm(chunks, desc="edge attribution", unit="pass", disable=not setup.progress)
    try:
        for ex in bar:
            ex_t = torch.tensor(ex)
            examples = ex_t.repeat(steps)
            n = len(examples)
            alpha = torch.tensor(alphas, dtype=x0c.dtype, device=x0c.device)
            alpha = alpha.repeat_interleave(len(ex))[:, None, None]
            # One leaf per receiver: slices of one big leaf would each back-propagate into a
            # zero tensor of the big one's size (most of the backward's time, measured).
            zeros = [
                torch.zeros((n, t, d), dtype=x0c.dtype, device=x0c.device, requires_grad=True)
                for _ in range(r_count)
            ]
            rows_all = torch.arange(n, device=x0c.device)
            edits = [Edit(r, rows_all, zeros[r]) for r in range(r_count)]
            kwargs: dict[str, Any] = {}
            if ig:
                start = corrupt.resid[0][examples]
                kwargs = {"start": 0, "resid": start + alpha * (x0c[examples] - start)}
            with torch.enable_grad(), edited(setup.parts, edits):
                logits = runner.run(clean.batch, examples, **kwargs)
                values = runner.metric.score(
                    logits, examples.to(logits.device), runner.clean_logprobs
                )
                grads = torch.autograd.grad(values.sum(), zeros, materialize_grads=True)
            grad = torch.stack(grads).reshape(r_count, steps, len(ex), t, d)
            out[:, ex_t] = grad.mean(1)
    finally:
        bar.close()
    return out
