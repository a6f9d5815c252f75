"""Helpers for the bluez-vm guest tests: the system bus, a GLib loop that
runs until a condition holds or an explicit timeout passes, and BlueZ
adapter look-ups. Run under /usr/bin/python3 (Debian's python3-dbus and
python3-gi import only there)."""

import sys

try:
    import dbus
    import dbus.mainloop.glib
    from gi.repository import GLib
except ImportError as e:
    print(f"FAIL: {e}: install Debian packages python3-dbus and python3-gi, "
          "and run under /usr/bin/python3", flush=True)
    sys.exit(1)

BLUEZ = "org.bluez"
ADAPTER = "org.bluez.Adapter1"
DEVICE = "org.bluez.Device1"
ADV_MANAGER = "org.bluez.LEAdvertisingManager1"
PROPS = "org.freedesktop.DBus.Properties"
OBJ_MANAGER = "org.freedesktop.DBus.ObjectManager"

# Every D-Bus call below carries this timeout (seconds).
CALL_TIMEOUT = 10

dbus.mainloop.glib.DBusGMainLoop(set_as_default=True)


class TestFailure(Exception):
    pass


def log(msg):
    print(msg, flush=True)


def check(cond, msg):
    if not cond:
        raise TestFailure(msg)


def run(main):
    """Runs main(bus); exits 0 on success, 1 with the reason otherwise."""
    name = sys.argv[0].rsplit("/", 1)[-1]
    try:
        main(dbus.SystemBus())
    except TestFailure as e:
        log(f"FAIL {name}: {e}")
        sys.exit(1)
    except dbus.DBusException as e:
        log(f"FAIL {name}: D-Bus error {e.get_dbus_name()}: {e.get_dbus_message()}")
        sys.exit(1)
    log(f"PASS {name}")


def wait_until(cond, timeout, poll=0.1):
    """Runs the main loop (so signals and method calls are served) until
    cond() is true or timeout seconds pass. Returns whether cond held."""
    loop = GLib.MainLoop()
    state = {"ok": bool(cond()), "timed_out": False}
    if state["ok"]:
        return True

    def on_poll():
        # An exception must not vanish inside GLib: stop and re-raise it.
        try:
            ok = cond()
        except Exception as e:  # noqa: BLE001 - re-raised below
            state["error"] = e
            ok = True
        if ok:
            state["ok"] = True
            loop.quit()
            return False
        return True

    def on_timeout():
        state["timed_out"] = True
        loop.quit()
        return False

    poll_id = GLib.timeout_add(int(poll * 1000), on_poll)
    timeout_id = GLib.timeout_add(int(timeout * 1000), on_timeout)
    loop.run()
    if not state["timed_out"]:
        GLib.source_remove(timeout_id)
    if not state["ok"]:
        GLib.source_remove(poll_id)
    if "error" in state:
        raise state["error"]
    return state["ok"]


def name_has_owner(bus, name):
    dbus_obj = bus.get_object("org.freedesktop.DBus", "/org/freedesktop/DBus")
    return bool(dbus_obj.NameHasOwner(name, dbus_interface="org.freedesktop.DBus",
                                      timeout=CALL_TIMEOUT))


def managed_objects(bus):
    root = bus.get_object(BLUEZ, "/")
    return root.GetManagedObjects(dbus_interface=OBJ_MANAGER, timeout=CALL_TIMEOUT)


def adapters(bus):
    """Returns [(path, Adapter1 properties)] sorted by path (hci0 first)."""
    objs = managed_objects(bus)
    return sorted((str(p), ifs[ADAPTER]) for p, ifs in objs.items() if ADAPTER in ifs)


def get_prop(bus, path, iface, prop):
    obj = bus.get_object(BLUEZ, path)
    return obj.Get(iface, prop, dbus_interface=PROPS, timeout=CALL_TIMEOUT)


def set_prop(bus, path, iface, prop, value):
    obj = bus.get_object(BLUEZ, path)
    obj.Set(iface, prop, value, dbus_interface=PROPS, timeout=CALL_TIMEOUT)


def set_powered(bus, path, on, timeout=15):
    """Sets Adapter1.Powered and waits until the adapter reports it."""
    set_prop(bus, path, ADAPTER, "Powered", dbus.Boolean(on))
    ok = wait_until(lambda: bool(get_prop(bus, path, ADAPTER, "Powered")) == on, timeout,
                    poll=0.2)
    check(ok, f"{path}: Powered did not become {on} within {timeout} s")
