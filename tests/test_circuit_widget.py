"""The circuit graph widget's Python side: what it sends (the edges in rank order, the scores as
float32 bytes equal to the result's, the ranks EdgeScores gives), which edges a view shows
(``EdgeScores.top(k)``, or a circuit's), what travels when a graph has many edges, the exact
patches of a verification, the sign colours' contrast, bad input, and the static fallbacks (the
result's own PNG, its text and a script-free table of the edges shown).

The front end's reading of the same bytes is tested in widgets/test/circuit-layout.test.ts, its
drawing and tooltips in the browser (tests/test_browser_circuit.py).
"""

from __future__ import annotations

import dataclasses
import json
import re

import numpy as np
import pytest
import torch
import traitlets

from interp_magics import circuits, testing, toy
from interp_magics.circuits import Circuit, CircuitError, EdgeScores
from interp_magics.patching import logprob
from interp_magics.widgets import CircuitGraph
from interp_magics.widgets.circuit import (
    MARK_CONTRAST_MIN,
    MAX_EDGES,
    TABLE_ROWS,
    TOP_K,
    read_float32,
    read_uint32,
    sign_colours,
)

pytestmark = pytest.mark.filterwarnings("ignore:the clean-corrupted gap")


@pytest.fixture(scope="module")
def scores() -> EdgeScores:
    """EAP-IG on the toy induction model (16 repeated sequences, the second half's answer)."""
    ids = toy.repeated_sequences(16, seed=0)
    corrupt = ids.clone()
    corrupt[:, 1:17] = toy.repeated_sequences(16, seed=1)[:, 1:17]
    metric = logprob(ids[:, -1], position=-2)
    return circuits.eap(toy.load(), ids, corrupt, metric, method="eap-ig", steps=5, progress=False)


def sent(view: CircuitGraph) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return the edges as the browser reads them: ``[n, 2]`` indices, scores, ranks."""
    pairs = read_uint32(view.edges).reshape(-1, 2)
    return pairs, read_float32(view.scores), read_uint32(view.ranks)


def names(view: CircuitGraph, pairs: np.ndarray) -> list[tuple[str, str]]:
    g = view.result.graph
    return [(g.senders[i].name, g.receivers[j].name) for i, j in pairs.tolist()]


def test_edges_travel_in_rank_order_with_the_scores_exactly(scores):
    view = scores.widget()
    assert isinstance(view, CircuitGraph)
    pairs, values, ranks = sent(view)
    g = scores.graph
    assert len(pairs) == g.n_edges == view.meta["sent"] == 110  # all of them: under MAX_EDGES
    # every edge of the graph exactly once, each with the result's float32 score
    assert sorted(map(tuple, pairs.tolist())) == sorted(map(tuple, g.edges.nonzero().tolist()))
    idx = torch.from_numpy(pairs.astype(np.int64))
    want = scores.scores[idx[:, 0], idx[:, 1]].numpy()
    assert values.dtype == np.float32 and np.array_equal(values, want)
    # in rank order: |score| never grows, ranks count up, and they are to_dataframe's ranks
    assert np.all(np.diff(np.abs(values)) <= 0)
    assert ranks.tolist() == list(range(110))
    frame = scores.to_dataframe().set_index(["sender", "receiver"])
    assert [int(frame.loc[e, "rank"]) - 1 for e in names(view, pairs)] == ranks.tolist()
    assert len(view.edges) + len(view.scores) + len(view.ranks) == 110 * 16
    assert view.top_k == TOP_K and view.in_circuit == b"" and view.circuit_only is False


@pytest.mark.parametrize("k", [1, 7, 50, 110])
def test_top_k_is_edgescores_top(scores, k):
    view = CircuitGraph(scores, top_k=k)
    top = scores.top(k)
    want = list(zip(top.sender, top.receiver, top.score, strict=True))
    assert view.shown_edges() == want
    pairs, values, _ = sent(view)  # the browser's top k: the first k rows of the bytes
    assert names(view, pairs[:k]) == list(zip(top.sender, top.receiver, strict=True))
    assert np.array_equal(values[:k], top.score.to_numpy(dtype=np.float32))


def test_top_k_follows_python_and_is_checked(scores):
    view = scores.widget()
    view.top_k = 3
    assert [e[:2] for e in view.shown_edges()] == [
        ("embed", "L0H2.v"),
        ("L1H2", "logits"),
        ("L0H2", "L1H1.k"),
    ]
    view.top_k = 10_000  # more than there are: all of them
    assert view.top_k == 110
    with pytest.raises(traitlets.TraitError, match="top_k must be a number of edges >= 0"):
        view.top_k = -1
    with pytest.raises(traitlets.TraitError, match="a node of the graph"):
        view.selected = "L9H9"
    view.selected = "L0H2"
    assert view.selected == "L0H2"


def test_a_circuit_is_flagged_and_shown_alone(scores):
    view = CircuitGraph(scores, threshold=0.5)
    circuit = scores.circuit(threshold=0.5)
    pairs, _, _ = sent(view)
    flags = np.frombuffer(view.in_circuit, dtype=np.uint8)
    assert len(flags) == len(pairs)
    assert {e for e, f in zip(names(view, pairs), flags, strict=True) if f} == set(circuit.edges)
    assert view.circuit_only is True and view.meta["circuit"]["edges"] == len(circuit) == 8
    assert [e[:2] for e in view.shown_edges()] == list(circuit.edges)  # rank order
    view.circuit_only = False
    assert len(view.shown_edges()) == TOP_K


def test_few_edges_travel_from_a_large_graph(scores):
    # a graph the size of GPT-2 small's (12 layers x 12 heads: 32491 edges), random scores
    graph = circuits.graph_of(testing.gpt2(n_layer=12, n_head=12, n_embd=48))
    gen = torch.Generator().manual_seed(0)
    values = torch.randn(graph.edges.shape, generator=gen) ** 3 * graph.edges
    big = EdgeScores(graph, values, values[..., None], "eap", 1, "logit difference", 1.0, 0.0)
    ranked = big.ranked()
    low = [ranked[20_000], ranked[30_000]]  # far below the top: must travel anyway
    hand = Circuit.from_edges(
        graph, [(graph.senders[i].name, graph.receivers[j].name) for i, j in [ranked[0], low[0]]]
    )
    view = CircuitGraph(big, circuit=hand, max_edges=1000)
    pairs, got, ranks = sent(view)
    assert len(pairs) == 1001  # the top 1000 and the circuit's low edge
    assert [tuple(p) for p in pairs[:1000].tolist()] == ranked[:1000]
    assert tuple(pairs[1000].tolist()) == low[0] and ranks[1000] == 20_000
    assert got[1000] == values[low[0]].item()
    size = view.payload_bytes()
    as_json = len(json.dumps(values[graph.edges].tolist()))
    full = CircuitGraph(big)  # the default: the top MAX_EDGES
    assert full.meta["sent"] == MAX_EDGES
    print(
        f"{graph.n_edges} edges: {size} bytes with max_edges=1000, {full.payload_bytes()} with "
        f"{MAX_EDGES}; the scores alone as a JSON list: {as_json}"
    )
    assert size < 1001 * 13 + 40_000  # 12 bytes an edge (+1 circuit flag), and the node table
    assert full.payload_bytes() < as_json / 2


def test_verified_edges_carry_their_exact_patch(scores):
    check = scores.verify(top=4, random=4, seed=0)
    view = scores.widget()  # the last verify() is kept on the scores
    pairs, _, _ = sent(view)
    at = read_uint32(view.exact_at)
    exact = read_float32(view.exact).reshape(-1, 3)
    groups = np.frombuffer(view.exact_group, dtype=np.uint8)
    assert len(at) == len(check.rows) == 8
    for k, row, values, group in zip(at, check.rows, exact, groups, strict=True):
        assert names(view, pairs[k : k + 1]) == [(row["sender"], row["receiver"])]
        want = np.array([row["exact"], row["exact_low"], row["exact_high"]], dtype=np.float32)
        assert np.array_equal(values, want)
        assert view.meta["groups"][group] == row["group"]
    assert view.meta["verification"] == check.describe().splitlines()[1:]
    html = view._repr_mimebundle_()[0]["text/html"]
    top = check.rows[0]
    assert f"<td>{top['exact']:.4g}</td>" in html and "<th>exact interval</th>" in html


def _contrast(a: str, b: str) -> float:
    def lum(c: str) -> float:
        v = np.array([int(c[i : i + 2], 16) for i in (1, 3, 5)]) / 255
        lin = np.where(v <= 0.03928, v / 12.92, ((v + 0.055) / 1.055) ** 2.4)
        return float(lin @ [0.2126, 0.7152, 0.0722])

    hi, lo = sorted([lum(a), lum(b)], reverse=True)
    return (hi + 0.05) / (lo + 0.05)


def test_sign_colours_are_the_pngs_map_and_stand_out_in_both_themes():
    import matplotlib

    pair = sign_colours()
    rdbu = matplotlib.colormaps["RdBu"]
    neg, pos = (np.array([int(c[i : i + 2], 16) for i in (1, 3, 5)]) for c in pair["light"])
    assert neg[0] > neg[2] and pos[2] > pos[0]  # negative red, positive blue, as in the PNG
    assert np.abs(neg / 255 - rdbu(0.08)[:3]).max() < 0.01
    # JupyterLab's light and dark backgrounds (--jp-layout-color1)
    for theme, bg in (("light", "#ffffff"), ("dark", "#212121")):
        for colour in pair[theme]:
            assert _contrast(colour, bg) >= MARK_CONTRAST_MIN, (theme, colour)


def test_static_fallbacks_carry_the_png_text_and_a_table(scores):
    scores = dataclasses.replace(scores, verification=None)  # unchecked scores
    view = CircuitGraph(scores, top_k=5)
    data, _ = view._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in data
    assert data["image/png"] == scores._repr_png_()  # the result's own picture
    assert data["image/png"][:8] == b"\x89PNG\r\n\x1a\n"
    text = data["text/plain"]
    assert text.startswith(scores.describe()) and "graph view: 5 strongest edges of 110" in text
    html = data["text/html"]
    assert "<script" not in html and "data:image/png;base64," in html
    rows = re.findall(r"<tr><td>(\d+)</td><td>([^<]+)</td><td>([^<]+)</td><td>([^<]+)</td>", html)
    top = scores.top(5)
    assert rows == [(str(r.rank), r.sender, r.receiver, f"{r.score:.4g}") for r in top.itertuples()]
    wide = CircuitGraph(scores, top_k=110)._repr_mimebundle_()[0]["text/html"]
    assert wide.count("<tr><td>") == TABLE_ROWS  # long lists are cut
    # the result shows as its widget (the display seam), and reads as text in a console
    assert "application/vnd.jupyter.widget-view+json" in scores._repr_mimebundle_()[0]
    assert repr(scores) == scores.describe()


def test_a_circuit_shows_its_own_edges(scores):
    circuit = scores.circuit(top_k=6)
    view = circuit.widget()
    assert isinstance(view, CircuitGraph) and view.meta["kind"] == "circuit"
    want = scores.top(6)
    assert view.shown_edges() == list(zip(want.sender, want.receiver, want.score, strict=True))
    data = circuit._repr_mimebundle_()[0]
    assert data["image/png"][:8] == b"\x89PNG\r\n\x1a\n"
    assert data["text/plain"].startswith(circuit.describe())
    # by hand: no scores, drawn without them (NaN travels, the table leaves the score empty)
    hand = Circuit.from_edges(scores.graph, ["L0H2->L1H0.k", "L1H0 -> logits"])
    view = CircuitGraph(hand)
    assert np.isnan(read_float32(view.scores)).all()
    assert [e[:2] for e in view.shown_edges()] == [("L0H2", "L1H0.k"), ("L1H0", "logits")]
    assert "<td>L0H2</td><td>L1H0.k</td><td></td>" in view._repr_mimebundle_()[0]["text/html"]


def test_bad_input_says_what_to_fix(scores):
    other = circuits.graph_of(testing.gpt2())
    foreign = Circuit.from_edges(other, [("L0H0", "L1H0.q")])
    with pytest.raises(CircuitError, match="another model's graph"):
        CircuitGraph(scores, circuit=foreign)
    with pytest.raises(ValueError, match="not both"):
        CircuitGraph(scores, circuit=scores.circuit(top_k=2), threshold=0.5)
    with pytest.raises(ValueError, match="max_edges must be"):
        CircuitGraph(scores, max_edges=0)
    with pytest.raises(TypeError, match="EdgeScores .circuits.eap. or a Circuit"):
        CircuitGraph(scores.top(3))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="from EdgeScores"):
        CircuitGraph(scores.circuit(top_k=2), threshold=0.5)
    assert CircuitGraph(scores, top_k=10**6).top_k == 110  # as many as there are
