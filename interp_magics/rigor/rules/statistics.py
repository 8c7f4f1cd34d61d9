"""Statistics rules (STA): multiple comparisons, uncertainty, seeds, and numbers in the text.

Just past 400 lines: the five rules share their readers of p-values, loops and reported numbers.
"""

from __future__ import annotations

import bisect
import re

from ..facts import Call
from ..ledger import p_values
from ..notebook import Cell
from ..registry import METHODOLOGY, Hit, rule
from .context import Claim, Context, is_cited
from .flow import in_function, package_probe, reaching, used_later
from .leakage import CV_SCORES, chosen_on_test
from .vocabulary import CLASSIFIERS, PROBE_FUNCS, RANDOM_CALLS, SEED_CALLS

CORRECTION_NAMES = {
    "multipletests",
    "fdrcorrection",
    "false_discovery_control",
    "bonferroni",
    "holm",
    "fdr_bh",
    "maxT",
    "max_stat",
    "max_statistic",
}
PVALUE_CALLS = {
    "ttest_ind",
    "ttest_rel",
    "ttest_1samp",
    "pearsonr",
    "spearmanr",
    "kendalltau",
    "mannwhitneyu",
    "wilcoxon",
    "binomtest",
    "binom_test",
    "chi2_contingency",
    "fisher_exact",
    "kruskal",
    "f_oneway",
    "permutation_test",
    "permutation_test_score",
    "ks_2samp",
    "probe",
    "%probe",
}
COMPARISON = re.compile(
    r"\b(outperforms?|better than|worse than|higher than|lower than|beats?|"
    r"improves? (?:on|over)|more accurate than|"
    r"exceeds?|compared (?:to|with))\b",
    re.I,
)
#: What a comparison must be about to rest on random work: a measured result, not prose
#: ("compared to normal ML, the feedback loops are short").
MEASURED = re.compile(
    r"\b(?:accura\w{1,4}|scores?|performance|performs?|probes?|loss|effects?|logits?|auc|f1|"
    r"metric|r2|r\^2|correlat\w{1,6}|selectivity|recover\w{0,3}|predict\w{0,6}|"
    r"layers?|sites?|heads?|baselines?)\b|\d",
    re.I,
)
METRIC_NUMBER = re.compile(
    r"\b(?P<metric>accuracy|acc|f1|auc|logit diff(?:erence)?|loss|correlation|recovery|"
    r"restores?|effect|"
    r"probe score|selectivity)\b[^.\n]{0,40}?(?<![\w.])(?P<number>\d+(?:\.\d+)?)\s*(?P<pct>%)?",
    re.I,
)
#: A percentage stated before the metric it measures ("99% accuracy", "97% test accuracy").
PERCENT_METRIC = re.compile(
    r"(?<![\w.])(?P<number>\d{1,3}(?:\.\d{1,4})?)\s{0,2}(?P<pct>%)\s{1,3}(?:[\w-]{1,20}\s{1,3}){0,2}?"
    r"(?P<metric>accuracy|acc|f1|auc|recovery|selectivity)\b",
    re.I,
)
#: Just before a number: what makes it a p-value or a test statistic ("p = 1.0", "t(9) = 2.1"),
#: not the metric named before it ("accuracy is at chance (p = 1.0)").
NOT_THE_METRIC = re.compile(
    r"(?:\b(?:p(?:[ -]?values?)?|q|t|z|F|chi2|df|n|N)(?:\(\d{1,6}\))?\s{0,2}[=<>≤≥]\s{0,2}"
    r"|\b(?:t|F|chi2)\()$"
)
#: After a metric's name in an output: the number printed for it (up to 30 characters on).
SHOWN_NUMBER = r"[^0-9\n]{0,30}(-?\d+(?:\.\d+)?)"
SPREAD = re.compile(
    r"(±|\+/-|\+-|\bCI\b|confidence interval|standard error|\bSE\b|\bSEM\b|"
    r"\bs\.?d\.?\b|\bstd\b|"
    r"\[\s*-?(?:\d+(?:\.\d+)?|\.\d+)\s*,\s*-?(?:\d+(?:\.\d+)?|\.\d+)\s*\]|"  # [0.7, 0.9]
    r"\bIQR\b|\bspread\b|\bacross \d+ seeds\b)",
    re.I,
)


@rule(
    "STA001",
    severity="error",
    title="many p-values without multiple-comparison correction",
    fix="correct the family of tests: statsmodels.stats.multitest.multipletests(p, "
    "method='fdr_bh') (probes.probe_layers does this)",
    cite=f"Benjamini & Hochberg 1995; {METHODOLOGY} §Statistical Rigor",
    alternatives="Bonferroni, Holm, FDR (any multipletests method), a max-statistic permutation "
    "null over the family",
)
def uncorrected_p_values(ctx: Context) -> list[Hit]:
    """Flag three or more p-values (or tests in a loop) and no correction anywhere.

    Twenty tests at p < 0.05 give one "significant" result by chance; a family of tests needs a
    correction (FDR, Holm, a max-statistic null) before any one of them is believed.
    """
    calls = ctx.find(CORRECTION_NAMES)
    # a name of a correction that is no call's name: a correction written by hand
    if CORRECTION_NAMES & ctx.names() - {c.short for _, c in calls}:
        return []
    # a correction counts when its result is used (``_ = multipletests(p)`` corrects nothing)
    used = [(cell, c) for cell, c in calls if used_later(ctx, cell, c)]
    if any(in_function(ctx, c) for _, c in used):
        return []  # a helper that corrects: which tests reach it is not followed into calls
    if used:
        return _uncorrected_in_code(ctx, {id(c) for _, c in used})
    return _uncorrected_in_ledger(ctx) or _uncorrected_in_code(ctx, set())


def _uncorrected_in_ledger(ctx: Context) -> list[Hit]:
    """Return a hit on the last uncorrected ledger entry when the kernel produced 3+ p-values."""
    uncorrected = [
        (entry, count)
        for entry in ctx.ledger
        for count, corrected in [p_values(entry)]
        if count and not corrected
    ]
    n = sum(count for _, count in uncorrected)
    if n < 3 or not (cell := ctx.cell_of(uncorrected[-1][0])):
        return []
    message = f"this kernel produced {n} p-values and none was corrected for multiple comparisons"
    return [Hit(cell, 1, message, "ledger")]


def _uncorrected_in_code(ctx: Context, corrections: set[int]) -> list[Hit]:
    """Return a hit on the first test when the code computes p-values in a loop or 3+ times
    and they do not reach any of the ``corrections`` (the ``id`` of used correction calls)."""
    tests = [
        (cell, c)
        for cell, c in ctx.calls()
        if (c.short in PVALUE_CALLS or c.name in PVALUE_CALLS)
        and (c.short not in PROBE_FUNCS or package_probe(ctx, c))
        and not _statistic_only(cell, c)
    ]
    corrected = reaching(ctx, tests, lambda c: id(c) in corrections) if corrections else set()
    tests = [(cell, c) for cell, c in tests if id(c) not in corrected]
    looped = [(cell, c) for cell, c in tests if c.in_loop]
    if not looped and len(tests) < 3:
        return []
    cell, call = (looped or tests)[0]
    many = "inside a loop" if looped else f"{len(tests)} times"
    return [
        Hit(
            cell,
            call.line,
            f"p-values are computed {many} ({call.name}) and none is corrected for "
            "multiple comparisons",
        )
    ]


#: A test whose statistic alone is kept: ``spearmanr(a, b).correlation``, ``pearsonr(a, b)[0]``.
STATISTIC_ONLY = re.compile(
    r"\((?:[^()\n]|\([^()\n]{0,200}\)){0,400}\)\s{0,2}(?:\.(?:correlation|statistic)\b|\[0\])"
)


def _statistic_only(cell: Cell, call: Call) -> bool:
    """Whether a test call's p-value is dropped where it is made (only its statistic is read)."""
    if not 0 < call.line <= len(cell.lines):
        return False
    line = cell.lines[call.line - 1]
    at = line.find(call.short + "(")
    return at >= 0 and STATISTIC_ONLY.match(line, at + len(call.short)) is not None


@rule(
    "STA002",
    severity="warning",
    title="headline metric without uncertainty",
    fix="state a confidence interval, standard error or spread with the number (probes.probe "
    "gives bootstrap 95% CIs)",
    cite=f"{METHODOLOGY} §Statistical Rigor; Bouthillier et al. 2021, Accounting for Variance "
    "in ML Benchmarks",
    alternatives="a CI, ±SE or ±SD, an interval in brackets, or results across several seeds",
)
def metric_without_uncertainty(ctx: Context) -> list[Hit]:
    """Flag a metric stated in the text with a number but no interval, error or spread.

    A single accuracy or effect size hides how much it would move with other data or another
    seed, so the reader cannot tell a real difference from noise.
    """
    spread_in: dict[int, bool] = {}  # cell index -> the cell states a spread (searched once)

    def cell_has_spread(cell: Cell) -> bool:
        if cell.index not in spread_in:
            spread_in[cell.index] = bool(SPREAD.search(cell.source))
        return spread_in[cell.index]

    bare = (
        c
        for c in _metric_claims(ctx)
        if is_metric(c.match) and not SPREAD.search(c.sentence) and not cell_has_spread(c.cell)
    )
    if claim := next(bare, None):
        m = claim.match
        return [
            claim.hit(
                f"the {m.group('metric').lower()} of {m.group('number')}{m.group('pct') or ''} "
                "is stated with no confidence interval, standard error or spread"
            )
        ]
    return []


@rule(
    "STA003",
    severity="warning",
    title="comparison from a single seed",
    fix="repeat the comparison over several seeds (or data splits) and report the spread",
    cite=f"Bouthillier et al. 2021; {METHODOLOGY} §Reproducibility",
    alternatives="a loop over seeds, a list of seeds, or several independently initialised runs",
)
def single_seed_comparison(ctx: Context) -> list[Hit]:
    """Flag a comparison in the text when the random work behind it ran with one seed only.

    Differences between probes, layers or models are often smaller than the variation between
    seeds; one run cannot show that the ordering would survive another.
    """
    random_work = ctx.find(RANDOM_CALLS | {"fit", "train"} | PROBE_FUNCS | CLASSIFIERS)
    seeds = [c for _, c in ctx.find(SEED_CALLS)]
    many_seeds = bool({"seeds", "n_seeds", "seed_list"} & ctx.names()) or any(
        c.in_loop for c in seeds
    )
    if not random_work or many_seeds:
        return []
    measured = (c for c in ctx.claims(COMPARISON) if MEASURED.search(c.sentence))
    if claim := next(measured, None):
        return [
            claim.hit(
                "this comparison rests on a single random seed; the difference may not survive "
                "another"
            )
        ]
    return []


@rule(
    "STA004",
    severity="error",
    title="number in the text differs from the output",
    fix="update the text from the output it cites (or re-run the cell it comes from)",
    cite=f"{METHODOLOGY} §Reproducibility",
    alternatives="numbers that round to the printed value",
)
def text_differs_from_output(ctx: Context) -> list[Hit]:
    """Flag a metric stated in markdown that no output above it shows (after rounding).

    Text written before the last run, or copied from another one, reports results the
    notebook does not produce.
    """
    outputs: list[tuple[int, str]] = []  # (position, lowered output text) of code cells
    claims: list[tuple[int, Cell, int, re.Match[str]]] = []  # (position, cell, line, metric)
    for at, cell in enumerate(ctx.nb.cells):
        if cell.kind == "code" and cell.outputs_text:
            outputs.append((at, cell.outputs_text.lower()))
        elif cell.kind == "markdown":
            claims += [
                (at, cell, i, m)
                for i, line in enumerate(cell.lines, 1)
                for m in metric_numbers(line)
            ]
    shown: dict[str, _Shown] = {}  # each metric's printed numbers, read once from all outputs
    for at, cell, i, stated in claims:
        keyword = stated.group("metric").lower()
        if keyword not in shown:
            shown[keyword] = _Shown(keyword, outputs)
        if message := shown[keyword].contradiction(stated, at):
            return [Hit(cell, i, message)]
    return []


@rule(
    "STA005",
    severity="error",
    title="choice made on the test data it is reported on",
    fix="choose the layer, model or threshold on validation data (or by nested cross-"
    "validation), then score the chosen one once on the test data",
    cite="Cawley & Talbot 2010, On Over-fitting in Model Selection and Subsequent Selection "
    "Bias in Performance Evaluation; Varma & Simon 2006, Bias in Error Estimation When Using "
    "Cross-Validation for Model Selection",
    alternatives="a validation split or nested cross-validation for the choice; test scores "
    "reported for every candidate without choosing among them",
)
def selected_on_test_data(ctx: Context) -> list[Hit]:
    """Flag a best layer, model or threshold picked by its score on the test data.

    The maximum of several noisy test scores is biased upwards: the winner's test score
    includes the luck that made it win, so it overstates how well the choice generalises.
    """
    return [
        Hit(
            cell,
            call.line,
            f"the best candidate is chosen by its score on test data ({call.name}), so its "
            "test score is biased upwards: choose on validation data, then test once"
            if call.short not in CV_SCORES
            else f"the best candidate is chosen by its cross-validated score ({call.name}), "
            "so that score is biased upwards: choose inside each training fold (nested "
            "cross-validation), or report every candidate's score without choosing",
        )
        for cell, call in chosen_on_test(ctx)[:1]
    ]


def _metric_claims(ctx: Context) -> list[Claim]:
    """Return the sentences that state a metric's value, either way round, in notebook order
    (numbers quoted from published work left out)."""
    found = [*ctx.claims(METRIC_NUMBER, cited=False), *ctx.claims(PERCENT_METRIC, cited=False)]
    return sorted(found, key=lambda c: (c.cell.index, c.line, c.match.start()))


def metric_numbers(line: str) -> list[re.Match[str]]:
    """Return the metric values a markdown line states, either way round ("accuracy 0.9",
    "90% accuracy"), left to right; none from a line that quotes published work."""
    if is_cited(line):
        return []
    found = [*METRIC_NUMBER.finditer(line), *PERCENT_METRIC.finditer(line)]
    return sorted((m for m in found if is_metric(m)), key=lambda m: m.start())


def is_metric(m: re.Match[str]) -> bool:
    """Whether the number METRIC_NUMBER found is the metric's value, not a p-value or a test
    statistic stated after it (``p = 1.0``, ``t = 2.1``, ``n = 200``)."""
    before = m.string[max(m.start(), m.start("number") - 16) : m.start("number")]
    return NOT_THE_METRIC.search(before) is None


class _Shown:
    """The numbers the outputs print after one metric's name, asked about in notebook order.

    Each claim asks whether an output above it shows its number (after rounding). Searching
    every output again for every claim is quadratic; here the outputs are read once, the
    numbers sorted, and the ones above the claim counted in a Fenwick tree, so a claim costs
    a logarithm. The claims must come in notebook order.
    """

    def __init__(self, keyword: str, outputs: list[tuple[int, str]]) -> None:
        pattern = re.compile(re.escape(keyword) + SHOWN_NUMBER)
        # (number, position) in output order
        self.found = [(float(m[1]), at) for at, text in outputs for m in pattern.finditer(text)]
        order = sorted(range(len(self.found)), key=lambda j: self.found[j][0])
        self.values = [self.found[j][0] for j in order]
        self.rank = [0] * len(order)
        for r, j in enumerate(order):
            self.rank[j] = r
        self.tree = [0] * (len(order) + 1)
        self.above = 0  # self.found[:above] are above the current claim

    def contradiction(self, stated: re.Match[str], at: int) -> str | None:
        """Return how the metric stated in cell ``at`` differs from the outputs above it (None
        if one agrees or none shows it)."""
        while self.above < len(self.found) and self.found[self.above][1] < at:
            self._add(self.rank[self.above])
            self.above += 1
        if not self.above:
            return None
        keyword = stated.group("metric").lower()
        number, pct = stated.group("number"), stated.group("pct")
        decimals = len(number.split(".")[1]) if "." in number else 0
        # a percentage agrees with an output that prints the fraction (0.97) or the percentage
        scales = (100, 1) if pct else (1,)
        if any(self._shows(float(number) / s, 0.5 * 10 ** (-decimals) / s + 1e-9) for s in scales):
            return None
        value = float(number) / scales[0]
        nearest = min((c for c, _ in self.found[: self.above]), key=lambda c: abs(c - value))
        return (
            f"the text states {keyword} {number}{pct or ''} but the outputs above show {nearest:g}"
        )

    def _shows(self, value: float, tol: float) -> bool:
        """Whether an output above the claim shows a number within ``tol`` of ``value``."""
        # the numbers within tol of value form one run of the sorted values
        lo = bisect.bisect_left(
            self.values, True, key=lambda c: not (c < value and abs(c - value) > tol)
        )
        hi = bisect.bisect_left(self.values, True, key=lambda c: c > value and abs(c - value) > tol)
        return self._count(hi) > self._count(lo)

    def _add(self, r: int) -> None:
        r += 1
        while r < len(self.tree):
            self.tree[r] += 1
            r += r & -r

    def _count(self, r: int) -> int:
        """Return how many numbers above the claim have a rank below ``r``."""
        total = 0
        while r > 0:
            total += self.tree[r]
            r -= r & -r
        return total
