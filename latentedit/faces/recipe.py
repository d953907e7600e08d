"""Seeded weight fill of ``../shared/compat/RECIPE.md`` (v1, SEED 20250101) for rosinality StyleGAN2 and pSp.

Every key K gets its own stream, ``numpy.random.default_rng([SEED, crc32(K)]).standard_normal(shape)`` rounded to
float32, then a per-pattern affine/fan rule chosen by the key with one leading ``encoder.``/``decoder.`` removed.
The golden outputs in ``../shared/compat`` were computed by the upstream code with weights filled this way, so a
model that loads a filled state_dict with ``strict=True`` and reproduces them has the upstream layout and maths.

The fill is also how the tiny faces world gets its "pretrained" models: a recipe-filled StyleGAN2 and pSp give
deterministic, well-scaled (O(1) activations) networks without any download.
"""

from __future__ import annotations

import math
import re
import zlib

import numpy as np
import torch

SEED = 20250101

_G = r"(conv1|convs\.\d+)"
_R = r"(to_rgb1|to_rgbs\.\d+)"
_BN = r"(input_layer\.1|body\.\d+\.res_layer\.[04]|body\.\d+\.shortcut_layer\.1)"

# (rule id, pattern on the key without its encoder./decoder. prefix, form, arguments); RECIPE.md section 3.
RULES = [
    ("G1", r"style\.\d+\.weight", "affine", (100.0, 0.0)),
    ("G2", r"style\.\d+\.bias", "affine", (10.0, 0.0)),
    ("G3", r"input\.input", "affine", (1.0, 0.0)),
    ("G4", rf"{_G}\.conv\.weight", "affine", (1.0, 0.0)),
    ("G5", rf"{_R}\.conv\.weight", "affine", (0.25, 0.0)),
    ("G6", rf"({_G}|{_R})\.conv\.modulation\.weight", "affine", (1.0, 0.0)),
    ("G7", rf"({_G}|{_R})\.conv\.modulation\.bias", "affine", (0.1, 1.0)),
    ("G8", rf"{_G}\.noise\.weight", "affine", (0.1, 0.0)),
    ("G9", rf"{_G}\.activate\.bias", "affine", (0.1, 0.0)),
    ("G10", rf"{_R}\.bias", "affine", (0.02, 0.0)),
    ("G11", r"noises\.noise_\d+", "affine", (1.0, 0.0)),
    ("G12", r"convs\.\d+\.conv\.blur\.kernel|to_rgbs\.\d+\.upsample\.kernel", "keep", ()),
    ("E1", r"input_layer\.0\.weight", "fan", (1.0,)),
    ("E2", rf"{_BN}\.weight", "affine", (0.1, 1.0)),
    ("E3", rf"{_BN}\.bias", "affine", (0.1, 0.0)),
    ("E4", rf"{_BN}\.running_mean", "affine", (0.1, 0.0)),
    ("E5", rf"{_BN}\.running_var", "absaffine", (0.2, 1.0)),
    ("E6", rf"{_BN}\.num_batches_tracked", "keep", ()),
    ("E7", r"(input_layer\.2|body\.\d+\.res_layer\.2)\.weight", "affine", (0.05, 0.25)),
    ("E8", r"body\.\d+\.res_layer\.[13]\.weight", "fan", (1.0,)),
    ("E9", r"body\.\d+\.res_layer\.5\.fc[12]\.weight", "fan", (1.0,)),
    ("E10", r"body\.\d+\.shortcut_layer\.0\.weight", "fan", (1.0,)),
    ("E11", r"styles\.\d+\.convs\.\d+\.weight", "fan", (math.sqrt(2.0),)),
    ("E12", r"styles\.\d+\.convs\.\d+\.bias", "affine", (0.1, 0.0)),
    ("E13", r"styles\.\d+\.linear\.weight", "affine", (1.0, 0.0)),
    ("E14", r"styles\.\d+\.linear\.bias", "affine", (0.1, 0.0)),
    ("E15", r"latlayer[12]\.weight", "fan", (1.0,)),
    ("E16", r"latlayer[12]\.bias", "affine", (0.1, 0.0)),
    ("P1", r"latent_avg", "affine", (0.5, 0.0)),
]


def rule_for(key: str) -> tuple[str, str, tuple]:
    """(rule id, form, arguments) of ``key``; exactly one pattern must match, else the layout is wrong."""
    k = re.sub(r"^(encoder|decoder)\.", "", key, count=1)
    hits = [(rid, form, args) for rid, pattern, form, args in RULES if re.fullmatch(pattern, k)]
    if len(hits) != 1:
        raise KeyError(f"{key!r}: {len(hits)} recipe rules match (expected exactly one): the key layout is wrong")
    return hits[0]


def draw(key: str, shape: tuple[int, ...], seed: int = SEED) -> np.ndarray:
    """The key's own standard-normal draw, float64 in C order rounded to float32."""
    rng = np.random.default_rng([seed, zlib.crc32(key.encode("utf-8"))])
    return rng.standard_normal(tuple(shape)).astype(np.float32)


def fill_value(key: str, like: torch.Tensor, seed: int = SEED) -> torch.Tensor:
    """The recipe value of ``key`` for a tensor shaped like ``like`` (returned unchanged for ``keep`` rules)."""
    _, form, args = rule_for(key)
    if form == "keep":
        return like.detach().clone()
    z = draw(key, tuple(like.shape), seed)
    if form == "affine":
        value = z * np.float32(args[0]) + np.float32(args[1])
    elif form == "absaffine":
        value = np.abs(z) * np.float32(args[0]) + np.float32(args[1])
    else:  # fan(g): g / sqrt(fan_in) in float64, rounded to float32
        fan_in = int(np.prod(like.shape[1:]))
        value = z * np.float32(args[0] / math.sqrt(fan_in)) + np.float32(0.0)
    return torch.from_numpy(np.ascontiguousarray(value, dtype=np.float32))


def fill_state_dict(state_dict: dict[str, torch.Tensor], prefix: str = "", seed: int = SEED) -> dict:
    """A recipe-filled copy of ``state_dict`` (a module's, giving keys and shapes). ``prefix`` is prepended to every
    key to form the seed string K, e.g. ``"decoder."`` for the generator inside a pSp checkpoint."""
    return {key: fill_value(prefix + key, t, seed) for key, t in state_dict.items()}


def fill_module(module: torch.nn.Module, prefix: str = "", seed: int = SEED) -> torch.nn.Module:
    """Fill ``module`` in place (``strict=True``) and return it."""
    module.load_state_dict(fill_state_dict(module.state_dict(), prefix, seed), strict=True)
    return module
