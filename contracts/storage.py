"""Where each workload reads and writes in the platform's buckets, and the file names that travel with a model.

The IAM policies grant exactly these prefixes, the cluster workloads and the training launcher write under
them, and the compilation and serving code look for these file names: one spelling for both sides.
"""

from __future__ import annotations

# Datasets bucket.
CHECKPOINTS = "checkpoints/"      # training checkpoints (the SageMaker launcher and the EKS training Job)
DATA_CAPTURE = "data-capture/"    # SageMaker endpoint data capture, one folder per endpoint

# Models bucket.
TRAINED = "training/"             # trained models: the launcher's and the training Job's output
COMPILED = "compiled/"            # compiled artifacts the model server loads

# Files inside a model folder.
MANIFEST_FILE = "manifest.json"   # written by workloads.compilation beside model.pt; read by workloads.serving
CHECKPOINT_COMPLETE_FILE = "COMPLETE.json"  # marks a checkpoint folder as fully written
MODEL_ARCHIVE = "model.tar.gz"    # what a SageMaker Model's model_data_url points at by default


def capture_prefix(endpoint: str) -> str:
    """The data-capture folder of one endpoint (its execution role may write only there)."""
    return f"{DATA_CAPTURE}{endpoint}"


__all__ = ["CHECKPOINTS", "CHECKPOINT_COMPLETE_FILE", "COMPILED", "DATA_CAPTURE", "MANIFEST_FILE", "MODEL_ARCHIVE",
           "TRAINED", "capture_prefix"]
