"""latentedit.forkserver: a job forked from the server runs as ``python SCRIPT`` would (its argv, directory,
environment, streams, exit status, atexit handlers, the rule's thread counts) but with torch already imported; a
killed or signalled client takes its job with it; without a server the client runs the script itself; the server
stops with its owner; and Snakemake, wired as rules/common.smk wires it, runs its script jobs through the server."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from conftest import load_bench
from latentedit import forkserver

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the fork server runs on Linux only")

JOB = """
import atexit, json, os, sys
import threadpoolctl
record = {"preloaded": "torch" in sys.modules, "argv": sys.argv, "cwd": os.getcwd(), "value": os.environ.get("VALUE"),
          "path0": sys.path[0], "parent": open(f"/proc/{os.getppid()}/cmdline").read().replace("\\0", " "),
          "blas": [i["num_threads"] for i in threadpoolctl.threadpool_info() if i["user_api"] == "blas"],
          "torch_threads": sys.modules["torch"].get_num_threads() if "torch" in sys.modules else None,
          "latentedit_preloaded": "latentedit.forkserver" in sys.modules}
atexit.register(lambda: open("atexit.txt", "w").write("ran"))
print(json.dumps(record))
print("to stderr", file=sys.stderr)
sys.exit(int(sys.argv[1]))
"""


def wait_for(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    folder = tmp_path_factory.mktemp("server")
    path = str(folder / "socket")
    log = open(folder / "server.log", "w")
    proc = subprocess.Popen([*forkserver.python_command(), "serve", path], stdout=log, stderr=subprocess.STDOUT,
                            env={**os.environ, "OPENBLAS_NUM_THREADS": "2", "OMP_NUM_THREADS": "2"})
    wait_for(lambda: os.path.exists(path) or proc.poll() is not None, 120, "the server's socket")
    assert proc.poll() is None, (folder / "server.log").read_text()
    yield path
    proc.terminate()
    assert proc.wait(20) == 0
    assert not os.path.exists(path)  # the server removed its socket


def client(socket_path: str, script: Path, *args: str, env: dict | None = None, **kwargs) -> subprocess.Popen:
    return subprocess.Popen([*forkserver.python_command(), "run", socket_path, str(script), *args],
                            cwd=script.parent, env={**os.environ, **(env or {})}, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kwargs)


def test_a_job_forked_from_the_server_runs_as_a_fresh_interpreter_would(server, tmp_path):
    script = tmp_path / "job.py"
    script.write_text(JOB)
    proc = client(server, script, "3", env={"VALUE": "42", "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"})
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 3, err
    record = json.loads(out)
    assert record["preloaded"]  # torch was imported before the script's first line: the point of the server
    assert " serve " in record["parent"]  # a child of the server, not of the client
    assert record["argv"] == [str(script), "3"] and record["cwd"] == str(tmp_path) and record["value"] == "42"
    assert record["path0"] == str(tmp_path)  # sys.path[0] is the script's folder, as for `python SCRIPT`
    assert record["blas"] == [1] and record["torch_threads"] == 1  # the job's thread counts, not the server's 2
    assert not record["latentedit_preloaded"]  # the job imports the checkout's latentedit itself
    assert err == "to stderr\n"
    assert (tmp_path / "atexit.txt").read_text() == "ran"


def test_a_job_that_raises_exits_1_with_the_traceback_from_the_script_on(server, tmp_path):
    script = tmp_path / "bad.py"
    script.write_text("def f():\n    raise ValueError('boom')\nf()\n")
    proc = client(server, script)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 1
    assert err.startswith("Traceback (most recent call last):\n  File \"" + str(script)), err
    assert err.rstrip().endswith("ValueError: boom") and "runpy" not in err and "forkserver" not in err


def sleeper(tmp_path: Path) -> Path:
    script = tmp_path / "sleep.py"
    script.write_text("import os, time\nopen('pid', 'w').write(str(os.getpid()))\ntime.sleep(60)\n")
    return script


def alive(pid: int) -> bool:
    """Running: not gone and not a zombie waiting for the server to reap it."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


@pytest.mark.parametrize("signum, status", [(signal.SIGKILL, -9), (signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_killed_or_signalled_client_takes_its_job_with_it(server, tmp_path, signum, status):
    """SIGKILL: the job sees its connection close and ends itself; SIGTERM and SIGINT are forwarded (SIGINT raises
    KeyboardInterrupt in the job, which exits as Python does, 128 + 2); the client exits as the job did."""
    script = sleeper(tmp_path)
    proc = client(server, script)
    wait_for(lambda: (tmp_path / "pid").exists() and (tmp_path / "pid").read_text(), 60, "the job to start")
    job = int((tmp_path / "pid").read_text())
    assert alive(job) and job != proc.pid
    proc.send_signal(signum)
    proc.communicate(timeout=30)
    assert proc.returncode == status
    wait_for(lambda: not alive(job), 10, f"job {job} to end")


def test_without_a_server_the_client_runs_the_script_itself(tmp_path):
    script = tmp_path / "job.py"
    script.write_text(JOB)
    proc = client(str(tmp_path / "no-such-socket"), script, "5")
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 5, err
    record = json.loads(out)
    assert not record["preloaded"] and " serve " not in record["parent"]
    assert record["argv"] == [str(script), "5"] and record["path0"] == str(tmp_path)


def test_the_server_stops_when_its_owner_is_gone(tmp_path):
    owner = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    path = str(tmp_path / "folder" / "socket")
    os.mkdir(os.path.dirname(path))
    server = subprocess.Popen([*forkserver.python_command(), "serve", path, "--owner", str(owner.pid),
                               "--remove-folder"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    wait_for(lambda: os.path.exists(path) or server.poll() is not None, 120, "the server's socket")
    owner.kill()  # as when Snakemake is killed: no onsuccess, no stop_server
    owner.wait()
    out, _ = server.communicate(timeout=30)
    assert server.returncode == 0 and f"owner {owner.pid} is gone" in out
    assert not os.path.exists(os.path.dirname(path))  # the socket and the folder made for it are gone


RULES = """
rule all:
    input: expand("out/{{i}}.json", i=range(6))

rule job:
    input: lambda w: [] if w.i == "0" else [f"out/{{int(w.i) - 1}}.json"]
    output: "out/{{i}}.json"
    threads: 1
    script: "job.py"
"""

SNAKEMAKE_JOB = """
import json, os, sys, time
record = {"preloaded": "torch" in sys.modules, "pid": os.getpid(),
          "parent": open(f"/proc/{os.getppid()}/cmdline").read().replace("\\0", " ")}
log = ".snakemake/latentedit_forkserver.log"
deadline = time.monotonic() + 300
while snakemake.wildcards.i == "0" and os.environ["LATENTEDIT_FORKSERVER"] == "on" and time.monotonic() < deadline:
    if os.path.exists(log) and "listening on" in open(log).read():
        break  # the first job runs while the server imports; the next ones find it listening
    time.sleep(0.1)
json.dump(record, open(snakemake.output[0], "w"))
"""


@pytest.mark.parametrize("mode", ["on", "off"])
def test_snakemake_runs_its_script_jobs_through_the_server(tmp_path, mode):
    wiring = load_bench("job_startup").WIRING  # rules/common.smk's, for a Snakefile outside the checkout
    (tmp_path / "Snakefile").write_text((wiring + RULES).format(repo=str(forkserver.CHECKOUT)))
    (tmp_path / "job.py").write_text(SNAKEMAKE_JOB)
    env = {**os.environ, forkserver.SWITCH: mode}
    proc = subprocess.run([sys.executable, "-m", "snakemake", "--cores", "1", "--quiet"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    records = [json.loads((tmp_path / "out" / f"{i}.json").read_text()) for i in range(6)]
    forked = [r["preloaded"] and " serve " in r["parent"] for r in records]
    if mode == "off":
        assert not any(forked)
        assert not (tmp_path / ".snakemake" / "latentedit_forkserver.log").exists()
        return
    assert all(forked[1:]), records  # every job after the server was up
    log = (tmp_path / ".snakemake" / "latentedit_forkserver.log").read_text().splitlines()
    assert sum(line.startswith("job ") for line in log) == sum(forked) and log[-1] == "stopped", log
    socket_path = next(line.split()[-1] for line in log if line.startswith("listening on "))
    assert not os.path.exists(os.path.dirname(socket_path))  # stop_server removed the socket's folder
    servers = subprocess.run(["pgrep", "-f", socket_path], capture_output=True, text=True)
    assert servers.stdout == ""  # the server ended with the run


def test_the_snakemake_patch_applies_and_is_idempotent():
    from snakemake.script import PythonScript

    assert forkserver.route_scripts()
    patched = PythonScript.execute_script
    assert forkserver.route_scripts()
    assert PythonScript.execute_script is patched and patched.latentedit_patch
