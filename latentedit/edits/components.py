"""What the unsupervised direction methods (GANSpace, SeFa) share: the generator they read with the prior its
mapping network is sampled from, the latent space of a job's codes, placing a style-space vector on W+ layers, and
assigning one of K candidate directions to an edit.

**Latent space.** A job's codes are z, w or wplus codes (:func:`job_latent_space`, from the latent store's attrs:
z and w codes have the same shape, so the space is never guessed from it). GANSpace and SeFa choose what they
decompose by it.

**Prior.** GANSpace samples w = mapping(z̃) with z̃ from the distribution the generator's mapping network reads
(:class:`LatentPrior`): faces z̃ ~ N(0, I) (StyleGAN2); digits z̃ = z∘s with z ~ the DLSGAN prior (normal or uniform)
and s the DLS scale, since the DLSGAN generator's input is the scaled latent.

**Assignment.** An unsupervised method returns K unit candidates v_1 … v_K, none of them tied to an attribute. Each
edit (attribute k, target label t) gets the candidate and sign that move its attribute most on the edit's
**validation** source codes z_1 … z_n:

    score(±v_i) = mean_n [ p_t(z_n ± s·v_i) − p_t(z_n) ],   p_t = σ(F_k) if t = 1 else 1 − σ(F_k),

with F the frozen latent classifier and one common step s = ‖mean(train target) − mean(train source)‖ (flattened
codes): the distance the edit has to cover between the two class means, so a candidate aligned with the mean shift
completes the average edit at s, and every candidate is compared at the same length (the candidates are unit
vectors). s is measured on the train codes, the score on the val codes; the test codes stay untouched. The sign is
chosen separately from the component because score(−v) ≠ −score(v) (F is not linear). The model stores
n = sign·v_i; its step α is calibrated afterwards like every other direction's
(:func:`latentedit.render.calibrate.natural_unit`).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from latentedit.io.latent_store import latent_space
from latentedit.labels.classifiers import predict_logits

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LatentPrior:
    """What a generator's mapping network reads: z̃ = z∘s, z ~ N(0, I) (``normal``) or U(−√3, √3)^d (``uniform``),
    s the DLS scale (None: 1)."""

    dim: int
    distribution: str = "normal"
    scale: torch.Tensor | None = None  # (dim,), CPU

    def sample(self, n: int, seed: int) -> torch.Tensor:
        """n seeded draws of z̃ (n, dim), float32 on the CPU."""
        gen = torch.Generator().manual_seed(int(seed))
        if self.distribution == "normal":
            z = torch.randn(int(n), self.dim, generator=gen)
        elif self.distribution == "uniform":
            z = (torch.rand(int(n), self.dim, generator=gen) * 2 - 1) * math.sqrt(3)
        else:
            raise ValueError(f"unknown latent distribution {self.distribution!r}")
        return z if self.scale is None else z * self.scale.detach().float().cpu()


def latent_prior(generator: torch.nn.Module) -> LatentPrior:
    """The prior of ``generator``'s mapping network: the ``latent_prior`` :func:`load_generator_network` attached
    (digits: the DLS prior, scaled), else N(0, I) of its ``z_dim`` (a StyleGAN2's mapping input)."""
    prior = getattr(generator, "latent_prior", None)
    return prior if prior is not None else LatentPrior(int(generator.z_dim))


def job_latent_space(job) -> str:
    """The latent space of a job's codes (z, w or wplus), from its store's attrs
    (:func:`latentedit.io.latent_store.latent_space`)."""
    store = getattr(job, "store", None)
    return latent_space(getattr(store, "attrs", {}) or {}, f"the latent store of {job.name}")


def load_generator_network(world: str, checkpoint, device) -> torch.nn.Module:
    """The generator the unsupervised methods read, in eval mode on ``device``, with its ``latent_prior``.

    digits: the DLSGAN generator — the DCGAN (its input is the stored code z∘s, its first layer ``fc[0]`` is linear)
    or the StyleGAN2 (:class:`latentedit.dlsgan.stylegan.DLSStyleGenerator`: ``mapping`` reads z∘s) — with the DLS
    prior (the checkpoint's distribution, scaled by its s); faces: the rosinality StyleGAN2
    (:func:`latentedit.faces.stylegan2.load_generator`, a StyleGAN2 or pSp checkpoint), mapping N(0, I)."""
    if world == "digits":
        from latentedit.dlsgan.checkpoint import load_dlsgan

        g, _, scale, ck = load_dlsgan(checkpoint, device)
        options = ck.get("options") if isinstance(ck.get("options"), dict) else {}
        g.latent_prior = LatentPrior(int(scale.numel()), str(options.get("distribution", "normal")), scale.cpu())
        return g
    from latentedit.faces.stylegan2 import load_generator

    g = load_generator(checkpoint).to(device).eval()
    g.latent_prior = LatentPrior(int(g.z_dim))
    return g


def resolve_layers(layers: Sequence[int] | None, n_layers: int, what: str) -> list[int]:
    """The sorted layer indices of an option ``layers`` (None: all ``n_layers``); a ValueError names ``what``."""
    if layers is None:
        return list(range(n_layers))
    out = sorted({int(i) for i in layers})
    if not out or out[0] < 0 or out[-1] >= n_layers:
        raise ValueError(f"{what}: layers must be indices in 0 … {n_layers - 1}, got {list(layers)}")
    return out


def place_on_layers(vectors, code_shape: Sequence[int], layers: Sequence[int] | None) -> np.ndarray:
    """Style-space vectors (K, D) as unit code-space directions (K, *S).

    For flat codes S = (D,) the vectors themselves (``layers`` must be None). For W+ codes S = (L, D) each vector is
    copied onto the W+ layers ``layers`` (None: all L), zero on the others, and the whole (L, D) array is scaled to
    unit norm (each used layer carries v / √m for m layers).
    """
    v = np.asarray(vectors, dtype=np.float64)
    code_shape = tuple(int(s) for s in code_shape)
    if v.ndim != 2 or v.shape[1] != code_shape[-1]:
        raise ValueError(f"vectors (K, {code_shape[-1]}) expected for codes {code_shape}, got {v.shape}")
    if len(code_shape) == 1:
        if layers is not None:
            raise ValueError(f"layers apply to W+ codes (L, D) only; the codes are {code_shape}")
        out = v
    elif len(code_shape) == 2:
        idx = resolve_layers(layers, code_shape[0], "W+ placement")
        out = np.zeros((len(v), *code_shape))  # (K, L, D)
        out[:, idx] = v[:, None, :]
    else:
        raise ValueError(f"codes must be (D,) or (L, D), got {code_shape}")
    norms = np.linalg.norm(out.reshape(len(out), -1), axis=1).reshape(-1, *([1] * len(code_shape)))
    if np.any(norms == 0):
        raise ValueError("a zero direction cannot be normalised")
    return (out / norms).astype(np.float32)


def assignment_step(source, target) -> float:
    """s = ‖mean(target) − mean(source)‖ over flattened codes (floored at 1e-3 of the source codes' RMS norm)."""
    source = np.asarray(source, dtype=np.float64).reshape(len(source), -1)
    target = np.asarray(target, dtype=np.float64).reshape(len(target), -1)
    step = float(np.linalg.norm(target.mean(0) - source.mean(0)))
    floor = 1e-3 * float(np.sqrt((source ** 2).sum(1).mean()))
    return max(step, floor)


@torch.no_grad()
def assign_component(candidates, codes, classifier, k: int, target: int, step: float) -> dict:
    """The candidate and sign that raise p_t of attribute k most at ``step`` (module docstring).

    Parameters
    ----------
    candidates : ndarray, shape (K, *S)
        Unit directions.
    codes : ndarray or Tensor, shape (n, *S)
        The codes the score averages over (the edit's val source codes).
    classifier : module
        Latent classifier, codes → (n, A) logits.
    k, target : int
        The edited attribute and its target label t.
    step : float
        The common step s in code units.

    Returns
    -------
    dict
        ``component`` (index i), ``sign`` (±1), ``score``, ``runner_up_component`` / ``runner_up_score`` (the best
        other component, either sign; None / nan when K = 1), ``scores`` (K, 2): columns sign +1, −1.
    """
    cand = torch.as_tensor(np.asarray(candidates), dtype=torch.float32)
    z = torch.as_tensor(np.asarray(codes), dtype=torch.float32)
    if cand.shape[1:] != z.shape[1:]:
        raise ValueError(f"candidates {tuple(cand.shape)} and codes {tuple(z.shape)} differ in shape")

    def p_target(x):
        p = torch.sigmoid(predict_logits(classifier, x)[:, k].double())
        return p if target == 1 else 1 - p

    base = p_target(z)
    scores = np.array([[float((p_target(z + sign * step * v) - base).mean()) for sign in (1.0, -1.0)]
                       for v in cand])  # (K, 2)
    best = np.unravel_index(int(np.argmax(scores)), scores.shape)
    i, sign = int(best[0]), (1, -1)[int(best[1])]
    others = [j for j in range(len(cand)) if j != i]
    runner = max(others, key=lambda j: scores[j].max()) if others else None
    out = {"component": i, "sign": sign, "score": float(scores[best]),
           "runner_up_component": runner, "runner_up_score": float(scores[runner].max()) if others else float("nan"),
           "scores": scores}
    if out["score"] <= 0:
        log.warning("no candidate raises p_t of attribute %d at step %.4g (best score %.4g)", k, step, out["score"])
    return out


def assign_to_job(job, candidates: np.ndarray) -> tuple[np.ndarray, dict]:
    """Assign one of ``candidates`` (K, *S) to ``job``'s edit: the signed direction and the assignment with its step.
    The job's val source codes are scored at the step of its train codes (module docstring)."""
    step = assignment_step(job.codes["train", "source"], job.codes["train", "target"])
    a = assign_component(candidates, job.codes["val", "source"], job.classifier, job.k, job.target_value, step)
    a["step"] = step
    log.info("%s: component %d, sign %+d, score %.4f (runner-up %s: %.4f) at step %.4g", job.name, a["component"],
             a["sign"], a["score"], a["runner_up_component"], a["runner_up_score"], step)
    return (a["sign"] * candidates[a["component"]]).astype(np.float32), a


def history_row(assignment: dict, **extra) -> dict:
    """The one history row of an assigned component (epoch 0)."""
    return {"epoch": 0, "component": assignment["component"], "sign": assignment["sign"],
            "score": assignment["score"], "runner_up_component": assignment["runner_up_component"],
            "runner_up_score": assignment["runner_up_score"], "step": assignment["step"], **extra}
