#!/bin/sh
# demo-plot.sh - the picture of `make demo`: the victim's steal and CPU and
# the antagonists' caps per tick, with the breach, the reload that turned
# throttling on and each cap change marked, from the @@VCPUD-DEMO lines the
# 20-throttle scenario prints (tests/kernel/scenarios/20-throttle.sh).
# Usage: tests/kernel/demo-plot.sh KERNEL_TEST_DIR OUT.png
# Writes OUT.png and the data beside it (OUT dir/throttle.dat, events.dat);
# needs gnuplot (deploy/debian-packages.txt: gnuplot-nox). Exits non-zero
# and says why when there is no data or no gnuplot.
set -eu
dir=$1 png=$2
out=$(dirname "$png")
mkdir -p "$out"
# the boot that ran the scenario last (a frozen guest's scenario runs again)
log=""
for f in "$dir"/serial.log "$dir"/serial.*.log; do
	[ -f "$f" ] && grep -aq '^@@VCPUD-DEMO sample' "$f" && log=$f
done
if [ -z "$log" ]; then
	echo "demo-plot: no @@VCPUD-DEMO data in $dir/serial*.log (did 20-throttle run?)" >&2
	exit 1
fi
tr -d '\r' < "$log" | grep -a '^@@VCPUD-DEMO ' > "$out/demo.raw"
# t0: the first sample; times in seconds from it
t0=$(awk '$2 == "sample" { if (t == "" || $4 < t) t = $4 } END { print t }' "$out/demo.raw")
# throttle.dat: SECONDS VICTIM_STEAL VICTIM_USAGE CAP_NOISY1 CAP_NOISY2 (NaN: none)
awk -v t0="$t0" '
	$2 == "sample" {
		s = int(($4 - t0) / 1000 + 0.5); secs[s] = 1
		v = ($7 == "null" || $7 == "") ? "NaN" : $7
		if ($3 == "victim") { steal[s] = $5; usage[s] = $6 }
		else cap[$3, s] = v
	}
	END {
		for (s in secs) print s, (s in steal) ? steal[s] : "NaN", (s in usage) ? usage[s] : "NaN",
			(("noisy1", s) in cap) ? cap["noisy1", s] : "NaN",
			(("noisy2", s) in cap) ? cap["noisy2", s] : "NaN"
	}' "$out/demo.raw" | sort -n > "$out/throttle.dat"
# events.dat: SECONDS LABEL (cap changes, the reload, the breach)
awk -v t0="$t0" '
	$2 == "event" { printf "%.1f %s:%s\n", ($3 - t0) / 1000, $4, $5 }
	$2 == "mark" { printf "%.1f %s\n", ($3 - t0) / 1000, $4 }' "$out/demo.raw" |
	sed 's/throttle\.//; s/policy\.reload:.*/throttling-on/' | sort -n > "$out/events.dat"
if [ "$(grep -c . "$out/throttle.dat")" -lt 5 ]; then
	echo "demo-plot: only $(grep -c . "$out/throttle.dat") samples in $log" >&2
	exit 1
fi
if ! command -v gnuplot >/dev/null 2>&1; then
	echo "demo-plot: no gnuplot (install deploy/debian-packages.txt: gnuplot-nox); data in $out/throttle.dat" >&2
	exit 1
fi
# the events of one second as one vertical line with one label ("cap
# noisy1 noisy2")
arrows=$(awk '{ s = int($1); split($2, p, ":"); k = p[1]; v = p[2]
	if (!(s in lab)) { order[n++] = s; lab[s] = ""; at[s] = $1 }
	if (index(" " lab[s] " ", " " k " ") == 0 && (v == "" || index(lab[s], k " ") == 0))
		lab[s] = lab[s] (lab[s] == "" ? "" : ", ") k
	if (v != "") lab[s] = lab[s] " " v
}
END { for (i = 0; i < n; i++) { s = order[i]
	printf "set arrow from %s, graph 0 to %s, graph 1 nohead lc rgb \"#999999\" dt 3\n", at[s], at[s]
	printf "set label \"%s\" at %.1f, 205 rotate by 90 right font \",8\" tc rgb \"#555555\"\n", lab[s], at[s] + 0.35
} }' "$out/events.dat")
gnuplot <<EOF
set terminal pngcairo size 1200,600 font ",10"
set output "$png"
set title "vcpud demo: a guaranteed VM (victim) and two best-effort VMs on the same 2 pCPUs"
set xlabel "seconds"
set ylabel "% (steal, and CPU and caps in % of one pCPU)"
set yrange [0:210]
set grid
set key at graph 0.98, graph 0.72 box opaque
set datafile missing "NaN"
$arrows
plot "$out/throttle.dat" using 1:2 with linespoints lw 2 lc rgb "#c0392b" title "victim steal %", \
     "" using 1:3 with lines lw 2 lc rgb "#2980b9" title "victim CPU %", \
     "" using 1:4 with steps lw 2 lc rgb "#27ae60" title "noisy1 cap %", \
     "" using 1:5 with steps lw 2 dt 2 lc rgb "#8e44ad" title "noisy2 cap %"
EOF
echo "demo: the picture is $png ($(grep -c . "$out/throttle.dat") ticks, $(grep -c . "$out/events.dat") events)"
