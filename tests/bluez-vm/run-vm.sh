#!/usr/bin/env bash
# Boots the Debian kernel in qemu with the real BlueZ stack on virtual LE
# controllers (two unless -a) and runs end-to-end tests inside it.
#
# Usage: run-vm.sh [-t SECONDS] [-T SECONDS] [-m MIB] [-c CPUS] [-a ADAPTERS] [-k] BUILD_DIR RESULTS_DIR NAME=COMMAND...
#   BUILD_DIR    build tree: holds the cached initramfs; shared read-write
#                with the guest at the same path
#   RESULTS_DIR  created if missing; shared read-write at the same path.
#                After a run it holds console.log, bringup.log,
#                bluetoothd.log (bluetoothd -d), btvirt.log, btmon.snoop,
#                modules.txt, dmesg.log, tests/NAME.log, summary and status
#   NAME=COMMAND a guest test: COMMAND runs under sh -c as root once
#                bluetoothd owns org.bluez, with NL_VM_RESULTS, NL_BUILD_DIR,
#                NL_SOURCE_DIR and NL_VM_ADAPTERS set; exit 0 is a pass
#   -t  hard limit for the whole VM run (default 300): qemu is killed and
#       the run fails
#   -T  limit per guest test (default 120)
#   -m  guest memory in MiB (default 512)
#   -c  guest vCPUs (default 2)
#   -a  virtual LE controllers btvirt creates (2..4, default 2): hci0,
#       hci1, ... in the guest
#   -k  run again, saying so, when the guest kernel oopses in
#       hci_chan_del (a use-after-free in Linux 6.1's Bluetooth core when
#       bluetoothd closes an L2CAP socket while the link is torn down; not
#       in the code under test, see tests/gateway-bluez/CMakeLists.txt), at
#       most twice: the failed runs' results are kept in RESULTS_DIR.oops1
#       and RESULTS_DIR.oops2; a third oops, or any other failure, fails
#
# The guest's root is the host's own root, read-only over virtio-9p under a
# tmpfs overlay, so the guest runs exactly the BlueZ, D-Bus and Python
# installed here. Exits 0 only when the guest wrote status 0 and a PASS for
# every test; a missing package, a timeout or a missing status file fails
# loudly with the reason.
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/../.." && pwd)
vm_timeout=300
test_timeout=120
mem=512
cpus=2
adapters=2

fail() {
	echo "bluez-vm: FAIL: $*" >&2
	exit 1
}

usage() {
	sed -n '/^# Usage:/,/^#       first run/p' "$0" | sed 's/^# \{0,1\}//' >&2
	exit 2
}

args=("$@")
retry_oops=0
while getopts "t:T:m:c:a:k" opt; do
	case $opt in
	k) retry_oops=1 ;;
	t) vm_timeout=$OPTARG ;;
	T) test_timeout=$OPTARG ;;
	m) mem=$OPTARG ;;
	c) cpus=$OPTARG ;;
	a) adapters=$OPTARG ;;
	*) usage ;;
	esac
done
shift $((OPTIND - 1))
[ $# -ge 3 ] || usage
for n in "$vm_timeout" "$test_timeout" "$mem" "$cpus" "$adapters"; do
	[[ $n =~ ^[0-9]+$ ]] || fail "not a number: $n"
done
[ "$cpus" -ge 1 ] || fail "-c: at least 1 vCPU"
[ "$adapters" -ge 2 ] && [ "$adapters" -le 4 ] || fail "-a: 2 to 4 controllers, not $adapters"

build=$(cd "$1" 2>/dev/null && pwd) || fail "build dir '$1' does not exist"
mkdir -p "$2" || fail "cannot create results dir '$2'"
results=$(cd "$2" && pwd)
shift 2
# Paths travel on the kernel command line, which splits at whitespace.
for p in "$build" "$results" "$src"; do
	[[ $p =~ [[:space:]] ]] && fail "path with whitespace not supported: '$p'"
done
[ "$results" != / ] && [ "$results" != "$build" ] ||
	fail "results dir must be a directory of its own, not '$results'"

tests=()
for t in "$@"; do
	[[ $t =~ ^[A-Za-z0-9_.-]+=.+ ]] || fail "test must be NAME=COMMAND: '$t'"
	[[ $t == *$'\n'* ]] && fail "test command has a newline: '$t'"
	tests+=("$t")
done

# --- what the host must have -------------------------------------------
qemu=$(command -v qemu-system-x86_64) ||
	fail "qemu-system-x86_64 not found: install Debian package qemu-system-x86"
need() { # need PATH PACKAGE
	[ -x "$1" ] || fail "$1 not found: install Debian package $2"
}
need /usr/bin/btvirt bluez-test-tools
need /usr/bin/btmon bluez
need /usr/bin/dbus-daemon dbus
need /usr/bin/dbus-send dbus
need /bin/busybox busybox-static
need /usr/bin/timeout coreutils
[ -x /usr/libexec/bluetooth/bluetoothd ] || [ -x /usr/lib/bluetooth/bluetoothd ] ||
	fail "bluetoothd not found: install Debian package bluez"

# The guest kernel: the newest installed one that has hci_vhci, unless
# NL_VM_KERNEL names a version.
kver=${NL_VM_KERNEL:-}
if [ -z "$kver" ]; then
	for k in $(for f in /boot/vmlinuz-*; do echo "${f#/boot/vmlinuz-}"; done | sort -V -r); do
		if ls /lib/modules/"$k"/kernel/drivers/bluetooth/hci_vhci.ko* >/dev/null 2>&1; then
			kver=$k
			break
		fi
	done
fi
[ -n "$kver" ] || fail "no kernel with Bluetooth modules in /boot and /lib/modules:" \
	"install Debian package linux-image-amd64"
kernel=/boot/vmlinuz-$kver
[ -r "$kernel" ] || fail "kernel $kernel missing or unreadable (install linux-image-amd64; run as root)"
ls /lib/modules/"$kver"/kernel/drivers/bluetooth/hci_vhci.ko* >/dev/null 2>&1 ||
	fail "kernel $kver has no hci_vhci module"

# --- initramfs, cached in the build tree -------------------------------
cache=$build/tests/bluez-vm/initramfs
mkdir -p "$cache" || fail "cannot create $cache"
key=$(cat "$here/mkinitramfs.sh" "$here/initramfs-init.sh" /lib/modules/"$kver"/modules.dep |
	cksum | cut -d' ' -f1)
initrd=$cache/initramfs-$kver-$key.cpio.gz
if [ ! -s "$initrd" ]; then
	echo "bluez-vm: building $initrd"
	bash "$here/mkinitramfs.sh" "$kver" "$initrd" || fail "initramfs build failed"
fi

# --- results directory --------------------------------------------------
# Only what this script or the guest writes is removed: a stale status
# file must never pass a run.
rm -rf "$results/tests"
rm -f "$results"/{status,summary,guest-tests,console.log,bringup.log,bluetoothd.log} \
	"$results"/{btvirt.log,btmon.snoop,modules.txt,dmesg.log}
printf '%s\n' "${tests[@]}" >"$results/guest-tests"

# --- accelerator -----------------------------------------------------------
# KVM only with a real kvm_intel or kvm_amd: other /dev/kvm backends (PVM)
# cannot boot an unmodified kernel. Otherwise TCG, one host thread per vCPU.
if [ -w /dev/kvm ] && { [ -d /sys/module/kvm_intel ] || [ -d /sys/module/kvm_amd ]; }; then
	accel=(-accel kvm -cpu host)
else
	# The translation cache defaults to 1 GiB and is what qemu's memory
	# grows by under TCG; 256 MiB holds this workload.
	accel=(-accel "tcg,thread=multi,tb-size=256")
fi

console=$results/console.log
cmdline="console=ttyS0 loglevel=4 panic=-1 rdinit=/init"
cmdline+=" nl_src=$src nl_build=$build nl_res=$results nl_init=$here/guest/stack.sh"
cmdline+=" nl_test_timeout=$test_timeout nl_adapters=$adapters"

echo "bluez-vm: kernel $kver, ${accel[*]}, $cpus vCPU(s), ${mem} MiB, $adapters controllers," \
	"${#tests[@]} test(s), limit ${vm_timeout} s"
echo "bluez-vm: console in $console"
start=$SECONDS
# timeout(1) is a second bound: should this script be killed outright (by
# ctest, say), qemu still dies 30 s after the limit.
timeout -k 5 $((vm_timeout + 30)) "$qemu" "${accel[@]}" -smp "$cpus" -m "$mem" -machine pc \
	-nographic -monitor none -serial stdio -no-reboot \
	-kernel "$kernel" -initrd "$initrd" -append "$cmdline" \
	-nic none \
	-virtfs "local,path=/,mount_tag=nlroot,security_model=none,readonly=on,multidevs=remap" \
	-virtfs "local,path=$build,mount_tag=nlbuild,security_model=none,multidevs=remap" \
	-virtfs "local,path=$results,mount_tag=nlres,security_model=none,multidevs=remap" \
	</dev/null >"$console" 2>&1 &
qpid=$!
# TERM to timeout(1) is passed on to qemu.
trap 'kill -TERM $qpid 2>/dev/null' EXIT
trap 'kill -TERM $qpid 2>/dev/null; fail "interrupted"' INT TERM HUP

# Polls once a second: the hard limit, and qemu's peak resident memory
# (VmHWM only grows, so the last reading before exit is the peak). qemu is
# timeout's only child.
peak_kb=0
timed_out=0
while kill -0 $qpid 2>/dev/null; do
	read -r qemu_pid _ 2>/dev/null </proc/$qpid/task/$qpid/children
	hwm=$(awk '/^VmHWM:/ { print $2 }' /proc/"${qemu_pid:-none}"/status 2>/dev/null)
	[ -n "$hwm" ] && [ "$hwm" -gt "$peak_kb" ] && peak_kb=$hwm
	if [ $((SECONDS - start)) -ge "$vm_timeout" ]; then
		timed_out=1
		kill -TERM $qpid 2>/dev/null
		sleep 3
		[ -n "${qemu_pid:-}" ] && kill -KILL "$qemu_pid" 2>/dev/null
		kill -KILL $qpid 2>/dev/null
		break
	fi
	sleep 1
done
wait $qpid
qrc=$?
trap - EXIT INT TERM HUP
elapsed=$((SECONDS - start))
echo "bluez-vm: qemu exited $qrc after ${elapsed} s, peak RSS $((peak_kb / 1024)) MiB"

report() {
	echo "--- last 60 lines of $console"
	tail -n 60 "$console"
	echo "---"
	[ -s "$results/bringup.log" ] && { echo "--- $results/bringup.log"; cat "$results/bringup.log"; }
	[ -s "$results/summary" ] && { echo "--- $results/summary"; cat "$results/summary"; }
	return 0
}

# -k: the run failed; if the guest kernel oopsed in hci_chan_del, run again,
# at most twice (see the usage above). Returns only when it does not.
retry_if_known_oops() {
	local n=$((${NL_VM_RETRIED:-0} + 1))

	[ $retry_oops = 1 ] && [ $n -le 2 ] || return 0
	grep -Eq 'kernel BUG at|general protection fault|list_del corruption|Oops:' "$console" &&
		grep -q 'hci_chan_del' "$console" || return 0
	echo "bluez-vm: RETRY $n of 2: $1; the guest kernel oopsed in hci_chan_del, the known" \
		"Linux 6.1 Bluetooth race, not the code under test; running again (this run kept" \
		"in $results.oops$n)" >&2
	rm -rf "$results.oops$n"
	mv "$results" "$results.oops$n" || fail "$1; cannot keep the failed run"
	NL_VM_RETRIED=$n exec bash "$0" "${args[@]}"
}

if [ $timed_out = 1 ]; then
	report
	retry_if_known_oops "VM run exceeded ${vm_timeout} s: qemu killed"
	fail "VM run exceeded ${vm_timeout} s: qemu killed"
fi
if [ ! -f "$results/status" ]; then
	report
	reason="guest wrote no status file"
	grep -q 'Kernel panic' "$console" && reason+=" (kernel panic)"
	oops='kernel BUG at|general protection fault|list_del corruption|Oops:'
	grep -Eq "$oops" "$console" &&
		reason+=" (guest kernel oops: $(grep -Em1 "$oops" "$console"))"
	grep -q 'nl-init: FATAL' "$console" && reason+=" ($(grep -m1 'nl-init: FATAL' "$console"))"
	grep -q 'nl-vm: FATAL' "$console" && reason+=" ($(grep -m1 'nl-vm: FATAL' "$console"))"
	retry_if_known_oops "$reason"
	fail "$reason"
fi
status=$(cat "$results/status")
passed=$(grep -c '^PASS ' "$results/summary" 2>/dev/null)
cat "$results/summary"
if [ "$status" != 0 ] || [ "$passed" != "${#tests[@]}" ]; then
	report
	retry_if_known_oops "guest status '$status', $passed of ${#tests[@]} test(s) passed"
	fail "guest status '$status', $passed of ${#tests[@]} test(s) passed"
fi
echo "bluez-vm: ${#tests[@]} passed, 0 failed"
