#!/usr/bin/python3
"""bluez-vm: the simulated pen on the BlueZ radio (nlsim-bluez-pen) is a real
BLE peripheral on the first adapter; an independent central on the second
adapter, using only bluetoothd's D-Bus API:

  1. discovers it by the NeedleLink service UUID (discovery first, then the
     pen advertises; btvirt sends one report per enable, so a retry restarts
     discovery),
  2. pairs with passkey entry (its KeyboardOnly agent types the passkey the
     pen's DisplayOnly agent logged; Pair() runs asynchronously so the agent
     in this thread can answer),
  3. reads Device Information and Battery, reads Feature and decodes it
     (layout and E2E-CRC of protocol/include/needlelink/pdu.h, crc.h),
  4. subscribes to Live Status and decodes the samples it receives,
  4b. writes Pen CP before enabling its indications (the pen's ATT error
     reaches the central as a D-Bus error), then enables them and runs two
     SET_LIVE_RATE round trips: the second is only accepted once bluetoothd
     called Confirm() on the pen's characteristic for the first response,
  5. power-cycles the pen (SIGUSR1): the pen drops the link itself; the
     bonded central reconnects and reads an authenticated characteristic
     without pairing again,
  6. disconnects (the pen logs the link going down), powers the pen's
     adapter off and on and sees the pen advertise again.

Usage: test_pen_peripheral.py PEN_BINARY [LOG_FILE]"""

import os
import re
import signal
import struct
import subprocess
import sys

import dbus
import dbus.service
from gi.repository import GLib

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "guest"))
import nl_bluez as nb  # noqa: E402

NL_SERVICE = "4e4c0001-7a1d-4c3b-9f6e-5d2b8a0c1e37"
NL_FEATURE = "4e4c0002-7a1d-4c3b-9f6e-5d2b8a0c1e37"
NL_LIVE = "4e4c0003-7a1d-4c3b-9f6e-5d2b8a0c1e37"
NL_PEN_CP = "4e4c0006-7a1d-4c3b-9f6e-5d2b8a0c1e37"
NL_CP_SET_LIVE_RATE = 0x0A
NL_CP_RESPONSE = 0x80
NL_CP_SUCCESS = 0x01
DIS_MODEL = "00002a24-0000-1000-8000-00805f9b34fb"
DIS_SERIAL = "00002a25-0000-1000-8000-00805f9b34fb"
DIS_FIRMWARE = "00002a26-0000-1000-8000-00805f9b34fb"
DIS_MANUFACTURER = "00002a29-0000-1000-8000-00805f9b34fb"
BATTERY_LEVEL = "00002a19-0000-1000-8000-00805f9b34fb"
GATT_CHRC = "org.bluez.GattCharacteristic1"
AGENT_IFACE = "org.bluez.Agent1"
AGENT_PATH = "/org/needlelink/test/central_agent"
SERIAL = "SIMBZ1"
DISCOVERY_ATTEMPTS = 4
SEEN_TIMEOUT = 20
LIVE_SAMPLES = 4


def crc16_mcrf4xx(data):
    crc = 0xFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ 0x8408 if crc & 1 else crc >> 1
    return crc


def check_crc(name, value):
    nb.check(len(value) >= 3, f"{name}: {len(value)} bytes, too short for a CRC")
    got = value[-2] | (value[-1] << 8)
    want = crc16_mcrf4xx(value[:-2])
    nb.check(got == want, f"{name}: E2E-CRC 0x{got:04x}, computed 0x{want:04x}")


def decode_feature(v):
    nb.check(len(v) >= 23, f"Feature: {len(v)} bytes, expected >= 23")
    check_crc("Feature", v)
    f = struct.unpack_from("<BBHHHHHHHIB", v, 0)
    keys = ("proto_major", "proto_minor", "flags", "depth_min_um", "depth_max_um",
            "depth_step_um", "speed_min_hz", "speed_max_hz", "store_capacity",
            "store_epoch", "live_rate_hz")
    return dict(zip(keys, f))


def decode_live(v):
    nb.check(len(v) >= 26, f"Live Status: {len(v)} bytes, expected >= 26")
    check_crc("Live Status", v)
    f = struct.unpack_from("<BBBHHHHHIIBH", v, 0)
    keys = ("state", "flags", "zone", "depth_set_um", "depth_measured_um", "depth_cap_um",
            "speed_hz", "pass", "needle_on_ms", "session_id", "battery_pct", "sample")
    return dict(zip(keys, f))


def call_async(method, *args, timeout=nb.CALL_TIMEOUT, **kw):
    """Calls without blocking the loop (agents and signals keep being
    served) and waits for the reply."""
    done = {}
    method(*args, reply_handler=lambda *r: done.setdefault("ok", r),
           error_handler=lambda e: done.setdefault("err", e), timeout=timeout, **kw)
    nb.check(nb.wait_until(lambda: done, timeout + 2), f"no reply within {timeout} s")
    if "err" in done:
        raise done["err"]
    return done["ok"]


class PenLog:
    """The pen's stderr, read incrementally."""

    def __init__(self, path):
        self.path = path

    def text(self):
        with open(self.path, errors="replace") as f:
            return f.read()

    def size(self):
        return os.path.getsize(self.path)

    def since(self, offset):
        with open(self.path, errors="replace") as f:
            f.seek(offset)
            return f.read()

    def wait_for(self, pattern, timeout, offset=0):
        rx = re.compile(pattern)
        ok = nb.wait_until(lambda: rx.search(self.since(offset)), timeout, poll=0.2)
        nb.check(ok, f"pen log: no line matching {pattern!r} within {timeout} s")
        return rx.search(self.since(offset))


class CentralAgent(dbus.service.Object):
    """KeyboardOnly: types the passkey the pen displayed (from its log)."""

    def __init__(self, bus, log):
        super().__init__(bus, AGENT_PATH)
        self.log = log
        self.offset = 0
        self.typed = None

    @dbus.service.method(AGENT_IFACE, in_signature="o", out_signature="u",
                         async_callbacks=("reply", "error"))
    def RequestPasskey(self, device, reply, error):
        rx = re.compile(r"passkey (\d{6}) for")
        state = {"left": 100}

        def poll():
            m = rx.search(self.log.since(self.offset))
            if m:
                self.typed = int(m.group(1))
                nb.log(f"agent: typing passkey {m.group(1)} for {device}")
                reply(dbus.UInt32(self.typed))
                return False
            state["left"] -= 1
            if state["left"] <= 0:
                error(dbus.exceptions.DBusException("org.bluez.Error.Canceled",
                                                    "pen showed no passkey"))
                return False
            return True

        GLib.timeout_add(200, poll)

    @dbus.service.method(AGENT_IFACE, in_signature="ou", out_signature="")
    def RequestConfirmation(self, device, passkey):
        nb.log(f"agent: unexpected numeric comparison {passkey:06d}: accepting")

    @dbus.service.method(AGENT_IFACE, in_signature="o", out_signature="")
    def RequestAuthorization(self, device):
        nb.log("agent: unexpected just-works authorization: accepting")

    @dbus.service.method(AGENT_IFACE, in_signature="os", out_signature="")
    def AuthorizeService(self, device, uuid):
        pass

    @dbus.service.method(AGENT_IFACE, in_signature="", out_signature="")
    def Cancel(self):
        nb.log("agent: cancelled by bluetoothd")

    @dbus.service.method(AGENT_IFACE, in_signature="", out_signature="")
    def Release(self):
        pass


def pen_devices(bus, central):
    out = []
    for path, ifs in nb.managed_objects(bus).items():
        dev = ifs.get(nb.DEVICE)
        if dev is None or not str(path).startswith(central + "/"):
            continue
        if NL_SERVICE in [str(u).lower() for u in dev.get("UUIDs", [])]:
            out.append((str(path), dev))
    return out


def characteristics(bus, dev_path):
    chars = {}
    for path, ifs in nb.managed_objects(bus).items():
        c = ifs.get(GATT_CHRC)
        if c is not None and str(path).startswith(dev_path + "/"):
            chars[str(c["UUID"]).lower()] = str(path)
    return chars


def read_value(bus, path):
    ch = dbus.Interface(bus.get_object(nb.BLUEZ, path), GATT_CHRC)
    (val,) = call_async(ch.ReadValue, dbus.Dictionary({}, signature="sv"), timeout=15)
    return bytes(val)


def discover(bus, central, pen_addr, start_pen, serial=SERIAL):
    """Discovery on, then the pen starts advertising; a retry re-enables
    discovery, which makes btvirt report the advertisement again."""
    adapter = dbus.Interface(bus.get_object(nb.BLUEZ, central), nb.ADAPTER)
    adapter.SetDiscoveryFilter({"UUIDs": dbus.Array([NL_SERVICE], signature="s"),
                                "Transport": "le", "DuplicateData": True},
                               timeout=nb.CALL_TIMEOUT)
    for attempt in range(1, DISCOVERY_ATTEMPTS + 1):
        call_async(adapter.StartDiscovery)
        ok = nb.wait_until(lambda: bool(nb.get_prop(bus, central, nb.ADAPTER, "Discovering")),
                           15, poll=0.2)
        nb.check(ok, f"{central}: Discovering did not become true")
        if attempt == 1:
            start_pen()
        if nb.wait_until(lambda: pen_devices(bus, central), SEEN_TIMEOUT, poll=0.25):
            break
        nb.log(f"discovery attempt {attempt}: pen not seen within {SEEN_TIMEOUT} s")
        call_async(adapter.StopDiscovery)
        nb.wait_until(lambda: not nb.get_prop(bus, central, nb.ADAPTER, "Discovering"), 10)
    found = pen_devices(bus, central)
    nb.check(found, f"{central} never saw a device advertising {NL_SERVICE}")
    call_async(adapter.StopDiscovery)
    path, dev = found[0]
    nb.check(len(found) == 1, f"expected one pen, got {[p for p, _ in found]}")
    nb.check(str(dev.get("Address", "")).upper() == pen_addr.upper(),
             f"device {dev.get('Address')} is not the pen's adapter {pen_addr}")
    nb.log(f"discovered {path} name {dev.get('Name', dev.get('Alias', '?'))} "
           f"RSSI {dev.get('RSSI', '?')}")
    nb.check(str(dev.get("Name", "")) == serial,
             f"advertised name {dev.get('Name')!r}, expected {serial!r}")
    return path


def main(bus):
    pen_bin = sys.argv[1]
    log_path = sys.argv[2] if len(sys.argv) > 2 else os.path.join(
        os.environ.get("NL_VM_RESULTS", "/tmp"), "tests", "pen-peripheral.pen.log")
    nb.check(os.access(pen_bin, os.X_OK), f"{pen_bin} is not executable (build it first)")
    found = nb.adapters(bus)
    nb.check(len(found) == 2, f"expected 2 adapters, found {len(found)}")
    (pen_adapter, pen_props), (central, _) = found
    pen_addr = str(pen_props["Address"])
    hci = pen_adapter.rsplit("/", 1)[-1]
    nb.log(f"pen on {pen_adapter} ({pen_addr}), central on {central}")
    for path, _ in found:
        nb.set_powered(bus, path, True)

    log = PenLog(log_path)
    logf = open(log_path, "w")
    pen = {"proc": None}

    def start_pen():
        pen["proc"] = subprocess.Popen([pen_bin, "--adapter", hci, "--serial", SERIAL],
                                       stdout=logf, stderr=subprocess.STDOUT)
        nb.log(f"started pen pid {pen['proc'].pid}, log {log_path}")
        log.wait_for(r"advertising 4e4c0001", 30)
        log.wait_for(r"GATT application registered", 30)
        log.wait_for(r"DisplayOnly agent registered", 30)

    agent = CentralAgent(bus, log)
    try:
        manager = dbus.Interface(bus.get_object(nb.BLUEZ, "/org/bluez"),
                                 "org.bluez.AgentManager1")
        # Not the default agent: Pair() uses its caller's agent.
        manager.RegisterAgent(dbus.ObjectPath(AGENT_PATH), "KeyboardOnly",
                              timeout=nb.CALL_TIMEOUT)

        dev_path = discover(bus, central, pen_addr, start_pen)
        device = dbus.Interface(bus.get_object(nb.BLUEZ, dev_path), nb.DEVICE)

        # Pairing, passkey entry: the pen displays, the central types.
        agent.offset = log.size()
        call_async(device.Pair, timeout=60)
        nb.check(bool(nb.get_prop(bus, dev_path, nb.DEVICE, "Paired")), "not paired after Pair()")
        m = re.search(r"passkey (\d{6}) for", log.since(agent.offset))
        nb.check(m is not None, "the pen's agent displayed no passkey")
        nb.check(agent.typed == int(m.group(1)),
                 f"typed {agent.typed}, the pen displayed {m.group(1)}")
        nb.log(f"paired with passkey {m.group(1)}")

        if not nb.get_prop(bus, dev_path, nb.DEVICE, "Connected"):
            call_async(device.Connect, timeout=30)
        ok = nb.wait_until(lambda: bool(nb.get_prop(bus, dev_path, nb.DEVICE, "ServicesResolved")),
                           30, poll=0.2)
        nb.check(ok, "ServicesResolved did not become true within 30 s")
        chars = characteristics(bus, dev_path)
        for uuid in (NL_FEATURE, NL_LIVE, DIS_MODEL, DIS_SERIAL, DIS_FIRMWARE, DIS_MANUFACTURER,
                     BATTERY_LEVEL):
            nb.check(uuid in chars, f"characteristic {uuid} not found on the pen")
        nb.log(f"{len(chars)} characteristics resolved")

        # Device Information and Battery.
        serial = read_value(bus, chars[DIS_SERIAL]).decode()
        nb.check(serial == SERIAL, f"DIS serial {serial!r}, expected {SERIAL!r}")
        for name, uuid in (("model", DIS_MODEL), ("firmware", DIS_FIRMWARE),
                           ("manufacturer", DIS_MANUFACTURER)):
            v = read_value(bus, chars[uuid]).decode()
            nb.check(len(v) > 0, f"DIS {name} is empty")
            nb.log(f"DIS {name}: {v}")
        battery = read_value(bus, chars[BATTERY_LEVEL])
        nb.check(len(battery) == 1 and battery[0] <= 100, f"battery level {battery.hex()}")
        nb.log(f"battery {battery[0]} %")
        log.wait_for(r"central connected \(MTU \d+\)", 10)

        # Feature: the pen's defaults (firmware-sim/include/sim/pen.h).
        feat = decode_feature(read_value(bus, chars[NL_FEATURE]))
        nb.log(f"Feature {feat}")
        nb.check(feat["proto_major"] == 1, f"protocol major {feat['proto_major']}")
        nb.check((feat["depth_min_um"], feat["depth_max_um"], feat["depth_step_um"]) ==
                 (250, 2500, 250), f"depth range {feat}")
        nb.check((feat["speed_min_hz"], feat["speed_max_hz"]) == (100, 150), f"speed {feat}")
        nb.check(feat["store_capacity"] == 256, f"store capacity {feat['store_capacity']}")
        nb.check(feat["flags"] & 0x1, "motorised-depth flag missing")
        rate = feat["live_rate_hz"]
        nb.check(rate >= 1, f"live rate {rate}")

        # Live Status notifications.
        samples = []

        def on_changed(iface, changed, invalidated):
            if "Value" in changed:
                samples.append(decode_live(bytes(changed["Value"])))

        match = bus.add_signal_receiver(on_changed, signal_name="PropertiesChanged",
                                        dbus_interface=nb.PROPS, path=chars[NL_LIVE],
                                        arg0=GATT_CHRC)
        live = dbus.Interface(bus.get_object(nb.BLUEZ, chars[NL_LIVE]), GATT_CHRC)
        call_async(live.StartNotify)
        ok = nb.wait_until(lambda: len(samples) >= LIVE_SAMPLES, 60, poll=0.2)
        nb.check(ok, f"{len(samples)} Live Status samples within 60 s, wanted {LIVE_SAMPLES}")
        for s in samples:
            nb.check(s["battery_pct"] <= 100,
                     f"battery in sample {s}")
        seq = [s["sample"] for s in samples]
        nb.check(all((b - a) % 65536 >= 1 for a, b in zip(seq, seq[1:])),
                 f"sample counters not increasing: {seq}")
        nb.log(f"{len(samples)} Live Status samples, counters {seq}, first {samples[0]}")
        call_async(live.StopNotify)
        match.remove()

        # Pen CP: indications and their confirmations.
        cp = dbus.Interface(bus.get_object(nb.BLUEZ, chars[NL_PEN_CP]), GATT_CHRC)
        wopts = dbus.Dictionary({"type": "request"}, signature="sv")

        def cp_request(hz):
            body = bytes([NL_CP_SET_LIVE_RATE, hz])
            crc = crc16_mcrf4xx(body)
            return dbus.Array(body + bytes([crc & 0xFF, crc >> 8]), signature="y")

        try:
            call_async(cp.WriteValue, cp_request(3), wopts, timeout=15)
            raise nb.TestFailure("Pen CP write without indications enabled was accepted")
        except dbus.DBusException as e:
            # The pen answers 0xFD (CCCD improperly configured); bluetoothd
            # 5.66 has no D-Bus name for it and sends 0x0E, newer ones 0xFD.
            nb.log(f"Pen CP write before subscribing refused: {e.get_dbus_name()}: "
                   f"{e.get_dbus_message()}")
            nb.check(e.get_dbus_name() == "org.bluez.Error.Failed" and
                     re.search(r"ATT error: 0x(0e|fd)\b", e.get_dbus_message() or ""),
                     f"unexpected error {e.get_dbus_name()}: {e.get_dbus_message()}")
        responses = []

        def on_cp(iface, changed, invalidated):
            if "Value" in changed:
                responses.append(bytes(changed["Value"]))

        cp_match = bus.add_signal_receiver(on_cp, signal_name="PropertiesChanged",
                                           dbus_interface=nb.PROPS, path=chars[NL_PEN_CP],
                                           arg0=GATT_CHRC)
        call_async(cp.StartNotify)
        for n, hz in enumerate((4, 2), start=1):
            call_async(cp.WriteValue, cp_request(hz), wopts, timeout=15)
            ok = nb.wait_until(lambda: len(responses) >= n, 30, poll=0.1)
            nb.check(ok, f"no Pen CP response indication for SET_LIVE_RATE {hz}")
            rsp = responses[n - 1]
            check_crc("Pen CP response", rsp)
            nb.check(len(rsp) >= 9, f"Pen CP response {rsp.hex()} too short")
            op, req, result, value = struct.unpack_from("<BBBI", rsp, 0)
            nb.check((op, req, result, value) == (NL_CP_RESPONSE, NL_CP_SET_LIVE_RATE,
                                                   NL_CP_SUCCESS, hz),
                     f"Pen CP response {rsp.hex()} for SET_LIVE_RATE {hz}")
            nb.log(f"Pen CP SET_LIVE_RATE {hz}: response {rsp.hex()}")
        call_async(cp.StopNotify)
        cp_match.remove()

        # The pen loses power (SIGUSR1): it drops the link itself, through
        # Device1.Disconnect on its side.
        off = log.size()
        pen["proc"].send_signal(signal.SIGUSR1)
        log.wait_for(r"SIGUSR1: power cycle", 10, off)
        ok = nb.wait_until(lambda: not nb.get_prop(bus, dev_path, nb.DEVICE, "Connected"), 30,
                           poll=0.2)
        nb.check(ok, "the central still has the link 30 s after the pen's power loss")
        log.wait_for(r"link down", 30, off)
        nb.log("the pen dropped the link on its power loss")

        # The bonded central comes back: the link is encrypted with the stored
        # keys (an authenticated-read characteristic reads) without pairing.
        off = log.size()
        call_async(device.Connect, timeout=30)
        ok = nb.wait_until(lambda: bool(nb.get_prop(bus, dev_path, nb.DEVICE, "ServicesResolved")),
                           30, poll=0.2)
        nb.check(ok, "ServicesResolved did not become true after reconnecting")
        chars = characteristics(bus, dev_path)
        feat2 = decode_feature(read_value(bus, chars[NL_FEATURE]))
        nb.check(feat2["depth_max_um"] == feat["depth_max_um"], f"Feature after reconnect {feat2}")
        log.wait_for(r"central connected \(MTU \d+\)", 30, off)
        nb.check("passkey" not in log.since(off), "the bonded central had to pair again")
        nb.log("the bonded central reconnected and read Feature without pairing again")

        # Link down from the central's side.
        off = log.size()
        call_async(device.Disconnect, timeout=20)
        log.wait_for(r"central disconnected", 30, off)
        nb.log("pen saw the link go down")

        # Adapter power cycle: the pen advertises again by itself.
        off = log.size()
        nb.set_powered(bus, pen_adapter, False)
        log.wait_for(r"powered off", 20, off)
        nb.set_powered(bus, pen_adapter, True)
        log.wait_for(r"advertising 4e4c0001", 30, off)
        nb.log("pen re-registered its advertisement after the power cycle")

        nb.check(pen["proc"].poll() is None, f"pen exited with {pen['proc'].returncode}")
        pen["proc"].send_signal(signal.SIGTERM)
        rc = pen["proc"].wait(timeout=20)
        nb.check(rc == 0, f"pen exited with {rc} after SIGTERM (sanitizer report in its log?)")
    finally:
        if pen["proc"] is not None and pen["proc"].poll() is None:
            pen["proc"].send_signal(signal.SIGTERM)
            try:
                rc = pen["proc"].wait(timeout=10)
            except subprocess.TimeoutExpired:
                pen["proc"].kill()
                rc = pen["proc"].wait()
            nb.log(f"pen exited with {rc}")
        logf.close()
        agent.remove_from_connection()
        print("---- pen log", flush=True)
        print(log.text(), flush=True)


if __name__ == "__main__":
    nb.run(main)
