"""Which probe controls a notebook actually runs: controls whose result feeds a probe.

A shuffled-label or random-feature control is evidence only when a probe is fitted or scored
on it. ``np.random.permutation(y)`` left unused, ``rng.permutation(len(X))`` that orders a
train/test split, or ``torch.randn`` noise added to embeddings for causal tracing are no
controls. An interp-magics probe runs its controls unless they are turned off, and a
permutation test with no permutations (``n_permutations=0``) runs none.
"""

from __future__ import annotations

import re

from ..facts import Call
from ..notebook import Cell
from .context import Context
from .flow import package_probe, reaching, words

#: Calls that are a control by themselves: a permutation test, a chance baseline, a
#: randomly initialised model.
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
SHUFFLE_CALLS = {"permutation", "shuffle", "randperm"}  # a control when applied to labels
NOISE_CALLS = {"randn_like", "rand_like", "standard_normal", "randn", "normal"}  # ... to features
#: A name that holds labels (``y``, ``labels``, ``y_train``, ``targets``).
LABEL_NAME = re.compile(r"(y|labels?|targets?|y_\w{1,40}|classes)")
#: An argument that is labels themselves (``y``, ``y.copy()``, ``labels.values``), not their
#: indices (``len(y)``, ``y.shape[0]``, ``np.arange(len(y))``).
LABEL_ARG = re.compile(r"(y|labels?|targets?|y_\w{1,40}|classes)(\.copy\(\)|\.values|\.clone\(\))?")
#: Calls that fit or score a probe (or any estimator): where a control's data must arrive.
PROBE_USE = {
    "mean",  # a difference of class means is a probe fitted by averaging
    "fit",
    "fit_transform",
    "score",
    "predict",
    "cross_val_score",
    "cross_validate",
    "cross_val_predict",
    "permutation_test_score",
    "probe",
    "probe_layers",
}
#: Names of results that only a control gives (selectivity is probe minus control task).
RESULT_NAMES = {"selectivity", "mdl", "online_code", "description_length"}
#: Names of a control's data: they count when a probe is fitted or scored on them.
DATA_NAMES = {"control_task", "control_labels", "shuffled_labels", "random_features"}


def runs_a_control(ctx: Context) -> bool:
    """Return whether the code runs a probe control (the ledger is read by the rule)."""
    if RESULT_NAMES & ctx.names():
        return True
    if any(
        c.short in CONTROL_CALLS or (package_probe(ctx, c) and not controls_disabled(c))
        for _, c in ctx.calls()
    ):
        return True
    return bool(ctx.shared(_fed_controls))


def controls_disabled(call: Call) -> bool:
    """Whether an interp-magics probe call runs no baseline control.

    Its controls are ``controls=`` (shuffled labels, random features by default) less the
    shuffled labels when no permutation runs; a control task, other features or a random-init
    model (``control_task=``, ``control_labels=``, ``control_features=``, ``model=``) are
    controls too.
    """
    if call.name.startswith("%"):
        joined = " ".join(call.args)
        if "--control-task" in joined or "--model" in joined:
            return False
        m = re.search(r"--controls[\s=]{1,5}(\S{1,200})", joined)
        wanted = m.group(1) if m else "shuffled,random_features"
        no_perms = re.search(r"--permutations[\s=]{1,5}0\b", joined) is not None
    else:
        if {"control_task", "control_labels", "control_features", "model"} & set(call.kwargs):
            return False
        wanted = call.kwargs.get("controls", "shuffled,random_features")
        no_perms = re.fullmatch(r"\s*0\s*", call.kwargs.get("n_permutations", "1")) is not None
    if "random_features" in wanted:
        return False
    return no_perms or "shuffled" not in wanted


def is_label_shuffle(call: Call) -> bool:
    """Whether ``call`` shuffles labels themselves: ``rng.permutation(y)``, or an index
    permutation that only reorders labels (``y_null = y[torch.randperm(len(y))]``), not
    ``perm = rng.permutation(len(y))``, which may order a split."""
    if call.short not in SHUFFLE_CALLS or not call.args:
        return False
    if LABEL_ARG.fullmatch(call.args[0].strip()):
        return True
    return bool(call.assigned) and all(LABEL_NAME.fullmatch(n) for n in call.assigned)


def is_random_features(call: Call) -> bool:
    """Whether ``call`` draws noise shaped like data (``randn_like(X)``, ``randn(*X.shape)``)."""
    text = " ".join([*call.args, *call.kwargs.values()])
    return call.short in NOISE_CALLS and (".shape" in text or call.short.endswith("_like"))


def _probe_use(ctx: Context) -> set[str]:
    """Return the names of calls that fit or score a probe: PROBE_USE and notebook functions
    whose body fits or scores one."""
    names = set(PROBE_USE)
    for cell in ctx.nb.code():
        if cell.facts is not None:
            names.update(
                name
                for name, f in cell.facts.functions.items()
                if any(c.short in PROBE_USE for c in f.calls)
            )
    return names


def _fed_controls(ctx: Context) -> list[tuple[Cell, Call]]:
    """Return the shuffles and random features whose result a probe is fitted or scored on."""
    use = ctx.shared(_probe_use)

    def is_use(c: Call) -> bool:
        return c.short in use

    named = [(cell, c) for cell, c in ctx.calls() if is_use(c) and DATA_NAMES & words(c)]
    if named:
        return named
    index_perms = _index_permutations_of_labels(ctx)
    sources = [
        (cell, c)
        for cell, c in ctx.calls()
        if is_label_shuffle(c) or is_random_features(c) or id(c) in index_perms
    ]
    fed = reaching(ctx, sources, is_use, in_place=False)
    fed |= reaching(ctx, [s for s in sources if s[1].short == "shuffle"], is_use, in_place=True)
    return [(cell, c) for cell, c in sources if id(c) in fed]


def _index_permutations_of_labels(ctx: Context) -> set[int]:
    """Return the ``id`` of index permutations that reorder labels alone (``y[perm]``).

    ``perm = rng.permutation(len(y)); y_null = y[perm]`` shuffles the labels; the same
    permutation indexing features too (``X[perm]``, ``idx[:150]``) orders a split.
    """
    perms = [
        (cell, c)
        for cell, c in ctx.calls()
        if c.short in SHUFFLE_CALLS and c.assigned and not is_label_shuffle(c)
    ]
    if not perms:
        return set()
    label_only: set[str] = set()  # names read together with labels alone (y[perm])
    with_data: set[str] = set()  # names read with features too, or alone (X[perm], idx[:150])
    for cell in ctx.nb.code():
        for a in cell.facts.assignments if cell.facts else ():
            others = {r for r in a.reads if not LABEL_NAME.fullmatch(r)}
            if len(others) == 1 and len(a.reads) > 1:
                label_only |= others
            else:
                with_data |= others
    shuffles = label_only - with_data
    return {id(c) for _, c in perms if shuffles.issuperset(c.assigned)}
