#!/usr/bin/env bash
# Debian packages the tests need besides Python's: chromium renders the HTML reports
# headless (tests/test_reports.py; the test is skipped without it). Needs root and apt-get;
# elsewhere it only says what is missing.
set -euo pipefail
if command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1; then
  exit 0
fi
if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium
else
  echo "apt-packages.sh: chromium not installed and no root apt-get: the report rendering" \
       "test will be skipped" >&2
fi
