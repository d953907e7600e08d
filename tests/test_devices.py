"""GPU claiming by lock file (latentedit.devices): concurrent processes on simulated devices, release on SIGKILL."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time

import pytest
import torch

from latentedit import devices
from latentedit.devices import DeviceClaimTimeout, claim_device, visible_device_ids
from latentedit.training_utils import pick_device

# A job: claim one of N simulated devices, print its index, hold the claim until stdin closes (or it is killed).
WORKER = """
import logging, sys
from latentedit.devices import DeviceClaimTimeout, claim_device
logging.basicConfig(level=logging.INFO, stream=sys.stderr)
n, lock_dir, timeout = int(sys.argv[1]), sys.argv[2], float(sys.argv[3])
try:
    claim = claim_device(n, lock_dir, timeout=timeout, poll=0.05)
except DeviceClaimTimeout as e:
    print("timeout", flush=True)
    print(e, file=sys.stderr)
    sys.exit(3)
print(claim.index, flush=True)
sys.stdin.read()
"""


@pytest.fixture
def spawn(tmp_path):
    procs = []

    def start(n: int, timeout: float = 0.0, env: dict | None = None) -> subprocess.Popen:
        p = subprocess.Popen([sys.executable, "-c", WORKER, str(n), str(tmp_path / "locks"), str(timeout)],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             env={**os.environ, "OMP_NUM_THREADS": "1", **(env or {})})
        procs.append(p)
        return p

    yield start
    for p in procs:
        if p.returncode is None:  # not yet reaped by the test
            p.kill()
            p.communicate()


def read_line(p: subprocess.Popen, timeout: float = 30.0) -> str:
    ready, _, _ = select.select([p.stdout], [], [], timeout)
    assert ready, f"worker printed nothing in {timeout} s"
    return p.stdout.readline().strip()


def test_four_processes_claim_four_distinct_devices(spawn):
    workers = [spawn(4) for _ in range(4)]
    assert sorted(int(read_line(w)) for w in workers) == [0, 1, 2, 3]


def test_fifth_process_times_out_while_all_are_claimed(spawn, tmp_path):
    workers = [spawn(4) for _ in range(4)]
    [read_line(w) for w in workers]
    fifth = spawn(4, timeout=0.3)
    assert read_line(fifth) == "timeout"
    _, err = fifth.communicate(timeout=30)
    assert fifth.returncode == 3
    assert "waiting up to 0.3 s" in err  # the log line before the wait
    assert "all 4 visible GPUs stayed claimed" in err and str(tmp_path / "locks") in err
    assert f"(pid {workers[0].pid})" in err  # the holders are named


def test_waiting_process_gets_the_device_another_releases(spawn):
    workers = [spawn(4) for _ in range(4)]
    held = {int(read_line(w)): w for w in workers}
    fifth = spawn(4, timeout=60)
    time.sleep(0.5)
    assert fifth.poll() is None  # still waiting
    held[2].communicate(timeout=30)  # that job ends
    assert int(read_line(fifth)) == 2
    _, err = fifth.communicate(timeout=30)
    assert "waiting up to 60 s" in err and "claimed device 2" in err


def test_sigkilled_process_frees_its_claim(spawn, tmp_path):
    victim = spawn(1)
    assert read_line(victim) == "0"
    with pytest.raises(DeviceClaimTimeout):
        claim_device(1, tmp_path / "locks", timeout=0)
    victim.send_signal(signal.SIGKILL)
    victim.wait(timeout=30)
    assert victim.returncode == -signal.SIGKILL
    claim = claim_device(1, tmp_path / "locks", timeout=0)
    assert claim.index == 0
    claim.release()


def test_claims_follow_cuda_visible_devices(tmp_path):
    """Indices are relative to CUDA_VISIBLE_DEVICES; lock files name the physical device, so a job that sees
    ``2,3`` and one that sees ``0,1,2,3`` do not both take GPU 2."""
    assert visible_device_ids(2, {}) == ["0", "1"]
    assert visible_device_ids(2, {"CUDA_VISIBLE_DEVICES": "2,3"}) == ["2", "3"]
    assert visible_device_ids(1, {"CUDA_VISIBLE_DEVICES": "GPU-ab/c", "SLURM_JOB_ID": "17"}) == ["slurm17-GPU-ab_c"]
    a = claim_device(2, tmp_path, ids=visible_device_ids(2, {"CUDA_VISIBLE_DEVICES": "2,3"}))
    assert a.index == 0 and a.path.name == "gpu-2.lock"
    everything = visible_device_ids(4, {"CUDA_VISIBLE_DEVICES": "0,1,2,3"})
    b = [claim_device(4, tmp_path, ids=everything, timeout=0) for _ in range(3)]
    assert [c.index for c in b] == [0, 1, 3]
    with pytest.raises(DeviceClaimTimeout):
        claim_device(4, tmp_path, ids=everything, timeout=0)
    for c in [a, *b]:
        c.release()


@pytest.fixture
def fake_cuda(monkeypatch, tmp_path):
    """torch.cuda with ``n`` simulated devices; the lock directory under tmp_path; no claim held beforehand."""
    current = []
    monkeypatch.setenv(devices.LOCK_DIR_ENV, str(tmp_path / "locks"))
    monkeypatch.setattr(devices, "_claim", None)
    monkeypatch.setattr(torch.cuda, "set_device", current.append)

    def make(n: int):
        monkeypatch.setattr(torch.cuda, "is_available", lambda: n > 0)
        monkeypatch.setattr(torch.cuda, "device_count", lambda: n)
        return current

    yield make
    if devices._claim is not None:
        devices._claim.release()


def test_pick_device_claims_on_cuda_and_keeps_its_claim(fake_cuda, tmp_path):
    current = fake_cuda(3)
    other = claim_device(3, tmp_path / "locks", timeout=0)  # another job holds cuda:0
    assert pick_device("auto") == torch.device("cuda", 1)
    assert pick_device("cuda") == torch.device("cuda", 1)  # the same claim for the life of the process
    assert current == [1, 1]
    assert sorted(p.name for p in (tmp_path / "locks").iterdir()) == ["gpu-0.lock", "gpu-1.lock"]
    assert pick_device("cuda:2") == torch.device("cuda", 2)  # an explicit index is taken as given
    other.release()


def test_non_cuda_and_single_device_paths_claim_nothing(fake_cuda, tmp_path, monkeypatch):
    fake_cuda(0)
    assert pick_device("auto") == torch.device("cpu")
    assert pick_device("cpu") == torch.device("cpu")
    fake_cuda(4)
    assert pick_device("cpu") == torch.device("cpu")
    current = fake_cuda(1)  # one visible GPU (a one-GPU box, a Slurm job): nothing to choose
    assert pick_device("cuda") == torch.device("cuda", 0)
    monkeypatch.setenv(devices.CLAIM_ENV, "0")  # claiming switched off
    fake_cuda(4)
    assert pick_device("auto") == torch.device("cuda", 0)
    assert current == []  # index 0 is already the current device: CUDA is not touched
    assert not (tmp_path / "locks").exists() and devices._claim is None


def test_onnx_runs_on_the_claimed_cuda_device():
    from latentedit.worlds import onnx_providers

    assert onnx_providers("cpu") == ["CPUExecutionProvider"]
    assert onnx_providers("cuda:2")[0] == ("CUDAExecutionProvider", {"device_id": 2})
    assert onnx_providers("cuda")[0] == ("CUDAExecutionProvider", {"device_id": 0})
