/* SPDX-License-Identifier: MIT */
/*
 * The treatment-limit rule table (docs/limits.md): one entry per rule, in
 * the order of the DOMAIN rule table, with a stable id ("NL-R01"), a JSON
 * name for the MQTT API ("zone_depth_cap"), its unit, default values and
 * actions, and what a clinic policy may change within which hard bounds.
 *
 * Pure data and lookups: no I/O, no allocation, no globals but the const
 * table.
 *
 * Internal units: depths in micrometres, times in seconds, intervals in
 * days, passes and sessions as counts. limits_unit_name() gives the unit
 * the MQTT API publishes ("mm" is published as um / 1000).
 */
#ifndef NLGW_LIMITS_RULES_H
#define NLGW_LIMITS_RULES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum limits_rule {
	LIMITS_RULE_NONE = 0,
	LIMITS_R01_DEVICE_MAX_DEPTH = 1,
	LIMITS_R02_ZONE_DEPTH_CAP = 2,
	LIMITS_R03_NEEDLE_LENGTH = 3,
	LIMITS_R04_SKIN_TYPE = 4,
	LIMITS_R05_OPERATOR_ROLE = 5,
	LIMITS_R06_PASSES = 6,
	LIMITS_R07_NEEDLE_ON = 7,
	LIMITS_R08_INTERVAL = 8,
	LIMITS_R09_COURSE = 9,
	LIMITS_R10_CARTRIDGE_REUSED = 10,
	LIMITS_R11_CARTRIDGE_EXPIRED = 11,
	LIMITS_R12_CONTRAINDICATION = 12,
	LIMITS_R13_NOT_ACKNOWLEDGED = 13,
	LIMITS_R14_LIFETIME = 14,
	LIMITS_R15_PEN_NOT_READY = 15,
	LIMITS_RULE_COUNT
};

/* Actions, as a bit mask: a rule may do several (CLAMP + WARN). */
enum limits_action_bit {
	LIMITS_ACT_WARN = 1u << 0, /* alert only */
	LIMITS_ACT_CLAMP = 1u << 1, /* the pen caps depth */
	LIMITS_ACT_LOCK = 1u << 2, /* motor disabled until an authorised unlock */
	LIMITS_ACT_BLOCK = 1u << 3, /* the session is not authorised */
};
#define LIMITS_ACT_ALL 0x0Fu

enum limits_unit {
	LIMITS_UNIT_NONE = 0,
	LIMITS_UNIT_MM, /* values held in um */
	LIMITS_UNIT_PASSES,
	LIMITS_UNIT_S,
	LIMITS_UNIT_DAYS,
	LIMITS_UNIT_SESSIONS,
	LIMITS_UNIT_COUNT
};

enum limits_severity {
	LIMITS_SEVERITY_INFO = 0,
	LIMITS_SEVERITY_WARNING,
	LIMITS_SEVERITY_CRITICAL,
	LIMITS_SEVERITY_COUNT
};

struct limits_rule_info {
	enum limits_rule rule;
	const char *id; /* "NL-R01" */
	const char *name; /* "device_max_depth": MQTT `rule` */
	const char *title; /* one line for people */
	enum limits_unit unit;
	unsigned actions; /* default action mask */
	unsigned actions_allowed; /* masks a policy may choose are subsets of this */
	unsigned actions_required; /* ... that contain this */
	bool configurable; /* the policy may change a value or an action */
	bool overridable; /* a physician override may relax it per session */
};

/* The entry for a rule; NULL outside 1..LIMITS_RULE_COUNT-1. */
const struct limits_rule_info *limits_rule_info(enum limits_rule rule);
/* "NL-R01" (NULL when invalid) and the JSON name. */
const char *limits_rule_id(enum limits_rule rule);
const char *limits_rule_name(enum limits_rule rule);
/* Rule for "NL-R07" or "needle_on_time"; -ENOENT when unknown. */
int limits_rule_from_string(const char *s);

/* "none", "mm", "passes", "s", "days", "sessions" (the MQTT `unit`). */
const char *limits_unit_name(enum limits_unit unit);
/* "info", "warning", "critical". */
const char *limits_severity_name(enum limits_severity s);
/* Name of one action bit: "warn", "clamp", "lock", "block"; NULL otherwise. */
const char *limits_action_name(unsigned action_bit);
/* Parses "warn", "clamp+warn", "warn,lock" (separators ',', '+', ' ') into
 * a mask: 0 or -EINVAL. */
int limits_action_parse(const char *s, unsigned *ret_mask);
/* Writes "clamp+warn" style text; returns the length or -ENOBUFS. */
int limits_action_format(unsigned mask, char *buf, size_t size);

/* Operator roles (MQTT `operator.role`). */
enum limits_role {
	LIMITS_ROLE_PHYSICIAN = 0,
	LIMITS_ROLE_NURSE,
	LIMITS_ROLE_AESTHETICIAN,
	LIMITS_ROLE_TECHNICIAN,
	LIMITS_ROLE_COUNT
};
const char *limits_role_name(enum limits_role role);
int limits_role_from_name(const char *name); /* -ENOENT when unknown */

/* Contraindication flags (MQTT `contraindications[]`). */
enum limits_ci {
	LIMITS_CI_ACTIVE_INFECTION = 1u << 0,
	LIMITS_CI_COLD_SORES = 1u << 1,
	LIMITS_CI_ACTIVE_ACNE = 1u << 2,
	LIMITS_CI_ROSACEA = 1u << 3,
	LIMITS_CI_KELOID = 1u << 4,
	LIMITS_CI_ISOTRETINOIN = 1u << 5,
	LIMITS_CI_ANTICOAGULANTS = 1u << 6,
	LIMITS_CI_PREGNANCY = 1u << 7,
	LIMITS_CI_SKIN_CANCER = 1u << 8,
	LIMITS_CI_CHEMO_RADIOTHERAPY = 1u << 9,
	LIMITS_CI_IMMUNOSUPPRESSION = 1u << 10,
};
#define LIMITS_CI_COUNT 11
#define LIMITS_CI_ALL 0x7FFu
/* Name of one flag bit ("pregnancy"); NULL otherwise. */
const char *limits_ci_name(uint32_t bit);
/* Bit for a name; -ENOENT when unknown. */
int limits_ci_from_name(const char *name, uint32_t *ret_bit);

#endif
