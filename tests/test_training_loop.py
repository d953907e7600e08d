"""The shared training loop (latentedit.training_utils.fit): best-state restore, patience, min_delta, mode, the step
cap, the epoch −1 row and the history columns, on a one-weight module whose "training" is scripted."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from latentedit.training_utils import fit


class Scripted:
    """A one-weight module that epoch e sets to e (in place) and whose validation loss is read from ``values``.

    ``values`` maps the weight (−1 = the initial state, then the epoch) to ``val_loss``; each epoch takes
    ``steps_per_epoch`` steps, or fewer when the budget is smaller. Calls are recorded with the module's mode.
    """

    def __init__(self, values: dict[int, float], steps_per_epoch: int = 3):
        self.values, self.steps_per_epoch = values, steps_per_epoch
        self.module = nn.Linear(1, 1, bias=False)
        with torch.no_grad():
            self.module.weight.fill_(-1.0)
        self.budgets: list[int | None] = []
        self.modes: list[tuple[str, bool]] = []

    @property
    def weight(self) -> int:
        return int(self.module.weight.item())

    def train_epoch(self, epoch: int, step_budget: int | None) -> tuple[dict, int]:
        self.budgets.append(step_budget)
        self.modes.append(("train", self.module.training))
        with torch.no_grad():
            self.module.weight.fill_(float(epoch))
        taken = self.steps_per_epoch if step_budget is None else min(self.steps_per_epoch, step_budget)
        return {"train_loss": 10.0 + epoch}, taken

    def evaluate(self) -> dict:
        self.modes.append(("evaluate", self.module.training))
        return {"val_loss": self.values[self.weight]}

    def fit(self, **kw):
        kw = {"monitor": "val_loss", "max_epochs": 100, "progress": False, **kw}
        return fit(self.module, self.train_epoch, self.evaluate, **kw)


def test_restores_the_best_epoch_not_the_last():
    run = Scripted({0: 3.0, 1: 2.0, 2: 4.0, 3: 4.5})
    history, best = run.fit(patience=2)
    assert [r["epoch"] for r in history] == [0, 1, 2, 3]  # two epochs without improvement after epoch 1
    assert [r["best"] for r in history] == [True, True, False, False]
    assert best["epoch"] == 1 and best is history[1]
    assert run.weight == 1  # the snapshot is a copy: later in-place updates did not reach it
    assert not run.module.training


def test_an_improvement_resets_the_patience_count():
    run = Scripted({0: 5.0, 1: 6.0, 2: 6.0, 3: 4.0, 4: 5.0, 5: 5.0, 6: 5.0, 7: 1.0})
    history, best = run.fit(patience=3)
    assert [r["epoch"] for r in history] == list(range(7))  # stops after epoch 6, three bad epochs after 3
    assert best["epoch"] == 3 and run.weight == 3


@pytest.mark.parametrize("patience_steps, last_epoch", [(0, 3), (6, 3), (7, 4), (12, 5)])
def test_patience_steps_waits_for_that_many_steps_after_the_best(patience_steps, last_epoch):
    """3 steps per epoch, best at epoch 1 (step 6): two bad epochs are 6 steps; 7 steps need a third, 12 a fourth."""
    run = Scripted({0: 3.0, 1: 2.0, 2: 4.0, 3: 4.5, 4: 5.0, 5: 5.0, 6: 5.0, 7: 5.0})
    history, best = run.fit(patience=2, patience_steps=patience_steps)
    assert history[-1]["epoch"] == last_epoch and best["epoch"] == 1 and run.weight == 1


def test_no_patience_never_stops_early():
    run = Scripted({e: 1.0 + e for e in range(6)})
    history, best = run.fit(max_epochs=6)
    assert len(history) == 6 and best["epoch"] == 0 and run.weight == 0


def test_min_delta_ignores_small_improvements():
    run = Scripted({0: 1.0, 1: 0.95, 2: 0.5, 3: 0.45})
    history, best = run.fit(min_delta=0.1, max_epochs=4)
    assert [r["best"] for r in history] == [True, False, True, False]
    assert best["epoch"] == 2 and run.weight == 2


@pytest.mark.parametrize("mode, best_epoch", [("min", 0), ("max", 1)])
def test_mode_chooses_the_direction(mode, best_epoch):
    run = Scripted({0: 1.0, 1: 3.0, 2: 2.0})
    _, best = run.fit(mode=mode, max_epochs=3)
    assert best["epoch"] == best_epoch and run.weight == best_epoch
    with pytest.raises(ValueError, match="mode"):
        run.fit(mode="best")


def test_step_cap_mid_epoch_ends_training_after_evaluating_that_epoch():
    run = Scripted({e: 10.0 - e for e in range(10)}, steps_per_epoch=4)
    history, best = run.fit(max_steps=10)
    assert run.budgets == [10, 6, 2]  # the third epoch may take only the 2 steps left
    assert [r["steps"] for r in history] == [4, 8, 10] and best["epoch"] == 2


def test_step_cap_at_an_epoch_boundary_starts_no_further_epoch():
    run = Scripted({e: 10.0 - e for e in range(10)}, steps_per_epoch=4)
    history, _ = run.fit(max_steps=8)
    assert run.budgets == [8, 4] and [r["steps"] for r in history] == [4, 8]


def test_an_epoch_without_steps_ends_training_without_a_row():
    run = Scripted({e: 10.0 - e for e in range(10)})
    original = run.train_epoch
    run.train_epoch = lambda epoch, budget: original(epoch, budget) if epoch < 2 else ({}, 0)
    history, best = run.fit()
    assert [r["epoch"] for r in history] == [0, 1] and best["epoch"] == 1 and run.weight == 1


def test_epoch_minus_one_row_is_the_first_candidate_and_counts_for_patience():
    run = Scripted({-1: 1.0, 0: 2.0, 1: 0.5})
    history, best = run.fit(patience=1, evaluate_before=True, train_columns=("train_loss",))
    first = history[0]
    assert first["epoch"] == -1 and first["steps"] == 0 and math.isnan(first["train_loss"])
    assert first["val_loss"] == 1.0 and first["best"] and first["seconds"] == 0.0
    assert [r["epoch"] for r in history] == [-1, 0]  # epoch 0 is worse than −1: patience 1 is used up
    assert best is first and run.weight == -1  # the initial state is restored


def test_epoch_minus_one_is_no_candidate_when_a_train_column_is_monitored():
    run = Scripted({-1: 1.0, 0: 2.0, 1: 0.5})
    history, best = run.fit(monitor="train_loss", patience=1, max_epochs=2, evaluate_before=True,
                            train_columns=("train_loss",))
    assert [r["best"] for r in history] == [False, True, False]  # train_loss 10, then 11: not better
    assert best["epoch"] == 0 and run.weight == 0


def test_history_columns_and_module_modes():
    run = Scripted({-1: 1.0, 0: 0.5})
    history, _ = run.fit(max_epochs=1, evaluate_before=True, train_columns=("train_loss",))
    for row in history:
        assert list(row) == ["epoch", "steps", "train_loss", "val_loss", "best", "seconds"]
    assert run.modes == [("evaluate", False), ("train", True), ("evaluate", False)]


def test_eval_every_steps_groups_epochs_and_weights_their_train_means():
    """Evaluated once 7 steps have passed: rows after epochs 2 and 5, and one for the unevaluated tail (epoch 6)."""
    run = Scripted({e: 10.0 - e for e in range(10)})
    steps = iter([3, 3, 1, 3, 3, 3, 3])  # epoch 2 takes a single step: the row's mean weighs it 1/7
    original = run.train_epoch
    run.train_epoch = lambda epoch, budget: (original(epoch, budget)[0], next(steps))
    history, best = run.fit(max_epochs=7, eval_every_steps=7)
    assert [(r["epoch"], r["steps"]) for r in history] == [(2, 7), (5, 16), (6, 19)]
    assert history[0]["train_loss"] == pytest.approx((3 * 10 + 3 * 11 + 1 * 12) / 7)
    assert history[1]["train_loss"] == pytest.approx((3 * 13 + 3 * 14 + 3 * 15) / 9)
    assert history[2]["train_loss"] == 16.0  # the tail's row
    assert best["epoch"] == 6 and run.weight == 6
    assert run.modes.count(("evaluate", False)) == 3


def test_eval_every_steps_counts_patience_in_evaluations():
    """Best at the first evaluation (epoch 1, 6 steps); two worse evaluations of 6 steps each end training."""
    run = Scripted({0: 9.0, 1: 1.0, 2: 9.0, 3: 5.0, 4: 9.0, 5: 5.0, 6: 0.0})
    history, best = run.fit(patience=2, eval_every_steps=6)
    assert [r["epoch"] for r in history] == [1, 3, 5] and best["epoch"] == 1 and run.weight == 1


def test_eval_every_steps_up_to_an_epoch_changes_nothing():
    values = {0: 3.0, 1: 2.0, 2: 4.0, 3: 4.5, 4: 5.0}
    plain, _ = Scripted(values).fit(patience=2)
    grouped, _ = Scripted(values).fit(patience=2, eval_every_steps=3)
    drop = lambda rows: [{k: v for k, v in r.items() if k != "seconds"} for r in rows]  # noqa: E731
    assert drop(grouped) == drop(plain)
