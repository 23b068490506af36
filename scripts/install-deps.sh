#!/usr/bin/env bash
# Installs the Debian 12 packages Vigil builds, runs and tests with, when any is missing.
# Uses sudo when not root. Every dependency is a Debian package: nothing is downloaded otherwise.
set -euo pipefail

PACKAGES=(
  build-essential cmake g++ git pkg-config ca-certificates
  libxgboost-dev nlohmann-json3-dev libcli11-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  libboost-dev libsqlite3-dev libsimdjson-dev sqlite3 libgoogle-perftools-dev
  clang-14 clang-tidy-14 libclang-rt-14-dev
  nats-server libnats-dev
  libopenmpi-dev openmpi-bin
  libssl-dev libsodium-dev openssl
  jq curl wrk prometheus python3 python3-numpy python3-xgboost
)

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; fi
echo "install-deps: installing ${missing[*]}"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
