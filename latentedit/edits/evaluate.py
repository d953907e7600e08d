"""Edits judged in latent space by the latent classifier F (rule ``edits_latent_summary``).

For one edit model and the **test-split source codes** z of its definition (:mod:`latentedit.edits.definitions`):

    target_change_rate = mean_n 1[ 1[σ(F_k(z'_n)) > 0.5] = t ],      z' = edited z, t = target label of k,
    preservation       = mean_{l ∉ changed} mean_n 1[ 1[F_l(z'_n) > 0] = 1[F_l(z_n) > 0] ],

i.e. the fraction of edited codes the classifier reads as carrying the target label of the edited attribute k
(for an "add" edit: F_k(z') > 0.5), and the mean over the attributes the definition does not name of the fraction
of codes whose predicted label the edit leaves unchanged. ``initial_rate`` is the target-change rate of the
unedited codes (what the classifier already reads as edited), ``mean_edit_norm`` the mean ‖z' − z‖₂.

**Edit strength α.** LW and LT are applied at α = 1, the strength they were trained at. An InterFaceGAN direction
has no natural step, so for a fair comparison it moves every code by the same distance as LW does on average:
α_IFG = the mean ‖z' − z‖ of the ``lw`` model of the same edit (``lw_nopres`` when there is no ``lw``), or
``ifg_alpha`` (config ``edits.ifg.alpha``) when neither was trained (or both kept the identity edit, norm 0).
The ``alpha_source`` column says which.

These are latent-space proxies (the classifier was trained on encoded real images, not on edited codes); the image
oracle judges the rendered edits in a later stage.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import torch

from latentedit.edits.definitions import changed_attributes, select_codes
from latentedit.edits.methods import direction_step_references
from latentedit.edits.model import apply_edit
from latentedit.labels.classifiers import predict_logits

COLUMNS = ["method", "edit", "attribute", "target_value", "n_test_source", "alpha", "alpha_source",
           "initial_rate", "target_change_rate", "preservation", "min_preservation", "mean_edit_norm"]


def latent_edit_metrics(model: Mapping, store, classifier, alpha: float | None = None,
                        split: str = "test") -> dict:
    """Target-change rate and preservation of one edit model on the ``split`` source codes of its definition.

    Parameters
    ----------
    model : mapping
        Edit model (:mod:`latentedit.edits.model`).
    store : LatentStore
        Codes and labels; the model's ``attribute_names`` must match the store's.
    classifier : LatentClassifier
        F, one logit per store attribute.
    alpha : float, optional
        Edit strength (None: 1 for LW/LT; required for InterFaceGAN).
    split : str
        Whose source codes are edited (default ``test``).

    Returns
    -------
    dict
        ``n_test_source``, ``alpha``, ``initial_rate``, ``target_change_rate``, ``preservation`` (mean over the
        preserved attributes), ``min_preservation``, ``mean_edit_norm`` (NaN rates when there is no source code) and
        ``per_attribute_preservation`` {name: rate}.
    """
    names = list(store.attribute_names)
    if list(model["attribute_names"]) != names:
        raise ValueError(f"edit {model['method']}/{model['edit']} was trained on attributes "
                         f"{list(model['attribute_names'])}, the store has {names}")
    definition = model["definition"]
    k, t = names.index(definition["attribute"]), int(model["target_value"])
    kept = [l for l, a in enumerate(names) if a not in set(changed_attributes(definition))]
    if alpha is None:
        alpha = 1.0 if model["type"] == "affine" else None
    z_np, _ = select_codes(store, definition["source"], split)
    out = {"n_test_source": int(len(z_np)), "alpha": float("nan") if alpha is None else float(alpha)}
    if len(z_np) == 0:
        nan = float("nan")
        return {**out, "initial_rate": nan, "target_change_rate": nan, "preservation": nan, "min_preservation": nan,
                "mean_edit_norm": nan, "per_attribute_preservation": {names[l]: nan for l in kept}}
    z = torch.as_tensor(z_np, dtype=torch.float32)
    edited = apply_edit(model, z, alpha)
    before = (predict_logits(classifier, z) > 0).numpy()  # (n, A): σ(F) > 0.5
    after = (predict_logits(classifier, edited) > 0).numpy()
    same = (before == after).mean(0)  # (A,)
    per_attr = {names[l]: float(same[l]) for l in kept}
    norm = torch.linalg.vector_norm((edited - z).reshape(len(z), -1), dim=1)  # (n,)
    return {**out, "initial_rate": float((before[:, k] == t).mean()),
            "target_change_rate": float((after[:, k] == t).mean()),
            "preservation": float(np.mean(list(per_attr.values()))) if per_attr else float("nan"),
            "min_preservation": float(min(per_attr.values())) if per_attr else float("nan"),
            "mean_edit_norm": float(norm.mean()), "per_attribute_preservation": per_attr}


def summarize_edits(models: Sequence[Mapping], store, classifier, ifg_alpha: float,
                    split: str = "test") -> pd.DataFrame:
    """One row per edit model (columns :data:`COLUMNS`), InterFaceGAN's α matched to LW's mean edit norm.

    Parameters
    ----------
    models : sequence of mappings
        Edit models of any methods and edits.
    store, classifier
        As :func:`latent_edit_metrics`.
    ifg_alpha : float
        InterFaceGAN's α for edits with no LW model (``edits.ifg.alpha``).
    split : str
        Split whose source codes are edited.

    Returns
    -------
    DataFrame
        Sorted by edit then method.
    """
    rows, lw_norm = {}, {}
    references = direction_step_references()  # lw, then lw_nopres (methods.Method.sets_direction_step)
    for model in sorted(models, key=lambda m: m["type"] == "direction"):  # affine edits first: they set α_IFG
        key = (model["method"], model["edit"])
        if key in rows:
            raise ValueError(f"two edit models for method {key[0]}, edit {key[1]}")
        source = "trained (1)"
        alpha = None
        if model["type"] == "direction":
            ref = next((m for m in references if (m, model["edit"]) in lw_norm), None)
            alpha = lw_norm[ref, model["edit"]] if ref else float(ifg_alpha)
            source = f"{ref} mean edit norm" if ref else "edits.ifg.alpha"
        metrics = latent_edit_metrics(model, store, classifier, alpha, split)
        if model["method"] in references and metrics["mean_edit_norm"] > 0:  # NaN (no code) and 0 (identity) fail
            lw_norm[key] = metrics["mean_edit_norm"]
        rows[key] = {"method": model["method"], "edit": model["edit"], "attribute": model["attribute"],
                     "target_value": int(model["target_value"]), "alpha_source": source,
                     **{c: metrics[c] for c in COLUMNS if c in metrics}}
    df = pd.DataFrame(list(rows.values()), columns=COLUMNS)
    return df.sort_values(["edit", "method"], kind="stable").reset_index(drop=True)
