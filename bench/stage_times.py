"""Stage breakdown of a finished run from Snakemake's ``benchmark:`` files (one TSV per job).

Groups the TSVs under ``benchmarks/<world>/`` by stage (the first path component below the world: ``oracle``,
``edits``, ``evaluate``, ...; for per-(method, edit, seed) stages also by method) and prints jobs, summed and
longest wall seconds, and the largest peak RSS of any job (``max_rss``, MB).

Usage::

    python bench/stage_times.py [benchmarks/digits] [--by-method]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd


def load(root: Path) -> pd.DataFrame:
    rows = []
    for path in sorted(root.rglob("*.tsv")):
        rel = path.relative_to(root).with_suffix("")
        t = pd.read_csv(path, sep="\t")
        if t.empty:
            continue
        last = t.iloc[-1]
        parts = rel.parts
        # per-(method, edit, seed) stages: <stage>/<method>/<edit>/seed<s>
        rows.append({"stage": parts[0], "method": parts[1] if len(parts) >= 3 else "", "job": str(rel),
                     "seconds": float(last["s"]), "max_rss_mb": float(last.get("max_rss", float("nan")))})
    return pd.DataFrame(rows)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("root", nargs="?", type=Path, default=Path("benchmarks/digits"))
    parser.add_argument("--by-method", action="store_true", help="split per-(method, edit) stages by method")
    args = parser.parse_args(argv)
    df = load(args.root)
    if df.empty:
        print(f"no benchmark files under {args.root}")
        return 1
    keys = ["stage", "method"] if args.by_method else ["stage"]
    table = df.groupby(keys).agg(jobs=("job", "count"), total_s=("seconds", "sum"), longest_s=("seconds", "max"),
                                 peak_rss_mb=("max_rss_mb", "max")).sort_values("total_s", ascending=False)
    print(table.to_string(float_format=lambda v: f"{v:.1f}"))
    print(f"\nall jobs: {len(df)}, summed job time {df['seconds'].sum():.0f} s, largest peak RSS "
          f"{df['max_rss_mb'].max():.0f} MB ({df.loc[df['max_rss_mb'].idxmax(), 'job']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
