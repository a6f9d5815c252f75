/* SPDX-License-Identifier: MIT */
/*
 * Treatment-limits engine (docs/limits.md): pure decisions, no I/O. The
 * daemon feeds it facts and carries out what it returns.
 *
 * (a) limits_authorise(): evaluates the BLOCK rules of a session request
 *     against the pen's facts and the journal's history (callbacks), and
 *     computes the effective limit set: the strictest of the factory limits,
 *     the clinic policy and the session plan (protocol.md 7.7).
 * (b) struct limits_session: supervises one authorised session. Live
 *     samples and decoded records go in; actions (WARN / CLAMP / LOCK, each
 *     with the rule, measured value and threshold) come out, one per
 *     violation, not one per sample.
 * (c) the session registers what it expects the pen to confirm (the SET
 *     LIMITS hash, every CLAMP and LOCK it asks for) and matches the pen's
 *     LIMIT records against it: a mismatch, or no confirmation within the
 *     policy's confirm_timeout_s, is an alert action.
 * (d) limits_unlock_check(): may this operator unlock the pen?
 *
 * Times: `now` is Unix seconds (authorise) or a monotonic millisecond clock
 * (session), always passed in, never read.
 */
#ifndef NLGW_LIMITS_ENGINE_H
#define NLGW_LIMITS_ENGINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "needlelink/pdu.h"
#include "needlelink/record.h"
#include "policy.h"
#include "rules.h"

#define LIMITS_ID_MAX 64
#define LIMITS_TEXT_MAX 256
#define LIMITS_FINDINGS_MAX 48

/* ---- (a) authorisation ---------------------------------------------------- */

/* The session plan: the params of the MQTT `authorise` request. Strings are
 * NUL terminated and copied by the caller; the patient is an opaque
 * pseudonym, never a name. */
struct limits_request {
	char pen_serial[NL_SERIAL_MAX + 1];
	char patient[LIMITS_ID_MAX + 1];
	char operator_id[LIMITS_ID_MAX + 1];
	enum limits_role operator_role;
	uint8_t skin_type; /* Fitzpatrick 1..6 */
	uint32_t contraindications; /* LIMITS_CI_* */
	uint8_t n_zones; /* 1..NL_LIMIT_ZONES_MAX */
	uint8_t zones[NL_LIMIT_ZONES_MAX];
	bool protocol_scar; /* scar protocol: the scar zone's deep cap applies */
	bool protocol_body; /* body protocol: stretch marks and body caps apply */
	bool has_override; /* physician override (NL-R08 only) */
	char override_physician[LIMITS_ID_MAX + 1];
	char override_reason[LIMITS_TEXT_MAX + 1];
	/* Optional plan tier, not (yet) in the MQTT request: a per-zone depth
	 * and a lifetime; 0 means "none". They can only make limits stricter. */
	uint16_t plan_cap_um[NL_ZONE_COUNT];
	uint32_t plan_lifetime_s;
};

/* What the gateway has read from the pen (protocol.md 10.1-10.4). */
struct limits_pen_facts {
	struct nl_feature feature;
	struct nl_pen_status status;
	bool have_cartridge; /* Cartridge Info was read */
	struct nl_cartridge_info cartridge;
	bool have_factory_set; /* Active Limits read with source FACTORY */
	struct nl_limit_set factory_set;
	/* The gateway authorised a session on this pen and has not seen its
	 * SESSION_END record yet: the pen is not IDLE (NL-R15) whatever its
	 * last Pen Status said (its indication may lag the AUTHORISE answer). */
	bool session_open;
};

struct limits_cartridge_use {
	uint32_t sessions; /* earlier sessions that used the cartridge */
	bool other_patient; /* one of them was another patient's */
};

/* Journal queries the daemon implements. Each returns 0 on success, or
 * -errno; any error makes limits_authorise() fail (nothing is guessed). */
struct limits_history_ops {
	/* Start time (Unix s) of the patient's latest session that treated
	 * zone; -ENOENT when there is none. */
	int (*last_session)(void *user_data, const char *patient, unsigned zone, int64_t *ret_time);
	/* Number of the patient's sessions that started at or after since. */
	int (*count_sessions)(void *user_data, const char *patient, int64_t since, unsigned *ret_n);
	/* Earlier uses of a cartridge uid (any patient, any pen). */
	int (*cartridge_uses)(void *user_data, const uint8_t uid[NL_CARTRIDGE_UID_LEN],
			      const char *patient, struct limits_cartridge_use *ret);
};

/* One rule outcome: why a session is blocked, or a warning. Values are in
 * the rule's unit (rules.h: mm in um). */
struct limits_finding {
	enum limits_rule rule;
	unsigned action; /* LIMITS_ACT_* bit taken: BLOCK, WARN, CLAMP */
	enum limits_severity severity;
	uint8_t zone; /* NL_ZONE_NONE when not zone specific */
	enum limits_unit unit;
	int64_t value; /* the patient's / plan's / pen's value */
	int64_t threshold;
	uint32_t detail; /* rule specific: NL-R12 flag, NL-R15 cause */
};

/* NL-R15 causes (limits_finding.detail). */
enum limits_not_ready {
	LIMITS_NOT_READY_STATE = 1, /* pen state is not IDLE */
	LIMITS_NOT_READY_LOCKED,
	LIMITS_NOT_READY_FAULT,
	LIMITS_NOT_READY_STORE_FULL,
	LIMITS_NOT_READY_NO_CARTRIDGE,
	LIMITS_NOT_READY_VERSION, /* protocol major is not 1 */
};

enum limits_verdict {
	LIMITS_VERDICT_AUTHORISE = 0, /* write decision.set, verify, AUTHORISE */
	LIMITS_VERDICT_BLOCK, /* answer blocked with decision.blocks */
};

/* Where a cap came from: the rule that set it, or 0 for the session plan. */
struct limits_cap_origin {
	uint8_t zone;
	enum limits_rule rule;
};

struct limits_decision {
	enum limits_verdict verdict;
	struct nl_limit_set set; /* effective limit set, canonical */
	uint32_t hash; /* nl_limit_set_hash(set) */
	uint32_t lifetime_s; /* for AUTHORISE; == set.lifetime_s */
	uint32_t policy_hash; /* limits_policy_hash(), for the audit trail */
	bool override_applied; /* the physician override relaxed NL-R08 */
	size_t n_blocks;
	struct limits_finding blocks[LIMITS_FINDINGS_MAX];
	size_t n_warnings; /* WARN (and CLAMP+WARN) findings */
	struct limits_finding warnings[LIMITS_FINDINGS_MAX];
	/* Binding rule per set entry: [0] the default cap, [1 + i] zones[i]. */
	enum limits_rule cap_rule[NL_LIMIT_ZONES_MAX + 1];
};

/* Evaluates a request. Returns 0 with *ret filled in (verdict AUTHORISE or
 * BLOCK: every BLOCK rule is evaluated, all violations listed), -EINVAL for
 * a malformed request (zone, skin type, role, empty patient) or pen facts,
 * or the -errno of a failing history callback. */
int limits_authorise(const struct limits_policy *policy, const struct limits_request *req,
		     const struct limits_pen_facts *pen, const struct limits_history_ops *history,
		     void *history_data, int64_t now, struct limits_decision *ret);

/* Step 3 of protocol.md 10.5: the Active Limits read back after SET_LIMITS.
 * Returns 0 when source is SESSION, the hash and the set equal what was
 * decided; 1 when not, with *ret_finding (NL-R13, BLOCK; detail 1: source
 * not SESSION, 2: other hash, 3: other set) saying why. */
int limits_verify_active(const struct limits_decision *d, const struct nl_active_limits *active,
			 struct limits_finding *ret_finding);

/* ---- (b, c) supervision ---------------------------------------------------- */

enum limits_action_kind {
	LIMITS_ACTION_WARN = 0, /* alert only */
	LIMITS_ACTION_CLAMP, /* send Pen CP CLAMP(zone, new_cap_um) */
	LIMITS_ACTION_LOCK, /* send Pen CP LOCK(lock_reason) unless !send */
	LIMITS_ACTION_ALERT, /* the pen did not do what was asked: alert */
};

/* Why an ALERT: what the pen did not do as asked. */
enum limits_alert {
	LIMITS_ALERT_NONE = 0, /* not an ALERT */
	LIMITS_ALERT_HASH_MISMATCH, /* measured/threshold: pen's and expected hash (a LOCK follows) */
	LIMITS_ALERT_REFUSED, /* measured: enum nl_cp_result of the refusal */
	LIMITS_ALERT_TIMEOUT, /* no confirmation: measured s waited, threshold timeout */
	LIMITS_ALERT_UNEXPECTED, /* a GATEWAY CLAMP/LOCK record nobody asked for */
	LIMITS_ALERT_THRESHOLD, /* the pen acts at another threshold than written */
	LIMITS_ALERT_RUNNING_LOCKED, /* the pen runs after acknowledging a LOCK */
};

struct limits_action {
	enum limits_action_kind kind;
	enum limits_alert alert; /* ALERT only */
	enum limits_rule rule;
	enum limits_severity severity;
	bool send; /* the daemon must write a Pen CP command */
	uint8_t zone;
	enum limits_unit unit;
	int64_t measured;
	int64_t threshold;
	uint16_t new_cap_um; /* CLAMP */
	uint8_t lock_reason; /* LOCK: enum nl_lock_reason */
	uint32_t expected_hash; /* CLAMP: hash of the derived set the pen must report */
	/* CLAMP/LOCK with !send: the pen confirmed the command the engine
	 * asked for (its LIMIT record, origin GATEWAY, or its Live Status:
	 * the zone's cap at or below the new cap and the motor not above it;
	 * state LOCKED), after answering it with SUCCESS. The other fields
	 * are those of the action that asked for it. */
	bool confirmed;
};

#define LIMITS_ACTIONS_MAX 8

struct limits_session;

/* Supervision of the session authorised by d (verdict AUTHORISE). Create
 * it before writing SET_LIMITS, with the session_id the gateway will pass
 * to AUTHORISE, and feed it every record from then on (session_id 0 or
 * session_id): the pen writes LIMIT APPLIED for the set before the session
 * opens, and the engine expects it. Feed only records newer than the
 * catch-up that preceded the request. Free it when SET_LIMITS or AUTHORISE
 * fails. After the session's SESSION_END record it ignores everything.
 * policy and history must outlive the session; feature is the pen's;
 * now_ms is the monotonic time of creation. */
int limits_session_new(const struct limits_policy *policy, const struct limits_decision *d,
		       const struct limits_request *req, const struct nl_feature *feature,
		       const struct limits_history_ops *history, void *history_data,
		       uint32_t session_id, int64_t now_ms, struct limits_session **ret);
void limits_session_free(struct limits_session *s);

/* Each of these appends at most max actions to out and returns how many
 * (>= 0), or -errno. Actions beyond max are not lost: they come out of the
 * next call (a violation stays pending until reported). */
int limits_session_live(struct limits_session *s, const struct nl_live *live, int64_t now_ms,
			struct limits_action *out, size_t max);
int limits_session_record(struct limits_session *s, const struct nl_record *rec, int64_t now_ms,
			  struct limits_action *out, size_t max);
/* Checks confirmations that are overdue (call it from a timer, e.g. 1 Hz). */
int limits_session_tick(struct limits_session *s, int64_t now_ms, struct limits_action *out,
			size_t max);

/* The pen answered a Pen CP command the engine asked for: op CLAMP or LOCK,
 * result enum nl_cp_result, value as in cp.h. A CLAMP SUCCESS whose value
 * is not the expected hash, or any non-SUCCESS result, is an ALERT action
 * (written to out as above). SUCCESS is not the confirmation: that is a
 * later `confirmed` action, or an ALERT (TIMEOUT, RUNNING_LOCKED,
 * THRESHOLD) when the pen does not do it. */
int limits_session_cp_result(struct limits_session *s, uint8_t op, uint8_t result, uint32_t value,
			     int64_t now_ms, struct limits_action *out, size_t max);

/* The limit set the engine expects in force now (the authorised set with
 * every CLAMP applied) and its hash. */
const struct nl_limit_set *limits_session_expected_set(const struct limits_session *s,
						       uint32_t *ret_hash);
bool limits_session_locked(const struct limits_session *s);

/* ---- (d) unlock ------------------------------------------------------------ */

/* May an operator unlock a pen locked by the engine? 0: yes; -EPERM: the
 * role is not physician; -EINVAL: no reason given (NULL, empty or blank). */
int limits_unlock_check(enum limits_role role, const char *reason);
/* Records an authorised unlock (after limits_unlock_check() and UNLOCK
 * SUCCESS): supervision resumes; thresholds that already locked do not lock
 * again in this session (protocol.md 7.8). -EPERM/-EINVAL as above. */
int limits_session_unlocked(struct limits_session *s, enum limits_role role, const char *reason);

/* ---- text ------------------------------------------------------------------ */

/* English message for a finding or an action, for the MQTT `message`
 * (<= 256 bytes, no control characters). Returns the length or -ENOBUFS. */
int limits_finding_message(const struct limits_finding *f, char *buf, size_t size);
int limits_action_message(const struct limits_action *a, char *buf, size_t size);
/* MQTT `action` of an action kind ("warn", "clamp", "lock"; ALERT: "warn"). */
const char *limits_action_kind_name(enum limits_action_kind k);

#endif
