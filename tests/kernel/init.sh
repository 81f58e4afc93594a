#!/bin/sh
# init.sh - /init of the real-kernel test initramfs (busybox sh, PID 1).
#
# Mounts proc, sysfs, devtmpfs, tmpfs and cgroup2, runs the scenarios named on
# the kernel command line (vcpud.scenarios=a,b; each under vcpud.timeout=SECS)
# from /vcpud/tests/kernel/scenarios/, and reports on the serial console:
#   @@VCPUD-BOOT kernel=... cpus=... uptime=...
#   @@VCPUD-TEST <scenario> <case> PASS|FAIL <detail>   (from the scenarios)
#   @@VCPUD-SCENARIO <scenario> rc=N secs=S              (one per scenario)
#   @@VCPUD-ALIVE uptime=S                               (every 30 s)
#   @@VCPUD-DONE
# then powers off (panic=-1 on the command line reboots, i.e. quits QEMU, if
# this script ever exits). Between scenarios it kills every process left and
# removes every cgroup left, so each scenario starts from a bare cgroup2 root.
# vcpud.shell=1 gives an interactive shell before powering off.

export PATH=/vcpud/build:/vcpud/build/fixtures:/usr/sbin:/usr/bin:/sbin:/bin
export HOME=/root TMPDIR=/tmp
export VCPUD_BUILD=/vcpud/build VCPUD_SRC=/vcpud CG=/sys/fs/cgroup
export VCPUD_RESULTS=/tmp/vcpud-results

mark() { echo "@@VCPUD-TEST $1 $2 $3 $4"; }

finish() {
	echo "@@VCPUD-DONE"
	sync
	if [ -n "$shell" ]; then
		echo "vcpud.shell: exit the shell to power off"
		setsid cttyhack sh
	fi
	poweroff -f
	echo o > /proc/sysrq-trigger
	sleep 5
	exit 1	# the kernel panics; panic=-1 then reboots, and -no-reboot quits
}

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
mount -t tmpfs -o mode=1777 tmpfs /tmp
mkdir -p /dev/pts /dev/shm
mount -t tmpfs tmpfs /dev/shm
[ -e /dev/fd ] || ln -s /proc/self/fd /dev/fd
hostname vcpud-test
# keep kernel messages (an OOM kill, say) off the result lines; dmesg has them
echo 1 > /proc/sys/kernel/printk

scenarios=""
tmo=120
shell=""
for w in $(cat /proc/cmdline); do
	case "$w" in
	vcpud.scenarios=*) scenarios=$(echo "${w#*=}" | tr ',' ' ') ;;
	vcpud.timeout=*) tmo=${w#*=} ;;
	vcpud.shell=1) shell=1 ;;
	vcpud.churn=*) export CHURN=${w#*=} ;; # 40-churn's cycles (VCPUD_CHURN)
	esac
done

echo "@@VCPUD-BOOT kernel=$(uname -r) cpus=$(nproc) uptime=$(cut -d' ' -f1 /proc/uptime)"

if ! mount -t cgroup2 cgroup2 "$CG"; then
	mark init cgroup2 FAIL "cannot mount cgroup2 on $CG"
	finish
fi
for c in cpu cpuset memory; do
	if ! tr ' ' '\n' < "$CG/cgroup.controllers" | grep -qx "$c"; then
		mark init controllers FAIL "no $c in cgroup.controllers: $(cat "$CG/cgroup.controllers")"
		finish
	fi
done

# kill every user process but this one (kernel threads have no exe)
reap_all() {
	for d in /proc/[0-9]*; do
		p=${d#/proc/}
		[ "$p" = 1 ] && continue
		[ -e "$d/exe" ] && kill -KILL "$p" 2>/dev/null
	done
	wait 2>/dev/null
}

# a line every 30 s of guest time while the guest runs: run.sh takes a
# console silent for much longer than that for a frozen guest (its clock or
# every CPU stuck), which this script's own time limits cannot catch
hb_pid=""
heartbeat() {
	[ -n "$hb_pid" ] && kill -KILL "$hb_pid" 2>/dev/null
	(while sleep 30; do echo "@@VCPUD-ALIVE uptime=$(cut -d' ' -f1 /proc/uptime)"; done) \
		< /dev/null &
	hb_pid=$!
}

# remove every cgroup, deepest first, and the controllers the root enabled
reset_cgroups() {
	find "$CG" -mindepth 1 -depth -type d -exec rmdir {} \; 2>/dev/null
	for c in $(cat "$CG/cgroup.subtree_control"); do
		echo "-$c" > "$CG/cgroup.subtree_control" 2>/dev/null
	done
}

heartbeat
for s in $scenarios; do
	f=$VCPUD_SRC/tests/kernel/scenarios/$s.sh
	echo "=== $s"
	if [ ! -f "$f" ]; then
		mark "$s" missing FAIL "no $f in the initramfs"
		continue
	fi
	: > "$VCPUD_RESULTS"
	t0=$(cut -d' ' -f1 /proc/uptime)
	# the scenario in the background and a watchdog beside it: TERM at the
	# time limit (lib.sh's trap cleans up), KILL 2 s later (a shell waiting
	# for a foreground command runs its trap only when that command ends)
	rm -f /tmp/.vcpud-timeout
	# a scenario that runs for minutes by design says so in a
	# "# vcpud-timeout: SECS" line (only ever longer than the default)
	stmo=$(sed -n 's/^# vcpud-timeout: *\([0-9][0-9]*\)$/\1/p' "$f" | head -n 1)
	[ -n "$stmo" ] && [ "$stmo" -gt "$tmo" ] || stmo=$tmo
	(cd /tmp && T_SCENARIO="$s" exec sh "$f") < /dev/null &
	spid=$!
	(sleep "$stmo"; : > /tmp/.vcpud-timeout; kill -TERM "$spid"; sleep 2; kill -KILL "$spid") \
		> /dev/null 2>&1 &
	wpid=$!
	wait "$spid"
	rc=$?
	kill -KILL "$wpid" 2>/dev/null
	t1=$(cut -d' ' -f1 /proc/uptime)
	secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }')
	reap_all
	heartbeat
	reset_cgroups
	if [ -e /tmp/.vcpud-timeout ]; then
		mark "$s" timeout FAIL "killed after ${stmo}s"
	elif [ "$rc" -ne 0 ] && ! grep -q ' FAIL$' "$VCPUD_RESULTS"; then
		mark "$s" exit FAIL "exited $rc without reporting a failure"
	elif [ ! -s "$VCPUD_RESULTS" ]; then
		mark "$s" results FAIL "reported no result"
	fi
	echo "@@VCPUD-SCENARIO $s rc=$rc secs=$secs"
done

finish
