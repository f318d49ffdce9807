#!/usr/bin/env bash
# Submit inflamap to SLURM: the participant level as a job array (one task per participant
# of BIDS_DIR/participants.tsv), then the group level with --dependency=afterok on the array
# (it runs once every task succeeded, and is cancelled if one failed).
#
#   configs/slurm/submit.sh BIDS_DIR OUTPUT_DIR WORK_DIR [inflamap options ...]
#
# The options go to both levels (e.g. --config /shared/study.yml --skip-bids-validation).
# Environment:
#   INFLAMAP_SIF, INFLAMAP_CMD, TEMPLATEFLOW_HOME, INFLAMAP_BIND   see inflamap.sbatch
#   INFLAMAP_SBATCH_ARGS        extra sbatch options for both jobs ("--partition=x --account=y")
#   INFLAMAP_ARRAY_SBATCH_ARGS  extra sbatch options of the array (e.g. "--cpus-per-task=8 --mem=32G")
#   INFLAMAP_GROUP_SBATCH_ARGS  extra sbatch options of the group job
#   INFLAMAP_ARRAY_LIMIT        at most this many participants at once (--array=1-N%LIMIT)
#   INFLAMAP_LOGS               folder of the job output files (default WORK_DIR/slurm-logs)
# Prints "participant_job=<id>" and "group_job=<id>".
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
if [ $# -lt 3 ]; then
  sed -n '2,18p' "$0" >&2
  exit 64
fi
bids=$(realpath "$1") out=$(realpath -m "$2") work=$(realpath -m "$3")
shift 3
logs=$(realpath -m "${INFLAMAP_LOGS:-$work/slurm-logs}")
mkdir -p "$out" "$work" "$logs"

n=$(bash "$here/inflamap.sbatch" --count "$bids")
if [ "$n" -eq 0 ]; then
  echo "submit.sh: no participants in $bids (participants.tsv or sub-* folders)" >&2
  exit 66
fi
array="1-$n${INFLAMAP_ARRAY_LIMIT:+%$INFLAMAP_ARRAY_LIMIT}"
read -r -a common <<< "${INFLAMAP_SBATCH_ARGS:-}"
read -r -a array_args <<< "${INFLAMAP_ARRAY_SBATCH_ARGS:-}"
read -r -a group_args <<< "${INFLAMAP_GROUP_SBATCH_ARGS:-}"

jid=$(sbatch --parsable --array="$array" --job-name=inflamap-participant \
  --output="$logs/participant-%A_%a.out" "${common[@]}" "${array_args[@]}" \
  "$here/inflamap.sbatch" participant "$bids" "$out" "$work" "$@")
jid=${jid%%;*}  # "id;cluster" on multi-cluster setups
gid=$(sbatch --parsable --dependency="afterok:$jid" --kill-on-invalid-dep=yes \
  --job-name=inflamap-group --cpus-per-task=1 --mem=4G --time=01:00:00 \
  --output="$logs/group-%j.out" "${common[@]}" "${group_args[@]}" \
  "$here/inflamap.sbatch" group "$bids" "$out" "$work" "$@")
gid=${gid%%;*}
echo "submit.sh: $n participant task(s) in job $jid; group job $gid after them; logs in $logs" >&2
echo "participant_job=$jid"
echo "group_job=$gid"
