#!/usr/bin/env bash
# Throughput and latency of needlelinkd, printed (not a test):
#   N simulated pens each writing about RATE records per second (each pen
#   sends what it has every 20 ms, the pens in phases spread over those
#   20 ms as a central's connection events are; firmware-sim/README.md), through
#   needlelinkd (journal: SQLite WAL, synced before pens are acknowledged)
#   to a private mosquitto and a QoS 1 subscriber; then, against the same broker, a plain Paho QoS 1
#   publisher sending as many messages of the same size; and the ratio.
#
# Usage: bench/run-bench.sh BUILD_DIR [PENS=8] [RATE=250] [SECONDS=20]
#        BENCH_MODE=catchup bench/run-bench.sh BUILD_DIR [PENS=8] [-] [SECONDS=20]
# BENCH_MODE=catchup measures throughput rather than latency at a set rate:
# the pens first record offline (no radio, fast time) until their stores
# are nearly full (about 3,600 records each), as after a day out of range;
# then they come into range and the gateway collects everything by RACP as
# fast as it can (RATE is ignored; the pens stream at time factor 1).
# The pens run from a scenario with a 4096-record store (the most the
# simulator takes) and their flash on tmpfs, so what is measured is the
# gateway, not the pens' own flash syncs or a 256-record store filling up.
# A simulated pen streams at most 16 record segments per 20 ms tick, so
# more PENS is the way to offer more than ~800 records/s per pen.
# Figures:
#   fsync floor 4 KiB write + fdatasync on the journal's disk: a record is
#               acknowledged to its pen only after such a sync of the WAL
#               (made off the loop by the journal's syncer thread); it may be
#               published before (see docs/mqtt-api.md, delivery)
#   delivered   unique records the subscriber got, and records/s over the
#               window from the first to the last one, and in the busiest
#               second (in catch-up mode the stores empty in a burst of a few
#               seconds, then only new records trickle in: the mean hides it)
#   durable     records committed and synced (the point where the pen is
#               acknowledged) per second: busiest second, mean, and the rate
#               of the first 90% (in catch-up mode: the stored records)
#   e2e latency subscriber receive time minus the record's received_at
#               (gateway clock on arrival; ms resolution): arrival -> journal
#               commit -> PUBLISH -> broker -> subscriber
#   gateway     needlelinkd --stats: gateway-added latency from a record's
#               arrival (its last notification read) to its PUBLISH handed to
#               Paho, and to its commit callback (durable), percentiles in us;
#               journal commits (writes per commit, time the loop spent in
#               them, what closed each batch: the loop going idle, the delay
#               timer (0.25 ms, up to 1 ms once the loop stays busy for 10 ms), or size
#               and the delay seen at the next write), WAL syncs and checkpoints (off the loop), outbox
#               publishes made before their commit, times the outbox fell a
#               window behind (pen input then goes first, see docs/mqtt-api.md,
#               Delivery); CPU time per record, peak
#               and final RSS
#   paho        a plain Paho QoS 1 publisher, same count and size, same broker;
#               the ratio divides the delivered rate (catch-up mode: of the
#               busiest second) by its rate
# The gateway runs with its defaults, [gateway] cpu = auto among them: the
# loop and Paho's threads on the highest-numbered CPU (README.md).
# Environment: BENCH_KEEP=1 keeps the scratch directory; BENCH_LOG_LEVEL sets
# the gateway's log level; BENCH_CONFIG a config file for the gateway (e.g.
# another [mqtt] max_inflight, or [gateway] cpu = none); BENCH_EARLY=1 runs the gateway with [mqtt]
# publish_before_commit = true (see docs/mqtt-api.md, Delivery); BENCH_ATTACH
# attaches a profiler (below).
# Needs python3 for the arithmetic.
set -euo pipefail

[ $# -ge 1 ] && [ -d "$1" ] || { echo "usage: $0 BUILD_DIR [PENS] [RATE] [SECONDS]" >&2; exit 2; }
build=$(cd "$1" && pwd)
pens=${2:-8}
rate=${3:-250}
secs=${4:-20}
gwd=${BENCH_GATEWAY:-$build/gateway/daemon/needlelinkd} # BENCH_GATEWAY: another build of it
sim=$build/firmware-sim/needlelink-sim
paho=$build/bench/nl-bench-paho
fsyncb=$build/bench/nl-bench-fsync
for b in "$gwd" "$sim" "$paho" "$fsyncb"; do [ -x "$b" ] || { echo "bench: $b missing" >&2; exit 1; }; done
mosquitto=$(command -v mosquitto || echo /usr/sbin/mosquitto)

tmp=$(mktemp -d "${TMPDIR:-/tmp}/nl-bench.XXXXXX")
pids=()
cleanup() {
	trap - EXIT INT TERM
	for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	[ -n "${state:-}" ] && [ "$state" != "$tmp/state" ] && rm -rf "$state"
	[ "${BENCH_KEEP:-0}" = 1 ] && echo "bench: kept $tmp" >&2 || rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

"$fsyncb" "$tmp" 300
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
printf 'listener %s 127.0.0.1\nallow_anonymous true\npersistence false\nmax_queued_messages 0\nmax_inflight_messages 0\n' \
	"$port" >"$tmp/mosquitto.conf"
"$mosquitto" -c "$tmp/mosquitto.conf" >"$tmp/mosquitto.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 40); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.25; done

# A pen doing 50 passes of 0.1 s per loop: about 10 records per scenario
# second, so the time factor is RATE / 10.
python3 - "$tmp/bench.json" "${BENCH_BURST:-16}" <<'EOF'
import json, sys
t = [{"do": "insert", "cartridge": "c"},
     {"do": "wait_armed", "timeout_s": 0.1},
     {"do": "authorise", "lifetime_s": 86400, "limits": {"lifetime_s": 86400, "depth_cap_mm": 1.5}},
     {"after": 0.05, "do": "zone", "zone": "cheeks"}, {"do": "depth", "mm": 0.5}]
for _ in range(50):
    t += [{"after": 0.05, "do": "start_pass"}, {"after": 0.05, "do": "end_pass"}]
t += [{"after": 0.05, "do": "end_session"}, {"after": 0.05, "do": "remove"}]
json.dump({"name": "bench", "pen": {"serial": "BENCH", "kind": "motorised", "live_rate_hz": 1,
                                   "store_capacity": 4096, "notify_burst": int(sys.argv[2])},
           "cartridges": {"c": {"uid": "auto", "lot": "BENCH"}},
           "loop": True, "loop_pause_s": 0.05, "timeline": t}, open(sys.argv[1], "w"))
EOF
mode=${BENCH_MODE:-rate}
case "$mode" in
rate) factor=$(python3 -c "print(max(1, $rate / 10))") ;;
catchup) factor=1 ;;
*) echo "bench: BENCH_MODE: rate or catchup" >&2; exit 2 ;;
esac

mosquitto_sub -h 127.0.0.1 -p "$port" -q 1 -t 'needlelink/pens/+/records' -F '%U %p' >"$tmp/sub.log" &
pids+=($!)
# The pens' flash lives on tmpfs when there is one: a simulated pen syncs its
# flash per record and per ACK, and on a shared disk those syncs, not the
# gateway, would set the rate. The gateway's journal stays on $tmp (a disk).
state=$tmp/state
[ -d /dev/shm ] && [ -w /dev/shm ] && state=$(mktemp -d /dev/shm/nl-bench-state.XXXXXX)
mkdir -p "$tmp/radio" "$state"
if [ "$mode" = catchup ]; then
	# Offline first: scenario time runs 1000x, the stores fill (the pens
	# then refuse new passes: store full), nothing is sent.
	"$sim" -s "$tmp/bench.json" -n "$pens" -t 1000 --no-radio --state-dir "$state" --wipe -q \
		-d 3600 2>"$tmp/sim-offline.log"
fi
"$gwd" --config "${BENCH_CONFIG:-/dev/null}" --id bench --host 127.0.0.1 --port "$port" --journal "$tmp/journal.db" \
	--allow '*' --sim-dir "$tmp/radio" --max-connections "$pens" --log-level "${BENCH_LOG_LEVEL:-notice}" --stats \
	--set "mqtt.publish_before_commit=$([ "${BENCH_EARLY:-0}" = 1 ] && echo true || echo false)" \
	2>"$tmp/gw.log" &
gw=$!
pids+=($gw)
# BENCH_ATTACH: a profiler to attach to the gateway, {} stands for its pid,
# e.g. BENCH_ATTACH='perf record -g -o /tmp/gw.data -p {}' or 'strace -c -f -p {}'.
if [ -n "${BENCH_ATTACH:-}" ]; then
	${BENCH_ATTACH//\{\}/$gw} 2>"$tmp/attach.log" &
	pids+=($!)
fi
wipe=--wipe tick=
[ "$mode" = catchup ] && wipe=
# BENCH_TICK_MS: the pens' tick (needlelink-sim --tick-ms; default 20) and
# BENCH_BURST: record segments a catching-up pen sends per tick (the
# scenario's notify_burst, default 16). A pen also holds back while 64 frames
# wait for the gateway to read them, so short ticks and large bursts offer as
# much as the gateway takes (e.g. BENCH_TICK_MS=2 BENCH_BURST=64).
[ -n "${BENCH_TICK_MS:-}" ] && tick="--tick-ms $BENCH_TICK_MS"
"$sim" -s "$tmp/bench.json" -n "$pens" -t "$factor" --radio-dir "$tmp/radio" \
	--state-dir "$state" $wipe $tick -q -d "$(python3 -c "print($secs * $factor)")" \
	2>"$tmp/sim.log" &
simpid=$!
pids+=($simpid)
if [ "$mode" = catchup ]; then
	echo "bench: $pens pens catching up their stores for ${secs}s, broker port $port" >&2
else
	echo "bench: $pens pens x ~$rate records/s for ${secs}s (time factor $factor), broker port $port" >&2
fi
wait "$simpid" || true
sleep 2 # let the last commits drain to the subscriber
rss_now=$(awk '/VmRSS/ {print $2}' "/proc/$gw/status")
kill -TERM "$gw"
wait "$gw" || true

python3 - "$tmp/sub.log" "$tmp/gw.log" "$rss_now" "$pens" "$mode" <<'EOF' | tee "$tmp/figures.txt"
import json, re, sys
from datetime import datetime
sub, gwlog, rss_now, pens, mode = sys.argv[1], sys.argv[2], int(sys.argv[3] or 0), int(sys.argv[4]), sys.argv[5]
seen, lat, t = set(), [], []
size = 0
for line in open(sub):
    ts, _, payload = line.partition(" ")
    p = json.loads(payload)
    if p["record_id"] in seen:
        continue
    seen.add(p["record_id"])
    size += len(payload)
    recv = float(ts)
    arr = (datetime.strptime(p["received_at"], "%Y-%m-%dT%H:%M:%S.%fZ")
           - datetime(1970, 1, 1)).total_seconds()
    lat.append((recv - arr) * 1000)
    t.append(recv)
n = len(seen)
def pct(v, q):
    v = sorted(v)
    return v[min(len(v) - 1, int(len(v) * q))] if v else float("nan")
window = (max(t) - min(t)) if n > 1 else float("nan")
print("delivered: %d unique records in %.2f s = %.0f records/s (%d pens), mean payload %d bytes"
      % (n, window, n / window if n > 1 else 0, pens, size // max(n, 1)))
# The busiest second (a sliding window over receive times): in catch-up
# mode the stores empty in a burst, and the mean over the whole run hides it.
ts, best, lo = sorted(t), 0, 0
for hi in range(len(ts)):
    while ts[hi] - ts[lo] >= 1.0:
        lo += 1
    best = max(best, hi - lo + 1)
print("delivered: busiest second %d records/s" % best)
print("e2e latency ms (ms resolution): p50 %.1f p90 %.1f p99 %.1f max %.1f"
      % (pct(lat, .5), pct(lat, .9), pct(lat, .99), max(lat) if lat else float("nan")))
log = open(gwlog).read()
m = re.search(r"stats: (\d+) records, arrival->commit latency us p50 (\d+) p90 (\d+) p99 (\d+) max (\d+)", log)
c = re.search(r"stats: cpu user ([\d.]+) s system ([\d.]+) s, max rss (\d+) kB", log)
if m:
    print("gateway arrival->commit us: p50 %s p90 %s p99 %s max %s (%s records)"
          % (m.group(2), m.group(3), m.group(4), m.group(5), m.group(1)))
m = re.search(r"stats: durable records (\d+), per second: busiest second (\d+), mean (\d+) over ([\d.]+) s from first to last, first 90% in ([\d.]+) s = (\d+)", log)
if m:
    print("durable (journal commit, pen acknowledged): busiest second %s records/s, mean %s records/s"
          " over %s s (%s records); the first 90%% in %s s = %s records/s"
          % (m.group(2), m.group(3), m.group(4), m.group(1), m.group(5), m.group(6)))
m = re.search(r"stats: (\d+) records, arrival->publish latency us p50 (\d+) p90 (\d+) p99 (\d+) max (\d+)", log)
if m:
    print("gateway-added latency, arrival->PUBLISH us: p50 %s p90 %s p99 %s max %s (%s records)"
          % (m.group(2), m.group(3), m.group(4), m.group(5), m.group(1)))
m = re.search(r"stats: journal (\d+) commits, (\d+) writes, commit us mean (\d+) max (\d+) total (\d+)", log)
if m:
    print("journal: %s commits, %.1f writes per commit, commit (loop blocked) us mean %s max %s, %.2f s in all"
          % (m.group(1), int(m.group(2)) / max(1, int(m.group(1))), m.group(3), m.group(4), int(m.group(5)) / 1e6))
m = re.search(r"stats: journal batches committed by the loop going idle (\d+), by the delay timer (\d+), full or flushed (\d+)", log)
if m:
    print("journal: batches committed when the loop went idle %s, by the delay timer %s, full or flushed %s"
          % m.groups())
m = re.search(r"stats: journal (\d+) syncs, sync us mean (\d+) max (\d+), (\d+) checkpoints, (\d+) us", log)
if m:
    print("journal: %s WAL syncs off the loop, us mean %s max %s; %s checkpoints off the loop, %.2f s"
          % (m.group(1), m.group(2), m.group(3), m.group(4), int(m.group(5)) / 1e6))
m = re.search(r"stats: mqtt (\d+) outbox publishes, (\d+) before their commit, \d+ acknowledged; the outbox fell a window behind (\d+) times", log)
if m:
    print("mqtt: %s outbox publishes, %s of them before their commit; the outbox fell a window behind"
          " (pen input first) %s times" % m.groups())
if c:
    cpu = float(c.group(1)) + float(c.group(2))
    print("gateway cpu: %.2f s total, %.1f us per record; rss peak %d kB, at end %d kB"
          % (cpu, cpu * 1e6 / max(n, 1), int(c.group(3)), rss_now))
print("RECORDS=%d RATE=%.0f SIZE=%d" % (n, best if mode == "catchup" else (n / window if n > 1 else 0), size // max(n, 1)))
EOF
read -r n grate size < <(awk -F'[= ]' '/^RECORDS=/ {print $2, $4, $6}' "$tmp/figures.txt")
[ "${n:-0}" -gt 0 ] || { echo "bench: nothing delivered; see $tmp" >&2; BENCH_KEEP=1; exit 1; }
line=$("$paho" 127.0.0.1 "$port" "$n" "$size" 256)
echo "$line"
prate=$(echo "$line" | sed -n 's/.*rate=\([0-9]*\).*/\1/p')
python3 -c "print('ratio gateway/paho: %.2f' % ($grate / $prate))"
