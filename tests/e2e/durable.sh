#!/bin/sh
# durable.sh - what an acknowledged change promises (issue 14, item 3): a
# change a client is told has been made (a tenant, a registration, a
# release) syncs the database's WAL before the reply, so that it survives
# a power cut; the per-tick writes (samples, runtime state) do not sync on
# the daemon's thread, and a steady tick costs no fsync at all. Seen with
# strace on the real vcpud: the syncs of its main thread (the background
# checkpointer's are its own).
SUITE=e2e-durable
. "$(dirname "$0")/lib.sh"
mkdir "$TMP/cgroup"
command -v strace >/dev/null || { bad "strace is missing (make deps installs it)"; finish; exit 1; }

start_daemon || { bad "daemon starts"; finish; exit 1; }
ctl tenant create acme --vcpus 8 >/dev/null
start_fake "$TMP/a.out" --vcpus 2 --idle || bad "fakevm a"
A=$FPID
expect_rc 0 "register web" ctl vm register web --tenant acme --pid "$A"
sleep 2.2 # a tick or two with the VM sampled

# trace_syncs SECONDS CMD...: the daemon's fsync/fdatasync calls while CMD
# runs (and SECONDS more), those of its main thread in $MAIN
trace_syncs() {
	s=$1; shift
	: >"$TMP/strace"
	strace -f -qq -e trace=fsync,fdatasync -o "$TMP/strace" -p "$DAEMON_PID" 2>"$TMP/strace.err" &
	st=$!
	sleep 0.5 # attached
	"$@" >/dev/null 2>&1
	sleep "$s"
	kill "$st" 2>/dev/null
	wait "$st" 2>/dev/null
	MAIN=$(awk -v p="$DAEMON_PID" '$1 == p && /sync\(/' "$TMP/strace" | wc -l)
	ALL=$(grep -c 'sync(' "$TMP/strace")
}

trace_syncs 0.3 ctl tenant create beta --vcpus 4
[ "$MAIN" -ge 1 ] && ok "a tenant's creation syncs before the reply ($MAIN on the main thread)" \
	|| bad "no sync on the main thread for a tenant create: $(head -5 "$TMP/strace") $(head -2 "$TMP/strace.err")"
start_fake "$TMP/b.out" --vcpus 2 --idle || bad "fakevm b"
trace_syncs 0.3 ctl vm register db --tenant beta --pid "$FPID"
[ "$MAIN" -ge 1 ] && ok "a registration syncs ($MAIN)" || bad "no sync for a registration"
trace_syncs 0.3 ctl vm release db
[ "$MAIN" -ge 1 ] && ok "a release syncs ($MAIN)" || bad "no sync for a release"
# steady: ticks sample and write history, nothing a client was told
trace_syncs 3.2 true
[ "$MAIN" -eq 0 ] && ok "3 steady ticks: no sync on the daemon's thread ($ALL by the checkpointer)" \
	|| bad "steady ticks synced $MAIN times on the main thread: $(awk -v p="$DAEMON_PID" '$1 == p' "$TMP/strace" | head -3)"
cleanup_fakes
finish
