"""Realism metrics of edited images: the Fréchet distance and KID (latentedit.metrics) on each world's realism
features (the judge's ``realism`` output, latentedit.worlds.load_judge). On faces these are Inception-v3 pool features from torch-fidelity
with the user's weights (latentedit.faces.inception), and our FID/KID agree with torch-fidelity's own
``calculate_metrics`` on tiny-world cartoon faces with the tiny world's seeded Inception weights (95 MB, written once
per test session into a tmp dir): KID in the fast suite, FID (a minute of scipy.linalg.sqrtm) with ``-m slow``."""

from __future__ import annotations

import re
from importlib.util import find_spec

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from latentedit.metrics import frechet_distance, kid

# torch_fidelity imports torchvision, which needs latentedit.faces.torchvision_compat first: no importorskip
needs_fidelity = pytest.mark.skipif(find_spec("torch_fidelity") is None,
                                    reason="the faces extra (pip install -e '.[faces]') is not installed")
N_FACES = 10  # images per set in the cross-checks: 0.5 s each through a 299-px Inception on one CPU thread
KID_SUBSET, KID_SUBSETS = 8, 20


def _gaussian(n, d, seed, shift=0.0):
    return np.random.default_rng(seed).standard_normal((n, d)) + shift


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2 ** 16), shift=st.floats(0.05, 5.0), dim=st.integers(1, 16))
def test_frechet_of_a_set_with_itself_is_zero_and_a_mean_shift_adds_its_square(seed, shift, dim):
    a = _gaussian(64, dim, seed)
    delta = shift * np.random.default_rng(seed + 1).standard_normal(dim)
    assert abs(frechet_distance(a, a)) < 1e-8 * dim
    # shifting every point leaves the covariance alone: FD = ‖δ‖² exactly
    assert frechet_distance(a, a + delta) == pytest.approx(float(delta @ delta), rel=1e-8, abs=1e-8 * dim)


def test_frechet_grows_with_the_shift():
    a = _gaussian(200, 8, 0)
    values = [frechet_distance(a, _gaussian(200, 8, 1, s)) for s in (0.0, 0.25, 0.5, 1.0)]
    assert values[0] < 0.3 and np.all(np.diff(values) > 0)


def test_kid_is_about_zero_for_one_distribution_and_grows_with_a_shift():
    a = _gaussian(300, 16, 0)
    same, same_std = kid(a, _gaussian(300, 16, 1), subset_size=100, n_subsets=50, seed=0)
    assert abs(same) < 3 * same_std + 1e-3  # unbiased: around 0, either sign
    self_kid, _ = kid(a, a, subset_size=100, n_subsets=50, seed=0)
    assert abs(self_kid) < 3 * same_std + 1e-3
    shifted = [kid(a, _gaussian(300, 16, 1, s), subset_size=100, n_subsets=50, seed=0)[0] for s in (0.5, 1.0, 2.0)]
    assert same < shifted[0] < shifted[1] < shifted[2]
    assert shifted[0] > 5 * same_std


def test_kid_is_the_unbiased_polynomial_mmd():
    """With the whole sets as the one subset, the estimate is the textbook formula, written here independently."""
    a, b = _gaussian(20, 5, 0), _gaussian(20, 5, 1, 0.3)
    m = len(a)

    def k(x, y):
        return (x @ y.T / 5 + 1) ** 3

    def off_diagonal_mean(g):
        return (g.sum() - np.trace(g)) / (m * (m - 1))

    expected = off_diagonal_mean(k(a, a)) + off_diagonal_mean(k(b, b)) - 2 * k(a, b).mean()
    mean, std = kid(a, b, subset_size=m, n_subsets=3)
    assert mean == pytest.approx(expected, rel=1e-12) and std < 1e-12
    with pytest.raises(ValueError, match="subset_size 21"):
        kid(a, b, subset_size=21)


@needs_fidelity
def test_kid_and_frechet_match_torch_fidelity_formulas_on_random_features():
    """Same subsets (torch-fidelity's RandomState draws) ⇒ the same KID; FID statistics through its sqrtm."""
    from latentedit.faces.inception import _extractor_class

    _extractor_class()  # torch_fidelity imports torchvision: the CPU-torch workaround first
    from torch_fidelity.metric_fid import KEY_METRIC_FID, fid_features_to_statistics, fid_statistics_to_metric
    from torch_fidelity.metric_kid import KEY_METRIC_KID_MEAN, KEY_METRIC_KID_STD, kid_features_to_metric

    a, b = _gaussian(80, 12, 0), _gaussian(60, 12, 1, 0.4)
    ref = kid_features_to_metric(torch.from_numpy(a), torch.from_numpy(b), kid_subsets=30, kid_subset_size=40,
                                 kid_degree=3, kid_gamma=None, kid_coef0=1, rng_seed=7, verbose=False)
    mean, std = kid(a, b, subset_size=40, n_subsets=30, seed=7)
    assert mean == pytest.approx(ref[KEY_METRIC_KID_MEAN], rel=1e-10)
    assert std == pytest.approx(ref[KEY_METRIC_KID_STD], rel=1e-10)
    stats = [fid_features_to_statistics(torch.from_numpy(x)) for x in (a, b)]
    assert frechet_distance(a, b) == pytest.approx(fid_statistics_to_metric(*stats, False)[KEY_METRIC_FID], rel=1e-8)


# --- Inception-v3 through torch-fidelity, on the tiny faces world -------------------------------------------------


@pytest.fixture(scope="session")
def inception_weights(tmp_path_factory):
    """The tiny world's seeded Inception-v3 weights (torch-fidelity's layout, 95 MB), written once per session."""
    from latentedit.faces.tiny import write_inception_weights

    return write_inception_weights(tmp_path_factory.mktemp("inception") / "inception_tiny.pth")


def _faces(n: int, seed: int, **fixed) -> np.ndarray:
    """n tiny-world cartoon faces, uint8 (n, 3, 64, 64) as the image stores hold them; ``fixed`` labels forced."""
    from latentedit.data.celebahq import CELEBA_ATTRIBUTES
    from latentedit.faces.tiny import draw_face, random_labels

    rng = np.random.default_rng(seed)
    rows = [{**dict(zip(CELEBA_ATTRIBUTES, row.tolist())), **fixed} for row in random_labels(n, rng)]
    return np.stack([np.asarray(draw_face(row, 64, rng)).transpose(2, 0, 1) for row in rows])


class _Images(torch.utils.data.Dataset):
    """torch-fidelity's Dataset input: one uint8 (3, H, W) tensor per item."""

    def __init__(self, images: np.ndarray):
        self.images = torch.from_numpy(images)

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        return self.images[i]


@pytest.fixture
def no_network(monkeypatch):
    """Any connection attempt, or torch-fidelity's weights download, fails the test."""
    import socket

    from latentedit.faces.inception import _extractor_class

    def refuse(*args, **kwargs):
        raise AssertionError("tried to reach the network")

    _extractor_class()  # imports torch_fidelity (after the torchvision workaround)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr("torch_fidelity.feature_extractor_inceptionv3.load_state_dict_from_url", refuse)


@pytest.fixture(scope="module")
def face_features(inception_weights):
    """Real faces, "edited" ones (glasses and hats on all) and a second real sample, with their realism features."""
    from latentedit.faces.inception import inception_features, load_inception

    extractor = load_inception(inception_weights)
    images = {"real": _faces(N_FACES, 1), "edited": _faces(N_FACES, 2, Eyeglasses=1, Wearing_Hat=1),
              "real2": _faces(N_FACES, 3)}
    return images, {k: inception_features(extractor, v, N_FACES) for k, v in images.items()}


def _torch_fidelity(images_a, images_b, weights, **metrics) -> dict:
    import torch_fidelity

    return torch_fidelity.calculate_metrics(
        input1=_Images(images_a), input2=_Images(images_b), cuda=False, batch_size=N_FACES,
        feature_extractor_weights_path=str(weights), kid_subset_size=KID_SUBSET, kid_subsets=KID_SUBSETS, rng_seed=3,
        cache=False, save_cpu_ram=True, verbose=False, **metrics)


@needs_fidelity
def test_kid_agrees_with_torch_fidelity_on_tiny_faces(inception_weights, face_features, no_network):
    images, feats = face_features
    assert feats["real"].shape == (N_FACES, 2048) and feats["real"].dtype == np.float64
    assert feats["real"].std(0).mean() > 0.5 * feats["real"].std()  # the seeded network tells the images apart
    ref = _torch_fidelity(images["real"], images["edited"], inception_weights, kid=True)
    mean, std = kid(feats["real"], feats["edited"], subset_size=KID_SUBSET, n_subsets=KID_SUBSETS, seed=3)
    # the same float32 features and subsets; theirs sums float32 kernels, ours float64 ones
    assert mean == pytest.approx(ref["kernel_inception_distance_mean"], rel=3e-4)  # measured 2.6e-5
    assert std == pytest.approx(ref["kernel_inception_distance_std"], rel=1e-3)
    # and it sees the edit: a second sample of the same faces is closer than faces with glasses and hats
    same, same_std = kid(feats["real"], feats["real2"], subset_size=KID_SUBSET, n_subsets=KID_SUBSETS, seed=3)
    assert same + 2 * same_std < mean


@pytest.mark.slow
@needs_fidelity
def test_fid_agrees_with_torch_fidelity_on_tiny_faces(inception_weights, face_features, no_network):
    """Slow: torch-fidelity's FID takes scipy.linalg.sqrtm of a 2048² matrix (about a minute on one thread)."""
    images, feats = face_features
    ref = _torch_fidelity(images["real"], images["edited"], inception_weights, fid=True, kid=True)
    # sqrtm (theirs) vs eigh (ours) of rank-(N−1) 2048² covariances
    assert frechet_distance(feats["real"], feats["edited"]) == pytest.approx(ref["frechet_inception_distance"],
                                                                             rel=1e-4)  # measured 3e-7
    assert kid(feats["real"], feats["edited"], subset_size=KID_SUBSET, n_subsets=KID_SUBSETS, seed=3)[0] == \
        pytest.approx(ref["kernel_inception_distance_mean"], rel=3e-4)
    assert frechet_distance(feats["real"], feats["real2"]) < frechet_distance(feats["real"], feats["edited"])


@needs_fidelity
def test_inception_loader_names_a_missing_file(tmp_path):
    from latentedit.faces.inception import load_inception

    missing = tmp_path / "pt_inception-2015-12-05-6726825d.pth"
    with pytest.raises(FileNotFoundError, match=rf"{re.escape(str(missing))}: not found \(torch-fidelity's Inception-v3 weights"):
        load_inception(missing)
    with pytest.raises(FileNotFoundError, match="never downloaded"):
        load_inception(None)


@needs_fidelity
def test_inception_loader_names_a_file_of_another_layout(tmp_path):
    from latentedit.faces.inception import inception_layout, load_inception

    wrong_keys = tmp_path / "resnet.pth"
    torch.save({"conv1.weight": torch.zeros(64, 3, 7, 7), "fc.weight": torch.zeros(1000, 2048)}, wrong_keys)
    with pytest.raises(ValueError, match=rf"{re.escape(str(wrong_keys))}: not torch-fidelity's Inception-v3 weights "
                                         r".*missing keys \(565\).*unexpected keys \(1\): conv1.weight"
                                         r".*wrong shapes \(1\): fc.weight \(1000, 2048\) \(expected \(1008, 2048\)\)"):
        load_inception(wrong_keys)
    wrong_shapes = tmp_path / "shapes.pth"
    torch.save({k: torch.zeros(1, dtype=dtype) for k, (_, dtype) in inception_layout().items()}, wrong_shapes)
    with pytest.raises(ValueError, match=rf"{re.escape(str(wrong_shapes))}: .*wrong shapes \(5\d\d\)"):
        load_inception(wrong_shapes)
    not_torch = tmp_path / "notes.pth"
    not_torch.write_text("not a checkpoint")
    with pytest.raises(ValueError, match=rf"{re.escape(str(not_torch))}: not a readable PyTorch state_dict"):
        load_inception(not_torch)


def test_digits_realism_features_are_the_oracle_embedding(tmp_path):
    from latentedit.oracles.digits_oracle import SlotOracle, predict_images, save_oracle
    from latentedit.worlds import load_judge

    oracle = SlotOracle(1, 16, 2, 4, width=2, feature_dim=3)
    save_oracle(tmp_path / "oracle.pt", oracle, {"test": {}})
    images = np.random.default_rng(0).integers(0, 256, (5, 1, 16, 16), dtype=np.uint8)
    feats = load_judge("digits", {"oracle": tmp_path / "oracle.pt"}, "cpu", realism=True).predict(images)["realism"]
    assert feats.dtype == np.float64 and feats.shape == (5, 4 * 3)
    np.testing.assert_array_equal(feats, predict_images(oracle.eval(), images, "cpu")["embedding"])
