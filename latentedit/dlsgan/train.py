"""DLSGAN training (Algorithm 1 of Kang et al. 2022) and its per-epoch evaluation.

Each step:
  s ← √d_z·v^{1/2}/‖v^{1/2}‖₂                                    (s ≡ 1 without DLS)
  D: L_D = softplus(−D(x)) + softplus(D(G(z∘s))) + λ_enc·L_enc(z, E(G(z∘s)), s) [+ λ_r1/2·‖∇ₓD(x)‖², lazily]
  v ← track(z'²)                                                   (moving average of the last N, or EMA)
  G: L_G = softplus(−D(G(z∘s))) [+ λ_enc·L_enc]                    (``enc_in_g``, default on)
The generator that ships is an EMA of G's weights; the encoder is D's encoder head.

Training is resumable (``resume_path``): after every epoch the whole state (G, D, the EMA, both optimisers, the
variance tracker's ring buffer, the random generators, the history) is written atomically; a run that finds such a
file *for the same config and the same images* continues after its last epoch, with the same result as an
uninterrupted run (``tests/test_dlsgan_train.py``). A file from another config or other data is ignored (logged) and
overwritten. An hours-long CPU training then survives a killed job, a Slurm preemption or a session's end.

G is the DCGAN of :mod:`latentedit.dlsgan.models` (``arch: dcgan``) or the narrow, noise-free StyleGAN2 of
:mod:`latentedit.dlsgan.stylegan` (``arch: stylegan2``: mapping network at 0.01× lr; its style dimension is d_z unless
``style_dim`` sets a narrower one); D is the same two-headed network for both (no minibatch-stddev layer). Frozen
parameters (the StyleGAN2's zero noise strengths) are left out of G's optimiser, and stay 0 in the EMA.
"""

from __future__ import annotations

import copy
import hashlib
import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F
from tqdm import tqdm

from latentedit.dlsgan.models import Discriminator, Generator
from latentedit.dlsgan.scale import VarianceTracker, differential_entropy, dynamic_scale, encoder_loss, sample_latent
from latentedit.dlsgan.stylegan import DLSStyleGenerator
from latentedit.dlsgan.evaluate import evaluate
from latentedit.imaging import to_model_range
from latentedit.io.checkpoints import load_checkpoint, save_checkpoint

log = logging.getLogger(__name__)
HISTORY_PLOT_COLUMNS = ["l_enc", "eval_l_enc", "entropy", "psnr_generated", "psnr_real", "ssim_generated",
                        "ssim_real", "frechet_oracle", "count_agreement", "presence_agreement", "loss_d", "loss_g"]


@dataclass(frozen=True)
class DLSGANConfig:
    # The defaults train the shipped StyleGAN2 (checkpoints/digits_stylegan2/RECIPE.json); configs/digits_z.yaml
    # holds the shipped 64-d DCGAN's (checkpoints/digits/RECIPE.json).
    arch: str = "stylegan2"  # generator: "dcgan" (models.Generator) or "stylegan2" (stylegan.DLSStyleGenerator)
    z_dim: int = 128  # d_z
    style_dim: int | None = None  # stylegan2: the style dimension D of w and W+; None: d_z (a square mapping network)
    distribution: str = "normal"  # or "uniform": U(−√3, √3)
    dls: bool = True  # False → the paper's "No DLS" baseline (s ≡ 1); set from the rule's {variant}
    lambda_enc: float = 1.0
    enc_in_g: bool = True  # add λ_enc·L_enc to the generator loss too
    lambda_r1: float = 5.0
    r1_every: int = 4  # lazy R1: every k D steps, scaled by k
    variance_mode: str = "moving_average"  # or "ema"
    variance_window: int = 16384  # samples, for moving_average (512 batches of 32: the seed's window)
    variance_beta: float = 0.999  # for ema
    # D's channels at full resolution (×2 per octave down, capped at max_channels), and the dcgan G's; 16 keeps a
    # dcgan CPU step ~0.2 s
    width: int = 16
    max_channels: int = 128
    # stylegan2 G: width per resolution from 4 px to the canvas (the issue-13 prototype: 64 at 4-16 px, 32 at 32 px)
    g_channels: tuple[int, ...] = (64, 64, 64, 32)
    n_mlp: int = 4  # stylegan2 mapping layers (lr ×0.01)
    batch_size: int = 32
    lr: float = 2.0e-4  # Adam for D, and for G unless g_lr is set
    beta1: float = 0.5
    beta2: float = 0.99
    # G's own Adam lr and β1 (None: lr, beta1). StyleGAN2's equalised-lr weights want 2e-3 and β1 = 0 (StyleGAN2's
    # values; at 2e-4 the 0.01× mapping network of the prototype barely moved), the plain-conv D keeps lr and beta1.
    g_lr: float | None = 2.0e-3
    g_beta1: float | None = 0.0
    ema_decay: float = 0.999  # generator weight EMA
    epochs: int = 15
    steps_per_epoch: int = 800
    eval_samples: int = 1000
    seed: int = 0

    @classmethod
    def from_options(cls, options: dict) -> "DLSGANConfig":
        """The config a checkpoint's ``options`` record. Checkpoints written before ``arch``, ``g_lr`` and
        ``g_beta1`` existed (the shipped DCGAN's) trained a DCGAN with G on D's Adam: those keys read so."""
        return cls(**{**PRE_ARCH_OPTIONS, **options})

    def __post_init__(self):
        object.__setattr__(self, "g_channels", tuple(int(c) for c in self.g_channels))  # YAML gives a list
        if self.arch not in GENERATORS:
            raise ValueError(f"dlsgan arch must be one of {sorted(GENERATORS)}, got {self.arch!r}")
        if self.style_dim is not None and self.arch != "stylegan2":
            raise ValueError(f"dlsgan style_dim is a stylegan2 option (the {self.arch} generator reads z∘s directly)")


# what a checkpoint's options lacking these keys trained with (DLSGANConfig.from_options)
PRE_ARCH_OPTIONS = {"arch": "dcgan", "g_lr": None, "g_beta1": None}

GENERATORS = {  # arch → G built from (config, canvas, image channels)
    "dcgan": lambda cfg, canvas, channels: Generator(cfg.z_dim, canvas, channels, cfg.width, cfg.max_channels),
    "stylegan2": lambda cfg, canvas, channels: DLSStyleGenerator(cfg.z_dim, canvas, channels, cfg.g_channels,
                                                                 cfg.n_mlp, style_dim=cfg.style_dim),
}


def build_models(cfg: DLSGANConfig, canvas: int, channels: int) -> tuple[torch.nn.Module, Discriminator]:
    """G of ``cfg.arch`` and the two-headed D for ``canvas``-pixel images with ``channels`` channels."""
    g = GENERATORS[cfg.arch](cfg, canvas, channels)
    d = Discriminator(cfg.z_dim, canvas, channels, cfg.width, cfg.max_channels)
    return g, d


@torch.no_grad()
def _ema(target: torch.nn.Module, source: torch.nn.Module, decay: float) -> None:
    for pt, ps in zip(target.parameters(), source.parameters()):
        pt.lerp_(ps, 1 - decay)


TRAINING_STATE_KIND = "dlsgan_training_state"


def _run_identity(cfg: DLSGANConfig, train_images: np.ndarray, eval_images: np.ndarray) -> dict:
    """What a resumable state must match: the config and a digest of the training and evaluation images."""
    digest = hashlib.sha256(np.ascontiguousarray(train_images).tobytes())
    digest.update(np.ascontiguousarray(eval_images[: cfg.eval_samples]).tobytes())
    return {"config": asdict(cfg), "images_sha256": digest.hexdigest()}


def train_dlsgan(train_images: np.ndarray, eval_images: np.ndarray, cfg: DLSGANConfig, device: torch.device,
                 oracle=None, resume_path=None) -> dict:
    """Train on uint8 (N,C,H,W) images; evaluate each epoch on ``eval_images`` (held-out real).

    ``resume_path``: where the training state is written after each epoch, and continued from when it holds a state
    of this run (same config and images; module docstring). The caller removes it once the results are saved.

    Returns ``{"generator", "discriminator", "scale", "v", "history"}`` (EMA generator, best not selected:
    GAN losses are no model-selection criterion, the last epoch is kept).
    """
    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    x_all = to_model_range(train_images)
    x_eval = to_model_range(eval_images[: cfg.eval_samples], device)
    canvas, channels = train_images.shape[-1], train_images.shape[1]
    g, d = build_models(cfg, canvas, channels)
    g, d = g.to(device), d.to(device)
    g_ema = copy.deepcopy(g).eval().requires_grad_(False)
    g_lr = cfg.lr if cfg.g_lr is None else cfg.g_lr
    g_beta1 = cfg.beta1 if cfg.g_beta1 is None else cfg.g_beta1
    # torch.optim.Adam, not training_utils.Adam: the checkpoint keeps both optimisers' state, to resume from
    opt_g = torch.optim.Adam([p for p in g.parameters() if p.requires_grad], lr=g_lr, betas=(g_beta1, cfg.beta2))
    opt_d = torch.optim.Adam(d.parameters(), lr=cfg.lr, betas=(cfg.beta1, cfg.beta2))
    tracker = VarianceTracker(cfg.z_dim, cfg.variance_mode, cfg.variance_window, cfg.variance_beta)
    ones = torch.ones(cfg.z_dim, device=device)

    history = []
    step = start_epoch = 0
    identity = _run_identity(cfg, train_images, eval_images) if resume_path is not None else None
    if resume_path is not None and Path(resume_path).exists():
        state = load_checkpoint(resume_path, expect_kind=TRAINING_STATE_KIND)
        if {k: state.get(k) for k in identity} != identity:
            log.info("dlsgan: ignoring %s, the state of another config or other images; training from the start",
                     resume_path)
        else:
            for module, key in ((g, "g"), (d, "d"), (g_ema, "g_ema"), (opt_g, "opt_g"), (opt_d, "opt_d")):
                module.load_state_dict(state[key])
            tracker.load_full_state(state["tracker"])
            gen.set_state(state["generator_rng"])
            torch.set_rng_state(state["torch_rng"])
            history, step, start_epoch = state["history"], state["step"], state["epoch"] + 1
            log.info("dlsgan: resuming from %s after epoch %d (step %d)", resume_path, state["epoch"], step)
    for epoch in range(start_epoch, cfg.epochs):
        t0 = time.time()
        sums = {"loss_d": 0.0, "loss_g": 0.0, "l_enc": 0.0, "r1": 0.0}
        for _ in tqdm(range(cfg.steps_per_epoch), desc=f"dlsgan epoch {epoch}", leave=False):
            s = dynamic_scale(tracker.v).float().to(device) if cfg.dls else ones
            real = x_all[torch.randint(len(x_all), (cfg.batch_size,), generator=gen)].to(device)
            z = sample_latent(cfg.batch_size, cfg.z_dim, cfg.distribution, gen, device)

            # --- discriminator + encoder
            do_r1 = cfg.lambda_r1 > 0 and step % cfg.r1_every == 0
            real.requires_grad_(do_r1)
            with torch.no_grad():
                fake = g(z * s)
            adv_real, _ = d(real)
            adv_fake, z_pred = d(fake)
            l_enc = encoder_loss(z, z_pred, s)
            loss_d = F.softplus(-adv_real).mean() + F.softplus(adv_fake).mean() + cfg.lambda_enc * l_enc
            if do_r1:
                (grad,) = torch.autograd.grad(adv_real.sum(), real, create_graph=True)
                r1 = grad.pow(2).flatten(1).sum(1).mean()
                loss_d = loss_d + cfg.lambda_r1 / 2 * r1 * cfg.r1_every
                sums["r1"] += float(r1.detach())
            opt_d.zero_grad(set_to_none=True)
            loss_d.backward()
            opt_d.step()
            if cfg.dls:
                tracker.update(z_pred)

            # --- generator
            z = sample_latent(cfg.batch_size, cfg.z_dim, cfg.distribution, gen, device)
            adv, z_pred = d(g(z * s))
            loss_g = F.softplus(-adv).mean()
            if cfg.enc_in_g:
                loss_g = loss_g + cfg.lambda_enc * encoder_loss(z, z_pred, s)
            opt_g.zero_grad(set_to_none=True)
            loss_g.backward()
            opt_g.step()
            _ema(g_ema, g, cfg.ema_decay)

            sums["loss_d"] += float(loss_d.detach())
            sums["loss_g"] += float(loss_g.detach())
            sums["l_enc"] += float(l_enc.detach())
            step += 1

        s = dynamic_scale(tracker.v).float().to(device) if cfg.dls else ones
        row = {"epoch": epoch, "step": step, "seconds": time.time() - t0,
               **{k: v / cfg.steps_per_epoch for k, v in sums.items()},
               "entropy": differential_entropy(s.cpu(), cfg.distribution),
               **evaluate(g_ema, d, s, cfg, x_eval, oracle, device, seed=cfg.seed + 1)}
        row["r1"] *= cfg.r1_every
        history.append(row)
        log.info("dlsgan epoch %d: %s", epoch, {k: round(v, 4) if isinstance(v, float) else v for k, v in row.items()})
        if resume_path is not None:
            save_checkpoint(resume_path, {
                "kind": TRAINING_STATE_KIND, **identity, "epoch": epoch, "step": step, "history": history,
                "g": g.state_dict(), "d": d.state_dict(), "g_ema": g_ema.state_dict(), "opt_g": opt_g.state_dict(),
                "opt_d": opt_d.state_dict(), "tracker": tracker.full_state(), "generator_rng": gen.get_state(),
                "torch_rng": torch.get_rng_state()})

    s = dynamic_scale(tracker.v).float() if cfg.dls else torch.ones(cfg.z_dim)
    return {"generator": g_ema.cpu(), "discriminator": d.cpu(), "scale": s, "v": tracker.v.float(),
            "history": history, "options": asdict(cfg)}
