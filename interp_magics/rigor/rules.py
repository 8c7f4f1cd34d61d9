"""The rules: which methodological gaps the checker reports, and how it recognises them.

Every rule has an id, a severity, a message that names what is missing, a concrete fix, a
citation, and the accepted alternatives that must not be flagged. Rules read two sources of
evidence: the notebook (code read with ``ast``, markdown read for claims, saved outputs) and,
when available, the ledger of analyses this kernel actually ran.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from .facts import Call
from .notebook import Cell, Notebook

METHODOLOGY = "interpretability-for-researchers.md"


@dataclass
class Hit:
    """Where a rule fired, and what it says there."""

    cell: Cell
    line: int
    message: str
    source: str = "static"  # or "ledger"


@dataclass(frozen=True)
class Rule:
    """A methodological check."""

    id: str
    severity: str  # "error" or "warning"
    title: str
    fix: str
    reference: str
    alternatives: str
    check: Callable[[Context], list[Hit]] = field(compare=False, repr=False)


# -- vocabulary ------------------------------------------------------------------------------------

CLASSIFIERS = {
    "LogisticRegression",
    "LogisticRegressionCV",
    "RidgeClassifier",
    "RidgeClassifierCV",
    "LinearSVC",
    "SVC",
    "SGDClassifier",
    "MLPClassifier",
    "LinearDiscriminantAnalysis",
    "Perceptron",
    "KNeighborsClassifier",
    "RandomForestClassifier",
    "DecisionTreeClassifier",
    "GradientBoostingClassifier",
    "LinearProbe",
}
PROBE_FUNCS = {"probe", "probe_layers", "%probe"}
CV_CALLS = {"cross_val_score", "cross_validate", "cross_val_predict"}
CONTROL_CALLS = {
    "permutation_test_score",
    "permutation_test",
    "DummyClassifier",
    "from_config",
    "init_weights",
    "reset_parameters",
    "_init_weights",
    "random_init_features",
}
SHUFFLE_CALLS = {"permutation", "shuffle"}  # a control when applied to labels
NOISE_CALLS = {
    "randn_like",
    "rand_like",
    "standard_normal",
    "randn",
    "normal",
}  # ... to features' shape
LABELS = re.compile(r"\b(y|labels?|targets?|y_\w+|classes)\b")
LAYERISH = re.compile(r"layer|model|block|depth|checkpoint|ckpt|step|\bl\b|\bL\b", re.I)
CONTROL_NAMES = {
    "control_task",
    "control_labels",
    "selectivity",
    "shuffled_labels",
    "random_features",
    "mdl",
    "online_code",
    "description_length",
}
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
SEED_CALLS = {
    "manual_seed",
    "manual_seed_all",
    "seed",
    "set_seed",
    "seed_everything",
    "set_random_seed",
}
RANDOM_CALLS = {
    "rand",
    "randn",
    "randint",
    "randperm",
    "random",
    "choice",
    "permutation",
    "shuffle",
    "normal",
    "uniform",
    "sample",
    "bernoulli",
    "multinomial",
    "standard_normal",
    "integers",
    "rand_like",
    "randn_like",
    "train_test_split",
    "KFold",
    "StratifiedKFold",
    "ShuffleSplit",
    "default_rng",
}
RANDOM_MODULES = ("np.random", "numpy.random", "torch", "random", "rng", "gen", "generator")
INTERVENTION_CALLS = {
    "activation_patch",
    "ablate",
    "%patch",
    "run_with_hooks",
    "patch",
    "generic_activation_patch",
    "path_patch",
    "causal_scrubbing",
    "steer",
}
ATTENTION_CALLS = {
    "%attention",
    "attention_patterns",
    "AttentionView",
    "attention_heads",
    "head_view",
    "model_view",
    "patterns_from_cache",
}
ACCURACY_CALLS = {"accuracy_score", "score"}
BASELINE_CALLS = {
    "balanced_accuracy_score",
    "DummyClassifier",
    "f1_score",
    "roc_auc_score",
    "matthews_corrcoef",
    "probe",
    "probe_layers",
    "%probe",
    "bincount",
    "value_counts",
}

COMPONENT = (
    r"(heads?|layers?|neurons?|mlps?|attention|circuits?|features?|directions?|residual|"
    r"components?|L\d+H\d+|positions?)"
)
CAUSAL = re.compile(
    r"\b(is responsible for|are responsible for|implements?|circuit|causes?|causally|drives?|"
    r"computes?|the mechanism|mechanistically|the model uses|is used (?:by the model )?to)\b",
    re.I,
)
ATTENTION_CLAIM = re.compile(
    r"\b(attends? to|attention (?:to|shows|reveals|explains)|pays attention|"
    r"focus(?:es)? on|looks? at)\b",
    re.I,
)
GENERALISING = re.compile(
    r"\b(always|consistently|in general|generally|universally|every (?:example|input|prompt)|"
    r"all (?:examples|inputs|prompts)|"
    r"the model (?:has )?learn(?:s|ed|t)|systematically|robustly)\b",
    re.I,
)
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
IMBALANCE = re.compile(
    r"\b(imbalanced|unbalanced|class imbalance|skewed|rare class|majority class|"
    r"minority class|\d\d\s*/\s*\d\d split)\b",
    re.I,
)
PROB_WORDS = ("prob", "acc", "softmax", "correct")


# -- context ---------------------------------------------------------------------------------------


class Context:
    """Everything the rules read: the notebook and the ledger, with shared lookups."""

    def __init__(self, nb: Notebook, ledger: list[dict[str, Any]]) -> None:
        self.nb = nb
        self.ledger = ledger
        self.by_id = {c.id: c for c in nb.cells}
        self.by_sha = {c.source_sha1: c for c in nb.cells}
        self.memo: dict[str, Any] = {}  # results several rules share, computed once

    def calls(self) -> Iterator[tuple[Cell, Call]]:
        """Every call in notebook order."""
        for cell in self.nb.code():
            if cell.facts:
                for call in cell.facts.calls:
                    yield cell, call

    def find(self, shorts: set[str]) -> list[tuple[Cell, Call]]:
        return [(cell, c) for cell, c in self.calls() if c.short in shorts or c.name in shorts]

    def names(self) -> set[str]:
        out: set[str] = set()
        for cell in self.nb.code():
            if cell.facts:
                out |= cell.facts.names
        return out

    def entries(self, kind: str) -> list[dict[str, Any]]:
        return [e for e in self.ledger if e.get("kind") == kind]

    def cell_of(self, entry: dict[str, Any]) -> Cell | None:
        cell = self.by_id.get(str(entry.get("cell_id")))
        return cell or self.by_sha.get(str(entry.get("source_sha1")))

    def sentences(self) -> Iterator[tuple[Cell, int, str]]:
        """Every markdown sentence with its cell and line."""
        for cell in self.nb.markdown():
            for i, line in enumerate(cell.lines, 1):
                text = re.sub(r"<!--.*?-->", "", line)
                for sentence in re.split(r"(?<=[.!?])\s+", text):
                    if sentence.strip():
                        yield cell, i, sentence

    def interventions(self) -> bool:
        """Whether anything intervened on the model (patching, ablation, hooks that write)."""
        if self.find(INTERVENTION_CALLS) or self.entries("patch") or self.entries("ablation"):
            return True
        for cell in self.nb.code():
            if cell.facts and cell.facts.output_writes:
                return True
            facts = cell.facts
            if facts is None:
                continue
            hooks = any(c.short == "register_forward_hook" for c in facts.calls)
            # A hook whose function builds a replacement tensor writes into the model.
            if hooks and any(
                f.calls for f in facts.functions.values() if {"zeros_like", "clone"} & f.names
            ):
                return True
        return False

    def controls(self) -> bool:
        """Whether any probe control appears in the code or the ledger."""
        if any(_is_control(c) for _, c in self.calls()) or CONTROL_NAMES & self.names():
            return True
        for _, call in self.find(PROBE_FUNCS):
            if not _controls_disabled(call):
                return True
        return any(_entry_has_control(e) for e in self.entries("probe"))


def _is_control(call: Call) -> bool:
    """Whether a call is a probe control: a permutation test, shuffled labels, random features..."""
    if call.short in CONTROL_CALLS:
        return True
    text = " ".join([*call.args, *call.kwargs.values()])
    if call.short in SHUFFLE_CALLS:
        return bool(LABELS.search(text))
    if call.short in NOISE_CALLS:
        return ".shape" in text or call.short.endswith("_like")
    return False


def _controls_disabled(call: Call) -> bool:
    if call.name.startswith("%"):
        joined = " ".join(call.args)
        return "--controls" in joined and not re.search(
            r"--controls\s+\S*(shuffled|random_features)", joined
        )
    value = call.kwargs.get("controls")
    return value is not None and not re.search(r"shuffled|random_features", value)


def _entry_has_control(entry: dict[str, Any]) -> bool:
    controls = set(entry.get("controls") or [])
    return bool(
        controls
        & {"shuffled", "random_features", "random features", "random-init model", "control task"}
    )


def _probe_sites(ctx: Context) -> list[tuple[Cell, Call]]:
    """Probe fits: classifiers fitted in the notebook, and interp-magics probes."""
    if ctx.memo.get("probe_sites") is not None:
        return ctx.memo["probe_sites"]  # type: ignore[no-any-return]
    out = []
    classifiers = _assigned_classifiers(ctx)
    for cell, call in ctx.calls():
        if (
            call.short in PROBE_FUNCS
            or call.name in PROBE_FUNCS
            or (
                call.short in CV_CALLS and call.args and any(k in call.args[0] for k in CLASSIFIERS)
            )
            or (
                call.short == "fit"
                and (call.receiver in classifiers or any(k in call.receiver for k in CLASSIFIERS))
            )
        ):
            out.append((cell, call))
    ctx.memo["probe_sites"] = out
    return out


def _assigned_classifiers(ctx: Context) -> set[str]:
    """Names bound to classifier constructors anywhere (``clf = LogisticRegression()``)."""
    names = set()
    for cell in ctx.nb.code():
        for line in cell.lines:
            m = re.match(r"\s*([A-Za-z_]\w*)\s*=\s*(?:\w+\.)*(\w+)\(", line)
            if m and m.group(2) in CLASSIFIERS:
                names.add(m.group(1))
    return names


# -- rules -----------------------------------------------------------------------------------------


def prb001(ctx: Context) -> list[Hit]:
    hits = []
    for entry in ctx.entries("probe"):
        cell = ctx.cell_of(entry)
        if cell and not _entry_has_control(entry):
            hits.append(
                Hit(
                    cell,
                    1,
                    "this probe ran without a control (the ledger shows no shuffled labels, random "
                    "features, random-init model or control task)",
                    "ledger",
                )
            )
    sites = _probe_sites(ctx)
    if not hits and sites and not ctx.controls():
        cell, call = sites[0]
        hits.append(
            Hit(
                cell,
                call.line,
                f"a probe is fitted here ({call.name}) but the notebook has no control: no "
                "shuffled labels, random features, random-init model or control task",
            )
        )
    return hits


def prb002(ctx: Context) -> list[Hit]:
    acc = ctx.find(ACCURACY_CALLS)
    if (
        not acc
        or ctx.find(BASELINE_CALLS)
        or "class_weight" in " ".join(" ".join(c.kwargs) for _, c in ctx.calls())
    ):
        return []
    evidence = any(IMBALANCE.search(c.source) for c in ctx.nb.markdown()) or any(
        IMBALANCE.search(c.outputs_text) for c in ctx.nb.code()
    )
    if not evidence:
        return []
    cell, call = acc[0]
    return [
        Hit(
            cell,
            call.line,
            "accuracy is reported on imbalanced classes with no majority-class or "
            "balanced-accuracy baseline",
        )
    ]


def prb003(ctx: Context) -> list[Hit]:
    for cell, call in _probe_sites(ctx):
        if not call.in_loop or call.short == "probe_layers":
            continue
        header = cell.facts.loops.get(call.loop, "") if cell.facts and call.loop else ""
        if not LAYERISH.search(header):
            continue  # a loop over seeds or folds repeats a measurement; it compares nothing
        loop_calls = [c for c in cell.facts.calls if c.loop == call.loop] if cell.facts else []
        looped_probe_has_controls = call.short in PROBE_FUNCS and not _controls_disabled(call)
        words = {
            w
            for c in loop_calls
            for text in (c.name, c.receiver, *c.args, *c.kwargs, *c.kwargs.values())
            for w in re.findall(r"\w+", text)
        }
        in_loop_control = any(_is_control(c) for c in loop_calls) or bool(CONTROL_NAMES & words)
        if not looped_probe_has_controls and not in_loop_control:
            return [
                Hit(
                    cell,
                    call.line,
                    "probe accuracies are compared across a loop (layers or models) without a "
                    "control or selectivity for each one",
                )
            ]
    return []


def prb004(ctx: Context) -> list[Hit]:
    fitted: dict[str, str] = {}
    for cell, call in ctx.calls():
        if call.short == "fit" and call.receiver and call.args:
            fitted[call.receiver] = call.args[0]
        elif (
            call.short in ("score", "predict", "predict_proba", "decision_function")
            and call.receiver in fitted
            and call.args
            and call.args[0] == fitted[call.receiver]
        ):
            return [
                Hit(
                    cell,
                    call.line,
                    f"{call.receiver} is scored on {call.args[0]}, the data it was fitted on",
                )
            ]
    return []


def sta001(ctx: Context) -> list[Hit]:
    corrected = bool(CORRECTION_NAMES & ctx.names()) or bool(ctx.find(CORRECTION_NAMES))
    if corrected:
        return []
    hits = []
    uncorrected = [e for e in ctx.ledger if e.get("p_values") and not e.get("corrected")]
    if sum(int(e["p_values"]) for e in uncorrected) >= 3:
        cell = ctx.cell_of(uncorrected[-1])
        if cell:
            n = sum(int(e["p_values"]) for e in uncorrected)
            hits.append(
                Hit(
                    cell,
                    1,
                    f"this kernel produced {n} p-values and none was corrected for multiple "
                    "comparisons",
                    "ledger",
                )
            )
            return hits
    tests = [
        (cell, c) for cell, c in ctx.calls() if c.short in PVALUE_CALLS or c.name in PVALUE_CALLS
    ]
    looped = [(cell, c) for cell, c in tests if c.in_loop]
    if looped or len(tests) >= 3:
        cell, call = (looped or tests)[0]
        many = "inside a loop" if looped else f"{len(tests)} times"
        hits.append(
            Hit(
                cell,
                call.line,
                f"p-values are computed {many} ({call.name}) and none is corrected for "
                "multiple comparisons",
            )
        )
    return hits


def sta002(ctx: Context) -> list[Hit]:
    for cell, line, sentence in ctx.sentences():
        m = METRIC_NUMBER.search(sentence)
        if m and not SPREAD.search(sentence) and not SPREAD.search(cell.source):
            return [
                Hit(
                    cell,
                    line,
                    f"the {m.group('metric').lower()} of {m.group('number')}{m.group('pct') or ''} "
                    "is stated with no confidence interval, standard error or spread",
                )
            ]
    return []


def sta003(ctx: Context) -> list[Hit]:
    random_work = ctx.find(
        RANDOM_CALLS | {"fit", "train", "probe", "probe_layers", "%probe"} | CLASSIFIERS
    )
    names = ctx.names()
    seeds = [c for _, c in ctx.find(SEED_CALLS)]
    many_seeds = bool({"seeds", "n_seeds", "seed_list"} & names) or any(c.in_loop for c in seeds)
    if not random_work or many_seeds:
        return []
    for cell, line, sentence in ctx.sentences():
        if COMPARISON.search(sentence):
            return [
                Hit(
                    cell,
                    line,
                    "this comparison rests on a single random seed; the difference may not survive "
                    "another",
                )
            ]
    return []


def sta004(ctx: Context) -> list[Hit]:
    seen: list[tuple[str, str]] = []  # (metric keyword, output text) of code cells so far
    for cell in ctx.nb.cells:
        if cell.kind == "code" and cell.outputs_text:
            seen.append((cell.outputs_text.lower(), cell.outputs_text))
            continue
        if cell.kind != "markdown":
            continue
        for i, line in enumerate(cell.lines, 1):
            for m in METRIC_NUMBER.finditer(line):
                keyword = m.group("metric").lower()
                stated = float(m.group("number")) / (100 if m.group("pct") else 1)
                candidates = []
                for lowered, _text in seen:
                    for found in re.finditer(
                        re.escape(keyword) + r"[^0-9\n]{0,30}(-?\d+(?:\.\d+)?)", lowered
                    ):
                        candidates.append(float(found.group(1)))
                if not candidates:
                    continue
                decimals = len(m.group("number").split(".")[1]) if "." in m.group("number") else 0
                tol = 0.5 * 10 ** (-decimals) / (100 if m.group("pct") else 1) + 1e-9
                if not any(abs(c - stated) <= tol for c in candidates):
                    nearest = min(candidates, key=lambda c: abs(c - stated))
                    return [
                        Hit(
                            cell,
                            i,
                            f"the text states {keyword} {m.group('number')}{m.group('pct') or ''} "
                            f"but the outputs above show {nearest:g}",
                        )
                    ]
    return []


def rep001(ctx: Context) -> list[Hit]:
    for cell, call in ctx.calls():
        if call.short in SEED_CALLS and (call.short != "seed" or "random" in call.name):
            return []
        if call.short == "default_rng" and call.args:
            return []
        if call.short == "Generator" or (call.short == "manual_seed"):
            return []
        if _is_random(call):
            return [
                Hit(cell, call.line, f"{call.name} draws random numbers before any seed is set")
            ]
    return []


def _is_random(call: Call) -> bool:
    if call.short in ("train_test_split", "KFold", "StratifiedKFold", "ShuffleSplit"):
        seeded = "random_state" in call.kwargs and call.kwargs["random_state"] != "None"
        shuffles = (
            call.short in ("train_test_split", "ShuffleSplit")
            or call.kwargs.get("shuffle") == "True"
        )
        return shuffles and not seeded
    if call.short == "default_rng":
        return not call.args and "seed" not in call.kwargs
    if call.short not in RANDOM_CALLS or "generator" in call.kwargs:
        return False
    prefix = call.name.rsplit(".", 1)[0] if "." in call.name else ""
    return prefix.startswith(RANDOM_MODULES) or prefix in ("np.random", "random", "torch")


def rep002(ctx: Context) -> list[Hit]:
    hits = []
    highest = 0
    for cell in ctx.nb.code():
        if cell.execution_count is None:
            continue
        if cell.execution_count < highest:
            hits.append(
                Hit(
                    cell,
                    1,
                    f"this cell ran as In[{cell.execution_count}], before a cell above it "
                    f"(In[{highest}]): "
                    "the notebook was run out of order, so results may come from a different order "
                    "or version of the code",
                )
            )
            break
        highest = cell.execution_count
    for entry in ctx.ledger:
        edited = ctx.by_id.get(str(entry.get("cell_id")))
        if edited and entry.get("source_sha1") and entry["source_sha1"] != edited.source_sha1:
            hits.append(
                Hit(
                    edited,
                    1,
                    f"this cell was edited after its {entry.get('kind', 'analysis')} ran: the "
                    "results shown may not come from this code",
                    "ledger",
                )
            )
            break
    return hits


def cau001(ctx: Context) -> list[Hit]:
    if ctx.interventions():
        return []
    for cell, line, sentence in ctx.sentences():
        if CAUSAL.search(sentence) and re.search(COMPONENT, sentence, re.I):
            word = CAUSAL.search(sentence).group(0)  # type: ignore[union-attr]
            return [
                Hit(
                    cell,
                    line,
                    f'causal wording ("{word}") about a model component in "{_excerpt(sentence)}", '
                    "but the notebook has only correlational evidence (no patching or ablation)",
                )
            ]
    return []


def _excerpt(sentence: str, limit: int = 90) -> str:
    """Return ``sentence`` on one line, shortened to ``limit`` characters for a message."""
    text = " ".join(sentence.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _metric_kind(ctx: Context, call: Call) -> str:
    """Return "good", "prob" or "unknown" for the metric a patching call uses."""
    src = call.kwargs.get("metric") or (
        call.args[3] if call.short in ("activation_patch",) and len(call.args) > 3 else ""
    )
    if not src and call.args:
        src = call.args[-1]
    if call.name == "%patch":
        joined = " ".join(call.args)
        m = re.search(r"--metric\s+(\S+)", joined)
        src = m.group(1) if m else ""
    if re.search(r"logit_diff|logprob|log_softmax|kl_to_clean|log_prob", src):
        return "good"
    for cell in ctx.nb.code():
        if cell.facts and src in cell.facts.functions:
            f = cell.facts.functions[src]
            if {"log_softmax", "logprob", "log_prob"} & f.names or (
                "logit" in src.lower() and "diff" in src.lower()
            ):
                return "good"
            if {"softmax", "argmax", "accuracy_score", "probs", "prob"} & f.names:
                return "prob"
        for line in cell.lines:
            m = re.match(rf"\s*{re.escape(src)}\s*=\s*(.+)", line) if src else None
            if m:
                if re.search(r"logit_diff|logprob|kl_to_clean|log_softmax", m.group(1)):
                    return "good"
                if re.search(r"softmax|argmax|accuracy|prob", m.group(1)):
                    return "prob"
    if any(w in src.lower() for w in PROB_WORDS) and "log" not in src.lower():
        return "prob"
    return "unknown"


def cau002(ctx: Context) -> list[Hit]:
    patches = ctx.find({"activation_patch", "%patch", "generic_activation_patch"}) + [
        (cell, c) for cell, c in ctx.calls() if c.short.startswith("get_act_patch")
    ]
    kinds = [(cell, c, _metric_kind(ctx, c)) for cell, c in patches]
    names = [str(e.get("metric", "")).lower() for e in ctx.entries("patch")]
    ledger_prob = [n for n in names if any(w in n for w in PROB_WORDS) and "log" not in n]
    if kinds and all(k == "prob" for _, _, k in kinds) and len(ledger_prob) == len(names):
        cell, call, _ = kinds[0]
        return [
            Hit(
                cell,
                call.line,
                "patching is scored only by a probability or accuracy, which saturates and hides "
                "effects",
            )
        ]
    if not kinds and names and len(ledger_prob) == len(names):
        entry = ctx.entries("patch")[0]
        where = ctx.cell_of(entry)
        if where:
            return [Hit(where, 1, f"patching is scored only by {entry.get('metric')}", "ledger")]
    return []


def cau003(ctx: Context) -> list[Hit]:
    interventions: list[tuple[Cell, Call | None, str]] = []
    for cell, call in ctx.find({"activation_patch", "%patch"}):
        noisy = "noise" in call.kwargs or (
            call.name == "%patch" and "--noise" in " ".join(call.args)
        )
        interventions.append((cell, call, "noise" if noisy else "counterfactual"))
    for cell, call in ctx.find({"ablate"}):
        kind = call.kwargs.get("kind") or (call.args[3] if len(call.args) > 3 else "'zero'")
        interventions.append((cell, call, "zero" if "zero" in kind else "other"))
    for entry in ctx.entries("patch"):
        if where := ctx.cell_of(entry):
            noisy = "noise" in str(entry.get("corruption", "")).lower()
            interventions.append((where, None, "noise" if noisy else "counterfactual"))
    for entry in ctx.entries("ablation"):
        if where := ctx.cell_of(entry):
            zero = entry.get("ablation") == "zero"
            interventions.append((where, None, "zero" if zero else "other"))
    if interventions and all(k in ("noise", "zero") for _, _, k in interventions):
        first, how, _ = interventions[0]
        return [
            Hit(
                first,
                how.line if how else 1,
                "the only interventions are Gaussian-noise corruption or zero ablation, which push "
                "activations off-distribution",
                "static" if how else "ledger",
            )
        ]
    return []


def cau004(ctx: Context) -> list[Hit]:
    attribution, exact = [], False
    for cell, call in ctx.find({"activation_patch", "%patch"}):
        method = call.kwargs.get("method", "") if call.name != "%patch" else " ".join(call.args)
        verified = call.kwargs.get("verify_top", "0") not in ("0", "") or "--verify-top" in method
        if "attribution" in method:
            if not verified:
                attribution.append((cell, call))
        else:
            exact = True
    for cell, call in ctx.calls():
        if "attribution_patch" in call.name or call.short in ("attribution_patching", "atp"):
            attribution.append((cell, call))
    entries = ctx.entries("patch")
    exact = exact or any(e.get("method") == "exact" for e in entries)
    unverified = [e for e in entries if e.get("method") == "attribution" and not e.get("verified")]
    if attribution and not exact:
        cell, call = attribution[0]
        return [
            Hit(
                cell,
                call.line,
                "attribution-patching rankings are used without checking the top cells by exact "
                "patching",
            )
        ]
    if unverified and not exact and (where := ctx.cell_of(unverified[0])):
        return [Hit(where, 1, "attribution patching ran without exact verification", "ledger")]
    return []


def att001(ctx: Context) -> list[Hit]:
    views = ctx.find(ATTENTION_CALLS) or [
        (cell, c) for cell, c in ctx.calls() if c.kwargs.get("output_attentions") == "True"
    ]
    if not views and not any(
        "attentions" in (cell.facts.names if cell.facts else set()) for cell in ctx.nb.code()
    ):
        return []
    if ctx.interventions():
        return []
    for cell, line, sentence in ctx.sentences():
        if ATTENTION_CLAIM.search(sentence):
            return [
                Hit(
                    cell,
                    line,
                    "attention weights are read as an explanation, but nothing tests whether that "
                    "attention matters",
                )
            ]
    return []


def exm001(ctx: Context) -> list[Hit]:
    picked = [
        (cell, c)
        for cell, c in ctx.calls()
        if c.short in ("topk", "nlargest", "argsort", "most_common")
    ]
    for cell in ctx.nb.code():
        if cell.facts:
            for name, _n, line in cell.facts.string_lists:
                if re.search(r"example|prompt|sentence|input|text", name, re.I):
                    picked.append((cell, Call(name, line, False, None)))
    random_pick = ctx.find({"sample", "choice"})
    if not picked or random_pick:
        return []
    for cell, line, sentence in ctx.sentences():
        if GENERALISING.search(sentence):
            word = GENERALISING.search(sentence).group(0)  # type: ignore[union-attr]
            return [
                Hit(
                    cell, line, f'general wording ("{word}") rests on top-k or hand-picked examples'
                )
            ]
    return []


def _rule(
    id_: str, severity: str, title: str, fix: str, reference: str, accepts: str, check: Any
) -> Rule:
    return Rule(id_, severity, title, fix, reference, accepts, check)


_M = METHODOLOGY
RULES: dict[str, Rule] = {
    r.id: r
    for r in [
        _rule(
            "PRB001",
            "error",
            "probe without a control",
            "add a control: shuffled labels (a permutation test), random features, a randomly "
            "initialised model, or a control task (probes.probe runs the first two by default)",
            "Hewitt & Liang 2019, Designing and Interpreting Probes with Control Tasks; "
            f"{_M} §Controls and Baselines",
            "permutation tests, DummyClassifier, random features or a random-init model, control "
            "tasks and selectivity, MDL / information-theoretic probing (Voita & Titov 2020; "
            "Pimentel et al. 2020)",
            prb001,
        ),
        _rule(
            "PRB002",
            "warning",
            "accuracy with imbalanced classes and no baseline",
            "report the majority-class rate and balanced accuracy next to accuracy (probes.probe "
            "reports both)",
            f"Belinkov 2022, Probing Classifiers: Promises, Shortcomings, and Advances; {_M} "
            "§Controls and Baselines",
            "balanced accuracy, F1, AUC, MCC, a DummyClassifier, or class-weighted training",
            prb002,
        ),
        _rule(
            "PRB003",
            "warning",
            "probe accuracy compared across layers or models without a control",
            "compare selectivity (probe minus control task) or probe-minus-control accuracy per "
            "layer, e.g. probes.probe_layers with a control task",
            "Hewitt & Liang 2019; Belinkov 2022",
            "a control or control task computed for every layer or model being compared; "
            "probes.probe_layers",
            prb003,
        ),
        _rule(
            "PRB004",
            "error",
            "probe scored on its training data",
            "score on held-out data: cross-validation or a train/test split (probes.probe "
            "cross-validates)",
            f"Belinkov 2022; {_M} §Statistical Rigor",
            "cross_val_score, train_test_split, out-of-fold predictions",
            prb004,
        ),
        _rule(
            "STA001",
            "error",
            "many p-values without multiple-comparison correction",
            "correct the family of tests: statsmodels.stats.multitest.multipletests(p, "
            "method='fdr_bh') (probes.probe_layers does this)",
            f"Benjamini & Hochberg 1995; {_M} §Statistical Rigor",
            "Bonferroni, Holm, FDR (any multipletests method), a max-statistic permutation null "
            "over the family",
            sta001,
        ),
        _rule(
            "STA002",
            "warning",
            "headline metric without uncertainty",
            "state a confidence interval, standard error or spread with the number (probes.probe "
            "gives bootstrap 95% CIs)",
            f"{_M} §Statistical Rigor; Bouthillier et al. 2021, Accounting for Variance in ML "
            "Benchmarks",
            "a CI, ±SE or ±SD, an interval in brackets, or results across several seeds",
            sta002,
        ),
        _rule(
            "STA003",
            "warning",
            "comparison from a single seed",
            "repeat the comparison over several seeds (or data splits) and report the spread",
            f"Bouthillier et al. 2021; {_M} §Reproducibility",
            "a loop over seeds, a list of seeds, or several independently initialised runs",
            sta003,
        ),
        _rule(
            "STA004",
            "error",
            "number in the text differs from the output",
            "update the text from the output it cites (or re-run the cell it comes from)",
            f"{_M} §Reproducibility",
            "numbers that round to the printed value",
            sta004,
        ),
        _rule(
            "REP001",
            "warning",
            "randomness before a seed is set",
            "set seeds first: torch.manual_seed, np.random.seed / np.random.default_rng(seed), "
            "random.seed, or random_state=",
            f"{_M} §Reproducibility; Pineau et al. 2021, ML Reproducibility Checklist",
            "seeded generators (default_rng(0), torch.Generator().manual_seed(0)), random_state= "
            "arguments",
            rep001,
        ),
        _rule(
            "REP002",
            "warning",
            "results from cells edited or run out of order",
            "restart the kernel and run all cells in order before citing results",
            f"{_M} §Reproducibility",
            "a clean top-to-bottom run",
            rep002,
        ),
        _rule(
            "CAU001",
            "error",
            "causal wording with only correlational evidence",
            "test the claim with an intervention (activation patching or ablation), or word it as "
            'correlational ("is encoded in", "predicts")',
            f"{_M} §Multiple Validation Methods; Geiger et al. 2021, Causal Abstractions of "
            "Neural Networks",
            "activation patching, ablation, causal scrubbing, steering, or hooks that write "
            "activations",
            cau001,
        ),
        _rule(
            "CAU002",
            "warning",
            "patching scored only by probability or accuracy",
            "score patching with a logit difference or log-probability (patching.logit_diff, "
            "patching.logprob)",
            "Zhang & Nanda 2024, Towards Best Practices of Activation Patching; Heimersheim & "
            "Nanda 2024",
            "logit difference, log-probability, KL divergence",
            cau002,
        ),
        _rule(
            "CAU003",
            "warning",
            "only Gaussian-noise corruption or zero ablation",
            "add counterfactual patching (symmetric token replacement) or mean / resample ablation",
            "Zhang & Nanda 2024; Chan et al. 2022, Causal Scrubbing",
            "counterfactual prompts, mean ablation, resample ablation",
            cau003,
        ),
        _rule(
            "CAU004",
            "warning",
            "attribution patching without exact verification",
            "verify the top cells by exact patching (activation_patch(..., "
            "method='attribution', verify_top=k))",
            "Kramár et al. 2024, AtP*; Syed et al. 2023, Attribution Patching Outperforms "
            "Automated Circuit Discovery",
            "verify_top, or an exact patching run of the same site",
            cau004,
        ),
        _rule(
            "ATT001",
            "warning",
            "attention used as explanation without an intervention",
            "test the heads causally (patch or ablate them) before explaining behaviour by where "
            "they attend",
            "Jain & Wallace 2019, Attention is not Explanation; Wiegreffe & Pinter 2019; "
            f"{_M} §Common Pitfalls 1",
            "patching or ablating the heads shown",
            att001,
        ),
        _rule(
            "EXM001",
            "warning",
            "general claims from top-k or hand-picked examples",
            "report a quantitative measure over a held-out or randomly sampled set, and show "
            "random examples next to the top ones",
            f"{_M} §Common Pitfalls 2 (Cherry-Picking)",
            "randomly sampled examples, dataset-level metrics",
            exm001,
        ),
    ]
}
