# Training (and CPU/CUDA compilation) image for workloads.training, SageMaker- and torchrun-ready.
# Build from the repository root:
#   CPU : docker build -f workloads/images/training.Dockerfile -t aiinfra-training:cpu .
#   CUDA: docker build -f workloads/images/training.Dockerfile -t aiinfra-training:cu128 \
#           --build-arg BASE=nvidia/cuda:12.8.1-cudnn-runtime-ubuntu22.04 \
#           --build-arg TORCH_INDEX=https://download.pytorch.org/whl/cu128 .
# SageMaker runs `<image> train`; the entry point starts torchrun across instances (workloads/training/entry.py).
# A Model Monitor job runs it with ContainerEntrypoint `python -m workloads.lifecycle drift`.
ARG BASE=python:3.11.14-slim-bookworm
FROM ${BASE}

ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
ENV PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 PIP_NO_CACHE_DIR=1 \
    HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_HUB_DISABLE_TELEMETRY=1

# The CUDA base has no Python 3.11 of its own; the slim base already has it.
RUN if ! command -v python3.11 >/dev/null; then \
      apt-get update && apt-get install -y --no-install-recommends python3.11 python3.11-venv && \
      rm -rf /var/lib/apt/lists/*; fi && \
    python3.11 -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH

WORKDIR /opt/aiinfra
COPY workloads/requirements.txt workloads/requirements-lifecycle.txt workloads/
# torch first, from the index that matches the base (CPU or CUDA wheels), at the repository's pin. The lifecycle
# requirements (MLflow client, scipy) make this image also the drift job's (contracts.lifecycle.DRIFT_JOB_COMMAND
# as the monitoring job's entry point) and the register step's; the serving image has none of them.
RUN pip install --index-url "${TORCH_INDEX}" "$(grep -E '^torch==' workloads/requirements.txt)" && \
    pip install -r workloads/requirements.txt -r workloads/requirements-lifecycle.txt
# workloads.features reads its topic and schema facts from contracts/ (shared with the stack).
COPY contracts/ contracts/
COPY workloads/ workloads/

ENTRYPOINT ["python", "-m", "workloads.training.entry"]
CMD ["train"]
