"""bench/affine_ceiling.py: the per-layer ridge fit of z_t − z_s ≈ A z_s + b that its ceiling rests on."""

import numpy as np
import pytest
import torch

from conftest import load_bench
from latentedit.edits.model import apply_edit


@pytest.fixture(scope="module")
def affine_fit():
    return load_bench("affine_ceiling").affine_fit


def _pairs(n=400, layers=3, dim=5, seed=0):
    rng = np.random.default_rng(seed)
    source = rng.standard_normal((n, layers, dim)).astype(np.float32)
    a = 0.3 * rng.standard_normal((layers, dim, dim))
    b = rng.standard_normal((layers, dim))
    target = source + np.einsum("lij,nlj->nli", a, source) + b  # each layer its own affine step
    return source, target.astype(np.float32)


def test_an_exact_affine_step_is_recovered_per_layer(affine_fit):
    source, target = _pairs()
    model = affine_fit(source, target, ridge=1e-9)
    edited = apply_edit(model, torch.as_tensor(source), 1.0).numpy()
    np.testing.assert_allclose(edited, target, atol=1e-4)


def test_the_mean_step_moves_every_code_by_the_same_vector(affine_fit):
    source, target = _pairs()
    model = affine_fit(source, target, ridge=None)
    step = apply_edit(model, torch.as_tensor(source), 1.0).numpy() - source
    np.testing.assert_allclose(step, np.broadcast_to((target - source).mean(0), step.shape), atol=1e-4)


def test_ridge_shrinks_the_linear_part_not_the_offset(affine_fit):
    source, target = _pairs()
    weak, strong = (affine_fit(source, target, ridge=r) for r in (1e-6, 1e3))
    weight = {k: m["state_dict"]["weight"].abs().max().item() for k, m in (("weak", weak), ("strong", strong))}
    assert weight["strong"] < 0.01 * weight["weak"]
    # with A ≈ 0 the offset is the mean step (the codes are near-centred), not shrunk toward 0
    np.testing.assert_allclose(strong["state_dict"]["bias"].numpy(), (target - source).mean(0), atol=0.05)


@pytest.fixture(scope="module")
def kernel_fit():
    return load_bench("affine_ceiling").kernel_fit


def test_the_kernel_fit_reproduces_the_training_steps_and_keeps_its_base(kernel_fit, affine_fit):
    source, target = _pairs(n=200)
    target = target + np.sin(3 * source).astype(np.float32)  # a step no affine map gives
    near = kernel_fit(source, target, bandwidth=1.0, ridge=1e-6)
    step = near(torch.as_tensor(source)).numpy()
    np.testing.assert_allclose(source + step, target, atol=1e-2)
    affine = load_bench("affine_ceiling").model_step(affine_fit(source, target, 1.0))
    on_affine = kernel_fit(source, target, bandwidth=1.0, ridge=1e-6, base=affine)
    np.testing.assert_allclose(source + on_affine(torch.as_tensor(source)).numpy(), target, atol=1e-2)
    # far from every training code the kernel part is its mean: the mean step, or the base's step plus its residual's
    far = torch.full((1, *source.shape[1:]), 100.0)
    np.testing.assert_allclose(near(far).numpy()[0], (target - source).mean(0), atol=1e-4)
    residual = (target - source - affine(torch.as_tensor(source)).numpy()).mean(0)
    np.testing.assert_allclose(on_affine(far).numpy()[0], affine(far).numpy()[0] + residual, atol=1e-3)
