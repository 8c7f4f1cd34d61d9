"""Activation steering: a direction between two sets of prompts, and its dose-response.

- :func:`vector`: the difference of means (or a probe's direction) of a site's activations
  between positive and negative prompts, as a :class:`SteeringVector`;
- :func:`sweep`: a metric under ``add(vector * coef)`` at each coefficient, beside random
  directions of the same norm, with intervals, Holm-corrected tests and (optionally) the
  generated text side by side, as a :class:`SweepResult`.

Steering runs through :func:`interp_magics.intervene.intervene`, so it works wherever
interventions do (HuggingFace models, accelerate-dispatched, nnsight-wrapped). A sweep records
one intervention in the ledger, with a direction and a random baseline.

The package, one job a module: :mod:`.inputs` (prompts as a padded batch), :mod:`.vector`,
:mod:`.sweep`, :mod:`.statistics` (the dose-response tests), :mod:`.result`, :mod:`.plots`.
"""

from __future__ import annotations

from .inputs import SteeringError
from .result import SweepResult
from .statistics import DoseResponse, dose_response
from .sweep import random_directions, sweep
from .vector import SteeringVector, vector

__all__ = [
    "DoseResponse",
    "SteeringError",
    "SteeringVector",
    "SweepResult",
    "dose_response",
    "random_directions",
    "sweep",
    "vector",
]
