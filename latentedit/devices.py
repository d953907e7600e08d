"""One GPU per job on a several-GPU box: each process claims a free visible device with a lock file.

Snakemake assigns no device to a local job, so ``snakemake --resources gpu=4`` would start four jobs that all use
``cuda:0``. Instead, a process that resolves to CUDA (:func:`latentedit.training_utils.pick_device`) takes an
exclusive, non-blocking :func:`fcntl.flock` on ``gpu-<id>.lock`` for the first visible device whose lock is free,
and keeps the file open for the rest of its life. The kernel drops a flock when the last descriptor on it closes,
i.e. when the process ends, cleanly or not (crash, SIGKILL), so a claim never outlives its job. Nothing here
imports torch: the device count is an argument, so tests simulate any number of devices.

Lock directory: ``$LATENTEDIT_GPU_LOCK_DIR``, else ``/tmp/latentedit-gpu-locks-<uid>`` (mode 0700). Not
``$TMPDIR``: Snakemake exports each job's ``tmpdir`` resource as ``$TMPDIR``, which a profile may set per job, and
every job on the box must look in the same directory. Lock files are named after the device's entry in
``CUDA_VISIBLE_DEVICES`` (its index when unset), so jobs that see different subsets still agree on which physical
device is which; inside a Slurm job the name also carries ``$SLURM_JOB_ID``, because Slurm with cgroup-constrained
devices numbers every job's GPUs from 0 on a shared node.
"""

from __future__ import annotations

import fcntl
import logging
import os
import re
import stat
import time
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

LOCK_DIR_ENV = "LATENTEDIT_GPU_LOCK_DIR"
WAIT_ENV = "LATENTEDIT_GPU_WAIT_S"
CLAIM_ENV = "LATENTEDIT_GPU_CLAIM"
# Snakemake's resource cap normally leaves a device free for every GPU job, so a wait means a job that is just
# exiting, another program holding a claim (a notebook's Run), or gpu=N above the device count: five minutes
# covers the first two and fails the last with a clear message instead of a silent hang.
DEFAULT_WAIT_S = 300.0
POLL_S = 0.5


class DeviceClaimTimeout(TimeoutError):
    """Every visible device stayed claimed by another process for the whole wait."""


@dataclass
class DeviceClaim:
    """A held claim: ``index`` is relative to ``CUDA_VISIBLE_DEVICES`` (``cuda:<index>``); ``fd`` holds the lock."""

    index: int
    path: Path
    fd: int | None

    def release(self) -> None:
        """Drop the claim now (normally it lasts until the process ends)."""
        if self.fd is not None:
            os.close(self.fd)  # closing the last descriptor releases the flock
            self.fd = None


def default_lock_dir() -> Path:
    """``$LATENTEDIT_GPU_LOCK_DIR``, else ``/tmp/latentedit-gpu-locks-<uid>`` (see the module docstring)."""
    env = os.environ.get(LOCK_DIR_ENV)
    if env:
        return Path(env)
    return Path("/tmp") / f"latentedit-gpu-locks-{os.getuid()}"


def visible_device_ids(n_devices: int, environ: dict | None = None) -> list[str]:
    """The identities of the ``n_devices`` visible devices, as lock-file stems: ``CUDA_VISIBLE_DEVICES``'s entries
    (indices or ``GPU-<uuid>``) in order, or ``0 … n-1`` when it is unset; prefixed with ``slurm<job id>-`` inside a
    Slurm job."""
    environ = os.environ if environ is None else environ
    visible = environ.get("CUDA_VISIBLE_DEVICES")
    tokens = [t.strip() for t in visible.split(",")] if visible is not None else []
    ids = [tokens[i] if i < len(tokens) and tokens[i] else str(i) for i in range(n_devices)]
    ids = [re.sub(r"[^A-Za-z0-9_.-]", "_", i) for i in ids]
    job = environ.get("SLURM_JOB_ID")
    return [f"slurm{job}-{i}" for i in ids] if job else ids


def _ensure_lock_dir(lock_dir: Path) -> None:
    if lock_dir == default_lock_dir() and LOCK_DIR_ENV not in os.environ:
        lock_dir.mkdir(mode=0o700, exist_ok=True)
        st = os.lstat(lock_dir)  # in a world-writable /tmp: refuse another user's directory or a symlink
        if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid():
            raise PermissionError(f"{lock_dir}: GPU lock directory is not a directory owned by uid {os.getuid()}; "
                                  f"remove it or set {LOCK_DIR_ENV}")
    else:
        lock_dir.mkdir(parents=True, exist_ok=True)


def _try_lock(path: Path) -> int | None:
    """An open descriptor holding an exclusive flock on ``path``, or None when another process holds it."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except PermissionError:  # another user's lock file in a shared directory: flock needs only read access
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    except BaseException:
        os.close(fd)
        raise
    try:  # the holder's pid, for the message of a process that has to wait
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    except OSError:
        pass
    return fd


def _holders(paths: list[Path]) -> str:
    def pid(p: Path) -> str:
        try:
            return p.read_text().strip() or "?"
        except OSError:
            return "?"

    return ", ".join(f"{p.name} (pid {pid(p)})" for p in paths)


def claim_device(n_devices: int, lock_dir: str | Path | None = None, *, ids: list[str] | None = None,
                 timeout: float | None = None, poll: float = POLL_S) -> DeviceClaim:
    """Claim the first of ``n_devices`` devices whose lock file in ``lock_dir`` no other process holds.

    Parameters
    ----------
    n_devices : int
        How many devices are visible (``torch.cuda.device_count()``; any number in tests).
    lock_dir : path, optional
        Where the ``<id>.lock`` files live; :func:`default_lock_dir` when None.
    ids : list of str, optional
        Lock-file stems of the devices, one per index; :func:`visible_device_ids` when None.
    timeout : float, optional
        Seconds to wait, polling every ``poll`` seconds, while every device is claimed; ``$LATENTEDIT_GPU_WAIT_S``
        or 300 when None. Then :class:`DeviceClaimTimeout`.

    Returns
    -------
    DeviceClaim
        Holds the lock until :meth:`DeviceClaim.release` or the end of the process.
    """
    if n_devices < 1:
        raise ValueError(f"no device to claim (n_devices={n_devices})")
    lock_dir = default_lock_dir() if lock_dir is None else Path(lock_dir)
    ids = visible_device_ids(n_devices) if ids is None else list(ids)
    if len(ids) != n_devices:
        raise ValueError(f"{len(ids)} device ids for {n_devices} devices")
    timeout = float(os.environ.get(WAIT_ENV, DEFAULT_WAIT_S)) if timeout is None else timeout
    _ensure_lock_dir(lock_dir)
    paths = [lock_dir / f"gpu-{i}.lock" for i in ids]
    deadline, waiting = time.monotonic() + timeout, False
    while True:
        for index, path in enumerate(paths):
            fd = _try_lock(path)
            if fd is not None:
                if waiting:
                    log.info("claimed device %d (%s) after waiting", index, path)
                return DeviceClaim(index, path, fd)
        if time.monotonic() >= deadline:
            raise DeviceClaimTimeout(
                f"all {n_devices} visible GPUs stayed claimed by other processes for {timeout:g} s: "
                f"{_holders(paths)} in {lock_dir}. Run at most as many GPU jobs as there are GPUs "
                f"(snakemake --resources gpu=N), or set {CLAIM_ENV}=0 to let jobs share devices")
        if not waiting:
            log.warning("all %d visible GPUs are claimed (%s in %s); waiting up to %g s for one to be released",
                        n_devices, _holders(paths), lock_dir, timeout)
            waiting = True
        time.sleep(max(0.0, min(poll, deadline - time.monotonic())))


_claim: DeviceClaim | None = None


def claim_cuda_index(n_devices: int) -> int:
    """The CUDA index this process uses, claimed once and kept for the life of the process.

    One visible device (a one-GPU box, a one-GPU Slurm job) is used without a claim: there is nothing to choose,
    and jobs that deliberately share it (``gpu=2`` on one GPU) keep doing so. ``LATENTEDIT_GPU_CLAIM=0`` turns
    claiming off (every process uses index 0, as before). A forked child inherits its parent's claim.
    """
    global _claim
    if n_devices <= 1 or os.environ.get(CLAIM_ENV, "1") == "0":
        return 0
    if _claim is None or _claim.fd is None:
        _claim = claim_device(n_devices)
        log.info("claimed GPU cuda:%d (lock %s)", _claim.index, _claim.path)
    return _claim.index
