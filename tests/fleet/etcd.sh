# etcd.sh - a real etcd cluster for the tests, on loopback only. Sourced:
#
#	. tests/fleet/etcd.sh
#	etcd_cluster_start DIR N	start members m1..mN (N 1..5); exports
#					ETCD_DIR (DIR, absolute) and ETCD_URLS
#	etcd_member_url I		print member I's client URL
#	etcd_member_stop I		SIGTERM, SIGKILL after 5 s
#	etcd_member_kill I		SIGKILL
#	etcd_member_start I		start a stopped member again: same data,
#					same flags, --initial-cluster-state existing
#	etcd_cluster_health		print how many members answer /health true
#	etcd_cluster_stop		end every member, remove their data
#
# Each function returns non-zero, with a message on stderr, when it fails.
# Under DIR: member I's data directory DIR/mI, its log DIR/mI.log (etcd's
# stdout and stderr, appended to on every start), its PID DIR/mI.pid, and
# the cluster's size, ports and token in DIR/cluster, so that a script run
# with ETCD_DIR in its environment can source this file and use the
# functions too. Member I listens on 127.0.0.1:BASE+2(I-1) for clients and
# on the next port for its peers; BASE is random from 20000 up to the
# kernel's ephemeral ports (ip_local_port_range, 32768), its 2N
# ports checked unused (ss, else /proc/net/tcp). A process is signalled only
# if it is ours: the PID from DIR/mI.pid running $ETCD_BIN with
# --data-dir=DIR/mI (etcd_cluster_stop also: with the cluster's token).
#
# Needs etcd (deploy/install-deps.sh unpacks it to /usr/local/bin; ETCD_BIN
# names another one), curl, od, awk. POSIX sh (dash, busybox ash), set -u
# and set -e safe; its own variables start with _etcd_.

ETCD_BIN=${ETCD_BIN:-etcd}
ETCD_DIR=${ETCD_DIR:-}
ETCD_URLS=${ETCD_URLS:-}

_etcd_say() {
	echo "etcd.sh: $*" >&2
}

# _etcd_load: the cluster's state (DIR/cluster): _etcd_n, _etcd_base,
# _etcd_token
_etcd_load() {
	if [ -z "$ETCD_DIR" ] || [ ! -r "$ETCD_DIR/cluster" ]; then
		_etcd_say "no cluster (etcd_cluster_start first)"
		return 1
	fi
	_etcd_n=0 _etcd_base=0 _etcd_token=
	# shellcheck source=/dev/null
	. "$ETCD_DIR/cluster"
}

# _etcd_member I: I is a member's number; its ports in _etcd_cport (clients)
# and _etcd_pport (peers)
_etcd_member() {
	case ${1:-} in
	'' | *[!0-9]*)
		_etcd_say "'${1:-}' is not a member's number"
		return 1
		;;
	esac
	if [ "$1" -lt 1 ] || [ "$1" -gt "$_etcd_n" ]; then
		_etcd_say "no member $1 (the cluster has m1..m$_etcd_n)"
		return 1
	fi
	_etcd_cport=$((_etcd_base + 2 * ($1 - 1)))
	_etcd_pport=$((_etcd_cport + 1))
}

# _etcd_is PID ARG: PID runs $ETCD_BIN with the argument ARG (a zombie's
# command line is empty)
_etcd_is() {
	# shellcheck disable=SC2002 # cat: no message when PID has gone
	cat "/proc/$1/cmdline" 2>/dev/null | tr '\0' '\n' |
		awk -v a0="$ETCD_BIN" -v arg="$2" '
			NR == 1 && $0 != a0 { exit }
			$0 == arg { found = 1; exit }
			END { exit !found }'
}

# _etcd_ours PID I: PID is member I's etcd, running
_etcd_ours() {
	_etcd_is "$1" "--data-dir=$ETCD_DIR/m$2"
}

# _etcd_pid I: member I runs; its PID in _etcd_p
_etcd_pid() {
	_etcd_p=$(cat "$ETCD_DIR/m$1.pid" 2>/dev/null) || return 1
	case $_etcd_p in
	'' | *[!0-9]*) return 1 ;;
	esac
	_etcd_ours "$_etcd_p" "$1"
}

# _etcd_ports all|listen: the local TCP ports in use (all: in any state),
# one a line
_etcd_ports() {
	if command -v ss >/dev/null 2>&1; then
		if [ "$1" = listen ]; then
			ss -Htln
		else
			ss -Htan
		fi 2>/dev/null | awk '{ n = split($4, a, ":"); print a[n] }'
	else
		awk -v st="$1" 'FNR > 1 && (st == "all" || $4 == "0A") {
			split($2, a, ":"); print a[2] }' \
			/proc/net/tcp /proc/net/tcp6 2>/dev/null |
			while read -r _etcd_h; do echo $((0x$_etcd_h)); done
	fi
}

# _etcd_free BASE COUNT: no TCP socket uses a port of BASE..BASE+COUNT-1
_etcd_free() {
	_etcd_used=$(_etcd_ports all)
	_etcd_q=$1
	while [ "$_etcd_q" -lt $(($1 + $2)) ]; do
		if printf '%s\n' "$_etcd_used" | grep -qx "$_etcd_q"; then
			return 1
		fi
		_etcd_q=$((_etcd_q + 1))
	done
}

# _etcd_healthy I: member I answers /health with "health":"true" (which
# needs a leader, so a quorum)
_etcd_healthy() {
	_etcd_member "$1" || return 1
	curl -s -m 2 "http://127.0.0.1:$_etcd_cport/health" 2>/dev/null |
		grep -q '"health":"true"'
}

# _etcd_launch I new|existing: start member I in the background
_etcd_launch() {
	_etcd_member "$1" || return 1
	_etcd_ic=
	_etcd_j=1
	while [ "$_etcd_j" -le "$_etcd_n" ]; do
		_etcd_ic="$_etcd_ic${_etcd_ic:+,}m$_etcd_j=http://127.0.0.1:$((_etcd_base + 2 * _etcd_j - 1))"
		_etcd_j=$((_etcd_j + 1))
	done
	# etcd reads ETCD_<FLAG> variables as flags and warns about every
	# other ETCD_ variable (ETCD_DIR, ETCD_URLS): it gets none of them
	_etcd_unset=$(env | sed -n 's/^\(ETCD_[A-Za-z0-9_]*\)=.*/-u \1/p')
	echo "=== etcd.sh: m$1 starts ($2) $(date)" >>"$ETCD_DIR/m$1.log"
	# shellcheck disable=SC2086
	env $_etcd_unset "$ETCD_BIN" --name "m$1" --data-dir="$ETCD_DIR/m$1" \
		--listen-client-urls "http://127.0.0.1:$_etcd_cport" \
		--advertise-client-urls "http://127.0.0.1:$_etcd_cport" \
		--listen-peer-urls "http://127.0.0.1:$_etcd_pport" \
		--initial-advertise-peer-urls "http://127.0.0.1:$_etcd_pport" \
		--initial-cluster "$_etcd_ic" \
		--initial-cluster-state "$2" \
		--initial-cluster-token="$_etcd_token" \
		--heartbeat-interval 100 --election-timeout 1000 \
		--quota-backend-bytes 67108864 \
		--logger zap --log-outputs stderr \
		</dev/null >>"$ETCD_DIR/m$1.log" 2>&1 &
	echo $! >"$ETCD_DIR/m$1.pid"
	# until env has executed etcd, the child's command line is this
	# shell's: wait for it (5 s), so that a member that is not ours
	# has exited. (A zombie's command line is empty; test -s is no use,
	# files in /proc have the size 0)
	_etcd_x=0
	until _etcd_ours $! "$1"; do
		# gone, or a zombie: it exited (an empty command line alone is
		# not that: it is empty for a moment while env runs execve, and a
		# wait on a member that runs would never return)
		_etcd_st=$(sed -n 's/^[0-9]* (.*) \([A-Za-z]\) .*/\1/p' "/proc/$!/stat" 2>/dev/null)
		if [ -z "$_etcd_st" ] || [ "$_etcd_st" = Z ]; then
			_etcd_say "m$1 did not start ($ETCD_BIN exited)"
			wait $! 2>/dev/null || :
			return 1
		fi
		if [ "$_etcd_x" -ge 100 ]; then
			_etcd_say "m$1 did not start ($ETCD_BIN not executed in 5 s)"
			kill -s KILL $! 2>/dev/null || :
			wait $! 2>/dev/null || :
			return 1
		fi
		sleep 0.05
		_etcd_x=$((_etcd_x + 1))
	done
}

# _etcd_tails I...: the last lines of the members' logs, on stderr
_etcd_tails() {
	for _etcd_t; do
		echo "--- $ETCD_DIR/m$_etcd_t.log (end)" >&2
		tail -n 15 "$ETCD_DIR/m$_etcd_t.log" >&2 2>/dev/null || :
	done
}

# _etcd_end GRACE I...: end members I... that run: SIGTERM, then SIGKILL
# to those still running after GRACE seconds (0: SIGKILL at once); wait
# until they have exited (and reap them if they are this shell's children)
_etcd_end() {
	_etcd_g=$1
	shift
	_etcd_sig=TERM
	[ "$_etcd_g" -gt 0 ] || _etcd_sig=KILL
	_etcd_ps=
	for _etcd_e; do
		if _etcd_pid "$_etcd_e"; then
			kill -s "$_etcd_sig" "$_etcd_p" 2>/dev/null || :
			_etcd_ps="$_etcd_ps $_etcd_e:$_etcd_p"
		fi
	done
	# in tenths of a second: the grace, then 5 s for SIGKILL to work
	_etcd_w=0
	while :; do
		_etcd_left=
		for _etcd_e in $_etcd_ps; do
			if _etcd_ours "${_etcd_e#*:}" "${_etcd_e%:*}"; then
				_etcd_left="$_etcd_left $_etcd_e"
			fi
		done
		[ -n "$_etcd_left" ] || break
		if [ "$_etcd_w" -eq $((_etcd_g * 10)) ] && [ "$_etcd_sig" = TERM ]; then
			for _etcd_e in $_etcd_left; do
				_etcd_say "m${_etcd_e%:*} (PID ${_etcd_e#*:}) still runs ${_etcd_g} s after SIGTERM: SIGKILL"
				kill -s KILL "${_etcd_e#*:}" 2>/dev/null || :
			done
			_etcd_sig=KILL
		elif [ "$_etcd_w" -ge $((_etcd_g * 10 + 50)) ]; then
			for _etcd_e in $_etcd_left; do
				_etcd_say "m${_etcd_e%:*} (PID ${_etcd_e#*:}) does not exit"
			done
			return 1
		fi
		sleep 0.1
		_etcd_w=$((_etcd_w + 1))
	done
	for _etcd_e in $_etcd_ps; do
		wait "${_etcd_e#*:}" 2>/dev/null || :
		rm -f "$ETCD_DIR/m${_etcd_e%:*}.pid"
	done
}

# _etcd_wait I END: member I answers /health before the time END (date
# +%s), or (when the members running are fewer than a quorum, so none can
# be healthy) listens on its client port
_etcd_wait() {
	while :; do
		if ! _etcd_pid "$1"; then
			_etcd_say "m$1 exited"
			return 1
		fi
		_etcd_healthy "$1" && return 0
		_etcd_up=0
		_etcd_k=1
		while [ "$_etcd_k" -le "$_etcd_n" ]; do
			! _etcd_pid "$_etcd_k" || _etcd_up=$((_etcd_up + 1))
			_etcd_k=$((_etcd_k + 1))
		done
		_etcd_member "$1"
		if [ "$_etcd_up" -le $((_etcd_n / 2)) ] &&
			_etcd_ports listen | grep -qx "$_etcd_cport"; then
			return 0
		fi
		if [ "$(date +%s)" -ge "$2" ]; then
			_etcd_say "m$1 is not healthy (no \"health\":\"true\" from" \
				"http://127.0.0.1:$_etcd_cport/health)"
			return 1
		fi
		sleep 0.2
	done
}

etcd_cluster_start() {
	if [ $# -ne 2 ]; then
		_etcd_say "usage: etcd_cluster_start DIR N"
		return 1
	fi
	case $2 in
	[1-5]) ;;
	*)
		_etcd_say "etcd_cluster_start: N is 1..5, not '$2'"
		return 1
		;;
	esac
	if [ ! -d "$1" ]; then
		_etcd_say "etcd_cluster_start: no directory $1"
		return 1
	fi
	for _etcd_c in "$ETCD_BIN" curl od awk; do
		if ! command -v "$_etcd_c" >/dev/null 2>&1; then
			_etcd_say "etcd_cluster_start: no $_etcd_c (deploy/install-deps.sh)"
			return 1
		fi
	done
	_etcd_d=$(cd "$1" && pwd) || return 1
	for _etcd_c in "$ETCD_DIR" "$_etcd_d"; do
		if [ -z "$_etcd_c" ] || [ ! -r "$_etcd_c/cluster" ]; then
			continue
		fi
		_etcd_i=$(ETCD_DIR=$_etcd_c; _etcd_load || exit 0
			for _etcd_f in "$_etcd_c"/m*.pid; do
				_etcd_f=${_etcd_f##*/m}
				! _etcd_pid "${_etcd_f%.pid}" || echo "${_etcd_f%.pid}"
			done)
		if [ -n "$_etcd_i" ]; then
			_etcd_say "etcd_cluster_start: a cluster runs in $_etcd_c" \
				"(etcd_cluster_stop first)"
			return 1
		fi
	done
	ETCD_DIR=$_etcd_d
	export ETCD_DIR
	_etcd_n=$2
	_etcd_try=1
	while :; do
		_etcd_a=1
		while :; do
			_etcd_r=$(od -An -N2 -tu2 /dev/urandom | tr -d ' ')
			# below the kernel's ephemeral ports (ip_local_port_range,
			# 32768.. by default): a member restarted later must find
			# its ports free, not taken as some connection's source port
			_etcd_lo=$(cut -f1 /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || echo 32768)
			[ "$_etcd_lo" -gt 21000 ] 2>/dev/null || _etcd_lo=32768
			_etcd_base=$((20000 + _etcd_r % (_etcd_lo - 20000 - 2 * _etcd_n)))
			_etcd_free "$_etcd_base" $((2 * _etcd_n)) && break
			if [ "$_etcd_a" -ge 50 ]; then
				_etcd_say "etcd_cluster_start: no $((2 * _etcd_n)) free ports in 50 tries"
				return 1
			fi
			_etcd_a=$((_etcd_a + 1))
		done
		_etcd_token="test-$$-$_etcd_base-$(date +%s)"
		printf '_etcd_n=%s _etcd_base=%s _etcd_token=%s\n' \
			"$_etcd_n" "$_etcd_base" "$_etcd_token" >"$ETCD_DIR/cluster"
		ETCD_URLS=
		_etcd_ok=1
		_etcd_i=1
		while [ "$_etcd_i" -le "$_etcd_n" ]; do
			rm -rf "$ETCD_DIR/m$_etcd_i"
			: >"$ETCD_DIR/m$_etcd_i.log"
			_etcd_launch "$_etcd_i" new || _etcd_ok=0
			ETCD_URLS="$ETCD_URLS${ETCD_URLS:+,}http://127.0.0.1:$_etcd_cport"
			_etcd_i=$((_etcd_i + 1))
		done
		export ETCD_URLS
		# 20 s for all of them
		_etcd_end_at=$(($(date +%s) + 20))
		_etcd_i=1
		while [ "$_etcd_ok" -eq 1 ] && [ "$_etcd_i" -le "$_etcd_n" ]; do
			_etcd_wait "$_etcd_i" "$_etcd_end_at" || _etcd_ok=0
			_etcd_i=$((_etcd_i + 1))
		done
		[ "$_etcd_ok" -eq 0 ] || return 0
		_etcd_all=$(_etcd_i=1; while [ "$_etcd_i" -le "$_etcd_n" ]; do
			echo "$_etcd_i"; _etcd_i=$((_etcd_i + 1)); done)
		# shellcheck disable=SC2086
		_etcd_end 0 $_etcd_all || :
		# another process took one of the ports between the check and
		# etcd's listen: again, with other ports
		if [ "$_etcd_try" -lt 3 ] &&
			cat "$ETCD_DIR"/m*.log | grep -q 'address already in use'; then
			_etcd_say "etcd_cluster_start: a port was taken meanwhile; again"
			_etcd_try=$((_etcd_try + 1))
			continue
		fi
		_etcd_say "etcd_cluster_start: the cluster did not start"
		# shellcheck disable=SC2086
		_etcd_tails $_etcd_all
		ETCD_URLS=
		return 1
	done
}

etcd_member_url() {
	_etcd_load && _etcd_member "${1:-}" || return 1
	echo "http://127.0.0.1:$_etcd_cport"
}

# _etcd_member_end WHO GRACE I: end running member I, SIGKILL after GRACE s
_etcd_member_end() {
	_etcd_load && _etcd_member "${3:-}" || return 1
	if ! _etcd_pid "$3"; then
		_etcd_say "$1: m$3 does not run"
		return 1
	fi
	_etcd_end "$2" "$3"
}

etcd_member_stop() {
	_etcd_member_end etcd_member_stop 5 "${1:-}"
}

etcd_member_kill() {
	_etcd_member_end etcd_member_kill 0 "${1:-}"
}

etcd_member_start() {
	_etcd_load && _etcd_member "${1:-}" || return 1
	if _etcd_pid "$1"; then
		_etcd_say "etcd_member_start: m$1 runs (PID $_etcd_p)"
		return 1
	fi
	if [ ! -d "$ETCD_DIR/m$1" ]; then
		_etcd_say "etcd_member_start: m$1 has no data ($ETCD_DIR/m$1)"
		return 1
	fi
	if ! _etcd_launch "$1" existing ||
		! _etcd_wait "$1" $(($(date +%s) + 20)); then
		_etcd_tails "$1"
		return 1
	fi
}

etcd_cluster_health() {
	_etcd_load || return 1
	_etcd_hn=0
	_etcd_i=1
	while [ "$_etcd_i" -le "$_etcd_n" ]; do
		! _etcd_healthy "$_etcd_i" || _etcd_hn=$((_etcd_hn + 1))
		_etcd_i=$((_etcd_i + 1))
	done
	echo "$_etcd_hn"
}

etcd_cluster_stop() {
	_etcd_load || return 1
	_etcd_rc=0
	_etcd_all=
	_etcd_i=1
	while [ "$_etcd_i" -le "$_etcd_n" ]; do
		_etcd_all="$_etcd_all $_etcd_i"
		_etcd_i=$((_etcd_i + 1))
	done
	# one after the other: a leader given SIGTERM hands its leadership to
	# another member first, and waits for that up to 7 s (etcd's request
	# timeout) when that member is stopping too
	for _etcd_i in $_etcd_all; do
		_etcd_end 5 "$_etcd_i" || _etcd_rc=1
	done
	# a member whose PID file was lost: its command line has the
	# cluster's token
	# shellcheck disable=SC2013 # /proc/PID/cmdline: no blanks
	for _etcd_f in $(grep -lF -- "--initial-cluster-token=$_etcd_token" \
		/proc/[0-9]*/cmdline 2>/dev/null); do
		_etcd_f=${_etcd_f#/proc/}
		_etcd_f=${_etcd_f%/cmdline}
		if _etcd_is "$_etcd_f" "--initial-cluster-token=$_etcd_token"; then
			_etcd_say "etcd_cluster_stop: PID $_etcd_f was not" \
				"recorded: SIGKILL"
			kill -s KILL "$_etcd_f" 2>/dev/null || :
			_etcd_rc=1
		fi
	done
	if [ "$_etcd_rc" -eq 0 ]; then
		for _etcd_i in $_etcd_all; do
			rm -rf "$ETCD_DIR/m$_etcd_i" "$ETCD_DIR/m$_etcd_i.pid"
		done
		rm -f "$ETCD_DIR/cluster"
		ETCD_URLS=
	fi
	return "$_etcd_rc"
}
