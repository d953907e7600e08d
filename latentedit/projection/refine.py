"""pSp-style refinement of the DLSGAN encoder on real images, generator frozen.

At short GAN budgets the encoder head inverts *generated* images well but real ones poorly (it never saw real
images as inputs to invert). Refinement minimises, over the encoder E only,

    L = mean‖G(E(x)∘s) − x‖²            (pixel reconstruction, real training images)
      + λ_latent · L_enc(z, E(G(z∘s)), s) (the DLSGAN latent loss on generated images, keeps E a true inverse)

and keeps the epoch with the best validation PSNR. That is the encoder of z codes; for W and W+ codes
(``projection.space`` w / wplus) :func:`refine_projection_encoder` trains the pSp-style head of
:mod:`latentedit.projection.wplus` instead.
"""

from __future__ import annotations

import copy
import logging

import numpy as np
import torch
from torch.nn import functional as F

from latentedit.dlsgan.evaluate import reconstruct
from latentedit.dlsgan.models import Discriminator, Generator
from latentedit.dlsgan.scale import encoder_loss, sample_latent
from latentedit.imaging import to_model_range
from latentedit.io.provenance import TIMING_KEYS
from latentedit.metrics import psnr, ssim
from latentedit.projection.options import RefineConfig
from latentedit.training_utils import Adam, fit

log = logging.getLogger(__name__)


@torch.no_grad()
def reconstruction_quality(g: Generator, e: Discriminator, s: torch.Tensor, x: torch.Tensor) -> dict:
    rec, _ = reconstruct(g, e, s, x)
    return {"psnr": float(psnr(rec, x).mean()), "ssim": float(ssim(rec, x).mean())}


def refine_encoder(g: Generator, d: Discriminator, s: torch.Tensor, z_distribution: str, train_images: np.ndarray,
                   val_images: np.ndarray, cfg: RefineConfig, device: torch.device) -> tuple[Discriminator, list]:
    """Return the refined encoder (a copy of ``d``) and the per-epoch history (epoch −1 = before refinement):
    epoch, steps, train_pixel, train_latent, val_psnr, val_ssim, best, seconds."""
    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    g = g.to(device).eval().requires_grad_(False)
    e = copy.deepcopy(d).to(device)
    e.adv.requires_grad_(False)  # only the trunk and the encoder head are refined
    s = s.to(device)
    x_train = to_model_range(train_images)
    x_val = to_model_range(val_images, device)
    z_dim = s.numel()
    opt = Adam([p for p in e.parameters() if p.requires_grad], lr=cfg.lr)

    def train_epoch(epoch: int, step_budget: None) -> tuple[dict, int]:
        order = torch.randperm(len(x_train), generator=gen)
        sums, n_batches = {"pixel": 0.0, "latent": 0.0}, 0
        for i in range(0, len(order), cfg.batch_size):
            x = x_train[order[i:i + cfg.batch_size]].to(device)
            l_pix = F.mse_loss(g(e.encode(x) * s), x)
            z = sample_latent(len(x), z_dim, z_distribution, gen, device)
            with torch.no_grad():
                x_gen = g(z * s)
            l_lat = encoder_loss(z, e.encode(x_gen), s)
            loss = l_pix + cfg.lambda_latent * l_lat
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sums["pixel"] += float(l_pix.detach())
            sums["latent"] += float(l_lat.detach())
            n_batches += 1
        return {f"train_{k}": v / n_batches for k, v in sums.items()} if n_batches else {}, n_batches

    def evaluate() -> dict:
        return {f"val_{k}": v for k, v in reconstruction_quality(g, e, s, x_val).items()}

    # The best epoch by val PSNR (epoch −1, the GAN's encoder head, included) is kept; RefineConfig has no patience,
    # so none (patience=None) is used: every epoch runs, as before the loop was shared.
    history, _ = fit(e, train_epoch, evaluate, monitor="val_psnr", max_epochs=cfg.epochs if cfg.refine else 0,
                     mode="max", evaluate_before=True, train_columns=("train_pixel", "train_latent"),
                     name="refine encoder")
    return e, history


def refine_projection_encoder(g: torch.nn.Module, d: Discriminator, s: torch.Tensor, z_distribution: str,
                              train_images: np.ndarray, val_images: np.ndarray, cfg: RefineConfig,
                              device: torch.device) -> tuple[torch.nn.Module, list]:
    """The projection stage's encoder for ``cfg.space``: z the refined DLSGAN encoder (:func:`refine_encoder`), w /
    wplus the pSp-style W/W+ head (:func:`latentedit.projection.wplus.refine_wplus`), which needs a generator with
    a mapping network (a ValueError names ``projection.space`` otherwise). Returns (encoder, history)."""
    if cfg.space == "z":
        return refine_encoder(g, d, s, z_distribution, train_images, val_images, cfg, device)
    from latentedit.projection.wplus import refine_wplus
    from latentedit.projection.codes import check_generator_space

    check_generator_space(g, cfg.space)
    return refine_wplus(g, d, s, z_distribution, train_images, val_images, cfg, device)


def write_refine_history(history: list[dict], space: str, csv_path, png_path) -> list[dict]:
    """The refinement's history as a CSV and its curves (train losses, val PSNR/SSIM per epoch; epoch −1 is the GAN
    encoder head); returns the rows JSON-ready (no wall-clock or options columns, NaN as None)."""
    import pandas as pd

    from latentedit.io.history import write_history
    from latentedit.plotting import plot_curves

    history = [{k: v for k, v in row.items() if k != "options"} for row in history]
    write_history(csv_path, history)
    frame = pd.DataFrame(history)
    columns = [c for c in ("train_pixel", "train_latent", "train_w_latent", "val_psnr", "val_ssim") if c in frame]
    plot_curves({"refine": frame}, columns, png_path,
                title=f"Encoder refinement, {space} codes (epoch -1 = GAN encoder head)")
    rows = frame.drop(columns=[c for c in TIMING_KEYS if c in frame]).astype(object)
    return rows.where(rows.notna(), None).to_dict("records")
