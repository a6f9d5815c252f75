/* SPDX-License-Identifier: MIT */
/*
 * The record store, including a power cut at every byte (and every erase)
 * of a script that appends, acknowledges, marks cartridges and compacts.
 * After each cut the store is recovered and must show: no sequence number
 * issued twice with different content, no acknowledged record back, no
 * durable unacknowledged record lost, the same epoch, every used cartridge.
 */
#include <errno.h>
#include <string.h>

#include "needlelink/record.h"
#include "sim-test.h"
#include "sim/store.h"

#define CAP 12
#define REGION 768 /* small: compaction runs several times per script */
#define SCRIPT_RECORDS 40
#define FLASH 4096 /* bytes of each RAM flash region (>= REGION) */
#define SEQ_MAX 128

struct truth {
	bool opened;
	uint32_t epoch;
	uint32_t issued_max; /* highest seq whose append returned 0 */
	uint8_t bytes[SEQ_MAX][NL_RECORD_MAX];
	int len[SEQ_MAX]; /* > 0: seq issued with these bytes */
	uint32_t acked; /* highest seq whose ack returned >= 0 */
	uint8_t carts[8][NL_CARTRIDGE_UID_LEN];
	unsigned ncarts;
};

static void make_record(struct nl_record *r, unsigned i)
{
	memset(r, 0, sizeof(*r));
	if (i % 5 == 0) {
		r->hdr.type = NL_RECORD_SESSION_START;
		r->u.session_start.limits_hash = 0xABCD0000u + i;
		r->u.session_start.limit_source = NL_LIMIT_SOURCE_SESSION;
		r->u.session_start.lifetime_s = 3600;
		r->u.session_start.zone = NL_ZONE_CHEEKS;
	} else if (i % 5 == 4) {
		r->hdr.type = NL_RECORD_SESSION_END;
		r->u.session_end.reason = NL_SESSION_END_STOPPED;
		r->u.session_end.duration_ms = 1000u * i;
		r->u.session_end.zone_count = (uint8_t)(i % 3);
		for (unsigned z = 0; z < r->u.session_end.zone_count; z++) {
			r->u.session_end.zones[z].zone = (uint8_t)(z + 1);
			r->u.session_end.zones[z].passes = (uint16_t)(i + z);
		}
	} else {
		r->hdr.type = NL_RECORD_SEGMENT;
		r->u.segment.zone = NL_ZONE_FOREHEAD;
		r->u.segment.pass = (uint16_t)i;
		r->u.segment.depth_set_um = 500;
		r->u.segment.depth_cap_um = 750;
		r->u.segment.depth_measured_um = 500;
		r->u.segment.speed_hz = 120;
		r->u.segment.run_ms = 100u * i;
		r->u.segment.end_reason = NL_SEGMENT_END_OPERATOR;
	}
	r->hdr.session_id = 7 + i / 5;
	r->hdr.pen_time = 1000 + i;
}

/* Runs the script until the first failure (the power cut). */
static void run_script(struct mem_platform *m, struct truth *t)
{
	struct sim_store *s;
	unsigned i;

	memset(t, 0, sizeof(*t));
	if (sim_store_open(&s, &m->plat, CAP, REGION) < 0)
		return;
	t->opened = true;
	t->epoch = sim_store_epoch(s);
	for (i = 0; i < SCRIPT_RECORDS; i++) {
		struct nl_record r;
		uint32_t seq;
		int n, idx;

		make_record(&r, i);
		if (sim_store_append(s, &r, &seq) < 0)
			break;
		CHECK(seq < SEQ_MAX);
		CHECK_EQ(seq, t->issued_max + 1); /* no gap without a cut */
		t->issued_max = seq;
		idx = sim_store_used(s) - 1;
		CHECK_EQ(sim_store_seq_at(s, (unsigned)idx), seq);
		n = sim_store_read_at(s, (unsigned)idx, t->bytes[seq], NL_RECORD_MAX);
		CHECK(n > 0);
		t->len[seq] = n;
		if (i % 7 == 3) {
			uint8_t uid[NL_CARTRIDGE_UID_LEN] = {0xC0, (uint8_t)i, 1, 2, 3, 4, 5, 6};

			if (sim_store_mark_cartridge(s, uid) < 0)
				break;
			memcpy(t->carts[t->ncarts++], uid, sizeof(uid));
		}
		if (i % 4 == 3) {
			/* Ack all but the newest two, sometimes everything. */
			uint32_t upto = i % 8 == 7	    ? t->issued_max
					: t->issued_max > 2 ? t->issued_max - 2
							    : 0;
			int left;

			if (upto > t->acked) {
				left = sim_store_ack(s, t->epoch, upto);
				if (left < 0)
					break;
				t->acked = upto;
				CHECK_EQ(left, t->issued_max - upto);
			}
		}
	}
	sim_store_free(s);
}

static void check_recovered(struct mem_platform *m, const struct truth *t, long long k)
{
	struct sim_store *s;
	uint8_t buf[NL_RECORD_MAX];
	uint32_t prev = 0, seq, newest;
	struct nl_record r;
	int r_open;

	mem_platform_restore(m);
	r_open = sim_store_open(&s, &m->plat, CAP, REGION);
	if (r_open < 0) {
		fprintf(stderr, "cut at %lld: recovery failed: %d\n", k, r_open);
		exit(1);
	}
	if (t->opened && (t->issued_max || t->ncarts)) {
		if (sim_store_epoch(s) != t->epoch) {
			fprintf(stderr, "cut at %lld: epoch changed %08x -> %08x\n", k, t->epoch,
				sim_store_epoch(s));
			exit(1);
		}
	}
	for (unsigned i = 0; i < sim_store_used(s); i++) {
		int n;

		seq = sim_store_seq_at(s, i);
		CHECK(seq > prev);
		prev = seq;
		if (seq <= t->acked) {
			fprintf(stderr, "cut at %lld: acknowledged seq %u came back\n", k, seq);
			exit(1);
		}
		n = sim_store_read_at(s, i, buf, sizeof(buf));
		CHECK(n > 0);
		CHECK_EQ(nl_record_decode(buf, (size_t)n, &r), 0);
		CHECK_EQ(r.hdr.seq, seq);
		if (seq < SEQ_MAX && t->len[seq] > 0 &&
		    (t->len[seq] != n || memcmp(t->bytes[seq], buf, (size_t)n) != 0)) {
			fprintf(stderr, "cut at %lld: seq %u holds other content\n", k, seq);
			exit(1);
		}
	}
	/* Every durable, unacknowledged record is still there. */
	for (seq = t->acked + 1; seq <= t->issued_max; seq++) {
		bool found = false;

		for (unsigned i = 0; i < sim_store_used(s); i++)
			found |= sim_store_seq_at(s, i) == seq;
		if (!found) {
			fprintf(stderr, "cut at %lld: durable seq %u lost\n", k, seq);
			exit(1);
		}
	}
	for (unsigned i = 0; i < t->ncarts; i++)
		CHECK(sim_store_cartridge_used(s, t->carts[i]));
	CHECK(sim_store_last_seq(s) >= t->issued_max);
	/* The next record never reuses an issued number. */
	make_record(&r, 1);
	if (sim_store_used(s) < CAP) {
		CHECK_EQ(sim_store_append(s, &r, &newest), 0);
		CHECK(newest > t->issued_max);
		CHECK(newest > prev);
	}
	/* And a second recovery of the same flash agrees with the first. */
	CHECK_EQ(sim_store_reload(s), 0);
	CHECK(sim_store_last_seq(s) >= t->issued_max);
	sim_store_free(s);
}

static void test_basic(void)
{
	struct mem_platform m;
	struct sim_store *s;
	struct nl_record r;
	uint8_t uid[NL_CARTRIDGE_UID_LEN] = {1, 2, 3, 4, 5, 6, 7, 8};
	uint32_t seq, epoch;

	mem_platform_init(&m);
	CHECK_EQ(sim_store_open(&s, &m.plat, 8, 0), 0);
	epoch = sim_store_epoch(s);
	CHECK(epoch != 0);
	CHECK_EQ(sim_store_last_seq(s), 0);
	for (unsigned i = 0; i < 8; i++) {
		make_record(&r, i);
		CHECK_EQ(sim_store_append(s, &r, &seq), 0);
		CHECK_EQ(seq, i + 1);
		CHECK_EQ(r.hdr.store_epoch, epoch);
	}
	/* Full: refuses rather than overwrite. */
	make_record(&r, 9);
	CHECK_EQ(sim_store_append(s, &r, &seq), -ENOSPC);
	CHECK_EQ(sim_store_ack(s, epoch + 1, 3), -ESTALE);
	CHECK_EQ(sim_store_ack(s, epoch, 9), -ERANGE);
	CHECK_EQ(sim_store_ack(s, epoch, 3), 5);
	CHECK_EQ(sim_store_seq_at(s, 0), 4);
	CHECK_EQ(sim_store_ack(s, epoch, 2), 5); /* older ack: nothing changes */
	CHECK(!sim_store_cartridge_used(s, uid));
	CHECK_EQ(sim_store_mark_cartridge(s, uid), 0);
	CHECK(sim_store_cartridge_used(s, uid));
	/* Session tracking: record 5 (i=5) starts session 8. */
	CHECK_EQ(sim_store_open_session(s), 8);
	sim_store_free(s);

	/* Reboot: everything back, numbering continues. */
	CHECK_EQ(sim_store_open(&s, &m.plat, 8, 0), 0);
	CHECK_EQ(sim_store_epoch(s), epoch);
	CHECK_EQ(sim_store_used(s), 5);
	CHECK_EQ(sim_store_last_seq(s), 8);
	CHECK(sim_store_cartridge_used(s, uid));
	CHECK_EQ(sim_store_open_session(s), 8);
	make_record(&r, 4); /* SESSION_END of session 7 + 0 = 7: not the open one */
	r.hdr.session_id = 8;
	CHECK_EQ(sim_store_ack(s, epoch, 8), 0);
	CHECK_EQ(sim_store_append(s, &r, &seq), 0);
	CHECK_EQ(seq, 9);
	CHECK_EQ(sim_store_open_session(s), 0);

	/* Wipe: new epoch, numbering restarts, cartridges remembered. */
	CHECK_EQ(sim_store_wipe(s), 0);
	CHECK(sim_store_epoch(s) != epoch);
	CHECK_EQ(sim_store_last_seq(s), 0);
	CHECK_EQ(sim_store_used(s), 0);
	CHECK(sim_store_cartridge_used(s, uid));
	sim_store_free(s);

	/* A corrupt byte in the last record: it is cut off, the rest kept. */
	CHECK_EQ(sim_store_open(&s, &m.plat, 8, 0), 0);
	epoch = sim_store_epoch(s);
	make_record(&r, 1);
	CHECK_EQ(sim_store_append(s, &r, &seq), 0);
	CHECK_EQ(sim_store_append(s, &r, &seq), 0);
	sim_store_free(s);
	for (unsigned g = 0; g < 2; g++)
		if (m.len[g])
			m.region[g][m.len[g] - 3] ^= 0x40;
	CHECK_EQ(sim_store_open(&s, &m.plat, 8, 0), 0);
	CHECK(sim_store_recovered_torn(s));
	CHECK_EQ(sim_store_epoch(s), epoch);
	CHECK_EQ(sim_store_used(s), 1);
	sim_store_free(s);
	mem_platform_free(&m);
}

static void test_power_cut_everywhere(void)
{
	static struct truth full, t;
	struct mem_platform m;
	unsigned long long total;
	long long k;

	mem_platform_init_size(&m, FLASH);
	run_script(&m, &full);
	CHECK_EQ(full.issued_max, SCRIPT_RECORDS);
	CHECK(full.acked > 0);
	total = m.spent;
	/* The script must exercise compaction (erases beyond the first two). */
	CHECK(m.erases >= 10);
	mem_platform_free(&m);
	fprintf(stderr, "script writes %llu bytes (+%u erases); cutting at each\n", total,
		m.erases);

	for (k = 0; k <= (long long)total; k++) {
		mem_platform_init_size(&m, FLASH);
		m.budget = k;
		run_script(&m, &t);
		check_recovered(&m, &t, k);
		/* Cut again during recovery itself, at several points. */
		for (long long k2 = 0; k2 < 64; k2 += 7) {
			struct mem_platform m2 = m;

			for (unsigned g = 0; g < SIM_STORAGE_REGIONS; g++) {
				m2.region[g] = malloc(FLASH);
				CHECK(m2.region[g]);
				memcpy(m2.region[g], m.region[g], m.len[g]);
			}
			m2.plat.ctx = &m2;
			m2.budget = k2;
			m2.cut = false;
			{
				struct sim_store *s;

				if (sim_store_open(&s, &m2.plat, CAP, REGION) == 0) {
					struct nl_record r;
					uint32_t seq;

					make_record(&r, 2);
					(void)sim_store_append(s, &r, &seq);
					sim_store_free(s);
				}
			}
			/* The truth stays what the script saw: anything the
			 * recovery appended was never reported to anyone. */
			check_recovered(&m2, &t, k);
			mem_platform_free(&m2);
		}
		mem_platform_free(&m);
	}
}

int main(void)
{
	test_basic();
	test_power_cut_everywhere();
	fprintf(stderr, "test-store: ok\n");
	return 0;
}
