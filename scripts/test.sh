#!/usr/bin/env bash
# Runs every test: installs what is missing, builds the guests and a release
# `disco` (system tests boot real firmware on it), then `swift test`.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
make -s -C guests
# Debian's riscv64 kernel and busybox, and the Linux guest built from them (cached:
# downloads only the first time); LinuxDistroTests boot it. Offline on a first run, the
# other tests still run and LinuxDistroTests fail saying what is missing.
if build="$(./scripts/fetch-debian.sh | tail -1)"; then
  export DISCO_DEBIAN_BUILD="$build"
else
  echo "test.sh: scripts/fetch-debian.sh failed (above); LinuxDistroTests will fail" >&2
fi
swift build -c release --product disco
# The C libuv baseline `disco bench transport` measures against.
swift build -c release --product uv-pingpong
export DISCO_BIN="$(swift build -c release --show-bin-path)/disco"
swift test "$@"
