/* SPDX-License-Identifier: MIT */
/*
 * End to end: needlelink-sim runs a pen on the local radio; this test is
 * the central. It connects, exchanges the MTU, discovers, reads Feature and
 * the serial, subscribes, sets the clock, writes a limit set and authorises
 * a session through the Pen Control Point, lets the pen's scenario treat,
 * then collects every record with an RACP REPORT (segmented notifications,
 * reassembled and decoded with nlproto), acknowledges them and checks the
 * store is empty.
 *
 * usage: test-e2e NEEDLELINK_SIM
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lradio.h"
#include "needlelink/cp.h"
#include "needlelink/racp.h"
#include "needlelink/record.h"
#include "needlelink/seg.h"
#include "sim-test.h"

#define SERIAL "E2E-PEN"
#define SESSION 4242u
#define GUARD_USEC (240ULL * 1000000ULL) /* a hang fails, it is not a timing check */

enum step {
	STEP_WAIT_SOCKET,
	STEP_CONNECT,
	STEP_MTU,
	STEP_DISCOVER,
	STEP_READ_FEATURE,
	STEP_READ_SERIAL,
	STEP_SUBSCRIBE,
	STEP_SET_TIME,
	STEP_SET_LIMITS,
	STEP_AUTHORISE,
	STEP_TREATING,
	STEP_REPORT,
	STEP_ACK,
	STEP_REPORT_NUMBER,
	STEP_DONE,
};

struct t {
	sd_event *ev;
	struct lradio_client *c;
	pid_t pid;
	char dir[128], sock[256];
	enum step step;
	uint16_t h[SIM_CHR_COUNT];
	unsigned subs;
	struct nl_feature feat;
	uint32_t hash;
	bool seen_running, seen_motor_live;
	unsigned lives;
	struct nl_seg_rx rx;
	struct nl_record recs[64];
	unsigned nrecs;
	uint32_t last_seq, epoch;
	sd_event_source *timer;
};

static void next(struct t *t);

static int on_defer(sd_event_source *s, void *ud)
{
	next(ud);
	return 0;
}

/* Runs the next step once the value handler returned: the client confirms
 * an indication after its handler, and the pen answers a Pen CP write made
 * before that confirmation with ATT 0xFE (protocol 2.5). */
static void next_later(struct t *t)
{
	CHECK(sd_event_add_defer(t->ev, NULL, on_defer, t) >= 0);
}

static void fail_now(const char *what, int err)
{
	fprintf(stderr, "test-e2e: %s failed: %d\n", what, err);
	exit(1);
}

static void on_status(struct lradio_client *c, int err, uint8_t att_err, void *ud)
{
	struct t *t = ud;

	if (err < 0) {
		fprintf(stderr, "att error 0x%02x\n", att_err);
		fail_now("write", err);
	}
	if (t->step == STEP_SUBSCRIBE) {
		if (--t->subs == 0) {
			t->step = STEP_SET_TIME;
			next(t);
		}
	}
	/* CP and RACP steps advance on the indication, not on the write. */
}

static void cp_write(struct t *t, const struct nl_cp_req *q)
{
	uint8_t buf[NL_PDU_MAX];
	int n = nl_cp_req_encode(q, buf, sizeof(buf));

	CHECK(n > 0);
	CHECK(lradio_client_write(t->c, t->h[SIM_CHR_PEN_CP], buf, (size_t)n, on_status, t, NULL) >
	      0);
}

static void racp_write(struct t *t, uint8_t op, uint8_t oper)
{
	struct nl_racp_req q = {.op = op, .oper = oper};
	uint8_t buf[32];
	int n = nl_racp_req_encode(&q, buf, sizeof(buf));

	CHECK(n > 0);
	CHECK(lradio_client_write(t->c, t->h[SIM_CHR_RACP], buf, (size_t)n, on_status, t, NULL) >
	      0);
}

static void on_cp_rsp(struct t *t, const uint8_t *val, size_t len)
{
	struct nl_cp_rsp rsp;

	CHECK_EQ(nl_cp_rsp_decode(val, len, &rsp), 0);
	if (rsp.result != NL_CP_SUCCESS) {
		fprintf(stderr, "cp %s -> %s\n", nl_cp_op_name(rsp.req_op),
			nl_cp_result_name(rsp.result));
		exit(1);
	}
	if (t->step == STEP_SET_TIME) {
		CHECK_EQ(rsp.req_op, NL_CP_SET_TIME);
		t->step = STEP_SET_LIMITS;
	} else if (t->step == STEP_SET_LIMITS) {
		CHECK_EQ(rsp.req_op, NL_CP_SET_LIMITS);
		t->hash = rsp.value;
		t->step = STEP_AUTHORISE;
	} else if (t->step == STEP_AUTHORISE) {
		CHECK_EQ(rsp.req_op, NL_CP_AUTHORISE);
		CHECK_EQ(rsp.value, SESSION);
		t->step = STEP_TREATING;
		fprintf(stderr, "test-e2e: session authorised, the pen treats\n");
		return;
	} else if (t->step == STEP_ACK) {
		CHECK_EQ(rsp.req_op, NL_CP_ACK_RECORDS);
		CHECK_EQ(rsp.value, 0); /* nothing left */
		t->step = STEP_REPORT_NUMBER;
	} else {
		fail_now("unexpected cp response", -EPROTO);
	}
	next_later(t);
}

static void check_records(struct t *t)
{
	unsigned starts = 0, ends = 0, segs = 0;
	uint32_t seg_ms = 0;

	CHECK(t->nrecs >= 8);
	for (unsigned i = 0; i < t->nrecs; i++) {
		const struct nl_record *r = &t->recs[i];

		CHECK_EQ(r->hdr.seq, i + 1); /* fresh store: 1.. without gaps */
		CHECK_EQ(r->hdr.store_epoch, t->feat.store_epoch);
		switch (r->hdr.type) {
		case NL_RECORD_SESSION_START:
			starts++;
			CHECK_EQ(r->hdr.session_id, SESSION);
			CHECK_EQ(r->u.session_start.limits_hash, t->hash);
			CHECK_EQ(r->u.session_start.limit_source, NL_LIMIT_SOURCE_SESSION);
			CHECK(r->hdr.flags & NL_REC_CLOCK_SET);
			break;
		case NL_RECORD_SEGMENT:
			segs++;
			CHECK_EQ(r->hdr.session_id, SESSION);
			CHECK(r->hdr.flags & NL_REC_AUTHORISED);
			CHECK_EQ(r->u.segment.zone, NL_ZONE_CHEEKS);
			CHECK_EQ(r->u.segment.depth_set_um, 1000);
			CHECK_EQ(r->u.segment.speed_hz, 120);
			CHECK_EQ(r->u.segment.strokes, r->u.segment.run_ms * 120 / 1000);
			seg_ms += r->u.segment.run_ms;
			break;
		case NL_RECORD_SESSION_END:
			ends++;
			CHECK_EQ(r->u.session_end.reason, NL_SESSION_END_STOPPED);
			CHECK_EQ(r->u.session_end.needle_on_ms, 40000);
			break;
		case NL_RECORD_CARTRIDGE:
			/* inserted before the clock was set */
			CHECK(!(r->hdr.flags & NL_REC_CLOCK_SET));
			break;
		case NL_RECORD_TIME_CHANGE:
			CHECK_EQ(r->u.time_change.new_time, 820000000);
			break;
		default:
			break;
		}
	}
	CHECK_EQ(starts, 1);
	CHECK_EQ(ends, 1);
	CHECK_EQ(segs, 3); /* three motor runs (a pause ends a run) */
	CHECK_EQ(seg_ms, 40000);
	CHECK(t->lives > 0);
	CHECK(t->seen_motor_live);
}

static void on_racp(struct t *t, const uint8_t *val, size_t len)
{
	struct nl_racp_rsp rsp;

	CHECK_EQ(nl_racp_rsp_decode(val, len, &rsp), 0);
	if (t->step == STEP_REPORT) {
		CHECK_EQ(rsp.op, NL_RACP_RESPONSE_CODE);
		CHECK_EQ(rsp.req_op, NL_RACP_REPORT);
		CHECK_EQ(rsp.code, NL_RACP_SUCCESS);
		CHECK_EQ(t->recs[t->nrecs - 1].hdr.seq, t->last_seq);
		check_records(t);
		fprintf(stderr, "test-e2e: %u records reported and decoded\n", t->nrecs);
		t->step = STEP_ACK;
		next_later(t);
	} else if (t->step == STEP_REPORT_NUMBER) {
		CHECK_EQ(rsp.op, NL_RACP_NUMBER_RESPONSE);
		CHECK_EQ(rsp.count, 0);
		t->step = STEP_DONE;
		next_later(t);
	} else {
		fail_now("unexpected racp indication", -EPROTO);
	}
}

static void on_value(struct lradio_client *c, uint16_t handle, bool ind, const uint8_t *val,
		     size_t len, void *ud)
{
	struct t *t = ud;

	if (handle == t->h[SIM_CHR_PEN_CP]) {
		CHECK(ind);
		on_cp_rsp(t, val, len);
	} else if (handle == t->h[SIM_CHR_RACP]) {
		CHECK(ind);
		on_racp(t, val, len);
	} else if (handle == t->h[SIM_CHR_RECORD]) {
		const uint8_t *rec;
		int r = nl_seg_rx_feed(&t->rx, val, len, &rec);

		CHECK(len <= (size_t)lradio_client_mtu(c) - 3);
		CHECK(r >= 0);
		if (r > 0) {
			CHECK(t->nrecs < 64);
			CHECK_EQ(nl_record_decode(rec, (size_t)r, &t->recs[t->nrecs]), 0);
			t->nrecs++;
		}
	} else if (handle == t->h[SIM_CHR_LIVE_STATUS]) {
		struct nl_live lv;

		CHECK_EQ(nl_live_decode(val, len, &lv), 0);
		t->lives++;
		if (lv.flags & NL_LIVE_MOTOR_ON) {
			t->seen_motor_live = true;
			CHECK_EQ(lv.session_id, SESSION);
		}
	} else if (handle == t->h[SIM_CHR_PEN_STATUS]) {
		struct nl_pen_status st;

		CHECK(ind);
		CHECK_EQ(nl_pen_status_decode(val, len, &st), 0);
		if (st.state == NL_PEN_STATE_RUNNING)
			t->seen_running = true;
		if (t->step == STEP_TREATING && t->seen_running && st.state == NL_PEN_STATE_IDLE &&
		    !(st.flags & NL_STATUS_SESSION_ACTIVE)) {
			t->last_seq = st.last_seq;
			t->epoch = st.store_epoch;
			fprintf(stderr, "test-e2e: session over, last seq %u\n", st.last_seq);
			t->step = STEP_REPORT;
			next_later(t);
		}
	}
}

static void on_read(struct lradio_client *c, int err, uint8_t att_err, const uint8_t *val,
		    size_t len, void *ud)
{
	struct t *t = ud;

	if (err < 0)
		fail_now("read", err);
	if (t->step == STEP_READ_FEATURE) {
		CHECK_EQ(nl_feature_decode(val, len, &t->feat), 0);
		CHECK_EQ(t->feat.proto_major, NL_PROTO_MAJOR);
		CHECK(t->feat.flags & NL_FEAT_MOTORISED_DEPTH);
		CHECK_EQ(t->feat.store_capacity, 200);
		CHECK_EQ(t->feat.live_rate_hz, 5);
		t->step = STEP_READ_SERIAL;
	} else {
		CHECK_EQ(len, strlen(SERIAL));
		CHECK(memcmp(val, SERIAL, len) == 0);
		t->step = STEP_SUBSCRIBE;
	}
	next(t);
}

static void on_discover(struct lradio_client *c, int err, const struct lradio_attr *a, size_t n,
			void *ud)
{
	struct t *t = ud;

	if (err < 0)
		fail_now("discover", err);
	for (unsigned i = 0; i < SIM_CHR_COUNT; i++)
		CHECK_EQ(lradio_client_find_handle(c, sim_chr_table()[i].uuid, &t->h[i]), 0);
	t->step = STEP_READ_FEATURE;
	next(t);
}

static void on_mtu(struct lradio_client *c, int err, uint16_t mtu, void *ud)
{
	struct t *t = ud;

	if (err < 0)
		fail_now("mtu", err);
	CHECK_EQ(mtu, 40);
	t->step = STEP_DISCOVER;
	next(t);
}

static void on_connect(struct lradio_client *c, int err, const struct lradio_hello *h, void *ud)
{
	struct t *t = ud;

	if (err < 0)
		fail_now("connect", err);
	CHECK(strcmp(h->adv.serial, SERIAL) == 0);
	t->step = STEP_MTU;
	next(t);
}

static void on_disconnect(struct lradio_client *c, int reason, void *ud)
{
	fail_now("link dropped", reason);
}

static int on_poll(sd_event_source *s, uint64_t usec, void *ud)
{
	struct t *t = ud;
	struct stat st;

	if (stat(t->sock, &st) == 0) {
		t->step = STEP_CONNECT;
		next(t);
		return 0;
	}
	return sd_event_source_set_time(s, usec + 50000) < 0
		       ? -1
		       : sd_event_source_set_enabled(s, SD_EVENT_ONESHOT);
}

static int on_guard(sd_event_source *s, uint64_t usec, void *ud)
{
	struct t *t = ud;

	fprintf(stderr, "test-e2e: stuck at step %d\n", t->step);
	kill(t->pid, SIGTERM);
	exit(1);
}

static void next(struct t *t)
{
	struct nl_cp_req q;

	memset(&q, 0, sizeof(q));
	switch (t->step) {
	case STEP_WAIT_SOCKET:
		break;
	case STEP_CONNECT:
		CHECK_EQ(lradio_client_connect(t->c, t->sock, on_connect, t, NULL), 0);
		break;
	case STEP_MTU:
		CHECK(lradio_client_exchange_mtu(t->c, 40, on_mtu, t, NULL) > 0);
		break;
	case STEP_DISCOVER:
		CHECK(lradio_client_discover(t->c, on_discover, t, NULL) > 0);
		break;
	case STEP_READ_FEATURE:
		CHECK(lradio_client_read(t->c, t->h[SIM_CHR_FEATURE], on_read, t, NULL) > 0);
		break;
	case STEP_READ_SERIAL:
		CHECK(lradio_client_read(t->c, t->h[SIM_CHR_DIS_SERIAL], on_read, t, NULL) > 0);
		break;
	case STEP_SUBSCRIBE: {
		static const struct {
			enum sim_chr chr;
			uint16_t v;
		} subs[] = {
			{SIM_CHR_RECORD, SIM_CCCD_NOTIFY},
			{SIM_CHR_LIVE_STATUS, SIM_CCCD_NOTIFY},
			{SIM_CHR_RACP, SIM_CCCD_INDICATE},
			{SIM_CHR_PEN_CP, SIM_CCCD_INDICATE},
			{SIM_CHR_PEN_STATUS, SIM_CCCD_INDICATE},
		};

		nl_seg_rx_reset(&t->rx);
		t->subs = 5;
		for (unsigned i = 0; i < 5; i++)
			CHECK(lradio_client_write_cccd(t->c, t->h[subs[i].chr], subs[i].v,
						       on_status, t, NULL) > 0);
		break;
	}
	case STEP_SET_TIME:
		q.op = NL_CP_SET_TIME;
		q.u.pen_time = 820000000;
		cp_write(t, &q);
		break;
	case STEP_SET_LIMITS:
		q.op = NL_CP_SET_LIMITS;
		q.u.limits = (struct nl_limit_set){.format = 1,
						   .lifetime_s = 3600,
						   .depth_cap_um = 1500,
						   .pass_warn = 4,
						   .pass_lock = 6};
		cp_write(t, &q);
		break;
	case STEP_AUTHORISE:
		q.op = NL_CP_AUTHORISE;
		q.u.authorise.session_id = SESSION;
		q.u.authorise.limits_hash = t->hash;
		q.u.authorise.lifetime_s = 3600;
		cp_write(t, &q);
		break;
	case STEP_TREATING:
		break;
	case STEP_REPORT:
		racp_write(t, NL_RACP_REPORT, NL_RACP_ALL);
		break;
	case STEP_ACK:
		q.op = NL_CP_ACK_RECORDS;
		q.u.ack.store_epoch = t->epoch;
		q.u.ack.seq = t->last_seq;
		cp_write(t, &q);
		break;
	case STEP_REPORT_NUMBER:
		racp_write(t, NL_RACP_REPORT_NUMBER, NL_RACP_ALL);
		break;
	case STEP_DONE:
		sd_event_exit(t->ev, 0);
		break;
	}
}

static const char scenario[] =
	"{\"pen\":{\"serial\":\"" SERIAL "\",\"kind\":\"motorised\",\"live_rate_hz\":5,"
	"\"store_capacity\":200,\"clock\":\"unset\"},"
	"\"cartridges\":{\"c\":{\"uid\":\"auto\"}},"
	"\"timeline\":["
	"{\"do\":\"insert\",\"cartridge\":\"c\"},"
	"{\"do\":\"wait_armed\",\"timeout_s\":100000},"
	"{\"do\":\"zone\",\"zone\":\"cheeks\"},{\"do\":\"depth\",\"mm\":1.0},"
	"{\"do\":\"speed\",\"hz\":120},"
	"{\"after\":1,\"do\":\"start_pass\"},{\"after\":20,\"do\":\"end_pass\"},"
	"{\"after\":2,\"do\":\"start_pass\"},{\"after\":10,\"do\":\"pause\"},"
	"{\"after\":3,\"do\":\"resume\"},{\"after\":10,\"do\":\"end_pass\"},"
	"{\"after\":2,\"do\":\"end_session\"},"
	"{\"after\":100000,\"do\":\"note\",\"text\":\"idle\"}]}";

int main(int argc, char **argv)
{
	static struct t t;
	char scn[256], state[256], log[256];
	const char *args[16];
	int st, n = 0;
	FILE *f;

	if (argc != 2) {
		fprintf(stderr, "usage: %s NEEDLELINK_SIM\n", argv[0]);
		return 2;
	}
	snprintf(t.dir, sizeof(t.dir), "/tmp/nl-e2e-XXXXXX");
	CHECK(mkdtemp(t.dir));
	snprintf(scn, sizeof(scn), "%s/e2e.json", t.dir);
	snprintf(state, sizeof(state), "%s/state", t.dir);
	snprintf(log, sizeof(log), "%s/sim.log", t.dir);
	snprintf(t.sock, sizeof(t.sock), "%s/radio/%s.sock", t.dir, SERIAL);
	f = fopen(scn, "we");
	CHECK(f);
	fputs(scenario, f);
	fclose(f);
	{
		static char radio[200];

		snprintf(radio, sizeof(radio), "%s/radio", t.dir);
		args[n++] = argv[1];
		args[n++] = "--scenario";
		args[n++] = scn;
		args[n++] = "--time-factor";
		args[n++] = "10";
		args[n++] = "--state-dir";
		args[n++] = state;
		args[n++] = "--radio-dir";
		args[n++] = radio;
		args[n++] = "--wipe";
		args[n] = NULL;
	}
	t.pid = sim_test_spawn(args, log);

	CHECK(sd_event_default(&t.ev) >= 0);
	CHECK_EQ(lradio_client_new(t.ev, &t.c), 0);
	lradio_client_set_value_handler(t.c, on_value, &t);
	lradio_client_set_disconnect_handler(t.c, on_disconnect, &t);
	CHECK(sd_event_add_time_relative(t.ev, &t.timer, CLOCK_MONOTONIC, 50000, 1000, on_poll,
					 &t) >= 0);
	CHECK(sd_event_add_time_relative(t.ev, NULL, CLOCK_MONOTONIC, GUARD_USEC, 0, on_guard,
					 &t) >= 0);
	CHECK(sd_event_loop(t.ev) >= 0);
	CHECK_EQ(t.step, STEP_DONE);

	lradio_client_free(t.c);
	kill(t.pid, SIGTERM);
	CHECK_EQ(waitpid(t.pid, &st, 0), t.pid);
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0); /* clean stop on SIGTERM */
	sd_event_source_unref(t.timer);
	sd_event_unref(t.ev);
	sim_test_rm_rf(t.dir);
	fprintf(stderr, "test-e2e: ok\n");
	return 0;
}
