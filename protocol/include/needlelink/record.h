/* SPDX-License-Identifier: MIT */
/*
 * Stored treatment records, sent on the Treatment Record characteristic
 * (segmented, see seg.h).
 *
 * A record is: an 18-byte header, a body whose layout depends on the type,
 * and a 2-byte E2E-CRC over header and body. Little endian throughout.
 *
 * Header:
 *  0 u8  type (enum nl_record_type)
 *  1 u8  flags (NL_REC_*)
 *  2 u32 seq          1.., never reused by a pen, kept across power loss
 *  6 u32 store_epoch
 * 10 u32 session_id   0: outside any session
 * 14 u32 pen_time     seconds, by the pen's clock (see NL_REC_CLOCK_SET)
 *
 * Bodies (offsets from the end of the header):
 *
 * SESSION_START (body 18):
 *  0 u32 limits_hash  hash of the limit set in force at start
 *  4 u8  limit_source (enum nl_limit_source)
 *  5 u32 lifetime_s   authorisation lifetime, 0 for an unauthorised session
 *  9 u8[8] cartridge_uid
 * 17 u8  zone         zone selected at start (may be NL_ZONE_NONE)
 *
 * SESSION_END (body 14 + 15 * zone_count):
 *  0 u8  reason (enum nl_session_end_reason)
 *  1 u32 duration_ms  from SESSION_START to SESSION_END
 *  5 u32 needle_on_ms total
 *  9 u32 strokes      total
 * 13 u8  zone_count   0..NL_SESSION_ZONES_MAX, zones strictly ascending
 * 14 zone_count x { u8 zone, u16 passes, u16 depth_max_um,
 *                   u16 depth_mean_um, u32 needle_on_ms, u32 strokes }
 *
 * SEGMENT, one continuous motor run (body 30):
 *  0 u8  zone
 *  1 u16 pass
 *  3 u16 depth_set_um
 *  5 u16 depth_cap_um
 *  7 u16 depth_measured_um  (NL_DEPTH_UNKNOWN without depth sensing)
 *  9 u16 speed_hz
 * 11 u32 run_ms
 * 15 u32 strokes
 * 19 u8[8] cartridge_uid
 * 27 u16 status (NL_SEG_*)
 * 29 u8  end_reason (enum nl_segment_end)
 *
 * CARTRIDGE (body 33):
 *  0 u8  event (enum nl_cartridge_event)
 *  1 u8  reject_reason (enum nl_cartridge_reject), 0 unless REJECTED
 *  2 u8[8] uid
 * 10 char[8] lot
 * 18 u32 expiry
 * 22 u8  needle_count
 * 23 u16 needle_length_um
 * 25 u32 first_use
 * 29 u32 run_ms
 *
 * LIMIT (body 16):
 *  0 u8  event (enum nl_limit_event)
 *  1 u8  origin (enum nl_limit_origin)
 *  2 u8  zone         NL_ZONE_NONE when it applies to all zones
 *  3 u32 limits_hash  the limit set in force after the event
 *  7 u16 value        measured value that triggered it (unit per event)
 *  9 u16 threshold    threshold or new cap (unit per event)
 * 11 u8  reason       enum nl_lock_reason on LOCK, UNLOCK, OVERRIDE; else 0
 * 12 u32 remaining_s  authorisation lifetime left
 *
 * FAULT (body 8):
 *  0 u16 code (enum nl_fault_code)
 *  2 u8  severity (enum nl_fault_severity)
 *  3 u8  reserved (0)
 *  4 u32 detail
 *
 * TIME_CHANGE (body 9):
 *  0 u32 old_time
 *  4 u32 new_time
 *  8 u8  source (enum nl_time_source)
 */
#ifndef NEEDLELINK_RECORD_H
#define NEEDLELINK_RECORD_H

#include "needlelink/common.h"
#include "needlelink/pdu.h"
#include "needlelink/zone.h"

#define NL_RECORD_HDR_LEN 18
#define NL_SESSION_ZONES_MAX 16

enum nl_record_type {
	NL_RECORD_SESSION_START = 1,
	NL_RECORD_SESSION_END = 2,
	NL_RECORD_SEGMENT = 3,
	NL_RECORD_CARTRIDGE = 4,
	NL_RECORD_LIMIT = 5,
	NL_RECORD_FAULT = 6,
	NL_RECORD_TIME_CHANGE = 7,
	NL_RECORD_TYPE_END
};

enum nl_record_flag {
	NL_REC_CLOCK_SET = 1u << 0,    /* pen_time is real time; clear: since power-on */
	NL_REC_AUTHORISED = 1u << 1,   /* written inside a gateway-authorised session */
};
#define NL_REC_ALL 0x03u

enum nl_session_end_reason {
	NL_SESSION_END_STOPPED = 1,   /* operator or gateway STOP_SESSION */
	NL_SESSION_END_LIFETIME = 2,  /* authorisation expired */
	NL_SESSION_END_LOCKED = 3,
	NL_SESSION_END_BATTERY = 4,
	NL_SESSION_END_POWER_LOSS = 5,/* closed at next power-on */
	NL_SESSION_END_FAULT = 6,
	NL_SESSION_END_REASON_END
};

enum nl_segment_status {
	NL_SEG_CLAMPED = 1u << 0,          /* depth lowered to the cap */
	NL_SEG_STOPPED_BY_LIMIT = 1u << 1, /* motor stopped by a limit */
	NL_SEG_DIAL_OVER_CAP = 1u << 2,    /* dial pen held the motor */
	NL_SEG_PASS_WARN = 1u << 3,
	NL_SEG_NEEDLE_ON_WARN = 1u << 4,
	NL_SEG_BATTERY_LOW = 1u << 5,
	NL_SEG_FALLBACK_LIMITS = 1u << 6,
};
#define NL_SEG_ALL 0x7Fu

enum nl_segment_end {
	NL_SEGMENT_END_OPERATOR = 1, /* pass ended by the operator */
	NL_SEGMENT_END_LIMIT = 2,
	NL_SEGMENT_END_LOCK = 3,
	NL_SEGMENT_END_BATTERY = 4,
	NL_SEGMENT_END_CARTRIDGE = 5,
	NL_SEGMENT_END_SESSION = 6,  /* session stopped */
	NL_SEGMENT_END_FAULT = 7,
	NL_SEGMENT_END_END
};

enum nl_cartridge_event {
	NL_CARTRIDGE_INSERTED = 1,
	NL_CARTRIDGE_REMOVED = 2,
	NL_CARTRIDGE_EVENT_REJECTED = 3,
	NL_CARTRIDGE_EVENT_END
};

enum nl_cartridge_reject {
	NL_REJECT_NONE = 0,
	NL_REJECT_REUSED = 1,
	NL_REJECT_EXPIRED = 2,
	NL_REJECT_UNREADABLE = 3,
	NL_REJECT_NEEDLE_TOO_SHORT = 4,
	NL_REJECT_END
};

enum nl_limit_event {
	NL_LIMIT_EVENT_APPLIED = 1,   /* a limit set became active */
	NL_LIMIT_EVENT_CLAMP = 2,     /* depth lowered; value/threshold in um */
	NL_LIMIT_EVENT_LOCK = 3,
	NL_LIMIT_EVENT_UNLOCK = 4,
	NL_LIMIT_EVENT_OVERRIDE = 5,  /* physician override applied */
	NL_LIMIT_EVENT_FALLBACK = 6,  /* lifetime ended: factory capped at 1.0 mm */
	NL_LIMIT_EVENT_PASS_WARN = 7, /* value/threshold: passes */
	NL_LIMIT_EVENT_TIME_WARN = 8, /* value/threshold: needle-on seconds */
	NL_LIMIT_EVENT_END
};

enum nl_limit_origin {
	NL_LIMIT_ORIGIN_FIRMWARE = 1, /* the pen acted on its own limits */
	NL_LIMIT_ORIGIN_GATEWAY = 2,  /* the pen applied a gateway command */
	NL_LIMIT_ORIGIN_END
};

enum nl_lock_reason {
	NL_LOCK_REASON_NONE = 0,
	NL_LOCK_REASON_POLICY = 1,    /* gateway enforcement */
	NL_LOCK_REASON_PASSES = 2,
	NL_LOCK_REASON_NEEDLE_ON = 3,
	NL_LOCK_REASON_CARTRIDGE = 4,
	NL_LOCK_REASON_OPERATOR = 5,  /* manual lock / authorised unlock */
	NL_LOCK_REASON_FAULT = 6,
	NL_LOCK_REASON_END
};

enum nl_fault_code {
	NL_FAULT_MOTOR_STALL = 1,
	NL_FAULT_DEPTH_SENSOR = 2,
	NL_FAULT_OVERHEAT = 3,
	NL_FAULT_STORE = 4,
	NL_FAULT_BATTERY = 5,
	NL_FAULT_WATCHDOG = 6,
	NL_FAULT_CODE_END
};

enum nl_fault_severity {
	NL_FAULT_INFO = 1,
	NL_FAULT_WARNING = 2,
	NL_FAULT_CRITICAL = 3, /* pen enters the fault state */
	NL_FAULT_SEVERITY_END
};

enum nl_time_source {
	NL_TIME_SOURCE_GATEWAY = 1,
	NL_TIME_SOURCE_USER = 2,
	NL_TIME_SOURCE_RTC_LOSS = 3, /* clock lost, reset to power-on time */
	NL_TIME_SOURCE_END
};

struct nl_record_header {
	uint8_t type;
	uint8_t flags;
	uint32_t seq;
	uint32_t store_epoch;
	uint32_t session_id;
	uint32_t pen_time;
};

struct nl_rec_session_start {
	uint32_t limits_hash;
	uint8_t limit_source;
	uint32_t lifetime_s;
	uint8_t cartridge_uid[NL_CARTRIDGE_UID_LEN];
	uint8_t zone;
};

struct nl_rec_zone_total {
	uint8_t zone;
	uint16_t passes;
	uint16_t depth_max_um;
	uint16_t depth_mean_um;
	uint32_t needle_on_ms;
	uint32_t strokes;
};

struct nl_rec_session_end {
	uint8_t reason;
	uint32_t duration_ms;
	uint32_t needle_on_ms;
	uint32_t strokes;
	uint8_t zone_count;
	struct nl_rec_zone_total zones[NL_SESSION_ZONES_MAX];
};

struct nl_rec_segment {
	uint8_t zone;
	uint16_t pass;
	uint16_t depth_set_um;
	uint16_t depth_cap_um;
	uint16_t depth_measured_um;
	uint16_t speed_hz;
	uint32_t run_ms;
	uint32_t strokes;
	uint8_t cartridge_uid[NL_CARTRIDGE_UID_LEN];
	uint16_t status;
	uint8_t end_reason;
};

struct nl_rec_cartridge {
	uint8_t event;
	uint8_t reject_reason;
	uint8_t uid[NL_CARTRIDGE_UID_LEN];
	char lot[NL_LOT_LEN + 1];
	uint32_t expiry;
	uint8_t needle_count;
	uint16_t needle_length_um;
	uint32_t first_use;
	uint32_t run_ms;
};

struct nl_rec_limit {
	uint8_t event;
	uint8_t origin;
	uint8_t zone;
	uint32_t limits_hash;
	uint16_t value;
	uint16_t threshold;
	uint8_t reason;
	uint32_t remaining_s;
};

struct nl_rec_fault {
	uint16_t code;
	uint8_t severity;
	uint32_t detail;
};

struct nl_rec_time_change {
	uint32_t old_time;
	uint32_t new_time;
	uint8_t source;
};

struct nl_record {
	struct nl_record_header hdr;
	union {
		struct nl_rec_session_start session_start;
		struct nl_rec_session_end session_end;
		struct nl_rec_segment segment;
		struct nl_rec_cartridge cartridge;
		struct nl_rec_limit limit;
		struct nl_rec_fault fault;
		struct nl_rec_time_change time_change;
	} u;
};

/* Encodes header + body + CRC. Returns bytes written, -ENOBUFS, -ERANGE,
 * or -ENOMSG for an unknown type. */
int nl_record_encode(const struct nl_record *r, uint8_t *buf, size_t size);
/* Decodes exactly one whole record of len bytes (reassembled). Longer
 * bodies than the v1 layout are accepted and the extra bytes ignored. */
int nl_record_decode(const uint8_t *buf, size_t len, struct nl_record *ret);
/* Reads the header only (after checking the CRC over len bytes). */
int nl_record_peek_header(const uint8_t *buf, size_t len, struct nl_record_header *ret);

const char *nl_record_type_name(unsigned type);   /* "session_start", ... */
const char *nl_session_end_reason_name(unsigned v);
const char *nl_segment_end_name(unsigned v);
const char *nl_cartridge_event_name(unsigned v);
const char *nl_cartridge_reject_name(unsigned v);
const char *nl_limit_event_name(unsigned v);
const char *nl_limit_origin_name(unsigned v);
const char *nl_lock_reason_name(unsigned v);
const char *nl_fault_code_name(unsigned v);
const char *nl_time_source_name(unsigned v);

#endif
