/* SPDX-License-Identifier: MIT */
#include "rules.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#define W LIMITS_ACT_WARN
#define C LIMITS_ACT_CLAMP
#define L LIMITS_ACT_LOCK
#define B LIMITS_ACT_BLOCK

/* Index = rule. Order and defaults follow the DOMAIN rule table; NL-R15
 * (pen readiness) is the gateway's own precondition of 10.5. What a policy
 * may set for each rule is in policy.c; docs/limits.md explains why. */
static const struct limits_rule_info rules[LIMITS_RULE_COUNT] = {
	[LIMITS_R01_DEVICE_MAX_DEPTH] = {LIMITS_R01_DEVICE_MAX_DEPTH, "NL-R01", "device_max_depth",
					 "device maximum depth", LIMITS_UNIT_MM, C, C, C, true,
					 false},
	[LIMITS_R02_ZONE_DEPTH_CAP] = {LIMITS_R02_ZONE_DEPTH_CAP, "NL-R02", "zone_depth_cap",
				       "depth cap per zone", LIMITS_UNIT_MM, C, C, C, true, false},
	[LIMITS_R03_NEEDLE_LENGTH] = {LIMITS_R03_NEEDLE_LENGTH, "NL-R03", "needle_length",
				      "depth above the cartridge needle length", LIMITS_UNIT_MM, C,
				      C, C, false, false},
	[LIMITS_R04_SKIN_TYPE] = {LIMITS_R04_SKIN_TYPE, "NL-R04", "skin_type_cap", "skin type V-VI",
				  LIMITS_UNIT_MM, C | W, C | W, C, true, false},
	[LIMITS_R05_OPERATOR_ROLE] = {LIMITS_R05_OPERATOR_ROLE, "NL-R05", "operator_role_cap",
				      "operator without physician role", LIMITS_UNIT_MM, C, C | W,
				      C, true, false},
	[LIMITS_R06_PASSES] = {LIMITS_R06_PASSES, "NL-R06", "passes_per_zone", "passes per zone",
			       LIMITS_UNIT_PASSES, W | L, W | L, 0, true, false},
	[LIMITS_R07_NEEDLE_ON] = {LIMITS_R07_NEEDLE_ON, "NL-R07", "needle_on_time",
				  "needle-on time per session", LIMITS_UNIT_S, W | L, W | L, 0,
				  true, false},
	[LIMITS_R08_INTERVAL] = {LIMITS_R08_INTERVAL, "NL-R08", "interval_same_zone",
				 "interval, same patient and zone", LIMITS_UNIT_DAYS, B, W | B, 0,
				 true, true},
	[LIMITS_R09_COURSE] = {LIMITS_R09_COURSE, "NL-R09", "sessions_per_course",
			       "sessions per course", LIMITS_UNIT_SESSIONS, W | B, W | B, 0, true,
			       false},
	[LIMITS_R10_CARTRIDGE_REUSED] = {LIMITS_R10_CARTRIDGE_REUSED, "NL-R10", "cartridge_reused",
					 "cartridge already used in another session",
					 LIMITS_UNIT_SESSIONS, L | B, L | B, L | B, false, false},
	[LIMITS_R11_CARTRIDGE_EXPIRED] = {LIMITS_R11_CARTRIDGE_EXPIRED, "NL-R11",
					  "cartridge_expired", "cartridge expired or unreadable",
					  LIMITS_UNIT_NONE, L | B, L | B, L | B, false, false},
	[LIMITS_R12_CONTRAINDICATION] = {LIMITS_R12_CONTRAINDICATION, "NL-R12", "contraindication",
					 "contraindication flags on the session", LIMITS_UNIT_NONE,
					 B, W | B, 0, true, false},
	[LIMITS_R13_NOT_ACKNOWLEDGED] = {LIMITS_R13_NOT_ACKNOWLEDGED, "NL-R13",
					 "limits_not_acknowledged",
					 "limits not acknowledged by the pen / hash mismatch",
					 LIMITS_UNIT_NONE, B | L, B | L, B | L, false, false},
	[LIMITS_R14_LIFETIME] = {LIMITS_R14_LIFETIME, "NL-R14", "authorisation_expired",
				 "authorisation older than its lifetime", LIMITS_UNIT_S, C | W,
				 C | W, C | W, true, false},
	[LIMITS_R15_PEN_NOT_READY] =
		{LIMITS_R15_PEN_NOT_READY, "NL-R15", "pen_not_ready",
		 "pen not ready (state, lock, fault, store full, no cartridge)", LIMITS_UNIT_NONE,
		 B, B, B, false, false},
};

#undef W
#undef C
#undef L
#undef B

const struct limits_rule_info *limits_rule_info(enum limits_rule rule)
{
	if ((unsigned)rule < 1 || (unsigned)rule >= LIMITS_RULE_COUNT)
		return NULL;
	return &rules[rule];
}

const char *limits_rule_id(enum limits_rule rule)
{
	const struct limits_rule_info *i = limits_rule_info(rule);
	return i ? i->id : NULL;
}

const char *limits_rule_name(enum limits_rule rule)
{
	const struct limits_rule_info *i = limits_rule_info(rule);
	return i ? i->name : NULL;
}

int limits_rule_from_string(const char *s)
{
	if (!s)
		return -ENOENT;
	for (unsigned r = 1; r < LIMITS_RULE_COUNT; r++)
		if (strcmp(rules[r].id, s) == 0 || strcmp(rules[r].name, s) == 0)
			return (int)r;
	return -ENOENT;
}

const char *limits_unit_name(enum limits_unit unit)
{
	static const char *const names[LIMITS_UNIT_COUNT] = {"none", "mm",   "passes",
							     "s",    "days", "sessions"};
	return (unsigned)unit < LIMITS_UNIT_COUNT ? names[unit] : NULL;
}

const char *limits_severity_name(enum limits_severity s)
{
	static const char *const names[LIMITS_SEVERITY_COUNT] = {"info", "warning", "critical"};
	return (unsigned)s < LIMITS_SEVERITY_COUNT ? names[s] : NULL;
}

static const char *const action_names[4] = {"warn", "clamp", "lock", "block"};

const char *limits_action_name(unsigned action_bit)
{
	for (unsigned i = 0; i < 4; i++)
		if (action_bit == 1u << i)
			return action_names[i];
	return NULL;
}

int limits_action_parse(const char *s, unsigned *ret_mask)
{
	unsigned mask = 0;
	const char *p = s;

	if (!s)
		return -EINVAL;
	while (*p) {
		size_t n;
		unsigned i;

		while (*p == ',' || *p == '+' || *p == ' ' || *p == '\t')
			p++;
		if (!*p)
			break;
		n = strcspn(p, ",+ \t");
		for (i = 0; i < 4; i++)
			if (strlen(action_names[i]) == n && strncmp(p, action_names[i], n) == 0)
				break;
		if (i == 4)
			return -EINVAL;
		mask |= 1u << i;
		p += n;
	}
	if (!mask)
		return -EINVAL;
	*ret_mask = mask;
	return 0;
}

int limits_action_format(unsigned mask, char *buf, size_t size)
{
	/* Most significant action first: "clamp+warn", "lock+block" read as
	 * in the rule table. */
	static const unsigned order[4] = {LIMITS_ACT_CLAMP, LIMITS_ACT_LOCK, LIMITS_ACT_BLOCK,
					  LIMITS_ACT_WARN};
	size_t len = 0;

	if (size == 0)
		return -ENOBUFS;
	buf[0] = '\0';
	for (unsigned i = 0; i < 4; i++) {
		int n;
		if (!(mask & order[i]))
			continue;
		n = snprintf(buf + len, size - len, "%s%s", len ? "+" : "",
			     limits_action_name(order[i]));
		if (n < 0 || (size_t)n >= size - len)
			return -ENOBUFS;
		len += (size_t)n;
	}
	return (int)len;
}

static const char *const role_names[LIMITS_ROLE_COUNT] = {"physician", "nurse", "aesthetician",
							  "technician"};

const char *limits_role_name(enum limits_role role)
{
	return (unsigned)role < LIMITS_ROLE_COUNT ? role_names[role] : NULL;
}

int limits_role_from_name(const char *name)
{
	for (unsigned i = 0; name && i < LIMITS_ROLE_COUNT; i++)
		if (strcmp(role_names[i], name) == 0)
			return (int)i;
	return -ENOENT;
}

static const char *const ci_names[LIMITS_CI_COUNT] = {
	"active_infection", "cold_sores",	  "active_acne",       "rosacea",
	"keloid",	    "isotretinoin",	  "anticoagulants",    "pregnancy",
	"skin_cancer",	    "chemo_radiotherapy", "immunosuppression",
};

const char *limits_ci_name(uint32_t bit)
{
	for (unsigned i = 0; i < LIMITS_CI_COUNT; i++)
		if (bit == 1u << i)
			return ci_names[i];
	return NULL;
}

int limits_ci_from_name(const char *name, uint32_t *ret_bit)
{
	for (unsigned i = 0; name && i < LIMITS_CI_COUNT; i++)
		if (strcmp(ci_names[i], name) == 0) {
			*ret_bit = 1u << i;
			return 0;
		}
	return -ENOENT;
}
