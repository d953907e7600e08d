"""A pSp-style encoder into W or W+ on top of the DLSGAN encoder (Richardson et al., "Encoding in Style: a StyleGAN
Encoder for Image-to-Image Translation", CVPR 2021; Kang et al., "Dynamic Latent Scale for GAN Inversion", ICLR 2022).

With the DLSGAN discriminator's trunk h(x) and encoder head z' = E(x) = enc(h(x)), the DLS scale s and the
generator's mapping network, the codes of an image x are

    c(x) = B(mapping(z'∘s)) + Δ(h(x)),

B the broadcast of w to the L synthesis layers (space ``wplus``, c of shape (L, D)) or the identity (space ``w``,
(D,)), Δ a linear head with **zero-initialised** weights and bias, so that before training c(x) is exactly the GAN
encoder's B(mapping(E(x)∘s)). The per-layer offsets Δ are pSp's learned W+ codes, expressed as a residual on the
DLSGAN inversion instead of on the average latent.

Training (:func:`refine_wplus`, through :func:`latentedit.training_utils.fit`, generator frozen) minimises over the
trunk, the encoder head and Δ (the adversarial head stays frozen):

    L = mean‖G_c(c(x)) − x‖²                                  (pixel reconstruction, real training images)
      + λ_latent · L_enc(z, E(G(z∘s)), s)                      (the DLSGAN latent loss, keeps E an inverse)
      + λ_w · mean‖c(G(z∘s)) − B(mapping(z∘s))‖²              (pSp's latent loss on generated images), z ~ p(z)

with G_c the synthesis of codes of the space (``generator.render(codes, space)``), and keeps the epoch with the
best validation PSNR. The file format of the projection stage's encoder (this head, or the plain DLSGAN encoder for
``z``) is :func:`save_code_encoder` / :func:`load_code_encoder`.

The generator is a :class:`latentedit.dlsgan.stylegan.DLSStyleGenerator`-like module: ``mapping(z∘s) -> (B, D)``,
``broadcast(w) -> (B, L, D)``, ``render(codes, space) -> images``, ``n_latent`` (L), ``style_dim`` (D).
"""

from __future__ import annotations

import copy
import os

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from latentedit.dlsgan.models import Discriminator
from latentedit.dlsgan.scale import encoder_loss, sample_latent
from latentedit.imaging import to_model_range
from latentedit.io.checkpoints import (CheckpointError, build_from_spec, load_checkpoint, load_state_dict_strict,
                                       save_checkpoint)
from latentedit.io.provenance import TIMING_KEYS
from latentedit.metrics import psnr, ssim
from latentedit.projection.codes import style_codes
from latentedit.projection.options import RefineConfig
from latentedit.training_utils import Adam, fit

STYLE_SPACES = ("w", "wplus")  # the spaces of the mapping network's output, which this encoder predicts
KIND = "dlsgan_wplus_encoder"


class WPlusEncoder(nn.Module):
    """c(x) = B(mapping(E(x)∘s)) + Δ(h(x)) (module docstring), for ``space`` w (codes (B, D)) or wplus (B, L, D)."""

    def __init__(self, discriminator: Discriminator, space: str, n_latent: int, style_dim: int):
        super().__init__()
        if space not in STYLE_SPACES:
            raise ValueError(f"a W/W+ encoder predicts codes of {' or '.join(STYLE_SPACES)}, not {space!r}")
        self.d, self.space = discriminator, space
        self.n_latent, self.style_dim = int(n_latent), int(style_dim)
        self.code_shape = (self.n_latent, self.style_dim) if space == "wplus" else (self.style_dim,)
        self.offsets = nn.Linear(discriminator.enc.in_features, int(np.prod(self.code_shape)))  # Δ
        nn.init.zeros_(self.offsets.weight)
        nn.init.zeros_(self.offsets.bias)

    @property
    def spec(self) -> dict:
        return {"discriminator": dict(self.d.spec), "space": self.space, "n_latent": self.n_latent,
                "style_dim": self.style_dim}

    def codes_and_latent(self, x: torch.Tensor, generator: nn.Module,
                         scale: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Images (B, C, H, W) in [−1, 1] → (codes (B, *code_shape), the encoder head's z' (B, d))."""
        h = self.d.trunk(x)  # (B, hidden)
        z = self.d.enc(h)  # (B, d)
        base = style_codes(generator, z * scale, self.space)
        return base + self.offsets(h).view(len(x), *self.code_shape), z

    def forward(self, x: torch.Tensor, generator: nn.Module, scale: torch.Tensor) -> torch.Tensor:
        return self.codes_and_latent(x, generator, scale)[0]


def encode_codes(encoder: nn.Module, x: torch.Tensor, scale: torch.Tensor, space: str,
                 generator: nn.Module | None = None) -> torch.Tensor:
    """Images (B, C, H, W) in [−1, 1] → codes in ``space``: a :class:`WPlusEncoder`'s own codes (its space must be
    ``space``), or for a DLSGAN encoder (a Discriminator) E(x)∘s mapped to ``space`` (:func:`style_codes`)."""
    if isinstance(encoder, WPlusEncoder):
        if encoder.space != space:
            raise ValueError(f"the encoder predicts {encoder.space} codes, not {space}")
        return encoder(x, generator, scale)
    if space != "z" and generator is None:
        raise ValueError(f"{space} codes need the generator's mapping network")
    return style_codes(generator, encoder.encode(x) * scale, space)


@torch.no_grad()
def render_batched(generator: nn.Module, codes: torch.Tensor, space: str, batch_size: int = 500) -> torch.Tensor:
    """Images of codes in ``space`` (``generator.render``), batched."""
    return torch.cat([generator.render(codes[i:i + batch_size], space) for i in range(0, len(codes), batch_size)])


@torch.no_grad()
def wplus_reconstruction_quality(g: nn.Module, e: WPlusEncoder, s: torch.Tensor, x: torch.Tensor,
                                 batch_size: int = 500) -> dict:
    """PSNR and SSIM of G_c(c(x)) against x (both in [−1, 1]), means over the images."""
    codes = torch.cat([e(x[i:i + batch_size], g, s) for i in range(0, len(x), batch_size)])
    rec = render_batched(g, codes, e.space, batch_size)
    return {"psnr": float(psnr(rec, x).mean()), "ssim": float(ssim(rec, x).mean())}


def refine_wplus(g: nn.Module, d: Discriminator, s: torch.Tensor, z_distribution: str, train_images: np.ndarray,
                 val_images: np.ndarray, cfg: RefineConfig, device: torch.device) -> tuple[WPlusEncoder, list]:
    """Train a :class:`WPlusEncoder` of ``cfg.space`` from a copy of ``d`` (module docstring), the generator frozen.

    Parameters
    ----------
    g : module
        The DLSGAN StyleGAN2 generator (``mapping``, ``broadcast``, ``render``, ``n_latent``, ``style_dim``).
    d : Discriminator
        The DLSGAN discriminator; its trunk and encoder head are copied and refined, its adversarial head frozen.
    s : Tensor, shape (d,)
        The DLS scale.
    z_distribution : str
        The prior of z (``normal`` / ``uniform``), for the generated images of the latent losses.
    train_images, val_images : ndarray, uint8 (N, C, H, W)
    cfg : RefineConfig
        ``space`` (w or wplus), ``epochs`` (0 or ``refine`` false: the GAN encoder's codes), ``batch_size``, ``lr``,
        ``lambda_latent``, ``lambda_w_latent``, ``seed``.
    device : torch.device

    Returns
    -------
    encoder : WPlusEncoder
        At its best epoch by validation PSNR (epoch −1, Δ = 0, included), eval mode, on ``device``.
    history : list of dict
        epoch, steps, train_pixel, train_latent, train_w_latent, val_psnr, val_ssim, best, seconds.
    """
    if cfg.space not in STYLE_SPACES:
        raise ValueError(f"refine_wplus trains a W/W+ encoder; projection.space is {cfg.space!r}")
    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    g = g.to(device).eval().requires_grad_(False)
    d = copy.deepcopy(d).to(device)
    d.adv.requires_grad_(False)  # only the trunk, the encoder head and Δ are trained
    e = WPlusEncoder(d, cfg.space, g.n_latent, g.style_dim).to(device)
    s = s.to(device)
    x_train = to_model_range(train_images)
    x_val = to_model_range(val_images, device)
    z_dim = s.numel()
    opt = Adam([p for p in e.parameters() if p.requires_grad], lr=cfg.lr)

    def train_epoch(epoch: int, step_budget: None) -> tuple[dict, int]:
        order = torch.randperm(len(x_train), generator=gen)
        sums, n_batches = {"pixel": 0.0, "latent": 0.0, "w_latent": 0.0}, 0
        for i in range(0, len(order), cfg.batch_size):
            x = x_train[order[i:i + cfg.batch_size]].to(device)
            l_pix = F.mse_loss(g.render(e(x, g, s), cfg.space), x)
            z = sample_latent(len(x), z_dim, z_distribution, gen, device)
            with torch.no_grad():
                target = style_codes(g, z * s, cfg.space)  # the codes the generated images were made from
                x_gen = g.render(target, cfg.space)
            codes, z_pred = e.codes_and_latent(x_gen, g, s)
            l_lat = encoder_loss(z, z_pred, s)
            l_w = F.mse_loss(codes, target)
            loss = l_pix + cfg.lambda_latent * l_lat + cfg.lambda_w_latent * l_w
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sums["pixel"] += float(l_pix.detach())
            sums["latent"] += float(l_lat.detach())
            sums["w_latent"] += float(l_w.detach())
            n_batches += 1
        return {f"train_{k}": v / n_batches for k, v in sums.items()} if n_batches else {}, n_batches

    def evaluate() -> dict:
        return {f"val_{k}": v for k, v in wplus_reconstruction_quality(g, e, s, x_val).items()}

    history, _ = fit(e, train_epoch, evaluate, monitor="val_psnr", max_epochs=cfg.epochs if cfg.refine else 0,
                     mode="max", evaluate_before=True, train_columns=("train_pixel", "train_latent", "train_w_latent"),
                     name=f"refine {cfg.space} encoder")
    return e, history


# -- the projection stage's encoder file ---------------------------------------------------------------------------


def save_code_encoder(path: str | os.PathLike, encoder: nn.Module, base_hash: str, history: list) -> None:
    """The projection stage's encoder: a refined DLSGAN encoder (space z; ``kind`` ``dlsgan_encoder``,
    :func:`latentedit.dlsgan.checkpoint.save_encoder`) or a :class:`WPlusEncoder` (``kind``
    ``dlsgan_wplus_encoder``: ``spec`` {discriminator, space, n_latent, style_dim}, ``discriminator`` and
    ``offsets`` state dicts, ``base_checkpoint_hash``, ``history`` without wall-clock columns)."""
    if not isinstance(encoder, WPlusEncoder):
        from latentedit.dlsgan.checkpoint import save_encoder

        save_encoder(path, encoder, base_hash, history)
        return
    save_checkpoint(path, {"kind": KIND, "spec": encoder.spec, "discriminator": encoder.d.state_dict(),
                           "offsets": encoder.offsets.state_dict(), "base_checkpoint_hash": base_hash,
                           "history": [{k: v for k, v in row.items() if k not in TIMING_KEYS} for row in history]})


def load_code_encoder(path: str | os.PathLike, device="cpu") -> tuple[nn.Module, str]:
    """(encoder, the space of its codes) from a file of :func:`save_code_encoder`, eval mode on ``device``; keys,
    spec and shapes are checked naming the file (``weights_only`` loading)."""
    ck = load_checkpoint(path)
    kind = ck.get("kind") if isinstance(ck, dict) else type(ck).__name__
    if kind == "dlsgan_encoder":
        from latentedit.dlsgan.checkpoint import load_encoder

        return load_encoder(path, device), "z"
    if kind != KIND:
        raise CheckpointError(f"{path}: expected a 'dlsgan_encoder' or {KIND!r} checkpoint, found {kind!r}")
    missing = [k for k in ("spec", "discriminator", "offsets") if k not in ck]
    if missing:
        raise CheckpointError(f"{path}: the {KIND!r} checkpoint lacks the key(s) {missing}")
    spec = ck["spec"] if isinstance(ck["spec"], dict) else {}
    missing = [k for k in ("discriminator", "space", "n_latent", "style_dim") if k not in spec]
    if missing:
        raise CheckpointError(f"{path}: the encoder spec lacks {missing}")
    d = build_from_spec(Discriminator, spec["discriminator"], path)
    try:
        e = WPlusEncoder(d, spec["space"], spec["n_latent"], spec["style_dim"])
    except (TypeError, ValueError) as err:
        raise CheckpointError(f"{path}: the checkpoint's spec does not fit WPlusEncoder: {err}") from err
    load_state_dict_strict(d, ck["discriminator"], path)
    load_state_dict_strict(e.offsets, ck["offsets"], path)
    return e.to(device).eval(), e.space
