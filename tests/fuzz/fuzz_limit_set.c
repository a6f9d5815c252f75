/* SPDX-License-Identifier: MIT */
/* Fuzz target: limit set, as carried in SET_LIMITS and Active Limits
 * (nl_limit_set_decode; no CRC of its own). */
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"
#include "needlelink/crc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct nl_limit_set l, l2;
	uint8_t enc[NL_LIMIT_SET_MAX + 8];
	uint32_t hash = 0;
	size_t canon;
	int rc, n;

	memset(&l, FUZZ_POISON, sizeof(l));
	rc = nl_limit_set_decode(data, size, &l);
	if (rc < 0) {
		FUZZ_CHECK(fuzz_is_decode_error(rc));
		FUZZ_CHECK(nl_strerror(rc) != NULL);
		FUZZ_CHECK(fuzz_is_poisoned(&l, sizeof(l)));
		return 0;
	}
	FUZZ_CHECK(rc == 0);
	fuzz_decoded_ok++;

	/* Ranges, order, lookups, hash of the canonical encoding. */
	canon = fuzz_check_limit_set(&l);

	/* The decoder takes exactly one canonical set: same bytes back. */
	FUZZ_CHECK(canon == size);
	n = nl_limit_set_encode(&l, enc, sizeof(enc));
	FUZZ_CHECK(n == (int)size);
	FUZZ_CHECK(memcmp(enc, data, size) == 0);
	FUZZ_CHECK(nl_limit_set_hash(&l, &hash) >= 0);
	FUZZ_CHECK(hash == nl_fnv1a32(data, size));

	memset(&l2, FUZZ_POISON, sizeof(l2));
	FUZZ_CHECK(nl_limit_set_decode(enc, (size_t)n, &l2) == 0);
	FUZZ_CHECK(fuzz_limit_set_eq(&l, &l2));

	/* One byte more is a trailing byte: rejected. */
	if (size < NL_LIMIT_SET_MAX) {
		uint8_t *longer = fuzz_dup(enc, (size_t)n + 1);

		longer[n] = data[0];
		memset(&l2, FUZZ_POISON, sizeof(l2));
		FUZZ_CHECK(nl_limit_set_decode(longer, (size_t)n + 1, &l2) == -ERANGE);
		FUZZ_CHECK(fuzz_is_poisoned(&l2, sizeof(l2)));
		free(longer);
	}
	return 0;
}
