#!/usr/bin/python3
"""bluez-vm: one adapter advertises the NeedleLink service UUID through
org.bluez.LEAdvertisingManager1 and the other, discovering with a filter on
that UUID over LE, sees a Device1 with that UUID and the advertiser's
address.

btvirt sends one advertising report each time advertising (or scanning) is
enabled, never periodically: so discovery is started first and confirmed
(Discovering=true) before the advertisement is registered, and a retry
registers the advertisement again."""

import dbus
import dbus.service

import nl_bluez as nb

NL_SERVICE_UUID = "4e4c0001-7a1d-4c3b-9f6e-5d2b8a0c1e37"
ADV_PATH = "/org/needlelink/test/advertisement0"
ADV_IFACE = "org.bluez.LEAdvertisement1"
ATTEMPTS = 3
SEEN_TIMEOUT = 15  # seconds per attempt


class Advertisement(dbus.service.Object):
    def props(self):
        return {
            "Type": dbus.String("peripheral"),
            "ServiceUUIDs": dbus.Array([NL_SERVICE_UUID], signature="s"),
            "LocalName": dbus.String("NL-VM"),
        }

    @dbus.service.method(nb.PROPS, in_signature="s", out_signature="a{sv}")
    def GetAll(self, iface):
        if iface != ADV_IFACE:
            raise dbus.exceptions.DBusException(
                "org.freedesktop.DBus.Error.InvalidArgs", f"no interface {iface}")
        return self.props()

    @dbus.service.method(ADV_IFACE, in_signature="", out_signature="")
    def Release(self):
        nb.log("advertisement released by bluetoothd")


def call_async(method, *args, timeout=nb.CALL_TIMEOUT, **kw):
    """Calls a method without blocking the loop (BlueZ calls back into our
    advertisement object before it replies); waits for the reply."""
    done = {}
    method(*args, reply_handler=lambda *r: done.setdefault("ok", r),
           error_handler=lambda e: done.setdefault("err", e), timeout=timeout, **kw)
    nb.check(nb.wait_until(lambda: done, timeout + 1), f"no reply within {timeout} s")
    if "err" in done:
        raise done["err"]
    return done["ok"]


def matching_devices(bus, observer):
    """Device1 objects under the observer adapter that list our UUID."""
    out = []
    for path, ifs in nb.managed_objects(bus).items():
        dev = ifs.get(nb.DEVICE)
        if dev is None or not str(path).startswith(observer + "/"):
            continue
        if NL_SERVICE_UUID in [str(u).lower() for u in dev.get("UUIDs", [])]:
            out.append((str(path), dev))
    return out


def main(bus):
    found = nb.adapters(bus)
    nb.check(len(found) == 2, f"expected 2 adapters, found {len(found)}")
    (adv_path, adv_props), (obs_path, _) = found
    adv_addr = str(adv_props["Address"])
    nb.log(f"advertiser {adv_path} ({adv_addr}), observer {obs_path}")
    for path, _ in found:
        nb.set_powered(bus, path, True)

    observer = dbus.Interface(bus.get_object(nb.BLUEZ, obs_path), nb.ADAPTER)
    observer.SetDiscoveryFilter({"UUIDs": dbus.Array([NL_SERVICE_UUID], signature="s"),
                                 "Transport": "le", "DuplicateData": True},
                                timeout=nb.CALL_TIMEOUT)
    observer.StartDiscovery(timeout=nb.CALL_TIMEOUT)
    ok = nb.wait_until(lambda: bool(nb.get_prop(bus, obs_path, nb.ADAPTER, "Discovering")),
                       15, poll=0.2)
    nb.check(ok, f"{obs_path}: Discovering did not become true within 15 s")
    nb.log(f"{obs_path}: discovering")

    manager = dbus.Interface(bus.get_object(nb.BLUEZ, adv_path), nb.ADV_MANAGER)
    adv = Advertisement(bus, ADV_PATH)
    seen = []
    for attempt in range(1, ATTEMPTS + 1):
        call_async(manager.RegisterAdvertisement, dbus.ObjectPath(ADV_PATH), {})
        nb.log(f"attempt {attempt}: advertisement registered on {adv_path}")
        if nb.wait_until(lambda: matching_devices(bus, obs_path), SEEN_TIMEOUT, poll=0.25):
            seen = matching_devices(bus, obs_path)
            break
        nb.log(f"attempt {attempt}: no device with {NL_SERVICE_UUID} within {SEEN_TIMEOUT} s")
        call_async(manager.UnregisterAdvertisement, dbus.ObjectPath(ADV_PATH))
    nb.check(seen, f"{obs_path} saw no device advertising {NL_SERVICE_UUID} "
                   f"in {ATTEMPTS} attempts of {SEEN_TIMEOUT} s")

    dev_path, dev = seen[0]
    dev_addr = str(dev.get("Address", ""))
    nb.log(f"seen {dev_path} address {dev_addr} ({dev.get('AddressType', '?')}) "
           f"name {dev.get('Name', dev.get('Alias', '?'))} RSSI {dev.get('RSSI', '?')}")
    nb.check(len(seen) == 1, f"expected one matching device, got {[p for p, _ in seen]}")
    nb.check(dev_addr.upper() == adv_addr.upper(),
             f"device address {dev_addr} is not the advertiser's {adv_addr}")

    call_async(manager.UnregisterAdvertisement, dbus.ObjectPath(ADV_PATH))
    observer.StopDiscovery(timeout=nb.CALL_TIMEOUT)
    adv.remove_from_connection()


if __name__ == "__main__":
    nb.run(main)
