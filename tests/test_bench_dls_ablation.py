"""bench/dls_ablation.py: DLS against No-DLS at one epoch, from pairs of training histories."""
import pandas as pd
import pytest

from conftest import load_bench


@pytest.fixture(scope="module")
def dls_ablation():
    return load_bench("dls_ablation")


def _history(path, l_enc, entropy):
    pd.DataFrame({"epoch": range(len(l_enc)), "step": [800 * (i + 1) for i in range(len(l_enc))],
                  "eval_l_enc": l_enc, "entropy": entropy, "psnr_generated": 18.0, "psnr_real": 14.0,
                  "frechet_oracle": 700.0, "count_agreement": 0.8}).to_csv(path, index=False)
    return str(path)


def test_ratio_at_the_chosen_epoch_and_the_figure(dls_ablation, tmp_path, capsys):
    dls = _history(tmp_path / "dls.csv", [1.0, 0.5, 0.2], [180.0, 60.0, 30.0])
    nodls = _history(tmp_path / "nodls.csv", [1.0, 0.9, 0.8], [181.6] * 3)
    dls_ablation.main(["--run", "normal 128", dls, nodls, "--epoch", "1", "--figure", str(tmp_path / "f.png")])
    out = capsys.readouterr().out
    assert "normal 128" in out and "1600" in out
    assert " 1.8 " in out  # 0.9 / 0.5 at epoch 1, not the last epoch's 0.8 / 0.2
    assert (tmp_path / "f.png").stat().st_size > 0


def test_a_history_short_of_the_epoch_is_refused(dls_ablation, tmp_path):
    short = _history(tmp_path / "short.csv", [1.0, 0.5], [180.0, 60.0])
    with pytest.raises(SystemExit, match="no epoch 4"):
        dls_ablation.main(["--run", "x", short, short, "--epoch", "4"])
