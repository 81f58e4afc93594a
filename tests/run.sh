#!/bin/sh
# run.sh - run the test tiers and print one summary line:
#   "check: N passed, N failed"  (and exit non-zero on any failure)
#   "check: N passed, 0 failed, N skipped (libvirt: /dev/kvm is not usable)"
#   when something could not run: never a silent pass. Under CI=true (set
#   by .ci/run) a skip fails the run: CI's machine must run every tier.
#   "check: N passed, 0 failed (WARN: kernel: ...)" when a suite printed a
#   "NAME: WARN: TEXT" line: it passed, but something happened on the way
#   that its reader should know (the kernel tier's guest froze and a
#   scenario ran again in a fresh boot).
# Usage: tests/run.sh BUILD_DIR [unit|e2e|fleet|kernel|libvirt]...   (default: all five)
#
# unit    - every build/tests/test_* cmocka binary (no root, seconds)
# e2e     - every tests/e2e/*.sh: the real vcpud and vcpuctl on temp files
# fleet   - tests/fleet/run.sh: a real 3-member etcd cluster on loopback and
#           three vcpud hosts sharing tenant quotas through it (--fleet;
#           about a minute; SKIPs without the etcd binary)
# kernel  - tests/kernel/run.sh: scenarios in a QEMU-booted Debian kernel
# libvirt - tests/libvirt/run.sh: the libvirt backend and vcpud (--dry-run)
#           against a private libvirtd and real KVM domains (root, about a
#           minute; SKIPs without root, /dev/kvm, QEMU or libvirt)
# Each suite prints its own "N passed, N failed[, N skipped]" line; this
# script adds them. A suite says why it skipped in a line "NAME: SKIP:
# REASON" (a whole tier that cannot run) and cmocka lists the tests it
# skipped ("[  SKIPPED ] N test(s)").
set -u
build=${1:?usage: run.sh BUILD_DIR [tier...]}
shift
tiers=${*:-unit e2e fleet kernel libvirt}
here=$(cd "$(dirname "$0")" && pwd)
build=$(cd "$build" && pwd)
export VCPUD_BUILD="$build" VCPUD_SRC="$(dirname "$here")"
export CMOCKA_MESSAGE_OUTPUT=stdout
log=$(mktemp)
trap 'rm -f "$log"' EXIT
total_pass=0
total_fail=0
total_skip=0
failed_suites=""
skip_reasons=""
warnings=""

# add the counts a suite printed; a suite that printed none but failed
# counts as one failure so a crash can never look green
account() { # name rc
	p=0; f=0
	# cmocka: "[  PASSED  ] 7 test(s)."  "[  FAILED  ] 1 test(s), listed below:"
	cp=$(sed -n 's/^\[  PASSED  \] \([0-9]*\) test.*/\1/p' "$log" | awk '{s+=$1} END {print s+0}')
	cf=$(sed -n 's/^\[  FAILED  \] \([0-9]*\) test.*/\1/p' "$log" | awk '{s+=$1} END {print s+0}')
	# plain: "N passed, N failed", maybe after "NAME: " (a-z, 0-9, -:
	# "e2e-vms: 48 passed, 0 failed")
	pp=$(sed -n 's/^\([a-z0-9-]*: \)\{0,1\}\([0-9]*\) passed, \([0-9]*\) failed.*/\2/p' "$log" | awk '{s+=$1} END {print s+0}')
	pf=$(sed -n 's/^\([a-z0-9-]*: \)\{0,1\}\([0-9]*\) passed, \([0-9]*\) failed.*/\3/p' "$log" | awk '{s+=$1} END {print s+0}')
	p=$((cp + pp)); f=$((cf + pf))
	if [ "$2" -ne 0 ] && [ "$f" -eq 0 ]; then
		f=1
	fi
	if [ "$f" -ne 0 ]; then
		failed_suites="$failed_suites $1"
	fi
	total_pass=$((total_pass + p)); total_fail=$((total_fail + f))
	# skips: cmocka's "[  SKIPPED ] N test(s), listed below:", a plain
	# ", N skipped" after the counts, and "NAME: SKIP: REASON" lines (a
	# tier that did not run at all counts as one)
	cs=$(sed -n 's/^\[  SKIPPED \] \([0-9]*\) test.*/\1/p' "$log" | awk '{s+=$1} END {print s+0}')
	ps=$(sed -n 's/^\([a-z0-9-]*: \)\{0,1\}[0-9]* passed, [0-9]* failed, \([0-9]*\) skipped.*/\2/p' "$log" | awk '{s+=$1} END {print s+0}')
	why=$(sed -n 's/^[a-z0-9-]*: SKIP: \(.*\)/\1/p' "$log" | head -1)
	w=$(sed -n 's/^\([a-z0-9-]*\): WARN: \(.*\)/\1: \2/p' "$log" | head -1)
	[ -n "$w" ] && warnings="${warnings:+$warnings; }$w"
	s=$((cs + ps))
	[ -n "$why" ] && [ "$s" -eq 0 ] && s=1
	if [ "$s" -gt 0 ]; then
		total_skip=$((total_skip + s))
		[ -n "$why" ] || why="$s test(s)"
		skip_reasons="${skip_reasons:+$skip_reasons; }$1: $why"
	fi
}

run_suite() { # name command...
	name=$1; shift
	echo "=== $name"
	"$@" >"$log" 2>&1
	rc=$?
	cat "$log"
	account "$name" "$rc"
}

for tier in $tiers; do
	case "$tier" in
	unit)
		for t in "$build"/tests/test_*; do
			[ -x "$t" ] || continue
			run_suite "unit/$(basename "$t")" "$t"
		done ;;
	e2e)
		for t in "$here"/e2e/*.sh; do
			[ -f "$t" ] || continue
			[ "$(basename "$t")" = lib.sh ] && continue
			run_suite "e2e/$(basename "$t" .sh)" sh "$t"
		done ;;
	kernel)
		if [ -f "$here/kernel/run.sh" ]; then
			run_suite "kernel" sh "$here/kernel/run.sh"
		else
			run_suite "kernel" echo "kernel: SKIP: no $here/kernel/run.sh"
		fi ;;
	fleet)
		if [ -f "$here/fleet/run.sh" ]; then
			run_suite "fleet" sh "$here/fleet/run.sh" "$build"
		else
			run_suite "fleet" echo "fleet: SKIP: no $here/fleet/run.sh"
		fi ;;
	libvirt)
		if [ -f "$here/libvirt/run.sh" ]; then
			run_suite "libvirt" sh "$here/libvirt/run.sh" "$build"
		else
			run_suite "libvirt" echo "libvirt: SKIP: no $here/libvirt/run.sh"
		fi ;;
	*) echo "run.sh: unknown tier '$tier'" >&2; exit 2 ;;
	esac
done

echo
[ -n "$failed_suites" ] && echo "failed suites:$failed_suites"
if [ "$total_skip" -gt 0 ]; then
	if [ "${CI:-}" = true ]; then
		echo "CI runs every tier: what was skipped fails the run"
		total_fail=$((total_fail + total_skip))
	fi
	echo "check: $total_pass passed, $total_fail failed, $total_skip skipped ($skip_reasons)${warnings:+ (WARN: $warnings)}"
else
	echo "check: $total_pass passed, $total_fail failed${warnings:+ (WARN: $warnings)}"
fi
[ "$total_fail" -eq 0 ] && [ "$total_pass" -gt 0 ]
