#!/bin/sh
# torture.sh - kill -9 at random points (issue 14, item 2). Each round
# starts the real vcpud on the same database, checks what the last round
# left, then runs a burst of API mutations (tenant create, update and
# delete, VM admit and release) and kills vcpud with SIGKILL after a random
# 0..TORTURE_MAX_MS ms, in the middle of whatever it was doing. After every
# restart: PRAGMA integrity_check and foreign_key_check are clean; every
# mutation that was acknowledged (vcpuctl exit 0) is there; one that was
# not is either wholly there (its row and its audit event) or wholly
# absent. TORTURE_N rounds (default 100; `TORTURE_N=1000 sh
# tests/e2e/torture.sh` for the long run); the last line counts them.
SUITE=e2e-torture
TOPOLOGY=64c-nosmt
. "$(dirname "$0")/lib.sh"
N=${TORTURE_N:-100}
MAXMS=${TORTURE_MAX_MS:-120}
mkdir "$TMP/cgroup"
# room for an admitted 1-vCPU VM per round: 62 shared CPUs x 64
sed -i 's/^  proc: true/  proc: false/; s/^  cpu_ratio: .*/  cpu_ratio: 64/' "$POLICY"
command -v sqlite3 >/dev/null || { bad "sqlite3 is missing"; finish; exit 1; }

q() { sqlite3 "$DB" "$1"; }
rand_ms() { echo $(($(od -An -N2 -tu2 /dev/urandom) % ($1 + 1))); }

start_daemon --log-level warn || { bad "daemon starts"; finish; exit 1; }
ctl tenant create base --vcpus 65536 >/dev/null && ctl tenant create upd --vcpus 1 >/dev/null ||
	{ bad "set-up"; finish; exit 1; }

ACK=0 NACK=0 FOUND=0 PROBLEMS=0
problem() { PROBLEMS=$((PROBLEMS + 1)); [ $PROBLEMS -le 10 ] && echo "round $R: $*"; }
W_FINAL=100 # upd's weight as last known for certain

# whole OBJECT KIND TARGET ACTION: a row (count given) and its audit event
# come together: both or neither
whole() {
	ev=$(q "SELECT count(*) FROM events WHERE action = '$4' AND target = '$3'")
	if [ "$1" -gt 0 ] && [ "$ev" -lt 1 ]; then problem "$3: row without its $4 event"; fi
	if [ "$1" -eq 0 ] && [ "$ev" -gt 0 ]; then problem "$3: $4 event without its row"; fi
}

# check R: what round R's burst (its exit codes in $TMP/r) left
check() {
	[ "$(q 'PRAGMA integrity_check')" = ok ] || problem "integrity_check: $(q 'PRAGMA integrity_check' | head -3)"
	[ -z "$(q 'PRAGMA foreign_key_check')" ] || problem "foreign_key_check: $(q 'PRAGMA foreign_key_check' | head -3)"
	while read -r op rc arg; do
		if [ "$rc" -eq 0 ]; then ACK=$((ACK + 1)); else NACK=$((NACK + 1)); fi
		case $op in
		create)
			n=$(q "SELECT count(*) FROM tenants WHERE name = 't$R'")
			v=$(q "SELECT vcpus FROM tenants WHERE name = 't$R'")
			[ "$rc" -eq 0 ] && [ "$n" -ne 1 ] && problem "acknowledged tenant t$R is missing"
			[ "$n" -eq 1 ] && [ "$v" != "$arg" ] && problem "t$R has $v vCPUs, not $arg"
			[ "$n" -eq 1 ] && FOUND=$((FOUND + 1))
			whole "$n" tenant "tenant/t$R" tenant.create ;;
		admit)
			n=$(q "SELECT count(*) FROM reservations WHERE vm = 'a$R'")
			[ "$rc" -eq 0 ] && [ "$n" -ne 1 ] && problem "acknowledged admission a$R is missing"
			[ "$n" -eq 1 ] && FOUND=$((FOUND + 1))
			whole "$n" vm "vm/a$R" vm.admit ;;
		weight)
			w=$(q "SELECT weight FROM tenants WHERE name = 'upd'")
			if [ "$rc" -eq 0 ]; then
				[ "$w" = "$arg" ] || problem "acknowledged weight $arg of upd is $w"
				FOUND=$((FOUND + 1))
			elif [ "$w" != "$arg" ] && [ "$w" != "$W_FINAL" ]; then
				problem "upd's weight $w is neither $W_FINAL (before) nor $arg (in flight)"
			fi
			[ "$w" = "$arg" ] && [ "$rc" -ne 0 ] && FOUND=$((FOUND + 1))
			W_FINAL=$w ;;
		delete | release)
			# the second half of a create/admit then delete/release
			if [ "$op" = delete ]; then t="tenant/d$R"
				n=$(q "SELECT count(*) FROM tenants WHERE name = 'd$R'")
			else t="vm/r$R"
				n=$(q "SELECT count(*) FROM reservations WHERE vm = 'r$R'")
			fi
			[ "$rc" -eq 0 ] && [ "$n" -ne 0 ] && problem "acknowledged removal of $t: still there"
			[ "$rc" -eq 0 ] && FOUND=$((FOUND + 1)) ;;
		pre-delete | pre-release) ;;
		esac
	done <"$TMP/r"
}

# burst R: the mutations, each exit code recorded as it returns
burst() {
	: >"$TMP/r"
	ctl tenant create "t$R" --vcpus $((R % 50 + 1)) >/dev/null 2>&1
	echo "create $? $((R % 50 + 1))" >>"$TMP/r"
	ctl vm admit "a$R" --tenant base --vcpus 1 >/dev/null 2>&1
	echo "admit $?" >>"$TMP/r"
	ctl tenant set upd --weight $((R % 9000 + 101)) >/dev/null 2>&1
	echo "weight $? $((R % 9000 + 101))" >>"$TMP/r"
	ctl tenant create "d$R" --vcpus 1 >/dev/null 2>&1
	echo "pre-delete $?" >>"$TMP/r"
	ctl tenant delete "d$R" >/dev/null 2>&1
	echo "delete $?" >>"$TMP/r"
	ctl vm admit "r$R" --tenant base --vcpus 1 >/dev/null 2>&1
	echo "pre-release $?" >>"$TMP/r"
	ctl vm release "r$R" >/dev/null 2>&1
	echo "release $?" >>"$TMP/r"
}

R=1
while [ $R -le "$N" ]; do
	burst &
	bpid=$!
	ms=$(rand_ms "$MAXMS")
	sleep "$(awk -v m="$ms" 'BEGIN { printf "%.3f", m / 1000 }')"
	kill -KILL "$DAEMON_PID" 2>/dev/null
	wait "$DAEMON_PID" 2>/dev/null
	wait "$bpid"
	DAEMON_PID=
	check
	start_daemon --log-level warn || { bad "vcpud restarts after kill -9 number $R"; break; }
	R=$((R + 1))
done
stop_daemon
check_last=$(q 'PRAGMA integrity_check')
[ "$PROBLEMS" -eq 0 ] && ok "$N kill -9 rounds: $ACK mutations acknowledged, $NACK cut short, every acknowledged one found after the restart, nothing half written ($FOUND checks of rows found)" \
	|| bad "$PROBLEMS problems in $N rounds (the first 10 above)"
[ "$check_last" = ok ] && ok "integrity_check ok after the last stop" || bad "integrity_check: $check_last"
finish
