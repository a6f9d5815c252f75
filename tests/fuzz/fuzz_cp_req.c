/* SPDX-License-Identifier: MIT */
/* Fuzz target: Pen Control Point request (nl_cp_req_decode), plus the
 * helpers a pen runs on what it decoded. */
#include <string.h>

#include "fuzz_common.h"

static int cp_req_enc(const void *obj, uint8_t *buf, size_t size)
{
	return nl_cp_req_encode(obj, buf, size);
}

static bool is_result(unsigned r)
{
	return r >= NL_CP_SUCCESS && r < NL_CP_RESULT_END && nl_cp_result_name(r) != NULL;
}

/* Parameter bytes of the v1 layout for a decoded request. */
static size_t param_len(const struct nl_cp_req *r)
{
	switch ((enum nl_cp_op)r->op) {
	case NL_CP_SET_LIMITS:
		return NL_LIMIT_SET_HDR_LEN + 5u * r->u.limits.zone_count;
	case NL_CP_AUTHORISE:
		return 12;
	case NL_CP_STOP_SESSION:
		return 0;
	case NL_CP_SET_ZONE:
	case NL_CP_LOCK:
	case NL_CP_UNLOCK:
	case NL_CP_SET_LIVE_RATE:
		return 1;
	case NL_CP_ACK_RECORDS:
		return 8;
	case NL_CP_SET_TIME:
		return 4;
	case NL_CP_CLAMP:
		return 3;
	case NL_CP_OP_END:
	case NL_CP_RESPONSE:
		break;
	}
	fuzz_fail(__FILE__, __LINE__, "decoded opcode outside enum nl_cp_op");
}

static void check_params(const struct nl_cp_req *r)
{
	switch ((enum nl_cp_op)r->op) {
	case NL_CP_SET_LIMITS:
		fuzz_check_limit_set(&r->u.limits);
		break;
	case NL_CP_AUTHORISE:
		FUZZ_CHECK(r->u.authorise.session_id > 0);
		break;
	case NL_CP_SET_ZONE:
		FUZZ_CHECK(nl_zone_valid(r->u.zone));
		FUZZ_CHECK(nl_zone_name(r->u.zone) != NULL);
		break;
	case NL_CP_LOCK:
	case NL_CP_UNLOCK:
		FUZZ_CHECK(nl_lock_reason_name(r->u.reason) != NULL);
		break;
	case NL_CP_CLAMP:
		FUZZ_CHECK(r->u.clamp.zone == NL_ZONE_NONE || nl_zone_valid(r->u.clamp.zone));
		FUZZ_CHECK(r->u.clamp.cap_um >= 1 && r->u.clamp.cap_um <= NL_DEPTH_MAX_UM);
		break;
	case NL_CP_SET_LIVE_RATE:
		FUZZ_CHECK(r->u.live_rate_hz >= NL_LIVE_RATE_MIN_HZ &&
			   r->u.live_rate_hz <= NL_LIVE_RATE_MAX_HZ);
		break;
	case NL_CP_STOP_SESSION:
	case NL_CP_ACK_RECORDS:
	case NL_CP_SET_TIME:
		break;
	case NL_CP_OP_END:
	case NL_CP_RESPONSE:
		fuzz_fail(__FILE__, __LINE__, "decoded opcode outside enum nl_cp_op");
	}
}

static void check_one(const uint8_t *data, size_t size)
{
	struct nl_cp_req r, r2;
	struct nl_cp_client client;
	struct nl_cp_rsp rsp;
	uint8_t enc[1 + NL_LIMIT_SET_MAX + 2 + 8];
	size_t v1_len;
	int rc, n;

	memset(&r, FUZZ_POISON, sizeof(r));
	rc = nl_cp_req_decode(data, size, &r);
	if (rc < 0) {
		FUZZ_CHECK(fuzz_is_decode_error(rc));
		FUZZ_CHECK(nl_strerror(rc) != NULL);
		FUZZ_CHECK(fuzz_is_poisoned(&r, sizeof(r)));
		/* The pen answers every undecodable request with a result. */
		FUZZ_CHECK(is_result(nl_cp_result_for_error(rc)));
		return;
	}
	FUZZ_CHECK(rc == 0);
	fuzz_decoded_ok++;

	FUZZ_CHECK(r.op >= NL_CP_SET_LIMITS && r.op < NL_CP_OP_END);
	FUZZ_CHECK(nl_cp_op_name(r.op) != NULL);
	check_params(&r);

	/* Every state gives a result code with a name and an action. */
	for (unsigned st = 0; st < NL_PEN_STATE_COUNT; st++) {
		enum nl_cp_result res = nl_cp_allowed((enum nl_pen_state)st, r.op);

		FUZZ_CHECK(res == NL_CP_SUCCESS || res == NL_CP_INVALID_STATE ||
			   res == NL_CP_LOCKED || res == NL_CP_OP_NOT_SUPPORTED);
		FUZZ_CHECK(nl_cp_result_name(res) != NULL);
		FUZZ_CHECK((unsigned)nl_cp_action_for(res) <= NL_CP_ACTION_GIVE_UP);
	}
	FUZZ_CHECK(nl_cp_action_for(NL_CP_SUCCESS) == NL_CP_ACTION_DONE);

	/* The client matcher: one outstanding request, matched by opcode. */
	nl_cp_client_reset(&client);
	FUZZ_CHECK(nl_cp_client_begin(&client, r.op) == 0);
	FUZZ_CHECK(nl_cp_client_begin(&client, r.op) == -EBUSY);
	rsp.req_op = r.op;
	rsp.result = NL_CP_SUCCESS;
	rsp.value = 0;
	FUZZ_CHECK(nl_cp_client_complete(&client, &rsp) == 0);
	FUZZ_CHECK(nl_cp_client_complete(&client, &rsp) == -EPROTO);
	FUZZ_CHECK(nl_cp_client_begin(&client, r.op) == 0);
	rsp.req_op = (uint8_t)(r.op == NL_CP_SET_LIMITS ? NL_CP_AUTHORISE : NL_CP_SET_LIMITS);
	FUZZ_CHECK(nl_cp_client_complete(&client, &rsp) == -EPROTO);

	v1_len = 1 + param_len(&r) + 2;
	FUZZ_CHECK(size >= v1_len);
	n = nl_cp_req_encode(&r, enc, sizeof(enc));
	FUZZ_CHECK(n == (int)v1_len);
	fuzz_check_encode_sizes(cp_req_enc, &r, enc, (size_t)n);
	if (size == v1_len)
		FUZZ_CHECK(memcmp(enc, data, size) == 0);
	FUZZ_CHECK(nl_pdu_check_crc(enc, (size_t)n) == 0);

	memset(&r2, FUZZ_POISON, sizeof(r2));
	FUZZ_CHECK(nl_cp_req_decode(enc, (size_t)n, &r2) == 0);
	FUZZ_CHECK(fuzz_cp_req_eq(&r, &r2));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fuzz_run_with_fixed_crc(check_one, data, size);
	return 0;
}
