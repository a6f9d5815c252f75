/* SPDX-License-Identifier: MIT */
/*
 * Treatment zones: one table shared by the pen, the limits engine and the
 * MQTT API. The numeric value is on the wire; the name is in JSON.
 */
#ifndef NEEDLELINK_ZONE_H
#define NEEDLELINK_ZONE_H

#include <stdbool.h>
#include <stdint.h>

enum nl_zone {
	NL_ZONE_NONE = 0, /* no zone chosen yet */
	NL_ZONE_FOREHEAD = 1,
	NL_ZONE_GLABELLA = 2,
	NL_ZONE_PERIORBITAL = 3,
	NL_ZONE_NOSE = 4,
	NL_ZONE_CHEEKS = 5,
	NL_ZONE_PERIORAL = 6,
	NL_ZONE_CHIN = 7,
	NL_ZONE_NECK = 8,
	NL_ZONE_CHEST = 9,
	NL_ZONE_SCALP = 10,
	NL_ZONE_SCAR = 11,
	NL_ZONE_STRETCH_MARKS = 12,
	NL_ZONE_BODY = 13,
	NL_ZONE_CHEEKBONES = 14,
	NL_ZONE_UPPER_LIP = 15,
	NL_ZONE_COUNT
};

/* "forehead", "stretch_marks", ...; NULL for a value outside the table. */
const char *nl_zone_name(unsigned zone);
/* Zone value for a name; -ENOENT when the name is not in the table. */
int nl_zone_from_name(const char *name);
/* True for NL_ZONE_FOREHEAD .. NL_ZONE_COUNT-1 (NL_ZONE_NONE excluded). */
bool nl_zone_valid(unsigned zone);

#endif
