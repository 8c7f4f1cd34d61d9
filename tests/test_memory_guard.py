"""The memory guard refuses oversized captures before allocating them."""

import pytest
import torch

from interp_magics import CaptureBudgetError, capture
from interp_magics.core import memory

B, T, D, L = 2, 9, 64, 3
RESID = B * T * D * 4  # bytes of one float32 residual tensor


def test_refuses_at_the_first_layer_with_an_exact_estimate(gpt2, ids):
    later = []
    h = gpt2.transformer.h[1].register_forward_hook(lambda m, a, o: later.append(1))
    try:
        with (
            pytest.raises(CaptureBudgetError) as err,
            capture(gpt2, ["resid_post", "attn_out", "mlp_out"], max_bytes=8 * RESID) as acts,
        ):
            gpt2(ids)
    finally:
        h.remove()
    e = err.value
    assert e.allocated == 0  # refused before the first copy
    assert e.estimate == 9 * RESID  # 3 sites x 3 layers of equal size
    assert e.budget == 8 * RESID
    assert later == []  # the forward stopped in layer 0: no long work before the refusal
    assert len(acts) == 0
    msg = str(e)
    for part in ("positions=-1 keeps 1 of 9", "dtype='float16'", "fewer modules", "max_bytes"):
        assert part in msg


def test_float16_fits_where_float32_did_not(gpt2, ids):
    budget = 3 * RESID - 1
    with pytest.raises(CaptureBudgetError), capture(gpt2, "resid_post", max_bytes=budget):
        gpt2(ids)
    with capture(gpt2, "resid_post", max_bytes=budget, dtype="float16") as acts:
        gpt2(ids)
    assert acts.nbytes == 3 * RESID // 2 <= budget


def test_positions_shrink_the_estimate(gpt2, ids):
    with capture(gpt2, "resid_post", max_bytes=RESID, positions=-1) as acts:
        gpt2(ids)
    assert acts.nbytes == 3 * B * D * 4


def test_repeated_calls_hit_the_hard_limit(gpt2, ids):
    with (
        pytest.raises(CaptureBudgetError) as err,
        capture(gpt2, "resid_post", max_bytes=5 * RESID) as acts,
    ):
        gpt2(ids)
        gpt2(ids)  # the second call would need 6 tensors
    assert err.value.allocated == 5 * RESID
    assert len(acts) == 0


def test_patterns_are_estimated_from_their_own_size(gpt2, ids):
    gpt2.set_attn_implementation("eager")  # no kernel switch: only stored tensors count
    pattern = B * 4 * T * T * 4
    with (
        pytest.raises(CaptureBudgetError) as err,
        capture(gpt2, ["resid_post", "pattern"], max_bytes=3 * RESID + 2 * pattern),
    ):
        gpt2(ids)
    assert err.value.estimate == 3 * RESID + 3 * pattern


def _minilm_sizes(batch, tokens, kept=None):
    """Stored bytes of resid_post and pattern on all 6 layers of MiniLM (384 wide, 12 heads)."""
    kept = tokens if kept is None else kept
    return 6 * batch * kept * 384 * 4, 6 * batch * 12 * kept * tokens * 4


def _eager_extra(batch, tokens, heads, itemsize=4):
    # Independent restatement of the documented rule: 1.5 layer-sized score tensors.
    return 3 * batch * heads * tokens * tokens * itemsize // 2


def test_mixed_sites_are_projected_each_from_its_own_shape(minilm):
    """A pattern arriving first no longer stands in for the residual tensors (MiniLM, 8 x 64)."""
    model, _ = minilm
    ids = torch.randint(1000, 2000, (8, 64))
    mask = torch.ones_like(ids)
    resid, pattern = _minilm_sizes(8, 64)
    eager = _eager_extra(8, 64, 12)
    assert resid + pattern == 13.5 * 2**20  # the capture from the report, refused before
    with torch.no_grad(), capture(model, ["resid_post", "pattern"], max_bytes="16MiB") as acts:
        model(input_ids=ids, attention_mask=mask)
    assert acts.nbytes == resid + pattern
    assert sum(acts[f"pattern.{i}"].nbytes for i in range(6)) == pattern
    # One byte short: the exact projection is reported, and nothing ran.
    ran = []
    h = model.encoder.layer[0].register_forward_pre_hook(lambda m, a: ran.append(1))
    try:
        with (
            pytest.raises(CaptureBudgetError) as err,
            torch.no_grad(),
            capture(model, ["resid_post", "pattern"], max_bytes=resid + pattern + eager - 1),
        ):
            model(input_ids=ids, attention_mask=mask)
    finally:
        h.remove()
    assert err.value.estimate == resid + pattern + eager
    assert ran == []
    assert "positions=-1 keeps 1 of 64 tokens" in str(err.value)
    assert model.config._attn_implementation == "sdpa"  # restored after the refusal


def test_positions_shrink_pattern_rows_in_the_projection(minilm):
    model, _ = minilm
    ids = torch.randint(1000, 2000, (4, 32))
    resid, pattern = _minilm_sizes(4, 32, kept=2)
    eager = _eager_extra(4, 32, 12)
    budget = resid + pattern + eager
    with (
        torch.no_grad(),
        capture(model, ["resid_post", "pattern"], positions=[0, -1], max_bytes=budget) as acts,
    ):
        model(input_ids=ids)
    assert acts.nbytes == resid + pattern
    assert acts["pattern.0"].shape == (4, 12, 2, 32)
    with (
        pytest.raises(CaptureBudgetError) as err,
        torch.no_grad(),
        capture(model, ["resid_post", "pattern"], positions=[0, -1], max_bytes=budget - 1),
    ):
        model(input_ids=ids)
    assert err.value.estimate == budget and err.value.allocated == 0


def test_switching_to_eager_attention_is_refused_before_the_forward(gpt2):
    """positions=-1 stores little, but the eager kernel's scores are batch x heads x T x T."""
    assert gpt2.config._attn_implementation == "sdpa"
    ids = torch.randint(1, 90, (16, 128))
    stored = 3 * 16 * 4 * 1 * 128 * 4  # 3 layers of [batch, heads, 1 query row, keys]
    eager = _eager_extra(16, 128, 4)
    ran = []
    h = gpt2.transformer.h[0].register_forward_pre_hook(lambda m, a: ran.append(1))
    try:
        with (
            pytest.raises(CaptureBudgetError) as err,
            capture(gpt2, "pattern", positions=-1, max_bytes=stored + eager - 1) as acts,
        ):
            gpt2(ids)
    finally:
        h.remove()
    e = err.value
    assert e.estimate == stored + eager and e.allocated == 0
    assert ran == [] and len(acts) == 0
    msg = str(e)
    for part in (
        "'eager' attention",
        "batch 16 x 4 heads x 128 x 128",
        "fewer tokens",
        "max_bytes",
    ):
        assert part in msg
    assert gpt2.config._attn_implementation == "sdpa"
    with capture(gpt2, "pattern", positions=-1, max_bytes=stored + eager) as acts:
        gpt2(ids)
    assert acts.nbytes == stored


def test_a_model_already_eager_adds_no_switching_cost(gpt2):
    gpt2.set_attn_implementation("eager")
    ids = torch.randint(1, 90, (16, 128))
    stored = 3 * 16 * 4 * 1 * 128 * 4
    with capture(gpt2, "pattern", positions=-1, max_bytes=stored) as acts:
        gpt2(ids)
    assert acts.nbytes == stored


def test_grad_doubles_the_estimate(gpt2, ids):
    with (
        pytest.raises(CaptureBudgetError) as err,
        capture(gpt2, "resid_post", grad=True, max_bytes=5 * RESID),
    ):
        gpt2(ids)
    assert err.value.estimate == 6 * RESID


def test_default_budget_is_half_of_available_memory(gpt2, ids, monkeypatch):
    monkeypatch.setattr(memory, "available_bytes", lambda device: 4 * RESID)
    with pytest.raises(CaptureBudgetError) as err, capture(gpt2, "resid_post"):
        gpt2(ids)
    assert err.value.budget == 2 * RESID
    assert "50% of the" in str(err.value) and "RAM available" in str(err.value)


def test_size_strings():
    from interp_magics.core.units import parse_bytes

    assert parse_bytes("2GiB") == 2 * 2**30
    assert parse_bytes("1.5 MB") == 1_500_000
    assert parse_bytes(1024) == 1024
    assert parse_bytes(None) is None


def test_guard_in_real_memory_terms(gpt2):
    """A capture of a long batch is refused by a budget set from its actual tensor size."""
    ids = torch.randint(1, 90, (8, 128))
    need = 3 * 8 * 128 * D * 4
    with pytest.raises(CaptureBudgetError), capture(gpt2, "resid_post", max_bytes=need - 1):
        gpt2(ids)
    with capture(gpt2, "resid_post", max_bytes=need) as acts:
        gpt2(ids)
    assert acts.nbytes == need
