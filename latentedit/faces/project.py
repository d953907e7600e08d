"""pSp inversion of the faces world's images into StyleGAN2's W+, and how faithful it is.

Codes are what pSp's decoder takes with ``input_is_latent=True``: encoder output plus ``latent_avg`` when the
checkpoint's opts say so (:meth:`latentedit.faces.psp.PSP.encode`). Quality is measured on reconstructions
G(E(x)) brought to the stored image size by area pooling: PSNR and SSIM in [−1, 1], ArcFace identity similarity
with the input, and the share of the 40 attribute labels the image classifiers read the same on both.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from latentedit.imaging import to_model_range, to_uint8
from latentedit.metrics import psnr, ssim


@torch.no_grad()
def encode_images(psp, images, batch_size: int, device, desc: str = "pSp encode", sink=None,
                  keep: np.ndarray | None = None) -> np.ndarray:
    """W+ codes (N, n_styles, 512) float32 of uint8 images (N, 3, H, W), in batches.

    ``images`` is an array or lazy rows (:class:`latentedit.io.image_store.ImageRows`, read batch by batch). With
    ``sink`` (e.g. :meth:`latentedit.io.latent_store.LatentStoreWriter.append`) every batch of codes goes to it in
    order and only the codes of rows ``keep`` (sorted row indices) are returned, so memory stays O(batch).
    """
    out, kept = [], []
    keep = None if keep is None else np.asarray(keep, dtype=np.int64)
    for i in tqdm(range(0, len(images), batch_size), desc=desc, mininterval=2.0):
        codes = psp.encode(to_model_range(images[i:i + batch_size], device)).float().cpu().numpy()
        if sink is None:
            out.append(codes)
        else:
            sink(codes)
            if keep is not None:
                kept.append(codes[keep[(keep >= i) & (keep < i + len(codes))] - i])
    empty = np.zeros((0, psp.n_styles, 512), np.float32)
    if sink is None:
        return np.concatenate(out) if out else empty
    return np.concatenate(kept) if kept else empty


@torch.no_grad()
def reconstruct(psp, codes: np.ndarray, size: int, batch_size: int, device) -> torch.Tensor:
    """pSp's decoder on W+ codes, area-pooled to (N, 3, size, size), float in [−1, 1] on the CPU."""
    out = []
    for i in range(0, len(codes), batch_size):
        image = psp.decode(torch.as_tensor(codes[i:i + batch_size], device=device), resize=False)
        out.append(F.interpolate(image, size=(size, size), mode="area").clamp(-1, 1).cpu())
    return torch.cat(out)


def inversion_quality(psp, images: np.ndarray, codes: np.ndarray, judge, batch_size: int, device
                      ) -> tuple[dict, np.ndarray]:
    """Quality of the reconstructions of ``images`` (uint8 (N, 3, H, W)) from their ``codes``.

    ``judge`` is a :class:`latentedit.worlds.FacesJudge`. Returns the metrics and the reconstructions (uint8).
    """
    recon = reconstruct(psp, codes, images.shape[-1], batch_size, device)
    x = to_model_range(images, "cpu")
    rec_u8 = to_uint8(recon)
    a, b = judge.predict(images), judge.predict(rec_u8)
    quality = {
        "psnr": float(psnr(recon, x).mean()),
        "ssim": float(ssim(recon, x).mean()),
        "identity": float(np.mean(np.sum(a["embedding"] * b["embedding"], axis=1))),
        "attribute_agreement": float(np.mean((a["probs"] > 0.5) == (b["probs"] > 0.5))),
        "n_images": int(len(images)),
    }
    return quality, rec_u8
