/* SPDX-License-Identifier: MIT */
/*
 * Session authorisation and enforcement (docs/limits.md, "The daemon";
 * protocol.md 10.5-10.8): the limits engine (gateway/limits/) decides, this
 * module carries its decisions out on the pen, keeps the audit trail in the
 * journal (journal-limits.h) and publishes the alerts.
 *
 * Per pen (struct lpen, kept until exit): at most one authorise in flight,
 * at most one supervised session (the engine's struct limits_session), and
 * whether the gateway locked the pen (then only an authorised unlock lifts
 * the lock). Callbacks of the pen manager hold the lpen and its generation:
 * an answer for a session that has been replaced is only audited.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>
#include <systemd/sd-event.h>

#include "config.h"
#include "daemon-internal.h"
#include "daemon.h"
#include "engine.h"
#include "journal-limits.h"
#include "journal.h"
#include "log.h"
#include "payload.h"
#include "penmgr.h"
#include "policy.h"
#include "rules.h"

#include "needlelink/cp.h"
#include "needlelink/record.h"
#include "needlelink/zone.h"

#define TICK_US 1000000ULL /* limits_session_tick() period */
#define ACTS_MAX 8
#define SESSION_ID_MAX 0x7FFFFFFFu /* collectors use 1..0x7FFFFFFF (7.7) */
#define MSG_MAX (NL_PAYLOAD_TEXT_MAX + 1)

/* The request enums are the engine's, bit for bit. */
_Static_assert((unsigned)NL_PAYLOAD_CI_ACTIVE_INFECTION == (unsigned)LIMITS_CI_ACTIVE_INFECTION &&
		       (unsigned)NL_PAYLOAD_CI_COLD_SORES == (unsigned)LIMITS_CI_COLD_SORES &&
		       (unsigned)NL_PAYLOAD_CI_ACTIVE_ACNE == (unsigned)LIMITS_CI_ACTIVE_ACNE &&
		       (unsigned)NL_PAYLOAD_CI_ROSACEA == (unsigned)LIMITS_CI_ROSACEA &&
		       (unsigned)NL_PAYLOAD_CI_KELOID == (unsigned)LIMITS_CI_KELOID &&
		       (unsigned)NL_PAYLOAD_CI_ISOTRETINOIN == (unsigned)LIMITS_CI_ISOTRETINOIN &&
		       (unsigned)NL_PAYLOAD_CI_ANTICOAGULANTS == (unsigned)LIMITS_CI_ANTICOAGULANTS &&
		       (unsigned)NL_PAYLOAD_CI_PREGNANCY == (unsigned)LIMITS_CI_PREGNANCY &&
		       (unsigned)NL_PAYLOAD_CI_SKIN_CANCER == (unsigned)LIMITS_CI_SKIN_CANCER &&
		       (unsigned)NL_PAYLOAD_CI_CHEMO_RADIOTHERAPY ==
			       (unsigned)LIMITS_CI_CHEMO_RADIOTHERAPY &&
		       (unsigned)NL_PAYLOAD_CI_IMMUNOSUPPRESSION ==
			       (unsigned)LIMITS_CI_IMMUNOSUPPRESSION,
	       "contraindication bits");

struct dlimits;

struct lpen {
	struct lpen *next;
	struct dlimits *lim;
	char serial[NL_SERIAL_MAX + 1];
	uint64_t gen;             /* bumped whenever s is replaced or freed */
	struct limits_session *s; /* supervised session (or being authorised) */
	struct limits_request req;
	uint32_t session_id;
	uint32_t limits_hash;     /* authorised */
	uint32_t last_id;         /* highest session id handed out since start */
	uint32_t n_actions;       /* alert ids of this session's actions */
	unsigned cp_inflight;     /* enforcement commands awaiting the pen */
	bool authorising;
	bool engine_locked;       /* the gateway locked the pen (engine, failed authorise) */
	bool relock;              /* a SET_LIMITS whose outcome is unknown: see on READY */
	uint32_t relock_hash;
	/* The Pen Status the gateway held when the pen answered AUTHORISE:
	 * while no newer one came in, it says nothing of the open session. */
	bool has_auth_status;
	struct nl_pen_status auth_status;
};

struct dlimits {
	struct daemon *d;
	struct limits_policy *policy;
	uint32_t policy_hash;
	struct journal_limits *jl;
	struct lpen *pens;
	sd_event_source *tick;
	/* --stats: violating sample/record -> Pen CP handed to the pen manager */
	uint32_t *react;
	size_t n_react, cap_react;
};

/* A response sent once the audit rows written before it are durable. */
struct dreply {
	struct daemon *d;
	struct pending_req *pr;
	enum nl_payload_status status;
	char code[32], step[32], field[64];
	char msg[MSG_MAX];
	cJSON *result;
	size_t n_blocks;
	struct nl_payload_block blocks[LIMITS_FINDINGS_MAX];
	char block_msg[LIMITS_FINDINGS_MAX][MSG_MAX];
};

/* One authorise in flight (protocol 10.5). */
struct auth {
	struct lpen *lp;
	struct pending_req *pr;
	uint64_t gen;
	struct limits_decision dec;
	/* failure being reported (after the LOCK of step 7) */
	char code[32], step[32];
	char msg[MSG_MAX];
};

/* One enforcement command in flight. */
struct enf {
	struct lpen *lp;
	uint64_t gen;
	uint32_t session_id;
	struct limits_action a;
	char alert_id[128];
	char record_id[96];
};

struct unlock_ctx {
	struct lpen *lp;
	struct pending_req *pr;
	uint64_t gen;
	enum limits_role role;
	char reason[NL_PAYLOAD_TEXT_MAX + 1];
};

/* ---- small helpers -------------------------------------------------------- */

static uint64_t mono_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000ULL + (uint64_t)ts.tv_nsec / 1000;
}

/* snprintf that may truncate (messages are capped at the API's 256 bytes). */
static void textf(char *buf, size_t size, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void textf(char *buf, size_t size, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	(void)vsnprintf(buf, size, fmt, ap);
	va_end(ap);
}

static int64_t mono_ms(void)
{
	return (int64_t)(mono_us() / 1000);
}

static struct lpen *lpen_find(struct dlimits *lim, const char *serial)
{
	for (struct lpen *lp = lim->pens; lp; lp = lp->next)
		if (strcmp(lp->serial, serial) == 0)
			return lp;
	return NULL;
}

static struct lpen *lpen_get(struct dlimits *lim, const char *serial)
{
	struct lpen *lp = lpen_find(lim, serial);

	if (lp)
		return lp;
	lp = calloc(1, sizeof(*lp));
	if (!lp)
		return NULL;
	lp->lim = lim;
	snprintf(lp->serial, sizeof(lp->serial), "%s", serial);
	lp->next = lim->pens;
	lim->pens = lp;
	return lp;
}

static void lpen_drop_session(struct lpen *lp)
{
	limits_session_free(lp->s);
	lp->s = NULL;
	lp->gen++;
}

static bool status_same(const struct nl_pen_status *a, const struct nl_pen_status *b)
{
	return a->state == b->state && a->flags == b->flags && a->fault_code == b->fault_code &&
	       a->store_used == b->store_used && a->store_epoch == b->store_epoch &&
	       a->last_seq == b->last_seq && a->pen_time == b->pen_time &&
	       a->battery_pct == b->battery_pct;
}

static void uid_hex(const uint8_t uid[NL_CARTRIDGE_UID_LEN], char out[2 * NL_CARTRIDGE_UID_LEN + 1])
{
	for (unsigned i = 0; i < NL_CARTRIDGE_UID_LEN; i++)
		snprintf(out + 2 * i, 3, "%02x", uid[i]);
}

static bool uid_zero(const uint8_t uid[NL_CARTRIDGE_UID_LEN])
{
	for (unsigned i = 0; i < NL_CARTRIDGE_UID_LEN; i++)
		if (uid[i])
			return false;
	return true;
}

static enum nl_payload_unit payload_unit(enum limits_unit u)
{
	switch (u) {
	case LIMITS_UNIT_MM:
		return NL_PAYLOAD_UNIT_UM;
	case LIMITS_UNIT_PASSES:
		return NL_PAYLOAD_UNIT_PASSES;
	case LIMITS_UNIT_S:
		return NL_PAYLOAD_UNIT_S;
	case LIMITS_UNIT_DAYS:
		return NL_PAYLOAD_UNIT_DAYS;
	case LIMITS_UNIT_SESSIONS:
		return NL_PAYLOAD_UNIT_SESSIONS;
	case LIMITS_UNIT_NONE:
	case LIMITS_UNIT_COUNT:
	default:
		return NL_PAYLOAD_UNIT_NONE;
	}
}

/* The audit trail's unit: engine units, depths in um. */
static const char *audit_unit(enum limits_unit u)
{
	switch (u) {
	case LIMITS_UNIT_MM:
		return "um";
	case LIMITS_UNIT_NONE:
	case LIMITS_UNIT_COUNT:
		return NULL;
	case LIMITS_UNIT_PASSES:
	case LIMITS_UNIT_S:
	case LIMITS_UNIT_DAYS:
	case LIMITS_UNIT_SESSIONS:
	default:
		return limits_unit_name(u);
	}
}

static enum nl_payload_severity payload_severity(enum limits_severity s)
{
	switch (s) {
	case LIMITS_SEVERITY_INFO:
		return NL_PAYLOAD_SEVERITY_INFO;
	case LIMITS_SEVERITY_CRITICAL:
		return NL_PAYLOAD_SEVERITY_CRITICAL;
	case LIMITS_SEVERITY_WARNING:
	case LIMITS_SEVERITY_COUNT:
	default:
		return NL_PAYLOAD_SEVERITY_WARNING;
	}
}

static enum nl_payload_action payload_action(enum limits_action_kind k)
{
	switch (k) {
	case LIMITS_ACTION_CLAMP:
		return NL_PAYLOAD_ACTION_CLAMP;
	case LIMITS_ACTION_LOCK:
		return NL_PAYLOAD_ACTION_LOCK;
	case LIMITS_ACTION_WARN:
	case LIMITS_ACTION_ALERT:
	default:
		return NL_PAYLOAD_ACTION_WARN;
	}
}

static const char *result_name(enum nl_payload_action_result r)
{
	switch (r) {
	case NL_PAYLOAD_RESULT_APPLIED:
		return "applied";
	case NL_PAYLOAD_RESULT_PENDING:
		return "pending";
	case NL_PAYLOAD_RESULT_FAILED:
	case NL_PAYLOAD_RESULT_COUNT:
	default:
		return "failed";
	}
}

static const char *alert_cause_name(enum limits_alert a)
{
	switch (a) {
	case LIMITS_ALERT_HASH_MISMATCH:
		return "hash_mismatch";
	case LIMITS_ALERT_REFUSED:
		return "refused";
	case LIMITS_ALERT_TIMEOUT:
		return "timeout";
	case LIMITS_ALERT_UNEXPECTED:
		return "unexpected";
	case LIMITS_ALERT_THRESHOLD:
		return "threshold";
	case LIMITS_ALERT_RUNNING_LOCKED:
		return "running_locked";
	case LIMITS_ALERT_NONE:
	default:
		return NULL;
	}
}

static void zones_text(const struct limits_request *req, char *buf, size_t size)
{
	size_t n = 0;

	buf[0] = '\0';
	for (unsigned i = 0; i < req->n_zones && n < size; i++) {
		int k = snprintf(buf + n, size - n, "%s%s", i ? "," : "",
				 nl_zone_name(req->zones[i]) ? nl_zone_name(req->zones[i]) : "?");
		if (k < 0)
			break;
		n += (size_t)k;
	}
}

static char *json_text(cJSON *json)
{
	char *t = json ? cJSON_PrintUnformatted(json) : NULL;

	cJSON_Delete(json);
	return t;
}

static cJSON *request_json(const struct limits_request *req)
{
	cJSON *o = cJSON_CreateObject(), *z, *ci;

	if (!o)
		return NULL;
	z = cJSON_AddArrayToObject(o, "zones");
	for (unsigned i = 0; z && i < req->n_zones; i++)
		cJSON_AddItemToArray(z, cJSON_CreateString(nl_zone_name(req->zones[i])
								   ? nl_zone_name(req->zones[i])
								   : "?"));
	cJSON_AddNumberToObject(o, "skin_type", req->skin_type);
	ci = cJSON_AddArrayToObject(o, "contraindications");
	for (unsigned b = 0; ci && b < LIMITS_CI_COUNT; b++)
		if (req->contraindications & (1u << b) && limits_ci_name(1u << b))
			cJSON_AddItemToArray(ci, cJSON_CreateString(limits_ci_name(1u << b)));
	cJSON_AddBoolToObject(o, "scar", req->protocol_scar);
	cJSON_AddBoolToObject(o, "body", req->protocol_body);
	if (req->has_override) {
		cJSON_AddStringToObject(o, "override_physician", req->override_physician);
		cJSON_AddStringToObject(o, "override_reason", req->override_reason);
	}
	return o;
}

static cJSON *finding_json(const struct limits_finding *f)
{
	cJSON *o = cJSON_CreateObject();
	char msg[MSG_MAX];

	if (!o)
		return NULL;
	cJSON_AddStringToObject(o, "rule", limits_rule_id(f->rule) ? limits_rule_id(f->rule) : "?");
	cJSON_AddStringToObject(o, "zone", nl_zone_name(f->zone) ? nl_zone_name(f->zone) : "none");
	if (audit_unit(f->unit)) {
		cJSON_AddStringToObject(o, "unit", audit_unit(f->unit));
		cJSON_AddNumberToObject(o, "value", (double)f->value);
		cJSON_AddNumberToObject(o, "threshold", (double)f->threshold);
	}
	if (limits_finding_message(f, msg, sizeof(msg)) >= 0)
		cJSON_AddStringToObject(o, "message", msg);
	return o;
}

static int audit(struct dlimits *lim, const struct journal_audit *a)
{
	int r = journal_limits_audit(lim->jl, a, NULL);

	if (r < 0)
		log_pen_err(a->pen_serial, "audit %s: journal failed: %s", a->kind, strerror(-r));
	return r;
}

static void stats_push(struct dlimits *lim, uint64_t t0)
{
	uint64_t dt;

	if (!lim->d->opts->stats || !t0)
		return;
	dt = mono_us() - t0;
	if (lim->n_react == lim->cap_react) {
		size_t c = lim->cap_react ? lim->cap_react * 2 : 1024;
		uint32_t *v = realloc(lim->react, c * sizeof(*v));

		if (!v)
			return;
		lim->react = v;
		lim->cap_react = c;
	}
	lim->react[lim->n_react++] = dt > UINT32_MAX ? UINT32_MAX : (uint32_t)dt;
}

/* ---- deferred responses ---------------------------------------------------- */

static struct dreply *dreply_new(struct daemon *d, struct pending_req *pr,
				 enum nl_payload_status status)
{
	struct dreply *r = calloc(1, sizeof(*r));

	if (!r)
		return NULL;
	r->d = d;
	r->pr = pr;
	r->status = status;
	return r;
}

static void dreply_cb(int result, void *userdata)
{
	struct dreply *r = userdata;
	struct pending_req *pr = r->pr;

	if (result < 0)
		log_pen_err(pr->serial, "%s: audit not committed: %s", pr->name, strerror(-result));
	if (r->d->m) {
		struct nl_payload_response resp = {
			.serial = pr->serial,
			.op = pr->name,
			.transaction = pr->req.transaction,
			.status = r->status,
			.at_ms = journal_now_ms(),
			.result = r->result,
		};

		switch (r->status) {
		case NL_PAYLOAD_STATUS_FAILED:
		case NL_PAYLOAD_STATUS_ERROR:
			resp.error_code = r->code;
			resp.error_message = r->msg;
			resp.error_field = r->field[0] ? r->field : NULL;
			resp.failed_step = r->step;
			log_pen_notice(pr->serial, "request %s (%s) failed: %s", pr->name,
				       pr->req.transaction, r->msg);
			break;
		case NL_PAYLOAD_STATUS_BLOCKED:
			resp.block_count = r->n_blocks;
			resp.blocks = r->blocks;
			log_pen_notice(pr->serial, "request %s (%s) blocked by %zu rule(s)", pr->name,
				       pr->req.transaction, r->n_blocks);
			break;
		case NL_PAYLOAD_STATUS_OK:
		case NL_PAYLOAD_STATUS_APPLIED:
		case NL_PAYLOAD_STATUS_COUNT:
		default:
			log_pen_info(pr->serial, "request %s (%s) done", pr->name,
				     pr->req.transaction);
			break;
		}
		r->result = NULL; /* reply() consumes it */
		reply(r->d, pr, &resp);
	}
	cJSON_Delete(r->result);
	pending_req_free(pr);
	free(r);
}

/* Sends r once everything journaled so far is durable: a caller reading the
 * audit trail after the response finds the rows. */
static void dreply_send(struct dreply *r)
{
	if (journal_commit(r->d->j, dreply_cb, r) < 0)
		dreply_cb(0, r);
}

static void dreply_fail(struct daemon *d, struct pending_req *pr, const char *code,
			const char *step, const char *field, const char *msg)
{
	struct dreply *r = dreply_new(d, pr, NL_PAYLOAD_STATUS_FAILED);

	if (!r) {
		reply_failed(d, pr, code, step, msg);
		pending_req_free(pr);
		return;
	}
	snprintf(r->code, sizeof(r->code), "%s", code);
	snprintf(r->step, sizeof(r->step), "%s", step);
	snprintf(r->field, sizeof(r->field), "%s", field ? field : "");
	snprintf(r->msg, sizeof(r->msg), "%s", msg);
	dreply_send(r);
}

/* ---- enforcement ------------------------------------------------------------ */

static void arm_tick(struct dlimits *lim);
static void handle_actions(struct lpen *lp, const struct limits_action *acts, int n,
			   const char *record_id, uint64_t t0);

/* The MQTT rule of an action: the pen not doing what the gateway asked or
 * expected (every ALERT) is NL-R13 limits_not_acknowledged, whichever rule
 * the command enforced (named in the message and the audit detail). */
static enum limits_rule alert_rule(const struct limits_action *a)
{
	return a->kind == LIMITS_ACTION_ALERT ? LIMITS_R13_NOT_ACKNOWLEDGED : a->rule;
}

static void action_alert(struct lpen *lp, const struct limits_action *a, uint32_t session_id,
			 const char *alert_id, const char *record_id,
			 enum nl_payload_action_result result, const char *extra)
{
	struct daemon *d = lp->lim->d;
	char msg[MSG_MAX], text[MSG_MAX];

	enum limits_rule rule = alert_rule(a);
	char concerns[16] = "";

	if (rule != a->rule && limits_rule_id(a->rule))
		snprintf(concerns, sizeof(concerns), " (%s)", limits_rule_id(a->rule));
	if (limits_action_message(a, msg, sizeof(msg)) < 0)
		snprintf(msg, sizeof(msg), "%s", limits_rule_name(a->rule));
	textf(text, sizeof(text), "%s: %s%s%s%s", limits_rule_id(rule) ? limits_rule_id(rule)
								       : "NL-R??",
	      msg, concerns, extra ? "; " : "", extra ? extra : "");
	raise_alert(d, lp->serial,
		    &(struct alert_in){
			    .rule = limits_rule_name(rule) ? limits_rule_name(rule)
							   : "limits_not_acknowledged",
			    .severity = payload_severity(a->severity),
			    .action = payload_action(a->kind),
			    .unit = payload_unit(a->unit),
			    .measured = a->measured,
			    .threshold = a->threshold,
			    .zone = a->zone < NL_ZONE_COUNT ? a->zone : NL_ZONE_NONE,
			    .session_id = session_id,
			    .record_id = record_id && record_id[0] ? record_id : NULL,
			    .alert_id = alert_id,
			    .result = result,
			    .message = text,
		    });
}

static void action_audit(struct lpen *lp, const struct limits_action *a, uint32_t session_id,
			 const char *kind, const char *alert_id, const char *record_id,
			 enum nl_payload_action_result result, const char *cp_result)
{
	struct dlimits *lim = lp->lim;
	cJSON *o = cJSON_CreateObject();
	char msg[MSG_MAX], *detail;
	uint32_t hash = lp->limits_hash;

	if (a->kind == LIMITS_ACTION_CLAMP && a->expected_hash)
		hash = a->expected_hash;
	else if (lp->s)
		(void)limits_session_expected_set(lp->s, &hash);
	if (o) {
		cJSON_AddStringToObject(o, "alert_id", alert_id);
		cJSON_AddStringToObject(o, "kind", a->kind == LIMITS_ACTION_ALERT
							   ? "alert"
							   : limits_action_kind_name(a->kind));
		if (alert_cause_name(a->alert))
			cJSON_AddStringToObject(o, "alert", alert_cause_name(a->alert));
		if (alert_rule(a) != a->rule && limits_rule_id(a->rule))
			cJSON_AddStringToObject(o, "concerns", limits_rule_id(a->rule));
		cJSON_AddStringToObject(o, "zone", nl_zone_name(a->zone) ? nl_zone_name(a->zone)
									 : "none");
		cJSON_AddBoolToObject(o, "sent", a->send);
		if (a->kind == LIMITS_ACTION_CLAMP)
			cJSON_AddNumberToObject(o, "new_cap_um", a->new_cap_um);
		if (a->kind == LIMITS_ACTION_LOCK && nl_lock_reason_name(a->lock_reason))
			cJSON_AddStringToObject(o, "lock_reason", nl_lock_reason_name(a->lock_reason));
		if (record_id && record_id[0])
			cJSON_AddStringToObject(o, "record_id", record_id);
		if (cp_result)
			cJSON_AddStringToObject(o, "pen_result", cp_result);
		if (limits_action_message(a, msg, sizeof(msg)) >= 0)
			cJSON_AddStringToObject(o, "message", msg);
	}
	detail = json_text(o);
	(void)audit(lim, &(struct journal_audit){
				 .pen_serial = lp->serial,
				 .session_id = session_id,
				 .kind = kind,
				 .patient = lp->req.patient[0] ? lp->req.patient : NULL,
				 .rule = limits_rule_id(alert_rule(a)),
				 .action = limits_action_kind_name(a->kind),
				 .result = result_name(result),
				 .has_values = audit_unit(a->unit) != NULL,
				 .measured = a->measured,
				 .threshold = a->threshold,
				 .unit = audit_unit(a->unit),
				 .has_limits_hash = hash != 0,
				 .limits_hash = hash,
				 .has_policy_hash = true,
				 .policy_hash = lim->policy_hash,
				 .detail = detail,
			 });
	free(detail);
}

static void enf_done(int err, const struct nl_cp_rsp *rsp, void *userdata)
{
	struct enf *e = userdata;
	struct lpen *lp = e->lp;
	struct limits_action acts[ACTS_MAX];
	bool ok = err == 0 && rsp->result == NL_CP_SUCCESS;
	/* SUCCESS is the pen's answer, not yet its confirmation: that is the
	 * engine's `confirmed` action (applied) or its ALERT (failed). */
	enum nl_payload_action_result res = ok ? NL_PAYLOAD_RESULT_PENDING : NL_PAYLOAD_RESULT_FAILED;
	char why[128];
	int n = 0;

	if (lp->cp_inflight)
		lp->cp_inflight--;
	if (err < 0)
		snprintf(why, sizeof(why), "the pen did not answer: %s", strerror(-err));
	else if (!ok)
		snprintf(why, sizeof(why), "the pen answered %s", nl_cp_result_name(rsp->result));
	else
		snprintf(why, sizeof(why), "the pen answered SUCCESS; awaiting its confirmation");
	if (ok && e->a.kind == LIMITS_ACTION_LOCK)
		lp->engine_locked = true;
	action_audit(lp, &e->a, e->session_id, "enforcement_result", e->alert_id, e->record_id,
		     res, err < 0 ? strerror(-err) : nl_cp_result_name(rsp->result));
	action_alert(lp, &e->a, e->session_id, e->alert_id, e->record_id, res,
		     why[0] ? why : NULL);
	log_pen_notice(lp->serial, "limits: %s %s %s%s%s", limits_rule_id(e->a.rule),
		       limits_action_kind_name(e->a.kind), result_name(res), why[0] ? ": " : "",
		       why);
	/* The engine judges the answer (a CLAMP hash, a refusal). A link that
	 * went down says nothing about the pen: its confirm timeout will. */
	if (lp->s && lp->gen == e->gen && err != -ENOTCONN && err != -ECANCELED) {
		uint8_t op = e->a.kind == LIMITS_ACTION_CLAMP ? NL_CP_CLAMP : NL_CP_LOCK;

		n = limits_session_cp_result(lp->s, op, err < 0 ? NL_CP_FAILED : rsp->result,
					     err < 0 ? 0 : rsp->value, mono_ms(), acts, ACTS_MAX);
		if (n > 0)
			handle_actions(lp, acts, n, NULL, 0);
	}
	if (journal_commit(lp->lim->d->j, kick_cb, lp->lim->d) < 0)
		log_err("journal: commit request failed");
}

/* Audit first (in the batch, commit requested), then the Pen CP at once:
 * see docs/limits.md "Enforcement order". */
static void handle_action(struct lpen *lp, const struct limits_action *a, const char *record_id,
			  uint64_t t0)
{
	struct dlimits *lim = lp->lim;
	struct daemon *d = lim->d;
	uint32_t sid = lp->session_id;
	char alert_id[128];
	struct nl_cp_req cp = { 0 };
	struct enf *e;

	snprintf(alert_id, sizeof(alert_id), "%s:limits:%" PRIu32 ":%" PRIu32, lp->serial, sid,
		 ++lp->n_actions);
	switch (a->kind) {
	case LIMITS_ACTION_WARN:
		action_audit(lp, a, sid, "enforcement", alert_id, record_id,
			     NL_PAYLOAD_RESULT_APPLIED, NULL);
		action_alert(lp, a, sid, alert_id, record_id, NL_PAYLOAD_RESULT_APPLIED, NULL);
		return;
	case LIMITS_ACTION_ALERT:
		if (a->alert == LIMITS_ALERT_HASH_MISMATCH)
			(void)audit(lim, &(struct journal_audit){
						 .pen_serial = lp->serial,
						 .session_id = sid,
						 .kind = "limit_mismatch",
						 .patient = lp->req.patient,
						 .rule = limits_rule_id(a->rule),
						 .action = "warn",
						 .result = "failed",
						 .has_limits_hash = true,
						 .limits_hash = (uint32_t)a->threshold,
						 .has_policy_hash = true,
						 .policy_hash = lim->policy_hash,
					 });
		action_audit(lp, a, sid, "enforcement", alert_id, record_id,
			     NL_PAYLOAD_RESULT_FAILED, NULL);
		action_alert(lp, a, sid, alert_id, record_id, NL_PAYLOAD_RESULT_FAILED, NULL);
		return;
	case LIMITS_ACTION_CLAMP:
	case LIMITS_ACTION_LOCK:
		break;
	}
	if (a->confirmed) {
		/* The outcome of a command sent earlier (its alert said pending). */
		action_audit(lp, a, sid, "enforcement_result", alert_id, record_id,
			     NL_PAYLOAD_RESULT_APPLIED, "confirmed");
		action_alert(lp, a, sid, alert_id, record_id, NL_PAYLOAD_RESULT_APPLIED,
			     record_id && record_id[0] ? "confirmed by the pen's LIMIT record"
						       : "confirmed by the pen's Live Status");
		log_pen_notice(lp->serial, "limits: %s %s confirmed by the pen",
			       limits_rule_id(a->rule), limits_action_kind_name(a->kind));
		return;
	}
	if (!a->send) {
		/* The pen did it itself (its LIMIT record): report only. */
		if (a->kind == LIMITS_ACTION_LOCK)
			lp->engine_locked = true;
		action_audit(lp, a, sid, "enforcement", alert_id, record_id,
			     NL_PAYLOAD_RESULT_APPLIED, NULL);
		action_alert(lp, a, sid, alert_id, record_id, NL_PAYLOAD_RESULT_APPLIED,
			     "enforced by the pen");
		return;
	}
	action_audit(lp, a, sid, "enforcement", alert_id, record_id, NL_PAYLOAD_RESULT_PENDING,
		     NULL);
	if (journal_commit(d->j, kick_cb, d) < 0)
		log_err("journal: commit request failed");
	if (a->kind == LIMITS_ACTION_CLAMP) {
		cp.op = NL_CP_CLAMP;
		cp.u.clamp.zone = a->zone < NL_ZONE_COUNT ? a->zone : 0;
		cp.u.clamp.cap_um = a->new_cap_um;
	} else {
		cp.op = NL_CP_LOCK;
		cp.u.reason = a->lock_reason ? a->lock_reason : NL_LOCK_REASON_POLICY;
	}
	e = calloc(1, sizeof(*e));
	if (e) {
		e->lp = lp;
		e->gen = lp->gen;
		e->session_id = sid;
		e->a = *a;
		snprintf(e->alert_id, sizeof(e->alert_id), "%s", alert_id);
		snprintf(e->record_id, sizeof(e->record_id), "%s", record_id ? record_id : "");
		if (penmgr_cp_request(d->pm, lp->serial, &cp, enf_done, e, free) != 0) {
			stats_push(lim, t0);
			lp->cp_inflight++;
			return;
		}
		free(e);
	}
	/* Not sent: the pen is offline (it keeps enforcing its own limits). */
	action_audit(lp, a, sid, "enforcement_result", alert_id, record_id,
		     NL_PAYLOAD_RESULT_FAILED, "not_sent");
	action_alert(lp, a, sid, alert_id, record_id, NL_PAYLOAD_RESULT_FAILED,
		     "the command could not be sent: pen not connected");
	log_pen_warning(lp->serial, "limits: %s %s not sent: pen not connected",
			limits_rule_id(a->rule), limits_action_kind_name(a->kind));
}

static void handle_actions(struct lpen *lp, const struct limits_action *acts, int n,
			   const char *record_id, uint64_t t0)
{
	struct daemon *d = lp->lim->d;

	/* While the authorise procedure runs it is in charge of the pen: a
	 * set the pen does not confirm fails it, and it locks the pen
	 * (10.5 step 7). The engine's view of the same facts is not acted
	 * on twice. */
	if (lp->authorising) {
		for (int i = 0; i < n; i++)
			log_pen_info(lp->serial, "limits: %s %s during authorisation: left to the "
				     "authorise procedure", limits_rule_id(acts[i].rule),
				     limits_action_kind_name(acts[i].kind));
		return;
	}
	for (int i = 0; i < n; i++)
		handle_action(lp, &acts[i], record_id, t0);
	if (n > 0 && journal_commit(d->j, kick_cb, d) < 0)
		log_err("journal: commit request failed");
}

static int on_tick(sd_event_source *s, uint64_t usec, void *userdata)
{
	struct dlimits *lim = userdata;
	struct limits_action acts[ACTS_MAX];
	bool any = false;

	for (struct lpen *lp = lim->pens; lp; lp = lp->next) {
		int n;

		if (!lp->s)
			continue;
		any = true;
		n = limits_session_tick(lp->s, mono_ms(), acts, ACTS_MAX);
		if (n > 0)
			handle_actions(lp, acts, n, NULL, 0);
	}
	if (any) {
		(void)sd_event_source_set_time(s, usec + TICK_US);
		(void)sd_event_source_set_enabled(s, SD_EVENT_ONESHOT);
	}
	return 0;
}

static void arm_tick(struct dlimits *lim)
{
	uint64_t now = 0;
	int enabled = SD_EVENT_OFF;

	if (lim->tick && sd_event_source_get_enabled(lim->tick, &enabled) >= 0 &&
	    enabled != SD_EVENT_OFF)
		return;
	(void)sd_event_now(lim->d->e, CLOCK_MONOTONIC, &now);
	if (!lim->tick) {
		/* 10 ms accuracy: 0 would be sd-event's default of 250 ms. */
		if (sd_event_add_time(lim->d->e, &lim->tick, CLOCK_MONOTONIC, now + TICK_US, 10000,
				      on_tick, lim) < 0)
			log_err("limits: cannot add the supervision timer");
		return;
	}
	(void)sd_event_source_set_time(lim->tick, now + TICK_US);
	(void)sd_event_source_set_enabled(lim->tick, SD_EVENT_ONESHOT);
}

/* ---- history (struct limits_history_ops) ------------------------------------ */

static int hist_last_session(void *userdata, const char *patient, unsigned zone,
			     int64_t *ret_time)
{
	struct dlimits *lim = userdata;
	const char *name = nl_zone_name(zone);
	int64_t ms;
	int r;

	if (!name)
		return -EINVAL;
	r = journal_limits_last_session(lim->jl, patient, name, &ms);
	if (r < 0)
		return r;
	*ret_time = ms / 1000;
	return 0;
}

static int hist_count_sessions(void *userdata, const char *patient, int64_t since,
			       unsigned *ret_n)
{
	struct dlimits *lim = userdata;

	return journal_limits_count_sessions(lim->jl, patient, since * 1000, ret_n);
}

static int hist_cartridge_uses(void *userdata, const uint8_t uid[NL_CARTRIDGE_UID_LEN],
			       const char *patient, struct limits_cartridge_use *ret)
{
	struct dlimits *lim = userdata;
	char hex[2 * NL_CARTRIDGE_UID_LEN + 1];
	unsigned n = 0;
	bool other = false;
	int r;

	uid_hex(uid, hex);
	r = journal_limits_cartridge_uses(lim->jl, hex, patient, &n, &other);
	if (r < 0)
		return r;
	ret->sessions = n;
	ret->other_patient = other;
	return 0;
}

static const struct limits_history_ops history_ops = {
	.last_session = hist_last_session,
	.count_sessions = hist_count_sessions,
	.cartridge_uses = hist_cartridge_uses,
};

/* ---- authorise (protocol 10.5) ---------------------------------------------- */

static void auth_audit(struct auth *a, const char *kind, const char *result, const char *detail,
		       const struct limits_finding *f)
{
	struct lpen *lp = a->lp;

	(void)audit(lp->lim,
		    &(struct journal_audit){
			    .pen_serial = lp->serial,
			    .session_id = lp->session_id && strcmp(kind, "authorise_blocked") != 0
						  ? lp->session_id
						  : 0,
			    .kind = kind,
			    .actor_id = lp->req.operator_id,
			    .actor_role = limits_role_name(lp->req.operator_role),
			    .patient = lp->req.patient,
			    .rule = f ? limits_rule_id(f->rule) : NULL,
			    .action = f ? (f->action & LIMITS_ACT_BLOCK ? "block" : "warn") : NULL,
			    .result = result,
			    .has_values = f && audit_unit(f->unit) != NULL,
			    .measured = f ? f->value : 0,
			    .threshold = f ? f->threshold : 0,
			    .unit = f ? audit_unit(f->unit) : NULL,
			    .has_limits_hash = a->dec.hash != 0,
			    .limits_hash = a->dec.hash,
			    .has_policy_hash = true,
			    .policy_hash = a->dec.policy_hash ? a->dec.policy_hash
							      : lp->lim->policy_hash,
			    .detail = detail,
		    });
}

/* Ends an authorise that failed: audit, answer (after the commit). */
static void auth_fail_final(struct auth *a)
{
	struct lpen *lp = a->lp;
	struct daemon *d = lp->lim->d;
	cJSON *o = cJSON_CreateObject();
	char *detail;

	if (o) {
		cJSON_AddStringToObject(o, "code", a->code);
		cJSON_AddStringToObject(o, "step", a->step);
		cJSON_AddStringToObject(o, "message", a->msg);
		cJSON_AddBoolToObject(o, "pen_locked", lp->engine_locked);
	}
	detail = json_text(o);
	auth_audit(a, "authorise_failed", "failed", detail, NULL);
	free(detail);
	if (lp->authorising && lp->gen == a->gen) {
		lpen_drop_session(lp);
		lp->authorising = false;
	}
	dreply_fail(d, a->pr, a->code, a->step, NULL, a->msg);
	free(a);
}

static void auth_lock_done(int err, const struct nl_cp_rsp *rsp, void *userdata)
{
	struct auth *a = userdata;
	size_t n = strlen(a->msg);

	if (err == 0 && rsp->result == NL_CP_SUCCESS) {
		a->lp->engine_locked = true;
		a->lp->relock = false;
		snprintf(a->msg + n, sizeof(a->msg) - n, "; the pen was locked (policy)");
	} else {
		snprintf(a->msg + n, sizeof(a->msg) - n, "; LOCK failed (%s)",
			 err < 0 ? strerror(-err) : nl_cp_result_name(rsp->result));
	}
	auth_fail_final(a);
}

/* A failure after SET_LIMITS may have applied a set the gateway did not
 * verify: lock the pen (protocol 10.5 step 7), then answer. */
static void auth_fail(struct auth *a, bool lock, const char *code, const char *step,
		      const char *fmt, ...) __attribute__((format(printf, 5, 6)));
static void auth_fail(struct auth *a, bool lock, const char *code, const char *step,
		      const char *fmt, ...)
{
	struct lpen *lp = a->lp;
	struct daemon *d = lp->lim->d;
	va_list ap;

	snprintf(a->code, sizeof(a->code), "%s", code);
	snprintf(a->step, sizeof(a->step), "%s", step);
	va_start(ap, fmt);
	vsnprintf(a->msg, sizeof(a->msg) - 64, fmt, ap);
	va_end(ap);
	if (lock && !d->stopping) {
		struct nl_cp_req cp = { .op = NL_CP_LOCK, .u.reason = NL_LOCK_REASON_POLICY };
		size_t n;

		/* If the link is down now, lock when it is back (dlimits_link). */
		lp->relock = true;
		lp->relock_hash = a->dec.hash;
		if (penmgr_cp_request(d->pm, lp->serial, &cp, auth_lock_done, a, NULL) != 0)
			return;
		n = strlen(a->msg);
		snprintf(a->msg + n, sizeof(a->msg) - n,
			 "; the pen is offline: it will be locked when it reconnects");
	}
	auth_fail_final(a);
}

static const char *cp_err_code(int err)
{
	if (err == -ETIMEDOUT)
		return "timeout";
	if (err == -ENOTCONN || err == -ECANCELED)
		return "pen_offline";
	return "pen_rejected";
}

static void auth_applied(struct auth *a)
{
	struct lpen *lp = a->lp;
	struct dlimits *lim = lp->lim;
	struct daemon *d = lim->d;
	char zones[NL_LIMIT_ZONES_MAX * 20], *detail;
	struct dreply *r;
	cJSON *o, *caps;
	int rr;

	lp->authorising = false;
	lp->relock = false;
	lp->limits_hash = a->dec.hash;
	lp->n_actions = 0;
	zones_text(&lp->req, zones, sizeof(zones));
	rr = journal_limits_add_session(lim->jl,
					&(struct journal_limits_session){
						.pen_serial = lp->serial,
						.session_id = lp->session_id,
						.patient = lp->req.patient,
						.operator_id = lp->req.operator_id,
						.operator_role = limits_role_name(lp->req.operator_role),
						.authorised_ms = journal_now_ms(),
						.zones = zones,
						.limits_hash = a->dec.hash,
					});
	if (rr < 0)
		log_pen_err(lp->serial, "limits: treatment session row: %s", strerror(-rr));
	o = cJSON_CreateObject();
	if (o) {
		cJSON *set = NULL, *w;

		if (nl_payload_limit_set(&a->dec.set, &set) == 0)
			cJSON_AddItemToObject(o, "set", set);
		cJSON_AddNumberToObject(o, "lifetime_s", a->dec.lifetime_s);
		caps = cJSON_AddArrayToObject(o, "cap_rules");
		for (unsigned i = 0; caps && i <= a->dec.set.zone_count && i <= NL_LIMIT_ZONES_MAX;
		     i++) {
			cJSON *c = cJSON_CreateObject();

			if (!c)
				break;
			cJSON_AddStringToObject(c, "zone",
						i == 0 ? "default"
						       : (nl_zone_name(a->dec.set.zones[i - 1].zone)
								  ? nl_zone_name(a->dec.set.zones[i - 1].zone)
								  : "?"));
			cJSON_AddStringToObject(c, "rule", limits_rule_id(a->dec.cap_rule[i])
								   ? limits_rule_id(a->dec.cap_rule[i])
								   : "plan");
			cJSON_AddItemToArray(caps, c);
		}
		w = cJSON_AddArrayToObject(o, "warnings");
		for (size_t i = 0; w && i < a->dec.n_warnings; i++)
			cJSON_AddItemToArray(w, finding_json(&a->dec.warnings[i]));
		cJSON_AddBoolToObject(o, "override_applied", a->dec.override_applied);
	}
	detail = json_text(o);
	auth_audit(a, "authorise_applied", "applied", detail, NULL);
	free(detail);
	if (a->dec.override_applied) {
		cJSON *ov = cJSON_CreateObject();

		if (ov) {
			cJSON_AddStringToObject(ov, "reason", lp->req.override_reason);
			cJSON_AddStringToObject(ov, "operator_id", lp->req.operator_id);
		}
		detail = json_text(ov);
		(void)audit(lim, &(struct journal_audit){
					 .pen_serial = lp->serial,
					 .session_id = lp->session_id,
					 .kind = "override",
					 .actor_id = lp->req.override_physician,
					 .actor_role = "physician",
					 .patient = lp->req.patient,
					 .rule = limits_rule_id(LIMITS_R08_INTERVAL),
					 .result = "applied",
					 .has_limits_hash = true,
					 .limits_hash = a->dec.hash,
					 .has_policy_hash = true,
					 .policy_hash = a->dec.policy_hash,
					 .detail = detail,
				 });
		free(detail);
	}
	/* Warnings found at authorisation: one alert each (docs/limits.md). */
	for (size_t i = 0; i < a->dec.n_warnings; i++) {
		const struct limits_finding *f = &a->dec.warnings[i];
		char id[128], msg[MSG_MAX], text[MSG_MAX];

		snprintf(id, sizeof(id), "%s:limits:%" PRIu32 ":w%zu", lp->serial, lp->session_id,
			 i + 1);
		if (limits_finding_message(f, msg, sizeof(msg)) < 0)
			msg[0] = '\0';
		snprintf(text, sizeof(text), "%s: %s", limits_rule_id(f->rule), msg);
		raise_alert(d, lp->serial,
			    &(struct alert_in){
				    .rule = limits_rule_name(f->rule),
				    .severity = payload_severity(f->severity),
				    .action = f->action & LIMITS_ACT_CLAMP ? NL_PAYLOAD_ACTION_CLAMP
									   : NL_PAYLOAD_ACTION_WARN,
				    .unit = payload_unit(f->unit),
				    .measured = f->value,
				    .threshold = f->threshold,
				    .zone = f->zone < NL_ZONE_COUNT ? f->zone : NL_ZONE_NONE,
				    .session_id = lp->session_id,
				    .alert_id = id,
				    .result = NL_PAYLOAD_RESULT_APPLIED,
				    .message = text,
			    });
	}
	log_pen_notice(lp->serial, "limits: session %" PRIu32 " authorised, limits %08" PRIx32
		       ", lifetime %" PRIu32 " s", lp->session_id, a->dec.hash, a->dec.lifetime_s);
	arm_tick(lim);
	r = dreply_new(d, a->pr, NL_PAYLOAD_STATUS_APPLIED);
	if (!r) {
		cJSON *res = NULL;

		(void)nl_payload_result_authorise(lp->session_id, a->dec.hash, &a->dec.set, &res);
		reply(d, a->pr, &(struct nl_payload_response){ .serial = a->pr->serial,
							       .op = a->pr->name,
							       .transaction = a->pr->req.transaction,
							       .status = NL_PAYLOAD_STATUS_APPLIED,
							       .at_ms = journal_now_ms(),
							       .result = res });
		pending_req_free(a->pr);
	} else {
		if (nl_payload_result_authorise(lp->session_id, a->dec.hash, &a->dec.set,
						&r->result) < 0)
			log_pen_err(lp->serial, "limits: authorise result could not be built");
		dreply_send(r);
	}
	free(a);
}

static void auth_authorise_done(int err, const struct nl_cp_rsp *rsp, void *userdata)
{
	struct auth *a = userdata;

	if (err < 0) {
		auth_fail(a, true, cp_err_code(err), "authorise", "AUTHORISE: %s",
			  err == -ETIMEDOUT ? "the pen did not answer in time" : strerror(-err));
		return;
	}
	if (rsp->result != NL_CP_SUCCESS) {
		auth_fail(a, true, "pen_rejected", "authorise", "AUTHORISE: the pen answered %s",
			  nl_cp_result_name(rsp->result));
		return;
	}
	if (rsp->value != a->lp->session_id) {
		auth_fail(a, true, "pen_rejected", "authorise",
			  "AUTHORISE: the pen opened session %" PRIu32 ", not %" PRIu32, rsp->value,
			  a->lp->session_id);
		return;
	}
	{
		struct penmgr_snapshot s;

		a->lp->has_auth_status =
			penmgr_get_snapshot(a->lp->lim->d->pm, a->lp->serial, &s) == 0 &&
			s.has_status;
		if (a->lp->has_auth_status)
			a->lp->auth_status = s.status;
	}
	auth_applied(a);
}

static void auth_read_done(int err, const struct nl_active_limits *al, void *userdata)
{
	struct auth *a = userdata;
	struct lpen *lp = a->lp;
	struct daemon *d = lp->lim->d;
	struct limits_finding f;
	struct nl_cp_req cp = { .op = NL_CP_AUTHORISE };
	char msg[MSG_MAX];

	log_pen_debug(lp->serial, "limits: Active Limits read back: %d, source %u, hash %08" PRIx32,
		      err, al ? al->source : 0, al ? al->limits_hash : 0);
	if (err < 0) {
		auth_fail(a, true, err == -ENOTCONN ? "pen_offline" : "pen_rejected", "verify_hash",
			  "reading Active Limits back failed: %s", strerror(-err));
		return;
	}
	if (limits_verify_active(&a->dec, al, &f) != 0) {
		if (limits_finding_message(&f, msg, sizeof(msg)) < 0)
			snprintf(msg, sizeof(msg), "limits not acknowledged");
		auth_fail(a, true, "hash_mismatch", "verify_hash", "%s: %s (%s)",
			  limits_rule_id(LIMITS_R13_NOT_ACKNOWLEDGED), msg,
			  f.detail == 1 ? "source is not session"
			  : f.detail == 2 ? "other hash" : "other set");
		return;
	}
	cp.u.authorise.session_id = lp->session_id;
	cp.u.authorise.limits_hash = a->dec.hash;
	cp.u.authorise.lifetime_s = a->dec.lifetime_s;
	if (penmgr_cp_request(d->pm, lp->serial, &cp, auth_authorise_done, a, NULL) == 0)
		auth_fail(a, true, "pen_offline", "authorise", "AUTHORISE could not be sent");
}

static void auth_set_limits_done(int err, const struct nl_cp_rsp *rsp, void *userdata)
{
	struct auth *a = userdata;
	struct lpen *lp = a->lp;
	struct daemon *d = lp->lim->d;
	int r;

	if (err < 0) {
		/* Whether the pen applied the set is unknown (8.1): lock it if
		 * it holds it when it is back. */
		auth_fail(a, true, cp_err_code(err), "set_limits", "SET_LIMITS: %s",
			  err == -ETIMEDOUT ? "the pen did not answer in time" : strerror(-err));
		return;
	}
	if (rsp->result != NL_CP_SUCCESS) {
		/* Nothing applied (8.2): the pen keeps its earlier set. */
		auth_fail(a, false, "pen_rejected", "set_limits",
			  "SET_LIMITS: the pen answered %s; nothing was applied",
			  nl_cp_result_name(rsp->result));
		return;
	}
	if (rsp->value != a->dec.hash) {
		auth_fail(a, true, "hash_mismatch", "set_limits",
			  "%s: SET_LIMITS answered hash %08" PRIx32 ", expected %08" PRIx32,
			  limits_rule_id(LIMITS_R13_NOT_ACKNOWLEDGED), rsp->value, a->dec.hash);
		return;
	}
	/* Step 3: a real read of Active Limits, not the indication. */
	r = penmgr_read_limits(d->pm, lp->serial, auth_read_done, a);
	if (r < 0)
		auth_fail(a, true, "pen_offline", "verify_hash", "Active Limits could not be read: %s",
			  strerror(-r));
}

static void map_request(const struct pending_req *pr, struct limits_request *req)
{
	const struct nl_payload_authorise *in = &pr->req.u.authorise;
	int role;

	memset(req, 0, sizeof(*req));
	snprintf(req->pen_serial, sizeof(req->pen_serial), "%s", pr->serial);
	snprintf(req->patient, sizeof(req->patient), "%s", in->patient);
	snprintf(req->operator_id, sizeof(req->operator_id), "%s", in->operator_id);
	role = limits_role_from_name(nl_payload_role_name(in->operator_role));
	req->operator_role = role < 0 ? LIMITS_ROLE_COUNT : (enum limits_role)role;
	req->skin_type = in->skin_type;
	req->contraindications = in->contraindications;
	req->n_zones = in->zone_count <= NL_LIMIT_ZONES_MAX ? in->zone_count : NL_LIMIT_ZONES_MAX;
	memcpy(req->zones, in->zones, req->n_zones);
	req->protocol_scar = in->scar;
	req->protocol_body = in->body;
	req->has_override = in->has_override;
	if (in->has_override) {
		snprintf(req->override_physician, sizeof(req->override_physician), "%s",
			 in->override_physician_id);
		snprintf(req->override_reason, sizeof(req->override_reason), "%s",
			 in->override_reason);
	}
}

static void auth_blocked(struct auth *a)
{
	struct lpen *lp = a->lp;
	struct daemon *d = lp->lim->d;
	struct dreply *r = dreply_new(d, a->pr, NL_PAYLOAD_STATUS_BLOCKED);

	for (size_t i = 0; i < a->dec.n_blocks; i++) {
		cJSON *o = finding_json(&a->dec.blocks[i]);
		char *detail = json_text(o);

		auth_audit(a, "authorise_blocked", "applied", detail, &a->dec.blocks[i]);
		free(detail);
	}
	if (!r) {
		reply_failed(d, a->pr, "evaluation_failed", "evaluate", "out of memory");
		pending_req_free(a->pr);
		free(a);
		return;
	}
	for (size_t i = 0; i < a->dec.n_blocks && i < LIMITS_FINDINGS_MAX; i++) {
		const struct limits_finding *f = &a->dec.blocks[i];
		char msg[MSG_MAX];

		if (limits_finding_message(f, msg, sizeof(msg)) < 0)
			snprintf(msg, sizeof(msg), "%s", limits_rule_name(f->rule));
		/* The MQTT rule is the snake_case name; the message leads with
		 * the rule id. */
		textf(r->block_msg[i], sizeof(r->block_msg[i]), "%s: %s", limits_rule_id(f->rule),
		      msg);
		r->blocks[i] = (struct nl_payload_block){
			.rule = limits_rule_name(f->rule),
			.unit = payload_unit(f->unit),
			.value = f->value,
			.threshold = f->threshold,
			.zone = f->zone < NL_ZONE_COUNT ? f->zone : NL_ZONE_NONE,
			.message = r->block_msg[i],
		};
		r->n_blocks++;
	}
	dreply_send(r);
	free(a);
}

static void authorise_request(struct daemon *d, struct pending_req *pr)
{
	struct dlimits *lim = d->lim;
	struct lpen *lp = lpen_get(lim, pr->serial);
	struct penmgr_snapshot s;
	struct limits_pen_facts facts = { 0 };
	struct nl_cp_req cp = { .op = NL_CP_SET_LIMITS };
	struct lpen view; /* the audit context until the session exists */
	struct auth *a;
	const char *code = "evaluation_failed", *step = "evaluate";
	char msg[MSG_MAX], *detail;
	uint32_t sid = 0;
	int r;

	if (!lp) {
		reply_failed(d, pr, "evaluation_failed", "evaluate", "out of memory");
		pending_req_free(pr);
		return;
	}
	if (lp->authorising) {
		reply_failed(d, pr, "busy", "evaluate",
			     "another authorise for this pen is in progress; retry");
		pending_req_free(pr);
		return;
	}
	a = calloc(1, sizeof(*a));
	if (!a) {
		reply_failed(d, pr, "evaluation_failed", "evaluate", "out of memory");
		pending_req_free(pr);
		return;
	}
	view = *lp;
	view.next = NULL;
	view.s = NULL;
	view.session_id = 0;
	map_request(pr, &view.req);
	a->pr = pr;
	a->lp = &view;
	a->dec.policy_hash = lim->policy_hash;
	detail = json_text(request_json(&view.req));
	auth_audit(a, "authorise_request", NULL, detail, NULL);
	free(detail);

	if (!config_pen_allowed(d->cfg, pr->serial) ||
	    penmgr_get_snapshot(d->pm, pr->serial, &s) < 0 || s.state != PENMGR_STATE_READY) {
		code = "pen_offline";
		step = "connect";
		snprintf(msg, sizeof(msg), "the pen is not connected");
		goto fail;
	}
	if (!s.has_feature || !s.has_status) {
		code = "pen_offline";
		step = "connect";
		snprintf(msg, sizeof(msg), "the pen's Feature and Pen Status are not read yet");
		goto fail;
	}
	facts.feature = s.feature;
	facts.status = s.status;
	/* NL-R15: our session on the pen is open (no SESSION_END record yet)
	 * and the pen has not indicated a Pen Status since it answered
	 * AUTHORISE: that ARMED indication is still on its way, and the IDLE
	 * held is stale. A newer Pen Status is the pen's word. */
	facts.session_open = lp->s && !lp->authorising && lp->has_auth_status &&
			     status_same(&s.status, &lp->auth_status);
	facts.have_cartridge = s.has_cartridge;
	facts.cartridge = s.cartridge;
	if (s.has_limits && s.limits.source == NL_LIMIT_SOURCE_FACTORY) {
		facts.have_factory_set = true;
		facts.factory_set = s.limits.set;
	}
	r = limits_authorise(lim->policy, &view.req, &facts, &history_ops, lim,
			     journal_now_ms() / 1000, &a->dec);
	if (r < 0) {
		snprintf(msg, sizeof(msg), "the rules could not be evaluated: %s", strerror(-r));
		goto fail;
	}
	if (a->dec.verdict == LIMITS_VERDICT_BLOCK) {
		auth_blocked(a); /* frees a */
		return;
	}
	/* The session id: above any this pen was given (journal and memory). */
	r = journal_limits_max_session_id(lim->jl, lp->serial, &sid);
	if (r < 0) {
		snprintf(msg, sizeof(msg), "the journal could not be read: %s", strerror(-r));
		goto fail;
	}
	if (lp->last_id > sid)
		sid = lp->last_id;
	if (sid >= SESSION_ID_MAX) {
		snprintf(msg, sizeof(msg), "no session id left for this pen");
		goto fail;
	}
	sid++;
	/* The pen is IDLE (NL-R15) and has said so since our last AUTHORISE:
	 * whatever session was supervised is over (its SESSION_END record
	 * may still be in the pen's store). */
	if (lp->s)
		lpen_drop_session(lp);
	lp->req = view.req;
	lp->session_id = sid;
	lp->last_id = sid;
	/* Before SET_LIMITS: the engine expects the LIMIT APPLIED it causes. */
	r = limits_session_new(lim->policy, &a->dec, &lp->req, &s.feature, &history_ops, lim, sid,
			       mono_ms(), &lp->s);
	if (r < 0) {
		lp->s = NULL;
		snprintf(msg, sizeof(msg), "supervision could not be set up: %s", strerror(-r));
		goto fail;
	}
	lp->gen++;
	a->gen = lp->gen;
	a->lp = lp;
	lp->authorising = true;
	lp->cp_inflight = 0;
	log_pen_info(lp->serial, "limits: authorising session %" PRIu32 ", limits %08" PRIx32, sid,
		     a->dec.hash);
	cp.u.limits = a->dec.set;
	if (penmgr_cp_request(d->pm, lp->serial, &cp, auth_set_limits_done, a, NULL) == 0)
		auth_fail(a, false, "pen_offline", "set_limits", "SET_LIMITS could not be sent");
	return;

fail: {
	cJSON *o = cJSON_CreateObject();

	if (o) {
		cJSON_AddStringToObject(o, "code", code);
		cJSON_AddStringToObject(o, "step", step);
		cJSON_AddStringToObject(o, "message", msg);
	}
	detail = json_text(o);
	auth_audit(a, "authorise_failed", "failed", detail, NULL);
	free(detail);
	dreply_fail(d, pr, code, step, NULL, msg);
	free(a);
}
}

/* ---- unlock ------------------------------------------------------------------- */

static void unlock_audit(struct lpen *lp, const char *kind, enum limits_role role,
			 const struct pending_req *pr, const char *why)
{
	cJSON *o = cJSON_CreateObject();
	char *detail;

	if (o) {
		const char *rs = nl_lock_reason_name(pr->req.u.unlock.reason);

		if (rs)
			cJSON_AddStringToObject(o, "reason", rs);
		if (pr->req.u.unlock.reason_text[0])
			cJSON_AddStringToObject(o, "reason_text", pr->req.u.unlock.reason_text);
		cJSON_AddBoolToObject(o, "engine_locked", lp->engine_locked);
		if (why)
			cJSON_AddStringToObject(o, "message", why);
	}
	detail = json_text(o);
	(void)audit(lp->lim, &(struct journal_audit){
				     .pen_serial = lp->serial,
				     .session_id = lp->s ? lp->session_id : 0,
				     .kind = kind,
				     .actor_id = pr->req.u.unlock.operator_id,
				     .actor_role = limits_role_name(role),
				     .patient = lp->s ? lp->req.patient : NULL,
				     .action = "unlock",
				     .result = strcmp(kind, "unlock") == 0 ? "applied" : "failed",
				     .has_policy_hash = true,
				     .policy_hash = lp->lim->policy_hash,
				     .detail = detail,
			     });
	free(detail);
}

static void unlock_done(int err, const struct nl_cp_rsp *rsp, void *userdata)
{
	struct unlock_ctx *u = userdata;
	struct lpen *lp = u->lp;
	struct daemon *d = lp->lim->d;
	struct dreply *r;
	char msg[MSG_MAX];

	if (err < 0 || rsp->result != NL_CP_SUCCESS) {
		if (err < 0)
			snprintf(msg, sizeof(msg), "UNLOCK: %s",
				 err == -ETIMEDOUT ? "the pen did not answer in time" : strerror(-err));
		else
			snprintf(msg, sizeof(msg), "the pen answered %s",
				 nl_cp_result_name(rsp->result));
		unlock_audit(lp, "unlock_refused", u->role, u->pr, msg);
		dreply_fail(d, u->pr, err < 0 ? cp_err_code(err) : "pen_rejected", "command", NULL,
			    msg);
		free(u);
		return;
	}
	lp->engine_locked = false;
	if (lp->s && lp->gen == u->gen) {
		int rr = limits_session_unlocked(lp->s, u->role, u->reason);

		if (rr < 0)
			log_pen_warning(lp->serial, "limits: unlock not recorded by the engine: %s",
					strerror(-rr));
	}
	unlock_audit(lp, "unlock", u->role, u->pr, NULL);
	log_pen_notice(lp->serial, "limits: unlocked by %s (%s): %s", u->pr->req.u.unlock.operator_id,
		       limits_role_name(u->role), u->reason);
	r = dreply_new(d, u->pr, NL_PAYLOAD_STATUS_OK);
	if (!r) {
		reply_failed(d, u->pr, "pen_rejected", "verify", "out of memory");
		pending_req_free(u->pr);
	} else {
		(void)nl_payload_result_locked(false, &r->result);
		dreply_send(r);
	}
	publish_pen_state(d, lp->serial, false);
	free(u);
}

static bool unlock_request(struct daemon *d, struct pending_req *pr)
{
	struct dlimits *lim = d->lim;
	struct lpen *lp = lpen_find(lim, pr->serial);
	struct penmgr_snapshot s;
	bool locked = false, snap;
	const char *reason = pr->req.u.unlock.reason_text[0] ? pr->req.u.unlock.reason_text : NULL;
	struct nl_cp_req cp = { .op = NL_CP_UNLOCK, .u.reason = pr->req.u.unlock.reason };
	struct unlock_ctx *u;
	int role, r;

	if (!lp)
		return false;
	snap = penmgr_get_snapshot(d->pm, pr->serial, &s) == 0;
	if (snap && s.has_status)
		locked = s.status.state == NL_PEN_STATE_LOCKED ||
			 (s.status.flags & (NL_STATUS_LOCKED | NL_STATUS_LIMIT_REACHED));
	if (!lp->engine_locked && !(lp->s && locked))
		return false; /* today's unlock: daemon.c */
	role = limits_role_from_name(nl_payload_role_name(pr->req.u.unlock.operator_role));
	if (role < 0)
		role = LIMITS_ROLE_COUNT;
	r = limits_unlock_check((enum limits_role)role, reason);
	if (r == -EPERM || (r < 0 && role == LIMITS_ROLE_COUNT)) {
		unlock_audit(lp, "unlock_refused", (enum limits_role)role, pr, "not a physician");
		dreply_fail(d, pr, "forbidden", "evaluate", "params.operator.role",
			    "the limits engine locked this pen: only a physician may unlock it");
		return true;
	}
	if (r < 0) {
		unlock_audit(lp, "unlock_refused", (enum limits_role)role, pr, "no reason given");
		dreply_fail(d, pr, "reason_required", "evaluate", "params.reason_text",
			    "the limits engine locked this pen: params.reason_text must say why "
			    "the unlock is authorised");
		return true;
	}
	if (!config_pen_allowed(d->cfg, pr->serial) || !snap || s.state != PENMGR_STATE_READY) {
		unlock_audit(lp, "unlock_refused", (enum limits_role)role, pr, "pen not connected");
		dreply_fail(d, pr, "pen_offline", "connect", NULL, "the pen is not connected");
		return true;
	}
	u = calloc(1, sizeof(*u));
	if (!u) {
		reply_failed(d, pr, "pen_rejected", "command", "out of memory");
		pending_req_free(pr);
		return true;
	}
	u->lp = lp;
	u->pr = pr;
	u->gen = lp->gen;
	u->role = (enum limits_role)role;
	snprintf(u->reason, sizeof(u->reason), "%s", reason);
	if (penmgr_cp_request(d->pm, pr->serial, &cp, unlock_done, u, NULL) == 0) {
		free(u);
		reply_failed(d, pr, "busy", "command", "the pen manager refused the command");
		pending_req_free(pr);
	}
	return true;
}

/* ---- hooks ---------------------------------------------------------------------- */

bool dlimits_request(struct daemon *d, struct pending_req *pr)
{
	if (!d->lim)
		return false;
	switch ((enum nl_payload_op)pr->req.op) {
	case NL_PAYLOAD_OP_AUTHORISE:
		authorise_request(d, pr);
		return true;
	case NL_PAYLOAD_OP_UNLOCK:
		return unlock_request(d, pr);
	case NL_PAYLOAD_OP_SET_TIME:
	case NL_PAYLOAD_OP_LOCK:
	case NL_PAYLOAD_OP_SET_ZONE:
	case NL_PAYLOAD_OP_STOP_SESSION:
	case NL_PAYLOAD_OP_READ_STATE:
	case NL_PAYLOAD_OP_PAIR:
	case NL_PAYLOAD_OP_RELEASE:
	case NL_PAYLOAD_OP_COUNT:
	default:
		return false;
	}
}

void dlimits_record(struct daemon *d, const char *serial, const struct nl_record *rec,
		    const char *record_id)
{
	struct dlimits *lim = d->lim;
	uint64_t t0 = d->opts->stats ? mono_us() : 0;
	struct lpen *lp;
	int r;

	if (!lim)
		return;
	/* treatment_sessions: the pen's own account of the sessions we
	 * authorised (also those authorised before a restart). */
	if (rec->hdr.session_id && rec->hdr.session_id <= SESSION_ID_MAX) {
		int64_t at = rec->hdr.flags & NL_REC_CLOCK_SET ? nl_payload_pen_time_ms(rec->hdr.pen_time)
							       : journal_now_ms();

		if (rec->hdr.type == NL_RECORD_SESSION_START) {
			char hex[2 * NL_CARTRIDGE_UID_LEN + 1];
			bool has = !uid_zero(rec->u.session_start.cartridge_uid);

			if (has)
				uid_hex(rec->u.session_start.cartridge_uid, hex);
			r = journal_limits_session_started(lim->jl, serial, rec->hdr.session_id, at,
							   has ? hex : NULL);
			if (r < 0)
				log_pen_err(serial, "limits: session start: %s", strerror(-r));
		} else if (rec->hdr.type == NL_RECORD_SESSION_END) {
			r = journal_limits_session_ended(lim->jl, serial, rec->hdr.session_id, at);
			if (r < 0)
				log_pen_err(serial, "limits: session end: %s", strerror(-r));
		}
	}
	lp = lpen_find(lim, serial);
	if (!lp || !lp->s)
		return;
	{
		struct limits_action acts[ACTS_MAX];
		int n = limits_session_record(lp->s, rec, mono_ms(), acts, ACTS_MAX);

		if (n > 0)
			handle_actions(lp, acts, n, record_id, t0);
	}
	if (rec->hdr.type == NL_RECORD_SESSION_END && rec->hdr.session_id == lp->session_id &&
	    !lp->authorising) {
		log_pen_info(serial, "limits: session %" PRIu32 " ended, supervision over",
			     lp->session_id);
		lpen_drop_session(lp);
	}
}

bool dlimits_reports_limit_record(struct daemon *d, const char *serial,
				  const struct nl_record *rec)
{
	const struct nl_rec_limit *l = &rec->u.limit;
	struct lpen *lp;

	if (!d->lim || rec->hdr.type != NL_RECORD_LIMIT)
		return false;
	lp = lpen_find(d->lim, serial);
	/* While authorising, the engine's actions are left to the procedure. */
	if (!lp || !lp->s || lp->authorising ||
	    (rec->hdr.session_id != lp->session_id && rec->hdr.session_id != 0))
		return false;
	switch ((enum nl_limit_event)l->event) {
	case NL_LIMIT_EVENT_CLAMP:
	case NL_LIMIT_EVENT_PASS_WARN:
	case NL_LIMIT_EVENT_TIME_WARN:
	case NL_LIMIT_EVENT_FALLBACK:
		return true;
	case NL_LIMIT_EVENT_LOCK:
		/* The gateway's own LOCK has its action alert; of the pen's
		 * locks the engine judges the pass and needle-on locks. */
		return l->origin == NL_LIMIT_ORIGIN_GATEWAY || l->reason == NL_LOCK_REASON_PASSES ||
		       l->reason == NL_LOCK_REASON_NEEDLE_ON;
	case NL_LIMIT_EVENT_APPLIED:
	case NL_LIMIT_EVENT_UNLOCK:
	case NL_LIMIT_EVENT_OVERRIDE:
	case NL_LIMIT_EVENT_END:
	default:
		return false;
	}
}

void dlimits_live(struct daemon *d, const char *serial, const struct nl_live *live)
{
	struct dlimits *lim = d->lim;
	struct limits_action acts[ACTS_MAX];
	uint64_t t0;
	struct lpen *lp;
	int n;

	if (!lim)
		return;
	lp = lpen_find(lim, serial);
	if (!lp || !lp->s)
		return;
	t0 = d->opts->stats ? mono_us() : 0;
	n = limits_session_live(lp->s, live, mono_ms(), acts, ACTS_MAX);
	if (n > 0)
		handle_actions(lp, acts, n, NULL, t0);
}

/* The pen is back (protocol 10.8 step 4): the records of the disconnected
 * period came in through catch-up; check what limits it holds now. */
static void link_ready(struct dlimits *lim, struct lpen *lp)
{
	struct daemon *d = lim->d;
	struct penmgr_snapshot s;
	uint32_t expected = 0;

	if (penmgr_get_snapshot(d->pm, lp->serial, &s) < 0 || !s.has_limits)
		return;
	if (lp->relock && !lp->s && s.limits.source == NL_LIMIT_SOURCE_SESSION &&
	    s.limits.limits_hash == lp->relock_hash) {
		struct limits_action a = {
			.kind = LIMITS_ACTION_LOCK,
			.rule = LIMITS_R13_NOT_ACKNOWLEDGED,
			.severity = LIMITS_SEVERITY_CRITICAL,
			.send = true,
			.lock_reason = NL_LOCK_REASON_POLICY,
		};

		log_pen_warning(lp->serial, "limits: the pen holds limits %08" PRIx32
				" that were never verified: locking it", lp->relock_hash);
		lp->relock = false;
		handle_actions(lp, &a, 1, NULL, 0);
		return;
	}
	lp->relock = false;
	if (!lp->s || lp->authorising || lp->cp_inflight)
		return;
	(void)limits_session_expected_set(lp->s, &expected);
	if (s.limits.source == NL_LIMIT_SOURCE_SESSION && s.limits.limits_hash != expected) {
		struct limits_action acts[2] = {
			{ .kind = LIMITS_ACTION_ALERT,
			  .alert = LIMITS_ALERT_HASH_MISMATCH,
			  .rule = LIMITS_R13_NOT_ACKNOWLEDGED,
			  .severity = LIMITS_SEVERITY_CRITICAL,
			  .measured = s.limits.limits_hash,
			  .threshold = expected },
			{ .kind = LIMITS_ACTION_LOCK,
			  .rule = LIMITS_R13_NOT_ACKNOWLEDGED,
			  .severity = LIMITS_SEVERITY_CRITICAL,
			  .send = true,
			  .lock_reason = NL_LOCK_REASON_POLICY },
		};

		log_pen_warning(lp->serial, "limits: after link loss the pen holds %08" PRIx32
				", expected %08" PRIx32, s.limits.limits_hash, expected);
		handle_actions(lp, acts, 2, NULL, 0);
	} else {
		log_pen_info(lp->serial, "limits: pen back, supervision of session %" PRIu32
			     " resumes", lp->session_id);
	}
}

void dlimits_link(struct daemon *d, const char *serial, enum penmgr_state from,
		  enum penmgr_state to)
{
	struct dlimits *lim = d->lim;
	struct lpen *lp;

	(void)from;
	if (!lim)
		return;
	lp = lpen_find(lim, serial);
	if (!lp)
		return;
	if (to == PENMGR_STATE_READY)
		link_ready(lim, lp);
	else if (from == PENMGR_STATE_READY && lp->s)
		log_pen_notice(serial, "limits: link lost during session %" PRIu32
			       "; the pen keeps enforcing its limits", lp->session_id);
}

/* ---- policy and lifecycle --------------------------------------------------------- */

/* Loads the policy at path: 0 with *ret (defaults when the file does not
 * exist: *ret_defaults), -EINVAL with the errors printed by emit, -errno. */
static int policy_load(const char *path, struct limits_policy **ret, bool *ret_defaults,
		       void (*emit)(const char *line))
{
	struct limits_policy *p;
	int r;

	r = limits_policy_new(&p);
	if (r < 0)
		return r;
	*ret_defaults = false;
	r = limits_policy_load(p, path);
	if (r == -ENOENT) {
		*ret_defaults = true;
		*ret = p;
		return 0;
	}
	if (r < 0 || limits_policy_n_errors(p) > 0) {
		char buf[512];

		for (size_t i = 0; i < limits_policy_n_errors(p); i++)
			emit(limits_policy_error(p, i));
		if (limits_policy_n_errors(p) == 0) {
			snprintf(buf, sizeof(buf), "%s: %s", path, strerror(-r));
			emit(buf);
		}
		limits_policy_free(p);
		return r < 0 ? r : -EINVAL;
	}
	*ret = p;
	return 0;
}

static void emit_log(const char *line)
{
	log_err("limits policy: %s", line);
}

static void emit_stderr(const char *line)
{
	fprintf(stderr, "%s\n", line);
}

int daemon_check_policy(const struct config *cfg)
{
	struct limits_policy *p = NULL;
	const char *path = config_str(cfg, CONFIG_LIMITS_POLICY);
	bool defaults = false;
	int r = policy_load(path, &p, &defaults, emit_stderr);

	if (r < 0) {
		fprintf(stderr, "needlelinkd: limits policy %s invalid\n", path);
		return r;
	}
	if (defaults)
		printf("limits policy %s not found: built-in defaults\n", path);
	else
		printf("limits policy %s valid, hash %08" PRIx32 "\n", path,
		       limits_policy_hash(p));
	limits_policy_free(p);
	return 0;
}

int dlimits_new(struct daemon *d)
{
	struct dlimits *lim = calloc(1, sizeof(*lim));
	const char *path = config_str(d->cfg, CONFIG_LIMITS_POLICY);
	bool defaults = false;
	int r;

	if (!lim)
		return -ENOMEM;
	lim->d = d;
	r = policy_load(path, &lim->policy, &defaults, emit_log);
	if (r < 0) {
		log_err("limits policy %s invalid: not starting", path);
		free(lim);
		return r;
	}
	lim->policy_hash = limits_policy_hash(lim->policy);
	if (defaults)
		log_notice("limits policy %s not found: built-in defaults (hash %08" PRIx32 ")",
			   path, lim->policy_hash);
	else
		log_info("limits policy %s loaded%s%s (hash %08" PRIx32 ")", path,
			 limits_policy_name(lim->policy)[0] ? ": " : "",
			 limits_policy_name(lim->policy), lim->policy_hash);
	r = journal_limits_new(d->j, &lim->jl);
	if (r < 0) {
		log_err("journal: limits tables: %s", strerror(-r));
		limits_policy_free(lim->policy);
		free(lim);
		return r;
	}
	d->lim = lim;
	return 0;
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

void dlimits_free(struct daemon *d)
{
	struct dlimits *lim = d->lim;

	if (!lim)
		return;
	if (d->opts->stats) {
		if (lim->n_react) {
			uint32_t *v = lim->react;
			size_t n = lim->n_react;

			qsort(v, n, sizeof(*v), cmp_u32);
			log_notice("stats: limits reaction us p50 %u p90 %u p99 %u max %u (%zu actions)",
				   v[n / 2], v[n * 9 / 10], v[n * 99 / 100], v[n - 1], n);
		} else {
			log_notice("stats: limits reaction no samples");
		}
	}
	sd_event_source_unref(lim->tick);
	while (lim->pens) {
		struct lpen *lp = lim->pens;

		lim->pens = lp->next;
		limits_session_free(lp->s);
		free(lp);
	}
	journal_limits_free(lim->jl);
	limits_policy_free(lim->policy);
	free(lim->react);
	free(lim);
	d->lim = NULL;
}
