/* SPDX-License-Identifier: MIT */
/*
 * The pen's firmware logic: states, depth, passes, cartridges, the limits
 * engine and the records that trace every one of them. The GATT side is in
 * pen-gatt.c. Portable C11; no OS calls.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "needlelink/crc.h"
#include "pen-internal.h"

#define BATTERY_LOW_PCT 15u
#define BATTERY_STOP_PCT 2u

void sim_pen_config_default(struct sim_pen_config *c)
{
	memset(c, 0, sizeof(*c));
	snprintf(c->serial, sizeof(c->serial), "PEN-0001");
	snprintf(c->model, sizeof(c->model), "NL-Sim M1");
	snprintf(c->manufacturer, sizeof(c->manufacturer), "NeedleLink Simulated");
	snprintf(c->firmware, sizeof(c->firmware), "1.0.0");
	c->kind = SIM_PEN_MOTORISED;
	c->depth_min_um = 250;
	c->depth_max_um = 2500;
	c->depth_step_um = 250;
	c->speed_min_hz = 100;
	c->speed_max_hz = 150;
	c->store_capacity = 256;
	c->live_rate_hz = 2;
	c->depth_sensing = true;
	c->rtc = true;
	c->battery_pct = 100;
	c->drain_ms_per_pct = 60000;
	c->charge_ms_per_pct = 30000;
	c->notify_burst = 16;
}

void pen_log(struct sim_pen *p, enum sim_log_level level, const char *fmt, ...)
{
	char line[256];
	va_list ap;
	int n;

	if (!p->plat.log)
		return;
	n = snprintf(line, sizeof(line), "%s: ", p->cfg.serial);
	if (n < 0 || (size_t)n >= sizeof(line))
		n = 0;
	va_start(ap, fmt);
	vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
	va_end(ap);
	p->plat.log(p->plat.ctx, level, line);
}

uint64_t pen_now(struct sim_pen *p)
{
	return p->plat.now_ms(p->plat.ctx);
}

uint32_t pen_time(struct sim_pen *p)
{
	uint64_t el = pen_now(p) - p->clock_ref_ms;
	int64_t adj = (int64_t)el + (int64_t)el * p->clock_ppm / 1000000;

	if (adj < 0)
		adj = 0;
	return p->clock_base + (uint32_t)(adj / 1000);
}

static void clock_rebase(struct sim_pen *p)
{
	p->clock_base = pen_time(p);
	p->clock_ref_ms = pen_now(p);
}

/* ---- limits ------------------------------------------------------------ */

static void factory_set(const struct sim_pen *p, struct nl_limit_set *s, uint16_t cap)
{
	memset(s, 0, sizeof(*s));
	s->format = 1;
	s->lifetime_s = NL_LIFETIME_MAX_S;
	s->depth_cap_um = cap;
}

static void set_limits(struct sim_pen *p, uint8_t source, const struct nl_limit_set *s)
{
	uint32_t h = 0;

	p->set = *s;
	p->limit_source = source;
	if (nl_limit_set_hash(&p->set, &h) < 0)
		h = 0;
	p->hash = h;
}

uint16_t pen_cap(const struct sim_pen *p)
{
	uint16_t cap = nl_limit_set_zone_cap(&p->set, p->zone);

	if (cap > p->cfg.depth_max_um)
		cap = p->cfg.depth_max_um;
	if (p->limit_source == NL_LIMIT_SOURCE_FALLBACK && cap > NL_FALLBACK_CAP_UM)
		cap = NL_FALLBACK_CAP_UM;
	if (pen_cartridge_usable(p) && p->cart.needle_length_um && p->cart.needle_length_um < cap)
		cap = p->cart.needle_length_um;
	return cap;
}

uint32_t pen_remaining_s(struct sim_pen *p)
{
	uint64_t now = pen_now(p);

	if (p->limit_source != NL_LIMIT_SOURCE_SESSION || !p->deadline_ms || now >= p->deadline_ms)
		return 0;
	return (uint32_t)((p->deadline_ms - now + 999) / 1000);
}

static void zone_pass_limits(const struct sim_pen *p, uint8_t *ret_warn, uint8_t *ret_lock)
{
	const struct nl_zone_limit *z = nl_limit_set_find(&p->set, p->zone);

	*ret_warn = z ? z->pass_warn : p->set.pass_warn;
	*ret_lock = z ? z->pass_lock : p->set.pass_lock;
}

bool pen_cartridge_usable(const struct sim_pen *p)
{
	return p->cart_present &&
	       (p->cart_state == NL_CARTRIDGE_NEW || p->cart_state == NL_CARTRIDGE_IN_USE);
}

uint16_t pen_store_reserve(const struct sim_pen *p)
{
	uint16_t cap = sim_store_capacity(p->store);
	uint16_t r = cap / 8;

	return r < 4 ? (cap > 4 ? 4 : cap) : r;
}

bool pen_store_full(const struct sim_pen *p)
{
	return !p->store_ok ||
	       sim_store_capacity(p->store) - sim_store_used(p->store) <= pen_store_reserve(p);
}

/* ---- non-volatile pen state: lock and limit source (10.9) -------------- */

enum {
	NV_VERSION = 1,
};

static void nv_save(struct sim_pen *p)
{
	uint8_t b[4] = {
		NV_VERSION,
		p->limit_source,
		(p->state == NL_PEN_STATE_LOCKED || p->lock_pending) ? p->lock_reason : 0,
		0,
	};

	if (p->store_ok && sim_store_put_state(p->store, b, sizeof(b)) < 0)
		pen_log(p, SIM_LOG_ERR, "non-volatile state not saved");
}

/* ---- records ----------------------------------------------------------- */

static void rec_init(struct sim_pen *p, struct nl_record *r, uint8_t type)
{
	memset(r, 0, sizeof(*r));
	r->hdr.type = type;
	r->hdr.flags = (uint8_t)((p->clock_set ? NL_REC_CLOCK_SET : 0) |
				 (p->session_id && p->authorised ? NL_REC_AUTHORISED : 0));
	r->hdr.session_id = p->session_id;
	r->hdr.pen_time = pen_time(p);
}

static void enter_fault(struct sim_pen *p, uint16_t code);

static int rec_write(struct sim_pen *p, struct nl_record *r)
{
	uint32_t seq = 0;
	int err;

	if (!p->store_ok)
		return -EIO;
	err = sim_store_append(p->store, r, &seq);
	if (err < 0) {
		pen_log(p, SIM_LOG_ERR, "record %s not stored: %s",
			nl_record_type_name(r->hdr.type), strerror(-err));
		/* Never overwrite unacknowledged records (4.3): an event that
		 * cannot be recorded raises the STORE fault code; a failing
		 * flash puts the pen in FAULT. */
		if (err == -ERANGE || err == -ENOMSG || err == -ENOBUFS)
			return err; /* a record the encoder refused: a bug, logged above */
		p->fault_code = NL_FAULT_STORE;
		if (err != -ENOSPC) {
			p->store_ok = false;
			if (p->state != NL_PEN_STATE_FAULT && p->state != NL_PEN_STATE_OFF)
				enter_fault(p, NL_FAULT_STORE);
		}
		return err;
	}
	p->records_written++;
	if (p->plat.record)
		p->plat.record(p->plat.ctx, r);
	pen_log(p, SIM_LOG_INFO, "record seq=%u %s session=%u", seq,
		nl_record_type_name(r->hdr.type), r->hdr.session_id);
	return 0;
}

static void rec_limit(struct sim_pen *p, uint8_t event, uint8_t origin, uint8_t zone,
		      uint16_t value, uint16_t threshold, uint8_t reason)
{
	struct nl_record r;

	rec_init(p, &r, NL_RECORD_LIMIT);
	r.u.limit.event = event;
	r.u.limit.origin = origin;
	r.u.limit.zone = zone;
	r.u.limit.limits_hash = p->hash;
	r.u.limit.value = value;
	r.u.limit.threshold = threshold;
	r.u.limit.reason = reason;
	r.u.limit.remaining_s = pen_remaining_s(p);
	pen_log(p, SIM_LOG_NOTICE, "limit %s (%s) zone=%s value=%u threshold=%u",
		nl_limit_event_name(event), nl_limit_origin_name(origin),
		nl_zone_name(zone) ? nl_zone_name(zone) : "all", value, threshold);
	(void)rec_write(p, &r);
}

static void rec_cartridge(struct sim_pen *p, uint8_t event, uint8_t reject)
{
	struct nl_record r;

	rec_init(p, &r, NL_RECORD_CARTRIDGE);
	r.u.cartridge.event = event;
	r.u.cartridge.reject_reason = reject;
	memcpy(r.u.cartridge.uid, p->cart.uid, NL_CARTRIDGE_UID_LEN);
	memcpy(r.u.cartridge.lot, p->cart.lot, sizeof(r.u.cartridge.lot));
	r.u.cartridge.expiry = p->cart.expiry;
	r.u.cartridge.needle_count = p->cart.needle_count > 64 ? 64 : p->cart.needle_count;
	r.u.cartridge.needle_length_um = p->cart.needle_length_um;
	r.u.cartridge.first_use = p->cart_first_use;
	r.u.cartridge.run_ms = p->cart_run_ms;
	(void)rec_write(p, &r);
}

/* ---- states ------------------------------------------------------------ */

static bool motor_on(const struct sim_pen *p)
{
	return p->state == NL_PEN_STATE_RUNNING;
}

/* Where a pen with no lock goes (1.4): PAUSED once the motor ran in the
 * session, ARMED before, IDLE without a session. */
static enum nl_pen_state rest_state(const struct sim_pen *p)
{
	if (!p->session_id)
		return NL_PEN_STATE_IDLE;
	return p->motor_has_run ? NL_PEN_STATE_PAUSED : NL_PEN_STATE_ARMED;
}

static void segment_begin(struct sim_pen *p)
{
	p->seg_run_ms = 0;
	p->seg_strokes_milli = 0;
	p->seg_status =
		(uint16_t)((p->clamped ? NL_SEG_CLAMPED : 0) |
			   (p->pass_warned ? NL_SEG_PASS_WARN : 0) |
			   (p->time_warned ? NL_SEG_NEEDLE_ON_WARN : 0) |
			   (p->battery <= BATTERY_LOW_PCT ? NL_SEG_BATTERY_LOW : 0) |
			   (p->limit_source == NL_LIMIT_SOURCE_FALLBACK ? NL_SEG_FALLBACK_LIMITS
									: 0));
	if (p->cart_state == NL_CARTRIDGE_NEW) {
		/* First use: from now on this cartridge may never come back. */
		p->cart_state = NL_CARTRIDGE_IN_USE;
		p->cart_first_use = pen_time(p);
		if (p->store_ok)
			(void)sim_store_mark_cartridge(p->store, p->cart.uid);
	}
	p->motor_has_run = true;
	p->state = NL_PEN_STATE_RUNNING;
	pen_log(p, SIM_LOG_INFO, "motor on: zone=%s pass=%u depth=%u um speed=%u Hz",
		nl_zone_name(p->zone) ? nl_zone_name(p->zone) : "none", p->pass, p->depth_set,
		p->speed);
}

/* Ends the motor run with a SEGMENT record; state PAUSED (callers may set
 * another). */
static void segment_end(struct sim_pen *p, uint8_t reason, uint16_t status)
{
	struct nl_record r;

	if (!motor_on(p))
		return;
	p->state = NL_PEN_STATE_PAUSED;
	if (status & NL_SEG_STOPPED_BY_LIMIT)
		p->limit_reached = true;
	rec_init(p, &r, NL_RECORD_SEGMENT);
	r.u.segment.zone = p->zone;
	r.u.segment.pass = p->pass;
	r.u.segment.depth_set_um = p->depth_set;
	r.u.segment.depth_cap_um = pen_cap(p);
	r.u.segment.depth_measured_um = p->cfg.depth_sensing ? p->depth_set : NL_DEPTH_UNKNOWN;
	r.u.segment.speed_hz = p->speed;
	r.u.segment.run_ms = p->seg_run_ms;
	r.u.segment.strokes = (uint32_t)(p->seg_strokes_milli / 1000);
	if (p->cart_present)
		memcpy(r.u.segment.cartridge_uid, p->cart.uid, NL_CARTRIDGE_UID_LEN);
	r.u.segment.status = (uint16_t)((p->seg_status | status) & NL_SEG_ALL);
	r.u.segment.end_reason = reason;
	pen_log(p, SIM_LOG_INFO, "motor off (%s): run %u ms, %u strokes",
		nl_segment_end_name(reason), p->seg_run_ms, r.u.segment.strokes);
	(void)rec_write(p, &r);
}

static void apply_depth(struct sim_pen *p);

/* Back to the factory set, or the set a CLAMP was derived from (7.6). */
static void limits_after_session(struct sim_pen *p)
{
	struct nl_limit_set s;

	if (p->limit_source == NL_LIMIT_SOURCE_SESSION) {
		factory_set(p, &s, p->cfg.depth_max_um);
		set_limits(p, NL_LIMIT_SOURCE_FACTORY, &s);
		p->deadline_ms = 0;
		rec_limit(p, NL_LIMIT_EVENT_APPLIED, NL_LIMIT_ORIGIN_FIRMWARE, NL_ZONE_NONE, 0,
			  s.depth_cap_um, 0);
		nv_save(p);
	} else if (p->clamped_set) {
		set_limits(p, p->base_source, &p->base_set);
		if (p->limit_source == NL_LIMIT_SOURCE_FACTORY)
			rec_limit(p, NL_LIMIT_EVENT_APPLIED, NL_LIMIT_ORIGIN_FIRMWARE, NL_ZONE_NONE,
				  0, p->set.depth_cap_um, 0);
	}
	p->clamped_set = false;
}

static void session_open(struct sim_pen *p, uint32_t id, bool authorised, uint32_t lifetime_s)
{
	struct nl_record rec;

	p->session_id = id;
	p->authorised = authorised;
	p->session_start_ms = pen_now(p);
	p->needle_on_ms = 0;
	p->strokes_milli = 0;
	memset(p->zones, 0, sizeof(p->zones));
	memset(p->pass_lock_override, 0, sizeof(p->pass_lock_override));
	memset(p->zone_locked, 0, sizeof(p->zone_locked));
	p->time_warned = p->time_lock_override = p->pass_warned = false;
	p->motor_has_run = p->limit_reached = p->clamped_set = false;
	p->pass = 0;
	rec_init(p, &rec, NL_RECORD_SESSION_START);
	rec.u.session_start.limits_hash = p->hash;
	rec.u.session_start.limit_source = p->limit_source;
	rec.u.session_start.lifetime_s = lifetime_s;
	if (p->cart_present)
		memcpy(rec.u.session_start.cartridge_uid, p->cart.uid, NL_CARTRIDGE_UID_LEN);
	rec.u.session_start.zone = p->zone;
	pen_log(p, SIM_LOG_NOTICE, "session %u opened (%s)", id,
		authorised ? "authorised" : "unauthorised, by the operator");
	(void)rec_write(p, &rec);
}

static void session_close(struct sim_pen *p, uint8_t reason)
{
	struct nl_record r;
	uint8_t n = 0;

	if (!p->session_id)
		return;
	if (motor_on(p))
		segment_end(p,
			    reason == NL_SESSION_END_BATTERY	? NL_SEGMENT_END_BATTERY
			    : reason == NL_SESSION_END_FAULT	? NL_SEGMENT_END_FAULT
			    : reason == NL_SESSION_END_LIFETIME ? NL_SEGMENT_END_LIMIT
								: NL_SEGMENT_END_SESSION,
			    reason == NL_SESSION_END_LIFETIME ? NL_SEG_STOPPED_BY_LIMIT : 0);
	rec_init(p, &r, NL_RECORD_SESSION_END);
	r.u.session_end.reason = reason;
	r.u.session_end.duration_ms = (uint32_t)(pen_now(p) - p->session_start_ms);
	r.u.session_end.needle_on_ms = p->needle_on_ms;
	r.u.session_end.strokes = (uint32_t)(p->strokes_milli / 1000);
	for (unsigned z = 0; z < NL_ZONE_COUNT && n < NL_SESSION_ZONES_MAX; z++) {
		const struct pen_zone_stats *st = &p->zones[z];
		struct nl_rec_zone_total *t;

		if (!st->passes && !st->needle_on_ms)
			continue;
		t = &r.u.session_end.zones[n++];
		t->zone = (uint8_t)z;
		t->passes = st->passes;
		t->depth_max_um = st->depth_max_um;
		t->depth_mean_um =
			st->needle_on_ms ? (uint16_t)(st->depth_um_ms / st->needle_on_ms) : 0;
		t->needle_on_ms = st->needle_on_ms;
		t->strokes = (uint32_t)(st->strokes_milli / 1000);
	}
	r.u.session_end.zone_count = n;
	pen_log(p, SIM_LOG_NOTICE, "session %u ends (%s): needle-on %u ms, %u strokes",
		p->session_id, nl_session_end_reason_name(reason), p->needle_on_ms,
		r.u.session_end.strokes);
	(void)rec_write(p, &r);
	p->session_id = 0;
	p->authorised = false;
	p->pass_open = false;
	p->pass = 0;
	memset(p->zone_locked, 0, sizeof(p->zone_locked));
	p->limit_reached = false;
	if (reason != NL_SESSION_END_LIFETIME && reason != NL_SESSION_END_POWER_LOSS)
		limits_after_session(p);
	if (p->state == NL_PEN_STATE_ARMED || p->state == NL_PEN_STATE_PAUSED ||
	    p->state == NL_PEN_STATE_RUNNING)
		p->state = NL_PEN_STATE_IDLE;
	apply_depth(p);
}

static void enter_fault(struct sim_pen *p, uint16_t code)
{
	if (motor_on(p))
		segment_end(p, NL_SEGMENT_END_FAULT, 0);
	p->fault_code = code;
	p->lock_pending = p->lock_pending || p->state == NL_PEN_STATE_LOCKED;
	p->state = NL_PEN_STATE_FAULT;
	p->pass_open = false;
	pen_log(p, SIM_LOG_ERR, "fault %s: pen in fault state", nl_fault_code_name(code));
}

/* Pen lock (state LOCKED). */
static void do_lock(struct sim_pen *p, uint8_t reason, uint8_t origin, uint16_t value,
		    uint16_t threshold)
{
	if (p->state == NL_PEN_STATE_LOCKED)
		return;
	if (motor_on(p))
		segment_end(p,
			    origin == NL_LIMIT_ORIGIN_FIRMWARE ? NL_SEGMENT_END_LIMIT
							       : NL_SEGMENT_END_LOCK,
			    origin == NL_LIMIT_ORIGIN_FIRMWARE ? NL_SEG_STOPPED_BY_LIMIT : 0);
	p->pass_open = false;
	p->lock_reason = reason;
	p->lock_value = value;
	p->lock_threshold = threshold;
	if (origin == NL_LIMIT_ORIGIN_FIRMWARE)
		p->limit_reached = true;
	if (p->state == NL_PEN_STATE_FAULT)
		p->lock_pending = true; /* LOCKED once the fault clears */
	else
		p->state = NL_PEN_STATE_LOCKED;
	rec_limit(p, NL_LIMIT_EVENT_LOCK, origin, NL_ZONE_NONE, value, threshold, reason);
	nv_save(p);
}

static bool any_zone_lock(const struct sim_pen *p)
{
	for (unsigned z = 0; z < NL_ZONE_COUNT; z++)
		if (p->zone_locked[z])
			return true;
	return false;
}

/* Lifts the pen lock and every zone lock of the session (8.3.6). Each
 * OVERRIDE record carries UNLOCK's reason, like the UNLOCK record. */
static void do_unlock(struct sim_pen *p, uint8_t reason)
{
	if (p->state == NL_PEN_STATE_LOCKED && p->lock_reason == NL_LOCK_REASON_NEEDLE_ON) {
		p->time_lock_override = true;
		rec_limit(p, NL_LIMIT_EVENT_OVERRIDE, NL_LIMIT_ORIGIN_GATEWAY, NL_ZONE_NONE,
			  p->lock_value, p->lock_threshold, reason);
	}
	for (unsigned z = 0; z < NL_ZONE_COUNT; z++) {
		const struct nl_zone_limit *zl;
		uint8_t lock;

		if (!p->zone_locked[z])
			continue;
		zl = nl_limit_set_find(&p->set, z);
		lock = zl ? zl->pass_lock : p->set.pass_lock;
		p->zone_locked[z] = false;
		p->pass_lock_override[z] = true;
		rec_limit(p, NL_LIMIT_EVENT_OVERRIDE, NL_LIMIT_ORIGIN_GATEWAY, (uint8_t)z,
			  (uint16_t)(lock + 1), lock, reason);
	}
	if (p->state == NL_PEN_STATE_LOCKED)
		p->state = rest_state(p);
	p->lock_reason = NL_LOCK_REASON_NONE;
	p->lock_pending = false;
	rec_limit(p, NL_LIMIT_EVENT_UNLOCK, NL_LIMIT_ORIGIN_GATEWAY, NL_ZONE_NONE, 0, 0, reason);
	nv_save(p);
}

/* Re-evaluates the depth against the cap in force (after a depth, zone,
 * limit or cartridge change). */
static void apply_depth(struct sim_pen *p)
{
	uint16_t cap = pen_cap(p);

	if (p->cfg.kind == SIM_PEN_MOTORISED) {
		bool clamp = p->depth_req > cap && !(p->misbehave & SIM_MISBEHAVE_CAPS);

		p->depth_set = clamp ? cap : p->depth_req;
		if (clamp && (!p->clamped || p->clamp_logged_cap != cap)) {
			rec_limit(p, NL_LIMIT_EVENT_CLAMP, NL_LIMIT_ORIGIN_FIRMWARE, p->zone,
				  p->depth_req, cap, 0);
			p->clamp_logged_cap = cap;
		}
		p->clamped = clamp;
		if (clamp && motor_on(p))
			p->seg_status |= NL_SEG_CLAMPED;
	} else {
		bool over;

		p->depth_set = p->depth_req;
		over = p->depth_set > cap;
		if (over && (!p->dial_over || p->clamp_logged_cap != cap)) {
			rec_limit(p, NL_LIMIT_EVENT_CLAMP, NL_LIMIT_ORIGIN_FIRMWARE, p->zone,
				  p->depth_set, cap, 0);
			p->clamp_logged_cap = cap;
		}
		if (over && !p->dial_over)
			pen_log(p, SIM_LOG_WARNING, "dial %u um above cap %u um: motor held",
				p->depth_set, cap);
		p->dial_over = over;
		if (over && motor_on(p))
			segment_end(p, NL_SEGMENT_END_LIMIT,
				    NL_SEG_DIAL_OVER_CAP | NL_SEG_STOPPED_BY_LIMIT);
	}
}

static void fallback_set(const struct sim_pen *p, struct nl_limit_set *s)
{
	factory_set(p, s,
		    p->cfg.depth_max_um < NL_FALLBACK_CAP_UM ? p->cfg.depth_max_um
							     : NL_FALLBACK_CAP_UM);
}

/* End of the authorisation lifetime (7.6). */
static void lifetime_end(struct sim_pen *p)
{
	struct nl_limit_set s;

	pen_log(p, SIM_LOG_WARNING, "authorisation lifetime ended: fallback limits");
	if (motor_on(p))
		segment_end(p, NL_SEGMENT_END_LIMIT, NL_SEG_STOPPED_BY_LIMIT);
	fallback_set(p, &s);
	set_limits(p, NL_LIMIT_SOURCE_FALLBACK, &s);
	p->deadline_ms = 0;
	p->clamped_set = false;
	rec_limit(p, NL_LIMIT_EVENT_FALLBACK, NL_LIMIT_ORIGIN_FIRMWARE, NL_ZONE_NONE, 0,
		  NL_FALLBACK_CAP_UM, 0);
	session_close(p, NL_SESSION_END_LIFETIME);
	nv_save(p);
	apply_depth(p);
}

/* Accounts the time since the last call, then enforces what depends on it. */
void pen_advance(struct sim_pen *p)
{
	uint64_t now = pen_now(p);
	uint32_t dt = (uint32_t)(now > p->last_ms ? now - p->last_ms : 0);
	bool lock_time = false;

	/* Radio callbacks run at wall time, scenario events at their exact
	 * time: never let the accounting clock go backwards. */
	if (now > p->last_ms)
		p->last_ms = now;
	if (!p->powered)
		return;
	if (motor_on(p) && dt) {
		struct pen_zone_stats *z = &p->zones[p->zone];
		uint32_t lock_ms = p->set.needle_on_lock_s * 1000u;

		/* Stop exactly at the end of the lifetime or at the needle-on
		 * lock, not at the next tick. */
		if (p->limit_source == NL_LIMIT_SOURCE_SESSION && p->deadline_ms &&
		    p->deadline_ms > now - dt && p->deadline_ms < now)
			dt = (uint32_t)(p->deadline_ms - (now - dt));
		if (lock_ms && !p->time_lock_override && p->needle_on_ms + dt >= lock_ms) {
			dt = lock_ms > p->needle_on_ms ? lock_ms - p->needle_on_ms : 0;
			lock_time = true;
		}
		p->seg_run_ms += dt;
		p->needle_on_ms += dt;
		p->cart_run_ms += dt;
		p->seg_strokes_milli += (uint64_t)p->speed * dt;
		p->strokes_milli += (uint64_t)p->speed * dt;
		z->needle_on_ms += dt;
		z->strokes_milli += (uint64_t)p->speed * dt;
		z->depth_um_ms += (uint64_t)p->depth_set * dt;
		if (p->depth_set > z->depth_max_um)
			z->depth_max_um = p->depth_set;
		p->drain_acc_ms += dt;
		while (p->cfg.drain_ms_per_pct && p->drain_acc_ms >= p->cfg.drain_ms_per_pct) {
			p->drain_acc_ms -= p->cfg.drain_ms_per_pct;
			if (p->battery)
				p->battery--;
		}
		if (p->set.needle_on_warn_s && !p->time_warned &&
		    p->needle_on_ms >= p->set.needle_on_warn_s * 1000u) {
			p->time_warned = true;
			p->seg_status |= NL_SEG_NEEDLE_ON_WARN;
			rec_limit(p, NL_LIMIT_EVENT_TIME_WARN, NL_LIMIT_ORIGIN_FIRMWARE,
				  NL_ZONE_NONE, (uint16_t)(p->needle_on_ms / 1000),
				  p->set.needle_on_warn_s, 0);
		}
	}
	if (p->charging && dt) {
		p->charge_acc_ms += dt;
		while (p->cfg.charge_ms_per_pct && p->charge_acc_ms >= p->cfg.charge_ms_per_pct) {
			p->charge_acc_ms -= p->cfg.charge_ms_per_pct;
			if (p->battery < 100)
				p->battery++;
		}
	}
	if (lock_time)
		do_lock(p, NL_LOCK_REASON_NEEDLE_ON, NL_LIMIT_ORIGIN_FIRMWARE,
			(uint16_t)(p->needle_on_ms / 1000), p->set.needle_on_lock_s);
	if (motor_on(p) && p->battery <= BATTERY_STOP_PCT) {
		pen_log(p, SIM_LOG_WARNING, "battery at %u %%: treatment stops", p->battery);
		segment_end(p, NL_SEGMENT_END_BATTERY, NL_SEG_BATTERY_LOW);
		session_close(p, NL_SESSION_END_BATTERY);
	}
	if (motor_on(p) && pen_store_full(p)) {
		/* No treatment goes unrecorded (4.3). */
		pen_log(p, SIM_LOG_WARNING, "record store full: motor stopped");
		segment_end(p, NL_SEGMENT_END_LIMIT, NL_SEG_STOPPED_BY_LIMIT);
	}
	if (p->limit_source == NL_LIMIT_SOURCE_SESSION && p->deadline_ms && now >= p->deadline_ms)
		lifetime_end(p);
}

/* ---- life cycle -------------------------------------------------------- */

int sim_pen_new(struct sim_pen **ret, const struct sim_pen_config *cfg,
		const struct sim_platform *plat)
{
	struct sim_pen *p;
	int r;

	if (!ret || !cfg || !plat || !plat->now_ms || !plat->storage_read ||
	    !plat->storage_append || !plat->storage_sync || !plat->storage_erase ||
	    !plat->random_u32)
		return -EINVAL;
	if (cfg->depth_max_um == 0 || cfg->depth_max_um > NL_DEPTH_MAX_UM ||
	    cfg->depth_min_um > cfg->depth_max_um || cfg->depth_step_um == 0 ||
	    cfg->speed_max_hz == 0 || cfg->speed_max_hz > NL_SPEED_MAX_HZ ||
	    cfg->speed_min_hz > cfg->speed_max_hz || cfg->store_capacity < 8 ||
	    cfg->live_rate_hz < NL_LIVE_RATE_MIN_HZ || cfg->live_rate_hz > NL_LIVE_RATE_MAX_HZ ||
	    cfg->battery_pct > 100 || cfg->notify_burst == 0 || cfg->serial[0] == '\0')
		return -EINVAL;
	p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	p->cfg = *cfg;
	p->plat = *plat;
	r = sim_store_open(&p->store, &p->plat, cfg->store_capacity, cfg->region_bytes);
	if (r < 0) {
		free(p);
		return r;
	}
	p->state = NL_PEN_STATE_OFF;
	p->battery = cfg->battery_pct;
	p->clock_set = cfg->clock_start != 0;
	p->clock_base = cfg->clock_start;
	p->clock_ref_ms = pen_now(p);
	p->clock_ppm = cfg->clock_ppm;
	*ret = p;
	return 0;
}

void sim_pen_free(struct sim_pen *p)
{
	if (!p)
		return;
	sim_store_free(p->store);
	free(p);
}

void sim_pen_set_radio(struct sim_pen *p, const struct sim_radio_ops *ops, void *radio)
{
	p->radio_ops = ops;
	p->radio = radio;
}

const struct sim_pen_config *sim_pen_config(const struct sim_pen *p)
{
	return &p->cfg;
}

int sim_pen_power_on(struct sim_pen *p)
{
	struct nl_limit_set s;
	uint8_t nv[SIM_STORE_STATE_MAX];
	size_t nvlen;
	uint32_t open;
	uint8_t source = NL_LIMIT_SOURCE_FACTORY, lock = 0;
	int r;

	if (p->powered)
		return -EALREADY;
	/* RAM is gone: everything below comes from flash or from reset values. */
	r = sim_store_reload(p->store);
	p->store_ok = r >= 0;
	p->powered = true;
	p->last_ms = pen_now(p);
	p->state = NL_PEN_STATE_IDLE;
	p->lock_reason = 0;
	p->lock_pending = false;
	p->fault_code = 0;
	p->session_id = 0;
	p->authorised = false;
	p->pass_open = false;
	p->pass = 0;
	p->zone = NL_ZONE_NONE;
	p->speed = p->cfg.speed_min_hz;
	p->depth_req = p->depth_set = p->cfg.depth_min_um;
	p->clamped = p->dial_over = false;
	p->live_rate_hz = p->cfg.live_rate_hz;
	/* What the session counted lived in RAM: a session cut by the power
	 * loss is closed with zero totals (its SEGMENT records hold the rest). */
	memset(p->zones, 0, sizeof(p->zones));
	memset(p->pass_lock_override, 0, sizeof(p->pass_lock_override));
	memset(p->zone_locked, 0, sizeof(p->zone_locked));
	p->needle_on_ms = 0;
	p->strokes_milli = 0;
	p->time_warned = p->time_lock_override = p->pass_warned = false;
	p->motor_has_run = p->limit_reached = p->clamped_set = false;
	p->charging = false;
	factory_set(p, &s, p->cfg.depth_max_um);
	set_limits(p, NL_LIMIT_SOURCE_FACTORY, &s);
	p->deadline_ms = 0;
	pen_gatt_reset(p);
	pen_log(p, SIM_LOG_NOTICE, "power on: store epoch %08x, last seq %u, %u unacked%s",
		sim_store_epoch(p->store), sim_store_last_seq(p->store), sim_store_used(p->store),
		r < 0				     ? " (STORE FAILED)"
		: sim_store_recovered_torn(p->store) ? " (torn tail cut)"
						     : "");
	if (r < 0) {
		enter_fault(p, NL_FAULT_STORE);
		return 0;
	}
	nvlen = sim_store_get_state(p->store, nv);
	if (nvlen >= 3 && nv[0] == NV_VERSION) {
		source = nv[1];
		lock = nv[2];
	}
	/* 10.9, in this order: close the cut session, fall back from a session
	 * set (the elapsed time cannot be trusted), note a lost clock. */
	open = sim_store_open_session(p->store);
	if (open) {
		p->session_id = open;
		p->authorised = source == NL_LIMIT_SOURCE_SESSION;
		p->session_start_ms = pen_now(p);
		session_close(p, NL_SESSION_END_POWER_LOSS);
	}
	if (source == NL_LIMIT_SOURCE_SESSION || source == NL_LIMIT_SOURCE_FALLBACK) {
		fallback_set(p, &s);
		set_limits(p, NL_LIMIT_SOURCE_FALLBACK, &s);
		if (source == NL_LIMIT_SOURCE_SESSION) {
			rec_limit(p, NL_LIMIT_EVENT_FALLBACK, NL_LIMIT_ORIGIN_FIRMWARE,
				  NL_ZONE_NONE, 0, NL_FALLBACK_CAP_UM, 0);
			nv_save(p);
		}
	}
	if (!p->cfg.rtc) {
		bool was_set = p->clock_set;
		uint32_t old = pen_time(p);
		struct nl_record rec;

		p->clock_set = false;
		p->clock_base = 0;
		p->clock_ref_ms = pen_now(p);
		if (was_set) {
			rec_init(p, &rec, NL_RECORD_TIME_CHANGE);
			rec.u.time_change.old_time = old;
			rec.u.time_change.new_time = pen_time(p);
			rec.u.time_change.source = NL_TIME_SOURCE_RTC_LOSS;
			(void)rec_write(p, &rec);
		}
	}
	if (lock) {
		/* A lock persists across power cycles until UNLOCK. */
		p->state = NL_PEN_STATE_LOCKED;
		p->lock_reason = lock;
		pen_log(p, SIM_LOG_WARNING, "pen locked (%s) since before the power loss",
			nl_lock_reason_name(lock));
	}
	if (p->cart_present) {
		/* The firmware cannot tell the cartridge stayed attached while it
		 * was off: evaluate it as if inserted now. */
		struct sim_cartridge c = p->cart;

		p->cart_present = false;
		(void)sim_pen_insert_cartridge(p, &c);
	}
	apply_depth(p);
	pen_gatt_flush(p);
	return 0;
}

void sim_pen_power_off(struct sim_pen *p)
{
	if (!p->powered)
		return;
	pen_log(p, SIM_LOG_NOTICE, "power lost (state %s, session %u)", nl_pen_state_name(p->state),
		p->session_id);
	if (p->connected && p->radio_ops && p->radio_ops->disconnect)
		p->radio_ops->disconnect(p->radio);
	p->connected = false;
	p->powered = false;
	p->state = NL_PEN_STATE_OFF;
}

void sim_pen_tick(struct sim_pen *p)
{
	if (!p->powered)
		return;
	pen_advance(p);
	pen_gatt_flush(p);
}

/* ---- operator actions -------------------------------------------------- */

static int refuse(struct sim_pen *p, const char *what, const char *why)
{
	pen_log(p, SIM_LOG_WARNING, "%s refused: %s (state %s)", what, why,
		nl_pen_state_name(p->state));
	pen_gatt_flush(p);
	return -EPERM;
}

static int done(struct sim_pen *p)
{
	pen_gatt_flush(p);
	return 0;
}

int sim_pen_select_zone(struct sim_pen *p, unsigned zone)
{
	pen_advance(p);
	if (!nl_zone_valid(zone))
		return -EINVAL;
	if (p->state != NL_PEN_STATE_IDLE && p->state != NL_PEN_STATE_ARMED &&
	    p->state != NL_PEN_STATE_PAUSED)
		return refuse(p, "zone change", "motor running or pen not ready");
	if (p->zone_locked[zone])
		return refuse(p, "zone change", "zone locked by its pass limit");
	p->zone = (uint8_t)zone;
	p->pass = p->zones[zone].passes;
	p->pass_warned = false;
	pen_log(p, SIM_LOG_INFO, "zone %s, cap %u um", nl_zone_name(zone), pen_cap(p));
	apply_depth(p);
	return done(p);
}

int sim_pen_set_depth(struct sim_pen *p, uint16_t um)
{
	pen_advance(p);
	if (!p->powered)
		return -EPERM;
	if (um > p->cfg.depth_max_um && p->cfg.kind == SIM_PEN_MOTORISED &&
	    !(p->misbehave & SIM_MISBEHAVE_CAPS))
		um = p->cfg.depth_max_um; /* the motor's end stop */
	if (um > NL_DEPTH_MAX_UM)
		return -EINVAL;
	p->depth_req = um;
	pen_log(p, SIM_LOG_INFO, "%s %u um",
		p->cfg.kind == SIM_PEN_DIAL ? "dial at" : "depth set to", um);
	apply_depth(p);
	return done(p);
}

int sim_pen_set_speed(struct sim_pen *p, uint16_t hz)
{
	pen_advance(p);
	if (!p->powered)
		return -EPERM;
	if (hz < p->cfg.speed_min_hz || hz > p->cfg.speed_max_hz)
		return -EINVAL;
	p->speed = hz;
	pen_log(p, SIM_LOG_INFO, "speed %u Hz", hz);
	return done(p);
}

static int motor_checks(struct sim_pen *p, const char *what)
{
	if (!pen_cartridge_usable(p))
		return refuse(p, what, p->cart_present ? "cartridge rejected" : "no cartridge");
	if (p->cfg.kind == SIM_PEN_DIAL && p->dial_over)
		return refuse(p, what, "dial above the cap");
	if (p->battery <= BATTERY_STOP_PCT)
		return refuse(p, what, "battery empty");
	if (pen_store_full(p))
		return refuse(p, what, "record store full");
	if (p->zone_locked[p->zone])
		return refuse(p, what, "zone locked by its pass limit");
	return 0;
}

/* A motor start: every start is a new pass in the zone (7.8). */
int sim_pen_start_pass(struct sim_pen *p)
{
	uint8_t warn, lock;
	uint16_t n;
	int r;

	pen_advance(p);
	if (p->state != NL_PEN_STATE_IDLE && p->state != NL_PEN_STATE_ARMED &&
	    p->state != NL_PEN_STATE_PAUSED)
		return refuse(p, "motor start", "pen locked, faulted, off or running");
	r = motor_checks(p, "motor start");
	if (r < 0)
		return r;
	zone_pass_limits(p, &warn, &lock);
	n = (uint16_t)(p->zones[p->zone].passes + 1);
	if (p->session_id && lock && n > lock && !p->pass_lock_override[p->zone] &&
	    !(p->misbehave & SIM_MISBEHAVE_PASSES)) {
		/* Zone lock: the pen state does not change, other zones stay usable. */
		p->zone_locked[p->zone] = true;
		p->limit_reached = true;
		rec_limit(p, NL_LIMIT_EVENT_LOCK, NL_LIMIT_ORIGIN_FIRMWARE, p->zone, n, lock,
			  NL_LOCK_REASON_PASSES);
		return refuse(p, "motor start", "pass limit of the zone");
	}
	if (!p->session_id) {
		/* The operator opens an unauthorised session (7.7): pen-made ids
		 * have the top bit set. */
		uint32_t id = p->plat.random_u32(p->plat.ctx) | 0x80000000u;

		session_open(p, id, false, 0);
		n = 1;
		if (lock && n > lock)
			return refuse(p, "motor start", "pass limit of the zone");
	}
	p->pass_warned = warn && n == warn;
	if (p->pass_warned)
		rec_limit(p, NL_LIMIT_EVENT_PASS_WARN, NL_LIMIT_ORIGIN_FIRMWARE, p->zone, n, warn,
			  0);
	p->zones[p->zone].passes = n;
	p->pass = n;
	p->pass_open = true;
	segment_begin(p);
	return done(p);
}

int sim_pen_end_pass(struct sim_pen *p)
{
	pen_advance(p);
	if (p->state != NL_PEN_STATE_RUNNING)
		return refuse(p, "motor stop", "motor not running");
	segment_end(p, NL_SEGMENT_END_OPERATOR, 0);
	p->pass_open = false;
	pen_log(p, SIM_LOG_INFO, "pass %u in %s ended", p->pass,
		nl_zone_name(p->zone) ? nl_zone_name(p->zone) : "none");
	return done(p);
}

int sim_pen_pause(struct sim_pen *p)
{
	return sim_pen_end_pass(p);
}

int sim_pen_resume(struct sim_pen *p)
{
	pen_advance(p);
	if (p->state != NL_PEN_STATE_PAUSED)
		return refuse(p, "resume", "not paused");
	return sim_pen_start_pass(p);
}

int sim_pen_end_session(struct sim_pen *p)
{
	pen_advance(p);
	if (!p->session_id)
		return refuse(p, "session end", "no session");
	session_close(p, NL_SESSION_END_STOPPED);
	return done(p);
}

int sim_pen_insert_cartridge(struct sim_pen *p, const struct sim_cartridge *c)
{
	uint8_t reject = NL_REJECT_NONE;

	pen_advance(p);
	if (!p->powered)
		return -EPERM;
	if (p->cart_present)
		return -EBUSY;
	p->cart = *c;
	p->cart.lot[NL_LOT_LEN] = '\0';
	p->cart_present = true;
	p->cart_first_use = 0;
	p->cart_run_ms = 0;
	if (c->unreadable || c->needle_count == 0 || c->needle_count > 64 ||
	    c->needle_length_um == 0 || c->needle_length_um > NL_DEPTH_MAX_UM)
		reject = NL_REJECT_UNREADABLE;
	else if (!p->store_ok || sim_store_cartridge_used(p->store, c->uid))
		reject = NL_REJECT_REUSED;
	else if (p->clock_set && c->expiry <= pen_time(p))
		reject = NL_REJECT_EXPIRED;
	p->cart_reject = reject;
	if (reject == NL_REJECT_UNREADABLE) {
		memset(&p->cart, 0, sizeof(p->cart));
		p->cart.needle_count = 1;
	}
	if (reject) {
		p->cart_state = NL_CARTRIDGE_REJECTED;
		pen_log(p, SIM_LOG_WARNING, "cartridge REJECTED (%s): motor disabled",
			nl_cartridge_reject_name(reject));
		rec_cartridge(p, NL_CARTRIDGE_EVENT_REJECTED, reject);
	} else {
		p->cart_state = NL_CARTRIDGE_NEW;
		pen_log(p, SIM_LOG_INFO, "cartridge inserted: lot %s, %u needles, %u um",
			p->cart.lot, c->needle_count, c->needle_length_um);
		rec_cartridge(p, NL_CARTRIDGE_INSERTED, 0);
	}
	apply_depth(p);
	return done(p);
}

int sim_pen_remove_cartridge(struct sim_pen *p)
{
	pen_advance(p);
	if (!p->powered || !p->cart_present)
		return -ENOENT;
	if (motor_on(p))
		segment_end(p, NL_SEGMENT_END_CARTRIDGE, 0);
	/* A removed cartridge never comes back, used or not. */
	if (p->store_ok && p->cart_reject != NL_REJECT_UNREADABLE)
		(void)sim_store_mark_cartridge(p->store, p->cart.uid);
	rec_cartridge(p, NL_CARTRIDGE_REMOVED, 0);
	pen_log(p, SIM_LOG_INFO, "cartridge removed after %u ms of use", p->cart_run_ms);
	p->cart_present = false;
	p->cart_state = NL_CARTRIDGE_NONE;
	p->cart_reject = 0;
	memset(&p->cart, 0, sizeof(p->cart));
	p->cart_first_use = p->cart_run_ms = 0;
	apply_depth(p);
	return done(p);
}

void sim_pen_set_battery(struct sim_pen *p, uint8_t pct)
{
	pen_advance(p);
	p->battery = pct > 100 ? 100 : pct;
	pen_log(p, SIM_LOG_INFO, "battery %u %%", p->battery);
	if (motor_on(p) && p->battery <= BATTERY_LOW_PCT)
		p->seg_status |= NL_SEG_BATTERY_LOW;
	pen_advance(p);
	pen_gatt_flush(p);
}

void sim_pen_set_charging(struct sim_pen *p, bool charging)
{
	pen_advance(p);
	p->charging = charging;
	pen_log(p, SIM_LOG_INFO, "charger %s", charging ? "connected" : "removed");
	pen_gatt_flush(p);
}

void sim_pen_set_clock_drift(struct sim_pen *p, int32_t ppm)
{
	clock_rebase(p);
	p->clock_ppm = ppm;
	pen_log(p, SIM_LOG_INFO, "clock drift %d ppm", ppm);
}

void sim_pen_clock_jump(struct sim_pen *p, int32_t delta_s)
{
	clock_rebase(p);
	if (delta_s < 0 && (uint32_t)-delta_s > p->clock_base)
		p->clock_base = 0;
	else
		p->clock_base = (uint32_t)((int64_t)p->clock_base + delta_s);
	pen_log(p, SIM_LOG_INFO, "clock jumped %+d s to %u", delta_s, p->clock_base);
}

int sim_pen_fault(struct sim_pen *p, enum nl_fault_code code, enum nl_fault_severity sev,
		  uint32_t detail)
{
	struct nl_record r;

	pen_advance(p);
	if (!p->powered)
		return -EPERM;
	rec_init(p, &r, NL_RECORD_FAULT);
	r.u.fault.code = (uint16_t)code;
	r.u.fault.severity = (uint8_t)sev;
	r.u.fault.detail = detail;
	pen_log(p, SIM_LOG_WARNING, "fault %s severity %u detail %u", nl_fault_code_name(code), sev,
		detail);
	(void)rec_write(p, &r);
	if (sev == NL_FAULT_CRITICAL) {
		session_close(p, NL_SESSION_END_FAULT);
		enter_fault(p, (uint16_t)code);
	}
	return done(p);
}

void sim_pen_get_info(const struct sim_pen *cp, struct sim_pen_info *ret)
{
	struct sim_pen *p = (struct sim_pen *)cp; /* reading the clock is not a change */

	memset(ret, 0, sizeof(*ret));
	ret->state = p->state;
	ret->lock_reason = p->lock_reason;
	ret->session_id = p->session_id;
	ret->zone = p->zone;
	ret->pass = p->pass;
	ret->depth_set_um = p->depth_set;
	ret->depth_request_um = p->depth_req;
	ret->depth_cap_um = pen_cap(p);
	ret->speed_hz = p->speed;
	ret->needle_on_ms = p->needle_on_ms;
	ret->strokes = (uint32_t)(p->strokes_milli / 1000);
	ret->battery_pct = p->battery;
	ret->charging = p->charging;
	ret->clamped = p->clamped;
	ret->dial_over_cap = p->dial_over;
	ret->connected = p->connected;
	ret->limit_source = p->limit_source;
	ret->limits_hash = p->hash;
	ret->remaining_s = pen_remaining_s(p);
	ret->cartridge_state = p->cart_state;
	ret->cartridge_reject = p->cart_reject;
	ret->store_epoch = sim_store_epoch(p->store);
	ret->last_seq = sim_store_last_seq(p->store);
	ret->store_used = sim_store_used(p->store);
	ret->store_capacity = sim_store_capacity(p->store);
	ret->pen_time = pen_time(p);
	ret->clock_set = p->clock_set;
	ret->fault_code = p->fault_code;
	ret->records_written = p->records_written;
	ret->zone_locked = p->zone_locked[p->zone];
	ret->authorised = p->session_id && p->authorised;
}

/* ---- Pen Control Point (decoded request, state already checked) -------- */

static bool set_above_factory(const struct sim_pen *p, const struct nl_limit_set *s)
{
	if (s->depth_cap_um > p->cfg.depth_max_um)
		return true;
	for (unsigned i = 0; i < s->zone_count; i++)
		if (s->zones[i].depth_cap_um > p->cfg.depth_max_um)
			return true;
	return false;
}

static enum nl_cp_result cp_clamp(struct sim_pen *p, uint8_t zone, uint16_t cap, uint32_t *ret_hash)
{
	struct nl_limit_set s = p->set;
	uint16_t prev;

	if (!p->session_id)
		return NL_CP_INVALID_STATE;
	if (zone == NL_ZONE_NONE) {
		prev = s.depth_cap_um;
		if (s.depth_cap_um > cap)
			s.depth_cap_um = cap;
		for (unsigned i = 0; i < s.zone_count; i++)
			if (s.zones[i].depth_cap_um > cap)
				s.zones[i].depth_cap_um = cap;
	} else {
		struct nl_zone_limit *z;
		unsigned i;

		for (i = 0; i < s.zone_count && s.zones[i].zone < zone; i++)
			;
		if (i < s.zone_count && s.zones[i].zone == zone) {
			z = &s.zones[i];
		} else {
			if (s.zone_count >= NL_LIMIT_ZONES_MAX)
				return NL_CP_FAILED;
			memmove(&s.zones[i + 1], &s.zones[i],
				(s.zone_count - i) * sizeof(s.zones[0]));
			s.zone_count++;
			z = &s.zones[i];
			z->zone = zone;
			z->depth_cap_um = s.depth_cap_um;
			z->pass_warn = s.pass_warn;
			z->pass_lock = s.pass_lock;
		}
		prev = z->depth_cap_um;
		/* A clamp only ever lowers. */
		if (z->depth_cap_um > cap)
			z->depth_cap_um = cap;
	}
	if ((zone != NL_ZONE_NONE && prev <= cap) || memcmp(&s, &p->set, sizeof(s)) == 0) {
		/* nothing lowered: no change, no record */
		*ret_hash = p->hash;
		return NL_CP_SUCCESS;
	}
	if (p->misbehave & SIM_MISBEHAVE_CLAMP) {
		/* Fault injection: claim the derived set, keep the old one. */
		if (nl_limit_set_hash(&s, ret_hash) < 0)
			return NL_CP_FAILED;
		pen_log(p, SIM_LOG_WARNING, "misbehaving: CLAMP zone %u to %u um answered, ignored",
			zone, cap);
		return NL_CP_SUCCESS;
	}
	if (!p->clamped_set) {
		p->clamped_set = true;
		p->base_source = p->limit_source;
		p->base_set = p->set;
	}
	set_limits(p, p->limit_source, &s);
	rec_limit(p, NL_LIMIT_EVENT_CLAMP, NL_LIMIT_ORIGIN_GATEWAY, zone, prev, cap, 0);
	apply_depth(p);
	*ret_hash = p->hash;
	return NL_CP_SUCCESS;
}

/* Opcodes that write a record: refused when not even the reserve has room. */
static bool op_writes_record(uint8_t op)
{
	return op == NL_CP_SET_LIMITS || op == NL_CP_AUTHORISE || op == NL_CP_STOP_SESSION ||
	       op == NL_CP_LOCK || op == NL_CP_UNLOCK || op == NL_CP_SET_TIME || op == NL_CP_CLAMP;
}

enum nl_cp_result pen_cp_execute(struct sim_pen *p, const struct nl_cp_req *req,
				 uint32_t *ret_value)
{
	enum nl_cp_result res;
	uint32_t h, value = 0;
	int r;

	pen_advance(p);
	res = nl_cp_allowed(p->state, req->op);
	if (res != NL_CP_SUCCESS)
		return res;
	if (op_writes_record(req->op) &&
	    (!p->store_ok || sim_store_used(p->store) >= sim_store_capacity(p->store)))
		return NL_CP_STORE_FULL;

	switch ((enum nl_cp_op)req->op) {
	case NL_CP_SET_LIMITS:
		if (set_above_factory(p, &req->u.limits))
			return NL_CP_ABOVE_FACTORY;
		if (nl_limit_set_hash(&req->u.limits, &h) < 0)
			return NL_CP_INVALID_PARAMETER;
		if (p->misbehave & SIM_MISBEHAVE_SET_LIMITS) {
			struct nl_limit_set w = req->u.limits;

			w.depth_cap_um = p->cfg.depth_max_um;
			pen_log(p, SIM_LOG_WARNING, "misbehaving: SET_LIMITS stored with cap %u um",
				w.depth_cap_um);
			set_limits(p, NL_LIMIT_SOURCE_SESSION, &w);
		} else {
			set_limits(p, NL_LIMIT_SOURCE_SESSION, &req->u.limits);
		}
		p->deadline_ms = pen_now(p) + (uint64_t)req->u.limits.lifetime_s * 1000u;
		p->clamped_set = false;
		rec_limit(p, NL_LIMIT_EVENT_APPLIED, NL_LIMIT_ORIGIN_GATEWAY, NL_ZONE_NONE, 0,
			  req->u.limits.depth_cap_um, 0);
		nv_save(p);
		apply_depth(p);
		value = p->misbehave & SIM_MISBEHAVE_SET_LIMITS ? h : p->hash;
		break;
	case NL_CP_AUTHORISE:
		if (p->limit_source != NL_LIMIT_SOURCE_SESSION ||
		    req->u.authorise.limits_hash != p->hash)
			return NL_CP_HASH_MISMATCH;
		if (req->u.authorise.session_id == 0 || req->u.authorise.lifetime_s == 0 ||
		    req->u.authorise.lifetime_s > p->set.lifetime_s || pen_remaining_s(p) == 0)
			return NL_CP_INVALID_PARAMETER;
		if (pen_store_full(p))
			return NL_CP_STORE_FULL;
		if (!p->cart_present || p->cart_state != NL_CARTRIDGE_NEW)
			return NL_CP_NO_CARTRIDGE;
		p->deadline_ms = pen_now(p) + (uint64_t)req->u.authorise.lifetime_s * 1000u;
		session_open(p, req->u.authorise.session_id, true, req->u.authorise.lifetime_s);
		p->state = NL_PEN_STATE_ARMED;
		value = p->session_id;
		break;
	case NL_CP_STOP_SESSION:
		if (!p->session_id)
			return NL_CP_INVALID_STATE;
		value = p->session_id;
		session_close(p, NL_SESSION_END_STOPPED);
		break;
	case NL_CP_SET_ZONE:
		if (!nl_zone_valid(req->u.zone))
			return NL_CP_INVALID_PARAMETER;
		if (p->zone_locked[req->u.zone])
			return NL_CP_LOCKED;
		if (sim_pen_select_zone(p, req->u.zone) < 0)
			return NL_CP_INVALID_STATE;
		value = req->u.zone;
		break;
	case NL_CP_LOCK:
		if (req->u.reason < 1 || req->u.reason >= NL_LOCK_REASON_END)
			return NL_CP_INVALID_PARAMETER;
		if (p->misbehave & SIM_MISBEHAVE_LOCK) {
			pen_log(p, SIM_LOG_WARNING, "misbehaving: LOCK answered, ignored");
			break;
		}
		do_lock(p, req->u.reason, NL_LIMIT_ORIGIN_GATEWAY, 0, 0);
		break;
	case NL_CP_UNLOCK:
		if (req->u.reason < 1 || req->u.reason >= NL_LOCK_REASON_END)
			return NL_CP_INVALID_PARAMETER;
		if (p->state != NL_PEN_STATE_LOCKED && !any_zone_lock(p))
			return NL_CP_INVALID_STATE;
		do_unlock(p, req->u.reason);
		break;
	case NL_CP_ACK_RECORDS:
		r = p->store_ok ? sim_store_ack(p->store, req->u.ack.store_epoch, req->u.ack.seq)
				: -EIO;
		if (r == -ESTALE)
			return NL_CP_EPOCH_MISMATCH;
		if (r == -ERANGE)
			return NL_CP_INVALID_PARAMETER;
		if (r < 0)
			return NL_CP_FAILED;
		pen_log(p, SIM_LOG_INFO, "records <= %u acknowledged, %d still stored",
			req->u.ack.seq, r);
		value = (uint32_t)r;
		break;
	case NL_CP_SET_TIME: {
		struct nl_record rec;
		uint32_t old = pen_time(p);

		p->clock_base = req->u.pen_time;
		p->clock_ref_ms = pen_now(p);
		p->clock_set = true;
		rec_init(p, &rec, NL_RECORD_TIME_CHANGE);
		rec.u.time_change.old_time = old;
		rec.u.time_change.new_time = req->u.pen_time;
		rec.u.time_change.source = NL_TIME_SOURCE_GATEWAY;
		pen_log(p, SIM_LOG_INFO, "clock set %u -> %u", old, req->u.pen_time);
		(void)rec_write(p, &rec);
		value = old;
		break;
	}
	case NL_CP_CLAMP:
		return cp_clamp(p, req->u.clamp.zone, req->u.clamp.cap_um, ret_value);
	case NL_CP_SET_LIVE_RATE:
		p->live_rate_hz = req->u.live_rate_hz;
		p->next_live_ms = 0;
		value = p->live_rate_hz;
		break;
	case NL_CP_OP_END:
	case NL_CP_RESPONSE:
		return NL_CP_OP_NOT_SUPPORTED;
	}
	*ret_value = value;
	return NL_CP_SUCCESS;
}

void sim_pen_set_misbehave(struct sim_pen *p, unsigned flags)
{
	p->misbehave = flags;
	pen_log(p, flags ? SIM_LOG_WARNING : SIM_LOG_INFO,
		"fault injection:%s%s%s%s%s%s", flags & SIM_MISBEHAVE_CAPS ? " ignores caps" : "",
		flags & SIM_MISBEHAVE_CLAMP ? " ignores CLAMP" : "",
		flags & SIM_MISBEHAVE_LOCK ? " ignores LOCK" : "",
		flags & SIM_MISBEHAVE_PASSES ? " ignores pass locks" : "",
		flags & SIM_MISBEHAVE_SET_LIMITS ? " stores other limits" : "",
		flags ? "" : " off (correct firmware)");
	apply_depth(p);
}

int sim_pen_service_cp(struct sim_pen *p, const struct nl_cp_req *req, uint32_t *ret_value)
{
	enum nl_cp_result res;
	uint32_t value = 0;

	if (!p->powered)
		return NL_CP_INVALID_STATE;
	res = pen_cp_execute(p, req, &value);
	pen_log(p, res == NL_CP_SUCCESS ? SIM_LOG_INFO : SIM_LOG_WARNING,
		"service port %s -> %s (value %u)", nl_cp_op_name(req->op), nl_cp_result_name(res),
		value);
	pen_gatt_flush(p);
	if (ret_value)
		*ret_value = res == NL_CP_SUCCESS ? value : 0;
	return (int)res;
}
