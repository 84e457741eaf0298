#!/usr/bin/env bash
# Installs the Debian packages Disco builds and tests with, if any is missing.
set -euo pipefail
pkgs=(libuv1-dev pkg-config opensbi u-boot-qemu qemu-system-misc qemu-utils device-tree-compiler mtools dosfstools e2fsprogs)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi
