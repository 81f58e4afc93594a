#!/bin/sh
# lifecycle.sh - the VM lifecycle through the real vcpud and vcpuctl
# (issue 9): an admitted VM that has not started is a VM you can show; a
# database holding two VMs with one PID (what an older vcpud's libvirt
# merge left) quarantines those two and nothing else: the other tenants'
# cgroups are still created and updated in the same tick, and health says
# so; a PID reused by a new process (forced through
# /proc/sys/kernel/ns_last_pid) is told apart by its start time or, within
# one clock tick, by the pidfd taken at registration, on the API path and
# on the /proc discovery path; vcpud without --policy runs on the built-in
# defaults. --dry-run on a temp cgroup root, as in vms.sh.
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
health_has() { ctl --json status | grep -q "$1"; }
# wait_vcpu0 PID: until the process has its thread "CPU 0/KVM", with shell
# builtins only (no process start: a registration still follows the
# process's start within a few ms). vcpuctl once took 5 ms to start, which
# hid that a registration right after spawn_fake could find the shell
# that had not yet exec'd fakevm.
wait_vcpu0() {
	_i=0
	while [ $_i -lt 100000 ]; do
		for _t in /proc/"$1"/task/*; do
			_c=
			read -r _c <"$_t/comm" 2>/dev/null
			[ "$_c" = "CPU 0/KVM" ] && return 0
		done
		_i=$((_i + 1))
	done
	return 1
}
trap 'cleanup_fakes; stop_daemon; rm -rf "$TMP"' INT TERM

start_daemon || { bad "daemon starts"; finish; exit 1; }
ctl tenant create acme --vcpus 32 >/dev/null
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
M=$(sqlite3 "$DB" "SELECT count(*) FROM events WHERE action = 'vm.refused' AND target IN ('vm/web-1', 'vm/web-2')")
[ "$M" = 2 ] && ok "the conflict is recorded once per VM, not every tick ($M events)" \
	|| bad "vm.refused events: $M"
expect_rc 0 "release the wrong one" ctl vm release web-2
wait_for "health is ok again" 30 health_has '"status": "ok"'

# --- PID reuse: the API path ----------------------------------------------------
# A start time counts clock ticks (10 ms): a new process that gets the PID
# within the same tick has the same start time, and only the pidfd vcpud
# took at registration tells the two apart. Each round kills a registered
# VM's process and at once starts another one under its PID; some rounds
# fall within one tick (counted), and every one must come out right.
start_time_of() { cut -d' ' -f22 "/proc/$1/stat" 2>/dev/null; }
ROUNDS=6
k=1 same=0 good=0
while [ $k -le $ROUNDS ]; do
	# registered as soon as its vCPU thread exists (not once ready), so
	# that the next one often starts within the same clock tick
	spawn_fake "$TMP/c$k.out" --vcpus 1 --idle
	C=$FPID
	wait_vcpu0 "$C" || bad "round $k: no vCPU thread in process $C"
	expect_rc 0 "register reuse-$k" ctl vm register "reuse-$k" --tenant acme --pid "$C"
	S0=$(start_time_of "$C")
	kill -KILL "$C"; wait "$C" 2>/dev/null
	if ! start_fake_at "$C" "$TMP/d$k.out" --vcpus 1 --idle; then
		bad "cannot hand PID $C to a new process (ns_last_pid)"
		break
	fi
	[ "$(start_time_of "$C")" = "$S0" ] && same=$((same + 1))
	OUT=$(ctl vm register "new-$k" --tenant acme --pid "$C" 2>&1) &&
	OUT=$(ctl --json vm show "reuse-$k" 2>&1) && case "$OUT" in
		*'"state": "gone"'*) good=$((good + 1)) ;;
		*) bad "round $k: reuse-$k is not gone: $OUT" ;;
	esac || bad "round $k: PID $C (start time $S0 before, $(start_time_of "$C") now): $OUT"
	k=$((k + 1))
done
[ $good -eq $ROUNDS ] && ok "a new process registers under its PID at once, the old VM gone ($good of $ROUNDS rounds, $same within one clock tick)"
OUT=$(sqlite3 "$DB" "SELECT json_extract(details, '$.new') FROM events WHERE action = 'vm.state' AND target = 'vm/reuse-1'")
contains "with an event" "gone"
k=1
while [ $k -le $ROUNDS ]; do ctl vm release "new-$k" >/dev/null 2>&1; ctl vm release "reuse-$k" >/dev/null 2>&1; k=$((k + 1)); done
cleanup_fakes

# --- PID reuse: the /proc discovery path -------------------------------------------
# the same, with the new process a VMM that discovery finds by its name
# (a name of this run only: a process of another run must not answer)
k=1 same=0
while [ $k -le 4 ]; do
	spawn_fake "$TMP/e$k.out" --vcpus 1 --idle
	E=$FPID
	wait_vcpu0 "$E" || bad "round $k: no vCPU thread in process $E"
	expect_rc 0 "register proc-reuse-$k" ctl vm register "proc-reuse-$k" --tenant acme --pid "$E"
	S0=$(start_time_of "$E")
	kill -KILL "$E"; wait "$E" 2>/dev/null
	NEW=acme.auto$$-$k
	if ! start_fake_at "$E" "$TMP/g$k.out" --vcpus 1 --idle -name "guest=$NEW,debug-threads=on"; then
		bad "cannot hand PID $E to a new process (ns_last_pid)"
		break
	fi
	[ "$(start_time_of "$E")" = "$S0" ] && same=$((same + 1))
	wait_for "discovery places the new VMM ($k)" 40 shows "$NEW" '"state": "running"'
	wait_for "and the old VM is gone ($k)" 40 shows "proc-reuse-$k" '"state": "gone"'
	k=$((k + 1))
done
echo "# $same of 4 rounds within one clock tick"
expect_rc 0 "status" ctl --json status
contains "no quarantine: the pidfd and start time told them apart" '"quarantined": 0'
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
