#!/bin/sh
# demoplot.sh - `make demo`'s picture (tests/kernel/demo-plot.sh) from the
# lines the 20-throttle scenario prints: a serial log made here with a
# victim, two caps, the breach and the cap events gives build/demo's data
# files (one row per second, the caps where they were, NaN where none) and
# a PNG; a log without the lines, and no gnuplot, are said and fail.
SUITE=e2e-demoplot
. "$(dirname "$0")/lib.sh"
trap 'rm -rf "$TMP"' EXIT INT TERM
PLOT=$SRC/tests/kernel/demo-plot.sh
K=$TMP/kernel-test
mkdir -p "$K"
{
	echo "boot noise"
	t=1700000000000
	for s in 0 1 2 3 4 5 6 7 8 9; do
		ts=$((t + s * 1000))
		if [ "$s" -lt 4 ]; then steal=50.0 cap=null; else steal=10.0 cap=25.0; fi
		echo "@@VCPUD-DEMO sample victim $ts $steal 100.0 null"
		echo "@@VCPUD-DEMO sample noisy1 $ts 70.0 50.0 $cap"
		echo "@@VCPUD-DEMO sample noisy2 $((ts + 3)) 70.0 50.0 $cap"
	done
	echo "@@VCPUD-DEMO event $((t + 1500)) policy.reload policy"
	echo "@@VCPUD-DEMO event $((t + 3200)) throttle.cap noisy1"
	echo "@@VCPUD-DEMO event $((t + 3210)) throttle.cap noisy2"
	echo "@@VCPUD-DEMO mark $((t + 2000)) breach"
} > "$K/serial.log"

OUT=$(sh "$PLOT" "$K" "$TMP/demo/throttle.png" 2>&1)
rc=$?
if command -v gnuplot >/dev/null 2>&1; then
	[ "$rc" = 0 ] && ok "plotted: $OUT" || bad "demo-plot failed ($rc): $OUT"
	head -c 8 "$TMP/demo/throttle.png" 2>/dev/null | od -An -c | grep -q 'P   N   G' \
		&& ok "a PNG" || bad "no PNG at $TMP/demo/throttle.png"
else
	bad "no gnuplot (deploy/debian-packages.txt lists gnuplot-nox)"
fi
rows=$(grep -c . "$TMP/demo/throttle.dat" 2>/dev/null)
[ "$rows" = 10 ] && ok "one row per second (10)" || bad "throttle.dat has ${rows:-no} rows"
line() { sed -n "$1p" "$TMP/demo/throttle.dat"; }
[ "$(line 1)" = "0 50.0 100.0 NaN NaN" ] && ok "no cap: NaN" || bad "first row: $(line 1)"
[ "$(line 10)" = "9 10.0 100.0 25.0 25.0" ] && ok "the caps in their columns" || bad "last row: $(line 10)"
ev=$(cat "$TMP/demo/events.dat" 2>/dev/null)
case "$ev" in *"1.5 throttling-on"*"2.0 breach"*"3.2 cap:noisy1"*) ok "events in time order" ;;
*) bad "events: $ev" ;; esac

# no data: said, and a failure
mkdir -p "$TMP/empty"
echo "nothing here" > "$TMP/empty/serial.log"
OUT=$(sh "$PLOT" "$TMP/empty" "$TMP/x/throttle.png" 2>&1)
rc=$?
[ "$rc" != 0 ] && ok "no data: exit $rc" || bad "no data accepted"
case "$OUT" in *"no @@VCPUD-DEMO data"*) ok "says why" ;; *) bad "message: $OUT" ;; esac
finish
