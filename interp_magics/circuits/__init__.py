"""Circuits: path patching, edge attribution (EAP, EAP-IG), circuit extraction, faithfulness.

A decoder's computational graph (:mod:`.graph`) has senders that write the residual stream
(``embed``, heads ``L0H2``, ``MLP3``) and receivers that read it (``L1H0.q``/``.k``/``.v``,
``MLP3``, ``logits``); an edge joins a sender to every receiver that reads after it writes.

- :func:`path_patch`: the metric when a sender's corrupted output reaches chosen receivers
  only, every sender x receiver set, with t-intervals and corrected sign-flip tests;
- :func:`eap`: every edge's first-order effect from one forward and backward (``"eap"``) or
  ``steps`` of them along the corrupted-to-clean path (``"eap-ig"``) -> :class:`EdgeScores`,
  with ``.circuit(top_k=... | threshold=...)`` and ``.verify(top=k, random=k)`` (exact edge
  patches against the scores);
- :func:`faithfulness`: a circuit's metric with every other edge mean-, resample- or
  corrupt-ablated, as a fraction of the full model's, and the same for its complement.

All of them run on one exact engine (:mod:`.edges`): each receiver reads its own residual
stream plus chosen senders' deltas, many interventions stacked along the batch.

The package, one job a module: :mod:`.graph` (nodes, edges, names), :mod:`.parts` (modules and
weight slices per family), :mod:`.edges` (the engine), :mod:`.runs` (checked inputs, reference
runs, stacked edge patches), :mod:`.path_patching`, :mod:`.eap`, :mod:`.verify`,
:mod:`.circuit`, :mod:`.faithfulness`, :mod:`.plots` (static heatmaps).
"""

from __future__ import annotations

from .circuit import Circuit
from .eap import EdgeScores, eap
from .faithfulness import Faithfulness, faithfulness
from .graph import CircuitError, Graph, Receiver, Sender, graph_of
from .path_patching import PathPatchResult, path_patch
from .verify import EdgeVerification

__all__ = [
    "Circuit",
    "CircuitError",
    "EdgeScores",
    "EdgeVerification",
    "Faithfulness",
    "Graph",
    "PathPatchResult",
    "Receiver",
    "Sender",
    "eap",
    "faithfulness",
    "graph_of",
    "path_patch",
]
