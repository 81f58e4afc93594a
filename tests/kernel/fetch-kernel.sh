#!/bin/sh
# fetch-kernel.sh - obtain the Debian kernel the real-kernel test tier boots.
#
# Downloads linux-image-<version>-amd64 with `apt-get download` (nothing is
# installed on the host) and unpacks it with `dpkg-deb -x` into a cache dir:
#   $DIR/vmlinuz            the kernel image
#   $DIR/modules/           its /lib/modules/<version> tree
#   $DIR/version            the kernel release, e.g. 6.1.0-56-amd64
#   $DIR/vmlinux            the uncompressed ELF kernel, if it can be had
# QEMU boots vmlinux directly through its PVH entry (CONFIG_PVH), which saves
# the 8-10 s the bzImage spends decompressing itself (xz) under TCG.
# DIR is $VCPUD_KERNEL_DIR, else $VCPUD_BUILD/kernel, else <repo>/build/kernel.
# Idempotent: once $DIR/version exists, it only prints the image's path.
# Env: VCPUD_KERNEL_PKG=linux-image-X-amd64 picks a package instead of the one
# the linux-image-amd64 metapackage depends on.
# Prints the image to boot on stdout (vmlinux, else vmlinuz); progress goes to
# stderr.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
src=${VCPUD_SRC:-$(cd "$here/../.." && pwd)}
build=${VCPUD_BUILD:-$src/build}
dir=${VCPUD_KERNEL_DIR:-$build/kernel}

say() { echo "fetch-kernel: $*" >&2; }

# vmlinux_extract: $dir/vmlinux from $dir/vmlinuz. The bzImage header gives
# setup_sects (0x1f1) and payload_offset/length (0x248/0x24c, from the start of
# the protected-mode code); Debian compresses the payload with xz, which is
# followed by 4 bytes of size (hence --single-stream).
vmlinux_extract() {
	k=$dir/vmlinuz
	grep -q '^CONFIG_PVH=y' "$dir/config" 2>/dev/null || return 1
	command -v xz >/dev/null || { say "no xz (xz-utils): booting the slower bzImage"; return 1; }
	sects=$(od -An -t u1 -j 497 -N 1 "$k" | tr -d ' ')
	set -- $(od -An -t u4 -j 584 -N 8 "$k")
	[ $# -eq 2 ] && [ -n "$sects" ] || return 1
	start=$(( (sects + 1) * 512 + $1 ))
	magic=$(tail -c +$((start + 1)) "$k" | head -c 6 | od -An -t x1 | tr -d ' \n')
	[ "$magic" = fd377a585a00 ] || { say "kernel payload is not xz ($magic)"; return 1; }
	tail -c +$((start + 1)) "$k" | head -c "$2" | xz -dc --single-stream > "$dir/vmlinux.tmp" ||
		{ rm -f "$dir/vmlinux.tmp"; return 1; }
	[ "$(head -c 4 "$dir/vmlinux.tmp" | od -An -t x1 | tr -d ' \n')" = 7f454c46 ] ||
		{ rm -f "$dir/vmlinux.tmp"; return 1; }
	mv "$dir/vmlinux.tmp" "$dir/vmlinux"
}

# boot_image: print what to boot, making vmlinux first if it is missing
boot_image() {
	if [ ! -f "$dir/vmlinux" ] && [ ! -f "$dir/vmlinux.none" ]; then
		vmlinux_extract || : > "$dir/vmlinux.none"
	fi
	if [ -f "$dir/vmlinux" ]; then echo "$dir/vmlinux"; else echo "$dir/vmlinuz"; fi
}

if [ -s "$dir/version" ] && [ -f "$dir/vmlinuz" ]; then
	boot_image
	exit 0
fi

# the versioned package the metapackage points at, e.g. linux-image-6.1.0-56-amd64
kernel_pkg() {
	apt-cache depends linux-image-amd64 2>/dev/null |
		sed -n 's/^ *Depends: \(linux-image-[0-9][^ ]*-amd64\)$/\1/p' | head -n 1
}

pkg=${VCPUD_KERNEL_PKG:-}
if [ -z "$pkg" ]; then
	pkg=$(kernel_pkg || true)
fi
tmp=$(mktemp -d "${TMPDIR:-/tmp}/vcpud-kernel.XXXXXX")
trap 'rm -rf "$tmp"' EXIT INT TERM

download() {
	[ -n "$pkg" ] || return 1
	# apt-get download writes into the current directory; as root it warns
	# that the _apt user cannot reach it, which is harmless
	(cd "$tmp" && apt-get download -q "$pkg" >&2 2>"$tmp/apt.err") && return 0
	cat "$tmp/apt.err" >&2
	return 1
}

if ! download; then
	# a fresh machine may have no package lists yet
	if [ "$(id -u)" -ne 0 ]; then
		say "cannot download ${pkg:-the kernel package}; as root run: apt-get update"
		exit 1
	fi
	say "updating the package lists"
	apt-get update -qq >&2 || apt-get update >&2
	[ -n "${VCPUD_KERNEL_PKG:-}" ] || pkg=$(kernel_pkg || true)
	if ! download; then
		say "cannot download ${pkg:-linux-image-amd64's kernel package}"
		exit 1
	fi
fi

deb=$(ls "$tmp"/*.deb | head -n 1)
say "unpacking $(basename "$deb")"
mkdir -p "$tmp/x"
dpkg-deb -x "$deb" "$tmp/x"
img=$(ls "$tmp"/x/boot/vmlinuz-* | head -n 1)
ver=${img##*/vmlinuz-}
[ -d "$tmp/x/lib/modules/$ver" ] || { say "no modules for $ver in $deb"; exit 1; }

# fill the cache; version is written last and marks it complete, so an
# interrupted run is redone. Only the files named above are touched.
mkdir -p "$dir"
rm -rf "$dir/version" "$dir/vmlinuz" "$dir/vmlinux" "$dir/vmlinux.none" "$dir/config" \
	"$dir/modules"
mv "$tmp/x/lib/modules/$ver" "$dir/modules"
cp "$tmp/x/boot/config-$ver" "$dir/config" 2>/dev/null || true
mv "$img" "$dir/vmlinuz"
echo "$ver" > "$dir/version"
say "kernel $ver in $dir"
boot_image
