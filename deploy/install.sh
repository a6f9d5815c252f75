#!/usr/bin/env bash
# Installs needlelinkd as a systemd service on a Debian machine (a Raspberry
# Pi in a treatment room): builds it (unless --build names a build), installs
# needlelinkd and needlelinkctl under PREFIX, the example configuration and
# policy as /etc/needlelink/needlelinkd.conf and policy.conf (never over
# files already there: the new examples go beside them as *.example), the
# D-Bus policy for BlueZ, and the unit /etc/systemd/system/needlelinkd.service;
# creates the system user "needlelink" and reloads systemd and D-Bus.
# Starting the service is left to you (the configuration comes first).
#
# Usage: deploy/install.sh [--prefix DIR] [--build DIR] [--root DIR] [--no-deps]
#   --prefix DIR  where the programs go (default /usr/local)
#   --build DIR   install from this build instead of building build/install
#   --root DIR    stage every file under DIR instead of / (packaging, tests):
#                 no user is created and nothing is reloaded
#   --no-deps     do not install missing Debian packages first
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)

prefix=/usr/local root= build= deps=1
usage() { sed -n '10,15p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
while [ $# -gt 0 ]; do
	case "$1" in
	--prefix) [ $# -ge 2 ] || usage; prefix=$2; shift 2 ;;
	--build) [ $# -ge 2 ] || usage; build=$2; shift 2 ;;
	--root) [ $# -ge 2 ] || usage; root=$2; shift 2 ;;
	--no-deps) deps=0; shift ;;
	-h | --help) sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) echo "install: unknown option $1" >&2; usage ;;
	esac
done
case "$prefix" in /*) ;; *) echo "install: --prefix must be absolute: $prefix" >&2; exit 2 ;; esac
if [ -n "$root" ]; then
	mkdir -p "$root"
	root=$(cd "$root" && pwd)
	[ "$root" != / ] || root=
fi

SUDO=
[ "$(id -u)" -eq 0 ] || SUDO=sudo

if [ -z "$build" ]; then
	[ "$deps" = 0 ] || "$top/deploy/install-deps.sh" build
	build=$top/build/install
	cmake -S "$top" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	cmake --build "$build" -j"$(nproc)" --target needlelinkd needlelinkctl
fi
[ -x "$build/gateway/daemon/needlelinkd" ] || { echo "install: no needlelinkd in $build" >&2; exit 1; }

$SUDO env DESTDIR="$root" cmake --install "$build" --prefix "$prefix" >/dev/null

# Configuration: an administrator's file is never replaced.
conf_file() {
	local src=$1 dst=$root/etc/needlelink/$2
	if [ -e "$dst" ]; then
		$SUDO install -D -m 0644 "$src" "$dst.example"
		echo "install: kept $dst (the new example is $dst.example)"
	else
		$SUDO install -D -m 0644 "$src" "$dst"
		echo "install: $dst"
	fi
}
conf_file "$top/deploy/needlelinkd.conf.example" needlelinkd.conf
conf_file "$top/deploy/policy.conf.example" policy.conf
$SUDO install -D -m 0644 "$top/deploy/needlelinkd-dbus.conf" "$root/etc/dbus-1/system.d/needlelinkd.conf"
$SUDO mkdir -p "$root/etc/systemd/system"
sed "s|@SBINDIR@|$prefix/sbin|g" "$top/deploy/needlelinkd.service" |
	$SUDO tee "$root/etc/systemd/system/needlelinkd.service" >/dev/null
echo "install: $root$prefix/sbin/needlelinkd, $root$prefix/bin/needlelinkctl, $root/etc/systemd/system/needlelinkd.service"

if [ -n "$root" ]; then
	echo "install: staged under $root (no user created, nothing reloaded)"
	exit 0
fi
if ! getent passwd needlelink >/dev/null; then
	$SUDO useradd --system --user-group --home-dir /var/lib/needlelink --no-create-home \
		--shell /usr/sbin/nologin --comment "NeedleLink gateway" needlelink
	echo "install: created system user needlelink"
fi
if [ -d /run/systemd/system ]; then
	$SUDO systemctl daemon-reload
	$SUDO systemctl reload dbus 2>/dev/null || echo "install: reload D-Bus (or reboot) for its policy" >&2
fi
cat <<MSG
Next: edit /etc/needlelink/needlelinkd.conf ([transport] kind = bluez, [pens] allow,
[mqtt] broker) and /etc/needlelink/policy.conf, check them with
  $prefix/sbin/needlelinkd --check-config
set Channels = 1 under [GATT] in /etc/bluetooth/main.conf (README), then
  systemctl enable --now needlelinkd
  journalctl -u needlelinkd -f
MSG
