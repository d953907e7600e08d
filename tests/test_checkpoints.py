"""Checkpoint save/load (latentedit.io.checkpoints): atomic save, safe ``weights_only`` load, strict key checks."""

from __future__ import annotations

import os
import pathlib

import pytest
import torch
from torch import nn

from latentedit.io.checkpoints import CheckpointError, load_checkpoint, load_state_dict_strict, save_checkpoint


class _Payload:
    """Unpickling this object calls ``Path.touch(marker)``: arbitrary code execution, made observable."""

    def __init__(self, marker: pathlib.Path):
        self.marker = marker

    def __reduce__(self):
        return pathlib.Path.touch, (self.marker,)


def _malicious_checkpoint(path: pathlib.Path, marker: pathlib.Path) -> None:
    torch.save({"kind": "dlsgan", "spec": {}, "state_dict": {}, "payload": _Payload(marker)}, path)


def test_round_trip(tmp_path):
    path = tmp_path / "ck" / "model.pt"
    obj = {"kind": "thing", "spec": {"a": 1, "b": [1, 2], "c": "x"}, "state_dict": {"w": torch.arange(6.0)},
           "metrics": {"acc": 0.5}}
    save_checkpoint(path, obj)
    assert [p.name for p in path.parent.iterdir()] == ["model.pt"]  # no temporary sibling left
    back = load_checkpoint(path, expect_kind="thing")
    assert back["spec"] == obj["spec"] and back["metrics"] == obj["metrics"]
    torch.testing.assert_close(back["state_dict"]["w"], obj["state_dict"]["w"])


def test_refuses_pickle_that_executes_code(tmp_path):
    path, marker = tmp_path / "evil.pt", tmp_path / "pwned"
    _malicious_checkpoint(path, marker)
    with pytest.raises(CheckpointError) as e:
        load_checkpoint(path)
    assert str(path) in str(e.value)
    assert not marker.exists()


def test_malicious_payload_is_real(tmp_path):
    """Sanity check of the test above: an unsafe load of the same file does run the payload."""
    path, marker = tmp_path / "evil.pt", tmp_path / "pwned"
    _malicious_checkpoint(path, marker)
    torch.load(path, weights_only=False)
    assert marker.exists()


def test_missing_file(tmp_path):
    path = tmp_path / "absent.pt"
    with pytest.raises(CheckpointError, match="does not exist") as e:
        load_checkpoint(path)
    assert str(path) in str(e.value)


def test_truncated_and_garbage_files(tmp_path):
    path = tmp_path / "m.pt"
    save_checkpoint(path, {"kind": "x", "state_dict": {"w": torch.zeros(1000)}})
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError) as e:
        load_checkpoint(path)
    assert str(path) in str(e.value)

    junk = tmp_path / "junk.pt"
    junk.write_text("not a checkpoint")
    with pytest.raises(CheckpointError) as e:
        load_checkpoint(junk)
    assert str(junk) in str(e.value)


def test_wrong_kind_named(tmp_path):
    path = tmp_path / "m.pt"
    save_checkpoint(path, {"kind": "digits_oracle", "state_dict": {}})
    with pytest.raises(CheckpointError, match="'dlsgan'.*'digits_oracle'") as e:
        load_checkpoint(path, expect_kind="dlsgan")
    assert str(path) in str(e.value)
    save_checkpoint(path, [torch.zeros(1)])  # not a dict at all
    with pytest.raises(CheckpointError, match="list"):
        load_checkpoint(path, expect_kind="dlsgan")


def test_save_failure_keeps_previous_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "m.pt"
    save_checkpoint(path, {"kind": "old"})

    def failing_save(obj, f, *args, **kwargs):
        pathlib.Path(f).write_bytes(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", failing_save)
    with pytest.raises(OSError):
        save_checkpoint(path, {"kind": "new"})
    monkeypatch.undo()
    assert load_checkpoint(path)["kind"] == "old"
    assert os.listdir(tmp_path) == ["m.pt"]


class _Net(nn.Module):
    def __init__(self, hidden: int = 3):
        super().__init__()
        self.a = nn.Linear(2, hidden)
        self.b = nn.Linear(hidden, 1)


def test_load_state_dict_strict_ok():
    src, dst = _Net(), _Net()
    load_state_dict_strict(dst, src.state_dict(), "ck.pt")
    for k, v in src.state_dict().items():
        torch.testing.assert_close(dst.state_dict()[k], v)


def test_load_state_dict_strict_names_missing_and_unexpected_keys():
    sd = _Net().state_dict()
    sd.pop("b.bias")
    sd["c.weight"] = torch.zeros(1)
    with pytest.raises(CheckpointError) as e:
        load_state_dict_strict(_Net(), sd, "some/ck.pt")
    msg = str(e.value)
    assert "some/ck.pt" in msg
    assert "missing keys ['b.bias']" in msg
    assert "unexpected keys ['c.weight']" in msg


def test_load_state_dict_strict_names_shape_mismatch():
    dst = _Net(hidden=3)
    before = {k: v.clone() for k, v in dst.state_dict().items()}
    with pytest.raises(CheckpointError, match=r"a\.weight: checkpoint \(4, 2\) vs model \(3, 2\)"):
        load_state_dict_strict(dst, _Net(hidden=4).state_dict(), "ck.pt")
    for k, v in dst.state_dict().items():  # nothing was half-loaded
        torch.testing.assert_close(v, before[k])
