"""Environment variables the cluster workloads are given by their pod specs and read in their code."""

from __future__ import annotations

REGION = "AWS_REGION"
ENVIRONMENT = "AIINFRA_ENVIRONMENT"
DATASETS_BUCKET = "AIINFRA_DATASETS_BUCKET"
MODELS_BUCKET = "AIINFRA_MODELS_BUCKET"
DATA_KEY_ARN = "AIINFRA_DATA_KEY_ARN"      # SSE-KMS key for objects in the datasets bucket (checkpoints)
MODELS_KEY_ARN = "AIINFRA_MODELS_KEY_ARN"  # SSE-KMS key for objects in the models bucket
RUN = "AIINFRA_RUN"                        # the run's name: the training Job's uid, stable across pod restarts
# Kubernetes labels every pod of a Job with the Job's uid (1.27+); the downward API hands it to the container.
JOB_UID_FIELD = "metadata.labels['batch.kubernetes.io/controller-uid']"
# boto3 (1.28+) sends every client to this endpoint when set: how the rehearsal points workloads at moto.
ENDPOINT_URL = "AWS_ENDPOINT_URL"
