#!/usr/bin/env bash
# Runs every test: installs what is missing, builds the guests, then `swift test`.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
make -s -C guests
swift test "$@"
