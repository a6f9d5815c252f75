/* SPDX-License-Identifier: MIT */
/*
 * Characteristic values of the NeedleLink Pen Service (except records and
 * control points, see record.h, cp.h, racp.h).
 *
 * Every value is little endian and ends with a 2-byte E2E-CRC (crc.h) over
 * all bytes before it. Byte layouts below list offsets before the CRC.
 * A decoder accepts a value longer than its v1 layout (a newer minor version
 * may append fields): the CRC is always the last two bytes and bytes between
 * the v1 layout and the CRC are ignored. Encoders write the v1 layout only.
 *
 * encode: returns the number of bytes written, -ENOBUFS when size is too
 *         small, -ERANGE when the struct holds a value outside its range.
 * decode: returns 0, or a negative errno from common.h.
 */
#ifndef NEEDLELINK_PDU_H
#define NEEDLELINK_PDU_H

#include "needlelink/common.h"
#include "needlelink/zone.h"

/* ---- Feature (read) ----------------------------------------------------
 *  0 u8  proto_major
 *  1 u8  proto_minor
 *  2 u16 flags (NL_FEAT_*)
 *  4 u16 depth_min_um        <= depth_max_um
 *  6 u16 depth_max_um        1..NL_DEPTH_MAX_UM: the factory maximum
 *  8 u16 depth_step_um       1..depth_max_um (dial pens: dial resolution)
 * 10 u16 speed_min_hz        <= speed_max_hz
 * 12 u16 speed_max_hz        1..NL_SPEED_MAX_HZ
 * 14 u16 store_capacity      records, >= 1
 * 16 u32 store_epoch         changes only when the store is wiped
 * 20 u8  live_rate_hz        NL_LIVE_RATE_MIN_HZ..NL_LIVE_RATE_MAX_HZ
 * 21 (+ CRC = 23 bytes)
 */
enum nl_feature_flag {
	NL_FEAT_MOTORISED_DEPTH = 1u << 0, /* clear: mechanical dial */
	NL_FEAT_DEPTH_SENSING = 1u << 1,   /* measured depth is reported */
	NL_FEAT_VARIABLE_SPEED = 1u << 2,
	NL_FEAT_CARTRIDGE_READER = 1u << 3,
	NL_FEAT_RTC = 1u << 4,             /* battery-backed clock */
};
#define NL_FEAT_ALL 0x001Fu

struct nl_feature {
	uint8_t proto_major;
	uint8_t proto_minor;
	uint16_t flags;
	uint16_t depth_min_um;
	uint16_t depth_max_um;
	uint16_t depth_step_um;
	uint16_t speed_min_hz;
	uint16_t speed_max_hz;
	uint16_t store_capacity;
	uint32_t store_epoch;
	uint8_t live_rate_hz;
};
#define NL_FEATURE_LEN 23 /* 21 + CRC */

int nl_feature_encode(const struct nl_feature *f, uint8_t *buf, size_t size);
int nl_feature_decode(const uint8_t *buf, size_t len, struct nl_feature *ret);

/* ---- Live Status (notify, live_rate_hz) --------------------------------
 *  0 u8  state (enum nl_pen_state)
 *  1 u8  flags (NL_LIVE_*)
 *  2 u8  zone
 *  3 u16 depth_set_um        <= NL_DEPTH_MAX_UM
 *  5 u16 depth_measured_um   <= NL_DEPTH_MAX_UM or NL_DEPTH_UNKNOWN
 *  7 u16 depth_cap_um        <= NL_DEPTH_MAX_UM, the cap in force
 *  9 u16 speed_hz            <= NL_SPEED_MAX_HZ
 * 11 u16 pass                pass number in the current zone (0: none yet)
 * 13 u32 needle_on_ms        needle-on time in the current session
 * 17 u32 session_id          0: no session
 * 21 u8  battery_pct         <= 100
 * 22 u16 sample              rolling sample counter
 * 24 (+ CRC = 26 bytes)
 */
enum nl_live_flag {
	NL_LIVE_MOTOR_ON = 1u << 0,
	NL_LIVE_CLAMPED = 1u << 1,     /* depth_set was lowered to the cap */
	NL_LIVE_DIAL_OVER_CAP = 1u << 2, /* dial pen: motor held off */
	NL_LIVE_CARTRIDGE = 1u << 3,   /* a usable cartridge is attached */
	NL_LIVE_CHARGING = 1u << 4,
};
#define NL_LIVE_ALL 0x1Fu

struct nl_live {
	uint8_t state;
	uint8_t flags;
	uint8_t zone;
	uint16_t depth_set_um;
	uint16_t depth_measured_um;
	uint16_t depth_cap_um;
	uint16_t speed_hz;
	uint16_t pass;
	uint32_t needle_on_ms;
	uint32_t session_id;
	uint8_t battery_pct;
	uint16_t sample;
};
#define NL_LIVE_LEN 26

int nl_live_encode(const struct nl_live *l, uint8_t *buf, size_t size);
int nl_live_decode(const uint8_t *buf, size_t len, struct nl_live *ret);

/* ---- Pen Status (read + indicate) --------------------------------------
 *  0 u32 flags (NL_STATUS_*)
 *  4 u8  state (enum nl_pen_state)
 *  5 u16 fault_code          0: none
 *  7 u16 store_used          records not yet acknowledged, <= store_capacity
 *  9 u16 store_capacity      >= 1
 * 11 u32 store_epoch
 * 15 u32 last_seq            sequence number of the newest record, 0: none
 * 19 u32 pen_time
 * 23 u8  battery_pct
 * 24 (+ CRC = 26 bytes)
 */
enum nl_status_flag {
	NL_STATUS_LOCKED = 1u << 0,
	NL_STATUS_LIMIT_REACHED = 1u << 1,
	NL_STATUS_CARTRIDGE_PRESENT = 1u << 2,
	NL_STATUS_CARTRIDGE_USED = 1u << 3,    /* attached cartridge was used before */
	NL_STATUS_CARTRIDGE_EXPIRED = 1u << 4,
	NL_STATUS_CLOCK_NOT_SET = 1u << 5,
	NL_STATUS_STORE_NEARLY_FULL = 1u << 6, /* >= 90 % */
	NL_STATUS_STORE_FULL = 1u << 7,
	NL_STATUS_BATTERY_LOW = 1u << 8,       /* <= 15 % */
	NL_STATUS_FAULT = 1u << 9,
	NL_STATUS_SESSION_ACTIVE = 1u << 10,
	NL_STATUS_FACTORY_LIMITS = 1u << 11,   /* no session limits in force */
	NL_STATUS_FALLBACK_LIMITS = 1u << 12,  /* lifetime ended: factory capped at 1.0 mm */
	NL_STATUS_CARTRIDGE_REJECTED = 1u << 13,
};
#define NL_STATUS_ALL 0x3FFFu

struct nl_pen_status {
	uint32_t flags;
	uint8_t state;
	uint16_t fault_code;
	uint16_t store_used;
	uint16_t store_capacity;
	uint32_t store_epoch;
	uint32_t last_seq;
	uint32_t pen_time;
	uint8_t battery_pct;
};
#define NL_PEN_STATUS_LEN 26

int nl_pen_status_encode(const struct nl_pen_status *s, uint8_t *buf, size_t size);
int nl_pen_status_decode(const uint8_t *buf, size_t len, struct nl_pen_status *ret);

/* ---- Cartridge Info (read + indicate) ----------------------------------
 *  0 u8  state (enum nl_cartridge_state)
 *  1 u8[8] uid               all zero when state is NONE
 *  9 char[8] lot             printable ASCII, NUL padded
 * 17 u32 expiry              pen time
 * 21 u8  needle_count        1..64 (0 when NONE)
 * 22 u16 needle_length_um    <= NL_DEPTH_MAX_UM
 * 24 u32 first_use           pen time, 0: never used
 * 28 u32 run_ms              needle-on time accumulated on this cartridge
 * 32 (+ CRC = 34 bytes)
 */
enum nl_cartridge_state {
	NL_CARTRIDGE_NONE = 0,
	NL_CARTRIDGE_NEW = 1,
	NL_CARTRIDGE_IN_USE = 2,   /* used in the current session only */
	NL_CARTRIDGE_REJECTED = 3, /* reused, expired or unreadable: motor disabled */
	NL_CARTRIDGE_STATE_COUNT
};

struct nl_cartridge_info {
	uint8_t state;
	uint8_t uid[NL_CARTRIDGE_UID_LEN];
	char lot[NL_LOT_LEN + 1]; /* NUL terminated */
	uint32_t expiry;
	uint8_t needle_count;
	uint16_t needle_length_um;
	uint32_t first_use;
	uint32_t run_ms;
};
#define NL_CARTRIDGE_INFO_LEN 34

int nl_cartridge_info_encode(const struct nl_cartridge_info *c, uint8_t *buf, size_t size);
int nl_cartridge_info_decode(const uint8_t *buf, size_t len, struct nl_cartridge_info *ret);

/* ---- Limit set (written in Pen CP SET_LIMITS, read in Active Limits) ---
 *  0 u8  format              1
 *  1 u8  flags               0 in v1 (reserved)
 *  2 u32 lifetime_s          1..NL_LIFETIME_MAX_S
 *  6 u16 depth_cap_um        1..NL_DEPTH_MAX_UM, for zones not listed
 *  8 u16 needle_on_warn_s    0: none; <= needle_on_lock_s when both set
 * 10 u16 needle_on_lock_s    0: none
 * 12 u8  pass_warn           default per zone, 0: none
 * 13 u8  pass_lock           default per zone, 0: none; >= pass_warn when both set
 * 14 u8  zone_count          0..NL_LIMIT_ZONES_MAX
 * 15 zone_count x { u8 zone (1..NL_ZONE_COUNT-1), u16 depth_cap_um,
 *                   u8 pass_warn, u8 pass_lock }   5 bytes each
 * Canonical: zones strictly ascending (a duplicate or unsorted zone is
 * -ERANGE). No CRC of its own: it is carried inside a PDU that has one.
 * Hash: nl_fnv1a32 over exactly these bytes.
 */
#define NL_LIMIT_ZONES_MAX 16
#define NL_LIMIT_SET_HDR_LEN 15
#define NL_LIMIT_SET_MAX (NL_LIMIT_SET_HDR_LEN + 5 * NL_LIMIT_ZONES_MAX)

struct nl_zone_limit {
	uint8_t zone;
	uint16_t depth_cap_um;
	uint8_t pass_warn;
	uint8_t pass_lock;
};

struct nl_limit_set {
	uint8_t format;
	uint8_t flags;
	uint32_t lifetime_s;
	uint16_t depth_cap_um;
	uint16_t needle_on_warn_s;
	uint16_t needle_on_lock_s;
	uint8_t pass_warn;
	uint8_t pass_lock;
	uint8_t zone_count;
	struct nl_zone_limit zones[NL_LIMIT_ZONES_MAX];
};

int nl_limit_set_encode(const struct nl_limit_set *l, uint8_t *buf, size_t size);
/* Decodes exactly len bytes (no CRC); trailing bytes are -ERANGE. */
int nl_limit_set_decode(const uint8_t *buf, size_t len, struct nl_limit_set *ret);
/* Hash of the canonical encoding; -ERANGE if the set is not valid. */
int nl_limit_set_hash(const struct nl_limit_set *l, uint32_t *ret_hash);
/* Cap for a zone: the zone's own entry, else depth_cap_um. */
uint16_t nl_limit_set_zone_cap(const struct nl_limit_set *l, unsigned zone);
/* The zone's entry, or NULL when the zone uses the defaults. */
const struct nl_zone_limit *nl_limit_set_find(const struct nl_limit_set *l, unsigned zone);

/* ---- Active Limits (read + indicate) -----------------------------------
 *  0 u8  source (enum nl_limit_source)
 *  1 u32 limits_hash         nl_fnv1a32 of the limit set that follows
 *  5 u32 remaining_s         lifetime left; 0 for factory and fallback
 *  9 limit set (NL_LIMIT_SET_HDR_LEN + 5 * zone_count bytes)
 *  .. CRC
 * A decoder checks that limits_hash matches the set (-EBADMSG otherwise).
 */
enum nl_limit_source {
	NL_LIMIT_SOURCE_FACTORY = 0,
	NL_LIMIT_SOURCE_SESSION = 1,  /* written by the gateway */
	NL_LIMIT_SOURCE_FALLBACK = 2, /* lifetime ended */
	NL_LIMIT_SOURCE_COUNT
};

struct nl_active_limits {
	uint8_t source;
	uint32_t limits_hash;
	uint32_t remaining_s;
	struct nl_limit_set set;
};

int nl_active_limits_encode(const struct nl_active_limits *a, uint8_t *buf, size_t size);
int nl_active_limits_decode(const uint8_t *buf, size_t len, struct nl_active_limits *ret);

/* ---- Shared helpers ---------------------------------------------------- */

/* Verifies the trailing CRC of a value: 0, -ENODATA (< 3 bytes), -EBADMSG. */
int nl_pdu_check_crc(const uint8_t *buf, size_t len);
/* Appends the CRC over buf[0..len) at buf[len]; returns len + 2 or -ENOBUFS. */
int nl_pdu_put_crc(uint8_t *buf, size_t len, size_t size);

#endif
