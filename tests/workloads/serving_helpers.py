"""Test helpers for the model server: real servers on real sockets (subprocess or thread) and a real Redis."""

from __future__ import annotations

import asyncio
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Sequence

import numpy as np

REPO = Path(__file__).resolve().parents[2]
START_TIMEOUT_S = 90.0

# Words the tiny test tokenizer knows (anything else becomes [UNK], which would make inputs collide).
WORDS = ("good", "great", "excellent", "wonderful", "happy", "love", "best", "nice", "bad", "awful",
         "terrible", "poor", "sad", "hate", "worst", "ugly", "the", "a", "movie", "film", "story", "food",
         "place", "service", "was", "is", "really", "very", "this", "that", "it", "quite", "show", "book")


def needs_binary(name: str):
    """Skip a test when the `name` command is missing, except in CI (CI set): there a missing test dependency
    must fail the run, so the test runs and fails where it starts the command."""
    import pytest

    missing = shutil.which(name) is None and not os.environ.get("CI")
    return pytest.mark.skipif(missing, reason=f"{name} not installed (scripts/test.sh installs it; CI fails instead)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def distinct_texts(n: int, seed: int = 0) -> list[str]:
    """`n` different sentences from the tiny vocabulary (different token sequences, so different outputs)."""
    rng = np.random.default_rng(seed)
    seen: set[str] = set()
    out: list[str] = []
    while len(out) < n:
        text = " ".join(rng.choice(WORDS, size=int(rng.integers(3, 12))))
        if text not in seen:
            seen.add(text)
            out.append(text)
    return out


def request(port: int, method: str, path: str, body: bytes | None = None,
            headers: dict[str, str] | None = None, timeout: float = 30.0) -> tuple[int, dict[str, str], bytes]:
    """One HTTP request on a fresh connection: (status, headers with lower-case names, body)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def post_json(port: int, path: str, payload: Any, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], Any]:
    status, hdrs, body = request(port, "POST", path, json.dumps(payload).encode(),
                                 {"Content-Type": "application/json", **(headers or {})})
    return status, hdrs, json.loads(body) if body else None


def wait_ready(port: int, timeout: float = START_TIMEOUT_S, proc: subprocess.Popen | None = None,
               log: Path | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}: {log.read_text() if log else ''}")
        try:
            if request(port, "GET", "/ping", timeout=2)[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.05)
    raise TimeoutError(f"server on port {port} not ready after {timeout}s: {log.read_text() if log else ''}")


class ServerProcess:
    """`python -m workloads.serving` (or a test entry script) as a child process, logs to a file."""

    def __init__(self, args: Sequence[str], log: Path, entry: Sequence[str] = ("-m", "workloads.serving"),
                 env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        self.log = log
        cmd = [sys.executable, *entry, "--port", str(self.port), "--host", "127.0.0.1", *args]
        self._fh = log.open("wb")
        child_env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1", **(env or {})}
        self.proc = subprocess.Popen(cmd, cwd=REPO, stdout=self._fh, stderr=subprocess.STDOUT, env=child_env)
        try:
            wait_ready(self.port, proc=self.proc, log=log)
        except Exception:
            self.kill()
            raise

    def log_records(self) -> list[dict[str, Any]]:
        """The JSON log lines the server wrote so far (non-JSON lines are ignored)."""
        out = []
        for line in self.log.read_text(errors="replace").splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                continue
        return out

    def terminate(self, timeout: float = 35.0) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self._fh.close()


class ThreadServer:
    """The real server (`serve`) on its own event loop in a thread, serving a given predictor."""

    def __init__(self, config: Any, predictor: Any) -> None:
        from workloads.serving.server import serve

        self.port = free_port()
        self.config = replace(config, port=self.port, host="127.0.0.1")
        self._loop = asyncio.new_event_loop()
        self._stop = asyncio.Event()
        self.exit_code: int | None = None

        def run() -> None:
            asyncio.set_event_loop(self._loop)
            self.exit_code = self._loop.run_until_complete(serve(self.config, predictor=predictor, stop=self._stop))
            self._loop.close()

        self._thread = threading.Thread(target=run, name=f"server-{self.port}", daemon=True)
        self._thread.start()
        wait_ready(self.port)

    def stop(self) -> None:
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stop.set)
            self._thread.join(30)

    def __enter__(self) -> "ThreadServer":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class SlowPredictor:
    """Wraps a real predictor: sleeps before each batch and records batch sizes, to make queues observable."""

    def __init__(self, inner: Any, delay_s: float) -> None:
        self.inner = inner
        self.info = inner.info
        self.delay_s = delay_s
        self.batches: list[int] = []
        self.clones: list["SlowPredictor"] = []

    def clone(self) -> "SlowPredictor":
        """Another worker's copy (its own batch record), remembered so a test can slow it down too."""
        twin = type(self)(self.inner, self.delay_s)
        self.clones.append(twin)
        return twin

    def predict(self, texts: Sequence[str]) -> np.ndarray:
        self.batches.append(len(texts))
        time.sleep(self.delay_s)
        return self.inner.predict(texts)


def make_tls_files(directory: Path) -> dict[str, Path]:
    """A throwaway CA and a server certificate for 127.0.0.1, made with the openssl command line."""
    directory.mkdir(parents=True, exist_ok=True)
    ca_key, ca, key, csr, cert = (directory / n for n in ("ca.key", "ca.pem", "server.key", "server.csr",
                                                          "server.pem"))
    ext = directory / "san.ext"
    ext.write_text("subjectAltName=IP:127.0.0.1\n")

    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True)

    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=test-ca",
        "-keyout", str(ca_key), "-out", str(ca))
    run("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1", "-keyout", str(key), "-out", str(csr))
    run("x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key), "-CAcreateserial", "-days", "1",
        "-extfile", str(ext), "-out", str(cert))
    return {"ca": ca, "cert": cert, "key": key}


class RedisServer:
    """A real `redis-server` on a free port with persistence off; optional password and TLS-only listener."""

    def __init__(self, password: str | None = None, tls: dict[str, Path] | None = None,
                 port: int | None = None) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise FileNotFoundError("redis-server")
        self.port = port or free_port()
        self.password = password
        self.tls = tls
        cmd = [binary, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        if tls:
            cmd += ["--port", "0", "--tls-port", str(self.port), "--tls-cert-file", str(tls["cert"]),
                    "--tls-key-file", str(tls["key"]), "--tls-ca-cert-file", str(tls["ca"]),
                    "--tls-auth-clients", "no"]
        else:
            cmd += ["--port", str(self.port)]
        if password:
            cmd += ["--requirepass", password]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                if self.client().ping():
                    return
            except Exception:
                time.sleep(0.05)
        self.stop()
        raise TimeoutError("redis-server did not start")

    @property
    def url(self) -> str:
        return f"{'rediss' if self.tls else 'redis'}://127.0.0.1:{self.port}/0"

    def client(self) -> Any:
        import redis

        extra = {"ssl": True, "ssl_ca_certs": str(self.tls["ca"])} if self.tls else {}
        return redis.Redis(host="127.0.0.1", port=self.port, password=self.password, socket_timeout=2, **extra)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


def metric_value(text: str, name: str, labels: dict[str, str] | None = None) -> float:
    """A sample's value from Prometheus text output (0 when absent)."""
    from prometheus_client.parser import text_string_to_metric_families

    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in (labels or {}).items()):
                return float(sample.value)
    return 0.0


def expected_rows(predictor: Any, texts: Sequence[str]) -> np.ndarray:
    """What the model answers for each text on its own (batch of one), the reference for every answer."""
    return np.stack([predictor.predict([t])[0] for t in texts])


