#!/usr/bin/env bash
# The embedded demo: builds Disco, runs the SMP guest on 4 VCPUs spread over a local
# cluster of 2 node processes, then Disco itself: 4 VMs of Debian's OpenSBI + U-Boot
# side by side on a local cluster of 2 nodes, sharing one base disk through the global
# buffer cache and pinging each other over the virtual Ethernet; it prints the memory
# sharing saved and how to attach to each VM's console (disco console), and runs until
# Ctrl-C. (`disco demo --nodes 2` alone boots one U-Boot VM to its prompt.)
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
make -s -C guests
swift build -c release --product disco
# The C libuv baseline `disco bench transport` measures against.
swift build -c release --product uv-pingpong
bin="$(swift build -c release --show-bin-path)/disco"
"$bin" run --nodes 2 --smp 4 --bios none --kernel guests/build/smp.elf
exec "$bin" demo --vms 4 --nodes 2 "$@"
