"""Where the golden vectors of ../shared/compat live; tests that need them skip with the reason when absent."""

import os
from pathlib import Path

import pytest

COMPAT = Path(os.environ.get("LATENTEDIT_COMPAT", Path(__file__).resolve().parents[2] / "shared" / "compat"))


def require_compat():
    if not (COMPAT / "RECIPE.md").exists():
        pytest.skip(f"golden vectors not found at {COMPAT} (set LATENTEDIT_COMPAT to the shared/compat folder)")
