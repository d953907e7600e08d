"""Evaluation of a DLSGAN generator + encoder: inversion quality on generated and real images, oracle Fréchet
distance, and the oracle agreement between an image and its reconstruction G(E(x)∘s)."""

from __future__ import annotations

import numpy as np
import torch

from latentedit.dlsgan.models import Discriminator, Generator
from latentedit.dlsgan.scale import encoder_loss, sample_latent
from latentedit.metrics import frechet_distance, psnr, ssim


@torch.no_grad()
def reconstruct(g: Generator, d: Discriminator, s: torch.Tensor, x: torch.Tensor, batch_size: int = 500):
    """x (N,C,H,W) in [-1,1] → (G(E(x)∘s), E(x)∘s), batched."""
    recs, lats = [], []
    for i in range(0, len(x), batch_size):
        lat = d.encode(x[i:i + batch_size]) * s
        recs.append(g(lat))
        lats.append(lat)
    return torch.cat(recs), torch.cat(lats)


@torch.no_grad()
def generate(g: Generator, s: torch.Tensor, n: int, cfg, gen: torch.Generator, device,
             batch_size: int = 500) -> tuple[torch.Tensor, torch.Tensor]:
    z = sample_latent(n, cfg.z_dim, cfg.distribution, gen, device)
    return torch.cat([g(z[i:i + batch_size] * s) for i in range(0, n, batch_size)]), z


@torch.no_grad()
def evaluate(g, d, s, cfg, real_eval: torch.Tensor, oracle, device, seed: int) -> dict:
    """Per-epoch numbers: reconstruction PSNR/SSIM on generated and on held-out real images, oracle Fréchet
    distance (real vs generated), oracle count/presence agreement of real reconstructions, encoder error."""
    from latentedit.oracles.digits_oracle import predict_images

    g.eval(), d.eval()
    gen = torch.Generator().manual_seed(seed)
    fake, z = generate(g, s, len(real_eval), cfg, gen, device)
    fake_rec, lat_fake = reconstruct(g, d, s, fake)
    real_rec, _ = reconstruct(g, d, s, real_eval)
    out = {
        "eval_l_enc": float(encoder_loss(z, lat_fake / s, s)),
        "psnr_generated": float(psnr(fake_rec, fake).mean()), "ssim_generated": float(ssim(fake_rec, fake).mean()),
        "psnr_real": float(psnr(real_rec, real_eval).mean()), "ssim_real": float(ssim(real_rec, real_eval).mean()),
    }
    if oracle is not None:
        p_real = predict_images(oracle, real_eval, device)
        p_fake = predict_images(oracle, fake, device)
        p_rec = predict_images(oracle, real_rec, device)
        out["frechet_oracle"] = frechet_distance(p_real["embedding"], p_fake["embedding"])
        out.update(reconstruction_agreement(p_real["probs"], p_rec["probs"], oracle.max_digits))
    g.train(), d.train()
    return out


def reconstruction_agreement(probs_x: np.ndarray, probs_rec: np.ndarray, max_digits: int) -> dict:
    """The shipped-checkpoint bar: oracle count on G(E(x)∘s) equals the count on x; mean presence agreement."""
    count_same = probs_x[:, :max_digits].argmax(1) == probs_rec[:, :max_digits].argmax(1)
    has_same = (probs_x[:, max_digits:] > 0.5) == (probs_rec[:, max_digits:] > 0.5)
    return {"count_agreement": float(count_same.mean()), "presence_agreement": float(has_same.mean()),
            "presence_all_agree": float(has_same.all(1).mean())}


