"""The magics through a real IPython shell: help, errors, output variable, ledger, unload."""

import io
from contextlib import redirect_stderr, redirect_stdout

import pytest
import torch

from interp_magics import ActivationCache, owned_hooks
from interp_magics.core import events
from interp_magics.jupyter import get_ledger

SETUP = """
import torch
from transformers import GPT2Config, GPT2LMHeadModel
torch.manual_seed(0)
model = GPT2LMHeadModel(GPT2Config(n_layer=3, n_embd=64, n_head=4, vocab_size=97, n_positions=64,
                                   bos_token_id=0, eos_token_id=0)).eval()
batch = {"input_ids": torch.randint(1, 97, (2, 7))}
"""


def run(shell, code, **kw):
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        result = shell.run_cell(code, **kw)
    return result, out.getvalue() + err.getvalue()


def user_vars(shell):
    return {
        k: v for k, v in shell.user_ns.items() if not k.startswith("_") and k not in ("In", "Out")
    }


@pytest.fixture
def nb(shell):
    result, _ = run(shell, SETUP)
    assert result.success
    return shell


def test_issue_example_leaves_a_cache_and_shows_a_table(nb):
    result, text = run(
        nb,
        '%%activations model -m "transformer.h.*.mlp" -m "transformer.h.*.attn" -o acts\nlogits = model(**batch).logits\n',
    )
    assert result.success
    acts = nb.user_ns["acts"]
    assert isinstance(acts, ActivationCache)
    assert list(acts) == [f"transformer.h.{i}.{m}" for i in range(3) for m in ("attn", "mlp")]
    assert nb.user_ns["logits"].shape == (2, 7, 97)  # the cell body ran normally
    assert result.result is acts  # displayed as the cell's output
    for word in ("name", "shape", "dtype", "device", "bytes", "total", "(2, 7, 64)"):
        assert word in text
    # the captured values are the model's own
    hs = nb.user_ns["model"](**nb.user_ns["batch"], output_hidden_states=True).hidden_states
    with torch.no_grad():
        assert torch.equal(
            acts["transformer.h.0.mlp"],
            nb.user_ns["model"]
            .transformer.h[0]
            .mlp(nb.user_ns["model"].transformer.h[0].ln_2(hs[0] + acts["transformer.h.0.attn"])),
        )


def test_braces_are_not_variable_expanded(nb):
    nb.user_ns["x"] = 99  # would be substituted into {...} if expansion were on
    result, _ = run(
        nb, "%%activations model -m transformer.h.{0-1}.mlp -m resid_post.{x} -q\nmodel(**batch)\n"
    )
    assert not result.success  # resid_post.{x} is taken literally, not as resid_post.99
    result, _ = run(nb, "%%activations model -m transformer.h.{0-1}.mlp -q\nmodel(**batch)\n")
    assert result.success and result.result is None
    assert list(nb.user_ns["acts"]) == ["transformer.h.0.mlp", "transformer.h.1.mlp"]


def test_options_pass_through(nb):
    result, _ = run(
        nb,
        "%%activations model -m resid_post --dtype float16 --positions -1 -o small --grad\nmodel(**batch).logits.sum().backward()\n",
    )
    assert result.success
    small = nb.user_ns["small"]
    assert small["resid_post.0"].shape == (2, 1, 64)
    assert small["resid_post.0"].dtype == torch.float16
    assert small["resid_post.0:grad"].shape == (2, 1, 64)
    result, _ = run(
        nb,
        "%%activations model -m transformer.h.0.attn --select 0 --inputs -o io\nmodel(**batch)\n",
    )
    assert result.success and set(nb.user_ns["io"]) == {
        "transformer.h.0.attn",
        "transformer.h.0.attn:input",
    }


def test_help_text(nb):
    _, text = run(nb, "%%activations?")
    for part in (
        "%%activations",
        "-m PATTERN",
        "--dtype",
        "--positions",
        "--max-bytes",
        "resid_post",
        "Example",
    ):
        assert part in text


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (
            "%%activations modl -m resid_post",
            "name 'modl' is not defined in the notebook. Did you mean model?",
        ),
        ("%%activations batch -m resid_post", "expected a torch.nn.Module, got dict"),
        ("%%activations model", "say what to capture with -m PATTERN"),
        (
            "%%activations model -m transformer.h.*.mlpp",
            "Closest module names: transformer.h.*.mlp",
        ),
        ("%%activations model -m resid_post --dtype int4", "unknown dtype 'int4'"),
        ("%%activations model -m resid_post --positions a:b", "cannot read positions"),
        ("%%activations model -m resid_post --device gpu", "unknown device 'gpu'"),
        ("%%activations model -m resid_post -o 2x", "-o '2x' is not a valid variable name"),
        ("%%activations model -m resid_post --nope", "unrecognized arguments: --nope"),
        (
            "%%activations model.transformer.nope -m resid_post",
            "'model.transformer' has no attribute 'nope'",
        ),
    ],
)
def test_bad_input_is_a_usage_error_and_changes_nothing(nb, line, message):
    from IPython.core.error import UsageError

    before = dict(user_vars(nb))
    result, text = run(nb, line + "\nran = model(**batch)\n")
    assert isinstance(result.error_in_exec, UsageError)
    assert message in str(result.error_in_exec)
    assert "Traceback" not in text  # a short message, not a torch traceback
    assert user_vars(nb).keys() == before.keys()  # the body never ran, nothing was stored
    assert owned_hooks() == []


def test_failing_body_leaves_output_unchanged_and_fails_the_cell(nb):
    nb.user_ns["acts"] = "previous value"
    result, text = run(
        nb, '%%activations model -m resid_post\nmodel(**batch)\nraise RuntimeError("boom")\n'
    )
    assert not result.success
    assert "boom" in text and "nothing was captured and 'acts' is unchanged" in text
    assert nb.user_ns["acts"] == "previous value"
    assert owned_hooks() == []


def test_interrupted_body_cleans_up(nb):
    nb.user_ns["acts"] = "previous value"
    result, _ = run(
        nb,
        "%%activations model -m resid_post -m pattern\nmodel(**batch)\nraise KeyboardInterrupt\n",
    )
    assert not result.success
    assert nb.user_ns["acts"] == "previous value"
    assert owned_hooks() == []
    assert nb.user_ns["model"].config._attn_implementation == "sdpa"


def test_memory_guard_message_is_short(nb):
    result, text = run(nb, "%%activations model -m resid_post --max-bytes 1KiB\nmodel(**batch)\n")
    assert not result.success
    assert "CaptureBudgetError: this capture needs about" in text
    assert "Traceback" not in text


def test_body_that_never_calls_the_model_warns(nb):
    from interp_magics import NothingCapturedWarning

    with pytest.warns(NothingCapturedWarning, match="nothing captured: the model was never called"):
        result, _ = run(nb, "%%activations model -m resid_post\ny = 1 + 1\n")
    assert result.success
    assert len(nb.user_ns["acts"]) == 0 and nb.user_ns["y"] == 2


def test_ledger_records_the_outer_cell(nb):
    ledger = get_ledger(nb)
    ledger.clear()
    run(nb, "%%activations model -m resid_post.0 -q\nmodel(**batch)\n", cell_id="cell-a")
    run(
        nb,
        "%%activations model -m resid_post.{1-2} --dtype float16 -q\nmodel(**batch)\n",
        cell_id="cell-b",
    )
    run(nb, "%%activations model -m resid_post -q\nraise ValueError\n", cell_id="cell-c")
    entries = ledger.entries
    assert [(e["kind"], e["cell_id"], e["tensors"]) for e in entries] == [
        ("capture", "cell-a", 1),
        ("capture", "cell-b", 2),
    ]
    assert entries[1]["dtype"] == "float16" and entries[1]["patterns"] == ["resid_post.{1-2}"]
    assert entries[0]["source_sha1"] != entries[1]["source_sha1"]
    assert ledger.for_cell("cell-b") == [entries[1]]
    import json

    assert json.loads(json.dumps(ledger.to_json()))["entries"][0]["cell_id"] == "cell-a"


def test_load_is_idempotent_and_unload_removes_everything(shell):
    shell.run_line_magic("load_ext", "interp_magics")  # already loaded: no second registration
    from interp_magics import load_ipython_extension, unload_ipython_extension

    load_ipython_extension(shell)  # called directly: still one set of callbacks
    ledger = get_ledger(shell)
    assert shell.events.callbacks["pre_run_cell"].count(ledger.pre_run_cell) == 1
    assert len(events.subscribers()) == 1
    unload_ipython_extension(shell)
    assert "activations" not in shell.magics_manager.magics["cell"]
    assert "InterpMagics" not in shell.magics_manager.registry
    assert ledger.pre_run_cell not in shell.events.callbacks["pre_run_cell"]
    assert ledger.post_run_cell not in shell.events.callbacks["post_run_cell"]
    assert events.subscribers() == []
    assert get_ledger(shell) is None
    unload_ipython_extension(shell)  # twice is harmless
    shell.run_line_magic("reload_ext", "interp_magics")
    assert "activations" in shell.magics_manager.magics["cell"]
    assert len(events.subscribers()) == 1


def test_trace_captures_an_nnsight_model_from_the_cells_last_line(nb):
    result, _ = run(nb, "import nnsight\nwrapped = nnsight.NNsight(model)\n")
    assert result.success
    result, text = run(
        nb,
        "%%activations wrapped -m resid_post --positions=-1 --trace -o traced -q\n"
        "ids = batch['input_ids']\n"
        "ids[:1]\n",
    )
    assert result.success, text
    traced = nb.user_ns["traced"]
    assert isinstance(traced, ActivationCache) and len(traced) == 3
    assert traced["resid_post.2"].shape == (1, 1, 64)
    from interp_magics import capture

    with torch.no_grad(), capture(nb.user_ns["model"], "resid_post", positions=-1) as ref:
        nb.user_ns["model"](nb.user_ns["batch"]["input_ids"][:1])
    for key in ref:
        torch.testing.assert_close(traced[key], ref[key], atol=1e-6, rtol=0)
    assert "ids" in nb.user_ns  # the lines above the last one ran in the notebook
    assert owned_hooks() == []


def test_remote_on_a_model_that_runs_here_is_refused_before_the_body(nb):
    from IPython.core.error import UsageError

    before = dict(user_vars(nb))
    result, _ = run(nb, "%%activations model -m resid_post --remote\nran = 1\nbatch\n")
    assert isinstance(result.error_in_exec, UsageError)
    assert "--remote needs an nnsight model" in str(result.error_in_exec)
    assert user_vars(nb).keys() == before.keys()  # the body never ran


def test_trace_needs_an_expression_last(nb):
    from IPython.core.error import UsageError

    result, _ = run(nb, "%%activations model -m resid_post --trace\nx = batch['input_ids']\n")
    assert isinstance(result.error_in_exec, UsageError)
    assert "last line must be the model input" in str(result.error_in_exec)
    # on a HuggingFace model, --trace simply calls it with the last line's value
    result, text = run(nb, "%%activations model -m resid_post --trace -o called -q\nbatch\n")
    assert result.success, text
    assert len(nb.user_ns["called"]) == 3


def test_patch_through_traces_of_an_nnsight_model(nb):
    result, text = run(
        nb,
        "import nnsight\nfrom interp_magics import patching\n"
        "wrapped = nnsight.NNsight(model)\n"
        "corrupt = {'input_ids': batch['input_ids'].clone()}\n"
        "corrupt['input_ids'][:, 2] = 5\n"
        "metric = patching.logit_diff(torch.tensor([3, 4]), torch.tensor([7, 8]))\n"
        "hooked = patching.activation_patch(model, batch, corrupt, metric, progress=False)\n",
    )
    assert result.success, text
    result, text = run(
        nb, "%patch wrapped --clean batch --corrupt corrupt --metric metric --trace -o traced\n"
    )
    assert result.success, text
    traced, hooked = nb.user_ns["traced"], nb.user_ns["hooked"]
    torch.testing.assert_close(traced.per_example, hooked.per_example, atol=1e-5, rtol=0)
    result, _ = run(nb, "%patch model --clean batch --corrupt corrupt --metric metric --remote\n")
    from IPython.core.error import UsageError

    assert isinstance(result.error_in_exec, UsageError)
    assert "need an nnsight model" in str(result.error_in_exec)


def test_attention_view_through_a_trace_of_an_nnsight_model(nb):
    from IPython.core.error import UsageError

    from interp_magics.attention import attention_patterns

    result, text = run(nb, "import nnsight\nwrapped = nnsight.NNsight(model)\n")
    assert result.success, text
    result, text = run(nb, "%attention wrapped batch --trace -o view\n")
    assert result.success, text
    ref = attention_patterns(nb.user_ns["model"], nb.user_ns["batch"])
    torch.testing.assert_close(nb.user_ns["view"].data.pattern, ref.pattern, atol=1e-5, rtol=0)
    result, _ = run(nb, "%attention model batch --remote\n")
    assert isinstance(result.error_in_exec, UsageError)
    assert "need an nnsight model" in str(result.error_in_exec)
