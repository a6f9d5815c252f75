/* SPDX-License-Identifier: MIT */
#include "journal.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "helper-sched.h"
#include "log.h"
#include "needlelink/record.h"

#define DEFAULT_BATCH_MAX 1000
#define DEFAULT_BATCH_DELAY_US 250
/* A batch closed by its age means the loop never went idle meanwhile. Once
 * the loop has been busy like that for a while (DEFAULT_BUSY_GROW_US: a
 * catch-up, not a burst of live records, whose latency would suffer), each
 * such batch lets the next one wait twice as long, up to
 * BATCH_DELAY_GROWTH_MAX times the delay: a busy gateway commits (and syncs)
 * fewer, larger batches. The loop going idle brings it back. */
#define BATCH_DELAY_GROWTH_MAX 4
#define DEFAULT_BUSY_GROW_US 10000
#define BUSY_TIMEOUT_MS 100 /* another process (sqlite3 CLI) may hold a lock */
/* Outbox ids reserved ahead, durably (in sqlite_sequence): an id may be
 * published once it is below the durable reservation, so a crash before
 * its row was durable can never hand it to another message. Renewed when
 * less than half of it is left; a restart skips what was left of it. */
#define ID_RESERVE 1000000
/* The syncer checkpoints (passive, its own connection) once the WAL is this
 * big; the loop's connection never checkpoints until it closes. */
#define CHECKPOINT_BYTES (4 * 1024 * 1024)

/* Each entry migrates from version i to i + 1. Append only; never edit a
 * released step. */
static const char *const migrations[] = {
	/* 0 -> 1 */
	"CREATE TABLE pens ("
	"  serial TEXT PRIMARY KEY NOT NULL,"
	"  model TEXT,"
	"  firmware TEXT,"
	"  store_epoch INTEGER NOT NULL DEFAULT 0,"
	"  last_committed_seq INTEGER NOT NULL DEFAULT 0,"
	"  first_seen INTEGER NOT NULL,"
	"  last_seen INTEGER NOT NULL);"
	"CREATE TABLE sessions ("
	"  id INTEGER PRIMARY KEY,"
	"  pen_serial TEXT NOT NULL,"
	"  store_epoch INTEGER NOT NULL,"
	"  session_id INTEGER NOT NULL,"
	"  start_seq INTEGER,"
	"  end_seq INTEGER,"
	"  start_pen_time INTEGER,"
	"  end_pen_time INTEGER,"
	"  gw_started INTEGER,"
	"  gw_ended INTEGER,"
	"  end_reason INTEGER,"
	"  UNIQUE (pen_serial, store_epoch, session_id));"
	"CREATE TABLE records ("
	"  id INTEGER PRIMARY KEY,"
	"  pen_serial TEXT NOT NULL,"
	"  store_epoch INTEGER NOT NULL,"
	"  seq INTEGER NOT NULL,"
	"  type INTEGER NOT NULL,"
	"  session_id INTEGER NOT NULL,"
	"  pen_time INTEGER NOT NULL,"
	"  gw_time INTEGER NOT NULL,"
	"  raw BLOB NOT NULL,"
	"  decoded TEXT,"
	"  UNIQUE (pen_serial, store_epoch, seq));"
	"CREATE TABLE outbox ("
	"  id INTEGER PRIMARY KEY AUTOINCREMENT,"
	"  topic TEXT NOT NULL,"
	"  payload BLOB NOT NULL,"
	"  qos INTEGER NOT NULL,"
	"  retain INTEGER NOT NULL,"
	"  created INTEGER NOT NULL,"
	"  sent_at INTEGER);"
	"CREATE INDEX outbox_unsent ON outbox (id) WHERE sent_at IS NULL;"
	"CREATE INDEX outbox_sent ON outbox (sent_at) WHERE sent_at IS NOT NULL;",
	/* 1 -> 2: a record's outbox message refers to its row in records
	 * (whose decoded text is the payload) instead of holding a copy. */
	"ALTER TABLE outbox ADD COLUMN record_ref INTEGER;",
};
#define SCHEMA_VERSION ((int)(sizeof(migrations) / sizeof(migrations[0])))

enum stmt {
	ST_BEGIN,
	ST_COMMIT,
	ST_ROLLBACK,
	ST_INSERT_RECORD,
	ST_RECORD_RAW,
	ST_LAST_SEQ,
	ST_PEN_SEEN,
	ST_PEN_SEQ,
	ST_INSERT_OUTBOX,
	ST_UNSENT,
	ST_MARK_SENT,
	ST_PRUNE,
	ST_COUNT_UNSENT,
	ST_COUNT_ALL,
	ST_NEXT_ID,
	ST_RESERVE_UPDATE,
	ST_RESERVE_INSERT,
	ST_MISSING,
	ST_COUNT_STMTS
};

static const char *const stmt_sql[ST_COUNT_STMTS] = {
	[ST_BEGIN] = "BEGIN IMMEDIATE",
	[ST_COMMIT] = "COMMIT",
	[ST_ROLLBACK] = "ROLLBACK",
	[ST_INSERT_RECORD] =
		"INSERT INTO records (pen_serial, store_epoch, seq, type, session_id, pen_time,"
		" gw_time, raw, decoded) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)"
		" ON CONFLICT DO NOTHING",
	[ST_RECORD_RAW] = "SELECT raw FROM records WHERE pen_serial = ?1 AND store_epoch = ?2"
			  " AND seq = ?3",
	[ST_LAST_SEQ] = "SELECT MAX(seq) FROM records WHERE pen_serial = ?1 AND store_epoch = ?2",
	[ST_PEN_SEEN] =
		"INSERT INTO pens (serial, model, firmware, store_epoch, first_seen, last_seen)"
		" VALUES (?1, ?2, ?3, ?4, ?5, ?5) ON CONFLICT (serial) DO UPDATE SET"
		" model = COALESCE(excluded.model, model),"
		" firmware = COALESCE(excluded.firmware, firmware),"
		" last_committed_seq = CASE WHEN store_epoch = excluded.store_epoch"
		"   THEN last_committed_seq ELSE 0 END,"
		" store_epoch = excluded.store_epoch,"
		" last_seen = MAX(last_seen, excluded.last_seen)",
	[ST_PEN_SEQ] =
		"INSERT INTO pens (serial, store_epoch, last_committed_seq, first_seen, last_seen)"
		" VALUES (?1, ?2, ?3, ?4, ?4) ON CONFLICT (serial) DO UPDATE SET"
		" last_committed_seq = CASE WHEN store_epoch = excluded.store_epoch"
		"   THEN MAX(last_committed_seq, excluded.last_committed_seq)"
		"   ELSE excluded.last_committed_seq END,"
		" store_epoch = excluded.store_epoch,"
		" last_seen = MAX(last_seen, excluded.last_seen)",
	[ST_INSERT_OUTBOX] = "INSERT INTO outbox (id, topic, payload, qos, retain, created,"
			     " record_ref) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
	[ST_UNSENT] = "SELECT o.id, o.topic,"
		      " CASE WHEN o.record_ref IS NULL THEN o.payload ELSE r.decoded END,"
		      " o.qos, o.retain, o.created FROM outbox o"
		      " LEFT JOIN records r ON r.id = o.record_ref"
		      " WHERE o.sent_at IS NULL AND o.id > ?1 AND o.id <= ?2 ORDER BY o.id LIMIT ?3",
	[ST_MARK_SENT] = "UPDATE outbox SET sent_at = ?2 WHERE id = ?1 AND sent_at IS NULL",
	[ST_PRUNE] = "DELETE FROM outbox WHERE sent_at IS NOT NULL AND sent_at < ?1",
	[ST_COUNT_UNSENT] = "SELECT COUNT(*) FROM outbox WHERE sent_at IS NULL",
	[ST_COUNT_ALL] = "SELECT COUNT(*) FROM outbox",
	[ST_NEXT_ID] = "SELECT MAX(COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'outbox'), 0),"
		       " COALESCE((SELECT MAX(id) FROM outbox), 0)) + 1",
	[ST_RESERVE_UPDATE] = "UPDATE sqlite_sequence SET seq = MAX(seq, ?1) WHERE name = 'outbox'",
	[ST_RESERVE_INSERT] = "INSERT INTO sqlite_sequence (name, seq) VALUES ('outbox', ?1)",
	/* Holes between journaled seqs of one epoch, from ?3 on (?3 itself
	 * counts as present: the start of the range looked at). */
	[ST_MISSING] = "SELECT seq + 1, next - 1 FROM (SELECT seq, LEAD(seq) OVER (ORDER BY seq)"
		       " AS next FROM (SELECT ?3 AS seq UNION ALL SELECT seq FROM records"
		       " WHERE pen_serial = ?1 AND store_epoch = ?2 AND seq > ?3))"
		       " WHERE next > seq + 1 ORDER BY seq LIMIT ?4",
};

struct waiter {
	struct waiter *next;
	journal_commit_cb cb;
	void *userdata;
	int result;
	uint64_t gen; /* commit generation it waits to be durable */
};

/* The WAL syncer: a thread that only calls fdatasync() on the WAL file (no
 * SQLite call but its own checkpoints), asked by the loop and answering it.
 * No lock between them: the loop has at most one request out (sync_busy),
 * each side writes its own fields and then the other side's eventfd, so the
 * loop never waits for the thread, nor the thread for the loop. */
struct syncer {
	pthread_t thread;
	bool started;
	int wal_fd;
	int req_fd;                /* eventfd: the loop asks (the thread blocks reading it) */
	int efd;                   /* eventfd: the thread answers the loop */
	_Atomic uint64_t req_gen;  /* asked for: durable through this commit generation */
	_Atomic uint64_t done_gen; /* answered; published after the fields below */
	_Atomic int done_err;      /* 0 or -errno of the last fdatasync */
	_Atomic uint64_t done_us;  /* and how long it took */
	_Atomic uint64_t checkpoints, checkpoint_us;
	sqlite3 *ckdb;             /* the thread's own connection, for checkpoints only */
	atomic_bool quit;
};

struct touched_pen {
	char *serial;
	uint32_t epoch;
	uint32_t max_seq;
};

struct journal {
	sqlite3 *db;
	sqlite3_stmt *st[ST_COUNT_STMTS];
	sd_event *event;
	sd_event_source *timer; /* commits a batch batch_delay_us after it opened */
	sd_event_source *idle;  /* commits a batch once the loop has nothing else to run */
	sd_event_source *defer; /* runs finished waiters from the loop */
	unsigned batch_max;
	uint64_t batch_delay_us;
	uint64_t cur_delay_us; /* of the open batch: batch_delay_us .. x BATCH_DELAY_GROWTH_MAX */
	uint64_t busy_grow_us;  /* busy this long before the delay grows */
	uint64_t busy_since_us; /* start of the first batch closed by age since idle, 0: none */
	bool in_tx;
	unsigned pending;
	int last_result; /* of the last batch, for waiters added with none open */
	int64_t next_outbox_id;
	int64_t last_record_row; /* rowid of the last record added, 0 if none */
	unsigned held;           /* journal_hold() depth: no commit at batch_max */
	uint64_t batch_start_us; /* CLOCK_MONOTONIC when the open batch began */
	int64_t committed_outbox_max;
	struct waiter *wait_head, *wait_tail; /* on the open batch */
	struct waiter *sync_head, *sync_tail; /* committed, waiting for the WAL sync */
	struct waiter *done_head, *done_tail; /* results known, to run */
	struct syncer sy;
	sd_event_source *sync_src; /* sy.efd */
	uint64_t commit_gen;       /* successful COMMITs so far */
	uint64_t durable_gen;      /* of them, synced */
	bool sync_busy;            /* a request is with the thread */
	uint64_t sync_req_us;      /* when it was made */
	int sync_failed;           /* -errno once a WAL sync failed: no more writes */
	int64_t reserved_max;      /* outbox ids reserved (committed) */
	int64_t reserved_durable;  /* of them, durable: publishable */
	int64_t reserve_gen_max;   /* reserved_max written in commit generation reserve_gen */
	uint64_t reserve_gen;
	struct touched_pen *touched;
	size_t n_touched, cap_touched;
	bool outbox_added; /* the open batch adds outbox rows */
	journal_outbox_hook outbox_hook;
	void *outbox_hook_ud;
	journal_visit_hook visit_hook;
	void *visit_hook_ud;
	journal_add_hook add_hook;
	void *add_hook_ud;
	struct journal_stats stats;
	int schema;
};

int64_t journal_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static uint64_t mono_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

int journal_sqlite_errno(int rc)
{
	switch (rc & 0xff) {
	case SQLITE_OK:
	case SQLITE_ROW:
	case SQLITE_DONE:
		return 0;
	case SQLITE_NOMEM:
		return -ENOMEM;
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
		return -EBUSY;
	case SQLITE_FULL:
		return -ENOSPC;
	case SQLITE_READONLY:
		return -EROFS;
	case SQLITE_PERM:
	case SQLITE_AUTH:
		return -EACCES;
	case SQLITE_CANTOPEN:
		return -ENOENT;
	case SQLITE_CORRUPT:
	case SQLITE_NOTADB:
		return -EBADMSG;
	case SQLITE_CONSTRAINT:
		return -EEXIST;
	case SQLITE_TOOBIG:
		return -E2BIG;
	case SQLITE_MISUSE:
	case SQLITE_RANGE:
		return -EINVAL;
	default:
		return -EIO;
	}
}

static int fail_sql(struct journal *j, int rc, const char *what)
{
	log_err("journal: %s: %s (%s)", what, sqlite3_errmsg(j->db), sqlite3_errstr(rc));
	return journal_sqlite_errno(rc);
}

/* Steps a statement expected to finish without rows, resets it. */
static int step_done(struct journal *j, enum stmt s)
{
	int rc = sqlite3_step(j->st[s]);

	sqlite3_reset(j->st[s]);
	sqlite3_clear_bindings(j->st[s]);
	if (rc != SQLITE_DONE)
		return fail_sql(j, rc, stmt_sql[s]);
	return 0;
}

/* For single-value queries: the first column of the first row. */
static int step_int64(struct journal *j, enum stmt s, int64_t *ret, bool *ret_null)
{
	int rc = sqlite3_step(j->st[s]);
	int r = 0;

	if (rc == SQLITE_ROW) {
		if (ret_null)
			*ret_null = sqlite3_column_type(j->st[s], 0) == SQLITE_NULL;
		*ret = sqlite3_column_int64(j->st[s], 0);
	} else {
		r = rc == SQLITE_DONE ? -ENOENT : fail_sql(j, rc, stmt_sql[s]);
	}
	sqlite3_reset(j->st[s]);
	sqlite3_clear_bindings(j->st[s]);
	return r;
}

static void schedule_done(struct journal *j)
{
	if (j->done_head)
		(void)sd_event_source_set_enabled(j->defer, SD_EVENT_ONESHOT);
}

static void append_done(struct journal *j, struct waiter *w)
{
	w->next = NULL;
	if (j->done_tail)
		j->done_tail->next = w;
	else
		j->done_head = w;
	j->done_tail = w;
}

static void append_sync(struct journal *j, struct waiter *w)
{
	w->next = NULL;
	if (j->sync_tail)
		j->sync_tail->next = w;
	else
		j->sync_head = w;
	j->sync_tail = w;
}

/* Waiters of the batch that just ended: once their commit generation is
 * durable they run with result (0: committed; a failed batch's waiters keep
 * their place in line, behind earlier batches still syncing). */
static void move_waiters(struct journal *j, int result)
{
	struct waiter *w = j->wait_head;

	j->wait_head = j->wait_tail = NULL;
	while (w) {
		struct waiter *next = w->next;
		w->result = result == 0 && j->sync_failed ? j->sync_failed : result;
		w->gen = j->commit_gen;
		if (j->sync_failed)
			append_done(j, w); /* nothing syncs any more */
		else if (j->sync_head || (result == 0 && j->durable_gen < j->commit_gen))
			append_sync(j, w);
		else
			append_done(j, w);
		w = next;
	}
	schedule_done(j);
}

/* The WAL is durable through generation gen (err 0), or a sync failed. */
static void release_synced(struct journal *j, uint64_t gen, int err)
{
	while (j->sync_head && (err < 0 || j->sync_head->gen <= gen)) {
		struct waiter *w = j->sync_head;
		j->sync_head = w->next;
		if (!j->sync_head)
			j->sync_tail = NULL;
		if (err < 0 && w->result == 0)
			w->result = err;
		append_done(j, w);
	}
	schedule_done(j);
}

static void run_done(struct journal *j)
{
	struct waiter *w = j->done_head;

	/* Detach first: a callback may write and commit again. */
	j->done_head = j->done_tail = NULL;
	while (w) {
		struct waiter *next = w->next;
		w->cb(w->result, w->userdata);
		free(w);
		w = next;
	}
}

static int on_defer(sd_event_source *s, void *userdata)
{
	run_done(userdata);
	return 0;
}

static void clear_touched(struct journal *j)
{
	for (size_t i = 0; i < j->n_touched; i++)
		free(j->touched[i].serial);
	j->n_touched = 0;
}

static int reload_next_id(struct journal *j)
{
	int64_t id;
	int r = step_int64(j, ST_NEXT_ID, &id, NULL);

	if (r < 0)
		return r;
	j->next_outbox_id = id;
	j->committed_outbox_max = id - 1;
	/* The id space below id is used or was reserved (committed). */
	if (id - 1 > j->reserved_max)
		j->reserved_max = id - 1;
	return 0;
}

/* Writes a new reservation (next id + ID_RESERVE) into the open
 * transaction; *ret_max is what it reserves once committed. */
static int reserve_ids(struct journal *j, int64_t *ret_max)
{
	int64_t want = j->next_outbox_id + ID_RESERVE;
	int r;

	sqlite3_bind_int64(j->st[ST_RESERVE_UPDATE], 1, want);
	r = step_done(j, ST_RESERVE_UPDATE);
	if (r >= 0 && sqlite3_changes(j->db) == 0) {
		sqlite3_bind_int64(j->st[ST_RESERVE_INSERT], 1, want);
		r = step_done(j, ST_RESERVE_INSERT);
	}
	if (r >= 0)
		*ret_max = want;
	return r;
}

/* Asks the syncer to make everything committed so far durable, unless it
 * is busy (it is asked again when it answers) or there is nothing new. */
static void request_sync(struct journal *j)
{
	uint64_t one = 1;

	if (j->sync_busy || j->durable_gen >= j->commit_gen || j->sync_failed)
		return;
	atomic_store_explicit(&j->sy.req_gen, j->commit_gen, memory_order_release);
	/* Cannot block: an eventfd's write waits only at a count of 2^64-1. */
	while (write(j->sy.req_fd, &one, sizeof(one)) < 0 && errno == EINTR)
		;
	j->sync_busy = true;
	j->sync_req_us = mono_us();
}

static void synced(struct journal *j, uint64_t gen, int err, uint64_t dt)
{
	if (j->sy.wal_fd >= 0) {
		j->stats.syncs++;
		j->stats.sync_us += dt;
		if (dt > j->stats.sync_us_max)
			j->stats.sync_us_max = dt;
	}
	if (err < 0) {
		/* Linux may have dropped the dirty pages: what SQLite calls
		 * committed may not be on disk. Stop writing; nothing after
		 * this is acknowledged to anyone. */
		log_crit("journal: syncing the WAL failed: %s; the journal accepts no more writes",
			 strerror(-err));
		j->sync_failed = err;
		release_synced(j, gen, err);
		return;
	}
	if (gen > j->durable_gen)
		j->durable_gen = gen;
	release_synced(j, j->durable_gen, 0);
	if (j->reserve_gen && j->reserve_gen <= j->durable_gen) {
		if (j->reserve_gen_max > j->reserved_durable) {
			j->reserved_durable = j->reserve_gen_max;
			if (j->outbox_hook && j->committed_outbox_max > 0)
				j->outbox_hook(j->outbox_hook_ud);
		}
		j->reserve_gen = 0;
	}
}

static void *syncer_main(void *userdata)
{
	struct journal *j = userdata;
	struct syncer *sy = &j->sy;
	uint64_t done = 0, one = 1, v;

	(void)pthread_setname_np(pthread_self(), "nl-syncer");
	(void)helper_sched_begin(); /* for good: never preempt the loop */
	helper_sched_unbind();      /* it waits for the disk, not for the loop */
	for (;;) {
		uint64_t gen, t0, dt;
		int err;

		if (atomic_load_explicit(&sy->quit, memory_order_acquire))
			break;
		gen = atomic_load_explicit(&sy->req_gen, memory_order_acquire);
		if (gen <= done) {
			/* Nothing new: wait to be asked. A request stored after
			 * the load above has written the eventfd, so this read
			 * returns at once and the load is made again. */
			if (read(sy->req_fd, &v, sizeof(v)) < 0 && errno != EINTR) {
				log_crit("journal: the WAL syncer cannot wait for requests: %m; "
					 "no more records are acknowledged to pens");
				break;
			}
			continue;
		}
		t0 = mono_us();
		err = fdatasync(sy->wal_fd) < 0 ? -errno : 0;
		dt = mono_us() - t0;
		if (err == 0 && sy->ckdb) {
			struct stat st;

			if (fstat(sy->wal_fd, &st) == 0 && st.st_size >= CHECKPOINT_BYTES) {
				uint64_t c0 = mono_us();
				int rc = sqlite3_wal_checkpoint_v2(sy->ckdb, NULL,
								   SQLITE_CHECKPOINT_PASSIVE, NULL,
								   NULL);

				if (rc == SQLITE_OK) {
					atomic_fetch_add_explicit(&sy->checkpoints, 1,
								  memory_order_relaxed);
					atomic_fetch_add_explicit(&sy->checkpoint_us, mono_us() - c0,
								  memory_order_relaxed);
				}
			}
		}
		atomic_store_explicit(&sy->done_err, err, memory_order_relaxed);
		atomic_store_explicit(&sy->done_us, dt, memory_order_relaxed);
		atomic_store_explicit(&sy->done_gen, gen, memory_order_release);
		done = gen;
		while (write(sy->efd, &one, sizeof(one)) < 0 && errno == EINTR)
			;
	}
	return NULL;
}

static int on_synced(sd_event_source *s, int fd, uint32_t revents, void *userdata)
{
	struct journal *j = userdata;
	uint64_t v, gen, dt;
	int err;

	if (read(fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
		log_err("journal: reading the syncer's eventfd: %m");
	/* The thread answers one request at a time and gets no other before
	 * request_sync() below: what it stored before done_gen stays put. */
	gen = atomic_load_explicit(&j->sy.done_gen, memory_order_acquire);
	err = atomic_load_explicit(&j->sy.done_err, memory_order_relaxed);
	dt = atomic_load_explicit(&j->sy.done_us, memory_order_relaxed);
	j->stats.checkpoints = atomic_load_explicit(&j->sy.checkpoints, memory_order_relaxed);
	j->stats.checkpoint_us = atomic_load_explicit(&j->sy.checkpoint_us, memory_order_relaxed);
	if (!j->sync_busy)
		return 0;
	j->sync_busy = false;
	synced(j, gen, err, dt);
	request_sync(j);
	return 0;
}

/* The batch is over, committed (result 0) or rolled back. reserved: the
 * reservation it carried, or 0. */
static void end_batch(struct journal *j, int result, int64_t reserved)
{
	j->in_tx = false;
	j->pending = 0;
	j->last_result = result;
	clear_touched(j);
	(void)sd_event_source_set_enabled(j->timer, SD_EVENT_OFF);
	(void)sd_event_source_set_enabled(j->idle, SD_EVENT_OFF);
	if (result == 0) {
		j->commit_gen++;
		j->committed_outbox_max = j->next_outbox_id - 1;
		if (reserved) {
			j->reserved_max = reserved;
			j->reserve_gen = j->commit_gen;
			j->reserve_gen_max = reserved;
		}
		if (j->sy.wal_fd < 0)
			j->durable_gen = j->commit_gen; /* synchronous = FULL */
	} else {
		(void)reload_next_id(j);
	}
	move_waiters(j, result);
	if (result == 0) {
		if (j->sy.wal_fd < 0)
			synced(j, j->commit_gen, 0, 0);
		else
			request_sync(j);
	}
	if (result == 0 && j->outbox_added && j->outbox_hook)
		j->outbox_hook(j->outbox_hook_ud);
	j->outbox_added = false;
}

/* After a failed write: SQLite rolls the whole transaction back on some
 * errors (full disk, I/O, memory). The batch is then lost: say so. */
static void check_rolled_back(struct journal *j, int r)
{
	if (j->in_tx && sqlite3_get_autocommit(j->db)) {
		log_err("journal: transaction rolled back by SQLite: batch of %u writes lost",
			j->pending);
		end_batch(j, r < 0 ? r : -EIO, 0);
	}
}

static int begin_write(struct journal *j)
{
	int r;

	if (j->in_tx)
		return 0;
	if (j->sync_failed)
		return j->sync_failed;
	r = step_done(j, ST_BEGIN);
	if (r < 0)
		return r;
	j->in_tx = true;
	j->pending = 0;
	j->batch_start_us = mono_us();
	/* From now, not from the loop's cached time of this iteration. */
	r = sd_event_source_set_time(j->timer, j->batch_start_us + j->cur_delay_us);
	if (r >= 0)
		r = sd_event_source_set_enabled(j->timer, SD_EVENT_ONESHOT);
	if (r < 0)
		log_err("journal: cannot arm the batch timer: %s", strerror(-r));
	/* Group commit: the batch commits as soon as the loop has dispatched
	 * everything else that is ready (records that arrived together, or
	 * while the previous commit was syncing, join this batch); the timer
	 * only bounds the delay when the loop never goes idle. */
	(void)sd_event_source_set_enabled(j->idle, SD_EVENT_ONESHOT);
	return 0;
}

/* The open batch is full, or older than the delay: under a steady stream
 * the loop may not go idle, and the timer would only be seen after the
 * events already queued. */
static bool batch_due(const struct journal *j)
{
	return j->pending >= j->batch_max || mono_us() - j->batch_start_us >= j->cur_delay_us;
}

/* The open batch reached its delay with the loop busy all along. */
static void delay_grow(struct journal *j)
{
	if (!j->busy_since_us)
		j->busy_since_us = j->batch_start_us;
	if (mono_us() - j->busy_since_us >= j->busy_grow_us &&
	    j->cur_delay_us < j->batch_delay_us * BATCH_DELAY_GROWTH_MAX) {
		j->cur_delay_us *= 2;
		if (j->cur_delay_us > j->batch_delay_us * BATCH_DELAY_GROWTH_MAX)
			j->cur_delay_us = j->batch_delay_us * BATCH_DELAY_GROWTH_MAX;
	}
}

static int end_write(struct journal *j, int r)
{
	if (r < 0) {
		check_rolled_back(j, r);
		return r;
	}
	j->pending++;
	if (!j->held && batch_due(j)) {
		int f;

		if (j->pending < j->batch_max)
			delay_grow(j);
		f = journal_flush(j);
		if (f < 0)
			return f;
	}
	return r;
}

int journal_flush(struct journal *j)
{
	uint64_t t0, dt;
	unsigned writes = j->pending;
	int64_t reserved = 0;
	int r = 0;

	if (!j->in_tx)
		return 0;
	t0 = mono_us();
	for (size_t i = 0; i < j->n_touched && r >= 0; i++) {
		sqlite3_stmt *st = j->st[ST_PEN_SEQ];
		sqlite3_bind_text(st, 1, j->touched[i].serial, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 2, j->touched[i].epoch);
		sqlite3_bind_int64(st, 3, j->touched[i].max_seq);
		sqlite3_bind_int64(st, 4, journal_now_ms());
		r = step_done(j, ST_PEN_SEQ);
	}
	if (r >= 0 && j->next_outbox_id + ID_RESERVE / 2 > j->reserved_max)
		r = reserve_ids(j, &reserved);
	if (r >= 0)
		r = step_done(j, ST_COMMIT);
	if (r < 0 && !sqlite3_get_autocommit(j->db)) {
		/* Failed COMMIT keeps the transaction open: drop it. */
		(void)step_done(j, ST_ROLLBACK);
	}
	if (r < 0)
		log_err("journal: commit of %u writes failed: %s", j->pending, strerror(-r));
	dt = mono_us() - t0;
	j->stats.commits++;
	j->stats.writes += writes;
	j->stats.commit_us += dt;
	if (dt > j->stats.commit_us_max)
		j->stats.commit_us_max = dt;
	end_batch(j, r, r < 0 ? 0 : reserved);
	return r;
}

static int on_timer(sd_event_source *s, uint64_t usec, void *userdata)
{
	struct journal *j = userdata;

	j->stats.by_timer += j->in_tx;
	if (j->in_tx)
		delay_grow(j);
	(void)journal_flush(j);
	return 0;
}

static int on_idle(sd_event_source *s, void *userdata)
{
	struct journal *j = userdata;

	j->stats.by_idle += j->in_tx;
	j->cur_delay_us = j->batch_delay_us;
	j->busy_since_us = 0;
	(void)journal_flush(j);
	return 0;
}

void journal_set_outbox_hook(struct journal *j, journal_outbox_hook fn, void *userdata)
{
	j->outbox_hook = fn;
	j->outbox_hook_ud = userdata;
}

void journal_set_visit_hook(struct journal *j, journal_visit_hook fn, void *userdata)
{
	j->visit_hook = fn;
	j->visit_hook_ud = userdata;
}

void journal_set_add_hook(struct journal *j, journal_add_hook fn, void *userdata)
{
	j->add_hook = fn;
	j->add_hook_ud = userdata;
}

int64_t journal_outbox_visible_max(struct journal *j)
{
	return j->committed_outbox_max < j->reserved_durable ? j->committed_outbox_max
							      : j->reserved_durable;
}

void journal_get_stats(struct journal *j, struct journal_stats *ret)
{
	*ret = j->stats;
}

uint64_t journal_sync_wait_us(struct journal *j)
{
	return j->sync_busy ? mono_us() - j->sync_req_us : 0;
}

unsigned journal_pending(struct journal *j)
{
	return j->in_tx ? j->pending : 0;
}

int journal_commit(struct journal *j, journal_commit_cb cb, void *userdata)
{
	struct waiter *w;

	if (!cb)
		return -EINVAL;
	w = calloc(1, sizeof(*w));
	if (!w)
		return -ENOMEM;
	w->cb = cb;
	w->userdata = userdata;
	if (j->in_tx) {
		if (j->wait_tail)
			j->wait_tail->next = w;
		else
			j->wait_head = w;
		j->wait_tail = w;
	} else if (!j->sync_failed && (j->sync_head || j->durable_gen < j->commit_gen)) {
		/* Nothing open, but earlier commits are not durable yet. */
		w->result = j->last_result;
		w->gen = j->commit_gen;
		append_sync(j, w);
	} else {
		w->result = j->sync_failed ? j->sync_failed : j->last_result;
		append_done(j, w);
		schedule_done(j);
	}
	return 0;
}

static int touch_pen(struct journal *j, const char *serial, uint32_t epoch, uint32_t seq)
{
	struct touched_pen *t;

	for (size_t i = 0; i < j->n_touched; i++) {
		t = &j->touched[i];
		if (t->epoch == epoch && !strcmp(t->serial, serial)) {
			if (seq > t->max_seq)
				t->max_seq = seq;
			return 0;
		}
	}
	if (j->n_touched == j->cap_touched) {
		size_t cap = j->cap_touched ? j->cap_touched * 2 : 8;
		t = realloc(j->touched, cap * sizeof(*t));
		if (!t)
			return -ENOMEM;
		j->touched = t;
		j->cap_touched = cap;
	}
	t = &j->touched[j->n_touched];
	t->serial = strdup(serial);
	if (!t->serial)
		return -ENOMEM;
	t->epoch = epoch;
	t->max_seq = seq;
	j->n_touched++;
	return 0;
}

static int same_raw(struct journal *j, const struct journal_record *rec)
{
	sqlite3_stmt *st = j->st[ST_RECORD_RAW];
	int rc, same = 0;

	sqlite3_bind_text(st, 1, rec->pen_serial, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, rec->store_epoch);
	sqlite3_bind_int64(st, 3, rec->seq);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		const void *raw = sqlite3_column_blob(st, 0);
		size_t len = (size_t)sqlite3_column_bytes(st, 0);
		same = len == rec->raw_len && (len == 0 || memcmp(raw, rec->raw, len) == 0);
	} else {
		same = fail_sql(j, rc, stmt_sql[ST_RECORD_RAW]);
	}
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	return same;
}

int journal_add_record(struct journal *j, const struct journal_record *rec)
{
	sqlite3_stmt *st = j->st[ST_INSERT_RECORD];
	int r;

	if (!rec || !rec->pen_serial || (!rec->raw && rec->raw_len))
		return -EINVAL;
	r = begin_write(j);
	if (r < 0)
		return r;
	sqlite3_bind_text(st, 1, rec->pen_serial, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, rec->store_epoch);
	sqlite3_bind_int64(st, 3, rec->seq);
	sqlite3_bind_int(st, 4, rec->type);
	sqlite3_bind_int64(st, 5, rec->session_id);
	sqlite3_bind_int64(st, 6, rec->pen_time);
	sqlite3_bind_int64(st, 7, rec->gw_time_ms ? rec->gw_time_ms : journal_now_ms());
	sqlite3_bind_blob(st, 8, rec->raw ? rec->raw : "", (int)rec->raw_len, SQLITE_STATIC);
	if (rec->decoded)
		sqlite3_bind_text(st, 9, rec->decoded, -1, SQLITE_STATIC);
	else
		sqlite3_bind_null(st, 9);
	r = step_done(j, ST_INSERT_RECORD);
	if (r < 0)
		return end_write(j, r);
	if (sqlite3_changes(j->db) == 0) {
		/* Not a write: the batch does not grow. */
		r = same_raw(j, rec);
		if (r < 0)
			return r;
		return r ? JOURNAL_DUPLICATE : JOURNAL_CONFLICT;
	}
	j->last_record_row = rec->decoded ? sqlite3_last_insert_rowid(j->db) : 0;
	r = touch_pen(j, rec->pen_serial, rec->store_epoch, rec->seq);
	return end_write(j, r < 0 ? r : JOURNAL_ADDED);
}

int journal_pen_seen(struct journal *j, const char *serial, const char *model,
		     const char *firmware, uint32_t store_epoch, int64_t when_ms)
{
	sqlite3_stmt *st = j->st[ST_PEN_SEEN];
	int r;

	if (!serial)
		return -EINVAL;
	r = begin_write(j);
	if (r < 0)
		return r;
	sqlite3_bind_text(st, 1, serial, -1, SQLITE_STATIC);
	if (model)
		sqlite3_bind_text(st, 2, model, -1, SQLITE_STATIC);
	if (firmware)
		sqlite3_bind_text(st, 3, firmware, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 4, store_epoch);
	sqlite3_bind_int64(st, 5, when_ms ? when_ms : journal_now_ms());
	return end_write(j, step_done(j, ST_PEN_SEEN));
}

int64_t journal_outbox_next_id(struct journal *j)
{
	return j->next_outbox_id;
}

/* record_ref: 0, or the records row whose decoded text is the payload (the
 * row then holds an empty payload; the drain reads the record's text). */
static int add_outbox(struct journal *j, const char *topic, const void *payload, size_t len,
		      int qos, bool retain, int64_t record_ref, int64_t *ret_id)
{
	sqlite3_stmt *st = j->st[ST_INSERT_OUTBOX];
	int64_t id = j->next_outbox_id;
	int r;

	if (!topic || !*topic || (qos != 0 && qos != 1) || (!payload && len) || len > INT32_MAX)
		return -EINVAL;
	r = begin_write(j);
	if (r < 0)
		return r;
	sqlite3_bind_int64(st, 1, id);
	sqlite3_bind_text(st, 2, topic, -1, SQLITE_STATIC);
	if (record_ref > 0) {
		sqlite3_bind_blob(st, 3, "", 0, SQLITE_STATIC);
		sqlite3_bind_int64(st, 7, record_ref);
	} else {
		sqlite3_bind_blob(st, 3, payload ? payload : "", (int)len, SQLITE_STATIC);
		sqlite3_bind_null(st, 7);
	}
	sqlite3_bind_int(st, 4, qos);
	sqlite3_bind_int(st, 5, retain);
	sqlite3_bind_int64(st, 6, journal_now_ms());
	r = step_done(j, ST_INSERT_OUTBOX);
	if (r < 0)
		return end_write(j, r);
	j->next_outbox_id = id + 1;
	j->outbox_added = true;
	if (ret_id)
		*ret_id = id;
	r = end_write(j, 0);
	/* The batch may have committed in end_write() (batch_max): the row is
	 * then visible to the drain, which takes it from there. */
	if (r >= 0 && j->add_hook && j->in_tx && id <= j->reserved_durable) {
		struct journal_outbox_row row = {
			.id = id,
			.topic = topic,
			.payload = payload ? payload : "",
			.payload_len = len,
			.qos = qos,
			.retain = retain,
			.created_ms = journal_now_ms(),
		};
		if (j->add_hook(&row, j->add_hook_ud) == 0 && j->visit_hook)
			j->visit_hook(id, j->visit_hook_ud);
	}
	return r;
}

void journal_hold(struct journal *j)
{
	j->held++;
}

int journal_release(struct journal *j)
{
	if (j->held > 0 && --j->held == 0 && j->in_tx && batch_due(j)) {
		if (j->pending < j->batch_max)
			delay_grow(j);
		return journal_flush(j);
	}
	return 0;
}

int journal_add_outbox(struct journal *j, const char *topic, const void *payload, size_t len,
		       int qos, bool retain, int64_t *ret_id)
{
	return add_outbox(j, topic, payload, len, qos, retain, 0, ret_id);
}

int journal_add_outbox_record(struct journal *j, const char *topic, const char *decoded,
			      int64_t *ret_id)
{
	int64_t ref = j->last_record_row;

	if (!decoded)
		return -EINVAL;
	j->last_record_row = 0; /* one message per record */
	if (ref <= 0)
		return -ENOENT;
	return add_outbox(j, topic, decoded, strlen(decoded), 1, false, ref, ret_id);
}

int journal_last_seq(struct journal *j, const char *serial, uint32_t store_epoch,
		     uint32_t *ret_seq)
{
	int64_t v;
	bool null = true;
	int r;

	if (!serial)
		return -EINVAL;
	r = journal_flush(j);
	if (r < 0)
		return r;
	sqlite3_bind_text(j->st[ST_LAST_SEQ], 1, serial, -1, SQLITE_TRANSIENT);
	sqlite3_bind_int64(j->st[ST_LAST_SEQ], 2, store_epoch);
	r = step_int64(j, ST_LAST_SEQ, &v, &null);
	if (r < 0)
		return r;
	if (null)
		return -ENOENT;
	*ret_seq = (uint32_t)v;
	return 0;
}

int journal_missing(struct journal *j, const char *serial, uint32_t store_epoch,
		    uint32_t after_seq, uint32_t *ret_a, uint32_t *ret_b, size_t max)
{
	sqlite3_stmt *st = j->st[ST_MISSING];
	int rc, n = 0, r;

	if (!serial || (max && (!ret_a || !ret_b)))
		return -EINVAL;
	r = journal_flush(j);
	if (r < 0)
		return r;
	sqlite3_bind_text(st, 1, serial, -1, SQLITE_TRANSIENT);
	sqlite3_bind_int64(st, 2, store_epoch);
	sqlite3_bind_int64(st, 3, after_seq);
	sqlite3_bind_int64(st, 4, (int64_t)(max > INT32_MAX ? INT32_MAX : max));
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		ret_a[n] = (uint32_t)sqlite3_column_int64(st, 0);
		ret_b[n] = (uint32_t)sqlite3_column_int64(st, 1);
		n++;
	}
	r = rc == SQLITE_DONE ? n : fail_sql(j, rc, stmt_sql[ST_MISSING]);
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	return r;
}

int journal_outbox_unsent(struct journal *j, int64_t after_id, unsigned limit,
			  journal_outbox_fn fn, void *userdata)
{
	sqlite3_stmt *st = j->st[ST_UNSENT];
	int n = 0, r = 0, rc;

	if (!fn)
		return -EINVAL;
	sqlite3_bind_int64(st, 1, after_id);
	/* Committed rows whose id is durably reserved: never published under
	 * an id a crash could hand to another message. */
	sqlite3_bind_int64(st, 2, journal_outbox_visible_max(j));
	sqlite3_bind_int64(st, 3, limit);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct journal_outbox_row row = {
			.id = sqlite3_column_int64(st, 0),
			.topic = (const char *)sqlite3_column_text(st, 1),
			.payload = sqlite3_column_blob(st, 2),
			.payload_len = (size_t)sqlite3_column_bytes(st, 2),
			.qos = sqlite3_column_int(st, 3),
			.retain = sqlite3_column_int(st, 4) != 0,
			.created_ms = sqlite3_column_int64(st, 5),
		};
		n++;
		r = fn(&row, userdata);
		if (r != 0)
			break;
		if (j->visit_hook)
			j->visit_hook(row.id, j->visit_hook_ud);
	}
	if (r == 0 && rc != SQLITE_ROW && rc != SQLITE_DONE)
		r = fail_sql(j, rc, stmt_sql[ST_UNSENT]);
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	return r < 0 ? r : n;
}

int journal_outbox_mark_sent(struct journal *j, int64_t id, int64_t sent_ms)
{
	sqlite3_stmt *st = j->st[ST_MARK_SENT];
	int r;

	r = begin_write(j);
	if (r < 0)
		return r;
	sqlite3_bind_int64(st, 1, id);
	sqlite3_bind_int64(st, 2, sent_ms ? sent_ms : journal_now_ms());
	r = step_done(j, ST_MARK_SENT);
	if (r < 0)
		return end_write(j, r);
	return end_write(j, sqlite3_changes(j->db) > 0 ? 1 : 0);
}

int journal_outbox_prune(struct journal *j, int64_t sent_before_ms)
{
	int r;

	r = begin_write(j);
	if (r < 0)
		return r;
	sqlite3_bind_int64(j->st[ST_PRUNE], 1, sent_before_ms);
	r = step_done(j, ST_PRUNE);
	if (r < 0)
		return end_write(j, r);
	return end_write(j, sqlite3_changes(j->db));
}

int journal_outbox_count(struct journal *j, uint64_t *ret_unsent, uint64_t *ret_total)
{
	int64_t unsent = 0, total = 0;
	int r;

	r = step_int64(j, ST_COUNT_UNSENT, &unsent, NULL);
	if (r >= 0)
		r = step_int64(j, ST_COUNT_ALL, &total, NULL);
	if (r < 0)
		return r;
	if (ret_unsent)
		*ret_unsent = (uint64_t)unsent;
	if (ret_total)
		*ret_total = (uint64_t)total;
	return 0;
}

struct sqlite3 *journal_db(struct journal *j)
{
	return j->db;
}

int journal_write_begin(struct journal *j)
{
	return begin_write(j);
}

int journal_write_end(struct journal *j, int r)
{
	return end_write(j, r);
}

int journal_schema_version(struct journal *j)
{
	return j->schema;
}

static int exec(struct journal *j, const char *sql)
{
	char *msg = NULL;
	int rc = sqlite3_exec(j->db, sql, NULL, NULL, &msg);

	if (rc != SQLITE_OK) {
		log_err("journal: %s: %s", sql, msg ? msg : sqlite3_errstr(rc));
		sqlite3_free(msg);
		return journal_sqlite_errno(rc);
	}
	return 0;
}

static int migrate(struct journal *j)
{
	sqlite3_stmt *st = NULL;
	int version = 0, rc, r;

	r = exec(j, "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)");
	if (r < 0)
		return r;
	rc = sqlite3_prepare_v2(j->db, "SELECT version FROM schema_version", -1, &st, NULL);
	if (rc != SQLITE_OK)
		return fail_sql(j, rc, "schema_version");
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		version = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return fail_sql(j, rc, "schema_version");
	if (rc == SQLITE_DONE) {
		r = exec(j, "INSERT INTO schema_version (version) VALUES (0)");
		if (r < 0)
			return r;
	}
	if (version > SCHEMA_VERSION) {
		log_err("journal: schema version %d is newer than this needlelinkd (%d)", version,
			SCHEMA_VERSION);
		return -EPROTONOSUPPORT;
	}
	for (; version < SCHEMA_VERSION; version++) {
		char bump[96];

		r = exec(j, "BEGIN IMMEDIATE");
		if (r < 0)
			return r;
		snprintf(bump, sizeof(bump), "UPDATE schema_version SET version = %d", version + 1);
		r = exec(j, migrations[version]);
		if (r >= 0)
			r = exec(j, bump);
		if (r >= 0)
			r = exec(j, "COMMIT");
		if (r < 0) {
			(void)exec(j, "ROLLBACK");
			log_err("journal: migration to schema %d failed", version + 1);
			return r;
		}
		log_info("journal: migrated to schema %d", version + 1);
	}
	j->schema = version;
	return 0;
}

static int set_pragmas(struct journal *j)
{
	sqlite3_stmt *st = NULL;
	char mode[16] = "";
	int rc;

	rc = sqlite3_prepare_v2(j->db, "PRAGMA journal_mode = WAL", -1, &st, NULL);
	if (rc != SQLITE_OK)
		return fail_sql(j, rc, "PRAGMA journal_mode");
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		snprintf(mode, sizeof(mode), "%s", (const char *)sqlite3_column_text(st, 0));
	sqlite3_finalize(st);
	if (rc != SQLITE_ROW)
		return fail_sql(j, rc, "PRAGMA journal_mode");
	if (strcmp(mode, "wal") != 0) {
		log_err("journal: cannot switch to WAL mode (got '%s')", mode);
		return -EOPNOTSUPP;
	}
	/* cache_size: 256 KiB of page cache (SQLite's default is 2 MiB); the
	 * hot pages are the B-tree tops of records and outbox, the rest is
	 * appended and read back once (from the OS page cache). */
	return exec(j, "PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;"
		       " PRAGMA cache_size = -1024;");
}

/* A bare start should work: create the journal's directory (one level,
 * like systemd's StateDirectory=) when it is missing. */
static void make_parent(const char *path)
{
	char dir[4096];
	char *slash;

	if (snprintf(dir, sizeof(dir), "%s", path) >= (int)sizeof(dir))
		return;
	slash = strrchr(dir, '/');
	if (!slash || slash == dir)
		return;
	*slash = '\0';
	if (mkdir(dir, 0750) == 0)
		log_notice("journal: created %s", dir);
}

/* Opening work, under synchronous = FULL: a first durable reservation of
 * outbox ids. Then commits stop syncing in SQLite (synchronous = NORMAL)
 * and the syncer thread makes them durable: in WAL mode FULL differs from
 * NORMAL only by a sync of the WAL file after each commit, which is what
 * the syncer does, off the loop. Without a WAL file to sync, FULL stays. */
static int start_syncer(struct journal *j, const char *path)
{
	char wal[4096];
	int64_t reserved = 0;
	int r;

	j->sy.wal_fd = -1;
	j->sy.efd = -1;
	j->sy.req_fd = -1;
	r = step_done(j, ST_BEGIN);
	if (r < 0)
		return r;
	r = reserve_ids(j, &reserved);
	if (r >= 0)
		r = step_done(j, ST_COMMIT);
	if (r < 0) {
		(void)step_done(j, ST_ROLLBACK);
		return r;
	}
	j->reserved_max = j->reserved_durable = reserved;
	if (snprintf(wal, sizeof(wal), "%s-wal", path) >= (int)sizeof(wal))
		return 0;
	j->sy.wal_fd = open(wal, O_RDONLY | O_CLOEXEC);
	if (j->sy.wal_fd < 0) {
		log_warning("journal: cannot open %s (%m): commits stay synchronous", wal);
		return 0;
	}
	j->sy.efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (j->sy.efd < 0)
		return -errno;
	j->sy.req_fd = eventfd(0, EFD_CLOEXEC); /* blocking: the thread waits on it */
	if (j->sy.req_fd < 0)
		return -errno;
	/* Checkpoints move to the syncer's own connection (used by that
	 * thread only): a passive checkpoint runs alongside the loop's
	 * writes. Without it, SQLite's automatic checkpoints stay. */
	if (sqlite3_open_v2(path, &j->sy.ckdb, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX,
			    NULL) != SQLITE_OK) {
		log_warning("journal: no checkpoint connection: %s",
			    j->sy.ckdb ? sqlite3_errmsg(j->sy.ckdb) : "out of memory");
		sqlite3_close(j->sy.ckdb);
		j->sy.ckdb = NULL;
	} else {
		sqlite3_busy_timeout(j->sy.ckdb, BUSY_TIMEOUT_MS);
	}
	r = sd_event_add_io(j->event, &j->sync_src, j->sy.efd, EPOLLIN, on_synced, j);
	if (r < 0)
		return r;
	(void)sd_event_source_set_description(j->sync_src, "journal-synced");
	r = -pthread_create(&j->sy.thread, NULL, syncer_main, j);
	if (r < 0)
		return r;
	j->sy.started = true;
	return exec(j, j->sy.ckdb ? "PRAGMA synchronous = NORMAL; PRAGMA wal_autocheckpoint = 0"
				  : "PRAGMA synchronous = NORMAL");
}

/* Stops the thread, then makes everything committed durable here. */
static void stop_syncer(struct journal *j)
{
	if (j->sy.started) {
		uint64_t one = 1;

		atomic_store_explicit(&j->sy.quit, true, memory_order_release);
		while (write(j->sy.req_fd, &one, sizeof(one)) < 0 && errno == EINTR)
			;
		pthread_join(j->sy.thread, NULL);
		j->sy.started = false;
		j->sync_busy = false;
	}
	if (j->sy.wal_fd >= 0) {
		if (j->durable_gen < j->commit_gen) {
			uint64_t t0 = mono_us();
			int err = fdatasync(j->sy.wal_fd) < 0 ? -errno : 0;

			synced(j, j->commit_gen, err, mono_us() - t0);
		}
		close(j->sy.wal_fd);
		j->sy.wal_fd = -1;
	}
	if (j->sy.ckdb) {
		sqlite3_close(j->sy.ckdb);
		j->sy.ckdb = NULL;
	}
	if (j->sy.efd >= 0) {
		j->sync_src = sd_event_source_disable_unref(j->sync_src);
		close(j->sy.efd);
		j->sy.efd = -1;
	}
	if (j->sy.req_fd >= 0) {
		close(j->sy.req_fd);
		j->sy.req_fd = -1;
	}
}

int journal_open(sd_event *e, const char *path, const struct journal_options *opts,
		 struct journal **ret)
{
	struct journal *j;
	int rc, r;

	if (!e || !path || !ret)
		return -EINVAL;
	j = calloc(1, sizeof(*j));
	if (!j)
		return -ENOMEM;
	j->sy.wal_fd = -1;
	j->sy.efd = -1;
	j->sy.req_fd = -1;
	j->event = sd_event_ref(e);
	j->batch_max = opts && opts->batch_max ? opts->batch_max : DEFAULT_BATCH_MAX;
	j->batch_delay_us = opts && opts->batch_delay_us ? opts->batch_delay_us
							 : DEFAULT_BATCH_DELAY_US;
	j->cur_delay_us = j->batch_delay_us;
	j->busy_grow_us = opts && opts->busy_grow_us ? opts->busy_grow_us : DEFAULT_BUSY_GROW_US;

	make_parent(path);
	rc = sqlite3_open_v2(path, &j->db,
			     SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
	if (rc != SQLITE_OK) {
		log_err("journal: cannot open %s: %s", path,
			j->db ? sqlite3_errmsg(j->db) : sqlite3_errstr(rc));
		r = journal_sqlite_errno(rc);
		goto fail;
	}
	sqlite3_extended_result_codes(j->db, 1);
	sqlite3_busy_timeout(j->db, BUSY_TIMEOUT_MS);
	r = set_pragmas(j);
	if (r < 0)
		goto fail;
	r = migrate(j);
	if (r < 0)
		goto fail;
	for (int s = 0; s < ST_COUNT_STMTS; s++) {
		rc = sqlite3_prepare_v3(j->db, stmt_sql[s], -1, SQLITE_PREPARE_PERSISTENT, &j->st[s],
					NULL);
		if (rc != SQLITE_OK) {
			r = fail_sql(j, rc, stmt_sql[s]);
			goto fail;
		}
	}
	r = reload_next_id(j);
	if (r < 0)
		goto fail;
	r = start_syncer(j, path);
	if (r < 0)
		goto fail;
	r = sd_event_add_time_relative(e, &j->timer, CLOCK_MONOTONIC, j->batch_delay_us, 1,
				       on_timer, j);
	if (r < 0)
		goto fail;
	(void)sd_event_source_set_priority(j->timer, SD_EVENT_PRIORITY_IMPORTANT);
	(void)sd_event_source_set_enabled(j->timer, SD_EVENT_OFF);
	(void)sd_event_source_set_description(j->timer, "journal-batch");
	r = sd_event_add_defer(e, &j->defer, on_defer, j);
	if (r < 0)
		goto fail;
	(void)sd_event_source_set_enabled(j->defer, SD_EVENT_OFF);
	(void)sd_event_source_set_description(j->defer, "journal-done");
	r = sd_event_add_defer(e, &j->idle, on_idle, j);
	if (r < 0)
		goto fail;
	(void)sd_event_source_set_enabled(j->idle, SD_EVENT_OFF);
	(void)sd_event_source_set_priority(j->idle, SD_EVENT_PRIORITY_IDLE);
	(void)sd_event_source_set_description(j->idle, "journal-commit");
	*ret = j;
	return 0;
fail:
	journal_close(j);
	return r;
}

void journal_close(struct journal *j)
{
	if (!j)
		return;
	if (j->db && j->st[ST_COMMIT])
		(void)journal_flush(j);
	stop_syncer(j);
	run_done(j);
	clear_touched(j);
	free(j->touched);
	sd_event_source_disable_unref(j->timer);
	sd_event_source_disable_unref(j->defer);
	sd_event_source_disable_unref(j->idle);
	sd_event_source_disable_unref(j->sync_src);
	for (int s = 0; s < ST_COUNT_STMTS; s++)
		sqlite3_finalize(j->st[s]);
	if (j->db)
		sqlite3_close(j->db);
	sd_event_unref(j->event);
	free(j);
}

/* ---- session context (the daemon's session summaries) -------------------- */

static void session_row(sqlite3_stmt *st, const char *serial, uint32_t store_epoch,
			struct journal_record *ret)
{
	*ret = (struct journal_record){
		.pen_serial = serial,
		.store_epoch = store_epoch,
		.seq = (uint32_t)sqlite3_column_int64(st, 0),
		.type = (uint8_t)sqlite3_column_int(st, 1),
		.session_id = (uint32_t)sqlite3_column_int64(st, 2),
		.pen_time = (uint32_t)sqlite3_column_int64(st, 3),
		.gw_time_ms = sqlite3_column_int64(st, 4),
		.raw = sqlite3_column_blob(st, 5),
		.raw_len = (size_t)sqlite3_column_bytes(st, 5),
	};
}

int journal_session_context(struct journal *j, const char *serial, uint32_t store_epoch,
			    uint32_t session_id, uint32_t end_seq, journal_record_fn fn,
			    void *userdata, struct journal_session_info *ret)
{
	static const char walk_sql[] =
		"SELECT seq, type, session_id, pen_time, gw_time, raw FROM records"
		" WHERE pen_serial = ?1 AND store_epoch = ?2 AND seq <= ?3 ORDER BY seq DESC";
	static const char cart_sql[] =
		"SELECT seq, type, session_id, pen_time, gw_time, raw FROM records"
		" WHERE pen_serial = ?1 AND store_epoch = ?2 AND seq < ?3 AND type = ?4"
		" ORDER BY seq DESC LIMIT 1";
	struct journal_session_info info = { 0 };
	struct journal_record row;
	sqlite3_stmt *st = NULL;
	uint32_t expected = end_seq;
	int rc, r = 0;

	if (!j || !serial || !session_id || !end_seq || !fn || !ret)
		return -EINVAL;
	rc = sqlite3_prepare_v2(j->db, walk_sql, -1, &st, NULL);
	if (rc != SQLITE_OK)
		return fail_sql(j, rc, walk_sql);
	sqlite3_bind_text(st, 1, serial, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, store_epoch);
	sqlite3_bind_int64(st, 3, end_seq);
	/* Down from the end, while the records belong to the session (they
	 * are contiguous in seq): a seq without a record is missing. */
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		session_row(st, serial, store_epoch, &row);
		if (row.seq != expected && !info.missing_max)
			info.missing_max = expected;
		if (row.session_id != session_id)
			break;
		if (row.seq == end_seq)
			info.found_end = row.type == NL_RECORD_SESSION_END;
		info.first_seq = row.seq;
		if (row.type == NL_RECORD_SESSION_START || row.type == NL_RECORD_LIMIT ||
		    (row.seq == end_seq && info.found_end)) {
			r = fn(&row, userdata);
			if (r != 0)
				break;
		}
		if (row.type == NL_RECORD_SESSION_START) {
			info.start_seq = row.seq;
			break;
		}
		expected = row.seq - 1;
	}
	if (r == 0 && rc != SQLITE_ROW && rc != SQLITE_DONE)
		r = fail_sql(j, rc, walk_sql);
	sqlite3_finalize(st);
	if (r != 0)
		return r < 0 ? r : 0;
	if (!info.found_end)
		return -ENOENT;

	rc = sqlite3_prepare_v2(j->db, cart_sql, -1, &st, NULL);
	if (rc != SQLITE_OK)
		return fail_sql(j, rc, cart_sql);
	sqlite3_bind_text(st, 1, serial, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, store_epoch);
	sqlite3_bind_int64(st, 3, end_seq);
	sqlite3_bind_int(st, 4, NL_RECORD_CARTRIDGE);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		session_row(st, serial, store_epoch, &row);
		info.cartridge_seq = row.seq;
		r = fn(&row, userdata);
	} else if (rc != SQLITE_DONE) {
		r = fail_sql(j, rc, cart_sql);
	}
	sqlite3_finalize(st);
	if (r < 0)
		return r;
	*ret = info;
	return 0;
}

int journal_next_session_end(struct journal *j, const char *serial, uint32_t store_epoch,
			     uint32_t after_seq, uint32_t *ret_seq, uint32_t *ret_session_id)
{
	static const char sql[] = "SELECT seq, session_id FROM records"
				  " WHERE pen_serial = ?1 AND store_epoch = ?2 AND seq > ?3"
				  " AND type = ?4 ORDER BY seq LIMIT 1";
	sqlite3_stmt *st;
	int rc, r;

	if (!j || !serial || !ret_seq || !ret_session_id)
		return -EINVAL;
	rc = sqlite3_prepare_v2(j->db, sql, -1, &st, NULL);
	if (rc != SQLITE_OK)
		return fail_sql(j, rc, sql);
	sqlite3_bind_text(st, 1, serial, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, store_epoch);
	sqlite3_bind_int64(st, 3, after_seq);
	sqlite3_bind_int(st, 4, NL_RECORD_SESSION_END);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		*ret_seq = (uint32_t)sqlite3_column_int64(st, 0);
		*ret_session_id = (uint32_t)sqlite3_column_int64(st, 1);
		r = 0;
	} else {
		r = rc == SQLITE_DONE ? -ENOENT : fail_sql(j, rc, sql);
	}
	sqlite3_finalize(st);
	return r;
}
