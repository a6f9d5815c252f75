/* SPDX-License-Identifier: MIT */
/* Session supervision: live samples and records in, actions out; LIMIT
 * record matching; unlock authorisation. Time is injected (ms). */
#include <stdio.h>

#include "fake.h"
#include "harness.h"

#define SID 42u

struct sup {
	struct limits_policy *policy;
	struct limits_pen_facts pen;
	struct limits_request req;
	struct fake_history hist;
	struct limits_decision d;
	struct limits_session *s;
	struct limits_action a[LIMITS_ACTIONS_MAX];
	int n;
};

static struct sup *sup_new(const char *policy_text, void (*tweak)(struct sup *))
{
	struct sup *x = calloc(1, sizeof(*x));

	if (!x)
		abort();
	x->policy = policy_from(policy_text);
	x->pen = pen_default();
	x->req = req_default();
	if (tweak)
		tweak(x);
	if (limits_authorise(x->policy, &x->req, &x->pen, &fake_ops, &x->hist, T0, &x->d) < 0 ||
	    x->d.verdict != LIMITS_VERDICT_AUTHORISE ||
	    limits_session_new(x->policy, &x->d, &x->req, &x->pen.feature, &fake_ops, &x->hist, SID,
			       1000, &x->s) < 0)
		abort();
	return x;
}

static void sup_free(struct sup *x)
{
	limits_session_free(x->s);
	limits_policy_free(x->policy);
	free(x);
}

static struct nl_live live(uint8_t zone, uint16_t depth, uint16_t pass, uint32_t needle_on_ms)
{
	struct nl_live l;

	memset(&l, 0, sizeof(l));
	l.state = NL_PEN_STATE_RUNNING;
	l.flags = NL_LIVE_MOTOR_ON | NL_LIVE_CARTRIDGE;
	l.zone = zone;
	l.depth_set_um = depth;
	l.depth_measured_um = depth;
	l.depth_cap_um = 1500;
	l.pass = pass;
	l.needle_on_ms = needle_on_ms;
	l.session_id = SID;
	l.battery_pct = 80;
	return l;
}

static int feed(struct sup *x, const struct nl_live *l, int64_t now_ms)
{
	x->n = limits_session_live(x->s, l, now_ms, x->a, LIMITS_ACTIONS_MAX);
	return x->n;
}

static int feed_rec(struct sup *x, const struct nl_record *r, int64_t now_ms)
{
	x->n = limits_session_record(x->s, r, now_ms, x->a, LIMITS_ACTIONS_MAX);
	return x->n;
}

static struct nl_record limit_rec(uint8_t event, uint8_t origin, uint8_t zone, uint32_t hash,
				  uint16_t value, uint16_t threshold, uint8_t reason)
{
	struct nl_record r;

	memset(&r, 0, sizeof(r));
	r.hdr.type = NL_RECORD_LIMIT;
	r.hdr.flags = NL_REC_CLOCK_SET | NL_REC_AUTHORISED;
	r.hdr.seq = 100;
	r.hdr.session_id = SID;
	r.u.limit = (struct nl_rec_limit){event, origin, zone, hash, value, threshold, reason, 0};
	return r;
}

/* ---- depth -------------------------------------------------------------- */

static void r02_depth(void)
{
	struct sup *x = sup_new(NULL, NULL);
	struct nl_live l;
	char msg[256];

	/* compliant */
	l = live(NL_ZONE_CHEEKS, 1000, 1, 1000);
	CHECK_INT(feed(x, &l, 2000), 0);
	/* at threshold, and at threshold plus the sensor tolerance */
	l.depth_measured_um = 1500;
	CHECK_INT(feed(x, &l, 2100), 0);
	l.depth_measured_um = 1600;
	CHECK_INT(feed(x, &l, 2200), 0);
	/* violating: one CLAMP for the zone cap */
	l.depth_measured_um = 1700;
	CHECK_INT(feed(x, &l, 2300), 1);
	CHECK_INT(x->a[0].kind, LIMITS_ACTION_CLAMP);
	CHECK_INT(x->a[0].rule, LIMITS_R02_ZONE_DEPTH_CAP);
	CHECK(x->a[0].send);
	CHECK_INT(x->a[0].zone, NL_ZONE_CHEEKS);
	CHECK_INT(x->a[0].new_cap_um, 1500);
	CHECK_INT(x->a[0].measured, 1700);
	CHECK_INT(x->a[0].threshold, 1500);
	CHECK_INT(x->a[0].unit, LIMITS_UNIT_MM);
	CHECK(x->a[0].expected_hash == x->d.hash);
	CHECK(limits_action_message(&x->a[0], msg, sizeof(msg)) > 0);
	CHECK_STR(msg,
		  "depth 1.70 mm on cheeks above the cap 1.50 mm: clamped (depth cap per zone)");
	CHECK_STR(limits_action_kind_name(x->a[0].kind), "clamp");
	sup_free(x);
}

static void dedup_depth(void)
{
	struct sup *x = sup_new(NULL, NULL);
	struct nl_live l = live(NL_ZONE_CHEEKS, 1800, 1, 1000);

	CHECK_INT(feed(x, &l, 2000), 1);
	/* 50 more violating samples before the pen answers: nothing more. */
	for (int i = 0; i < 50; i++)
		CHECK_INT(feed(x, &l, 2100 + i * 100), 0);
	sup_free(x);
}

static void r02_ignored_clamp_locks(void)
{
	struct sup *x = sup_new(NULL, NULL);
	struct nl_live l = live(NL_ZONE_CHEEKS, 1800, 1, 1000);

	CHECK_INT(feed(x, &l, 2000), 1);
	CHECK_INT(limits_session_cp_result(x->s, NL_CP_CLAMP, NL_CP_SUCCESS, x->d.hash, 2500, x->a,
					   LIMITS_ACTIONS_MAX),
		  0);
	/* The pen acknowledged and still goes deeper: ALERT (it enforces
	 * another cap than written) and LOCK. */
	CHECK_INT(feed(x, &l, 3000), 2);
	CHECK_INT(x->a[0].kind, LIMITS_ACTION_ALERT);
	CHECK_INT(x->a[0].alert, LIMITS_ALERT_THRESHOLD);
	CHECK_INT(x->a[0].rule, LIMITS_R02_ZONE_DEPTH_CAP);
	CHECK_INT(x->a[0].measured, 1800);
	CHECK_INT(x->a[0].threshold, 1500);
	CHECK(!x->a[0].send);
	CHECK_INT(x->a[1].kind, LIMITS_ACTION_LOCK);
	CHECK(x->a[1].send);
	CHECK_INT(x->a[1].severity, LIMITS_SEVERITY_CRITICAL);
	CHECK_INT(x->a[1].lock_reason, NL_LOCK_REASON_POLICY);
	CHECK_INT(x->a[1].rule, LIMITS_R02_ZONE_DEPTH_CAP);
	CHECK(limits_session_locked(x->s));
	CHECK_INT(feed(x, &l, 3100), 0); /* locked: no more */
	sup_free(x);
}

static void r02_clamp_refused_locks(void)
{
	struct sup *x = sup_new(NULL, NULL);
	char msg[256];
	struct nl_live l = live(NL_ZONE_CHEEKS, 1800, 1, 1000);

	CHECK_INT(feed(x, &l, 2000), 1);
	CHECK_INT(limits_session_cp_result(x->s, NL_CP_CLAMP, NL_CP_INVALID_STATE, 0, 2500, x->a,
					   LIMITS_ACTIONS_MAX),
		  2);
	CHECK_INT(x->a[0].kind, LIMITS_ACTION_ALERT);
	CHECK_INT(x->a[0].alert, LIMITS_ALERT_REFUSED);
	CHECK(limits_action_message(&x->a[0], msg, sizeof(msg)) > 0);
	CHECK_STR(msg, "pen refused the command for depth cap per zone (invalid_state)");
	CHECK_INT(x->a[1].kind, LIMITS_ACTION_LOCK);
	CHECK(x->a[1].send);
	sup_free(x);
}

static void r02_pen_cap_above(void)
{
	struct sup *x = sup_new(NULL, NULL);
	struct nl_live l = live(NL_ZONE_CHEEKS, 1000, 1, 1000);

	/* The pen reports a cap above ours: CLAMP even with the motor off. */
	l.state = NL_PEN_STATE_ARMED;
	l.flags = 0;
	l.depth_cap_um = 2000;
	CHECK_INT(feed(x, &l, 2000), 1);
	CHECK_INT(x->a[0].kind, LIMITS_ACTION_CLAMP);
	CHECK_INT(x->a[0].measured, 2000);
	sup_free(x);
}

static void r02_dial_pen(void)
{
	struct sup *x = sup_new(NULL, NULL);
	struct nl_live l = live(NL_ZONE_CHEEKS, 2000, 1, 1000);

	/* A dial pen above the cap with its motor held off is compliant. */
	l.state = NL_PEN_STATE_ARMED;
	l.flags = NL_LIVE_DIAL_OVER_CAP;
	CHECK_INT(feed(x, &l, 2000), 0);
	sup_free(x);
}

static void skin_vi(struct sup *x)
{
	x->req.skin_type = 6;
}

static void r04_session(void)
{
	struct sup *x = sup_new(NULL, skin_vi);
	struct nl_live l = live(NL_ZONE_CHEEKS, 1250, 1, 1000);

	l.depth_cap_um = 1250;
	CHECK_INT(feed(x, &l, 2000), 0);
	l.depth_measured_um = 1450;
	CHECK_INT(feed(x, &l, 2100), 1);
	CHECK_INT(x->a[0].kind, LIMITS_ACTION_CLAMP);
	CHECK_INT(x->a[0].rule, LIMITS_R04_SKIN_TYPE);
	CHECK_INT(x->a[0].new_cap_um, 1250);
	sup_free(x);
}

static void slow_pen(struct sup *x)
{
	x->pen.feature.depth_max_um = 1200;
}

static void r01_session(void)
{
	struct sup *x = sup_new(NULL, slow_pen);
	struct nl_live l = live(NL_ZONE_CHEEKS, 1200, 1, 1000);

	l.depth_cap_um = 1200;
	CHECK_INT(feed(x, &l, 2000), 0);
	l.depth_measured_um = 1400;
	CHECK_INT(feed(x, &l, 2100), 1);
	CHECK_INT(x->a[0].rule, LIMITS_R01_DEVICE_MAX_DEPTH);
	sup_free(x);
}

/* ---- passes and needle-on time --------------------------------------------- */

static void r06_passes(void)
{
	struct sup *x = sup_new(NULL, NULL);
	struct nl_live l = live(NL_ZONE_CHEEKS, 1000, 2, 1000);

	CHECK_INT(feed(x, &l, 2000), 0); /* 2 passes: compliant */
	l.pass = 3; /* warn threshold */
	CHECK_INT(feed(x, &l, 2100), 1);
	CHECK_INT(x->a[0].kind, LIMITS_ACTION_WARN);
	CHECK_INT(x->a[0].rule, LIMITS_R06_PASSES);
	CHECK(!x->a[0].send);
	CHECK_INT(x->a[0].measured, 3);
	CHECK_INT(x->a[0].threshold, 3);
	CHECK_INT(feed(x, &l, 2200), 0); /* once */
	l.pass = 4;
	CHECK_INT(feed(x, &l, 2300), 0);
	l.pass = 5; /* the lock threshold: the last pass allowed */
	CHECK_INT(feed(x, &l, 2400), 0);
	/* The pen's own zone lock on pass 6 is reported, not re-sent. */
	{
		struct nl_record r =
			limit_rec(NL_LIMIT_EVENT_LOCK, NL_LIMIT_ORIGIN_FIRMWARE, NL_ZONE_CHEEKS,
				  x->d.hash, 6, 5, NL_LOCK_REASON_PASSES);
		CHECK_INT(feed_rec(x, &r, 2500), 1);
		CHECK_INT(x->a[0].kind, LIMITS_ACTION_LOCK);
		CHECK(!x->a[0].send);
		CHECK_INT(x->a[0].zone, NL_ZONE_CHEEKS);
	}
	/* The pen's PASS_WARN record for the warning already raised: nothing. */
	{
		struct nl_record r = limit_rec(NL_LIMIT_EVENT_PASS_WARN, NL_LIMIT_ORIGIN_FIRMWARE,
					       NL_ZONE_CHEEKS, x->d.hash, 3, 3, 0);
		CHECK_INT(feed_rec(x, &r, 2600), 0);
	}
	sup_free(x);
}

static void r06_pen_ignores(void)
{
	struct sup *x = sup_new(NULL, NULL);
	struct nl_live l = live(NL_ZONE_CHEEKS, 1000, 6, 1000);

	/* A sixth pass running: the pen did not enforce its zone lock. */
	CHECK_INT(feed(x, &l, 2000), 2);
	CHECK_INT(x->a[0].kind, LIMITS_ACTION_WARN);
	CHECK_INT(x->a[1].kind, LIMITS_ACTION_LOCK);
	CHECK(x->a[1].send);
	CHECK_INT(x->a[1].lock_reason, NL_LOCK_REASON_PASSES);
	CHECK_INT(x->a[1].measured, 6);
	CHECK_INT(x->a[1].threshold, 5);
	sup_free(x);
}

static void r06_mismatch(void)
{
	struct sup *x = sup_new(NULL, NULL);
	struct nl_record r = limit_rec(NL_LIMIT_EVENT_PASS_WARN, NL_LIMIT_ORIGIN_FIRMWARE,
				       NL_ZONE_CHEEKS, x->d.hash, 4, 4, 0);

	/* The pen warns at 4 where the gateway asked for 3: alert. */
	CHECK_INT(feed_rec(x, &r, 2000), 1);
	CHECK_INT(x->a[0].kind, LIMITS_ACTION_ALERT);
	CHECK_INT(x->a[0].rule, LIMITS_R06_PASSES);
	CHECK_INT(x->a[0].alert, LIMITS_ALERT_THRESHOLD);
	CHECK_INT(x->a[0].measured, 4);
	CHECK_INT(x->a[0].threshold, 3);
	sup_free(x);
}

static void r07_needle_on(void)
{
	struct sup *x = sup_new(NULL, NULL);
	struct nl_live l = live(NL_ZONE_CHEEKS, 1000, 1, 1499999);

	CHECK_INT(feed(x, &l, 2000), 0);
	l.needle_on_ms = 1500000; /* 25 min */
	CHECK_INT(feed(x, &l, 2100), 1);
	CHECK_INT(x->a[0].kind, LIMITS_ACTION_WARN);
	CHECK_INT(x->a[0].rule, LIMITS_R07_NEEDLE_ON);
	CHECK_INT(x->a[0].measured, 1500);
	CHECK_INT(x->a[0].unit, LIMITS_UNIT_S);
	l.needle_on_ms = 1600000;
	CHECK_INT(feed(x, &l, 2200), 0);
	{
		/* The pen's TIME_WARN for the same threshold: no second alert. */
		struct nl_record r = limit_rec(NL_LIMIT_EVENT_TIME_WARN, NL_LIMIT_ORIGIN_FIRMWARE,
					       0, x->d.hash, 1500, 1500, 0);
		CHECK_INT(feed_rec(x, &r, 2250), 0);
	}
	l.needle_on_ms = 2399999;
	CHECK_INT(feed(x, &l, 2300), 0);
	l.needle_on_ms = 2400000; /* 40 min and still running: lock */
	CHECK_INT(feed(x, &l, 2400), 1);
	CHECK_INT(x->a[0].kind, LIMITS_ACTION_LOCK);
	CHECK(x->a[0].send);
	CHECK_INT(x->a[0].lock_reason, NL_LOCK_REASON_NEEDLE_ON);
	CHECK_INT(x->a[0].threshold, 2400);
	l.needle_on_ms = 2500000;
	CHECK_INT(feed(x, &l, 2500), 0);
	sup_free(x);
}

static void r07_pen_locked_itself(void)
{
	struct sup *x = sup_new(NULL, NULL);
	struct nl_live l = live(NL_ZONE_CHEEKS, 1000, 1, 2400000);

	l.state = NL_PEN_STATE_LOCKED;
	l.flags = 0;
	CHECK_INT(feed(x, &l, 2000), 2); /* warning and lock, both already done */
	CHECK_INT(x->a[0].kind, LIMITS_ACTION_WARN);
	CHECK_INT(x->a[1].kind, LIMITS_ACTION_LOCK);
	CHECK(!x->a[1].send);
	sup_free(x);
}

/* ---- unlock -------------------------------------------------------------- */

static void unlock(void)
{
	struct sup *x = sup_new(NULL, NULL);
	struct nl_live l = live(NL_ZONE_CHEEKS, 1000, 1, 2400000);

	CHECK_INT(limits_unlock_check(LIMITS_ROLE_PHYSICIAN, "cap reviewed"), 0);
	CHECK_INT(limits_unlock_check(LIMITS_ROLE_NURSE, "cap reviewed"), -EPERM);
	CHECK_INT(limits_unlock_check(LIMITS_ROLE_TECHNICIAN, "x"), -EPERM);
	CHECK_INT(limits_unlock_check(LIMITS_ROLE_PHYSICIAN, ""), -EINVAL);
	CHECK_INT(limits_unlock_check(LIMITS_ROLE_PHYSICIAN, " \t"), -EINVAL);
	CHECK_INT(limits_unlock_check(LIMITS_ROLE_PHYSICIAN, NULL), -EINVAL);
	CHECK_INT(feed(x, &l, 2000), 2);
	CHECK(limits_session_locked(x->s));
	CHECK_INT(limits_session_unlocked(x->s, LIMITS_ROLE_AESTHETICIAN, "please"), -EPERM);
	CHECK(limits_session_locked(x->s));
	CHECK_INT(limits_session_unlocked(x->s, LIMITS_ROLE_PHYSICIAN, ""), -EINVAL);
	CHECK(limits_session_locked(x->s));
	CHECK_INT(limits_session_unlocked(x->s, LIMITS_ROLE_PHYSICIAN, "extended protocol"), 0);
	CHECK(!limits_session_locked(x->s));
	/* The threshold that locked does not lock again in this session. */
	l.needle_on_ms = 2600000;
	CHECK_INT(feed(x, &l, 3000), 0);
	/* Other rules still work after the unlock. */
	l.depth_measured_um = 1800;
	CHECK_INT(feed(x, &l, 3100), 1);
	CHECK_INT(x->a[0].kind, LIMITS_ACTION_CLAMP);
	sup_free(x);
}

/* ---- NL-R03 / NL-R10 / NL-R11 cartridge during a session --------------------- */

static struct nl_record cart_rec(uint8_t event, uint8_t reject, uint8_t uid0, uint16_t len)
{
	struct nl_record r;

	memset(&r, 0, sizeof(r));
	r.hdr.type = NL_RECORD_CARTRIDGE;
	r.hdr.seq = 200;
	r.hdr.session_id = SID;
	r.u.cartridge.event = event;
	r.u.cartridge.reject_reason = reject;
	r.u.cartridge.uid[0] = uid0;
	r.u.cartridge.uid[7] = 0xA5;
	r.u.cartridge.needle_length_um = len;
	r.u.cartridge.needle_count = 12;
	return r;
}

static void r03_session(void)
{
	struct sup *x = sup_new(NULL, NULL);
	struct nl_record r = cart_rec(NL_CARTRIDGE_INSERTED, 0, 0x55, 2500);
	struct nl_limit_set want;
	uint32_t h, got;

	CHECK_INT(feed_rec(x, &r, 2000), 0); /* compliant: 2.5 mm needle */
	r = cart_rec(NL_CARTRIDGE_INSERTED, 0, 0x55, 1500);
	CHECK_INT(feed_rec(x, &r, 2100), 0); /* at threshold: equals the cheeks cap */
	r = cart_rec(NL_CARTRIDGE_INSERTED, 0, 0x55, 1000);
	CHECK_INT(feed_rec(x, &r, 2200), 1); /* violating: clamp every zone to 1.0 */
	CHECK_INT(x->a[0].kind, LIMITS_ACTION_CLAMP);
	CHECK_INT(x->a[0].rule, LIMITS_R03_NEEDLE_LENGTH);
	CHECK_INT(x->a[0].zone, NL_ZONE_NONE);
	CHECK_INT(x->a[0].new_cap_um, 1000);
	/* The derived set of protocol.md 8.3.9, and its hash. */
	want = x->d.set;
	for (unsigned i = 0; i < want.zone_count; i++)
		if (want.zones[i].depth_cap_um > 1000)
			want.zones[i].depth_cap_um = 1000;
	if (want.depth_cap_um > 1000)
		want.depth_cap_um = 1000;
	CHECK_INT(nl_limit_set_hash(&want, &h), 0);
	CHECK(x->a[0].expected_hash == h);
	CHECK(x->a[0].expected_hash != x->d.hash);
	CHECK(memcmp(limits_session_expected_set(x->s, &got), &want, sizeof(want)) == 0);
	CHECK(got == h);
	/* Samples still at the old cap before the pen answers: no second CLAMP. */
	{
		struct nl_live l = live(NL_ZONE_CHEEKS, 1400, 1, 1000);
		CHECK_INT(feed(x, &l, 2250), 0);
	}
	/* The pen answers with another hash: alert and lock. */
	CHECK_INT(limits_session_cp_result(x->s, NL_CP_CLAMP, NL_CP_SUCCESS, h ^ 1, 2300, x->a,
					   LIMITS_ACTIONS_MAX),
		  2);
	CHECK_INT(x->a[0].kind, LIMITS_ACTION_ALERT);
	CHECK_INT(x->a[0].rule, LIMITS_R13_NOT_ACKNOWLEDGED);
	CHECK_INT(x->a[1].kind, LIMITS_ACTION_LOCK);
	sup_free(x);
}

static void r10_session(void)
{
	struct sup *x;
	struct nl_record r;

	x = sup_new(NULL, NULL);
	/* The session's own cartridge re-inserted is not a reuse. */
	memset(&r, 0, sizeof(r));
	r.hdr.type = NL_RECORD_SESSION_START;
	r.hdr.session_id = SID;
	r.u.session_start.limits_hash = x->d.hash;
	r.u.session_start.limit_source = NL_LIMIT_SOURCE_SESSION;
	r.u.session_start.lifetime_s = x->d.lifetime_s;
	memcpy(r.u.session_start.cartridge_uid, x->pen.cartridge.uid, NL_CARTRIDGE_UID_LEN);
	CHECK_INT(feed_rec(x, &r, 1500), 0);
	fake_add(&x->hist, "p-8f3a91", T0 - DAYS(1), Z(NL_ZONE_CHEEKS), 0x66);
	r = cart_rec(NL_CARTRIDGE_INSERTED, 0, 0x77, 2500);
	CHECK_INT(feed_rec(x, &r, 2000), 0);
	/* One used yesterday: lock. */
	r = cart_rec(NL_CARTRIDGE_INSERTED, 0, 0x66, 2500);
	CHECK_INT(feed_rec(x, &r, 2100), 1);
	CHECK_INT(x->a[0].kind, LIMITS_ACTION_LOCK);
	CHECK_INT(x->a[0].rule, LIMITS_R10_CARTRIDGE_REUSED);
	CHECK_INT(x->a[0].lock_reason, NL_LOCK_REASON_CARTRIDGE);
	CHECK(x->a[0].send);
	sup_free(x);

	x = sup_new(NULL, NULL);
	r = cart_rec(NL_CARTRIDGE_EVENT_REJECTED, NL_REJECT_REUSED, 0x66, 2500);
	CHECK_INT(feed_rec(x, &r, 2000), 1);
	CHECK_INT(x->a[0].rule, LIMITS_R10_CARTRIDGE_REUSED);
	sup_free(x);
}

static void r11_session(void)
{
	struct sup *x = sup_new(NULL, NULL);
	struct nl_record r = cart_rec(NL_CARTRIDGE_EVENT_REJECTED, NL_REJECT_EXPIRED, 0x55, 2500);

	CHECK_INT(feed_rec(x, &r, 2000), 1);
	CHECK_INT(x->a[0].kind, LIMITS_ACTION_LOCK);
	CHECK_INT(x->a[0].rule, LIMITS_R11_CARTRIDGE_EXPIRED);
	sup_free(x);
	x = sup_new(NULL, NULL);
	r = cart_rec(NL_CARTRIDGE_INSERTED, 0, 0, 2500);
	r.u.cartridge.uid[7] = 0; /* no uid: unreadable */
	CHECK_INT(feed_rec(x, &r, 2000), 1);
	CHECK_INT(x->a[0].rule, LIMITS_R11_CARTRIDGE_EXPIRED);
	sup_free(x);
}

/* ---- NL-R13 LIMIT record matching -------------------------------------------- */

static void r13_applied(void)
{
	struct sup *x = sup_new(NULL, NULL);
	struct nl_record r = limit_rec(NL_LIMIT_EVENT_APPLIED, NL_LIMIT_ORIGIN_GATEWAY, 0,
				       x->d.hash, 0, 1000, 0);
	int64_t timeout = 60000;

	CHECK_INT(limits_session_tick(x->s, 1000 + timeout - 1, x->a, LIMITS_ACTIONS_MAX), 0);
	r.hdr.session_id = 0; /* written by SET_LIMITS, before AUTHORISE */
	CHECK_INT(feed_rec(x, &r, 1500), 0); /* confirmed in time */
	CHECK_INT(limits_session_tick(x->s, 1000 + timeout, x->a, LIMITS_ACTIONS_MAX), 0);
	sup_free(x);

	x = sup_new(NULL, NULL);
	/* No confirmation: at the deadline, one alert. */
	CHECK_INT(limits_session_tick(x->s, 1000 + timeout - 1, x->a, LIMITS_ACTIONS_MAX), 0);
	CHECK_INT(limits_session_tick(x->s, 1000 + timeout, x->a, LIMITS_ACTIONS_MAX), 1);
	CHECK_INT(x->a[0].kind, LIMITS_ACTION_ALERT);
	CHECK_INT(x->a[0].alert, LIMITS_ALERT_TIMEOUT);
	CHECK_INT(x->a[0].threshold, 60);
	CHECK_INT(x->a[0].rule, LIMITS_R13_NOT_ACKNOWLEDGED);
	CHECK_INT(limits_session_tick(x->s, 1000 + 2 * timeout, x->a, LIMITS_ACTIONS_MAX), 0);
	sup_free(x);
}

static void r13_unknown_hash(void)
{
	struct sup *x = sup_new(NULL, NULL);
	struct nl_record r = limit_rec(NL_LIMIT_EVENT_APPLIED, NL_LIMIT_ORIGIN_GATEWAY, 0,
				       x->d.hash ^ 0x1000, 0, 1000, 0);

	CHECK_INT(feed_rec(x, &r, 2000), 2);
	CHECK_INT(x->a[0].kind, LIMITS_ACTION_ALERT);
	CHECK_INT(x->a[0].alert, LIMITS_ALERT_HASH_MISMATCH);
	CHECK(x->a[0].measured == (x->d.hash ^ 0x1000));
	CHECK(x->a[0].threshold == x->d.hash);
	CHECK_INT(x->a[1].kind, LIMITS_ACTION_LOCK);
	CHECK(x->a[1].send);
	sup_free(x);
}

static void r13_lock_confirm(void)
{
	struct sup *x = sup_new(NULL, NULL);
	struct nl_live l = live(NL_ZONE_CHEEKS, 1000, 6, 1000);
	struct nl_record r;

	CHECK_INT(feed(x, &l, 2000), 2); /* warn + LOCK sent */
	CHECK_INT(limits_session_cp_result(x->s, NL_CP_LOCK, NL_CP_SUCCESS, 0, 2100, x->a,
					   LIMITS_ACTIONS_MAX),
		  0);
	r = limit_rec(NL_LIMIT_EVENT_LOCK, NL_LIMIT_ORIGIN_GATEWAY, 0, x->d.hash, 0, 0,
		      NL_LOCK_REASON_PASSES);
	/* SUCCESS was pending; the record confirms the lock. */
	CHECK_INT(feed_rec(x, &r, 2200), 1);
	CHECK_INT(x->a[0].kind, LIMITS_ACTION_LOCK);
	CHECK(x->a[0].confirmed && !x->a[0].send);
	CHECK_INT(x->a[0].rule, LIMITS_R06_PASSES);
	r = limit_rec(NL_LIMIT_EVENT_APPLIED, NL_LIMIT_ORIGIN_GATEWAY, 0, x->d.hash, 0, 1000, 0);
	CHECK_INT(feed_rec(x, &r, 2300), 0);
	CHECK_INT(limits_session_tick(x->s, 500000, x->a, LIMITS_ACTIONS_MAX), 0);
	/* A gateway LOCK record nobody asked for: alert. */
	r = limit_rec(NL_LIMIT_EVENT_LOCK, NL_LIMIT_ORIGIN_GATEWAY, 0, x->d.hash, 0, 0,
		      NL_LOCK_REASON_OPERATOR);
	CHECK_INT(feed_rec(x, &r, 2400), 1);
	CHECK_INT(x->a[0].kind, LIMITS_ACTION_ALERT);
	sup_free(x);
}

static void r13_lock_missing(void)
{
	struct sup *x = sup_new(NULL, NULL);
	struct nl_live l = live(NL_ZONE_CHEEKS, 1000, 6, 1000);
	struct nl_record r =
		limit_rec(NL_LIMIT_EVENT_APPLIED, NL_LIMIT_ORIGIN_GATEWAY, 0, 0, 0, 1000, 0);

	r.u.limit.limits_hash = x->d.hash;
	CHECK_INT(feed_rec(x, &r, 1500), 0);
	CHECK_INT(feed(x, &l, 2000), 2);
	/* The LOCK is never answered. */
	CHECK_INT(limits_session_tick(x->s, 2000 + 59999, x->a, LIMITS_ACTIONS_MAX), 0);
	CHECK_INT(limits_session_tick(x->s, 2000 + 60000, x->a, LIMITS_ACTIONS_MAX), 1);
	CHECK_INT(x->a[0].kind, LIMITS_ACTION_ALERT);
	CHECK_INT(x->a[0].rule, LIMITS_R06_PASSES);
	sup_free(x);
}

static void r13_session_start(void)
{
	struct sup *x = sup_new(NULL, NULL);
	struct nl_record r;

	memset(&r, 0, sizeof(r));
	r.hdr.type = NL_RECORD_SESSION_START;
	r.hdr.session_id = SID;
	r.u.session_start.limits_hash = x->d.hash + 1;
	r.u.session_start.limit_source = NL_LIMIT_SOURCE_SESSION;
	CHECK_INT(feed_rec(x, &r, 1500), 2);
	CHECK_INT(x->a[0].rule, LIMITS_R13_NOT_ACKNOWLEDGED);
	/* Records of other sessions are not this session's business. */
	r.hdr.session_id = SID + 1;
	CHECK_INT(feed_rec(x, &r, 1600), 0);
	sup_free(x);
}

static void r13_session_end(void)
{
	struct sup *x = sup_new(NULL, NULL);
	struct nl_record r;
	struct nl_live l = live(NL_ZONE_CHEEKS, 2400, 9, 3000000);

	memset(&r, 0, sizeof(r));
	r.hdr.type = NL_RECORD_SESSION_END;
	r.hdr.session_id = SID;
	r.u.session_end.reason = NL_SESSION_END_STOPPED;
	CHECK_INT(feed_rec(x, &r, 2000), 0);
	/* The factory set comes back (FIRMWARE APPLIED, another hash): fine. */
	r = limit_rec(NL_LIMIT_EVENT_APPLIED, NL_LIMIT_ORIGIN_FIRMWARE, 0, 0xFAC70121, 0, 2500, 0);
	r.hdr.session_id = 0;
	CHECK_INT(feed_rec(x, &r, 2100), 0);
	/* After the end nothing is supervised. */
	CHECK_INT(feed(x, &l, 2200), 0);
	sup_free(x);

	/* A FIRMWARE APPLIED is never a mismatch, even during the session; a
	 * GATEWAY one with a foreign hash is. */
	x = sup_new(NULL, NULL);
	r = limit_rec(NL_LIMIT_EVENT_APPLIED, NL_LIMIT_ORIGIN_FIRMWARE, 0, 0xFAC70121, 0, 2500, 0);
	CHECK_INT(feed_rec(x, &r, 2000), 0);
	r.u.limit.origin = NL_LIMIT_ORIGIN_GATEWAY;
	CHECK_INT(feed_rec(x, &r, 2100), 2);
	sup_free(x);
}

static void r02_firmware_clamp(void)
{
	struct sup *x = sup_new(NULL, NULL);
	struct nl_record r = limit_rec(NL_LIMIT_EVENT_CLAMP, NL_LIMIT_ORIGIN_FIRMWARE,
				       NL_ZONE_CHEEKS, x->d.hash, 2000, 1500, 0);

	/* The pen clamped to our cap: reported as an applied clamp. */
	CHECK_INT(feed_rec(x, &r, 2000), 1);
	CHECK_INT(x->a[0].kind, LIMITS_ACTION_CLAMP);
	CHECK(!x->a[0].send);
	CHECK_INT(x->a[0].threshold, 1500);
	/* The pen clamped to a cap above ours: alert. */
	r.u.limit.threshold = 1750;
	CHECK_INT(feed_rec(x, &r, 2100), 1);
	CHECK_INT(x->a[0].kind, LIMITS_ACTION_ALERT);
	CHECK_INT(x->a[0].threshold, 1500);
	sup_free(x);
}

/* ---- NL-R14 lifetime ------------------------------------------------------- */

static void r14_session(void)
{
	struct sup *x = sup_new(NULL, NULL);
	struct nl_live l = live(NL_ZONE_CHEEKS, 1000, 1, 1000);
	int64_t end = 1000 + 43200LL * 1000;
	struct nl_record r;

	CHECK_INT(feed(x, &l, end), 0); /* exactly at the lifetime */
	CHECK_INT(feed(x, &l, end + 1000), 1); /* past it, still at 1.5 mm */
	CHECK_INT(x->a[0].kind, LIMITS_ACTION_LOCK);
	CHECK_INT(x->a[0].rule, LIMITS_R14_LIFETIME);
	sup_free(x);

	x = sup_new(NULL, NULL);
	l.depth_cap_um = 1000; /* fell back: compliant */
	CHECK_INT(feed(x, &l, end + 1000), 0);
	r = limit_rec(NL_LIMIT_EVENT_FALLBACK, NL_LIMIT_ORIGIN_FIRMWARE, 0, 0xDEAD, 0, 1000, 0);
	CHECK_INT(feed_rec(x, &r, end + 2000), 1);
	CHECK_INT(x->a[0].kind, LIMITS_ACTION_WARN);
	CHECK_INT(x->a[0].rule, LIMITS_R14_LIFETIME);
	CHECK_INT(feed_rec(x, &r, end + 3000), 0);
	sup_free(x);
}

static void dedup_queue(void)
{
	struct sup *x = sup_new(NULL, NULL);
	struct nl_live l = live(NL_ZONE_CHEEKS, 1800, 6, 2400000);
	struct limits_action one;
	int total = 0, n;

	/* Several violations in one sample, drained one at a time: none lost. */
	n = limits_session_live(x->s, &l, 2000, &one, 1);
	while (n == 1) {
		total++;
		n = limits_session_live(x->s, &l, 2100, &one, 1);
	}
	CHECK_INT(n, 0);
	CHECK_INT(total, 5); /* clamp, pass warn, pass lock, time warn, time lock */
	sup_free(x);
}

/* The LIMIT APPLIED of the authorised set, as the pen writes it. */
static void applied(struct sup *x)
{
	struct nl_record r = limit_rec(NL_LIMIT_EVENT_APPLIED, NL_LIMIT_ORIGIN_GATEWAY, 0, 0, 0,
				       1000, 0);

	r.u.limit.limits_hash = x->d.hash;
	CHECK_INT(feed_rec(x, &r, 1500), 0);
}

/* F4: a CLAMP is applied when the pen confirms it, not on its SUCCESS. */
static void r13_clamp_confirm(void)
{
	struct sup *x = sup_new(NULL, NULL);
	struct nl_live l = live(NL_ZONE_CHEEKS, 1800, 1, 1000);
	struct nl_record r;
	char msg[256];

	applied(x);
	CHECK_INT(feed(x, &l, 2000), 1);
	CHECK_INT(limits_session_cp_result(x->s, NL_CP_CLAMP, NL_CP_SUCCESS, x->d.hash, 2100, x->a,
					   LIMITS_ACTIONS_MAX),
		  0);
	/* The record (cap 1.5 mm on the cheeks, origin GATEWAY) confirms. */
	r = limit_rec(NL_LIMIT_EVENT_CLAMP, NL_LIMIT_ORIGIN_GATEWAY, NL_ZONE_CHEEKS, x->d.hash,
		      2000, 1500, 0);
	CHECK_INT(feed_rec(x, &r, 2200), 1);
	CHECK_INT(x->a[0].kind, LIMITS_ACTION_CLAMP);
	CHECK(x->a[0].confirmed && !x->a[0].send);
	CHECK_INT(x->a[0].rule, LIMITS_R02_ZONE_DEPTH_CAP);
	CHECK_INT(x->a[0].threshold, 1500);
	CHECK(limits_action_message(&x->a[0], msg, sizeof(msg)) > 0);
	CHECK_STR(msg, "cap 1.50 mm on cheeks confirmed by the pen (depth cap per zone)");
	CHECK_INT(limits_session_tick(x->s, 500000, x->a, LIMITS_ACTIONS_MAX), 0);
	sup_free(x);

	/* The record before the answer: confirmed once SUCCESS comes. */
	x = sup_new(NULL, NULL);
	CHECK_INT(feed(x, &l, 2000), 1);
	r = limit_rec(NL_LIMIT_EVENT_CLAMP, NL_LIMIT_ORIGIN_GATEWAY, NL_ZONE_CHEEKS, x->d.hash,
		      2000, 1500, 0);
	CHECK_INT(feed_rec(x, &r, 2050), 0);
	CHECK_INT(limits_session_cp_result(x->s, NL_CP_CLAMP, NL_CP_SUCCESS, x->d.hash, 2100, x->a,
					   LIMITS_ACTIONS_MAX),
		  1);
	CHECK(x->a[0].confirmed);
	sup_free(x);

	/* No record (the CLAMP changed nothing): Live Status at the cap. */
	x = sup_new(NULL, NULL);
	CHECK_INT(feed(x, &l, 2000), 1);
	CHECK_INT(limits_session_cp_result(x->s, NL_CP_CLAMP, NL_CP_SUCCESS, x->d.hash, 2100, x->a,
					   LIMITS_ACTIONS_MAX),
		  0);
	l = live(NL_ZONE_CHEEKS, 1500, 1, 1200);
	CHECK_INT(feed(x, &l, 2200), 1);
	CHECK(x->a[0].confirmed && x->a[0].kind == LIMITS_ACTION_CLAMP);
	CHECK_INT(feed(x, &l, 2300), 0); /* once */
	sup_free(x);
}

/* F4: a pen that answers SUCCESS but never shows the CLAMP: failed. */
static void r13_clamp_unconfirmed(void)
{
	struct sup *x = sup_new(NULL, NULL);
	struct nl_live l = live(NL_ZONE_CHEEKS, 1800, 1, 1000);

	applied(x);
	CHECK_INT(feed(x, &l, 2000), 1);
	CHECK_INT(limits_session_cp_result(x->s, NL_CP_CLAMP, NL_CP_SUCCESS, x->d.hash, 2100, x->a,
					   LIMITS_ACTIONS_MAX),
		  0);
	/* No record, and the pen never shows the cheeks again. */
	l = live(NL_ZONE_FOREHEAD, 300, 1, 1100);
	l.state = NL_PEN_STATE_ARMED;
	l.flags = 0;
	l.depth_cap_um = 500;
	CHECK_INT(feed(x, &l, 2200), 0);
	CHECK_INT(limits_session_tick(x->s, 2000 + 59999, x->a, LIMITS_ACTIONS_MAX), 0);
	CHECK_INT(limits_session_tick(x->s, 2000 + 60000, x->a, LIMITS_ACTIONS_MAX), 1);
	CHECK_INT(x->a[0].kind, LIMITS_ACTION_ALERT);
	CHECK_INT(x->a[0].alert, LIMITS_ALERT_TIMEOUT);
	CHECK_INT(x->a[0].rule, LIMITS_R02_ZONE_DEPTH_CAP);
	CHECK_INT(limits_session_tick(x->s, 2000 + 90000, x->a, LIMITS_ACTIONS_MAX), 0);
	sup_free(x);
}

/* F4: a pen that keeps treating after acknowledging a LOCK. */
static void r13_lock_ignored(void)
{
	struct sup *x = sup_new(NULL, NULL);
	struct nl_live l = live(NL_ZONE_CHEEKS, 1000, 6, 1000);
	struct nl_record r;
	char msg[256];

	applied(x);
	CHECK_INT(feed(x, &l, 2000), 2); /* warn + LOCK sent */
	CHECK_INT(x->a[1].kind, LIMITS_ACTION_LOCK);
	CHECK_INT(limits_session_cp_result(x->s, NL_CP_LOCK, NL_CP_SUCCESS, 0, 2100, x->a,
					   LIMITS_ACTIONS_MAX),
		  0);
	/* The first sample after the answer may predate the lock. */
	CHECK_INT(feed(x, &l, 2200), 0);
	CHECK_INT(feed(x, &l, 2300), 1);
	CHECK_INT(x->a[0].kind, LIMITS_ACTION_ALERT);
	CHECK_INT(x->a[0].alert, LIMITS_ALERT_RUNNING_LOCKED);
	CHECK_INT(x->a[0].severity, LIMITS_SEVERITY_CRITICAL);
	CHECK_INT(x->a[0].rule, LIMITS_R06_PASSES);
	CHECK(limits_action_message(&x->a[0], msg, sizeof(msg)) > 0);
	CHECK_STR(msg, "pen keeps treating after acknowledging the lock for passes per zone");
	CHECK_INT(feed(x, &l, 2400), 0); /* once per lock */
	/* Its failure is reported: no timeout alert besides. */
	CHECK_INT(limits_session_tick(x->s, 500000, x->a, LIMITS_ACTIONS_MAX), 0);
	sup_free(x);

	/* A locked pen (Live LOCKED) confirms the lock; a run recorded after
	 * its LIMIT LOCK record is a pen running while locked. */
	x = sup_new(NULL, NULL);
	l = live(NL_ZONE_CHEEKS, 1000, 6, 1000);
	CHECK_INT(feed(x, &l, 2000), 2);
	CHECK_INT(limits_session_cp_result(x->s, NL_CP_LOCK, NL_CP_SUCCESS, 0, 2100, x->a,
					   LIMITS_ACTIONS_MAX),
		  0);
	r = limit_rec(NL_LIMIT_EVENT_LOCK, NL_LIMIT_ORIGIN_GATEWAY, 0, x->d.hash, 0, 0,
		      NL_LOCK_REASON_PASSES);
	CHECK_INT(feed_rec(x, &r, 2200), 1);
	CHECK(x->a[0].confirmed);
	memset(&r, 0, sizeof(r));
	r.hdr.type = NL_RECORD_SEGMENT;
	r.hdr.session_id = SID;
	r.u.segment.zone = NL_ZONE_CHEEKS;
	r.u.segment.depth_set_um = 1000;
	r.u.segment.depth_measured_um = 1000;
	r.u.segment.pass = 7;
	r.u.segment.run_ms = 3000;
	r.u.segment.end_reason = NL_SEGMENT_END_LOCK; /* the run the lock cut */
	CHECK_INT(feed_rec(x, &r, 2300), 0);
	r.u.segment.end_reason = NL_SEGMENT_END_OPERATOR;
	CHECK_INT(feed_rec(x, &r, 2400), 1);
	CHECK_INT(x->a[0].alert, LIMITS_ALERT_RUNNING_LOCKED);
	sup_free(x);
}

static const struct tcase cases[] = {
	{"NL-R02 depth compliant, at threshold, violating -> CLAMP", r02_depth},
	{"NL-R02 dedup: one CLAMP for many samples", dedup_depth},
	{"NL-R02 pen ignores an acknowledged clamp -> LOCK", r02_ignored_clamp_locks},
	{"NL-R02 pen refuses the clamp -> alert and LOCK", r02_clamp_refused_locks},
	{"NL-R02 pen cap above the expected cap -> CLAMP", r02_pen_cap_above},
	{"NL-R02 dial pen held off above the cap is compliant", r02_dial_pen},
	{"NL-R02 firmware clamp reported, mismatch alerted", r02_firmware_clamp},
	{"NL-R04 skin type VI cap enforced in session", r04_session},
	{"NL-R01 factory cap enforced in session", r01_session},
	{"NL-R06 passes warn at 3, pen zone lock at 5", r06_passes},
	{"NL-R06 pen ignores its zone lock -> LOCK", r06_pen_ignores},
	{"NL-R06 pen warns at another threshold -> alert", r06_mismatch},
	{"NL-R07 needle-on warn 25 min, lock 40 min", r07_needle_on},
	{"NL-R07 pen locked itself: reported, not re-sent", r07_pen_locked_itself},
	{"unlock needs physician and reason (NL-R07 not again)", unlock},
	{"NL-R03 shorter needle inserted -> CLAMP with derived hash", r03_session},
	{"NL-R10 cartridge reuse in session -> LOCK", r10_session},
	{"NL-R11 cartridge expired or unreadable in session -> LOCK", r11_session},
	{"NL-R13 LIMIT APPLIED confirmed or missing", r13_applied},
	{"NL-R13 unknown hash in a LIMIT record -> alert and LOCK", r13_unknown_hash},
	{"NL-R13 LOCK confirmed by record; unexpected LOCK alerted", r13_lock_confirm},
	{"NL-R13 LOCK never answered -> alert", r13_lock_missing},
	{"NL-R13 CLAMP applied when confirmed (record, Live Status)", r13_clamp_confirm},
	{"NL-R13 CLAMP answered but never shown -> alert", r13_clamp_unconfirmed},
	{"NL-R13 pen treating after an acknowledged LOCK -> alert", r13_lock_ignored},
	{"NL-R13 SESSION_START with another hash", r13_session_start},
	{"NL-R13 session end and factory set re-applied", r13_session_end},
	{"NL-R14 running past the lifetime without fallback -> LOCK", r14_session},
	{"dedup: queued actions drain without loss", dedup_queue},
};

int main(int argc, char **argv)
{
	return run_cases(cases, sizeof(cases) / sizeof(cases[0]), argc, argv);
}
