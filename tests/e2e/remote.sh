#!/bin/sh
# remote.sh - the API over TCP as a control plane on another machine meets
# it (issue 12, items 1 and 2): the real vcpud with --listen on loopback,
# real TLS with a self-signed certificate made here by openssl, bearer
# tokens of a token file. No token or a wrong one is 401, a read token's
# change 403, an admin token works; `vcpuctl --url` prints what the socket
# prints; the audit log names the token; SIGHUP reloads the tokens and the
# certificate; a certificate that is not trusted or names another host is
# refused by vcpuctl; 128 half-open connections from one address do not
# lock out a second client; --listen on [::1]; start-up refuses plain
# HTTP off loopback and a key others may read.
SUITE=e2e-remote
. "$(dirname "$0")/lib.sh"
# a script error (set -u) must not leave a listening vcpud behind
trap 'stop_daemon; rm -rf "$TMP"' EXIT INT TERM
mkdir "$TMP/cgroup"
HOSTILE=$BUILD/fixtures/hostile
if ! command -v openssl >/dev/null; then
	bad "no openssl to make the test certificate (deploy/debian-packages.txt lists it)"
	finish
	exit 1
fi

# a certificate for 127.0.0.1 and localhost, one for another name
cert() { # NAME SAN
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
		-subj "/CN=$1" -addext "subjectAltName=$2" \
		-keyout "$TMP/$1.key" -out "$TMP/$1.pem" 2>"$TMP/openssl.err" ||
		{ cat "$TMP/openssl.err"; return 1; }
	chmod 600 "$TMP/$1.key"
}
cert vcpud "IP:127.0.0.1,DNS:localhost" && cert other "DNS:elsewhere.example" ||
	{ bad "openssl makes the test certificates"; finish; exit 1; }

# tokens: random, the file keeps their SHA-256
token() { # NAME ROLE: the token in $TMP/NAME.tok (0600), its line in tokens
	openssl rand -hex 32 | tr -d '\n' >"$TMP/$1.tok"
	chmod 600 "$TMP/$1.tok"
	echo "$1 $2 $(sha256sum <"$TMP/$1.tok" | cut -c1-64)" >>"$TMP/tokens"
}
printf '# test tokens\n' >"$TMP/tokens"
token ops admin
token grafana read

# a free port: try a few, each start says whether the bind worked
PORT=
start_remote() { # extra vcpud args
	for try in 1 2 3 4 5; do
		p=$((20000 + ($$ * 7 + try * 131) % 30000))
		if start_daemon --listen "127.0.0.1:$p" --token-file "$TMP/tokens" "$@"; then
			PORT=$p
			return 0
		fi
		grep -q 'Address already in use' "$LOG" || return 1
	done
	return 1
}
start_remote --tls-cert "$TMP/vcpud.pem" --tls-key "$TMP/vcpud.key" ||
	{ bad "vcpud starts with --listen"; finish; exit 1; }
ok "vcpud serves https://127.0.0.1:$PORT"
URL=https://127.0.0.1:$PORT
rctl() { # TOKEN ARGS...: vcpuctl over the URL with that token
	_t=$1; shift
	"$VCPUCTL" --url "$URL" --cacert "$TMP/vcpud.pem" --token-file "$TMP/$_t.tok" "$@"
}
rctlq() { rctl "$@" >/dev/null; }
hcurl() { curl -s --cacert "$TMP/vcpud.pem" "$@"; }
code() { hcurl -o "$TMP/body" -w '%{http_code}' "$@"; }
auth() { echo "Authorization: Bearer $(cat "$TMP/$1.tok")"; }

# --- authentication and roles, with curl -----------------------------------
check "no token: 401" [ "$(code "$URL/v1/tenants")" = 401 ]
check "401 says how to authenticate (WWW-Authenticate: Bearer)" \
	sh -c "curl -s --cacert '$TMP/vcpud.pem' -D - -o /dev/null '$URL/v1/health' | grep -qi '^WWW-Authenticate: Bearer realm=\"vcpud\"'"
check "401 is the JSON error shape" grep -q '"code":"unauthorized"' "$TMP/body"
check "wrong token: 401" [ "$(code -H 'Authorization: Bearer 0123456789abcdef' "$URL/v1/tenants")" = 401 ]
check "another scheme: 401" [ "$(code -u ops:x "$URL/v1/tenants")" = 401 ]
check "read token GET: 200" [ "$(code -H "$(auth grafana)" "$URL/v1/tenants")" = 200 ]
check "read token GET /metrics: 200" [ "$(code -H "$(auth grafana)" "$URL/metrics")" = 200 ]
check "read token POST: 403" [ "$(code -H "$(auth grafana)" -H 'Content-Type: application/json' \
	-d '{"name":"x","vcpus":2}' "$URL/v1/tenants")" = 403 ]
check "403 is the JSON error shape, naming the role" \
	grep -q '"code":"forbidden","message":"token grafana has the role read' "$TMP/body"
check "the refused POST created nothing" [ "$(ctl tenant list --json | grep -c '"name"')" = 0 ]
check "admin token POST: 201" [ "$(code -H "$(auth ops)" -H 'Content-Type: application/json' \
	-d '{"name":"acme","vcpus":8}' "$URL/v1/tenants")" = 201 ]
check "TLS 1.0 is refused" sh -c "! curl -s --tlsv1.0 --tls-max 1.0 --cacert '$TMP/vcpud.pem' '$URL/v1/health' >/dev/null"

# --- vcpuctl --url: the same commands, the same output ---------------------
check "vcpuctl --url tenant create (admin)" sh -c "'$VCPUCTL' --url '$URL' --cacert '$TMP/vcpud.pem' --token-file '$TMP/ops.tok' tenant create beta --vcpus 4 --weight 200 | grep -q 'tenant beta created'"
rctl ops vm admit web --tenant acme --vcpus 2 >/dev/null || bad "vcpuctl --url vm admit"
for cmd in "tenant list" "tenant show acme" "vm list" "vm show web" "host" "--json tenant list"; do
	# shellcheck disable=SC2086
	a=$(ctl $cmd 2>&1); b=$(rctl grafana $cmd 2>&1)
	if [ "$a" = "$b" ] && [ -n "$a" ]; then ok "vcpuctl --url $cmd prints what the socket prints"
	else bad "vcpuctl --url $cmd differs: socket [$a] url [$b]"; fi
done
check "vcpuctl --url metrics" sh -c "'$VCPUCTL' --url '$URL' --cacert '$TMP/vcpud.pem' --token-file '$TMP/grafana.tok' metrics | grep -q '^vcpud_tenant_vcpus_quota{tenant=\"acme\"} 8$'"
check "VCPUD_URL, VCPUD_TOKEN_FILE, VCPUD_CACERT" sh -c "VCPUD_URL='$URL' \
	VCPUD_TOKEN_FILE='$TMP/grafana.tok' VCPUD_CACERT='$TMP/vcpud.pem' '$VCPUCTL' tenant show acme >/dev/null"
check "https://localhost (a DNS name of the certificate)" sh -c "'$VCPUCTL' --url 'https://localhost:$PORT' \
	--cacert '$TMP/vcpud.pem' --token-file '$TMP/ops.tok' tenant show acme >/dev/null"
"$VCPUCTL" --url "$URL" --cacert "$TMP/vcpud.pem" --token-file "$TMP/grafana.tok" \
	tenant create gamma --vcpus 2 >/dev/null 2>"$TMP/err"
rc=$?
check "read token: vcpuctl tenant create exits 6" [ $rc = 6 ]
OUT="$(cat "$TMP/err")"; contains "read token: the message names the role" "token grafana has the role read"
"$VCPUCTL" --url "$URL" --cacert "$TMP/vcpud.pem" tenant list >/dev/null 2>"$TMP/err"
rc=$?
check "no token: vcpuctl exits 6" [ $rc = 6 ]
OUT="$(cat "$TMP/err")"; contains "no token: vcpuctl says how to give one" "--token-file or \$VCPUD_TOKEN_FILE"
"$VCPUCTL" --url "$URL" --token-file "$TMP/ops.tok" tenant list >/dev/null 2>"$TMP/err"
rc=$?
check "a certificate not trusted: vcpuctl exits 1" [ $rc = 1 ]
OUT="$(cat "$TMP/err")"; contains "... and says why" "its certificate is refused: The certificate is NOT trusted"

# --- the audit log names the token ------------------------------------------
EV=$(ctl events)
OUT="$EV"; contains "audit log: token:ops created acme" "token:ops  tenant.create  tenant/acme"
OUT="$EV"; contains "audit log: token:ops admitted web" "token:ops  vm.admit"

# --- SIGHUP reloads the tokens -----------------------------------------------
token late admin
check "a token added to the file is refused before SIGHUP" sh -c \
	"! '$VCPUCTL' --url '$URL' --cacert '$TMP/vcpud.pem' --token-file '$TMP/late.tok' tenant list >/dev/null 2>&1"
grep -v '^ops ' "$TMP/tokens" >"$TMP/tokens.new" && mv "$TMP/tokens.new" "$TMP/tokens"
kill -HUP "$DAEMON_PID"
wait_for "SIGHUP: tokens reloaded" 50 grep -q 'SIGHUP: 2 token(s) of' "$LOG"
check "after SIGHUP the new token works" rctlq late tenant list
check "after SIGHUP the removed token is 401" [ "$(code -H "$(auth ops)" "$URL/v1/tenants")" = 401 ]
echo "broken line" >>"$TMP/tokens"
kill -HUP "$DAEMON_PID"
wait_for "SIGHUP: a bad token file is said" 50 grep -q 'tokens not reloaded, keeping the current ones' "$LOG"
check "a bad token file keeps the tokens" rctlq late tenant list
check "the reload is in the audit log" sh -c "'$VCPUCTL' --socket '$SOCK' events | grep -q 'tokens.reload'"
sed -i '$d' "$TMP/tokens"

# --- SIGHUP reloads the certificate ------------------------------------------
cert vcpud2 "IP:127.0.0.1,IP:::1,DNS:localhost" || bad "openssl makes a second certificate"
cp "$TMP/vcpud.pem" "$TMP/vcpud1.pem"
cp "$TMP/vcpud2.pem" "$TMP/vcpud.pem"
cp "$TMP/vcpud2.key" "$TMP/vcpud.key"
kill -HUP "$DAEMON_PID"
wait_for "SIGHUP: the certificate is reloaded" 50 grep -q "TLS certificate $TMP/vcpud.pem reloaded" "$LOG"
tls_ok() { "$VCPUCTL" --url "$URL" --cacert "$1" --token-file "$TMP/late.tok" tenant list >/dev/null 2>&1; }
check "after SIGHUP new connections get the new certificate" tls_ok "$TMP/vcpud2.pem"
check "... and the old one is no longer served" sh -c "! '$VCPUCTL' --url '$URL' --cacert '$TMP/vcpud1.pem' --token-file '$TMP/late.tok' tenant list >/dev/null 2>&1"
echo "not a certificate" >"$TMP/vcpud.pem"
kill -HUP "$DAEMON_PID"
wait_for "SIGHUP: a broken certificate is refused and said" 50 grep -q "SIGHUP: TLS certificate $TMP/vcpud.pem with key" "$LOG"
check "... and the served certificate stays" tls_ok "$TMP/vcpud2.pem"
cp "$TMP/vcpud2.pem" "$TMP/vcpud.pem"
check "the reload is in the audit log (tls.reload)" sh -c "'$VCPUCTL' --socket '$SOCK' events | grep -q 'tls.reload'"

# --- one client with 128 half-open connections ------------------------------
"$HOSTILE" "tcp:127.0.0.1:$PORT" idle 128 4 >"$TMP/idle.out" 2>&1 &
hp=$!
sleep 1
fails=0
for i in 1 2 3 4 5 6 7 8 9 10; do
	timeout 5 "$VCPUCTL" --url "$URL" --cacert "$TMP/vcpud.pem" --token-file "$TMP/late.tok" \
		--timeout 3 status >/dev/null 2>&1 || fails=$((fails + 1))
	timeout 5 "$VCPUCTL" --socket "$SOCK" --timeout 3 status >/dev/null 2>&1 || fails=$((fails + 1))
done
wait $hp
echo "# $(cat "$TMP/idle.out")"
check "128 half-open connections: a second client is served (TCP and socket, 20 of 20)" [ $fails = 0 ]
OUT=$(cat "$LOG")
contains "... and the idle client lost its own connections over the per-peer limit" \
	"has more than 64 connections open: dropped its oldest idle one"
check "vcpud_api_connections_dropped_total{reason=\"peer_limit\"} counts them" sh -c \
	"curl -s --unix-socket '$SOCK' http://localhost/metrics | grep -Eq '^vcpud_api_connections_dropped_total\\{reason=\"peer_limit\"\\} [1-9]'"

# --- a certificate for another name ------------------------------------------
stop_daemon
start_daemon --listen "127.0.0.1:$PORT" --token-file "$TMP/tokens" --tls-cert "$TMP/other.pem" \
	--tls-key "$TMP/other.key" || bad "vcpud restarts with another certificate"
"$VCPUCTL" --url "$URL" --cacert "$TMP/other.pem" --token-file "$TMP/late.tok" tenant list \
	>/dev/null 2>"$TMP/err"
rc=$?
check "a certificate for another host: vcpuctl exits 1" [ $rc = 1 ]
OUT="$(cat "$TMP/err")"; contains "... saying the name does not match" "does not match"
check "the restart kept the tenants" sh -c "'$VCPUCTL' --socket '$SOCK' tenant show beta >/dev/null"
stop_daemon

# --- IPv6 ---------------------------------------------------------------------
if start_daemon --listen "[::1]:$PORT" --token-file "$TMP/tokens" --tls-cert "$TMP/vcpud.pem" \
	--tls-key "$TMP/vcpud.key"; then
	check "--listen [::1]: vcpuctl --url https://[::1]:PORT" sh -c "'$VCPUCTL' --url 'https://[::1]:$PORT' \
		--cacert '$TMP/vcpud.pem' --token-file '$TMP/late.tok' tenant show beta >/dev/null"
	check "--listen [::1] is IPv6 only (127.0.0.1 is not served)" sh -c \
		"! curl -s --max-time 2 --cacert '$TMP/vcpud.pem' 'https://127.0.0.1:$PORT/v1/health' >/dev/null"
else
	bad "vcpud starts with --listen [::1]:$PORT"
fi
stop_daemon

# --- refused at start ----------------------------------------------------------
refused() { # DESC MESSAGE ARGS...
	_d=$1 _m=$2; shift 2
	out=$("$VCPUD" --foreground --db "$DB" --socket "$SOCK" --cgroup-root "$TMP/cgroup" \
		--host-root "$HOST" --dry-run --no-libvirt "$@" 2>&1)
	rc=$?
	if [ $rc != 0 ] && printf '%s' "$out" | grep -qF -- "$_m" && [ ! -S "$SOCK" ]; then
		ok "refused at start: $_d"
	else
		bad "$_d: rc $rc, no socket expected: $out"
	fi
}
refused "plain HTTP off loopback" "loopback addresses only, not on 0.0.0.0:$PORT" \
	--listen "0.0.0.0:$PORT" --insecure-http --token-file "$TMP/tokens"
chmod 644 "$TMP/vcpud.key"
refused "a TLS key others may read" "may be read by anyone (mode 0644)" \
	--listen "127.0.0.1:$PORT" --token-file "$TMP/tokens" --tls-cert "$TMP/vcpud.pem" \
	--tls-key "$TMP/vcpud.key"
chmod 600 "$TMP/vcpud.key"
refused "a key that is not the certificate's" "with key $TMP/other.key" \
	--listen "127.0.0.1:$PORT" --token-file "$TMP/tokens" --tls-cert "$TMP/vcpud.pem" \
	--tls-key "$TMP/other.key"
refused "--listen without a token file" "--listen needs --token-file" \
	--listen "127.0.0.1:$PORT" --tls-cert "$TMP/vcpud.pem" --tls-key "$TMP/vcpud.key"
chmod 666 "$TMP/tokens"
refused "a token file anyone may write" "may be written by anyone" \
	--listen "127.0.0.1:$PORT" --token-file "$TMP/tokens" --tls-cert "$TMP/vcpud.pem" \
	--tls-key "$TMP/vcpud.key"
finish
