"""Metric functions written by researchers: which logits they read, the fast path that follows,
the attention mask as an optional argument, and the warning for a metric that reads a pad."""

import warnings

import pytest
import torch

import interp_magics.patching.metrics as metrics_module
from interp_magics import patching
from interp_magics.patching.metric_reads import infer_reads

pytestmark = pytest.mark.filterwarnings("ignore:the clean-corrupted gap:UserWarning")

B, T, V = 3, 8, 97
A, W = 5, 9


def tl_metric(logits):
    return logits[:, -1, A] - logits[:, -1, W]


def masked_metric(logits, attention_mask):
    last = attention_mask.sum(1) - 1
    picked = logits[torch.arange(logits.shape[0]), last]
    return picked[:, A] - picked[:, W]


def full_mask(batch=B, length=T):
    return torch.ones(batch, length, dtype=torch.long)


def test_the_reads_of_a_last_position_metric_are_found():
    reads = infer_reads(tl_metric, full_mask(), V)
    assert reads is not None
    assert reads.positions.tolist() == [T - 1] * B and sorted(reads.rows.tolist()) == [A, W]


def test_a_metric_given_the_mask_reads_each_examples_last_real_token():
    mask = full_mask()
    mask[1, 5:] = 0
    mask[2, 3:] = 0
    reads = infer_reads(masked_metric, mask, V)
    assert reads.positions.tolist() == [T - 1, 4, 2]


def test_a_softmax_over_the_vocabulary_reads_every_row_of_one_position():
    reads = infer_reads(lambda x: x[:, -1].log_softmax(-1)[:, A], full_mask(), V)
    assert reads is not None and reads.rows is None and reads.positions.tolist() == [T - 1] * B


@pytest.mark.parametrize(
    "fn",
    [
        lambda x: x.mean(dim=(1, 2)),  # every position
        lambda x: x[:, -1].argmax(-1).float(),  # no gradient
        # a data-dependent position: the gradient sees one, NaN elsewhere exposes the others
        lambda x: x[torch.arange(x.shape[0]), x[:, :, 0].argmax(1), A],
        lambda x: torch.nan_to_num(x[:, :, A]).sum(1),  # hides NaN: several positions anyway
        lambda x: 1 / 0,  # raises
    ],
)
def test_metrics_that_read_more_or_cannot_be_read_get_full_logits(fn):
    assert infer_reads(fn, full_mask(), V) is None


def test_a_metric_mixing_examples_reads_what_it_reads_of_each():
    def fn(x):
        return x[:, -1, A].mean().expand(x.shape[0])

    reads = infer_reads(fn, full_mask(), V)
    assert reads.positions.tolist() == [T - 1] * B and reads.rows.tolist() == [A]


def _without_reads(monkeypatch):
    monkeypatch.setattr(metrics_module, "infer_reads", lambda *args, **kwargs: None)


def _inputs(seed=0):
    g = torch.Generator().manual_seed(seed)
    clean = torch.randint(1, 90, (B, T), generator=g)
    corrupt = clean.clone()
    corrupt[:, 3] = (corrupt[:, 3] + 11) % 90 + 1
    return clean, corrupt


@pytest.mark.parametrize("family", ["gpt2", "llama"])
@pytest.mark.parametrize("method", ["exact", "attribution"])
def test_the_fast_path_gives_the_values_of_full_logits(family, method, request, monkeypatch):
    model = request.getfixturevalue(family)
    clean, corrupt = _inputs()
    fast = patching.activation_patch(
        model, clean, corrupt, tl_metric, method=method, progress=False
    )
    _without_reads(monkeypatch)
    full = patching.activation_patch(
        model, clean, corrupt, tl_metric, method=method, progress=False
    )
    torch.testing.assert_close(
        torch.as_tensor(fast.raw), torch.as_tensor(full.raw), atol=1e-5, rtol=0
    )
    builtin = patching.activation_patch(
        model, clean, corrupt, patching.logit_diff(A, W), method=method, progress=False
    )
    torch.testing.assert_close(
        torch.as_tensor(fast.raw), torch.as_tensor(builtin.raw), atol=1e-5, rtol=0
    )


def test_a_sweep_with_a_function_metric_computes_only_what_it_reads(gpt2, monkeypatch):
    """The unembedding runs on one position per example and two vocabulary rows."""
    clean, corrupt = _inputs()
    shapes = []
    head = gpt2.get_output_embeddings()
    handle = head.register_forward_hook(lambda m, a, out: shapes.append(tuple(out.shape)))
    try:
        patching.activation_patch(gpt2, clean, corrupt, tl_metric, progress=False)
        fast = set(shapes)
        shapes.clear()
        _without_reads(monkeypatch)
        patching.activation_patch(gpt2, clean, corrupt, tl_metric, progress=False)
        full = set(shapes)
    finally:
        handle.remove()
    assert fast and full
    assert all(shape[-1] == 2 for shape in fast)
    assert all(shape[-1] == V and shape[1] > 1 for shape in full)


def _right_padded(gpt2):
    clean, corrupt = _inputs()
    mask = full_mask()
    mask[1, 6:] = 0
    mask[2, 5:] = 0
    pad = 0
    as_batch = lambda ids: {"input_ids": torch.where(mask.bool(), ids, pad), "attention_mask": mask}  # noqa: E731
    return as_batch(clean), as_batch(corrupt), mask


def test_a_metric_that_reads_a_pad_position_is_warned_about(gpt2):
    clean, corrupt, _ = _right_padded(gpt2)
    with pytest.warns(UserWarning, match="which is padding"):
        patching.activation_patch(gpt2, clean, corrupt, tl_metric, progress=False)


def test_a_metric_given_the_mask_scores_the_last_real_token_like_logit_diff(gpt2):
    clean, corrupt, _ = _right_padded(gpt2)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        warnings.filterwarnings("ignore", "the clean-corrupted gap", UserWarning)
        ours = patching.activation_patch(gpt2, clean, corrupt, masked_metric, progress=False)
    builtin = patching.activation_patch(
        gpt2, clean, corrupt, patching.logit_diff(A, W), progress=False
    )
    torch.testing.assert_close(
        torch.as_tensor(ours.raw), torch.as_tensor(builtin.raw), atol=1e-5, rtol=0
    )
