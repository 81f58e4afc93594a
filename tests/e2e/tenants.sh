#!/bin/sh
# tenants.sh - the real vcpud and vcpuctl through a tenant's lifecycle, a
# kill -9 and restart, SIGHUP reloads and a list of bad inputs, each of which
# must get a clear error and leave the database as it was.
SUITE=e2e-tenants
. "$(dirname "$0")/lib.sh"

start_daemon || { bad "daemon starts"; finish; exit 1; }
ok "daemon starts on a fresh database"

expect_rc 0 "tenant create" ctl tenant create acme --vcpus 8 --weight 200 --cpu-max 2.5 --memory 4G --class guaranteed
expect_rc 0 "tenant create with defaults" ctl tenant create beta --vcpus 4
expect_rc 0 "tenant list" ctl tenant list
contains "list shows acme" "acme"
contains "list shows beta" "beta"
expect_rc 0 "tenant show --json" ctl --json tenant show acme
contains "json has weight 200" '"weight": 200'
contains "json has memory 4G" '"memory_bytes": 4294967296'
contains "json has class" '"class": "guaranteed"'
contains "json has cpu cap" '"cpu_max_cores": 2.5'
expect_rc 0 "tenant show beta --json" ctl --json tenant show beta
contains "default weight 100" '"weight": 100'
contains "default class burstable" '"class": "burstable"'
contains "no cap is null" '"cpu_max_cores": null'
expect_rc 0 "tenant set" ctl tenant set acme --weight 300 --cpu-max none --memory 512M
expect_rc 0 "show after set" ctl --json tenant show acme
contains "weight changed" '"weight": 300'
contains "cap cleared" '"cpu_max_cores": null'
contains "memory changed" '"memory_bytes": 536870912'

# durability: kill -9 and restart
stop_daemon KILL
expect_rc 5 "unreachable daemon is reported" ctl tenant list
contains "message names the socket" "$SOCK"
start_daemon && ok "daemon restarts after kill -9 (stale socket replaced)" || bad "daemon restarts after kill -9"
expect_rc 0 "tenant survives kill -9" ctl --json tenant show acme
contains "weight survived" '"weight": 300'
contains "memory survived" '"memory_bytes": 536870912'

OUT=$(sqlite3 "$DB" 'PRAGMA integrity_check;' 2>&1)
[ "$OUT" = ok ] && ok "integrity_check ok" || bad "integrity_check: $OUT"
OUT=$(sqlite3 "$DB" 'PRAGMA journal_mode;' 2>&1)
[ "$OUT" = wal ] && ok "journal mode is wal" || bad "journal mode: $OUT"

# bad inputs: each refused, database unchanged
snapshot() { sqlite3 "$DB" "SELECT name, vcpus, weight, cpu_max_cores, memory_bytes, class FROM tenants ORDER BY name; SELECT count(*) FROM events;"; }
BEFORE=$(snapshot)
expect_rc 2 "path-like name ../x refused" ctl tenant create ../x --vcpus 1
contains "says invalid name" "invalid tenant name"
expect_rc 2 "path-like name a/b refused" ctl tenant create a/b --vcpus 1
expect_rc 2 "name .. refused" ctl tenant create .. --vcpus 1
expect_rc 2 "weight 0 refused" ctl tenant create w0 --vcpus 1 --weight 0
contains "names the range" "1..10000"
expect_rc 2 "weight 10001 refused" ctl tenant create w1 --vcpus 1 --weight 10001
expect_rc 4 "duplicate refused as conflict" ctl tenant create acme --vcpus 1
contains "says it exists" "already exists"
expect_rc 2 "--memory 12Q refused" ctl tenant create m --vcpus 1 --memory 12Q
contains "names the bad size" "12Q"
expect_rc 2 "missing --vcpus refused" ctl tenant create nov
expect_rc 3 "unknown tenant show" ctl tenant show nosuch
expect_rc 3 "unknown tenant set" ctl tenant set nosuch --weight 5
expect_rc 3 "unknown tenant delete" ctl tenant delete nosuch
expect_rc 2 "set with nothing to change" ctl tenant set acme
expect_rc 2 "unknown option" ctl tenant create z --vcpus 1 --colour red

# straight to the socket: malformed JSON, a 10 MB body, a wrong method
OUT=$(curl -s --unix-socket "$SOCK" -X POST -H 'Content-Type: application/json' \
	-d '{"name": "x", "vcpus": ' -w ' %{http_code}' http://localhost/v1/tenants)
contains "malformed JSON is 400" '400'
contains "malformed JSON error body" '"code":"invalid"'
contains "malformed JSON message" 'malformed JSON'
head -c 10485760 /dev/zero | tr '\0' ' ' >"$TMP/big.json"
OUT=$(curl -s --unix-socket "$SOCK" -X POST -H 'Content-Type: application/json' \
	--data-binary @"$TMP/big.json" -w ' %{http_code}' http://localhost/v1/tenants)
contains "10 MB body is 413" '413'
contains "10 MB body error code" '"code":"too_large"'
OUT=$(printf '{"name":"chunky","vcpus":1}%070000d' 0 | curl -s --unix-socket "$SOCK" -X POST \
	-H 'Transfer-Encoding: chunked' --data-binary @- -w ' %{http_code}' http://localhost/v1/tenants)
contains "oversized chunked body is 413" '413'
OUT=$(curl -s --unix-socket "$SOCK" -X PUT -d '{}' -w ' %{http_code}' http://localhost/v1/tenants/acme)
contains "PUT is 405" '405'
OUT=$(curl -s --unix-socket "$SOCK" -w ' %{http_code}' http://localhost/v1/tenants/..)
contains "dot-dot in URL refused" '40'
AFTER=$(snapshot)
[ "$BEFORE" = "$AFTER" ] && ok "bad inputs left the database as it was" || bad "database changed: $BEFORE -> $AFTER"
kill -0 "$DAEMON_PID" 2>/dev/null && ok "daemon survived the bad inputs" || bad "daemon died"

# peer credentials: a non-root user not in the socket group gets 403
chmod 666 "$SOCK"
if command -v setpriv >/dev/null && [ "$(id -u)" -eq 0 ]; then
	OUT=$(setpriv --reuid=65534 --regid=65534 --clear-groups "$VCPUCTL" --socket "$SOCK" tenant list 2>&1)
	rc=$?
	[ $rc -eq 6 ] && ok "non-member refused (exit 6)" || bad "non-member: exit $rc: $OUT"
	contains "says permission denied" "permission denied"
fi

# SIGHUP: a broken policy is refused and the old one stays; a good one loads
cp "$POLICY" "$TMP/good.yaml"
echo "steal: {high_pct: 10, low_pct: 20}" >>"$POLICY"
kill -HUP "$DAEMON_PID"
sleep 0.3
kill -0 "$DAEMON_PID" 2>/dev/null && ok "daemon alive after a bad SIGHUP" || bad "daemon died on bad SIGHUP"
grep -q "policy not reloaded" "$LOG" && ok "bad policy refused on SIGHUP" || bad "no refusal logged"
expect_rc 0 "still serving after a bad reload" ctl tenant list
cp "$TMP/good.yaml" "$POLICY"
kill -HUP "$DAEMON_PID"
sleep 0.3
grep -q "reloaded" "$LOG" && ok "good policy reloaded on SIGHUP" || bad "no reload logged"

# a second daemon on the same socket is refused, the first keeps serving
# (bounded: if the first one died, the second would serve for good)
OUT=$(timeout 10 "$VCPUD" --foreground --db "$TMP/other.db" --socket "$SOCK" --policy "$POLICY" --cgroup-root "$TMP/cgroup2" --dry-run 2>&1)
rc=$?
[ $rc -ne 0 ] && ok "second daemon on a live socket refused" || bad "second daemon started"
contains "says another vcpud" "another vcpud"
expect_rc 0 "first daemon still serving" ctl tenant list

# delete, and a clean stop removes the socket
expect_rc 0 "tenant delete" ctl tenant delete beta
expect_rc 3 "deleted tenant is gone" ctl tenant show beta
stop_daemon TERM && ok "SIGTERM stops cleanly (exit 0)" || bad "SIGTERM exit status"
[ ! -e "$SOCK" ] && ok "socket removed on exit" || bad "socket left behind"
OUT=$(sqlite3 "$DB" "SELECT action FROM events ORDER BY id;" | tr '\n' ' ')
contains "audit log has the lifecycle" "tenant.create tenant.create tenant.update"
contains "audit log has the delete" "tenant.delete"

# the socket group is the peer's own groups (SO_PEERGROUPS), not the group
# database: nobody is in no group of /etc/group, yet a process of nobody's
# that holds the group is served, and one that does not is refused
if command -v setpriv >/dev/null && [ "$(id -u)" -eq 0 ] && getent group daemon >/dev/null; then
	GID=$(getent group daemon | cut -d: -f3)
	chmod 711 "$TMP"
	start_daemon --socket-group daemon || bad "daemon starts with --socket-group"
	OUT=$(setpriv --reuid=65534 --regid=65534 --groups="$GID" "$VCPUCTL" --socket "$SOCK" tenant list 2>&1)
	rc=$?
	[ $rc -eq 0 ] && ok "nobody holding the group as a supplementary one is served" \
		|| bad "supplementary group: exit $rc: $OUT"
	OUT=$(setpriv --reuid=65534 --regid="$GID" --clear-groups "$VCPUCTL" --socket "$SOCK" tenant list 2>&1)
	rc=$?
	[ $rc -eq 0 ] && ok "and as its primary group" || bad "primary group: exit $rc: $OUT"
	chmod 666 "$SOCK"
	OUT=$(setpriv --reuid=65534 --regid=65534 --clear-groups "$VCPUCTL" --socket "$SOCK" tenant list 2>&1)
	rc=$?
	[ $rc -eq 6 ] && ok "without it: refused by vcpud (exit 6)" || bad "no group: exit $rc: $OUT"
	grep -q "refused API request from uid 65534" "$LOG" && ok "the refusal is logged" \
		|| bad "no refusal in the log"
	stop_daemon
	chmod 700 "$TMP"
fi

# a database from a newer vcpud is refused
sqlite3 "$DB" 'PRAGMA user_version = 99;'
OUT=$("$VCPUD" --foreground --db "$DB" --socket "$SOCK" --policy "$POLICY" --cgroup-root "$TMP/cgroup" --dry-run 2>&1)
rc=$?
[ $rc -ne 0 ] && ok "newer schema refused" || bad "newer schema accepted"
contains "says newer" "newer"

finish
