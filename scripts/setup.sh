#!/usr/bin/env bash
# Set-up of a machine or an image for Doppel: the one place that knows the system packages,
# the OpenCV build settings and the install command.
#   bash scripts/setup.sh                    a machine: system packages, pnpm, the workspace, the default model
#   bash scripts/setup.sh --image SERVICE    a Dockerfile's build stage (manifests copied, sources not yet):
#                                            the packages its native addons compile with, pnpm, and the
#                                            service's dependencies (plus the root's typescript), no model
#   bash scripts/setup.sh --runtime SERVICE  a Dockerfile's runtime stage: the shared libraries its
#                                            native addons load, nothing else
#   bash scripts/setup.sh --print-env        the OpenCV variables the binding reads when it loads
#   bash scripts/setup.sh --pgvector         only PostgreSQL 15 and the pgvector extension (the machine
#                                            set-up does this too), for a pgvector backend or its tests
# Idempotent: a second run only checks.
set -euo pipefail
cd "$(dirname "$0")/.."

export COREPACK_INTEGRITY_KEYS=0 COREPACK_ENABLE_DOWNLOAD_PROMPT=0
# onnxruntime-node's postinstall fetches GPU libraries we do not use; the CPU binaries ship inside.
export ONNXRUNTIME_NODE_INSTALL=skip
# Build opencv4nodejs against Debian's OpenCV instead of compiling OpenCV itself. The binding
# also reads these when it loads, so the instance-matching image and the launcher set the same
# values at run time (services/instance-matching/Dockerfile, packages/cli/src/stack.launcher.ts,
# scripts/run-tests.mjs through --print-env).
export OPENCV4NODEJS_DISABLE_AUTOBUILD=1 OPENCV_INCLUDE_DIR=/usr/include/opencv4 \
  OPENCV_LIB_DIR=/usr/lib/x86_64-linux-gnu OPENCV_BIN_DIR=/usr/bin
export JOBS="${JOBS:-max}"
# The run-time half of the above, for whoever starts a process that loads the binding
# (scripts/run-tests.mjs, the launcher): one JSON object, nothing installed.
if [ "${1:-}" = --print-env ]; then
  env | grep -E '^OPENCV' | sort | awk '{ i = index($0, "="); printf "%s\"%s\":\"%s\"", (NR > 1 ? "," : "{"), substr($0, 1, i - 1), substr($0, i + 1) } END { print "}" }'
  exit 0
fi

mode="${1:-machine}"
service="${2:-}"
if [ "$mode" != machine ] && [ "$mode" != --pgvector ]; then
  case "$service" in
    image-encoder|contextual-search|instance-matching|pipeline) ;;
    *) echo "setup: $mode needs a service (image-encoder, contextual-search, instance-matching, pipeline), got '$service'" >&2; exit 2 ;;
  esac
fi

# What each image compiles with: sharp and onnxruntime-node ship prebuilt binaries,
# hnswlib-node and opencv4nodejs compile with node-gyp (opencv4nodejs against libopencv-dev).
build_packages() {
  case "$1" in
    contextual-search) echo "python3 make g++" ;;
    instance-matching) echo "libopencv-dev python3 make g++" ;;
    image-encoder|pipeline) echo "" ;;
    *) echo "setup: unknown service '$1'" >&2; exit 2 ;;
  esac
}
# What each image loads at run time (Debian bookworm: OpenCV 4.6; the list is what
# `ldd opencv4nodejs.node` names, contrib included). OpenBLAS (single-threaded) takes over
# libblas.so.3 from the reference BLAS that OpenCV links: the matcher's descriptor matching is
# one matrix product per pair, about 4x faster through it (instance-matching README).
runtime_packages() {
  case "$1" in
    instance-matching) echo "libopencv-core406 libopencv-imgproc406 libopencv-imgcodecs406 libopencv-features2d406 \
libopencv-calib3d406 libopencv-flann406 libopencv-dnn406 libopencv-highgui406 libopencv-ml406 \
libopencv-objdetect406 libopencv-photo406 libopencv-video406 libopencv-videoio406 libopencv-contrib406 \
libopenblas0-serial" ;;
    contextual-search|image-encoder|pipeline) echo "" ;;
    *) echo "setup: unknown service '$1'" >&2; exit 2 ;;
  esac
}

apt_install() {
  local missing=()
  for p in "$@"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  [ ${#missing[@]} -gt 0 ] || return 0
  echo "setup: installing ${missing[*]}"
  local SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  if [ "$mode" = machine ]; then
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
  else
    # In an image: only what is named, and a small layer.
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    $SUDO rm -rf /var/lib/apt/lists/*
  fi
}

# pgvector for Debian's PostgreSQL 15. Bookworm packages PostgreSQL but not pgvector; Debian
# packages pgvector from trixie on (for PostgreSQL 17), so its source comes from Debian's
# archive, pinned by checksum, and is built against bookworm's server headers. OPTFLAGS=""
# leaves out -march=native, so the library runs on any x86-64 the cluster is copied to.
PGVECTOR_VERSION=0.8.0
PGVECTOR_SHA256=867a2c328d4928a5a9d6f052cd3bc78c7d60228a9b914ad32aa3db88e9de27b0
PGVECTOR_URL="http://deb.debian.org/debian/pool/main/p/pgvector/pgvector_${PGVECTOR_VERSION}.orig.tar.gz"
install_pgvector() {
  apt_install postgresql-15 postgresql-server-dev-15 curl
  local pg_config=/usr/lib/postgresql/15/bin/pg_config
  if [ -f "$("$pg_config" --sharedir)/extension/vector--${PGVECTOR_VERSION}.sql" ]; then return 0; fi
  echo "setup: building pgvector ${PGVECTOR_VERSION} from Debian's source archive"
  local work; work="$(mktemp -d)"
  curl -fsSL --retry 3 -o "$work/pgvector.tar.gz" "$PGVECTOR_URL"
  echo "$PGVECTOR_SHA256  $work/pgvector.tar.gz" | sha256sum -c --quiet -
  tar -xzf "$work/pgvector.tar.gz" -C "$work"
  local SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  make -s -C "$work/pgvector-${PGVECTOR_VERSION}" PG_CONFIG="$pg_config" OPTFLAGS="" >/dev/null
  $SUDO make -s -C "$work/pgvector-${PGVECTOR_VERSION}" PG_CONFIG="$pg_config" install >/dev/null
  rm -rf "$work"
}

case "$mode" in
  --pgvector)
    install_pgvector
    ;;
  machine)
    apt_install libopencv-dev python3-opencv chromium libopenblas0-serial
    # The pgvector backend's tests run against a real server as well as PGlite.
    install_pgvector
    corepack enable
    pnpm install --frozen-lockfile
    # The default fingerprint model, from ../shared/models (or MODEL_URL + MODEL_SHA256), and its
    # whitening fit beside it: `apt-get download`s four Debian packages of images (no install) and
    # fits on them, a few minutes the first time. It needs current apt lists (stale ones name
    # package versions the mirror no longer has), so they are refreshed when a fit is to be made.
    if [ ! -f models/resnet18.pca.json ] || ! compgen -G "/var/lib/apt/lists/*_Packages*" >/dev/null; then
      SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
      $SUDO apt-get update -qq
    fi
    pnpm models
    ;;
  --image)
    # shellcheck disable=SC2046
    apt_install $(build_packages "$service")
    corepack enable
    # The root package ("doppel") brings typescript for the build; `pnpm deploy --prod` leaves it out.
    pnpm install --frozen-lockfile --filter doppel --filter "@doppel/$service..."
    ;;
  --runtime)
    # shellcheck disable=SC2046
    apt_install $(runtime_packages "$service")
    ;;
  *)
    echo "usage: bash scripts/setup.sh [--image SERVICE | --runtime SERVICE]" >&2
    exit 2
    ;;
esac
