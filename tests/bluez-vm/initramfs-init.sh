#!/bin/busybox sh
# /init of the bluez-vm initramfs (see run-vm.sh). It loads the virtio, 9p
# and overlay modules, builds the guest's root and hands over to the guest
# script:
#   /            overlay: the host's root (9p tag nlroot, read-only) under a
#                tmpfs upper layer, so the guest runs the host's own BlueZ,
#                D-Bus and Python and may write anywhere without touching it
#   $nl_src      the source tree, read-only (bound from nlroot)
#   $nl_build    the build tree, read-write (9p tag nlbuild)
#   $nl_res      the results directory, read-write (9p tag nlres)
#   /run /tmp /var/lib/bluetooth   fresh tmpfs
# Any failure powers the guest off at once: the host sees no status file
# and reports the console, where the reason is printed.
/bin/busybox --install -s /bin
export PATH=/bin

fatal() {
	echo "nl-init: FATAL: $*"
	sleep 1
	poweroff -f
}

mount -t devtmpfs devtmpfs /dev || fatal "cannot mount /dev"
# The cpio holds no device nodes, so the kernel found no /dev/console to
# give /init: attach stdio now (it stays attached after switch_root).
exec </dev/console >/dev/console 2>&1
mount -t proc proc /proc || fatal "cannot mount /proc"
mount -t sysfs sysfs /sys || fatal "cannot mount /sys"

# modules.list holds the modules in load order (dependencies first).
while read -r m; do
	insmod "/modules/$m" || fatal "insmod $m failed"
done </modules.list

nl_build=
nl_res=
nl_init=
nl_src=
for w in $(cat /proc/cmdline); do
	case $w in
	nl_build=*) nl_build=${w#nl_build=} ;;
	nl_res=*) nl_res=${w#nl_res=} ;;
	nl_init=*) nl_init=${w#nl_init=} ;;
	nl_src=*) nl_src=${w#nl_src=} ;;
	esac
done
[ -n "$nl_build" ] && [ -n "$nl_res" ] && [ -n "$nl_init" ] && [ -n "$nl_src" ] ||
	fatal "kernel command line lacks nl_build=, nl_res=, nl_init= or nl_src="

# virtio devices are probed asynchronously after virtio_pci loads; the
# mount itself is the readiness test, retried for at most 10 s.
p9="trans=virtio,version=9p2000.L,msize=262144"
mkdir -p /lower /rw /newroot
i=0
until mount -t 9p -o "ro,$p9,cache=loose" nlroot /lower 2>/dev/null; do
	i=$((i + 1))
	[ $i -lt 100 ] || fatal "cannot mount the host root (9p tag nlroot)"
	sleep 0.1
done
mount -t tmpfs -o mode=0755 tmpfs /rw || fatal "cannot mount tmpfs for the overlay"
mkdir -p /rw/upper /rw/work
mount -t overlay -o lowerdir=/lower,upperdir=/rw/upper,workdir=/rw/work \
	overlay /newroot || fatal "cannot mount the overlay root"

# Fresh tmpfs first: a share below /tmp must be mounted on top of it.
mount -t tmpfs -o mode=0755 tmpfs /newroot/run || fatal "cannot mount /run"
mount -t tmpfs -o mode=1777 tmpfs /newroot/tmp || fatal "cannot mount /tmp"
mkdir -p /newroot/var/lib/bluetooth
mount -t tmpfs -o mode=0700 tmpfs /newroot/var/lib/bluetooth ||
	fatal "cannot mount /var/lib/bluetooth"
# The source tree (guest scripts and tests) straight from the read-only
# host root: visible even below /tmp, and not writable by the tests.
mkdir -p "/newroot$nl_src"
mount --bind "/lower$nl_src" "/newroot$nl_src" ||
	fatal "cannot bind the source tree at $nl_src"
# Read-write shares see host changes at once: no caching beyond mmap's.
mkdir -p "/newroot$nl_build" "/newroot$nl_res"
mount -t 9p -o "$p9,cache=mmap" nlbuild "/newroot$nl_build" ||
	fatal "cannot mount the build tree at $nl_build"
mount -t 9p -o "$p9,cache=mmap" nlres "/newroot$nl_res" ||
	fatal "cannot mount the results directory at $nl_res"
for d in proc sys dev; do
	mount --move "/$d" "/newroot/$d" || fatal "cannot move /$d"
done

exec switch_root /newroot /bin/sh "$nl_init"
