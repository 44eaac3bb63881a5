# Neuron image for Trn1/Trn2 training (torch-xla through torch-neuronx) and Inf2/Trn1 compilation
# (torch_neuronx.trace), built on the AWS Neuron deep-learning container, which brings the Neuron compiler,
# runtime and its own torch build. The repository's torch pin (CPU/CUDA) is NOT installed here: Neuron ships
# the torch that matches torch-neuronx.
# Log in to the DLC registry, then build from the repository root:
#   aws ecr get-login-password --region us-west-2 | docker login --username AWS --password-stdin \
#       763104351884.dkr.ecr.us-west-2.amazonaws.com
#   docker build -f workloads/images/neuron.Dockerfile -t aiinfra-neuron:sdk2.26.1 .
# Train:   SageMaker runs `<image> train` (torchrun over every NeuronCore, workloads/training/entry.py).
# Compile: docker run --device=/dev/neuron0 --entrypoint python aiinfra-neuron:sdk2.26.1 \
#              -m workloads.compilation --target inferentia --model-dir /models/in --out /models/out ...
ARG DLC_REGISTRY=763104351884.dkr.ecr.us-west-2.amazonaws.com
ARG DLC_TAG=2.8.0-neuronx-py311-sdk2.26.1-ubuntu22.04
FROM ${DLC_REGISTRY}/pytorch-training-neuronx:${DLC_TAG}

ENV PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 PIP_NO_CACHE_DIR=1 \
    HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_HUB_DISABLE_TELEMETRY=1 \
    NEURON_CC_FLAGS="--cache_dir=/var/tmp/neuron-compile-cache" \
    NEURON_CORES_PER_DEVICE=2

WORKDIR /opt/aiinfra
COPY workloads/requirements.txt workloads/requirements.txt
# Everything the workloads need except torch itself (kept at the DLC's torch-neuronx build).
RUN grep -v '^torch==' workloads/requirements.txt > /tmp/requirements-neuron.txt && \
    pip install -r /tmp/requirements-neuron.txt && \
    python -c "import torch_neuronx, torch_xla, transformers; print('neuron ok', torch_neuronx.__version__)"
COPY contracts/ contracts/
COPY workloads/ workloads/

ENTRYPOINT ["python", "-m", "workloads.training.entry"]
CMD ["train"]
