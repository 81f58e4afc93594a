#!/bin/sh
# run.sh - the real-kernel test tier: boot a Debian kernel under QEMU/TCG with
# an initramfs holding the current build, run the scenarios in
# tests/kernel/scenarios/ inside it (one boot for all), and read their results
# from the serial console.
#
# Usage: tests/kernel/run.sh [--shell | --show] [SCENARIO...]
#   SCENARIO: a name in scenarios/ with or without .sh, or a unique prefix
#   (without one: all of them but bench-*, which run only when named)
#   ("01"); default: all of them, in order.
#   --shell: interactive; a shell in the guest after the scenarios.
#   --show: print what the scenarios print, live (`make demo` uses it); the
#   marker lines stay out of it and are summed up at the end as usual.
# Env: VCPUD_BUILD (default <repo>/build), VCPUD_SRC (default <repo>),
#   VCPUD_KERNEL_DIR (kernel cache, see fetch-kernel.sh),
#   VCPUD_KERNEL_TIMEOUT (whole boot, s; default 900),
#   VCPUD_SCENARIO_TIMEOUT (each scenario, s; default 300),
#   VCPUD_QEMU_SMP (default 4), VCPUD_QEMU_MEM (MiB, default 512).
# Output: one line per result, the boot's time, and "kernel: N passed, N failed";
# exits non-zero on any failure. A boot that crashes, hangs or never prints
# @@VCPUD-DONE is a failure and the end of its serial log is shown.
# Files: $VCPUD_BUILD/kernel-test/{initramfs.cpio.zst (.gz without zstd),serial.log}.
set -u
here=$(cd "$(dirname "$0")" && pwd)
src=${VCPUD_SRC:-$(cd "$here/../.." && pwd)}
build=${VCPUD_BUILD:-$src/build}
case "$build" in /*) ;; *) build=$(pwd)/$build ;; esac
export VCPUD_SRC="$src" VCPUD_BUILD="$build"
out=$build/kernel-test
boot_timeout=${VCPUD_KERNEL_TIMEOUT:-900}
scn_timeout=${VCPUD_SCENARIO_TIMEOUT:-300}
smp=${VCPUD_QEMU_SMP:-4}
mem=${VCPUD_QEMU_MEM:-512}

passed=0
failed=0
shell=""

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }
result() { # PASS|FAIL scenario case detail
	echo "$1 $2 $3${4:+ - $4}"
	if [ "$1" = PASS ]; then passed=$((passed + 1)); else failed=$((failed + 1)); fi
}
finish() {
	echo "kernel: $passed passed, $failed failed"
	[ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
	exit $?
}
setup_failed() { # case detail
	result FAIL setup "$1" "$2"
	finish
}

# --- which scenarios -----------------------------------------------------------
show=""
case "${1:-}" in
--shell) shell=1; shift ;;
--show) show=1; shift ;;
esac
all=$(cd "$here/scenarios" && ls ./*.sh 2>/dev/null | sed 's|^\./||; s|\.sh$||' | LC_ALL=C sort)
scenarios=""
if [ $# -eq 0 ]; then
	# bench-* scenarios print figures and run only when named
	scenarios=$(echo "$all" | grep -v '^bench-' || true)
else
	for a in "$@"; do
		a=${a##*/}
		a=${a%.sh}
		m=$(echo "$all" | grep -x -F "$a" || echo "$all" | grep "^$a" || true)
		case "$(echo "$m" | grep -c .)" in
		1) scenarios="$scenarios $m" ;;
		0) echo "run.sh: no scenario '$a' in $here/scenarios" >&2; exit 2 ;;
		*) echo "run.sh: '$a' matches several scenarios:" $m >&2; exit 2 ;;
		esac
	done
fi
scenarios=$(echo $scenarios)
[ -n "$scenarios" ] || setup_failed scenarios "no scenarios in $here/scenarios"

# --- kernel, initramfs, QEMU -------------------------------------------------------
mkdir -p "$out"
# one run at a time per build dir: runs share these files, and two TCG guests
# on a small host would also skew each other's timings
exec 9>"$out/.lock"
if command -v flock >/dev/null && ! flock -n 9; then
	echo "kernel: waiting for another kernel run on $out"
	flock -w $((boot_timeout + 120)) 9 || setup_failed lock "another run holds $out/.lock"
fi
command -v qemu-system-x86_64 >/dev/null ||
	setup_failed qemu "no qemu-system-x86_64 (Debian package qemu-system-x86)"
t=$(now)
kernel_img=$(sh "$here/fetch-kernel.sh" 2>"$out/fetch.log") ||
	setup_failed kernel "fetch-kernel.sh failed: $(tail -n 3 "$out/fetch.log")"
kdir=$(dirname "$kernel_img")
grep -q '^fetch-kernel: kernel ' "$out/fetch.log" &&
	echo "kernel: fetched $(cat "$kdir/version") into $kdir in $(elapsed "$t") s"
t=$(now)
if command -v zstd >/dev/null; then initrd=$out/initramfs.cpio.zst; else initrd=$out/initramfs.cpio.gz; fi
initrd=$(sh "$here/mkinitramfs.sh" "$initrd" 2>"$out/mkinitramfs.log") ||
	setup_failed initramfs "mkinitramfs.sh failed: $(tail -n 3 "$out/mkinitramfs.log")"
echo "kernel: initramfs in $(elapsed "$t") s, $(sed -n 's/^mkinitramfs: //p' "$out/mkinitramfs.log")"
[ -x "$build/fixtures/fakevm" ] ||
	echo "kernel: warning: no $build/fixtures/fakevm; run make all first"

log=$out/serial.log
raw=$out/serial.raw
append="console=ttyS0 quiet panic=-1 cgroup_no_v1=all vcpud.scenarios=$(echo "$scenarios" | tr ' ' ,) vcpud.timeout=$scn_timeout"
[ -n "$shell" ] && append="$append vcpud.shell=1"
[ -n "${VCPUD_CHURN:-}" ] && append="$append vcpud.churn=$VCPUD_CHURN"
set -- qemu-system-x86_64 -accel tcg -m "$mem" -smp "$smp" -nographic -no-reboot -nic none \
	-kernel "$kernel_img" -initrd "$initrd" -append "$append"
echo "kernel: booting $(cat "$kdir/version") (TCG, $smp CPUs, $mem MiB): $scenarios"

if [ -n "$shell" ]; then
	"$@" 9>&- 2>&1 | tee "$raw"
	tr -d '\r' < "$raw" > "$log"
	exit 0
fi

t_boot=$(now)
"$@" < /dev/null > "$raw" 2>&1 9>&- &
qpid=$!
if [ -n "$show" ]; then
	# the guest's own lines: no kernel messages, no markers, no /init chatter
	tail -n +1 -f --pid="$qpid" "$raw" 2>/dev/null | tr -d '\r' |
		grep --line-buffered -v -e '@@VCPUD' -e '^\[ *[0-9.]*\]' -e '^=== ' -e '^   \[' &
	show_pid=$!
fi
# our own QEMU only, by PID, if it outlives the time limit or we are stopped
trap 'kill -KILL $qpid 2>/dev/null; exit 130' INT TERM HUP
timed_out=""
deadline=$(($(date +%s) + boot_timeout))
while kill -0 "$qpid" 2>/dev/null; do
	if [ "$(date +%s)" -ge "$deadline" ]; then
		timed_out=1
		kill -KILL "$qpid" 2>/dev/null
		break
	fi
	# powered off but still up after a few seconds: stop waiting for it
	if grep -q '^@@VCPUD-DONE' "$raw" 2>/dev/null; then
		i=0
		while kill -0 "$qpid" 2>/dev/null && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
		kill -KILL "$qpid" 2>/dev/null
		break
	fi
	sleep 0.2
done
wait "$qpid" 2>/dev/null
qrc=$?
# let the live output finish before the results are printed under it
[ -n "$show" ] && wait "$show_pid" 2>/dev/null
trap - INT TERM HUP
boot_secs=$(elapsed "$t_boot")
tr -d '\r' < "$raw" > "$log"

# --- results ----------------------------------------------------------------------
# marker lines may follow other output on the same line (no newline before them)
markers=$(sed -n 's/.*\(@@VCPUD-[A-Z]*\)/\1/p' "$log")
echo "$markers" | grep '^@@VCPUD-BOOT ' | sed 's/^@@VCPUD-BOOT /kernel: guest up: /'
echo "$markers" | awk '$1 == "@@VCPUD-TEST" {
	s = $2; c = $3; r = $4; $1 = $2 = $3 = $4 = ""; sub(/^ +/, "")
	print r, s, c, $0 }' > "$out/results.txt"
while read -r r s c d; do
	case "$r" in PASS|FAIL) result "$r" "$s" "$c" "$d" ;;
	*) result FAIL "$s" "$c" "bad marker: $r $d" ;; esac
done < "$out/results.txt"

times=""
for s in $scenarios; do
	line=$(echo "$markers" | grep "^@@VCPUD-SCENARIO $s ")
	if [ -z "$line" ]; then
		result FAIL "$s" finished "never finished (crash, hang or timeout)"
	else
		times="$times${times:+,} $s $(echo "$line" | sed -n 's/.*secs=\([0-9.]*\).*/\1/p') s"
	fi
done
crashed=""
if [ -n "$timed_out" ]; then
	result FAIL boot timeout "QEMU killed after ${boot_timeout}s"
	crashed=1
elif ! echo "$markers" | grep -q '^@@VCPUD-DONE'; then
	result FAIL boot done "no @@VCPUD-DONE (QEMU exit $qrc)"
	crashed=1
fi
if [ -n "$crashed" ] || grep -q 'Kernel panic\|BUG:\|Oops' "$log"; then
	[ -n "$crashed" ] || result FAIL boot kernel "kernel panic, BUG or oops in the log"
	echo "--- last 40 lines of $log"
	tail -n 40 "$log" | sed 's/^/| /'
	echo "---"
fi
echo "kernel: boot took $boot_secs s${times:+ (${times# })}; log: $log"
finish
