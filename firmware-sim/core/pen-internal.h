/* SPDX-License-Identifier: MIT */
/* Shared by the pen core's files (pen.c: firmware logic, pen-gatt.c: GATT
 * server, Pen CP and RACP). Not part of any public interface. */
#ifndef SIM_PEN_INTERNAL_H
#define SIM_PEN_INTERNAL_H

#include <stdarg.h>

#include "needlelink/cp.h"
#include "needlelink/racp.h"
#include "needlelink/seg.h"
#include "sim/pen.h"
#include "sim/store.h"

struct pen_zone_stats {
	uint16_t passes;
	uint16_t depth_max_um;
	uint64_t depth_um_ms; /* depth integrated over run time, for the mean */
	uint32_t needle_on_ms;
	uint64_t strokes_milli;
};

/* Indicated characteristics whose value is compared to the last one sent. */
enum pen_ind { PEN_IND_STATUS = 0, PEN_IND_CARTRIDGE, PEN_IND_LIMITS, PEN_IND_COUNT };

struct sim_pen {
	struct sim_pen_config cfg;
	struct sim_platform plat;
	const struct sim_radio_ops *radio_ops;
	void *radio;
	struct sim_store *store;
	bool powered;
	bool store_ok;

	enum nl_pen_state state;
	uint8_t lock_reason;
	uint16_t fault_code;
	uint64_t last_ms;

	/* clock: pen_time = base + (now - ref) * (1 + ppm 1e-6) */
	bool clock_set;
	uint32_t clock_base;
	uint64_t clock_ref_ms;
	int32_t clock_ppm;

	/* session */
	uint32_t session_id;
	uint64_t session_start_ms;
	uint32_t needle_on_ms;
	uint64_t strokes_milli;
	struct pen_zone_stats zones[NL_ZONE_COUNT];
	bool time_warned, time_lock_override;
	bool pass_lock_override[NL_ZONE_COUNT];
	bool zone_locked[NL_ZONE_COUNT];
	bool pass_warned; /* current pass */
	bool motor_has_run; /* in this session: PAUSED rather than ARMED */
	bool authorised; /* the session was opened by AUTHORISE */
	bool limit_reached; /* a limit stopped the motor or locked a zone */
	uint16_t lock_value, lock_threshold; /* what fired a NEEDLE_ON pen lock */
	bool lock_pending; /* LOCK received in FAULT: LOCKED after the fault */

	/* motion */
	uint8_t zone;
	uint16_t pass;
	bool pass_open;
	uint16_t depth_req, depth_set, speed;
	bool clamped, dial_over;
	uint16_t clamp_logged_cap; /* avoids a CLAMP record per tick */

	/* current segment (one continuous motor run) */
	uint32_t seg_run_ms;
	uint64_t seg_strokes_milli;
	uint16_t seg_status;

	/* limits */
	uint8_t limit_source;
	struct nl_limit_set set;
	uint32_t hash;
	uint64_t deadline_ms; /* 0: no lifetime running */
	bool clamped_set; /* CLAMP derived the set in this session */
	uint8_t base_source; /* the set before the first CLAMP of the session */
	struct nl_limit_set base_set;

	/* cartridge */
	bool cart_present;
	struct sim_cartridge cart;
	uint8_t cart_state;
	uint8_t cart_reject;
	uint32_t cart_first_use;
	uint32_t cart_run_ms;

	/* battery */
	uint8_t battery;
	bool charging;
	uint32_t drain_acc_ms, charge_acc_ms;

	/* GATT */
	bool connected;
	uint16_t mtu;
	uint16_t cccd[SIM_CHR_COUNT];
	bool ind_inflight[SIM_CHR_COUNT];
	uint8_t ind_last[PEN_IND_COUNT][NL_PDU_MAX];
	int ind_last_len[PEN_IND_COUNT];
	bool cp_pending; /* response sent or queued, not yet confirmed */
	bool cp_rsp_queued; /* response waiting for the PEN_CP indication slot */
	uint8_t cp_rsp[16];
	int cp_rsp_len;
	uint8_t live_rate_hz;
	uint64_t next_live_ms;
	uint16_t live_sample;

	/* RACP */
	struct nl_racp_server racp;
	struct nl_racp_req racp_req;
	bool racp_streaming;
	uint32_t racp_sent;
	uint32_t racp_first, racp_last;
	bool racp_seg_active;
	struct nl_seg_tx seg;
	uint8_t seg_rec[NL_RECORD_MAX];
	uint8_t seg_out[520]; /* one segment at MTU 517 */
	uint32_t racp_next_seq; /* next sequence number to consider */
	uint32_t racp_until; /* last seq when the procedure started */
	bool racp_aborting; /* ABORT: finish the record in flight, then answer */
	bool racp_final_sent; /* the last response waits for its confirmation */

	uint32_t records_written;
	unsigned misbehave; /* enum sim_misbehave flags (fault injection) */
};

/* pen.c */
void pen_log(struct sim_pen *p, enum sim_log_level level, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
uint64_t pen_now(struct sim_pen *p);
uint32_t pen_time(struct sim_pen *p);
void pen_advance(struct sim_pen *p);
uint16_t pen_cap(const struct sim_pen *p);
bool pen_cartridge_usable(const struct sim_pen *p);
uint16_t pen_store_reserve(const struct sim_pen *p);
/* Free slots <= the reserve: no session and no motor run may start (4.3). */
bool pen_store_full(const struct sim_pen *p);
uint32_t pen_remaining_s(struct sim_pen *p);
enum nl_cp_result pen_cp_execute(struct sim_pen *p, const struct nl_cp_req *req,
				 uint32_t *ret_value);

/* pen-gatt.c */
int pen_feature_value(struct sim_pen *p, uint8_t *buf, size_t size);
int pen_status_value(struct sim_pen *p, uint8_t *buf, size_t size);
int pen_cartridge_value(struct sim_pen *p, uint8_t *buf, size_t size);
int pen_limits_value(struct sim_pen *p, uint8_t *buf, size_t size);
/* Sends what changed: indications, queued responses, live status, RACP. */
void pen_gatt_flush(struct sim_pen *p);
void pen_gatt_reset(struct sim_pen *p);

#endif
