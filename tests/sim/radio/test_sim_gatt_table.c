/* SPDX-License-Identifier: MIT */
/* The pen's attribute table: order, UUIDs, properties, lookup. */
#include <string.h>

#include "needlelink/common.h"
#include "sim/gatt.h"
#include "tharness.h"

int main(void)
{
	const struct sim_chr_desc *t = sim_chr_table();
	const unsigned S = SIM_PROP_SECURE, R = SIM_PROP_READ, W = SIM_PROP_WRITE,
	               N = SIM_PROP_NOTIFY, I = SIM_PROP_INDICATE;
	const struct {
		const char *service, *uuid;
		unsigned props;
	} want[SIM_CHR_COUNT] = {
		[SIM_CHR_FEATURE] = {NL_UUID_SERVICE, NL_UUID_FEATURE, R | S},
		[SIM_CHR_LIVE_STATUS] = {NL_UUID_SERVICE, NL_UUID_LIVE_STATUS, N | S},
		[SIM_CHR_RECORD] = {NL_UUID_SERVICE, NL_UUID_RECORD, N | S},
		[SIM_CHR_RACP] = {NL_UUID_SERVICE, NL_UUID_RACP, W | I | S},
		[SIM_CHR_PEN_CP] = {NL_UUID_SERVICE, NL_UUID_PEN_CP, W | I | S},
		[SIM_CHR_ACTIVE_LIMITS] = {NL_UUID_SERVICE, NL_UUID_ACTIVE_LIMITS, R | I | S},
		[SIM_CHR_PEN_STATUS] = {NL_UUID_SERVICE, NL_UUID_PEN_STATUS, R | I | S},
		[SIM_CHR_CARTRIDGE] = {NL_UUID_SERVICE, NL_UUID_CARTRIDGE, R | I | S},
		[SIM_CHR_DIS_MODEL] = {NL_UUID_DIS, NL_UUID_DIS_MODEL, R},
		[SIM_CHR_DIS_SERIAL] = {NL_UUID_DIS, NL_UUID_DIS_SERIAL, R},
		[SIM_CHR_DIS_FIRMWARE] = {NL_UUID_DIS, NL_UUID_DIS_FIRMWARE, R},
		[SIM_CHR_DIS_MANUFACTURER] = {NL_UUID_DIS, NL_UUID_DIS_MANUFACTURER, R},
		[SIM_CHR_BATTERY_LEVEL] = {NL_UUID_BATTERY, NL_UUID_BATTERY_LEVEL, R | N},
	};

	CHECK(t != NULL);
	for (int i = 0; i < SIM_CHR_COUNT; i++) {
		CHECK_EQ(t[i].id, i);
		CHECK(strcmp(t[i].service_uuid, want[i].service) == 0);
		CHECK(strcmp(t[i].uuid, want[i].uuid) == 0);
		CHECK_EQ(t[i].props, want[i].props);
		CHECK(sim_chr_by_uuid(want[i].uuid) == &t[i]);
		/* Services are contiguous: radios group characteristics by them. */
		if (i > 0 && strcmp(t[i].service_uuid, t[i - 1].service_uuid) != 0)
			for (int k = 0; k < i; k++)
				CHECK(strcmp(t[k].service_uuid, t[i].service_uuid) != 0);
	}
	CHECK(sim_chr_by_uuid(NL_UUID_SERVICE) == NULL);
	CHECK(sim_chr_by_uuid("4E4C0002-7A1D-4C3B-9F6E-5D2B8A0C1E37") == NULL); /* lower case only */
	CHECK(sim_chr_by_uuid(NULL) == NULL);
	printf("sim gatt table: ok\n");
	return 0;
}
