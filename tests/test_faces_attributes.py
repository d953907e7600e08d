"""ResNet attribute classifiers on small made-up images whose attributes a CNN can learn."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from latentedit.faces.attributes import (
    AttributeClassifier,
    AttributeClassifierConfig,
    load_attribute_classifier,
    load_pretrained_backbone,
    save_attribute_classifier,
    train_attribute_classifier,
)
from latentedit.faces.torchvision_compat import import_torchvision
from latentedit.io.checkpoints import CheckpointError

NAMES = ["bright_top", "red_tint", "dark_centre"]
SIZE = 32  # image side
IMAGE_SIZE = 16  # the classifier's input side: images are resized inside the model (fast: ~6 s CPU to train)


def _data(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """uint8 (n, 3, 32, 32) noise images and (n, 3) labels, each attribute an independent fair coin.

    bright_top: the top half is brighter than the bottom; red_tint: the red channel is raised; dark_centre: a dark
    central square. All three are left-right symmetric, so horizontal-flip augmentation keeps the labels valid.
    """
    rng = np.random.default_rng(seed)
    x = rng.normal(0.0, 0.35, size=(n, 3, SIZE, SIZE))
    y = rng.integers(0, 2, size=(n, 3))
    x[:, :, : SIZE // 2] += np.where(y[:, 0], 0.6, -0.6)[:, None, None, None]
    x[:, 0] += np.where(y[:, 1], 0.6, -0.2)[:, None, None]
    c = slice(SIZE // 4, 3 * SIZE // 4)
    x[:, :, c, c] -= np.where(y[:, 2], 0.9, 0.0)[:, None, None, None]
    return np.clip((x + 1) * 127.5 + 0.5, 0, 255).astype(np.uint8), y.astype(np.uint8)


CFG = AttributeClassifierConfig(arch="resnet18", image_size=IMAGE_SIZE, lr=1e-3, weight_decay=0.0, batch_size=32,
                                max_epochs=3, patience=2, seed=0)


@pytest.fixture(scope="module")
def trained():
    x_tr, y_tr = _data(192, seed=0)
    x_va, y_va = _data(96, seed=1)
    model, history, metrics = train_attribute_classifier(x_tr, y_tr, x_va, y_va, NAMES, CFG, "cpu", progress=False)
    return model, history, metrics, (x_va, y_va)


def test_learns_the_attributes(trained):
    model, history, metrics, _ = trained
    assert list(metrics["val"]) == NAMES
    assert min(metrics["val"].values()) >= 0.9, metrics["val"]
    assert metrics["val_mean_accuracy"] >= 0.9
    assert 1 <= metrics["epochs_run"] <= CFG.max_epochs and len(history) == metrics["epochs_run"]
    best = min(history, key=lambda r: r["val_loss"])
    assert best["epoch"] == metrics["best_epoch"] and best["best"]
    assert metrics["options"] == CFG.to_dict()
    assert not model.training


def test_predict_proba_accepts_uint8_and_model_range(trained):
    model, _, _, (x_va, _) = trained
    p = model.predict_proba(x_va[:10], batch_size=4)
    assert p.shape == (10, 3) and p.dtype == np.float32 and np.all((p >= 0) & (p <= 1))
    x_float = torch.as_tensor(x_va[:10]).float() / 127.5 - 1
    np.testing.assert_allclose(model.predict_proba(x_float), p, atol=1e-5)
    # larger inputs are resized to image_size inside the model
    big = torch.nn.functional.interpolate(x_float, size=(64, 64), mode="nearest")
    assert model.predict_proba(big).shape == (10, 3)


def test_save_load_round_trip(trained, tmp_path):
    model, _, metrics, (x_va, _) = trained
    path = tmp_path / "attr.pt"
    save_attribute_classifier(path, model, metrics)
    ck = torch.load(path, weights_only=True)
    assert ck["kind"] == "faces_attribute_classifier" and ck["attribute_names"] == NAMES
    assert ck["spec"] == {"arch": "resnet18", "n_attributes": 3, "image_size": IMAGE_SIZE}
    loaded = load_attribute_classifier(path)
    assert loaded.attribute_names == NAMES
    np.testing.assert_array_equal(loaded.predict_proba(x_va), model.predict_proba(x_va))
    with pytest.raises(CheckpointError, match="faces_attribute_classifier"):
        torch.save({"kind": "latent_classifiers"}, tmp_path / "other.pt")
        load_attribute_classifier(tmp_path / "other.pt")


def test_pretrained_backbone_loaded_and_fc_reinitialised(tmp_path):
    tv = import_torchvision()
    torch.manual_seed(123)
    imagenet_like = tv.models.resnet18()  # stands in for resnet18-f37072fd.pth: 1000-way fc
    path = tmp_path / "resnet18-seeded.pth"
    torch.save(imagenet_like.state_dict(), path)
    model = AttributeClassifier("resnet18", 3, IMAGE_SIZE, NAMES)
    fc_before = {k: v.clone() for k, v in model.net.fc.state_dict().items()}
    load_pretrained_backbone(model, path)
    src = imagenet_like.state_dict()
    for k, v in model.net.state_dict().items():
        if k.startswith("fc."):
            assert torch.equal(v, fc_before[k[3:]])  # the model's own head, not the file's
        else:
            assert torch.equal(v, src[k]), k
    assert model.net.fc.weight.shape == (3, 512)
    # through the config too
    cfg = AttributeClassifierConfig(image_size=IMAGE_SIZE, max_epochs=1, pretrained=path)
    x, y = _data(8, seed=2)
    _, _, metrics = train_attribute_classifier(x, y, x, y, NAMES, cfg, progress=False)
    assert metrics["options"]["pretrained"] == str(path)


def test_wrong_pretrained_file_names_file_and_key(tmp_path):
    tv = import_torchvision()
    sd = tv.models.resnet18().state_dict()
    sd["layer1.0.conv1.weight"] = torch.zeros(64, 64, 1, 1)
    path = tmp_path / "broken-resnet18.pth"
    torch.save(sd, path)
    model = AttributeClassifier("resnet18", 3, IMAGE_SIZE)
    with pytest.raises(CheckpointError, match=r"broken-resnet18\.pth.*layer1\.0\.conv1\.weight"):
        load_pretrained_backbone(model, path)
    del sd["layer4.1.bn2.running_var"]
    sd["extra.weight"] = torch.zeros(1)
    torch.save(sd, tmp_path / "incomplete.pth")
    with pytest.raises(CheckpointError, match=r"incomplete\.pth.*missing keys \['layer4\.1\.bn2\.running_var'\]"
                                              r".*unexpected keys \['extra\.weight'\]"):
        load_pretrained_backbone(model, tmp_path / "incomplete.pth")
    with pytest.raises(CheckpointError, match="nope.pth"):
        load_pretrained_backbone(model, tmp_path / "nope.pth")


def test_config_validation():
    with pytest.raises(ValueError, match="arch"):
        AttributeClassifierConfig(arch="vgg16")
    with pytest.raises(ValueError, match="batch_size"):
        AttributeClassifierConfig(batch_size=1)


def _corrupt(ck, what: str) -> None:
    sd = ck["state_dict"]
    if what == "missing key":
        del sd["net.layer4.1.bn2.running_var"]
    elif what == "unexpected key":
        sd["net.extra.weight"] = torch.zeros(3)
    elif what == "wrong shape":
        sd["net.fc.weight"] = torch.zeros(4, sd["net.fc.weight"].shape[1])
    elif what == "unknown arch":
        ck["spec"]["arch"] = "vgg16"
    elif what == "spec key missing":
        del ck["spec"]["image_size"]
    elif what == "spec key unknown":
        ck["spec"]["width"] = 2
    elif what == "names do not fit":
        ck["attribute_names"] = NAMES[:2]
    elif what == "no state_dict":
        del ck["state_dict"]
    elif what == "spec not a dict":
        ck["spec"] = ["resnet18", 3, 16]


@pytest.mark.parametrize("what, match", [
    ("missing key", r"missing keys \['net\.layer4\.1\.bn2\.running_var'\]"),
    ("unexpected key", r"unexpected keys \['net\.extra\.weight'\]"),
    ("wrong shape", r"net\.fc\.weight: checkpoint \(4, 512\) vs model \(3, 512\)"),
    ("unknown arch", r"spec does not fit AttributeClassifier: arch must be one of"),
    ("spec key missing", r"spec must have the keys .*missing \['image_size'\]"),
    ("spec key unknown", r"unknown \['width'\]"),
    ("names do not fit", r"2 attribute names for 3 outputs"),
    ("no state_dict", r"lacks the key\(s\) \['state_dict'\]"),
    ("spec not a dict", r"has no AttributeClassifier spec"),
])
def test_loader_refuses_a_mismatched_checkpoint_naming_the_file(trained, tmp_path, what, match):
    model, _, metrics, _ = trained
    path = tmp_path / "judge.pt"
    save_attribute_classifier(path, model, metrics)
    ck = torch.load(path, weights_only=True)
    _corrupt(ck, what)
    torch.save(ck, path)
    with pytest.raises(CheckpointError, match=match) as e:
        load_attribute_classifier(path)
    assert str(e.value).startswith(f"{path}: ")


def test_training_from_a_lazy_store_equals_training_from_arrays(tmp_path):
    """The judge trains from an open image store's lazy rows (read batch by batch) exactly as from arrays."""
    from latentedit.io.image_store import ImageStore, open_image_store, write_image_store

    x, y = _data(48, seed=3)
    split = np.array(["train"] * 32 + ["val"] * 16, dtype=object)
    write_image_store(tmp_path / "s.h5", ImageStore(x, y, NAMES, split, np.array([str(i) for i in range(48)])))
    cfg = AttributeClassifierConfig(arch="resnet18", image_size=IMAGE_SIZE, lr=1e-3, batch_size=16, max_epochs=1,
                                    seed=0)
    a, hist_a, _ = train_attribute_classifier(x[:32], y[:32], x[32:], y[32:], NAMES, cfg, "cpu", progress=False)
    with open_image_store(tmp_path / "s.h5") as store:
        train, val = store.select("train"), store.select("val")
        assert not isinstance(train.images, np.ndarray)  # lazy
        b, hist_b, _ = train_attribute_classifier(train.images, train.attributes, val.images, val.attributes, NAMES,
                                                  cfg, "cpu", progress=False)
    assert [r["val_loss"] for r in hist_a] == [r["val_loss"] for r in hist_b]
    for (k, va), vb in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(va, vb), k
