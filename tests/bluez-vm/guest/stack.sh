#!/bin/sh
# PID 1 of the bluez-vm guest, started by the initramfs after switch_root.
# Brings up the real BlueZ stack on nl_adapters (default two) virtual LE
# controllers, runs the
# tests listed in $nl_res/guest-tests (one "name=command" per line, each
# command run by sh -c with its own timeout), writes one line per test to
# $nl_res/summary and, last of all, the number of failed tests to
# $nl_res/status; then powers the guest off. The host trusts only the
# status file: anything that stops this script early leaves none.
#
# Environment given to the tests:
#   NL_VM_RESULTS  results directory (read-write, on the host)
#   NL_BUILD_DIR   the build tree (read-write, on the host)
#   NL_SOURCE_DIR  the source tree (read-only)
#   NL_VM_ADAPTERS number of virtual controllers (run-vm.sh -a, default 2)
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export LANG=C.UTF-8 HOME=/root
umask 022

nl_res=
nl_build=
nl_src=
nl_test_timeout=120
nl_adapters=2
for w in $(cat /proc/cmdline); do
	case $w in
	nl_res=*) nl_res=${w#nl_res=} ;;
	nl_build=*) nl_build=${w#nl_build=} ;;
	nl_src=*) nl_src=${w#nl_src=} ;;
	nl_test_timeout=*) nl_test_timeout=${w#nl_test_timeout=} ;;
	nl_adapters=*) nl_adapters=${w#nl_adapters=} ;;
	esac
done

# Console lines carry the guest's uptime, to see where a slow run went.
log() {
	read -r up _ </proc/uptime
	echo "nl-vm: [$up] $*"
}

power_off() {
	# The kernel log, also when bring-up or a test broke the run.
	[ -d "$nl_res" ] && dmesg >"$nl_res/dmesg.log" 2>/dev/null
	sync
	/bin/busybox poweroff -f
	# If that returned, exiting PID 1 panics the kernel, and qemu (run
	# with -no-reboot and panic=-1) exits all the same.
	exit 1
}

# Bring-up failures end the run here: no status file, the reason on the
# console and in bringup.log.
bringup_fail() {
	log "FATAL: $*"
	echo "FATAL: $*" >>"$nl_res/bringup.log"
	power_off
}

uptime_s() {
	read -r up _ </proc/uptime
	echo "${up%.*}"
}

# wait_for SECONDS WHAT COMMAND...: polls COMMAND every 0.2 s until it
# succeeds (0) or SECONDS of guest uptime pass (1).
wait_for() {
	end=$(($(uptime_s) + $1))
	what=$2
	shift 2
	until "$@" >/dev/null 2>&1; do
		[ "$(uptime_s)" -lt $end ] || return 1
		sleep 0.2
	done
	log "$what"
}

# A dead child not yet reaped still answers kill -0: look at its state.
alive() {
	[ -r "/proc/$1/status" ] && ! grep -q '^State:[[:space:]]*Z' "/proc/$1/status"
}

bluez_owned() {
	dbus-send --system --print-reply --reply-timeout=2000 \
		--dest=org.freedesktop.DBus /org/freedesktop/DBus \
		org.freedesktop.DBus.NameHasOwner string:org.bluez |
		grep -q 'boolean true'
}

[ -d "$nl_res" ] || { log "FATAL: results directory '$nl_res' missing"; power_off; }
log "guest up, kernel $(uname -r)"
: >"$nl_res/bringup.log"

mkdir -p /dev/pts /dev/shm
mount -t devpts -o newinstance,ptmxmode=0666 devpts /dev/pts
mount -t tmpfs -o mode=1777 tmpfs /dev/shm
hostname nl-vm
ip link set lo up 2>/dev/null

modprobe -a bluetooth hci_vhci ecdh_generic cmac ||
	bringup_fail "modprobe bluetooth hci_vhci ecdh_generic cmac failed"
# What btvirt (AF_ALG crypto) and the kernel's SMP (random numbers) would
# otherwise autoload while a controller waits out its 2 s HCI Reset.
modprobe -a af_alg algif_hash algif_skcipher ecb ctr drbg jitterentropy_rng \
	sha512_generic sha3_generic ansi_cprng ||
	log "warning: some crypto modules did not load"
log "modules loaded"

mkdir -p /run/dbus
dbus-daemon --system --fork >>"$nl_res/bringup.log" 2>&1 ||
	bringup_fail "dbus-daemon --system failed"
log "system bus up"

# btmon first, so the capture holds the controllers' whole life.
btmon -w "$nl_res/btmon.snoop" >/dev/null 2>&1 &
btmon_pid=$!
# The kernel sends HCI Reset the moment btvirt creates a controller and
# gives up after 2 s; that controller then never reaches mgmt. Under TCG a
# fresh btvirt answers too late (none of its code is translated yet), a
# second one in time. So a throw-away one-controller btvirt runs first (its
# reset may fail: that is expected), then the real one, whose
# nl_adapters controllers must all be listed by mgmt; a reset timeout in the
# kernel log, or 20 s without all of them, restarts it (at most 3 tries).
mgmt_count() {
	timeout 10 btmgmt info 2>/dev/null | grep -c '^hci[0-9]*:'
}
reset_failures() {
	dmesg | grep -c 'Opcode 0x0c03 failed'
}
controllers_settled() {
	[ "$(mgmt_count)" = "$want" ] || [ "$(reset_failures)" != "$failures_before" ]
}
no_controller() {
	! ls /sys/class/bluetooth/hci* >/dev/null 2>&1
}
want=1
failures_before=$(reset_failures)
btvirt -l1 -L >>"$nl_res/btvirt.log" 2>&1 &
btvirt_pid=$!
wait_for 20 "warm-up controller settled" controllers_settled
kill -TERM $btvirt_pid
wait $btvirt_pid
wait_for 10 "warm-up controller removed" no_controller ||
	bringup_fail "the warm-up controller did not go away"
want=$nl_adapters
try=1
while :; do
	failures_before=$(reset_failures)
	btvirt -l$want -L >>"$nl_res/btvirt.log" 2>&1 &
	btvirt_pid=$!
	wait_for 20 "controllers settled (try $try)" controllers_settled
	[ "$(mgmt_count)" = $want ] && break
	log "try $try: mgmt lists $(mgmt_count) controller(s), not $want: restarting btvirt"
	kill -TERM $btvirt_pid
	wait $btvirt_pid
	try=$((try + 1))
	[ $try -le 3 ] || bringup_fail "btvirt -l$want -L gave no $want working controllers in 3 tries"
	wait_for 10 "old controllers removed" no_controller ||
		bringup_fail "controllers of the killed btvirt did not go away"
done
log "$want virtual controllers in mgmt"

bluetoothd=/usr/libexec/bluetooth/bluetoothd
[ -x $bluetoothd ] || bluetoothd=/usr/lib/bluetooth/bluetoothd
# One ATT bearer (no EATT), as README.md asks of a gateway: bluetoothd
# 5.66 defaults to 3 bearers and spreads notifications over them, and reads
# the bearers in poll order, so the pen's Treatment Record segments reach the
# gateway out of order (protocol.md 6.1).
printf '[GATT]\nChannels = 1\n' >/run/bluetooth-main.conf
$bluetoothd -n -d -f /run/bluetooth-main.conf >"$nl_res/bluetoothd.log" 2>&1 &
bluetoothd_pid=$!
# Only org.freedesktop.DBus is asked: a call to org.bluez before bluetoothd
# owns the name would start D-Bus activation, which stalls without systemd.
wait_for 30 "bluetoothd owns org.bluez" bluez_owned ||
	bringup_fail "bluetoothd did not own org.bluez within 30 s"

export NL_VM_RESULTS="$nl_res" NL_BUILD_DIR="$nl_build" NL_SOURCE_DIR="$nl_src"
export NL_VM_ADAPTERS=$want
mkdir -p "$nl_res/tests"
: >"$nl_res/summary"
failed=0
total=0
while IFS= read -r line; do
	case $line in '' | '#'*) continue ;; esac
	name=${line%%=*}
	cmd=${line#*=}
	total=$((total + 1))
	log "RUN  $name: $cmd"
	out="$nl_res/tests/$name.log"
	# The output goes to the console and to the test's log; the exit code
	# crosses the pipe in a file (sh has no pipefail).
	{
		timeout -k 5 "$nl_test_timeout" sh -c "$cmd" </dev/null 2>&1
		echo $? >"/run/rc.$name"
	} | tee "$out"
	rc=$(cat "/run/rc.$name" 2>/dev/null || echo 255)
	if [ "$rc" = 0 ]; then
		log "PASS $name"
		echo "PASS $name" >>"$nl_res/summary"
	else
		failed=$((failed + 1))
		if [ "$rc" = 124 ] || [ "$rc" = 137 ]; then
			why="timed out after $nl_test_timeout s"
		else
			why="exit $rc"
		fi
		log "FAIL $name ($why)"
		echo "FAIL $name ($why)" >>"$nl_res/summary"
	fi
	# bluetoothd dying under a test fails every later one: say so.
	# A test may restart bluetoothd (recovery tests): what must hold is
	# that some bluetoothd owns org.bluez afterwards.
	if ! alive $bluetoothd_pid; then
		wait_for 30 "bluetoothd restarted by test $name owns org.bluez" bluez_owned ||
			bringup_fail "bluetoothd exited during test $name"
	fi
done <"$nl_res/guest-tests"
[ $total -gt 0 ] || bringup_fail "no test listed in $nl_res/guest-tests"

cat /proc/modules >"$nl_res/modules.txt"
kill -TERM "$bluetoothd_pid" "$btvirt_pid" 2>/dev/null
sleep 0.5
kill -INT $btmon_pid 2>/dev/null
sync
log "$total test(s), $failed failed"
echo $failed >"$nl_res/status"
power_off
