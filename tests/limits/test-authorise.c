/* SPDX-License-Identifier: MIT */
/* limits_authorise(): BLOCK rules against a fake history, the three tiers,
 * the effective limit set and its encoding and hash. */
#include <stdio.h>

#include "fake.h"
#include "harness.h"
#include "needlelink/crc.h"

struct run {
	struct limits_policy *policy;
	struct limits_pen_facts pen;
	struct limits_request req;
	struct fake_history hist;
	struct limits_decision d;
	int r;
};

static struct run *run_new(const char *policy_text)
{
	struct run *x = calloc(1, sizeof(*x));

	if (!x)
		abort();
	x->policy = policy_from(policy_text);
	x->pen = pen_default();
	x->req = req_default();
	return x;
}

static int run_eval(struct run *x, int64_t now)
{
	memset(&x->d, 0xEE, sizeof(x->d)); /* written only on success */
	x->r = limits_authorise(x->policy, &x->req, &x->pen, &fake_ops, &x->hist, now, &x->d);
	return x->r;
}

static void run_free(struct run *x)
{
	limits_policy_free(x->policy);
	free(x);
}

static uint16_t cap_of(const struct run *x, unsigned zone)
{
	return nl_limit_set_zone_cap(&x->d.set, zone);
}

static enum limits_rule rule_of(const struct run *x, unsigned zone)
{
	for (unsigned i = 0; i < x->d.set.zone_count; i++)
		if (x->d.set.zones[i].zone == zone)
			return x->d.cap_rule[1 + i];
	return x->d.cap_rule[0];
}

/* ---- NL-R01 device maximum depth ---------------------------------------- */

static void r01_compliant(void)
{
	struct run *x = run_new(NULL);
	x->req.zones[0] = NL_ZONE_SCAR;
	x->req.protocol_scar = true;
	CHECK_INT(run_eval(x, T0), 0);
	CHECK_INT(x->d.verdict, LIMITS_VERDICT_AUTHORISE);
	CHECK_INT(cap_of(x, NL_ZONE_SCAR), 2000); /* pen 2.5 mm: the zone cap binds */
	CHECK_INT(rule_of(x, NL_ZONE_SCAR), LIMITS_R02_ZONE_DEPTH_CAP);
	run_free(x);
}

static void r01_threshold(void)
{
	struct run *x = run_new("[NL-R01]\nmax_mm = 2.0\n");
	x->req.zones[0] = NL_ZONE_SCAR;
	x->req.protocol_scar = true;
	x->pen.feature.depth_max_um = 2000;
	CHECK_INT(run_eval(x, T0), 0);
	CHECK_INT(cap_of(x, NL_ZONE_SCAR), 2000);
	run_free(x);
}

static void r01_violating(void)
{
	struct run *x = run_new(NULL);
	x->req.zones[0] = NL_ZONE_SCAR;
	x->req.protocol_scar = true;
	x->pen.feature.depth_max_um = 1200; /* a pen shallower than the policy */
	CHECK_INT(run_eval(x, T0), 0);
	CHECK_INT(cap_of(x, NL_ZONE_SCAR), 1200);
	CHECK_INT(rule_of(x, NL_ZONE_SCAR), LIMITS_R01_DEVICE_MAX_DEPTH);
	CHECK(x->d.set.depth_cap_um <= 1200);
	run_free(x);

	x = run_new("[NL-R01]\nmax_mm = 1.25\n[NL-R02]\nscar_mm = 1.25\nstretch_marks_mm = 1.25\n"
		    "body_mm = 1.25\nscalp_mm = 1.25\ncheeks_mm = 1.25\nchin_mm = 1.25\n");
	x->req.zones[0] = NL_ZONE_CHEEKS;
	CHECK_INT(run_eval(x, T0), 0);
	CHECK_INT(cap_of(x, NL_ZONE_CHEEKS), 1250);
	run_free(x);
}

/* ---- NL-R02 zone caps ----------------------------------------------------- */

static void r02_caps(void)
{
	static const struct {
		unsigned zone;
		uint16_t cap;
	} want[] = {
		{NL_ZONE_PERIORBITAL, 500}, {NL_ZONE_NOSE, 500},     {NL_ZONE_UPPER_LIP, 750},
		{NL_ZONE_PERIORAL, 750},    {NL_ZONE_FOREHEAD, 750}, {NL_ZONE_GLABELLA, 750},
		{NL_ZONE_CHEEKS, 1500},	    {NL_ZONE_CHIN, 1500},    {NL_ZONE_NECK, 1000},
		{NL_ZONE_CHEST, 750},	    {NL_ZONE_SCAR, 2000},    {NL_ZONE_STRETCH_MARKS, 2000},
		{NL_ZONE_BODY, 2000},	    {NL_ZONE_SCALP, 1500},   {NL_ZONE_CHEEKBONES, 1000},
	};
	struct run *x = run_new(NULL);

	x->req.protocol_scar = x->req.protocol_body = true;
	x->req.n_zones = 15;
	for (unsigned i = 0; i < 15; i++)
		x->req.zones[i] = (uint8_t)want[14 - i].zone; /* unsorted on purpose */
	CHECK_INT(run_eval(x, T0), 0);
	CHECK_INT(x->d.set.zone_count, 15);
	for (unsigned i = 0; i < 15; i++) {
		CHECK_INT(cap_of(x, want[i].zone), want[i].cap);
		CHECK_INT(rule_of(x, want[i].zone), LIMITS_R02_ZONE_DEPTH_CAP);
	}
	for (unsigned i = 1; i < x->d.set.zone_count; i++)
		CHECK(x->d.set.zones[i - 1].zone < x->d.set.zones[i].zone);
	/* Zones not planned get default_mm. */
	CHECK_INT(x->d.set.depth_cap_um, 500);
	run_free(x);
}

static void r02_protocol(void)
{
	struct run *x = run_new(NULL);

	x->req.n_zones = 2;
	x->req.zones[0] = NL_ZONE_SCAR;
	x->req.zones[1] = NL_ZONE_STRETCH_MARKS;
	CHECK_INT(run_eval(x, T0), 0);
	/* Without their protocols the deep caps do not apply. */
	CHECK_INT(cap_of(x, NL_ZONE_SCAR), 500);
	CHECK_INT(cap_of(x, NL_ZONE_STRETCH_MARKS), 500);
	CHECK(find(x->d.warnings, x->d.n_warnings, LIMITS_R02_ZONE_DEPTH_CAP, NL_ZONE_SCAR));
	x->req.protocol_scar = true;
	CHECK_INT(run_eval(x, T0), 0);
	CHECK_INT(cap_of(x, NL_ZONE_SCAR), 2000);
	CHECK_INT(cap_of(x, NL_ZONE_STRETCH_MARKS), 500);
	run_free(x);
}

/* ---- NL-R03 needle length -------------------------------------------------- */

static void r03_needle(void)
{
	struct run *x = run_new(NULL);

	x->pen.cartridge.needle_length_um = 2500;
	CHECK_INT(run_eval(x, T0), 0);
	CHECK_INT(cap_of(x, NL_ZONE_CHEEKS), 1500); /* compliant */
	x->pen.cartridge.needle_length_um = 1500;
	CHECK_INT(run_eval(x, T0), 0);
	CHECK_INT(cap_of(x, NL_ZONE_CHEEKS), 1500); /* at threshold */
	x->pen.cartridge.needle_length_um = 1000;
	CHECK_INT(run_eval(x, T0), 0);
	CHECK_INT(cap_of(x, NL_ZONE_CHEEKS), 1000); /* violating: the needle binds */
	CHECK_INT(rule_of(x, NL_ZONE_CHEEKS), LIMITS_R03_NEEDLE_LENGTH);
	CHECK(x->d.set.depth_cap_um <= 1000);
	run_free(x);
}

/* ---- NL-R04 skin type -------------------------------------------------------- */

static void r04_skin(void)
{
	struct run *x = run_new(NULL);

	x->req.skin_type = 4;
	CHECK_INT(run_eval(x, T0), 0);
	CHECK_INT(cap_of(x, NL_ZONE_CHEEKS), 1500);
	CHECK(!find(x->d.warnings, x->d.n_warnings, LIMITS_R04_SKIN_TYPE, -1));
	x->req.skin_type = 5; /* the threshold type */
	CHECK_INT(run_eval(x, T0), 0);
	CHECK_INT(cap_of(x, NL_ZONE_CHEEKS), 1250);
	CHECK_INT(rule_of(x, NL_ZONE_CHEEKS), LIMITS_R04_SKIN_TYPE);
	CHECK(find(x->d.warnings, x->d.n_warnings, LIMITS_R04_SKIN_TYPE, -1) != NULL);
	CHECK_INT(x->d.verdict, LIMITS_VERDICT_AUTHORISE);
	x->req.skin_type = 6;
	x->req.zones[0] = NL_ZONE_PERIORBITAL;
	CHECK_INT(run_eval(x, T0), 0);
	CHECK_INT(cap_of(x, NL_ZONE_PERIORBITAL), 250);
	CHECK_INT(x->d.set.depth_cap_um, 250); /* default 0.5 - 0.25 */
	run_free(x);

	x = run_new("[NL-R04]\naction = clamp\nreduction_mm = 0.5\n");
	x->req.skin_type = 6;
	CHECK_INT(run_eval(x, T0), 0);
	CHECK_INT(cap_of(x, NL_ZONE_CHEEKS), 1000);
	CHECK(!find(x->d.warnings, x->d.n_warnings, LIMITS_R04_SKIN_TYPE, -1));
	run_free(x);
}

/* ---- NL-R05 operator role ---------------------------------------------------- */

static void r05_role(void)
{
	struct run *x = run_new(NULL);

	CHECK_INT(run_eval(x, T0), 0);
	CHECK_INT(cap_of(x, NL_ZONE_CHEEKS), 1500); /* physician */
	x->req.operator_role = LIMITS_ROLE_NURSE;
	x->req.zones[0] = NL_ZONE_NECK; /* 1.0: at the role cap */
	CHECK_INT(run_eval(x, T0), 0);
	CHECK_INT(cap_of(x, NL_ZONE_NECK), 1000);
	x->req.zones[0] = NL_ZONE_CHEEKS;
	for (unsigned role = LIMITS_ROLE_NURSE; role < LIMITS_ROLE_COUNT; role++) {
		x->req.operator_role = (enum limits_role)role;
		CHECK_INT(run_eval(x, T0), 0);
		CHECK_INT(cap_of(x, NL_ZONE_CHEEKS), 1000);
		CHECK_INT(rule_of(x, NL_ZONE_CHEEKS), LIMITS_R05_OPERATOR_ROLE);
	}
	/* with skin type V on top: 1.0 - 0.25 */
	x->req.skin_type = 5;
	CHECK_INT(run_eval(x, T0), 0);
	CHECK_INT(cap_of(x, NL_ZONE_CHEEKS), 750);
	x->req.operator_role = (enum limits_role)9;
	CHECK_INT(run_eval(x, T0), -EINVAL);
	run_free(x);
}

/* ---- NL-R06 / NL-R07: thresholds in the set ----------------------------------- */

static void r06_r07_set(void)
{
	struct run *x = run_new(NULL);
	const struct nl_zone_limit *e;

	CHECK_INT(run_eval(x, T0), 0);
	CHECK_INT(x->d.set.pass_warn, 3);
	CHECK_INT(x->d.set.pass_lock, 5);
	e = nl_limit_set_find(&x->d.set, NL_ZONE_CHEEKS);
	CHECK(e && e->pass_warn == 3 && e->pass_lock == 5);
	CHECK_INT(x->d.set.needle_on_warn_s, 1500);
	CHECK_INT(x->d.set.needle_on_lock_s, 2400);
	run_free(x);

	x = run_new("[NL-R06]\naction = warn\n[NL-R07]\naction = lock\n");
	CHECK_INT(run_eval(x, T0), 0);
	CHECK_INT(x->d.set.pass_warn, 3);
	CHECK_INT(x->d.set.pass_lock, 0);
	CHECK_INT(x->d.set.needle_on_warn_s, 0);
	CHECK_INT(x->d.set.needle_on_lock_s, 2400);
	run_free(x);
}

/* ---- NL-R08 interval ------------------------------------------------------------ */

static void r08_compliant(void)
{
	struct run *x = run_new(NULL);

	fake_add(&x->hist, "p-8f3a91", T0 - DAYS(60), Z(NL_ZONE_CHEEKS), 1);
	CHECK_INT(run_eval(x, T0), 0);
	CHECK_INT(x->d.verdict, LIMITS_VERDICT_AUTHORISE);
	CHECK(!find(x->d.blocks, x->d.n_blocks, LIMITS_R08_INTERVAL, -1));
	run_free(x);
}

static void r08_threshold(void)
{
	struct run *x = run_new(NULL);
	const struct limits_finding *f;

	fake_add(&x->hist, "p-8f3a91", T0 - DAYS(28), Z(NL_ZONE_CHEEKS), 1);
	CHECK_INT(run_eval(x, T0), 0); /* exactly 28 days: allowed */
	CHECK_INT(x->d.verdict, LIMITS_VERDICT_AUTHORISE);
	CHECK_INT(run_eval(x, T0 - 1), 0); /* one second short */
	CHECK_INT(x->d.verdict, LIMITS_VERDICT_BLOCK);
	f = find(x->d.blocks, x->d.n_blocks, LIMITS_R08_INTERVAL, NL_ZONE_CHEEKS);
	CHECK(f != NULL);
	if (f) {
		CHECK_INT(f->value, 27);
		CHECK_INT(f->threshold, 28);
		CHECK_INT(f->unit, LIMITS_UNIT_DAYS);
	}
	run_free(x);
}

static void r08_violating(void)
{
	struct run *x = run_new(NULL);
	const struct limits_finding *f;
	char msg[256];

	fake_add(&x->hist, "p-8f3a91", T0 - DAYS(14), Z(NL_ZONE_CHEEKS), 1);
	fake_add(&x->hist, "p-other", T0 - DAYS(1), Z(NL_ZONE_CHEEKS), 2);
	CHECK_INT(run_eval(x, T0), 0);
	CHECK_INT(x->d.verdict, LIMITS_VERDICT_BLOCK);
	CHECK_INT(x->d.n_blocks, 1);
	f = find(x->d.blocks, x->d.n_blocks, LIMITS_R08_INTERVAL, NL_ZONE_CHEEKS);
	CHECK(f && f->value == 14 && f->threshold == 28 && f->action == LIMITS_ACT_BLOCK);
	CHECK(f && limits_finding_message(f, msg, sizeof(msg)) > 0);
	CHECK_STR(msg, "last session on cheeks 14 days ago, minimum 28");
	/* The set is computed anyway (for the audit), but the verdict blocks. */
	CHECK(x->d.set.format == 1);
	run_free(x);
}

static void r08_months(void)
{
	struct run *x = run_new(NULL);

	/* Half a year of sessions on several zones. */
	fake_add(&x->hist, "p-8f3a91", T0 - DAYS(180), Z(NL_ZONE_CHEEKS) | Z(NL_ZONE_FOREHEAD), 1);
	fake_add(&x->hist, "p-8f3a91", T0 - DAYS(140), Z(NL_ZONE_CHEEKS), 2);
	fake_add(&x->hist, "p-8f3a91", T0 - DAYS(95), Z(NL_ZONE_CHEEKS) | Z(NL_ZONE_SCAR), 3);
	fake_add(&x->hist, "p-8f3a91", T0 - DAYS(40), Z(NL_ZONE_CHEEKS), 4);
	fake_add(&x->hist, "p-8f3a91", T0 - DAYS(10), Z(NL_ZONE_FOREHEAD), 5);
	x->req.n_zones = 3;
	x->req.zones[0] = NL_ZONE_CHEEKS;
	x->req.zones[1] = NL_ZONE_SCAR;
	x->req.zones[2] = NL_ZONE_FOREHEAD;
	x->req.protocol_scar = true;
	CHECK_INT(run_eval(x, T0), 0);
	CHECK_INT(x->d.verdict, LIMITS_VERDICT_BLOCK);
	CHECK_INT(x->d.n_blocks, 1);
	CHECK(find(x->d.blocks, x->d.n_blocks, LIMITS_R08_INTERVAL, NL_ZONE_FOREHEAD) != NULL);
	/* Eighteen days later the forehead is due too. */
	CHECK_INT(run_eval(x, T0 + DAYS(18)), 0);
	CHECK_INT(x->d.verdict, LIMITS_VERDICT_AUTHORISE);
	run_free(x);
}

static void r08_override(void)
{
	struct run *x = run_new(NULL);
	const struct limits_finding *f;

	fake_add(&x->hist, "p-8f3a91", T0 - DAYS(24), Z(NL_ZONE_CHEEKS), 1);
	CHECK_INT(run_eval(x, T0), 0);
	CHECK_INT(x->d.verdict, LIMITS_VERDICT_BLOCK);
	x->req.has_override = true;
	snprintf(x->req.override_physician, sizeof(x->req.override_physician), "dr-2");
	snprintf(x->req.override_reason, sizeof(x->req.override_reason),
		 "interval 24 days agreed at review");
	CHECK_INT(run_eval(x, T0), 0);
	CHECK_INT(x->d.verdict, LIMITS_VERDICT_AUTHORISE);
	CHECK(x->d.override_applied);
	/* Exactly 21 days: allowed with the override. */
	CHECK_INT(run_eval(x, T0 - DAYS(3)), 0);
	CHECK_INT(x->d.verdict, LIMITS_VERDICT_AUTHORISE);
	/* 20 days: not even a physician goes below 21. */
	CHECK_INT(run_eval(x, T0 - DAYS(4)), 0);
	CHECK_INT(x->d.verdict, LIMITS_VERDICT_BLOCK);
	f = find(x->d.blocks, x->d.n_blocks, LIMITS_R08_INTERVAL, NL_ZONE_CHEEKS);
	CHECK(f && f->value == 20 && f->threshold == 21);
	/* An override without a reason is a malformed request. */
	x->req.override_reason[0] = '\0';
	CHECK_INT(run_eval(x, T0), -EINVAL);
	run_free(x);
}

static void r08_override_does_not_relax_others(void)
{
	struct run *x = run_new(NULL);

	x->req.has_override = true;
	snprintf(x->req.override_physician, sizeof(x->req.override_physician), "dr-2");
	snprintf(x->req.override_reason, sizeof(x->req.override_reason), "review");
	x->req.contraindications = LIMITS_CI_PREGNANCY;
	x->req.operator_role = LIMITS_ROLE_NURSE;
	CHECK_INT(run_eval(x, T0), 0);
	CHECK_INT(x->d.verdict, LIMITS_VERDICT_BLOCK);
	CHECK(find(x->d.blocks, x->d.n_blocks, LIMITS_R12_CONTRAINDICATION, -1) != NULL);
	CHECK_INT(cap_of(x, NL_ZONE_CHEEKS), 1000);
	CHECK(!x->d.override_applied);
	run_free(x);
}

static void r08_warn_policy(void)
{
	struct run *x = run_new("[NL-R08]\naction = warn\n");

	fake_add(&x->hist, "p-8f3a91", T0 - DAYS(14), Z(NL_ZONE_CHEEKS), 1);
	CHECK_INT(run_eval(x, T0), 0);
	CHECK_INT(x->d.verdict, LIMITS_VERDICT_AUTHORISE);
	CHECK(find(x->d.warnings, x->d.n_warnings, LIMITS_R08_INTERVAL, NL_ZONE_CHEEKS) != NULL);
	run_free(x);
}

/* ---- NL-R09 sessions per course ------------------------------------------------- */

static void add_course(struct fake_history *h, unsigned n, int64_t last)
{
	/* n sessions 30 days apart, the latest at last. */
	for (unsigned i = 0; i < n; i++)
		fake_add(h, "p-8f3a91", last - DAYS(30) * (int64_t)i, Z(NL_ZONE_SCAR),
			 (uint8_t)(10 + i));
}

static void r09_course(void)
{
	struct run *x;
	const struct limits_finding *f;

	x = run_new(NULL);
	add_course(&x->hist, 3, T0 - DAYS(30));
	CHECK_INT(run_eval(x, T0), 0); /* compliant: session 4 */
	CHECK_INT(x->d.verdict, LIMITS_VERDICT_AUTHORISE);
	CHECK(!find(x->d.warnings, x->d.n_warnings, LIMITS_R09_COURSE, -1));
	run_free(x);

	x = run_new(NULL);
	add_course(&x->hist, 5, T0 - DAYS(30));
	CHECK_INT(run_eval(x, T0), 0); /* session 6: the warning threshold */
	CHECK_INT(x->d.verdict, LIMITS_VERDICT_AUTHORISE);
	f = find(x->d.warnings, x->d.n_warnings, LIMITS_R09_COURSE, -1);
	CHECK(f && f->value == 6 && f->threshold == 6 && f->unit == LIMITS_UNIT_SESSIONS);
	run_free(x);

	x = run_new(NULL);
	add_course(&x->hist, 7, T0 - DAYS(30));
	CHECK_INT(run_eval(x, T0), 0); /* session 8: the block threshold, allowed */
	CHECK_INT(x->d.verdict, LIMITS_VERDICT_AUTHORISE);
	run_free(x);

	x = run_new(NULL);
	add_course(&x->hist, 8, T0 - DAYS(30));
	CHECK_INT(run_eval(x, T0), 0); /* session 9: blocked */
	CHECK_INT(x->d.verdict, LIMITS_VERDICT_BLOCK);
	f = find(x->d.blocks, x->d.n_blocks, LIMITS_R09_COURSE, -1);
	CHECK(f && f->value == 9 && f->threshold == 8);
	/* A year and a half later the old course no longer counts. */
	CHECK_INT(run_eval(x, T0 + DAYS(400)), 0);
	CHECK_INT(x->d.verdict, LIMITS_VERDICT_AUTHORISE);
	run_free(x);
}

static void r09_window(void)
{
	struct run *x = run_new("[NL-R09]\ncourse_days = 180\n");

	/* 14 monthly sessions over 14 months: 6 of them within 180 days. */
	add_course(&x->hist, 14, T0 - DAYS(30));
	CHECK_INT(run_eval(x, T0), 0);
	CHECK_INT(x->d.verdict, LIMITS_VERDICT_AUTHORISE);
	CHECK(find(x->d.warnings, x->d.n_warnings, LIMITS_R09_COURSE, -1) != NULL);
	/* With the default 365 days, 12 count: blocked. */
	limits_policy_free(x->policy);
	x->policy = policy_from(NULL);
	CHECK_INT(run_eval(x, T0), 0);
	CHECK_INT(x->d.verdict, LIMITS_VERDICT_BLOCK);
	run_free(x);
}

/* ---- NL-R10 / NL-R11 cartridge ---------------------------------------------------- */

static void r10_reuse(void)
{
	struct run *x = run_new(NULL);
	const struct limits_finding *f;

	CHECK_INT(run_eval(x, T0), 0); /* a new cartridge: compliant */
	CHECK(!find(x->d.blocks, x->d.n_blocks, LIMITS_R10_CARTRIDGE_REUSED, -1));
	/* at threshold: used 0 times before, in another patient's history a
	 * different uid */
	fake_add(&x->hist, "p-other", T0 - DAYS(2), Z(NL_ZONE_CHEEKS), 0x76);
	CHECK_INT(run_eval(x, T0), 0);
	CHECK_INT(x->d.verdict, LIMITS_VERDICT_AUTHORISE);
	/* violating: used once, by another patient */
	fake_add(&x->hist, "p-other", T0 - DAYS(1), Z(NL_ZONE_CHEEKS), 0x77);
	CHECK_INT(run_eval(x, T0), 0);
	CHECK_INT(x->d.verdict, LIMITS_VERDICT_BLOCK);
	f = find(x->d.blocks, x->d.n_blocks, LIMITS_R10_CARTRIDGE_REUSED, -1);
	CHECK(f && f->value == 1 && f->detail == 1);
	run_free(x);

	/* The pen's own account (another gateway's session) is enough. */
	x = run_new(NULL);
	x->pen.status.flags |= NL_STATUS_CARTRIDGE_USED;
	CHECK_INT(run_eval(x, T0), 0);
	CHECK(find(x->d.blocks, x->d.n_blocks, LIMITS_R10_CARTRIDGE_REUSED, -1) != NULL);
	run_free(x);
}

static void r11_expired(void)
{
	struct run *x = run_new(NULL);
	uint32_t now_pen = (uint32_t)(T0 - NL_PEN_EPOCH_UNIX);

	x->pen.cartridge.expiry = now_pen + 1;
	CHECK_INT(run_eval(x, T0), 0); /* one second left */
	CHECK_INT(x->d.verdict, LIMITS_VERDICT_AUTHORISE);
	x->pen.cartridge.expiry = now_pen; /* at the expiry instant: expired */
	CHECK_INT(run_eval(x, T0), 0);
	CHECK_INT(x->d.verdict, LIMITS_VERDICT_BLOCK);
	CHECK(find(x->d.blocks, x->d.n_blocks, LIMITS_R11_CARTRIDGE_EXPIRED, -1) != NULL);
	/* Without a set clock the date cannot be judged; the pen's flag can. */
	x->pen.status.flags |= NL_STATUS_CLOCK_NOT_SET;
	CHECK_INT(run_eval(x, T0), 0);
	CHECK_INT(x->d.verdict, LIMITS_VERDICT_AUTHORISE);
	x->pen.status.flags |= NL_STATUS_CARTRIDGE_EXPIRED;
	CHECK_INT(run_eval(x, T0), 0);
	CHECK_INT(x->d.verdict, LIMITS_VERDICT_BLOCK);
	run_free(x);

	x = run_new(NULL);
	memset(x->pen.cartridge.uid, 0, sizeof(x->pen.cartridge.uid)); /* unreadable */
	CHECK_INT(run_eval(x, T0), 0);
	CHECK_INT(x->d.verdict, LIMITS_VERDICT_BLOCK);
	CHECK(find(x->d.blocks, x->d.n_blocks, LIMITS_R11_CARTRIDGE_EXPIRED, -1) != NULL);
	run_free(x);
}

/* ---- NL-R12 contraindications --------------------------------------------------- */

static void r12_ci(void)
{
	struct run *x = run_new(NULL);
	char msg[256];

	CHECK_INT(run_eval(x, T0), 0);
	CHECK_INT(x->d.verdict, LIMITS_VERDICT_AUTHORISE);
	x->req.contraindications = LIMITS_CI_PREGNANCY | LIMITS_CI_ANTICOAGULANTS;
	CHECK_INT(run_eval(x, T0), 0);
	CHECK_INT(x->d.verdict, LIMITS_VERDICT_BLOCK);
	CHECK_INT(x->d.n_blocks, 2);
	CHECK(limits_finding_message(&x->d.blocks[1], msg, sizeof(msg)) > 0);
	CHECK_STR(msg, "contraindication declared: pregnancy");
	x->req.contraindications = 1u << 15;
	CHECK_INT(run_eval(x, T0), -EINVAL);
	run_free(x);

	x = run_new("[NL-R12]\nwarn_only = rosacea\n");
	x->req.contraindications = LIMITS_CI_ROSACEA; /* warn only */
	CHECK_INT(run_eval(x, T0), 0);
	CHECK_INT(x->d.verdict, LIMITS_VERDICT_AUTHORISE);
	CHECK(find(x->d.warnings, x->d.n_warnings, LIMITS_R12_CONTRAINDICATION, -1) != NULL);
	x->req.contraindications = LIMITS_CI_ROSACEA | LIMITS_CI_KELOID;
	CHECK_INT(run_eval(x, T0), 0);
	CHECK_INT(x->d.verdict, LIMITS_VERDICT_BLOCK);
	CHECK_INT(x->d.n_blocks, 1);
	CHECK_INT(x->d.blocks[0].detail, LIMITS_CI_KELOID);
	run_free(x);
}

/* ---- NL-R13 read-back ---------------------------------------------------------- */

static void r13_verify(void)
{
	struct run *x = run_new(NULL);
	struct nl_active_limits a;
	struct limits_finding f;

	CHECK_INT(run_eval(x, T0), 0);
	memset(&a, 0, sizeof(a));
	a.source = NL_LIMIT_SOURCE_SESSION;
	a.limits_hash = x->d.hash;
	a.remaining_s = x->d.lifetime_s;
	a.set = x->d.set;
	CHECK_INT(limits_verify_active(&x->d, &a, &f), 0);
	a.set.zones[0].depth_cap_um--; /* the pen holds something else */
	CHECK_INT(nl_limit_set_hash(&a.set, &a.limits_hash), 0);
	CHECK_INT(limits_verify_active(&x->d, &a, &f), 1);
	CHECK_INT(f.rule, LIMITS_R13_NOT_ACKNOWLEDGED);
	CHECK_INT(f.action, LIMITS_ACT_BLOCK);
	CHECK_INT(f.detail, 2);
	a.set = x->d.set;
	a.limits_hash = x->d.hash;
	a.source = NL_LIMIT_SOURCE_FACTORY;
	CHECK_INT(limits_verify_active(&x->d, &a, &f), 1);
	CHECK_INT(f.detail, 1);
	run_free(x);
}

/* ---- NL-R14 lifetime -------------------------------------------------------- */

static void r14_lifetime(void)
{
	struct run *x = run_new(NULL);

	CHECK_INT(run_eval(x, T0), 0);
	CHECK_INT(x->d.lifetime_s, 43200);
	CHECK_INT(x->d.set.lifetime_s, 43200);
	x->req.plan_lifetime_s = 3600; /* the plan shortens */
	CHECK_INT(run_eval(x, T0), 0);
	CHECK_INT(x->d.lifetime_s, 3600);
	x->req.plan_lifetime_s = 86400; /* and cannot lengthen */
	CHECK_INT(run_eval(x, T0), 0);
	CHECK_INT(x->d.lifetime_s, 43200);
	x->req.plan_lifetime_s = 86401;
	CHECK_INT(run_eval(x, T0), -EINVAL);
	run_free(x);
}

/* ---- NL-R15 readiness --------------------------------------------------------- */

static void r15_ready(void)
{
	struct run *x = run_new(NULL);
	const struct limits_finding *f;

	CHECK_INT(run_eval(x, T0), 0);
	CHECK_INT(x->d.verdict, LIMITS_VERDICT_AUTHORISE);
	x->pen.status.state = NL_PEN_STATE_LOCKED;
	x->pen.status.flags |= NL_STATUS_LOCKED;
	CHECK_INT(run_eval(x, T0), 0);
	f = find(x->d.blocks, x->d.n_blocks, LIMITS_R15_PEN_NOT_READY, -1);
	CHECK(f && f->detail == LIMITS_NOT_READY_LOCKED);
	x->pen = pen_default();
	x->pen.status.flags |= NL_STATUS_STORE_FULL;
	CHECK_INT(run_eval(x, T0), 0);
	f = find(x->d.blocks, x->d.n_blocks, LIMITS_R15_PEN_NOT_READY, -1);
	CHECK(f && f->detail == LIMITS_NOT_READY_STORE_FULL);
	x->pen = pen_default();
	x->pen.cartridge.state = NL_CARTRIDGE_NONE;
	CHECK_INT(run_eval(x, T0), 0);
	f = find(x->d.blocks, x->d.n_blocks, LIMITS_R15_PEN_NOT_READY, -1);
	CHECK(f && f->detail == LIMITS_NOT_READY_NO_CARTRIDGE);
	x->pen.feature.flags &= (uint16_t)~NL_FEAT_CARTRIDGE_READER; /* no reader: no check */
	CHECK_INT(run_eval(x, T0), 0);
	CHECK_INT(x->d.verdict, LIMITS_VERDICT_AUTHORISE);
	x->pen = pen_default();
	x->pen.status.state = NL_PEN_STATE_ARMED;
	CHECK_INT(run_eval(x, T0), 0);
	f = find(x->d.blocks, x->d.n_blocks, LIMITS_R15_PEN_NOT_READY, -1);
	CHECK(f && f->detail == LIMITS_NOT_READY_STATE);
	/* Pen Status still IDLE, but the gateway's session is open (AUTHORISE
	 * answered, no SESSION_END yet): not ready. */
	x->pen = pen_default();
	x->pen.session_open = true;
	CHECK_INT(run_eval(x, T0), 0);
	CHECK_INT(x->d.verdict, LIMITS_VERDICT_BLOCK);
	f = find(x->d.blocks, x->d.n_blocks, LIMITS_R15_PEN_NOT_READY, -1);
	CHECK(f && f->detail == LIMITS_NOT_READY_STATE);
	run_free(x);
}

/* ---- tiers --------------------------------------------------------------------- */

static void tiers_strictest(void)
{
	struct run *x = run_new(NULL);
	const struct nl_zone_limit *e;

	/* Factory set: cheeks 1.2 mm and pass lock 4, needle-on lock 30 min. */
	x->pen.have_factory_set = true;
	x->pen.factory_set = (struct nl_limit_set){
		.format = 1,
		.lifetime_s = 86400,
		.depth_cap_um = 2500,
		.needle_on_lock_s = 1800,
		.pass_lock = 4,
		.zone_count = 2,
		.zones = {{NL_ZONE_NOSE, 300, 0, 0}, {NL_ZONE_CHEEKS, 1200, 0, 4}}};
	CHECK_INT(run_eval(x, T0), 0);
	CHECK_INT(cap_of(x, NL_ZONE_CHEEKS), 1200);
	CHECK_INT(rule_of(x, NL_ZONE_CHEEKS), LIMITS_R01_DEVICE_MAX_DEPTH);
	e = nl_limit_set_find(&x->d.set, NL_ZONE_CHEEKS);
	CHECK(e && e->pass_warn == 3 && e->pass_lock == 4);
	CHECK_INT(x->d.set.needle_on_lock_s, 1800);
	CHECK_INT(x->d.set.needle_on_warn_s, 1500);
	/* The factory's nose entry is carried even though the nose is not planned. */
	CHECK_INT(cap_of(x, NL_ZONE_NOSE), 300);
	/* Plan tier: lower is taken, higher is ignored. */
	x->req.plan_cap_um[NL_ZONE_CHEEKS] = 1000;
	CHECK_INT(run_eval(x, T0), 0);
	CHECK_INT(cap_of(x, NL_ZONE_CHEEKS), 1000);
	CHECK_INT(rule_of(x, NL_ZONE_CHEEKS), LIMITS_RULE_NONE);
	x->req.plan_cap_um[NL_ZONE_CHEEKS] = 3000;
	CHECK_INT(run_eval(x, T0), 0);
	CHECK_INT(cap_of(x, NL_ZONE_CHEEKS), 1200);
	run_free(x);
}

static void tiers_plan_cannot_raise(void)
{
	/* A clinic ceiling of 1.0 mm: no plan value raises it. */
	struct run *x = run_new("[NL-R01]\nmax_mm = 1.0\n[NL-R02]\ncheeks_mm = 1.0\nchin_mm = 1.0\n"
				"scalp_mm = 1.0\nscar_mm = 1.0\nstretch_marks_mm = 1.0\n"
				"body_mm = 1.0\n");
	x->req.plan_cap_um[NL_ZONE_CHEEKS] = 2500;
	x->req.plan_cap_um[NL_ZONE_NONE] = 2500;
	x->req.plan_lifetime_s = 80000;
	CHECK_INT(run_eval(x, T0), 0);
	CHECK_INT(cap_of(x, NL_ZONE_CHEEKS), 1000);
	CHECK(x->d.set.depth_cap_um <= 1000);
	CHECK_INT(x->d.lifetime_s, 43200);
	run_free(x);
}

static void tiers_factory_never_exceeded(void)
{
	struct run *x = run_new(NULL);
	static const uint16_t pen_max[] = {300, 800, 1000, 1300, 2000, 3000};
	unsigned checked = 0;

	x->req.n_zones = 1;
	for (unsigned m = 0; m < 6; m++)
		for (unsigned z = 1; z < NL_ZONE_COUNT; z++)
			for (unsigned role = 0; role < LIMITS_ROLE_COUNT; role++)
				for (unsigned skin = 1; skin <= 6; skin++) {
					x->pen.feature.depth_max_um = pen_max[m];
					x->pen.cartridge.needle_length_um = (uint16_t)(z * 150);
					x->req.zones[0] = (uint8_t)z;
					x->req.operator_role = (enum limits_role)role;
					x->req.skin_type = (uint8_t)skin;
					x->req.protocol_scar = x->req.protocol_body = skin & 1;
					x->req.plan_cap_um[z] = (uint16_t)(3000 - 100 * z);
					if (run_eval(x, T0) != 0) {
						CHECK(false);
						continue;
					}
					checked++;
					CHECK(cap_of(x, z) <= pen_max[m]);
					CHECK(cap_of(x, z) <= z * 150);
					CHECK(cap_of(x, z) <= 2500);
					CHECK(cap_of(x, z) >= 1);
					CHECK(x->d.set.depth_cap_um <= pen_max[m]);
					if (role != LIMITS_ROLE_PHYSICIAN)
						CHECK(cap_of(x, z) <= 1000);
				}
	CHECK_INT(checked, 6 * 15 * 4 * 6);
	run_free(x);
}

/* ---- the set on the wire ------------------------------------------------------ */

static void set_encodes(void)
{
	struct run *x = run_new(NULL);
	uint8_t buf[NL_LIMIT_SET_MAX];
	struct nl_limit_set back;
	uint32_t h;
	int n;

	x->req.n_zones = 3;
	x->req.zones[0] = NL_ZONE_SCAR;
	x->req.zones[1] = NL_ZONE_PERIORBITAL;
	x->req.zones[2] = NL_ZONE_CHEEKS;
	x->req.protocol_scar = true;
	CHECK_INT(run_eval(x, T0), 0);
	n = nl_limit_set_encode(&x->d.set, buf, sizeof(buf));
	CHECK_INT(n, NL_LIMIT_SET_HDR_LEN + 5 * 3);
	CHECK_INT(buf[0], 1);
	CHECK_INT(buf[14], 3);
	CHECK_INT(buf[15], NL_ZONE_PERIORBITAL); /* canonical: ascending */
	CHECK_INT(buf[20], NL_ZONE_CHEEKS);
	CHECK_INT(buf[25], NL_ZONE_SCAR);
	CHECK_INT(nl_limit_set_decode(buf, (size_t)n, &back), 0);
	CHECK(memcmp(&back, &x->d.set, sizeof(back)) == 0);
	CHECK_INT(nl_limit_set_hash(&x->d.set, &h), 0);
	CHECK(h == x->d.hash);
	CHECK(h == nl_fnv1a32(buf, (size_t)n));
	CHECK(x->d.policy_hash == limits_policy_hash(x->policy));
	/* Another plan, another hash. */
	x->req.n_zones = 2;
	CHECK_INT(run_eval(x, T0), 0);
	CHECK(x->d.hash != h);
	run_free(x);
}

static void bad_input(void)
{
	struct run *x = run_new(NULL);

	x->req.zones[0] = 0;
	CHECK_INT(run_eval(x, T0), -EINVAL);
	CHECK(x->d.hash == 0xEEEEEEEEu);
	x->req = req_default();
	x->req.n_zones = 2;
	x->req.zones[1] = NL_ZONE_CHEEKS; /* duplicate */
	CHECK_INT(run_eval(x, T0), -EINVAL);
	x->req = req_default();
	x->req.skin_type = 7;
	CHECK_INT(run_eval(x, T0), -EINVAL);
	x->req = req_default();
	x->req.patient[0] = '\0';
	CHECK_INT(run_eval(x, T0), -EINVAL);
	x->req = req_default();
	x->req.operator_id[0] = '\0';
	CHECK_INT(run_eval(x, T0), -EINVAL);
	x->req = req_default();
	x->hist.fail = -EIO; /* the journal failed: nothing is guessed */
	CHECK_INT(run_eval(x, T0), -EIO);
	CHECK(x->d.hash == 0xEEEEEEEEu);
	run_free(x);
}

static const struct tcase cases[] = {
	{"NL-R01 compliant: pen 2.5 mm, zone cap binds", r01_compliant},
	{"NL-R01 at threshold: pen max equal to the zone cap", r01_threshold},
	{"NL-R01 violating: pen shallower than the policy caps the zone", r01_violating},
	{"NL-R02 cap of every zone (compliant and at threshold)", r02_caps},
	{"NL-R02 scar and body caps need their protocol", r02_protocol},
	{"NL-R03 needle length compliant, at threshold, violating", r03_needle},
	{"NL-R04 skin type IV, V at threshold, VI", r04_skin},
	{"NL-R05 physician, nurse at threshold, non-physician roles", r05_role},
	{"NL-R06 NL-R07 thresholds in the limit set", r06_r07_set},
	{"NL-R08 compliant: 60 days", r08_compliant},
	{"NL-R08 at threshold: exactly 28 days", r08_threshold},
	{"NL-R08 violating: 14 days", r08_violating},
	{"NL-R08 history over six months", r08_months},
	{"NL-R08 physician override down to 21 days, not below", r08_override},
	{"NL-R08 override relaxes nothing else (NL-R12 NL-R05)",
	 r08_override_does_not_relax_others},
	{"NL-R08 policy action warn", r08_warn_policy},
	{"NL-R09 course: session 4, 6 (warn), 8 (at block), 9 (blocked)", r09_course},
	{"NL-R09 course window over 14 months", r09_window},
	{"NL-R10 cartridge reuse compliant, at threshold, violating", r10_reuse},
	{"NL-R11 cartridge expiry compliant, at threshold, violating, unreadable", r11_expired},
	{"NL-R12 contraindications block, warn-only", r12_ci},
	{"NL-R13 read-back verification", r13_verify},
	{"NL-R14 lifetime policy and plan", r14_lifetime},
	{"NL-R15 pen readiness", r15_ready},
	{"tiers strictest wins (NL-R01 factory set)", tiers_strictest},
	{"tiers MQTT plan cannot raise a ceiling", tiers_plan_cannot_raise},
	{"tiers factory never exceeded (NL-R01 NL-R03 NL-R05)", tiers_factory_never_exceeded},
	{"set encodes canonically and hashes", set_encodes},
	{"malformed requests and history errors", bad_input},
};

int main(int argc, char **argv)
{
	return run_cases(cases, sizeof(cases) / sizeof(cases[0]), argc, argv);
}
