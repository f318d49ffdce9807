#!/usr/bin/env bash
# Installs what tests/test_slurm.py needs for its single-node SLURM on localhost: Debian's
# slurm-wlm (slurmctld, slurmd, sbatch, squeue, scontrol) and munge. The test starts and
# stops the daemons itself (in a temporary folder, on free ports); nothing is started here,
# and Debian's own services are not enabled. Without root or apt-get, it does nothing and
# the SLURM tests skip with the reason.
set -euo pipefail
if command -v slurmctld >/dev/null 2>&1 && command -v slurmd >/dev/null 2>&1 \
    && command -v munged >/dev/null 2>&1 && command -v sbatch >/dev/null 2>&1; then
  exit 0
fi
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "slurm-setup: not root or no apt-get; the SLURM tests will be skipped" >&2
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
# no service starts at install time (containers have no init system anyway)
if [ ! -e /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
  trap 'rm -f /usr/sbin/policy-rc.d' EXIT
fi
apt-get update -qq
apt-get install -y -qq --no-install-recommends slurm-wlm munge >/dev/null
