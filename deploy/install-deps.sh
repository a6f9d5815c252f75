#!/usr/bin/env bash
# Installs the Debian 12 packages NeedleLink needs, only those missing.
# Usage: deploy/install-deps.sh build|demo|test
set -euo pipefail

build_pkgs=(build-essential cmake pkg-config clang libclang-rt-14-dev
	libdbus-1-dev libsystemd-dev libpaho-mqtt-dev libcjson-dev libsqlite3-dev
	libbluetooth-dev libinih-dev)
run_pkgs=(mosquitto mosquitto-clients)
test_pkgs=(python3-jsonschema openssl systemd)
# The bluez-vm tier: a Debian kernel booted in qemu with the real BlueZ inside.
vm_pkgs=(qemu-system-x86 linux-image-amd64 bluez bluez-test-tools dbus busybox-static kmod cpio
	python3-dbus python3-gi)

case "${1:-}" in
build) want=("${build_pkgs[@]}") ;;
demo) want=("${build_pkgs[@]}" "${run_pkgs[@]}") ;;
test) want=("${build_pkgs[@]}" "${run_pkgs[@]}" "${test_pkgs[@]}" "${vm_pkgs[@]}") ;;
*)
	echo "usage: $0 build|demo|test" >&2
	exit 2
	;;
esac

missing=()
for p in "${want[@]}"; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
		missing+=("$p")
	fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

SUDO=
[ "$(id -u)" -eq 0 ] || SUDO=sudo
echo "install-deps: installing ${missing[*]}" >&2
$SUDO apt-get update -qq

apt_install() {
	$SUDO env DEBIAN_FRONTEND=noninteractive INITRD=No apt-get install -y -qq \
		--no-install-recommends "$@"
}

# The VM tier boots the kernel with an initramfs of its own: building
# Debian's initrd for the kernel package would take minutes for nothing.
# INITRD=No tells the kernel's postinst hook to skip it, and the
# update-initramfs trigger is paused for this one install, then restored.
conf=/etc/initramfs-tools/update-initramfs.conf
restore=
if printf '%s\n' "${missing[@]}" | grep -qx linux-image-amd64; then
	[ -f "$conf" ] || apt_install initramfs-tools
	if grep -q '^update_initramfs=yes' "$conf"; then
		$SUDO sed -i 's/^update_initramfs=yes/update_initramfs=no/' "$conf"
		restore=1
	fi
fi
rc=0
apt_install "${missing[@]}" || rc=$?
[ -z "$restore" ] || $SUDO sed -i 's/^update_initramfs=no/update_initramfs=yes/' "$conf"
exit $rc
