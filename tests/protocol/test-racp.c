/* SPDX-License-Identifier: MIT */
/*
 * Record Access Control Point: every request form, both responses, the
 * filter, the server's one-procedure rule and the client's continuity.
 *
 * Byte arrays written by hand from racp.h; CRC bytes computed separately
 * with an independent Python CRC-16/MCRF4XX (see test-pdu.c).
 */
#include "check.h"
#include "needlelink/racp.h"

#define LEN(a) (sizeof(a) / sizeof((a)[0]))

static int dec_req(const uint8_t *b, size_t n, void *o) { return nl_racp_req_decode(b, n, o); }
static int enc_req(const void *i, uint8_t *b, size_t n) { return nl_racp_req_encode(i, b, n); }
static int dec_rsp(const uint8_t *b, size_t n, void *o) { return nl_racp_rsp_decode(b, n, o); }
static int enc_rsp(const void *i, uint8_t *b, size_t n) { return nl_racp_rsp_encode(i, b, n); }

static const uint8_t gold_all[] = { 0x01, 0x01, 0xE9, 0xF8 };
static const uint8_t gold_le[] = { 0x01, 0x02, 0x01, 0x10, 0x01, 0x00, 0x00, 0x35, 0x76 };
static const uint8_t gold_ge[] = { 0x01, 0x03, 0x01, 0x06, 0x01, 0x00, 0x00, 0x25, 0xFA };
static const uint8_t gold_range[] = {
	0x01, 0x04, 0x01,
	0x00, 0x01, 0x00, 0x00, /* a = 256 */
	0x10, 0x01, 0x00, 0x00, /* b = 272 */
	0x73, 0x5E,             /* CRC 0x5E73 */
};
static const uint8_t gold_first[] = { 0x01, 0x05, 0xCD, 0xBE };
static const uint8_t gold_last[] = { 0x01, 0x06, 0x56, 0x8C };
static const uint8_t gold_number[] = { 0x04, 0x01, 0x51, 0x86 };
static const uint8_t gold_delete[] = { 0x02, 0x01, 0x81, 0xD2 };
static const uint8_t gold_abort[] = { 0x03, 0x00, 0xD0, 0xDA };
static const uint8_t gold_num_rsp[] = { 0x05, 0x00, 0x2A, 0x00, 0x00, 0x00, 0x0A, 0x4F };
static const uint8_t gold_code_rsp[] = { 0x06, 0x00, 0x01, 0x01, 0xEA, 0x40 };

struct req_case {
	const char *name;
	const uint8_t *gold;
	size_t len;
	struct nl_racp_req ref;
};

static void test_requests(void)
{
	const struct req_case cases[] = {
		{ "report_all", gold_all, LEN(gold_all), { NL_RACP_REPORT, NL_RACP_ALL, 0, 0 } },
		{ "report_le", gold_le, LEN(gold_le), { NL_RACP_REPORT, NL_RACP_LE, 272, 0 } },
		{ "report_ge", gold_ge, LEN(gold_ge), { NL_RACP_REPORT, NL_RACP_GE, 262, 0 } },
		{ "report_range", gold_range, LEN(gold_range), { NL_RACP_REPORT, NL_RACP_RANGE, 256, 272 } },
		{ "report_first", gold_first, LEN(gold_first), { NL_RACP_REPORT, NL_RACP_FIRST, 0, 0 } },
		{ "report_last", gold_last, LEN(gold_last), { NL_RACP_REPORT, NL_RACP_LAST, 0, 0 } },
		{ "report_number", gold_number, LEN(gold_number), { NL_RACP_REPORT_NUMBER, NL_RACP_ALL, 0, 0 } },
		{ "delete_all", gold_delete, LEN(gold_delete), { NL_RACP_DELETE, NL_RACP_ALL, 0, 0 } },
		{ "abort", gold_abort, LEN(gold_abort), { NL_RACP_ABORT, NL_RACP_NULL, 0, 0 } },
	};

	for (unsigned i = 0; i < LEN(cases); i++) {
		const struct req_case *c = &cases[i];
		struct nl_racp_req r;
		uint8_t buf[32];

		memset(&r, 0xA5, sizeof(r));
		CHECK_INT(nl_racp_req_decode(c->gold, c->len, &r), 0);
		CHECK_INT(r.op, c->ref.op);
		CHECK_INT(r.oper, c->ref.oper);
		CHECK_INT(r.a, c->ref.a);
		CHECK_INT(r.b, c->ref.b);
		CHECK_INT(nl_racp_req_encode(&c->ref, buf, sizeof(buf)), (int)c->len);
		CHECK_MEM(buf, c->len, c->gold, c->len);
		/* No trailing bytes: an operand where none belongs is -ERANGE. */
		check_malformed(c->name, c->gold, c->len, dec_req, enc_req, CHECK_HAS_CRC);
	}

	/* Unknown opcodes, including the two response opcodes. */
	CHECK_INT(check_decode_patched(gold_all, 4, 0, 0x00, 1, dec_req, true), -ENOMSG);
	CHECK_INT(check_decode_patched(gold_all, 4, 0, 0x05, 1, dec_req, true), -ENOMSG);
	CHECK_INT(check_decode_patched(gold_all, 4, 0, 0x06, 1, dec_req, true), -ENOMSG);
	CHECK_INT(check_decode_patched(gold_all, 4, 0, 0x07, 1, dec_req, true), -ENOMSG);
	CHECK_INT(check_decode_patched(gold_all, 4, 0, 0xFF, 1, dec_req, true), -ENOMSG);
	/* Operators. */
	CHECK_INT(check_decode_patched(gold_all, 4, 1, 0x00, 1, dec_req, true), -ERANGE);  /* NULL */
	CHECK_INT(check_decode_patched(gold_all, 4, 1, 0x07, 1, dec_req, true), -ERANGE);  /* unknown */
	CHECK_INT(check_decode_patched(gold_abort, 4, 1, 0x01, 1, dec_req, true), -ERANGE);/* ABORT ALL */
	CHECK_INT(check_decode_patched(gold_all, 4, 1, 0x02, 1, dec_req, true), -ENODATA); /* LE, no operand */
	CHECK_INT(check_decode_patched(gold_first, 4, 1, 0x04, 1, dec_req, true), -ENODATA);
	/* Filter type and operands. */
	CHECK_INT(check_decode_patched(gold_le, LEN(gold_le), 2, 0x02, 1, dec_req, true), -ERANGE);
	CHECK_INT(check_decode_patched(gold_le, LEN(gold_le), 2, 0x00, 1, dec_req, true), -ERANGE);
	CHECK_INT(check_decode_patched(gold_range, LEN(gold_range), 3, 273, 4, dec_req, true), -ERANGE); /* a > b */
	CHECK_INT(check_decode_patched(gold_range, LEN(gold_range), 3, 272, 4, dec_req, true), 0);        /* a == b */
	/* An operand where none belongs: ALL followed by a filter + value. */
	CHECK_INT(check_decode_patched(gold_ge, LEN(gold_ge), 1, NL_RACP_ALL, 1, dec_req, true), -ERANGE);
	CHECK_INT(check_decode_patched(gold_range, LEN(gold_range), 1, NL_RACP_GE, 1, dec_req, true), -ERANGE);
	CHECK_INT(check_decode_patched(gold_le, LEN(gold_le), 0, NL_RACP_ABORT, 1, dec_req, true), -ERANGE);

	/* Encoder ranges; unused operands are not written. */
	{
		struct nl_racp_req x = { NL_RACP_REPORT, NL_RACP_RANGE, 5, 4 };
		uint8_t b[32];

		CHECK_INT(nl_racp_req_encode(&x, b, sizeof(b)), -ERANGE);
		x.a = 0;
		x.b = 0xFFFFFFFFu;
		CHECK_INT(nl_racp_req_encode(&x, b, sizeof(b)), 13);
		x.oper = NL_RACP_OPERATOR_END;
		CHECK_INT(nl_racp_req_encode(&x, b, sizeof(b)), -ERANGE);
		x.oper = NL_RACP_NULL;
		CHECK_INT(nl_racp_req_encode(&x, b, sizeof(b)), -ERANGE);
		x.op = NL_RACP_ABORT;
		CHECK_INT(nl_racp_req_encode(&x, b, sizeof(b)), 4);
		x.oper = NL_RACP_ALL;
		CHECK_INT(nl_racp_req_encode(&x, b, sizeof(b)), -ERANGE);
		x.op = NL_RACP_NUMBER_RESPONSE;
		CHECK_INT(nl_racp_req_encode(&x, b, sizeof(b)), -ENOMSG);
		x = (struct nl_racp_req){ NL_RACP_REPORT, NL_RACP_ALL, 7, 9 };
		CHECK_INT(nl_racp_req_encode(&x, b, sizeof(b)), 4);
		CHECK_MEM(b, 4, gold_all, 4);
	}
}

static void test_responses(void)
{
	struct nl_racp_rsp r;
	uint8_t buf[32];
	const struct nl_racp_rsp num = { .op = NL_RACP_NUMBER_RESPONSE, .count = 42 };
	const struct nl_racp_rsp code = { .op = NL_RACP_RESPONSE_CODE, .req_op = NL_RACP_REPORT,
					  .code = NL_RACP_SUCCESS };

	CHECK_INT(nl_racp_rsp_decode(gold_num_rsp, LEN(gold_num_rsp), &r), 0);
	CHECK_INT(r.op, NL_RACP_NUMBER_RESPONSE);
	CHECK_INT(r.count, 42);
	CHECK_INT(nl_racp_rsp_encode(&num, buf, sizeof(buf)), (int)LEN(gold_num_rsp));
	CHECK_MEM(buf, LEN(gold_num_rsp), gold_num_rsp, LEN(gold_num_rsp));
	check_malformed("number_response", gold_num_rsp, LEN(gold_num_rsp), dec_rsp, enc_rsp,
			CHECK_HAS_CRC | CHECK_EXTENSIBLE);

	CHECK_INT(nl_racp_rsp_decode(gold_code_rsp, LEN(gold_code_rsp), &r), 0);
	CHECK_INT(r.op, NL_RACP_RESPONSE_CODE);
	CHECK_INT(r.req_op, NL_RACP_REPORT);
	CHECK_INT(r.code, NL_RACP_SUCCESS);
	CHECK_INT(nl_racp_rsp_encode(&code, buf, sizeof(buf)), (int)LEN(gold_code_rsp));
	CHECK_MEM(buf, LEN(gold_code_rsp), gold_code_rsp, LEN(gold_code_rsp));
	check_malformed("response_code", gold_code_rsp, LEN(gold_code_rsp), dec_rsp, enc_rsp,
			CHECK_HAS_CRC | CHECK_EXTENSIBLE);

	CHECK_INT(check_decode_patched(gold_num_rsp, 8, 0, 0x01, 1, dec_rsp, true), -ENOMSG);
	CHECK_INT(check_decode_patched(gold_num_rsp, 8, 0, 0x07, 1, dec_rsp, true), -ENOMSG);
	CHECK_INT(check_decode_patched(gold_num_rsp, 8, 1, 0x01, 1, dec_rsp, true), -ERANGE);  /* operator */
	CHECK_INT(check_decode_patched(gold_code_rsp, 6, 1, 0x01, 1, dec_rsp, true), -ERANGE);
	/* An unknown request opcode only with OP_NOT_SUPPORTED or INVALID_OPERAND. */
	CHECK_INT(check_decode_patched(gold_code_rsp, 6, 2, 0x00, 1, dec_rsp, true), -ERANGE);
	CHECK_INT(check_decode_patched(gold_code_rsp, 6, 2, 0x0500, 2, dec_rsp, true), 0);
	CHECK_INT(check_decode_patched(gold_code_rsp, 6, 3, 0x00, 1, dec_rsp, true), -ERANGE); /* code */
	CHECK_INT(check_decode_patched(gold_code_rsp, 6, 3, 0x0A, 1, dec_rsp, true), -ERANGE);
	CHECK_INT(check_decode_patched(gold_code_rsp, 6, 2, 0x0277, 2, dec_rsp, true), 0);     /* unknown op echoed */
	{
		struct nl_racp_rsp x = code;

		x.code = NL_RACP_OPERAND_NOT_SUPPORTED;
		CHECK_INT(nl_racp_rsp_encode(&x, buf, sizeof(buf)), 6);
		CHECK_INT(nl_racp_rsp_decode(buf, 6, &r), 0);
		CHECK_INT(r.code, NL_RACP_OPERAND_NOT_SUPPORTED);
		x.code = NL_RACP_CODE_END;
		CHECK_INT(nl_racp_rsp_encode(&x, buf, sizeof(buf)), -ERANGE);
		x.code = NL_RACP_SUCCESS;
		x.req_op = NL_RACP_RESPONSE_CODE; /* a response opcode written by mistake */
		CHECK_INT(nl_racp_rsp_encode(&x, buf, sizeof(buf)), -ERANGE);
		x.code = NL_RACP_OP_NOT_SUPPORTED; /* ... is answered not supported */
		CHECK_INT(nl_racp_rsp_encode(&x, buf, sizeof(buf)), 6);
		x.op = NL_RACP_REPORT;
		CHECK_INT(nl_racp_rsp_encode(&x, buf, sizeof(buf)), -ENOMSG);
		x = num;
		x.count = 0xFFFFFFFFu;
		CHECK_INT(nl_racp_rsp_encode(&x, buf, sizeof(buf)), 8);
		CHECK_INT(nl_racp_rsp_decode(buf, 8, &r), 0);
		CHECK_INT(r.count, 0xFFFFFFFFu);
	}
}

static void test_match(void)
{
	struct nl_racp_req r = { NL_RACP_REPORT, NL_RACP_ALL, 0, 0 };

	CHECK(nl_racp_match(&r, 1, 1, 10));
	CHECK(nl_racp_match(&r, 0xFFFFFFFFu, 1, 10));
	r.oper = NL_RACP_LE;
	r.a = 5;
	CHECK(nl_racp_match(&r, 5, 1, 10));
	CHECK(!nl_racp_match(&r, 6, 1, 10));
	r.oper = NL_RACP_GE;
	CHECK(nl_racp_match(&r, 5, 1, 10));
	CHECK(!nl_racp_match(&r, 4, 1, 10));
	r.oper = NL_RACP_RANGE;
	r.b = 7;
	CHECK(!nl_racp_match(&r, 4, 1, 10));
	CHECK(nl_racp_match(&r, 5, 1, 10));
	CHECK(nl_racp_match(&r, 7, 1, 10));
	CHECK(!nl_racp_match(&r, 8, 1, 10));
	r.oper = NL_RACP_FIRST;
	CHECK(nl_racp_match(&r, 3, 3, 10));
	CHECK(!nl_racp_match(&r, 4, 3, 10));
	r.oper = NL_RACP_LAST;
	CHECK(nl_racp_match(&r, 10, 3, 10));
	CHECK(!nl_racp_match(&r, 9, 3, 10));
	r.oper = NL_RACP_NULL;
	CHECK(!nl_racp_match(&r, 5, 1, 10));
}

static void test_server(void)
{
	struct nl_racp_server s = { 0 };
	const struct nl_racp_req report = { NL_RACP_REPORT, NL_RACP_ALL, 0, 0 };
	const struct nl_racp_req number = { NL_RACP_REPORT_NUMBER, NL_RACP_ALL, 0, 0 };
	const struct nl_racp_req abort_req = { NL_RACP_ABORT, NL_RACP_NULL, 0, 0 };

	/* CCCDs first. */
	CHECK_INT(nl_racp_server_begin(&s, &report, false, true), NL_ATT_CCCD_IMPROPER);
	CHECK_INT(nl_racp_server_begin(&s, &report, true, false), NL_ATT_CCCD_IMPROPER);
	CHECK_INT(nl_racp_server_begin(&s, &number, false, true), NL_ATT_CCCD_IMPROPER);
	CHECK(!s.busy);
	/* REPORT_NUMBER needs no record notifications. */
	CHECK_INT(nl_racp_server_begin(&s, &number, true, false), 0);
	CHECK(s.busy);
	CHECK_INT(s.op, NL_RACP_REPORT_NUMBER);
	nl_racp_server_end(&s);
	CHECK(!s.busy);
	/* One procedure at a time; ABORT gets through. */
	CHECK_INT(nl_racp_server_begin(&s, &report, true, true), 0);
	CHECK_INT(s.op, NL_RACP_REPORT);
	CHECK_INT(nl_racp_server_begin(&s, &report, true, true), NL_ATT_PROC_IN_PROGRESS);
	CHECK_INT(nl_racp_server_begin(&s, &number, true, true), NL_ATT_PROC_IN_PROGRESS);
	/* 9.4: the CCCD checks come before "in progress", also while busy. */
	CHECK_INT(nl_racp_server_begin(&s, &number, false, true), NL_ATT_CCCD_IMPROPER);
	CHECK_INT(nl_racp_server_begin(&s, &report, true, false), NL_ATT_CCCD_IMPROPER);
	CHECK_INT(nl_racp_server_begin(&s, &abort_req, false, true), NL_ATT_CCCD_IMPROPER);
	CHECK_INT(s.op, NL_RACP_REPORT);
	CHECK_INT(nl_racp_server_begin(&s, &abort_req, true, true), 0);
	CHECK(s.busy); /* the caller ends the aborted procedure */
	CHECK_INT(s.op, NL_RACP_REPORT);
	nl_racp_server_end(&s);
	/* ABORT while idle may start (the caller answers ABORT_FAILED) and
	 * does not leave the server busy. */
	CHECK_INT(nl_racp_server_begin(&s, &abort_req, true, false), 0);
	CHECK(!s.busy);
	CHECK_INT(nl_racp_server_begin(&s, &report, true, true), 0);
}

static void test_client(void)
{
	struct nl_racp_client c;

	nl_racp_client_start(&c, 100);
	CHECK_INT(c.expect, 100);
	CHECK_INT(nl_racp_client_feed(&c, 100), 0);
	CHECK_INT(nl_racp_client_feed(&c, 101), 0);
	CHECK_INT(nl_racp_client_feed(&c, 101), -EALREADY); /* duplicate */
	CHECK_INT(nl_racp_client_feed(&c, 50), -EALREADY);  /* older */
	CHECK_INT(nl_racp_client_feed(&c, 105), 3);         /* 102..104 lost */
	CHECK_INT(nl_racp_client_feed(&c, 106), 0);
	CHECK_INT(nl_racp_client_feed(&c, 108), 1);
	CHECK_INT(c.received, 5);
	CHECK_INT(c.gaps, 4);
	CHECK_INT(c.expect, 109);
	nl_racp_client_start(&c, 1);
	CHECK_INT(c.received, 0);
	CHECK_INT(c.gaps, 0);
	CHECK_INT(nl_racp_client_feed(&c, 0), -EALREADY);
	CHECK_INT(nl_racp_client_feed(&c, 1), 0);
}

static void test_names(void)
{
	CHECK_STR(nl_racp_op_name(NL_RACP_REPORT), "report");
	CHECK_STR(nl_racp_op_name(NL_RACP_DELETE), "delete");
	CHECK_STR(nl_racp_op_name(NL_RACP_ABORT), "abort");
	CHECK_STR(nl_racp_op_name(NL_RACP_REPORT_NUMBER), "report_number");
	CHECK_STR(nl_racp_op_name(NL_RACP_NUMBER_RESPONSE), "number_response");
	CHECK_STR(nl_racp_op_name(NL_RACP_RESPONSE_CODE), "response_code");
	CHECK_STR(nl_racp_op_name(0), NULL);
	CHECK_STR(nl_racp_op_name(NL_RACP_OP_END), NULL);
	CHECK_STR(nl_racp_operator_name(NL_RACP_NULL), "null");
	CHECK_STR(nl_racp_operator_name(NL_RACP_RANGE), "range");
	CHECK_STR(nl_racp_operator_name(NL_RACP_LAST), "last");
	CHECK_STR(nl_racp_operator_name(NL_RACP_OPERATOR_END), NULL);
	CHECK_STR(nl_racp_code_name(NL_RACP_SUCCESS), "success");
	CHECK_STR(nl_racp_code_name(NL_RACP_NO_RECORDS), "no_records");
	CHECK_STR(nl_racp_code_name(NL_RACP_ABORT_FAILED), "abort_failed");
	CHECK_STR(nl_racp_code_name(NL_RACP_OPERAND_NOT_SUPPORTED), "operand_not_supported");
	CHECK_STR(nl_racp_code_name(0), NULL);
	CHECK_STR(nl_racp_code_name(NL_RACP_CODE_END), NULL);
}

int main(void)
{
	test_requests();
	test_responses();
	test_match();
	test_server();
	test_client();
	test_names();
	return check_summary("test-racp");
}
