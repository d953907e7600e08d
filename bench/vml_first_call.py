"""MKL's first vector-math call in a process, with and without :func:`latentedit.jobs.warm_up_vector_math`.

ATen computes ``exp``, ``log``, ``sqrt``, ``tanh``, ``erf`` and ``sin`` of a contiguous float tensor with MKL's
vector-math library (VML), each of torch's threads on its own chunk. MKL sets VML up at its first call in a process
(``latentedit.jobs``, "MKL's first vector-math call"). Each of ``--processes`` fresh interpreters per variant loads the
same 102,400 floats (``torch.load``), then applies one of the six functions twice on 2 threads, and reports whether the first result
has the same bits as the second. The child's environment gets a padding variable of a different length each time, so
that the processes also differ in their memory layout, as jobs under Slurm do.

Prints, per variant and function, how many processes' first call differed from their second.

Usage::

    python bench/vml_first_call.py [--processes 60]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

FUNCTIONS = ("tanh", "exp", "log", "sqrt", "erf", "sin")

# The child computes nothing with torch before the call under test (it loads its input as a job loads a checkpoint),
# so that call is the process's first VML call; the variant "warm-up" runs setup_job first, as every job does.
CHILD = """
import sys
import torch
torch.set_num_threads(2)
if sys.argv[2] == "warm-up":
    from latentedit.jobs import setup_job
    setup_job(None)
x = torch.load(sys.argv[3], weights_only=True)
f = getattr(torch, sys.argv[1])
print(int(not torch.equal(f(x), f(x))))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--processes", type=int, default=60, help="fresh interpreters per variant")
    args = parser.parse_args()
    import torch

    start = time.monotonic()
    with tempfile.TemporaryDirectory() as folder:
        data = Path(folder) / "x.pt"
        # inside every function's domain (log, sqrt); as many values as a batch of 100 32×32 images
        torch.save(torch.rand(102_400, generator=torch.Generator().manual_seed(0)) * 0.9 + 0.05, data)
        differed = {variant: Counter() for variant in ("none", "warm-up")}
        for variant in differed:
            for i in range(args.processes):
                function = FUNCTIONS[i % len(FUNCTIONS)]
                env = {**os.environ, "VML_BENCH_PADDING": "x" * i}
                env.pop("OMP_NUM_THREADS", None)
                out = subprocess.run([sys.executable, "-c", CHILD, function, variant, str(data)], env=env,
                                     check=True, capture_output=True, text=True).stdout
                differed[variant][function] += int(out.strip())
    runs = Counter(FUNCTIONS[i % len(FUNCTIONS)] for i in range(args.processes))
    print(f"processes whose first call differed from their second ({args.processes} per variant; 2 threads; "
          f"torch {torch.__version__})")
    print(f"{'processes':10s}" + "".join(f"{runs[f]:>7d}" for f in FUNCTIONS))
    print(f"{'variant':10s}" + "".join(f"{f:>7s}" for f in FUNCTIONS) + "    total")
    for variant, counts in differed.items():
        total = sum(counts.values())
        print(f"{variant:10s}" + "".join(f"{counts[f]:7d}" for f in FUNCTIONS)
              + f"   {total:3d}/{args.processes} ({total / args.processes:.0%})")
    print(f"{time.monotonic() - start:.0f} s")


if __name__ == "__main__":
    main()
