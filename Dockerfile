# inflamap BIDS-App image.
#   docker build -t inflamap:0.1.0 .
#   docker run --rm -v /data/bids:/data:ro -v /data/out:/out inflamap:0.1.0 /data /out participant
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    TEMPLATEFLOW_HOME=/opt/templateflow \
    MPLCONFIGDIR=/tmp/matplotlib \
    INFLAMAP_CONTAINER=docker

COPY . /src/inflamap
# the same install steps as CI (.ci/run)
RUN bash /src/inflamap/.ci/install.sh /src/inflamap

# Templates are fetched at build time: compute nodes often have no network.
# The offline MNI152NLin2009aSym (used by the demo) is built from data bundled with nilearn.
RUN inflamap templates --fetch MNI152NLin2009cAsym --resolution 2 \
    && inflamap templates --fetch MNI152NLin2009cAsym --resolution 1 \
    && chmod -R a+rX /opt/templateflow

RUN useradd --create-home --uid 1000 inflamap
USER inflamap
WORKDIR /home/inflamap

ENTRYPOINT ["inflamap"]
