# lib.sh - vcpud hosts of a fleet on this machine, for tests/fleet/run.sh,
# tests/fleet/demo.sh and tests/bench/fleet.sh. Sourced after setting
# SRC and BUILD; sources tests/fleet/etcd.sh. Each host NAME has its own
# directory $TMP/NAME (database, socket, log, fake cgroup root), the
# 64-CPU fixture topology, --dry-run and --no-libvirt.
#
#	fleet_setup [SED-EXPR...]  $TMP, the fixture host, $TMP/policy.yaml
#	                           (policies/default.yaml, /proc discovery off,
#	                           edited by the sed expressions)
#	fleet_etcd N               N etcd members; $FLEET_URLS
#	start_host NAME [OPTS...]  vcpud --fleet $FLEET_URLS --host-id fleet-NAME
#	                           (OPTS: more options; --no-fleet: the local
#	                           ledger), waits until it answers
#	stop_host NAME [SIGNAL]    TERM (or SIGNAL), waits for it to exit
#	ctl NAME ARGS...           vcpuctl on NAME's socket
#	fleet_teardown             every host and member stopped, $TMP removed
. "$SRC/tests/fleet/etcd.sh"
VCPUD=$BUILD/vcpud
VCPUCTL=$BUILD/vcpuctl
FLEET_HOSTS=""
FLEET_URLS=""

fleet_setup() {
	TMP=$(mktemp -d /tmp/vcpud-fleet.XXXXXX)
	chmod 755 "$TMP"
	mkdir -p "$TMP/host" "$TMP/etcd"
	ln -s "$SRC/tests/fixtures/topology/64c-nosmt/sys" "$TMP/host/sys"
	ln -s /proc "$TMP/host/proc"
	printf '%s\n' 's/^  proc: true/  proc: false/' "$@" > "$TMP/policy.sed"
	sed -f "$TMP/policy.sed" "$SRC/policies/default.yaml" > "$TMP/policy.yaml"
}

fleet_etcd() {
	etcd_cluster_start "$TMP/etcd" "$1" || return 1
	# etcd_cluster_stop clears ETCD_URLS: a host started later needs them
	FLEET_URLS=$ETCD_URLS
}

ctl() { _h=$1; shift; "$VCPUCTL" -s "$TMP/$_h/sock" "$@"; }

start_host() {
	_h=$1; shift
	_fleet="--fleet $FLEET_URLS --host-id fleet-$_h"
	[ "${1:-}" = --no-fleet ] && { _fleet=""; shift; }
	mkdir -p "$TMP/$_h/cg"
	case " $FLEET_HOSTS " in *" $_h "*) ;; *) FLEET_HOSTS="$FLEET_HOSTS $_h" ;; esac
	# shellcheck disable=SC2086
	"$VCPUD" --foreground --db "$TMP/$_h/vcpud.db" --socket "$TMP/$_h/sock" \
		--policy "$TMP/policy.yaml" --cgroup-root "$TMP/$_h/cg" --host-root "$TMP/host" \
		--dry-run --no-libvirt --log-level debug $_fleet "$@" >>"$TMP/$_h/log" 2>&1 &
	echo $! > "$TMP/$_h/pid"
	_i=0
	while [ $_i -lt 100 ]; do
		[ -S "$TMP/$_h/sock" ] && ctl "$_h" status >/dev/null 2>&1 && return 0
		kill -0 "$(cat "$TMP/$_h/pid")" 2>/dev/null || break
		sleep 0.05; _i=$((_i + 1))
	done
	echo "host $_h did not start:"; tail -20 "$TMP/$_h/log"
	return 1
}

stop_host() {
	[ -f "$TMP/$1/pid" ] || return 0
	kill "-${2:-TERM}" "$(cat "$TMP/$1/pid")" 2>/dev/null
	_i=0
	while kill -0 "$(cat "$TMP/$1/pid")" 2>/dev/null && [ $_i -lt 100 ]; do
		sleep 0.05; _i=$((_i + 1))
	done
	rm -f "$TMP/$1/pid"
}

fleet_stop_all() {
	for _h in $FLEET_HOSTS; do stop_host "$_h"; done
	etcd_cluster_stop >/dev/null 2>&1
}

fleet_teardown() {
	fleet_stop_all
	rm -rf "$TMP"
}
