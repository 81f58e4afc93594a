#!/bin/sh
# hostile.sh - clients that misbehave on the API socket (issue 14, item 5;
# tests/fixtures/hostile.c): 128 slow clients trickling headers, then 1,000
# (past 768 open connections vcpud drops the slowest),
# 1,000 connections dropped mid-body, 200 of random bytes, a 1 MiB header,
# a 64 KiB URL, a 1 MiB body and JSON nested 60,000 deep. vcpud stays up, a
# well-behaved client is served all along (median under 100 ms, every
# request within 2 s), and the database is unchanged.
SUITE=e2e-hostile
. "$(dirname "$0")/lib.sh"
mkdir "$TMP/cgroup"
HOSTILE=$BUILD/fixtures/hostile
[ -x "$HOSTILE" ] || { bad "no $HOSTILE (make all)"; finish; exit 1; }

start_daemon --log-level info || { bad "daemon starts"; finish; exit 1; }
ctl tenant create acme --vcpus 8 >/dev/null
# the state the clients must not change: every table but the audit log
# (vcpud's own events, such as a policy reload, may come and go)
state() { sqlite3 "$DB" "SELECT * FROM tenants; SELECT * FROM reservations; SELECT * FROM vms" | md5sum; }
S0=$(state)

# served DESC: 20 `vcpuctl status` while the attack runs, each timed;
# every one must succeed within 2 s and their median be under 100 ms
served() {
	: >"$TMP/lat"
	n=0 fails=0
	while [ $n -lt 20 ]; do
		t0=$(date +%s%N)
		if timeout 2 "$VCPUCTL" --socket "$SOCK" status >/dev/null 2>&1; then
			echo $((($(date +%s%N) - t0) / 1000)) >>"$TMP/lat"
		else
			fails=$((fails + 1))
		fi
		n=$((n + 1))
		sleep 0.1
	done
	med=$(sort -n "$TMP/lat" | awk '{ v[NR] = $1 } END { if (NR) printf "%.1f", v[int((NR + 1) / 2)] / 1000; else print "none" }')
	max=$(sort -n "$TMP/lat" | tail -1 | awk '{ printf "%.1f", $1 / 1000 }')
	if [ $fails -eq 0 ] && awk -v m="$med" 'BEGIN { exit !(m < 100) }'; then
		ok "$1: a well-behaved client is served (median $med ms, max $max ms)"
	else
		bad "$1: $fails of 20 status requests failed, median $med ms"
	fi
}

# attack DESC SETTLE ARGS...: hostile ARGS in the background, SETTLE
# seconds for it to get going, then `served DESC` beside it; its report in
# $OUT
attack() {
	d=$1 settle=$2; shift 2
	"$HOSTILE" "$SOCK" "$@" >"$TMP/attack.out" 2>&1 &
	hp=$!
	sleep "$settle"
	served "$d"
	wait $hp
	OUT=$(cat "$TMP/attack.out")
	echo "# $OUT"
}
attack "128 slow clients" 1 slow 128 6
attack "1,000 slow clients" 1.5 slow 1000 6
case "$OUT" in *" 0 closed by the daemon"*) bad "1,000 slow clients: none dropped: $OUT" ;; *) ok "past 768 open connections the slowest were dropped" ;; esac
attack "1,000 connections dropped mid-body" 0 drop 1000
attack "random bytes" 0 garbage 200

"$HOSTILE" "$SOCK" big >"$TMP/big.out" 2>&1
sed 's/^/# /' "$TMP/big.out"
OUT=$(cat "$TMP/big.out")
contains "a 1 MiB header is refused (431 or a closed connection)" "1 MiB header:"
case "$OUT" in *"JSON 60,000 deep: sent, status 400"*) ok "JSON nested 60,000 deep refused (400)" ;; *) bad "deep JSON: $OUT" ;; esac
case "$OUT" in *"1 MiB body: sent, status 413"* | *"1 MiB body: cut off"*) ok "a 1 MiB body refused (limit 64 KiB)" ;; *) bad "1 MiB body: $OUT" ;; esac

kill -0 "$DAEMON_PID" 2>/dev/null && ok "vcpud is still up" || bad "vcpud died"
expect_rc 0 "and answers" ctl status
[ "$(state)" = "$S0" ] && ok "the database is unchanged" || bad "the database changed"
N=$(ls "/proc/$DAEMON_PID/fd" | wc -l)
echo "# vcpud holds $N fds after the attacks"
finish
