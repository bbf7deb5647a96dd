#!/usr/bin/env bash
# One-time set-up of a machine for Doppel: system packages, pnpm, dependencies, default model.
# Idempotent: a second run only checks.
set -euo pipefail
cd "$(dirname "$0")/.."

export COREPACK_INTEGRITY_KEYS=0 COREPACK_ENABLE_DOWNLOAD_PROMPT=0
# onnxruntime-node's postinstall fetches GPU libraries we do not use; the CPU binaries ship inside.
export ONNXRUNTIME_NODE_INSTALL=skip
# Build opencv4nodejs against Debian's OpenCV instead of compiling OpenCV itself.
export OPENCV4NODEJS_DISABLE_AUTOBUILD=1 OPENCV_INCLUDE_DIR=/usr/include/opencv4 \
  OPENCV_LIB_DIR=/usr/lib/x86_64-linux-gnu OPENCV_BIN_DIR=/usr/bin
export JOBS="${JOBS:-max}"

APT_PACKAGES=(libopencv-dev python3-opencv chromium)
missing=()
for p in "${APT_PACKAGES[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

corepack enable
pnpm install --frozen-lockfile
# The default fingerprint model, from ../shared/models (or DOPPEL_MODEL_URL + DOPPEL_MODEL_SHA256).
pnpm models
