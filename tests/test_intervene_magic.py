"""``%%intervene`` through a real IPython shell: the edits equal hand-written hooks, the ledger
records the intervention, no hook stays behind, and bad lines get clear usage errors."""

from __future__ import annotations

import io
from contextlib import redirect_stderr, redirect_stdout

import pytest
import torch
from IPython.core.error import UsageError

from interp_magics import owned_hooks
from interp_magics.jupyter import get_ledger

SETUP = """
import torch
from interp_magics import testing
from interp_magics.intervene import edit
model = testing.gpt2().eval()
ids = torch.randint(1, 90, (2, 6), generator=torch.Generator().manual_seed(0))
steer = torch.randn(64, generator=torch.Generator().manual_seed(1))
"""


def run(shell, code):
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        result = shell.run_cell(code)
    return result, out.getvalue() + err.getvalue()


@pytest.fixture
def nb(shell):
    result, _ = run(shell, SETUP)
    assert result.success, result.error_in_exec
    return shell


def _by_hand(nb):
    """The model's logits with ``steer * 4`` added to block 1's output at the last position
    and head 2 of layer 0 zeroed, by plain hooks."""
    model, ids, steer = nb.user_ns["model"], nb.user_ns["ids"], nb.user_ns["steer"]

    def add(mod, args, out):
        hidden = (out if isinstance(out, torch.Tensor) else out[0]).clone()
        hidden[:, -1] += 4 * steer
        return hidden if isinstance(out, torch.Tensor) else (hidden, *out[1:])

    def zero_head(mod, args):
        x = args[0].clone()
        x.view(*x.shape[:2], 4, -1)[:, :, 2] = 0
        return (x, *args[1:])

    handles = [
        model.transformer.h[1].register_forward_hook(add),
        model.transformer.h[0].attn.c_proj.register_forward_pre_hook(zero_head),
    ]
    try:
        with torch.no_grad():
            return model(ids).logits
    finally:
        for h in handles:
            h.remove()


def test_the_cell_runs_with_the_edits_and_the_ledger_records_them(nb):
    result, text = run(
        nb,
        "%%intervene model 'add resid_post.1 steer*4 @ -1' 'zero head_out.0 heads=2' -o iv\n"
        "with torch.no_grad():\n    edited = model(ids).logits\n",
    )
    assert result.success, text
    torch.testing.assert_close(nb.user_ns["edited"], _by_hand(nb), atol=1e-6, rtol=0)
    assert owned_hooks() == []
    assert nb.user_ns["iv"].forwards == 1
    entry = [e for e in get_ledger(nb).to_json()["entries"] if e["kind"] == "intervention"][-1]
    assert entry["edits"] == 2 and entry["direction"] is True
    assert sorted(entry["operations"]) == ["add", "zero"]
    with torch.no_grad():
        plain = nb.user_ns["model"](nb.user_ns["ids"]).logits
    assert not torch.allclose(plain, nb.user_ns["edited"])  # the edits did something


def test_edits_from_a_variable_and_during_generation(nb):
    result, text = run(
        nb,
        "edits = [edit.zero('attn_out.0')]\n",
    )
    assert result.success, text
    result, text = run(
        nb,
        "%%intervene model --edits edits --during new\n"
        "out = model.generate(ids, max_new_tokens=3, do_sample=False, pad_token_id=0)\n",
    )
    assert result.success, text
    assert nb.user_ns["out"].shape == (2, 9) and owned_hooks() == []


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("%%intervene model\nx = 1\n", "give at least one edit"),
        ("%%intervene model 'add resid_post.1'\nx = 1\n", "line 1"),
        ("%%intervene model 'zero nowhere.9'\nx = 1\n", "matches no module"),
        ("%%intervene model 'add resid_post.1 steer[:3]'\nx = 1\n", "give a vector of 64"),
        ("%%intervene model 'zero attn_out.0'\n", "cell body is empty"),
    ],
)
def test_bad_lines_are_refused_before_the_body_runs(nb, line, message):
    nb.user_ns.pop("x", None)
    result, _ = run(nb, line)
    assert isinstance(result.error_in_exec, UsageError), result.error_in_exec
    assert message in str(result.error_in_exec)
    assert "x" not in nb.user_ns and owned_hooks() == []


def test_a_failing_body_leaves_no_hook(nb):
    result, _ = run(nb, "%%intervene model 'zero attn_out.0'\nraise ValueError('boom')\n")
    assert not result.success and owned_hooks() == []
