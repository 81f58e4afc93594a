#!/bin/sh
# admit_api.sh - dry-run admission throughput through the real daemon's
# API with 0 and with N admitted VMs (default 1000): vcpud --dry-run on the
# 64-CPU fixture topology (ratio 16: room for 1,024 1-vCPU VMs), 8 clients
# at once, each one curl process sending R POST /v1/vms/admit requests
# over one keep-alive connection on the Unix socket. The N VMs are admitted
# (reservations, what an admit decides against), not running processes.
# Prints admits/s for both and their ratio. Usage:
#   tests/bench/admit_api.sh [N] [R]     (run by `make bench`)
set -u
N=${1:-1000}
R=${2:-500}
CLIENTS=8
SUITE=bench-admit-api
TOPOLOGY=${TOPOLOGY:-64c-nosmt}
. "$(dirname "$0")/../e2e/lib.sh"
command -v curl >/dev/null || { echo "admit_api.sh: curl is missing: skipped"; exit 0; }
cleanup() {
	stop_daemon
	rm -rf "$TMP"
}
trap cleanup EXIT
sed -i -e 's/^  proc: true/  proc: false/' -e 's/^  cpu_ratio: .*/  cpu_ratio: 16.0/' \
	-e 's/^  housekeeping_cpus: .*/  housekeeping_cpus: ""/' "$POLICY"
start_daemon --no-libvirt --log-level warn || exit 1
ctl tenant create bench --vcpus 65536 >/dev/null || exit 1
now() { date +%s.%N; }

# CLIENTS curl processes at once, R dry-run admits each: admits/s
rate() {
	body='{"name":"probe","tenant":"bench","vcpus":1,"dry_run":true}'
	urls=""
	i=0
	while [ $i -lt "$R" ]; do urls="$urls http://localhost/v1/vms/admit"; i=$((i + 1)); done
	t0=$(now)
	c=0
	pids=""
	while [ $c -lt $CLIENTS ]; do
		# shellcheck disable=SC2086
		curl -s --unix-socket "$SOCK" -H 'Content-Type: application/json' -d "$body" \
			-w '\n%{http_code}\n' $urls >"$TMP/codes.$c" &
		pids="$pids $!"
		c=$((c + 1))
	done
	wait $pids
	t1=$(now)
	okc=$(cat "$TMP"/codes.* | grep -c '^200$')
	if [ "$okc" -ne $((CLIENTS * R)) ]; then
		echo "admit_api.sh: $okc of $((CLIENTS * R)) admits answered 200" >&2
		grep -v "^{" "$TMP"/codes.* | sort | uniq -c >&2
		exit 1
	fi
	echo "$t0 $t1" | awk -v n=$((CLIENTS * R)) '{ printf "%.0f", n / ($2 - $1) }'
}

best() { # best of 3
	b=0
	for k in 1 2 3; do
		r=$(rate) || exit 1
		[ "$r" -gt "$b" ] && b=$r
	done
	echo "$b"
}

empty=$(best) || exit 1
i=0
while [ $i -lt "$N" ]; do
	printf '{"name":"vm-%d","tenant":"bench","vcpus":1}' $i >"$TMP/admit.json"
	code=$(curl -s --unix-socket "$SOCK" -H 'Content-Type: application/json' \
		-d @"$TMP/admit.json" -o /dev/null -w '%{http_code}' http://localhost/v1/vms/admit)
	[ "$code" = 201 ] || [ "$code" = 200 ] || { echo "admit vm-$i: HTTP $code"; exit 1; }
	i=$((i + 1))
done
full=$(best) || exit 1
echo "dry-run admits through the API, $CLIENTS clients x $R requests, best of 3:"
echo "  0 VMs admitted:    $empty admits/s"
echo "  $N VMs admitted: $full admits/s"
echo "$empty $full $N" | awk '{ printf "  ratio (%d / 0):     %.2f\n", $3, $2 / $1 }'
