"""The `latentedit` command and the API behind it (latentedit.runs) on a made-up finished digits run: a random tiny
DLSGAN, its encoder, an oracle, a latent store, an LW-style affine edit, an InterFaceGAN direction and an edit in W*,
their render stores' calibration and a results table (of one training seed, 0) — everything a real run leaves,
written by the library's own writers in a second. The end-to-end runs on real Snakemake outputs are
tests/test_cli_workflow.py (slow)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

import latentedit
from latentedit.cli import main
from latentedit.data.digits import DigitsConfig, attribute_names, build_digits
from latentedit.dlsgan.checkpoint import load_dlsgan, load_encoder, save_dlsgan, save_encoder
from latentedit.dlsgan.models import Discriminator, Generator
from latentedit.edits.affine import AffineEdit
from latentedit.edits.model import affine_parameters, apply_edit, direction_parameters, save_edit
from latentedit.evaluation.aggregate import collect
from latentedit.evaluation.edit_metrics import edit_metric_rows
from latentedit.imaging import generate_uint8
from latentedit.io.edit_results import read_edit_results
from latentedit.io.latent_store import LatentStore, write_latent_store
from latentedit.io.provenance import file_hash
from latentedit.io.render_store import RenderStore, write_render_store
from latentedit.oracles.digits_oracle import SlotOracle, load_oracle, predict_images, save_oracle
from latentedit.projection.project import project_images
from latentedit.runs import RunError

NAMES = attribute_names(4)
EDIT = "add_digit_1to2"
SEED = 0  # the run's one training seed (edits.seeds: [0]): edits/<m>/<edit>/seed0/model.pt, render/<m>/<edit>/seed0.h5
D = {"lw": 0.75, "ifg": 2.5, "ifg_wstar": 1.0}  # the made-up calibrated steps
DEFINITION = {"source": {"count_1": 1}, "target": {"count_2": 1}, "attribute": "count_2"}


def _model(method: str, **parameters) -> dict:
    return {"kind": "edit", "method": method, "edit": EDIT, "attribute": "count_2",
            "attribute_index": NAMES.index("count_2"), "target_value": 1, "definition": DEFINITION,
            "attribute_names": NAMES, "options": {}, **parameters}


def make_digits_run(work: Path) -> Path:
    """``work/results/digits`` of a made-up finished run (see the module docstring); returns the run directory."""
    torch.manual_seed(0)
    run = work / "results" / "digits"
    g = Generator(z_dim=8, canvas=32, channels=1, width=8, max_channels=16)
    d = Discriminator(z_dim=8, canvas=32, channels=1, width=8, max_channels=16, hidden=16)
    checkpoint = run / "dlsgan" / "dls" / "checkpoint.pt"
    save_dlsgan(checkpoint, {"generator": g, "discriminator": d, "scale": torch.rand(8) + 0.5, "v": torch.ones(8),
                             "options": {}, "history": []})
    save_encoder(run / "projection" / "encoder.pt", d, file_hash(checkpoint), [])
    save_oracle(run / "oracle" / "model.pt", SlotOracle(1, 32, 2, 4, width=4, feature_dim=8), {"test": {}})
    rng = np.random.default_rng(0)
    n = 12
    write_latent_store(run / "latents.h5", LatentStore(
        latents=rng.standard_normal((n, 8)).astype(np.float32), ids=np.array([f"test_{i}" for i in range(n)]),
        split=np.array(["test"] * n), attributes=rng.integers(0, 2, (n, len(NAMES))).astype(np.uint8),
        attribute_names=NAMES, attrs={"world": "digits", "latent_space": "dlsgan_scaled_z",
                                      "generator_checkpoint_hash": file_hash(checkpoint),
                                      "encoder_checkpoint_hash": file_hash(run / "projection" / "encoder.pt")}))
    affine = AffineEdit(8)
    with torch.no_grad():
        affine.weight.normal_(std=0.2)
        affine.bias.normal_()
    normal = torch.randn(8)
    from latentedit.wstar.realnvp import RealNVP

    T = RealNVP((8,), n_couplings=2, hidden=(8,))
    models = {"lw": _model("lw", **affine_parameters(affine)),
              "ifg": _model("ifg", **direction_parameters(normal / normal.norm(), 0.1)),
              "ifg_wstar": _model("ifg_wstar", **direction_parameters(normal / normal.norm(), 0.0),
                                  wstar={"spec": T.spec(), "state_dict": T.state_dict()})}
    metrics = []
    for method, model in models.items():
        save_edit(run / "edits" / method / EDIT / f"seed{SEED}" / "model.pt", model)
        alphas = [0.0, D[method], 2 * D[method]]
        calibration = {"d": D[method], "rate": 1.0, "reached": True, "tau": 1.0, "unit": 1.0, "n_codes": 5,
                       "n_images": 4}
        write_render_store(run / "render" / method / EDIT / f"seed{SEED}.h5", RenderStore(
            images=np.zeros((3, 4, 1, 32, 32), np.uint8), alphas=np.array(alphas), ids=np.array(["a", "b", "c", "d"]),
            latent_logits=np.zeros((3, 4, len(NAMES)), np.float32), attribute_names=NAMES,
            attrs={"method": method, "edit": EDIT, "attribute": "count_2", "target_value": 1,
                   "calibration": json.dumps(calibration), "generator_checkpoint_hash": file_hash(checkpoint)}))
        probs = rng.random((3, 4, len(NAMES)))
        df = edit_metric_rows(method=method, edit=EDIT, definition=DEFINITION, attribute_names=NAMES, alphas=alphas,
                              edited_probs=probs, edited_embeddings=rng.random((3, 4, 5)), input_probs=probs[0],
                              input_embeddings=rng.random((4, 5)), latent_logits=rng.standard_normal(probs.shape),
                              edited_slots=rng.integers(0, 11, (3, 4, 4)), empty_slot=10)
        cal_rows = pd.DataFrame([{"method": method, "edit": EDIT, "attribute": "count_2", "alpha": np.nan,
                                  "metric": f"calibration.{k}", "value": float(v)} for k, v in calibration.items()])
        metrics.append(pd.concat([df, cal_rows], ignore_index=True).assign(seed=SEED))  # as the edit_metrics script
    collect(metrics, {}, {}, {}, world="digits").to_parquet(run / "metrics.parquet", index=False)
    return run


def write_digit_pngs(folder: Path, n: int, seed: int = 0, digits: int | None = 1, **world) -> list[Path]:
    """``n`` newly composed digit images (``digits`` digits each; None: any) as grayscale PNGs. With a run's
    ``digits.seed`` (and its other ``digits.*`` options as ``world``) the source digits are split as in the run, so
    these are composed from its test-split digits only, never seen in training; with one train and one val image
    the compositions are not the run's own test images."""
    store = build_digits(DigitsConfig(**{**world, "n_train": 1, "n_val": 1, "n_test": max(8 * n, 20), "seed": seed}))
    test = store.select("test")
    rows = np.flatnonzero(test.attributes[:, digits - 1] == 1) if digits else np.arange(len(test.images))
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in rows[:n]:
        paths.append(folder / f"{test.ids[i]}.png")
        Image.fromarray(test.images[i, 0]).save(paths[-1])
    assert len(paths) == n
    return paths


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory) -> Path:
    return make_digits_run(tmp_path_factory.mktemp("run"))


@pytest.fixture(scope="module")
def pngs(tmp_path_factory) -> list[Path]:
    return write_digit_pngs(tmp_path_factory.mktemp("pngs"), 3)


def _cli(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def _loaded(run: Path):
    g, _, s, _ = load_dlsgan(run / "dlsgan" / "dls" / "checkpoint.pt")
    return g, load_encoder(run / "projection" / "encoder.pt"), s


# ---------------------------------------------------------------------------------------------------------------
# latentedit edits


def test_edits_lists_every_trained_edit_with_d_and_the_measured_rates(digits_run):
    result = _cli("edits", digits_run)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].startswith("| method | edit | d | calibrated | target_change_rate | attribute_preservation")
    rows = {line.split("|")[1].strip(): line for line in lines[2:]}
    assert set(rows) == set(D)
    table = pd.read_parquet(digits_run / "metrics.parquet")
    for method, d in D.items():
        cells = [c.strip() for c in rows[method].split("|")[1:-1]]
        assert cells[1] == EDIT and float(cells[2]) == pytest.approx(d, abs=1e-3) and cells[3] == "True"
        at_d = table[(table["method"] == method) & (table["alpha"] == d) & (table["metric"] == "target_change_rate")]
        assert float(cells[4]) == pytest.approx(float(at_d["value"].iloc[0]), abs=1e-3)
        clean = table[(table["method"] == method) & (table["alpha"] == d) & (table["metric"] == "clean_edit_rate")]
        assert float(cells[9]) == pytest.approx(float(clean["value"].iloc[0]), abs=1e-3)  # digits: slot columns
    assert lines[0].endswith("| slots_kept | clean_edit_rate | n_images |")


# ---------------------------------------------------------------------------------------------------------------
# latentedit edit


def test_edit_writes_a_strip_per_image_and_the_codes_it_made(digits_run, pngs, tmp_path):
    result = _cli("edit", digits_run, *pngs, "--edit", EDIT, "--alphas", "0.5,1", "--out", tmp_path / "out")
    assert result.exit_code == 0, result.output
    strips = sorted((tmp_path / "out").glob("*.png"))
    assert [p.name for p in strips] == sorted(f"{p.stem}.lw.{EDIT}.png" for p in pngs)
    for p in strips:
        with Image.open(p) as im:
            assert im.width > 4 * 128 and im.height > 128  # input, reconstruction, two edits, ≥ 128 px each
    out = read_edit_results(tmp_path / "out" / f"lw.{EDIT}.npz")
    assert list(out["files"]) == [str(p) for p in pngs]
    np.testing.assert_allclose(out["alphas"], [0.5 * D["lw"], D["lw"]])
    np.testing.assert_allclose(out["alphas_in_d"], [0.5, 1.0])
    assert float(out["d"]) == D["lw"] and str(out["method"]) == "lw" and "probs" not in out
    # the library's own projection, edit and generator, nothing re-implemented
    g, encoder, s = _loaded(digits_run)
    inputs = np.stack([np.asarray(Image.open(p))[None] for p in pngs])
    np.testing.assert_array_equal(out["inputs"], inputs)  # 32×32 grayscale PNGs are the canvas as they are
    np.testing.assert_allclose(out["codes"], project_images(encoder, s, inputs, "cpu"), atol=1e-6)
    model = torch.load(digits_run / "edits" / "lw" / EDIT / f"seed{SEED}" / "model.pt", weights_only=True)
    z = torch.as_tensor(out["codes"])
    for a, alpha in enumerate(out["alphas"]):
        np.testing.assert_allclose(out["edited"][:, a], apply_edit(model, z, float(alpha)).numpy(), atol=1e-6)
    np.testing.assert_array_equal(out["renders"][:, 0], generate_uint8(g, z, 64).numpy())
    np.testing.assert_array_equal(out["renders"][:, 2], generate_uint8(g, torch.as_tensor(out["edited"][:, 1]), 64))
    assert not list((tmp_path / "out").glob(".*tmp*"))


def test_raw_alpha_steps_and_the_judge(digits_run, pngs, tmp_path):
    result = _cli("edit", digits_run, *pngs[:2], "--edit", EDIT, "--method", "ifg", "--raw-alpha", "--steps", "3",
                  "--max-alpha", "3", "--judge", "--out", tmp_path)
    assert result.exit_code == 0, result.output
    out = read_edit_results(tmp_path / f"ifg.{EDIT}.npz")
    np.testing.assert_allclose(out["alphas"], [1.0, 2.0, 3.0])
    assert np.isnan(out["alphas_in_d"]).all()
    assert out["probs"].shape == (2, 5, len(NAMES)) and list(out["attribute_names"]) == NAMES
    oracle = load_oracle(digits_run / "oracle" / "model.pt")
    np.testing.assert_allclose(out["probs"][:, 0], predict_images(oracle, out["inputs"], "cpu")["probs"], atol=1e-6)
    np.testing.assert_allclose(out["probs"][:, 1], predict_images(oracle, out["renders"][:, 0], "cpu")["probs"],
                               atol=1e-6)


def test_default_alphas_are_half_steps_of_d_up_to_2d(digits_run, pngs, tmp_path):
    assert _cli("edit", digits_run, pngs[0], "--edit", EDIT, "--out", tmp_path).exit_code == 0
    np.testing.assert_allclose(read_edit_results(tmp_path / f"lw.{EDIT}.npz")["alphas_in_d"], [0.5, 1, 1.5, 2])
    result = _cli("edit", digits_run, pngs[0], "--edit", EDIT, "--alphas", "1", "--steps", "2", "--out", tmp_path)
    assert result.exit_code == 2 and "give --alphas or --steps, not both" in result.output
    result = _cli("edit", digits_run, pngs[0], "--edit", EDIT, "--alphas", "1,x", "--out", tmp_path)
    assert result.exit_code == 2 and "not a comma-separated list of numbers" in result.output


def test_a_bad_image_is_named_and_the_others_are_still_edited(digits_run, pngs, tmp_path):
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "notes.png").write_text("not an image")
    (bad / "truncated.png").write_bytes(pngs[0].read_bytes()[:60])
    Image.new("L", (4, 4)).save(bad / "tiny.png")
    files = [pngs[0], bad / "notes.png", bad / "missing.png", bad / "truncated.png", bad / "tiny.png", bad, pngs[1]]
    result = _cli("edit", digits_run, *files, "--edit", EDIT, "--alphas", "1", "--out", tmp_path / "out")
    assert result.exit_code == 1
    assert f"skipped: {bad / 'notes.png'}: not an image file PIL can read" in result.output
    assert f"skipped: {bad / 'missing.png'}: file does not exist" in result.output
    assert f"skipped: {bad / 'truncated.png'}: cannot read the image" in result.output
    assert f"skipped: {bad / 'tiny.png'}: 4×4 pixels is smaller than the 8 px" in result.output
    assert f"skipped: {bad}: not a regular file" in result.output
    assert "6 of 7 image(s)" not in result.output and "5 of 7 image(s) could not be edited" in result.output
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(
        [f"{pngs[0].stem}.lw.{EDIT}.png", f"{pngs[1].stem}.lw.{EDIT}.png", f"lw.{EDIT}.npz"])
    assert list(read_edit_results(tmp_path / "out" / f"lw.{EDIT}.npz")["files"]) == [str(pngs[0]), str(pngs[1])]


def test_colour_light_and_odd_sized_images_are_brought_to_the_canvas(digits_run, tmp_path):
    from latentedit.io.user_images import digits_canvas, read_image

    ink = np.full((40, 20, 3), 255, np.uint8)  # dark ink on white paper, RGB, not square
    ink[10:30, 5:15] = (0, 0, 90)
    Image.fromarray(ink).save(tmp_path / "paper.jpg")
    rgba = np.zeros((32, 32, 4), np.uint8)
    rgba[8:24, 8:24] = (255, 255, 255, 255)
    Image.fromarray(rgba, "RGBA").save(tmp_path / "alpha.png")
    canvas, notes = digits_canvas(read_image(tmp_path / "paper.jpg"), 32)
    assert canvas.shape == (1, 32, 32) and canvas.dtype == np.uint8
    assert notes == ["inverted (light background)", "padded from 20×40 to a square"]
    assert canvas[0, 16, 16] > 200 and canvas[0, 16, 2] == 0  # the ink is now light, the padding black
    canvas, notes = digits_canvas(read_image(tmp_path / "alpha.png"), 32)
    assert notes == [] and canvas[0, 16, 16] == 255 and canvas[0, 2, 2] == 0  # transparent → black
    result = _cli("edit", digits_run, tmp_path / "paper.jpg", "--edit", EDIT, "--alphas", "1", "--out",
                  tmp_path / "out")
    assert result.exit_code == 0 and "paper.jpg: inverted (light background)" in result.output


def test_an_unknown_edit_or_method_lists_what_the_run_has(digits_run, pngs, tmp_path):
    result = _cli("edit", digits_run, pngs[0], "--edit", "add_9", "--out", tmp_path / "out")
    assert result.exit_code == 1 and f"unknown edit 'add_9' (trained in this run: {EDIT})" in result.output
    result = _cli("edit", digits_run, pngs[0], "--edit", EDIT, "--method", "lx", "--out", tmp_path / "out")
    assert result.exit_code == 1
    assert "unknown method 'lx' (registered: lw, lw_nopres, lt" in result.output
    assert "trained in this run: ifg, ifg_wstar, lw)" in result.output
    result = _cli("export", digits_run, "--edit", EDIT, "--method", "lt", "--format", "npz")
    assert result.exit_code == 1 and "has no 'lt' model in this run (its methods here: ifg, ifg_wstar, lw)" \
        in result.output
    assert not (tmp_path / "out").exists()  # nothing written before the edit was known


def test_a_detector_is_for_faces_only(digits_run, pngs, tmp_path):
    result = _cli("edit", digits_run, pngs[0], "--edit", EDIT, "--detector", tmp_path / "det.onnx", "--out", tmp_path)
    assert result.exit_code == 1 and "a face detector applies to the faces world only" in result.output


@pytest.mark.parametrize("missing, command, target", [
    ("projection/encoder.pt", "edit", "results/digits/projection/encoder.pt"),
    (f"render/lw/{EDIT}/seed{SEED}.h5", "edit", f"results/digits/render/lw/{EDIT}/seed{SEED}.h5"),
    ("latents.h5", "edit", "results/digits/latents.h5"),
    ("metrics.parquet", "edits", "results/digits/metrics.parquet"),
    ("oracle/model.pt", "judge", "results/digits/oracle/model.pt"),
    ("edits", "edits", "snakemake edits"),
])
def test_a_missing_output_names_the_snakemake_target_that_makes_it(digits_run, pngs, tmp_path, missing, command,
                                                                   target):
    run = tmp_path / "work" / "results" / "digits"
    shutil.copytree(digits_run, run)
    (shutil.rmtree if (run / missing).is_dir() else Path.unlink)(run / missing)
    if command == "edits":
        result = _cli("edits", run)
    else:
        result = _cli("edit", run, pngs[0], "--edit", EDIT, "--alphas", "1", "--out", tmp_path / "out",
                      *(["--judge"] if command == "judge" else []))
    assert result.exit_code == 1
    assert f"`snakemake {target}" in result.output or target in result.output, result.output
    assert f"in {tmp_path / 'work'}" in result.output
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_the_generator_is_found_by_the_hash_the_run_recorded(digits_run, pngs, tmp_path):
    run = tmp_path / "work" / "results" / "digits"
    shutil.copytree(digits_run, run)
    moved = tmp_path / "elsewhere.pt"
    (run / "dlsgan" / "dls" / "checkpoint.pt").rename(moved)
    other = tmp_path / "other.pt"
    save_dlsgan(other, {"generator": Generator(8, 32, 1, 8, 16), "discriminator": Discriminator(8, 32, 1, 8, 16, 16),
                        "scale": torch.ones(8), "v": torch.ones(8), "options": {}, "history": []})
    args = ["edit", run, pngs[0], "--edit", EDIT, "--alphas", "1", "--out", tmp_path / "out"]
    result = _cli(*args, "--generator", other)
    assert result.exit_code == 1
    assert "cannot find the generator checkpoint this run used (hash" in result.output
    assert f"{other} (hash {file_hash(other)})" in result.output and "--generator" in result.output
    result = _cli(*args, "--generator", moved)
    assert result.exit_code == 0, result.output


# ---------------------------------------------------------------------------------------------------------------
# latentedit export


def test_export_npz_of_an_affine_edit_reproduces_it(digits_run, tmp_path):
    result = _cli("export", digits_run, "--edit", EDIT, "--format", "npz", "--out", tmp_path / "lw.npz")
    assert result.exit_code == 0, result.output
    with np.load(tmp_path / "lw.npz") as f:  # allow_pickle=False: plain arrays only
        A, b, d = f["A"], f["b"], float(f["d"])
        assert str(f["type"]) == "affine" and str(f["formula"]) == "z' = z + alpha * (A @ z + b)"
    assert A.shape == (8, 8) and b.shape == (8,) and A.dtype == np.float32 and d == D["lw"]
    model = torch.load(digits_run / "edits" / "lw" / EDIT / f"seed{SEED}" / "model.pt", weights_only=True)
    z = np.random.default_rng(0).standard_normal((5, 8)).astype(np.float32)
    for alpha in (0.5, 1.0, 2.0):
        np.testing.assert_allclose(z + alpha * (z @ A.T + b), apply_edit(model, torch.as_tensor(z), alpha).numpy(),
                                   atol=1e-5)


def test_export_npz_of_a_wplus_edit_holds_one_map_per_layer():
    from latentedit.edits.export import edit_arrays

    edit = AffineEdit(4, n_layers=3, layers=[0, 2])
    with torch.no_grad():
        edit.weight.normal_()
        edit.bias.normal_()
    arrays = edit_arrays(_model("lw", **affine_parameters(edit)))
    A, b = arrays["A"], arrays["b"]
    assert A.shape == (3, 4, 4) and b.shape == (3, 4) and list(arrays["layers"]) == [0, 2]
    assert not A[1].any() and not b[1].any()
    z = torch.randn(6, 3, 4)
    expected = apply_edit(_model("lw", **affine_parameters(edit)), z, 1.5).numpy()
    np.testing.assert_allclose(z.numpy() + 1.5 * (np.einsum("lij,nlj->nli", A, z.numpy()) + b), expected, atol=1e-5)


def test_export_npz_of_a_coupled_wplus_edit_holds_one_map_on_the_flattened_layers():
    from latentedit.edits.export import edit_arrays

    edit = AffineEdit(4, n_layers=3, layers=[0, 2], couple_layers=True)
    with torch.no_grad():
        edit.weight.normal_()
        edit.bias.normal_()
    model = _model("lw", **affine_parameters(edit))
    arrays = edit_arrays(model)
    A, b, layers = arrays["A"], arrays["b"], list(arrays["layers"])
    assert A.shape == (8, 8) and b.shape == (8,) and layers == [0, 2]
    z = torch.randn(6, 3, 4).numpy()
    expected = z.copy()
    expected[:, layers] += 1.5 * (z[:, layers].reshape(6, -1) @ A.T + b).reshape(6, 2, 4)
    np.testing.assert_allclose(expected, apply_edit(model, torch.as_tensor(z), 1.5).numpy(), atol=1e-5)


@pytest.mark.parametrize("raw, alphas", [(True, "0.5,-1,3"), (False, "0.5,1,2")])
def test_interfacegans_formula_on_the_exported_boundary_gives_the_commands_codes(digits_run, pngs, tmp_path, raw,
                                                                                 alphas):
    result = _cli("export", digits_run, "--edit", EDIT, "--method", "ifg", "--format", "interfacegan", "--out",
                  tmp_path / "boundary.npy")
    assert result.exit_code == 0, result.output
    n = np.load(tmp_path / "boundary.npy")
    assert n.shape == (1, 8) and n.dtype == np.float32
    assert abs(np.linalg.norm(n.astype(np.float64)) - 1) < 1e-6
    result = _cli("edit", digits_run, *pngs, "--edit", EDIT, "--method", "ifg", "--alphas", alphas,
                  *(["--raw-alpha"] if raw else []), "--out", tmp_path / "out")
    assert result.exit_code == 0, result.output
    out = read_edit_results(tmp_path / "out" / f"ifg.{EDIT}.npz")
    for a, alpha in enumerate(float(x) for x in alphas.split(",")):
        step = alpha if raw else alpha * D["ifg"]
        np.testing.assert_allclose(out["codes"] + step * n, out["edited"][:, a], atol=1e-6, rtol=0)  # z + α·n


def test_export_refuses_what_has_no_such_form_and_says_why(digits_run, tmp_path):
    result = _cli("export", digits_run, "--edit", EDIT, "--method", "ifg_wstar", "--format", "interfacegan",
                  "--out", tmp_path / "w.npy")
    assert result.exit_code == 1 and "edits inside W*" in result.output and "cannot be exported" in result.output
    result = _cli("export", digits_run, "--edit", EDIT, "--method", "ifg_wstar", "--format", "npz", "--out",
                  tmp_path / "w.npz")
    assert result.exit_code == 1 and "neither an affine map nor a direction of the code space" in result.output
    result = _cli("export", digits_run, "--edit", EDIT, "--format", "interfacegan", "--out", tmp_path / "a.npy")
    assert result.exit_code == 1 and "is an affine edit" in result.output and "--format npz" in result.output
    assert not list(tmp_path.iterdir())


def test_export_npz_of_a_direction_and_the_default_name(digits_run, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert _cli("export", digits_run, "--edit", EDIT, "--method", "ifg", "--format", "npz").exit_code == 0
    with np.load(tmp_path / f"ifg.{EDIT}.npz") as f:
        assert f["n"].shape == (8,) and float(f["intercept"]) == pytest.approx(0.1)


# ---------------------------------------------------------------------------------------------------------------
# The Python API


def test_the_python_api_loads_a_run_and_applies_an_edit_in_units_of_d(digits_run, pngs):
    run = latentedit.load_run(digits_run, device="cpu")
    assert set(run.edits) == {(m, EDIT) for m in D} and run.world == "digits"
    assert run.seed == SEED  # the lowest (here the only) training seed
    with pytest.raises(RunError, match=re.escape(f"has no edit models of seed 7 (trained seeds: [{SEED}])")):
        latentedit.load_run(digits_run, device="cpu", seed=7)
    edit = run.edit(EDIT)  # the default method
    assert edit.method == "lw" and edit.d == D["lw"]
    codes = run.encoder.project([run.encoder.prepare(p) for p in pngs])
    assert codes.shape == (3, 8) and codes.dtype == np.float32
    model = torch.load(edit.path, weights_only=True)
    np.testing.assert_allclose(edit.apply(codes, 2.0), apply_edit(model, torch.as_tensor(codes), 2 * D["lw"]).numpy())
    np.testing.assert_allclose(edit.apply(torch.as_tensor(codes), 2.0, raw=True).numpy(),
                               apply_edit(model, torch.as_tensor(codes), 2.0).numpy())
    images = run.render(edit.apply(codes, 1.0))
    assert images.shape == (3, 1, 32, 32) and images.dtype == np.uint8
    assert run.judge.predict(images)["probs"].shape == (3, len(NAMES))


def test_the_console_script_is_installed():
    exe = Path(sys.executable).parent / "latentedit"
    assert exe.exists(), "pip install -e . installs the console script (pyproject [project.scripts])"
    out = subprocess.run([str(exe), "--help"], capture_output=True, text=True, check=True).stdout
    assert all(command in out for command in ("edit ", "edits ", "export "))
