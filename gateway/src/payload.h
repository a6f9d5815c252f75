/* SPDX-License-Identifier: MIT */
/*
 * MQTT payloads of needlelinkd: decoded protocol structs in, JSON out, and
 * the strict parser for commands coming in on .../request/OP.
 *
 * The JSON shapes are the public API described in docs/mqtt-api.md and
 * pinned by the JSON Schemas in docs/schemas/; change them only as that document's
 * versioning policy allows.
 *
 * Conventions for every builder here:
 *  - returns 0 and stores a new cJSON object in *ret, or a negative errno
 *    (-EINVAL for a missing argument or a bad serial/gateway id, -ERANGE for
 *    a struct holding a value outside its protocol range, -ENOMEM). *ret is
 *    written only on success.
 *  - the caller owns the returned object: cJSON_Delete() it, or print it
 *    with nl_payload_print() first.
 *  - input structs and strings are only read, never kept: every string is
 *    copied into the JSON tree.
 *  - times are Unix milliseconds (int64_t, UTC) and come out as ISO 8601
 *    with milliseconds: "2026-11-24T10:00:00.000Z".
 *
 * Nothing here does I/O, logs or keeps state. cJSON's allocator hooks are
 * process-wide, so call these from the loop thread like everything else.
 */
#ifndef NEEDLELINK_GATEWAY_PAYLOAD_H
#define NEEDLELINK_GATEWAY_PAYLOAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "needlelink/common.h"
#include "needlelink/pdu.h"
#include "needlelink/record.h"
#include "needlelink/zone.h"

/* Schema identifiers carried in the "schema" member of each payload. */
#define NL_PAYLOAD_SCHEMA_GATEWAY_STATE "needlelink/gateway-state/1"
#define NL_PAYLOAD_SCHEMA_GATEWAY_INFO "needlelink/gateway-info/1"
#define NL_PAYLOAD_SCHEMA_GATEWAY_HEALTH "needlelink/gateway-health/1"
#define NL_PAYLOAD_SCHEMA_AVAILABILITY "needlelink/availability/1"
#define NL_PAYLOAD_SCHEMA_PEN_STATE "needlelink/pen-state/1"
#define NL_PAYLOAD_SCHEMA_LIVE "needlelink/live/1"
#define NL_PAYLOAD_SCHEMA_RECORD "needlelink/record/1"
#define NL_PAYLOAD_SCHEMA_SESSION "needlelink/session/1"
#define NL_PAYLOAD_SCHEMA_ALERT "needlelink/alert/1"
#define NL_PAYLOAD_SCHEMA_LIMITS "needlelink/limits/1"
#define NL_PAYLOAD_SCHEMA_REQUEST "needlelink/request/1"
#define NL_PAYLOAD_SCHEMA_RESPONSE "needlelink/response/1"

/* "2026-11-24T10:00:00.000Z" plus NUL. */
#define NL_PAYLOAD_TIME_LEN 25
/* Largest msg_id that a JSON number carries exactly (2^53 - 1). */
#define NL_PAYLOAD_MSG_ID_MAX 9007199254740991ULL
/* Identifiers: gateway id, operator ids, transaction ids. */
#define NL_PAYLOAD_ID_MAX 64
#define NL_PAYLOAD_TEXT_MAX 256

/* Writes unix_ms as ISO 8601 UTC with milliseconds. Returns the length
 * (24), -ERANGE outside years 1970..9999, -ENOBUFS if size < 25. */
int nl_payload_format_time(int64_t unix_ms, char *buf, size_t size);
/* Unix ms of a pen time (seconds since 2000-01-01T00:00:00Z). */
int64_t nl_payload_pen_time_ms(uint32_t pen_time);

/* Prints a payload compactly. Returns a malloc'd NUL-terminated string the
 * caller frees with free() (cJSON's default allocator: nothing here calls
 * cJSON_InitHooks), or NULL on allocation failure. The tree is not
 * consumed. */
char *nl_payload_print(const cJSON *payload);

/* ---- records: BASE/pens/SERIAL/records ---------------------------------- */

struct nl_payload_record_ctx {
	const char *serial;   /* pen serial, 1..NL_SERIAL_MAX chars */
	uint64_t msg_id;      /* outbox id, <= NL_PAYLOAD_MSG_ID_MAX */
	int64_t received_ms;  /* gateway clock when the record arrived */
};

/* Any record type, every field. -ERANGE for an enum value the protocol
 * library has no name for (the decoder never produces one). */
int nl_payload_record(const struct nl_payload_record_ctx *ctx, const struct nl_record *rec,
		      cJSON **ret);

/* "SERIAL:EPOCH:SEQ" into buf; returns the length, -ENOBUFS, -EINVAL. */
int nl_payload_record_id(const char *serial, uint32_t store_epoch, uint32_t seq, char *buf,
			 size_t size);

/* ---- live: BASE/pens/SERIAL/live ---------------------------------------- */

int nl_payload_live(const char *serial, int64_t received_ms, const struct nl_live *live,
		    cJSON **ret);

/* ---- pen state: BASE/pens/SERIAL/state ---------------------------------- */

/* Every pointer may be NULL when the gateway has not read that value yet;
 * the matching JSON members are then null. */
struct nl_payload_pen_state_in {
	const char *serial;
	int64_t updated_ms;
	/* DIS strings are untrusted: anything but printable ASCII comes out
	 * as '?', and at most 64 characters. */
	const char *model;        /* DIS Model Number */
	const char *manufacturer; /* DIS Manufacturer Name */
	const char *firmware;     /* DIS Firmware Revision */
	int battery_pct;          /* Battery Service level, -1 unknown: then
				   * Pen Status battery_pct is used */
	const struct nl_feature *feature;
	const struct nl_pen_status *status;
	const struct nl_cartridge_info *cartridge;
	const struct nl_active_limits *limits;
	/* A long catch-up in progress: records received so far and expected;
	 * catchup_expected 0: none (the member is null). */
	uint32_t catchup_received, catchup_expected;
};

int nl_payload_pen_state(const struct nl_payload_pen_state_in *in, cJSON **ret);

/* ---- limits: BASE/pens/SERIAL/limits ------------------------------------ */

int nl_payload_limits(const char *serial, int64_t updated_ms, const struct nl_active_limits *a,
		      cJSON **ret);
/* The limit set alone ({"format", "lifetime_s", ...}), as embedded in the
 * limits payload and in an "applied" authorise response. */
int nl_payload_limit_set(const struct nl_limit_set *set, cJSON **ret);

/* ---- availability: BASE/pens/SERIAL/availability ------------------------ */

struct nl_payload_availability {
	const char *serial;
	bool online;
	const char *gateway_id; /* gateway that has (or last had) the pen; NULL */
	int64_t since_ms;       /* when the pen went online / offline */
	const char *reason;     /* offline only, [a-z0-9_]{1,64}: "disconnected",
				 * "gateway_offline", "not_found", "removed"; NULL
				 * otherwise. Ignored when online. */
};

/* -EINVAL when online without a gateway id, or for a malformed id or reason. */

int nl_payload_availability(const struct nl_payload_availability *a, cJSON **ret);

/* ---- gateway: BASE/gateways/GW/{state,info,health} ---------------------- */

struct nl_payload_gateway_state {
	const char *gateway_id;
	bool online;
	bool will;        /* true: this payload is the MQTT last will */
	int64_t since_ms; /* online: connect time; will: connect time of the
			   * connection the will belongs to; clean offline: now */
};

int nl_payload_gateway_state(const struct nl_payload_gateway_state *s, cJSON **ret);

enum nl_payload_transport {
	NL_PAYLOAD_TRANSPORT_BLUEZ = 0,
	NL_PAYLOAD_TRANSPORT_SIM = 1,
	NL_PAYLOAD_TRANSPORT_COUNT
};

struct nl_payload_gateway_info {
	const char *gateway_id;
	const char *version;       /* needlelinkd version, "0.1.0"; required */
	const char *bluez_version; /* NULL: unknown or simulator */
	const char *adapter;       /* "hci0"; NULL for the simulator */
	const char *adapter_address; /* "00:1A:7D:DA:71:13" (upper case); NULL */
	enum nl_payload_transport transport;
	uint32_t config_hash;      /* FNV-1a of the effective configuration */
	const char *base_topic;    /* required */
	int64_t started_ms;
};

int nl_payload_gateway_info(const struct nl_payload_gateway_info *i, cJSON **ret);

/* Error classes counted per pen in the health payload. */
enum nl_payload_err_class {
	NL_PAYLOAD_ERR_CONNECT = 0,   /* connect or service discovery failed */
	NL_PAYLOAD_ERR_GATT = 1,      /* GATT read/write/notify errors */
	NL_PAYLOAD_ERR_DECODE = 2,    /* PDU or record did not decode (CRC, range) */
	NL_PAYLOAD_ERR_SEQUENCE = 3,  /* record gaps and duplicates */
	NL_PAYLOAD_ERR_COMMAND = 4,   /* Pen CP answered anything but success */
	NL_PAYLOAD_ERR_TIMEOUT = 5,   /* a pen operation timed out */
	NL_PAYLOAD_ERR_CLASS_COUNT
};
const char *nl_payload_err_class_name(enum nl_payload_err_class c);

struct nl_payload_pen_health {
	const char *serial;
	bool connected;
	uint32_t connects;
	uint32_t errors[NL_PAYLOAD_ERR_CLASS_COUNT];
	uint32_t records;      /* records received since the gateway started */
	bool rssi_known;
	int rssi_dbm;          /* -127..20 */
	int64_t last_seen_ms;  /* 0: never */
};

struct nl_payload_gateway_health {
	const char *gateway_id;
	int64_t now_ms;
	uint64_t uptime_s;
	uint64_t rss_bytes;          /* resident set size */
	uint64_t outbox_depth;       /* messages waiting for the broker */
	int64_t outbox_oldest_ms;    /* enqueue time of the oldest; 0: empty */
	size_t pen_count;
	const struct nl_payload_pen_health *pens;
};

int nl_payload_gateway_health(const struct nl_payload_gateway_health *h, cJSON **ret);

/* ---- session summary: BASE/pens/SERIAL/sessions ------------------------- */

struct nl_payload_session_ctx {
	struct nl_payload_record_ctx rec;  /* of the SESSION_END record */
	const struct nl_record *start;     /* its SESSION_START, NULL if unseen */
	const struct nl_rec_cartridge *cartridge; /* last cartridge record, NULL */
	const struct nl_record *limit_events;     /* LIMIT records of the session */
	size_t limit_event_count;
};

/* end must be a SESSION_END record (-EINVAL otherwise). */
int nl_payload_session(const struct nl_payload_session_ctx *ctx, const struct nl_record *end,
		       cJSON **ret);

/* ---- alerts: BASE/pens/SERIAL/alerts ------------------------------------ */

enum nl_payload_severity {
	NL_PAYLOAD_SEVERITY_INFO = 0,
	NL_PAYLOAD_SEVERITY_WARNING = 1,
	NL_PAYLOAD_SEVERITY_CRITICAL = 2,
	NL_PAYLOAD_SEVERITY_COUNT
};

enum nl_payload_action {
	NL_PAYLOAD_ACTION_WARN = 0,
	NL_PAYLOAD_ACTION_CLAMP = 1,
	NL_PAYLOAD_ACTION_LOCK = 2,
	NL_PAYLOAD_ACTION_BLOCK = 3,
	NL_PAYLOAD_ACTION_COUNT
};

enum nl_payload_action_result {
	NL_PAYLOAD_RESULT_APPLIED = 0, /* the pen confirmed it / nothing to apply */
	NL_PAYLOAD_RESULT_PENDING = 1, /* sent, confirmation outstanding */
	NL_PAYLOAD_RESULT_FAILED = 2,  /* the pen refused or did not answer */
	NL_PAYLOAD_RESULT_COUNT
};

/* Unit of an alert's measured value and threshold. */
enum nl_payload_unit {
	NL_PAYLOAD_UNIT_NONE = 0,     /* no measured value */
	NL_PAYLOAD_UNIT_UM = 1,       /* given in um, published as _mm */
	NL_PAYLOAD_UNIT_PASSES = 2,
	NL_PAYLOAD_UNIT_S = 3,
	NL_PAYLOAD_UNIT_DAYS = 4,
	NL_PAYLOAD_UNIT_SESSIONS = 5,
	NL_PAYLOAD_UNIT_COUNT
};

struct nl_payload_alert {
	const char *serial;
	int64_t at_ms;
	const char *alert_id;   /* unique per alert, 1..128 bytes, e.g. "SERIAL:EPOCH:SEQ:n" */
	const char *rule;       /* rule id, "zone_depth_cap", [a-z0-9_]+ */
	enum nl_payload_severity severity;
	enum nl_payload_action action;
	enum nl_payload_action_result result;
	enum nl_payload_unit unit;
	int64_t measured;       /* in unit; ignored for NONE */
	int64_t threshold;
	unsigned zone;          /* NL_ZONE_NONE when not zone specific */
	uint32_t session_id;    /* 0: none */
	const char *record_id;  /* record that triggered it, NULL */
	const char *message;    /* human readable, English */
};

int nl_payload_alert(const struct nl_payload_alert *a, cJSON **ret);

/* ---- requests: BASE/pens/SERIAL/request/OP ------------------------------ */

enum nl_payload_op {
	NL_PAYLOAD_OP_SET_TIME = 0,
	NL_PAYLOAD_OP_LOCK = 1,
	NL_PAYLOAD_OP_UNLOCK = 2,
	NL_PAYLOAD_OP_SET_ZONE = 3,
	NL_PAYLOAD_OP_STOP_SESSION = 4,
	NL_PAYLOAD_OP_READ_STATE = 5,
	NL_PAYLOAD_OP_AUTHORISE = 6,
	NL_PAYLOAD_OP_PAIR = 7,
	NL_PAYLOAD_OP_RELEASE = 8,
	NL_PAYLOAD_OP_COUNT
};
const char *nl_payload_op_name(enum nl_payload_op op);
/* -ENOENT for a name that is not an op. */
int nl_payload_op_from_name(const char *name);

enum nl_payload_role {
	NL_PAYLOAD_ROLE_PHYSICIAN = 0,
	NL_PAYLOAD_ROLE_NURSE = 1,
	NL_PAYLOAD_ROLE_AESTHETICIAN = 2,
	NL_PAYLOAD_ROLE_TECHNICIAN = 3,
	NL_PAYLOAD_ROLE_COUNT
};
const char *nl_payload_role_name(enum nl_payload_role r);

enum nl_payload_contraindication {
	NL_PAYLOAD_CI_ACTIVE_INFECTION = 1u << 0,
	NL_PAYLOAD_CI_COLD_SORES = 1u << 1,
	NL_PAYLOAD_CI_ACTIVE_ACNE = 1u << 2,
	NL_PAYLOAD_CI_ROSACEA = 1u << 3,
	NL_PAYLOAD_CI_KELOID = 1u << 4,
	NL_PAYLOAD_CI_ISOTRETINOIN = 1u << 5,
	NL_PAYLOAD_CI_ANTICOAGULANTS = 1u << 6,
	NL_PAYLOAD_CI_PREGNANCY = 1u << 7,
	NL_PAYLOAD_CI_SKIN_CANCER = 1u << 8,
	NL_PAYLOAD_CI_CHEMO_RADIOTHERAPY = 1u << 9,
	NL_PAYLOAD_CI_IMMUNOSUPPRESSION = 1u << 10,
};
#define NL_PAYLOAD_CI_COUNT 11

struct nl_payload_authorise {
	char patient[NL_PAYLOAD_ID_MAX + 1];     /* opaque pseudonym */
	char operator_id[NL_PAYLOAD_ID_MAX + 1];
	uint8_t operator_role;                   /* enum nl_payload_role */
	uint8_t skin_type;                       /* Fitzpatrick 1..6 */
	uint32_t contraindications;              /* NL_PAYLOAD_CI_* */
	uint8_t zone_count;                      /* 1..NL_LIMIT_ZONES_MAX */
	uint8_t zones[NL_LIMIT_ZONES_MAX];       /* enum nl_zone, unique */
	bool scar;                               /* scar protocol */
	bool body;                               /* body protocol */
	bool has_override;
	char override_physician_id[NL_PAYLOAD_ID_MAX + 1];
	char override_reason[NL_PAYLOAD_TEXT_MAX + 1];
};

struct nl_payload_request {
	uint8_t op; /* enum nl_payload_op */
	char transaction[NL_PAYLOAD_ID_MAX + 1];
	union {
		struct {
			bool has_time;      /* absent: the gateway's clock */
			int64_t unix_ms;
		} set_time;
		struct {
			uint8_t reason;     /* enum nl_lock_reason */
		} lock;
		struct {
			uint8_t reason;
			char operator_id[NL_PAYLOAD_ID_MAX + 1];
			uint8_t operator_role;
			/* free text, "" when absent: why the unlock is
			 * authorised (required when the limits engine locked
			 * the pen, docs/limits.md) */
			char reason_text[NL_PAYLOAD_TEXT_MAX + 1];
		} unlock;
		struct {
			uint8_t zone;       /* 1..NL_ZONE_COUNT-1 */
		} set_zone;
		struct {
			uint32_t session_id; /* 0: whatever session is open */
		} stop_session;
		struct nl_payload_authorise authorise;
		struct {
			bool has_passkey;   /* else: confirm */
			uint32_t passkey;   /* 0..999999 */
			bool confirm;
		} pair;
	} u;
};

/* Why a request was refused, for the error response. */
enum nl_payload_req_error {
	NL_PAYLOAD_REQ_MALFORMED = 0,   /* not JSON, or not an object */
	NL_PAYLOAD_REQ_UNKNOWN_OP = 1,
	NL_PAYLOAD_REQ_BAD_SCHEMA = 2,  /* "schema" is not needlelink/request/1 */
	NL_PAYLOAD_REQ_MISSING_FIELD = 3,
	NL_PAYLOAD_REQ_WRONG_TYPE = 4,
	NL_PAYLOAD_REQ_OUT_OF_RANGE = 5,
	NL_PAYLOAD_REQ_UNKNOWN_FIELD = 6,
	NL_PAYLOAD_REQ_ERROR_COUNT
};
/* "malformed", "unknown_op", ... : the error.code of the response. */
const char *nl_payload_req_error_name(enum nl_payload_req_error e);

struct nl_payload_parse_error {
	uint8_t code;                            /* enum nl_payload_req_error */
	char field[96];                          /* "params.zones[2]"; "" if none */
	char message[160];
	char transaction[NL_PAYLOAD_ID_MAX + 1]; /* echoed if it was readable */
};

/* Parses and strictly validates a request for op (the last topic level).
 * Every member must be known, present when required, of the right JSON
 * type and in range. Returns 0 and fills *ret, or a negative errno with
 * err (if not NULL) holding "<field>: <what is wrong>":
 *   -EBADMSG     not JSON, not an object            (MALFORMED)
 *   -EOPNOTSUPP  op is not one of the ops           (UNKNOWN_OP)
 *   -EPROTO      schema member not needlelink/request/1 (BAD_SCHEMA)
 *   -ENOENT      a required member is missing       (MISSING_FIELD)
 *   -EINVAL      a member has the wrong JSON type   (WRONG_TYPE)
 *   -ERANGE      a value is out of range or unknown (OUT_OF_RANGE)
 *   -E2BIG       a member that is not defined       (UNKNOWN_FIELD)
 * json need not be NUL terminated. */
int nl_payload_parse_request(const char *op, const char *json, size_t len,
			     struct nl_payload_request *ret, char *err, size_t errlen);
/* The same, with the failure broken down for an error response. *ret_err
 * is written only on failure. */
int nl_payload_parse_request_ex(const char *op, const char *json, size_t len,
				struct nl_payload_request *ret,
				struct nl_payload_parse_error *ret_err);

/* ---- responses: BASE/pens/SERIAL/response/OP ---------------------------- */

enum nl_payload_status {
	NL_PAYLOAD_STATUS_OK = 0,      /* done (reads, set_time, lock, ...) */
	NL_PAYLOAD_STATUS_APPLIED = 1, /* authorise: the pen acknowledged the limits */
	NL_PAYLOAD_STATUS_BLOCKED = 2, /* a rule refused it; nothing changed */
	NL_PAYLOAD_STATUS_FAILED = 3,  /* valid, but a step failed */
	NL_PAYLOAD_STATUS_ERROR = 4,   /* malformed request; nothing changed */
	NL_PAYLOAD_STATUS_COUNT
};
const char *nl_payload_status_name(enum nl_payload_status s);

/* One rule that blocked a request ("blocked" responses). */
struct nl_payload_block {
	const char *rule;
	enum nl_payload_unit unit;
	int64_t value;
	int64_t threshold;
	unsigned zone;          /* NL_ZONE_NONE when not zone specific */
	const char *message;
};

/* Strings may be passed straight from a struct nl_payload_parse_error:
 * an empty transaction or field comes out as null. */
struct nl_payload_response {
	const char *serial;
	const char *op;          /* as it came in the topic (may be unknown) */
	const char *transaction; /* NULL or "" when the request had none readable */
	enum nl_payload_status status;
	int64_t at_ms;
	/* error, failed: */
	const char *error_code;   /* [a-z0-9_]+: nl_payload_req_error_name(), "timeout", ... */
	const char *error_message;
	const char *error_field;  /* NULL or "" when no field is at fault */
	const char *failed_step;  /* failed only, [a-z0-9_]+: "set_limits", ... */
	/* blocked: */
	size_t block_count;
	const struct nl_payload_block *blocks;
	/* ok, applied: op-specific result object, or NULL. Consumed: the
	 * response takes ownership whether or not the call succeeds. */
	cJSON *result;
};

/* The "result" objects of the ops (docs/mqtt-api.md, ops table), to hand to
 * struct nl_payload_response. Same conventions as the builders. */
int nl_payload_result_set_time(uint32_t previous_pen_s, int64_t pen_time_ms, cJSON **ret);
/* lock and unlock: whether the pen reports itself locked afterwards. */
int nl_payload_result_locked(bool locked, cJSON **ret);
/* release: whether the pen was quarantined (and now is not). */
int nl_payload_result_released(bool released, cJSON **ret);
/* set_zone: -ERANGE unless nl_zone_valid(zone). */
int nl_payload_result_zone(unsigned zone, cJSON **ret);
/* stop_session: -ERANGE for 0. */
int nl_payload_result_session(uint32_t session_id, cJSON **ret);
/* read_state: wraps a pen-state payload, which it consumes (also on
 * failure). */
int nl_payload_result_state(cJSON *pen_state, cJSON **ret);
/* authorise, status APPLIED: the effective limit set and the session. */
int nl_payload_result_authorise(uint32_t session_id, uint32_t limits_hash,
				const struct nl_limit_set *set, cJSON **ret);

/* -EINVAL when a member the status needs is missing (blocks for BLOCKED,
 * code and message for ERROR, plus step for FAILED) or malformed. */
int nl_payload_response(const struct nl_payload_response *r, cJSON **ret);

#endif
