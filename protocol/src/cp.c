/* SPDX-License-Identifier: MIT */
/* Pen Control Point (cp.h). */
#include <string.h>

#include "needlelink/cp.h"
#include "needlelink/record.h"
#include "nl-internal.h"

#define CP_RSP_BODY 7u

static bool op_known(unsigned op)
{
	return op >= NL_CP_SET_LIMITS && op < NL_CP_OP_END;
}

static bool result_known(unsigned r)
{
	return r >= NL_CP_SUCCESS && r < NL_CP_RESULT_END;
}

static int req_check(const struct nl_cp_req *r)
{
	switch ((enum nl_cp_op)r->op) {
	case NL_CP_SET_LIMITS:
		return nl_limit_set_check(&r->u.limits) < 0 ? -ERANGE : 0;
	case NL_CP_AUTHORISE:
		if (r->u.authorise.session_id == 0)
			return -ERANGE;
		if (r->u.authorise.lifetime_s < 1 || r->u.authorise.lifetime_s > NL_LIFETIME_MAX_S)
			return -ERANGE;
		return 0;
	case NL_CP_STOP_SESSION:
		return 0;
	case NL_CP_SET_ZONE:
		return nl_zone_valid(r->u.zone) ? 0 : -ERANGE;
	case NL_CP_LOCK:
	case NL_CP_UNLOCK:
		return r->u.reason < NL_LOCK_REASON_END ? 0 : -ERANGE;
	case NL_CP_ACK_RECORDS:
	case NL_CP_SET_TIME:
		return 0;
	case NL_CP_CLAMP:
		if (r->u.clamp.zone >= NL_ZONE_COUNT)
			return -ERANGE;
		if (r->u.clamp.cap_um < 1 || r->u.clamp.cap_um > NL_DEPTH_MAX_UM)
			return -ERANGE;
		return 0;
	case NL_CP_SET_LIVE_RATE:
		if (r->u.live_rate_hz < NL_LIVE_RATE_MIN_HZ || r->u.live_rate_hz > NL_LIVE_RATE_MAX_HZ)
			return -ERANGE;
		return 0;
	case NL_CP_OP_END:
	case NL_CP_RESPONSE:
		break;
	}
	return -ENOMSG;
}

int nl_cp_req_encode(const struct nl_cp_req *r, uint8_t *buf, size_t size)
{
	struct nl_wr w = nl_wr_init(buf, size);
	int e = req_check(r);

	if (e < 0)
		return e;
	nl_wr_u8(&w, r->op);
	switch ((enum nl_cp_op)r->op) {
	case NL_CP_SET_LIMITS:
		nl_limit_set_put(&w, &r->u.limits);
		break;
	case NL_CP_AUTHORISE:
		nl_wr_u32(&w, r->u.authorise.session_id);
		nl_wr_u32(&w, r->u.authorise.limits_hash);
		nl_wr_u32(&w, r->u.authorise.lifetime_s);
		break;
	case NL_CP_STOP_SESSION:
		break;
	case NL_CP_SET_ZONE:
		nl_wr_u8(&w, r->u.zone);
		break;
	case NL_CP_LOCK:
	case NL_CP_UNLOCK:
		nl_wr_u8(&w, r->u.reason);
		break;
	case NL_CP_ACK_RECORDS:
		nl_wr_u32(&w, r->u.ack.store_epoch);
		nl_wr_u32(&w, r->u.ack.seq);
		break;
	case NL_CP_SET_TIME:
		nl_wr_u32(&w, r->u.pen_time);
		break;
	case NL_CP_CLAMP:
		nl_wr_u8(&w, r->u.clamp.zone);
		nl_wr_u16(&w, r->u.clamp.cap_um);
		break;
	case NL_CP_SET_LIVE_RATE:
		nl_wr_u8(&w, r->u.live_rate_hz);
		break;
	case NL_CP_OP_END:
	case NL_CP_RESPONSE:
		return -ENOMSG;
	}
	return nl_pdu_close(&w);
}

int nl_cp_req_decode(const uint8_t *buf, size_t len, struct nl_cp_req *ret)
{
	struct nl_cp_req r;
	struct nl_rd rd;
	int e = nl_pdu_open(buf, len, &rd);

	if (e < 0)
		return e;
	memset(&r, 0, sizeof(r));
	r.op = nl_rd_u8(&rd);
	if (rd.err)
		return -ENODATA;
	switch ((enum nl_cp_op)r.op) {
	case NL_CP_SET_LIMITS:
		e = nl_limit_set_get(&rd, &r.u.limits);
		if (e < 0)
			return e;
		break;
	case NL_CP_AUTHORISE:
		r.u.authorise.session_id = nl_rd_u32(&rd);
		r.u.authorise.limits_hash = nl_rd_u32(&rd);
		r.u.authorise.lifetime_s = nl_rd_u32(&rd);
		break;
	case NL_CP_STOP_SESSION:
		break;
	case NL_CP_SET_ZONE:
		r.u.zone = nl_rd_u8(&rd);
		break;
	case NL_CP_LOCK:
	case NL_CP_UNLOCK:
		r.u.reason = nl_rd_u8(&rd);
		break;
	case NL_CP_ACK_RECORDS:
		r.u.ack.store_epoch = nl_rd_u32(&rd);
		r.u.ack.seq = nl_rd_u32(&rd);
		break;
	case NL_CP_SET_TIME:
		r.u.pen_time = nl_rd_u32(&rd);
		break;
	case NL_CP_CLAMP:
		r.u.clamp.zone = nl_rd_u8(&rd);
		r.u.clamp.cap_um = nl_rd_u16(&rd);
		break;
	case NL_CP_SET_LIVE_RATE:
		r.u.live_rate_hz = nl_rd_u8(&rd);
		break;
	case NL_CP_OP_END:
	case NL_CP_RESPONSE:
	default:
		return -ENOMSG;
	}
	if (rd.err)
		return -ENODATA;
	/* Requests are exact length (docs/protocol.md 8.2): a collector writes
	 * the layout of the pen's minor version, so extra bytes are invalid. */
	if (nl_rd_left(&rd) != 0)
		return -ERANGE;
	e = req_check(&r);
	if (e < 0)
		return e;
	*ret = r;
	return 0;
}

/* req_op echoes the first byte of the write whatever it was, so an opcode
 * outside the table is valid only in the two answers a pen gives before it
 * knows the opcode: OP_NOT_SUPPORTED, and INVALID_PARAMETER for a bad CRC
 * (docs/protocol.md 8.1, 8.2). Any other result names a real request. */
static int rsp_check(const struct nl_cp_rsp *r)
{
	if (!result_known(r->result))
		return -ERANGE;
	if (!op_known(r->req_op) && r->result != NL_CP_OP_NOT_SUPPORTED &&
	    r->result != NL_CP_INVALID_PARAMETER)
		return -ERANGE;
	/* The value means something only on success (docs/protocol.md 8.1). */
	if (r->result != NL_CP_SUCCESS && r->value != 0)
		return -ERANGE;
	return 0;
}

int nl_cp_rsp_encode(const struct nl_cp_rsp *r, uint8_t *buf, size_t size)
{
	struct nl_wr w = nl_wr_init(buf, size);

	if (rsp_check(r) < 0)
		return -ERANGE;
	nl_wr_u8(&w, NL_CP_RESPONSE);
	nl_wr_u8(&w, r->req_op);
	nl_wr_u8(&w, r->result);
	nl_wr_u32(&w, r->value);
	return nl_pdu_close(&w);
}

int nl_cp_rsp_decode(const uint8_t *buf, size_t len, struct nl_cp_rsp *ret)
{
	struct nl_cp_rsp r;
	struct nl_rd rd;
	uint8_t code;
	int e = nl_pdu_open(buf, len, &rd);

	if (e < 0)
		return e;
	code = nl_rd_u8(&rd);
	if (rd.err)
		return -ENODATA;
	if (code != NL_CP_RESPONSE)
		return -ENOMSG;
	r.req_op = nl_rd_u8(&rd);
	r.result = nl_rd_u8(&rd);
	r.value = nl_rd_u32(&rd);
	if (rd.err)
		return -ENODATA;
	e = rsp_check(&r);
	if (e < 0)
		return e;
	*ret = r;
	return 0;
}

/*
 * State rule shared by pen and gateway: the table of docs/protocol.md 8.5.
 * OFF answers nothing. LOCK and housekeeping (ACK_RECORDS, SET_TIME,
 * SET_LIVE_RATE) work in every powered state. A new limit set or
 * authorisation only from IDLE, so the set in force never changes under an
 * open session; LOCKED refuses those with NL_CP_LOCKED. Zones change only
 * with the motor stopped. CLAMP needs a session (not IDLE, not FAULT);
 * UNLOCK is answered where a lock (of the pen or of a zone) can be in force.
 */
enum nl_cp_result nl_cp_allowed(enum nl_pen_state state, unsigned op)
{
	if (!op_known(op))
		return NL_CP_OP_NOT_SUPPORTED;
	if (state == NL_PEN_STATE_OFF || state >= NL_PEN_STATE_COUNT)
		return NL_CP_INVALID_STATE;

	switch ((enum nl_cp_op)op) {
	case NL_CP_LOCK:
	case NL_CP_ACK_RECORDS:
	case NL_CP_SET_TIME:
	case NL_CP_SET_LIVE_RATE:
		return NL_CP_SUCCESS;
	case NL_CP_CLAMP:
		if (state == NL_PEN_STATE_IDLE || state == NL_PEN_STATE_FAULT)
			return NL_CP_INVALID_STATE;
		return NL_CP_SUCCESS;
	case NL_CP_UNLOCK:
		if (state == NL_PEN_STATE_LOCKED || state == NL_PEN_STATE_ARMED ||
		    state == NL_PEN_STATE_PAUSED)
			return NL_CP_SUCCESS;
		return NL_CP_INVALID_STATE;
	case NL_CP_SET_LIMITS:
	case NL_CP_AUTHORISE:
		if (state == NL_PEN_STATE_LOCKED)
			return NL_CP_LOCKED;
		return state == NL_PEN_STATE_IDLE ? NL_CP_SUCCESS : NL_CP_INVALID_STATE;
	case NL_CP_STOP_SESSION:
		/* A locked or faulted pen may still hold an open session. */
		return state == NL_PEN_STATE_IDLE ? NL_CP_INVALID_STATE : NL_CP_SUCCESS;
	case NL_CP_SET_ZONE:
		if (state == NL_PEN_STATE_LOCKED)
			return NL_CP_LOCKED;
		if (state == NL_PEN_STATE_IDLE || state == NL_PEN_STATE_ARMED ||
		    state == NL_PEN_STATE_PAUSED)
			return NL_CP_SUCCESS;
		return NL_CP_INVALID_STATE;
	case NL_CP_OP_END:
	case NL_CP_RESPONSE:
		break;
	}
	return NL_CP_OP_NOT_SUPPORTED;
}

enum nl_cp_result nl_cp_result_for_error(int err)
{
	if (err >= 0)
		return NL_CP_SUCCESS;
	return err == -ENOMSG ? NL_CP_OP_NOT_SUPPORTED : NL_CP_INVALID_PARAMETER;
}

enum nl_cp_action nl_cp_action_for(enum nl_cp_result result)
{
	switch (result) {
	case NL_CP_SUCCESS:
		return NL_CP_ACTION_DONE;
	case NL_CP_FAILED:
		return NL_CP_ACTION_RETRY;
	/* The pen is not where the collector thought: re-read, then decide
	 * (store full: collect and ack records; hash mismatch: re-send the
	 * set; epoch: re-read the store). */
	case NL_CP_INVALID_STATE:
	case NL_CP_HASH_MISMATCH:
	case NL_CP_LOCKED:
	case NL_CP_STORE_FULL:
	case NL_CP_EPOCH_MISMATCH:
	case NL_CP_NO_CARTRIDGE:
		return NL_CP_ACTION_RESYNC;
	/* The request itself is wrong: sending it again cannot help. */
	case NL_CP_OP_NOT_SUPPORTED:
	case NL_CP_INVALID_PARAMETER:
	case NL_CP_ABOVE_FACTORY:
	case NL_CP_RESULT_END:
		break;
	}
	return NL_CP_ACTION_GIVE_UP;
}

const char *nl_cp_op_name(unsigned op)
{
	static const char *const n[] = {
		[NL_CP_SET_LIMITS] = "set_limits",
		[NL_CP_AUTHORISE] = "authorise",
		[NL_CP_STOP_SESSION] = "stop_session",
		[NL_CP_SET_ZONE] = "set_zone",
		[NL_CP_LOCK] = "lock",
		[NL_CP_UNLOCK] = "unlock",
		[NL_CP_ACK_RECORDS] = "ack_records",
		[NL_CP_SET_TIME] = "set_time",
		[NL_CP_CLAMP] = "clamp",
		[NL_CP_SET_LIVE_RATE] = "set_live_rate",
	};
	if (op == NL_CP_RESPONSE)
		return "response";
	return op < sizeof(n) / sizeof(n[0]) ? n[op] : NULL;
}

const char *nl_cp_result_name(unsigned result)
{
	static const char *const n[] = {
		[NL_CP_SUCCESS] = "success",
		[NL_CP_OP_NOT_SUPPORTED] = "op_not_supported",
		[NL_CP_INVALID_PARAMETER] = "invalid_parameter",
		[NL_CP_FAILED] = "failed",
		[NL_CP_INVALID_STATE] = "invalid_state",
		[NL_CP_HASH_MISMATCH] = "hash_mismatch",
		[NL_CP_ABOVE_FACTORY] = "above_factory",
		[NL_CP_LOCKED] = "locked",
		[NL_CP_STORE_FULL] = "store_full",
		[NL_CP_EPOCH_MISMATCH] = "epoch_mismatch",
		[NL_CP_NO_CARTRIDGE] = "no_cartridge",
	};
	return result < sizeof(n) / sizeof(n[0]) ? n[result] : NULL;
}

int nl_cp_client_begin(struct nl_cp_client *c, uint8_t op)
{
	if (c->pending)
		return -EBUSY;
	c->pending = true;
	c->op = op;
	return 0;
}

int nl_cp_client_complete(struct nl_cp_client *c, const struct nl_cp_rsp *rsp)
{
	if (!c->pending || rsp->req_op != c->op)
		return -EPROTO;
	c->pending = false;
	c->op = 0;
	return 0;
}

void nl_cp_client_reset(struct nl_cp_client *c)
{
	c->pending = false;
	c->op = 0;
}
