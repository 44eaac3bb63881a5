"""Environment variable names the workloads read, which the platform's pod specs and endpoints set.

A name here is read by a workload (or by the runtime it runs on, as noted) and set by `components/`; tests
scan both sides for these names, so a variable set but never read, or read but never set, fails a test.
"""

from __future__ import annotations

# Read by the AWS SDKs and CLI in every container (the region of the platform's buckets and secrets).
AWS_REGION = "AWS_REGION"

# workloads.training and workloads.compilation on EKS (components/cluster_workloads.py sets them).
DATASETS_BUCKET = "AIINFRA_DATASETS_BUCKET"
MODELS_BUCKET = "AIINFRA_MODELS_BUCKET"
DATA_KEY_ARN = "AIINFRA_DATA_KEY_ARN"      # SSE-KMS key for objects in the datasets bucket (checkpoints)
MODELS_KEY_ARN = "AIINFRA_MODELS_KEY_ARN"  # SSE-KMS key for objects in the models bucket
RUN = "AIINFRA_RUN"                        # the run's name: the training Job's uid, stable across pod restarts
# Kubernetes labels every pod of a Job with the Job's uid (1.27+); the downward API hands it to the container.
JOB_UID_FIELD = "metadata.labels['batch.kubernetes.io/controller-uid']"
# boto3 (1.28+) sends every client to this endpoint when set: how the rehearsal points workloads at moto.
ENDPOINT_URL = "AWS_ENDPOINT_URL"

# workloads.serving: every command-line option also reads SERVING_<OPTION> (workloads/serving/config.py).
SERVING_PREFIX = "SERVING_"
SERVING_MODEL_DIR = "SERVING_MODEL_DIR"
SERVING_PORT = "SERVING_PORT"
SERVING_REDIS_URL = "SERVING_REDIS_URL"
SERVING_REDIS_AUTH_SECRET_ARN = "SERVING_REDIS_AUTH_SECRET_ARN"
SERVING_API_KEYS_SECRET_ARN = "SERVING_API_KEYS_SECRET_ARN"
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


__all__ = ["AWS_REGION", "DATASETS_BUCKET", "DATA_KEY_ARN", "ENDPOINT_URL", "JOB_UID_FIELD",
           "MODELS_BUCKET", "MODELS_KEY_ARN", "RUN", "NEURON_RT_NUM_CORES", "RUNTIME_PREFIXES", "SAGEMAKER_BASE_DIR", "SAGEMAKER_BIND_TO_PORT",
           "SERVING_API_KEYS_SECRET_ARN", "SERVING_MODEL_DIR", "SERVING_PORT", "SERVING_PREFIX", "SERVING_REDIS_AUTH_SECRET_ARN", "SERVING_REDIS_URL",
           "SM_HPS", "SM_MODEL_DIR", "serving_option"]
