#!/bin/sh
# 20-throttle.sh - noisy-neighbour throttling end to end in a real kernel,
# and what `make demo` shows an operator. A guaranteed tenant's VM (the
# victim) and a best-effort tenant's two VMs, 2 spinning vCPUs each, share
# pCPUs 2-3. With throttling off the victim waits about half the time; once
# it is switched on (policy reload, SIGHUP) vcpud caps both antagonists
# within breach_s + 2 s, the victim's steal falls below low_pct
# within 5 more ticks and stays there, and when the antagonists go idle
# their caps are lifted. Steal, throughput and the events are printed.
. "$VCPUD_SRC/tests/kernel/lib.sh"

POLICY=/tmp/policy.yaml
HIGH=30
LOW=15
BREACH=2
say() { echo "$*"; }
ticks() { status_field ticks; }
wait_next_tick() { vcpud_wait_ticks 1; }
# mean_fig VM N: "STEAL USAGE", the VM's means over its next N ticks
mean_fig() {
	_s=""
	for _i in $(seq "$2"); do
		wait_next_tick
		_s="$_s $(ctl top --once | awk -v vm="$1" '$1 == vm { print $6 ":" $5 }')"
	done
	echo "$_s" | tr ' ' '\n' | awk -F: 'NF == 2 && $1 != "-" { s += $1; u += $2; n++ }
		END { if (n) printf "%.1f %.1f\n", s / n, u / n; else print "nan nan" }'
}
start_vm() { # NAME: a spinning 2-vCPU fake VM on pCPUs 2-3; sets VMPID
	pinned_vm_start "$1" 0xc || abort_scenario "fakevm $1 did not start"
}

# hold_s 120: no loosening probe during the minute this scenario
# watches the capped state (a probe that relapses backs off at once, but
# its tick would read above low_pct); loosening and back-off on relapse
# are covered by test_throttle's plant, lifting caps by the idle phase here
sed -e 's/^  enabled: true/  enabled: false/' -e "s/^  high_pct: .*/  high_pct: $HIGH/" \
	-e "s/^  low_pct: .*/  low_pct: $LOW/" -e "s/^  breach_s: .*/  breach_s: $BREACH/" \
	-e "s/^  hold_s: .*/  hold_s: 120/" \
	"$VCPUD_SRC/policies/demo.yaml" > "$POLICY"
# this shell, vcpuctl and vcpud are the host's own work: keep them on the
# housekeeping CPUs 0-1, as on a real host, so that only the VMs contend on
# 2-3 (each vcpuctl costs ~0.2 s of CPU under TCG: on 2-3 it showed up as
# victim steal)
taskset -p 0x3 $$ >/dev/null || note "cannot pin the scenario shell to CPUs 0-1"
vcpud_start "$POLICY" || abort_scenario "vcpud did not start"
pass daemon-start "vcpud up, policy $POLICY (throttling off)"

say ""
say "== vcpud demo: a guaranteed VM and two noisy best-effort VMs on pCPUs 2-3"
say "\$ vcpuctl tenant create gold --vcpus 4 --class guaranteed"
ctl tenant create gold --vcpus 4 --class guaranteed
say "\$ vcpuctl tenant create batch --vcpus 8 --class best-effort"
ctl tenant create batch --vcpus 8 --class best-effort
start_vm victim; VICTIM=$VMPID
start_vm noisy1; N1=$VMPID
start_vm noisy2; N2=$VMPID
for vm in victim noisy1 noisy2; do
	case $vm in victim) t=gold; p=$VICTIM ;; noisy1) t=batch; p=$N1 ;; *) t=batch; p=$N2 ;; esac
	say "\$ vcpuctl vm register $vm --tenant $t --pid $p"
	ctl vm register "$vm" --tenant "$t" --pid "$p" | head -1
done

say ""
say "== before: throttling off (policy throttle.enabled: false)"
wait_next_tick; wait_next_tick
say "\$ vcpuctl top --once"
ctl top --once
set -- $(mean_fig victim 3)
steal_before=$1 usage_before=$2
tput_before=$(throughput "$VICTIM" /tmp/victim.rep 3)
say "victim: steal ${steal_before}%, CPU ${usage_before}% (means of 3 ticks), throughput $tput_before iterations/s"
expect_range contended "$steal_before" 35 70 "victim steal before, %"

say ""
say "== switching throttling on: throttle.enabled: true, then SIGHUP"
sed -i 's/^  enabled: false/  enabled: true/' "$POLICY"
kill -HUP "$VCPUD_PID"
wait_for 5 grep -q "policy $POLICY reloaded" "$VCPUD_LOG" || fail reload "no reload in the log"
# watch a dozen ticks live; the verdicts below come from what vcpud
# recorded (per-tick samples and events with their times), not from when
# this slow shell happened to look
shown=""
for i in $(seq 12); do
	wait_next_tick
	row=$(ctl top --once | awk '$1 == "victim" || $1 ~ /^noisy/')
	steal=$(echo "$row" | awk '$1 == "victim" { print $6 }')
	ncap=$(echo "$row" | awk '$1 ~ /^noisy/ && $7 != "-"' | grep -c .)
	say "tick $(ticks): victim steal ${steal}%, antagonists capped: $ncap/2"
	if [ -z "$shown" ] && [ "$ncap" -gt 0 ]; then
		shown=1
		say "\$ vcpuctl top --once   # during"
		ctl top --once
	fi
done

# ts_ms of the reload and of the first cap, from the event log (NDJSON)
ctl --json events > /tmp/events.json
ev_ts() { grep "\"action\": *\"$1\"" /tmp/events.json | head -1 | sed -n 's/.*"ts_ms": *\([0-9]*\).*/\1/p'; }
reload_ts=$(ev_ts policy.reload)
cap_ts=$(ev_ts throttle.cap)
# the victim's per-tick history: "TS STEAL" lines, oldest first
ctl --json vm stats victim | awk '/"ts_ms"/ { gsub(/[^0-9]/, "", $2); ts = $2 }
	/"steal_pct"/ { gsub(/[^0-9.]/, "", $2); print ts, $2 }' > /tmp/victim.hist
note "reload at ${reload_ts:-?}, first cap at ${cap_ts:-?}, $(grep -c . /tmp/victim.hist) samples"
# breach: the first tick after the reload above HIGH, and the ticks from it
# to the first cap; settled: the tick after the last one at or above LOW
# once capped (from there on every tick is below LOW), and the ticks from
# the cap to it. A lone tick at or above LOW between two below it is
# counted as noise, not as a relapse: under TCG a guest tick can stretch
# when the host is busy (a second guest, a compiler), and run_delay is
# booked when the thread next runs. Such ticks are reported, and any tick
# above HIGH after settling still fails (stays-below-high).
set -- $(awk -v r="${reload_ts:-0}" -v c="${cap_ts:-0}" -v hi="$HIGH" -v lo="$LOW" '
	$1 > r && b == "" && $2 > hi { b = $1 }
	b != "" && $1 > b && $1 <= c { bc++ }
	c > 0 && $1 > c { n++; st[n] = $2 }
	END {
		for (i = 1; i <= n; i++)
			if (st[i] >= lo && !(i > 1 && st[i - 1] < lo && (i == n || st[i + 1] < lo))) last = i
			else if (st[i] >= lo) noise++
		for (i = last + 1; i <= n; i++) if (st[i] > hi) over++
		print (b == "" ? "none" : b), bc + 0, (c > 0 && n > last) ? last + 1 : "never", n + 0,
			noise + 0, over + 0
	}' /tmp/victim.hist)
breach_ts=$1 breach_to_cap=$2 cap_to_low=$3 after_cap=$4 noise=$5 over=$6
note "victim history after the cap: $after_cap ticks, $noise lone ticks at or above $LOW% counted as noise"
expect_eq stays-below-high "$over" 0 "ticks above $HIGH% once settled"
if [ -n "$cap_ts" ] && [ "$breach_ts" != none ] && [ "$breach_to_cap" -le $((BREACH + 2)) ]; then
	pass cap-in-time "first cap $breach_to_cap ticks after the first breach (limit $((BREACH + 2)))"
else
	fail cap-in-time "breach ${breach_ts}, cap ${cap_ts:-never}, $breach_to_cap ticks"
fi
if [ "$cap_to_low" != never ] && [ "$cap_to_low" -le 5 ]; then
	pass steal-below-low "victim below $LOW% from $cap_to_low ticks after the first cap on, for all $after_cap ticks recorded since"
else
	fail steal-below-low "victim not settled below $LOW% within 5 ticks of the cap (settled: $cap_to_low, $after_cap ticks recorded)"
fi

say ""
say "== after: the antagonists are capped"
worst=0 sum=0
for i in $(seq 6); do
	wait_next_tick
	s=$(top_field victim 6)
	worst=$(awk -v a="$worst" -v b="$s" 'BEGIN { print (b + 0 > a + 0) ? b : a }')
	sum=$(awk -v a="$sum" -v b="$s" 'BEGIN { print a + b }')
done
expect_range after-low "$(awk -v s="$sum" 'BEGIN { printf "%.1f", s / 6 }')" 0 "$LOW" "victim's mean steal over 6 more ticks, %"
expect_range after-below-high "$worst" 0 "$HIGH" "victim's worst steal over those ticks, %"
say "\$ vcpuctl top --once"
ctl top --once
set -- $(mean_fig victim 3)
steal_after=$1 usage_after=$2
tput_after=$(throughput "$VICTIM" /tmp/victim.rep 3)
say "victim: steal ${steal_after}%, CPU ${usage_after}% (means of 3 ticks), throughput $tput_after iterations/s"
say ""
say "\$ vcpuctl explain noisy1"
ex=$(ctl explain noisy1); echo "$ex"
ex=$(echo "$ex" | tr '\n' ' ' | tr -s ' ')   # the sentences, unwrapped
case "$ex" in *"capped at"*"as an antagonist of victim"*"What lifts it"*)
	pass explain-antagonist "explain noisy1: its cap, its victim, what lifts it" ;;
*) fail explain-antagonist "explain noisy1: $ex" ;; esac
say "\$ vcpuctl explain victim"
ex=$(ctl explain victim); echo "$ex"
ex=$(echo "$ex" | tr '\n' ' ' | tr -s ' ')
case "$ex" in *"victim:"*"Capped on its account: noisy"*)
	pass explain-victim "explain victim: the caps on its account" ;;
*) fail explain-victim "explain victim: $ex" ;; esac
ev=$(ctl events)
echo "$ev" | grep 'throttle.cap' | grep -q 'vm/noisy1' && pass event-noisy1 "throttle.cap of noisy1 recorded" \
	|| fail event-noisy1 "no throttle.cap for noisy1"
echo "$ev" | grep 'throttle.cap' | grep -q 'vm/noisy2' && pass event-noisy2 "throttle.cap of noisy2 recorded" \
	|| fail event-noisy2 "no throttle.cap for noisy2"
ctl --json events | grep 'throttle\.cap' | grep -q '"victim": *"victim"' && pass event-victim "events name the victim" \
	|| fail event-victim "events do not name the victim"

say ""
say "== GET /metrics with the caps in force (real cgroups: cpu.stat's throttled_usec)"
# noisy1's cap as `top` and /metrics give it, read at one tick
cap_top() { ctl top --once | awk '$1 == "noisy1" { print $7 }'; }
metric() { ctl metrics | sed -n "s/^$1{tenant=\"$2\",vm=\"$3\"} //p"; }
same=""
for i in 1 2 3 4 5; do
	c1=$(cap_top); m=$(metric vcpud_vm_cpu_cap_cores batch noisy1); c2=$(cap_top)
	[ -n "$c1" ] && [ "$c1" = "$c2" ] && { same=1; break; }
done
say "noisy1: top CAP ${c1:-?}, vcpud_vm_cpu_cap_cores ${m:-absent}"
if [ -n "$same" ] && [ -n "$m" ] &&
	awk -v c="$c1" -v m="$m" 'BEGIN { d = c / 100 - m; exit !(d < 0.001 && d > -0.001) }'; then
	pass metrics-cap "vcpud_vm_cpu_cap_cores of noisy1 is top's cap: $m cores, top's CAP $c1"
else
	fail metrics-cap "noisy1: top ${c1:-?}/${c2:-?}%, vcpud_vm_cpu_cap_cores '${m:-absent}'"
fi
[ -z "$(metric vcpud_vm_cpu_cap_cores gold victim)" ] &&
	pass metrics-no-cap "the victim (not capped) has no vcpud_vm_cpu_cap_cores" ||
	fail metrics-no-cap "the victim has a cap metric: $(metric vcpud_vm_cpu_cap_cores gold victim)"
t1=$(metric vcpud_vm_throttled_seconds_total batch noisy1)
wait_next_tick; wait_next_tick
t2=$(metric vcpud_vm_throttled_seconds_total batch noisy1)
say "noisy1: vcpud_vm_throttled_seconds_total ${t1:-absent} -> ${t2:-absent} over two ticks"
awk -v a="${t1:-x}" -v b="${t2:-x}" 'BEGIN { exit !(a + 0 > 0 && b + 0 > a + 0.05) }' &&
	pass metrics-throttled "vcpud_vm_throttled_seconds_total of noisy1 grows while it is capped ($t1 -> $t2 s)" ||
	fail metrics-throttled "vcpud_vm_throttled_seconds_total of noisy1: '${t1:-absent}' -> '${t2:-absent}'"

say ""
say "== the antagonists go idle: their caps are lifted"
kill -USR2 "$N1" "$N2"
lifted=""
for i in $(seq 10); do
	wait_next_tick
	n=$(ctl top --once | awk '$1 ~ /^noisy/ && $7 != "-"' | grep -c .)
	if [ "$n" -eq 0 ]; then lifted=$i; break; fi
done
[ -n "$lifted" ] && pass caps-lifted "both caps lifted $lifted ticks after the antagonists went idle" \
	|| fail caps-lifted "caps still in force after 10 ticks"
ctl events | grep -q 'throttle.restore' && pass event-restore "throttle.restore recorded" \
	|| fail event-restore "no throttle.restore event"
say "\$ vcpuctl top --once"
ctl top --once
say "\$ vcpuctl events --since 5m"
ctl events --since 5m | grep -v 'tenant.create'

say ""
say "== the story per tick (Unicode sparklines; --ascii for plain terminals)"
for vm in victim noisy1; do
	say "\$ vcpuctl vm show $vm   # its samples"
	ctl vm show "$vm" | sed -n '/^steal /,/oldest first/p'
done
ctl vm show noisy1 | grep -q '^cap    0-' && pass sparkline-cap "vm show noisy1 draws its caps per tick" \
	|| fail sparkline-cap "no cap sparkline in vm show noisy1"
# the data of build/demo/throttle.png (tests/kernel/demo-plot.sh on the host)
for vm in victim noisy1 noisy2; do
	ctl --json vm stats "$vm" | awk -v vm="$vm" '
		/"ts_ms"/ { v = $2; gsub(/[^0-9]/, "", v); ts = v }
		/"usage_pct"/ { v = $2; gsub(/[,]/, "", v); u = v }
		/"steal_pct"/ { v = $2; gsub(/[,]/, "", v); st = v }
		/"cap_pct"/ { v = $2; gsub(/[,]/, "", v); print "@@VCPUD-DEMO sample", vm, ts, st, u, v }'
done
ctl --json events --since 10m | awk '/"throttle\./ || /"policy\.reload"/ {
	ts = $0; sub(/.*"ts_ms": */, "", ts); sub(/[^0-9].*/, "", ts)
	a = $0; sub(/.*"action": *"/, "", a); sub(/".*/, "", a)
	t = $0; sub(/.*"target": *"/, "", t); sub(/".*/, "", t); sub(/^vm\//, "", t)
	print "@@VCPUD-DEMO event", ts, a, t }'
[ "$breach_ts" != none ] && echo "@@VCPUD-DEMO mark $breach_ts breach"

say ""
say "== summary"
say "victim steal:       ${steal_before}% before -> ${steal_after}% with the antagonists capped"
say "victim CPU time:    ${usage_before}% -> ${usage_after}% of one pCPU (2 vCPUs)"
say "victim throughput:  $tput_before -> $tput_after iterations/s ($(awk -v a="$tput_before" -v b="$tput_after" 'BEGIN { if (a > 0) printf "%+.0f%%", (b - a) * 100 / a; else print "n/a" }'); TCG iteration rates vary with host load)"
say "breach to cap:      $breach_to_cap ticks (a tick is 1 s; the limit is breach_s + 2 = $((BREACH + 2)))"
say "cap to steal < $LOW%: $cap_to_low ticks"
# under TCG iteration rates swing with host load (FACTS.md): the CPU time
# the victim got (schedstat) is the signal
expect_range cpu-up "$(awk -v a="$usage_before" -v b="$usage_after" 'BEGIN { print (a > 0) ? b / a : 0 }')" 1.3 100 "victim CPU time after/before"
vcpud_stop
t_done
