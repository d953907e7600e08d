"""bench/lw_on_samples.py: the store of the generator's own codes that its comparison rests on — labels from the
judge's confident readings, split as asked, in W+."""

import numpy as np
import pytest
import torch

from conftest import load_bench
from latentedit.io.latent_store import validate

NAMES = ["count_1", "count_2"] + [f"has_{d}" for d in range(10)]


class FakeGenerator:
    """z (B, 4) → w = z; W+ = 3 copies."""

    z_dim = 4

    def mapping(self, z):
        return z

    def broadcast(self, w):
        return w.unsqueeze(1).repeat(1, 3, 1)


def fake_renderer(codes):
    """A 1×2×2 image whose first pixel carries the code's first entry (so the judge can read the code back)."""
    out = torch.zeros(len(codes), 1, 2, 2)
    out[:, 0, 0, 0] = codes[:, 0, 0].clamp(-1, 1)
    return out


class FakeJudge:
    """Reads the first pixel v ∈ [0, 255]: count 2 when v > 127, else count 1; has_3 when v > 127; unsure (0.6)
    when v is within 32 of 127."""

    def predict(self, images):
        v = np.asarray(images, dtype=np.float64)[:, 0, 0, 0]
        p2 = np.where(np.abs(v - 127.5) < 32, 0.6, (v > 127.5).astype(float))
        has = np.zeros((len(v), 10))
        has[:, 3] = p2
        return {"probs": np.concatenate([np.stack([1 - p2, p2], 1), has], 1)}


@pytest.fixture(scope="module")
def sampled_store():
    return load_bench("lw_on_samples").sampled_store


def test_kept_draws_are_labelled_by_the_confident_reading_and_split(sampled_store):
    splits = {"train": 50, "val": 20, "test": 30}
    store, drawn = sampled_store(FakeGenerator(), torch.ones(4), fake_renderer, FakeJudge(), NAMES, "normal", splits,
                                 0.9, seed=0, batch=64)
    validate(store)  # W+ codes (N, 3, 4) in a store that says so
    assert store.latents.shape == (100, 3, 4) and store.attrs == {"latent_space": "wplus"}
    assert [int((store.split == s).sum()) for s in splits] == list(splits.values())
    pixel = np.clip((store.latents[:, 0, 0] + 1) * 127.5 + 0.5, 0, 255)
    assert (np.abs(pixel - 127.5) >= 31).all()  # the unsure draws were left out
    two = pixel > 127.5
    np.testing.assert_array_equal(store.attributes[:, 1], two)  # count_2
    np.testing.assert_array_equal(store.attributes[:, 0], ~two)  # count_1: one-hot
    np.testing.assert_array_equal(store.attributes[:, NAMES.index("has_3")], two)
    assert store.attributes[:, [NAMES.index(f"has_{d}") for d in range(10) if d != 3]].sum() == 0
    assert 0 < drawn["kept_fraction"] < 1 and drawn["drawn"] % 64 == 0
