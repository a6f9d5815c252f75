/* SPDX-License-Identifier: MIT */
/*
 * The pen core through its GATT server ops and operator actions: state
 * transitions and the Pen CP state rules, depth clamp and dial hold, pass
 * and needle-on limits, fallback at the end of the lifetime, cartridge
 * lockout, store full, RACP, Live Status and change indications.
 */
#include <errno.h>
#include <string.h>

#include "needlelink/cp.h"
#include "needlelink/racp.h"
#include "needlelink/seg.h"
#include "sim-test.h"

struct rig {
	struct mem_platform m;
	struct sim_pen *pen;
	struct fake_radio r;
	struct sim_pen_config cfg;
	unsigned cart_serial;
};

#define MAX_RECS 512

static struct nl_record recs[MAX_RECS];

static void rig_start(struct rig *g, enum sim_pen_kind kind, uint16_t capacity)
{
	memset(g, 0, sizeof(*g));
	mem_platform_init(&g->m);
	sim_pen_config_default(&g->cfg);
	g->cfg.kind = kind;
	g->cfg.store_capacity = capacity;
	g->cfg.clock_start = 800000000; /* 2025 */
	CHECK_EQ(sim_pen_new(&g->pen, &g->cfg, &g->m.plat), 0);
	fake_radio_init(&g->r, g->pen);
	CHECK_EQ(sim_pen_power_on(g->pen), 0);
	fake_radio_connect(&g->r, 23);
	fake_radio_confirm_all(&g->r);
}

static void mem_free_only(struct rig *g)
{
	mem_platform_free(&g->m);
}

static void rig_stop(struct rig *g)
{
	sim_pen_free(g->pen);
	fake_radio_free(&g->r);
	mem_platform_free(&g->m);
}

static enum nl_pen_state state(struct rig *g)
{
	struct sim_pen_info i;

	sim_pen_get_info(g->pen, &i);
	return i.state;
}

static struct sim_pen_info info(struct rig *g)
{
	struct sim_pen_info i;

	sim_pen_get_info(g->pen, &i);
	return i;
}

/* Advances scenario time in 50 ms ticks. */
static void run_ms(struct rig *g, uint64_t ms)
{
	for (uint64_t t = 0; t < ms; t += 50) {
		g->m.now += ms - t < 50 ? ms - t : 50;
		sim_pen_tick(g->pen);
		fake_radio_confirm_all(&g->r);
	}
}

static struct sim_cartridge cartridge(struct rig *g)
{
	struct sim_cartridge c = {
		.needle_count = 12, .needle_length_um = 2500, .expiry = 900000000};

	g->cart_serial++;
	c.uid[0] = 0xCA;
	c.uid[7] = (uint8_t)g->cart_serial;
	snprintf(c.lot, sizeof(c.lot), "LOT%03u", g->cart_serial);
	return c;
}

static struct nl_limit_set limits(uint16_t cap)
{
	struct nl_limit_set s = {.format = 1, .lifetime_s = 3600, .depth_cap_um = cap};

	return s;
}

static int cp_set_limits(struct rig *g, const struct nl_limit_set *s, uint32_t *ret_hash)
{
	struct nl_cp_req q = {.op = NL_CP_SET_LIMITS};

	q.u.limits = *s;
	return pen_cp(&g->r, &q, ret_hash);
}

static int cp_authorise(struct rig *g, uint32_t sid, uint32_t hash, uint32_t lifetime)
{
	struct nl_cp_req q = {.op = NL_CP_AUTHORISE};

	q.u.authorise.session_id = sid;
	q.u.authorise.limits_hash = hash;
	q.u.authorise.lifetime_s = lifetime;
	return pen_cp(&g->r, &q, NULL);
}

static int cp_simple(struct rig *g, uint8_t op, uint32_t arg)
{
	struct nl_cp_req q = {.op = op};

	switch (op) {
	case NL_CP_SET_ZONE:
		q.u.zone = (uint8_t)arg;
		break;
	case NL_CP_LOCK:
	case NL_CP_UNLOCK:
		q.u.reason = (uint8_t)arg;
		break;
	case NL_CP_SET_TIME:
		q.u.pen_time = arg;
		break;
	case NL_CP_SET_LIVE_RATE:
		q.u.live_rate_hz = (uint8_t)arg;
		break;
	default:
		break;
	}
	return pen_cp(&g->r, &q, NULL);
}

/* SET_LIMITS + cartridge + AUTHORISE + zone: an armed pen. */
static uint32_t arm(struct rig *g, const struct nl_limit_set *s, unsigned zone)
{
	struct sim_cartridge c = cartridge(g);
	uint32_t hash;

	CHECK_EQ(cp_set_limits(g, s, &hash), NL_CP_SUCCESS);
	if (info(g).cartridge_state == NL_CARTRIDGE_NONE)
		CHECK_EQ(sim_pen_insert_cartridge(g->pen, &c), 0);
	CHECK_EQ(cp_authorise(g, 42, hash, s->lifetime_s), NL_CP_SUCCESS);
	CHECK_EQ(state(g), NL_PEN_STATE_ARMED);
	CHECK_EQ(cp_simple(g, NL_CP_SET_ZONE, zone), NL_CP_SUCCESS);
	return hash;
}

/* RACP REPORT with operator oper (a for GE); reassembles and decodes every
 * record into recs[]. Returns the count; *ret_code gets the RESPONSE_CODE. */
static int report(struct rig *g, uint8_t oper, uint32_t a, uint8_t *ret_code)
{
	static struct nl_seg_rx rx;
	struct nl_racp_req q = {.op = NL_RACP_REPORT, .oper = oper, .a = a};
	uint8_t buf[32];
	unsigned from, scanned;
	int n = 0, len;

	nl_seg_rx_reset(&rx);
	/* a fresh subscription restarts the counter */
	sim_pen_gatt_ops()->cccd(g->pen, SIM_CHR_RECORD, SIM_CCCD_NOTIFY);
	fake_radio_clear(&g->r);
	len = nl_racp_req_encode(&q, buf, sizeof(buf));
	CHECK(len > 0);
	CHECK_EQ(sim_pen_gatt_ops()->write(g->pen, SIM_CHR_RACP, buf, (size_t)len), 0);
	from = scanned = 0;
	for (int guard = 0; guard < 100000; guard++) {
		for (; scanned < g->r.n; scanned++) {
			struct fake_msg *m = &g->r.msgs[scanned];

			if (m->chr == SIM_CHR_RECORD) {
				const uint8_t *rec;
				int rr = nl_seg_rx_feed(&rx, m->val, m->len, &rec);

				CHECK(rr >= 0);
				if (rr > 0) {
					CHECK(n < MAX_RECS);
					CHECK_EQ(nl_record_decode(rec, (size_t)rr, &recs[n]), 0);
					n++;
				}
			} else if (m->chr == SIM_CHR_RACP) {
				struct nl_racp_rsp rsp;

				CHECK(m->indication);
				CHECK_EQ(nl_racp_rsp_decode(m->val, m->len, &rsp), 0);
				CHECK_EQ(rsp.op, NL_RACP_RESPONSE_CODE);
				CHECK_EQ(rsp.req_op, NL_RACP_REPORT);
				*ret_code = rsp.code;
				fake_radio_confirm_all(&g->r);
				return n;
			}
		}
		if (g->r.n > FAKE_MSG_MAX - 64) {
			/* keep the buffer small on long reports */
			g->r.n = 0;
			scanned = 0;
		}
		sim_pen_tick(g->pen);
		fake_radio_confirm_all(&g->r);
	}
	(void)from;
	CHECK(!"report never finished");
	return -1;
}

static int all_records(struct rig *g)
{
	uint8_t code = 0;
	int n = report(g, NL_RACP_ALL, 0, &code);

	CHECK(n == 0 ? code == NL_RACP_NO_RECORDS : code == NL_RACP_SUCCESS);
	for (int i = 1; i < n; i++)
		CHECK(recs[i].hdr.seq > recs[i - 1].hdr.seq);
	return n;
}

static int count_type(int n, uint8_t type)
{
	int c = 0;

	for (int i = 0; i < n; i++)
		c += recs[i].hdr.type == type;
	return c;
}

static const struct nl_record *find_limit(int n, uint8_t event)
{
	for (int i = n - 1; i >= 0; i--)
		if (recs[i].hdr.type == NL_RECORD_LIMIT && recs[i].u.limit.event == event)
			return &recs[i];
	return NULL;
}

/* ---- tests ------------------------------------------------------------- */

static void test_boot_and_reads(void)
{
	struct rig g;
	uint8_t buf[NL_PDU_MAX];
	struct nl_feature f;
	struct nl_pen_status st;
	struct nl_active_limits al;
	int n;

	rig_start(&g, SIM_PEN_MOTORISED, 64);
	CHECK_EQ(state(&g), NL_PEN_STATE_IDLE);
	n = sim_pen_gatt_ops()->read(g.pen, SIM_CHR_FEATURE, buf, sizeof(buf));
	CHECK(n > 0);
	CHECK_EQ(nl_feature_decode(buf, (size_t)n, &f), 0);
	CHECK(f.flags & NL_FEAT_MOTORISED_DEPTH);
	CHECK_EQ(f.depth_max_um, 2500);
	CHECK_EQ(f.store_capacity, 64);
	CHECK_EQ(f.store_epoch, info(&g).store_epoch);
	n = sim_pen_gatt_ops()->read(g.pen, SIM_CHR_PEN_STATUS, buf, sizeof(buf));
	CHECK_EQ(nl_pen_status_decode(buf, (size_t)n, &st), 0);
	CHECK_EQ(st.state, NL_PEN_STATE_IDLE);
	CHECK(st.flags & NL_STATUS_FACTORY_LIMITS);
	CHECK(!(st.flags & NL_STATUS_CLOCK_NOT_SET));
	n = sim_pen_gatt_ops()->read(g.pen, SIM_CHR_ACTIVE_LIMITS, buf, sizeof(buf));
	CHECK_EQ(nl_active_limits_decode(buf, (size_t)n, &al), 0);
	CHECK_EQ(al.source, NL_LIMIT_SOURCE_FACTORY);
	CHECK_EQ(al.set.depth_cap_um, 2500);
	n = sim_pen_gatt_ops()->read(g.pen, SIM_CHR_DIS_SERIAL, buf, sizeof(buf));
	CHECK_EQ(n, 8);
	CHECK(memcmp(buf, "PEN-0001", 8) == 0);
	CHECK(sim_pen_gatt_ops()->read(g.pen, SIM_CHR_RACP, buf, sizeof(buf)) < 0);
	CHECK(sim_pen_gatt_ops()->write(g.pen, SIM_CHR_FEATURE, buf, 3) < 0);
	rig_stop(&g);
}

static void test_transitions(void)
{
	struct rig g;
	struct sim_cartridge c;
	struct nl_limit_set s = limits(1500);
	uint32_t hash;
	int n;

	rig_start(&g, SIM_PEN_MOTORISED, 64);
	c = cartridge(&g);
	/* idle: no motor without a cartridge */
	CHECK_EQ(sim_pen_start_pass(g.pen), -EPERM);
	CHECK_EQ(state(&g), NL_PEN_STATE_IDLE);
	/* AUTHORISE needs the active set's hash, then a cartridge */
	CHECK_EQ(cp_authorise(&g, 1, 0x1234, 60), NL_CP_HASH_MISMATCH);
	CHECK_EQ(cp_set_limits(&g, &s, &hash), NL_CP_SUCCESS);
	CHECK(hash != 0);
	CHECK_EQ(info(&g).limit_source, NL_LIMIT_SOURCE_SESSION);
	CHECK_EQ(cp_authorise(&g, 1, hash ^ 1, 60), NL_CP_HASH_MISMATCH);
	CHECK_EQ(cp_authorise(&g, 1, hash, 60), NL_CP_NO_CARTRIDGE);
	CHECK_EQ(sim_pen_insert_cartridge(g.pen, &c), 0);
	CHECK_EQ(cp_authorise(&g, 7, hash, 600), NL_CP_SUCCESS);
	CHECK_EQ(state(&g), NL_PEN_STATE_ARMED);
	CHECK_EQ(info(&g).session_id, 7);
	CHECK_EQ(cp_simple(&g, NL_CP_SET_ZONE, NL_ZONE_CHEEKS), NL_CP_SUCCESS);
	CHECK_EQ(sim_pen_set_speed(g.pen, 120), 0);
	CHECK_EQ(sim_pen_set_depth(g.pen, 1000), 0);
	CHECK_EQ(sim_pen_start_pass(g.pen), 0);
	CHECK_EQ(state(&g), NL_PEN_STATE_RUNNING);
	CHECK_EQ(info(&g).pass, 1);
	/* running: no zone change */
	CHECK_EQ(cp_simple(&g, NL_CP_SET_ZONE, NL_ZONE_CHIN), NL_CP_INVALID_STATE);
	run_ms(&g, 10000);
	CHECK_EQ(sim_pen_pause(g.pen), 0);
	CHECK_EQ(state(&g), NL_PEN_STATE_PAUSED);
	run_ms(&g, 3000);
	CHECK_EQ(sim_pen_resume(g.pen), 0);
	CHECK_EQ(state(&g), NL_PEN_STATE_RUNNING);
	CHECK_EQ(info(&g).pass, 2); /* every motor start is a pass (7.8) */
	run_ms(&g, 5000);
	CHECK_EQ(sim_pen_end_pass(g.pen), 0);
	CHECK_EQ(state(&g), NL_PEN_STATE_PAUSED); /* the motor has run */
	/* needle-on only counts motor time; strokes = speed x run time */
	CHECK_EQ(info(&g).needle_on_ms, 15000);
	CHECK_EQ(info(&g).strokes, 120 * 15);
	/* gateway lock and unlock */
	CHECK_EQ(cp_simple(&g, NL_CP_LOCK, NL_LOCK_REASON_POLICY), NL_CP_SUCCESS);
	CHECK_EQ(state(&g), NL_PEN_STATE_LOCKED);
	CHECK_EQ(sim_pen_start_pass(g.pen), -EPERM);
	CHECK_EQ(cp_set_limits(&g, &s, NULL), NL_CP_LOCKED);
	CHECK_EQ(cp_simple(&g, NL_CP_LOCK, NL_LOCK_REASON_POLICY), NL_CP_SUCCESS); /* no-op */
	CHECK_EQ(cp_simple(&g, NL_CP_UNLOCK, NL_LOCK_REASON_OPERATOR), NL_CP_SUCCESS);
	CHECK_EQ(state(&g), NL_PEN_STATE_PAUSED);
	/* nothing locked: UNLOCK has nothing to lift */
	CHECK_EQ(cp_simple(&g, NL_CP_UNLOCK, NL_LOCK_REASON_OPERATOR), NL_CP_INVALID_STATE);
	/* stop: back to idle, SESSION_END with the totals */
	CHECK_EQ(cp_simple(&g, NL_CP_STOP_SESSION, 0), NL_CP_SUCCESS);
	CHECK_EQ(state(&g), NL_PEN_STATE_IDLE);
	CHECK_EQ(cp_simple(&g, NL_CP_STOP_SESSION, 0), NL_CP_INVALID_STATE);
	CHECK_EQ(info(&g).limit_source, NL_LIMIT_SOURCE_FACTORY); /* session set discarded */
	n = all_records(&g);
	CHECK_EQ(count_type(n, NL_RECORD_SESSION_START), 1);
	CHECK_EQ(count_type(n, NL_RECORD_SEGMENT), 2);
	CHECK_EQ(count_type(n, NL_RECORD_SESSION_END), 1);
	CHECK_EQ(recs[n - 1].hdr.type, NL_RECORD_LIMIT);
	CHECK_EQ(recs[n - 1].u.limit.event, NL_LIMIT_EVENT_APPLIED);
	CHECK_EQ(recs[n - 1].u.limit.origin, NL_LIMIT_ORIGIN_FIRMWARE);
	{
		const struct nl_record *e = &recs[n - 2];

		CHECK_EQ(e->hdr.type, NL_RECORD_SESSION_END);
		CHECK_EQ(e->hdr.session_id, 7);
		CHECK(e->hdr.flags & NL_REC_AUTHORISED);
		CHECK_EQ(e->u.session_end.reason, NL_SESSION_END_STOPPED);
		CHECK_EQ(e->u.session_end.needle_on_ms, 15000);
		CHECK_EQ(e->u.session_end.strokes, 1800);
		CHECK_EQ(e->u.session_end.zone_count, 1);
		CHECK_EQ(e->u.session_end.zones[0].zone, NL_ZONE_CHEEKS);
		CHECK_EQ(e->u.session_end.zones[0].passes, 2);
		CHECK_EQ(e->u.session_end.zones[0].depth_mean_um, 1000);
	}
	for (int i = 0; i < n; i++)
		if (recs[i].hdr.type == NL_RECORD_SEGMENT) {
			CHECK(recs[i].u.segment.pass == 1 || recs[i].u.segment.pass == 2);
			CHECK_EQ(recs[i].u.segment.strokes, recs[i].u.segment.run_ms * 120 / 1000);
			CHECK_EQ(recs[i].u.segment.end_reason, NL_SEGMENT_END_OPERATOR);
		}
	/* fault: critical puts the pen in FAULT until a power cycle */
	CHECK_EQ(sim_pen_fault(g.pen, NL_FAULT_OVERHEAT, NL_FAULT_CRITICAL, 71), 0);
	CHECK_EQ(state(&g), NL_PEN_STATE_FAULT);
	CHECK_EQ(cp_simple(&g, NL_CP_UNLOCK, 0), NL_CP_INVALID_STATE);
	sim_pen_power_off(g.pen);
	CHECK_EQ(state(&g), NL_PEN_STATE_OFF);
	CHECK_EQ(sim_pen_power_on(g.pen), 0);
	CHECK_EQ(state(&g), NL_PEN_STATE_IDLE);
	rig_stop(&g);
}

/* Brings a fresh pen to state st. */
static void reach(struct rig *g, enum nl_pen_state st)
{
	struct nl_limit_set s = limits(1500);

	rig_start(g, SIM_PEN_MOTORISED, 64);
	if (st == NL_PEN_STATE_IDLE)
		return;
	if (st == NL_PEN_STATE_FAULT) {
		CHECK_EQ(sim_pen_fault(g->pen, NL_FAULT_MOTOR_STALL, NL_FAULT_CRITICAL, 0), 0);
		return;
	}
	(void)arm(g, &s, NL_ZONE_FOREHEAD);
	if (st == NL_PEN_STATE_ARMED)
		return;
	if (st == NL_PEN_STATE_LOCKED) {
		CHECK_EQ(cp_simple(g, NL_CP_LOCK, NL_LOCK_REASON_POLICY), NL_CP_SUCCESS);
		return;
	}
	CHECK_EQ(sim_pen_start_pass(g->pen), 0);
	if (st == NL_PEN_STATE_PAUSED)
		CHECK_EQ(sim_pen_pause(g->pen), 0);
}

/* Every opcode in every state the pen can be in: a refused opcode gets the
 * result of nl_cp_allowed() and leaves the state alone. */
static void test_cp_state_rules(void)
{
	static const enum nl_pen_state states[] = {
		NL_PEN_STATE_IDLE,   NL_PEN_STATE_ARMED,  NL_PEN_STATE_RUNNING,
		NL_PEN_STATE_PAUSED, NL_PEN_STATE_LOCKED, NL_PEN_STATE_FAULT,
	};

	for (unsigned si = 0; si < sizeof(states) / sizeof(states[0]); si++) {
		for (unsigned op = NL_CP_SET_LIMITS; op < NL_CP_OP_END; op++) {
			struct rig g;
			struct nl_cp_req q = {.op = (uint8_t)op};
			enum nl_cp_result want = nl_cp_allowed(states[si], op);
			int got;

			reach(&g, states[si]);
			CHECK_EQ(state(&g), states[si]);
			switch ((enum nl_cp_op)op) {
			case NL_CP_SET_LIMITS:
				q.u.limits = limits(1000);
				break;
			case NL_CP_AUTHORISE:
				q.u.authorise.session_id = 9;
				q.u.authorise.limits_hash = info(&g).limits_hash;
				q.u.authorise.lifetime_s = 60;
				break;
			case NL_CP_SET_ZONE:
				q.u.zone = NL_ZONE_NOSE;
				break;
			case NL_CP_LOCK:
			case NL_CP_UNLOCK:
				q.u.reason = NL_LOCK_REASON_OPERATOR;
				break;
			case NL_CP_ACK_RECORDS:
				q.u.ack.store_epoch = info(&g).store_epoch;
				q.u.ack.seq = info(&g).last_seq;
				break;
			case NL_CP_SET_TIME:
				q.u.pen_time = 800000500;
				break;
			case NL_CP_CLAMP:
				q.u.clamp.zone = 0;
				q.u.clamp.cap_um = 1000;
				break;
			case NL_CP_SET_LIVE_RATE:
				q.u.live_rate_hz = 5;
				break;
			case NL_CP_STOP_SESSION:
			case NL_CP_OP_END:
			case NL_CP_RESPONSE:
				break;
			}
			got = pen_cp(&g.r, &q, NULL);
			if (want != NL_CP_SUCCESS) {
				if (got != (int)want) {
					fprintf(stderr, "state %s op %s: got %d want %d\n",
						nl_pen_state_name(states[si]), nl_cp_op_name(op),
						got, want);
					exit(1);
				}
				CHECK_EQ(state(&g), states[si]);
			} else if (op == NL_CP_AUTHORISE && states[si] == NL_PEN_STATE_IDLE) {
				/* idle pen with factory limits: the hash is not a session's */
				CHECK_EQ(got, NL_CP_HASH_MISMATCH);
			} else if (op == NL_CP_STOP_SESSION && states[si] == NL_PEN_STATE_FAULT) {
				/* the fault closed the session already */
				CHECK_EQ(got, NL_CP_INVALID_STATE);
			} else if (op == NL_CP_UNLOCK && states[si] != NL_PEN_STATE_LOCKED) {
				/* ARMED, PAUSED: only with a zone lock to lift (8.3.6) */
				CHECK_EQ(got, NL_CP_INVALID_STATE);
			} else if (got != NL_CP_SUCCESS) {
				fprintf(stderr, "state %s op %s: got %d want success\n",
					nl_pen_state_name(states[si]), nl_cp_op_name(op), got);
				exit(1);
			}
			rig_stop(&g);
		}
	}
}

static void test_cp_protocol_errors(void)
{
	struct rig g;
	uint8_t buf[32];
	struct nl_cp_req q = {.op = NL_CP_SET_LIVE_RATE, .u.live_rate_hz = 4};
	struct nl_cp_rsp rsp;
	int n, i;

	rig_start(&g, SIM_PEN_MOTORISED, 64);
	n = nl_cp_req_encode(&q, buf, sizeof(buf));
	/* no CCCD: improper */
	sim_pen_gatt_ops()->cccd(g.pen, SIM_CHR_PEN_CP, 0);
	CHECK_EQ(sim_pen_gatt_ops()->write(g.pen, SIM_CHR_PEN_CP, buf, (size_t)n),
		 -NL_ATT_CCCD_IMPROPER);
	sim_pen_gatt_ops()->cccd(g.pen, SIM_CHR_PEN_CP, SIM_CCCD_INDICATE);
	/* one at a time until the response is confirmed */
	CHECK_EQ(sim_pen_gatt_ops()->write(g.pen, SIM_CHR_PEN_CP, buf, (size_t)n), 0);
	CHECK_EQ(sim_pen_gatt_ops()->write(g.pen, SIM_CHR_PEN_CP, buf, (size_t)n),
		 -NL_ATT_PROC_IN_PROGRESS);
	fake_radio_confirm_all(&g.r);
	/* bad CRC: INVALID_PARAMETER response */
	buf[n - 1] ^= 0xFF;
	fake_radio_clear(&g.r);
	CHECK_EQ(sim_pen_gatt_ops()->write(g.pen, SIM_CHR_PEN_CP, buf, (size_t)n), 0);
	i = fake_radio_last(&g.r, SIM_CHR_PEN_CP, 0);
	CHECK(i >= 0);
	CHECK_EQ(nl_cp_rsp_decode(g.r.msgs[i].val, g.r.msgs[i].len, &rsp), 0);
	CHECK_EQ(rsp.result, NL_CP_INVALID_PARAMETER);
	fake_radio_confirm_all(&g.r);
	/* unknown opcode: OP_NOT_SUPPORTED */
	buf[0] = 0x3F;
	n = nl_pdu_put_crc(buf, 1, sizeof(buf));
	fake_radio_clear(&g.r);
	CHECK_EQ(sim_pen_gatt_ops()->write(g.pen, SIM_CHR_PEN_CP, buf, (size_t)n), 0);
	i = fake_radio_last(&g.r, SIM_CHR_PEN_CP, 0);
	CHECK_EQ(nl_cp_rsp_decode(g.r.msgs[i].val, g.r.msgs[i].len, &rsp), 0);
	CHECK_EQ(rsp.result, NL_CP_OP_NOT_SUPPORTED);
	fake_radio_confirm_all(&g.r);
	rig_stop(&g);
}

static void test_depth_clamp_motorised(void)
{
	struct rig g;
	struct nl_limit_set s = limits(1500);
	const struct nl_record *l;
	uint32_t h2;
	int n;

	s.zone_count = 1;
	s.zones[0] = (struct nl_zone_limit){.zone = NL_ZONE_PERIORBITAL, .depth_cap_um = 500};
	rig_start(&g, SIM_PEN_MOTORISED, 64);
	(void)arm(&g, &s, NL_ZONE_PERIORBITAL);
	CHECK_EQ(sim_pen_set_depth(g.pen, 1000), 0);
	CHECK_EQ(info(&g).depth_set_um, 500);
	CHECK(info(&g).clamped);
	CHECK_EQ(sim_pen_start_pass(g.pen), 0);
	run_ms(&g, 2000);
	CHECK_EQ(sim_pen_end_pass(g.pen), 0);
	/* another zone: the default cap applies, the request is honoured */
	CHECK_EQ(sim_pen_select_zone(g.pen, NL_ZONE_CHEEKS), 0);
	CHECK_EQ(info(&g).depth_set_um, 1000);
	CHECK(!info(&g).clamped);
	/* factory maximum is never exceeded, whatever is asked */
	CHECK_EQ(sim_pen_set_depth(g.pen, 3000), 0);
	CHECK_EQ(info(&g).depth_set_um, 1500);
	/* gateway CLAMP tightens every zone and changes the hash */
	{
		struct nl_cp_req q = {.op = NL_CP_CLAMP, .u.clamp = {.zone = 0, .cap_um = 750}};

		CHECK_EQ(pen_cp(&g.r, &q, &h2), NL_CP_SUCCESS);
		CHECK_EQ(h2, info(&g).limits_hash);
		CHECK_EQ(info(&g).depth_set_um, 750);
		q.u.clamp.cap_um = 2600; /* a clamp never raises: nothing changes */
		CHECK_EQ(pen_cp(&g.r, &q, NULL), NL_CP_SUCCESS);
		CHECK_EQ(info(&g).limits_hash, h2);
		CHECK_EQ(info(&g).depth_cap_um, 750);
	}
	n = all_records(&g);
	l = find_limit(n, NL_LIMIT_EVENT_CLAMP);
	CHECK(l);
	CHECK_EQ(l->u.limit.origin, NL_LIMIT_ORIGIN_FIRMWARE); /* clamped again at once */
	CHECK_EQ(l->u.limit.value, 2500); /* requested (the motor's end stop) */
	CHECK_EQ(l->u.limit.threshold, 750);
	CHECK_EQ(l->u.limit.limits_hash, h2);
	CHECK_EQ(recs[n - 2].u.limit.origin, NL_LIMIT_ORIGIN_GATEWAY); /* the CLAMP command */
	CHECK_EQ(recs[n - 2].u.limit.event, NL_LIMIT_EVENT_CLAMP);
	CHECK_EQ(recs[n - 2].u.limit.value, 1500);
	CHECK_EQ(recs[n - 2].u.limit.threshold, 750);
	n -= 2;
	for (int i = 0; i < n; i++)
		if (recs[i].hdr.type == NL_RECORD_SEGMENT) {
			CHECK_EQ(recs[i].u.segment.depth_set_um, 500);
			CHECK_EQ(recs[i].u.segment.depth_cap_um, 500);
			CHECK(recs[i].u.segment.status & NL_SEG_CLAMPED);
		}
	/* SET_LIMITS above the factory maximum: nothing applied */
	CHECK_EQ(cp_simple(&g, NL_CP_STOP_SESSION, 0), NL_CP_SUCCESS);
	CHECK_EQ(info(&g).limit_source, NL_LIMIT_SOURCE_FACTORY); /* the derived set is gone */
	h2 = info(&g).limits_hash;
	s = limits(2800);
	CHECK_EQ(cp_set_limits(&g, &s, NULL), NL_CP_ABOVE_FACTORY);
	CHECK_EQ(info(&g).limits_hash, h2);
	CHECK_EQ(info(&g).limit_source, NL_LIMIT_SOURCE_FACTORY);
	rig_stop(&g);
}

static void test_dial_pen(void)
{
	struct rig g;
	struct nl_limit_set s = limits(1000);
	uint8_t buf[NL_PDU_MAX];
	struct nl_feature f;
	struct nl_live lv;
	int n;

	rig_start(&g, SIM_PEN_DIAL, 64);
	n = sim_pen_gatt_ops()->read(g.pen, SIM_CHR_FEATURE, buf, sizeof(buf));
	CHECK_EQ(nl_feature_decode(buf, (size_t)n, &f), 0);
	CHECK(!(f.flags & NL_FEAT_MOTORISED_DEPTH));
	(void)arm(&g, &s, NL_ZONE_CHEEKS);
	CHECK_EQ(sim_pen_set_depth(g.pen, 1500), 0);
	CHECK(info(&g).dial_over_cap);
	CHECK_EQ(info(&g).depth_set_um, 1500); /* the dial reads what it reads */
	CHECK_EQ(sim_pen_start_pass(g.pen), -EPERM);
	CHECK_EQ(sim_pen_set_depth(g.pen, 750), 0);
	CHECK(!info(&g).dial_over_cap);
	CHECK_EQ(sim_pen_start_pass(g.pen), 0);
	run_ms(&g, 1000);
	/* dial turned above the cap while running: motor stops */
	CHECK_EQ(sim_pen_set_depth(g.pen, 1250), 0);
	CHECK_EQ(state(&g), NL_PEN_STATE_PAUSED);
	n = sim_pen_live_value(g.pen, buf, sizeof(buf));
	CHECK_EQ(nl_live_decode(buf, (size_t)n, &lv), 0);
	CHECK(lv.flags & NL_LIVE_DIAL_OVER_CAP);
	CHECK(!(lv.flags & NL_LIVE_MOTOR_ON));
	CHECK_EQ(sim_pen_resume(g.pen), -EPERM);
	CHECK_EQ(sim_pen_set_depth(g.pen, 1000), 0);
	CHECK_EQ(sim_pen_resume(g.pen), 0);
	run_ms(&g, 1000);
	CHECK_EQ(sim_pen_end_pass(g.pen), 0);
	n = all_records(&g);
	CHECK_EQ(count_type(n, NL_RECORD_SEGMENT), 2);
	{
		bool held = false;

		for (int i = 0; i < n; i++)
			if (recs[i].hdr.type == NL_RECORD_SEGMENT &&
			    (recs[i].u.segment.status & NL_SEG_DIAL_OVER_CAP)) {
				held = true;
				CHECK_EQ(recs[i].u.segment.end_reason, NL_SEGMENT_END_LIMIT);
			}
		CHECK(held);
	}
	CHECK(find_limit(n, NL_LIMIT_EVENT_CLAMP));
	rig_stop(&g);
}

static void test_pass_limits(void)
{
	struct rig g;
	struct nl_limit_set s = limits(1500);
	const struct nl_record *l;
	int n;

	s.pass_warn = 2;
	s.pass_lock = 3;
	rig_start(&g, SIM_PEN_MOTORISED, 64);
	(void)arm(&g, &s, NL_ZONE_FOREHEAD);
	for (int p = 1; p <= 3; p++) {
		CHECK_EQ(sim_pen_start_pass(g.pen), 0);
		run_ms(&g, 500);
		CHECK_EQ(sim_pen_end_pass(g.pen), 0);
	}
	/* the 4th pass in the zone: zone lock, the pen state does not change */
	CHECK_EQ(sim_pen_start_pass(g.pen), -EPERM);
	CHECK_EQ(state(&g), NL_PEN_STATE_PAUSED);
	CHECK(info(&g).zone_locked);
	CHECK_EQ(sim_pen_start_pass(g.pen), -EPERM); /* still locked, no second record */
	/* other zones stay usable; the locked one cannot be selected again */
	CHECK_EQ(cp_simple(&g, NL_CP_SET_ZONE, NL_ZONE_CHIN), NL_CP_SUCCESS);
	CHECK_EQ(cp_simple(&g, NL_CP_SET_ZONE, NL_ZONE_FOREHEAD), NL_CP_LOCKED);
	CHECK_EQ(sim_pen_start_pass(g.pen), 0);
	run_ms(&g, 500);
	CHECK_EQ(sim_pen_end_pass(g.pen), 0);
	n = all_records(&g);
	CHECK_EQ(count_type(n, NL_RECORD_SEGMENT), 4);
	l = find_limit(n, NL_LIMIT_EVENT_PASS_WARN);
	CHECK(l);
	CHECK_EQ(l->u.limit.value, 2);
	CHECK_EQ(l->u.limit.threshold, 2);
	l = find_limit(n, NL_LIMIT_EVENT_LOCK);
	CHECK(l);
	CHECK_EQ(l->u.limit.reason, NL_LOCK_REASON_PASSES);
	CHECK_EQ(l->u.limit.zone, NL_ZONE_FOREHEAD);
	CHECK_EQ(l->u.limit.value, 4);
	CHECK_EQ(l->u.limit.threshold, 3);
	{
		int locks = 0;

		for (int i = 0; i < n; i++)
			locks += recs[i].hdr.type == NL_RECORD_LIMIT &&
				 recs[i].u.limit.event == NL_LIMIT_EVENT_LOCK;
		CHECK_EQ(locks, 1);
	}
	/* an authorised unlock lifts the zone lock for the rest of the session */
	CHECK_EQ(cp_simple(&g, NL_CP_UNLOCK, NL_LOCK_REASON_OPERATOR), NL_CP_SUCCESS);
	CHECK_EQ(cp_simple(&g, NL_CP_SET_ZONE, NL_ZONE_FOREHEAD), NL_CP_SUCCESS);
	CHECK_EQ(sim_pen_start_pass(g.pen), 0);
	CHECK_EQ(info(&g).pass, 4);
	CHECK_EQ(sim_pen_end_pass(g.pen), 0);
	n = all_records(&g);
	l = find_limit(n, NL_LIMIT_EVENT_OVERRIDE);
	CHECK(l);
	CHECK_EQ(l->u.limit.zone, NL_ZONE_FOREHEAD);
	CHECK_EQ(l->u.limit.value, 4);
	CHECK_EQ(l->u.limit.threshold, 3);
	/* 8.3.6: OVERRIDE carries UNLOCK's reason, as does the UNLOCK record */
	CHECK_EQ(l->u.limit.origin, NL_LIMIT_ORIGIN_GATEWAY);
	CHECK_EQ(l->u.limit.reason, NL_LOCK_REASON_OPERATOR);
	l = find_limit(n, NL_LIMIT_EVENT_UNLOCK);
	CHECK(l);
	CHECK_EQ(l->u.limit.reason, NL_LOCK_REASON_OPERATOR);
	rig_stop(&g);
}

static void test_needle_on_limits_offline(void)
{
	struct rig g;
	struct nl_limit_set s = limits(1500);
	const struct nl_record *l;
	int n;

	s.needle_on_warn_s = 20;
	s.needle_on_lock_s = 30;
	rig_start(&g, SIM_PEN_MOTORISED, 64);
	(void)arm(&g, &s, NL_ZONE_CHEEKS);
	CHECK_EQ(sim_pen_start_pass(g.pen), 0);
	/* the link drops: enforcement is local */
	sim_pen_gatt_ops()->disconnected(g.pen);
	run_ms(&g, 25000);
	CHECK_EQ(state(&g), NL_PEN_STATE_RUNNING);
	run_ms(&g, 10000);
	CHECK_EQ(state(&g), NL_PEN_STATE_LOCKED);
	CHECK_EQ(info(&g).lock_reason, NL_LOCK_REASON_NEEDLE_ON);
	CHECK_EQ(info(&g).needle_on_ms, 30000); /* stopped at the limit, not after */
	fake_radio_connect(&g.r, 185);
	fake_radio_confirm_all(&g.r);
	n = all_records(&g);
	l = find_limit(n, NL_LIMIT_EVENT_TIME_WARN);
	CHECK(l);
	CHECK_EQ(l->u.limit.threshold, 20);
	l = find_limit(n, NL_LIMIT_EVENT_LOCK);
	CHECK(l);
	CHECK_EQ(l->u.limit.reason, NL_LOCK_REASON_NEEDLE_ON);
	CHECK_EQ(l->u.limit.origin, NL_LIMIT_ORIGIN_FIRMWARE);
	CHECK_EQ(recs[n - 2].hdr.type, NL_RECORD_SEGMENT);
	CHECK(recs[n - 2].u.segment.status & NL_SEG_STOPPED_BY_LIMIT);
	CHECK(recs[n - 2].u.segment.status & NL_SEG_NEEDLE_ON_WARN);
	/* an authorised unlock overrides the threshold for the session */
	CHECK_EQ(cp_simple(&g, NL_CP_UNLOCK, NL_LOCK_REASON_POLICY), NL_CP_SUCCESS);
	CHECK_EQ(state(&g), NL_PEN_STATE_PAUSED);
	CHECK_EQ(sim_pen_start_pass(g.pen), 0);
	run_ms(&g, 5000);
	CHECK_EQ(state(&g), NL_PEN_STATE_RUNNING); /* fires once per session */
	n = all_records(&g);
	l = find_limit(n, NL_LIMIT_EVENT_OVERRIDE);
	CHECK(l);
	CHECK_EQ(l->u.limit.value, 30);
	CHECK_EQ(l->u.limit.threshold, 30);
	CHECK_EQ(l->u.limit.zone, NL_ZONE_NONE);
	CHECK_EQ(l->u.limit.reason, NL_LOCK_REASON_POLICY); /* UNLOCK's reason */
	rig_stop(&g);
}

static void test_lock_persists(void)
{
	struct rig g;
	struct nl_limit_set s = limits(1500);

	rig_start(&g, SIM_PEN_MOTORISED, 64);
	(void)arm(&g, &s, NL_ZONE_CHIN);
	CHECK_EQ(cp_simple(&g, NL_CP_LOCK, NL_LOCK_REASON_POLICY), NL_CP_SUCCESS);
	sim_pen_power_off(g.pen);
	CHECK_EQ(sim_pen_power_on(g.pen), 0);
	CHECK_EQ(state(&g), NL_PEN_STATE_LOCKED);
	CHECK_EQ(info(&g).lock_reason, NL_LOCK_REASON_POLICY);
	/* LOCK in FAULT: stays FAULT, LOCKED after the fault clears */
	fake_radio_connect(&g.r, 23);
	fake_radio_confirm_all(&g.r);
	CHECK_EQ(cp_simple(&g, NL_CP_UNLOCK, NL_LOCK_REASON_OPERATOR), NL_CP_SUCCESS);
	CHECK_EQ(state(&g), NL_PEN_STATE_IDLE);
	CHECK_EQ(sim_pen_fault(g.pen, NL_FAULT_MOTOR_STALL, NL_FAULT_CRITICAL, 1), 0);
	CHECK_EQ(cp_simple(&g, NL_CP_LOCK, NL_LOCK_REASON_POLICY), NL_CP_SUCCESS);
	CHECK_EQ(state(&g), NL_PEN_STATE_FAULT);
	sim_pen_power_off(g.pen);
	CHECK_EQ(sim_pen_power_on(g.pen), 0);
	CHECK_EQ(state(&g), NL_PEN_STATE_LOCKED);
	rig_stop(&g);
}

static void test_lifetime_fallback(void)
{
	struct rig g;
	struct nl_limit_set s = limits(2000);
	uint8_t buf[NL_PDU_MAX];
	struct nl_active_limits al;
	struct nl_pen_status st;
	const struct nl_record *l;
	int n, i;

	s.lifetime_s = 60;
	rig_start(&g, SIM_PEN_MOTORISED, 64);
	(void)arm(&g, &s, NL_ZONE_SCAR);
	CHECK_EQ(sim_pen_set_depth(g.pen, 1750), 0);
	CHECK_EQ(info(&g).depth_set_um, 1750);
	CHECK_EQ(sim_pen_start_pass(g.pen), 0);
	sim_pen_gatt_ops()->disconnected(g.pen);
	run_ms(&g, 59000);
	CHECK_EQ(info(&g).limit_source, NL_LIMIT_SOURCE_SESSION);
	CHECK(info(&g).remaining_s >= 1);
	CHECK_EQ(state(&g), NL_PEN_STATE_RUNNING);
	run_ms(&g, 2000);
	/* 7.6: motor stopped, session closed, fallback in force */
	CHECK_EQ(state(&g), NL_PEN_STATE_IDLE);
	CHECK_EQ(info(&g).session_id, 0);
	CHECK_EQ(info(&g).limit_source, NL_LIMIT_SOURCE_FALLBACK);
	CHECK_EQ(info(&g).depth_cap_um, 1000);
	CHECK_EQ(info(&g).depth_set_um, 1000);
	/* the operator may go on, unauthorised, under the fallback set */
	CHECK_EQ(sim_pen_start_pass(g.pen), 0);
	CHECK(info(&g).session_id & 0x80000000u);
	CHECK(!info(&g).authorised);
	run_ms(&g, 1000);
	CHECK_EQ(sim_pen_end_pass(g.pen), 0);
	fake_radio_connect(&g.r, 64);
	fake_radio_confirm_all(&g.r);
	n = sim_pen_gatt_ops()->read(g.pen, SIM_CHR_ACTIVE_LIMITS, buf, sizeof(buf));
	CHECK_EQ(nl_active_limits_decode(buf, (size_t)n, &al), 0);
	CHECK_EQ(al.source, NL_LIMIT_SOURCE_FALLBACK);
	CHECK_EQ(al.remaining_s, 0);
	CHECK(al.set.depth_cap_um <= NL_FALLBACK_CAP_UM);
	n = sim_pen_gatt_ops()->read(g.pen, SIM_CHR_PEN_STATUS, buf, sizeof(buf));
	CHECK_EQ(nl_pen_status_decode(buf, (size_t)n, &st), 0);
	CHECK(st.flags & NL_STATUS_FALLBACK_LIMITS);
	CHECK(!(st.flags & NL_STATUS_FACTORY_LIMITS));
	n = all_records(&g);
	l = find_limit(n, NL_LIMIT_EVENT_FALLBACK);
	CHECK(l);
	CHECK_EQ(l->u.limit.threshold, 1000);
	CHECK_EQ(l->u.limit.limits_hash, al.limits_hash);
	i = (int)(l - recs);
	CHECK_EQ(recs[i - 1].hdr.type, NL_RECORD_SEGMENT);
	CHECK_EQ(recs[i - 1].u.segment.end_reason, NL_SEGMENT_END_LIMIT);
	CHECK(recs[i - 1].u.segment.status & NL_SEG_STOPPED_BY_LIMIT);
	CHECK_EQ(recs[i - 1].u.segment.run_ms, 60000);
	CHECK_EQ(recs[i + 1].hdr.type, NL_RECORD_SESSION_END);
	CHECK_EQ(recs[i + 1].u.session_end.reason, NL_SESSION_END_LIFETIME);
	CHECK_EQ(recs[i + 2].hdr.type, NL_RECORD_LIMIT); /* depth clamped to 1.0 mm */
	CHECK_EQ(recs[i + 2].u.limit.event, NL_LIMIT_EVENT_CLAMP);
	CHECK_EQ(recs[i + 3].hdr.type, NL_RECORD_SESSION_START);
	CHECK_EQ(recs[i + 3].u.session_start.lifetime_s, 0);
	CHECK_EQ(recs[i + 3].u.session_start.limit_source, NL_LIMIT_SOURCE_FALLBACK);
	CHECK(!(recs[i + 3].hdr.flags & NL_REC_AUTHORISED));
	CHECK(recs[i + 4].u.segment.status & NL_SEG_FALLBACK_LIMITS);
	/* the fallback survives a power cycle, until a SET_LIMITS */
	sim_pen_power_off(g.pen);
	CHECK_EQ(sim_pen_power_on(g.pen), 0);
	CHECK_EQ(info(&g).limit_source, NL_LIMIT_SOURCE_FALLBACK);
	rig_stop(&g);
}

static void test_cartridge_lockout(void)
{
	struct rig g;
	struct nl_limit_set s = limits(1500);
	struct sim_cartridge c, used, expired;
	uint32_t hash;
	int n;

	rig_start(&g, SIM_PEN_MOTORISED, 64);
	c = cartridge(&g);
	CHECK_EQ(sim_pen_insert_cartridge(g.pen, &c), 0);
	CHECK_EQ(info(&g).cartridge_state, NL_CARTRIDGE_NEW);
	CHECK_EQ(cp_set_limits(&g, &s, &hash), NL_CP_SUCCESS);
	CHECK_EQ(cp_authorise(&g, 5, hash, 600), NL_CP_SUCCESS);
	CHECK_EQ(sim_pen_select_zone(g.pen, NL_ZONE_CHIN), 0);
	CHECK_EQ(sim_pen_start_pass(g.pen), 0);
	CHECK_EQ(info(&g).cartridge_state, NL_CARTRIDGE_IN_USE);
	run_ms(&g, 1000);
	/* removed while running: motor stops, pass pauses */
	CHECK_EQ(sim_pen_remove_cartridge(g.pen), 0);
	CHECK_EQ(state(&g), NL_PEN_STATE_PAUSED);
	CHECK_EQ(sim_pen_resume(g.pen), -EPERM);
	/* the same cartridge again: rejected, motor disabled */
	used = c;
	CHECK_EQ(sim_pen_insert_cartridge(g.pen, &used), 0);
	CHECK_EQ(info(&g).cartridge_state, NL_CARTRIDGE_REJECTED);
	CHECK_EQ(info(&g).cartridge_reject, NL_REJECT_REUSED);
	CHECK_EQ(sim_pen_resume(g.pen), -EPERM);
	CHECK_EQ(sim_pen_remove_cartridge(g.pen), 0);
	/* expired */
	expired = cartridge(&g);
	expired.expiry = 700000000;
	CHECK_EQ(sim_pen_insert_cartridge(g.pen, &expired), 0);
	CHECK_EQ(info(&g).cartridge_reject, NL_REJECT_EXPIRED);
	CHECK_EQ(sim_pen_remove_cartridge(g.pen), 0);
	/* a new one works */
	c = cartridge(&g);
	CHECK_EQ(sim_pen_insert_cartridge(g.pen, &c), 0);
	CHECK_EQ(sim_pen_resume(g.pen), 0);
	run_ms(&g, 500);
	CHECK_EQ(cp_simple(&g, NL_CP_STOP_SESSION, 0), NL_CP_SUCCESS);
	/* power cycle: the first cartridge is still remembered */
	sim_pen_power_off(g.pen);
	CHECK_EQ(sim_pen_power_on(g.pen), 0);
	CHECK_EQ(info(&g).cartridge_state, NL_CARTRIDGE_REJECTED); /* the attached one */
	CHECK_EQ(sim_pen_remove_cartridge(g.pen), 0);
	CHECK_EQ(sim_pen_insert_cartridge(g.pen, &used), 0);
	CHECK_EQ(info(&g).cartridge_reject, NL_REJECT_REUSED);
	/* AUTHORISE refuses a rejected cartridge */
	fake_radio_connect(&g.r, 23);
	fake_radio_confirm_all(&g.r);
	CHECK_EQ(cp_set_limits(&g, &s, &hash), NL_CP_SUCCESS);
	CHECK_EQ(cp_authorise(&g, 6, hash, 600), NL_CP_NO_CARTRIDGE);
	n = all_records(&g);
	{
		int rejected = 0;

		for (int i = 0; i < n; i++)
			if (recs[i].hdr.type == NL_RECORD_CARTRIDGE &&
			    recs[i].u.cartridge.event == NL_CARTRIDGE_EVENT_REJECTED) {
				rejected++;
				CHECK(recs[i].u.cartridge.reject_reason == NL_REJECT_REUSED ||
				      recs[i].u.cartridge.reject_reason == NL_REJECT_EXPIRED);
			}
		CHECK_EQ(rejected, 4);
	}
	rig_stop(&g);
}

static void test_store_full_and_ack(void)
{
	struct rig g;
	struct nl_limit_set s = limits(1500);
	struct nl_cp_req q = {.op = NL_CP_ACK_RECORDS};
	uint32_t hash, left;
	int n;

	rig_start(&g, SIM_PEN_MOTORISED, 16);
	(void)arm(&g, &s, NL_ZONE_CHIN);
	/* runs until the pen refuses a run it could not record */
	for (int i = 0; i < 40; i++) {
		if (sim_pen_start_pass(g.pen) < 0)
			break;
		run_ms(&g, 100);
		CHECK_EQ(sim_pen_end_pass(g.pen), 0);
	}
	/* full = free slots <= the reserve R = 4 (4.3) */
	CHECK_EQ(state(&g), NL_PEN_STATE_PAUSED);
	CHECK_EQ(info(&g).store_used, 12);
	{
		uint8_t buf[NL_PDU_MAX];
		struct nl_pen_status st;
		int len = sim_pen_gatt_ops()->read(g.pen, SIM_CHR_PEN_STATUS, buf, sizeof(buf));

		CHECK_EQ(nl_pen_status_decode(buf, (size_t)len, &st), 0);
		CHECK(st.flags & NL_STATUS_STORE_FULL);
	}
	/* the reserve still closes the session on record */
	CHECK_EQ(cp_simple(&g, NL_CP_STOP_SESSION, 0), NL_CP_SUCCESS);
	CHECK_EQ(info(&g).store_used, 14); /* SESSION_END, LIMIT APPLIED (factory) */
	CHECK_EQ(cp_set_limits(&g, &s, &hash), NL_CP_SUCCESS);
	CHECK_EQ(cp_authorise(&g, 77, hash, 600), NL_CP_STORE_FULL);
	CHECK_EQ(sim_pen_start_pass(g.pen), -EPERM);
	CHECK_EQ(info(&g).records_written, 15); /* nothing overwritten, nothing lost */
	/* the collector takes the records and acknowledges them */
	n = all_records(&g);
	CHECK_EQ(n, 15);
	q.u.ack.store_epoch = info(&g).store_epoch ^ 1;
	q.u.ack.seq = recs[n - 1].hdr.seq;
	CHECK_EQ(pen_cp(&g.r, &q, NULL), NL_CP_EPOCH_MISMATCH);
	q.u.ack.store_epoch = info(&g).store_epoch;
	q.u.ack.seq = recs[n - 1].hdr.seq + 100;
	CHECK_EQ(pen_cp(&g.r, &q, NULL), NL_CP_INVALID_PARAMETER);
	q.u.ack.seq = recs[n - 1].hdr.seq;
	CHECK_EQ(pen_cp(&g.r, &q, &left), NL_CP_SUCCESS);
	CHECK_EQ(left, 0);
	/* the used cartridge cannot open a session; a new one can */
	CHECK_EQ(cp_authorise(&g, 77, hash, 600), NL_CP_NO_CARTRIDGE);
	{
		struct sim_cartridge c = cartridge(&g);

		CHECK_EQ(sim_pen_remove_cartridge(g.pen), 0);
		CHECK_EQ(sim_pen_insert_cartridge(g.pen, &c), 0);
	}
	CHECK_EQ(cp_authorise(&g, 77, hash, 600), NL_CP_SUCCESS);
	/* numbering continues: no acknowledged record comes back */
	n = all_records(&g);
	CHECK_EQ(n, 3);
	CHECK_EQ(recs[2].hdr.type, NL_RECORD_SESSION_START);
	CHECK_EQ(recs[0].hdr.seq, q.u.ack.seq + 1);
	rig_stop(&g);
}

static void test_racp(void)
{
	struct rig g;
	struct nl_limit_set s = limits(1500);
	struct nl_racp_req q = {.op = NL_RACP_REPORT_NUMBER, .oper = NL_RACP_ALL};
	struct nl_racp_rsp rsp;
	uint8_t buf[32], code;
	int n, len, i, total;
	uint32_t last;

	rig_start(&g, SIM_PEN_MOTORISED, 128);
	(void)arm(&g, &s, NL_ZONE_CHEEKS);
	for (int p = 0; p < 20; p++) {
		CHECK_EQ(sim_pen_start_pass(g.pen), 0);
		run_ms(&g, 200);
		CHECK_EQ(sim_pen_end_pass(g.pen), 0);
	}
	CHECK_EQ(cp_simple(&g, NL_CP_STOP_SESSION, 0), NL_CP_SUCCESS);
	last = info(&g).last_seq;
	/* REPORT_NUMBER */
	fake_radio_clear(&g.r);
	len = nl_racp_req_encode(&q, buf, sizeof(buf));
	CHECK_EQ(sim_pen_gatt_ops()->write(g.pen, SIM_CHR_RACP, buf, (size_t)len), 0);
	i = fake_radio_last(&g.r, SIM_CHR_RACP, 0);
	CHECK(i >= 0);
	CHECK_EQ(nl_racp_rsp_decode(g.r.msgs[i].val, g.r.msgs[i].len, &rsp), 0);
	CHECK_EQ(rsp.op, NL_RACP_NUMBER_RESPONSE);
	total = (int)rsp.count;
	CHECK_EQ(total, (int)last);
	fake_radio_confirm_all(&g.r);
	/* REPORT all at MTU 23: every segment reassembles and decodes */
	n = report(&g, NL_RACP_ALL, 0, &code);
	CHECK_EQ(code, NL_RACP_SUCCESS);
	CHECK_EQ(n, total);
	for (i = 0; i < n; i++)
		CHECK_EQ(recs[i].hdr.seq, (uint32_t)i + 1);
	/* GE: catch-up from a known seq; LAST */
	n = report(&g, NL_RACP_GE, last - 4, &code);
	CHECK_EQ(n, 5);
	CHECK_EQ(recs[0].hdr.seq, last - 4);
	n = report(&g, NL_RACP_LAST, 0, &code);
	CHECK_EQ(n, 1);
	CHECK_EQ(recs[0].hdr.seq, last);
	n = report(&g, NL_RACP_GE, last + 1, &code);
	CHECK_EQ(n, 0);
	CHECK_EQ(code, NL_RACP_NO_RECORDS);
	/* a radio that is full for a while: the report completes, no gap */
	g.r.full = true;
	{
		struct nl_racp_req rq = {.op = NL_RACP_REPORT, .oper = NL_RACP_ALL};

		sim_pen_gatt_ops()->cccd(g.pen, SIM_CHR_RECORD, SIM_CCCD_NOTIFY);
		len = nl_racp_req_encode(&rq, buf, sizeof(buf));
		fake_radio_clear(&g.r);
		CHECK_EQ(sim_pen_gatt_ops()->write(g.pen, SIM_CHR_RACP, buf, (size_t)len), 0);
		sim_pen_tick(g.pen);
		CHECK_EQ(fake_radio_last(&g.r, SIM_CHR_RECORD, 0), -1);
		/* busy: a second REPORT is refused, DELETE too */
		CHECK_EQ(sim_pen_gatt_ops()->write(g.pen, SIM_CHR_RACP, buf, (size_t)len),
			 -NL_ATT_PROC_IN_PROGRESS);
		/* ABORT stops it */
		rq.op = NL_RACP_ABORT;
		rq.oper = NL_RACP_NULL;
		len = nl_racp_req_encode(&rq, buf, sizeof(buf));
		CHECK_EQ(sim_pen_gatt_ops()->write(g.pen, SIM_CHR_RACP, buf, (size_t)len), 0);
		i = fake_radio_last(&g.r, SIM_CHR_RACP, 0);
		CHECK_EQ(nl_racp_rsp_decode(g.r.msgs[i].val, g.r.msgs[i].len, &rsp), 0);
		CHECK_EQ(rsp.req_op, NL_RACP_ABORT);
		CHECK_EQ(rsp.code, NL_RACP_SUCCESS);
		fake_radio_confirm_all(&g.r);
		/* ABORT with nothing running */
		CHECK_EQ(sim_pen_gatt_ops()->write(g.pen, SIM_CHR_RACP, buf, (size_t)len), 0);
		i = fake_radio_last(&g.r, SIM_CHR_RACP, 0);
		CHECK_EQ(nl_racp_rsp_decode(g.r.msgs[i].val, g.r.msgs[i].len, &rsp), 0);
		CHECK_EQ(rsp.code, NL_RACP_ABORT_FAILED);
		fake_radio_confirm_all(&g.r);
		/* DELETE is not supported */
		rq.op = NL_RACP_DELETE;
		rq.oper = NL_RACP_ALL;
		len = nl_racp_req_encode(&rq, buf, sizeof(buf));
		CHECK_EQ(sim_pen_gatt_ops()->write(g.pen, SIM_CHR_RACP, buf, (size_t)len), 0);
		i = fake_radio_last(&g.r, SIM_CHR_RACP, 0);
		CHECK_EQ(nl_racp_rsp_decode(g.r.msgs[i].val, g.r.msgs[i].len, &rsp), 0);
		CHECK_EQ(rsp.req_op, NL_RACP_DELETE);
		CHECK_EQ(rsp.code, NL_RACP_OP_NOT_SUPPORTED);
		fake_radio_confirm_all(&g.r);
		CHECK_EQ(info(&g).store_used, (uint16_t)total); /* nothing deleted */
	}
	g.r.full = false;
	/* a radio with a backlog: no record segment while 64 frames wait, then
	 * at most notify_burst per tick, and the report completes */
	{
		uint8_t bcode = 0;
		unsigned before;

		g.r.backlog = SIM_TX_BACKLOG_MAX;
		sim_pen_gatt_ops()->cccd(g.pen, SIM_CHR_RECORD, SIM_CCCD_NOTIFY);
		fake_radio_clear(&g.r);
		{
			struct nl_racp_req rq = {.op = NL_RACP_REPORT, .oper = NL_RACP_ALL};

			len = nl_racp_req_encode(&rq, buf, sizeof(buf));
		}
		CHECK_EQ(sim_pen_gatt_ops()->write(g.pen, SIM_CHR_RACP, buf, (size_t)len), 0);
		for (int t = 0; t < 5; t++)
			sim_pen_tick(g.pen);
		CHECK_EQ(fake_radio_last(&g.r, SIM_CHR_RECORD, 0), -1);
		g.r.backlog = SIM_TX_BACKLOG_MAX - 1;
		before = g.r.n;
		sim_pen_tick(g.pen);
		CHECK(g.r.n > before);
		CHECK(g.r.n - before <= g.cfg.notify_burst);
		/* ABORT, then a full report with the backlog gone */
		{
			struct nl_racp_req rq = {.op = NL_RACP_ABORT, .oper = NL_RACP_NULL};

			len = nl_racp_req_encode(&rq, buf, sizeof(buf));
		}
		CHECK_EQ(sim_pen_gatt_ops()->write(g.pen, SIM_CHR_RACP, buf, (size_t)len), 0);
		fake_radio_confirm_all(&g.r);
		g.r.backlog = 0;
		CHECK_EQ(report(&g, NL_RACP_ALL, 0, &bcode), total);
		CHECK_EQ(bcode, NL_RACP_SUCCESS);
	}
	/* intermittent back-pressure during a report: still complete and in order */
	{
		static struct nl_seg_rx rx;
		struct nl_racp_req rq = {.op = NL_RACP_REPORT, .oper = NL_RACP_ALL};
		int got = 0, done = 0;
		unsigned scanned = 0;

		nl_seg_rx_reset(&rx);
		sim_pen_gatt_ops()->cccd(g.pen, SIM_CHR_RECORD, SIM_CCCD_NOTIFY);
		len = nl_racp_req_encode(&rq, buf, sizeof(buf));
		fake_radio_clear(&g.r);
		CHECK_EQ(sim_pen_gatt_ops()->write(g.pen, SIM_CHR_RACP, buf, (size_t)len), 0);
		for (int t = 0; t < 10000 && !done; t++) {
			g.r.full = (t % 3) == 1;
			sim_pen_tick(g.pen);
			for (; scanned < g.r.n; scanned++) {
				const uint8_t *rec;
				struct fake_msg *m = &g.r.msgs[scanned];
				int rr;

				if (m->chr == SIM_CHR_RACP) {
					done = 1;
					continue;
				}
				if (m->chr != SIM_CHR_RECORD)
					continue;
				rr = nl_seg_rx_feed(&rx, m->val, m->len, &rec);
				CHECK(rr >= 0);
				got += rr > 0;
			}
			fake_radio_confirm_all(&g.r);
		}
		CHECK(done);
		CHECK_EQ(got, total);
	}
	/* no CCCD on the record characteristic: REPORT is improper */
	sim_pen_gatt_ops()->cccd(g.pen, SIM_CHR_RECORD, 0);
	q.op = NL_RACP_REPORT;
	len = nl_racp_req_encode(&q, buf, sizeof(buf));
	CHECK_EQ(sim_pen_gatt_ops()->write(g.pen, SIM_CHR_RACP, buf, (size_t)len),
		 -NL_ATT_CCCD_IMPROPER);
	rig_stop(&g);
}

/* protocol.md 9.2: a request that does not decode is answered with one
 * RESPONSE_CODE whose code is the first failing validation step. */
static void test_racp_malformed(void)
{
	static const struct {
		uint8_t bytes[16];
		size_t len; /* bytes before the CRC */
		bool bad_crc;
		uint8_t code;
	} cases[] = {
		/* 1: length, CRC */
		{{0x01}, 0, false, NL_RACP_INVALID_OPERAND}, /* 2 bytes: CRC only */
		{{0x04, 0x01}, 2, true, NL_RACP_INVALID_OPERAND},
		{{0x02, 0x01}, 2, true, NL_RACP_INVALID_OPERAND}, /* DELETE, bad CRC */
		{{0x02}, 1, false, NL_RACP_INVALID_OPERAND}, /* DELETE, 3 bytes */
		{{0x04, 0x09}, 2, true, NL_RACP_INVALID_OPERAND},
		/* 2: opcode */
		{{0x00, 0x01}, 2, false, NL_RACP_OP_NOT_SUPPORTED},
		{{0x02, 0x09}, 2, false, NL_RACP_OP_NOT_SUPPORTED}, /* DELETE before operator */
		{{0x02, 0x03}, 2, false, NL_RACP_OP_NOT_SUPPORTED}, /* DELETE GE, no operand */
		{{0x05, 0x00}, 2, false, NL_RACP_OP_NOT_SUPPORTED},
		{{0x06, 0x00}, 2, false, NL_RACP_OP_NOT_SUPPORTED},
		{{0x07, 0x01}, 2, false, NL_RACP_OP_NOT_SUPPORTED},
		/* 3: operator value */
		{{0x04, 0x07}, 2, false, NL_RACP_OPERATOR_NOT_SUPPORTED},
		{{0x03, 0xFF}, 2, false, NL_RACP_OPERATOR_NOT_SUPPORTED},
		/* 4: operator fits the opcode */
		{{0x04, 0x00}, 2, false, NL_RACP_INVALID_OPERATOR},
		{{0x01, 0x00}, 2, false, NL_RACP_INVALID_OPERATOR},
		{{0x03, 0x01}, 2, false, NL_RACP_INVALID_OPERATOR},
		/* 5: filter type, where one is present */
		{{0x04, 0x03, 0x02, 0xE2, 0x04, 0x00, 0x00}, 7, false, NL_RACP_OPERAND_NOT_SUPPORTED},
		{{0x04, 0x03, 0x00}, 3, false, NL_RACP_OPERAND_NOT_SUPPORTED}, /* before length */
		/* 6: operand */
		{{0x04, 0x03}, 2, false, NL_RACP_INVALID_OPERAND}, /* GE without operand */
		{{0x01, 0x04}, 2, false, NL_RACP_INVALID_OPERAND}, /* RANGE without operand */
		{{0x04, 0x03, 0x01, 0xE2, 0x04, 0x00}, 6, false, NL_RACP_INVALID_OPERAND},
		{{0x04, 0x03, 0x01, 0xE2, 0x04, 0x00, 0x00, 0x00}, 8, false, NL_RACP_INVALID_OPERAND},
		{{0x04, 0x01, 0x01, 0x00, 0x00, 0x00, 0x00}, 7, false, NL_RACP_INVALID_OPERAND},
		{{0x04, 0x04, 0x01, 5, 0, 0, 0, 4, 0, 0, 0}, 11, false, NL_RACP_INVALID_OPERAND},
	};
	struct rig g;
	struct nl_racp_rsp rsp;

	rig_start(&g, SIM_PEN_MOTORISED, 64);
	sim_pen_gatt_ops()->cccd(g.pen, SIM_CHR_RECORD, SIM_CCCD_NOTIFY);
	for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
		uint8_t buf[32];
		size_t n = cases[k].len;
		int i;

		memcpy(buf, cases[k].bytes, n);
		if (n == 0) {
			buf[0] = 0x01; /* two bytes that are a CRC of nothing */
			buf[1] = 0x02;
			n = 2;
		} else {
			CHECK_EQ(nl_pdu_put_crc(buf, n, sizeof(buf)), (int)n + 2);
			if (cases[k].bad_crc)
				buf[n] ^= 0x55;
			n += 2;
		}
		fake_radio_clear(&g.r);
		CHECK_EQ(sim_pen_gatt_ops()->write(g.pen, SIM_CHR_RACP, buf, n), 0);
		i = fake_radio_last(&g.r, SIM_CHR_RACP, 0);
		CHECK(i >= 0);
		CHECK_EQ(nl_racp_rsp_decode(g.r.msgs[i].val, g.r.msgs[i].len, &rsp), 0);
		CHECK_EQ(rsp.op, NL_RACP_RESPONSE_CODE);
		CHECK_EQ(rsp.req_op, buf[0]);
		if (rsp.code != cases[k].code)
			fprintf(stderr, "racp case %zu: code %u, want %u\n", k, rsp.code,
				cases[k].code);
		CHECK_EQ(rsp.code, cases[k].code);
		/* busy until the response is confirmed (9.4); a write whose
		 * first byte is ABORT passes that check */
		if (buf[0] != NL_RACP_ABORT)
			CHECK_EQ(sim_pen_gatt_ops()->write(g.pen, SIM_CHR_RACP, buf, n),
				 -NL_ATT_PROC_IN_PROGRESS);
		fake_radio_confirm_all(&g.r);
	}
	rig_stop(&g);
}

static void test_live_and_indications(void)
{
	struct rig g;
	struct nl_limit_set s = limits(1500);
	struct nl_live lv;
	struct nl_pen_status st;
	unsigned lives = 0, statuses = 0;
	uint16_t prev_sample = 0;
	int i;

	rig_start(&g, SIM_PEN_MOTORISED, 64);
	CHECK_EQ(cp_simple(&g, NL_CP_SET_LIVE_RATE, 4), NL_CP_SUCCESS);
	(void)arm(&g, &s, NL_ZONE_NECK);
	CHECK_EQ(sim_pen_start_pass(g.pen), 0);
	fake_radio_clear(&g.r);
	run_ms(&g, 10000);
	for (unsigned k = 0; k < g.r.n; k++) {
		struct fake_msg *m = &g.r.msgs[k];

		if (m->chr == SIM_CHR_LIVE_STATUS) {
			CHECK(!m->indication);
			CHECK_EQ(nl_live_decode(m->val, m->len, &lv), 0);
			CHECK_EQ(lv.state, NL_PEN_STATE_RUNNING);
			CHECK(lv.flags & NL_LIVE_MOTOR_ON);
			CHECK_EQ(lv.session_id, 42);
			if (lives)
				CHECK_EQ(lv.sample, (uint16_t)(prev_sample + 1));
			prev_sample = lv.sample;
			lives++;
		}
	}
	/* 4 Hz over 10 s of pen time */
	CHECK(lives >= 39 && lives <= 41);
	/* pause: Pen Status is indicated with the new state */
	fake_radio_clear(&g.r);
	CHECK_EQ(sim_pen_pause(g.pen), 0);
	i = fake_radio_last(&g.r, SIM_CHR_PEN_STATUS, 0);
	CHECK(i >= 0);
	CHECK(g.r.msgs[i].indication);
	CHECK_EQ(nl_pen_status_decode(g.r.msgs[i].val, g.r.msgs[i].len, &st), 0);
	CHECK_EQ(st.state, NL_PEN_STATE_PAUSED);
	CHECK(st.flags & NL_STATUS_SESSION_ACTIVE);
	/* one indication in flight: later changes wait for the confirmation */
	CHECK_EQ(sim_pen_resume(g.pen), 0);
	CHECK_EQ(sim_pen_pause(g.pen), 0);
	for (unsigned k = 0; k < g.r.n; k++)
		statuses += g.r.msgs[k].chr == SIM_CHR_PEN_STATUS;
	CHECK_EQ(statuses, 1);
	fake_radio_confirm_all(&g.r);
	i = fake_radio_last(&g.r, SIM_CHR_PEN_STATUS, 0);
	CHECK_EQ(nl_pen_status_decode(g.r.msgs[i].val, g.r.msgs[i].len, &st), 0);
	CHECK_EQ(st.state, NL_PEN_STATE_PAUSED);
	CHECK_EQ(st.last_seq, info(&g).last_seq);
	/* not subscribed: nothing is sent */
	sim_pen_gatt_ops()->cccd(g.pen, SIM_CHR_LIVE_STATUS, 0);
	fake_radio_clear(&g.r);
	run_ms(&g, 2000);
	CHECK_EQ(fake_radio_last(&g.r, SIM_CHR_LIVE_STATUS, 0), -1);
	rig_stop(&g);
}

static void test_power_loss_and_clock(void)
{
	struct rig g;
	struct nl_limit_set s = limits(1500);
	uint32_t before, epoch;
	int n;

	rig_start(&g, SIM_PEN_MOTORISED, 64);
	epoch = info(&g).store_epoch;
	(void)arm(&g, &s, NL_ZONE_CHEEKS);
	CHECK_EQ(sim_pen_start_pass(g.pen), 0);
	run_ms(&g, 4000);
	before = info(&g).last_seq;
	sim_pen_power_off(g.pen);
	CHECK_EQ(state(&g), NL_PEN_STATE_OFF);
	CHECK_EQ(g.r.disconnects, 1);
	g.m.now += 5000;
	CHECK_EQ(sim_pen_power_on(g.pen), 0);
	CHECK_EQ(state(&g), NL_PEN_STATE_IDLE);
	/* 10.9: a session set in force at the power loss becomes the fallback */
	CHECK_EQ(info(&g).limit_source, NL_LIMIT_SOURCE_FALLBACK);
	CHECK_EQ(info(&g).store_epoch, epoch);
	fake_radio_connect(&g.r, 23);
	fake_radio_confirm_all(&g.r);
	n = all_records(&g);
	CHECK_EQ(recs[n - 3].hdr.seq, before + 1); /* none reused, none skipped */
	CHECK_EQ(recs[n - 3].hdr.type, NL_RECORD_SESSION_END);
	CHECK_EQ(recs[n - 3].u.session_end.reason, NL_SESSION_END_POWER_LOSS);
	CHECK_EQ(recs[n - 3].hdr.session_id, 42);
	CHECK(recs[n - 3].hdr.flags & NL_REC_AUTHORISED);
	CHECK_EQ(recs[n - 2].hdr.type, NL_RECORD_LIMIT);
	CHECK_EQ(recs[n - 2].u.limit.event, NL_LIMIT_EVENT_FALLBACK);
	/* the attached cartridge counts as used after the power loss */
	CHECK_EQ(recs[n - 1].hdr.type, NL_RECORD_CARTRIDGE);
	CHECK_EQ(recs[n - 1].u.cartridge.reject_reason, NL_REJECT_REUSED);
	/* clock: drift, then set by the gateway */
	before = info(&g).pen_time;
	sim_pen_set_clock_drift(g.pen, 100000); /* +10 % */
	run_ms(&g, 100000);
	CHECK_EQ(info(&g).pen_time, before + 110);
	CHECK_EQ(cp_simple(&g, NL_CP_SET_TIME, 900000000), NL_CP_SUCCESS);
	CHECK_EQ(info(&g).pen_time, 900000000);
	n = all_records(&g);
	CHECK_EQ(recs[n - 1].hdr.type, NL_RECORD_TIME_CHANGE);
	CHECK_EQ(recs[n - 1].u.time_change.old_time, before + 110);
	CHECK_EQ(recs[n - 1].u.time_change.new_time, 900000000);
	CHECK_EQ(recs[n - 1].u.time_change.source, NL_TIME_SOURCE_GATEWAY);
	CHECK_EQ(recs[n - 1].hdr.pen_time, 900000000);
	rig_stop(&g);
}

static void test_battery(void)
{
	struct rig g;
	struct nl_limit_set s = limits(1500);
	int n;

	rig_start(&g, SIM_PEN_MOTORISED, 64);
	(void)arm(&g, &s, NL_ZONE_CHIN);
	sim_pen_set_battery(g.pen, 4);
	CHECK_EQ(sim_pen_start_pass(g.pen), 0);
	run_ms(&g, 3u * 60000u);
	CHECK(info(&g).battery_pct <= 2);
	CHECK_EQ(state(&g), NL_PEN_STATE_IDLE);
	n = all_records(&g);
	CHECK_EQ(recs[n - 1].hdr.type, NL_RECORD_LIMIT); /* back to the factory set */
	CHECK_EQ(recs[n - 2].hdr.type, NL_RECORD_SESSION_END);
	CHECK_EQ(recs[n - 2].u.session_end.reason, NL_SESSION_END_BATTERY);
	CHECK_EQ(recs[n - 3].u.segment.end_reason, NL_SEGMENT_END_BATTERY);
	CHECK(recs[n - 3].u.segment.status & NL_SEG_BATTERY_LOW);
	sim_pen_set_charging(g.pen, true);
	run_ms(&g, 60000);
	CHECK(info(&g).battery_pct >= 3);
	rig_stop(&g);
}

/* The whole pen with its power cut at every byte it writes to flash: after
 * power comes back, no sequence number is reused, no acknowledged record
 * is reported again, a lock that was answered SUCCESS is still in force. */
static void test_pen_power_cut_everywhere(void)
{
	unsigned long long total = 0;

	for (long long k = -1; k < (long long)total; k++) {
		struct rig g;
		struct nl_limit_set s = limits(1500);
		struct sim_cartridge c;
		struct nl_cp_req q = {.op = NL_CP_ACK_RECORDS};
		uint32_t hash = 0, exposed = 0, acked = 0, v;
		bool locked = false;
		int n;

		memset(&g, 0, sizeof(g));
		mem_platform_init_size(&g.m, 64 * 1024);
		g.m.budget = k;
		sim_pen_config_default(&g.cfg);
		g.cfg.store_capacity = 12;
		g.cfg.region_bytes = 768; /* compaction runs during the script */
		g.cfg.clock_start = 800000000;
		if (sim_pen_new(&g.pen, &g.cfg, &g.m.plat) < 0) {
			CHECK(g.m.cut);
			mem_free_only(&g);
			continue;
		}
		fake_radio_init(&g.r, g.pen);
		(void)sim_pen_power_on(g.pen);
		fake_radio_connect(&g.r, 23);
		fake_radio_confirm_all(&g.r);
		c = cartridge(&g);
		(void)sim_pen_insert_cartridge(g.pen, &c);
		if (cp_set_limits(&g, &s, &hash) == NL_CP_SUCCESS &&
		    cp_authorise(&g, 9, hash, 600) == NL_CP_SUCCESS) {
			(void)sim_pen_select_zone(g.pen, NL_ZONE_CHIN);
			for (int p = 0; p < 8; p++) {
				(void)sim_pen_start_pass(g.pen);
				run_ms(&g, 300);
				(void)sim_pen_end_pass(g.pen);
				if (info(&g).last_seq > exposed)
					exposed = info(&g).last_seq;
				if (p % 2 == 1) {
					q.u.ack.store_epoch = info(&g).store_epoch;
					q.u.ack.seq = exposed;
					if (pen_cp(&g.r, &q, &v) == NL_CP_SUCCESS)
						acked = exposed;
				}
			}
			locked =
				cp_simple(&g, NL_CP_LOCK, NL_LOCK_REASON_POLICY) == NL_CP_SUCCESS &&
				!g.m.cut;
			(void)cp_simple(&g, NL_CP_STOP_SESSION, 0);
		}
		if (info(&g).last_seq > exposed)
			exposed = info(&g).last_seq;
		if (k < 0) {
			total = g.m.spent; /* the uncut run measures the script */
			CHECK(acked > 0 && locked);
			CHECK(g.m.erases > 2); /* compaction ran */
		}
		/* power comes back */
		sim_pen_power_off(g.pen);
		mem_platform_restore(&g.m);
		CHECK_EQ(sim_pen_power_on(g.pen), 0);
		CHECK(info(&g).last_seq >= exposed);
		if (locked)
			CHECK_EQ(state(&g), NL_PEN_STATE_LOCKED);
		fake_radio_connect(&g.r, 23);
		fake_radio_confirm_all(&g.r);
		n = all_records(&g);
		for (int i = 0; i < n; i++)
			CHECK(recs[i].hdr.seq > acked);
		/* a new record gets a new number */
		CHECK_EQ(cp_simple(&g, NL_CP_SET_TIME, 800001000), NL_CP_SUCCESS);
		n = all_records(&g);
		CHECK(n > 0);
		CHECK(recs[n - 1].hdr.type == NL_RECORD_TIME_CHANGE);
		CHECK(recs[n - 1].hdr.seq > exposed);
		rig_stop(&g);
	}
	CHECK(total > 500);
	fprintf(stderr, "pen power cut at each of %llu bytes: ok\n", total);
}

int main(void)
{
	test_boot_and_reads();
	test_transitions();
	test_cp_state_rules();
	test_cp_protocol_errors();
	test_depth_clamp_motorised();
	test_dial_pen();
	test_pass_limits();
	test_needle_on_limits_offline();
	test_lock_persists();
	test_lifetime_fallback();
	test_cartridge_lockout();
	test_store_full_and_ack();
	test_racp();
	test_racp_malformed();
	test_live_and_indications();
	test_power_loss_and_clock();
	test_battery();
	test_pen_power_cut_everywhere();
	fprintf(stderr, "test-pen: ok\n");
	return 0;
}
