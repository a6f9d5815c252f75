/* SPDX-License-Identifier: MIT */
#include "journal-limits.h"

#include <errno.h>
#include <inttypes.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "journal.h"
#include "log.h"

static const char schema_sql[] =
	"CREATE TABLE IF NOT EXISTS treatment_sessions("
	"  id INTEGER PRIMARY KEY,"
	"  pen_serial TEXT NOT NULL,"
	"  session_id INTEGER NOT NULL,"
	"  patient TEXT NOT NULL,"
	"  operator_id TEXT NOT NULL,"
	"  operator_role TEXT NOT NULL,"
	"  authorised_ms INTEGER NOT NULL,"
	"  started_ms INTEGER,"
	"  ended_ms INTEGER,"
	"  zones TEXT NOT NULL,"
	"  cartridge_uid TEXT,"
	"  limits_hash TEXT NOT NULL,"
	"  UNIQUE(pen_serial, session_id));"
	"CREATE INDEX IF NOT EXISTS treatment_sessions_patient"
	"  ON treatment_sessions(patient, started_ms);"
	"CREATE INDEX IF NOT EXISTS treatment_sessions_cartridge"
	"  ON treatment_sessions(cartridge_uid) WHERE cartridge_uid IS NOT NULL;"
	"CREATE TABLE IF NOT EXISTS audit("
	"  id INTEGER PRIMARY KEY,"
	"  at_ms INTEGER NOT NULL,"
	"  pen_serial TEXT NOT NULL,"
	"  session_id INTEGER,"
	"  kind TEXT NOT NULL,"
	"  actor_id TEXT, actor_role TEXT, patient TEXT,"
	"  rule TEXT,"
	"  action TEXT,"
	"  result TEXT,"
	"  measured INTEGER, threshold INTEGER, unit TEXT,"
	"  limits_hash TEXT, policy_hash TEXT,"
	"  detail TEXT);"
	"CREATE INDEX IF NOT EXISTS audit_pen ON audit(pen_serial, at_ms);"
	"CREATE TRIGGER IF NOT EXISTS audit_no_update BEFORE UPDATE ON audit"
	"  BEGIN SELECT RAISE(ABORT, 'audit is append-only'); END;"
	"CREATE TRIGGER IF NOT EXISTS audit_no_delete BEFORE DELETE ON audit"
	"  BEGIN SELECT RAISE(ABORT, 'audit is append-only'); END;";

enum jl_stmt {
	JL_ADD_SESSION,
	JL_STARTED,
	JL_ENDED,
	JL_MAX_ID,
	JL_LAST,
	JL_COUNT,
	JL_CARTRIDGE,
	JL_AUDIT,
	JL_STMT_COUNT
};

static const char *const jl_sql[JL_STMT_COUNT] = {
	[JL_ADD_SESSION] =
		"INSERT INTO treatment_sessions (pen_serial, session_id, patient, operator_id,"
		" operator_role, authorised_ms, zones, limits_hash)"
		" VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
	[JL_STARTED] = "UPDATE treatment_sessions SET started_ms = ?3, cartridge_uid = ?4"
		       " WHERE pen_serial = ?1 AND session_id = ?2 AND started_ms IS NULL",
	[JL_ENDED] = "UPDATE treatment_sessions SET ended_ms = ?3"
		     " WHERE pen_serial = ?1 AND session_id = ?2 AND ended_ms IS NULL",
	[JL_MAX_ID] = "SELECT MAX(session_id) FROM treatment_sessions WHERE pen_serial = ?1",
	/* instr(), not LIKE: '_' in a zone name is a LIKE wildcard. */
	[JL_LAST] = "SELECT MAX(started_ms) FROM treatment_sessions"
		    " WHERE patient = ?1 AND started_ms IS NOT NULL"
		    " AND instr(',' || zones || ',', ',' || ?2 || ',') > 0",
	[JL_COUNT] = "SELECT COUNT(*) FROM treatment_sessions"
		     " WHERE patient = ?1 AND started_ms IS NOT NULL AND started_ms >= ?2",
	[JL_CARTRIDGE] = "SELECT COUNT(*), COALESCE(SUM(patient <> ?2), 0) FROM treatment_sessions"
			 " WHERE cartridge_uid = ?1 AND started_ms IS NOT NULL",
	[JL_AUDIT] = "INSERT INTO audit (at_ms, pen_serial, session_id, kind, actor_id,"
		     " actor_role, patient, rule, action, result, measured, threshold, unit,"
		     " limits_hash, policy_hash, detail)"
		     " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)",
};

struct journal_limits {
	struct journal *j;
	sqlite3 *db;
	sqlite3_stmt *st[JL_STMT_COUNT];
};

static int jl_fail(struct journal_limits *jl, int rc, const char *what)
{
	log_err("journal: %s: %s", what, sqlite3_errmsg(jl->db));
	return journal_sqlite_errno(rc);
}

int journal_limits_new(struct journal *j, struct journal_limits **ret)
{
	struct journal_limits *jl;
	char *msg = NULL;
	int rc, r;

	if (!j || !ret)
		return -EINVAL;
	jl = calloc(1, sizeof(*jl));
	if (!jl)
		return -ENOMEM;
	jl->j = j;
	jl->db = journal_db(j);
	/* DDL joins the open batch if there is one, else runs on its own. */
	rc = sqlite3_exec(jl->db, schema_sql, NULL, NULL, &msg);
	if (rc != SQLITE_OK) {
		log_err("journal: limits tables: %s", msg ? msg : sqlite3_errstr(rc));
		sqlite3_free(msg);
		free(jl);
		return journal_sqlite_errno(rc);
	}
	for (int i = 0; i < JL_STMT_COUNT; i++) {
		rc = sqlite3_prepare_v3(jl->db, jl_sql[i], -1, SQLITE_PREPARE_PERSISTENT, &jl->st[i],
					NULL);
		if (rc != SQLITE_OK) {
			r = jl_fail(jl, rc, jl_sql[i]);
			journal_limits_free(jl);
			return r;
		}
	}
	*ret = jl;
	return 0;
}

void journal_limits_free(struct journal_limits *jl)
{
	if (!jl)
		return;
	for (int i = 0; i < JL_STMT_COUNT; i++)
		sqlite3_finalize(jl->st[i]);
	free(jl);
}

static void bind_text(sqlite3_stmt *st, int i, const char *s)
{
	if (s)
		sqlite3_bind_text(st, i, s, -1, SQLITE_TRANSIENT);
	else
		sqlite3_bind_null(st, i);
}

static void bind_hash(sqlite3_stmt *st, int i, bool has, uint32_t h)
{
	char buf[9];

	if (!has) {
		sqlite3_bind_null(st, i);
		return;
	}
	snprintf(buf, sizeof(buf), "%08" PRIx32, h);
	sqlite3_bind_text(st, i, buf, -1, SQLITE_TRANSIENT);
}

/* A write statement (bound) inside the open batch: returns changes() or
 * -errno. */
static int jl_write(struct journal_limits *jl, enum jl_stmt s, int64_t *ret_rowid)
{
	sqlite3_stmt *st = jl->st[s];
	int r, rc;

	r = journal_write_begin(jl->j);
	if (r < 0) {
		sqlite3_reset(st);
		sqlite3_clear_bindings(st);
		return r;
	}
	rc = sqlite3_step(st);
	if (rc == SQLITE_DONE) {
		r = sqlite3_changes(jl->db);
		if (ret_rowid) /* before end_write: a flush writes pens rows */
			*ret_rowid = sqlite3_last_insert_rowid(jl->db);
	}
	else if ((rc & 0xff) == SQLITE_CONSTRAINT)
		r = -EEXIST;
	else
		r = jl_fail(jl, rc, jl_sql[s]);
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	return journal_write_end(jl->j, r);
}

/* A read statement (bound) that returns one row. */
static int jl_row(struct journal_limits *jl, enum jl_stmt s)
{
	int rc = sqlite3_step(jl->st[s]);

	if (rc == SQLITE_ROW)
		return 0;
	if (rc == SQLITE_DONE)
		return -ENOENT;
	return jl_fail(jl, rc, jl_sql[s]);
}

static void jl_done(struct journal_limits *jl, enum jl_stmt s)
{
	sqlite3_reset(jl->st[s]);
	sqlite3_clear_bindings(jl->st[s]);
}

int journal_limits_add_session(struct journal_limits *jl, const struct journal_limits_session *s)
{
	sqlite3_stmt *st = jl->st[JL_ADD_SESSION];
	int r;

	if (!s->pen_serial || !s->patient || !s->operator_id || !s->operator_role || !s->zones)
		return -EINVAL;
	sqlite3_bind_text(st, 1, s->pen_serial, -1, SQLITE_TRANSIENT);
	sqlite3_bind_int64(st, 2, s->session_id);
	sqlite3_bind_text(st, 3, s->patient, -1, SQLITE_TRANSIENT);
	sqlite3_bind_text(st, 4, s->operator_id, -1, SQLITE_TRANSIENT);
	sqlite3_bind_text(st, 5, s->operator_role, -1, SQLITE_TRANSIENT);
	sqlite3_bind_int64(st, 6, s->authorised_ms ? s->authorised_ms : journal_now_ms());
	sqlite3_bind_text(st, 7, s->zones, -1, SQLITE_TRANSIENT);
	bind_hash(st, 8, true, s->limits_hash);
	r = jl_write(jl, JL_ADD_SESSION, NULL);
	return r < 0 ? r : 0;
}

int journal_limits_session_started(struct journal_limits *jl, const char *serial,
				   uint32_t session_id, int64_t started_ms, const char *cartridge_uid)
{
	sqlite3_stmt *st = jl->st[JL_STARTED];
	int r;

	sqlite3_bind_text(st, 1, serial, -1, SQLITE_TRANSIENT);
	sqlite3_bind_int64(st, 2, session_id);
	sqlite3_bind_int64(st, 3, started_ms);
	bind_text(st, 4, cartridge_uid);
	r = jl_write(jl, JL_STARTED, NULL);
	return r < 0 ? r : r > 0;
}

int journal_limits_session_ended(struct journal_limits *jl, const char *serial,
				 uint32_t session_id, int64_t ended_ms)
{
	sqlite3_stmt *st = jl->st[JL_ENDED];
	int r;

	sqlite3_bind_text(st, 1, serial, -1, SQLITE_TRANSIENT);
	sqlite3_bind_int64(st, 2, session_id);
	sqlite3_bind_int64(st, 3, ended_ms);
	r = jl_write(jl, JL_ENDED, NULL);
	return r < 0 ? r : r > 0;
}

int journal_limits_max_session_id(struct journal_limits *jl, const char *serial, uint32_t *ret)
{
	sqlite3_stmt *st = jl->st[JL_MAX_ID];
	int r;

	sqlite3_bind_text(st, 1, serial, -1, SQLITE_TRANSIENT);
	r = jl_row(jl, JL_MAX_ID);
	if (r == 0) {
		int64_t v = sqlite3_column_type(st, 0) == SQLITE_NULL ? 0
								 : sqlite3_column_int64(st, 0);

		*ret = v < 0 || v > UINT32_MAX ? 0 : (uint32_t)v;
	}
	jl_done(jl, JL_MAX_ID);
	return r;
}

int journal_limits_last_session(struct journal_limits *jl, const char *patient, const char *zone,
				int64_t *ret_ms)
{
	sqlite3_stmt *st = jl->st[JL_LAST];
	int r;

	sqlite3_bind_text(st, 1, patient, -1, SQLITE_TRANSIENT);
	sqlite3_bind_text(st, 2, zone, -1, SQLITE_TRANSIENT);
	r = jl_row(jl, JL_LAST);
	if (r == 0) {
		if (sqlite3_column_type(st, 0) == SQLITE_NULL)
			r = -ENOENT;
		else
			*ret_ms = sqlite3_column_int64(st, 0);
	}
	jl_done(jl, JL_LAST);
	return r;
}

int journal_limits_count_sessions(struct journal_limits *jl, const char *patient,
				  int64_t since_ms, unsigned *ret_n)
{
	sqlite3_stmt *st = jl->st[JL_COUNT];
	int r;

	sqlite3_bind_text(st, 1, patient, -1, SQLITE_TRANSIENT);
	sqlite3_bind_int64(st, 2, since_ms);
	r = jl_row(jl, JL_COUNT);
	if (r == 0)
		*ret_n = (unsigned)sqlite3_column_int64(st, 0);
	jl_done(jl, JL_COUNT);
	return r;
}

int journal_limits_cartridge_uses(struct journal_limits *jl, const char *uid_hex,
				  const char *patient, unsigned *ret_n, bool *ret_other_patient)
{
	sqlite3_stmt *st = jl->st[JL_CARTRIDGE];
	int r;

	sqlite3_bind_text(st, 1, uid_hex, -1, SQLITE_TRANSIENT);
	sqlite3_bind_text(st, 2, patient ? patient : "", -1, SQLITE_TRANSIENT);
	r = jl_row(jl, JL_CARTRIDGE);
	if (r == 0) {
		*ret_n = (unsigned)sqlite3_column_int64(st, 0);
		*ret_other_patient = sqlite3_column_int64(st, 1) > 0;
	}
	jl_done(jl, JL_CARTRIDGE);
	return r;
}

int journal_limits_audit(struct journal_limits *jl, const struct journal_audit *a,
			 int64_t *ret_id)
{
	sqlite3_stmt *st = jl->st[JL_AUDIT];
	int r;

	if (!a->pen_serial || !a->kind)
		return -EINVAL;
	sqlite3_bind_int64(st, 1, a->at_ms ? a->at_ms : journal_now_ms());
	sqlite3_bind_text(st, 2, a->pen_serial, -1, SQLITE_TRANSIENT);
	if (a->session_id)
		sqlite3_bind_int64(st, 3, a->session_id);
	else
		sqlite3_bind_null(st, 3);
	sqlite3_bind_text(st, 4, a->kind, -1, SQLITE_TRANSIENT);
	bind_text(st, 5, a->actor_id);
	bind_text(st, 6, a->actor_role);
	bind_text(st, 7, a->patient);
	bind_text(st, 8, a->rule);
	bind_text(st, 9, a->action);
	bind_text(st, 10, a->result);
	if (a->has_values) {
		sqlite3_bind_int64(st, 11, a->measured);
		sqlite3_bind_int64(st, 12, a->threshold);
	} else {
		sqlite3_bind_null(st, 11);
		sqlite3_bind_null(st, 12);
	}
	bind_text(st, 13, a->unit);
	bind_hash(st, 14, a->has_limits_hash, a->limits_hash);
	bind_hash(st, 15, a->has_policy_hash, a->policy_hash);
	bind_text(st, 16, a->detail);
	r = jl_write(jl, JL_AUDIT, ret_id);
	return r < 0 ? r : 0;
}
