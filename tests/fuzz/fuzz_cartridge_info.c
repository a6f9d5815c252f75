/* SPDX-License-Identifier: MIT */
/* Fuzz target: Cartridge Info value (nl_cartridge_info_decode). */
#include <string.h>

#include "fuzz_common.h"

static int cartridge_enc(const void *obj, uint8_t *buf, size_t size)
{
	return nl_cartridge_info_encode(obj, buf, size);
}

static void check_one(const uint8_t *data, size_t size)
{
	static const uint8_t zero_uid[NL_CARTRIDGE_UID_LEN];
	struct nl_cartridge_info c, c2;
	uint8_t enc[NL_CARTRIDGE_INFO_LEN + 8];
	int rc, n;

	memset(&c, FUZZ_POISON, sizeof(c));
	rc = nl_cartridge_info_decode(data, size, &c);
	if (rc < 0) {
		FUZZ_CHECK(fuzz_is_decode_error(rc));
		FUZZ_CHECK(nl_strerror(rc) != NULL);
		FUZZ_CHECK(fuzz_is_poisoned(&c, sizeof(c)));
		return;
	}
	FUZZ_CHECK(rc == 0);
	FUZZ_CHECK(size >= NL_CARTRIDGE_INFO_LEN);
	fuzz_decoded_ok++;

	FUZZ_CHECK(c.state < NL_CARTRIDGE_STATE_COUNT);
	if (c.state == NL_CARTRIDGE_NONE) {
		FUZZ_CHECK(memcmp(c.uid, zero_uid, sizeof(zero_uid)) == 0);
		FUZZ_CHECK(c.needle_count == 0);
	} else {
		FUZZ_CHECK(c.needle_count >= 1 && c.needle_count <= 64);
	}
	FUZZ_CHECK(c.needle_length_um <= NL_DEPTH_MAX_UM);
	/* The lot is a NUL-terminated string of printable ASCII. */
	FUZZ_CHECK(memchr(c.lot, '\0', sizeof(c.lot)) != NULL);
	for (size_t i = 0; c.lot[i]; i++)
		FUZZ_CHECK(c.lot[i] >= 0x20 && c.lot[i] <= 0x7e);

	n = nl_cartridge_info_encode(&c, enc, sizeof(enc));
	FUZZ_CHECK(n == NL_CARTRIDGE_INFO_LEN);
	fuzz_check_encode_sizes(cartridge_enc, &c, enc, (size_t)n);
	if (size == NL_CARTRIDGE_INFO_LEN)
		FUZZ_CHECK(memcmp(enc, data, size) == 0);
	FUZZ_CHECK(nl_pdu_check_crc(enc, (size_t)n) == 0);

	memset(&c2, FUZZ_POISON, sizeof(c2));
	FUZZ_CHECK(nl_cartridge_info_decode(enc, (size_t)n, &c2) == 0);
	FUZZ_CHECK(fuzz_cartridge_info_eq(&c, &c2));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fuzz_run_with_fixed_crc(check_one, data, size);
	return 0;
}
