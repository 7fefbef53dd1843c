#!/usr/bin/env bash
# Builds the appliance kernel (bzImage) from Debian's linux-source-6.12 with
# `make tinyconfig` plus the fragments in this folder, and caches the result
# outside the checkout, keyed by the hash of the fragments, this script and the
# kernel source version, so a clean clone (CI) reuses a previous build.
#
#   kernel-config/build.sh OUT_BZIMAGE
#
# KERNEL_CACHE overrides the cache folder (default ~/.cache/gateway-appliance/kernel).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
out=${1:?usage: build.sh OUT_BZIMAGE}
tarball=/usr/src/linux-source-6.12.tar.xz
[ -f "$tarball" ] || { echo "kernel: $tarball missing (make deps installs linux-source-6.12)" >&2; exit 1; }

version=$(dpkg-query -W -f='${Version}' linux-source-6.12)
key=$( { echo "$version"; cat "$here"/*.config "$here/build.sh"; } | sha256sum | cut -c1-16)
cache=${KERNEL_CACHE:-$HOME/.cache/gateway-appliance/kernel}/$key

if [ -f "$cache/bzImage" ]; then
    mkdir -p "$(dirname "$out")"
    cp "$cache/bzImage" "$out"
    cp "$cache/config" "$(dirname "$out")/kernel.config"
    exit 0
fi

echo "kernel: building linux-source $version, config $key (about 10 minutes on 2 cores)"
work=$(mktemp -d "${TMPDIR:-/tmp}/gateway-kernel.XXXXXX")
trap 'rm -rf "$work"' EXIT
tar -C "$work" -xf "$tarball"
src="$work/linux-source-6.12"

make -C "$src" -s ARCH=x86_64 tinyconfig >/dev/null
"$src/scripts/kconfig/merge_config.sh" -m -O "$src" "$src/.config" "$here"/*.config >/dev/null
make -C "$src" -s ARCH=x86_64 olddefconfig >/dev/null

# Every option the fragments ask for must be in the final config: a silently
# dropped option (unmet dependency) is a missing driver on some hypervisor.
missing=0
while IFS= read -r line; do
    case "$line" in ''|'#'*) continue ;; esac
    opt=${line%%=*} val=${line#*=}
    if [ "$val" = n ]; then
        grep -q "^$opt=" "$src/.config" && { echo "kernel: $opt should be off" >&2; missing=1; }
    else
        grep -qxF "$line" "$src/.config" || { echo "kernel: $line did not survive olddefconfig (got: $(grep "^$opt=\|^# $opt " "$src/.config" || echo absent))" >&2; missing=1; }
    fi
done < <(cat "$here"/*.config)
[ "$missing" = 0 ] || exit 1
[ -n "${KERNEL_CONFIG_ONLY:-}" ] && { cp "$src/.config" "$KERNEL_CONFIG_ONLY"; exit 0; }

make -C "$src" -s ARCH=x86_64 -j"$(nproc)" bzImage KBUILD_BUILD_USER=gateway KBUILD_BUILD_HOST=build
mkdir -p "$cache.tmp"
cp "$src/arch/x86/boot/bzImage" "$cache.tmp/bzImage"
cp "$src/.config" "$cache.tmp/config"
rm -rf "$cache" && mv "$cache.tmp" "$cache"
mkdir -p "$(dirname "$out")"
cp "$cache/bzImage" "$out"
cp "$cache/config" "$(dirname "$out")/kernel.config"
echo "kernel: $(stat -c %s "$out") bytes -> $out"
