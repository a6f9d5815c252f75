/* SPDX-License-Identifier: MIT */
/*
 * JSON payloads of the MQTT API (docs/mqtt-api.md, docs/schemas/).
 *
 * Builders share one pattern: members are added through small helpers that
 * keep the first error in a sticky int, so a builder reads as the list of
 * its members and checks once at the end, like the protocol's cursors.
 */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "payload.h"

/* ---- names the protocol library does not provide ----------------------- */

static const char *limit_source_name(unsigned v)
{
	static const char *const n[] = {
		[NL_LIMIT_SOURCE_FACTORY] = "factory",
		[NL_LIMIT_SOURCE_SESSION] = "session",
		[NL_LIMIT_SOURCE_FALLBACK] = "fallback",
	};
	return v < sizeof(n) / sizeof(n[0]) ? n[v] : NULL;
}

static const char *cartridge_state_name(unsigned v)
{
	static const char *const n[] = {
		[NL_CARTRIDGE_NONE] = "none",
		[NL_CARTRIDGE_NEW] = "new",
		[NL_CARTRIDGE_IN_USE] = "in_use",
		[NL_CARTRIDGE_REJECTED] = "rejected",
	};
	return v < sizeof(n) / sizeof(n[0]) ? n[v] : NULL;
}

static const char *fault_severity_name(unsigned v)
{
	static const char *const n[] = {
		[NL_FAULT_INFO] = "info",
		[NL_FAULT_WARNING] = "warning",
		[NL_FAULT_CRITICAL] = "critical",
	};
	return v < sizeof(n) / sizeof(n[0]) ? n[v] : NULL;
}

struct flag_name {
	uint32_t bit;
	const char *name;
};

static const struct flag_name feature_flags[] = {
	{ NL_FEAT_MOTORISED_DEPTH, "motorised_depth" },
	{ NL_FEAT_DEPTH_SENSING, "depth_sensing" },
	{ NL_FEAT_VARIABLE_SPEED, "variable_speed" },
	{ NL_FEAT_CARTRIDGE_READER, "cartridge_reader" },
	{ NL_FEAT_RTC, "rtc" },
	{ 0, NULL },
};

static const struct flag_name live_flags[] = {
	{ NL_LIVE_MOTOR_ON, "motor_on" },
	{ NL_LIVE_CLAMPED, "clamped" },
	{ NL_LIVE_DIAL_OVER_CAP, "dial_over_cap" },
	{ NL_LIVE_CARTRIDGE, "cartridge" },
	{ NL_LIVE_CHARGING, "charging" },
	{ 0, NULL },
};

static const struct flag_name status_flags[] = {
	{ NL_STATUS_LOCKED, "locked" },
	{ NL_STATUS_LIMIT_REACHED, "limit_reached" },
	{ NL_STATUS_CARTRIDGE_PRESENT, "cartridge_present" },
	{ NL_STATUS_CARTRIDGE_USED, "cartridge_used" },
	{ NL_STATUS_CARTRIDGE_EXPIRED, "cartridge_expired" },
	{ NL_STATUS_CLOCK_NOT_SET, "clock_not_set" },
	{ NL_STATUS_STORE_NEARLY_FULL, "store_nearly_full" },
	{ NL_STATUS_STORE_FULL, "store_full" },
	{ NL_STATUS_BATTERY_LOW, "battery_low" },
	{ NL_STATUS_FAULT, "fault" },
	{ NL_STATUS_SESSION_ACTIVE, "session_active" },
	{ NL_STATUS_FACTORY_LIMITS, "factory_limits" },
	{ NL_STATUS_FALLBACK_LIMITS, "fallback_limits" },
	{ NL_STATUS_CARTRIDGE_REJECTED, "cartridge_rejected" },
	{ 0, NULL },
};

static const struct flag_name record_flags[] = {
	{ NL_REC_CLOCK_SET, "clock_set" },
	{ NL_REC_AUTHORISED, "authorised" },
	{ 0, NULL },
};

static const struct flag_name segment_flags[] = {
	{ NL_SEG_CLAMPED, "clamped" },
	{ NL_SEG_STOPPED_BY_LIMIT, "stopped_by_limit" },
	{ NL_SEG_DIAL_OVER_CAP, "dial_over_cap" },
	{ NL_SEG_PASS_WARN, "pass_warn" },
	{ NL_SEG_NEEDLE_ON_WARN, "needle_on_warn" },
	{ NL_SEG_BATTERY_LOW, "battery_low" },
	{ NL_SEG_FALLBACK_LIMITS, "fallback_limits" },
	{ 0, NULL },
};

static const char *const op_names[NL_PAYLOAD_OP_COUNT] = {
	[NL_PAYLOAD_OP_SET_TIME] = "set_time",
	[NL_PAYLOAD_OP_LOCK] = "lock",
	[NL_PAYLOAD_OP_UNLOCK] = "unlock",
	[NL_PAYLOAD_OP_SET_ZONE] = "set_zone",
	[NL_PAYLOAD_OP_STOP_SESSION] = "stop_session",
	[NL_PAYLOAD_OP_READ_STATE] = "read_state",
	[NL_PAYLOAD_OP_AUTHORISE] = "authorise",
	[NL_PAYLOAD_OP_PAIR] = "pair",
	[NL_PAYLOAD_OP_RELEASE] = "release",
};

static const char *const role_names[NL_PAYLOAD_ROLE_COUNT] = {
	[NL_PAYLOAD_ROLE_PHYSICIAN] = "physician",
	[NL_PAYLOAD_ROLE_NURSE] = "nurse",
	[NL_PAYLOAD_ROLE_AESTHETICIAN] = "aesthetician",
	[NL_PAYLOAD_ROLE_TECHNICIAN] = "technician",
};

/* Bit i of the contraindication mask is named ci_names[i]. */
static const char *const ci_names[NL_PAYLOAD_CI_COUNT] = {
	"active_infection", "cold_sores", "active_acne", "rosacea",
	"keloid", "isotretinoin", "anticoagulants", "pregnancy",
	"skin_cancer", "chemo_radiotherapy", "immunosuppression",
};

static const char *const skin_type_names[] = { "I", "II", "III", "IV", "V", "VI" };

static const char *const req_error_names[NL_PAYLOAD_REQ_ERROR_COUNT] = {
	[NL_PAYLOAD_REQ_MALFORMED] = "malformed",
	[NL_PAYLOAD_REQ_UNKNOWN_OP] = "unknown_op",
	[NL_PAYLOAD_REQ_BAD_SCHEMA] = "bad_schema",
	[NL_PAYLOAD_REQ_MISSING_FIELD] = "missing_field",
	[NL_PAYLOAD_REQ_WRONG_TYPE] = "wrong_type",
	[NL_PAYLOAD_REQ_OUT_OF_RANGE] = "out_of_range",
	[NL_PAYLOAD_REQ_UNKNOWN_FIELD] = "unknown_field",
};

const char *nl_payload_op_name(enum nl_payload_op op)
{
	return (unsigned)op < NL_PAYLOAD_OP_COUNT ? op_names[op] : NULL;
}

int nl_payload_op_from_name(const char *name)
{
	if (!name)
		return -ENOENT;
	for (unsigned i = 0; i < NL_PAYLOAD_OP_COUNT; i++)
		if (strcmp(op_names[i], name) == 0)
			return (int)i;
	return -ENOENT;
}

const char *nl_payload_role_name(enum nl_payload_role r)
{
	return (unsigned)r < NL_PAYLOAD_ROLE_COUNT ? role_names[r] : NULL;
}

const char *nl_payload_req_error_name(enum nl_payload_req_error e)
{
	return (unsigned)e < NL_PAYLOAD_REQ_ERROR_COUNT ? req_error_names[e] : NULL;
}

const char *nl_payload_status_name(enum nl_payload_status s)
{
	switch (s) {
	case NL_PAYLOAD_STATUS_OK:
		return "ok";
	case NL_PAYLOAD_STATUS_APPLIED:
		return "applied";
	case NL_PAYLOAD_STATUS_BLOCKED:
		return "blocked";
	case NL_PAYLOAD_STATUS_FAILED:
		return "failed";
	case NL_PAYLOAD_STATUS_ERROR:
		return "error";
	case NL_PAYLOAD_STATUS_COUNT:
		break;
	}
	return NULL;
}

const char *nl_payload_err_class_name(enum nl_payload_err_class c)
{
	switch (c) {
	case NL_PAYLOAD_ERR_CONNECT:
		return "connect";
	case NL_PAYLOAD_ERR_GATT:
		return "gatt";
	case NL_PAYLOAD_ERR_DECODE:
		return "decode";
	case NL_PAYLOAD_ERR_SEQUENCE:
		return "sequence";
	case NL_PAYLOAD_ERR_COMMAND:
		return "command";
	case NL_PAYLOAD_ERR_TIMEOUT:
		return "timeout";
	case NL_PAYLOAD_ERR_CLASS_COUNT:
		break;
	}
	return NULL;
}

static const char *severity_name(enum nl_payload_severity s)
{
	switch (s) {
	case NL_PAYLOAD_SEVERITY_INFO:
		return "info";
	case NL_PAYLOAD_SEVERITY_WARNING:
		return "warning";
	case NL_PAYLOAD_SEVERITY_CRITICAL:
		return "critical";
	case NL_PAYLOAD_SEVERITY_COUNT:
		break;
	}
	return NULL;
}

static const char *action_name(enum nl_payload_action a)
{
	switch (a) {
	case NL_PAYLOAD_ACTION_WARN:
		return "warn";
	case NL_PAYLOAD_ACTION_CLAMP:
		return "clamp";
	case NL_PAYLOAD_ACTION_LOCK:
		return "lock";
	case NL_PAYLOAD_ACTION_BLOCK:
		return "block";
	case NL_PAYLOAD_ACTION_COUNT:
		break;
	}
	return NULL;
}

static const char *action_result_name(enum nl_payload_action_result r)
{
	switch (r) {
	case NL_PAYLOAD_RESULT_APPLIED:
		return "applied";
	case NL_PAYLOAD_RESULT_PENDING:
		return "pending";
	case NL_PAYLOAD_RESULT_FAILED:
		return "failed";
	case NL_PAYLOAD_RESULT_COUNT:
		break;
	}
	return NULL;
}

/* Name used in the "unit" member and as the suffix of value members. */
static const char *unit_name(enum nl_payload_unit u)
{
	switch (u) {
	case NL_PAYLOAD_UNIT_NONE:
		return "none";
	case NL_PAYLOAD_UNIT_UM:
		return "mm";
	case NL_PAYLOAD_UNIT_PASSES:
		return "passes";
	case NL_PAYLOAD_UNIT_S:
		return "s";
	case NL_PAYLOAD_UNIT_DAYS:
		return "days";
	case NL_PAYLOAD_UNIT_SESSIONS:
		return "sessions";
	case NL_PAYLOAD_UNIT_COUNT:
		break;
	}
	return NULL;
}

static const char *transport_name(enum nl_payload_transport t)
{
	switch (t) {
	case NL_PAYLOAD_TRANSPORT_BLUEZ:
		return "bluez";
	case NL_PAYLOAD_TRANSPORT_SIM:
		return "sim";
	case NL_PAYLOAD_TRANSPORT_COUNT:
		break;
	}
	return NULL;
}

/* ---- time --------------------------------------------------------------- */

#define TIME_MAX_MS 253402300799999LL /* 9999-12-31T23:59:59.999Z */

int nl_payload_format_time(int64_t unix_ms, char *buf, size_t size)
{
	struct tm tm;
	time_t secs;
	int n;

	if (unix_ms < 0 || unix_ms > TIME_MAX_MS)
		return -ERANGE;
	if (size < NL_PAYLOAD_TIME_LEN)
		return -ENOBUFS;
	secs = (time_t)(unix_ms / 1000);
	if (!gmtime_r(&secs, &tm))
		return -ERANGE;
	n = snprintf(buf, size, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
		     tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
		     (int)(unix_ms % 1000));
	if (n != NL_PAYLOAD_TIME_LEN - 1)
		return -ERANGE;
	return n;
}

int64_t nl_payload_pen_time_ms(uint32_t pen_time)
{
	return ((int64_t)NL_PEN_EPOCH_UNIX + (int64_t)pen_time) * 1000;
}

char *nl_payload_print(const cJSON *payload)
{
	return payload ? cJSON_PrintUnformatted(payload) : NULL;
}

/* ---- builder helpers (sticky error) -------------------------------------- */

static void j_add(int *err, cJSON *o, const char *key, cJSON *item)
{
	if (*err < 0) {
		cJSON_Delete(item);
		return;
	}
	if (!item || !cJSON_AddItemToObject(o, key, item)) {
		cJSON_Delete(item);
		*err = -ENOMEM;
	}
}

static void j_null(int *err, cJSON *o, const char *key)
{
	j_add(err, o, key, cJSON_CreateNull());
}

/* NULL value: JSON null. */
static void j_str(int *err, cJSON *o, const char *key, const char *v)
{
	j_add(err, o, key, v ? cJSON_CreateString(v) : cJSON_CreateNull());
}

/* An enum name; NULL (a value without a name) is a range error. */
static void j_name(int *err, cJSON *o, const char *key, const char *name)
{
	if (*err < 0)
		return;
	if (!name) {
		*err = -ERANGE;
		return;
	}
	j_str(err, o, key, name);
}

static void j_num(int *err, cJSON *o, const char *key, double v)
{
	j_add(err, o, key, cJSON_CreateNumber(v));
}

static void j_bool(int *err, cJSON *o, const char *key, bool v)
{
	j_add(err, o, key, cJSON_CreateBool(v));
}

static void j_time(int *err, cJSON *o, const char *key, int64_t ms)
{
	char buf[NL_PAYLOAD_TIME_LEN];
	int r;

	if (*err < 0)
		return;
	r = nl_payload_format_time(ms, buf, sizeof(buf));
	if (r < 0) {
		*err = r;
		return;
	}
	j_str(err, o, key, buf);
}

/* um -> mm as a decimal number; NL_DEPTH_UNKNOWN -> null. */
static void j_mm(int *err, cJSON *o, const char *key, uint32_t um)
{
	if (um == NL_DEPTH_UNKNOWN)
		j_null(err, o, key);
	else
		j_num(err, o, key, (double)um / 1000.0);
}

/* ms -> s as a decimal number. */
static void j_ms_as_s(int *err, cJSON *o, const char *key, uint32_t ms)
{
	j_num(err, o, key, (double)ms / 1000.0);
}

static void j_hash(int *err, cJSON *o, const char *key, uint32_t h)
{
	char buf[9];

	snprintf(buf, sizeof(buf), "%08" PRIx32, h);
	j_str(err, o, key, buf);
}

static void j_hex(int *err, cJSON *o, const char *key, const uint8_t *b, size_t n)
{
	char buf[2 * 16 + 1];

	if (n > 16) {
		if (*err >= 0)
			*err = -EINVAL;
		return;
	}
	for (size_t i = 0; i < n; i++)
		snprintf(buf + 2 * i, 3, "%02x", b[i]);
	buf[2 * n] = '\0';
	j_str(err, o, key, buf);
}

static bool all_zero(const uint8_t *b, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (b[i])
			return false;
	return true;
}

/* Cartridge uid, null when all zero (no cartridge). */
static void j_uid(int *err, cJSON *o, const char *key, const uint8_t *uid)
{
	if (all_zero(uid, NL_CARTRIDGE_UID_LEN))
		j_null(err, o, key);
	else
		j_hex(err, o, key, uid, NL_CARTRIDGE_UID_LEN);
}

/* Strings read from a pen (Device Information) are untrusted bytes: they
 * go out as printable ASCII, anything else replaced by '?', at most 64
 * characters, so the payload is always valid UTF-8 JSON. */
static void j_pen_str(int *err, cJSON *o, const char *key, const char *v)
{
	char buf[65];
	size_t n = 0;

	if (!v) {
		j_null(err, o, key);
		return;
	}
	for (; v[n] && n < sizeof(buf) - 1; n++)
		buf[n] = (v[n] >= 0x20 && v[n] <= 0x7e) ? v[n] : '?';
	buf[n] = '\0';
	j_str(err, o, key, buf);
}

/* 0 means "none" for session ids. */
static void j_opt_u32(int *err, cJSON *o, const char *key, uint32_t v)
{
	if (v == 0)
		j_null(err, o, key);
	else
		j_num(err, o, key, (double)v);
}

static cJSON *j_obj(int *err, cJSON *o, const char *key)
{
	cJSON *c;

	if (*err < 0)
		return NULL;
	c = cJSON_CreateObject();
	j_add(err, o, key, c);
	return *err < 0 ? NULL : c;
}

static cJSON *j_arr(int *err, cJSON *o, const char *key)
{
	cJSON *c;

	if (*err < 0)
		return NULL;
	c = cJSON_CreateArray();
	j_add(err, o, key, c);
	return *err < 0 ? NULL : c;
}

static cJSON *j_push_obj(int *err, cJSON *arr)
{
	cJSON *c;

	if (*err < 0)
		return NULL;
	c = cJSON_CreateObject();
	if (!c || !cJSON_AddItemToArray(arr, c)) {
		cJSON_Delete(c);
		*err = -ENOMEM;
		return NULL;
	}
	return c;
}

/* Flags as an object of booleans, one member per defined bit. Undefined
 * bits set are a range error: the decoders never let one through. */
static void j_flags(int *err, cJSON *o, const char *key, const struct flag_name *names,
		    uint32_t v)
{
	uint32_t known = 0;
	cJSON *f;

	for (const struct flag_name *n = names; n->name; n++)
		known |= n->bit;
	if (*err >= 0 && (v & ~known)) {
		*err = -ERANGE;
		return;
	}
	f = j_obj(err, o, key);
	if (!f)
		return;
	for (const struct flag_name *n = names; n->name; n++)
		j_bool(err, f, n->name, (v & n->bit) != 0);
}

static void j_zone(int *err, cJSON *o, const char *key, unsigned zone)
{
	j_name(err, o, key, nl_zone_name(zone));
}

/* Printable ASCII, 1..max bytes, none of the MQTT topic specials: usable as
 * a topic level. */
static bool topic_id_ok(const char *s, size_t max)
{
	size_t n;

	if (!s)
		return false;
	n = strlen(s);
	if (n == 0 || n > max)
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c < 0x21 || c > 0x7e || c == '/' || c == '+' || c == '#')
			return false;
	}
	return true;
}

static bool serial_ok(const char *s)
{
	return topic_id_ok(s, NL_SERIAL_MAX);
}

/* Rule ids, reasons, error codes, steps: 1..64 of [a-z0-9_]. */
static bool rule_id_ok(const char *s)
{
	size_t n;

	if (!s)
		return false;
	n = strlen(s);
	if (n == 0 || n > NL_PAYLOAD_ID_MAX)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '_'))
			return false;
	return true;
}

/* ASCII only, whatever the locale. */
static bool ident_char(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	       c == '.' || c == '_' || c == ':' || c == '@' || c == '-';
}

/* Transaction and operator ids: 1..64 of [A-Za-z0-9._:@-]. */
static bool ident_ok(const char *s)
{
	size_t n;

	if (!s)
		return false;
	n = strlen(s);
	if (n == 0 || n > NL_PAYLOAD_ID_MAX)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!ident_char(s[i]))
			return false;
	return true;
}

/* "00:1A:7D:DA:71:13": upper-case hex with colons. */
static bool bdaddr_ok(const char *s)
{
	if (strlen(s) != 17)
		return false;
	for (int i = 0; i < 17; i++) {
		if (i % 3 == 2) {
			if (s[i] != ':')
				return false;
		} else if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'A' && s[i] <= 'F'))) {
			return false;
		}
	}
	return true;
}

/* Opens a payload: {"schema": ...}. */
static cJSON *payload_new(const char *schema)
{
	cJSON *o = cJSON_CreateObject();

	if (o && !cJSON_AddStringToObject(o, "schema", schema)) {
		cJSON_Delete(o);
		return NULL;
	}
	return o;
}

/* Closes a builder: hands o out on success, frees it on failure. */
static int payload_done(int err, cJSON *o, cJSON **ret)
{
	if (err < 0) {
		cJSON_Delete(o);
		return err;
	}
	*ret = o;
	return 0;
}

/* The value/threshold pair of an alert or a block, with the unit in the
 * member names: "measured_mm", "threshold_passes", ... */
static void j_measure(int *err, cJSON *o, const char *vkey, const char *tkey,
		      enum nl_payload_unit unit, int64_t value, int64_t threshold)
{
	char k[32];
	const char *u = unit_name(unit);

	j_name(err, o, "unit", u);
	if (*err < 0 || unit == NL_PAYLOAD_UNIT_NONE)
		return;
	snprintf(k, sizeof(k), "%s_%s", vkey, u);
	j_num(err, o, k, unit == NL_PAYLOAD_UNIT_UM ? (double)value / 1000.0 : (double)value);
	snprintf(k, sizeof(k), "%s_%s", tkey, u);
	j_num(err, o, k,
	      unit == NL_PAYLOAD_UNIT_UM ? (double)threshold / 1000.0 : (double)threshold);
}

/* ---- records -------------------------------------------------------------- */

int nl_payload_record_id(const char *serial, uint32_t store_epoch, uint32_t seq, char *buf,
			 size_t size)
{
	int n;

	if (!serial_ok(serial) || !buf)
		return -EINVAL;
	n = snprintf(buf, size, "%s:%" PRIu32 ":%" PRIu32, serial, store_epoch, seq);
	if (n < 0)
		return -EINVAL;
	if ((size_t)n >= size)
		return -ENOBUFS;
	return n;
}

static void body_session_start(int *err, cJSON *d, const struct nl_rec_session_start *s)
{
	j_hash(err, d, "limits_hash", s->limits_hash);
	j_name(err, d, "limit_source", limit_source_name(s->limit_source));
	j_num(err, d, "lifetime_s", s->lifetime_s);
	j_uid(err, d, "cartridge_uid", s->cartridge_uid);
	j_zone(err, d, "zone", s->zone);
}

static void zone_totals(int *err, cJSON *d, const struct nl_rec_session_end *e)
{
	cJSON *zones = j_arr(err, d, "zones");

	if (e->zone_count > NL_SESSION_ZONES_MAX && *err >= 0)
		*err = -ERANGE;
	for (unsigned i = 0; zones && *err >= 0 && i < e->zone_count; i++) {
		const struct nl_rec_zone_total *z = &e->zones[i];
		cJSON *o = j_push_obj(err, zones);

		if (!o)
			break;
		j_zone(err, o, "zone", z->zone);
		j_num(err, o, "passes", z->passes);
		j_mm(err, o, "depth_max_mm", z->depth_max_um);
		j_mm(err, o, "depth_mean_mm", z->depth_mean_um);
		j_ms_as_s(err, o, "needle_on_s", z->needle_on_ms);
		j_num(err, o, "strokes", z->strokes);
	}
}

static void body_session_end(int *err, cJSON *d, const struct nl_rec_session_end *e)
{
	j_name(err, d, "reason", nl_session_end_reason_name(e->reason));
	j_ms_as_s(err, d, "duration_s", e->duration_ms);
	j_ms_as_s(err, d, "needle_on_s", e->needle_on_ms);
	j_num(err, d, "strokes", e->strokes);
	zone_totals(err, d, e);
}

static void body_segment(int *err, cJSON *d, const struct nl_rec_segment *s)
{
	j_zone(err, d, "zone", s->zone);
	j_num(err, d, "pass", s->pass);
	j_mm(err, d, "depth_set_mm", s->depth_set_um);
	j_mm(err, d, "depth_cap_mm", s->depth_cap_um);
	j_mm(err, d, "depth_measured_mm", s->depth_measured_um);
	j_num(err, d, "speed_hz", s->speed_hz);
	j_ms_as_s(err, d, "run_s", s->run_ms);
	j_num(err, d, "strokes", s->strokes);
	j_uid(err, d, "cartridge_uid", s->cartridge_uid);
	j_flags(err, d, "status", segment_flags, s->status);
	j_name(err, d, "end_reason", nl_segment_end_name(s->end_reason));
}

/* Pen times inside bodies (cartridge expiry and first use) are converted
 * as absolute times; 0 means none. The expiry comes from the cartridge;
 * first use is by the pen's clock, as trustworthy as that clock was
 * (docs/mqtt-api.md says so). */
static void j_pen_time(int *err, cJSON *o, const char *key, uint32_t t)
{
	if (t == 0)
		j_null(err, o, key);
	else
		j_time(err, o, key, nl_payload_pen_time_ms(t));
}

static void body_cartridge(int *err, cJSON *d, const struct nl_rec_cartridge *c)
{
	j_name(err, d, "event", nl_cartridge_event_name(c->event));
	j_name(err, d, "reject_reason", nl_cartridge_reject_name(c->reject_reason));
	j_uid(err, d, "uid", c->uid);
	j_str(err, d, "lot", c->lot[0] ? c->lot : NULL);
	j_pen_time(err, d, "expiry", c->expiry);
	j_num(err, d, "needle_count", c->needle_count);
	j_mm(err, d, "needle_length_mm", c->needle_length_um);
	j_pen_time(err, d, "first_use", c->first_use);
	j_ms_as_s(err, d, "run_s", c->run_ms);
}

/* What unit a LIMIT record's value/threshold carry (record.h: "unit per
 * event"). Events the protocol gives no unit keep the raw integers. */
static enum nl_payload_unit limit_unit(const struct nl_rec_limit *l)
{
	switch ((enum nl_limit_event)l->event) {
	case NL_LIMIT_EVENT_CLAMP:
		return NL_PAYLOAD_UNIT_UM;
	case NL_LIMIT_EVENT_PASS_WARN:
		return NL_PAYLOAD_UNIT_PASSES;
	case NL_LIMIT_EVENT_TIME_WARN:
		return NL_PAYLOAD_UNIT_S;
	case NL_LIMIT_EVENT_LOCK:
		if (l->reason == NL_LOCK_REASON_PASSES)
			return NL_PAYLOAD_UNIT_PASSES;
		if (l->reason == NL_LOCK_REASON_NEEDLE_ON)
			return NL_PAYLOAD_UNIT_S;
		return NL_PAYLOAD_UNIT_NONE;
	case NL_LIMIT_EVENT_APPLIED:
	case NL_LIMIT_EVENT_UNLOCK:
	case NL_LIMIT_EVENT_OVERRIDE:
	case NL_LIMIT_EVENT_FALLBACK:
	case NL_LIMIT_EVENT_END:
		break;
	}
	return NL_PAYLOAD_UNIT_NONE;
}

static void body_limit(int *err, cJSON *d, const struct nl_rec_limit *l)
{
	enum nl_payload_unit u = limit_unit(l);

	j_name(err, d, "event", nl_limit_event_name(l->event));
	j_name(err, d, "origin", nl_limit_origin_name(l->origin));
	j_zone(err, d, "zone", l->zone);
	j_hash(err, d, "limits_hash", l->limits_hash);
	if (u == NL_PAYLOAD_UNIT_NONE) {
		/* No unit defined for this event: raw, as the pen sent it. */
		j_name(err, d, "unit", unit_name(u));
		j_num(err, d, "value", l->value);
		j_num(err, d, "threshold", l->threshold);
	} else if (u == NL_PAYLOAD_UNIT_UM) {
		j_name(err, d, "unit", unit_name(u));
		j_mm(err, d, "value_mm", l->value);
		j_mm(err, d, "threshold_mm", l->threshold);
	} else {
		j_measure(err, d, "value", "threshold", u, l->value, l->threshold);
	}
	j_name(err, d, "reason", nl_lock_reason_name(l->reason));
	j_num(err, d, "remaining_s", l->remaining_s);
}

static void body_fault(int *err, cJSON *d, const struct nl_rec_fault *f)
{
	j_name(err, d, "code", nl_fault_code_name(f->code));
	j_name(err, d, "severity", fault_severity_name(f->severity));
	j_num(err, d, "detail", f->detail);
}

static void body_time_change(int *err, cJSON *d, const struct nl_rec_time_change *t)
{
	j_name(err, d, "source", nl_time_source_name(t->source));
	j_num(err, d, "old_pen_s", t->old_time);
	j_num(err, d, "new_pen_s", t->new_time);
	/* After a clock loss the new time counts from power-on. */
	if (t->source == NL_TIME_SOURCE_RTC_LOSS)
		j_null(err, d, "new_time");
	else
		j_time(err, d, "new_time", nl_payload_pen_time_ms(t->new_time));
}

static int record_ctx_ok(const struct nl_payload_record_ctx *ctx)
{
	if (!ctx || !serial_ok(ctx->serial))
		return -EINVAL;
	if (ctx->msg_id > NL_PAYLOAD_MSG_ID_MAX)
		return -ERANGE;
	return 0;
}

/* Members every record carries, shared with the session summary. */
static void record_common(int *err, cJSON *o, const struct nl_payload_record_ctx *ctx,
			  const struct nl_record_header *h)
{
	char id[NL_SERIAL_MAX + 24];
	int r = nl_payload_record_id(ctx->serial, h->store_epoch, h->seq, id, sizeof(id));

	if (r < 0 && *err >= 0)
		*err = r;
	j_str(err, o, "record_id", id);
	j_num(err, o, "msg_id", (double)ctx->msg_id);
	j_str(err, o, "serial", ctx->serial);
	j_num(err, o, "seq", h->seq);
	j_num(err, o, "store_epoch", h->store_epoch);
	j_opt_u32(err, o, "session_id", h->session_id);
	if (h->flags & NL_REC_CLOCK_SET) {
		j_time(err, o, "pen_time", nl_payload_pen_time_ms(h->pen_time));
		j_null(err, o, "pen_uptime_s");
	} else {
		j_null(err, o, "pen_time");
		j_num(err, o, "pen_uptime_s", h->pen_time);
	}
	j_time(err, o, "received_at", ctx->received_ms);
}

int nl_payload_record(const struct nl_payload_record_ctx *ctx, const struct nl_record *rec,
		      cJSON **ret)
{
	int err = record_ctx_ok(ctx);
	cJSON *o, *d;

	if (err < 0)
		return err;
	if (!rec || !ret)
		return -EINVAL;
	o = payload_new(NL_PAYLOAD_SCHEMA_RECORD);
	if (!o)
		return -ENOMEM;
	j_name(&err, o, "type", nl_record_type_name(rec->hdr.type));
	record_common(&err, o, ctx, &rec->hdr);
	j_flags(&err, o, "flags", record_flags, rec->hdr.flags);
	d = j_obj(&err, o, "data");
	if (d) {
		switch ((enum nl_record_type)rec->hdr.type) {
		case NL_RECORD_SESSION_START:
			body_session_start(&err, d, &rec->u.session_start);
			break;
		case NL_RECORD_SESSION_END:
			body_session_end(&err, d, &rec->u.session_end);
			break;
		case NL_RECORD_SEGMENT:
			body_segment(&err, d, &rec->u.segment);
			break;
		case NL_RECORD_CARTRIDGE:
			body_cartridge(&err, d, &rec->u.cartridge);
			break;
		case NL_RECORD_LIMIT:
			body_limit(&err, d, &rec->u.limit);
			break;
		case NL_RECORD_FAULT:
			body_fault(&err, d, &rec->u.fault);
			break;
		case NL_RECORD_TIME_CHANGE:
			body_time_change(&err, d, &rec->u.time_change);
			break;
		case NL_RECORD_TYPE_END:
		default:
			err = -ERANGE;
			break;
		}
	}
	return payload_done(err, o, ret);
}

/* ---- live ------------------------------------------------------------------ */

int nl_payload_live(const char *serial, int64_t received_ms, const struct nl_live *l,
		    cJSON **ret)
{
	int err = 0;
	cJSON *o;

	if (!serial_ok(serial) || !l || !ret)
		return -EINVAL;
	o = payload_new(NL_PAYLOAD_SCHEMA_LIVE);
	if (!o)
		return -ENOMEM;
	j_str(&err, o, "serial", serial);
	j_time(&err, o, "received_at", received_ms);
	j_num(&err, o, "sample", l->sample);
	j_name(&err, o, "state", l->state < NL_PEN_STATE_COUNT ?
				       nl_pen_state_name((enum nl_pen_state)l->state) : NULL);
	j_flags(&err, o, "flags", live_flags, l->flags);
	j_zone(&err, o, "zone", l->zone);
	j_mm(&err, o, "depth_set_mm", l->depth_set_um);
	j_mm(&err, o, "depth_measured_mm", l->depth_measured_um);
	j_mm(&err, o, "depth_cap_mm", l->depth_cap_um);
	j_num(&err, o, "speed_hz", l->speed_hz);
	j_num(&err, o, "pass", l->pass);
	j_ms_as_s(&err, o, "needle_on_s", l->needle_on_ms);
	j_opt_u32(&err, o, "session_id", l->session_id);
	j_num(&err, o, "battery_pct", l->battery_pct);
	return payload_done(err, o, ret);
}

/* ---- limits ------------------------------------------------------------------ */

static void limit_set_members(int *err, cJSON *o, const struct nl_limit_set *s)
{
	cJSON *zones;

	if (s->zone_count > NL_LIMIT_ZONES_MAX && *err >= 0)
		*err = -ERANGE;
	j_num(err, o, "format", s->format);
	j_num(err, o, "lifetime_s", s->lifetime_s);
	j_mm(err, o, "depth_cap_mm", s->depth_cap_um);
	/* 0 means "no such limit" on the wire: null in JSON. */
	j_opt_u32(err, o, "needle_on_warn_s", s->needle_on_warn_s);
	j_opt_u32(err, o, "needle_on_lock_s", s->needle_on_lock_s);
	j_opt_u32(err, o, "pass_warn", s->pass_warn);
	j_opt_u32(err, o, "pass_lock", s->pass_lock);
	zones = j_arr(err, o, "zones");
	for (unsigned i = 0; zones && *err >= 0 && i < s->zone_count; i++) {
		const struct nl_zone_limit *z = &s->zones[i];
		cJSON *zo = j_push_obj(err, zones);

		if (!zo)
			break;
		j_zone(err, zo, "zone", z->zone);
		j_mm(err, zo, "depth_cap_mm", z->depth_cap_um);
		j_opt_u32(err, zo, "pass_warn", z->pass_warn);
		j_opt_u32(err, zo, "pass_lock", z->pass_lock);
	}
}

int nl_payload_limit_set(const struct nl_limit_set *set, cJSON **ret)
{
	int err = 0;
	cJSON *o;

	if (!set || !ret)
		return -EINVAL;
	o = cJSON_CreateObject();
	if (!o)
		return -ENOMEM;
	limit_set_members(&err, o, set);
	return payload_done(err, o, ret);
}

int nl_payload_limits(const char *serial, int64_t updated_ms, const struct nl_active_limits *a,
		      cJSON **ret)
{
	int err = 0;
	cJSON *o, *set;

	if (!serial_ok(serial) || !a || !ret)
		return -EINVAL;
	o = payload_new(NL_PAYLOAD_SCHEMA_LIMITS);
	if (!o)
		return -ENOMEM;
	j_str(&err, o, "serial", serial);
	j_time(&err, o, "updated_at", updated_ms);
	j_name(&err, o, "source", limit_source_name(a->source));
	j_hash(&err, o, "limits_hash", a->limits_hash);
	j_num(&err, o, "remaining_s", a->remaining_s);
	set = j_obj(&err, o, "set");
	if (set)
		limit_set_members(&err, set, &a->set);
	return payload_done(err, o, ret);
}

/* ---- pen state ------------------------------------------------------------------ */

static void state_feature(int *err, cJSON *o, const struct nl_feature *f)
{
	cJSON *x;
	char ver[8];

	if (!f) {
		j_null(err, o, "protocol_version");
		j_null(err, o, "features");
		j_null(err, o, "depth_range");
		j_null(err, o, "speed_range");
		j_null(err, o, "live_rate_hz");
		return;
	}
	snprintf(ver, sizeof(ver), "%u.%u", f->proto_major, f->proto_minor);
	j_str(err, o, "protocol_version", ver);
	j_flags(err, o, "features", feature_flags, f->flags);
	x = j_obj(err, o, "depth_range");
	if (x) {
		j_mm(err, x, "min_mm", f->depth_min_um);
		j_mm(err, x, "max_mm", f->depth_max_um);
		j_mm(err, x, "step_mm", f->depth_step_um);
	}
	x = j_obj(err, o, "speed_range");
	if (x) {
		j_num(err, x, "min_hz", f->speed_min_hz);
		j_num(err, x, "max_hz", f->speed_max_hz);
	}
	j_num(err, o, "live_rate_hz", f->live_rate_hz);
}

static void state_status(int *err, cJSON *o, const struct nl_pen_status *s)
{
	cJSON *st;

	if (!s) {
		j_null(err, o, "state");
		j_null(err, o, "locked");
		j_null(err, o, "fault_code");
		j_null(err, o, "status_flags");
		j_null(err, o, "pen_time");
		j_null(err, o, "store");
		return;
	}
	j_name(err, o, "state", s->state < NL_PEN_STATE_COUNT ?
				    nl_pen_state_name((enum nl_pen_state)s->state) : NULL);
	j_bool(err, o, "locked", (s->flags & NL_STATUS_LOCKED) != 0);
	j_num(err, o, "fault_code", s->fault_code);
	j_flags(err, o, "status_flags", status_flags, s->flags);
	if (s->flags & NL_STATUS_CLOCK_NOT_SET)
		j_null(err, o, "pen_time");
	else
		j_time(err, o, "pen_time", nl_payload_pen_time_ms(s->pen_time));
	st = j_obj(err, o, "store");
	if (st) {
		if (s->store_capacity == 0 && *err >= 0)
			*err = -ERANGE;
		j_num(err, st, "used", s->store_used);
		j_num(err, st, "capacity", s->store_capacity);
		j_num(err, st, "fill_pct",
		      s->store_capacity ? (double)(s->store_used * 1000u / s->store_capacity) / 10.0
					: 0.0);
		j_num(err, st, "epoch", s->store_epoch);
		j_opt_u32(err, st, "last_seq", s->last_seq);
	}
}

static void state_cartridge(int *err, cJSON *o, const struct nl_cartridge_info *c)
{
	cJSON *x;

	if (!c) {
		j_null(err, o, "cartridge");
		return;
	}
	x = j_obj(err, o, "cartridge");
	if (!x)
		return;
	j_name(err, x, "state", cartridge_state_name(c->state));
	j_uid(err, x, "uid", c->uid);
	j_str(err, x, "lot", c->lot[0] ? c->lot : NULL);
	j_pen_time(err, x, "expiry", c->expiry);
	j_num(err, x, "needle_count", c->needle_count);
	j_mm(err, x, "needle_length_mm", c->needle_length_um);
	j_pen_time(err, x, "first_use", c->first_use);
	j_ms_as_s(err, x, "run_s", c->run_ms);
}

static void state_limits(int *err, cJSON *o, const struct nl_active_limits *a)
{
	cJSON *x;

	if (!a) {
		j_null(err, o, "limits");
		return;
	}
	x = j_obj(err, o, "limits");
	if (!x)
		return;
	j_name(err, x, "source", limit_source_name(a->source));
	j_hash(err, x, "limits_hash", a->limits_hash);
	j_num(err, x, "remaining_s", a->remaining_s);
	j_mm(err, x, "depth_cap_mm", a->set.depth_cap_um);
}

int nl_payload_pen_state(const struct nl_payload_pen_state_in *in, cJSON **ret)
{
	int err = 0;
	int battery;
	cJSON *o;

	if (!in || !ret || !serial_ok(in->serial))
		return -EINVAL;
	if (in->battery_pct > (int)NL_BATTERY_MAX_PCT)
		return -ERANGE;
	o = payload_new(NL_PAYLOAD_SCHEMA_PEN_STATE);
	if (!o)
		return -ENOMEM;
	j_str(&err, o, "serial", in->serial);
	j_time(&err, o, "updated_at", in->updated_ms);
	j_pen_str(&err, o, "model", in->model);
	j_pen_str(&err, o, "manufacturer", in->manufacturer);
	j_pen_str(&err, o, "firmware", in->firmware);
	battery = in->battery_pct >= 0 ? in->battery_pct
				       : (in->status ? in->status->battery_pct : -1);
	if (battery > (int)NL_BATTERY_MAX_PCT && err >= 0)
		err = -ERANGE;
	if (battery < 0)
		j_null(&err, o, "battery_pct");
	else
		j_num(&err, o, "battery_pct", battery);
	state_feature(&err, o, in->feature);
	state_status(&err, o, in->status);
	state_cartridge(&err, o, in->cartridge);
	state_limits(&err, o, in->limits);
	if (in->catchup_expected) {
		cJSON *c = cJSON_AddObjectToObject(o, "catch_up");

		if (!c && err >= 0)
			err = -ENOMEM;
		if (c) {
			j_num(&err, c, "received", in->catchup_received);
			j_num(&err, c, "expected", in->catchup_expected);
		}
	} else {
		j_null(&err, o, "catch_up");
	}
	return payload_done(err, o, ret);
}

/* ---- availability and gateway -------------------------------------------------- */

static bool gateway_id_ok(const char *s)
{
	return topic_id_ok(s, NL_PAYLOAD_ID_MAX);
}

int nl_payload_availability(const struct nl_payload_availability *a, cJSON **ret)
{
	int err = 0;
	cJSON *o;

	if (!a || !ret || !serial_ok(a->serial))
		return -EINVAL;
	if (a->gateway_id && !gateway_id_ok(a->gateway_id))
		return -EINVAL;
	if ((a->online && !a->gateway_id) || (!a->online && a->reason && !rule_id_ok(a->reason)))
		return -EINVAL;
	o = payload_new(NL_PAYLOAD_SCHEMA_AVAILABILITY);
	if (!o)
		return -ENOMEM;
	j_str(&err, o, "serial", a->serial);
	j_str(&err, o, "state", a->online ? "online" : "offline");
	j_str(&err, o, "gateway", a->gateway_id);
	j_time(&err, o, "since", a->since_ms);
	j_str(&err, o, "reason", a->online ? NULL : a->reason);
	return payload_done(err, o, ret);
}

int nl_payload_gateway_state(const struct nl_payload_gateway_state *s, cJSON **ret)
{
	int err = 0;
	cJSON *o;

	if (!s || !ret || !gateway_id_ok(s->gateway_id))
		return -EINVAL;
	if (s->will && s->online)
		return -EINVAL; /* a last will only ever says offline */
	o = payload_new(NL_PAYLOAD_SCHEMA_GATEWAY_STATE);
	if (!o)
		return -ENOMEM;
	j_str(&err, o, "gateway", s->gateway_id);
	j_str(&err, o, "state", s->online ? "online" : "offline");
	j_bool(&err, o, "will", s->will);
	j_time(&err, o, "since", s->since_ms);
	return payload_done(err, o, ret);
}

int nl_payload_gateway_info(const struct nl_payload_gateway_info *i, cJSON **ret)
{
	int err = 0;
	cJSON *o;

	if (!i || !ret || !gateway_id_ok(i->gateway_id) || !i->version || !i->version[0] ||
	    !i->base_topic || !i->base_topic[0])
		return -EINVAL;
	if (i->adapter_address && !bdaddr_ok(i->adapter_address))
		return -EINVAL;
	o = payload_new(NL_PAYLOAD_SCHEMA_GATEWAY_INFO);
	if (!o)
		return -ENOMEM;
	j_str(&err, o, "gateway", i->gateway_id);
	j_str(&err, o, "version", i->version);
	{
		char ver[16];

		snprintf(ver, sizeof(ver), "%d.%d", NL_PROTO_MAJOR, NL_PROTO_MINOR);
		j_str(&err, o, "protocol_version", ver);
	}
	j_name(&err, o, "transport", transport_name(i->transport));
	j_str(&err, o, "bluez_version", i->bluez_version);
	j_str(&err, o, "adapter", i->adapter);
	j_str(&err, o, "adapter_address", i->adapter_address);
	j_hash(&err, o, "config_hash", i->config_hash);
	j_str(&err, o, "base_topic", i->base_topic);
	j_time(&err, o, "started_at", i->started_ms);
	return payload_done(err, o, ret);
}

int nl_payload_gateway_health(const struct nl_payload_gateway_health *h, cJSON **ret)
{
	int err = 0;
	cJSON *o, *x, *pens;

	if (!h || !ret || !gateway_id_ok(h->gateway_id) || (h->pen_count && !h->pens))
		return -EINVAL;
	o = payload_new(NL_PAYLOAD_SCHEMA_GATEWAY_HEALTH);
	if (!o)
		return -ENOMEM;
	j_str(&err, o, "gateway", h->gateway_id);
	j_time(&err, o, "at", h->now_ms);
	j_num(&err, o, "uptime_s", (double)h->uptime_s);
	x = j_obj(&err, o, "memory");
	if (x)
		j_num(&err, x, "rss_bytes", (double)h->rss_bytes);
	x = j_obj(&err, o, "outbox");
	if (x) {
		j_num(&err, x, "depth", (double)h->outbox_depth);
		if (h->outbox_oldest_ms > 0 && h->outbox_depth > 0)
			j_time(&err, x, "oldest_at", h->outbox_oldest_ms);
		else
			j_null(&err, x, "oldest_at");
	}
	pens = j_arr(&err, o, "pens");
	for (size_t i = 0; pens && err >= 0 && i < h->pen_count; i++) {
		const struct nl_payload_pen_health *p = &h->pens[i];
		cJSON *po, *e;

		if (!serial_ok(p->serial)) {
			err = -EINVAL;
			break;
		}
		if (p->rssi_known && (p->rssi_dbm < -127 || p->rssi_dbm > 20)) {
			err = -ERANGE;
			break;
		}
		po = j_push_obj(&err, pens);
		if (!po)
			break;
		j_str(&err, po, "serial", p->serial);
		j_bool(&err, po, "connected", p->connected);
		j_num(&err, po, "connects", p->connects);
		e = j_obj(&err, po, "errors");
		for (unsigned c = 0; e && c < NL_PAYLOAD_ERR_CLASS_COUNT; c++)
			j_num(&err, e, nl_payload_err_class_name((enum nl_payload_err_class)c),
			      p->errors[c]);
		j_num(&err, po, "records", p->records);
		if (p->rssi_known)
			j_num(&err, po, "rssi_dbm", p->rssi_dbm);
		else
			j_null(&err, po, "rssi_dbm");
		if (p->last_seen_ms > 0)
			j_time(&err, po, "last_seen", p->last_seen_ms);
		else
			j_null(&err, po, "last_seen");
	}
	return payload_done(err, o, ret);
}

/* ---- session summary ------------------------------------------------------------ */

static void session_enforcement(int *err, cJSON *o, const struct nl_payload_session_ctx *ctx)
{
	unsigned counts[NL_LIMIT_EVENT_END] = { 0 };
	cJSON *enf, *c, *events;

	enf = j_obj(err, o, "enforcement");
	if (!enf)
		return;
	c = j_obj(err, enf, "counts");
	events = j_arr(err, enf, "events");
	if (!c || !events)
		return;
	for (size_t i = 0; i < ctx->limit_event_count; i++) {
		const struct nl_record *r = &ctx->limit_events[i];
		char id[NL_SERIAL_MAX + 24];
		cJSON *e;

		if (r->hdr.type != NL_RECORD_LIMIT || r->u.limit.event == 0 ||
		    r->u.limit.event >= NL_LIMIT_EVENT_END) {
			if (*err >= 0)
				*err = -ERANGE;
			return;
		}
		counts[r->u.limit.event]++;
		e = j_push_obj(err, events);
		if (!e)
			return;
		if (nl_payload_record_id(ctx->rec.serial, r->hdr.store_epoch, r->hdr.seq, id,
					 sizeof(id)) < 0) {
			*err = -EINVAL;
			return;
		}
		j_str(err, e, "record_id", id);
		if (r->hdr.flags & NL_REC_CLOCK_SET)
			j_time(err, e, "pen_time", nl_payload_pen_time_ms(r->hdr.pen_time));
		else
			j_null(err, e, "pen_time");
		body_limit(err, e, &r->u.limit);
	}
	for (unsigned ev = 1; ev < NL_LIMIT_EVENT_END; ev++)
		j_num(err, c, nl_limit_event_name(ev), counts[ev]);
}

int nl_payload_session(const struct nl_payload_session_ctx *ctx, const struct nl_record *end,
		       cJSON **ret)
{
	const struct nl_rec_session_end *e;
	int err;
	cJSON *o, *x;
	bool end_clock;

	if (!ctx || !end || !ret || end->hdr.type != NL_RECORD_SESSION_END)
		return -EINVAL;
	if (ctx->limit_event_count && !ctx->limit_events)
		return -EINVAL;
	if (ctx->start && ctx->start->hdr.type != NL_RECORD_SESSION_START)
		return -EINVAL;
	err = record_ctx_ok(&ctx->rec);
	if (err < 0)
		return err;
	e = &end->u.session_end;
	o = payload_new(NL_PAYLOAD_SCHEMA_SESSION);
	if (!o)
		return -ENOMEM;
	record_common(&err, o, &ctx->rec, &end->hdr);
	j_bool(&err, o, "authorised", (end->hdr.flags & NL_REC_AUTHORISED) != 0);

	/* Start time: the SESSION_START's own clock if it was set, else
	 * derived from the end record's clock and the duration. */
	end_clock = (end->hdr.flags & NL_REC_CLOCK_SET) != 0;
	if (ctx->start && (ctx->start->hdr.flags & NL_REC_CLOCK_SET))
		j_time(&err, o, "started_at", nl_payload_pen_time_ms(ctx->start->hdr.pen_time));
	else if (end_clock && nl_payload_pen_time_ms(end->hdr.pen_time) >= e->duration_ms)
		j_time(&err, o, "started_at",
		       nl_payload_pen_time_ms(end->hdr.pen_time) - e->duration_ms);
	else
		j_null(&err, o, "started_at");
	if (end_clock)
		j_time(&err, o, "ended_at", nl_payload_pen_time_ms(end->hdr.pen_time));
	else
		j_null(&err, o, "ended_at");

	body_session_end(&err, o, e);

	if (ctx->start) {
		x = j_obj(&err, o, "limits");
		if (x) {
			const struct nl_rec_session_start *s = &ctx->start->u.session_start;

			j_hash(&err, x, "limits_hash", s->limits_hash);
			j_name(&err, x, "source", limit_source_name(s->limit_source));
			j_num(&err, x, "lifetime_s", s->lifetime_s);
		}
	} else {
		j_null(&err, o, "limits");
	}

	if (ctx->cartridge || ctx->start) {
		x = j_obj(&err, o, "cartridge");
		if (x) {
			const struct nl_rec_cartridge *c = ctx->cartridge;

			j_uid(&err, x, "uid",
			      c ? c->uid : ctx->start->u.session_start.cartridge_uid);
			j_str(&err, x, "lot", c && c->lot[0] ? c->lot : NULL);
			if (c) {
				j_num(&err, x, "needle_count", c->needle_count);
				j_mm(&err, x, "needle_length_mm", c->needle_length_um);
			} else {
				j_null(&err, x, "needle_count");
				j_null(&err, x, "needle_length_mm");
			}
		}
	} else {
		j_null(&err, o, "cartridge");
	}
	session_enforcement(&err, o, ctx);
	return payload_done(err, o, ret);
}

/* ---- alerts ---------------------------------------------------------------------- */

int nl_payload_alert(const struct nl_payload_alert *a, cJSON **ret)
{
	int err = 0;
	cJSON *o;

	if (!a || !ret || !serial_ok(a->serial) || !rule_id_ok(a->rule) || !a->message ||
	    !a->alert_id || !a->alert_id[0] || strlen(a->alert_id) > 128)
		return -EINVAL;
	o = payload_new(NL_PAYLOAD_SCHEMA_ALERT);
	if (!o)
		return -ENOMEM;
	j_str(&err, o, "alert_id", a->alert_id);
	j_str(&err, o, "serial", a->serial);
	j_time(&err, o, "at", a->at_ms);
	j_str(&err, o, "rule", a->rule);
	j_name(&err, o, "severity", severity_name(a->severity));
	j_name(&err, o, "action", action_name(a->action));
	j_name(&err, o, "result", action_result_name(a->result));
	j_zone(&err, o, "zone", a->zone);
	j_opt_u32(&err, o, "session_id", a->session_id);
	j_str(&err, o, "record_id", a->record_id);
	j_measure(&err, o, "measured", "threshold", a->unit, a->measured, a->threshold);
	j_str(&err, o, "message", a->message);
	return payload_done(err, o, ret);
}

/* ---- responses -------------------------------------------------------------------- */

int nl_payload_response(const struct nl_payload_response *r, cJSON **ret)
{
	cJSON *result = r ? r->result : NULL;
	int err = 0;
	cJSON *o, *x;

	if (!r || !ret || !serial_ok(r->serial) || !r->op || !r->op[0] ||
	    !nl_payload_status_name(r->status) ||
	    (r->transaction && r->transaction[0] && !ident_ok(r->transaction)) ||
	    (r->error_code && !rule_id_ok(r->error_code)) ||
	    (r->failed_step && !rule_id_ok(r->failed_step))) {
		cJSON_Delete(result);
		return -EINVAL;
	}
	switch (r->status) {
	case NL_PAYLOAD_STATUS_OK:
	case NL_PAYLOAD_STATUS_APPLIED:
		break;
	case NL_PAYLOAD_STATUS_BLOCKED:
		if (!r->block_count || !r->blocks)
			err = -EINVAL;
		break;
	case NL_PAYLOAD_STATUS_FAILED:
		if (!r->error_code || !r->error_message || !r->failed_step)
			err = -EINVAL;
		break;
	case NL_PAYLOAD_STATUS_ERROR:
		if (!r->error_code || !r->error_message)
			err = -EINVAL;
		break;
	case NL_PAYLOAD_STATUS_COUNT:
		err = -EINVAL;
		break;
	}
	if (err < 0) {
		cJSON_Delete(result);
		return err;
	}
	o = payload_new(NL_PAYLOAD_SCHEMA_RESPONSE);
	if (!o) {
		cJSON_Delete(result);
		return -ENOMEM;
	}
	j_str(&err, o, "serial", r->serial);
	j_str(&err, o, "op", r->op);
	/* "" as well as NULL: the parse error leaves an empty transaction
	 * when there was none to echo. */
	j_str(&err, o, "transaction", r->transaction && r->transaction[0] ? r->transaction : NULL);
	j_name(&err, o, "status", nl_payload_status_name(r->status));
	j_time(&err, o, "at", r->at_ms);
	if (r->status == NL_PAYLOAD_STATUS_OK || r->status == NL_PAYLOAD_STATUS_APPLIED) {
		j_add(&err, o, "result", result ? result : cJSON_CreateObject());
		result = NULL;
	}
	if (r->status == NL_PAYLOAD_STATUS_FAILED || r->status == NL_PAYLOAD_STATUS_ERROR) {
		x = j_obj(&err, o, "error");
		if (x) {
			j_str(&err, x, "code", r->error_code);
			j_str(&err, x, "message", r->error_message);
			j_str(&err, x, "field",
			      r->error_field && r->error_field[0] ? r->error_field : NULL);
			if (r->status == NL_PAYLOAD_STATUS_FAILED)
				j_str(&err, x, "step", r->failed_step);
		}
	}
	if (r->status == NL_PAYLOAD_STATUS_BLOCKED) {
		x = j_arr(&err, o, "blocked_by");
		for (size_t i = 0; x && err >= 0 && i < r->block_count; i++) {
			const struct nl_payload_block *b = &r->blocks[i];
			cJSON *bo;

			if (!rule_id_ok(b->rule) || !b->message) {
				err = -EINVAL;
				break;
			}
			bo = j_push_obj(&err, x);
			if (!bo)
				break;
			j_str(&err, bo, "rule", b->rule);
			j_zone(&err, bo, "zone", b->zone);
			j_measure(&err, bo, "value", "threshold", b->unit, b->value, b->threshold);
			j_str(&err, bo, "message", b->message);
		}
	}
	cJSON_Delete(result);
	return payload_done(err, o, ret);
}

/* ---- op results ------------------------------------------------------------------ */

int nl_payload_result_set_time(uint32_t previous_pen_s, int64_t pen_time_ms, cJSON **ret)
{
	int err = 0;
	cJSON *o;

	if (!ret)
		return -EINVAL;
	o = cJSON_CreateObject();
	if (!o)
		return -ENOMEM;
	j_num(&err, o, "previous_pen_s", previous_pen_s);
	j_time(&err, o, "pen_time", pen_time_ms);
	return payload_done(err, o, ret);
}

/* A result of one boolean member. */
static int result_bool(const char *key, bool v, cJSON **ret)
{
	int err = 0;
	cJSON *o;

	if (!ret)
		return -EINVAL;
	o = cJSON_CreateObject();
	if (!o)
		return -ENOMEM;
	j_bool(&err, o, key, v);
	return payload_done(err, o, ret);
}

int nl_payload_result_locked(bool locked, cJSON **ret)
{
	return result_bool("locked", locked, ret);
}

int nl_payload_result_released(bool released, cJSON **ret)
{
	return result_bool("released", released, ret);
}

int nl_payload_result_zone(unsigned zone, cJSON **ret)
{
	int err = 0;
	cJSON *o;

	if (!ret)
		return -EINVAL;
	if (!nl_zone_valid(zone))
		return -ERANGE;
	o = cJSON_CreateObject();
	if (!o)
		return -ENOMEM;
	j_zone(&err, o, "zone", zone);
	return payload_done(err, o, ret);
}

int nl_payload_result_session(uint32_t session_id, cJSON **ret)
{
	int err = 0;
	cJSON *o;

	if (!ret)
		return -EINVAL;
	if (session_id == 0)
		return -ERANGE;
	o = cJSON_CreateObject();
	if (!o)
		return -ENOMEM;
	j_num(&err, o, "session_id", session_id);
	return payload_done(err, o, ret);
}

int nl_payload_result_state(cJSON *pen_state, cJSON **ret)
{
	int err = 0;
	cJSON *o;

	if (!ret || !pen_state) {
		cJSON_Delete(pen_state);
		return -EINVAL;
	}
	o = cJSON_CreateObject();
	if (!o) {
		cJSON_Delete(pen_state);
		return -ENOMEM;
	}
	j_add(&err, o, "state", pen_state);
	return payload_done(err, o, ret);
}

int nl_payload_result_authorise(uint32_t session_id, uint32_t limits_hash,
				const struct nl_limit_set *set, cJSON **ret)
{
	int err = 0;
	cJSON *o, *l;

	if (!ret || !set)
		return -EINVAL;
	if (session_id == 0)
		return -ERANGE;
	o = cJSON_CreateObject();
	if (!o)
		return -ENOMEM;
	j_hash(&err, o, "limits_hash", limits_hash);
	j_num(&err, o, "session_id", session_id);
	l = j_obj(&err, o, "limits");
	if (l)
		limit_set_members(&err, l, set);
	return payload_done(err, o, ret);
}

/* ---- request parser ----------------------------------------------------------------- */

struct parser {
	struct nl_payload_parse_error *e;
	int rc;
};

static int perr(struct parser *p, enum nl_payload_req_error code, const char *field,
		const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static int perr(struct parser *p, enum nl_payload_req_error code, const char *field,
		const char *fmt, ...)
{
	static const int rcs[NL_PAYLOAD_REQ_ERROR_COUNT] = {
		[NL_PAYLOAD_REQ_MALFORMED] = -EBADMSG,
		[NL_PAYLOAD_REQ_UNKNOWN_OP] = -EOPNOTSUPP,
		[NL_PAYLOAD_REQ_BAD_SCHEMA] = -EPROTO,
		[NL_PAYLOAD_REQ_MISSING_FIELD] = -ENOENT,
		[NL_PAYLOAD_REQ_WRONG_TYPE] = -EINVAL,
		[NL_PAYLOAD_REQ_OUT_OF_RANGE] = -ERANGE,
		[NL_PAYLOAD_REQ_UNKNOWN_FIELD] = -E2BIG,
	};
	va_list ap;

	p->e->code = (uint8_t)code;
	snprintf(p->e->field, sizeof(p->e->field), "%s", field ? field : "");
	va_start(ap, fmt);
	vsnprintf(p->e->message, sizeof(p->e->message), fmt, ap);
	va_end(ap);
	p->rc = rcs[code];
	return p->rc;
}

/* Child path "parent.key" or "key". */
static void path_join(char *buf, size_t size, const char *parent, const char *key)
{
	if (parent && parent[0])
		snprintf(buf, size, "%s.%s", parent, key);
	else
		snprintf(buf, size, "%s", key);
}

static const char *json_type_name(const cJSON *j)
{
	if (cJSON_IsObject(j))
		return "object";
	if (cJSON_IsArray(j))
		return "array";
	if (cJSON_IsString(j))
		return "string";
	if (cJSON_IsNumber(j))
		return "number";
	if (cJSON_IsBool(j))
		return "boolean";
	if (cJSON_IsNull(j))
		return "null";
	return "invalid";
}

/* Every member of obj must be in keys (NULL terminated), once. */
static int check_members(struct parser *p, const cJSON *obj, const char *path,
			 const char *const *keys)
{
	char f[96];

	for (const cJSON *c = obj->child; c; c = c->next) {
		bool known = false;

		path_join(f, sizeof(f), path, c->string ? c->string : "");
		for (const char *const *k = keys; *k; k++)
			if (c->string && strcmp(*k, c->string) == 0)
				known = true;
		if (!known)
			return perr(p, NL_PAYLOAD_REQ_UNKNOWN_FIELD, f, "%s: unknown member", f);
		for (const cJSON *d = obj->child; d != c; d = d->next)
			if (strcmp(d->string, c->string) == 0)
				return perr(p, NL_PAYLOAD_REQ_MALFORMED, f, "%s: duplicate member",
					    f);
	}
	return 0;
}

/* Looks a member up; missing is an error only when required. *ret is
 * NULL for an absent optional member. A JSON null counts as present and
 * fails the type check. */
static int member(struct parser *p, const cJSON *obj, const char *path, const char *key,
		  bool required, const cJSON **ret)
{
	char f[96];
	const cJSON *c = cJSON_GetObjectItemCaseSensitive(obj, key);

	if (!c && required) {
		path_join(f, sizeof(f), path, key);
		return perr(p, NL_PAYLOAD_REQ_MISSING_FIELD, f, "%s: required", f);
	}
	*ret = c;
	return 0;
}

static int want_type(struct parser *p, const cJSON *c, const char *f, int type,
		     const char *want)
{
	if ((c->type & 0xFF) != type &&
	    !(type == cJSON_True && (c->type & 0xFF) == cJSON_False))
		return perr(p, NL_PAYLOAD_REQ_WRONG_TYPE, f, "%s: expected %s, got %s", f, want,
			    json_type_name(c));
	return 0;
}

/* Identifier: 1..NL_PAYLOAD_ID_MAX of [A-Za-z0-9._:@-]. */
static int get_id(struct parser *p, const cJSON *c, const char *f, char *out)
{
	size_t n;

	if (want_type(p, c, f, cJSON_String, "string") < 0)
		return p->rc;
	n = strlen(c->valuestring);
	if (n == 0 || n > NL_PAYLOAD_ID_MAX)
		return perr(p, NL_PAYLOAD_REQ_OUT_OF_RANGE, f, "%s: length must be 1..%d", f,
			    NL_PAYLOAD_ID_MAX);
	for (size_t i = 0; i < n; i++) {
		char ch = c->valuestring[i];

		if (!ident_char(ch))
			return perr(p, NL_PAYLOAD_REQ_OUT_OF_RANGE, f,
				    "%s: only A-Z a-z 0-9 . _ : @ - allowed", f);
	}
	memcpy(out, c->valuestring, n + 1);
	return 0;
}

/* Well-formed UTF-8 (no overlongs, surrogates or code points past
 * U+10FFFF): text is stored and may be echoed into other payloads. */
static bool utf8_ok(const unsigned char *s, size_t n)
{
	size_t i = 0;

	while (i < n) {
		unsigned char c = s[i];
		size_t len;
		uint32_t cp;

		if (c < 0x80) {
			i++;
			continue;
		}
		if (c >= 0xC2 && c <= 0xDF) {
			len = 2;
			cp = c & 0x1F;
		} else if (c >= 0xE0 && c <= 0xEF) {
			len = 3;
			cp = c & 0x0F;
		} else if (c >= 0xF0 && c <= 0xF4) {
			len = 4;
			cp = c & 0x07;
		} else {
			return false;
		}
		if (n - i < len)
			return false;
		for (size_t k = 1; k < len; k++) {
			if ((s[i + k] & 0xC0) != 0x80)
				return false;
			cp = (cp << 6) | (s[i + k] & 0x3F);
		}
		if ((len == 3 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) ||
		    (len == 4 && (cp < 0x10000 || cp > 0x10FFFF)))
			return false;
		i += len;
	}
	return true;
}

/* Free text: 1..NL_PAYLOAD_TEXT_MAX bytes of UTF-8, no control characters. */
static int get_text(struct parser *p, const cJSON *c, const char *f, char *out)
{
	size_t n;

	if (want_type(p, c, f, cJSON_String, "string") < 0)
		return p->rc;
	n = strlen(c->valuestring);
	if (n == 0 || n > NL_PAYLOAD_TEXT_MAX)
		return perr(p, NL_PAYLOAD_REQ_OUT_OF_RANGE, f, "%s: length must be 1..%d bytes",
			    f, NL_PAYLOAD_TEXT_MAX);
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)c->valuestring[i] < 0x20 || c->valuestring[i] == 0x7f)
			return perr(p, NL_PAYLOAD_REQ_OUT_OF_RANGE, f,
				    "%s: control characters not allowed", f);
	if (!utf8_ok((const unsigned char *)c->valuestring, n))
		return perr(p, NL_PAYLOAD_REQ_OUT_OF_RANGE, f, "%s: not valid UTF-8", f);
	memcpy(out, c->valuestring, n + 1);
	return 0;
}

static int get_uint(struct parser *p, const cJSON *c, const char *f, uint32_t min, uint32_t max,
		    uint32_t *out)
{
	double v;

	if (want_type(p, c, f, cJSON_Number, "integer") < 0)
		return p->rc;
	v = c->valuedouble;
	/* Range first: casting an out-of-range double is undefined. */
	if (v < (double)min || v > (double)max)
		return perr(p, NL_PAYLOAD_REQ_OUT_OF_RANGE, f, "%s: must be %" PRIu32 "..%" PRIu32,
			    f, min, max);
	if (v != (double)(uint32_t)v)
		return perr(p, NL_PAYLOAD_REQ_WRONG_TYPE, f, "%s: expected integer", f);
	*out = (uint32_t)v;
	return 0;
}

static int get_bool(struct parser *p, const cJSON *c, const char *f, bool *out)
{
	if (want_type(p, c, f, cJSON_True, "boolean") < 0)
		return p->rc;
	*out = cJSON_IsTrue(c);
	return 0;
}

/* A name out of a table: the index in first..end-1 whose name matches. */
static int get_enum(struct parser *p, const cJSON *c, const char *f,
		    const char *(*name)(unsigned), unsigned first, unsigned end, uint8_t *out)
{
	if (want_type(p, c, f, cJSON_String, "string") < 0)
		return p->rc;
	for (unsigned i = first; i < end; i++) {
		const char *n = name(i);

		if (n && strcmp(n, c->valuestring) == 0) {
			*out = (uint8_t)i;
			return 0;
		}
	}
	return perr(p, NL_PAYLOAD_REQ_OUT_OF_RANGE, f, "%s: unknown value \"%.40s\"", f,
		    c->valuestring);
}

static const char *role_name_u(unsigned v)
{
	return nl_payload_role_name((enum nl_payload_role)v);
}

static const char *zone_name_u(unsigned v)
{
	return nl_zone_name(v);
}

static const char *lock_reason_u(unsigned v)
{
	return nl_lock_reason_name(v);
}

static const char *ci_name_u(unsigned v)
{
	return v < NL_PAYLOAD_CI_COUNT ? ci_names[v] : NULL;
}

static const char *skin_type_u(unsigned v)
{
	return v >= 1 && v <= 6 ? skin_type_names[v - 1] : NULL;
}

static int digits(const char *s, int n, int *out)
{
	int v = 0;

	for (int i = 0; i < n; i++) {
		if (!isdigit((unsigned char)s[i]))
			return -1;
		v = v * 10 + (s[i] - '0');
	}
	*out = v;
	return 0;
}

/* "YYYY-MM-DDTHH:MM:SS[.mmm]Z" -> Unix ms; -1 when it is not one. */
static int parse_time(const char *s, int64_t *out)
{
	int y, mo, d, h, mi, sec, ms = 0;
	size_t n = strlen(s);
	struct tm tm = { 0 }, chk;
	time_t t;

	if (n != 20 && n != 24)
		return -1;
	if (s[4] != '-' || s[7] != '-' || s[10] != 'T' || s[13] != ':' || s[16] != ':' ||
	    s[n - 1] != 'Z')
		return -1;
	if (digits(s, 4, &y) || digits(s + 5, 2, &mo) || digits(s + 8, 2, &d) ||
	    digits(s + 11, 2, &h) || digits(s + 14, 2, &mi) || digits(s + 17, 2, &sec))
		return -1;
	if (n == 24 && (s[19] != '.' || digits(s + 20, 3, &ms)))
		return -1;
	if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 59)
		return -1;
	tm.tm_year = y - 1900;
	tm.tm_mon = mo - 1;
	tm.tm_mday = d;
	tm.tm_hour = h;
	tm.tm_min = mi;
	tm.tm_sec = sec;
	t = timegm(&tm);
	/* timegm normalises 2026-02-30 to March: reject what moved. */
	if (!gmtime_r(&t, &chk) || chk.tm_mday != d || chk.tm_mon != mo - 1)
		return -1;
	*out = (int64_t)t * 1000 + ms;
	return 0;
}

static int parse_operator(struct parser *p, const cJSON *params, const char *path,
			  char *ret_id, uint8_t *ret_role)
{
	static const char *const keys[] = { "id", "role", NULL };
	const cJSON *op = NULL, *c = NULL;
	char f[128], o[96];

	path_join(o, sizeof(o), path, "operator");
	if (member(p, params, path, "operator", true, &op) < 0 ||
	    want_type(p, op, o, cJSON_Object, "object") < 0 || check_members(p, op, o, keys) < 0)
		return p->rc;
	path_join(f, sizeof(f), o, "id");
	if (member(p, op, o, "id", true, &c) < 0 || get_id(p, c, f, ret_id) < 0)
		return p->rc;
	path_join(f, sizeof(f), o, "role");
	if (member(p, op, o, "role", true, &c) < 0 ||
	    get_enum(p, c, f, role_name_u, 0, NL_PAYLOAD_ROLE_COUNT, ret_role) < 0)
		return p->rc;
	return 0;
}

/* Optional lock reason; "none" is not a reason a caller may give. */
static int parse_reason(struct parser *p, const cJSON *params, uint8_t *ret)
{
	const cJSON *c = NULL;

	*ret = NL_LOCK_REASON_OPERATOR;
	if (member(p, params, "params", "reason", false, &c) < 0)
		return p->rc;
	if (c && get_enum(p, c, "params.reason", lock_reason_u, NL_LOCK_REASON_POLICY,
			  NL_LOCK_REASON_END, ret) < 0)
		return p->rc;
	return 0;
}

static int parse_authorise(struct parser *p, const cJSON *params, struct nl_payload_authorise *a)
{
	static const char *const keys[] = { "patient", "operator", "skin_type", "contraindications",
					    "zones", "protocol", "override", NULL };
	static const char *const proto_keys[] = { "scar", "body", NULL };
	static const char *const ovr_keys[] = { "physician_id", "reason", NULL };
	const cJSON *c = NULL, *it = NULL;
	char f[96];
	unsigned i;

	if (check_members(p, params, "params", keys) < 0)
		return p->rc;
	if (member(p, params, "params", "patient", true, &c) < 0 ||
	    get_id(p, c, "params.patient", a->patient) < 0)
		return p->rc;
	if (parse_operator(p, params, "params", a->operator_id, &a->operator_role) < 0)
		return p->rc;
	if (member(p, params, "params", "skin_type", true, &c) < 0 ||
	    get_enum(p, c, "params.skin_type", skin_type_u, 1, 7, &a->skin_type) < 0)
		return p->rc;

	if (member(p, params, "params", "contraindications", true, &c) < 0 ||
	    want_type(p, c, "params.contraindications", cJSON_Array, "array") < 0)
		return p->rc;
	i = 0;
	cJSON_ArrayForEach(it, c) {
		uint8_t bit;

		snprintf(f, sizeof(f), "params.contraindications[%u]", i++);
		if (get_enum(p, it, f, ci_name_u, 0, NL_PAYLOAD_CI_COUNT, &bit) < 0)
			return p->rc;
		if (a->contraindications & (1u << bit))
			return perr(p, NL_PAYLOAD_REQ_OUT_OF_RANGE, f, "%s: listed twice", f);
		a->contraindications |= 1u << bit;
	}

	if (member(p, params, "params", "zones", true, &c) < 0 ||
	    want_type(p, c, "params.zones", cJSON_Array, "array") < 0)
		return p->rc;
	if (cJSON_GetArraySize(c) < 1 || cJSON_GetArraySize(c) > NL_LIMIT_ZONES_MAX)
		return perr(p, NL_PAYLOAD_REQ_OUT_OF_RANGE, "params.zones",
			    "params.zones: 1..%d zones", NL_LIMIT_ZONES_MAX);
	i = 0;
	cJSON_ArrayForEach(it, c) {
		uint8_t z;

		snprintf(f, sizeof(f), "params.zones[%u]", i);
		if (get_enum(p, it, f, zone_name_u, NL_ZONE_FOREHEAD, NL_ZONE_COUNT, &z) < 0)
			return p->rc;
		for (unsigned k = 0; k < i; k++)
			if (a->zones[k] == z)
				return perr(p, NL_PAYLOAD_REQ_OUT_OF_RANGE, f, "%s: listed twice",
					    f);
		a->zones[i++] = z;
	}
	a->zone_count = (uint8_t)i;

	if (member(p, params, "params", "protocol", true, &c) < 0 ||
	    want_type(p, c, "params.protocol", cJSON_Object, "object") < 0 ||
	    check_members(p, c, "params.protocol", proto_keys) < 0)
		return p->rc;
	if (member(p, c, "params.protocol", "scar", true, &it) < 0 ||
	    get_bool(p, it, "params.protocol.scar", &a->scar) < 0)
		return p->rc;
	if (member(p, c, "params.protocol", "body", true, &it) < 0 ||
	    get_bool(p, it, "params.protocol.body", &a->body) < 0)
		return p->rc;

	if (member(p, params, "params", "override", false, &c) < 0)
		return p->rc;
	if (c) {
		if (want_type(p, c, "params.override", cJSON_Object, "object") < 0 ||
		    check_members(p, c, "params.override", ovr_keys) < 0)
			return p->rc;
		if (member(p, c, "params.override", "physician_id", true, &it) < 0 ||
		    get_id(p, it, "params.override.physician_id", a->override_physician_id) < 0)
			return p->rc;
		if (member(p, c, "params.override", "reason", true, &it) < 0 ||
		    get_text(p, it, "params.override.reason", a->override_reason) < 0)
			return p->rc;
		a->has_override = true;
	}
	return 0;
}

static int parse_params(struct parser *p, enum nl_payload_op op, const cJSON *params,
			struct nl_payload_request *r)
{
	static const char *const k_none[] = { NULL };
	static const char *const k_set_time[] = { "time", NULL };
	static const char *const k_lock[] = { "reason", NULL };
	static const char *const k_unlock[] = { "operator", "reason", "reason_text", NULL };
	static const char *const k_set_zone[] = { "zone", NULL };
	static const char *const k_stop[] = { "session_id", NULL };
	static const char *const k_pair[] = { "passkey", "confirm", NULL };
	const cJSON *c = NULL;

	switch (op) {
	case NL_PAYLOAD_OP_SET_TIME:
		if (check_members(p, params, "params", k_set_time) < 0 ||
		    member(p, params, "params", "time", false, &c) < 0)
			return p->rc;
		if (c) {
			int64_t ms;

			if (want_type(p, c, "params.time", cJSON_String, "string") < 0)
				return p->rc;
			if (parse_time(c->valuestring, &ms) < 0)
				return perr(p, NL_PAYLOAD_REQ_OUT_OF_RANGE, "params.time",
					    "params.time: not YYYY-MM-DDTHH:MM:SS[.mmm]Z");
			/* The pen counts u32 seconds from 2000-01-01. */
			if (ms < NL_PEN_EPOCH_UNIX * 1000 ||
			    ms > (NL_PEN_EPOCH_UNIX + (int64_t)UINT32_MAX) * 1000)
				return perr(p, NL_PAYLOAD_REQ_OUT_OF_RANGE, "params.time",
					    "params.time: must be 2000-01-01 .. 2136-02-07");
			r->u.set_time.has_time = true;
			r->u.set_time.unix_ms = ms;
		}
		return 0;
	case NL_PAYLOAD_OP_LOCK:
		if (check_members(p, params, "params", k_lock) < 0)
			return p->rc;
		return parse_reason(p, params, &r->u.lock.reason);
	case NL_PAYLOAD_OP_UNLOCK:
		if (check_members(p, params, "params", k_unlock) < 0 ||
		    parse_operator(p, params, "params", r->u.unlock.operator_id,
				   &r->u.unlock.operator_role) < 0 ||
		    member(p, params, "params", "reason_text", false, &c) < 0)
			return p->rc;
		if (c && get_text(p, c, "params.reason_text", r->u.unlock.reason_text) < 0)
			return p->rc;
		return parse_reason(p, params, &r->u.unlock.reason);
	case NL_PAYLOAD_OP_SET_ZONE:
		if (check_members(p, params, "params", k_set_zone) < 0 ||
		    member(p, params, "params", "zone", true, &c) < 0)
			return p->rc;
		return get_enum(p, c, "params.zone", zone_name_u, NL_ZONE_FOREHEAD, NL_ZONE_COUNT,
				&r->u.set_zone.zone);
	case NL_PAYLOAD_OP_STOP_SESSION:
		if (check_members(p, params, "params", k_stop) < 0 ||
		    member(p, params, "params", "session_id", false, &c) < 0)
			return p->rc;
		if (c)
			return get_uint(p, c, "params.session_id", 1, UINT32_MAX,
					&r->u.stop_session.session_id);
		return 0;
	case NL_PAYLOAD_OP_READ_STATE:
	case NL_PAYLOAD_OP_RELEASE:
		return check_members(p, params, "params", k_none);
	case NL_PAYLOAD_OP_AUTHORISE:
		return parse_authorise(p, params, &r->u.authorise);
	case NL_PAYLOAD_OP_PAIR: {
		const cJSON *k = NULL;

		/* Exactly one of passkey and confirm. */
		if (check_members(p, params, "params", k_pair) < 0 ||
		    member(p, params, "params", "passkey", false, &k) < 0 ||
		    member(p, params, "params", "confirm", false, &c) < 0)
			return p->rc;
		if (k && c)
			return perr(p, NL_PAYLOAD_REQ_OUT_OF_RANGE, "params.confirm",
				    "params.confirm: passkey and confirm are exclusive");
		if (k) {
			r->u.pair.has_passkey = true;
			return get_uint(p, k, "params.passkey", 0, 999999, &r->u.pair.passkey);
		}
		if (!c)
			return perr(p, NL_PAYLOAD_REQ_MISSING_FIELD, "params.passkey",
				    "params.passkey: passkey or confirm is required");
		return get_bool(p, c, "params.confirm", &r->u.pair.confirm);
	}
	case NL_PAYLOAD_OP_COUNT:
		break;
	}
	return perr(p, NL_PAYLOAD_REQ_UNKNOWN_OP, "op", "op: unknown op");
}

int nl_payload_parse_request_ex(const char *op, const char *json, size_t len,
				struct nl_payload_request *ret,
				struct nl_payload_parse_error *ret_err)
{
	static const char *const root_keys[] = { "schema", "transaction", "params", NULL };
	struct nl_payload_parse_error e = { 0 };
	struct parser p = { .e = &e, .rc = 0 };
	struct nl_payload_request r;
	const char *end = NULL;
	const cJSON *c = NULL, *params = NULL;
	cJSON *root = NULL;
	int opi;

	memset(&r, 0, sizeof(r));
	if (!json) {
		perr(&p, NL_PAYLOAD_REQ_MALFORMED, NULL, "empty payload");
		goto out;
	}
	root = cJSON_ParseWithLengthOpts(json, len, &end, false);
	if (!root) {
		perr(&p, NL_PAYLOAD_REQ_MALFORMED, NULL, "not valid JSON (at byte %td)",
		     cJSON_GetErrorPtr() ? cJSON_GetErrorPtr() - json : (ptrdiff_t)0);
		goto out;
	}
	/* Nothing but white space may follow the value. */
	for (const char *q = end; q && q < json + len; q++) {
		if (*q == '\0' && q == json + len - 1)
			break;
		if (!isspace((unsigned char)*q)) {
			perr(&p, NL_PAYLOAD_REQ_MALFORMED, NULL, "trailing data after the JSON value");
			goto out;
		}
	}
	if (!cJSON_IsObject(root)) {
		perr(&p, NL_PAYLOAD_REQ_MALFORMED, NULL, "expected a JSON object, got %s",
		     json_type_name(root));
		goto out;
	}
	/* Read the transaction first so that every error can echo it. */
	c = cJSON_GetObjectItemCaseSensitive(root, "transaction");
	if (cJSON_IsString(c) && get_id(&p, c, "transaction", r.transaction) == 0)
		snprintf(e.transaction, sizeof(e.transaction), "%s", r.transaction);
	p.rc = 0;

	opi = nl_payload_op_from_name(op);
	if (opi < 0) {
		perr(&p, NL_PAYLOAD_REQ_UNKNOWN_OP, "op", "op: unknown op \"%.40s\"", op ? op : "");
		goto out;
	}
	r.op = (uint8_t)opi;

	if (check_members(&p, root, NULL, root_keys) < 0)
		goto out;
	if (member(&p, root, NULL, "schema", true, &c) < 0 ||
	    want_type(&p, c, "schema", cJSON_String, "string") < 0)
		goto out;
	if (strcmp(c->valuestring, NL_PAYLOAD_SCHEMA_REQUEST) != 0) {
		perr(&p, NL_PAYLOAD_REQ_BAD_SCHEMA, "schema", "schema: expected \"%s\"",
		     NL_PAYLOAD_SCHEMA_REQUEST);
		goto out;
	}
	if (member(&p, root, NULL, "transaction", true, &c) < 0 ||
	    get_id(&p, c, "transaction", r.transaction) < 0)
		goto out;
	if (member(&p, root, NULL, "params", true, &params) < 0 ||
	    want_type(&p, params, "params", cJSON_Object, "object") < 0)
		goto out;
	parse_params(&p, (enum nl_payload_op)opi, params, &r);

out:
	cJSON_Delete(root);
	if (p.rc < 0) {
		if (ret_err)
			*ret_err = e;
		return p.rc;
	}
	if (ret)
		*ret = r;
	return 0;
}

int nl_payload_parse_request(const char *op, const char *json, size_t len,
			     struct nl_payload_request *ret, char *err, size_t errlen)
{
	struct nl_payload_parse_error e;
	int r = nl_payload_parse_request_ex(op, json, len, ret, &e);

	if (r < 0 && err && errlen)
		snprintf(err, errlen, "%s", e.message);
	return r;
}
