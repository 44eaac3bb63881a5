"""The acceptance checks for compute, read from the stack-export document as a reviewer would read it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from aiinfra.export import export_document

ROOT = Path(__file__).resolve().parents[2]
AMI = {"nvidia": "AL2023_x86_64_NVIDIA", "neuron": "AL2023_x86_64_NEURON"}
TAINT = {"nvidia": {"key": "nvidia.com/gpu", "value": "true", "effect": "NO_SCHEDULE"},
         "neuron": {"key": "aws.amazon.com/neuron", "value": "true", "effect": "NO_SCHEDULE"}}


def check_export(document: dict[str, Any]) -> int:
    """Assert the compute acceptance rules on an export; returns how many node groups were checked."""
    resources = document["deployment"]["resources"]
    of_type = lambda t: [r for r in resources if r["type"] == t]  # noqa: E731 - a local lookup
    templates = {r["id"]: r for r in of_type("aws:ec2/launchTemplate:LaunchTemplate")}
    placement_names = {r["outputs"]["name"]: r for r in of_type("aws:ec2/placementGroup:PlacementGroup")}
    zones = {r["id"]: r["inputs"]["availabilityZone"] for r in of_type("aws:ec2/subnet:Subnet")}
    for template in templates.values():
        assert template["inputs"]["metadataOptions"]["httpTokens"] == "required", template["urn"]
    groups = of_type("aws:eks/nodeGroup:NodeGroup")
    for group in groups:
        inputs = group["inputs"]
        accelerator = inputs["labels"].get("accelerator")
        if accelerator:
            assert inputs["amiType"] == AMI[accelerator], group["urn"]
            assert TAINT[accelerator] in inputs["taints"], group["urn"]
        else:
            assert inputs["amiType"] == "AL2023_x86_64_STANDARD"
        template = templates[inputs["launchTemplate"]["id"]]["inputs"]
        if inputs["labels"].get("vpc.amazonaws.com/efa.present") == "true":
            assert len({zones[s] for s in inputs["subnetIds"]}) == 1, group["urn"]
            name = template["placement"]["groupName"]
            assert placement_names[name]["inputs"]["strategy"] == "cluster"
            assert all(i["interfaceType"] == "efa" for i in template["networkInterfaces"])
    return len(groups)


@pytest.mark.parametrize("stack,groups", [("dev", 4), ("staging", 3), ("prod", 4)])
def test_export_meets_the_compute_acceptance_rules(stack_graph, stack, groups):
    document = json.loads(json.dumps(export_document(stack_graph(stack))))
    assert check_export(document) == groups


@pytest.mark.slow
def test_cli_export_of_prod_meets_the_compute_acceptance_rules(tmp_path):
    out = tmp_path / "prod.json"
    subprocess.run([sys.executable, "-m", "aiinfra", "export", "--stack", "prod", "--out", str(out)], cwd=ROOT,
                   check=True, capture_output=True, timeout=240)
    assert check_export(json.loads(out.read_text())) == 4


@pytest.mark.slow
def test_cli_rejects_an_inferentia_type_in_a_trainium_pool(write_stack):
    import yaml

    document = yaml.safe_load((ROOT / "stacks" / "Pulumi.prod.yaml").read_text())
    pools = document["config"]["aiinfra:nodePools"]
    train = next(p for p in pools if p["name"] == "train")
    train["instanceTypes"] = ["inf2.xlarge"]
    path = write_stack({"aiinfra:nodePools": pools}, base="prod")
    result = subprocess.run([sys.executable, "-m", "aiinfra", "preview", "--stack", "prod", "--stack-file", str(path)],
                            cwd=ROOT, capture_output=True, text=True, timeout=240)
    assert result.returncode != 0
    lines = [line for line in result.stderr.splitlines() if "aiinfra:nodePools" in line]
    assert len(lines) == 1 and "pool 'train': an inferentia instance type, not trainium" in lines[0]
