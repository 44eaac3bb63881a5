"""Facts the model lifecycle shares between the stack (registry, monitoring, alarms) and the workloads.

The register command writes these lineage keys and the drift job publishes these metrics; the stack's
Model Package Groups, monitoring schedules and drift alarm name the same spellings, so a renamed metric
breaks a test instead of leaving an alarm that watches nothing.
"""

from __future__ import annotations

# Model package approval statuses, as the SageMaker API spells them.
PENDING = "PendingManualApproval"
APPROVED = "Approved"
REJECTED = "Rejected"
APPROVAL_STATUSES = (PENDING, APPROVED, REJECTED)

# Lineage carried by every registered model package version (CustomerMetadataProperties keys).
LINEAGE_TRAINING_RUN = "aiinfra:training-run"        # SageMaker training job name or EKS run id
LINEAGE_DATASET_URI = "aiinfra:dataset-uri"          # s3:// location the run trained on
LINEAGE_DATASET_SHA256 = "aiinfra:dataset-sha256"    # content hash of that dataset
LINEAGE_CODE_COMMIT = "aiinfra:code-commit"          # git commit of the training code
LINEAGE_MANIFEST_SHA256 = "aiinfra:manifest-sha256"  # hash of the compile manifest
LINEAGE_MLFLOW_RUN = "aiinfra:mlflow-run-id"         # experiment-tracking run, when tracked
LINEAGE_KEYS = (LINEAGE_TRAINING_RUN, LINEAGE_DATASET_URI, LINEAGE_DATASET_SHA256, LINEAGE_CODE_COMMIT,
                LINEAGE_MANIFEST_SHA256, LINEAGE_MLFLOW_RUN)

# Drift: what the drift job publishes and the drift alarm watches.
DRIFT_NAMESPACE = "aiinfra/ModelDrift"
DRIFT_METRIC = "DriftedSignals"        # number of signals over their threshold in one monitoring run
DRIFT_MAX_PSI_METRIC = "MaxPSI"        # the largest population stability index among the signals
DRIFT_DIMENSION = "Endpoint"           # both metrics carry the endpoint name as this dimension
DRIFT_REPORT_FILE = "drift-report.json"

# SageMaker Model Monitor's bring-your-own-container contract: the environment a monitoring job's container
# is started with (names as SageMaker sets them), which the drift job reads.
MONITOR_DATASET_SOURCE = "dataset_source"            # folder of the captured JSON Lines (input)
MONITOR_OUTPUT_PATH = "output_path"                  # folder the report goes to (uploaded by SageMaker)
MONITOR_BASELINE_STATISTICS = "baseline_statistics"  # file of the baseline statistics
MONITOR_BASELINE_CONSTRAINTS = "baseline_constraints"
MONITOR_ENDPOINT_NAME = "sagemaker_endpoint_name"
MONITOR_PUBLISH_METRICS = "publish_cloudwatch_metrics"  # "Enabled" or "Disabled"
MONITOR_INPUT_DIR = "/opt/ml/processing/input/endpoint"
MONITOR_OUTPUT_DIR = "/opt/ml/processing/resultdata"
MONITOR_BASELINE_DIR = "/opt/ml/processing/baseline"
# The drift job's container command (ContainerEntrypoint of the job definition; it runs in the training image)
# and the baseline files under baselines/<endpoint>/ that the job definition's BaselineConfig names.
DRIFT_JOB_COMMAND = ("python", "-m", "workloads.lifecycle", "drift")
BASELINE_STATISTICS_FILE = "statistics.json"
BASELINE_CONSTRAINTS_FILE = "constraints.json"

# Stack outputs the lifecycle commands read (`--stack-outputs`), exported by the program.
OUTPUT_MODEL_PACKAGE_GROUPS = "modelPackageGroupNames"  # {model: group name}
OUTPUT_APPROVAL_GATE = "approvalGate"                   # {metric: minimum} approval refuses below
OUTPUT_PROMOTION_THRESHOLDS = "promotionThresholds"     # {check: threshold} `compare` judges against
OUTPUT_TRACKING_SERVER_ARN = "mlflowTrackingServerArn"

# The checks in promotionThresholds, as `compare` reads them and the stack settings spell them.
PROMOTION_MIN_AGREEMENT = "minAgreement"          # label agreement (classifier) or mean cosine (embeddings)
PROMOTION_MIN_PAIRS = "minPairs"                  # requests both variants answered, needed for a verdict
PROMOTION_MAX_ERROR_RATE_DELTA = "maxErrorRateDelta"  # candidate error rate minus the production one
PROMOTION_MAX_LATENCY_RATIO = "maxLatencyP99Ratio"    # candidate p99 over production p99, when captured
PROMOTION_CHECKS = (PROMOTION_MIN_AGREEMENT, PROMOTION_MIN_PAIRS, PROMOTION_MAX_ERROR_RATE_DELTA,
                    PROMOTION_MAX_LATENCY_RATIO)

# Where monitoring writes, in the models bucket.
MONITORING = "monitoring/"
BASELINES = "baselines/"


def model_package_group_name(project: str, environment: str, model: str) -> str:
    """`<project>-<env>-<model>`: one group per served model, as the registry and the endpoints name it."""
    if not model or not model.replace("-", "").isalnum():
        raise ValueError(f"not a model name: {model!r} (letters, digits and '-')")
    return f"{project}-{environment}-{model}"


def monitoring_prefix(endpoint: str) -> str:
    """`monitoring/<endpoint>/`: the drift reports of one endpoint."""
    return f"{MONITORING}{endpoint}/"


def baseline_prefix(endpoint: str) -> str:
    """`baselines/<endpoint>/`: the training-data statistics the drift job compares against."""
    return f"{BASELINES}{endpoint}/"


__all__ = ["APPROVAL_STATUSES", "APPROVED", "BASELINES", "BASELINE_CONSTRAINTS_FILE", "BASELINE_STATISTICS_FILE",
           "DRIFT_JOB_COMMAND", "DRIFT_DIMENSION", "DRIFT_MAX_PSI_METRIC", "DRIFT_METRIC",
           "DRIFT_NAMESPACE", "DRIFT_REPORT_FILE", "LINEAGE_CODE_COMMIT", "LINEAGE_DATASET_SHA256",
           "LINEAGE_DATASET_URI", "LINEAGE_KEYS", "LINEAGE_MANIFEST_SHA256", "LINEAGE_MLFLOW_RUN",
           "LINEAGE_TRAINING_RUN", "MONITORING", "MONITOR_BASELINE_CONSTRAINTS", "MONITOR_BASELINE_DIR",
           "MONITOR_BASELINE_STATISTICS", "MONITOR_DATASET_SOURCE", "MONITOR_ENDPOINT_NAME", "MONITOR_INPUT_DIR",
           "MONITOR_OUTPUT_DIR", "MONITOR_OUTPUT_PATH", "MONITOR_PUBLISH_METRICS", "OUTPUT_APPROVAL_GATE",
           "OUTPUT_MODEL_PACKAGE_GROUPS", "OUTPUT_PROMOTION_THRESHOLDS", "OUTPUT_TRACKING_SERVER_ARN", "PENDING",
           "PROMOTION_CHECKS", "PROMOTION_MAX_ERROR_RATE_DELTA", "PROMOTION_MAX_LATENCY_RATIO", "PROMOTION_MIN_AGREEMENT",
           "PROMOTION_MIN_PAIRS", "REJECTED", "baseline_prefix",
           "model_package_group_name", "monitoring_prefix"]
