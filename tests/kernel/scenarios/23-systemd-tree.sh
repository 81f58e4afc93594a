#!/bin/sh
# 23-systemd-tree.sh - the cgroup layout of the installed units
# (deploy/vcpud-tree.service.in, deploy/vcpud.service.in) on a real cgroup
# v2 tree, with the guest's shell in systemd's place (no systemd here):
# the unit's cgroup machine.slice/vcpud-tree.service with the controllers
# Delegate= passes down, deploy/vcpud-tree started in it moves itself into
# keeper/, and vcpud --cgroup-root .../vcpud-tree.service/vms enables the
# controllers in the delegated group (which then holds no process) and
# builds the VMs' tree beside keeper/; a VM is placed there, the tree is
# adopted as it is after vcpud is killed and started again (the keeper
# untouched), and a released VM goes back where it came from.
. "$VCPUD_SRC/tests/kernel/lib.sh"

POLICY=$VCPUD_SRC/policies/default.yaml
UNIT=$CG/machine.slice/vcpud-tree.service
ROOT=$UNIT/vms

# systemd's part: the slice and the unit's group, the controllers passed
# down to it (Delegate=cpu cpuset memory)
mkdir -p "$UNIT"
echo "+cpu +cpuset +memory" > "$CG/cgroup.subtree_control"
echo "+cpu +cpuset +memory" > "$CG/machine.slice/cgroup.subtree_control"
cg_read "$UNIT/cgroup.controllers"; expect_eq delegated-controllers "$CG_VAL" "cpuset cpu memory"
# as systemd starts the unit: its process begins in the unit's group
sh -c "echo \$\$ > $UNIT/cgroup.procs && exec sh $VCPUD_SRC/deploy/vcpud-tree" > /tmp/tree.out 2>&1 &
KEEPER=$!
T_PIDS="$T_PIDS $KEEPER"
wait_for 5 grep -qx "$KEEPER" "$UNIT/keeper/cgroup.procs" &&
	pass keeper-leaf "vcpud-tree (pid $KEEPER) moved itself into keeper/: $(cat /tmp/tree.out)" ||
	fail keeper-leaf "keeper/cgroup.procs: $(cat "$UNIT/keeper/cgroup.procs" 2>&1); $(cat /tmp/tree.out)"
cg_read "$UNIT/cgroup.procs"; expect_eq unit-empty "$CG_VAL" "" "processes in the unit's own group"

vcpud_start "$POLICY" --cgroup-root "$ROOT" || abort_scenario "vcpud did not start"
pass daemon-start "vcpud up, cgroup root $(status_field cgroup_root)"
cg_read "$UNIT/cgroup.subtree_control"; expect_eq unit-subtree "$CG_VAL" "cpuset cpu memory"
ctl tenant create acme --vcpus 4 --weight 200 --class guaranteed >/dev/null
fakevm_start /tmp/web.out --vcpus 2 || abort_scenario "fakevm web"
web=$FAKEVM_PID
w0=$(fakevm_tid /tmp/web.out 0)
origin=$(sed -n 's/^0:://p' "/proc/$web/cgroup")
check register-web "vm register web pid $web" ctl vm register web --tenant acme --pid "$web"
VM=$ROOT/tenant-acme/vm-web
wait_for 5 grep -qx "$w0" "$VM/vcpu0/cgroup.threads" &&
	pass vcpu0-in-tree "$w0 in vcpud-tree.service/vms/tenant-acme/vm-web/vcpu0" ||
	fail vcpu0-in-tree "vcpu0/cgroup.threads: $(cat "$VM/vcpu0/cgroup.threads" 2>&1 | tr '\n' ' ')"
cg_read "$ROOT/tenant-acme/cpu.weight"; expect_eq tenant-weight "$CG_VAL" 200
ls "$UNIT" | grep -q '^tenant-' && fail beside "tenants outside vms/: $(ls "$UNIT" | tr '\n' ' ')" ||
	pass beside "the unit's group holds keeper/ and vms/ only: $(ls -d "$UNIT"/*/ | xargs -n1 basename | tr '\n' ' ')"

# vcpud killed and started again: the tree is adopted, the keeper untouched
vcpud_wait_ticks 2
kill -KILL "$VCPUD_PID"; wait "$VCPUD_PID" 2>/dev/null
vcpud_start "$POLICY" --cgroup-root "$ROOT" || abort_scenario "vcpud did not restart"
expect_eq restart-zero-writes "$(status_field last_tick_writes)" 0 "writes in the first tick after the restart"
grep -qx "$w0" "$VM/vcpu0/cgroup.threads" && pass restart-kept "vcpu0 kept its thread" ||
	fail restart-kept "vcpu0 lost its thread"
grep -qx "$KEEPER" "$UNIT/keeper/cgroup.procs" && pass keeper-kept "the keeper stays in keeper/" ||
	fail keeper-kept "keeper/cgroup.procs: $(cat "$UNIT/keeper/cgroup.procs")"

# a release sends the process back where it came from
check release "vm release web" ctl vm release web
now=$(sed -n 's/^0:://p' "/proc/$web/cgroup")
expect_eq released-home "$now" "$origin" "the released VM's cgroup"
vcpud_stop
t_done
