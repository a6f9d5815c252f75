/* SPDX-License-Identifier: MIT */
/* Fuzz target: Active Limits value (nl_active_limits_decode). */
#include <string.h>

#include "fuzz_common.h"
#include "needlelink/crc.h"

/* Offset of the limit set inside an Active Limits value. */
#define ACTIVE_SET_OFF 9

static int active_enc(const void *obj, uint8_t *buf, size_t size)
{
	return nl_active_limits_encode(obj, buf, size);
}

static void check_one(const uint8_t *data, size_t size)
{
	struct nl_active_limits a, a2;
	uint8_t enc[ACTIVE_SET_OFF + NL_LIMIT_SET_MAX + 2 + 8];
	uint32_t hash = 0;
	size_t set_len, v1_len;
	int rc, n;

	memset(&a, FUZZ_POISON, sizeof(a));
	rc = nl_active_limits_decode(data, size, &a);
	if (rc < 0) {
		FUZZ_CHECK(fuzz_is_decode_error(rc));
		FUZZ_CHECK(nl_strerror(rc) != NULL);
		FUZZ_CHECK(fuzz_is_poisoned(&a, sizeof(a)));
		return;
	}
	FUZZ_CHECK(rc == 0);
	fuzz_decoded_ok++;

	FUZZ_CHECK(a.source < NL_LIMIT_SOURCE_COUNT);
	set_len = fuzz_check_limit_set(&a.set);
	v1_len = ACTIVE_SET_OFF + set_len + 2;
	FUZZ_CHECK(size >= v1_len);

	/* The decoder verified the hash: it is the set's and the wire's. */
	FUZZ_CHECK(nl_limit_set_hash(&a.set, &hash) >= 0);
	FUZZ_CHECK(hash == a.limits_hash);
	FUZZ_CHECK(nl_fnv1a32(data + ACTIVE_SET_OFF, set_len) == a.limits_hash);

	n = nl_active_limits_encode(&a, enc, sizeof(enc));
	FUZZ_CHECK(n == (int)v1_len);
	fuzz_check_encode_sizes(active_enc, &a, enc, (size_t)n);
	if (size == v1_len)
		FUZZ_CHECK(memcmp(enc, data, size) == 0);
	FUZZ_CHECK(nl_pdu_check_crc(enc, (size_t)n) == 0);

	memset(&a2, FUZZ_POISON, sizeof(a2));
	FUZZ_CHECK(nl_active_limits_decode(enc, (size_t)n, &a2) == 0);
	FUZZ_CHECK(fuzz_active_limits_eq(&a, &a2));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fuzz_run_with_fixed_crc(check_one, data, size);
	return 0;
}
