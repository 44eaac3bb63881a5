"""`python -m aiinfra rehearse`: the dev stack's rendered workloads run end to end on this machine, and bad
input ends with one line."""

from __future__ import annotations

import copy
import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest

from aiinfra.cli import UsageError
from aiinfra.graph import ResourceGraph
from aiinfra.rehearse import Rehearsal, local_process, rehearse, rendered_pods, report

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(900)  # well under a minute on an idle machine; the shared CI box is slower
def test_dev_rehearsal_runs_every_hop_and_resumes_from_the_s3_checkpoint(stack_graph, tmp_path):
    r = Rehearsal(tmp_path, "", {}, timeout=300)
    rehearse(r, stack_graph("dev"))
    hops = {name: check for name, check, _ in r.rows}
    assert list(hops) == ["publish data", "training, killed", "training, resumed", "compilation", "serving init",
                          "serving"]
    saved = hops["training, killed"].split("newest complete checkpoint in S3: step ")[1]
    assert f"resumed at step {saved} from S3" in hops["training, resumed"]
    assert "reads the pointer training wrote" in hops["compilation"]
    assert "/invocations answered" in hops["serving"] and "/infer answered" in hops["serving"]
    assert "--device neuron -> cpu (no neuron runtime here)" in r.substitutions
    text = report(r, "dev", True)
    assert "result: all hops checked" in text and len(text.splitlines()) < 40


def with_trainer(graph: ResourceGraph, change) -> ResourceGraph:
    """The graph with the trainer Job's container changed (what a different components/ would render)."""
    records = []
    for record in graph.records:
        if record.type == "kubernetes:batch/v1:Job" and record.inputs["metadata"]["name"] == "trainer":
            inputs = copy.deepcopy(dict(record.inputs))
            change(inputs["spec"]["template"]["spec"]["containers"][0])
            record = dataclasses.replace(record, inputs=inputs)
        records.append(record)
    return ResourceGraph(graph.project, graph.stack, records, dict(graph.stack_outputs), dict(graph.config))


def test_a_pod_the_cluster_would_refuse_is_not_rehearsed(stack_graph, tmp_path):
    graph = with_trainer(stack_graph("dev"), lambda c: c["resources"]["limits"].pop("cpu"))
    with pytest.raises(UsageError) as error:
        rehearse(Rehearsal(tmp_path, "", {}, timeout=5), graph)
    assert str(error.value) == (
        "stack dev: the cluster would refuse its pods: Job training/trainer container train: cpu request 6 exceeds "
        "the default limit of LimitRange training-limits (1) in namespace training: the pod is refused")


def test_an_image_without_a_local_runtime_is_one_line(stack_graph, tmp_path):
    graph = with_trainer(stack_graph("dev"), lambda c: c.update(image="docker.io/library/python:3.11.14"))
    pod = rendered_pods(graph)["trainer"]
    with pytest.raises(UsageError, match=r"^Job training/trainer container train: image "
                                         r"'docker.io/library/python:3.11.14' has no local runtime"):
        local_process(Rehearsal(tmp_path, "", {}, timeout=5), pod, pod.spec["containers"][0], {})


def test_the_command_follows_the_rendered_job(stack_graph, tmp_path):
    graph = with_trainer(stack_graph("dev"), lambda c: c["command"].extend(["--max-steps", "3"]))
    pod = rendered_pods(graph)["trainer"]
    volumes = {v["name"]: tmp_path / v["name"] for v in pod.spec["volumes"]}
    process = local_process(Rehearsal(tmp_path, "", {}, timeout=5), pod, pod.spec["containers"][0], volumes)
    assert process.argv[-2:] == ["--max-steps", "3"]
    assert process.argv[process.argv.index("--model-dir") + 1] == str(tmp_path / "scratch" / "model")
    assert process.argv[process.argv.index("--train") + 1].startswith("s3://aiinfra-dev-datasets-")
    assert process.env["HOME"] == str(tmp_path / "tmp")


def test_cli_bad_stack_is_one_line_and_exit_2(tmp_path):
    source = (ROOT / "stacks" / "Pulumi.dev.yaml").read_text()
    bad = tmp_path / "bad.yaml"
    bad.write_text(source.replace("aiinfra:environment: dev", "aiinfra:environment: nope"))
    result = subprocess.run([sys.executable, "-m", "aiinfra", "rehearse", "--stack", "dev", "--stack-file", str(bad)],
                            cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 2, result.stderr
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("error: ") and "environment" in line
