#!/usr/bin/python3
"""bluez-vm: bluetoothctl (BlueZ's own client, none of our code) as any BLE
central would use the simulated pen. needlelink-sim runs pen-bc.json on the
BlueZ radio of the first adapter; bluetoothctl, driven through a pseudo
terminal exactly as an operator types, uses the second:

  1. selects the second controller, starts discovery, then the pen starts
     advertising (btvirt reports once per enable: a miss restarts
     discovery) and is found by address and advertised name,
  2. pairs: its KeyboardOnly agent prompts for the passkey, the test types
     the one the pen logged (LE Secure Connections, authenticated),
  3. connects, waits for ServicesResolved,
  4. reads Device Information (serial, model, manufacturer) and Battery
     Level with select-attribute + read, parsing bluetoothctl's hex dump,
  5. subscribes to Live Status with notify on and decodes one notification
     with nl-decode (E2E-CRC and layout of protocol/),
  6. disconnects; the simulator is stopped and its --summary read.

Asserted: DIS serial and Battery Level equal the simulator's own summary
(serial, battery_pct), model and manufacturer equal the scenario's, the
Live Status battery_pct equals the Battery Level, and the passkey typed is
the one the pen displayed. The whole bluetoothctl transcript is kept in
$NL_VM_RESULTS/tests/bluetoothctl.log.

Usage: test_bluetoothctl.py NEEDLELINK_SIM SCENARIO NL_DECODE LOG_DIR"""

import json
import os
import pty
import re
import select
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "guest"))
import nl_bluez as nb  # noqa: E402

BLUETOOTHCTL = "/usr/bin/bluetoothctl"
NL_SERVICE = "4e4c0001-7a1d-4c3b-9f6e-5d2b8a0c1e37"
NL_LIVE = "4e4c0003-7a1d-4c3b-9f6e-5d2b8a0c1e37"
DIS_MODEL = "00002a24-0000-1000-8000-00805f9b34fb"
DIS_SERIAL = "00002a25-0000-1000-8000-00805f9b34fb"
DIS_MANUFACTURER = "00002a29-0000-1000-8000-00805f9b34fb"
BATTERY_LEVEL = "00002a19-0000-1000-8000-00805f9b34fb"
DISCOVERY_ATTEMPTS = 4
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|[\x01\x02]")
HEXLINE = re.compile(r"^ +((?:[0-9a-f]{2} )+)")
PROMPT = re.compile(r"^\[[^\]]*\][#>] ?$")


class Ctl:
    """bluetoothctl on a pseudo terminal: send() types a line, expect()
    waits (with a deadline) for a pattern in the output after the current
    position and moves past the match."""

    def __init__(self, transcript):
        self.out = ""
        self.pos = 0
        self.log = open(transcript, "w")
        master, slave = pty.openpty()
        self.master = master
        self.proc = subprocess.Popen([BLUETOOTHCTL, "--agent", "KeyboardOnly"],
                                     stdin=slave, stdout=slave, stderr=slave,
                                     start_new_session=True, close_fds=True)
        os.close(slave)
        nb.log(f"bluetoothctl pid {self.proc.pid}, transcript {transcript}")

    def pump(self, wait):
        r, _, _ = select.select([self.master], [], [], wait)
        if not r:
            return
        try:
            data = os.read(self.master, 65536)
        except OSError:
            data = b""
        if not data:
            nb.check(self.proc.poll() is None,
                     f"bluetoothctl exited with {self.proc.poll()}")
            return
        text = ANSI.sub("", data.decode("utf-8", "replace"))
        text = text.replace("\r\n", "\n").replace("\r", "\n")
        self.out += text
        self.log.write(text)
        self.log.flush()

    def send(self, line):
        self.log.write(f"\n>>> {line}\n")
        os.write(self.master, (line + "\n").encode())

    def expect(self, pattern, timeout, what=None, since=None):
        """since: search from this output offset instead of the current
        position (for a line that may come before the one expected last)."""
        rx = re.compile(pattern)
        end = time.monotonic() + timeout
        while True:
            m = rx.search(self.out, self.pos if since is None else since)
            if m:
                self.pos = max(self.pos, m.end())
                return m
            left = end - time.monotonic()
            if left <= 0:
                raise nb.TestFailure(f"bluetoothctl: no {what or pattern!r} within {timeout} s")
            self.pump(min(left, 0.5))

    def hexdump_after(self, header, timeout, what, chg=None):
        """The bytes of a hex dump bluetoothctl prints after the line
        matching header. bluetoothctl prints a value twice when it changed:
        under "[CHG] Attribute PATH Value:" (the property) and bare (the
        reply to read), with prompt redraws in between, and a reply may
        come after later output. chg None: the first bare dump (a read's
        reply); chg a pattern: the first dump under a [CHG] line matching
        it (a notification). A dump is complete once a line that is not
        part of it follows or a line is short of 16 bytes (the prompt,
        redrawn after every line, counts for nothing)."""
        m = self.expect(header, timeout, what)
        end = time.monotonic() + timeout
        chg_rx = re.compile(r"^\[CHG\] Attribute (\S+) Value:")
        want_rx = re.compile(chg) if chg else None
        while True:
            # [0] is the rest of the header line; the last element may be a
            # line still being written (or the redrawn prompt).
            lines = self.out[m.end():].split("\n")
            dump = []
            under = None  # the [CHG] line the current dump belongs to
            last = ""  # last line that is neither a prompt nor a dump
            for i, ln in enumerate(lines[1:], start=1):
                if not ln.strip() or PROMPT.match(ln):
                    continue
                h = HEXLINE.match(ln)
                if h and i == len(lines) - 1:
                    break  # a dump line still being written
                if h:
                    if not dump:
                        under = last if chg_rx.match(last) else None
                    dump.append(h.group(1))
                    if len(h.group(1).split()) == 16:
                        continue  # a full line: more may follow
                elif not dump:
                    last = ln
                    continue
                # The dump ended: a short line, or another line after it.
                ours = (under is None) if want_rx is None else \
                    (under is not None and want_rx.search(under) is not None)
                if ours:
                    self.pos = m.end() + len("\n".join(lines[:i + 1 if h else i]))
                    return bytes.fromhex("".join(dump).replace(" ", ""))
                dump = []
                last = "" if h else ln
            nb.check(time.monotonic() < end, f"bluetoothctl: no complete hex dump for {what}")
            self.pump(0.3)

    def close(self):
        if self.proc.poll() is None:
            try:
                self.send("quit")
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        # What is left in the pty goes to the transcript.
        try:
            while select.select([self.master], [], [], 0)[0]:
                data = os.read(self.master, 65536)
                if not data:
                    break
                self.log.write(ANSI.sub("", data.decode("utf-8", "replace")))
        except OSError:
            pass
        os.close(self.master)
        self.log.close()


def read_attr(ctl, uuid, what):
    ctl.send(f"select-attribute {uuid}")
    ctl.send("read")
    return ctl.hexdump_after(r"Attempting to read (\S+)", 20, what)


def main(bus):
    sim_bin, scenario_path, decoder, logdir = sys.argv[1:5]
    for b in (sim_bin, decoder, BLUETOOTHCTL):
        nb.check(os.access(b, os.X_OK), f"{b} is not executable")
    with open(scenario_path) as f:
        scenario = json.load(f)["pen"]
    serial = scenario["serial"]
    found = nb.adapters(bus)
    nb.check(len(found) >= 2, f"expected 2 adapters, found {len(found)}")
    (pen_adapter, pen_props), (central, central_props) = found[0], found[1]
    pen_addr = str(pen_props["Address"])
    central_addr = str(central_props["Address"])
    for path, _ in found[:2]:
        nb.set_powered(bus, path, True)
    hci = pen_adapter.rsplit("/", 1)[-1]
    nb.log(f"pen on {pen_adapter} ({pen_addr}); bluetoothctl on {central} ({central_addr})")

    work = tempfile.mkdtemp(prefix="nl-btctl-")
    summary_path = os.path.join(work, "summary.json")
    sim_log = os.path.join(logdir, "bluetoothctl-sim.log")
    simf = open(sim_log, "w")
    sim = None
    ctl = Ctl(os.path.join(logdir, "bluetoothctl.log"))

    def sim_text():
        with open(sim_log, errors="replace") as f:
            return f.read()

    try:
        ctl.expect(r"Agent registered", 20, "agent registration")
        ctl.send(f"select {central_addr}")
        ctl.send("show")
        ctl.expect(rf"Controller {central_addr}", 10, "the selected controller")
        for attempt in range(1, DISCOVERY_ATTEMPTS + 1):
            ctl.send("scan on")
            ctl.expect(r"Discovery started", 20, "discovery start")
            ctl.expect(rf"\[CHG\] Controller {central_addr} Discovering: yes", 20,
                       "Discovering: yes")
            if sim is None:
                cmd = [sim_bin, "--radio", "bluez", "--adapter", hci, "--scenario",
                       scenario_path, "--wipe", "--state-dir", os.path.join(work, "state"),
                       "--summary", summary_path]
                sim = subprocess.Popen(cmd, stdout=simf, stderr=subprocess.STDOUT)
                nb.log(f"started {' '.join(cmd)}: pid {sim.pid}")
            try:
                ctl.expect(rf"Device {pen_addr} {re.escape(serial[:8])}", 20,
                           "the pen's advertisement")
                break
            except nb.TestFailure:
                nb.check(attempt < DISCOVERY_ATTEMPTS,
                         f"pen not found in {DISCOVERY_ATTEMPTS} discovery runs")
                nb.log(f"discovery {attempt}: pen not seen yet, restarting discovery")
                ctl.send("scan off")
                ctl.expect(r"Discovery stopped", 20, "discovery stop")
        nb.log(f"bluetoothctl found {pen_addr} advertising {serial[:8]}")
        ctl.send("scan off")
        ctl.expect(r"Discovery stopped", 20, "discovery stop")

        since_pair = len(ctl.out)
        ctl.send(f"pair {pen_addr}")
        ctl.expect(r"Enter passkey \(number in 0-999999\)", 60, "the agent's passkey prompt")
        # bluetoothd asks the pen's agent and bluetoothctl's in either order.
        end = time.monotonic() + 20
        while not re.findall(r"passkey (\d{6}) for", sim_text()):
            nb.check(time.monotonic() < end,
                     "bluetoothctl asks for a passkey, but the pen displayed none in 20 s")
            ctl.pump(0.2)
        passkey = re.findall(r"passkey (\d{6}) for", sim_text())[-1]
        nb.log(f"typing the passkey the pen displayed: {passkey}")
        ctl.send(passkey)
        ctl.expect(r"Pairing successful", 60, "Pairing successful")
        ctl.send(f"connect {pen_addr}")
        ctl.expect(r"Connection successful", 40, "Connection successful")
        # Pair() connects and may resolve the services already.
        ctl.expect(rf"Device {pen_addr} ServicesResolved: yes", 40, "ServicesResolved",
                   since=since_pair)
        ctl.send("info")
        ctl.expect(r"Paired: yes", 10, "Paired: yes in info")
        ctl.expect(r"Bonded: yes", 10, "Bonded: yes in info")
        nb.log("paired, bonded, connected, services resolved")

        ctl.send("menu gatt")
        got_serial = read_attr(ctl, DIS_SERIAL, "DIS serial").decode("ascii", "replace")
        model = read_attr(ctl, DIS_MODEL, "DIS model").decode("ascii", "replace")
        maker = read_attr(ctl, DIS_MANUFACTURER, "DIS manufacturer").decode("ascii", "replace")
        battery = read_attr(ctl, BATTERY_LEVEL, "Battery Level")
        nb.log(f"DIS serial '{got_serial}' model '{model}' manufacturer '{maker}'; "
               f"battery {battery.hex()}")
        nb.check(got_serial == serial, f"DIS serial '{got_serial}', scenario '{serial}'")
        nb.check(model == scenario["model"], f"DIS model '{model}', scenario "
                 f"'{scenario['model']}'")
        nb.check(maker == scenario["manufacturer"],
                 f"DIS manufacturer '{maker}', scenario '{scenario['manufacturer']}'")
        nb.check(len(battery) == 1, f"Battery Level is {len(battery)} bytes")

        ctl.send(f"select-attribute {NL_LIVE}")
        # The prompt after the echoed command names the selected
        # characteristic: only its values count.
        ctl.expect(rf"select-attribute {NL_LIVE}\s*\n", 10, "the select-attribute echo")
        chr_path = ctl.expect(r":(/service[0-9a-f]{4}/char[0-9a-f]{4})\]#", 10,
                              "the Live Status characteristic selected").group(1)
        ctl.send("notify on")
        live = ctl.hexdump_after(r"Notify started", 20, "a Live Status notification",
                                 chg=rf"{re.escape(chr_path)} Value:")
        nb.log(f"Live Status notification: {live.hex()}")
        dec = subprocess.run([decoder, "live", live.hex()], capture_output=True, text=True,
                             timeout=10)
        nb.check(dec.returncode == 0,
                 f"nl-decode live {live.hex()}: exit {dec.returncode}: {dec.stdout}{dec.stderr}")
        fields = dict(ln.split("=", 1) for ln in dec.stdout.splitlines() if "=" in ln)
        nb.log(f"decoded: {fields}")
        nb.check(int(fields.get("battery_pct", -1)) == battery[0],
                 f"Live Status battery_pct {fields.get('battery_pct')}, Battery Level "
                 f"{battery[0]}")
        ctl.send("notify off")
        ctl.expect(r"Notify stopped", 20, "Notify stopped")
        ctl.send("back")
        ctl.send(f"disconnect {pen_addr}")
        ctl.expect(r"Successful disconnected|Connected: no", 20, "the disconnection")

        sim.send_signal(signal.SIGTERM)
        rc = sim.wait(timeout=20)
        nb.check(rc == 0, f"simulator exited with {rc}")
        with open(summary_path) as f:
            pen = json.load(f)["pens"][0]
        nb.log(f"simulator summary: serial {pen['serial']}, battery_pct {pen['battery_pct']}")
        nb.check(pen["serial"] == got_serial,
                 f"summary serial {pen['serial']}, bluetoothctl read '{got_serial}'")
        nb.check(pen["battery_pct"] == battery[0],
                 f"summary battery_pct {pen['battery_pct']}, bluetoothctl read {battery[0]}")
        nb.check(pen["battery_pct"] == scenario["battery_pct"],
                 f"summary battery_pct {pen['battery_pct']}, scenario "
                 f"{scenario['battery_pct']}")
    finally:
        ctl.close()
        if sim is not None and sim.poll() is None:
            sim.kill()
            sim.wait()
        simf.close()


if __name__ == "__main__":
    nb.run(main)
