"""Helpers shared by the training loops (latentedit.training_utils)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch

from latentedit.training_utils import Adam, EarlyStopping, pick_device, seed_everything


def test_early_stopping_max():
    stop = EarlyStopping(patience=2, mode="max")
    assert [stop.step(m) for m in (0.5, 0.6, 0.6, 0.55)] == [True, True, False, False]
    assert stop.should_stop and stop.best == 0.6


def test_early_stopping_min_with_delta_and_reset():
    stop = EarlyStopping(patience=2, mode="min", min_delta=0.1)
    assert stop.step(1.0) and not stop.step(0.95)  # not better by more than min_delta
    assert stop.step(0.5) and not stop.should_stop  # an improvement resets the count
    with pytest.raises(ValueError, match="mode"):
        EarlyStopping(1, mode="best")


def test_early_stopping_relative_delta_scales_with_the_best_value():
    # at 200 a 1e-3 threshold is 0.2; at 10 it is 0.01 — the same fraction of a W+ and of a Z loss
    for scale in (200.0, 10.0):
        stop = EarlyStopping(patience=2, mode="min", min_delta=1e-4, min_rel_delta=1e-3)
        assert stop.step(scale) and stop.threshold == pytest.approx(1e-3 * scale)
        assert not stop.step(scale * (1 - 5e-4))  # better by half the threshold: not an improvement
        assert stop.step(scale * (1 - 2e-3)) and stop.bad == 0
    stop = EarlyStopping(patience=1, mode="max", min_delta=0.05, min_rel_delta=1e-3)
    assert stop.threshold == 0.05 and stop.step(1.0)  # before any value: min_delta alone
    assert stop.threshold == 0.05 and not stop.step(1.04)  # the larger of the two counts
    with pytest.raises(ValueError, match="min_rel_delta"):
        EarlyStopping(1, min_rel_delta=-1e-3)


def test_early_stopping_also_waits_patience_steps():
    stop = EarlyStopping(patience=2, mode="min", patience_steps=5)
    assert stop.step(1.0, steps=3) and not stop.step(2.0, steps=2) and not stop.step(2.0, steps=2)
    assert stop.bad == 2 and not stop.should_stop  # two bad evaluations, but only 4 steps since the best
    assert not stop.step(2.0, steps=1) and stop.should_stop
    assert stop.step(0.5, steps=9) and not stop.should_stop  # an improvement resets both counts


def test_seed_everything_reproducible():
    g1 = seed_everything(3)
    a = (np.random.rand(), torch.rand(2), torch.rand(2, generator=g1))
    g2 = seed_everything(3)
    b = (np.random.rand(), torch.rand(2), torch.rand(2, generator=g2))
    assert a[0] == b[0]
    torch.testing.assert_close(a[1], b[1])
    torch.testing.assert_close(a[2], b[2])


def test_pick_device():
    assert pick_device("cpu") == torch.device("cpu")
    assert pick_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")


@pytest.mark.parametrize("set_to_none", [True, False])
def test_adam_gives_torchs_adam_parameters_to_the_bit(set_to_none):
    def train(optimizer):
        torch.manual_seed(0)
        w, b, u = (torch.nn.Parameter(torch.randn(*shape)) for shape in [(8, 16), (16,), (3,)])
        groups = [{"params": [w], "lr": 1e-3 / 4, "weight_decay": 5e-4 * 16},  # LT's equalised-lr groups
                  {"params": [b, u], "weight_decay": 5e-4}]
        opt = optimizer(groups, lr=1e-3, betas=(0.5, 0.99))
        g = torch.Generator().manual_seed(1)
        for step in range(30):
            x = torch.randn(5, 8, generator=g)
            loss = ((x @ w + b) ** 2).mean() + (u.sum() if step % 3 == 0 else 0)  # u has no gradient in most steps
            opt.zero_grad(set_to_none=set_to_none)
            loss.backward()
            opt.step()
        return [p.detach() for p in (w, b, u)]

    for ours, torchs in zip(train(Adam), train(torch.optim.Adam)):
        assert torch.equal(ours, torchs)
    with pytest.raises(ValueError, match="empty parameter list"):
        Adam([p for p in torch.nn.Linear(2, 2).parameters() if not p.requires_grad])


def test_training_lw_never_imports_torch_dynamo():
    # torch.optim.Optimizer's first step imports torch._dynamo: 1.0-1.4 s of every training job
    code = """
import sys, torch
from latentedit.edits.lw import LWConfig, train_lw
g = torch.Generator().manual_seed(0)
codes = [torch.randn(64, 4, generator=g) + shift for shift in (0.0, 1.0, 0.0, 1.0)]
train_lw(*codes, LWConfig(max_epochs=2))
assert "torch._dynamo" not in sys.modules, "torch._dynamo was imported"
"""
    subprocess.run([sys.executable, "-c", code], check=True)
