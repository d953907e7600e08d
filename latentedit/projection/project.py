"""Encode images into codes of the latent store's space, optionally optimise each code on its own image, and measure
how well they come back.

- :func:`project_images`: codes c_0(x) of the projection encoder — z: E(x)∘s; w / wplus: the W/W+ head of
  :mod:`latentedit.projection.wplus` (or, for the GAN's own encoder, B(mapping(E(x)∘s))) — then, with
  ``optimize_steps`` > 0, per-image optimisation (:func:`optimize_codes`).
- :func:`optimize_codes`: K Adam steps from c_0 on the pixel error of each image,

      c* = argmin over the iterates c_0 … c_K of e_i(c),   e_i(c) = mean_pixels (G_c(c) − x_i)² + λ·R(c),
      R(c) = mean_{l,k} (c_lk − c̄_k)²,   c̄ = mean_l c_l   (W+ codes (L, D) only; 0 for flat codes),

  the loss of a batch being the **sum** Σ_i e_i(c_i): each code's gradient, and so its Adam update (element-wise),
  depends on its own image only, and a code is the same whatever batch it was optimised in (the command-line
  ``latentedit edit`` reproduces the store's codes). Keeping the best iterate per image means the optimisation never
  raises an image's objective. R is the spread of the code's layers around their mean (``layer_spread`` λ,
  ``projection.optimize_layer_spread``; default 0): e4e's observation (Tov et al., "Designing an Encoder for StyleGAN
  Image Manipulation", SIGGRAPH 2021, its L_d-reg on the offsets Δ_l = w_l − w_0) that W+ codes near W, all layers
  alike, edit better than codes each of whose layers is fitted on its own, traded against reconstruction (README
  "Codes near W": not in the digits W+, where it lowers every edit). (The prototype of issue 13: 20 steps of
  per-layer W+ codes, started from the broadcast W, raised the oracle's all-presence agreement of reconstructions
  from 0.17 to 0.92.) With ``compile``, the steps
  run through ``torch.compile`` of the renderer (inductor fuses the modulation, bias and activation work around the
  convolutions), every batch padded to the full batch size so that one graph serves all of them; where compiling
  fails (no C++ compiler, say) the eager renderer runs, with a warning. Digits W+ generator, batch 256, two threads:
  1.52 against 2.9–4.0 ms per image and step, after a one-off 17–42 s compile (README "Measured"), so only a run of
  at least :data:`COMPILE_MIN_IMAGE_STEPS` image-steps compiles (the projection stage's 7,000 × 40 does; the
  command-line ``latentedit edit`` of a few images does not).
- :func:`inversion_quality`: on held-out real images, G_c(c(x)) against x — PSNR, SSIM, the oracle's count agreement,
  mean presence agreement and all-presence agreement (:func:`latentedit.dlsgan.evaluate.reconstruction_agreement`).
- :func:`projection_stages`: that report for every stage of the projection stage (the GAN's encoder head, the
  refined encoder, the optimised codes) and the codes of every image.
- :func:`projected_rows`: which images get codes — every val and test image, and all train images or a seeded
  subset of them (``projection.max_train_images``).
"""

from __future__ import annotations

import logging
import time

import numpy as np
import torch
from torch import nn

from latentedit.dlsgan.evaluate import reconstruction_agreement
from latentedit.imaging import to_model_range
from latentedit.metrics import psnr, ssim
from latentedit.oracles.digits_oracle import SlotOracle, predict_images
from latentedit.projection.wplus import encode_codes
from latentedit.projection.codes import digits_renderer
from latentedit.training_utils import Adam

log = logging.getLogger(__name__)
# Fewest images × steps worth compiling the renderer for: ≈ 150 s of eager steps on two CPU threads, where the ≈ 45 %
# saved repays a compile of up to 40 s.
COMPILE_MIN_IMAGE_STEPS = 50_000
STAGE_LABELS = {"before_refinement": "GAN encoder", "after_refinement": "refined", "optimized": "optimised"}


def projected_rows(split: np.ndarray, max_train_images: int | None, seed: int) -> np.ndarray:
    """Boolean mask over the image store's rows: every non-train row, and ``max_train_images`` train rows drawn
    without replacement (seeded; None or at least the train split's size: all of them)."""
    split = np.asarray(split)
    keep = split != "train"
    train = np.flatnonzero(~keep)
    if max_train_images is None or max_train_images >= len(train):
        keep[train] = True
    else:
        keep[np.random.default_rng(seed).choice(train, size=max_train_images, replace=False)] = True
    return keep


@torch.no_grad()
def encode_images(encoder: nn.Module, s: torch.Tensor, images: np.ndarray, device, batch_size: int = 1000,
                  space: str = "z", generator: nn.Module | None = None) -> np.ndarray:
    """uint8 images (N, C, H, W) → float32 codes (N, *S) of ``space`` (:func:`latentedit.projection.wplus.encode_codes`:
    z = E(x)∘s for a DLSGAN encoder)."""
    encoder = encoder.to(device).eval()
    s = s.to(device)
    if generator is not None:
        generator = generator.to(device).eval()
    out = []
    for i in range(0, len(images), batch_size):
        x = to_model_range(images[i:i + batch_size], device)
        out.append(encode_codes(encoder, x, s, space, generator).cpu())
    return torch.cat(out).numpy().astype(np.float32)


def compiled_renderer(renderer: nn.Module, example: torch.Tensor) -> tuple[nn.Module, bool]:
    """``(torch.compile(renderer), True)`` once a forward and backward through it on ``example`` codes (the batch
    shape every call will have) have compiled; ``(renderer, False)`` with a warning when compiling fails."""
    compiled = torch.compile(renderer, dynamic=False)
    try:
        compiled(example.detach().clone().requires_grad_(True)).sum().backward()
    except Exception as err:  # noqa: BLE001 - any compiler failure: the eager renderer gives the same codes
        log.warning("projection.optimize_compile: torch.compile of the renderer failed (%s: %s); optimising with the "
                    "eager renderer", type(err).__name__, str(err).splitlines()[0] if str(err) else "")
        return renderer, False
    return compiled, True


def layer_spread(codes: torch.Tensor) -> torch.Tensor:
    """R(c) per code (module docstring): the mean squared deviation of a W+ code's layers (B, L, D) from their mean
    over layers, shape (B,); zeros for flat codes (B, D)."""
    if codes.dim() < 3:
        return codes.new_zeros(len(codes))
    return (codes - codes.mean(1, keepdim=True)).pow(2).flatten(1).mean(1)


def optimize_codes(renderer: nn.Module, codes: np.ndarray, images: np.ndarray, device, steps: int, lr: float,
                   batch_size: int, compile: bool = False, beta1: float = 0.9, layer_spread_weight: float = 0.0
                   ) -> np.ndarray:
    """Per-image Adam on the pixel error, keeping each image's best iterate (module docstring).

    Parameters
    ----------
    renderer : module
        Codes (B, *S) → images (B, C, H, W) in [−1, 1], differentiable; its parameters are not changed (their
        ``requires_grad`` is switched off while it runs, then restored).
    codes : ndarray, float32 (N, *S)
        The starting codes c_0.
    images : ndarray, uint8 (N, C, H, W)
    steps : int
        Adam steps K (0: the codes are returned as they are).
    lr : float
        Adam's learning rate, in code units.
    batch_size : int
        Images optimised together (the result does not depend on it up to floating-point rounding).
    compile : bool
        Run the steps through :func:`compiled_renderer` when there are at least :data:`COMPILE_MIN_IMAGE_STEPS`
        image-steps (module docstring); the result is the same up to rounding.
    beta1 : float
        Adam's β1 (β2 stays 0.999).
    layer_spread_weight : float
        λ of the layer-spread term R of W+ codes (module docstring; 0: the pixel error alone).

    Returns
    -------
    ndarray, float32 (N, *S)
    """
    codes = np.asarray(codes, dtype=np.float32)
    if steps <= 0:
        return codes.copy()
    renderer = renderer.to(device).eval()
    flags = [p.requires_grad for p in renderer.parameters()]
    renderer.requires_grad_(False)
    out, t0 = [], time.perf_counter()
    try:
        forward, padded = renderer, False
        if compile and len(codes) * steps < COMPILE_MIN_IMAGE_STEPS:
            log.info("%d codes × %d steps: too few to repay compiling the renderer, optimising eagerly", len(codes),
                     steps)
        elif compile:
            start = time.perf_counter()
            example = torch.as_tensor(codes[np.arange(batch_size) % len(codes)], device=device)
            forward, padded = compiled_renderer(renderer, example)
            if padded:
                log.info("compiled the renderer for batches of %d in %.0f s", batch_size, time.perf_counter() - start)
        for i in range(0, len(codes), batch_size):
            n = min(batch_size, len(codes) - i)
            rows = i + np.arange(batch_size if padded else n) % n  # compiled: the last batch padded with its own rows
            x = to_model_range(images[rows], device)
            c = torch.as_tensor(codes[rows], device=device).clone().requires_grad_(True)
            opt = Adam([c], lr=lr, betas=(beta1, 0.999))
            best, best_err = c.detach().clone(), torch.full((len(c),), float("inf"), device=device)
            for step in range(steps + 1):
                err = (forward(c) - x).pow(2).flatten(1).mean(1)  # (b,) e_i of the current iterate
                if layer_spread_weight:
                    err = err + layer_spread_weight * layer_spread(c)
                better = err.detach() < best_err
                best[better], best_err[better] = c.detach()[better], err.detach()[better]
                if step == steps:
                    break
                opt.zero_grad(set_to_none=True)
                err.sum().backward()  # summed: each code's gradient is its own image's
                opt.step()
            out.append(best[:n].cpu())
            best_err = best_err[:n]
            done = i + n
            elapsed = time.perf_counter() - t0
            log.info("optimised %d/%d codes (%d steps): mean objective %.4f, %.0f s, about %.0f s to go", done,
                     len(codes), steps, float(best_err.mean()), elapsed, elapsed * (len(codes) - done) / done)
    finally:
        for p, flag in zip(renderer.parameters(), flags, strict=True):
            p.requires_grad_(flag)
    return torch.cat(out).numpy().astype(np.float32)


def project_images(encoder: nn.Module, s: torch.Tensor, images: np.ndarray, device, batch_size: int = 1000, *,
                   space: str = "z", generator: nn.Module | None = None, optimize_steps: int = 0,
                   optimize_lr: float = 1.0e-2, optimize_beta1: float = 0.9, optimize_batch_size: int = 256,
                   optimize_compile: bool = False, optimize_layer_spread: float = 0.0) -> np.ndarray:
    """uint8 images (N, C, H, W) → float32 codes (N, *S) of ``space``: the encoder's codes
    (:func:`encode_images`), then ``optimize_steps`` of :func:`optimize_codes` through ``generator`` rendering
    ``space`` codes (required for w / wplus, and for any optimisation)."""
    codes = encode_images(encoder, s, images, device, batch_size, space, generator)
    if optimize_steps <= 0:
        return codes
    if generator is None:
        raise ValueError("optimising the codes needs the generator")
    return optimize_codes(digits_renderer(generator, space), codes, images, device, optimize_steps, optimize_lr,
                          optimize_batch_size, optimize_compile, beta1=optimize_beta1,
                          layer_spread_weight=optimize_layer_spread)


@torch.no_grad()
def inversion_quality(renderer: nn.Module, codes: np.ndarray, images: np.ndarray, oracle: SlotOracle, device,
                      batch_size: int = 500) -> tuple[dict, torch.Tensor]:
    """Quality numbers of the reconstructions G_c(codes) against the images x (uint8 (N, C, H, W)) — psnr, ssim,
    count_agreement, presence_agreement, presence_all_agree — and the reconstructions themselves ([−1, 1], CPU)."""
    renderer = renderer.to(device).eval()
    x = to_model_range(images, device)
    z = torch.as_tensor(np.asarray(codes, dtype=np.float32), device=device)
    rec = torch.cat([renderer(z[i:i + batch_size]) for i in range(0, len(z), batch_size)])
    p_x = predict_images(oracle, x, device)["probs"]
    p_rec = predict_images(oracle, rec, device)["probs"]
    quality = {"psnr": float(psnr(rec, x).mean()), "ssim": float(ssim(rec, x).mean()),
               **reconstruction_agreement(p_x, p_rec, oracle.max_digits)}
    return quality, rec.cpu()


def projection_stages(generator: nn.Module, gan_encoder: nn.Module, encoder: nn.Module, s: torch.Tensor,
                      images: np.ndarray, test: np.ndarray, oracle: SlotOracle, device, space: str,
                      optimize_steps: int = 0, optimize_lr: float = 1.0e-2, optimize_beta1: float = 0.9,
                      optimize_batch_size: int = 256, optimize_compile: bool = False,
                      optimize_layer_spread: float = 0.0, batch_size: int = 1000) -> tuple[np.ndarray, dict, dict]:
    """The codes of every image and the inversion quality of each stage on the test images.

    Parameters
    ----------
    generator : module
        The DLSGAN generator (its ``render`` for w / wplus codes).
    gan_encoder, encoder : module
        The GAN's own encoder head (the discriminator) and the refined projection encoder
        (:func:`latentedit.projection.wplus.load_code_encoder`).
    s : Tensor, shape (d,)
    images : ndarray, uint8 (N, C, H, W)
        Every image of the image store.
    test : ndarray of bool, shape (N,)
        The held-out rows the quality is measured on.
    oracle : SlotOracle
    space : str
        The latent store's space.
    optimize_steps, optimize_lr, optimize_beta1, optimize_batch_size, optimize_compile, optimize_layer_spread
        Per-image optimisation of the refined encoder's codes (:func:`optimize_codes`; 0 steps: none).

    Returns
    -------
    codes : ndarray, float32 (N, *S)
        What the latent store holds: the last stage's codes.
    quality : dict
        ``space``, per stage (``before_refinement``: the GAN encoder head, ``after_refinement``: the refined encoder,
        ``optimized`` with optimisation) psnr, ssim, count_agreement, presence_agreement, presence_all_agree;
        ``stored_stage`` (the stage whose codes are stored), ``n_test_images``.
    reconstructions : dict
        Stage → the test reconstructions ([−1, 1], CPU), in the order of the stages.
    """
    renderer = digits_renderer(generator.to(device), space)
    test_images = images[test]
    quality, recs = {"space": space}, {}
    gan_codes = encode_images(gan_encoder, s, test_images, device, batch_size, space, generator)
    quality["before_refinement"], recs["before_refinement"] = inversion_quality(renderer, gan_codes, test_images,
                                                                                oracle, device)
    codes = encode_images(encoder, s, images, device, batch_size, space, generator)
    quality["after_refinement"], recs["after_refinement"] = inversion_quality(renderer, codes[test], test_images,
                                                                              oracle, device)
    stored = "after_refinement"
    if optimize_steps > 0:
        codes = optimize_codes(renderer, codes, images, device, optimize_steps, optimize_lr, optimize_batch_size,
                               optimize_compile, beta1=optimize_beta1, layer_spread_weight=optimize_layer_spread)
        quality["optimized"], recs["optimized"] = inversion_quality(renderer, codes[test], test_images, oracle,
                                                                    device)
        stored = "optimized"
    quality["stored_stage"] = stored
    quality["n_test_images"] = int(len(test_images))
    return codes, quality, recs
