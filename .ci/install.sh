#!/usr/bin/env bash
# Installs inflamap and everything it needs. Used by CI (.ci/run), by the Dockerfile and by
# the README's first command, so that the three stay the same.
#   bash .ci/install.sh [SOURCE_DIR]
set -euo pipefail
src="${1:-.}"
if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  # libgomp1: OpenMP runtime of the antspyx wheel (present on most systems, not on slim images)
  if ! ldconfig -p 2>/dev/null | grep -q libgomp.so.1; then
    apt-get update -qq && apt-get install -y -qq --no-install-recommends libgomp1
  fi
fi
python3 -m pip install --upgrade --quiet pip
# PyTorch for deepbet's brain extraction: the CPU build (about 750 MB installed; PyPI's
# default Linux build carries CUDA, several GB). INFLAMAP_TORCH_INDEX names an index with
# CPU builds (the Dockerfile uses https://download.pytorch.org/whl/cpu); without it pip's
# configured indexes and find-links are used (a CPU wheel there is taken as is).
if ! python3 -c "import torch" >/dev/null 2>&1; then
  if [ -n "${INFLAMAP_TORCH_INDEX:-}" ]; then
    python3 -m pip install --quiet --index-url "${INFLAMAP_TORCH_INDEX}" "torch==2.13.*"
  else
    python3 -m pip install --quiet "torch==2.13.0"
  fi
fi
python3 -m pip install --quiet "${src}[test]"
