#!/bin/sh
# 22-restart.sh - throttle caps survive a crash of vcpud. A guaranteed VM
# and two spinning best-effort VMs share pCPUs 2-3; once vcpud has capped
# both antagonists it is killed with SIGKILL and started again on the same
# database: the caps are still in cpu.max, the first tick after the restart
# writes no cgroup file at all, `vcpuctl top` shows them capped at once, and
# when the antagonists go idle the caps are lifted as usual.
. "$VCPUD_SRC/tests/kernel/lib.sh"

POLICY=/tmp/policy.yaml
# hold_s 120: no loosening probe while the scenario watches the caps
# (lifting them is left to the idle rule, as in 20-throttle)
sed -e 's/^  high_pct: .*/  high_pct: 30/' -e 's/^  low_pct: .*/  low_pct: 15/' \
	-e 's/^  breach_s: .*/  breach_s: 2/' -e 's/^  hold_s: .*/  hold_s: 120/' \
	"$VCPUD_SRC/policies/demo.yaml" > "$POLICY"
taskset -p 0x3 $$ >/dev/null || note "cannot pin the scenario shell to CPUs 0-1"
vcpud_start "$POLICY" || abort_scenario "vcpud did not start"
ctl tenant create gold --vcpus 4 --class guaranteed >/dev/null
ctl tenant create batch --vcpus 8 --class best-effort >/dev/null
pinned_vm_start victim 0xc || abort_scenario "fakevm victim"
VICTIM=$VMPID
pinned_vm_start noisy1 0xc || abort_scenario "fakevm noisy1"
N1=$VMPID
pinned_vm_start noisy2 0xc || abort_scenario "fakevm noisy2"
N2=$VMPID
check register "register the three VMs" sh -c "vcpuctl --socket $VCPUD_SOCK vm register victim --tenant gold --pid $VICTIM && vcpuctl --socket $VCPUD_SOCK vm register noisy1 --tenant batch --pid $N1 && vcpuctl --socket $VCPUD_SOCK vm register noisy2 --tenant batch --pid $N2"

# a cap in top's CAP column: not "-", and not empty (a VM registered after
# the last tick has no row yet: an empty field once passed for "capped",
# the loop below never ran, and the check after it failed at tick 3)
is_cap() { case "$1" in "" | -) return 1 ;; *) return 0 ;; esac; }
both_capped() {
	is_cap "$(top_field noisy1 7)" && is_cap "$(top_field noisy2 7)"
}
# bounded by ticks (15) and time (40 s), not by vcpud_wait_ticks calls; a
# wait that does not see a tick says so
T0=$(status_field ticks)
DEADLINE=$(( $(cut -d. -f1 /proc/uptime) + 40 ))
i=0
while ! both_capped; do
	i=$((i + 1))
	[ "$(cut -d. -f1 /proc/uptime)" -lt "$DEADLINE" ] || break
	vcpud_wait_ticks 1 || note "wait $i: no tick: $(ctl --json status 2>&1 | tr -d '\n' | head -c 300)"
	[ "$(status_field ticks)" -ge $((T0 + 15)) ] 2>/dev/null && break
	sleep 0.3
done
ctl top --once
both_capped && pass capped "both antagonists capped after $(( $(status_field ticks) - T0 )) ticks" \
	|| abort_scenario "the antagonists were not capped in 15 ticks ($i waits, ticks $T0 -> $(status_field ticks))"
vcpud_wait_ticks 2 # the caps are in cpu.max (reconciled in the tick that decided them)
B=$CG/vcpud.slice/tenant-batch
cg_read "$B/vm-noisy1/cpu.max"; CAP1=$CG_VAL
cg_read "$B/vm-noisy2/cpu.max"; CAP2=$CG_VAL
note "cpu.max before the crash: noisy1 '$CAP1', noisy2 '$CAP2'"
case "$CAP1 $CAP2" in
*max*) fail caps-in-kernel "cpu.max: '$CAP1', '$CAP2'" ;;
*) pass caps-in-kernel "cpu.max: '$CAP1', '$CAP2'" ;;
esac

# the crash: no chance to clean up
kill -KILL "$VCPUD_PID"
wait "$VCPUD_PID" 2>/dev/null
echo "=== restart" >> "$VCPUD_LOG"
vcpud_start "$POLICY" || abort_scenario "vcpud did not start again"
# the first tick ran before the API answered: it is the one status shows
# unless a second one has come already
st_ticks=$(status_field ticks)
st_writes=$(status_field last_tick_writes)
if [ "$st_ticks" = 1 ]; then
	expect_eq first-tick-writes "$st_writes" 0 "cgroup writes of the first tick after the restart"
else
	note "status came after tick $st_ticks; judging the first tick from the log"
fi
after=$(sed -n '/^=== restart/,$p' "$VCPUD_LOG")
n=$(echo "$after" | grep -c 'cgroup: .*cpu.max = ')
expect_eq no-cpu-max-write "$n" 0 "cpu.max writes after the restart"
echo "$after" | grep -q 'adopted 2 throttle caps' && pass adopted "2 caps adopted from the database" \
	|| fail adopted "no 'adopted 2 throttle caps' in the log"
cg_read "$B/vm-noisy1/cpu.max"; expect_eq cap1-kept "$CG_VAL" "$CAP1" "noisy1's cpu.max after the restart"
cg_read "$B/vm-noisy2/cpu.max"; expect_eq cap2-kept "$CG_VAL" "$CAP2" "noisy2's cpu.max after the restart"
ctl top --once
both_capped \
	&& pass top-capped "vcpuctl top shows both capped right after the restart" \
	|| fail top-capped "top: noisy1 '$(top_field noisy1 7)', noisy2 '$(top_field noisy2 7)'"
vcpud_wait_ticks 3
cg_read "$B/vm-noisy1/cpu.max"; c1=$CG_VAL
cg_read "$B/vm-noisy2/cpu.max"; c2=$CG_VAL
case "$c1 $c2" in
*max*) fail caps-hold "a cap was lifted while the antagonists still spin: '$c1', '$c2'" ;;
*) pass caps-hold "still capped 3 ticks later: '$c1', '$c2'" ;;
esac

# later, as usual: the antagonists go idle and their caps are lifted
# (once each: the events from here on; before, the law may have probed a
# cap up and back, which is not what this checks)
ev0=$(ctl events | wc -l)
kill -USR2 "$N1" "$N2"
lifted=""
for i in $(seq 10); do
	vcpud_wait_ticks 1
	if [ "$(top_field noisy1 7)" = "-" ] && [ "$(top_field noisy2 7)" = "-" ]; then
		lifted=$i
		break
	fi
done
[ -n "$lifted" ] && pass restored "both caps lifted $lifted ticks after the antagonists went idle" \
	|| fail restored "caps not lifted 10 ticks after the antagonists went idle"
vcpud_wait_ticks 1
cg_read "$B/vm-noisy1/cpu.max"; expect_eq cpu-max-lifted "$CG_VAL" "max 100000" "noisy1's cpu.max"
n=$(ctl events | tail -n +$((ev0 + 1)) | grep -c 'throttle.restore')
expect_range restore-events "$n" 2 2 "throttle.restore events once the antagonists went idle"
vcpud_stop
t_done
