#!/bin/sh
# lifecycle.sh - the VM lifecycle through the real vcpud and vcpuctl
# (issue 9): an admitted VM that has not started is a VM you can show; a
# database holding two VMs with one PID (what an older vcpud's libvirt
# merge left) quarantines those two and nothing else: the other tenants'
# cgroups are still created and updated in the same tick, and health says
# so; a PID reused by a new process within a tick (forced through
# /proc/sys/kernel/ns_last_pid) is told apart by its start time, on the API
# path and on the /proc discovery path; vcpud without --policy runs on the
# built-in defaults. --dry-run on a temp cgroup root, as in vms.sh.
SUITE=e2e-lifecycle
. "$(dirname "$0")/lib.sh"
mkdir "$TMP/cgroup"
sed -i 's/^  gone_grace_s: .*/  gone_grace_s: 2/' "$POLICY"
sed -i 's/^  tenant_from_name: false/  tenant_from_name: true/' "$POLICY"

# start_fake_at PID OUTFILE ARGS...: a new process that gets PID (the PID of
# one that exited), through ns_last_pid; sets FPID; fails if another
# process took the PID first (retried)
start_fake_at() {
	want=$1; shift
	n=0
	while [ $n -lt 20 ]; do
		echo $((want - 1)) > /proc/sys/kernel/ns_last_pid 2>/dev/null || return 1
		start_fake "$@"
		[ "$FPID" = "$want" ] && return 0
		kill -KILL "$FPID" 2>/dev/null; wait "$FPID" 2>/dev/null
		n=$((n + 1))
	done
	return 1
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
shows() { ctl --json vm show "$1" | grep -q "$2"; }
health_has() { ctl --json status | grep -q "$1"; }
trap 'cleanup_fakes; stop_daemon; rm -rf "$TMP"' INT TERM

start_daemon || { bad "daemon starts"; finish; exit 1; }
ctl tenant create acme --vcpus 16 >/dev/null
ctl tenant create beta --vcpus 16 >/dev/null

# --- admitted, not started: a VM you can show --------------------------------
expect_rc 0 "admit db-1" ctl vm admit db-1 --tenant acme --vcpus 2
expect_rc 0 "vm show of an admitted VM" ctl vm show db-1
contains "state admitted" "state:    admitted"
contains "its placement" "placement: shared pool (prefer), node"
expect_rc 0 "vm list" ctl vm list
contains "lists it" "db-1"
contains "as admitted" "admitted"

# --- two VMs with one PID in the database: only they are quarantined --------
start_fake "$TMP/a.out" --vcpus 2 --idle || bad "fakevm a"
A=$FPID
start_fake "$TMP/b.out" --vcpus 2 --idle || bad "fakevm b"
B=$FPID
expect_rc 0 "register web-1" ctl vm register web-1 --tenant acme --pid "$A"
expect_rc 0 "register other-1" ctl vm register other-1 --tenant beta --pid "$B"
stop_daemon
# what an older vcpud's name-only libvirt merge could leave: web-2 holding
# web-1's PID; and a VM of tenant beta whose groups do not exist yet
sqlite3 "$DB" "INSERT INTO vms (name, tenant, pid, vcpus, state, source, created_at, updated_at) VALUES ('web-2', 'acme', $A, 2, 'running', 'libvirt', 1, 1); INSERT INTO reservations (vm, tenant, vcpus, cpu_policy, thread_policy, shares, created_at) VALUES ('web-2', 'acme', 2, 'shared', 'prefer', '0:2', 1)"
rm -rf "$TMP/cgroup"; mkdir "$TMP/cgroup"
: > "$LOG"
start_daemon || { bad "daemon restarts on the poisoned database"; finish; exit 1; }
grep -q "dry-run: would create $TMP/cgroup/tenant-beta/vm-other-1" "$LOG" \
	&& ok "the other tenant's VM is created in the same (first) tick" \
	|| bad "tenant-beta/vm-other-1 not created: $(grep -c 'would' "$LOG") intents"
T0=$(sed -n 's/^vcpu 0 tid=//p' "$TMP/b.out")
grep -q "dry-run: would write '$T0' to $TMP/cgroup/tenant-beta/vm-other-1/vcpu0/cgroup.threads" "$LOG" \
	&& ok "and its vCPU thread is placed" || bad "other-1's vCPU 0 not placed"
grep -q "would create $TMP/cgroup/tenant-acme/vm-web-2\$" "$LOG" \
	&& bad "the quarantined VM's group was created" || ok "the quarantined VMs are left alone"
expect_rc 0 "status" ctl status
contains "health is degraded" "status:           degraded"
contains "two quarantined" "quarantined VMs:  2"
contains "names the conflict" "process $A is claimed by VMs web-1 (registered) and web-2 (libvirt)"
expect_rc 0 "status --json" ctl --json status
contains "json: quarantined 2" '"quarantined": 2'
expect_rc 0 "vm show web-2" ctl vm show web-2
contains "vm show prints the fault" "fault:     quarantined (identity)"
expect_rc 0 "vm list" ctl vm list
contains "vm list flags them" "quarantined (not reconciled until fixed):"
# and the others are still updated
expect_rc 0 "change tenant beta" ctl tenant set beta --weight 300
wait_for "beta's new weight is written at once" 30 \
	grep -q "dry-run: would write '300' to $TMP/cgroup/tenant-beta/cpu.weight" "$LOG"
sleep 2.2
M=$(sqlite3 "$DB" "SELECT count(*) FROM events WHERE action = 'vm.refused'")
[ "$M" = 2 ] && ok "the conflict is recorded once per VM, not every tick ($M events)" \
	|| bad "vm.refused events: $M"
expect_rc 0 "release the wrong one" ctl vm release web-2
wait_for "health is ok again" 30 health_has '"status": "ok"'

# --- PID reuse within a tick: the API path ---------------------------------------
start_fake "$TMP/c.out" --vcpus 1 --idle || bad "fakevm c"
C=$FPID
expect_rc 0 "register reuse-1" ctl vm register reuse-1 --tenant acme --pid "$C"
kill -KILL "$C"; wait "$C" 2>/dev/null
if start_fake_at "$C" "$TMP/d.out" --vcpus 1 --idle; then
	D=$FPID
	ok "a new process got PID $C back"
	expect_rc 0 "the new process registers under its own name at once" \
		ctl vm register reuse-2 --tenant acme --pid "$D"
	expect_rc 0 "vm show reuse-1" ctl --json vm show reuse-1
	contains "the old VM is gone, not the new one" '"state": "gone"'
	OUT=$(sqlite3 "$DB" "SELECT json_extract(details, '$.new') FROM events WHERE action = 'vm.state' AND target = 'vm/reuse-1'")
	contains "with an event" "gone"
else
	bad "cannot hand PID $C to a new process (ns_last_pid)"
fi

# --- PID reuse: the /proc discovery path -------------------------------------------
start_fake "$TMP/e.out" --vcpus 1 --idle || bad "fakevm e"
E=$FPID
expect_rc 0 "register reuse-3" ctl vm register reuse-3 --tenant acme --pid "$E"
kill -KILL "$E"; wait "$E" 2>/dev/null
if start_fake_at "$E" "$TMP/g.out" --vcpus 1 --idle -name guest=acme.auto-1,debug-threads=on; then
	ok "a new VMM got PID $E back"
	wait_for "discovery places the new VMM" 40 shows acme.auto-1 '"state": "running"'
	wait_for "and the old VM is gone" 40 shows reuse-3 '"state": "gone"'
	expect_rc 0 "status" ctl --json status
	contains "no quarantine: the start time told them apart" '"quarantined": 0'
else
	bad "cannot hand PID $E to a new process (ns_last_pid)"
fi
cleanup_fakes
stop_daemon

# --- the built-in defaults ----------------------------------------------------------
# no --policy and no file at the default path (a private mount namespace
# hides the host's /etc/vcpud, if it has one); unshare and sh exec, so that
# $! is vcpud's PID
set -- "$VCPUD" --foreground --db "$TMP/d2.db" --socket "$TMP/d2.sock" \
	--cgroup-root "$TMP/cgroup" --host-root "$HOST" --dry-run --no-libvirt
if [ -e /etc/vcpud/policy.yaml ]; then
	unshare --mount sh -c 'mount -t tmpfs none /etc/vcpud && exec "$@"' sh "$@" \
		>"$TMP/d2.log" 2>&1 &
else
	"$@" >"$TMP/d2.log" 2>&1 &
fi
DAEMON_PID=$!
wait_for "vcpud starts without a policy file" 50 test -S "$TMP/d2.sock"
grep -q "running on the built-in defaults" "$TMP/d2.log" && ok "and says so" \
	|| bad "no word about the defaults: $(tail -3 "$TMP/d2.log")"
OUT=$("$VCPUCTL" --socket "$TMP/d2.sock" --json status 2>&1)
contains "health names the defaults" '"policy": "built-in defaults"'
stop_daemon
expect_rc 1 "an explicit --policy that does not exist is an error" \
	"$VCPUD" --foreground --db "$TMP/d3.db" --socket "$TMP/d3.sock" --policy "$TMP/nosuch.yaml" \
	--cgroup-root "$TMP/cgroup" --host-root "$HOST" --dry-run --no-libvirt
contains "naming it" "nosuch.yaml"
finish
