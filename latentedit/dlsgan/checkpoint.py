"""DLSGAN checkpoint format (``kind == "dlsgan"``), loaded with ``weights_only=True``.

Keys: ``spec`` {generator, discriminator} (constructor args), ``generator`` (EMA weights), ``discriminator``
(weights; its encoder head is the DLSGAN encoder), ``scale`` s (d_z,), ``v`` (d_z,), ``options`` (the training
config), ``history`` (list of per-epoch dicts). A refined encoder (projection stage) is ``kind ==
"dlsgan_encoder"`` with ``spec``, ``discriminator``, ``base_checkpoint_hash``.
"""

from __future__ import annotations

import os

from latentedit.dlsgan.models import Discriminator, Generator
from latentedit.io.checkpoints import load_checkpoint, load_state_dict_strict, save_checkpoint


def save_dlsgan(path: str | os.PathLike, result: dict) -> None:
    save_checkpoint(path, {
        "kind": "dlsgan",
        "spec": {"generator": result["generator"].spec, "discriminator": result["discriminator"].spec},
        "generator": result["generator"].state_dict(),
        "discriminator": result["discriminator"].state_dict(),
        "scale": result["scale"], "v": result["v"],
        "options": result["options"], "history": result["history"],
    })


def load_dlsgan(path: str | os.PathLike, device="cpu"):
    """Return (generator, discriminator, scale, checkpoint dict), models in eval mode on ``device``."""
    ck = load_checkpoint(path, expect_kind="dlsgan")
    g = Generator(**ck["spec"]["generator"])
    d = Discriminator(**ck["spec"]["discriminator"])
    load_state_dict_strict(g, ck["generator"], path)
    load_state_dict_strict(d, ck["discriminator"], path)
    return g.to(device).eval(), d.to(device).eval(), ck["scale"].float().to(device), ck


def save_encoder(path: str | os.PathLike, d: Discriminator, base_hash: str, history: list) -> None:
    save_checkpoint(path, {"kind": "dlsgan_encoder", "spec": d.spec, "discriminator": d.state_dict(),
                           "base_checkpoint_hash": base_hash, "history": history})


def load_encoder(path: str | os.PathLike, device="cpu") -> Discriminator:
    ck = load_checkpoint(path, expect_kind="dlsgan_encoder")
    d = Discriminator(**ck["spec"])
    load_state_dict_strict(d, ck["discriminator"], path)
    return d.to(device).eval()
