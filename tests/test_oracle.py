"""The layout-aware digits oracle (latentedit.oracles.digits_oracle): attribute composition from slot
probabilities, the accuracy summary, and its checkpoint."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from latentedit.data.digits import DigitsConfig, build_digits
from latentedit.io.checkpoints import CheckpointError, save_checkpoint
from latentedit.oracles.digits_oracle import (EMPTY, OracleConfig, SlotOracle, attribute_accuracy, load_oracle,
                                              predict_images, save_oracle, train_oracle)


def brute_force_attributes(p: np.ndarray, max_digits: int) -> np.ndarray:
    """Exact P(count = n), P(has_d) by enumerating every joint slot assignment. p: (B, S, 11) → (B, max_digits+10)."""
    b, s, _ = p.shape
    out = np.zeros((b, max_digits + 10))
    for combo in itertools.product(range(11), repeat=s):
        prob = np.prod([p[:, i, c] for i, c in enumerate(combo)], axis=0)  # (B,)
        n = sum(c != EMPTY for c in combo)
        if 1 <= n <= max_digits:
            out[:, n - 1] += prob
        for d in set(combo) - {EMPTY}:
            out[:, max_digits + d] += prob
    return out


@pytest.mark.parametrize("seed, max_digits", [(0, 4), (1, 2), (2, 3)])
def test_predict_composes_slot_probabilities_exactly(seed, max_digits):
    grid = 2
    model = SlotOracle(1, 16, grid, max_digits, width=2, feature_dim=3)
    gen = torch.Generator().manual_seed(seed)
    logits = torch.randn(3, grid ** 2, 11, generator=gen) * 2
    feats = torch.randn(3, grid ** 2, 3, generator=gen)
    model.forward = lambda x: (logits, feats)  # isolate the composition from the CNN
    out = model.predict(torch.zeros(3, 1, 16, 16))
    p = logits.softmax(-1).double().numpy()
    np.testing.assert_allclose(out["probs"].double().numpy(), brute_force_attributes(p, max_digits), atol=1e-5)
    # the closed form stated in the module docstring, P(has_d) = 1 − Π_s (1 − p_s(d))
    np.testing.assert_allclose(out["probs"][:, max_digits:].numpy(), 1 - np.prod(1 - p[..., :10], axis=1), atol=1e-5)
    assert out["embedding"].shape == (3, grid ** 2 * 3)
    torch.testing.assert_close(out["slot_classes"], logits.argmax(-1))


def test_predict_on_certain_slots_gives_hard_attributes():
    model = SlotOracle(1, 16, 2, 4, width=2, feature_dim=3)
    classes = torch.tensor([[7, EMPTY, 7, 2]])
    logits = torch.nn.functional.one_hot(classes, 11).float() * 50
    model.forward = lambda x: (logits, torch.zeros(1, 4, 3))
    probs = model.predict(torch.zeros(1, 1, 16, 16))["probs"][0]
    expected = torch.zeros(14)
    expected[2] = 1  # count_3
    expected[4 + 7] = expected[4 + 2] = 1
    torch.testing.assert_close(probs, expected, atol=1e-6, rtol=0)


def test_slots_are_row_major():
    model = SlotOracle(1, 4, 2, 4, width=2, feature_dim=3)
    x = torch.arange(16.0).reshape(1, 1, 4, 4)
    sl = model.slots(x)
    assert sl.shape == (4, 1, 2, 2)
    torch.testing.assert_close(sl[1, 0], torch.tensor([[2.0, 3.0], [6.0, 7.0]]))  # top-right
    torch.testing.assert_close(sl[2, 0], torch.tensor([[8.0, 9.0], [12.0, 13.0]]))  # bottom-left


def test_attribute_accuracy_by_hand():
    # max_digits = 2: columns count_1, count_2, has_0..has_9
    attributes = np.zeros((2, 12), np.uint8)
    attributes[0, [0, 2 + 3]] = 1  # one digit, a 3
    attributes[1, [1, 2 + 3, 2 + 5]] = 1  # two digits, 3 and 5
    probs = np.zeros((2, 12))
    probs[0, [0, 2 + 3]] = 0.9  # all right
    probs[1, 0] = 0.8  # count wrong (1 instead of 2)
    probs[1, 2 + 3] = 0.7  # has_3 right, has_5 missed
    acc = attribute_accuracy(probs, attributes, max_digits=2)
    assert acc["count_accuracy"] == 0.5
    assert acc["presence_all_right"] == 0.5
    assert acc["presence_accuracy_mean"] == pytest.approx(19 / 20)
    assert acc["presence_accuracy_has_5"] == 0.5 and acc["presence_accuracy_has_3"] == 1.0


@pytest.fixture(scope="module")
def tiny_world():
    return build_digits(DigitsConfig(canvas=16, grid=2, digit_size=6, max_digits=3, n_train=32, n_val=8,
                                     n_test=8, seed=0))


def test_train_save_load_round_trip(tiny_world, tmp_path):
    cfg = OracleConfig(width=2, feature_dim=4, batch_size=16, max_epochs=2, patience=1, seed=0)
    model, metrics = train_oracle(tiny_world, cfg, torch.device("cpu"))
    assert 1 <= len(metrics["history"]) <= 2
    assert set(metrics["test"]) >= {"count_accuracy", "presence_accuracy_mean", "presence_all_right"}
    assert metrics["options"]["width"] == 2
    path = tmp_path / "oracle.pt"
    save_oracle(path, model, metrics)
    loaded = load_oracle(path)
    assert loaded.spec() == model.spec() and not loaded.training
    x = tiny_world.images[:5]
    np.testing.assert_allclose(predict_images(loaded, x, "cpu")["probs"],
                               predict_images(model, x, "cpu")["probs"], atol=1e-6)


def test_load_oracle_refuses_other_kinds(tmp_path):
    path = tmp_path / "x.pt"
    save_checkpoint(path, {"kind": "dlsgan", "spec": {}, "state_dict": {}})
    with pytest.raises(CheckpointError, match="digits_oracle"):
        load_oracle(path)
