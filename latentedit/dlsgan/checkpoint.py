"""DLSGAN checkpoint format (``kind == "dlsgan"``), loaded with ``weights_only=True``.

Keys: ``spec`` {generator, discriminator} (constructor args; the generator's ``arch``, "dcgan" when absent),
the generator's weights, ``discriminator`` (weights; its encoder head is the DLSGAN encoder), ``scale`` s (d_z,),
``v`` (d_z,), ``options`` (the training config), ``history`` (list of per-epoch dicts, without the wall-clock
``seconds``: the file's bytes, whose hash is the generator's provenance downstream, depend on the config and seed
only). The generator's weights are

* dcgan: ``generator``, the EMA weights of :class:`latentedit.dlsgan.models.Generator`;
* stylegan2: ``g_ema``, the EMA weights of the wrapped StyleGAN2 with bare rosinality keys, and ``latent_avg`` (D,),
  the mean of mapping(z∘s) over the prior: a rosinality ``{g_ema, latent_avg}`` file, so
  :func:`latentedit.faces.stylegan2.load_generator` and ``worlds.load_renderer("faces", …)`` read it unchanged.

A refined encoder (projection stage) is ``kind == "dlsgan_encoder"`` with ``spec``, ``discriminator``,
``base_checkpoint_hash``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import torch

from latentedit.dlsgan.models import Discriminator, Generator
from latentedit.dlsgan.stylegan import DLSStyleGenerator
from latentedit.faces.stylegan2 import generator_from_state_dict
from latentedit.io.checkpoints import (
    CheckpointError,
    build_from_spec,
    load_checkpoint,
    load_state_dict_strict,
    save_checkpoint,
)
from latentedit.io.provenance import TIMING_KEYS


def _generator_weights(gen, result: dict) -> dict:
    """The checkpoint entries holding the generator, by architecture (see the module docstring)."""
    if isinstance(gen, DLSStyleGenerator):
        return {"g_ema": gen.g.state_dict(),
                "latent_avg": gen.mean_w(result["scale"], result["options"]["distribution"])}
    return {"generator": gen.state_dict()}


def save_dlsgan(path: str | os.PathLike, result: dict) -> None:
    gen = result["generator"]
    save_checkpoint(path, {
        "kind": "dlsgan",
        "spec": {"generator": gen.spec, "discriminator": result["discriminator"].spec},
        **_generator_weights(gen, result),
        "discriminator": result["discriminator"].state_dict(),
        "scale": result["scale"], "v": result["v"],
        "options": result["options"],
        "history": [{k: v for k, v in row.items() if k not in TIMING_KEYS} for row in result["history"]],
    })


def _require(ck: dict, keys: tuple[str, ...], path) -> None:
    missing = [k for k in keys if k not in ck]
    if missing:
        raise CheckpointError(f"{path}: the 'dlsgan' checkpoint lacks the key(s) {missing}")


def _load_dcgan(ck: dict, spec, path) -> Generator:
    _require(ck, ("generator",), path)
    g = build_from_spec(Generator, spec, path)
    load_state_dict_strict(g, ck["generator"], path)
    return g


def _load_stylegan2(ck: dict, spec, path) -> DLSStyleGenerator:
    _require(ck, ("g_ema",), path)
    core = generator_from_state_dict(ck["g_ema"], path)  # the faces loader's path: layout inferred, strict load
    return build_from_spec(DLSStyleGenerator, {k: v for k, v in spec.items() if k != "arch"}, path, generator=core)


GENERATOR_LOADERS = {"dcgan": _load_dcgan, "stylegan2": _load_stylegan2}


def load_dlsgan(path: str | os.PathLike, device="cpu"):
    """Return (generator, discriminator, scale, checkpoint dict), models in eval mode on ``device``.

    The generator is a :class:`~latentedit.dlsgan.models.Generator` or a
    :class:`~latentedit.dlsgan.stylegan.DLSStyleGenerator`, by the stored spec's ``arch``; both map z∘s (B, d_z)
    to images.
    """
    ck = load_checkpoint(path, expect_kind="dlsgan",
                         require=("spec", "discriminator", "scale", "options", "history"))
    spec = ck["spec"] if isinstance(ck["spec"], dict) else {}
    g_spec = spec.get("generator")
    arch = g_spec.get("arch", "dcgan") if isinstance(g_spec, Mapping) else "dcgan"
    if arch not in GENERATOR_LOADERS:
        raise CheckpointError(f"{path}: unknown generator arch {arch!r} (known: {sorted(GENERATOR_LOADERS)})")
    g = GENERATOR_LOADERS[arch](ck, g_spec, path)
    d = build_from_spec(Discriminator, spec.get("discriminator"), path)
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
