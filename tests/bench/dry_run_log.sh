#!/bin/sh
# dry_run_log.sh - what a steady dry-run daemon costs in log and would-be
# writes: the real vcpud (--dry-run, --log-level info, a temp cgroup root,
# the 64-CPU fixture topology, this machine's /proc) with N idle 1-vCPU
# fakevm processes registered by PID (default 50). Once the registrations
# have settled it prints the log bytes and lines written over SECS seconds
# (default 60), the would-be writes of each tick over that time, as
# /v1/health reports them, and the daemon's CPU time. LOG_LEVEL=debug to
# see what the debug log costs. Usage: tests/bench/dry_run_log.sh [N] [SECS]
set -u
N=${1:-50}
SECS=${2:-60}
SUITE=bench-dry-run-log
TOPOLOGY=${TOPOLOGY:-64c-nosmt} # room for hundreds of 1-vCPU VMs
. "$(dirname "$0")/../e2e/lib.sh"
bench_daemon "$N" "${LOG_LEVEL:-info}" || exit 1
field() { sed -n "s/.*\"$1\": \([0-9]*\).*/\1/p"; }
# let the registrations' ticks pass
sleep 5
cpu() { awk '{ print $14 + $15 }' "/proc/$DAEMON_PID/stat"; }
b0=$(wc -c < "$LOG") l0=$(wc -l < "$LOG") c0=$(cpu)
t0=$(ctl --json status | field ticks)
end=$(($(date +%s) + SECS)) last=$t0 writes=""
while [ "$(date +%s)" -lt "$end" ]; do
	st=$(ctl --json status)
	t=$(echo "$st" | field ticks)
	if [ "$t" != "$last" ]; then
		last=$t
		writes="$writes $(echo "$st" | field last_tick_writes)"
	fi
	sleep 0.2
done
b1=$(wc -c < "$LOG") l1=$(wc -l < "$LOG") c1=$(cpu)
stats() { echo "$1" | tr ' ' '\n' | grep . | sort -n | awk '{ v[NR] = $1 } END { printf "min %d, median %d, max %d", v[1], v[int((NR + 1) / 2)], v[NR] }'; }
echo "steady dry-run with $N VMs (1 vCPU each), $SECS s, $((last - t0)) ticks:"
echo "  log: $((b1 - b0)) bytes, $((l1 - l0)) lines"
echo "  would-be writes per tick: $(stats "$writes")"
echo "  daemon CPU: $((c1 - c0)) clock ticks ($(getconf CLK_TCK)/s)"
if [ -n "${SHOW_LOG:-}" ]; then tail -n +"$((l0 + 1))" "$LOG" | head -n "$SHOW_LOG"; fi
