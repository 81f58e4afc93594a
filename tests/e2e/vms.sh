#!/bin/sh
# vms.sh - VM registration through the real vcpud and vcpuctl on this host:
# vCPU threads found by name in /proc, the tenant's quota enforced, bad PIDs
# refused, an exiting VM marked gone within two ticks, release. The daemon
# runs with --dry-run on a cgroup root in a temp dir, so nothing is written
# (the real placement is tested in the QEMU guest, tests/kernel/).
SUITE=e2e-vms
. "$(dirname "$0")/lib.sh"
mkdir "$TMP/cgroup"

trap 'cleanup_fakes; stop_daemon; rm -rf "$TMP"' INT TERM

# a short grace period, so that a gone VM's capacity comes back in the test
sed -i 's/^  gone_grace_s: .*/  gone_grace_s: 2/' "$POLICY"
start_daemon || { bad "daemon starts"; finish; exit 1; }
ctl tenant create acme --vcpus 3 >/dev/null
start_fake "$TMP/web.out" --vcpus 2 --idle || bad "fakevm starts"
WEB=$FPID
T0=$(sed -n 's/^vcpu 0 tid=//p' "$TMP/web.out")
T1=$(sed -n 's/^vcpu 1 tid=//p' "$TMP/web.out")

expect_rc 0 "register a QEMU-like process" ctl vm register web --tenant acme --pid "$WEB"
contains "says 2 vCPUs" "2 vCPUs"
expect_rc 0 "vm show --json" ctl --json vm show web
contains "vCPU 0 thread found" "\"tid\": $T0"
contains "vCPU 1 thread found" "\"tid\": $T1"
contains "cgroup path of vcpu1" '"cgroup": "tenant-acme/vm-web/vcpu1"'
contains "state running" '"state": "running"'
contains "source registered" '"source": "registered"'
expect_rc 0 "vm list" ctl vm list
contains "list shows web" "web"
expect_rc 0 "tenant usage counts the VM" ctl --json tenant show acme
contains "vcpus_used 2" '"vcpus_used": 2'

# refusals, each leaving the database as it was
snapshot() { sqlite3 "$DB" "SELECT name, tenant, pid, vcpus, state FROM vms ORDER BY name; SELECT count(*) FROM events;"; }
BEFORE=$(snapshot)
start_fake "$TMP/big.out" --vcpus 2 --idle
BIG=$FPID
expect_rc 4 "over the vCPU quota refused" ctl vm register big --tenant acme --pid "$BIG"
contains "names the figures" "tenant acme: 2 of 3 vCPUs used, 2 requested"
expect_rc 4 "duplicate name refused" ctl vm register web --tenant acme --pid "$BIG"
expect_rc 4 "a PID registered twice refused" ctl vm register web2 --tenant acme --pid "$WEB"
expect_rc 3 "unknown tenant" ctl vm register x --tenant nosuch --pid "$BIG"
sleep 300 & SLEEPER=$!
VMPIDS="$VMPIDS $SLEEPER"
expect_rc 2 "a process without vCPU threads refused" ctl vm register x --tenant acme --pid "$SLEEPER"
contains "says no vCPU threads" "has no vCPU threads"
expect_rc 2 "a PID that does not exist refused" ctl vm register x --tenant acme --pid 4194000
contains "says it does not exist" "does not exist"
expect_rc 2 "path-like VM name refused" ctl vm register ../x --tenant acme --pid "$BIG"
OUT=$(curl -s --unix-socket "$SOCK" -X POST -d '{"name":"x","tenant":"acme","pid":"1"}' \
	-w ' %{http_code}' http://localhost/v1/vms)
contains "pid as a string is 400" '400'
AFTER=$(snapshot)
[ "$BEFORE" = "$AFTER" ] && ok "refusals left the database as it was" || bad "database changed: $BEFORE -> $AFTER"

# dry-run: nothing was written under the cgroup root
[ -z "$(ls -A "$TMP/cgroup")" ] && ok "dry-run created nothing" || bad "dry-run wrote: $(ls -R "$TMP/cgroup")"
log_soon "dry-run: would write '$T0' to $TMP/cgroup/tenant-acme/vm-web/vcpu0/cgroup.threads" \
	&& ok "dry-run logged the vCPU move" || bad "no dry-run line for the vCPU move"

# a VM whose process exits is marked gone within two ticks (1 s each)
kill -KILL "$WEB"; wait "$WEB" 2>/dev/null
i=0
while ! ctl --json vm show web | grep -q '"state": "gone"'; do
	i=$((i + 1)); [ $i -gt 25 ] && break
	sleep 0.1
done
[ $i -le 25 ] && ok "exited VM marked gone within 2.5 s" || bad "still not gone"
expect_rc 0 "tenant usage after exit" ctl --json tenant show acme
contains "a gone VM keeps its admission for the grace period" '"vcpus_used": 2'
i=0
while ! ctl --json tenant show acme | grep -q '"vcpus_used": 0'; do
	i=$((i + 1)); [ $i -gt 60 ] && break
	sleep 0.1
done
[ $i -le 60 ] && ok "after gone_grace_s (2 s) its capacity is free" || bad "capacity still held"
OUT=$(sqlite3 "$DB" "SELECT json_extract(details, '$.reason') FROM events WHERE action = 'vm.unadmit' AND target = 'vm/web';")
contains "with an event naming why" "gone for"
expect_rc 0 "the gone VM is still listed" ctl --json vm show web
contains "without a placement" '"placement": null'
expect_rc 4 "tenant with a gone VM cannot be deleted" ctl tenant delete acme
expect_rc 0 "release the gone VM" ctl vm release web
expect_rc 3 "released VM is unknown" ctl vm show web
expect_rc 3 "release of an unknown VM" ctl vm release web
expect_rc 0 "the quota is free again" ctl vm register big --tenant acme --pid "$BIG"
expect_rc 0 "release a running VM" ctl vm release big
kill -0 "$BIG" 2>/dev/null && ok "a released VM keeps running" || bad "released VM died"
expect_rc 0 "tenant delete after release" ctl tenant delete acme
OUT=$(sqlite3 "$DB" "SELECT action FROM events ORDER BY id;" | tr '\n' ' ')
contains "audit log: admit+register, gone, grace, release" "vm.admit vm.register vm.state vm.unadmit vm.release"

# discovery: a VMM nobody registered is listed, unmanaged and left alone
start_fake "$TMP/stray.out" --vcpus 1 --idle -name guest=stray,debug-threads=on
STRAY=$FPID
sleep 2.2
expect_rc 0 "vm list with a stray VMM" ctl --json vm list
contains "found in /proc" '"name": "stray"'
contains "with no tenant" '"tenant": null'
contains "unmanaged" '"managed": false'
OUT=$(sqlite3 "$DB" "SELECT count(*) FROM vms WHERE name = 'stray';")
[ "$OUT" = 0 ] && ok "an unmanaged VM is not stored" || bad "stray stored: $OUT"

# discovery.tenant_from_name: a VM named TENANT.REST is placed by itself
ctl tenant create auto --vcpus 4 >/dev/null
sed -i 's/^  tenant_from_name: false/  tenant_from_name: true/' "$POLICY"
kill -HUP "$DAEMON_PID"
start_fake "$TMP/auto.out" --vcpus 2 --idle -name guest=auto.web-1,debug-threads=on
AUTO=$FPID
i=0
while ! ctl --json vm show auto.web-1 2>/dev/null | grep -q '"source": "proc"'; do
	i=$((i + 1)); [ $i -gt 30 ] && break
	sleep 0.1
done
[ $i -le 30 ] && ok "auto.web-1 registered by discovery within 3 s" || bad "auto.web-1 not registered"
expect_rc 0 "its tenant from its name" ctl --json vm show auto.web-1
contains "tenant auto" '"tenant": "auto"'
contains "its vCPU 1 thread" "\"tid\": $(sed -n 's/^vcpu 1 tid=//p' "$TMP/auto.out")"
kill -KILL "$AUTO"; wait "$AUTO" 2>/dev/null
i=0
while ! ctl --json vm show auto.web-1 | grep -q '"state": "gone"'; do
	i=$((i + 1)); [ $i -gt 30 ] && break
	sleep 0.1
done
[ $i -le 30 ] && ok "an exited discovered VM is marked gone" || bad "auto.web-1 not gone"

# the history: a VM's rows are written to the database together, a few
# times a minute (src/daemon/history.h); `vm stats` shows the ones still
# waiting too, and a clean stop writes them all
ctl tenant create hist --vcpus 2 >/dev/null
start_fake "$TMP/hist.out" --vcpus 2 --idle
expect_rc 0 "register hist-1" ctl vm register hist-1 --tenant hist --pid "$FPID"
sleep 3.5
N1=$(ctl --json vm stats hist-1 | grep -c '"ts_ms"')
[ "$N1" -ge 2 ] && ok "vm stats shows $N1 samples after 3 ticks" || bad "vm stats: $N1 samples"
D1=$(sqlite3 "$DB" "SELECT count(*) FROM vm_samples WHERE vm = 'hist-1'")
stop_daemon
D2=$(sqlite3 "$DB" "SELECT count(*) FROM vm_samples WHERE vm = 'hist-1'")
[ "$D2" -ge "$N1" ] && ok "a clean stop writes every sample ($D1 in the database before, $D2 after)" \
	|| bad "after the stop $D2 samples in the database, vm stats showed $N1"
start_daemon || bad "daemon restarts"
N2=$(ctl --json vm stats hist-1 | grep -c '"ts_ms"')
[ "$N2" -ge "$D2" ] && ok "and they are there after a restart ($N2)" || bad "after the restart: $N2 samples"

# a vCPU hot-plugged into a registered VM (a new "CPU 2/KVM" thread) is
# found by the thread count of its task directory, read every 10 ticks per
# VM (src/registry/registry.c, STAT_RECHECK_PASSES), and placed
ctl tenant create plug --vcpus 3 >/dev/null
start_fake "$TMP/plug.out" --vcpus 2 --spare 1 --idle
PLUG=$FPID
expect_rc 0 "admit plug-1 with 3 vCPUs" ctl vm admit plug-1 --tenant plug --vcpus 3
expect_rc 0 "register its process, 2 vCPU threads so far" ctl vm register plug-1 --tenant plug --pid "$PLUG"
sleep 2.5 # a few passes: the process is watched, its steady count known
kill -WINCH "$PLUG"
wait_for "hot-plugged vCPU thread started" 20 grep -q '^vcpu 2 tid=' "$TMP/plug.out"
T2=$(sed -n 's/^vcpu 2 tid=//p' "$TMP/plug.out")
wait_for "the hot-plugged vCPU 2 (thread $T2) is found within 12 s" 120 shows plug-1 "\"tid\": $T2"
log_soon "dry-run: would write '$T2' to $TMP/cgroup/tenant-plug/vm-plug-1/vcpu2/cgroup.threads" \
	&& ok "and placed in its vcpu2 group" || bad "no dry-run line for the hot-plugged vCPU"

cleanup_fakes
finish
