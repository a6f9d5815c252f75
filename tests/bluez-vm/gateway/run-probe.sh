#!/bin/sh
# bluez-vm guest test: makes sure both virtual controllers are powered
# (bluetoothd may still be powering them itself: Busy is retried), then runs
# the gateway's BlueZ transport probe (nlgw-bluez-probe) with the simulated
# pen on hci0 and the transport on hci1. Arguments: the probe and its options.
set -u
[ -x "$1" ] || { echo "FAIL: $1 is not executable (build nlgw-bluez-probe)"; exit 1; }
powered() {
	dbus-send --system --print-reply --reply-timeout=5000 --dest=org.bluez /org/bluez/$1 \
		org.freedesktop.DBus.Properties.Get string:org.bluez.Adapter1 string:Powered |
		grep -q 'boolean true'
}
for hci in hci0 hci1; do
	tries=0
	until powered $hci; do
		tries=$((tries + 1))
		[ $tries -le 50 ] || { echo "FAIL: $hci did not power on"; exit 1; }
		dbus-send --system --print-reply --reply-timeout=5000 --dest=org.bluez \
			/org/bluez/$hci org.freedesktop.DBus.Properties.Set \
			string:org.bluez.Adapter1 string:Powered variant:boolean:true >/dev/null 2>&1
		sleep 0.2
	done
	echo "$hci powered"
done
"$@" --pen-adapter hci0 --adapter hci1
