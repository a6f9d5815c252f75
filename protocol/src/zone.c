/* SPDX-License-Identifier: MIT */
#include <string.h>

#include "needlelink/zone.h"
#include "needlelink/common.h"

/* Index = wire value. "none" is listed so that a live status or record
 * with no zone chosen still has a JSON name; nl_zone_valid excludes it. */
static const char *const zone_names[NL_ZONE_COUNT] = {
	[NL_ZONE_NONE] = "none",
	[NL_ZONE_FOREHEAD] = "forehead",
	[NL_ZONE_GLABELLA] = "glabella",
	[NL_ZONE_PERIORBITAL] = "periorbital",
	[NL_ZONE_NOSE] = "nose",
	[NL_ZONE_CHEEKS] = "cheeks",
	[NL_ZONE_PERIORAL] = "perioral",
	[NL_ZONE_CHIN] = "chin",
	[NL_ZONE_NECK] = "neck",
	[NL_ZONE_CHEST] = "chest",
	[NL_ZONE_SCALP] = "scalp",
	[NL_ZONE_SCAR] = "scar",
	[NL_ZONE_STRETCH_MARKS] = "stretch_marks",
	[NL_ZONE_BODY] = "body",
	[NL_ZONE_CHEEKBONES] = "cheekbones",
	[NL_ZONE_UPPER_LIP] = "upper_lip",
};

const char *nl_zone_name(unsigned zone)
{
	return zone < NL_ZONE_COUNT ? zone_names[zone] : NULL;
}

int nl_zone_from_name(const char *name)
{
	if (!name)
		return -ENOENT;
	for (unsigned i = 0; i < NL_ZONE_COUNT; i++)
		if (strcmp(zone_names[i], name) == 0)
			return (int)i;
	return -ENOENT;
}

bool nl_zone_valid(unsigned zone)
{
	return zone >= NL_ZONE_FOREHEAD && zone < NL_ZONE_COUNT;
}
