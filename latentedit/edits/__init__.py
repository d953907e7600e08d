"""Latent edits learnt by optimal transport (Doubinsky et al., "Wasserstein Loss for Semantic Editing in the Latent
Space of GANs", 2023 — method LW).

- ``sinkhorn``: the debiased Sinkhorn divergence between latent clouds (the Wasserstein loss) and the
  attribute-preservation loss with the attribute-weighted ground cost.
- ``weights``: per-code weights that balance the other attributes' combinations between source and target.
- ``affine``: the edit z' = z + α·H_k(z) with H_k affine (full, or block-diagonal per W+ layer).
- ``lw``: LW training (Adam, minibatch OT, early stopping on a held-out split).
- ``lt``, ``interfacegan``: the Latent Transformer and InterFaceGAN baselines.
- ``methods``: the method registry (one entry per method: trainer, config section, inputs, plot label).
- ``definitions``: edit definitions — which codes an edit takes where — and their checks.
- ``model``: the edit-model file (save, load, apply); what rendering and evaluation import.
- ``train``: one edit model per (method, edit definition) — code selection, dispatch to the method's trainer
  (``rules/train.smk``).
- ``evaluate``: target-change rate and preservation of edits in latent space (rule ``edits_latent_summary``).
"""

# Import the modules themselves (``from latentedit.edits.lw import train_lw``): this package re-exports nothing, so
# importing one module (e.g. ``model`` in a rendering job) does not load the others (GeomLoss, scikit-learn).
