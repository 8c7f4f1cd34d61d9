"""Activation patching and ablation: the causal tests.

:func:`activation_patch` swaps activations between a clean and a corrupted run and scores each
patched run with a metric, over layers, positions and heads. ``direction="denoising"`` (the
default) runs the corrupted input and patches in clean activations: a cell near 1 restores the
clean behaviour, so that component is *sufficient* to carry the information.
``direction="noising"`` runs the clean input and patches in corrupted activations: a cell near 0
destroys the behaviour, so the component is *necessary*. ``method="attribution"`` gives the
first-order approximation of the whole sweep from two forwards and one backward;
``verify_top=k`` checks its k largest cells, and k random ones, by exact patching.

:func:`ablate` replaces activations by their batch mean (the default), another example's values
(resampling, over real tokens, averaged over several derangements) or zeros, and reports the
change in the metric: a necessity test without a counterfactual.

Every cell of either comes with a t-interval over examples and a sign-flip test of no change,
corrected across the sweep (max-|t| by default), in the result, its DataFrame, the heatmap and
the ledger.

Both return a :class:`PatchResult`. Metrics live in :mod:`interp_magics.patching.metrics`
(``logit_diff``, ``logprob``, ``kl_to_clean``, or any function of the logits).

The package, one job a module:

- :mod:`.api`: the two entry points, which check their inputs and then call the steps below;
- :mod:`.inputs`: user inputs turned into checked batches and a sweep (errors before long work);
- :mod:`.sweep`: what every sweep shares, and the unpatched reference runs;
- :mod:`.corruption`: embedding noise and the values zero, mean and resample ablation put in;
- :mod:`.exact`: the exact sweep (stacked cells, KV-prefix reuse, unchanged cells skipped);
- :mod:`.attribution`: the gradient approximation and its ``verify_top`` check;
- :mod:`.runner`: running a model from a given layer with activations patched in;
- :mod:`.metrics`: what a patched run is scored by;
- :mod:`.result`: :class:`PatchResult` and its axis labels;
- :mod:`.uncertainty`: per-cell t-intervals and sign-flip tests, corrected across the sweep;
- :mod:`.significance`: those statistics as result fields, and the small-gap warning.
"""

from __future__ import annotations

from .api import ablate, activation_patch
from .inputs import PatchingError
from .metrics import MetricError, kl_to_clean, logit_diff, logprob
from .result import PatchResult

__all__ = [
    "MetricError",
    "PatchResult",
    "PatchingError",
    "ablate",
    "activation_patch",
    "kl_to_clean",
    "logit_diff",
    "logprob",
]
