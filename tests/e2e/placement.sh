#!/bin/sh
# placement.sh - a change costs the VM it touches, not every VM: each
# registration is placed by a pass that reads and writes the new VM's
# files (the engine trusts what it knows of the others), and a burst of
# registrations shares passes. The daemon runs with --dry-run on a cgroup
# root in a temp dir, as in vms.sh.
SUITE=e2e-placement
TOPOLOGY=64c-nosmt
. "$(dirname "$0")/lib.sh"
mkdir "$TMP/cgroup"
trap 'cleanup_fakes; stop_daemon; rm -rf "$TMP"' INT TERM
sed -i 's/^  proc: true/  proc: false/' "$POLICY"
start_daemon --no-libvirt || { finish; exit 1; }
ctl tenant create t --vcpus 200 >/dev/null

n=0
while [ $n -lt 24 ]; do
	n=$((n + 1))
	start_fake "$TMP/f$n" --vcpus 2 --idle || bad "fakevm $n"
	tid=$(sed -n 's/^vcpu 0 tid=//p' "$TMP/f$n")
	ctl vm register "v$n" --tenant t --pid "$FPID" >/dev/null || bad "register v$n"
	# wait for it to be placed (by its pass, or by a tick that came first)
	j=0
	until grep -q "would write '$tid' to $TMP/cgroup/tenant-t/vm-v$n/vcpu0/" "$LOG" ||
		[ $j -ge 40 ]; do
		sleep 0.05; j=$((j + 1))
	done
done
passes=$(sed -n 's/.*placed after a change: \([0-9]*\) reads, \([0-9]*\) writes.*/\1 \2/p' "$LOG")
npass=$(echo "$passes" | grep -c .)
median=$(echo "$passes" | sort -n | awk '{ r[NR] = $1 } END { print r[int((NR + 1) / 2)] + 0 }')
most=$(echo "$passes" | awk '$1 > m { m = $1 } END { print m + 0 }')
mostw=$(echo "$passes" | awk '$2 > m { m = $2 } END { print m + 0 }')
echo "# reads/writes of the $npass placement passes: $(echo "$passes" | tr ' \n' '/ ')"
# a pass placing one 2-vCPU VM reads about 30 files and writes 19 (its
# own); reading the 24 VMs' files again would be some 700, and a write to
# every sibling (a weight that moved with the tenant's vCPUs) 24 more. A
# pass may also re-read a VM or two whose known values fell due (the
# engine's verify_ticks, spread over VMs): some 25 reads each, no write.
[ "$npass" -ge 12 ] && [ "$median" -le 40 ] && [ "$most" -le 200 ] && [ "$mostw" -le 25 ] &&
	ok "$npass placement passes read $median files (at most $most) and wrote at most $mostw, whatever the VMs before" ||
	bad "placement passes: $npass, reading $median files (at most $most), writing up to $mostw"

# a burst: 8 registrations at once share passes
m=0
pids=""
while [ $m -lt 8 ]; do
	m=$((m + 1))
	start_fake "$TMP/b$m" --vcpus 1 --idle || bad "fakevm b$m"
	pids="$pids $FPID"
done
before=$(grep -c 'placed after a change' "$LOG")
m=0
for p in $pids; do
	m=$((m + 1))
	ctl vm register "b$m" --tenant t --pid "$p" >/dev/null &
done
wait_regs() { for k in $(jobs -p); do wait "$k"; done; }
wait_regs
sleep 0.5
after=$(grep -c 'placed after a change' "$LOG")
passes=$((after - before))
# each one placed: by a placement pass, or by a tick that came first (a
# tick places everything and drops the pass it makes needless: 0 passes)
m=0 placed=0
while [ $m -lt 8 ]; do
	m=$((m + 1))
	tid=$(sed -n 's/^vcpu 0 tid=//p' "$TMP/b$m")
	grep -q "would write '$tid' to $TMP/cgroup/tenant-t/vm-b$m/vcpu0/cgroup.threads" "$LOG" &&
		placed=$((placed + 1))
done
[ "$placed" -eq 8 ] && [ "$passes" -le 8 ] &&
	ok "8 concurrent registrations placed by $passes passes (and ticks)" ||
	bad "8 registrations: $placed placed, $passes passes"
ctl vm list > "$TMP/list" 2>&1
[ "$(grep -c '^b[1-8] ' "$TMP/list")" -eq 8 ] && ok "all 8 registered" || bad "$(cat "$TMP/list")"

cleanup_fakes
finish
