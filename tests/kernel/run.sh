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
#   VCPUD_KERNEL_TIMEOUT (whole boot, s; default 1800),
#   VCPUD_SCENARIO_TIMEOUT (each scenario, s; default 300; a scenario that
#   runs longer by design says "# vcpud-timeout: SECS"),
#   VCPUD_QEMU_SMP (default 4), VCPUD_QEMU_MEM (MiB, default 512),
#   VCPUD_KERNEL_STALL (s of console silence that mean a frozen guest;
#   default 150: the guest prints a heartbeat every 30 s),
#   VCPUD_KERNEL_FREEZE (the harness's own test: freeze the first boot's
#   guest as this scenario starts; the scenario must run again in a second
#   boot and the final line must say so).
# Output: one line per result, the boot's time, and "kernel: N passed, N failed";
# exits non-zero on any failure. A boot that crashes, times out or never
# prints @@VCPUD-DONE fails the scenario it ended in, shows the end of its
# serial log, and the scenarios after it run in a fresh boot. A guest that
# freezes (TCG: no output at all, not even its heartbeat, for
# VCPUD_KERNEL_STALL s) runs the scenario it froze in once more in the fresh
# boot, and says so in a WARN line and in the final line.
# Files: $VCPUD_BUILD/kernel-test/{initramfs.cpio.zst (.gz without zstd),
# serial.log (first boot), serial.N.log (boot N), monitor.N.txt (QEMU's
# view of a frozen guest's CPUs)}.
set -u
here=$(cd "$(dirname "$0")" && pwd)
src=${VCPUD_SRC:-$(cd "$here/../.." && pwd)}
build=${VCPUD_BUILD:-$src/build}
case "$build" in /*) ;; *) build=$(pwd)/$build ;; esac
export VCPUD_SRC="$src" VCPUD_BUILD="$build"
out=$build/kernel-test
boot_timeout=${VCPUD_KERNEL_TIMEOUT:-1800}
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

stall=${VCPUD_KERNEL_STALL:-150}
freeze=${VCPUD_KERNEL_FREEZE:-}
if [ -n "$shell" ]; then
	log=$out/serial.log
	raw=$out/serial.raw
	append="console=ttyS0 quiet panic=-1 cgroup_no_v1=all vcpud.scenarios=$(echo "$scenarios" | tr ' ' ,) vcpud.timeout=$scn_timeout vcpud.shell=1"
	echo "kernel: booting $(cat "$kdir/version") (TCG, $smp CPUs, $mem MiB): $scenarios"
	qemu-system-x86_64 -accel tcg -m "$mem" -smp "$smp" -nographic -no-reboot -nic none \
		-kernel "$kernel_img" -initrd "$initrd" -append "$append" 9>&- 2>&1 | tee "$raw"
	tr -d '\r' < "$raw" > "$log"
	exit 0
fi

# monitor_dump N: what QEMU's monitor says of the guest's CPUs (halted, or
# where they run), into monitor.N.txt, before a frozen guest is killed
monitor_dump() {
	{ echo "info cpus"; echo "info registers -a"; } > "$mon.in"
	# without the monitor's line editing (its echo of each typed key)
	timeout 3 cat "$mon.out" 2>/dev/null | tr -d '\r' |
		sed 's/\x1b\[[0-9]*[A-Za-z]//g; s/^(qemu) .*\(info [a-z -]*\)$/(qemu) \1/' > "$out/monitor.$1.txt"
}

# boot N SCENARIOS: one boot of QEMU running SCENARIOS; its console in
# serial.log (the first boot) or serial.N.log. Sets ended (done, crash,
# timeout, or frozen: no console output, not even the guest's 30 s
# heartbeat, for $stall s), in_progress (the scenario it ended in, if any),
# qrc and log.
boot() {
	n=$1; shift
	if [ "$n" -eq 1 ]; then log=$out/serial.log; else log=$out/serial.$n.log; fi
	raw=${log%.log}.raw
	mon=$out/monitor
	rm -f "$mon.in" "$mon.out"
	mkfifo "$mon.in" "$mon.out" || setup_failed monitor "mkfifo $mon.in $mon.out failed"
	append="console=ttyS0 quiet panic=-1 cgroup_no_v1=all vcpud.scenarios=$(echo "$*" | tr ' ' ,) vcpud.timeout=$scn_timeout"
	[ -n "${VCPUD_CHURN:-}" ] && append="$append vcpud.churn=$VCPUD_CHURN"
	echo "kernel: booting $(cat "$kdir/version") (TCG, $smp CPUs, $mem MiB): $*"
	qemu-system-x86_64 -accel tcg -m "$mem" -smp "$smp" -nographic -no-reboot -nic none \
		-monitor "pipe:$mon" -kernel "$kernel_img" -initrd "$initrd" -append "$append" \
		< /dev/null > "$raw" 2>&1 9>&- &
	qpid=$!
	if [ -n "$show" ]; then
		# the guest's own lines: no kernel messages, no markers, no /init chatter
		tail -n +1 -f --pid="$qpid" "$raw" 2>/dev/null | tr -d '\r' |
			grep --line-buffered -v -e '@@VCPUD' -e '^\[ *[0-9.]*\]' -e '^=== ' -e '^   \[' &
		show_pid=$!
	fi
	# our own QEMU only, by PID, if it outlives the time limit or we are stopped
	trap 'kill -KILL $qpid 2>/dev/null; exit 130' INT TERM HUP
	ended=crash
	deadline=$(($(date +%s) + boot_timeout))
	size=-1
	quiet_since=$(date +%s)
	frozen_by_test=""
	while kill -0 "$qpid" 2>/dev/null; do
		t_now=$(date +%s)
		if [ "$t_now" -ge "$deadline" ]; then
			ended=timeout
			kill -KILL "$qpid" 2>/dev/null
			break
		fi
		s_now=$(stat -c %s "$raw" 2>/dev/null || echo 0)
		if [ "$s_now" != "$size" ]; then
			size=$s_now
			quiet_since=$t_now
		elif [ $((t_now - quiet_since)) -ge "$stall" ]; then
			ended=frozen
			monitor_dump "$n"
			kill -KILL "$qpid" 2>/dev/null
			break
		fi
		# the harness's own test: VCPUD_KERNEL_FREEZE=SCENARIO stops the
		# first boot's guest (QEMU's "stop") as SCENARIO starts
		if [ "$n" -eq 1 ] && [ -n "$freeze" ] && [ -z "$frozen_by_test" ] &&
			grep -q "^=== $freeze" "$raw" 2>/dev/null; then
			echo stop > "$mon.in"
			frozen_by_test=1
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
	rm -f "$mon.in" "$mon.out"
	tr -d '\r' < "$raw" > "$log"
	# marker lines may follow other output on the same line (no newline before them)
	markers=$(sed -n 's/.*\(@@VCPUD-[A-Z]*\)/\1/p' "$log")
	echo "$markers" | grep -q '^@@VCPUD-DONE' && ended=done
	in_progress=""
	if [ "$ended" != done ]; then
		last=$(sed -n 's/^=== \([^ ]*\)$/\1/p' "$log" | tail -n 1)
		if [ -n "$last" ] && ! echo "$markers" | grep -q "^@@VCPUD-SCENARIO $last "; then
			in_progress=$last
		fi
	fi
}

# --- boots: one for all the scenarios, unless the guest crashes or freezes ------
# A boot that ends before @@VCPUD-DONE fails the scenario it ended in; the
# scenarios after it run in a fresh boot. A frozen guest (a TCG guest whose
# clock or CPUs stop: no output, not even its heartbeat) is not a result of
# the scenario: that scenario runs once more in the fresh boot, and the final
# line says so.
t_boot=$(now)
: > "$out/results.txt"
rm -f "$out"/serial.[0-9]*.log "$out"/serial.[0-9]*.raw "$out"/monitor.[0-9]*.txt
remaining=$scenarios
finished=""
rerun=""
notes=""
crashed=""
n=0
while [ -n "$remaining" ]; do
	n=$((n + 1))
	boot "$n" $remaining
	[ "$n" -eq 1 ] && echo "$markers" | grep '^@@VCPUD-BOOT ' | sed 's/^@@VCPUD-BOOT /kernel: guest up: /'
	drop=""
	if [ "$ended" = frozen ] && [ -n "$in_progress" ]; then
		case " $rerun " in
		*" $in_progress "*) ;;
		*) drop=$in_progress ;;
		esac
	fi
	# this boot's results, but none of a scenario that runs again
	echo "$markers" | awk -v drop="$drop" '$1 == "@@VCPUD-TEST" && $2 != drop {
		s = $2; c = $3; r = $4; $1 = $2 = $3 = $4 = ""; sub(/^ +/, "")
		print r, s, c, $0 }' >> "$out/results.txt"
	done_here=$(echo "$markers" | sed -n 's/^@@VCPUD-SCENARIO \([^ ]*\) .*secs=\([0-9.]*\).*/\1 \2/p')
	finished="$finished
$done_here"
	[ "$ended" = done ] && break
	crashed=1
	log_end=$log
	case "$ended" in
	frozen) why="the guest froze: no console output for ${stall}s (QEMU's view: $out/monitor.$n.txt)" ;;
	timeout) why="QEMU killed after ${boot_timeout}s" ;;
	*) why="no @@VCPUD-DONE (QEMU exit $qrc)" ;;
	esac
	echo "kernel: boot $n ended${in_progress:+ in $in_progress}: $why; log: $log"
	echo "--- last 40 lines of $log"
	tail -n 40 "$log" | sed 's/^/| /'
	echo "---"
	# a guest that froze before any scenario began (TCG stopping in the
	# firmware or the kernel's early boot) is booted once more: nothing
	# of vcpud's ran, and the next boot usually does not freeze
	if [ "$ended" = frozen ] && [ -z "$in_progress" ] && [ -z "$done_here" ] &&
		[ -z "${boot_again:-}" ]; then
		boot_again=1
		notes="${notes:+$notes; }boot $n froze before any scenario began, and was booted again"
		continue
	fi
	# what is left: the scenarios not finished, after the one it ended in
	left=""
	for s in $remaining; do
		echo "$done_here" | grep -q "^$s " && continue
		[ "$s" = "$in_progress" ] && continue
		left="$left $s"
	done
	if [ -n "$drop" ]; then
		rerun="$rerun $drop"
		notes="${notes:+$notes; }the guest froze in $drop (boot $n), which ran again in a fresh boot"
		left="$drop$left"
	elif [ -n "$in_progress" ]; then
		result FAIL "$in_progress" boot "$why"
	else
		result FAIL boot "$ended" "$why"
	fi
	remaining=$(echo $left)
	# a boot that ran nothing (no scenario started or finished) is not
	# tried again: the next would not either
	if [ -z "$in_progress" ] && [ -z "$done_here" ]; then
		break
	fi
done
boot_secs=$(elapsed "$t_boot")

# --- results ----------------------------------------------------------------------
while read -r r s c d; do
	case "$r" in PASS|FAIL) result "$r" "$s" "$c" "$d" ;;
	*) result FAIL "$s" "$c" "bad marker: $r $d" ;; esac
done < "$out/results.txt"
times=""
for s in $scenarios; do
	secs=$(echo "$finished" | awk -v s="$s" '$1 == s { print $2; exit }')
	if [ -z "$secs" ]; then
		result FAIL "$s" finished "never finished (crash, hang or timeout)"
	else
		times="$times${times:+,} $s $secs s"
	fi
done
for l in "$out"/serial.log "$out"/serial.[0-9]*.log; do
	[ -f "$l" ] || continue
	if grep -q 'Kernel panic\|BUG:\|Oops' "$l"; then
		result FAIL boot kernel "kernel panic, BUG or oops in $l"
		if [ -z "$crashed" ]; then
			echo "--- last 40 lines of $l"
			tail -n 40 "$l" | sed 's/^/| /'
			echo "---"
		fi
	fi
done
echo "kernel: $n boot(s) took $boot_secs s${times:+ (${times# })}; log: $out/serial.log"
[ -n "$notes" ] && echo "kernel: WARN: $notes"
echo "kernel: $passed passed, $failed failed${notes:+ (WARN: $notes)}"
[ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
