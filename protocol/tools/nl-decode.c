/* SPDX-License-Identifier: MIT */
/*
 * nl-decode KIND HEX: decodes one captured NeedleLink value and prints its
 * fields, one "name=value" per line. Spaces, colons and dashes in HEX are
 * ignored. Exit status 0 when it decodes, 1 when it does not, 2 on usage.
 *
 * KIND: feature live pen-status cartridge limit-set active-limits record
 *       cp cp-rsp racp racp-rsp segment
 */
#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "needlelink/cp.h"
#include "needlelink/crc.h"
#include "needlelink/pdu.h"
#include "needlelink/racp.h"
#include "needlelink/record.h"
#include "needlelink/seg.h"

static int hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = tolower(c);
	return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

static int parse_hex(const char *s, uint8_t *out, size_t size)
{
	size_t n = 0;
	int hi = -1;

	for (; *s; s++) {
		int v;

		if (*s == ' ' || *s == ':' || *s == '-' || *s == '\n')
			continue;
		v = hexval((unsigned char)*s);
		if (v < 0)
			return -EINVAL;
		if (hi < 0) {
			hi = v;
			continue;
		}
		if (n == size)
			return -E2BIG;
		out[n++] = (uint8_t)(hi << 4 | v);
		hi = -1;
	}
	return hi < 0 ? (int)n : -EINVAL;
}

static const char *or_q(const char *s)
{
	return s ? s : "?";
}

static void print_uid(const char *name, const uint8_t *uid)
{
	printf("%s=", name);
	for (int i = 0; i < NL_CARTRIDGE_UID_LEN; i++)
		printf("%02x", uid[i]);
	printf("\n");
}

static void print_limit_set(const char *pfx, const struct nl_limit_set *l)
{
	printf("%sformat=%u\n%slifetime_s=%u\n%sdepth_cap_um=%u\n", pfx, l->format, pfx,
	       (unsigned)l->lifetime_s, pfx, l->depth_cap_um);
	printf("%sneedle_on_warn_s=%u\n%sneedle_on_lock_s=%u\n", pfx, l->needle_on_warn_s, pfx,
	       l->needle_on_lock_s);
	printf("%spass_warn=%u\n%spass_lock=%u\n%szone_count=%u\n", pfx, l->pass_warn, pfx,
	       l->pass_lock, pfx, l->zone_count);
	for (unsigned i = 0; i < l->zone_count; i++)
		printf("%szone[%u]=%s cap_um=%u pass_warn=%u pass_lock=%u\n", pfx, i,
		       or_q(nl_zone_name(l->zones[i].zone)), l->zones[i].depth_cap_um,
		       l->zones[i].pass_warn, l->zones[i].pass_lock);
}

static int dump_record(const uint8_t *b, size_t n)
{
	struct nl_record r;
	int e = nl_record_decode(b, n, &r);

	if (e < 0)
		return e;
	printf("type=%s\nflags=0x%02x\nseq=%u\nstore_epoch=%u\nsession_id=%u\npen_time=%u\n",
	       or_q(nl_record_type_name(r.hdr.type)), r.hdr.flags, (unsigned)r.hdr.seq,
	       (unsigned)r.hdr.store_epoch, (unsigned)r.hdr.session_id, (unsigned)r.hdr.pen_time);
	switch ((enum nl_record_type)r.hdr.type) {
	case NL_RECORD_SESSION_START: {
		const struct nl_rec_session_start *s = &r.u.session_start;

		printf("limits_hash=0x%08x\nlimit_source=%u\nlifetime_s=%u\n",
		       (unsigned)s->limits_hash, s->limit_source, (unsigned)s->lifetime_s);
		print_uid("cartridge_uid", s->cartridge_uid);
		printf("zone=%s\n", or_q(nl_zone_name(s->zone)));
		break;
	}
	case NL_RECORD_SESSION_END: {
		const struct nl_rec_session_end *s = &r.u.session_end;

		printf("reason=%s\nduration_ms=%u\nneedle_on_ms=%u\nstrokes=%u\nzone_count=%u\n",
		       or_q(nl_session_end_reason_name(s->reason)), (unsigned)s->duration_ms,
		       (unsigned)s->needle_on_ms, (unsigned)s->strokes, s->zone_count);
		for (unsigned i = 0; i < s->zone_count; i++)
			printf("zone[%u]=%s passes=%u depth_max_um=%u depth_mean_um=%u "
			       "needle_on_ms=%u strokes=%u\n",
			       i, or_q(nl_zone_name(s->zones[i].zone)), s->zones[i].passes,
			       s->zones[i].depth_max_um, s->zones[i].depth_mean_um,
			       (unsigned)s->zones[i].needle_on_ms, (unsigned)s->zones[i].strokes);
		break;
	}
	case NL_RECORD_SEGMENT: {
		const struct nl_rec_segment *s = &r.u.segment;

		printf("zone=%s\npass=%u\ndepth_set_um=%u\ndepth_cap_um=%u\ndepth_measured_um=%u\n",
		       or_q(nl_zone_name(s->zone)), s->pass, s->depth_set_um, s->depth_cap_um,
		       s->depth_measured_um);
		printf("speed_hz=%u\nrun_ms=%u\nstrokes=%u\n", s->speed_hz, (unsigned)s->run_ms,
		       (unsigned)s->strokes);
		print_uid("cartridge_uid", s->cartridge_uid);
		printf("status=0x%04x\nend_reason=%s\n", s->status,
		       or_q(nl_segment_end_name(s->end_reason)));
		break;
	}
	case NL_RECORD_CARTRIDGE: {
		const struct nl_rec_cartridge *c = &r.u.cartridge;

		printf("event=%s\nreject_reason=%s\n", or_q(nl_cartridge_event_name(c->event)),
		       or_q(nl_cartridge_reject_name(c->reject_reason)));
		print_uid("uid", c->uid);
		printf("lot=%s\nexpiry=%u\nneedle_count=%u\nneedle_length_um=%u\nfirst_use=%u\nrun_ms=%u\n",
		       c->lot, (unsigned)c->expiry, c->needle_count, c->needle_length_um,
		       (unsigned)c->first_use, (unsigned)c->run_ms);
		break;
	}
	case NL_RECORD_LIMIT: {
		const struct nl_rec_limit *l = &r.u.limit;

		printf("event=%s\norigin=%s\nzone=%s\nlimits_hash=0x%08x\nvalue=%u\nthreshold=%u\n"
		       "reason=%s\nremaining_s=%u\n",
		       or_q(nl_limit_event_name(l->event)), or_q(nl_limit_origin_name(l->origin)),
		       or_q(nl_zone_name(l->zone)), (unsigned)l->limits_hash, l->value, l->threshold,
		       or_q(nl_lock_reason_name(l->reason)), (unsigned)l->remaining_s);
		break;
	}
	case NL_RECORD_FAULT:
		printf("code=%s\nseverity=%u\ndetail=%u\n", or_q(nl_fault_code_name(r.u.fault.code)),
		       r.u.fault.severity, (unsigned)r.u.fault.detail);
		break;
	case NL_RECORD_TIME_CHANGE:
		printf("old_time=%u\nnew_time=%u\nsource=%s\n", (unsigned)r.u.time_change.old_time,
		       (unsigned)r.u.time_change.new_time,
		       or_q(nl_time_source_name(r.u.time_change.source)));
		break;
	case NL_RECORD_TYPE_END:
		break;
	}
	return 0;
}

static int dump_cp(const uint8_t *b, size_t n)
{
	struct nl_cp_req r;
	int e = nl_cp_req_decode(b, n, &r);

	if (e < 0)
		return e;
	printf("op=%s\n", or_q(nl_cp_op_name(r.op)));
	switch ((enum nl_cp_op)r.op) {
	case NL_CP_SET_LIMITS:
		print_limit_set("", &r.u.limits);
		break;
	case NL_CP_AUTHORISE:
		printf("session_id=%u\nlimits_hash=0x%08x\nlifetime_s=%u\n",
		       (unsigned)r.u.authorise.session_id, (unsigned)r.u.authorise.limits_hash,
		       (unsigned)r.u.authorise.lifetime_s);
		break;
	case NL_CP_SET_ZONE:
		printf("zone=%s\n", or_q(nl_zone_name(r.u.zone)));
		break;
	case NL_CP_LOCK:
	case NL_CP_UNLOCK:
		printf("reason=%s\n", or_q(nl_lock_reason_name(r.u.reason)));
		break;
	case NL_CP_ACK_RECORDS:
		printf("store_epoch=%u\nseq=%u\n", (unsigned)r.u.ack.store_epoch, (unsigned)r.u.ack.seq);
		break;
	case NL_CP_SET_TIME:
		printf("pen_time=%u\n", (unsigned)r.u.pen_time);
		break;
	case NL_CP_CLAMP:
		printf("zone=%s\ncap_um=%u\n", or_q(nl_zone_name(r.u.clamp.zone)), r.u.clamp.cap_um);
		break;
	case NL_CP_SET_LIVE_RATE:
		printf("live_rate_hz=%u\n", r.u.live_rate_hz);
		break;
	case NL_CP_STOP_SESSION:
	case NL_CP_OP_END:
	case NL_CP_RESPONSE:
		break;
	}
	return 0;
}

static int dump(const char *kind, const uint8_t *b, size_t n)
{
	int e;

	if (strcmp(kind, "feature") == 0) {
		struct nl_feature f;

		if ((e = nl_feature_decode(b, n, &f)) < 0)
			return e;
		printf("proto=%u.%u\nflags=0x%04x\ndepth_min_um=%u\ndepth_max_um=%u\ndepth_step_um=%u\n"
		       "speed_min_hz=%u\nspeed_max_hz=%u\nstore_capacity=%u\nstore_epoch=%u\nlive_rate_hz=%u\n",
		       f.proto_major, f.proto_minor, f.flags, f.depth_min_um, f.depth_max_um,
		       f.depth_step_um, f.speed_min_hz, f.speed_max_hz, f.store_capacity,
		       (unsigned)f.store_epoch, f.live_rate_hz);
	} else if (strcmp(kind, "live") == 0) {
		struct nl_live l;

		if ((e = nl_live_decode(b, n, &l)) < 0)
			return e;
		printf("state=%s\nflags=0x%02x\nzone=%s\ndepth_set_um=%u\ndepth_measured_um=%u\n"
		       "depth_cap_um=%u\nspeed_hz=%u\npass=%u\nneedle_on_ms=%u\nsession_id=%u\n"
		       "battery_pct=%u\nsample=%u\n",
		       or_q(nl_pen_state_name((enum nl_pen_state)l.state)), l.flags,
		       or_q(nl_zone_name(l.zone)), l.depth_set_um, l.depth_measured_um, l.depth_cap_um,
		       l.speed_hz, l.pass, (unsigned)l.needle_on_ms, (unsigned)l.session_id,
		       l.battery_pct, l.sample);
	} else if (strcmp(kind, "pen-status") == 0) {
		struct nl_pen_status s;

		if ((e = nl_pen_status_decode(b, n, &s)) < 0)
			return e;
		printf("flags=0x%08x\nstate=%s\nfault_code=%u\nstore_used=%u\nstore_capacity=%u\n"
		       "store_epoch=%u\nlast_seq=%u\npen_time=%u\nbattery_pct=%u\n",
		       (unsigned)s.flags, or_q(nl_pen_state_name((enum nl_pen_state)s.state)),
		       s.fault_code, s.store_used, s.store_capacity, (unsigned)s.store_epoch,
		       (unsigned)s.last_seq, (unsigned)s.pen_time, s.battery_pct);
	} else if (strcmp(kind, "cartridge") == 0) {
		struct nl_cartridge_info c;

		if ((e = nl_cartridge_info_decode(b, n, &c)) < 0)
			return e;
		printf("state=%u\n", c.state);
		print_uid("uid", c.uid);
		printf("lot=%s\nexpiry=%u\nneedle_count=%u\nneedle_length_um=%u\nfirst_use=%u\nrun_ms=%u\n",
		       c.lot, (unsigned)c.expiry, c.needle_count, c.needle_length_um,
		       (unsigned)c.first_use, (unsigned)c.run_ms);
	} else if (strcmp(kind, "limit-set") == 0) {
		struct nl_limit_set l;

		if ((e = nl_limit_set_decode(b, n, &l)) < 0)
			return e;
		printf("hash=0x%08x\n", (unsigned)nl_fnv1a32(b, n));
		print_limit_set("", &l);
	} else if (strcmp(kind, "active-limits") == 0) {
		struct nl_active_limits a;

		if ((e = nl_active_limits_decode(b, n, &a)) < 0)
			return e;
		printf("source=%u\nlimits_hash=0x%08x\nremaining_s=%u\n", a.source,
		       (unsigned)a.limits_hash, (unsigned)a.remaining_s);
		print_limit_set("set.", &a.set);
	} else if (strcmp(kind, "record") == 0) {
		return dump_record(b, n);
	} else if (strcmp(kind, "cp") == 0) {
		return dump_cp(b, n);
	} else if (strcmp(kind, "cp-rsp") == 0) {
		struct nl_cp_rsp r;

		if ((e = nl_cp_rsp_decode(b, n, &r)) < 0)
			return e;
		printf("req_op=%s\nresult=%s\nvalue=%u\n", or_q(nl_cp_op_name(r.req_op)),
		       or_q(nl_cp_result_name(r.result)), (unsigned)r.value);
	} else if (strcmp(kind, "racp") == 0) {
		struct nl_racp_req r;

		if ((e = nl_racp_req_decode(b, n, &r)) < 0)
			return e;
		printf("op=%s\noperator=%s\na=%u\nb=%u\n", or_q(nl_racp_op_name(r.op)),
		       or_q(nl_racp_operator_name(r.oper)), (unsigned)r.a, (unsigned)r.b);
	} else if (strcmp(kind, "racp-rsp") == 0) {
		struct nl_racp_rsp r;

		if ((e = nl_racp_rsp_decode(b, n, &r)) < 0)
			return e;
		printf("op=%s\n", or_q(nl_racp_op_name(r.op)));
		if (r.op == NL_RACP_NUMBER_RESPONSE)
			printf("count=%u\n", (unsigned)r.count);
		else
			printf("req_op=%s\ncode=%s\n", or_q(nl_racp_op_name(r.req_op)),
			       or_q(nl_racp_code_name(r.code)));
	} else if (strcmp(kind, "segment") == 0) {
		if (n < 1)
			return -ENODATA;
		printf("first=%u\nlast=%u\ncounter=%u\npayload_len=%zu\n", b[0] & NL_SEG_FIRST ? 1u : 0u,
		       b[0] & NL_SEG_LAST ? 1u : 0u, (unsigned)(b[0] >> 2), n - 1);
		if ((b[0] & (NL_SEG_FIRST | NL_SEG_LAST)) == (NL_SEG_FIRST | NL_SEG_LAST))
			return dump_record(b + 1, n - 1);
	} else {
		return -EINVAL;
	}
	return 0;
}

int main(int argc, char **argv)
{
	uint8_t buf[NL_RECORD_MAX * 2];
	int n, e;

	if (argc != 3) {
		fprintf(stderr, "usage: nl-decode KIND HEX\n"
				"KIND: feature live pen-status cartridge limit-set active-limits\n"
				"      record cp cp-rsp racp racp-rsp segment\n");
		return 2;
	}
	n = parse_hex(argv[2], buf, sizeof(buf));
	if (n < 0) {
		fprintf(stderr, "nl-decode: bad hex string\n");
		return 2;
	}
	e = dump(argv[1], buf, (size_t)n);
	if (e == -EINVAL) {
		fprintf(stderr, "nl-decode: unknown kind '%s'\n", argv[1]);
		return 2;
	}
	if (e < 0) {
		fprintf(stderr, "nl-decode: %s (%d)\n", nl_strerror(e), e);
		return 1;
	}
	return 0;
}
