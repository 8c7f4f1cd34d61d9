"""``%lens`` (and the circuit magics) through a real IPython shell: the library's values, the
ledger, clear usage errors, and unload."""

from __future__ import annotations

import io
from contextlib import redirect_stderr, redirect_stdout

import pytest
import torch

from interp_magics import lens, toy
from interp_magics.jupyter import get_ledger
from interp_magics.lens import DLAResult, LensResult
from interp_magics.patching import logit_diff

SETUP = """
import torch
from interp_magics import toy, lens
from interp_magics.patching import logit_diff
model = toy.load()
ids = toy.repeated_sequences(4, seed=1)
answer = ids[:, 1]
metric = logit_diff(ids[:, 1], ids[:, 2])
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


def test_lens_magic_equals_the_function_and_is_in_the_ledger(nb):
    result, _ = run(nb, "%lens model ids --answer answer -k 3 --layers {0-2} -o got")
    assert result.success, result.error_in_exec
    got = nb.user_ns["got"]
    assert isinstance(got, LensResult) and result.result is got
    ids = nb.user_ns["ids"]
    want = lens.logit_lens(toy.load(), ids, answer=ids[:, 1], k=3, layers=[0, 1, 2])
    assert torch.equal(got.top_ids, want.top_ids)
    torch.testing.assert_close(got.answer_logprob, want.answer_logprob, atol=1e-6, rtol=0)
    kinds = [e["kind"] for e in get_ledger(nb).to_json()["entries"]]
    assert "lens" in kinds
    lens_entry = [e for e in get_ledger(nb).to_json()["entries"] if e["kind"] == "lens"][-1]
    assert lens_entry["lens"] == "logit" and lens_entry["layers"] == 3


def test_lens_magic_runs_a_tuned_lens_and_dla(nb, tmp_path):
    result, _ = run(nb, f"tl = lens.new_tuned_lens(model)\ntl.save({str(tmp_path)!r})")
    assert result.success, result.error_in_exec
    by_var, _ = run(nb, "%lens model ids --tuned tl -o a")
    by_path, _ = run(nb, f"%lens model ids --tuned '{tmp_path}' -o b")
    assert by_var.success and by_path.success
    a, b = nb.user_ns["a"], nb.user_ns["b"]
    assert a.method == b.method == "tuned lens"
    assert torch.equal(a.top_ids, b.top_ids)
    result, _ = run(nb, "%lens model ids --dla metric -o d")
    assert result.success, result.error_in_exec
    d = nb.user_ns["d"]
    assert isinstance(d, DLAResult)
    entries = [e for e in get_ledger(nb).to_json()["entries"] if e["kind"] == "lens"]
    assert [e["lens"] for e in entries][-3:] == ["tuned", "tuned", "dla"]
    ids = nb.user_ns["ids"]
    want = lens.dla(toy.load(), ids, logit_diff(ids[:, 1], ids[:, 2]))
    torch.testing.assert_close(d.values, want.values, atol=1e-9, rtol=0)


def test_lens_magic_errors_are_usage_errors(nb):
    for line, message in [
        ("%lens model nothing", "nothing"),
        ("%lens model ids --dla metric --answer answer", "--dla takes its answers"),
        ("%lens model ids --layers {0-9}", "layer"),
        ("%lens model ids -k 0", "k"),
    ]:
        result, text = run(nb, line)
        assert not result.success and message in text, (line, text[-300:])
        assert "Traceback" not in text


def test_unload_removes_the_circuit_magics(shell):
    assert "lens" in shell.magics_manager.magics["line"]
    shell.run_line_magic("unload_ext", "interp_magics")
    assert "lens" not in shell.magics_manager.magics["line"]
    assert "CircuitMagics" not in shell.magics_manager.registry
    shell.run_line_magic("load_ext", "interp_magics")
    assert "lens" in shell.magics_manager.magics["line"]


CIRCUIT_SETUP = """
from interp_magics.patching.metrics import logprob
clean = toy.repeated_sequences(8, seed=0)
corrupt = clean.clone()
corrupt[:, 1:17] = toy.repeated_sequences(8, seed=1)[:, 1:17]
lp = logprob(clean[:, -1], position=-2)
"""


def test_path_patch_and_eap_magics_equal_the_functions_and_reach_the_ledger(nb):
    from interp_magics import circuits
    from interp_magics.patching.metrics import logprob

    assert run(nb, CIRCUIT_SETUP)[0].success
    result, _ = run(
        nb,
        "%path_patch model --clean clean --corrupt corrupt --metric lp --senders L0H2,L0H1 "
        "--receivers 'L1H*.k,logits' -o pp",
    )
    assert result.success, result.error_in_exec
    result, text = run(
        nb,
        "%eap model --clean clean --corrupt corrupt --metric lp --method eap-ig --steps 3 "
        "--verify 4 -o sc --no-progress",
    )
    assert result.success, result.error_in_exec
    assert "%|" not in text  # no progress bar was drawn
    entries = get_ledger(nb).to_json()["entries"]
    kinds = [e["kind"] for e in entries]
    assert kinds[-3:] == ["path_patch", "edge_attribution", "edge_attribution"]
    assert entries[-3]["senders"] == 2 and entries[-3]["receivers"] == 2
    assert entries[-2]["verified"] == 0 and entries[-1]["verified"] == 8
    pp, sc = nb.user_ns["pp"], nb.user_ns["sc"]
    clean = nb.user_ns["clean"]
    corrupt = nb.user_ns["corrupt"]
    metric = logprob(clean[:, -1], position=-2)
    want = circuits.path_patch(
        toy.load(),
        clean,
        corrupt,
        metric,
        senders=["L0H2", "L0H1"],
        receivers=["L1H*.k", "logits"],
        progress=False,
    )
    torch.testing.assert_close(pp.per_example, want.per_example, atol=1e-6, rtol=0)
    want_sc = circuits.eap(toy.load(), clean, corrupt, metric, method="eap-ig", steps=3)
    torch.testing.assert_close(sc.scores, want_sc.scores, atol=1e-6, rtol=0)
    assert sc.verification is not None and len(sc.verification.rows) == 8


def test_circuit_magic_errors_are_usage_errors(nb):
    assert run(nb, CIRCUIT_SETUP)[0].success
    for line, message in [
        ("%eap model --clean clean --corrupt corrupt --metric lp --verify -1", "--verify"),
        ("%eap model --clean clean --corrupt corrupt --metric lp --steps 0", "steps"),
        ("%path_patch model --clean clean --corrupt corrupt --metric lp --senders L9H9", "L9H9"),
        ("%path_patch model --clean clean --metric lp", "--corrupt"),
    ]:
        result, text = run(nb, line)
        assert not result.success and message in text, (line, text[-300:])
        assert "Traceback" not in text
