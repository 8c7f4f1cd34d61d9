"""Probes with controls: calibration, power, imbalance, fast paths vs refits, bad input."""

import numpy as np
import pytest
import torch
from scipy.stats import binomtest

from interp_magics import probes
from interp_magics.probes import ProbeError
from interp_magics.probes.fits import Refit, Ridge, cross_validate
from interp_magics.probes.inputs import folds as make_folds
from interp_magics.probes.permute import permutations


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
        (np.zeros((10, 3)), np.arange(10) % 2, {"cv": 1}, r"number of folds \(at least 2\)"),
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


# -- permutations that respect the design -------------------------------------------------------


def test_permutations_keep_every_test_folds_label_counts():
    """Permuted fits must see the folds the real fit saw: each test fold keeps its labels."""
    rng = np.random.default_rng(11)
    codes = rng.integers(0, 3, 47)
    splits = make_folds(codes, 5, 0, None)
    perms = permutations(codes, 40, 0, None, splits)
    for _, te in splits:
        want = np.bincount(codes[te], minlength=3)
        for p in perms:
            assert np.array_equal(np.bincount(p[te], minlength=3), want)
    assert len({tuple(p) for p in perms}) == 40  # and they do permute


def test_probe_permutes_within_its_own_test_folds():
    """probe()'s p-value is the one its folds' within-fold permutations give, refitted by hand.

    Ties in accuracy are broken by the summed held-out margin of the true class.
    """
    from sklearn.linear_model import RidgeClassifier

    from interp_magics.probes.inputs import folds as folds_of

    rng = np.random.default_rng(12)
    x, y = rng.standard_normal((40, 2)), np.arange(40) % 2
    r = probes.probe(x, y, controls=("shuffled",), n_permutations=99, seed=3, progress=False)
    splits = folds_of(y, 5, 3, None)

    def score(labels_):
        correct, margin = 0, 0.0
        for tr, te in splits:
            model = RidgeClassifier(alpha=1.0).fit(x[tr], labels_[tr])
            correct += int((model.predict(x[te]) == labels_[te]).sum())
            margin += float((model.decision_function(x[te]) * (2 * labels_[te] - 1)).sum())
        return correct, margin

    observed = score(y)
    null = [score(p) for p in permutations(y, 99, 3, None, splits)]
    extreme = sum(
        c > observed[0] or (c == observed[0] and m >= observed[1] - 1e-6) for c, m in null
    )
    assert r.p_value == pytest.approx((1 + extreme) / 100)
    assert r.permutation["scheme"] == "within test folds"
    assert any(c == observed[0] for c, _ in null)  # ties did occur, and were broken


def test_logistic_fits_do_not_depend_on_batching_and_match_scikit_learn():
    """Observed and permuted fits: one estimator, one stopping rule, no look at the test fold."""
    from sklearn.linear_model import LogisticRegression

    from interp_magics.probes.fits import Logistic, _LogisticFold

    rng = np.random.default_rng(13)
    x = rng.standard_normal((60, 4))
    codes = (x[:, 0] + rng.standard_normal(60) > 0).astype(int)
    splits = make_folds(codes, 3, 0, None)
    perms = permutations(codes, 20, 0, None, splits)
    together = cross_validate(Logistic(1.0), x, codes, 2, splits, perms)
    one_by_one = Logistic(1.0)
    one_by_one.batch_elements = 1
    apart = cross_validate(one_by_one, x, codes, 2, splits, perms)
    assert np.array_equal(together.null_correct, apart.null_correct)
    tr, te = splits[0]
    xt = torch.from_numpy(x)
    for labels_ in (codes, perms[0], perms[1]):
        fold = _LogisticFold(xt[tr], xt[te], 1.0, 300, 1e-5, 2)
        mine = fold(labels_[tr][None], with_scores=True)[1][0, :, 0]
        ref = LogisticRegression(C=1.0, tol=1e-10, max_iter=10_000).fit(x[tr], labels_[tr])
        assert np.allclose(mine, ref.decision_function(x[te]), atol=1e-3)


def _type_level(n_groups=30, per=4, signal=1.0, seed=0):
    """Examples in groups (word types) with one label per group and a group effect in X."""
    rng = np.random.default_rng(seed)
    groups = np.repeat(np.arange(n_groups), per)
    g_label = np.arange(n_groups) % 2
    rng.shuffle(g_label)
    centre = rng.standard_normal((n_groups, 3))
    centre[:, 0] += signal * (2 * g_label - 1)
    x = centre[groups] + 0.3 * rng.standard_normal((len(groups), 3))
    return x, g_label[groups], groups


def test_type_level_labels_are_permuted_between_whole_groups():
    x, y, groups = _type_level(signal=1.5)
    splits = make_folds(y, 5, 0, groups)
    perms = permutations(y, 30, 0, groups, splits)
    fold_of = np.zeros(len(y), dtype=int)
    for i, (_, te) in enumerate(splits):
        fold_of[te] = i
    for p in perms:
        for g in np.unique(groups):  # a label per group still
            assert len(set(p[groups == g])) == 1
        for f in range(5):  # and each test fold keeps its groups' labels
            first = np.unique(groups[fold_of == f], return_index=True)[1]
            idx = np.nonzero(fold_of == f)[0][first]
            assert sorted(p[idx]) == sorted(y[idx])
    assert any(not np.array_equal(p, y) for p in perms)
    # Within-group shuffles could change nothing (p = 1); between-group ones find the signal.
    r = probes.probe(x, y, groups=groups, n_permutations=199, progress=False)
    assert r.accuracy > 0.8 and r.p_value < 0.02
    assert r.permutation["scheme"] == "between groups"


def test_too_few_groups_for_a_permutation_test_is_refused():
    x, y, groups = _type_level(n_groups=8, per=3)
    with pytest.raises(ProbeError, match="no valid permutation test.*16 distinct labellings"):
        probes.probe(x, y, groups=groups, cv=4, n_permutations=99, progress=False)
    # without the permutation test the probe still runs (and says the binomial test is not run)
    r = probes.probe(x, y, groups=groups, cv=4, controls=("majority",), progress=False)
    assert np.isnan(r.binomial_p) and "independent examples" in r.describe()


# -- control task -------------------------------------------------------------------------------


def test_control_labels_are_reencoded_without_gaps():
    """A class that no word type drew leaves no gap (a 4-class IndexError, an unpredictable class)."""
    from interp_magics.probes.controls import control_task_codes

    rng = np.random.default_rng(14)
    types = rng.integers(0, 20, 300)
    y = np.where(rng.random(300) < 0.7, 0, rng.integers(1, 4, 300))  # skewed 4 classes
    emb = rng.standard_normal((20, 32))
    x = emb[types] + 0.05 * rng.standard_normal((300, 32))
    gaps = 0
    for seed in range(20):
        codes = control_task_codes(types, None, y, seed)
        assert np.all(np.bincount(codes) > 0)
        drawn = np.random.default_rng(seed + 2)  # the same draw, not re-encoded
        freq = np.bincount(y) / len(y)
        raw = {t: drawn.choice(4, p=freq) for t in np.unique(types)}
        gaps += len(set(raw.values())) < max(raw.values()) + 1
        r = probes.probe(x, y, control_task=types, n_permutations=0, seed=seed, progress=False)
        # the types are memorisable: the control task is learned (types recur across folds)
        assert r.controls["control task"].accuracy > 0.9
    assert gaps > 0  # the case that used to fail did occur


def test_selectivity_has_an_interval_and_balanced_selectivity():
    from scipy.stats import bootstrap

    rng = np.random.default_rng(15)
    types = rng.integers(0, 40, 300)
    emb = rng.standard_normal((40, 8))
    x = emb[types] + 0.8 * rng.standard_normal((300, 8))
    y = (types % 4 == 0).astype(int)  # imbalanced: a quarter of the types
    r = probes.probe(x, y, control_task=types, n_permutations=0, progress=False)
    c = r.controls["control task"]
    lo, hi = r.selectivity_ci
    assert lo < r.selectivity < hi
    d = (r.predictions == r.labels).astype(float) - c.hits
    ref = bootstrap((d,), np.mean, method="BCa", random_state=np.random.default_rng(0))
    assert lo == pytest.approx(ref.confidence_interval.low, abs=0.02)
    assert hi == pytest.approx(ref.confidence_interval.high, abs=0.02)
    assert r.balanced_selectivity == pytest.approx(r.balanced_accuracy - c.balanced_accuracy)
    assert "balanced selectivity" in r.describe() and "selectivity" in set(
        r.to_dataframe()["measure"]
    )


def test_control_task_is_refused_when_groups_keep_types_apart():
    x, y, groups = _type_level(n_groups=30, per=4)
    r = probes.probe(x, y, groups=groups, control_task=groups, n_permutations=0, progress=False)
    assert "control task" not in r.controls and r.selectivity is None
    assert any("control task not run" in n and "memorising types" in n for n in r.notes)


def test_saturated_and_below_chance_controls_are_flagged():
    rng = np.random.default_rng(16)
    types = np.repeat(np.arange(10), 8)
    x = rng.standard_normal((10, 16))[types] + 0.01 * rng.standard_normal((80, 16))
    # twins: the same vector with opposite labels, one twin in each test fold
    twins = np.repeat(rng.standard_normal((40, 60)), 2, axis=0)
    y = np.tile([0, 1], 40)
    first, second = np.arange(0, 80, 2), np.arange(1, 80, 2)
    folds = [(second, first), (first, second)]
    r = probes.probe(
        x,
        y,
        cv=folds,
        control_task=types,
        control_features={"twins": twins},
        alpha=1e-3,
        n_permutations=0,
        progress=False,
    )
    assert r.controls["control task"].accuracy == 1.0
    assert r.controls["twins"].accuracy < 0.1
    notes = " ".join(r.notes)
    assert "control task saturated" in notes and "twins scores far below chance" in notes


# -- intervals ----------------------------------------------------------------------------------


def test_accuracy_interval_is_wilson_and_never_collapses():
    from statsmodels.stats.proportion import proportion_confint

    x, y = encoded(n=60, noise=0.0)
    x[:, 0] += 5 * (2 * y - 1)  # perfectly separable
    r = probes.probe(x, y, n_permutations=0, progress=False)
    assert r.accuracy == 1.0
    lo, hi = proportion_confint(60, 60, method="wilson")
    assert r.accuracy_ci == pytest.approx((lo, hi)) and r.accuracy_ci[0] < 0.96
    assert r.balanced_ci[0] < 1.0
    assert "fitted fold models" in r.describe()
    x2, y2 = encoded(n=150, noise=1.0)
    r2 = probes.probe(x2, y2, n_permutations=0, progress=False)
    hits = round(r2.accuracy * 150)
    assert r2.accuracy_ci == pytest.approx(proportion_confint(hits, 150, method="wilson"))


def test_grouped_intervals_resample_groups():
    """Hits that are equal within groups carry one group's worth of information each."""
    from statsmodels.stats.proportion import proportion_confint

    from interp_magics.probes.controls import accuracy_ci

    groups = np.repeat(np.arange(20), 10)
    hits = np.repeat(np.r_[np.ones(14), np.zeros(6)], 10)
    lo, hi = accuracy_ci(hits, 0, groups)
    # perfectly clustered: the effective size is the 20 groups (within the G/(G-1) factor), and
    # the quantile Student's t on 19 degrees of freedom
    from scipy.stats import t

    z, n, p = t.ppf(0.975, 19), 20 * 19 / 20, 0.7
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    assert (lo, hi) == pytest.approx((centre - half, centre + half), abs=1e-9)
    assert lo < proportion_confint(14, 20, method="wilson")[0]  # wider than 20 independent
    flat = accuracy_ci(hits, 0)
    assert flat[1] - flat[0] < (hi - lo) / 2


# -- balanced accuracy, cv, clear errors --------------------------------------------------------


def test_every_control_reports_balanced_accuracy():
    rng = np.random.default_rng(17)
    x = rng.standard_normal((200, 5))
    y = (rng.random(200) < 0.1).astype(int)
    y[:10] = 1
    r = probes.probe(x, y, n_permutations=50, control_features={"other": x[::-1]}, progress=False)
    for c in r.controls.values():
        ref = np.mean([c.hits[r.labels == k].mean() for k in (0, 1)])
        assert c.balanced_accuracy == pytest.approx(ref)
        assert c.accuracy > 0.8 and c.balanced_accuracy < 0.65
    assert {"random features (balanced)", "other (balanced)"} <= set(r.to_dataframe()["measure"])
    assert 0.4 < r.permutation["null_balanced_mean"] < 0.6
    assert "balanced" in r.describe().split("shuffled labels")[1]


def test_cv_takes_splitters_and_explicit_folds():
    from sklearn.model_selection import KFold, ShuffleSplit, StratifiedKFold

    x, y = encoded(n=90, noise=0.5)
    by_int = probes.probe(x, y, n_permutations=20, cv=3, seed=2, progress=False)
    splitter = StratifiedKFold(3, shuffle=True, random_state=2)
    by_splitter = probes.probe(x, y, n_permutations=20, cv=splitter, seed=2, progress=False)
    assert np.array_equal(by_int.predictions, by_splitter.predictions)
    assert by_int.p_value == by_splitter.p_value
    explicit = list(KFold(4).split(x))
    r = probes.probe(x, y, n_permutations=20, cv=explicit, progress=False)
    ref = np.zeros_like(y)
    from sklearn.linear_model import RidgeClassifier

    for tr, te in explicit:
        ref[te] = RidgeClassifier(alpha=1.0).fit(x[tr], y[tr]).predict(x[te])
    assert np.array_equal(r.predictions, ref) and r.cv == 4
    with pytest.raises(ProbeError, match="exactly once"):
        probes.probe(x, y, cv=ShuffleSplit(3, random_state=0), progress=False)
    with pytest.raises(ProbeError, match="tests examples it also trains on"):
        probes.probe(x, y, cv=[(np.arange(90), np.arange(45))], progress=False)


@pytest.mark.parametrize(
    ("y", "match"),
    [
        ([0, 1, None, 1, 0, 1, 0, 1, 0, 1] * 2, "missing labels.*index 2"),
        (np.r_[np.arange(19) % 2, np.nan].astype(float), "missing labels.*index 19"),
    ],
)
def test_missing_labels_are_a_clear_error(y, match):
    with pytest.raises(ProbeError, match=match):
        probes.probe(np.random.default_rng(0).standard_normal((20, 3)), y, progress=False)


def test_constant_features_are_refused():
    """The <bos> position is the same vector everywhere: nothing to decode (was p = 0.001)."""
    x = np.tile(np.random.default_rng(0).standard_normal(8), (40, 1))
    with pytest.raises(ProbeError, match="same vector in every example"):
        probes.probe(x, np.arange(40) % 2, progress=False)


def test_a_cache_passed_to_probe_says_how_to_get_an_array(sentences):
    _, _, acts, labels = sentences
    with pytest.raises(ProbeError, match=r"ActivationCache.*\[:, -1\].*probe_layers"):
        probes.probe(acts, labels, progress=False)


def test_control_features_reach_every_layer(sentences):
    _, _, acts, labels = sentences
    other = np.random.default_rng(0).standard_normal((24, 5))
    r = probes.probe_layers(
        acts,
        labels,
        position="mean",
        n_permutations=0,
        cv=4,
        controls=("majority",),
        control_features={"bag of words": other},
        progress=False,
    )
    accs = [rep.controls["bag of words"].accuracy for rep in r.reports]
    assert len(accs) == 6 and len(set(accs)) == 1  # the same features, compared with every layer


def test_a_position_beyond_the_sequence_says_which_positions_exist(sentences):
    _, enc, acts, labels = sentences
    length = enc["input_ids"].shape[1]
    with pytest.raises(ProbeError, match=rf"position 50 is outside the {length} positions"):
        probes.probe_layers(acts, labels, position=50, n_permutations=9, progress=False)
    with pytest.warns(UserWarning, match="reads the same token"):  # [CLS] in every sequence
        report = probes.probe_layers(
            acts, labels, position=-length, n_permutations=9, progress=False
        )
    assert len(report.to_dataframe()) == len(acts.match("resid_post.*"))


def test_last_position_on_bert_batches_says_it_reads_the_separator(sentences):
    _, _, acts, labels = sentences
    with pytest.warns(UserWarning, match=r"reads the same token \(id 102\) in every sequence"):
        probes.probe_layers(acts, labels, position="last", n_permutations=9, progress=False)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        probes.probe_layers(acts, labels, position="mean", n_permutations=9, progress=False)
        probes.probe_layers(acts, labels, position=3, n_permutations=9, progress=False)
