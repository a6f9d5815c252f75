/* SPDX-License-Identifier: MIT */
/*
 * Clinic policy: the middle tier of the treatment limits (docs/limits.md).
 *
 * An INI file (inih): one section per configurable rule, named by its id
 * ([NL-R06]), plus [policy] and [enforcement]; ';' and '#' start comments.
 * Every key is optional; an absent key keeps the rule's default. Values are
 * checked against the hard bounds compiled into the gateway, so no file can
 * configure, say, a depth above 2.5 mm or an interval override below 21 days.
 *
 *   limits_policy_new()    every rule at its default
 *   limits_policy_load()   reads a file; every problem is recorded as
 *                          "FILE:LINE: message" (or "FILE: message") and
 *                          parsing goes on; cross-key checks run at the end
 *   limits_policy_load_string()  the same from memory (name is the FILE)
 *
 * Loading returns 0 when it added no error, -EINVAL when it did, or another
 * -errno (-ENOENT, -ENOMEM). A policy with errors must not be used: the
 * values it holds are unspecified.
 */
#ifndef NLGW_LIMITS_POLICY_H
#define NLGW_LIMITS_POLICY_H

#include <stddef.h>
#include <stdint.h>

#include "rules.h"

struct limits_policy;

int limits_policy_new(struct limits_policy **ret);
void limits_policy_free(struct limits_policy *p);

int limits_policy_load(struct limits_policy *p, const char *path);
int limits_policy_load_string(struct limits_policy *p, const char *name, const char *text);

size_t limits_policy_n_errors(const struct limits_policy *p);
const char *limits_policy_error(const struct limits_policy *p, size_t i);

/* FNV-1a 32 over the canonical text of every effective value
 * (limits_policy_dump), for the audit trail: two policies with the same
 * values have the same hash, whatever their comments or key order. */
uint32_t limits_policy_hash(const struct limits_policy *p);
/* The canonical text: "section.key=value\n" lines in table order. Returns
 * its length (without NUL), or -ENOBUFS when size is too small. */
int limits_policy_dump(const struct limits_policy *p, char *buf, size_t size);

/* The keys a policy file may set, with their hard bounds (the table in
 * docs/limits.md): index 0.. until NULL. min/max are in um for "mm" keys,
 * else in the key's unit; both 0 for action, name and list keys. */
struct limits_policy_key {
	const char *section; /* "NL-R06", "policy", "enforcement" */
	const char *name; /* "lock_passes" */
	enum limits_rule rule; /* LIMITS_RULE_NONE for [policy], [enforcement] */
	uint32_t min, max;
};
/* 0 and *ret for i < count, -ENOENT past the end. */
int limits_policy_key_info(size_t i, struct limits_policy_key *ret);

/* Action mask of a rule under this policy (rules.h). */
unsigned limits_policy_action(const struct limits_policy *p, enum limits_rule rule);
/* The [policy] name, "" when unset. */
const char *limits_policy_name(const struct limits_policy *p);

#endif
