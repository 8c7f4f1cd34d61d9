"""The rigor checker runs in linear time: adversarial notebooks, the patterns, and equivalence.

Every check of a notebook built to be slow (tests/support/rigor_inputs.py) must finish within
the bound the checker promises: under 2 s for 1 MB on an unloaded machine. The assertions
allow SLOW_MACHINE times that for a loaded one; the code these tests replaced took minutes
to hours on the same 1 MB inputs (cubic and quadratic passes), and tens of seconds already
on the 64 KB ones of the quick tests. The faster passes are checked against the simple ones
they replaced (or against IPython and ``ast`` themselves) on generated inputs.
"""

from __future__ import annotations

import ast
import functools
import re
import time
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support import rigor_inputs

from interp_magics import rigor
from interp_magics.rigor import facts as facts_module
from interp_magics.rigor import notebook, syntax
from interp_magics.rigor.rules import context, statistics

BOUND_S = 2.0  # the promise: a check of a 1 MB notebook takes under this on one idle core
SLOW_MACHINE = 3  # what a loaded 2-core test machine may add
QUICK = 64 * 1024  # characters: the old code took 10 s to hours here, the new one ~0.1 s
MB = 1024 * 1024


def timed_check(nb: Any) -> tuple[float, rigor.Findings]:
    start = time.perf_counter()
    findings = rigor.check(nb)
    return time.perf_counter() - start, findings


# -- every adversarial input, quick and at 1 MB ----------------------------------------------------


@pytest.mark.parametrize("name", sorted(rigor_inputs.ADVERSARIAL))
def test_adversarial_notebooks_are_checked_quickly(name, tmp_path):
    """64 KB of each pathological shape: well under a second (the old code: 1 s to hours)."""
    nb = rigor_inputs.ADVERSARIAL[name](QUICK)
    path = rigor_inputs.write(nb, tmp_path / "slow.ipynb")
    seconds, findings = timed_check(path)
    assert seconds < BOUND_S, f"{name}: {seconds:.2f} s for {rigor_inputs.text_size(nb):,} chars"
    assert all(f.rule in rigor.RULES for f in findings)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["realistic", *sorted(rigor_inputs.ADVERSARIAL)])
def test_one_megabyte_notebooks_are_checked_within_the_bound(name, tmp_path):
    make = rigor_inputs.realistic if name == "realistic" else rigor_inputs.ADVERSARIAL[name]
    nb = make(MB)
    assert rigor_inputs.text_size(nb) >= MB * 0.9
    path = rigor_inputs.write(nb, tmp_path / "big.ipynb")
    seconds, _ = timed_check(path)
    assert seconds < BOUND_S * SLOW_MACHINE, f"{name}: {seconds:.2f} s for 1 MB"


FRAGMENTS = [
    " ",
    "\n",
    "1",
    "0.5",
    "[",
    "(",
    "<!--",
    "-->",
    "# rigor: ignore[",
    "PRB001",
    " -- ",
    "!echo a",
    "%time ",
    "x = ",
    "accuracy ",
    "±",
    "'",
    '"""',
    "\\",
    "f(",
    ")",
    ".",
    "?",
]


def fragment_cells(max_repeat: int) -> st.SearchStrategy[list[tuple[str, str]]]:
    piece = st.tuples(st.sampled_from(FRAGMENTS), st.integers(1, max_repeat))
    text = st.lists(piece, min_size=1, max_size=8).map(lambda ps: "".join(f * n for f, n in ps))
    return st.lists(st.tuples(st.sampled_from(["code", "markdown"]), text), min_size=1, max_size=6)


def fragment_notebook(cells: list[tuple[str, str]], size: int = 0) -> dict[str, Any]:
    """Return a notebook of ``cells``, each text repeated until they hold ``size`` characters."""
    total = sum(len(text) for _, text in cells)
    times = max(1, -(-size // total)) if size else 1
    return rigor_inputs.notebook(
        [
            rigor_inputs.cell(kind, text * times, i, text[:200])
            for i, (kind, text) in enumerate(cells)
        ]
    )


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(fragment_cells(max_repeat=500))
def test_random_runs_of_fragments_are_checked_quickly(cells):
    """Runs of spaces, digits, brackets, comment and suppression fragments, escapes..."""
    nb = fragment_notebook(cells)
    assert rigor_inputs.text_size(nb) < 400_000
    seconds, findings = timed_check(nb)
    assert seconds < BOUND_S
    assert all(f.rule in rigor.RULES for f in findings)


@pytest.mark.slow
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
@given(fragment_cells(max_repeat=3000))
def test_random_megabyte_runs_of_fragments_are_checked_within_the_bound(cells):
    nb = fragment_notebook(cells, size=MB)
    assert rigor_inputs.text_size(nb) >= MB
    seconds, _ = timed_check(nb)
    assert seconds < BOUND_S * SLOW_MACHINE


# -- the patterns: linear time by construction -----------------------------------------------------

try:
    from re import _parser as sre_parse  # type: ignore[attr-defined]
except ImportError:  # Python 3.10
    import sre_parse  # type: ignore[no-redef]

ALPHABET = [chr(i) for i in range(128)] + ["é", "ß", "\u00a0", "\u2028", "٣", "€"]
UNBOUNDED = sre_parse.MAXREPEAT
REPEATS = {"MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT"}
# Patterns that start with a repeat and are only used with .match() at a known position.
MATCH_ONLY = {"_TAIL", "ASSIGNED_CALL", "_AFTER_SPACES"}


def chars(item: tuple[Any, Any], flags: int) -> set[str]:
    """Return the characters of ALPHABET that ``item`` (a parsed regex node) can consume."""
    op, av = str(item[0]), item[1]
    if op == "LITERAL":
        c = chr(av)
        return {c, c.lower(), c.upper()} if flags & re.I else {c}
    if op == "NOT_LITERAL":
        return set(ALPHABET) - {chr(av)}
    if op == "ANY":
        return set(ALPHABET) - (set() if flags & re.S else {"\n"})
    if op == "IN":
        out, negate = set(), False
        for sub_op, sub_av in av:
            name = str(sub_op)
            if name == "NEGATE":
                negate = True
            elif name == "LITERAL":
                out |= chars((sub_op, sub_av), flags)
            elif name == "RANGE":
                out |= {c for c in ALPHABET if sub_av[0] <= ord(c) <= sub_av[1]}
            elif name == "CATEGORY":
                cls = {"DIGIT": r"\d", "SPACE": r"\s", "WORD": r"\w"}[str(sub_av).split("_")[-1]]
                hit = {c for c in ALPHABET if re.fullmatch(cls, c)}
                out |= set(ALPHABET) - hit if "NOT" in str(sub_av) else hit
        return set(ALPHABET) - out if negate else out
    out = set()
    for child in children(item):
        for node in child:
            out |= chars(node, flags)
    return out


def children(item: tuple[Any, Any]) -> list[list[tuple[Any, Any]]]:
    op, av = str(item[0]), item[1]
    if op in REPEATS:
        return [list(av[2])]
    if op == "SUBPATTERN":
        return [list(av[-1])]
    if op == "BRANCH":
        return [list(b) for b in av[1]]
    return []


def min_width(item: tuple[Any, Any]) -> int:
    return int(sre_parse.SubPattern(sre_parse.State(), [item]).getwidth()[0])


def problems(seq: list[tuple[Any, Any]], flags: int, pending: set[str], out: list[str]) -> set[str]:
    """Walk a parsed sequence; return the characters the last open-ended repeat may still take.

    Appends to ``out`` each nested unbounded repeat, and each unbounded repeat that can take
    a character the one before it can also take with only optional items between them.
    """
    for i, item in enumerate(seq):
        op, av = str(item[0]), item[1]
        if op in REPEATS and av[1] == UNBOUNDED:
            body = list(av[2])
            if any(str(n[0]) in REPEATS and n[1][1] == UNBOUNDED for n in walk(body)):
                out.append(f"nested unbounded repeat: {item}")
            mine = chars(item, flags)
            if pending & mine:
                out.append(f"adjacent repeats overlap on {sorted(pending & mine)[:5]}: {item}")
            if len(mine) > 0.9 * len(ALPHABET) and any(min_width(n) for n in seq[i + 1 :]):
                out.append(f"a repeat that runs to the end is followed by more: {item}")
            pending = (pending | mine) if av[0] == 0 else mine
        elif op in REPEATS or op == "SUBPATTERN":
            if (
                op in REPEATS
                and av[1] > 1
                and any(str(n[0]) in REPEATS and n[1][1] == UNBOUNDED for n in walk(list(av[2])))
            ):
                out.append(f"unbounded repeat inside a repeat: {item}")
            inner = problems(children(item)[0], flags, pending, out)
            pending = (pending | inner) if min_width(item) == 0 else inner
        elif op == "BRANCH":
            outs = [problems(b, flags, pending, out) for b in children(item)]
            pending = set().union(*outs)
        elif min_width(item) and not pending & chars(item, flags):
            pending = set()  # a required character the run cannot take ends it
    return pending


def walk(seq: list[tuple[Any, Any]]) -> list[tuple[Any, Any]]:
    out = []
    for item in seq:
        out.append(item)
        for child in children(item):
            out += walk(child)
    return out


def linearity_problems(pattern: re.Pattern[str], name: str = "") -> list[str]:
    """Return why ``pattern`` may take more than linear time (empty when it cannot)."""
    parsed = list(sre_parse.parse(pattern.pattern, pattern.flags))
    out: list[str] = []
    problems(parsed, pattern.flags, set(), out)
    if name not in MATCH_ONLY and any(
        str(first[0]) in REPEATS and first[1][1] == UNBOUNDED for first in first_items(parsed)
    ):
        out.append("starts with an unbounded repeat: each start of a search scans the run")
    if pattern.flags & re.M and "\n" in chars_after_line_start(parsed, pattern.flags):
        out.append("under MULTILINE, a repeat after ^ crosses newlines")
    return out


def first_items(seq: list[tuple[Any, Any]]) -> list[tuple[Any, Any]]:
    """Return the items a match of ``seq`` can begin with (through groups and alternatives)."""
    if not seq:
        return []
    op = str(seq[0][0])
    if op == "SUBPATTERN":
        return first_items(children(seq[0])[0])
    if op == "BRANCH":
        return [item for branch in children(seq[0]) for item in first_items(branch)]
    return [seq[0]]


def chars_after_line_start(parsed: list[tuple[Any, Any]], flags: int) -> set[str]:
    out: set[str] = set()
    for node in walk(parsed):
        if str(node[0]) == "BRANCH":
            for branch in node[1][1]:
                out |= chars_after_line_start(list(branch), flags)
    if len(parsed) > 1 and str(parsed[0][0]) == "AT" and str(parsed[1][0]) in REPEATS:
        out |= chars(parsed[1], flags)
    return out


def rigor_patterns() -> list[tuple[str, re.Pattern[str]]]:
    """Return every compiled pattern at module level in the checker, with its name."""
    import importlib
    import pkgutil

    from interp_magics.rigor import rules

    modules = [notebook, syntax, facts_module] + [
        importlib.import_module(f"{rules.__name__}.{info.name}")
        for info in pkgutil.iter_modules(rules.__path__)
    ]
    return [
        (f"{m.__name__}.{name}", value)
        for m in modules
        for name, value in vars(m).items()
        if isinstance(value, re.Pattern)
    ]


def test_every_pattern_of_the_checker_runs_in_linear_time():
    found = rigor_patterns()
    shown = re.compile(re.escape("logit diff") + statistics.SHOWN_NUMBER)  # built per metric
    found.append(("statistics.SHOWN_NUMBER", shown))
    assert len(found) >= 20
    bad = {
        name: why
        for name, pattern in found
        if (why := linearity_problems(pattern, name.rsplit(".", 1)[-1]))
    }
    assert bad == {}


@pytest.mark.parametrize(
    ("old", "flags"),
    [
        (  # the suppression comment: cubic on a reason followed by spaces
            r"rigor:\s*ignore\[(?P<rules>[A-Z]{3}\d{3}(?:\s*,\s*[A-Z]{3}\d{3})*)\]"
            r"(?:\s*--\s*(?P<reason>.+?))?\s*(?:-->)?\s*$",
            0,
        ),
        (r"\[\s*-?\d*\.?\d+\s*,\s*-?\d*\.?\d+\s*\]", 0),  # an interval: \d*\.?\d+
        (r"<!--.*?-->", 0),  # every unclosed comment scans to the end
        (r"\s*([A-Za-z_]\w*)\s*=\s*(?:\w+\.)*(\w+)\(", 0),  # nested repeats
        (r"^\s*[%!]|[=]\s*[%!]|\?\s*$", re.M),  # ^\s* crosses blank lines
    ],
)
def test_the_replaced_patterns_are_the_ones_the_rule_rejects(old, flags):
    assert linearity_problems(re.compile(old, flags))


# -- the fast passes give what the simple ones gave --------------------------------------------

OLD_COMMENT = re.compile(
    r"rigor:\s*ignore\[(?P<rules>[A-Z]{3}\d{3}(?:\s*,\s*[A-Z]{3}\d{3})*)\]"
    r"(?:\s*--\s*(?P<reason>.+?))?\s*(?:-->)?\s*$"
)
# "-->" is left out: after "ignore[X]" it now ends an HTML comment instead of being a reason
# (the old pattern read "ignore[X] -->" as the reason ">"); test_suppression_comment_cases.
COMMENT_PARTS = ["rigor:", "rigor: ", "ignore[", "PRB001", "STA002", ",", " ", "]", "--", ">"]
COMMENT_PARTS += ["reason", "x", "<!--", "\t", "é"]


@settings(max_examples=500, deadline=None)
@given(st.lists(st.sampled_from(COMMENT_PARTS), max_size=14).map("".join))
def test_suppression_comments_read_as_before(line):
    """Same rules and reasons as the old pattern (short lines, where it is still fast)."""
    old = OLD_COMMENT.search(line)
    new = notebook._suppressions_in([line], "c1")
    if old is None:
        # a tail of "--" and nothing now reads as a suppression without a reason
        assert not new or all(s.reason == "" for s in new)
        return
    reason = (old.group("reason") or "").strip()
    assert [(s.rule, s.reason) for s in new] == [
        (r, reason) for r in re.split(r"\s*,\s*", old.group("rules"))
    ]


def test_suppression_comment_cases():
    read = notebook._suppressions_in
    assert [
        (s.rule, s.reason) for s in read(["x  # rigor: ignore[PRB001, STA001] -- pilot"], "")
    ] == [
        ("PRB001", "pilot"),
        ("STA001", "pilot"),
    ]
    assert [s.reason for s in read(["<!-- rigor: ignore[CAU001] -- in the paper -->"], "")] == [
        "in the paper"
    ]
    assert [s.reason for s in read(["<!-- rigor: ignore[CAU001] -->"], "")] == [""]
    assert read(["# rigor: ignore[PRB001] trailing words"], "") == []
    assert read(["# rigor: ignore[prb001] -- lower case"], "") == []
    assert [s.rule for s in read(["rigor: ignore[bad] rigor: ignore[PRB004] -- ok"], "")] == [
        "PRB004"
    ]


@settings(max_examples=500, deadline=None)
@given(st.lists(st.sampled_from(["<!--", "-->", "<!-->", "a", " ", "-", "<", "!"]), max_size=20))
def test_html_comments_are_stripped_as_before(parts):
    line = "".join(parts)
    assert context.without_comments(line) == re.sub(r"<!--.*?-->", "", line)


CODE_LINES = [
    "!echo hi",
    "%time x = np.random.rand(3)",
    "x = !ls",
    "y = %who_ls",
    "!!date",
    "  %probe acts y",
    "for layer in range(3):",
    "    !echo {layer}",
    "    r = %time f(layer)",
    "def f():",
    "    !ls",
    "    x = %timeit g()",
    "x = (1,\n     2)",
    "s = '''",
    "!inside a string",
    "'''",
    "%%time",
    "a = 1 \\",
    "!echo (",
    "obj?",
    "x = 'abc (",
    "%time !ls",
    "x[...] = !ls",
    "a, b = %who",
    "def broken(:",
    "é = !ls é",
    "q = ...",
    "print('!')",
    "if a != b:",
    "    pass",
    "q = 5 % 3",
    "d = {'a': '='}",
    't = "it\'s"',
    '!echo "it\'s"',
    "/f a b",
    ",f a b",
    "z = [\n  %not_magic\n]",
    "x = 1 # = !no",
]


@settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.lists(st.sampled_from(CODE_LINES), max_size=10).map("\n".join))
def test_ipython_syntax_is_turned_into_what_ipython_writes(source):
    """One pass over the cell gives what IPython's repeated transform gives."""
    from IPython.core.inputtransformer2 import TransformerManager

    if not syntax.MAYBE_IPYTHON.search(source):
        return
    if "?" in source and any(b in source for b in "([{"):
        return  # IPython's obj? reads across brackets an escape left open; it is not matched
    try:
        want = TransformerManager().transform_cell(source)
    except Exception:
        return  # IPython cannot read it either
    assert syntax.python_code(source) == want


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.lists(st.sampled_from(CODE_LINES), max_size=10).map("\n".join))
def test_escape_placeholders_give_the_facts_of_the_written_calls(source):
    """``!cmd`` read from its placeholder records what parsing IPython's line records."""

    def normal(f: facts_module.CodeFacts) -> dict[str, Any]:
        """Every field of the facts, with loops named by their header (ids differ)."""

        def call(c: facts_module.Call) -> dict[str, Any]:
            return {**vars(c), "loop": f.loops.get(c.loop) if c.loop else None}

        out = {**vars(f), "calls": [call(c) for c in f.calls]}
        out["functions"] = {
            k: {**vars(g), "calls": [call(c) for c in g.calls]} for k, g in f.functions.items()
        }
        out["loops"] = sorted(f.loops.values())
        return out

    fast = facts_module.code_facts(source)
    written = functools.partial(syntax.convert, placeholders=False)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(facts_module, "convert", written)
        slow = facts_module.code_facts(source)
    assert normal(fast) == normal(slow)


SEGMENT_CODE = [
    "x = f(a, b=2)",
    "y = g(h(1), 'é', [1,\n 2])",
    "clf.fit(X_train,\n        y_train)",
    "z = k.m(p)[0].n(q=r)",
    "s = \"ü\" + t('ß', u)",
    "v = w(\r\n1)",
]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(SEGMENT_CODE), min_size=1, max_size=6).map("\n".join))
def test_source_segments_are_those_of_ast(code):
    tree = ast.parse(code)
    seg = facts_module._Segments(code)
    for node in ast.walk(tree):
        if isinstance(node, ast.expr):
            assert seg(node) == (ast.get_source_segment(code, node) or "")


def old_text_differs(cells: list[tuple[str, str]]) -> str | None:
    """STA004 as it was: every claim searches every output above it."""
    outputs: list[str] = []
    for kind, text in cells:
        if kind == "code":
            outputs.append(text.lower())
            continue
        for line in text.splitlines():
            stated = [*statistics.METRIC_NUMBER.finditer(line)]
            stated += statistics.PERCENT_METRIC.finditer(line)
            for m in sorted(stated, key=lambda m: m.start()):
                keyword = m.group("metric").lower()
                number, pct = m.group("number"), m.group("pct")
                pattern = re.escape(keyword) + r"[^0-9\n]{0,30}(-?\d+(?:\.\d+)?)"
                found = [float(x.group(1)) for o in outputs for x in re.finditer(pattern, o)]
                decimals = len(number.split(".")[1]) if "." in number else 0
                # a percentage agrees with the fraction or the percentage printed
                scales = (100, 1) if pct else (1,)
                agrees = any(
                    abs(c - float(number) / scale) <= 0.5 * 10 ** (-decimals) / scale + 1e-9
                    for scale in scales
                    for c in found
                )
                if not found or agrees:
                    continue
                value = float(number) / scales[0]
                nearest = min(found, key=lambda c: abs(c - value))
                return f"{keyword} {number}{pct or ''} but the outputs above show {nearest:g}"
    return None


NUMBERS = ["0.5", "0.51", "0.509", "1", "50", "49.6", "0.8125", "81", "0.81"]
METRIC_TEXT = st.tuples(
    st.sampled_from(["accuracy", "acc", "loss", "auc", "f1"]),
    st.sampled_from(NUMBERS),
    st.sampled_from(["", "%", "% first"]),
).map(lambda t: f"{t[1]}% test {t[0]}" if t[2] == "% first" else f"{t[0]} {t[1]}{t[2]}")


@settings(max_examples=400, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from(["code", "markdown"]), st.lists(METRIC_TEXT, max_size=3)),
        max_size=8,
    )
)
def test_numbers_in_the_text_are_checked_against_the_outputs_as_before(cells):
    pairs = [(kind, "\n".join(texts)) for kind, texts in cells]
    nb = rigor_inputs.notebook(
        [
            rigor_inputs.cell(kind, "x = 1" if kind == "code" else text, i, text)
            for i, (kind, text) in enumerate(pairs)
        ]
    )
    found = [f for f in rigor.check(nb, select=["STA004"])]
    old = old_text_differs([(k, t) for k, t in pairs if k == "markdown" or t])
    assert [f.message.split("states ", 1)[-1] for f in found] == ([old] if old else [])
