#!/usr/bin/python3
"""bluez-vm: needlelinkd itself on the BlueZ transport, end to end.

Usage: test_daemon_bluez.py bluez|parity|spoof BUILD_DIR SOURCE_DIR SCENARIO

In the guest (real bluetoothd, two btvirt LE controllers), with mosquitto on
a random loopback port and mosquitto_sub subscribed to everything
(tests/e2e/e2e.py's Env and checks, reused):

bluez   needlelinkd with transport bluez on the second adapter (hci1), the
        scenario's pen allow-listed; needlelink-sim --radio bluez on the first
        adapter (hci0) runs SCENARIO (link-loss: a link drop mid-session)
        with --linger. Checks:
          - a "pair" request before anything is pending fails nothing_pending;
          - the gateway asks for the passkey on MQTT (pairing_passkey_wanted
            alert); the passkey the simulator logs, sent with needlelinkctl
            pair (the MQTT "pair" request, MQTT 5 response topic), is
            answered ok; the pen bonds (pen_bonded alert) and its identity
            address (hci0's) is bound to its serial in the bonds file;
          - every record of the simulator's --summary arrives on MQTT once
            (deduped by record_id), with one session summary per session,
            the pen acknowledged every record (store empty), the link drop
            took the pen offline and back online with nothing lost.
        The records and sessions, normalised, go to
        $NL_VM_RESULTS/tests/parity-bluez.json; pairing figures are logged.
parity  the same scenario through the simulator transport (local radio) in
        the same guest: the same checks, then the normalised records and
        sessions must equal those of the bluez run. A "pair" request fails
        wrong_transport there.
spoof   the bonds file binds the scenario's serial to another address
        before the gateway starts (as if that pen had bonded earlier); the
        simulator advertises the serial from hci0: the gateway refuses it
        with one spoofed_serial alert naming both addresses, never asks for
        a passkey, never connects (the simulator runs its whole scenario
        unconnected), publishes no record, and leaves the binding alone.

Normalisation (what differs by transport or by run, not by what the pen
recorded) drops: msg_id and received_at (the gateway's outbox id and clock on
arrival), store_epoch and record_id (random at every --wipe), every time and
raw clock reading (old_pen_s, new_pen_s: the simulated pen's clock starts at
the wall clock), cartridge UIDs (partly random per run); session ids (random
per session) become ordinals; fractional seconds the pen measured
(duration_s) compare within one simulator tick at the time factor (0.02 s of
wall time, 1.2 s at x60), and the duration_s of a session the authorisation
lifetime ended (a timer of the pen, run on the simulator's tick, which comes
late under load and so ends the session up to seconds later at x60) is left
out. time_change records are left
out, and with them seq (which they shift): the pen writes one each time the
gateway sets its clock on connecting (drift above 2 s), and at a time factor
the simulated clock drifts a minute per second, so how many there are and
where they fall depends on when links come up, which is the transport's (a
pairing first over BlueZ). Record order is compared instead of seq; check_pen
already checked every record, time_change included, against the pen's own
summary in each run. What stays: type, seq,
session order, flags and every other data member (zones, passes, depths,
durations, strokes, limit events, reasons...).
"""
import json
import os
import re
import signal
import subprocess
import sys
import time

MODE, BUILD, SRC, SCENARIO = sys.argv[1:5]
sys.path.insert(0, os.path.join(SRC, "tests/e2e"))
sys.path.insert(0, os.path.join(SRC, "tests/bluez-vm/guest"))
sys.path.insert(0, os.path.join(SRC, "tests/bluez-vm/peripheral"))
import e2e  # noqa: E402
from e2e import BASE, Failure, check  # noqa: E402

if MODE in ("bluez", "spoof"):
    import nl_bluez as nb  # noqa: E402

FACTOR = 60
RESULTS = os.environ.get("NL_VM_RESULTS", "/tmp")
PARITY_FILE = os.path.join(RESULTS, "tests", "parity-bluez.json")
GW_ID = "e2e-gw"  # e2e.gateway_online() looks at this id
ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")
DROP = {"msg_id", "received_at", "store_epoch", "record_id", "uid", "cartridge_uid",
        "old_pen_s", "new_pen_s", "seq"}
# A session ended by the pen's own timer (authorisation lifetime) ends at the
# first pen tick after it expires: the simulator ticks every 20 ms of wall
# time, i.e. 0.02 * FACTOR scenario seconds, so measured durations (floats)
# may differ by up to one tick between runs; everything event-timed (ints such
# as needle_on_s, strokes) is exact.
FLOAT_TOLERANCE = 0.02 * FACTOR
# Sessions ended by a timer of the pen rather than by a scenario event: the
# simulator runs its timers on its tick, and under load (qemu TCG) a tick
# comes late by some wall milliseconds, which moves the end by that lateness
# times FACTOR (a 60 ms stall: 3.6 s). Their duration_s is a property of the
# simulator's scheduling, not of the transport: left out.
TIMER_ENDED = {"lifetime"}


def normalise(v, sessions):
    """sessions: session_id -> ordinal, filled in order of appearance."""
    if isinstance(v, dict):
        out = {}
        for k, x in v.items():
            if k in DROP:
                continue
            # A session the pen's own timer ended: see TIMER_ENDED.
            if k == "duration_s" and v.get("reason") in TIMER_ENDED:
                continue
            if k == "session_id" and isinstance(x, int):
                x = sessions.setdefault(x, len(sessions) + 1)
            out[k] = normalise(x, sessions)
        return out
    if isinstance(v, list):
        return [normalise(x, sessions) for x in v]
    if isinstance(v, str) and ISO.match(v):
        return "<time>"
    return v


def same(a, b):
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, float) or isinstance(b, float):
        return (isinstance(a, (int, float)) and isinstance(b, (int, float))
                and abs(a - b) <= FLOAT_TOLERANCE)
    return a == b


def serial_of(path):
    with open(path) as f:
        return json.load(f)["pen"]["serial"]


def start_gw(env, serial, extra):
    return env.spawn("gw", [env.gwd, "--config", "/dev/null", "--id", GW_ID,
                            "--port", str(env.port), "--host", "127.0.0.1",
                            "--journal", env.path("journal.db"), "--allow", serial,
                            "--log-level", "debug", "--health-interval", "2", *extra],
                     "gw.log")


def request(env, serial, op, params, txn):
    subprocess.run(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(env.port), "-q", "1",
                    "-t", "%s/pens/%s/request/%s" % (BASE, serial, op),
                    "-m", json.dumps({"schema": "needlelink/request/1", "transaction": txn,
                                      "params": params})], check=True, timeout=20)

    def answer():
        for t, p in env.messages():
            if (t == "%s/pens/%s/response/%s" % (BASE, serial, op) and isinstance(p, dict)
                    and p.get("transaction") == txn):
                return p
        return None
    return env.wait_for(answer, 30, "the %s response %s" % (op, txn))


def alerts(env, serial, rule=None):
    return [p for t, p in env.messages()
            if t == "%s/pens/%s/alerts" % (BASE, serial) and isinstance(p, dict)
            and (rule is None or p.get("rule") == rule)]


def max_seq(env, serial):
    recs = e2e.records_of(env, serial)
    return max((p["seq"] for p in recs.values()), default=0), len(recs)


# The pen idles this long (scenario seconds) before its timeline: the
# scenario's link drop must find the gateway connected (over BlueZ a drop
# only drops a connected central), pairing included. The same copy runs in
# every mode, so the records stay comparable.
LEAD_IN_S = 900


def scenario_copy(env):
    with open(SCENARIO) as f:
        scn = json.load(f)
    scn["timeline"].insert(0, {"after": LEAD_IN_S, "do": "note",
                               "text": "bluez-vm: lead-in, the gateway connects"})
    out = env.path("scenario.json")
    with open(out, "w") as f:
        json.dump(scn, f)
    return out


def run_pen(env, key, serial, argv_extra, on_started=None):
    """Runs the scenario with --linger until it finished and the gateway
    holds and acknowledged every record; stops the simulator; returns its
    --summary entry."""
    argv = [env.sim, "-s", scenario_copy(env), "-t", str(FACTOR), "--linger", "--wipe",
            "--state-dir", env.path("state"), "--summary", env.path("summary-%s.json" % key),
            *argv_extra]
    t0 = time.monotonic()
    env.spawn(key, argv, "sim-%s.log" % key)
    if on_started:
        on_started(t0)
    log = env.path("sim-%s.log" % key)
    env.wait_for(lambda: "scenario finished" in open(log, errors="replace").read(), 240,
                 "the scenario to finish")

    def written():
        """The highest seq the pen logged writing ("record seq=N ...")."""
        return max((int(m) for m in re.findall(r"record seq=(\d+)",
                                               open(log, errors="replace").read())), default=0)

    def settled():
        hi, n = max_seq(env, serial)
        return hi > 0 and n == hi == written() and e2e.acked_through(env, key) >= hi
    env.wait_for(settled, 180, "every record on MQTT and acknowledged by the pen")
    check(env.stop(key) == 0, "simulator exits 0 on SIGTERM")
    with open(env.path("summary-%s.json" % key)) as f:
        pens = json.load(f)["pens"]
    check(len(pens) == 1 and pens[0]["serial"] == serial, "summary of the one pen %s" % serial)
    return pens[0]


def collect(env, pen):
    recs = e2e.check_pen(env, pen, SCENARIO)
    serial = pen["serial"]
    check(pen["link_drops"] >= 1, "the pen dropped its link (%d)" % pen["link_drops"])
    av = [p["state"] for t, p in env.messages()
          if t == "%s/pens/%s/availability" % (BASE, serial) and isinstance(p, dict)]
    want, i = ["online", "offline", "online"], 0
    for state in av:
        if i < len(want) and state == want[i]:
            i += 1
    check(i == len(want), "availability online, offline during the drop, online again: %s" % av)
    sessions = {}
    for t, p in env.messages():
        if t == "%s/pens/%s/sessions" % (BASE, serial) and isinstance(p, dict):
            sessions[p["seq"]] = p
    ids = {}
    order = sorted(recs, key=lambda k: recs[k]["seq"])
    return {
        "records": [normalise(recs[k], ids) for k in order if recs[k]["type"] != "time_change"],
        "sessions": [normalise(sessions[s], ids) for s in sorted(sessions)],
    }


def finish(env):
    check(env.stop("gw") == 0, "needlelinkd exits 0 on SIGTERM")
    text = open(env.path("gw.log"), errors="replace").read()
    check("AddressSanitizer" not in text and "runtime error:" not in text,
          "no sanitizer report in gw.log")


# ---- bluez ------------------------------------------------------------------

def forget(bus, keep_none_between):
    (a0, p0), (a1, p1) = keep_none_between
    for adapter, peer in ((a1, str(p0["Address"])), (a0, str(p1["Address"]))):
        for path, ifs in nb.managed_objects(bus).items():
            dev = ifs.get(nb.DEVICE)
            if (dev is not None and str(path).startswith(adapter + "/") and
                    str(dev.get("Address", "")).upper() == peer.upper()):
                nb.dbus.Interface(nb.dbus.SystemBus().get_object(nb.BLUEZ, adapter),
                                  nb.ADAPTER).RemoveDevice(nb.dbus.ObjectPath(path),
                                                           timeout=nb.CALL_TIMEOUT)
                print("removed %s" % path, flush=True)


def case_bluez(env):
    bus = nb.dbus.SystemBus()
    found = nb.adapters(bus)
    check(len(found) == 2, "two adapters (%d)" % len(found))
    for path, _ in found:
        nb.set_powered(bus, path, True)
    forget(bus, found)
    pen_hci = found[0][0].rsplit("/", 1)[-1]
    gw_hci = found[1][0].rsplit("/", 1)[-1]
    pen_addr = str(found[0][1]["Address"]).upper()
    serial = serial_of(SCENARIO)

    env.start_broker()
    env.start_sub()
    start_gw(env, serial, ["--transport", "bluez", "--set", "transport.adapter=" + gw_hci])
    gwlog = lambda: open(env.path("gw.log"), errors="replace").read()  # noqa: E731
    env.wait_for(lambda: "pairing agent registered" in gwlog() and "discovery on" in gwlog(),
                 60, "the gateway's agent and discovery")
    r = request(env, serial, "pair", {"passkey": 123456}, "pair-early")
    check(r["status"] == "failed" and r["error"]["code"] == "nothing_pending",
          "pair before bluetoothd asks: failed nothing_pending (%s)" % r.get("error"))

    fig = {}

    def on_started(t0):
        fig["t0"] = t0
        log = env.path("sim-pen.log")
        m = env.wait_for(lambda: re.search(r"passkey (\d{6})", open(log).read()), 120,
                         "the simulator's passkey")
        passkey = int(m.group(1))
        env.wait_for(lambda: alerts(env, serial, "pairing_passkey_wanted"), 60,
                     "the pairing_passkey_wanted alert")
        fig["asked"] = time.monotonic()
        ctl = subprocess.run([os.path.join(BUILD, "gateway/ctl/needlelinkctl"),
                              "--config", "/dev/null", "--host", "127.0.0.1",
                              "--port", str(env.port), "--json", "--timeout", "30",
                              "pair", serial, "--passkey", "%06d" % passkey],
                             capture_output=True, text=True, timeout=60)
        r = json.loads(ctl.stdout or "{}")
        check(ctl.returncode == 0 and r.get("status") == "ok"
              and r.get("result") == {"answered": "passkey"},
              "needlelinkctl pair --passkey with the simulator's passkey: ok, exit 0"
              " (%d %s %s)" % (ctl.returncode, r, ctl.stderr.strip()))
        env.wait_for(lambda: alerts(env, serial, "pen_bonded"), 90, "the pen_bonded alert")
        fig["bonded"] = time.monotonic()

    pen = run_pen(env, "pen", serial, ["--radio", "bluez", "--adapter", pen_hci], on_started)
    print("figures: passkey wanted %.1f s after the simulator started, bonded %.1f s after"
          " the passkey request" % (fig["asked"] - fig["t0"], fig["bonded"] - fig["asked"]),
          flush=True)
    with open(env.path("journal.db.bonds")) as f:
        lines = [l.split() for l in f if l.strip() and not l.startswith("#")]
    check(lines == [[serial, pen_addr]],
          "bonds file binds %s to the pen's identity address %s (%s)" % (serial, pen_addr, lines))
    check(not alerts(env, serial, "spoofed_serial"), "no spoofed_serial alert")
    check("dropping the BlueZ central" in open(env.path("sim-pen.log"), errors="replace").read(),
          "the scenario's link drop dropped the gateway's link")
    out = collect(env, pen)
    finish(env)
    os.makedirs(os.path.dirname(PARITY_FILE), exist_ok=True)
    with open(PARITY_FILE, "w") as f:
        json.dump(out, f, indent=1, sort_keys=True)
    print("%d records, %d sessions written to %s" % (len(out["records"]), len(out["sessions"]),
                                                     PARITY_FILE), flush=True)


# ---- spoof --------------------------------------------------------------------

def case_spoof(env):
    bus = nb.dbus.SystemBus()
    found = nb.adapters(bus)
    check(len(found) == 2, "two adapters (%d)" % len(found))
    for path, _ in found:
        nb.set_powered(bus, path, True)
    forget(bus, found)
    pen_hci = found[0][0].rsplit("/", 1)[-1]
    gw_hci = found[1][0].rsplit("/", 1)[-1]
    pen_addr = str(found[0][1]["Address"]).upper()
    serial = serial_of(SCENARIO)
    bound = "00:11:22:33:44:55"
    check(pen_addr != bound, "the pen's address %s is not the bound one" % pen_addr)
    # The serial bonded earlier as another device.
    with open(env.path("journal.db.bonds"), "w") as f:
        f.write("# written by the test\n%s %s\n" % (serial, bound))

    env.start_broker()
    env.start_sub()
    start_gw(env, serial, ["--transport", "bluez", "--set", "transport.adapter=" + gw_hci])
    gwlog = lambda: open(env.path("gw.log"), errors="replace").read()  # noqa: E731
    env.wait_for(lambda: "pairing agent registered" in gwlog() and "discovery on" in gwlog(),
                 60, "the gateway's agent and discovery")
    check("1 bonded pen identities" in gwlog(), "the gateway read the bonds file")
    argv = [env.sim, "-s", SCENARIO, "-t", str(FACTOR), "--linger", "--wipe",
            "--state-dir", env.path("state"), "--radio", "bluez", "--adapter", pen_hci]
    env.spawn("pen", argv, "sim-pen.log")
    a = env.wait_for(lambda: alerts(env, serial, "spoofed_serial"), 60,
                     "the spoofed_serial alert")
    check(a[0]["severity"] == "critical" and pen_addr in a[0]["message"]
          and bound in a[0]["message"],
          "spoofed_serial alert names both addresses: %s" % a[0]["message"])
    # The pen runs its whole scenario meanwhile: had the gateway paired or
    # connected, it would have shown by then.
    log = env.path("sim-pen.log")
    env.wait_for(lambda: "scenario finished" in open(log, errors="replace").read(), 240,
                 "the scenario to finish")
    text = open(log, errors="replace").read()
    check("passkey" not in text and "connected" not in text,
          "the refused device was never paired nor connected (simulator log)")
    check(not alerts(env, serial, "pairing_passkey_wanted"), "no pairing was asked for")
    check(not e2e.records_of(env, serial), "no record of the refused device on MQTT")
    av = [p["state"] for t, p in env.messages()
          if t == "%s/pens/%s/availability" % (BASE, serial) and isinstance(p, dict)]
    check("online" not in av, "the pen never went online: %s" % av)
    check(len(alerts(env, serial, "spoofed_serial")) == 1,
          "one spoofed_serial alert for the pair of serial and address")
    with open(env.path("journal.db.bonds")) as f:
        lines = [l.split() for l in f if l.strip() and not l.startswith("#")]
    check(lines == [[serial, bound]], "the binding is unchanged (%s)" % lines)
    check(env.stop("pen") == 0, "simulator exits 0 on SIGTERM")
    finish(env)


# ---- parity -------------------------------------------------------------------

def case_parity(env):
    check(os.path.exists(PARITY_FILE), "the bluez run left %s" % PARITY_FILE)
    with open(PARITY_FILE) as f:
        want = json.load(f)
    serial = serial_of(SCENARIO)
    env.start_broker()
    env.start_sub()
    start_gw(env, serial, ["--transport", "sim", "--sim-dir", env.path("radio")])
    env.wait_for(lambda: e2e.gateway_online(env), 30, "the gateway online")
    r = request(env, serial, "pair", {"confirm": True}, "pair-sim")
    check(r["status"] == "failed" and r["error"]["code"] == "wrong_transport",
          "pair on the simulator transport: failed wrong_transport (%s)" % r.get("error"))
    pen = run_pen(env, "pen", serial, ["--radio-dir", env.path("radio")])
    got = collect(env, pen)
    finish(env)
    with open(os.path.join(RESULTS, "tests", "parity-sim.json"), "w") as f:
        json.dump(got, f, indent=1, sort_keys=True)
    for kind in ("records", "sessions"):
        a, b = want[kind], got[kind]
        diff = [(i, x, y) for i, (x, y) in enumerate(zip(a, b)) if not same(x, y)]
        check(len(a) == len(b) and not diff,
              "%s: bluez and sim transports agree (%d vs %d; first difference %s)"
              % (kind, len(a), len(b), diff[:1]))


def main():
    env = e2e.Env(BUILD, SRC, "vm-" + MODE)
    ok = False
    try:
        {"bluez": case_bluez, "parity": case_parity, "spoof": case_spoof}[MODE](env)
        ok = True
    except Failure as e:
        print("FAIL: %s" % e, flush=True)
    finally:
        for log in ("gw.log", "sim-pen.log", "mosquitto.log", "sub.log"):
            if os.path.exists(env.path(log)):
                os.makedirs(os.path.join(RESULTS, "tests"), exist_ok=True)
                with open(env.path(log), "rb") as a, \
                        open(os.path.join(RESULTS, "tests", "%s-%s" % (MODE, log)), "wb") as b:
                    b.write(a.read())
        env.cleanup(ok)
        if not ok:
            for log in ("gw.log", "sim-pen.log"):
                p = env.path(log)
                if os.path.exists(p):
                    print("---- last lines of %s" % log)
                    with open(p, errors="replace") as f:
                        print("".join(f.readlines()[-80:]), flush=True)
    print("PASS" if ok else "FAIL", flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
