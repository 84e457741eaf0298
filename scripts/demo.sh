#!/usr/bin/env bash
# The embedded demo: builds Disco and boots Debian's OpenSBI + U-Boot in a VM.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
make -s -C guests
swift build -c release --product disco
exec "$(swift build -c release --show-bin-path)/disco" demo "$@"
