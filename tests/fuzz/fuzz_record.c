/* SPDX-License-Identifier: MIT */
/* Fuzz target: one whole reassembled treatment record (nl_record_decode). */
#include "fuzz_common.h"

static void check_one(const uint8_t *data, size_t size)
{
	/* Inputs longer than NL_RECORD_MAX are fed too: the decoder must not
	 * rely on the reassembler's bound. */
	fuzz_check_record(data, size);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fuzz_run_with_fixed_crc(check_one, data, size);
	return 0;
}
