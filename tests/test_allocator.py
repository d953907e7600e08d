"""glibc malloc's thresholds for the training loops (latentedit.allocator), observed through ``mallinfo2``: with
:func:`keep_freed_memory` a large block comes from the heap and stays there when freed; without, it is mmapped and
given back. Each case runs in a fresh interpreter, because the setting is process-wide and cannot be undone."""

from __future__ import annotations

import ast
import ctypes
import ctypes.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from latentedit.allocator import SWITCH, USER_SETTINGS

ROOT = Path(__file__).resolve().parents[1]

try:
    ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").mallinfo2  # noqa: B018 - glibc ≥ 2.33
    GLIBC = True
except (OSError, AttributeError):
    GLIBC = False

# Allocates and frees a 100 MiB block with libc's malloc and reports, from mallinfo2, the bytes in mmapped blocks
# while it lives and the free bytes the heap keeps once it is freed.
PROBE = """
import ctypes, ctypes.util, json, sys
from latentedit.allocator import keep_freed_memory

class MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
                                                     "fsmblks", "uordblks", "fordblks", "keepcost")]

libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
libc.mallinfo2.restype = MallInfo2
libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
tuned = keep_freed_memory()
size = 100 * 2**20
before = libc.mallinfo2().hblkhd
block = libc.malloc(size)
ctypes.memset(block, 1, size)
mmapped = libc.mallinfo2().hblkhd - before
libc.free(block)
print(json.dumps({"tuned": tuned, "mmapped": mmapped, "kept_free": libc.mallinfo2().fordblks, "size": size}))
"""


def probe(**env: str) -> dict:
    clean = {k: v for k, v in os.environ.items() if k not in (*USER_SETTINGS, SWITCH)}
    out = subprocess.run([sys.executable, "-c", PROBE], env={**clean, **env}, capture_output=True, text=True,
                         check=True, cwd=ROOT)
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(not GLIBC, reason="glibc's malloc (Linux) only: elsewhere keep_freed_memory does nothing")
def test_freed_memory_stays_in_the_heap():
    tuned = probe()
    assert tuned["tuned"] is True
    assert tuned["mmapped"] == 0  # the block came from the heap …
    assert tuned["kept_free"] >= tuned["size"]  # … and was not given back when freed
    default = probe(**{SWITCH: "default"})
    assert default["tuned"] is False
    assert default["mmapped"] >= default["size"]  # glibc's default: its own mapping, unmapped on free
    assert default["kept_free"] < default["size"]


@pytest.mark.skipif(not GLIBC, reason="glibc's malloc (Linux) only")
@pytest.mark.parametrize("env", [{"MALLOC_TRIM_THRESHOLD_": "131072"}, {"GLIBC_TUNABLES": "glibc.malloc.arena_max=2"}])
def test_user_settings_stand(env):
    assert probe(**env)["tuned"] is False


def test_every_workflow_script_sets_up_its_job_first():
    """Every job gets the allocator (and its log and threads) through setup_job, as the first statement after the
    imports."""
    for script in sorted((ROOT / "workflow_scripts").glob("*.py")):
        body = [node for node in ast.parse(script.read_text()).body
                if not isinstance(node, ast.Import | ast.ImportFrom)
                and not (isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant))]
        first = ast.unparse(body[0])
        assert first.startswith("log = setup_job(snakemake.log[0]"), f"{script.name}: first statement is {first!r}"
