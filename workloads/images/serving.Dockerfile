# The model server image for SageMaker real-time endpoints and the EKS serving Deployment.
# Build from the repository root:  docker build -f workloads/images/serving.Dockerfile -t aiinfra-serving .
# SageMaker runs `docker run <image> serve` with the model in /opt/ml/model and SAGEMAKER_BIND_TO_PORT set;
# on EKS the Deployment mounts the model at /opt/ml/model (or passes --model-dir) and probes /ping or
# /v2/health/ready. For Neuron hosts build with BASE_IMAGE set to an AWS Neuron DLC that ships torch_neuronx.
ARG BASE_IMAGE=python:3.11-slim
FROM ${BASE_IMAGE}

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    HF_HUB_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1 \
    PYTHONPATH=/opt/program

WORKDIR /opt/program
COPY workloads/requirements.txt /opt/program/workloads/requirements.txt
# The CPU wheel index keeps torch at the pinned CPU build instead of pulling CUDA wheels.
RUN python -m pip install --extra-index-url https://download.pytorch.org/whl/cpu \
        -r /opt/program/workloads/requirements.txt

COPY workloads/__init__.py /opt/program/workloads/__init__.py
COPY workloads/serving /opt/program/workloads/serving
COPY workloads/compilation /opt/program/workloads/compilation
# The init container (fetch-model) runs `python -m workloads.common.s3 sync` with this image.
COPY workloads/common /opt/program/workloads/common
COPY contracts /opt/program/contracts
COPY workloads/images/serve /usr/local/bin/serve

RUN useradd --system --uid 1000 --home /opt/program serving && mkdir -p /opt/ml/model
USER 1000
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --start-period=120s \
    CMD python -c "import os,urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/ping' % os.environ.get('SAGEMAKER_BIND_TO_PORT', '8080'), timeout=2)"
CMD ["serve"]
