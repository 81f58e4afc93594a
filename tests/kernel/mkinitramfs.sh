#!/bin/sh
# mkinitramfs.sh - pack the initramfs the real-kernel test tier boots.
#
# Usage: mkinitramfs.sh [OUT]   (default $VCPUD_BUILD/kernel-test/initramfs.cpio.gz)
# OUT ending in .zst is compressed with zstd (unpacks about 1.5 s faster than
# gzip in a TCG guest), anything else with gzip.
# Contents (guest paths mirror the repository, so VCPUD_BUILD=/vcpud/build and
# VCPUD_SRC=/vcpud in the guest):
#   /init                          tests/kernel/init.sh
#   /bin/busybox + applet links    busybox-static (any busybox; libs follow ldd)
#   /vcpud/build/{vcpud,vcpuctl}   if built
#   /vcpud/build/fixtures/*        every built fixture
#   /vcpud/tests/kernel/{lib.sh,scenarios/*.sh}, /vcpud/policies/*.yaml,
#   /vcpud/deploy/vcpud-tree
#   every library `ldd` names for those binaries, the loader included
# No kernel modules: cgroup2, cpu, cpuset and memcg are built into Debian's
# kernel. Timestamps, owners and order are fixed, so the same inputs give the
# same bytes. Prints the output path.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
src=${VCPUD_SRC:-$(cd "$here/../.." && pwd)}
build=${VCPUD_BUILD:-$src/build}
out=${1:-$build/kernel-test/initramfs.cpio.gz}
case "$out" in /*) ;; *) out=$(pwd)/$out ;; esac
root=${out%.*}.root
case "$out" in
*.zst) compress="zstd -q -3 -T0 -c" ;;
*) compress="gzip -n -1 -c" ;;
esac

say() { echo "mkinitramfs: $*" >&2; }

busybox=${VCPUD_BUSYBOX:-$(command -v busybox || true)}
if [ -z "$busybox" ] || [ ! -x "$busybox" ]; then
	say "no busybox; install busybox-static (deploy/debian-packages.txt)"
	exit 1
fi
for tool in cpio ldd ${compress%% *}; do
	command -v "$tool" >/dev/null || { say "no $tool"; exit 1; }
done

mkdir -p "$(dirname "$out")"
rm -rf "$root"
for d in bin sbin usr/bin usr/sbin proc sys dev tmp root etc run \
	vcpud/build/fixtures vcpud/tests/kernel/scenarios vcpud/policies vcpud/deploy; do
	mkdir -p "$root/$d"
done

# copy_lib PATH: a shared library at the same path, symlinks resolved
copy_lib() {
	[ -e "$root$1" ] && return 0
	mkdir -p "$root$(dirname "$1")"
	cp -L "$1" "$root$1"
}

# copy_bin SRC DEST: a program and every library ldd names for it
copy_bin() {
	cp -L "$1" "$root$2"
	# "libx.so.1 => /lib/.../libx.so.1 (0x...)" and "/lib64/ld-linux-x86-64.so.2 (0x...)";
	# a static program makes ldd fail ("not a dynamic executable")
	libs=$(ldd "$1" 2>/dev/null | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }') || true
	for l in $libs; do
		copy_lib "$l"
	done
}

copy_bin "$busybox" /bin/busybox
"$busybox" --list-full | while read -r applet; do
	[ "$applet" = bin/busybox ] && continue
	mkdir -p "$root/$(dirname "$applet")"
	ln -s /bin/busybox "$root/$applet"
done

have=""
for b in vcpud vcpuctl; do
	if [ -f "$build/$b" ] && [ -x "$build/$b" ]; then
		copy_bin "$build/$b" "/vcpud/build/$b"
		have="$have $b"
	else
		have="$have (no $b)"
	fi
done
for b in "$build"/fixtures/*; do
	[ -f "$b" ] && [ -x "$b" ] || continue
	copy_bin "$b" "/vcpud/build/fixtures/$(basename "$b")"
	have="$have fixtures/$(basename "$b")"
done

cp "$here/init.sh" "$root/init"
chmod 0755 "$root/init"
cp "$here/lib.sh" "$root/vcpud/tests/kernel/lib.sh"
for f in "$here"/scenarios/*.sh; do
	[ -f "$f" ] && cp "$f" "$root/vcpud/tests/kernel/scenarios/"
done
for f in "$src"/policies/*.yaml; do
	[ -f "$f" ] && cp "$f" "$root/vcpud/policies/"
done
# the keeper of the systemd layout (scenario 23-systemd-tree)
cp "$src/deploy/vcpud-tree" "$root/vcpud/deploy/vcpud-tree"

printf 'root:x:0:0:root:/root:/bin/sh\n' > "$root/etc/passwd"
printf 'root:x:0:\n' > "$root/etc/group"
printf 'hosts: files\npasswd: files\ngroup: files\n' > "$root/etc/nsswitch.conf"
printf '127.0.0.1 localhost vcpud-test\n' > "$root/etc/hosts"

# reproducible: fixed times and owners, sorted names, no gzip timestamp
find "$root" -exec touch -h -d @0 {} +
(cd "$root" && find . -mindepth 1 | LC_ALL=C sort |
	cpio -o -H newc -R 0:0 --reproducible --quiet) | $compress > "$out.tmp"
mv "$out.tmp" "$out"
say "$(du -k "$out" | cut -f1) KiB:$have"
echo "$out"
