#!/usr/bin/python3
"""Host test of the BlueZ radio (nlsim-bluez-pen) against a fake org.bluez on
a private dbus-daemon: what bluetoothd would call and see, without a kernel.

Checks: the pen waits for org.bluez (it starts first), registers the GATT
application, the advertisement and a DisplayOnly agent; the exported tree
(services, characteristics, flags); ReadValue with device/mtu options (the
pen's connected(mtu)); ATT errors mapped to org.bluez.Error.* names
(ImproperlyConfigured, InProgress, NotPermitted); callers other than
org.bluez refused; indications as
PropertiesChanged and Confirm() releasing the next request; StartNotify on
Live Status; DisplayPasskey logged; the pen's power loss calling
Device1.Disconnect; until the dropped central is reported disconnected its
requests refused (NotPermitted), not connecting the pen again; Device1
Connected=false ending the link;
a central coming back while BlueZ holds a CCC for it connecting the pen
without a request;
everything registered again after org.bluez restarts, and the advertisement
after the adapter powers off and on, and after the bus itself restarts.

Usage: test_radio_fake_bluez.py PEN_BINARY WORK_DIR
Runs under /usr/bin/python3 (python3-dbus, python3-gi)."""

import os
import re
import shutil
import signal
import struct
import subprocess
import sys

import dbus
import dbus.bus
import dbus.mainloop.glib
import dbus.service
from gi.repository import GLib

dbus.mainloop.glib.DBusGMainLoop(set_as_default=True)

ADAPTER_PATH = "/org/bluez/hci0"
DEVICE_PATH = ADAPTER_PATH + "/dev_11_22_33_44_55_66"
SERIAL = "SIMFK1"
APP_PATH = "/org/needlelink/pen/" + SERIAL
NL_SERVICE = "4e4c0001-7a1d-4c3b-9f6e-5d2b8a0c1e37"
UUIDS = {
    "feature": "4e4c0002-7a1d-4c3b-9f6e-5d2b8a0c1e37",
    "live": "4e4c0003-7a1d-4c3b-9f6e-5d2b8a0c1e37",
    "racp": "4e4c0005-7a1d-4c3b-9f6e-5d2b8a0c1e37",
    "pen_cp": "4e4c0006-7a1d-4c3b-9f6e-5d2b8a0c1e37",
    "dis_serial": "00002a25-0000-1000-8000-00805f9b34fb",
    "battery": "00002a19-0000-1000-8000-00805f9b34fb",
}
CHRC = "org.bluez.GattCharacteristic1"
PROPS = "org.freedesktop.DBus.Properties"
GUARD = 20  # seconds: only turns a hang into a failure

failures = []


def log(msg):
    print(msg, flush=True)


def check(cond, msg):
    if not cond:
        failures.append(msg)
        log("CHECK FAILED: " + msg)
    return cond


def run_until(cond, timeout=GUARD):
    loop = GLib.MainLoop()
    if cond():
        return True
    state = {"to": False}

    def poll():
        if cond():
            loop.quit()
            return False
        return True

    def guard():
        state["to"] = True
        loop.quit()
        return False

    p = GLib.timeout_add(20, poll)
    g = GLib.timeout_add(int(timeout * 1000), guard)
    loop.run()
    if not state["to"]:
        GLib.source_remove(g)
    ok = bool(cond())
    if not ok:
        GLib.source_remove(p)
    return ok


def crc16(data):
    crc = 0xFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ 0x8408 if crc & 1 else crc >> 1
    return crc


def with_crc(body):
    c = crc16(body)
    return body + bytes([c & 0xFF, c >> 8])


class FakeBluez:
    """One bluetoothd instance: its own connection, owning org.bluez."""

    def __init__(self, address, counts):
        self.conn = dbus.bus.BusConnection(address)
        self.counts = counts
        self.app_objects = None
        self.adv_props = None
        self.agent = None
        self.pen = None  # the pen's unique name
        self.root = Root(self.conn, self)
        self.manager = AgentManager(self.conn, self)
        self.adapter = Adapter(self.conn, self)
        self.conn.request_name("org.bluez")

    def close(self):
        self.conn.close()


class Root(dbus.service.Object):
    def __init__(self, conn, fake):
        super().__init__(conn, "/")
        self.fake = fake

    @dbus.service.method("org.freedesktop.DBus.ObjectManager", out_signature="a{oa{sa{sv}}}")
    def GetManagedObjects(self):
        self.fake.counts["objects"] += 1
        return {
            dbus.ObjectPath("/org/bluez"): {"org.bluez.AgentManager1": {}},
            dbus.ObjectPath(ADAPTER_PATH): {
                "org.bluez.Adapter1": {"Address": "00:AA:01:00:00:00",
                                       "Powered": dbus.Boolean(self.fake.counts["powered"])},
                "org.bluez.GattManager1": {},
                "org.bluez.LEAdvertisingManager1": {},
            },
        }

    @dbus.service.signal("org.freedesktop.DBus.ObjectManager", signature="oa{sa{sv}}")
    def InterfacesAdded(self, path, ifaces):
        pass


class AgentManager(dbus.service.Object):
    def __init__(self, conn, fake):
        super().__init__(conn, "/org/bluez")
        self.fake = fake

    @dbus.service.method("org.bluez.AgentManager1", in_signature="os", sender_keyword="sender")
    def RegisterAgent(self, path, capability, sender=None):
        self.fake.counts["agent"] += 1
        self.fake.agent = (sender, str(path), str(capability))

    @dbus.service.method("org.bluez.AgentManager1", in_signature="o")
    def RequestDefaultAgent(self, path):
        self.fake.counts["default_agent"] += 1


class Adapter(dbus.service.Object):
    def __init__(self, conn, fake):
        super().__init__(conn, ADAPTER_PATH)
        self.fake = fake

    @dbus.service.method("org.bluez.GattManager1", in_signature="oa{sv}",
                         sender_keyword="sender", async_callbacks=("ok", "err"))
    def RegisterApplication(self, path, options, sender=None, ok=None, err=None):
        # Like bluetoothd: read the tree from the application before replying.
        self.fake.pen = sender
        obj = self.fake.conn.get_object(sender, path, introspect=False)

        def got(objs):
            self.fake.app_objects = objs
            self.fake.counts["app"] += 1
            ok()

        obj.GetManagedObjects(dbus_interface="org.freedesktop.DBus.ObjectManager",
                              reply_handler=got, error_handler=err, timeout=5)

    @dbus.service.method("org.bluez.LEAdvertisingManager1", in_signature="oa{sv}",
                         sender_keyword="sender", async_callbacks=("ok", "err"))
    def RegisterAdvertisement(self, path, options, sender=None, ok=None, err=None):
        obj = self.fake.conn.get_object(sender, path, introspect=False)

        def got(props):
            self.fake.adv_props = props
            self.fake.counts["adv"] += 1
            ok()

        obj.GetAll("org.bluez.LEAdvertisement1", dbus_interface=PROPS, reply_handler=got,
                   error_handler=err, timeout=5)

    @dbus.service.signal(PROPS, signature="sa{sv}as")
    def PropertiesChanged(self, iface, changed, invalidated):
        pass


class Device(dbus.service.Object):
    disconnects = 0
    hold = False  # as bluetoothd 5.66: Connected stays true for a while

    @dbus.service.method("org.bluez.Device1")
    def Disconnect(self):
        Device.disconnects += 1
        if not Device.hold:
            self.PropertiesChanged("org.bluez.Device1", {"Connected": dbus.Boolean(False)}, [])

    @dbus.service.signal(PROPS, signature="sa{sv}as")
    def PropertiesChanged(self, iface, changed, invalidated):
        pass


def start_daemon(work):
    conf = os.path.join(work, "bus.conf")
    with open(conf, "w") as f:
        f.write(f"""<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:path={work}/bus</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
</busconfig>
""")
    d = subprocess.Popen(["dbus-daemon", f"--config-file={conf}", "--nofork",
                          "--print-address=1"], stdout=subprocess.PIPE, text=True)
    # Without the guid: a restarted daemon at the same path has a new one.
    addr = d.stdout.readline().strip().split(",guid=")[0]
    if not addr:
        d.kill()
        raise SystemExit("dbus-daemon printed no address (Debian package dbus-daemon)")
    return d, addr


class PenLog:
    def __init__(self, path):
        self.path = path

    def text(self):
        with open(self.path, errors="replace") as f:
            return f.read()

    def count(self, pattern):
        return len(re.findall(pattern, self.text()))

    def wait(self, pattern, n=1):
        return check(run_until(lambda: self.count(pattern) >= n),
                     f"pen log: fewer than {n} line(s) matching {pattern!r}")


def call(fake, path, iface, method, *args, expect_error=None):
    """Calls the pen as bluetoothd would; returns the reply or the error name."""
    obj = fake.conn.get_object(fake.pen, path, introspect=False)
    res = {}
    getattr(obj, method)(*args, dbus_interface=iface,
                         reply_handler=lambda *r: res.setdefault("ok", r),
                         error_handler=lambda e: res.setdefault("err", e), timeout=5)
    if not check(run_until(lambda: res), f"{method} on {path}: no answer"):
        return None
    if "err" in res:
        name = res["err"].get_dbus_name()
        check(expect_error is not None and name == expect_error,
              f"{method} on {path}: error {name} ({res['err'].get_dbus_message()}), "
              f"expected {expect_error}")
        return name
    check(expect_error is None, f"{method} on {path}: succeeded, expected {expect_error}")
    return res["ok"]


def main():
    pen_bin, work = sys.argv[1], sys.argv[2]
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    daemon, addr = start_daemon(work)
    log_path = os.path.join(work, "pen.log")
    logf = open(log_path, "w")
    pen = None
    counts = {"objects": 0, "app": 0, "adv": 0, "agent": 0, "default_agent": 0,
              "powered": True}
    try:
        # The pen first: it must wait for org.bluez, not call it.
        pen = subprocess.Popen([pen_bin, "--bus", addr, "--adapter", "hci0", "--serial", SERIAL],
                               stdout=logf, stderr=subprocess.STDOUT)
        plog = PenLog(log_path)
        plog.wait(r"nlsim-bluez-pen: pen SIMFK1 on hci0")
        fake = FakeBluez(addr, counts)
        check(run_until(lambda: counts["app"] == 1 and counts["adv"] == 1 and
                        counts["default_agent"] == 1), f"registrations: {counts}")
        plog.wait(r"advertising 4e4c0001")

        # The exported tree.
        objs = fake.app_objects or {}
        services = {str(p): v["org.bluez.GattService1"] for p, v in objs.items()
                    if "org.bluez.GattService1" in v}
        chars = {str(v[CHRC]["UUID"]): (str(p), v[CHRC]) for p, v in objs.items() if CHRC in v}
        check(len(services) == 3, f"{len(services)} services exported")
        check(len(chars) == 13, f"{len(chars)} characteristics exported")
        check(all(str(p).startswith(APP_PATH + "/") for p in objs), "objects outside the app")
        for uuid, (path, props) in chars.items():
            check(str(props["Service"]) in services, f"{uuid}: Service {props['Service']}")
        flags = {k: sorted(str(f) for f in chars[u][1]["Flags"]) for k, u in UUIDS.items()}
        check(flags["feature"] == ["encrypt-authenticated-read"], f"Feature flags {flags['feature']}")
        check(flags["live"] == ["encrypt-authenticated-notify", "notify"],
              f"Live Status flags {flags['live']}")
        check(flags["pen_cp"] == ["encrypt-authenticated-indicate", "encrypt-authenticated-write",
                                  "indicate"], f"Pen CP flags {flags['pen_cp']}")
        check(flags["dis_serial"] == ["encrypt-read"], f"DIS serial flags {flags['dis_serial']}")
        check(flags["battery"] == ["encrypt-read", "notify"], f"Battery flags {flags['battery']}")
        adv = fake.adv_props or {}
        check(str(adv.get("Type")) == "peripheral", f"advertisement {adv}")
        check([str(u) for u in adv.get("ServiceUUIDs", [])] == [NL_SERVICE], f"advertisement {adv}")
        check(str(adv.get("LocalName")) == SERIAL, f"advertisement {adv}")
        check(fake.agent is not None and fake.agent[2] == "DisplayOnly", f"agent {fake.agent}")

        path = {k: chars[u][0] for k, u in UUIDS.items()}
        opts = dbus.Dictionary({"device": dbus.ObjectPath(DEVICE_PATH),
                                "mtu": dbus.UInt16(185), "link": "LE"}, signature="sv")

        # Reads: the first request connects the pen with that MTU.
        r = call(fake, path["dis_serial"], CHRC, "ReadValue", opts)
        check(r is not None and bytes(r[0]) == SERIAL.encode(), f"DIS serial {r}")
        plog.wait(r"central connected \(MTU 185\)")
        r = call(fake, path["feature"], CHRC, "ReadValue", opts)
        feat = bytes(r[0]) if r else b""
        check(len(feat) == 23 and crc16(feat[:-2]) == feat[-2] | feat[-1] << 8,
              f"Feature {feat.hex()}")
        off = dbus.Dictionary({"offset": dbus.UInt16(21)}, signature="sv")
        r = call(fake, path["feature"], CHRC, "ReadValue", off)
        check(r is not None and bytes(r[0]) == feat[21:], f"Feature at offset 21: {r}")
        call(fake, path["feature"], CHRC, "ReadValue",
             dbus.Dictionary({"offset": dbus.UInt16(24)}, signature="sv"),
             expect_error="org.bluez.Error.InvalidOffset")
        call(fake, path["racp"], CHRC, "ReadValue", opts, expect_error="org.bluez.Error.NotPermitted")

        # Only bluetoothd may call the pen.
        other = dbus.bus.BusConnection(addr)
        res = {}
        other.get_object(fake.pen, path["feature"], introspect=False).ReadValue(
            opts, dbus_interface=CHRC, reply_handler=lambda *r: res.setdefault("ok", r),
            error_handler=lambda e: res.setdefault("err", e), timeout=5)
        check(run_until(lambda: res), "no answer to a stranger's ReadValue")
        check("err" in res and res["err"].get_dbus_name() ==
              "org.freedesktop.DBus.Error.AccessDenied", f"a stranger's ReadValue: {res}")
        other.close()

        # Pen CP: the pen's 0xFD, indications, Confirm(), 0xFE.
        wopts = dbus.Dictionary({"device": dbus.ObjectPath(DEVICE_PATH), "type": "request"},
                                signature="sv")
        req = dbus.Array(with_crc(bytes([0x0A, 4])), signature="y")
        call(fake, path["pen_cp"], CHRC, "WriteValue", req, wopts,
             expect_error="org.bluez.Error.ImproperlyConfigured")
        values = {}

        def on_changed(iface, changed, invalidated, path=None):
            if "Value" in changed:
                values.setdefault(path, []).append(bytes(changed["Value"]))

        fake.conn.add_signal_receiver(on_changed, signal_name="PropertiesChanged",
                                      dbus_interface=PROPS, sender_keyword=None,
                                      path_keyword="path")
        call(fake, path["pen_cp"], CHRC, "StartNotify")
        call(fake, path["pen_cp"], CHRC, "WriteValue", req, wopts)
        check(run_until(lambda: len(values.get(path["pen_cp"], [])) == 1),
              "no Pen CP indication")
        rsp = values.get(path["pen_cp"], [b""])[0]
        check(rsp[:7] == bytes([0x80, 0x0A, 0x01, 4, 0, 0, 0]), f"Pen CP response {rsp.hex()}")
        # Not confirmed yet: the pen refuses the next request.
        call(fake, path["pen_cp"], CHRC, "WriteValue", req, wopts,
             expect_error="org.bluez.Error.InProgress")
        call(fake, path["pen_cp"], CHRC, "Confirm")
        call(fake, path["pen_cp"], CHRC, "WriteValue",
             dbus.Array(with_crc(bytes([0x0A, 2])), signature="y"), wopts)
        check(run_until(lambda: len(values.get(path["pen_cp"], [])) == 2),
              "no second Pen CP indication after Confirm")
        call(fake, path["pen_cp"], CHRC, "Confirm")

        # Live Status notifications.
        call(fake, path["live"], CHRC, "StartNotify")
        check(run_until(lambda: len(values.get(path["live"], [])) >= 2), "no Live Status")
        for v in values.get(path["live"], []):
            check(len(v) == 26 and crc16(v[:-2]) == v[-2] | v[-1] << 8, f"Live Status {v.hex()}")
        call(fake, path["live"], CHRC, "StopNotify")

        # The agent.
        ag_sender, ag_path, _ = fake.agent
        call(fake, ag_path, "org.bluez.Agent1", "DisplayPasskey", dbus.ObjectPath(DEVICE_PATH),
             dbus.UInt32(123456), dbus.UInt16(0))
        plog.wait(r"passkey 123456 for " + re.escape(DEVICE_PATH))
        call(fake, ag_path, "org.bluez.Agent1", "RequestConfirmation",
             dbus.ObjectPath(DEVICE_PATH), dbus.UInt32(1), expect_error="org.bluez.Error.Rejected")

        # The central goes; BlueZ keeps a bonded central's CCC (battery).
        call(fake, path["battery"], CHRC, "StartNotify")
        dev = Device(fake.conn, DEVICE_PATH)
        # A power loss of the pen drops the link from its side.
        Device.hold = True
        pen.send_signal(signal.SIGUSR1)
        check(run_until(lambda: Device.disconnects == 1), "no Device1.Disconnect on power loss")
        plog.wait(r"link down")
        check(plog.count(r"central disconnected") == 0, "disconnected() after the power loss")
        # bluetoothd still holds the link: a request over it that was on its
        # way is refused and does not connect the pen again.
        ups = plog.count(r"link up")
        call(fake, path["feature"], CHRC, "ReadValue", opts,
             expect_error="org.bluez.Error.NotPermitted")
        call(fake, path["racp"], CHRC, "WriteValue",
             dbus.Array(with_crc(bytes([0x01, 0x01])), signature="y"), opts,
             expect_error="org.bluez.Error.NotPermitted")
        check(plog.count(r"link up") == ups, "a request on the dropped link connected the pen")
        # The central goes (already gone for the pen: nothing more).
        dev.PropertiesChanged("org.bluez.Device1", {"Connected": dbus.Boolean(False)}, [])
        Device.hold = False
        # It comes back and makes no request: the pen is connected anyway.
        dev.PropertiesChanged("org.bluez.Device1", {"Connected": dbus.Boolean(True)}, [])
        plog.wait(r"made no request: connecting the pen")
        plog.wait(r"central connected \(MTU 23\)")
        dev.PropertiesChanged("org.bluez.Device1", {"Connected": dbus.Boolean(False)}, [])
        plog.wait(r"central disconnected")
        dev.remove_from_connection()

        # bluetoothd restarts: everything is registered again.
        fake.close()
        plog.wait(r"org.bluez left the bus")
        fake = FakeBluez(addr, counts)
        check(run_until(lambda: counts["app"] == 2 and counts["adv"] == 2 and
                        counts["default_agent"] == 2), f"after restart: {counts}")

        # Power off and on: the advertisement is registered again.
        fake.adapter.PropertiesChanged("org.bluez.Adapter1", {"Powered": dbus.Boolean(False)}, [])
        plog.wait(r"powered off")
        fake.adapter.PropertiesChanged("org.bluez.Adapter1", {"Powered": dbus.Boolean(True)}, [])
        check(run_until(lambda: counts["adv"] == 3), f"after power cycle: {counts}")
        check(counts["app"] == 2, f"application registered again on power-on: {counts}")

        # The bus itself restarts: the pen reconnects and registers again.
        fake.close()
        daemon.terminate()
        daemon.wait()
        plog.wait(r"lost the bus")
        daemon, addr2 = start_daemon(work)
        check(addr2 == addr, f"new bus at {addr2}, not {addr}")
        fake = FakeBluez(addr, counts)
        plog.wait(r"reconnected to the bus")
        check(run_until(lambda: counts["app"] == 3 and counts["adv"] == 4 and
                        counts["default_agent"] == 3), f"after the bus restart: {counts}")

        check(pen.poll() is None, "pen exited")
        pen.send_signal(signal.SIGTERM)
        check(pen.wait(timeout=GUARD) == 0, f"pen exit status {pen.returncode}")
        fake.close()
    finally:
        if pen is not None and pen.poll() is None:
            pen.kill()
            pen.wait()
        logf.close()
        daemon.terminate()
        daemon.wait()
        if failures:
            log("---- pen log")
            log(open(log_path, errors="replace").read())
    if failures:
        log(f"{len(failures)} check(s) failed")
        sys.exit(1)
    log("test_radio_fake_bluez: all checks passed")


if __name__ == "__main__":
    main()
