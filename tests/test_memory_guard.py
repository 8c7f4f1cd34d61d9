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
    pattern = B * 4 * T * T * 4
    with (
        pytest.raises(CaptureBudgetError) as err,
        capture(gpt2, ["resid_post", "pattern"], max_bytes=3 * RESID + 2 * pattern),
    ):
        gpt2(ids)
    assert err.value.estimate == 3 * RESID + 3 * pattern


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
