"""The rigor checker's user-facing surface: rule pages, ``interp-rigor`` (--explain, exit codes,
ledger files, escaping of what notebooks hold) and ``%rigor`` in IPython and under nbclient."""

import html
import json
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from interp_magics import rigor
from interp_magics.rigor import markup, pages
from interp_magics.rigor.cli import main as cli
from interp_magics.rigor.report import Finding, Findings, printable, shown_id

RULE_IDS = list(rigor.RULES)
SCRIPT = str(Path(sys.executable).parent / "interp-rigor")
FIXTURES = Path(__file__).parent / "fixtures" / "rigor"


def write(path, cells, **cell_ids):
    """Write a notebook of (kind, source) cells with ids c1, c2, ... (or those given by index)."""
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    for i, (kind, source) in enumerate(cells, 1):
        cell = (
            nbformat.v4.new_markdown_cell(source)
            if kind == "md"
            else nbformat.v4.new_code_cell(source)
        )
        cell["id"] = cell_ids.get(f"c{i}", f"c{i}")
        nb.cells.append(cell)
    path.write_text(json.dumps(nb))
    return path


# -- rule pages -------------------------------------------------------------------------------------


def test_every_rule_has_a_page():
    assert pages.page_ids() == RULE_IDS
    for rule_id in RULE_IDS:
        found = pages.file_sections(rule_id)
        for section in pages.FILE_SECTIONS:
            assert found.get(section, "").strip(), f"{rule_id}: section {section!r} is empty"


@pytest.mark.parametrize("rule_id", RULE_IDS)
def test_page_has_every_section_in_every_format(rule_id):
    rule = rigor.RULES[rule_id]
    md = pages.render_page(rule_id, "markdown")
    assert md.startswith(f"# {rule_id}: {rule.title}\n")
    assert [line[3:] for line in md.splitlines() if line.startswith("## ")] == list(pages.SECTIONS)
    assert rule.alternatives in " ".join(md.split())  # the registry's accepted alternatives
    text = pages.render_page(rule_id)
    for section in pages.SECTIONS:
        assert f"\n{section}\n{'-' * len(section)}\n" in text
    assert "[code cell" in text or "[markdown cell" in text
    page = pages.render_page(rule_id, "html")
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    assert [html.unescape(h) for h in re.findall(r"<h2>(.*?)</h2>", page)] == list(pages.SECTIONS)
    assert f"<title>{rule_id}: {html.escape(rule.title)}</title>" in page


@pytest.mark.parametrize("rule_id", RULE_IDS)
def test_page_examples_show_the_rule(rule_id):
    """The rule fires on the page's flawed example and not on its fixed one."""
    flawed = pages.example_notebook(rule_id, "flawed")
    fixed = pages.example_notebook(rule_id, "fixed")
    assert flawed["cells"] and fixed["cells"]
    nbformat.validate(nbformat.from_dict(flawed))  # a notebook Jupyter opens
    assert rule_id in {f.rule for f in rigor.check(flawed)}, rigor.check(flawed)
    assert rule_id not in {f.rule for f in rigor.check(fixed)}, rigor.check(fixed)


def test_examples_carry_execution_counts_and_outputs():
    [first, *_] = pages.example("STA004", "flawed")
    assert first.execution_count == 1 and first.output == "accuracy: 0.812\n"
    counts = [c.execution_count for c in pages.example("REP002", "flawed")]
    assert counts == [1, 3, 2]


@pytest.mark.parametrize("rule_id", RULE_IDS)
def test_findings_cite_published_work_and_the_shipped_page(rule_id):
    """No finding cites a file users do not have; each cited work is on the rule's page."""
    reference = rigor.RULES[rule_id].reference
    assert reference.endswith(f"rule page: interp-rigor --explain {rule_id}")
    assert ".md" not in reference and "interpretability-for-researchers" not in reference
    cited = [c.strip() for c in reference.split(";")[:-1]]
    assert cited, f"{rule_id} cites no published work"
    listed = pages.file_sections(rule_id)["References"]
    for clause in cited:
        m = re.match(r"([A-Z][\w\u00c0-\u017f-]+).*?\b((?:19|20)\d\d)\b", clause)
        assert m, f"{rule_id}: {clause!r} names no author and year"
        author, year = m.groups()
        assert re.search(rf"{author}\b[^\n]*(\n  [^\n]*)*\({year}\)", listed), (
            f"{rule_id} cites {author} {year}, which its page does not list"
        )


def test_unknown_ids_and_formats():
    for bad in ("XYZ999", "PRB999", "../../etc/passwd", "PRB001/../x", "", "PRB0011"):
        with pytest.raises(KeyError):
            pages.render_page(bad, "html")
    assert pages.render_page("prb001", "markdown") == pages.render_page("PRB001", "markdown")
    with pytest.raises(ValueError, match="unknown page format"):
        pages.render_page("PRB001", "pdf")


def test_page_html_is_escaped_and_script_free():
    for rule_id in RULE_IDS:
        page = pages.render_page(rule_id, "html")
        lowered = page.lower()
        assert "<script" not in lowered and "javascript:" not in lowered
        assert not re.search(r"\son\w+\s*=", lowered)
        assert all(h.startswith("https://") for h in re.findall(r'href="([^"]*)"', page))
        assert "default-src 'none'" in page
    # what the markup does with hostile text: everything escaped, only http(s) linked
    hostile = (
        "<img src=x onerror=alert(1)> `<b>` **<i>** [x](javascript:alert(1)) https://a.b/c?d=1&e=2."
    )
    out = markup.inline_html(hostile)
    assert "<img" not in out and "<b>" not in out and "<i>" not in out
    assert "&lt;img src=x onerror=alert(1)&gt;" in out
    assert 'href="https://a.b/c?d=1&amp;e=2"' in out and out.endswith("</a>.")
    assert 'href="javascript' not in out
    block = markup.to_html(markup.parse("```python\n</code></pre><script>x()</script>\n```"))
    assert "<script>" not in block and "&lt;script&gt;" in block


def test_explain_prints_the_page(capsys):
    assert cli(["--explain", "PRB001"]) == 0
    out = capsys.readouterr().out
    assert out == pages.render_page("PRB001", "text")
    assert out.startswith("PRB001: probe without a control\n")
    assert "Hewitt, J., & Liang, P. (2019)" in out and "permutation_test_score" in out
    assert cli(["--explain", "sta001"]) == 0 and "Benjamini" in capsys.readouterr().out


def test_explain_unknown_rule_lists_the_rules(capsys):
    assert cli(["--explain", "PRB999"]) == 2
    err = capsys.readouterr().err
    assert "no rule 'PRB999'" in err
    for rule_id in RULE_IDS:
        assert rule_id in err
    proc = subprocess.run([SCRIPT, "--explain", "CAU002"], capture_output=True, text=True)
    assert proc.returncode == 0 and "Zhang, F., & Nanda, N. (2024)" in proc.stdout


# -- exit codes: never a traceback --------------------------------------------------------------


@pytest.mark.parametrize(
    "name, content",
    [
        ("deep.ipynb", "[" * 100_000),
        ("four.ipynb", json.dumps({"nbformat": "four", "nbformat_minor": 0, "cells": []})),
        ("sheets.ipynb", json.dumps({"nbformat": 3, "worksheets": "nope"})),
        ("empty.ipynb", ""),
        ("list.ipynb", "[1, 2]"),
        ("cells.ipynb", json.dumps({"nbformat": 4, "cells": {"a": 1}})),
        ("binary.ipynb", b"\x89PNG\r\n\x1a\n\x00"),
    ],
)
def test_files_jupyter_cannot_open_exit_2_with_a_message(tmp_path, name, content):
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    proc = subprocess.run([SCRIPT, str(path)], capture_output=True, text=True)
    assert proc.returncode == 2, proc
    assert "Traceback" not in proc.stderr and proc.stderr.startswith("interp-rigor: ")
    assert name in proc.stderr


def test_usage_errors_exit_2(tmp_path, capsys):
    assert cli([]) == 2 and "give one or more notebooks" in capsys.readouterr().err
    assert cli(["run"]) == 2 and "the notebook to execute" in capsys.readouterr().err
    assert cli(["--format", "xml", "x.ipynb"]) == 2 and "invalid choice" in capsys.readouterr().err
    assert cli([str(tmp_path)]) == 2  # a folder
    assert "cannot read" in capsys.readouterr().err


# -- ledger files -----------------------------------------------------------------------------------


CLAIM = [("md", "Head 2.1 is responsible for the answer."), ("code", "x = 1")]
PATCH = {
    "kind": "patch",
    "cell_id": "c2",
    "method": "exact",
    "direction": "denoising",
    "site": "head_out",
    "by": ["layer", "head"],
    "metric": "logit difference",
    "corruption": "counterfactual",
    "cells": 24,
    "time": 1700000000.5,
    "execution_count": 3,
}


@pytest.mark.parametrize(
    "document",
    [{"schema": 1, "entries": [PATCH]}, [PATCH], {"entries": [PATCH, {"kind": "future", "x": 1}]}],
)
def test_a_valid_ledger_file_adds_what_ran(tmp_path, capsys, document):
    nb = write(tmp_path / "claim.ipynb", CLAIM)
    assert cli([str(nb), "--format", "json"]) == 1
    assert "CAU001" in {f["rule"] for f in json.loads(capsys.readouterr().out)["findings"]}
    ledger = tmp_path / "ledger.json"
    ledger.write_text(json.dumps(document))
    assert cli([str(nb), "--ledger", str(ledger), "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["findings"] == []


@pytest.mark.parametrize(
    "content, says",
    [
        ('{"entries": [', "not valid JSON (line 1, column 14"),
        ("[" * 100_000, "ledger"),
        ('"entries"', 'must be a JSON list of entries or an object with an "entries" list'),
        ('{"entries": 3}', 'not an object whose "entries" is a number'),
        ("{}", "not an object"),
        ('{"schema": 99, "entries": []}', "schema 99; this version reads schema 1"),
        ('[1, "x", null]', "entry 1: is a number, not an object; entry 2: is a string"),
        ('[{"cell_id": "c2"}]', 'entry 1: has no "kind"'),
        ('[{"kind": "probe", "p_values": "many"}]', "'probe' has fields of the wrong type"),
        ('[{"kind": "probe", "p_values": -4}]', '"p_values"'),
        ('[{"kind": "patch", "cells": true, "by": "layer"}]', '"by", "cells"'),
        ('[{"kind": "x", "cell_id": 5}]', '"cell_id"'),
    ],
)
def test_a_malformed_ledger_file_exits_2_saying_what_to_fix(tmp_path, capsys, content, says):
    nb = write(tmp_path / "claim.ipynb", CLAIM)
    ledger = tmp_path / "ledger.json"
    ledger.write_text(content)
    assert cli([str(nb), "--ledger", str(ledger)]) == 2
    err = capsys.readouterr().err
    assert says in err and "Traceback" not in err and err.count("\n") == 1


def test_ledger_file_problems_are_listed_at_most_ten(tmp_path, capsys):
    nb = write(tmp_path / "claim.ipynb", CLAIM)
    ledger = tmp_path / "ledger.json"
    ledger.write_text(json.dumps(["x"] * 25))
    assert cli([str(nb), "--ledger", str(ledger)]) == 2
    err = capsys.readouterr().err
    assert "entry 10:" in err and "entry 11:" not in err and "and 15 more" in err
    assert cli([str(nb), "--ledger", str(tmp_path / "missing.json")]) == 2
    assert "cannot read ledger" in capsys.readouterr().err


# -- escaping what a notebook holds -----------------------------------------------------------------

FORGED_ID = "x\n::error file=x::forged"
ANSI_ID = "\x1b[31mred\x1b[0m"


def crafted(tmp_path, name="crafted.ipynb"):
    """A notebook whose cell ids and markdown try to forge CI annotations and terminal codes."""
    return write(
        tmp_path / name,
        [
            ("md", "Head 3.2 \x1b]0;pwned\x07is responsible for\u202e copying.\n::error::md"),
            ("code", "import numpy as np\nx = np.random.rand(3)"),
        ],
        c1=FORGED_ID,
        c2=ANSI_ID,
    )


def test_text_output_escapes_control_characters(tmp_path, capsys):
    path = crafted(tmp_path)
    assert cli([str(path)]) == 1
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\x07" not in out and "\u202e" not in out
    assert not any(line.startswith("::") for line in out.splitlines())
    assert '\\x1b[31mred\\x1b[0m" (not a valid cell id)' in out
    assert '"x\\n::error file=x::forged" (not a valid cell id)' in out
    assert "\\u202e" in out
    findings = [line for line in out.splitlines() if re.match(r"\S.*: [A-Z]{3}\d{3} ", line)]
    assert len(findings) == 2 and out.count("\n    fix: ") == 2  # three lines per finding
    # JSON keeps the raw ids (escaped by JSON itself), for tools that match cells
    assert cli([str(path), "--format", "json"]) == 1
    raw = capsys.readouterr().out
    assert "\x1b" not in raw and not any(line.startswith("::") for line in raw.splitlines())
    assert {f["cell_id"] for f in json.loads(raw)["findings"]} == {FORGED_ID, ANSI_ID}


def test_file_names_and_error_messages_are_escaped(tmp_path, capsys):
    path = crafted(tmp_path, "evil\n::error file=a::b\x1b[2J.ipynb")
    assert cli([str(path)]) == 1
    out = capsys.readouterr().out
    assert "\x1b" not in out and not any(line.startswith("::") for line in out.splitlines())
    assert "evil\\n::error file=a::b\\x1b[2J.ipynb:cell 1" in out
    broken = tmp_path / "bad\n::error::x\x1b[31m.ipynb"
    broken.write_text("{")
    assert cli([str(broken)]) == 2
    err = capsys.readouterr().err
    assert "\x1b" not in err and err.count("\n") == 1 and "bad\\n::error::x\\x1b[31m" in err


def test_printable_and_shown_ids():
    assert printable("a\tb\r\nc\x00\x7f\x85\u2028\u2066") == (
        "a\\tb\\r\\nc\\x00\\x7f\\x85\\u2028\\u2066"
    )
    assert printable("naïve Ünïcode ✓ 名前") == "naïve Ünïcode ✓ 名前"
    assert shown_id("a1-B_2") == "a1-B_2"
    assert shown_id("x" * 64) == "x" * 64
    long = shown_id("y" * 500)
    assert long.startswith('"' + "y" * 63 + '…"') and len(long) < 100
    assert shown_id("") == '"" (not a valid cell id)'


def test_summaries_use_plurals():
    def finding(severity, suppressed=False):
        return Finding("PRB001", severity, "c1", 1, 1, "m", "f", "r", suppressed=suppressed)

    assert Findings([finding("error")]).summary() == "1 error, 0 warnings"
    assert Findings([finding("warning")]).summary() == "0 errors, 1 warning"
    two = Findings([finding("error"), finding("error"), finding("warning"), finding("warning")])
    assert two.summary() == "2 errors, 2 warnings"
    assert Findings([finding("error", True)]).summary() == "0 errors, 0 warnings, 1 suppressed"
    assert repr(Findings([finding("error")])).endswith("rigor: 1 error, 0 warnings")


def test_html_table_links_only_to_cell_fragments():
    f = Finding(
        "CAU001",
        "error",
        '"><script>alert(1)</script>',
        1,
        1,
        "<img src=x onerror=alert(1)>",
        "fix",
        "ref",
        notebook="javascript:alert(1)//x.ipynb",
        suppressed=True,
        reason="<b>why</b>",
    )
    page = Findings([f])._repr_html_()
    assert re.findall(r'href="([^"]*)"', page) == [
        "#cell-id=%22%3E%3Cscript%3Ealert%281%29%3C%2Fscript%3E"
    ]
    assert "javascript:" not in page and "<script" not in page and "<img" not in page
    assert "<b>why" not in page and "&lt;b&gt;why&lt;/b&gt;" in page


# -- %rigor in a real IPython shell ------------------------------------------------------------------

PROBE = (
    "from sklearn.linear_model import LogisticRegression\n"
    "from sklearn.model_selection import cross_val_score\n"
    "scores = cross_val_score(LogisticRegression(), X, y, cv=5)"
)


def test_rigor_magic_link_never_holds_the_file_name(shell, tmp_path):
    path = write(tmp_path / "javascript:alert(1).ipynb", [("code", PROBE)])
    result = shell.run_cell(f"%rigor '{path}'")
    assert result.success, result.error_in_exec
    page = result.result._repr_html_()
    assert [f.rule for f in result.result] == ["PRB001"]
    assert re.findall(r'href="([^"]*)"', page) == ["#cell-id=c1"]
    assert "javascript:alert(1).ipynb" in page  # named in the note, as text


def test_rigor_magic_finds_its_notebook_by_cell_id(shell, tmp_path, monkeypatch):
    monkeypatch.delenv("JPY_SESSION_NAME", raising=False)
    monkeypatch.chdir(tmp_path)
    write(tmp_path / "other.ipynb", [("code", "%rigor")])
    write(tmp_path / "study.ipynb", [("code", PROBE), ("code", "%rigor")], c2="check-cell")
    result = shell.run_cell("%rigor", cell_id="check-cell")
    assert result.success, result.error_in_exec
    assert [f.rule for f in result.result] == ["PRB001"]
    assert {f.notebook for f in result.result} == {"study.ipynb"}
    # a stale JPY_SESSION_NAME (the notebook was renamed) does not stop the search
    monkeypatch.setenv("JPY_SESSION_NAME", str(tmp_path / "renamed.ipynb"))
    result = shell.run_cell("%rigor", cell_id="check-cell")
    assert {f.notebook for f in result.result} == {"study.ipynb"}


def test_rigor_magic_finds_its_notebook_by_the_code_it_ran(shell, tmp_path, monkeypatch):
    """Without cell ids (nbclient sends none), the notebook holding this kernel's code wins."""
    monkeypatch.delenv("JPY_SESSION_NAME", raising=False)
    monkeypatch.chdir(tmp_path)
    marker = f"marker_{tmp_path.name} = 1"
    write(tmp_path / "a.ipynb", [("code", "%rigor --select PRB")])
    write(
        tmp_path / "b.ipynb", [("code", marker), ("code", PROBE), ("code", "%rigor --select PRB")]
    )
    assert shell.run_cell(marker, store_history=True).success
    result = shell.run_cell("%rigor --select PRB", store_history=True)
    assert result.success, result.error_in_exec
    assert {f.notebook for f in result.result} == {"b.ipynb"}
    # a notebook named by an inherited JPY_SESSION_NAME that holds none of this kernel's code
    monkeypatch.setenv("JPY_SESSION_NAME", str(write(tmp_path / "parent.ipynb", [("md", "x")])))
    result = shell.run_cell("%rigor --select PRB", store_history=True)
    assert {f.notebook for f in result.result} == {"b.ipynb"}


def test_rigor_magic_says_when_it_cannot_tell(shell, tmp_path, monkeypatch):
    monkeypatch.delenv("JPY_SESSION_NAME", raising=False)
    monkeypatch.chdir(tmp_path)
    result = shell.run_cell("%rigor", cell_id="nowhere")
    assert "give its path, e.g. %rigor analysis.ipynb" in str(result.error_in_exec)
    write(tmp_path / "one.ipynb", [("code", "%rigor")], c1="same")
    write(tmp_path / "two.ipynb", [("code", "%rigor")], c1="same")
    result = shell.run_cell("%rigor", cell_id="same")
    message = str(result.error_in_exec)
    assert "several notebooks" in message and "one.ipynb, two.ipynb" in message
    assert "%rigor one.ipynb" in message
    # nbconvert's executed copy next to the notebook is not a second candidate
    (tmp_path / "two.ipynb").rename(tmp_path / "one.nbconvert.ipynb")
    result = shell.run_cell("%rigor", cell_id="same")
    assert result.success and result.result.note.startswith(f"checked the saved file {tmp_path}")
    assert "one.ipynb " in result.result.note


# -- %rigor under nbclient: the kernel is told nothing about its notebook ---------------------------


def test_rigor_magic_under_nbclient(tmp_path, monkeypatch):
    from nbclient import NotebookClient

    monkeypatch.delenv("JPY_SESSION_NAME", raising=False)  # the kernel inherits the environment
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    setup = (
        "import numpy as np\nrng = np.random.default_rng(0)\n"
        "X = rng.standard_normal((60, 4)); y = rng.integers(0, 2, 60)"
    )
    study = write(
        tmp_path / "study.ipynb",
        [
            ("code", "%load_ext interp_magics"),
            ("code", setup),
            ("code", PROBE),
            ("code", "%rigor"),
            ("code", f"%cd {elsewhere}"),
            ("code", "%rigor"),
        ],
    )
    write(tmp_path / "decoy.ipynb", [("code", "%load_ext interp_magics"), ("code", "%rigor")])
    nb = nbformat.read(study, as_version=4)
    NotebookClient(
        nb,
        timeout=120,
        kernel_name="python3",
        allow_errors=True,
        resources={"metadata": {"path": str(tmp_path)}},
    ).execute()
    [found] = nb.cells[3].outputs
    text = found["data"]["text/plain"]
    # the saved file: nbclient read it before running, so it has no execution counts
    assert "study.ipynb:cell 3 [id c3]:3: PRB001 error" in text, text
    assert "decoy" not in text and f"checked the saved file {study}" in text
    assert re.findall(r'href="([^"]*)"', found["data"]["text/html"]) == ["#cell-id=c3"]
    [error] = nb.cells[5].outputs  # IPython prints a UsageError (no traceback) to stderr
    assert error["output_type"] == "stream" and error["name"] == "stderr"
    assert error["text"].startswith("UsageError: cannot tell which notebook this kernel runs")
    assert "give its path, e.g. %rigor analysis.ipynb" in error["text"]


@pytest.mark.slow
def test_rigor_magic_under_nbconvert_run_twice(tmp_path, monkeypatch):
    """The second run finds the notebook, not the executed copy the first one wrote next to it."""
    monkeypatch.delenv("JPY_SESSION_NAME", raising=False)
    study = write(
        tmp_path / "study.ipynb",
        [("code", "%load_ext interp_magics"), ("code", PROBE), ("code", "%rigor --select PRB")],
    )
    jupyter = str(Path(sys.executable).parent / "jupyter")
    for _ in range(2):
        subprocess.run(
            [jupyter, "nbconvert", "--to", "notebook", "--execute", "--allow-errors", str(study)],
            check=True,
            capture_output=True,
            cwd=tmp_path.parent,
        )
        executed = nbformat.read(tmp_path / "study.nbconvert.ipynb", as_version=4)
        [found] = executed.cells[2].outputs
        assert f"checked the saved file {study} " in found["data"]["text/plain"]
        assert "PRB001 error" in found["data"]["text/plain"]
