/* SPDX-License-Identifier: MIT */
/* Rule table and clinic policy file: parsing, bounds, file:line errors, hash. */
#include <errno.h>
#include <stdlib.h>

#include "harness.h"
#include "limits-internal.h"
#include "policy.h"
#include "rules.h"

static const char *example_path;

static struct limits_policy *load(const char *text, int *ret_r)
{
	struct limits_policy *p = NULL;

	if (limits_policy_new(&p) < 0)
		abort();
	*ret_r = limits_policy_load_string(p, "clinic.conf", text);
	return p;
}

/* True when some recorded error equals want exactly. */
static bool has_error(const struct limits_policy *p, const char *want)
{
	for (size_t i = 0; i < limits_policy_n_errors(p); i++)
		if (strcmp(limits_policy_error(p, i), want) == 0)
			return true;
	fprintf(stderr, "  missing error \"%s\"; have:\n", want);
	for (size_t i = 0; i < limits_policy_n_errors(p); i++)
		fprintf(stderr, "    %s\n", limits_policy_error(p, i));
	return false;
}

static void t_table(void)
{
	/* Ids in DOMAIN order, stable, unique, each with a JSON name that the
	 * MQTT schema accepts ([a-z0-9_]). */
	static const char *const names[] = {
		NULL,
		"device_max_depth",
		"zone_depth_cap",
		"needle_length",
		"skin_type_cap",
		"operator_role_cap",
		"passes_per_zone",
		"needle_on_time",
		"interval_same_zone",
		"sessions_per_course",
		"cartridge_reused",
		"cartridge_expired",
		"contraindication",
		"limits_not_acknowledged",
		"authorisation_expired",
		"pen_not_ready",
	};
	for (unsigned r = 1; r < LIMITS_RULE_COUNT; r++) {
		char id[8];
		const struct limits_rule_info *i = limits_rule_info((enum limits_rule)r);
		snprintf(id, sizeof(id), "NL-R%02u", r);
		CHECK(i != NULL);
		CHECK_STR(i->id, id);
		CHECK_STR(i->name, names[r]);
		CHECK_INT(limits_rule_from_string(id), r);
		CHECK_INT(limits_rule_from_string(names[r]), r);
		CHECK(strspn(i->name, "abcdefghijklmnopqrstuvwxyz0123456789_") == strlen(i->name));
		CHECK((i->actions & ~i->actions_allowed) == 0);
		CHECK((i->actions_required & ~i->actions) == 0);
		CHECK(i->actions != 0);
	}
	CHECK(limits_rule_info(LIMITS_RULE_NONE) == NULL);
	CHECK(limits_rule_info(LIMITS_RULE_COUNT) == NULL);
	CHECK_INT(limits_rule_from_string("NL-R99"), -ENOENT);
	/* Only the interval may be relaxed by a physician override. */
	for (unsigned r = 1; r < LIMITS_RULE_COUNT; r++)
		CHECK(limits_rule_info((enum limits_rule)r)->overridable ==
		      (r == LIMITS_R08_INTERVAL));
}

static void t_keys(void)
{
	/* Every configurable rule has a section with keys; a fixed one none;
	 * every bound is ordered; no depth bound goes beyond 2.5 mm. */
	bool has_key[LIMITS_RULE_COUNT] = {false};
	struct limits_policy_key k;
	size_t i;

	for (i = 0; limits_policy_key_info(i, &k) == 0; i++) {
		CHECK(k.min <= k.max);
		if (strstr(k.name, "_mm"))
			CHECK(k.max <= 2500);
		if (k.rule != LIMITS_RULE_NONE) {
			CHECK_STR(k.section, limits_rule_id(k.rule));
			has_key[k.rule] = true;
		}
	}
	CHECK(i > 20);
	CHECK_INT(limits_policy_key_info(i, &k), -ENOENT);
	for (unsigned r = 1; r < LIMITS_RULE_COUNT; r++)
		CHECK(has_key[r] == limits_rule_info((enum limits_rule)r)->configurable);
}

static void t_actions(void)
{
	unsigned m = 0;
	char buf[32];

	CHECK_INT(limits_action_parse("clamp+warn", &m), 0);
	CHECK_INT(m, LIMITS_ACT_CLAMP | LIMITS_ACT_WARN);
	CHECK_INT(limits_action_parse("warn, lock", &m), 0);
	CHECK_INT(m, LIMITS_ACT_WARN | LIMITS_ACT_LOCK);
	CHECK_INT(limits_action_parse("stop", &m), -EINVAL);
	CHECK_INT(limits_action_parse("", &m), -EINVAL);
	CHECK_INT(limits_action_parse("warnx", &m), -EINVAL);
	CHECK_INT(limits_action_format(LIMITS_ACT_LOCK | LIMITS_ACT_BLOCK, buf, sizeof(buf)), 10);
	CHECK_STR(buf, "lock+block");
	CHECK_INT(limits_action_format(LIMITS_ACT_ALL, buf, 4), -ENOBUFS);
}

static void t_defaults(void)
{
	int r;
	struct limits_policy *p = load("", &r);
	const struct limits_values *v = &p->v;

	CHECK_INT(r, 0);
	CHECK_INT(v->max_depth_um, 2500);
	CHECK_INT(v->zone_cap_um[NL_ZONE_PERIORBITAL], 500);
	CHECK_INT(v->zone_cap_um[NL_ZONE_NOSE], 500);
	CHECK_INT(v->zone_cap_um[NL_ZONE_UPPER_LIP], 750);
	CHECK_INT(v->zone_cap_um[NL_ZONE_PERIORAL], 750);
	CHECK_INT(v->zone_cap_um[NL_ZONE_FOREHEAD], 750);
	CHECK_INT(v->zone_cap_um[NL_ZONE_GLABELLA], 750);
	CHECK_INT(v->zone_cap_um[NL_ZONE_CHEEKS], 1500);
	CHECK_INT(v->zone_cap_um[NL_ZONE_CHIN], 1500);
	CHECK_INT(v->zone_cap_um[NL_ZONE_NECK], 1000);
	CHECK_INT(v->zone_cap_um[NL_ZONE_CHEST], 750);
	CHECK_INT(v->zone_cap_um[NL_ZONE_SCAR], 2000);
	CHECK_INT(v->zone_cap_um[NL_ZONE_STRETCH_MARKS], 2000);
	CHECK_INT(v->zone_cap_um[NL_ZONE_BODY], 2000);
	CHECK_INT(v->zone_cap_um[NL_ZONE_SCALP], 1500);
	CHECK_INT(v->skin_reduction_um, 250);
	CHECK_INT(v->non_physician_cap_um, 1000);
	CHECK_INT(v->pass_warn, 3);
	CHECK_INT(v->pass_lock, 5);
	CHECK_INT(v->needle_on_warn_s, 1500);
	CHECK_INT(v->needle_on_lock_s, 2400);
	CHECK_INT(v->interval_days, 28);
	CHECK_INT(v->override_min_days, 21);
	CHECK_INT(v->course_warn, 6);
	CHECK_INT(v->course_block, 8);
	CHECK_INT(v->lifetime_s, 43200);
	CHECK_INT(limits_policy_action(p, LIMITS_R10_CARTRIDGE_REUSED),
		  LIMITS_ACT_LOCK | LIMITS_ACT_BLOCK);
	CHECK_INT(limits_policy_action(p, LIMITS_R04_SKIN_TYPE),
		  LIMITS_ACT_CLAMP | LIMITS_ACT_WARN);
	limits_policy_free(p);
}

static void t_values(void)
{
	int r;
	struct limits_policy *p = load("# clinic A\n"
				       "[policy]\nname = clinic-a 2026-11\n"
				       "[NL-R02]\ncheeks_mm = 1.25 ; thinner skin here\n"
				       "default_mm = 0.25\n"
				       "[NL-R06]\naction = warn\nwarn_passes = 4\nlock_passes = 6\n"
				       "[NL-R07]\nwarn_s = 1200\nlock_s = 1800\n"
				       "[NL-R08]\nmin_days = 42\noverride_min_days = 30\n"
				       "[NL-R12]\nwarn_only = rosacea, active_acne\n"
				       "[NL-R14]\nlifetime_s = 3600\n",
				       &r);
	CHECK_INT(r, 0);
	CHECK_INT(limits_policy_n_errors(p), 0);
	CHECK_STR(limits_policy_name(p), "clinic-a 2026-11");
	CHECK_INT(p->v.zone_cap_um[NL_ZONE_CHEEKS], 1250);
	CHECK_INT(p->v.zone_cap_um[NL_ZONE_NONE], 250);
	CHECK_INT(limits_policy_action(p, LIMITS_R06_PASSES), LIMITS_ACT_WARN);
	CHECK_INT(p->v.pass_warn, 4);
	CHECK_INT(p->v.needle_on_lock_s, 1800);
	CHECK_INT(p->v.interval_days, 42);
	CHECK_INT(p->v.override_min_days, 30);
	CHECK_INT(p->v.ci_warn_only, LIMITS_CI_ROSACEA | LIMITS_CI_ACTIVE_ACNE);
	CHECK_INT(p->v.lifetime_s, 3600);
	limits_policy_free(p);
}

static void t_errors(void)
{
	int r;
	struct limits_policy *p = load("[NL-R02]\n" /* 1 */
				       "cheeks_mm = 2.6\n" /* 2: above 2.5 */
				       "nose_mm = 0.1234\n" /* 3: 4 decimals */
				       "elbow_mm = 1\n" /* 4: unknown key */
				       "cheeks_mm = 1.0\n" /* 5: duplicate */
				       "[NL-R10]\n" /* 6: fixed rule */
				       "action = warn\n" /* 7: ignored */
				       "[NL-R04]\n" /* 8 */
				       "action = warn\n" /* 9: clamp required */
				       "[NL-R06]\n" /* 10 */
				       "action = block\n" /* 11: not allowed */
				       "this is not a key\n" /* 12 */
				       "[nonsense]\n" /* 13 */
				       "[NL-R07]\n" /* 14 */
				       "warn_s = 25m\n" /* 15 */
				       "[NL-R12]\n" /* 16 */
				       "warn_only = pregnancy, flu\n", /* 17 */
				       &r);
	CHECK_INT(r, -EINVAL);
	CHECK(has_error(p, "clinic.conf:2: [NL-R02] cheeks_mm: 2.6 mm out of range 0.100..2.500"));
	CHECK(has_error(p, "clinic.conf:3: [NL-R02] nose_mm: '0.1234' is not a depth in mm (at "
			   "most 3 decimals)"));
	CHECK(has_error(p, "clinic.conf:4: unknown key 'elbow_mm' in [NL-R02]"));
	CHECK(has_error(
		p, "clinic.conf:5: duplicate key 'cheeks_mm' in [NL-R02] (first set on line 2)"));
	CHECK(has_error(p, "clinic.conf:6: [NL-R10] cartridge_reused is fixed by the gateway: not "
			   "configurable"));
	CHECK(has_error(p, "clinic.conf:9: [NL-R04] action: skin_type_cap must include clamp"));
	CHECK(has_error(p, "clinic.conf:11: [NL-R06] action: 'block' not allowed for "
			   "passes_per_zone (allowed: lock+warn)"));
	CHECK(has_error(p, "clinic.conf:12: syntax error: expected 'name = value'"));
	CHECK(has_error(p, "clinic.conf:13: unknown section [nonsense]"));
	CHECK(has_error(p, "clinic.conf:15: [NL-R07] warn_s: '25m' is not a whole number"));
	CHECK(has_error(p, "clinic.conf:17: [NL-R12] warn_only: unknown contraindication 'flu'"));
	CHECK_INT(limits_policy_n_errors(p), 11);
	limits_policy_free(p);
}

static void t_cross(void)
{
	int r;
	struct limits_policy *p = load("[NL-R01]\nmax_mm = 1.5\n"
				       "[NL-R06]\nlock_passes = 2\n"
				       "[NL-R09]\nwarn_sessions = 9\n"
				       "[NL-R02]\nscar_mm = 2.0\n",
				       &r);
	CHECK_INT(r, -EINVAL);
	/* warn_passes keeps its default 3 > 2: reported at the key that was set. */
	CHECK(has_error(p, "clinic.conf:4: [NL-R06] warn_passes 3 above lock_passes 2"));
	CHECK(has_error(p, "clinic.conf:6: [NL-R09] warn_sessions 9 above block_sessions 8"));
	CHECK(has_error(p,
			"clinic.conf:8: [NL-R02] scar_mm 2.000 mm above [NL-R01] max_mm 1.500 mm"));
	/* Defaults above the new maximum are reported at max_mm's line. */
	CHECK(has_error(p, "clinic.conf:2: [NL-R02] stretch_marks_mm 2.000 mm above [NL-R01] "
			   "max_mm 1.500 mm"));
	limits_policy_free(p);
}

static void t_r08_floor(void)
{
	int r;
	struct limits_policy *p = load("[NL-R08]\noverride_min_days = 20\n", &r);

	/* NL-R08: no policy may set the override floor below 21 days. */
	CHECK_INT(r, -EINVAL);
	CHECK(has_error(p, "clinic.conf:2: [NL-R08] override_min_days: 20 out of range 21..180"));
	limits_policy_free(p);
	p = load("[NL-R08]\nmin_days = 25\noverride_min_days = 26\n", &r);
	CHECK_INT(r, -EINVAL);
	CHECK(has_error(p, "clinic.conf:3: [NL-R08] override_min_days 26 above min_days 25"));
	limits_policy_free(p);
	p = load("[NL-R08]\nmin_days = 21\noverride_min_days = 21\n", &r);
	CHECK_INT(r, 0);
	limits_policy_free(p);
}

static void t_r01_bounds(void)
{
	int r;
	struct limits_policy *p = load("[NL-R01]\nmax_mm = 2.5\n", &r);

	CHECK_INT(r, 0); /* at the hard ceiling */
	limits_policy_free(p);
	p = load("[NL-R01]\nmax_mm = 2.501\n", &r);
	CHECK_INT(r, -EINVAL);
	CHECK(has_error(p, "clinic.conf:2: [NL-R01] max_mm: 2.501 mm out of range 0.250..2.500"));
	limits_policy_free(p);
	p = load("[NL-R01]\naction = warn\n", &r);
	CHECK_INT(r, -EINVAL);
	limits_policy_free(p);
}

static void t_r14_bounds(void)
{
	int r;
	struct limits_policy *p = load("[NL-R14]\nlifetime_s = 86401\n", &r);

	CHECK_INT(r, -EINVAL);
	CHECK(has_error(p, "clinic.conf:2: [NL-R14] lifetime_s: 86401 out of range 600..86400"));
	limits_policy_free(p);
	p = load("[NL-R14]\nlifetime_s = 86400\n", &r);
	CHECK_INT(r, 0);
	limits_policy_free(p);
}

static void t_hash(void)
{
	int r;
	struct limits_policy *a = load("", &r), *b, *c;
	char dump[4096];

	b = load("; only comments and defaults, in another order\n"
		 "[NL-R06]\nlock_passes = 5\nwarn_passes = 3\n[NL-R02]\ncheeks_mm = 1.500\n",
		 &r);
	CHECK_INT(r, 0);
	c = load("[NL-R06]\nlock_passes = 6\n", &r);
	CHECK_INT(r, 0);
	CHECK(limits_policy_hash(a) == limits_policy_hash(b));
	CHECK(limits_policy_hash(a) != limits_policy_hash(c));
	CHECK(limits_policy_dump(a, dump, sizeof(dump)) > 0);
	CHECK(strstr(dump, "NL-R06.lock_passes=5\n") != NULL);
	CHECK(strstr(dump, "NL-R02.cheeks_mm=1.500\n") != NULL);
	CHECK_INT(limits_policy_dump(a, dump, 10), -ENOBUFS);
	limits_policy_free(a);
	limits_policy_free(b);
	limits_policy_free(c);
}

static void t_file(void)
{
	struct limits_policy *p, *d;
	int r;

	CHECK(limits_policy_new(&p) == 0);
	r = limits_policy_load(p, "/nonexistent/policy.conf");
	CHECK_INT(r, -ENOENT);
	CHECK(has_error(p, "/nonexistent/policy.conf: cannot open: No such file or directory"));
	limits_policy_free(p);

	/* The shipped example states every default: it loads cleanly and
	 * hashes like the built-in defaults. */
	CHECK(limits_policy_new(&p) == 0);
	CHECK(limits_policy_new(&d) == 0);
	r = limits_policy_load(p, example_path);
	CHECK_INT(r, 0);
	for (size_t i = 0; i < limits_policy_n_errors(p); i++)
		fprintf(stderr, "  %s\n", limits_policy_error(p, i));
	CHECK_STR(limits_policy_name(p), "example");
	CHECK_INT(limits_policy_load_string(d, "d.conf", "[policy]\nname = example\n"), 0);
	CHECK(limits_policy_hash(p) == limits_policy_hash(d));
	limits_policy_free(p);
	limits_policy_free(d);
}

static const struct tcase cases[] = {
	{"rules table ids names actions", t_table},
	{"rules action parse and format", t_actions},
	{"rules configurable keys and hard bounds", t_keys},
	{"policy defaults NL-R01 NL-R02 NL-R04 NL-R05 NL-R06 NL-R07 NL-R08 NL-R09 NL-R14",
	 t_defaults},
	{"policy values parsed", t_values},
	{"policy errors with file:line", t_errors},
	{"policy cross-key errors with file:line", t_cross},
	{"NL-R08 policy override floor 21 days", t_r08_floor},
	{"NL-R01 policy ceiling 2.5 mm", t_r01_bounds},
	{"NL-R14 policy lifetime bounds", t_r14_bounds},
	{"policy hash", t_hash},
	{"policy file and example", t_file},
};

int main(int argc, char **argv)
{
	example_path = getenv("LIMITS_POLICY_EXAMPLE");
	if (!example_path)
		example_path = "deploy/policy.conf.example";
	return run_cases(cases, sizeof(cases) / sizeof(cases[0]), argc, argv);
}
