"""The EKS data path against a real moto server (reached as a pod reaches S3: through boto3's endpoint setting):
data in from S3, checkpoints mirrored to S3, a new pod resuming from S3, the model published under the run
prefix with the pointer compilation reads, and compilation from the pointer or a SageMaker run prefix."""

from __future__ import annotations

import io
import json
import logging
import shutil
import tarfile

import boto3
import pytest
from moto.server import ThreadedMotoServer

from workloads.compilation.compile import main as compile_main
from workloads.training.demo import write_demo
from workloads.training.train import main as train_main

KEY = "arn:aws:kms:us-east-1:123456789012:key/11111111-2222-3333-4444-555555555555"
DATA, MODELS, RUN = "datasets-bucket", "models-bucket", "0b7e4a8e-run"


@pytest.fixture(scope="module")
def moto_endpoint():
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one log record per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def s3(moto_endpoint, monkeypatch):
    for name, value in {"AWS_ENDPOINT_URL": moto_endpoint, "AWS_ACCESS_KEY_ID": "testing",
                        "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(name, value)
    client = boto3.client("s3")
    for bucket in (DATA, MODELS):
        client.create_bucket(Bucket=bucket)
    yield client
    for bucket in (DATA, MODELS):
        for obj in client.list_objects_v2(Bucket=bucket).get("Contents", []):
            client.delete_object(Bucket=bucket, Key=obj["Key"])
        client.delete_bucket(Bucket=bucket)


def keys(client, bucket, prefix=""):
    return sorted(o["Key"] for o in client.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", []))


def eks_command(pod, tiny_bert_dir, *extra):
    """The training Job's arguments (components/cluster_workloads.py), with a local pod's folders."""
    return ["--device", "cpu", "--train", f"s3://{DATA}/training-data/current/train/",
            "--validation", f"s3://{DATA}/training-data/current/validation/",
            "--model-dir", str(pod / "model"), "--checkpoint-dir", str(pod / "checkpoints"),
            "--sagemaker-base-dir", str(pod),
            "--checkpoint-s3-uri", f"s3://{DATA}/checkpoints/{RUN}/", "--checkpoint-kms-key-id", KEY,
            "--output-s3-uri", f"s3://{MODELS}/training/{RUN}/", "--output-kms-key-id", KEY,
            "--pointer-s3-uri", f"s3://{MODELS}/training/latest.json",
            "--model-name-or-path", str(tiny_bert_dir), "--max-steps", "4", "--checkpoint-interval", "2",
            "--batch-size", "8", "--max-seq-len", "16", "--log-format", "json", "--log-interval", "1",
            "--learning-rate", "3e-3", *extra]


def publish_demo(client, tmp_path):
    demo = write_demo(tmp_path / "demo", train=32, validation=8, seed=3)
    for channel in ("train", "validation"):
        client.upload_file(str(demo[channel]), DATA, f"training-data/current/{channel}/part-0.jsonl")


def test_eks_run_trains_from_s3_and_a_new_pod_resumes_from_the_s3_checkpoint(s3, tmp_path, tiny_bert_dir, capsys):
    publish_demo(s3, tmp_path)
    assert train_main(eks_command(tmp_path / "pod-1", tiny_bert_dir)) == 0, capsys.readouterr().err
    first = json.loads((tmp_path / "pod-1" / "model" / "metrics.json").read_text())
    checkpoints = keys(s3, DATA, f"checkpoints/{RUN}/")
    assert f"checkpoints/{RUN}/step-00000004/COMPLETE.json" in checkpoints
    assert f"checkpoints/{RUN}/step-00000002/state.pt" in checkpoints
    pointer = json.loads(s3.get_object(Bucket=MODELS, Key="training/latest.json")["Body"].read())
    assert pointer["model"] == f"s3://{MODELS}/training/{RUN}/output/model.tar.gz" and pointer["step"] == 4
    head = s3.head_object(Bucket=MODELS, Key=f"training/{RUN}/output/model.tar.gz")
    assert head["ServerSideEncryption"] == "aws:kms"

    # The pod died after step 2 reached S3 (step 4 never did); its replacement starts with empty volumes.
    for key in keys(s3, DATA, f"checkpoints/{RUN}/step-00000004/"):
        s3.delete_object(Bucket=DATA, Key=key)
    capsys.readouterr()
    assert train_main(eks_command(tmp_path / "pod-2", tiny_bert_dir)) == 0
    err = capsys.readouterr().err
    assert f"restored checkpoint step-00000002 from s3://{DATA}/checkpoints/{RUN}/" in err
    assert f"resuming from {tmp_path / 'pod-2' / 'checkpoints' / 'step-00000002'} at step 2 " in err
    second = json.loads((tmp_path / "pod-2" / "model" / "metrics.json").read_text())
    assert second["step"] == first["step"] == 4
    assert second["train_loss"] == first["train_loss"], "the resumed run continues the same loss curve"


def test_compilation_reads_the_pointer_or_a_sagemaker_run_prefix(s3, tmp_path, tiny_bert_dir, capsys):
    publish_demo(s3, tmp_path)
    assert train_main(eks_command(tmp_path / "pod", tiny_bert_dir)) == 0, capsys.readouterr().err
    capsys.readouterr()
    assert compile_main(["--model-s3-uri", f"s3://{MODELS}/training/latest.json", "--target", "cpu",
                         "--seq-len", "16", "--out", str(tmp_path / "compiled"), "--upload",
                         f"s3://{MODELS}/compiled/current/", "--kms-key-id", KEY]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["source"] == f"s3://{MODELS}/training/{RUN}/output/model.tar.gz"
    assert f"compiled/current/manifest.json" in keys(s3, MODELS, "compiled/current/")

    # SageMaker's layout: training/<job>/output/model.tar.gz, named by its run prefix.
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w:gz") as tar:
        for file in (tmp_path / "pod" / "model").iterdir():
            tar.add(file, arcname=file.name)
    s3.put_object(Bucket=MODELS, Key="training/sm-job-1/output/model.tar.gz", Body=archive.getvalue())
    assert compile_main(["--model-s3-uri", f"s3://{MODELS}/training/sm-job-1/", "--target", "cpu", "--seq-len", "16",
                         "--out", str(tmp_path / "compiled-sm")]) == 0
    assert (tmp_path / "compiled-sm" / "manifest.json").is_file()


def test_a_pointer_whose_archive_changed_is_refused(s3, tmp_path, capsys):
    s3.put_object(Bucket=MODELS, Key="training/r/output/model.tar.gz", Body=b"not the archive")
    s3.put_object(Bucket=MODELS, Key="training/latest.json", Body=json.dumps(
        {"version": 1, "model": f"s3://{MODELS}/training/r/output/model.tar.gz", "sha256": "0" * 64}).encode())
    code = compile_main(["--model-s3-uri", f"s3://{MODELS}/training/latest.json", "--out", str(tmp_path / "c")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1
    assert "does not match the pointer's 0000" in err[0]


def test_no_data_under_the_prefix_is_one_line(s3, tmp_path, tiny_bert_dir, capsys):
    assert train_main(eks_command(tmp_path / "pod", tiny_bert_dir)) == 2
    [line] = capsys.readouterr().err.strip().splitlines()
    assert line == (f"python -m workloads.training: error: train data s3://{DATA}/training-data/current/train/: "
                    "no objects there (publish them first)")


def test_writing_to_s3_without_a_kms_key_is_refused_before_training(tmp_path, capsys):
    code = train_main(["--train", str(tmp_path), "--output-s3-uri", f"s3://{MODELS}/training/x/"])
    [line] = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and line.endswith("--output-s3-uri needs --output-kms-key-id (the buckets accept only SSE-KMS "
                                       "objects)")


@pytest.mark.parametrize(("device", "needs"), [("neuron", "torch_xla is not installed"),
                                               ("cuda", "no CUDA device is available")])
def test_an_absent_accelerator_fails_at_once_with_one_line(tmp_path, capsys, device, needs):
    # The data does not exist either: the device is checked first, before anything is read or downloaded.
    code = train_main(["--device", device, "--train", f"s3://{DATA}/nothing/", "--sagemaker-base-dir", str(tmp_path)])
    [line] = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and f"hyperparameter 'device' is '{device}' but" in line and needs in line


def test_auto_refuses_a_silent_cpu_run_on_a_neuron_host(monkeypatch):
    from workloads.common.cli import UsageError
    from workloads.training import runtime

    monkeypatch.setattr(runtime, "xla_available", lambda: False)
    monkeypatch.setattr(runtime, "neuron_devices", lambda dev=None: 16)
    with pytest.raises(UsageError, match="on a host with Neuron devices but torch_xla is not installed"):
        runtime.resolve_kind("auto")


@pytest.mark.parametrize(("args", "message"), [
    (["--device", "neuron", "--target", "cpu"], "--device neuron cannot compile --target cpu (it needs --device cpu)"),
    (["--device", "cuda", "--target", "cuda"], "--device cuda (for --target cuda) but no CUDA device is available"),
])
def test_compilation_device_is_honest(tmp_path, capsys, args, message):
    code = compile_main(["--model-s3-uri", f"s3://{MODELS}/training/latest.json", *args, "--out", str(tmp_path / "c")])
    [line] = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and line == f"python -m workloads.compilation: error: {message}"
    shutil.rmtree(tmp_path, ignore_errors=True)
