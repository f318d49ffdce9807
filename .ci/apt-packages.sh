#!/usr/bin/env bash
# Debian packages the tests need besides Python's: chromium renders the HTML reports
# headless (tests/test_reports.py; the test is skipped without it); shellcheck lints
# .ci/build-image.sh (tests/test_container.py; skipped without it); mricron-data ships
# Colin27, the real head of tests/test_real_head.py (skipped without it). Needs root and apt-get;
# elsewhere it only says what is missing.
set -euo pipefail
missing=()
if ! command -v chromium >/dev/null 2>&1 && ! command -v chromium-browser >/dev/null 2>&1; then
  missing+=(chromium)
fi
command -v shellcheck >/dev/null 2>&1 || missing+=(shellcheck)
[ -f /usr/share/mricron/templates/ch2.nii.gz ] || missing+=(mricron-data)
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
else
  echo "apt-packages.sh: ${missing[*]} not installed and no root apt-get: the tests that" \
       "need them (report rendering, shell lint) will be skipped" >&2
fi
