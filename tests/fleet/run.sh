#!/bin/sh
# run.sh - the fleet tier: a real 3-member etcd cluster on loopback ports
# (tests/fleet/etcd.sh) and three vcpud hosts on this machine (each its own
# database, socket, fixture topology and cgroup root, --dry-run, --fleet
# pointing at the cluster), driven with vcpuctl as operators would:
#   - a tenant created on host a is enforced on host c within 1 s;
#   - 150 concurrent 1-vCPU admissions spread over the hosts for a fleet
#     quota of 64: exactly 64 admitted; `fleet hosts` and every host's
#     `tenant show` agree; a quota lowered below use refuses new admissions
#     everywhere and changes nothing running;
#   - one etcd member down: admissions work; two down (no quorum): refused
#     within fleet.timeout_ms + 500 ms naming the cause, the ticks keep
#     their pace; members back: admissions work, with no vcpud restart, and
#     a VM released meanwhile has its booking released;
#   - kill -9 of a host: dead after its lease's TTL, its bookings still
#     count until `fleet evict` frees them (audited);
#   - a host restarted with etcd down enforces the tenants it copied and
#     says that etcd is out of reach.
# Prints "fleet: N passed, N failed" (or "fleet: SKIP: why"). Usage:
#   tests/fleet/run.sh BUILD_DIR
set -u
BUILD=$(cd "${1:-build}" && pwd)
SRC=$(cd "$(dirname "$0")/../.." && pwd)
if ! command -v etcd >/dev/null 2>&1; then
	echo "fleet: SKIP: no etcd binary (make deps: deploy/install-deps.sh unpacks Debian's)"
	exit 0
fi
. "$SRC/tests/fleet/lib.sh"

# the hosts: a 64-CPU fixture topology each (admission has room for all
# 150), no /proc discovery, a 3 s lease (a dead host shows in seconds)
fleet_setup 's/^  lease_ttl_s: 10/  lease_ttl_s: 3/'
PASS=0
FAIL=0
T0=$(date +%s)
ok() { PASS=$((PASS + 1)); echo "ok - $*"; }
bad() { FAIL=$((FAIL + 1)); echo "FAIL - $*"; }
note() { echo "# $*"; }
now_ms() { echo $(($(date +%s%N) / 1000000)); }
HOSTS="a b c"
trap 'fleet_teardown' INT TERM
# field JSON KEY...: a value of `vcpuctl --json` output
jget() { python3 -c 'import json,sys
d=json.load(sys.stdin)
for k in sys.argv[1:]:
    d=d[int(k)] if isinstance(d,list) else d.get(k)
print(d)' "$@"; }
# the fleet's vCPUs booked by host H, as host Q sees them
booked() { ctl "$2" --json fleet hosts | python3 -c 'import json,sys
h=[x for x in json.load(sys.stdin)["hosts"] if x["host"]==sys.argv[1]]
print(h[0]["vcpus"] if h else 0)' "fleet-$1"; }
fleet_used() { ctl "$1" --json tenant show "$2" | jget fleet vcpus_used; }
finish() {
	for h in $HOSTS; do
		if [ "$FAIL" -ne 0 ] && [ -f "$TMP/$h/log" ]; then
			echo "--- host $h's log (tail, without the API's GETs)"
			grep -v ' GET /v1/[^ ]* -> 200' "$TMP/$h/log" | tail -15
		fi
	done
	fleet_stop_all
	left=$(pgrep -f "$TMP" | wc -l)
	[ "$left" -eq 0 ] && ok "cleanup: no etcd member or vcpud of ours left" ||
		bad "cleanup: $left processes of $TMP left: $(pgrep -af "$TMP")"
	rm -rf "$TMP"
	echo "# $(($(date +%s) - T0)) s in all"
	echo "fleet: $PASS passed, $FAIL failed"
	[ "$FAIL" -eq 0 ]
	exit $?
}

if ! fleet_etcd 3; then
	bad "a 3-member etcd cluster on loopback"
	finish
fi
ok "3 etcd members: $FLEET_URLS"
for h in $HOSTS; do
	start_host "$h" || { bad "host $h"; finish; }
done
ok "3 vcpud hosts with --fleet"

# --- a tenant created on a is enforced on c within 1 s ------------------------------
t=$(now_ms)
ctl a tenant create web --vcpus 64 >/dev/null || bad "tenant create on a"
seen=
while [ $(($(now_ms) - t)) -lt 3000 ]; do
	ctl c tenant show web >/dev/null 2>&1 && { seen=$(($(now_ms) - t)); break; }
	sleep 0.02
done
[ -n "$seen" ] && [ "$seen" -le 1000 ] && ok "tenant web created on a is on c after $seen ms" ||
	bad "tenant web on c after ${seen:-more than 3000} ms"
# a second vcpud with host a's name books nothing (it would release a's
# bookings as not its own)
start_host z --host-id fleet-a || bad "host z"
sleep 0.5
OUT=$(ctl z tenant create dup --vcpus 1 2>&1) && bad "a host with a taken name changed the fleet" ||
	case $OUT in *"held by another live vcpud"*) ok "a second vcpud named fleet-a is refused: $OUT" ;;
	*) bad "host z: $OUT" ;; esac
[ "$(ctl z --json status | jget ledger state)" = host-id-taken ] &&
	ok "its status says host-id-taken" || bad "z's ledger state: $(ctl z --json status | jget ledger state)"
stop_host z
ctl b tenant create web --vcpus 8 >/dev/null 2>&1 &&
	bad "tenant web created twice" || ok "creating web again on b: refused (it exists in the fleet)"

# a tenant deleted on b goes from a and c
ctl a tenant create gone --vcpus 4 >/dev/null || bad "tenant gone on a"
sleep 0.5
ctl b tenant delete gone >/dev/null || bad "delete gone on b"
t=$(now_ms)
while [ $(($(now_ms) - t)) -lt 3000 ] && { ctl a tenant show gone || ctl c tenant show gone; } \
	>/dev/null 2>&1; do sleep 0.02; done
! ctl a tenant show gone >/dev/null 2>&1 && ! ctl c tenant show gone >/dev/null 2>&1 &&
	ok "tenant gone deleted on b is gone from a and c after $(($(now_ms) - t)) ms" ||
	bad "tenant gone still on a or c"

# a host that had tenants of its own before it joined keeps them, says so,
# and refuses admissions for them until they are in the fleet
start_host d --no-fleet || bad "host d alone"
ctl d tenant create legacy --vcpus 4 >/dev/null || bad "tenant legacy on d alone"
stop_host d
start_host d || bad "host d in the fleet"
sleep 0.5
ctl d tenant show legacy >/dev/null 2>&1 && ok "d keeps its own tenant legacy after joining" ||
	bad "d lost its tenant legacy"
grep -q "tenant legacy is on this host only" "$TMP/d/log" && ok "d says legacy is on this host only" ||
	bad "d did not say legacy is local"
OUT=$(ctl d vm admit l1 --tenant legacy --vcpus 1 2>&1) && bad "admitted for a tenant not in the fleet" ||
	case $OUT in *"no tenant 'legacy' in the fleet"*) ok "an admission for legacy: $OUT" ;;
	*) bad "legacy admission: $OUT" ;; esac
ctl d tenant delete legacy >/dev/null 2>&1 && ! ctl d tenant show legacy >/dev/null 2>&1 &&
	ok "legacy deleted on d (the fleet never had it)" || bad "legacy not deleted on d"
stop_host d

# --- 150 concurrent admissions for a quota of 64 -------------------------------------
note "150 concurrent 1-vCPU admissions over 3 hosts, fleet quota 64"
t=$(now_ms)
i=0
adm=""
while [ $i -lt 150 ]; do
	i=$((i + 1))
	case $((i % 3)) in 0) h=a ;; 1) h=b ;; *) h=c ;; esac
	( ctl "$h" vm admit "q$i" --tenant web --vcpus 1 >"$TMP/adm.$i" 2>&1; echo $? > "$TMP/rc.$i" ) &
	adm="$adm $!"
done
# these, not the hosts and etcd members also started in the background
for p in $adm; do wait "$p"; done
took=$(($(now_ms) - t))
admitted=$(cat "$TMP"/rc.* | grep -c '^0$')
quota_refused=$(grep -l 'do not fit' "$TMP"/adm.* | wc -l)
other=$((150 - admitted - quota_refused))
note "150 admissions in $took ms ($((150000 / (took > 0 ? took : 1))) a second): $admitted admitted, $quota_refused over the quota, $other else"
[ "$admitted" -eq 64 ] && ok "exactly 64 admitted" || bad "$admitted admitted, not 64"
[ "$other" -eq 0 ] && ok "the 86 others refused by the fleet quota, none for another reason" ||
	bad "$other admissions failed otherwise: $(grep -hv 'do not fit\|admitted' "$TMP"/adm.* | sort | uniq -c | head -5)"
sum=0
for h in $HOSTS; do
	b=$(booked "$h" a)
	res=$(ctl "$h" --json host | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["reservations"]))')
	note "host $h: $b vCPUs booked in the fleet, $res reservations here"
	[ "$b" = "$res" ] || bad "host $h: $b booked in the fleet, $res reservations here"
	sum=$((sum + b))
done
[ "$sum" -eq 64 ] && ok "fleet hosts: 64 vCPUs booked in all (each host's bookings = its reservations)" ||
	bad "fleet hosts: $sum vCPUs booked"
for h in $HOSTS; do
	u=$(fleet_used "$h" web)
	[ "$u" = 64 ] && ok "host $h's tenant show: fleet used 64" || bad "host $h's tenant show: fleet used $u"
done

# --- a quota lowered below use ----------------------------------------------------
ctl b tenant set web --vcpus 32 >/dev/null || bad "lower web's quota on b"
sleep 0.3
for h in $HOSTS; do
	OUT=$(ctl "$h" vm admit "low-$h" --tenant web --vcpus 1 2>&1) &&
		bad "host $h admitted over a lowered quota" ||
		case $OUT in *"do not fit"*) ok "host $h refuses with the quota at 32 and 64 used: $OUT" ;;
		*) bad "host $h: $OUT" ;; esac
done
OUT=$(ctl c vm admit dry-c --tenant web --vcpus 1 --dry-run 2>&1) &&
	bad "a dry run over the fleet quota passed: $OUT" ||
	case $OUT in *"as last read"*) ok "a dry run checks the fleet quota too: $OUT" ;;
	*) bad "dry run: $OUT" ;; esac
[ "$(fleet_used a web)" = 64 ] && ok "the 64 admitted stay (nothing running changes)" ||
	bad "fleet use $(fleet_used a web) after the quota was lowered"
# a release gives the booking back before it answers: at the quota's
# edge, another host admits at once
ctl c tenant set web --vcpus 64 >/dev/null || bad "web's quota back to 64"
onA=""
for f in "$TMP"/rc.*; do
	i=${f##*.}
	[ $((i % 3)) -eq 0 ] && [ "$(cat "$f")" = 0 ] && { onA=q$i; break; }
done
ctl a vm release "$onA" >/dev/null || bad "release $onA on a"
OUT=$(ctl c vm admit swap-c --tenant web --vcpus 1 2>&1) &&
	ok "$onA released on a, swap-c admitted on c at once (quota 64, 64 used)" ||
	bad "after a release on a, c: $OUT"
ctl c tenant set web --vcpus 200 >/dev/null || bad "raise web's quota"
sleep 0.3

# --- etcd members lost, and back ----------------------------------------------------
etcd_member_kill 3 || bad "kill member 3"
okn=0
for h in $HOSTS; do
	ctl "$h" vm admit "one-$h" --tenant web --vcpus 1 >/dev/null 2>&1 && okn=$((okn + 1))
done
[ "$okn" -eq 3 ] && ok "one member of 3 down: admissions on each host work" ||
	bad "one member down: $okn of 3 admissions worked"
ticks() { ctl "$1" --json status | jget ticks; }
etcd_member_kill 2 || bad "kill member 2"
note "two members of 3 down: no quorum"
t0=$(now_ms)
k0a=$(ticks a) k0b=$(ticks b) k0c=$(ticks c)
worst=0
n=0
while [ $n -lt 4 ]; do
	n=$((n + 1))
	for h in $HOSTS; do
		t=$(now_ms)
		OUT=$(ctl "$h" vm admit "nq-$h-$n" --tenant web --vcpus 1 2>&1) && bad "admitted without quorum on $h"
		d=$(($(now_ms) - t))
		[ $d -gt $worst ] && worst=$d
		case $OUT in *"no quorum"*|*unreachable*) ;; *) bad "host $h without quorum: $OUT" ;; esac
	done
done
note "last refusal: $OUT"
[ $worst -le 2500 ] && ok "12 admissions without quorum refused, the slowest in $worst ms (fleet.timeout_ms 2000 + 500)" ||
	bad "an admission without quorum took $worst ms"
# a VM released while etcd cannot commit: its booking goes when etcd is back
ctl b vm release one-b >/dev/null && ok "one-b released on b without quorum (its booking waits)" ||
	bad "release one-b without quorum"
el=$(($(now_ms) - t0))
for h in $HOSTS; do
	eval "k0=\$k0$h"
	k1=$(ticks "$h")
	# 1 s ticks: the ticks made in the window against its length
	pace=$(awk -v k=$((k1 - k0)) -v ms="$el" 'BEGIN { printf "%.2f", k / (ms / 1000) }')
	awk -v p="$pace" 'BEGIN { exit !(p >= 0.8 && p <= 1.2) }' &&
		ok "host $h ticked $((k1 - k0)) times in $el ms without quorum ($pace a second, policy 1)" ||
		bad "host $h: $((k1 - k0)) ticks in $el ms ($pace a second)"
done
pids="$(cat "$TMP/a/pid") $(cat "$TMP/b/pid") $(cat "$TMP/c/pid")"
etcd_member_start 2 || bad "member 2 back"
etcd_member_start 3 || bad "member 3 back"
t=$(now_ms)
back=
while [ $(($(now_ms) - t)) -lt 20000 ]; do
	ctl a vm admit back-a --tenant web --vcpus 1 >/dev/null 2>&1 && { back=$(($(now_ms) - t)); break; }
	sleep 0.2
done
[ -n "$back" ] && ok "members back: admissions work again ${back} ms later" ||
	bad "no admission within 20 s of the members' return"
[ "$pids" = "$(cat "$TMP/a/pid") $(cat "$TMP/b/pid") $(cat "$TMP/c/pid")" ] &&
	kill -0 $pids 2>/dev/null && ok "no vcpud was restarted" || bad "a vcpud is gone"
t=$(now_ms)
want=$(($(ctl b --json host | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["reservations"]))')))
rel=
while [ $(($(now_ms) - t)) -lt 10000 ]; do
	[ "$(booked b a)" = "$want" ] && { rel=$(($(now_ms) - t)); break; }
	sleep 0.2
done
[ -n "$rel" ] && ok "one-b's booking released by b's reconciliation ${rel} ms after etcd came back (b books $want)" ||
	bad "host b books $(booked b a) in the fleet, has $want reservations"

# --- a host killed ---------------------------------------------------------------
cb=$(booked c a)
used=$(fleet_used a web)
stop_host c KILL
t=$(now_ms)
dead=
while [ $(($(now_ms) - t)) -lt 10000 ]; do
	ctl a --json fleet hosts | python3 -c 'import json,sys
h=[x for x in json.load(sys.stdin)["hosts"] if x["host"]=="fleet-c"]
sys.exit(0 if h and not h[0]["live"] else 1)' && { dead=$(($(now_ms) - t)); break; }
	sleep 0.2
done
[ -n "$dead" ] && ok "kill -9 of host c: dead in fleet hosts after $dead ms (lease TTL 3 s)" ||
	bad "host c not dead after 10 s"
[ "$(fleet_used a web)" = "$used" ] && [ "$(booked c a)" = "$cb" ] &&
	ok "host c's $cb vCPUs still count in web's use ($used)" || bad "c's bookings: $(booked c a), use $(fleet_used a web)"
OUT=$(ctl a fleet evict fleet-b 2>&1) && bad "a live host evicted" ||
	case $OUT in *"is live"*) ok "a live host is not evicted: $OUT" ;; *) bad "evict b: $OUT" ;; esac
OUT=$(ctl a fleet evict fleet-c 2>&1) && ok "$OUT" || bad "evict c: $OUT"
sleep 0.3
[ "$(fleet_used b web)" = "$((used - cb))" ] && ok "web's use down by $cb to $((used - cb)), seen on b" ||
	bad "web's use on b: $(fleet_used b web), want $((used - cb))"
ctl a events | grep -q 'fleet.evict.*fleet-c' && ok "the eviction is audited (fleet.evict)" ||
	bad "no fleet.evict event"

# fleet.evict_dead_after_s: a host dead that long is evicted by the others
sed 's/^  evict_dead_after_s: 0/  evict_dead_after_s: 2/' "$TMP/policy.yaml" > "$TMP/policy-evict.yaml"
start_host x || bad "host x"
ctl x vm admit x1 --tenant web --vcpus 2 >/dev/null || bad "x1 on x"
start_host e --policy "$TMP/policy-evict.yaml" || bad "host e (evict_dead_after_s 2)"
[ "$(booked x e)" = 2 ] || bad "x books $(booked x e), not 2"
stop_host x KILL
t=$(now_ms)
gone=
while [ $(($(now_ms) - t)) -lt 15000 ]; do
	[ "$(booked x e)" = 0 ] && { gone=$(($(now_ms) - t)); break; }
	sleep 0.2
done
[ -n "$gone" ] && ok "kill -9 of host x: its bookings evicted by e ${gone} ms later (lease 3 s + evict_dead_after_s 2)" ||
	bad "x's bookings still there 15 s after its death: $(booked x e)"
ctl e events | grep -q 'fleet .*fleet.evict.*fleet-x' && ok "the automatic eviction is audited (actor fleet)" ||
	bad "no fleet.evict of fleet-x on e: $(ctl e events | tail -3)"
stop_host e

# --- a host restarted while etcd is out of reach -------------------------------------
etcd_cluster_stop >/dev/null 2>&1
stop_host b
start_host b && ok "host b starts with etcd out of reach" || bad "host b did not start without etcd"
OUT=$(ctl b tenant show web 2>&1)
case $OUT in *"vcpus:       200"*) ok "b enforces the last known quota of web (200)" ;; *) bad "b: $OUT" ;; esac
sleep 1.5
st=$(ctl b --json status | jget ledger state)
[ "$st" = unreachable ] && ok "b says etcd is unreachable" || bad "b's ledger state: $st"
OUT=$(ctl b vm admit late --tenant web --vcpus 1 2>&1) && bad "admitted with etcd gone" ||
	ok "admissions fail closed without etcd: $OUT"

# --- etcd over TLS, with client certificates ---------------------------------------
# a CA, etcd's certificate for 127.0.0.1, and a client's
T=$TMP/tls
mkdir -p "$T"
cert() { # NAME CN [EXT]
	openssl req -new -newkey rsa:2048 -nodes -keyout "$T/$1.key" -subj "/CN=$2" \
		-out "$T/$1.csr" 2>/dev/null &&
	openssl x509 -req -in "$T/$1.csr" -CA "$T/ca.pem" -CAkey "$T/ca.key" -CAcreateserial \
		-days 1 ${3:+-extfile "$3"} -out "$T/$1.pem" 2>/dev/null
}
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$T/ca.key" -subj "/CN=fleet test CA" \
	-days 1 -out "$T/ca.pem" 2>/dev/null
# etcd 3.4's JSON gateway dials etcd's gRPC with the server's own
# certificate: with --client-cert-auth it must be a client's too
printf 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n' > "$T/srv.ext"
printf 'extendedKeyUsage=clientAuth\n' > "$T/cli.ext"
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$T/other.key" -subj "/CN=another CA" \
	-days 1 -out "$T/other.pem" 2>/dev/null
if cert srv 127.0.0.1 "$T/srv.ext" && cert cli fleet-tls "$T/cli.ext"; then
	ports=$(python3 -c 'import socket
s=[socket.socket() for _ in range(2)]
for x in s: x.bind(("127.0.0.1", 0))
print(" ".join(str(x.getsockname()[1]) for x in s))')
	cp=${ports% *} pp=${ports#* }
	etcd --name tls1 --data-dir "$T/data" --listen-client-urls "https://127.0.0.1:$cp" \
		--advertise-client-urls "https://127.0.0.1:$cp" \
		--listen-peer-urls "http://127.0.0.1:$pp" \
		--initial-advertise-peer-urls "http://127.0.0.1:$pp" \
		--initial-cluster "tls1=http://127.0.0.1:$pp" --cert-file "$T/srv.pem" \
		--key-file "$T/srv.key" --client-cert-auth --trusted-ca-file "$T/ca.pem" \
		>"$T/etcd.log" 2>&1 &
	tls_pid=$!
	i=0
	until curl -s --cacert "$T/ca.pem" --cert "$T/cli.pem" --key "$T/cli.key" \
		"https://127.0.0.1:$cp/health" 2>/dev/null | grep -q true; do
		i=$((i + 1)); [ $i -gt 100 ] && break
		sleep 0.1
	done
	FLEET_URLS=https://127.0.0.1:$cp
	start_host t --fleet-cacert "$T/ca.pem" --fleet-cert "$T/cli.pem" \
		--fleet-key "$T/cli.key" || bad "host t (TLS)"
	OUT=$(ctl t tenant create secure --vcpus 2 2>&1) && ctl t vm admit s1 --tenant secure \
		--vcpus 2 >/dev/null 2>&1 &&
		ok "etcd over TLS with a client certificate: tenant created, VM booked" ||
		bad "etcd over TLS: $OUT"
	start_host n --fleet-cacert "$T/ca.pem" || bad "host n"
	OUT=$(ctl n tenant create insecure --vcpus 2 2>&1) &&
		bad "etcd took a client without a certificate" ||
		ok "a host without a client certificate is refused: $OUT"
	start_host w --fleet-cacert "$T/other.pem" --fleet-cert "$T/cli.pem" \
		--fleet-key "$T/cli.key" || bad "host w"
	OUT=$(ctl w tenant create wrong --vcpus 2 2>&1) &&
		bad "a server signed by another CA was trusted" ||
		ok "a host that does not trust etcd's CA refuses it: $OUT"
	for h in t n w; do stop_host "$h"; done
	kill "$tls_pid" 2>/dev/null
	wait "$tls_pid" 2>/dev/null
else
	bad "openssl could not make the test certificates"
fi

finish
