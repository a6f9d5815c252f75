/* SPDX-License-Identifier: MIT */
/*
 * Golden vectors and malformed input for the values of pdu.h.
 *
 * Every byte array below was written by hand from the layout comments in
 * pdu.h. The two CRC bytes at the end of each were computed separately,
 * with a bitwise Python implementation of CRC-16/MCRF4XX (reflected poly
 * 0x8408, init 0xFFFF) that reproduces the check value 0x6F91 for
 * "123456789", and the limit-set hash 0x39B89420 with a Python FNV-1a that
 * reproduces the published vectors ("" 0x811C9DC5, "a" 0xE40C292C,
 * "foobar" 0xBF9CF968). test-crc checks nl_crc16/nl_fnv1a32 themselves.
 */
#include "check.h"
#include "needlelink/pdu.h"
#include "needlelink/record.h"

#define LEN(a) (sizeof(a) / sizeof((a)[0]))

/* Edge round trip: set one field, encode, decode, compare the field. */
#define EDGE_OK(enc, dec, T, base, field, val)                                       \
	do {                                                                         \
		T x_ = (base), y_;                                                   \
		uint8_t b_[CHECK_BUF];                                               \
		int n_;                                                              \
		x_.field = (val);                                                    \
		n_ = enc(&x_, b_, sizeof(b_));                                       \
		CHECK(n_ > 0);                                                       \
		memset(&y_, 0, sizeof(y_));                                          \
		CHECK_INT(n_ > 0 ? dec(b_, (size_t)n_, &y_) : n_, 0);               \
		CHECK_INT(y_.field, (val));                                          \
	} while (0)
#define EDGE_BAD(enc, T, base, field, val)                                           \
	do {                                                                         \
		T x_ = (base);                                                       \
		uint8_t b_[CHECK_BUF];                                               \
		x_.field = (val);                                                    \
		CHECK_INT(enc(&x_, b_, sizeof(b_)), -ERANGE);                        \
	} while (0)

static int dec_feature(const uint8_t *b, size_t n, void *o) { return nl_feature_decode(b, n, o); }
static int enc_feature(const void *i, uint8_t *b, size_t n) { return nl_feature_encode(i, b, n); }
static int dec_live(const uint8_t *b, size_t n, void *o) { return nl_live_decode(b, n, o); }
static int enc_live(const void *i, uint8_t *b, size_t n) { return nl_live_encode(i, b, n); }
static int dec_status(const uint8_t *b, size_t n, void *o) { return nl_pen_status_decode(b, n, o); }
static int enc_status(const void *i, uint8_t *b, size_t n) { return nl_pen_status_encode(i, b, n); }
static int dec_cart(const uint8_t *b, size_t n, void *o) { return nl_cartridge_info_decode(b, n, o); }
static int enc_cart(const void *i, uint8_t *b, size_t n) { return nl_cartridge_info_encode(i, b, n); }
static int dec_lset(const uint8_t *b, size_t n, void *o) { return nl_limit_set_decode(b, n, o); }
static int enc_lset(const void *i, uint8_t *b, size_t n) { return nl_limit_set_encode(i, b, n); }
static int dec_active(const uint8_t *b, size_t n, void *o) { return nl_active_limits_decode(b, n, o); }
static int enc_active(const void *i, uint8_t *b, size_t n) { return nl_active_limits_encode(i, b, n); }

/* ---- Feature ----------------------------------------------------------- */

static const uint8_t gold_feature[] = {
	0x01, 0x00,             /* proto 1.0 */
	0x0B, 0x00,             /* flags: motorised | depth sensing | cartridge reader */
	0xFA, 0x00,             /* depth_min 250 */
	0xC4, 0x09,             /* depth_max 2500 */
	0xFA, 0x00,             /* step 250 */
	0x64, 0x00,             /* speed_min 100 */
	0x96, 0x00,             /* speed_max 150 */
	0xE8, 0x03,             /* store_capacity 1000 */
	0x78, 0x56, 0x34, 0x12, /* store_epoch */
	0x0A,                   /* live 10 Hz */
	0xAD, 0x24,             /* CRC 0x24AD */
};

static const struct nl_feature feature_ref = {
	.proto_major = 1, .proto_minor = 0,
	.flags = NL_FEAT_MOTORISED_DEPTH | NL_FEAT_DEPTH_SENSING | NL_FEAT_CARTRIDGE_READER,
	.depth_min_um = 250, .depth_max_um = 2500, .depth_step_um = 250,
	.speed_min_hz = 100, .speed_max_hz = 150, .store_capacity = 1000,
	.store_epoch = 0x12345678, .live_rate_hz = 10,
};

static void test_feature(void)
{
	struct nl_feature f;
	uint8_t buf[64];
	const uint8_t *g = gold_feature;
	size_t n = LEN(gold_feature);

	CHECK_INT(n, NL_FEATURE_LEN);
	memset(&f, 0, sizeof(f));
	CHECK_INT(nl_feature_decode(g, n, &f), 0);
	CHECK_INT(f.proto_major, 1);
	CHECK_INT(f.proto_minor, 0);
	CHECK_INT(f.flags, 0x000B);
	CHECK_INT(f.depth_min_um, 250);
	CHECK_INT(f.depth_max_um, 2500);
	CHECK_INT(f.depth_step_um, 250);
	CHECK_INT(f.speed_min_hz, 100);
	CHECK_INT(f.speed_max_hz, 150);
	CHECK_INT(f.store_capacity, 1000);
	CHECK_INT(f.store_epoch, 0x12345678);
	CHECK_INT(f.live_rate_hz, 10);
	CHECK_INT(nl_feature_encode(&feature_ref, buf, sizeof(buf)), NL_FEATURE_LEN);
	CHECK_MEM(buf, NL_FEATURE_LEN, g, n);
	check_malformed("feature", g, n, dec_feature, enc_feature, CHECK_HAS_CRC | CHECK_EXTENSIBLE);

	/* One out-of-range case per field, on the wire. */
	CHECK_INT(check_decode_patched(g, n, 0, 2, 1, dec_feature, true), -ERANGE);    /* major */
	CHECK_INT(check_decode_patched(g, n, 4, 2501, 2, dec_feature, true), -ERANGE); /* min > max */
	CHECK_INT(check_decode_patched(g, n, 6, 3001, 2, dec_feature, true), -ERANGE); /* max */
	CHECK_INT(check_decode_patched(g, n, 6, 0, 2, dec_feature, true), -ERANGE);
	CHECK_INT(check_decode_patched(g, n, 6, 249, 2, dec_feature, true), -ERANGE);  /* < min */
	CHECK_INT(check_decode_patched(g, n, 8, 0, 2, dec_feature, true), -ERANGE);    /* step */
	CHECK_INT(check_decode_patched(g, n, 8, 2501, 2, dec_feature, true), -ERANGE);
	CHECK_INT(check_decode_patched(g, n, 10, 151, 2, dec_feature, true), -ERANGE); /* speed min */
	CHECK_INT(check_decode_patched(g, n, 12, 501, 2, dec_feature, true), -ERANGE); /* speed max */
	CHECK_INT(check_decode_patched(g, n, 12, 0, 2, dec_feature, true), -ERANGE);
	CHECK_INT(check_decode_patched(g, n, 14, 0, 2, dec_feature, true), -ERANGE);   /* capacity */
	CHECK_INT(check_decode_patched(g, n, 20, 0, 1, dec_feature, true), -ERANGE);   /* live rate */
	CHECK_INT(check_decode_patched(g, n, 20, 21, 1, dec_feature, true), -ERANGE);
	/* Reserved flag bits: ignored on decode, refused on encode. */
	{
		uint8_t b[64];

		memcpy(b, g, n);
		b[2] = 0x2B;
		b[3] = 0x80;
		check_with_crc(b, n - 2);
		CHECK_INT(nl_feature_decode(b, n, &f), 0);
		CHECK_INT(f.flags, 0x000B);
	}
	EDGE_BAD(nl_feature_encode, struct nl_feature, feature_ref, flags, 0x0020);
	EDGE_OK(nl_feature_encode, nl_feature_decode, struct nl_feature, feature_ref, flags, NL_FEAT_ALL);

	/* Edges. */
	{
		struct nl_feature lo = feature_ref;

		lo.depth_min_um = 0;
		lo.depth_step_um = 1;
		lo.speed_min_hz = 0;
		EDGE_OK(nl_feature_encode, nl_feature_decode, struct nl_feature, lo, depth_max_um, 1);
		EDGE_BAD(nl_feature_encode, struct nl_feature, lo, depth_max_um, 0);
		EDGE_OK(nl_feature_encode, nl_feature_decode, struct nl_feature, lo, speed_max_hz, 1);
		EDGE_BAD(nl_feature_encode, struct nl_feature, lo, speed_max_hz, 0);
	}
	EDGE_OK(nl_feature_encode, nl_feature_decode, struct nl_feature, feature_ref, depth_max_um, 3000);
	EDGE_BAD(nl_feature_encode, struct nl_feature, feature_ref, depth_max_um, 3001);
	EDGE_OK(nl_feature_encode, nl_feature_decode, struct nl_feature, feature_ref, depth_min_um, 0);
	EDGE_OK(nl_feature_encode, nl_feature_decode, struct nl_feature, feature_ref, depth_min_um, 2500);
	EDGE_BAD(nl_feature_encode, struct nl_feature, feature_ref, depth_min_um, 2501);
	EDGE_OK(nl_feature_encode, nl_feature_decode, struct nl_feature, feature_ref, depth_step_um, 1);
	EDGE_OK(nl_feature_encode, nl_feature_decode, struct nl_feature, feature_ref, depth_step_um, 2500);
	EDGE_BAD(nl_feature_encode, struct nl_feature, feature_ref, depth_step_um, 2501);
	EDGE_BAD(nl_feature_encode, struct nl_feature, feature_ref, depth_step_um, 0);
	EDGE_OK(nl_feature_encode, nl_feature_decode, struct nl_feature, feature_ref, speed_max_hz, 500);
	EDGE_BAD(nl_feature_encode, struct nl_feature, feature_ref, speed_max_hz, 501);
	EDGE_OK(nl_feature_encode, nl_feature_decode, struct nl_feature, feature_ref, speed_min_hz, 150);
	EDGE_BAD(nl_feature_encode, struct nl_feature, feature_ref, speed_min_hz, 151);
	EDGE_OK(nl_feature_encode, nl_feature_decode, struct nl_feature, feature_ref, store_capacity, 1);
	EDGE_OK(nl_feature_encode, nl_feature_decode, struct nl_feature, feature_ref, store_capacity, 65535);
	EDGE_BAD(nl_feature_encode, struct nl_feature, feature_ref, store_capacity, 0);
	EDGE_OK(nl_feature_encode, nl_feature_decode, struct nl_feature, feature_ref, live_rate_hz, 1);
	EDGE_OK(nl_feature_encode, nl_feature_decode, struct nl_feature, feature_ref, live_rate_hz, 20);
	EDGE_BAD(nl_feature_encode, struct nl_feature, feature_ref, live_rate_hz, 21);
	EDGE_BAD(nl_feature_encode, struct nl_feature, feature_ref, live_rate_hz, 0);
	EDGE_BAD(nl_feature_encode, struct nl_feature, feature_ref, proto_major, 2);
	EDGE_OK(nl_feature_encode, nl_feature_decode, struct nl_feature, feature_ref, proto_minor, 255);
	EDGE_OK(nl_feature_encode, nl_feature_decode, struct nl_feature, feature_ref, store_epoch, 0xFFFFFFFFu);
}

/* ---- Live Status ------------------------------------------------------- */

static const uint8_t gold_live[] = {
	0x03,                   /* RUNNING */
	0x09,                   /* motor on | cartridge */
	0x05,                   /* cheeks */
	0xE8, 0x03,             /* depth_set 1000 */
	0xFF, 0xFF,             /* measured: unknown */
	0xDC, 0x05,             /* cap 1500 */
	0x78, 0x00,             /* 120 Hz */
	0x02, 0x00,             /* pass 2 */
	0xE8, 0xFD, 0x00, 0x00, /* needle on 65000 ms */
	0x2A, 0x00, 0x00, 0x00, /* session 42 */
	0x57,                   /* battery 87 % */
	0x34, 0x12,             /* sample 0x1234 */
	0x6B, 0x20,             /* CRC 0x206B */
};

static const struct nl_live live_ref = {
	.state = NL_PEN_STATE_RUNNING, .flags = NL_LIVE_MOTOR_ON | NL_LIVE_CARTRIDGE,
	.zone = NL_ZONE_CHEEKS, .depth_set_um = 1000, .depth_measured_um = NL_DEPTH_UNKNOWN,
	.depth_cap_um = 1500, .speed_hz = 120, .pass = 2, .needle_on_ms = 65000,
	.session_id = 42, .battery_pct = 87, .sample = 0x1234,
};

static void test_live(void)
{
	struct nl_live l;
	uint8_t buf[64];
	const uint8_t *g = gold_live;
	size_t n = LEN(gold_live);

	CHECK_INT(n, NL_LIVE_LEN);
	CHECK_INT(nl_live_decode(g, n, &l), 0);
	CHECK_INT(l.state, 3);
	CHECK_INT(l.flags, 0x09);
	CHECK_INT(l.zone, 5);
	CHECK_INT(l.depth_set_um, 1000);
	CHECK_INT(l.depth_measured_um, 0xFFFF);
	CHECK_INT(l.depth_cap_um, 1500);
	CHECK_INT(l.speed_hz, 120);
	CHECK_INT(l.pass, 2);
	CHECK_INT(l.needle_on_ms, 65000);
	CHECK_INT(l.session_id, 42);
	CHECK_INT(l.battery_pct, 87);
	CHECK_INT(l.sample, 0x1234);
	CHECK_INT(nl_live_encode(&live_ref, buf, sizeof(buf)), NL_LIVE_LEN);
	CHECK_MEM(buf, NL_LIVE_LEN, g, n);
	check_malformed("live", g, n, dec_live, enc_live, CHECK_HAS_CRC | CHECK_EXTENSIBLE);

	CHECK_INT(check_decode_patched(g, n, 0, 7, 1, dec_live, true), -ERANGE);      /* state */
	CHECK_INT(check_decode_patched(g, n, 2, 16, 1, dec_live, true), -ERANGE);     /* zone */
	CHECK_INT(check_decode_patched(g, n, 3, 3001, 2, dec_live, true), -ERANGE);   /* set */
	CHECK_INT(check_decode_patched(g, n, 5, 3001, 2, dec_live, true), -ERANGE);   /* measured */
	CHECK_INT(check_decode_patched(g, n, 5, 0xFFFE, 2, dec_live, true), -ERANGE);
	CHECK_INT(check_decode_patched(g, n, 7, 3001, 2, dec_live, true), -ERANGE);   /* cap */
	CHECK_INT(check_decode_patched(g, n, 9, 501, 2, dec_live, true), -ERANGE);    /* speed */
	CHECK_INT(check_decode_patched(g, n, 21, 101, 1, dec_live, true), -ERANGE);   /* battery */
	CHECK_INT(check_decode_patched(g, n, 1, 0xE9, 1, dec_live, true), 0);         /* reserved */
	{
		uint8_t b[64];

		memcpy(b, g, n);
		b[1] = 0xE9;
		check_with_crc(b, n - 2);
		CHECK_INT(nl_live_decode(b, n, &l), 0);
		CHECK_INT(l.flags, 0x09);
	}
	EDGE_BAD(nl_live_encode, struct nl_live, live_ref, flags, 0x20);
	EDGE_OK(nl_live_encode, nl_live_decode, struct nl_live, live_ref, flags, NL_LIVE_ALL);
	EDGE_OK(nl_live_encode, nl_live_decode, struct nl_live, live_ref, state, NL_PEN_STATE_OFF);
	EDGE_OK(nl_live_encode, nl_live_decode, struct nl_live, live_ref, state, NL_PEN_STATE_FAULT);
	EDGE_BAD(nl_live_encode, struct nl_live, live_ref, state, NL_PEN_STATE_COUNT);
	EDGE_OK(nl_live_encode, nl_live_decode, struct nl_live, live_ref, zone, NL_ZONE_NONE);
	EDGE_OK(nl_live_encode, nl_live_decode, struct nl_live, live_ref, zone, NL_ZONE_UPPER_LIP);
	EDGE_BAD(nl_live_encode, struct nl_live, live_ref, zone, NL_ZONE_COUNT);
	EDGE_OK(nl_live_encode, nl_live_decode, struct nl_live, live_ref, depth_set_um, 0);
	EDGE_OK(nl_live_encode, nl_live_decode, struct nl_live, live_ref, depth_set_um, 3000);
	EDGE_BAD(nl_live_encode, struct nl_live, live_ref, depth_set_um, 3001);
	EDGE_OK(nl_live_encode, nl_live_decode, struct nl_live, live_ref, depth_measured_um, 0);
	EDGE_OK(nl_live_encode, nl_live_decode, struct nl_live, live_ref, depth_measured_um, 3000);
	EDGE_BAD(nl_live_encode, struct nl_live, live_ref, depth_measured_um, 3001);
	EDGE_OK(nl_live_encode, nl_live_decode, struct nl_live, live_ref, depth_cap_um, 3000);
	EDGE_BAD(nl_live_encode, struct nl_live, live_ref, depth_cap_um, 3001);
	EDGE_OK(nl_live_encode, nl_live_decode, struct nl_live, live_ref, speed_hz, 0);
	EDGE_OK(nl_live_encode, nl_live_decode, struct nl_live, live_ref, speed_hz, 500);
	EDGE_BAD(nl_live_encode, struct nl_live, live_ref, speed_hz, 501);
	EDGE_OK(nl_live_encode, nl_live_decode, struct nl_live, live_ref, battery_pct, 0);
	EDGE_OK(nl_live_encode, nl_live_decode, struct nl_live, live_ref, battery_pct, 100);
	EDGE_BAD(nl_live_encode, struct nl_live, live_ref, battery_pct, 101);
	EDGE_OK(nl_live_encode, nl_live_decode, struct nl_live, live_ref, needle_on_ms, 0xFFFFFFFFu);
	EDGE_OK(nl_live_encode, nl_live_decode, struct nl_live, live_ref, sample, 0xFFFF);
}

/* ---- Pen Status -------------------------------------------------------- */

static const uint8_t gold_status[] = {
	0x04, 0x0C, 0x00, 0x00, /* flags: cartridge present | session active | factory */
	0x02,                   /* ARMED */
	0x00, 0x00,             /* fault 0 */
	0x0C, 0x00,             /* store_used 12 */
	0xE8, 0x03,             /* capacity 1000 */
	0x78, 0x56, 0x34, 0x12, /* epoch */
	0x05, 0x01, 0x00, 0x00, /* last_seq 261 */
	0x00, 0x1C, 0x8A, 0x2E, /* pen_time 0x2E8A1C00 */
	0x57,                   /* battery 87 */
	0x50, 0xC4,             /* CRC 0xC450 */
};

static const struct nl_pen_status status_ref = {
	.flags = NL_STATUS_CARTRIDGE_PRESENT | NL_STATUS_SESSION_ACTIVE | NL_STATUS_FACTORY_LIMITS,
	.state = NL_PEN_STATE_ARMED, .fault_code = 0, .store_used = 12, .store_capacity = 1000,
	.store_epoch = 0x12345678, .last_seq = 261, .pen_time = 0x2E8A1C00, .battery_pct = 87,
};

static void test_pen_status(void)
{
	struct nl_pen_status s;
	uint8_t buf[64];
	const uint8_t *g = gold_status;
	size_t n = LEN(gold_status);

	CHECK_INT(n, NL_PEN_STATUS_LEN);
	CHECK_INT(nl_pen_status_decode(g, n, &s), 0);
	CHECK_INT(s.flags, 0x0C04);
	CHECK_INT(s.state, 2);
	CHECK_INT(s.fault_code, 0);
	CHECK_INT(s.store_used, 12);
	CHECK_INT(s.store_capacity, 1000);
	CHECK_INT(s.store_epoch, 0x12345678);
	CHECK_INT(s.last_seq, 261);
	CHECK_INT(s.pen_time, 0x2E8A1C00);
	CHECK_INT(s.battery_pct, 87);
	CHECK_INT(nl_pen_status_encode(&status_ref, buf, sizeof(buf)), NL_PEN_STATUS_LEN);
	CHECK_MEM(buf, NL_PEN_STATUS_LEN, g, n);
	check_malformed("pen_status", g, n, dec_status, enc_status, CHECK_HAS_CRC | CHECK_EXTENSIBLE);

	CHECK_INT(check_decode_patched(g, n, 4, 7, 1, dec_status, true), -ERANGE);     /* state */
	CHECK_INT(check_decode_patched(g, n, 5, 7, 2, dec_status, true), -ERANGE);     /* fault code */
	CHECK_INT(check_decode_patched(g, n, 5, 0x0100, 2, dec_status, true), -ERANGE);
	CHECK_INT(check_decode_patched(g, n, 7, 1001, 2, dec_status, true), -ERANGE);  /* used */
	CHECK_INT(check_decode_patched(g, n, 9, 0, 2, dec_status, true), -ERANGE);     /* capacity */
	CHECK_INT(check_decode_patched(g, n, 23, 101, 1, dec_status, true), -ERANGE);  /* battery */
	{
		uint8_t b[64];

		memcpy(b, g, n);
		b[1] |= 0xC0; /* bits 14, 15 */
		b[3] = 0x80;
		check_with_crc(b, n - 2);
		CHECK_INT(nl_pen_status_decode(b, n, &s), 0);
		CHECK_INT(s.flags, 0x0C04);
	}
	EDGE_BAD(nl_pen_status_encode, struct nl_pen_status, status_ref, flags, 0x4000);
	EDGE_OK(nl_pen_status_encode, nl_pen_status_decode, struct nl_pen_status, status_ref, flags, NL_STATUS_ALL);
	EDGE_OK(nl_pen_status_encode, nl_pen_status_decode, struct nl_pen_status, status_ref, fault_code, 6);
	EDGE_BAD(nl_pen_status_encode, struct nl_pen_status, status_ref, fault_code, 7);
	EDGE_OK(nl_pen_status_encode, nl_pen_status_decode, struct nl_pen_status, status_ref, store_used, 1000);
	EDGE_BAD(nl_pen_status_encode, struct nl_pen_status, status_ref, store_used, 1001);
	EDGE_OK(nl_pen_status_encode, nl_pen_status_decode, struct nl_pen_status, status_ref, battery_pct, 100);
	EDGE_BAD(nl_pen_status_encode, struct nl_pen_status, status_ref, battery_pct, 101);
	EDGE_OK(nl_pen_status_encode, nl_pen_status_decode, struct nl_pen_status, status_ref, state, NL_PEN_STATE_FAULT);
	EDGE_BAD(nl_pen_status_encode, struct nl_pen_status, status_ref, state, NL_PEN_STATE_COUNT);
	{
		struct nl_pen_status one = status_ref;

		one.store_used = 0;
		EDGE_OK(nl_pen_status_encode, nl_pen_status_decode, struct nl_pen_status, one, store_capacity, 1);
		EDGE_BAD(nl_pen_status_encode, struct nl_pen_status, one, store_capacity, 0);
	}
}

/* ---- Cartridge Info ---------------------------------------------------- */

static const uint8_t gold_cart[] = {
	0x01,                                           /* NEW */
	0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, /* uid */
	'L', 'O', 'T', '4', '2', 'A', 0x00, 0x00,       /* lot */
	0x00, 0x00, 0x00, 0x30,                         /* expiry 0x30000000 */
	0x0C,                                           /* 12 needles */
	0xDC, 0x05,                                     /* 1500 um */
	0x00, 0x00, 0x00, 0x00,                         /* never used */
	0x00, 0x00, 0x00, 0x00,                         /* run 0 */
	0x2A, 0x24,                                     /* CRC 0x242A */
};

static const struct nl_cartridge_info cart_ref = {
	.state = NL_CARTRIDGE_NEW,
	.uid = { 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88 },
	.lot = "LOT42A", .expiry = 0x30000000, .needle_count = 12, .needle_length_um = 1500,
};

static void test_cartridge_info(void)
{
	struct nl_cartridge_info c;
	uint8_t buf[64];
	const uint8_t *g = gold_cart;
	size_t n = LEN(gold_cart);

	CHECK_INT(n, NL_CARTRIDGE_INFO_LEN);
	CHECK_INT(nl_cartridge_info_decode(g, n, &c), 0);
	CHECK_INT(c.state, 1);
	CHECK_MEM(c.uid, 8, cart_ref.uid, 8);
	CHECK_STR(c.lot, "LOT42A");
	CHECK_INT(c.expiry, 0x30000000);
	CHECK_INT(c.needle_count, 12);
	CHECK_INT(c.needle_length_um, 1500);
	CHECK_INT(c.first_use, 0);
	CHECK_INT(c.run_ms, 0);
	CHECK_INT(nl_cartridge_info_encode(&cart_ref, buf, sizeof(buf)), NL_CARTRIDGE_INFO_LEN);
	CHECK_MEM(buf, NL_CARTRIDGE_INFO_LEN, g, n);
	check_malformed("cartridge_info", g, n, dec_cart, enc_cart, CHECK_HAS_CRC | CHECK_EXTENSIBLE);

	CHECK_INT(check_decode_patched(g, n, 0, 4, 1, dec_cart, true), -ERANGE);      /* state */
	CHECK_INT(check_decode_patched(g, n, 0, 0, 1, dec_cart, true), -ERANGE);      /* NONE + uid */
	CHECK_INT(check_decode_patched(g, n, 9, 0x7F, 1, dec_cart, true), -ERANGE);   /* lot DEL */
	CHECK_INT(check_decode_patched(g, n, 10, 0x1F, 1, dec_cart, true), -ERANGE);  /* lot ctrl */
	CHECK_INT(check_decode_patched(g, n, 11, 0xC3, 1, dec_cart, true), -ERANGE);  /* lot 8-bit */
	CHECK_INT(check_decode_patched(g, n, 16, 'X', 1, dec_cart, true), -ERANGE);   /* not NUL padded */
	CHECK_INT(check_decode_patched(g, n, 21, 0, 1, dec_cart, true), -ERANGE);     /* needles */
	CHECK_INT(check_decode_patched(g, n, 21, 65, 1, dec_cart, true), -ERANGE);
	CHECK_INT(check_decode_patched(g, n, 22, 3001, 2, dec_cart, true), -ERANGE);  /* length */
	CHECK_INT(check_decode_patched(g, n, 9, 0x2020, 2, dec_cart, true), 0);       /* spaces ok */

	/* NONE: uid all zero and no needles. */
	{
		struct nl_cartridge_info none;

		memset(&none, 0, sizeof(none));
		EDGE_OK(nl_cartridge_info_encode, nl_cartridge_info_decode, struct nl_cartridge_info,
			none, needle_count, 0);
		EDGE_BAD(nl_cartridge_info_encode, struct nl_cartridge_info, none, needle_count, 1);
		EDGE_BAD(nl_cartridge_info_encode, struct nl_cartridge_info, none, uid[7], 1);
		/* docs/protocol.md 3.4: with state NONE every other field is 0. */
		EDGE_BAD(nl_cartridge_info_encode, struct nl_cartridge_info, none, lot[0], 'A');
		EDGE_BAD(nl_cartridge_info_encode, struct nl_cartridge_info, none, expiry, 1);
		EDGE_BAD(nl_cartridge_info_encode, struct nl_cartridge_info, none, needle_length_um, 1);
		EDGE_BAD(nl_cartridge_info_encode, struct nl_cartridge_info, none, first_use, 1);
		EDGE_BAD(nl_cartridge_info_encode, struct nl_cartridge_info, none, run_ms, 1);
	}
	EDGE_OK(nl_cartridge_info_encode, nl_cartridge_info_decode, struct nl_cartridge_info, cart_ref, needle_count, 1);
	EDGE_OK(nl_cartridge_info_encode, nl_cartridge_info_decode, struct nl_cartridge_info, cart_ref, needle_count, 64);
	EDGE_BAD(nl_cartridge_info_encode, struct nl_cartridge_info, cart_ref, needle_count, 65);
	EDGE_BAD(nl_cartridge_info_encode, struct nl_cartridge_info, cart_ref, needle_count, 0);
	EDGE_OK(nl_cartridge_info_encode, nl_cartridge_info_decode, struct nl_cartridge_info, cart_ref, needle_length_um, 3000);
	EDGE_BAD(nl_cartridge_info_encode, struct nl_cartridge_info, cart_ref, needle_length_um, 3001);
	EDGE_OK(nl_cartridge_info_encode, nl_cartridge_info_decode, struct nl_cartridge_info, cart_ref, state, NL_CARTRIDGE_REJECTED);
	EDGE_BAD(nl_cartridge_info_encode, struct nl_cartridge_info, cart_ref, state, NL_CARTRIDGE_STATE_COUNT);
	EDGE_BAD(nl_cartridge_info_encode, struct nl_cartridge_info, cart_ref, lot[1], '\x7f');
	EDGE_BAD(nl_cartridge_info_encode, struct nl_cartridge_info, cart_ref, lot[0], '\n');
	/* Full 8-character lot, and one with no terminator in the array. */
	{
		struct nl_cartridge_info x = cart_ref, y;
		int k;

		memcpy(x.lot, "~ABCDEF ", 9);
		k = nl_cartridge_info_encode(&x, buf, sizeof(buf));
		CHECK_INT(k, NL_CARTRIDGE_INFO_LEN);
		CHECK_INT(nl_cartridge_info_decode(buf, (size_t)k, &y), 0);
		CHECK_STR(y.lot, "~ABCDEF ");
		memset(x.lot, 'A', sizeof(x.lot));
		CHECK_INT(nl_cartridge_info_encode(&x, buf, sizeof(buf)), -ERANGE);
		memset(x.lot, 0, sizeof(x.lot));
		k = nl_cartridge_info_encode(&x, buf, sizeof(buf));
		CHECK_INT(k, NL_CARTRIDGE_INFO_LEN);
		CHECK_INT(nl_cartridge_info_decode(buf, (size_t)k, &y), 0);
		CHECK_STR(y.lot, "");
	}
}

/* ---- Limit set and Active Limits --------------------------------------- */

/* Hash (FNV-1a, computed separately): 0x39B89420 -> 20 94 B8 39. */
static const uint8_t gold_lset[] = {
	0x01, 0x00,             /* format 1, flags 0 */
	0x10, 0x0E, 0x00, 0x00, /* lifetime 3600 s */
	0xE8, 0x03,             /* default cap 1000 um */
	0xDC, 0x05,             /* needle-on warn 1500 s */
	0x60, 0x09,             /* needle-on lock 2400 s */
	0x03, 0x05,             /* passes warn 3, lock 5 */
	0x02,                   /* 2 zones */
	0x03, 0xF4, 0x01, 0x02, 0x03, /* periorbital 500 um, 2/3 */
	0x05, 0xDC, 0x05, 0x03, 0x05, /* cheeks 1500 um, 3/5 */
};
#define GOLD_LSET_HASH 0x39B89420u

static const struct nl_limit_set lset_ref = {
	.format = 1, .flags = 0, .lifetime_s = 3600, .depth_cap_um = 1000,
	.needle_on_warn_s = 1500, .needle_on_lock_s = 2400, .pass_warn = 3, .pass_lock = 5,
	.zone_count = 2,
	.zones = { { NL_ZONE_PERIORBITAL, 500, 2, 3 }, { NL_ZONE_CHEEKS, 1500, 3, 5 } },
};

static void test_limit_set(void)
{
	struct nl_limit_set l;
	uint8_t buf[NL_LIMIT_SET_MAX + 8];
	uint32_t h = 0;
	const uint8_t *g = gold_lset;
	size_t n = LEN(gold_lset);

	CHECK_INT(nl_limit_set_decode(g, n, &l), 0);
	CHECK_INT(l.format, 1);
	CHECK_INT(l.flags, 0);
	CHECK_INT(l.lifetime_s, 3600);
	CHECK_INT(l.depth_cap_um, 1000);
	CHECK_INT(l.needle_on_warn_s, 1500);
	CHECK_INT(l.needle_on_lock_s, 2400);
	CHECK_INT(l.pass_warn, 3);
	CHECK_INT(l.pass_lock, 5);
	CHECK_INT(l.zone_count, 2);
	CHECK_INT(l.zones[0].zone, 3);
	CHECK_INT(l.zones[0].depth_cap_um, 500);
	CHECK_INT(l.zones[0].pass_warn, 2);
	CHECK_INT(l.zones[0].pass_lock, 3);
	CHECK_INT(l.zones[1].zone, 5);
	CHECK_INT(l.zones[1].depth_cap_um, 1500);
	CHECK_INT(l.zones[1].pass_warn, 3);
	CHECK_INT(l.zones[1].pass_lock, 5);
	CHECK_INT(nl_limit_set_encode(&lset_ref, buf, sizeof(buf)), (int)n);
	CHECK_MEM(buf, n, g, n);
	CHECK_INT(nl_limit_set_hash(&lset_ref, &h), 0);
	CHECK_INT(h, GOLD_LSET_HASH);
	check_malformed("limit_set", g, n, dec_lset, enc_lset, 0);

	CHECK_INT(nl_limit_set_zone_cap(&lset_ref, NL_ZONE_PERIORBITAL), 500);
	CHECK_INT(nl_limit_set_zone_cap(&lset_ref, NL_ZONE_CHEEKS), 1500);
	CHECK_INT(nl_limit_set_zone_cap(&lset_ref, NL_ZONE_NOSE), 1000);
	CHECK_INT(nl_limit_set_zone_cap(&lset_ref, NL_ZONE_NONE), 1000);
	CHECK(nl_limit_set_find(&lset_ref, NL_ZONE_CHEEKS) == &lset_ref.zones[1]);
	CHECK(nl_limit_set_find(&lset_ref, NL_ZONE_NOSE) == NULL);

	CHECK_INT(check_decode_patched(g, n, 0, 2, 1, dec_lset, false), -ERANGE);      /* format */
	CHECK_INT(check_decode_patched(g, n, 1, 1, 1, dec_lset, false), -ERANGE);      /* flags */
	CHECK_INT(check_decode_patched(g, n, 2, 0, 4, dec_lset, false), -ERANGE);      /* lifetime */
	CHECK_INT(check_decode_patched(g, n, 2, 86401, 4, dec_lset, false), -ERANGE);
	CHECK_INT(check_decode_patched(g, n, 6, 0, 2, dec_lset, false), -ERANGE);      /* cap */
	CHECK_INT(check_decode_patched(g, n, 6, 3001, 2, dec_lset, false), -ERANGE);
	CHECK_INT(check_decode_patched(g, n, 8, 2401, 2, dec_lset, false), -ERANGE);   /* warn > lock */
	CHECK_INT(check_decode_patched(g, n, 12, 6, 1, dec_lset, false), -ERANGE);     /* pass warn > lock */
	CHECK_INT(check_decode_patched(g, n, 14, 17, 1, dec_lset, false), -ERANGE);    /* zone_count */
	CHECK_INT(check_decode_patched(g, n, 14, 1, 1, dec_lset, false), -ERANGE);     /* trailing */
	CHECK_INT(check_decode_patched(g, n, 14, 3, 1, dec_lset, false), -ENODATA);    /* short */
	CHECK_INT(check_decode_patched(g, n, 15, 0, 1, dec_lset, false), -ERANGE);     /* zone NONE */
	CHECK_INT(check_decode_patched(g, n, 20, 16, 1, dec_lset, false), -ERANGE);    /* zone 16 */
	CHECK_INT(check_decode_patched(g, n, 20, 3, 1, dec_lset, false), -ERANGE);     /* duplicate */
	CHECK_INT(check_decode_patched(g, n, 15, 6, 1, dec_lset, false), -ERANGE);     /* unsorted */
	CHECK_INT(check_decode_patched(g, n, 16, 0, 2, dec_lset, false), -ERANGE);     /* zone cap */
	CHECK_INT(check_decode_patched(g, n, 16, 3001, 2, dec_lset, false), -ERANGE);
	CHECK_INT(check_decode_patched(g, n, 18, 4, 1, dec_lset, false), -ERANGE);     /* zone pass */
	CHECK_INT(check_decode_patched(g, n, 10, 0, 2, dec_lset, false), 0);           /* no lock: ok */

	EDGE_OK(nl_limit_set_encode, nl_limit_set_decode, struct nl_limit_set, lset_ref, lifetime_s, 1);
	EDGE_OK(nl_limit_set_encode, nl_limit_set_decode, struct nl_limit_set, lset_ref, lifetime_s, 86400);
	EDGE_BAD(nl_limit_set_encode, struct nl_limit_set, lset_ref, lifetime_s, 86401);
	EDGE_BAD(nl_limit_set_encode, struct nl_limit_set, lset_ref, lifetime_s, 0);
	EDGE_OK(nl_limit_set_encode, nl_limit_set_decode, struct nl_limit_set, lset_ref, depth_cap_um, 1);
	EDGE_OK(nl_limit_set_encode, nl_limit_set_decode, struct nl_limit_set, lset_ref, depth_cap_um, 3000);
	EDGE_BAD(nl_limit_set_encode, struct nl_limit_set, lset_ref, depth_cap_um, 3001);
	EDGE_OK(nl_limit_set_encode, nl_limit_set_decode, struct nl_limit_set, lset_ref, needle_on_warn_s, 2400);
	EDGE_BAD(nl_limit_set_encode, struct nl_limit_set, lset_ref, needle_on_warn_s, 2401);
	EDGE_OK(nl_limit_set_encode, nl_limit_set_decode, struct nl_limit_set, lset_ref, pass_warn, 5);
	EDGE_BAD(nl_limit_set_encode, struct nl_limit_set, lset_ref, pass_warn, 6);
	EDGE_OK(nl_limit_set_encode, nl_limit_set_decode, struct nl_limit_set, lset_ref, pass_lock, 0);
	EDGE_OK(nl_limit_set_encode, nl_limit_set_decode, struct nl_limit_set, lset_ref, zone_count, 0);
	EDGE_BAD(nl_limit_set_encode, struct nl_limit_set, lset_ref, zone_count, 17);
	EDGE_BAD(nl_limit_set_encode, struct nl_limit_set, lset_ref, format, 0);
	EDGE_BAD(nl_limit_set_encode, struct nl_limit_set, lset_ref, flags, 0x80);
	EDGE_BAD(nl_limit_set_encode, struct nl_limit_set, lset_ref, zones[1].zone, NL_ZONE_PERIORBITAL);
	EDGE_BAD(nl_limit_set_encode, struct nl_limit_set, lset_ref, zones[1].depth_cap_um, 3001);
	EDGE_OK(nl_limit_set_encode, nl_limit_set_decode, struct nl_limit_set, lset_ref, zones[1].depth_cap_um, 3000);
	EDGE_OK(nl_limit_set_encode, nl_limit_set_decode, struct nl_limit_set, lset_ref, zones[1].zone, NL_ZONE_UPPER_LIP);
	EDGE_BAD(nl_limit_set_encode, struct nl_limit_set, lset_ref, zones[1].zone, NL_ZONE_COUNT);

	/* Every zone listed: the largest canonical set (15 zones; 16 entries
	 * cannot be strictly ascending over 15 zones). */
	{
		struct nl_limit_set big = lset_ref, back;
		int k;

		big.zone_count = NL_ZONE_COUNT - 1;
		for (unsigned i = 0; i < big.zone_count; i++)
			big.zones[i] = (struct nl_zone_limit){ (uint8_t)(i + 1), (uint16_t)(100 * (i + 1)), 1, 2 };
		k = nl_limit_set_encode(&big, buf, sizeof(buf));
		CHECK_INT(k, NL_LIMIT_SET_HDR_LEN + 5 * 15);
		CHECK_INT(nl_limit_set_decode(buf, (size_t)k, &back), 0);
		CHECK_INT(back.zone_count, 15);
		CHECK_INT(back.zones[14].zone, NL_ZONE_UPPER_LIP);
		CHECK_INT(back.zones[14].depth_cap_um, 1500);
		CHECK_INT(nl_limit_set_encode(&big, buf, (size_t)k - 1), -ENOBUFS);
		big.zone_count = 16;
		big.zones[15] = (struct nl_zone_limit){ NL_ZONE_UPPER_LIP, 100, 0, 0 };
		CHECK_INT(nl_limit_set_encode(&big, buf, sizeof(buf)), -ERANGE);
		CHECK_INT(nl_limit_set_hash(&big, &h), -ERANGE);
	}
}

static const uint8_t gold_active[] = {
	0x01,                   /* SESSION */
	0x20, 0x94, 0xB8, 0x39, /* hash 0x39B89420 of the set below */
	0x08, 0x07, 0x00, 0x00, /* remaining 1800 s */
	0x01, 0x00, 0x10, 0x0E, 0x00, 0x00, 0xE8, 0x03, 0xDC, 0x05, 0x60, 0x09, 0x03, 0x05,
	0x02, 0x03, 0xF4, 0x01, 0x02, 0x03, 0x05, 0xDC, 0x05, 0x03, 0x05, /* = gold_lset */
	0x94, 0x0D,             /* CRC 0x0D94 */
};

static void test_active_limits(void)
{
	struct nl_active_limits a, ref;
	uint8_t buf[NL_PDU_MAX];
	const uint8_t *g = gold_active;
	size_t n = LEN(gold_active);

	memset(&ref, 0, sizeof(ref));
	ref.source = NL_LIMIT_SOURCE_SESSION;
	ref.limits_hash = GOLD_LSET_HASH;
	ref.remaining_s = 1800;
	ref.set = lset_ref;

	CHECK_INT(n, 9 + LEN(gold_lset) + 2);
	CHECK_INT(nl_active_limits_decode(g, n, &a), 0);
	CHECK_INT(a.source, 1);
	CHECK_INT(a.limits_hash, GOLD_LSET_HASH);
	CHECK_INT(a.remaining_s, 1800);
	CHECK_INT(a.set.zone_count, 2);
	CHECK_INT(a.set.zones[1].depth_cap_um, 1500);
	CHECK_INT(a.set.lifetime_s, 3600);
	CHECK_INT(nl_active_limits_encode(&ref, buf, sizeof(buf)), (int)n);
	CHECK_MEM(buf, n, g, n);
	check_malformed("active_limits", g, n, dec_active, enc_active, CHECK_HAS_CRC | CHECK_EXTENSIBLE);

	CHECK_INT(check_decode_patched(g, n, 0, 3, 1, dec_active, true), -ERANGE);       /* source */
	CHECK_INT(check_decode_patched(g, n, 1, 0x39B89421, 4, dec_active, true), -EBADMSG); /* hash */
	CHECK_INT(check_decode_patched(g, n, 5, 86401, 4, dec_active, true), -ERANGE);   /* remaining */
	CHECK_INT(check_decode_patched(g, n, 5, 86400, 4, dec_active, true), 0); /* AUTHORISE's lifetime */
	CHECK_INT(check_decode_patched(g, n, 0, 0, 1, dec_active, true), -ERANGE);       /* factory, 1800 */
	CHECK_INT(check_decode_patched(g, n, 9, 2, 1, dec_active, true), -ERANGE);       /* set format */
	CHECK_INT(check_decode_patched(g, n, 23, 17, 1, dec_active, true), -ERANGE);     /* zone_count */

	EDGE_BAD(nl_active_limits_encode, struct nl_active_limits, ref, limits_hash, 0);
	EDGE_BAD(nl_active_limits_encode, struct nl_active_limits, ref, source, NL_LIMIT_SOURCE_COUNT);
	EDGE_BAD(nl_active_limits_encode, struct nl_active_limits, ref, remaining_s, 86401);
	EDGE_OK(nl_active_limits_encode, nl_active_limits_decode, struct nl_active_limits, ref, remaining_s, 86400);
	EDGE_OK(nl_active_limits_encode, nl_active_limits_decode, struct nl_active_limits, ref, remaining_s, 0);
	{
		struct nl_active_limits f = ref;

		f.remaining_s = 0;
		EDGE_OK(nl_active_limits_encode, nl_active_limits_decode, struct nl_active_limits, f, source, NL_LIMIT_SOURCE_FACTORY);
		EDGE_OK(nl_active_limits_encode, nl_active_limits_decode, struct nl_active_limits, f, source, NL_LIMIT_SOURCE_FALLBACK);
		f.source = NL_LIMIT_SOURCE_FALLBACK;
		EDGE_BAD(nl_active_limits_encode, struct nl_active_limits, f, remaining_s, 1);
	}
}

/* ---- CRC helpers ------------------------------------------------------- */

static void test_crc_helpers(void)
{
	uint8_t b[8] = { 0x03 };

	CHECK_INT(nl_pdu_check_crc(b, 0), -ENODATA);
	CHECK_INT(nl_pdu_check_crc(b, 2), -ENODATA);
	CHECK_INT(nl_pdu_put_crc(b, 1, 2), -ENOBUFS);
	CHECK_INT(nl_pdu_put_crc(b, 1, 3), 3);
	CHECK_INT(b[1], 0x1C); /* 0x3D1C: CP STOP_SESSION vector, computed separately */
	CHECK_INT(b[2], 0x3D);
	CHECK_INT(nl_pdu_check_crc(b, 3), 0);
	b[2] ^= 0x01;
	CHECK_INT(nl_pdu_check_crc(b, 3), -EBADMSG);
}


/* ---- Worked examples of docs/protocol.md (3.1, 7.3, 7.5) ---------------
 * Copied from the spec as a second, independent source of vectors. */

static const uint8_t spec_feature[] = {
	0x01, 0x00, 0x1F, 0x00, 0xFA, 0x00, 0xC4, 0x09, 0xFA, 0x00, 0x64, 0x00,
	0x96, 0x00, 0xE8, 0x03, 0xDE, 0xC0, 0x17, 0x5A, 0x05, 0xA5, 0xED,
};
static const uint8_t spec_lset[] = {
	0x01, 0x00, 0xC0, 0xA8, 0x00, 0x00, 0xE8, 0x03, 0xDC, 0x05, 0x60, 0x09, 0x03, 0x05, 0x03,
	0x03, 0xF4, 0x01, 0x03, 0x05, 0x05, 0xDC, 0x05, 0x03, 0x05, 0x0B, 0xD0, 0x07, 0x00, 0x00,
};
static const uint8_t spec_active[] = {
	0x01, 0xAC, 0x23, 0x9C, 0xCA, 0x5C, 0xA8, 0x00, 0x00,
	0x01, 0x00, 0xC0, 0xA8, 0x00, 0x00, 0xE8, 0x03, 0xDC, 0x05, 0x60, 0x09, 0x03, 0x05, 0x03,
	0x03, 0xF4, 0x01, 0x03, 0x05, 0x05, 0xDC, 0x05, 0x03, 0x05, 0x0B, 0xD0, 0x07, 0x00, 0x00,
	0x06, 0x9C,
};

static void test_spec_examples(void)
{
	struct nl_feature f;
	struct nl_limit_set l;
	struct nl_active_limits a;
	uint32_t h = 0;

	CHECK_INT(nl_feature_decode(spec_feature, LEN(spec_feature), &f), 0);
	CHECK_INT(f.flags, NL_FEAT_ALL);
	CHECK_INT(f.store_epoch, 0x5A17C0DE);
	CHECK_INT(f.live_rate_hz, 5);
	check_reencode("spec feature", spec_feature, LEN(spec_feature), dec_feature, enc_feature,
		       spec_feature, LEN(spec_feature));

	CHECK_INT(nl_limit_set_decode(spec_lset, LEN(spec_lset), &l), 0);
	CHECK_INT(l.lifetime_s, 43200);
	CHECK_INT(l.zone_count, 3);
	CHECK_INT(l.zones[2].zone, NL_ZONE_SCAR);
	CHECK_INT(l.zones[2].depth_cap_um, 2000);
	CHECK_INT(nl_limit_set_hash(&l, &h), 0);
	CHECK_INT(h, 0xCA9C23ACu);
	CHECK_INT(nl_fnv1a32(spec_lset, LEN(spec_lset)), 0xCA9C23ACu);
	CHECK_INT(nl_limit_set_zone_cap(&l, NL_ZONE_SCAR), 2000);
	CHECK_INT(nl_limit_set_zone_cap(&l, NL_ZONE_NOSE), 1000);

	CHECK_INT(nl_active_limits_decode(spec_active, LEN(spec_active), &a), 0);
	CHECK_INT(a.source, NL_LIMIT_SOURCE_SESSION);
	CHECK_INT(a.limits_hash, 0xCA9C23ACu);
	CHECK_INT(a.remaining_s, 43100);
	CHECK_INT(a.set.zone_count, 3);
	check_reencode("spec active", spec_active, LEN(spec_active), dec_active, enc_active,
		       spec_active, LEN(spec_active));
}

int main(void)
{
	test_spec_examples();
	test_feature();
	test_live();
	test_pen_status();
	test_cartridge_info();
	test_limit_set();
	test_active_limits();
	test_crc_helpers();
	return check_summary("test-pdu");
}
