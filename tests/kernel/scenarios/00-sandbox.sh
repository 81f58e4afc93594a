#!/bin/sh
# 00-sandbox.sh - the sandbox itself: cgroup2 is mounted with the controllers
# vcpud needs, and the fake VM shows vCPU threads the way QEMU names them.
. "$VCPUD_SRC/tests/kernel/lib.sh"

if grep -q " $CG cgroup2 " /proc/mounts; then
	pass cgroup2-mounted "$(grep " $CG " /proc/mounts | cut -d' ' -f1-4)"
else
	fail cgroup2-mounted "no cgroup2 on $CG: $(grep " $CG " /proc/mounts)"
fi

cg_read "$CG/cgroup.controllers"
ctrls=$CG_VAL
for c in cpu cpuset memory; do
	if cg_has "$CG/cgroup.controllers" "$c"; then
		pass "controller-$c" "$ctrls"
	else
		fail "controller-$c" "missing from cgroup.controllers: $ctrls"
	fi
done
cg_read "$CG/cpuset.cpus.effective"
expect_eq cpus "$CG_VAL" "0-3" "root cpuset.cpus.effective"

# schedstat (CONFIG_SCHED_INFO) is what vcpud samples steal from
ss_cpu=""; ss_delay=""; ss_slices=""
read -r ss_cpu ss_delay ss_slices < /proc/$$/schedstat
case "$ss_cpu.$ss_delay.$ss_slices" in
*[!0-9.]*|*..*|.*|*.) fail schedstat "/proc/$$/schedstat: '$ss_cpu $ss_delay $ss_slices'" ;;
*) pass schedstat "cpu_ns=$ss_cpu run_delay_ns=$ss_delay slices=$ss_slices" ;;
esac

if ! fakevm_start /tmp/fakevm.out --vcpus 2; then
	abort_scenario "fakevm did not start: $(cat /tmp/fakevm.out)"
fi
pass fakevm-start "pid=$FAKEVM_PID"

for n in 0 1; do
	tid=$(fakevm_tid /tmp/fakevm.out $n)
	cg_read "/proc/$FAKEVM_PID/task/$tid/comm"
	expect_eq "vcpu$n-comm" "$CG_VAL" "CPU $n/KVM" "tid $tid:"
done
# exactly two vCPU threads among the process's threads (others: main, call_rcu, IO)
nv=0; names=""
for t in /proc/$FAKEVM_PID/task/*; do
	read -r c < "$t/comm"
	names="$names[$c]"
	case "$c" in "CPU "*/KVM) nv=$((nv + 1)) ;; esac
done
expect_eq vcpu-threads "$nv" 2 "threads $names:"

t_done
