#!/bin/sh
# install-deps.sh - make sure the Debian packages in debian-packages.txt are
# installed, and promtool, etcd and etcdctl. As root, installs what is missing
# with apt-get; otherwise prints the exact command and fails. Quiet when
# nothing is missing.
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

# from_deb "PKG..." PROG...: unpack usr/bin/PROG... from Debian's packages
# PKG... into /usr/local/bin, without installing the packages (apt-get
# download fetches the .deb files alone; dpkg-deb -x runs no maintainer
# script). As root only; otherwise prints the exact steps and fails.
from_deb() {
	debs=$1
	shift
	echo "install-deps: $* missing: unpacking it from Debian's $debs (.deb)"
	if [ "$(id -u)" -ne 0 ]; then
		bins=""
		for p; do bins="$bins x/usr/bin/$p"; done
		echo "install-deps: run as root:  cd \"\$(mktemp -d)\" &&" \
			"apt-get download $debs &&" \
			"for d in *.deb; do dpkg-deb -x \"\$d\" x; done &&" \
			"install -m 755$bins /usr/local/bin/" >&2
		exit 1
	fi
	tmp=$(mktemp -d)
	chmod 755 "$tmp"
	# the package lists may be absent or stale on a fresh machine
	if ! (cd "$tmp" && apt-get download -qq $debs 2>/dev/null); then
		apt-get update -qq || apt-get update
		(cd "$tmp" && apt-get download -qq $debs)
	fi
	for d in "$tmp"/*.deb; do
		dpkg-deb -x "$d" "$tmp/x"
	done
	for p; do
		install -m 755 "$tmp/x/usr/bin/$p" "/usr/local/bin/$p"
	done
	rm -rf "$tmp"
}

# promtool (the tests check GET /metrics with `promtool check metrics`),
# unpacked from Debian's prometheus package into /usr/local/bin, not the
# package installed: that would start a Prometheus server on this machine
if ! command -v promtool >/dev/null; then
	from_deb prometheus promtool
fi

# etcd and etcdctl (tests/fleet starts its own 3-member cluster on loopback
# ports, tests/fleet/etcd.sh), unpacked from Debian's etcd-server and
# etcd-client packages, not the packages installed: etcd-server's postinst
# adds an etcd system user and runs `update-rc.d etcd defaults` and
# `invoke-rc.d etcd start` (sysvinit), `deb-systemd-helper enable
# etcd.service` and starts it (systemd): an etcd member would run on the
# host now and at every boot, serving 127.0.0.1:2379 and 2380
if ! command -v etcd >/dev/null || ! command -v etcdctl >/dev/null; then
	from_deb "etcd-server etcd-client" etcd etcdctl
fi
