#!/bin/sh
# tick_sql.sh - how many SQL statements, and how long, a steady tick takes
# with N registered VMs (default 100): the real vcpud (--dry-run, a temp
# cgroup root, the 64-CPU fixture topology, this machine's /proc) and N
# idle 1-vCPU fakevm processes registered by PID. Prints the figures that
# /v1/health reports for the last tick over 10 ticks, once the VMs are all
# placed. Usage: tests/bench/tick_sql.sh [N]   (run by `make bench`)
set -u
N=${1:-100}
SUITE=bench-tick-sql
TOPOLOGY=${TOPOLOGY:-64c-nosmt} # room for hundreds of 1-vCPU VMs
. "$(dirname "$0")/../e2e/lib.sh"
bench_daemon "$N" warn || exit 1
field() { sed -n "s/.*\"$1\": \([0-9]*\).*/\1/p"; }
# let the registrations' ticks pass
sleep 3
last=0 n=0 sqls="" uss=""
while [ $n -lt 10 ]; do
	st=$(ctl --json status)
	t=$(echo "$st" | field ticks)
	if [ "$t" != "$last" ]; then
		last=$t
		sqls="$sqls $(echo "$st" | field last_tick_sql)"
		uss="$uss $(echo "$st" | field last_tick_us)"
		n=$((n + 1))
	fi
	sleep 0.2
done
stats() { echo "$1" | tr ' ' '\n' | grep . | sort -n | awk '{ v[NR] = $1 } END { printf "min %d, median %d, max %d", v[1], v[int((NR + 1) / 2)], v[NR] }'; }
echo "steady tick with $N VMs (1 vCPU each), 10 ticks:"
echo "  SQL statements: $(stats "$sqls")"
echo "  tick duration (us): $(stats "$uss")"
