/* SPDX-License-Identifier: MIT */
/*
 * Pen manager. Procedures follow docs/protocol.md section 10 (connect and
 * subscribe, version check, time sync, catch-up) and 12.2 (collector-side
 * error handling).
 *
 * Every GATT operation of a pen goes through its queue: one operation is on
 * the air at a time, so a read never races a CCCD write or a control point
 * request. Stages are separated by barrier entries in that queue.
 *
 * Pen objects live as long as the manager (a pen out of range keeps its
 * cursor and counters), so callbacks never see a freed pen.
 */
#include "penmgr.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "log.h"
#include "needlelink/racp.h"
#include "needlelink/seg.h"

#define DEFAULT_MAX_CONNECTIONS 4
#define DEFAULT_MTU 247
#define MTU_MIN_USABLE 109 /* 106-byte Active Limits + 3 (2.6) */
#define DEFAULT_WATCHDOG_USEC (10ULL * 1000000ULL)
#define DEFAULT_CP_TIMEOUT_USEC (10ULL * 1000000ULL)
#define DEFAULT_RACP_TIMEOUT_USEC (15ULL * 1000000ULL)
#define DEFAULT_BACKOFF_MIN_USEC (1ULL * 1000000ULL)
#define DEFAULT_BACKOFF_MAX_USEC (300ULL * 1000000ULL)
#define DEFAULT_CORRUPT_LIMIT 5
#define DEFAULT_DRIFT_MAX_S 2
#define PEN_GAPS_MAX 32
#define PEN_QUARANTINE_LINKS 3

enum chr {
	CHR_FEATURE,
	CHR_LIVE,
	CHR_RECORD,
	CHR_RACP,
	CHR_CP,
	CHR_LIMITS,
	CHR_STATUS,
	CHR_CARTRIDGE,
	CHR_DIS_SERIAL,
	CHR_DIS_MODEL,
	CHR_DIS_FIRMWARE,
	CHR_DIS_MANUFACTURER,
	CHR_BATTERY,
	CHR_COUNT
};

static const struct {
	const char *uuid;
	const char *name;
	uint8_t props; /* required properties; a characteristic is optional if 0 */
} chr_info[CHR_COUNT] = {
	[CHR_FEATURE] = { NL_UUID_FEATURE, "Feature", TRANSPORT_PROP_READ },
	[CHR_LIVE] = { NL_UUID_LIVE_STATUS, "Live Status", TRANSPORT_PROP_NOTIFY },
	[CHR_RECORD] = { NL_UUID_RECORD, "Treatment Record", TRANSPORT_PROP_NOTIFY },
	[CHR_RACP] = { NL_UUID_RACP, "RACP", TRANSPORT_PROP_WRITE | TRANSPORT_PROP_INDICATE },
	[CHR_CP] = { NL_UUID_PEN_CP, "Pen CP", TRANSPORT_PROP_WRITE | TRANSPORT_PROP_INDICATE },
	[CHR_LIMITS] = { NL_UUID_ACTIVE_LIMITS, "Active Limits",
			 TRANSPORT_PROP_READ | TRANSPORT_PROP_INDICATE },
	[CHR_STATUS] = { NL_UUID_PEN_STATUS, "Pen Status",
			 TRANSPORT_PROP_READ | TRANSPORT_PROP_INDICATE },
	[CHR_CARTRIDGE] = { NL_UUID_CARTRIDGE, "Cartridge Info",
			    TRANSPORT_PROP_READ | TRANSPORT_PROP_INDICATE },
	[CHR_DIS_SERIAL] = { NL_UUID_DIS_SERIAL, "DIS Serial Number", TRANSPORT_PROP_READ },
	[CHR_DIS_MODEL] = { NL_UUID_DIS_MODEL, "DIS Model Number", 0 },
	[CHR_DIS_FIRMWARE] = { NL_UUID_DIS_FIRMWARE, "DIS Firmware Revision", 0 },
	[CHR_DIS_MANUFACTURER] = { NL_UUID_DIS_MANUFACTURER, "DIS Manufacturer Name", 0 },
	[CHR_BATTERY] = { NL_UUID_BATTERY_LEVEL, "Battery Level", 0 },
};

/* CCCDs in the order of 10.1 step 8. */
static const struct {
	enum chr chr;
	uint16_t value;
} cccd_order[] = {
	{ CHR_CP, 2 },	   { CHR_RACP, 2 },	 { CHR_RECORD, 1 }, { CHR_STATUS, 2 },
	{ CHR_LIMITS, 2 }, { CHR_CARTRIDGE, 2 }, { CHR_LIVE, 1 },
};

struct pen;

enum op_kind {
	OP_READ,
	OP_WRITE,
	OP_SUBSCRIBE,
	OP_BARRIER, /* runs fn when every earlier operation has finished */
};

struct gatt_op {
	struct gatt_op *next;
	struct pen *pen;
	enum op_kind kind;
	enum chr chr;
	uint16_t value; /* CCCD value */
	unsigned tag;   /* CP request id for Pen CP writes */
	size_t len;
	uint8_t data[NL_PDU_MAX];
	void (*done)(struct pen *p, struct gatt_op *op, int err, uint8_t att_err,
		     const uint8_t *val, size_t len);
	void (*barrier)(struct pen *p);
	penmgr_limits_fn limits_cb; /* penmgr_read_limits() */
	void *limits_data;
};

struct cp_req {
	struct cp_req *next;
	struct pen *pen;
	unsigned id;
	struct nl_cp_req req;
	bool internal;
	penmgr_cp_fn cb;
	void *user_data;
	transport_destroy_fn destroy;
};

struct pending_rec {
	uint32_t seq;
	int state; /* 0 waiting, 1 committed, -1 failed */
};

/* Sequence numbers the pen skipped during a REPORT: asked for again with
 * RACP REPORT RANGE (10.4 step 8). Nothing at or after a.. is acknowledged
 * while the gap is open. A gap closes when its records came, or when a
 * REPORT RANGE of it ended with nothing lost on the way (no malformed value,
 * no record the gateway could not take): what did not come then is not on
 * the pen (record_gap). Otherwise it is asked for up to PEN_GAP_TRIES times
 * per connection, then parked (still open, still not acknowledged past;
 * catchup_failed, once) until the next connection. */
struct gap {
	uint32_t a, b;
	unsigned tries;  /* REPORT RANGE of it on this connection */
	bool parked;     /* not asked again on this connection */
	bool reported;   /* record_gap alert sent */
};

#define PEN_GAP_TRIES 3

struct pen {
	struct pen *next;
	struct penmgr *pm;
	char serial[NL_SERIAL_MAX + 1];
	char addr[TRANSPORT_ADDR_MAX];
	bool serial_known; /* from the advertisement or DIS */
	bool allowed;      /* serial checked against the allow-list */
	bool ignored;      /* not on the allow-list: hidden for good */
	bool in_range;
	bool linked;       /* transport link exists (connecting or up) */
	bool cp_ready;     /* Pen CP indications enabled on this link */
	bool refuse_hard;  /* protocol mismatch: maximum backoff */
	enum penmgr_state state;

	unsigned connect_id;
	uint16_t handle[CHR_COUNT];

	struct gatt_op *q_head, *q_tail, *inflight;
	unsigned inflight_id;
	bool pumping;

	sd_event_source *backoff_timer, *watchdog, *cp_timer, *racp_timer;
	sd_event_source *kick; /* deferred: next Pen CP request, RACP restart */
	unsigned backoff_attempt;
	unsigned corrupt_links; /* consecutive links ended for malformed data */
	bool drop_malformed;    /* the link being dropped ended for malformed data */
	bool quarantined;       /* not used until penmgr_release() (12.2) */
	unsigned link_corrupt;

	struct nl_seg_rx seg;
	struct nl_racp_client racp;
	uint64_t catchup_next_us; /* next progress report, 0: no long catch-up */
	bool racp_active, racp_again;
	bool racp_fill; /* the running procedure refills gaps[fill_gap] */
	size_t fill_gap;
	unsigned fill_corrupt0; /* link_corrupt when the refill started */
	unsigned fill_lost;     /* refilled records not handed to the sink */
	struct nl_racp_client fill;
	struct gap gaps[PEN_GAPS_MAX];
	size_t n_gaps;

	struct nl_cp_client cp;
	struct cp_req *cp_head, *cp_tail, *cp_inflight;
	bool ack_queued;

	bool cursor_loaded;
	uint32_t epoch;
	uint32_t received_hi; /* highest seq handed to the sink */
	uint32_t commit_hi;   /* highest contiguous committed seq */
	uint32_t link_acked;  /* highest seq acknowledged on this link */
	struct pending_rec *pend;
	size_t n_pend, cap_pend;

	struct penmgr_snapshot snap;
	struct penmgr_counters cnt;
};

struct commit {
	struct commit *next, **pprev;
	struct penmgr *pm;
	char serial[NL_SERIAL_MAX + 1];
	uint32_t epoch, seq;
};

struct penmgr {
	sd_event *ev;
	struct transport *t;
	struct penmgr_config cfg;
	char **allow;
	bool allow_any;
	struct penmgr_callbacks cb;
	void *user_data;
	struct pen *pens;
	struct commit *commits;
	unsigned next_cp_id;
	uint32_t ignored;
	bool started;
};

static void pen_set_state(struct pen *p, enum penmgr_state to, enum transport_err_class cls);
static void pen_drop(struct pen *p, enum transport_err_class cls, const char *why);
static void pen_pump(struct pen *p);
static void cp_dispatch(struct pen *p);
static void catchup_start(struct pen *p);
static void catchup_progress_start(struct pen *p, uint32_t first);
static void catchup_progress(struct pen *p);
static void catchup_progress_end(struct pen *p);
static void racp_next(struct pen *p);
static void catchup_done(struct pen *p);
static void ack_maybe(struct pen *p);
static void try_connect_waiting(struct penmgr *pm);
static void pen_kick(struct pen *p);

/* ---- helpers --------------------------------------------------------- */

static const char *pen_name(const struct pen *p)
{
	return p->serial_known ? p->serial : p->addr;
}

static uint64_t now_usec(struct penmgr *pm)
{
	uint64_t t = 0;

	(void)sd_event_now(pm->ev, CLOCK_MONOTONIC, &t);
	return t;
}

static void emit(struct pen *p, struct penmgr_event *ev)
{
	if (!p->allowed || p->ignored || !p->pm->cb.event)
		return;
	ev->serial = p->serial;
	p->pm->cb.event(p->pm->user_data, ev);
}

static void alert(struct pen *p, enum penmgr_alert a, int64_t value, uint32_t count,
		  const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static void alert(struct pen *p, enum penmgr_alert a, int64_t value, uint32_t count,
		  const char *fmt, ...)
{
	struct penmgr_event ev = { .type = PENMGR_EVENT_ALERT };
	char msg[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	log_pen_warning(pen_name(p), "alert %s: %s", penmgr_alert_name(a), msg);
	ev.u.alert.alert = a;
	ev.u.alert.value = value;
	ev.u.alert.count = count;
	ev.u.alert.message = msg;
	emit(p, &ev);
}

static void snapshot_changed(struct pen *p)
{
	struct penmgr_event ev = { .type = PENMGR_EVENT_SNAPSHOT };

	emit(p, &ev);
}

static bool serial_allowed(struct penmgr *pm, const char *serial)
{
	if (!serial || !serial[0])
		return false;
	if (pm->allow_any)
		return true;
	for (char **a = pm->allow; a && *a; a++)
		if (strcmp(*a, serial) == 0)
			return true;
	return false;
}

static bool is_link_state(enum penmgr_state s)
{
	switch (s) {
	case PENMGR_STATE_CONNECTING:
	case PENMGR_STATE_RESOLVING:
	case PENMGR_STATE_SUBSCRIBING:
	case PENMGR_STATE_CATCHING_UP:
	case PENMGR_STATE_READY:
	case PENMGR_STATE_DISCONNECTING:
		return true;
	case PENMGR_STATE_DISCOVERED:
	case PENMGR_STATE_BACKOFF:
	case PENMGR_STATE_LOST:
	case PENMGR_STATE_COUNT:
		break;
	}
	return false;
}

static struct pen *pen_by_addr(struct penmgr *pm, const char *addr)
{
	for (struct pen *p = pm->pens; p; p = p->next)
		if (strcmp(p->addr, addr) == 0)
			return p;
	return NULL;
}

static struct pen *pen_by_serial(struct penmgr *pm, const char *serial)
{
	for (struct pen *p = pm->pens; p; p = p->next)
		if (p->allowed && !p->ignored && strcmp(p->serial, serial) == 0)
			return p;
	return NULL;
}

static int timer_arm(struct penmgr *pm, sd_event_source **src, uint64_t usec,
		     sd_event_time_handler_t fn, void *data)
{
	uint64_t when = now_usec(pm) + usec;
	int r;

	if (*src) {
		r = sd_event_source_set_time(*src, when);
		if (r >= 0)
			r = sd_event_source_set_enabled(*src, SD_EVENT_ONESHOT);
		return r;
	}
	return sd_event_add_time(pm->ev, src, CLOCK_MONOTONIC, when, 0, fn, data);
}

static void timer_stop(sd_event_source *src)
{
	if (src)
		(void)sd_event_source_set_enabled(src, SD_EVENT_OFF);
}

/* ---- GATT operation queue ------------------------------------------- */

static struct gatt_op *op_new(struct pen *p, enum op_kind kind, enum chr chr)
{
	struct gatt_op *op = calloc(1, sizeof(*op));

	if (!op)
		return NULL;
	op->pen = p;
	op->kind = kind;
	op->chr = chr;
	return op;
}

static int op_push(struct pen *p, struct gatt_op *op)
{
	if (!p->linked) {
		free(op);
		return -ENOTCONN;
	}
	if (p->q_tail)
		p->q_tail->next = op;
	else
		p->q_head = op;
	p->q_tail = op;
	pen_pump(p);
	return 0;
}

static void queue_clear(struct pen *p)
{
	struct gatt_op *reads = NULL;

	if (p->inflight) {
		p->inflight->next = p->q_head;
		p->q_head = p->inflight;
	}
	/* The inflight request was cancelled with the link: no transport
	 * callback. Only penmgr_read_limits() callers hear of it. */
	p->inflight = NULL;
	p->inflight_id = 0;
	while (p->q_head) {
		struct gatt_op *op = p->q_head;

		p->q_head = op->next;
		if (op->limits_cb) {
			op->next = reads;
			reads = op;
		} else {
			free(op);
		}
	}
	p->q_tail = NULL;
	while (reads) {
		struct gatt_op *op = reads;

		reads = op->next;
		op->limits_cb(-ENOTCONN, NULL, op->limits_data);
		free(op);
	}
}

static void op_finish(struct gatt_op *op, int err, uint8_t att_err, const uint8_t *val, size_t len)
{
	struct pen *p = op->pen;

	if (p->inflight == op) {
		p->inflight = NULL;
		p->inflight_id = 0;
	}
	if (op->done)
		op->done(p, op, err, att_err, val, len);
	free(op);
	pen_pump(p);
}

static void op_read_cb(int err, uint8_t att_err, const uint8_t *val, size_t len, void *user_data)
{
	op_finish(user_data, err, att_err, val, len);
}

static void op_status_cb(int err, uint8_t att_err, void *user_data)
{
	op_finish(user_data, err, att_err, NULL, 0);
}

static void pen_pump(struct pen *p)
{
	struct penmgr *pm = p->pm;

	if (p->pumping)
		return;
	p->pumping = true;
	while (p->linked && !p->inflight && p->q_head) {
		struct gatt_op *op = p->q_head;
		unsigned id = 0;

		p->q_head = op->next;
		if (!p->q_head)
			p->q_tail = NULL;
		op->next = NULL;
		switch (op->kind) {
		case OP_BARRIER:
			op->barrier(p);
			free(op);
			continue;
		case OP_READ:
			id = transport_read(pm->t, p->addr, p->handle[op->chr], op_read_cb, op, NULL);
			break;
		case OP_WRITE:
			id = transport_write(pm->t, p->addr, p->handle[op->chr], op->data, op->len,
					     op_status_cb, op, NULL);
			break;
		case OP_SUBSCRIBE:
			id = transport_subscribe(pm->t, p->addr, p->handle[op->chr], op->value,
						 op_status_cb, op, NULL);
			break;
		}
		if (id == 0) {
			/* Could not even queue it: the link is unusable. */
			if (op->done)
				op->done(p, op, -ENOTCONN, 0, NULL, 0);
			free(op);
			continue;
		}
		p->inflight = op;
		p->inflight_id = id;
	}
	p->pumping = false;
}

static int op_read(struct pen *p, enum chr chr,
		   void (*done)(struct pen *, struct gatt_op *, int, uint8_t, const uint8_t *,
				size_t))
{
	struct gatt_op *op;

	if (!p->handle[chr])
		return -ENOENT;
	op = op_new(p, OP_READ, chr);
	if (!op)
		return -ENOMEM;
	op->done = done;
	return op_push(p, op);
}

static int op_barrier(struct pen *p, void (*fn)(struct pen *))
{
	struct gatt_op *op = op_new(p, OP_BARRIER, CHR_COUNT);

	if (!op)
		return -ENOMEM;
	op->barrier = fn;
	return op_push(p, op);
}

/* Most operations are part of the connect procedure: any failure ends the
 * link (10.1: "a failure -> disconnect and retry the connection later"). */
static bool op_failed(struct pen *p, struct gatt_op *op, int err, uint8_t att_err)
{
	if (err >= 0)
		return false;
	if (err == -ECANCELED)
		return true;
	p->cnt.errors[err == -ETIMEDOUT ? PENMGR_ERR_TIMEOUT : PENMGR_ERR_GATT]++;
	log_pen_warning(pen_name(p), "GATT %s of %s failed: %s (att 0x%02x)",
			op->kind == OP_READ ? "read" : op->kind == OP_WRITE ? "write" : "subscribe",
			chr_info[op->chr].name, strerror(-err), att_err);
	pen_drop(p, transport_err_class(err), "GATT operation failed");
	return true;
}

/* ---- corrupt traffic -------------------------------------------------- */

static void corrupt(struct pen *p, const char *what, int err)
{
	struct penmgr *pm = p->pm;

	p->cnt.corrupt++;
	p->cnt.errors[PENMGR_ERR_DECODE]++;
	p->link_corrupt++;
	alert(p, PENMGR_ALERT_CORRUPT, p->link_corrupt, p->cnt.corrupt, "malformed %s: %s", what,
	      err < 0 ? nl_strerror(err) : "oversized");
	if (p->link_corrupt >= pm->cfg.corrupt_limit && p->linked) {
		alert(p, PENMGR_ALERT_CORRUPT_LIMIT, p->link_corrupt, p->cnt.corrupt,
		      "pen sends malformed data: %u malformed values on this link, disconnecting",
		      p->link_corrupt);
		p->drop_malformed = true;
		pen_drop(p, TRANSPORT_ERR_PROTOCOL, "malformed data");
	}
}

/* ---- record commits and acknowledgement ------------------------------- */

static void commit_unlink(struct commit *c)
{
	if (!c->pprev)
		return;
	*c->pprev = c->next;
	if (c->next)
		c->next->pprev = c->pprev;
	c->pprev = NULL;
}

static void pend_advance(struct pen *p)
{
	size_t k = 0;

	while (k < p->n_pend && p->pend[k].state == 1) {
		/* A refilled gap commits below records already committed. */
		if (p->pend[k].seq > p->commit_hi)
			p->commit_hi = p->pend[k].seq;
		k++;
	}
	if (k < p->n_pend && p->pend[k].state < 0) {
		uint32_t seq = p->pend[k].seq;

		p->cnt.errors[PENMGR_ERR_SEQUENCE]++;
		alert(p, PENMGR_ALERT_COMMIT_FAILED, seq, 1,
		      "record %" PRIu32 " was not committed; fetching again from %" PRIu32, seq,
		      p->commit_hi + 1);
		/* Fetch everything after the last good commit again; the records
		 * behind it may be delivered twice (the journal keys on seq). */
		p->n_pend = 0;
		p->received_hi = p->commit_hi;
		while (p->n_gaps > 0 && p->gaps[p->n_gaps - 1].a > p->commit_hi)
			p->n_gaps--;
		nl_racp_client_start(&p->racp, p->received_hi + 1);
		if (p->state == PENMGR_STATE_READY)
			catchup_start(p);
	} else if (k > 0) {
		memmove(p->pend, p->pend + k, (p->n_pend - k) * sizeof(*p->pend));
		p->n_pend -= k;
	}
	p->snap.committed_seq = p->commit_hi;
	ack_maybe(p);
}

static void commit_done(int err, void *commit_data)
{
	struct commit *c = commit_data;
	struct pen *p;

	if (!c->pm)
		goto out;
	p = pen_by_serial(c->pm, c->serial);
	if (!p || p->epoch != c->epoch)
		goto out;
	for (size_t i = 0; i < p->n_pend; i++)
		if (p->pend[i].seq == c->seq) {
			p->pend[i].state = err < 0 ? -1 : 1;
			if (err >= 0)
				p->cnt.committed++;
			break;
		}
	pend_advance(p);
out:
	commit_unlink(c);
	free(c);
}

static void ack_done(struct pen *p, const struct cp_req *q, int err, const struct nl_cp_rsp *rsp)
{
	p->ack_queued = false;
	if (err < 0)
		return;
	if (rsp->result == NL_CP_SUCCESS) {
		p->cnt.acks++;
		p->link_acked = q->req.u.ack.seq;
		p->snap.acked_seq = p->link_acked;
		log_pen_debug(pen_name(p), "acknowledged records through %" PRIu32 ", %" PRIu32
			      " still stored", q->req.u.ack.seq, rsp->value);
	} else {
		p->cnt.errors[PENMGR_ERR_COMMAND]++;
		alert(p, PENMGR_ALERT_ACK_FAILED, rsp->result, 0,
		      "ACK_RECORDS(%" PRIu32 ", %" PRIu32 ") answered %s", q->req.u.ack.store_epoch,
		      q->req.u.ack.seq, nl_cp_result_name(rsp->result));
		return;
	}
	ack_maybe(p);
}

static struct cp_req *cp_req_new(struct pen *p, const struct nl_cp_req *req)
{
	struct cp_req *q = calloc(1, sizeof(*q));

	if (!q)
		return NULL;
	q->pen = p;
	q->req = *req;
	do
		q->id = ++p->pm->next_cp_id;
	while (q->id == 0);
	return q;
}

static void cp_enqueue(struct pen *p, struct cp_req *q)
{
	if (p->cp_tail)
		p->cp_tail->next = q;
	else
		p->cp_head = q;
	p->cp_tail = q;
	/* Deferred: we may be inside the indication that answered the
	 * previous request (see cp_finish_inflight). */
	pen_kick(p);
}

/* Only what the sink has durably committed is acknowledged (10.4 step 9). */
static void ack_maybe(struct pen *p)
{
	struct nl_cp_req req = { .op = NL_CP_ACK_RECORDS };
	struct cp_req *q;

	uint32_t limit = p->commit_hi;

	/* Never past an open gap: its records may still come (10.4 step 8). */
	if (p->n_gaps > 0 && p->gaps[0].a - 1 < limit)
		limit = p->gaps[0].a - 1;
	if (!p->cp_ready || p->ack_queued || limit <= p->link_acked)
		return;
	req.u.ack.store_epoch = p->epoch;
	req.u.ack.seq = limit;
	q = cp_req_new(p, &req);
	if (!q)
		return;
	q->internal = true;
	p->ack_queued = true;
	cp_enqueue(p, q);
}

/* ---- Pen Control Point ------------------------------------------------ */

static void cp_complete(struct pen *p, struct cp_req *q, int err, const struct nl_cp_rsp *rsp)
{
	if (q->internal) {
		if (q->req.op == NL_CP_ACK_RECORDS)
			ack_done(p, q, err, rsp);
		else if (q->req.op == NL_CP_SET_TIME && err >= 0 && rsp->result != NL_CP_SUCCESS) {
			p->cnt.errors[PENMGR_ERR_COMMAND]++;
			log_pen_warning(pen_name(p), "SET_TIME answered %s",
					nl_cp_result_name(rsp->result));
		}
	} else {
		if (err >= 0 && rsp->result != NL_CP_SUCCESS)
			p->cnt.errors[PENMGR_ERR_COMMAND]++;
		if (q->cb)
			q->cb(err, err < 0 ? NULL : rsp, q->user_data);
	}
	if (q->destroy)
		q->destroy(q->user_data);
	free(q);
}

static void cp_finish_inflight(struct pen *p, int err, const struct nl_cp_rsp *rsp)
{
	struct cp_req *q = p->cp_inflight;

	if (!q)
		return;
	p->cp_inflight = NULL;
	timer_stop(p->cp_timer);
	cp_complete(p, q, err, rsp);
	/* Not from inside the indication: the pen refuses a new request until
	 * this response is confirmed, which happens when the handler returns. */
	pen_kick(p);
}

static void cp_fail_all(struct pen *p, int err)
{
	struct cp_req *q = p->cp_inflight;

	p->cp_inflight = NULL;
	timer_stop(p->cp_timer);
	nl_cp_client_reset(&p->cp);
	if (q)
		cp_complete(p, q, err, NULL);
	while ((q = p->cp_head)) {
		p->cp_head = q->next;
		if (!p->cp_head)
			p->cp_tail = NULL;
		cp_complete(p, q, err, NULL);
	}
	p->ack_queued = false;
}

static void cp_write_done(struct pen *p, struct gatt_op *op, int err, uint8_t att_err,
			  const uint8_t *val, size_t len)
{
	if (err >= 0 || err == -ECANCELED)
		return;
	/* The pen refused the write: no indication will follow. */
	if (p->cp_inflight && p->cp_inflight->id == op->tag) {
		nl_cp_client_reset(&p->cp);
		log_pen_warning(pen_name(p), "Pen CP write refused: %s (att 0x%02x)",
				strerror(-err), att_err);
		p->cnt.errors[err == -ETIMEDOUT ? PENMGR_ERR_TIMEOUT : PENMGR_ERR_GATT]++;
		cp_finish_inflight(p, err, NULL);
	}
	if (err != -EREMOTEIO)
		pen_drop(p, transport_err_class(err), "Pen CP write failed");
}

static int cp_timeout_cb(sd_event_source *s, uint64_t usec, void *userdata)
{
	struct pen *p = userdata;

	if (!p->cp_inflight)
		return 0;
	p->cnt.errors[PENMGR_ERR_TIMEOUT]++;
	log_pen_warning(pen_name(p), "Pen CP %s: no response in time",
			nl_cp_op_name(p->cp_inflight->req.op));
	nl_cp_client_reset(&p->cp);
	cp_finish_inflight(p, -ETIMEDOUT, NULL);
	/* A response may still be on its way: the link cannot be trusted to
	 * match it to the right request any more. */
	pen_drop(p, TRANSPORT_ERR_TIMEOUT, "Pen CP timeout");
	return 0;
}

static void cp_dispatch(struct pen *p)
{
	struct penmgr *pm = p->pm;
	struct cp_req *q;
	struct gatt_op *op;
	int n;

	if (!p->cp_ready || p->cp_inflight || !p->cp_head)
		return;
	q = p->cp_head;
	p->cp_head = q->next;
	if (!p->cp_head)
		p->cp_tail = NULL;
	q->next = NULL;

	op = op_new(p, OP_WRITE, CHR_CP);
	if (!op) {
		cp_complete(p, q, -ENOMEM, NULL);
		return;
	}
	n = nl_cp_req_encode(&q->req, op->data, sizeof(op->data));
	if (n < 0 || nl_cp_client_begin(&p->cp, q->req.op) < 0) {
		free(op);
		cp_complete(p, q, n < 0 ? n : -EBUSY, NULL);
		cp_dispatch(p);
		return;
	}
	op->len = (size_t)n;
	op->tag = q->id;
	op->done = cp_write_done;
	p->cp_inflight = q;
	(void)timer_arm(pm, &p->cp_timer, pm->cfg.cp_timeout_usec, cp_timeout_cb, p);
	log_pen_debug(pen_name(p), "Pen CP %s", nl_cp_op_name(q->req.op));
	(void)op_push(p, op);
}

static void on_cp_value(struct pen *p, const uint8_t *val, size_t len)
{
	struct nl_cp_rsp rsp;
	int r = nl_cp_rsp_decode(val, len, &rsp);

	if (r >= 0)
		r = nl_cp_client_complete(&p->cp, &rsp);
	if (r < 0) {
		/* 12.2: treat the request as unanswered. */
		corrupt(p, "Pen CP response", r);
		if (p->cp_inflight) {
			nl_cp_client_reset(&p->cp);
			cp_finish_inflight(p, -EPROTO, NULL);
		}
		return;
	}
	log_pen_debug(pen_name(p), "Pen CP %s -> %s (value %" PRIu32 ")",
		      nl_cp_op_name(rsp.req_op), nl_cp_result_name(rsp.result), rsp.value);
	cp_finish_inflight(p, 0, &rsp);
}

/* ---- records and RACP -------------------------------------------------- */

static int racp_timeout_cb(sd_event_source *s, uint64_t usec, void *userdata)
{
	struct pen *p = userdata;

	if (!p->racp_active)
		return 0;
	p->cnt.errors[PENMGR_ERR_TIMEOUT]++;
	alert(p, PENMGR_ALERT_CATCHUP_FAILED, -ETIMEDOUT, 0, "record catch-up stalled");
	pen_drop(p, TRANSPORT_ERR_TIMEOUT, "RACP timeout");
	return 0;
}

static void racp_write_done(struct pen *p, struct gatt_op *op, int err, uint8_t att_err,
			    const uint8_t *val, size_t len)
{
	if (err >= 0 || err == -ECANCELED)
		return;
	p->racp_active = false;
	timer_stop(p->racp_timer);
	(void)op_failed(p, op, err, att_err);
}

static void catchup_done(struct pen *p)
{
	if (p->state == PENMGR_STATE_CATCHING_UP) {
		p->backoff_attempt = 0;
		p->cnt.connects++;
		pen_set_state(p, PENMGR_STATE_READY, TRANSPORT_ERR_NONE);
	}
}

static int kick_cb(sd_event_source *s, void *userdata)
{
	struct pen *p = userdata;

	(void)sd_event_source_set_enabled(s, SD_EVENT_OFF);
	if (!p->linked)
		return 0;
	cp_dispatch(p);
	racp_next(p);
	if (p->linked && !p->racp_active && p->state == PENMGR_STATE_CATCHING_UP)
		catchup_done(p);
	return 0;
}

static void pen_kick(struct pen *p)
{
	if (!p->kick && sd_event_add_defer(p->pm->ev, &p->kick, kick_cb, p) < 0)
		return;
	(void)sd_event_source_set_enabled(p->kick, SD_EVENT_ONESHOT);
}

static void racp_start(struct pen *p, bool fill)
{
	struct penmgr *pm = p->pm;
	struct nl_racp_req req = { .op = NL_RACP_REPORT, .oper = NL_RACP_GE };
	struct gatt_op *op;
	int n;

	if (fill) {
		req.oper = NL_RACP_RANGE;
		req.a = p->gaps[p->fill_gap].a;
		req.b = p->gaps[p->fill_gap].b;
	} else {
		req.a = p->received_hi + 1;
	}
	op = op_new(p, OP_WRITE, CHR_RACP);
	if (!op)
		return;
	n = nl_racp_req_encode(&req, op->data, sizeof(op->data));
	if (n < 0) {
		free(op);
		return;
	}
	op->len = (size_t)n;
	op->done = racp_write_done;
	p->racp_active = true;
	p->racp_fill = fill;
	if (fill) {
		p->gaps[p->fill_gap].tries++;
		p->fill_corrupt0 = p->link_corrupt;
		p->fill_lost = 0;
		nl_racp_client_start(&p->fill, req.a);
		log_pen_info(pen_name(p), "catch-up: RACP REPORT %" PRIu32 "..%" PRIu32
			     " for missing records", req.a, req.b);
	} else {
		nl_racp_client_start(&p->racp, req.a);
		log_pen_info(pen_name(p), "catch-up: RACP REPORT >= %" PRIu32
			     " (pen last_seq %" PRIu32 ")", req.a, p->snap.status.last_seq);
		catchup_progress_start(p, req.a);
	}
	(void)timer_arm(pm, &p->racp_timer, pm->cfg.racp_timeout_usec, racp_timeout_cb, p);
	(void)op_push(p, op);
}

/* Long catch-ups (a pen back after days out of range) report progress:
 * logged and in the snapshot, at most once a second. */
static void catchup_progress_start(struct pen *p, uint32_t first)
{
	uint32_t last = p->snap.status.last_seq;

	p->catchup_next_us = 0;
	p->snap.catchup_received = p->snap.catchup_expected = 0;
	if (!p->snap.has_status || p->snap.status.store_epoch != p->epoch || last < first ||
	    last - first + 1 < PENMGR_CATCHUP_PROGRESS_MIN)
		return;
	p->snap.catchup_expected = last - first + 1;
	p->catchup_next_us = now_usec(p->pm) + 1000000u;
	snapshot_changed(p);
}

static void catchup_progress(struct pen *p)
{
	uint64_t now;

	if (!p->catchup_next_us)
		return;
	p->snap.catchup_received = p->racp.received;
	now = now_usec(p->pm);
	if (now < p->catchup_next_us)
		return;
	p->catchup_next_us = now + 1000000u;
	log_pen_info(pen_name(p), "catch-up: %" PRIu32 " of %" PRIu32 " records (%u %%)",
		     p->snap.catchup_received, p->snap.catchup_expected,
		     (unsigned)((uint64_t)p->snap.catchup_received * 100u /
				p->snap.catchup_expected));
	snapshot_changed(p);
}

static void catchup_progress_end(struct pen *p)
{
	bool was = p->catchup_next_us != 0;

	p->catchup_next_us = 0;
	p->snap.catchup_received = p->snap.catchup_expected = 0;
	if (was)
		snapshot_changed(p);
}

/* A REPORT for everything after what was received (now or after the
 * running procedure). */
static void catchup_start(struct pen *p)
{
	if (!p->cp_ready)
		return;
	p->racp_again = true;
	racp_next(p);
}

/*
 * Records a..b are missing: asked for by REPORT RANGE, never acknowledged
 * past. Gaps come in ascending order; once the list is full, a new one is
 * joined to the last (the records between come again as duplicates), so no
 * hole is ever forgotten.
 */
static void gap_add(struct pen *p, uint32_t a, uint32_t b)
{
	struct gap *last = p->n_gaps > 0 ? &p->gaps[p->n_gaps - 1] : NULL;

	if (b < a)
		return;
	if (last && a <= last->b + 1) {
		if (b > last->b)
			last->b = b;
		return;
	}
	if (p->n_gaps < PEN_GAPS_MAX) {
		p->gaps[p->n_gaps++] = (struct gap){ .a = a, .b = b };
		return;
	}
	log_pen_warning(pen_name(p), "more than %d gaps open: records %" PRIu32 "..%" PRIu32
			" asked for with %" PRIu32 "..%" PRIu32,
			PEN_GAPS_MAX, a, b, last->a, last->b);
	last->b = b;
}

/* Starts the next RACP procedure: open gaps first, then a pending GE. */
static void racp_next(struct pen *p)
{
	size_t k = 0;

	if (!p->cp_ready || p->racp_active)
		return;
	while (k < p->n_gaps && p->gaps[k].parked)
		k++;
	if (k < p->n_gaps) {
		p->fill_gap = k;
		racp_start(p, true);
	} else if (p->racp_again) {
		p->racp_again = false;
		racp_start(p, false);
	}
}

/* The refill of gaps[fill_gap] ended (code: the pen's RACP answer). */
static void fill_done(struct pen *p, uint8_t code)
{
	size_t k = p->fill_gap;
	struct gap *g = &p->gaps[k];
	uint32_t missing = p->fill.gaps;
	bool lost = p->link_corrupt != p->fill_corrupt0 || p->fill_lost > 0 ||
		    (code != NL_RACP_SUCCESS && code != NL_RACP_NO_RECORDS);

	if (k >= p->n_gaps)
		return;
	if (p->fill.expect <= g->b)
		missing += g->b - p->fill.expect + 1;
	if (missing > 0 && lost) {
		/* The pen may still have them: never acknowledged past. What
		 * came in order from a.. is not asked for again. */
		if (p->fill.gaps == 0 && p->fill_lost == 0 && p->fill.expect > g->a)
			g->a = p->fill.expect;
		if (g->tries < PEN_GAP_TRIES) {
			log_pen_warning(pen_name(p), "records %" PRIu32 "..%" PRIu32 ": %" PRIu32
					" not delivered, asking again", g->a, g->b, missing);
			return;
		}
		/* Not record_gap: that says the records are gone for good. */
		g->parked = true;
		if (!g->reported)
			alert(p, PENMGR_ALERT_CATCHUP_FAILED, code, missing,
			      "records %" PRIu32 "..%" PRIu32 " of epoch %08" PRIx32 ": %" PRIu32
			      " not delivered after %u requests; kept on the pen, asked again"
			      " on the next connection",
			      g->a, g->b, p->epoch, missing, g->tries);
		g->reported = true;
		return;
	}
	if (missing > 0)
		alert(p, PENMGR_ALERT_RECORD_GAP, g->a, missing,
		      "records missing: epoch %08" PRIx32 ", seq %" PRIu32 "..%" PRIu32
		      " (%" PRIu32 " not stored on the pen)", p->epoch, g->a, g->b, missing);
	else
		log_pen_info(pen_name(p), "records %" PRIu32 "..%" PRIu32 " recovered", g->a,
			     g->b);
	memmove(p->gaps + k, p->gaps + k + 1, (p->n_gaps - k - 1) * sizeof(*p->gaps));
	p->n_gaps--;
	ack_maybe(p);
}

static void on_racp_value(struct pen *p, const uint8_t *val, size_t len)
{
	struct nl_racp_rsp rsp;
	int r = nl_racp_rsp_decode(val, len, &rsp);

	if (r < 0) {
		corrupt(p, "RACP response", r);
		return;
	}
	if (rsp.op != NL_RACP_RESPONSE_CODE || rsp.req_op != NL_RACP_REPORT)
		return;
	if (!p->racp_active)
		return;
	p->racp_active = false;
	timer_stop(p->racp_timer);
	if (rsp.code != NL_RACP_SUCCESS && rsp.code != NL_RACP_NO_RECORDS) {
		p->cnt.errors[PENMGR_ERR_COMMAND]++;
		alert(p, PENMGR_ALERT_CATCHUP_FAILED, rsp.code, 0, "RACP REPORT answered %s",
		      nl_racp_code_name(rsp.code));
	}
	if (p->racp_fill) {
		p->racp_fill = false;
		fill_done(p, rsp.code);
	} else {
		log_pen_info(pen_name(p), "catch-up done: %" PRIu32 " records, %" PRIu32
			     " skipped, last seq %" PRIu32, p->racp.received, p->racp.gaps,
			     p->received_hi);
		catchup_progress_end(p);
		/* 10.4 step 7: the pen says there is more (written meanwhile, or
		 * lost at the tail): ask again, as long as each round brings
		 * something. */
		if (p->racp.received > 0 && p->snap.status.store_epoch == p->epoch &&
		    p->snap.status.last_seq > p->received_hi)
			p->racp_again = true;
	}
	/* The next procedure waits until this indication is confirmed. */
	pen_kick(p);
}

static int pend_push(struct pen *p, uint32_t seq)
{
	if (p->n_pend == p->cap_pend) {
		size_t cap = p->cap_pend ? p->cap_pend * 2 : 64;
		struct pending_rec *n = realloc(p->pend, cap * sizeof(*n));

		if (!n)
			return -ENOMEM;
		p->pend = n;
		p->cap_pend = cap;
	}
	{
		size_t i = p->n_pend;

		/* Sorted: a refilled gap lands before later records. */
		while (i > 0 && p->pend[i - 1].seq > seq)
			i--;
		memmove(p->pend + i + 1, p->pend + i, (p->n_pend - i) * sizeof(*p->pend));
		p->pend[i].seq = seq;
		p->pend[i].state = 0;
	}
	p->n_pend++;
	return 0;
}

static void on_record(struct pen *p, const uint8_t *raw, size_t len)
{
	struct penmgr *pm = p->pm;
	struct nl_record rec;
	struct commit *c;
	int r;

	r = nl_record_decode(raw, len, &rec);
	if (r < 0) {
		corrupt(p, "record", r);
		return;
	}
	if (rec.hdr.store_epoch != p->epoch) {
		/* 12.2: a record of another epoch is a protocol fault. */
		p->cnt.errors[PENMGR_ERR_SEQUENCE]++;
		alert(p, PENMGR_ALERT_EPOCH_CHANGED, rec.hdr.store_epoch, 0,
		      "record %" PRIu32 " of epoch %08" PRIx32 ", expected %08" PRIx32,
		      rec.hdr.seq, rec.hdr.store_epoch, p->epoch);
		pen_drop(p, TRANSPORT_ERR_PROTOCOL, "record of another epoch");
		return;
	}
	if (p->racp_active)
		(void)timer_arm(pm, &p->racp_timer, pm->cfg.racp_timeout_usec, racp_timeout_cb, p);
	if (p->racp_active && p->racp_fill) {
		/* Refill: only the gap's records, each once. */
		if (p->fill_gap >= p->n_gaps || rec.hdr.seq < p->gaps[p->fill_gap].a ||
		    rec.hdr.seq > p->gaps[p->fill_gap].b ||
		    nl_racp_client_feed(&p->fill, rec.hdr.seq) < 0) {
			p->cnt.duplicates++;
			return;
		}
		if (pend_push(p, rec.hdr.seq) < 0) {
			p->fill_lost++; /* asked for again when the refill ends */
			return;
		}
	} else {
		r = nl_racp_client_feed(&p->racp, rec.hdr.seq);
		if (r == -EALREADY || rec.hdr.seq <= p->received_hi) {
			p->cnt.duplicates++;
			log_pen_debug(pen_name(p), "record %" PRIu32 " already received, dropped",
				      rec.hdr.seq);
			return;
		}
		if (r > 0) {
			uint32_t a = rec.hdr.seq - (uint32_t)r, b = rec.hdr.seq - 1;

			p->cnt.gaps += (uint32_t)r;
			p->cnt.errors[PENMGR_ERR_SEQUENCE]++;
			log_pen_warning(pen_name(p), "records %" PRIu32 "..%" PRIu32
					" skipped, asking again", a, b);
			gap_add(p, a, b);
		}
		if (pend_push(p, rec.hdr.seq) < 0) {
			/* Not handed over: leave it for the next catch-up. */
			nl_racp_client_start(&p->racp, p->received_hi + 1);
			return;
		}
		p->received_hi = rec.hdr.seq;
		catchup_progress(p);
	}
	p->cnt.records++;
	c = calloc(1, sizeof(*c));
	if (!c) {
		for (size_t i = 0; i < p->n_pend; i++)
			if (p->pend[i].seq == rec.hdr.seq)
				p->pend[i].state = -1;
		pend_advance(p);
		return;
	}
	c->pm = pm;
	memcpy(c->serial, p->serial, sizeof(c->serial));
	c->epoch = p->epoch;
	c->seq = rec.hdr.seq;
	c->next = pm->commits;
	if (pm->commits)
		pm->commits->pprev = &c->next;
	c->pprev = &pm->commits;
	pm->commits = c;
	log_pen_debug(pen_name(p), "record %" PRIu32 " (%s)", rec.hdr.seq,
		      nl_record_type_name(rec.hdr.type));
	r = pm->cb.record(pm->user_data, p->serial, &rec, raw, len, commit_done, c);
	if (r < 0)
		commit_done(r, c);
}

static void on_record_value(struct pen *p, const uint8_t *val, size_t len)
{
	uint16_t mtu = p->snap.mtu ? p->snap.mtu : NL_ATT_MTU_MIN;
	const uint8_t *rec;
	int r;

	if (len == 0 || len > (size_t)mtu - 3) {
		corrupt(p, "record segment", len ? -EMSGSIZE : -ENODATA);
		return;
	}
	r = nl_seg_rx_feed(&p->seg, val, len, &rec);
	if (r < 0) {
		/* The lost record shows up as a gap (10.4 step 8). */
		corrupt(p, "record segment", r);
		return;
	}
	if (r > 0)
		on_record(p, rec, (size_t)r);
}

/* ---- values ------------------------------------------------------------ */

static void status_update(struct pen *p, const struct nl_pen_status *st)
{
	bool fetch = p->cp_ready && p->cursor_loaded && st->store_epoch == p->epoch &&
		     st->last_seq > p->received_hi &&
		     (p->state == PENMGR_STATE_READY || p->state == PENMGR_STATE_CATCHING_UP);

	p->snap.status = *st;
	p->snap.has_status = true;
	snapshot_changed(p);
	/* 10.4: new records while connected are fetched at once. */
	if (fetch)
		catchup_start(p);
}

static int watchdog_cb(sd_event_source *s, uint64_t usec, void *userdata)
{
	struct pen *p = userdata;

	p->cnt.errors[PENMGR_ERR_TIMEOUT]++;
	alert(p, PENMGR_ALERT_WATCHDOG, 0, 0, "no Live Status for %" PRIu64 " ms, disconnecting",
	      p->pm->cfg.watchdog_usec / 1000);
	pen_drop(p, TRANSPORT_ERR_TIMEOUT, "silent link");
	return 0;
}

static void reread_done(struct pen *p, struct gatt_op *op, int err, uint8_t att_err,
			const uint8_t *val, size_t len)
{
	int r = -EINVAL;

	if (op_failed(p, op, err, att_err))
		return;
	switch (op->chr) {
	case CHR_STATUS: {
		struct nl_pen_status st;

		r = nl_pen_status_decode(val, len, &st);
		if (r >= 0)
			status_update(p, &st);
		break;
	}
	case CHR_LIMITS:
		r = nl_active_limits_decode(val, len, &p->snap.limits);
		p->snap.has_limits = r >= 0;
		break;
	case CHR_CARTRIDGE:
		r = nl_cartridge_info_decode(val, len, &p->snap.cartridge);
		p->snap.has_cartridge = r >= 0;
		break;
	case CHR_FEATURE:
	case CHR_LIVE:
	case CHR_RECORD:
	case CHR_RACP:
	case CHR_CP:
	case CHR_DIS_SERIAL:
	case CHR_DIS_MODEL:
	case CHR_DIS_FIRMWARE:
	case CHR_DIS_MANUFACTURER:
	case CHR_BATTERY:
	case CHR_COUNT:
		return;
	}
	if (r < 0)
		corrupt(p, chr_info[op->chr].name, r);
	else if (op->chr != CHR_STATUS)
		snapshot_changed(p);
}

/* 12.2: a malformed indication of a state value is dropped and the value
 * read again. */
static void reread(struct pen *p, enum chr chr)
{
	if (p->linked)
		(void)op_read(p, chr, reread_done);
}

static void on_value(struct pen *p, uint16_t handle, const uint8_t *val, size_t len)
{
	enum chr chr = CHR_COUNT;
	int r;

	if (!p->linked)
		return;
	for (unsigned i = 0; i < CHR_COUNT; i++)
		if (p->handle[i] == handle && handle != 0) {
			chr = (enum chr)i;
			break;
		}
	if (chr != CHR_RECORD && len > NL_PDU_MAX) {
		corrupt(p, "value", -EMSGSIZE);
		return;
	}
	switch (chr) {
	case CHR_LIVE: {
		struct nl_live live;

		r = nl_live_decode(val, len, &live);
		if (r < 0) {
			corrupt(p, "Live Status", r);
			return;
		}
		p->cnt.live++;
		p->snap.live = live;
		p->snap.has_live = true;
		(void)timer_arm(p->pm, &p->watchdog, p->pm->cfg.watchdog_usec, watchdog_cb, p);
		{
			struct penmgr_event ev = { .type = PENMGR_EVENT_LIVE, .u.live = &live };

			emit(p, &ev);
		}
		return;
	}
	case CHR_RECORD:
		on_record_value(p, val, len);
		return;
	case CHR_RACP:
		on_racp_value(p, val, len);
		return;
	case CHR_CP:
		on_cp_value(p, val, len);
		return;
	case CHR_STATUS: {
		struct nl_pen_status st;

		r = nl_pen_status_decode(val, len, &st);
		if (r < 0) {
			corrupt(p, "Pen Status", r);
			reread(p, CHR_STATUS);
			return;
		}
		status_update(p, &st);
		return;
	}
	case CHR_LIMITS: {
		struct nl_active_limits al;

		r = nl_active_limits_decode(val, len, &al);
		if (r < 0) {
			corrupt(p, "Active Limits", r);
			reread(p, CHR_LIMITS);
			return;
		}
		p->snap.limits = al;
		p->snap.has_limits = true;
		snapshot_changed(p);
		return;
	}
	case CHR_CARTRIDGE: {
		struct nl_cartridge_info ci;

		r = nl_cartridge_info_decode(val, len, &ci);
		if (r < 0) {
			corrupt(p, "Cartridge Info", r);
			reread(p, CHR_CARTRIDGE);
			return;
		}
		p->snap.cartridge = ci;
		p->snap.has_cartridge = true;
		snapshot_changed(p);
		return;
	}
	case CHR_FEATURE:
	case CHR_DIS_SERIAL:
	case CHR_DIS_MODEL:
	case CHR_DIS_FIRMWARE:
	case CHR_DIS_MANUFACTURER:
	case CHR_BATTERY:
	case CHR_COUNT:
		break;
	}
}

/* ---- the connect procedure (10.1) ------------------------------------- */

static int64_t now_unix(struct penmgr *pm)
{
	if (pm->cfg.now_unix)
		return pm->cfg.now_unix(pm->user_data);
	return (int64_t)time(NULL);
}

static void time_sync(struct pen *p)
{
	struct penmgr *pm = p->pm;
	int64_t now_pen = now_unix(pm) - NL_PEN_EPOCH_UNIX;
	int64_t drift = (int64_t)p->snap.status.pen_time - now_pen;
	bool not_set = p->snap.status.flags & NL_STATUS_CLOCK_NOT_SET;
	struct nl_cp_req req = { .op = NL_CP_SET_TIME };
	struct cp_req *q;

	if (now_pen < 0 || now_pen > UINT32_MAX)
		return;
	if (!not_set && drift <= pm->cfg.clock_drift_max_s && drift >= -pm->cfg.clock_drift_max_s)
		return;
	req.u.pen_time = (uint32_t)now_pen;
	q = cp_req_new(p, &req);
	if (!q)
		return;
	q->internal = true;
	alert(p, PENMGR_ALERT_CLOCK_SET, drift, not_set,
	      "pen clock %s (drift %" PRId64 " s): SET_TIME %" PRIu32,
	      not_set ? "not set" : "drifted", drift, req.u.pen_time);
	cp_enqueue(p, q);
}

/* Gaps an earlier run left open (the journal has records after them):
 * the pen may still hold them, so they are asked for again and nothing is
 * acknowledged past them, as if they had been found on this link. Only
 * those the pen can still hold: after its oldest stored record. */
static void load_gaps(struct pen *p, const struct nl_pen_status *st)
{
	struct penmgr *pm = p->pm;
	uint32_t a[PEN_GAPS_MAX], b[PEN_GAPS_MAX], after = 0;
	int n;

	if (!pm->cb.gaps || p->commit_hi == 0 || st->store_used == 0)
		return;
	if (st->last_seq >= st->store_used)
		after = st->last_seq - st->store_used; /* the store holds after.. */
	if (after >= p->commit_hi)
		return;
	n = pm->cb.gaps(pm->user_data, p->serial, p->epoch, after, a, b, PEN_GAPS_MAX);
	if (n < 0) {
		/* Not knowing the holes must not mean acknowledging past them:
		 * everything the pen still stores is fetched again (what the
		 * journal has comes back as duplicates). */
		if (after + 1 < p->commit_hi) {
			log_pen_err(pen_name(p), "open gaps unknown (%s): asking for records %" PRIu32
				    "..%" PRIu32 " again", strerror(-n), after + 1, p->commit_hi - 1);
			gap_add(p, after + 1, p->commit_hi - 1);
		}
		return;
	}
	for (int i = 0; i < n; i++) {
		if (a[i] <= after || b[i] < a[i] || b[i] >= p->commit_hi)
			continue;
		log_pen_warning(pen_name(p), "records %" PRIu32 "..%" PRIu32
				" still missing from the journal: asking again", a[i], b[i]);
		gap_add(p, a[i], b[i]);
	}
	/* A full answer may have left holes out: the last range asked for
	 * reaches up to the last committed record. */
	if (n == PEN_GAPS_MAX && p->n_gaps > 0 && p->gaps[p->n_gaps - 1].b < p->commit_hi - 1)
		gap_add(p, p->gaps[p->n_gaps - 1].b + 1, p->commit_hi - 1);
}

/* Catch-up cursor (10.4 steps 1-3). */
static bool cursor_check(struct pen *p)
{
	struct penmgr *pm = p->pm;
	const struct nl_pen_status *st = &p->snap.status;

	if (!p->cursor_loaded) {
		uint32_t epoch = 0, seq = 0;

		if (pm->cb.cursor && pm->cb.cursor(pm->user_data, p->serial, &epoch, &seq) >= 0) {
			p->epoch = epoch;
			p->received_hi = p->commit_hi = seq;
			if (epoch == st->store_epoch)
				load_gaps(p, st);
		} else {
			p->epoch = st->store_epoch;
			p->received_hi = p->commit_hi = 0;
		}
		p->cursor_loaded = true;
	}
	if (st->store_epoch != p->epoch) {
		if (p->received_hi > 0 || p->commit_hi > 0)
			alert(p, PENMGR_ALERT_EPOCH_CHANGED, st->store_epoch, 0,
			      "record store wiped: epoch %08" PRIx32 " -> %08" PRIx32
			      ", records after %" PRIu32 " may be lost",
			      p->epoch, st->store_epoch, p->commit_hi);
		p->epoch = st->store_epoch;
		p->received_hi = p->commit_hi = 0;
		p->n_pend = 0;
		p->n_gaps = 0;
	}
	p->snap.store_epoch = p->epoch;
	p->snap.committed_seq = p->commit_hi;
	if (st->last_seq < p->commit_hi) {
		p->cnt.errors[PENMGR_ERR_SEQUENCE]++;
		alert(p, PENMGR_ALERT_CATCHUP_FAILED, st->last_seq, 0,
		      "sequence numbers went back: pen last_seq %" PRIu32 " < committed %" PRIu32,
		      st->last_seq, p->commit_hi);
		pen_drop(p, TRANSPORT_ERR_PROTOCOL, "sequence went back");
		return false;
	}
	return true;
}

static void stage_catchup(struct pen *p)
{
	pen_set_state(p, PENMGR_STATE_CATCHING_UP, TRANSPORT_ERR_NONE);
	snapshot_changed(p);
	time_sync(p);
	if (!cursor_check(p))
		return;
	nl_racp_client_start(&p->racp, p->received_hi + 1);
	/* Anything committed but perhaps not acknowledged on an earlier link. */
	ack_maybe(p);
	catchup_start(p);
}

static void read_state_done(struct pen *p, struct gatt_op *op, int err, uint8_t att_err,
			    const uint8_t *val, size_t len)
{
	int r = 0;

	if (op_failed(p, op, err, att_err))
		return;
	switch (op->chr) {
	case CHR_STATUS:
		r = nl_pen_status_decode(val, len, &p->snap.status);
		p->snap.has_status = r >= 0;
		break;
	case CHR_LIMITS:
		r = nl_active_limits_decode(val, len, &p->snap.limits);
		p->snap.has_limits = r >= 0;
		break;
	case CHR_CARTRIDGE:
		r = nl_cartridge_info_decode(val, len, &p->snap.cartridge);
		p->snap.has_cartridge = r >= 0;
		break;
	case CHR_BATTERY:
		if (len >= 1 && val[0] <= 100)
			p->snap.battery_pct = val[0];
		return;
	case CHR_FEATURE:
	case CHR_LIVE:
	case CHR_RECORD:
	case CHR_RACP:
	case CHR_CP:
	case CHR_DIS_SERIAL:
	case CHR_DIS_MODEL:
	case CHR_DIS_FIRMWARE:
	case CHR_DIS_MANUFACTURER:
	case CHR_COUNT:
		return;
	}
	if (r < 0) {
		corrupt(p, chr_info[op->chr].name, r);
		/* Catch-up cannot start without a valid Pen Status. */
		if (op->chr == CHR_STATUS && p->linked)
			pen_drop(p, TRANSPORT_ERR_PROTOCOL, "malformed Pen Status");
	}
}

static void subscribe_done(struct pen *p, struct gatt_op *op, int err, uint8_t att_err,
			   const uint8_t *val, size_t len)
{
	if (op_failed(p, op, err, att_err))
		return;
	if (op->chr == CHR_CP)
		p->cp_ready = true;
}

static void stage_subscribed(struct pen *p)
{
	if (!p->snap.has_status)
		return; /* dropped already */
	(void)timer_arm(p->pm, &p->watchdog, p->pm->cfg.watchdog_usec, watchdog_cb, p);
	stage_catchup(p);
}

static void stage_subscribe(struct pen *p)
{
	pen_set_state(p, PENMGR_STATE_SUBSCRIBING, TRANSPORT_ERR_NONE);
	for (size_t i = 0; i < sizeof(cccd_order) / sizeof(cccd_order[0]); i++) {
		struct gatt_op *op = op_new(p, OP_SUBSCRIBE, cccd_order[i].chr);

		if (!op) {
			pen_drop(p, TRANSPORT_ERR_LOCAL, "out of memory");
			return;
		}
		op->value = cccd_order[i].value;
		op->done = subscribe_done;
		/* The pen restarts its segment counter with this write (6.1). */
		if (cccd_order[i].chr == CHR_RECORD)
			nl_seg_rx_reset(&p->seg);
		if (op_push(p, op) < 0)
			return;
	}
	/* 10.1 step 9: read state after subscribing, so no change is missed. */
	p->snap.has_status = false;
	(void)op_read(p, CHR_STATUS, read_state_done);
	(void)op_read(p, CHR_LIMITS, read_state_done);
	(void)op_read(p, CHR_CARTRIDGE, read_state_done);
	if (p->handle[CHR_BATTERY])
		(void)op_read(p, CHR_BATTERY, read_state_done);
	(void)op_barrier(p, stage_subscribed);
}

static void feature_done(struct pen *p, struct gatt_op *op, int err, uint8_t att_err,
			 const uint8_t *val, size_t len)
{
	struct nl_feature f;
	int r;

	if (op_failed(p, op, err, att_err))
		return;
	/* 10.2: the major version byte first, before decoding the rest. */
	if (len >= 1 && val[0] != NL_PROTO_MAJOR) {
		alert(p, PENMGR_ALERT_PROTO_MISMATCH, val[0], 0,
		      "unsupported protocol major version %u (gateway speaks %u)", val[0],
		      NL_PROTO_MAJOR);
		p->refuse_hard = true;
		pen_drop(p, TRANSPORT_ERR_PROTOCOL, "protocol major mismatch");
		return;
	}
	r = nl_feature_decode(val, len, &f);
	if (r < 0) {
		corrupt(p, "Feature", r);
		if (p->linked)
			pen_drop(p, TRANSPORT_ERR_PROTOCOL, "malformed Feature");
		return;
	}
	p->refuse_hard = false;
	p->snap.feature = f;
	p->snap.has_feature = true;
	stage_subscribe(p);
}

static void copy_string(char *dst, size_t size, const uint8_t *val, size_t len)
{
	size_t n = len < size - 1 ? len : size - 1;

	for (size_t i = 0; i < n; i++)
		dst[i] = (val[i] >= 0x20 && val[i] < 0x7f) ? (char)val[i] : '?';
	dst[n] = '\0';
}

static void dis_done(struct pen *p, struct gatt_op *op, int err, uint8_t att_err,
		     const uint8_t *val, size_t len)
{
	if (op_failed(p, op, err, att_err))
		return;
	switch (op->chr) {
	case CHR_DIS_MODEL:
		copy_string(p->snap.model, sizeof(p->snap.model), val, len);
		break;
	case CHR_DIS_FIRMWARE:
		copy_string(p->snap.firmware, sizeof(p->snap.firmware), val, len);
		break;
	case CHR_DIS_MANUFACTURER:
		copy_string(p->snap.manufacturer, sizeof(p->snap.manufacturer), val, len);
		break;
	case CHR_FEATURE:
	case CHR_LIVE:
	case CHR_RECORD:
	case CHR_RACP:
	case CHR_CP:
	case CHR_LIMITS:
	case CHR_STATUS:
	case CHR_CARTRIDGE:
	case CHR_DIS_SERIAL:
	case CHR_BATTERY:
	case CHR_COUNT:
		break;
	}
}

static void serial_done(struct pen *p, struct gatt_op *op, int err, uint8_t att_err,
			const uint8_t *val, size_t len)
{
	struct penmgr *pm = p->pm;
	char serial[NL_SERIAL_MAX + 1];

	if (op_failed(p, op, err, att_err))
		return;
	if (len == 0 || len > NL_SERIAL_MAX) {
		corrupt(p, "DIS serial", -ERANGE);
		if (p->linked)
			pen_drop(p, TRANSPORT_ERR_PROTOCOL, "bad serial");
		return;
	}
	copy_string(serial, sizeof(serial), val, len);
	/* An allowed advertisement whose pen says otherwise is reported. */
	if (p->serial_known && strcmp(serial, p->serial) != 0) {
		alert(p, PENMGR_ALERT_SERIAL_MISMATCH, 0, 0,
		      "DIS serial %s differs from the advertised %s", serial, p->serial);
		p->refuse_hard = true;
		pen_drop(p, TRANSPORT_ERR_PROTOCOL, "serial mismatch");
		return;
	}
	if (!serial_allowed(pm, serial)) {
		/* Never surfaced upward: drop quietly and forget the device. */
		log_pen_notice(serial, "not on the allow-list, ignored");
		pm->ignored++;
		p->ignored = true;
		pen_drop(p, TRANSPORT_ERR_NONE, "not allowed");
		return;
	}
	if (!p->serial_known) {
		memcpy(p->serial, serial, sizeof(serial));
		memcpy(p->snap.serial, serial, sizeof(serial));
		p->serial_known = true;
		p->allowed = true;
	}
	(void)op_read(p, CHR_DIS_MODEL, dis_done);
	(void)op_read(p, CHR_DIS_FIRMWARE, dis_done);
	(void)op_read(p, CHR_DIS_MANUFACTURER, dis_done);
	(void)op_read(p, CHR_FEATURE, feature_done);
}

static void discover_cb(int err, const struct transport_chr *chrs, size_t n, void *user_data)
{
	struct pen *p = user_data;
	bool nl_service = false;

	p->connect_id = 0;
	if (err < 0) {
		p->cnt.errors[PENMGR_ERR_CONNECT]++;
		pen_drop(p, transport_err_class(err), "discovery failed");
		return;
	}
	memset(p->handle, 0, sizeof(p->handle));
	for (size_t i = 0; i < n; i++) {
		if (strcmp(chrs[i].service_uuid, NL_UUID_SERVICE) == 0)
			nl_service = true;
		for (unsigned c = 0; c < CHR_COUNT; c++)
			if (strcmp(chrs[i].uuid, chr_info[c].uuid) == 0 &&
			    (chrs[i].props & chr_info[c].props) == chr_info[c].props)
				p->handle[c] = chrs[i].handle;
	}
	for (unsigned c = 0; c < CHR_COUNT; c++)
		if (chr_info[c].props && !p->handle[c]) {
			p->cnt.errors[PENMGR_ERR_CONNECT]++;
			log_pen_warning(pen_name(p), "%s (%s) missing or lacks properties",
					chr_info[c].name, chr_info[c].uuid);
			pen_drop(p, TRANSPORT_ERR_PROTOCOL, "incomplete GATT database");
			return;
		}
	if (!nl_service) {
		pen_drop(p, TRANSPORT_ERR_PROTOCOL, "no NeedleLink service");
		return;
	}
	(void)op_read(p, CHR_DIS_SERIAL, serial_done);
}

static void mtu_cb(int err, uint16_t mtu, void *user_data)
{
	struct pen *p = user_data;
	struct penmgr *pm = p->pm;

	p->connect_id = 0;
	if (err < 0) {
		p->cnt.errors[PENMGR_ERR_CONNECT]++;
		pen_drop(p, transport_err_class(err), "MTU exchange failed");
		return;
	}
	p->snap.mtu = mtu;
	if (mtu < MTU_MIN_USABLE) {
		alert(p, PENMGR_ALERT_MTU_TOO_SMALL, mtu, 0, "ATT MTU %u below %u: pen not used",
		      mtu, MTU_MIN_USABLE);
		p->refuse_hard = true;
		pen_drop(p, TRANSPORT_ERR_PROTOCOL, "MTU too small");
		return;
	}
	p->connect_id = transport_discover(pm->t, p->addr, discover_cb, p, NULL);
	if (!p->connect_id)
		pen_drop(p, TRANSPORT_ERR_LOCAL, "discovery not started");
}

static void connect_cb(int err, uint8_t att_err, void *user_data)
{
	struct pen *p = user_data;
	struct penmgr *pm = p->pm;

	p->connect_id = 0;
	if (err < 0) {
		p->cnt.errors[PENMGR_ERR_CONNECT]++;
		log_pen_info(pen_name(p), "connect failed: %s", strerror(-err));
		pen_drop(p, transport_err_class(err), "connect failed");
		return;
	}
	pen_set_state(p, PENMGR_STATE_RESOLVING, TRANSPORT_ERR_NONE);
	p->connect_id = transport_exchange_mtu(pm->t, p->addr, pm->cfg.mtu, mtu_cb, p, NULL);
	if (!p->connect_id)
		pen_drop(p, TRANSPORT_ERR_LOCAL, "MTU exchange not started");
}

static unsigned active_links(struct penmgr *pm)
{
	unsigned n = 0;

	for (struct pen *p = pm->pens; p; p = p->next)
		if (is_link_state(p->state))
			n++;
	return n;
}

static void pen_connect(struct pen *p)
{
	struct penmgr *pm = p->pm;

	p->cnt.connect_attempts++;
	p->link_corrupt = 0;
	p->link_acked = 0;
	p->cp_ready = false;
	p->racp_active = p->racp_again = p->racp_fill = false;
	for (size_t k = 0; k < p->n_gaps; k++) {
		/* Parked gaps are asked for again on the new link. */
		p->gaps[k].tries = 0;
		p->gaps[k].parked = false;
	}
	p->ack_queued = false;
	nl_cp_client_reset(&p->cp);
	nl_seg_rx_reset(&p->seg);
	p->snap.mtu = 0;
	pen_set_state(p, PENMGR_STATE_CONNECTING, TRANSPORT_ERR_NONE);
	p->linked = true;
	p->connect_id = transport_connect(pm->t, p->addr, connect_cb, p, NULL);
	if (!p->connect_id) {
		p->cnt.errors[PENMGR_ERR_CONNECT]++;
		pen_drop(p, TRANSPORT_ERR_REFUSED, "connect not started");
	}
}

static void try_connect_waiting(struct penmgr *pm)
{
	if (!pm->started)
		return;
	for (struct pen *p = pm->pens; p; p = p->next) {
		if (active_links(pm) >= pm->cfg.max_connections)
			return;
		if (p->state == PENMGR_STATE_DISCOVERED && p->in_range && !p->ignored)
			pen_connect(p);
	}
}

/* ---- link teardown and backoff ---------------------------------------- */

static uint64_t backoff_delay(struct pen *p, enum transport_err_class cls)
{
	const struct penmgr_config *cfg = &p->pm->cfg;
	uint64_t d = cfg->backoff_min_usec;
	unsigned shift = p->backoff_attempt < 16 ? p->backoff_attempt : 16;

	if (p->refuse_hard)
		return cfg->backoff_max_usec;
	switch (cls) {
	case TRANSPORT_ERR_NONE:
	case TRANSPORT_ERR_LINK_LOSS:
		/* Out of range or power: come back as soon as it does. */
		break;
	case TRANSPORT_ERR_TIMEOUT:
	case TRANSPORT_ERR_REFUSED:
	case TRANSPORT_ERR_ATT:
	case TRANSPORT_ERR_LOCAL:
		d *= 2;
		break;
	case TRANSPORT_ERR_PROTOCOL:
		/* 12.2: malformed data, 5 s doubling. */
		d *= 5;
		break;
	case TRANSPORT_ERR_CLASS_COUNT:
		break;
	}
	d <<= shift;
	if (d > cfg->backoff_max_usec || d == 0)
		d = cfg->backoff_max_usec;
	return d;
}

static int backoff_cb(sd_event_source *s, uint64_t usec, void *userdata)
{
	struct pen *p = userdata;

	if (p->state != PENMGR_STATE_BACKOFF || p->quarantined)
		return 0;
	if (!p->in_range) {
		pen_set_state(p, PENMGR_STATE_LOST, TRANSPORT_ERR_NONE);
		return 0;
	}
	pen_set_state(p, PENMGR_STATE_DISCOVERED, TRANSPORT_ERR_NONE);
	try_connect_waiting(p->pm);
	return 0;
}

static void pen_unlink(struct pen *p)
{
	struct penmgr *pm = p->pm;

	if (p->connect_id)
		(void)transport_cancel(pm->t, p->connect_id);
	p->connect_id = 0;
	if (p->linked)
		transport_disconnect(pm->t, p->addr);
	p->linked = false;
	p->cp_ready = false;
	p->racp_active = p->racp_again = p->racp_fill = false;
	queue_clear(p);
	timer_stop(p->watchdog);
	timer_stop(p->racp_timer);
}

/* Ends the link (if any) and schedules the next attempt by error class. */
static void pen_drop(struct pen *p, enum transport_err_class cls, const char *why)
{
	struct penmgr *pm = p->pm;
	bool was_up = p->state != PENMGR_STATE_CONNECTING;
	uint64_t delay;

	if (!is_link_state(p->state) || p->state == PENMGR_STATE_DISCONNECTING)
		return;
	log_pen_info(pen_name(p), "link down (%s): %s", transport_err_class_name(cls), why);
	p->catchup_next_us = 0;
	p->snap.catchup_received = p->snap.catchup_expected = 0;
	pen_set_state(p, PENMGR_STATE_DISCONNECTING, cls);
	pen_unlink(p);
	if (was_up)
		p->cnt.disconnects++;
	cp_fail_all(p, -ENOTCONN);
	if (p->ignored) {
		pen_set_state(p, PENMGR_STATE_LOST, TRANSPORT_ERR_NONE);
		try_connect_waiting(pm);
		return;
	}
	/* 12.2: three connections in a row ended for malformed data: the pen
	 * is not used again until an operator clears it. */
	p->corrupt_links = p->drop_malformed ? p->corrupt_links + 1 : 0;
	p->drop_malformed = false;
	if (p->corrupt_links >= PEN_QUARANTINE_LINKS) {
		p->quarantined = true;
		p->snap.quarantined = true;
		pen_set_state(p, PENMGR_STATE_BACKOFF, cls);
		alert(p, PENMGR_ALERT_QUARANTINED, p->corrupt_links, p->cnt.corrupt,
		      "%u connections in a row ended for malformed data: pen not used until "
		      "released", p->corrupt_links);
		try_connect_waiting(pm);
		return;
	}
	delay = backoff_delay(p, cls);
	p->backoff_attempt++;
	pen_set_state(p, PENMGR_STATE_BACKOFF, cls);
	log_pen_info(pen_name(p), "reconnect in %" PRIu64 " ms", delay / 1000);
	(void)timer_arm(pm, &p->backoff_timer, delay, backoff_cb, p);
	try_connect_waiting(pm);
}

static void pen_set_state(struct pen *p, enum penmgr_state to, enum transport_err_class cls)
{
	struct penmgr_event ev = { .type = PENMGR_EVENT_STATE };
	enum penmgr_state from = p->state;

	if (from == to)
		return;
	p->state = to;
	p->snap.state = to;
	p->snap.connected = is_link_state(to) && to != PENMGR_STATE_DISCONNECTING;
	if (!p->ignored)
		log_pen_info(pen_name(p), "state %s -> %s%s%s", penmgr_state_name(from),
			     penmgr_state_name(to), cls ? ", " : "",
			     cls ? transport_err_class_name(cls) : "");
	ev.u.state.from = from;
	ev.u.state.to = to;
	ev.u.state.cls = cls;
	emit(p, &ev);
}

/* ---- transport events -------------------------------------------------- */

static struct pen *pen_new(struct penmgr *pm, const char *addr)
{
	struct pen *p = calloc(1, sizeof(*p));

	if (!p)
		return NULL;
	p->pm = pm;
	snprintf(p->addr, sizeof(p->addr), "%s", addr);
	p->state = PENMGR_STATE_LOST;
	p->snap.battery_pct = -1;
	p->snap.state = PENMGR_STATE_LOST;
	p->cnt.rssi = TRANSPORT_RSSI_UNKNOWN;
	nl_seg_rx_reset(&p->seg);
	p->next = pm->pens;
	pm->pens = p;
	return p;
}

static void on_found(struct penmgr *pm, const struct transport_event *ev)
{
	struct pen *p = pen_by_addr(pm, ev->addr);
	const char *serial = ev->u.found.serial;
	bool pen_service = false;

	/* 2.3: a pen advertises the NeedleLink Pen Service. */
	for (size_t i = 0; i < ev->u.found.n_uuids; i++)
		if (strcasecmp(ev->u.found.uuids[i], NL_UUID_SERVICE) == 0)
			pen_service = true;
	if (!pen_service)
		return;
	if (serial && serial[0] && !serial_allowed(pm, serial)) {
		if (!p || !p->ignored) {
			pm->ignored++;
			log_debug("advertisement of %s (serial %s) ignored: not on the allow-list",
				  ev->addr, serial);
		}
		if (!p && (p = pen_new(pm, ev->addr)))
			p->ignored = true;
		return;
	}
	if (!p) {
		p = pen_new(pm, ev->addr);
		if (!p)
			return;
		if (serial && serial[0]) {
			snprintf(p->serial, sizeof(p->serial), "%s", serial);
			memcpy(p->snap.serial, p->serial, sizeof(p->serial));
			p->serial_known = true;
			p->allowed = true;
		}
	}
	if (p->ignored)
		return;
	p->cnt.rssi = ev->u.found.rssi;
	p->in_range = true;
	if (p->state == PENMGR_STATE_LOST && !p->quarantined) {
		pen_set_state(p, PENMGR_STATE_DISCOVERED, TRANSPORT_ERR_NONE);
		try_connect_waiting(pm);
	}
}

static void on_lost(struct penmgr *pm, const struct transport_event *ev)
{
	struct pen *p = pen_by_addr(pm, ev->addr);

	if (!p || p->ignored)
		return;
	p->in_range = false;
	if (p->state == PENMGR_STATE_DISCOVERED) {
		pen_set_state(p, PENMGR_STATE_LOST, TRANSPORT_ERR_NONE);
	} else if (p->state == PENMGR_STATE_BACKOFF && !p->quarantined) {
		timer_stop(p->backoff_timer);
		pen_set_state(p, PENMGR_STATE_LOST, TRANSPORT_ERR_NONE);
	}
	/* A live link ends with its own disconnect event. */
}

static void transport_event_cb(const struct transport_event *ev, void *user_data)
{
	struct penmgr *pm = user_data;
	struct pen *p;

	switch (ev->type) {
	case TRANSPORT_EVENT_DEVICE_FOUND:
		on_found(pm, ev);
		break;
	case TRANSPORT_EVENT_DEVICE_LOST:
		on_lost(pm, ev);
		break;
	case TRANSPORT_EVENT_CONNECTED:
		break;
	case TRANSPORT_EVENT_DISCONNECTED:
		p = pen_by_addr(pm, ev->addr);
		if (!p || !p->linked)
			break;
		p->linked = false; /* the transport already let go of the link */
		p->cnt.errors[ev->u.disconnected.cls == TRANSPORT_ERR_TIMEOUT ? PENMGR_ERR_TIMEOUT
										 : PENMGR_ERR_GATT]++;
		pen_drop(p, ev->u.disconnected.cls, "disconnected by the link");
		break;
	case TRANSPORT_EVENT_VALUE:
		p = pen_by_addr(pm, ev->addr);
		if (p && !p->ignored)
			on_value(p, ev->u.value.handle, ev->u.value.val, ev->u.value.len);
		break;
	}
}

/* ---- public API --------------------------------------------------------- */

int penmgr_new(sd_event *ev, struct transport *t, const struct penmgr_config *cfg,
	       const struct penmgr_callbacks *cb, void *user_data, struct penmgr **ret)
{
	struct penmgr *pm;
	size_t n = 0;

	if (!ev || !t || !cfg || !cb || !cb->record || !ret)
		return -EINVAL;
	pm = calloc(1, sizeof(*pm));
	if (!pm)
		return -ENOMEM;
	pm->ev = sd_event_ref(ev);
	pm->t = t;
	pm->cfg = *cfg;
	pm->cb = *cb;
	pm->user_data = user_data;
	if (!pm->cfg.max_connections)
		pm->cfg.max_connections = DEFAULT_MAX_CONNECTIONS;
	if (!pm->cfg.mtu)
		pm->cfg.mtu = DEFAULT_MTU;
	if (!pm->cfg.watchdog_usec)
		pm->cfg.watchdog_usec = DEFAULT_WATCHDOG_USEC;
	if (!pm->cfg.cp_timeout_usec)
		pm->cfg.cp_timeout_usec = DEFAULT_CP_TIMEOUT_USEC;
	if (!pm->cfg.racp_timeout_usec)
		pm->cfg.racp_timeout_usec = DEFAULT_RACP_TIMEOUT_USEC;
	if (!pm->cfg.backoff_min_usec)
		pm->cfg.backoff_min_usec = DEFAULT_BACKOFF_MIN_USEC;
	if (!pm->cfg.backoff_max_usec)
		pm->cfg.backoff_max_usec = DEFAULT_BACKOFF_MAX_USEC;
	if (!pm->cfg.corrupt_limit)
		pm->cfg.corrupt_limit = DEFAULT_CORRUPT_LIMIT;
	if (!pm->cfg.clock_drift_max_s)
		pm->cfg.clock_drift_max_s = DEFAULT_DRIFT_MAX_S;
	pm->cfg.allow = NULL;
	for (const char *const *a = cfg->allow; a && *a; a++)
		n++;
	pm->allow = calloc(n + 1, sizeof(char *));
	if (!pm->allow)
		goto fail;
	for (size_t i = 0; i < n; i++) {
		if (strcmp(cfg->allow[i], "*") == 0)
			pm->allow_any = true;
		pm->allow[i] = strdup(cfg->allow[i]);
		if (!pm->allow[i])
			goto fail;
	}
	transport_set_sink(t, transport_event_cb, pm);
	*ret = pm;
	return 0;
fail:
	penmgr_free(pm);
	return -ENOMEM;
}

void penmgr_free(struct penmgr *pm)
{
	if (!pm)
		return;
	penmgr_stop(pm);
	transport_set_sink(pm->t, NULL, NULL);
	while (pm->pens) {
		struct pen *p = pm->pens;

		pm->pens = p->next;
		pen_unlink(p);
		cp_fail_all(p, -ECANCELED);
		sd_event_source_disable_unref(p->backoff_timer);
		sd_event_source_disable_unref(p->watchdog);
		sd_event_source_disable_unref(p->cp_timer);
		sd_event_source_disable_unref(p->racp_timer);
		sd_event_source_disable_unref(p->kick);
		free(p->pend);
		free(p);
	}
	/* Commits still with the sink complete into nothing. */
	while (pm->commits) {
		struct commit *c = pm->commits;

		pm->commits = c->next;
		c->pm = NULL;
		c->pprev = NULL;
		c->next = NULL;
	}
	for (char **a = pm->allow; a && *a; a++)
		free(*a);
	free(pm->allow);
	sd_event_unref(pm->ev);
	free(pm);
}

int penmgr_start(struct penmgr *pm)
{
	int r;

	if (pm->started)
		return 0;
	pm->started = true;
	r = transport_scan_start(pm->t);
	if (r < 0) {
		pm->started = false;
		return r;
	}
	try_connect_waiting(pm);
	return 0;
}

void penmgr_stop(struct penmgr *pm)
{
	if (!pm->started)
		return;
	pm->started = false;
	transport_scan_stop(pm->t);
	for (struct pen *p = pm->pens; p; p = p->next) {
		if (is_link_state(p->state)) {
			pen_unlink(p);
			cp_fail_all(p, -ECANCELED);
		}
		timer_stop(p->backoff_timer);
		p->in_range = false;
		pen_set_state(p, PENMGR_STATE_LOST, TRANSPORT_ERR_NONE);
	}
}

int penmgr_get_snapshot(struct penmgr *pm, const char *serial, struct penmgr_snapshot *ret)
{
	struct pen *p = pen_by_serial(pm, serial);

	if (!p)
		return -ENOENT;
	*ret = p->snap;
	return 0;
}

int penmgr_get_counters(struct penmgr *pm, const char *serial, struct penmgr_counters *ret)
{
	struct pen *p = pen_by_serial(pm, serial);

	if (!p)
		return -ENOENT;
	*ret = p->cnt;
	return 0;
}

size_t penmgr_list(struct penmgr *pm, const char **serials, size_t max)
{
	size_t n = 0;

	for (struct pen *p = pm->pens; p; p = p->next) {
		if (!p->allowed || p->ignored)
			continue;
		if (n < max)
			serials[n] = p->serial;
		n++;
	}
	return n;
}

int penmgr_release(struct penmgr *pm, const char *serial)
{
	struct pen *p = pen_by_serial(pm, serial);

	if (!p)
		return -ENOENT;
	if (!p->quarantined)
		return 0;
	log_pen_notice(pen_name(p), "released from quarantine");
	p->quarantined = false;
	p->snap.quarantined = false;
	p->corrupt_links = 0;
	p->backoff_attempt = 0;
	if (p->state == PENMGR_STATE_BACKOFF || p->state == PENMGR_STATE_LOST) {
		pen_set_state(p, p->in_range ? PENMGR_STATE_DISCOVERED : PENMGR_STATE_LOST,
			      TRANSPORT_ERR_NONE);
		try_connect_waiting(pm);
	}
	return 0;
}

uint32_t penmgr_ignored(const struct penmgr *pm)
{
	return pm->ignored;
}

static void read_limits_done(struct pen *p, struct gatt_op *op, int err, uint8_t att_err,
			     const uint8_t *val, size_t len)
{
	penmgr_limits_fn cb = op->limits_cb;
	struct nl_active_limits al;
	int r;

	op->limits_cb = NULL;
	if (err < 0) {
		cb(err, NULL, op->limits_data);
		(void)op_failed(p, op, err, att_err);
		return;
	}
	r = nl_active_limits_decode(val, len, &al);
	if (r < 0) {
		corrupt(p, "Active Limits", r);
		cb(-EBADMSG, NULL, op->limits_data);
		return;
	}
	p->snap.limits = al;
	p->snap.has_limits = true;
	snapshot_changed(p);
	cb(0, &al, op->limits_data);
}

int penmgr_read_limits(struct penmgr *pm, const char *serial, penmgr_limits_fn cb,
		       void *user_data)
{
	struct gatt_op *op;
	struct pen *p;

	if (!pm || !serial || !cb)
		return -EINVAL;
	p = pen_by_serial(pm, serial);
	if (!p)
		return -ENOENT;
	if (!p->linked || !p->cp_ready)
		return -ENOTCONN;
	if (!p->handle[CHR_LIMITS])
		return -ENOENT;
	op = op_new(p, OP_READ, CHR_LIMITS);
	if (!op)
		return -ENOMEM;
	op->done = read_limits_done;
	op->limits_cb = cb;
	op->limits_data = user_data;
	return op_push(p, op);
}

unsigned penmgr_cp_request(struct penmgr *pm, const char *serial, const struct nl_cp_req *req,
			   penmgr_cp_fn cb, void *user_data, transport_destroy_fn destroy)
{
	uint8_t buf[NL_PDU_MAX];
	struct pen *p;
	struct cp_req *q;

	if (!pm || !serial || !req || req->op == NL_CP_ACK_RECORDS)
		return 0;
	p = pen_by_serial(pm, serial);
	if (!p || !p->cp_ready)
		return 0;
	if (nl_cp_req_encode(req, buf, sizeof(buf)) < 0)
		return 0;
	q = cp_req_new(p, req);
	if (!q)
		return 0;
	q->cb = cb;
	q->user_data = user_data;
	q->destroy = destroy;
	cp_enqueue(p, q);
	return q->id;
}

int penmgr_cp_cancel(struct penmgr *pm, unsigned id)
{
	for (struct pen *p = pm->pens; p; p = p->next) {
		if (p->cp_inflight && p->cp_inflight->id == id && !p->cp_inflight->internal) {
			p->cp_inflight->cb = NULL;
			return 0;
		}
		for (struct cp_req **pp = &p->cp_head; *pp; pp = &(*pp)->next) {
			struct cp_req *q = *pp;

			if (q->id != id || q->internal)
				continue;
			*pp = q->next;
			if (p->cp_tail == q) {
				p->cp_tail = NULL;
				for (struct cp_req *t = p->cp_head; t; t = t->next)
					p->cp_tail = t;
			}
			q->cb = NULL;
			cp_complete(p, q, -ECANCELED, NULL);
			return 0;
		}
	}
	return -ENOENT;
}

const char *penmgr_state_name(enum penmgr_state s)
{
	switch (s) {
	case PENMGR_STATE_DISCOVERED:
		return "discovered";
	case PENMGR_STATE_CONNECTING:
		return "connecting";
	case PENMGR_STATE_RESOLVING:
		return "resolving";
	case PENMGR_STATE_SUBSCRIBING:
		return "subscribing";
	case PENMGR_STATE_CATCHING_UP:
		return "catching-up";
	case PENMGR_STATE_READY:
		return "ready";
	case PENMGR_STATE_DISCONNECTING:
		return "disconnecting";
	case PENMGR_STATE_BACKOFF:
		return "backoff";
	case PENMGR_STATE_LOST:
		return "lost";
	case PENMGR_STATE_COUNT:
		break;
	}
	return "?";
}

const char *penmgr_err_name(enum penmgr_err e)
{
	switch (e) {
	case PENMGR_ERR_CONNECT:
		return "connect";
	case PENMGR_ERR_GATT:
		return "gatt";
	case PENMGR_ERR_DECODE:
		return "decode";
	case PENMGR_ERR_SEQUENCE:
		return "sequence";
	case PENMGR_ERR_COMMAND:
		return "command";
	case PENMGR_ERR_TIMEOUT:
		return "timeout";
	case PENMGR_ERR_COUNT:
		break;
	}
	return "?";
}

const char *penmgr_alert_name(enum penmgr_alert a)
{
	switch (a) {
	case PENMGR_ALERT_RECORD_GAP:
		return "record_gap";
	case PENMGR_ALERT_EPOCH_CHANGED:
		return "store_wiped";
	case PENMGR_ALERT_PROTO_MISMATCH:
		return "protocol_mismatch";
	case PENMGR_ALERT_SERIAL_MISMATCH:
		return "serial_mismatch";
	case PENMGR_ALERT_MTU_TOO_SMALL:
		return "mtu_too_small";
	case PENMGR_ALERT_CORRUPT:
		return "malformed_value";
	case PENMGR_ALERT_CORRUPT_LIMIT:
		return "malformed_data_disconnect";
	case PENMGR_ALERT_WATCHDOG:
		return "link_silent";
	case PENMGR_ALERT_CLOCK_SET:
		return "clock_set";
	case PENMGR_ALERT_COMMIT_FAILED:
		return "commit_failed";
	case PENMGR_ALERT_CATCHUP_FAILED:
		return "catchup_failed";
	case PENMGR_ALERT_ACK_FAILED:
		return "ack_failed";
	case PENMGR_ALERT_QUARANTINED:
		return "pen_quarantined";
	case PENMGR_ALERT_COUNT:
		break;
	}
	return "?";
}
