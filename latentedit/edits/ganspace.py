"""GANSpace (Härkönen, Hertzmann, Lehtinen & Paris, "GANSpace: Discovering Interpretable GAN Controls", NeurIPS
2020; code: harskish/ganspace ``decomposition.py``): principal components of the intermediate latent space,

    w_j = mapping(z_j), z_j ~ N(0, I),   C = cov(w),   v_1 … v_K = top eigenvectors of C (unit norm),

and the edit w' = w + α·v_i, optionally on a range of W+ layers only. As in the reference for StyleGAN2's W
(``samples_are_latents``): the samples are centred by their mean and decomposed directly (the reference fits
IncrementalPCA on 10⁶ samples; here an exact SVD on ``n_samples``), and each component is normalised to unit norm.
On W+ codes the 512-d component is copied onto the ``layers`` (None: all), zero elsewhere, and the (L, D) direction
is scaled to unit norm overall (:func:`latentedit.edits.components.place_on_layers`).

What is decomposed follows the space of the job's codes (:func:`latentedit.edits.components.job_latent_space`):

- **w / wplus** (faces; digits on the DLSGAN StyleGAN2): the PCA of w = mapping(z̃) above, z̃ drawn from the prior
  the mapping network reads (:class:`latentedit.edits.components.LatentPrior`: faces N(0, I); digits the DLS prior
  times the scale s, z̃ = z∘s). w codes take the component itself (``layers`` must be None), wplus codes its
  placement on the ``layers``.
- **z** (digits: the codes are the generator's input z∘s, no W): the PCA of **all train codes of the latent store**
  — the encoded real images, labels unused — which is the latent distribution the edits act on; the prior's image
  z∘s, z ~ N(0, I), would only return the coordinate axes ordered by the DLS scale s. All train codes rather than the
  job's source/target codes keep the method unsupervised and give every edit the same K components, as in the paper
  (the job's codes would steer the PCA towards the edit).

Each edit is assigned the component and sign that move its attribute most on its val source codes
(:mod:`latentedit.edits.components`); the model is a ``direction`` (z' = z + α·n), α calibrated later.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass

import numpy as np
import torch

from latentedit.edits.components import (assign_to_job, history_row, job_latent_space, latent_prior, place_on_layers,
                                         resolve_layers)
from latentedit.edits.model import direction_parameters
from latentedit.edits.train import EditJob, TrainedEdit

log = logging.getLogger(__name__)


@dataclass
class GANSpaceConfig:
    n_components: int = 10  # K candidates the assignment chooses from
    n_samples: int = 20000  # sampled z for the PCA of mapping(z) (≫ 512 dims: the top components are stable)
    layers: list | None = None  # W+ layers the direction is placed on (None: all)
    seed: int = 0  # seed of the sampled z


def pca(x, n_components: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Top principal components of samples x (N, D), centred by their mean.

    Returns
    -------
    components : ndarray, shape (K, D), float64
        Unit vectors, by decreasing variance (the sign of each is arbitrary).
    stdev : ndarray, shape (K,)
        Standard deviation of the samples along each component.
    variance_ratio : ndarray, shape (K,)
        Fraction of the total variance each explains.
    """
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or len(x) < 2:
        raise ValueError(f"PCA needs (N ≥ 2, D) samples, got {x.shape}")
    k = min(int(n_components), *x.shape)
    x = x - x.mean(0)
    _, sv, vt = np.linalg.svd(x, full_matrices=False)  # (min(N, D),), (min(N, D), D)
    var = sv ** 2 / (len(x) - 1)
    comps = vt[:k] / np.linalg.norm(vt[:k], axis=1, keepdims=True)
    return comps, np.sqrt(var[:k]), var[:k] / var.sum()


@torch.no_grad()
def sample_mapping(generator: torch.nn.Module, n_samples: int, seed: int, batch_size: int = 4096) -> np.ndarray:
    """w = mapping(z̃) for ``n_samples`` seeded draws z̃ of the generator's prior
    (:func:`latentedit.edits.components.latent_prior`: N(0, I), or the DLS prior times s; drawn on the CPU):
    (n_samples, D)."""
    device = next(generator.parameters()).device
    z = latent_prior(generator).sample(n_samples, seed)
    return torch.cat([generator.mapping(z[i:i + batch_size].to(device)).double().cpu()
                      for i in range(0, len(z), batch_size)]).numpy()


def ganspace_candidates(job: EditJob, cfg: GANSpaceConfig) -> tuple[np.ndarray, dict]:
    """The K unit candidates (K, *S) of the job's code space, and what produced them."""
    code_shape = job.codes["train", "source"].shape[1:]
    space = job_latent_space(job)
    if len(code_shape) == 2:  # W+ (L, D)
        layers = resolve_layers(cfg.layers, code_shape[0], f"{job.name}: ganspace")
    elif cfg.layers is None:
        layers = None
    else:
        raise ValueError(f"{job.name}: ganspace layers apply to W+ codes only; the codes are {space} {code_shape}")
    if space in ("w", "wplus"):  # PCA of W = mapping(z̃) over sampled z̃
        if not hasattr(job.generator, "mapping"):
            raise ValueError(f"{job.name}: ganspace on {space} codes needs a generator with a mapping network, got "
                             f"{type(job.generator).__name__}")
        x = sample_mapping(job.generator, cfg.n_samples, cfg.seed)  # (n_samples, D)
        comps, stdev, ratio = pca(x, cfg.n_components)
        cand = place_on_layers(comps, code_shape, layers)
        source = {"pca_of": "mapping", "n_samples": len(x)}
    else:  # z codes: PCA of every train code of the store (module docstring)
        z = job.split_codes("train")  # (N, *S)
        if layers is not None:
            z = z[:, layers]  # (N, m, D)
        comps, stdev, ratio = pca(z.reshape(len(z), -1), cfg.n_components)
        cand = np.zeros((len(comps), *code_shape), dtype=np.float32)
        if layers is None:
            cand[:] = comps.reshape(len(comps), *code_shape)
        else:
            cand[:, layers] = comps.reshape(len(comps), len(layers), code_shape[1])
        source = {"pca_of": "train_codes", "n_samples": len(z)}
    log.info("GANSpace: PCA of %s (%d samples), %d components explain %.3f of the variance", source["pca_of"],
             source["n_samples"], len(comps), float(ratio.sum()))
    return cand, {**source, "layers": layers, "stdev": stdev.tolist(), "variance_ratio": ratio.tolist()}


def train_edit_job(job: EditJob) -> TrainedEdit:
    """The ``ganspace`` trainer (:mod:`latentedit.edits.train`): K principal components, one assigned to the edit;
    one history row (the assignment)."""
    unknown = set(job.options) - set(asdict(GANSpaceConfig()))
    if unknown:
        raise ValueError(f"{job.name}: unknown ganspace options {sorted(unknown)}")
    cfg = GANSpaceConfig(**job.options)
    cand, info = ganspace_candidates(job, cfg)
    normal, a = assign_to_job(job, cand)
    i = a["component"]
    row = history_row(a, stdev=info["stdev"][i], variance_ratio=info["variance_ratio"][i])
    resolved = {"config": {**asdict(cfg), "layers": info["layers"]}, "pca": info,
                "assignment": {key: v for key, v in a.items() if key != "scores"},
                "assignment_scores": a["scores"].tolist()}
    return TrainedEdit(direction_parameters(normal, 0.0), [row], resolved)
