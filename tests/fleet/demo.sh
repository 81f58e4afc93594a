#!/bin/sh
# demo.sh - `make demo-fleet`: one tenant's quota shared by three hosts.
# Starts a 3-member etcd cluster on loopback ports and three vcpud hosts
# (a, b, c: each its own database, socket and fixture topology, --dry-run,
# --fleet), then shows what an operator sees: a tenant created on one host
# is known to all; VMs admitted on every host until the fleet quota is
# reached, refused on each with the figures; `vcpuctl fleet hosts`; an etcd
# member lost and admissions going on; a host killed, shown dead, and its
# bookings evicted. Ends by itself and removes everything it started.
set -u
BUILD=$(cd "${1:-build}" && pwd)
SRC=$(cd "$(dirname "$0")/../.." && pwd)
if ! command -v etcd >/dev/null 2>&1; then
	echo "demo-fleet: no etcd binary: run make deps (it unpacks Debian's etcd)" >&2
	exit 1
fi
. "$SRC/tests/fleet/lib.sh"
fleet_setup 's/^  lease_ttl_s: 10/  lease_ttl_s: 3/'
trap fleet_teardown EXIT INT TERM
say() { printf '\n== %s\n' "$*"; }
run() { # HOST ARGS...: show the command, then run it
	printf '[host %s] $ vcpuctl' "$1"
	h=$1; shift
	printf ' %s' "$@"
	printf '\n'
	ctl "$h" "$@" 2>&1 | sed 's/^/    /'
}

say "a 3-member etcd cluster on loopback, three vcpud hosts with --fleet"
fleet_etcd 3 || exit 1
echo "etcd: $FLEET_URLS"
for h in a b c; do start_host "$h" || exit 1; done
echo "hosts fleet-a, fleet-b, fleet-c up (vcpud --fleet $FLEET_URLS --host-id fleet-X)"

say "a tenant created on host a, with a fleet-wide quota of 8 vCPUs"
run a tenant create shop --vcpus 8 --weight 200
sleep 0.3
run c tenant show shop

say "VMs admitted on each host: 3 x 2-vCPU, then one more 2-vCPU VM"
run a vm admit shop-web-1 --tenant shop --vcpus 2
run b vm admit shop-web-2 --tenant shop --vcpus 2
run c vm admit shop-db-1 --tenant shop --vcpus 2
run b vm admit shop-web-3 --tenant shop --vcpus 2
say "the quota is used up: every host refuses the next one"
run a vm admit shop-web-4 --tenant shop --vcpus 1
run c vm admit shop-web-4 --tenant shop --vcpus 1
run b fleet hosts
run a tenant show shop

say "one etcd member of 3 lost: the cluster keeps its quorum"
etcd_member_kill 3
run a vm release shop-web-1
run c vm admit shop-db-2 --tenant shop --vcpus 2

say "host c killed (kill -9): dead once its lease (3 s) runs out; its VMs still count"
stop_host c KILL
sleep 4.5
run a fleet hosts
run a vm admit shop-web-5 --tenant shop --vcpus 2
say "an operator frees the dead host's bookings"
run a fleet evict fleet-c
run a vm admit shop-web-5 --tenant shop --vcpus 2
run b fleet hosts
run a events --limit 4
say "done: everything started here is stopped and removed"
