"""Probes with controls: "is X linearly decodable here, and is that more than chance?"

:func:`probe` fits a classifier to activations with stratified k-fold cross-validation (or the
caller's splitter or folds) and never reports it alone: by default it also runs a shuffled-label
permutation test (``n_permutations`` refits on labels permuted within each test fold, or between
whole groups when a label is constant within groups; exact p-value, ties in accuracy broken by
the held-out margin), a random-features control (Gaussian features of the same shape), chance
levels that account for class imbalance (majority rate and a label-frequency guesser) with a
binomial test (independent examples only), 95% intervals for accuracy (Wilson; by group when
grouped) and balanced accuracy (bootstrap), and, when asked, a control task (Hewitt & Liang,
2019) on folds where word types recur, with selectivity and its interval, control
representations (e.g. a randomly initialised model) and a mutual-information estimate. Every
control reports balanced accuracy too. Calibration is simulated in ``benchmarks/calibration.py``.

:func:`probe_layers` probes every layer of an :class:`~interp_magics.core.cache.ActivationCache` and
corrects the layer-wise p-values for multiple comparisons (``statsmodels``' ``multipletests``).

Speed: for the ridge probe (default), permuted labels only change the right-hand side of the
ridge system, so all permutations of a fold are solved with one factorisation and matrix
products. The logistic probe fits all permutations together with a batched majorise-minimise
Newton iteration (one Hessian bound per fold); every fit, real or permuted, stops by the same
rule on its own training gradient. Other scikit-learn estimators, including the small
MLP, are refitted per permutation (slower; the ETA is shown).

The modules: :mod:`.api` (the two functions), :mod:`.inputs` (checks and conversions, before any
fit), :mod:`.fits` (the estimators and the one cross-validation loop with the permutation test),
:mod:`.permute` (permutations that respect the design, and the test's p-value), :mod:`.controls`
(the controls, intervals, chance levels, mutual information), :mod:`.result` (the reports).
"""

from __future__ import annotations

from .api import probe, probe_layers
from .controls import CONTROLS, random_init_features
from .inputs import ProbeError
from .result import ControlResult, LayerProbeReport, ProbeReport

__all__ = [
    "CONTROLS",
    "ControlResult",
    "LayerProbeReport",
    "ProbeError",
    "ProbeReport",
    "probe",
    "probe_layers",
    "random_init_features",
]
