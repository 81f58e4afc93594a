# lib.sh - helpers for the real-kernel scenarios (sourced, busybox sh).
#
# A scenario is tests/kernel/scenarios/NN-name.sh; the guest's /init runs it
# with this file at $VCPUD_SRC/tests/kernel/lib.sh. Results are marker lines on
# the serial console, which tests/kernel/run.sh on the host parses:
#   @@VCPUD-TEST <scenario> <case> PASS|FAIL <detail>
# Case names are one word. Each result is also appended to $VCPUD_RESULTS so
# /init can tell a scenario that died without reporting.
#
# Environment set by /init: VCPUD_BUILD (binaries: vcpud, vcpuctl,
# fixtures/), VCPUD_SRC (tests/, policies/), VCPUD_RESULTS, CG (the cgroup2
# mount, /sys/fs/cgroup).

: "${CG:=/sys/fs/cgroup}"
: "${VCPUD_BUILD:=/vcpud/build}"
: "${VCPUD_SRC:=/vcpud}"
: "${VCPUD_RESULTS:=/tmp/vcpud-results}"
FAKEVM="$VCPUD_BUILD/fixtures/fakevm"
T_SCENARIO=${T_SCENARIO:-$(basename "$0" .sh)}
T_PASSED=0
T_FAILED=0
T_PIDS=""	# background processes to kill in t_cleanup

# --- results ---------------------------------------------------------------

_t_mark() { # PASS|FAIL case detail...
	_r=$1; _c=$2; shift 2
	case "$_c" in *[[:space:]]*|"") _c=bad-case-name ;; esac
	echo "@@VCPUD-TEST $T_SCENARIO $_c $_r $*"
	echo "$T_SCENARIO $_c $_r" >> "$VCPUD_RESULTS"
	if [ "$_r" = PASS ]; then T_PASSED=$((T_PASSED + 1)); else T_FAILED=$((T_FAILED + 1)); fi
}

pass() { _t_mark PASS "$@"; }	# pass CASE [DETAIL...]
fail() { _t_mark FAIL "$@"; }	# fail CASE DETAIL...

# note TEXT: a readable line in the log that is not a result
note() { echo "   [$T_SCENARIO] $*"; }

# check CASE DETAIL CMD...: PASS if CMD succeeds
check() {
	_cc=$1; _cd=$2; shift 2
	if _co=$("$@" 2>&1); then pass "$_cc" "$_cd"; else fail "$_cc" "$_cd: $* -> $_co"; fi
}

# expect_eq CASE GOT WANT [DETAIL]
expect_eq() {
	if [ "$2" = "$3" ]; then pass "$1" "${4:-$3}"; else fail "$1" "${4:-} got '$2', want '$3'"; fi
}

# expect_range CASE VALUE LO HI [DETAIL]: LO <= VALUE <= HI (decimals)
expect_range() {
	if awk -v v="$2" -v lo="$3" -v hi="$4" 'BEGIN { exit !(v + 0 >= lo + 0 && v + 0 <= hi + 0) }'; then
		pass "$1" "${5:-} $2 in [$3, $4]"
	else
		fail "$1" "${5:-} $2 not in [$3, $4]"
	fi
}

# abort_scenario DETAIL: record a failure and stop the scenario (cleanup runs)
abort_scenario() {
	fail setup "$*"
	# what the scenario's vcpud said (the serial log is all CI keeps)
	if [ -n "${VCPUD_LOG:-}" ] && [ -s "${VCPUD_LOG:-}" ]; then
		note "vcpud status: $(ctl status 2>&1 | tr '\n' ';' | head -c 600)"
		tail -n 40 "$VCPUD_LOG" | grep -v ' debug: ' | tail -n 25 | sed "s/^/   [$T_SCENARIO] vcpud: /"
	fi
	exit 1
}

# --- cgroupfs --------------------------------------------------------------

# Forks are slow under TCG (about 0.1 s each with busy vCPUs), so these
# helpers write and read with shell builtins, without command substitution.
CG_ERRFILE=/tmp/.cg-write-error.$$

# cg_write FILE VALUE: write like `echo VALUE > FILE`; if the kernel refuses,
# fails with the error text (e.g. "Operation not supported") in CG_ERR
cg_write() {
	CG_ERR=""
	{ echo "$2" > "$1"; } 2> "$CG_ERRFILE" && return 0
	read -r CG_ERR < "$CG_ERRFILE"
	CG_ERR=${CG_ERR##*: }
	return 1
}

# cg_read FILE: the first line of FILE in CG_VAL (fails if it cannot be read)
cg_read() {
	CG_VAL=""
	read -r CG_VAL < "$1" 2>/dev/null && return 0
	[ -r "$1" ] && [ -n "$CG_VAL" ]
}

# cg_try CASE FILE VALUE: PASS if the write succeeds
cg_try() {
	if cg_write "$2" "$3"; then pass "$1" "'$3' > ${2#$CG/}"
	else fail "$1" "'$3' > ${2#$CG/}: $CG_ERR"; fi
}

# cg_refuse CASE FILE VALUE ERRTEXT: PASS if the write fails with ERRTEXT
cg_refuse() {
	if cg_write "$2" "$3"; then
		fail "$1" "'$3' > ${2#$CG/} succeeded, want $4"
	elif [ "$CG_ERR" = "$4" ]; then
		pass "$1" "'$3' > ${2#$CG/}: $CG_ERR"
	else
		fail "$1" "'$3' > ${2#$CG/}: got '$CG_ERR', want '$4'"
	fi
}

# cg_has FILE WORD: FILE's first line has WORD among its words
cg_has() {
	cg_read "$1" || return 1
	case " $CG_VAL " in *" $2 "*) return 0 ;; esac
	return 1
}

# cg_rmtree DIR: remove a cgroup subtree, deepest first (its tasks must be gone)
cg_rmtree() {
	[ -d "$1" ] || return 0
	find "$1" -depth -type d | while read -r _d; do rmdir "$_d" 2>/dev/null; done
	[ ! -d "$1" ]
}

# --- waiting ---------------------------------------------------------------

# wait_for SECS CMD...: poll CMD every 0.1 s until it succeeds or SECS pass
wait_for() {
	_deadline=$(( $(cut -d. -f1 /proc/uptime) + $1 )); shift
	while ! "$@" >/dev/null 2>&1; do
		[ "$(cut -d. -f1 /proc/uptime)" -lt "$_deadline" ] || return 1
		sleep 0.1
	done
}

# wait_for_line SECS FILE PATTERN: until FILE has a line matching PATTERN
wait_for_line() { wait_for "$1" grep -q "$3" "$2"; }

# --- fake VMs ----------------------------------------------------------------

# fakevm_start OUT ARGS...: start fakevm in the background with stdout in OUT,
# wait until it is up; sets FAKEVM_PID. Killed by t_cleanup.
fakevm_start() {
	_out=$1; shift
	"$FAKEVM" "$@" > "$_out" 2>&1 &
	T_PIDS="$T_PIDS $!"
	if ! wait_for 20 grep -q '^fakevm ready' "$_out"; then
		echo "fakevm $* did not start: $(cat "$_out")"
		return 1
	fi
	FAKEVM_PID=$(sed -n 's/^fakevm pid=\([0-9]*\).*/\1/p' "$_out")
}

# fakevm_tid OUT N: the TID of vCPU N of the fakevm whose output is OUT
fakevm_tid() { sed -n "s/^vcpu $2 tid=\\([0-9]*\\)\$/\\1/p" "$1"; }

# fakevm_emu_tids OUT: TIDs of its non-vCPU threads (not the main thread)
fakevm_emu_tids() { sed -n 's/^emu tid=\([0-9]*\) .*/\1/p' "$1"; }

# --- schedstat ---------------------------------------------------------------

# sched_fractions SECS TID...: for each TID, one line "TID RUN DELAY" where RUN
# and DELAY are the thread's cpu time and run_delay over SECS of wall time
# (from /proc/TID/schedstat: cpu_ns run_delay_ns timeslices). Wall time comes
# from /proc/uptime (10 ms resolution).
sched_fractions() {
	_secs=$1; shift
	_a=$(_sched_snapshot "$@")
	sleep "$_secs"
	_b=$(_sched_snapshot "$@")
	printf '%s\n%s\n' "$_a" "$_b" | awk '
		$1 == "@" { w[n++] = $2; next }
		n == 1 { r[$1] = $2; d[$1] = $3; next }
		{
			wall = (w[1] - w[0]) * 1e9
			if ($2 == "x" || r[$1] == "x" || wall <= 0) { print $1, "nan", "nan"; next }
			printf "%s %.3f %.3f\n", $1, ($2 - r[$1]) / wall, ($3 - d[$1]) / wall
		}'
}

# _sched_snapshot TID...: "@ UPTIME" then "TID CPU_NS DELAY_NS" per TID, read
# by one process so the clock and the counters are read close together
_sched_snapshot() {
	awk 'BEGIN {
		getline u < "/proc/uptime"; split(u, f, " "); print "@", f[1]
		for (i = 1; i < ARGC; i++) {
			p = "/proc/" ARGV[i] "/schedstat"
			if ((getline l < p) > 0) { split(l, s, " "); print ARGV[i], s[1], s[2] }
			else print ARGV[i], "x", "x"
			close(p)
		}
	}' "$@"
}

# sched_run TID FRACTIONS / sched_delay TID FRACTIONS: pick one figure from
# sched_fractions' output
sched_run() { echo "$2" | awk -v t="$1" '$1 == t { print $2 }'; }
sched_delay() { echo "$2" | awk -v t="$1" '$1 == t { print $3 }'; }

# --- vcpud ---------------------------------------------------------------------

# one database, socket and log per scenario (/tmp outlives a scenario)
VCPUD_DB=/tmp/vcpud-$T_SCENARIO.db
VCPUD_SOCK=/tmp/vcpud-$T_SCENARIO.sock
VCPUD_LOG=/tmp/vcpud-$T_SCENARIO.log

# ctl ARGS...: vcpuctl on the scenario's daemon
ctl() { vcpuctl --socket "$VCPUD_SOCK" "$@"; }

# vcpud_start POLICY [ARGS...]: start vcpud in the background (found its
# cgroup2 mount itself unless ARGS say otherwise); sets VCPUD_PID, waits
# until it answers. Killed by t_cleanup.
vcpud_start() {
	_pol=$1; shift
	vcpud --foreground --db "$VCPUD_DB" --socket "$VCPUD_SOCK" --policy "$_pol" \
		--log-level debug "$@" >> "$VCPUD_LOG" 2>&1 &
	VCPUD_PID=$!
	T_PIDS="$T_PIDS $VCPUD_PID"
	wait_for 20 ctl status || { note "vcpud: $(tail -5 "$VCPUD_LOG")"; return 1; }
}

# vcpud_stop: SIGTERM and wait
vcpud_stop() {
	kill -TERM "$VCPUD_PID" 2>/dev/null
	wait "$VCPUD_PID" 2>/dev/null
}

# status_field NAME: a field of `vcpuctl --json status` (number or string)
status_field() { ctl --json status | sed -n "s/.*\"$1\": *\"*\([^\",]*\).*/\1/p"; }

# vcpud_wait_ticks N: until the daemon has run N more ticks (at most 20 s).
# A status without a tick count (the socket busy, a failed vcpuctl) is
# asked again; if it never gives one, that is said and the wait fails
# (counting from nothing would return at once).
vcpud_wait_ticks() {
	_t0=
	for _try in 1 2 3 4 5; do
		_t0=$(status_field ticks)
		case $_t0 in '' | *[!0-9]*) _t0=; sleep 0.2 ;; *) break ;; esac
	done
	if [ -z "$_t0" ]; then
		echo "vcpud_wait_ticks: no tick count in vcpuctl status: $(ctl --json status 2>&1 | head -c 400)" >&2
		return 1
	fi
	wait_for 20 sh -c "[ \$(vcpuctl --socket $VCPUD_SOCK --json status | sed -n 's/.*\"ticks\": *\([0-9]*\).*/\1/p') -ge $((_t0 + $1)) ]"
}

# top_field VM COLUMN: one column of VM's row in `vcpuctl top --once`
# (1 VM, 2 TENANT, 3 CLASS, 4 VCPUS, 5 USAGE%, 6 STEAL%, 7 CAP, 8 THROTTLE, 9 STATE)
top_field() { ctl top --once | awk -v vm="$1" -v c="$2" '$1 == vm { print $c }'; }

# pinned_vm_start NAME MASK [ARGS...]: a fakevm under `taskset MASK` with a
# --report file /tmp/NAME.rep; sets VMPID. (Attaching to a cpuset cgroup
# resets affinity to the cgroup's CPUs: pin the cgroup too.)
pinned_vm_start() {
	_n=$1; _m=$2; shift 2
	taskset "$_m" "$FAKEVM" --vcpus 2 --name "$_n" --report "/tmp/$_n.rep" "$@" > "/tmp/$_n.out" 2>&1 &
	VMPID=$!
	T_PIDS="$T_PIDS $VMPID"
	wait_for 20 grep -q '^fakevm ready' "/tmp/$_n.out"
}

# iters PID REPORT: total iterations of a fakevm's vCPUs so far (its
# SIGUSR1 report, written to REPORT)
iters() {
	rm -f "$2"
	kill -USR1 "$1"
	wait_for 5 test -s "$2"
	awk '{ for (i = 1; i <= NF; i++) if ($i ~ /^iters=/) { sub("iters=", "", $i); s += $i } } END { printf "%.0f\n", s }' "$2"
}

# throughput PID REPORT SECS: a fakevm's iterations per second over SECS
throughput() {
	_a=$(iters "$1" "$2"); _t0=$(cut -d' ' -f1 /proc/uptime)
	sleep "$3"
	_b=$(iters "$1" "$2"); _t1=$(cut -d' ' -f1 /proc/uptime)
	awk -v a="$_a" -v b="$_b" -v t0="$_t0" -v t1="$_t1" 'BEGIN { printf "%.0f\n", (b - a) / (t1 - t0) }'
}

# --- cleanup ---------------------------------------------------------------

# t_cleanup: kill what fakevm_start started (also runs on exit, via the trap)
t_cleanup() {
	for _p in $T_PIDS; do kill -KILL "$_p" 2>/dev/null; done
	for _p in $T_PIDS; do wait "$_p" 2>/dev/null; done
	T_PIDS=""
	rm -f "$CG_ERRFILE"
}

# t_done: end of a scenario: one summary line; exit status says if all passed
t_done() {
	t_cleanup
	note "done: $T_PASSED PASS, $T_FAILED FAIL"
	[ "$T_FAILED" -eq 0 ]
}

trap 't_cleanup' EXIT
trap 'exit 143' TERM INT
