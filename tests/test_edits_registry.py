"""The method registry (latentedit.edits.methods) and the edit-model file (latentedit.edits.model): every method is
one entry plus one trainer, no other file names a method, the parse-time modules load without torch, and an edit
model round-trips through its file for every kind of edit."""

from __future__ import annotations

import ast
import importlib
import re
import subprocess
import sys
from collections import namedtuple
from pathlib import Path

import pytest
import torch

from latentedit.edits.affine import AffineEdit
from latentedit.edits.methods import EDIT_TYPES, METHODS, direction_step_references, get_method, method_label
from latentedit.edits.model import (affine_parameters, apply_edit, direction_parameters, edit_space_codes,
                                    load_edit, save_edit)
from latentedit.io.checkpoints import CheckpointError, save_checkpoint

REPO = Path(__file__).resolve().parents[1]


def test_every_method_has_a_trainer_and_a_valid_entry():
    for name, method in METHODS.items():
        assert method.name == name and method.edit_type in EDIT_TYPES and method.label
        trainer = importlib.import_module(method.trainer)
        assert callable(getattr(trainer, "train_edit_job", None)), method.trainer
        assert method.history_columns
    assert direction_step_references() == ["lw", "lw_nopres"]
    assert method_label("lt_core") == "LT(*)" and method_label("not_registered") == "not_registered"
    with pytest.raises(ValueError, match="unknown edit method 'lw2' \\(known: lw, lw_nopres"):
        get_method("lw2")


def _quoted_method_names(path: Path) -> list[str]:
    """String literals of a Python file that are exactly a method name (docstrings and comments mention methods
    freely; a literal equal to a name is a hard-coded method fact)."""
    tree = ast.parse(path.read_text())
    return [n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and n.value in METHODS]


def test_no_method_name_is_hard_coded_outside_the_registry():
    offenders = {}
    for path in [*(REPO / "latentedit").rglob("*.py"), *(REPO / "workflow_scripts").glob("*.py")]:
        if path.name == "methods.py":
            continue
        if names := _quoted_method_names(path):
            offenders[str(path.relative_to(REPO))] = names
    for path in [*(REPO / "rules").rglob("*.smk"), REPO / "Snakefile", REPO / "schemas" / "config.schema.yaml"]:
        code = "\n".join(line.split("#", 1)[0] for line in path.read_text().splitlines())  # comments may name them
        if names := [m for m in METHODS if re.search(rf"[\"']{m}[\"']", code)]:
            offenders[str(path.relative_to(REPO))] = names
    assert not offenders


def test_parse_time_modules_do_not_import_torch():
    code = ("import sys; import latentedit.edits.methods, latentedit.code_inputs, latentedit.config, "
            "latentedit.edits.definitions; print(sorted(m for m in ('torch', 'geomloss', 'sklearn') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "torch" not in out and "geomloss" not in out, out


def test_loading_an_edit_model_does_not_import_a_trainer():
    code = ("import sys; import latentedit.edits.model, latentedit.render.render, latentedit.render.calibrate, "
            "latentedit.evaluation.edit_metrics; print(sorted(m for m in ('geomloss', 'sklearn', "
            "'latentedit.edits.lw', 'latentedit.edits.lt', 'latentedit.edits.train') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]", out


# ---------------------------------------------------------------------------------------------------------------
# The edit-model file


def _model(kind: str, **parameters) -> dict:
    return {"kind": "edit", "method": "m", "edit": "e", "attribute": "a", "attribute_index": 0, "target_value": 1,
            "definition": {"source": {"a": 0}, "target": {"a": 1}, "attribute": "a"}, "attribute_names": ["a"],
            "options": {}, **parameters}


def _affine(dim=3, layers=None) -> AffineEdit:
    edit = AffineEdit(dim) if layers is None else AffineEdit(dim, n_layers=layers)
    with torch.no_grad():
        edit.weight.normal_(generator=torch.Generator().manual_seed(0))
        edit.bias.fill_(0.5)
    return edit


@pytest.mark.parametrize("codes", [torch.randn(5, 3), torch.randn(5, 2, 3)], ids=["flat", "wplus"])
def test_an_affine_edit_round_trips_through_its_file(tmp_path, codes):
    edit = _affine(3, None if codes.dim() == 2 else 2)
    model = _model("affine", **affine_parameters(edit))
    save_edit(tmp_path / "m.pt", model)
    loaded = load_edit(tmp_path / "m.pt")
    for alpha in (0.0, 0.5, 1.0, None):
        expected = codes + (1.0 if alpha is None else alpha) * (edit(codes, alpha=1.0) - codes)
        torch.testing.assert_close(apply_edit(loaded, codes, alpha), expected)


def test_a_direction_round_trips_and_moves_by_alpha(tmp_path):
    normal = torch.tensor([0.6, 0.8, 0.0])
    save_edit(tmp_path / "d.pt", _model("direction", **direction_parameters(normal, 0.25)))
    loaded = load_edit(tmp_path / "d.pt")
    assert loaded["intercept"] == 0.25
    z = torch.randn(4, 3)
    torch.testing.assert_close(apply_edit(loaded, z, 2.0) - z, (2.0 * normal).expand(4, 3))


def test_an_edit_in_wstar_is_applied_inside_t(tmp_path):
    from latentedit.wstar.realnvp import RealNVP

    T = RealNVP((3,), n_couplings=2, hidden=(8,))
    with torch.no_grad():
        for p in T.parameters():
            p.normal_(std=0.1, generator=torch.Generator().manual_seed(1))
    normal = torch.tensor([1.0, 0.0, 0.0])
    model = _model("direction", **direction_parameters(normal, 0.0),
                   wstar={"spec": T.spec(), "state_dict": T.state_dict()})
    save_edit(tmp_path / "w.pt", model)
    loaded = load_edit(tmp_path / "w.pt")
    z = torch.randn(6, 3)
    with torch.no_grad():
        expected = T.inverse(T(z) + 1.5 * normal)
        torch.testing.assert_close(edit_space_codes(loaded, z), T(z))
    torch.testing.assert_close(apply_edit(loaded, z, 1.5), expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("change, message", [
    (lambda m: m.pop("attribute_names"), r"lacks the key\(s\) \['attribute_names'\]"),
    (lambda m: m.update(type="rotation"), "unknown edit model type 'rotation'"),
    (lambda m: m.pop("state_dict"), r"'affine' edit model lacks the key\(s\) \['state_dict'\]"),
    (lambda m: m["state_dict"].update(weight=torch.zeros(2, 2)), "shape mismatches"),
])
def test_a_bad_edit_model_fails_naming_the_file_and_is_never_written(tmp_path, change, message):
    model = _model("affine", **affine_parameters(_affine()))
    change(model)
    path = tmp_path / "bad.pt"
    with pytest.raises(CheckpointError, match=message):
        save_edit(path, model)
    assert not path.exists()
    save_checkpoint(path, model)  # written behind save_edit's back: loading names the file
    with pytest.raises(CheckpointError, match=rf"{re.escape(str(path))}: .*{message}"):
        load_edit(path)


def test_an_edit_model_that_executes_code_is_refused(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"kind": "edit", "payload": _Evil()}, path)
    with pytest.raises(CheckpointError, match="weights_only"):
        load_edit(path)


class _Evil:
    def __reduce__(self):
        return (print, ("pwned",))


def test_an_option_a_method_fixes_does_not_reach_its_jobs_params():
    """rules/common/params.smk's edit_options: lw_paper fixes target_reach, pres_mode and transport_attributes, so its
    jobs' params leave them out and changing one reruns lw's jobs, not lw_paper's; ifg's jobs do not receive the evaluation alpha."""
    lw = {"lr": 1.0, "target_reach": 0.2, "pres_mode": "per_code_falls", "transport_attributes": 0.0}
    ns = {"config": {"edits": {"lw": lw, "ifg": {"alpha": 3.0, "C": 1.0}}},
          "get_method": get_method}
    exec((Path(__file__).resolve().parents[1] / "rules" / "common" / "params.smk").read_text(), ns)
    jobs = namedtuple("Wildcards", "method seed")
    assert ns["edit_options"](jobs("lw", "0")) == {**lw, "seed": 0}
    assert ns["edit_options"](jobs("lw_paper", "2")) == {"lr": 1.0, "seed": 2}
    assert ns["edit_options"](jobs("ifg", "0")) == {"C": 1.0, "seed": 0}
