/* SPDX-License-Identifier: MIT */
/*
 * Pen Control Point (write with response + indicate).
 *
 * Request:  u8 opcode, parameters, CRC.
 * Response (indication): u8 0x80, u8 request opcode, u8 result, u32 value, CRC.
 *
 * Parameters per opcode:
 *   SET_LIMITS     limit set (pdu.h)                 value: hash of the set
 *   AUTHORISE      u32 session_id (>0), u32 limits_hash, u32 lifetime_s
 *                                                    value: session_id
 *   STOP_SESSION   -                                 value: session_id
 *   SET_ZONE       u8 zone (1..)                     value: zone
 *   LOCK           u8 reason (enum nl_lock_reason)   value: 0
 *   UNLOCK         u8 reason                         value: 0
 *   ACK_RECORDS    u32 store_epoch, u32 seq          value: records still stored
 *   SET_TIME       u32 pen_time                      value: previous pen time
 *   CLAMP          u8 zone (0: every zone), u16 cap_um (1..NL_DEPTH_MAX_UM)
 *                                                    value: new limits_hash
 *   SET_LIVE_RATE  u8 hz (1..20)                     value: hz
 *
 * One request at a time: a write while a response is pending fails with the
 * ATT error NL_ATT_PROC_IN_PROGRESS; a write before the Pen CP CCCD enables
 * indications fails with NL_ATT_CCCD_IMPROPER.
 */
#ifndef NEEDLELINK_CP_H
#define NEEDLELINK_CP_H

#include "needlelink/common.h"
#include "needlelink/pdu.h"

enum nl_cp_op {
	NL_CP_SET_LIMITS = 0x01,
	NL_CP_AUTHORISE = 0x02,
	NL_CP_STOP_SESSION = 0x03,
	NL_CP_SET_ZONE = 0x04,
	NL_CP_LOCK = 0x05,
	NL_CP_UNLOCK = 0x06,
	NL_CP_ACK_RECORDS = 0x07,
	NL_CP_SET_TIME = 0x08,
	NL_CP_CLAMP = 0x09,
	NL_CP_SET_LIVE_RATE = 0x0A,
	NL_CP_OP_END,
	NL_CP_RESPONSE = 0x80,
};

enum nl_cp_result {
	NL_CP_SUCCESS = 0x01,
	NL_CP_OP_NOT_SUPPORTED = 0x02,
	NL_CP_INVALID_PARAMETER = 0x03,
	NL_CP_FAILED = 0x04,
	NL_CP_INVALID_STATE = 0x05,   /* not allowed in the pen's current state */
	NL_CP_HASH_MISMATCH = 0x06,   /* AUTHORISE hash is not the active set's */
	NL_CP_ABOVE_FACTORY = 0x07,   /* a cap above the factory limits: nothing applied */
	NL_CP_LOCKED = 0x08,
	NL_CP_STORE_FULL = 0x09,      /* no session may start until records are acked */
	NL_CP_EPOCH_MISMATCH = 0x0A,  /* ACK_RECORDS for another store epoch */
	NL_CP_NO_CARTRIDGE = 0x0B,    /* AUTHORISE without a usable cartridge */
	NL_CP_RESULT_END
};

struct nl_cp_req {
	uint8_t op;
	union {
		struct nl_limit_set limits;
		struct {
			uint32_t session_id;
			uint32_t limits_hash;
			uint32_t lifetime_s;
		} authorise;
		uint8_t zone;
		uint8_t reason; /* LOCK, UNLOCK */
		struct {
			uint32_t store_epoch;
			uint32_t seq;
		} ack;
		uint32_t pen_time;
		struct {
			uint8_t zone;
			uint16_t cap_um;
		} clamp;
		uint8_t live_rate_hz;
	} u;
};

struct nl_cp_rsp {
	uint8_t req_op;
	uint8_t result;
	uint32_t value;
};

int nl_cp_req_encode(const struct nl_cp_req *r, uint8_t *buf, size_t size);
/* -ENOMSG for an unknown opcode, -ERANGE for a parameter out of range. */
int nl_cp_req_decode(const uint8_t *buf, size_t len, struct nl_cp_req *ret);
int nl_cp_rsp_encode(const struct nl_cp_rsp *r, uint8_t *buf, size_t size);
int nl_cp_rsp_decode(const uint8_t *buf, size_t len, struct nl_cp_rsp *ret);

/* The state rule both sides share: may the pen execute op in state?
 * Returns NL_CP_SUCCESS or the result code the pen answers
 * (NL_CP_INVALID_STATE, NL_CP_LOCKED, NL_CP_OP_NOT_SUPPORTED). */
enum nl_cp_result nl_cp_allowed(enum nl_pen_state state, unsigned op);

/* The result the pen answers when a request does not decode:
 * -ENOMSG -> OP_NOT_SUPPORTED, -ERANGE -> INVALID_PARAMETER, others
 * (truncated, bad CRC) -> INVALID_PARAMETER. */
enum nl_cp_result nl_cp_result_for_error(int err);

/* What a collector should do on a result (docs/protocol.md table). */
enum nl_cp_action {
	NL_CP_ACTION_DONE = 0,      /* success */
	NL_CP_ACTION_RETRY = 1,     /* transient: retry after backoff */
	NL_CP_ACTION_RESYNC = 2,    /* re-read pen state, then decide */
	NL_CP_ACTION_GIVE_UP = 3,   /* report failure, never retry as is */
};
enum nl_cp_action nl_cp_action_for(enum nl_cp_result result);

const char *nl_cp_op_name(unsigned op);         /* "set_limits", ... */
const char *nl_cp_result_name(unsigned result); /* "success", ... */

/* Client-side matcher: one outstanding request per pen. */
struct nl_cp_client {
	bool pending;
	uint8_t op;
};
/* Marks op outstanding; -EBUSY when one is pending already. */
int nl_cp_client_begin(struct nl_cp_client *c, uint8_t op);
/* Matches a response to the outstanding request: 0 and clears it,
 * -EPROTO when none is pending or it answers another opcode. */
int nl_cp_client_complete(struct nl_cp_client *c, const struct nl_cp_rsp *rsp);
void nl_cp_client_reset(struct nl_cp_client *c);

#endif
