"""Render one (method, edit) over a grid of edit strengths: G(z + α·H(z)) for the test source codes.

The rendered codes are the test-split codes of the edit's source selection (:func:`render_codes`), capped at
``max_images`` by a seeded subset that depends only on the definition's source and the seed, so every method of an
edit renders the same images. For every α the edited codes are computed once (a few thousand codes at most), then
the generator runs in batches of ``batch_size``; images are converted to uint8 on the device, so the rendering loop
adds little beyond the generator's own forward passes (``bench/render_throughput.py`` measures the ratio).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch
from tqdm import tqdm

from latentedit.edits.definitions import split_selection_mask
from latentedit.edits.model import apply_edit
from latentedit.imaging import generate_uint8
from latentedit.labels.classifiers import predict_logits


def render_codes(store, source: Mapping[str, int], max_images: int, seed: int,
                 split: str = "test") -> tuple[np.ndarray, np.ndarray]:
    """The ``split`` codes matching ``source`` (an edit definition's source selection), at most ``max_images`` of
    them: a seeded random subset, returned in store order. Returns (codes (N, *S) float32, ids (N,))."""
    mask = split_selection_mask(store, source, split)
    codes, ids = store.latents[mask], np.asarray(store.ids)[mask]
    if len(codes) > max_images:
        keep = np.sort(np.random.default_rng(seed).choice(len(codes), size=max_images, replace=False))
        codes, ids = codes[keep], ids[keep]
    return codes, ids


@torch.no_grad()
def render_edit(model: Mapping, generator: torch.nn.Module, codes: np.ndarray, alphas: Sequence[float],
                classifier: torch.nn.Module, device, batch_size: int = 128,
                desc: str = "render") -> tuple[np.ndarray, np.ndarray]:
    """Images and latent-classifier logits of the edited codes at every α.

    Parameters
    ----------
    model : mapping
        Edit model (:func:`latentedit.edits.model.load_edit`).
    generator : module
        Maps codes (B, *S) to images in [-1, 1]; on ``device``, in eval mode.
    codes : ndarray, shape (N, *S)
    alphas : sequence of float
        Edit strengths (α = 0 renders the reconstruction).
    classifier : module
        Latent classifier F (logits per attribute), on any device (run on the CPU here).
    device : torch.device
    batch_size : int

    Returns
    -------
    images : ndarray, uint8, shape (A, N, C, H, W)
    logits : ndarray, float32, shape (A, N, L)
    """
    z = torch.as_tensor(codes, dtype=torch.float32)
    images, logits = [], []
    for alpha in tqdm(alphas, desc=desc, leave=False):
        edited = apply_edit(model, z, float(alpha)) if alpha != 0 else z
        logits.append(predict_logits(classifier, edited).numpy())
        images.append(generate_uint8(generator, edited.to(device), batch_size).numpy())
    return np.stack(images), np.stack(logits).astype(np.float32)
