"""A finished digits run on the DLSGAN StyleGAN2 with W+ codes (latentedit.runs): the run's encoder reproduces the
latent store's codes — the W+ head and the per-image optimisation the store records — and its renderer draws codes of
the store's space; a run whose encoder and store disagree on the space is refused. (The DCGAN/z run is
tests/test_cli.py's.)"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
import torch

from latentedit.dlsgan.checkpoint import save_dlsgan
from latentedit.dlsgan.models import Discriminator
from latentedit.dlsgan.stylegan import DLSStyleGenerator
from latentedit.imaging import generate_uint8, to_uint8
from latentedit.io.latent_store import LatentStore, write_latent_store
from latentedit.io.provenance import file_hash
from latentedit.oracles.digits_oracle import SlotOracle
from latentedit.projection.options import RefineConfig
from latentedit.projection.project import projection_stages
from latentedit.projection.wplus import WPlusEncoder, save_code_encoder
from latentedit.runs import RunError, load_run

torch.set_num_threads(1)

CFG = RefineConfig(space="wplus", optimize_steps=3, optimize_lr=0.05, optimize_batch_size=4)


def make_wplus_run(work: Path, store_space: str = "wplus") -> tuple[Path, np.ndarray, np.ndarray]:
    """``work/results/digits`` with a tiny StyleGAN2 DLSGAN, a W+ encoder and the latent store the projection stage
    writes (``store_space`` says what the store claims to hold); returns (run, images, codes)."""
    torch.manual_seed(0)
    run = work / "results" / "digits"
    g = DLSStyleGenerator(8, 16, 1, (8, 8, 4), n_mlp=2).eval()
    d = Discriminator(8, 16, 1, width=4, max_channels=8, hidden=16).eval()
    s = torch.linspace(0.5, 1.5, 8)
    checkpoint = run / "dlsgan" / "dls" / "checkpoint.pt"
    save_dlsgan(checkpoint, {"generator": g, "discriminator": d, "scale": s, "v": torch.ones(8),
                             "options": {"distribution": "normal"}, "history": []})
    e = WPlusEncoder(d, "wplus", g.n_latent, g.style_dim)
    with torch.no_grad():
        e.offsets.weight.normal_(std=0.01)
    encoder = run / "projection" / "encoder.pt"
    save_code_encoder(encoder, e, file_hash(checkpoint), [])
    with torch.no_grad():
        images = to_uint8(g(torch.randn(9, 8) * s).clamp(-1, 1))
    test = np.array([False] * 5 + [True] * 4)
    codes, _, _ = projection_stages(g, d, e, s, images, test, SlotOracle(1, 16, 2, 3, width=4, feature_dim=8), "cpu",
                                   "wplus", **CFG.optimization())
    latents = codes if store_space == "wplus" else codes[:, 0]
    write_latent_store(run / "latents.h5", LatentStore(
        latents=latents, ids=np.array([f"i{i}" for i in range(9)]), split=np.where(test, "test", "train"),
        attributes=np.zeros((9, 2), np.uint8), attribute_names=["count_1", "count_2"],
        attrs={"world": "digits", "latent_space": store_space, "projection_options": json.dumps(asdict(CFG)),
               "generator_checkpoint_hash": file_hash(checkpoint), "encoder_checkpoint_hash": file_hash(encoder)}))
    return run, images, codes


def test_the_runs_encoder_reproduces_the_stores_wplus_codes(tmp_path):
    run_dir, images, codes = make_wplus_run(tmp_path)
    run = load_run(run_dir, device="cpu")
    assert run.latent_space == "wplus"
    assert run.encoder.space == "wplus" and run.encoder.optimization == CFG.optimization()
    assert (run.encoder.canvas, run.encoder.channels) == (16, 1)
    again = run.encoder.project(images)  # another batch size than the store's: the same codes
    assert again.shape == codes.shape == (9, 6, 8)
    np.testing.assert_allclose(again, codes, atol=1e-5, rtol=0)
    g = run.generator  # renders W+ codes
    with torch.no_grad():
        expected = generate_uint8(lambda c: g.generator.synthesis(c), torch.as_tensor(codes), 4).numpy()
    np.testing.assert_array_equal(run.render(codes), expected)


def test_a_store_without_projection_options_is_not_optimised(tmp_path):
    import h5py

    run_dir, _, _ = make_wplus_run(tmp_path)

    with h5py.File(run_dir / "latents.h5", "r+") as f:  # a store written before the options were recorded
        del f.attrs["projection_options"]
    run = load_run(run_dir, device="cpu")
    assert run.encoder.optimization == {}


def test_an_encoder_of_another_space_than_the_store_is_refused(tmp_path):
    run_dir, _, _ = make_wplus_run(tmp_path, store_space="w")
    run = load_run(run_dir, device="cpu")
    assert run.latent_space == "w"
    with pytest.raises(RunError, match="encoder.pt encodes wplus codes, the run's latent store holds w codes"):
        _ = run.encoder
