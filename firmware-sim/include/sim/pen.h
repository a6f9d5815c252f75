/* SPDX-License-Identifier: MIT */
/*
 * The pen's firmware core: states, depth, speed, passes, cartridges, the
 * limits engine, the record store and the GATT server behind
 * sim/gatt.h. Portable C11, no OS calls: time, flash and randomness come
 * through struct sim_platform, the radio through struct sim_radio_ops.
 * All memory is allocated by sim_pen_new(); nothing is allocated after.
 *
 * Operator actions (sim_pen_start_pass(), ...) model the pen's buttons and
 * dial. They return 0, or -EPERM when the pen's state or its limits forbid
 * the action (the reason is logged), -EINVAL for a bad argument.
 *
 * The host calls sim_pen_tick() often (every 10-50 ms of wall time): it
 * accounts run time up to platform now_ms, enforces limits and lifetimes,
 * sends Live Status and streams RACP reports.
 */
#ifndef SIM_PEN_H
#define SIM_PEN_H

#include <stdbool.h>
#include <stdint.h>

#include "needlelink/cp.h"
#include "needlelink/pdu.h"
#include "needlelink/record.h"
#include "sim/gatt.h"
#include "sim/platform.h"

enum sim_pen_kind {
	SIM_PEN_MOTORISED = 0, /* depth set by a motor: clamped to the cap */
	SIM_PEN_DIAL = 1, /* mechanical dial: motor held while above the cap */
};

struct sim_pen_config {
	char serial[NL_SERIAL_MAX + 1];
	char model[32];
	char manufacturer[32];
	char firmware[16];
	enum sim_pen_kind kind;
	uint16_t depth_min_um, depth_max_um, depth_step_um; /* depth_max: factory max */
	uint16_t speed_min_hz, speed_max_hz;
	uint16_t store_capacity;
	uint32_t region_bytes; /* 0: computed from store_capacity */
	uint8_t live_rate_hz;
	bool depth_sensing;
	bool rtc; /* clock survives a power cycle */
	uint32_t clock_start; /* pen time at first power-on; 0: clock not set */
	int32_t clock_ppm; /* drift of the pen's clock */
	uint8_t battery_pct;
	uint32_t drain_ms_per_pct; /* motor running */
	uint32_t charge_ms_per_pct; /* on the charger */
	/* Record segments a catch-up hands to the radio per tick, at most;
	 * the pen also holds back while the radio reports a backlog of
	 * SIM_TX_BACKLOG_MAX frames (as firmware does when its controller's
	 * buffers are full). */
	uint16_t notify_burst;
};

/* Defaults: motorised, 0.25-2.5 mm in 0.25 mm steps, 100-150 Hz, 256
 * records, live 2 Hz, depth sensing, RTC, 100 % battery, notify burst 16. */
void sim_pen_config_default(struct sim_pen_config *c);

struct sim_cartridge {
	uint8_t uid[NL_CARTRIDGE_UID_LEN];
	char lot[NL_LOT_LEN + 1];
	uint32_t expiry; /* pen time */
	uint8_t needle_count;
	uint16_t needle_length_um;
	bool unreadable; /* the reader cannot read its tag */
};

/* A snapshot for logs and tests. */
struct sim_pen_info {
	enum nl_pen_state state;
	uint8_t lock_reason; /* enum nl_lock_reason while locked */
	uint32_t session_id;
	uint8_t zone;
	uint16_t pass; /* current or last pass in the zone */
	uint16_t depth_set_um; /* motor position / dial position */
	uint16_t depth_request_um;
	uint16_t depth_cap_um;
	uint16_t speed_hz;
	uint32_t needle_on_ms; /* this session */
	uint32_t strokes; /* this session */
	uint8_t battery_pct;
	bool charging, clamped, dial_over_cap, connected;
	uint8_t limit_source; /* enum nl_limit_source */
	uint32_t limits_hash;
	uint32_t remaining_s;
	uint8_t cartridge_state; /* enum nl_cartridge_state */
	uint8_t cartridge_reject; /* enum nl_cartridge_reject */
	uint32_t store_epoch, last_seq;
	uint16_t store_used, store_capacity;
	uint32_t pen_time;
	bool clock_set;
	uint16_t fault_code;
	uint32_t records_written; /* since sim_pen_new() */
	bool zone_locked; /* the selected zone reached its pass lock */
	bool authorised; /* the open session was authorised by a gateway */
};

struct sim_pen;

int sim_pen_new(struct sim_pen **ret, const struct sim_pen_config *cfg,
		const struct sim_platform *plat);
/* Accepts NULL. The pen must be disconnected from its radio first. */
void sim_pen_free(struct sim_pen *p);

/* The radio the pen sends through (may be NULL: no radio). */
void sim_pen_set_radio(struct sim_pen *p, const struct sim_radio_ops *ops, void *radio);
/* The GATT server a radio calls; its void *pen argument is the struct sim_pen. */
const struct sim_gatt_server_ops *sim_pen_gatt_ops(void);

/* Power: on boots the firmware (store recovery, a session left open is
 * closed with reason POWER_LOSS). off is a sudden power loss: nothing is
 * written, RAM state is lost, the link drops. */
int sim_pen_power_on(struct sim_pen *p);
void sim_pen_power_off(struct sim_pen *p);

void sim_pen_tick(struct sim_pen *p);

/* Operator actions. */
int sim_pen_select_zone(struct sim_pen *p, unsigned zone);
/* Motorised: requested depth (clamped to the cap). Dial: the dial position. */
int sim_pen_set_depth(struct sim_pen *p, uint16_t um);
int sim_pen_set_speed(struct sim_pen *p, uint16_t hz);
/* Motor start (protocol 7.8: every motor start is a new pass in the zone).
 * In IDLE it opens an unauthorised session (7.7). end_pass stops the motor
 * (state PAUSED); pause and resume are the same stop and start. */
int sim_pen_start_pass(struct sim_pen *p);
int sim_pen_end_pass(struct sim_pen *p);
int sim_pen_pause(struct sim_pen *p);
int sim_pen_resume(struct sim_pen *p);
/* Operator ends the session on the pen (SESSION_END reason STOPPED). */
int sim_pen_end_session(struct sim_pen *p);
int sim_pen_insert_cartridge(struct sim_pen *p, const struct sim_cartridge *c);
int sim_pen_remove_cartridge(struct sim_pen *p);

/* Environment and faults. */
void sim_pen_set_battery(struct sim_pen *p, uint8_t pct);
void sim_pen_set_charging(struct sim_pen *p, bool charging);
void sim_pen_set_clock_drift(struct sim_pen *p, int32_t ppm);
/* Jumps the pen's clock by delta seconds without a record (a drifting or
 * failing oscillator, not a setting). */
void sim_pen_clock_jump(struct sim_pen *p, int32_t delta_s);
/* A fault; CRITICAL puts the pen in the fault state until a power cycle. */
int sim_pen_fault(struct sim_pen *p, enum nl_fault_code code, enum nl_fault_severity sev,
		  uint32_t detail);

/* Fault injection for tests: firmware that does not do what it answers.
 * Flags combine; 0 (the default) is the correct firmware. */
enum sim_misbehave {
	/* the motor runs at the requested depth above the cap, and above the
	 * factory maximum it advertises (no LIMIT CLAMP record); Live Status
	 * still reports the cap */
	SIM_MISBEHAVE_CAPS = 1u << 0,
	/* Pen CP CLAMP: SUCCESS with the hash of the set it would derive, but
	 * nothing applied and no LIMIT record */
	SIM_MISBEHAVE_CLAMP = 1u << 1,
	/* Pen CP LOCK: SUCCESS, but the pen does not lock (no LIMIT record) */
	SIM_MISBEHAVE_LOCK = 1u << 2,
	/* the zone pass lock is not enforced: passes beyond pass_lock run */
	SIM_MISBEHAVE_PASSES = 1u << 3,
	/* Pen CP SET_LIMITS: SUCCESS with the hash of the set received, but the
	 * pen stores that set with its default cap raised to its factory
	 * maximum (Active Limits then reports another hash) */
	SIM_MISBEHAVE_SET_LIMITS = 1u << 4,
};
void sim_pen_set_misbehave(struct sim_pen *p, unsigned flags);

/* The pen's service port: applies a Pen CP request exactly as if the
 * gateway had written it (bench use and standalone scenarios without a
 * gateway). Returns the enum nl_cp_result; *ret_value as in the response. */
int sim_pen_service_cp(struct sim_pen *p, const struct nl_cp_req *req, uint32_t *ret_value);

void sim_pen_get_info(const struct sim_pen *p, struct sim_pen_info *ret);
const struct sim_pen_config *sim_pen_config(const struct sim_pen *p);
/* The current Live Status value (with CRC) into buf; returns its length. */
int sim_pen_live_value(struct sim_pen *p, uint8_t *buf, size_t size);

#endif
