#!/bin/sh
# run.sh - the libvirt backend against a real libvirtd and real QEMU/KVM
# domains on this machine; prints "libvirt: N passed, N failed".
#
#   sh tests/libvirt/run.sh [BUILD_DIR]     (default $VCPUD_BUILD or ./build)
#   SANITIZE=address,undefined sh tests/libvirt/run.sh build-asan  (a
#                                           sanitizer build, as made by make)
#
# Needs root, /dev/kvm, libvirtd + virsh (Debian: libvirt-daemon,
# libvirt-daemon-driver-qemu, libvirt-clients), qemu-system-x86, unshare
# and nsenter, cc and the libvirt/jansson headers, and BUILD_DIR/libvcpud.a
# (make). It installs nothing: when something is missing it says what and
# SKIPs (exit 0).
#
# It starts a private libvirtd (tests/libvirt/privd.sh: own mount namespace,
# no host cgroups, nothing written to the host's /etc/libvirt, /run, /var),
# builds tests/libvirt/probe.c against libvcpud.a and runs it: three no-disk
# KVM domains (two with tenant metadata), listing, QMP thread ids, hot-plug,
# vcpu.N.delay against schedstat, virsh destroy, a libvirtd restart. Then
# it checks that the host was left alone, destroys what it started, kills
# its libvirtd by PID and removes its temp dir. About 20 s.
set -u
here=$(cd "$(dirname "$0")" && pwd)
src=$(dirname "$(dirname "$here")")
build=${1:-${VCPUD_BUILD:-$src/build}}
t_start=$(date +%s)

skip() {
	echo "libvirt: SKIP: $*"
	echo "libvirt: 0 passed, 0 failed"
	exit 0
}

[ "$(id -u)" -eq 0 ] || skip "needs root (a private libvirtd in its own mount namespace)"
for c in libvirtd virsh qemu-system-x86_64 unshare nsenter cc pkg-config; do
	command -v "$c" >/dev/null 2>&1 || skip "$c is not installed"
done
[ -r /dev/kvm ] && [ -w /dev/kvm ] || skip "/dev/kvm is not usable"
pkg-config --exists libvirt libvirt-qemu jansson || skip "libvirt-dev / libjansson-dev missing"
if [ ! -f "$build/libvcpud.a" ]; then
	echo "libvirt: $build/libvcpud.a is missing: run make first"
	echo "libvirt: 0 passed, 1 failed"
	exit 1
fi

passed=0
failed=0
ok() { echo "ok - $*"; passed=$((passed + 1)); }
nok() { echo "FAIL - $*"; failed=$((failed + 1)); }

tmp=$(mktemp -d /tmp/vcpud-libvirt.XXXXXX)
lv=$tmp/lv
cleanup() {
	if [ -f "$lv/libvirtd.pid" ]; then
		u=$(sh "$here/privd.sh" uri "$lv")
		for d in vcpud-probe-a vcpud-probe-b vcpud-probe-c; do
			virsh -q -c "$u" destroy "$d" >/dev/null 2>&1
			virsh -q -c "$u" undefine "$d" >/dev/null 2>&1
		done
	fi
	sh "$here/privd.sh" cleanup "$lv"
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# what the host has before, to check it is the same after
host_state() {
	for p in /etc/libvirt/qemu.conf /etc/libvirt/libvirtd.conf /run/libvirt \
		 /var/lib/libvirt /var/log/libvirt /var/cache/libvirt /run/libvirtd.pid; do
		[ -e "$p" ] && echo "exists $p"
	done
	ls -1 /etc/libvirt 2>/dev/null | sed 's/^/etc-libvirt /'
	# read-only look at the host's cgroup trees: no machine.slice, no qemu
	find /sys/fs/cgroup -maxdepth 4 \( -name 'machine*' -o -name '*qemu*' \) 2>/dev/null
}
host_before=$(host_state)

CFLAGS_PROBE="-std=gnu11 -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
-Wformat=2 -Wvla -Werror -O2 -g -D_GNU_SOURCE"
# a BUILD_DIR made with SANITIZE=... needs the same for the probe
[ -n "${SANITIZE:-}" ] && CFLAGS_PROBE="$CFLAGS_PROBE -fsanitize=$SANITIZE -fno-omit-frame-pointer"
# shellcheck disable=SC2086
if cc $CFLAGS_PROBE -I"$src/include" $(pkg-config --cflags libvirt libvirt-qemu jansson) \
	-o "$tmp/probe" "$here/probe.c" "$build/libvcpud.a" \
	$(pkg-config --libs libvirt libvirt-qemu jansson) -lm -lpthread 2> "$tmp/cc.log"; then
	ok "probe built against $build/libvcpud.a"
else
	cat "$tmp/cc.log"
	nok "probe built"
	echo "libvirt: $passed passed, $failed failed"
	exit 1
fi

ms() { echo $(($(date +%s%N) / 1000000)); }
t0=$(ms)
if sh "$here/privd.sh" start "$lv"; then
	ok "private libvirtd started in $(($(ms) - t0)) ms (pid $(cat "$lv/libvirtd.pid"))"
else
	nok "private libvirtd started"
	echo "libvirt: $passed passed, $failed failed"
	exit 1
fi
uri=$(sh "$here/privd.sh" uri "$lv")

timeout 180 "$tmp/probe" "$uri" "$here/privd.sh" "$lv" > "$tmp/probe.out" 2> "$tmp/probe.err"
rc=$?
cat "$tmp/probe.out"
p=$(grep -c '^ok - ' "$tmp/probe.out")
f=$(grep -c '^FAIL - ' "$tmp/probe.out")
passed=$((passed + p))
failed=$((failed + f))
if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
	nok "probe exited with status $rc"
	tail -20 "$tmp/probe.err"
fi
grep -q '^probe: ' "$tmp/probe.out" || nok "probe ran to its end"

echo "# the backend's log:"
sed 's/^/#   /' "$tmp/probe.err"
n=$(grep -c 'lost the connection' "$tmp/probe.err")
[ "$n" -eq 1 ] && ok "the lost connection was logged once" ||
	nok "the lost connection was logged $n times (want once)"
n=$(grep -c 'reconnected to' "$tmp/probe.err")
[ "$n" -eq 1 ] && ok "the reconnection was logged once" ||
	nok "the reconnection was logged $n times (want once)"

# everything of ours goes: domains, QEMUs, libvirtd, the namespace holder
qemus=$(cat "$lv"/run-up/libvirt/qemu/vcpud-probe-*.pid 2>/dev/null)
holder=$(cat "$lv/holder.pid" 2>/dev/null)
lvd=$(cat "$lv/libvirtd.pid" 2>/dev/null)
cleanup
trap - EXIT
left=""
for pid in $qemus $holder $lvd; do
	# a zombie (not yet reaped by init) is gone
	st=$(sed 's/.*) \(.\).*/\1/' "/proc/$pid/stat" 2>/dev/null) || continue
	[ "$st" != Z ] && left="$left $pid($(cat "/proc/$pid/comm" 2>/dev/null))"
done
[ -z "$left" ] && ok "cleanup: no QEMU, libvirtd or namespace holder of ours left" ||
	nok "cleanup: processes left:$left"
[ ! -e "$tmp" ] && ok "cleanup: temp dir removed" || nok "cleanup: $tmp still there"
host_after=$(host_state)
if [ "$host_before" = "$host_after" ]; then
	ok "the host's /etc/libvirt, /run, /var and cgroup trees are as they were"
else
	nok "the host changed:"
	printf '%s\n' "$host_before" > "/tmp/vcpud-libvirt.$$.before"
	printf '%s\n' "$host_after" | diff -u "/tmp/vcpud-libvirt.$$.before" - | sed 's/^/#   /'
	rm -f "/tmp/vcpud-libvirt.$$.before"
fi

echo "# $(($(date +%s) - t_start)) s in all"
echo "libvirt: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
