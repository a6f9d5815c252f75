/* SPDX-License-Identifier: MIT */
#include "engine.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "limits-internal.h"
#include "needlelink/cp.h"
#include "needlelink/zone.h"

#define DAY_S 86400

/* ---- helpers ------------------------------------------------------------- */

static uint32_t min_nonzero(uint32_t a, uint32_t b)
{
	/* 0 means "no limit", the least strict value (protocol.md 7.7). */
	if (!a)
		return b;
	if (!b)
		return a;
	return a < b ? a : b;
}

static bool blank(const char *s)
{
	if (!s)
		return true;
	for (; *s; s++)
		if (*s != ' ' && *s != '\t')
			return false;
	return true;
}

static bool uid_zero(const uint8_t uid[NL_CARTRIDGE_UID_LEN])
{
	for (unsigned i = 0; i < NL_CARTRIDGE_UID_LEN; i++)
		if (uid[i])
			return false;
	return true;
}

static void add_finding(struct limits_finding *list, size_t *n, enum limits_rule rule,
			unsigned action, uint8_t zone, enum limits_unit unit, int64_t value,
			int64_t threshold, uint32_t detail)
{
	struct limits_finding *f;

	if (*n >= LIMITS_FINDINGS_MAX)
		return; /* 48 > every rule x every zone that can block: not reached */
	f = &list[(*n)++];
	f->rule = rule;
	f->action = action;
	f->severity =
		action & LIMITS_ACT_BLOCK ? LIMITS_SEVERITY_CRITICAL : LIMITS_SEVERITY_WARNING;
	f->zone = zone;
	f->unit = unit;
	f->value = value;
	f->threshold = threshold;
	f->detail = detail;
}

/* ---- (a) the effective limit set ---------------------------------------- */

struct combine {
	const struct limits_values *v;
	const struct limits_request *req;
	const struct limits_pen_facts *pen;
};

static void take(uint32_t *cap, enum limits_rule *rule, uint32_t value, enum limits_rule r)
{
	if (value && value < *cap) {
		*cap = value;
		*rule = r;
	}
}

/* The strictest depth cap for zone z (0: zones not listed). */
static uint16_t zone_cap(const struct combine *c, unsigned z, enum limits_rule *ret_rule)
{
	const struct limits_values *v = c->v;
	const struct limits_request *req = c->req;
	uint32_t clinical = UINT32_MAX, cap;
	enum limits_rule rule = LIMITS_R02_ZONE_DEPTH_CAP, crule;
	unsigned pz = z;

	/* Deep caps of the scar and body zones need their protocol; without it
	 * the zone is treated like a zone not planned. */
	if ((z == NL_ZONE_SCAR && !req->protocol_scar) ||
	    ((z == NL_ZONE_STRETCH_MARKS || z == NL_ZONE_BODY) && !req->protocol_body))
		pz = NL_ZONE_NONE;

	/* Clinic tier and plan tier. */
	take(&clinical, &rule, v->max_depth_um, LIMITS_R01_DEVICE_MAX_DEPTH);
	take(&clinical, &rule, v->zone_cap_um[pz], LIMITS_R02_ZONE_DEPTH_CAP);
	if (req->operator_role != LIMITS_ROLE_PHYSICIAN)
		take(&clinical, &rule, v->non_physician_cap_um, LIMITS_R05_OPERATOR_ROLE);
	if (z < NL_ZONE_COUNT)
		take(&clinical, &rule, req->plan_cap_um[z], LIMITS_RULE_NONE);
	if (req->skin_type >= 5 && (v->action[LIMITS_R04_SKIN_TYPE] & LIMITS_ACT_CLAMP)) {
		uint32_t reduced = clinical > v->skin_reduction_um + LIMITS_CAP_FLOOR_UM
					   ? clinical - v->skin_reduction_um
					   : LIMITS_CAP_FLOOR_UM;
		take(&clinical, &rule, reduced, LIMITS_R04_SKIN_TYPE);
	}
	cap = clinical;
	crule = rule;

	/* Factory tier: never exceeded, whatever the floor above says. */
	if (c->pen->have_factory_set)
		take(&cap, &crule, nl_limit_set_zone_cap(&c->pen->factory_set, z),
		     LIMITS_R01_DEVICE_MAX_DEPTH);
	take(&cap, &crule, c->pen->feature.depth_max_um, LIMITS_R01_DEVICE_MAX_DEPTH);
	if (c->pen->have_cartridge && c->pen->cartridge.state != NL_CARTRIDGE_NONE)
		take(&cap, &crule, c->pen->cartridge.needle_length_um, LIMITS_R03_NEEDLE_LENGTH);
	*ret_rule = crule;
	return (uint16_t)cap;
}

static void zone_passes(const struct combine *c, unsigned z, uint8_t *ret_warn, uint8_t *ret_lock)
{
	const struct limits_values *v = c->v;
	unsigned act = v->action[LIMITS_R06_PASSES];
	uint32_t warn = act & LIMITS_ACT_WARN ? v->pass_warn : 0;
	uint32_t lock = act & LIMITS_ACT_LOCK ? v->pass_lock : 0;

	if (c->pen->have_factory_set) {
		const struct nl_limit_set *f = &c->pen->factory_set;
		const struct nl_zone_limit *e = z ? nl_limit_set_find(f, z) : NULL;
		warn = min_nonzero(warn, e ? e->pass_warn : f->pass_warn);
		lock = min_nonzero(lock, e ? e->pass_lock : f->pass_lock);
	}
	if (warn && lock && warn > lock)
		warn = lock;
	*ret_warn = (uint8_t)warn;
	*ret_lock = (uint8_t)lock;
}

static int cmp_u8(const void *a, const void *b)
{
	return (int)*(const uint8_t *)a - (int)*(const uint8_t *)b;
}

static void build_set(const struct combine *c, struct limits_decision *d)
{
	const struct limits_values *v = c->v;
	const struct limits_request *req = c->req;
	struct nl_limit_set *s = &d->set;
	uint8_t zones[NL_ZONE_COUNT];
	bool listed[NL_ZONE_COUNT] = {false};
	unsigned n = 0, act;
	uint32_t warn, lock, life;

	memset(s, 0, sizeof(*s));
	s->format = 1;
	s->flags = 0;
	s->depth_cap_um = zone_cap(c, NL_ZONE_NONE, &d->cap_rule[0]);
	zone_passes(c, NL_ZONE_NONE, &s->pass_warn, &s->pass_lock);

	act = v->action[LIMITS_R07_NEEDLE_ON];
	warn = act & LIMITS_ACT_WARN ? v->needle_on_warn_s : 0;
	lock = act & LIMITS_ACT_LOCK ? v->needle_on_lock_s : 0;
	if (c->pen->have_factory_set) {
		warn = min_nonzero(warn, c->pen->factory_set.needle_on_warn_s);
		lock = min_nonzero(lock, c->pen->factory_set.needle_on_lock_s);
	}
	if (warn && lock && warn > lock)
		warn = lock;
	s->needle_on_warn_s = (uint16_t)warn;
	s->needle_on_lock_s = (uint16_t)lock;

	life = v->lifetime_s;
	life = min_nonzero(life, req->plan_lifetime_s);
	if (life > NL_LIFETIME_MAX_S)
		life = NL_LIFETIME_MAX_S;
	s->lifetime_s = life;

	/* Entries: every planned zone, and every zone the factory set lists
	 * (its own cap may be below our default), in ascending order. */
	for (unsigned i = 0; i < req->n_zones; i++)
		if (!listed[req->zones[i]]) {
			listed[req->zones[i]] = true;
			zones[n++] = req->zones[i];
		}
	if (c->pen->have_factory_set)
		for (unsigned i = 0; i < c->pen->factory_set.zone_count; i++) {
			unsigned z = c->pen->factory_set.zones[i].zone;
			if (nl_zone_valid(z) && !listed[z]) {
				listed[z] = true;
				zones[n++] = (uint8_t)z;
			}
		}
	qsort(zones, n, 1, cmp_u8);
	for (unsigned i = 0; i < n && i < NL_LIMIT_ZONES_MAX; i++) {
		struct nl_zone_limit *e = &s->zones[s->zone_count];
		enum limits_rule r;
		bool planned = false;

		for (unsigned j = 0; j < req->n_zones; j++)
			planned |= req->zones[j] == zones[i];
		e->zone = zones[i];
		if (planned) {
			e->depth_cap_um = zone_cap(c, zones[i], &r);
		} else {
			uint16_t fcap = nl_limit_set_zone_cap(&c->pen->factory_set, zones[i]);
			e->depth_cap_um = fcap < s->depth_cap_um ? fcap : s->depth_cap_um;
			r = fcap < s->depth_cap_um ? LIMITS_R01_DEVICE_MAX_DEPTH : d->cap_rule[0];
		}
		zone_passes(c, zones[i], &e->pass_warn, &e->pass_lock);
		d->cap_rule[1 + s->zone_count] = r;
		s->zone_count++;
	}
}

/* ---- (a) the rules that block -------------------------------------------- */

static int check_request(const struct limits_request *req, const struct limits_pen_facts *pen)
{
	bool seen[NL_ZONE_COUNT] = {false};

	if (blank(req->patient) || blank(req->operator_id) ||
	    (unsigned)req->operator_role >= LIMITS_ROLE_COUNT || req->skin_type < 1 ||
	    req->skin_type > 6 || req->n_zones < 1 || req->n_zones > NL_LIMIT_ZONES_MAX ||
	    (req->contraindications & ~LIMITS_CI_ALL))
		return -EINVAL;
	for (unsigned i = 0; i < req->n_zones; i++) {
		if (!nl_zone_valid(req->zones[i]) || seen[req->zones[i]])
			return -EINVAL;
		seen[req->zones[i]] = true;
	}
	if (req->has_override && (blank(req->override_physician) || blank(req->override_reason)))
		return -EINVAL;
	if (req->plan_lifetime_s > NL_LIFETIME_MAX_S)
		return -EINVAL;
	for (unsigned z = 0; z < NL_ZONE_COUNT; z++)
		if (req->plan_cap_um[z] > NL_DEPTH_MAX_UM)
			return -EINVAL;
	if (pen->feature.depth_max_um < 1 || pen->feature.depth_max_um > NL_DEPTH_MAX_UM)
		return -EINVAL;
	if (pen->have_factory_set) {
		uint32_t h;
		if (nl_limit_set_hash(&pen->factory_set, &h) < 0)
			return -EINVAL;
	}
	return 0;
}

static void check_ready(const struct limits_pen_facts *pen, struct limits_decision *d)
{
	const struct nl_pen_status *st = &pen->status;
	unsigned cause = 0;

	if (pen->feature.proto_major != NL_PROTO_MAJOR)
		cause = LIMITS_NOT_READY_VERSION;
	else if (st->state == NL_PEN_STATE_LOCKED || (st->flags & NL_STATUS_LOCKED))
		cause = LIMITS_NOT_READY_LOCKED;
	else if (st->state == NL_PEN_STATE_FAULT || (st->flags & NL_STATUS_FAULT))
		cause = LIMITS_NOT_READY_FAULT;
	else if (st->state != NL_PEN_STATE_IDLE || pen->session_open)
		cause = LIMITS_NOT_READY_STATE;
	else if (st->flags & NL_STATUS_STORE_FULL)
		cause = LIMITS_NOT_READY_STORE_FULL;
	else if ((pen->feature.flags & NL_FEAT_CARTRIDGE_READER) &&
		 (!pen->have_cartridge || pen->cartridge.state == NL_CARTRIDGE_NONE))
		cause = LIMITS_NOT_READY_NO_CARTRIDGE;
	if (cause)
		add_finding(d->blocks, &d->n_blocks, LIMITS_R15_PEN_NOT_READY, LIMITS_ACT_BLOCK,
			    NL_ZONE_NONE, LIMITS_UNIT_NONE, 0, 0, cause);
}

/* NL-R11 causes (finding.detail). */
enum { EXPIRED_FLAG = 1, EXPIRED_DATE = 2, UNREADABLE = 3, REJECTED = 4 };

static int check_cartridge(const struct limits_pen_facts *pen, const struct limits_request *req,
			   const struct limits_history_ops *h, void *hd, struct limits_decision *d)
{
	const struct nl_cartridge_info *ci = &pen->cartridge;
	const struct nl_pen_status *st = &pen->status;
	struct limits_cartridge_use use = {0};
	unsigned expired = 0;
	int r;

	if (!pen->have_cartridge || ci->state == NL_CARTRIDGE_NONE)
		return 0;
	/* NL-R10: used before, by the pen's own account or by the journal's
	 * (the journal sees every pen of the clinic). */
	if (!uid_zero(ci->uid)) {
		r = h->cartridge_uses(hd, ci->uid, req->patient, &use);
		if (r < 0)
			return r;
	}
	if (use.sessions > 0 || ci->state == NL_CARTRIDGE_IN_USE ||
	    (st->flags & NL_STATUS_CARTRIDGE_USED))
		add_finding(d->blocks, &d->n_blocks, LIMITS_R10_CARTRIDGE_REUSED, LIMITS_ACT_BLOCK,
			    NL_ZONE_NONE, LIMITS_UNIT_SESSIONS, use.sessions ? use.sessions : 1, 0,
			    use.other_patient);
	/* NL-R11: expired by the pen's flag or by date (pen clock set, pen time
	 * at or after the expiry), or unreadable (no uid). */
	if (st->flags & NL_STATUS_CARTRIDGE_EXPIRED)
		expired = EXPIRED_FLAG;
	else if (ci->expiry && !(st->flags & NL_STATUS_CLOCK_NOT_SET) && st->pen_time >= ci->expiry)
		expired = EXPIRED_DATE;
	else if (uid_zero(ci->uid))
		expired = UNREADABLE;
	else if ((ci->state == NL_CARTRIDGE_REJECTED ||
		  (st->flags & NL_STATUS_CARTRIDGE_REJECTED)) &&
		 use.sessions == 0 && !(st->flags & NL_STATUS_CARTRIDGE_USED))
		expired = REJECTED;
	if (expired)
		add_finding(d->blocks, &d->n_blocks, LIMITS_R11_CARTRIDGE_EXPIRED, LIMITS_ACT_BLOCK,
			    NL_ZONE_NONE, LIMITS_UNIT_NONE, 0, 0, expired);
	return 0;
}

static void check_contraindications(const struct limits_values *v, const struct limits_request *req,
				    struct limits_decision *d)
{
	for (unsigned b = 0; b < LIMITS_CI_COUNT; b++) {
		uint32_t bit = 1u << b;
		if (!(req->contraindications & bit))
			continue;
		if ((v->action[LIMITS_R12_CONTRAINDICATION] & LIMITS_ACT_BLOCK) &&
		    !(v->ci_warn_only & bit))
			add_finding(d->blocks, &d->n_blocks, LIMITS_R12_CONTRAINDICATION,
				    LIMITS_ACT_BLOCK, NL_ZONE_NONE, LIMITS_UNIT_NONE, 0, 0, bit);
		else
			add_finding(d->warnings, &d->n_warnings, LIMITS_R12_CONTRAINDICATION,
				    LIMITS_ACT_WARN, NL_ZONE_NONE, LIMITS_UNIT_NONE, 0, 0, bit);
	}
}

static int check_interval(const struct limits_values *v, const struct limits_request *req,
			  const struct limits_history_ops *h, void *hd, int64_t now,
			  struct limits_decision *d)
{
	unsigned act = v->action[LIMITS_R08_INTERVAL];
	int64_t need = (int64_t)v->interval_days * DAY_S;

	/* The override relaxes the interval down to the clinic's floor, never
	 * below (the floor itself is bounded at 21 days by policy.c). */
	if (req->has_override)
		need = (int64_t)v->override_min_days * DAY_S;
	for (unsigned i = 0; i < req->n_zones; i++) {
		int64_t t, elapsed, threshold_days = need / DAY_S;
		int r = h->last_session(hd, req->patient, req->zones[i], &t);

		if (r == -ENOENT)
			continue;
		if (r < 0)
			return r;
		elapsed = now - t;
		if (elapsed < 0)
			elapsed = 0; /* a clock step: count it as "today" */
		if (elapsed >= need) {
			if (req->has_override && elapsed < (int64_t)v->interval_days * DAY_S)
				d->override_applied = true;
			continue;
		}
		if (act & LIMITS_ACT_BLOCK)
			add_finding(d->blocks, &d->n_blocks, LIMITS_R08_INTERVAL, LIMITS_ACT_BLOCK,
				    req->zones[i], LIMITS_UNIT_DAYS, elapsed / DAY_S,
				    threshold_days, 0);
		else
			add_finding(d->warnings, &d->n_warnings, LIMITS_R08_INTERVAL,
				    LIMITS_ACT_WARN, req->zones[i], LIMITS_UNIT_DAYS,
				    elapsed / DAY_S, threshold_days, 0);
	}
	return 0;
}

static int check_course(const struct limits_values *v, const struct limits_request *req,
			const struct limits_history_ops *h, void *hd, int64_t now,
			struct limits_decision *d)
{
	unsigned act = v->action[LIMITS_R09_COURSE], n;
	int64_t k;
	int r;

	r = h->count_sessions(hd, req->patient, now - (int64_t)v->course_days * DAY_S, &n);
	if (r < 0)
		return r;
	/* k: the number this session would have in the course. Like passes,
	 * "warn at 6" warns on the 6th, "block at 8" allows the 8th and
	 * refuses the 9th. */
	k = (int64_t)n + 1;
	if (k > v->course_block && (act & LIMITS_ACT_BLOCK))
		add_finding(d->blocks, &d->n_blocks, LIMITS_R09_COURSE, LIMITS_ACT_BLOCK,
			    NL_ZONE_NONE, LIMITS_UNIT_SESSIONS, k, v->course_block, 0);
	else if (k > v->course_block)
		add_finding(d->warnings, &d->n_warnings, LIMITS_R09_COURSE, LIMITS_ACT_WARN,
			    NL_ZONE_NONE, LIMITS_UNIT_SESSIONS, k, v->course_block, 0);
	else if (k >= v->course_warn && (act & LIMITS_ACT_WARN))
		add_finding(d->warnings, &d->n_warnings, LIMITS_R09_COURSE, LIMITS_ACT_WARN,
			    NL_ZONE_NONE, LIMITS_UNIT_SESSIONS, k, v->course_warn, 0);
	return 0;
}

/* CLAMP + WARN rules: the set carries the clamp; a warning tells people. */
static void clamp_warnings(const struct limits_values *v, const struct limits_request *req,
			   struct limits_decision *d)
{
	if (req->skin_type >= 5 && (v->action[LIMITS_R04_SKIN_TYPE] & LIMITS_ACT_WARN))
		add_finding(d->warnings, &d->n_warnings, LIMITS_R04_SKIN_TYPE,
			    LIMITS_ACT_CLAMP | LIMITS_ACT_WARN, NL_ZONE_NONE, LIMITS_UNIT_MM,
			    v->skin_reduction_um, 0, req->skin_type);
	if (req->operator_role != LIMITS_ROLE_PHYSICIAN &&
	    (v->action[LIMITS_R05_OPERATOR_ROLE] & LIMITS_ACT_WARN))
		add_finding(d->warnings, &d->n_warnings, LIMITS_R05_OPERATOR_ROLE,
			    LIMITS_ACT_CLAMP | LIMITS_ACT_WARN, NL_ZONE_NONE, LIMITS_UNIT_MM,
			    v->non_physician_cap_um, v->non_physician_cap_um, req->operator_role);
	for (unsigned i = 0; i < req->n_zones; i++) {
		unsigned z = req->zones[i];
		if ((z == NL_ZONE_SCAR && !req->protocol_scar) ||
		    ((z == NL_ZONE_STRETCH_MARKS || z == NL_ZONE_BODY) && !req->protocol_body))
			add_finding(d->warnings, &d->n_warnings, LIMITS_R02_ZONE_DEPTH_CAP,
				    LIMITS_ACT_CLAMP | LIMITS_ACT_WARN, (uint8_t)z, LIMITS_UNIT_MM,
				    v->zone_cap_um[z], v->zone_cap_um[NL_ZONE_NONE], 1);
	}
}

int limits_authorise(const struct limits_policy *policy, const struct limits_request *req,
		     const struct limits_pen_facts *pen, const struct limits_history_ops *history,
		     void *history_data, int64_t now, struct limits_decision *ret)
{
	struct limits_decision *d;
	struct combine c = {&policy->v, req, pen};
	int r;

	if (!policy || !req || !pen || !history || !history->last_session ||
	    !history->count_sessions || !history->cartridge_uses || !ret)
		return -EINVAL;
	r = check_request(req, pen);
	if (r < 0)
		return r;
	/* The decision is large: build it on the heap so that *ret is written
	 * only on success. */
	d = calloc(1, sizeof(*d));
	if (!d)
		return -ENOMEM;
	check_ready(pen, d);
	r = check_cartridge(pen, req, history, history_data, d);
	if (r < 0)
		goto out;
	check_contraindications(&policy->v, req, d);
	r = check_interval(&policy->v, req, history, history_data, now, d);
	if (r < 0)
		goto out;
	r = check_course(&policy->v, req, history, history_data, now, d);
	if (r < 0)
		goto out;
	clamp_warnings(&policy->v, req, d);
	build_set(&c, d);
	r = nl_limit_set_hash(&d->set, &d->hash);
	if (r < 0)
		goto out; /* a bug in build_set: never hand out an invalid set */
	d->lifetime_s = d->set.lifetime_s;
	d->policy_hash = limits_policy_hash(policy);
	d->verdict = d->n_blocks ? LIMITS_VERDICT_BLOCK : LIMITS_VERDICT_AUTHORISE;
	*ret = *d;
	r = 0;
out:
	free(d);
	return r;
}

int limits_verify_active(const struct limits_decision *d, const struct nl_active_limits *active,
			 struct limits_finding *ret_finding)
{
	uint8_t a[NL_LIMIT_SET_MAX], b[NL_LIMIT_SET_MAX];
	int na, nb;
	uint32_t cause = 0;

	na = nl_limit_set_encode(&d->set, a, sizeof(a));
	nb = nl_limit_set_encode(&active->set, b, sizeof(b));
	if (active->source != NL_LIMIT_SOURCE_SESSION)
		cause = 1;
	else if (active->limits_hash != d->hash)
		cause = 2;
	else if (na < 0 || nb < 0 || na != nb || memcmp(a, b, (size_t)na) != 0)
		cause = 3;
	if (!cause)
		return 0;
	if (ret_finding) {
		size_t n = 0;
		add_finding(ret_finding, &n, LIMITS_R13_NOT_ACKNOWLEDGED, LIMITS_ACT_BLOCK,
			    NL_ZONE_NONE, LIMITS_UNIT_NONE, active->limits_hash, d->hash, cause);
	}
	return 1;
}

/* ---- (b, c) supervision --------------------------------------------------- */

enum depth_state {
	DEPTH_OK = 0,
	DEPTH_CLAMP_PENDING, /* CLAMP sent, no answer yet */
	DEPTH_CLAMP_ACKED, /* the pen said it clamped: a violation now locks */
	DEPTH_LOCKED,
};

enum expect_kind { EXPECT_APPLIED, EXPECT_CLAMP, EXPECT_LOCK };

struct expect {
	enum expect_kind kind;
	enum limits_rule rule;
	uint8_t zone;
	uint16_t cap_um;
	uint8_t reason;
	uint32_t hash;
	int64_t sent_ms;
	bool cp_done; /* Pen CP answered (APPLIED: not used) */
	bool cp_ok; /* ... with SUCCESS */
	bool record_done; /* confirmed: LIMIT record (or, CLAMP/LOCK, Live Status) */
	bool confirm_sent; /* the `confirmed` action went out */
	bool reported; /* overdue alert raised, or the failure reported otherwise */
	struct limits_action act; /* CLAMP/LOCK: the action that asked for it */
};

#define EXPECT_MAX 16
#define QUEUE_MAX 32
#define HASHES_MAX 32

struct limits_session {
	const struct limits_values *v;
	const struct limits_history_ops *history;
	void *history_data;
	char patient[LIMITS_ID_MAX + 1];
	uint16_t feature_flags;
	uint32_t session_id;
	int64_t start_ms;
	uint32_t lifetime_s;

	struct nl_limit_set set; /* expected in force now */
	uint32_t hash;
	uint32_t hashes[HASHES_MAX]; /* every set expected in this session */
	unsigned n_hashes;
	enum limits_rule zone_rule[NL_ZONE_COUNT];

	enum depth_state depth[NL_ZONE_COUNT];
	bool pass_warned[NL_ZONE_COUNT], pass_locked[NL_ZONE_COUNT];
	bool time_warned, time_locked, lifetime_done, fallback_seen;
	bool ended; /* SESSION_END seen: nothing more to supervise */
	bool locked; /* a lock the engine asked for or saw, until unlock */
	bool lock_acked; /* the pen answered the engine's LOCK with SUCCESS */
	bool lock_recorded; /* ... and wrote its LIMIT LOCK (GATEWAY) record */
	unsigned run_after_lock; /* running Live samples since lock_acked */
	bool run_locked_reported; /* RUNNING_LOCKED raised for this lock */

	uint8_t uids[8][NL_CARTRIDGE_UID_LEN];
	unsigned n_uids;

	struct expect expects[EXPECT_MAX];
	unsigned n_expects;

	struct limits_action queue[QUEUE_MAX];
	unsigned q_head, q_len;
};

static void push(struct limits_session *s, const struct limits_action *a)
{
	if (s->q_len == QUEUE_MAX) {
		/* Never drop an enforcement action: drop the oldest WARN
		 * instead; a full queue of CLAMP/LOCK cannot happen (each is
		 * de-duplicated per zone and per rule). */
		for (unsigned i = 0; i < s->q_len; i++) {
			unsigned k = (s->q_head + i) % QUEUE_MAX;
			if (s->queue[k].kind == LIMITS_ACTION_WARN) {
				for (unsigned j = i; j + 1 < s->q_len; j++)
					s->queue[(s->q_head + j) % QUEUE_MAX] =
						s->queue[(s->q_head + j + 1) % QUEUE_MAX];
				s->q_len--;
				break;
			}
		}
		if (s->q_len == QUEUE_MAX)
			return;
	}
	s->queue[(s->q_head + s->q_len) % QUEUE_MAX] = *a;
	s->q_len++;
}

static int drain(struct limits_session *s, struct limits_action *out, size_t max)
{
	size_t n = 0;

	while (n < max && s->q_len) {
		out[n++] = s->queue[s->q_head];
		s->q_head = (s->q_head + 1) % QUEUE_MAX;
		s->q_len--;
	}
	return (int)n;
}

static void remember_hash(struct limits_session *s, uint32_t h)
{
	for (unsigned i = 0; i < s->n_hashes; i++)
		if (s->hashes[i] == h)
			return;
	if (s->n_hashes < HASHES_MAX)
		s->hashes[s->n_hashes++] = h;
	else
		s->hashes[HASHES_MAX - 1] = h;
}

static bool known_hash(const struct limits_session *s, uint32_t h)
{
	for (unsigned i = 0; i < s->n_hashes; i++)
		if (s->hashes[i] == h)
			return true;
	return false;
}

static struct expect *add_expect(struct limits_session *s, enum expect_kind kind,
				 enum limits_rule rule, uint8_t zone, int64_t now_ms)
{
	struct expect *e;

	if (s->n_expects == EXPECT_MAX) {
		/* Forget the oldest settled expectation. */
		unsigned i;
		for (i = 0; i < s->n_expects; i++) {
			const struct expect *o = &s->expects[i];
			if (o->reported || (o->cp_done && o->record_done))
				break;
		}
		if (i == s->n_expects)
			i = 0;
		memmove(&s->expects[i], &s->expects[i + 1],
			(s->n_expects - i - 1) * sizeof(s->expects[0]));
		s->n_expects--;
	}
	e = &s->expects[s->n_expects++];
	memset(e, 0, sizeof(*e));
	e->kind = kind;
	e->rule = rule;
	e->zone = zone;
	e->sent_ms = now_ms;
	return e;
}

/* CLAMP semantics of protocol.md 8.3.9 applied to the expected set. */
static void apply_clamp(struct nl_limit_set *set, unsigned zone, uint16_t cap)
{
	if (zone == NL_ZONE_NONE) {
		if (set->depth_cap_um > cap)
			set->depth_cap_um = cap;
		for (unsigned i = 0; i < set->zone_count; i++)
			if (set->zones[i].depth_cap_um > cap)
				set->zones[i].depth_cap_um = cap;
		return;
	}
	for (unsigned i = 0; i < set->zone_count; i++) {
		if (set->zones[i].zone == zone) {
			if (set->zones[i].depth_cap_um > cap)
				set->zones[i].depth_cap_um = cap;
			return;
		}
		if (set->zones[i].zone > zone) {
			if (set->zone_count == NL_LIMIT_ZONES_MAX)
				return;
			memmove(&set->zones[i + 1], &set->zones[i],
				(set->zone_count - i) * sizeof(set->zones[0]));
			set->zone_count++;
			set->zones[i] = (struct nl_zone_limit){
				(uint8_t)zone, cap < set->depth_cap_um ? cap : set->depth_cap_um,
				set->pass_warn, set->pass_lock};
			return;
		}
	}
	if (set->zone_count < NL_LIMIT_ZONES_MAX)
		set->zones[set->zone_count++] = (struct nl_zone_limit){
			(uint8_t)zone, cap < set->depth_cap_um ? cap : set->depth_cap_um,
			set->pass_warn, set->pass_lock};
}

int limits_session_new(const struct limits_policy *policy, const struct limits_decision *d,
		       const struct limits_request *req, const struct nl_feature *feature,
		       const struct limits_history_ops *history, void *history_data,
		       uint32_t session_id, int64_t now_ms, struct limits_session **ret)
{
	struct limits_session *s;
	struct expect *e;

	if (!policy || !d || !req || !feature || !history ||
	    d->verdict != LIMITS_VERDICT_AUTHORISE || session_id == 0)
		return -EINVAL;
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->v = &policy->v;
	s->history = history;
	s->history_data = history_data;
	snprintf(s->patient, sizeof(s->patient), "%s", req->patient);
	s->feature_flags = feature->flags;
	s->session_id = session_id;
	s->start_ms = now_ms;
	s->lifetime_s = d->lifetime_s;
	s->set = d->set;
	s->hash = d->hash;
	remember_hash(s, d->hash);
	for (unsigned z = 0; z < NL_ZONE_COUNT; z++)
		s->zone_rule[z] = d->cap_rule[0];
	for (unsigned i = 0; i < d->set.zone_count; i++)
		s->zone_rule[d->set.zones[i].zone] = d->cap_rule[1 + i];
	/* SET_LIMITS succeeded before AUTHORISE: the LIMIT APPLIED record with
	 * the decided hash must follow. */
	e = add_expect(s, EXPECT_APPLIED, LIMITS_R13_NOT_ACKNOWLEDGED, NL_ZONE_NONE, now_ms);
	e->hash = d->hash;
	e->cp_done = true;
	*ret = s;
	return 0;
}

void limits_session_free(struct limits_session *s)
{
	free(s);
}

const struct nl_limit_set *limits_session_expected_set(const struct limits_session *s,
						       uint32_t *ret_hash)
{
	if (ret_hash)
		*ret_hash = s->hash;
	return &s->set;
}

bool limits_session_locked(const struct limits_session *s)
{
	return s->locked;
}

static void emit(struct limits_session *s, enum limits_action_kind kind, enum limits_rule rule,
		 enum limits_severity sev, bool send, uint8_t zone, enum limits_unit unit,
		 int64_t measured, int64_t threshold)
{
	struct limits_action a = {0};

	a.kind = kind;
	a.rule = rule;
	a.severity = sev;
	a.send = send;
	a.zone = zone;
	a.unit = unit;
	a.measured = measured;
	a.threshold = threshold;
	a.expected_hash = s->hash;
	push(s, &a);
}

static void emit_lock(struct limits_session *s, enum limits_rule rule, uint8_t reason, bool send,
		      uint8_t zone, enum limits_unit unit, int64_t measured, int64_t threshold,
		      int64_t now_ms)
{
	struct limits_action a = {0};

	a.kind = LIMITS_ACTION_LOCK;
	a.rule = rule;
	a.severity = LIMITS_SEVERITY_CRITICAL;
	a.send = send && !s->locked; /* LOCK on a locked pen changes nothing */
	a.zone = zone;
	a.unit = unit;
	a.measured = measured;
	a.threshold = threshold;
	a.lock_reason = reason;
	a.expected_hash = s->hash;
	if (a.send) {
		struct expect *e = add_expect(s, EXPECT_LOCK, rule, zone, now_ms);
		e->reason = reason;
		e->act = a;
		s->locked = true;
		s->lock_acked = s->lock_recorded = false;
		s->run_after_lock = 0;
		s->run_locked_reported = false;
	}
	push(s, &a);
}

/* A CLAMP or LOCK the engine asked for is confirmed once the pen has
 * answered SUCCESS and its record or Live Status shows it. */
static void settle(struct limits_session *s, struct expect *e)
{
	struct limits_action a;

	if (e->kind == EXPECT_APPLIED || !e->cp_ok || !e->record_done || e->confirm_sent)
		return;
	e->confirm_sent = true;
	a = e->act;
	a.send = false;
	a.confirmed = true;
	a.expected_hash = e->kind == EXPECT_CLAMP ? e->hash : s->hash;
	push(s, &a);
}

/* A depth above the expected cap of a zone, from a live sample or a
 * SEGMENT record. One violation, one action: CLAMP first; once the pen
 * has acknowledged the CLAMP, a further violation locks. */
static void alert(struct limits_session *s, enum limits_alert cause, enum limits_rule rule,
		  uint8_t zone, enum limits_unit unit, int64_t measured, int64_t threshold);

static void depth_violation(struct limits_session *s, unsigned zone, uint16_t measured,
			    uint16_t cap, int64_t now_ms)
{
	enum limits_rule rule = s->zone_rule[zone];

	if (rule == LIMITS_RULE_NONE)
		rule = LIMITS_R02_ZONE_DEPTH_CAP; /* the plan lowered the zone cap */
	switch (s->depth[zone]) {
	case DEPTH_OK: {
		struct limits_action a = {0};
		struct expect *e;

		a.kind = LIMITS_ACTION_CLAMP;
		a.rule = rule;
		a.severity = LIMITS_SEVERITY_WARNING;
		a.send = true;
		a.zone = (uint8_t)zone;
		a.unit = LIMITS_UNIT_MM;
		a.measured = measured;
		a.threshold = cap;
		a.new_cap_um = cap;
		a.expected_hash = s->hash;
		push(s, &a);
		e = add_expect(s, EXPECT_CLAMP, rule, (uint8_t)zone, now_ms);
		e->cap_um = cap;
		e->hash = s->hash;
		e->act = a;
		s->depth[zone] = DEPTH_CLAMP_PENDING;
		break;
	}
	case DEPTH_CLAMP_ACKED:
		/* The pen acknowledged the cap and still goes deeper: it
		 * enforces another cap than the one written (reported: the
		 * failed outcome of that CLAMP), and is locked. */
		for (unsigned i = 0; i < s->n_expects; i++) {
			struct expect *o = &s->expects[i];
			if (o->kind == EXPECT_CLAMP && !o->record_done &&
			    (o->zone == zone || o->zone == NL_ZONE_NONE))
				o->reported = true;
		}
		alert(s, LIMITS_ALERT_THRESHOLD, rule, (uint8_t)zone, LIMITS_UNIT_MM, measured, cap);
		emit_lock(s, rule, NL_LOCK_REASON_POLICY, true, (uint8_t)zone, LIMITS_UNIT_MM,
			  measured, cap, now_ms);
		s->depth[zone] = DEPTH_LOCKED;
		break;
	case DEPTH_CLAMP_PENDING:
	case DEPTH_LOCKED:
		break;
	}
}

static void zone_pass_limits(const struct limits_session *s, unsigned zone, unsigned *ret_warn,
			     unsigned *ret_lock)
{
	const struct nl_zone_limit *e = zone ? nl_limit_set_find(&s->set, zone) : NULL;

	*ret_warn = e ? e->pass_warn : s->set.pass_warn;
	*ret_lock = e ? e->pass_lock : s->set.pass_lock;
}

static void check_passes(struct limits_session *s, unsigned zone, unsigned pass, bool running,
			 int64_t now_ms)
{
	unsigned warn, lock;

	if (!nl_zone_valid(zone) || pass == 0)
		return;
	zone_pass_limits(s, zone, &warn, &lock);
	if (warn && pass >= warn && !s->pass_warned[zone]) {
		s->pass_warned[zone] = true;
		emit(s, LIMITS_ACTION_WARN, LIMITS_R06_PASSES, LIMITS_SEVERITY_WARNING, false,
		     (uint8_t)zone, LIMITS_UNIT_PASSES, pass, warn);
	}
	/* Pass lock + 1 under way: the pen did not enforce its zone lock. */
	if (lock && pass > lock && running && !s->pass_locked[zone]) {
		s->pass_locked[zone] = true;
		emit_lock(s, LIMITS_R06_PASSES, NL_LOCK_REASON_PASSES, true, (uint8_t)zone,
			  LIMITS_UNIT_PASSES, pass, lock, now_ms);
	}
}

static void check_needle_on(struct limits_session *s, uint32_t needle_on_ms, bool pen_locked,
			    int64_t now_ms)
{
	uint32_t sec = needle_on_ms / 1000;

	if (s->set.needle_on_warn_s && needle_on_ms >= 1000u * s->set.needle_on_warn_s &&
	    !s->time_warned) {
		s->time_warned = true;
		emit(s, LIMITS_ACTION_WARN, LIMITS_R07_NEEDLE_ON, LIMITS_SEVERITY_WARNING, false,
		     NL_ZONE_NONE, LIMITS_UNIT_S, sec, s->set.needle_on_warn_s);
	}
	if (s->set.needle_on_lock_s && needle_on_ms >= 1000u * s->set.needle_on_lock_s &&
	    !s->time_locked) {
		s->time_locked = true;
		emit_lock(s, LIMITS_R07_NEEDLE_ON, NL_LOCK_REASON_NEEDLE_ON, !pen_locked,
			  NL_ZONE_NONE, LIMITS_UNIT_S, sec, s->set.needle_on_lock_s, now_ms);
		if (pen_locked)
			s->locked = true;
	}
}

static void alert(struct limits_session *s, enum limits_alert cause, enum limits_rule rule,
		  uint8_t zone, enum limits_unit unit, int64_t measured, int64_t threshold);

static void running_locked(struct limits_session *s, unsigned zone, int64_t now_ms)
{
	enum limits_rule rule = LIMITS_R13_NOT_ACKNOWLEDGED;

	(void)now_ms;
	s->run_locked_reported = true;
	for (unsigned i = s->n_expects; i-- > 0;)
		if (s->expects[i].kind == EXPECT_LOCK) {
			rule = s->expects[i].rule;
			if (!s->expects[i].record_done)
				s->expects[i].reported = true; /* this is its failure */
			break;
		}
	alert(s, LIMITS_ALERT_RUNNING_LOCKED, rule, (uint8_t)zone, LIMITS_UNIT_NONE, 0, 0);
}

/* Live Status confirms what a record would: a LOCK by state LOCKED (LOCK on
 * a locked pen writes no record), a CLAMP by the zone's cap at or below the
 * new cap with the motor not above it (a CLAMP that changes nothing writes
 * no record). Only after the pen answered SUCCESS. */
static void live_confirm(struct limits_session *s, const struct nl_live *live, bool running,
			 unsigned zone)
{
	uint16_t depth = live->depth_set_um;
	uint32_t tol = 0;

	if ((s->feature_flags & NL_FEAT_DEPTH_SENSING) && live->depth_measured_um != NL_DEPTH_UNKNOWN) {
		depth = live->depth_measured_um;
		tol = s->v->depth_tolerance_um;
	}
	for (unsigned i = 0; i < s->n_expects; i++) {
		struct expect *e = &s->expects[i];

		if (!e->cp_ok || e->record_done || e->reported)
			continue;
		if (e->kind == EXPECT_LOCK && live->state == NL_PEN_STATE_LOCKED) {
			e->record_done = true;
			settle(s, e);
		} else if (e->kind == EXPECT_CLAMP && (e->zone == NL_ZONE_NONE || e->zone == zone) &&
			   zone != NL_ZONE_NONE && live->depth_cap_um <= e->cap_um &&
			   !(running && depth > e->cap_um + tol)) {
			e->record_done = true;
			settle(s, e);
		}
	}
}

int limits_session_live(struct limits_session *s, const struct nl_live *live, int64_t now_ms,
			struct limits_action *out, size_t max)
{
	bool running = live->state == NL_PEN_STATE_RUNNING || (live->flags & NL_LIVE_MOTOR_ON);
	unsigned zone = live->zone < NL_ZONE_COUNT ? live->zone : NL_ZONE_NONE;

	if (s->ended || live->session_id != s->session_id)
		return drain(s, out, max);
	if (!s->locked) {
		uint16_t cap = nl_limit_set_zone_cap(&s->set, zone);
		uint16_t depth = live->depth_set_um;
		uint32_t tol = 0;

		if ((s->feature_flags & NL_FEAT_DEPTH_SENSING) &&
		    live->depth_measured_um != NL_DEPTH_UNKNOWN) {
			depth = live->depth_measured_um;
			tol = s->v->depth_tolerance_um;
		}
		if ((running && depth > cap + tol) || live->depth_cap_um > cap)
			depth_violation(s, zone,
					running && depth > cap + tol ? depth : live->depth_cap_um,
					cap, now_ms);
		check_passes(s, zone, live->pass, running, now_ms);
	}
	check_needle_on(s, live->needle_on_ms, live->state == NL_PEN_STATE_LOCKED, now_ms);
	live_confirm(s, live, running, zone);
	/* A pen that runs after acknowledging the engine's LOCK ignores it:
	 * the sample right after the answer may predate it, the next not. */
	if (s->locked && s->lock_acked && !s->run_locked_reported) {
		if (running && live->state != NL_PEN_STATE_LOCKED)
			s->run_after_lock++;
		else
			s->run_after_lock = 0;
		if (s->run_after_lock >= 2)
			running_locked(s, zone, now_ms);
	}
	/* NL-R14: past its lifetime the pen must have fallen back to 1.0 mm. */
	if (!s->lifetime_done && !s->fallback_seen && running &&
	    now_ms - s->start_ms > 1000LL * s->lifetime_s &&
	    live->depth_cap_um > NL_FALLBACK_CAP_UM) {
		s->lifetime_done = true;
		emit_lock(s, LIMITS_R14_LIFETIME, NL_LOCK_REASON_POLICY, true, NL_ZONE_NONE,
			  LIMITS_UNIT_S, (now_ms - s->start_ms) / 1000, s->lifetime_s, now_ms);
	}
	return drain(s, out, max);
}

static void alert(struct limits_session *s, enum limits_alert cause, enum limits_rule rule,
		  uint8_t zone, enum limits_unit unit, int64_t measured, int64_t threshold)
{
	struct limits_action a = {0};

	a.kind = LIMITS_ACTION_ALERT;
	a.alert = cause;
	a.rule = rule;
	a.severity = LIMITS_SEVERITY_CRITICAL;
	a.zone = zone;
	a.unit = unit;
	a.measured = measured;
	a.threshold = threshold;
	a.expected_hash = s->hash;
	push(s, &a);
}

/* The pen reports limits we never asked for: alert and stop treatment. */
static void hash_mismatch(struct limits_session *s, uint32_t got, int64_t now_ms)
{
	alert(s, LIMITS_ALERT_HASH_MISMATCH, LIMITS_R13_NOT_ACKNOWLEDGED, NL_ZONE_NONE,
	      LIMITS_UNIT_NONE, got, s->hash);
	emit_lock(s, LIMITS_R13_NOT_ACKNOWLEDGED, NL_LOCK_REASON_POLICY, true, NL_ZONE_NONE,
		  LIMITS_UNIT_NONE, got, s->hash, now_ms);
}

static void cartridge_record(struct limits_session *s, const struct nl_rec_cartridge *c,
			     int64_t now_ms)
{
	if (c->event == NL_CARTRIDGE_EVENT_REJECTED) {
		switch ((enum nl_cartridge_reject)c->reject_reason) {
		case NL_REJECT_REUSED:
			emit_lock(s, LIMITS_R10_CARTRIDGE_REUSED, NL_LOCK_REASON_CARTRIDGE, true,
				  NL_ZONE_NONE, LIMITS_UNIT_NONE, 0, 0, now_ms);
			break;
		case NL_REJECT_EXPIRED:
		case NL_REJECT_UNREADABLE:
			emit_lock(s, LIMITS_R11_CARTRIDGE_EXPIRED, NL_LOCK_REASON_CARTRIDGE, true,
				  NL_ZONE_NONE, LIMITS_UNIT_NONE, 0, 0, now_ms);
			break;
		case NL_REJECT_NEEDLE_TOO_SHORT:
			emit(s, LIMITS_ACTION_WARN, LIMITS_R03_NEEDLE_LENGTH,
			     LIMITS_SEVERITY_WARNING, false, NL_ZONE_NONE, LIMITS_UNIT_MM,
			     c->needle_length_um, 0);
			break;
		case NL_REJECT_NONE:
		case NL_REJECT_END:
			break;
		}
		return;
	}
	if (c->event != NL_CARTRIDGE_INSERTED)
		return;
	if (uid_zero(c->uid)) {
		emit_lock(s, LIMITS_R11_CARTRIDGE_EXPIRED, NL_LOCK_REASON_CARTRIDGE, true,
			  NL_ZONE_NONE, LIMITS_UNIT_NONE, 0, 0, now_ms);
		return;
	}
	for (unsigned i = 0; i < s->n_uids; i++)
		if (memcmp(s->uids[i], c->uid, NL_CARTRIDGE_UID_LEN) == 0)
			goto length;
	{
		struct limits_cartridge_use use = {0};
		int r = s->history->cartridge_uses(s->history_data, c->uid, s->patient, &use);
		/* Cannot tell: treat like a reuse, never guess in favour of use. */
		if (r < 0 || use.sessions > 0) {
			emit_lock(s, LIMITS_R10_CARTRIDGE_REUSED, NL_LOCK_REASON_CARTRIDGE, true,
				  NL_ZONE_NONE, LIMITS_UNIT_SESSIONS, r < 0 ? 0 : use.sessions, 0,
				  now_ms);
			return;
		}
		if (s->n_uids < 8)
			memcpy(s->uids[s->n_uids++], c->uid, NL_CARTRIDGE_UID_LEN);
	}
length:
	/* NL-R03: a shorter needle lowers every cap to its length. */
	if (c->needle_length_um) {
		bool lower = s->set.depth_cap_um > c->needle_length_um;
		for (unsigned i = 0; i < s->set.zone_count; i++)
			lower |= s->set.zones[i].depth_cap_um > c->needle_length_um;
		if (lower) {
			struct limits_action a = {0};
			struct expect *e;

			apply_clamp(&s->set, NL_ZONE_NONE, c->needle_length_um);
			if (nl_limit_set_hash(&s->set, &s->hash) == 0)
				remember_hash(s, s->hash);
			for (unsigned z = 0; z < NL_ZONE_COUNT; z++)
				if (nl_limit_set_zone_cap(&s->set, z) == c->needle_length_um)
					s->zone_rule[z] = LIMITS_R03_NEEDLE_LENGTH;
			a.kind = LIMITS_ACTION_CLAMP;
			a.rule = LIMITS_R03_NEEDLE_LENGTH;
			a.severity = LIMITS_SEVERITY_WARNING;
			a.send = true;
			a.zone = NL_ZONE_NONE;
			a.unit = LIMITS_UNIT_MM;
			a.measured = c->needle_length_um;
			a.threshold = c->needle_length_um;
			a.new_cap_um = c->needle_length_um;
			a.expected_hash = s->hash;
			push(s, &a);
			/* Until the pen answers, samples still showing the old cap are
			 * the same violation, not a new one per zone. */
			for (unsigned z = 0; z < NL_ZONE_COUNT; z++)
				if (s->depth[z] == DEPTH_OK)
					s->depth[z] = DEPTH_CLAMP_PENDING;
			e = add_expect(s, EXPECT_CLAMP, LIMITS_R03_NEEDLE_LENGTH, NL_ZONE_NONE,
				       now_ms);
			e->cap_um = c->needle_length_um;
			e->hash = s->hash;
			e->act = a;
		}
	}
}

static void limit_record(struct limits_session *s, const struct nl_rec_limit *l, int64_t now_ms)
{
	unsigned warn, lock;

	/* FALLBACK and a FIRMWARE APPLIED (factory set back at session end)
	 * carry the pen's own sets, which the gateway never computed. */
	if (l->event != NL_LIMIT_EVENT_FALLBACK &&
	    !(l->event == NL_LIMIT_EVENT_APPLIED && l->origin == NL_LIMIT_ORIGIN_FIRMWARE) &&
	    !known_hash(s, l->limits_hash)) {
		hash_mismatch(s, l->limits_hash, now_ms);
		return;
	}
	switch ((enum nl_limit_event)l->event) {
	case NL_LIMIT_EVENT_APPLIED:
		for (unsigned i = 0; i < s->n_expects; i++)
			if (s->expects[i].kind == EXPECT_APPLIED &&
			    s->expects[i].hash == l->limits_hash)
				s->expects[i].record_done = true;
		break;
	case NL_LIMIT_EVENT_CLAMP:
		if (l->origin == NL_LIMIT_ORIGIN_GATEWAY) {
			bool matched = false;
			for (unsigned i = 0; i < s->n_expects; i++) {
				struct expect *e = &s->expects[i];
				if (e->kind == EXPECT_CLAMP && !e->record_done &&
				    e->zone == l->zone && e->cap_um == l->threshold) {
					e->record_done = true;
					settle(s, e);
					matched = true;
					break;
				}
			}
			if (!matched)
				alert(s, LIMITS_ALERT_UNEXPECTED, LIMITS_R13_NOT_ACKNOWLEDGED,
				      l->zone, LIMITS_UNIT_MM, l->threshold,
				      nl_limit_set_zone_cap(&s->set, l->zone));
		} else if (l->threshold > nl_limit_set_zone_cap(&s->set, l->zone)) {
			/* The pen clamps to a cap above the one we set. */
			alert(s, LIMITS_ALERT_THRESHOLD,
			      s->zone_rule[l->zone < NL_ZONE_COUNT ? l->zone : 0], l->zone,
			      LIMITS_UNIT_MM, l->threshold,
			      nl_limit_set_zone_cap(&s->set, l->zone));
		} else {
			unsigned z = l->zone < NL_ZONE_COUNT ? l->zone : 0;
			emit(s, LIMITS_ACTION_CLAMP,
			     s->zone_rule[z] ? s->zone_rule[z] : LIMITS_R02_ZONE_DEPTH_CAP,
			     LIMITS_SEVERITY_WARNING, false, l->zone, LIMITS_UNIT_MM, l->value,
			     l->threshold);
		}
		break;
	case NL_LIMIT_EVENT_LOCK:
		if (l->origin == NL_LIMIT_ORIGIN_GATEWAY) {
			bool matched = false;
			for (unsigned i = 0; i < s->n_expects; i++) {
				struct expect *e = &s->expects[i];
				if (e->kind == EXPECT_LOCK && !e->record_done &&
				    e->reason == l->reason) {
					e->record_done = true;
					s->lock_recorded = true;
					settle(s, e);
					matched = true;
					break;
				}
			}
			if (!matched)
				alert(s, LIMITS_ALERT_UNEXPECTED, LIMITS_R13_NOT_ACKNOWLEDGED,
				      l->zone, LIMITS_UNIT_NONE, 0, 0);
			break;
		}
		if (l->reason == NL_LOCK_REASON_PASSES && nl_zone_valid(l->zone)) {
			zone_pass_limits(s, l->zone, &warn, &lock);
			if (l->threshold != lock)
				alert(s, LIMITS_ALERT_THRESHOLD, LIMITS_R06_PASSES, l->zone,
				      LIMITS_UNIT_PASSES, l->threshold, lock);
			if (!s->pass_locked[l->zone]) {
				s->pass_locked[l->zone] = true;
				emit_lock(s, LIMITS_R06_PASSES, NL_LOCK_REASON_PASSES, false,
					  l->zone, LIMITS_UNIT_PASSES, l->value, l->threshold,
					  now_ms);
			}
		} else if (l->reason == NL_LOCK_REASON_NEEDLE_ON) {
			if (l->threshold != s->set.needle_on_lock_s)
				alert(s, LIMITS_ALERT_THRESHOLD, LIMITS_R07_NEEDLE_ON, NL_ZONE_NONE,
				      LIMITS_UNIT_S, l->threshold, s->set.needle_on_lock_s);
			if (!s->time_locked) {
				s->time_locked = true;
				emit_lock(s, LIMITS_R07_NEEDLE_ON, NL_LOCK_REASON_NEEDLE_ON, false,
					  NL_ZONE_NONE, LIMITS_UNIT_S, l->value, l->threshold,
					  now_ms);
			}
			s->locked = true;
		}
		break;
	case NL_LIMIT_EVENT_PASS_WARN:
		if (!nl_zone_valid(l->zone))
			break;
		zone_pass_limits(s, l->zone, &warn, &lock);
		if (l->threshold != warn)
			alert(s, LIMITS_ALERT_THRESHOLD, LIMITS_R06_PASSES, l->zone,
			      LIMITS_UNIT_PASSES, l->threshold, warn);
		else if (!s->pass_warned[l->zone]) {
			s->pass_warned[l->zone] = true;
			emit(s, LIMITS_ACTION_WARN, LIMITS_R06_PASSES, LIMITS_SEVERITY_WARNING,
			     false, l->zone, LIMITS_UNIT_PASSES, l->value, l->threshold);
		}
		break;
	case NL_LIMIT_EVENT_TIME_WARN:
		if (l->threshold != s->set.needle_on_warn_s)
			alert(s, LIMITS_ALERT_THRESHOLD, LIMITS_R07_NEEDLE_ON, NL_ZONE_NONE,
			      LIMITS_UNIT_S, l->threshold, s->set.needle_on_warn_s);
		else if (!s->time_warned) {
			s->time_warned = true;
			emit(s, LIMITS_ACTION_WARN, LIMITS_R07_NEEDLE_ON, LIMITS_SEVERITY_WARNING,
			     false, NL_ZONE_NONE, LIMITS_UNIT_S, l->value, l->threshold);
		}
		break;
	case NL_LIMIT_EVENT_FALLBACK:
		if (!s->fallback_seen) {
			s->fallback_seen = true;
			emit(s, LIMITS_ACTION_WARN, LIMITS_R14_LIFETIME, LIMITS_SEVERITY_WARNING,
			     false, NL_ZONE_NONE, LIMITS_UNIT_S, s->lifetime_s, s->lifetime_s);
		}
		break;
	case NL_LIMIT_EVENT_UNLOCK:
	case NL_LIMIT_EVENT_OVERRIDE:
	case NL_LIMIT_EVENT_END:
		break;
	}
}

int limits_session_record(struct limits_session *s, const struct nl_record *rec, int64_t now_ms,
			  struct limits_action *out, size_t max)
{
	/* Records outside any session (id 0) matter too: the LIMIT APPLIED of
	 * our SET_LIMITS is written before AUTHORISE opens the session, and
	 * cartridge events happen between sessions. */
	if (s->ended || (rec->hdr.session_id != s->session_id && rec->hdr.session_id != 0))
		return drain(s, out, max);
	switch ((enum nl_record_type)rec->hdr.type) {
	case NL_RECORD_SESSION_START:
		if (rec->u.session_start.limit_source != NL_LIMIT_SOURCE_SESSION ||
		    !known_hash(s, rec->u.session_start.limits_hash))
			hash_mismatch(s, rec->u.session_start.limits_hash, now_ms);
		else if (!uid_zero(rec->u.session_start.cartridge_uid) && s->n_uids < 8)
			memcpy(s->uids[s->n_uids++], rec->u.session_start.cartridge_uid,
			       NL_CARTRIDGE_UID_LEN);
		break;
	case NL_RECORD_SEGMENT: {
		const struct nl_rec_segment *g = &rec->u.segment;
		unsigned zone = g->zone < NL_ZONE_COUNT ? g->zone : NL_ZONE_NONE;
		uint16_t cap = nl_limit_set_zone_cap(&s->set, zone);
		uint16_t depth = g->depth_set_um;
		uint32_t tol = 0;

		/* A run recorded after the pen's LIMIT LOCK (GATEWAY) record
		 * (records are in the order the pen wrote them), not the one
		 * the lock cut: the pen ran while locked. */
		if (s->locked && s->lock_recorded && !s->run_locked_reported && g->run_ms > 0 &&
		    g->end_reason != NL_SEGMENT_END_LOCK)
			running_locked(s, zone, now_ms);
		if (s->locked)
			break;
		if ((s->feature_flags & NL_FEAT_DEPTH_SENSING) &&
		    g->depth_measured_um != NL_DEPTH_UNKNOWN) {
			depth = g->depth_measured_um;
			tol = s->v->depth_tolerance_um;
		}
		/* A dial pen holding its motor records DIAL_OVER_CAP with no run. */
		if (g->run_ms > 0 && depth > cap + tol)
			depth_violation(s, zone, depth, cap, now_ms);
		check_passes(s, zone, g->pass, g->run_ms > 0, now_ms);
		break;
	}
	case NL_RECORD_CARTRIDGE:
		cartridge_record(s, &rec->u.cartridge, now_ms);
		break;
	case NL_RECORD_LIMIT:
		limit_record(s, &rec->u.limit, now_ms);
		break;
	case NL_RECORD_SESSION_END:
		if (rec->hdr.session_id == s->session_id)
			s->ended = true;
		break;
	case NL_RECORD_FAULT:
	case NL_RECORD_TIME_CHANGE:
	case NL_RECORD_TYPE_END:
		break;
	}
	return drain(s, out, max);
}

int limits_session_cp_result(struct limits_session *s, uint8_t op, uint8_t result, uint32_t value,
			     int64_t now_ms, struct limits_action *out, size_t max)
{
	for (unsigned i = 0; i < s->n_expects; i++) {
		struct expect *e = &s->expects[i];

		if (e->cp_done || (op == NL_CP_CLAMP && e->kind != EXPECT_CLAMP) ||
		    (op == NL_CP_LOCK && e->kind != EXPECT_LOCK) ||
		    (op != NL_CP_CLAMP && op != NL_CP_LOCK))
			continue;
		e->cp_done = true;
		if (result != NL_CP_SUCCESS) {
			e->reported = true; /* the REFUSED alert is its outcome */
			/* The pen refused: a refused CLAMP must become a lock. */
			alert(s, LIMITS_ALERT_REFUSED, e->rule, e->zone, LIMITS_UNIT_NONE, result,
			      NL_CP_SUCCESS);
			if (e->kind == EXPECT_CLAMP) {
				s->locked = false; /* let the lock below be sent */
				emit_lock(s, e->rule, NL_LOCK_REASON_POLICY, true, e->zone,
					  LIMITS_UNIT_MM, e->cap_um, e->cap_um, now_ms);
				if (e->zone < NL_ZONE_COUNT)
					s->depth[e->zone] = DEPTH_LOCKED;
			} else {
				s->locked = false;
			}
			break;
		}
		if (e->kind == EXPECT_CLAMP) {
			/* A CLAMP of zone 0 covers every zone. */
			for (unsigned z = 0; z < NL_ZONE_COUNT; z++)
				if ((z == e->zone || e->zone == NL_ZONE_NONE) &&
				    s->depth[z] == DEPTH_CLAMP_PENDING)
					s->depth[z] = DEPTH_CLAMP_ACKED;
			if (value != e->hash) {
				e->reported = true; /* the mismatch is its outcome */
				hash_mismatch(s, value, now_ms);
				break;
			}
		} else {
			s->lock_acked = true;
			s->run_after_lock = 0;
		}
		e->cp_ok = true;
		settle(s, e); /* the record may have come first */
		break;
	}
	return drain(s, out, max);
}

int limits_session_tick(struct limits_session *s, int64_t now_ms, struct limits_action *out,
			size_t max)
{
	int64_t timeout = 1000LL * s->v->confirm_timeout_s;

	for (unsigned i = 0; i < s->n_expects; i++) {
		struct expect *e = &s->expects[i];
		bool missing = !e->cp_done || !e->record_done;

		if (!missing || e->reported || now_ms - e->sent_ms < timeout)
			continue;
		e->reported = true;
		alert(s, LIMITS_ALERT_TIMEOUT,
		      e->kind == EXPECT_APPLIED ? LIMITS_R13_NOT_ACKNOWLEDGED : e->rule, e->zone,
		      LIMITS_UNIT_S, (now_ms - e->sent_ms) / 1000, s->v->confirm_timeout_s);
	}
	return drain(s, out, max);
}

int limits_unlock_check(enum limits_role role, const char *reason)
{
	if ((unsigned)role >= LIMITS_ROLE_COUNT || role != LIMITS_ROLE_PHYSICIAN)
		return -EPERM;
	if (blank(reason))
		return -EINVAL;
	return 0;
}

int limits_session_unlocked(struct limits_session *s, enum limits_role role, const char *reason)
{
	int r = limits_unlock_check(role, reason);

	if (r < 0)
		return r;
	s->locked = false;
	s->lock_acked = s->lock_recorded = false;
	s->run_after_lock = 0;
	for (unsigned z = 0; z < NL_ZONE_COUNT; z++)
		if (s->depth[z] == DEPTH_LOCKED)
			s->depth[z] = DEPTH_CLAMP_ACKED;
	return 0;
}

/* ---- text ------------------------------------------------------------------ */

static void fmt_value(char *buf, size_t size, enum limits_unit unit, int64_t v)
{
	switch (unit) {
	case LIMITS_UNIT_MM:
		snprintf(buf, size, "%lld.%02lld mm", (long long)(v / 1000),
			 (long long)((v % 1000) / 10));
		break;
	case LIMITS_UNIT_PASSES:
		snprintf(buf, size, "%lld passes", (long long)v);
		break;
	case LIMITS_UNIT_S:
		snprintf(buf, size, "%lld s", (long long)v);
		break;
	case LIMITS_UNIT_DAYS:
		snprintf(buf, size, "%lld days", (long long)v);
		break;
	case LIMITS_UNIT_SESSIONS:
		snprintf(buf, size, "%lld sessions", (long long)v);
		break;
	case LIMITS_UNIT_NONE:
	case LIMITS_UNIT_COUNT:
		snprintf(buf, size, "%lld", (long long)v);
		break;
	}
}

static const char *zone_text(unsigned zone)
{
	return zone && nl_zone_name(zone) ? nl_zone_name(zone) : "every zone";
}

static int finish(int n, size_t size)
{
	return n < 0 || (size_t)n >= size ? -ENOBUFS : n;
}

int limits_finding_message(const struct limits_finding *f, char *buf, size_t size)
{
	const char *title = limits_rule_info(f->rule) ? limits_rule_info(f->rule)->title : "?";
	char v[32], t[32];

	fmt_value(v, sizeof(v), f->unit, f->value);
	fmt_value(t, sizeof(t), f->unit, f->threshold);
	switch (f->rule) {
	case LIMITS_R08_INTERVAL:
		return finish(snprintf(buf, size, "last session on %s %lld days ago, minimum %lld",
				       zone_text(f->zone), (long long)f->value,
				       (long long)f->threshold),
			      size);
	case LIMITS_R09_COURSE:
		return finish(snprintf(buf, size, "session %lld of the course, %s at %lld",
				       (long long)f->value,
				       f->action & LIMITS_ACT_BLOCK ? "maximum" : "warning",
				       (long long)f->threshold),
			      size);
	case LIMITS_R10_CARTRIDGE_REUSED:
		return finish(snprintf(buf, size, "cartridge already used in %lld session(s)%s",
				       (long long)f->value,
				       f->detail ? ", including another patient's" : ""),
			      size);
	case LIMITS_R11_CARTRIDGE_EXPIRED:
		return finish(snprintf(buf, size, "cartridge %s",
				       f->detail == UNREADABLE ? "unreadable"
				       : f->detail == REJECTED ? "rejected by the pen"
							       : "expired"),
			      size);
	case LIMITS_R12_CONTRAINDICATION:
		return finish(snprintf(buf, size, "contraindication declared: %s",
				       limits_ci_name(f->detail) ? limits_ci_name(f->detail) : "?"),
			      size);
	case LIMITS_R13_NOT_ACKNOWLEDGED:
		return finish(
			snprintf(buf, size,
				 "limits not acknowledged: pen reports %08llx, expected %08llx",
				 (unsigned long long)f->value & 0xFFFFFFFFu,
				 (unsigned long long)f->threshold & 0xFFFFFFFFu),
			size);
	case LIMITS_R15_PEN_NOT_READY: {
		static const char *const causes[] = {"?",
						     "not idle",
						     "locked",
						     "in fault",
						     "record store full",
						     "no usable cartridge",
						     "unsupported protocol version"};
		return finish(snprintf(buf, size, "pen not ready: %s",
				       f->detail < 7 ? causes[f->detail] : "?"),
			      size);
	}
	case LIMITS_R04_SKIN_TYPE:
		return finish(snprintf(buf, size, "skin type %s: depth caps lowered by %s",
				       f->detail == 6 ? "VI" : "V", v),
			      size);
	case LIMITS_R05_OPERATOR_ROLE:
		return finish(snprintf(buf, size, "operator role %s: depth capped at %s",
				       limits_role_name((enum limits_role)f->detail)
					       ? limits_role_name((enum limits_role)f->detail)
					       : "?",
				       t),
			      size);
	case LIMITS_R02_ZONE_DEPTH_CAP:
		if (f->detail == 1)
			return finish(snprintf(buf, size,
					       "%s planned without its protocol: capped at %s",
					       zone_text(f->zone), t),
				      size);
		break;
	case LIMITS_RULE_NONE:
	case LIMITS_R01_DEVICE_MAX_DEPTH:
	case LIMITS_R03_NEEDLE_LENGTH:
	case LIMITS_R06_PASSES:
	case LIMITS_R07_NEEDLE_ON:
	case LIMITS_R14_LIFETIME:
	case LIMITS_RULE_COUNT:
		break;
	}
	return finish(
		snprintf(buf, size, "%s on %s: %s, threshold %s", title, zone_text(f->zone), v, t),
		size);
}

int limits_action_message(const struct limits_action *a, char *buf, size_t size)
{
	const char *title = limits_rule_info(a->rule) ? limits_rule_info(a->rule)->title : "?";
	char v[32], t[32];

	fmt_value(v, sizeof(v), a->unit, a->measured);
	fmt_value(t, sizeof(t), a->unit, a->threshold);
	if (a->confirmed && a->kind == LIMITS_ACTION_CLAMP)
		return finish(snprintf(buf, size, "cap %s on %s confirmed by the pen (%s)", t,
				       zone_text(a->zone), title),
			      size);
	if (a->confirmed && a->kind == LIMITS_ACTION_LOCK)
		return finish(snprintf(buf, size, "%s: pen lock confirmed by the pen", title), size);
	switch (a->kind) {
	case LIMITS_ACTION_CLAMP:
		return finish(snprintf(buf, size, "depth %s on %s above the cap %s: clamped (%s)",
				       v, zone_text(a->zone), t, title),
			      size);
	case LIMITS_ACTION_LOCK:
		if (a->unit == LIMITS_UNIT_NONE)
			return finish(snprintf(buf, size, "%s: pen locked", title), size);
		return finish(snprintf(buf, size, "%s on %s: %s reached %s, pen locked", title,
				       zone_text(a->zone), v, t),
			      size);
	case LIMITS_ACTION_WARN:
		return finish(snprintf(buf, size, "%s on %s: %s, warning at %s", title,
				       zone_text(a->zone), v, t),
			      size);
	case LIMITS_ACTION_ALERT:
		switch (a->alert) {
		case LIMITS_ALERT_HASH_MISMATCH:
			return finish(
				snprintf(
					buf, size,
					"pen reports limits %08llx, gateway expects %08llx: locked",
					(unsigned long long)a->measured & 0xFFFFFFFFu,
					(unsigned long long)a->threshold & 0xFFFFFFFFu),
				size);
		case LIMITS_ALERT_REFUSED:
			return finish(snprintf(buf, size, "pen refused the command for %s (%s)",
					       title,
					       nl_cp_result_name((unsigned)a->measured)
						       ? nl_cp_result_name((unsigned)a->measured)
						       : "unknown result"),
				      size);
		case LIMITS_ALERT_TIMEOUT:
			return finish(
				snprintf(buf, size, "pen did not confirm %s within %s", title, t),
				size);
		case LIMITS_ALERT_UNEXPECTED:
			return finish(
				snprintf(buf, size,
					 "pen reports a %s change the gateway did not ask for",
					 title),
				size);
		case LIMITS_ALERT_RUNNING_LOCKED:
			return finish(snprintf(buf, size,
					       "pen keeps treating after acknowledging the lock "
					       "for %s",
					       title),
				      size);
		case LIMITS_ALERT_THRESHOLD:
		case LIMITS_ALERT_NONE:
			break;
		}
		return finish(snprintf(buf, size,
				       "pen enforces %s on %s at %s, gateway asked for %s", title,
				       zone_text(a->zone), v, t),
			      size);
	}
	return -EINVAL;
}

const char *limits_action_kind_name(enum limits_action_kind k)
{
	switch (k) {
	case LIMITS_ACTION_WARN:
	case LIMITS_ACTION_ALERT:
		return "warn";
	case LIMITS_ACTION_CLAMP:
		return "clamp";
	case LIMITS_ACTION_LOCK:
		return "lock";
	}
	return NULL;
}
