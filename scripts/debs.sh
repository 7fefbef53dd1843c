#!/usr/bin/env bash
# Downloads the Debian packages whose files go into the image, once.
#   scripts/debs.sh DIR PACKAGE...
set -euo pipefail
dir=$1; shift
stamp="$dir/.packages"
[ -f "$stamp" ] && [ "$(cat "$stamp")" = "$*" ] && exit 0
rm -rf "$dir" && mkdir -p "$dir"
cd "$dir"
# As root, apt warns that it cannot drop privileges to download: it need not.
if ! apt-get download -q -o APT::Sandbox::User=root "$@" >/dev/null; then
    # A machine whose package lists are stale or gone.
    sudo=; [ "$(id -u)" = 0 ] || sudo=sudo
    $sudo apt-get update -qq
    apt-get download -q -o APT::Sandbox::User=root "$@" >/dev/null
fi
echo "$*" > .packages
