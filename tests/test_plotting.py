"""latentedit.plotting: the per-edit training-curves figure."""
import numpy as np
import pandas as pd
import pytest

from latentedit import plotting
from latentedit.plotting import plot_training_curves

LW = pd.DataFrame({"epoch": [-1, 3, 7], "steps": [0, 10, 20], "train_loss": [np.nan, 2.0, 1.0],
                   "val_loss": [3.0, 2.5, 1.5], "val_extra": [0.1, 0.2, 0.3], "best": [True, True, True]})
IFG = pd.DataFrame({"epoch": [0], "train_accuracy": [1.0], "val_accuracy": [0.9]})


def _drawn(monkeypatch, histories):
    figures = []
    monkeypatch.setattr(plotting, "save_figure", lambda fig, path: figures.append(fig))
    plot_training_curves(histories, "unused.png", title="training: add_7")
    (fig,) = figures
    return {ax.get_title(): ax for ax in fig.axes if ax.axison}


def test_one_row_per_training_one_panel_per_quantity(monkeypatch):
    panels = _drawn(monkeypatch, {"LW": (LW, ["train_loss", "val_loss", "val_extra", "absent"]),
                                  "InterFaceGAN": (IFG, ["train_accuracy", "val_accuracy"]),
                                  "none": (IFG, ["score"])})  # no column of its in its history: no row
    assert sorted(panels) == ["InterFaceGAN: accuracy", "LW: extra", "LW: loss"]
    loss = panels["LW: loss"]
    assert [line.get_label() for line in loss.get_lines()] == ["train", "val"]
    np.testing.assert_array_equal(loss.get_lines()[1].get_xdata(), [0, 10, 20])  # steps, not epochs
    assert loss.get_xlabel() == "steps" and panels["InterFaceGAN: accuracy"].get_xlabel() == "epoch"
    assert len(panels["LW: extra"].get_lines()) == 1


def test_writes_a_png(tmp_path):
    path = tmp_path / "curves.png"
    plot_training_curves({"LW": (LW, ["train_loss", "val_loss"])}, path, title="t")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_refuses_histories_without_any_of_their_columns(tmp_path):
    with pytest.raises(ValueError, match="none of the histories"):
        plot_training_curves({"LW": (LW, ["score"])}, tmp_path / "curves.png")
    assert not (tmp_path / "curves.png").exists()
