"""Tables people read: a results table as GitHub-flavoured Markdown (the one Markdown writer; no optional
dependency such as ``tabulate``)."""

from __future__ import annotations

import numpy as np
import pandas as pd


def to_markdown(df: pd.DataFrame, digits: int = 3) -> str:
    """A GitHub-flavoured Markdown table of a summary (no optional dependency)."""
    def cell(v):
        if isinstance(v, float):
            return "nan" if not np.isfinite(v) else f"{v:.{digits}f}"
        return str(v)

    lines = ["| " + " | ".join(df.columns) + " |", "|" + "---|" * len(df.columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join(lines) + "\n"
