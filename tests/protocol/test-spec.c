/* SPDX-License-Identifier: MIT */
/*
 * The worked examples of docs/protocol.md (sections 6.3, 8.7, 9.6), copied
 * from the spec as hex: a second source of vectors, written independently
 * of the golden arrays of the other tests. Each must decode and re-encode
 * to the same bytes.
 */
#include "check.h"
#include "needlelink/cp.h"
#include "needlelink/racp.h"
#include "needlelink/record.h"
#include "needlelink/seg.h"

static size_t unhex(const char *s, uint8_t *out)
{
	size_t n = 0;

	while (*s) {
		unsigned v;

		if (*s == ' ') {
			s++;
			continue;
		}
		if (sscanf(s, "%2x", &v) != 1)
			break;
		out[n++] = (uint8_t)v;
		s += 2;
	}
	return n;
}

static int dec_cp(const uint8_t *b, size_t n, void *o) { return nl_cp_req_decode(b, n, o); }
static int enc_cp(const void *i, uint8_t *b, size_t n) { return nl_cp_req_encode(i, b, n); }
static int dec_cprsp(const uint8_t *b, size_t n, void *o) { return nl_cp_rsp_decode(b, n, o); }
static int enc_cprsp(const void *i, uint8_t *b, size_t n) { return nl_cp_rsp_encode(i, b, n); }
static int dec_racp(const uint8_t *b, size_t n, void *o) { return nl_racp_req_decode(b, n, o); }
static int enc_racp(const void *i, uint8_t *b, size_t n) { return nl_racp_req_encode(i, b, n); }
static int dec_racprsp(const uint8_t *b, size_t n, void *o) { return nl_racp_rsp_decode(b, n, o); }
static int enc_racprsp(const void *i, uint8_t *b, size_t n) { return nl_racp_rsp_encode(i, b, n); }
static int dec_rec(const uint8_t *b, size_t n, void *o) { return nl_record_decode(b, n, o); }
static int enc_rec(const void *i, uint8_t *b, size_t n) { return nl_record_encode(i, b, n); }

struct example {
	const char *hex;
	check_decode_fn dec;
	check_encode_fn enc;
};

static const struct example examples[] = {
	/* 8.7 */
	{ "01 01 00 C0 A8 00 00 E8 03 DC 05 60 09 03 05 03 03 F4 01 03 05 05 DC 05 03 05 0B D0 07 00 00 3D AD", dec_cp, enc_cp },
	{ "80 01 01 AC 23 9C CA 00 FA", dec_cprsp, enc_cprsp },
	{ "02 2A 00 00 00 AC 23 9C CA C0 A8 00 00 C1 16", dec_cp, enc_cp },
	{ "80 02 01 2A 00 00 00 7D A5", dec_cprsp, enc_cprsp },
	{ "03 1C 3D", dec_cp, enc_cp },
	{ "04 05 75 C0", dec_cp, enc_cp },
	{ "05 01 89 9F", dec_cp, enc_cp },
	{ "06 05 C5 F3", dec_cp, enc_cp },
	{ "07 DE C0 17 5A 09 05 00 00 F2 84", dec_cp, enc_cp },
	{ "80 07 01 00 00 00 00 07 E2", dec_cprsp, enc_cprsp },
	{ "08 1E 38 90 32 EB 4C", dec_cp, enc_cp },
	{ "09 05 E8 03 3D D6", dec_cp, enc_cp },
	{ "0A 0A 92 A2", dec_cp, enc_cp },
	/* 9.6 */
	{ "04 03 01 E2 04 00 00 5D F5", dec_racp, enc_racp },
	{ "05 00 28 00 00 00 7C 76", dec_racprsp, enc_racprsp },
	{ "01 03 01 E2 04 00 00 FE 05", dec_racp, enc_racp },
	{ "01 04 01 E2 04 00 00 EC 04 00 00 FE 64", dec_racp, enc_racp },
	{ "01 01 E9 F8", dec_racp, enc_racp },
	{ "03 00 D0 DA", dec_racp, enc_racp },
	{ "06 00 01 01 EA 40", dec_racprsp, enc_racprsp },
	/* 6.3 */
	{ "03 03 E3 04 00 00 DE C0 17 5A 2A 00 00 00 E0 07 90 32 05 02 00 E8 03 E8 03 D4 03 78 00 AA 37"
	  " 00 00 AE 06 00 00 01 02 03 04 05 06 07 08 01 00 01 9B 9B", dec_rec, enc_rec },
};

static void test_examples(void)
{
	for (size_t i = 0; i < sizeof(examples) / sizeof(examples[0]); i++) {
		uint8_t b[CHECK_BUF];
		size_t n = unhex(examples[i].hex, b);

		CHECK(n >= 3);
		check_reencode(examples[i].hex, b, n, examples[i].dec, examples[i].enc, b, n);
	}
}

/* 6.3: the SEGMENT record at ATT_MTU 23 with the counter at 5. */
static void test_seg_example(void)
{
	static const char *const notes[] = {
		"15 03 03 E3 04 00 00 DE C0 17 5A 2A 00 00 00 E0 07 90 32 05",
		"18 02 00 E8 03 E8 03 D4 03 78 00 AA 37 00 00 AE 06 00 00 01",
		"1E 02 03 04 05 06 07 08 01 00 01 9B 9B",
	};
	uint8_t rec[64], seg[64], want[64];
	size_t rlen = unhex(examples[sizeof(examples) / sizeof(examples[0]) - 1].hex, rec);
	struct nl_seg_tx t;
	struct nl_seg_rx r;
	const uint8_t *out = NULL;
	struct nl_record d;

	CHECK_INT(rlen, 50);
	nl_seg_tx_init(&t);
	t.counter = 5;
	nl_seg_rx_reset(&r);
	CHECK_INT(nl_seg_tx_start(&t, rec, rlen, 23), 0);
	for (unsigned i = 0; i < 3; i++) {
		size_t wn = unhex(notes[i], want);
		int n = nl_seg_tx_next(&t, seg, sizeof(seg));

		CHECK_INT(n, (int)wn);
		if (n > 0)
			CHECK_MEM(seg, n, want, wn);
		CHECK_INT(nl_seg_rx_feed(&r, want, wn, &out), i < 2 ? 0 : 50);
	}
	CHECK(out && memcmp(out, rec, rlen) == 0);
	CHECK_INT(nl_record_decode(rec, rlen, &d), 0);
	CHECK_INT(d.hdr.seq, 1251);
	CHECK_INT(d.u.segment.depth_measured_um, 980);
	CHECK_INT(d.u.segment.run_ms, 14250);
	CHECK_INT(d.u.segment.strokes, 1710);
}

int main(void)
{
	test_examples();
	test_seg_example();
	return check_summary("test-spec");
}
