#!/usr/bin/env bash
# Build CLEAN images with a real builder (buildah, vfs, chroot isolation) from the
# realistic Dockerfiles in this directory, and export each as oci-archive and
# docker-archive under bench/out/real/ (git-ignored). report.py then scans them.
#
#   sudo bash bench/realimages/build.sh            # everything (skips what exists)
#   bash bench/realimages/build.sh curl files      # only these images
#   FORCE=1 bash bench/realimages/build.sh         # rebuild all, re-export
#   CLEAN=1 bash bench/realimages/build.sh         # drop buildah storage + rootfs, keep exports
#   KEEP_DOCKER_TAR=1 ...                          # keep docker-archives uncompressed (default: .zst)
#
# Outputs, per image NAME: NAME.oci.tar (oci-archive, gzip layers), NAME.docker.tar.zst
# (docker-archive, whole archive zstd-compressed to save ~1.2 GB; forensics reads it as is),
# NAME.build.log. Plus rootfs.tar (the debootstrap tree) and storage/ (buildah, base image only).
#
# Needs root and: buildah skopeo debootstrap zstd (apt-get install -y buildah skopeo debootstrap zstd).
# Network: only deb.debian.org (debootstrap, apt-get inside RUN) and pypi.org (pip).
#
# Idempotent: the rootfs, the base image and each export are made only when
# missing (FORCE=1 redoes them). Buildah storage is private to this script
# (bench/out/real/storage, vfs driver), and each image is removed from it once
# exported, so the peak disk use stays ~1.5 GB (vfs copies a full rootfs per layer) and
# the final tree ~1.7 GB (exports ~1.4 GB, rootfs.tar 120 MB, storage 130 MB).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
OUT="${OUT:-$REPO/bench/out/real}"
SUITE="${SUITE:-bookworm}"
MIRROR="${MIRROR:-http://deb.debian.org/debian}"
ROOTFS="$OUT/rootfs/$SUITE"
CTX="$OUT/ctx"
STORE="$OUT/storage"
BASE="localhost/realbase:$SUITE"
# Fixed timestamps keep the history times sane and the builds reproducible-ish.
export SOURCE_DATE_EPOCH="${SOURCE_DATE_EPOCH:-$(date +%s)}"

# pip inside RUN needs the CA bundle the host trusts (TLS-intercepting egress proxy).
PIP_CA="${PIP_CA:-${PIP_CERT:-/etc/ssl/certs/ca-certificates.crt}}"

B=(buildah --storage-driver vfs --root "$STORE/root" --runroot "$STORE/run")

# name|Dockerfile|extra bud flags
IMAGES=(
  "curl|Dockerfile.curl|--layers"
  "users|Dockerfile.users|--layers"
  "python|Dockerfile.python|--layers --secret id=pipcert,src=$PIP_CA"
  "files|Dockerfile.files|--layers"
  "multistage|Dockerfile.multistage|--layers"
  "system|Dockerfile.system|--layers"
  "nginx|Dockerfile.nginx|--layers"
  "files-nolayers|Dockerfile.files|--layers=false"
  "system-nolayers|Dockerfile.system|--layers=false"
  "files-squash|Dockerfile.files|--squash"
)

log() { printf '\n== %s\n' "$*" >&2; }

if [[ "${CLEAN:-}" == 1 ]]; then
  "${B[@]}" rm --all >/dev/null 2>&1 || true
  "${B[@]}" rmi --all --force >/dev/null 2>&1 || true
  rm -rf "$STORE" "$OUT/rootfs" "$CTX" "$OUT/rootfs.tar"
  exit 0
fi

mkdir -p "$OUT" "$STORE"

# 1. Minimal Debian rootfs (debootstrap minbase), trimmed like debuerreotype does.
if [[ ! -s "$OUT/rootfs.tar" || "${FORCE:-}" == 1 ]]; then
  log "debootstrap --variant=minbase $SUITE ($MIRROR)"
  rm -rf "$ROOTFS" "$OUT/rootfs.tar"; mkdir -p "$(dirname "$ROOTFS")"
  debootstrap --variant=minbase "$SUITE" "$ROOTFS" "$MIRROR"
  log "rootfs.tar"
  rm -rf "$ROOTFS"/var/cache/apt/archives/*.deb "$ROOTFS"/var/lib/apt/lists/* "$ROOTFS"/var/log/bootstrap.log
  mkdir -p "$ROOTFS/var/lib/apt/lists/partial"
  # No dpkg path-exclude for docs/man (unlike some slim images): installs stay ordinary Debian ones.
  tar -C "$ROOTFS" --numeric-owner --sort=name --mtime="@$SOURCE_DATE_EPOCH" -cf "$OUT/rootfs.tar" .
  [[ "${KEEP_ROOTFS:-}" == 1 ]] || rm -rf "$OUT/rootfs"
fi

# 2. Build context: static files from ctx/, plus a generated tarball for ADD (auto-extracted).
rm -rf "$CTX"; mkdir -p "$CTX"
cp -a "$HERE/ctx/." "$CTX/"
ln -f "$OUT/rootfs.tar" "$CTX/rootfs.tar" 2>/dev/null || cp "$OUT/rootfs.tar" "$CTX/rootfs.tar"
tar -C "$HERE/ctx" --owner=0 --group=0 --sort=name -czf "$CTX/payload.tar.gz" payload
rm -rf "$CTX/payload"   # only the tarball goes in: ADD must extract it

# 3. Base image: FROM scratch + ADD rootfs.tar /.
if ! "${B[@]}" inspect --type image "$BASE" >/dev/null 2>&1 || [[ "${FORCE:-}" == 1 ]]; then
  log "base image $BASE"
  "${B[@]}" bud --isolation chroot --layers -f "$HERE/Dockerfile.base" -t "$BASE" "$CTX"
fi
export_img() {  # export_img NAME REF
  local name=$1 ref=$2
  rm -f "$OUT/$name.oci.tar" "$OUT/$name.docker.tar" "$OUT/$name.docker.tar.zst"
  "${B[@]}" push "$ref" "oci-archive:$OUT/$name.oci.tar:$name:1"
  "${B[@]}" push "$ref" "docker-archive:$OUT/$name.docker.tar:localhost/$name:1"
  [[ "${KEEP_DOCKER_TAR:-}" == 1 ]] || zstd -q -T0 -6 --rm "$OUT/$name.docker.tar"
}
exported() { [[ -s "$OUT/$1.oci.tar" && ( -s "$OUT/$1.docker.tar" || -s "$OUT/$1.docker.tar.zst" ) ]]; }
{ exported base && [[ "${FORCE:-}" != 1 ]]; } || export_img base "$BASE"

# 4. The images.
want=("$@")
for spec in "${IMAGES[@]}"; do
  IFS='|' read -r name dockerfile flags <<<"$spec"
  if ((${#want[@]})) && [[ " ${want[*]} " != *" $name "* ]]; then continue; fi
  if exported "$name" && [[ "${FORCE:-}" != 1 ]]; then
    log "$name: exported already (FORCE=1 to rebuild)"; continue
  fi
  log "$name: bud $flags -f $dockerfile"
  # shellcheck disable=SC2086
  "${B[@]}" bud --isolation chroot --pull=never $flags -f "$HERE/$dockerfile" -t "localhost/$name:1" "$CTX" \
    2>&1 | tee "$OUT/$name.build.log"
  export_img "$name" "localhost/$name:1"
  # Free the vfs copies: keep only the base image in storage.
  "${B[@]}" rmi --force "localhost/$name:1" >/dev/null || true
  "${B[@]}" rmi --prune >/dev/null 2>&1 || true
  "${B[@]}" rm --all >/dev/null 2>&1 || true
done

log "exports in $OUT"
ls -lh "$OUT"/*.oci.tar "$OUT"/*.docker.tar* >&2
du -sh "$OUT" >&2
