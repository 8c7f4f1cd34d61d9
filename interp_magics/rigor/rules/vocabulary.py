"""Call names that rules of more than one family recognise in notebook code.

A name only one family needs is defined next to its rules.
"""

from __future__ import annotations

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
INTERVENTION_CALLS = {
    "activation_patch",
    "ablate",
    "%patch",
    "run_with_hooks",
    "patch",
    "generic_activation_patch",
    "path_patch",
    "%path_patch",
    "faithfulness",
    "causal_scrubbing",
    "steer",
    "intervene",
    "%%intervene",
    "ablate_features",
}
