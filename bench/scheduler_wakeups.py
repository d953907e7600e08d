"""What Snakemake's own process spends scheduling, with and without :mod:`latentedit.workflow_scheduler`'s bound on
its wake-up timers, on a synthetic workflow shaped like ours: ``--jobs`` jobs that each burn ``--cpu-seconds`` of CPU
and list ``--inputs`` shared input files (our jobs list 15–90, their code among them) and one of their own, run with
``--cores 2``. While a job runs, the others wait for a core, and each scheduling round checks all their inputs.

For each variant it prints the wall seconds, the Snakemake process's own CPU seconds (its ``utime + stime``, read
from psutil just before it exits: the jobs' shells are not in it) and the largest number of threads it held, then
the CPU ratio. The jobs keep both cores busy, as a pipeline's do, so Snakemake competes with them for the CPU.

Usage::

    python bench/scheduler_wakeups.py [--jobs 90] [--inputs 40] [--cpu-seconds 2]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parents[1]

SNAKEFILE = """
import sys
sys.path.insert(0, {repo!r})
if {patch}:
    from latentedit.workflow_scheduler import bound_scheduler_wakeups
    assert bound_scheduler_wakeups()

rule all:
    input: expand("out/{{i}}.txt", i=range({jobs}))

rule job:
    input: expand("inputs/{{k}}.py", k=range({inputs})), "inputs/job{{i}}.txt"
    output: "out/{{i}}.txt"
    shell: "{python} burn.py {cpu_seconds}; touch {{output}}"
"""


def run(work: Path, patch: bool, jobs: int, inputs: int, cpu_seconds: float) -> dict[str, float]:
    """Run the synthetic workflow once; wall seconds, Snakemake's CPU seconds and its largest thread count."""
    work.mkdir(parents=True)
    (work / "inputs").mkdir()
    for k in range(inputs):
        (work / "inputs" / f"{k}.py").write_text(f"x = {k}\n")
    (work / "burn.py").write_text("import sys, time\nt = time.process_time()\n"
                                  "while time.process_time() - t < float(sys.argv[1]):\n    pass\n")
    for i in range(jobs):
        (work / "inputs" / f"job{i}.txt").write_text(f"{i}\n")
    (work / "Snakefile").write_text(SNAKEFILE.format(repo=str(REPO), patch=patch, jobs=jobs, inputs=inputs,
                                                     cpu_seconds=cpu_seconds, python=sys.executable))
    t0 = time.perf_counter()
    proc = psutil.Popen([sys.executable, "-m", "snakemake", "--cores", "2", "--quiet"], cwd=work,
                        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    cpu, threads = 0.0, 0
    while proc.poll() is None:
        try:
            times = proc.cpu_times()
            cpu, threads = times.user + times.system, max(threads, proc.num_threads())
        except psutil.NoSuchProcess:
            break
        time.sleep(0.2)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"snakemake failed in {work}:\n{proc.stderr.read().decode()[-3000:]}")
    return {"wall_s": wall, "cpu_s": cpu, "threads": threads}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=90)
    parser.add_argument("--inputs", type=int, default=40)
    parser.add_argument("--cpu-seconds", type=float, default=2.0)
    args = parser.parse_args(argv)
    print(f"{args.jobs} jobs of {args.cpu_seconds:g} s CPU, {args.inputs} shared inputs each, --cores 2")
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for patch in (False, True):
            name = "bounded timers" if patch else "Snakemake as installed"
            results[name] = r = run(Path(tmp) / name.replace(" ", "_"), patch, args.jobs, args.inputs,
                                        args.cpu_seconds)
            print(f"{name:24s} wall {r['wall_s']:6.1f} s, Snakemake's CPU {r['cpu_s']:6.2f} s, "
                  f"most threads {r['threads']}")
    before, after = results["Snakemake as installed"], results["bounded timers"]
    print(f"Snakemake's CPU: {before['cpu_s'] / max(after['cpu_s'], 1e-9):.1f}x less with the bound")
    return 0


if __name__ == "__main__":
    sys.exit(main())
