# The embedded GNMT trainer (scripts/gnmt) in a container, built offline.
#
# The build context is assembled by the workflow (rule build_image, scripts/docker_backend.py):
#   wheels/           every wheel the trainer needs, downloaded on the host (rule fetch_wheels),
#                     with wheels/requirements.txt (envs/gnmt.requirements.txt)
#   scripts/          the trainer's code (scripts/__init__.py, scripts/gnmt/)
# so the build needs no registry and no network (it runs with --network none).
#
# BASE_IMAGE: any image with Python 3.11 and pip (the wheels match the host's Python 3.11):
# python:3.11-slim-bookworm, a Debian 12 image with python3-pip, or your site's base image.
ARG BASE_IMAGE=python:3.11-slim-bookworm
FROM ${BASE_IMAGE}

# Debian's Python refuses system-wide pip installs (PEP 668) unless told; this image is
# the trainer's environment and nothing else. Older pips ignore the variable.
ENV PIP_BREAK_SYSTEM_PACKAGES=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1

# The heavy layer first, so a change of the trainer's code reuses it from the build cache.
COPY wheels /tmp/wheels
RUN python3 -m pip install --no-index --find-links /tmp/wheels -r /tmp/wheels/requirements.txt \
    && rm -rf /tmp/wheels

WORKDIR /workspace
COPY scripts /workspace/scripts
# runs use the caller's uid (docker run --user): nothing in the image may need root to write
ENV HOME=/tmp
