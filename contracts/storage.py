"""Where each workload reads and writes in the platform's buckets, and the file names that travel with a model.

The IAM policies grant exactly these prefixes, the cluster workloads and the training launcher write under
them, and the compilation and serving code look for these file names: one spelling for both sides.

datasets bucket
  <dataPrefix>train/, <dataPrefix>validation/   JSON lines the training reads (`dataPrefix` from settings)
  checkpoints/<run>/step-NNNNNNNN/              training checkpoints, `COMPLETE.json` uploaded last
models bucket
  training/<run>/output/model.tar.gz            the trained model: SageMaker's own layout (`<job>/output/`),
                                                which the EKS training Job publishes too
  training/latest.json                          pointer to the newest trained model (written last)
  compiled/<name>/                              compiled artifact + manifest.json (the server reads it)
"""

from __future__ import annotations

# Datasets bucket.
CHECKPOINTS = "checkpoints/"      # training checkpoints (the SageMaker launcher and the EKS training Job)
DATA_CAPTURE = "data-capture/"    # SageMaker endpoint data capture, one folder per endpoint
TRAINING_DATA = "training-data/current/"  # default data prefix of the EKS training Job
TRAIN_CHANNEL = "train/"
VALIDATION_CHANNEL = "validation/"

# Models bucket.
TRAINED = "training/"             # trained models: the launcher's and the training Job's output
COMPILED = "compiled/"            # compiled artifacts the model server loads
POINTER = f"{TRAINED}latest.json" # which run's model is current (written last)
POINTER_VERSION = 1

# Files inside a model folder.
MANIFEST_FILE = "manifest.json"   # written by workloads.compilation beside model.pt; read by workloads.serving
CHECKPOINT_COMPLETE_FILE = "COMPLETE.json"  # marks a checkpoint folder as fully written
MODEL_ARCHIVE = "model.tar.gz"    # what a SageMaker Model's model_data_url points at by default
RUN_ARCHIVE = f"output/{MODEL_ARCHIVE}"  # under a run prefix, as SageMaker training writes it


def run_prefix(run: str) -> str:
    """`training/<run>/`: where one run (an EKS Job's uid, or a SageMaker job name) publishes its model."""
    if not run or "/" in run or run in (".", ".."):
        raise ValueError(f"not a run name: {run!r}")
    return f"{TRAINED}{run}/"


def model_archive(run: str) -> str:
    """`training/<run>/output/model.tar.gz`."""
    return run_prefix(run) + RUN_ARCHIVE


def capture_prefix(endpoint: str) -> str:
    """The data-capture folder of one endpoint (its execution role may write only there)."""
    return f"{DATA_CAPTURE}{endpoint}"


__all__ = ["CHECKPOINTS", "CHECKPOINT_COMPLETE_FILE", "COMPILED", "DATA_CAPTURE", "MANIFEST_FILE", "MODEL_ARCHIVE",
           "POINTER", "POINTER_VERSION", "RUN_ARCHIVE", "TRAINED", "TRAINING_DATA", "TRAIN_CHANNEL",
           "VALIDATION_CHANNEL", "capture_prefix", "model_archive", "run_prefix"]
