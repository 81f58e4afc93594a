#!/bin/sh
# service.sh - vcpud as an installed service (issue 12, item 6): `make
# install DESTDIR=` lays out the programs, the unit, the man pages, the
# bash completion, the OpenAPI document and the policies; the unit passes
# `systemd-analyze verify` (nothing is started); each man page renders
# with `man -l` without a warning; the completion completes commands,
# options and (from a live vcpud) names; the OpenAPI document passes the
# OpenAPI 3 schema and the real replies of a live vcpud pass its schemas;
# sd_notify: READY with a STATUS, a STATUS per tick, watchdog pings at
# half WatchdogSec, RELOADING/READY on SIGHUP, STOPPING at the end, the
# reason of a failed start, and a systemd that does not read its queue
# does not stop vcpud's loop; the database is not readable by others.
SUITE=e2e-service
. "$(dirname "$0")/lib.sh"
trap 'stop_daemon; rm -rf "$TMP"' EXIT INT TERM
mkdir "$TMP/cgroup"
R=$TMP/root

# --- make install ----------------------------------------------------------------
if make -s -C "$SRC" BUILD="$BUILD" man >"$TMP/make.out" 2>&1 &&
	make -s -C "$SRC" BUILD="$BUILD" INSTALL_DEPS= DESTDIR="$R" PREFIX=/usr install \
		>>"$TMP/make.out" 2>&1; then
	ok "make install DESTDIR=... PREFIX=/usr"
else
	bad "make install: $(tail -5 "$TMP/make.out")"
fi
for f in usr/sbin/vcpud usr/bin/vcpuctl usr/lib/systemd/system/vcpud.service \
	usr/lib/systemd/system/vcpud-tree.service usr/libexec/vcpud/vcpud-tree \
	usr/share/man/man8/vcpud.8 usr/share/man/man1/vcpuctl.1 usr/share/man/man5/vcpud-policy.5 \
	usr/share/bash-completion/completions/vcpuctl usr/share/vcpud/openapi.yaml \
	usr/share/vcpud/policies/default.yaml etc/vcpud/policy.yaml \
	etc/libvirt/hooks/qemu.d/vcpud; do
	check "installed: /$f" [ -s "$R/$f" ]
done
executables() {
	for f in usr/sbin/vcpud usr/bin/vcpuctl etc/libvirt/hooks/qemu.d/vcpud \
		usr/libexec/vcpud/vcpud-tree; do
		[ -x "$R/$f" ] || return 1
	done
}
check "the programs, the keeper and the hook are executable" executables
check "the unit names the installed vcpud" grep -q '^ExecStart=/usr/sbin/vcpud --foreground --policy /etc/vcpud/policy.yaml \\$' \
	"$R/usr/lib/systemd/system/vcpud.service"
check "vcpud's cgroup root is vcpud-tree.service's delegated group" grep -q \
	'^	--cgroup-root /sys/fs/cgroup/machine.slice/vcpud-tree.service/vms$' "$R/usr/lib/systemd/system/vcpud.service"
check "the tree unit runs the installed keeper" grep -q '^ExecStart=/usr/libexec/vcpud/vcpud-tree$' \
	"$R/usr/lib/systemd/system/vcpud-tree.service"
echo "# an installed policy is kept" >>"$R/etc/vcpud/policy.yaml"
make -s -C "$SRC" BUILD="$BUILD" INSTALL_DEPS= DESTDIR="$R" PREFIX=/usr install >/dev/null 2>&1
check "make install again keeps the installed policy" grep -q '^# an installed policy is kept' "$R/etc/vcpud/policy.yaml"

# --- the unit ------------------------------------------------------------------------
if command -v systemd-analyze >/dev/null; then
	# verify wants ExecStart to exist: the DESTDIR's binary stands in
	mkdir "$TMP/unit"
	sed "s|^ExecStart=/usr/sbin/vcpud|ExecStart=$R/usr/sbin/vcpud|" \
		"$R/usr/lib/systemd/system/vcpud.service" >"$TMP/unit/vcpud.service"
	sed "s|^ExecStart=/usr/libexec|ExecStart=$R/usr/libexec|" \
		"$R/usr/lib/systemd/system/vcpud-tree.service" >"$TMP/unit/vcpud-tree.service"
	out=$(MANPATH="$R/usr/share/man" systemd-analyze verify "$TMP/unit/vcpud.service" \
		"$TMP/unit/vcpud-tree.service" 2>&1)
	rc=$?
	if [ $rc = 0 ] && [ -z "$out" ]; then ok "systemd-analyze verify: no complaint"
	else bad "systemd-analyze verify (rc $rc): $out"; fi
	for k in Type=notify WatchdogSec= StateDirectoryMode=0750 UMask=0027 Requires=vcpud-tree.service; do
		check "vcpud.service has $k" grep -q "^$k" "$TMP/unit/vcpud.service"
	done
	check "vcpud.service delegates nothing (its group holds vcpud alone)" sh -c "! grep -q '^Delegate=' '$TMP/unit/vcpud.service'"
	for k in "Delegate=cpu cpuset memory" KillMode=process RefuseManualStop=yes Slice=machine.slice; do
		check "vcpud-tree.service has $k" grep -q "^$k" "$TMP/unit/vcpud-tree.service"
	done
else
	bad "no systemd-analyze (deploy/debian-packages.txt lists systemd)"
fi

# --- the man pages -------------------------------------------------------------------
for p in man8/vcpud.8 man1/vcpuctl.1 man5/vcpud-policy.5; do
	out=$(MANWIDTH=80 man --warnings -l "$R/usr/share/man/$p" 2>"$TMP/man.err")
	if [ -z "$(cat "$TMP/man.err")" ] && printf '%s' "$out" | grep -q '^NAME' &&
		[ "$(printf '%s\n' "$out" | wc -l)" -gt 40 ]; then
		ok "man -l $p renders without a warning"
	else
		bad "man -l $p: $(head -3 "$TMP/man.err")"
	fi
done
# every global option of vcpuctl --help is in vcpuctl(1)
MAN1=$(MANWIDTH=200 man -l "$R/usr/share/man/man1/vcpuctl.1" 2>/dev/null)
# every_in PAGE-TEXT WORDS...: the words the page lacks, or nothing
every_in() {
	_t=$1; shift
	for _w in "$@"; do case "$_t" in *"$_w"*) ;; *) printf ' %s' "$_w" ;; esac; done
}
# shellcheck disable=SC2046
miss=$(every_in "$MAN1" $("$VCPUCTL" --help | grep -o -- '--[a-z-]*' | sort -u))
check "vcpuctl(1) has every option of vcpuctl --help${miss:+ (lacks$miss)}" [ -z "$miss" ]
MAN8=$(MANWIDTH=200 man -l "$R/usr/share/man/man8/vcpud.8" 2>/dev/null)
# shellcheck disable=SC2046
miss=$(every_in "$MAN8" $("$VCPUD" --help | grep -o -- '--[a-z-]*' | sort -u))
check "vcpud(8) has every option of vcpud --help${miss:+ (lacks$miss)}" [ -z "$miss" ]
MAN5=$(MANWIDTH=200 man -l "$R/usr/share/man/man5/vcpud-policy.5" 2>/dev/null)
# shellcheck disable=SC2046
miss=$(every_in "$MAN5" $("$VCPUCTL" policy show --defaults | awk '/^[a-z_]+:$/ { s = $1; sub(":", "", s) } /^  [a-z_]+:/ { k = $1; sub(":", "", k); print s "." k }'))
check "vcpud-policy(5) has every key of the policy${miss:+ (lacks$miss)}" [ -z "$miss" ]

# --- sd_notify --------------------------------------------------------------------------
NOTIFY=$BUILD/fixtures/notifysock
"$NOTIFY" "$TMP/notify.sock" 30 >"$TMP/notify.out" 2>&1 &
np=$!
wait_for "the notify socket is bound" 50 [ -S "$TMP/notify.sock" ]
NOTIFY_SOCKET=$TMP/notify.sock WATCHDOG_USEC=1000000 start_daemon ||
	{ bad "vcpud starts under NOTIFY_SOCKET"; finish; exit 1; }
ctl tenant create acme --vcpus 8 >/dev/null
wait_for "READY=1 with a STATUS" 50 grep -q "^READY=1|STATUS=serving $SOCK" "$TMP/notify.out"
wait_for "STATUS per tick: VMs, tenants, the tick's duration" 50 \
	grep -q '^STATUS=0 VMs, 1 tenants; tick [0-9]* took [0-9.]* ms$' "$TMP/notify.out"
sleep 2.5
check "the watchdog is pinged every half WatchdogSec (4 or more in 2.5 s)" \
	[ "$(grep -c '^WATCHDOG=1$' "$TMP/notify.out")" -ge 4 ]
contains_log() { grep -q "$1" "$LOG"; }
check "vcpud says the watchdog's period" contains_log 'systemd watchdog: every 0.5 s'
kill -HUP "$DAEMON_PID"
wait_for "SIGHUP: RELOADING=1, then READY=1" 50 grep -q '^READY=1|STATUS=reloaded$' "$TMP/notify.out"
check "... RELOADING=1 came first" sh -c "grep -n 'RELOADING=1\|STATUS=reloaded' '$TMP/notify.out' | head -1 | grep -q RELOADING"
stop_daemon
wait $np
check "STOPPING=1 at the end" grep -q '^STOPPING=1' "$TMP/notify.out"
check "the database is not readable by others" [ "$(( $(stat -c %a "$DB") % 10 ))" = 0 ]
# a failed start says why
"$NOTIFY" "$TMP/notify.sock" 10 >"$TMP/notify2.out" 2>&1 &
np=$!
wait_for "the notify socket is bound again" 50 [ -S "$TMP/notify.sock" ]
NOTIFY_SOCKET=$TMP/notify.sock "$VCPUD" --foreground --db "$DB" --socket "$SOCK" \
	--cgroup-root "$TMP/cgroup" --host-root "$HOST" --dry-run --policy "$TMP/nosuch.yaml" \
	>/dev/null 2>&1
wait_for "a failed start: STATUS=failed to start: the reason" 30 \
	grep -q '^STATUS=failed to start: cannot load the policy' "$TMP/notify2.out"
kill $np 2>/dev/null
wait $np 2>/dev/null

# a PID 1 that does not read: its queue fills (max_dgram_qlen, 10 by
# default) within a second of pings every 50 ms; vcpud's loop must not wait
"$NOTIFY" "$TMP/notify.sock" 15 stall >"$TMP/notify3.out" 2>&1 &
np=$!
wait_for "a stalled notify socket is bound" 50 [ -S "$TMP/notify.sock" ]
NOTIFY_SOCKET=$TMP/notify.sock WATCHDOG_USEC=100000 start_daemon ||
	{ bad "vcpud starts under a stalled NOTIFY_SOCKET"; finish; exit 1; }
sleep 2
t1=$(ctl --json status | sed -n 's/.*"ticks": \([0-9]*\).*/\1/p')
sleep 2.2
t2=$(ctl --timeout 2 --json status | sed -n 's/.*"ticks": \([0-9]*\).*/\1/p')
# a tick a second: 2 or more by 2 s after the start, 2 more 2.2 s later
ticking() { [ -n "$t1" ] && [ -n "$t2" ] && [ "$t1" -ge 2 ] && [ "$t2" -ge $((t1 + 2)) ]; }
check "systemd not reading its queue: ticks go on and the API answers ($t1 -> $t2 ticks)" ticking
stop_daemon
kill $np 2>/dev/null
wait $np 2>/dev/null

# --- a live vcpud for the completion and the OpenAPI checks -----------------------
start_daemon || { bad "vcpud restarts"; finish; exit 1; }
start_fake "$TMP/web.out" --vcpus 2 --idle || bad "fakevm starts"
ctl vm register web --tenant acme --pid "$FPID" >/dev/null || bad "register web"
ctl vm admit db --tenant acme --vcpus 2 >/dev/null || bad "admit db"
sleep 1.5

# --- bash completion -------------------------------------------------------------------
BC=/usr/share/bash-completion/bash_completion
if [ -r "$BC" ] && command -v bash >/dev/null; then
	comp() { # WORDS...: what completing the last word offers
		PATH=$BUILD:$PATH bash -c '. "$1"; . "$2"; shift 2
			COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); COMP_LINE="$*"
			COMP_POINT=${#COMP_LINE}; _vcpuctl; echo "${COMPREPLY[*]}"' \
			comp "$BC" "$R/usr/share/bash-completion/completions/vcpuctl" vcpuctl "$@"
	}
	check "completes commands: te -> tenant" [ "$(comp te)" = tenant ]
	check "completes subcommands: vm ad -> admit" [ "$(comp vm ad)" = admit ]
	check "completes options: vm admit --thr -> --thread-policy" [ "$(comp vm admit --thr)" = --thread-policy ]
	check "completes values: --cpu-policy d -> dedicated" [ "$(comp vm admit x --cpu-policy d)" = dedicated ]
	check "completes global options: --to -> --token-file" [ "$(comp --to)" = --token-file ]
	check "completes tenant names from vcpud: tenant show a -> acme" \
		[ "$(comp --socket "$SOCK" tenant show a)" = acme ]
	check "completes VM names from vcpud: vm show w -> web" [ "$(comp --socket "$SOCK" vm show w)" = web ]
	check "completes VM names to explain: explain w -> web" [ "$(comp --socket "$SOCK" explain w)" = web ]
	check "completes vm set's option: vm set web --w -> --weight" [ "$(comp vm set web --w)" = --weight ]
else
	bad "no bash-completion (deploy/debian-packages.txt lists it)"
fi

# --- OpenAPI ----------------------------------------------------------------------------
if perl -MJSON::Validator::Schema::OpenAPIv3 -MYAML::XS -e 1 2>/dev/null; then
	# spec_errors DOC: what the OpenAPI 3 schema finds wrong in DOC
	spec_errors() {
		perl -MJSON::Validator::Schema::OpenAPIv3 -e '
			my $s = JSON::Validator::Schema::OpenAPIv3->new($ARGV[0]);
			print "$_\n" for @{$s->errors}' "$1" 2>&1
	}
	# reply_errors METHOD PATH STATUS FILE: what the installed document
	# finds wrong in FILE as the reply to METHOD PATH with STATUS
	reply_errors() {
		perl -MJSON::Validator::Schema::OpenAPIv3 -MJSON::PP -e '
			my ($doc, $m, $p, $st, $file) = @ARGV;
			local $/; open my $fh, "<", $file or die "$file: $!";
			my $data = JSON::PP->new->decode(<$fh>);
			my $s = JSON::Validator::Schema::OpenAPIv3->new($doc);
			my %res = (body => sub { { exists => 1, value => $data,
						  content_type => "application/json" } });
			print "$_\n" for $s->validate_response([$m, $p, $st], \%res)' \
			"$R/usr/share/vcpud/openapi.yaml" "$@" 2>&1
	}
	out=$(spec_errors "$R/usr/share/vcpud/openapi.yaml")
	if [ -z "$out" ]; then ok "openapi.yaml passes the OpenAPI 3.0 schema"
	else bad "openapi.yaml: $out"; fi
	# a document with a mistake is caught (the validator validates)
	sed 's/^  version: .*//' "$SRC/deploy/openapi.yaml" >"$TMP/bad.yaml"
	out=$(spec_errors "$TMP/bad.yaml")
	contains_out() { case "$out" in *"$1"*) return 0 ;; esac; return 1; }
	check "... and a document without info.version does not" contains_out '/info/version'
	# the live replies against the document's schemas
	q() { curl -s --unix-socket "$SOCK" "http://localhost$1"; }
	q /v1/health >"$TMP/health.json"
	q /v1/tenants/acme >"$TMP/tenant.json"
	q /v1/vms >"$TMP/vms.json"
	q /v1/vms/web >"$TMP/vm.json"
	q /v1/vms/web/explain >"$TMP/explain.json"
	curl -s --unix-socket "$SOCK" -X PATCH -H 'Content-Type: application/json' \
		-d '{"weight":250}' http://localhost/v1/vms/web >"$TMP/patch.json"
	q /v1/host >"$TMP/host.json"
	q /v1/top >"$TMP/top.json"
	q '/v1/events?limit=5' >"$TMP/events.json"
	q /v1/tenants/nosuch >"$TMP/error.json"
	ctl --json vm admit db --tenant acme --vcpus 2 >"$TMP/res.json"
	for r in "get /v1/health 200 health" "get /v1/tenants/{name} 200 tenant" \
		"get /v1/vms 200 vms" "get /v1/vms/{name} 200 vm" "get /v1/host 200 host" \
		"get /v1/vms/{name}/explain 200 explain" "patch /v1/vms/{name} 200 patch" \
		"get /v1/top 200 top" "get /v1/events 200 events" \
		"get /v1/tenants/{name} 404 error" "post /v1/vms/admit 200 res"; do
		# shellcheck disable=SC2086
		set -- $r
		out=$(reply_errors "$1" "$2" "$3" "$TMP/$4.json")
		if [ -z "$out" ]; then ok "a live reply to $1 $2 ($3) fits the document"
		else bad "$1 $2 $3 reply: $out"; fi
	done
	# and a reply that does not fit is caught
	echo '{"status":"fine"}' >"$TMP/wrong.json"
	out=$(reply_errors get /v1/health 200 "$TMP/wrong.json")
	check "... and a reply that does not fit is caught" contains_out '/body/status'
else
	bad "no JSON::Validator (deploy/debian-packages.txt lists libjson-validator-perl)"
fi
cleanup_fakes
finish
