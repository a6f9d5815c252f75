#!/usr/bin/python3
"""bluez-vm: neither a pen that is not allow-listed nor a BLE device of
another kind is connected, paired or reported by the gateway, while the
allowed pen next to them is. Four virtual controllers (run-vm.sh -a 4):

  hci0  the allowed pen SIMBZ1 (nlsim-bluez-pen, DisplayOnly agent)
  hci1  the gateway: nlgw-bluez-ignore-probe (pen manager with allow-list
        { SIMBZ1 } on the BlueZ transport); this script's own discovery
        runs on it too, unfiltered, so bluetoothd creates Device1 objects
        for everything advertising, whatever the gateway's filter
  hci2  a heart-rate sensor: an advertisement of service 0x180D and a name,
        registered through LEAdvertisingManager1 (no NeedleLink UUID)
  hci3  a NeedleLink pen SIMBZ9, not on the allow-list (no agent)

Order (btvirt reports an advertisement once per enable): the probe's
discovery is on, then this script's, then the heart-rate advertisement and
the pen that is not allowed are started and must be seen on hci1 (Device1
objects) and, for the pen, counted as ignored by the pen manager; only then
the allowed pen starts, pairs by passkey and must reach READY.

Checked on bluetoothd's side: the heart-rate device and SIMBZ9 as seen from
hci1 never had Connected or Paired true (every PropertiesChanged on hci1's
devices is watched from the start), SIMBZ9 logged no central; the allowed
pen's device is paired (the watch sees what it should).

Usage: test_ignore.py PROBE PEN_BINARY LOG_DIR"""

import os
import subprocess
import sys
import tempfile

import dbus
import dbus.service

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "guest"))
import nl_bluez as nb  # noqa: E402

ALLOWED = "SIMBZ1"
NOT_ALLOWED = "SIMBZ9"
HR_UUID = "0000180d-0000-1000-8000-00805f9b34fb"
HR_NAME = "HRM-42"
ADV_PATH = "/org/needlelink/test/hrm0"
ADV_IFACE = "org.bluez.LEAdvertisement1"
ATTEMPTS = 3
SEEN_TIMEOUT = 20
READY_TIMEOUT = 150


class Advertisement(dbus.service.Object):
    @dbus.service.method(nb.PROPS, in_signature="s", out_signature="a{sv}")
    def GetAll(self, iface):
        if iface != ADV_IFACE:
            raise dbus.exceptions.DBusException(
                "org.freedesktop.DBus.Error.InvalidArgs", f"no interface {iface}")
        return {
            "Type": dbus.String("peripheral"),
            "ServiceUUIDs": dbus.Array([HR_UUID], signature="s"),
            "LocalName": dbus.String(HR_NAME),
        }

    @dbus.service.method(ADV_IFACE, in_signature="", out_signature="")
    def Release(self):
        nb.log("heart-rate advertisement released by bluetoothd")


def call_async(method, *args, timeout=nb.CALL_TIMEOUT, **kw):
    """A call that does not block the loop (bluetoothd calls back into our
    objects before it replies)."""
    done = {}
    method(*args, reply_handler=lambda *r: done.setdefault("ok", r),
           error_handler=lambda e: done.setdefault("err", e), timeout=timeout, **kw)
    nb.check(nb.wait_until(lambda: done, timeout + 1), f"no reply within {timeout} s")
    if "err" in done:
        raise done["err"]
    return done["ok"]


def device_of(bus, adapter, address):
    """(path, Device1 properties) of address under adapter, or (None, None)."""
    for path, ifs in nb.managed_objects(bus).items():
        dev = ifs.get(nb.DEVICE)
        if dev is not None and str(path).startswith(adapter + "/") and \
                str(dev.get("Address", "")).upper() == address.upper():
            return str(path), dev
    return None, None


def read_int(path):
    try:
        with open(path) as f:
            return int(f.read().strip() or 0)
    except (OSError, ValueError):
        return 0


def main(bus):
    probe_bin, pen_bin, logdir = sys.argv[1:4]
    for b in (probe_bin, pen_bin):
        nb.check(os.access(b, os.X_OK), f"{b} is not executable")
    found = nb.adapters(bus)
    nb.check(len(found) == 4, f"expected 4 adapters (run-vm.sh -a 4), found {len(found)}")
    (pen_a, pen_p), (gw_a, _), (hr_a, hr_p), (bad_a, bad_p) = found
    pen_addr, hr_addr, bad_addr = (str(p["Address"]) for p in (pen_p, hr_p, bad_p))
    for path, _ in found:
        nb.set_powered(bus, path, True)
    nb.log(f"allowed pen {pen_a} ({pen_addr}), gateway {gw_a}, heart-rate {hr_a} "
           f"({hr_addr}), pen not allowed {bad_a} ({bad_addr})")

    # Every Connected/Paired change of a device under the gateway adapter.
    went_true = {}

    def on_changed(iface, changed, invalidated, path=None):
        if iface != nb.DEVICE or not str(path).startswith(gw_a + "/"):
            return
        for key in ("Connected", "Paired"):
            if bool(changed.get(key, False)):
                went_true.setdefault(str(path), set()).add(key)

    bus.add_signal_receiver(on_changed, signal_name="PropertiesChanged",
                            dbus_interface=nb.PROPS, path_keyword="path")

    work = tempfile.mkdtemp(prefix="nl-ignore-")
    pen_log = os.path.join(logdir, f"pen-{ALLOWED}.log")
    bad_log = os.path.join(logdir, f"pen-{NOT_ALLOWED}.log")
    probe_log = open(os.path.join(logdir, "ignore-probe.log"), "w")
    procs = []
    adv = None
    adv_manager = dbus.Interface(bus.get_object(nb.BLUEZ, hr_a), nb.ADV_MANAGER)
    observer = dbus.Interface(bus.get_object(nb.BLUEZ, gw_a), nb.ADAPTER)
    probe = subprocess.Popen([probe_bin, "--adapter", gw_a.rsplit("/", 1)[-1], "--allow",
                              ALLOWED, "--pen-log", pen_log, "--dir", work,
                              "--want-ignored", "1"],
                             stdout=probe_log, stderr=subprocess.STDOUT)
    procs.append(probe)
    try:
        ok = nb.wait_until(lambda: os.path.exists(os.path.join(work, "probe-discovering"))
                           or probe.poll() is not None, 60, poll=0.2)
        nb.check(ok and probe.poll() is None,
                 f"the probe did not start discovering (exit {probe.poll()})")
        nb.log("the gateway's discovery is on")
        observer.SetDiscoveryFilter({"Transport": "le"}, timeout=nb.CALL_TIMEOUT)
        observer.StartDiscovery(timeout=nb.CALL_TIMEOUT)

        def rescan(why):
            # A new scan enable makes btvirt report every advertiser again.
            nb.log(f"{why}: restarting this script's discovery")
            observer.StopDiscovery(timeout=nb.CALL_TIMEOUT)
            nb.wait_until(lambda: False, 1)
            observer.StartDiscovery(timeout=nb.CALL_TIMEOUT)

        # The device of another kind.
        adv = Advertisement(bus, ADV_PATH)
        call_async(adv_manager.RegisterAdvertisement, dbus.ObjectPath(ADV_PATH), {})
        nb.log(f"heart-rate advertisement registered on {hr_a}")
        # The pen that is not allowed; no agent: it could only be paired
        # through the allowed pen's agent otherwise.
        bad = subprocess.Popen([pen_bin, "--adapter", bad_a.rsplit("/", 1)[-1], "--serial",
                                NOT_ALLOWED, "--no-agent"],
                               stdout=open(bad_log, "w"), stderr=subprocess.STDOUT)
        procs.append(bad)
        nb.log(f"started {NOT_ALLOWED} on {bad_a}: pid {bad.pid}")

        def both_seen():
            nb.check(probe.poll() is None, f"the probe exited early ({probe.poll()})")
            hr = device_of(bus, gw_a, hr_addr)[1]
            return (hr is not None and HR_UUID in [str(u).lower() for u in hr.get("UUIDs", [])]
                    and device_of(bus, gw_a, bad_addr)[1] is not None
                    and read_int(os.path.join(work, "probe-ignored")) >= 1)

        for attempt in range(1, ATTEMPTS + 1):
            if nb.wait_until(both_seen, SEEN_TIMEOUT, poll=0.5):
                break
            nb.check(attempt < ATTEMPTS,
                     f"after {ATTEMPTS} scans: heart-rate seen "
                     f"{device_of(bus, gw_a, hr_addr)[0]}, {NOT_ALLOWED} seen "
                     f"{device_of(bus, gw_a, bad_addr)[0]}, ignored "
                     f"{read_int(os.path.join(work, 'probe-ignored'))}")
            rescan(f"scan {attempt}: not everything seen yet")
        hr_path = device_of(bus, gw_a, hr_addr)[0]
        bad_path = device_of(bus, gw_a, bad_addr)[0]
        nb.log(f"seen from {gw_a}: heart-rate {hr_path}, {NOT_ALLOWED} {bad_path}; "
               f"pen manager ignored {read_int(os.path.join(work, 'probe-ignored'))}")

        pen = subprocess.Popen([pen_bin, "--adapter", pen_a.rsplit("/", 1)[-1], "--serial",
                                ALLOWED], stdout=open(pen_log, "w"), stderr=subprocess.STDOUT)
        procs.append(pen)
        nb.log(f"started {ALLOWED} on {pen_a}: pid {pen.pid}")
        for attempt in range(1, ATTEMPTS + 1):
            if nb.wait_until(lambda: probe.poll() is not None or
                             device_of(bus, gw_a, pen_addr)[1] is not None, SEEN_TIMEOUT,
                             poll=0.5):
                break
            nb.check(attempt < ATTEMPTS, f"{ALLOWED} never seen from {gw_a}")
            rescan(f"scan {attempt}: {ALLOWED} not seen yet")
        nb.check(nb.wait_until(lambda: probe.poll() is not None, READY_TIMEOUT, poll=0.5),
                 f"the probe did not finish within {READY_TIMEOUT} s")
        nb.check(probe.returncode == 0, f"the probe failed (exit {probe.returncode}), "
                 "see ignore-probe.log")

        # bluetoothd's side of the story.
        for name, path in (("heart-rate device", hr_path), (NOT_ALLOWED, bad_path)):
            dev = device_of(bus, gw_a, hr_addr if path == hr_path else bad_addr)[1]
            nb.check(dev is not None, f"{name} vanished from {gw_a}")
            nb.check(not bool(dev.get("Connected")) and not bool(dev.get("Paired")),
                     f"{name} {path}: Connected {bool(dev.get('Connected'))}, Paired "
                     f"{bool(dev.get('Paired'))}")
            nb.check(path not in went_true, f"{name} {path}: "
                     f"{sorted(went_true.get(path, []))} became true at some point")
        pen_path, pen_dev = device_of(bus, gw_a, pen_addr)
        nb.check(pen_dev is not None and bool(pen_dev.get("Paired")),
                 f"the allowed pen {pen_path} is not paired")
        nb.check("Paired" in went_true.get(pen_path, set()),
                 "the watch saw no Paired change of the allowed pen: it watches nothing")
        with open(bad_log, errors="replace") as f:
            text = f.read()
        nb.check(" connected" not in text, f"{NOT_ALLOWED} logged a central connecting")
        nb.log(f"neither {NOT_ALLOWED} nor the heart-rate device was connected or paired; "
               f"{ALLOWED} was")
    finally:
        for p in reversed(procs):
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
        probe_log.close()
        if adv is not None:
            try:
                call_async(adv_manager.UnregisterAdvertisement, dbus.ObjectPath(ADV_PATH))
            except (dbus.DBusException, nb.TestFailure):
                pass


if __name__ == "__main__":
    nb.run(main)
