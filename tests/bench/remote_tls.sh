#!/bin/sh
# remote_tls.sh - latency of the API over HTTPS (vcpud --listen, a P-256
# self-signed certificate, a bearer token) with CLIENTS (8) clients at once,
# the figures issue 12 asks for: p50/p99 of
#   kept-alive   each client one curl process sending R GET /v1/tenants on
#                one TLS connection (the handshake's first request left
#                out): what a control plane's connection pool sees
#   per-request  each client running `vcpuctl --url ... tenant list` R2
#                times: a process start, a TCP connect, a TLS handshake
#                (GnuTLS loaded by dlopen) and the request, every time
#   (socket)     each of the two on the UNIX socket, for comparison
# with TENANTS tenants in the store. Usage:
#   tests/bench/remote_tls.sh [R] [R2] [TENANTS]   (run by `make bench`)
set -u
R=${1:-200}
R2=${2:-40}
TENANTS=${3:-100}
CLIENTS=8
SUITE=bench-remote-tls
. "$(dirname "$0")/../e2e/lib.sh"
for t in curl openssl; do
	command -v $t >/dev/null || { echo "remote_tls.sh: $t is missing: NOT RUN"; exit 1; }
done
cleanup() {
	stop_daemon
	rm -rf "$TMP"
}
trap cleanup EXIT
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=bench \
	-addext subjectAltName=IP:127.0.0.1 -keyout "$TMP/k.pem" -out "$TMP/c.pem" 2>/dev/null || exit 1
chmod 600 "$TMP/k.pem"
openssl rand -hex 32 | tr -d '\n' >"$TMP/tok"
chmod 600 "$TMP/tok"
echo "bench admin $(sha256sum <"$TMP/tok" | cut -c1-64)" >"$TMP/tokens"
sed -i 's/^  proc: true/  proc: false/' "$POLICY"
PORT=$((20000 + $$ % 30000))
start_daemon --no-libvirt --log-level warn --listen "127.0.0.1:$PORT" --tls-cert "$TMP/c.pem" \
	--tls-key "$TMP/k.pem" --token-file "$TMP/tokens" || exit 1
URL=https://127.0.0.1:$PORT
i=0
while [ $i -lt "$TENANTS" ]; do ctl tenant create "t$i" --vcpus 8 >/dev/null || exit 1; i=$((i + 1)); done

# pct FILE P: the P-th percentile of the numbers in FILE (seconds) in ms
pct() { sort -n "$1" | awk -v p="$2" '{ v[NR] = $1 } END { i = int(NR * p / 100 + 0.999); if (i < 1) i = 1; printf "%.2f", v[i] * 1000 }'; }
report() { # WHAT FILE
	printf '%-12s %5d requests  p50 %7s ms  p99 %7s ms\n' "$1" "$(wc -l <"$2")" \
		"$(pct "$2" 50)" "$(pct "$2" 99)"
}

# kept-alive: R requests a client on one connection; the first (the
# handshake) is dropped. BASE CURL-ARGS...
keep() {
	base=$1 out=$2; shift 2
	urls=""
	i=0
	while [ $i -lt "$R" ]; do urls="$urls -o /dev/null $base/v1/tenants"; i=$((i + 1)); done
	c=0
	pids=""
	while [ $c -lt $CLIENTS ]; do
		# shellcheck disable=SC2086
		curl -s "$@" -w '%{time_total}\n' $urls >"$out.$c" &
		pids="$pids $!"
		c=$((c + 1))
	done
	# shellcheck disable=SC2086
	wait $pids
	for c in $(seq 0 $((CLIENTS - 1))); do sed 1d "$out.$c"; done >"$out"
}
keep "$URL" "$TMP/keep" --cacert "$TMP/c.pem" -H "Authorization: Bearer $(cat "$TMP/tok")"
report kept-alive "$TMP/keep"
keep http://localhost "$TMP/keepsock" --unix-socket "$SOCK"
report "  (socket)" "$TMP/keepsock"

# a vcpuctl run each: TARGET ARGS...
runs() {
	out=$1; shift
	c=0
	pids=""
	while [ $c -lt $CLIENTS ]; do
		(
			n=0
			while [ $n -lt "$R2" ]; do
				t0=$(date +%s%N)
				"$VCPUCTL" "$@" tenant list >/dev/null || echo FAIL >&2
				echo "$(( $(date +%s%N) - t0 ))" | awk '{ printf "%.6f\n", $1 / 1e9 }'
				n=$((n + 1))
			done
		) >"$out.$c" &
		pids="$pids $!"
		c=$((c + 1))
	done
	# shellcheck disable=SC2086
	wait $pids
	cat "$out".? >"$out"
}
runs "$TMP/url" --url "$URL" --cacert "$TMP/c.pem" --token-file "$TMP/tok"
report per-request "$TMP/url"
runs "$TMP/sock" --socket "$SOCK"
report "  (socket)" "$TMP/sock"
echo "($CLIENTS clients at once, $TENANTS tenants; GET /v1/tenants)"
