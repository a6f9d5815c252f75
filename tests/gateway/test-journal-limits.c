/* SPDX-License-Identifier: MIT */
/* journal-limits: the treatment_sessions and audit tables. The audit trail
 * is append-only (UPDATE and DELETE refused by triggers, also from another
 * connection); history queries over months of seeded sessions; cartridge
 * reuse across pens and patients; session ids per pen; durability. */
#include <errno.h>
#include <sqlite3.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "journal-limits.h"
#include "journal.h"

static char dir[] = "/tmp/nlgw-jlimits-XXXXXX";
static sd_event *loop;

#define DAY_MS (86400LL * 1000)
/* 2026-01-01T09:00:00Z */
#define T0 1767258000000LL

static char *db_path(const char *name)
{
	static char p[512];

	snprintf(p, sizeof(p), "%s/%s", dir, name);
	return p;
}

struct commit_wait {
	bool done;
	int result;
};

static void on_commit(int result, void *userdata)
{
	struct commit_wait *w = userdata;

	w->result = result;
	w->done = true;
}

static void wait_commit(struct journal *j)
{
	struct commit_wait w = { 0 };

	CHECK_INT(journal_commit(j, on_commit, &w), 0);
	run_until(loop, &w.done, 30, "journal commit");
	CHECK_INT(w.result, 0);
}

/* A session authorised and started on day `day` (from T0). */
static void seed(struct journal_limits *jl, const char *pen, uint32_t sid, const char *patient,
		 const char *zones, int day, const char *cartridge, bool started)
{
	int64_t at = T0 + (int64_t)day * DAY_MS;

	CHECK_INT(journal_limits_add_session(jl,
					     &(struct journal_limits_session){
						     .pen_serial = pen,
						     .session_id = sid,
						     .patient = patient,
						     .operator_id = "op-1",
						     .operator_role = "physician",
						     .authorised_ms = at - 60000,
						     .zones = zones,
						     .limits_hash = 0xdd41db7f,
					     }),
		  0);
	if (started)
		CHECK_INT(journal_limits_session_started(jl, pen, sid, at, cartridge), 1);
}

static int exec_rc(sqlite3 *db, const char *sql)
{
	return sqlite3_exec(db, sql, NULL, NULL, NULL);
}

static void test_append_only(void)
{
	struct journal *j;
	struct journal_limits *jl;
	sqlite3 *other;
	sqlite3_stmt *st;
	int64_t id1 = 0, id2 = 0;

	CHECK_INT(journal_open(loop, db_path("audit.db"), NULL, &j), 0);
	CHECK_INT(journal_limits_new(j, &jl), 0);
	CHECK_INT(journal_limits_audit(jl,
				       &(struct journal_audit){
					       .at_ms = T0,
					       .pen_serial = "NL-0001",
					       .session_id = 4,
					       .kind = "enforcement",
					       .rule = "NL-R02",
					       .action = "clamp",
					       .result = "pending",
					       .has_values = true,
					       .measured = 2000,
					       .threshold = 1500,
					       .unit = "um",
					       .has_limits_hash = true,
					       .limits_hash = 0xdd41db7f,
					       .has_policy_hash = true,
					       .policy_hash = 0x0000abcd,
					       .detail = "{\"zone\":\"cheeks\"}",
				       },
				       &id1),
		  0);
	CHECK_INT(journal_limits_audit(jl,
				       &(struct journal_audit){ .pen_serial = "NL-0001",
								.kind = "authorise_request",
								.actor_id = "op-1",
								.actor_role = "nurse",
								.patient = "p-1" },
				       &id2),
		  0);
	CHECK(id2 > id1 && id1 > 0);
	CHECK_INT(journal_limits_audit(jl, &(struct journal_audit){ .kind = "x" }, NULL), -EINVAL);
	wait_commit(j);

	/* Stored as documented: hashes as 8 lower-case hex digits, NULLs. */
	CHECK_INT(sqlite3_prepare_v2(journal_db(j),
				     "SELECT session_id, kind, rule, measured, threshold, unit,"
				     " limits_hash, policy_hash, detail FROM audit WHERE id = ?1",
				     -1, &st, NULL),
		  SQLITE_OK);
	sqlite3_bind_int64(st, 1, id1);
	CHECK_INT(sqlite3_step(st), SQLITE_ROW);
	CHECK_INT(sqlite3_column_int64(st, 0), 4);
	CHECK_STR((const char *)sqlite3_column_text(st, 1), "enforcement");
	CHECK_STR((const char *)sqlite3_column_text(st, 2), "NL-R02");
	CHECK_INT(sqlite3_column_int64(st, 3), 2000);
	CHECK_INT(sqlite3_column_int64(st, 4), 1500);
	CHECK_STR((const char *)sqlite3_column_text(st, 5), "um");
	CHECK_STR((const char *)sqlite3_column_text(st, 6), "dd41db7f");
	CHECK_STR((const char *)sqlite3_column_text(st, 7), "0000abcd");
	CHECK_STR((const char *)sqlite3_column_text(st, 8), "{\"zone\":\"cheeks\"}");
	sqlite3_reset(st);
	sqlite3_bind_int64(st, 1, id2);
	CHECK_INT(sqlite3_step(st), SQLITE_ROW);
	CHECK_INT(sqlite3_column_type(st, 0), SQLITE_NULL);
	CHECK_INT(sqlite3_column_type(st, 3), SQLITE_NULL);
	CHECK_INT(sqlite3_column_type(st, 6), SQLITE_NULL);
	sqlite3_finalize(st);

	/* The daemon's own connection cannot change or delete a row... */
	CHECK_INT(exec_rc(journal_db(j), "UPDATE audit SET result = 'applied'") & 0xff,
		  SQLITE_CONSTRAINT);
	CHECK_INT(exec_rc(journal_db(j), "DELETE FROM audit") & 0xff, SQLITE_CONSTRAINT);
	/* ...and neither can another process (sqlite3 CLI, needlelinkctl). */
	CHECK_INT(sqlite3_open(db_path("audit.db"), &other), SQLITE_OK);
	sqlite3_busy_timeout(other, 5000);
	CHECK_INT(exec_rc(other, "UPDATE audit SET kind = 'x' WHERE id = 1") & 0xff,
		  SQLITE_CONSTRAINT);
	CHECK_INT(exec_rc(other, "DELETE FROM audit WHERE id = 1") & 0xff, SQLITE_CONSTRAINT);
	CHECK(strstr(sqlite3_errmsg(other), "append-only") != NULL);
	CHECK_INT(sqlite3_prepare_v2(other, "SELECT COUNT(*) FROM audit", -1, &st, NULL),
		  SQLITE_OK);
	CHECK_INT(sqlite3_step(st), SQLITE_ROW);
	CHECK_INT(sqlite3_column_int64(st, 0), 2);
	sqlite3_finalize(st);
	sqlite3_close(other);
	/* Appending still works after the refusals. */
	CHECK_INT(journal_limits_audit(jl,
				       &(struct journal_audit){ .pen_serial = "NL-0001",
								.kind = "unlock" },
				       NULL),
		  0);
	wait_commit(j);
	journal_limits_free(jl);
	journal_close(j);

	/* Reopen: tables and triggers are there (created once, kept). */
	CHECK_INT(journal_open(loop, db_path("audit.db"), NULL, &j), 0);
	CHECK_INT(journal_limits_new(j, &jl), 0);
	CHECK_INT(exec_rc(journal_db(j), "DELETE FROM audit WHERE id = 2") & 0xff,
		  SQLITE_CONSTRAINT);
	CHECK_INT(sqlite3_prepare_v2(journal_db(j), "SELECT COUNT(*) FROM audit", -1, &st, NULL),
		  SQLITE_OK);
	CHECK_INT(sqlite3_step(st), SQLITE_ROW);
	CHECK_INT(sqlite3_column_int64(st, 0), 3);
	sqlite3_finalize(st);
	journal_limits_free(jl);
	journal_close(j);
}

static void test_history(void)
{
	struct journal *j;
	struct journal_limits *jl;
	int64_t ms = 0;
	unsigned n = 0;
	uint32_t sid = 0;

	CHECK_INT(journal_open(loop, db_path("history.db"), NULL, &j), 0);
	CHECK_INT(journal_limits_new(j, &jl), 0);
	CHECK_INT(journal_limits_max_session_id(jl, "NL-0001", &sid), 0);
	CHECK_INT(sid, 0);

	/* Patient p-1: a course over eight months, every 30 days, zones alternating. */
	for (int i = 0; i < 8; i++)
		seed(jl, "NL-0001", (uint32_t)i + 1, "p-1",
		     i % 2 ? "forehead,cheeks" : "cheeks,chin", i * 30, NULL, true);
	/* Authorised but never started: not history. */
	seed(jl, "NL-0001", 9, "p-1", "periorbital,cheeks", 250, NULL, false);
	/* Another patient, another pen, later. */
	seed(jl, "NL-0002", 1, "p-2", "cheeks", 260, NULL, true);
	/* A zone name that contains another's text: exact match only. */
	seed(jl, "NL-0002", 2, "p-3", "upper_lip", 10, NULL, true);
	wait_commit(j);

	CHECK_INT(journal_limits_max_session_id(jl, "NL-0001", &sid), 0);
	CHECK_INT(sid, 9);
	CHECK_INT(journal_limits_max_session_id(jl, "NL-0002", &sid), 0);
	CHECK_INT(sid, 2);
	/* Duplicate (pen, session_id) refused. */
	CHECK_INT(journal_limits_add_session(jl,
					     &(struct journal_limits_session){
						     .pen_serial = "NL-0001",
						     .session_id = 3,
						     .patient = "p-9",
						     .operator_id = "op",
						     .operator_role = "nurse",
						     .zones = "chin",
					     }),
		  -EEXIST);

	/* last_session: latest started session containing the zone. */
	CHECK_INT(journal_limits_last_session(jl, "p-1", "cheeks", &ms), 0);
	CHECK_INT(ms, T0 + 210 * DAY_MS); /* session 8, day 210 (periorbital on day 250 never started) */
	CHECK_INT(journal_limits_last_session(jl, "p-1", "chin", &ms), 0);
	CHECK_INT(ms, T0 + 180 * DAY_MS); /* sessions 1,3,5,7: days 0,60,120,180 */
	CHECK_INT(journal_limits_last_session(jl, "p-1", "forehead", &ms), 0);
	CHECK_INT(ms, T0 + 210 * DAY_MS);
	CHECK_INT(journal_limits_last_session(jl, "p-1", "periorbital", &ms), -ENOENT);
	CHECK_INT(journal_limits_last_session(jl, "p-2", "forehead", &ms), -ENOENT);
	CHECK_INT(journal_limits_last_session(jl, "p-3", "upper_lip", &ms), 0);
	CHECK_INT(journal_limits_last_session(jl, "p-3", "lip", &ms), -ENOENT);
	CHECK_INT(journal_limits_last_session(jl, "p-3", "upper", &ms), -ENOENT);
	CHECK_INT(journal_limits_last_session(jl, "p-3", "upper_li", &ms), -ENOENT);

	/* count_sessions: started sessions at or after since. */
	CHECK_INT(journal_limits_count_sessions(jl, "p-1", T0, &n), 0);
	CHECK_INT(n, 8);
	CHECK_INT(journal_limits_count_sessions(jl, "p-1", T0 + 90 * DAY_MS, &n), 0);
	CHECK_INT(n, 5); /* days 90..210 */
	CHECK_INT(journal_limits_count_sessions(jl, "p-1", T0 + 90 * DAY_MS + 1, &n), 0);
	CHECK_INT(n, 4);
	CHECK_INT(journal_limits_count_sessions(jl, "p-1", T0 + 365 * DAY_MS, &n), 0);
	CHECK_INT(n, 0);
	CHECK_INT(journal_limits_count_sessions(jl, "nobody", 0, &n), 0);
	CHECK_INT(n, 0);

	/* Start and end: the first start counts, an end is set once. */
	CHECK_INT(journal_limits_session_started(jl, "NL-0001", 9, T0 + 251 * DAY_MS, NULL), 1);
	CHECK_INT(journal_limits_session_started(jl, "NL-0001", 9, T0 + 999 * DAY_MS, NULL), 0);
	CHECK_INT(journal_limits_session_started(jl, "NL-0001", 77, T0, NULL), 0);
	CHECK_INT(journal_limits_last_session(jl, "p-1", "periorbital", &ms), 0);
	CHECK_INT(ms, T0 + 251 * DAY_MS);
	CHECK_INT(journal_limits_session_ended(jl, "NL-0001", 9, T0 + 251 * DAY_MS + 1800000), 1);
	CHECK_INT(journal_limits_session_ended(jl, "NL-0001", 9, T0 + 252 * DAY_MS), 0);
	CHECK_INT(journal_limits_session_ended(jl, "NL-0009", 9, T0), 0);
	wait_commit(j);
	journal_limits_free(jl);
	journal_close(j);

	/* Durable: the same answers after a reopen. */
	CHECK_INT(journal_open(loop, db_path("history.db"), NULL, &j), 0);
	CHECK_INT(journal_limits_new(j, &jl), 0);
	CHECK_INT(journal_limits_count_sessions(jl, "p-1", T0, &n), 0);
	CHECK_INT(n, 9);
	CHECK_INT(journal_limits_max_session_id(jl, "NL-0001", &sid), 0);
	CHECK_INT(sid, 9);
	journal_limits_free(jl);
	journal_close(j);
}

static void test_cartridges(void)
{
	struct journal *j;
	struct journal_limits *jl;
	unsigned n = 0;
	bool other = true;

	CHECK_INT(journal_open(loop, db_path("cart.db"), NULL, &j), 0);
	CHECK_INT(journal_limits_new(j, &jl), 0);
	CHECK_INT(journal_limits_cartridge_uses(jl, "a5dc0e01d93b0dfd", "p-1", &n, &other), 0);
	CHECK_INT(n, 0);
	CHECK(!other);
	/* Used once by p-1 on pen A. */
	seed(jl, "PEN-A", 1, "p-1", "cheeks", 0, "a5dc0e01d93b0dfd", true);
	CHECK_INT(journal_limits_cartridge_uses(jl, "a5dc0e01d93b0dfd", "p-1", &n, &other), 0);
	CHECK_INT(n, 1);
	CHECK(!other);
	/* The same patient's view and another patient's view. */
	CHECK_INT(journal_limits_cartridge_uses(jl, "a5dc0e01d93b0dfd", "p-2", &n, &other), 0);
	CHECK_INT(n, 1);
	CHECK(other);
	/* Reused on pen B by p-2: both patients now see another's use. */
	seed(jl, "PEN-B", 1, "p-2", "chin", 1, "a5dc0e01d93b0dfd", true);
	CHECK_INT(journal_limits_cartridge_uses(jl, "a5dc0e01d93b0dfd", "p-1", &n, &other), 0);
	CHECK_INT(n, 2);
	CHECK(other);
	/* A session authorised with the cartridge but never started does not count. */
	seed(jl, "PEN-C", 1, "p-3", "chin", 2, NULL, false);
	CHECK_INT(journal_limits_session_started(jl, "PEN-C", 5, T0, "0011223344556677"), 0);
	CHECK_INT(journal_limits_cartridge_uses(jl, "0011223344556677", "p-3", &n, &other), 0);
	CHECK_INT(n, 0);
	/* Another uid, and sessions without a cartridge. */
	seed(jl, "PEN-A", 2, "p-1", "cheeks", 40, "ffeeddccbbaa9988", true);
	seed(jl, "PEN-A", 3, "p-1", "cheeks", 80, NULL, true);
	CHECK_INT(journal_limits_cartridge_uses(jl, "ffeeddccbbaa9988", "p-1", &n, &other), 0);
	CHECK_INT(n, 1);
	CHECK(!other);
	CHECK_INT(journal_limits_cartridge_uses(jl, "a5dc0e01d93b0dfd", "p-9", &n, &other), 0);
	CHECK_INT(n, 2);
	CHECK(other);
	wait_commit(j);
	journal_limits_free(jl);
	journal_close(j);
}

int main(void)
{
	CHECK(mkdtemp(dir) != NULL);
	CHECK_INT(sd_event_new(&loop), 0);
	test_append_only();
	test_history();
	test_cartridges();
	sd_event_unref(loop);
	{
		char cmd[600];

		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
		CHECK_INT(system(cmd), 0);
	}
	printf("journal-limits: ok\n");
	return 0;
}
