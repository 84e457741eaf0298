#!/usr/bin/env bash
# Installs the Debian packages Disco builds and tests with, if any is missing, and the
# one PyPI tool the deploy tests use.
set -euo pipefail
# libslirp-dev: the `--nic user` uplink (QEMU's user-mode network stack).
# prometheus: the metrics tests scrape a live cluster with it; systemd: systemd-analyze
# checks deploy/systemd; slurmctld, slurmd, slurm-client and munge: the Slurm test runs
# deploy/slurm's job on a Slurm of its own; iproute2 (ip netns) and util-linux (nsenter):
# hosts as network namespaces; python3-matplotlib: `disco experiment` draws its plots.
# debian-archive-keyring, cpio, xz-utils, fdisk (sfdisk): scripts/fetch-debian.sh fetches
# Debian's riscv64 kernel and busybox and builds the Linux test guest's initramfs and disks.
pkgs=(libuv1-dev libslirp-dev pkg-config opensbi u-boot-qemu qemu-system-misc qemu-utils device-tree-compiler mtools dosfstools e2fsprogs
      debian-archive-keyring cpio xz-utils fdisk
      prometheus systemd slurmctld slurmd slurm-client munge iproute2 util-linux python3-matplotlib)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi
# kubernetes-validate checks deploy/k8s against the Kubernetes schemas it ships (offline).
if ! command -v kubernetes-validate >/dev/null 2>&1; then
  echo "setup: installing kubernetes-validate (PyPI)"
  if ! python3 -m pip --version >/dev/null 2>&1; then
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq python3-pip >/dev/null
  fi
  python3 -m pip install -q kubernetes-validate==1.37.0 2>/dev/null \
    || $SUDO python3 -m pip install -q --break-system-packages kubernetes-validate==1.37.0
  hash -r
  command -v kubernetes-validate >/dev/null || { echo "setup: kubernetes-validate is not on PATH" >&2; exit 1; }
fi
