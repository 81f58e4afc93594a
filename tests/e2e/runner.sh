#!/bin/sh
# runner.sh - the test runner never passes what did not run (issue 14, loud
# skips): tests/run.sh on a made-up tree whose unit binary skips a cmocka
# test, whose libvirt tier says SKIP and which has no kernel tier at all.
# Its last line names each skip; without CI it passes, under CI=true (what
# .ci/run sets) the skips fail it.
SUITE=e2e-runner
. "$(dirname "$0")/lib.sh"

# the inner run's output, indented: its own "check:" and "SKIP:" lines
# must not count in the run of this suite
inner() { printf '%s\n' "$1" | sed 's/^/  | /'; }
T=$TMP/tree
mkdir -p "$T/tests/libvirt" "$T/build/tests"
cp "$SRC/tests/run.sh" "$T/tests/run.sh"
cat >"$T/tests/libvirt/run.sh" <<'EOF'
echo "libvirt: SKIP: /dev/kvm is not usable"
echo "libvirt: 0 passed, 0 failed"
EOF
cat >"$TMP/sk.c" <<'EOF'
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
static void skipped(void **s) { (void)s; skip(); }
static void passes(void **s) { (void)s; }
int main(void)
{
	const struct CMUnitTest t[] = { cmocka_unit_test(skipped), cmocka_unit_test(passes) };
	return cmocka_run_group_tests(t, NULL, NULL);
}
EOF
if ! ${CC:-cc} -o "$T/build/tests/test_sk" "$TMP/sk.c" -lcmocka 2>"$TMP/cc.err"; then
	bad "cannot build the skipping cmocka test: $(head -3 "$TMP/cc.err")"
	finish
	exit 1
fi

OUT=$(env -u CI sh "$T/tests/run.sh" "$T/build" unit libvirt kernel 2>&1)
rc=$?
[ $rc -eq 0 ] && ok "outside CI, skips alone do not fail the run" || bad "exit $rc: $(inner "$OUT")"
LAST=$(printf '%s\n' "$OUT" | tail -1)
case "$LAST" in
"check: 1 passed, 0 failed, 3 skipped ("*) ok "the last line counts the 3 skips: $LAST" ;;
*) bad "last line: $(inner "$LAST")" ;;
esac
OUT=$LAST
contains "names the skipped cmocka test's binary" "unit/test_sk: 1 test(s)"
contains "names the tier that said SKIP, with its reason" "libvirt: /dev/kvm is not usable"
contains "names the tier that is missing" "kernel: no $T/tests/kernel/run.sh"

OUT=$(CI=true sh "$T/tests/run.sh" "$T/build" unit libvirt kernel 2>&1)
rc=$?
[ $rc -ne 0 ] && ok "under CI=true the skips fail the run (exit $rc)" || bad "CI=true passed: $(inner "$OUT")"
contains "and it says why" "CI runs every tier: what was skipped fails the run"
contains "counting them as failures" "check: 1 passed, 3 failed, 3 skipped"

# nothing skipped: the line stays as it was
rm "$T/tests/libvirt/run.sh"
printf 'echo "libvirt: 2 passed, 0 failed"\n' >"$T/tests/libvirt/run.sh"
OUT=$(CI=true sh "$T/tests/run.sh" "$T/build" libvirt 2>&1)
rc=$?
[ $rc -eq 0 ] && ok "a run with no skip passes under CI" || bad "exit $rc: $(inner "$OUT")"
LAST=$(printf '%s\n' "$OUT" | tail -1)
[ "$LAST" = "check: 2 passed, 0 failed" ] && ok "with the usual last line" || bad "last line: $(inner "$LAST")"
finish
