#!/bin/sh
# 41-crash.sh - kill -9 on a real cgroup v2 tree (issue 14, item 2, the
# real-kernel part of tests/e2e/torture.sh): CRASHES rounds of a burst of
# changes (a tenant's weight, a VM registered, another released) with
# vcpud killed by SIGKILL 0..400 ms into it. After each restart the first
# tick puts the tree right: the weight acknowledged last (or one cut short
# after it) is in cpu.weight, every registered VM's vCPU threads are in
# their groups, no group of a released VM is left; and the tick after it
# writes nothing.
. "$VCPUD_SRC/tests/kernel/lib.sh"

CRASHES=${CRASHES:-15}
S=$CG/vcpud.slice
POLICY=/tmp/policy.yaml
sed -e 's/^  interval_ms: .*/  interval_ms: 250/' "$VCPUD_SRC/policies/default.yaml" > "$POLICY"
vcpud_start "$POLICY" --log-level info || abort_scenario "vcpud did not start"
ctl tenant create acme --vcpus 64 --weight 100 >/dev/null || abort_scenario "tenant acme"
fakevm_start /tmp/base.out --vcpus 2 --idle || abort_scenario "fakevm base"
ctl vm register base --tenant acme --pid "$FAKEVM_PID" >/dev/null || abort_scenario "register base"

rand() { echo $(($(od -An -N2 -tu2 /dev/urandom) % ($1 + 1))); }
ms_sleep() { sleep "$(awk -v m="$1" 'BEGIN { printf "%.3f", m / 1000 }')"; }
# VMs registered so far, and whether each is still meant to be there
vms=""
W_OK=100 # the weight last acknowledged
problems=0 threads=0 acked=0
r=1
while [ $r -le "$CRASHES" ]; do
	fakevm_start "/tmp/c$r.out" --vcpus 2 --idle || abort_scenario "fakevm c$r"
	pid=$FAKEVM_PID
	w=$((100 + r * 7))
	: > /tmp/burst.rc
	(
		ctl tenant set acme --weight "$w" >/dev/null 2>&1; echo "weight $?" >> /tmp/burst.rc
		ctl vm register "c$r" --tenant acme --pid "$pid" >/dev/null 2>&1; echo "reg $?" >> /tmp/burst.rc
		if [ $r -gt 1 ]; then
			ctl vm release "c$((r - 1))" >/dev/null 2>&1; echo "rel $?" >> /tmp/burst.rc
		fi
	) &
	bp=$!
	ms_sleep "$(rand 400)"
	kill -KILL "$VCPUD_PID" 2>/dev/null
	wait "$VCPUD_PID" 2>/dev/null
	wait "$bp"
	vcpud_start "$POLICY" --log-level info || abort_scenario "vcpud did not restart in round $r"
	vcpud_wait_ticks 2
	# the weight: the acknowledged one, or this round's if it got through
	cg_read "$S/tenant-acme/cpu.weight"
	if grep -q '^weight 0$' /tmp/burst.rc; then W_OK=$w; fi
	acked=$((acked + $(grep -c ' 0$' /tmp/burst.rc)))
	if [ "$CG_VAL" != "$W_OK" ] && [ "$CG_VAL" != "$w" ]; then
		problems=$((problems + 1)); note "round $r: cpu.weight $CG_VAL, want $W_OK (or $w)"
	fi
	W_OK=$CG_VAL
	# every VM the database holds is placed whole; no group without a VM
	for name in $(ctl --json vm list | sed -n 's/.*"name": "\([^"]*\)".*/\1/p'); do
		st=$(ctl --json vm show "$name" | sed -n 's/.*"state": "\([a-z]*\)".*/\1/p' | head -1)
		[ "$st" = running ] || continue
		for t in $(ctl --json vm show "$name" | sed -n 's/.*"tid": \([0-9]*\).*/\1/p'); do
			threads=$((threads + 1))
			grep -rqx "$t" "$S/tenant-acme/vm-$name"/vcpu*/cgroup.threads 2>/dev/null ||
				{ problems=$((problems + 1)); note "round $r: thread $t of $name not in its group"; }
		done
	done
	for d in "$S"/tenant-acme/vm-*; do
		n=${d##*/vm-}
		ctl vm show "$n" >/dev/null 2>&1 ||
			{ problems=$((problems + 1)); note "round $r: group vm-$n without a VM"; }
	done
	# and the tick after that writes nothing
	vcpud_wait_ticks 1
	lw=$(status_field last_tick_writes)
	[ "${lw:-x}" = 0 ] || { problems=$((problems + 1)); note "round $r: a tick after the restart still wrote $lw"; }
	r=$((r + 1))
done
[ "$problems" -eq 0 ] && [ "$threads" -gt 0 ] && pass reconverged "$CRASHES kill -9 restarts ($acked changes acknowledged): each time the tree right after the first tick ($threads vCPU threads found in their groups), then no writes" \
	|| fail reconverged "$problems problems in $CRASHES rounds"
vcpud_stop
t_done
