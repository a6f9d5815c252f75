/* SPDX-License-Identifier: MIT */
/* Fuzz target: Pen Status value (nl_pen_status_decode). */
#include <string.h>

#include "fuzz_common.h"

static int pen_status_enc(const void *obj, uint8_t *buf, size_t size)
{
	return nl_pen_status_encode(obj, buf, size);
}

/* The decoder drops flag bits outside NL_STATUS_ALL (forward compatible). */
static void clear_reserved(uint8_t *buf, size_t len)
{
	for (unsigned i = 0; i < 4; i++)
		buf[i] &= (uint8_t)((uint32_t)NL_STATUS_ALL >> (8 * i));
}

static void check_one(const uint8_t *data, size_t size)
{
	struct nl_pen_status s, s2;
	uint8_t enc[NL_PEN_STATUS_LEN + 8];
	int rc, n;

	memset(&s, FUZZ_POISON, sizeof(s));
	rc = nl_pen_status_decode(data, size, &s);
	if (rc < 0) {
		FUZZ_CHECK(fuzz_is_decode_error(rc));
		FUZZ_CHECK(nl_strerror(rc) != NULL);
		FUZZ_CHECK(fuzz_is_poisoned(&s, sizeof(s)));
		return;
	}
	FUZZ_CHECK(rc == 0);
	FUZZ_CHECK(size >= NL_PEN_STATUS_LEN);
	fuzz_decoded_ok++;

	FUZZ_CHECK(s.state < NL_PEN_STATE_COUNT);
	FUZZ_CHECK(nl_pen_state_name((enum nl_pen_state)s.state) != NULL);
	if (s.fault_code != 0)
		FUZZ_CHECK(nl_fault_code_name(s.fault_code) != NULL);
	FUZZ_CHECK(s.store_capacity >= 1);
	FUZZ_CHECK(s.store_used <= s.store_capacity);
	FUZZ_CHECK(s.battery_pct <= NL_BATTERY_MAX_PCT);

	n = nl_pen_status_encode(&s, enc, sizeof(enc));
	FUZZ_CHECK(n == NL_PEN_STATUS_LEN);
	fuzz_check_encode_sizes(pen_status_enc, &s, enc, (size_t)n);
	if (size == NL_PEN_STATUS_LEN)
		FUZZ_CHECK(fuzz_same_bytes(enc, data, size, clear_reserved, true));
	FUZZ_CHECK(nl_pdu_check_crc(enc, (size_t)n) == 0);

	memset(&s2, FUZZ_POISON, sizeof(s2));
	FUZZ_CHECK(nl_pen_status_decode(enc, (size_t)n, &s2) == 0);
	FUZZ_CHECK(fuzz_pen_status_eq(&s, &s2));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fuzz_run_with_fixed_crc(check_one, data, size);
	return 0;
}
