/* SPDX-License-Identifier: MIT */
/* Scenario files: JSON (cJSON) to struct scenario, with a clear message
 * naming the file and the place of the first problem. */
#include "scenario.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "needlelink/crc.h"
#include "needlelink/record.h"
#include "needlelink/zone.h"

struct pctx {
	const char *path;
	char *err;
	size_t errsize;
};

static const char *const action_names[SCN_ACTION_COUNT] = {
	[SCN_NOTE] = "note",
	[SCN_POWER_ON] = "power_on",
	[SCN_POWER_OFF] = "power_off",
	[SCN_POWER_CYCLE] = "power_cycle",
	[SCN_ZONE] = "zone",
	[SCN_DEPTH] = "depth",
	[SCN_DIAL] = "dial",
	[SCN_SPEED] = "speed",
	[SCN_START_PASS] = "start_pass",
	[SCN_END_PASS] = "end_pass",
	[SCN_PAUSE] = "pause",
	[SCN_RESUME] = "resume",
	[SCN_END_SESSION] = "end_session",
	[SCN_INSERT] = "insert",
	[SCN_REMOVE] = "remove",
	[SCN_SWAP] = "swap",
	[SCN_LINK_DROP] = "link_drop",
	[SCN_BATTERY] = "battery",
	[SCN_CHARGING] = "charging",
	[SCN_CLOCK_DRIFT] = "clock_drift",
	[SCN_CLOCK_JUMP] = "clock_jump",
	[SCN_CORRUPT] = "corrupt",
	[SCN_FAULT] = "fault",
	[SCN_WAIT_ARMED] = "wait_armed",
	[SCN_WAIT_IDLE] = "wait_idle",
	[SCN_AUTHORISE] = "authorise",
	[SCN_STOP_SESSION] = "stop_session",
	[SCN_ACK_ALL] = "ack_all",
	[SCN_MISBEHAVE] = "misbehave",
};

/* Keys each action accepts besides at/after/do/comment. */
static const char *const action_keys[SCN_ACTION_COUNT] = {
	[SCN_NOTE] = "text",
	[SCN_POWER_CYCLE] = "off_s",
	[SCN_ZONE] = "zone",
	[SCN_DEPTH] = "mm",
	[SCN_DIAL] = "mm",
	[SCN_SPEED] = "hz",
	[SCN_INSERT] = "cartridge",
	[SCN_SWAP] = "cartridge",
	[SCN_LINK_DROP] = "seconds",
	[SCN_BATTERY] = "pct",
	[SCN_CHARGING] = "on",
	[SCN_CLOCK_DRIFT] = "ppm",
	[SCN_CLOCK_JUMP] = "seconds",
	[SCN_CORRUPT] = "kind",
	[SCN_FAULT] = "code critical",
	[SCN_WAIT_ARMED] = "timeout_s",
	[SCN_WAIT_IDLE] = "timeout_s",
	[SCN_AUTHORISE] = "session lifetime_s limits",
	[SCN_MISBEHAVE] = "ignore",
};

static const char *const corrupt_names[SCN_CORRUPT_COUNT] = {
	[SCN_CORRUPT_BAD_CRC] = "bad_crc",
	[SCN_CORRUPT_TRUNCATED] = "truncated",
	[SCN_CORRUPT_OVERSIZED] = "oversized",
	[SCN_CORRUPT_GARBAGE] = "garbage",
};

const char *scn_action_name(enum scn_action a)
{
	return (unsigned)a < SCN_ACTION_COUNT ? action_names[a] : "?";
}

__attribute__((format(printf, 3, 4))) static int fail(struct pctx *c, const char *where,
						      const char *fmt, ...)
{
	va_list ap;
	int n;

	n = snprintf(c->err, c->errsize, "%s: %s%s", c->path, where ? where : "",
		     where ? ": " : "");
	if (n < 0 || (size_t)n >= c->errsize)
		return -EINVAL;
	va_start(ap, fmt);
	vsnprintf(c->err + n, c->errsize - (size_t)n, fmt, ap);
	va_end(ap);
	return -EINVAL;
}

static bool key_in(const char *list, const char *key)
{
	size_t n = strlen(key);

	for (const char *p = list; p && *p;) {
		const char *e = strchr(p, ' ');
		size_t len = e ? (size_t)(e - p) : strlen(p);

		if (len == n && strncmp(p, key, n) == 0)
			return true;
		p = e ? e + 1 : NULL;
	}
	return false;
}

static int check_keys(struct pctx *c, const char *where, const cJSON *obj, const char *allowed)
{
	const cJSON *it;

	cJSON_ArrayForEach(it, obj) if (!key_in(allowed, it->string)) return fail(
		c, where, "unknown key \"%s\" (allowed: %s)", it->string, allowed);
	return 0;
}

/* Number at key within [min, max]; absent: def (or an error when required). */
static int get_num(struct pctx *c, const char *where, const cJSON *obj, const char *key, double min,
		   double max, double def, bool required, double *ret)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);

	if (!v) {
		if (required)
			return fail(c, where, "\"%s\" is required", key);
		*ret = def;
		return 0;
	}
	if (!cJSON_IsNumber(v))
		return fail(c, where, "\"%s\" must be a number", key);
	if (!isfinite(v->valuedouble) || v->valuedouble < min || v->valuedouble > max)
		return fail(c, where, "\"%s\" = %g is outside %g..%g", key, v->valuedouble, min,
			    max);
	*ret = v->valuedouble;
	return 0;
}

static int get_bool(struct pctx *c, const char *where, const cJSON *obj, const char *key, bool def,
		    bool *ret)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);

	if (!v) {
		*ret = def;
		return 0;
	}
	if (!cJSON_IsBool(v))
		return fail(c, where, "\"%s\" must be true or false", key);
	*ret = cJSON_IsTrue(v);
	return 0;
}

static int get_str(struct pctx *c, const char *where, const cJSON *obj, const char *key, char *buf,
		   size_t size, bool required)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);

	if (!v) {
		if (required)
			return fail(c, where, "\"%s\" is required", key);
		return 0;
	}
	if (!cJSON_IsString(v))
		return fail(c, where, "\"%s\" must be a string", key);
	if (strlen(v->valuestring) >= size)
		return fail(c, where, "\"%s\" is longer than %zu characters", key, size - 1);
	snprintf(buf, size, "%s", v->valuestring);
	return 0;
}

static uint16_t mm_to_um(double mm)
{
	return (uint16_t)lround(mm * 1000.0);
}

static int parse_zone(struct pctx *c, const char *where, const char *name, uint8_t *ret)
{
	int z = nl_zone_from_name(name);

	if (z <= 0)
		return fail(c, where, "unknown zone \"%s\"", name);
	*ret = (uint8_t)z;
	return 0;
}

static int parse_pen(struct pctx *c, const cJSON *o, struct scenario *s)
{
	struct sim_pen_config *p = &s->pen;
	const char *w = "pen";
	char kind[16] = "motorised";
	const cJSON *clk;
	double d;
	int r;

	if (!cJSON_IsObject(o))
		return fail(c, w, "must be an object");
	r = check_keys(c, w, o,
		       "serial model manufacturer firmware kind depth_min_mm depth_max_mm "
		       "depth_step_mm speed_min_hz speed_max_hz store_capacity live_rate_hz "
		       "depth_sensing rtc battery_pct drain_s_per_pct charge_s_per_pct clock "
		       "clock_drift_ppm notify_burst comment");
	if (r < 0)
		return r;
	if ((r = get_str(c, w, o, "serial", p->serial, sizeof(p->serial), false)) < 0 ||
	    (r = get_str(c, w, o, "model", p->model, sizeof(p->model), false)) < 0 ||
	    (r = get_str(c, w, o, "manufacturer", p->manufacturer, sizeof(p->manufacturer),
			 false)) < 0 ||
	    (r = get_str(c, w, o, "firmware", p->firmware, sizeof(p->firmware), false)) < 0 ||
	    (r = get_str(c, w, o, "kind", kind, sizeof(kind), false)) < 0)
		return r;
	for (const char *q = p->serial; *q; q++)
		if (!((*q >= 'A' && *q <= 'Z') || (*q >= 'a' && *q <= 'z') ||
		      (*q >= '0' && *q <= '9') || *q == '-' || *q == '_'))
			return fail(c, w, "serial \"%s\": only A-Z a-z 0-9 - _ allowed", p->serial);
	if (strcmp(kind, "motorised") == 0)
		p->kind = SIM_PEN_MOTORISED;
	else if (strcmp(kind, "dial") == 0)
		p->kind = SIM_PEN_DIAL;
	else
		return fail(c, w, "kind \"%s\": use \"motorised\" or \"dial\"", kind);
	if ((r = get_num(c, w, o, "depth_max_mm", 0.05, NL_DEPTH_MAX_UM / 1000.0,
			 p->depth_max_um / 1000.0, false, &d)) < 0)
		return r;
	p->depth_max_um = mm_to_um(d);
	if ((r = get_num(c, w, o, "depth_min_mm", 0, d,
			 p->depth_min_um > p->depth_max_um ? 0 : p->depth_min_um / 1000.0, false,
			 &d)) < 0)
		return r;
	p->depth_min_um = mm_to_um(d);
	if ((r = get_num(c, w, o, "depth_step_mm", 0.01, p->depth_max_um / 1000.0,
			 p->depth_step_um / 1000.0, false, &d)) < 0)
		return r;
	p->depth_step_um = mm_to_um(d);
	if ((r = get_num(c, w, o, "speed_max_hz", 1, NL_SPEED_MAX_HZ, p->speed_max_hz, false, &d)) <
	    0)
		return r;
	p->speed_max_hz = (uint16_t)d;
	if ((r = get_num(c, w, o, "speed_min_hz", 1, p->speed_max_hz,
			 p->speed_min_hz > p->speed_max_hz ? p->speed_max_hz : p->speed_min_hz,
			 false, &d)) < 0)
		return r;
	p->speed_min_hz = (uint16_t)d;
	if ((r = get_num(c, w, o, "store_capacity", 8, 4096, p->store_capacity, false, &d)) < 0)
		return r;
	p->store_capacity = (uint16_t)d;
	if ((r = get_num(c, w, o, "live_rate_hz", NL_LIVE_RATE_MIN_HZ, NL_LIVE_RATE_MAX_HZ,
			 p->live_rate_hz, false, &d)) < 0)
		return r;
	p->live_rate_hz = (uint8_t)d;
	if ((r = get_num(c, w, o, "notify_burst", 1, 256, p->notify_burst, false, &d)) < 0)
		return r;
	p->notify_burst = (uint16_t)d;
	if ((r = get_num(c, w, o, "battery_pct", 0, 100, p->battery_pct, false, &d)) < 0)
		return r;
	p->battery_pct = (uint8_t)d;
	if ((r = get_num(c, w, o, "drain_s_per_pct", 0, 86400, p->drain_ms_per_pct / 1000.0, false,
			 &d)) < 0)
		return r;
	p->drain_ms_per_pct = (uint32_t)(d * 1000);
	if ((r = get_num(c, w, o, "charge_s_per_pct", 0, 86400, p->charge_ms_per_pct / 1000.0,
			 false, &d)) < 0)
		return r;
	p->charge_ms_per_pct = (uint32_t)(d * 1000);
	if ((r = get_num(c, w, o, "clock_drift_ppm", -500000, 500000, 0, false, &d)) < 0)
		return r;
	p->clock_ppm = (int32_t)d;
	if ((r = get_bool(c, w, o, "depth_sensing", p->depth_sensing, &p->depth_sensing)) < 0 ||
	    (r = get_bool(c, w, o, "rtc", p->rtc, &p->rtc)) < 0)
		return r;
	clk = cJSON_GetObjectItemCaseSensitive(o, "clock");
	if (!clk || (cJSON_IsString(clk) && strcmp(clk->valuestring, "now") == 0)) {
		s->clock = SCN_CLOCK_NOW;
	} else if (cJSON_IsString(clk) && strcmp(clk->valuestring, "unset") == 0) {
		s->clock = SCN_CLOCK_UNSET;
	} else if (cJSON_IsNumber(clk) && clk->valuedouble >= 1 && clk->valuedouble < 4e9) {
		s->clock = SCN_CLOCK_FIXED;
		s->clock_fixed = (uint32_t)clk->valuedouble;
	} else {
		return fail(c, w, "clock: \"now\", \"unset\" or pen time in seconds since 2000");
	}
	return 0;
}

static int hexval(char ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	if (ch >= 'A' && ch <= 'F')
		return ch - 'A' + 10;
	return -1;
}

static int parse_cartridge(struct pctx *c, const char *name, const cJSON *o,
			   struct scn_cartridge *k)
{
	char where[64], uid[32] = "auto";
	double d;
	int r;

	snprintf(where, sizeof(where), "cartridges.%s", name);
	if (!cJSON_IsObject(o))
		return fail(c, where, "must be an object");
	if (strlen(name) > SCN_NAME_MAX)
		return fail(c, where, "name longer than %d characters", SCN_NAME_MAX);
	r = check_keys(c, where, o, "uid lot expires_in_days needles length_mm unreadable comment");
	if (r < 0)
		return r;
	snprintf(k->name, sizeof(k->name), "%s", name);
	snprintf(k->lot, sizeof(k->lot), "LOT-SIM");
	if ((r = get_str(c, where, o, "uid", uid, sizeof(uid), false)) < 0 ||
	    (r = get_str(c, where, o, "lot", k->lot, sizeof(k->lot), false)) < 0)
		return r;
	for (const char *q = k->lot; *q; q++)
		if (*q < 0x20 || *q > 0x7E)
			return fail(c, where, "lot must be printable ASCII");
	if (strcmp(uid, "auto") == 0) {
		k->auto_uid = true;
	} else {
		if (strlen(uid) != 2 * NL_CARTRIDGE_UID_LEN)
			return fail(c, where, "uid \"%s\": 16 hex digits or \"auto\"", uid);
		for (unsigned i = 0; i < NL_CARTRIDGE_UID_LEN; i++) {
			int hi = hexval(uid[2 * i]), lo = hexval(uid[2 * i + 1]);

			if (hi < 0 || lo < 0)
				return fail(c, where, "uid \"%s\": 16 hex digits or \"auto\"", uid);
			k->uid[i] = (uint8_t)(hi << 4 | lo);
		}
	}
	if ((r = get_num(c, where, o, "expires_in_days", -36500, 36500, 365, false, &d)) < 0)
		return r;
	k->expires_in_days = (int32_t)d;
	if ((r = get_num(c, where, o, "needles", 1, 64, 12, false, &d)) < 0)
		return r;
	k->needles = (uint8_t)d;
	if ((r = get_num(c, where, o, "length_mm", 0.1, NL_DEPTH_MAX_UM / 1000.0, 2.5, false, &d)) <
	    0)
		return r;
	k->length_um = mm_to_um(d);
	return get_bool(c, where, o, "unreadable", false, &k->unreadable);
}

static int zone_cmp(const void *a, const void *b)
{
	const struct nl_zone_limit *x = a, *y = b;

	return (int)x->zone - (int)y->zone;
}

static int parse_limits(struct pctx *c, const char *where, const cJSON *o, struct nl_limit_set *l)
{
	const cJSON *zones, *it;
	char zw[96];
	uint32_t h;
	double d;
	int r;

	memset(l, 0, sizeof(*l));
	l->format = 1;
	if (!cJSON_IsObject(o))
		return fail(c, where, "limits must be an object");
	r = check_keys(
		c, where, o,
		"lifetime_s depth_cap_mm needle_on_warn_s needle_on_lock_s pass_warn pass_lock "
		"zones comment");
	if (r < 0)
		return r;
	if ((r = get_num(c, where, o, "lifetime_s", 1, NL_LIFETIME_MAX_S, 3600, false, &d)) < 0)
		return r;
	l->lifetime_s = (uint32_t)d;
	if ((r = get_num(c, where, o, "depth_cap_mm", 0.001, NL_DEPTH_MAX_UM / 1000.0, 0, true,
			 &d)) < 0)
		return r;
	l->depth_cap_um = mm_to_um(d);
	if ((r = get_num(c, where, o, "needle_on_warn_s", 0, 65535, 0, false, &d)) < 0)
		return r;
	l->needle_on_warn_s = (uint16_t)d;
	if ((r = get_num(c, where, o, "needle_on_lock_s", 0, 65535, 0, false, &d)) < 0)
		return r;
	l->needle_on_lock_s = (uint16_t)d;
	if ((r = get_num(c, where, o, "pass_warn", 0, 255, 0, false, &d)) < 0)
		return r;
	l->pass_warn = (uint8_t)d;
	if ((r = get_num(c, where, o, "pass_lock", 0, 255, 0, false, &d)) < 0)
		return r;
	l->pass_lock = (uint8_t)d;
	zones = cJSON_GetObjectItemCaseSensitive(o, "zones");
	if (zones && !cJSON_IsObject(zones))
		return fail(c, where, "zones must be an object of zone name -> limits");
	cJSON_ArrayForEach(it, zones)
	{
		struct nl_zone_limit *z;

		snprintf(zw, sizeof(zw), "%s.zones.%s", where, it->string);
		if (l->zone_count >= NL_LIMIT_ZONES_MAX)
			return fail(c, zw, "more than %d zones", NL_LIMIT_ZONES_MAX);
		z = &l->zones[l->zone_count++];
		if ((r = parse_zone(c, zw, it->string, &z->zone)) < 0)
			return r;
		if (!cJSON_IsObject(it))
			return fail(c, zw, "must be an object");
		if ((r = check_keys(c, zw, it, "cap_mm pass_warn pass_lock")) < 0)
			return r;
		if ((r = get_num(c, zw, it, "cap_mm", 0.001, NL_DEPTH_MAX_UM / 1000.0,
				 l->depth_cap_um / 1000.0, false, &d)) < 0)
			return r;
		z->depth_cap_um = mm_to_um(d);
		if ((r = get_num(c, zw, it, "pass_warn", 0, 255, l->pass_warn, false, &d)) < 0)
			return r;
		z->pass_warn = (uint8_t)d;
		if ((r = get_num(c, zw, it, "pass_lock", 0, 255, l->pass_lock, false, &d)) < 0)
			return r;
		z->pass_lock = (uint8_t)d;
	}
	qsort(l->zones, l->zone_count, sizeof(l->zones[0]), zone_cmp);
	for (unsigned i = 1; i < l->zone_count; i++)
		if (l->zones[i].zone == l->zones[i - 1].zone)
			return fail(c, where, "zone listed twice");
	if (nl_limit_set_hash(l, &h) < 0)
		return fail(c, where,
			    "not a valid limit set (warn above lock, or a value out of range)");
	return 0;
}

static int parse_event(struct pctx *c, unsigned idx, const cJSON *o, double *t_abs,
		       struct scenario *s, struct scn_event *e)
{
	char where[48], act[32], buf[64];
	const cJSON *at, *after;
	char allowed[160];
	double d, t;
	int r;
	unsigned a;

	snprintf(where, sizeof(where), "timeline[%u]", idx);
	memset(e, 0, sizeof(*e));
	if (!cJSON_IsObject(o))
		return fail(c, where, "must be an object");
	if ((r = get_str(c, where, o, "do", act, sizeof(act), true)) < 0)
		return r;
	for (a = 0; a < SCN_ACTION_COUNT; a++)
		if (strcmp(act, action_names[a]) == 0)
			break;
	if (a == SCN_ACTION_COUNT)
		return fail(c, where, "unknown action \"%s\"", act);
	e->action = (enum scn_action)a;
	snprintf(allowed, sizeof(allowed), "at after do comment %s",
		 action_keys[a] ? action_keys[a] : "");
	if ((r = check_keys(c, where, o, allowed)) < 0)
		return r;
	at = cJSON_GetObjectItemCaseSensitive(o, "at");
	after = cJSON_GetObjectItemCaseSensitive(o, "after");
	if (at && after)
		return fail(c, where, "give \"at\" or \"after\", not both");
	if (at) {
		if ((r = get_num(c, where, o, "at", 0, 1e7, 0, true, &t)) < 0)
			return r;
		if (t < *t_abs)
			return fail(c, where, "\"at\" %g s is before the previous event (%g s)", t,
				    *t_abs);
	} else {
		if ((r = get_num(c, where, o, "after", 0, 1e7, 0, false, &d)) < 0)
			return r;
		t = *t_abs + d;
	}
	e->after_ms = (uint64_t)llround((t - *t_abs) * 1000.0);
	*t_abs = t;

	switch (e->action) {
	case SCN_NOTE:
		return get_str(c, where, o, "text", e->text, sizeof(e->text), true);
	case SCN_POWER_CYCLE:
		r = get_num(c, where, o, "off_s", 0, 1e6, 2, false, &d);
		e->duration_ms = (uint32_t)(d * 1000);
		return r;
	case SCN_ZONE:
		if ((r = get_str(c, where, o, "zone", buf, sizeof(buf), true)) < 0)
			return r;
		{
			uint8_t z = 0;

			r = parse_zone(c, where, buf, &z);
			e->num = z;
		}
		return r;
	case SCN_DEPTH:
	case SCN_DIAL:
		r = get_num(c, where, o, "mm", 0, NL_DEPTH_MAX_UM / 1000.0, 0, true, &d);
		e->num = mm_to_um(d);
		return r;
	case SCN_SPEED:
		r = get_num(c, where, o, "hz", 1, NL_SPEED_MAX_HZ, 0, true, &d);
		if (r >= 0 && (d < s->pen.speed_min_hz || d > s->pen.speed_max_hz))
			return fail(c, where, "hz %g outside the pen's %u..%u", d,
				    s->pen.speed_min_hz, s->pen.speed_max_hz);
		e->num = (int32_t)d;
		return r;
	case SCN_INSERT:
	case SCN_SWAP:
		if ((r = get_str(c, where, o, "cartridge", e->cart, sizeof(e->cart), true)) < 0)
			return r;
		if (!scenario_cartridge(s, e->cart))
			return fail(c, where, "no cartridge named \"%s\" in \"cartridges\"",
				    e->cart);
		return 0;
	case SCN_LINK_DROP:
		r = get_num(c, where, o, "seconds", 0, 1e6, 0, true, &d);
		e->duration_ms = (uint32_t)(d * 1000);
		return r;
	case SCN_BATTERY:
		r = get_num(c, where, o, "pct", 0, 100, 0, true, &d);
		e->num = (int32_t)d;
		return r;
	case SCN_CHARGING:
		return get_bool(c, where, o, "on", true, &e->flag);
	case SCN_CLOCK_DRIFT:
		r = get_num(c, where, o, "ppm", -500000, 500000, 0, true, &d);
		e->num = (int32_t)d;
		return r;
	case SCN_CLOCK_JUMP:
		r = get_num(c, where, o, "seconds", -1e9, 1e9, 0, true, &d);
		e->num = (int32_t)d;
		return r;
	case SCN_CORRUPT:
		strcpy(buf, "bad_crc");
		if ((r = get_str(c, where, o, "kind", buf, sizeof(buf), false)) < 0)
			return r;
		for (a = 0; a < SCN_CORRUPT_COUNT; a++)
			if (strcmp(buf, corrupt_names[a]) == 0)
				break;
		if (a == SCN_CORRUPT_COUNT)
			return fail(c, where,
				    "kind \"%s\": bad_crc, truncated, oversized or garbage", buf);
		e->corrupt = (enum scn_corrupt)a;
		return 0;
	case SCN_FAULT:
		strcpy(buf, "overheat");
		if ((r = get_str(c, where, o, "code", buf, sizeof(buf), false)) < 0)
			return r;
		for (a = 1; a < NL_FAULT_CODE_END; a++)
			if (nl_fault_code_name(a) && strcmp(buf, nl_fault_code_name(a)) == 0)
				break;
		if (a == NL_FAULT_CODE_END)
			return fail(c, where, "unknown fault code \"%s\"", buf);
		e->num = (int32_t)a;
		return get_bool(c, where, o, "critical", false, &e->flag);
	case SCN_WAIT_ARMED:
	case SCN_WAIT_IDLE:
		r = get_num(c, where, o, "timeout_s", 0, 1e7, 600, false, &d);
		e->duration_ms = (uint32_t)(d * 1000);
		return r;
	case SCN_AUTHORISE: {
		const cJSON *lim = cJSON_GetObjectItemCaseSensitive(o, "limits");
		char lw[64];

		if ((r = get_num(c, where, o, "session", 0, 4e9, 0, false, &d)) < 0)
			return r;
		e->session_id = (uint32_t)d;
		if (!lim)
			return fail(c, where, "\"limits\" is required");
		snprintf(lw, sizeof(lw), "%s.limits", where);
		if ((r = parse_limits(c, lw, lim, &e->limits)) < 0)
			return r;
		if (e->limits.depth_cap_um > s->pen.depth_max_um)
			return fail(c, lw,
				    "depth_cap_mm above the pen's factory maximum %.2f mm "
				    "(the pen would refuse it)",
				    s->pen.depth_max_um / 1000.0);
		r = get_num(c, where, o, "lifetime_s", 1, NL_LIFETIME_MAX_S, e->limits.lifetime_s,
			    false, &d);
		e->lifetime_s = (uint32_t)d;
		return r;
	}
	case SCN_MISBEHAVE: {
		static const char *const names[] = { "caps", "clamp", "lock", "passes",
						     "set_limits" };
		const cJSON *ig = cJSON_GetObjectItemCaseSensitive(o, "ignore"), *it;

		if (!cJSON_IsArray(ig))
			return fail(c, where,
				    "\"ignore\" is required: a list of caps, clamp, lock, passes, "
				    "set_limits ([] restores the correct firmware)");
		cJSON_ArrayForEach(it, ig)
		{
			for (a = 0; a < 5; a++)
				if (cJSON_IsString(it) && strcmp(it->valuestring, names[a]) == 0)
					break;
			if (a == 5)
				return fail(c, where, "ignore: unknown item (caps, clamp, lock, "
						      "passes, set_limits)");
			e->num |= (int32_t)(1u << a);
		}
		return 0;
	}
	case SCN_POWER_ON:
	case SCN_POWER_OFF:
	case SCN_START_PASS:
	case SCN_END_PASS:
	case SCN_PAUSE:
	case SCN_RESUME:
	case SCN_END_SESSION:
	case SCN_REMOVE:
	case SCN_STOP_SESSION:
	case SCN_ACK_ALL:
	case SCN_ACTION_COUNT:
		break;
	}
	return 0;
}

static int parse_root(struct pctx *c, const cJSON *root, struct scenario *s)
{
	const cJSON *pen, *carts, *tl, *it;
	double t_abs = 0, d;
	unsigned i;
	int r;

	if (!cJSON_IsObject(root))
		return fail(c, NULL, "top level must be an object");
	r = check_keys(c, NULL, root,
		       "name description pen cartridges timeline loop loop_pause_s comment");
	if (r < 0)
		return r;
	if ((r = get_str(c, NULL, root, "name", s->name, sizeof(s->name), false)) < 0 ||
	    (r = get_str(c, NULL, root, "description", s->description, sizeof(s->description),
			 false)) < 0)
		return r;
	pen = cJSON_GetObjectItemCaseSensitive(root, "pen");
	if (pen && (r = parse_pen(c, pen, s)) < 0)
		return r;
	carts = cJSON_GetObjectItemCaseSensitive(root, "cartridges");
	if (carts) {
		if (!cJSON_IsObject(carts))
			return fail(c, "cartridges", "must be an object of name -> cartridge");
		s->ncarts = (size_t)cJSON_GetArraySize(carts);
		s->carts = calloc(s->ncarts ? s->ncarts : 1, sizeof(*s->carts));
		if (!s->carts)
			return -ENOMEM;
		i = 0;
		cJSON_ArrayForEach(it, carts)
		{
			if ((r = parse_cartridge(c, it->string, it, &s->carts[i++])) < 0)
				return r;
		}
	}
	if ((r = get_bool(c, NULL, root, "loop", false, &s->loop)) < 0)
		return r;
	if ((r = get_num(c, NULL, root, "loop_pause_s", 0, 1e6, 5, false, &d)) < 0)
		return r;
	s->loop_pause_ms = (uint32_t)(d * 1000);
	tl = cJSON_GetObjectItemCaseSensitive(root, "timeline");
	if (!cJSON_IsArray(tl) || cJSON_GetArraySize(tl) == 0)
		return fail(c, "timeline", "a non-empty array of events is required");
	s->nevents = (size_t)cJSON_GetArraySize(tl);
	s->events = calloc(s->nevents, sizeof(*s->events));
	if (!s->events)
		return -ENOMEM;
	i = 0;
	cJSON_ArrayForEach(it, tl)
	{
		if ((r = parse_event(c, i, it, &t_abs, s, &s->events[i])) < 0)
			return r;
		i++;
	}
	return 0;
}

static char *read_file(const char *path, int *ret_err)
{
	FILE *f = fopen(path, "re");
	char *buf = NULL;
	size_t len = 0, cap = 0;

	if (!f) {
		*ret_err = -errno;
		return NULL;
	}
	for (;;) {
		size_t n;

		if (cap - len < 4096) {
			char *nb;

			if (cap > (1u << 22)) {
				*ret_err = -EFBIG;
				goto fail;
			}
			nb = realloc(buf, cap + 8192);
			if (!nb) {
				*ret_err = -ENOMEM;
				goto fail;
			}
			buf = nb;
			cap += 8192;
		}
		n = fread(buf + len, 1, cap - len - 1, f);
		len += n;
		if (n == 0)
			break;
	}
	if (ferror(f)) {
		*ret_err = -EIO;
		goto fail;
	}
	fclose(f);
	buf[len] = '\0';
	return buf;
fail:
	fclose(f);
	free(buf);
	return NULL;
}

static void line_col(const char *text, const char *at, unsigned *ret_line, unsigned *ret_col)
{
	unsigned line = 1, col = 1;

	for (const char *p = text; p < at && *p; p++) {
		if (*p == '\n') {
			line++;
			col = 1;
		} else {
			col++;
		}
	}
	*ret_line = line;
	*ret_col = col;
}

int scenario_load(const char *path, struct scenario **ret, char *err, size_t errsize)
{
	struct pctx c = {.path = path, .err = err, .errsize = errsize};
	struct scenario *s;
	cJSON *root;
	char *text;
	int r = 0;

	text = read_file(path, &r);
	if (!text) {
		snprintf(err, errsize, "%s: cannot read: %s", path, strerror(-r));
		return r;
	}
	root = cJSON_ParseWithOpts(text, NULL, true);
	if (!root) {
		unsigned line, col;
		const char *at = cJSON_GetErrorPtr();

		line_col(text, at ? at : text, &line, &col);
		snprintf(err, errsize, "%s:%u:%u: not valid JSON", path, line, col);
		free(text);
		return -EINVAL;
	}
	s = calloc(1, sizeof(*s));
	if (!s) {
		r = -ENOMEM;
		goto out;
	}
	sim_pen_config_default(&s->pen);
	snprintf(s->path, sizeof(s->path), "%s", path);
	r = parse_root(&c, root, s);
	if (r < 0) {
		if (r == -ENOMEM)
			snprintf(err, errsize, "%s: out of memory", path);
		scenario_free(s);
		goto out;
	}
	*ret = s;
out:
	cJSON_Delete(root);
	free(text);
	return r;
}

int scenario_demo(struct scenario **ret)
{
	static const char demo[] =
		"{\"name\":\"demo\",\"loop\":true,\"loop_pause_s\":20,"
		"\"cartridges\":{\"fresh\":{\"uid\":\"auto\",\"lot\":\"DEMO24\"}},"
		"\"timeline\":["
		"{\"do\":\"insert\",\"cartridge\":\"fresh\"},"
		"{\"do\":\"note\",\"text\":\"waiting for the gateway to authorise a session\"},"
		"{\"do\":\"wait_armed\",\"timeout_s\":3600},"
		"{\"after\":5,\"do\":\"zone\",\"zone\":\"forehead\"},"
		"{\"do\":\"depth\",\"mm\":0.5},{\"do\":\"speed\",\"hz\":120},"
		"{\"after\":2,\"do\":\"start_pass\"},{\"after\":40,\"do\":\"end_pass\"},"
		"{\"after\":5,\"do\":\"start_pass\"},{\"after\":40,\"do\":\"end_pass\"},"
		"{\"after\":5,\"do\":\"zone\",\"zone\":\"cheeks\"},{\"do\":\"depth\",\"mm\":1.25},"
		"{\"after\":2,\"do\":\"start_pass\"},{\"after\":60,\"do\":\"end_pass\"},"
		"{\"after\":5,\"do\":\"start_pass\"},{\"after\":60,\"do\":\"end_pass\"},"
		"{\"after\":5,\"do\":\"zone\",\"zone\":\"chin\"},"
		"{\"after\":2,\"do\":\"start_pass\"},{\"after\":45,\"do\":\"end_pass\"},"
		"{\"after\":5,\"do\":\"end_session\"},"
		"{\"after\":5,\"do\":\"remove\"}]}";
	struct pctx c = {.path = "(built-in demo)"};
	char err[256];
	struct scenario *s;
	cJSON *root;
	int r;

	c.err = err;
	c.errsize = sizeof(err);
	root = cJSON_Parse(demo);
	if (!root)
		return -EINVAL;
	s = calloc(1, sizeof(*s));
	if (!s) {
		cJSON_Delete(root);
		return -ENOMEM;
	}
	sim_pen_config_default(&s->pen);
	snprintf(s->path, sizeof(s->path), "(built-in demo)");
	r = parse_root(&c, root, s);
	cJSON_Delete(root);
	if (r < 0) {
		scenario_free(s);
		return r;
	}
	*ret = s;
	return 0;
}

void scenario_free(struct scenario *s)
{
	if (!s)
		return;
	free(s->carts);
	free(s->events);
	free(s);
}

const struct scn_cartridge *scenario_cartridge(const struct scenario *s, const char *name)
{
	for (size_t i = 0; i < s->ncarts; i++)
		if (strcmp(s->carts[i].name, name) == 0)
			return &s->carts[i];
	return NULL;
}
