"""The seeded weight fill of ../shared/compat/RECIPE.md, bit for bit against recipe_checksums.json."""

import hashlib
import json

import pytest
import torch

from latentedit.faces.recipe import fill_value, rule_for
from tests.compat import COMPAT, require_compat


@pytest.mark.parametrize("config", ["stylegan2_small", "stylegan2_1024", "psp_ffhq_encode"])
def test_fill_matches_checksums(config):
    require_compat()
    sums = json.loads((COMPAT / "recipe_checksums.json").read_text())[config]
    filled = 0
    for key, ref in sums.items():
        rule, form, _ = rule_for(key)
        assert rule == ref["rule"], key
        if form == "keep":
            continue
        value = fill_value(key, torch.empty(ref["shape"]))
        assert hashlib.sha256(value.numpy().tobytes()).hexdigest() == ref["sha256"], key
        filled += 1
    assert filled > 50


def test_unknown_or_ambiguous_key_is_a_layout_error():
    with pytest.raises(KeyError, match="0 recipe rules match"):
        rule_for("decoder.style.1.weight_typo")
    assert rule_for("encoder.body.3.shortcut_layer.1.running_var")[0] == "E5"
