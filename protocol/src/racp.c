/* SPDX-License-Identifier: MIT */
/* Record Access Control Point (racp.h). */
#include <limits.h>
#include <string.h>

#include "needlelink/racp.h"
#include "nl-internal.h"

static bool req_op_known(unsigned op)
{
	return op >= NL_RACP_REPORT && op <= NL_RACP_REPORT_NUMBER;
}

/* Operand bytes after the operator: 0, or filter type + 1 or 2 u32. */
static unsigned operand_words(uint8_t oper)
{
	switch ((enum nl_racp_operator)oper) {
	case NL_RACP_LE:
	case NL_RACP_GE:
		return 1;
	case NL_RACP_RANGE:
		return 2;
	case NL_RACP_NULL:
	case NL_RACP_ALL:
	case NL_RACP_FIRST:
	case NL_RACP_LAST:
	case NL_RACP_OPERATOR_END:
		break;
	}
	return 0;
}

/* ABORT takes the NULL operator (as in the Glucose RACP); every other
 * request takes a real one. Operands not used by the operator are
 * ignored by the encoder and zero after decoding. */
static int req_check(const struct nl_racp_req *r)
{
	if (!req_op_known(r->op))
		return -ENOMSG;
	if (r->op == NL_RACP_ABORT)
		return r->oper == NL_RACP_NULL ? 0 : -ERANGE;
	if (r->oper < NL_RACP_ALL || r->oper >= NL_RACP_OPERATOR_END)
		return -ERANGE;
	if (r->oper == NL_RACP_RANGE && r->a > r->b)
		return -ERANGE;
	return 0;
}

int nl_racp_req_encode(const struct nl_racp_req *r, uint8_t *buf, size_t size)
{
	struct nl_wr w = nl_wr_init(buf, size);
	unsigned words;
	int e = req_check(r);

	if (e < 0)
		return e;
	nl_wr_u8(&w, r->op);
	nl_wr_u8(&w, r->oper);
	words = r->op == NL_RACP_ABORT ? 0 : operand_words(r->oper);
	if (words) {
		nl_wr_u8(&w, NL_RACP_FILTER_SEQ);
		nl_wr_u32(&w, r->a);
		if (words == 2)
			nl_wr_u32(&w, r->b);
	}
	return nl_pdu_close(&w);
}

int nl_racp_req_decode(const uint8_t *buf, size_t len, struct nl_racp_req *ret)
{
	struct nl_racp_req r;
	struct nl_rd rd;
	unsigned words;
	int e = nl_pdu_open(buf, len, &rd);

	if (e < 0)
		return e;
	memset(&r, 0, sizeof(r));
	r.op = nl_rd_u8(&rd);
	if (rd.err)
		return -ENODATA;
	if (!req_op_known(r.op))
		return -ENOMSG;
	r.oper = nl_rd_u8(&rd);
	if (rd.err)
		return -ENODATA;
	e = req_check(&r); /* operator first: it decides the operand */
	if (e < 0)
		return e;
	words = r.op == NL_RACP_ABORT ? 0 : operand_words(r.oper);
	if (words) {
		/* Filter type before operand length (docs/protocol.md 9.2). */
		uint8_t filter = nl_rd_u8(&rd);

		if (rd.err)
			return -ENODATA;
		if (filter != NL_RACP_FILTER_SEQ)
			return -ERANGE;
		r.a = nl_rd_u32(&rd);
		if (words == 2)
			r.b = nl_rd_u32(&rd);
		if (rd.err)
			return -ENODATA;
	}
	/* Unlike the other values, an operand where none belongs is an
	 * error (racp.h), so no trailing bytes are accepted. */
	if (nl_rd_left(&rd) != 0)
		return -ERANGE;
	e = req_check(&r);
	if (e < 0)
		return e;
	*ret = r;
	return 0;
}

/* req_op echoes the first byte of the write, whatever it was: an opcode
 * outside the table is valid only with OP_NOT_SUPPORTED, or INVALID_OPERAND
 * (a bad CRC is answered before the opcode is looked at). */
static int rsp_code_check(uint8_t req_op, uint8_t code)
{
	if (code < NL_RACP_SUCCESS || code >= NL_RACP_CODE_END)
		return -ERANGE;
	if (!req_op_known(req_op) && code != NL_RACP_OP_NOT_SUPPORTED &&
	    code != NL_RACP_INVALID_OPERAND)
		return -ERANGE;
	return 0;
}

int nl_racp_rsp_encode(const struct nl_racp_rsp *r, uint8_t *buf, size_t size)
{
	struct nl_wr w = nl_wr_init(buf, size);

	switch ((enum nl_racp_op)r->op) {
	case NL_RACP_NUMBER_RESPONSE:
		nl_wr_u8(&w, NL_RACP_NUMBER_RESPONSE);
		nl_wr_u8(&w, NL_RACP_NULL);
		nl_wr_u32(&w, r->count);
		break;
	case NL_RACP_RESPONSE_CODE:
		if (rsp_code_check(r->req_op, r->code) < 0)
			return -ERANGE;
		nl_wr_u8(&w, NL_RACP_RESPONSE_CODE);
		nl_wr_u8(&w, NL_RACP_NULL);
		nl_wr_u8(&w, r->req_op);
		nl_wr_u8(&w, r->code);
		break;
	case NL_RACP_REPORT:
	case NL_RACP_DELETE:
	case NL_RACP_ABORT:
	case NL_RACP_REPORT_NUMBER:
	case NL_RACP_OP_END:
	default:
		return -ENOMSG;
	}
	return nl_pdu_close(&w);
}

int nl_racp_rsp_decode(const uint8_t *buf, size_t len, struct nl_racp_rsp *ret)
{
	struct nl_racp_rsp r;
	struct nl_rd rd;
	uint8_t oper;
	int e = nl_pdu_open(buf, len, &rd);

	if (e < 0)
		return e;
	memset(&r, 0, sizeof(r));
	r.op = nl_rd_u8(&rd);
	if (rd.err)
		return -ENODATA;
	if (r.op != NL_RACP_NUMBER_RESPONSE && r.op != NL_RACP_RESPONSE_CODE)
		return -ENOMSG;
	oper = nl_rd_u8(&rd);
	if (r.op == NL_RACP_NUMBER_RESPONSE) {
		r.count = nl_rd_u32(&rd);
	} else {
		r.req_op = nl_rd_u8(&rd);
		r.code = nl_rd_u8(&rd);
	}
	if (rd.err)
		return -ENODATA;
	if (oper != NL_RACP_NULL)
		return -ERANGE;
	if (r.op == NL_RACP_RESPONSE_CODE && rsp_code_check(r.req_op, r.code) < 0)
		return -ERANGE;
	*ret = r;
	return 0;
}

bool nl_racp_match(const struct nl_racp_req *r, uint32_t seq, uint32_t first_seq,
		   uint32_t last_seq)
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
		return seq == first_seq;
	case NL_RACP_LAST:
		return seq == last_seq;
	case NL_RACP_NULL:
	case NL_RACP_OPERATOR_END:
		break;
	}
	return false;
}

/* CCCD problems are reported before "in progress", as a GATT server
 * checks configuration before procedure state. */
int nl_racp_server_begin(struct nl_racp_server *s, const struct nl_racp_req *r,
			 bool racp_indicate, bool record_notify)
{
	if (!racp_indicate)
		return NL_ATT_CCCD_IMPROPER;
	if (r->op == NL_RACP_REPORT && !record_notify)
		return NL_ATT_CCCD_IMPROPER;
	if (r->op == NL_RACP_ABORT)
		return 0; /* the running procedure (if any) stays owned by its caller */
	if (s->busy)
		return NL_ATT_PROC_IN_PROGRESS;
	s->busy = true;
	s->op = r->op;
	return 0;
}

void nl_racp_server_end(struct nl_racp_server *s)
{
	s->busy = false;
	s->op = 0;
}

void nl_racp_client_start(struct nl_racp_client *c, uint32_t from)
{
	c->expect = from;
	c->received = 0;
	c->gaps = 0;
}

int nl_racp_client_feed(struct nl_racp_client *c, uint32_t seq)
{
	uint32_t skipped;

	if (seq < c->expect)
		return -EALREADY;
	skipped = seq - c->expect;
	c->expect = seq + 1;
	c->received++;
	c->gaps += skipped;
	return skipped > INT_MAX ? INT_MAX : (int)skipped;
}

const char *nl_racp_op_name(unsigned op)
{
	static const char *const n[] = {
		[NL_RACP_REPORT] = "report",
		[NL_RACP_DELETE] = "delete",
		[NL_RACP_ABORT] = "abort",
		[NL_RACP_REPORT_NUMBER] = "report_number",
		[NL_RACP_NUMBER_RESPONSE] = "number_response",
		[NL_RACP_RESPONSE_CODE] = "response_code",
	};
	return op < sizeof(n) / sizeof(n[0]) ? n[op] : NULL;
}

const char *nl_racp_operator_name(unsigned oper)
{
	static const char *const n[] = {
		[NL_RACP_NULL] = "null",
		[NL_RACP_ALL] = "all",
		[NL_RACP_LE] = "le",
		[NL_RACP_GE] = "ge",
		[NL_RACP_RANGE] = "range",
		[NL_RACP_FIRST] = "first",
		[NL_RACP_LAST] = "last",
	};
	return oper < sizeof(n) / sizeof(n[0]) ? n[oper] : NULL;
}

const char *nl_racp_code_name(unsigned code)
{
	static const char *const n[] = {
		[NL_RACP_SUCCESS] = "success",
		[NL_RACP_OP_NOT_SUPPORTED] = "op_not_supported",
		[NL_RACP_INVALID_OPERATOR] = "invalid_operator",
		[NL_RACP_OPERATOR_NOT_SUPPORTED] = "operator_not_supported",
		[NL_RACP_INVALID_OPERAND] = "invalid_operand",
		[NL_RACP_NO_RECORDS] = "no_records",
		[NL_RACP_ABORT_FAILED] = "abort_failed",
		[NL_RACP_NOT_COMPLETED] = "not_completed",
		[NL_RACP_OPERAND_NOT_SUPPORTED] = "operand_not_supported",
	};
	return code < sizeof(n) / sizeof(n[0]) ? n[code] : NULL;
}
