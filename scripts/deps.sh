#!/usr/bin/env bash
# Installs the Debian packages the build and the tests need, once: quiet when
# everything is present; `apt-get update` only when something is missing.
set -euo pipefail

packages=(
    # kernel build
    linux-source-6.12 flex bison bc libelf-dev libssl-dev make gcc xz-utils
    # image build (rootless: no loop devices, no mounts)
    e2fsprogs dosfstools mtools fdisk syslinux syslinux-common syslinux-efi
    # boot tests and `make run`
    qemu-system-x86 qemu-utils ovmf
    # an ovf-env.xml CD for the OVF environment test (vSphere's iso transport)
    xorriso
    # service tests: real clients
    curl squid openssl dnsmasq-base
    # bench-cache: nginx's proxy_cache beside squid
    nginx-light
    # network and time tests: DHCP and NTP peers in namespaces the tests create
    # (Debian's policy-rc.d in containers keeps chronyd from starting on install)
    iproute2 chrony faketime
    # diagnostics tests: a real SFTP client, age to decrypt the report,
    # tcpdump to read the capture
    openssh-client age tcpdump
)

missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q '^install ok installed$' || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

sudo=
[ "$(id -u)" = 0 ] || sudo=sudo
echo "deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
# Debian 12's qemu-system-x86 (7.2) conflicts with a newer qemu-utils from
# backports: install qemu-utils of the same version in the same command, or
# apt removes it (and qemu-img with it).
install=() system=no utils=no
for p in "${missing[@]}"; do
    case "$p" in
        qemu-system-x86) system=yes ;;
        qemu-utils) utils=yes ;;
        *) install+=("$p") ;;
    esac
done
if [ $system = yes ]; then
    v=$(apt-cache policy qemu-system-x86 | awk '/Candidate:/ {print $2}')
    install+=(--allow-downgrades qemu-system-x86 "qemu-utils=$v")
elif [ $utils = yes ]; then
    install+=(qemu-utils)
fi
$sudo apt-get install -y -qq "${install[@]}" >/dev/null
echo "deps: done"
