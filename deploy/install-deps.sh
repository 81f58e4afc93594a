#!/bin/sh
# install-deps.sh - make sure the Debian packages in debian-packages.txt are
# installed. As root, installs what is missing with apt-get; otherwise prints
# the exact command and fails. Quiet when nothing is missing.
set -eu
here=$(dirname "$0")
pkgs=$(sed -e 's/#.*//' "$here/debian-packages.txt" | tr -s ' \t\n' ' ')
missing=""
for p in $pkgs; do
	st=$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)
	[ "$st" = installed ] || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
echo "install-deps: missing Debian packages:$missing"
if [ "$(id -u)" -ne 0 ]; then
	echo "install-deps: run as root:  apt-get update && apt-get install -y$missing" >&2
	exit 1
fi
export DEBIAN_FRONTEND=noninteractive
# the package lists may be absent on a fresh machine
apt-get update -qq || apt-get update
apt-get install -y -qq --no-install-recommends $missing
