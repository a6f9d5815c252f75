/* SPDX-License-Identifier: MIT */
/* Fuzz target: RACP response indications (nl_racp_rsp_decode). */
#include <string.h>

#include "fuzz_common.h"

#define RACP_NUMBER_LEN 8 /* 05 00 u32 count CRC */
#define RACP_CODE_LEN 6   /* 06 00 req_op code CRC */

static int racp_rsp_enc(const void *obj, uint8_t *buf, size_t size)
{
	return nl_racp_rsp_encode(obj, buf, size);
}

static void check_one(const uint8_t *data, size_t size)
{
	struct nl_racp_rsp r, r2;
	uint8_t enc[RACP_NUMBER_LEN + 8];
	size_t v1_len;
	int rc, n;

	memset(&r, FUZZ_POISON, sizeof(r));
	rc = nl_racp_rsp_decode(data, size, &r);
	if (rc < 0) {
		FUZZ_CHECK(fuzz_is_decode_error(rc));
		FUZZ_CHECK(nl_strerror(rc) != NULL);
		FUZZ_CHECK(fuzz_is_poisoned(&r, sizeof(r)));
		return;
	}
	FUZZ_CHECK(rc == 0);
	fuzz_decoded_ok++;

	FUZZ_CHECK(r.op == NL_RACP_NUMBER_RESPONSE || r.op == NL_RACP_RESPONSE_CODE);
	FUZZ_CHECK(nl_racp_op_name(r.op) != NULL);
	if (r.op == NL_RACP_RESPONSE_CODE) {
		/* An unknown request opcode is echoed with OP_NOT_SUPPORTED;
		 * any other code names a known request. */
		FUZZ_CHECK(nl_racp_op_name(r.req_op) != NULL ||
			   r.code == NL_RACP_OP_NOT_SUPPORTED ||
			   r.code == NL_RACP_INVALID_OPERAND);
		FUZZ_CHECK(nl_racp_code_name(r.code) != NULL);
		v1_len = RACP_CODE_LEN;
	} else {
		v1_len = RACP_NUMBER_LEN;
	}
	FUZZ_CHECK(size >= v1_len);

	n = nl_racp_rsp_encode(&r, enc, sizeof(enc));
	FUZZ_CHECK(n == (int)v1_len);
	fuzz_check_encode_sizes(racp_rsp_enc, &r, enc, (size_t)n);
	if (size == v1_len)
		FUZZ_CHECK(memcmp(enc, data, size) == 0);
	FUZZ_CHECK(nl_pdu_check_crc(enc, (size_t)n) == 0);

	memset(&r2, FUZZ_POISON, sizeof(r2));
	FUZZ_CHECK(nl_racp_rsp_decode(enc, (size_t)n, &r2) == 0);
	FUZZ_CHECK(fuzz_racp_rsp_eq(&r, &r2));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fuzz_run_with_fixed_crc(check_one, data, size);
	return 0;
}
