/* SPDX-License-Identifier: MIT */
#include "fuzz_common.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "needlelink/crc.h"
#include "needlelink/zone.h"

unsigned long fuzz_decoded_ok;

_Noreturn void fuzz_fail(const char *file, int line, const char *what)
{
	fprintf(stderr, "%s:%d: invariant violated: %s\n", file, line, what);
	abort();
}

bool fuzz_is_poisoned(const void *p, size_t n)
{
	const uint8_t *b = p;

	for (size_t i = 0; i < n; i++)
		if (b[i] != FUZZ_POISON)
			return false;
	return true;
}

bool fuzz_is_decode_error(int rc)
{
	return rc == -ENODATA || rc == -EBADMSG || rc == -ENOMSG || rc == -ERANGE;
}

uint8_t *fuzz_dup(const uint8_t *buf, size_t len)
{
	/* malloc(0) may return NULL; keep one byte so the pointer is real.
	 * calloc: the empty case still hands out initialised memory. */
	uint8_t *p = calloc(1, len ? len : 1);

	FUZZ_CHECK(p != NULL);
	if (len)
		memcpy(p, buf, len);
	return p;
}

bool fuzz_same_bytes(const uint8_t *enc, const uint8_t *data, size_t len,
		     void (*clear_reserved)(uint8_t *buf, size_t len), bool has_crc)
{
	uint8_t *want = fuzz_dup(data, len);
	bool same;

	if (clear_reserved) {
		clear_reserved(want, len);
		if (has_crc)
			FUZZ_CHECK(nl_pdu_put_crc(want, len - 2, len) == (int)len);
	}
	same = memcmp(enc, want, len) == 0;
	free(want);
	return same;
}

void fuzz_run_with_fixed_crc(fuzz_check_fn fn, const uint8_t *data, size_t size)
{
	uint8_t *copy = fuzz_dup(data, size);

	fn(copy, size);
	if (size >= 3) {
		uint16_t crc = nl_crc16(copy, size - 2);

		if (copy[size - 2] != (uint8_t)crc || copy[size - 1] != (uint8_t)(crc >> 8)) {
			/* Written by hand: nl_pdu_put_crc refuses values
			 * longer than NL_RECORD_MAX, the fuzzer's may be. */
			FUZZ_CHECK(nl_pdu_check_crc(copy, size) == -EBADMSG);
			copy[size - 2] = (uint8_t)crc;
			copy[size - 1] = (uint8_t)(crc >> 8);
			FUZZ_CHECK(nl_pdu_check_crc(copy, size) == 0);
			fn(copy, size);
		}
	}
	free(copy);
}

void fuzz_check_encode_sizes(fuzz_encode_fn enc, const void *obj, const uint8_t *first,
			     size_t n)
{
	uint8_t *exact, *short_buf;

	FUZZ_CHECK(n > 0);
	exact = malloc(n);
	FUZZ_CHECK(exact != NULL);
	FUZZ_CHECK(enc(obj, exact, n) == (int)n);
	FUZZ_CHECK(memcmp(exact, first, n) == 0);
	free(exact);

	/* Exactly n - 1 bytes on the heap: ASan reports any write beyond. */
	short_buf = malloc(n - 1 ? n - 1 : 1);
	FUZZ_CHECK(short_buf != NULL);
	FUZZ_CHECK(enc(obj, short_buf, n - 1) == -ENOBUFS);
	free(short_buf);
}

/* ---- Equality, field by field ---------------------------------------- */

bool fuzz_feature_eq(const struct nl_feature *a, const struct nl_feature *b)
{
	return a->proto_major == b->proto_major && a->proto_minor == b->proto_minor &&
	       a->flags == b->flags && a->depth_min_um == b->depth_min_um &&
	       a->depth_max_um == b->depth_max_um && a->depth_step_um == b->depth_step_um &&
	       a->speed_min_hz == b->speed_min_hz && a->speed_max_hz == b->speed_max_hz &&
	       a->store_capacity == b->store_capacity && a->store_epoch == b->store_epoch &&
	       a->live_rate_hz == b->live_rate_hz;
}

bool fuzz_live_eq(const struct nl_live *a, const struct nl_live *b)
{
	return a->state == b->state && a->flags == b->flags && a->zone == b->zone &&
	       a->depth_set_um == b->depth_set_um &&
	       a->depth_measured_um == b->depth_measured_um &&
	       a->depth_cap_um == b->depth_cap_um && a->speed_hz == b->speed_hz &&
	       a->pass == b->pass && a->needle_on_ms == b->needle_on_ms &&
	       a->session_id == b->session_id && a->battery_pct == b->battery_pct &&
	       a->sample == b->sample;
}

bool fuzz_pen_status_eq(const struct nl_pen_status *a, const struct nl_pen_status *b)
{
	return a->flags == b->flags && a->state == b->state && a->fault_code == b->fault_code &&
	       a->store_used == b->store_used && a->store_capacity == b->store_capacity &&
	       a->store_epoch == b->store_epoch && a->last_seq == b->last_seq &&
	       a->pen_time == b->pen_time && a->battery_pct == b->battery_pct;
}

bool fuzz_cartridge_info_eq(const struct nl_cartridge_info *a,
			    const struct nl_cartridge_info *b)
{
	return a->state == b->state && memcmp(a->uid, b->uid, sizeof(a->uid)) == 0 &&
	       strncmp(a->lot, b->lot, sizeof(a->lot)) == 0 && a->expiry == b->expiry &&
	       a->needle_count == b->needle_count &&
	       a->needle_length_um == b->needle_length_um && a->first_use == b->first_use &&
	       a->run_ms == b->run_ms;
}

bool fuzz_limit_set_eq(const struct nl_limit_set *a, const struct nl_limit_set *b)
{
	if (!(a->format == b->format && a->flags == b->flags && a->lifetime_s == b->lifetime_s &&
	      a->depth_cap_um == b->depth_cap_um && a->needle_on_warn_s == b->needle_on_warn_s &&
	      a->needle_on_lock_s == b->needle_on_lock_s && a->pass_warn == b->pass_warn &&
	      a->pass_lock == b->pass_lock && a->zone_count == b->zone_count))
		return false;
	if (a->zone_count > NL_LIMIT_ZONES_MAX)
		return false;
	for (unsigned i = 0; i < a->zone_count; i++) {
		const struct nl_zone_limit *x = &a->zones[i], *y = &b->zones[i];

		if (x->zone != y->zone || x->depth_cap_um != y->depth_cap_um ||
		    x->pass_warn != y->pass_warn || x->pass_lock != y->pass_lock)
			return false;
	}
	return true;
}

bool fuzz_active_limits_eq(const struct nl_active_limits *a,
			   const struct nl_active_limits *b)
{
	return a->source == b->source && a->limits_hash == b->limits_hash &&
	       a->remaining_s == b->remaining_s && fuzz_limit_set_eq(&a->set, &b->set);
}

static bool header_eq(const struct nl_record_header *a, const struct nl_record_header *b)
{
	return a->type == b->type && a->flags == b->flags && a->seq == b->seq &&
	       a->store_epoch == b->store_epoch && a->session_id == b->session_id &&
	       a->pen_time == b->pen_time;
}

static bool session_end_eq(const struct nl_rec_session_end *a,
			   const struct nl_rec_session_end *b)
{
	if (!(a->reason == b->reason && a->duration_ms == b->duration_ms &&
	      a->needle_on_ms == b->needle_on_ms && a->strokes == b->strokes &&
	      a->zone_count == b->zone_count))
		return false;
	if (a->zone_count > NL_SESSION_ZONES_MAX)
		return false;
	for (unsigned i = 0; i < a->zone_count; i++) {
		const struct nl_rec_zone_total *x = &a->zones[i], *y = &b->zones[i];

		if (x->zone != y->zone || x->passes != y->passes ||
		    x->depth_max_um != y->depth_max_um || x->depth_mean_um != y->depth_mean_um ||
		    x->needle_on_ms != y->needle_on_ms || x->strokes != y->strokes)
			return false;
	}
	return true;
}

bool fuzz_record_eq(const struct nl_record *a, const struct nl_record *b)
{
	if (!header_eq(&a->hdr, &b->hdr))
		return false;
	switch ((enum nl_record_type)a->hdr.type) {
	case NL_RECORD_SESSION_START: {
		const struct nl_rec_session_start *x = &a->u.session_start;
		const struct nl_rec_session_start *y = &b->u.session_start;

		return x->limits_hash == y->limits_hash && x->limit_source == y->limit_source &&
		       x->lifetime_s == y->lifetime_s &&
		       memcmp(x->cartridge_uid, y->cartridge_uid, sizeof(x->cartridge_uid)) == 0 &&
		       x->zone == y->zone;
	}
	case NL_RECORD_SESSION_END:
		return session_end_eq(&a->u.session_end, &b->u.session_end);
	case NL_RECORD_SEGMENT: {
		const struct nl_rec_segment *x = &a->u.segment, *y = &b->u.segment;

		return x->zone == y->zone && x->pass == y->pass &&
		       x->depth_set_um == y->depth_set_um && x->depth_cap_um == y->depth_cap_um &&
		       x->depth_measured_um == y->depth_measured_um && x->speed_hz == y->speed_hz &&
		       x->run_ms == y->run_ms && x->strokes == y->strokes &&
		       memcmp(x->cartridge_uid, y->cartridge_uid, sizeof(x->cartridge_uid)) == 0 &&
		       x->status == y->status && x->end_reason == y->end_reason;
	}
	case NL_RECORD_CARTRIDGE: {
		const struct nl_rec_cartridge *x = &a->u.cartridge, *y = &b->u.cartridge;

		return x->event == y->event && x->reject_reason == y->reject_reason &&
		       memcmp(x->uid, y->uid, sizeof(x->uid)) == 0 &&
		       strncmp(x->lot, y->lot, sizeof(x->lot)) == 0 && x->expiry == y->expiry &&
		       x->needle_count == y->needle_count &&
		       x->needle_length_um == y->needle_length_um && x->first_use == y->first_use &&
		       x->run_ms == y->run_ms;
	}
	case NL_RECORD_LIMIT: {
		const struct nl_rec_limit *x = &a->u.limit, *y = &b->u.limit;

		return x->event == y->event && x->origin == y->origin && x->zone == y->zone &&
		       x->limits_hash == y->limits_hash && x->value == y->value &&
		       x->threshold == y->threshold && x->reason == y->reason &&
		       x->remaining_s == y->remaining_s;
	}
	case NL_RECORD_FAULT:
		return a->u.fault.code == b->u.fault.code &&
		       a->u.fault.severity == b->u.fault.severity &&
		       a->u.fault.detail == b->u.fault.detail;
	case NL_RECORD_TIME_CHANGE:
		return a->u.time_change.old_time == b->u.time_change.old_time &&
		       a->u.time_change.new_time == b->u.time_change.new_time &&
		       a->u.time_change.source == b->u.time_change.source;
	case NL_RECORD_TYPE_END:
		break;
	}
	return false;
}

bool fuzz_cp_req_eq(const struct nl_cp_req *a, const struct nl_cp_req *b)
{
	if (a->op != b->op)
		return false;
	switch ((enum nl_cp_op)a->op) {
	case NL_CP_SET_LIMITS:
		return fuzz_limit_set_eq(&a->u.limits, &b->u.limits);
	case NL_CP_AUTHORISE:
		return a->u.authorise.session_id == b->u.authorise.session_id &&
		       a->u.authorise.limits_hash == b->u.authorise.limits_hash &&
		       a->u.authorise.lifetime_s == b->u.authorise.lifetime_s;
	case NL_CP_STOP_SESSION:
		return true;
	case NL_CP_SET_ZONE:
		return a->u.zone == b->u.zone;
	case NL_CP_LOCK:
	case NL_CP_UNLOCK:
		return a->u.reason == b->u.reason;
	case NL_CP_ACK_RECORDS:
		return a->u.ack.store_epoch == b->u.ack.store_epoch && a->u.ack.seq == b->u.ack.seq;
	case NL_CP_SET_TIME:
		return a->u.pen_time == b->u.pen_time;
	case NL_CP_CLAMP:
		return a->u.clamp.zone == b->u.clamp.zone && a->u.clamp.cap_um == b->u.clamp.cap_um;
	case NL_CP_SET_LIVE_RATE:
		return a->u.live_rate_hz == b->u.live_rate_hz;
	case NL_CP_OP_END:
	case NL_CP_RESPONSE:
		break;
	}
	return false;
}

bool fuzz_cp_rsp_eq(const struct nl_cp_rsp *a, const struct nl_cp_rsp *b)
{
	return a->req_op == b->req_op && a->result == b->result && a->value == b->value;
}

bool fuzz_racp_req_eq(const struct nl_racp_req *a, const struct nl_racp_req *b)
{
	return a->op == b->op && a->oper == b->oper && a->a == b->a && a->b == b->b;
}

bool fuzz_racp_rsp_eq(const struct nl_racp_rsp *a, const struct nl_racp_rsp *b)
{
	if (a->op != b->op)
		return false;
	if (a->op == NL_RACP_NUMBER_RESPONSE)
		return a->count == b->count;
	return a->req_op == b->req_op && a->code == b->code;
}

/* ---- Limit sets ------------------------------------------------------- */

static int limit_set_enc(const void *obj, uint8_t *buf, size_t size)
{
	return nl_limit_set_encode(obj, buf, size);
}

size_t fuzz_check_limit_set(const struct nl_limit_set *l)
{
	uint8_t enc[NL_LIMIT_SET_MAX + 8];
	uint32_t hash = 0;
	int n;

	/* Documented ranges (pdu.h). */
	FUZZ_CHECK(l->format == 1);
	FUZZ_CHECK(l->lifetime_s >= 1 && l->lifetime_s <= NL_LIFETIME_MAX_S);
	FUZZ_CHECK(l->depth_cap_um >= 1 && l->depth_cap_um <= NL_DEPTH_MAX_UM);
	if (l->needle_on_warn_s && l->needle_on_lock_s)
		FUZZ_CHECK(l->needle_on_warn_s <= l->needle_on_lock_s);
	if (l->pass_warn && l->pass_lock)
		FUZZ_CHECK(l->pass_warn <= l->pass_lock);
	FUZZ_CHECK(l->zone_count <= NL_LIMIT_ZONES_MAX);
	for (unsigned i = 0; i < l->zone_count; i++) {
		const struct nl_zone_limit *z = &l->zones[i];

		FUZZ_CHECK(nl_zone_valid(z->zone));
		FUZZ_CHECK(nl_zone_name(z->zone) != NULL);
		FUZZ_CHECK(z->depth_cap_um <= NL_DEPTH_MAX_UM);
		if (i > 0)
			FUZZ_CHECK(l->zones[i - 1].zone < z->zone);
	}

	/* Lookup helpers agree with the table. */
	for (unsigned zone = 0; zone <= NL_ZONE_COUNT; zone++) {
		const struct nl_zone_limit *found = nl_limit_set_find(l, zone);
		const struct nl_zone_limit *want = NULL;

		for (unsigned i = 0; i < l->zone_count; i++)
			if (l->zones[i].zone == zone)
				want = &l->zones[i];
		FUZZ_CHECK(found == want);
		FUZZ_CHECK(nl_limit_set_zone_cap(l, zone) ==
			   (want ? want->depth_cap_um : l->depth_cap_um));
	}

	n = nl_limit_set_encode(l, enc, sizeof(enc));
	FUZZ_CHECK(n == (int)(NL_LIMIT_SET_HDR_LEN + 5u * l->zone_count));
	fuzz_check_encode_sizes(limit_set_enc, l, enc, (size_t)n);

	FUZZ_CHECK(nl_limit_set_hash(l, &hash) >= 0);
	FUZZ_CHECK(hash == nl_fnv1a32(enc, (size_t)n));
	return (size_t)n;
}

/* ---- Records ---------------------------------------------------------- */

static int record_enc(const void *obj, uint8_t *buf, size_t size)
{
	return nl_record_encode(obj, buf, size);
}

size_t fuzz_record_body_len(const struct nl_record *r)
{
	switch ((enum nl_record_type)r->hdr.type) {
	case NL_RECORD_SESSION_START:
		return 18;
	case NL_RECORD_SESSION_END:
		return 14 + 15u * r->u.session_end.zone_count;
	case NL_RECORD_SEGMENT:
		return 30;
	case NL_RECORD_CARTRIDGE:
		return 33;
	case NL_RECORD_LIMIT:
		return 16;
	case NL_RECORD_FAULT:
		return 8;
	case NL_RECORD_TIME_CHANGE:
		return 9;
	case NL_RECORD_TYPE_END:
		break;
	}
	fuzz_fail(__FILE__, __LINE__, "record type outside enum nl_record_type");
}

/* Zone fields that may say "no zone": NONE or a named zone. */
static void check_zone_or_none(unsigned zone)
{
	if (zone != NL_ZONE_NONE)
		FUZZ_CHECK(nl_zone_name(zone) != NULL);
}

static void check_lot(const char lot[NL_LOT_LEN + 1])
{
	FUZZ_CHECK(memchr(lot, '\0', NL_LOT_LEN + 1) != NULL);
	for (size_t i = 0; lot[i]; i++)
		FUZZ_CHECK(lot[i] >= 0x20 && lot[i] <= 0x7e);
}

static void check_record_fields(const struct nl_record *r)
{
	FUZZ_CHECK(nl_record_type_name(r->hdr.type) != NULL);
	switch ((enum nl_record_type)r->hdr.type) {
	case NL_RECORD_SESSION_START:
		check_zone_or_none(r->u.session_start.zone);
		break;
	case NL_RECORD_SESSION_END: {
		const struct nl_rec_session_end *e = &r->u.session_end;

		FUZZ_CHECK(nl_session_end_reason_name(e->reason) != NULL);
		FUZZ_CHECK(e->zone_count <= NL_SESSION_ZONES_MAX);
		for (unsigned i = 0; i < e->zone_count; i++) {
			FUZZ_CHECK(nl_zone_name(e->zones[i].zone) != NULL);
			if (i > 0)
				FUZZ_CHECK(e->zones[i - 1].zone < e->zones[i].zone);
		}
		break;
	}
	case NL_RECORD_SEGMENT:
		check_zone_or_none(r->u.segment.zone);
		FUZZ_CHECK(nl_segment_end_name(r->u.segment.end_reason) != NULL);
		break;
	case NL_RECORD_CARTRIDGE:
		FUZZ_CHECK(nl_cartridge_event_name(r->u.cartridge.event) != NULL);
		FUZZ_CHECK(nl_cartridge_reject_name(r->u.cartridge.reject_reason) != NULL);
		check_lot(r->u.cartridge.lot);
		break;
	case NL_RECORD_LIMIT:
		FUZZ_CHECK(nl_limit_event_name(r->u.limit.event) != NULL);
		FUZZ_CHECK(nl_limit_origin_name(r->u.limit.origin) != NULL);
		FUZZ_CHECK(nl_lock_reason_name(r->u.limit.reason) != NULL);
		/* A reason only on LOCK, UNLOCK and OVERRIDE (record.h). */
		if (r->u.limit.event != NL_LIMIT_EVENT_LOCK &&
		    r->u.limit.event != NL_LIMIT_EVENT_UNLOCK &&
		    r->u.limit.event != NL_LIMIT_EVENT_OVERRIDE)
			FUZZ_CHECK(r->u.limit.reason == NL_LOCK_REASON_NONE);
		check_zone_or_none(r->u.limit.zone);
		break;
	case NL_RECORD_FAULT:
		FUZZ_CHECK(nl_fault_code_name(r->u.fault.code) != NULL);
		break;
	case NL_RECORD_TIME_CHANGE:
		FUZZ_CHECK(nl_time_source_name(r->u.time_change.source) != NULL);
		break;
	case NL_RECORD_TYPE_END:
		fuzz_fail(__FILE__, __LINE__, "decoded record type NL_RECORD_TYPE_END");
	}
}

/* What the record decoder drops on purpose: header flag bits outside
 * NL_REC_ALL, segment status bits outside NL_SEG_ALL, the FAULT reserved
 * byte. Called on a v1-length copy. */
static void record_clear_reserved(uint8_t *buf, size_t len)
{
	buf[1] &= NL_REC_ALL;
	if (buf[0] == NL_RECORD_SEGMENT && len >= NL_RECORD_HDR_LEN + 29) {
		buf[NL_RECORD_HDR_LEN + 27] &= (uint8_t)NL_SEG_ALL;
		buf[NL_RECORD_HDR_LEN + 28] &= (uint8_t)(NL_SEG_ALL >> 8);
	}
	if (buf[0] == NL_RECORD_FAULT && len >= NL_RECORD_HDR_LEN + 4)
		buf[NL_RECORD_HDR_LEN + 3] = 0;
}

int fuzz_check_record(const uint8_t *buf, size_t len)
{
	struct nl_record r, r2, poison;
	struct nl_record_header h;
	uint8_t enc[NL_RECORD_MAX + 16];
	size_t v1_len;
	int rc, n;

	memset(&r, FUZZ_POISON, sizeof(r));
	rc = nl_record_decode(buf, len, &r);
	if (rc < 0) {
		FUZZ_CHECK(fuzz_is_decode_error(rc));
		FUZZ_CHECK(nl_strerror(rc) != NULL);
		FUZZ_CHECK(fuzz_is_poisoned(&r, sizeof(r)));
		return rc;
	}
	FUZZ_CHECK(rc == 0);
	fuzz_decoded_ok++;
	check_record_fields(&r);

	/* The header alone reads the same. */
	memset(&h, FUZZ_POISON, sizeof(h));
	FUZZ_CHECK(nl_record_peek_header(buf, len, &h) == 0);
	FUZZ_CHECK(header_eq(&h, &r.hdr));

	v1_len = NL_RECORD_HDR_LEN + fuzz_record_body_len(&r) + 2;
	FUZZ_CHECK(len >= v1_len);

	n = nl_record_encode(&r, enc, sizeof(enc));
	FUZZ_CHECK(n == (int)v1_len);
	fuzz_check_encode_sizes(record_enc, &r, enc, (size_t)n);
	if (len == v1_len)
		FUZZ_CHECK(fuzz_same_bytes(enc, buf, len, record_clear_reserved, true));

	memset(&r2, FUZZ_POISON, sizeof(r2));
	FUZZ_CHECK(nl_record_decode(enc, (size_t)n, &r2) == 0);
	FUZZ_CHECK(fuzz_record_eq(&r, &r2));

	/* A truncated copy never decodes: the CRC sits in the last 2 bytes. */
	memset(&poison, FUZZ_POISON, sizeof(poison));
	memcpy(&r2, &poison, sizeof(r2));
	FUZZ_CHECK(nl_record_decode(enc, (size_t)n - 1, &r2) < 0);
	FUZZ_CHECK(memcmp(&r2, &poison, sizeof(r2)) == 0);
	return rc;
}
