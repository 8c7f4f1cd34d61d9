"""Faithfulness against plain-hook forwards, its interval's coverage, and the toy circuit.

The reference (``test_edges.Plain``) runs one forward per condition in which every receiver
rebuilds its input from its upstream senders, each either actual or ablated (mean over the
batch, another example's, or the corrupted run's), as the condition says: nothing ablated,
everything ablated, everything but the circuit, or the circuit alone.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_edges import ANSWER, WRONG, Plain, build, pair, receiver_key

from interp_magics import circuits, testing, toy
from interp_magics.circuits.faithfulness import ratio_ci
from interp_magics.patching import PatchingError, logit_diff, logprob
from interp_magics.patching.corruption import resample_donors

METRIC = logit_diff(ANSWER, WRONG)
# Per-example answers: with resample ablation, ablating everything makes each example run as
# its donor, so a metric with the same answers for all examples would have the same batch mean
# as the full model, leaving nothing to normalise by.
ANSWERS = torch.tensor([5, 6, 7, 8, 9])
PER_EXAMPLE = logit_diff(ANSWERS, WRONG + 10)


def per_example_metric(logits: torch.Tensor) -> torch.Tensor:
    return logits[torch.arange(len(ANSWERS)), -1, ANSWERS] - logits[:, -1, WRONG + 10]


def _random_circuit(graph, share: float, seed: int) -> list[tuple[str, str]]:
    edges = graph.edge_list()
    g = torch.Generator().manual_seed(seed)
    keep = torch.rand(len(edges), generator=g) < share
    return [e for e, k in zip(edges, keep.tolist(), strict=True) if k]


def _reference(plain, graph, ids, circuit, ablated, metric) -> dict[str, torch.Tensor]:
    """Metric per example under each condition, one plain forward each."""
    inside = set(circuit)
    edges = graph.edge_list()
    chosen = {
        "full": set(),
        "empty": set(edges),
        "circuit": set(edges) - inside,
        "complement": inside,
    }
    out = {}
    for condition, ablate in chosen.items():
        replace: dict = {receiver_key(graph, r.name): {} for r in graph.receivers}
        for sender, receiver in ablate:
            replace[receiver_key(graph, receiver)][sender] = ablated[sender]
        with torch.no_grad():
            logits, _ = plain.run(ids, replace)
        out[condition] = metric(logits)
    return out


@pytest.mark.parametrize(
    ("name", "ablation"), [("gpt2", "mean"), ("neox", "corrupt"), ("llama", "resample")]
)
def test_every_condition_equals_one_plain_forward(name, ablation):
    model = build(name)
    plain = Plain(model)
    graph = circuits.graph_of(model)
    clean, corrupt = pair(b=5)
    circuit = _random_circuit(graph, 0.3, seed=2)
    result = circuits.faithfulness(
        model, circuit, clean, corrupt if ablation == "corrupt" else None, PER_EXAMPLE,
        ablation=ablation, resamples=2, seed=4, progress=False,
    )  # fmt: skip
    with torch.no_grad():
        _, actual = plain.run(clean)
        _, counterfactual = plain.run(corrupt)
    if ablation == "mean":
        draws = [{s: v.mean(0, keepdim=True).expand_as(v) for s, v in actual.items()}]
    elif ablation == "corrupt":
        draws = [counterfactual]
    else:
        gen = torch.Generator().manual_seed(4)
        draws = []
        for _ in range(2):
            donors = resample_donors(torch.ones(clean.shape, dtype=torch.bool), gen)
            assert not (donors == torch.arange(5)[:, None]).any()  # another example's values
            pos = torch.arange(clean.shape[1]).expand_as(donors)
            draws.append({s: v[donors, pos] for s, v in actual.items()})
    refs = [_reference(plain, graph, clean, circuit, d, per_example_metric) for d in draws]
    want = {c: torch.stack([r[c] for r in refs]).mean(0).double() for c in refs[0]}
    for condition, values in want.items():
        assert (result.per_example[condition] - values).abs().max() < 1e-5, condition
    gap = (want["full"] - want["empty"]).mean()
    assert abs(float(gap)) > 1e-3  # a real gap to normalise by
    assert result.faithfulness == pytest.approx(
        float((want["circuit"] - want["empty"]).mean() / gap), abs=1e-4
    )
    assert result.complement == pytest.approx(
        float((want["complement"] - want["empty"]).mean() / gap), abs=1e-4
    )
    with torch.no_grad():
        plain_logits, _ = plain.run(clean)
    assert (result.per_example["full"] - per_example_metric(plain_logits)).abs().max() < 1e-5


def test_full_graph_is_one_and_empty_circuit_is_zero():
    model = build("gpt2")
    graph = circuits.graph_of(model)
    clean, _ = pair(b=6)
    full = circuits.faithfulness(model, graph.edge_list(), clean, metric=METRIC, progress=False)
    empty = circuits.faithfulness(model, [], clean, metric=METRIC, progress=False)
    assert full.faithfulness == pytest.approx(1.0, abs=1e-5)
    assert full.complement == pytest.approx(0.0, abs=1e-5)
    assert empty.faithfulness == pytest.approx(0.0, abs=1e-5)
    assert empty.complement == pytest.approx(1.0, abs=1e-5)
    assert full.ci[1] - full.ci[0] < 1e-4  # nothing varies when nothing is ablated
    df = full.to_dataframe()
    assert list(df.measure) == ["faithfulness", "complement"]
    assert df.edges.iloc[0] == df.total_edges.iloc[0] == graph.n_edges
    assert "recovers 1.000" in repr(full) and full._repr_png_()[:4] == b"\x89PNG"


def test_ratio_interval_covers_the_ratio_of_expectations():
    rng = np.random.default_rng(0)
    truth = (0.7 * 2 + 0.1) / 2
    hits = 0
    for _ in range(1000):
        b = rng.normal(2.0, 1.0, 16)
        a = 0.7 * b + rng.normal(0.1, 0.8, 16)
        f, (low, high) = ratio_ci(torch.tensor(a), torch.tensor(b), 0.95)
        assert f == pytest.approx(a.mean() / b.mean())
        hits += low <= truth <= high
    assert 0.93 <= hits / 1000 <= 0.97  # measured 0.959


def test_bad_input_says_what_to_fix():
    model = build("gpt2")
    clean, corrupt = pair()
    with pytest.raises(PatchingError, match="'mean', 'resample' or 'corrupt'"):
        circuits.faithfulness(model, [], clean, metric=METRIC, ablation="zero")
    with pytest.raises(PatchingError, match="drop corrupt"):
        circuits.faithfulness(model, [], clean, corrupt, METRIC)
    with pytest.raises(PatchingError, match="give corrupt"):
        circuits.faithfulness(model, [], clean, metric=METRIC, ablation="corrupt")
    with pytest.raises(PatchingError, match="at least 2"):
        circuits.faithfulness(model, [], clean[:1], metric=METRIC, ablation="resample")
    other = circuits.Circuit.from_edges(testing.neox(), [("L0H0", "L1H0.q")])
    with pytest.raises(circuits.CircuitError, match="another model"):
        circuits.faithfulness(model, other, clean, metric=METRIC)
    with pytest.raises(circuits.CircuitError, match="pairs"):
        circuits.faithfulness(model, "L0H0->L1H0.q", clean, metric=METRIC)


def _toy():
    model = toy.load()
    ids = toy.repeated_sequences(16, seed=0)
    corrupt = ids.clone()
    corrupt[:, 1:17] = toy.repeated_sequences(16, seed=1)[:, 1:17]
    return model, ids, corrupt, logprob(ids[:, -1], position=-2)


def test_toy_known_induction_circuit_carries_the_behaviour():
    model, ids, _, metric = _toy()
    known = [("embed", "L0H2.q"), ("embed", "L0H2.k"), ("embed", "L0H2.v")]
    for h in range(4):  # previous-token head -> keys; the current token -> queries, values
        known += [
            ("L0H2", f"L1H{h}.k"),
            ("embed", f"L1H{h}.q"),
            ("embed", f"L1H{h}.v"),
            (f"L1H{h}", "logits"),
        ]
    result = circuits.faithfulness(model, known, ids, metric=metric, progress=False)
    # measured: 0.999 [0.962, 1.037]; the rest of the model: -0.028 [-0.076, 0.021]
    assert result.ci[0] < 1 < result.ci[1] and 0.9 < result.faithfulness < 1.1
    assert result.complement_ci[0] < 0 < result.complement_ci[1]
    assert result.circuit.nodes == ("embed", "L0H2", "L1H0", "L1H1", "L1H2", "L1H3", "logits")


def test_toy_circuit_found_by_eap_ig_is_faithful():
    model, ids, corrupt, metric = _toy()
    scores = circuits.eap(model, ids, corrupt, metric, method="eap-ig", steps=5, progress=False)
    circuit = scores.circuit(top_k=20)
    assert {("L0H2", f"L1H{h}.k") for h in range(3)} <= set(circuit.edges)
    result = circuits.faithfulness(
        model, circuit, ids, corrupt, metric, ablation="corrupt", progress=False
    )
    # measured: 0.881 [0.759, 1.002]; without it: 0.000 [-0.002, 0.002]
    assert 0.7 < result.faithfulness < 1.05 and result.ci[1] - result.ci[0] < 0.4
    assert abs(result.complement) < 0.05
    assert "20-edge circuit" in repr(result)
