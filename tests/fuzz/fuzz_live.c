/* SPDX-License-Identifier: MIT */
/* Fuzz target: Live Status notification (nl_live_decode). */
#include <string.h>

#include "fuzz_common.h"

static int live_enc(const void *obj, uint8_t *buf, size_t size)
{
	return nl_live_encode(obj, buf, size);
}

/* The decoder drops flag bits outside NL_LIVE_ALL (forward compatible). */
static void clear_reserved(uint8_t *buf, size_t len)
{
	buf[1] &= (uint8_t)NL_LIVE_ALL;
}

static void check_one(const uint8_t *data, size_t size)
{
	struct nl_live l, l2;
	uint8_t enc[NL_LIVE_LEN + 8];
	int rc, n;

	memset(&l, FUZZ_POISON, sizeof(l));
	rc = nl_live_decode(data, size, &l);
	if (rc < 0) {
		FUZZ_CHECK(fuzz_is_decode_error(rc));
		FUZZ_CHECK(nl_strerror(rc) != NULL);
		FUZZ_CHECK(fuzz_is_poisoned(&l, sizeof(l)));
		return;
	}
	FUZZ_CHECK(rc == 0);
	FUZZ_CHECK(size >= NL_LIVE_LEN);
	fuzz_decoded_ok++;

	FUZZ_CHECK(l.state < NL_PEN_STATE_COUNT);
	FUZZ_CHECK(nl_pen_state_name((enum nl_pen_state)l.state) != NULL);
	if (l.zone != NL_ZONE_NONE)
		FUZZ_CHECK(nl_zone_name(l.zone) != NULL);
	FUZZ_CHECK(l.depth_set_um <= NL_DEPTH_MAX_UM);
	FUZZ_CHECK(l.depth_measured_um <= NL_DEPTH_MAX_UM ||
		   l.depth_measured_um == NL_DEPTH_UNKNOWN);
	FUZZ_CHECK(l.depth_cap_um <= NL_DEPTH_MAX_UM);
	FUZZ_CHECK(l.speed_hz <= NL_SPEED_MAX_HZ);
	FUZZ_CHECK(l.battery_pct <= NL_BATTERY_MAX_PCT);

	n = nl_live_encode(&l, enc, sizeof(enc));
	FUZZ_CHECK(n == NL_LIVE_LEN);
	fuzz_check_encode_sizes(live_enc, &l, enc, (size_t)n);
	if (size == NL_LIVE_LEN)
		FUZZ_CHECK(fuzz_same_bytes(enc, data, size, clear_reserved, true));
	FUZZ_CHECK(nl_pdu_check_crc(enc, (size_t)n) == 0);

	memset(&l2, FUZZ_POISON, sizeof(l2));
	FUZZ_CHECK(nl_live_decode(enc, (size_t)n, &l2) == 0);
	FUZZ_CHECK(fuzz_live_eq(&l, &l2));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fuzz_run_with_fixed_crc(check_one, data, size);
	return 0;
}
