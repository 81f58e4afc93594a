#!/bin/sh
# admission.sh - overcommit admission through the real daemon on a fixture
# topology: 16 CPUs (2 nodes x 4 cores x 2 threads), housekeeping 0-1,
# dedicated 12-15, ratio 2.0. Shared capacity: node 0 has 6 shared pCPUs
# (12 vCPUs), node 1 has 4 (8 vCPUs). Admits succeed exactly up to capacity
# and the next is refused with the figures; 40 admits sent in parallel never
# overbook; dedicated pCPUs honour the thread policy; bad requests change
# nothing.
SUITE=e2e-admission
. "$(dirname "$0")/lib.sh"
sed -i -e 's/^  housekeeping_cpus: .*/  housekeeping_cpus: "0-1"/' \
	-e 's/^  dedicated_cpus: .*/  dedicated_cpus: "12-15"/' \
	-e 's/^  cpu_ratio: .*/  cpu_ratio: 2.0/' "$POLICY"

start_daemon || { bad "daemon starts"; finish; exit 1; }
ctl tenant create acme --vcpus 100 >/dev/null
ctl tenant create small --vcpus 4 --memory 1G >/dev/null

expect_rc 0 "host shows the topology" ctl --json host
contains "16 CPUs" '16 CPUs'
contains "shared pool" '"shared": "2-11"'
contains "dedicated pool" '"dedicated": "12-15"'

# a dry run decides and reserves nothing
expect_rc 0 "dry-run admit" ctl --json vm admit probe --tenant acme --vcpus 4 --dry-run
contains "dry run said so" '"dry_run": true'
OUT=$(sqlite3 "$DB" "SELECT count(*) FROM reservations;")
[ "$OUT" = 0 ] && ok "dry run reserved nothing" || bad "dry run reserved: $OUT"

# fill the shared pool one vCPU at a time: exactly 20 fit
n=0
for i in $(seq 1 20); do
	ctl vm admit "s$i" --tenant acme --vcpus 1 >/dev/null 2>&1 && n=$((n + 1))
done
[ "$n" -eq 20 ] && ok "20 shared vCPUs admitted (12 + 8)" || bad "only $n of 20 admitted"
expect_rc 4 "the 21st is refused" ctl vm admit s21 --tenant acme --vcpus 1
contains "refusal names node 0" "node 0: 12 of 12"
contains "refusal names node 1" "node 1: 8 of 8"
expect_rc 0 "release one" ctl vm release s20
expect_rc 0 "its room is free again" ctl vm admit s21 --tenant acme --vcpus 1

# dedicated: 2 free cores (12-13, 14-15)
expect_rc 0 "dedicated isolate 2 vCPUs" ctl --json vm admit d1 --tenant acme --vcpus 2 --cpu-policy dedicated --thread-policy isolate
contains "own pCPUs" '"pcpus": "12,14"'
expect_rc 4 "no third isolated core" ctl vm admit d2 --tenant acme --vcpus 1 --cpu-policy dedicated --thread-policy isolate
contains "says why" "dedicated pool"
expect_rc 2 "require with an odd count on SMT2" ctl vm admit d3 --tenant acme --vcpus 1 --cpu-policy dedicated --thread-policy require
# explain: where admission put it and why, in sentences; an unknown name
expect_rc 0 "explain a dedicated VM" ctl explain d1
echo "$OUT" | sed "s/^/   /"
contains "its pool and pCPUs" "admitted to the dedicated pool: pCPUs 12,14, one per vCPU, never"
contains "the thread policy" "(thread policy isolate)"
contains "the node's figures" "dedicated pCPUs in use"
contains "not judged before it runs" "no figures of it from its last tick"
expect_rc 0 "explain --json" ctl explain --json d1
contains "JSON placement" '"pool": "dedicated"'
expect_rc 3 "explain an unknown VM" ctl explain nosuch
contains "says so" "no VM 'nosuch'"
expect_rc 2 "explain without a name" ctl explain
contains "usage" "usage: vcpuctl explain VM"

# bad requests: nothing changes
snapshot() { sqlite3 "$DB" "SELECT vm, tenant, vcpus, shares, pcpus FROM reservations ORDER BY vm; SELECT count(*) FROM events;"; }
BEFORE=$(snapshot)
expect_rc 2 "unknown cpu policy" ctl vm admit x --tenant acme --vcpus 1 --cpu-policy gold
expect_rc 2 "unknown thread policy" ctl vm admit x --tenant acme --vcpus 1 --thread-policy sometimes
expect_rc 2 "more vCPUs than the host has" ctl vm admit x --tenant acme --vcpus 64
expect_rc 4 "tenant at quota" ctl vm admit x --tenant small --vcpus 5
contains "names the quota" "tenant small: 0 of 4 vCPUs used, 5 requested"
expect_rc 4 "memory quota" ctl vm admit x --tenant small --vcpus 1 --memory 2G
expect_rc 3 "unknown tenant" ctl vm admit x --tenant nosuch --vcpus 1
expect_rc 4 "admitted twice with another request" ctl vm admit d1 --tenant acme --vcpus 1
contains "names what differs" "this request differs: vcpus 1 (admitted with 2), cpu policy shared (admitted with dedicated)"
expect_rc 0 "the same admission again (a retry)" ctl --json vm admit d1 --tenant acme --vcpus 2 --cpu-policy dedicated --thread-policy isolate
contains "the same answer" '"pcpus": "12,14"'
OUT=$(curl -s -o /dev/null -w '%{http_code}' --unix-socket "$SOCK" -X DELETE 'http://localhost/v1/vms/nosuch?missing_ok=1')
[ "$OUT" = 204 ] && ok "release of an unknown VM with missing_ok=1: 204" || bad "missing_ok: $OUT"
expect_rc 0 "vcpuctl vm release --missing-ok of an unknown VM" ctl vm release nosuch --missing-ok
expect_rc 3 "release of an unknown VM" ctl vm release nosuch
OUT=$(curl -s --unix-socket "$SOCK" -X POST -d '{"name":"x","tenant":"acme","vcpus":1,"cpu_policy":7}' \
	-w ' %{http_code}' http://localhost/v1/vms/admit)
contains "a number for cpu_policy is 400" '400'
AFTER=$(snapshot)
[ "$BEFORE" = "$AFTER" ] && ok "bad requests changed nothing" || bad "changed: $BEFORE -> $AFTER"

# 40 admits in parallel into a fresh pool never overbook it
for i in $(seq 1 20); do ctl vm release "s$i" >/dev/null 2>&1; done
ctl vm release s21 >/dev/null 2>&1
i=0
pids=""
while [ $i -lt 40 ]; do
	i=$((i + 1))
	(ctl vm admit "p$i" --tenant acme --vcpus 1 >/dev/null 2>&1; echo $? >"$TMP/rc.$i") &
	pids="$pids $!"
done
wait $pids   # not a bare wait: that would wait for the daemon too
okc=$(cat "$TMP"/rc.* | grep -c '^0$')
busy=$(cat "$TMP"/rc.* | grep -c '^4$')
[ "$okc" -eq 20 ] && ok "40 parallel admits: exactly 20 admitted" || bad "parallel: $okc admitted"
[ "$busy" -eq 20 ] && ok "and 20 refused as over capacity" || bad "parallel: $busy refused"
OUT=$(sqlite3 "$DB" "SELECT count(*), coalesce(sum(vcpus), 0) FROM reservations WHERE cpu_policy = 'shared';")
[ "$OUT" = "20|20" ] && ok "the ledger holds 20 shared vCPUs" || bad "ledger: $OUT"
expect_rc 0 "host usage" ctl --json host
contains "node 0 full, not over" '"shared_admitted": 12'

# one admission retried 100 times at once (a control plane whose requests
# timed out): made once (one 201, 99 times 200), booked once. Room for it:
# one of the 20 that won the race above (which ones did is up to the race:
# p1 need not be one, and releasing a VM never admitted frees nothing)
won=$(grep -l '^0$' "$TMP"/rc.* | head -n 1)
ctl vm release "p${won##*.}" >/dev/null 2>&1 || bad "release p${won##*.}"
i=0
pids=""
while [ $i -lt 100 ]; do
	i=$((i + 1))
	(curl -s -o /dev/null -w '%{http_code}\n' --unix-socket "$SOCK" -X POST \
		-d '{"name":"r1","tenant":"acme","vcpus":1}' http://localhost/v1/vms/admit \
		>"$TMP/code.$i" 2>&1) &
	pids="$pids $!"
done
wait $pids
codes=$(cat "$TMP"/code.* | sort | uniq -c | awk '{ printf "%s x %s, ", $1, $2 }')
[ "$codes" = "99 x 200, 1 x 201, " ] && ok "100 concurrent retries of one admit: $codes" \
	|| bad "100 concurrent retries: $codes"
OUT=$(sqlite3 "$DB" "SELECT count(*), coalesce(sum(vcpus), 0) FROM reservations WHERE cpu_policy = 'shared';")
[ "$OUT" = "20|20" ] && ok "booked once: the ledger holds 20 shared vCPUs" || bad "ledger: $OUT"
OUT=$(sqlite3 "$DB" "SELECT count(*) FROM events WHERE action = 'vm.admit' AND target = 'vm/r1';")
[ "$OUT" = 1 ] && ok "one vm.admit event for r1" || bad "vm.admit events for r1: $OUT"

# registering binds to the reservation; a second tenant's name is refused
FAKEVM=$BUILD/fixtures/fakevm
"$FAKEVM" --vcpus 2 --idle >"$TMP/vm.out" 2>&1 &
VM=$!
i=0; while ! grep -q '^fakevm ready' "$TMP/vm.out"; do i=$((i + 1)); [ $i -gt 100 ] && break; sleep 0.05; done
expect_rc 4 "registering under another tenant than admitted" ctl vm register d1 --tenant small --pid "$VM"
expect_rc 0 "registering binds to the reservation" ctl vm register d1 --tenant acme --pid "$VM"
log_soon "would write '12' to $TMP/cgroup/tenant-acme/vm-d1/vcpu0/cpuset.cpus" \
	&& ok "vCPU 0 pinned to its pCPU (dry-run)" || bad "no cpuset write for vcpu0"
log_soon "would write '0-1' to $TMP/cgroup/tenant-acme/vm-d1/emulator/cpuset.cpus" \
	&& ok "emulator on housekeeping (dry-run)" || bad "no cpuset write for the emulator"
expect_rc 0 "release frees VM and reservation" ctl vm release d1
OUT=$(sqlite3 "$DB" "SELECT count(*) FROM reservations WHERE vm = 'd1';")
[ "$OUT" = 0 ] && ok "reservation gone" || bad "reservation left: $OUT"
kill "$VM"; wait "$VM" 2>/dev/null

# pools that overlap or name offline CPUs are refused at start
stop_daemon
sed -i 's/^  dedicated_cpus: .*/  dedicated_cpus: "1-3"/' "$POLICY"
OUT=$("$VCPUD" --foreground --db "$DB" --socket "$SOCK" --policy "$POLICY" --host-root "$HOST" \
	--cgroup-root "$TMP/cgroup" --dry-run 2>&1)
[ $? -ne 0 ] && ok "overlapping pools refused" || bad "overlapping pools accepted"
contains "names the overlap" "overlap"
sed -i 's/^  dedicated_cpus: .*/  dedicated_cpus: "20-21"/' "$POLICY"
OUT=$("$VCPUD" --foreground --db "$DB" --socket "$SOCK" --policy "$POLICY" --host-root "$HOST" \
	--cgroup-root "$TMP/cgroup" --dry-run 2>&1)
[ $? -ne 0 ] && ok "offline CPUs refused" || bad "offline CPUs accepted"
contains "names the CPU" "offline"
finish
