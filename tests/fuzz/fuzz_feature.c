/* SPDX-License-Identifier: MIT */
/* Fuzz target: Feature characteristic value (nl_feature_decode). */
#include <string.h>

#include "fuzz_common.h"

static int feature_enc(const void *obj, uint8_t *buf, size_t size)
{
	return nl_feature_encode(obj, buf, size);
}

/* The decoder drops flag bits outside NL_FEAT_ALL (forward compatible). */
static void clear_reserved(uint8_t *buf, size_t len)
{
	buf[2] &= (uint8_t)NL_FEAT_ALL;
	buf[3] &= (uint8_t)(NL_FEAT_ALL >> 8);
}

static void check_one(const uint8_t *data, size_t size)
{
	struct nl_feature f, f2;
	uint8_t enc[NL_FEATURE_LEN + 8];
	int rc, n;

	memset(&f, FUZZ_POISON, sizeof(f));
	rc = nl_feature_decode(data, size, &f);
	if (rc < 0) {
		FUZZ_CHECK(fuzz_is_decode_error(rc));
		FUZZ_CHECK(nl_strerror(rc) != NULL);
		FUZZ_CHECK(fuzz_is_poisoned(&f, sizeof(f)));
		return;
	}
	FUZZ_CHECK(rc == 0);
	FUZZ_CHECK(size >= NL_FEATURE_LEN);
	fuzz_decoded_ok++;

	/* Ranges the decoder is documented to enforce (pdu.h). */
	FUZZ_CHECK(f.depth_max_um >= 1 && f.depth_max_um <= NL_DEPTH_MAX_UM);
	FUZZ_CHECK(f.depth_min_um <= f.depth_max_um);
	FUZZ_CHECK(f.depth_step_um >= 1 && f.depth_step_um <= f.depth_max_um);
	FUZZ_CHECK(f.speed_max_hz >= 1 && f.speed_max_hz <= NL_SPEED_MAX_HZ);
	FUZZ_CHECK(f.speed_min_hz <= f.speed_max_hz);
	FUZZ_CHECK(f.store_capacity >= 1);
	FUZZ_CHECK(f.live_rate_hz >= NL_LIVE_RATE_MIN_HZ && f.live_rate_hz <= NL_LIVE_RATE_MAX_HZ);

	n = nl_feature_encode(&f, enc, sizeof(enc));
	FUZZ_CHECK(n == NL_FEATURE_LEN);
	fuzz_check_encode_sizes(feature_enc, &f, enc, (size_t)n);
	if (size == NL_FEATURE_LEN)
		FUZZ_CHECK(fuzz_same_bytes(enc, data, size, clear_reserved, true));
	FUZZ_CHECK(nl_pdu_check_crc(enc, (size_t)n) == 0);

	memset(&f2, FUZZ_POISON, sizeof(f2));
	FUZZ_CHECK(nl_feature_decode(enc, (size_t)n, &f2) == 0);
	FUZZ_CHECK(fuzz_feature_eq(&f, &f2));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fuzz_run_with_fixed_crc(check_one, data, size);
	return 0;
}
