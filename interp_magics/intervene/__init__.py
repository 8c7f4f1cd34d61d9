"""Interventions: run a model with its activations edited (steering, ablation, patching by hand).

``with intervene(model, [edit.add("resid_post.1", v, coef=4.0)]) as iv: model.generate(...)``
edits the model's activations while the block runs and removes every hook when it ends, also on
an exception or a KeyboardInterrupt. Edits (:mod:`.edit`) set, add, scale, zero, mean-ablate,
project out of or onto a subspace, or apply any function, at any site of the site grammar,
restricted to token positions (tracked across the forwards of ``generate`` with a KV cache),
heads and units, and to the prompt's forward or the new tokens'.

The package, one job a module:

- :mod:`.edit`: the edit constructors; :mod:`.edits`: the :class:`Edit` type and what each
  operation does to the selected values;
- :mod:`.selection`: positions, heads and units, and writing the edited part back;
- :mod:`.sources`: what ``set`` from a cache and ``mean`` read, by absolute position;
- :mod:`.generation`: the prompt and new-token forwards of ``generate``;
- :mod:`.outputs`: putting the edited tensor back into a module's output or arguments;
- :mod:`.engine`: binding edits to a model, the hooks, :func:`intervene`;
- :mod:`.parse`: the edit lines of ``%%intervene``.
"""

from __future__ import annotations

from . import edit
from .edits import Edit
from .engine import Intervention, intervene
from .errors import InterventionError, NothingEditedWarning
from .parse import parse_edits

__all__ = [
    "Edit",
    "Intervention",
    "InterventionError",
    "NothingEditedWarning",
    "edit",
    "intervene",
    "parse_edits",
]
