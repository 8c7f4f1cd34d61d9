"""Edge attribution against independent references.

- each edge's score equals the derivative of the metric of plain-hook forwards
  (``test_edges.Plain``) in which that one receiver reads ``clean + eps * (corrupt - clean)``
  of that one sender: by central finite differences on float64 GPT-2 and NeoX (relative error
  1e-5), and by autograd through the plain forward on all three (Llama's RMSNorm computes in
  float32 even in a float64 model, which puts finite differences off by ~1e-4);
- a sender's scores summed over its receivers equal ``patching.activation_patch``'s
  attribution of that sender's output (the chain rule through the residual copies);
- EAP-IG equals the average of those finite differences over plain forwards on interpolated
  input embeddings;
- ``verify`` reports exact edge patches equal to plain forwards, and scipy's Spearman;
- on the toy model the previous-token head -> induction head key edges rank at the top.
"""

from __future__ import annotations

import pytest
import torch
from scipy import stats
from test_edges import ANSWER, WRONG, Plain, build, metric_of, pair, receiver_key

from interp_magics import circuits, toy
from interp_magics.patching import (
    MetricError,
    PatchingError,
    activation_patch,
    kl_to_clean,
    logit_diff,
    logprob,
)

pytestmark = pytest.mark.filterwarnings("ignore:the clean-corrupted gap")
METRIC = logit_diff(ANSWER, WRONG)
EDGES = {
    "gpt2": [("embed", "L0H1.q"), ("L0H1", "L1H2.k"), ("L0H2", "L2H0.v"), ("L1H0", "MLP1"),
             ("MLP0", "MLP2"), ("L2H1", "logits"), ("embed", "logits")],
    "llama": [("embed", "L0H3.q"), ("L0H1", "L1KV1.k"), ("L0H2", "L2KV0.v"), ("L1H0", "MLP1"),
              ("MLP0", "L1H1.q"), ("L2H1", "logits"), ("MLP2", "logits")],
    "neox": [("embed", "L0H0.k"), ("L0H1", "L1H2.q"), ("L1H3", "L2H0.v"), ("L0H2", "MLP2"),
             ("MLP0", "MLP1"), ("L2H1", "logits"), ("MLP1", "logits")],
}  # fmt: skip
EPS = 1e-4


def _derivative(plain, graph, ids, edge, base, delta, inputs_embeds=None, how="autograd"):
    """d metric / d eps, per example, when ``edge``'s receiver reads ``base + eps delta`` of
    its sender: central finite differences, or autograd through the plain forward."""
    sender, receiver = edge
    key = receiver_key(graph, receiver)
    kw = {"inputs_embeds": inputs_embeds} if inputs_embeds is not None else {"ids": ids}
    if how == "fd":
        with torch.no_grad():
            up, _ = plain.run(replace={key: {sender: base[sender] + EPS * delta[sender]}}, **kw)
            down, _ = plain.run(replace={key: {sender: base[sender] - EPS * delta[sender]}}, **kw)
        return (metric_of(up) - metric_of(down)) / (2 * EPS)
    eps = torch.zeros((delta[sender].shape[0], 1, 1), dtype=delta[sender].dtype, requires_grad=True)
    out, _ = plain.run(replace={key: {sender: base[sender] + eps * delta[sender]}}, **kw)
    (grad,) = torch.autograd.grad(metric_of(out).sum(), eps)  # example b's metric reads eps[b]
    return grad.flatten()


@pytest.mark.parametrize("name", ["gpt2", "llama", "neox"])
def test_scores_equal_finite_differences_of_plain_forwards(name):
    model = build(name, torch.float64)
    plain = Plain(model)
    graph = circuits.graph_of(model)
    clean, corrupt = pair()
    scores = circuits.eap(model, clean, corrupt, METRIC, progress=False)
    with torch.no_grad():
        _, base = plain.run(clean)
        _, source = plain.run(corrupt)
    delta = {s: source[s] - base[s] for s in base}
    for edge in EDGES[name]:
        got = scores.per_example[graph.sender_index(edge[0]), graph.receiver_index(edge[1])]
        for how in ("autograd",) if name == "llama" else ("autograd", "fd"):
            want = _derivative(plain, graph, clean, edge, base, delta, how=how)
            assert want.abs().max() > 1e-4, edge  # a real effect to compare
            tol = 1e-7 * float(want.abs().max())
            assert torch.allclose(got.double(), want, rtol=1e-5, atol=tol), (edge, how)
    no_edge = ~graph.edges
    assert float(scores.scores[no_edge].abs().max()) == 0.0


@pytest.mark.parametrize("name", ["gpt2", "neox"])
def test_scores_summed_over_receivers_are_attribution_patching_of_the_sender(name):
    model = build(name)
    graph = circuits.graph_of(model)
    clean, corrupt = pair(b=3)
    scores = circuits.eap(model, clean, corrupt, METRIC, progress=False)
    attribution = activation_patch(
        model, clean, corrupt, METRIC, site="head_out", by=("layer", "head"),
        method="attribution", direction="noising", progress=False,
    )  # fmt: skip
    contrib = attribution.per_example - attribution.clean_per_example  # [layer, head, batch]
    for layer in range(3):
        for head in range(4):
            total = scores.per_example[graph.sender_index(f"L{layer}H{head}")].sum(0)
            assert torch.allclose(total, contrib[layer, head], rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("name", ["gpt2", "llama"])
def test_eap_ig_averages_gradients_along_the_embedding_path(name):
    model = build(name, torch.float64)
    plain = Plain(model)
    graph = circuits.graph_of(model)
    clean, corrupt = pair(b=3)
    steps = 3
    scores = circuits.eap(
        model, clean, corrupt, METRIC, method="eap-ig", steps=steps, progress=False
    )
    embed = model.get_input_embeddings()
    with torch.no_grad():
        _, base = plain.run(clean)
        _, source = plain.run(corrupt)
        e_clean, e_corrupt = embed(clean), embed(corrupt)
    delta = {s: source[s] - base[s] for s in base}
    for edge in EDGES[name][1:5]:
        total = 0
        for k in range(1, steps + 1):
            emb = e_corrupt + k / steps * (e_clean - e_corrupt)
            with torch.no_grad():
                _, here = plain.run(inputs_embeds=emb)
            total = total + _derivative(plain, graph, None, edge, here, delta, inputs_embeds=emb)
        got = scores.per_example[graph.sender_index(edge[0]), graph.receiver_index(edge[1])]
        assert torch.allclose(got.double(), total / steps, rtol=1e-5, atol=1e-9), edge
    one = circuits.eap(model, clean, corrupt, METRIC, method="eap-ig", steps=1, progress=False)
    plain_eap = circuits.eap(model, clean, corrupt, METRIC, progress=False)
    assert torch.allclose(one.scores, plain_eap.scores, rtol=1e-6, atol=1e-9)
    assert one.method == "eap-ig" and scores.steps == steps


def test_verify_reports_exact_edge_patches_and_their_rank_correlation():
    model = build("llama")
    plain = Plain(model)
    graph = circuits.graph_of(model)
    clean, corrupt = pair(b=5)
    scores = circuits.eap(model, clean, corrupt, METRIC, progress=False)
    check = scores.verify(top=4, random=4, seed=3)
    df = check.to_dataframe()
    top = scores.top(4)
    assert list(df[df.group == "top"].sender) == list(top.sender)
    assert list(df[df.group == "top"].receiver) == list(top.receiver)
    sample = df[df.group == "random"]
    assert len(sample) == 4 and not set(zip(sample.sender, sample.receiver, strict=True)) & set(
        zip(top.sender, top.receiver, strict=True)
    )
    again = scores.verify(top=4, random=4, seed=3).to_dataframe()
    assert list(again.receiver) == list(df.receiver)
    with torch.no_grad():
        logits, _ = plain.run(clean)
        _, source = plain.run(corrupt)
    for row in df.itertuples():
        key = receiver_key(graph, row.receiver)
        with torch.no_grad():
            out, _ = plain.run(clean, {key: {row.sender: source[row.sender]}})
        exact = metric_of(out) - metric_of(logits)
        assert row.exact == pytest.approx(float(exact.mean()), abs=1e-5)
        assert row.attribution == pytest.approx(
            float(scores.scores[graph.sender_index(row.sender), graph.receiver_index(row.receiver)])
        )
        half = stats.t.ppf(0.975, 4) * float(exact.std()) / 5**0.5
        assert row.exact_high - row.exact == pytest.approx(half, abs=1e-5)
    rho = stats.spearmanr(df.attribution, df.exact).statistic
    assert check.spearman["all"] == pytest.approx(rho)
    assert "Spearman" in repr(check)


def test_circuit_extraction_at_a_budget():
    model = build("gpt2")
    clean, corrupt = pair()
    scores = circuits.eap(model, clean, corrupt, METRIC, progress=False)
    df = scores.to_dataframe()
    assert len(df) == scores.graph.n_edges and sorted(df["rank"]) == list(range(1, len(df) + 1))
    best = df.reindex(df.score.abs().sort_values(ascending=False).index).head(6)
    circuit = scores.circuit(top_k=6)
    assert list(circuit.edges) == list(zip(best.sender, best.receiver, strict=True))
    assert circuit.scores == pytest.approx(list(best.score))
    assert int(circuit.mask.sum()) == 6
    threshold = float(best.score.abs().iloc[3])
    by_threshold = scores.circuit(threshold=threshold)
    assert set(by_threshold.edges) == set(
        zip(
            df[df.score.abs() >= threshold].sender,
            df[df.score.abs() >= threshold].receiver,
            strict=True,
        )
    )
    for sender, receiver in circuit.edges:
        assert sender in circuit.nodes and (sender, receiver) in circuit
    assert circuit.to_dataframe().shape == (6, 3) and "6 of" in repr(circuit)
    with pytest.raises(PatchingError, match="exactly one budget"):
        scores.circuit(top_k=3, threshold=0.1)
    with pytest.raises(PatchingError, match="exactly one budget"):
        scores.circuit()
    png = scores._repr_png_()
    assert png[:4] == b"\x89PNG"


def test_bad_options_fail_before_any_forward():
    model = build("gpt2")
    clean, corrupt = pair()
    with pytest.raises(PatchingError, match="'eap' or 'eap-ig'"):
        circuits.eap(model, clean, corrupt, METRIC, method="acdc")
    with pytest.raises(PatchingError, match="steps"):
        circuits.eap(model, clean, corrupt, METRIC, method="eap-ig", steps=0)
    with pytest.raises(MetricError, match="zero gradient"):
        circuits.eap(model, clean, corrupt, kl_to_clean())


def test_toy_previous_token_head_to_induction_key_edges_rank_first():
    model = toy.load()
    ids = toy.repeated_sequences(16, seed=0)
    corrupt = ids.clone()
    corrupt[:, 1:17] = toy.repeated_sequences(16, seed=1)[:, 1:17]
    metric = logprob(ids[:, -1], position=-2)
    ig = circuits.eap(model, ids, corrupt, metric, method="eap-ig", steps=5, progress=False)
    top = ig.top(5)
    induction_keys = top[
        (top.sender == "L0H2") & top.receiver.isin([f"L1H{h}.k" for h in range(4)])
    ]
    assert len(induction_keys) >= 2  # measured: ranks 3, 4 (and 7, 21) of 110 edges
    assert (induction_keys.score < 0).all()  # corrupting them lowers the log-probability
    for method, scores in (
        ("eap-ig", ig),
        ("eap", circuits.eap(model, ids, corrupt, metric, progress=False)),
    ):
        df = scores.to_dataframe()
        for head in range(3):  # the three strongest induction heads
            into = df[df.receiver == f"L1H{head}.k"].sort_values("rank")
            assert into.sender.iloc[0] == "L0H2", (method, head)
