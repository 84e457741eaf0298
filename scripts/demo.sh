#!/usr/bin/env bash
# The embedded demo: builds Disco, runs the SMP guest on 4 VCPUs spread over a local
# cluster of 2 node processes, then boots Debian's OpenSBI + U-Boot on 2 VCPUs over
# 2 nodes to the U-Boot prompt (Ctrl-A x quits).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
make -s -C guests
swift build -c release --product disco
# The C libuv baseline `disco bench transport` measures against.
swift build -c release --product uv-pingpong
bin="$(swift build -c release --show-bin-path)/disco"
"$bin" run --nodes 2 --smp 4 --bios none --kernel guests/build/smp.elf
exec "$bin" demo --nodes 2 "$@"
