#!/usr/bin/env bash
# Installs the Debian 12 packages NeedleLink needs, only those missing.
# Usage: deploy/install-deps.sh build|demo|test
set -euo pipefail

build_pkgs=(build-essential cmake pkg-config clang libclang-rt-14-dev
	libdbus-1-dev libsystemd-dev libpaho-mqtt-dev libcjson-dev libsqlite3-dev
	libbluetooth-dev libinih-dev)
run_pkgs=(mosquitto mosquitto-clients)
test_pkgs=(python3-jsonschema openssl)

case "${1:-}" in
build) want=("${build_pkgs[@]}") ;;
demo) want=("${build_pkgs[@]}" "${run_pkgs[@]}") ;;
test) want=("${build_pkgs[@]}" "${run_pkgs[@]}" "${test_pkgs[@]}") ;;
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
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
