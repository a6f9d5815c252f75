/* SPDX-License-Identifier: MIT */
/*
 * End-to-end tests of the gateway link: the real simulated pen (firmware
 * core + local radio server) against the sim transport and the pen manager,
 * all on one sd-event loop. Usage: test-gwlink SCENARIO.
 */
#include <dirent.h>
#include <signal.h>
#include <spawn.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "log.h"

/* ---- conditions -------------------------------------------------------- */

struct want_records {
	const char *serial;
	size_t n;
};

static bool cond_records(struct harness *h, void *data)
{
	struct want_records *w = data;

	return h_seen(h, w->serial)->n_seqs >= w->n;
}

struct want_store {
	struct tpen *tp;
	unsigned used;
};

static bool cond_store_used(struct harness *h, void *data)
{
	struct want_store *w = data;
	struct sim_pen_info info;

	h_pen_info(w->tp, &info);
	return info.store_used == w->used;
}

static bool cond_clock_set(struct harness *h, void *data)
{
	struct sim_pen_info info;

	h_pen_info(data, &info);
	return info.clock_set;
}

static bool cond_not_ready(struct harness *h, void *serial)
{
	return h_state(h, serial) != PENMGR_STATE_READY;
}

static bool cond_ready_and_idle(struct harness *h, void *serial)
{
	struct penmgr_snapshot snap;

	return penmgr_get_snapshot(h->pm, serial, &snap) == 0 &&
	       snap.state == PENMGR_STATE_READY && h_held(h) == 0 &&
	       snap.acked_seq == snap.committed_seq;
}

static bool cond_acked(struct harness *h, void *data)
{
	struct want_records *w = data;
	struct penmgr_snapshot snap;

	return penmgr_get_snapshot(h->pm, w->serial, &snap) == 0 && snap.acked_seq >= w->n;
}

static bool cond_ignored(struct harness *h, void *data)
{
	return penmgr_ignored(h->pm) >= 1;
}

struct want_alert {
	const char *serial;
	enum penmgr_alert alert;
};

static bool cond_alert(struct harness *h, void *data)
{
	struct want_alert *w = data;

	return h_seen(h, w->serial)->alerts[w->alert] > 0;
}

struct want_live {
	const char *serial;
	uint32_t above;
};

static bool cond_live(struct harness *h, void *data)
{
	struct want_live *w = data;

	return h_counters(h, w->serial).live > w->above;
}

static bool cond_corrupt_limit(struct harness *h, void *data)
{
	struct want_records *w = data;

	return h_seen(h, w->serial)->alerts[PENMGR_ALERT_CORRUPT_LIMIT] >= w->n;
}

/* Every seq in 1..last reached the sink exactly once, in order. */
static void check_exactly_once(struct harness *h, const char *serial, uint32_t last)
{
	struct h_seen *s = h_seen(h, serial);

	CHECK_EQ(s->n_seqs, last);
	for (uint32_t i = 0; i < last; i++)
		CHECK_EQ(s->seqs[i], i + 1);
	for (uint32_t seq = 1; seq <= last; seq++)
		CHECK_EQ(s->delivered[seq], 1);
	CHECK_EQ(s->alerts[PENMGR_ALERT_RECORD_GAP], 0);
}

/* ---- scenarios --------------------------------------------------------- */

/* Discovery via inotify, catch-up of stored records in order, ACK only
 * through the highest contiguous committed record, SET_TIME of an unset
 * clock, records made while connected fetched at once. */
static void test_catchup(void)
{
	static const char *const allow[] = { "NLT-A1", NULL };
	struct harness h;
	struct tpen *a;
	struct sim_pen_info info;
	struct penmgr_snapshot snap;
	struct penmgr_counters cnt;

	h_init(&h);
	h.mode = H_COMMIT_HOLD;
	h_gateway_start(&h, allow);
	/* The pen appears after the gateway: found through inotify. */
	a = h_pen_new(&h, "NLT-A1", false);
	h_pen_records(a, 6);

	/* The clock was not set: the gateway sets it, which makes the pen
	 * write a TIME_CHANGE record after the 6. */
	h_wait(&h, cond_clock_set, a, 20000, "pen clock set");
	CHECK_EQ(h_seen(&h, "NLT-A1")->alerts[PENMGR_ALERT_CLOCK_SET], 1);
	h_pen_info(a, &info);
	CHECK_EQ(info.last_seq, 7);
	h_wait(&h, cond_records, &(struct want_records){ "NLT-A1", 7 }, 20000, "7 records");
	h_wait(&h, h_cond_ready, "NLT-A1", 20000, "READY");
	check_exactly_once(&h, "NLT-A1", 7);
	CHECK_EQ(h_held(&h), 7);

	/* Nothing committed: nothing acknowledged, the pen keeps everything. */
	CHECK(penmgr_get_snapshot(h.pm, "NLT-A1", &snap) == 0);
	CHECK_EQ(snap.committed_seq, 0);
	CHECK_EQ(snap.acked_seq, 0);
	CHECK_EQ(h_counters(&h, "NLT-A1").acks, 0);
	h_pen_info(a, &info);
	CHECK_EQ(info.store_used, 7);

	/* A commit out of order does not move the contiguous mark. */
	CHECK(h_release(&h, "NLT-A1", 3, 0));
	CHECK(penmgr_get_snapshot(h.pm, "NLT-A1", &snap) == 0);
	CHECK_EQ(snap.committed_seq, 0);
	CHECK(h_release(&h, "NLT-A1", 1, 0));
	CHECK(penmgr_get_snapshot(h.pm, "NLT-A1", &snap) == 0);
	CHECK_EQ(snap.committed_seq, 1);
	CHECK(h_release(&h, "NLT-A1", 2, 0));
	CHECK(penmgr_get_snapshot(h.pm, "NLT-A1", &snap) == 0);
	CHECK_EQ(snap.committed_seq, 3);
	/* The pen prunes exactly what was committed. */
	h_wait(&h, cond_acked, &(struct want_records){ "NLT-A1", 3 }, 20000, "ack through 3");
	h_pen_info(a, &info);
	CHECK_EQ(info.store_used, 4);

	h_release_all(&h);
	h_wait(&h, cond_store_used, &(struct want_store){ a, 0 }, 20000, "store_used 0");

	/* Records made while connected: fetched on the Pen Status change. */
	h.mode = H_COMMIT_DEFERRED;
	h_release_all(&h);
	h_pen_records(a, 2);
	h_pen_info(a, &info);
	h_wait(&h, cond_records, &(struct want_records){ "NLT-A1", info.last_seq }, 20000,
	       "live records");
	h_wait(&h, cond_store_used, &(struct want_store){ a, 0 }, 20000, "store_used 0 again");
	check_exactly_once(&h, "NLT-A1", info.last_seq);

	cnt = h_counters(&h, "NLT-A1");
	CHECK_EQ(cnt.records, info.last_seq);
	CHECK_EQ(cnt.committed, info.last_seq);
	CHECK_EQ(cnt.duplicates, 0);
	CHECK_EQ(cnt.connects, 1);
	CHECK(cnt.acks >= 2);
	CHECK(penmgr_get_snapshot(h.pm, "NLT-A1", &snap) == 0);
	CHECK(snap.has_feature && snap.has_status && snap.has_cartridge && snap.has_limits);
	CHECK_EQ(snap.feature.proto_major, NL_PROTO_MAJOR);
	CHECK(strcmp(snap.model, "NL-Sim M1") == 0);
	CHECK(snap.mtu >= 109);
	CHECK_EQ(snap.committed_seq, info.last_seq);
	h_fini(&h);
}

/* A link drop with records committed and uncommitted around it: nothing
 * lost, nothing delivered twice, ACK only after the sink's commit. */
static void test_reconnect(void)
{
	static const char *const allow[] = { "NLT-B1", NULL };
	struct harness h;
	struct tpen *b;
	struct sim_pen_info info;
	struct penmgr_snapshot snap;
	struct penmgr_counters cnt;

	h_init(&h);
	b = h_pen_new(&h, "NLT-B1", true);
	h_pen_records(b, 4);
	h_gateway_start(&h, allow);
	h_wait(&h, cond_records, &(struct want_records){ "NLT-B1", 4 }, 20000, "4 records");
	h_wait(&h, cond_ready_and_idle, "NLT-B1", 20000, "READY, all acknowledged");
	h_wait(&h, cond_store_used, &(struct want_store){ b, 0 }, 20000, "store_used 0");

	/* Records arrive but their commits are held when the link drops. */
	h.mode = H_COMMIT_HOLD;
	h_pen_records(b, 2);
	h_wait(&h, cond_records, &(struct want_records){ "NLT-B1", 6 }, 20000, "6 records");
	CHECK_EQ(h_held(&h), 2);
	CHECK(lradio_server_set_in_range(b->srv, false) == 0);
	h_wait(&h, cond_not_ready, "NLT-B1", 20000, "link down");
	/* Not acknowledged: the pen still holds them. */
	h_pen_info(b, &info);
	CHECK_EQ(info.store_used, 2);
	/* The journal commits while the pen is away, and the pen makes more. */
	h_release_all(&h);
	CHECK(penmgr_get_snapshot(h.pm, "NLT-B1", &snap) == 0);
	CHECK_EQ(snap.committed_seq, 6);
	h_pen_records(b, 4);
	h.mode = H_COMMIT_DEFERRED;

	CHECK(lradio_server_set_in_range(b->srv, true) == 0);
	h_wait(&h, cond_records, &(struct want_records){ "NLT-B1", 10 }, 20000, "10 records");
	h_wait(&h, cond_store_used, &(struct want_store){ b, 0 }, 20000, "store_used 0");
	h_wait(&h, cond_ready_and_idle, "NLT-B1", 20000, "READY again");

	check_exactly_once(&h, "NLT-B1", 10);
	cnt = h_counters(&h, "NLT-B1");
	CHECK_EQ(cnt.connects, 2);
	CHECK_EQ(cnt.disconnects, 1);
	CHECK_EQ(cnt.records, 10);
	CHECK_EQ(cnt.committed, 10);
	CHECK(h_seen(&h, "NLT-B1")->ready_count == 2);
	h_fini(&h);
}

/* Corrupt notifications on one pen: counted, reported, that pen dropped
 * at the threshold; the other pen is untouched. */
static void test_corrupt(void)
{
	static const char *const allow[] = { "NLT-C1", "NLT-C2", NULL };
	static const uint8_t garbage[] = { 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08 };
	struct harness h;
	struct tpen *c1, *c2;
	struct penmgr_counters before2, after1, after2;
	struct penmgr_snapshot snap;
	uint8_t big[NL_PDU_MAX + 40];
	uint32_t live2;

	memset(big, 0x5a, sizeof(big));
	h_init(&h);
	c1 = h_pen_new(&h, "NLT-C1", true);
	c2 = h_pen_new(&h, "NLT-C2", true);
	h_gateway_start(&h, allow);
	h_wait(&h, h_cond_ready, "NLT-C1", 20000, "C1 READY");
	h_wait(&h, h_cond_ready, "NLT-C2", 20000, "C2 READY");
	before2 = h_counters(&h, "NLT-C2");

	/* Three values that fail their CRC, two larger than any value may be. */
	for (unsigned i = 0; i < 3; i++)
		CHECK(lradio_server_notify_raw(c1->srv, SIM_CHR_LIVE_STATUS, garbage,
					       sizeof(garbage)) == 0);
	for (unsigned i = 0; i < 2; i++)
		CHECK(lradio_server_notify_raw(c1->srv, SIM_CHR_CARTRIDGE, big, sizeof(big)) == 0);
	h_wait(&h, cond_alert, &(struct want_alert){ "NLT-C1", PENMGR_ALERT_CORRUPT_LIMIT }, 20000,
	       "C1 dropped for malformed data");
	after1 = h_counters(&h, "NLT-C1");
	CHECK_EQ(after1.corrupt, 5);
	CHECK_EQ(after1.errors[PENMGR_ERR_DECODE], 5);
	CHECK_EQ(after1.disconnects, 1);
	CHECK_EQ(h_seen(&h, "NLT-C1")->alerts[PENMGR_ALERT_CORRUPT], 5);

	/* C2 kept its link and keeps delivering Live Status. */
	after2 = h_counters(&h, "NLT-C2");
	CHECK_EQ(h_state(&h, "NLT-C2"), PENMGR_STATE_READY);
	CHECK_EQ(after2.disconnects, before2.disconnects);
	CHECK_EQ(after2.corrupt, 0);
	live2 = after2.live;
	h_wait(&h, cond_live, &(struct want_live){ "NLT-C2", live2 }, 20000, "C2 live status");
	CHECK_EQ(h_counters(&h, "NLT-C2").disconnects, 0);

	/* C1 comes back after its backoff, with a fresh per-link count. Two
	 * more links ended the same way put it in quarantine (12.2). */
	for (unsigned round = 2; round <= 3; round++) {
		h_wait(&h, h_cond_ready, "NLT-C1", 20000, "C1 READY again");
		CHECK_EQ(h_counters(&h, "NLT-C1").connects, round);
		for (unsigned i = 0; i < 5; i++)
			CHECK(lradio_server_notify_raw(c1->srv, SIM_CHR_LIVE_STATUS, garbage,
						       sizeof(garbage)) == 0);
		h_wait(&h, cond_corrupt_limit, &(struct want_records){ "NLT-C1", round }, 20000,
		       "C1 dropped again");
	}
	h_wait(&h, cond_alert, &(struct want_alert){ "NLT-C1", PENMGR_ALERT_QUARANTINED }, 20000,
	       "C1 quarantined");
	CHECK(penmgr_get_snapshot(h.pm, "NLT-C1", &snap) == 0);
	CHECK(snap.quarantined);
	CHECK_EQ(snap.state, PENMGR_STATE_BACKOFF);
	CHECK_EQ(h_counters(&h, "NLT-C1").connects, 3);

	/* An operator clears it: used again. */
	CHECK_EQ(penmgr_release(h.pm, "NLT-C1"), 0);
	h_wait(&h, h_cond_ready, "NLT-C1", 20000, "C1 READY after release");
	CHECK(penmgr_get_snapshot(h.pm, "NLT-C1", &snap) == 0);
	CHECK(!snap.quarantined);
	CHECK_EQ(penmgr_release(h.pm, "NLT-NONE"), -ENOENT);

	/* C2 was never affected. */
	after2 = h_counters(&h, "NLT-C2");
	CHECK_EQ(after2.disconnects, 0);
	CHECK_EQ(after2.corrupt, 0);
	CHECK_EQ(after2.connects, 1);
	CHECK_EQ(h_state(&h, "NLT-C2"), PENMGR_STATE_READY);
	(void)c2;
	h_fini(&h);
}

/* A record lost in transit (segmentation broken by a corrupt segment) is
 * detected as a gap, asked for again with REPORT RANGE and delivered; the
 * commit mark waits for it. */
static void test_gap(void)
{
	static const char *const allow[] = { "NLT-G1", NULL };
	struct harness h;
	struct tpen *g;
	struct penmgr_snapshot snap;
	struct penmgr_counters cnt;
	struct h_seen *s;
	uint8_t garbage[3];

	h_init(&h);
	g = h_pen_new(&h, "NLT-G1", true);
	h_pen_records(g, 2);
	h_gateway_start(&h, allow);
	h_wait(&h, cond_records, &(struct want_records){ "NLT-G1", 2 }, 20000, "2 records");
	h_wait(&h, cond_ready_and_idle, "NLT-G1", 20000, "READY, acknowledged");
	h_wait(&h, cond_acked, &(struct want_records){ "NLT-G1", 2 }, 20000, "ack through 2");

	/* One segment per record so far (MTU 247): the pen's next segment
	 * counter is 2. A segment with another counter breaks reassembly, so
	 * the next real record is lost on the way. */
	garbage[0] = (uint8_t)(0x03u | (((2u + 10u) % 64u) << 2));
	garbage[1] = 0xde;
	garbage[2] = 0xad;
	CHECK(lradio_server_notify_raw(g->srv, SIM_CHR_RECORD, garbage, sizeof(garbage)) == 0);
	h.mode = H_COMMIT_HOLD;
	h_pen_records(g, 4);
	h_wait(&h, cond_records, &(struct want_records){ "NLT-G1", 6 }, 20000, "6 records");
	s = h_seen(&h, "NLT-G1");
	/* 3 came last, through the refill. */
	CHECK_EQ(s->seqs[5], 3);
	for (uint32_t seq = 1; seq <= 6; seq++)
		CHECK_EQ(s->delivered[seq], 1);
	cnt = h_counters(&h, "NLT-G1");
	CHECK_EQ(cnt.gaps, 1);
	CHECK_EQ(cnt.corrupt, 2);

	/* Later records committed first: the mark stays below the hole. */
	CHECK(h_release(&h, "NLT-G1", 4, 0));
	CHECK(h_release(&h, "NLT-G1", 5, 0));
	CHECK(h_release(&h, "NLT-G1", 6, 0));
	CHECK(penmgr_get_snapshot(h.pm, "NLT-G1", &snap) == 0);
	CHECK_EQ(snap.committed_seq, 2);
	CHECK(h_release(&h, "NLT-G1", 3, 0));
	CHECK(penmgr_get_snapshot(h.pm, "NLT-G1", &snap) == 0);
	CHECK_EQ(snap.committed_seq, 6);
	h_wait(&h, cond_store_used, &(struct want_store){ g, 0 }, 20000, "store_used 0");
	h_wait(&h, cond_acked, &(struct want_records){ "NLT-G1", 6 }, 20000, "ack through 6");
	CHECK_EQ(s->alerts[PENMGR_ALERT_RECORD_GAP], 0);
	CHECK_EQ(h_state(&h, "NLT-G1"), PENMGR_STATE_READY);
	h_fini(&h);
}

/* Between the pen and its radio: while on, every Treatment Record
 * notification carrying record seq arrives with a broken E2E-CRC. */
struct lossy {
	struct lradio_server *srv;
	uint32_t seq;
	bool on;
	unsigned hits;
};

static int lossy_notify(void *radio, enum sim_chr chr, const uint8_t *val, size_t len)
{
	struct lossy *l = radio;
	struct nl_record_header hdr;
	uint8_t buf[520];

	if (l->on && chr == SIM_CHR_RECORD && len >= 2 && len <= sizeof(buf) &&
	    (val[0] & 0x03u) == 0x03u && nl_record_peek_header(val + 1, len - 1, &hdr) >= 0 &&
	    hdr.seq == l->seq) {
		memcpy(buf, val, len);
		buf[len - 1] ^= 0xffu;
		l->hits++;
		val = buf;
	}
	return lradio_server_radio_ops()->notify(l->srv, chr, val, len);
}

static int lossy_indicate(void *radio, enum sim_chr chr, const uint8_t *val, size_t len)
{
	return lradio_server_radio_ops()->indicate(((struct lossy *)radio)->srv, chr, val, len);
}

static void lossy_disconnect(void *radio)
{
	lradio_server_radio_ops()->disconnect(((struct lossy *)radio)->srv);
}

static const struct sim_radio_ops lossy_ops = {
	.notify = lossy_notify,
	.indicate = lossy_indicate,
	.disconnect = lossy_disconnect,
};

/* A record lost on the way every time it is sent is asked for again a few
 * times, then left on the pen: never acknowledged past while the pen holds
 * it, and fetched on the next connection. */
static void test_gap_kept(void)
{
	static const char *const allow[] = { "NLT-K1", NULL };
	struct harness h;
	struct tpen *g;
	struct lossy lossy;
	struct penmgr_snapshot snap;
	struct sim_pen_info info;
	struct h_seen *s;

	h_init(&h);
	g = h_pen_new(&h, "NLT-K1", true);
	h_pen_records(g, 2);
	h_gateway_start(&h, allow);
	h_wait(&h, cond_records, &(struct want_records){ "NLT-K1", 2 }, 20000, "2 records");
	h_wait(&h, cond_ready_and_idle, "NLT-K1", 20000, "READY, acknowledged");
	h_wait(&h, cond_acked, &(struct want_records){ "NLT-K1", 2 }, 20000, "ack through 2");

	lossy = (struct lossy){ .srv = g->srv, .seq = 4, .on = true };
	sim_pen_set_radio(g->pen, &lossy_ops, &lossy);
	h_pen_records(g, 4); /* 3..6; 4 never arrives whole */
	h_wait(&h, cond_alert, &(struct want_alert){ "NLT-K1", PENMGR_ALERT_CATCHUP_FAILED }, 20000,
	       "catchup_failed alert");
	h_wait(&h, h_cond_ready, "NLT-K1", 20000, "READY with the gap parked");
	h_wait(&h, cond_acked, &(struct want_records){ "NLT-K1", 3 }, 20000, "ack through 3");
	h_wait(&h, cond_store_used, &(struct want_store){ g, 3 }, 20000, "store_used 3");
	s = h_seen(&h, "NLT-K1");
	CHECK_EQ(s->delivered[3], 1);
	CHECK_EQ(s->delivered[4], 0);
	CHECK_EQ(s->delivered[5], 1);
	CHECK_EQ(s->delivered[6], 1);
	/* The REPORT, then one REPORT RANGE per try. */
	CHECK(lossy.hits >= 2);
	CHECK(penmgr_get_snapshot(h.pm, "NLT-K1", &snap) == 0);
	CHECK_EQ(snap.committed_seq, 6);
	CHECK_EQ(snap.acked_seq, 3);
	h_pen_info(g, &info);
	CHECK_EQ(info.store_used, 3);

	/* The next link brings it. */
	lossy.on = false;
	CHECK(lradio_server_set_in_range(g->srv, false) == 0);
	h_wait(&h, cond_not_ready, "NLT-K1", 20000, "link down");
	CHECK(lradio_server_set_in_range(g->srv, true) == 0);
	h_wait(&h, cond_acked, &(struct want_records){ "NLT-K1", 6 }, 20000, "ack through 6");
	h_wait(&h, cond_store_used, &(struct want_store){ g, 0 }, 20000, "store_used 0");
	CHECK_EQ(s->delivered[4], 1);
	/* Never reported gone: it was not. */
	CHECK_EQ(s->alerts[PENMGR_ALERT_RECORD_GAP], 0);
	CHECK_EQ(s->alerts[PENMGR_ALERT_CATCHUP_FAILED], 1);
	sim_pen_set_radio(g->pen, lradio_server_radio_ops(), g->srv);
	h_fini(&h);
}

/* A gap still open when the gateway stops is asked for again by the next
 * run, which learns it from what was committed, and the pen is never
 * acknowledged past it meanwhile. */
static void gap_restart(int gaps_err)
{
	static const char *const allow[] = { "NLT-K2", NULL };
	struct harness h;
	struct tpen *g;
	struct lossy lossy;
	struct penmgr_snapshot snap;
	struct h_seen *s;

	h_init(&h);
	h.remember = true;
	g = h_pen_new(&h, "NLT-K2", true);
	h_pen_records(g, 2);
	h_gateway_start(&h, allow);
	h_wait(&h, cond_acked, &(struct want_records){ "NLT-K2", 2 }, 20000, "ack through 2");
	lossy = (struct lossy){ .srv = g->srv, .seq = 4, .on = true };
	sim_pen_set_radio(g->pen, &lossy_ops, &lossy);
	h_pen_records(g, 4); /* 3..6; 4 never arrives whole */
	h_wait(&h, h_cond_ready, "NLT-K2", 20000, "READY with the gap parked");
	h_wait(&h, cond_acked, &(struct want_records){ "NLT-K2", 3 }, 20000, "ack through 3");
	s = h_seen(&h, "NLT-K2");
	CHECK_EQ(s->delivered[4], 0);
	CHECK_EQ(s->delivered[6], 1);

	/* The gateway stops with the gap open and starts again: the pen still
	 * drops seq 4 for a while, so the new run parks it too. When the new
	 * run cannot read the gaps from its journal, it asks for all the pen
	 * stores (3..5) and parks that. */
	h_gateway_stop(&h);
	h.gaps_err = gaps_err;
	h_gateway_start(&h, allow);
	h_wait(&h, cond_alert, &(struct want_alert){ "NLT-K2", PENMGR_ALERT_CATCHUP_FAILED }, 20000,
	       "catchup_failed from the new run");
	h_wait(&h, h_cond_ready, "NLT-K2", 20000, "READY again");
	CHECK(penmgr_get_snapshot(h.pm, "NLT-K2", &snap) == 0);
	CHECK_EQ(snap.committed_seq, 6);
	CHECK_EQ(snap.acked_seq, 3);
	h_wait(&h, cond_store_used, &(struct want_store){ g, 3 }, 20000, "store_used 3");

	/* Then it comes through. */
	lossy.on = false;
	CHECK(lradio_server_set_in_range(g->srv, false) == 0);
	h_wait(&h, cond_not_ready, "NLT-K2", 20000, "link down");
	CHECK(lradio_server_set_in_range(g->srv, true) == 0);
	h_wait(&h, cond_acked, &(struct want_records){ "NLT-K2", 6 }, 20000, "ack through 6");
	CHECK_EQ(s->delivered[4], 1);
	CHECK_EQ(s->alerts[PENMGR_ALERT_RECORD_GAP], 0);
	sim_pen_set_radio(g->pen, lradio_server_radio_ops(), g->srv);
	h_fini(&h);
}

static void test_gap_restart(void)
{
	gap_restart(0);
}

static void test_gap_restart_unknown(void)
{
	gap_restart(-EIO);
}

/* A journal with more holes than the pen manager keeps ranges for (here:
 * 49 records whose commits were lost with the first run): the last range
 * grows to take the rest, so no hole is acknowledged past, and every record
 * is fetched again. */
static void test_gap_overflow(void)
{
	static const char *const allow[] = { "NLT-K3", NULL };
	struct harness h;
	struct tpen *g;
	struct sim_pen_info info;
	struct h_seen *s;

	h_init(&h);
	h.remember = true;
	h.mode = H_COMMIT_HOLD; /* nothing is acknowledged in the first run */
	g = h_pen_new(&h, "NLT-K3", true);
	h_pen_records(g, 100);
	h_gateway_start(&h, allow);
	h_wait(&h, cond_records, &(struct want_records){ "NLT-K3", 100 }, 60000, "100 records");
	h_gateway_stop(&h);
	s = h_seen(&h, "NLT-K3");
	for (uint32_t q = 2; q < 100; q += 2)
		s->delivered[q] = 0; /* what the journal lacks */

	h.mode = H_COMMIT_DEFERRED;
	h_gateway_start(&h, allow);
	h_wait(&h, cond_acked, &(struct want_records){ "NLT-K3", 100 }, 60000, "ack through 100");
	for (uint32_t q = 1; q <= 100; q++)
		CHECK(s->delivered[q] >= 1);
	CHECK_EQ(s->alerts[PENMGR_ALERT_RECORD_GAP], 0);
	h_pen_info(g, &info);
	CHECK_EQ(info.store_used, 0);
	h_fini(&h);
}

/* A pen not on the allow-list is never connected to nor reported. */
static void test_allowlist(void)
{
	static const char *const allow[] = { "NLT-D1", NULL };
	struct harness h;
	struct tpen *x;
	struct sim_pen_info info;
	struct penmgr_snapshot snap;
	const char *serials[4];

	h_init(&h);
	x = h_pen_new(&h, "NLT-X9", true);
	h_pen_records(x, 2);
	h_gateway_start(&h, allow);
	(void)h_pen_new(&h, "NLT-D1", true);
	h_wait(&h, h_cond_ready, "NLT-D1", 20000, "D1 READY");
	h_wait(&h, cond_ignored, NULL, 20000, "X9 ignored");

	CHECK_EQ(penmgr_list(h.pm, serials, 4), 1);
	CHECK(strcmp(serials[0], "NLT-D1") == 0);
	CHECK(penmgr_get_snapshot(h.pm, "NLT-X9", &snap) == -ENOENT);
	for (size_t i = 0; i < h.n_seen; i++)
		CHECK(strcmp(h.seen[i].serial, "NLT-X9") != 0);
	h_pen_info(x, &info);
	CHECK(!info.connected);
	CHECK_EQ(info.store_used, 2);
	CHECK(!lradio_server_connected(x->srv));
	h_fini(&h);
}

/* A connected pen that goes silent (no Live Status) is dropped by the
 * watchdog and reconnected once it talks again. */
static void test_watchdog(void)
{
	static const char *const allow[] = { "*", NULL };
	struct harness h;
	struct tpen *w;

	h_init(&h);
	h.cfg.watchdog_usec = 500000;
	w = h_pen_new(&h, "NLT-W1", true);
	h_gateway_start(&h, allow);
	h_wait(&h, h_cond_ready, "NLT-W1", 20000, "W1 READY");
	/* The pen's firmware stops running: no more Live Status. */
	w->ticking = false;
	h_wait(&h, cond_alert, &(struct want_alert){ "NLT-W1", PENMGR_ALERT_WATCHDOG }, 20000,
	       "watchdog");
	CHECK(h_counters(&h, "NLT-W1").errors[PENMGR_ERR_TIMEOUT] >= 1);
	w->ticking = true;
	h_wait(&h, h_cond_ready, "NLT-W1", 20000, "W1 READY again");
	CHECK(h_seen(&h, "NLT-W1")->ready_count >= 2);
	h_fini(&h);
}

/* Pen CP commands: one at a time, with the pen's result. */
struct cp_result {
	int calls, err;
	struct nl_cp_rsp rsp;
	int destroyed;
};

static void cp_cb(int err, const struct nl_cp_rsp *rsp, void *user_data)
{
	struct cp_result *r = user_data;

	r->calls++;
	r->err = err;
	if (rsp)
		r->rsp = *rsp;
}

static void cp_destroy(void *user_data)
{
	struct cp_result *r = user_data;

	r->destroyed++;
}

static bool cond_cp_done(struct harness *h, void *data)
{
	struct cp_result *r = data;

	return r->destroyed > 0;
}

static void test_cp(void)
{
	static const char *const allow[] = { "NLT-E1", NULL };
	struct harness h;
	struct tpen *e;
	struct cp_result lock = { 0 }, unlock = { 0 }, cancelled = { 0 };
	struct nl_cp_req req = { .op = NL_CP_LOCK, .u.reason = NL_LOCK_REASON_POLICY };
	struct sim_pen_info info;
	unsigned id;

	h_init(&h);
	e = h_pen_new(&h, "NLT-E1", true);
	/* Unknown pen: refused at once. */
	h_gateway_start(&h, allow);
	CHECK_EQ(penmgr_cp_request(h.pm, "NLT-E1", &req, cp_cb, &lock, cp_destroy), 0);
	h_wait(&h, h_cond_ready, "NLT-E1", 20000, "E1 READY");

	CHECK(penmgr_cp_request(h.pm, "NLT-E1", &req, cp_cb, &lock, cp_destroy) > 0);
	req.op = NL_CP_UNLOCK;
	req.u.reason = NL_LOCK_REASON_OPERATOR;
	/* Queued behind LOCK; a third one is cancelled before it is sent. */
	CHECK(penmgr_cp_request(h.pm, "NLT-E1", &req, cp_cb, &unlock, cp_destroy) > 0);
	id = penmgr_cp_request(h.pm, "NLT-E1", &req, cp_cb, &cancelled, cp_destroy);
	CHECK(id > 0);
	CHECK_EQ(penmgr_cp_cancel(h.pm, id), 0);
	CHECK_EQ(cancelled.calls, 0);
	CHECK_EQ(cancelled.destroyed, 1);

	h_wait(&h, cond_cp_done, &lock, 20000, "LOCK response");
	CHECK_EQ(lock.calls, 1);
	CHECK_EQ(lock.err, 0);
	CHECK_EQ(lock.rsp.req_op, NL_CP_LOCK);
	CHECK_EQ(lock.rsp.result, NL_CP_SUCCESS);
	/* UNLOCK is still waiting for its turn or its answer. */
	h_pen_info(e, &info);
	CHECK(info.state == NL_PEN_STATE_LOCKED || unlock.calls == 1);

	h_wait(&h, cond_cp_done, &unlock, 20000, "UNLOCK response");
	CHECK_EQ(unlock.calls, 1);
	CHECK_EQ(unlock.err, 0);
	CHECK_EQ(unlock.rsp.req_op, NL_CP_UNLOCK);
	CHECK_EQ(unlock.rsp.result, NL_CP_SUCCESS);
	h_pen_info(e, &info);
	CHECK_EQ(info.state, NL_PEN_STATE_IDLE);
	/* The manager's own ACK_RECORDS is not for callers. */
	req.op = NL_CP_ACK_RECORDS;
	CHECK_EQ(penmgr_cp_request(h.pm, "NLT-E1", &req, cp_cb, &cancelled, NULL), 0);
	CHECK_EQ(h_counters(&h, "NLT-E1").errors[PENMGR_ERR_COMMAND], 0);
	h_fini(&h);
}

/* A pen that stops answering: the Pen CP request times out, the link is
 * dropped and comes back once the pen answers again. */
static void test_cp_timeout(void)
{
	static const char *const allow[] = { "NLT-T1", NULL };
	struct nl_cp_req req = { .op = NL_CP_SET_LIVE_RATE, .u.live_rate_hz = 5 };
	struct cp_result res = { 0 };
	struct harness h;
	struct tpen *t;

	h_init(&h);
	h.cfg.cp_timeout_usec = 300000;
	t = h_pen_new(&h, "NLT-T1", true);
	h_gateway_start(&h, allow);
	h_wait(&h, h_cond_ready, "NLT-T1", 20000, "T1 READY");
	lradio_server_set_silent(t->srv, true);
	CHECK(penmgr_cp_request(h.pm, "NLT-T1", &req, cp_cb, &res, cp_destroy) > 0);
	h_wait(&h, cond_cp_done, &res, 20000, "CP timeout");
	CHECK_EQ(res.calls, 1);
	CHECK_EQ(res.err, -ETIMEDOUT);
	CHECK(h_state(&h, "NLT-T1") != PENMGR_STATE_READY);
	CHECK(h_counters(&h, "NLT-T1").errors[PENMGR_ERR_TIMEOUT] >= 1);
	lradio_server_set_silent(t->srv, false);
	h_wait(&h, h_cond_ready, "NLT-T1", 20000, "T1 READY again");
	CHECK_EQ(h_counters(&h, "NLT-T1").connects, 2);
	h_fini(&h);
}

static bool cond_two_ready(struct harness *h, void *data)
{
	const char *const *serials = data;
	unsigned n = 0;

	for (size_t i = 0; serials[i]; i++)
		n += h_state(h, serials[i]) == PENMGR_STATE_READY;
	return n == 2;
}

/* At most max_connections links; a pen waits for a free slot. */
static void test_cap(void)
{
	static const char *const allow[] = { "NLT-K1", "NLT-K2", "NLT-K3", NULL };
	struct tpen *k[3];
	struct harness h;
	const char *waiting = NULL;
	size_t gone = 0;

	h_init(&h);
	h.cfg.max_connections = 2;
	for (size_t i = 0; i < 3; i++)
		k[i] = h_pen_new(&h, allow[i], true);
	h_gateway_start(&h, allow);
	h_wait(&h, cond_two_ready, (void *)allow, 20000, "two pens READY");
	for (size_t i = 0; i < 3; i++)
		if (h_state(&h, allow[i]) != PENMGR_STATE_READY) {
			CHECK(waiting == NULL);
			waiting = allow[i];
			CHECK_EQ(h_state(&h, allow[i]), PENMGR_STATE_DISCOVERED);
			CHECK_EQ(h_counters(&h, allow[i]).connect_attempts, 0);
		}
	CHECK(waiting != NULL);
	/* One READY pen leaves: the waiting one gets its slot. */
	gone = strcmp(waiting, allow[0]) == 0 ? 1 : 0;
	CHECK(lradio_server_set_in_range(k[gone]->srv, false) == 0);
	h_wait(&h, h_cond_ready, (void *)waiting, 20000, "the waiting pen READY");
	CHECK(h_state(&h, allow[gone]) != PENMGR_STATE_READY);
	h_fini(&h);
}

/* ---- a scripted pen for what the real one never does ------------------ */

struct fakepen {
	char dis_serial[NL_SERIAL_MAX + 1];
	uint8_t major;
	struct lradio_server *srv;
	unsigned connects;
	struct {
		enum sim_chr chr;
		uint16_t value;
	} cccd[16];
	size_t n_cccd;
	unsigned state_reads;
};

static void fake_connected(void *pen, uint16_t mtu)
{
	((struct fakepen *)pen)->connects++;
}

static void fake_disconnected(void *pen)
{
}

static int fake_read(void *pen, enum sim_chr chr, uint8_t *buf, size_t size)
{
	struct fakepen *f = pen;
	struct nl_feature feat = {
		.proto_major = 1, .proto_minor = 0, .depth_min_um = 250, .depth_max_um = 2500,
		.depth_step_um = 250, .speed_min_hz = 100, .speed_max_hz = 150,
		.store_capacity = 16, .store_epoch = 1, .live_rate_hz = 2,
	};
	size_t n;
	int r;

	switch (chr) {
	case SIM_CHR_DIS_SERIAL:
		n = strlen(f->dis_serial);
		memcpy(buf, f->dis_serial, n);
		return (int)n;
	case SIM_CHR_DIS_MODEL:
	case SIM_CHR_DIS_FIRMWARE:
	case SIM_CHR_DIS_MANUFACTURER:
		memcpy(buf, "fake", 4);
		return 4;
	case SIM_CHR_FEATURE:
		r = nl_feature_encode(&feat, buf, size);
		if (r > 0 && f->major != 1) {
			/* A future major version: byte 0 differs, CRC kept valid. */
			buf[0] = f->major;
			r = nl_pdu_put_crc(buf, (size_t)r - 2, size);
		}
		return r;
	case SIM_CHR_ACTIVE_LIMITS:
	case SIM_CHR_PEN_STATUS:
	case SIM_CHR_CARTRIDGE:
		/* Refused: the connect procedure must end here. */
		f->state_reads++;
		break;
	case SIM_CHR_LIVE_STATUS:
	case SIM_CHR_RECORD:
	case SIM_CHR_RACP:
	case SIM_CHR_PEN_CP:
	case SIM_CHR_BATTERY_LEVEL:
	case SIM_CHR_COUNT:
		break;
	}
	return -0x0E; /* ATT Unlikely Error */
}

static int fake_write(void *pen, enum sim_chr chr, const uint8_t *val, size_t len)
{
	return -0x0E;
}

static void fake_cccd(void *pen, enum sim_chr chr, uint16_t value)
{
	struct fakepen *f = pen;

	if (f->n_cccd < 16) {
		f->cccd[f->n_cccd].chr = chr;
		f->cccd[f->n_cccd].value = value;
		f->n_cccd++;
	}
}

static void fake_confirmed(void *pen, enum sim_chr chr)
{
}

static const struct sim_gatt_server_ops fake_ops = {
	.connected = fake_connected,
	.disconnected = fake_disconnected,
	.read = fake_read,
	.write = fake_write,
	.cccd = fake_cccd,
	.confirmed = fake_confirmed,
};

static void fakepen_start_svc(struct harness *h, struct fakepen *f, const char *adv_serial,
			      const char *service)
{
	struct lradio_adv adv = { .rssi = -50 };

	snprintf(adv.name, sizeof(adv.name), "Fake %s", adv_serial);
	snprintf(adv.serial, sizeof(adv.serial), "%s", adv_serial);
	snprintf(adv.service_uuid, sizeof(adv.service_uuid), "%s", service);
	snprintf(adv.kind, sizeof(adv.kind), "pen");
	CHECK(lradio_server_new(h->ev, h->dir, &adv, &fake_ops, f, &f->srv) == 0);
}

static void fakepen_start(struct harness *h, struct fakepen *f, const char *adv_serial)
{
	fakepen_start_svc(h, f, adv_serial, NL_UUID_SERVICE);
}

static bool cond_backoff_after_alert(struct harness *h, void *data)
{
	struct want_alert *w = data;

	return cond_alert(h, data) && h_state(h, w->serial) == PENMGR_STATE_BACKOFF;
}

static bool cond_fake_state_read(struct harness *h, void *data)
{
	return ((struct fakepen *)data)->state_reads > 0;
}

static bool cond_not_ready_connected(struct harness *h, void *serial)
{
	return h_counters(h, serial).disconnects >= 1;
}

/* A pen of another protocol major version, and a pen whose DIS serial is
 * not the advertised one: reported, refused, never READY. */
static void test_refuse(void)
{
	static const char *const allow[] = { "NLT-F1", "NLT-F2", "NLT-F3", "NLT-F4", NULL };
	struct fakepen f1 = { .dis_serial = "NLT-F1", .major = 2 };
	struct fakepen f2 = { .dis_serial = "NLT-ZZ", .major = 1 };
	struct fakepen f3 = { .dis_serial = "NLT-F3", .major = 1 };
	struct fakepen f4 = { .dis_serial = "NLT-F4", .major = 1 };
	static const struct {
		enum sim_chr chr;
		uint16_t value;
	} order[] = {
		{ SIM_CHR_PEN_CP, 2 },	   { SIM_CHR_RACP, 2 },	     { SIM_CHR_RECORD, 1 },
		{ SIM_CHR_PEN_STATUS, 2 }, { SIM_CHR_ACTIVE_LIMITS, 2 }, { SIM_CHR_CARTRIDGE, 2 },
		{ SIM_CHR_LIVE_STATUS, 1 },
	};
	struct penmgr_snapshot snap;
	struct harness h;

	h_init(&h);
	fakepen_start(&h, &f1, "NLT-F1");
	fakepen_start(&h, &f2, "NLT-F2");
	fakepen_start(&h, &f3, "NLT-F3");
	/* Allowed serial, but not advertising the NeedleLink service. */
	fakepen_start_svc(&h, &f4, "NLT-F4", "0000180d-0000-1000-8000-00805f9b34fb");
	h_gateway_start(&h, allow);
	h_wait(&h, cond_backoff_after_alert,
	       &(struct want_alert){ "NLT-F1", PENMGR_ALERT_PROTO_MISMATCH }, 20000,
	       "F1 protocol mismatch");
	h_wait(&h, cond_backoff_after_alert,
	       &(struct want_alert){ "NLT-F2", PENMGR_ALERT_SERIAL_MISMATCH }, 20000,
	       "F2 serial mismatch");
	CHECK_EQ(h_seen(&h, "NLT-F1")->ready_count, 0);
	CHECK_EQ(h_seen(&h, "NLT-F2")->ready_count, 0);
	CHECK(penmgr_get_snapshot(h.pm, "NLT-F1", &snap) == 0);
	CHECK(!snap.has_feature);
	CHECK(!snap.connected);
	CHECK_EQ(h_counters(&h, "NLT-F1").connects, 0);
	CHECK(f1.connects >= 1 && f2.connects >= 1);
	/* The pen with the foreign serial is not known under that serial. */
	CHECK(penmgr_get_snapshot(h.pm, "NLT-ZZ", &snap) == -ENOENT);
	/* Neither got as far as its CCCDs. */
	CHECK_EQ(f1.n_cccd, 0);
	CHECK_EQ(f2.n_cccd, 0);

	/* F3 is sound up to Feature: CCCDs in the order of 10.1 step 8, then
	 * the state reads, whose failure ends the link. */
	h_wait(&h, cond_fake_state_read, &f3, 20000, "F3 state read");
	CHECK(f3.n_cccd >= 7);
	for (size_t i = 0; i < 7; i++) {
		CHECK_EQ(f3.cccd[i].chr, order[i].chr);
		CHECK_EQ(f3.cccd[i].value, order[i].value);
	}
	h_wait(&h, cond_not_ready_connected, "NLT-F3", 20000, "F3 dropped");
	CHECK_EQ(h_seen(&h, "NLT-F3")->ready_count, 0);
	CHECK(h_counters(&h, "NLT-F3").errors[PENMGR_ERR_GATT] >= 1);
	CHECK(penmgr_get_snapshot(h.pm, "NLT-F4", &snap) == -ENOENT);
	CHECK_EQ(f4.connects, 0);
	h_gateway_stop(&h);
	lradio_server_free(f1.srv);
	lradio_server_free(f2.srv);
	lradio_server_free(f3.srv);
	lradio_server_free(f4.srv);
	h_fini(&h);
}

/* ---- the simulator as separate processes -------------------------------- */

extern char **environ;

struct child {
	pid_t pid;
	sd_event_source *src;
	bool exited;
	bool stopping;
	int status;
};

/* Children still running when a check fails are stopped on exit, so that
 * ctest does not wait for them. */
static pid_t children[8];
static size_t n_children;

static void kill_children(void)
{
	for (size_t i = 0; i < n_children; i++)
		if (children[i] > 0)
			(void)kill(children[i], SIGTERM);
}

static int child_cb(sd_event_source *s, const siginfo_t *si, void *userdata)
{
	struct child *c = userdata;

	c->exited = true;
	c->status = si->si_status;
	for (size_t i = 0; i < n_children; i++)
		if (children[i] == c->pid)
			children[i] = 0;
	if (!c->stopping) {
		fprintf(stderr, "needlelink-sim %d exited early (code %d, status %d)\n", (int)c->pid,
			si->si_code, si->si_status);
		exit(1);
	}
	return 0;
}

static bool cond_child_exited(struct harness *h, void *data)
{
	return ((struct child *)data)->exited;
}

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "we");

	CHECK(f);
	CHECK(fputs(text, f) >= 0);
	CHECK(fclose(f) == 0);
}

static void spawn_sim(struct harness *h, struct child *c, const char *sim, const char *scenario,
		      const char *state_dir)
{
	char *argv[] = { (char *)sim,	   "--scenario",  (char *)scenario, "--radio-dir",
			 h->dir,	   "--state-dir", (char *)state_dir, "--wipe",
			 "--duration",	   "300",	  "--quiet",	    NULL };

	memset(c, 0, sizeof(*c));
	CHECK(posix_spawn(&c->pid, sim, NULL, NULL, argv, environ) == 0);
	if (n_children == 0)
		CHECK(atexit(kill_children) == 0);
	CHECK(n_children < sizeof(children) / sizeof(children[0]));
	children[n_children++] = c->pid;
	CHECK(sd_event_add_child(h->ev, &c->src, c->pid, WEXITED, child_cb, c) >= 0);
}

static void stop_sim(struct harness *h, struct child *c)
{
	c->stopping = true;
	CHECK(kill(c->pid, SIGTERM) == 0);
	h_wait(h, cond_child_exited, c, 20000, "needlelink-sim to exit");
	sd_event_source_disable_unref(c->src);
}

static void rm_tree_flat(const char *dir)
{
	char path[1024];
	struct dirent *de;
	DIR *d = opendir(dir);

	if (!d)
		return;
	while ((de = readdir(d)))
		if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0) {
			snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
			(void)unlink(path);
		}
	closedir(d);
	CHECK(rmdir(dir) == 0);
}

static const char scn_p1[] =
	"{ \"name\": \"gwlink-p1\", \"pen\": { \"serial\": \"NLT-P1\" },\n"
	"  \"cartridges\": {\n"
	"    \"c1\": { \"uid\": \"auto\", \"lot\": \"GW0001\", \"needles\": 12, \"length_mm\": 1.5 },\n"
	"    \"c2\": { \"uid\": \"auto\", \"lot\": \"GW0002\", \"needles\": 12, \"length_mm\": 1.5 },\n"
	"    \"c3\": { \"uid\": \"auto\", \"lot\": \"GW0003\", \"needles\": 12, \"length_mm\": 1.5 } },\n"
	"  \"timeline\": [\n"
	"    { \"do\": \"insert\", \"cartridge\": \"c1\" }, { \"do\": \"remove\" },\n"
	"    { \"do\": \"insert\", \"cartridge\": \"c2\" }, { \"do\": \"remove\" },\n"
	"    { \"after\": 4, \"do\": \"link_drop\", \"seconds\": 2 },\n"
	"    { \"do\": \"insert\", \"cartridge\": \"c3\" }, { \"do\": \"remove\" },\n"
	"    { \"after\": 600, \"do\": \"note\", \"text\": \"end\" } ] }\n";

static const char scn_p2[] =
	"{ \"name\": \"gwlink-p2\", \"pen\": { \"serial\": \"NLT-P2\" },\n"
	"  \"timeline\": [\n"
	"    { \"after\": 2, \"do\": \"corrupt\", \"kind\": \"bad_crc\" },\n"
	"    { \"after\": 0.2, \"do\": \"corrupt\", \"kind\": \"bad_crc\" },\n"
	"    { \"after\": 0.2, \"do\": \"corrupt\", \"kind\": \"bad_crc\" },\n"
	"    { \"after\": 0.2, \"do\": \"corrupt\", \"kind\": \"bad_crc\" },\n"
	"    { \"after\": 0.2, \"do\": \"corrupt\", \"kind\": \"bad_crc\" },\n"
	"    { \"after\": 0.2, \"do\": \"corrupt\", \"kind\": \"bad_crc\" },\n"
	"    { \"after\": 600, \"do\": \"note\", \"text\": \"end\" } ] }\n";

static const char scn_px[] =
	"{ \"name\": \"gwlink-px\", \"pen\": { \"serial\": \"NLT-PX\" },\n"
	"  \"cartridges\": { \"c1\": { \"uid\": \"auto\", \"lot\": \"GW0009\", \"needles\": 12, \"length_mm\": 1.5 } },\n"
	"  \"timeline\": [ { \"do\": \"insert\", \"cartridge\": \"c1\" }, { \"do\": \"remove\" },\n"
	"    { \"after\": 600, \"do\": \"note\", \"text\": \"end\" } ] }\n";

static bool cond_p_done(struct harness *h, void *data)
{
	struct penmgr_snapshot snap;
	struct penmgr_counters cnt;

	if (penmgr_get_snapshot(h->pm, "NLT-P1", &snap) < 0 ||
	    penmgr_get_counters(h->pm, "NLT-P1", &cnt) < 0)
		return false;
	return h_seen(h, "NLT-P1")->n_seqs >= 6 && cnt.disconnects >= 1 &&
	       snap.state == PENMGR_STATE_READY && snap.acked_seq == 6 &&
	       h_seen(h, "NLT-P2")->alerts[PENMGR_ALERT_CORRUPT_LIMIT] > 0 &&
	       penmgr_ignored(h->pm) >= 1;
}

/* Three needlelink-sim processes: NLT-P1 makes records before and during a
 * link drop, NLT-P2 sends malformed values, NLT-PX is not allowed. */
static void test_sim_process(const char *sim)
{
	static const char *const allow[] = { "NLT-P1", "NLT-P2", NULL };
	struct harness h;
	struct child c1, c2, cx;
	char state[300], path[400];
	struct penmgr_counters cnt1;
	const char *serials[4];
	sigset_t ss;

	sigemptyset(&ss);
	sigaddset(&ss, SIGCHLD);
	CHECK(sigprocmask(SIG_BLOCK, &ss, NULL) == 0);
	h_init(&h);
	snprintf(state, sizeof(state), "%s-state", h.dir);
	CHECK(mkdir(state, 0700) == 0);
	h_gateway_start(&h, allow);

	snprintf(path, sizeof(path), "%s/p1.json", state);
	write_file(path, scn_p1);
	spawn_sim(&h, &c1, sim, path, state);
	snprintf(path, sizeof(path), "%s/p2.json", state);
	write_file(path, scn_p2);
	spawn_sim(&h, &c2, sim, path, state);
	snprintf(path, sizeof(path), "%s/px.json", state);
	write_file(path, scn_px);
	spawn_sim(&h, &cx, sim, path, state);

	h_wait(&h, cond_p_done, NULL, 60000, "P1 records after the link drop, P2 dropped, PX ignored");
	check_exactly_once(&h, "NLT-P1", 6);
	cnt1 = h_counters(&h, "NLT-P1");
	/* P1 was untouched by P2's malformed data. */
	CHECK_EQ(cnt1.corrupt, 0);
	CHECK_EQ(cnt1.errors[PENMGR_ERR_DECODE], 0);
	CHECK_EQ(cnt1.duplicates, 0);
	CHECK(cnt1.connects >= 2);
	CHECK(h_counters(&h, "NLT-P2").corrupt >= 5);
	CHECK_EQ(penmgr_list(h.pm, serials, 4), 2);
	for (size_t i = 0; i < h.n_seen; i++)
		CHECK(strcmp(h.seen[i].serial, "NLT-PX") != 0);

	h_gateway_stop(&h);
	stop_sim(&h, &c1);
	stop_sim(&h, &c2);
	stop_sim(&h, &cx);
	h_fini(&h);
	rm_tree_flat(state);
}

/* A long catch-up (PENMGR_CATCHUP_PROGRESS_MIN records or more) shows its
 * progress in the snapshot while it runs, and clears it when done. */
static bool cond_progress(struct harness *h, void *data)
{
	struct penmgr_snapshot *out = data;

	return penmgr_get_snapshot(h->pm, "NLT-P1", out) == 0 && out->catchup_expected > 0 &&
	       out->catchup_received > 0;
}

static void test_catchup_progress(void)
{
	static const char *const allow[] = { "NLT-P1", NULL };
	struct harness h;
	struct tpen *a;
	struct penmgr_snapshot snap;
	struct sim_pen_info info;

	h_init(&h);
	h.mode = H_COMMIT_DEFERRED;
	h_gateway_start(&h, allow);
	a = h_pen_new(&h, "NLT-P1", true);
	h_pen_records(a, PENMGR_CATCHUP_PROGRESS_MIN + 20);
	h_pen_info(a, &info);
	CHECK_EQ(info.last_seq, PENMGR_CATCHUP_PROGRESS_MIN + 20);
	h_wait(&h, cond_progress, &snap, 20000, "catch-up progress");
	CHECK_EQ(snap.catchup_expected, info.last_seq);
	CHECK(snap.catchup_received <= snap.catchup_expected);
	CHECK(snap.state == PENMGR_STATE_CATCHING_UP);
	h_wait(&h, cond_records, &(struct want_records){ "NLT-P1", info.last_seq }, 20000,
	       "every record");
	h_wait(&h, h_cond_ready, "NLT-P1", 20000, "READY");
	check_exactly_once(&h, "NLT-P1", info.last_seq);
	CHECK(penmgr_get_snapshot(h.pm, "NLT-P1", &snap) == 0);
	CHECK_EQ(snap.catchup_expected, 0);
	CHECK_EQ(snap.catchup_received, 0);
	h_fini(&h);
}

static const struct {
	const char *name;
	void (*fn)(void);
} scenarios[] = {
	{ "catchup-progress", test_catchup_progress },
	{ "catchup", test_catchup },   { "reconnect", test_reconnect }, { "corrupt", test_corrupt },
	{ "allowlist", test_allowlist }, { "watchdog", test_watchdog }, { "cp", test_cp },
	{ "gap", test_gap },	       { "gap-kept", test_gap_kept },
	{ "gap-restart", test_gap_restart }, { "gap-restart-unknown", test_gap_restart_unknown },
	{ "gap-overflow", test_gap_overflow },
	{ "refuse", test_refuse },
	{ "cp-timeout", test_cp_timeout }, { "cap", test_cap },
};

int main(int argc, char **argv)
{
	log_set_max_level(getenv("GWLINK_TEST_VERBOSE") ? LOG_DEBUG : LOG_NOTICE);
	if (argc == 3 && strcmp(argv[1], "sim-process") == 0) {
		test_sim_process(argv[2]);
		printf("%s: ok\n", argv[1]);
		return 0;
	}
	for (size_t i = 0; i < sizeof(scenarios) / sizeof(scenarios[0]); i++)
		if (argc == 2 && strcmp(argv[1], scenarios[i].name) == 0) {
			scenarios[i].fn();
			printf("%s: ok\n", argv[1]);
			return 0;
		}
	fprintf(stderr, "usage: %s SCENARIO\n", argv[0]);
	return 2;
}
