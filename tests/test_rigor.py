"""The rigor checker: rules on the fixture notebooks, the ledger, suppression, formats, robustness."""

import inspect
import json
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.notebooks import notebook

from interp_magics import rigor
from interp_magics.rigor.cli import main as cli
from interp_magics.rigor.notebook import NotebookError

FIXTURES = Path(__file__).parent / "fixtures" / "rigor"
RULE_IDS = sorted(rigor.RULES)


def fixture(rule, kind):
    return FIXTURES / f"{rule}_{kind}.ipynb"


@pytest.mark.parametrize("rule", RULE_IDS)
def test_each_rule_triggers_and_its_fix_clears_it(rule):
    bad = rigor.check(fixture(rule, "bad"))
    assert rule in {f.rule for f in bad}, bad
    good = rigor.check(fixture(rule, "good"))
    assert rule not in {f.rule for f in good}, good


def test_precision_and_recall_on_the_fixture_set():
    """Every finding on the fixture set is the one the fixture was written for, and none is missed."""
    expected, produced = set(), set()
    for path in sorted(FIXTURES.glob("*.ipynb")):
        rule, kind = path.stem.split("_")
        if kind == "bad":
            expected.add((path.name, rule))
        produced |= {(path.name, f.rule) for f in rigor.check(path)}
    true = expected & produced
    precision = len(true) / len(produced)
    recall = len(true) / len(expected)
    print(
        f"rigor fixtures: {len(expected)} expected findings, precision {precision:.2f}, recall {recall:.2f}"
    )
    assert len(expected) == len(rigor.RULES) and {"PRB005", "STA005"} <= set(rigor.RULES)
    assert precision == 1.0 and recall == 1.0


def test_every_rule_is_documented():
    for rule in rigor.RULES.values():
        assert rule.severity in ("error", "warning")
        assert rule.fix and rule.reference and rule.alternatives and rule.title


@pytest.mark.parametrize("rule_id", RULE_IDS)
def test_every_rule_is_a_named_documented_function(rule_id):
    """Each rule's check reads as what it flags: a descriptive name and a docstring saying why."""
    rule = rigor.RULES[rule_id]
    name = rule.check.__name__
    assert re.fullmatch(r"[a-z]+(_[a-z]+)+", name), f"{rule_id} is checked by {name!r}"
    doc = inspect.getdoc(rule.check) or ""
    assert doc.startswith("Flag ") and len(doc.splitlines()) > 2, f"{name} docstring: {doc!r}"
    assert rule.title and rule.fix and rule.reference


def test_location_format():
    [f] = rigor.check(fixture("REP002", "bad"))
    assert (
        f.location() == "REP002_bad.ipynb:cell 3 [id c3, In[2]]:1" and "out of order" in f.message
    )
    [f] = rigor.check(fixture("PRB001", "bad"))
    assert (
        f.location() == "PRB001_bad.ipynb:cell 4 [id c4]:1"
        and f.cell_id == "c4"
        and f.severity == "error"
    )


def test_suppression_with_a_reason(tmp_path):
    base = nbformat.read(fixture("PRB001", "bad"), as_version=4)
    with_reason = nbformat.from_dict(json.loads(json.dumps(base)))
    with_reason.cells[
        3
    ].source += "  # rigor: ignore[PRB001] -- exploratory, controls come in section 3"
    [f] = rigor.check(with_reason)
    assert f.suppressed and "exploratory" in f.reason and "comment" in f.reason
    assert rigor.check(with_reason).summary() == "0 errors, 0 warnings, 1 suppressed"
    assert not rigor.check(with_reason, suppress=False)[0].suppressed  # --no-suppress
    no_reason = nbformat.from_dict(json.loads(json.dumps(base)))
    no_reason.cells[3].source += "  # rigor: ignore[PRB001]"
    assert not rigor.check(no_reason)[0].suppressed  # a suppression must give its reason
    assert "gives no reason, so it does not suppress" in rigor.check(no_reason)[0].message
    tagged = nbformat.from_dict(json.loads(json.dumps(base)))
    tagged.cells[3].metadata["tags"] = ["rigor-ignore:PRB001"]
    assert rigor.check(tagged)[0].suppressed
    meta = nbformat.from_dict(json.loads(json.dumps(base)))
    meta.cells[3].metadata["interp_magics"] = {
        "ignore": [{"rule": "PRB001", "reason": "pilot run"}]
    }
    assert rigor.check(meta)[0].reason.startswith("pilot run")
    nb_meta = nbformat.from_dict(json.loads(json.dumps(base)))
    nb_meta.metadata["interp_magics"] = {
        "rigor": {"ignore": [{"rule": "PRB001", "reason": "teaching example"}]}
    }
    assert rigor.check(nb_meta)[0].suppressed
    path = tmp_path / "s.ipynb"
    nbformat.write(with_reason, path)
    assert cli([str(path)]) == 0  # the only error is suppressed
    assert cli([str(path), "--no-suppress"]) == 1


def test_markdown_suppression_comment():
    nb = notebook(
        (
            "md",
            "Head 3 implements induction. <!-- rigor: ignore[CAU001] -- shown in the companion paper -->",
        )
    )
    [f] = rigor.check(nb)
    assert f.rule == "CAU001" and f.suppressed


def test_ledger_evidence_from_a_real_kernel(shell):
    """Probes run in a loop produce uncorrected p-values and no controls: the ledger shows both."""
    from interp_magics.jupyter import get_ledger

    code = (
        "import numpy as np\nfrom interp_magics import probes\nrng = np.random.default_rng(0)\n"
        "X = rng.standard_normal((60, 4)); y = rng.integers(0, 2, 60)\n"
        "for k in range(4):\n    r = probes.probe(X, y, controls=('majority',), n_permutations=0, cv=3, progress=False)"
    )
    ledger = get_ledger(shell)
    ledger.clear()
    assert shell.run_cell(code, cell_id="run1").success
    nb = notebook(("md", "# study"), ("code", code))
    nb.cells[1]["id"] = "run1"
    findings = rigor.check(nb, ledger=ledger)
    by_rule = {f.rule: f for f in findings}
    assert by_rule["STA001"].source == "ledger" and "4 p-values" in by_rule["STA001"].message
    assert by_rule["PRB001"].source == "ledger" and by_rule["PRB001"].cell_id == "run1"
    static = {f.rule: f for f in rigor.check(nb)}["STA001"]
    assert (
        static.source == "static" and "inside a loop" in static.message
    )  # the count needs the ledger
    # edited after it ran: the ledger's source hash no longer matches
    nb.cells[1].source += "\n# tweaked"
    assert "REP002" in {f.rule for f in rigor.check(nb, ledger=ledger.to_json())}


def test_ledger_interventions():
    nb = notebook(("md", "Head 2.1 is responsible for the answer."), ("code", "x = 1"))
    assert "CAU001" in {f.rule for f in rigor.check(nb)}
    patch = {
        "kind": "patch",
        "cell_id": "c2",
        "method": "attribution",
        "verified": 0,
        "corruption": "Gaussian noise on embeddings",
        "metric": "probability of answer",
    }
    found = {f.rule: f for f in rigor.check(nb, ledger=[patch])}
    assert "CAU001" not in found  # an intervention ran
    assert (
        found["CAU004"].source == "ledger"
        and found["CAU003"].source == "ledger"
        and found["CAU002"].source == "ledger"
    )
    ok = {
        **patch,
        "method": "exact",
        "corruption": "counterfactual prompts",
        "metric": "logit difference",
    }
    assert not {"CAU002", "CAU003", "CAU004"} & {f.rule for f in rigor.check(nb, ledger=[ok])}


def test_select_and_ignore():
    path = fixture("PRB001", "bad")
    assert rigor.check(path, select=["STA"]) == []
    assert rigor.check(path, ignore=["PRB"]) == []
    assert [f.rule for f in rigor.check(path, select=["PRB001"])] == ["PRB001"]
    with pytest.raises(NotebookError, match="unknown rule"):
        rigor.check(path, select=["XYZ999"])


def test_cli_formats_and_exit_codes(tmp_path, capsys):
    bad, good = str(fixture("STA001", "bad")), str(fixture("STA001", "good"))
    assert cli([good]) == 0
    assert cli([bad]) == 1
    out = capsys.readouterr().out
    assert "STA001 error" in out and "fix: correct the family of tests" in out
    assert cli([bad, "--format", "json"]) == 1
    data = json.loads(capsys.readouterr().out)
    assert data["findings"][0]["rule"] == "STA001" and data["summary"].startswith("1 error,")
    assert cli([bad, "--format", "sarif"]) == 1
    sarif = json.loads(capsys.readouterr().out)
    assert sarif["version"] == "2.1.0"
    run = sarif["runs"][0]
    assert (
        run["tool"]["driver"]["name"] == "interp-rigor"
        and run["tool"]["driver"]["rules"][0]["id"] == "STA001"
    )
    result = run["results"][0]
    assert result["ruleId"] == "STA001" and result["level"] == "error"
    region = result["locations"][0]["physicalLocation"]["region"]["startLine"]
    lines = Path(bad).read_text().splitlines()
    assert '"cell_type"' in lines[region - 1]  # points into the .ipynb at the cell
    assert cli([bad, "--ignore", "STA"]) == 0
    assert cli([str(tmp_path / "missing.ipynb")]) == 2
    assert cli([bad, "--select", "NOPE1"]) == 2
    # the installed console script
    proc = subprocess.run(
        [str(Path(sys.executable).parent / "interp-rigor"), good], capture_output=True, text=True
    )
    assert proc.returncode == 0 and "no findings" in proc.stdout


def test_bad_files_give_a_clear_message_and_stay_untouched(tmp_path, capsys):
    broken = tmp_path / "broken.ipynb"
    broken.write_text('{"cells": [ {"cell_type": "code", ')
    before = broken.read_bytes()
    assert cli([str(broken)]) == 2
    err = capsys.readouterr().err
    assert "not valid JSON (line 1" in err and "restore it from version control" in err
    assert broken.read_bytes() == before
    other = tmp_path / "other.ipynb"
    other.write_text('{"a": 1}')
    assert cli([str(other)]) == 2 and "not a notebook" in capsys.readouterr().err
    binary = tmp_path / "bin.ipynb"
    binary.write_bytes(b"\xff\xfe\x00")
    assert cli([str(binary)]) == 2


def test_nbformat_v3_empty_magics_and_syntax_errors(tmp_path):
    v3 = {
        "nbformat": 3,
        "nbformat_minor": 0,
        "metadata": {},
        "worksheets": [{"cells": [
            {"cell_type": "markdown", "source": "Head 1 implements copying."},
            {"cell_type": "code", "input": "x = 1", "language": "python", "outputs": []},
        ]}],
    }  # fmt: skip
    path = tmp_path / "v3.ipynb"
    path.write_text(json.dumps(v3))
    assert [f.rule for f in rigor.check(path)] == ["CAU001"]
    assert rigor.check(nbformat.v4.new_notebook()) == []
    nb = notebook(
        ("code", "%%bash\necho hi"),
        ("code", "!pip list\n%time x = np.random.rand(3)\nls = !ls"),
        ("code", "def broken(:\n    pass\ny = np.random.rand(2)"),
        ("code", "%%activations model -m resid_post\nnp.random.rand(4)"),
        ("raw", "anything"),
    )
    found = rigor.check(nb)
    rep = [f for f in found if f.rule == "REP001"]
    assert rep and rep[0].cell_index == 2  # the magic's code is read, the bash cell is not


def test_thousand_cell_notebook():
    cells = []
    for i in range(1000):
        cells.append(
            (
                "md" if i % 5 == 0 else "code",
                f"## step {i}"
                if i % 5 == 0
                else f"x{i} = torch.randn(3) * {i}\nprint(x{i}.mean())",
            )
        )
    findings = rigor.check(notebook(*cells))
    assert [f.rule for f in findings] == ["REP001"]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["code", "markdown", "raw"]),
            st.text(max_size=200),
            st.one_of(st.none(), st.integers(-3, 50)),
        ),
        max_size=12,
    )
)
def test_random_cell_contents_never_crash(cells):
    nb = {"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": []}
    for i, (kind, text, count) in enumerate(cells):
        cell = {"cell_type": kind, "id": f"r{i}", "metadata": {}, "source": text}
        if kind == "code":
            cell.update(
                outputs=[{"output_type": "stream", "name": "stdout", "text": text[:20]}],
                execution_count=count,
            )
        nb["cells"].append(cell)
    findings = rigor.check(nb)
    assert all(f.rule in rigor.RULES for f in findings)
    repr(findings), findings._repr_html_()


def test_run_executes_a_copy_and_uses_its_ledger(tmp_path, capsys):
    path = tmp_path / "study.ipynb"
    nb = notebook(
        ("md", "# Probing"),
        (
            "code",
            "import numpy as np\nfrom interp_magics import probes\nrng = np.random.default_rng(0)\nX = rng.standard_normal((60, 4))\ny = rng.integers(0, 2, 60)",
        ),
        (
            "code",
            "reports = [probes.probe(X, y, n_permutations=0, controls=('majority',), cv=3, progress=False) for _ in range(3)]",
        ),
    )
    nbformat.write(nb, path)
    before = path.read_bytes()
    assert cli(["run", str(path), "--format", "json"]) == 1
    data = json.loads(capsys.readouterr().out)
    rules = {(f["rule"], f["source"]) for f in data["findings"]}
    assert ("STA001", "ledger") in rules and ("PRB001", "ledger") in rules
    assert path.read_bytes() == before  # the original is never modified


def test_rigor_magic(shell, tmp_path, monkeypatch):
    path = tmp_path / "mine.ipynb"
    nbformat.write(nbformat.read(fixture("CAU001", "bad"), as_version=4), path)
    result = shell.run_cell(f"%rigor {path}")
    assert result.success, result.error_in_exec
    findings = result.result
    assert [f.rule for f in findings] == ["CAU001"]
    html = findings._repr_html_()
    assert (
        'href="#cell-id=c1"' in html
        and "mine.ipynb#" not in html
        and 'data-rule="CAU001"' in html
        and "save to include" in html
    )
    monkeypatch.delenv("JPY_SESSION_NAME", raising=False)
    result = shell.run_cell("%rigor")
    assert "give its path" in str(result.error_in_exec)
    monkeypatch.setenv("JPY_SESSION_NAME", str(path))
    assert [f.rule for f in shell.run_cell("%rigor --select CAU").result] == ["CAU001"]
    assert shell.run_cell("%rigor --ignore CAU").result == []
    assert "unknown rule" in str(shell.run_cell("%rigor --select ZZZ").error_in_exec)
    assert "not valid JSON" in str(
        shell.run_cell(f"%rigor {tmp_path / 'x.ipynb'}").error_in_exec
    ) or "cannot read" in str(shell.run_cell(f"%rigor {tmp_path / 'x.ipynb'}").error_in_exec)


def test_numbers_check_uses_rounding():
    nb = notebook(
        ("code", "print('accuracy', 0.8125)"), ("md", "Accuracy was 0.81 (CI [0.78, 0.84]).")
    )
    nb.cells[0].outputs = [
        nbformat.v4.new_output("stream", name="stdout", text="accuracy 0.8125\n")
    ]
    assert "STA004" not in {f.rule for f in rigor.check(nb)}
    nb.cells[1].source = "Accuracy was 81% (CI [78%, 84%])."
    assert "STA004" not in {f.rule for f in rigor.check(nb)}
    nb.cells[1].source = "Accuracy was 85% (CI [78%, 84%])."
    assert "STA004" in {f.rule for f in rigor.check(nb)}
    assert np.isclose(0.8125, 0.8125)


def test_digits_inside_identifiers_are_not_stated_numbers():
    """`x16` in a formula is a name, not a logit difference of 16; `0.85` stated is."""
    formula = notebook(("md", "The metric is the logit difference `logit(x16) - logit(z)`."))
    assert [f.rule for f in rigor.check(formula)] == []
    stated = notebook(("md", "The logit difference was 0.85 on the test set."))
    assert [f.rule for f in rigor.check(stated)] == ["STA002"]


# -- reading every notebook Jupyter opens; a clear error for the rest -------------------------

V3_CELLS = [
    {"cell_type": "markdown", "source": "Head 1 implements copying."},
    {"cell_type": "heading", "level": 2, "source": "Results"},
    {"cell_type": "code", "input": "x = 1", "language": "python", "outputs": []},
]


def write_json(tmp_path, data, name="nb.ipynb"):
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return path


@pytest.mark.parametrize(
    "data",
    [
        {"nbformat": 3, "nbformat_minor": 0, "metadata": {}, "worksheets": [{"cells": V3_CELLS}]},
        {"worksheets": [{"cells": V3_CELLS}]},  # no version at all: read as nbformat 3
        {"metadata": {"name": ""}, "worksheets": [{"cells": V3_CELLS}]},
        {"nbformat": 2, "metadata": {}, "worksheets": [{"cells": V3_CELLS}]},
        {"nbformat": 1, "cells": [{"cell_type": "text", "text": "Head 1 implements copying."}]},
    ],
    ids=["v3", "worksheets only", "worksheets and metadata", "v2", "v1"],
)
def test_older_notebooks_are_read_through_nbformat(tmp_path, data):
    """What nbformat.read (and so Jupyter) opens is checked, from a file and from a dict."""
    path = write_json(tmp_path, data)
    assert [f.rule for f in rigor.check(path)] == ["CAU001"]
    assert [f.rule for f in rigor.check(data)] == ["CAU001"]
    assert cli([str(path)]) == 1  # a finding, not a crash
    if "nbformat" in data:
        assert jupyter_opens(path)  # what Jupyter opens, the checker reads


def test_upgrade_v3_still_converts_for_the_server():
    from interp_magics.rigor.notebook import upgrade_v3

    v4 = upgrade_v3(
        {"nbformat": 3, "nbformat_minor": 0, "metadata": {}, "worksheets": [{"cells": V3_CELLS}]}
    )
    assert v4["nbformat"] == 4
    assert [c["cell_type"] for c in v4["cells"]] == ["markdown", "markdown", "code"]
    assert v4["cells"][1]["source"] == "## Results" and v4["cells"][2]["source"] == "x = 1"
    with pytest.raises(NotebookError, match="worksheets"):
        upgrade_v3({"nbformat": 3, "worksheets": "no"})
    with pytest.raises(NotebookError, match="cannot convert .*Jupyter cannot open it either"):
        upgrade_v3({"nbformat": 3, "metadata": [], "worksheets": [{"cells": []}]})


def jupyter_opens(path):
    """Whether nbformat's reader, which Jupyter opens notebooks with, reads ``path``."""
    import nbformat as nbf

    try:
        nb = nbf.read(str(path), as_version=4)
    except Exception:
        return False
    return isinstance(nb.get("cells"), list)  # Jupyter needs the cells list it validates


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ('{"nbformat": "four", "nbformat_minor": 0, "metadata": {}, "cells": []}', '"four", which is not a version number'),
        ('{"nbformat": "4", "metadata": {}, "cells": []}', '"4", which is not a version number'),
        ('{"nbformat": 4.0, "metadata": {}, "cells": []}', "4.0, which is not a version number"),
        ('{"nbformat": [4], "cells": []}', "a JSON array, which is not a version number"),
        ('{"nbformat": 5, "metadata": {}, "cells": []}', "nbformat 5; Jupyter and this checker read versions 1 to 4"),
        ('{"nbformat": 0, "cells": []}', "nbformat 0"),
        ('{"nbformat": 4, "metadata": {}}', "not a notebook (no cells)"),
        ('{"nbformat": 4, "cells": {"0": {}}}', "not a notebook (no cells)"),
        ('{"nbformat": 3, "worksheets": [{"cells": ["text"]}]}', "cannot convert this nbformat 3"),
        ('{"nbformat": 3, "metadata": [], "worksheets": [{"cells": []}]}', "cannot convert this nbformat 3"),
        ("[" * 100_000 + "]" * 100_000, "nested too deeply or too large"),
        ('{"metadata": {"a": ' + "[" * 100_000 + "]" * 100_000 + '}, "cells": []}', "nested too deeply"),
        ("[]", "not a notebook"),
        ('"a string"', "not a notebook"),
    ],
    ids=["four", "string 4", "float", "list", "v5", "v0", "no cells", "cells object",
         "v3 string cell", "v3 list metadata", "nested array", "nested metadata", "array", "string"],
)  # fmt: skip
def test_what_jupyter_cannot_open_is_a_notebook_error_with_a_message(
    tmp_path, capsys, data, message
):
    path = write_json(tmp_path, data)
    assert not jupyter_opens(path)
    with pytest.raises(NotebookError, match=re.escape(message)):
        rigor.check(path)
    assert cli([str(path)]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_odd_but_openable_notebooks_are_checked(tmp_path):
    """Deep metadata, odd metadata and odd cell fields: read what is there, never crash.

    (Jupyter's validator gives up on this one; the checker still reads its cells.)
    """
    deep = "[" * 500 + "]" * 500
    text = (
        '{"nbformat": 4, "nbformat_minor": 5, "metadata": {"deep": ' + deep + ', "interp_magics": '
        '{"rigor": {"ignore": [{"rule": ' + deep + '}, {"rule": "CAU001", "reason": 7}]}}}, "cells": ['
        '{"cell_type": "markdown", "id": ' + deep + ', "metadata": [], "source": "Head 1 implements copying."},'
        '{"cell_type": "code", "id": 5, "metadata": {"tags": [1, "x"]}, "execution_count": true,'
        ' "outputs": [{"output_type": "error", "ename": ' + deep + ', "evalue": ["a", 1]}], "source": ["x", 2]},'
        '{"cell_type": ' + deep + ', "source": "Head 2 implements copying."}, "not a cell"]}'
    )  # fmt: skip
    path = write_json(tmp_path, text)
    [finding] = rigor.check(path)
    assert finding.rule == "CAU001" and finding.cell_id == "cell-1"
    assert finding.suppressed and finding.reason == "7 (notebook metadata)"
    from interp_magics.rigor.notebook import load

    cells = load(path).cells
    assert [c.id for c in cells] == ["cell-1", "5", "cell-3"]
    assert [c.kind for c in cells] == ["markdown", "code", "unknown"]
    assert cells[1].execution_count is None and cells[1].tags == ["x"] and cells[1].source == "x"
    assert cells[1].outputs_text == ": a"


def test_a_folder_or_a_pipe_is_refused_without_reading(tmp_path, capsys):
    import os

    with pytest.raises(NotebookError, match="not a file"):
        rigor.check(tmp_path)
    pipe = tmp_path / "pipe.ipynb"
    os.mkfifo(pipe)
    assert cli([str(pipe)]) == 2  # returns at once: a pipe would block a read forever
    assert "not a file" in capsys.readouterr().err


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.recursive(
        st.none() | st.booleans() | st.integers(-2, 6) | st.floats(allow_nan=False) | st.text(max_size=8),
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
            st.sampled_from(["nbformat", "nbformat_minor", "cells", "worksheets", "metadata",
                             "cell_type", "source", "input", "outputs", "id", "execution_count",
                             "text", "data", "tags", "interp_magics", "rigor", "ignore", "rule"]),
            inner, max_size=6),
        max_leaves=30,
    )
)  # fmt: skip
def test_any_json_gives_findings_or_a_notebook_error(data):
    """Whatever JSON a file holds, the checker answers with findings or NotebookError."""
    try:
        findings = rigor.check(data)
    except NotebookError as exc:
        assert str(exc)
    else:
        assert all(f.rule in rigor.RULES for f in findings)
