#!/usr/bin/env bash
# Builds the Dockerfile for real without a Docker engine or a registry, then runs the
# image's entrypoint inside the built image: `--version`, then the demo participant.
#   bash .ci/build-image.sh    (root, Debian; 7 to 26 minutes on 2 cores: README, Container)
# Steps:
#   1. debootstrap a minimal Debian bookworm (python3, python3-venv, python3-pip,
#      ca-certificates, libgomp1) into $INFLAMAP_IMAGE_CACHE/rootfs-bookworm (kept: reused
#      by the next run), add a venv /opt/venv (first on PATH: Debian's own python3 refuses
#      pip installs, PEP 668) and the build host's extra CA certificates
#      (/usr/local/share/ca-certificates: TLS-intercepting proxies)
#   2. import it as localhost/inflamap-base:bookworm (podman import; no registry pull)
#   3. build the Dockerfile with buildah, --isolation=chroot (no container runtime needed),
#      --build-arg BASE_IMAGE=localhost/inflamap-base:bookworm --build-arg TEMPLATES=offline
#   4. `buildah from` + `buildah run --isolation=chroot` (podman run needs a runtime that
#      this kind of machine lacks): the image's ENTRYPOINT with --version; `inflamap demo`;
#      the participant level of sub-01; checks its outputs (regional tables, report,
#      resources.json) in a host folder bound into the container
# Durations of each step go to $INFLAMAP_IMAGE_CACHE/durations.tsv and stdout.
# Environment: INFLAMAP_IMAGE_CACHE (default ~/.cache/inflamap-image),
#   INFLAMAP_DEBIAN_MIRROR (default http://deb.debian.org/debian),
#   INFLAMAP_REBUILD_BASE=1 (debootstrap again), INFLAMAP_IMAGE_KEEP=1 (keep the images
#   localhost/inflamap:VERSION and the base; by default both are removed at the end).
set -euo pipefail
cd "$(dirname "$0")/.."
cache="${INFLAMAP_IMAGE_CACHE:-$HOME/.cache/inflamap-image}"
mirror="${INFLAMAP_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
suite=bookworm
base_image="localhost/inflamap-base:${suite}"
version=$(sed -n 's/^__version__ = "\(.*\)"$/\1/p' pipeline/__init__.py)
image="localhost/inflamap:${version}"
# the build arguments the Dockerfile declares (tests/test_container.py checks they match)
build_args=(--build-arg "BASE_IMAGE=${base_image}" --build-arg "TEMPLATES=offline")
run_dir="${cache}/run"
durations="${cache}/durations.tsv"

say() { printf 'build-image: %s\n' "$*" >&2; }
die() { say "ERROR: $*"; exit 1; }
t_start=0
step() { t_start=$(date +%s); say "$*"; }
took() {  # took NAME: record the seconds since the last `step`
  local s=$(( $(date +%s) - t_start ))
  printf '%s\t%s\n' "$1" "$s" >> "$durations"
  say "$1: ${s} s"
}

[ "$(id -u)" = 0 ] || die "needs root (debootstrap, buildah --isolation=chroot)"
need=()
for tool in debootstrap buildah podman; do
  command -v "$tool" >/dev/null 2>&1 || need+=("$tool")
done
if [ ${#need[@]} -gt 0 ]; then
  command -v apt-get >/dev/null 2>&1 || die "missing ${need[*]} and no apt-get"
  step "installing debootstrap buildah podman (apt)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends debootstrap buildah podman \
    fuse-overlayfs uidmap >/dev/null
fi
mkdir -p "$cache"
: > "$durations"

# 1. the base: Debian bookworm and its python3, with a venv for pip
rootfs="${cache}/rootfs-${suite}"
if [ "${INFLAMAP_REBUILD_BASE:-0}" = 1 ] || [ ! -e "${rootfs}/.inflamap-base-complete" ]; then
  rm -rf "$rootfs"
  step "debootstrap ${suite} into ${rootfs}"
  debootstrap --variant=minbase \
    --include=python3,python3-venv,python3-pip,ca-certificates,libgomp1 \
    "$suite" "$rootfs" "$mirror" > "${cache}/debootstrap.log" 2>&1 \
    || { tail -20 "${cache}/debootstrap.log" >&2; die "debootstrap failed (${cache}/debootstrap.log)"; }
  if compgen -G "/usr/local/share/ca-certificates/*.crt" >/dev/null; then
    cp /usr/local/share/ca-certificates/*.crt "${rootfs}/usr/local/share/ca-certificates/"
    chroot "$rootfs" update-ca-certificates >/dev/null
  fi
  chroot "$rootfs" python3 -m venv /opt/venv
  chroot "$rootfs" apt-get clean
  rm -rf "${rootfs}"/var/lib/apt/lists/* "${rootfs}"/var/cache/apt/*.bin
  touch "${rootfs}/.inflamap-base-complete"
  took debootstrap
else
  say "reusing ${rootfs} (INFLAMAP_REBUILD_BASE=1 to debootstrap again)"
fi

step "importing ${base_image}"
podman rmi "$base_image" >/dev/null 2>&1 || true  # an earlier import would stay dangling
tar --exclude=./.inflamap-base-complete -C "$rootfs" -c . \
  | podman import \
      --change 'ENV PATH=/opt/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
      --change 'ENV VIRTUAL_ENV=/opt/venv' \
      --change 'ENV LANG=C.UTF-8' \
      --change 'CMD ["python3"]' \
      - "$base_image" >/dev/null
took import

# 2. the Dockerfile, as it is, with the offline template home
step "building ${image} from the Dockerfile (buildah, --isolation=chroot)"
buildah bud --isolation=chroot --layers "${build_args[@]}" -t "$image" -f Dockerfile . \
  > "${cache}/build.log" 2>&1 \
  || { tail -30 "${cache}/build.log" >&2; die "image build failed (${cache}/build.log)"; }
took build

# 3. the entrypoint inside the built image
ctr=""
cleanup() {
  if [ -n "$ctr" ]; then buildah rm "$ctr" >/dev/null 2>&1 || true; fi
  if [ "${INFLAMAP_IMAGE_KEEP:-0}" != 1 ]; then  # the rootfs in the cache stays
    buildah rmi "$image" "$base_image" >/dev/null 2>&1 || true
  fi
}
trap cleanup EXIT
ctr=$(buildah from "$image")
mapfile -t entrypoint < <(buildah inspect --type image \
  --format '{{range .OCIv1.Config.Entrypoint}}{{println .}}{{end}}' "$image" | sed '/^$/d')
[ "${#entrypoint[@]}" -gt 0 ] || die "the image has no ENTRYPOINT"
user=$(buildah inspect --type image --format '{{.OCIv1.Config.User}}' "$image")
rm -rf "$run_dir"
mkdir -p "$run_dir"
chown "${user:-0:0}" "$run_dir"  # written by the image's (non-root) user
inside() { buildah run --isolation=chroot -v "${run_dir}:/tmp/d" "$ctr" -- "$@"; }

step "${entrypoint[*]} --version (inside the image)"
got=$(inside "${entrypoint[@]}" --version)
[ "$got" = "inflamap ${version}" ] || die "--version said '${got}', not 'inflamap ${version}'"
inside python3 -c 'import sys; assert sys.version_info[:2] == (3, 11), sys.version'
took version

step "${entrypoint[*]} demo (inside the image)"
inside "${entrypoint[@]}" demo /tmp/d --participants 2 --resolution 4 \
  > "${cache}/demo.log" 2>&1 || { tail -20 "${cache}/demo.log" >&2; die "demo failed"; }
took demo

step "${entrypoint[*]} participant sub-01 (inside the image)"
inside "${entrypoint[@]}" /tmp/d/bids /tmp/d/out participant --participant-label 01 \
  --config /tmp/d/inflamap-demo.yml -w /tmp/d/work --nprocs 2 --omp-nthreads 1 \
  > "${cache}/participant.log" 2>&1 \
  || { tail -30 "${cache}/participant.log" >&2; die "participant level failed (${cache}/participant.log)"; }
took participant

# outputs, seen from the host
out="${run_dir}/out"
missing=0
for pattern in "dataset_description.json" "sub-01.html" "logs/sub-01/resources.json" \
               "sub-01/ses-*/anat/sub-01_ses-*_atlas-*_desc-nT1w_regions.tsv" \
               "sub-01/ses-*/anat/sub-01_ses-*_ce-*_desc-*_regions.tsv" \
               "sub-01/ses-*/pet/sub-01_ses-*_trc-*_desc-SUVR_regions.tsv"; do
  if ! compgen -G "${out}/${pattern}" >/dev/null; then
    say "missing output: ${out}/${pattern}"
    missing=1
  fi
done
[ "$missing" = 0 ] || die "the participant run inside the image left outputs missing"
grep -q '"status": "success"' "${out}/logs/sub-01/resources.json" \
  || die "logs/sub-01/resources.json does not say success"
say "outputs: $(find "$out" -name '*_regions.tsv' | wc -l) regional tables under ${out}"
say "durations (s): $(tr '\t\n' '= ' < "$durations")"
say "OK: ${image} built from the Dockerfile and ran the demo participant"
