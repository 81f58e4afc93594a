#!/bin/sh
# run.sh - the libvirt backend against a real libvirtd and real QEMU/KVM
# domains on this machine; prints "libvirt: N passed, N failed".
#
#   sh tests/libvirt/run.sh [BUILD_DIR]     (default $VCPUD_BUILD or ./build)
#   sh tests/libvirt/run.sh build-asan      (a sanitizer build, as made by
#                                           make SANITIZE=...: the test's own
#                                           C helpers get the same
#                                           -fsanitize, read from
#                                           BUILD_DIR/.flags unless SANITIZE
#                                           is set)
#
# Needs root, /dev/kvm, libvirtd + virsh (Debian: libvirt-daemon,
# libvirt-daemon-driver-qemu, libvirt-clients), qemu-system-x86, unshare
# and nsenter, cc and the libvirt/jansson headers, and BUILD_DIR/libvcpud.a,
# vcpud and vcpuctl (make). It installs nothing: when something is missing
# it says what and SKIPs (exit 0).
#
# It starts a private libvirtd (tests/libvirt/privd.sh: own mount namespace,
# no host cgroups, nothing written to the host's /etc/libvirt, /run, /var),
# builds tests/libvirt/probe.c against libvcpud.a and runs it: three no-disk
# KVM domains (two with tenant metadata), listing, QMP thread ids, hot-plug,
# vcpu.N.delay against schedstat, virsh destroy, a libvirtd restart.
#
# Then the daemon: BUILD_DIR/vcpud against the same libvirtd (--dry-run,
# --cgroup-root and everything else in the temp dir, the default policy
# without a housekeeping pool), checked through `vcpuctl --json vm list`
# (tests/libvirt/vmjson.c reads it) against virsh's QMP query-cpus-fast and
# libvirt's pid files: two domains with tenant metadata and one without are
# listed within a tick with their tenant (null for the third), PID and vCPU
# thread ids; a `virsh destroy` stops its VM and logs the dry-run removal of
# its cgroups within two ticks; across a libvirtd restart the other VM keeps
# its PID and state, and after the reconnection a new domain is placed;
# vcpud exits 0 on SIGTERM. Finally it checks that the host was left alone,
# destroys what it started, kills its vcpud and libvirtd by PID and removes
# its temp dir. About 45 s (8 s of it the private libvirtd's first start:
# it probes QEMU's capabilities into a fresh cache at each run).
set -u
here=$(cd "$(dirname "$0")" && pwd)
src=$(dirname "$(dirname "$here")")
build=${1:-${VCPUD_BUILD:-$src/build}}
t_start=$(date +%s)

skip() {
	echo "libvirt: SKIP: $*"
	echo "libvirt: 0 passed, 0 failed"
	exit 0
}

[ "$(id -u)" -eq 0 ] || skip "needs root (a private libvirtd in its own mount namespace)"
for c in libvirtd virsh qemu-system-x86_64 unshare nsenter cc pkg-config; do
	command -v "$c" >/dev/null 2>&1 || skip "$c is not installed"
done
[ -r /dev/kvm ] && [ -w /dev/kvm ] || skip "/dev/kvm is not usable"
pkg-config --exists libvirt libvirt-qemu jansson || skip "libvirt-dev / libjansson-dev missing"
for f in libvcpud.a vcpud vcpuctl; do
	if [ ! -f "$build/$f" ]; then
		echo "libvirt: $build/$f is missing: run make first"
		echo "libvirt: 0 passed, 1 failed"
		exit 1
	fi
done
# a sanitizer build (make SANITIZE=...) needs the same flags for the probe
if [ -z "${SANITIZE:-}" ] && [ -f "$build/.flags" ]; then
	SANITIZE=$(sed -n 's/.*-fsanitize=\([^ ]*\).*/\1/p' "$build/.flags")
fi

passed=0
failed=0
ok() { echo "ok - $*"; passed=$((passed + 1)); }
nok() { echo "FAIL - $*"; failed=$((failed + 1)); }

tmp=$(mktemp -d /tmp/vcpud-libvirt.XXXXXX)
lv=$tmp/lv
vcpud_pid=""
vcpud2_pid=""
DOMS_D="vcpud-daemon-a vcpud-daemon-b vcpud-daemon-c vcpud-daemon-d vcpud-hook-big vcpud-hook-fit vcpud-hook-plain"
cleanup() {
	for p in $vcpud_pid $vcpud2_pid; do
		kill -TERM "$p" 2>/dev/null
		wait "$p" 2>/dev/null
	done
	vcpud_pid="" vcpud2_pid=""
	# a libvirtd left stopped would hang its own cleanup
	[ -f "$lv/libvirtd.pid" ] && kill -CONT "$(cat "$lv/libvirtd.pid")" 2>/dev/null
	if [ -f "$lv/libvirtd.pid" ]; then
		u=$(sh "$here/privd.sh" uri "$lv")
		for d in vcpud-probe-a vcpud-probe-b vcpud-probe-c $DOMS_D; do
			virsh -q -c "$u" destroy "$d" >/dev/null 2>&1
			virsh -q -c "$u" undefine "$d" >/dev/null 2>&1
		done
	fi
	sh "$here/privd.sh" cleanup "$lv"
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# what the host has before, to check it is the same after
host_state() {
	for p in /etc/libvirt/qemu.conf /etc/libvirt/libvirtd.conf /run/libvirt \
		 /var/lib/libvirt /var/log/libvirt /var/cache/libvirt /run/libvirtd.pid; do
		[ -e "$p" ] && echo "exists $p"
	done
	ls -1 /etc/libvirt 2>/dev/null | sed 's/^/etc-libvirt /'
	# read-only look at the host's cgroup trees: no machine.slice, no qemu
	find /sys/fs/cgroup -maxdepth 4 \( -name 'machine*' -o -name '*qemu*' \) 2>/dev/null
}
host_before=$(host_state)

CFLAGS_PROBE="-std=gnu11 -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
-Wformat=2 -Wvla -Werror -O2 -g -D_GNU_SOURCE"
# a BUILD_DIR made with SANITIZE=... needs the same for the probe
[ -n "${SANITIZE:-}" ] && CFLAGS_PROBE="$CFLAGS_PROBE -fsanitize=$SANITIZE -fno-omit-frame-pointer"
# shellcheck disable=SC2086
if cc $CFLAGS_PROBE -I"$src/include" $(pkg-config --cflags libvirt libvirt-qemu jansson) \
	-o "$tmp/probe" "$here/probe.c" "$build/libvcpud.a" \
	$(pkg-config --libs libvirt libvirt-qemu jansson) -lm -lpthread 2> "$tmp/cc.log"; then
	ok "probe built against $build/libvcpud.a"
else
	cat "$tmp/cc.log"
	nok "probe built"
	echo "libvirt: $passed passed, $failed failed"
	exit 1
fi
# shellcheck disable=SC2086
if ! cc $CFLAGS_PROBE $(pkg-config --cflags jansson) -o "$tmp/vmjson" "$here/vmjson.c" \
	$(pkg-config --libs jansson) 2> "$tmp/cc.log"; then
	cat "$tmp/cc.log"
	nok "vmjson built"
	echo "libvirt: $passed passed, $failed failed"
	exit 1
fi

ms() { echo $(($(date +%s%N) / 1000000)); }

# --- the daemon against the same libvirtd ----------------------------------
# Everything of the daemon's lives in $dd; its cgroup root is a plain temp
# directory and it runs with --dry-run, so it writes nothing there: to see
# a dry-run removal (which lists what exists), the test makes the empty
# directories a real run would have made for the VM it then destroys.
dd=$tmp/d
vcpud_seen=""
ctl() { "$build/vcpuctl" --socket "$dd/vcpud.sock" --timeout 10 "$@"; }

# vmline NAME...: "NAME TENANT MANAGED STATE PID SOURCE TIDS" per NAME as
# `vcpuctl --json vm list` has it ("NAME absent" if not listed)
vmline() { ctl --json vm list 2>/dev/null | "$tmp/vmjson" vms "$@" 2>/dev/null; }

# qmp_tids NAME: "0:tid,1:tid" from QEMU itself
qmp_tids() {
	virsh -q -c "$uri" qemu-monitor-command "$1" '{"execute":"query-cpus-fast"}' 2>/dev/null |
		"$tmp/vmjson" qmp 2>/dev/null
}

# listed_as NAME TENANT TIDS: vm list shows NAME running, from libvirt, with
# TENANT (null: unmanaged), the PID of libvirt's pid file (the Tgid of its
# vCPU threads, a QEMU with -name guest=NAME) and exactly the thread ids
# QMP gave (TIDS); $why says what differs
listed_as() {
	la_name=$1 la_tenant=$2 la_tids=$3
	la_line=$(vmline "$la_name")
	why="vm list says '${la_line:-nothing}', QMP '$la_tids'"
	la_pid=$(cat "$lv/run-up/libvirt/qemu/$la_name.pid" 2>/dev/null)
	la_managed=true
	[ "$la_tenant" = null ] && la_managed=false
	# shellcheck disable=SC2086
	set -- $la_line
	[ $# -eq 7 ] && [ "$2" = "$la_tenant" ] && [ "$3" = "$la_managed" ] &&
		[ "$4" = running ] && [ "$6" = libvirt ] && [ -n "$la_tids" ] &&
		[ "$7" = "$la_tids" ] || return 1
	[ "$5" = "$la_pid" ] || { why="$why; libvirt's pid file says $la_pid"; return 1; }
	for t in $(echo "$7" | tr ',' ' '); do
		tg=$(sed -n 's/^Tgid:[[:space:]]*//p' "/proc/${t#*:}/status" 2>/dev/null)
		[ "$tg" = "$5" ] || { why="$why; thread ${t#*:} belongs to '$tg'"; return 1; }
	done
	tr '\0' '\n' < "/proc/$5/cmdline" 2>/dev/null | grep -q "^guest=$la_name," ||
		{ why="$why; pid $5 is not QEMU -name guest=$la_name"; return 1; }
}

# within MS CMD...: run CMD every 20 ms until it succeeds (0) or MS ms have
# passed since $t_ref (1); $took = ms since $t_ref
within() {
	w_lim=$1
	shift
	while :; do
		if "$@"; then
			took=$(($(ms) - t_ref))
			return 0
		fi
		took=$(($(ms) - t_ref))
		[ "$took" -ge "$w_lim" ] && return 1
		sleep 0.02
	done
}

logged() { grep -q "$1" "$dd/vcpud.log"; }
alive_pid() { [ -r "/proc/$1/stat" ] && [ "$(sed 's/.*) \(.\).*/\1/' "/proc/$1/stat")" != Z ]; }

define_dom() { # NAME [TENANT]
	meta=""
	[ -n "${2:-}" ] &&
		meta="<metadata><vcpud:tenant xmlns:vcpud=\"urn:vcpud:1\">$2</vcpud:tenant></metadata>"
	cat > "$dd/$1.xml" <<XML
<domain type='kvm'><name>$1</name><memory unit='MiB'>128</memory>
<vcpu placement='static'>2</vcpu>
<os><type arch='x86_64' machine='pc'>hvm</type></os>$meta
<on_poweroff>destroy</on_poweroff><on_crash>destroy</on_crash>
<devices><emulator>/usr/bin/qemu-system-x86_64</emulator><memballoon model='none'/></devices>
</domain>
XML
	virsh -q -c "$uri" define "$dd/$1.xml" > "$dd/virsh.out" 2>&1
}

# start_and_check NAME TENANT|null LIMIT_MS: define and start the domain,
# then it must be listed as it is within LIMIT_MS of virsh start returning
start_and_check() {
	s_meta=$2
	[ "$2" = null ] && s_meta=""
	t0=$(ms)
	if ! define_dom "$1" "$s_meta" || ! virsh -q -c "$uri" start "$1" >> "$dd/virsh.out" 2>&1; then
		nok "$1 defined and started: $(cat "$dd/virsh.out")"
		return 1
	fi
	t_ref=$(ms)
	s_start=$((t_ref - t0))
	s_tids=$(qmp_tids "$1")
	if within "$3" listed_as "$1" "$2" "$s_tids"; then
		s_line=$(vmline "$1")
		ok "vcpud: $1 (virsh start $s_start ms) listed ${took} ms after: $s_line (QMP $s_tids)"
	else
		nok "vcpud: $1 not listed right within $3 ms of virsh start: $why"
		return 1
	fi
}

# The libvirt hook (deploy/libvirt-hook-qemu) in the private libvirtd's
# config (hooks/qemu.d/vcpud; libvirtd reads its hooks when it starts, so it
# is restarted): a domain over its tenant's quota does not start and
# virsh's error has vcpud's reason; a fitting one starts, is admitted by the
# hook and placed; virsh destroy releases its admission; a domain without
# metadata starts as before.
hook_part() {
	echo "# the libvirt hook"
	hd=$lv/etc/libvirt/hooks/qemu.d
	mkdir -p "$hd" "$dd/hookconf/vcpud"
	sed -e "s|@BINDIR@|$build|g" -e "s|@SYSCONFDIR@|$dd/hookconf|g" \
		"$src/deploy/libvirt-hook-qemu" > "$hd/vcpud"
	chmod 755 "$hd/vcpud"
	printf 'VCPUD_SOCKET=%s\nVCPUD_HOOK_ON_DOWN=closed\n' "$dd/vcpud.sock" \
		> "$dd/hookconf/vcpud/libvirt-hook.conf"
	n_rc=$(grep -c 'libvirt: reconnected to' "$dd/vcpud.log")
	sh "$here/privd.sh" stop "$lv"
	if ! sh "$here/privd.sh" start "$lv"; then
		nok "libvirtd restarted with the hook"
		return
	fi
	t_ref=$(ms)
	reconnected() { [ "$(grep -c 'libvirt: reconnected to' "$dd/vcpud.log")" -gt "$n_rc" ]; }
	within 35000 reconnected || nok "vcpud: not reconnected 35 s after libvirtd's restart"
	ctl tenant create small --vcpus 1 >/dev/null || nok "vcpuctl tenant create small"
	used() { ctl --json tenant show "$1" | sed -n 's/.*"vcpus_used": \([0-9]*\).*/\1/p'; }

	# over quota: 2 vCPUs for a tenant of 1
	define_dom vcpud-hook-big small || nok "define vcpud-hook-big: $(cat "$dd/virsh.out")"
	if virsh -q -c "$uri" start vcpud-hook-big > "$dd/virsh.out" 2>&1; then
		nok "hook: vcpud-hook-big (over small's quota) started"
	elif grep -q 'vcpud refused domain vcpud-hook-big: vm vcpud-hook-big not admitted: tenant small: 0 of 1 vCPUs used, 2 requested' "$dd/virsh.out"; then
		ok "hook: a domain over its tenant's quota does not start; virsh says: $(tr '\n' ' ' < "$dd/virsh.out" | sed 's/.*unexpected exit status 1: //')"
	else
		nok "hook: vcpud-hook-big refused, but virsh says: $(cat "$dd/virsh.out")"
	fi
	st=$(virsh -q -c "$uri" domstate vcpud-hook-big 2>&1)
	[ "$st" = "shut off" ] && [ "$(used small)" = 0 ] &&
		ok "hook: vcpud-hook-big is shut off and nothing was booked for small" ||
		nok "hook: vcpud-hook-big is '$st', small uses $(used small)"

	# a fitting domain: admitted by the hook, started, placed
	u0=$(used acme)
	start_and_check vcpud-hook-fit acme 1000
	[ "$(used acme)" = $((u0 + 2)) ] &&
		ok "hook: vcpud-hook-fit's 2 vCPUs count against acme" ||
		nok "hook: acme uses $(used acme), was $u0"
	ctl events | grep -q 'vm.admit  *vm/vcpud-hook-fit' &&
		ok "hook: the audit log has the hook's admission of vcpud-hook-fit" ||
		nok "hook: no vm.admit of vcpud-hook-fit in the audit log"
	ctl --json vm show vcpud-hook-fit | grep -q '"cpu_policy": "shared"' &&
		ok "hook: vcpud-hook-fit has its placement" ||
		nok "hook: vcpud-hook-fit has no placement: $(ctl --json vm show vcpud-hook-fit | tr -d '\n' | head -c 300)"

	# a domain without metadata starts as it did
	define_dom vcpud-hook-plain && virsh -q -c "$uri" start vcpud-hook-plain > "$dd/virsh.out" 2>&1 &&
		ok "hook: a domain without vcpud's metadata starts" ||
		nok "hook: vcpud-hook-plain: $(cat "$dd/virsh.out")"

	# virsh destroy: release end releases the admission
	virsh -q -c "$uri" destroy vcpud-hook-fit > "$dd/virsh.out" 2>&1 ||
		nok "virsh destroy vcpud-hook-fit: $(cat "$dd/virsh.out")"
	t_ref=$(ms)
	released() { [ "$(used acme)" = "$u0" ]; }
	within 3000 released &&
		ok "hook: virsh destroy released vcpud-hook-fit's admission (acme back to $u0 vCPUs, ${took} ms)" ||
		nok "hook: 3 s after virsh destroy acme uses $(used acme), want $u0"
	ctl events | grep -Eq 'vm\.(release|unadmit)  *vm/vcpud-hook-fit' &&
		ok "hook: the audit log has the release of vcpud-hook-fit" ||
		nok "hook: no vm.release of vcpud-hook-fit in the audit log"
	for dom in vcpud-hook-big vcpud-hook-fit vcpud-hook-plain; do
		virsh -q -c "$uri" destroy "$dom" >/dev/null 2>&1
		virsh -q -c "$uri" undefine "$dom" >/dev/null 2>&1
	done
}

daemon_part() {
	echo "# the daemon: $build/vcpud --dry-run against the same libvirtd"
	if ! alive_pid "$(cat "$lv/libvirtd.pid" 2>/dev/null)" &&
	   ! sh "$here/privd.sh" start "$lv"; then
		nok "libvirtd running for the daemon part"
		return
	fi
	mkdir -p "$dd/cg"
	sed 's/^\(  housekeeping_cpus:\).*/\1 ""/' "$src/policies/default.yaml" > "$dd/policy.yaml"
	grep -q '^  housekeeping_cpus: ""$' "$dd/policy.yaml" ||
		{ nok "policy without a housekeeping pool"; return; }
	t0=$(ms)
	"$build/vcpud" --foreground --db "$dd/vcpud.db" --socket "$dd/vcpud.sock" \
		--policy "$dd/policy.yaml" --cgroup-root "$dd/cg" --dry-run \
		--libvirt-uri "$uri" > "$dd/vcpud.log" 2>&1 &
	vcpud_pid=$!
	vcpud_seen=$vcpud_pid
	t_ref=$t0
	if within 5000 ctl status >/dev/null 2>&1; then
		ok "vcpud (pid $vcpud_pid) answers ${took} ms after its start"
	else
		nok "vcpud did not answer in 5 s"
		sed 's/^/#   /' "$dd/vcpud.log" | tail -20
		return
	fi
	t_ref=$t0
	within 2000 logged 'libvirt: connected to' &&
		ok "vcpud connected to the private libvirtd (${took} ms after its start)" ||
		nok "vcpud: no 'libvirt: connected to' in its log within 2 s"
	if ctl tenant create acme --vcpus 8 >/dev/null && ctl tenant create globex --vcpus 8 >/dev/null
	then
		ok "vcpuctl tenant create acme, globex"
	else
		nok "vcpuctl tenant create acme, globex"
	fi

	# two managed domains and one unmanaged, each within a tick (the
	# first within two)
	start_and_check vcpud-daemon-a acme 2000
	start_and_check vcpud-daemon-b globex 1000
	start_and_check vcpud-daemon-c null 1000
	line_a=$(vmline vcpud-daemon-a)
	line_c=$(vmline vcpud-daemon-c)

	# virsh destroy: the VM stops and its groups go (dry-run: what a real
	# run would have created for it is made as empty directories here)
	b_cg=$dd/cg/tenant-globex/vm-vcpud-daemon-b
	sed -n "s|.*dry-run: would create \(${b_cg}\(/[a-z0-9]*\)\{0,1\}\)\$|\1|p" \
		"$dd/vcpud.log" | sort -u > "$dd/b-dirs"
	while read -r p; do mkdir -p "$p"; done < "$dd/b-dirs"
	[ -d "$b_cg/vcpu0" ] && [ -d "$b_cg/vcpu1" ] && [ -d "$b_cg/emulator" ] &&
		ok "vcpud (dry-run) would have created $(wc -l < "$dd/b-dirs") groups for vcpud-daemon-b" ||
		nok "vcpud's log lacks 'would create' of vcpud-daemon-b's groups: $(tr '\n' ' ' < "$dd/b-dirs")"
	t0=$(ms)
	virsh -q -c "$uri" destroy vcpud-daemon-b > "$dd/virsh.out" 2>&1 ||
		nok "virsh destroy vcpud-daemon-b: $(cat "$dd/virsh.out")"
	t_ref=$(ms)
	echo "# virsh destroy vcpud-daemon-b took $((t_ref - t0)) ms"
	stopped_b() {
		# shellcheck disable=SC2046
		set -- $(vmline vcpud-daemon-b)
		why="vm list says '$*'"
		[ "$2" = absent ] || { [ "$4" = stopped ] && [ "$5" = 0 ]; } || [ "$4" = gone ]
	}
	if within 2000 stopped_b; then
		ok "vcpud: vcpud-daemon-b not running ${took} ms after virsh destroy returned: $(vmline vcpud-daemon-b)"
	else
		nok "vcpud: vcpud-daemon-b still running 2 s after virsh destroy: $why"
	fi
	if within 2000 logged "would remove $b_cg\$"; then
		ok "vcpud: its log shows the dry-run removal of vm-vcpud-daemon-b ${took} ms after virsh destroy returned"
	else
		nok "vcpud: no 'would remove $b_cg' in its log 2 s after virsh destroy"
		grep 'vcpud-daemon-b' "$dd/vcpud.log" | grep -v 'would write' | tail -10 | sed 's/^/#   /'
	fi
	[ "$(vmline vcpud-daemon-a)" = "$line_a" ] && [ "$(vmline vcpud-daemon-c)" = "$line_c" ] &&
		ok "vcpud: vcpud-daemon-a and -c unchanged" ||
		nok "vcpud: after the destroy: $(vmline vcpud-daemon-a vcpud-daemon-c | tr '\n' ';') (was $line_a; $line_c)"

	# a libvirtd restart: vcpud keeps what it has (a stale list changes
	# nothing), reconnects, and places a domain started after that
	same_a() { [ "$(vmline vcpud-daemon-a)" = "$line_a" ]; }
	same_ac() { [ "$(vmline vcpud-daemon-a vcpud-daemon-c | tr '\n' ';')" = "$line_a;$line_c;" ]; }
	# sample_ac DURATION_MS: sample vm list every 100 ms for that long; $bad
	# counts samples where -a or -c differ, $samples all of them
	sample_ac() {
		wt=$(($(ms) + $1))
		while [ "$(ms)" -lt "$wt" ]; do
			samples=$((samples + 1))
			same_ac || { bad=$((bad + 1)); last_bad=$(vmline vcpud-daemon-a vcpud-daemon-c | tr '\n' ';'); }
			sleep 0.1
		done
	}
	samples=0 bad=0 last_bad=""
	t0=$(ms)
	sh "$here/privd.sh" stop "$lv"
	t_ref=$(ms)
	echo "# libvirtd stopped in $((t_ref - t0)) ms"
	within 3000 logged 'libvirt: lost the connection' &&
		ok "vcpud noticed libvirtd go ${took} ms after it was stopped" ||
		nok "vcpud: no 'lost the connection' in its log 3 s after libvirtd stopped"
	sample_ac 2000 # two ticks with libvirtd away
	[ "$bad" -eq 0 ] &&
		ok "vcpud: while libvirtd is away vcpud-daemon-a and -c stay as they were ($samples samples)" ||
		nok "vcpud: while libvirtd is away $bad of $samples samples differ: $last_bad"
	alive_pid "$vcpud_pid" && ok "vcpud alive with libvirtd away" || nok "vcpud died with libvirtd away"
	samples=0 bad=0 last_bad=""
	t0=$(ms)
	if sh "$here/privd.sh" start "$lv"; then
		echo "# libvirtd started again in $(($(ms) - t0)) ms (pid $(cat "$lv/libvirtd.pid"))"
	else
		nok "libvirtd restarted"
		return
	fi
	t_ref=$t0
	rc_log=1
	while [ $(($(ms) - t_ref)) -lt 35000 ]; do
		logged 'libvirt: reconnected to' && { rc_log=0; break; }
		sample_ac 100
	done
	took=$(($(ms) - t_ref))
	[ "$rc_log" -eq 0 ] &&
		ok "vcpud reconnected ${took} ms after libvirtd was started again" ||
		nok "vcpud: no 'reconnected to' in its log 35 s after libvirtd was started again"
	sample_ac 1100 # a tick after the reconnection
	[ "$bad" -eq 0 ] &&
		ok "vcpud: until and after the reconnection vcpud-daemon-a and -c stay as they were ($samples samples)" ||
		nok "vcpud: around the reconnection $bad of $samples samples differ: $last_bad"
	a_tids=$(qmp_tids vcpud-daemon-a)
	listed_as vcpud-daemon-a acme "$a_tids" &&
		ok "vcpud: after the restart vcpud-daemon-a's PID and vCPU threads still equal libvirt's and QMP's" ||
		nok "vcpud: after the restart: $why"
	n=$(grep -c 'domain vcpud-daemon-a stopped' "$dd/vcpud.log")
	[ "$n" -eq 0 ] && ok "vcpud never took vcpud-daemon-a for stopped" ||
		nok "vcpud took vcpud-daemon-a for stopped $n times"
	start_and_check vcpud-daemon-d acme 1000
	d_cg=$dd/cg/tenant-acme/vm-vcpud-daemon-d
	t_ref=$(ms)
	if within 1000 logged "would write '[0-9]*' to $d_cg/vcpu1/cgroup.threads"; then
		ok "vcpud placed vcpud-daemon-d's vCPU threads (dry-run: would write them to $d_cg/vcpuN)"
	else
		nok "vcpud: no dry-run write of vcpud-daemon-d's vCPU threads to $d_cg/vcpuN"
	fi

	# libvirtd hung (SIGSTOP) for 10 s: nothing of libvirt's is on the
	# tick's path, so ticks keep their interval, the API answers at once
	# and says libvirt is unreachable, and the VMs it last saw stay placed;
	# after SIGCONT it converges without a restart of vcpud
	lvd_pid=$(cat "$lv/libvirtd.pid" 2>/dev/null)
	line_d=$(vmline vcpud-daemon-d)
	# a second vcpud (its own files, dry-run) to stop while libvirtd is
	# stopped: SIGTERM must not wait for libvirtd
	d2=$tmp/d2
	mkdir -p "$d2/cg"
	"$build/vcpud" --foreground --db "$d2/vcpud.db" --socket "$d2/vcpud.sock" \
		--policy "$dd/policy.yaml" --cgroup-root "$d2/cg" --dry-run \
		--libvirt-uri "$uri" > "$d2/vcpud.log" 2>&1 &
	vcpud2_pid=$!
	vcpud_seen="$vcpud_seen $vcpud2_pid"
	t_ref=$(ms)
	within 5000 grep -q 'libvirt: connected to' "$d2/vcpud.log" ||
		nok "a second vcpud did not connect within 5 s"
	kill -STOP "$lvd_pid"
	t_stop=$(ms)
	echo "# libvirtd (pid $lvd_pid) stopped with SIGSTOP"
	: > "$dd/ticks"
	max_ms=0 n_calls=0 unreach_ms="" bad=0 samples=0 last_bad=""
	while [ $(($(ms) - t_stop)) -lt 10000 ]; do
		c0=$(ms)
		st=$(ctl --json status 2>/dev/null)
		c1=$(ms)
		n_calls=$((n_calls + 1))
		[ $((c1 - c0)) -gt "$max_ms" ] && max_ms=$((c1 - c0))
		echo "$st" | sed -n 's/.*"last_tick_ms": \([0-9]*\).*/\1/p' >> "$dd/ticks"
		if [ -z "$unreach_ms" ] && echo "$st" | grep -q '"state": "unreachable"'; then
			unreach_ms=$((c1 - t_stop))
		fi
		samples=$((samples + 1))
		[ "$(vmline vcpud-daemon-a vcpud-daemon-d | tr '\n' ';')" = "$line_a;$line_d;" ] ||
			{ bad=$((bad + 1)); last_bad=$(vmline vcpud-daemon-a vcpud-daemon-d | tr '\n' ';'); }
		sleep 0.05
	done
	# SIGTERM to the second vcpud, its worker inside a libvirt call
	t0=$(ms)
	kill -TERM "$vcpud2_pid"
	while alive_pid "$vcpud2_pid" && [ $(($(ms) - t0)) -lt 5000 ]; do sleep 0.02; done
	t2=$(($(ms) - t0))
	if alive_pid "$vcpud2_pid"; then
		nok "libvirtd stopped: a vcpud still running 5 s after SIGTERM"
		kill -KILL "$vcpud2_pid"
		wait "$vcpud2_pid"
	else
		wait "$vcpud2_pid"
		rc2=$?
		[ "$rc2" -eq 0 ] &&
			ok "libvirtd stopped: a second vcpud exited 0 on SIGTERM in $t2 ms ($(grep -c 'leaving it behind' "$d2/vcpud.log") worker left in a libvirt call)" ||
			nok "libvirtd stopped: a second vcpud exited $rc2 on SIGTERM"
	fi
	vcpud2_pid=""
	kill -CONT "$lvd_pid"
	t_cont=$(ms)
	[ "$max_ms" -lt 100 ] &&
		ok "libvirtd stopped: vcpuctl status answered $n_calls times, in at most $max_ms ms" ||
		nok "libvirtd stopped: vcpuctl status took up to $max_ms ms ($n_calls calls)"
	[ -n "$unreach_ms" ] &&
		ok "libvirtd stopped: status said libvirt is unreachable $unreach_ms ms after SIGSTOP" ||
		nok "libvirtd stopped: status never said libvirt is unreachable in 10 s"
	# tick intervals from the distinct last_tick_ms values of the ticks
	# that ran while libvirtd was stopped: the first status may still show
	# the tick before SIGSTOP, which a domain event (vcpud-daemon-d's start)
	# may have run off the timer's phase
	ivs=$(sort -n -u "$dd/ticks" | awk -v t0="$t_stop" '$1 >= t0' |
		awk 'NR > 1 { print $1 - p } { p = $1 }')
	n_iv=$(echo "$ivs" | grep -c .)
	iv_min=$(echo "$ivs" | sort -n | head -1)
	iv_max=$(echo "$ivs" | sort -n | tail -1)
	echo "# tick intervals while libvirtd was stopped (ms): $(echo "$ivs" | tr '\n' ' ')"
	[ "$n_iv" -ge 8 ] && [ "${iv_min:-0}" -ge 800 ] && [ "${iv_max:-99999}" -le 1200 ] &&
		ok "libvirtd stopped: $n_iv tick intervals, all within 20% of 1000 ms ($iv_min..$iv_max ms)" ||
		nok "libvirtd stopped: $n_iv tick intervals, $iv_min..$iv_max ms (want >= 8 within 800..1200)"
	[ "$bad" -eq 0 ] &&
		ok "libvirtd stopped: vcpud-daemon-a and -d stay placed as they were ($samples samples)" ||
		nok "libvirtd stopped: $bad of $samples samples differ: $last_bad"
	t_ref=$t_cont
	connected() { ctl --json status 2>/dev/null | grep -q '"state": "connected"'; }
	within 10000 connected &&
		ok "after SIGCONT: libvirt connected again ${took} ms later, vcpud not restarted" ||
		nok "after SIGCONT: libvirt not connected again within 10 s"
	t0=$(ms)
	virsh -q -c "$uri" destroy vcpud-daemon-d > "$dd/virsh.out" 2>&1 ||
		nok "virsh destroy vcpud-daemon-d: $(cat "$dd/virsh.out")"
	t_ref=$(ms)
	stopped_d() {
		# shellcheck disable=SC2046
		set -- $(vmline vcpud-daemon-d)
		[ "$4" = stopped ] || [ "$4" = gone ]
	}
	within 3000 stopped_d &&
		ok "after SIGCONT: a domain destroyed is seen ${took} ms later: state converges" ||
		nok "after SIGCONT: vcpud-daemon-d still $(vmline vcpud-daemon-d) 3 s after virsh destroy"
	# shut off but still defined: stopped (it keeps its admission); once
	# undefined: gone
	# shellcheck disable=SC2046
	set -- $(vmline vcpud-daemon-d)
	[ "${4:-}" = stopped ] &&
		ok "vcpud-daemon-d, destroyed but still defined, is stopped: $*" ||
		nok "vcpud-daemon-d, destroyed but still defined, is '$*' (want stopped)"
	virsh -q -c "$uri" undefine vcpud-daemon-d > "$dd/virsh.out" 2>&1 ||
		nok "virsh undefine vcpud-daemon-d: $(cat "$dd/virsh.out")"
	t_ref=$(ms)
	gone_d() {
		# shellcheck disable=SC2046
		set -- $(vmline vcpud-daemon-d)
		why="vm list says '$*'"
		[ "$4" = gone ] || [ "$2" = absent ]
	}
	within 3000 gone_d &&
		ok "vcpud-daemon-d undefined: gone ${took} ms later ($(vmline vcpud-daemon-d))" ||
		nok "vcpud-daemon-d undefined 3 s ago: $why (want gone)"

	hook_part

	# the end: alive, nothing written under the cgroup root, exit 0
	alive_pid "$vcpud_pid" && ok "vcpud alive at the end" || nok "vcpud died"
	files=$(find "$dd/cg" ! -type d | head -5)
	[ -z "$files" ] && ok "dry-run: nothing written under $dd/cg" ||
		nok "dry-run: files under $dd/cg: $files"
	t0=$(ms)
	kill -TERM "$vcpud_pid"
	wait "$vcpud_pid"
	rc=$?
	vcpud_pid=""
	[ "$rc" -eq 0 ] && ok "vcpud exited 0 on SIGTERM ($(($(ms) - t0)) ms)" ||
		nok "vcpud exited with status $rc on SIGTERM"
	echo "# vcpud's log, without its dry-run writes:"
	grep -v 'dry-run: would write' "$dd/vcpud.log" | sed 's/^/#   /'
	for dom in $DOMS_D; do
		virsh -q -c "$uri" destroy "$dom" >/dev/null 2>&1
		virsh -q -c "$uri" undefine "$dom" >/dev/null 2>&1
	done
}

t0=$(ms)
if sh "$here/privd.sh" start "$lv"; then
	ok "private libvirtd started in $(($(ms) - t0)) ms (pid $(cat "$lv/libvirtd.pid"))"
else
	nok "private libvirtd started"
	echo "libvirt: $passed passed, $failed failed"
	exit 1
fi
uri=$(sh "$here/privd.sh" uri "$lv")

timeout 180 "$tmp/probe" "$uri" "$here/privd.sh" "$lv" > "$tmp/probe.out" 2> "$tmp/probe.err"
rc=$?
cat "$tmp/probe.out"
p=$(grep -c '^ok - ' "$tmp/probe.out")
f=$(grep -c '^FAIL - ' "$tmp/probe.out")
passed=$((passed + p))
failed=$((failed + f))
if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
	nok "probe exited with status $rc"
	tail -20 "$tmp/probe.err"
fi
grep -q '^probe: ' "$tmp/probe.out" || nok "probe ran to its end"

echo "# the backend's log:"
sed 's/^/#   /' "$tmp/probe.err"
n=$(grep -c 'lost the connection' "$tmp/probe.err")
[ "$n" -eq 1 ] && ok "the lost connection was logged once" ||
	nok "the lost connection was logged $n times (want once)"
n=$(grep -c 'reconnected to' "$tmp/probe.err")
[ "$n" -eq 1 ] && ok "the reconnection was logged once" ||
	nok "the reconnection was logged $n times (want once)"

daemon_part

# everything of ours goes: vcpud, domains, QEMUs, libvirtd, the namespace holder
qemus=$(cat "$lv"/run-up/libvirt/qemu/vcpud-*.pid 2>/dev/null)
holder=$(cat "$lv/holder.pid" 2>/dev/null)
lvd=$(cat "$lv/libvirtd.pid" 2>/dev/null)
cleanup
trap - EXIT
left=""
for pid in $qemus $holder $lvd $vcpud_seen; do
	# a zombie (not yet reaped by init) is gone
	st=$(sed 's/.*) \(.\).*/\1/' "/proc/$pid/stat" 2>/dev/null) || continue
	[ "$st" != Z ] && left="$left $pid($(cat "/proc/$pid/comm" 2>/dev/null))"
done
[ -z "$left" ] && ok "cleanup: no QEMU, libvirtd or namespace holder of ours left" ||
	nok "cleanup: processes left:$left"
[ ! -e "$tmp" ] && ok "cleanup: temp dir removed" || nok "cleanup: $tmp still there"
host_after=$(host_state)
if [ "$host_before" = "$host_after" ]; then
	ok "the host's /etc/libvirt, /run, /var and cgroup trees are as they were"
else
	nok "the host changed:"
	printf '%s\n' "$host_before" > "/tmp/vcpud-libvirt.$$.before"
	printf '%s\n' "$host_after" | diff -u "/tmp/vcpud-libvirt.$$.before" - | sed 's/^/#   /'
	rm -f "/tmp/vcpud-libvirt.$$.before"
fi

echo "# $(($(date +%s) - t_start)) s in all"
echo "libvirt: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
