"""`latentedit` on real outputs (slow): a tiny digits run made by Snakemake, and the tiny made-up faces world
(latentedit.faces.tiny: its recipe-filled pSp, ArcFace ONNX and an SCRFD-shaped detector) with edits and render
stores written by the library — the faces path with and without a detector."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from click.testing import CliRunner
from PIL import Image
from test_cli import write_digit_pngs
from test_pipeline_tiny import TINY

from latentedit.cli import main
from latentedit.io.edit_results import read_edit_results

REPO = Path(__file__).resolve().parents[1]
EDIT = "add_digit_1to2"
SEED = TINY["edits"]["seeds"][0]  # the tiny run's one training seed


def _cli(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


# ---------------------------------------------------------------------------------------------------------------
# digits: a real (tiny) run


@pytest.fixture(scope="module")
def digits_work(tmp_path_factory) -> Path:
    """A finished tiny digits run: LW and InterFaceGAN, the one edit add one digit 1 → 2 (target `all`)."""
    cfg = copy.deepcopy(TINY)
    cfg["dlsgan"]["train"].update(epochs=1, steps_per_epoch=2, eval_samples=20)
    cfg["edits"]["methods"] = ["lw", "ifg"]
    cfg["edits"]["definitions"] = {EDIT: cfg["edits"]["definitions"][EDIT]}
    work = tmp_path_factory.mktemp("digits")
    (work / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    cmd = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "--directory", str(work),
           "--configfile", str(work / "config.yaml"), "--cores", "2"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, cwd=work, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          timeout=900)
    assert proc.returncode == 0, proc.stdout[-6000:]
    return work


def one_more_digit_rate(oracle_path, inputs: np.ndarray, edited: np.ndarray, max_digits: int) -> float:
    """Share of images in which the image oracle counts one digit more in ``edited`` than in ``inputs``."""
    from latentedit.oracles.digits_oracle import load_oracle, predict_images

    oracle = load_oracle(oracle_path)
    count = [predict_images(oracle, x, "cpu")["probs"][:, :max_digits].argmax(1) for x in (inputs, edited)]
    return float(np.mean(count[1] == count[0] + 1))


@pytest.mark.slow
def test_edit_ten_composed_digits_with_a_finished_run(digits_work, tmp_path, monkeypatch):
    """README's bar on the tiny run: 10 strips, and the oracle sees one more digit at α = d on at least the rate the
    run's summary reports for the edit, minus 0.1 (the same check on the default run: README, measured)."""
    cfg = yaml.safe_load((digits_work / "config.yaml").read_text())
    world = {k: v for k, v in cfg["digits"].items() if k not in ("n_train", "n_val", "n_test", "seed")}
    pngs = write_digit_pngs(tmp_path / "pngs", 10, seed=cfg["digits"]["seed"], **world)
    monkeypatch.chdir(digits_work)  # as in README: run from the working directory, RUN_DIR = results/digits
    result = _cli("edit", "results/digits", *pngs, "--edit", EDIT, "--method", "lw", "--alphas", "1", "--judge",
                  "--out", tmp_path / "out")
    assert result.exit_code == 0, result.output
    assert len(list((tmp_path / "out").glob(f"*.lw.{EDIT}.png"))) == 10
    out = read_edit_results(tmp_path / "out" / f"lw.{EDIT}.npz")
    summary = pd.read_csv(digits_work / "results/digits/summary.csv").set_index(["edit", "method"])
    assert float(out["d"]) == pytest.approx(summary.loc[(EDIT, "lw"), "d"], rel=1e-5)
    rate = one_more_digit_rate(digits_work / "results/digits/oracle/model.pt", out["inputs"], out["renders"][:, 1],
                               cfg["digits"]["max_digits"])
    assert rate >= summary.loc[(EDIT, "lw"), "target_change_rate"] - 0.1


@pytest.mark.slow
def test_the_command_reproduces_the_runs_own_projection_and_renders(digits_work, tmp_path):
    """The run's rendered test images, given back as PNGs, project to the latent store's codes and render at α = d
    to the render store's images: the command runs the run's pipeline, found from its provenance."""
    from latentedit.io.image_store import read_image_store
    from latentedit.io.latent_store import read_latent_store
    from latentedit.io.render_store import read_render_store

    root = digits_work / "results/digits"
    renders = read_render_store(root / "render/lw" / EDIT / f"seed{SEED}.h5")
    images, latents = read_image_store(root / "images.h5"), read_latent_store(root / "latents.h5")
    ids = list(renders.ids[:8])
    for i, row in zip(ids, images.rows_of(ids)):
        Image.fromarray(images.images[row, 0]).save(tmp_path / f"{i}.png")
    result = _cli("edit", root, *(tmp_path / f"{i}.png" for i in ids), "--edit", EDIT, "--alphas", "1",
                  "--out", tmp_path / "out")
    assert result.exit_code == 0, result.output
    out = read_edit_results(tmp_path / "out" / f"lw.{EDIT}.npz")
    np.testing.assert_allclose(out["codes"], latents.latents[latents_rows(latents, ids)], atol=1e-5)
    assert out["alphas"][0] == pytest.approx(renders.alphas[1], rel=1e-9)  # α = d
    for a in (0, 1):  # the reconstruction and α = d: at most one grey level apart (batching rounds differently)
        assert np.abs(out["renders"][:, a].astype(int) - renders.images[a, :8].astype(int)).max() <= 1


def latents_rows(store, ids) -> np.ndarray:
    position = {i: n for n, i in enumerate(store.ids)}
    return np.array([position[i] for i in ids])


@pytest.mark.slow
def test_edits_and_the_exported_boundary_of_a_finished_run(digits_work, tmp_path):
    root = digits_work / "results/digits"
    result = _cli("edits", root)
    assert result.exit_code == 0, result.output
    summary = pd.read_csv(root / "summary.csv").set_index(["edit", "method"])
    for method in ("lw", "ifg"):
        row = next(line for line in result.output.splitlines() if line.startswith(f"| {method} | {EDIT} |"))
        cells = [c.strip() for c in row.split("|")[1:-1]]
        assert float(cells[2]) == pytest.approx(summary.loc[(EDIT, method), "d"], abs=1e-3)
        assert float(cells[4]) == pytest.approx(summary.loc[(EDIT, method), "target_change_rate"], abs=1e-3)
    assert _cli("export", root, "--edit", EDIT, "--method", "ifg", "--format", "interfacegan", "--out",
                tmp_path / "b.npy").exit_code == 0
    n = np.load(tmp_path / "b.npy")
    pngs = write_digit_pngs(tmp_path / "pngs", 3, canvas=16, digit_size=8, max_digits=3, seed=3)
    assert _cli("edit", root, *pngs, "--edit", EDIT, "--method", "ifg", "--alphas", "0.5,1,2", "--out",
                tmp_path / "out").exit_code == 0
    out = read_edit_results(tmp_path / "out" / f"ifg.{EDIT}.npz")
    for a, alpha in enumerate(out["alphas"]):
        np.testing.assert_allclose(out["codes"] + alpha * n, out["edited"][:, a], atol=1e-6, rtol=0)


# ---------------------------------------------------------------------------------------------------------------
# faces: the tiny made-up world


@pytest.fixture(scope="module")
def faces_work(tmp_path_factory) -> Path:
    """``W/results/faces`` with the tiny world's pSp as encoder and generator (its hash recorded as a run records
    it), a random attribute classifier as the judge, an affine W+ edit and a direction with render stores (training
    seed 0: edits/<method>/<edit>/seed0/model.pt, render/<method>/<edit>/seed0.h5)."""
    pytest.importorskip("insightface", reason="the faces extra (pip install -e '.[faces]') is not installed")
    from latentedit.data.celebahq import CELEBA_ATTRIBUTES
    from latentedit.edits.affine import AffineEdit
    from latentedit.edits.model import affine_parameters, direction_parameters, save_edit
    from latentedit.faces.attributes import AttributeClassifier, save_attribute_classifier
    from latentedit.faces.tiny import make_tiny_faces_world, write_detector_onnx
    from latentedit.io.latent_store import LatentStore, write_latent_store
    from latentedit.io.provenance import file_hash
    from latentedit.io.render_store import RenderStore, write_render_store

    torch.manual_seed(0)
    work = tmp_path_factory.mktemp("faces")
    make_tiny_faces_world(work / "tiny_faces", n_celebahq=2, n_ffhq=3)
    write_detector_onnx(work / "tiny_faces" / "detector.onnx", size=64)
    (work / "config.yaml").write_text(yaml.safe_dump({"world": "faces", "faces": {
        "psp_checkpoint": "tiny_faces/psp_tiny.pt", "generator_checkpoint": None,
        "arcface": "tiny_faces/arcface_tiny.onnx", "identity_crop": None, "precision": "fp32",
        "encode_batch_size": 4}}))
    run, names = work / "results" / "faces", list(CELEBA_ATTRIBUTES)
    psp_hash = file_hash(work / "tiny_faces" / "psp_tiny.pt")
    write_latent_store(run / "latents.h5", LatentStore(
        latents=np.zeros((2, 6, 512), np.float32), ids=np.array(["a", "b"]), split=np.array(["test", "test"]),
        attributes=np.zeros((2, 40), np.uint8), attribute_names=names,
        attrs={"world": "faces", "latent_space": "stylegan2_wplus", "generator_checkpoint_hash": psp_hash,
               "encoder_checkpoint_hash": psp_hash}))
    save_attribute_classifier(run / "oracle" / "model.pt",
                              AttributeClassifier("resnet18", 40, image_size=64, attribute_names=names))
    affine = AffineEdit(512, n_layers=6, layers=[0, 1, 2])
    with torch.no_grad():
        affine.weight.normal_(std=0.01)
        affine.bias.normal_(std=0.5)
    normal = torch.randn(6, 512)
    definition = {"source": {"Smiling": 0}, "target": {"Smiling": 1}, "attribute": "Smiling"}
    common = {"kind": "edit", "edit": "add_smile", "attribute": "Smiling", "attribute_index": names.index("Smiling"),
              "target_value": 1, "definition": definition, "attribute_names": names, "options": {}}
    models = {"lw": affine_parameters(affine), "ifg": direction_parameters(normal / normal.norm(), 0.0)}
    for method, parameters in models.items():
        save_edit(run / "edits" / method / "add_smile" / "seed0" / "model.pt", {**common, "method": method,
                                                                                **parameters})
        write_render_store(run / "render" / method / "add_smile" / "seed0.h5", RenderStore(
            images=np.zeros((2, 1, 3, 16, 16), np.uint8), alphas=np.array([0.0, 1.5]), ids=np.array(["a"]),
            latent_logits=np.zeros((2, 1, 40), np.float32), attribute_names=names,
            attrs={"method": method, "edit": "add_smile", "attribute": "Smiling", "target_value": 1,
                   "calibration": json.dumps({"d": 1.5, "reached": True, "rate": 1.0, "tau": 1.0}),
                   "generator_checkpoint_hash": psp_hash}))
    return work


@pytest.mark.slow
def test_faces_without_a_detector_are_centre_cropped_and_say_so(faces_work, tmp_path, monkeypatch):
    from latentedit.faces.align import centre_crop
    from latentedit.faces.project import encode_images
    from latentedit.faces.psp import load_psp

    ffhq = sorted((faces_work / "tiny_faces" / "ffhq").glob("*.png"))[:2]
    monkeypatch.chdir(faces_work)
    result = _cli("edit", "results/faces", *ffhq, "--edit", "add_smile", "--alphas", "0.5,1", "--judge", "--out",
                  tmp_path)
    assert result.exit_code == 0, result.output
    assert "no face detector given: each image is centre-cropped" in result.output
    out = read_edit_results(tmp_path / "lw.add_smile.npz")
    crops = np.stack([centre_crop(Image.open(p)) for p in ffhq])
    np.testing.assert_array_equal(out["inputs"], crops)
    psp = load_psp(faces_work / "tiny_faces" / "psp_tiny.pt")
    np.testing.assert_allclose(out["codes"], encode_images(psp, crops, 4, "cpu"), atol=1e-5)
    assert out["renders"].shape == (2, 3, 3, 16, 16) and out["probs"].shape == (2, 4, 40)
    np.testing.assert_allclose(out["alphas"], [0.75, 1.5])
    assert len(list(tmp_path.glob("*.lw.add_smile.png"))) == 2


@pytest.mark.slow
def test_faces_with_a_detector_are_aligned_around_the_face_it_finds(faces_work, tmp_path):
    from latentedit.faces.align import align_face
    from latentedit.faces.tiny import LANDMARKS

    ffhq = sorted((faces_work / "tiny_faces" / "ffhq").glob("*.png"))
    blind = tmp_path / "blind.onnx"
    from latentedit.faces.tiny import write_detector_onnx

    write_detector_onnx(blind, score=0.1)
    result = _cli("edit", faces_work / "results/faces", *ffhq, "--edit", "add_smile", "--method", "ifg",
                  "--raw-alpha", "--alphas", "2", "--detector", faces_work / "tiny_faces" / "detector.onnx",
                  "--out", tmp_path / "out")
    assert result.exit_code == 0, result.output
    assert "centre-cropped" not in result.output
    out = read_edit_results(tmp_path / "out" / "ifg.add_smile.npz")
    aligned = np.stack([align_face(Image.open(p), LANDMARKS * 64) for p in ffhq])  # the detector's float32 aside
    assert np.abs(out["inputs"].astype(int) - aligned).max() <= 1
    assert _cli("export", faces_work / "results/faces", "--edit", "add_smile", "--method", "ifg", "--format",
                "interfacegan", "--out", tmp_path / "b.npy").exit_code == 0
    n = np.load(tmp_path / "b.npy")
    assert n.shape == (1, 6 * 512)  # the flattened W+ normal
    np.testing.assert_allclose((out["codes"].reshape(len(ffhq), -1) + 2.0 * n).reshape(out["codes"].shape),
                               out["edited"][:, 0], atol=1e-6, rtol=0)
    result = _cli("edit", faces_work / "results/faces", ffhq[0], "--edit", "add_smile", "--detector", blind,
                  "--out", tmp_path / "none")
    assert result.exit_code == 1 and f"skipped: {ffhq[0]}: the detector blind.onnx found no face" in result.output
    assert not (tmp_path / "none").exists()
    result = _cli("edit", faces_work / "results/faces", ffhq[0], "--edit", "add_smile", "--detector",
                  faces_work / "tiny_faces" / "arcface_tiny.onnx", "--out", tmp_path / "none")
    assert result.exit_code == 1 and "face detector: " in result.output and "not a face detector" in result.output
