/* SPDX-License-Identifier: MIT */
/* Shared by the files of the limits engine only. */
#ifndef NLGW_LIMITS_INTERNAL_H
#define NLGW_LIMITS_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "needlelink/zone.h"
#include "rules.h"

/* Effective policy values, in internal units (rules.h). */
struct limits_values {
	char name[65]; /* [policy] name, audit label */
	unsigned action[LIMITS_RULE_COUNT]; /* action mask per rule */
	uint16_t max_depth_um; /* NL-R01 */
	uint16_t zone_cap_um[NL_ZONE_COUNT]; /* NL-R02; [0] = zones not planned */
	uint16_t skin_reduction_um; /* NL-R04 */
	uint16_t non_physician_cap_um; /* NL-R05 */
	uint8_t pass_warn, pass_lock; /* NL-R06 */
	uint16_t needle_on_warn_s; /* NL-R07 */
	uint16_t needle_on_lock_s;
	uint16_t interval_days; /* NL-R08 */
	uint16_t override_min_days;
	uint16_t course_warn, course_block; /* NL-R09 */
	uint16_t course_days;
	uint32_t ci_warn_only; /* NL-R12: flags that only warn */
	uint32_t lifetime_s; /* NL-R14 */
	uint16_t depth_tolerance_um; /* [enforcement] */
	uint32_t confirm_timeout_s;
};

struct limits_policy {
	struct limits_values v;
	uint32_t hash; /* of v, recomputed whenever v changes */
	char **errors;
	size_t n_errors;
	unsigned lines[128]; /* line of each key set by the file, by key index */
};

/* Floor of any computed cap: a pen needs a cap of at least 1 um, and a
 * reduction never goes below 0.1 mm. */
#define LIMITS_CAP_FLOOR_UM 100u

#endif
