"""Probe and statistics rules read evidence by data flow: controls and corrections count only
when their result is used for what they claim, and choices or preprocessing leak no test data."""

import pytest
from support.notebooks import notebook

from interp_magics import rigor


def fired(*cells):
    return {f.rule for f in rigor.check(notebook(*cells))}


SEEDED = (
    "code",
    "import numpy as np\nfrom sklearn.linear_model import LogisticRegression\n"
    "from sklearn.model_selection import cross_val_score, train_test_split\n"
    "rng = np.random.default_rng(0)\nnp.random.seed(0)\n"
    "X = rng.standard_normal((200, 16))\ny = (X[:, 0] > 0).astype(int)",
)
PROBE = "scores = cross_val_score(LogisticRegression(), X, y, cv=5)\n"
TESTS = "pvals = []\nfor layer in range(6):\n    r, p = pearsonr(acts[layer][:, 0], y)\n    pvals.append(p)\n"


# -- STA001: a correction counts for the tests it corrects, when its result is used -------------


def test_a_layer_probe_elsewhere_does_not_correct_unrelated_tests():
    probe_layers = ("code", "report = probes.probe_layers(cache, labels)")
    magic = ("code", "%probe cache labels")
    assert "STA001" in fired(SEEDED, probe_layers, ("code", TESTS))
    assert "STA001" in fired(SEEDED, magic, ("code", TESTS))


def test_a_discarded_correction_corrects_nothing():
    assert "STA001" in fired(SEEDED, ("code", TESTS + "_ = multipletests(pvals)"))
    unread = TESTS + "reject, q, _, _ = multipletests(pvals, method='fdr_bh')"
    assert "STA001" in fired(SEEDED, ("code", unread))
    assert "STA001" not in fired(SEEDED, ("code", unread), ("code", "print(q)"))
    shown = TESTS + "print(multipletests(pvals, method='holm')[1])"
    assert "STA001" not in fired(SEEDED, ("code", shown))


def test_a_correction_of_other_p_values_does_not_correct_this_family():
    other = (
        "other = [ttest_ind(a, b).pvalue for a, b in pairs]\n"
        "reject, q, _, _ = multipletests(other)\nprint(q)"
    )
    assert "STA001" in fired(SEEDED, ("code", TESTS + other))
    both = TESTS + "reject, q, _, _ = multipletests(pvals)\nprint(reject)"
    assert "STA001" not in fired(SEEDED, ("code", both))


def test_tests_inside_the_correction_are_corrected():
    code = "q = multipletests([pearsonr(a[:, 0], y)[1] for a in acts])[1]\nprint(q)"
    assert "STA001" not in fired(SEEDED, ("code", code))


def test_a_torch_probe_trained_in_a_loop_is_not_a_family_of_tests():
    code = (
        "import torch\ntorch.manual_seed(0)\nprobe = torch.nn.Linear(16, 2)\n"
        "opt = torch.optim.Adam(probe.parameters())\nfor epoch in range(100):\n"
        "    loss = torch.nn.functional.cross_entropy(probe(X_train), y_train)\n"
        "    loss.backward()\n    opt.step()"
    )
    assert "STA001" not in fired(SEEDED, ("code", code))


# -- PRB001: a control counts when it ran and its result feeds a probe ----------------------------


@pytest.mark.parametrize(
    "call",
    [
        "r = probes.probe(X, y, controls=('shuffled',), n_permutations=0)",
        "r = probes.probe(X, y, controls=('shuffled', 'majority'), n_permutations=0)",
        "%probe X y --controls shuffled --permutations 0",
    ],
)
def test_a_permutation_test_without_permutations_is_no_control(call):
    assert "PRB001" in fired(SEEDED, ("code", PROBE + call))


def test_package_probes_with_controls_that_run_are_controls():
    for call in (
        "r = probes.probe(X, y)",
        "r = probes.probe(X, y, n_permutations=0)",  # random features still run
        "r = probes.probe(X, y, controls=('shuffled',), n_permutations=0, control_task=types)",
    ):
        assert "PRB001" not in fired(SEEDED, ("code", PROBE + call)), call


@pytest.mark.parametrize(
    "code",
    [
        # a permutation of indices that orders a train/test split
        "idx = rng.permutation(len(y))\ntrain, test = idx[:150], idx[150:]\n"
        "clf = LogisticRegression().fit(X[train], y[train])\nprint(clf.score(X[test], y[test]))",
        "idx = np.random.permutation(len(X))\nX_tr, y_tr = X[idx[:150]], y[idx[:150]]\n"
        "clf = LogisticRegression().fit(X_tr, y_tr)",
        # shuffled labels that no probe ever sees
        PROBE + "y_perm = np.random.permutation(y)",
        PROBE + "shuffled_labels = rng.permutation(y)",
        # noise for causal tracing, not features for a probe
        PROBE + "import torch\nnoise = torch.randn_like(embeds) * 3\n"
        "def hook(module, inputs, output):\n    return output + noise",
    ],
)
def test_what_is_no_control_does_not_silence_prb001(code):
    assert "PRB001" in fired(SEEDED, ("code", code))


@pytest.mark.parametrize(
    "code",
    [
        PROBE + "y_perm = np.random.permutation(y)\n"
        "null = cross_val_score(LogisticRegression(), X, y_perm, cv=5)",
        PROBE + "null = cross_val_score(LogisticRegression(), X, rng.permutation(y), cv=5)",
        PROBE + "perm = rng.permutation(len(y))\ny_null = y[perm]\n"
        "null = cross_val_score(LogisticRegression(), X, y_null, cv=5)",
        PROBE + "y_null = y.copy()\nrng.shuffle(y_null)\n"
        "null = cross_val_score(LogisticRegression(), X, y_null, cv=5)",
        PROBE + "X_rand = rng.standard_normal(X.shape)\n"
        "base = cross_val_score(LogisticRegression(), X_rand, y, cv=5)",
        PROBE + "def fit_probe(features, labels):\n"
        "    return LogisticRegression().fit(features, labels).score(features, labels)\n"
        "null = fit_probe(X, np.random.permutation(y))",
    ],
)
def test_controls_that_feed_a_probe_are_accepted(code):
    assert "PRB001" not in fired(SEEDED, ("code", code))


# -- PRB004: any estimator ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "code",
    [
        "clf = LogisticRegression(max_iter=1000).fit(X, y)\nprint(clf.score(X, y))",
        "head = LogisticRegression()\nhead.fit(acts, y)\nprint((head.predict(acts) == y).mean())",
    ],
)
def test_any_estimator_scored_on_its_training_data(code):
    assert "PRB004" in fired(SEEDED, ("code", code))


def test_an_estimator_scored_on_held_out_data_passes():
    code = (
        "X_tr, X_te, y_tr, y_te = train_test_split(X, y, random_state=0)\n"
        "clf = LogisticRegression().fit(X_tr, y_tr)\nprint(clf.score(X_te, y_te))"
    )
    assert "PRB004" not in fired(SEEDED, ("code", code))


# -- STA002: a p-value is not the metric before it ----------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "The shuffled-label accuracy is at chance (p = 1.0).",
        "The effect on the logit difference is not significant (p-value = 0.42).",
        "Accuracy was measured on n = 200 held-out sentences.",
    ],
)
def test_a_p_value_or_count_after_a_metric_is_not_the_metric(text):
    assert "STA002" not in fired(("md", text), SEEDED)


def test_a_metric_with_a_p_value_is_still_read():
    assert "STA002" in fired(("md", "The probe accuracy is 0.93 (p < 0.001)."), SEEDED)


# -- PRB005: preprocessing fitted before the split ------------------------------------------------


@pytest.mark.parametrize(
    "code",
    [
        "from sklearn.preprocessing import StandardScaler\n"
        "Xs = StandardScaler().fit_transform(X)\n"
        "X_tr, X_te, y_tr, y_te = train_test_split(Xs, y, random_state=0)",
        "from sklearn.decomposition import PCA\npca = PCA(10)\npca.fit(X)\n"
        "Xp = pca.transform(X)\n" + "scores = cross_val_score(LogisticRegression(), Xp, y, cv=5)",
        "from sklearn.feature_selection import SelectKBest\n"
        "X = SelectKBest(k=5).fit_transform(X, y)\n"
        "scores = cross_val_score(LogisticRegression(), X, y, cv=5)",
    ],
)
def test_preprocessing_fitted_on_all_data_before_the_split(code):
    assert "PRB005" in fired(SEEDED, ("code", code))


@pytest.mark.parametrize(
    "code",
    [
        "from sklearn.pipeline import make_pipeline\nfrom sklearn.preprocessing import StandardScaler\n"
        "scores = cross_val_score(make_pipeline(StandardScaler(), LogisticRegression()), X, y)",
        "from sklearn.preprocessing import StandardScaler\n"
        "X_tr, X_te, y_tr, y_te = train_test_split(X, y, random_state=0)\n"
        "scaler = StandardScaler().fit(X_train)\n"
        "clf = LogisticRegression().fit(scaler.transform(X_tr), y_tr)",
        # PCA on everything for a picture, never split or cross-validated
        "from sklearn.decomposition import PCA\nxy = PCA(2).fit_transform(X)\n"
        "plt.scatter(xy[:, 0], xy[:, 1], c=y)\n" + PROBE,
    ],
)
def test_preprocessing_inside_the_split_passes(code):
    assert "PRB005" not in fired(SEEDED, ("code", code))


# -- STA005: a choice made on the test data -------------------------------------------------------

LAYERS = (
    "X_tr, X_te, y_tr, y_te = train_test_split(X, y, random_state=0)\n"
    "accs = []\nfor layer in range(6):\n"
    "    clf = LogisticRegression().fit(acts[layer][:150], y_tr)\n"
)


@pytest.mark.parametrize(
    "code",
    [
        LAYERS + "    accs.append(clf.score(X_te, y_te))\nbest = int(np.argmax(accs))",
        LAYERS + "    acc = accuracy_score(y_te, clf.predict(X_te))\n    accs.append(acc)\n"
        "best_acc = max(accs)\nprint(best_acc)",
        "test_acc = {t: accuracy_score(y_test, scores > t) for t in thresholds}\n"
        "best = pd.Series(test_acc).idxmax()",
    ],
)
def test_a_choice_made_on_test_scores(code):
    assert "STA005" in fired(SEEDED, ("code", code))


@pytest.mark.parametrize(
    "code",
    [
        # chosen on validation data, tested once
        LAYERS + "    accs.append(clf.score(X_val, y_val))\nbest = int(np.argmax(accs))\n"
        "print(final.score(X_te, y_te))",
        # test scores reported for every layer, none chosen
        LAYERS + "    accs.append(clf.score(X_te, y_te))\nplt.plot(accs)",
    ],
)
def test_a_choice_on_validation_data_or_no_choice_passes(code):
    assert "STA005" not in fired(SEEDED, ("code", code))
