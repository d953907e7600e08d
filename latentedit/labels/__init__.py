"""Attribute labels in latent space: how attributes co-occur, and classifiers that read them from latent codes.

- ``correlations``: the absolute correlation matrix γ between binary attributes (phi coefficients) and the
  attribute-preservation weights 1 − γ_lk derived from it.
- ``classifiers``: the latent classifier F (one MLP, one logit per attribute) used by the LW preservation loss,
  the Latent Transformer baseline and the evaluation of edits in latent space.
"""

from latentedit.labels.classifiers import (ClassifierConfig, LatentClassifier, evaluate_classifiers,
                                           load_latent_classifiers, predict_logits, save_latent_classifiers,
                                           train_latent_classifiers)
from latentedit.labels.correlations import (correlation_matrix, preservation_weights, read_correlations,
                                            write_correlations)

__all__ = ["ClassifierConfig", "LatentClassifier", "correlation_matrix", "evaluate_classifiers",
           "load_latent_classifiers", "predict_logits", "preservation_weights", "read_correlations",
           "save_latent_classifiers", "train_latent_classifiers", "write_correlations"]
