"""Provenance: stable hashes of config slices and files, written into every store and checkpoint."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from datetime import datetime, timezone
from typing import Any

# Wall-clock fields of training histories ("seconds" since the start): how long a job took is not a result of it
# (benchmarks/ time every job), and it differs between two runs of the same config and seed, so neither the results
# table nor a checkpoint (whose file hash is provenance downstream) holds it.
TIMING_KEYS = ("seconds",)


def config_hash(cfg: Any) -> str:
    """SHA-256 (first 16 hex digits) of the canonical JSON of ``cfg``: key order does not matter."""
    blob = json.dumps(cfg, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def file_hash(path: str | os.PathLike) -> str:
    """SHA-256 (first 16 hex digits) of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:16]


def creation_time() -> str:
    """The UTC time stamp (ISO 8601, seconds) a result records as ``created``: now, or ``SOURCE_DATE_EPOCH`` (seconds
    since 1970, the reproducible-builds convention) when that is set, so that reruns can be compared byte for byte."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    if not epoch:
        return datetime.now(timezone.utc).isoformat(timespec="seconds")
    try:
        return datetime.fromtimestamp(int(epoch), timezone.utc).isoformat(timespec="seconds")
    except (ValueError, OverflowError, OSError):
        raise ValueError(f"SOURCE_DATE_EPOCH={epoch!r} is not a number of seconds since 1970") from None


def git_commit(cwd: str | os.PathLike | None = None) -> str:
    """The checked-out commit of the git repository at ``cwd`` (default: the working directory), or "unknown"."""
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True,
                              cwd=cwd).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
