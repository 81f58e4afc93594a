#!/bin/sh
# 01-cgroup-rules.sh - the cgroup v2 layout vcpud builds, made by hand with
# shell writes, and the kernel rules it relies on (FACTS.md, "Working order"):
#   vcpud.slice/tenant-a/vm-x/{vcpu0,vcpu1}   (vcpuN threaded)
# A fake VM is moved in (PID to vm-x, each vCPU TID to its vcpuN), vcpu0 is
# capped with cpu.max and measured from schedstat, memory.max on the VM is
# enforced, and the refusals (EOPNOTSUPP, EBUSY, EINVAL) come back as stated.
. "$VCPUD_SRC/tests/kernel/lib.sh"

S=$CG/vcpud.slice
T=$S/tenant-a
VM=$T/vm-x

# --- the tree --------------------------------------------------------------
cg_try root-subtree "$CG/cgroup.subtree_control" "+cpu +cpuset +memory"
mkdir "$S" || abort_scenario "mkdir $S"
cg_try slice-subtree "$S/cgroup.subtree_control" "+cpu +cpuset +memory"
mkdir "$T" || abort_scenario "mkdir $T"
cg_try tenant-subtree "$T/cgroup.subtree_control" "+cpu +cpuset +memory"
mkdir "$VM" "$VM/vcpu0" "$VM/vcpu1" || abort_scenario "mkdir $VM/vcpuN"
cg_try vcpu0-threaded "$VM/vcpu0/cgroup.type" threaded
cg_try vcpu1-threaded "$VM/vcpu1/cgroup.type" threaded
cg_read "$VM/cgroup.type"
expect_eq vm-type "$CG_VAL" "domain threaded" "vm-x cgroup.type"
cg_refuse vm-memory-eopnotsupp "$VM/cgroup.subtree_control" "+memory" "Operation not supported"
cg_try vm-subtree "$VM/cgroup.subtree_control" "+cpu +cpuset"
cg_read "$VM/cgroup.subtree_control"
expect_eq vm-subtree-read "$CG_VAL" "cpuset cpu"
cg_refuse threaded-is-one-way "$VM/vcpu0/cgroup.type" domain "Invalid argument"

# --- moving a fake VM in -----------------------------------------------------
fakevm_start /tmp/vm-x.out --vcpus 2 --name vm-x || abort_scenario "fakevm did not start"
pid=$FAKEVM_PID
tid0=$(fakevm_tid /tmp/vm-x.out 0)
tid1=$(fakevm_tid /tmp/vm-x.out 1)
note "fakevm pid=$pid vcpu0=$tid0 vcpu1=$tid1"
cg_try move-pid "$VM/cgroup.procs" "$pid"
cg_try move-tid0 "$VM/vcpu0/cgroup.threads" "$tid0"
cg_try move-tid1 "$VM/vcpu1/cgroup.threads" "$tid1"
if grep -qx "$pid" "$VM/cgroup.procs"; then pass procs-readback "$pid in vm-x/cgroup.procs"
else fail procs-readback "vm-x/cgroup.procs: $(cat "$VM/cgroup.procs" | tr '\n' ' ')"; fi
cg_read "$VM/vcpu0/cgroup.threads"
expect_eq threads0-readback "$CG_VAL" "$tid0" "vcpu0/cgroup.threads"
cg_read "$VM/vcpu1/cgroup.threads"
expect_eq threads1-readback "$CG_VAL" "$tid1" "vcpu1/cgroup.threads"
cg_read "/proc/$pid/task/$tid0/cgroup"
expect_eq tid0-cgroup "$CG_VAL" "0::/vcpud.slice/tenant-a/vm-x/vcpu0"
# the other threads (main loop, call_rcu, IO) stay in the VM's domain
nemu=$(grep -c . "$VM/cgroup.threads")
expect_eq emulator-threads-stay "$nemu" 3 "threads left in vm-x/cgroup.threads:"
# reading a threaded cgroup's cgroup.procs is refused
if r=$(cat "$VM/vcpu0/cgroup.procs" 2>&1); then
	fail threaded-procs-read "read vcpu0/cgroup.procs: '$r', want Operation not supported"
else
	case "$r" in *"Operation not supported"*) pass threaded-procs-read "$r" ;;
	*) fail threaded-procs-read "got '$r', want Operation not supported" ;; esac
fi

# a TID into another threaded domain's cgroup.threads: EOPNOTSUPP
mkdir "$T/vm-y" "$T/vm-y/vcpu0" && echo threaded > "$T/vm-y/vcpu0/cgroup.type"
cg_refuse tid-other-domain "$T/vm-y/vcpu0/cgroup.threads" "$tid0" "Operation not supported"
# a PID into a non-leaf domain with controllers enabled: EBUSY
cg_refuse pid-into-inner-domain "$T/cgroup.procs" "$pid" "Device or resource busy"
# +memory in the subtree_control of a cgroup holding processes: EBUSY
mkdir "$T/busy"
sleep 600 & T_PIDS="$T_PIDS $!"; sleeper=$!
echo "$sleeper" > "$T/busy/cgroup.procs"
cg_refuse memory-with-procs "$T/busy/cgroup.subtree_control" "+memory" "Device or resource busy"
kill "$sleeper"

# --- cpu.max on one vCPU -----------------------------------------------------
cg_try vcpu0-cpu-max "$VM/vcpu0/cpu.max" "10000 100000"
cg_read "$VM/vcpu0/cpu.max"
expect_eq vcpu0-cpu-max-read "$CG_VAL" "10000 100000"
fr=$(sched_fractions 2 "$tid0" "$tid1")
note "over 2 s (tid run delay): $(echo "$fr" | tr '\n' ';')"
expect_range vcpu0-capped "$(sched_run "$tid0" "$fr")" 0.06 0.15 "vcpu0 run fraction"
expect_range vcpu1-free "$(sched_run "$tid1" "$fr")" 0.80 1.10 "vcpu1 run fraction"
thr=$(awk '$1 == "nr_throttled" { print $2 }' "$VM/vcpu0/cpu.stat")
if [ "${thr:-0}" -gt 0 ]; then pass vcpu0-throttled "nr_throttled $thr"
else fail vcpu0-throttled "vcpu0/cpu.stat: $(tr '\n' ' ' < "$VM/vcpu0/cpu.stat")"; fi

# --- cpuset pinning of one vCPU ------------------------------------------------
cg_try vcpu1-pin "$VM/vcpu1/cpuset.cpus" 2
expect_eq vcpu1-affinity "$(awk '/^Cpus_allowed_list/ { print $2 }' "/proc/$pid/task/$tid1/status")" 2 \
	"Cpus_allowed_list of vcpu1"

# --- memory.max on the VM domain -------------------------------------------------
cg_try vm-memory-max "$VM/memory.max" 33554432
oom0=$(awk '$1 == "oom_kill" { print $2 }' "$VM/memory.events")
# a small allocation inside the VM succeeds...
sh -c "echo \$\$ > $VM/cgroup.procs && exec $FAKEVM --vcpus 0 --alloc 8M --exit" > /tmp/alloc-small.out 2>&1
rc=$?
if [ "$rc" -eq 0 ] && grep -q '^alloc ok' /tmp/alloc-small.out; then pass alloc-under-max "8 MiB under 32 MiB"
else fail alloc-under-max "rc=$rc: $(tail -n 2 /tmp/alloc-small.out | tr '\n' ' ')"; fi
# ...and one beyond memory.max is OOM-killed inside the VM's cgroup
sh -c "echo \$\$ > $VM/cgroup.procs && exec $FAKEVM --vcpus 0 --alloc 64M --exit" > /tmp/alloc-big.out 2>&1
rc=$?
oom1=$(awk '$1 == "oom_kill" { print $2 }' "$VM/memory.events")
if [ "$rc" -ne 0 ] && ! grep -q '^alloc ok' /tmp/alloc-big.out; then
	pass alloc-over-max "64 MiB over 32 MiB: rc=$rc"
else
	fail alloc-over-max "64 MiB over 32 MiB: rc=$rc $(tail -n 1 /tmp/alloc-big.out)"
fi
expect_eq oom-kill-counted "$((oom1 - oom0))" 1 "memory.events oom_kill delta"
if kill -0 "$pid" 2>/dev/null; then pass vm-survives-oom "fakevm $pid still runs"
else fail vm-survives-oom "the OOM killer took the fake VM $pid"; fi

# --- teardown -----------------------------------------------------------------
t_cleanup
if cg_rmtree "$S"; then pass rmdir-tree "vcpud.slice removed"
else fail rmdir-tree "left: $(find "$S" -type d | tr '\n' ' ')"; fi

t_done
