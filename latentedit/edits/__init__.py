"""Latent edits learnt by optimal transport (Doubinsky et al., "Wasserstein Loss for Semantic Editing in the Latent
Space of GANs", 2023 — method LW).

- ``sinkhorn``: the debiased Sinkhorn divergence between latent clouds (the Wasserstein loss) and the
  attribute-preservation loss with the attribute-weighted ground cost.
- ``weights``: per-code weights that balance the other attributes' combinations between source and target.
- ``affine``: the edit z' = z + α·H_k(z) with H_k affine (full, or block-diagonal per W+ layer).
- ``lw``: the LW training loop (Adam, minibatch OT, early stopping on a held-out split).
- ``lt``, ``interfacegan``: the Latent Transformer and InterFaceGAN baselines.
- ``train``: one edit model per (method, edit definition) — code selection, weights, dispatch (``rules/train.smk``).
- ``evaluate``: target-change rate and preservation of edits in latent space (rule ``edits_latent_summary``).
"""

from latentedit.edits.affine import AffineEdit
from latentedit.edits.lw import LWConfig, train_lw
from latentedit.edits.sinkhorn import (attribute_cost_loss, attribute_cost_matrix, default_blur,
                                       preservation_weights, sinkhorn_loss)
from latentedit.edits.weights import balanced_weights, combination_counts

__all__ = ["AffineEdit", "LWConfig", "attribute_cost_loss", "attribute_cost_matrix", "balanced_weights",
           "combination_counts", "default_blur", "preservation_weights", "sinkhorn_loss", "train_lw"]
