"""One edit model per (method, definition) (latentedit.edits.train) and its latent-space evaluation
(latentedit.edits.evaluate), on a synthetic latent store whose attributes are signs of code coordinates."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from latentedit.edits.evaluate import COLUMNS, latent_edit_metrics, summarize_edits
from latentedit.edits.definitions import changed_attributes, check_definition, select_codes
from latentedit.edits.methods import METHODS
from latentedit.edits.model import apply_edit, load_edit, save_edit
from latentedit.edits.train import EditJob, train_edit
from latentedit.io.latent_store import LatentStore
from latentedit.io.tables import to_markdown
from latentedit.labels.classifiers import LatentClassifier
from latentedit.labels.correlations import correlation_matrix

NAMES = ["a", "b", "c"]
ADD_A = {"source": {"a": 0}, "target": {"a": 1}, "attribute": "a", "lambda_pres": 2.0}  # lw_paper: 1 whatever
REMOVE_A = {"source": {"a": 1}, "target": {"a": 0}, "attribute": "a", "lambda_pres": 1.0}

LW = {"lr": 0.05, "max_epochs": 1000, "max_steps": 60, "batch_cap": 256, "blur_fraction": 0.5, "scaling": 0.5,
      "patience": 1000, "min_delta": 1.0e-4, "monitor": "val_edit_loss", "pres_absolute_gamma": False,
      "pres_space": "probability",
      "weighting": True, "weight_min_count": 1, "seed": 0}
LT = {"lambda_pres": 1.0, "lambda_reg": 1.0, "pres_weight_power": 2, "batch_size": 64, "lr": 0.05,
      "weight_decay": 0.0, "equalized_lr": False, "init": "zero", "max_epochs": 30, "max_steps": 60,
      "patience": 1000, "min_delta": 1.0e-4, "seed": 0}
IFG = {"C": 1.0, "max_samples": 200, "balance": True, "solver": "linear_svc", "seed": 0}
OPTIONS = {"lw": LW, "lw_nopres": LW, "lw_paper": LW, "lt": LT, "lt_core": LT, "ifg": IFG}


@pytest.fixture(scope="module")
def store() -> LatentStore:
    """Codes z ~ N(0, I₄); attributes a = [z₀ > 0], b = [z₁ > 0], c = [z₂ > 0]; 300/100/100 split."""
    z = np.random.default_rng(0).standard_normal((500, 4)).astype(np.float32)
    split = np.array(["train"] * 300 + ["val"] * 100 + ["test"] * 100)
    attrs = (z[:, :3] > 0).astype(np.uint8)
    return LatentStore(latents=z, ids=np.array([f"i{i}" for i in range(500)]), split=split, attributes=attrs,
                       attribute_names=list(NAMES))


@pytest.fixture(scope="module")
def classifier() -> LatentClassifier:
    """The exact classifier of the synthetic attributes: logits 4·z_l."""
    model = LatentClassifier((4,), 3, hidden=(), attribute_names=NAMES)
    with torch.no_grad():
        model.net[0].weight.copy_(4 * torch.eye(3, 4))
        model.net[0].bias.zero_()
    return model.eval()


@pytest.fixture(scope="module")
def gamma(store) -> np.ndarray:
    return correlation_matrix(store.select("train").attributes)


@pytest.fixture(scope="module")
def trained(store, classifier, gamma):
    """{method: (model, history, resolved)} for the "add a" edit (the W* methods need a trained T: test_wstar.py;
    the methods that read a generator train in test_edits_ganspace_sefa.py)."""
    return {m: train_edit(m, store, ADD_A, classifier, gamma, OPTIONS[m], name="add_a", weight_attributes=NAMES)
            for m in METHODS if not METHODS[m].in_wstar and not METHODS[m].uses_generator}


def test_every_method_gives_a_weights_only_model(trained, tmp_path, store):
    z = torch.as_tensor(store.latents[:5])
    for method, (model, history, resolved) in trained.items():
        path = tmp_path / f"{method}.pt"
        save_edit(path, model)
        raw = torch.load(path, weights_only=True)
        assert raw["kind"] == "edit" and raw["method"] == method and raw["edit"] == "add_a"
        assert raw["target_value"] == 1 and raw["attribute_index"] == 0
        loaded = load_edit(path)
        out = apply_edit(loaded, z, alpha=1.0)
        assert out.shape == z.shape and torch.isfinite(out).all()
        torch.testing.assert_close(out, apply_edit(model, z, alpha=1.0))
        assert history, method
        json.dumps(resolved)  # options.json-ready
        assert resolved["definition"] == ADD_A and resolved["n_codes"]["train_source"] > 0


def test_resolved_options_are_complete(trained):
    lw, nopres = trained["lw"][2], trained["lw_nopres"][2]
    assert lw["config"]["lambda_pres"] == 2.0 and nopres["config"]["lambda_pres"] == 0.0
    assert lw["config"]["lr"] == LW["lr"] and "blur" in lw["config"] and lw["blur"] > 0
    assert lw["weighting"] is True and lw["weight_columns"] == ["b", "c"]  # the edited attribute is left out
    paper = trained["lw_paper"][2]  # the paper's LW whatever the section and the definition say; lw: the defaults
    assert paper["config"]["target_reach"] is None and math.isnan(paper["reach"])
    assert paper["config"]["pres_mode"] == "distribution" and paper["config"]["lambda_pres"] == 1.0
    assert lw["config"]["target_reach"] == 0.2 and lw["reach"] > 0 and lw["config"]["pres_mode"] == "per_code_falls"
    assert trained["lt_core"][2]["config"]["core"] is True and trained["lt"][2]["config"]["core"] is False
    assert trained["ifg"][2]["config"] == IFG
    (row,) = trained["ifg"][1]  # InterFaceGAN: one history row
    assert set(row) == {"epoch", "train_accuracy", "val_accuracy"}
    assert row["val_accuracy"] > 0.95  # a = [z₀ > 0] is linearly separable


def test_attributes_in_the_transport_cost_reach_lw_alone(store, classifier, gamma):
    """edits.lw.transport_attributes: lw trains with it; lw_nopres (which reads no classifier) and lw_paper fix it
    at 0, the paper's cost."""
    options = {**LW, "transport_attributes": 5.0}
    resolved = {m: train_edit(m, store, ADD_A, classifier, gamma, options, name="add_a", weight_attributes=NAMES)[2]
                for m in ("lw", "lw_nopres", "lw_paper")}
    assert {m: r["config"]["transport_attributes"] for m, r in resolved.items()} == {
        "lw": 5.0, "lw_nopres": 0.0, "lw_paper": 0.0}


def test_edits_add_the_attribute_and_keep_the_others(trained, store, classifier):
    for method in ("lw", "lw_nopres", "lt", "lt_core"):
        m = latent_edit_metrics(trained[method][0], store, classifier)
        assert m["initial_rate"] == 0.0
        assert m["target_change_rate"] > 0.8, (method, m)
        assert set(m["per_attribute_preservation"]) == {"b", "c"}
    assert latent_edit_metrics(trained["lw"][0], store, classifier)["preservation"] > 0.8
    normal = trained["ifg"][0]["normal"]
    assert float(normal[0]) > 0.9  # from the source (a = 0) towards the target (a = 1)
    assert latent_edit_metrics(trained["ifg"][0], store, classifier, alpha=3.0)["target_change_rate"] > 0.9


def test_remove_is_the_swapped_definition(store, classifier, gamma):
    model, _, _ = train_edit("ifg", store, REMOVE_A, None, None, IFG, name="remove_a")
    assert model["target_value"] == 0 and float(model["normal"][0]) < -0.9
    lt, _, _ = train_edit("lt_core", store, REMOVE_A, classifier, gamma, LT, name="remove_a")
    m = latent_edit_metrics(lt, store, classifier)
    assert m["initial_rate"] == 0.0 and m["target_change_rate"] > 0.8  # predicted a = 0 after the edit


def test_summary_matches_ifg_step_to_lw(trained, store, classifier):
    models = [t[0] for t in trained.values()]
    df = summarize_edits(models, store, classifier, ifg_alpha=7.0)
    assert list(df.columns) == COLUMNS and len(df) == len(trained)
    lw_norm = df.set_index("method").loc["lw", "mean_edit_norm"]
    ifg = df.set_index("method").loc["ifg"]
    assert ifg["alpha"] == pytest.approx(lw_norm) and ifg["alpha_source"] == "lw mean edit norm"
    assert ifg["mean_edit_norm"] == pytest.approx(lw_norm, rel=1e-5)  # a unit normal moves every code by α
    alone = summarize_edits([trained["ifg"][0]], store, classifier, ifg_alpha=7.0)
    assert alone.loc[0, "alpha"] == 7.0 and alone.loc[0, "alpha_source"] == "edits.ifg.alpha"
    assert df[["initial_rate", "target_change_rate", "preservation"]].apply(lambda c: c.between(0, 1)).all().all()
    md = to_markdown(df)
    assert md.count("\n") == len(df) + 2 and md.startswith("| method | edit |")
    with pytest.raises(ValueError, match="two edit models"):
        summarize_edits(models + models[:1], store, classifier, 1.0)


def test_changed_attributes_get_no_preservation_weight(gamma):
    d = {"source": {"a": 1, "b": 0}, "target": {"c": 1}, "attribute": "c"}
    assert changed_attributes(d) == ["a", "b", "c"]
    def job(changed):
        return EditJob(method=METHODS["lw"], name="add_c", definition=d, attribute_names=NAMES, k=2,
                       target_value=1, changed=changed, codes={}, labels={}, options={}, gamma=gamma)

    torch.testing.assert_close(job(["a", "b", "c"]).gamma_row(), torch.ones(3))
    row = job(["c"]).gamma_row()
    assert float(row[0]) == pytest.approx(gamma[0, 2])


@pytest.mark.parametrize("definition, message", [
    ({**ADD_A, "source": {"z": 0}}, r"add_a\.source: unknown attribute 'z'"),
    ({**ADD_A, "target": {"a": 1, "q": 1}}, r"add_a\.target: unknown attribute 'q'"),
    ({**ADD_A, "attribute": "b"}, r"add_a\.attribute: 'b' must be one of the target's attributes"),
    ({**ADD_A, "source": {"a": 1}}, "nothing to edit"),
    ({**ADD_A, "source": {"a": 2}}, r"add_a\.source\.a: label must be 0 or 1"),
])
def test_bad_definitions_name_the_edit_and_key(definition, message):
    with pytest.raises(ValueError, match=message):
        check_definition(definition, NAMES, "add_a")


def test_empty_selection_and_missing_classifier_are_errors(store):
    with pytest.raises(ValueError, match="needs the latent classifier"):
        train_edit("lt", store, ADD_A, None, None, LT, name="add_a")
    no_val = LatentStore(store.latents, store.ids, np.where(store.split == "val", "test", store.split),
                         store.attributes, list(NAMES))
    with pytest.raises(ValueError, match="add_a: no val code matches the source"):
        train_edit("ifg", no_val, ADD_A, None, None, IFG, name="add_a")
    z, labels = select_codes(store, {"a": 1, "b": 0}, "test")
    assert len(z) > 0 and (labels[:, 0] == 1).all() and (labels[:, 1] == 0).all()
