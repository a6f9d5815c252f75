#!/usr/bin/env bash
# The NeedleLink demo, on a built tree: a private mosquitto on a free loopback
# port, three simulated pens, needlelinkd between them, and what a dashboard
# subscribed to needlelink/# sees, one line per message, until Ctrl-C.
# Everything lives in a temporary directory removed at exit.
#
# Usage: deploy/demo-run.sh BUILD_DIR    (deploy/demo.sh builds and calls it)
# Environment: DEMO_TIME_FACTOR (default 10: a 10-minute treatment in 1 min),
#              DEMO_LIVE_EVERY (default 20: show every 20th live sample per pen),
#              DEMO_KEEP=1 keeps the temporary directory (logs, journal).
#
# The demo pens' scenarios wait for a gateway to authorise each session. A
# "front desk" loop plays the clinic: whenever a pen reports itself idle on
# MQTT, it authorises a session for a new patient pseudonym with
# `needlelinkctl authorise` (DEMO-PEN-2 by a nurse, so the gateway caps its
# cheeks at 1.0 mm and the pen clamps the 1.25 mm the scenario asks for).
set -euo pipefail

if [ $# -ne 1 ] || [ ! -d "$1" ]; then
	echo "usage: $0 BUILD_DIR" >&2
	exit 2
fi
build=$(cd "$1" && pwd)
top=$(cd "$(dirname "$0")/.." && pwd)
factor=${DEMO_TIME_FACTOR:-10}
live_every=${DEMO_LIVE_EVERY:-20}

gwd=$build/gateway/daemon/needlelinkd
ctl=$build/gateway/ctl/needlelinkctl
sim=$build/firmware-sim/needlelink-sim
for b in "$gwd" "$ctl" "$sim"; do
	[ -x "$b" ] || { echo "demo: $b is missing: build first" >&2; exit 1; }
done
mosquitto=$(command -v mosquitto || echo /usr/sbin/mosquitto)
[ -x "$mosquitto" ] || { echo "demo: mosquitto is not installed" >&2; exit 1; }
command -v mosquitto_sub >/dev/null || { echo "demo: mosquitto_sub (mosquitto-clients) is not installed" >&2; exit 1; }

tmp=$(mktemp -d "${TMPDIR:-/tmp}/needlelink-demo.XXXXXX")
pids=()
cleanup() {
	trap - EXIT INT TERM
	local p
	# The gateway first, so it can publish its offline state.
	for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
	for p in "${pids[@]}"; do
		for _ in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20; do
			kill -0 "$p" 2>/dev/null || break
			sleep 0.25
		done
		kill -KILL "$p" 2>/dev/null || true
	done
	wait 2>/dev/null || true
	if [ "${DEMO_KEEP:-0}" = 1 ]; then
		echo "demo: logs and journal kept in $tmp" >&2
	else
		rm -rf "$tmp"
	fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# A free loopback port: nothing answers on it.
port=
for _ in $(seq 1 50); do
	p=$((20000 + RANDOM % 40000))
	if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
		port=$p
		break
	fi
done
[ -n "$port" ] || { echo "demo: no free port found" >&2; exit 1; }

cat >"$tmp/mosquitto.conf" <<EOF
listener $port 127.0.0.1
allow_anonymous true
persistence false
log_dest file $tmp/mosquitto.log
EOF
"$mosquitto" -c "$tmp/mosquitto.conf" 2>>"$tmp/mosquitto.log" &
pids=($! "${pids[@]}")

# Wait (bounded) until the broker listens.
for _ in $(seq 1 40); do
	(exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
	sleep 0.25
done
(exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null || {
	echo "demo: mosquitto did not start:" >&2; cat "$tmp/mosquitto.log" >&2; exit 1; }

mkdir -p "$tmp/radio" "$tmp/state"

cat >"$tmp/needlelinkd.conf" <<EOF
[gateway]
id = demo-gw
journal = $tmp/journal.db
[mqtt]
host = 127.0.0.1
port = $port
[pens]
allow = *
[transport]
kind = sim
sim_dir = $tmp/radio
EOF

# The dashboard's view starts first, so it sees everything.
mkfifo "$tmp/view"
"$ctl" format --live-every "$live_every" <"$tmp/view" &
pids=($! "${pids[@]}")
mosquitto_sub -h 127.0.0.1 -p "$port" -v -t 'needlelink/#' >"$tmp/view" &
pids=($! "${pids[@]}")

start_pen() { # scenario serial
	"$sim" -s "$1" --serial "$2" -t "$factor" --radio-dir "$tmp/radio" \
		--state-dir "$tmp/state" --wipe -q 2>>"$tmp/sim-$2.log" &
	pids=($! "${pids[@]}")
}
start_pen "$top/firmware-sim/scenarios/demo-clinic.json" DEMO-PEN-1
start_pen "$top/firmware-sim/scenarios/demo-clinic.json" DEMO-PEN-2
start_pen "$top/firmware-sim/scenarios/demo-flaky.json" DEMO-FLAKY

"$gwd" --config "$tmp/needlelinkd.conf" --health-interval 10 2>>"$tmp/needlelinkd.log" &
pids=($! "${pids[@]}")

# The front desk: authorise a session whenever a pen is idle with a new
# cartridge (retained pen state), each time for a new patient pseudonym. Every call has a timeout.
front_desk() {
	local n=0 serial role state
	while :; do
		for serial in DEMO-PEN-1 DEMO-PEN-2 DEMO-FLAKY; do
			state=$(mosquitto_sub -h 127.0.0.1 -p "$port" -C 1 -W 2 \
				-t "needlelink/pens/$serial/state" 2>/dev/null || true)
			# Idle, with a fresh cartridge attached.
			case $state in *'"state":"idle"'*'"state":"new"'*) ;; *) continue ;; esac
			n=$((n + 1))
			role=physician
			[ "$serial" = DEMO-PEN-2 ] && role=nurse
			if "$ctl" --config "$tmp/needlelinkd.conf" authorise "$serial" \
				--patient "demo-patient-$n" --operator "demo-$role" --role "$role" \
				--skin-type III --zones forehead,cheeks,chin --timeout 20 \
				>>"$tmp/front-desk.log" 2>&1; then
				echo "demo: front desk: $serial authorised for demo-patient-$n ($role)" >&2
			else
				echo "demo: front desk: $serial not authorised (see $tmp/front-desk.log)" >&2
			fi
		done
		sleep 2
	done
}
front_desk &
pids=($! "${pids[@]}")

cat >&2 <<EOF
demo: broker 127.0.0.1:$port, gateway demo-gw, pens DEMO-PEN-1, DEMO-PEN-2,
demo: DEMO-FLAKY (a bad radio day), time x$factor. Logs in $tmp.
demo: journal: $ctl --journal $tmp/journal.db sessions (audit: ... audit)
demo: Ctrl-C to stop.
EOF
wait
