/* SPDX-License-Identifier: MIT */
/*
 * Scenario files of needlelink-sim: a pen (identity, kind, clock), its
 * cartridges and a timeline of operator actions, gateway stand-ins and
 * faults. The format is documented in firmware-sim/README.md.
 */
#ifndef SIM_SCENARIO_H
#define SIM_SCENARIO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "needlelink/pdu.h"
#include "sim/pen.h"

enum scn_action {
	SCN_NOTE = 0,
	SCN_POWER_ON,
	SCN_POWER_OFF,
	SCN_POWER_CYCLE,
	SCN_ZONE,
	SCN_DEPTH,
	SCN_DIAL,
	SCN_SPEED,
	SCN_START_PASS,
	SCN_END_PASS,
	SCN_PAUSE,
	SCN_RESUME,
	SCN_END_SESSION,
	SCN_INSERT,
	SCN_REMOVE,
	SCN_SWAP,
	SCN_LINK_DROP,
	SCN_BATTERY,
	SCN_CHARGING,
	SCN_CLOCK_DRIFT,
	SCN_CLOCK_JUMP,
	SCN_CORRUPT,
	SCN_FAULT,
	SCN_WAIT_ARMED,
	SCN_WAIT_IDLE,
	SCN_AUTHORISE,
	SCN_STOP_SESSION,
	SCN_ACK_ALL,
	SCN_MISBEHAVE,
	SCN_ACTION_COUNT
};

enum scn_corrupt {
	SCN_CORRUPT_BAD_CRC = 0, /* Live Status with a wrong CRC */
	SCN_CORRUPT_TRUNCATED, /* Live Status cut short */
	SCN_CORRUPT_OVERSIZED, /* a notification larger than the MTU allows */
	SCN_CORRUPT_GARBAGE, /* random bytes on the record characteristic */
	SCN_CORRUPT_COUNT
};

#define SCN_NAME_MAX 31

struct scn_event {
	uint64_t after_ms; /* scenario time after the previous event */
	enum scn_action action;
	int32_t num; /* zone, depth um, speed Hz, pct, ppm, seconds, ... */
	uint32_t duration_ms; /* link drop, power cycle, wait timeout */
	bool flag; /* charging on/off, fault critical */
	char cart[SCN_NAME_MAX + 1];
	enum scn_corrupt corrupt;
	uint32_t session_id; /* authorise: 0 = next number */
	uint32_t lifetime_s;
	struct nl_limit_set limits;
	char text[128];
};

struct scn_cartridge {
	char name[SCN_NAME_MAX + 1];
	bool auto_uid; /* a fresh UID at every insertion */
	uint8_t uid[NL_CARTRIDGE_UID_LEN];
	char lot[NL_LOT_LEN + 1];
	int32_t expires_in_days; /* from the pen's clock at insertion */
	uint8_t needles;
	uint16_t length_um;
	bool unreadable;
};

enum scn_clock {
	SCN_CLOCK_NOW = 0, /* real time at start */
	SCN_CLOCK_UNSET,
	SCN_CLOCK_FIXED,
};

struct scenario {
	char path[256];
	char name[64];
	char description[512];
	struct sim_pen_config pen;
	enum scn_clock clock;
	uint32_t clock_fixed;
	struct scn_cartridge *carts;
	size_t ncarts;
	struct scn_event *events;
	size_t nevents;
	bool loop;
	uint32_t loop_pause_ms;
};

/* Loads and validates a scenario. On error returns -EINVAL (or -errno for
 * I/O) and writes "FILE: where: what" into err. */
int scenario_load(const char *path, struct scenario **ret, char *err, size_t errsize);
/* The built-in demo: waits for the gateway to authorise, treats, loops. */
int scenario_demo(struct scenario **ret);
void scenario_free(struct scenario *s);

const char *scn_action_name(enum scn_action a);
/* The cartridge named name, or NULL. */
const struct scn_cartridge *scenario_cartridge(const struct scenario *s, const char *name);

#endif
