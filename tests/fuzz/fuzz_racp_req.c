/* SPDX-License-Identifier: MIT */
/* Fuzz target: RACP request (nl_racp_req_decode), plus the filter and the
 * one-procedure-at-a-time rule applied to what was decoded. */
#include <string.h>

#include "fuzz_common.h"

/* Store bounds used to check FIRST and LAST. */
#define STORE_FIRST 17u
#define STORE_LAST 4242u

static int racp_req_enc(const void *obj, uint8_t *buf, size_t size)
{
	return nl_racp_req_encode(obj, buf, size);
}

/* Operand bytes for an operator: filter type + one or two u32. */
static size_t operand_len(unsigned oper)
{
	switch ((enum nl_racp_operator)oper) {
	case NL_RACP_LE:
	case NL_RACP_GE:
		return 1 + 4;
	case NL_RACP_RANGE:
		return 1 + 8;
	case NL_RACP_NULL:
	case NL_RACP_ALL:
	case NL_RACP_FIRST:
	case NL_RACP_LAST:
	case NL_RACP_OPERATOR_END:
		break;
	}
	return 0;
}

/* What nl_racp_match must answer, written out from racp.h. */
static bool want_match(const struct nl_racp_req *r, uint32_t seq)
{
	switch ((enum nl_racp_operator)r->oper) {
	case NL_RACP_ALL:
		return true;
	case NL_RACP_LE:
		return seq <= r->a;
	case NL_RACP_GE:
		return seq >= r->a;
	case NL_RACP_RANGE:
		return seq >= r->a && seq <= r->b;
	case NL_RACP_FIRST:
		return seq == STORE_FIRST;
	case NL_RACP_LAST:
		return seq == STORE_LAST;
	case NL_RACP_NULL:
	case NL_RACP_OPERATOR_END:
		break;
	}
	fuzz_fail(__FILE__, __LINE__, "want_match on an operator without a filter");
}

static void check_match(const struct nl_racp_req *r)
{
	const uint32_t seqs[] = {
		0, 1, STORE_FIRST - 1, STORE_FIRST, STORE_FIRST + 1, STORE_LAST - 1, STORE_LAST,
		STORE_LAST + 1, r->a - 1, r->a, r->a + 1, r->b - 1, r->b, r->b + 1, UINT32_MAX,
	};

	for (size_t i = 0; i < sizeof(seqs) / sizeof(seqs[0]); i++)
		FUZZ_CHECK(nl_racp_match(r, seqs[i], STORE_FIRST, STORE_LAST) ==
			   want_match(r, seqs[i]));
}

static void check_server(const struct nl_racp_req *r)
{
	struct nl_racp_server s;
	struct nl_racp_req report = {.op = NL_RACP_REPORT, .oper = NL_RACP_ALL};

	memset(&s, 0, sizeof(s));
	if (r->op == NL_RACP_ABORT) {
		/* ABORT is let through while a procedure runs. */
		FUZZ_CHECK(nl_racp_server_begin(&s, &report, true, true) == 0);
		FUZZ_CHECK(nl_racp_server_begin(&s, r, true, true) == 0);
		return;
	}
	if (r->op != NL_RACP_REPORT && r->op != NL_RACP_REPORT_NUMBER)
		return;
	FUZZ_CHECK(nl_racp_server_begin(&s, r, false, true) == NL_ATT_CCCD_IMPROPER);
	if (r->op == NL_RACP_REPORT)
		FUZZ_CHECK(nl_racp_server_begin(&s, r, true, false) == NL_ATT_CCCD_IMPROPER);
	FUZZ_CHECK(nl_racp_server_begin(&s, r, true, true) == 0);
	FUZZ_CHECK(s.busy);
	FUZZ_CHECK(nl_racp_server_begin(&s, r, true, true) == NL_ATT_PROC_IN_PROGRESS);
	nl_racp_server_end(&s);
	FUZZ_CHECK(!s.busy);
	FUZZ_CHECK(nl_racp_server_begin(&s, r, true, true) == 0);
}

static void check_client(uint32_t from)
{
	struct nl_racp_client c;

	if (from == 0 || from > UINT32_MAX - 8)
		return;
	nl_racp_client_start(&c, from);
	FUZZ_CHECK(nl_racp_client_feed(&c, from) == 0);
	FUZZ_CHECK(nl_racp_client_feed(&c, from) == -EALREADY);
	FUZZ_CHECK(nl_racp_client_feed(&c, from - 1) == -EALREADY);
	FUZZ_CHECK(nl_racp_client_feed(&c, from + 1) == 0);
	FUZZ_CHECK(nl_racp_client_feed(&c, from + 5) == 3);
	FUZZ_CHECK(nl_racp_client_feed(&c, from + 6) == 0);
	FUZZ_CHECK(c.received == 4 && c.gaps == 3);
}

static void check_one(const uint8_t *data, size_t size)
{
	struct nl_racp_req r, r2;
	uint8_t enc[2 + 9 + 2 + 8];
	size_t v1_len;
	int rc, n;

	memset(&r, FUZZ_POISON, sizeof(r));
	rc = nl_racp_req_decode(data, size, &r);
	if (rc < 0) {
		FUZZ_CHECK(fuzz_is_decode_error(rc));
		FUZZ_CHECK(nl_strerror(rc) != NULL);
		FUZZ_CHECK(fuzz_is_poisoned(&r, sizeof(r)));
		return;
	}
	FUZZ_CHECK(rc == 0);
	fuzz_decoded_ok++;

	FUZZ_CHECK(r.op >= NL_RACP_REPORT && r.op <= NL_RACP_REPORT_NUMBER);
	FUZZ_CHECK(r.oper < NL_RACP_OPERATOR_END);
	FUZZ_CHECK(nl_racp_op_name(r.op) != NULL);
	FUZZ_CHECK(nl_racp_operator_name(r.oper) != NULL);
	if (r.oper == NL_RACP_RANGE)
		FUZZ_CHECK(r.a <= r.b);
	if (r.oper != NL_RACP_NULL && (r.op == NL_RACP_REPORT || r.op == NL_RACP_REPORT_NUMBER))
		check_match(&r);
	check_server(&r);
	check_client(r.a);

	v1_len = 2 + operand_len(r.oper) + 2;
	FUZZ_CHECK(size >= v1_len);
	n = nl_racp_req_encode(&r, enc, sizeof(enc));
	FUZZ_CHECK(n == (int)v1_len);
	fuzz_check_encode_sizes(racp_req_enc, &r, enc, (size_t)n);
	if (size == v1_len)
		FUZZ_CHECK(memcmp(enc, data, size) == 0);
	FUZZ_CHECK(nl_pdu_check_crc(enc, (size_t)n) == 0);

	memset(&r2, FUZZ_POISON, sizeof(r2));
	FUZZ_CHECK(nl_racp_req_decode(enc, (size_t)n, &r2) == 0);
	FUZZ_CHECK(fuzz_racp_req_eq(&r, &r2));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fuzz_run_with_fixed_crc(check_one, data, size);
	return 0;
}
