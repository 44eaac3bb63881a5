# The model server image for SageMaker real-time endpoints and the EKS serving Deployment.
# Build from the repository root:
#   CPU : docker build -f workloads/images/serving.Dockerfile -t aiinfra-serving:cpu .
#   CUDA: docker build -f workloads/images/serving.Dockerfile -t aiinfra-serving:cu128 \
#           --build-arg BASE_IMAGE=nvidia/cuda:12.8.1-cudnn-runtime-ubuntu22.04 \
#           --build-arg TORCH_INDEX=https://download.pytorch.org/whl/cu128 --build-arg ORT=onnxruntime-gpu .
# SageMaker runs `docker run <image> serve` with the model in /opt/ml/model and SAGEMAKER_BIND_TO_PORT set;
# on EKS the Deployment mounts the model at /opt/ml/model (or passes --model-dir) and probes /ping or
# /v2/health/ready. The CUDA image serves Hugging Face models and cuda TorchScript artifacts with torch on the
# GPU and ONNX artifacts with ONNX Runtime's CUDA execution provider (`--device auto` picks the GPU; `--device
# cuda` fails at start, in one line, if the container sees none). For Neuron hosts build with BASE_IMAGE set to
# an AWS Neuron DLC that ships torch_neuronx.
ARG BASE_IMAGE=python:3.11.14-slim-bookworm
FROM ${BASE_IMAGE}

# torch comes from the index that matches the base (CPU or CUDA wheels), at the repository's pin; ORT is
# onnxruntime (CPU) or onnxruntime-gpu (CUDA execution provider), at the version workloads/requirements.txt pins.
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
ARG ORT=onnxruntime
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    HF_HUB_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1 \
    PYTHONPATH=/opt/program

# The CUDA base has no Python 3.11 of its own; the slim base already has it.
RUN if ! command -v python3.11 >/dev/null; then \
      apt-get update && apt-get install -y --no-install-recommends python3.11 python3.11-venv && \
      rm -rf /var/lib/apt/lists/*; fi && \
    python3.11 -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH

WORKDIR /opt/program
COPY workloads/requirements.txt /opt/program/workloads/requirements.txt
RUN cd /opt/program/workloads && \
    pip install --index-url "${TORCH_INDEX}" "$(grep -E '^torch==' requirements.txt)" && \
    ort_version="$(grep -E '^onnxruntime==' requirements.txt | cut -d= -f3)" && \
    grep -vE '^(torch|onnxruntime)==' requirements.txt > /tmp/requirements.txt && \
    pip install -r /tmp/requirements.txt "${ORT}==${ort_version}"

COPY contracts /opt/program/contracts
COPY workloads/__init__.py /opt/program/workloads/__init__.py
# The init container (fetch-model) runs `python -m workloads.common.s3 sync` with this image.
COPY workloads/common /opt/program/workloads/common
COPY workloads/serving /opt/program/workloads/serving
COPY workloads/compilation /opt/program/workloads/compilation
COPY workloads/images/serve /usr/local/bin/serve

RUN useradd --system --uid 1000 --home /opt/program serving && mkdir -p /opt/ml/model
USER 1000
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --start-period=120s \
    CMD python -c "import os,urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/ping' % os.environ.get('SAGEMAKER_BIND_TO_PORT', '8080'), timeout=2)"
CMD ["serve"]
