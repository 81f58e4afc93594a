#!/bin/sh
# metrics.sh - GET /metrics of the real vcpud (dry-run, a temp cgroup root)
# with tenants, registered VMs (one spinning at 30%, one idle) and samples:
# Prometheus' text format as `promtool check metrics` reads it, the
# families and labels a control plane scrapes, figures that agree with
# /v1/top of the same tick and with vcpuctl tenant show, counters that do
# not go back, and 405 for a POST.
SUITE=e2e-metrics
. "$(dirname "$0")/lib.sh"
mkdir "$TMP/cgroup"
trap 'cleanup_fakes; stop_daemon; rm -rf "$TMP"' INT TERM

if ! command -v promtool >/dev/null; then
	echo "$SUITE: SKIP: no promtool (make deps unpacks it from Debian's prometheus package)"
	finish
	exit 0
fi

start_daemon || { bad "daemon starts"; finish; exit 1; }
ctl tenant create acme --vcpus 8 --memory 4G --cpu-max 3 >/dev/null
ctl tenant create beta --vcpus 2 --weight 300 >/dev/null
start_fake "$TMP/web.out" --vcpus 2 --duty 30 || bad "fakevm web starts"
WEB=$FPID
start_fake "$TMP/db.out" --vcpus 2 --idle || bad "fakevm db starts"
DB_PID=$FPID
ctl vm register web --tenant acme --pid "$WEB" >/dev/null || bad "register web"
ctl vm register db --tenant beta --pid "$DB_PID" >/dev/null || bad "register db"
ctl vm admit later --tenant acme --vcpus 1 >/dev/null || bad "admit later"

scrape() { curl -s --unix-socket "$SOCK" http://localhost/metrics; }
metric() { # NAME LABELS: the value of the sample NAME{LABELS}
	grep -F "$1{$2} " "$TMP/metrics" | sed 's/.* //'
}
# samples need two ticks: wait until web has a steal figure
wait_for "web sampled" 100 sh -c "curl -s --unix-socket '$SOCK' http://localhost/metrics |
	grep -q '^vcpud_vm_steal_ratio{tenant=\"acme\",vm=\"web\"}'"

# a scrape between two /v1/top of the same tick: the same figures
same=""
for i in 1 2 3 4 5 6 7 8 9 10; do
	curl -s --unix-socket "$SOCK" http://localhost/v1/top >"$TMP/top1"
	scrape >"$TMP/metrics"
	curl -s --unix-socket "$SOCK" http://localhost/v1/top >"$TMP/top2"
	t1=$(sed -n 's/.*"tick":\([0-9]*\).*/\1/p' "$TMP/top1")
	t2=$(sed -n 's/.*"tick":\([0-9]*\).*/\1/p' "$TMP/top2")
	[ -n "$t1" ] && [ "$t1" = "$t2" ] && { same=1; break; }
done
[ -n "$same" ] && ok "a scrape within one tick (tick $t1)" || bad "no scrape within one tick"

OUT=$(promtool check metrics <"$TMP/metrics" 2>&1)
[ $? -eq 0 ] && ok "promtool check metrics passes" || bad "promtool: $OUT"
OUT=$(ctl metrics | promtool check metrics 2>&1)
[ $? -eq 0 ] && ok "vcpuctl metrics | promtool check metrics passes" || bad "vcpuctl metrics: $OUT"
OUT=$(cat "$TMP/metrics")
contains "build info" 'vcpud_build_info{version="'
contains "ticks" 'vcpud_ticks_total '
contains "tick histogram" 'vcpud_tick_duration_seconds_bucket{le="+Inf"} '
contains "API requests by code" 'vcpud_api_requests_total{code="201"} '
contains "per-vCPU run seconds" 'vcpud_vcpu_run_seconds_total{tenant="acme",vm="web",vcpu="1"} '
contains "per-vCPU delay seconds" 'vcpud_vcpu_delay_seconds_total{tenant="beta",vm="db",vcpu="0"} '
# dry-run: no cpu.stat of the VM's group to read, so no sample (the
# kernel tier's groups are real)
contains "throttled seconds" '# TYPE vcpud_vm_throttled_seconds_total counter'
contains "throttle actions" 'vcpud_throttle_actions_total{action="cap"} 0'
contains "tenant quota" 'vcpud_tenant_vcpus_quota{tenant="acme"} 8'
contains "tenant admitted vCPUs (web 2 + later 1)" 'vcpud_tenant_vcpus_admitted{tenant="acme"} 3'
contains "tenant memory quota" 'vcpud_tenant_memory_quota_bytes{tenant="acme"} 4294967296'
contains "tenant cap" 'vcpud_tenant_cpu_max_cores{tenant="acme"} 3'
contains "tenant weight" 'vcpud_tenant_weight{tenant="beta"} 300'
contains "node overcommit" 'vcpud_node_shared_overcommit_ratio{node="0"} '
case "$OUT" in
*'vcpud_tenant_memory_quota_bytes{tenant="beta"}'*) bad "beta has no memory quota, yet a sample" ;;
*) ok "no sample for a quota that is not set" ;;
esac
case "$OUT" in
*'vcpud_vm_cpu_cap_cores{'*) bad "a cap sample with nothing capped" ;;
*) ok "no cap sample while nothing is capped" ;;
esac
# the dry-run admitted VM has no process: no vCPU samples
case "$OUT" in
*'vm="later"'*) bad "samples for a VM with no process" ;;
*) ok "none for an admitted VM without a process" ;;
esac
# HELP and TYPE once per family, before its samples
dup=$(grep '^# TYPE ' "$TMP/metrics" | awk '{ print $3 }' | sort | uniq -d)
[ -z "$dup" ] && ok "each family typed once" || bad "typed twice: $dup"

# the same tick's figures as /v1/top (which rounds to 0.1%): steal and
# usage of web
top_field() { # FILE VM FIELD
	tr '{' '\n' <"$1" | grep "\"name\":\"$2\"" | sed -n "s/.*\"$3\":\([-0-9.e]*\).*/\1/p"
}
ts=$(top_field "$TMP/top1" web steal_pct)
tu=$(top_field "$TMP/top1" web usage_pct)
ms=$(metric vcpud_vm_steal_ratio 'tenant="acme",vm="web"')
mu=$(metric vcpud_vm_usage_cores 'tenant="acme",vm="web"')
awk -v a="$ts" -v b="$ms" 'BEGIN { d = a / 100 - b; exit !(a != "" && b != "" && d * d <= 0.00051 ^ 2) }' &&
	ok "web's steal agrees with /v1/top ($ts% = $ms)" || bad "steal: top $ts%, metrics $ms"
awk -v a="$tu" -v b="$mu" 'BEGIN { d = a / 100 - b; exit !(a != "" && b != "" && d * d <= 0.00051 ^ 2) }' &&
	ok "web's usage agrees with /v1/top ($tu% = $mu cores)" || bad "usage: top $tu%, metrics $mu"
awk -v b="$mu" 'BEGIN { exit !(b > 0.3 && b < 0.9) }' &&
	ok "web's 2 vCPUs at 30% use about 0.6 cores ($mu)" || bad "web's usage $mu cores"

# counters go forward: web's vCPU 0 ran more a few ticks later
r1=$(metric vcpud_vcpu_run_seconds_total 'tenant="acme",vm="web",vcpu="0"')
sleep 2.5
scrape >"$TMP/metrics"
r2=$(metric vcpud_vcpu_run_seconds_total 'tenant="acme",vm="web",vcpu="0"')
t2=$(sed -n 's/^vcpud_ticks_total //p' "$TMP/metrics")
awk -v a="$r1" -v b="$r2" 'BEGIN { exit !(a != "" && b + 0 > a + 0) }' &&
	ok "a spinning vCPU's run seconds went forward ($r1 -> $r2)" || bad "run seconds $r1 -> $r2"
awk -v b="$t2" 'BEGIN { exit !(b + 0 >= 2) }' && ok "ticks counted ($t2)" || bad "ticks: $t2"

# a released VM's series go with it
ctl vm release db >/dev/null
wait_for "db's series gone" 50 sh -c "! curl -s --unix-socket '$SOCK' http://localhost/metrics |
	grep -q 'vm=\"db\"'"

OUT=$(curl -s -o /dev/null -w '%{http_code}' --unix-socket "$SOCK" -X POST http://localhost/metrics)
[ "$OUT" = 405 ] && ok "POST /metrics is 405" || bad "POST /metrics: $OUT"
OUT=$(curl -s -D - -o /dev/null --unix-socket "$SOCK" http://localhost/metrics)
contains "text format's content type" 'Content-Type: text/plain; version=0.0.4; charset=utf-8'

cleanup_fakes
stop_daemon
finish
