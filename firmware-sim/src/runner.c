/* SPDX-License-Identifier: MIT */
#include "runner.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lradio.h"
#include "needlelink/crc.h"
#include "needlelink/record.h"
#include "radio_bluez.h"

struct runner {
	struct runner_opts o;
	const struct scenario *scn;
	struct sim_pen_config cfg;
	struct host_platform hp;
	struct sim_pen *pen;
	struct lradio_server *srv;
	struct radio_bluez *bz;

	size_t idx;
	uint64_t base_ms; /* when the previous event ran */
	unsigned iteration;
	bool waiting;
	uint64_t wait_deadline_ms;
	bool finished;
	uint64_t link_up_at_ms; /* 0: no link drop running */
	uint64_t power_on_at_ms; /* 0: no power cycle running */
	uint32_t cart_counter;

	/* summary */
	unsigned rec_types[NL_RECORD_TYPE_END];
	unsigned limit_events[NL_LIMIT_EVENT_END];
	unsigned end_reasons[NL_SESSION_END_REASON_END];
	unsigned cart_rejects[NL_REJECT_END];
	unsigned refused, events_run, link_drops, corrupt_sent, waits_timed_out;
	uint32_t last_session_needle_on_ms, last_session_strokes;
};

static void rlog(struct runner *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void rlog(struct runner *r, const char *fmt, ...)
{
	char line[400];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	host_log_at(host_platform_now_ms(&r->hp), "%s: %s", r->cfg.serial, line);
}

static void on_record(void *ctx, const struct nl_record *rec)
{
	struct runner *r = ctx;

	if (rec->hdr.type < NL_RECORD_TYPE_END)
		r->rec_types[rec->hdr.type]++;
	if (rec->hdr.type == NL_RECORD_LIMIT && rec->u.limit.event < NL_LIMIT_EVENT_END)
		r->limit_events[rec->u.limit.event]++;
	if (rec->hdr.type == NL_RECORD_SESSION_END) {
		if (rec->u.session_end.reason < NL_SESSION_END_REASON_END)
			r->end_reasons[rec->u.session_end.reason]++;
		r->last_session_needle_on_ms = rec->u.session_end.needle_on_ms;
		r->last_session_strokes = rec->u.session_end.strokes;
	}
	if (rec->hdr.type == NL_RECORD_CARTRIDGE &&
	    rec->u.cartridge.event == NL_CARTRIDGE_EVENT_REJECTED &&
	    rec->u.cartridge.reject_reason < NL_REJECT_END)
		r->cart_rejects[rec->u.cartridge.reject_reason]++;
}

static void set_in_range(struct runner *r, bool in)
{
	int e;

	if (r->bz) {
		/* A real adapter cannot leave range: the pen drops its central,
		 * which may connect again at once. */
		if (!in && radio_bluez_connected(r->bz)) {
			rlog(r, "radio: out of range, dropping the BlueZ central");
			radio_bluez_radio_ops()->disconnect(r->bz);
		}
		return;
	}
	if (!r->srv)
		return;
	e = lradio_server_set_in_range(r->srv, in);
	if (e < 0)
		rlog(r, "radio: %s range failed: %s", in ? "back in" : "out of", strerror(-e));
}

/* The BlueZ radio's log hook: its lines already start "bluez radio SERIAL:".
 * Its notices pass even under --quiet: the passkey to pair is one. */
static void bluez_log(void *ctx, enum sim_log_level level, const char *line)
{
	struct runner *r = ctx;

	if ((int)level > r->hp.min_level && level > SIM_LOG_NOTICE)
		return;
	host_log_at(host_platform_now_ms(&r->hp), "%s", line);
}

static int start_bluez(struct runner *r)
{
	struct radio_bluez_config rc;
	int e;

	radio_bluez_config_default(&rc);
	rc.adapter = r->o.bluez_adapter;
	rc.serial = r->cfg.serial;
	rc.log = bluez_log;
	rc.log_ctx = r;
	e = radio_bluez_new(r->o.ev, &rc, sim_pen_gatt_ops(), r->pen, &r->bz);
	if (e < 0) {
		fprintf(stderr, "%s: BlueZ radio on %s failed: %s\n", r->cfg.serial,
			r->o.bluez_adapter, strerror(-e));
		return e;
	}
	sim_pen_set_radio(r->pen, radio_bluez_radio_ops(), r->bz);
	rlog(r, "radio: BlueZ on %s, application %s", r->o.bluez_adapter,
	     radio_bluez_app_path(r->bz));
	return 0;
}

static uint32_t now_pen_time_real(void)
{
	time_t t = time(NULL);

	return t > NL_PEN_EPOCH_UNIX ? (uint32_t)(t - NL_PEN_EPOCH_UNIX) : 1;
}

int runner_new(const struct runner_opts *o, const struct scenario *scn, struct runner **ret)
{
	struct runner *r;
	int e;

	r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	r->o = *o;
	r->scn = scn;
	r->cfg = scn->pen;
	if (o->serial)
		snprintf(r->cfg.serial, sizeof(r->cfg.serial), "%s", o->serial);
	if (o->kind >= 0)
		r->cfg.kind = (enum sim_pen_kind)o->kind;
	switch (scn->clock) {
	case SCN_CLOCK_NOW:
		r->cfg.clock_start = now_pen_time_real();
		break;
	case SCN_CLOCK_UNSET:
		r->cfg.clock_start = 0;
		break;
	case SCN_CLOCK_FIXED:
		r->cfg.clock_start = scn->clock_fixed;
		break;
	}
	e = host_platform_init(&r->hp, o->clock, o->state_dir, r->cfg.serial, o->wipe);
	if (e < 0) {
		fprintf(stderr, "%s: cannot open flash files in %s: %s\n", r->cfg.serial,
			o->state_dir, strerror(-e));
		free(r);
		return e;
	}
	r->hp.min_level = o->log_level;
	r->hp.fixed = true;
	r->hp.fixed_ms = host_clock_now_ms(o->clock);
	r->hp.record_fn = on_record;
	r->hp.record_ctx = r;
	e = sim_pen_new(&r->pen, &r->cfg, &r->hp.plat);
	if (e < 0) {
		fprintf(stderr, "%s: pen configuration refused: %s\n", r->cfg.serial, strerror(-e));
		goto fail;
	}
	if (o->bluez_adapter) {
		e = start_bluez(r);
		if (e < 0)
			goto fail;
	} else if (o->radio_dir) {
		struct lradio_adv adv;

		memset(&adv, 0, sizeof(adv));
		snprintf(adv.name, sizeof(adv.name), "NL %.26s", r->cfg.serial);
		snprintf(adv.serial, sizeof(adv.serial), "%s", r->cfg.serial);
		snprintf(adv.service_uuid, sizeof(adv.service_uuid), "%s", NL_UUID_SERVICE);
		snprintf(adv.kind, sizeof(adv.kind), "pen");
		adv.rssi = (int8_t)(-50 - (int)(o->index % 30));
		e = lradio_server_new(o->ev, o->radio_dir, &adv, sim_pen_gatt_ops(), r->pen,
				      &r->srv);
		if (e < 0) {
			fprintf(stderr, "%s: local radio in %s failed: %s\n", r->cfg.serial,
				o->radio_dir, strerror(-e));
			goto fail;
		}
		sim_pen_set_radio(r->pen, lradio_server_radio_ops(), r->srv);
		rlog(r, "radio: listening on %s", lradio_server_path(r->srv));
	}
	r->base_ms = host_clock_now_ms(o->clock);
	e = sim_pen_power_on(r->pen);
	if (e < 0)
		goto fail;
	*ret = r;
	return 0;
fail:
	runner_free(r);
	return e;
}

void runner_free(struct runner *r)
{
	if (!r)
		return;
	if (r->pen)
		sim_pen_set_radio(r->pen, NULL, NULL);
	lradio_server_free(r->srv);
	/* Before the pen: the radio holds it as its callbacks' context. */
	radio_bluez_free(r->bz);
	sim_pen_free(r->pen);
	host_platform_done(&r->hp);
	free(r);
}

const char *runner_serial(const struct runner *r)
{
	return r->cfg.serial;
}

bool runner_finished(const struct runner *r)
{
	return r->finished;
}

static struct sim_cartridge make_cartridge(struct runner *r, const struct scn_cartridge *k)
{
	struct sim_cartridge c;
	struct sim_pen_info i;

	memset(&c, 0, sizeof(c));
	sim_pen_get_info(r->pen, &i);
	if (k->auto_uid) {
		uint32_t h = nl_fnv1a32((const uint8_t *)r->cfg.serial, strlen(r->cfg.serial));
		uint32_t rnd = r->hp.plat.random_u32(r->hp.plat.ctx);

		r->cart_counter++;
		c.uid[0] = 0xA5;
		c.uid[1] = (uint8_t)h;
		c.uid[2] = (uint8_t)(h >> 8);
		c.uid[3] = (uint8_t)r->cart_counter;
		c.uid[4] = (uint8_t)(rnd);
		c.uid[5] = (uint8_t)(rnd >> 8);
		c.uid[6] = (uint8_t)(rnd >> 16);
		c.uid[7] = (uint8_t)(rnd >> 24);
	} else {
		memcpy(c.uid, k->uid, sizeof(c.uid));
	}
	snprintf(c.lot, sizeof(c.lot), "%s", k->lot);
	{
		int64_t exp = (int64_t)i.pen_time + (int64_t)k->expires_in_days * 86400;

		c.expiry = exp < 1 ? 1 : exp > UINT32_MAX ? UINT32_MAX : (uint32_t)exp;
	}
	c.needle_count = k->needles;
	c.needle_length_um = k->length_um;
	c.unreadable = k->unreadable;
	return c;
}

static void service(struct runner *r, const struct nl_cp_req *q, uint32_t *ret_value)
{
	int res = sim_pen_service_cp(r->pen, q, ret_value);

	if (res != NL_CP_SUCCESS)
		r->refused++;
}

static void do_corrupt(struct runner *r, enum scn_corrupt kind)
{
	uint8_t buf[400];
	enum sim_chr chr = SIM_CHR_LIVE_STATUS;
	int n, e;

	n = sim_pen_live_value(r->pen, buf, sizeof(buf));
	if (n < 3)
		return;
	switch (kind) {
	case SCN_CORRUPT_BAD_CRC:
		buf[n - 1] ^= 0x5A;
		break;
	case SCN_CORRUPT_TRUNCATED:
		n -= 7;
		break;
	case SCN_CORRUPT_OVERSIZED:
		/* far beyond any ATT MTU the link negotiated */
		for (int i = n; i < 300; i++)
			buf[i] = (uint8_t)i;
		n = 300;
		break;
	case SCN_CORRUPT_GARBAGE:
		chr = SIM_CHR_RECORD;
		for (int i = 0; i < 40; i++)
			buf[i] = (uint8_t)r->hp.plat.random_u32(r->hp.plat.ctx);
		n = 40;
		break;
	case SCN_CORRUPT_COUNT:
		return;
	}
	if (!r->srv) {
		/* Only the local radio can send bytes around the pen's encoder. */
		rlog(r, "fault: corrupt notification skipped (%s)",
		     r->bz ? "not possible on the BlueZ radio" : "no radio");
		return;
	}
	e = lradio_server_notify_raw(r->srv, chr, buf, (size_t)n);
	if (e < 0) {
		rlog(r, "fault: corrupt notification not sent: %s", strerror(-e));
		return;
	}
	r->corrupt_sent++;
	rlog(r, "fault: sent a corrupt notification (%d bytes)", n);
}

static void check_refused(struct runner *r, int e)
{
	if (e < 0)
		r->refused++;
}

/* Runs event e at scenario time now. */
static void run_event(struct runner *r, const struct scn_event *e, uint64_t now)
{
	struct nl_cp_req q;
	const struct scn_cartridge *k;
	struct sim_cartridge c;
	struct sim_pen_info i;
	uint32_t v;

	r->events_run++;
	memset(&q, 0, sizeof(q));
	if (e->action != SCN_NOTE)
		rlog(r, "scenario: %s", scn_action_name(e->action));
	switch (e->action) {
	case SCN_NOTE:
		rlog(r, "scenario: note: %s", e->text);
		break;
	case SCN_POWER_ON:
		check_refused(r, sim_pen_power_on(r->pen));
		set_in_range(r, true);
		break;
	case SCN_POWER_OFF:
		set_in_range(r, false);
		sim_pen_power_off(r->pen);
		break;
	case SCN_POWER_CYCLE:
		set_in_range(r, false);
		sim_pen_power_off(r->pen);
		r->power_on_at_ms = now + e->duration_ms + 1;
		break;
	case SCN_ZONE:
		check_refused(r, sim_pen_select_zone(r->pen, (unsigned)e->num));
		break;
	case SCN_DEPTH:
	case SCN_DIAL:
		check_refused(r, sim_pen_set_depth(r->pen, (uint16_t)e->num));
		break;
	case SCN_SPEED:
		check_refused(r, sim_pen_set_speed(r->pen, (uint16_t)e->num));
		break;
	case SCN_START_PASS:
		check_refused(r, sim_pen_start_pass(r->pen));
		break;
	case SCN_END_PASS:
		check_refused(r, sim_pen_end_pass(r->pen));
		break;
	case SCN_PAUSE:
		check_refused(r, sim_pen_pause(r->pen));
		break;
	case SCN_RESUME:
		check_refused(r, sim_pen_resume(r->pen));
		break;
	case SCN_END_SESSION:
		check_refused(r, sim_pen_end_session(r->pen));
		break;
	case SCN_SWAP:
		(void)sim_pen_remove_cartridge(r->pen);
		/* fall through */
	case SCN_INSERT:
		k = scenario_cartridge(r->scn, e->cart);
		if (!k)
			break;
		c = make_cartridge(r, k);
		check_refused(r, sim_pen_insert_cartridge(r->pen, &c));
		break;
	case SCN_REMOVE:
		check_refused(r, sim_pen_remove_cartridge(r->pen));
		break;
	case SCN_LINK_DROP:
		r->link_drops++;
		rlog(r, "fault: link drops for %.1f s", e->duration_ms / 1000.0);
		set_in_range(r, false);
		r->link_up_at_ms = now + e->duration_ms + 1;
		break;
	case SCN_BATTERY:
		sim_pen_set_battery(r->pen, (uint8_t)e->num);
		break;
	case SCN_CHARGING:
		sim_pen_set_charging(r->pen, e->flag);
		break;
	case SCN_CLOCK_DRIFT:
		sim_pen_set_clock_drift(r->pen, e->num);
		break;
	case SCN_CLOCK_JUMP:
		sim_pen_clock_jump(r->pen, e->num);
		break;
	case SCN_CORRUPT:
		do_corrupt(r, e->corrupt);
		break;
	case SCN_FAULT:
		check_refused(r, sim_pen_fault(r->pen, (enum nl_fault_code)e->num,
					       e->flag ? NL_FAULT_CRITICAL : NL_FAULT_WARNING, 0));
		break;
	case SCN_WAIT_ARMED:
	case SCN_WAIT_IDLE:
		r->waiting = true;
		r->wait_deadline_ms = now + e->duration_ms;
		break;
	case SCN_AUTHORISE:
		sim_pen_get_info(r->pen, &i);
		if (i.session_id) {
			/* A gateway got there first: its session stands. */
			rlog(r, "scenario: session %u already authorised, not replacing it",
			     i.session_id);
			break;
		}
		q.op = NL_CP_SET_LIMITS;
		q.u.limits = e->limits;
		v = 0;
		service(r, &q, &v);
		memset(&q, 0, sizeof(q));
		q.op = NL_CP_AUTHORISE;
		q.u.authorise.session_id =
			e->session_id ? e->session_id
				      : (r->hp.plat.random_u32(r->hp.plat.ctx) & 0x7FFFFFFFu) | 1u;
		q.u.authorise.limits_hash = v;
		q.u.authorise.lifetime_s = e->lifetime_s;
		service(r, &q, NULL);
		break;
	case SCN_STOP_SESSION:
		q.op = NL_CP_STOP_SESSION;
		service(r, &q, NULL);
		break;
	case SCN_ACK_ALL:
		sim_pen_get_info(r->pen, &i);
		q.op = NL_CP_ACK_RECORDS;
		q.u.ack.store_epoch = i.store_epoch;
		q.u.ack.seq = i.last_seq;
		if (i.last_seq)
			service(r, &q, NULL);
		break;
	case SCN_MISBEHAVE:
		sim_pen_set_misbehave(r->pen, (unsigned)e->num);
		break;
	case SCN_ACTION_COUNT:
		break;
	}
}

static bool wait_satisfied(struct runner *r, const struct scn_event *e)
{
	struct sim_pen_info i;

	sim_pen_get_info(r->pen, &i);
	if (e->action == SCN_WAIT_ARMED)
		return i.state == NL_PEN_STATE_ARMED || i.state == NL_PEN_STATE_RUNNING ||
		       i.state == NL_PEN_STATE_PAUSED;
	return i.state == NL_PEN_STATE_IDLE || i.state == NL_PEN_STATE_OFF;
}

/* Link and power timers due at or before upto, at their own time. */
static void run_timers(struct runner *r, uint64_t upto)
{
	if (r->link_up_at_ms && r->link_up_at_ms <= upto) {
		if (r->link_up_at_ms > r->hp.fixed_ms)
			r->hp.fixed_ms = r->link_up_at_ms;
		r->link_up_at_ms = 0;
		rlog(r, "link back in range");
		set_in_range(r, true);
	}
	if (r->power_on_at_ms && r->power_on_at_ms <= upto) {
		if (r->power_on_at_ms > r->hp.fixed_ms)
			r->hp.fixed_ms = r->power_on_at_ms;
		r->power_on_at_ms = 0;
		check_refused(r, sim_pen_power_on(r->pen));
		set_in_range(r, true);
	}
}

void runner_tick(struct runner *r)
{
	uint64_t now = host_clock_now_ms(r->o.clock);

	if (now < r->hp.fixed_ms)
		now = r->hp.fixed_ms;
	while (!r->finished) {
		const struct scn_event *e;
		uint64_t due;

		if (r->waiting) {
			e = &r->scn->events[r->idx - 1];
			if (wait_satisfied(r, e)) {
				r->waiting = false;
				r->base_ms = now;
				rlog(r, "scenario: %s satisfied", scn_action_name(e->action));
			} else if (now >= r->wait_deadline_ms) {
				r->waiting = false;
				r->waits_timed_out++;
				r->base_ms = r->wait_deadline_ms;
				rlog(r, "scenario: %s timed out, going on",
				     scn_action_name(e->action));
			} else {
				break;
			}
		}
		if (r->idx >= r->scn->nevents) {
			if (!r->scn->loop) {
				r->finished = true;
				rlog(r, "scenario finished");
				break;
			}
			r->idx = 0;
			r->iteration++;
			r->base_ms += r->scn->loop_pause_ms;
			rlog(r, "scenario: loop %u", r->iteration + 1);
		}
		e = &r->scn->events[r->idx];
		due = r->base_ms + e->after_ms;
		if (due > now)
			break;
		/* The pen sees the event at its exact scenario time, after the
		 * timers that were due before it. */
		run_timers(r, due);
		if (due > r->hp.fixed_ms)
			r->hp.fixed_ms = due;
		r->idx++;
		r->base_ms = due;
		run_event(r, e, due);
	}
	run_timers(r, now);
	r->hp.fixed_ms = now;
	sim_pen_tick(r->pen);
}

cJSON *runner_summary(const struct runner *r)
{
	struct sim_pen_info i;
	cJSON *o = cJSON_CreateObject(), *recs, *lim, *ends, *rej;

	if (!o)
		return NULL;
	sim_pen_get_info(r->pen, &i);
	cJSON_AddStringToObject(o, "serial", r->cfg.serial);
	cJSON_AddStringToObject(o, "kind", r->cfg.kind == SIM_PEN_DIAL ? "dial" : "motorised");
	cJSON_AddStringToObject(o, "state", nl_pen_state_name(i.state));
	cJSON_AddStringToObject(o, "lock_reason",
				i.lock_reason ? nl_lock_reason_name(i.lock_reason) : "none");
	cJSON_AddNumberToObject(o, "store_epoch", i.store_epoch);
	cJSON_AddNumberToObject(o, "last_seq", i.last_seq);
	cJSON_AddNumberToObject(o, "store_used", i.store_used);
	cJSON_AddNumberToObject(o, "battery_pct", i.battery_pct);
	cJSON_AddStringToObject(o, "limit_source",
				i.limit_source == NL_LIMIT_SOURCE_SESSION    ? "session"
				: i.limit_source == NL_LIMIT_SOURCE_FALLBACK ? "fallback"
									     : "factory");
	cJSON_AddNumberToObject(o, "events_run", r->events_run);
	cJSON_AddNumberToObject(o, "refused_actions", r->refused);
	cJSON_AddNumberToObject(o, "link_drops", r->link_drops);
	cJSON_AddNumberToObject(o, "corrupt_sent", r->corrupt_sent);
	cJSON_AddNumberToObject(o, "waits_timed_out", r->waits_timed_out);
	cJSON_AddNumberToObject(o, "loops", r->iteration);
	cJSON_AddNumberToObject(o, "last_session_needle_on_ms", r->last_session_needle_on_ms);
	cJSON_AddNumberToObject(o, "last_session_strokes", r->last_session_strokes);
	recs = cJSON_AddObjectToObject(o, "records");
	lim = cJSON_AddObjectToObject(o, "limit_events");
	ends = cJSON_AddObjectToObject(o, "session_end_reasons");
	rej = cJSON_AddObjectToObject(o, "cartridge_rejects");
	cJSON_AddNumberToObject(recs, "total", i.records_written);
	for (unsigned t = 1; t < NL_RECORD_TYPE_END; t++)
		cJSON_AddNumberToObject(recs, nl_record_type_name(t), r->rec_types[t]);
	for (unsigned t = 1; t < NL_LIMIT_EVENT_END; t++)
		cJSON_AddNumberToObject(lim, nl_limit_event_name(t), r->limit_events[t]);
	for (unsigned t = 1; t < NL_SESSION_END_REASON_END; t++)
		cJSON_AddNumberToObject(ends, nl_session_end_reason_name(t), r->end_reasons[t]);
	for (unsigned t = 1; t < NL_REJECT_END; t++)
		cJSON_AddNumberToObject(rej, nl_cartridge_reject_name(t), r->cart_rejects[t]);
	return o;
}
