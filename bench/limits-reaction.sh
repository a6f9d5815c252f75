#!/usr/bin/env bash
# Reaction time of the treatment-limits enforcement, printed (not a test):
#   PENS simulated pens that violate a limit in every session (depth 1.5 mm on
#   the forehead, cap 0.75 mm, with the pen's own cap enforcement switched off
#   and CLAMP/LOCK ignored: firmware-sim scenario action "misbehave"), so the
#   gateway has to write a Pen CP CLAMP and then a LOCK in each session;
#   ROUNDS sessions per pen, each authorised with needlelinkctl authorise (a
#   fresh cartridge and patient every time, so no history rule blocks).
#   needlelinkd runs with --stats; at exit it logs
#     stats: limits reaction us p50 P p90 P p99 P max M (N actions)
#   the gateway time from the arrival of the violating sample to the Pen CP
#   write handed to the pen manager. The script prints that line and the
#   count of enforcement alerts seen on MQTT. It asserts nothing about speed.
#
# Usage: bench/limits-reaction.sh BUILD_DIR [PENS=4] [ROUNDS=20] [FACTOR=20]
# Environment: BENCH_KEEP=1 keeps the scratch directory.
set -euo pipefail

[ $# -ge 1 ] && [ -d "$1" ] || { echo "usage: $0 BUILD_DIR [PENS] [ROUNDS] [FACTOR]" >&2; exit 2; }
build=$(cd "$1" && pwd)
pens=${2:-4}
rounds=${3:-20}
factor=${4:-20}
gwd=$build/gateway/daemon/needlelinkd
sim=$build/firmware-sim/needlelink-sim
ctl=$build/gateway/ctl/needlelinkctl
for b in "$gwd" "$sim" "$ctl"; do [ -x "$b" ] || { echo "bench: $b missing" >&2; exit 1; }; done
mosquitto=$(command -v mosquitto || echo /usr/sbin/mosquitto)

tmp=$(mktemp -d "${TMPDIR:-/tmp}/nl-bench-limits.XXXXXX")
pids=()
cleanup() {
	trap - EXIT INT TERM
	for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	[ "${BENCH_KEEP:-0}" = 1 ] && echo "bench: kept $tmp" >&2 || rm -rf "$tmp"
}
trap cleanup EXIT INT TERM

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
mkdir -p "$tmp/radio" "$tmp/state"
printf 'listener %s 127.0.0.1\nallow_anonymous true\n' "$port" >"$tmp/mosquitto.conf"
"$mosquitto" -c "$tmp/mosquitto.conf" >"$tmp/mosquitto.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do
	(exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
	sleep 0.1
done

: >"$tmp/policy.conf"
printf '[limits]\npolicy = %s\n' "$tmp/policy.conf" >"$tmp/gw.conf"
mosquitto_sub -h 127.0.0.1 -p "$port" -t 'needlelink/pens/+/alerts' >"$tmp/alerts.log" 2>/dev/null &
pids+=($!)
"$gwd" --config "$tmp/gw.conf" --id bench --host 127.0.0.1 --port "$port" \
	--journal "$tmp/journal.db" --allow '*' --sim-dir "$tmp/radio" --log-level notice \
	--max-connections "$((pens > 4 ? pens : 4))" --stats >"$tmp/gw.log" 2>&1 &
gw=$!
pids+=($gw)

cat >"$tmp/scenario.json" <<'EOF'
{
  "name": "limits-reaction",
  "description": "bench: every session runs 1.5 mm on the forehead (cap 0.75) on a pen that enforces nothing",
  "pen": { "serial": "BENCH-LIM", "live_rate_hz": 20 },
  "cartridges": { "c": { "uid": "auto", "lot": "BENCH", "needles": 12, "length_mm": 2.5 } },
  "loop": true,
  "loop_pause_s": 1,
  "timeline": [
    { "do": "misbehave", "ignore": ["caps", "clamp", "lock"] },
    { "do": "insert", "cartridge": "c" },
    { "do": "wait_armed", "timeout_s": 1000000 },
    { "after": 1, "do": "zone", "zone": "forehead" },
    { "do": "depth", "mm": 1.5 },
    { "after": 1, "do": "start_pass" },
    { "after": 20, "do": "end_pass" },
    { "after": 1, "do": "end_session" },
    { "after": 1, "do": "remove" }
  ]
}
EOF
"$sim" -s "$tmp/scenario.json" -n "$pens" -t "$factor" --radio-dir "$tmp/radio" \
	--state-dir "$tmp/state" --wipe -d 100000000 -q >"$tmp/sim.log" 2>&1 &
pids+=($!)

ctl_auth() { # serial patient: exit status of needlelinkctl authorise
	"$ctl" --config "$tmp/gw.conf" authorise "$1" --host 127.0.0.1 --port "$port" \
		--timeout 10 --patient "$2" --operator bench-op --role physician \
		--skin-type III --zones forehead >>"$tmp/ctl.log" 2>&1
}

echo "bench: $pens pen(s), $rounds session(s) each, time factor $factor (scratch $tmp)"
applied=0
start=$(date +%s)
for r in $(seq "$rounds"); do
	for i in $(seq "$pens"); do
		serial=$(printf 'BENCH-LIM-%03d' "$i")
		ok=0
		for _ in $(seq 300); do # the pen becomes ready again after its last session
			if ctl_auth "$serial" "p-bench-$i-$r"; then ok=1; break; fi
			sleep 0.1
		done
		[ $ok = 1 ] && applied=$((applied + 1)) || echo "bench: $serial round $r: not authorised (see ctl.log)" >&2
	done
done
# Let the last sessions run into their violations.
sleep $((20 / factor + 3))
kill -TERM "$gw"
wait "$gw" || true
secs=$(($(date +%s) - start))

clamps=$(grep -c '"action":"clamp"' "$tmp/alerts.log" || true)
locks=$(grep -c '"action":"lock"' "$tmp/alerts.log" || true)
echo "sessions authorised: $applied in ${secs} s"
echo "enforcement alerts on MQTT: $clamps clamp, $locks lock"
line=$(grep -o 'stats: limits reaction.*' "$tmp/gw.log" || true)
if [ -n "$line" ]; then
	echo "gateway: $line"
else
	echo "gateway: no 'stats: limits reaction' line in its log:" >&2
	grep 'stats:' "$tmp/gw.log" >&2 || tail -5 "$tmp/gw.log" >&2
	exit 1
fi
grep -o 'stats: .*' "$tmp/gw.log" | grep -v 'limits reaction' | sed 's/^/gateway: /' || true
