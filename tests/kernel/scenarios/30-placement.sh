#!/bin/sh
# 30-placement.sh - admission and CPU pools in a real kernel. Policy: host
# CPU 0 housekeeping, 2-3 dedicated, 1 shared (a 1-vCPU shared VM). A dedicated VM's vCPU threads
# run each on its own pCPU (Cpus_allowed_list), a shared VM's vCPUs avoid
# the dedicated pCPUs, and every VM's emulator threads sit on housekeeping.
. "$VCPUD_SRC/tests/kernel/lib.sh"

POLICY=/tmp/policy.yaml
sed -e 's/^  housekeeping_cpus: .*/  housekeeping_cpus: "0"/' \
	-e 's/^  dedicated_cpus: .*/  dedicated_cpus: "2-3"/' \
	"$VCPUD_SRC/policies/default.yaml" > "$POLICY"
vcpud_start "$POLICY" || abort_scenario "vcpud did not start"
check tenant "tenant acme" ctl tenant create acme --vcpus 8
check admit-dedicated "admit ded: 2 dedicated vCPUs" \
	ctl vm admit ded --tenant acme --vcpus 2 --cpu-policy dedicated
ctl --json host | grep -q '"dedicated": "2-3"' && pass host-pools "dedicated pool 2-3" \
	|| fail host-pools "$(ctl --json host | grep -A3 '"pools"')"

fakevm_start /tmp/ded.out --vcpus 2 --idle || abort_scenario "fakevm ded"
ded=$FAKEVM_PID
check register-ded "register ded (binds to its reservation)" ctl vm register ded --tenant acme --pid "$ded"
# one vCPU: a VM never gets more vCPUs on a node than the shared pCPUs there
fakevm_start /tmp/sh.out --vcpus 1 --idle || abort_scenario "fakevm sh"
sh_pid=$FAKEVM_PID
check register-shared "register sh (admitted shared on the fly)" ctl vm register sh --tenant acme --pid "$sh_pid"

# allowed: the CPU list a thread may run on (cpuset and affinity together)
allowed() { sed -n 's/^Cpus_allowed_list:[[:space:]]*//p' "/proc/$1/task/$2/status"; }
d0=$(fakevm_tid /tmp/ded.out 0); d1=$(fakevm_tid /tmp/ded.out 1)
s0=$(fakevm_tid /tmp/sh.out 0)
wait_for 5 sh -c "[ \"\$(sed -n 's/^Cpus_allowed_list:[[:space:]]*//p' /proc/$ded/task/$d0/status)\" = 2 ]"
# sh's placement pass may come after ded's (a pass waits for the changes
# that follow within the placement delay)
wait_for 5 sh -c "[ \"\$(sed -n 's/^Cpus_allowed_list:[[:space:]]*//p' /proc/$sh_pid/task/$s0/status)\" = 1 ]"
a=$(allowed "$ded" "$d0"); b=$(allowed "$ded" "$d1")
expect_eq ded-vcpu0 "$a" 2 "ded vCPU 0 Cpus_allowed_list"
expect_eq ded-vcpu1 "$b" 3 "ded vCPU 1 Cpus_allowed_list"
expect_eq shared-vcpu0 "$(allowed "$sh_pid" "$s0")" 1 "sh vCPU 0 avoids the dedicated pCPUs"
for t in $(fakevm_emu_tids /tmp/ded.out) $(fakevm_emu_tids /tmp/sh.out); do
	p=$ded; [ -d "/proc/$ded/task/$t" ] || p=$sh_pid
	expect_eq "emulator-$t" "$(allowed "$p" "$t")" 0 "emulator thread $t on housekeeping"
done
cg_read "$CG/vcpud.slice/tenant-acme/vm-ded/cpuset.mems"
expect_eq ded-mems "$CG_VAL" 0 "ded cpuset.mems"

# refused: a third dedicated vCPU, with the figures; nothing changes
if out=$(ctl vm admit more --tenant acme --vcpus 1 --cpu-policy dedicated 2>&1); then
	fail dedicated-full "admitted a third dedicated vCPU: $out"
else
	case "$out" in *"dedicated pool"*) pass dedicated-full "$out" ;; *) fail dedicated-full "$out" ;; esac
fi
# release puts the pCPUs back
check release-ded "release ded" ctl vm release ded
check readmit "the dedicated pCPUs are free again" \
	ctl vm admit ded2 --tenant acme --vcpus 2 --cpu-policy dedicated
vcpud_stop
t_done
