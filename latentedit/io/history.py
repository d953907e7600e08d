"""A training's history file (``history.csv``): one row per validation (or epoch) of the training loop, the columns
every row's keys in order of first appearance, written atomically.

Written with the standard library's ``csv``, not pandas: the edit trainings are 35 jobs of the default run, and
importing pandas is ≈ 0.55 s of each. The text is what ``pandas.DataFrame(rows).to_csv(index=False,
float_format="%.6g")`` writes for these rows (floats as ``%.6g``, a missing value or NaN as an empty field,
booleans as ``True``/``False``); a test holds the two equal. Readers use ``pandas.read_csv``.
"""

from __future__ import annotations

import csv
import math
import numbers
import os
from collections.abc import Iterable, Mapping

import numpy as np

from latentedit.io.atomic import atomic_path


def _field(value) -> str:
    if value is None:
        return ""
    if isinstance(value, (bool, np.bool_, str)):
        return str(value)
    if isinstance(value, numbers.Integral):
        return str(int(value))
    if isinstance(value, numbers.Real):
        return "" if math.isnan(value) else "%.6g" % float(value)
    return str(value)


def write_history(path: str | os.PathLike, rows: Iterable[Mapping]) -> None:
    """Write ``rows`` (dicts of scalars) as ``path`` atomically (module docstring)."""
    rows = list(rows)
    columns = list(dict.fromkeys(k for row in rows for k in row))
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
        out = csv.writer(f, lineterminator="\n")
        out.writerow(columns)
        for row in rows:
            out.writerow([_field(row.get(c)) for c in columns])
