"""Statistics rules (STA): multiple comparisons, uncertainty, seeds, and numbers in the text."""

from __future__ import annotations

import re

from ..ledger import p_values
from ..registry import METHODOLOGY, Hit, rule
from .context import Context
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
    "probe_layers",
    "%probe",
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
METRIC_NUMBER = re.compile(
    r"\b(?P<metric>accuracy|acc|f1|auc|logit diff(?:erence)?|loss|correlation|recovery|"
    r"restores?|effect|"
    r"probe score|selectivity)\b[^.\n]{0,40}?(?<![\w.])(?P<number>\d+(?:\.\d+)?)\s*(?P<pct>%)?",
    re.I,
)
SPREAD = re.compile(
    r"(±|\+/-|\+-|\bCI\b|confidence interval|standard error|\bSE\b|\bSEM\b|"
    r"\bs\.?d\.?\b|\bstd\b|"
    r"\[\s*-?\d*\.?\d+\s*,\s*-?\d*\.?\d+\s*\]|\bIQR\b|\bspread\b|\bacross \d+ seeds\b)",
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
    if CORRECTION_NAMES & ctx.names() or ctx.find(CORRECTION_NAMES):
        return []
    return _uncorrected_in_ledger(ctx) or _uncorrected_in_code(ctx)


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


def _uncorrected_in_code(ctx: Context) -> list[Hit]:
    """Return a hit on the first test when the code computes p-values in a loop or 3+ times."""
    tests = [
        (cell, c) for cell, c in ctx.calls() if c.short in PVALUE_CALLS or c.name in PVALUE_CALLS
    ]
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
    bare = (
        c
        for c in ctx.claims(METRIC_NUMBER)
        if not SPREAD.search(c.sentence) and not SPREAD.search(c.cell.source)
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
    if claim := next(ctx.claims(COMPARISON), None):
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
    outputs: list[str] = []  # lowered output text of the code cells so far
    for cell in ctx.nb.cells:
        if cell.kind == "code" and cell.outputs_text:
            outputs.append(cell.outputs_text.lower())
            continue
        if cell.kind != "markdown":
            continue
        for i, line in enumerate(cell.lines, 1):
            for m in METRIC_NUMBER.finditer(line):
                if message := _contradiction(m, outputs):
                    return [Hit(cell, i, message)]
    return []


def _contradiction(stated: re.Match[str], outputs: list[str]) -> str | None:
    """Return how a stated metric differs from the outputs (None if one agrees or none shows it)."""
    keyword = stated.group("metric").lower()
    number, pct = stated.group("number"), stated.group("pct")
    scale = 100 if pct else 1
    value = float(number) / scale
    pattern = re.escape(keyword) + r"[^0-9\n]{0,30}(-?\d+(?:\.\d+)?)"
    candidates = [float(m.group(1)) for text in outputs for m in re.finditer(pattern, text)]
    decimals = len(number.split(".")[1]) if "." in number else 0
    tol = 0.5 * 10 ** (-decimals) / scale + 1e-9
    if not candidates or any(abs(c - value) <= tol for c in candidates):
        return None
    nearest = min(candidates, key=lambda c: abs(c - value))
    return f"the text states {keyword} {number}{pct or ''} but the outputs above show {nearest:g}"
