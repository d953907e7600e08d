"""Attribute labels in latent space: how attributes co-occur, and classifiers that read them from latent codes.

- ``correlations``: the absolute correlation matrix γ between binary attributes (phi coefficients); the
  preservation weights derived from it are LW's (:func:`latentedit.edits.sinkhorn.preservation_weights`) and LT's
  (:func:`latentedit.edits.lt.lt_preservation_mask`).
- ``classifiers``: the latent classifier F (one MLP, one logit per attribute) used by the LW preservation loss,
  the Latent Transformer baseline and the evaluation of edits in latent space.
"""
