/* SPDX-License-Identifier: MIT */
/* Segmentation of records on the Treatment Record characteristic (seg.h). */
#include <string.h>

#include "needlelink/seg.h"

#define SEG_COUNTER_SHIFT 2u

void nl_seg_tx_init(struct nl_seg_tx *t)
{
	memset(t, 0, sizeof(*t));
}

int nl_seg_tx_start(struct nl_seg_tx *t, const uint8_t *rec, size_t len, uint16_t mtu)
{
	if (!rec || len < 1 || mtu < NL_ATT_MTU_MIN)
		return -EINVAL;
	t->rec = rec;
	t->len = len;
	t->off = 0;
	t->chunk = (size_t)mtu - 3u - 1u; /* ATT notification header, segment header */
	return 0;
}

int nl_seg_tx_next(struct nl_seg_tx *t, uint8_t *buf, size_t size)
{
	size_t n;
	uint8_t hdr;

	if (!t->rec || t->off >= t->len)
		return 0;
	if (size < t->chunk + 1)
		return -ENOBUFS;
	n = t->len - t->off;
	if (n > t->chunk)
		n = t->chunk;
	hdr = (uint8_t)(t->counter << SEG_COUNTER_SHIFT);
	if (t->off == 0)
		hdr |= NL_SEG_FIRST;
	if (t->off + n == t->len)
		hdr |= NL_SEG_LAST;
	buf[0] = hdr;
	memcpy(buf + 1, t->rec + t->off, n);
	t->off += n;
	t->counter = (uint8_t)((t->counter + 1u) % NL_SEG_COUNTER_MOD);
	return (int)(n + 1);
}

void nl_seg_rx_reset(struct nl_seg_rx *r)
{
	r->started = false;
	r->open = false;
	r->last_counter = 0;
	r->len = 0;
}

static int rx_fail(struct nl_seg_rx *r, int err)
{
	r->open = false;
	r->len = 0;
	return err;
}

int nl_seg_rx_feed(struct nl_seg_rx *r, const uint8_t *seg, size_t len,
		   const uint8_t **ret_rec)
{
	uint8_t counter;
	size_t payload;

	if (!seg || len < 1)
		return rx_fail(r, -ENODATA);
	counter = (uint8_t)(seg[0] >> SEG_COUNTER_SHIFT);

	/* The first segment after a reset sets the counter: the collector may
	 * have (re)subscribed after the pen started counting. */
	if (r->started) {
		uint8_t expect = (uint8_t)((r->last_counter + 1u) % NL_SEG_COUNTER_MOD);

		if (counter != expect) {
			int err = counter == r->last_counter ? -EALREADY : -EILSEQ;

			r->last_counter = counter;
			return rx_fail(r, err);
		}
	}
	r->started = true;
	r->last_counter = counter;

	if (seg[0] & NL_SEG_FIRST) {
		if (r->open)
			return rx_fail(r, -EPROTO);
		r->open = true;
		r->len = 0;
	} else if (!r->open) {
		return rx_fail(r, -EPROTO);
	}

	payload = len - 1;
	if (payload > NL_RECORD_MAX - r->len)
		return rx_fail(r, -E2BIG);
	memcpy(r->buf + r->len, seg + 1, payload);
	r->len += payload;

	if (!(seg[0] & NL_SEG_LAST))
		return 0;
	r->open = false;
	if (r->len == 0)
		return -ENODATA; /* FIRST|LAST with no record bytes */
	*ret_rec = r->buf;
	return (int)r->len;
}
