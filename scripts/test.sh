#!/usr/bin/env bash
# Runs every test: installs what is missing, builds the guests and a release
# `disco` (system tests boot real firmware on it), then `swift test`.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
make -s -C guests
swift build -c release --product disco
# The C libuv baseline `disco bench transport` measures against.
swift build -c release --product uv-pingpong
export DISCO_BIN="$(swift build -c release --show-bin-path)/disco"
swift test "$@"
