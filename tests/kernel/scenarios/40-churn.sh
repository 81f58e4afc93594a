#!/bin/sh
# 40-churn.sh - VM churn on a real cgroup v2 tree (issue 14, item 4): CHURN
# cycles of a fake VM that starts, is registered (even cycles) or found by
# /proc discovery by its name (odd ones), and exits after 0..300 ms, five at
# a time, with the throttler on and a spinning best-effort VM beside a
# guaranteed one the whole time. Afterwards: no vm-* directory of a churned
# VM is left in vcpud.slice, vcpud holds as many fds as before the churn,
# and its RSS grew by less than 4 MiB (stated). VCPUD_CHURN=N sh
# tests/kernel/run.sh 40 for more cycles.
. "$VCPUD_SRC/tests/kernel/lib.sh"

CHURN=${CHURN:-500}
S=$CG/vcpud.slice
POLICY=/tmp/policy.yaml
sed -e 's/^  gone_grace_s: .*/  gone_grace_s: 0/' -e 's/^  tenant_from_name: false/  tenant_from_name: true/' \
	-e 's/^  interval_ms: .*/  interval_ms: 250/' \
	"$VCPUD_SRC/policies/default.yaml" > "$POLICY"
grep -q '^  gone_grace_s: 0$' "$POLICY" && grep -q '^  tenant_from_name: true$' "$POLICY" ||
	abort_scenario "policy edit"
vcpud_start "$POLICY" --log-level info || abort_scenario "vcpud did not start"
ctl tenant create acme --vcpus 64 >/dev/null || abort_scenario "tenant acme"
ctl tenant create gold --vcpus 4 --class guaranteed >/dev/null || abort_scenario "tenant gold"
ctl tenant create batch --vcpus 4 --class best-effort >/dev/null || abort_scenario "tenant batch"
# the throttler's context: a guaranteed VM and a spinning best-effort one
fakevm_start /tmp/steady.out --vcpus 1 --idle || abort_scenario "fakevm steady"
ctl vm register steady --tenant gold --pid "$FAKEVM_PID" >/dev/null || abort_scenario "register steady"
fakevm_start /tmp/spin.out --vcpus 1 || abort_scenario "fakevm spin"
ctl vm register spin --tenant batch --pid "$FAKEVM_PID" >/dev/null || abort_scenario "register spin"
vcpud_wait_ticks 4
fds() { ls "/proc/$VCPUD_PID/fd" | wc -l; }
rss_kib() { sed -n 's/^VmRSS:[[:space:]]*\([0-9]*\).*/\1/p' "/proc/$VCPUD_PID/status"; }
FD0=$(fds)
RSS0=$(rss_kib)
note "before the churn: $FD0 fds, RSS $RSS0 KiB"

rand() { echo $(($(od -An -N2 -tu2 /dev/urandom) % ($1 + 1))); }
ms_sleep() { sleep "$(awk -v m="$1" 'BEGIN { printf "%.3f", m / 1000 }')"; }
# five slots, each a VM that is replaced when it exits
slot_pid_0= slot_pid_1= slot_pid_2= slot_pid_3= slot_pid_4=
t0=$(date +%s)
i=1
while [ $i -le "$CHURN" ]; do
	k=$((i % 5))
	eval "old=\$slot_pid_$k"
	if [ -n "$old" ]; then kill -KILL "$old" 2>/dev/null; wait "$old" 2>/dev/null; fi
	if [ $((i % 2)) -eq 0 ]; then
		"$FAKEVM" --vcpus 2 --idle > /tmp/churn.out 2>&1 &
		p=$!
		ctl vm register "churn-$i" --tenant acme --pid "$p" >/dev/null 2>&1
	else
		"$FAKEVM" --vcpus 2 --idle -name "guest=acme.churn-$i,debug-threads=on" > /tmp/churn.out 2>&1 &
		p=$!
	fi
	eval "slot_pid_$k=$p"
	ms_sleep "$(rand 300)"
	i=$((i + 1))
done
for k in 0 1 2 3 4; do
	eval "old=\$slot_pid_$k"
	[ -n "$old" ] && { kill -KILL "$old" 2>/dev/null; wait "$old" 2>/dev/null; }
done
note "$CHURN cycles in $(($(date +%s) - t0)) s"
# the last exits are found within a few ticks, their groups go at once
left() { find "$S" -mindepth 2 -maxdepth 2 -type d -name 'vm-*churn*' | wc -l; }
wait_for 20 sh -c "[ \$(find $S -mindepth 2 -maxdepth 2 -type d -name 'vm-*churn*' | wc -l) -eq 0 ]"
L=$(left)
[ "$L" -eq 0 ] && pass no-leaked-groups "no vm-* group of the $CHURN churned VMs is left" \
	|| fail no-leaked-groups "$L left: $(find "$S" -mindepth 2 -maxdepth 2 -type d -name 'vm-*churn*' | head -5 | tr '\n' ' ')"
[ -d "$S/tenant-gold/vm-steady" ] && [ -d "$S/tenant-batch/vm-spin" ] &&
	pass steady-kept "the two VMs that stayed keep their groups" || fail steady-kept "$(ls "$S"/tenant-*)"
vcpud_wait_ticks 4
FD1=$(fds)
RSS1=$(rss_kib)
[ "$FD1" -le "$FD0" ] && pass no-leaked-fds "$FD1 fds after the churn, $FD0 before" \
	|| fail no-leaked-fds "$FD1 fds after, $FD0 before: $(ls -l "/proc/$VCPUD_PID/fd" | tail -n +2 | awk '{ print $NF }' | sort | uniq -c | sort -rn | head -5 | tr '\n' ' ')"
GROW=$((RSS1 - RSS0))
[ "$GROW" -lt 4096 ] && pass rss-bounded "RSS $RSS0 -> $RSS1 KiB ($GROW KiB over $CHURN VMs)" \
	|| fail rss-bounded "RSS grew by $GROW KiB ($RSS0 -> $RSS1) over $CHURN VMs"
kill -0 "$VCPUD_PID" 2>/dev/null && pass alive "vcpud is up, $(status_field ticks) ticks" || fail alive "vcpud died"
vcpud_stop
t_done
