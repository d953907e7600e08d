"""One edit model per (method, edit definition): select the codes a definition names, hand them to the method's
trainer, and assemble the edit model (the library entry point of ``rules/train.smk``).

The codes of a definition (:mod:`latentedit.edits.definitions`) are selected per split and side into an
:class:`EditJob`; the method's registry entry (:mod:`latentedit.edits.methods`) names the trainer module, whose
``train_edit_job(job)`` returns a :class:`TrainedEdit` (the model's parameters, the training history, the resolved
options). The trainers:

- ``lw`` / ``lw_nopres`` (:func:`latentedit.edits.lw.train_edit_job`): LW on source → target codes, with the
  balanced weights of :func:`latentedit.edits.weights.balanced_weights` over ``weight_attributes`` (minus the
  changed attributes) when ``weighting`` is on; λ from the definition (``lw``) or 0 (``lw_nopres``).
- ``lt`` / ``lt_core`` (:func:`latentedit.edits.lt.train_edit_job`): the Latent Transformer on the source codes
  towards ``target_value`` of k, with the frozen latent classifier; ``lt_core`` is LT(*), the classification loss
  only.
- ``ifg`` (:func:`latentedit.edits.interfacegan.train_edit_job`): a linear SVM with the target codes as positives and
  the source codes as negatives, so the unit normal n points from source to target and z' = z + α·n with α > 0
  performs the edit. It has no step size of its own: α is chosen at evaluation.
- ``ifg_wstar``: InterFaceGAN inside W* (:mod:`latentedit.wstar`): the SVM normal n is fitted on T(z), and the
  edit is z' = T⁻¹(T(z) + α·n) (α in W* units).
- ``ganspace`` (:func:`latentedit.edits.ganspace.train_edit_job`) and ``sefa``
  (:func:`latentedit.edits.sefa.train_edit_job`): unsupervised directions (PCA of the mapping network's output, or of
  the store's train codes; eigenvectors of the generator's first-layer / style-modulation weights), each edit
  assigned the candidate that moves its attribute most on the val source codes
  (:mod:`latentedit.edits.components`). They read the generator (:attr:`EditJob.generator`).
- ``lw_wstar``: LW with its Wasserstein cost in W*: LW is trained on the clouds T(source) → T(target), so the OT
  ground cost is ½‖T(x) − T(y)‖², with an affine H in W*, and the edit is z' = T⁻¹(T(z) + α·H(T(z))). L_pres reads
  the original-space latent classifier through T⁻¹ (F ∘ T⁻¹). Editing in W* (rather than keeping H in the
  original space with the cost ½‖T(x) − T(y)‖²) reuses the debiased Sinkhorn loss unchanged — the other variant
  needs a non-Euclidean cost matrix, i.e. GeomLoss's custom-cost path and a fresh blur rule — and puts the
  affine inductive bias of H where attributes are (made) linear.

For a method in W*, the job's codes are T(z) (mapped once through the frozen T) and the model stores a copy of T,
so applying, rendering and every metric handle it with no extra input (:mod:`latentedit.edits.model`).
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from latentedit import __version__
from latentedit.edits.definitions import changed_attributes, check_definition, normalised_definition, select_codes
from latentedit.edits.methods import Method, get_method
from latentedit.io.latent_store import latent_space

log = logging.getLogger(__name__)


@dataclass
class EditJob:
    """Everything a trainer needs for one (method, edit definition).

    ``codes[split, side]`` are float32 arrays (n, *S) — in W* for a method in W* — and ``labels[split, side]`` their
    (n, A) labels, for split ∈ {train, val} and side ∈ {source, target}.
    """

    method: Method
    name: str  # the edit's name
    definition: dict  # normalised (int labels)
    attribute_names: list[str]
    k: int  # index of the edited attribute
    target_value: int
    changed: list[str]  # attributes expected to change (changed_attributes)
    codes: dict
    labels: dict
    options: dict  # the method family's config section, with the method's fixed options applied
    classifier: torch.nn.Module | None = None  # frozen, eval mode, on device
    gamma: np.ndarray | None = None  # (A, A)
    weight_attributes: Sequence[str] = ()
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    wstar: torch.nn.Module | None = None  # T on device, for a method in W*
    generator: torch.nn.Module | None = None  # the world's generator, eval mode, on device (Method.uses_generator)
    store: object = None  # the LatentStore the codes came from (unlabelled codes: split_codes)

    @property
    def lambda_pres(self) -> float:
        """λ of LW's preservation loss: the method's fixed value, else the definition's (0 when absent)."""
        return float(self.method.fixed.get("lambda_pres", self.definition.get("lambda_pres", 0.0)))

    def tensor(self, split: str, side: str) -> torch.Tensor:
        return torch.as_tensor(self.codes[split, side], dtype=torch.float32, device=self.device)

    def split_codes(self, split: str) -> np.ndarray:
        """Every code of ``split`` in the store, whatever its labels: (n, *S) float32, in W* for a method in W*."""
        z = np.asarray(self.store.latents[np.asarray(self.store.split) == split], dtype=np.float32)
        if self.wstar is None:
            return z
        from latentedit.wstar.realnvp import map_codes

        with torch.no_grad():
            return map_codes(self.wstar, torch.as_tensor(z, device=self.device)).cpu().numpy()

    def gamma_row(self) -> torch.Tensor:
        """Column k of γ with γ = 1 for the changed attributes (so LW and LT give them preservation weight 0)."""
        row = np.array(np.asarray(self.gamma, dtype=np.float64)[:, self.k])
        row[[self.attribute_names.index(a) for a in self.changed]] = 1.0
        return torch.as_tensor(row, dtype=torch.float32)


@dataclass
class TrainedEdit:
    """What a trainer returns: the model's type-specific entries (:func:`latentedit.edits.model.affine_parameters`
    or :func:`~latentedit.edits.model.direction_parameters`), the history rows, and the options it resolved."""

    parameters: dict
    history: list[dict]
    resolved: dict


def recorded_space(store) -> dict:
    """{"latent_space": z | w | wplus} of a store that records its space (every store the workflow writes), so that
    rendering can refuse an edit trained on codes of another space; {} for an in-memory store without attrs."""
    attrs = getattr(store, "attrs", None) or {}
    return {"latent_space": latent_space(attrs, "the latent store")} if "latent_space" in attrs else {}


def train_edit(method: str, store, definition: Mapping, classifier: torch.nn.Module | None,
               gamma: np.ndarray | None, options: Mapping, *, name: str = "edit",
               weight_attributes: Sequence[str] = (), device: str | torch.device = "cpu",
               wstar: Mapping | None = None,
               generator: torch.nn.Module | None = None) -> tuple[dict, list[dict], dict]:
    """Train one edit model of ``method`` for one edit definition.

    Parameters
    ----------
    method : str
        A registered method (:data:`latentedit.edits.methods.METHODS`).
    store : LatentStore
        Codes (N, *S) with ``split``, ``attributes`` (N, A) and ``attribute_names``
        (:mod:`latentedit.io.latent_store`). The train split is trained on, the val split early-stops.
    definition : mapping
        The edit definition (:mod:`latentedit.edits.definitions`); checked with ``check_definition``.
    classifier : LatentClassifier or None
        Latent classifier F with one logit per store attribute (same order); needed by the methods that use it
        (``lw`` only when ``lambda_pres > 0``). Frozen and put in eval mode here.
    gamma : ndarray, shape (A, A), or None
        Absolute label correlation γ (:func:`latentedit.labels.correlations.correlation_matrix`) in store order;
        needed where the classifier is.
    options : mapping
        The method's config section ``edits.<Method.options>`` (the method's ``fixed`` options are applied here).
    name : str
        The edit's name (stored in the model and the options; used in messages).
    weight_attributes : sequence of str
        Attribute set of the balanced weights (LW with ``weighting``); the changed attributes are left out.
    device : str or torch.device
        Training device (InterFaceGAN always fits on the CPU).
    wstar : mapping, optional
        The W* model (:func:`latentedit.wstar.realnvp.load_wstar`); required by the methods in W*.
    generator : Module, optional
        The world's generator (:func:`latentedit.edits.components.load_generator_network`); required by the methods
        that read it (``Method.uses_generator``). Frozen and put in eval mode on ``device`` here.

    Returns
    -------
    model : dict
        The edit model (:mod:`latentedit.edits.model`), ``options`` = the resolved options.
    history : list of dict
        The training history (per epoch for LW/LT; one row for InterFaceGAN: train and val accuracy of the SVM).
    resolved : dict
        Every option that produced the model: the method's full config (defaults included), the definition, the
        weight columns, code counts, the blur actually used, the library version.
    """
    entry = get_method(method)
    names = list(store.attribute_names)
    check_definition(definition, names, name)
    definition = normalised_definition(definition)
    if entry.in_wstar and wstar is None:
        raise ValueError(f"{name}: method {method} needs the W* model (wstar)")
    if entry.uses_generator and generator is None:
        raise ValueError(f"{name}: method {method} needs the generator")
    k = names.index(definition["attribute"])
    target_value = definition["target"][definition["attribute"]]
    device = torch.device(device)
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
    if entry.in_wstar:  # codes are edited in W*: map them once through the frozen T
        from latentedit.wstar.realnvp import map_codes, wstar_from_checkpoint

        T = wstar_from_checkpoint(wstar)
        codes = {key: map_codes(T, torch.as_tensor(v, dtype=torch.float32)).numpy() for key, v in codes.items()}
        T = T.to(device)

    job = EditJob(method=entry, name=name, definition=definition, attribute_names=names, k=k,
                  target_value=target_value, changed=changed_attributes(definition), codes=codes, labels=labels,
                  options={**dict(options), **{key: v for key, v in entry.fixed.items() if key != "lambda_pres"}},
                  classifier=_frozen(classifier, device), gamma=gamma, weight_attributes=weight_attributes,
                  device=device, wstar=T, generator=_frozen(generator if entry.uses_generator else None, device),
                  store=store)
    if entry.uses_classifier and (classifier is None or gamma is None):
        if entry.uses_lambda_pres and job.lambda_pres == 0:
            job.classifier = None  # LW without L_pres does not read F
        else:
            raise ValueError(f"{name}: method {method} needs the latent classifier and the correlations γ")

    trained = importlib.import_module(entry.trainer).train_edit_job(job)

    resolved = {"method": method, "edit": name, "definition": definition, "attribute_index": k,
                "target_value": target_value, "changed_attributes": job.changed, "attribute_names": names,
                "n_codes": counts, "code_shape": list(store.latents.shape[1:]), "device": str(device),
                "library_version": __version__, **recorded_space(store), **trained.resolved}
    model = {"kind": "edit", "method": method, "edit": name, "attribute": definition["attribute"],
             "attribute_index": k, "target_value": target_value, "definition": definition,
             "attribute_names": names, "options": resolved}
    if T is not None:
        model["wstar"] = {"spec": dict(wstar["spec"]), "state_dict": {key: v.detach().cpu()
                                                                     for key, v in wstar["state_dict"].items()}}
        resolved["wstar"] = {"spec": dict(wstar["spec"]), "options": dict(wstar.get("options", {}))}
    model.update(trained.parameters)
    return model, trained.history, resolved


def _frozen(classifier: torch.nn.Module | None, device) -> torch.nn.Module | None:
    if classifier is None:
        return None
    classifier = classifier.to(device).eval()
    classifier.requires_grad_(False)
    return classifier
