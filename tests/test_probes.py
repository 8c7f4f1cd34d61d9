"""Probes with controls: calibration, power, imbalance, fast paths vs refits, bad input."""

import numpy as np
import pytest
import torch
from scipy.stats import binomtest

from interp_magics import probes
from interp_magics.probes import ProbeError
from interp_magics.probes.controls import permutations
from interp_magics.probes.fits import Refit, Ridge, cross_validate
from interp_magics.probes.inputs import folds as make_folds


def encoded(n=200, d=10, seed=0, noise=0.5):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d))
    w = rng.standard_normal(d)
    return x, (x @ w + noise * rng.standard_normal(n) > 0).astype(int)


def test_permutation_p_values_are_calibrated_under_the_null():
    """Labels independent of the features: p < 0.05 in about 5% of 200 seeded repetitions."""
    pvals = []
    for seed in range(200):
        rng = np.random.default_rng(1000 + seed)
        x = rng.standard_normal((60, 5))
        y = rng.integers(0, 2, 60)
        if np.bincount(y, minlength=2).min() < 3:
            y[:3], y[3:6] = 0, 1
        r = probes.probe(
            x,
            y,
            controls=("shuffled",),
            n_permutations=99,
            cv=3,
            seed=seed,
            progress=False,
            _emit=False,
        )
        pvals.append(r.permutation["p_value"])
    rejections = int(np.sum(np.array(pvals) < 0.05))
    assert binomtest(rejections, 200, 0.05).pvalue > 0.01, rejections
    # and the p-values spread over (0, 1] rather than piling up
    assert 0.35 < float(np.mean(pvals)) < 0.65


def test_power_when_the_label_is_linearly_encoded():
    x, y = encoded(n=300, noise=0.3)
    r = probes.probe(x, y, n_permutations=200, progress=False)
    assert r.accuracy > 0.85
    assert r.permutation["p_value"] == pytest.approx(1 / 201)  # no permutation reached it
    assert r.binomial_p < 1e-10
    # the controls sit at chance
    assert abs(r.permutation["null_mean"] - 0.5) < 0.05
    rf = r.controls["random features"]
    assert rf.ci[0] < r.chance.majority + 0.02 and rf.accuracy < 0.62
    assert r.accuracy_ci[0] < r.accuracy < r.accuracy_ci[1]
    assert r.accuracy_ci[0] > rf.ci[1]


def test_imbalanced_classes_use_the_majority_rate():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((400, 8))
    y = np.array([1] * 40 + [0] * 360)
    rng.shuffle(y)
    r = probes.probe(x, y, n_permutations=200, alpha=100.0, progress=False)
    assert r.chance.majority == pytest.approx(0.9)
    assert r.chance.frequency == pytest.approx(0.9**2 + 0.1**2)
    # the probe does little better than always answering the majority class...
    assert r.accuracy == pytest.approx(0.9, abs=0.02)
    # ...and is not reported as significant against it
    assert r.binomial_p > 0.05 and r.permutation["p_value"] > 0.05
    assert r.balanced_accuracy < 0.6
    from interp_magics.stats import binomial_p_value

    assert binomial_p_value(360, 400, 0.9) > 0.4  # a majority-class guesser is not significant


@pytest.mark.parametrize("k", [2, 3])
@pytest.mark.parametrize("d", [6, 80])  # primal and dual ridge systems
def test_fast_ridge_permutations_equal_refits(k, d):
    from sklearn.linear_model import RidgeClassifier

    rng = np.random.default_rng(k * 10 + d)
    x = rng.standard_normal((70, d)).astype(np.float32)
    codes = rng.integers(0, k, 70)
    codes[: k * 5] = np.repeat(np.arange(k), 5)
    folds = make_folds(codes, 5, 0, None)
    perms = permutations(codes, 30, 0, None)
    fit = cross_validate(Ridge(1.0), x, codes, k, folds, perms)  # float64 at this size
    pred, null_correct = fit.predictions, fit.null_correct
    ref_pred = np.zeros_like(codes)
    for tr, te in folds:
        ref_pred[te] = RidgeClassifier(alpha=1.0).fit(x[tr], codes[tr]).predict(x[te])
    assert np.array_equal(pred, ref_pred)
    ref = [
        sum(
            int((RidgeClassifier(alpha=1.0).fit(x[tr], p[tr]).predict(x[te]) == p[te]).sum())
            for tr, te in folds
        )
        for p in perms
    ]
    assert np.array_equal(null_correct, np.array(ref))


def test_logistic_probe_agrees_with_scikit_learn():
    from sklearn.linear_model import LogisticRegression

    x, y = encoded(n=300, d=12, noise=1.0, seed=4)
    r = probes.probe(x, y, estimator="logistic", n_permutations=100, progress=False)
    folds = make_folds(r.labels, 5, 0, None)
    ref = np.zeros_like(r.labels)
    for tr, te in folds:
        ref[te] = LogisticRegression(C=1.0, max_iter=1000).fit(x[tr], r.labels[tr]).predict(x[te])
    assert np.mean(ref == r.predictions) > 0.97
    assert r.permutation["p_value"] < 0.02 and r.estimator == "logistic"


def test_mlp_and_custom_estimators_take_the_refit_path():
    from sklearn.linear_model import LogisticRegression

    x, y = encoded(n=120, d=6, noise=0.2)
    r = probes.probe(
        x, y, estimator="mlp", n_permutations=5, controls=("shuffled",), progress=False
    )
    assert r.estimator == "mlp" and r.permutation["n"] == 5 and r.accuracy > 0.8
    custom = probes.probe(x, y, estimator=LogisticRegression(), n_permutations=5, progress=False)
    assert custom.estimator == "LogisticRegression" and "refits" in custom.notes[0]


def test_refit_path_equals_refitting_every_permutation_by_hand():
    """The shared loop, for a scikit-learn estimator, is one refit per fold and permutation."""
    from sklearn.linear_model import LogisticRegression

    x, y = encoded(n=90, d=5, noise=1.0)
    x = x.astype(np.float32)
    folds = make_folds(y, 3, 0, None)
    perms = permutations(y, 7, 0, None)
    fit = cross_validate(Refit("LogisticRegression", LogisticRegression()), x, y, 2, folds, perms)
    pred, scores = np.zeros_like(y), np.zeros((len(y), 1))
    for tr, te in folds:
        model = LogisticRegression().fit(x[tr], y[tr])
        pred[te], scores[te, 0] = model.predict(x[te]), model.decision_function(x[te])
    assert np.array_equal(fit.predictions, pred) and np.array_equal(fit.scores, scores)
    ref = [
        sum(
            int((LogisticRegression().fit(x[tr], p[tr]).predict(x[te]) == p[te]).sum())
            for tr, te in folds
        )
        for p in perms
    ]
    assert np.array_equal(fit.null_correct, np.array(ref))


def test_ridge_does_not_depend_on_how_permutations_are_batched():
    # (The logistic path does: its iteration stops when no test prediction of the batch changes.)
    rng = np.random.default_rng(8)
    x = rng.standard_normal((80, 7)).astype(np.float32)
    codes = rng.integers(0, 3, 80)
    folds = make_folds(codes, 4, 0, None)
    perms = permutations(codes, 25, 0, None)
    together = cross_validate(Ridge(1.0), x, codes, 3, folds, perms)
    one_by_one = Ridge(1.0)
    one_by_one.batch_elements = 1  # a batch of one permutation per solve
    apart = cross_validate(one_by_one, x, codes, 3, folds, perms)
    assert np.array_equal(together.predictions, apart.predictions)
    assert np.array_equal(together.null_correct, apart.null_correct)
    assert together.scores.shape == (80, 3)


def test_groups_keep_groups_in_one_fold_and_permute_within_them():
    rng = np.random.default_rng(5)
    groups = np.repeat(np.arange(30), 4)
    x = rng.standard_normal((120, 4))
    y = np.tile([0, 1, 0, 1], 30)
    for tr, te in make_folds(y, 5, 0, groups):
        assert not set(groups[tr]) & set(groups[te])
    perms = permutations(y, 10, 0, groups)
    for p in perms:
        for g in range(30):
            assert sorted(p[groups == g]) == sorted(y[groups == g])
    r = probes.probe(x, y, groups=groups, n_permutations=50, progress=False)
    assert r.grouped and "by group" in r.describe()


def test_control_task_and_selectivity():
    rng = np.random.default_rng(6)
    types = rng.integers(0, 20, 400)  # word identities
    emb = rng.standard_normal((20, 16))
    x = emb[types] + 0.1 * rng.standard_normal((400, 16))  # the representation encodes identity
    y = (types % 2).astype(int)  # a property of the word type
    r = probes.probe(x, y, control_task=types, n_permutations=50, progress=False)
    c = r.controls["control task"]
    # memorising identities also solves the control task: low selectivity, as it should be
    assert r.accuracy > 0.95 and c.accuracy > 0.8
    assert r.selectivity == pytest.approx(r.accuracy - c.accuracy)
    explicit = probes.probe(
        x, y, control_labels=(types // 10) % 2, n_permutations=0, progress=False
    )
    assert explicit.selectivity is not None and explicit.permutation is None


def test_mutual_information_corroborates():
    x, y = encoded(n=300, noise=0.3)
    r = probes.probe(x, y, n_permutations=0, mutual_info=True, progress=False)
    assert r.mutual_info["mi"] > 0.3 > r.mutual_info["mi_shuffled"]


@pytest.mark.parametrize(
    ("x", "y", "kwargs", "match"),
    [
        (np.zeros((10, 3)), np.zeros(10), {}, "single class"),
        (np.zeros((10, 3)), np.arange(9) % 2, {}, "9 labels but there are 10 examples"),
        (np.full((10, 3), np.nan), np.arange(10) % 2, {}, "NaN or infinite"),
        (np.r_[np.zeros((9, 3)), [[np.inf, 0, 0]]], np.arange(10) % 2, {}, "NaN or infinite"),
        (np.zeros((10, 3)), np.array([0] * 8 + [1] * 2), {}, "only 2 examples but cv=5"),
        (np.zeros((10, 3)), np.linspace(0, 1, 10), {}, "looks continuous"),
        (np.zeros((10, 3, 2)), np.arange(10) % 2, {}, "pick a position"),
        (np.zeros((10, 3)), np.arange(10) % 2, {"controls": ("shufled",)}, "unknown controls"),
        (np.zeros((10, 3)), np.arange(10) % 2, {"estimator": "svm"}, "unknown estimator"),
        (np.zeros((10, 3)), np.arange(10) % 2, {"groups": np.arange(5)}, "groups has 5 entries"),
        (np.zeros((10, 3)), np.arange(10) % 2, {"cv": 1}, "at least 2 folds"),
        (np.zeros((10, 3)), np.arange(10) % 2, {"n_permutations": -1}, "non-negative"),
        (np.array([["a"] * 3] * 10), np.arange(10) % 2, {}, "numeric"),
        (
            np.zeros((10, 3)),
            np.arange(10) % 2,
            {"control_features": {"r": np.zeros((9, 3))}},
            "9 examples",
        ),
    ],
)
def test_bad_input_is_a_clear_error(x, y, kwargs, match):
    with pytest.raises(ProbeError, match=match):
        probes.probe(x, y, progress=False, **kwargs)


@pytest.fixture(scope="module")
def sentences(minilm):
    model, tok = minilm
    questions = [
        f"is the {w} here now?"
        for w in [
            "cat",
            "dog",
            "car",
            "book",
            "tree",
            "lamp",
            "cup",
            "bird",
            "fish",
            "door",
            "key",
            "pen",
        ]
    ]
    statements = [
        f"the {w} is here now."
        for w in [
            "cat",
            "dog",
            "car",
            "book",
            "tree",
            "lamp",
            "cup",
            "bird",
            "fish",
            "door",
            "key",
            "pen",
        ]
    ]
    text = questions + statements
    labels = np.array([1] * 12 + [0] * 12)
    enc = tok(text, padding=True, return_tensors="pt")
    from interp_magics import capture

    with torch.no_grad(), capture(model, "resid_post") as acts:
        model(**enc)
    return model, enc, acts, labels


def test_probe_layers_on_a_real_model(sentences, shell):
    from interp_magics.jupyter import get_ledger
    from interp_magics.stats import correct

    model, enc, acts, labels = sentences
    ledger = get_ledger(shell)
    ledger.clear()
    r = probes.probe_layers(
        acts,
        labels,
        position="mean",
        n_permutations=200,
        cv=4,
        model=model,
        inputs=enc,
        progress=False,
    )
    assert r.layers == [f"resid_post.{i}" for i in range(6)]
    assert all("random-init model" in rep.controls for rep in r.reports)
    corrected, reject = correct(r.p_raw, "fdr_bh")
    assert np.allclose(r.p_corrected, corrected) and np.array_equal(r.significant, reject)
    assert r.reports[-1].accuracy > 0.9 and r.significant.any()
    df = r.to_dataframe()
    assert list(df["layer"]) == r.layers and {
        "p_raw",
        "p_corrected",
        "significant",
        "random-init model",
    } <= set(df.columns)
    text = r.describe()
    assert "fdr_bh" in text and "corrected" in text
    bonf = probes.probe_layers(
        acts,
        labels,
        position="mean",
        n_permutations=50,
        cv=4,
        correction="bonferroni",
        progress=False,
    )
    assert np.allclose(bonf.p_corrected, np.minimum(bonf.p_raw * 6, 1))
    entries = [e for e in ledger.entries if e["kind"] == "probe"]
    assert (
        entries
        and entries[0]["corrected"] is True
        and entries[0]["p_values"] == 6
        and entries[0]["correction"] == "fdr_bh"
    )


def test_token_level_labels_group_by_sentence(sentences):
    _, enc, acts, _ = sentences
    mask = enc["attention_mask"]
    token_labels = np.where(mask.numpy() == 1, enc["input_ids"].numpy() % 2, -1)
    r = probes.probe_layers(
        acts, token_labels, layers="resid_post.{0-1}", n_permutations=20, cv=4, progress=False
    )
    assert r.reports[0].n_examples == int(mask.sum()) and r.reports[0].grouped


def test_probe_layers_errors(sentences):
    model, _, acts, labels = sentences
    with pytest.raises(ProbeError, match="no activations"):
        probes.probe_layers(acts, labels, layers="mlp_out.*", progress=False)
    with pytest.raises(ProbeError, match="unknown correction"):
        probes.probe_layers(acts, labels, correction="magic", progress=False)
    with pytest.raises(ProbeError, match="both model= and inputs="):
        probes.probe_layers(acts, labels, model=model, progress=False)
    with pytest.raises(ProbeError, match="token labels have shape"):
        probes.probe_layers(acts, np.zeros((3, 3)), progress=False)


def test_panel_and_fallbacks():
    from interp_magics.widgets import ProbePanel

    x, y = encoded(n=200)
    r = probes.probe(x, y, n_permutations=100, control_task=np.arange(200) % 17, progress=False)
    panel = r.widget()
    assert isinstance(panel, ProbePanel) and panel.data["mode"] == "single"
    names = [b["name"] for b in panel.data["bars"]]
    assert names == [
        "probe",
        "probe (balanced)",
        "shuffled labels",
        "random features",
        "control task",
    ]
    assert panel.data["bars"][0]["value"] == pytest.approx(r.accuracy)
    data, _ = r._repr_mimebundle_()
    assert data["image/png"][:4] == b"\x89PNG"
    text = data["text/plain"]
    for part in (
        f"{r.accuracy:.3f}",
        "permutation p",
        "binomial test",
        "majority class",
        "selectivity",
    ):
        assert part in text
    assert "<script" not in data["text/html"].lower() and "shuffled labels" in data["text/html"]


def test_probe_magic(shell, sentences):
    _, _, acts, labels = sentences
    x, y = encoded(n=100)
    shell.user_ns.update(acts=acts, labels=labels, X=x, y=y, types=np.arange(100) % 7)
    result = shell.run_cell("%probe X y --permutations 50 --control-task types -o rep")
    assert result.success, result.error_in_exec
    assert shell.user_ns["rep"].selectivity is not None and result.result is shell.user_ns["rep"]
    result = shell.run_cell(
        "%probe acts labels --layers resid_post.{4-5} --position mean --permutations 20 --cv 4 --correction holm"
    )
    assert result.success and result.result.correction == "holm" and len(result.result.layers) == 2
    for line, message in [
        ("%probe X y --estimator svm", "unknown estimator"),
        ("%probe X labels", "24 labels but there are 100 examples"),
        ("%probe X y --layers resid_post.1", "need an ActivationCache"),
        ("%probe nope y", "name 'nope' is not defined"),
    ]:
        result = shell.run_cell(line)
        assert message in str(result.error_in_exec), line


def _emitted_probe_records(run):
    """Return the probe records ``run()`` emits (as the ledger receives them)."""
    from interp_magics.core import events

    records = []
    unsubscribe = events.subscribe(records.append)
    try:
        run()
    finally:
        unsubscribe()
    return [r for r in records if r["kind"] == "probe"]


@pytest.mark.parametrize(
    "kwargs, recorded",
    [
        ({"n_permutations": 0}, ["majority", "random_features"]),  # no permutation test ran
        ({"n_permutations": 20}, ["majority", "random_features", "shuffled"]),
        ({"n_permutations": 20, "controls": ("shuffled",)}, ["shuffled"]),
        ({"n_permutations": 0, "controls": ("shuffled", "majority")}, ["majority"]),
    ],
)
def test_ledger_records_the_controls_that_ran(kwargs, recorded):
    """``n_permutations=0`` asks for the shuffled control but runs none: the ledger says so."""
    x, y = encoded(n=80)
    [record] = _emitted_probe_records(lambda: probes.probe(x, y, cv=3, progress=False, **kwargs))
    assert record["controls"] == recorded
    assert record["n_permutations"] == kwargs["n_permutations"]


def test_ledger_of_a_layer_sweep_records_the_controls_that_ran(sentences):
    _, _, acts, labels = sentences

    def sweep(n):
        return lambda: probes.probe_layers(
            acts,
            labels,
            layers="resid_post.{4-5}",
            position="mean",
            n_permutations=n,
            cv=4,
            controls=("shuffled", "majority"),
            progress=False,
        )

    [without] = _emitted_probe_records(sweep(0))
    [with_perms] = _emitted_probe_records(sweep(10))
    assert without["controls"] == ["majority"] and without["n_permutations"] == 0
    assert with_perms["controls"] == ["majority", "shuffled"] and with_perms["n_permutations"] == 10
