/* SPDX-License-Identifier: MIT */
/*
 * Record Access Control Point (write with response + indicate), after the
 * Glucose Service RACP, with sequence numbers as the only filter.
 *
 * Request:  u8 opcode, u8 operator, [u8 filter_type = 0x01, u32 a, [u32 b]], CRC
 *   operand present for LE and GE (a) and RANGE (a <= b); absent otherwise.
 * Responses (indications):
 *   NUMBER_RESPONSE: u8 0x05, u8 operator 0x00, u32 count, CRC
 *   RESPONSE_CODE:   u8 0x06, u8 operator 0x00, u8 request opcode, u8 code, CRC
 *
 * REPORT sends every matching record as notifications on the Treatment
 * Record characteristic, in sequence order, then one RESPONSE_CODE.
 * DELETE is answered OP_NOT_SUPPORTED by NeedleLink pens: records are
 * pruned only by ACK_RECORDS on the Pen Control Point.
 */
#ifndef NEEDLELINK_RACP_H
#define NEEDLELINK_RACP_H

#include "needlelink/common.h"

enum nl_racp_op {
	NL_RACP_REPORT = 0x01,
	NL_RACP_DELETE = 0x02,
	NL_RACP_ABORT = 0x03,
	NL_RACP_REPORT_NUMBER = 0x04,
	NL_RACP_NUMBER_RESPONSE = 0x05,
	NL_RACP_RESPONSE_CODE = 0x06,
	NL_RACP_OP_END
};

enum nl_racp_operator {
	NL_RACP_NULL = 0x00,
	NL_RACP_ALL = 0x01,
	NL_RACP_LE = 0x02,
	NL_RACP_GE = 0x03,
	NL_RACP_RANGE = 0x04,
	NL_RACP_FIRST = 0x05,
	NL_RACP_LAST = 0x06,
	NL_RACP_OPERATOR_END
};

#define NL_RACP_FILTER_SEQ 0x01

enum nl_racp_code {
	NL_RACP_SUCCESS = 0x01,
	NL_RACP_OP_NOT_SUPPORTED = 0x02,
	NL_RACP_INVALID_OPERATOR = 0x03,
	NL_RACP_OPERATOR_NOT_SUPPORTED = 0x04,
	NL_RACP_INVALID_OPERAND = 0x05,
	NL_RACP_NO_RECORDS = 0x06,
	NL_RACP_ABORT_FAILED = 0x07,
	NL_RACP_NOT_COMPLETED = 0x08,
	NL_RACP_OPERAND_NOT_SUPPORTED = 0x09,
	NL_RACP_CODE_END
};

struct nl_racp_req {
	uint8_t op;       /* REPORT, DELETE, ABORT, REPORT_NUMBER */
	uint8_t oper;     /* enum nl_racp_operator */
	uint32_t a, b;    /* sequence numbers, per operator */
};

struct nl_racp_rsp {
	uint8_t op;       /* NUMBER_RESPONSE or RESPONSE_CODE */
	uint32_t count;   /* NUMBER_RESPONSE */
	uint8_t req_op;   /* RESPONSE_CODE */
	uint8_t code;     /* RESPONSE_CODE */
};

int nl_racp_req_encode(const struct nl_racp_req *r, uint8_t *buf, size_t size);
/* -ENOMSG unknown opcode; -ERANGE bad operator / filter / operand
 * (RANGE with a > b, an operand where none belongs). */
int nl_racp_req_decode(const uint8_t *buf, size_t len, struct nl_racp_req *ret);
int nl_racp_rsp_encode(const struct nl_racp_rsp *r, uint8_t *buf, size_t size);
int nl_racp_rsp_decode(const uint8_t *buf, size_t len, struct nl_racp_rsp *ret);

/* Does a record with sequence number seq match the request's filter?
 * FIRST and LAST need the store's first and last sequence numbers. */
bool nl_racp_match(const struct nl_racp_req *r, uint32_t seq, uint32_t first_seq,
		   uint32_t last_seq);

/* Server side: one procedure at a time. */
struct nl_racp_server {
	bool busy;
	uint8_t op;
};
/* Whether a decoded request may start: 0 to start it, or the ATT error
 * NL_ATT_PROC_IN_PROGRESS when a procedure is running and r is not ABORT,
 * or NL_ATT_CCCD_IMPROPER when indications (or, for REPORT, record
 * notifications) are not enabled. ABORT while idle is answered with
 * RESPONSE_CODE ABORT_FAILED by the caller. */
int nl_racp_server_begin(struct nl_racp_server *s, const struct nl_racp_req *r,
			 bool racp_indicate, bool record_notify);
void nl_racp_server_end(struct nl_racp_server *s);

/* Client side: continuity of a catch-up. Expect records >= from, in order. */
struct nl_racp_client {
	uint32_t expect;   /* next sequence number expected */
	uint32_t received; /* records accepted in this procedure */
	uint32_t gaps;     /* sequence numbers skipped */
};
void nl_racp_client_start(struct nl_racp_client *c, uint32_t from);
/* Feeds the sequence number of a received record:
 * 0 in order; -EALREADY duplicate or older (drop it);
 * a positive n: n records were skipped before seq (a gap: alert, accept). */
int nl_racp_client_feed(struct nl_racp_client *c, uint32_t seq);

const char *nl_racp_op_name(unsigned op);
const char *nl_racp_operator_name(unsigned oper);
const char *nl_racp_code_name(unsigned code);

#endif
