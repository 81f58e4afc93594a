#!/bin/sh
# 26-idle-burst.sh - the kernel's own mechanisms behind the throttler's
# defaults, measured. cpu.idle: a guaranteed 2-vCPU VM and a best-effort
# tenant's two spinning 2-vCPU VMs on pCPUs 2-3, throttling off (no caps at
# all): the victim's steal with classes.best_effort.cpu_idle false, then
# true (policy reload). cpu.max.burst: one 2-vCPU VM whose vCPUs spin 80 ms
# of every 200 (0.8 pCPU on average, 1.6 while busy), capped by hand at 1
# pCPU: how often it is throttled, and for how long, with cpu.max.burst 0
# and with one period's worth of its cap (what vcpud writes by default).
. "$VCPUD_SRC/tests/kernel/lib.sh"

POLICY=/tmp/policy.yaml
say() { echo "$*"; }
start_vm() { # NAME ARGS...: a fake VM on pCPUs 2-3; sets VMPID
	_n=$1; shift
	pinned_vm_start "$_n" 0xc "$@" || abort_scenario "fakevm $_n did not start"
}
# victim_delay: the victim's mean delay (steal) over 5 s, from schedstat
victim_delay() {
	sched_fractions 5 $V | awk '{ s += $3; n++ } END { printf "%.1f\n", s * 100 / n }'
}
victim_steal() { # the victim's mean steal over 5 ticks, from vcpud's figures
	_s=""
	for _i in 1 2 3 4 5; do
		vcpud_wait_ticks 1
		_s="$_s $(top_field victim 6)"
	done
	echo "$_s" | tr ' ' '\n' | awk 'NF && $1 != "-" { s += $1; n++ } END { printf "%.1f\n", n ? s / n : -1 }'
}

sed -e 's/^  enabled: true/  enabled: false/' "$VCPUD_SRC/policies/demo.yaml" > "$POLICY"
grep -q '^    cpu_idle: false' "$POLICY" || abort_scenario "policies/demo.yaml no longer sets cpu_idle: false"
taskset -p 0x3 $$ >/dev/null || note "cannot pin the scenario shell to CPUs 0-1"
vcpud_start "$POLICY" || abort_scenario "vcpud did not start"
ctl tenant create gold --vcpus 4 --class guaranteed >/dev/null
ctl tenant create batch --vcpus 8 --class best-effort >/dev/null
start_vm victim; VICTIM=$VMPID
start_vm noisy1; N1=$VMPID
start_vm noisy2; N2=$VMPID
ctl vm register victim --tenant gold --pid "$VICTIM" >/dev/null || abort_scenario "register victim"
ctl vm register noisy1 --tenant batch --pid "$N1" >/dev/null || abort_scenario "register noisy1"
ctl vm register noisy2 --tenant batch --pid "$N2" >/dev/null || abort_scenario "register noisy2"
V="$(fakevm_tid /tmp/victim.out 0) $(fakevm_tid /tmp/victim.out 1)"
vcpud_wait_ticks 3

say "== cpu.idle: no caps, best-effort tenant not idle"
cg_read "$CG/vcpud.slice/tenant-batch/cpu.idle"
expect_eq idle-off "$CG_VAL" 0 "tenant-batch cpu.idle with cpu_idle: false"
off=$(victim_steal)
off_delay=$(victim_delay)
say "victim steal: $off% (vcpud), $off_delay% (schedstat)"
expect_range contended "$off" 30 75 "victim steal without cpu.idle, %"

sed -i 's/^    cpu_idle: false/    cpu_idle: true/' "$POLICY"
kill -HUP "$VCPUD_PID"
wait_for 5 grep -q "policy $POLICY reloaded" "$VCPUD_LOG" || fail reload "no reload in the log"
vcpud_wait_ticks 2
cg_read "$CG/vcpud.slice/tenant-batch/cpu.idle"
expect_eq idle-on "$CG_VAL" 1 "tenant-batch cpu.idle with cpu_idle: true"
cg_read "$CG/vcpud.slice/tenant-gold/cpu.idle"
expect_eq idle-gold "$CG_VAL" 0 "tenant-gold (guaranteed) cpu.idle"
on=$(victim_steal)
on_delay=$(victim_delay)
say "victim steal with the best-effort tenant in cpu.idle: $on% (vcpud), $on_delay% (schedstat)"
expect_range idle-protects "$on" 0 10 "victim steal with cpu.idle and no caps, %"
grep -q "cannot write cpu.weight of tenant-batch" "$VCPUD_LOG" &&
	fail idle-weight "vcpud wrote cpu.weight to an idle group: $(grep -m1 'cpu.weight of tenant-batch' "$VCPUD_LOG")" ||
	pass idle-weight "no cpu.weight write refused on the idle group"
ctl --json status | grep -q '"last_tick_errors": *0' && pass idle-no-errors "ticks without errors" ||
	fail idle-no-errors "$(ctl --json status | head -c 300)"
kill -KILL "$VICTIM" "$N1" "$N2" 2>/dev/null

say "== cpu.max.burst: a VM using 0.8 pCPU in bursts of 1.6, capped at 1 pCPU"
ctl tenant create bursty --vcpus 4 --class burstable >/dev/null
start_vm b --duty 40 --duty-period 200; B=$VMPID
ctl vm register b --tenant bursty --pid "$B" >/dev/null || abort_scenario "register b"
vcpud_wait_ticks 2
G=$CG/vcpud.slice/tenant-bursty/vm-b
# vcpud writes cpu.max.burst 0 for an uncapped VM; the cap here is by hand
# (throttling is off), the burst is set around it in the kernel's order
cg_read "$G/cpu.max.burst"; expect_eq burst-uncapped "$CG_VAL" 0 "an uncapped VM's cpu.max.burst"
# vcpud would put its own cpu.max back: the rest without it
vcpud_stop
# the kernel's rule that vcpud's engine works around: no burst above the
# quota, whichever is written last
cg_write "$G/cpu.max" "50000 100000" || fail burst-setup "cpu.max: $CG_ERR"
cg_refuse burst-above-quota "$G/cpu.max.burst" 50001 "Invalid argument"
cg_try burst-at-quota "$G/cpu.max.burst" 50000
cg_refuse quota-below-burst "$G/cpu.max" "40000 100000" "Invalid argument"
# bstat: "nr_periods nr_throttled throttled_usec nr_bursts burst_usec"
bstat() { awk '{ v[$1] = $2 } END { print v["nr_periods"] + 0, v["nr_throttled"] + 0, v["throttled_usec"] + 0, v["nr_bursts"] + 0, v["burst_usec"] + 0 }' "$G/cpu.stat"; }
measure() { # BURST: throttled periods per 100, throttled ms per s, over 10 s
	cg_write "$G/cpu.max.burst" 0 || fail "burst-$1" "cannot lower cpu.max.burst: $CG_ERR"
	cg_write "$G/cpu.max" "100000 100000" || fail "burst-$1" "cannot write cpu.max: $CG_ERR"
	cg_write "$G/cpu.max.burst" "$1" || fail "burst-$1" "cannot write cpu.max.burst $1: $CG_ERR"
	sleep 2
	_a=$(bstat); sleep 10; _b=$(bstat)
	echo "$_a $_b" | awk '{ p = $6 - $1; t = $7 - $2; printf "%.1f %.1f %d %.1f\n", p ? t * 100 / p : 0, ($8 - $3) / 10000, $9 - $4, ($10 - $5) / 10000 }'
}
set -- $(measure 0)
say "burst 0:      $1 of 100 periods throttled, $2 ms/s throttled"
t0=$1 ms0=$2
set -- $(measure 100000)
say "burst 100000: $1 of 100 periods throttled, $2 ms/s throttled, $3 bursts, $4 ms/s from the burst"
t1=$1 ms1=$2
awk -v a="$t0" -v b="$t1" 'BEGIN { exit !(b < a) }' &&
	pass burst-fewer-stalls "throttled periods: $t0 -> $t1 of 100 with one period's worth of burst ($ms0 -> $ms1 ms/s)" ||
	fail burst-fewer-stalls "throttled periods: $t0 -> $t1 of 100 ($ms0 -> $ms1 ms/s)"
t_done
