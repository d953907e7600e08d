"""Stage breakdown of a finished run from the jobs' timing records (one TSV per job, each rule's output ``timing``,
written by the job at exit: :mod:`latentedit.jobs`; the columns of Snakemake's ``benchmark:`` files).

Groups the TSVs under ``benchmarks/<world>/`` by stage (the first path component below the world: ``oracle``,
``edits``, ``evaluate``, ...; for per-(method, edit, seed) stages also by method) and prints jobs, summed and
longest wall seconds, and the largest peak RSS of any job's process (``max_rss``, MB).

``--fit`` also reads each job's log (``logs/<world>/…``, the benchmark's path with ``.log``) for the line the
project's training loop writes when it ends (``latentedit.training_utils.fit``: "… done: best … (N steps, S s)") and
splits the job seconds into ``fit_s``, the training loops, and ``other_per_job_s``, what the average job spends
besides them: the interpreter and its imports, reading the stores, setting up, saving and plotting. A job that runs
no such loop (InterFaceGAN, GANSpace, SeFa, every evaluation) counts 0 s of loop.

Usage::

    python bench/stage_times.py [benchmarks/digits] [--by-method] [--fit]
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import pandas as pd


FIT_DONE = re.compile(r" done: best .* \(\d+ steps, ([0-9.]+) s\)")


def fit_seconds(log: Path) -> float:
    """Seconds of the training loops a job's log reports (the sum of its "done: best …" lines; 0 without one or
    without a log)."""
    if not log.is_file():
        return 0.0
    return sum(float(m.group(1)) for m in FIT_DONE.finditer(log.read_text(errors="replace")))


def load(root: Path, fit: bool = False) -> pd.DataFrame:
    """One row per job; with ``fit``, ``fit_s`` from its log (:func:`fit_seconds`)."""
    logs = root.parent.parent / "logs" / root.name  # benchmarks/<world> → logs/<world>
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
                     "seconds": float(last["s"]), "max_rss_mb": float(last.get("max_rss", float("nan"))),
                     **({"fit_s": fit_seconds((logs / rel).with_suffix(".log"))} if fit else {})})
    return pd.DataFrame(rows)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("root", nargs="?", type=Path, default=Path("benchmarks/digits"))
    parser.add_argument("--by-method", action="store_true", help="split per-(method, edit) stages by method")
    parser.add_argument("--fit", action="store_true",
                        help="split job seconds into training loops (from the jobs' logs) and everything else")
    args = parser.parse_args(argv)
    df = load(args.root, fit=args.fit)
    if df.empty:
        print(f"no benchmark files under {args.root}")
        return 1
    keys = ["stage", "method"] if args.by_method else ["stage"]
    columns = {"jobs": ("job", "count"), "total_s": ("seconds", "sum"), "longest_s": ("seconds", "max"),
               "peak_rss_mb": ("max_rss_mb", "max"), **({"fit_s": ("fit_s", "sum")} if args.fit else {})}
    table = df.groupby(keys).agg(**columns)
    if args.fit:
        table["other_per_job_s"] = (table["total_s"] - table["fit_s"]) / table["jobs"]
    table = table.sort_values("total_s", ascending=False)
    print(table.to_string(float_format=lambda v: f"{v:.1f}"))
    print(f"\nall jobs: {len(df)}, summed job time {df['seconds'].sum():.0f} s, largest peak RSS "
          f"{df['max_rss_mb'].max():.0f} MB ({df.loc[df['max_rss_mb'].idxmax(), 'job']})")
    if args.fit:
        print(f"in training loops: {df['fit_s'].sum():.0f} of those s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
