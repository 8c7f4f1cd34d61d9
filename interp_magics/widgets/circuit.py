"""CircuitGraph: edge attribution scores (or a circuit) drawn as the model's computational graph.

Nodes sit in rows by layer (the embeddings at the bottom, the logits on top, a layer's heads side
by side with its MLP after them), and an edge is a curve from its sender to the port its receiver
reads through (a head's query, key or value input, an MLP's input, the logits), its width and
opacity following |score| and its colour the score's sign. The front end (``widgets/src/circuit``)
shows the top ``top_k`` edges by |score| (or only a circuit's), says what an edge or node is on
hover, and lists a clicked node's edges.

What travels, and why it stays small: the nodes once (names, kinds, layers), then the edges in
rank order (largest |score| first) as little-endian bytes: ``uint32`` sender and receiver
indices, ``float32`` scores (exactly the result's float32 values), ``uint32`` ranks. Only the top
``max_edges`` are sent (plus any circuit or verified edge ranked lower), so a graph of millions of
edges costs ``12 * max_edges`` bytes, not a JSON list (:meth:`CircuitGraph.payload_bytes`).
Exact patches from :meth:`EdgeScores.verify <interp_magics.circuits.EdgeScores.verify>` travel
as ``float32`` rows (value, interval) for the edges they checked.

The module is a little past 400 lines because the bytes the browser reads and the static
fallbacks (PNG, table, text) must agree on which edges are shown; one file keeps them together.
"""

from __future__ import annotations

import html
import math
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import traitlets

from . import colors
from .base import FallbackWidget

if TYPE_CHECKING:
    from ..circuits import Circuit, EdgeScores, EdgeVerification, Graph, Receiver, Sender

#: Edges shown at first: the strongest 50 keep a graph legible at any size.
TOP_K = 50
#: The most edges sent to the browser (12 bytes each): the top ones by |score|.
MAX_EDGES = 10_000
#: Rows of the HTML fallback's table, at most.
TABLE_ROWS = 100
#: The diverging map of the sign colours: the static PNG's own (negative red, positive blue).
SIGN_MAP = "RdBu"
#: Where on the map the two signs are taken: near its ends on light backgrounds, nearer its
#: light middle on dark ones (both at least 3:1 against the background, as marks must be).
SIGN_AT = {"light": (0.08, 0.92), "dark": (0.28, 0.74)}
#: WCAG's least contrast for graphical marks, which the sign colours keep at full strength.
MARK_CONTRAST_MIN = 3.0
#: Group codes of verified edges (the front end names them).
GROUPS = ("top", "random")


# -- encodings (the front end's circuit/data.ts reads them) --------------------------------------


def float32_bytes(values: Any) -> bytes:
    """Return ``values`` as little-endian float32 bytes (encoding.py has uint8 codes only)."""
    return np.ascontiguousarray(np.asarray(values, dtype="<f4")).tobytes()


def uint32_bytes(values: Any) -> bytes:
    """Return ``values`` as little-endian uint32 bytes."""
    return np.ascontiguousarray(np.asarray(values, dtype="<u4")).tobytes()


def read_float32(data: bytes) -> np.ndarray:
    """Return the float32 values of :func:`float32_bytes` (for tests and fallbacks)."""
    return np.frombuffer(bytes(data), dtype="<f4")


def read_uint32(data: bytes) -> np.ndarray:
    """Return the uint32 values of :func:`uint32_bytes`."""
    return np.frombuffer(bytes(data), dtype="<u4")


def sign_colours() -> dict[str, list[str]]:
    """Return ``{"light": [negative, positive], "dark": [...]}`` as ``#rrggbb`` (SIGN_MAP)."""
    table = np.frombuffer(colors.lut(SIGN_MAP), dtype=np.uint8).reshape(256, 3)
    out = {}
    for theme, where in SIGN_AT.items():
        out[theme] = ["#{:02x}{:02x}{:02x}".format(*table[round(t * 255)]) for t in where]
    return out


# -- which edges travel ---------------------------------------------------------------------------


def _edge_list(
    result: EdgeScores | Circuit, extra: list[tuple[int, int]], max_edges: int
) -> tuple[list[tuple[int, int]], list[float], list[int]]:
    """Return the edges to send ``(sender, receiver)`` in rank order, their scores and ranks.

    For scores: the top ``max_edges`` by |score| (``EdgeScores.ranked``'s order), then any of
    ``extra`` ranked lower. For a circuit: its edges, by |score| when it has scores (ranks
    count within the circuit).
    """
    from ..circuits import EdgeScores  # here: importing the widgets does not load circuits

    graph = result.graph
    if isinstance(result, EdgeScores):
        ranked = result.ranked()
        where = {e: r for r, e in enumerate(ranked)}
        chosen = set(ranked[:max_edges])
        later = sorted({e for e in extra if e not in chosen}, key=where.__getitem__)
        edges = ranked[:max_edges] + later
        values = result.scores
        return edges, [float(values[i, j]) for i, j in edges], [where[e] for e in edges]
    pairs = [(graph.sender_index(s), graph.receiver_index(r)) for s, r in result.edges]
    given = result.scores
    scores = list(given) if given is not None else [math.nan] * len(pairs)
    order = sorted(range(len(pairs)), key=lambda k: -abs(scores[k]) if given is not None else k)
    return [pairs[k] for k in order], [scores[k] for k in order], list(range(len(pairs)))


def _node(n: Sender | Receiver) -> list[Any]:
    return [n.name, n.kind, n.layer, -1 if n.head is None else n.head]


def _node_table(graph: Graph) -> dict[str, Any]:
    a = graph.anatomy
    return {
        "n_layers": a.n_layers,
        "n_heads": a.n_heads,
        "n_kv_heads": a.n_kv_heads,
        "grouped": bool(graph.grouped),
        "parallel": bool(a.parallel),
        "family": a.family,
        "senders": [_node(s) for s in graph.senders],
        "receivers": [_node(r) for r in graph.receivers],
        "n_edges": graph.n_edges,
    }


class CircuitGraph(FallbackWidget):
    """An interactive graph of :class:`~interp_magics.circuits.EdgeScores` or a
    :class:`~interp_magics.circuits.Circuit`.

    ``view.top_k`` is how many of the strongest edges are drawn; ``view.circuit_only`` draws
    the circuit's edges instead (when one is given); ``view.selected`` is the node last clicked
    (``"L0H2"``, ``"MLP1"``, ``"embed"``, ``"logits"``, or ``""``).
    """

    _bundle = "circuit"

    meta = traitlets.Dict().tag(sync=True)
    edges = traitlets.Bytes().tag(sync=True)  # uint32 [n, 2]: sender, receiver index
    scores = traitlets.Bytes().tag(sync=True)  # float32 [n], NaN: a circuit edge without score
    ranks = traitlets.Bytes().tag(sync=True)  # uint32 [n]: 0-based rank by |score|
    in_circuit = traitlets.Bytes().tag(sync=True)  # uint8 [n], or empty: no circuit
    exact = traitlets.Bytes().tag(sync=True)  # float32 [m, 3]: exact change, low, high
    exact_at = traitlets.Bytes().tag(sync=True)  # uint32 [m]: the edge (row of `edges`)
    exact_group = traitlets.Bytes().tag(sync=True)  # uint8 [m]: index into GROUPS
    top_k = traitlets.Int(TOP_K).tag(sync=True)
    circuit_only = traitlets.Bool(False).tag(sync=True)
    selected = traitlets.Unicode("").tag(sync=True)

    def __init__(
        self,
        result: EdgeScores | Circuit,
        *,
        top_k: int = TOP_K,
        circuit: Circuit | None = None,
        threshold: float | None = None,
        verification: EdgeVerification | None = None,
        max_edges: int = MAX_EDGES,
    ) -> None:
        """Show ``result``'s ``top_k`` strongest edges (of at most ``max_edges`` sent).

        ``circuit`` (or ``threshold``: ``result.circuit(threshold=...)``) marks a circuit and
        starts the view on its edges alone; ``verification`` (``result.verify(...)``) adds the
        exact patch of each edge it checked to the tooltip. A :class:`Circuit` shows its edges.
        """
        scored, circuit, verification = _resolve(
            result, circuit, threshold, verification, max_edges
        )
        graph = result.graph
        self.result = result
        self._scored = scored
        self.circuit = circuit
        self.verification = verification
        in_circuit = set()
        if circuit is not None:
            in_circuit = {
                (graph.sender_index(s), graph.receiver_index(r)) for s, r in circuit.edges
            }
        checked = self._checked(verification)
        extra = sorted(in_circuit) + [e for e, _ in checked]
        edges, values, ranks = _edge_list(result, extra, int(max_edges))
        self._edges = edges
        self._values = values
        self._ranks = ranks
        position = {e: k for k, e in enumerate(edges)}
        exact = [(position[e], row) for e, row in checked if e in position]
        super().__init__(
            meta=self._meta(),
            edges=uint32_bytes(np.array(edges, dtype=np.int64).reshape(-1, 2)),
            scores=float32_bytes(values),
            ranks=uint32_bytes(ranks),
            in_circuit=(
                np.array([e in in_circuit for e in edges], dtype=np.uint8).tobytes()
                if circuit is not None
                else b""
            ),
            exact=float32_bytes([[r["exact"], r["exact_low"], r["exact_high"]] for _, r in exact]),
            exact_at=uint32_bytes([k for k, _ in exact]),
            exact_group=np.array(
                [GROUPS.index(r["group"]) for _, r in exact], dtype=np.uint8
            ).tobytes(),
            top_k=min(int(top_k), len(edges)) if not isinstance(top_k, bool) else TOP_K,
            circuit_only=circuit is not None,
        )

    def _meta(self) -> dict[str, Any]:
        """Return what the browser needs besides the edges: the nodes, words, colours."""
        scored, circuit, verification = self._scored, self.circuit, self.verification
        return {
            **_node_table(self.result.graph),
            "kind": "scores" if scored is not None else "circuit",
            "title": self._title(),
            "method": scored.method if scored is not None else "",
            "metric": scored.metric if scored is not None else "",
            "sent": len(self._edges),
            "baselines": (
                {"clean": scored.clean_baseline, "corrupt": scored.corrupt_baseline}
                if scored is not None
                else None
            ),
            "circuit": (
                {"how": circuit.how, "edges": len(circuit.edges)} if circuit is not None else None
            ),
            "verification": verification.describe().splitlines()[1:] if verification else None,
            "colours": sign_colours(),
            "groups": list(GROUPS),
        }

    def _checked(
        self, verification: EdgeVerification | None
    ) -> list[tuple[tuple[int, int], dict[str, Any]]]:
        """Return the verified edges as ``((sender, receiver), row)``."""
        if verification is None:
            return []
        graph = self.result.graph
        return [
            ((graph.sender_index(r["sender"]), graph.receiver_index(r["receiver"])), r)
            for r in verification.rows
        ]

    def _title(self) -> str:
        r = self._scored
        if r is not None:
            how = f"EAP-IG ({r.steps} steps)" if r.method == "eap-ig" else "EAP"
            return f"{how} edge scores"
        return f"Circuit: {len(self._edges)} edges"

    # -- reading what was sent -------------------------------------------------------------------
    def shown_edges(self) -> list[tuple[str, str, float]]:
        """Return the edges drawn now ``(sender, receiver, score)``, strongest first: the top
        ``top_k``, or with ``circuit_only`` the circuit's."""
        graph = self.result.graph
        if self.circuit_only and self.in_circuit:
            flags = np.frombuffer(self.in_circuit, dtype=np.uint8)
            keep = [k for k in range(len(self._edges)) if flags[k]]
        else:
            keep = list(range(min(self.top_k, len(self._edges))))
        return [
            (
                graph.senders[self._edges[k][0]].name,
                graph.receivers[self._edges[k][1]].name,
                self._values[k],
            )
            for k in keep
        ]

    def payload_bytes(self) -> int:
        """Return the bytes the data traits cost on the comm (binary buffers plus JSON)."""
        from .lens import wire_bytes

        state = self.get_state()
        return wire_bytes({k: v for k, v in state.items() if k not in ("_esm", "_css")})

    # -- reacting to the browser (and to Python) --------------------------------------------------
    @traitlets.validate("top_k")
    def _valid_top_k(self, proposal: Any) -> int:
        value = proposal["value"]
        if isinstance(value, bool) or int(value) < 0:
            raise traitlets.TraitError(f"top_k must be a number of edges >= 0, got {value!r}")
        sent = int(self.meta.get("sent", value)) if self.meta else int(value)
        return min(int(value), sent)

    @traitlets.validate("selected")
    def _valid_selected(self, proposal: Any) -> str:
        value = str(proposal["value"])
        names = {s.name for s in self.result.graph.senders} | {"logits"}
        if value and value not in names:
            raise traitlets.TraitError(
                f"selected must be a node of the graph (embed, L0H0, MLP0, logits, ...) or '', "
                f"got {value!r}"
            )
        return value

    # -- static fallbacks --------------------------------------------------------------------------
    def fallback_text(self) -> str:
        parts = [self.result.describe()]
        if self.circuit is not None and self.circuit is not self.result:
            parts.append(self.circuit.describe())
        if self.verification is not None and self._scored is None:
            parts.append(self.verification.describe())  # EdgeScores.describe() says it
        shown = self.shown_edges()
        what = "circuit edges" if self.circuit_only and self.in_circuit else "strongest edges"
        parts.append(f"graph view: {len(shown)} {what} of {self.result.graph.n_edges}")
        return "\n".join(parts)

    def fallback_png(self) -> bytes:
        if self._scored is not None:
            return self._scored._repr_png_()
        from ..circuits.plots import heatmap_png

        assert self.circuit is not None  # a Circuit is shown as its own circuit
        graph = self.result.graph
        values = torch.full(graph.edges.shape, float("nan"))
        for (i, j), v in zip(self._edges, self._values, strict=True):
            values[i, j] = 0.0 if math.isnan(v) else v
        return heatmap_png(
            values.numpy(),
            [s.name for s in graph.senders],
            [r.name for r in graph.receivers],
            center=0.0,
            title=self._title(),
            label="edge score" if self.circuit.scores is not None else "in the circuit",
        )

    def fallback_html(self, png: bytes | None = None) -> str:
        """Return the PNG and the text, then a table of the edges on show (at most
        :data:`TABLE_ROWS`): rank, sender, receiver, score, and the exact patch when checked."""
        base = super().fallback_html(png)
        exact = {
            (r["sender"], r["receiver"]): r
            for r in (self.verification.rows if self.verification else [])
        }
        columns = ["rank", "sender", "receiver", "score"]
        if exact:
            columns += ["exact", "exact interval"]
        rank_of = {
            (self.result.graph.senders[i].name, self.result.graph.receivers[j].name): r + 1
            for (i, j), r in zip(self._edges, self._ranks, strict=True)
        }
        rows = []
        for sender, receiver, score in self.shown_edges()[:TABLE_ROWS]:
            cells = [str(rank_of[(sender, receiver)]), sender, receiver, _fmt(score)]
            if exact:
                row = exact.get((sender, receiver))
                cells += (
                    [_fmt(row["exact"]), f"[{_fmt(row['exact_low'])}, {_fmt(row['exact_high'])}]"]
                    if row
                    else ["", ""]
                )
            rows.append("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in cells) + "</tr>")
        head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
        caption = html.escape(f"{self._title()}: the edges on show, strongest first")
        table = (
            f"<table><caption>{caption}</caption><thead><tr>{head}</tr></thead>"
            f"<tbody>{''.join(rows)}</tbody></table>"
        )
        return base.replace("</div>", table + "</div>", 1)


def _resolve(
    result: EdgeScores | Circuit,
    circuit: Circuit | None,
    threshold: float | None,
    verification: EdgeVerification | None,
    max_edges: int,
) -> tuple[EdgeScores | None, Circuit | None, EdgeVerification | None]:
    """Return the scores shown (None for a circuit), the circuit marked and the verification,
    after checking the arguments (raises saying what to fix)."""
    from ..circuits import Circuit, CircuitError, EdgeScores

    if not isinstance(result, (EdgeScores, Circuit)):
        raise TypeError(
            "CircuitGraph shows EdgeScores (circuits.eap) or a Circuit, not "
            f"{type(result).__name__}"
        )
    if isinstance(max_edges, bool) or int(max_edges) < 1:
        raise ValueError(f"max_edges must be a number of edges >= 1, got {max_edges!r}")
    if circuit is not None and threshold is not None:
        raise ValueError("give circuit=... or threshold=..., not both")
    scored = result if isinstance(result, EdgeScores) else None
    if threshold is not None:
        if scored is None:
            raise ValueError("threshold=... picks a circuit from EdgeScores, not a Circuit")
        circuit = scored.circuit(threshold=threshold)
    if isinstance(result, Circuit):
        circuit = result
    if verification is None and scored is not None:
        verification = scored.verification  # the last verify()
    if circuit is not None and not _same_graph(circuit.graph, result.graph):
        raise CircuitError(
            "the circuit is of another model's graph than the scores: extract it from "
            "them (scores.circuit(top_k=...)) or build it on the same model"
        )
    return scored, circuit, verification


def _same_graph(a: Any, b: Any) -> bool:
    # Graph's dataclass equality would compare its edge tensors element-wise: compare names.
    return a is b or (a.senders == b.senders and a.receivers == b.receivers)


def _fmt(value: float) -> str:
    return "" if math.isnan(value) else f"{value:.4g}"
