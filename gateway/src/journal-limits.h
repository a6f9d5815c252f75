/* SPDX-License-Identifier: MIT */
/*
 * The journal's treatment-limits tables (docs/limits.md, "The daemon"):
 *
 *   treatment_sessions  one row per session the gateway authorised on a pen
 *                       (started_ms / cartridge_uid / ended_ms filled in from
 *                       the pen's SESSION_START and SESSION_END records)
 *   audit               the append-only audit trail: every authorise request
 *                       and its outcome, every enforcement and its result,
 *                       every unlock and override. BEFORE UPDATE / BEFORE
 *                       DELETE triggers refuse any change to a row.
 *
 * Writes join the journal's open batch (they are durable once a
 * journal_commit() callback registered after them runs); reads see the open
 * batch too. Loop thread only, like the journal. The history queries are
 * those of struct limits_history_ops, in journal units (Unix ms).
 */
#ifndef NLGW_JOURNAL_LIMITS_H
#define NLGW_JOURNAL_LIMITS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct journal;
struct journal_limits;

/* Creates the tables, indexes and triggers if needed (idempotent) and
 * prepares the statements. j must outlive the handle. */
int journal_limits_new(struct journal *j, struct journal_limits **ret);
void journal_limits_free(struct journal_limits *jl);

struct journal_limits_session {
	const char *pen_serial;
	uint32_t session_id;
	const char *patient;       /* pseudonym */
	const char *operator_id;
	const char *operator_role; /* physician|nurse|aesthetician|technician */
	int64_t authorised_ms;
	const char *zones;         /* "forehead,cheeks" (MQTT zone names) */
	uint32_t limits_hash;
};

/* A session authorised on the pen. -EEXIST when (pen, session_id) exists. */
int journal_limits_add_session(struct journal_limits *jl, const struct journal_limits_session *s);
/* The pen's SESSION_START for it: started_ms and the cartridge uid (lower
 * case hex, NULL: none). Returns 1 when a row was updated, 0 when the
 * gateway never authorised that session, or -errno. A session that already
 * started keeps its first start. */
int journal_limits_session_started(struct journal_limits *jl, const char *serial,
				   uint32_t session_id, int64_t started_ms, const char *cartridge_uid);
/* SESSION_END: 1 updated, 0 unknown (or already ended), -errno. */
int journal_limits_session_ended(struct journal_limits *jl, const char *serial,
				 uint32_t session_id, int64_t ended_ms);
/* Highest session_id used for the pen in treatment_sessions, 0 when none. */
int journal_limits_max_session_id(struct journal_limits *jl, const char *serial,
				  uint32_t *ret);

/* History (started sessions only). */
/* Latest started_ms of the patient's sessions whose zones contain zone (an
 * MQTT zone name): 0 and *ret_ms, or -ENOENT. */
int journal_limits_last_session(struct journal_limits *jl, const char *patient, const char *zone,
				int64_t *ret_ms);
/* Started sessions of the patient with started_ms >= since_ms. */
int journal_limits_count_sessions(struct journal_limits *jl, const char *patient,
				  int64_t since_ms, unsigned *ret_n);
/* Started sessions with this cartridge uid (any pen, any patient), and
 * whether one of them was another patient's. */
int journal_limits_cartridge_uses(struct journal_limits *jl, const char *uid_hex,
				  const char *patient, unsigned *ret_n, bool *ret_other_patient);

/* One audit row. NULL strings and has_* false are stored as NULL. */
struct journal_audit {
	int64_t at_ms;            /* 0: now */
	const char *pen_serial;
	uint32_t session_id;      /* 0: NULL */
	const char *kind;         /* authorise_request, enforcement, ... */
	const char *actor_id, *actor_role, *patient;
	const char *rule;         /* "NL-R08" */
	const char *action;       /* warn|clamp|lock|block */
	const char *result;       /* applied|pending|failed */
	bool has_values;
	int64_t measured, threshold;
	const char *unit;         /* engine unit name: um, passes, s, days, sessions */
	bool has_limits_hash, has_policy_hash;
	uint32_t limits_hash, policy_hash; /* stored as 8 lower-case hex digits */
	const char *detail;       /* JSON object text, NULL: none */
};

/* Appends a row (in the open batch); 0 and its id, or -errno. */
int journal_limits_audit(struct journal_limits *jl, const struct journal_audit *a,
			 int64_t *ret_id);

#endif
