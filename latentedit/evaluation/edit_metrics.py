"""Image-space and latent-space metrics of one rendered (method, edit), as long-format rows.

For the rendered test images x_n (input), their reconstructions r_n = G(z_n) (α = 0) and edits
e_n(α) = G(z_n + α·H(z_n)),
with the image oracle's attribute predictions P(·) > 0.5 and its embedding φ(·) (digits: the per-slot features
of the slot classifier, concatenated):

==================================  ==========================================================================
metric                              value at one α
==================================  ==========================================================================
``target_change_rate``              mean_n 1[ pred_k(e_n) = t ] — k the edited attribute, t its target label
``attribute_preservation``          mean over kept attributes l of mean_n 1[ pred_l(e_n) = pred_l(r_n) ]
``attribute_preservation_input``    the same against the input image, pred_l(x_n) (includes inversion error)
``identity``                        mean_n cos(φ(e_n), φ(r_n))
``identity_input``                  mean_n cos(φ(e_n), φ(x_n))
``latent_target_change_rate``       mean_n 1[ 1[F_k(z'_n) > 0] = t ] — the latent classifier on the edited codes
``latent_attribute_preservation``   mean over kept l of mean_n 1[ 1[F_l(z'_n) > 0] = 1[F_l(z_n) > 0] ]
``attribute_agreement``             per kept attribute l (``attribute`` column = l): mean_n 1[pred_l(e_n) = pred_l(r_n)]
==================================  ==========================================================================

"Kept" attributes are those the edit definition does not name (source or target). Preservation and identity are
measured against the reconstruction by default, so they judge the edit and not the inversion; the ``_input``
variants include the inversion error (at α = 0 they are the inversion quality itself).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from latentedit.edits.definitions import changed_attributes

def _cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise cosine similarity of (N, F) arrays (0 where a row is all zero)."""
    num = (a * b).sum(1)
    den = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    return np.divide(num, den, out=np.zeros_like(num), where=den > 0)


def edit_metric_rows(*, method: str, edit: str, definition: Mapping, attribute_names: Sequence[str],
                     alphas: Sequence[float], edited_probs: np.ndarray, edited_embeddings: np.ndarray,
                     input_probs: np.ndarray, input_embeddings: np.ndarray, latent_logits: np.ndarray) -> pd.DataFrame:
    """Long-format metrics of one (method, edit) at every α.

    Parameters
    ----------
    method, edit : str
    definition : mapping
        The edit definition (``source``, ``target``, ``attribute``).
    attribute_names : sequence of str
        Column order of the oracle's probabilities and of the latent logits (the store's attributes).
    alphas : sequence of float, length A
        ``alphas[0]`` must be 0 (the reconstruction, the reference of preservation and identity).
    edited_probs : ndarray, shape (A, N, L)
        Oracle attribute probabilities of the rendered images.
    edited_embeddings : ndarray, shape (A, N, F)
        Oracle embeddings of the rendered images.
    input_probs, input_embeddings : ndarray, shapes (N, L), (N, F)
        The same for the input (real test) images.
    latent_logits : ndarray, shape (A, N, L)
        Latent-classifier logits of the edited codes.

    Returns
    -------
    DataFrame with columns method, edit, attribute, alpha, metric, value (``attribute`` is the edited attribute,
    or the kept attribute for ``attribute_agreement`` rows).
    """
    names = list(attribute_names)
    alphas = [float(a) for a in alphas]
    if not alphas or alphas[0] != 0.0:
        raise ValueError("alphas[0] must be 0 (the reconstruction is the reference)")
    a_n, n, l_n = edited_probs.shape
    if len(alphas) != a_n or latent_logits.shape != (a_n, n, l_n) or edited_embeddings.shape[:2] != (a_n, n):
        raise ValueError(f"shapes disagree: {len(alphas)} alphas, probs {edited_probs.shape}, logits "
                         f"{latent_logits.shape}, embeddings {edited_embeddings.shape}")
    if input_probs.shape != (n, l_n) or input_embeddings.shape[0] != n or len(names) != l_n:
        raise ValueError(f"input predictions {input_probs.shape} / {input_embeddings.shape} do not match {n} "
                         f"images of {l_n} attributes ({len(names)} names)")
    k = names.index(definition["attribute"])
    t = int(definition["target"][definition["attribute"]])
    changed = set(changed_attributes(definition))
    kept = [i for i, a in enumerate(names) if a not in changed]

    pred = edited_probs > 0.5  # (A, N, L)
    pred_in = input_probs > 0.5  # (N, L)
    latent = latent_logits > 0
    rows = []

    def add(alpha, metric, value, attribute=definition["attribute"]):
        rows.append({"method": method, "edit": edit, "attribute": attribute, "alpha": alpha, "metric": metric,
                     "value": float(value)})

    for a, alpha in enumerate(alphas):
        agree = (pred[a] == pred[0]).mean(0)  # (L,)
        add(alpha, "target_change_rate", (pred[a][:, k] == t).mean())
        add(alpha, "latent_target_change_rate", (latent[a][:, k] == t).mean())
        if kept:
            add(alpha, "attribute_preservation", agree[kept].mean())
            add(alpha, "attribute_preservation_input", (pred[a] == pred_in).mean(0)[kept].mean())
            add(alpha, "latent_attribute_preservation", (latent[a] == latent[0]).mean(0)[kept].mean())
            for i in kept:
                add(alpha, "attribute_agreement", agree[i], attribute=names[i])
        add(alpha, "identity", _cosine(edited_embeddings[a], edited_embeddings[0]).mean())
        add(alpha, "identity_input", _cosine(edited_embeddings[a], input_embeddings).mean())
    return pd.DataFrame(rows, columns=["method", "edit", "attribute", "alpha", "metric", "value"])
