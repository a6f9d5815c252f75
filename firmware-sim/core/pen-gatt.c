/* SPDX-License-Identifier: MIT */
/*
 * The pen's GATT server: characteristic values, Pen Control Point, RACP
 * with segmented records, Live Status and change indications.
 */
#include <errno.h>
#include <string.h>

#include "needlelink/crc.h"
#include "pen-internal.h"

#define MTU_CAP 517u

static struct sim_pen *pen_of(void *pen)
{
	return pen;
}

static bool cccd_has(const struct sim_pen *p, enum sim_chr chr, uint16_t bit)
{
	return p->connected && (p->cccd[chr] & bit);
}

int pen_feature_value(struct sim_pen *p, uint8_t *buf, size_t size)
{
	struct nl_feature f = {
		.proto_major = NL_PROTO_MAJOR,
		.proto_minor = NL_PROTO_MINOR,
		.flags = (uint16_t)((p->cfg.kind == SIM_PEN_MOTORISED ? NL_FEAT_MOTORISED_DEPTH
								      : 0) |
				    (p->cfg.depth_sensing ? NL_FEAT_DEPTH_SENSING : 0) |
				    (p->cfg.speed_min_hz != p->cfg.speed_max_hz
					     ? NL_FEAT_VARIABLE_SPEED
					     : 0) |
				    NL_FEAT_CARTRIDGE_READER | (p->cfg.rtc ? NL_FEAT_RTC : 0)),
		.depth_min_um = p->cfg.depth_min_um,
		.depth_max_um = p->cfg.depth_max_um,
		.depth_step_um = p->cfg.depth_step_um,
		.speed_min_hz = p->cfg.speed_min_hz,
		.speed_max_hz = p->cfg.speed_max_hz,
		.store_capacity = sim_store_capacity(p->store),
		.store_epoch = sim_store_epoch(p->store),
		.live_rate_hz = p->live_rate_hz,
	};

	return nl_feature_encode(&f, buf, size);
}

static uint32_t status_flags(struct sim_pen *p)
{
	uint16_t used = sim_store_used(p->store), cap = sim_store_capacity(p->store);
	uint32_t f = 0;

	if (p->state == NL_PEN_STATE_LOCKED)
		f |= NL_STATUS_LOCKED;
	if (p->limit_reached)
		f |= NL_STATUS_LIMIT_REACHED;
	if (p->cart_present)
		f |= NL_STATUS_CARTRIDGE_PRESENT;
	if (p->cart_present && p->cart_reject == NL_REJECT_REUSED)
		f |= NL_STATUS_CARTRIDGE_USED;
	if (p->cart_present && p->cart_reject == NL_REJECT_EXPIRED)
		f |= NL_STATUS_CARTRIDGE_EXPIRED;
	if (p->cart_state == NL_CARTRIDGE_REJECTED)
		f |= NL_STATUS_CARTRIDGE_REJECTED;
	if (!p->clock_set)
		f |= NL_STATUS_CLOCK_NOT_SET;
	if ((uint32_t)used * 10u >= (uint32_t)cap * 9u)
		f |= NL_STATUS_STORE_NEARLY_FULL;
	if (pen_store_full(p))
		f |= NL_STATUS_STORE_FULL;
	if (p->battery <= 15)
		f |= NL_STATUS_BATTERY_LOW;
	if (p->state == NL_PEN_STATE_FAULT || p->fault_code)
		f |= NL_STATUS_FAULT;
	if (p->session_id)
		f |= NL_STATUS_SESSION_ACTIVE;
	if (p->limit_source == NL_LIMIT_SOURCE_FACTORY)
		f |= NL_STATUS_FACTORY_LIMITS;
	if (p->limit_source == NL_LIMIT_SOURCE_FALLBACK)
		f |= NL_STATUS_FALLBACK_LIMITS;
	return f;
}

static int status_encode(struct sim_pen *p, uint32_t when, uint8_t *buf, size_t size)
{
	struct nl_pen_status s = {
		.flags = status_flags(p),
		.state = (uint8_t)p->state,
		.fault_code = p->fault_code,
		.store_used = sim_store_used(p->store),
		.store_capacity = sim_store_capacity(p->store),
		.store_epoch = sim_store_epoch(p->store),
		.last_seq = sim_store_last_seq(p->store),
		.pen_time = when,
		.battery_pct = p->battery,
	};

	return nl_pen_status_encode(&s, buf, size);
}

int pen_status_value(struct sim_pen *p, uint8_t *buf, size_t size)
{
	return status_encode(p, pen_time(p), buf, size);
}

int pen_cartridge_value(struct sim_pen *p, uint8_t *buf, size_t size)
{
	struct nl_cartridge_info c;

	memset(&c, 0, sizeof(c));
	if (p->cart_present) {
		c.state = p->cart_state;
		memcpy(c.uid, p->cart.uid, NL_CARTRIDGE_UID_LEN);
		memcpy(c.lot, p->cart.lot, sizeof(c.lot));
		c.expiry = p->cart.expiry;
		c.needle_count = p->cart.needle_count;
		c.needle_length_um = p->cart.needle_length_um;
		c.first_use = p->cart_first_use;
		c.run_ms = p->cart_run_ms;
		if (c.needle_count == 0 || c.needle_count > 64)
			c.needle_count = 1; /* unreadable tag: report a placeholder */
		if (c.needle_length_um > NL_DEPTH_MAX_UM)
			c.needle_length_um = NL_DEPTH_MAX_UM;
	}
	return nl_cartridge_info_encode(&c, buf, size);
}

static int limits_encode(struct sim_pen *p, uint32_t remaining, uint8_t *buf, size_t size)
{
	struct nl_active_limits a = {
		.source = p->limit_source,
		.limits_hash = p->hash,
		.remaining_s = remaining,
		.set = p->set,
	};

	return nl_active_limits_encode(&a, buf, size);
}

int pen_limits_value(struct sim_pen *p, uint8_t *buf, size_t size)
{
	return limits_encode(p, pen_remaining_s(p), buf, size);
}

static int live_encode(struct sim_pen *p, uint8_t *buf, size_t size)
{
	struct nl_live l = {
		.state = (uint8_t)p->state,
		.flags = (uint8_t)((p->state == NL_PEN_STATE_RUNNING ? NL_LIVE_MOTOR_ON : 0) |
				   (p->clamped ? NL_LIVE_CLAMPED : 0) |
				   (p->dial_over ? NL_LIVE_DIAL_OVER_CAP : 0) |
				   (pen_cartridge_usable(p) ? NL_LIVE_CARTRIDGE : 0) |
				   (p->charging ? NL_LIVE_CHARGING : 0)),
		.zone = p->zone,
		.depth_set_um = p->depth_set,
		.depth_measured_um = p->cfg.depth_sensing ? p->depth_set : NL_DEPTH_UNKNOWN,
		.depth_cap_um = pen_cap(p),
		.speed_hz = p->state == NL_PEN_STATE_RUNNING ? p->speed : 0,
		.pass = p->pass,
		.needle_on_ms = p->session_id ? p->needle_on_ms : 0,
		.session_id = p->session_id,
		.battery_pct = p->battery,
		.sample = p->live_sample,
	};

	return nl_live_encode(&l, buf, size);
}

int sim_pen_live_value(struct sim_pen *p, uint8_t *buf, size_t size)
{
	return live_encode(p, buf, size);
}

/* ---- sending ------------------------------------------------------------ */

static int radio_indicate(struct sim_pen *p, enum sim_chr chr, const uint8_t *v, size_t len)
{
	if (!p->connected || !p->radio_ops || !p->radio_ops->indicate)
		return -ENOTCONN;
	if (!(p->cccd[chr] & SIM_CCCD_INDICATE))
		return -EINVAL;
	return p->radio_ops->indicate(p->radio, chr, v, len);
}

static int radio_notify(struct sim_pen *p, enum sim_chr chr, const uint8_t *v, size_t len)
{
	if (!p->connected || !p->radio_ops || !p->radio_ops->notify)
		return -ENOTCONN;
	if (!(p->cccd[chr] & SIM_CCCD_NOTIFY))
		return -EINVAL;
	return p->radio_ops->notify(p->radio, chr, v, len);
}

static const enum sim_chr ind_chr[PEN_IND_COUNT] = {
	[PEN_IND_STATUS] = SIM_CHR_PEN_STATUS,
	[PEN_IND_CARTRIDGE] = SIM_CHR_CARTRIDGE,
	[PEN_IND_LIMITS] = SIM_CHR_ACTIVE_LIMITS,
};

/* Indicates a value when its content changed (ignoring the clock and the
 * lifetime countdown, which change every second). One indication in flight
 * per characteristic: a newer value waits for the confirmation. */
static void flush_changes(struct sim_pen *p)
{
	for (unsigned i = 0; i < PEN_IND_COUNT; i++) {
		uint8_t cmp[NL_PDU_MAX], val[NL_PDU_MAX];
		enum sim_chr chr = ind_chr[i];
		int n, m = -1;

		if (!cccd_has(p, chr, SIM_CCCD_INDICATE) || p->ind_inflight[chr])
			continue;
		switch (i) {
		case PEN_IND_STATUS:
			n = status_encode(p, 0, cmp, sizeof(cmp));
			m = pen_status_value(p, val, sizeof(val));
			break;
		case PEN_IND_CARTRIDGE:
			n = pen_cartridge_value(p, cmp, sizeof(cmp));
			m = n;
			if (n > 0)
				memcpy(val, cmp, (size_t)n);
			break;
		default:
			n = limits_encode(p, 0, cmp, sizeof(cmp));
			m = pen_limits_value(p, val, sizeof(val));
			break;
		}
		if (n <= 0 || m <= 0)
			continue;
		if (n == p->ind_last_len[i] && memcmp(cmp, p->ind_last[i], (size_t)n) == 0)
			continue;
		if (radio_indicate(p, chr, val, (size_t)m) == 0) {
			memcpy(p->ind_last[i], cmp, (size_t)n);
			p->ind_last_len[i] = n;
			p->ind_inflight[chr] = true;
		}
	}
}

static void flush_live(struct sim_pen *p)
{
	uint8_t buf[NL_PDU_MAX];
	uint64_t now = pen_now(p), period;
	int n;

	if (!cccd_has(p, SIM_CHR_LIVE_STATUS, SIM_CCCD_NOTIFY) || now < p->next_live_ms)
		return;
	period = 1000u / (p->live_rate_hz ? p->live_rate_hz : 1u);
	p->next_live_ms = p->next_live_ms && p->next_live_ms + period > now
				  ? p->next_live_ms + period
				  : now + period;
	n = live_encode(p, buf, sizeof(buf));
	if (n > 0 && radio_notify(p, SIM_CHR_LIVE_STATUS, buf, (size_t)n) == 0)
		p->live_sample++;
}

static void racp_respond(struct sim_pen *p, uint8_t op, uint32_t count, uint8_t req_op,
			 uint8_t code)
{
	struct nl_racp_rsp rsp = {.op = op, .count = count, .req_op = req_op, .code = code};
	uint8_t buf[16];
	int n;

	n = nl_racp_rsp_encode(&rsp, buf, sizeof(buf));
	if (n > 0)
		(void)radio_indicate(p, SIM_CHR_RACP, buf, (size_t)n);
	if (op == NL_RACP_RESPONSE_CODE)
		pen_log(p, SIM_LOG_INFO, "racp %s -> %s", nl_racp_op_name(req_op),
			nl_racp_code_name(code));
	else
		pen_log(p, SIM_LOG_INFO, "racp report_number -> %u", count);
}

/* The procedure's last response; it ends when that is confirmed (9.4). */
static void racp_final(struct sim_pen *p, uint8_t op, uint32_t count, uint8_t req_op, uint8_t code)
{
	p->racp_streaming = false;
	p->racp_seg_active = false;
	p->racp_aborting = false;
	p->racp_final_sent = true;
	racp_respond(p, op, count, req_op, code);
}

/* Streams matching records as segments, a burst per flush. A segment the
 * radio refuses is kept and retried, so the rolling counter has no gap.
 * Records are found by sequence number, so an ACK_RECORDS during the
 * report (which prunes the store) cannot make it skip one. */
static void flush_racp(struct sim_pen *p)
{
	uint8_t *seg = p->seg_out;
	unsigned burst = 0;

	while (p->racp_streaming && burst < p->cfg.notify_burst) {
		int n;

		if (p->radio_ops && p->radio_ops->tx_backlog &&
		    p->radio_ops->tx_backlog(p->radio) >= SIM_TX_BACKLOG_MAX)
			return; /* the central is behind: the next flush goes on */

		if (!p->racp_seg_active) {
			unsigned used = sim_store_used(p->store), i;
			uint32_t seq = 0;

			if (p->racp_aborting) {
				pen_log(p, SIM_LOG_INFO, "racp report aborted after %u records",
					p->racp_sent);
				racp_final(p, NL_RACP_RESPONSE_CODE, 0, NL_RACP_ABORT,
					   NL_RACP_SUCCESS);
				return;
			}
			for (i = 0; i < used; i++) {
				seq = sim_store_seq_at(p->store, i);
				if (seq >= p->racp_next_seq && seq <= p->racp_until &&
				    nl_racp_match(&p->racp_req, seq, p->racp_first, p->racp_last))
					break;
			}
			if (i >= used) {
				pen_log(p, SIM_LOG_INFO, "racp report: %u records sent",
					p->racp_sent);
				racp_final(p, NL_RACP_RESPONSE_CODE, 0, NL_RACP_REPORT,
					   p->racp_sent ? NL_RACP_SUCCESS : NL_RACP_NO_RECORDS);
				return;
			}
			n = sim_store_read_at(p->store, i, p->seg_rec, sizeof(p->seg_rec));
			if (n < 0 || nl_seg_tx_start(&p->seg, p->seg_rec, (size_t)n, p->mtu) < 0) {
				pen_log(p, SIM_LOG_ERR, "racp: record %u unreadable", seq);
				racp_final(p, NL_RACP_RESPONSE_CODE, 0, NL_RACP_REPORT,
					   NL_RACP_NOT_COMPLETED);
				return;
			}
			p->racp_next_seq = seq + 1;
			p->racp_seg_active = true;
		}
		{
			/* Peek the next segment on a copy; commit only once sent. */
			struct nl_seg_tx t = p->seg;
			int r;

			n = nl_seg_tx_next(&t, seg, sizeof(p->seg_out));
			if (n == 0) {
				p->racp_seg_active = false;
				p->racp_sent++;
				continue;
			}
			if (n < 0) {
				racp_final(p, NL_RACP_RESPONSE_CODE, 0, NL_RACP_REPORT,
					   NL_RACP_NOT_COMPLETED);
				return;
			}
			r = radio_notify(p, SIM_CHR_RECORD, seg, (size_t)n);
			if (r == -ENOTCONN || r == -EINVAL) {
				racp_final(p, NL_RACP_RESPONSE_CODE, 0, NL_RACP_REPORT,
					   NL_RACP_NOT_COMPLETED);
				return;
			}
			if (r < 0)
				return; /* radio queue full: retry on the next flush */
			p->seg = t;
			burst++;
		}
	}
}

void pen_gatt_flush(struct sim_pen *p)
{
	if (!p->powered || !p->connected)
		return;
	flush_racp(p);
	flush_changes(p);
	flush_live(p);
}

void pen_gatt_reset(struct sim_pen *p)
{
	memset(p->cccd, 0, sizeof(p->cccd));
	memset(p->ind_inflight, 0, sizeof(p->ind_inflight));
	memset(p->ind_last_len, 0, sizeof(p->ind_last_len));
	p->cp_pending = false;
	p->racp_streaming = false;
	p->racp_seg_active = false;
	p->racp_aborting = false;
	p->racp_final_sent = false;
	nl_racp_server_end(&p->racp);
	nl_seg_tx_init(&p->seg);
	p->next_live_ms = 0;
}

/* ---- server ops --------------------------------------------------------- */

static void gatt_connected(void *pen, uint16_t mtu)
{
	struct sim_pen *p = pen_of(pen);

	if (!p->powered)
		return;
	pen_gatt_reset(p);
	p->connected = true;
	p->mtu = mtu < NL_ATT_MTU_MIN ? NL_ATT_MTU_MIN : mtu > MTU_CAP ? MTU_CAP : mtu;
	pen_log(p, SIM_LOG_NOTICE, "central connected (MTU %u)", p->mtu);
}

static void gatt_disconnected(void *pen)
{
	struct sim_pen *p = pen_of(pen);

	if (!p->connected)
		return;
	pen_advance(p);
	p->connected = false;
	pen_gatt_reset(p);
	p->live_rate_hz = p->cfg.live_rate_hz; /* SET_LIVE_RATE lasts one connection */
	pen_log(p, SIM_LOG_NOTICE, "central disconnected; pen continues on its own limits");
}

static int copy_str(const char *s, uint8_t *buf, size_t size)
{
	size_t n = strlen(s);

	if (n > size)
		n = size;
	memcpy(buf, s, n);
	return (int)n;
}

static int gatt_read(void *pen, enum sim_chr chr, uint8_t *buf, size_t size)
{
	struct sim_pen *p = pen_of(pen);
	int n = -0x0E; /* unlikely error */

	if (!p->powered)
		return -0x0E;
	pen_advance(p);
	switch (chr) {
	case SIM_CHR_FEATURE:
		n = pen_feature_value(p, buf, size);
		break;
	case SIM_CHR_LIVE_STATUS:
		n = live_encode(p, buf, size);
		break;
	case SIM_CHR_PEN_STATUS:
		n = pen_status_value(p, buf, size);
		break;
	case SIM_CHR_CARTRIDGE:
		n = pen_cartridge_value(p, buf, size);
		break;
	case SIM_CHR_ACTIVE_LIMITS:
		n = pen_limits_value(p, buf, size);
		break;
	case SIM_CHR_DIS_MODEL:
		return copy_str(p->cfg.model, buf, size);
	case SIM_CHR_DIS_SERIAL:
		return copy_str(p->cfg.serial, buf, size);
	case SIM_CHR_DIS_FIRMWARE:
		return copy_str(p->cfg.firmware, buf, size);
	case SIM_CHR_DIS_MANUFACTURER:
		return copy_str(p->cfg.manufacturer, buf, size);
	case SIM_CHR_BATTERY_LEVEL:
		if (size < 1)
			return -0x0D;
		buf[0] = p->battery;
		return 1;
	case SIM_CHR_RECORD:
	case SIM_CHR_RACP:
	case SIM_CHR_PEN_CP:
	case SIM_CHR_COUNT:
		return -0x02; /* read not permitted */
	}
	return n < 0 ? -0x0E : n;
}

static int write_cp(struct sim_pen *p, const uint8_t *val, size_t len)
{
	struct nl_cp_req req;
	struct nl_cp_rsp rsp = {0};
	uint8_t buf[16];
	uint32_t value = 0;
	int r, n;

	if (!(p->cccd[SIM_CHR_PEN_CP] & SIM_CCCD_INDICATE))
		return -NL_ATT_CCCD_IMPROPER;
	if (p->cp_pending)
		return -NL_ATT_PROC_IN_PROGRESS;
	if (len == 0 || len > NL_PDU_MAX)
		return -NL_ATT_WRITE_REJECTED;
	r = nl_cp_req_decode(val, len, &req);
	rsp.req_op = len ? val[0] : 0;
	if (r < 0) {
		rsp.result = nl_cp_result_for_error(r);
		pen_log(p, SIM_LOG_WARNING, "pen cp: undecodable request (%s)", nl_strerror(r));
	} else {
		rsp.result = pen_cp_execute(p, &req, &value);
		rsp.value = rsp.result == NL_CP_SUCCESS ? value : 0;
		pen_log(p, rsp.result == NL_CP_SUCCESS ? SIM_LOG_INFO : SIM_LOG_WARNING,
			"pen cp %s -> %s (value %u)", nl_cp_op_name(req.op),
			nl_cp_result_name(rsp.result), rsp.value);
	}
	n = nl_cp_rsp_encode(&rsp, buf, sizeof(buf));
	if (n > 0 && radio_indicate(p, SIM_CHR_PEN_CP, buf, (size_t)n) == 0)
		p->cp_pending = true;
	pen_gatt_flush(p);
	return 0;
}

/* The RESPONSE_CODE for a request that does not decode, in the order of
 * protocol 9.2. */
static uint8_t racp_code_for(const uint8_t *val, size_t len)
{
	uint8_t op, oper;
	bool operand;

	if (len < 4 || nl_pdu_check_crc(val, len) < 0)
		return NL_RACP_INVALID_OPERAND;
	op = val[0];
	oper = val[1];
	if (op < NL_RACP_REPORT || op > NL_RACP_REPORT_NUMBER || op == NL_RACP_DELETE)
		return NL_RACP_OP_NOT_SUPPORTED;
	if (oper >= NL_RACP_OPERATOR_END)
		return NL_RACP_OPERATOR_NOT_SUPPORTED;
	if ((op == NL_RACP_ABORT) != (oper == NL_RACP_NULL))
		return NL_RACP_INVALID_OPERATOR;
	operand = oper == NL_RACP_LE || oper == NL_RACP_GE || oper == NL_RACP_RANGE;
	/* Only a filter type that is there can be unsupported; an operand
	 * missing altogether (opcode, operator, CRC) is INVALID_OPERAND (9.1). */
	if (operand && len > 4 && val[2] != NL_RACP_FILTER_SEQ)
		return NL_RACP_OPERAND_NOT_SUPPORTED;
	return NL_RACP_INVALID_OPERAND;
}

static int write_racp(struct sim_pen *p, const uint8_t *val, size_t len)
{
	struct nl_racp_req req;
	unsigned used, count = 0;
	bool ind = p->cccd[SIM_CHR_RACP] & SIM_CCCD_INDICATE;
	int r;

	/* 2.5: CCCD, procedure in progress, then length. */
	if (!ind ||
	    (len && val[0] == NL_RACP_REPORT && !(p->cccd[SIM_CHR_RECORD] & SIM_CCCD_NOTIFY)))
		return -NL_ATT_CCCD_IMPROPER;
	if (p->racp.busy && !(len && val[0] == NL_RACP_ABORT))
		return -NL_ATT_PROC_IN_PROGRESS;
	if (len == 0 || len > NL_PDU_MAX)
		return -NL_ATT_WRITE_REJECTED;
	r = nl_racp_req_decode(val, len, &req);
	if (r < 0) {
		/* answered like any procedure: busy until confirmed. A DELETE
		 * that does not decode gets the code of 9.2 too: a truncated
		 * one or a bad CRC is INVALID_OPERAND (step 1), anything else
		 * OP_NOT_SUPPORTED (step 2). */
		p->racp.busy = true;
		p->racp_final_sent = true;
		racp_respond(p, NL_RACP_RESPONSE_CODE, 0, val[0], racp_code_for(val, len));
		return 0;
	}
	if (req.op == NL_RACP_ABORT) {
		if (p->racp_streaming && !p->racp_aborting) {
			/* finish the record in flight, then answer (9.3); a record
			 * none of whose segments went out is not in flight */
			p->racp_aborting = true;
			if (p->racp_seg_active && p->seg.off == 0)
				p->racp_seg_active = false;
			pen_gatt_flush(p);
		} else {
			p->racp.busy = true;
			p->racp_final_sent = true;
			racp_respond(p, NL_RACP_RESPONSE_CODE, 0, NL_RACP_ABORT,
				     NL_RACP_ABORT_FAILED);
		}
		return 0;
	}
	r = nl_racp_server_begin(&p->racp, &req, ind, p->cccd[SIM_CHR_RECORD] & SIM_CCCD_NOTIFY);
	if (r > 0)
		return -r;
	used = sim_store_used(p->store);
	p->racp_first = used ? sim_store_seq_at(p->store, 0) : 0;
	p->racp_last = used ? sim_store_seq_at(p->store, used - 1) : 0;
	switch ((enum nl_racp_op)req.op) {
	case NL_RACP_REPORT:
	case NL_RACP_REPORT_NUMBER:
		for (unsigned i = 0; i < used; i++)
			if (nl_racp_match(&req, sim_store_seq_at(p->store, i), p->racp_first,
					  p->racp_last))
				count++;
		if (req.op == NL_RACP_REPORT_NUMBER) {
			racp_final(p, NL_RACP_NUMBER_RESPONSE, count, 0, 0);
		} else if (count == 0) {
			racp_final(p, NL_RACP_RESPONSE_CODE, 0, NL_RACP_REPORT, NL_RACP_NO_RECORDS);
		} else {
			pen_log(p, SIM_LOG_INFO, "racp report %s: %u records",
				nl_racp_operator_name(req.oper), count);
			p->racp_req = req;
			p->racp_streaming = true;
			p->racp_next_seq = 0;
			p->racp_until = p->racp_last; /* later records wait for the next REPORT */
			p->racp_sent = 0;
			p->racp_seg_active = false;
			p->racp_aborting = false;
			p->racp_final_sent = false;
			pen_gatt_flush(p);
		}
		break;
	case NL_RACP_DELETE:
	case NL_RACP_ABORT:
	case NL_RACP_NUMBER_RESPONSE:
	case NL_RACP_RESPONSE_CODE:
	case NL_RACP_OP_END:
		/* Records go only by ACK_RECORDS on the Pen CP. */
		racp_final(p, NL_RACP_RESPONSE_CODE, 0, req.op, NL_RACP_OP_NOT_SUPPORTED);
		break;
	}
	return 0;
}

static int gatt_write(void *pen, enum sim_chr chr, const uint8_t *val, size_t len)
{
	struct sim_pen *p = pen_of(pen);

	if (!p->powered)
		return -0x0E;
	switch (chr) {
	case SIM_CHR_PEN_CP:
		return write_cp(p, val, len);
	case SIM_CHR_RACP:
		return write_racp(p, val, len);
	case SIM_CHR_FEATURE:
	case SIM_CHR_LIVE_STATUS:
	case SIM_CHR_RECORD:
	case SIM_CHR_ACTIVE_LIMITS:
	case SIM_CHR_PEN_STATUS:
	case SIM_CHR_CARTRIDGE:
	case SIM_CHR_DIS_MODEL:
	case SIM_CHR_DIS_SERIAL:
	case SIM_CHR_DIS_FIRMWARE:
	case SIM_CHR_DIS_MANUFACTURER:
	case SIM_CHR_BATTERY_LEVEL:
	case SIM_CHR_COUNT:
		break;
	}
	return -0x03; /* write not permitted */
}

static void gatt_cccd(void *pen, enum sim_chr chr, uint16_t value)
{
	struct sim_pen *p = pen_of(pen);

	if (!p->powered || chr >= SIM_CHR_COUNT)
		return;
	p->cccd[chr] = value;
	if (chr == SIM_CHR_RECORD && (value & SIM_CCCD_NOTIFY))
		nl_seg_tx_init(&p->seg); /* the counter restarts on subscription */
	if (chr == SIM_CHR_RECORD && !(value & SIM_CCCD_NOTIFY) && p->racp_streaming)
		racp_final(p, NL_RACP_RESPONSE_CODE, 0, NL_RACP_REPORT, NL_RACP_NOT_COMPLETED);
	if (chr == SIM_CHR_RACP && !(value & SIM_CCCD_INDICATE)) {
		/* 2.4: the pending response is discarded, the procedure ends */
		p->racp_streaming = p->racp_seg_active = p->racp_aborting = false;
		p->racp_final_sent = false;
		nl_racp_server_end(&p->racp);
	}
	if (chr == SIM_CHR_PEN_CP && !(value & SIM_CCCD_INDICATE))
		p->cp_pending = false;
	if (chr == SIM_CHR_LIVE_STATUS)
		p->next_live_ms = 0;
	for (unsigned i = 0; i < PEN_IND_COUNT; i++)
		if (ind_chr[i] == chr) {
			/* A fresh subscriber gets the current value once. */
			p->ind_last_len[i] = 0;
			p->ind_inflight[chr] = false;
		}
	pen_gatt_flush(p);
}

static void gatt_confirmed(void *pen, enum sim_chr chr)
{
	struct sim_pen *p = pen_of(pen);

	if (chr >= SIM_CHR_COUNT)
		return;
	if (chr == SIM_CHR_PEN_CP)
		p->cp_pending = false;
	if (chr == SIM_CHR_RACP && p->racp_final_sent) {
		p->racp_final_sent = false;
		nl_racp_server_end(&p->racp);
	}
	p->ind_inflight[chr] = false;
	pen_gatt_flush(p);
}

static const struct sim_gatt_server_ops gatt_ops = {
	.connected = gatt_connected,
	.disconnected = gatt_disconnected,
	.read = gatt_read,
	.write = gatt_write,
	.cccd = gatt_cccd,
	.confirmed = gatt_confirmed,
};

const struct sim_gatt_server_ops *sim_pen_gatt_ops(void)
{
	return &gatt_ops;
}
