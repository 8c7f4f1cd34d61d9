"""The two public probes: :func:`probe` on a feature matrix, :func:`probe_layers` on a cache.

Each checks every input first (errors before long work), then runs named steps: the
cross-validated fits with the permutation test, the controls, the report, one ledger record.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from ..core import events
from ..core.records import ProbeRecord, control_name
from ..stats import balanced_accuracy, correct
from .controls import (
    CONTROLS,
    accuracy_ci,
    balanced_ci,
    balanced_hits,
    chance_test,
    check_controls,
    control_notes,
    control_task_codes,
    control_types,
    difference_ci,
    mutual_information,
    random_init_features,
    run_controls,
)
from .fits import CrossValidation, cross_validate, make_estimator
from .inputs import (
    LayerExamples,
    ProbeError,
    ProbeInputs,
    check_correction,
    check_not_constant,
    check_settings,
    features,
    folds,
    labels,
    layer_keys,
    other_features,
    token_labels,
)
from .permute import (
    PermutationScheme,
    check_scheme,
    draw_permutations,
    null_balanced_accuracy,
    permutation_scheme,
    permutation_test,
)
from .result import LayerProbeReport, ProbeReport
from .stored import is_store, store_layer_reports
from .streaming import as_rows

if TYPE_CHECKING:
    from ..core.cache import ActivationCache


def probe(
    X: Any,
    y: Any,
    *,
    controls: Sequence[str] = CONTROLS,
    n_permutations: int = 1000,
    cv: Any = 5,
    seed: int = 0,
    groups: Any = None,
    estimator: Any = "ridge",
    alpha: float = 1.0,
    control_task: Any = None,
    control_labels: Any = None,
    control_features: Mapping[str, Any] | None = None,
    mutual_info: bool = False,
    name: str = "",
    progress: bool = True,
    _emit: bool = True,
) -> ProbeReport:
    """Return a cross-validated probe of labels ``y`` from activations ``X``, with its controls.

    Args:
        X: activations ``[examples, features]`` (tensor or array).
        y: one class label per example (integers, strings or booleans).
        controls: which of ``"shuffled"`` (permutation test), ``"random_features"`` and
            ``"majority"`` (chance levels and binomial test) to run; all by default.
        n_permutations: label permutations for the permutation test (exact p-value). Labels
            are permuted within each test fold, so every permuted fit sees the same folds' label
            counts as the real one; with ``groups`` whose label is constant (a label per word
            type), whole groups exchange labels; labels that vary within groups are permuted
            within them. Ties in accuracy are broken by the held-out margin of the true class. A
            design that allows fewer than 20 distinct labellings is refused.
        cv: the number of stratified folds, a scikit-learn splitter (``split(X, y, groups)``) or
            explicit folds, a list of ``(train, test)`` index pairs; every example must be in
            exactly one test fold. ``groups``: keep each group (sentence, word type) in one
            fold; intervals then resample groups, and the binomial test (which assumes
            independent examples) is not run.
        estimator: ``"ridge"`` (ridge classifier, ``alpha``), ``"logistic"`` (L2 logistic
            regression, C = 1/alpha), ``"mlp"`` (one hidden layer of 64) or any scikit-learn-style
            estimator with ``fit``/``predict``.
        control_task: word types per example: each type gets a random label (seeded, from the label
            distribution) and the same probe is fitted to that control task, on folds where
            types recur (it is a memorisation task; when ``groups`` keep types apart it is not
            run, and the report says why); or ``control_labels``: the control task's labels
            directly. Gives selectivity with a 95% CI (and balanced selectivity when classes
            are imbalanced).
        control_features: other representations of the same examples to probe the same way, by
            name, e.g. ``{"random-init model": X_random}``. Controls far below chance, and a
            saturated control task, are flagged in the notes.

    Raises:
        ProbeError: for unusable input, before any fit: e.g. missing (None/NaN) labels, an
            ActivationCache where an array is expected, features identical in every example
            (such as the ``<bos>`` position), or a design with no valid permutation test.
        mutual_info: also estimate the mutual information between the probe's out-of-fold 1-D
            projection and the label (nats), with a shuffled-label reference.
        seed: fixes folds, permutations, random features and bootstraps.
    """
    check_controls(controls)
    check_settings(n_permutations, alpha)
    rows = as_rows(X)  # activations kept elsewhere (a store's dask array): read in chunks
    x: Any = rows if rows is not None else features(X)
    codes, classes = labels(y, len(x))
    splits = folds(codes, cv, seed, groups)
    n_perms = n_permutations if "shuffled" in controls else 0
    scheme = permutation_scheme(codes, groups, splits)
    notes = check_scheme(scheme, n_perms) if n_perms else []
    checked = ProbeInputs(
        x=x,
        codes=codes,
        classes=classes,
        splits=splits,
        estimator=make_estimator(estimator, seed, alpha),
        task=control_task_codes(control_task, control_labels, codes, seed),
        others=other_features(control_features, len(x)),
        cv=cv,
        seed=seed,
        groups=groups,
        types=None
        if control_task is None or control_labels is not None
        else control_types(control_task, len(x)),
    )
    if rows is None:
        check_not_constant(x)
    elif checked.estimator.kind not in ("ridge", "logistic"):
        raise ProbeError(
            f"activations kept in a store stream through the ridge and logistic probes; for "
            f"{checked.estimator.kind!r} load the layer first (X.compute())"
        )
    # Every check has passed: now the fits.
    perms = draw_permutations(scheme, n_perms, seed)
    fit = cross_validate(checked.estimator, x, codes, checked.k, checked.splits, perms, progress)
    report = _report(checked, fit, perms, scheme, controls, mutual_info, name, notes)
    if _emit:
        events.emit(
            ProbeRecord(
                estimator=report.estimator,
                # the controls that ran, not those asked for: n_permutations=0 runs no
                # permutation test, so "shuffled" would be a control the ledger only claims
                controls=_ran(report, "majority" in controls),
                n_permutations=len(perms),
                p_values=1,
                corrected=False,
                seed=seed,
                accuracy=report.accuracy,
            )
        )
    return report


def _ran(report: ProbeReport, majority: bool) -> list[str]:
    """Return the vocabulary names of the controls ``report`` ran (what the ledger records)."""
    ran = {control_name(c) for c in report.controls}
    if report.permutation is not None:  # at least one label permutation was fitted
        ran.add(control_name("shuffled"))
    if majority:  # the chance levels are computed whenever asked for
        ran.add(control_name("majority"))
    return sorted(ran)


def _report(
    p: ProbeInputs,
    fit: CrossValidation,
    perms: np.ndarray,
    scheme: PermutationScheme,
    which: Sequence[str],
    with_mutual_info: bool,
    name: str,
    notes: list[str],
) -> ProbeReport:
    """Return the report of a probe's cross-validated fit, with its controls run."""
    hits = (fit.predictions == p.codes).astype(float)
    accuracy = float(hits.mean())
    found, task, task_notes = run_controls(p, which)
    grouped = p.groups is not None
    chance, binomial_p = chance_test(p.codes, p.k, hits, "majority" in which, grouped)
    kind = p.estimator.kind
    balanced = float(balanced_accuracy(p.codes, fit.predictions))
    null_balanced = (
        null_balanced_accuracy(perms, fit.null_class_correct, p.k)
        if len(perms) and fit.null_class_correct is not None
        else None
    )
    selectivity = selectivity_ci = b_sel = b_sel_ci = None
    if (
        task is not None
        and p.task is not None
        and task.hits is not None
        and task.balanced_hits is not None
    ):
        selectivity = accuracy - task.accuracy
        selectivity_ci = difference_ci(hits, task.hits, p.seed, p.groups)
        if len(set(np.bincount(p.codes))) > 1 or len(set(np.bincount(p.task))) > 1:
            b_sel = balanced - float(task.balanced_hits.mean())
            mine = balanced_hits(p.codes, fit.predictions)
            b_sel_ci = difference_ci(mine, task.balanced_hits, p.seed, p.groups)
    refits = [f"{kind}: every permutation refits the estimator (scikit-learn path)"]
    return ProbeReport(
        accuracy=accuracy,
        accuracy_ci=accuracy_ci(hits, p.seed, p.groups),
        balanced_accuracy=balanced,
        balanced_ci=balanced_ci(p.codes, fit.predictions, p.seed, p.groups),
        n_examples=len(p.codes),
        classes=p.classes,
        class_counts=np.bincount(p.codes, minlength=p.k).tolist(),
        chance=chance,
        binomial_p=binomial_p,
        permutation=permutation_test(
            accuracy,
            fit.null_correct,
            len(p.codes),
            null_balanced,
            scheme,
            fit.margin,
            fit.null_margin,
        ),
        controls=found,
        selectivity=selectivity,
        mutual_info=mutual_information(fit.scores, p.codes, p.seed)
        if with_mutual_info and fit.scores is not None
        else None,
        estimator=kind,
        cv=len(p.splits),
        seed=p.seed,
        grouped=grouped,
        predictions=fit.predictions,
        labels=p.codes,
        name=name,
        notes=(refits if p.estimator.refits else []) + notes + task_notes + control_notes(found),
        selectivity_ci=selectivity_ci,
        balanced_selectivity=b_sel,
        balanced_selectivity_ci=b_sel_ci,
        interval=_interval_note(grouped),
    )


def _interval_note(grouped: bool) -> str:
    """Return what the report's 95% intervals cover and how they are computed."""
    unit = "groups" if grouped else "examples"
    how = (
        "Wilson at the groups' effective sample size; others resample whole groups"
        if grouped
        else "Wilson score interval; balanced accuracy and selectivity by bootstrap"
    )
    return (
        f"95% intervals are over held-out {unit} ({how}): they cover the accuracy of the fitted "
        f"fold models on new {unit} from the same distribution, not the expected accuracy of the "
        "procedure on other training sets"
    )


def probe_layers(
    cache: ActivationCache,
    y: Any,
    *,
    layers: str | Sequence[str] | None = None,
    position: int | str = "last",
    correction: str = "fdr_bh",
    alpha: float = 0.05,
    model: Any = None,
    inputs: Any = None,
    progress: bool = True,
    **kwargs: Any,
) -> LayerProbeReport:
    """Return probes of every layer of ``cache`` with p-values corrected across layers.

    Args:
        cache: captured activations, or an activation store (``open_store``: each layer is
            streamed, and probed in parallel on a ``dask.distributed`` cluster when a client is
            active); each selected key is one layer.
        y: a label per sequence (``[batch]``; each sequence gives one vector at ``position``:
            ``"last"`` real token, ``"first"``, ``"mean"`` over real tokens, or an index), or a
            label per token (``[batch, pos]``, with ``-1`` or ``None`` for tokens to skip);
            token-level probes keep each sentence in one fold unless ``groups`` says otherwise.
        layers: keys or a key pattern (default: ``resid_post.*`` if captured, else every output).
        correction: any ``statsmodels.stats.multitest.multipletests`` method (default ``fdr_bh``).
        model, inputs: when both are given, a randomly re-initialised copy of the model is run on
            the same inputs and probed the same way, layer by layer, as a control.
        kwargs: passed to :func:`probe` (controls, n_permutations, cv, seed, estimator,
            control_features, ...); ``control_features`` (per-example arrays) go with every layer.
    """
    check_correction(correction)
    if is_store(cache):
        if model is not None or inputs is not None:
            raise ProbeError("the random-init control needs a capture in memory, not a store")
        reports, keys = store_layer_reports(probe, cache, y, layers, position, progress, kwargs)
    else:
        reports, keys = _cache_reports(cache, y, layers, position, model, inputs, progress, kwargs)
    p_raw = np.array([r.p_value for r in reports])
    p_corr, reject = correct(p_raw, correction, alpha)
    first = reports[0]
    events.emit(
        ProbeRecord(
            estimator=first.estimator,
            controls=_ran(first, "majority" in kwargs.get("controls", CONTROLS)),
            n_permutations=first.permutation["n"] if first.permutation else 0,
            p_values=len(reports),
            corrected=True,
            correction=correction,
            seed=first.seed,
            layers=len(keys),
        )
    )
    return LayerProbeReport(reports, keys, correction, alpha, p_raw, p_corr, reject)


def _cache_reports(
    cache: ActivationCache,
    y: Any,
    layers: str | Sequence[str] | None,
    position: int | str,
    model: Any,
    inputs: Any,
    progress: bool,
    kwargs: dict[str, Any],
) -> tuple[list[ProbeReport], list[str]]:
    """Return one probe report per selected layer of a capture in memory, and their keys."""
    from tqdm.auto import tqdm

    keys = layer_keys(cache, layers)
    mask = cache.attention_mask
    y_flat, sentences, tokens = token_labels(y, cache[keys[0]], mask)
    if tokens is not None and kwargs.get("groups") is None:
        kwargs["groups"] = sentences  # each sentence in one fold
    examples = LayerExamples(position, mask, tokens)
    if (model is None) != (inputs is None):
        raise ProbeError("the random-init control needs both model= and inputs=")
    if tokens is None:
        _warn_if_one_token(position, cache.input_ids, mask)
    random_feats = None
    if model is not None and inputs is not None:
        random_feats = random_init_features(model, inputs, keys, seed=int(kwargs.get("seed", 0)))
    # The caller's control features are the same examples' other representations: every layer
    # is compared with them.
    given = dict(kwargs.pop("control_features", None) or {})
    reports = []
    for key in tqdm(keys, desc="probing layers", disable=not progress, leave=False):
        extra = dict(given)
        if random_feats is not None:
            extra["random-init model"] = examples.features(random_feats[key])
        feats = examples.features(cache[key])
        reports.append(
            probe(
                feats,
                y_flat,
                control_features=extra,
                name=key,
                progress=False,
                _emit=False,
                **kwargs,
            )
        )
    return reports, keys


def _warn_if_one_token(position: int | str, ids: Any, mask: Any) -> None:
    """Warn when ``position`` picks the same token in every sequence (``[SEP]`` for "last" in
    BERT-family batches, ``<bos>`` for "first"): the probe then reads what attention wrote into
    that token, not the words, which a reader should know."""
    if position == "mean" or not isinstance(ids, torch.Tensor) or ids.ndim != 2 or len(ids) < 2:
        return
    length = ids.shape[1]
    if position == "last":
        m = torch.ones_like(ids) if mask is None else mask.to(ids.device)
        index = (m * torch.arange(length, device=ids.device)).argmax(1)
    elif position == "first":
        index = torch.zeros(len(ids), dtype=torch.long)
    elif isinstance(position, int) and -length <= position < length:
        index = torch.full((len(ids),), position % length, dtype=torch.long)
    else:
        return
    picked = ids[torch.arange(len(ids)), index.to(ids.device)]
    if bool((picked == picked[0]).all()):
        warnings.warn(
            f"position={position!r} reads the same token (id {int(picked[0])}) in every sequence, "
            "such as a separator ([SEP], </s>) or a start token: the probe reads what attention "
            "wrote into that token, not the words themselves; use position='mean', the index of "
            "the word you mean, or per-token labels for that",
            stacklevel=3,
        )
