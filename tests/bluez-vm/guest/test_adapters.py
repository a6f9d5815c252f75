#!/usr/bin/python3
"""bluez-vm: bluetoothd owns org.bluez and exposes, over ObjectManager, the
two virtual LE controllers btvirt made, each with a distinct address, the LE
advertising and GATT managers, and a Powered property that follows Set."""

import nl_bluez as nb


def main(bus):
    nb.check(nb.name_has_owner(bus, nb.BLUEZ), "org.bluez has no owner")

    found = nb.adapters(bus)
    nb.log(f"adapters: {[(p, str(props['Address'])) for p, props in found]}")
    nb.check(len(found) == 2, f"expected 2 adapters, ObjectManager lists {len(found)}")

    addrs = {str(props["Address"]) for _, props in found}
    nb.check(len(addrs) == 2, f"adapter addresses are not distinct: {addrs}")
    nb.check("00:00:00:00:00:00" not in addrs, f"an adapter has no address: {addrs}")

    objs = nb.managed_objects(bus)
    for path, _ in found:
        ifaces = set(str(i) for i in objs[path].keys())
        for want in (nb.ADV_MANAGER, "org.bluez.GattManager1"):
            nb.check(want in ifaces, f"{path} lacks {want} (has {sorted(ifaces)})")

    # Off and on again, so both transitions are observed, not a stale state.
    for path, _ in found:
        nb.set_powered(bus, path, True)
        nb.set_powered(bus, path, False)
        nb.set_powered(bus, path, True)
        nb.log(f"{path}: powered on, off and on")


if __name__ == "__main__":
    nb.run(main)
