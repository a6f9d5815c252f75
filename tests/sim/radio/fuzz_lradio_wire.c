/* SPDX-License-Identifier: MIT */
/*
 * Fuzz target of the local radio codec. Invariants: no decoder reads out of
 * bounds; whatever decodes re-encodes to the same bytes (the encoding is
 * canonical); a failed decode leaves its out-parameters alone; the .adv
 * parser's output formats and parses back to itself.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_lradio.h"
#include "lradio_wire.h"

unsigned long fuzz_lradio_ok;

#define FCHECK(cond)                                                                 \
	do {                                                                         \
		if (!(cond)) {                                                       \
			fprintf(stderr, "%s:%d: invariant failed: %s\n", __FILE__,    \
			        __LINE__, #cond);                                    \
			abort();                                                     \
		}                                                                    \
	} while (0)

static uint8_t out[LRADIO_FRAME_MAX * 2];

static void same(const uint8_t *data, size_t size, int n)
{
	FCHECK(n >= 0);
	FCHECK((size_t)n == size);
	FCHECK(memcmp(out, data, size) == 0);
	fuzz_lradio_ok++;
}

static void frame(const uint8_t *data, size_t size)
{
	struct lradio_frame f;
	int r = lradio_frame_parse(data, size, &f);
	if (r < 0) {
		FCHECK(r == -EBADMSG);
		return;
	}
	FCHECK(f.payload == data + LRADIO_HDR_LEN && f.len == size - LRADIO_HDR_LEN);

	switch (f.type) {
	case LRADIO_T_HELLO: {
		struct lradio_hello h;
		memset(&h, 0xA5, sizeof(h));
		if (lradio_dec_hello(&f, &h) == 0)
			same(data, size, lradio_enc_hello(out, sizeof(out), &h));
		else
			FCHECK(((uint8_t *)&h)[0] == 0xA5);
		break;
	}
	case LRADIO_T_MTU_REQ:
	case LRADIO_T_MTU_RSP: {
		uint16_t mtu = 0xA5A5;
		if (lradio_dec_mtu(&f, &mtu) == 0)
			same(data, size, lradio_enc_mtu(out, sizeof(out), f.type, f.id, mtu));
		else
			FCHECK(mtu == 0xA5A5);
		break;
	}
	case LRADIO_T_DISCOVER_REQ:
		if (lradio_dec_discover_req(&f) == 0)
			same(data, size, lradio_enc_discover_req(out, sizeof(out), f.id));
		break;
	case LRADIO_T_DISCOVER_RSP: {
		struct lradio_attr a[LRADIO_DISCOVER_MAX_PER_FRAME];
		bool more;
		size_t n;
		if (lradio_dec_discover_rsp(&f, &more, a, LRADIO_DISCOVER_MAX_PER_FRAME, &n) == 0)
			same(data, size,
			     lradio_enc_discover_rsp(out, sizeof(out), f.id, more, a, n));
		break;
	}
	case LRADIO_T_READ_REQ: {
		uint16_t h;
		if (lradio_dec_read_req(&f, &h) == 0)
			same(data, size, lradio_enc_read_req(out, sizeof(out), f.id, h));
		break;
	}
	case LRADIO_T_READ_RSP: {
		uint8_t att;
		const uint8_t *v;
		size_t n;
		if (lradio_dec_read_rsp(&f, &att, &v, &n) == 0)
			same(data, size, lradio_enc_read_rsp(out, sizeof(out), f.id, att, v, n));
		break;
	}
	case LRADIO_T_WRITE_REQ: {
		uint16_t h;
		const uint8_t *v;
		size_t n;
		if (lradio_dec_write_req(&f, &h, &v, &n) == 0)
			same(data, size, lradio_enc_write_req(out, sizeof(out), f.id, h, v, n));
		break;
	}
	case LRADIO_T_WRITE_RSP:
	case LRADIO_T_CCCD_WRITE_RSP: {
		uint8_t att;
		if (lradio_dec_status_rsp(&f, &att) == 0)
			same(data, size, lradio_enc_status_rsp(out, sizeof(out), f.type, f.id, att));
		break;
	}
	case LRADIO_T_CCCD_WRITE_REQ: {
		uint16_t h, v;
		if (lradio_dec_cccd_req(&f, &h, &v) == 0)
			same(data, size, lradio_enc_cccd_req(out, sizeof(out), f.id, h, v));
		break;
	}
	case LRADIO_T_NOTIFY:
	case LRADIO_T_INDICATE: {
		const uint8_t *v;
		size_t n;
		if (lradio_dec_value(&f, &v, &n) == 0)
			same(data, size, lradio_enc_value(out, sizeof(out), f.type, f.id, v, n));
		break;
	}
	case LRADIO_T_CONFIRM:
		if (lradio_dec_confirm(&f) == 0)
			same(data, size, lradio_enc_confirm(out, sizeof(out), f.id));
		break;
	case LRADIO_T_DISCONNECT: {
		enum lradio_reason reason;
		if (lradio_dec_disconnect(&f, &reason) == 0)
			same(data, size, lradio_enc_disconnect(out, sizeof(out), reason));
		break;
	}
	}
	/* Type confusion: every other decoder refuses this frame. */
	uint16_t u16;
	if (f.type != LRADIO_T_READ_REQ)
		FCHECK(lradio_dec_read_req(&f, &u16) == -EBADMSG);
	if (f.type != LRADIO_T_CONFIRM)
		FCHECK(lradio_dec_confirm(&f) == -EBADMSG);
}

static void adv(const uint8_t *data, size_t size)
{
	struct lradio_adv a, b;
	char text[512];
	if (lradio_adv_parse((const char *)data, size, &a) < 0)
		return;
	int n = lradio_adv_format(text, sizeof(text), &a);
	FCHECK(n > 0);
	FCHECK(lradio_adv_parse(text, (size_t)n, &b) == 0);
	FCHECK(memcmp(&a, &b, sizeof(a)) == 0);
	fuzz_lradio_ok++;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	frame(data, size);
	adv(data, size);
	return 0;
}
