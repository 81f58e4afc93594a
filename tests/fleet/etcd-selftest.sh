#!/bin/sh
# etcd-selftest.sh - a quick check of tests/fleet/etcd.sh with a real
# 3-member cluster: start, a put read back from another member, one member
# down (a quorum), two down (none), both back, a member SIGKILLed and back,
# stop. Not part of any test tier:  sh tests/fleet/etcd-selftest.sh
set -u
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=tests/fleet/etcd.sh
. "$here/etcd.sh"

pass=0
fail=0
ok() {
	pass=$((pass + 1))
	echo "ok - $*"
}
not_ok() {
	fail=$((fail + 1))
	echo "not ok - $*"
}
# check DESCRIPTION COMMAND...: ok if COMMAND succeeds
check() {
	_d=$1
	shift
	if "$@"; then ok "$_d"; else not_ok "$_d"; fi
}
# now: seconds since boot (1/100 s)
now() {
	cut -d' ' -f1 /proc/uptime
}
# since T: seconds since T (now)
since() {
	awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.2f", b - a }'
}
b64() {
	printf %s "$1" | base64 | tr -d '\n'
}
# put I KEY VALUE [SECONDS]: member I stores KEY=VALUE within SECONDS (5)
put() {
	_r=$(curl -s -m "${4:-5}" "$(etcd_member_url "$1")/v3/kv/put" \
		-d "{\"key\":\"$(b64 "$2")\",\"value\":\"$(b64 "$3")\"}") ||
		return 1
	case $_r in
	*'"error"'*) return 1 ;;
	*'"revision"'*) return 0 ;;
	esac
	return 1
}
# has I KEY VALUE: member I reads KEY=VALUE
has() {
	_r=$(curl -s -m 5 "$(etcd_member_url "$1")/v3/kv/range" \
		-d "{\"key\":\"$(b64 "$2")\"}") || return 1
	case $_r in
	*"\"value\":\"$(b64 "$3")\""*) return 0 ;;
	esac
	echo "# m$1 /v3/kv/range: $_r"
	return 1
}
healthy() {
	[ "$(etcd_cluster_health)" = "$1" ]
}
summary() {
	echo "etcd-selftest: $pass passed, $fail failed ($(since "$t0") s)"
}

t0=$(now)
DIR=$(mktemp -d)
# on an early exit: leave no member, no directory
trap 'etcd_cluster_stop >/dev/null 2>&1; rm -rf "$DIR"' EXIT
trap 'exit 1' HUP INT TERM

t=$(now)
if etcd_cluster_start "$DIR" 3; then
	ok "etcd_cluster_start: 3 members healthy in $(since "$t") s ($ETCD_URLS)"
else
	not_ok "etcd_cluster_start $DIR 3"
	summary
	exit 1
fi
check "etcd_cluster_health: 3" healthy 3
check "put k1=v1 on m1" put 1 k1 v1
check "m2 reads k1=v1" has 2 k1 v1

t=$(now)
check "etcd_member_stop 3" etcd_member_stop 3
echo "# m3 stopped in $(since "$t") s"
check "m3's PID file removed" test ! -e "$DIR/m3.pid"
check "etcd_cluster_health: 2" healthy 2
check "put k2=v2 on m1 without m3 (2 of 3: a quorum)" put 1 k2 v2

check "etcd_member_stop 2" etcd_member_stop 2
t=$(now)
if put 1 k3 v3 3; then
	not_ok "put on m1 without m2, m3 (1 of 3: no quorum) fails"
else
	ok "put on m1 without m2, m3 (1 of 3: no quorum) fails ($(since "$t") s)"
fi

t=$(now)
check "etcd_member_start 2" etcd_member_start 2
check "etcd_member_start 3" etcd_member_start 3
echo "# m2, m3 started again in $(since "$t") s"
t=$(now)
end=$(($(date +%s) + 20))
until put 3 k4 v4 2 || [ "$(date +%s)" -ge "$end" ]; do
	sleep 0.2
done
check "put k4=v4 on m3 again ($(since "$t") s)" has 1 k4 v4
check "restarted m3 has k2=v2 (written while it was down)" has 3 k2 v2
check "etcd_cluster_health: 3" healthy 3
check "etcd_member_stop 3 again" etcd_member_stop 3
check "etcd_member_stop of a stopped member fails" \
	eval '! etcd_member_stop 3 2>/dev/null'
check "etcd_member_start 3 again" etcd_member_start 3

pid1=$(cat "$DIR/m1.pid")
check "etcd_member_kill 1" etcd_member_kill 1
# shellcheck disable=SC2016 # eval's
check "m1 (PID $pid1) has gone" eval '! kill -0 "$pid1" 2>/dev/null'
# m1 may have been the leader: a put fails until m2 and m3 have elected
# another one (an election timeout, 1 to 2 s)
t=$(now)
end=$(($(date +%s) + 10))
until put 2 k5 v5 2 || [ "$(date +%s)" -ge "$end" ]; do
	sleep 0.2
done
check "put k5=v5 on m2 without m1 ($(since "$t") s)" has 2 k5 v5
check "etcd_member_start 1 (after SIGKILL)" etcd_member_start 1
check "m1 has k5=v5" has 1 k5 v5
check "etcd_cluster_health: 3" healthy 3
check "etcd_member_start of a running member fails" \
	eval '! etcd_member_start 1 2>/dev/null'

t=$(now)
check "etcd_cluster_stop" etcd_cluster_stop
echo "# cluster stopped in $(since "$t") s"
left=$(pgrep -f "$DIR" || :)
check "no process with $DIR in its command line${left:+: $left}" \
	test -z "$left"
# shellcheck disable=SC2016 # eval's
check "the members' data removed" eval '! ls -d "$DIR"/m? 2>/dev/null'
check "etcd_member_start without a cluster fails" \
	eval '! etcd_member_start 1 2>/dev/null'
rm -rf "$DIR"
trap - EXIT
check "temporary directory removed" test ! -e "$DIR"

summary
[ "$fail" -eq 0 ]
