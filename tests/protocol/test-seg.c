/* SPDX-License-Identifier: MIT */
/*
 * Segmentation (seg.h): a 79-byte SESSION_END record (the golden vector of
 * test-record.c) sent at the minimum ATT MTU of 23, i.e. 19 record bytes
 * per notification, and every reassembly error.
 *
 * Segment headers written by hand: bit 0 FIRST, bit 1 LAST, counter << 2.
 */
#include "check.h"
#include "needlelink/record.h"
#include "needlelink/seg.h"

#define LEN(a) (sizeof(a) / sizeof((a)[0]))

static const uint8_t rec[] = {
	0x02, 0x03, 0x01, 0x01, 0x00, 0x00, 0x78, 0x56, 0x34, 0x12, 0x2A, 0x00, 0x00, 0x00,
	0x00, 0x1C, 0x8A, 0x2E, 0x01, 0x60, 0xE3, 0x16, 0x00, 0xC0, 0x27, 0x09, 0x00, 0x70,
	0x11, 0x01, 0x00, 0x03, 0x03, 0x03, 0x00, 0xF4, 0x01, 0xC2, 0x01, 0xC0, 0xD4, 0x01,
	0x00, 0xB0, 0x36, 0x00, 0x00, 0x04, 0x02, 0x00, 0xF4, 0x01, 0xF4, 0x01, 0x60, 0xEA,
	0x00, 0x00, 0x58, 0x1B, 0x00, 0x00, 0x05, 0x04, 0x00, 0xDC, 0x05, 0xE2, 0x04, 0xA0,
	0x68, 0x06, 0x00, 0x68, 0xBF, 0x00, 0x00, 0x20, 0x58,
};

static const uint8_t seg0[] = { 0x01, /* counter 0, FIRST */
	0x02, 0x03, 0x01, 0x01, 0x00, 0x00, 0x78, 0x56, 0x34, 0x12, 0x2A, 0x00, 0x00, 0x00, 0x00, 0x1C, 0x8A, 0x2E, 0x01 };
static const uint8_t seg1[] = { 0x04, /* counter 1 */
	0x60, 0xE3, 0x16, 0x00, 0xC0, 0x27, 0x09, 0x00, 0x70, 0x11, 0x01, 0x00, 0x03, 0x03, 0x03, 0x00, 0xF4, 0x01, 0xC2 };
static const uint8_t seg2[] = { 0x08, /* counter 2 */
	0x01, 0xC0, 0xD4, 0x01, 0x00, 0xB0, 0x36, 0x00, 0x00, 0x04, 0x02, 0x00, 0xF4, 0x01, 0xF4, 0x01, 0x60, 0xEA, 0x00 };
static const uint8_t seg3[] = { 0x0C, /* counter 3 */
	0x00, 0x58, 0x1B, 0x00, 0x00, 0x05, 0x04, 0x00, 0xDC, 0x05, 0xE2, 0x04, 0xA0, 0x68, 0x06, 0x00, 0x68, 0xBF, 0x00 };
static const uint8_t seg4[] = { 0x12, /* counter 4, LAST */
	0x00, 0x20, 0x58 };

static const uint8_t *const segs[] = { seg0, seg1, seg2, seg3, seg4 };
static const size_t seg_lens[] = { LEN(seg0), LEN(seg1), LEN(seg2), LEN(seg3), LEN(seg4) };

/* Makes a segment with the given header and payload bytes. */
static size_t mkseg(uint8_t *out, unsigned counter, unsigned flags, const uint8_t *p, size_t n)
{
	out[0] = (uint8_t)(counter << 2 | flags);
	if (n)
		memcpy(out + 1, p, n);
	return n + 1;
}

static void test_tx_golden(void)
{
	struct nl_seg_tx t;
	uint8_t buf[64];

	nl_seg_tx_init(&t);
	CHECK_INT(t.counter, 0);
	CHECK_INT(nl_seg_tx_next(&t, buf, sizeof(buf)), 0); /* nothing started */
	CHECK_INT(nl_seg_tx_start(&t, rec, LEN(rec), NL_ATT_MTU_MIN), 0);
	CHECK_INT(t.chunk, 19);
	CHECK_INT(nl_seg_tx_next(&t, buf, 19), -ENOBUFS);
	for (unsigned i = 0; i < LEN(segs); i++) {
		int n = nl_seg_tx_next(&t, buf, 20);

		CHECK_INT(n, (int)seg_lens[i]);
		if (n > 0)
			CHECK_MEM(buf, n, segs[i], seg_lens[i]);
	}
	CHECK_INT(nl_seg_tx_next(&t, buf, sizeof(buf)), 0);
	CHECK_INT(t.counter, 5);

	/* A record that fits goes out as one FIRST|LAST segment and the
	 * counter carries on. */
	CHECK_INT(nl_seg_tx_start(&t, rec, LEN(rec), 247), 0);
	CHECK_INT(nl_seg_tx_next(&t, buf, 64), -ENOBUFS);
	{
		uint8_t big[256];
		int n = nl_seg_tx_next(&t, big, sizeof(big));

		CHECK_INT(n, 80);
		CHECK_INT(big[0], 5 << 2 | 0x03);
		CHECK_MEM(big + 1, 79, rec, 79);
		CHECK_INT(nl_seg_tx_next(&t, big, sizeof(big)), 0);
	}

	CHECK_INT(nl_seg_tx_start(&t, rec, 0, 23), -EINVAL);
	CHECK_INT(nl_seg_tx_start(&t, NULL, 5, 23), -EINVAL);
	CHECK_INT(nl_seg_tx_start(&t, rec, LEN(rec), 22), -EINVAL);
}

static void test_rx_golden(void)
{
	struct nl_seg_rx r;
	const uint8_t *out = NULL;
	struct nl_record decoded;

	nl_seg_rx_reset(&r);
	for (unsigned i = 0; i + 1 < LEN(segs); i++) {
		CHECK_INT(nl_seg_rx_feed(&r, segs[i], seg_lens[i], &out), 0);
		CHECK(out == NULL); /* written only when a record completes */
	}
	CHECK_INT(nl_seg_rx_feed(&r, seg4, LEN(seg4), &out), (int)LEN(rec));
	CHECK(out != NULL);
	if (out) {
		CHECK_MEM(out, LEN(rec), rec, LEN(rec));
		CHECK_INT(nl_record_decode(out, LEN(rec), &decoded), 0);
		CHECK_INT(decoded.u.session_end.zone_count, 3);
	}
}

/* tx -> rx at every MTU from the minimum up to one past the record. */
static void test_roundtrip_all_mtus(void)
{
	unsigned bad = 0;

	for (unsigned mtu = NL_ATT_MTU_MIN; mtu <= LEN(rec) + 5; mtu++) {
		struct nl_seg_tx t;
		struct nl_seg_rx r;
		uint8_t buf[128];
		const uint8_t *out = NULL;
		int n, got = 0, count = 0;

		nl_seg_tx_init(&t);
		nl_seg_rx_reset(&r);
		if (nl_seg_tx_start(&t, rec, LEN(rec), (uint16_t)mtu) < 0) {
			bad++;
			continue;
		}
		while ((n = nl_seg_tx_next(&t, buf, sizeof(buf))) > 0) {
			if ((unsigned)n > mtu - 3)
				bad++;
			got = nl_seg_rx_feed(&r, buf, (size_t)n, &out);
			count++;
		}
		if (got != (int)LEN(rec) || !out || memcmp(out, rec, LEN(rec)) != 0)
			bad++;
		if (count != (int)((LEN(rec) + (mtu - 4) - 1) / (mtu - 4)))
			bad++;
	}
	CHECK_INT(bad, 0);
}

static void test_rx_errors(void)
{
	struct nl_seg_rx r;
	const uint8_t *out = NULL;
	uint8_t b[NL_RECORD_MAX + 8];
	size_t n;

	/* Empty notification. */
	nl_seg_rx_reset(&r);
	CHECK_INT(nl_seg_rx_feed(&r, seg0, 0, &out), -ENODATA);

	/* Gap: counter 0 then 2. The partial record is dropped, so the
	 * following continuation is out of place. */
	nl_seg_rx_reset(&r);
	CHECK_INT(nl_seg_rx_feed(&r, seg0, LEN(seg0), &out), 0);
	CHECK_INT(nl_seg_rx_feed(&r, seg2, LEN(seg2), &out), -EILSEQ);
	CHECK(!r.open);
	CHECK_INT(r.last_counter, 2); /* re-synchronised to the bad segment */
	CHECK_INT(nl_seg_rx_feed(&r, seg3, LEN(seg3), &out), -EPROTO);
	n = mkseg(b, 4, NL_SEG_FIRST | NL_SEG_LAST, rec, LEN(rec));
	CHECK_INT(nl_seg_rx_feed(&r, b, n, &out), (int)LEN(rec));

	/* Duplicate counter. */
	nl_seg_rx_reset(&r);
	CHECK_INT(nl_seg_rx_feed(&r, seg0, LEN(seg0), &out), 0);
	CHECK_INT(nl_seg_rx_feed(&r, seg1, LEN(seg1), &out), 0);
	CHECK_INT(nl_seg_rx_feed(&r, seg1, LEN(seg1), &out), -EALREADY);
	CHECK(!r.open);
	CHECK_INT(nl_seg_rx_feed(&r, seg2, LEN(seg2), &out), -EPROTO);

	/* Continuation with no first segment. */
	nl_seg_rx_reset(&r);
	CHECK_INT(nl_seg_rx_feed(&r, seg1, LEN(seg1), &out), -EPROTO);
	CHECK_INT(nl_seg_rx_feed(&r, seg2, LEN(seg2), &out), -EPROTO);
	/* A LAST without FIRST is out of place too. */
	CHECK_INT(nl_seg_rx_feed(&r, seg3, LEN(seg3), &out), -EPROTO);
	CHECK_INT(nl_seg_rx_feed(&r, seg4, LEN(seg4), &out), -EPROTO);

	/* FIRST while a record is open. */
	nl_seg_rx_reset(&r);
	CHECK_INT(nl_seg_rx_feed(&r, seg0, LEN(seg0), &out), 0);
	n = mkseg(b, 1, NL_SEG_FIRST, rec, 10);
	CHECK_INT(nl_seg_rx_feed(&r, b, n, &out), -EPROTO);
	CHECK(!r.open);
	n = mkseg(b, 2, NL_SEG_FIRST | NL_SEG_LAST, rec, LEN(rec));
	CHECK_INT(nl_seg_rx_feed(&r, b, n, &out), (int)LEN(rec));

	/* FIRST|LAST with no record bytes. */
	nl_seg_rx_reset(&r);
	n = mkseg(b, 0, NL_SEG_FIRST | NL_SEG_LAST, rec, 0);
	CHECK_INT(nl_seg_rx_feed(&r, b, n, &out), -ENODATA);

	/* Oversize: NL_RECORD_MAX exactly is fine, one byte more is not. */
	{
		static uint8_t big[NL_RECORD_MAX + 1];
		unsigned c = 0;
		size_t off = 0;
		int rv = 0;

		memset(big, 0x5A, sizeof(big));
		nl_seg_rx_reset(&r);
		while (off < NL_RECORD_MAX) {
			size_t k = NL_RECORD_MAX - off > 200 ? 200 : NL_RECORD_MAX - off;
			unsigned fl = (off == 0 ? NL_SEG_FIRST : 0) | (off + k == NL_RECORD_MAX ? NL_SEG_LAST : 0);

			n = mkseg(b, c++ % 64, fl, big + off, k);
			rv = nl_seg_rx_feed(&r, b, n, &out);
			off += k;
		}
		CHECK_INT(rv, NL_RECORD_MAX);

		nl_seg_rx_reset(&r);
		off = 0;
		c = 0;
		while (off < NL_RECORD_MAX + 1) {
			size_t k = NL_RECORD_MAX + 1 - off > 200 ? 200 : NL_RECORD_MAX + 1 - off;
			unsigned fl = (off == 0 ? NL_SEG_FIRST : 0) | (off + k == NL_RECORD_MAX + 1 ? NL_SEG_LAST : 0);

			n = mkseg(b, c++ % 64, fl, big + off, k);
			rv = nl_seg_rx_feed(&r, b, n, &out);
			off += k;
		}
		CHECK_INT(rv, -E2BIG);
		CHECK(!r.open);
		/* A single oversized notification. */
		nl_seg_rx_reset(&r);
		n = mkseg(b, 0, NL_SEG_FIRST | NL_SEG_LAST, big, NL_RECORD_MAX + 1);
		CHECK_INT(nl_seg_rx_feed(&r, b, n, &out), -E2BIG);
		/* Then the next record starts afresh. */
		n = mkseg(b, 1, NL_SEG_FIRST | NL_SEG_LAST, rec, LEN(rec));
		CHECK_INT(nl_seg_rx_feed(&r, b, n, &out), (int)LEN(rec));
	}

	/* After a reset (resubscription) any starting counter is accepted. */
	nl_seg_rx_reset(&r);
	n = mkseg(b, 37, NL_SEG_FIRST | NL_SEG_LAST, rec, LEN(rec));
	CHECK_INT(nl_seg_rx_feed(&r, b, n, &out), (int)LEN(rec));
	n = mkseg(b, 38, NL_SEG_FIRST | NL_SEG_LAST, rec, LEN(rec));
	CHECK_INT(nl_seg_rx_feed(&r, b, n, &out), (int)LEN(rec));
	n = mkseg(b, 38, NL_SEG_FIRST | NL_SEG_LAST, rec, LEN(rec));
	CHECK_INT(nl_seg_rx_feed(&r, b, n, &out), -EALREADY);
}

static void test_wrap(void)
{
	struct nl_seg_tx t;
	struct nl_seg_rx r;
	uint8_t buf[64];
	const uint8_t *out = NULL;
	/* 62 FIRST, 63, 0, 1, 2 LAST: 0xF9, 0xFC, 0x00, 0x04, 0x0A. */
	const uint8_t want_hdr[] = { 0xF9, 0xFC, 0x00, 0x04, 0x0A };
	int n;

	nl_seg_tx_init(&t);
	t.counter = 62;
	nl_seg_rx_reset(&r);
	CHECK_INT(nl_seg_tx_start(&t, rec, LEN(rec), NL_ATT_MTU_MIN), 0);
	for (unsigned i = 0; i < LEN(want_hdr); i++) {
		n = nl_seg_tx_next(&t, buf, sizeof(buf));
		CHECK_INT(n, (int)seg_lens[i]);
		CHECK_INT(buf[0], want_hdr[i]);
		CHECK_INT(nl_seg_rx_feed(&r, buf, (size_t)n, &out), i + 1 < LEN(want_hdr) ? 0 : (int)LEN(rec));
	}
	CHECK_INT(t.counter, 3);
	CHECK(out && memcmp(out, rec, LEN(rec)) == 0);

	/* 63 followed by 1 is a gap across the wrap; 63 then 63 a duplicate. */
	{
		uint8_t b[32];
		size_t k;

		nl_seg_rx_reset(&r);
		k = mkseg(b, 63, NL_SEG_FIRST, rec, 10);
		CHECK_INT(nl_seg_rx_feed(&r, b, k, &out), 0);
		k = mkseg(b, 1, NL_SEG_LAST, rec + 10, 10);
		CHECK_INT(nl_seg_rx_feed(&r, b, k, &out), -EILSEQ);
		nl_seg_rx_reset(&r);
		k = mkseg(b, 63, NL_SEG_FIRST, rec, 10);
		CHECK_INT(nl_seg_rx_feed(&r, b, k, &out), 0);
		CHECK_INT(nl_seg_rx_feed(&r, b, k, &out), -EALREADY);
	}
}

int main(void)
{
	test_tx_golden();
	test_rx_golden();
	test_roundtrip_all_mtus();
	test_rx_errors();
	test_wrap();
	return check_summary("test-seg");
}
