/* SPDX-License-Identifier: MIT */
/*
 * The journal: needlelinkd's durable store, one SQLite database in WAL mode,
 * used through SQLite from the loop thread only (plus a checkpoint-only
 * connection of the syncer thread, below).
 *
 * What it holds: pens, sessions, every treatment record a pen sent (raw
 * bytes and decoded JSON, unique per pen, store epoch and sequence number),
 * and the MQTT outbox (one row per message to publish; its INTEGER PRIMARY
 * KEY AUTOINCREMENT id is the message's stable id, never reused).
 *
 * Writes are batched (group commit). The first write opens a transaction; it
 * commits as soon as the loop has nothing else ready to dispatch (an idle
 * priority event source: whatever arrived meanwhile, e.g. during the previous
 * commit's sync, joins the batch), when batch_max writes are pending, or
 * a delay after that first write if the loop never goes idle (batch_delay_us,
 * growing while the loop stays busy, see journal_options),
 * whichever comes first (or on journal_flush()). journal_commit() registers a
 * callback that runs, from the loop, once everything written before the call
 * is durable (result 0) or once its transaction failed (result -errno,
 * nothing of the batch kept). Callbacks run in registration order and never
 * from inside a journal_*() call. The data path acknowledges records to a
 * pen only from such a callback.
 *
 * Durability off the loop: in WAL mode synchronous=FULL differs from NORMAL
 * only by an fsync of the WAL file after each commit (NORMAL may lose the
 * last commits on power loss, and a pen discards what it was acknowledged).
 * The loop's connection runs with NORMAL, so COMMIT only writes; a syncer
 * thread then calls fdatasync() on the WAL file (no SQLite call) and the
 * loop runs the callbacks of every commit made before that sync started.
 * One sync at a time; commits made meanwhile share the next one. The same
 * thread runs passive WAL checkpoints on its own connection (the loop's
 * never checkpoints until it closes). If the WAL file cannot be opened,
 * commits stay synchronous (FULL). A failed WAL sync fails every waiting
 * callback and every later write (-EIO or the sync's error): the process
 * should be restarted.
 *
 * Outbox ids: a row may be published once its transaction is committed
 * (not yet durable), or even from the open batch (journal_set_add_hook()).
 * So that a crash can never hand a published id to another message, ids are
 * reserved ahead durably (in sqlite_sequence, a million at a time, renewed
 * at half), only ids below the durable reservation are published, and a
 * restart continues after the reservation: ids have gaps.
 *
 * Readers see committed data only where it matters: journal_last_seq()
 * commits the open batch first, and journal_outbox_unsent() skips rows not
 * yet committed.
 */
#ifndef NLGW_JOURNAL_H
#define NLGW_JOURNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <systemd/sd-event.h>

struct journal;

struct journal_options {
	unsigned batch_max;      /* writes per transaction, 0: 1000 */
	uint64_t batch_delay_us; /* commit delay after a batch's first write, 0: 250; once
				  * the loop has stayed busy through batches for
				  * busy_grow_us, doubles (up to 4 times) after each such
				  * batch, back to this once the loop goes idle */
	uint64_t busy_grow_us;   /* 0: 10000 (a burst of live records keeps the short delay) */
};

/* Opens (creating if needed) and migrates the database at path; a missing
 * directory is created (one level, mode 0750). opts may be NULL. Returns 0, -EPROTONOSUPPORT for a
 * journal written by a newer schema, or another -errno. */
int journal_open(sd_event *e, const char *path, const struct journal_options *opts,
		 struct journal **ret);

/* Commits the open batch, runs every pending callback (from inside this
 * call, with the result), then closes. Accepts NULL. */
void journal_close(struct journal *j);

/* Schema version of the open database. */
int journal_schema_version(struct journal *j);

struct journal_record {
	const char *pen_serial;
	uint32_t store_epoch;
	uint32_t seq;
	uint8_t type;        /* enum nl_record_type */
	uint32_t session_id; /* 0: outside any session */
	uint32_t pen_time;
	int64_t gw_time_ms;  /* Unix ms; 0: now */
	const void *raw;     /* the record bytes as received (CRC included) */
	size_t raw_len;
	const char *decoded; /* JSON text, may be NULL */
};

enum journal_add_result {
	JOURNAL_DUPLICATE = 0, /* same key and same bytes already stored: ignored */
	JOURNAL_ADDED = 1,
	JOURNAL_CONFLICT = 2,  /* same key, different bytes: ignored, first kept */
};

/* Adds a record to the open batch. Idempotent on (pen, epoch, seq). Returns
 * an enum journal_add_result or -errno. Also raises the pen's
 * last_committed_seq when the batch commits. */
int journal_add_record(struct journal *j, const struct journal_record *r);

/* Creates or updates a pen row (in the open batch). model and firmware may
 * be NULL (left unchanged). */
int journal_pen_seen(struct journal *j, const char *serial, const char *model,
		     const char *firmware, uint32_t store_epoch, int64_t when_ms);

/* Id the next journal_add_outbox() will get, so a producer can put it in the
 * payload. Valid until the next write or commit. */
int64_t journal_outbox_next_id(struct journal *j);

/* Adds an outbox row in the open batch. qos 0 or 1. Returns 0 and the id. */
int journal_add_outbox(struct journal *j, const char *topic, const void *payload, size_t len,
		       int qos, bool retain, int64_t *ret_id);

/* Writes made between journal_hold() and journal_release() land in one
 * batch: reaching the batch size does not commit in between (a record and
 * its outbox message are durable together or not at all). Holds nest;
 * the last release commits if the batch is full and returns that result. */
void journal_hold(struct journal *j);
int journal_release(struct journal *j);

/* The outbox message (QoS 1, not retained) for the record added last by
 * journal_add_record() in this batch, whose decoded text (the same string
 * as decoded here, given for the publish-before-commit hook) is its payload:
 * the journal stores that text once, in records. -ENOENT when the last call
 * to journal_add_record() added no record or had no decoded text. */
int journal_add_outbox_record(struct journal *j, const char *topic, const char *decoded,
			      int64_t *ret_id);

typedef void (*journal_commit_cb)(int result, void *userdata);

/* cb(result, userdata) once all writes made so far are committed (or their
 * batch failed). Returns 0 or -ENOMEM. */
int journal_commit(struct journal *j, journal_commit_cb cb, void *userdata);

/* Called right after each commit that made new outbox rows visible, from
 * inside whichever journal call or timer committed. It must not call into
 * the journal: it is meant to schedule work (mqtt_new() installs one that
 * wakes the outbox drain). One hook per journal; NULL removes it. */
typedef void (*journal_outbox_hook)(void *userdata);
void journal_set_outbox_hook(struct journal *j, journal_outbox_hook fn, void *userdata);

/* Called for each row journal_outbox_unsent() handed to its fn, after fn
 * returned 0 (the outbox drain took the row: for the MQTT drain, published
 * or already in flight). For measurements (needlelinkd --stats); it must not
 * call into the journal. NULL removes it. */
typedef void (*journal_visit_hook)(int64_t id, void *userdata);
void journal_set_visit_hook(struct journal *j, journal_visit_hook fn, void *userdata);

struct journal_outbox_row;

/* Called from inside journal_add_outbox() with the row just added to the
 * open batch, when its id is durably reserved (see journal_outbox_unsent()).
 * Return 0 if the row was taken (for the MQTT drain: published before its
 * commit, see mqtt.h), > 0 if not; the visit hook then runs for a taken row.
 * It must not call into the journal. One hook per journal; NULL removes it. */
typedef int (*journal_add_hook)(const struct journal_outbox_row *row, void *userdata);
void journal_set_add_hook(struct journal *j, journal_add_hook fn, void *userdata);

/* Highest outbox id journal_outbox_unsent() can visit now: committed, and
 * durably reserved. */
int64_t journal_outbox_visible_max(struct journal *j);

struct journal_stats {
	uint64_t commits;       /* transactions committed or failed */
	uint64_t writes;        /* writes in them */
	uint64_t commit_us;     /* time spent committing (loop blocked), sum */
	uint64_t commit_us_max; /* and longest */
	uint64_t syncs;         /* WAL syncs (off the loop) */
	uint64_t sync_us;       /* time in them, sum */
	uint64_t sync_us_max;   /* and longest */
	uint64_t checkpoints;   /* WAL checkpoints (off the loop) */
	uint64_t checkpoint_us; /* time in them, sum */
	uint64_t by_timer;      /* batches committed by the delay timer */
	uint64_t by_idle;       /* by the loop going idle */
};

void journal_get_stats(struct journal *j, struct journal_stats *ret);

/* Commits the open batch now; callbacks still run from the loop. Returns 0
 * (also when nothing was open) or the commit's -errno. */
int journal_flush(struct journal *j);

/* Writes waiting in the open batch. */
unsigned journal_pending(struct journal *j);

/* How long the sync now under way (fdatasync of the WAL, on the syncer
 * thread) has been running, in microseconds; 0 when none is. While it runs,
 * what was committed since the last sync is not durable: no commit callback
 * runs, so no pen is acknowledged. */
uint64_t journal_sync_wait_us(struct journal *j);

/* An SQLite result code as a -errno (0 for OK, ROW and DONE), for code that
 * uses the journal's database directly (journal_db()). */
int journal_sqlite_errno(int rc);

/* Seq ranges [ret_a[i], ret_b[i]] missing between the journaled records of
 * (serial, store_epoch) after after_seq (itself taken as present), oldest
 * first, at most max. Returns how many, or -errno. */
int journal_missing(struct journal *j, const char *serial, uint32_t store_epoch,
		    uint32_t after_seq, uint32_t *ret_a, uint32_t *ret_b, size_t max);

/* Highest committed seq for (pen, epoch): 0 and *ret_seq, or -ENOENT. */
int journal_last_seq(struct journal *j, const char *serial, uint32_t store_epoch,
		     uint32_t *ret_seq);

struct journal_outbox_row {
	int64_t id;
	const char *topic;
	const void *payload;
	size_t payload_len;
	int qos;
	bool retain;
	int64_t created_ms;
};

/* Pointers in row are valid during the call only. Return 0 to go on, > 0 to
 * stop, < 0 to stop and make journal_outbox_unsent() return that. */
typedef int (*journal_outbox_fn)(const struct journal_outbox_row *row, void *userdata);

/* Visits committed, unsent outbox rows with id > after_id in id order, at
 * most limit of them. Returns the number visited or -errno. */
int journal_outbox_unsent(struct journal *j, int64_t after_id, unsigned limit,
			  journal_outbox_fn fn, void *userdata);

/* Marks a row sent (in the open batch). Returns 1 if it was unsent, 0 if
 * already sent or unknown. */
int journal_outbox_mark_sent(struct journal *j, int64_t id, int64_t sent_ms);

/* Deletes rows sent before sent_before_ms (in the open batch). Returns the
 * number deleted. */
int journal_outbox_prune(struct journal *j, int64_t sent_before_ms);

/* Committed and pending unsent rows, and all rows. */
int journal_outbox_count(struct journal *j, uint64_t *ret_unsent, uint64_t *ret_total);

/* For the journal's extension modules (journal-limits.c), loop thread only:
 * the connection, and the bracket around each of their writes so that the
 * write joins the open batch (journal_write_begin() opens one if needed;
 * journal_write_end(j, r) counts the write when r >= 0, and on r < 0 notices
 * a batch SQLite rolled back; it returns r, or a flush error). Reads need no
 * bracket: they see the open batch too. */
struct sqlite3 *journal_db(struct journal *j);
int journal_write_begin(struct journal *j);
int journal_write_end(struct journal *j, int r);

/* Unix time in ms (CLOCK_REALTIME). */
int64_t journal_now_ms(void);

/* ---- a session's context, for the daemon's session summaries -------------- */

/* Called with a journaled record; pen_serial and raw are valid during the
 * call only, decoded is NULL. Return 0 to go on, > 0 to stop, < 0 to stop
 * and fail with that. */
typedef int (*journal_record_fn)(const struct journal_record *r, void *userdata);

struct journal_session_info {
	bool found_end;         /* the SESSION_END at end_seq is journaled */
	uint32_t start_seq;     /* its SESSION_START, 0: not journaled */
	uint32_t first_seq;     /* lowest seq of the session the walk reached */
	uint32_t missing_max;   /* highest seq of the session's span with no record, 0: none */
	uint32_t cartridge_seq; /* the CARTRIDGE record visited, 0: none */
};

/* The context of the session session_id of (serial, store_epoch) that ended
 * with the SESSION_END record at end_seq, read from the records journaled so
 * far (the open batch included), whatever order they arrived in. Walks down
 * from end_seq while the records carry session_id, and visits the
 * SESSION_END, its LIMIT records and its SESSION_START (newest first; the
 * walk stops at the start),
 * then the newest CARTRIDGE record below end_seq (any session), if any.
 * missing_max is the highest seq with no record between end_seq and the
 * walk's end: the SESSION_START, or a record outside the session, or the
 * oldest record journaled for the epoch (seqs below it are not counted).
 * Returns 0 and *ret (left unchanged when fn stopped the walk), -ENOENT
 * when no SESSION_END of the session is at end_seq, or -errno (also fn's). */
int journal_session_context(struct journal *j, const char *serial, uint32_t store_epoch,
			    uint32_t session_id, uint32_t end_seq, journal_record_fn fn,
			    void *userdata, struct journal_session_info *ret);

/* The first SESSION_END record of (serial, store_epoch) above after_seq:
 * 0 and its seq and session id, or -ENOENT. */
int journal_next_session_end(struct journal *j, const char *serial, uint32_t store_epoch,
			     uint32_t after_seq, uint32_t *ret_seq, uint32_t *ret_session_id);

#endif
