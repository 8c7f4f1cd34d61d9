"""Lenses: read the residual stream as next-token predictions, and attribute logits to parts.

- :func:`logit_lens`: each layer's residual stream through the model's final norm and
  unembedding (top-k tokens, the answer's rank trajectory, KL to the final layer);
- :func:`tuned_lens`: the same through a tuned lens's per-layer translators (the
  ``tuned-lens`` package's ``TunedLens``: loaded from a published checkpoint folder, or trained
  with :func:`train_tuned_lens`);
- :func:`dla`: direct logit attribution: each embedding, attention head, attention bias and MLP's
  direct contribution to a logit difference, the final norm's scale frozen from the run, so the
  components sum to the model's own logit difference.

Every family the adapters know (GPT-2, GPT-NeoX/Pythia, Llama-family) works, dispatched (with
offload) and nnsight-wrapped models included; the parts come from
:func:`~interp_magics.core.anatomy.anatomy`.

The package, one job a module:

- :mod:`.inputs`: checked model, batch, layers and answers (errors before work);
- :mod:`.readout`: the model's final norm and unembedding, and the norm with a frozen scale;
- :mod:`.engine`: one capture of the residual streams, decoded one layer at a time;
- :mod:`.logit`: :func:`logit_lens`;
- :mod:`.tuned`: :func:`tuned_lens`, building and loading ``TunedLens`` objects;
- :mod:`.training`: :func:`train_tuned_lens`;
- :mod:`.result`: :class:`LensResult`;
- :mod:`.components`: the residual stream split into embeddings, heads, biases and MLPs;
- :mod:`.dla`: :func:`dla`; :mod:`.dla_result`: :class:`DLAResult`;
- :mod:`.plots`: the static pictures.
"""

from __future__ import annotations

from .dla import dla
from .dla_result import DLAResult
from .inputs import LensError
from .logit import logit_lens
from .result import LensResult
from .training import train_tuned_lens
from .tuned import load_tuned_lens, new_tuned_lens, tuned_lens

__all__ = [
    "DLAResult",
    "LensError",
    "LensResult",
    "dla",
    "load_tuned_lens",
    "logit_lens",
    "new_tuned_lens",
    "train_tuned_lens",
    "tuned_lens",
]
