"""Workflow jobs that start with torch already imported: a fork server per local Snakemake run (Linux).

**Why.** Snakemake runs every ``script:`` job as a fresh ``python`` process, and each job that trains, projects,
renders or judges imports torch first: 2.1 s of CPU on the 2-core machine here (``python -X importtime``: 1.7 s, of
which 0.3 s loading ``torch._C`` and most of the rest torch's Python modules registering operators, decompositions
and meta kernels), 0.3 s more for pandas and 0.5 s for matplotlib, and at exit 0.5–0.7 s more tearing those modules
down. Forking the jobs from one
process that has imported them once took the default digits pipeline from 612–614 s to 528–546 s on two cores, and
the CPU of the whole run from 1,187–1,189 s to 1,025–1,058 s, with every table, store and checkpoint the same bytes
(README "Measured"; ``bench/job_startup.py``: 2.7 CPU-s saved per job).

**How.** The Snakefile's ``onstart`` calls :func:`start_server` and ``onsuccess``/``onerror`` call
:func:`stop_server`:

- :func:`start_server` starts ``python -c <serve> SOCKET --owner PID`` (:func:`serve`). It
  imports :data:`PRELOAD` once, listens on a Unix socket in a private temporary directory, and forks once per job.
  It only starts in Snakemake's main process of a local run on Linux: a cluster job runs elsewhere.
- :func:`route_scripts` (applied when the workflow is parsed, like :mod:`latentedit.workflow_scheduler`) replaces
  Snakemake's ``PythonScript.execute_script``. While this process's server is up, and the job runs on the workflow's
  own Python (no conda environment, container or environment module), Snakemake runs
  ``python -c <run the client> run SOCKET SCRIPT`` in place of ``python SCRIPT``. The server and the client import
  this module from the checkout whose workflow runs (:data:`CHECKOUT`), as the jobs import its library.
- That client (:func:`run_client`) sends the server its ``argv``, working directory, environment and umask, with
  its stdin, stdout and stderr. The server forks; the child becomes the job and runs the script with ``runpy``,
  as ``__main__``, with the client's standard streams, directory and environment, the rule's thread counts, and
  ``sys.path[0]`` the script's folder. It first drops the ``latentedit`` modules the server imported, so the job imports the checkout's code
  itself. The client exits with the job's exit status (128 + n for signal n).
- The client stays the process that Snakemake waits for and signals. It forwards SIGINT, SIGTERM and SIGHUP to the
  job's process group. If the client dies (SIGKILL), the job sees its connection close and terminates its own
  process group. If the server dies, the kernel kills its jobs (``PR_SET_PDEATHSIG``). A killed job therefore never
  writes outputs after Snakemake has declared it failed.
- The client runs the script itself when the server cannot be reached: the first jobs of a run, while the server
  is still importing torch, or a server that is gone. ``LATENTEDIT_FORKSERVER=off`` turns the whole mechanism off
  (the A/B switch of ``bench/job_startup.py``).

**What a job sees differently.** Its process starts with torch imported, so :func:`latentedit.jobs.setup_job` sets
torch's threads directly (it already does so when torch is imported). Its timing record (:mod:`latentedit.jobs`)
starts at the fork and leaves the import out, since the job no longer pays it. Its peak RSS (``VmHWM``) counts the
server's pages that it shares, so it reads higher for a job that imports little: 296 MB for the aggregation against
176 MB as a fresh interpreter. The modules' random states are the server's, the same in every job; the workflow seeds everything it
draws. Results do not change: ``summary.csv`` is byte-identical with and without the server (README "Measured").

Forking is safe because the server does nothing but import and wait: it never touches a GPU (jobs that use CUDA
initialise it in the child, as a fresh process would), opens no file a job reads and runs no code of ours besides
this loop. The one library that starts threads at import, OpenBLAS (loaded with numpy), handles ``fork`` itself, as
every ``multiprocessing`` user of numpy on Linux relies on; a forked job sets its thread count afresh
(:func:`_apply_thread_counts`).
"""

from __future__ import annotations

import argparse
import atexit
import gc
import importlib
import json
import os
import runpy
import select
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import NoReturn

from latentedit.snakemake_patch import replace_method

SWITCH = "LATENTEDIT_FORKSERVER"  # "off": every job is a fresh interpreter
PRELOAD = ("numpy", "torch", "h5py", "pandas", "PIL.Image", "matplotlib", "matplotlib.pyplot", "threadpoolctl")
OWNER_POLL_S = 1.0  # the server checks this often whether the Snakemake process that started it is alive
_HEADER = struct.Struct("!Q")  # the length of a request, or a job's pid and exit status, as 8-byte integers
_STATUS = struct.Struct("!q")
CHECKOUT = str(Path(__file__).resolve().parents[1])  # the folder holding this copy of the latentedit package
_server: subprocess.Popen | None = None  # this process's server (Snakemake's main process only)
_socket_path: str | None = None


def enabled() -> bool:
    """Whether jobs may be forked here: Linux (fork after importing torch is the platform's norm; macOS's system
    frameworks are not fork-safe) and not switched off with ``LATENTEDIT_FORKSERVER=off``."""
    return sys.platform.startswith("linux") and os.environ.get(SWITCH, "").lower() != "off"


# --- Snakemake's side ------------------------------------------------------------------------------------------------


def start_server(workflow) -> str | None:
    """Start this run's server (``onstart``) unless the run is not local, not Snakemake's main process, or not
    :func:`enabled`; returns the socket's path. Does not wait for the server's imports: until it listens, jobs run
    as fresh interpreters."""
    global _server, _socket_path
    if _server is not None or not enabled() or not workflow.local_exec or not workflow.is_main_process:
        return _socket_path
    try:
        folder = tempfile.mkdtemp(prefix="latentedit-forkserver-")  # 0700: only this user can reach the socket
        path = os.path.join(folder, "socket")
        log_path = Path(".snakemake") / "latentedit_forkserver.log"
        log_path.parent.mkdir(exist_ok=True)
        with open(log_path, "w") as log:
            _server = subprocess.Popen([*python_command(), "serve", path, "--owner", str(os.getpid()),
                                        "--remove-folder"],
                                       stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                       start_new_session=True)
    except OSError as error:  # the run goes on with fresh interpreters
        print(f"latentedit.forkserver: not started ({error}); jobs start as fresh interpreters", file=sys.stderr)
        return None
    _socket_path = path
    return path


def stop_server(timeout: float = 10.0) -> None:
    """Stop this run's server (``onsuccess``/``onerror``) and remove its socket folder; idempotent."""
    global _server, _socket_path
    server, path, _server, _socket_path = _server, _socket_path, None, None
    if server is None:
        return
    server.terminate()
    try:
        server.wait(timeout)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()
    if path:  # the server removes both when it stops, but not when it had to be killed
        _remove(os.unlink, path)
        _remove(os.rmdir, os.path.dirname(path))


def _remove(remove, path: str) -> None:
    """``remove(path)`` (``os.unlink``, ``os.rmdir``), if it is still there."""
    try:
        remove(path)
    except OSError:
        pass


def route_scripts() -> bool:
    """Patch Snakemake's ``PythonScript.execute_script`` so that, while :func:`start_server`'s server is up, a job on
    the workflow's own Python runs through :func:`run_client` (module docstring). Returns whether the patch is in
    place; idempotent."""

    def make(original):
        def execute_script(self, fname, edit=False):
            path = _socket_path
            own_python = self.conda_env is None and self.container_img is None and not self.env_modules
            if path is None or edit or not own_python:
                return original(self, fname, edit=edit)
            py_exec, flag, code = python_command()
            self._execute_cmd("{py_exec} {flag} {code:q} run {socket:q} {fname:q}", py_exec=py_exec, flag=flag,
                              code=code, socket=path, fname=fname, is_python_script=True)

        return execute_script

    return replace_method("snakemake.script", "PythonScript", "execute_script", make,
                          "jobs start as fresh interpreters")


def python_command() -> list[str]:
    """``python -c`` running :func:`main` of this module from :data:`CHECKOUT` (not ``-m``, which would import it
    from wherever the working directory and the environment lead). Arguments follow."""
    code = f"import sys; sys.path[0] = {CHECKOUT!r}; from latentedit.forkserver import main; sys.exit(main())"
    return [sys.executable, "-c", code]


# --- the job's side: the client ----------------------------------------------------------------------------------


def run_client(socket_path: str, argv: list[str]) -> int:
    """Run the script ``argv[0]`` (with ``argv[1:]``) in a child of the server at ``socket_path``, or here when the
    server cannot be reached; returns the exit status to exit with."""
    try:
        conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        conn.connect(socket_path)
    except OSError:
        return run_script(argv)
    request = json.dumps({"argv": argv, "cwd": os.getcwd(), "env": dict(os.environ),
                          "umask": _current_umask()}).encode()
    try:
        socket.send_fds(conn, [_HEADER.pack(len(request))], [0, 1, 2])
        conn.sendall(request)
        pid = _STATUS.unpack(_receive(conn, _STATUS.size))[0]
    except (OSError, EOFError):  # the server went away before it forked: nothing ran yet
        conn.close()
        return run_script(argv)

    def forward(signum, frame):
        try:
            os.killpg(pid, signum)
        except ProcessLookupError:
            pass

    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, forward)
    try:
        status = _STATUS.unpack(_receive(conn, _STATUS.size))[0]
    except (OSError, EOFError):
        print(f"latentedit.forkserver: the server went away while job {pid} ran", file=sys.stderr)
        return 1
    return status if status >= 0 else 128 - status


def run_script(argv: list[str]) -> int:
    """Run ``argv[0]`` as ``__main__`` in this process, as ``python argv[0] argv[1:]`` would; returns its exit
    status. An uncaught exception goes through ``sys.excepthook`` (so :func:`latentedit.jobs.setup_job` sees it)."""
    sys.argv = list(argv)
    sys.path[0] = os.path.dirname(os.path.abspath(argv[0]))
    try:
        runpy.run_path(argv[0], run_name="__main__")
    except SystemExit as stop:
        if stop.code is None or isinstance(stop.code, int):
            return stop.code or 0
        print(stop.code, file=sys.stderr)
        return 1
    except BaseException as error:  # what the interpreter would do with it: print it (from the script's frame on)
        traceback = error.__traceback__
        while traceback is not None and (traceback.tb_frame.f_code.co_filename == __file__
                                         or traceback.tb_frame.f_code.co_filename.startswith("<frozen runpy")):
            traceback = traceback.tb_next
        error = error.with_traceback(traceback or error.__traceback__)  # the hook prints the exception's own
        sys.excepthook(type(error), error, error.__traceback__)
        return 128 + signal.SIGINT if isinstance(error, KeyboardInterrupt) else 1  # Python dies of SIGINT then
    return 0


def _receive(conn: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = conn.recv(size - len(data))
        if not chunk:
            raise EOFError("connection closed")
        data += chunk
    return data


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# --- the server ------------------------------------------------------------------------------------------------------


def serve(socket_path: str, owner: int | None = None, remove_folder: bool = False, preload=PRELOAD) -> int:
    """Import ``preload``, then fork a job for each request on ``socket_path`` until SIGTERM, or until ``owner``
    (Snakemake's pid) is gone, and its running jobs have ended; then remove the socket (and, with
    ``remove_folder``, the folder :func:`start_server` made for it: a run killed before ``onsuccess`` leaves none)."""
    import psutil  # here, not at the top: every job's client imports this module, and psutil costs it 30 ms

    started = time.perf_counter()
    for name in preload:
        importlib.import_module(name)
    print(f"imported {', '.join(preload)} in {time.perf_counter() - started:.2f} s", flush=True)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(socket_path)
    listener.listen(64)
    wake_read, wake_write = os.pipe()
    os.set_blocking(wake_read, False)
    os.set_blocking(wake_write, False)
    signal.set_wakeup_fd(wake_write)
    stopping: list[bool] = []
    signal.signal(signal.SIGCHLD, lambda *_: None)  # a handler, so that the wake-up fd hears of ended jobs
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))
    jobs: dict[int, socket.socket] = {}
    print(f"listening on {socket_path}", flush=True)
    while not stopping or jobs:
        readable, _, _ = select.select([wake_read] + ([] if stopping else [listener]), [], [], OWNER_POLL_S)
        if wake_read in readable:
            while _drain(wake_read):
                pass
        _reap(jobs)
        if owner is not None and not stopping and not psutil.pid_exists(owner):
            print(f"owner {owner} is gone; waiting for {len(jobs)} running jobs", flush=True)
            stopping.append(True)
        if listener in readable and not stopping:
            _fork_job(listener, jobs, (wake_read, wake_write))
    listener.close()
    _remove(os.unlink, socket_path)
    if remove_folder:
        _remove(os.rmdir, os.path.dirname(socket_path))
    print("stopped", flush=True)
    return 0


def _fork_job(listener: socket.socket, jobs: dict[int, socket.socket], wake_fds) -> None:
    """Accept one request and fork its job, which runs the script and exits (:func:`_exit_job`)."""
    conn, _ = listener.accept()
    fds: list[int] = []
    try:
        conn.settimeout(10.0)  # a client sends its request at once; do not let a stuck one hold the server
        pid, uid, _gid = struct.unpack("3i", conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED,
                                                              struct.calcsize("3i")))
        if uid != os.getuid():
            raise PermissionError(f"request from uid {uid}")
        header, fds, _flags, _addr = socket.recv_fds(conn, _HEADER.size, 3)
        if len(header) != _HEADER.size or len(fds) != 3:
            raise EOFError("incomplete request")
        request = json.loads(_receive(conn, _HEADER.unpack(header)[0]))
        conn.settimeout(None)
        sys.stdout.flush()
        sys.stderr.flush()
        job = os.fork()  # OSError when out of processes or memory: that request is refused, the others go on
    except (OSError, EOFError, ValueError) as error:
        print(f"refused a request: {error!r}", flush=True)  # its client runs the script itself
        for fd in fds:
            os.close(fd)
        conn.close()
        return
    if job:
        for fd in fds:
            os.close(fd)
        jobs[job] = conn
        try:
            conn.sendall(_STATUS.pack(job))
        except OSError:  # the client is gone: its job's watcher ends the job
            pass
        print(f"job {job} for pid {pid}: {' '.join(request['argv'])}", flush=True)
        return
    try:  # the job: it never returns to the server's loop
        _become_job(conn, fds, request, listener, jobs, wake_fds)
    except BaseException:
        import traceback

        traceback.print_exc()
    finally:
        os._exit(1)  # reached only when setting the job up failed: the job itself ends in _exit_job


def _become_job(conn: socket.socket, fds: list[int], request: dict, listener: socket.socket,
                jobs: dict[int, socket.socket], wake_fds) -> NoReturn:
    """In the forked child: leave the server's loop, become the client's process, run the script and exit."""
    signal.set_wakeup_fd(-1)
    for fd in wake_fds:
        os.close(fd)
    listener.close()
    for other in jobs.values():
        other.close()
    for signum, handler in ((signal.SIGCHLD, signal.SIG_DFL), (signal.SIGTERM, signal.SIG_DFL),
                            (signal.SIGINT, signal.default_int_handler)):
        signal.signal(signum, handler)
    _die_with_parent()
    os.setsid()  # its own process group: the client's signals and the watcher reach it and its subprocesses
    for target, fd in enumerate(fds):
        os.dup2(fd, target)
        os.close(fd)
    for stream, fd in ((sys.stdout, 1), (sys.stderr, 2)):  # buffered as Python buffers them for these streams
        stream.reconfigure(line_buffering=stream is sys.stderr or os.isatty(fd),
                           write_through=bool(request["env"].get("PYTHONUNBUFFERED")))
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    os.umask(request["umask"])
    _apply_thread_counts()
    for name in [name for name in sys.modules if name == "latentedit" or name.startswith("latentedit.")]:
        del sys.modules[name]  # the job imports the checkout's own code, as a fresh interpreter would
    threading.Thread(target=_end_with_client, args=(conn,), daemon=True, name="forkserver-client").start()
    _exit_job(run_script(request["argv"]))


def _exit_job(status: int) -> NoReturn:
    """End a forked job as the interpreter ends a script, up to its clean-up of modules: wait for non-daemon threads,
    free what reference cycles hold (an unclosed file's buffers), run the atexit handlers (the job's timing record,
    the log's flush), flush the standard streams, then ``os._exit``. Tearing down torch's, pandas' and matplotlib's
    modules takes an interpreter 0.5–0.9 s here and writes nothing (measured: a fresh ``python -c "import torch"``
    spends 0.54 s exiting; a fork of the server 0.90 s with ``sys.exit``, 0.015 s with ``os._exit``)."""
    try:
        getattr(threading, "_shutdown", lambda: None)()  # what the interpreter calls first at exit
        gc.collect()
        atexit._run_exitfuncs()
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):
                pass
    finally:
        os._exit(status)


def _apply_thread_counts() -> None:
    """In a job: give the libraries the server loaded the thread counts that Snakemake's environment gives a fresh
    job (``OMP_NUM_THREADS``, ``OPENBLAS_NUM_THREADS``: the rule's threads). Each library read the server's
    environment when it loaded; OpenBLAS (numpy's, loaded with torch) then started one worker per core. Besides
    competing for the cores, another count changes how a reduction is split and so the last bits of its result
    (the Fréchet distances of a smoke run differed in the 8th digit before this)."""
    from threadpoolctl import threadpool_limits

    for variable, api in (("OMP_NUM_THREADS", "openmp"), ("OPENBLAS_NUM_THREADS", "blas")):
        count = os.environ.get(variable, "")
        if count.isdigit() and int(count) > 0:
            threadpool_limits(limits=int(count), user_api=api)
    torch = sys.modules.get("torch")
    if torch is not None and os.environ.get("OMP_NUM_THREADS", "").isdigit():
        torch.set_num_threads(max(1, int(os.environ["OMP_NUM_THREADS"])))  # its OpenMP and MKL counts


def _end_with_client(conn: socket.socket) -> None:
    """In a job: block until the client's end of the connection closes, then terminate the job's process group
    (the client was killed; a job that ends normally exits before this matters)."""
    try:
        while conn.recv(64):
            pass
    except OSError:
        pass
    os.killpg(os.getpgrp(), signal.SIGTERM)


def _die_with_parent() -> None:
    """``prctl(PR_SET_PDEATHSIG, SIGKILL)``: the kernel kills the job if the server dies."""
    import ctypes

    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGKILL), 0, 0, 0)  # PR_SET_PDEATHSIG = 1
    except (OSError, AttributeError):
        pass


def _reap(jobs: dict[int, socket.socket]) -> None:
    """Send each ended job's exit status (negative: killed by that signal) to its client."""
    for pid in list(jobs):
        done, wait_status = os.waitpid(pid, os.WNOHANG)
        if not done:
            continue
        conn = jobs.pop(pid)
        try:
            conn.sendall(_STATUS.pack(os.waitstatus_to_exitcode(wait_status)))
        except OSError:
            pass
        conn.close()


def _drain(fd: int) -> bool:
    try:
        return bool(os.read(fd, 512))
    except BlockingIOError:
        return False


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="latentedit.forkserver", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    serve_parser = commands.add_parser("serve", help="import the preloaded modules and fork jobs on request")
    serve_parser.add_argument("socket")
    serve_parser.add_argument("--owner", type=int, default=None, help="stop when this process is gone")
    serve_parser.add_argument("--remove-folder", action="store_true", help="remove the socket's folder at the end")
    run_parser = commands.add_parser("run", help="run a script in a child of the server (here when it is gone)")
    run_parser.add_argument("socket")
    run_parser.add_argument("script", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    if args.command == "serve":
        return serve(args.socket, args.owner, args.remove_folder)
    return run_client(args.socket, args.script)


if __name__ == "__main__":
    sys.exit(main())
