#!/usr/bin/env bash
# Fetches Debian 13 (trixie) riscv64's stock kernel and busybox-static with apt, and
# builds the Linux test guest from them: the kernel Image, an initramfs (busybox,
# guests/linux/init, the kernel's virtio and ext4 modules), an ext4 data disk, and a
# partitioned disk that U-Boot's distro boot starts Linux from (extlinux.conf).
#
# apt runs with a private configuration: its own sources list, lists, package cache
# and (empty) dpkg status under the cache folder, APT::Architecture=riscv64, checked
# against the host's Debian archive keyring. The host's apt state is not touched.
# The mirror is the one the host's own apt sources name (the repository names no
# host); DISCO_DEBIAN_MIRROR overrides it.
#
#   scripts/fetch-debian.sh            fetch what is missing, build what is stale
#   scripts/fetch-debian.sh --update   read the archive's index again (a newer kernel)
#
# Cache: ${DISCO_DEBIAN_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/disco/debian}; a second
# run downloads nothing. Built files: $CACHE/build (kernel.Image, initrd.gz, data.img,
# uboot.img, versions). Prints the build folder on its last line.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
CACHE="${DISCO_DEBIAN_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/disco/debian}"
SUITE="${DISCO_DEBIAN_SUITE:-trixie}"
KEYRING="${DISCO_DEBIAN_KEYRING:-/usr/share/keyrings/debian-archive-keyring.gpg}"
update=0
for a in "$@"; do
  case "$a" in
    --update) update=1 ;;
    -h|--help) sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "fetch-debian: unknown argument '$a' (try --help)" >&2; exit 2 ;;
  esac
done
die() { echo "fetch-debian: $*" >&2; exit 1; }
for tool in apt-get apt-cache dpkg-deb xz gzip cpio mkfs.ext4 sfdisk; do
  command -v "$tool" >/dev/null || die "'$tool' is missing (scripts/setup.sh installs it)"
done
[ -r "$KEYRING" ] || die "no Debian archive keyring at $KEYRING (apt-get install debian-archive-keyring)"

# The mirror: the first Debian archive URI in the host's apt sources (deb822 .sources
# files, then one-line sources.list entries), not the security archive.
find_mirror() {
  local f
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -r "$f" ] || continue
    awk 'tolower($1)=="uris:" { for (i = 2; i <= NF; i++) print $i }' "$f"
  done
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [ -r "$f" ] || continue
    awk '$1=="deb" { for (i = 2; i <= NF; i++) if ($i !~ /^\[/ && $i !~ /\]$/ && $i !~ /=/) { print $i; break } }' "$f"
  done
}
MIRROR="${DISCO_DEBIAN_MIRROR:-}"
if [ -z "$MIRROR" ]; then
  MIRROR="$(find_mirror | grep -E '^(https?|file)://' | grep -v -- '-security' | grep -E '/debian/?$' | head -1 || true)"
  [ -n "$MIRROR" ] || die "the host's apt sources name no Debian mirror (a URI ending in /debian); set DISCO_DEBIAN_MIRROR=http://<mirror>/debian"
fi
MIRROR="${MIRROR%/}"

APT="$CACHE/apt"
mkdir -p "$APT/lists/partial" "$APT/archives/partial" "$APT/etc/preferences.d" "$APT/etc/apt.conf.d" "$CACHE/debs"
[ -f "$APT/status" ] || : > "$APT/status"
cat > "$APT/sources.list.new" <<EOF
deb [signed-by=$KEYRING] $MIRROR $SUITE main
EOF
# A new mirror or suite invalidates the index.
if ! cmp -s "$APT/sources.list.new" "$APT/sources.list" 2>/dev/null; then
  mv "$APT/sources.list.new" "$APT/sources.list"; update=1
else
  rm "$APT/sources.list.new"
fi
aptopts=(
  -o "Dir::Etc::SourceList=$APT/sources.list" -o "Dir::Etc::SourceParts=$APT/empty.d"
  -o "Dir::Etc::Parts=$APT/etc/apt.conf.d" -o "Dir::Etc::PreferencesParts=$APT/etc/preferences.d"
  -o "Dir::Etc::Preferences=$APT/etc/preferences"
  -o "Dir::State=$APT" -o "Dir::State::Lists=$APT/lists" -o "Dir::State::status=$APT/status"
  -o "Dir::Cache=$APT" -o "Dir::Cache::Archives=$APT/archives"
  -o "Dir::Cache::pkgcache=$APT/pkgcache.bin" -o "Dir::Cache::srcpkgcache=$APT/srcpkgcache.bin"
  -o "APT::Architecture=riscv64" -o "APT::Architectures=riscv64"
  -o "Acquire::Languages=none" -o "APT::Sandbox::User=root" -o "Debug::NoLocking=1"
)
mkdir -p "$APT/empty.d"
if [ "$update" = 1 ] || ! ls "$APT/lists/"*_dists_"${SUITE}"_InRelease >/dev/null 2>&1; then
  echo "fetch-debian: reading $SUITE's riscv64 index from $MIRROR"
  if ! apt-get "${aptopts[@]}" -q update > "$APT/update.log" 2>&1 \
      || grep -qE '^(W|E): ' "$APT/update.log"; then
    cat "$APT/update.log" >&2
    die "apt could not read $MIRROR $SUITE (offline? a mirror without riscv64? a keyring without $SUITE's key?); see above"
  fi
fi

# The current kernel: the metapackage's dependency.
KPKG="$(apt-cache "${aptopts[@]}" depends linux-image-riscv64 2>/dev/null \
  | awk '$1=="Depends:" && $2 ~ /^linux-image-[0-9].*-riscv64$/ { print $2; exit }')"
[ -n "$KPKG" ] || die "the $SUITE index names no linux-image-riscv64 dependency (run with --update)"

# Downloads a package's current version into $CACHE/debs unless it is there already.
fetch() { # package -> prints the .deb's path
  local pkg="$1" ver file
  ver="$(apt-cache "${aptopts[@]}" show "$pkg" 2>/dev/null | awk '$1=="Version:" { print $2; exit }')"
  [ -n "$ver" ] || die "the $SUITE index has no $pkg for riscv64"
  file="$(ls "$CACHE/debs/${pkg}_${ver//:/%3a}_riscv64.deb" 2>/dev/null || true)"
  if [ -z "$file" ]; then
    echo "fetch-debian: downloading $pkg $ver" >&2
    ( cd "$APT/archives/partial" && apt-get "${aptopts[@]}" -q download "$pkg=$ver" >&2 ) \
      || die "apt could not download $pkg $ver (offline?)"
    mv "$APT/archives/partial/${pkg}_"*"_riscv64.deb" "$CACHE/debs/"
    file="$(ls "$CACHE/debs/${pkg}_${ver//:/%3a}_riscv64.deb")"
  fi
  echo "$file"
}
KDEB="$(fetch "$KPKG")"
BDEB="$(fetch busybox-static)"

# Build, when a package, the init script, the module list or this script changed.
OUT="$CACHE/build"
inputs="$(sha256sum "$KDEB" "$BDEB" "$repo/guests/linux/init" "$repo/guests/linux/modules" "$repo/guests/linux/extlinux.conf" "$0" | awk '{ print $1 }' | sha256sum | cut -c1-16)"
if [ -f "$OUT/stamp" ] && [ "$(cat "$OUT/stamp")" = "$inputs" ]; then
  echo "fetch-debian: up to date ($(basename "$KDEB"), $(basename "$BDEB"))"
  echo "$OUT"; exit 0
fi
echo "fetch-debian: building the guest from $(basename "$KDEB") and $(basename "$BDEB")"
rm -rf "$OUT"; mkdir -p "$OUT"
work="$(mktemp -d "$CACHE/work.XXXXXX")"
trap 'rm -rf "$work"' EXIT
dpkg-deb -x "$KDEB" "$work/k"
dpkg-deb -x "$BDEB" "$work/b"
kver="$(ls "$work/k/usr/lib/modules" | head -1)"
[ -f "$work/k/boot/vmlinux-$kver" ] || die "$(basename "$KDEB") has no /boot/vmlinux-$kver"
cp "$work/k/boot/vmlinux-$kver" "$OUT/kernel.Image"

# Modules: guests/linux/modules's list, each after the modules its .modinfo "depends="
# names (the package ships no modules.dep: depmod makes it on installation).
mdir="$work/k/usr/lib/modules/$kver"
mods="$work/mods"; mkdir -p "$mods"
declare -A seen=()
order=()
add_module() { # name
  local name="$1" path dep
  [ -z "${seen[$name]:-}" ] || return 0
  seen[$name]=1
  path="$(find "$mdir/kernel" -name "${name//_/[-_]}.ko*" | head -1)"
  if [ -z "$path" ]; then
    grep -qE "/${name//_/[-_]}\.ko" "$mdir/modules.builtin" && return 0
    die "$kver has no module $name (guests/linux/modules)"
  fi
  case "$path" in
    *.ko.xz) xz -dc "$path" > "$mods/$name.ko" ;;
    *.ko.zst) zstd -qdc "$path" > "$mods/$name.ko" ;;
    *.ko.gz) gzip -dc "$path" > "$mods/$name.ko" ;;
    *) cp "$path" "$mods/$name.ko" ;;
  esac
  for dep in $(tr '\0' '\n' < "$mods/$name.ko" | sed -n 's/^depends=//p' | tr ',' ' '); do
    add_module "${dep//-/_}"
  done
  order+=("$name")
}
for m in $(grep -v '^#' "$repo/guests/linux/modules"); do add_module "$m"; done

root="$work/root"
mkdir -p "$root"/{bin,dev,proc,sys,mnt,tmp,lib/modules}
bb="$(ls "$work/b/usr/bin/busybox" "$work/b/bin/busybox" 2>/dev/null | head -1 || true)"
[ -n "$bb" ] || die "$(basename "$BDEB") has no busybox"
cp "$bb" "$root/bin/busybox"
cp "$repo/guests/linux/init" "$root/init"
chmod 755 "$root/init" "$root/bin/busybox"
: > "$root/lib/modules/load-order"
for name in "${order[@]}"; do
  cp "$mods/$name.ko" "$root/lib/modules/"
  echo "$name" >> "$root/lib/modules/load-order"
done
( cd "$root" && find . | LC_ALL=C sort | cpio --quiet -o -H newc --owner 0:0 ) | gzip -9n > "$OUT/initrd.gz"

# The workload's inputs, on the data disk (whole-disk ext4, /dev/vda).
data="$work/data"
mkdir -p "$data/input"
echo "disco-linux-data" > "$data/label"
for w in 1 2 3 4; do # 4000 pseudo-random numbers a worker, the same every build
  awk -v w="$w" 'BEGIN { x = w; for (i = 0; i < 4000; i++) { x = (x * 75 + 74) % 65537; print x } }' > "$data/input/$w"
done
truncate -s 16M "$OUT/data.img"
mkfs.ext4 -q -F -E root_owner=0:0 -d "$data" "$OUT/data.img"

# U-Boot distro boot: an MBR disk with one bootable ext4 partition (at 1 MiB) holding
# extlinux/extlinux.conf, the Image, the initramfs and the same workload inputs.
boot="$work/boot"
mkdir -p "$boot/extlinux"
cp -r "$data/." "$boot/"
cp "$OUT/kernel.Image" "$boot/Image"
cp "$OUT/initrd.gz" "$boot/initrd.gz"
cp "$repo/guests/linux/extlinux.conf" "$boot/extlinux/extlinux.conf"
bootmb=$(( ($(du -sm "$boot" | cut -f1) * 5 / 4) + 16 ))
truncate -s $(( (bootmb + 1) * 1024 * 1024 )) "$work/part"
mkfs.ext4 -q -F -E root_owner=0:0 -d "$boot" "$work/part" "${bootmb}M"
truncate -s $(( (bootmb + 1) * 1024 * 1024 )) "$OUT/uboot.img"
printf 'label: dos\nlabel-id: 0x4469736b\nstart=2048, type=83, bootable\n' | sfdisk -q "$OUT/uboot.img" >/dev/null
dd if="$work/part" of="$OUT/uboot.img" bs=1M seek=1 count="$bootmb" conv=notrunc status=none

printf 'kernel %s %s\nbusybox %s\n' "$KPKG" "$(basename "$KDEB")" "$(basename "$BDEB")" > "$OUT/versions"
echo "$inputs" > "$OUT/stamp"
echo "fetch-debian: built $OUT (kernel $kver; modules: $(tr '\n' ' ' < "$root/lib/modules/load-order"))"
echo "$OUT"
