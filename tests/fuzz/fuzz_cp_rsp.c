/* SPDX-License-Identifier: MIT */
/* Fuzz target: Pen Control Point response indication (nl_cp_rsp_decode). */
#include <string.h>

#include "fuzz_common.h"

/* u8 0x80, u8 request opcode, u8 result, u32 value, CRC. */
#define CP_RSP_LEN 9

static int cp_rsp_enc(const void *obj, uint8_t *buf, size_t size)
{
	return nl_cp_rsp_encode(obj, buf, size);
}

static void check_one(const uint8_t *data, size_t size)
{
	struct nl_cp_rsp r, r2;
	struct nl_cp_client client;
	uint8_t enc[CP_RSP_LEN + 8];
	enum nl_cp_action act;
	int rc, n;

	memset(&r, FUZZ_POISON, sizeof(r));
	rc = nl_cp_rsp_decode(data, size, &r);
	if (rc < 0) {
		FUZZ_CHECK(fuzz_is_decode_error(rc));
		FUZZ_CHECK(nl_strerror(rc) != NULL);
		FUZZ_CHECK(fuzz_is_poisoned(&r, sizeof(r)));
		return;
	}
	FUZZ_CHECK(rc == 0);
	FUZZ_CHECK(size >= CP_RSP_LEN);
	FUZZ_CHECK(data[0] == NL_CP_RESPONSE);
	fuzz_decoded_ok++;

	/* A pen echoes an opcode it does not know with OP_NOT_SUPPORTED (or
	 * INVALID_PARAMETER for a bad CRC), so only then may it lack a name. */
	FUZZ_CHECK(nl_cp_op_name(r.req_op) != NULL || r.result == NL_CP_OP_NOT_SUPPORTED ||
		   r.result == NL_CP_INVALID_PARAMETER);
	FUZZ_CHECK(nl_cp_result_name(r.result) != NULL);
	act = nl_cp_action_for((enum nl_cp_result)r.result);
	FUZZ_CHECK((unsigned)act <= NL_CP_ACTION_GIVE_UP);
	FUZZ_CHECK((act == NL_CP_ACTION_DONE) == (r.result == NL_CP_SUCCESS));

	/* A response completes the request it names, and only that one. */
	nl_cp_client_reset(&client);
	FUZZ_CHECK(nl_cp_client_complete(&client, &r) == -EPROTO);
	FUZZ_CHECK(nl_cp_client_begin(&client, r.req_op) == 0);
	FUZZ_CHECK(nl_cp_client_complete(&client, &r) == 0);
	FUZZ_CHECK(!client.pending);

	n = nl_cp_rsp_encode(&r, enc, sizeof(enc));
	FUZZ_CHECK(n == CP_RSP_LEN);
	fuzz_check_encode_sizes(cp_rsp_enc, &r, enc, (size_t)n);
	if (size == CP_RSP_LEN)
		FUZZ_CHECK(memcmp(enc, data, size) == 0);
	FUZZ_CHECK(nl_pdu_check_crc(enc, (size_t)n) == 0);

	memset(&r2, FUZZ_POISON, sizeof(r2));
	FUZZ_CHECK(nl_cp_rsp_decode(enc, (size_t)n, &r2) == 0);
	FUZZ_CHECK(fuzz_cp_rsp_eq(&r, &r2));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fuzz_run_with_fixed_crc(check_one, data, size);
	return 0;
}
