#!/usr/bin/python3
"""Diagnostic (not a test): ATT notifications in a VM run's btmon.snoop.

Usage: snoop_records.py RESULTS/btmon.snoop [VALUE_HANDLE]

Reads the btsnoop monitor file btmon writes in the guest (run-vm.sh keeps it
in the results directory), reassembles ACL fragments, L2CAP frames and the
SDUs of Enhanced ATT channels (CIDs >= 0x40), and prints per controller and
direction how many notification PDUs went over which ATT bearer (CID 4 is the
unenhanced one) and how many values each handle carried, counting the
values inside Multiple Handle Value Notifications (opcode 0x23).

With VALUE_HANDLE (the Treatment Record value handle: the one with many
values), lists the segment header of each value received by each controller
in capture order and marks where the rolling counter (docs/protocol.md 6.1)
does not go up by one: a reset to 0 after a new subscription is expected;
anything else means segments were lost before the capture (or by it). The
capture shows the order on the link; with several bearers bluetoothd may
still hand values on in another order (see the "ATT PDU received" lines of
bluetoothd -d, one channel pointer per bearer, in bluetoothd.log). The CIDs
of Enhanced ATT bearers differ between the two ends of a link.

The capture itself can miss packets under load: a frame whose continuation
is missing is counted under "incomplete L2CAP frames" and skipped.
"""

import collections
import struct
import sys


def att_pdus(path):
    """Yields (seconds, controller index, 'TX'|'RX', cid, ATT PDU bytes)."""
    data = open(path, "rb").read()
    if data[:8] != b"btsnoop\0":
        sys.exit(f"{path}: not a btsnoop file")
    off = 16
    acl = {}
    sdu = {}
    incomplete = 0
    while off + 24 <= len(data):
        _, ilen, flags, _, ts = struct.unpack(">IIIIq", data[off:off + 24])
        off += 24
        pkt = data[off:off + ilen]
        off += ilen
        idx, op = flags >> 16, flags & 0xffff
        if op not in (4, 5) or len(pkt) < 4:  # ACL TX / RX
            continue
        hdr, alen = struct.unpack("<HH", pkt[:4])
        key = (idx, op, hdr & 0xfff)
        if (hdr >> 12) & 3 in (0, 2):  # start of an L2CAP frame
            if key in acl:
                incomplete += 1
            acl[key] = bytearray(pkt[4:4 + alen])
        elif key in acl:
            acl[key] += pkt[4:4 + alen]
        else:
            continue
        frame = acl[key]
        if len(frame) < 4:
            continue
        l2len, cid = struct.unpack("<HH", frame[:4])
        if len(frame) < 4 + l2len:
            continue
        del acl[key]
        payload = bytes(frame[4:4 + l2len])
        direction = "TX" if op == 4 else "RX"
        if cid == 4:
            yield ts / 1e6, idx, direction, cid, payload
        elif cid >= 0x40:
            k = (idx, op, cid)
            if k not in sdu:
                sdu[k] = [struct.unpack("<H", payload[:2])[0], bytearray(payload[2:])]
            else:
                sdu[k][1] += payload
            if len(sdu[k][1]) >= sdu[k][0]:
                yield ts / 1e6, idx, direction, cid, bytes(sdu[k][1][:sdu[k][0]])
                del sdu[k]
    att_pdus.incomplete = incomplete


def values(pdu):
    """(handle, value) pairs of a notification or indication PDU."""
    if not pdu:
        return []
    if pdu[0] in (0x1b, 0x1d) and len(pdu) >= 3:
        return [(struct.unpack("<H", pdu[1:3])[0], pdu[3:])]
    out = []
    if pdu[0] == 0x23:
        o = 1
        while o + 4 <= len(pdu):
            h, n = struct.unpack("<HH", pdu[o:o + 4])
            out.append((h, pdu[o + 4:o + 4 + n]))
            o += 4 + n
    return out


def main():
    if len(sys.argv) not in (2, 3):
        sys.exit(__doc__)
    handle = int(sys.argv[2], 0) if len(sys.argv) == 3 else None
    bearers = collections.Counter()
    per_handle = collections.Counter()
    segs = collections.defaultdict(list)
    for ts, idx, direction, cid, pdu in att_pdus(sys.argv[1]):
        vals = values(pdu)
        if not vals:
            continue
        bearers[(idx, direction, cid, hex(pdu[0]))] += 1
        for h, v in vals:
            per_handle[(idx, direction, h)] += 1
            if h == handle and v and direction == "RX":
                segs[idx].append((ts, cid, v[0]))
    print("notification/indication PDUs (controller, direction, cid, opcode):")
    for k in sorted(bearers):
        print(f"  hci{k[0]} {k[1]} cid {k[2]:#06x} op {k[3]}: {bearers[k]}")
    print("values per handle (controller, direction, handle):")
    for k in sorted(per_handle):
        print(f"  hci{k[0]} {k[1]} handle {k[2]:#06x}: {per_handle[k]}")
    print(f"incomplete L2CAP frames in the capture: {getattr(att_pdus, 'incomplete', 0)}")
    for idx, lst in sorted(segs.items()):
        prev = None
        odd = 0
        print(f"hci{idx} RX handle {handle:#06x}: {len(lst)} values")
        for ts, cid, h in lst:
            c = h >> 2
            mark = ""
            if prev is not None and c != (prev + 1) % 64:
                mark = "  <- reset" if c == 0 else "  <- out of sequence"
                odd += c != 0
            print(f"  {ts - lst[0][0]:10.6f} s cid {cid:#06x} counter {c:2d}"
                  f"{' FIRST' if h & 1 else ''}{' LAST' if h & 2 else ''}{mark}")
            prev = c
        print(f"  out of sequence: {odd}")


if __name__ == "__main__":
    main()
