"""Edit definitions: which codes an edit takes (source) to what (target), and the attribute that carries it.

An **edit definition** says which codes are edited and what they should become::

    {"source": {"count_1": 1}, "target": {"count_2": 1}, "attribute": "count_2", "lambda_pres": 1.0}

- ``source`` / ``target``: attribute → label (0/1); a code belongs to a side when *all* its labels match. Source
  codes of the training split are edited, target codes of the training split are where they should land; the
  validation split's codes drive early stopping. Attributes named nowhere are free on both sides.
- ``attribute``: the attribute k that carries the edit — the latent classifier output pushed by LT, the output
  whose change the latent-space evaluation measures — and must appear in ``target`` (``target_value`` is its
  label there: 1 adds the attribute, 0 removes it).
- ``lambda_pres``: weight λ of LW's attribute-preservation loss (optional, 0 when absent). Only the methods whose
  registry entry says ``uses_lambda_pres`` (:mod:`latentedit.edits.methods`: ``lw``, ``lw_wstar``) read it, so the
  workflow hands it to their jobs alone and changing it reruns nothing else (``lw_nopres`` forces 0; LT has its own
  ``lambda_pres`` option).

**Changed attributes.** Every attribute named in ``source``, ``target`` or ``attribute`` is *expected* to change
(count_1 → count_2 turns count_1 off as it turns count_2 on). They are left out of the balanced weights, and their
correlation with k is set to γ = 1 in the row handed to LW and LT, so both preservation losses give them weight 0
(LW: w_l = 1 − γ_lk; LT: m_l = 1 − |γ_lk|). Only the other attributes are preserved.

**Direction.** An edit model goes one way. "Remove k" is the reverse edit, defined by swapping ``source`` and
``target`` in a second definition (e.g. ``{source: {has_7: 1}, target: {has_7: 0}, attribute: has_7}``); it is a
separate model trained from its own codes, not the negated "add" model.

Only NumPy is imported here: the workflow checks definitions with :func:`check_definition` while it parses.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np


def changed_attributes(definition: Mapping) -> list[str]:
    """Attributes a definition expects to change: the keys of ``source`` and ``target`` and ``attribute``."""
    names = [*definition["source"], *definition["target"], definition["attribute"]]
    return list(dict.fromkeys(names))


def check_definition(definition: Mapping, attribute_names: Sequence[str], name: str = "edit") -> None:
    """Raise ValueError naming the edit and key when a definition refers to unknown attributes or is inconsistent.

    Parameters
    ----------
    definition : mapping
        ``{"source": {attr: 0/1}, "target": {attr: 0/1}, "attribute": str, "lambda_pres": float}``.
    attribute_names : sequence of str
        The attributes of the latent store (digits: ``count_1..count_<max_digits>``, ``has_0..has_9``).
    name : str
        The edit's name, used in messages (the workflow passes ``edits.definitions.<edit>``).
    """
    known = set(attribute_names)
    listing = ", ".join(attribute_names)
    for side in ("source", "target"):
        sel = definition.get(side)
        if not isinstance(sel, Mapping) or not sel:
            raise ValueError(f"{name}.{side}: must map at least one attribute to 0 or 1")
        for attr, value in sel.items():
            if attr not in known:
                raise ValueError(f"{name}.{side}: unknown attribute {attr!r} (known: {listing})")
            if value not in (0, 1) or isinstance(value, float):
                raise ValueError(f"{name}.{side}.{attr}: label must be 0 or 1, got {value!r}")
    k = definition.get("attribute")
    if k not in known:
        raise ValueError(f"{name}.attribute: unknown attribute {k!r} (known: {listing})")
    if k not in definition["target"]:
        raise ValueError(f"{name}.attribute: {k!r} must be one of the target's attributes "
                         f"{sorted(definition['target'])}")
    if definition["source"].get(k, 1 - definition["target"][k]) == definition["target"][k]:
        raise ValueError(f"{name}.attribute: source and target both require {k}={definition['target'][k]}, so "
                         "there is nothing to edit")
    if float(definition.get("lambda_pres", 0.0)) < 0:
        raise ValueError(f"{name}.lambda_pres: must be ≥ 0, got {definition['lambda_pres']}")


def normalised_definition(definition: Mapping) -> dict:
    """The definition with int labels and a float ``lambda_pres`` (kept only when given)."""
    out = {"source": {a: int(v) for a, v in definition["source"].items()},
           "target": {a: int(v) for a, v in definition["target"].items()}, "attribute": definition["attribute"]}
    if "lambda_pres" in definition:
        out["lambda_pres"] = float(definition["lambda_pres"])
    return out


def selection_mask(attributes: np.ndarray, attribute_names: Sequence[str], selection: Mapping[str, int]) -> np.ndarray:
    """Rows whose labels match every ``attribute: label`` of ``selection``: (N, A) labels → (N,) bool."""
    mask = np.ones(len(attributes), dtype=bool)
    for attr, value in selection.items():
        mask &= np.asarray(attributes)[:, list(attribute_names).index(attr)] == int(value)
    return mask


def split_selection_mask(store, selection: Mapping[str, int], split: str) -> np.ndarray:
    """(N,) bool: the ``split`` rows of a latent store that match ``selection``."""
    return (np.asarray(store.split) == split) & selection_mask(store.attributes, store.attribute_names, selection)


def select_codes(store, selection: Mapping[str, int], split: str) -> tuple[np.ndarray, np.ndarray]:
    """(codes (n, *S), labels (n, A)) of the ``split`` codes of a latent store that match ``selection``."""
    mask = split_selection_mask(store, selection, split)
    return store.latents[mask], store.attributes[mask]
