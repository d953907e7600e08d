"""Import torchvision on CPU-only torch even when the installed torchvision wheel is a CUDA build.

The situation: torch here is pinned to 2.13.0 and installed from the CPU wheel (``2.13.0+cpu``), while
``torchvision==0.28.0`` from PyPI is the CUDA build (``0.28.0+cu130``). Its C++ extension ``torchvision._C`` links
against CUDA torch and fails to load; torchvision tolerates that (``torchvision.extension._has_ops()`` is False) but
``torchvision/_meta_registrations.py`` then registers fake kernels for ``torchvision::nms`` and ``torchvision::qnms``
unconditionally, and since the extension never defined those operators, ``import torchvision`` dies with
``RuntimeError: operator torchvision::nms does not exist``.

The workaround: define the two operator *schemas* (no kernels) in a ``torch.library.Library("torchvision", "DEF")``
kept alive for the life of the process, then import again. The fake registrations then succeed and everything that
is pure PyTorch works — the classification models (``torchvision.models.resnet18``, ``vgg16``, …), transforms,
weights' state_dict layouts. The compiled operators stay unavailable: ``torchvision.ops.nms``, ``roi_align``,
``deform_conv2d`` and the detection models built on them raise torchvision's own "Couldn't load custom C++ ops"
error when called. Nothing in latentedit needs them.

:func:`import_torchvision` tries the plain import first, so on a machine where torch and torchvision match (CUDA
torch on a GPU machine, or a CPU torchvision wheel) nothing is patched and all operators are there; only the
specific ``torchvision::`` RuntimeError triggers the workaround, and any other failure propagates.
"""

from __future__ import annotations

import importlib
import logging
import sys
import types

import torch

log = logging.getLogger(__name__)

# Operators that torchvision/_meta_registrations.py registers fake kernels for without checking _has_ops().
_SCHEMAS = {
    "nms": "nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
    "qnms": "qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
}
_LIB: torch.library.Library | None = None  # keeps the schema definitions registered (they go with the object)


def _op_defined(name: str) -> bool:
    try:
        getattr(torch.ops.torchvision, name)
    except (AttributeError, RuntimeError):
        return False
    return True


def _purge_torchvision_modules() -> None:
    for key in [k for k in sys.modules if k == "torchvision" or k.startswith("torchvision.")]:
        del sys.modules[key]


def import_torchvision() -> types.ModuleType:
    """Import torchvision, defining the missing ``torchvision::nms``/``qnms`` schemas on CPU torch if needed.

    Returns
    -------
    module
        The ``torchvision`` module. Idempotent: later calls return the already imported module.

    Raises
    ------
    ImportError
        torchvision is not installed (``pip install 'latentedit[faces]'``).
    RuntimeError
        Any import failure other than the missing ``torchvision::`` operators, or that one persisting after the
        schemas were defined.
    """
    global _LIB
    try:
        return importlib.import_module("torchvision")
    except RuntimeError as e:
        if "torchvision::" not in str(e):
            raise
        first_error = e
    _purge_torchvision_modules()  # the failed import left torchvision.extension & co. half-initialised
    if _LIB is None:
        _LIB = torch.library.Library("torchvision", "DEF")
    for name, schema in _SCHEMAS.items():
        if not _op_defined(name):
            _LIB.define(schema)
    try:
        tv = importlib.import_module("torchvision")
    except RuntimeError as e:
        _purge_torchvision_modules()
        raise RuntimeError(f"torchvision still fails to import after defining {sorted(_SCHEMAS)}: {e}") from first_error
    log.warning("torchvision %s does not match torch %s (its C++ ops failed to load: a CUDA torchvision wheel on "
                "CPU-only torch?); defined the torchvision::nms/qnms schemas so that it imports. Classification "
                "models work; detection ops (nms, roi_align, ...) are unavailable.", tv.__version__, torch.__version__)
    return tv
