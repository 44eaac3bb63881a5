"""The artifact layout in the platform's buckets: one definition for the components that grant and pass these
locations, and for the workloads that read and write them.

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

CHECKPOINTS = "checkpoints/"        # datasets bucket
TRAINING_DATA = "training-data/current/"  # datasets bucket: default data prefix of the training Job
TRAIN_CHANNEL = "train/"
VALIDATION_CHANNEL = "validation/"
TRAINED = "training/"               # models bucket: the launcher's and the training Job's output
COMPILED = "compiled/"              # models bucket: compiled artifacts the server loads
MODEL_ARCHIVE = "output/model.tar.gz"  # under a run prefix, as SageMaker writes it
POINTER = f"{TRAINED}latest.json"   # models bucket: which run's model is current
POINTER_VERSION = 1
COMPLETE_FILE = "COMPLETE.json"     # last file of a checkpoint folder, locally and in S3


def run_prefix(run: str) -> str:
    """`training/<run>/`: where one run (an EKS Job's uid, or a SageMaker job name) publishes its model."""
    if not run or "/" in run or run in (".", ".."):
        raise ValueError(f"not a run name: {run!r}")
    return f"{TRAINED}{run}/"


def model_archive(run: str) -> str:
    """`training/<run>/output/model.tar.gz`."""
    return run_prefix(run) + MODEL_ARCHIVE
