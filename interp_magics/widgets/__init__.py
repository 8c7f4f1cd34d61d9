"""Notebook widgets (anywidget): interactive views with static fallbacks.

``AttentionView`` shows attention patterns; ``PatchingHeatmap`` a patching or ablation
result; ``ProbePanel`` a probe with its controls; ``LensView`` a logit or tuned lens;
``CircuitGraph`` edge attribution scores or a circuit as a graph; ``FeatureDashboard`` the
features of a sparse autoencoder (or transcoder) and their top examples. Each widget's front
end is bundled into ``static/`` at build time from the top-level ``widgets/`` folder.
"""

from __future__ import annotations

from .attention import AttentionView
from .circuit import CircuitGraph
from .features import FeatureDashboard
from .lens import LensView
from .patching import PatchingHeatmap
from .probes import ProbePanel

__all__ = [
    "AttentionView",
    "CircuitGraph",
    "FeatureDashboard",
    "LensView",
    "PatchingHeatmap",
    "ProbePanel",
]
