#!/bin/sh
# events.sh - the audit log's retention with the real vcpud: events older
# than events.retention_days go at start-up, a lower events.max_rows applied
# by SIGHUP trims the log to it, GET /v1/events says which event is the
# oldest kept and whether a cursor missed events, and ids go on from where
# they were. Most events are written with sqlite3 while vcpud is stopped
# (a tenant create through the API takes ~25 ms: 1500 of them would make
# this the slowest suite); the first ones are real, through vcpuctl.
SUITE=e2e-events
. "$(dirname "$0")/lib.sh"

count() { sqlite3 "$DB" "SELECT count(*) FROM events"; }
max_id() { sqlite3 "$DB" "SELECT max(id) FROM events"; }
min_id() { sqlite3 "$DB" "SELECT min(id) FROM events"; }
api() { curl -s --max-time 5 --unix-socket "$SOCK" "http://localhost$1"; }
# wait_log PATTERN: up to 10 s for a line of vcpud's log matching PATTERN (grep -E)
wait_log() {
	i=0
	while [ $i -lt 100 ]; do
		grep -qE "$1" "$LOG" && return 0
		sleep 0.1
		i=$((i + 1))
	done
	return 1
}

start_daemon || { bad "daemon starts"; finish; exit 1; }
i=0 failed=0
while [ $i -lt 30 ]; do
	ctl tenant create "t$i" --vcpus 1 >/dev/null || failed=$((failed + 1))
	i=$((i + 1))
done
[ $failed -eq 0 ] && ok "30 tenants created" || bad "$failed of 30 tenant creates failed"
stop_daemon

# 1500 more events, written now; then the first 20 made 40 days old
NOW_MS=$(($(date +%s) * 1000))
sqlite3 "$DB" "WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < 1500)
	INSERT INTO events (ts_ms, actor, action, target) SELECT $NOW_MS, 'test', 'test.bulk', 'x/' || i FROM c;
	UPDATE events SET ts_ms = $NOW_MS - 40 * 86400000 WHERE id <= 20;" ||
	bad "sqlite3 inserts events"
TOTAL=$(count)
[ "$TOTAL" -ge 1530 ] && ok "$TOTAL events before vcpud starts again" || bad "only $TOTAL events"
OLDEST_TS=$(sqlite3 "$DB" "SELECT min(ts_ms) FROM events")
[ "$OLDEST_TS" -lt $((NOW_MS - 30 * 86400000)) ] && ok "some are older than 30 days" ||
	bad "none older than 30 days ($OLDEST_TS)"

# start-up: the default policy (30 days, a million rows) drops the old ones
: >"$LOG"
start_daemon || { bad "daemon restarts"; finish; exit 1; }
if wait_log "events: pruned 20 rows older than 30 days / beyond 1000000 rows"; then
	ok "start-up tick prunes the 20 old events, and says so"
else
	bad "no log line for the old events: $(grep 'events:' "$LOG")"
fi
OUT=$(sqlite3 "$DB" "SELECT count(*) FROM events WHERE ts_ms < $NOW_MS - 30 * 86400000")
[ "$OUT" = 0 ] && ok "nothing older than 30 days is left" || bad "$OUT events older than 30 days left"
[ "$(min_id)" = 21 ] && ok "the oldest kept is id 21" || bad "oldest id $(min_id), wanted 21"

OUT=$(api "/v1/events?limit=1")
case "$OUT" in
*'"oldest_id": 21'*'"pruned": false'* | *'"oldest_id":21'*'"pruned":false'*)
	ok "GET /v1/events without a cursor: oldest_id 21, not pruned" ;;
*) bad "GET /v1/events?limit=1: $OUT" ;;
esac
OUT=$(api "/v1/events?after=5&limit=1")
case "$OUT" in
*'"pruned": true'* | *'"pruned":true'*) ok "a cursor at id 5 is told it missed events" ;;
*) bad "GET /v1/events?after=5: $OUT" ;;
esac
OUT=$(api "/v1/events?after=20&limit=1")
case "$OUT" in
*'"pruned": false'* | *'"pruned":false'*) ok "a cursor at id 20 missed nothing" ;;
*) bad "GET /v1/events?after=20: $OUT" ;;
esac

# SIGHUP with max_rows 1000: the log is trimmed to the newest 1000 at the
# next tick (not a minute later)
sed -i 's/^  max_rows: .*/  max_rows: 1000/' "$POLICY"
grep -q '^  max_rows: 1000$' "$POLICY" || bad "policy edited"
BEFORE_MAX=$(max_id)
kill -HUP "$DAEMON_PID"
if wait_log "events: pruned [0-9]+ rows older than 30 days / beyond 1000 rows"; then
	ok "after SIGHUP the tick prunes beyond 1000 rows"
else
	bad "no prune after SIGHUP: $(grep 'events:' "$LOG")"
fi
N=$(count)
[ "$N" -ge 1000 ] && [ "$N" -le 1005 ] && ok "$N events left (max_rows 1000)" || bad "$N events left, wanted about 1000"
[ "$(max_id)" -ge "$BEFORE_MAX" ] && ok "the newest events are kept" || bad "max id went from $BEFORE_MAX to $(max_id)"
OLDEST=$(min_id)
[ "$OLDEST" -gt 500 ] && ok "the oldest kept is now id $OLDEST" || bad "oldest id $OLDEST"

OUT=$(api "/v1/events?after=21&limit=1")
case "$OUT" in
*"\"oldest_id\": $OLDEST"*'"pruned": true'* | *"\"oldest_id\":$OLDEST"*'"pruned":true'*)
	ok "a cursor at id 21 is now told it missed events up to $OLDEST" ;;
*) bad "GET /v1/events?after=21: $OUT" ;;
esac

# ids go on from where they were: never reused after a prune
LAST=$(max_id)
expect_rc 0 "tenant create after pruning" ctl tenant create after-prune --vcpus 1
NEXT=$(sqlite3 "$DB" "SELECT id FROM events WHERE target = 'tenant/after-prune'")
[ "$NEXT" -gt "$LAST" ] && ok "its event has id $NEXT, after $LAST" || bad "event id '$NEXT' not after $LAST"

# vcpuctl events reads the trimmed log whole, without a note (no cursor)
OUT=$(ctl events --json 2>"$TMP/events.err")
rc=$?
LINES=$(printf '%s\n' "$OUT" | grep -c '"id"')
[ $rc -eq 0 ] && [ "$LINES" -eq "$(count)" ] && ok "vcpuctl events lists the $LINES events kept" ||
	bad "vcpuctl events: rc $rc, $LINES lines, $(count) events"
[ ! -s "$TMP/events.err" ] && ok "and says nothing on stderr" || bad "stderr: $(cat "$TMP/events.err")"

OUT=$(sqlite3 "$DB" 'PRAGMA integrity_check;' 2>&1)
[ "$OUT" = ok ] && ok "integrity_check ok" || bad "integrity_check: $OUT"
finish
