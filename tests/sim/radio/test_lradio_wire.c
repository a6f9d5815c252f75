/* SPDX-License-Identifier: MIT */
/* Local radio codec: round trips, truncation at every length, malformed frames. */
#include <errno.h>
#include <string.h>

#include "lradio_wire.h"
#include "tharness.h"

static struct lradio_adv sample_adv(void)
{
	struct lradio_adv a;
	memset(&a, 0, sizeof(a));
	strcpy(a.name, "NeedleLink Pen SIM001");
	strcpy(a.serial, "SIM001");
	strcpy(a.service_uuid, "4e4c0001-7a1d-4c3b-9f6e-5d2b8a0c1e37");
	strcpy(a.kind, "pen");
	a.rssi = -61;
	return a;
}

/* Every proper prefix of a valid frame must be refused by decode (or
 * decode to something else than the full frame: never read past the end). */
typedef int (*dec_fn)(const struct lradio_frame *f);

static void truncations(const uint8_t *buf, size_t len, dec_fn dec)
{
	for (size_t l = 0; l < len; l++) {
		struct lradio_frame f;
		int r = lradio_frame_parse(buf, l, &f);
		if (l < LRADIO_HDR_LEN) {
			CHECK_EQ(r, -EBADMSG);
			continue;
		}
		CHECK_EQ(r, 0);
		CHECK_EQ(dec(&f), -EBADMSG);
	}
	struct lradio_frame f;
	CHECK_EQ(lradio_frame_parse(buf, len, &f), 0);
	CHECK_EQ(dec(&f), 0);
}

static int dec_hello(const struct lradio_frame *f)
{
	struct lradio_hello h;
	return lradio_dec_hello(f, &h);
}

static int dec_mtu(const struct lradio_frame *f)
{
	uint16_t m;
	return lradio_dec_mtu(f, &m);
}

static int dec_read_req(const struct lradio_frame *f)
{
	uint16_t h;
	return lradio_dec_read_req(f, &h);
}

static int dec_cccd(const struct lradio_frame *f)
{
	uint16_t h, v;
	return lradio_dec_cccd_req(f, &h, &v);
}

static int dec_status(const struct lradio_frame *f)
{
	uint8_t a;
	return lradio_dec_status_rsp(f, &a);
}

static int dec_disc(const struct lradio_frame *f)
{
	enum lradio_reason r;
	return lradio_dec_disconnect(f, &r);
}

static int dec_discover_rsp(const struct lradio_frame *f)
{
	struct lradio_attr a[LRADIO_DISCOVER_MAX_PER_FRAME];
	bool more;
	size_t n;
	return lradio_dec_discover_rsp(f, &more, a, LRADIO_DISCOVER_MAX_PER_FRAME, &n);
}

static int dec_write_req(const struct lradio_frame *f)
{
	uint16_t h;
	const uint8_t *v;
	size_t n;
	return lradio_dec_write_req(f, &h, &v, &n);
}

static void test_hello(void)
{
	uint8_t buf[256];
	struct lradio_hello h = {.version = 1, .flags = LRADIO_HELLO_SECURE, .max_mtu = 517};
	h.adv = sample_adv();
	int n = lradio_enc_hello(buf, sizeof(buf), &h);
	CHECK(n > 0);
	struct lradio_frame f;
	CHECK_EQ(lradio_frame_parse(buf, (size_t)n, &f), 0);
	CHECK_EQ(f.type, LRADIO_T_HELLO);
	struct lradio_hello d;
	CHECK_EQ(lradio_dec_hello(&f, &d), 0);
	CHECK_EQ(d.version, 1);
	CHECK_EQ(d.flags, LRADIO_HELLO_SECURE);
	CHECK_EQ(d.max_mtu, 517);
	CHECK_EQ(d.adv.rssi, -61);
	CHECK(strcmp(d.adv.name, h.adv.name) == 0);
	CHECK(strcmp(d.adv.serial, "SIM001") == 0);
	CHECK(strcmp(d.adv.service_uuid, h.adv.service_uuid) == 0);
	CHECK(strcmp(d.adv.kind, "pen") == 0);
	truncations(buf, (size_t)n, dec_hello);
	/* A trailing byte is refused too. */
	buf[n] = 0;
	CHECK_EQ(lradio_frame_parse(buf, (size_t)n + 1, &f), 0);
	CHECK_EQ(lradio_dec_hello(&f, &d), -EBADMSG);
	/* A serial with a '/' would escape DIR: refused. */
	uint8_t bad[256];
	memcpy(bad, buf, (size_t)n);
	size_t off = LRADIO_HDR_LEN + 5 + 16;
	off += 1 + bad[off]; /* skip name */
	CHECK(bad[off] == 6);
	bad[off + 1] = '/';
	CHECK_EQ(lradio_frame_parse(bad, (size_t)n, &f), 0);
	CHECK_EQ(lradio_dec_hello(&f, &d), -EBADMSG);
	/* Too small buffer. */
	CHECK_EQ(lradio_enc_hello(buf, 10, &h), -ENOBUFS);
}

static void test_simple(void)
{
	uint8_t buf[64];
	struct lradio_frame f;
	int n;

	n = lradio_enc_mtu(buf, sizeof(buf), LRADIO_T_MTU_REQ, 0x1234, 247);
	CHECK_EQ(n, 5);
	CHECK_EQ(buf[0], 0x02);
	CHECK_EQ(buf[1], 0x34); /* little endian id */
	CHECK_EQ(buf[2], 0x12);
	truncations(buf, (size_t)n, dec_mtu);
	uint16_t mtu = 0;
	CHECK_EQ(lradio_frame_parse(buf, (size_t)n, &f), 0);
	CHECK_EQ(f.id, 0x1234);
	CHECK_EQ(lradio_dec_mtu(&f, &mtu), 0);
	CHECK_EQ(mtu, 247);
	/* MTU below 23 is malformed. */
	n = lradio_enc_mtu(buf, sizeof(buf), LRADIO_T_MTU_RSP, 1, 22);
	CHECK_EQ(lradio_frame_parse(buf, (size_t)n, &f), 0);
	CHECK_EQ(lradio_dec_mtu(&f, &mtu), -EBADMSG);
	CHECK_EQ(mtu, 247); /* untouched on failure */

	n = lradio_enc_read_req(buf, sizeof(buf), 7, 0x0011);
	truncations(buf, (size_t)n, dec_read_req);
	n = lradio_enc_cccd_req(buf, sizeof(buf), 8, 0x0011, 2);
	truncations(buf, (size_t)n, dec_cccd);
	uint16_t h, v;
	CHECK_EQ(lradio_frame_parse(buf, (size_t)n, &f), 0);
	CHECK_EQ(lradio_dec_cccd_req(&f, &h, &v), 0);
	CHECK_EQ(h, 0x11);
	CHECK_EQ(v, 2);
	n = lradio_enc_status_rsp(buf, sizeof(buf), LRADIO_T_WRITE_RSP, 9, 0xFE);
	truncations(buf, (size_t)n, dec_status);
	uint8_t att;
	CHECK_EQ(lradio_frame_parse(buf, (size_t)n, &f), 0);
	CHECK_EQ(lradio_dec_status_rsp(&f, &att), 0);
	CHECK_EQ(att, 0xFE);
	/* A status frame decoded as the wrong type is refused. */
	CHECK_EQ(lradio_dec_read_req(&f, &h), -EBADMSG);

	n = lradio_enc_disconnect(buf, sizeof(buf), LRADIO_REASON_BUSY);
	truncations(buf, (size_t)n, dec_disc);
	buf[3] = 0x99; /* unknown reason */
	CHECK_EQ(lradio_frame_parse(buf, (size_t)n, &f), 0);
	enum lradio_reason reason;
	CHECK_EQ(lradio_dec_disconnect(&f, &reason), -EBADMSG);

	n = lradio_enc_confirm(buf, sizeof(buf), 0x0C);
	CHECK_EQ(n, 3);
	CHECK_EQ(lradio_frame_parse(buf, (size_t)n, &f), 0);
	CHECK_EQ(lradio_dec_confirm(&f), 0);
	buf[1] = buf[2] = 0; /* handle 0 */
	CHECK_EQ(lradio_frame_parse(buf, (size_t)n, &f), 0);
	CHECK_EQ(lradio_dec_confirm(&f), -EBADMSG);
}

static void test_values(void)
{
	uint8_t val[LRADIO_VALUE_MAX];
	uint8_t buf[LRADIO_FRAME_MAX + 8];
	struct lradio_frame f;
	const uint8_t *p;
	size_t len;
	uint8_t att;
	uint16_t h;

	for (size_t i = 0; i < sizeof(val); i++)
		val[i] = (uint8_t)(i * 7 + 1);
	int n = lradio_enc_read_rsp(buf, sizeof(buf), 3, 0, val, sizeof(val));
	CHECK_EQ(n, 3 + 1 + 512);
	CHECK_EQ(lradio_frame_parse(buf, (size_t)n, &f), 0);
	CHECK_EQ(lradio_dec_read_rsp(&f, &att, &p, &len), 0);
	CHECK_EQ(att, 0);
	CHECK_EQ(len, sizeof(val));
	CHECK(memcmp(p, val, len) == 0);
	/* An error response carrying a value is malformed. */
	buf[3] = 0x02;
	CHECK_EQ(lradio_frame_parse(buf, (size_t)n, &f), 0);
	CHECK_EQ(lradio_dec_read_rsp(&f, &att, &p, &len), -EBADMSG);
	n = lradio_enc_read_rsp(buf, sizeof(buf), 3, 0x02, NULL, 0);
	CHECK_EQ(lradio_frame_parse(buf, (size_t)n, &f), 0);
	CHECK_EQ(lradio_dec_read_rsp(&f, &att, &p, &len), 0);
	CHECK_EQ(att, 2);
	CHECK_EQ(len, 0);
	/* Empty READ_RSP payload. */
	CHECK_EQ(lradio_frame_parse(buf, 3, &f), 0);
	CHECK_EQ(lradio_dec_read_rsp(&f, &att, &p, &len), -EBADMSG);

	n = lradio_enc_write_req(buf, sizeof(buf), 4, 0x0E, val, 20);
	truncations(buf, 5, dec_write_req); /* up to the handle; the value may be empty */
	CHECK_EQ(lradio_frame_parse(buf, (size_t)n, &f), 0);
	CHECK_EQ(lradio_dec_write_req(&f, &h, &p, &len), 0);
	CHECK_EQ(h, 0x0E);
	CHECK_EQ(len, 20);
	CHECK(memcmp(p, val, 20) == 0);

	n = lradio_enc_value(buf, sizeof(buf), LRADIO_T_NOTIFY, 0x05, val, 100);
	CHECK_EQ(lradio_frame_parse(buf, (size_t)n, &f), 0);
	CHECK_EQ(f.type, LRADIO_T_NOTIFY);
	CHECK_EQ(f.id, 5);
	CHECK_EQ(lradio_dec_value(&f, &p, &len), 0);
	CHECK_EQ(len, 100);
	CHECK(memcmp(p, val, 100) == 0);
	/* Frames over LRADIO_FRAME_MAX and unknown types are refused. */
	CHECK_EQ(lradio_enc_value(buf, sizeof(buf), LRADIO_T_NOTIFY, 5, val, 0) , 3);
	CHECK_EQ(lradio_frame_parse(buf, LRADIO_FRAME_MAX + 1, &f), -EBADMSG);
	buf[0] = 0x00;
	CHECK_EQ(lradio_frame_parse(buf, 3, &f), -EBADMSG);
	buf[0] = 0x10;
	CHECK_EQ(lradio_frame_parse(buf, 3, &f), -EBADMSG);
	CHECK_EQ(lradio_enc_write_req(buf, 10, 1, 1, val, 20), -ENOBUFS);
}

static void test_discover(void)
{
	struct lradio_attr in[LRADIO_DISCOVER_MAX_PER_FRAME], out[LRADIO_DISCOVER_MAX_PER_FRAME];
	uint8_t buf[LRADIO_FRAME_MAX];
	struct lradio_frame f;
	bool more;
	size_t n;

	for (size_t i = 0; i < LRADIO_DISCOVER_MAX_PER_FRAME; i++) {
		in[i].kind = i % 5 == 0 ? LRADIO_ATTR_SERVICE : LRADIO_ATTR_CHARACTERISTIC;
		in[i].handle = (uint16_t)(i * 3 + 1);
		in[i].props = in[i].kind == LRADIO_ATTR_SERVICE ? 0 : (uint8_t)(i & 0x1F);
		for (int k = 0; k < 16; k++)
			in[i].uuid[k] = (uint8_t)(i * 16 + (size_t)k);
	}
	int len = lradio_enc_discover_rsp(buf, sizeof(buf), 77, true, in,
	                                  LRADIO_DISCOVER_MAX_PER_FRAME);
	CHECK_EQ(len, 3 + 2 + 20 * LRADIO_DISCOVER_MAX_PER_FRAME);
	truncations(buf, (size_t)len, dec_discover_rsp);
	CHECK_EQ(lradio_frame_parse(buf, (size_t)len, &f), 0);
	CHECK_EQ(lradio_dec_discover_rsp(&f, &more, out, LRADIO_DISCOVER_MAX_PER_FRAME, &n), 0);
	CHECK(more);
	CHECK_EQ(n, LRADIO_DISCOVER_MAX_PER_FRAME);
	for (size_t i = 0; i < n; i++) {
		CHECK_EQ(out[i].kind, in[i].kind);
		CHECK_EQ(out[i].handle, in[i].handle);
		CHECK_EQ(out[i].props, in[i].props);
		CHECK(memcmp(out[i].uuid, in[i].uuid, 16) == 0);
	}
	/* The caller's array is too small. */
	CHECK_EQ(lradio_dec_discover_rsp(&f, &more, out, 3, &n), -EBADMSG);
	/* Bad kind, handle 0, unknown props, service with props, unknown flag. */
	const size_t e0 = LRADIO_HDR_LEN + 2;
	uint8_t bad[LRADIO_FRAME_MAX];
	const size_t offs[] = {e0, e0 + 1, e0 + 20 + 3, e0 + 3, LRADIO_HDR_LEN};
	const uint8_t vals[] = {9, 0, 0x20, 1, 0x02};
	for (size_t i = 0; i < sizeof(offs) / sizeof(offs[0]); i++) {
		memcpy(bad, buf, (size_t)len);
		bad[offs[i]] = vals[i];
		if (offs[i] == e0 + 1)
			bad[e0 + 2] = 0;
		CHECK_EQ(lradio_frame_parse(bad, (size_t)len, &f), 0);
		CHECK_EQ(lradio_dec_discover_rsp(&f, &more, out, LRADIO_DISCOVER_MAX_PER_FRAME, &n),
		         -EBADMSG);
	}
	/* Count disagreeing with the length. */
	memcpy(bad, buf, (size_t)len);
	bad[LRADIO_HDR_LEN + 1] = 2;
	CHECK_EQ(lradio_frame_parse(bad, (size_t)len, &f), 0);
	CHECK_EQ(lradio_dec_discover_rsp(&f, &more, out, LRADIO_DISCOVER_MAX_PER_FRAME, &n),
	         -EBADMSG);
	/* The empty last frame. */
	len = lradio_enc_discover_rsp(buf, sizeof(buf), 1, false, NULL, 0);
	CHECK_EQ(lradio_frame_parse(buf, (size_t)len, &f), 0);
	CHECK_EQ(lradio_dec_discover_rsp(&f, &more, out, 1, &n), 0);
	CHECK(!more);
	CHECK_EQ(n, 0);
}

static void test_uuid_adv(void)
{
	uint8_t u[16];
	char s[LRADIO_UUID_STR_LEN + 1];

	CHECK_EQ(lradio_uuid_parse("4E4C0001-7A1D-4C3B-9F6E-5D2B8A0C1E37", u), 0);
	CHECK_EQ(u[0], 0x4E);
	CHECK_EQ(u[15], 0x37);
	lradio_uuid_format(u, s);
	CHECK(strcmp(s, "4e4c0001-7a1d-4c3b-9f6e-5d2b8a0c1e37") == 0);
	CHECK_EQ(lradio_uuid_parse("4e4c0001-7a1d-4c3b-9f6e-5d2b8a0c1e3", u), -EINVAL);
	CHECK_EQ(lradio_uuid_parse("4e4c0001x7a1d-4c3b-9f6e-5d2b8a0c1e37", u), -EINVAL);
	CHECK_EQ(lradio_uuid_parse("4e4c0001-7a1d-4c3b-9f6e-5d2b8a0c1eg7", u), -EINVAL);

	CHECK(lradio_serial_valid("SIM-001_a"));
	CHECK(!lradio_serial_valid(""));
	CHECK(!lradio_serial_valid("../x"));
	CHECK(!lradio_serial_valid("123456789012345678901234567890123")); /* 33 */

	struct lradio_adv a = sample_adv(), b;
	char text[256];
	int n = lradio_adv_format(text, sizeof(text), &a);
	CHECK(n > 0);
	CHECK_EQ(lradio_adv_parse(text, (size_t)n, &b), 0);
	CHECK(memcmp(&a, &b, sizeof(a)) == 0);
	/* Any proper prefix (a torn file) is refused. */
	for (int l = 0; l < n; l++)
		CHECK_EQ(lradio_adv_parse(text, (size_t)l, &b), -EBADMSG);
	const char *bad[] = {
		"name=x\nserial=S1\nservice=4e4c0001-7a1d-4c3b-9f6e-5d2b8a0c1e37\nrssi=-1\n",
		("name=x\nserial=S1\nservice=4e4c0001-7a1d-4c3b-9f6e-5d2b8a0c1e37\nrssi=-1\nkind=pen\n"
		 "kind=pen\n"),
		"name=x\nserial=S/1\nservice=4e4c0001-7a1d-4c3b-9f6e-5d2b8a0c1e37\nrssi=-1\nkind=pen\n",
		"name=x\nserial=S1\nservice=4e4c0001-7a1d-4c3b-9f6e-5d2b8a0c1e37\nrssi=-200\nkind=pen\n",
		"name=x\nserial=S1\nservice=4E4C0001-7a1d-4c3b-9f6e-5d2b8a0c1e37\nrssi=-1\nkind=pen\n",
		"name=x\nserial=S1\nservice=4e4c0001-7a1d-4c3b-9f6e-5d2b8a0c1e37\nrssi=-1\nkind=pen\nx=1\n",
		"name=x\nserial=S1\nservice=4e4c0001-7a1d-4c3b-9f6e-5d2b8a0c1e37\nrssi=1a\nkind=pen\n",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		CHECK_EQ(lradio_adv_parse(bad[i], strlen(bad[i]), &b), -EBADMSG);
	const char *ok = "kind=pen\nrssi=-1\nname=\nserial=S1\n"
	                 "service=4e4c0001-7a1d-4c3b-9f6e-5d2b8a0c1e37\n";
	CHECK_EQ(lradio_adv_parse(ok, strlen(ok), &b), 0);
	CHECK_EQ(b.rssi, -1);
	CHECK(strcmp(b.serial, "S1") == 0);
}

int main(void)
{
	test_hello();
	test_simple();
	test_values();
	test_discover();
	test_uuid_adv();
	printf("lradio wire: ok\n");
	return 0;
}
