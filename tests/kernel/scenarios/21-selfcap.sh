#!/bin/sh
# 21-selfcap.sh - a VM held back by its own tenant's cap is not a victim.
# A burstable tenant capped at cpu_max_cores 0.5 runs a spinning 2-vCPU VM
# beside a spinning best-effort VM on the same pCPUs 2-3. The capped VM
# accumulates run_delay (steal as seen from the host) because of its own
# tenant's cpu.max, not because of its neighbour: vcpud must see that in
# the tenant's cpu.stat and neither call it a victim nor cap the neighbour.
. "$VCPUD_SRC/tests/kernel/lib.sh"

POLICY=/tmp/policy.yaml
sed -e 's/^  high_pct: .*/  high_pct: 30/' -e 's/^  low_pct: .*/  low_pct: 15/' \
	-e 's/^  breach_s: .*/  breach_s: 2/' "$VCPUD_SRC/policies/demo.yaml" > "$POLICY"
# the scenario's own processes stay on housekeeping CPUs 0-1 (see 20-throttle)
taskset -p 0x3 $$ >/dev/null || note "cannot pin the scenario shell to CPUs 0-1"
vcpud_start "$POLICY" || abort_scenario "vcpud did not start"
check tenant-capped "burstable tenant capped at 0.5 cores" \
	ctl tenant create web --vcpus 4 --class burstable --cpu-max 0.5
check tenant-batch "best-effort tenant" ctl tenant create batch --vcpus 4 --class best-effort
pinned_vm_start selfcap 0xc || abort_scenario "fakevm selfcap"
check register-selfcap "register selfcap" ctl vm register selfcap --tenant web --pid "$VMPID"
pinned_vm_start neighbour 0xc || abort_scenario "fakevm neighbour"
check register-neighbour "register neighbour" ctl vm register neighbour --tenant batch --pid "$VMPID"

vcpud_wait_ticks 2
worst=0
for i in $(seq 8); do
	vcpud_wait_ticks 1
	row=$(ctl top --once | awk '$1 == "selfcap"')
	s=$(echo "$row" | awk '{ print $6 }')
	note "tick $(status_field ticks): $row"
	worst=$(awk -v a="$worst" -v b="$s" 'BEGIN { print (b + 0 > a + 0) ? b : a }')
done
ctl top --once
expect_range selfcap-steals "$worst" 30 100 "selfcap's worst steal (its own tenant's cap)"
st=$(top_field selfcap 8)
expect_eq selfcap-not-victim "$st" none "selfcap's throttle state"
ev=$(ctl events | grep 'throttle\.' || true)
expect_eq neighbour-not-capped "$ev" "" "throttle events"
cap=$(top_field neighbour 7)
expect_eq neighbour-cap "$cap" "-" "neighbour's cap"
thr=$(ctl --json top | awk '/"name": "selfcap"/ { f = 1 } f && /"throttled_pct"/ { gsub(/[^0-9.]/, "", $2); print $2; exit }')
expect_range selfcap-throttled "$thr" 20 100 "selfcap's throttled share, %"
vcpud_stop
t_done
