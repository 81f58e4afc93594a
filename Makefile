# vcpud - cgroup-v2 multi-tenant vCPU resource manager.
#
#   make                  build build/vcpud and build/vcpuctl
#   make check            install missing Debian packages (as root), build,
#                         run every test tier (unit, end-to-end, fleet, kernel, libvirt)
#   make demo             the main job: noisy-neighbour throttling live in a
#                         real kernel (QEMU sandbox), ends by itself
#   make demo-fleet       three hosts sharing one tenant's quota through etcd
#   make run              vcpud in the foreground on ./run/ (no cgroups)
#   make bench-scale      vcpud's costs with 100, 500, 1000 idle fake VMs
#                         (SCALE_N="100 500" SCALE_VCPUS=8; long)
#   make bench-scale-kernel  the same in real mode in the kernel sandbox
#   make fuzz FUZZ_S=60   each parser under libFuzzer for 60 s (clang)
#   make SANITIZE=address,undefined check
#   make install PREFIX=/usr DESTDIR=/tmp/pkg

PREFIX  ?= /usr/local
BINDIR  ?= $(PREFIX)/bin
SBINDIR ?= $(PREFIX)/sbin
DATADIR ?= $(PREFIX)/share/vcpud
SYSCONFDIR ?= /etc
MANDIR  ?= $(PREFIX)/share/man
BASHCOMPDIR ?= $(PREFIX)/share/bash-completion/completions
UNITDIR ?= $(PREFIX)/lib/systemd/system
LIBEXECDIR ?= $(PREFIX)/libexec/vcpud
DESTDIR ?=

CC      ?= cc
BUILD   ?= build
SANITIZE ?=
WERROR  ?=
ifeq ($(CI),true)
WERROR  := -Werror
endif

# libvirt: headers only; src/discover/libvirt.c loads it with dlopen() when
# a backend first needs it (a --no-libvirt vcpud maps none of its libraries)
PKGS := sqlite3 yaml-0.1 libmicrohttpd jansson libcgroup gnutls libsystemd
PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS) libcurl libvirt libvirt-qemu 2>/dev/null)
PKG_LIBS   = $(shell pkg-config --libs $(PKGS) 2>/dev/null)

WARN := -std=gnu11 -Wall -Wextra -Wshadow -Wstrict-prototypes \
	-Wmissing-prototypes -Wformat=2 -Wvla -Wimplicit-fallthrough
CFLAGS ?= -O2 -g
ALL_CFLAGS = $(WARN) $(WERROR) $(CFLAGS) -D_GNU_SOURCE -Iinclude -Isrc \
	$(PKG_CFLAGS) -MMD -MP
ALL_LDFLAGS = $(LDFLAGS)
ifneq ($(SANITIZE),)
ALL_CFLAGS  += -fsanitize=$(SANITIZE) -fno-omit-frame-pointer -fno-sanitize-recover=all
ALL_LDFLAGS += -fsanitize=$(SANITIZE)
endif
LIBS = $(PKG_LIBS) -lm

# Library modules (everything but the two main()s), in dependency order.
MODULES := common store policy cgroup topology discover plan sample throttle registry api
LIB_SRCS := $(filter-out %.bpf.c,$(foreach m,$(MODULES),$(wildcard src/$(m)/*.c)))
# the fleet ledger (etcd over libcurl) is the daemon's alone: vcpuctl does
# not link libcurl
DAEMON_SRCS := $(filter-out src/daemon/main.c,$(wildcard src/daemon/*.c)) $(wildcard src/fleet/*.c)
DAEMON_LIBS = $(shell pkg-config --libs libcurl 2>/dev/null)
CLI_SRCS := $(filter-out src/cli/main.c,$(wildcard src/cli/*.c))
GEN_SCHEMA := $(BUILD)/gen/schema.c

LIB_OBJS := $(LIB_SRCS:%.c=$(BUILD)/obj/%.o) $(BUILD)/obj/gen/schema.o
DAEMON_OBJS := $(DAEMON_SRCS:%.c=$(BUILD)/obj/%.o)
CLI_OBJS := $(CLI_SRCS:%.c=$(BUILD)/obj/%.o)

TEST_SRCS := $(wildcard tests/unit/test_*.c)
TEST_BINS := $(TEST_SRCS:tests/unit/%.c=$(BUILD)/tests/%)
FIXTURE_SRCS := $(wildcard tests/fixtures/*.c)
FIXTURE_BINS := $(FIXTURE_SRCS:tests/fixtures/%.c=$(BUILD)/fixtures/%)
FUZZ_SRCS := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_BINS := $(FUZZ_SRCS:tests/fuzz/%.c=$(BUILD)/fuzz/%)
BENCH_SRCS := $(filter-out %.bpf.c,$(wildcard tests/bench/*.c))
BENCH_BINS := $(BENCH_SRCS:tests/bench/%.c=$(BUILD)/bench/%)

.PHONY: all man check deps run demo demo-fleet install uninstall clean unit e2e kernel bench bench-scale bench-scale-kernel tests fuzz fuzz-bins
all: $(BUILD)/vcpud $(BUILD)/vcpuctl $(FIXTURE_BINS)

# Rebuild everything when the flags change (e.g. SANITIZE= on and off).
FLAGS_STAMP := $(BUILD)/.flags
$(FLAGS_STAMP): FORCE
	@mkdir -p $(BUILD)
	@echo '$(CC) $(ALL_CFLAGS) $(ALL_LDFLAGS)' | cmp -s - $@ || echo '$(CC) $(ALL_CFLAGS) $(ALL_LDFLAGS)' > $@
FORCE:

$(GEN_SCHEMA): $(sort $(wildcard schema/*.sql)) src/store/gen-schema.sh
	@mkdir -p $(dir $@)
	sh src/store/gen-schema.sh $(sort $(wildcard schema/*.sql)) > $@.tmp && mv $@.tmp $@

$(BUILD)/obj/gen/schema.o: $(GEN_SCHEMA) $(FLAGS_STAMP)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -c $< -o $@

$(BUILD)/obj/%.o: %.c $(FLAGS_STAMP)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -c $< -o $@

$(BUILD)/libvcpud.a: $(LIB_OBJS)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/libvcpudd.a: $(DAEMON_OBJS)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/libvcpuctl.a: $(CLI_OBJS)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/vcpud: $(BUILD)/obj/src/daemon/main.o $(BUILD)/libvcpudd.a $(BUILD)/libvcpud.a
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LIBS) $(DAEMON_LIBS)

$(BUILD)/vcpuctl: $(BUILD)/obj/src/cli/main.o $(BUILD)/libvcpuctl.a $(BUILD)/libvcpud.a
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LIBS)

$(BUILD)/tests/%: $(BUILD)/obj/tests/unit/%.o $(BUILD)/libvcpudd.a $(BUILD)/libvcpuctl.a $(BUILD)/libvcpud.a
	@mkdir -p $(dir $@)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LIBS) $(DAEMON_LIBS) -lcmocka
# test_libvirt also drives libvirt itself (defines domains on test:///)
$(BUILD)/tests/test_libvirt: LIBS += $(shell pkg-config --libs libvirt libvirt-qemu 2>/dev/null)

$(BUILD)/fixtures/%: $(BUILD)/obj/tests/fixtures/%.o
	@mkdir -p $(dir $@)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ -lpthread

# libFuzzer targets (make fuzz builds them with clang in build-fuzz)
$(BUILD)/fuzz/%: $(BUILD)/obj/tests/fuzz/%.o $(BUILD)/libvcpudd.a $(BUILD)/libvcpuctl.a $(BUILD)/libvcpud.a
	@mkdir -p $(dir $@)
	$(CC) $(ALL_LDFLAGS) -fsanitize=fuzzer -o $@ $^ $(LIBS) $(DAEMON_LIBS)
$(BUILD)/obj/tests/fuzz/fuzz_api.o: ALL_CFLAGS += -DFUZZ_SRC_DIR='"$(CURDIR)"'
fuzz-bins: $(FUZZ_BINS)

$(BUILD)/bench/%: $(BUILD)/obj/tests/bench/%.o $(BUILD)/libvcpud.a
	@mkdir -p $(dir $@)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LIBS) -lpthread

# The sampler's BPF path (src/sample/sampler_bpf.c, a task iterator per VM
# process) and bench_sampler's BPF mode, built when clang, bpftool and
# libbpf are there (make deps installs them); without them vcpud reads
# schedstat files only, and says so. Each BPF object is compiled for any
# kernel with BTF (CO-RE) and embedded by a bpftool skeleton (sched_bytid:
# the bench's figures by tid, on kernels whose syscall programs have
# bpf_task_from_pid).
BPF_CLANG ?= clang
BPFTOOL ?= bpftool
HAVE_BPF := $(shell command -v $(BPF_CLANG) >/dev/null 2>&1 && \
	command -v $(BPFTOOL) >/dev/null 2>&1 && pkg-config --exists libbpf && echo 1)
ifeq ($(HAVE_BPF),1)
BPF_ARCH_INC := /usr/include/$(shell $(CC) -print-multiarch 2>/dev/null)
BPF_OBJ_FLAGS = -target bpf -g -O2 -Wall -I$(BPF_ARCH_INC) -Isrc
.PRECIOUS: $(BUILD)/gen/%.bpf.o
$(BUILD)/gen/%.bpf.o: tests/bench/%.bpf.c src/sample/sched_task.bpf.h
	@mkdir -p $(dir $@)
	$(BPF_CLANG) $(BPF_OBJ_FLAGS) -c $< -o $@
$(BUILD)/gen/vcpu_iter.bpf.o: src/sample/vcpu_iter.bpf.c src/sample/sched_task.bpf.h
	@mkdir -p $(dir $@)
	$(BPF_CLANG) $(BPF_OBJ_FLAGS) -c $< -o $@
$(BUILD)/gen/%.skel.h: $(BUILD)/gen/%.bpf.o
	$(BPFTOOL) gen skeleton $< name $* > $@.tmp && mv $@.tmp $@
$(BUILD)/obj/src/sample/sampler_bpf.o: $(BUILD)/gen/vcpu_iter.skel.h
$(BUILD)/obj/src/sample/sampler_bpf.o: ALL_CFLAGS += -DVCPUD_BPF -I$(BUILD)/gen
LIBS += $(shell pkg-config --libs libbpf)
$(BUILD)/obj/tests/bench/bench_sampler.o: $(BUILD)/gen/sched_iter.skel.h \
	$(BUILD)/gen/sched_bytid.skel.h
$(BUILD)/obj/tests/bench/bench_sampler.o: ALL_CFLAGS += -DHAVE_BPF -I$(BUILD)/gen
endif

# the sampler's BPF file as a build without clang/bpftool/libbpf makes it:
# compiled at every `make tests`, so that its stubs keep up with the API
$(BUILD)/obj/nobpf/sampler_bpf.o: src/sample/sampler_bpf.c src/sample/sampler_bpf.h
	@mkdir -p $(dir $@)
	$(CC) $(filter-out -DVCPUD_BPF,$(ALL_CFLAGS)) -c $< -o $@

tests: all $(TEST_BINS) $(BUILD)/obj/nobpf/sampler_bpf.o

# Set-up: the Debian packages in deploy/debian-packages.txt.
deps:
	@sh deploy/install-deps.sh

# The README's test command: every tier, one summary line at the end.
check: deps
	@$(MAKE) --no-print-directory tests
	@sh tests/run.sh $(BUILD)

# Three vcpud hosts sharing one tenant's quota through a real etcd cluster
# (loopback, dry-run): about 15 s, ends by itself.
demo-fleet: deps all
	@sh tests/fleet/demo.sh $(BUILD)

unit: tests
	@sh tests/run.sh $(BUILD) unit

e2e: tests
	@sh tests/run.sh $(BUILD) e2e

kernel: tests
	@sh tests/run.sh $(BUILD) kernel

bench: all $(BENCH_BINS)
	@for b in $(BENCH_BINS); do echo "== $$b"; $$b || exit 1; done
	@for s in $(filter-out tests/bench/scale.sh,$(wildcard tests/bench/*.sh)); do echo "== $$s"; \
		VCPUD_BUILD=$(abspath $(BUILD)) sh $$s || exit 1; done

# Scale: vcpud with hundreds to a thousand idle fake VMs (registration rate,
# tick cost, syscalls, memory, log growth, API latency); tens of minutes.
bench-scale: all
	@VCPUD_BUILD=$(abspath $(BUILD)) sh tests/bench/scale.sh

# the same in real mode, on the kernel sandbox's cgroup v2 tree (an 8-CPU
# guest: about the most 8-vCPU VMs it admits); figures in TCG
# The parsers under libFuzzer (tests/fuzz/): each target for FUZZ_S seconds,
# built with clang, ASan and UBSan in build-fuzz; execs and crashes per
# target. CI runs FUZZ_S=20.
FUZZ_S ?= 60
FUZZ_BUILD ?= build-fuzz
fuzz: deps
	@$(MAKE) --no-print-directory BUILD=$(FUZZ_BUILD) CC=clang WERROR= \
		SANITIZE=address,undefined,fuzzer-no-link fuzz-bins
	@sh tests/fuzz/run.sh $(FUZZ_BUILD) $(FUZZ_S)

bench-scale-kernel: tests
	@VCPUD_QEMU_SMP=8 sh tests/kernel/run.sh --show bench-scale

# The main job: boot the real-kernel sandbox and show vcpud catching a noisy
# neighbour (tests/kernel/scenarios/20-throttle.sh, printed live).
demo: deps
	@$(MAKE) --no-print-directory all
	@sh tests/kernel/run.sh --show 20-throttle
	@sh tests/kernel/demo-plot.sh $(BUILD)/kernel-test $(BUILD)/demo/throttle.png

# vcpud in the foreground on an SQLite file and a socket under ./run/,
# touching no cgroups (--dry-run): try the CLI and the API by hand.
RUNDIR ?= $(CURDIR)/run
run: deps
	@$(MAKE) --no-print-directory all
	@mkdir -p $(RUNDIR)
	@# the default policy keeps CPUs 0-1 for the host: on a machine with
	@# fewer than 4 CPUs that leaves too small a shared pool (a VM gets at
	@# most one shared pCPU per vCPU), so run without a housekeeping pool there
	@if [ "$$(getconf _NPROCESSORS_ONLN)" -lt 4 ]; then \
		sed 's/^  housekeeping_cpus: .*/  housekeeping_cpus: ""/' policies/default.yaml > $(RUNDIR)/policy.yaml; \
	else cp policies/default.yaml $(RUNDIR)/policy.yaml; fi
	@echo "vcpud: database $(RUNDIR)/vcpud.db, socket $(RUNDIR)/vcpud.sock, policy $(RUNDIR)/policy.yaml"
	@echo "try:   build/vcpuctl --socket $(RUNDIR)/vcpud.sock tenant create acme --vcpus 8"
	$(BUILD)/vcpud --foreground --db $(RUNDIR)/vcpud.db --socket $(RUNDIR)/vcpud.sock \
		--policy $(RUNDIR)/policy.yaml --cgroup-root $(RUNDIR)/cgroup --dry-run

# man pages: scdoc(1) sources in deploy/man
MAN_SRCS := $(wildcard deploy/man/*.scd)
MAN_PAGES := $(MAN_SRCS:deploy/man/%.scd=$(BUILD)/man/%)
$(BUILD)/man/%: deploy/man/%.scd
	@mkdir -p $(dir $@)
	scdoc < $< > $@.tmp && mv $@.tmp $@
man: $(MAN_PAGES)

# Everything a host needs: the two programs, the unit, the man pages, the
# bash completion, the libvirt hook, the policies (the installed policy
# is never overwritten), the OpenAPI document.
# (tests/e2e/service.sh installs an existing build: INSTALL_DEPS=)
INSTALL_DEPS ?= all man
install: $(INSTALL_DEPS)
	install -d $(DESTDIR)$(SBINDIR) $(DESTDIR)$(BINDIR) $(DESTDIR)$(DATADIR)/policies \
		$(DESTDIR)$(SYSCONFDIR)/vcpud $(DESTDIR)$(UNITDIR) $(DESTDIR)$(BASHCOMPDIR) \
		$(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(MANDIR)/man5 $(DESTDIR)$(MANDIR)/man8 \
		$(DESTDIR)$(LIBEXECDIR)
	install -m 0755 $(BUILD)/vcpud $(DESTDIR)$(SBINDIR)/vcpud
	install -m 0755 $(BUILD)/vcpuctl $(DESTDIR)$(BINDIR)/vcpuctl
	install -m 0644 policies/*.yaml $(DESTDIR)$(DATADIR)/policies/
	install -m 0644 deploy/openapi.yaml $(DESTDIR)$(DATADIR)/openapi.yaml
	test -e $(DESTDIR)$(SYSCONFDIR)/vcpud/policy.yaml || \
		install -m 0644 policies/default.yaml $(DESTDIR)$(SYSCONFDIR)/vcpud/policy.yaml
	sed 's|@SBINDIR@|$(SBINDIR)|g; s|@SYSCONFDIR@|$(SYSCONFDIR)|g' deploy/vcpud.service.in \
		> $(DESTDIR)$(UNITDIR)/vcpud.service
	sed 's|@LIBEXECDIR@|$(LIBEXECDIR)|g' deploy/vcpud-tree.service.in \
		> $(DESTDIR)$(UNITDIR)/vcpud-tree.service
	chmod 0644 $(DESTDIR)$(UNITDIR)/vcpud.service $(DESTDIR)$(UNITDIR)/vcpud-tree.service
	sed 's|@LIBEXECDIR@|$(LIBEXECDIR)|g' deploy/vcpud-tree > $(DESTDIR)$(LIBEXECDIR)/vcpud-tree
	chmod 0755 $(DESTDIR)$(LIBEXECDIR)/vcpud-tree
	install -m 0644 deploy/bash-completion/vcpuctl $(DESTDIR)$(BASHCOMPDIR)/vcpuctl
	install -d $(DESTDIR)$(SYSCONFDIR)/libvirt/hooks/qemu.d
	sed 's|@BINDIR@|$(BINDIR)|g; s|@SYSCONFDIR@|$(SYSCONFDIR)|g' deploy/libvirt-hook-qemu \
		> $(DESTDIR)$(SYSCONFDIR)/libvirt/hooks/qemu.d/vcpud
	chmod 0755 $(DESTDIR)$(SYSCONFDIR)/libvirt/hooks/qemu.d/vcpud
	install -m 0644 $(BUILD)/man/vcpuctl.1 $(DESTDIR)$(MANDIR)/man1/vcpuctl.1
	install -m 0644 $(BUILD)/man/vcpud-policy.5 $(DESTDIR)$(MANDIR)/man5/vcpud-policy.5
	install -m 0644 $(BUILD)/man/vcpud.8 $(DESTDIR)$(MANDIR)/man8/vcpud.8

uninstall:
	rm -f $(DESTDIR)$(SBINDIR)/vcpud $(DESTDIR)$(BINDIR)/vcpuctl \
		$(DESTDIR)$(UNITDIR)/vcpud.service $(DESTDIR)$(UNITDIR)/vcpud-tree.service \
		$(DESTDIR)$(LIBEXECDIR)/vcpud-tree $(DESTDIR)$(BASHCOMPDIR)/vcpuctl \
		$(DESTDIR)$(MANDIR)/man1/vcpuctl.1 $(DESTDIR)$(MANDIR)/man5/vcpud-policy.5 \
		$(DESTDIR)$(MANDIR)/man8/vcpud.8 $(DESTDIR)$(SYSCONFDIR)/libvirt/hooks/qemu.d/vcpud
	rm -rf $(DESTDIR)$(DATADIR)

clean:
	rm -rf $(BUILD)

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)
