# The Baton image: the `baton` CLI (and, later, the operator run with
# `kopf run`) in a virtualenv on a Debian-based Python 3.11.
#
# Wheels are built on the host and copied in, so no RUN step needs network:
#   python3 -m pip wheel -w dist .          # the project + all dependencies
#   docker build -t baton:dev .             # or: buildah build ...
# BASE_IMAGE may be any Debian-like image with python3 (>= 3.11) and its venv
# module: the official python image (default) or the debootstrap-made base the
# e2e cluster uses (python3 at /usr/bin/python3).
ARG BASE_IMAGE=python:3.11-slim-bookworm
FROM ${BASE_IMAGE}

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

COPY dist/ /tmp/wheels/
RUN python3 -m venv /opt/venv \
 && /opt/venv/bin/python -m pip install --no-index --find-links /tmp/wheels --no-cache-dir \
        --disable-pip-version-check baton \
 && rm -rf /tmp/wheels \
 && groupadd --gid 10001 baton \
 && useradd --uid 10001 --gid 10001 --home-dir /opt/baton --no-create-home --shell /usr/sbin/nologin baton \
 && mkdir -p /opt/baton \
 && chown 10001:10001 /opt/baton \
 && python -c "import baton"

COPY --chown=10001:10001 examples /opt/baton/examples
# Bytecode for the examples too (pip compiled the packages'): every step pod imports its
# job's modules, and with PYTHONDONTWRITEBYTECODE (and a read-only root) it would
# compile them again in each pod.
RUN python -m compileall -q /opt/baton/examples

WORKDIR /opt/baton
USER 10001:10001
ENTRYPOINT ["baton"]
CMD ["--help"]
