#!/usr/bin/env bash
# deploy/install.sh --root: every file lands where the unit and the daemon's
# defaults expect it, an administrator's configuration survives a second run,
# the unit passes systemd-analyze verify, and the installed daemon accepts
# the installed configuration.
# Usage: test-install.sh SOURCE_DIR BUILD_DIR
set -euo pipefail
src=$1 build=$2
tmp=$(mktemp -d "${TMPDIR:-/tmp}/nl-install.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
root=$tmp/root
fails=0
check() { # check WHAT COMMAND...
	local what=$1
	shift
	if "$@"; then echo "ok: $what"; else echo "FAIL: $what"; fails=$((fails + 1)); fi
}

"$src/deploy/install.sh" --root "$root" --build "$build" --no-deps >"$tmp/out1" 2>&1 ||
	{ cat "$tmp/out1"; echo "FAIL: install.sh exited non-zero"; exit 1; }

for f in usr/local/sbin/needlelinkd usr/local/bin/needlelinkctl; do
	check "$f installed, executable" test -x "$root/$f"
done
for f in etc/needlelink/needlelinkd.conf etc/needlelink/policy.conf \
	etc/dbus-1/system.d/needlelinkd.conf etc/systemd/system/needlelinkd.service; do
	check "$f installed" test -s "$root/$f"
done
check "the configuration is the example" cmp -s "$src/deploy/needlelinkd.conf.example" \
	"$root/etc/needlelink/needlelinkd.conf"
unit=$root/etc/systemd/system/needlelinkd.service
check "ExecStart is the installed daemon" grep -qx 'ExecStart=/usr/local/sbin/needlelinkd' "$unit"
check "no placeholder left in the unit" bash -c "! grep -q @ '$unit'"
# The unit's user is the one the D-Bus policy lets talk to BlueZ, and the
# state directory holds the daemon's default journal.
user=$(sed -n 's/^User=//p' "$unit")
check "unit user ($user) is the D-Bus policy's" grep -q "policy user=\"$user\"" \
	"$root/etc/dbus-1/system.d/needlelinkd.conf"
state=$(sed -n 's/^StateDirectory=//p' "$unit")
check "StateDirectory ($state) holds the daemon's default journal" \
	grep -qa "/var/lib/$state/journal.db" "$root/usr/local/sbin/needlelinkd"
check "and the configuration documents that default" \
	grep -q "^;journal = /var/lib/$state/journal.db" "$root/etc/needlelink/needlelinkd.conf"

# systemd's own check, on a copy whose ExecStart points into the stage; any
# warning (an unknown key or value) fails.
sed "s|^ExecStart=/usr/local/sbin/|ExecStart=$root/usr/local/sbin/|" "$unit" >"$tmp/needlelinkd.service"
if command -v systemd-analyze >/dev/null; then
	out=$(SYSTEMD_LOG_LEVEL=warning systemd-analyze verify "$tmp/needlelinkd.service" 2>&1) && rc=0 || rc=$?
	[ -z "$out" ] || echo "$out"
	check "systemd-analyze verify: no error, no warning" test "$rc" = 0 -a -z "$out"
else
	echo "FAIL: systemd-analyze missing (deploy/install-deps.sh test installs systemd)"
	fails=$((fails + 1))
fi

# The installed daemon accepts the installed configuration and policy.
check "installed needlelinkd --check-config accepts the installed files" \
	"$root/usr/local/sbin/needlelinkd" --check-config --config "$root/etc/needlelink/needlelinkd.conf" \
	--set "limits.policy=$root/etc/needlelink/policy.conf"

# A second run keeps an edited configuration and puts the example beside it.
echo "# edited by the clinic" >>"$root/etc/needlelink/needlelinkd.conf"
"$src/deploy/install.sh" --root "$root" --build "$build" --no-deps >"$tmp/out2" 2>&1 ||
	{ cat "$tmp/out2"; echo "FAIL: second install.sh exited non-zero"; exit 1; }
check "an edited configuration is kept" grep -qx '# edited by the clinic' "$root/etc/needlelink/needlelinkd.conf"
check "the new example goes beside it" cmp -s "$src/deploy/needlelinkd.conf.example" \
	"$root/etc/needlelink/needlelinkd.conf.example"
check "the second run says so" grep -q "kept $root/etc/needlelink/needlelinkd.conf" "$tmp/out2"

# Bad usage: exit 2, nothing else.
"$src/deploy/install.sh" --root "$root" --bogus >"$tmp/out3" 2>&1 && rc=0 || rc=$?
check "an unknown option exits 2 ($rc)" test "$rc" = 2
"$src/deploy/install.sh" --root "$root" --prefix relative >"$tmp/out4" 2>&1 && rc=0 || rc=$?
check "a relative prefix exits 2 ($rc)" test "$rc" = 2

[ "$fails" = 0 ] || { echo "$fails check(s) failed"; exit 1; }
echo "all install checks passed"
