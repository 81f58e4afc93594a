#!/bin/sh
# hook.sh - the libvirt hook (deploy/libvirt-hook-qemu) as libvirt runs it,
# against the real vcpud: arguments DOMAIN OPERATION SUB-OPERATION -, the
# domain's XML on stdin. prepare begin admits a domain with vcpud's
# metadata (its <vcpu> count, the most it may run, and <memory>), again
# without booking twice,
# refuses one over quota or of an unknown tenant with vcpud's reason on
# stderr, lets a domain without metadata (or with another namespace's
# <tenant>) through untouched; release end releases; vcpud down: through
# with VCPUD_HOOK_ON_DOWN=open, refused with closed. The libvirt tier runs
# it under a real libvirtd (tests/libvirt/run.sh).
SUITE=e2e-hook
. "$(dirname "$0")/lib.sh"
trap 'stop_daemon; rm -rf "$TMP"' EXIT INT TERM
mkdir -p "$TMP/cgroup" "$TMP/etc/vcpud"
HOOK=$TMP/hook
sed -e "s|@BINDIR@|$BUILD|g" -e "s|@SYSCONFDIR@|$TMP/etc|g" "$SRC/deploy/libvirt-hook-qemu" >"$HOOK"
chmod 755 "$HOOK"
printf 'VCPUD_SOCKET=%s\nVCPUD_HOOK_TIMEOUT=5\n' "$SOCK" >"$TMP/etc/vcpud/libvirt-hook.conf"
command -v xmllint >/dev/null || bad "no xmllint (deploy/debian-packages.txt lists libxml2-utils)"

start_daemon || { bad "daemon starts"; finish; exit 1; }
ctl tenant create acme --vcpus 8 --memory 4G >/dev/null
ctl tenant create small --vcpus 1 >/dev/null

domxml() { # NAME VCPU-ELEMENT [METADATA]
	cat <<XML
<domain type='kvm' id='3'>
  <name>$1</name>
  <uuid>4f1b3c0e-7d1a-4b8e-9a51-0c6d3e2f1a$(printf '%02d' $((${#1} % 100)))</uuid>
  <metadata>
    ${3:-}
  </metadata>
  <memory unit='KiB'>131072</memory>
  <currentMemory unit='KiB'>131072</currentMemory>
  $2
  <os><type arch='x86_64' machine='pc-i440fx-7.2'>hvm</type></os>
  <devices><emulator>/usr/bin/qemu-system-x86_64</emulator></devices>
</domain>
XML
}
META_ACME='<vcpud:tenant xmlns:vcpud="urn:vcpud:1">acme</vcpud:tenant>'
# hook NAME OP SUB XML: runs it; $rc, $err (its stderr)
hook() {
	printf '%s\n' "$4" | "$HOOK" "$1" "$2" "$3" - >"$TMP/hook.out" 2>"$TMP/hook.err"
	rc=$?
	err=$(cat "$TMP/hook.err")
}
used() { ctl --json tenant show "$1" | sed -n 's/.*"vcpus_used": \([0-9]*\).*/\1/p'; }
# (check takes one command: these join the conditions of one check)
exit_and_used() { [ "$rc" = "$1" ] && [ "$(used acme)" = "$2" ]; } # RC ACME-VCPUS-USED
through_quietly() { [ "$rc" = 0 ] && [ -z "$err" ]; }
used_without() { [ "$(used acme)" = "$1" ] && ! ctl vm show "$2" >/dev/null 2>&1; } # N VM

hook web prepare begin "$(domxml web "<vcpu placement='static'>2</vcpu>" "$META_ACME")"
check "prepare begin: a domain of acme is admitted (exit 0)" [ "$rc" = 0 ]
check "... its 2 vCPUs count against acme" [ "$(used acme)" = 2 ]
OUT=$(ctl --json vm show web)
contains "... as an admitted VM with a placement and its memory" '"memory_bytes": 134217728'
hook web prepare begin "$(domxml web "<vcpu placement='static'>2</vcpu>" "$META_ACME")"
check "the same domain started again: admitted as before, booked once" exit_and_used 0 2
hook db prepare begin "$(domxml db "<vcpu placement='static' current='1'>4</vcpu>" \
	'<v:tenant xmlns:v="urn:vcpud:1"> acme </v:tenant>')"
check "current='1' of 4: 4 vCPUs admitted, room to hot-plug (any prefix, blanks trimmed)" \
	exit_and_used 0 6

hook big prepare begin "$(domxml big "<vcpu>2</vcpu>" '<vcpud:tenant xmlns:vcpud="urn:vcpud:1">small</vcpud:tenant>')"
check "over quota: exit 1" [ "$rc" = 1 ]
OUT=$err; contains "... with vcpud's reason on stderr" "vcpud refused domain big: vm big not admitted: tenant small: 0 of 1 vCPUs used, 2 requested"
check "... nothing admitted" [ "$(used small)" = 0 ]
hook ghost prepare begin "$(domxml ghost "<vcpu>1</vcpu>" '<vcpud:tenant xmlns:vcpud="urn:vcpud:1">nosuch</vcpud:tenant>')"
check "a tenant vcpud does not know: exit 1" [ "$rc" = 1 ]
OUT=$err; contains "... saying so" "nosuch"
hook 'bad name' prepare begin "$(domxml x "<vcpu>1</vcpu>" "$META_ACME")"
check "a domain name vcpud cannot take: refused (exit 1)" [ "$rc" = 1 ]

hook plain prepare begin "$(domxml plain "<vcpu>2</vcpu>")"
check "no vcpud metadata: never blocked (exit 0)" through_quietly
hook other prepare begin "$(domxml other "<vcpu>2</vcpu>" '<o:tenant xmlns:o="urn:other:1">acme</o:tenant><!-- urn:vcpud:1 -->')"
check "another namespace's <tenant>: not vcpud's (exit 0)" [ "$rc" = 0 ]
check "... neither admitted" used_without 6 plain
for op in "start begin" "started begin" "stopped end" "migrate begin" "restore begin" "reconnect begin"; do
	# shellcheck disable=SC2086
	hook big $op "$(domxml big "<vcpu>2</vcpu>" '<vcpud:tenant xmlns:vcpud="urn:vcpud:1">small</vcpud:tenant>')"
	[ "$rc" = 0 ] || bad "$op: exit $rc: $err"
done
ok "other operations are let through"

hook web release end "$(domxml web "<vcpu>2</vcpu>" "$META_ACME")"
check "release end: exit 0" [ "$rc" = 0 ]
check "... web's admission is released" used_without 4 web
hook web release end "$(domxml web "<vcpu>2</vcpu>" "$META_ACME")"
check "release end again: still exit 0" [ "$rc" = 0 ]
OUT=$(ctl events)
contains "the audit log has the hook's admission" "vm.admit       vm/db"

# vcpud down
stop_daemon
hook late prepare begin "$(domxml late "<vcpu>1</vcpu>" "$META_ACME")"
check "vcpud down, VCPUD_HOOK_ON_DOWN=open (the default): the domain starts (exit 0)" [ "$rc" = 0 ]
echo 'VCPUD_HOOK_ON_DOWN=closed' >>"$TMP/etc/vcpud/libvirt-hook.conf"
hook late prepare begin "$(domxml late "<vcpu>1</vcpu>" "$META_ACME")"
check "vcpud down, VCPUD_HOOK_ON_DOWN=closed: refused (exit 1)" [ "$rc" = 1 ]
OUT=$err; contains "... saying vcpud is unreachable" "vcpud is unreachable at $SOCK (VCPUD_HOOK_ON_DOWN=closed"
hook plain prepare begin "$(domxml plain "<vcpu>2</vcpu>")"
check "vcpud down, closed: a domain without metadata still starts" [ "$rc" = 0 ]
hook late release end "$(domxml late "<vcpu>1</vcpu>" "$META_ACME")"
check "vcpud down: release end exits 0 (libvirt goes on)" [ "$rc" = 0 ]
finish
