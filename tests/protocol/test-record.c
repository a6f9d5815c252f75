/* SPDX-License-Identifier: MIT */
/*
 * Golden vectors and malformed input for the records of record.h.
 *
 * Byte arrays written by hand from the layout comment in record.h; the CRC
 * bytes (and the limit-set hash 0x39B89420 used in two bodies) were
 * computed separately with an independent Python CRC-16/MCRF4XX and FNV-1a
 * (checked against 0x6F91 for "123456789" and the published FNV vectors).
 */
#include "check.h"
#include "needlelink/record.h"

#define LEN(a) (sizeof(a) / sizeof((a)[0]))
#define HASH 0x39B89420u
#define HASH_LE 0x20, 0x94, 0xB8, 0x39
#define UID 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88
/* Header after the type: flags, seq 257, epoch, session 42, pen_time. */
#define HDR(type) (type), 0x03, 0x01, 0x01, 0x00, 0x00, 0x78, 0x56, 0x34, 0x12, \
	0x2A, 0x00, 0x00, 0x00, 0x00, 0x1C, 0x8A, 0x2E
#define HDR_OFF 18

static const uint8_t uid_ref[8] = { UID };

static int dec_rec(const uint8_t *b, size_t n, void *o) { return nl_record_decode(b, n, o); }
static int enc_rec(const void *i, uint8_t *b, size_t n) { return nl_record_encode(i, b, n); }

static struct nl_record hdr_ref(uint8_t type)
{
	struct nl_record r;

	memset(&r, 0, sizeof(r));
	r.hdr = (struct nl_record_header){ .type = type, .flags = NL_REC_CLOCK_SET | NL_REC_AUTHORISED,
					   .seq = 257, .store_epoch = 0x12345678, .session_id = 42,
					   .pen_time = 0x2E8A1C00 };
	return r;
}

static void check_header(const struct nl_record *r, uint8_t type)
{
	CHECK_INT(r->hdr.type, type);
	CHECK_INT(r->hdr.flags, 0x03);
	CHECK_INT(r->hdr.seq, 257);
	CHECK_INT(r->hdr.store_epoch, 0x12345678);
	CHECK_INT(r->hdr.session_id, 42);
	CHECK_INT(r->hdr.pen_time, 0x2E8A1C00);
}

/* Golden checks common to every type: decode, encode the hand-built
 * struct to the same bytes, malformed input, header field ranges. */
static void check_record_gold(const char *what, const uint8_t *g, size_t n,
			      const struct nl_record *ref, struct nl_record *ret)
{
	uint8_t buf[NL_RECORD_MAX];
	struct nl_record_header h;

	memset(ret, 0, sizeof(*ret));
	CHECK_INT(nl_record_decode(g, n, ret), 0);
	CHECK_INT(nl_record_encode(ref, buf, sizeof(buf)), (int)n);
	CHECK_MEM(buf, n, g, n);
	CHECK_INT(nl_record_peek_header(g, n, &h), 0);
	CHECK_INT(h.type, g[0]);
	CHECK_INT(h.seq, 257);
	check_malformed(what, g, n, dec_rec, enc_rec, CHECK_HAS_CRC | CHECK_EXTENSIBLE);

	CHECK_INT(check_decode_patched(g, n, 0, 0, 1, dec_rec, true), -ENOMSG);  /* type 0 */
	CHECK_INT(check_decode_patched(g, n, 0, 8, 1, dec_rec, true), -ENOMSG);  /* type 8 */
	CHECK_INT(check_decode_patched(g, n, 0, 0xFF, 1, dec_rec, true), -ENOMSG);
	CHECK_INT(check_decode_patched(g, n, 2, 0, 4, dec_rec, true), -ERANGE);  /* seq 0 */
	{
		uint8_t b[NL_RECORD_MAX];
		struct nl_record r;

		memcpy(b, g, n);
		b[1] = 0xFF; /* reserved flag bits ignored */
		check_with_crc(b, n - 2);
		CHECK_INT(nl_record_decode(b, n, &r), 0);
		CHECK_INT(r.hdr.flags, NL_REC_ALL);
		CHECK_INT(nl_record_peek_header(b, n, &h), 0);
		/* A later minor version's type: not decodable, but its header
		 * is (docs/protocol.md 11.3). Type 0 is never a record. */
		b[0] = 9;
		check_with_crc(b, n - 2);
		CHECK_INT(nl_record_decode(b, n, &r), -ENOMSG);
		CHECK_INT(nl_record_peek_header(b, n, &h), 0);
		CHECK_INT(h.type, 9);
		b[0] = 0;
		check_with_crc(b, n - 2);
		CHECK_INT(nl_record_peek_header(b, n, &h), -ENOMSG);
		b[0] = g[0];
		b[2] = b[3] = b[4] = b[5] = 0;
		check_with_crc(b, n - 2);
		CHECK_INT(nl_record_peek_header(b, n, &h), -ERANGE);
	}
	{
		struct nl_record x = *ref;

		x.hdr.flags = 0x04;
		CHECK_INT(nl_record_encode(&x, buf, sizeof(buf)), -ERANGE);
		x.hdr.flags = 0;
		x.hdr.seq = 0;
		CHECK_INT(nl_record_encode(&x, buf, sizeof(buf)), -ERANGE);
		x.hdr.seq = 0xFFFFFFFFu;
		CHECK(nl_record_encode(&x, buf, sizeof(buf)) > 0);
		x.hdr.type = NL_RECORD_TYPE_END;
		CHECK_INT(nl_record_encode(&x, buf, sizeof(buf)), -ENOMSG);
		x.hdr.type = 0;
		CHECK_INT(nl_record_encode(&x, buf, sizeof(buf)), -ENOMSG);
	}
}

/* Set one body field through a setter, encode, decode. */
static int roundtrip(const struct nl_record *x, struct nl_record *ret)
{
	uint8_t buf[NL_RECORD_MAX];
	int n = nl_record_encode(x, buf, sizeof(buf));

	if (n < 0)
		return n;
	memset(ret, 0, sizeof(*ret));
	return nl_record_decode(buf, (size_t)n, ret);
}

#define REC_OK(base, field, val)                                                     \
	do {                                                                         \
		struct nl_record x_ = (base), y_;                                    \
		x_.field = (val);                                                    \
		CHECK_INT(roundtrip(&x_, &y_), 0);                                   \
		CHECK_INT(y_.field, (val));                                          \
	} while (0)
#define REC_BAD(base, field, val)                                                    \
	do {                                                                         \
		struct nl_record x_ = (base), y_;                                    \
		x_.field = (val);                                                    \
		CHECK_INT(roundtrip(&x_, &y_), -ERANGE);                             \
	} while (0)

/* ---- SESSION_START ----------------------------------------------------- */

static const uint8_t gold_start[] = {
	HDR(0x01),
	HASH_LE,                /* limits hash */
	0x01,                   /* source SESSION */
	0x10, 0x0E, 0x00, 0x00, /* lifetime 3600 */
	UID,
	0x03,                   /* periorbital */
	0xA2, 0x13,             /* CRC 0x13A2 */
};

static void test_session_start(void)
{
	struct nl_record ref = hdr_ref(NL_RECORD_SESSION_START), r;
	const uint8_t *g = gold_start;
	size_t n = LEN(gold_start);

	ref.u.session_start = (struct nl_rec_session_start){
		.limits_hash = HASH, .limit_source = NL_LIMIT_SOURCE_SESSION, .lifetime_s = 3600,
		.cartridge_uid = { UID }, .zone = NL_ZONE_PERIORBITAL };
	CHECK_INT(n, HDR_OFF + 18 + 2);
	check_record_gold("session_start", g, n, &ref, &r);
	check_header(&r, 1);
	CHECK_INT(r.u.session_start.limits_hash, HASH);
	CHECK_INT(r.u.session_start.limit_source, 1);
	CHECK_INT(r.u.session_start.lifetime_s, 3600);
	CHECK_MEM(r.u.session_start.cartridge_uid, 8, uid_ref, 8);
	CHECK_INT(r.u.session_start.zone, 3);

	CHECK_INT(check_decode_patched(g, n, HDR_OFF + 4, 3, 1, dec_rec, true), -ERANGE);     /* source */
	CHECK_INT(check_decode_patched(g, n, HDR_OFF + 5, 86401, 4, dec_rec, true), -ERANGE); /* lifetime */
	CHECK_INT(check_decode_patched(g, n, HDR_OFF + 17, 16, 1, dec_rec, true), -ERANGE);   /* zone */
	REC_OK(ref, u.session_start.lifetime_s, 0);
	REC_OK(ref, u.session_start.lifetime_s, 86400);
	REC_BAD(ref, u.session_start.lifetime_s, 86401);
	REC_OK(ref, u.session_start.zone, NL_ZONE_NONE);
	REC_OK(ref, u.session_start.zone, NL_ZONE_UPPER_LIP);
	REC_BAD(ref, u.session_start.zone, NL_ZONE_COUNT);
	REC_OK(ref, u.session_start.limit_source, NL_LIMIT_SOURCE_FALLBACK);
	REC_BAD(ref, u.session_start.limit_source, NL_LIMIT_SOURCE_COUNT);
}

/* ---- SESSION_END with three zones -------------------------------------- */

static const uint8_t gold_end[] = {
	HDR(0x02),
	0x01,                   /* STOPPED */
	0x60, 0xE3, 0x16, 0x00, /* duration 1 500 000 ms */
	0xC0, 0x27, 0x09, 0x00, /* needle on 600 000 ms */
	0x70, 0x11, 0x01, 0x00, /* 70 000 strokes */
	0x03,                   /* 3 zones */
	/* periorbital: 3 passes, max 500, mean 450, 120 000 ms, 14 000 strokes */
	0x03, 0x03, 0x00, 0xF4, 0x01, 0xC2, 0x01, 0xC0, 0xD4, 0x01, 0x00, 0xB0, 0x36, 0x00, 0x00,
	/* nose: 2 passes, max 500, mean 500, 60 000 ms, 7 000 strokes */
	0x04, 0x02, 0x00, 0xF4, 0x01, 0xF4, 0x01, 0x60, 0xEA, 0x00, 0x00, 0x58, 0x1B, 0x00, 0x00,
	/* cheeks: 4 passes, max 1500, mean 1250, 420 000 ms, 49 000 strokes */
	0x05, 0x04, 0x00, 0xDC, 0x05, 0xE2, 0x04, 0xA0, 0x68, 0x06, 0x00, 0x68, 0xBF, 0x00, 0x00,
	0x20, 0x58,             /* CRC 0x5820 */
};

static struct nl_record end_ref(void)
{
	struct nl_record r = hdr_ref(NL_RECORD_SESSION_END);
	struct nl_rec_session_end *e = &r.u.session_end;

	e->reason = NL_SESSION_END_STOPPED;
	e->duration_ms = 1500000;
	e->needle_on_ms = 600000;
	e->strokes = 70000;
	e->zone_count = 3;
	e->zones[0] = (struct nl_rec_zone_total){ NL_ZONE_PERIORBITAL, 3, 500, 450, 120000, 14000 };
	e->zones[1] = (struct nl_rec_zone_total){ NL_ZONE_NOSE, 2, 500, 500, 60000, 7000 };
	e->zones[2] = (struct nl_rec_zone_total){ NL_ZONE_CHEEKS, 4, 1500, 1250, 420000, 49000 };
	return r;
}

static void test_session_end(void)
{
	struct nl_record ref = end_ref(), r;
	const uint8_t *g = gold_end;
	size_t n = LEN(gold_end);
	const size_t z0 = HDR_OFF + 14;

	CHECK_INT(n, HDR_OFF + 14 + 3 * 15 + 2);
	check_record_gold("session_end", g, n, &ref, &r);
	check_header(&r, 2);
	CHECK_INT(r.u.session_end.reason, 1);
	CHECK_INT(r.u.session_end.duration_ms, 1500000);
	CHECK_INT(r.u.session_end.needle_on_ms, 600000);
	CHECK_INT(r.u.session_end.strokes, 70000);
	CHECK_INT(r.u.session_end.zone_count, 3);
	CHECK_INT(r.u.session_end.zones[0].zone, 3);
	CHECK_INT(r.u.session_end.zones[0].passes, 3);
	CHECK_INT(r.u.session_end.zones[0].depth_max_um, 500);
	CHECK_INT(r.u.session_end.zones[0].depth_mean_um, 450);
	CHECK_INT(r.u.session_end.zones[0].needle_on_ms, 120000);
	CHECK_INT(r.u.session_end.zones[0].strokes, 14000);
	CHECK_INT(r.u.session_end.zones[1].zone, 4);
	CHECK_INT(r.u.session_end.zones[1].strokes, 7000);
	CHECK_INT(r.u.session_end.zones[2].zone, 5);
	CHECK_INT(r.u.session_end.zones[2].passes, 4);
	CHECK_INT(r.u.session_end.zones[2].depth_max_um, 1500);
	CHECK_INT(r.u.session_end.zones[2].depth_mean_um, 1250);
	CHECK_INT(r.u.session_end.zones[2].needle_on_ms, 420000);
	CHECK_INT(r.u.session_end.zones[2].strokes, 49000);

	CHECK_INT(check_decode_patched(g, n, HDR_OFF, 0, 1, dec_rec, true), -ERANGE);       /* reason */
	CHECK_INT(check_decode_patched(g, n, HDR_OFF, 7, 1, dec_rec, true), -ERANGE);
	CHECK_INT(check_decode_patched(g, n, HDR_OFF + 13, 17, 1, dec_rec, true), -ERANGE); /* count */
	CHECK_INT(check_decode_patched(g, n, HDR_OFF + 13, 4, 1, dec_rec, true), -ENODATA);
	CHECK_INT(check_decode_patched(g, n, z0, 0, 1, dec_rec, true), 0);                  /* zone 0: no zone */
	CHECK_INT(check_decode_patched(g, n, z0 + 30, 16, 1, dec_rec, true), -ERANGE);      /* zone 16 */
	CHECK_INT(check_decode_patched(g, n, z0 + 15, 3, 1, dec_rec, true), -ERANGE);       /* duplicate */
	CHECK_INT(check_decode_patched(g, n, z0 + 30, 4, 1, dec_rec, true), -ERANGE);
	CHECK_INT(check_decode_patched(g, n, z0, 6, 1, dec_rec, true), -ERANGE);            /* unsorted */
	CHECK_INT(check_decode_patched(g, n, z0 + 3, 3001, 2, dec_rec, true), -ERANGE);     /* max */
	CHECK_INT(check_decode_patched(g, n, z0 + 5, 3001, 2, dec_rec, true), -ERANGE);     /* mean */
	/* Fewer zones than bytes: the rest is a newer version's, ignored. */
	CHECK_INT(check_decode_patched(g, n, HDR_OFF + 13, 2, 1, dec_rec, true), 0);

	REC_OK(ref, u.session_end.reason, NL_SESSION_END_FAULT);
	REC_BAD(ref, u.session_end.reason, NL_SESSION_END_REASON_END);
	REC_BAD(ref, u.session_end.reason, 0);
	REC_OK(ref, u.session_end.zone_count, 0);
	REC_BAD(ref, u.session_end.zone_count, NL_SESSION_ZONES_MAX + 1);
	REC_OK(ref, u.session_end.zones[2].depth_max_um, 3000);
	REC_BAD(ref, u.session_end.zones[2].depth_max_um, 3001);
	REC_OK(ref, u.session_end.zones[2].depth_mean_um, 3000);
	REC_BAD(ref, u.session_end.zones[2].depth_mean_um, 3001);
	REC_OK(ref, u.session_end.zones[0].zone, NL_ZONE_NONE);
	REC_OK(ref, u.session_end.zones[2].zone, NL_ZONE_UPPER_LIP);
	REC_BAD(ref, u.session_end.zones[2].zone, NL_ZONE_COUNT);
	REC_BAD(ref, u.session_end.zones[1].zone, NL_ZONE_PERIORBITAL);
	/* The largest SESSION_END: zone 0 (no zone selected) and every zone. */
	{
		struct nl_record x = ref, y;

		x.u.session_end.zone_count = 16;
		for (unsigned i = 0; i < 16; i++)
			x.u.session_end.zones[i] = (struct nl_rec_zone_total){ (uint8_t)i, 1, 3000, 3000, 1, 1 };
		CHECK_INT(roundtrip(&x, &y), 0);
		CHECK_INT(y.u.session_end.zone_count, 16);
		CHECK_INT(y.u.session_end.zones[0].zone, 0);
		CHECK_INT(y.u.session_end.zones[15].zone, 15);
	}
}

/* ---- SEGMENT ----------------------------------------------------------- */

static const uint8_t gold_seg[] = {
	HDR(0x03),
	0x05,                   /* cheeks */
	0x02, 0x00,             /* pass 2 */
	0xE8, 0x03,             /* set 1000 */
	0xDC, 0x05,             /* cap 1500 */
	0xFF, 0xFF,             /* measured unknown */
	0x78, 0x00,             /* 120 Hz */
	0x30, 0x75, 0x00, 0x00, /* run 30 000 ms */
	0x10, 0x0E, 0x00, 0x00, /* 3600 strokes */
	UID,
	0x01, 0x00,             /* status CLAMPED */
	0x01,                   /* end: operator */
	0xA9, 0x7F,             /* CRC 0x7FA9 */
};

static void test_segment(void)
{
	struct nl_record ref = hdr_ref(NL_RECORD_SEGMENT), r;
	const uint8_t *g = gold_seg;
	size_t n = LEN(gold_seg);

	ref.u.segment = (struct nl_rec_segment){
		.zone = NL_ZONE_CHEEKS, .pass = 2, .depth_set_um = 1000, .depth_cap_um = 1500,
		.depth_measured_um = NL_DEPTH_UNKNOWN, .speed_hz = 120, .run_ms = 30000,
		.strokes = 3600, .cartridge_uid = { UID }, .status = NL_SEG_CLAMPED,
		.end_reason = NL_SEGMENT_END_OPERATOR };
	CHECK_INT(n, HDR_OFF + 30 + 2);
	check_record_gold("segment", g, n, &ref, &r);
	check_header(&r, 3);
	CHECK_INT(r.u.segment.zone, 5);
	CHECK_INT(r.u.segment.pass, 2);
	CHECK_INT(r.u.segment.depth_set_um, 1000);
	CHECK_INT(r.u.segment.depth_cap_um, 1500);
	CHECK_INT(r.u.segment.depth_measured_um, 0xFFFF);
	CHECK_INT(r.u.segment.speed_hz, 120);
	CHECK_INT(r.u.segment.run_ms, 30000);
	CHECK_INT(r.u.segment.strokes, 3600);
	CHECK_MEM(r.u.segment.cartridge_uid, 8, uid_ref, 8);
	CHECK_INT(r.u.segment.status, 1);
	CHECK_INT(r.u.segment.end_reason, 1);

	CHECK_INT(check_decode_patched(g, n, HDR_OFF, 16, 1, dec_rec, true), -ERANGE);          /* zone */
	CHECK_INT(check_decode_patched(g, n, HDR_OFF + 3, 3001, 2, dec_rec, true), -ERANGE);    /* set */
	CHECK_INT(check_decode_patched(g, n, HDR_OFF + 5, 3001, 2, dec_rec, true), -ERANGE);    /* cap */
	CHECK_INT(check_decode_patched(g, n, HDR_OFF + 7, 3001, 2, dec_rec, true), -ERANGE);    /* measured */
	CHECK_INT(check_decode_patched(g, n, HDR_OFF + 9, 501, 2, dec_rec, true), -ERANGE);     /* speed */
	CHECK_INT(check_decode_patched(g, n, HDR_OFF + 29, 0, 1, dec_rec, true), -ERANGE);      /* end */
	CHECK_INT(check_decode_patched(g, n, HDR_OFF + 29, 8, 1, dec_rec, true), -ERANGE);
	{
		uint8_t b[64];

		memcpy(b, g, n);
		b[HDR_OFF + 27] = 0x81; /* reserved status bit 7 */
		b[HDR_OFF + 28] = 0xFF;
		check_with_crc(b, n - 2);
		CHECK_INT(nl_record_decode(b, n, &r), 0);
		CHECK_INT(r.u.segment.status, 0x01);
	}
	REC_BAD(ref, u.segment.status, 0x80);
	REC_OK(ref, u.segment.status, NL_SEG_ALL);
	REC_OK(ref, u.segment.zone, NL_ZONE_NONE);
	REC_BAD(ref, u.segment.zone, NL_ZONE_COUNT);
	REC_OK(ref, u.segment.depth_set_um, 3000);
	REC_BAD(ref, u.segment.depth_set_um, 3001);
	REC_OK(ref, u.segment.depth_cap_um, 3000);
	REC_BAD(ref, u.segment.depth_cap_um, 3001);
	REC_OK(ref, u.segment.depth_measured_um, 3000);
	REC_BAD(ref, u.segment.depth_measured_um, 3001);
	REC_OK(ref, u.segment.speed_hz, 500);
	REC_BAD(ref, u.segment.speed_hz, 501);
	REC_OK(ref, u.segment.end_reason, NL_SEGMENT_END_FAULT);
	REC_BAD(ref, u.segment.end_reason, NL_SEGMENT_END_END);
}

/* ---- CARTRIDGE --------------------------------------------------------- */

static const uint8_t gold_cart[] = {
	HDR(0x04),
	0x03,                   /* REJECTED */
	0x01,                   /* reused */
	UID,
	'L', 'O', 'T', '4', '2', 'A', 0x00, 0x00,
	0x00, 0x00, 0x00, 0x30, /* expiry */
	0x0C,                   /* 12 needles */
	0xDC, 0x05,             /* 1500 um */
	0x00, 0x00, 0x00, 0x2E, /* first use 0x2E000000 */
	0x90, 0x5F, 0x01, 0x00, /* run 90 000 ms */
	0x00, 0xC2,             /* CRC 0xC200 */
};

static void test_cartridge(void)
{
	struct nl_record ref = hdr_ref(NL_RECORD_CARTRIDGE), r;
	const uint8_t *g = gold_cart;
	size_t n = LEN(gold_cart);

	ref.u.cartridge = (struct nl_rec_cartridge){
		.event = NL_CARTRIDGE_EVENT_REJECTED, .reject_reason = NL_REJECT_REUSED,
		.uid = { UID }, .lot = "LOT42A", .expiry = 0x30000000, .needle_count = 12,
		.needle_length_um = 1500, .first_use = 0x2E000000, .run_ms = 90000 };
	CHECK_INT(n, HDR_OFF + 33 + 2);
	check_record_gold("cartridge", g, n, &ref, &r);
	check_header(&r, 4);
	CHECK_INT(r.u.cartridge.event, 3);
	CHECK_INT(r.u.cartridge.reject_reason, 1);
	CHECK_MEM(r.u.cartridge.uid, 8, uid_ref, 8);
	CHECK_STR(r.u.cartridge.lot, "LOT42A");
	CHECK_INT(r.u.cartridge.expiry, 0x30000000);
	CHECK_INT(r.u.cartridge.needle_count, 12);
	CHECK_INT(r.u.cartridge.needle_length_um, 1500);
	CHECK_INT(r.u.cartridge.first_use, 0x2E000000);
	CHECK_INT(r.u.cartridge.run_ms, 90000);

	CHECK_INT(check_decode_patched(g, n, HDR_OFF, 0, 1, dec_rec, true), -ERANGE);        /* event */
	CHECK_INT(check_decode_patched(g, n, HDR_OFF, 4, 1, dec_rec, true), -ERANGE);
	CHECK_INT(check_decode_patched(g, n, HDR_OFF, 1, 1, dec_rec, true), -ERANGE);        /* reason, not rejected */
	CHECK_INT(check_decode_patched(g, n, HDR_OFF + 1, 5, 1, dec_rec, true), -ERANGE);    /* reason */
	CHECK_INT(check_decode_patched(g, n, HDR_OFF + 1, 0, 1, dec_rec, true), 0);          /* rejected, reason none */
	CHECK_INT(check_decode_patched(g, n, HDR_OFF + 10, 0x01, 1, dec_rec, true), -ERANGE);/* lot */
	CHECK_INT(check_decode_patched(g, n, HDR_OFF + 17, 'Z', 1, dec_rec, true), -ERANGE); /* padding */
	CHECK_INT(check_decode_patched(g, n, HDR_OFF + 22, 65, 1, dec_rec, true), -ERANGE);  /* needles */
	CHECK_INT(check_decode_patched(g, n, HDR_OFF + 23, 3001, 2, dec_rec, true), -ERANGE);/* length */
	REC_OK(ref, u.cartridge.reject_reason, NL_REJECT_NEEDLE_TOO_SHORT);
	REC_BAD(ref, u.cartridge.reject_reason, NL_REJECT_END);
	REC_OK(ref, u.cartridge.reject_reason, NL_REJECT_NONE);
	REC_OK(ref, u.cartridge.needle_count, 64);
	REC_OK(ref, u.cartridge.needle_count, 0); /* unreadable cartridge */
	REC_BAD(ref, u.cartridge.needle_count, 65);
	REC_OK(ref, u.cartridge.needle_length_um, 3000);
	REC_BAD(ref, u.cartridge.needle_length_um, 3001);
	REC_BAD(ref, u.cartridge.lot[0], '\x01');
	{
		struct nl_record x = ref, y;

		x.u.cartridge.event = NL_CARTRIDGE_INSERTED;
		x.u.cartridge.reject_reason = NL_REJECT_NONE;
		CHECK_INT(roundtrip(&x, &y), 0);
		CHECK_INT(y.u.cartridge.event, NL_CARTRIDGE_INSERTED);
		x.u.cartridge.event = NL_CARTRIDGE_REMOVED;
		CHECK_INT(roundtrip(&x, &y), 0);
		x.u.cartridge.reject_reason = NL_REJECT_EXPIRED;
		CHECK_INT(roundtrip(&x, &y), -ERANGE);
		x.u.cartridge.reject_reason = NL_REJECT_NONE;
		x.u.cartridge.event = NL_CARTRIDGE_EVENT_END;
		CHECK_INT(roundtrip(&x, &y), -ERANGE);
	}
}

/* ---- LIMIT ------------------------------------------------------------- */

static const uint8_t gold_limit[] = {
	HDR(0x05),
	0x03,                   /* LOCK */
	0x02,                   /* origin gateway */
	0x03,                   /* periorbital */
	HASH_LE,
	0x05, 0x00,             /* value 5 passes */
	0x05, 0x00,             /* threshold 5 */
	0x02,                   /* reason PASSES */
	0x08, 0x07, 0x00, 0x00, /* remaining 1800 s */
	0xA6, 0x95,             /* CRC 0x95A6 */
};

static void test_limit(void)
{
	struct nl_record ref = hdr_ref(NL_RECORD_LIMIT), r;
	const uint8_t *g = gold_limit;
	size_t n = LEN(gold_limit);

	ref.u.limit = (struct nl_rec_limit){
		.event = NL_LIMIT_EVENT_LOCK, .origin = NL_LIMIT_ORIGIN_GATEWAY,
		.zone = NL_ZONE_PERIORBITAL, .limits_hash = HASH, .value = 5, .threshold = 5,
		.reason = NL_LOCK_REASON_PASSES, .remaining_s = 1800 };
	CHECK_INT(n, HDR_OFF + 16 + 2);
	check_record_gold("limit", g, n, &ref, &r);
	check_header(&r, 5);
	CHECK_INT(r.u.limit.event, 3);
	CHECK_INT(r.u.limit.origin, 2);
	CHECK_INT(r.u.limit.zone, 3);
	CHECK_INT(r.u.limit.limits_hash, HASH);
	CHECK_INT(r.u.limit.value, 5);
	CHECK_INT(r.u.limit.threshold, 5);
	CHECK_INT(r.u.limit.reason, 2);
	CHECK_INT(r.u.limit.remaining_s, 1800);

	CHECK_INT(check_decode_patched(g, n, HDR_OFF, 0, 1, dec_rec, true), -ERANGE);         /* event */
	CHECK_INT(check_decode_patched(g, n, HDR_OFF, 9, 1, dec_rec, true), -ERANGE);
	CHECK_INT(check_decode_patched(g, n, HDR_OFF, 1, 1, dec_rec, true), -ERANGE);         /* reason w/o lock */
	CHECK_INT(check_decode_patched(g, n, HDR_OFF + 1, 3, 1, dec_rec, true), -ERANGE);     /* origin */
	CHECK_INT(check_decode_patched(g, n, HDR_OFF + 1, 0, 1, dec_rec, true), -ERANGE);
	CHECK_INT(check_decode_patched(g, n, HDR_OFF + 2, 16, 1, dec_rec, true), -ERANGE);    /* zone */
	CHECK_INT(check_decode_patched(g, n, HDR_OFF + 11, 7, 1, dec_rec, true), -ERANGE);    /* reason */
	CHECK_INT(check_decode_patched(g, n, HDR_OFF + 12, 86401, 4, dec_rec, true), -ERANGE);/* remaining */
	REC_OK(ref, u.limit.reason, NL_LOCK_REASON_FAULT);
	REC_BAD(ref, u.limit.reason, NL_LOCK_REASON_END);
	REC_OK(ref, u.limit.remaining_s, 86400);
	REC_BAD(ref, u.limit.remaining_s, 86401);
	REC_OK(ref, u.limit.zone, NL_ZONE_NONE);
	REC_BAD(ref, u.limit.zone, NL_ZONE_COUNT);
	REC_OK(ref, u.limit.origin, NL_LIMIT_ORIGIN_FIRMWARE);
	REC_BAD(ref, u.limit.origin, NL_LIMIT_ORIGIN_END);
	{
		struct nl_record x = ref, y;

		x.u.limit.event = NL_LIMIT_EVENT_CLAMP;
		x.u.limit.reason = NL_LOCK_REASON_NONE;
		x.u.limit.value = 3000;
		x.u.limit.threshold = 3000;
		CHECK_INT(roundtrip(&x, &y), 0);
		x.u.limit.value = 3001;
		CHECK_INT(roundtrip(&x, &y), -ERANGE);
		x.u.limit.value = 1200;
		x.u.limit.threshold = 3001;
		CHECK_INT(roundtrip(&x, &y), -ERANGE);
		x.u.limit.event = NL_LIMIT_EVENT_TIME_WARN; /* seconds: no depth bound */
		CHECK_INT(roundtrip(&x, &y), 0);
		CHECK_INT(y.u.limit.threshold, 3001);
		x.u.limit.event = NL_LIMIT_EVENT_END;
		CHECK_INT(roundtrip(&x, &y), -ERANGE);
		x.u.limit.event = NL_LIMIT_EVENT_UNLOCK;
		x.u.limit.reason = NL_LOCK_REASON_OPERATOR;
		CHECK_INT(roundtrip(&x, &y), 0);
	}
}

/* LIMIT OVERRIDE written by an UNLOCK carries that UNLOCK's reason
 * (protocol.md 8.3.6): a pass lock in periorbital (value 6 > 5) lifted
 * by an authorised unlock. */
static const uint8_t gold_limit_override[] = {
	HDR(0x05),
	0x05,                   /* OVERRIDE */
	0x02,                   /* origin gateway */
	0x03,                   /* periorbital */
	HASH_LE,
	0x06, 0x00,             /* value 6 passes (the LOCK's) */
	0x05, 0x00,             /* threshold 5 */
	0x05,                   /* reason OPERATOR (UNLOCK's) */
	0x08, 0x07, 0x00, 0x00, /* remaining 1800 s */
	0x2E, 0x4F,             /* CRC 0x4F2E */
};

static void test_limit_reason(void)
{
	struct nl_record ref = hdr_ref(NL_RECORD_LIMIT), r;
	const uint8_t *g = gold_limit_override;
	size_t n = LEN(gold_limit_override);

	ref.u.limit = (struct nl_rec_limit){
		.event = NL_LIMIT_EVENT_OVERRIDE, .origin = NL_LIMIT_ORIGIN_GATEWAY,
		.zone = NL_ZONE_PERIORBITAL, .limits_hash = HASH, .value = 6, .threshold = 5,
		.reason = NL_LOCK_REASON_OPERATOR, .remaining_s = 1800 };
	CHECK_INT(n, HDR_OFF + 16 + 2);
	check_record_gold("limit_override", g, n, &ref, &r);
	CHECK_INT(r.u.limit.event, NL_LIMIT_EVENT_OVERRIDE);
	CHECK_INT(r.u.limit.reason, NL_LOCK_REASON_OPERATOR);
	/* Every lock reason, and none, is valid on OVERRIDE; past the enum is not. */
	for (unsigned v = 0; v < NL_LOCK_REASON_END; v++) {
		REC_OK(ref, u.limit.reason, (uint8_t)v);
		CHECK_INT(check_decode_patched(g, n, HDR_OFF + 11, v, 1, dec_rec, true), 0);
	}
	REC_BAD(ref, u.limit.reason, NL_LOCK_REASON_END);
	CHECK_INT(check_decode_patched(g, n, HDR_OFF + 11, NL_LOCK_REASON_END, 1, dec_rec, true),
		  -ERANGE);
	/* Which events may carry a reason: LOCK, UNLOCK, OVERRIDE (4.2.5, 8.3.6). */
	for (unsigned ev = NL_LIMIT_EVENT_APPLIED; ev < NL_LIMIT_EVENT_END; ev++) {
		bool has_reason = ev == NL_LIMIT_EVENT_LOCK || ev == NL_LIMIT_EVENT_UNLOCK ||
				  ev == NL_LIMIT_EVENT_OVERRIDE;
		struct nl_record x = ref, y;

		x.u.limit.event = (uint8_t)ev;
		CHECK_INT(roundtrip(&x, &y), has_reason ? 0 : -ERANGE);
		CHECK_INT(check_decode_patched(g, n, HDR_OFF, ev, 1, dec_rec, true),
			  has_reason ? 0 : -ERANGE);
		x.u.limit.reason = NL_LOCK_REASON_NONE;
		CHECK_INT(roundtrip(&x, &y), 0);
	}
}

/* ---- FAULT ------------------------------------------------------------- */

static const uint8_t gold_fault[] = {
	0x06, 0x03, 0x01, 0x01, 0x00, 0x00, 0x78, 0x56, 0x34, 0x12,
	0x00, 0x00, 0x00, 0x00, /* outside any session */
	0x00, 0x1C, 0x8A, 0x2E,
	0x03, 0x00,             /* OVERHEAT */
	0x03,                   /* CRITICAL */
	0x00,                   /* reserved */
	0x55, 0x00, 0x00, 0x00, /* detail 85 */
	0x5A, 0x37,             /* CRC 0x375A */
};

static void test_fault(void)
{
	struct nl_record ref = hdr_ref(NL_RECORD_FAULT), r;
	const uint8_t *g = gold_fault;
	size_t n = LEN(gold_fault);

	ref.hdr.session_id = 0;
	ref.u.fault = (struct nl_rec_fault){ NL_FAULT_OVERHEAT, NL_FAULT_CRITICAL, 85 };
	CHECK_INT(n, HDR_OFF + 8 + 2);
	check_record_gold("fault", g, n, &ref, &r);
	CHECK_INT(r.hdr.session_id, 0);
	CHECK_INT(r.u.fault.code, 3);
	CHECK_INT(r.u.fault.severity, 3);
	CHECK_INT(r.u.fault.detail, 85);

	CHECK_INT(check_decode_patched(g, n, HDR_OFF, 0, 2, dec_rec, true), -ERANGE);     /* code */
	CHECK_INT(check_decode_patched(g, n, HDR_OFF, 0x0103, 2, dec_rec, true), -ERANGE);
	CHECK_INT(check_decode_patched(g, n, HDR_OFF + 2, 4, 1, dec_rec, true), -ERANGE); /* severity */
	CHECK_INT(check_decode_patched(g, n, HDR_OFF + 2, 0, 1, dec_rec, true), -ERANGE);
	CHECK_INT(check_decode_patched(g, n, HDR_OFF + 3, 0xAA, 1, dec_rec, true), 0);   /* reserved */
	REC_OK(ref, u.fault.code, NL_FAULT_WATCHDOG);
	REC_BAD(ref, u.fault.code, NL_FAULT_CODE_END);
	REC_OK(ref, u.fault.severity, NL_FAULT_INFO);
	REC_BAD(ref, u.fault.severity, NL_FAULT_SEVERITY_END);
}

/* ---- TIME_CHANGE ------------------------------------------------------- */

static const uint8_t gold_time[] = {
	0x07, 0x01,             /* flags: clock set */
	0x01, 0x01, 0x00, 0x00, 0x78, 0x56, 0x34, 0x12, 0x2A, 0x00, 0x00, 0x00,
	0x00, 0x1C, 0x8A, 0x2E,
	0x10, 0x0E, 0x00, 0x00, /* old 3600 */
	0x00, 0x1C, 0x8A, 0x2E, /* new */
	0x01,                   /* GATEWAY */
	0xDA, 0xED,             /* CRC 0xEDDA */
};

static void test_time_change(void)
{
	struct nl_record ref = hdr_ref(NL_RECORD_TIME_CHANGE), r;
	const uint8_t *g = gold_time;
	size_t n = LEN(gold_time);

	ref.hdr.flags = NL_REC_CLOCK_SET;
	ref.u.time_change = (struct nl_rec_time_change){ 3600, 0x2E8A1C00, NL_TIME_SOURCE_GATEWAY };
	CHECK_INT(n, HDR_OFF + 9 + 2);
	check_record_gold("time_change", g, n, &ref, &r);
	CHECK_INT(r.hdr.flags, 0x01);
	CHECK_INT(r.u.time_change.old_time, 3600);
	CHECK_INT(r.u.time_change.new_time, 0x2E8A1C00);
	CHECK_INT(r.u.time_change.source, 1);
	CHECK_INT(check_decode_patched(g, n, HDR_OFF + 8, 0, 1, dec_rec, true), -ERANGE);
	CHECK_INT(check_decode_patched(g, n, HDR_OFF + 8, 4, 1, dec_rec, true), -ERANGE);
	REC_OK(ref, u.time_change.source, NL_TIME_SOURCE_RTC_LOSS);
	REC_BAD(ref, u.time_change.source, NL_TIME_SOURCE_END);
}

/* ---- Names ------------------------------------------------------------- */

static void test_names(void)
{
	CHECK_STR(nl_record_type_name(NL_RECORD_SESSION_START), "session_start");
	CHECK_STR(nl_record_type_name(NL_RECORD_SESSION_END), "session_end");
	CHECK_STR(nl_record_type_name(NL_RECORD_SEGMENT), "segment");
	CHECK_STR(nl_record_type_name(NL_RECORD_CARTRIDGE), "cartridge");
	CHECK_STR(nl_record_type_name(NL_RECORD_LIMIT), "limit");
	CHECK_STR(nl_record_type_name(NL_RECORD_FAULT), "fault");
	CHECK_STR(nl_record_type_name(NL_RECORD_TIME_CHANGE), "time_change");
	CHECK_STR(nl_record_type_name(0), NULL);
	CHECK_STR(nl_record_type_name(NL_RECORD_TYPE_END), NULL);
	CHECK_STR(nl_session_end_reason_name(NL_SESSION_END_POWER_LOSS), "power_loss");
	CHECK_STR(nl_session_end_reason_name(NL_SESSION_END_STOPPED), "stopped");
	CHECK_STR(nl_session_end_reason_name(0), NULL);
	CHECK_STR(nl_session_end_reason_name(NL_SESSION_END_REASON_END), NULL);
	CHECK_STR(nl_segment_end_name(NL_SEGMENT_END_OPERATOR), "operator");
	CHECK_STR(nl_segment_end_name(NL_SEGMENT_END_FAULT), "fault");
	CHECK_STR(nl_segment_end_name(NL_SEGMENT_END_END), NULL);
	CHECK_STR(nl_cartridge_event_name(NL_CARTRIDGE_EVENT_REJECTED), "rejected");
	CHECK_STR(nl_cartridge_event_name(NL_CARTRIDGE_INSERTED), "inserted");
	CHECK_STR(nl_cartridge_event_name(NL_CARTRIDGE_EVENT_END), NULL);
	CHECK_STR(nl_cartridge_reject_name(NL_REJECT_NEEDLE_TOO_SHORT), "needle_too_short");
	CHECK_STR(nl_cartridge_reject_name(NL_REJECT_NONE), "none");
	CHECK_STR(nl_cartridge_reject_name(NL_REJECT_END), NULL);
	CHECK_STR(nl_limit_event_name(NL_LIMIT_EVENT_PASS_WARN), "pass_warn");
	CHECK_STR(nl_limit_event_name(NL_LIMIT_EVENT_TIME_WARN), "time_warn");
	CHECK_STR(nl_limit_event_name(NL_LIMIT_EVENT_APPLIED), "applied");
	CHECK_STR(nl_limit_event_name(NL_LIMIT_EVENT_END), NULL);
	CHECK_STR(nl_limit_origin_name(NL_LIMIT_ORIGIN_FIRMWARE), "firmware");
	CHECK_STR(nl_limit_origin_name(NL_LIMIT_ORIGIN_GATEWAY), "gateway");
	CHECK_STR(nl_limit_origin_name(0), NULL);
	CHECK_STR(nl_limit_origin_name(NL_LIMIT_ORIGIN_END), NULL);
	CHECK_STR(nl_lock_reason_name(NL_LOCK_REASON_NEEDLE_ON), "needle_on");
	CHECK_STR(nl_lock_reason_name(NL_LOCK_REASON_NONE), "none");
	CHECK_STR(nl_lock_reason_name(NL_LOCK_REASON_END), NULL);
	CHECK_STR(nl_fault_code_name(NL_FAULT_MOTOR_STALL), "motor_stall");
	CHECK_STR(nl_fault_code_name(NL_FAULT_DEPTH_SENSOR), "depth_sensor");
	CHECK_STR(nl_fault_code_name(NL_FAULT_CODE_END), NULL);
	CHECK_STR(nl_time_source_name(NL_TIME_SOURCE_RTC_LOSS), "rtc_loss");
	CHECK_STR(nl_time_source_name(NL_TIME_SOURCE_END), NULL);
	CHECK_STR(nl_time_source_name(1000000), NULL);
	/* Every defined value of every enum has a name. */
	for (unsigned v = 1; v < NL_RECORD_TYPE_END; v++)
		CHECK(nl_record_type_name(v) != NULL);
	for (unsigned v = 1; v < NL_SESSION_END_REASON_END; v++)
		CHECK(nl_session_end_reason_name(v) != NULL);
	for (unsigned v = 1; v < NL_SEGMENT_END_END; v++)
		CHECK(nl_segment_end_name(v) != NULL);
	for (unsigned v = 1; v < NL_LIMIT_EVENT_END; v++)
		CHECK(nl_limit_event_name(v) != NULL);
	for (unsigned v = 0; v < NL_LOCK_REASON_END; v++)
		CHECK(nl_lock_reason_name(v) != NULL);
	for (unsigned v = 1; v < NL_FAULT_CODE_END; v++)
		CHECK(nl_fault_code_name(v) != NULL);
}

int main(void)
{
	test_session_start();
	test_session_end();
	test_segment();
	test_cartridge();
	test_limit();
	test_limit_reason();
	test_fault();
	test_time_change();
	test_names();
	return check_summary("test-record");
}
