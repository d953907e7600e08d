"""One edit model per (method, edit definition): select the codes a definition names, then train LW, LT or
InterFaceGAN on them (the library entry point of ``rules/train.smk``).

An **edit definition** says which codes are edited and what they should become::

    {"source": {"count_1": 1}, "target": {"count_2": 1}, "attribute": "count_2", "lambda_pres": 1.0}

- ``source`` / ``target``: attribute → label (0/1); a code belongs to a side when *all* its labels match. Source
  codes of the training split are edited, target codes of the training split are where they should land; the
  validation split's codes drive early stopping. Attributes named nowhere are free on both sides.
- ``attribute``: the attribute k that carries the edit — the latent classifier output pushed by LT, the output
  whose change the latent-space evaluation measures — and must appear in ``target`` (``target_value`` is its
  label there: 1 adds the attribute, 0 removes it).
- ``lambda_pres``: weight λ of LW's attribute-preservation loss (optional, 0 when absent; read by method ``lw``
  only: ``lw_nopres`` forces 0 and LT has its own ``lambda_pres`` option, so the workflow hands it to the ``lw``
  jobs alone and changing it reruns nothing else).

**Changed attributes.** Every attribute named in ``source``, ``target`` or ``attribute`` is *expected* to change
(count_1 → count_2 turns count_1 off as it turns count_2 on). They are left out of the balanced weights, and their
correlation with k is set to γ = 1 in the row handed to LW and LT, so both preservation losses give them weight 0
(LW: w_l = 1 − γ_lk; LT: m_l = 1 − |γ_lk|). Only the other attributes are preserved.

**Direction.** An edit model goes one way. "Remove k" is the reverse edit, defined by swapping ``source`` and
``target`` in a second definition (e.g. ``{source: {has_7: 1}, target: {has_7: 0}, attribute: has_7}``); it is a
separate model trained from its own codes, not the negated "add" model.

**Methods.**

- ``lw`` / ``lw_nopres``: :func:`latentedit.edits.lw.train_lw` on source → target codes, with the balanced
  weights of :func:`latentedit.edits.weights.balanced_weights` over ``weight_attributes`` (minus the changed
  attributes) when ``weighting`` is on; λ from the definition (``lw``) or 0 (``lw_nopres``).
- ``lt`` / ``lt_core``: :func:`latentedit.edits.lt.train_lt` on the source codes towards ``target_value`` of k, with
  the frozen latent classifier; ``lt_core`` is LT(*), the classification loss only.
- ``ifg``: :func:`latentedit.edits.interfacegan.fit_direction` with the target codes as positives and the source
  codes as negatives, so the unit normal n points from source to target and z' = z + α·n with α > 0 performs the
  edit. It has no step size of its own: α is chosen at evaluation.
- ``ifg_wstar``: InterFaceGAN inside W* (:mod:`latentedit.wstar`): the SVM normal n is fitted on T(z), and the
  edit is z' = T⁻¹(T(z) + α·n) (α in W* units).
- ``lw_wstar``: LW with its Wasserstein cost in W*: LW is trained on the clouds T(source) → T(target), so the OT
  ground cost is ½‖T(x) − T(y)‖², with an affine H in W*, and the edit is z' = T⁻¹(T(z) + α·H(T(z))). L_pres reads
  the original-space latent classifier through T⁻¹ (F ∘ T⁻¹). Editing in W* (rather than keeping H in the
  original space with the cost ½‖T(x) − T(y)‖²) reuses the debiased Sinkhorn loss unchanged — the other variant
  needs a non-Euclidean cost matrix, i.e. GeomLoss's custom-cost path and a fresh blur rule — and puts the
  affine inductive bias of H where attributes are (made) linear.

Both W* methods store a copy of T (``wstar``: spec + state dict) inside the edit model, so :func:`apply_edit`,
rendering and every metric handle them with no extra input.

The returned model is a plain dict (tensors, str, float, int, list, dict, None) that loads with
``torch.load(weights_only=True)``; :func:`apply_edit` applies it to codes.
"""

from __future__ import annotations

import inspect
import logging
import math
from collections.abc import Mapping, Sequence

import numpy as np
import torch

from latentedit import __version__
from latentedit.edits.affine import AffineEdit
from latentedit.edits.lt import LTConfig, train_lt
from latentedit.edits.lw import LWConfig, train_lw
from latentedit.edits.weights import balanced_weights

log = logging.getLogger(__name__)

METHODS = ("lw", "lw_nopres", "lt", "lt_core", "ifg", "lw_wstar", "ifg_wstar")
USES_CLASSIFIER = ("lw", "lt", "lt_core", "lw_wstar")  # methods that read the latent classifier F and the correlations γ
LW_EXTRA_OPTIONS = ("weighting", "weight_min_count")  # LW options handled here, not by LWConfig
IFG_OPTIONS = ("C", "max_samples", "balance", "solver", "seed")

# Columns of each method's history worth a curve (rows are epochs; InterFaceGAN has a single row).
HISTORY_PLOT_COLUMNS = {
    "lw": ["train_wasserstein", "val_wasserstein", "train_preservation", "val_preservation", "train_edit_loss",
           "val_edit_loss"],
    "lt": ["train_classification", "val_classification", "train_preservation", "val_preservation",
           "train_regularisation", "val_regularisation", "train_total", "val_total", "val_success"],
    "ifg": ["train_accuracy", "val_accuracy"],
}
HISTORY_PLOT_COLUMNS["lw_nopres"] = HISTORY_PLOT_COLUMNS["lw"]
HISTORY_PLOT_COLUMNS["lt_core"] = HISTORY_PLOT_COLUMNS["lt"]
HISTORY_PLOT_COLUMNS["lw_wstar"] = HISTORY_PLOT_COLUMNS["lw"]
HISTORY_PLOT_COLUMNS["ifg_wstar"] = HISTORY_PLOT_COLUMNS["ifg"]
WSTAR_METHODS = ("lw_wstar", "ifg_wstar")  # methods that edit inside W* and need the trained T


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
        The edit's name, used in messages.
    """
    known = set(attribute_names)
    for side in ("source", "target"):
        sel = definition.get(side)
        if not isinstance(sel, Mapping) or not sel:
            raise ValueError(f"{name}.{side}: must map at least one attribute to 0 or 1")
        for attr, value in sel.items():
            if attr not in known:
                raise ValueError(f"{name}.{side}: unknown attribute {attr!r} (known: {', '.join(attribute_names)})")
            if value not in (0, 1) or isinstance(value, float):
                raise ValueError(f"{name}.{side}.{attr}: label must be 0 or 1, got {value!r}")
    k = definition.get("attribute")
    if k not in known:
        raise ValueError(f"{name}.attribute: unknown attribute {k!r} (known: {', '.join(attribute_names)})")
    if k not in definition["target"]:
        raise ValueError(f"{name}.attribute: {k!r} must be one of the target's attributes "
                         f"{sorted(definition['target'])}")
    if definition["source"].get(k, 1 - definition["target"][k]) == definition["target"][k]:
        raise ValueError(f"{name}.attribute: source and target both require {k}={definition['target'][k]}, so "
                         "there is nothing to edit")
    if float(definition.get("lambda_pres", 0.0)) < 0:
        raise ValueError(f"{name}.lambda_pres: must be ≥ 0, got {definition['lambda_pres']}")


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


def _gamma_row(gamma: np.ndarray, k: int, free: Sequence[int]) -> torch.Tensor:
    """Column k of γ with γ = 1 for the changed attributes (so LW and LT give them preservation weight 0)."""
    row = np.array(np.asarray(gamma, dtype=np.float64)[:, k])
    row[list(free)] = 1.0
    return torch.as_tensor(row, dtype=torch.float32)


def _frozen(classifier: torch.nn.Module | None, device) -> torch.nn.Module | None:
    if classifier is None:
        return None
    classifier = classifier.to(device).eval()
    classifier.requires_grad_(False)
    return classifier


def _weights(src_attrs, tgt_attrs, columns, min_count, what):
    try:
        return balanced_weights(src_attrs, tgt_attrs, columns, min_count)
    except ValueError as e:
        raise ValueError(f"balanced weights on the {what} codes: {e}") from None


def train_edit(method: str, store, definition: Mapping, classifier: torch.nn.Module | None,
               gamma: np.ndarray | None, options: Mapping, *, name: str = "edit",
               weight_attributes: Sequence[str] = (), device: str | torch.device = "cpu",
               wstar: Mapping | None = None) -> tuple[dict, list[dict], dict]:
    """Train one edit model of ``method`` for one edit definition.

    Parameters
    ----------
    method : {"lw", "lw_nopres", "lt", "lt_core", "ifg", "lw_wstar", "ifg_wstar"}
    store : LatentStore
        Codes (N, *S) with ``split``, ``attributes`` (N, A) and ``attribute_names``
        (:mod:`latentedit.io.latent_store`). The train split is trained on, the val split early-stops.
    definition : mapping
        The edit definition (module docstring); checked with :func:`check_definition`.
    classifier : LatentClassifier or None
        Latent classifier F with one logit per store attribute (same order); needed by ``lt``, ``lt_core`` and by
        ``lw`` with ``lambda_pres > 0``. Frozen and put in eval mode here.
    gamma : ndarray, shape (A, A), or None
        Absolute label correlation γ (:func:`latentedit.labels.correlations.correlation_matrix`) in store order;
        needed where the classifier is.
    options : mapping
        The method family's options: LWConfig keys plus ``weighting`` (bool) and ``weight_min_count`` (int) for
        ``lw``/``lw_nopres`` (``lambda_pres`` comes from the definition); LTConfig keys for ``lt``/``lt_core``
        (``core`` is set by the method); ``C``, ``max_samples``, ``balance``, ``solver``, ``seed`` for ``ifg``.
    name : str
        The edit's name (stored in the model and the options; used in messages).
    weight_attributes : sequence of str
        Attribute set of the balanced weights (LW with ``weighting``); the changed attributes are left out.
    device : str or torch.device
        Training device (InterFaceGAN always fits on the CPU).
    wstar : mapping, optional
        The W* model (:func:`latentedit.wstar.train.load_wstar`); required by ``lw_wstar`` and ``ifg_wstar``.

    Returns
    -------
    model : dict
        ``kind = "edit"``, ``method``, ``edit``, ``type`` (``"affine"``: ``spec`` + ``state_dict`` of an
        :class:`AffineEdit`; ``"direction"``: unit ``normal`` (S,) and ``intercept``), ``attribute``,
        ``attribute_index``, ``target_value``, ``definition``, ``attribute_names``, ``options`` (= the resolved
        options). Loads with ``torch.load(weights_only=True)``.
    history : list of dict
        The training history (per epoch for LW/LT; one row for InterFaceGAN: train and val accuracy of the SVM).
    resolved : dict
        Every option that produced the model: the method's full config (defaults included), the definition, the
        weight columns, code counts, the blur actually used, the library version.
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    names = list(store.attribute_names)
    check_definition(definition, names, name)
    given = definition
    definition = {"source": {a: int(v) for a, v in given["source"].items()},
                  "target": {a: int(v) for a, v in given["target"].items()}, "attribute": given["attribute"]}
    if "lambda_pres" in given:  # the workflow passes it to the lw jobs only (the only ones that read it)
        definition["lambda_pres"] = float(given["lambda_pres"])
    lambda_pres = 0.0 if method == "lw_nopres" else definition.get("lambda_pres", 0.0)
    if method in WSTAR_METHODS and wstar is None:
        raise ValueError(f"{name}: method {method} needs the W* model (wstar)")
    k = names.index(definition["attribute"])
    target_value = definition["target"][definition["attribute"]]
    changed = changed_attributes(definition)
    free = [names.index(a) for a in changed]
    device = torch.device(device)
    if method in USES_CLASSIFIER and (classifier is None or gamma is None):
        needs = method not in ("lw", "lw_wstar") or lambda_pres > 0
        if needs:
            raise ValueError(f"{name}: method {method} needs the latent classifier and the correlations γ")
    if classifier is not None and getattr(classifier, "n_attributes", len(names)) != len(names):
        raise ValueError(f"{name}: the classifier has {classifier.n_attributes} outputs, the store {len(names)} "
                         "attributes")

    codes, labels, counts = {}, {}, {}
    for split in ("train", "val"):
        for side in ("source", "target"):
            z, a = select_codes(store, definition[side], split)
            if len(z) == 0:
                raise ValueError(f"{name}: no {split} code matches the {side} {definition[side]}")
            codes[split, side], labels[split, side], counts[f"{split}_{side}"] = z, a, int(len(z))
    log.info("%s/%s: %s → %s (attribute %s → %d), codes %s", method, name, definition["source"],
             definition["target"], definition["attribute"], target_value, counts)

    T = None
    if method in WSTAR_METHODS:  # codes are edited in W*: map them once through the frozen T
        from latentedit.wstar.realnvp import map_codes, wstar_from_checkpoint

        T = wstar_from_checkpoint(wstar)
        codes = {key: map_codes(T, torch.as_tensor(v, dtype=torch.float32)).numpy() for key, v in codes.items()}
        T = T.to(device)

    def tensor(split, side):
        return torch.as_tensor(codes[split, side], dtype=torch.float32, device=device)

    resolved = {"method": method, "edit": name, "definition": definition, "attribute_index": k,
                "target_value": target_value, "changed_attributes": changed, "attribute_names": names,
                "n_codes": counts, "code_shape": list(store.latents.shape[1:]), "device": str(device),
                "library_version": __version__}

    if method in ("lw", "lw_nopres", "lw_wstar"):
        opts = dict(options)
        weighting, min_count = bool(opts.pop("weighting", True)), int(opts.pop("weight_min_count", 1))
        cfg = LWConfig(**opts, lambda_pres=lambda_pres)
        weights = {}
        columns = [names.index(a) for a in weight_attributes if a not in changed]
        if weighting:
            for split in ("train", "val"):
                a, b = _weights(labels[split, "source"], labels[split, "target"], columns, min_count, f"{name} {split}")
                weights[split] = (torch.as_tensor(a, dtype=torch.float32), torch.as_tensor(b, dtype=torch.float32))
        else:
            weights = {"train": (None, None), "val": (None, None)}
        use_pres = lambda_pres > 0
        pres_classifier = _frozen(classifier, device) if use_pres else None
        if use_pres and T is not None:  # F ∘ T⁻¹: the latent classifier reads original-space codes
            pres_classifier = _through_inverse(pres_classifier, T)
        edit, history = train_lw(tensor("train", "source"), tensor("train", "target"), tensor("val", "source"),
                                 tensor("val", "target"), cfg, *weights["train"],
                                 classifier=pres_classifier,
                                 gamma_row=_gamma_row(gamma, k, free) if use_pres else None,
                                 val_source_weights=weights["val"][0], val_target_weights=weights["val"][1],
                                 edited_attribute=k)
        resolved.update(config=cfg.to_dict(), weighting=weighting, weight_min_count=min_count,
                        weight_attributes=list(weight_attributes), weight_columns=[names[c] for c in columns],
                        blur=float(history[0]["blur"]), pres_blur=float(history[0]["pres_blur"]))
    elif method in ("lt", "lt_core"):
        cfg = LTConfig(**{**dict(options), "core": method == "lt_core"})
        edit, history = train_lt(tensor("train", "source"), _frozen(classifier, device), k, _gamma_row(gamma, k, free),
                                 cfg, val_source=tensor("val", "source"), target=float(target_value))
        resolved.update(config=cfg.to_dict())
    else:
        from latentedit.edits import interfacegan  # here: scikit-learn takes ~2 s to import, LW/LT jobs skip it

        opts = {key: options[key] for key in IFG_OPTIONS if key in options}
        unknown = set(options) - set(IFG_OPTIONS)
        if unknown:
            raise ValueError(f"{name}: unknown ifg options {sorted(unknown)}")
        normal, intercept, accuracy = interfacegan.fit_direction(codes["train", "target"], codes["train", "source"],
                                                                 **opts)
        val_acc = _direction_accuracy(normal, intercept, codes["val", "target"], codes["val", "source"])
        history = [{"epoch": 0, "train_accuracy": accuracy, "val_accuracy": val_acc}]
        defaults = {p.name: p.default for p in inspect.signature(interfacegan.fit_direction).parameters.values()
                    if p.name in IFG_OPTIONS}
        resolved.update(config={**defaults, **opts})

    model = {"kind": "edit", "method": method, "edit": name, "attribute": definition["attribute"],
             "attribute_index": k, "target_value": target_value, "definition": definition,
             "attribute_names": names, "options": resolved}
    if T is not None:
        model["wstar"] = {"spec": dict(wstar["spec"]), "state_dict": {key: v.detach().cpu()
                                                                     for key, v in wstar["state_dict"].items()}}
        resolved["wstar"] = {"spec": dict(wstar["spec"]), "options": dict(wstar.get("options", {}))}
    if method in ("ifg", "ifg_wstar"):
        model.update(type="direction", normal=torch.as_tensor(normal), intercept=float(intercept))
    else:
        model.update(type="affine", spec=edit.spec(),
                     state_dict={key: v.detach().cpu() for key, v in edit.state_dict().items()})
    return model, history, resolved


class _ThroughInverse(torch.nn.Module):
    """F ∘ T⁻¹: a latent classifier of original-space codes read on W* codes (differentiable in its input)."""

    def __init__(self, classifier, T):
        super().__init__()
        self.classifier, self.T = classifier, T

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.T.inverse(u))


def _through_inverse(classifier, T) -> torch.nn.Module:
    return _ThroughInverse(classifier, T)


def _direction_accuracy(normal, intercept, pos, neg) -> float:
    """Accuracy of the hyperplane ⟨n, z⟩ + intercept = 0 separating pos (> 0) from neg (≤ 0)."""
    from latentedit.edits import interfacegan

    s_pos = interfacegan.signed_distance(pos, normal, intercept)
    s_neg = interfacegan.signed_distance(neg, normal, intercept)
    return float(((s_pos > 0).sum() + (s_neg <= 0).sum()) / (len(s_pos) + len(s_neg)))


# Keys of every edit model, and of each type's parameters (see train_edit).
EDIT_MODEL_KEYS = ("method", "edit", "type", "attribute", "attribute_index", "target_value", "definition",
                   "attribute_names")
EDIT_TYPE_KEYS = {"affine": ("spec", "state_dict"), "direction": ("normal", "intercept")}


def load_edit(path) -> dict:
    """An edit model written by the ``train_edit`` rule (``weights_only`` load, kind ``edit``). Its keys, and the
    affine module's spec, keys and shapes, are checked here, so that a bad file fails naming it."""
    from latentedit.io.checkpoints import CheckpointError, load_checkpoint

    model = load_checkpoint(path, expect_kind="edit", require=EDIT_MODEL_KEYS)
    if model["type"] not in EDIT_TYPE_KEYS:
        raise CheckpointError(f"{path}: unknown edit model type {model['type']!r} (one of {list(EDIT_TYPE_KEYS)})")
    missing = [k for k in EDIT_TYPE_KEYS[model["type"]] if k not in model]
    if missing:
        raise CheckpointError(f"{path}: the {model['type']!r} edit model lacks the key(s) {missing}")
    if model["type"] == "affine":
        edit_module(model, path)
    return model


def edit_module(model: Mapping, path=None) -> AffineEdit:
    """The :class:`AffineEdit` of an ``affine`` edit model (LW, LT), in eval mode on the CPU. ``path``: the file it
    came from, for error messages."""
    from latentedit.io.checkpoints import build_from_spec, load_state_dict_strict

    if model.get("type") != "affine":
        raise ValueError(f"edit model of type {model.get('type')!r} has no affine module")
    where = path or f"edit {model.get('method')}/{model.get('edit')}"
    edit = build_from_spec(AffineEdit, model["spec"], where)
    load_state_dict_strict(edit, model["state_dict"], where)
    return edit.eval()


def wstar_map(model: Mapping):
    """The frozen T stored in a W* edit model (``lw_wstar``, ``ifg_wstar``), or None for an original-space edit."""
    if model.get("wstar") is None:
        return None
    from latentedit.wstar.realnvp import wstar_from_checkpoint

    return wstar_from_checkpoint(model["wstar"])


def edit_space_codes(model: Mapping, z: torch.Tensor) -> torch.Tensor:
    """The codes in the space the edit lives in: T(z) for a W* edit model, z otherwise."""
    T = wstar_map(model)
    if T is None:
        return z
    with torch.no_grad():
        return T.to(device=z.device, dtype=z.dtype)(z)


@torch.no_grad()
def apply_edit(model: Mapping, z: torch.Tensor, alpha: float | None = None) -> torch.Tensor:
    """z' for codes z (N, *S): z + α·H(z) for LW/LT (α = 1 when None), z + α·n for InterFaceGAN (α required);
    for the W* methods the same inside W*, z' = T⁻¹(T(z) + α·H(T(z))) or T⁻¹(T(z) + α·n).

    Parameters
    ----------
    model : mapping
        An edit model from :func:`train_edit` / :func:`load_edit`.
    z : Tensor, shape (N, *S)
    alpha : float, optional
        Edit strength. LW and LT are trained at α = 1; InterFaceGAN's α is a distance in code units and has no
        default.

    Returns
    -------
    Tensor, shape (N, *S), on z's device.
    """
    T = wstar_map(model)
    if T is not None:
        T = T.to(device=z.device, dtype=z.dtype)
        return T.inverse(_apply_in_space(model, T(z), alpha))
    return _apply_in_space(model, z, alpha)


def _apply_in_space(model: Mapping, z: torch.Tensor, alpha: float | None) -> torch.Tensor:
    if model["type"] == "direction":
        if alpha is None or not math.isfinite(alpha):
            raise ValueError("an InterFaceGAN direction needs a finite step alpha")
        from latentedit.edits import interfacegan

        return interfacegan.apply(z, model["normal"], float(alpha))
    edit = edit_module(model).to(device=z.device, dtype=z.dtype)
    return edit(z, alpha=1.0 if alpha is None else float(alpha))
