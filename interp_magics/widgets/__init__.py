"""Notebook widgets (anywidget): interactive views with static fallbacks.

``AttentionView`` shows attention patterns; ``PatchingHeatmap`` a patching or ablation
result. Each widget's front end is bundled into
``static/`` at build time from the top-level ``widgets/`` folder.
"""

from __future__ import annotations

from .attention import AttentionView
from .patching import PatchingHeatmap

__all__ = ["AttentionView", "PatchingHeatmap"]
