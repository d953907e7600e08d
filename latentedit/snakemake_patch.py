"""The one way this project changes Snakemake's behaviour: :func:`replace_method` swaps one method of one of its
classes, at parse time, for the run's process only.

Two patches use it: :mod:`latentedit.workflow_scheduler` (at most one pending scheduler wake-up) and
:mod:`latentedit.forkserver` (script jobs forked from a process that has imported torch). Each is idempotent, and
on a Snakemake without the method it changes nothing and says so, so that another Snakemake version runs the workflow
as Snakemake would.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable


def replace_method(module: str, cls: str, name: str, make: Callable[[Callable | None], Callable],
                   without: str) -> bool:
    """Replace ``module.cls.name`` by ``make(original)`` unless already replaced; returns whether the replacement is in
    place. Where Snakemake lacks the class or method, prints ``without`` (what that means for the run) and returns
    False."""
    try:
        owner = getattr(importlib.import_module(module), cls)
    except (ImportError, AttributeError):
        owner = None
    original = getattr(owner, name, None)
    if original is None:
        print(f"latentedit: this Snakemake has no {module}.{cls}.{name}; {without}", file=sys.stderr)
        return False
    if getattr(original, "latentedit_patch", False):
        return True
    replacement = make(original)
    replacement.latentedit_patch = True
    setattr(owner, name, replacement)
    return True
