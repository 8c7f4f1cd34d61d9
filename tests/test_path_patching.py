"""Path patching against independent references: activation patching, plain hooks, scipy.

- sending a sender's corrupted output to every receiver is patching that sender's output,
  which ``patching.activation_patch`` does by its own code path; sending the embeddings to
  every receiver is the corrupted run itself;
- denoising cells equal one plain-hook forward each (``test_edges.Plain``);
- normalisation, t-intervals, and sign-flip p-values (exact enumeration, max-|t| corrected)
  are recomputed here from the per-example metrics with scipy and numpy;
- on the toy model, the previous-token head's path into the induction heads' keys is the
  only significant one.
"""

from __future__ import annotations

import io
import itertools

import numpy as np
import pytest
import torch
from scipy import stats
from test_edges import ANSWER, WRONG, Plain, build, metric_of, pair, receiver_key

from interp_magics import circuits, toy
from interp_magics.patching import activation_patch, logit_diff, logprob

pytestmark = pytest.mark.filterwarnings("ignore:the clean-corrupted gap")
METRIC = logit_diff(ANSWER, WRONG)


@pytest.mark.parametrize("name", ["gpt2", "llama"])
def test_sending_to_every_receiver_is_patching_the_sender(name):
    model = build(name)
    clean, corrupt = pair(b=6)
    senders = ["embed", "L0H1", "L1H2", "L2H3", "MLP0", "MLP1"]
    result = circuits.path_patch(
        model, clean, corrupt, METRIC, senders=senders, receivers=["*"], progress=False
    )
    heads = activation_patch(
        model, clean, corrupt, METRIC, site="head_out", by=("layer", "head"),
        direction="noising", progress=False,
    )  # fmt: skip
    mlps = activation_patch(
        model, clean, corrupt, METRIC, site="mlp_out", by=("layer",), direction="noising",
        progress=False,
    )  # fmt: skip
    expected = [
        heads.corrupt_per_example,  # the embeddings reach everything: the corrupted run
        heads.per_example[0, 1],
        heads.per_example[1, 2],
        heads.per_example[2, 3],
        mlps.per_example[0],
        mlps.per_example[1],
    ]
    for i, want in enumerate(expected):
        assert (result.per_example[i, 0] - want).abs().max() < 1e-5, senders[i]
    assert (result.per_example[:, 0] - result.clean_per_example).abs().mean(-1).min() > 1e-3


def test_denoising_cells_equal_plain_forwards_on_the_corrupted_input():
    model = build("neox")
    plain = Plain(model)
    graph = circuits.graph_of(model)
    clean, corrupt = pair()
    sets = ["L1H2.q", "L2H0.k", "MLP2", "logits"]
    result = circuits.path_patch(
        model, clean, corrupt, METRIC, senders=["L0H0", "MLP1"], receivers=sets,
        direction="denoising", progress=False,
    )  # fmt: skip
    with torch.no_grad():
        _, source = plain.run(clean)
    for i, s in enumerate(["L0H0", "MLP1"]):
        for j, name in enumerate(sets):
            key = receiver_key(graph, name)
            if not plain.upstream(s, key):
                assert torch.isnan(result.values[i, j])
                continue
            with torch.no_grad():
                out, _ = plain.run(corrupt, {key: {s: source[s]}})
            assert (result.per_example[i, j] - metric_of(out)).abs().max() < 1e-5, (s, name)
    assert result.base_value == 0.0 and result.direction == "denoising"


def _sign_flip(d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Exact two-sided sign-flip p-values per row of ``d`` and max-|t| corrected ones."""
    n = d.shape[1]
    signs = np.array(list(itertools.product([1.0, -1.0], repeat=n)))

    def t(x: np.ndarray) -> np.ndarray:
        return x.mean(-1) / (x.std(-1, ddof=1) / np.sqrt(n))

    observed = np.abs(t(d))
    flipped = np.abs(t(signs[:, None, :] * d[None, :, :]))  # [patterns, rows]
    bar = observed * (1 - 1e-9)
    p = (flipped >= bar).mean(0)
    p_max = (flipped.max(1)[:, None] >= bar[None, :]).mean(0)
    return p, p_max


def test_values_intervals_and_tests_are_what_the_docs_say():
    model = build("llama")
    clean, corrupt = pair(b=8)
    result = circuits.path_patch(
        model, clean, corrupt, METRIC, senders=["embed", "L0H*"],
        receivers=["L1H0", "L2KV1.k", "MLP1", "logits"], progress=False,
    )  # fmt: skip
    clean_m, corrupt_m = result.clean_per_example.double(), result.corrupt_per_example.double()
    span = float(clean_m.mean() - corrupt_m.mean())
    per = result.per_example.double()
    expected = (per.mean(-1) - float(corrupt_m.mean())) / span
    edge = result.edge
    assert torch.allclose(result.values[edge].double(), expected[edge], atol=1e-5)
    d = (per - clean_m).numpy()  # noising: changes from the clean run
    rows = d[edge.numpy()]
    half = stats.t.ppf(0.975, d.shape[-1] - 1) * rows.std(-1, ddof=1) / np.sqrt(d.shape[-1])
    low = (rows.mean(-1) - half + float(clean_m.mean() - corrupt_m.mean())) / span
    assert np.allclose(result.ci_low[edge].numpy(), low, atol=1e-4)
    p, p_max = _sign_flip(rows)
    assert np.allclose(result.p_values[edge].numpy(), p, atol=1e-6)
    assert np.allclose(result.p_corrected[edge].numpy(), p_max, atol=1e-6)
    assert torch.equal(result.significant[edge], torch.from_numpy(p_max < 0.05))
    assert torch.isnan(result.p_values[~edge]).all() and not result.significant[~edge].any()


def test_stacking_and_prefix_reuse_change_no_value():
    model = build("gpt2")
    clean, corrupt = pair(b=3, t=9, at=5)
    kw = dict(senders=["embed", "L0H*", "MLP1"], progress=False)
    stacked = circuits.path_patch(model, clean, corrupt, METRIC, **kw)
    single = circuits.path_patch(model, clean, corrupt, METRIC, batch_tokens=27, **kw)
    assert torch.equal(stacked.edge, single.edge)
    assert (stacked.per_example - single.per_example).abs().max() < 1e-6


def test_a_cpu_stack_holds_what_keeps_its_widest_activation_in_cache():
    from interp_magics.patching.runner import CPU_STACK_BYTES, Runner

    model = build("gpt2")
    d_mlp = 4 * model.config.n_embd  # the MLP's hidden layer: the widest activation per token
    runner = Runner(model, METRIC)
    assert runner.stack_tokens(10**9) == CPU_STACK_BYTES // (d_mlp * 4)
    assert runner.stack_tokens(7) == 7  # a smaller budget is the caller's to keep
    half = Runner(build("gpt2", torch.bfloat16), METRIC)
    assert half.stack_tokens(10**9) == CPU_STACK_BYTES // (d_mlp * 2)


@pytest.mark.parametrize("name", ["gpt2", "neox", "llama"])
def test_the_last_block_runs_at_the_scored_position_only_in_patched_runs(monkeypatch, name):
    from interp_magics.core.anatomy import anatomy
    from interp_magics.core.modules import find_module
    from interp_magics.patching.runner import Runner

    model = build(name)
    a = anatomy(model)
    last = a.n_layers - 1
    clean, corrupt = pair(b=3, t=9, at=5)
    projection = find_module(model, a.in_block(last, a.qkv_paths[0]))  # queries (and k, v)
    queries = a.query_columns() if a.qkv != "separate" else slice(None)
    out_proj = Runner(model, METRIC).module("head_out", last)[0]
    mlp = Runner(model, METRIC).module("mlp_out", last)[0]
    seen: dict[str, list[torch.Tensor]] = {"q": [], "out": [], "mlp": []}
    handles = [
        projection.register_forward_hook(lambda m, a_, o: seen["q"].append(o[..., queries])),
        out_proj.register_forward_hook(lambda m, a_, o: seen["out"].append(o)),
        mlp.register_forward_hook(lambda m, a_, o: seen["mlp"].append(o)),
    ]
    # receivers in layer 0 only: every patched run starts there and edits nothing in the last
    # block, whose queries a receiver there would write at every position
    kw = dict(senders=["embed", "L0H*"], receivers=["L0H1", "MLP0"], progress=False)
    try:
        fast = circuits.path_patch(model, clean, corrupt, METRIC, **kw)
    finally:
        for h in handles:
            h.remove()
    # reference runs (kept whole) first, then the patched runs: queries, the heads' written
    # output and the MLP's are computed at the scored (last) position only, 0 elsewhere
    for key in seen:
        assert all(x[:, :-1].ne(0).any() for x in seen[key][:2])
        patched = seen[key][2:]
        assert patched and all(x[:, :-1].eq(0).all() and x[:, -1].ne(0).any() for x in patched)
    monkeypatch.setattr(Runner, "_restrict_last_block", lambda *a: None)
    whole = circuits.path_patch(model, clean, corrupt, METRIC, **kw)
    assert (fast.per_example - whole.per_example).nan_to_num().abs().max() < 1e-6


def test_a_stacked_run_reads_its_first_layers_projections_from_the_base_run(monkeypatch):
    from interp_magics.circuits import runs

    model = build("gpt2")
    clean, corrupt = pair(b=3, t=9, at=5)
    kw = dict(senders=["embed", "L0H*", "MLP1"], progress=False)
    projection = type(model.transformer.h[0].attn.c_attn)
    computed: list[int] = []
    plain_forward = projection.forward

    def counted(self, x):  # type: ignore[no-untyped-def]
        computed.append(id(self))
        return plain_forward(self, x)

    monkeypatch.setattr(projection, "forward", counted)
    starts: list[int] = []
    run_chunk = runs._run_chunk

    def chunk(setup, base, delta, cells, start, prefix):  # type: ignore[no-untyped-def]
        starts.append(start)
        return run_chunk(setup, base, delta, cells, start, prefix)

    monkeypatch.setattr(runs, "_run_chunk", chunk)
    reused = circuits.path_patch(model, clean, corrupt, METRIC, **kw)
    with_reuse = len(computed)
    computed.clear()
    monkeypatch.setattr(runs, "_reuse_projections", lambda *a: None)
    recomputed = circuits.path_patch(model, clean, corrupt, METRIC, **kw)
    # one projection fewer per stacked run that starts before the last block (the last
    # block's projection computes its queries at the scored position alone either way),
    # and not a value changed
    before_last = sum(s < model.config.n_layer - 1 for s in starts[: len(starts) // 2])
    assert before_last >= 2 and len(computed) - with_reuse == before_last
    assert (reused.per_example - recomputed.per_example).nan_to_num().abs().max() < 1e-6


def test_result_table_picture_and_summary():
    from matplotlib.image import imread

    model = build("gpt2")
    clean, corrupt = pair()
    result = circuits.path_patch(
        model, clean, corrupt, METRIC, senders=["L0H*", "MLP0"], receivers=["L0H0", "L1H*.v", "logits"],
        progress=False,
    )  # fmt: skip
    df = result.to_dataframe()
    assert len(df) == int(result.edge.sum()) == 5 * 3 - 5  # nothing reaches layer 0's heads
    assert list(df.columns[:4]) == ["sender", "receiver", "value", "raw"]
    top = result.top(3)
    assert list(top["sender"] + top["receiver"]) == list(
        df.reindex((df["value"] - 1).abs().sort_values(ascending=False).index)
        .head(3)
        .pipe(lambda x: x["sender"] + x["receiver"])
    )
    row = result.cell("L0H2", "logits")
    assert row["value"] == pytest.approx(float(result.values[2, 2]))
    text = repr(result)
    assert f"{result.clean_baseline:.4g}" in text and "p_corr" in text
    png = result._repr_png_()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and imread(io.BytesIO(png)).shape[0] > 100


def test_toy_previous_token_head_reaches_the_induction_keys():
    model = toy.load()
    ids = toy.repeated_sequences(16, seed=0)
    corrupt = ids.clone()
    corrupt[:, 1:17] = toy.repeated_sequences(16, seed=1)[:, 1:17]  # another first half
    metric = logprob(ids[:, -1], position=-2)  # the last repeated token, predicted in context
    result = circuits.path_patch(
        model, ids, corrupt, metric, senders="L0H*",
        receivers=["L1H*.q", "L1H*.k", "L1H*.v", "logits"], progress=False,
    )  # fmt: skip
    cell = result.cell("L0H2", "L1H*.k")
    assert cell["significant"] and cell["p_corrected"] < 0.05
    assert cell["ci_high"] < 0.5  # noising this one path removes most of the behaviour
    assert cell["raw"] < result.clean_baseline
    assert int(result.significant.sum()) == 1  # and no other path from layer 0 is significant


def test_padded_examples_score_as_they_do_alone():
    model = build("gpt2")
    clean, corrupt = pair(b=2, t=8, at=2)
    mask = torch.ones_like(clean)
    mask[1, 6:] = 0  # example 1 is 6 tokens long, right-padded
    kw = dict(
        senders=["embed", "L0H2", "MLP1"], receivers=["L1H0", "MLP2", "logits"], progress=False
    )
    padded = circuits.path_patch(
        model, {"input_ids": clean, "attention_mask": mask},
        {"input_ids": corrupt, "attention_mask": mask}, METRIC, **kw,
    )  # fmt: skip
    alone = circuits.path_patch(model, clean[1:, :6], corrupt[1:, :6], METRIC, **kw)
    assert (padded.per_example[..., 1] - alone.per_example[..., 0]).abs().max() < 1e-5


def test_kl_to_clean_is_measured_against_the_clean_run():
    from interp_magics.patching import kl_to_clean

    model = build("llama")
    plain = Plain(model)
    graph = circuits.graph_of(model)
    clean, corrupt = pair()
    result = circuits.path_patch(
        model, clean, corrupt, kl_to_clean(), senders=["L1H1"], receivers=["L2KV0.v", "logits"],
        progress=False,
    )  # fmt: skip
    with torch.no_grad():
        logits, _ = plain.run(clean)
        _, source = plain.run(corrupt)
        reference = logits[:, -1].log_softmax(-1)
        for j, name in enumerate(["L2KV0.v", "logits"]):
            out, _ = plain.run(clean, {receiver_key(graph, name): {"L1H1": source["L1H1"]}})
            patched = out[:, -1].log_softmax(-1)
            kl = (reference.exp() * (reference - patched)).sum(-1)
            assert (result.per_example[0, j] - kl).abs().max() < 1e-6
            assert float(kl.mean()) > 5e-5  # the patch moves the distribution
    assert result.clean_baseline == 0.0
