#!/bin/sh
# bench-scale.sh - bench-scale's figures in real mode (issue 10, item 6):
# vcpud without --dry-run on the guest's own cgroup v2 tree, with about as
# many idle 8-vCPU fakevm processes as an 8-CPU guest admits (a VM may not
# have more vCPUs than the host has CPUs; 60 x 8 vCPUs on 8 CPUs at the
# policy's highest cpu_ratio, 64, no housekeeping pool: 512 at most), each
# registered; then what a steady tick costs. Not part of `make kernel`
# (run.sh leaves bench-* scenarios out unless named): `make
# bench-scale-kernel`. TCG runs the guest far slower than the host, so the
# times are TCG's; the counts (cgroup writes, SQL statements) and the
# memory are what a host would show, next to dry-run's `make bench-scale`.
. "$VCPUD_SRC/tests/kernel/lib.sh"

N=60
V=8
HZ=100 # the guest kernel's USER_HZ
POLICY=/tmp/policy.yaml
sed -e 's/^  housekeeping_cpus: .*/  housekeeping_cpus: ""/' \
	-e 's/^  cpu_ratio: .*/  cpu_ratio: 64/' \
	"$VCPUD_SRC/policies/default.yaml" > "$POLICY"
grep -q '^  cpu_ratio: 64$' "$POLICY" || abort_scenario "policy edit"
[ "$(nproc)" -ge $V ] || abort_scenario "$(nproc) CPUs: a $V-vCPU VM needs $V (VCPUD_QEMU_SMP=8)"
vcpud_start "$POLICY" --log-level info || abort_scenario "vcpud did not start"
ctl tenant create bench --vcpus $((N * V)) >/dev/null || abort_scenario "tenant create"

# figure TEXT: a line of figures (plain, so that run.sh --show prints it)
figure() { echo "bench-scale (real, TCG): $*"; }
up_cs() { awk '{ printf "%d", $1 * 100 }' /proc/uptime; }
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }

i=0
while [ $i -lt $N ]; do
	fakevm_start "/tmp/bench-$i.out" --vcpus $V --idle || abort_scenario "fakevm $i"
	eval "pid_$i=\$FAKEVM_PID"
	i=$((i + 1))
done
t0=$(up_cs)
i=0
while [ $i -lt $N ]; do
	eval "p=\$pid_$i"
	ctl vm register "vm-$i" --tenant bench --pid "$p" >/dev/null \
		|| abort_scenario "register vm-$i: $(ctl vm register "vm-$i" --tenant bench --pid "$p" 2>&1)"
	i=$((i + 1))
done
t1=$(up_cs)
figure "registration: $N VMs x $V vCPUs in $(((t1 - t0) * 10)) ms (one vcpuctl at a time, in TCG)"
vcpud_wait_ticks 3 || abort_scenario "no ticks"

# every vCPU thread in its group
placed=0
i=0
while [ $i -lt $N ]; do
	eval "p=\$pid_$i"
	k=0
	while [ $k -lt $V ]; do
		tid=$(fakevm_tid "/tmp/bench-$i.out" $k)
		grep -qx "$tid" "$CG/vcpud.slice/tenant-bench/vm-vm-$i/vcpu$k/cgroup.threads" 2>/dev/null \
			&& placed=$((placed + 1))
		k=$((k + 1))
	done
	i=$((i + 1))
done
expect_eq all-placed "$placed" $((N * V)) "vCPU threads in their vcpuN groups"

# a quiet window: CPU per tick from /proc, the daemon's own tick figures
c0=$(cpu_ticks "$VCPUD_PID"); k0=$(status_field ticks); w0=$(up_cs)
sleep 10
c1=$(cpu_ticks "$VCPUD_PID"); k1=$(status_field ticks); w1=$(up_cs)
dk=$((k1 - k0))
[ "$dk" -gt 0 ] || abort_scenario "no tick in the window"
figure "quiet window: $(((w1 - w0) * 10)) ms, $dk ticks, vcpud CPU $(((c1 - c0) * 1000 / HZ / dk)) ms per tick (TCG)"
tus=$(status_field last_tick_us); writes=$(status_field last_tick_writes)
sql=$(status_field last_tick_sql)
figure "last tick: $tus us, $sql SQL statements, $writes cgroup writes"
expect_eq steady-zero-writes "$writes" 0 "cgroup writes in a steady tick"
rss=$(awk '/^VmRSS:/ { print $2 }' "/proc/$VCPUD_PID/status")
anon=$(awk '/^RssAnon:/ { print $2 }' "/proc/$VCPUD_PID/status")
fds=$(ls "/proc/$VCPUD_PID/fd" | wc -l)
figure "vcpud: RSS $((rss / 1024)) MiB (anon $((anon / 1024)) MiB), $fds fds, $((N * V)) vCPU threads"
# the log says nothing in a steady state
l0=$(wc -l < "$VCPUD_LOG")
vcpud_wait_ticks 5 || abort_scenario "no ticks"
expect_eq quiet-log "$(($(wc -l < "$VCPUD_LOG") - l0))" 0 "log lines over 5 steady ticks"
vcpud_stop
