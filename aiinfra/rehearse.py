"""`python -m aiinfra rehearse --stack dev`: run the stack's EKS workloads on this machine, from the rendered
objects themselves, and check every hop.

The training Job, the compilation Job and the serving Deployment are taken from the offline synth's resource
graph: each container's command, env (values and downward-API fields), volume mounts and init containers are
what the cluster would run, expanded as the kubelet expands `$(VAR)`. Nothing here describes the workloads a
second time; a change to a Job in `components/` changes what runs here. What cannot exist on this machine is
replaced by a stand-in, and every replacement is listed in the report:
- S3 and Secrets Manager: a moto server holding the stack's buckets and the feature store's secret, reached
  through `AWS_ENDPOINT_URL`;
- Redis: a local `redis-server` with the secret's AUTH token, where a workload names one;
- volumes: one local folder per pod volume, substituted for its mount path in args and env;
- devices: `--device neuron|cuda` and Neuron compile targets become CPU; torchrun runs one rank;
- images: the platform's ECR images run as this checkout's code; any other image has no local runtime and
  ends the rehearsal with one line;
- the training run's size: tiny data and a tiny model (hyperparameters through `SM_HPS`, as SageMaker passes
  them), so the whole chain runs in seconds.
The training process is killed once (SIGKILL, like a reclaimed spot node) after its first checkpoint reached
S3; the rerun starts from empty volumes, as a new pod would, and must resume from that S3 checkpoint.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiinfra.errors import UsageError
from aiinfra.graph import ResourceGraph
from aiinfra.stack_args import add_stack_arguments, synthesize_from_args
from contracts import env as names
from contracts import secrets as contract_secrets
from contracts.storage import CHECKPOINT_COMPLETE_FILE as COMPLETE_FILE
from contracts.storage import RUN_ARCHIVE as MODEL_ARCHIVE

ROOT = Path(__file__).resolve().parent.parent
IMAGES = ROOT / "workloads" / "images"  # `serve` lives here, as on the image's PATH
JOB, DEPLOYMENT = "kubernetes:batch/v1:Job", "kubernetes:apps/v1:Deployment"
BUCKET_TYPES = ("aws:s3/bucket:Bucket", "aws:s3/bucketV2:BucketV2")
SECRET_TYPE = "aws:secretsmanager/secret:Secret"
# Repositories of the platform's own ECR whose images are this checkout's code (workloads/images/*.Dockerfile).
LOCAL_IMAGES = ("training", "compilation", "serving")
_ECR = re.compile(r"^\d{12}\.dkr\.ecr\.[a-z0-9-]+\.amazonaws\.com(?:\.cn)?/(?:.+/)?([a-z0-9._-]+)(?::[\w.-]+|@sha256:[0-9a-f]{64})$")
_VAR = re.compile(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)")
TINY_RUN = {"max_steps": 8, "epochs": 2, "batch_size": 4, "max_seq_len": 16, "checkpoint_interval": 2,
            "log_interval": 1, "keep_checkpoints": 2, "learning_rate": 0.003, "log_format": "json"}
KILL_AFTER_STEP = 3  # after the checkpoint at step 2 is in S3


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("rehearse", help="run the stack's EKS workloads locally from the rendered objects",
                              description=__doc__.split("\n\n")[0])
    add_stack_arguments(p)
    p.add_argument("--workdir", type=Path, help="keep volumes and logs here (default: a temporary folder)")
    p.add_argument("--timeout", type=float, default=180, help="seconds any one hop may take")
    p.set_defaults(run=run)


# --- the rendered pods -------------------------------------------------------------------------------------

@dataclass
class Pod:
    """One pod template as the API server would hold it (camelCase, from the resource graph)."""

    kind: str
    name: str
    namespace: str
    spec: Mapping[str, Any]
    labels: dict[str, str]

    @property
    def title(self) -> str:
        return f"{self.kind} {self.namespace}/{self.name}"


def rendered_pods(graph: ResourceGraph) -> dict[str, Pod]:
    """The workloads' pod templates by object name (trainer, compiler, model-server)."""
    pods = {}
    for record in graph.of_type(JOB, DEPLOYMENT):
        meta, spec = record.inputs.get("metadata") or {}, record.inputs.get("spec") or {}
        template = spec.get("template") or {}
        pods[meta["name"]] = Pod(record.type.rsplit(":", 1)[-1], meta["name"], meta.get("namespace", "default"),
                                 template.get("spec") or {}, dict((template.get("metadata") or {}).get("labels") or {}))
    for needed in ("trainer", "compiler", "model-server"):
        if needed not in pods:
            raise UsageError(f"stack {graph.stack}: declares no workload '{needed}'; nothing to rehearse")
    return pods


def admission_problems(graph: ResourceGraph) -> list[str]:
    """The admission rules' findings: a pod the cluster would refuse is not rehearsed."""
    from aiinfra.policy_runner import evaluate
    from policies.rules import ALL_RULES

    rules = [r for r in ALL_RULES if r.concern == "admission"]
    return [f.message for f in evaluate(graph, rules=rules)]


@dataclass
class Rehearsal:
    """Shared state: stand-ins, the substitutions made, and the report rows."""

    work: Path
    endpoint: str
    env: dict[str, str]
    timeout: float
    substitutions: list[str] = field(default_factory=list)
    rows: list[tuple[str, str, float]] = field(default_factory=list)
    uid: str = field(default_factory=lambda: str(uuid.uuid4()))

    def note(self, text: str) -> None:
        if text not in self.substitutions:
            self.substitutions.append(text)


def expand(text: str, env: Mapping[str, str]) -> str:
    """The kubelet's `$(VAR)` expansion: defined variables are replaced, others stay as written."""
    return _VAR.sub(lambda m: env.get(m.group(1), m.group(0)), text)


def field_value(pod: Pod, path: str, uid: str) -> str:
    """A downward-API `fieldRef` for the pod (labels include the Job controller's uid)."""
    labels = {**pod.labels, "batch.kubernetes.io/controller-uid": uid, "controller-uid": uid}
    if path == "metadata.name":
        return f"{pod.name}-0"
    if path == "metadata.namespace":
        return pod.namespace
    match = re.fullmatch(r"metadata\.labels\['([^']+)'\]", path)
    if match and match.group(1) in labels:
        return labels[match.group(1)]
    raise UsageError(f"{pod.title}: env fieldRef {path!r} has no local equivalent")


@dataclass
class Process:
    """A container turned into a local command."""

    name: str
    argv: list[str]
    env: dict[str, str]
    mounts: dict[str, Path]


def local_process(r: Rehearsal, pod: Pod, container: Mapping[str, Any], volumes: Mapping[str, Path]) -> Process:
    """The container's command, env and mounts, expanded and mapped onto this machine."""
    title = f"{pod.title} container {container.get('name')}"
    image = str(container.get("image") or "")
    match = _ECR.match(image)
    if not match or match.group(1) not in LOCAL_IMAGES:
        raise UsageError(f"{title}: image {image!r} has no local runtime (platform ECR images "
                         f"{', '.join(LOCAL_IMAGES)} run as this checkout)")
    r.note(f"image {match.group(1)} -> this checkout's code ({sys.executable})")
    mounts = {}
    for mount in container.get("volumeMounts") or []:
        if mount["name"] not in volumes:
            raise UsageError(f"{title}: mounts volume {mount['name']!r} that the pod does not declare")
        mounts[mount["mountPath"]] = volumes[mount["name"]]
    env: dict[str, str] = {}
    for item in container.get("env") or []:
        if "value" in item:
            value = str(item["value"])
        elif (item.get("valueFrom") or {}).get("fieldRef"):
            value = field_value(pod, item["valueFrom"]["fieldRef"]["fieldPath"], r.uid)
        else:
            raise UsageError(f"{title}: env {item.get('name')} comes from {sorted(item.get('valueFrom') or {})}, "
                             "which the rehearsal cannot resolve")
        env[item["name"]] = expand(value, env)
    env.setdefault("JOB_COMPLETION_INDEX", "0")  # the Job controller sets it on indexed pods
    argv = [expand(str(a), env) for a in [*(container.get("command") or []), *(container.get("args") or [])]]
    argv = [remap(a, mounts) for a in argv]
    env = {k: remap(v, mounts) for k, v in env.items()}
    return Process(str(container.get("name")), argv, env, mounts)


def remap(value: str, mounts: Mapping[str, Path]) -> str:
    """Replace a mount path at the start of `value` (or after `=`) with its local folder, longest first."""
    for path in sorted(mounts, key=len, reverse=True):
        for lead in ("", "="):
            marker = lead + path
            index = value.find(marker)
            if index != -1 and (index == 0 or lead) and value[index + len(marker):index + len(marker) + 1] in ("", "/"):
                return value[:index + len(lead)] + str(mounts[path]) + value[index + len(marker):]
    return value


def volumes_for(r: Rehearsal, pod: Pod, attempt: str) -> dict[str, Path]:
    """A fresh local folder per declared volume (emptyDir semantics: a new pod starts empty)."""
    out = {}
    for volume in pod.spec.get("volumes") or []:
        if "emptyDir" not in volume:
            raise UsageError(f"{pod.title}: volume {volume['name']!r} is not an emptyDir; no local equivalent")
        folder = r.work / attempt / volume["name"]
        folder.mkdir(parents=True, exist_ok=True)
        out[volume["name"]] = folder
    r.note("volumes -> one local folder per pod volume, new for each pod")
    return out


def flag(argv: list[str], name: str) -> str | None:
    """The value of `--name V` or `--name=V` in argv."""
    for i, arg in enumerate(argv):
        if arg == name and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith(name + "="):
            return arg.split("=", 1)[1]
    return None


def set_flag(argv: list[str], name: str, value: str) -> list[str]:
    out = list(argv)
    for i, arg in enumerate(out):
        if arg == name and i + 1 < len(out):
            out[i + 1] = value
        elif arg.startswith(name + "="):
            out[i] = f"{name}={value}"
    return out


def on_this_machine(r: Rehearsal, process: Process) -> Process:
    """Stand-ins for what this machine lacks: devices, a cluster of ranks, the cloud endpoints."""
    argv = process.argv
    device = flag(argv, "--device")
    if device in ("neuron", "cuda"):
        argv = set_flag(argv, "--device", "cpu")
        r.note(f"--device {device} -> cpu (no {device} runtime here)")
    target = flag(argv, "--target")
    if target in ("inferentia", "trainium", "cuda"):
        argv = set_flag(argv, "--target", "cpu")
        r.note(f"--target {target} -> cpu (compiled for CPU; the Neuron compiler needs a Neuron host)")
    if argv and argv[0] == "torchrun":
        for name, value in (("--nnodes", "1"), ("--nproc-per-node", "1"), ("--node-rank", "0"),
                            ("--master-addr", "127.0.0.1"), ("--master-port", str(free_port()))):
            argv = set_flag(argv, name, value)
        argv = [str(Path(sys.executable).with_name("torchrun"))
                if Path(sys.executable).with_name("torchrun").exists() else "torchrun", *argv[1:]]
        r.note("torchrun -> one node, one rank, on 127.0.0.1")
    if argv and argv[0] == "python":
        argv = [sys.executable, *argv[1:]]
    env = {**process.env, **r.env}
    if "SERVING_DEVICE" in env and env["SERVING_DEVICE"] != "cpu":
        r.note(f"SERVING_DEVICE {env['SERVING_DEVICE']} -> cpu")
        env["SERVING_DEVICE"] = "cpu"
    return Process(process.name, argv, env, process.mounts)


# --- stand-ins ---------------------------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def moto_server() -> Iterator[str]:
    import logging

    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request otherwise

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@contextmanager
def redis_server(password: str) -> Iterator[int]:
    binary = shutil.which("redis-server")
    if binary is None:
        raise UsageError("redis-server is not installed (the feature store's stand-in); apt-get install redis-server")
    port = free_port()
    proc = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                             "--requirepass", password], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.05)
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def boto(r: Rehearsal, service: str) -> Any:
    import boto3

    return boto3.client(service, endpoint_url=r.endpoint, region_name=r.env["AWS_DEFAULT_REGION"],
                        aws_access_key_id="testing", aws_secret_access_key="testing")


def s3_keys(r: Rehearsal, uri: str) -> list[str]:
    bucket, _, prefix = uri[len("s3://"):].partition("/")
    pages = boto(r, "s3").get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return sorted(obj["Key"][len(prefix):] for page in pages for obj in page.get("Contents", []))


# --- running one container ---------------------------------------------------------------------------------

def start(r: Rehearsal, process: Process, log: Path) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "SM_", "SERVING_", "SAGEMAKER_"))}
    env.update(process.env)
    env["PATH"] = os.pathsep.join([str(IMAGES), str(Path(sys.executable).parent), env.get("PATH", "")])
    env["PYTHONPATH"] = str(ROOT)
    log.parent.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen(process.argv, cwd=ROOT, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT,
                            start_new_session=True)


def descendants(pid: int) -> list[int]:
    """Every process below `pid` (torchrun starts its workers in sessions of their own)."""
    parents: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        parents.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, queue = [], [pid]
    while queue:
        for child in parents.get(queue.pop(), []):
            found.append(child)
            queue.append(child)
    return found


def kill_tree(pid: int) -> None:
    """SIGKILL a process and everything it started at once, as when a spot node is reclaimed."""
    for target in [pid, *descendants(pid)]:
        try:
            os.kill(target, signal.SIGKILL)
        except ProcessLookupError:
            pass


def finish(r: Rehearsal, proc: subprocess.Popen, log: Path, what: str) -> str:
    try:
        code = proc.wait(timeout=r.timeout)
    except subprocess.TimeoutExpired:
        kill_tree(proc.pid)
        proc.wait()
        raise Failed(f"{what}: still running after {r.timeout:.0f}s; log {log}") from None
    text = log.read_text(errors="replace")
    if code != 0:
        last = [line for line in text.splitlines() if line.strip()][-1:] or ["(no output)"]
        raise Failed(f"{what}: exit {code}: {last[0][:300]}; log {log}")
    return text


class Failed(Exception):
    """A hop whose check did not hold: the rehearsal stops there (exit 1)."""


@contextmanager
def hop(r: Rehearsal, name: str, check: list[str]) -> Iterator[list[str]]:
    started = time.perf_counter()
    yield check
    r.rows.append((name, "; ".join(check), time.perf_counter() - started))


# --- the hops ----------------------------------------------------------------------------------------------

def publish_data(r: Rehearsal, train: Process) -> None:
    from workloads.training.demo import examples

    with hop(r, "publish data", []) as check:
        s3 = boto(r, "s3")
        for channel, count, seed in (("--train", 48, 0), ("--validation", 16, 1)):
            uri = flag(train.argv, channel)
            if not uri or not uri.startswith("s3://"):
                raise Failed(f"training reads {channel} {uri!r}, not an S3 prefix")
            bucket, _, prefix = uri[len("s3://"):].partition("/")
            body = "".join(json.dumps(e) + "\n" for e in examples(count, seed)).encode()
            s3.put_object(Bucket=bucket, Key=prefix + "part-0000.jsonl", Body=body)
            check.append(f"{count} examples at {uri}")


def train_until_killed(r: Rehearsal, pod: Pod) -> tuple[Process, int]:
    container = pod.spec["containers"][0]
    with hop(r, "training, killed", []) as check:
        process = on_this_machine(r, local_process(r, pod, container, volumes_for(r, pod, "trainer-attempt-1")))
        log = r.work / "logs" / "trainer-attempt-1.log"
        proc = start(r, process, log)
        deadline = time.monotonic() + r.timeout
        killed_at = None
        while time.monotonic() < deadline and proc.poll() is None:
            steps = [json.loads(line)["step"] for line in log.read_text(errors="replace").splitlines()
                     if line.startswith('{"event": "train"')]
            if steps and steps[-1] >= KILL_AFTER_STEP:
                kill_tree(proc.pid)
                killed_at = steps[-1]
                break
            time.sleep(0.05)
        proc.wait()
        if killed_at is None:
            raise Failed(f"training ended (exit {proc.returncode}) before step {KILL_AFTER_STEP}; log {log}")
        uri = flag(process.argv, "--checkpoint-s3-uri") or ""
        complete = [k.split("/")[0] for k in s3_keys(r, uri) if k.endswith("/" + COMPLETE_FILE)]
        if not complete:
            raise Failed(f"training was killed at step {killed_at} with no complete checkpoint in {uri}")
        saved = int(max(complete).split("-")[1])
        check += [f"SIGKILL at step {killed_at}", f"newest complete checkpoint in S3: step {saved}"]
    return process, saved


def train_resumed(r: Rehearsal, pod: Pod, saved: int) -> Process:
    container = pod.spec["containers"][0]
    with hop(r, "training, resumed", []) as check:
        process = on_this_machine(r, local_process(r, pod, container, volumes_for(r, pod, "trainer-attempt-2")))
        log = r.work / "logs" / "trainer-attempt-2.log"
        text = finish(r, start(r, process, log), log, "training rerun")
        match = re.search(r"resuming from \S+ at step (\d+)", text)
        if not match or int(match.group(1)) != saved:
            raise Failed(f"training rerun did not resume from the S3 checkpoint at step {saved}; log {log}")
        check.append(f"new pod (empty volumes) resumed at step {match.group(1)} from S3")
        done = [json.loads(line) for line in text.splitlines() if line.startswith('{"event": "done"')]
        if done:
            check.append(f"finished at step {done[-1]['step']}")
        output, pointer = flag(process.argv, "--output-s3-uri"), flag(process.argv, "--pointer-s3-uri")
        archive = (output or "").rstrip("/") + "/" + MODEL_ARCHIVE
        document = read_json(r, pointer or "")
        if document.get("model") != archive or not s3_keys(r, archive):
            raise Failed(f"pointer {pointer} does not name the published model {archive}")
        check.append(f"model at {archive}, pointer {pointer}")
    return process


def read_json(r: Rehearsal, uri: str) -> dict[str, Any]:
    bucket, _, key = uri[len("s3://"):].partition("/")
    try:
        return json.loads(boto(r, "s3").get_object(Bucket=bucket, Key=key)["Body"].read())
    except Exception as exc:  # noqa: BLE001 - any failure means the hop's artifact is not there
        raise Failed(f"{uri}: cannot be read ({exc})") from None


def compile_model(r: Rehearsal, pod: Pod, trained: Process) -> Process:
    container = pod.spec["containers"][0]
    with hop(r, "compilation", []) as check:
        process = on_this_machine(r, local_process(r, pod, container, volumes_for(r, pod, "compiler")))
        source, pointer = flag(process.argv, "--model-s3-uri"), flag(trained.argv, "--pointer-s3-uri")
        if source != pointer:
            raise Failed(f"compilation reads {source}, but training published its pointer at {pointer}")
        check.append(f"reads the pointer training wrote ({source})")
        log = r.work / "logs" / "compiler.log"
        finish(r, start(r, process, log), log, "compilation")
        upload = flag(process.argv, "--upload") or ""
        if "manifest.json" not in s3_keys(r, upload):
            raise Failed(f"compilation published no manifest.json under {upload}")
        check.append(f"artifact + manifest.json at {upload}")
    return process


def serve(r: Rehearsal, pod: Pod, compiled: Process, redis_port: int, secrets: StandInSecrets) -> None:
    volumes = volumes_for(r, pod, "model-server")
    with hop(r, "serving init", []) as check:
        for index, container in enumerate(pod.spec.get("initContainers") or []):
            process = on_this_machine(r, local_process(r, pod, container, volumes))
            source, upload = process.argv[-2] if len(process.argv) > 2 else "", flag(compiled.argv, "--upload")
            if source.startswith("s3://") and source.rstrip("/") != (upload or "").rstrip("/"):
                raise Failed(f"init container {process.name} fetches {source}, compilation published to {upload}")
            log = r.work / "logs" / f"model-server-init-{index}.log"
            finish(r, start(r, process, log), log, f"init container {process.name}")
            check.append(f"{process.name}: {source} -> volume")
    [container] = pod.spec["containers"]
    with hop(r, "serving", []) as check:
        process = on_this_machine(r, local_process(r, pod, container, volumes))
        port = free_port()
        env = dict(process.env)
        env["SERVING_PORT"] = str(port)
        if "SERVING_REDIS_URL" in env:
            env["SERVING_REDIS_URL"] = f"redis://127.0.0.1:{redis_port}/0"
            r.note(f"SERVING_REDIS_URL -> local redis-server on port {redis_port} (no TLS)")
        for name, value in list(env.items()):
            if value in secrets.arns:
                env[name] = secrets.arns[value]
                r.note(f"{name} -> the same secret in moto")
        r.note("SERVING_PORT -> a free local port")
        process = Process(process.name, process.argv, env, process.mounts)
        log = r.work / "logs" / "model-server.log"
        proc = start(r, process, log)
        try:
            base = f"http://127.0.0.1:{port}"
            probes = [container.get(p, {}).get("httpGet", {}).get("path")
                      for p in ("startupProbe", "readinessProbe", "livenessProbe")]
            for path in [p for p in probes if p]:
                wait_for(r, proc, base + path, log)
            check.append("probes " + ", ".join(p for p in probes if p) + " answer 200")
            model = Path(env["SERVING_MODEL_DIR"]).name
            key = {"X-Api-Key": secrets.api_key} if names.SERVING_API_KEYS_SECRET_ARN in env else {}
            if key:
                refused = post(base + "/invocations", {"inputs": ["a day"]}, expect=401)
                check.append(f"no API key: {refused['kind']}")
            answer = post(base + "/invocations", {"inputs": ["a great and wonderful day"]}, key)
            if not answer.get("outputs") and not answer.get("predictions"):
                raise Failed(f"/invocations answered {answer}")
            check.append("SageMaker /invocations answered")
            v2 = post(f"{base}/v2/models/{model}/infer", {"inputs": [
                {"name": "text", "shape": [1], "datatype": "BYTES", "data": ["a terrible day"]}]}, key)
            if not v2.get("outputs"):
                raise Failed(f"/v2/models/{model}/infer answered {v2}")
            check.append(f"v2 /v2/models/{model}/infer answered")
            check.append(f"cache in Redis: {redis_keys(redis_port, r.env['_REDIS_PASSWORD'])} keys")
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def redis_keys(port: int, password: str) -> int:
    import redis

    return int(redis.Redis(host="127.0.0.1", port=port, password=password).dbsize())


def wait_for(r: Rehearsal, proc: subprocess.Popen, url: str, log: Path) -> None:
    deadline = time.monotonic() + r.timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise Failed(f"the model server exited ({proc.returncode}) before {url} answered; log {log}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.1)
    raise Failed(f"{url} did not answer 200 within {r.timeout:.0f}s; log {log}")


def post(url: str, body: dict[str, Any], headers: Mapping[str, str] | None = None,
         expect: int = 200) -> dict[str, Any]:
    """POST JSON; the answer's body, which must come with status `expect`."""
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            status, payload = response.status, response.read()
    except urllib.error.HTTPError as exc:
        status, payload = exc.code, exc.read()
    if status != expect:
        raise Failed(f"{url}: HTTP {status} (expected {expect}): {payload[:200]!r}")
    return json.loads(payload)


# --- the command -------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class StandInSecrets:
    """The stack's secrets as created in moto: the ARN each rendered ARN maps to, and what they hold."""

    arns: Mapping[str, str]
    redis_password: str
    api_key: str


def prepare(r: Rehearsal, graph: ResourceGraph, pods: Mapping[str, Pod]) -> StandInSecrets:
    """Buckets and the stack's secrets in moto (the serving API keys, the feature store's connection); the tiny
    base model and run size for training."""
    from workloads.common.tiny_bert import build_tiny_bert

    s3 = boto(r, "s3")
    for record in graph.of_type(*BUCKET_TYPES):
        bucket = record.inputs.get("bucket") or record.outputs.get("bucket")
        if bucket:
            s3.create_bucket(Bucket=bucket)
    password, api_key = uuid.uuid4().hex, uuid.uuid4().hex
    server_env = {e.get("name"): e.get("value") for e in pods["model-server"].spec["containers"][0].get("env") or []}
    arns = {}
    for record in graph.of_type(SECRET_TYPE):
        if record.outputs.get("arn") == server_env.get(names.SERVING_API_KEYS_SECRET_ARN):
            value = {contract_secrets.SERVING_API_KEYS: [api_key]}
        else:
            value = {contract_secrets.FEATURE_STORE_HOST: "127.0.0.1", contract_secrets.FEATURE_STORE_PORT: 6379,
                     contract_secrets.FEATURE_STORE_TLS: False, contract_secrets.FEATURE_STORE_AUTH_TOKEN: password}
        created = boto(r, "secretsmanager").create_secret(Name=record.inputs["name"], SecretString=json.dumps(value))
        arns[record.outputs.get("arn", "")] = created["ARN"]
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    tiny = build_tiny_bert(r.work / "base-model", head=True, seed=0)
    r.env["SM_HPS"] = json.dumps({**TINY_RUN, "model_name_or_path": str(tiny)})
    r.note(f"training size: tiny data, tiny BERT, hyperparameters {json.dumps(TINY_RUN)} through SM_HPS")
    r.note("S3 and Secrets Manager -> moto server at AWS_ENDPOINT_URL")
    r.note("OMP_NUM_THREADS=1 (tiny model; a shared machine)")
    return StandInSecrets(arns, password, api_key)


def rehearse(r: Rehearsal, graph: ResourceGraph) -> Rehearsal:
    """Every hop in order; raises Failed at the first check that does not hold (rows so far stay in `r`)."""
    pods = rendered_pods(graph)
    problems = admission_problems(graph)
    if problems:
        raise UsageError(f"stack {graph.stack}: the cluster would refuse its pods: {problems[0]}")
    with ExitStack() as stack:
        r.endpoint = stack.enter_context(moto_server())
        region = str(graph.config.get("aws:region") or "us-east-1")
        r.env.update({names.ENDPOINT_URL: r.endpoint, "AWS_ACCESS_KEY_ID": "testing",
                      "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": region,
                      "AWS_EC2_METADATA_DISABLED": "true", "OMP_NUM_THREADS": "1"})
        secrets = prepare(r, graph, pods)
        redis_port = stack.enter_context(redis_server(secrets.redis_password))
        r.env["_REDIS_PASSWORD"] = secrets.redis_password
        trainer = on_this_machine(r, local_process(r, pods["trainer"], pods["trainer"].spec["containers"][0],
                                                   volumes_for(r, pods["trainer"], "trainer-dry")))
        publish_data(r, trainer)
        _, saved = train_until_killed(r, pods["trainer"])
        trained = train_resumed(r, pods["trainer"], saved)
        compiled = compile_model(r, pods["compiler"], trained)
        serve(r, pods["model-server"], compiled, redis_port, secrets)
    r.env.pop("_REDIS_PASSWORD", None)
    return r


def report(r: Rehearsal, stack: str, ok: bool, failure: str | None = None) -> str:
    lines = [f"Rehearsal of stack {stack}: training -> compilation -> serving, from the rendered objects", ""]
    width = max([len(name) for name, _, _ in r.rows] + [4])
    lines.append(f"{'hop'.ljust(width)}  {'seconds':>7}  checked")
    for name, check, seconds in r.rows:
        lines.append(f"{name.ljust(width)}  {seconds:7.1f}  {check}")
    lines += ["", "stand-ins:"] + [f"  - {s}" for s in r.substitutions]
    lines += ["", f"result: {'all hops checked' if ok else 'FAILED: ' + str(failure)}", f"logs and volumes: {r.work}"]
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    graph = synthesize_from_args(args, quiet=True)
    work = args.workdir or Path(tempfile.mkdtemp(prefix=f"aiinfra-rehearse-{graph.stack}-"))
    work.mkdir(parents=True, exist_ok=True)
    r = Rehearsal(work, "", {}, args.timeout)
    try:
        rehearse(r, graph)
    except Failed as exc:
        print(report(r, graph.stack, False, str(exc)), file=sys.stderr)
        return 1
    print(report(r, graph.stack, True))
    return 0
