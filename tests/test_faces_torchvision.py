"""torchvision imports on this torch (CPU wheel with the CUDA torchvision wheel here) and its ResNets run."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest
import torch

from latentedit.faces import torchvision_compat
from latentedit.faces.torchvision_compat import import_torchvision


def test_import_and_resnet18_forward():
    tv = import_torchvision()
    torch.manual_seed(0)
    model = tv.models.resnet18(num_classes=5).eval()
    with torch.no_grad():
        out = model(torch.randn(2, 3, 32, 32))
    assert out.shape == (2, 5) and torch.isfinite(out).all()


def test_idempotent():
    assert import_torchvision() is import_torchvision() is sys.modules["torchvision"]


def test_fresh_process_imports_with_at_most_one_warning():
    """In a new interpreter: the first call patches if it must (one warning), the second is a no-op."""
    code = ("import logging, torch; logging.basicConfig(level=logging.WARNING);"
            "from latentedit.faces.torchvision_compat import import_torchvision as f;"
            "a = f(); b = f(); assert a is b;"
            "print('OPS', a.extension._has_ops()); print(a.models.resnet18(num_classes=2).conv1)")
    r = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr
    assert "Conv2d(3, 64" in r.stdout
    warnings = r.stderr.count("detection ops")
    has_ops = "OPS True" in r.stdout
    assert warnings == (0 if has_ops else 1), r.stderr  # patched exactly when the C++ ops are missing


def test_other_failures_propagate(monkeypatch):
    def boom(name):
        raise RuntimeError("something unrelated broke")

    monkeypatch.setattr(importlib, "import_module", boom)
    with pytest.raises(RuntimeError, match="unrelated"):
        torchvision_compat.import_torchvision()
