# inflamap BIDS-App image.
#   docker build -t inflamap:0.2.0 .
#   docker run --rm -v /data/bids:/data:ro -v /data/out:/out inflamap:0.2.0 /data /out participant
#   apptainer build inflamap.sif docker-daemon://inflamap:0.2.0   (clusters: README, HPC section)
# Build arguments:
#   BASE_IMAGE  Debian bookworm with Python 3.11 and pip (default python:3.11-slim-bookworm)
#   TEMPLATES   fetch (default): download the default template from TemplateFlow at build
#               time (needs network); offline: only the MNI152NLin2009aSym that
#               `inflamap templates` builds from nilearn's data (the demo's template)
#   TORCH_INDEX the package index of PyTorch's CPU builds (deepbet's brain extraction runs on
#               the CPU; PyPI's default Linux build carries CUDA, several GB more)
ARG BASE_IMAGE=python:3.11-slim-bookworm
FROM ${BASE_IMAGE}

ARG TEMPLATES=fetch
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
ENV PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    TEMPLATEFLOW_HOME=/opt/templateflow \
    MPLCONFIGDIR=/tmp/matplotlib \
    INFLAMAP_CONTAINER=docker

COPY . /src/inflamap
# the same install steps as CI (.ci/run)
RUN INFLAMAP_TORCH_INDEX="${TORCH_INDEX}" bash /src/inflamap/.ci/install.sh /src/inflamap

# Templates are in the image: compute nodes often have no network. configs/defaults.yml
# uses MNI152NLin2009cAsym at 2 mm (its built-in atlases need only its tissue maps).
RUN inflamap templates \
    && if [ "$TEMPLATES" = fetch ]; then \
         inflamap templates --fetch MNI152NLin2009cAsym --resolution 2 \
         && inflamap templates --fetch MNI152NLin2009cAsym --resolution 1; \
       fi \
    && chmod -R a+rX /opt/templateflow

RUN useradd --create-home --uid 1000 --user-group inflamap
# numeric, so that the runtime needs no /etc/passwd lookup (Apptainer runs as the caller)
USER 1000:1000
WORKDIR /home/inflamap

ENTRYPOINT ["inflamap"]
