/* SPDX-License-Identifier: MIT */
/*
 * Treatment records (record.h). Same shape as pdu.c: parse into a local,
 * validate with the encoder's check, copy out on success only.
 */
#include <string.h>

#include "needlelink/record.h"
#include "nl-internal.h"

#define SESSION_START_BODY 18u
#define SESSION_END_BODY 14u
#define ZONE_TOTAL_LEN 15u
#define SEGMENT_BODY 30u
#define CARTRIDGE_BODY 33u
#define LIMIT_BODY 16u
#define FAULT_BODY 8u
#define TIME_CHANGE_BODY 9u

static bool type_known(unsigned t)
{
	return t >= NL_RECORD_SESSION_START && t < NL_RECORD_TYPE_END;
}

static bool depth_ok(uint16_t um)
{
	return um <= NL_DEPTH_MAX_UM;
}

static bool zone_or_none_ok(uint8_t z)
{
	return z < NL_ZONE_COUNT;
}

/* ---- Checks shared by encode and decode -------------------------------- */

static int header_check(const struct nl_record_header *h)
{
	if (!type_known(h->type))
		return -ENOMSG;
	if (h->seq == 0)
		return -ERANGE;
	return 0;
}

static int session_start_check(const struct nl_rec_session_start *s)
{
	if (s->limit_source >= NL_LIMIT_SOURCE_COUNT)
		return -ERANGE;
	if (s->lifetime_s > NL_LIFETIME_MAX_S)
		return -ERANGE;
	if (!zone_or_none_ok(s->zone))
		return -ERANGE;
	return 0;
}

static int session_end_check(const struct nl_rec_session_end *s)
{
	int prev = -1; /* zone 0 totals the runs with no zone selected */

	if (s->reason < NL_SESSION_END_STOPPED || s->reason >= NL_SESSION_END_REASON_END)
		return -ERANGE;
	if (s->zone_count > NL_SESSION_ZONES_MAX)
		return -ERANGE;
	for (unsigned i = 0; i < s->zone_count; i++) {
		const struct nl_rec_zone_total *z = &s->zones[i];

		if (!zone_or_none_ok(z->zone) || (int)z->zone <= prev)
			return -ERANGE;
		if (!depth_ok(z->depth_max_um) || !depth_ok(z->depth_mean_um))
			return -ERANGE;
		prev = z->zone;
	}
	return 0;
}

static int segment_check(const struct nl_rec_segment *s)
{
	if (!zone_or_none_ok(s->zone))
		return -ERANGE;
	if (!depth_ok(s->depth_set_um) || !depth_ok(s->depth_cap_um))
		return -ERANGE;
	if (!depth_ok(s->depth_measured_um) && s->depth_measured_um != NL_DEPTH_UNKNOWN)
		return -ERANGE;
	if (s->speed_hz > NL_SPEED_MAX_HZ)
		return -ERANGE;
	if (s->end_reason < NL_SEGMENT_END_OPERATOR || s->end_reason >= NL_SEGMENT_END_END)
		return -ERANGE;
	return 0;
}

static int cartridge_check(const struct nl_rec_cartridge *c)
{
	if (c->event < NL_CARTRIDGE_INSERTED || c->event >= NL_CARTRIDGE_EVENT_END)
		return -ERANGE;
	if (c->reject_reason >= NL_REJECT_END)
		return -ERANGE;
	/* Only a rejection carries a reason. */
	if (c->event != NL_CARTRIDGE_EVENT_REJECTED && c->reject_reason != NL_REJECT_NONE)
		return -ERANGE;
	if (nl_lot_check(c->lot) < 0)
		return -ERANGE;
	if (c->needle_count > NL_NEEDLE_COUNT_MAX || !depth_ok(c->needle_length_um))
		return -ERANGE;
	return 0;
}

static int limit_check(const struct nl_rec_limit *l)
{
	if (l->event < NL_LIMIT_EVENT_APPLIED || l->event >= NL_LIMIT_EVENT_END)
		return -ERANGE;
	if (l->origin < NL_LIMIT_ORIGIN_FIRMWARE || l->origin >= NL_LIMIT_ORIGIN_END)
		return -ERANGE;
	if (!zone_or_none_ok(l->zone))
		return -ERANGE;
	if (l->reason >= NL_LOCK_REASON_END)
		return -ERANGE;
	/* A lock reason belongs to LOCK and UNLOCK (4.2.5) and to OVERRIDE,
	 * which carries the reason of the UNLOCK that wrote it (8.3.6). */
	if (l->event != NL_LIMIT_EVENT_LOCK && l->event != NL_LIMIT_EVENT_UNLOCK &&
	    l->event != NL_LIMIT_EVENT_OVERRIDE && l->reason != NL_LOCK_REASON_NONE)
		return -ERANGE;
	/* CLAMP carries depths: the requested one and the cap applied. */
	if (l->event == NL_LIMIT_EVENT_CLAMP && (!depth_ok(l->value) || !depth_ok(l->threshold)))
		return -ERANGE;
	if (l->remaining_s > NL_LIFETIME_MAX_S)
		return -ERANGE;
	return 0;
}

static int fault_check(const struct nl_rec_fault *f)
{
	if (f->code < NL_FAULT_MOTOR_STALL || f->code >= NL_FAULT_CODE_END)
		return -ERANGE;
	if (f->severity < NL_FAULT_INFO || f->severity >= NL_FAULT_SEVERITY_END)
		return -ERANGE;
	return 0;
}

static int time_change_check(const struct nl_rec_time_change *t)
{
	if (t->source < NL_TIME_SOURCE_GATEWAY || t->source >= NL_TIME_SOURCE_END)
		return -ERANGE;
	return 0;
}

static int body_check(const struct nl_record *r)
{
	switch ((enum nl_record_type)r->hdr.type) {
	case NL_RECORD_SESSION_START:
		return session_start_check(&r->u.session_start);
	case NL_RECORD_SESSION_END:
		return session_end_check(&r->u.session_end);
	case NL_RECORD_SEGMENT:
		return segment_check(&r->u.segment);
	case NL_RECORD_CARTRIDGE:
		return cartridge_check(&r->u.cartridge);
	case NL_RECORD_LIMIT:
		return limit_check(&r->u.limit);
	case NL_RECORD_FAULT:
		return fault_check(&r->u.fault);
	case NL_RECORD_TIME_CHANGE:
		return time_change_check(&r->u.time_change);
	case NL_RECORD_TYPE_END:
		break;
	}
	return -ENOMSG;
}

/* ---- Encode ------------------------------------------------------------ */

static void put_body(struct nl_wr *w, const struct nl_record *r)
{
	switch ((enum nl_record_type)r->hdr.type) {
	case NL_RECORD_SESSION_START: {
		const struct nl_rec_session_start *s = &r->u.session_start;

		nl_wr_u32(w, s->limits_hash);
		nl_wr_u8(w, s->limit_source);
		nl_wr_u32(w, s->lifetime_s);
		nl_wr_bytes(w, s->cartridge_uid, NL_CARTRIDGE_UID_LEN);
		nl_wr_u8(w, s->zone);
		break;
	}
	case NL_RECORD_SESSION_END: {
		const struct nl_rec_session_end *s = &r->u.session_end;

		nl_wr_u8(w, s->reason);
		nl_wr_u32(w, s->duration_ms);
		nl_wr_u32(w, s->needle_on_ms);
		nl_wr_u32(w, s->strokes);
		nl_wr_u8(w, s->zone_count);
		for (unsigned i = 0; i < s->zone_count && i < NL_SESSION_ZONES_MAX; i++) {
			const struct nl_rec_zone_total *z = &s->zones[i];

			nl_wr_u8(w, z->zone);
			nl_wr_u16(w, z->passes);
			nl_wr_u16(w, z->depth_max_um);
			nl_wr_u16(w, z->depth_mean_um);
			nl_wr_u32(w, z->needle_on_ms);
			nl_wr_u32(w, z->strokes);
		}
		break;
	}
	case NL_RECORD_SEGMENT: {
		const struct nl_rec_segment *s = &r->u.segment;

		nl_wr_u8(w, s->zone);
		nl_wr_u16(w, s->pass);
		nl_wr_u16(w, s->depth_set_um);
		nl_wr_u16(w, s->depth_cap_um);
		nl_wr_u16(w, s->depth_measured_um);
		nl_wr_u16(w, s->speed_hz);
		nl_wr_u32(w, s->run_ms);
		nl_wr_u32(w, s->strokes);
		nl_wr_bytes(w, s->cartridge_uid, NL_CARTRIDGE_UID_LEN);
		nl_wr_u16(w, s->status);
		nl_wr_u8(w, s->end_reason);
		break;
	}
	case NL_RECORD_CARTRIDGE: {
		const struct nl_rec_cartridge *c = &r->u.cartridge;

		nl_wr_u8(w, c->event);
		nl_wr_u8(w, c->reject_reason);
		nl_wr_bytes(w, c->uid, NL_CARTRIDGE_UID_LEN);
		nl_lot_put(w, c->lot);
		nl_wr_u32(w, c->expiry);
		nl_wr_u8(w, c->needle_count);
		nl_wr_u16(w, c->needle_length_um);
		nl_wr_u32(w, c->first_use);
		nl_wr_u32(w, c->run_ms);
		break;
	}
	case NL_RECORD_LIMIT: {
		const struct nl_rec_limit *l = &r->u.limit;

		nl_wr_u8(w, l->event);
		nl_wr_u8(w, l->origin);
		nl_wr_u8(w, l->zone);
		nl_wr_u32(w, l->limits_hash);
		nl_wr_u16(w, l->value);
		nl_wr_u16(w, l->threshold);
		nl_wr_u8(w, l->reason);
		nl_wr_u32(w, l->remaining_s);
		break;
	}
	case NL_RECORD_FAULT:
		nl_wr_u16(w, r->u.fault.code);
		nl_wr_u8(w, r->u.fault.severity);
		nl_wr_u8(w, 0); /* reserved */
		nl_wr_u32(w, r->u.fault.detail);
		break;
	case NL_RECORD_TIME_CHANGE:
		nl_wr_u32(w, r->u.time_change.old_time);
		nl_wr_u32(w, r->u.time_change.new_time);
		nl_wr_u8(w, r->u.time_change.source);
		break;
	case NL_RECORD_TYPE_END:
		break;
	}
}

static uint16_t undefined_flags(const struct nl_record *r)
{
	uint16_t bad = r->hdr.flags & (uint16_t)~NL_REC_ALL;

	if (r->hdr.type == NL_RECORD_SEGMENT)
		bad |= r->u.segment.status & (uint16_t)~NL_SEG_ALL;
	return bad;
}

int nl_record_encode(const struct nl_record *r, uint8_t *buf, size_t size)
{
	struct nl_wr w = nl_wr_init(buf, size);
	int e = header_check(&r->hdr);

	if (e < 0)
		return e;
	if (undefined_flags(r))
		return -ERANGE;
	e = body_check(r);
	if (e < 0)
		return e;
	nl_wr_u8(&w, r->hdr.type);
	nl_wr_u8(&w, r->hdr.flags);
	nl_wr_u32(&w, r->hdr.seq);
	nl_wr_u32(&w, r->hdr.store_epoch);
	nl_wr_u32(&w, r->hdr.session_id);
	nl_wr_u32(&w, r->hdr.pen_time);
	put_body(&w, r);
	return nl_pdu_close(&w);
}

/* ---- Decode ------------------------------------------------------------ */

static void get_header(struct nl_rd *rd, struct nl_record_header *h)
{
	h->type = nl_rd_u8(rd);
	h->flags = nl_rd_u8(rd) & NL_REC_ALL;
	h->seq = nl_rd_u32(rd);
	h->store_epoch = nl_rd_u32(rd);
	h->session_id = nl_rd_u32(rd);
	h->pen_time = nl_rd_u32(rd);
}

/* Reads the body; -ENODATA, or -ERANGE for a bad lot or zone_count. */
static int get_body(struct nl_rd *rd, struct nl_record *r)
{
	int e = 0;

	switch ((enum nl_record_type)r->hdr.type) {
	case NL_RECORD_SESSION_START: {
		struct nl_rec_session_start *s = &r->u.session_start;

		s->limits_hash = nl_rd_u32(rd);
		s->limit_source = nl_rd_u8(rd);
		s->lifetime_s = nl_rd_u32(rd);
		nl_rd_bytes(rd, s->cartridge_uid, NL_CARTRIDGE_UID_LEN);
		s->zone = nl_rd_u8(rd);
		break;
	}
	case NL_RECORD_SESSION_END: {
		struct nl_rec_session_end *s = &r->u.session_end;

		s->reason = nl_rd_u8(rd);
		s->duration_ms = nl_rd_u32(rd);
		s->needle_on_ms = nl_rd_u32(rd);
		s->strokes = nl_rd_u32(rd);
		s->zone_count = nl_rd_u8(rd);
		if (rd->err)
			return -ENODATA;
		if (s->zone_count > NL_SESSION_ZONES_MAX)
			return -ERANGE;
		for (unsigned i = 0; i < s->zone_count; i++) {
			struct nl_rec_zone_total *z = &s->zones[i];

			z->zone = nl_rd_u8(rd);
			z->passes = nl_rd_u16(rd);
			z->depth_max_um = nl_rd_u16(rd);
			z->depth_mean_um = nl_rd_u16(rd);
			z->needle_on_ms = nl_rd_u32(rd);
			z->strokes = nl_rd_u32(rd);
		}
		break;
	}
	case NL_RECORD_SEGMENT: {
		struct nl_rec_segment *s = &r->u.segment;

		s->zone = nl_rd_u8(rd);
		s->pass = nl_rd_u16(rd);
		s->depth_set_um = nl_rd_u16(rd);
		s->depth_cap_um = nl_rd_u16(rd);
		s->depth_measured_um = nl_rd_u16(rd);
		s->speed_hz = nl_rd_u16(rd);
		s->run_ms = nl_rd_u32(rd);
		s->strokes = nl_rd_u32(rd);
		nl_rd_bytes(rd, s->cartridge_uid, NL_CARTRIDGE_UID_LEN);
		s->status = nl_rd_u16(rd) & NL_SEG_ALL;
		s->end_reason = nl_rd_u8(rd);
		break;
	}
	case NL_RECORD_CARTRIDGE: {
		struct nl_rec_cartridge *c = &r->u.cartridge;

		c->event = nl_rd_u8(rd);
		c->reject_reason = nl_rd_u8(rd);
		nl_rd_bytes(rd, c->uid, NL_CARTRIDGE_UID_LEN);
		e = nl_lot_get(rd, c->lot);
		c->expiry = nl_rd_u32(rd);
		c->needle_count = nl_rd_u8(rd);
		c->needle_length_um = nl_rd_u16(rd);
		c->first_use = nl_rd_u32(rd);
		c->run_ms = nl_rd_u32(rd);
		break;
	}
	case NL_RECORD_LIMIT: {
		struct nl_rec_limit *l = &r->u.limit;

		l->event = nl_rd_u8(rd);
		l->origin = nl_rd_u8(rd);
		l->zone = nl_rd_u8(rd);
		l->limits_hash = nl_rd_u32(rd);
		l->value = nl_rd_u16(rd);
		l->threshold = nl_rd_u16(rd);
		l->reason = nl_rd_u8(rd);
		l->remaining_s = nl_rd_u32(rd);
		break;
	}
	case NL_RECORD_FAULT:
		r->u.fault.code = nl_rd_u16(rd);
		r->u.fault.severity = nl_rd_u8(rd);
		(void)nl_rd_u8(rd); /* reserved: ignored */
		r->u.fault.detail = nl_rd_u32(rd);
		break;
	case NL_RECORD_TIME_CHANGE:
		r->u.time_change.old_time = nl_rd_u32(rd);
		r->u.time_change.new_time = nl_rd_u32(rd);
		r->u.time_change.source = nl_rd_u8(rd);
		break;
	case NL_RECORD_TYPE_END:
		return -ENOMSG;
	}
	if (rd->err)
		return -ENODATA; /* truncation wins over a bad lot */
	return e;
}

/* Accepts record types of later minor versions: a collector stores such a
 * record raw and still needs its header for continuity and acknowledgement
 * (docs/protocol.md 11.3). Type 0 is never a record. */
int nl_record_peek_header(const uint8_t *buf, size_t len, struct nl_record_header *ret)
{
	struct nl_record_header h;
	struct nl_rd rd;
	int e = nl_pdu_open(buf, len, &rd);

	if (e < 0)
		return e;
	get_header(&rd, &h);
	if (rd.err)
		return -ENODATA;
	if (h.type == 0)
		return -ENOMSG;
	if (h.seq == 0)
		return -ERANGE;
	*ret = h;
	return 0;
}

int nl_record_decode(const uint8_t *buf, size_t len, struct nl_record *ret)
{
	struct nl_record r;
	struct nl_rd rd;
	int e = nl_pdu_open(buf, len, &rd);

	if (e < 0)
		return e;
	memset(&r, 0, sizeof(r));
	get_header(&rd, &r.hdr);
	if (rd.err)
		return -ENODATA;
	e = header_check(&r.hdr);
	if (e < 0)
		return e;
	e = get_body(&rd, &r);
	if (e < 0)
		return e;
	/* Bytes after the v1 body are a newer minor version's: ignored. */
	e = body_check(&r);
	if (e < 0)
		return e;
	*ret = r;
	return 0;
}

/* ---- Names ------------------------------------------------------------- */

static const char *name_at(const char *const *names, size_t n, unsigned v)
{
	return v < n ? names[v] : NULL;
}

#define NAME_AT(tbl, v) name_at((tbl), sizeof(tbl) / sizeof((tbl)[0]), (v))

const char *nl_record_type_name(unsigned type)
{
	static const char *const n[] = {
		[NL_RECORD_SESSION_START] = "session_start",
		[NL_RECORD_SESSION_END] = "session_end",
		[NL_RECORD_SEGMENT] = "segment",
		[NL_RECORD_CARTRIDGE] = "cartridge",
		[NL_RECORD_LIMIT] = "limit",
		[NL_RECORD_FAULT] = "fault",
		[NL_RECORD_TIME_CHANGE] = "time_change",
	};
	return NAME_AT(n, type);
}

const char *nl_session_end_reason_name(unsigned v)
{
	static const char *const n[] = {
		[NL_SESSION_END_STOPPED] = "stopped",
		[NL_SESSION_END_LIFETIME] = "lifetime",
		[NL_SESSION_END_LOCKED] = "locked",
		[NL_SESSION_END_BATTERY] = "battery",
		[NL_SESSION_END_POWER_LOSS] = "power_loss",
		[NL_SESSION_END_FAULT] = "fault",
	};
	return NAME_AT(n, v);
}

const char *nl_segment_end_name(unsigned v)
{
	static const char *const n[] = {
		[NL_SEGMENT_END_OPERATOR] = "operator",
		[NL_SEGMENT_END_LIMIT] = "limit",
		[NL_SEGMENT_END_LOCK] = "lock",
		[NL_SEGMENT_END_BATTERY] = "battery",
		[NL_SEGMENT_END_CARTRIDGE] = "cartridge",
		[NL_SEGMENT_END_SESSION] = "session",
		[NL_SEGMENT_END_FAULT] = "fault",
	};
	return NAME_AT(n, v);
}

const char *nl_cartridge_event_name(unsigned v)
{
	static const char *const n[] = {
		[NL_CARTRIDGE_INSERTED] = "inserted",
		[NL_CARTRIDGE_REMOVED] = "removed",
		[NL_CARTRIDGE_EVENT_REJECTED] = "rejected",
	};
	return NAME_AT(n, v);
}

const char *nl_cartridge_reject_name(unsigned v)
{
	static const char *const n[] = {
		[NL_REJECT_NONE] = "none",
		[NL_REJECT_REUSED] = "reused",
		[NL_REJECT_EXPIRED] = "expired",
		[NL_REJECT_UNREADABLE] = "unreadable",
		[NL_REJECT_NEEDLE_TOO_SHORT] = "needle_too_short",
	};
	return NAME_AT(n, v);
}

const char *nl_limit_event_name(unsigned v)
{
	static const char *const n[] = {
		[NL_LIMIT_EVENT_APPLIED] = "applied",
		[NL_LIMIT_EVENT_CLAMP] = "clamp",
		[NL_LIMIT_EVENT_LOCK] = "lock",
		[NL_LIMIT_EVENT_UNLOCK] = "unlock",
		[NL_LIMIT_EVENT_OVERRIDE] = "override",
		[NL_LIMIT_EVENT_FALLBACK] = "fallback",
		[NL_LIMIT_EVENT_PASS_WARN] = "pass_warn",
		[NL_LIMIT_EVENT_TIME_WARN] = "time_warn",
	};
	return NAME_AT(n, v);
}

const char *nl_limit_origin_name(unsigned v)
{
	static const char *const n[] = {
		[NL_LIMIT_ORIGIN_FIRMWARE] = "firmware",
		[NL_LIMIT_ORIGIN_GATEWAY] = "gateway",
	};
	return NAME_AT(n, v);
}

const char *nl_lock_reason_name(unsigned v)
{
	static const char *const n[] = {
		[NL_LOCK_REASON_NONE] = "none",
		[NL_LOCK_REASON_POLICY] = "policy",
		[NL_LOCK_REASON_PASSES] = "passes",
		[NL_LOCK_REASON_NEEDLE_ON] = "needle_on",
		[NL_LOCK_REASON_CARTRIDGE] = "cartridge",
		[NL_LOCK_REASON_OPERATOR] = "operator",
		[NL_LOCK_REASON_FAULT] = "fault",
	};
	return NAME_AT(n, v);
}

const char *nl_fault_code_name(unsigned v)
{
	static const char *const n[] = {
		[NL_FAULT_MOTOR_STALL] = "motor_stall",
		[NL_FAULT_DEPTH_SENSOR] = "depth_sensor",
		[NL_FAULT_OVERHEAT] = "overheat",
		[NL_FAULT_STORE] = "store",
		[NL_FAULT_BATTERY] = "battery",
		[NL_FAULT_WATCHDOG] = "watchdog",
	};
	return NAME_AT(n, v);
}

const char *nl_time_source_name(unsigned v)
{
	static const char *const n[] = {
		[NL_TIME_SOURCE_GATEWAY] = "gateway",
		[NL_TIME_SOURCE_USER] = "user",
		[NL_TIME_SOURCE_RTC_LOSS] = "rtc_loss",
	};
	return NAME_AT(n, v);
}
