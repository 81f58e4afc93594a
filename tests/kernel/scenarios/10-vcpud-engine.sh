#!/bin/sh
# 10-vcpud-engine.sh - the real vcpud against a real cgroup v2 tree: it finds
# the cgroup2 mount itself (libcgroup + mountinfo), builds
# vcpud.slice/tenant-*/vm-*/vcpuN for registered fake VMs, keeps the knobs
# in step with the tenants within a tick, writes nothing when nothing
# changed (also after a restart), cleans up after a VM that exits, and
# refuses names that would escape the tree.
. "$VCPUD_SRC/tests/kernel/lib.sh"

S=$CG/vcpud.slice
POLICY=$VCPUD_SRC/policies/default.yaml
wait_ticks() { vcpud_wait_ticks "$@"; }

vcpud_start "$POLICY" || abort_scenario "vcpud did not start"
pass daemon-start "vcpud up, cgroup root $(status_field cgroup_root)"
grep -q "cgroup root $S" "$VCPUD_LOG" && pass discovered-root "$S" || fail discovered-root "$(grep 'ready' "$VCPUD_LOG")"
# Debian 12's 6.1 kernel has BTF and per-process task iterators: the BPF
# sampler (--sampler auto) is what the guest runs; the other scenarios'
# steal figures then come through it
SAMPLER=$(status_field sampler)
[ "$SAMPLER" = bpf ] && pass sampler-bpf "$(grep -m1 'sampler:' "$VCPUD_LOG" | sed 's/.*sampler: //')" \
	|| fail sampler-bpf "sampler '$SAMPLER': $(grep -m1 'sampler:' "$VCPUD_LOG")"

check tenant-acme "create acme" ctl tenant create acme --vcpus 4 --weight 200 --cpu-max 1.5 --memory 256M --class guaranteed
check tenant-other "create other" ctl tenant create other --vcpus 2 --class best-effort
fakevm_start /tmp/web.out --vcpus 2 || abort_scenario "fakevm web"
web=$FAKEVM_PID
w0=$(fakevm_tid /tmp/web.out 0)
w1=$(fakevm_tid /tmp/web.out 1)
check register-web "vm register web pid $web" ctl vm register web --tenant acme --pid "$web" --memory 64M

VM=$S/tenant-acme/vm-web
wait_for 5 grep -qx "$w0" "$VM/vcpu0/cgroup.threads" && pass vcpu0-thread "$w0 in vcpu0/cgroup.threads" \
	|| fail vcpu0-thread "vcpu0/cgroup.threads: $(cat "$VM/vcpu0/cgroup.threads" 2>&1 | tr '\n' ' ')"
grep -qx "$w1" "$VM/vcpu1/cgroup.threads" && pass vcpu1-thread "$w1 in vcpu1/cgroup.threads" \
	|| fail vcpu1-thread "vcpu1/cgroup.threads: $(cat "$VM/vcpu1/cgroup.threads" 2>&1 | tr '\n' ' ')"
grep -qx "$web" "$VM/cgroup.procs" && pass vm-process "$web in vm-web/cgroup.procs" \
	|| fail vm-process "vm-web/cgroup.procs: $(cat "$VM/cgroup.procs" 2>&1 | tr '\n' ' ')"
emu=$(fakevm_emu_tids /tmp/web.out | head -1)
if [ -n "$emu" ]; then
	grep -qx "$emu" "$VM/emulator/cgroup.threads" && pass emulator-thread "$emu in emulator/" \
		|| fail emulator-thread "emulator/cgroup.threads: $(cat "$VM/emulator/cgroup.threads" | tr '\n' ' ')"
fi
cg_read "$VM/vcpu0/cgroup.type"; expect_eq vcpu0-type "$CG_VAL" threaded
cg_read "$VM/cgroup.type"; expect_eq vm-type "$CG_VAL" "domain threaded"
cg_read "$VM/cgroup.subtree_control"; expect_eq vm-subtree "$CG_VAL" "cpuset cpu"
cg_read "$S/tenant-acme/cgroup.subtree_control"; expect_eq tenant-subtree "$CG_VAL" "cpuset cpu memory"
cg_read "$S/tenant-acme/cpu.weight"; expect_eq tenant-weight "$CG_VAL" 200
cg_read "$S/tenant-acme/cpu.max"; expect_eq tenant-cpu-max "$CG_VAL" "150000 100000"
cg_read "$S/tenant-acme/memory.max"; expect_eq tenant-memory "$CG_VAL" 268435456
cg_read "$VM/memory.max"; expect_eq vm-memory "$CG_VAL" 67108864
cg_read "$S/tenant-other/cpu.max"; expect_eq other-cpu-max "$CG_VAL" "max 100000"
OUT=$(ctl --json vm show web)
case "$OUT" in *"\"cgroup\": \"tenant-acme/vm-web/vcpu1\""*) pass vm-json-cgroup "vcpu_threads carry cgroup paths" ;;
*) fail vm-json-cgroup "$OUT" ;; esac

# a change of tenant weight and cap reaches the files within one tick
ctl tenant set acme --weight 300 --cpu-max none >/dev/null
wait_for 2 grep -qx 300 "$S/tenant-acme/cpu.weight" && pass weight-applied "300 within a tick" \
	|| fail weight-applied "cpu.weight $(cat "$S/tenant-acme/cpu.weight")"
cg_read "$S/tenant-acme/cpu.max"; expect_eq cap-lifted "$CG_VAL" "max 100000"
ctl tenant set acme --cpu-max 0.5 >/dev/null
wait_for 2 grep -qx "50000 100000" "$S/tenant-acme/cpu.max" && pass cap-applied "50000 100000" \
	|| fail cap-applied "cpu.max $(cat "$S/tenant-acme/cpu.max")"
ctl tenant set acme --cpu-max none >/dev/null

# nothing changed: the next ticks write nothing
wait_ticks 2
expect_eq steady-zero-writes "$(status_field last_tick_writes)" 0 "writes in the last tick"

# cpu.max on one vCPU limits that thread only (the engine leaves vCPU caps
# it was not asked for alone)
echo "10000 100000" > "$VM/vcpu0/cpu.max"
fr=$(sched_fractions 2 "$w0" "$w1")
note "vcpu0 capped at 10%: $(echo "$fr" | tr '\n' ';')"
expect_range vcpu0-capped "$(sched_run "$w0" "$fr")" 0.05 0.16 "vcpu0 run fraction"
expect_range vcpu1-free "$(sched_run "$w1" "$fr")" 0.50 1.05 "vcpu1 run fraction"
echo "max 100000" > "$VM/vcpu0/cpu.max"

# memory.max of a VM: an allocation beyond it fails inside that VM only
fakevm_start /tmp/mem.out --vcpus 1 --idle || abort_scenario "fakevm mem"
memvm=$FAKEVM_PID
check register-mem "vm register mem" ctl vm register mem --tenant other --pid "$memvm" --memory 32M
wait_for 5 grep -qx "$memvm" "$S/tenant-other/vm-mem/cgroup.procs" || fail mem-placed "not placed"
"$FAKEVM" --vcpus 0 --alloc 64M --exit > /tmp/alloc-in.out 2>&1 &
apid=$!
echo "$apid" > "$S/tenant-other/vm-mem/cgroup.procs" 2>/dev/null
wait "$apid"
arc=$?
grep -q "alloc ok" /tmp/alloc-in.out && fail alloc-in-vm "64M allocated inside a 32M VM" \
	|| pass alloc-in-vm "64M inside a 32M VM failed (exit $arc)"
"$FAKEVM" --vcpus 0 --alloc 64M --exit > /tmp/alloc-out.out 2>&1
grep -q "alloc ok" /tmp/alloc-out.out && pass alloc-outside "64M outside the VM succeeded" \
	|| fail alloc-outside "$(cat /tmp/alloc-out.out)"
kill -0 "$web" && pass neighbour-alive "web unaffected" || fail neighbour-alive "web died"

# a restart adopts the tree without rewriting it
wait_ticks 1
vcpud_stop
vcpud_start "$POLICY" || abort_scenario "vcpud did not restart"
expect_eq restart-zero-writes "$(status_field last_tick_writes)" 0 "writes in the first tick after restart"
grep -qx "$w0" "$VM/vcpu0/cgroup.threads" && pass restart-kept "threads stayed" || fail restart-kept "vcpu0 lost its thread"

# a VM whose process exits is marked gone and its cgroups removed
kill -KILL "$web"
wait "$web" 2>/dev/null
wait_for 4 sh -c "[ ! -d $VM ]" && pass gone-removed "vm-web removed" || fail gone-removed "$(ls "$VM" 2>&1 | tr '\n' ' ')"
OUT=$(ctl --json vm show web)
case "$OUT" in *'"state": "gone"'*) pass gone-state "state gone" ;; *) fail gone-state "$OUT" ;; esac
check release-web "release web" ctl vm release web
check release-mem "release mem" ctl vm release mem
wait_for 4 sh -c "[ ! -d $S/tenant-other/vm-mem ]" && pass released-removed "vm-mem removed" \
	|| fail released-removed "$(cat "$S/tenant-other/vm-mem/cgroup.procs" 2>&1 | tr '\n' ' ')"
kill -0 "$memvm" && pass released-alive "released VM keeps running" || fail released-alive "mem died"
cg_read "/proc/$memvm/cgroup"
expect_eq released-origin "$CG_VAL" "0::/" "released process back in its origin cgroup"

# names that would escape the tree are refused and create nothing
before=$(ls "$CG" "$S" | tr '\n' ' ')
for n in ../x ../../etc x/y .. .; do
	ctl tenant create "$n" --vcpus 1 >/dev/null 2>&1 && fail escape "tenant '$n' accepted"
	ctl vm register "$n" --tenant acme --pid "$memvm" >/dev/null 2>&1 && fail escape "vm '$n' accepted"
done
after=$(ls "$CG" "$S" | tr '\n' ' ')
expect_eq escape-nothing-created "$after" "$before" "cgroup tree unchanged"
ctl tenant delete other >/dev/null
check tenant-deleted "delete acme" ctl tenant delete acme
wait_for 4 sh -c "[ ! -d $S/tenant-acme ]" && pass tenant-removed "tenant-acme removed" \
	|| fail tenant-removed "$(ls "$S")"
vcpud_stop
t_done
