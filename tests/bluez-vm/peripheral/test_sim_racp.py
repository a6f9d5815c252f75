#!/usr/bin/python3
"""bluez-vm: needlelink-sim on the BlueZ radio runs a shipped scenario at a
time factor on the first adapter; an independent central on the second
adapter, using only bluetoothd's D-Bus API:

  1. forgets any bond between the two adapters (an earlier test in the same
     boot may have left one), so this run pairs afresh,
  2. discovers the pen by the NeedleLink service UUID and its advertised
     name (the scenario's serial cut to 8 bytes), pairs with passkey entry,
  3. waits for the simulator's "scenario finished" (it runs with --linger,
     so the pen stays up with its records),
  4. enables Treatment Record notifications and RACP indications, writes
     RACP REPORT ALL, reassembles the segmented records (seg.h: FIRST/LAST
     bits, rolling counter from 0), checks each record's CRC-16/MCRF4XX and
     header, until the RESPONSE_CODE indication,
  5. stops the simulator (SIGTERM) and checks the records against its
     --summary: count, sequence numbers 1..last_seq without a gap, store
     epoch.

Usage: test_sim_racp.py SIM_BINARY SCENARIO LOG_FILE"""

import json
import os
import signal
import struct
import subprocess
import sys
import tempfile

import dbus

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "guest"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import nl_bluez as nb  # noqa: E402
import test_pen_peripheral as tp  # noqa: E402

NL_RECORD = "4e4c0004-7a1d-4c3b-9f6e-5d2b8a0c1e37"
NL_RACP = "4e4c0005-7a1d-4c3b-9f6e-5d2b8a0c1e37"
RACP_REPORT = 0x01
RACP_ALL = 0x01
RACP_RESPONSE_CODE = 0x06
RACP_SUCCESS = 0x01
SEG_FIRST = 0x01
SEG_LAST = 0x02
RECORD_HDR = 18
RECORD_TYPES = range(1, 8)  # enum nl_record_type (protocol/.../record.h)
TIME_FACTOR = "60"
FINISH_TIMEOUT = 120  # wall seconds for the scenario (about 10 s at x60)
REPORT_TIMEOUT = 90  # wall seconds for the whole RACP report
EXIT_TIMEOUT = 20


class Reassembler:
    """The receiving side of seg.h, strict: any gap or misplaced segment
    fails the test. Runs inside a D-Bus signal handler, where an exception
    would only be printed: the first failure is kept in .error instead."""

    def __init__(self):
        self.counter = None
        self.buf = None
        self.records = []
        self.segments = 0
        self.error = None

    def feed(self, seg):
        if self.error is None:
            try:
                self._feed(seg)
            except nb.TestFailure as e:
                self.error = e

    def _feed(self, seg):
        self.segments += 1
        nb.check(len(seg) >= 2, f"segment {seg.hex()} too short")
        hdr = seg[0]
        ctr = hdr >> 2
        want = 0 if self.counter is None else (self.counter + 1) % 64
        nb.check(ctr == want, f"segment counter {ctr}, expected {want} ({seg.hex()})")
        self.counter = ctr
        if hdr & SEG_FIRST:
            nb.check(self.buf is None, f"FIRST segment inside a record ({seg.hex()})")
            self.buf = bytearray()
        nb.check(self.buf is not None, f"continuation without a FIRST segment ({seg.hex()})")
        self.buf += seg[1:]
        if hdr & SEG_LAST:
            self.records.append(bytes(self.buf))
            self.buf = None


def forget_bonds(bus, pen_adapter, pen_addr, central, central_addr):
    """Removes the device objects (and their keys) each adapter holds for
    the other one."""
    for adapter, peer in ((central, pen_addr), (pen_adapter, central_addr)):
        for path, ifs in nb.managed_objects(bus).items():
            dev = ifs.get(nb.DEVICE)
            if (dev is not None and str(path).startswith(adapter + "/") and
                    str(dev.get("Address", "")).upper() == peer.upper()):
                a = dbus.Interface(bus.get_object(nb.BLUEZ, adapter), nb.ADAPTER)
                a.RemoveDevice(dbus.ObjectPath(path), timeout=nb.CALL_TIMEOUT)
                nb.log(f"removed {path} (paired={bool(dev.get('Paired'))})")


def scenario_serial(path):
    with open(path) as f:
        return json.load(f)["pen"]["serial"]


def main(bus):
    sim_bin, scenario, log_path = sys.argv[1], sys.argv[2], sys.argv[3]
    nb.check(os.access(sim_bin, os.X_OK), f"{sim_bin} is not executable (build it first)")
    serial = scenario_serial(scenario)
    adv_name = serial[:8]
    found = nb.adapters(bus)
    nb.check(len(found) == 2, f"expected 2 adapters, found {len(found)}")
    (pen_adapter, pen_props), (central, central_props) = found
    pen_addr = str(pen_props["Address"])
    hci = pen_adapter.rsplit("/", 1)[-1]
    nb.log(f"simulator on {pen_adapter} ({pen_addr}), central on {central}")
    for path, _ in found:
        nb.set_powered(bus, path, True)
    forget_bonds(bus, pen_adapter, pen_addr, central, str(central_props["Address"]))

    work = tempfile.mkdtemp(prefix="nlsim-racp-")
    summary_path = os.path.join(work, "summary.json")
    log = tp.PenLog(log_path)
    logf = open(log_path, "w")
    sim = {"proc": None}

    def start_sim():
        cmd = [sim_bin, "--radio", "bluez", "--adapter", hci, "--scenario", scenario,
               "--time-factor", TIME_FACTOR, "--linger", "--wipe",
               "--state-dir", os.path.join(work, "state"), "--summary", summary_path]
        sim["proc"] = subprocess.Popen(cmd, stdout=logf, stderr=subprocess.STDOUT)
        nb.log(f"started {' '.join(cmd)}: pid {sim['proc'].pid}, log {log_path}")
        log.wait_for(r"advertising 4e4c0001", 30)
        log.wait_for(r"GATT application registered", 30)

    agent = tp.CentralAgent(bus, log)
    try:
        manager = dbus.Interface(bus.get_object(nb.BLUEZ, "/org/bluez"),
                                 "org.bluez.AgentManager1")
        manager.RegisterAgent(dbus.ObjectPath(tp.AGENT_PATH), "KeyboardOnly",
                              timeout=nb.CALL_TIMEOUT)
        dev_path = tp.discover(bus, central, pen_addr, start_sim, serial=adv_name)
        device = dbus.Interface(bus.get_object(nb.BLUEZ, dev_path), nb.DEVICE)

        agent.offset = log.size()
        tp.call_async(device.Pair, timeout=60)
        nb.check(bool(nb.get_prop(bus, dev_path, nb.DEVICE, "Paired")), "not paired after Pair()")
        nb.check(agent.typed is not None, "paired without typing the simulator's passkey")
        nb.log(f"paired with passkey {agent.typed:06d}")
        if not nb.get_prop(bus, dev_path, nb.DEVICE, "Connected"):
            tp.call_async(device.Connect, timeout=30)
        ok = nb.wait_until(lambda: bool(nb.get_prop(bus, dev_path, nb.DEVICE, "ServicesResolved")),
                           30, poll=0.2)
        nb.check(ok, "ServicesResolved did not become true within 30 s")
        chars = tp.characteristics(bus, dev_path)
        for uuid in (NL_RECORD, NL_RACP):
            nb.check(uuid in chars, f"characteristic {uuid} not found on the simulator")

        log.wait_for(r"scenario finished", FINISH_TIMEOUT)
        nb.check(sim["proc"].poll() is None,
                 f"simulator exited with {sim['proc'].returncode} despite --linger")
        nb.log("scenario finished; the simulator lingers with its records")

        rx = Reassembler()
        responses = []

        def on_record(iface, changed, invalidated):
            if "Value" in changed:
                rx.feed(bytes(changed["Value"]))

        def on_racp(iface, changed, invalidated):
            if "Value" in changed:
                responses.append(bytes(changed["Value"]))

        m1 = bus.add_signal_receiver(on_record, signal_name="PropertiesChanged",
                                     dbus_interface=nb.PROPS, path=chars[NL_RECORD],
                                     arg0=tp.GATT_CHRC)
        m2 = bus.add_signal_receiver(on_racp, signal_name="PropertiesChanged",
                                     dbus_interface=nb.PROPS, path=chars[NL_RACP],
                                     arg0=tp.GATT_CHRC)
        rec_ch = dbus.Interface(bus.get_object(nb.BLUEZ, chars[NL_RECORD]), tp.GATT_CHRC)
        racp = dbus.Interface(bus.get_object(nb.BLUEZ, chars[NL_RACP]), tp.GATT_CHRC)
        # Treatment Record through AcquireNotify: every notification is one
        # datagram on the fd. Value over PropertiesChanged (StartNotify) is
        # a property: bluetoothd coalesces changes that come faster than
        # its signals go out, so a burst of segments would lose some.
        acq = rec_ch.AcquireNotify(dbus.Dictionary({}, signature="sv"), timeout=15)
        rec_fd = acq[0].take()
        os.set_blocking(rec_fd, False)

        def drain_records():
            while True:
                try:
                    seg = os.read(rec_fd, 1024)
                except BlockingIOError:
                    return
                if not seg:
                    return
                rx.feed(seg)

        tp.call_async(racp.StartNotify)
        body = bytes([RACP_REPORT, RACP_ALL])
        crc = tp.crc16_mcrf4xx(body)
        tp.call_async(racp.WriteValue, dbus.Array(body + bytes([crc & 0xFF, crc >> 8]),
                                                  signature="y"),
                      dbus.Dictionary({"type": "request"}, signature="sv"), timeout=15)
        ok = nb.wait_until(lambda: drain_records() or responses or rx.error,
                           REPORT_TIMEOUT, poll=0.1)
        # The records were notified before the final indication: on the fd.
        drain_records()
        os.close(rec_fd)
        if rx.error:
            raise rx.error
        nb.check(ok, f"no RACP response within {REPORT_TIMEOUT} s "
                 f"({len(rx.records)} records received)")
        rsp = responses[0]
        tp.check_crc("RACP response", rsp)
        nb.check(len(rsp) == 6, f"RACP response {rsp.hex()}: 6 bytes expected")
        nb.check((rsp[0], rsp[2], rsp[3]) == (RACP_RESPONSE_CODE, RACP_REPORT, RACP_SUCCESS),
                 f"RACP response {rsp.hex()}: expected REPORT SUCCESS")
        nb.check(rx.buf is None, "a record was still being reassembled at the response")
        # Closing the AcquireNotify fd (above) ended that notify session.
        tp.call_async(racp.StopNotify)
        m1.remove()
        m2.remove()

        seqs, epochs, types = [], set(), {}
        for i, rec in enumerate(rx.records):
            nb.check(len(rec) >= RECORD_HDR + 2, f"record {i}: {len(rec)} bytes")
            tp.check_crc(f"record {i}", rec)
            rtype, _flags, seq, epoch = struct.unpack_from("<BBII", rec, 0)
            nb.check(rtype in RECORD_TYPES, f"record {i}: type {rtype}")
            seqs.append(seq)
            types[rtype] = types.get(rtype, 0) + 1
            epochs.add(epoch)
        nb.log(f"RACP REPORT ALL: {len(seqs)} records, seq {seqs}, "
               f"{sum(len(r) for r in rx.records)} bytes in {rx.segments} segments")

        off = log.size()
        sim["proc"].send_signal(signal.SIGTERM)
        rc = sim["proc"].wait(timeout=EXIT_TIMEOUT)
        nb.check(rc == 0, f"simulator exited with {rc} after SIGTERM")
        nb.check("stopping" in log.since(off), "simulator did not log its stop")
        with open(summary_path) as f:
            pens = json.load(f)["pens"]
        nb.check(len(pens) == 1, f"summary has {len(pens)} pens")
        pen = pens[0]
        nb.log(f"summary: last_seq {pen['last_seq']} store_used {pen['store_used']} "
               f"records {pen['records']['total']} epoch {pen['store_epoch']}")
        nb.check(pen["serial"] == serial, f"summary serial {pen['serial']}")
        nb.check(pen["last_seq"] >= 1, "the scenario wrote no record")
        nb.check(len(seqs) == pen["records"]["total"] == pen["store_used"],
                 f"{len(seqs)} records reported, summary: {pen['records']['total']} written, "
                 f"{pen['store_used']} stored")
        nb.check(seqs == list(range(1, pen["last_seq"] + 1)),
                 f"sequence numbers {seqs}, expected 1..{pen['last_seq']}")
        # The summary lists the record types in enum order after "total"
        # (runner_summary), so its n-th name is type n.
        names = [k for k in pen["records"] if k != "total"]
        want = {t: pen["records"][names[t - 1]] for t in RECORD_TYPES
                if pen["records"][names[t - 1]]}
        nb.check(types == want, f"records by type {types}, summary {want} ({names})")
        nb.check(epochs == {pen["store_epoch"]},
                 f"store epochs {epochs}, summary {pen['store_epoch']}")
    finally:
        if sim["proc"] is not None and sim["proc"].poll() is None:
            sim["proc"].send_signal(signal.SIGTERM)
            try:
                rc = sim["proc"].wait(timeout=10)
            except subprocess.TimeoutExpired:
                sim["proc"].kill()
                rc = sim["proc"].wait()
            nb.log(f"simulator exited with {rc}")
        logf.close()
        agent.remove_from_connection()
        print("---- simulator log", flush=True)
        print(log.text(), flush=True)


if __name__ == "__main__":
    nb.run(main)
