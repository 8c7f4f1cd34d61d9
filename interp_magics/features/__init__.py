"""Sparse-autoencoder features as sites: splice, train, ablate, attribute, browse.

An SAE (or transcoder) from sae-lens is spliced into a model's forward without changing the
model: its feature activations become a site, ``sae:resid_post.1`` (``[batch, pos,
n_features]``), that captures, probes, interventions and hooks use like any module, and the
SAE's reconstruction error is kept, so the spliced model computes what the model computes.

- :func:`attach_sae`, :func:`detach_sae`, :func:`spliced`: splice an SAE in at a site
  (:class:`FeatureSite`); :class:`FeatureSplice` is the spliced module;
- :func:`load_sae`: a saved SAE folder, or a published sae-lens release when online;
- :func:`train_sae`: a small SAE trained offline on one site (:class:`TrainingReport`);
- :func:`ablate_features`: each feature's effect on a metric when zeroed (or set to its mean),
  with t-intervals and corrected tests (:class:`FeatureEffects`);
- :func:`attribute`: every feature's effect to first order (gradient x activation) from one
  forward and one backward, optionally checked by exact ablation;
- :func:`dashboard_data`: the data a feature dashboard shows (:class:`FeatureSet`).

sae-lens (``pip install "interp-magics[features]"``) is imported only when an SAE is loaded or
trained; attaching takes any SAE object already built.

The package, one job a module:

- :mod:`.inputs`: checked data batches and feature indices; :class:`FeatureError`;
- :mod:`.splice`: :class:`FeatureSplice` (encode, expose, decode, add the error);
- :mod:`.sites`: attaching SAEs at sites, width and compatibility checks;
- :mod:`.load`: sae-lens loading; :mod:`.train`: training;
- :mod:`.runs`: the unedited and feature-edited runs (patching's runner);
- :mod:`.effects`: :func:`ablate_features`; :mod:`.attribution`: :func:`attribute`;
- :mod:`.result`: :class:`FeatureEffects`; :mod:`.dashboard_data`: :class:`FeatureSet`, from
  the streaming passes of :mod:`.passes`;
- :mod:`.plots`: the static pictures.
"""

from __future__ import annotations

from .attribution import attribute
from .dashboard_data import FeatureExamples, FeatureSet, dashboard_data
from .effects import ablate_features
from .inputs import FeatureError
from .load import load_sae
from .result import FeatureEffects
from .sites import FeatureSite, attach_sae, detach_sae, spliced
from .splice import FeatureSplice
from .train import TrainingReport, train_sae

__all__ = [
    "FeatureEffects",
    "FeatureError",
    "FeatureExamples",
    "FeatureSet",
    "FeatureSite",
    "FeatureSplice",
    "TrainingReport",
    "ablate_features",
    "attach_sae",
    "attribute",
    "dashboard_data",
    "detach_sae",
    "load_sae",
    "spliced",
    "train_sae",
]
