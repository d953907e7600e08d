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
``rescoring``                       per attribute l (all of them): mean_n P_l(e_n) − P_l(r_n), the change of every
                                    attribute's judged probability (InterFaceGAN/SeFa's re-scoring analysis)
``slots_kept``                      judges that read image parts (digits: the slot oracle's class per slot, a digit
                                    or empty): mean_n 1[ every slot occupied in r_n holds the same digit in e_n ]
                                    — the existing digits kept, unchanged and in place
``clean_edit_rate``                 mean_n 1[ pred_k(e_n) = t and slots_kept_n ]: the target reached with the
                                    existing digits kept (for "add one digit": exactly one new digit, the others
                                    untouched — what issue 13's edit grid asks to see)
==================================  ==========================================================================

Beside them, ``latent_sinkhorn_to_target`` (per α: the Sinkhorn divergence of the edited test codes to the test
target codes, measured at rendering), ``latent_sinkhorn_floor`` (α NaN: the same divergence for real target codes of
the validation split, mean over draws with the normal interval of the draws — the edit's floor,
:mod:`latentedit.evaluation.latent_distance`) and the realism rows of :mod:`latentedit.evaluation.realism`.

Each of the metrics in the table is a mean over the N images of a per-image value, so each row carries its 95 %
percentile-bootstrap interval over images (``ci_low``, ``ci_high``; :mod:`latentedit.evaluation.uncertainty`).

"Kept" attributes are those the edit definition does not name (source or target). Preservation and identity are
measured against the reconstruction by default, so they judge the edit and not the inversion; the ``_input``
variants include the inversion error (at α = 0 they are the inversion quality itself).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from latentedit.edits.definitions import changed_attributes
from latentedit.evaluation.uncertainty import N_BOOTSTRAP, bootstrap_counts, bootstrap_mean_interval


ROW_COLUMNS = ["method", "edit", "attribute", "alpha", "metric", "value", "ci_low", "ci_high"]


def _cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise cosine similarity of (..., N, F) arrays (0 where a row is all zero)."""
    num = (a * b).sum(-1)
    den = np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1)
    return np.divide(num, den, out=np.zeros_like(num), where=den > 0)


def edit_metric_rows(*, method: str, edit: str, definition: Mapping, attribute_names: Sequence[str],
                     alphas: Sequence[float], edited_probs: np.ndarray, edited_embeddings: np.ndarray,
                     input_probs: np.ndarray, input_embeddings: np.ndarray, latent_logits: np.ndarray,
                     edited_slots: np.ndarray | None = None, empty_slot: int | None = None,
                     n_boot: int = N_BOOTSTRAP, seed: int = 0) -> pd.DataFrame:
    """Long-format metrics of one (method, edit) at every α, each with its 95 % bootstrap interval over images.

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
    edited_slots : ndarray of int, shape (A, N, S), optional
        The judge's class of each image part (digits: slot), for ``slots_kept`` and ``clean_edit_rate``; None (faces):
        those rows are not written.
    empty_slot : int, optional
        The class of an empty part (required with ``edited_slots``).
    n_boot, seed : int
        Bootstrap resamples of the N images and their seed (:mod:`latentedit.evaluation.uncertainty`).

    Returns
    -------
    DataFrame with columns :data:`ROW_COLUMNS` (``attribute`` is the edited attribute, or the scored attribute for
    ``attribute_agreement`` and ``rescoring`` rows; ``ci_low``/``ci_high`` the 95 % percentile-bootstrap interval).
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
    # Per-image values (A, N) of every metric that is a mean over images (module docstring table)
    per_image = {"target_change_rate": pred[:, :, k] == t, "latent_target_change_rate": latent[:, :, k] == t}
    if kept:
        per_image["attribute_preservation"] = (pred == pred[:1])[:, :, kept].mean(-1)
        per_image["attribute_preservation_input"] = (pred == pred_in[None])[:, :, kept].mean(-1)
        per_image["latent_attribute_preservation"] = (latent == latent[:1])[:, :, kept].mean(-1)
    if edited_slots is not None:
        if edited_slots.shape[:2] != (a_n, n) or empty_slot is None:
            raise ValueError(f"edited_slots {edited_slots.shape} must be ({a_n}, {n}, S), with empty_slot")
        occupied = edited_slots[:1] != empty_slot  # (1, N, S): the reconstruction's digits
        kept_slots = ((edited_slots == edited_slots[:1]) | ~occupied).all(-1)  # (A, N)
        per_image["slots_kept"] = kept_slots
        per_image["clean_edit_rate"] = per_image["target_change_rate"] & kept_slots
    per_image["identity"] = _cosine(edited_embeddings, edited_embeddings[:1])
    per_image["identity_input"] = _cosine(edited_embeddings, input_embeddings[None])
    # Per-attribute values (A, N, L): agreement with the reconstruction (kept attributes) and the rescoring matrix's
    # change of every attribute's judged probability
    per_attribute = {"attribute_agreement": (pred == pred[:1]).astype(np.float64),
                     "rescoring": edited_probs.astype(np.float64) - edited_probs[:1]}
    counts = bootstrap_counts(n, n_boot, seed)

    rows = []
    for metric, v in per_image.items():
        v = v.astype(np.float64)
        low, high = bootstrap_mean_interval(v, counts, axis=1)
        for a, alpha in enumerate(alphas):
            rows.append((method, edit, definition["attribute"], alpha, metric, v[a].mean(), low[a], high[a]))
    for metric, v in per_attribute.items():
        low, high = bootstrap_mean_interval(v, counts, axis=1)  # (A, L)
        mean = v.mean(1)
        for a, alpha in enumerate(alphas):
            for i in kept if metric == "attribute_agreement" else range(l_n):
                rows.append((method, edit, names[i], alpha, metric, mean[a, i], low[a, i], high[a, i]))
    df = pd.DataFrame(rows, columns=ROW_COLUMNS)
    for col in ("value", "ci_low", "ci_high"):
        df[col] = df[col].astype("float64")
    return df


def latent_distance_rows(*, method: str, edit: str, attribute: str, alphas: Sequence[float],
                         latent_sinkhorn: Mapping) -> pd.DataFrame:
    """``latent_sinkhorn_to_target`` rows, one per α of the render store's grid ``alphas``: the Sinkhorn divergence
    between the edited test source codes and the test target codes that rendering measured
    (:func:`latentedit.evaluation.latent_distance.sinkhorn_to_target`; the render store's ``latent_sinkhorn`` attr).
    No interval: it compares two whole clouds. With a measured floor (``latent_sinkhorn["floor"]``), one more row,
    ``latent_sinkhorn_floor`` at α NaN: the mean of the draws, interval mean ± 1.96·std of the draws (where a real
    sample of this size lands)."""
    measured = np.asarray(latent_sinkhorn["alphas"], dtype=np.float64)
    if measured.shape != (len(alphas),) or not np.allclose(measured, np.asarray(alphas, dtype=np.float64)):
        raise ValueError(f"{method}/{edit}: the latent distance was measured at α {measured.tolist()}, the render "
                         f"grid is {list(alphas)}")
    rows = [(method, edit, attribute, float(a), "latent_sinkhorn_to_target", float(v), float("nan"), float("nan"))
            for a, v in zip(alphas, latent_sinkhorn["values"])]
    floor = np.asarray(latent_sinkhorn.get("floor", []), dtype=np.float64)
    if len(floor):
        mean, half = float(floor.mean()), 1.96 * float(floor.std(ddof=1)) if len(floor) > 1 else float("nan")
        rows.append((method, edit, attribute, float("nan"), "latent_sinkhorn_floor", mean, mean - half, mean + half))
    return pd.DataFrame(rows, columns=ROW_COLUMNS).astype({c: "float64" for c in ("value", "ci_low", "ci_high")})
