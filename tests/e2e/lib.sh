# lib.sh - helpers for the end-to-end tests: start and stop the real vcpud on
# temp files, count checks, print "e2e-NAME: N passed, N failed" at the end.
# Sourced by tests/e2e/*.sh (which must set SUITE first).
set -u
SRC=${VCPUD_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
BUILD=${VCPUD_BUILD:-$SRC/build}
VCPUD=$BUILD/vcpud
VCPUCTL=$BUILD/vcpuctl
TMP=$(mktemp -d /tmp/vcpud-e2e.XXXXXX)
chmod 755 "$TMP"
DB=$TMP/vcpud.db
SOCK=$TMP/vcpud.sock
LOG=$TMP/vcpud.log
POLICY=$TMP/policy.yaml
cp "$SRC/policies/default.yaml" "$POLICY"
# The host vcpud sees: a fixture topology (tests/fixtures/topology/, 16 CPUs
# in 2 NUMA nodes by default; TOPOLOGY=name to change) with this machine's
# real /proc, so placement figures do not depend on the machine running
# the tests while fake VMs are still real processes.
HOST=$TMP/host
mkdir -p "$HOST"
ln -s "$SRC/tests/fixtures/topology/${TOPOLOGY:-2n-4c-smt2}/sys" "$HOST/sys"
ln -s /proc "$HOST/proc"
PASS=0
FAIL=0
DAEMON_PID=

ok() { PASS=$((PASS + 1)); echo "ok - $*"; }
bad() { FAIL=$((FAIL + 1)); echo "FAIL - $*"; }

# check DESC CMD...: the command must succeed
check() { d=$1; shift; if "$@"; then ok "$d"; else bad "$d"; fi; }

# expect_rc RC DESC CMD...: run CMD, its exit status must be RC; output in $OUT
expect_rc() {
	want=$1 d=$2; shift 2
	OUT=$("$@" 2>&1)
	rc=$?
	if [ "$rc" -eq "$want" ]; then ok "$d (exit $rc)"; else bad "$d: exit $rc, wanted $want: $OUT"; fi
}

wait_for() { # DESC TRIES CMD...: CMD must succeed within TRIES x 0.1 s
	d=$1 t=$2; shift 2
	i=0
	while ! "$@" >/dev/null 2>&1; do
		i=$((i + 1)); [ $i -gt "$t" ] && { bad "$d"; return 1; }
		sleep 0.1
	done
	ok "$d"
}
# shows VM TEXT: `vm show --json VM` has TEXT
shows() { ctl --json vm show "$1" | grep -q "$2"; }

# contains DESC NEEDLE: $OUT must contain NEEDLE
contains() {
	case "$OUT" in
	*"$2"*) ok "$1" ;;
	*) bad "$1: output lacks '$2': $OUT" ;;
	esac
}

ctl() { "$VCPUCTL" --socket "$SOCK" "$@"; }

# log_soon PATTERN: the daemon's log has a line matching PATTERN (grep)
# within 2 s (a change is placed shortly after the API call returns)
log_soon() {
	_n=0
	while ! grep -q "$1" "$LOG"; do
		_n=$((_n + 1)); [ $_n -gt 40 ] && return 1
		sleep 0.05
	done
}

# Fake VMs (tests/fixtures/fakevm): start_fake OUTFILE ARGS... starts one,
# waits for "fakevm ready" (5 s at most) and sets FPID; cleanup_fakes ends
# every one started so. spawn_fake and wait_fake are its two halves, to
# start many at once and then wait for each.
FAKEVM=$BUILD/fixtures/fakevm
VMPIDS=""
spawn_fake() { # OUTFILE ARGS...: sets FPID
	_out=$1; shift
	"$FAKEVM" "$@" >"$_out" 2>&1 &
	FPID=$!
	VMPIDS="$VMPIDS $FPID"
}
wait_fake() { # OUTFILE [TENTHS]: until "fakevm ready" in it (default 5 s)
	_n=0
	while ! grep -q '^fakevm ready' "$1" 2>/dev/null; do
		_n=$((_n + 1)); [ $_n -gt $((${2:-50} * 2)) ] && return 1
		sleep 0.05
	done
}
start_fake() { spawn_fake "$@" && wait_fake "$1"; }
# start_fakes N VCPUS PREFIX [TENTHS]: N idle fake VMs of VCPUS vCPUs started
# at once, their output in PREFIX0 .. PREFIX(N-1), then waited for (each
# TENTHS / 10 s at most, default 5 s); one that does not start is named on
# stdout with the start of its output, and the return is 1
start_fakes() {
	_k=0
	while [ $_k -lt "$1" ]; do
		spawn_fake "$3$_k" --vcpus "$2" --idle
		_k=$((_k + 1))
	done
	_k=0
	while [ $_k -lt "$1" ]; do
		wait_fake "$3$_k" "${4:-50}" ||
			{ echo "fakevm $_k of $1 did not start: $(head -c 300 "$3$_k")"; return 1; }
		_k=$((_k + 1))
	done
}
# register_fakes N VCPUS TENANT: start N idle fake VMs of VCPUS vCPUs and
# register them one by one as vm-0 .. vm-(N-1) of TENANT (for benchmarks;
# no other fake VM may have been started before)
register_fakes() {
	start_fakes "$1" "$2" "$TMP/fake." || return 1
	_k=0
	for _p in $VMPIDS; do
		ctl vm register "vm-$_k" --tenant "$3" --pid "$_p" >/dev/null ||
			{ echo "register vm-$_k failed"; return 1; }
		_k=$((_k + 1))
	done
}
# bench_daemon N LEVEL: for the shell benchmarks, a dry-run vcpud without
# /proc discovery or libvirt at log level LEVEL, with N idle 1-vCPU fake
# VMs registered to tenant "bench"; all of it stops when the script exits
bench_daemon() {
	trap 'cleanup_fakes; stop_daemon; rm -rf "$TMP"' EXIT
	sed -i 's/^  proc: true/  proc: false/' "$POLICY"
	start_daemon --no-libvirt --log-level "$2" || return 1
	ctl tenant create bench --vcpus $(($1 * 2)) >/dev/null || return 1
	register_fakes "$1" 1 bench
}
cleanup_fakes() { for p in $VMPIDS; do kill -KILL "$p" 2>/dev/null; wait "$p" 2>/dev/null; done; VMPIDS=""; }

start_daemon() {
	"$VCPUD" --foreground --db "$DB" --socket "$SOCK" --policy "$POLICY" \
		--cgroup-root "$TMP/cgroup" --host-root "$HOST" --dry-run --log-level debug "$@" \
		>>"$LOG" 2>&1 &
	DAEMON_PID=$!
	_n=0
	while [ $_n -lt 100 ]; do
		[ -S "$SOCK" ] && ctl tenant list >/dev/null 2>&1 && return 0
		kill -0 "$DAEMON_PID" 2>/dev/null || { echo "vcpud died at start:"; tail -20 "$LOG"; return 1; }
		sleep 0.05
		_n=$((_n + 1))
	done
	echo "vcpud did not come up in 5 s"; tail -20 "$LOG"
	return 1
}

stop_daemon() { # [SIGNAL]
	[ -n "$DAEMON_PID" ] || return 0
	kill "-${1:-TERM}" "$DAEMON_PID" 2>/dev/null
	wait "$DAEMON_PID" 2>/dev/null
	rc=$?
	DAEMON_PID=
	return $rc
}

finish() {
	stop_daemon
	if [ "$FAIL" -ne 0 ]; then
		# the API's reads are logged at debug, one a poll: left out, so
		# that the tail shows what the daemon did
		echo "--- vcpud log (tail, without the API's GETs)"
		grep -v ' GET /v1/[^ ]* -> 200$' "$LOG" | tail -40
	fi
	rm -rf "$TMP"
	echo "$SUITE: $PASS passed, $FAIL failed"
	[ "$FAIL" -eq 0 ]
}
trap 'stop_daemon; rm -rf "$TMP"' INT TERM
