/* SPDX-License-Identifier: MIT */
/* journal: idempotence, batching, commit callback order, outbox order and
 * paging, durability across reopen and across a crash (no close), a
 * session's context read back from records journaled out of order, a
 * record's outbox message stored once (by reference) and committed with the
 * record, and a version 1 journal migrated with its unsent messages. */
#include <errno.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <sqlite3.h>

#include "check.h"
#include "journal.h"
#include "needlelink/record.h"

static char dir[] = "/tmp/nlgw-journal-XXXXXX";
static sd_event *loop;

static char *db_path(const char *name)
{
	static char p[512];
	snprintf(p, sizeof(p), "%s/%s", dir, name);
	return p;
}

static struct journal_record rec(const char *serial, uint32_t epoch, uint32_t seq, uint8_t byte)
{
	static uint8_t raw[4];
	raw[0] = byte;
	raw[1] = (uint8_t)seq;
	raw[2] = 0xAA;
	raw[3] = 0x55;
	return (struct journal_record){
		.pen_serial = serial,
		.store_epoch = epoch,
		.seq = seq,
		.type = 3,
		.pen_time = 1000 + seq,
		.raw = raw,
		.raw_len = sizeof(raw),
		.decoded = "{\"type\":\"segment\"}",
	};
}

struct order {
	int seen[16];
	int results[16];
	int n;
	bool done;
	int want;
};

struct tag {
	struct order *o;
	int id;
};

static void on_commit(int result, void *userdata)
{
	struct tag *t = userdata;
	t->o->seen[t->o->n] = t->id;
	t->o->results[t->o->n] = result;
	t->o->n++;
	if (t->o->n == t->o->want)
		t->o->done = true;
}

static void wait_commit(struct journal *j)
{
	struct order o = { .want = 1 };
	struct tag t = { &o, 0 };
	CHECK_INT(journal_commit(j, on_commit, &t), 0);
	run_until(loop, &o.done, 30, "wait_commit");
	CHECK_INT(o.results[0], 0);
}

/*
 * A batch closes inline once it is older than its delay (0.25 ms by
 * default); under ASan on a loaded machine a few writes can outlast that,
 * so cases that count pending writes use a long delay.
 */
static const struct journal_options slow_batch = { .batch_delay_us = 60ull * 1000000 };

static void test_idempotence(void)
{
	struct journal *j;
	struct journal_record r;
	uint32_t seq = 0;

	CHECK_INT(journal_open(loop, db_path("idem.db"), &slow_batch, &j), 0);
	CHECK_INT(journal_schema_version(j), 2);
	r = rec("NL-1", 7, 1, 1);
	CHECK_INT(journal_add_record(j, &r), JOURNAL_ADDED);
	/* duplicate inside the open batch */
	CHECK_INT(journal_add_record(j, &r), JOURNAL_DUPLICATE);
	r = rec("NL-1", 7, 1, 2); /* same key, other bytes */
	CHECK_INT(journal_add_record(j, &r), JOURNAL_CONFLICT);
	/* a duplicate does not grow the batch */
	CHECK_INT(journal_pending(j), 1);
	wait_commit(j);
	CHECK_INT(journal_pending(j), 0);
	/* and after commit */
	r = rec("NL-1", 7, 1, 1);
	CHECK_INT(journal_add_record(j, &r), JOURNAL_DUPLICATE);
	/* another epoch or pen is another key */
	r = rec("NL-1", 8, 1, 1);
	CHECK_INT(journal_add_record(j, &r), JOURNAL_ADDED);
	r = rec("NL-2", 7, 1, 1);
	CHECK_INT(journal_add_record(j, &r), JOURNAL_ADDED);
	r = rec("NL-1", 7, 5, 1);
	CHECK_INT(journal_add_record(j, &r), JOURNAL_ADDED);
	/* last_seq commits first, then answers per (pen, epoch) */
	CHECK_INT(journal_last_seq(j, "NL-1", 7, &seq), 0);
	CHECK_INT(seq, 5);
	CHECK_INT(journal_pending(j), 0);
	CHECK_INT(journal_last_seq(j, "NL-1", 8, &seq), 0);
	CHECK_INT(seq, 1);
	CHECK_INT(journal_last_seq(j, "NL-3", 7, &seq), -ENOENT);
	CHECK_INT(seq, 1); /* untouched on failure */
	r = (struct journal_record){ 0 };
	CHECK_INT(journal_add_record(j, &r), -EINVAL);
	journal_close(j);
}

static void test_batching_and_order(void)
{
	struct journal_options opts = { .batch_max = 10, .batch_delay_us = 60ull * 1000000 };
	struct journal *j;
	struct order o = { .want = 5 };
	struct tag tags[5];
	uint32_t seq;

	for (int i = 0; i < 5; i++)
		tags[i] = (struct tag){ &o, i };
	/* The delay is a minute: only batch_max can commit here. */
	CHECK_INT(journal_open(loop, db_path("batch.db"), &opts, &j), 0);
	/* With nothing open, a waiter still runs from the loop, never inline. */
	CHECK_INT(journal_commit(j, on_commit, &tags[0]), 0);
	CHECK_INT(o.n, 0);
	for (uint32_t s = 1; s <= 3; s++) {
		struct journal_record r = rec("NL-1", 1, s, 0);
		CHECK_INT(journal_add_record(j, &r), JOURNAL_ADDED);
	}
	CHECK_INT(journal_pending(j), 3);
	CHECK_INT(journal_commit(j, on_commit, &tags[1]), 0);
	for (uint32_t s = 4; s <= 9; s++) {
		struct journal_record r = rec("NL-1", 1, s, 0);
		CHECK_INT(journal_add_record(j, &r), JOURNAL_ADDED);
	}
	CHECK_INT(journal_pending(j), 9);
	CHECK_INT(journal_commit(j, on_commit, &tags[2]), 0);
	{
		struct journal_record r = rec("NL-1", 1, 10, 0);
		CHECK_INT(journal_add_record(j, &r), JOURNAL_ADDED);
	}
	/* The 10th write committed the batch, callbacks still wait for the loop. */
	CHECK_INT(journal_pending(j), 0);
	CHECK_INT(o.n, 0);
	{
		struct journal_record r = rec("NL-1", 1, 11, 0);
		CHECK_INT(journal_add_record(j, &r), JOURNAL_ADDED);
	}
	CHECK_INT(journal_commit(j, on_commit, &tags[3]), 0);
	CHECK_INT(journal_flush(j), 0);
	CHECK_INT(journal_commit(j, on_commit, &tags[4]), 0);
	run_until(loop, &o.done, 30, "batch callbacks");
	for (int i = 0; i < 5; i++) {
		CHECK_INT(o.seen[i], i);
		CHECK_INT(o.results[i], 0);
	}
	CHECK_INT(journal_last_seq(j, "NL-1", 1, &seq), 0);
	CHECK_INT(seq, 11);
	journal_close(j);

	/* The timer commits a batch nobody flushes. */
	opts = (struct journal_options){ .batch_max = 1000, .batch_delay_us = 2000 };
	CHECK_INT(journal_open(loop, db_path("batch.db"), &opts, &j), 0);
	{
		struct journal_record r = rec("NL-1", 1, 12, 0);
		CHECK_INT(journal_add_record(j, &r), JOURNAL_ADDED);
	}
	o = (struct order){ .want = 1 };
	tags[0] = (struct tag){ &o, 42 };
	CHECK_INT(journal_commit(j, on_commit, &tags[0]), 0);
	run_until(loop, &o.done, 30, "timer commit");
	CHECK_INT(o.seen[0], 42);
	CHECK_INT(o.results[0], 0);
	CHECK_INT(journal_pending(j), 0);
	journal_close(j);
}

struct collect {
	int64_t ids[64];
	char topics[64][32];
	int n;
	int stop_after;
};

static int on_row(const struct journal_outbox_row *row, void *userdata)
{
	struct collect *c = userdata;
	char want[64];

	CHECK(c->n < 64);
	c->ids[c->n] = row->id;
	snprintf(c->topics[c->n], sizeof(c->topics[0]), "%s", row->topic);
	/* payload carries its own id, as producers are told to do */
	snprintf(want, sizeof(want), "{\"nl-msg-id\":%lld}", (long long)row->id);
	CHECK_INT(row->payload_len, strlen(want));
	CHECK(!memcmp(row->payload, want, row->payload_len));
	c->n++;
	return c->stop_after && c->n >= c->stop_after ? 1 : 0;
}

static int64_t add_msg(struct journal *j, const char *topic, int qos)
{
	char payload[64];
	int64_t id = journal_outbox_next_id(j), got = -1;

	snprintf(payload, sizeof(payload), "{\"nl-msg-id\":%lld}", (long long)id);
	CHECK_INT(journal_add_outbox(j, topic, payload, strlen(payload), qos, false, &got), 0);
	CHECK_INT(got, id);
	return id;
}

static int hook_calls;

static void on_outbox_hook(void *userdata)
{
	CHECK(userdata == &hook_calls);
	hook_calls++;
}


static void test_outbox(void)
{
	struct journal *j;
	struct collect c = { 0 };
	uint64_t unsent, total;
	int64_t first, last = 0;

	/* Long delay: batches commit only when the loop runs (ASan builds are
	 * slow enough for writes to outlast the default 0.25 ms). */
	CHECK_INT(journal_open(loop, db_path("outbox.db"), &slow_batch, &j), 0);
	journal_set_outbox_hook(j, on_outbox_hook, &hook_calls);
	/* A batch without outbox rows does not call the hook. */
	{
		struct journal_record r = rec("NL-5", 1, 1, 0);
		CHECK_INT(journal_add_record(j, &r), JOURNAL_ADDED);
		CHECK_INT(journal_flush(j), 0);
		CHECK_INT(hook_calls, 0);
	}
	first = journal_outbox_next_id(j);
	CHECK_INT(first, 1);
	for (int i = 0; i < 20; i++)
		last = add_msg(j, i % 2 ? "t/odd" : "t/even", i % 3 ? 1 : 0);
	CHECK_INT(last, 20);
	/* Not committed yet: invisible to the publisher. */
	CHECK_INT(journal_outbox_unsent(j, 0, 100, on_row, &c), 0);
	CHECK_INT(hook_calls, 0);
	wait_commit(j);
	CHECK_INT(hook_calls, 1);
	CHECK_INT(journal_outbox_unsent(j, 0, 100, on_row, &c), 20);
	for (int i = 0; i < 20; i++)
		CHECK_INT(c.ids[i], i + 1);
	CHECK_STR(c.topics[1], "t/odd");
	/* paging */
	c = (struct collect){ 0 };
	CHECK_INT(journal_outbox_unsent(j, 5, 4, on_row, &c), 4);
	CHECK_INT(c.ids[0], 6);
	CHECK_INT(c.ids[3], 9);
	c = (struct collect){ .stop_after = 2 };
	CHECK_INT(journal_outbox_unsent(j, 0, 10, on_row, &c), 2);
	/* mark sent: only once */
	CHECK_INT(journal_outbox_mark_sent(j, 3, 1000), 1);
	CHECK_INT(journal_outbox_mark_sent(j, 3, 1000), 0);
	CHECK_INT(journal_outbox_mark_sent(j, 999, 1000), 0);
	for (int64_t id = 10; id <= 20; id++)
		CHECK_INT(journal_outbox_mark_sent(j, id, id < 15 ? 1000 : 5000), 1);
	wait_commit(j);
	c = (struct collect){ 0 };
	CHECK_INT(journal_outbox_unsent(j, 0, 100, on_row, &c), 8);
	CHECK_INT(c.ids[2], 4);
	CHECK_INT(c.ids[7], 9);
	CHECK_INT(journal_outbox_count(j, &unsent, &total), 0);
	CHECK_INT(unsent, 8);
	CHECK_INT(total, 20);
	/* prune: sent before 2000 -> ids 3, 10..14 */
	CHECK_INT(journal_outbox_prune(j, 2000), 6);
	wait_commit(j);
	CHECK_INT(journal_outbox_count(j, &unsent, &total), 0);
	CHECK_INT(total, 14);
	/* pruning everything sent, including the highest id, never makes an id
	 * come back */
	CHECK_INT(journal_outbox_prune(j, 10000), 6);
	wait_commit(j);
	journal_close(j);
	CHECK_INT(journal_open(loop, db_path("outbox.db"), &slow_batch, &j), 0);
	/* A restart skips the ids reserved by the last run (some may have
	 * been published before their row was durable). */
	first = journal_outbox_next_id(j);
	CHECK(first > 20);
	CHECK_INT(add_msg(j, "t/x", 1), first);
	wait_commit(j);
	c = (struct collect){ 0 };
	CHECK_INT(journal_outbox_unsent(j, 0, 100, on_row, &c), 9);
	CHECK_INT(c.ids[8], first);
	{
		struct journal_stats st;

		journal_get_stats(j, &st);
		CHECK(st.syncs >= 1); /* commits made durable off the loop */
	}
	CHECK_INT(journal_add_outbox(j, "t", "x", 1, 2, false, NULL), -EINVAL);
	CHECK_INT(journal_add_outbox(j, "", "x", 1, 1, false, NULL), -EINVAL);
	journal_close(j);
}

/* A child writes, waits for its commit callback, and dies without closing
 * (no checkpoint, no cleanup): the parent must find every acknowledged row
 * and nothing the child never committed. */
static void test_crash(void)
{
	struct journal *j;
	pid_t pid;
	int status;
	uint32_t seq;
	uint64_t unsent, total;
	struct stat st;

	pid = fork();
	CHECK(pid >= 0);
	if (pid == 0) {
		sd_event *e = NULL;
		/* Long delay: the last ten writes must stay uncommitted. */
		struct journal_options opts = { .batch_max = 64, .batch_delay_us = 60ull * 1000000 };
		CHECK(sd_event_new(&e) >= 0);
		loop = e;
		CHECK_INT(journal_open(e, db_path("crash.db"), &opts, &j), 0);
		for (uint32_t s = 1; s <= 500; s++) {
			struct journal_record r = rec("NL-9", 3, s, 9);
			CHECK_INT(journal_add_record(j, &r), JOURNAL_ADDED);
			if (s % 5 == 0)
				add_msg(j, "t/crash", 1);
		}
		wait_commit(j);
		/* The WAL holds the data: it has not been checkpointed away. */
		{
			char wal[600];
			snprintf(wal, sizeof(wal), "%s-wal", db_path("crash.db"));
			CHECK(stat(wal, &st) == 0 && st.st_size > 0);
		}
		/* Written but never committed: must not survive. */
		for (uint32_t s = 501; s <= 510; s++) {
			struct journal_record r = rec("NL-9", 3, s, 9);
			CHECK_INT(journal_add_record(j, &r), JOURNAL_ADDED);
		}
		_exit(0);
	}
	CHECK(waitpid(pid, &status, 0) == pid);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);

	CHECK_INT(journal_open(loop, db_path("crash.db"), NULL, &j), 0);
	CHECK_INT(journal_last_seq(j, "NL-9", 3, &seq), 0);
	CHECK_INT(seq, 500);
	CHECK_INT(journal_outbox_count(j, &unsent, &total), 0);
	CHECK_INT(total, 100);
	/* Past every id the crashed run may have published. */
	CHECK(journal_outbox_next_id(j) > 100);
	journal_close(j);
}

struct visits {
	uint32_t seq[16];
	uint8_t type[16];
	int n;
	int stop_after; /* 0: never */
};

static int on_visit(const struct journal_record *r, void *userdata)
{
	struct visits *v = userdata;

	CHECK(v->n < 16);
	CHECK_STR(r->pen_serial, "NL-S");
	CHECK(r->raw_len == 4 && ((const uint8_t *)r->raw)[1] == (uint8_t)r->seq);
	v->seq[v->n] = r->seq;
	v->type[v->n] = r->type;
	v->n++;
	return v->stop_after && v->n >= v->stop_after ? 1 : 0;
}

static void add_typed(struct journal *j, uint32_t epoch, uint32_t seq, uint8_t type,
		      uint32_t session_id)
{
	struct journal_record r = rec("NL-S", epoch, seq, type);

	r.type = type;
	r.session_id = session_id;
	r.gw_time_ms = 5000 + seq;
	CHECK_INT(journal_add_record(j, &r), JOURNAL_ADDED);
}

static void check_visits(const struct visits *v, const uint32_t *seqs, const uint8_t *types,
			 int n)
{
	CHECK_INT(v->n, n);
	for (int i = 0; i < n; i++) {
		CHECK_INT(v->seq[i], seqs[i]);
		CHECK_INT(v->type[i], types[i]);
	}
}

/* Session 7 of epoch 5: 1 CARTRIDGE (no session), 2 START, 3 SEGMENT,
 * 4 LIMIT, 5 SEGMENT, 6 LIMIT, 7 END, then 8 CARTRIDGE after it. The end
 * comes first, 2 and 5 last (a gap asked for again), across a reopen. */
static void test_session_context(void)
{
	enum { S = NL_RECORD_SESSION_START, E = NL_RECORD_SESSION_END, L = NL_RECORD_LIMIT,
	       G = NL_RECORD_SEGMENT, C = NL_RECORD_CARTRIDGE };
	struct journal_session_info info;
	struct journal *j;
	struct visits v = { 0 };
	uint32_t seq, sid;

	CHECK_INT(journal_open(loop, db_path("session.db"), NULL, &j), 0);
	add_typed(j, 5, 7, E, 7);
	add_typed(j, 5, 6, L, 7);
	add_typed(j, 5, 8, C, 0);
	add_typed(j, 5, 4, L, 7);
	add_typed(j, 5, 3, G, 7);
	add_typed(j, 5, 1, C, 0);

	/* The open batch is read too: 5 is the highest hole, START unseen. */
	CHECK_INT(journal_session_context(j, "NL-S", 5, 7, 7, on_visit, &v, &info), 0);
	CHECK(info.found_end);
	CHECK_INT(info.start_seq, 0);
	CHECK_INT(info.missing_max, 5);
	CHECK_INT(info.first_seq, 3);
	CHECK_INT(info.cartridge_seq, 1);
	check_visits(&v, (uint32_t[]){ 7, 6, 4, 1 }, (uint8_t[]){ E, L, L, C }, 4);

	/* Not an end of that session, or no such session. */
	CHECK_INT(journal_session_context(j, "NL-S", 5, 7, 6, on_visit, &v, &info), -ENOENT);
	CHECK_INT(journal_session_context(j, "NL-S", 5, 8, 7, on_visit, &v, &info), -ENOENT);
	CHECK_INT(journal_session_context(j, "NL-S", 4, 7, 7, on_visit, &v, &info), -ENOENT);
	CHECK_INT(journal_session_context(j, "NL-T", 5, 7, 7, on_visit, &v, &info), -ENOENT);

	add_typed(j, 5, 5, G, 7);
	v = (struct visits){ 0 };
	CHECK_INT(journal_session_context(j, "NL-S", 5, 7, 7, on_visit, &v, &info), 0);
	CHECK_INT(info.missing_max, 2);
	CHECK_INT(info.start_seq, 0);
	CHECK_INT(info.first_seq, 3);

	/* The late start, committed, then the journal reopened (a restart). */
	add_typed(j, 5, 2, S, 7);
	wait_commit(j);
	journal_close(j);
	CHECK_INT(journal_open(loop, db_path("session.db"), NULL, &j), 0);
	v = (struct visits){ 0 };
	CHECK_INT(journal_session_context(j, "NL-S", 5, 7, 7, on_visit, &v, &info), 0);
	CHECK(info.found_end);
	CHECK_INT(info.missing_max, 0);
	CHECK_INT(info.start_seq, 2);
	CHECK_INT(info.first_seq, 2);
	CHECK_INT(info.cartridge_seq, 1);
	check_visits(&v, (uint32_t[]){ 7, 6, 4, 2, 1 }, (uint8_t[]){ E, L, L, S, C }, 5);

	/* fn > 0 stops the walk; no info then. */
	v = (struct visits){ .stop_after = 2 };
	info = (struct journal_session_info){ .start_seq = 99 };
	CHECK_INT(journal_session_context(j, "NL-S", 5, 7, 7, on_visit, &v, &info), 0);
	CHECK_INT(v.n, 2);
	CHECK_INT(info.start_seq, 99);

	CHECK_INT(journal_next_session_end(j, "NL-S", 5, 3, &seq, &sid), 0);
	CHECK_INT(seq, 7);
	CHECK_INT(sid, 7);
	CHECK_INT(journal_next_session_end(j, "NL-S", 5, 7, &seq, &sid), -ENOENT);
	CHECK_INT(journal_next_session_end(j, "NL-S", 6, 0, &seq, &sid), -ENOENT);

	/* Epoch 6, first seen at seq 10 (older records pruned on the pen):
	 * nothing below the oldest record counts as missing; a hole inside
	 * does, even with no record of another session below it. */
	add_typed(j, 6, 10, L, 9);
	add_typed(j, 6, 11, E, 9);
	v = (struct visits){ 0 };
	CHECK_INT(journal_session_context(j, "NL-S", 6, 9, 11, on_visit, &v, &info), 0);
	CHECK_INT(info.missing_max, 0);
	CHECK_INT(info.start_seq, 0);
	CHECK_INT(info.first_seq, 10);
	CHECK_INT(info.cartridge_seq, 0);
	check_visits(&v, (uint32_t[]){ 11, 10 }, (uint8_t[]){ E, L }, 2);
	add_typed(j, 6, 14, E, 10);
	add_typed(j, 6, 12, S, 10);
	v = (struct visits){ 0 };
	CHECK_INT(journal_session_context(j, "NL-S", 6, 10, 14, on_visit, &v, &info), 0);
	CHECK_INT(info.missing_max, 13);
	CHECK_INT(info.start_seq, 12);
	CHECK_INT(journal_next_session_end(j, "NL-S", 6, 11, &seq, &sid), 0);
	CHECK_INT(seq, 14);
	CHECK_INT(sid, 10);
	journal_close(j);
}


/* COUNT(*) of a table as another connection sees it (committed rows only). */
static int64_t committed_rows(const char *path, const char *table)
{
	sqlite3 *db;
	sqlite3_stmt *st;
	char sql[128];
	int64_t n = -1;

	CHECK_INT(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
	snprintf(sql, sizeof(sql), "SELECT COUNT(*) FROM %s", table);
	CHECK_INT(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
	if (sqlite3_step(st) == SQLITE_ROW)
		n = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	sqlite3_close(db);
	return n;
}

struct payloads {
	int64_t ids[8];
	char text[8][96];
	int n;
};

static int on_payload(const struct journal_outbox_row *row, void *userdata)
{
	struct payloads *p = userdata;

	CHECK(p->n < 8);
	CHECK(row->payload_len < sizeof(p->text[0]));
	p->ids[p->n] = row->id;
	memcpy(p->text[p->n], row->payload, row->payload_len);
	p->text[p->n][row->payload_len] = '\0';
	p->n++;
	return 0;
}

static void test_record_outbox(void)
{
	/* batch_max 1: every write would commit on its own. */
	struct journal_options opts = { .batch_max = 1, .batch_delay_us = 60ull * 1000000 };
	struct journal_record r = rec("NL-REF", 1, 1, 7);
	struct payloads got = { 0 };
	char *path = db_path("ref.db");
	struct journal *j;
	int64_t id = -1, other = -1;

	CHECK_INT(journal_open(loop, path, &opts, &j), 0);
	r.decoded = "{\"record_id\":\"NL-REF-1-1\",\"msg_id\":1}";
	/* No record added yet: nothing to refer to. */
	CHECK_INT(journal_add_outbox_record(j, "t/records", r.decoded, &id), -ENOENT);

	journal_hold(j);
	CHECK_INT(journal_add_record(j, &r), JOURNAL_ADDED);
	/* Held: the full batch did not commit between record and message. */
	CHECK_INT(committed_rows(path, "records"), 0);
	CHECK_INT(journal_add_outbox_record(j, "t/records", r.decoded, &id), 0);
	/* Only one message per record. */
	CHECK_INT(journal_add_outbox_record(j, "t/records", r.decoded, &other), -ENOENT);
	CHECK_INT(committed_rows(path, "outbox"), 0);
	CHECK_INT(journal_release(j), 0);
	CHECK_INT(committed_rows(path, "records"), 1);
	CHECK_INT(committed_rows(path, "outbox"), 1);

	/* Another message, with its own payload, after it. */
	CHECK_INT(journal_add_outbox(j, "t/alerts", "{\"a\":1}", 7, 1, false, &other), 0);
	CHECK_INT(journal_flush(j), 0);
	CHECK_INT(journal_outbox_unsent(j, 0, 10, on_payload, &got), 2);
	CHECK_INT(got.ids[0], id);
	CHECK_STR(got.text[0], r.decoded);
	CHECK_INT(got.ids[1], other);
	CHECK_STR(got.text[1], "{\"a\":1}");
	journal_close(j);

	/* The payload is stored once: the outbox row itself holds none. */
	{
		sqlite3 *db;
		sqlite3_stmt *st;

		CHECK_INT(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
		CHECK_INT(sqlite3_prepare_v2(db, "SELECT length(payload), record_ref IS NOT NULL"
						 " FROM outbox ORDER BY id", -1, &st, NULL), SQLITE_OK);
		CHECK_INT(sqlite3_step(st), SQLITE_ROW);
		CHECK_INT(sqlite3_column_int(st, 0), 0);
		CHECK_INT(sqlite3_column_int(st, 1), 1);
		CHECK_INT(sqlite3_step(st), SQLITE_ROW);
		CHECK_INT(sqlite3_column_int(st, 0), 7);
		CHECK_INT(sqlite3_column_int(st, 1), 0);
		sqlite3_finalize(st);
		sqlite3_close(db);
	}
}

/* Under a steady stream the loop may never go idle and the delay timer
 * waits behind queued events: a write into a batch older than the delay
 * commits it there and then, without the loop. */
static void test_batch_age(void)
{
	struct journal_options opts = { .batch_max = 1000, .batch_delay_us = 50000 };
	char *path = db_path("age.db");
	struct journal *j;
	struct journal_record r;

	CHECK_INT(journal_open(loop, path, &opts, &j), 0);
	r = rec("NL-AGE", 1, 1, 1);
	CHECK_INT(journal_add_record(j, &r), JOURNAL_ADDED);
	usleep(80000); /* past the delay; the loop does not run */
	r = rec("NL-AGE", 1, 2, 2);
	CHECK_INT(journal_add_record(j, &r), JOURNAL_ADDED);
	CHECK_INT(committed_rows(path, "records"), 2);
	CHECK_INT(journal_pending(j), 0);
	journal_close(j);
}

/* A batch closed by its age (the loop stayed busy) lets the next one wait
 * twice as long; one closed by the loop going idle brings the delay back. */
static void test_batch_delay_grows(void)
{
	struct journal_options opts = { .batch_max = 1000, .batch_delay_us = 100000 };
	char *path = db_path("grow.db");
	struct journal *j;
	struct journal_record r;
	uint32_t seq = 0;

	CHECK_INT(journal_open(loop, path, &opts, &j), 0);
	r = rec("NL-GROW", 1, ++seq, 1);
	CHECK_INT(journal_add_record(j, &r), JOURNAL_ADDED);
	usleep(150000); /* past 100 ms: closed by age at the next write */
	r = rec("NL-GROW", 1, ++seq, 1);
	CHECK_INT(journal_add_record(j, &r), JOURNAL_ADDED);
	CHECK_INT(committed_rows(path, "records"), 2);

	/* Now 200 ms: 150 ms is not enough. */
	r = rec("NL-GROW", 1, ++seq, 1);
	CHECK_INT(journal_add_record(j, &r), JOURNAL_ADDED);
	usleep(150000);
	r = rec("NL-GROW", 1, ++seq, 1);
	CHECK_INT(journal_add_record(j, &r), JOURNAL_ADDED);
	CHECK_INT(committed_rows(path, "records"), 2);
	CHECK_INT(journal_pending(j), 2);

	/* The loop goes idle: committed, and the delay is 100 ms again. */
	wait_commit(j);
	CHECK_INT(committed_rows(path, "records"), 4);
	r = rec("NL-GROW", 1, ++seq, 1);
	CHECK_INT(journal_add_record(j, &r), JOURNAL_ADDED);
	usleep(150000);
	r = rec("NL-GROW", 1, ++seq, 1);
	CHECK_INT(journal_add_record(j, &r), JOURNAL_ADDED);
	CHECK_INT(committed_rows(path, "records"), 6);
	journal_close(j);
}

/* A loop busy for less than busy_grow_us (a burst of live records) keeps
 * the short delay: every batch still closes after batch_delay_us. Once it has
 * been busy for longer, the delay grows. */
static void test_batch_delay_burst(void)
{
	struct journal_options opts = { .batch_max = 1000,
					.batch_delay_us = 100000,
					.busy_grow_us = 1000000 };
	char *path = db_path("burst.db");
	struct journal *j;
	struct journal_record r;
	uint32_t seq = 0;
	int want = 1;

	CHECK_INT(journal_open(loop, path, &opts, &j), 0);
	r = rec("NL-BURST", 1, ++seq, 1);
	CHECK_INT(journal_add_record(j, &r), JOURNAL_ADDED);
	/* Busy for 3 x 150 ms, each batch closed by its age at the next
	 * write: with a grown delay (200 ms) the second would stay open. */
	for (int i = 0; i < 3; i++) {
		usleep(150000);
		r = rec("NL-BURST", 1, ++seq, 1);
		CHECK_INT(journal_add_record(j, &r), JOURNAL_ADDED);
		want++;
		CHECK_INT(committed_rows(path, "records"), want);
		CHECK_INT(journal_pending(j), 0);
		r = rec("NL-BURST", 1, ++seq, 1);
		CHECK_INT(journal_add_record(j, &r), JOURNAL_ADDED);
		want++;
	}
	/* Past a second of business: the delay doubles after this batch. */
	usleep(700000);
	r = rec("NL-BURST", 1, ++seq, 1);
	CHECK_INT(journal_add_record(j, &r), JOURNAL_ADDED);
	want++;
	CHECK_INT(committed_rows(path, "records"), want);
	r = rec("NL-BURST", 1, ++seq, 1);
	CHECK_INT(journal_add_record(j, &r), JOURNAL_ADDED);
	usleep(150000);
	r = rec("NL-BURST", 1, ++seq, 1);
	CHECK_INT(journal_add_record(j, &r), JOURNAL_ADDED);
	CHECK_INT(committed_rows(path, "records"), want);
	CHECK_INT(journal_pending(j), 2);
	wait_commit(j);
	CHECK_INT(committed_rows(path, "records"), want + 2);
	journal_close(j);
}

/* Holes between journaled seqs: what an earlier run left open. */
static void test_missing(void)
{
	static const uint32_t have[] = { 1, 2, 3, 5, 6, 9, 10, 14 };
	struct journal *j;
	uint32_t a[8], b[8];

	CHECK_INT(journal_open(loop, db_path("missing.db"), NULL, &j), 0);
	for (size_t i = 0; i < sizeof(have) / sizeof(have[0]); i++) {
		struct journal_record r = rec("NL-GAP", 7, have[i], 1);

		CHECK_INT(journal_add_record(j, &r), JOURNAL_ADDED);
	}
	{
		struct journal_record r = rec("NL-GAP", 8, 4, 1); /* another epoch */

		CHECK_INT(journal_add_record(j, &r), JOURNAL_ADDED);
	}
	CHECK_INT(journal_missing(j, "NL-GAP", 7, 0, a, b, 8), 3);
	CHECK_INT(a[0], 4);
	CHECK_INT(b[0], 4);
	CHECK_INT(a[1], 7);
	CHECK_INT(b[1], 8);
	CHECK_INT(a[2], 11);
	CHECK_INT(b[2], 13);
	/* From 5 on: 4 is before the range looked at. */
	CHECK_INT(journal_missing(j, "NL-GAP", 7, 5, a, b, 8), 2);
	CHECK_INT(a[0], 7);
	/* Nothing journaled yet after the start: the hole up to the first. */
	CHECK_INT(journal_missing(j, "NL-GAP", 8, 1, a, b, 8), 1);
	CHECK_INT(a[0], 2);
	CHECK_INT(b[0], 3);
	CHECK_INT(journal_missing(j, "NL-GAP", 7, 0, a, b, 1), 1);
	CHECK_INT(journal_missing(j, "NL-NONE", 7, 0, a, b, 8), 0);
	journal_close(j);
}

/* A journal written by schema version 1 (payloads in the outbox rows): its
 * unsent messages still drain after the migration. */
static void test_migrate_v1(void)
{
	char *path = db_path("v1.db");
	struct payloads got = { 0 };
	struct journal *j;
	sqlite3 *db;

	CHECK_INT(sqlite3_open(path, &db), SQLITE_OK);
	CHECK_INT(sqlite3_exec(db,
			       "PRAGMA journal_mode = WAL;"
			       "CREATE TABLE schema_version (version INTEGER NOT NULL);"
			       "INSERT INTO schema_version VALUES (1);"
			       "CREATE TABLE pens (serial TEXT PRIMARY KEY NOT NULL, model TEXT,"
			       " firmware TEXT, store_epoch INTEGER NOT NULL DEFAULT 0,"
			       " last_committed_seq INTEGER NOT NULL DEFAULT 0,"
			       " first_seen INTEGER NOT NULL, last_seen INTEGER NOT NULL);"
			       "CREATE TABLE sessions (id INTEGER PRIMARY KEY, pen_serial TEXT NOT NULL,"
			       " store_epoch INTEGER NOT NULL, session_id INTEGER NOT NULL,"
			       " start_seq INTEGER, end_seq INTEGER, start_pen_time INTEGER,"
			       " end_pen_time INTEGER, gw_started INTEGER, gw_ended INTEGER,"
			       " end_reason INTEGER, UNIQUE (pen_serial, store_epoch, session_id));"
			       "CREATE TABLE records (id INTEGER PRIMARY KEY, pen_serial TEXT NOT NULL,"
			       " store_epoch INTEGER NOT NULL, seq INTEGER NOT NULL,"
			       " type INTEGER NOT NULL, session_id INTEGER NOT NULL,"
			       " pen_time INTEGER NOT NULL, gw_time INTEGER NOT NULL,"
			       " raw BLOB NOT NULL, decoded TEXT,"
			       " UNIQUE (pen_serial, store_epoch, seq));"
			       "CREATE TABLE outbox (id INTEGER PRIMARY KEY AUTOINCREMENT,"
			       " topic TEXT NOT NULL, payload BLOB NOT NULL, qos INTEGER NOT NULL,"
			       " retain INTEGER NOT NULL, created INTEGER NOT NULL, sent_at INTEGER);"
			       "CREATE INDEX outbox_unsent ON outbox (id) WHERE sent_at IS NULL;"
			       "CREATE INDEX outbox_sent ON outbox (sent_at) WHERE sent_at IS NOT NULL;"
			       "INSERT INTO outbox (id, topic, payload, qos, retain, created)"
			       " VALUES (41, 't/records', '{\"msg_id\":41}', 1, 0, 1);",
			       NULL, NULL, NULL),
		  SQLITE_OK);
	sqlite3_close(db);

	CHECK_INT(journal_open(loop, path, NULL, &j), 0);
	CHECK_INT(journal_schema_version(j), 2);
	CHECK_INT(journal_outbox_unsent(j, 0, 10, on_payload, &got), 1);
	CHECK_INT(got.ids[0], 41);
	CHECK_STR(got.text[0], "{\"msg_id\":41}");
	/* New ids continue after the old ones. */
	CHECK(journal_outbox_next_id(j) > 41);
	journal_close(j);
}

int main(void)
{
	CHECK(mkdtemp(dir));
	CHECK(sd_event_new(&loop) >= 0);
	test_idempotence();
	test_batching_and_order();
	test_outbox();
	test_crash();
	test_session_context();
	test_record_outbox();
	test_migrate_v1();
	test_batch_age();
	test_batch_delay_grows();
	test_batch_delay_burst();
	test_missing();
	{
		/* a missing directory is created */
		struct journal *j;
		CHECK_INT(journal_open(loop, db_path("state/j.db"), NULL, &j), 0);
		journal_close(j);
	}
	sd_event_unref(loop);
	{
		char cmd[600];
		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
		CHECK_INT(system(cmd), 0);
	}
	printf("test-journal: ok\n");
	return 0;
}
