/* SPDX-License-Identifier: MIT */
/*
 * The pen's attribute table (sim/gatt.h). Every radio builds its database
 * from this, so the local radio and the BlueZ peripheral expose the same
 * services, characteristics and properties.
 */
#include <stddef.h>
#include <string.h>

#include "needlelink/common.h"
#include "sim/gatt.h"

#define NL_SECURE SIM_PROP_SECURE

static const struct sim_chr_desc chr_table[SIM_CHR_COUNT] = {
	[SIM_CHR_FEATURE] = {SIM_CHR_FEATURE, NL_UUID_SERVICE, NL_UUID_FEATURE,
	                     SIM_PROP_READ | NL_SECURE},
	[SIM_CHR_LIVE_STATUS] = {SIM_CHR_LIVE_STATUS, NL_UUID_SERVICE, NL_UUID_LIVE_STATUS,
	                         SIM_PROP_NOTIFY | NL_SECURE},
	[SIM_CHR_RECORD] = {SIM_CHR_RECORD, NL_UUID_SERVICE, NL_UUID_RECORD,
	                    SIM_PROP_NOTIFY | NL_SECURE},
	[SIM_CHR_RACP] = {SIM_CHR_RACP, NL_UUID_SERVICE, NL_UUID_RACP,
	                  SIM_PROP_WRITE | SIM_PROP_INDICATE | NL_SECURE},
	[SIM_CHR_PEN_CP] = {SIM_CHR_PEN_CP, NL_UUID_SERVICE, NL_UUID_PEN_CP,
	                    SIM_PROP_WRITE | SIM_PROP_INDICATE | NL_SECURE},
	[SIM_CHR_ACTIVE_LIMITS] = {SIM_CHR_ACTIVE_LIMITS, NL_UUID_SERVICE, NL_UUID_ACTIVE_LIMITS,
	                           SIM_PROP_READ | SIM_PROP_INDICATE | NL_SECURE},
	[SIM_CHR_PEN_STATUS] = {SIM_CHR_PEN_STATUS, NL_UUID_SERVICE, NL_UUID_PEN_STATUS,
	                        SIM_PROP_READ | SIM_PROP_INDICATE | NL_SECURE},
	[SIM_CHR_CARTRIDGE] = {SIM_CHR_CARTRIDGE, NL_UUID_SERVICE, NL_UUID_CARTRIDGE,
	                       SIM_PROP_READ | SIM_PROP_INDICATE | NL_SECURE},
	[SIM_CHR_DIS_MODEL] = {SIM_CHR_DIS_MODEL, NL_UUID_DIS, NL_UUID_DIS_MODEL, SIM_PROP_READ},
	[SIM_CHR_DIS_SERIAL] = {SIM_CHR_DIS_SERIAL, NL_UUID_DIS, NL_UUID_DIS_SERIAL,
	                        SIM_PROP_READ},
	[SIM_CHR_DIS_FIRMWARE] = {SIM_CHR_DIS_FIRMWARE, NL_UUID_DIS, NL_UUID_DIS_FIRMWARE,
	                          SIM_PROP_READ},
	[SIM_CHR_DIS_MANUFACTURER] = {SIM_CHR_DIS_MANUFACTURER, NL_UUID_DIS,
	                              NL_UUID_DIS_MANUFACTURER, SIM_PROP_READ},
	[SIM_CHR_BATTERY_LEVEL] = {SIM_CHR_BATTERY_LEVEL, NL_UUID_BATTERY, NL_UUID_BATTERY_LEVEL,
	                           SIM_PROP_READ | SIM_PROP_NOTIFY},
};

const struct sim_chr_desc *sim_chr_table(void)
{
	return chr_table;
}

const struct sim_chr_desc *sim_chr_by_uuid(const char *uuid)
{
	if (!uuid)
		return NULL;
	for (size_t i = 0; i < SIM_CHR_COUNT; i++)
		if (strcmp(chr_table[i].uuid, uuid) == 0)
			return &chr_table[i];
	return NULL;
}
