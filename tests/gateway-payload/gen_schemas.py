#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Source of docs/schemas/*.json, the JSON Schemas of the MQTT API.

  gen_schemas.py DIR          writes the schemas into DIR
  gen_schemas.py --check DIR  fails if DIR differs from what would be written

Edit the schemas here, not in the JSON files: ctest runs --check, so the two
cannot drift apart. docs/mqtt-api.md describes every member.
"""
import json, os, sys

CHECK = len(sys.argv) == 3 and sys.argv[1] == "--check"
if len(sys.argv) != (3 if CHECK else 2):
    sys.exit(__doc__)
OUT = sys.argv[-1]
mismatch = []
BASE = 'https://needlelink.invalid/schemas/'
ZONES = ["forehead","glabella","periorbital","nose","cheeks","perioral","chin","neck","chest",
         "scalp","scar","stretch_marks","body","cheekbones","upper_lip"]
UNITS = ["mm","passes","s","days","sessions"]
C = 'common.json#/$defs/'
def ref(n): return {"$ref": C + n}
def nullable(n): return {"anyOf": [ref(n), {"type": "null"}]}
def obj(props, required=None, title=None, desc=None):
    o = {"type": "object"}
    if title: o["title"] = title
    if desc: o["description"] = desc
    o["properties"] = props
    o["required"] = list(props) if required is None else required
    o["additionalProperties"] = False
    return o
def flags(names, desc):
    return obj({n: {"type": "boolean"} for n in names}, desc=desc)
def u(maxv): return {"type": "integer", "minimum": 0, "maximum": maxv}
U8, U16, U32 = u(255), u(65535), u(4294967295)
def nn(s): return {"anyOf": [s, {"type": "null"}]}

written = set()


def write(name, schema):
    schema = {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": BASE + name, **schema}
    text = json.dumps(schema, indent=2) + "\n"
    path = os.path.join(OUT, name)
    written.add(name)
    if CHECK:
        try:
            with open(path) as f:
                if f.read() != text:
                    mismatch.append(name)
        except OSError:
            mismatch.append(name)
        return
    with open(path, 'w') as f:
        f.write(text)

def const_schema(kind):
    return {"const": "needlelink/%s/1" % kind}

common = {
  "title": "NeedleLink MQTT API: shared definitions",
  "$defs": {
    "time": {"type": "string", "description": "ISO 8601 UTC with milliseconds",
             "pattern": "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\\.[0-9]{3}Z$"},
    "serial": {"type": "string", "description": "pen serial: printable ASCII without / + #",
               "pattern": "^[!-\"$-*,-.0-~]{1,32}$"},
    "gateway_id": {"type": "string", "description": "gateway id: printable ASCII without / + #",
                   "pattern": "^[!-\"$-*,-.0-~]{1,64}$"},
    "id": {"type": "string", "pattern": "^[A-Za-z0-9._:@-]{1,64}$"},
    "text": {"type": "string", "minLength": 1, "maxLength": 256, "pattern": "^[^\\u0000-\\u001f\\u007f]*$"},
    "rule": {"type": "string", "pattern": "^[a-z0-9_]{1,64}$"},
    "zone": {"enum": ["none"] + ZONES, "description": "nl_zone_name(); none: no zone / all zones"},
    "treatment_zone": {"enum": ZONES},
    "depth_mm": {"type": "number", "minimum": 0, "maximum": 3.0},
    "mm": {"type": "number", "minimum": 0, "maximum": 65.535},
    "seconds": {"type": "number", "minimum": 0, "maximum": 4294967.295,
                "description": "seconds with millisecond resolution"},
    "hash": {"type": "string", "pattern": "^[0-9a-f]{8}$", "description": "32-bit FNV-1a, 8 lower-case hex digits"},
    "uid": {"type": ["string", "null"], "pattern": "^[0-9a-f]{16}$",
            "description": "cartridge UID, 16 lower-case hex digits; null: none"},
    "u8": U8, "u16": U16, "u32": U32,
    "session_id": {"type": ["integer", "null"], "minimum": 1, "maximum": 4294967295,
                   "description": "null: outside any session"},
    "record_id": {"type": "string", "pattern": "^[!-\"$-*,-.0-~]{1,32}:[0-9]{1,10}:[0-9]{1,10}$",
                  "description": "SERIAL:EPOCH:SEQ"},
    "msg_id": {"type": "integer", "minimum": 0, "maximum": 9007199254740991},
    "pen_state": {"enum": ["off", "idle", "armed", "running", "paused", "locked", "fault"]},
    "limit_source": {"enum": ["factory", "session", "fallback"]},
    "lock_reason": {"enum": ["none", "policy", "passes", "needle_on", "cartridge", "operator", "fault"]},
    "limit_event": {"enum": ["applied", "clamp", "lock", "unlock", "override", "fallback", "pass_warn", "time_warn"]},
    "unit": {"enum": ["none"] + UNITS},
    "limit_set": obj({
        "format": U8,
        "lifetime_s": {"type": "integer", "minimum": 0, "maximum": 86400},
        "depth_cap_mm": ref("depth_mm"),
        "needle_on_warn_s": nn({"type": "integer", "minimum": 1, "maximum": 65535}),
        "needle_on_lock_s": nn({"type": "integer", "minimum": 1, "maximum": 65535}),
        "pass_warn": nn({"type": "integer", "minimum": 1, "maximum": 255}),
        "pass_lock": nn({"type": "integer", "minimum": 1, "maximum": 255}),
        "zones": {"type": "array", "maxItems": 16, "items": obj({
            "zone": ref("treatment_zone"),
            "depth_cap_mm": ref("depth_mm"),
            "pass_warn": nn({"type": "integer", "minimum": 1, "maximum": 255}),
            "pass_lock": nn({"type": "integer", "minimum": 1, "maximum": 255})})}},
        desc="a limit set (protocol pdu.h); null members: no such limit"),
    "zone_total": obj({
        "zone": ref("zone"), "passes": U16,
        "depth_max_mm": nullable("depth_mm"), "depth_mean_mm": nullable("depth_mm"),
        "needle_on_s": ref("seconds"), "strokes": U32}),
    "limit_body": {
        "type": "object",
        "properties": {
            "event": ref("limit_event"),
            "origin": {"enum": ["firmware", "gateway"]},
            "zone": ref("zone"),
            "limits_hash": ref("hash"),
            "unit": ref("unit"),
            "value": U16, "threshold": U16,
            "value_mm": nullable("mm"), "threshold_mm": nullable("mm"),
            "value_passes": U16, "threshold_passes": U16,
            "value_s": U16, "threshold_s": U16,
            "reason": ref("lock_reason"),
            "remaining_s": U32,
            "record_id": ref("record_id"),
            "pen_time": nullable("time"),
        },
        "required": ["event", "origin", "zone", "limits_hash", "unit", "reason", "remaining_s"],
        "allOf": [
            {"if": {"properties": {"unit": {"const": "none"}}},
             "then": {"required": ["value", "threshold"],
                      "not": {"anyOf": [{"required": [k]} for k in
                              ["value_mm", "value_passes", "value_s"]]}}},
        ] + [
            {"if": {"properties": {"unit": {"const": un}}},
             "then": {"required": ["value_" + un, "threshold_" + un],
                      "not": {"required": ["value"]}}}
            for un in ["mm", "passes", "s"]
        ] + [
            {"not": {"properties": {"unit": {"enum": ["days", "sessions"]}}, "required": ["unit"]}},
            {"if": {"properties": {"event": {"const": "clamp"}}}, "then": {"properties": {"unit": {"const": "mm"}}}},
            {"if": {"properties": {"event": {"const": "pass_warn"}}}, "then": {"properties": {"unit": {"const": "passes"}}}},
            {"if": {"properties": {"event": {"const": "time_warn"}}}, "then": {"properties": {"unit": {"const": "s"}}}},
        ],
        "unevaluatedProperties": False,
    },
    "measure": {
        "description": "unit plus <prefix>_<unit> members; the prefixes are measured/threshold (alerts) or value/threshold (blocks)",
        "allOf": [
            {"if": {"properties": {"unit": {"const": un}}, "required": ["unit"]},
             "then": {"anyOf": [{"required": ["measured_" + un, "threshold_" + un]},
                                {"required": ["value_" + un, "threshold_" + un]}]}}
            for un in UNITS
        ],
    },
    "role": {"enum": ["physician", "nurse", "aesthetician", "technician"]},
    "operator": obj({"id": ref("id"), "role": ref("role")}),
    "contraindication": {"enum": ["active_infection", "cold_sores", "active_acne", "rosacea", "keloid",
                                  "isotretinoin", "anticoagulants", "pregnancy", "skin_cancer",
                                  "chemo_radiotherapy", "immunosuppression"]},
  }
}
write('common.json', common)

def payload(kind, title, props, required=None, extra=None):
    p = {"schema": const_schema(kind), **props}
    s = obj(p, required=(["schema"] + (required if required is not None else list(props)))), 
    s = s[0]
    s["title"] = title
    if extra:
        s.update(extra)
    return s

def measure_props(prefix):
    d = {}
    for un in UNITS:
        t = ref("mm") if un == "mm" else {"type": "integer"}
        d[prefix + "_" + un] = t
        d["threshold_" + un] = t
    return d

# ---- record ----
REC_BODIES = {
 "session_start": obj({"limits_hash": ref("hash"), "limit_source": ref("limit_source"),
                       "lifetime_s": U32, "cartridge_uid": ref("uid"), "zone": ref("zone")}),
 "session_end": obj({"reason": {"enum": ["stopped", "lifetime", "locked", "battery", "power_loss", "fault"]},
                     "duration_s": ref("seconds"), "needle_on_s": ref("seconds"), "strokes": U32,
                     "zones": {"type": "array", "maxItems": 16, "items": ref("zone_total")}}),
 "segment": obj({"zone": ref("zone"), "pass": U16, "depth_set_mm": ref("depth_mm"),
                 "depth_cap_mm": ref("depth_mm"), "depth_measured_mm": nullable("depth_mm"),
                 "speed_hz": {"type": "integer", "minimum": 0, "maximum": 500},
                 "run_s": ref("seconds"), "strokes": U32, "cartridge_uid": ref("uid"),
                 "status": flags(["clamped", "stopped_by_limit", "dial_over_cap", "pass_warn",
                                  "needle_on_warn", "battery_low", "fallback_limits"], "NL_SEG_* bits"),
                 "end_reason": {"enum": ["operator", "limit", "lock", "battery", "cartridge", "session", "fault"]}}),
 "cartridge": obj({"event": {"enum": ["inserted", "removed", "rejected"]},
                   "reject_reason": {"enum": ["none", "reused", "expired", "unreadable", "needle_too_short"]},
                   "uid": ref("uid"), "lot": {"type": ["string", "null"], "pattern": "^[ -~]{1,8}$"},
                   "expiry": nullable("time"), "needle_count": {"type": "integer", "minimum": 0, "maximum": 64},
                   "needle_length_mm": nullable("depth_mm"), "first_use": nullable("time"), "run_s": ref("seconds")}),
 "limit": ref("limit_body"),
 "fault": obj({"code": {"enum": ["motor_stall", "depth_sensor", "overheat", "store", "battery", "watchdog"]},
               "severity": {"enum": ["info", "warning", "critical"]}, "detail": U32}),
 "time_change": obj({"source": {"enum": ["gateway", "user", "rtc_loss"]}, "old_pen_s": U32,
                     "new_pen_s": U32, "new_time": nullable("time")}),
}
rec_common = {
  "record_id": ref("record_id"), "msg_id": ref("msg_id"), "serial": ref("serial"),
  "seq": {"type": "integer", "minimum": 1, "maximum": 4294967295}, "store_epoch": U32,
  "session_id": ref("session_id"), "pen_time": nullable("time"),
  "pen_uptime_s": nn(U32), "received_at": ref("time"),
}
clock_rule = [
  {"if": {"properties": {"pen_time": {"type": "null"}}},
   "then": {"properties": {"pen_uptime_s": {"type": "integer"}}},
   "else": {"properties": {"pen_uptime_s": {"type": "null"}}}},
]
rec = payload("record", "NeedleLink record (BASE/pens/SERIAL/records)",
  {"type": {"enum": list(REC_BODIES)}, **rec_common,
   "flags": flags(["clock_set", "authorised"], "record header flags (NL_REC_*)"),
   "data": {"type": "object"}})
rec["allOf"] = clock_rule + [
  {"if": {"properties": {"flags": {"properties": {"clock_set": {"const": True}}}}},
   "then": {"properties": {"pen_time": ref("time")}},
   "else": {"properties": {"pen_time": {"type": "null"}}}}] + [
  {"if": {"properties": {"type": {"const": t}}}, "then": {"properties": {"data": body}}}
  for t, body in REC_BODIES.items()]
write('record.json', rec)

# ---- live ----
write('live.json', payload("live", "Live status sample (BASE/pens/SERIAL/live)", {
  "serial": ref("serial"), "received_at": ref("time"), "sample": U16, "state": ref("pen_state"),
  "flags": flags(["motor_on", "clamped", "dial_over_cap", "cartridge", "charging"], "NL_LIVE_* bits"),
  "zone": ref("zone"), "depth_set_mm": ref("depth_mm"), "depth_measured_mm": nullable("depth_mm"),
  "depth_cap_mm": ref("depth_mm"), "speed_hz": {"type": "integer", "minimum": 0, "maximum": 500},
  "pass": U16, "needle_on_s": ref("seconds"), "session_id": ref("session_id"),
  "battery_pct": {"type": "integer", "minimum": 0, "maximum": 100}}))

# ---- limits ----
write('limits.json', payload("limits", "Active limits (BASE/pens/SERIAL/limits)", {
  "serial": ref("serial"), "updated_at": ref("time"), "source": ref("limit_source"),
  "limits_hash": ref("hash"), "remaining_s": U32, "set": ref("limit_set")}))

# ---- pen state ----
write('pen-state.json', payload("pen-state", "Pen state (BASE/pens/SERIAL/state)", {
  "serial": ref("serial"), "updated_at": ref("time"),
  "model": {"type": ["string", "null"]}, "manufacturer": {"type": ["string", "null"]},
  "firmware": {"type": ["string", "null"]},
  "battery_pct": {"type": ["integer", "null"], "minimum": 0, "maximum": 100},
  "protocol_version": {"type": ["string", "null"], "pattern": "^[0-9]+\\.[0-9]+$"},
  "features": nn(flags(["motorised_depth", "depth_sensing", "variable_speed", "cartridge_reader", "rtc"], "NL_FEAT_* bits")),
  "depth_range": nn(obj({"min_mm": ref("depth_mm"), "max_mm": ref("depth_mm"), "step_mm": ref("depth_mm")})),
  "speed_range": nn(obj({"min_hz": {"type": "integer", "minimum": 0, "maximum": 500},
                         "max_hz": {"type": "integer", "minimum": 1, "maximum": 500}})),
  "live_rate_hz": {"type": ["integer", "null"], "minimum": 1, "maximum": 20},
  "state": nullable("pen_state"), "locked": {"type": ["boolean", "null"]},
  "fault_code": nn(U16),
  "status_flags": nn(flags(["locked", "limit_reached", "cartridge_present", "cartridge_used",
      "cartridge_expired", "clock_not_set", "store_nearly_full", "store_full", "battery_low",
      "fault", "session_active", "factory_limits", "fallback_limits", "cartridge_rejected"], "NL_STATUS_* bits")),
  "pen_time": nullable("time"),
  "store": nn(obj({"used": U16, "capacity": {"type": "integer", "minimum": 1, "maximum": 65535},
                   "fill_pct": {"type": "number", "minimum": 0},
                   "epoch": U32, "last_seq": {"type": ["integer", "null"], "minimum": 1, "maximum": 4294967295}})),
  "cartridge": nn(obj({"state": {"enum": ["none", "new", "in_use", "rejected"]}, "uid": ref("uid"),
      "lot": {"type": ["string", "null"], "pattern": "^[ -~]{1,8}$"}, "expiry": nullable("time"),
      "needle_count": {"type": "integer", "minimum": 0, "maximum": 64},
      "needle_length_mm": nullable("depth_mm"), "first_use": nullable("time"), "run_s": ref("seconds")})),
  "limits": nn(obj({"source": ref("limit_source"), "limits_hash": ref("hash"), "remaining_s": U32,
                    "depth_cap_mm": ref("depth_mm")})),
  "catch_up": nn(obj({"received": U32, "expected": {"type": "integer", "minimum": 1, "maximum": 4294967295}})),
}))

# ---- availability ----
write('availability.json', payload("availability", "Pen availability (BASE/pens/SERIAL/availability)", {
  "serial": ref("serial"), "state": {"enum": ["online", "offline"]},
  "gateway": nullable("gateway_id"), "since": ref("time"),
  "reason": {"type": ["string", "null"], "pattern": "^[a-z0-9_]{1,64}$"}},
  extra={"if": {"properties": {"state": {"const": "online"}}},
         "then": {"properties": {"reason": {"type": "null"}, "gateway": ref("gateway_id")}}}))

# ---- gateway ----
write('gateway-state.json', payload("gateway-state", "Gateway state, retained and last will (BASE/gateways/GW/state)", {
  "gateway": ref("gateway_id"), "state": {"enum": ["online", "offline"]}, "will": {"type": "boolean"},
  "since": ref("time")},
  extra={"if": {"properties": {"will": {"const": True}}}, "then": {"properties": {"state": {"const": "offline"}}}}))
write('gateway-info.json', payload("gateway-info", "Gateway info (BASE/gateways/GW/info)", {
  "gateway": ref("gateway_id"), "version": {"type": "string", "minLength": 1},
  "protocol_version": {"type": "string", "pattern": "^[0-9]+\\.[0-9]+$"},
  "transport": {"enum": ["bluez", "sim"]}, "bluez_version": {"type": ["string", "null"]},
  "adapter": {"type": ["string", "null"]},
  "adapter_address": {"type": ["string", "null"], "pattern": "^[0-9A-F]{2}(:[0-9A-F]{2}){5}$"},
  "config_hash": ref("hash"), "base_topic": {"type": "string", "minLength": 1},
  "started_at": ref("time")}))
write('gateway-health.json', payload("gateway-health", "Gateway health (BASE/gateways/GW/health)", {
  "gateway": ref("gateway_id"), "at": ref("time"), "uptime_s": {"type": "integer", "minimum": 0},
  "memory": obj({"rss_bytes": {"type": "integer", "minimum": 0}}),
  "outbox": obj({"depth": {"type": "integer", "minimum": 0}, "oldest_at": nullable("time")}),
  "pens": {"type": "array", "items": obj({
      "serial": ref("serial"), "connected": {"type": "boolean"}, "connects": U32,
      "errors": obj({k: U32 for k in ["connect", "gatt", "decode", "sequence", "command", "timeout"]}),
      "records": U32, "rssi_dbm": {"type": ["integer", "null"], "minimum": -127, "maximum": 20},
      "last_seen": nullable("time")})}}))

# ---- session ----
sess = payload("session", "Session summary (BASE/pens/SERIAL/sessions)", {
  **rec_common, "authorised": {"type": "boolean"},
  "started_at": nullable("time"), "ended_at": nullable("time"),
  **REC_BODIES["session_end"]["properties"],
  "limits": nn(obj({"limits_hash": ref("hash"), "source": ref("limit_source"), "lifetime_s": U32})),
  "cartridge": nn(obj({"uid": ref("uid"), "lot": {"type": ["string", "null"], "pattern": "^[ -~]{1,8}$"},
                       "needle_count": {"type": ["integer", "null"], "minimum": 0, "maximum": 64},
                       "needle_length_mm": nullable("depth_mm")})),
  "enforcement": obj({
      "counts": obj({k: {"type": "integer", "minimum": 0} for k in common["$defs"]["limit_event"]["enum"]}),
      "events": {"type": "array", "items": {"allOf": [ref("limit_body")],
                                              "required": ["record_id", "pen_time"]}}})})
sess["allOf"] = clock_rule
write('session.json', sess)

# ---- alert ----
alert = payload("alert", "Alert: warning or enforcement action (BASE/pens/SERIAL/alerts)", {
  "alert_id": {"type": "string", "minLength": 1, "maxLength": 128},
  "serial": ref("serial"), "at": ref("time"), "rule": ref("rule"),
  "severity": {"enum": ["info", "warning", "critical"]},
  "action": {"enum": ["warn", "clamp", "lock", "block"]},
  "result": {"enum": ["applied", "pending", "failed"]},
  "zone": ref("zone"), "session_id": ref("session_id"), "record_id": nullable("record_id"),
  "unit": ref("unit"), **measure_props("measured"), "message": ref("text")},
  required=["alert_id", "serial", "at", "rule", "severity", "action", "result", "zone",
            "session_id", "record_id", "unit", "message"])
alert["allOf"] = [ref("measure"),
  {"if": {"properties": {"unit": {"const": "none"}}},
   "then": {"not": {"anyOf": [{"required": ["measured_" + un]} for un in UNITS]}}}]
# exactly the members of the stated unit
for un in UNITS:
    others = [x for x in UNITS if x != un]
    alert["allOf"].append({"if": {"properties": {"unit": {"const": un}}},
        "then": {"not": {"anyOf": [{"required": ["measured_" + x]} for x in others] +
                                  [{"required": ["threshold_" + x]} for x in others]}}})
write('alert.json', alert)

# ---- response ----
block = obj({"rule": ref("rule"), "zone": ref("zone"), "unit": ref("unit"),
             **measure_props("value"), "message": ref("text")},
            required=["rule", "zone", "unit", "message"])
block["allOf"] = [ref("measure")]
for un in UNITS + ["none"]:
    others = [x for x in UNITS if x != un]
    block["allOf"].append({"if": {"properties": {"unit": {"const": un}}},
        "then": {"not": {"anyOf": [{"required": ["value_" + x]} for x in others] +
                                  [{"required": ["threshold_" + x]} for x in others]}}})
resp = payload("response", "Command response (BASE/pens/SERIAL/response/OP or the MQTT 5 response topic)", {
  "serial": ref("serial"), "op": {"type": "string", "minLength": 1},
  "transaction": nullable("id"),
  "status": {"enum": ["ok", "applied", "blocked", "failed", "error"]},
  "at": ref("time"),
  "result": {"type": "object"},
  "error": obj({"code": {"type": "string", "pattern": "^[a-z0-9_]{1,64}$"}, "message": {"type": "string"},
                "field": {"type": ["string", "null"]}, "step": {"type": "string", "pattern": "^[a-z0-9_]{1,64}$"}},
               required=["code", "message", "field"]),
  "blocked_by": {"type": "array", "minItems": 1, "items": block}},
  required=["serial", "op", "transaction", "status", "at"])
resp["allOf"] = [
  {"if": {"properties": {"status": {"enum": ["ok", "applied"]}}},
   "then": {"required": ["result"], "not": {"anyOf": [{"required": ["error"]}, {"required": ["blocked_by"]}]}}},
  {"if": {"properties": {"status": {"const": "blocked"}}},
   "then": {"required": ["blocked_by"], "not": {"anyOf": [{"required": ["error"]}, {"required": ["result"]}]}}},
  {"if": {"properties": {"status": {"const": "failed"}}},
   "then": {"required": ["error"], "properties": {"error": {"required": ["step"]}},
            "not": {"anyOf": [{"required": ["blocked_by"]}, {"required": ["result"]}]}}},
  {"if": {"properties": {"status": {"const": "error"}}},
   "then": {"required": ["error"], "properties": {"error": {"not": {"required": ["step"]}}},
            "not": {"anyOf": [{"required": ["blocked_by"]}, {"required": ["result"]}]}}},
  {"if": {"properties": {"op": {"const": "authorise"}, "status": {"const": "applied"}}, "required": ["op", "status"]},
   "then": {"properties": {"result": obj({"limits_hash": ref("hash"), "limits": ref("limit_set"),
            "session_id": {"type": "integer", "minimum": 1, "maximum": 4294967295}})}}},
  {"if": {"properties": {"op": {"enum": ["set_time", "lock", "unlock", "set_zone", "stop_session", "read_state", "pair", "release"]}},
          "required": ["op"]},
   "then": {"properties": {"status": {"enum": ["ok", "failed", "error"]}}}},
] + [
  {"if": {"properties": {"op": {"const": op}, "status": {"const": "ok"}}, "required": ["op", "status"]},
   "then": {"properties": {"result": shape}}}
  for op, shape in [
    ("set_time", obj({"previous_pen_s": U32, "pen_time": ref("time")})),
    ("lock", obj({"locked": {"type": "boolean"}})),
    ("unlock", obj({"locked": {"type": "boolean"}})),
    ("set_zone", obj({"zone": ref("treatment_zone")})),
    ("stop_session", obj({"session_id": {"type": "integer", "minimum": 1, "maximum": 4294967295}})),
    ("read_state", obj({"state": {"$ref": "pen-state.json"}})),
    ("pair", obj({"answered": {"enum": ["passkey", "confirm"]}})),
    ("release", obj({"released": {"type": "boolean"}})),
  ]
]
write('response.json', resp)

# ---- requests ----
def request(op, params, required, title):
    p = obj(params, required=required)
    s = payload("request", title, {"transaction": ref("id"), "params": p})
    return s
write('request.json', {**payload("request", "Command request envelope (BASE/pens/SERIAL/request/OP)", {
    "transaction": ref("id"), "params": {"type": "object"}})})
reason = {"enum": ["policy", "passes", "needle_on", "cartridge", "operator", "fault"]}
write('request-set_time.json', request("set_time", {"time": {"type": "string",
    "pattern": "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\\.[0-9]{3})?Z$"}}, [], "set_time request"))
write('request-lock.json', request("lock", {"reason": reason}, [], "lock request"))
write('request-unlock.json', request("unlock", {"operator": ref("operator"), "reason": reason, "reason_text": ref("text")}, ["operator"], "unlock request"))
write('request-set_zone.json', request("set_zone", {"zone": ref("treatment_zone")}, ["zone"], "set_zone request"))
write('request-stop_session.json', request("stop_session", {"session_id": {"type": "integer", "minimum": 1, "maximum": 4294967295}}, [], "stop_session request"))
write('request-read_state.json', request("read_state", {}, [], "read_state request"))
write('request-release.json', request("release", {}, [], "release request"))
pair = request("pair", {"passkey": {"type": "integer", "minimum": 0, "maximum": 999999},
                        "confirm": {"type": "boolean"}}, [], "pair request")
pair["properties"]["params"]["oneOf"] = [{"required": ["passkey"]}, {"required": ["confirm"]}]
write('request-pair.json', pair)
write('request-authorise.json', request("authorise", {
  "patient": ref("id"), "operator": ref("operator"),
  "skin_type": {"enum": ["I", "II", "III", "IV", "V", "VI"]},
  "contraindications": {"type": "array", "uniqueItems": True, "items": ref("contraindication")},
  "zones": {"type": "array", "minItems": 1, "maxItems": 16, "uniqueItems": True, "items": ref("treatment_zone")},
  "protocol": obj({"scar": {"type": "boolean"}, "body": {"type": "boolean"}}),
  "override": obj({"physician_id": ref("id"), "reason": ref("text")})},
  ["patient", "operator", "skin_type", "contraindications", "zones", "protocol"], "authorise request"))
if CHECK:
    extra = sorted(n for n in os.listdir(OUT) if n.endswith(".json") and n not in written)
    if mismatch or extra:
        sys.exit("docs/schemas out of date with gen_schemas.py: differ %s, unknown %s "
                 "(run tests/gateway-payload/gen_schemas.py docs/schemas)" % (mismatch, extra))
    print("schemas up to date: %d files" % len(written))
