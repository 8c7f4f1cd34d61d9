"""Test data that leaks into what it tests: preprocessing fitted before the split, and
choices made on the test scores they are reported with.

Both are read as data flow (:mod:`.flow`): a scaler, PCA or feature selector fitted on data
that then reaches a train/test split or a cross-validation call (PRB005); a score on test data,
computed for several candidates, that reaches an ``argmax``/``max`` choosing among them (STA005).
"""

from __future__ import annotations

import re

from ..facts import Call
from ..notebook import Cell
from .context import Context
from .flow import reaching

#: Preprocessing whose fit learns from the data it sees: scaling, projections, feature
#: selection, imputation.
TRANSFORMERS = {
    "StandardScaler",
    "MinMaxScaler",
    "RobustScaler",
    "MaxAbsScaler",
    "QuantileTransformer",
    "PowerTransformer",
    "PCA",
    "IncrementalPCA",
    "KernelPCA",
    "TruncatedSVD",
    "FastICA",
    "FactorAnalysis",
    "NMF",
    "SelectKBest",
    "SelectPercentile",
    "SelectFromModel",
    "VarianceThreshold",
    "RFE",
    "RFECV",
    "SimpleImputer",
    "KBinsDiscretizer",
}
#: Calls that split data or cross-validate: fitting before them lets held-out data shape
#: the features (a Pipeline passed to them is fitted inside each fold, which is the fix).
SPLITS = {
    "train_test_split",
    "cross_val_score",
    "cross_validate",
    "cross_val_predict",
    "permutation_test_score",
    "learning_curve",
    "validation_curve",
}
#: Data that is a training part (a fit on it is the accepted practice).
TRAIN_PART = re.compile(r"train|(?<![a-z])tr(?![a-z])", re.I)
#: Data that is the test part (validation data is where choices belong).
TEST_PART = re.compile(r"test|(?<![a-z])te(?![a-z])|held_?out|holdout", re.I)
SCORES = {
    "score",
    "accuracy_score",
    "balanced_accuracy_score",
    "f1_score",
    "roc_auc_score",
    "r2_score",
    "matthews_corrcoef",
}
CHOICES = {"argmax", "nanargmax", "idxmax"}  # an index chosen: always a choice
BEST = {"max", "nanmax"}  # the best value: a choice when it is kept (``best = max(accs)``)


def _transformer_names(ctx: Context) -> set[str]:
    """Return the names bound to a preprocessing constructor (``scaler = StandardScaler()``)."""
    return {n for _, c in ctx.calls() if c.short in TRANSFORMERS for n in c.assigned}


def _is_preprocessing_fit(call: Call, names: set[str]) -> bool:
    """Whether ``call`` fits a transformer on data that is not a training part."""
    if call.short not in ("fit", "fit_transform") or not call.args:
        return False
    transformer = call.receiver in names or any(t in call.receiver for t in TRANSFORMERS)
    return transformer and TRAIN_PART.search(call.args[0]) is None


def preprocessing_before_split(ctx: Context) -> list[tuple[Cell, Call]]:
    """Return the preprocessing fits whose output reaches a split or a cross-validation."""
    names = _transformer_names(ctx)
    fits = [(cell, c) for cell, c in ctx.calls() if _is_preprocessing_fit(c, names)]
    if not fits:
        return []
    leaked = reaching(ctx, fits, lambda c: c.short in SPLITS, receiver=True)
    return [(cell, c) for cell, c in fits if id(c) in leaked]


#: Cross-validated scores: the best of several is as optimistic as the best test score
#: (Varma & Simon 2006), unless the choice is cross-validated too (nested).
CV_SCORES = {"cross_val_score", "cross_validate"}


def chosen_on_test(ctx: Context) -> list[tuple[Cell, Call]]:
    """Return the test-data scores, computed for several candidates, that a choice reads."""
    scores = [
        (cell, c)
        for cell, c in ctx.calls()
        if c.in_loop
        and (
            c.short in CV_SCORES  # every fold is test data once: the best mean is biased too
            or (
                c.short in SCORES
                and any(TEST_PART.search(a) for a in (*c.args, *c.kwargs.values()))
            )
        )
    ]
    if not scores:
        return []
    chosen = reaching(ctx, scores, _is_choice)
    return [(cell, c) for cell, c in scores if id(c) in chosen]


def _is_choice(call: Call) -> bool:
    """Whether ``call`` picks the best candidate (``np.argmax(accs)``, ``best = max(accs)``)."""
    return call.short in CHOICES or (call.short in BEST and bool(call.assigned))
