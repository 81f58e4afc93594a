#!/bin/sh
# dryrun.sh - a dry-run vcpud (what `make run` starts) is as quiet as a real
# one (issue 10): once its VMs are placed, a tick "writes" nothing and the
# log at --log-level info does not grow; a change is one would-be write and
# one line, then quiet again; a VM that goes is removed once; nothing is
# ever made on the host. Real vcpud and vcpuctl, idle fakevm processes.
SUITE=e2e-dryrun
. "$(dirname "$0")/lib.sh"
trap 'cleanup_fakes; stop_daemon; rm -rf "$TMP"' INT TERM

field() { sed -n "s/.*\"$1\": \([0-9]*\).*/\1/p"; }
ticks() { ctl --json status | field ticks; }
# wait_ticks N: until N more ticks have ended (N + 5 s at most)
wait_ticks() {
	t0=$(ticks) i=0
	while [ "$(ticks)" -lt $((t0 + $1)) ]; do
		i=$((i + 1)); [ $i -gt $(($1 * 10 + 50)) ] && return 1
		sleep 0.1
	done
}
lines() { wc -l < "$LOG"; }
intents() { grep -c 'dry-run: would' "$LOG"; }

start_daemon --no-libvirt --log-level info || { bad "daemon starts"; finish; exit 1; }
ctl tenant create acme --vcpus 16 >/dev/null
VMS=""
for n in 1 2 3; do
	start_fake "$TMP/f$n.out" --vcpus 2 --idle || bad "fakevm $n"
	expect_rc 0 "register vm $n" ctl vm register "web-$n" --tenant acme --pid "$FPID"
	VMS="$VMS $FPID"
done
wait_ticks 2 || bad "ticks go on"
T0=$(sed -n 's/^vcpu 0 tid=//p' "$TMP/f1.out")
grep -q "dry-run: would write '$T0' to $TMP/cgroup/tenant-acme/vm-web-1/vcpu0/cgroup.threads" "$LOG" \
	&& ok "a vCPU thread would be placed" || bad "web-1's vCPU 0 not placed"
N=$(grep -c "dry-run: would write '$T0' to " "$LOG")
[ "$N" = 1 ] && ok "said once" || bad "the move of $T0 logged $N times"

# steady: nothing to write, nothing to say
L0=$(lines)
wait_ticks 5 || bad "five ticks"
L1=$(lines)
[ "$L1" = "$L0" ] && ok "the log does not grow over 5 steady ticks" \
	|| bad "the log grew by $((L1 - L0)) lines over 5 steady ticks: $(tail -n +$((L0 + 1)) "$LOG" | head -5)"
W=$(ctl --json status | field last_tick_writes)
[ "$W" = 0 ] && ok "a steady tick would write nothing" || bad "a steady tick would write $W"

# one change: one would-be write per knob it moves, one line each: the
# tenant's cpu.weight only (its VMs' weights are their own, 100 per vCPU,
# and do not move with it)
I0=$(intents)
LW=$(lines)
# since_line N PATTERN: lines after line N of the log matching PATTERN
since_line() { tail -n +$(($1 + 1)) "$LOG" | grep -c "$2"; }
expect_rc 0 "change acme's weight" ctl tenant set acme --weight 300
wait_ticks 2 || bad "ticks go on"
I1=$(intents)
[ "$I1" = $((I0 + 1)) ] && ok "one change, 1 intent (the tenant's weight)" \
	|| bad "one change, $((I1 - I0)) intents"
grep -q "dry-run: would write '300' to $TMP/cgroup/tenant-acme/cpu.weight" "$LOG" \
	&& ok "the new weight" || bad "no write of the new weight"
[ "$(since_line "$LW" "vm-web-[123]/cpu.weight")" = 0 ] \
	&& ok "its VMs' weights stay (200 each: 2 vCPUs)" \
	|| bad "VM weights: $(tail -n +$((LW + 1)) "$LOG" | grep 'vm-web-./cpu.weight' | tr '\n' ';')"
LW=$(lines)
expect_rc 0 "web-1's own weight" ctl vm set web-1 --weight 77
wait_ticks 2 || bad "ticks go on"
grep -q "dry-run: would write '77' to $TMP/cgroup/tenant-acme/vm-web-1/cpu.weight" "$LOG" \
	&& ok "vm set --weight reaches its cgroup" || bad "no write of web-1's weight 77"
expect_rc 0 "web-1 back to auto" ctl vm set web-1 --weight auto
wait_ticks 2 || bad "ticks go on"
[ "$(since_line "$LW" "would write '200' to $TMP/cgroup/tenant-acme/vm-web-1/cpu.weight")" = 1 ] \
	&& ok "auto: back to 200 (100 per vCPU)" || bad "web-1 not back to 200"
L0=$(lines)
wait_ticks 3 || bad "three ticks"
[ "$(lines)" = "$L0" ] && ok "quiet again" || bad "not quiet after the change: $(tail -n +$((L0 + 1)) "$LOG" | head -5)"

# a VM that goes: its groups would be removed, once
expect_rc 0 "release web-3" ctl vm release web-3
wait_ticks 3 || bad "ticks go on"
R=$(grep -c "dry-run: would remove $TMP/cgroup/tenant-acme/vm-web-3" "$LOG")
[ "$R" -ge 1 ] && ok "web-3's groups would be removed" || bad "web-3 not removed"
R=$(grep -c "dry-run: would remove $TMP/cgroup/tenant-acme/vm-web-3\$" "$LOG")
[ "$R" = 1 ] && ok "once" || bad "vm-web-3 removed $R times"
L0=$(lines)
wait_ticks 3 || bad "three ticks"
[ "$(lines)" = "$L0" ] && ok "quiet after the release" || bad "not quiet after the release: $(tail -n +$((L0 + 1)) "$LOG" | head -5)"

[ ! -e "$TMP/cgroup" ] && ok "nothing made on the host" || bad "$TMP/cgroup exists"
cleanup_fakes
finish
