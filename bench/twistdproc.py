"""
Shared launcher for the scale-out benchmarks (workers_scaling.py, fanout.py,
idle.py): C{twistd -n websocket ...} and C{redis-server} as subprocesses on
127.0.0.1, with OS-chosen ports, optional CPU pinning and a raised file
limit, plus the bits every report needs (the pids to sum CPU over, the
machine load).  Not a benchmark itself.

The twistd log goes to a file (not a pipe): a server holding 10,000
connections logs 10,000 "open" lines, and nobody has to drain them.
"""

from __future__ import annotations

import os
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
HOST = "127.0.0.1"
REDIS_SERVER = "/usr/bin/redis-server"


class LaunchError(Exception):
    """A server did not start; the message says why in one line."""


def raiseFileLimit(want: int) -> int:
    """
    Raise this process's soft RLIMIT_NOFILE to at least C{want} (up to the
    hard limit, the most an unprivileged process may take); servers
    started afterwards inherit it (twistd does not raise its own).  Returns the new soft limit.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = want if hard == resource.RLIM_INFINITY else min(max(want, soft), hard)
    if target > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def loadText() -> str:
    """The machine load as C{uptime} reports it (1, 5, 15 minutes)."""
    one, five, fifteen = os.getloadavg()
    return f"load {one:.2f} {five:.2f} {fifteen:.2f} ({os.cpu_count()} CPUs)"


def runQueueNs(pids: list[int]) -> int:
    """
    Time the threads of C{pids} spent runnable but waiting for a CPU (the
    second field of /proc/PID/task/TID/schedstat), in nanoseconds: how much
    other work on the machine held them back.
    """
    total = 0
    for pid in pids:
        try:
            tids = os.listdir(f"/proc/{pid}/task")
        except FileNotFoundError:
            continue
        for tid in tids:
            try:
                with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                    total += int(f.read().split()[1])
            except (FileNotFoundError, IndexError):
                pass
    return total


def pinned(cpus: set[int] | None) -> list[str]:
    """The C{taskset} prefix that runs a command (and its children) on C{cpus}."""
    return ["taskset", "-c", ",".join(map(str, sorted(cpus)))] if cpus else []


def freePort() -> int:
    """A port free right now on 127.0.0.1 (for redis-server, which cannot take port 0)."""
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


class Twistd:
    """
    One C{twistd -n websocket ARGS -l tcp:0:interface=127.0.0.1} process
    tree, in a session of its own (one signal stops the pool), inheriting
    this process's file limit (raise it first with L{raiseFileLimit}).  C{pids} are the processes serving connections (the workers, or
    the twistd process itself with one worker) plus the supervising parent.
    """

    def __init__(
        self,
        args: list[str],
        *,
        workers: int = 1,
        cpus: set[int] | None = None,
        timeout: float = 30.0,
        backlog: int | None = None,
    ) -> None:
        self.dir = tempfile.mkdtemp(prefix="twsbench-")
        self.logPath = os.path.join(self.dir, "twistd.log")
        command = [
            *pinned(cpus), sys.executable, "-c", "from twisted.scripts.twistd import run; run()",
            "-n", "--pidfile=", f"--logfile={self.logPath}", "websocket",
            "-l", f"tcp:0:interface={HOST}" + (f":backlog={backlog}" if backlog else ""),
            "--workers", str(workers), *args,
        ]  # fmt: skip
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        env.pop("PYTHONSAFEPATH", None)
        self.proc = subprocess.Popen(
            command, cwd=self.dir, env=env, stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
        try:
            self.port = int(self.waitFor(r"listening on ws://127\.0\.0\.1:(\d+)/", timeout).group(1))
            self.workerPids: list[int] = []
            if workers > 1:
                for n in range(1, workers + 1):
                    self.workerPids.append(
                        int(self.waitFor(rf"worker {n}: started \(pid (\d+)\)", timeout).group(1))
                    )
                    self.waitFor(rf"worker {n}: listening on ", timeout)
            else:
                self.workerPids.append(self.proc.pid)
        except BaseException:
            self.stop()
            raise
        self.pids = sorted({self.proc.pid, *self.workerPids})

    def log(self) -> str:
        try:
            with open(self.logPath, errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def waitFor(self, pattern: str, timeout: float) -> re.Match:
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            match = regex.search(self.log())
            if match:
                return match
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        tail = " | ".join(self.log().splitlines()[-3:])
        raise LaunchError(f"twistd: no {pattern!r} within {timeout:.0f} s (exit {self.proc.poll()}): {tail}")

    def trouble(self) -> list[str]:
        """Log lines saying a worker ended or failed (a run with any is suspect)."""
        pattern = re.compile(r"worker \d+: (pid \d+ .* after |restarting in )|Traceback|Unhandled")
        return [line for line in self.log().splitlines() if pattern.search(line)]

    def socketCounts(self) -> list[int]:
        """Open sockets per worker (from /proc/PID/fd), in worker order."""
        counts = []
        for pid in self.workerPids:
            n = 0
            for fd in os.listdir(f"/proc/{pid}/fd"):
                try:
                    n += os.readlink(f"/proc/{pid}/fd/{fd}").startswith("socket:")
                except OSError:
                    pass
            counts.append(n)
        return counts

    def stop(self, timeout: float = 10.0) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        shutil.rmtree(self.dir, ignore_errors=True)


class Redis:
    """A throwaway C{redis-server} on 127.0.0.1, persistence off."""

    def __init__(self, cpus: set[int] | None = None, timeout: float = 10.0) -> None:
        if not os.access(REDIS_SERVER, os.X_OK):
            raise LaunchError(f"{REDIS_SERVER} not found (apt-get install redis-server)")
        self.port = freePort()
        self.proc = subprocess.Popen(
            [*pinned(cpus), REDIS_SERVER, "--bind", HOST, "--port", str(self.port), "--save", "",
             "--appendonly", "no", "--daemonize", "no", "--loglevel", "warning"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True,
        )  # fmt: skip
        self.pid = self.proc.pid
        deadline = time.monotonic() + timeout
        while True:
            try:
                with socket.create_connection((HOST, self.port), timeout=1) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(16).startswith(b"+PONG"):
                        break
            except OSError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise LaunchError(f"redis-server did not answer on port {self.port}")
            time.sleep(0.05)
        self.url = f"redis://{HOST}:{self.port}/0"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
