#!/bin/sh
# install-deps.sh - make sure the Debian packages in debian-packages.txt are
# installed, and promtool. As root, installs what is missing with apt-get;
# otherwise prints the exact command and fails. Quiet when nothing is missing.
set -eu
here=$(dirname "$0")
pkgs=$(sed -e 's/#.*//' "$here/debian-packages.txt" | tr -s ' \t\n' ' ')
missing=""
for p in $pkgs; do
	st=$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)
	[ "$st" = installed ] || missing="$missing $p"
done
export DEBIAN_FRONTEND=noninteractive
if [ -n "$missing" ]; then
	echo "install-deps: missing Debian packages:$missing"
	if [ "$(id -u)" -ne 0 ]; then
		echo "install-deps: run as root:  apt-get update && apt-get install -y$missing" >&2
		exit 1
	fi
	# the package lists may be absent on a fresh machine
	apt-get update -qq || apt-get update
	apt-get install -y -qq --no-install-recommends $missing
fi

# promtool (the tests check GET /metrics with `promtool check metrics`),
# unpacked from Debian's prometheus package into /usr/local/bin, not the
# package installed: that would start a Prometheus server on this machine
if ! command -v promtool >/dev/null; then
	echo "install-deps: promtool missing: unpacking it from Debian's prometheus package"
	if [ "$(id -u)" -ne 0 ]; then
		echo "install-deps: run as root (apt-get download prometheus, then" \
			"dpkg-deb -x, /usr/bin/promtool to /usr/local/bin)" >&2
		exit 1
	fi
	tmp=$(mktemp -d)
	chmod 755 "$tmp"
	if ! (cd "$tmp" && apt-get download -qq prometheus 2>/dev/null); then
		apt-get update -qq || apt-get update
		(cd "$tmp" && apt-get download -qq prometheus)
	fi
	dpkg-deb -x "$tmp"/prometheus_*.deb "$tmp/x"
	install -m 755 "$tmp/x/usr/bin/promtool" /usr/local/bin/promtool
	rm -rf "$tmp"
fi
