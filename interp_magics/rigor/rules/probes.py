"""Probe rules (PRB): controls, baselines and held-out scoring for probing classifiers."""

from __future__ import annotations

import re

from ...core.records import BASELINE_CONTROLS, ProbeRecord, control_name
from ..facts import Call
from ..notebook import Cell
from ..registry import METHODOLOGY, Hit, rule
from .context import Context
from .flow import package_probe
from .leakage import preprocessing_before_split
from .probe_evidence import (
    CONTROL_CALLS,
    controls_disabled,
    is_label_shuffle,
    is_random_features,
    runs_a_control,
)
from .vocabulary import CLASSIFIERS, PROBE_FUNCS

#: A notebook's or a library's own probe function: ``train_probe``, ``load_probe_results``.
PROBE_CALL = re.compile(r"(?:load|train|fit|run|get|eval\w{0,6})_probes?(?:_\w{1,30})?")
#: Representation reading fitted with labels (RepE): a direction read out as a classifier.
READING_CALLS = {"get_directions", "get_rep_reader", "train_rep_reader"}
#: Keyword arguments that make one probe call fit every layer listed (a comparison by layer).
LAYER_LISTS = {"hidden_layers", "layers", "layer_ids"}
#: A name that holds an accuracy or correct predictions (``acc``, ``test_accuracy``, ``cors``).
ACCURACY_NAME = re.compile(
    r"acc(?:uracy|uracies|s)?(?:_|$)|(?:^|_)acc|correct|(?:^|_)cors(?:_|$)", re.I
)
#: Two class means subtracted on one line: a mass-mean (difference-of-means) direction.
MEAN_DIFFERENCE = re.compile(r"mean\([^\n]{0,80}?\)\s{0,3}-\s{0,3}[^\n]{0,80}?mean\(")
#: The examples of one class picked by their labels (``acts[labels == 1]``, ``X[y]``).
LABEL_SPLIT = re.compile(r"==|\[~?\s{0,2}(?:y|labels?|targets?|y_\w{1,30})\s{0,2}[\],]")
#: Decompositions whose components are read as directions (RepE's reading vectors).
DECOMPOSITIONS = {"PCA", "TruncatedSVD", "FastICA", "fit", "fit_transform"}
#: torch modules a linear (or small MLP) probe is built from.
TORCH_HEADS = {"Linear", "Sequential", "LazyLinear"}
CV_CALLS = {"cross_val_score", "cross_validate", "cross_val_predict"}
LAYERISH = re.compile(r"layer|model|block|depth|checkpoint|ckpt|step|\bl\b|\bL\b", re.I)
# Names in code that show a control was computed (matched in the source text, not the ledger).
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
# ``name = module.Constructor(``: the dotted callee as one run (no nested repeat).
ASSIGNED_CALL = re.compile(r"\s*([A-Za-z_]\w*)\s*=\s*([\w.]+)\(")
IMBALANCE = re.compile(
    r"\b(imbalanced|unbalanced|class imbalance|skewed|rare class|majority class|"
    r"minority class|\d\d\s*/\s*\d\d split)\b",
    re.I,
)


@rule(
    "PRB001",
    severity="error",
    title="probe without a control",
    fix="add a control: shuffled labels (a permutation test), random features, a randomly "
    "initialised model, or a control task (probes.probe runs the first two by default)",
    cite="Hewitt & Liang 2019, Designing and Interpreting Probes with Control Tasks; "
    f"{METHODOLOGY} §Controls and Baselines",
    alternatives="permutation tests, DummyClassifier, random features or a random-init model, "
    "control tasks and selectivity, MDL / information-theoretic probing (Voita & Titov 2020; "
    "Pimentel et al. 2020)",
)
def probe_without_control(ctx: Context) -> list[Hit]:
    """Flag a probe with no control, in the ledger (each run) or else anywhere in the code.

    A probe's accuracy alone does not show that the representation encodes the property: a
    flexible probe can learn the task from any features. Only a control says how much of the
    accuracy the representation adds.
    """
    hits = [
        Hit(
            cell,
            1,
            "this probe ran without a control (the ledger shows no shuffled labels, random "
            "features, random-init model or control task)",
            "ledger",
        )
        for record, cell in ctx.records(ProbeRecord)
        if cell and not _has_baseline_control(record)
    ]
    sites = ctx.shared(_probe_sites)
    if not hits and sites and not _any_control(ctx):
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


@rule(
    "PRB002",
    severity="warning",
    title="accuracy with imbalanced classes and no baseline",
    fix="report the majority-class rate and balanced accuracy next to accuracy (probes.probe "
    "reports both)",
    cite=f"Belinkov 2022, Probing Classifiers: Promises, Shortcomings, and Advances; "
    f"{METHODOLOGY} §Controls and Baselines",
    alternatives="balanced accuracy, F1, AUC, MCC, a DummyClassifier, or class-weighted training",
)
def accuracy_without_baseline(ctx: Context) -> list[Hit]:
    """Flag accuracy reported on classes the notebook calls imbalanced, with no baseline.

    With 90% of one class, 90% accuracy is what always guessing it gives: accuracy means
    something only next to the majority rate or a balanced metric.
    """
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


@rule(
    "PRB003",
    severity="warning",
    title="probe accuracy compared across layers or models without a control",
    fix="compare selectivity (probe minus control task) or probe-minus-control accuracy per "
    "layer, e.g. probes.probe_layers with a control task",
    cite="Hewitt & Liang 2019; Belinkov 2022",
    alternatives="a control or control task computed for every layer or model being compared; "
    "probes.probe_layers",
)
def layer_comparison_without_control(ctx: Context) -> list[Hit]:
    """Flag probes fitted in a loop over layers or models with no control inside the loop.

    Raw probe accuracy rises and falls with things other than what a layer encodes (its
    dimension, its norm); a comparison across layers needs the control for each one.
    """
    controlled: dict[int, dict[int | None, bool]] = {}  # cell -> loop -> has a control
    for cell, call in ctx.shared(_probe_sites):
        if LAYER_LISTS & set(call.kwargs) and not package_probe(ctx, call):
            if not _any_control(ctx):  # one call fits every layer listed: no loop to read
                return [
                    Hit(
                        cell,
                        call.line,
                        f"{call.name} fits a probe for each layer listed and their accuracies "
                        "are compared without a control for each one",
                    )
                ]
            continue
        if not call.in_loop or call.short == "probe_layers" or cell.facts is None:
            continue
        header = cell.facts.loops.get(call.loop, "") if call.loop else ""
        if not LAYERISH.search(header):
            continue  # a loop over seeds or folds repeats a measurement; it compares nothing
        looped_probe_has_controls = package_probe(ctx, call) and not controls_disabled(call)
        if cell.index not in controlled:  # once a cell, not once a probe in it
            controlled[cell.index] = _loops_with_control(cell.facts.calls)
        if not looped_probe_has_controls and not controlled[cell.index].get(call.loop):
            return [
                Hit(
                    cell,
                    call.line,
                    "probe accuracies are compared across a loop (layers or models) without a "
                    "control or selectivity for each one",
                )
            ]
    return []


@rule(
    "PRB004",
    severity="error",
    title="probe scored on its training data",
    fix="score on held-out data: cross-validation or a train/test split (probes.probe "
    "cross-validates)",
    cite=f"Belinkov 2022; {METHODOLOGY} §Statistical Rigor",
    alternatives="cross_val_score, train_test_split, out-of-fold predictions",
)
def scored_on_training_data(ctx: Context) -> list[Hit]:
    """Flag a classifier scored (or predicting) on the same data it was fitted on.

    Training accuracy measures memorisation as much as decodability; only held-out data says
    whether the probe found something that generalises.
    """
    fitted: dict[str, str] = {}
    for cell, call in ctx.calls():
        if call.short == "fit" and call.receiver and call.args:
            # any estimator, under any name: ``clf = LogisticRegression().fit(X, y)`` binds clf
            for name in (call.receiver, *call.assigned):
                fitted[name] = call.args[0]
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


@rule(
    "PRB005",
    severity="error",
    title="preprocessing fitted before the train/test split",
    fix="fit scalers, PCA and feature selection on the training part only: put them in a "
    "Pipeline (make_pipeline(StandardScaler(), LogisticRegression())) and split or "
    "cross-validate that",
    cite="Hastie, Tibshirani & Friedman 2009, The Elements of Statistical Learning, §7.10.2; "
    "Kaufman et al. 2012, Leakage in Data Mining",
    alternatives="a Pipeline cross-validated as a whole, a transformer fitted on the training "
    "split and applied to the test split, preprocessing that learns nothing from the data "
    "(a fixed scale), or one fitted on separate data never scored",
)
def preprocessing_fitted_before_split(ctx: Context) -> list[Hit]:
    """Flag a scaler, PCA or feature selector fitted on data later split or cross-validated.

    Fitted on every example, the preprocessing has seen the test examples (their mean and
    spread, their principal directions, which features correlate with the label), so the
    held-out score no longer measures held-out data.
    """
    return [
        Hit(
            cell,
            call.line,
            f"{call.receiver}.{call.short} learns from all of {call.args[0]} before the data "
            "is split or cross-validated, so the held-out score has seen the test examples",
        )
        for cell, call in preprocessing_before_split(ctx)[:1]
    ]


def _loops_with_control(calls: list[Call]) -> dict[int | None, bool]:
    """Return, for each loop of a cell's ``calls``, whether it computes a probe control (a
    call, or a control's name in a call)."""
    by_loop: dict[int | None, list[Call]] = {}
    for c in calls:
        by_loop.setdefault(c.loop, []).append(c)
    out = {}
    for loop, loop_calls in by_loop.items():
        words = {
            w
            for c in loop_calls
            for text in (c.name, c.receiver, *c.args, *c.kwargs, *c.kwargs.values())
            for w in re.findall(r"\w+", text)
        }
        out[loop] = any(_is_control(c) for c in loop_calls) or bool(CONTROL_NAMES & words)
    return out


# -- what counts as a probe, and as its control ----------------------------------------------------


def _probe_sites(ctx: Context) -> list[tuple[Cell, Call]]:
    """Return the probe fits: classifiers fitted in the notebook, and interp-magics probes."""
    classifiers = _assigned_classifiers(ctx)
    return [
        (cell, call)
        for cell, call in ctx.calls()
        if call.short in PROBE_FUNCS
        or call.name in PROBE_FUNCS
        or ("probe" in call.short and PROBE_CALL.fullmatch(call.short))
        or (
            call.short in READING_CALLS
            and "train_labels" in call.kwargs
            and ctx.shared(_scores_accuracy)
        )
        or id(call) in ctx.shared(_direction_probes)
        or (call.short in CV_CALLS and call.args and any(k in call.args[0] for k in CLASSIFIERS))
        or (
            call.short == "fit"
            and (call.receiver in classifiers or any(k in call.receiver for k in CLASSIFIERS))
        )
    ]


def _direction_probes(ctx: Context) -> set[int]:
    """Return the ``id`` of calls that fit a probe without a classifier class: a difference of
    class means (mass-mean), principal components read as a classifier, or a torch linear
    head bound to a probe's name; each only when the notebook scores predictions."""
    if not ctx.shared(_scores_accuracy):
        return set()
    found = set()
    for cell in ctx.nb.code():
        if cell.facts is None:
            continue
        lines = {
            i
            for i, line in enumerate(cell.lines, 1)
            if "mean(" in line and MEAN_DIFFERENCE.search(line) and LABEL_SPLIT.search(line)
        }
        # principal components read as a classifier: the decomposition fitted in that cell
        reads_components = any("components_" in line for line in cell.lines)
        for call in cell.facts.calls:
            if (
                call.line in lines
                or (reads_components and call.short in DECOMPOSITIONS)
                or (call.short in TORCH_HEADS and any("probe" in n.lower() for n in call.assigned))
            ):
                found.add(id(call))
                lines.discard(call.line)  # one probe a line
                reads_components = False
    return found


def _scores_accuracy(ctx: Context) -> bool:
    """Whether the code scores predictions: an accuracy by name, or a mean of matches."""
    if any(ACCURACY_NAME.search(name) for name in ctx.names()):
        return True
    return any("mean(" in line and "==" in line for c in ctx.nb.code() for line in c.lines)


def _assigned_classifiers(ctx: Context) -> set[str]:
    """Return the names bound to classifier constructors (``clf = LogisticRegression()``)."""
    names = set()
    for cell in ctx.nb.code():
        for line in cell.lines:
            m = ASSIGNED_CALL.match(line)
            if m and m.group(2).rsplit(".", 1)[-1] in CLASSIFIERS:
                names.add(m.group(1))
    return names


def _has_baseline_control(record: ProbeRecord) -> bool:
    """Whether a probe ran a control that tells its accuracy from any representation's."""
    return bool({control_name(c) for c in record.controls} & BASELINE_CONTROLS)


def _any_control(ctx: Context) -> bool:
    """Whether a probe control runs: in the code (its result feeding a probe) or the ledger."""
    if runs_a_control(ctx):
        return True
    return any(_has_baseline_control(record) for record, _ in ctx.records(ProbeRecord))


def _is_control(call: Call) -> bool:
    """Whether a call is a probe control: a permutation test, shuffled labels, random features..."""
    return call.short in CONTROL_CALLS or is_label_shuffle(call) or is_random_features(call)
