/* SPDX-License-Identifier: MIT */
/* Writes seed inputs for the local radio fuzz target (output committed):
 *   gen-lradio-corpus tests/sim/radio/corpus */
#include <stdio.h>
#include <string.h>

#include "lradio_wire.h"

static const char *outdir;

static void put(const char *name, const void *buf, int len)
{
	char path[4096];
	if (len < 0) {
		fprintf(stderr, "%s: encode failed\n", name);
		return;
	}
	snprintf(path, sizeof(path), "%s/%s", outdir, name);
	FILE *f = fopen(path, "wb");
	if (!f || fwrite(buf, 1, (size_t)len, f) != (size_t)len) {
		perror(path);
		return;
	}
	fclose(f);
}

int main(int argc, char **argv)
{
	uint8_t b[LRADIO_FRAME_MAX], val[300];
	struct lradio_hello h = {.version = 1, .flags = 1, .max_mtu = 517};
	struct lradio_attr a[3];

	if (argc != 2)
		return 2;
	outdir = argv[1];
	for (size_t i = 0; i < sizeof(val); i++)
		val[i] = (uint8_t)(i * 13);
	snprintf(h.adv.name, sizeof(h.adv.name), "NL Pen SIM001");
	snprintf(h.adv.serial, sizeof(h.adv.serial), "SIM001");
	snprintf(h.adv.service_uuid, sizeof(h.adv.service_uuid),
	         "4e4c0001-7a1d-4c3b-9f6e-5d2b8a0c1e37");
	snprintf(h.adv.kind, sizeof(h.adv.kind), "pen");
	h.adv.rssi = -60;
	put("valid-hello", b, lradio_enc_hello(b, sizeof(b), &h));
	put("valid-mtu-req", b, lradio_enc_mtu(b, sizeof(b), LRADIO_T_MTU_REQ, 1, 247));
	put("valid-mtu-rsp", b, lradio_enc_mtu(b, sizeof(b), LRADIO_T_MTU_RSP, 1, 517));
	put("valid-discover-req", b, lradio_enc_discover_req(b, sizeof(b), 2));
	memset(a, 0, sizeof(a));
	a[0].kind = LRADIO_ATTR_SERVICE;
	a[0].handle = 1;
	a[1].kind = LRADIO_ATTR_CHARACTERISTIC;
	a[1].handle = 3;
	a[1].props = 0x11;
	a[2].kind = LRADIO_ATTR_CHARACTERISTIC;
	a[2].handle = 5;
	a[2].props = 0x14;
	for (int i = 0; i < 3; i++)
		(void)lradio_uuid_parse("4e4c0002-7a1d-4c3b-9f6e-5d2b8a0c1e37", a[i].uuid);
	put("valid-discover-rsp", b, lradio_enc_discover_rsp(b, sizeof(b), 2, true, a, 3));
	put("valid-read-req", b, lradio_enc_read_req(b, sizeof(b), 3, 3));
	put("valid-read-rsp", b, lradio_enc_read_rsp(b, sizeof(b), 3, 0, val, 40));
	put("valid-read-rsp-err", b, lradio_enc_read_rsp(b, sizeof(b), 3, 0x02, NULL, 0));
	put("valid-write-req", b, lradio_enc_write_req(b, sizeof(b), 4, 14, val, 12));
	put("valid-write-rsp", b, lradio_enc_status_rsp(b, sizeof(b), LRADIO_T_WRITE_RSP, 4, 0xFE));
	put("valid-cccd-req", b, lradio_enc_cccd_req(b, sizeof(b), 5, 11, 2));
	put("valid-cccd-rsp", b, lradio_enc_status_rsp(b, sizeof(b), LRADIO_T_CCCD_WRITE_RSP, 5, 0));
	put("valid-notify", b, lradio_enc_value(b, sizeof(b), LRADIO_T_NOTIFY, 8, val, 244));
	put("valid-indicate", b, lradio_enc_value(b, sizeof(b), LRADIO_T_INDICATE, 11, val, 5));
	put("valid-confirm", b, lradio_enc_confirm(b, sizeof(b), 11));
	put("valid-disconnect", b, lradio_enc_disconnect(b, sizeof(b), LRADIO_REASON_BUSY));
	char text[256];
	put("valid-adv", text, lradio_adv_format(text, sizeof(text), &h.adv));
	/* Malformed ones. */
	int n = lradio_enc_hello(b, sizeof(b), &h);
	put("invalid-hello-truncated", b, n - 2);
	b[0] = 0x42;
	put("invalid-type", b, 5);
	n = lradio_enc_read_rsp(b, sizeof(b), 3, 0x02, NULL, 0);
	b[n] = 1;
	put("invalid-read-rsp-err-with-value", b, n + 1);
	put("invalid-adv-torn", text, lradio_adv_format(text, sizeof(text), &h.adv) - 1);
	return 0;
}
