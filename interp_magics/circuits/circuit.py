"""A circuit: a set of edges of a model's graph, and the components they touch.

Extracted from edge scores at a budget (:meth:`EdgeScores.circuit
<interp_magics.circuits.eap.EdgeScores.circuit>`) or written by hand with
:meth:`Circuit.from_edges`; :func:`~interp_magics.circuits.faithfulness` measures how much of
the model's behaviour it carries. Edges are kept as chosen: an edge into a head none of whose
outputs is in the circuit changes nothing downstream once the rest is ablated, and is left in
(pruning such dangling edges is the caller's choice).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from ..core.display import WidgetDisplay
from .graph import CircuitError, Graph, Receiver, graph_of

if TYPE_CHECKING:
    import pandas as pd


def component(graph: Graph, receiver: Receiver) -> list[str]:
    """Return the components (heads, MLPs, logits) that read through ``receiver``.

    A grouped-query key or value is read by every query head of its group.
    """
    if receiver.kind in ("mlp", "logits"):
        return [receiver.name]
    if receiver.kind == "q":
        return [f"L{receiver.layer}H{receiver.head}"]
    a = graph.anatomy
    group = a.n_heads // a.n_kv_heads
    first = int(receiver.head or 0) * group
    return [f"L{receiver.layer}H{h}" for h in range(first, first + group)]


@dataclass(frozen=True, repr=False)
class Circuit(WidgetDisplay):
    """Edges ``(sender, receiver)`` of ``graph``, with their scores when extracted from some.

    Shows as ``widgets.CircuitGraph`` (its edges only) in notebooks.
    """

    WIDGET = "CircuitGraph"

    graph: Graph
    edges: tuple[tuple[str, str], ...]
    scores: tuple[float, ...] | None = None
    how: str = "given"

    @classmethod
    def from_edges(cls, model_or_graph: nn.Module | Graph, edges: Iterable[Any]) -> Circuit:
        """Return the circuit of ``edges`` (pairs of names, or ``"sender->receiver"`` strings)."""
        graph = model_or_graph if isinstance(model_or_graph, Graph) else graph_of(model_or_graph)
        pairs = [_pair(e) for e in edges]
        graph.edge_mask(pairs)  # raises on a name or an edge the graph does not have
        return cls(graph, tuple(dict.fromkeys(pairs)))

    @property
    def mask(self) -> torch.Tensor:
        """Return ``[senders, receivers]`` marking the circuit's edges."""
        return self.graph.edge_mask(self.edges)

    @property
    def nodes(self) -> tuple[str, ...]:
        """Return the components the circuit's edges touch, in graph order."""
        used: set[str] = set()
        for sender, receiver in self.edges:
            used.add(sender)
            used.update(
                component(self.graph, self.graph.receivers[self.graph.receiver_index(receiver)])
            )
        order = [s.name for s in self.graph.senders] + ["logits"]
        return tuple(n for n in order if n in used)

    def __len__(self) -> int:
        return len(self.edges)

    def __contains__(self, edge: object) -> bool:
        try:
            return isinstance(edge, (tuple, str)) and _pair(edge) in self.edges
        except CircuitError:  # not an edge's shape: not in the circuit
            return False

    def to_dataframe(self) -> pd.DataFrame:
        """Return one row per edge: sender, receiver, and its score when there is one."""
        import pandas as pd

        data: dict[str, Any] = {
            "sender": [s for s, _ in self.edges],
            "receiver": [r for _, r in self.edges],
        }
        if self.scores is not None:
            data["score"] = list(self.scores)
        return pd.DataFrame(data)

    def describe(self) -> str:
        """Return a short text summary: size, how it was chosen, its components."""
        total = self.graph.n_edges
        lines = [
            f"Circuit: {len(self)} of {total} edges ({len(self) / max(total, 1):.1%}), {self.how}",
            "components: " + ", ".join(self.nodes),
        ]
        shown = [f"{s} -> {r}" for s, r in self.edges[:12]]
        more = f" (+{len(self) - 12} more)" if len(self) > 12 else ""
        lines.append("edges: " + "; ".join(shown) + more)
        return "\n".join(lines)

    def __repr__(self) -> str:
        return self.describe()


def _pair(edge: Any) -> tuple[str, str]:
    if isinstance(edge, str):
        sender, sep, receiver = edge.partition("->")
        if not sep:
            raise CircuitError(f"an edge is 'sender->receiver' or a pair of names, not {edge!r}")
        return sender.strip(), receiver.strip()
    pair = tuple(edge)
    if len(pair) != 2:
        raise CircuitError(f"an edge is a pair (sender, receiver), not {edge!r}")
    return str(pair[0]), str(pair[1])
