#!/usr/bin/env bash
# Builds the bluez-vm initramfs: busybox-static, the modules that reach the
# host's root over virtio-9p and overlay it (with their dependencies, from
# the kernel's own modules.dep), and initramfs-init.sh as /init.
# Usage: mkinitramfs.sh KERNEL_VERSION OUTPUT.cpio.gz
# The output is written to a temporary name and renamed, so concurrent runs
# never see half a file.
set -euo pipefail

kver=$1
out=$2
here=$(cd "$(dirname "$0")" && pwd)
moddir=/lib/modules/$kver

die() {
	echo "mkinitramfs: $*" >&2
	exit 1
}

[ -f "$moddir/modules.dep" ] || die "$moddir/modules.dep missing (kernel package for $kver?)"
[ -x /bin/busybox ] || die "/bin/busybox missing: install Debian package busybox-static"
if readelf -l /bin/busybox 2>/dev/null | grep -q 'program interpreter'; then
	die "/bin/busybox is dynamically linked: install Debian package busybox-static"
fi
command -v modprobe >/dev/null || die "modprobe missing: install Debian package kmod"
command -v cpio >/dev/null || die "cpio missing: install Debian package cpio"

tmp=$(mktemp -d "${out}.XXXXXX.d")
trap 'rm -rf "$tmp"' EXIT
root=$tmp/root
mkdir -p "$root"/{bin,dev,proc,sys,modules}
cp /bin/busybox "$root/bin/busybox"
install -m 0755 "$here/initramfs-init.sh" "$root/init"

# modprobe prints "insmod PATH" per module in load order; a module several
# others depend on is printed once per dependant, so keep its first line.
# Modules built into the kernel print "builtin NAME" and need nothing.
modprobe -S "$kver" -a --show-depends virtio_pci 9pnet_virtio 9p overlay |
	awk '$1 == "insmod" && !seen[$2]++ { print $2 }' >"$tmp/paths"
[ -s "$tmp/paths" ] || die "modprobe resolved no modules for $kver"
: >"$root/modules.list"
while read -r path; do
	name=$(basename "$path")
	case $name in
	*.ko) cp "$path" "$root/modules/$name" ;;
	*.ko.xz) xz -dc "$path" >"$root/modules/${name%.xz}" && name=${name%.xz} ;;
	*.ko.zst) zstd -qdc "$path" >"$root/modules/${name%.zst}" && name=${name%.zst} ;;
	*.ko.gz) gzip -dc "$path" >"$root/modules/${name%.gz}" && name=${name%.gz} ;;
	*) die "unexpected module file $path" ;;
	esac
	echo "$name" >>"$root/modules.list"
done <"$tmp/paths"

(cd "$root" && find . -print0 | LC_ALL=C sort -z |
	cpio --null --quiet -o -H newc -R 0:0) | gzip -9n >"$tmp/initramfs.cpio.gz"
mv -f "$tmp/initramfs.cpio.gz" "$out"
