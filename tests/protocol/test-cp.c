/* SPDX-License-Identifier: MIT */
/*
 * Pen Control Point: golden requests for every opcode, the response, the
 * state table, result mapping and the client matcher.
 *
 * Byte arrays written by hand from cp.h and pdu.h; CRC bytes (and the
 * limit-set hash 0x39B89420) computed separately with an independent
 * Python CRC-16/MCRF4XX / FNV-1a, see test-pdu.c.
 */
#include "check.h"
#include "needlelink/cp.h"
#include "needlelink/record.h"

#define LEN(a) (sizeof(a) / sizeof((a)[0]))

static int dec_req(const uint8_t *b, size_t n, void *o) { return nl_cp_req_decode(b, n, o); }
static int enc_req(const void *i, uint8_t *b, size_t n) { return nl_cp_req_encode(i, b, n); }
static int dec_rsp(const uint8_t *b, size_t n, void *o) { return nl_cp_rsp_decode(b, n, o); }
static int enc_rsp(const void *i, uint8_t *b, size_t n) { return nl_cp_rsp_encode(i, b, n); }

static const uint8_t gold_set_limits[] = {
	0x01,
	0x01, 0x00, 0x10, 0x0E, 0x00, 0x00, 0xE8, 0x03, 0xDC, 0x05, 0x60, 0x09, 0x03, 0x05,
	0x02, 0x03, 0xF4, 0x01, 0x02, 0x03, 0x05, 0xDC, 0x05, 0x03, 0x05,
	0xD4, 0x17, /* CRC 0x17D4 */
};
static const uint8_t gold_authorise[] = {
	0x02, 0x2A, 0x00, 0x00, 0x00, /* session 42 */
	0x20, 0x94, 0xB8, 0x39,       /* hash 0x39B89420 */
	0x10, 0x0E, 0x00, 0x00,       /* lifetime 3600 */
	0xDE, 0x47,                   /* CRC 0x47DE */
};
static const uint8_t gold_stop[] = { 0x03, 0x1C, 0x3D };
static const uint8_t gold_set_zone[] = { 0x04, 0x05, 0x75, 0xC0 };
static const uint8_t gold_lock[] = { 0x05, 0x01, 0x89, 0x9F };   /* reason POLICY */
static const uint8_t gold_unlock[] = { 0x06, 0x05, 0xC5, 0xF3 }; /* reason OPERATOR */
static const uint8_t gold_ack[] = {
	0x07, 0x78, 0x56, 0x34, 0x12, /* epoch */
	0x05, 0x01, 0x00, 0x00,       /* seq 261 */
	0x02, 0x69,                   /* CRC 0x6902 */
};
static const uint8_t gold_set_time[] = { 0x08, 0x00, 0x1C, 0x8A, 0x2E, 0x5E, 0xF3 };
static const uint8_t gold_clamp[] = { 0x09, 0x03, 0xF4, 0x01, 0xC7, 0x1F }; /* periorbital 500 */
static const uint8_t gold_live_rate[] = { 0x0A, 0x0A, 0x92, 0xA2 };
static const uint8_t gold_rsp[] = {
	0x80, 0x02, 0x01,             /* AUTHORISE: SUCCESS */
	0x2A, 0x00, 0x00, 0x00,       /* value: session 42 */
	0x7D, 0xA5,                   /* CRC 0xA57D */
};

static const struct nl_limit_set lset_ref = {
	.format = 1, .lifetime_s = 3600, .depth_cap_um = 1000, .needle_on_warn_s = 1500,
	.needle_on_lock_s = 2400, .pass_warn = 3, .pass_lock = 5, .zone_count = 2,
	.zones = { { NL_ZONE_PERIORBITAL, 500, 2, 3 }, { NL_ZONE_CHEEKS, 1500, 3, 5 } },
};

struct req_case {
	const char *name;
	const uint8_t *gold;
	size_t len;
	struct nl_cp_req ref;
};

static void test_requests(void)
{
	struct req_case cases[10];
	unsigned k = 0;

#define CASE(nm, g, ...)                                                             \
	do {                                                                         \
		memset(&cases[k].ref, 0, sizeof(cases[k].ref));                      \
		cases[k].name = nm;                                                  \
		cases[k].gold = g;                                                   \
		cases[k].len = LEN(g);                                               \
		__VA_ARGS__;                                                         \
		k++;                                                                 \
	} while (0)
	CASE("set_limits", gold_set_limits, cases[k].ref.op = NL_CP_SET_LIMITS,
	     cases[k].ref.u.limits = lset_ref);
	CASE("authorise", gold_authorise, cases[k].ref.op = NL_CP_AUTHORISE,
	     cases[k].ref.u.authorise.session_id = 42,
	     cases[k].ref.u.authorise.limits_hash = 0x39B89420,
	     cases[k].ref.u.authorise.lifetime_s = 3600);
	CASE("stop_session", gold_stop, cases[k].ref.op = NL_CP_STOP_SESSION);
	CASE("set_zone", gold_set_zone, cases[k].ref.op = NL_CP_SET_ZONE,
	     cases[k].ref.u.zone = NL_ZONE_CHEEKS);
	CASE("lock", gold_lock, cases[k].ref.op = NL_CP_LOCK,
	     cases[k].ref.u.reason = NL_LOCK_REASON_POLICY);
	CASE("unlock", gold_unlock, cases[k].ref.op = NL_CP_UNLOCK,
	     cases[k].ref.u.reason = NL_LOCK_REASON_OPERATOR);
	CASE("ack_records", gold_ack, cases[k].ref.op = NL_CP_ACK_RECORDS,
	     cases[k].ref.u.ack.store_epoch = 0x12345678, cases[k].ref.u.ack.seq = 261);
	CASE("set_time", gold_set_time, cases[k].ref.op = NL_CP_SET_TIME,
	     cases[k].ref.u.pen_time = 0x2E8A1C00);
	CASE("clamp", gold_clamp, cases[k].ref.op = NL_CP_CLAMP,
	     cases[k].ref.u.clamp.zone = NL_ZONE_PERIORBITAL, cases[k].ref.u.clamp.cap_um = 500);
	CASE("set_live_rate", gold_live_rate, cases[k].ref.op = NL_CP_SET_LIVE_RATE,
	     cases[k].ref.u.live_rate_hz = 10);
#undef CASE
	CHECK_INT(k, NL_CP_OP_END - 1); /* every opcode has a vector */

	for (unsigned i = 0; i < k; i++) {
		struct nl_cp_req r;
		uint8_t buf[NL_PDU_MAX];

		CHECK_INT(cases[i].gold[0], i + 1);
		CHECK_INT(nl_cp_req_encode(&cases[i].ref, buf, sizeof(buf)), (int)cases[i].len);
		CHECK_MEM(buf, cases[i].len, cases[i].gold, cases[i].len);
		memset(&r, 0, sizeof(r));
		CHECK_INT(nl_cp_req_decode(cases[i].gold, cases[i].len, &r), 0);
		CHECK_INT(r.op, i + 1);
		/* Requests are exact length: trailing bytes are -ERANGE. */
		check_malformed(cases[i].name, cases[i].gold, cases[i].len, dec_req, enc_req,
				CHECK_HAS_CRC);
		CHECK_STR(nl_cp_op_name(i + 1), cases[i].name);
	}

	/* Decoded fields, one opcode at a time. */
	{
		struct nl_cp_req r;

		CHECK_INT(nl_cp_req_decode(gold_set_limits, LEN(gold_set_limits), &r), 0);
		CHECK_INT(r.u.limits.lifetime_s, 3600);
		CHECK_INT(r.u.limits.zone_count, 2);
		CHECK_INT(r.u.limits.zones[0].zone, NL_ZONE_PERIORBITAL);
		CHECK_INT(r.u.limits.zones[1].pass_lock, 5);
		CHECK_INT(nl_cp_req_decode(gold_authorise, LEN(gold_authorise), &r), 0);
		CHECK_INT(r.u.authorise.session_id, 42);
		CHECK_INT(r.u.authorise.limits_hash, 0x39B89420);
		CHECK_INT(r.u.authorise.lifetime_s, 3600);
		CHECK_INT(nl_cp_req_decode(gold_set_zone, LEN(gold_set_zone), &r), 0);
		CHECK_INT(r.u.zone, NL_ZONE_CHEEKS);
		CHECK_INT(nl_cp_req_decode(gold_lock, LEN(gold_lock), &r), 0);
		CHECK_INT(r.u.reason, NL_LOCK_REASON_POLICY);
		CHECK_INT(nl_cp_req_decode(gold_unlock, LEN(gold_unlock), &r), 0);
		CHECK_INT(r.u.reason, NL_LOCK_REASON_OPERATOR);
		CHECK_INT(nl_cp_req_decode(gold_ack, LEN(gold_ack), &r), 0);
		CHECK_INT(r.u.ack.store_epoch, 0x12345678);
		CHECK_INT(r.u.ack.seq, 261);
		CHECK_INT(nl_cp_req_decode(gold_set_time, LEN(gold_set_time), &r), 0);
		CHECK_INT(r.u.pen_time, 0x2E8A1C00);
		CHECK_INT(nl_cp_req_decode(gold_clamp, LEN(gold_clamp), &r), 0);
		CHECK_INT(r.u.clamp.zone, NL_ZONE_PERIORBITAL);
		CHECK_INT(r.u.clamp.cap_um, 500);
		CHECK_INT(nl_cp_req_decode(gold_live_rate, LEN(gold_live_rate), &r), 0);
		CHECK_INT(r.u.live_rate_hz, 10);
	}

	/* Unknown opcodes: 0, 0x0B.., the response code, 0xFF. */
	{
		const unsigned bad_ops[] = { 0x00, 0x0B, 0x7F, 0x80, 0xFF };

		for (unsigned i = 0; i < LEN(bad_ops); i++) {
			CHECK_INT(check_decode_patched(gold_stop, 3, 0, bad_ops[i], 1, dec_req, true), -ENOMSG);
			struct nl_cp_req x = { .op = (uint8_t)bad_ops[i] };
			uint8_t b[16];

			CHECK_INT(nl_cp_req_encode(&x, b, sizeof(b)), -ENOMSG);
		}
	}

	/* One out-of-range case per parameter, on the wire. */
	CHECK_INT(check_decode_patched(gold_set_limits, LEN(gold_set_limits), 1, 2, 1, dec_req, true), -ERANGE);
	CHECK_INT(check_decode_patched(gold_set_limits, LEN(gold_set_limits), 16, 0, 1, dec_req, true), -ERANGE);
	CHECK_INT(check_decode_patched(gold_authorise, LEN(gold_authorise), 1, 0, 4, dec_req, true), -ERANGE);
	CHECK_INT(check_decode_patched(gold_authorise, LEN(gold_authorise), 9, 0, 4, dec_req, true), -ERANGE);
	CHECK_INT(check_decode_patched(gold_authorise, LEN(gold_authorise), 9, 86401, 4, dec_req, true), -ERANGE);
	CHECK_INT(check_decode_patched(gold_set_zone, LEN(gold_set_zone), 1, 0, 1, dec_req, true), -ERANGE);
	CHECK_INT(check_decode_patched(gold_set_zone, LEN(gold_set_zone), 1, 16, 1, dec_req, true), -ERANGE);
	CHECK_INT(check_decode_patched(gold_lock, LEN(gold_lock), 1, 7, 1, dec_req, true), -ERANGE);
	CHECK_INT(check_decode_patched(gold_unlock, LEN(gold_unlock), 1, 7, 1, dec_req, true), -ERANGE);
	CHECK_INT(check_decode_patched(gold_clamp, LEN(gold_clamp), 1, 16, 1, dec_req, true), -ERANGE);
	CHECK_INT(check_decode_patched(gold_clamp, LEN(gold_clamp), 2, 0, 2, dec_req, true), -ERANGE);
	CHECK_INT(check_decode_patched(gold_clamp, LEN(gold_clamp), 2, 3001, 2, dec_req, true), -ERANGE);
	CHECK_INT(check_decode_patched(gold_clamp, LEN(gold_clamp), 1, 0, 1, dec_req, true), 0); /* every zone */
	CHECK_INT(check_decode_patched(gold_live_rate, LEN(gold_live_rate), 1, 0, 1, dec_req, true), -ERANGE);
	CHECK_INT(check_decode_patched(gold_live_rate, LEN(gold_live_rate), 1, 21, 1, dec_req, true), -ERANGE);

	/* Edges through encode and decode. */
	{
		struct nl_cp_req x, y;
		uint8_t b[NL_PDU_MAX];
		int n;

#define RT(expect_ok)                                                                \
	do {                                                                         \
		n = nl_cp_req_encode(&x, b, sizeof(b));                              \
		if (expect_ok) {                                                     \
			CHECK(n > 0);                                                \
			CHECK_INT(n > 0 ? nl_cp_req_decode(b, (size_t)n, &y) : n, 0); \
		} else {                                                             \
			CHECK_INT(n, -ERANGE);                                       \
		}                                                                    \
	} while (0)
		memset(&x, 0, sizeof(x));
		x.op = NL_CP_AUTHORISE;
		x.u.authorise.session_id = 1;
		x.u.authorise.lifetime_s = 1;
		RT(1);
		CHECK_INT(y.u.authorise.session_id, 1);
		x.u.authorise.session_id = 0xFFFFFFFFu;
		x.u.authorise.lifetime_s = 86400;
		RT(1);
		CHECK_INT(y.u.authorise.lifetime_s, 86400);
		x.u.authorise.lifetime_s = 86401;
		RT(0);
		x.u.authorise.lifetime_s = 0;
		RT(0);
		x.u.authorise.lifetime_s = 60;
		x.u.authorise.session_id = 0;
		RT(0);

		memset(&x, 0, sizeof(x));
		x.op = NL_CP_SET_ZONE;
		x.u.zone = 1;
		RT(1);
		x.u.zone = NL_ZONE_COUNT - 1;
		RT(1);
		CHECK_INT(y.u.zone, NL_ZONE_UPPER_LIP);
		x.u.zone = NL_ZONE_COUNT;
		RT(0);
		x.u.zone = 0;
		RT(0);

		x.op = NL_CP_LOCK;
		x.u.reason = NL_LOCK_REASON_FAULT;
		RT(1);
		x.u.reason = NL_LOCK_REASON_END;
		RT(0);
		x.op = NL_CP_UNLOCK;
		RT(0);
		x.u.reason = NL_LOCK_REASON_NONE;
		RT(1);

		memset(&x, 0, sizeof(x));
		x.op = NL_CP_CLAMP;
		x.u.clamp.zone = NL_ZONE_UPPER_LIP;
		x.u.clamp.cap_um = 1;
		RT(1);
		x.u.clamp.cap_um = 3000;
		RT(1);
		CHECK_INT(y.u.clamp.cap_um, 3000);
		x.u.clamp.cap_um = 3001;
		RT(0);
		x.u.clamp.cap_um = 0;
		RT(0);
		x.u.clamp.cap_um = 100;
		x.u.clamp.zone = NL_ZONE_COUNT;
		RT(0);

		memset(&x, 0, sizeof(x));
		x.op = NL_CP_SET_LIVE_RATE;
		x.u.live_rate_hz = 1;
		RT(1);
		x.u.live_rate_hz = 20;
		RT(1);
		CHECK_INT(y.u.live_rate_hz, 20);
		x.u.live_rate_hz = 21;
		RT(0);
		x.u.live_rate_hz = 0;
		RT(0);

		memset(&x, 0, sizeof(x));
		x.op = NL_CP_SET_LIMITS;
		x.u.limits = lset_ref;
		x.u.limits.zones[1].zone = 2; /* unsorted */
		RT(0);
		x.u.limits = lset_ref;
		x.u.limits.lifetime_s = 86401;
		RT(0);
#undef RT
	}
}

static void test_response(void)
{
	struct nl_cp_rsp r, ref = { .req_op = NL_CP_AUTHORISE, .result = NL_CP_SUCCESS, .value = 42 };
	uint8_t buf[32];
	const uint8_t *g = gold_rsp;
	size_t n = LEN(gold_rsp);

	CHECK_INT(nl_cp_rsp_decode(g, n, &r), 0);
	CHECK_INT(r.req_op, NL_CP_AUTHORISE);
	CHECK_INT(r.result, NL_CP_SUCCESS);
	CHECK_INT(r.value, 42);
	CHECK_INT(nl_cp_rsp_encode(&ref, buf, sizeof(buf)), (int)n);
	CHECK_MEM(buf, n, g, n);
	check_malformed("cp_rsp", g, n, dec_rsp, enc_rsp, CHECK_HAS_CRC | CHECK_EXTENSIBLE);

	CHECK_INT(check_decode_patched(g, n, 0, 0x02, 1, dec_rsp, true), -ENOMSG); /* not 0x80 */
	CHECK_INT(check_decode_patched(g, n, 0, 0x81, 1, dec_rsp, true), -ENOMSG);
	/* An opcode outside the table with any result but OP_NOT_SUPPORTED
	 * or INVALID_PARAMETER (bad CRC) names no request: out of range. */
	CHECK_INT(check_decode_patched(g, n, 1, 0x0B, 1, dec_rsp, true), -ERANGE);
	CHECK_INT(check_decode_patched(g, n, 1, 0x00, 1, dec_rsp, true), -ERANGE);
	/* op 0x00, INVALID_PARAMETER, value 0: a bad-CRC write echoed. */
	CHECK_INT(check_decode_patched(g, n, 1, 0x00000300, 4, dec_rsp, true), 0);
	CHECK_INT(check_decode_patched(g, n, 2, 0x00, 1, dec_rsp, true), -ERANGE); /* result */
	CHECK_INT(check_decode_patched(g, n, 2, 0x0C, 1, dec_rsp, true), -ERANGE);
	/* An unknown opcode is echoed with OP_NOT_SUPPORTED. */
	/* op 0xFF, OP_NOT_SUPPORTED, value 0 */
	CHECK_INT(check_decode_patched(g, n, 1, 0x000002FF, 4, dec_rsp, true), 0);
	/* A value on anything but SUCCESS is out of range. */
	CHECK_INT(check_decode_patched(g, n, 2, NL_CP_FAILED, 1, dec_rsp, true), -ERANGE);
	{
		struct nl_cp_rsp x = { .req_op = NL_CP_AUTHORISE, .result = NL_CP_HASH_MISMATCH, .value = 1 };

		CHECK_INT(nl_cp_rsp_encode(&x, buf, sizeof(buf)), -ERANGE);
		x.value = 0;
		CHECK_INT(nl_cp_rsp_encode(&x, buf, sizeof(buf)), 9);
		CHECK_INT(nl_cp_rsp_decode(buf, 9, &r), 0);
		CHECK_INT(r.result, NL_CP_HASH_MISMATCH);
	}
	{
		struct nl_cp_rsp x = { .req_op = 0x42, .result = NL_CP_OP_NOT_SUPPORTED }, y;
		int k = nl_cp_rsp_encode(&x, buf, sizeof(buf));

		CHECK_INT(k, 9);
		CHECK_INT(nl_cp_rsp_decode(buf, (size_t)k, &y), 0);
		CHECK_INT(y.req_op, 0x42);
		x.result = NL_CP_INVALID_PARAMETER;
		CHECK_INT(nl_cp_rsp_encode(&x, buf, sizeof(buf)), 9);
		x.value = 1;
		CHECK_INT(nl_cp_rsp_encode(&x, buf, sizeof(buf)), -ERANGE);
		x.value = 0;
		x.req_op = NL_CP_SET_LIVE_RATE;
		x.result = NL_CP_NO_CARTRIDGE;
		CHECK_INT(nl_cp_rsp_encode(&x, buf, sizeof(buf)), 9);
		x.result = NL_CP_RESULT_END;
		CHECK_INT(nl_cp_rsp_encode(&x, buf, sizeof(buf)), -ERANGE);
		x.result = 0;
		CHECK_INT(nl_cp_rsp_encode(&x, buf, sizeof(buf)), -ERANGE);
	}
}

/* The state table of docs/protocol.md 8.5, written out independently of cp.c:
 * S success, I invalid state, L locked. Columns: opcodes 1..10. */
static const char allowed_table[NL_PEN_STATE_COUNT][NL_CP_OP_END] = {
	/*                      -  LIM AUT STP ZON LCK UNL ACK TIM CLP RAT */
	[NL_PEN_STATE_OFF] =     { 0, 'I','I','I','I','I','I','I','I','I','I' },
	[NL_PEN_STATE_IDLE] =    { 0, 'S','S','I','S','S','I','S','S','I','S' },
	[NL_PEN_STATE_ARMED] =   { 0, 'I','I','S','S','S','S','S','S','S','S' },
	[NL_PEN_STATE_RUNNING] = { 0, 'I','I','S','I','S','I','S','S','S','S' },
	[NL_PEN_STATE_PAUSED] =  { 0, 'I','I','S','S','S','S','S','S','S','S' },
	[NL_PEN_STATE_LOCKED] =  { 0, 'L','L','S','L','S','S','S','S','S','S' },
	[NL_PEN_STATE_FAULT] =   { 0, 'I','I','S','I','S','I','S','S','I','S' },
};

static void test_allowed(void)
{
	unsigned bad = 0;

	for (unsigned s = 0; s < NL_PEN_STATE_COUNT; s++) {
		for (unsigned op = 1; op < NL_CP_OP_END; op++) {
			enum nl_cp_result want = NL_CP_SUCCESS;
			enum nl_cp_result got = nl_cp_allowed((enum nl_pen_state)s, op);

			if (allowed_table[s][op] == 'I')
				want = NL_CP_INVALID_STATE;
			else if (allowed_table[s][op] == 'L')
				want = NL_CP_LOCKED;
			if (got != want) {
				fprintf(stderr, "allowed(%s, %s) = %s, want %s\n",
					nl_pen_state_name((enum nl_pen_state)s), nl_cp_op_name(op),
					nl_cp_result_name(got), nl_cp_result_name(want));
				bad++;
			}
		}
		CHECK_INT(nl_cp_allowed((enum nl_pen_state)s, 0), NL_CP_OP_NOT_SUPPORTED);
		CHECK_INT(nl_cp_allowed((enum nl_pen_state)s, NL_CP_OP_END), NL_CP_OP_NOT_SUPPORTED);
		CHECK_INT(nl_cp_allowed((enum nl_pen_state)s, NL_CP_RESPONSE), NL_CP_OP_NOT_SUPPORTED);
		CHECK_INT(nl_cp_allowed((enum nl_pen_state)s, 0x1000), NL_CP_OP_NOT_SUPPORTED);
	}
	CHECK_INT(bad, 0);
	CHECK_INT(nl_cp_allowed(NL_PEN_STATE_COUNT, NL_CP_LOCK), NL_CP_INVALID_STATE);
}

static void test_results(void)
{
	CHECK_INT(nl_cp_result_for_error(-ENOMSG), NL_CP_OP_NOT_SUPPORTED);
	CHECK_INT(nl_cp_result_for_error(-ERANGE), NL_CP_INVALID_PARAMETER);
	CHECK_INT(nl_cp_result_for_error(-ENODATA), NL_CP_INVALID_PARAMETER);
	CHECK_INT(nl_cp_result_for_error(-EBADMSG), NL_CP_INVALID_PARAMETER);
	CHECK_INT(nl_cp_result_for_error(0), NL_CP_SUCCESS);

	CHECK_INT(nl_cp_action_for(NL_CP_SUCCESS), NL_CP_ACTION_DONE);
	CHECK_INT(nl_cp_action_for(NL_CP_FAILED), NL_CP_ACTION_RETRY);
	CHECK_INT(nl_cp_action_for(NL_CP_INVALID_STATE), NL_CP_ACTION_RESYNC);
	CHECK_INT(nl_cp_action_for(NL_CP_HASH_MISMATCH), NL_CP_ACTION_RESYNC);
	CHECK_INT(nl_cp_action_for(NL_CP_LOCKED), NL_CP_ACTION_RESYNC);
	CHECK_INT(nl_cp_action_for(NL_CP_STORE_FULL), NL_CP_ACTION_RESYNC);
	CHECK_INT(nl_cp_action_for(NL_CP_EPOCH_MISMATCH), NL_CP_ACTION_RESYNC);
	CHECK_INT(nl_cp_action_for(NL_CP_NO_CARTRIDGE), NL_CP_ACTION_RESYNC);
	CHECK_INT(nl_cp_action_for(NL_CP_OP_NOT_SUPPORTED), NL_CP_ACTION_GIVE_UP);
	CHECK_INT(nl_cp_action_for(NL_CP_INVALID_PARAMETER), NL_CP_ACTION_GIVE_UP);
	CHECK_INT(nl_cp_action_for(NL_CP_ABOVE_FACTORY), NL_CP_ACTION_GIVE_UP);
	CHECK_INT(nl_cp_action_for(NL_CP_RESULT_END), NL_CP_ACTION_GIVE_UP);

	CHECK_STR(nl_cp_result_name(NL_CP_SUCCESS), "success");
	CHECK_STR(nl_cp_result_name(NL_CP_OP_NOT_SUPPORTED), "op_not_supported");
	CHECK_STR(nl_cp_result_name(NL_CP_INVALID_PARAMETER), "invalid_parameter");
	CHECK_STR(nl_cp_result_name(NL_CP_FAILED), "failed");
	CHECK_STR(nl_cp_result_name(NL_CP_INVALID_STATE), "invalid_state");
	CHECK_STR(nl_cp_result_name(NL_CP_HASH_MISMATCH), "hash_mismatch");
	CHECK_STR(nl_cp_result_name(NL_CP_ABOVE_FACTORY), "above_factory");
	CHECK_STR(nl_cp_result_name(NL_CP_LOCKED), "locked");
	CHECK_STR(nl_cp_result_name(NL_CP_STORE_FULL), "store_full");
	CHECK_STR(nl_cp_result_name(NL_CP_EPOCH_MISMATCH), "epoch_mismatch");
	CHECK_STR(nl_cp_result_name(NL_CP_NO_CARTRIDGE), "no_cartridge");
	CHECK_STR(nl_cp_result_name(0), NULL);
	CHECK_STR(nl_cp_result_name(NL_CP_RESULT_END), NULL);
	CHECK_STR(nl_cp_op_name(0), NULL);
	CHECK_STR(nl_cp_op_name(NL_CP_OP_END), NULL);
	CHECK_STR(nl_cp_op_name(NL_CP_RESPONSE), "response");
}

static void test_client(void)
{
	struct nl_cp_client c;
	struct nl_cp_rsp rsp = { .req_op = NL_CP_AUTHORISE, .result = NL_CP_SUCCESS, .value = 42 };

	nl_cp_client_reset(&c);
	CHECK(!c.pending);
	CHECK_INT(nl_cp_client_complete(&c, &rsp), -EPROTO);   /* nothing pending */
	CHECK_INT(nl_cp_client_begin(&c, NL_CP_AUTHORISE), 0);
	CHECK(c.pending);
	CHECK_INT(nl_cp_client_begin(&c, NL_CP_LOCK), -EBUSY);
	CHECK_INT(c.op, NL_CP_AUTHORISE);
	rsp.req_op = NL_CP_LOCK;
	CHECK_INT(nl_cp_client_complete(&c, &rsp), -EPROTO);   /* another opcode */
	CHECK(c.pending);
	rsp.req_op = NL_CP_AUTHORISE;
	CHECK_INT(nl_cp_client_complete(&c, &rsp), 0);
	CHECK(!c.pending);
	CHECK_INT(nl_cp_client_complete(&c, &rsp), -EPROTO);   /* answered twice */
	CHECK_INT(nl_cp_client_begin(&c, NL_CP_STOP_SESSION), 0);
	nl_cp_client_reset(&c);                                /* link lost */
	CHECK(!c.pending);
	CHECK_INT(nl_cp_client_begin(&c, NL_CP_LOCK), 0);
}

int main(void)
{
	test_requests();
	test_response();
	test_allowed();
	test_results();
	test_client();
	return check_summary("test-cp");
}
