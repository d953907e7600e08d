"""SeFa (Shen & Zhou, "Closed-Form Factorization of Latent Semantics in GANs", CVPR 2021; code: genforce/sefa
``utils.py`` ``factorize_weight``): the directions n that the first style-reading layers amplify most,

    n* = argmax_{‖n‖=1} ‖A n‖²,   i.e. the top eigenvectors of AᵀA,

where A stacks the weights that map the latent code into the network. Which weights read the code depends on the
space of the job's codes (:func:`latentedit.edits.components.job_latent_space`):

- **wplus** (faces; digits on the DLSGAN StyleGAN2; rosinality layout): the style-modulation weights
  ``conv1.conv.modulation.weight`` and ``convs.{j}.conv.modulation.weight``, each (in_channel, style_dim), of the
  chosen layers, stacked row-wise (ToRGB excluded, as rosinality's ``closed_form_factorization.py``; genforce's
  'all' also takes the last ToRGB). conv1 reads W+ layer 0 and ``convs[j]`` layer j + 1, so ``layers`` are W+
  indices 0 … L − 2 (None: all of them; layer L − 1 feeds the last ToRGB only); the D-dimensional eigenvector is
  placed on those layers, zero elsewhere, unit norm overall (:func:`latentedit.edits.components.place_on_layers`).
- **w** (a StyleGAN2's one style vector for every layer): the same modulation weights of every conv layer stacked;
  the eigenvector is the (D,) direction itself (``layers`` must be None).
- **z**: the first linear layer that reads the code — the StyleGAN2 mapping network's first ``EqualLinear``
  (``style.1``, (D, d), after the PixelNorm), or the DLSGAN DCGAN's ``fc[0]`` (``nn.Linear(z_dim, C₀·16)`` reading
  z∘s): A is its weight.

As the authors' code, every output unit's weight vector — a row of A here (a column of genforce's
``style.weight.T``) — is normalised to unit L2 norm before the factorisation
(``weight / np.linalg.norm(weight, axis=0, keepdims=True)``), so that each channel counts once whatever its scale
(rosinality's script factorises the raw weights). The reference calls ``np.linalg.eig`` and keeps its order; here
``eigh`` of the symmetric AᵀA, sorted by decreasing eigenvalue. Deterministic: ``seed`` is accepted and recorded only.

Each edit is assigned the eigenvector and sign that move its attribute most on its val source codes
(:mod:`latentedit.edits.components`); the model is a ``direction`` (z' = z + α·n), α calibrated later.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn

from latentedit.edits.components import assign_to_job, history_row, job_latent_space, place_on_layers, resolve_layers
from latentedit.edits.model import direction_parameters
from latentedit.edits.train import EditJob, TrainedEdit

log = logging.getLogger(__name__)


@dataclass
class SeFaConfig:
    n_components: int = 10  # K candidates the assignment chooses from
    layers: list | None = None  # W+ layers whose modulation weights are factorised (None: every conv layer)
    seed: int = 0  # accepted for a uniform option set; the factorisation is deterministic


def stylegan_network(generator: nn.Module) -> nn.Module | None:
    """The rosinality StyleGAN2 inside ``generator`` (itself, or a wrapped one such as the DLSGAN StyleGAN2's ``g``):
    the first module with ``conv1`` and ``convs``; None when there is none."""
    return next((m for m in generator.modules() if hasattr(m, "conv1") and hasattr(m, "convs")), None)


def style_weights(generator: nn.Module, space: str, layers=None) -> tuple[np.ndarray, list[int] | None]:
    """The stacked weights A (M, D) that read codes of ``space``, and the W+ layers they read (None: flat codes).

    wplus: the modulation weights of conv1 (W+ layer 0) and ``convs[j]`` (layer j + 1) for the ``layers`` asked
    (None: all) of a rosinality StyleGAN2. w: every conv layer's modulation weights, flat. z: the first linear
    layer reading the code — the mapping network's ``style.1`` of a StyleGAN2, else ``fc[0]`` (the DLSGAN DCGAN).
    ``layers`` apply to wplus only.
    """
    net = stylegan_network(generator)
    if space != "wplus" and layers is not None:
        raise ValueError(f"sefa: layers apply to wplus codes only (W+ layers); these are {space} codes")
    if space in ("w", "wplus"):
        if net is None:
            raise ValueError(f"sefa: {space} codes need a StyleGAN2 generator (style-modulation weights), got "
                             f"{type(generator).__name__}")
        convs = [net.conv1, *net.convs]  # convs[i] reads W+ layer i
        used = resolve_layers(layers, len(convs), "SeFa")
        a = torch.cat([convs[i].conv.modulation.weight.detach().double().cpu() for i in used])  # (Σ in_ch, D)
        return a.numpy(), used if space == "wplus" else None
    if space != "z":
        raise ValueError(f"sefa: unknown latent space {space!r}")
    if net is not None:
        first = next((m for m in net.style if getattr(getattr(m, "weight", None), "ndim", 0) == 2), None)
    else:
        fc = getattr(generator, "fc", None)
        first = fc[0] if isinstance(fc, nn.Sequential) else fc
    if first is None or getattr(getattr(first, "weight", None), "ndim", 0) != 2:
        raise ValueError(f"sefa: no style-modulation weights or first linear layer in {type(generator).__name__}")
    return first.weight.detach().double().cpu().numpy(), None  # (out, z_dim)


def factorize(a, n_components: int) -> tuple[np.ndarray, np.ndarray]:
    """Top eigenvectors of AᵀA after normalising each row of A (each output unit's weights) to unit norm.

    Parameters
    ----------
    a : ndarray, shape (M, D)
    n_components : int

    Returns
    -------
    eigenvectors : ndarray, shape (K, D)
        Unit vectors by decreasing eigenvalue (the sign of each is arbitrary).
    eigenvalues : ndarray, shape (K,)
    """
    a = np.asarray(a, dtype=np.float64)
    norms = np.linalg.norm(a, axis=1, keepdims=True)
    if np.any(norms == 0):
        raise ValueError("sefa: a weight row is zero and cannot be normalised")
    a = a / norms
    vals, vecs = np.linalg.eigh(a.T @ a)  # ascending; columns are eigenvectors
    order = np.argsort(vals)[::-1][:min(int(n_components), a.shape[1])]
    return vecs[:, order].T, vals[order]


def train_edit_job(job: EditJob) -> TrainedEdit:
    """The ``sefa`` trainer (:mod:`latentedit.edits.train`): K eigenvectors of the generator's weights, one assigned
    to the edit; one history row (the assignment)."""
    unknown = set(job.options) - set(asdict(SeFaConfig()))
    if unknown:
        raise ValueError(f"{job.name}: unknown sefa options {sorted(unknown)}")
    cfg = SeFaConfig(**job.options)
    code_shape = job.codes["train", "source"].shape[1:]
    space = job_latent_space(job)
    try:
        a, layers = style_weights(job.generator, space, cfg.layers)
    except ValueError as e:
        raise ValueError(f"{job.name}: {e}") from None
    if (layers is None) != (len(code_shape) == 1) or a.shape[1] != code_shape[-1]:
        raise ValueError(f"{job.name}: the generator's weights A {a.shape} do not read {space} codes of shape "
                         f"{code_shape}")
    vecs, vals = factorize(a, cfg.n_components)
    log.info("SeFa: A %s for %s codes%s, top eigenvalues %s", a.shape, space,
             "" if layers is None else f" (layers {layers})", np.round(vals[:5], 3).tolist())
    normal, asg = assign_to_job(job, place_on_layers(vecs, code_shape, layers))
    row = history_row(asg, eigenvalue=float(vals[asg["component"]]))
    resolved = {"config": {**asdict(cfg), "layers": layers},
                "factorization": {"weight_rows": int(a.shape[0]), "eigenvalues": vals.tolist()},
                "assignment": {key: v for key, v in asg.items() if key != "scores"},
                "assignment_scores": asg["scores"].tolist()}
    return TrainedEdit(direction_parameters(normal, 0.0), [row], resolved)
