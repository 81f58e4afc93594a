#!/bin/sh
# scale.sh - what vcpud costs with N idle VMs (make bench-scale): for each N
# in SCALE_N, the real vcpud (--dry-run, a temp cgroup root, a fixture
# topology with this machine's /proc, no libvirt, no /proc discovery) and N
# fakevm processes of SCALE_VCPUS blocked vCPU threads, registered with
# `vcpuctl vm register` by SCALE_REG_CLIENTS concurrent streams (as a
# control plane does). Prints a block of figures per N and a
# table at the end; the last line says whether every tier ran whole.
#
#   SCALE_N="100 500 1000"  VM counts, one tier each
#   SCALE_VCPUS=8           vCPUs per VM
#   SCALE_REG_CLIENTS=8     concurrent registration streams (vcpuctl runs,
#                           each timed; then the last 10% again over curl)
#   SCALE_REG_MAX_S=600     stop registering after this long (the tier is
#                           then measured with the VMs registered so far and
#                           reported as capped)
#   SCALE_TICKS=20          ticks sampled for the tick duration
#   SCALE_WINDOW_S=60       quiet (steady) window for CPU per tick and log growth:
#                           every VM falls due for its verify within 46 reconciles
#   SCALE_STRACE_S=3        strace window for syscalls per tick
#   SCALE_API_REQS=50       requests per API endpoint
#   SCALE_PERF_S=           if set: perf record (SCALE_PERF_HZ, 999; call graphs by
#                           SCALE_PERF_CG, default dwarf,16384: vcpud has no frame
#                           pointers) on vcpud for this many
#                           seconds after the quiet window, into
#                           $SCALE_PERF_DIR/perf-N.data (default /tmp)
#   SCALE_HOLD_S=           if set: after each tier, keep vcpud and the VMs
#                           this many seconds for a look by hand (the pid
#                           and socket are printed)
set -u
SCALE_N=${SCALE_N:-100 500 1000}
SCALE_VCPUS=${SCALE_VCPUS:-8}
SCALE_REG_MAX_S=${SCALE_REG_MAX_S:-600}
SCALE_TICKS=${SCALE_TICKS:-20}
SCALE_WINDOW_S=${SCALE_WINDOW_S:-60}
SCALE_STRACE_S=${SCALE_STRACE_S:-3}
SCALE_API_REQS=${SCALE_API_REQS:-50}
SCALE_REG_CLIENTS=${SCALE_REG_CLIENTS:-8}
SUITE=bench-scale
TOPOLOGY=64c-nosmt
. "$(dirname "$0")/../e2e/lib.sh"

# The default policy's housekeeping_cpus "0-1": the shared pool is the rest.
HOUSEKEEPING=2
# policies/default.yaml: cpu_ratio is greater than 0 and at most 64.
RATIO_MAX=64
CLK_TCK=$(getconf CLK_TCK)
ROWS=$TMP/rows
PROBLEMS=$TMP/problems
: >"$ROWS"
: >"$PROBLEMS"
STRACE_PID=

cleanup() {
	[ -n "$STRACE_PID" ] && kill "$STRACE_PID" 2>/dev/null && wait "$STRACE_PID" 2>/dev/null
	stop_daemon
	cleanup_fakes
	rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

now_ns() { date +%s%N; }
api() { curl -s --max-time 60 --unix-socket "$SOCK" "http://x/v1/$1"; }
# the path of an endpoint of the latency table: /metrics, else /v1/NAME
ep_path() { case "$1" in metrics) echo /metrics ;; *) echo "/v1/$1" ;; esac; }
field() { sed -n "s/.*\"$1\": *\([0-9]*\).*/\1/p"; }
ticks() { api health | field ticks; }
# proc_cpu PID: utime + stime of the process (all its threads), clock ticks
proc_cpu() { awk '{ print $14 + $15 }' "/proc/$1/stat" 2>/dev/null || echo 0; }
# pcts FILE: "p50 p99 n" of the numbers in FILE, nearest rank
pcts() {
	sort -n "$1" | awk '{ v[NR] = $1 } END {
		if (NR == 0) { print "- - 0"; exit }
		i50 = int(NR * 0.50 + 0.999999); i99 = int(NR * 0.99 + 0.999999)
		print v[i50], v[i99], NR }'
}
# mem PID: "RSS anon heap file" in MiB: VmRSS, RssAnon (the heap, stacks
# and the libraries' written pages), the [heap] mapping's Rss (malloc's
# main arena; blocks past its mmap threshold are anon but not heap) and
# RssFile (the binary's and the shared libraries' file pages)
mem() {
	heap=$(awk '/^[0-9a-f]+-[0-9a-f]+ / { h = ($6 == "[heap]") } h && /^Rss:/ { s += $2 }
		END { printf "%.1f", s / 1024 }' "/proc/$1/smaps" 2>/dev/null)
	awk -v heap="${heap:--}" '/^VmRSS:/ { r = $2 } /^RssAnon:/ { a = $2 } /^RssFile:/ { f = $2 }
		END { printf "%.1f %.1f %s %.1f\n", r / 1024, a / 1024, heap, f / 1024 }' "/proc/$1/status"
}
# ms US: microseconds as milliseconds, "-" stays "-"
ms() { case $1 in -) echo - ;; *) awk "BEGIN { printf \"%.1f\", $1 / 1000 }" ;; esac; }
problem() { echo "N=$N: $*" >>"$PROBLEMS"; echo "!! $*"; }

# reg_stream S T0: registers the VMs of $TMP/reg.in.S ("k pid" lines) one
# vcpuctl run each; "end_ns us" per run into $TMP/reg.done.S; the first
# failure goes to $TMP/reg.fail.S and ends the stream, as does
# SCALE_REG_MAX_S (then $TMP/reg.capped). One clock read per run: a run
# is timed from the clock read that ended the one before it, so it carries
# that date(1)'s exit (well under a millisecond); a second date(1) per run
# would cost a process start, a quarter of the vcpuctl run's own CPU
reg_stream() {
	a=$(now_ns)
	while read -r k pid; do
		if ! ctl --timeout 300 vm register "vm-$k" --tenant bench --pid "$pid" >/dev/null 2>"$TMP/reg.err.$1"; then
			echo "vm-$k failed: $(cat "$TMP/reg.err.$1")" >"$TMP/reg.fail.$1"
			return 1
		fi
		b=$(now_ns)
		echo "$b $(((b - a) / 1000))" >>"$TMP/reg.done.$1"
		a=$b
		if [ $(((b - $2) / 1000000000)) -ge "$SCALE_REG_MAX_S" ]; then
			: >"$TMP/reg.capped"
			return 0
		fi
	done <"$TMP/reg.in.$1"
}

# curl_rereg: the server's side without process starts: the last 10% of
# the VMs released and registered again over curl, SCALE_REG_CLIENTS
# streams of one curl process each (one connection, requests one after
# another), curl's time_total per request
curl_rereg() {
	k=$((N - tenth)) s=0
	while [ $k -lt "$N" ]; do
		pid=$(sed -n 's/^fakevm pid=\([0-9]*\).*/\1/p' "$TMP/fake/$k")
		c=$((s % SCALE_REG_CLIENTS))
		printf 'unix-socket = "%s"\nurl = "http://x/v1/vms/vm-%s"\nrequest = "DELETE"\noutput = "/dev/null"\nnext\n' "$SOCK" "$k" >>"$TMP/curl.rel.$c"
		printf 'unix-socket = "%s"\nurl = "http://x/v1/vms"\nrequest = "POST"\nheader = "Content-Type: application/json"\ndata = "{\\"name\\": \\"vm-%s\\", \\"tenant\\": \\"bench\\", \\"pid\\": %s}"\noutput = "/dev/null"\nwrite-out = "%%{http_code} %%{time_total}\\n"\nnext\n' "$SOCK" "$k" "$pid" >>"$TMP/curl.reg.$c"
		k=$((k + 1)) s=$((s + 1))
	done
	# no "next" after the last request of a file (options, the socket
	# too, hold until the next "next")
	for f in "$TMP"/curl.rel.* "$TMP"/curl.reg.*; do sed -i '$d' "$f"; done
	for f in "$TMP"/curl.rel.*; do
		curl -s --max-time 300 --unix-socket "$SOCK" -K "$f" || problem "curl release failed"
	done
	# the releases' placement passes go first (a pass with removals is
	# followed by a tick that reads the removed VMs' neighbours again):
	# two ticks, so that what is timed is registration alone
	t=$(ticks); w=$((t + 2))
	while [ "$(ticks)" -lt "$w" ]; do sleep 0.1; done
	pids=""
	t0=$(now_ns)
	for f in "$TMP"/curl.reg.*; do
		curl -s --max-time 300 --unix-socket "$SOCK" -K "$f" >"$f.out" &
		pids="$pids $!"
	done
	for p in $pids; do wait "$p"; done
	t1=$(now_ns)
	cat "$TMP"/curl.reg.*.out >"$TMP/curl.all"
	nok=$(awk '$1 == 201' "$TMP/curl.all" | wc -l)
	awk '$1 == 201 { print $2 * 1000000 }' "$TMP/curl.all" >"$TMP/curl.us"
	set -- $(pcts "$TMP/curl.us"); c50=$1 c99=$2
	echo "  over curl (the last $tenth released and registered again, $SCALE_REG_CLIENTS streams, no process start): $nok in $(awk "BEGIN { printf \"%.2f\", ($t1 - $t0) / 1e9 }") s = $(awk "BEGIN { printf \"%.1f\", $nok / (($t1 - $t0) / 1e9) }") VMs/s, p50 $(ms "$c50") ms, p99 $(ms "$c99") ms"
	[ "$nok" -eq "$tenth" ] || problem "curl re-registration: $nok of $tenth succeeded: $(awk '$1 != 201' "$TMP/curl.all" | head -3)"
}

# tier_host: the policy and fixture topology that admit N x SCALE_VCPUS;
# sets CPUS, RATIO, TOPO_DESC
tier_host() {
	need=$((N * SCALE_VCPUS))
	CPUS=64
	if [ "$need" -gt $((RATIO_MAX * (CPUS - HOUSEKEEPING))) ]; then
		# a larger flat host, in steps of 64 CPUs
		while [ "$need" -gt $((RATIO_MAX * (CPUS - HOUSEKEEPING))) ]; do CPUS=$((CPUS + 64)); done
		sh "$SRC/tests/fixtures/topology/gen.sh" nosmt "$TMP/topo-$CPUS" "$CPUS" || return 1
		sys="$TMP/topo-$CPUS/sys"
		TOPO_DESC="${CPUS}c-nosmt (generated: 64c-nosmt admits at most $((RATIO_MAX * (64 - HOUSEKEEPING))) vCPUs)"
	else
		sys="$SRC/tests/fixtures/topology/64c-nosmt/sys"
		TOPO_DESC="64c-nosmt"
	fi
	rm -f "$HOST/sys"
	ln -s "$sys" "$HOST/sys"
	pool=$((CPUS - HOUSEKEEPING))
	RATIO=$(((need + pool - 1) / pool))
	[ "$RATIO" -lt 4 ] && RATIO=4
	cp "$SRC/policies/default.yaml" "$POLICY"
	sed -i 's/^  proc: true/  proc: false/; s/^  cpu_ratio: .*/  cpu_ratio: '"$RATIO"'/' "$POLICY"
	grep -q "^  cpu_ratio: $RATIO\$" "$POLICY"
}

# tier: everything for one N; appends a row to $ROWS
tier() {
	echo
	echo "== N=$N VMs x $SCALE_VCPUS vCPUs"
	stop_daemon
	cleanup_fakes
	rm -rf "$DB" "$DB"-* "$LOG" "$TMP/cgroup" "$TMP/fake"
	mkdir -p "$TMP/fake"
	if ! tier_host; then problem "cannot set up the fixture host"; return 1; fi
	echo "host: $TOPO_DESC, $((CPUS - HOUSEKEEPING)) shared CPUs, overcommit cpu_ratio $RATIO (policy range: >0..$RATIO_MAX), log level info"

	# the fake VMs, all at once
	t0=$(now_ns)
	if ! start_fakes "$N" "$SCALE_VCPUS" "$TMP/fake/" 300 >"$TMP/fakes.err"; then
		problem "$(cat "$TMP/fakes.err") (max user processes $(awk '/^Max processes/ { print $3 }' /proc/self/limits), pid_max $(cat /proc/sys/kernel/pid_max))"
		return 1
	fi
	t1=$(now_ns)
	echo "fake VMs: $N started in $(awk "BEGIN { printf \"%.1f\", ($t1 - $t0) / 1e9 }") s"

	if ! start_daemon --no-libvirt --log-level info; then problem "vcpud did not start"; return 1; fi
	if ! ctl tenant create bench --vcpus $((N * SCALE_VCPUS)) >/dev/null; then
		problem "tenant create --vcpus $((N * SCALE_VCPUS)) failed"; return 1
	fi

	# registration as a control plane does it: SCALE_REG_CLIENTS concurrent
	# streams, each a loop of vcpuctl runs (stream s registers VMs s, s+C,
	# s+2C, ...), every run timed; first and last 10% by completion time
	rm -f "$TMP"/reg.* "$TMP"/curl.*
	k=0
	while [ $k -lt "$N" ]; do
		pid=$(sed -n 's/^fakevm pid=\([0-9]*\).*/\1/p' "$TMP/fake/$k")
		echo "$k $pid" >>"$TMP/reg.in.$((k % SCALE_REG_CLIENTS))"
		k=$((k + 1))
	done
	t0=$(now_ns)
	pids=""
	s=0
	while [ $s -lt "$SCALE_REG_CLIENTS" ] && [ $s -lt "$N" ]; do
		reg_stream "$s" "$t0" &
		pids="$pids $!"
		s=$((s + 1))
	done
	for p in $pids; do wait "$p"; done
	t1=$(now_ns)
	cat "$TMP"/reg.done.* 2>/dev/null | sort -n >"$TMP/reg.done"
	REG=$(wc -l <"$TMP/reg.done")
	awk '{ print $2 }' "$TMP/reg.done" >"$TMP/reg.us"
	for f in "$TMP"/reg.fail.*; do [ -s "$f" ] && problem "register $(cat "$f")"; done
	capped=""
	[ -e "$TMP/reg.capped" ] && [ "$REG" -lt "$N" ] && capped=yes
	reg_s=$(awk "BEGIN { printf \"%.1f\", ($t1 - $t0) / 1e9 }")
	reg_rate=$(awk "BEGIN { printf \"%.1f\", $REG / (($t1 - $t0) / 1e9) }")
	tenth=$((REG / 10)); [ $tenth -lt 1 ] && tenth=1
	head -n $tenth "$TMP/reg.us" >"$TMP/reg.first"
	tail -n $tenth "$TMP/reg.us" >"$TMP/reg.last"
	set -- $(pcts "$TMP/reg.first"); f50=$1 f99=$2
	set -- $(pcts "$TMP/reg.last"); l50=$1 l99=$2
	echo "registration: $REG/$N VMs in $reg_s s = $reg_rate VMs/s ($SCALE_REG_CLIENTS concurrent vcpuctl streams)"
	echo "  per registration (vcpuctl run), first 10% ($tenth): p50 $(ms "$f50") ms, p99 $(ms "$f99") ms"
	echo "  per registration (vcpuctl run), last 10% ($tenth):  p50 $(ms "$l50") ms, p99 $(ms "$l99") ms"
	if [ -n "$capped" ]; then
		problem "registration capped at SCALE_REG_MAX_S=$SCALE_REG_MAX_S s: $REG of $N VMs registered ($reg_rate VMs/s); the rest is measured with $REG VMs"
	fi
	if [ "$REG" -eq "$N" ] && [ "$tenth" -ge 2 ]; then
		curl_rereg
	fi
	if [ "$REG" -eq 0 ]; then return 1; fi

	# settle: the registrations' ticks pass
	t=$(ticks); w=$((t + 3))
	while [ "$(ticks)" -lt "$w" ]; do sleep 0.2; kill -0 "$DAEMON_PID" || { problem "vcpud died"; return 1; }; done

	# quiet window: vcpud's CPU per tick, log growth, the fake VMs' CPU
	fcpu() { s=0; for p in $VMPIDS; do s=$((s + $(proc_cpu "$p"))); done; echo $s; }
	tk0=$(ticks); c0=$(proc_cpu "$DAEMON_PID"); l0=$(wc -c <"$LOG"); fc0=$(fcpu); w0=$(now_ns)
	sleep "$SCALE_WINDOW_S"
	tk1=$(ticks); c1=$(proc_cpu "$DAEMON_PID"); l1=$(wc -c <"$LOG"); fc1=$(fcpu); w1=$(now_ns)
	dt=$((tk1 - tk0))
	cpu_tick=$(awk "BEGIN { if ($dt > 0) printf \"%.1f\", ($c1 - $c0) * 1000 / $CLK_TCK / $dt; else print \"-\" }")
	cpu_pct=$(awk "BEGIN { printf \"%.1f\", ($c1 - $c0) * 100 / $CLK_TCK / (($w1 - $w0) / 1e9) }")
	log_kib=$(awk "BEGIN { printf \"%.1f\", ($l1 - $l0) / 1024 * 60 / (($w1 - $w0) / 1e9) }")
	fake_pct=$(awk "BEGIN { printf \"%.2f\", ($fc1 - $fc0) * 100 / $CLK_TCK / (($w1 - $w0) / 1e9) }")
	echo "quiet window: $(awk "BEGIN { printf \"%.1f\", ($w1 - $w0) / 1e9 }") s, $dt ticks"
	echo "  vcpud CPU: $cpu_tick ms per tick (utime+stime, ${cpu_pct}% of one CPU)"
	# dry-run logs a would-be write at info only the first time it sees it,
	# in a set it empties past 8192 entries: past that, every tick's writes
	# are logged again, which a real host (nothing to rewrite) never does
	dry=$(tail -c +$((l0 + 1)) "$LOG" | head -c $((l1 - l0)) | grep 'dry-run: would' | wc -c)
	echo "  log growth: $log_kib KiB/min ($((l1 - l0)) bytes in the window, $dry of them dry-run 'would write' lines)"
	echo "  fake VMs' CPU: ${fake_pct}% of one CPU, all $N together"
	[ "$dt" -gt 0 ] || problem "no tick in the quiet window"
	if [ -n "${SCALE_PERF_S:-}" ]; then
		pf="${SCALE_PERF_DIR:-/tmp}/perf-$N.data"
		if perf record -q -F "${SCALE_PERF_HZ:-999}" --call-graph "${SCALE_PERF_CG:-dwarf,16384}" -o "$pf" -p "$DAEMON_PID" -- sleep "$SCALE_PERF_S" 2>"$TMP/perf.err"; then
			echo "  perf: $pf ($SCALE_PERF_S s; perf report -i $pf)"
		else
			problem "perf record failed: $(head -c 300 "$TMP/perf.err")"
		fi
	fi

	# the daemon's own tick figures, over SCALE_TICKS ticks
	: >"$TMP/tick.us"; : >"$TMP/tick.sql"; : >"$TMP/tick.writes"
	last=$(ticks) n=0 deadline=$(($(date +%s) + SCALE_TICKS * 5))
	while [ $n -lt "$SCALE_TICKS" ] && [ "$(date +%s)" -lt $deadline ]; do
		h=$(api health)
		t=$(echo "$h" | field ticks)
		if [ -n "$t" ] && [ "$t" != "$last" ]; then
			last=$t
			echo "$h" | field last_tick_us >>"$TMP/tick.us"
			echo "$h" | field last_tick_sql >>"$TMP/tick.sql"
			echo "$h" | field last_tick_writes >>"$TMP/tick.writes"
			n=$((n + 1))
		fi
		sleep 0.1
	done
	set -- $(pcts "$TMP/tick.us"); tmed=$(ms "$1") tp99=$(ms "$2") tn=$3
	set -- $(pcts "$TMP/tick.sql"); sql=$1 sqlmax=$2
	set -- $(pcts "$TMP/tick.writes"); wr=$1
	echo "tick ($tn ticks, last_tick_us): median $tmed ms, p99 $tp99 ms"
	echo "  SQL statements per tick: median $sql, p99 $sqlmax (last_tick_sql)"
	echo "  cgroup writes per tick: median $wr (dry-run: what it would write; 0 once it has all in its overlay)"
	[ "$tn" -ge "$SCALE_TICKS" ] || problem "only $tn of $SCALE_TICKS ticks sampled"

	# syscalls per tick: strace -c on every thread for a few ticks
	sys_tick=-
	if command -v strace >/dev/null; then
		strace -c -f -S calls -o "$TMP/strace.out" -p "$DAEMON_PID" 2>"$TMP/strace.err" &
		STRACE_PID=$!
		sleep 0.5
		s0=$(ticks)
		sleep "$SCALE_STRACE_S"
		s1=$(ticks)
		kill -INT "$STRACE_PID"
		wait "$STRACE_PID"
		STRACE_PID=
		calls=$(awk '$NF == "total" { print $4 }' "$TMP/strace.out")
		ds=$((s1 - s0))
		if [ -n "$calls" ] && [ "$ds" -gt 0 ]; then
			sys_tick=$((calls / ds))
			echo "syscalls: $sys_tick per tick ($calls in $ds ticks under strace -f, with 2 /v1/health requests); most called:"
			awk '/^------/ { n++; next } n == 1 && NF >= 5 { printf "    %-16s %s\n", $NF, $4 }' "$TMP/strace.out" | head -6
		else
			problem "strace measured nothing: $(head -c 300 "$TMP/strace.err")"
		fi
	else
		problem "no strace: syscalls per tick not measured (apt-get install strace)"
	fi

	# the process: memory, fds, threads; the VMs' vCPU threads
	set -- $(mem "$DAEMON_PID"); rss=$1 anon=$2 heap=$3 file=$4
	dthreads=$(awk '/^Threads:/ { print $2 }' "/proc/$DAEMON_PID/status")
	fds=$(ls "/proc/$DAEMON_PID/fd" | wc -l)
	fdmax=$(awk '/^Max open files/ { print $4 }' "/proc/$DAEMON_PID/limits")
	# every page of the listing (500 VMs a page by default)
	vthreads=$(api "vms?limit=5000" | grep -o '"tid": *[0-9]' | wc -l)
	echo "vcpud: RSS $rss MiB, $fds open fds (limit $fdmax), $dthreads threads; managed vCPU threads: $vthreads"
	echo "  memory: RSS $rss MiB = anon $anon MiB (heap $heap MiB) + file pages $file MiB (binary and shared libraries)"
	# and once more right after a tick (the tick's own allocations freed)
	t=$(ticks); w=$((t + 1)); n=0
	while [ "$(ticks)" -lt "$w" ] && [ $n -lt 50 ]; do sleep 0.05; n=$((n + 1)); done
	set -- $(mem "$DAEMON_PID")
	echo "  memory after the next tick: RSS $1 MiB = anon $2 MiB (heap $3 MiB) + file pages $4 MiB"

	# API latency while ticks run (curl's time_total: no process start)
	api_p99=""
	for ep in health top vms metrics; do
		: >"$TMP/api.ms"
		errs=0 r=0
		while [ $r -lt "$SCALE_API_REQS" ]; do
			out=$(curl -s -o /dev/null --max-time 60 -w '%{http_code} %{time_total}' \
				--unix-socket "$SOCK" "http://x$(ep_path "$ep")")
			set -- $out
			if [ "${1:-0}" = 200 ]; then
				awk "BEGIN { print $2 * 1000000 }" >>"$TMP/api.ms"
			else
				errs=$((errs + 1))
			fi
			r=$((r + 1))
			sleep 0.05
		done
		set -- $(pcts "$TMP/api.ms")
		p50=$(ms "$1"); p99=$(ms "$2")
		bytes=$(curl -s --max-time 60 --unix-socket "$SOCK" "http://x$(ep_path "$ep")" | wc -c)
		echo "API $(ep_path "$ep") ($SCALE_API_REQS requests, $bytes bytes): p50 $p50 ms, p99 $p99 ms, $errs failed"
		[ "$errs" -eq 0 ] || problem "$(ep_path "$ep"): $errs of $SCALE_API_REQS requests failed"
		api_p99="$api_p99 $p99"
	done

	kill -0 "$DAEMON_PID" 2>/dev/null || problem "vcpud died during the tier"
	if [ -n "${SCALE_HOLD_S:-}" ]; then
		echo "holding $SCALE_HOLD_S s: vcpud pid $DAEMON_PID, socket $SOCK, log $LOG"
		sleep "$SCALE_HOLD_S"
	fi
	label=$N; [ "$REG" -lt "$N" ] && label="$REG/$N"
	echo "$label $reg_rate $tmed $tp99 $cpu_tick $sys_tick $sql $rss $fds $log_kib$api_p99 $anon" >>"$ROWS"
	return 0
}

echo "bench-scale: N in '$SCALE_N', $SCALE_VCPUS vCPUs per VM; vcpud $VCPUD ($(nproc) CPUs here)"
echo "limits: max user processes $(awk '/^Max processes/ { print $3 }' /proc/self/limits), pid_max $(cat /proc/sys/kernel/pid_max), threads-max $(cat /proc/sys/kernel/threads-max)"
for N in $SCALE_N; do
	tier || echo "N=$N: tier did not complete" >>"$PROBLEMS"
	stop_daemon
	cleanup_fakes
done

echo
echo "== bench-scale summary ($SCALE_VCPUS vCPUs per VM; times in ms, API columns are p99)"
printf '%-9s %7s %8s %8s %8s %9s %7s %7s %5s %8s %7s %7s %7s %7s %8s\n' \
	N "reg/s" tick-med tick-p99 cpu/tick sys/tick sql/tk "RSS-MiB" fds "logKiB/m" health top vms metrics "anon-MiB"
while read -r l; do
	set -- $l
	printf '%-9s %7s %8s %8s %8s %9s %7s %7s %5s %8s %7s %7s %7s %7s %8s\n' "$@"
done <"$ROWS"
if [ -s "$PROBLEMS" ]; then
	echo "problems:"
	sed 's/^/  /' "$PROBLEMS"
	echo "bench-scale: INCOMPLETE: $(grep -c . "$PROBLEMS") problem(s) above; the figures of those tiers are partial"
	exit 1
fi
echo "bench-scale: every tier ran whole ($SCALE_N)"
