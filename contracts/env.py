"""Environment variable names the workloads read, which the platform's pod specs and endpoints set.

A name here is read by a workload (or by the runtime it runs on, as noted) and set by `components/`; tests
scan both sides for these names, so a variable set but never read, or read but never set, fails a test.
"""

from __future__ import annotations

# Read by the AWS SDKs and CLI in every container (the region of the platform's buckets and secrets).
AWS_REGION = "AWS_REGION"

# workloads.serving: every command-line option also reads SERVING_<OPTION> (workloads/serving/config.py).
SERVING_PREFIX = "SERVING_"
SERVING_MODEL_DIR = "SERVING_MODEL_DIR"
SERVING_PORT = "SERVING_PORT"
SERVING_REDIS_URL = "SERVING_REDIS_URL"
SERVING_REDIS_AUTH_SECRET_ARN = "SERVING_REDIS_AUTH_SECRET_ARN"
# SageMaker hosting tells the server which port to bind.
SAGEMAKER_BIND_TO_PORT = "SAGEMAKER_BIND_TO_PORT"

# workloads.training: SageMaker's training-container contract (also used for a local run of that layout).
SAGEMAKER_BASE_DIR = "SAGEMAKER_BASE_DIR"
SM_MODEL_DIR = "SM_MODEL_DIR"
SM_HPS = "SM_HPS"

# Read by the Neuron runtime and libfabric, not by this project's code.
NEURON_RT_NUM_CORES = "NEURON_RT_NUM_CORES"
RUNTIME_PREFIXES = ("FI_", "NEURON_")


def serving_option(option: str) -> str:
    """The variable behind a serving command-line option: `--redis-url` -> `SERVING_REDIS_URL`."""
    return SERVING_PREFIX + option.lstrip("-").replace("-", "_").upper()


__all__ = ["AWS_REGION", "NEURON_RT_NUM_CORES", "RUNTIME_PREFIXES", "SAGEMAKER_BASE_DIR", "SAGEMAKER_BIND_TO_PORT",
           "SERVING_MODEL_DIR", "SERVING_PORT", "SERVING_PREFIX", "SERVING_REDIS_AUTH_SECRET_ARN", "SERVING_REDIS_URL",
           "SM_HPS", "SM_MODEL_DIR", "serving_option"]
