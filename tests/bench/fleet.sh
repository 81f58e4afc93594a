#!/bin/sh
# fleet.sh - what an admission costs with the fleet ledger (vcpud --fleet,
# a real 3-member etcd cluster on loopback) next to the local ledger, in the
# same run: 1-vCPU admissions over the API socket (curl --unix-socket, no
# process start counted), latency p50/p99 and admissions a second from 1
# and from 8 concurrent clients. Figures, not pass/fail (make bench).
#   BENCH_FLEET_N=400 (admissions per round)
set -u
BUILD=${VCPUD_BUILD:-$(cd "$(dirname "$0")/../../build" && pwd)}
SRC=$(cd "$(dirname "$0")/../.." && pwd)
N=${BENCH_FLEET_N:-400}
if ! command -v etcd >/dev/null 2>&1; then
	echo "bench-fleet: SKIP: no etcd binary (make deps unpacks it)"
	exit 0
fi
. "$SRC/tests/fleet/lib.sh"
trap fleet_teardown EXIT INT TERM
# room for every admission of a round on one host
fleet_setup 's/^  cpu_ratio: 4.0/  cpu_ratio: 64/'
fleet_etcd 3 || exit 1
start_host local --no-fleet --log-level warn || exit 1
start_host fleet --log-level warn || exit 1
for h in local fleet; do ctl "$h" tenant create t --vcpus 65536 >/dev/null || exit 1; done

# one client's loop: admissions FROM..TO on host H, one latency (s) a line
client() { # H FROM TO
	i=$2
	while [ "$i" -le "$3" ]; do
		curl -s -o /dev/null -w '%{http_code} %{time_total}\n' --unix-socket "$TMP/$1/sock" \
			-H 'Content-Type: application/json' \
			-d "{\"name\":\"b$i\",\"tenant\":\"t\",\"vcpus\":1}" http://localhost/v1/vms/admit
		i=$((i + 1))
	done
}
release_all() { # H FROM TO
	i=$2
	while [ "$i" -le "$3" ]; do
		curl -s -o /dev/null --unix-socket "$TMP/$1/sock" -X DELETE \
			"http://localhost/v1/vms/b$i?missing_ok=1"
		i=$((i + 1))
	done
}
round() { # H CLIENTS
	h=$1 c=$2
	per=$((N / c))
	t0=$(date +%s%N)
	k=0 pids=""
	while [ $k -lt "$c" ]; do
		client "$h" $((k * per + 1)) $(((k + 1) * per)) > "$TMP/lat.$k" &
		pids="$pids $!"
		k=$((k + 1))
	done
	for p in $pids; do wait "$p"; done
	t1=$(date +%s%N)
	cat "$TMP"/lat.* | awk -v h="$h" -v c="$c" -v ms=$(((t1 - t0) / 1000000)) '
		{ n++; if ($1 == 201) ok++; v[n] = $2 * 1000 }
		END {
			# sort the latencies (n is small)
			for (i = 2; i <= n; i++) { x = v[i]; j = i - 1
				while (j > 0 && v[j] > x) { v[j + 1] = v[j]; j-- } v[j + 1] = x }
			printf "%-6s %7d %8d %9.2f %9.2f %10.0f\n", h, c, ok, v[int(n * 0.5 + 0.5)],
			       v[int(n * 0.99 + 0.5)], n / (ms / 1000)
		}'
	rm -f "$TMP"/lat.*
	release_all "$h" 1 "$N"
}
echo "1-vCPU admissions over the API socket, $N a round (etcd: 3 members on loopback)"
printf "%-6s %7s %8s %9s %9s %10s\n" LEDGER CLIENTS ADMITTED "P50-MS" "P99-MS" "ADMITS/S"
for c in 1 8; do
	round local "$c"
	round fleet "$c"
done
