#!/bin/sh
# privd.sh - a private libvirtd for tests, as root, that leaves the host's
# /etc/libvirt, /run, /var and cgroups alone (see /work/shared/FACTS.md).
#
#   privd.sh start DIR   start libvirtd with all its state under DIR (created
#                        if missing, reused if present so that a restart
#                        finds its running domains); DIR/libvirtd.pid holds
#                        its PID, the socket is DIR/sock/libvirt-sock
#   privd.sh stop DIR    SIGTERM that libvirtd (by PID) and wait for it; its
#                        domains keep running
#   privd.sh cleanup DIR stop libvirtd, SIGKILL any QEMU it started that is
#                        still running (PIDs from its pid files under DIR),
#                        end the namespace holder; DIR itself is left
#   privd.sh uri DIR     print the URI to connect with
#
# The mounts live in a private mount namespace held by a `sleep` process
# (DIR/holder.pid): a private /etc/libvirt (its qemu.conf keeps libvirtd
# out of cgroups, namespaces and security drivers), private /etc/passwd and
# /etc/group (with the libvirt-qemu user it looks up) and overlay mounts on
# /run and /var whose upper layers live under DIR, so its pid files, status
# XML, monitor sockets, logs and caches never reach the host's directories.
# libvirtd runs in that namespace through nsenter, so a restarted libvirtd
# sees the very same mounts: the monitor sockets of running QEMUs are the
# same inodes and it reconnects to them (a fresh overlay mount of the same
# directories would not: connect() on a socket file needs the inode the
# listener bound).
set -eu

cmd=${1:?usage: privd.sh start|stop|cleanup|uri DIR}
dir=${2:?usage: privd.sh start|stop|cleanup|uri DIR}
case "$dir" in /*) ;; *) dir=$(pwd)/$dir ;; esac

uri() { echo "qemu:///system?socket=$dir/sock/libvirt-sock"; }

# true while PID is a live process (a zombie counts as gone)
alive() {
	[ -r "/proc/$1/stat" ] || return 1
	st=$(sed 's/.*) \(.\).*/\1/' "/proc/$1/stat" 2>/dev/null) || return 1
	[ "$st" != Z ]
}

# wait up to 5 s for PID to go
wait_gone() {
	i=0
	while alive "$1" && [ $i -lt 50 ]; do
		sleep 0.1; i=$((i + 1))
	done
	! alive "$1"
}

stop_libvirtd() {
	[ -f "$dir/libvirtd.pid" ] || return 0
	pid=$(cat "$dir/libvirtd.pid")
	if alive "$pid"; then
		kill -TERM "$pid"
		i=0
		while alive "$pid" && [ $i -lt 100 ]; do
			sleep 0.1; i=$((i + 1))
		done
		if alive "$pid"; then
			kill -KILL "$pid" 2>/dev/null
			wait_gone "$pid" || true
		fi
	fi
	rm -f "$dir/libvirtd.pid"
	return 0
}

write_config() {
	mkdir -p "$dir/etc/libvirt" "$dir/sock" "$dir/run-up" "$dir/run-work" \
		"$dir/var-up" "$dir/var-work"
	cat > "$dir/etc/libvirt/libvirtd.conf" <<CONF
unix_sock_dir = "$dir/sock"
unix_sock_group = "root"
unix_sock_ro_perms = "0700"
unix_sock_rw_perms = "0700"
auth_unix_ro = "none"
auth_unix_rw = "none"
log_outputs = "3:file:$dir/libvirtd.log"
keepalive_interval = 5
keepalive_count = 5
CONF
	cat > "$dir/etc/libvirt/qemu.conf" <<CONF
user = "root"
group = "root"
dynamic_ownership = 0
remember_owner = 0
security_driver = "none"
cgroup_controllers = [ ]
namespaces = [ ]
stdio_handler = "file"
CONF
	: > "$dir/etc/libvirt/libvirt.conf"
	cp /etc/passwd "$dir/etc/passwd"
	cp /etc/group "$dir/etc/group"
	grep -q '^libvirt-qemu:' "$dir/etc/passwd" ||
		echo 'libvirt-qemu:x:64055:64055:Libvirt Qemu:/nonexistent:/usr/sbin/nologin' \
			>> "$dir/etc/passwd"
	grep -q '^libvirt-qemu:' "$dir/etc/group" ||
		echo 'libvirt-qemu:x:64055:' >> "$dir/etc/group"
	grep -q '^kvm:' "$dir/etc/group" || echo 'kvm:x:64056:' >> "$dir/etc/group"
	grep -q '^libvirt:' "$dir/etc/group" || echo 'libvirt:x:64057:' >> "$dir/etc/group"
}

case "$cmd" in
uri) uri ;;
start)
	mkdir -p "$dir"
	dir=$(cd "$dir" && pwd)
	[ -f "$dir/etc/libvirt/qemu.conf" ] || write_config
	if [ -f "$dir/libvirtd.pid" ] && alive "$(cat "$dir/libvirtd.pid")"; then
		echo "privd.sh: libvirtd of $dir is already running" >&2
		exit 1
	fi
	holder=""
	[ -f "$dir/holder.pid" ] && holder=$(cat "$dir/holder.pid")
	if [ -z "$holder" ] || ! alive "$holder"; then
		rm -f "$dir/ns-ready"
		unshare --mount --propagation private sh -c '
			set -e
			d=$1
			mount -n --bind "$d/etc/libvirt" /etc/libvirt
			mount -n --bind "$d/etc/passwd" /etc/passwd
			mount -n --bind "$d/etc/group" /etc/group
			mount -n -t overlay overlay \
				-o "lowerdir=/run,upperdir=$d/run-up,workdir=$d/run-work" /run
			mount -n -t overlay overlay \
				-o "lowerdir=/var,upperdir=$d/var-up,workdir=$d/var-work" /var
			: > "$d/ns-ready"
			exec sleep 2147483647
		' sh "$dir" > "$dir/holder.out" 2>&1 &
		holder=$!
		echo "$holder" > "$dir/holder.pid"
		i=0
		while [ ! -f "$dir/ns-ready" ]; do
			if ! alive "$holder" || [ $i -ge 50 ]; then
				echo "privd.sh: cannot set up the mount namespace:" >&2
				cat "$dir/holder.out" >&2
				exit 1
			fi
			sleep 0.1
			i=$((i + 1))
		done
	fi
	rm -f "$dir/sock/libvirt-sock" "$dir/sock/libvirt-sock-ro" "$dir/sock/libvirt-admin-sock"
	nsenter --mount="/proc/$holder/ns/mnt" -- \
		libvirtd -f "$dir/etc/libvirt/libvirtd.conf" -p "$dir/run-libvirtd.pid" \
		>> "$dir/libvirtd.out" 2>&1 &
	echo $! > "$dir/libvirtd.pid"
	# ready when the socket answers (0.3 s; 8 s the first time, while it
	# probes QEMU's capabilities into its cache under DIR)
	i=0
	while [ $i -lt 300 ]; do
		if ! alive "$(cat "$dir/libvirtd.pid")"; then
			echo "privd.sh: libvirtd exited at start:" >&2
			tail -20 "$dir/libvirtd.out" "$dir/libvirtd.log" >&2 2>/dev/null || true
			exit 1
		fi
		if [ -S "$dir/sock/libvirt-sock" ] &&
		   virsh -q -c "$(uri)" version >/dev/null 2>&1; then
			exit 0
		fi
		sleep 0.1
		i=$((i + 1))
	done
	echo "privd.sh: libvirtd did not answer on $dir/sock/libvirt-sock in 30 s" >&2
	exit 1 ;;
stop)
	stop_libvirtd ;;
cleanup)
	stop_libvirtd
	# QEMUs of this libvirtd still running (the caller destroys its
	# domains first; this is the safety net): only PIDs from its own pid
	# files, and only if that PID is still a qemu
	for f in "$dir"/run-up/libvirt/qemu/*.pid; do
		[ -f "$f" ] || continue
		case "$(basename "$f")" in driver.pid) continue ;; esac
		pid=$(cat "$f" 2>/dev/null) || continue
		case "$pid" in ''|*[!0-9]*) continue ;; esac
		if alive "$pid" && grep -q '^qemu' "/proc/$pid/comm" 2>/dev/null; then
			echo "privd.sh: killing leftover QEMU $pid ($(basename "$f" .pid))" >&2
			kill -KILL "$pid" 2>/dev/null || true
			wait_gone "$pid" || true
		fi
	done
	if [ -f "$dir/holder.pid" ]; then
		holder=$(cat "$dir/holder.pid")
		kill -TERM "$holder" 2>/dev/null || true
		wait_gone "$holder" || echo "privd.sh: namespace holder $holder did not exit" >&2
		rm -f "$dir/holder.pid" "$dir/ns-ready"
	fi ;;
*) echo "usage: privd.sh start|stop|cleanup|uri DIR" >&2; exit 2 ;;
esac
