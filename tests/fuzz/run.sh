#!/bin/sh
# run.sh - run each libFuzzer target of tests/fuzz for SECONDS (make fuzz
# FUZZ_S=N) and print per target its executions, new inputs and crashes,
# then "fuzz: N targets, N execs, N crashes" (exit 1 on a crash).
# Usage: tests/fuzz/run.sh BUILD_DIR SECONDS [TARGET...]
# New inputs go to BUILD_DIR/fuzz-corpus/TARGET (the committed seeds in
# tests/fuzz/corpus/TARGET are only read); a crash's input is kept as
# BUILD_DIR/fuzz-crashes/TARGET-crash-* (make it a regression test:
# copy it into tests/fuzz/corpus/TARGET once fixed).
set -u
build=${1:?usage: run.sh BUILD_DIR SECONDS [TARGET...]}
secs=${2:?usage: run.sh BUILD_DIR SECONDS [TARGET...]}
shift 2
here=$(cd "$(dirname "$0")" && pwd)
targets=${*:-$(cd "$here" && ls fuzz_*.c | sed 's/\.c$//')}
total_execs=0 total_crashes=0 n=0
mkdir -p "$build/fuzz-crashes"
for t in $targets; do
	bin=$build/fuzz/$t
	[ -x "$bin" ] || { echo "fuzz: $t: no $bin (make fuzz builds it)"; total_crashes=$((total_crashes + 1)); continue; }
	mkdir -p "$build/fuzz-corpus/$t"
	log=$build/fuzz-$t.log
	"$bin" -max_total_time="$secs" -print_final_stats=1 -timeout=10 -rss_limit_mb=2048 \
		-artifact_prefix="$build/fuzz-crashes/$t-" "$build/fuzz-corpus/$t" "$here/corpus/$t" \
		>"$log" 2>&1
	rc=$?
	execs=$(sed -n 's/^stat::number_of_executed_units: *\([0-9]*\).*/\1/p' "$log" | tail -1)
	rate=$(sed -n 's/^stat::average_exec_per_sec: *\([0-9]*\).*/\1/p' "$log" | tail -1)
	cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1)
	crashes=0
	if [ $rc -ne 0 ]; then
		crashes=1
		echo "fuzz: $t: CRASH (exit $rc); $(grep -m1 -E 'ERROR|runtime error|SUMMARY' "$log")"
		ls "$build/fuzz-crashes/$t-"* 2>/dev/null | sed 's/^/  input: /'
	fi
	echo "fuzz: $t: ${execs:-0} execs in $secs s (${rate:-0}/s), ${cov:-cov: ?}, $(ls "$build/fuzz-corpus/$t" | wc -l) corpus inputs, $crashes crashes"
	total_execs=$((total_execs + ${execs:-0}))
	total_crashes=$((total_crashes + crashes))
	n=$((n + 1))
done
echo "fuzz: $n targets, $total_execs execs, $total_crashes crashes"
[ "$total_crashes" -eq 0 ]
