"""Activation patching and ablation: the causal tests.

:func:`activation_patch` swaps activations between a clean and a corrupted run and scores each
patched run with a metric, over layers, positions and heads. ``direction="denoising"`` (the
default) runs the corrupted input and patches in clean activations: a cell near 1 restores the
clean behaviour, so that component is *sufficient* to carry the information.
``direction="noising"`` runs the clean input and patches in corrupted activations: a cell near 0
destroys the behaviour, so the component is *necessary*. ``method="attribution"`` gives the
first-order approximation of the whole sweep from two forwards and one backward;
``verify_top=k`` checks its k largest cells by exact patching.

:func:`ablate` replaces activations by zeros, their batch mean or another example's values
(resampling) and reports the change in the metric: a necessity test without a counterfactual.

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
- :mod:`.result`: :class:`PatchResult` and its axis labels.
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
