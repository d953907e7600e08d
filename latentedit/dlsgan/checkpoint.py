"""DLSGAN checkpoint format (``kind == "dlsgan"``), loaded with ``weights_only=True``.

Keys: ``spec`` {generator, discriminator} (constructor args), ``generator`` (EMA weights), ``discriminator``
(weights; its encoder head is the DLSGAN encoder), ``scale`` s (d_z,), ``v`` (d_z,), ``options`` (the training
config), ``history`` (list of per-epoch dicts, without the wall-clock ``seconds``: the file's bytes, whose hash is
the generator's provenance downstream, depend on the config and seed only). A refined encoder (projection stage) is
``kind == "dlsgan_encoder"`` with ``spec``, ``discriminator``, ``base_checkpoint_hash``.
"""

from __future__ import annotations

import os

import torch

from latentedit.dlsgan.models import Discriminator, Generator
from latentedit.io.checkpoints import (
    CheckpointError,
    build_from_spec,
    load_checkpoint,
    load_state_dict_strict,
    save_checkpoint,
)
from latentedit.io.provenance import TIMING_KEYS


def save_dlsgan(path: str | os.PathLike, result: dict) -> None:
    save_checkpoint(path, {
        "kind": "dlsgan",
        "spec": {"generator": result["generator"].spec, "discriminator": result["discriminator"].spec},
        "generator": result["generator"].state_dict(),
        "discriminator": result["discriminator"].state_dict(),
        "scale": result["scale"], "v": result["v"],
        "options": result["options"],
        "history": [{k: v for k, v in row.items() if k not in TIMING_KEYS} for row in result["history"]],
    })


def load_dlsgan(path: str | os.PathLike, device="cpu"):
    """Return (generator, discriminator, scale, checkpoint dict), models in eval mode on ``device``."""
    ck = load_checkpoint(path, expect_kind="dlsgan",
                         require=("spec", "generator", "discriminator", "scale", "options", "history"))
    spec = ck["spec"] if isinstance(ck["spec"], dict) else {}
    g = build_from_spec(Generator, spec.get("generator"), path)
    d = build_from_spec(Discriminator, spec.get("discriminator"), path)
    load_state_dict_strict(g, ck["generator"], path)
    load_state_dict_strict(d, ck["discriminator"], path)
    scale = ck["scale"]
    if not isinstance(scale, torch.Tensor) or tuple(scale.shape) != (g.z_dim,):
        found = tuple(scale.shape) if isinstance(scale, torch.Tensor) else type(scale).__name__
        raise CheckpointError(f"{path}: the latent scale must be a tensor of shape ({g.z_dim},), found {found}")
    return g.to(device).eval(), d.to(device).eval(), scale.float().to(device), ck


def save_encoder(path: str | os.PathLike, d: Discriminator, base_hash: str, history: list) -> None:
    """The refined encoder with its refinement history (wall-clock columns left out: the file is the same bytes on
    every rerun)."""
    save_checkpoint(path, {"kind": "dlsgan_encoder", "spec": d.spec, "discriminator": d.state_dict(),
                           "base_checkpoint_hash": base_hash,
                           "history": [{k: v for k, v in row.items() if k not in TIMING_KEYS} for row in history]})


def load_encoder(path: str | os.PathLike, device="cpu") -> Discriminator:
    ck = load_checkpoint(path, expect_kind="dlsgan_encoder", require=("spec", "discriminator"))
    d = build_from_spec(Discriminator, ck["spec"], path)
    load_state_dict_strict(d, ck["discriminator"], path)
    return d.to(device).eval()
