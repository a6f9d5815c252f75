/* SPDX-License-Identifier: MIT */
/*
 * Local radio, pen side. One listening socket per pen, at most one central.
 *
 * Re-entrancy: pen callbacks may call back into the radio ops (notify from
 * inside write, disconnect from inside read...). So (1) frames the pen sends
 * while a request is being handled are held and go out after the response,
 * (2) dropping the link never calls the pen synchronously: disconnected()
 * runs from a deferred event source, and is forced before the next
 * connected() if the loop has not dispatched it yet, (3) after every pen
 * callback the handler checks that its link still exists (link_gen).
 */
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "lradio-internal.h"
#include "lradio_server.h"

#define HANDLE_COUNT_MAX 64

struct ind_state {
	bool in_flight;
	struct lradio_txq queue; /* encoded INDICATE frames waiting for the confirm */
	sd_event_source *timer;
};

struct lradio_server {
	unsigned n_ref;
	bool dead; /* lradio_server_free() was called */
	sd_event *ev;
	char *dir;
	char sock_path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	char sock_tmp[sizeof(((struct sockaddr_un *)0)->sun_path)];
	char *adv_path;
	char *adv_tmp;
	struct lradio_adv adv;
	const struct sim_gatt_server_ops *ops;
	void *pen;

	bool in_range;
	bool secure;
	bool silent;
	size_t txq_max;
	uint64_t confirm_timeout;

	int listen_fd;
	sd_event_source *listen_src;

	/* The link (fd >= 0 while a central is attached). */
	int fd;
	sd_event_source *io_src;
	uint64_t link_gen;
	bool link_secure;
	bool pen_connected; /* connected() called on this link */
	bool mtu_exchanged;
	uint16_t mtu;
	uint16_t cccd[SIM_CHR_COUNT];
	struct ind_state ind[SIM_CHR_COUNT];
	struct lradio_txq tx;
	struct lradio_txq held;
	struct lradio_rxb *rx; /* from the first link until release */
	unsigned holding; /* > 0 while a request is being handled */
	bool want_out;

	/* disconnected() owed to the pen. */
	bool owe_disconnected;
	sd_event_source *defer_src;
};

/* Database layout, computed from sim_chr_table(): per service a declaration
 * handle; per characteristic a declaration, a value and (notify or indicate)
 * a CCCD handle. */
struct db_entry {
	enum lradio_attr_kind kind;
	uint16_t handle;
	int chr; /* enum sim_chr for a characteristic, -1 for a service */
};

static size_t db_build(struct db_entry *out, size_t max)
{
	const struct sim_chr_desc *t = sim_chr_table();
	const char *cur_service = NULL;
	uint16_t h = 1;
	size_t n = 0;

	for (int i = 0; i < SIM_CHR_COUNT; i++) {
		if (!cur_service || strcmp(cur_service, t[i].service_uuid) != 0) {
			cur_service = t[i].service_uuid;
			assert(n < max);
			out[n++] = (struct db_entry){LRADIO_ATTR_SERVICE, h++, -1};
		}
		h++; /* characteristic declaration */
		assert(n < max);
		out[n++] = (struct db_entry){LRADIO_ATTR_CHARACTERISTIC, h++, i};
		if (t[i].props & (SIM_PROP_NOTIFY | SIM_PROP_INDICATE))
			h++; /* CCCD */
	}
	return n;
}

uint16_t lradio_server_handle(enum sim_chr chr)
{
	struct db_entry db[HANDLE_COUNT_MAX];
	size_t n = db_build(db, HANDLE_COUNT_MAX);
	for (size_t i = 0; i < n; i++)
		if (db[i].kind == LRADIO_ATTR_CHARACTERISTIC && db[i].chr == (int)chr)
			return db[i].handle;
	return 0;
}

static int chr_by_handle(uint16_t handle)
{
	for (int i = 0; i < SIM_CHR_COUNT; i++)
		if (lradio_server_handle((enum sim_chr)i) == handle)
			return i;
	return -1;
}

static void server_ref(struct lradio_server *s)
{
	s->n_ref++;
}

static void server_release(struct lradio_server *s);

static void server_unref(struct lradio_server *s)
{
	assert(s->n_ref > 0);
	if (--s->n_ref == 0)
		server_release(s);
}

static int defer_cb(sd_event_source *src, void *userdata);

static void owe_disconnected(struct lradio_server *s)
{
	s->owe_disconnected = true;
	if (s->defer_src)
		(void)sd_event_source_set_enabled(s->defer_src, SD_EVENT_ONESHOT);
}

/* Calls disconnected() now if it is owed (before a new connected()). */
static void pay_disconnected(struct lradio_server *s)
{
	if (!s->owe_disconnected)
		return;
	s->owe_disconnected = false;
	if (s->defer_src)
		(void)sd_event_source_set_enabled(s->defer_src, SD_EVENT_OFF);
	if (!s->dead && s->ops->disconnected)
		s->ops->disconnected(s->pen);
}

static int defer_cb(sd_event_source *src, void *userdata)
{
	struct lradio_server *s = userdata;
	server_ref(s);
	pay_disconnected(s);
	server_unref(s);
	return 0;
}

/* Tears the link down. With a reason, a DISCONNECT frame is tried first
 * (best effort, never blocking); without one it is a silent link loss. */
static void link_drop(struct lradio_server *s, bool send_frame, enum lradio_reason reason)
{
	if (s->fd < 0)
		return;
	if (send_frame) {
		uint8_t buf[8];
		int n = lradio_enc_disconnect(buf, sizeof(buf), reason);
		lradio_txq_splice(&s->tx, &s->held);
		if (lradio_txq_flush(&s->tx, s->fd) == 0)
			(void)lradio_send_now(s->fd, buf, (size_t)n);
	}
	s->io_src = sd_event_source_disable_unref(s->io_src);
	close(s->fd);
	s->fd = -1;
	s->link_gen++;
	lradio_txq_clear(&s->tx);
	lradio_txq_clear(&s->held);
	for (int i = 0; i < SIM_CHR_COUNT; i++) {
		s->ind[i].in_flight = false;
		lradio_txq_clear(&s->ind[i].queue);
		s->ind[i].timer = sd_event_source_disable_unref(s->ind[i].timer);
	}
	memset(s->cccd, 0, sizeof(s->cccd));
	s->mtu = LRADIO_MTU_DEFAULT;
	s->mtu_exchanged = false;
	s->want_out = false;
	if (s->pen_connected) {
		s->pen_connected = false;
		owe_disconnected(s);
	}
}

static void update_io_events(struct lradio_server *s)
{
	bool want = s->tx.head != NULL;
	if (!s->io_src || want == s->want_out)
		return;
	if (sd_event_source_set_io_events(s->io_src, EPOLLIN | (want ? EPOLLOUT : 0)) >= 0)
		s->want_out = want;
}

static void tx_flush(struct lradio_server *s)
{
	int r = lradio_txq_flush(&s->tx, s->fd);
	if (r < 0 && r != -EAGAIN) {
		link_drop(s, false, LRADIO_REASON_USER);
		return;
	}
	update_io_events(s);
}

/* Queues a frame towards the central. Returns 0, or -ENOBUFS when the
 * central stopped reading (the link is dropped), -ENOMEM. */
static int tx_push(struct lradio_server *s, const uint8_t *frame, size_t len)
{
	int r;

	assert(s->fd >= 0);
	if (s->tx.n + s->held.n >= s->txq_max) {
		link_drop(s, true, LRADIO_REASON_OVERFLOW);
		return -ENOBUFS;
	}
	if (s->holding) {
		r = lradio_txq_push(&s->held, frame, len);
		return r;
	}
	if (!s->tx.head) {
		r = lradio_send_now(s->fd, frame, len);
		if (r == 0)
			return 0;
		if (r != -EAGAIN) {
			link_drop(s, false, LRADIO_REASON_USER);
			return -ENOTCONN;
		}
	}
	r = lradio_txq_push(&s->tx, frame, len);
	if (r < 0)
		return r;
	update_io_events(s);
	return 0;
}

static void hold_begin(struct lradio_server *s)
{
	s->holding++;
}

/* Sends what the pen produced during the request, after its response. */
static void hold_end(struct lradio_server *s)
{
	assert(s->holding > 0);
	if (--s->holding > 0 || s->fd < 0)
		return;
	lradio_txq_splice(&s->tx, &s->held);
	tx_flush(s);
}

static int confirm_timeout_cb(sd_event_source *src, uint64_t usec, void *userdata)
{
	struct lradio_server *s = userdata;
	/* ATT: a transaction not completed in time ends the link. */
	link_drop(s, true, LRADIO_REASON_TIMEOUT);
	return 0;
}

/* Sends the head of chr's indication queue if none is in flight. */
static int ind_pump(struct lradio_server *s, int chr)
{
	struct ind_state *st = &s->ind[chr];
	int r;

	if (st->in_flight || !st->queue.head || s->fd < 0)
		return 0;
	struct lradio_txf *f = st->queue.head;
	st->queue.head = f->next;
	if (!st->queue.head)
		st->queue.tail = NULL;
	st->queue.n--;
	st->in_flight = true;
	uint64_t now;
	r = sd_event_now(s->ev, CLOCK_MONOTONIC, &now);
	if (r >= 0)
		r = sd_event_add_time(s->ev, &st->timer, CLOCK_MONOTONIC, now + s->confirm_timeout, 0,
		                      confirm_timeout_cb, s);
	if (r < 0) {
		free(f);
		link_drop(s, false, LRADIO_REASON_USER);
		return r;
	}
	uint64_t gen = s->link_gen;
	r = tx_push(s, f->data, f->len);
	free(f);
	if (r < 0 && gen == s->link_gen)
		link_drop(s, false, LRADIO_REASON_USER);
	return r;
}

static bool chr_valid(enum sim_chr chr)
{
	return (int)chr >= 0 && chr < SIM_CHR_COUNT;
}

static size_t value_limit(const struct lradio_server *s)
{
	return (size_t)s->mtu - 3;
}

static int radio_notify(void *radio, enum sim_chr chr, const uint8_t *val, size_t len)
{
	struct lradio_server *s = radio;
	uint8_t buf[LRADIO_HDR_LEN + LRADIO_MTU_MAX];

	if (s->fd < 0)
		return -ENOTCONN;
	if (!chr_valid(chr) || !(sim_chr_table()[chr].props & SIM_PROP_NOTIFY) ||
	    !(s->cccd[chr] & SIM_CCCD_NOTIFY))
		return -EINVAL;
	if (len > value_limit(s))
		len = value_limit(s); /* ATT: a notification carries at most MTU-3 bytes */
	int n = lradio_enc_value(buf, sizeof(buf), LRADIO_T_NOTIFY, lradio_server_handle(chr), val,
	                         len);
	assert(n > 0);
	return tx_push(s, buf, (size_t)n);
}

static int radio_indicate(void *radio, enum sim_chr chr, const uint8_t *val, size_t len)
{
	struct lradio_server *s = radio;
	uint8_t buf[LRADIO_HDR_LEN + LRADIO_MTU_MAX];

	if (s->fd < 0)
		return -ENOTCONN;
	if (!chr_valid(chr) || !(sim_chr_table()[chr].props & SIM_PROP_INDICATE) ||
	    !(s->cccd[chr] & SIM_CCCD_INDICATE))
		return -EINVAL;
	if (s->ind[chr].queue.n >= LRADIO_SERVER_INDQ_MAX)
		return -ENOBUFS;
	if (len > value_limit(s))
		len = value_limit(s);
	int n = lradio_enc_value(buf, sizeof(buf), LRADIO_T_INDICATE, lradio_server_handle(chr),
	                         val, len);
	assert(n > 0);
	int r = lradio_txq_push(&s->ind[chr].queue, buf, (size_t)n);
	if (r < 0)
		return r;
	r = ind_pump(s, chr);
	return r == -ENOBUFS ? r : (s->fd < 0 ? -ENOTCONN : 0);
}

static size_t radio_tx_backlog(void *radio)
{
	const struct lradio_server *s = radio;

	return s->fd < 0 ? 0 : s->tx.n + s->held.n;
}

static void radio_disconnect(void *radio)
{
	struct lradio_server *s = radio;
	link_drop(s, true, LRADIO_REASON_USER);
}

static const struct sim_radio_ops radio_ops = {
	.notify = radio_notify,
	.indicate = radio_indicate,
	.disconnect = radio_disconnect,
	.tx_backlog = radio_tx_backlog,
};

const struct sim_radio_ops *lradio_server_radio_ops(void)
{
	return &radio_ops;
}

/* Calls connected() once per link, before the first request reaches the pen. */
static void ensure_pen_connected(struct lradio_server *s)
{
	if (s->pen_connected)
		return;
	pay_disconnected(s); /* the previous link's, if the loop has not yet run it */
	if (s->fd < 0)
		return;
	s->pen_connected = true;
	if (s->ops->connected)
		s->ops->connected(s->pen, s->mtu);
}

static uint8_t att_from_pen(int r)
{
	if (r >= 0 || -r > 0xFF)
		return LRADIO_ATT_UNLIKELY_ERROR;
	return (uint8_t)-r;
}

/* Common checks: returns 0 and the characteristic, or an ATT error. */
static uint8_t check_access(const struct lradio_server *s, uint16_t handle, unsigned need,
                            int *ret_chr)
{
	int chr = chr_by_handle(handle);
	if (chr < 0)
		return LRADIO_ATT_INVALID_HANDLE;
	unsigned props = sim_chr_table()[chr].props;
	if (!(props & need)) {
		if (need == SIM_PROP_READ)
			return LRADIO_ATT_READ_NOT_PERMITTED;
		if (need == SIM_PROP_WRITE)
			return LRADIO_ATT_WRITE_NOT_PERMITTED;
		return LRADIO_ATT_INVALID_HANDLE; /* no CCCD on this characteristic */
	}
	if ((props & SIM_PROP_SECURE) && !s->link_secure)
		return LRADIO_ATT_INSUFFICIENT_AUTHENTICATION;
	*ret_chr = chr;
	return 0;
}

static void handle_mtu(struct lradio_server *s, const struct lradio_frame *f)
{
	uint8_t buf[8];
	uint16_t mtu;

	if (lradio_dec_mtu(f, &mtu) < 0 || f->type != LRADIO_T_MTU_REQ) {
		link_drop(s, true, LRADIO_REASON_PROTOCOL);
		return;
	}
	/* ATT allows one exchange per link; later ones keep the first result. */
	if (!s->mtu_exchanged) {
		s->mtu_exchanged = true;
		s->mtu = mtu < LRADIO_MTU_MAX ? mtu : LRADIO_MTU_MAX;
	}
	uint64_t gen = s->link_gen;
	ensure_pen_connected(s);
	if (gen != s->link_gen)
		return;
	int n = lradio_enc_mtu(buf, sizeof(buf), LRADIO_T_MTU_RSP, f->id, LRADIO_MTU_MAX);
	(void)tx_push(s, buf, (size_t)n);
}

static void handle_discover(struct lradio_server *s, const struct lradio_frame *f)
{
	const struct sim_chr_desc *t = sim_chr_table();
	struct db_entry db[HANDLE_COUNT_MAX];
	struct lradio_attr attrs[LRADIO_DISCOVER_MAX_PER_FRAME];
	uint8_t buf[LRADIO_HDR_LEN + 2 + LRADIO_DISCOVER_MAX_PER_FRAME * LRADIO_ATTR_WIRE_LEN];
	size_t n = db_build(db, HANDLE_COUNT_MAX);
	int chr_of_service = 0;

	if (lradio_dec_discover_req(f) < 0) {
		link_drop(s, true, LRADIO_REASON_PROTOCOL);
		return;
	}
	uint64_t gen = s->link_gen;
	ensure_pen_connected(s);
	if (gen != s->link_gen)
		return;
	for (size_t i = 0; i < n;) {
		size_t k = 0;
		for (; k < LRADIO_DISCOVER_MAX_PER_FRAME && i < n; k++, i++) {
			struct lradio_attr *a = &attrs[k];
			const char *uuid;
			a->kind = db[i].kind;
			a->handle = db[i].handle;
			if (db[i].kind == LRADIO_ATTR_SERVICE) {
				/* the service of the next characteristic */
				chr_of_service = db[i + 1].chr;
				uuid = t[chr_of_service].service_uuid;
				a->props = 0;
			} else {
				uuid = t[db[i].chr].uuid;
				a->props = (uint8_t)(t[db[i].chr].props & LRADIO_PROP_ALL);
			}
			int r = lradio_uuid_parse(uuid, a->uuid);
			assert(r == 0);
			(void)r;
		}
		int len = lradio_enc_discover_rsp(buf, sizeof(buf), f->id, i < n, attrs, k);
		assert(len > 0);
		if (tx_push(s, buf, (size_t)len) < 0 || gen != s->link_gen)
			return;
	}
}

static void handle_read(struct lradio_server *s, const struct lradio_frame *f)
{
	uint8_t val[LRADIO_VALUE_MAX];
	uint8_t buf[LRADIO_HDR_LEN + 1 + LRADIO_VALUE_MAX];
	uint16_t handle;
	int chr = -1;
	size_t len = 0;

	if (lradio_dec_read_req(f, &handle) < 0) {
		link_drop(s, true, LRADIO_REASON_PROTOCOL);
		return;
	}
	uint64_t gen = s->link_gen;
	hold_begin(s);
	ensure_pen_connected(s);
	uint8_t att = gen == s->link_gen ? check_access(s, handle, SIM_PROP_READ, &chr) : 0;
	if (gen == s->link_gen && att == 0) {
		int r = s->ops->read(s->pen, (enum sim_chr)chr, val, sizeof(val));
		if (r < 0 || (size_t)r > sizeof(val))
			att = att_from_pen(r);
		else
			len = (size_t)r;
	}
	if (gen == s->link_gen) {
		int n = lradio_enc_read_rsp(buf, sizeof(buf), f->id, att, val, att ? 0 : len);
		assert(n > 0);
		/* The response goes before what the pen sent meanwhile. */
		s->holding--;
		(void)tx_push(s, buf, (size_t)n);
		s->holding++;
	}
	hold_end(s);
}

static void handle_write(struct lradio_server *s, const struct lradio_frame *f)
{
	uint8_t buf[8];
	const uint8_t *val;
	size_t len;
	uint16_t handle;
	int chr = -1;

	if (lradio_dec_write_req(f, &handle, &val, &len) < 0) {
		link_drop(s, true, LRADIO_REASON_PROTOCOL);
		return;
	}
	uint64_t gen = s->link_gen;
	hold_begin(s);
	ensure_pen_connected(s);
	uint8_t att = gen == s->link_gen ? check_access(s, handle, SIM_PROP_WRITE, &chr) : 0;
	if (gen == s->link_gen && att == 0) {
		int r = s->ops->write(s->pen, (enum sim_chr)chr, val, len);
		if (r != 0)
			att = att_from_pen(r < 0 ? r : -LRADIO_ATT_UNLIKELY_ERROR);
	}
	if (gen == s->link_gen) {
		int n = lradio_enc_status_rsp(buf, sizeof(buf), LRADIO_T_WRITE_RSP, f->id, att);
		s->holding--;
		(void)tx_push(s, buf, (size_t)n);
		s->holding++;
	}
	hold_end(s);
}

static void handle_cccd(struct lradio_server *s, const struct lradio_frame *f)
{
	uint8_t buf[8];
	uint16_t handle, value;
	int chr = -1;

	if (lradio_dec_cccd_req(f, &handle, &value) < 0) {
		link_drop(s, true, LRADIO_REASON_PROTOCOL);
		return;
	}
	uint64_t gen = s->link_gen;
	hold_begin(s);
	ensure_pen_connected(s);
	uint8_t att = 0;
	if (gen == s->link_gen)
		att = check_access(s, handle, SIM_PROP_NOTIFY | SIM_PROP_INDICATE, &chr);
	if (gen == s->link_gen && att == 0) {
		unsigned props = sim_chr_table()[chr].props;
		uint16_t allowed = (uint16_t)(((props & SIM_PROP_NOTIFY) ? SIM_CCCD_NOTIFY : 0) |
		                              ((props & SIM_PROP_INDICATE) ? SIM_CCCD_INDICATE : 0));
		/* protocol.md 2.4: 0, or only the bits the characteristic
		 * supports; any other value is Out of Range, and neither the
		 * stored CCCD nor the pen sees it. */
		if (value & ~allowed) {
			att = LRADIO_ATT_OUT_OF_RANGE;
		} else {
			s->cccd[chr] = value;
			if (!(value & SIM_CCCD_INDICATE))
				lradio_txq_clear(&s->ind[chr].queue);
			if (s->ops->cccd)
				s->ops->cccd(s->pen, (enum sim_chr)chr, value);
		}
	}
	if (gen == s->link_gen) {
		int n = lradio_enc_status_rsp(buf, sizeof(buf), LRADIO_T_CCCD_WRITE_RSP, f->id, att);
		s->holding--;
		(void)tx_push(s, buf, (size_t)n);
		s->holding++;
	}
	hold_end(s);
}

static void handle_confirm(struct lradio_server *s, const struct lradio_frame *f)
{
	int chr = chr_by_handle(f->id);
	if (lradio_dec_confirm(f) < 0 || chr < 0 || !s->ind[chr].in_flight) {
		/* a confirmation nobody asked for is a protocol violation */
		link_drop(s, true, LRADIO_REASON_PROTOCOL);
		return;
	}
	s->ind[chr].in_flight = false;
	s->ind[chr].timer = sd_event_source_disable_unref(s->ind[chr].timer);
	uint64_t gen = s->link_gen;
	if (s->ops->confirmed)
		s->ops->confirmed(s->pen, (enum sim_chr)chr);
	if (gen == s->link_gen)
		(void)ind_pump(s, chr);
}

static void handle_frame(struct lradio_server *s, const uint8_t *buf, size_t len)
{
	struct lradio_frame f;

	if (lradio_frame_parse(buf, len, &f) < 0) {
		link_drop(s, true, LRADIO_REASON_PROTOCOL);
		return;
	}
	if (s->silent) {
		switch (f.type) {
		case LRADIO_T_MTU_REQ:
		case LRADIO_T_DISCOVER_REQ:
		case LRADIO_T_READ_REQ:
		case LRADIO_T_WRITE_REQ:
		case LRADIO_T_CCCD_WRITE_REQ:
			return; /* fault injection: a hung peer */
		case LRADIO_T_HELLO:
		case LRADIO_T_MTU_RSP:
		case LRADIO_T_DISCOVER_RSP:
		case LRADIO_T_READ_RSP:
		case LRADIO_T_WRITE_RSP:
		case LRADIO_T_CCCD_WRITE_RSP:
		case LRADIO_T_NOTIFY:
		case LRADIO_T_INDICATE:
		case LRADIO_T_CONFIRM:
		case LRADIO_T_DISCONNECT:
			break;
		}
	}
	switch (f.type) {
	case LRADIO_T_MTU_REQ:
		handle_mtu(s, &f);
		return;
	case LRADIO_T_DISCOVER_REQ:
		handle_discover(s, &f);
		return;
	case LRADIO_T_READ_REQ:
		handle_read(s, &f);
		return;
	case LRADIO_T_WRITE_REQ:
		handle_write(s, &f);
		return;
	case LRADIO_T_CCCD_WRITE_REQ:
		handle_cccd(s, &f);
		return;
	case LRADIO_T_CONFIRM:
		handle_confirm(s, &f);
		return;
	case LRADIO_T_DISCONNECT: {
		enum lradio_reason reason;
		bool ok = lradio_dec_disconnect(&f, &reason) == 0;
		link_drop(s, !ok, LRADIO_REASON_PROTOCOL);
		return;
	}
	case LRADIO_T_HELLO:
	case LRADIO_T_MTU_RSP:
	case LRADIO_T_DISCOVER_RSP:
	case LRADIO_T_READ_RSP:
	case LRADIO_T_WRITE_RSP:
	case LRADIO_T_CCCD_WRITE_RSP:
	case LRADIO_T_NOTIFY:
	case LRADIO_T_INDICATE:
		break;
	}
	link_drop(s, true, LRADIO_REASON_PROTOCOL);
}

static int conn_io_cb(sd_event_source *src, int fd, uint32_t revents, void *userdata)
{
	struct lradio_server *s = userdata;
	uint64_t gen = s->link_gen;
	int i = 0;

	server_ref(s);
	if (revents & EPOLLOUT)
		tx_flush(s);
	/* Bounded batch so one chatty central cannot starve the loop: at most
	 * 64 frames per wakeup, as many per recvmmsg() as fit. A frame may drop
	 * the link, and the rest of its batch goes with it. */
	while (i < 64 && gen == s->link_gen && (revents & (EPOLLIN | EPOLLHUP | EPOLLERR))) {
		int n = lradio_rxb_recv(s->rx, s->fd, (unsigned)(64 - i));
		if (n < 0) {
			if (n == -EINTR) {
				i++;
				continue;
			}
			if (n != -EAGAIN)
				link_drop(s, false, LRADIO_REASON_USER);
			break;
		}
		for (int k = 0; k < n && gen == s->link_gen; k++, i++) {
			size_t len = lradio_rxb_len(s->rx, (unsigned)k);
			if (len == 0) {
				link_drop(s, false, LRADIO_REASON_USER); /* central went away */
				goto done;
			}
			if (len > LRADIO_FRAME_MAX) {
				link_drop(s, true, LRADIO_REASON_PROTOCOL);
				goto done;
			}
			handle_frame(s, s->rx->frame[k], len);
		}
	}
done:
	server_unref(s);
	return 0;
}

static void refuse(int fd)
{
	uint8_t buf[8];
	int n = lradio_enc_disconnect(buf, sizeof(buf), LRADIO_REASON_BUSY);
	(void)lradio_send_now(fd, buf, (size_t)n);
	close(fd);
}

static int link_start(struct lradio_server *s, int fd)
{
	uint8_t buf[LRADIO_HDR_LEN + 64 + 16 + LRADIO_NAME_MAX + LRADIO_SERIAL_MAX + LRADIO_KIND_MAX];
	struct lradio_hello h = {
		.version = LRADIO_WIRE_VERSION,
		.flags = s->secure ? LRADIO_HELLO_SECURE : 0,
		.max_mtu = LRADIO_MTU_MAX,
		.adv = s->adv,
	};
	int r = lradio_rxb_ensure(&s->rx);
	if (r >= 0)
		r = sd_event_add_io(s->ev, &s->io_src, fd, EPOLLIN, conn_io_cb, s);
	if (r < 0) {
		close(fd);
		return r;
	}
	s->fd = fd;
	s->link_gen++;
	s->link_secure = s->secure;
	s->mtu = LRADIO_MTU_DEFAULT;
	s->mtu_exchanged = false;
	s->pen_connected = false;
	s->want_out = false;
	int n = lradio_enc_hello(buf, sizeof(buf), &h);
	assert(n > 0);
	return tx_push(s, buf, (size_t)n);
}

static int listen_io_cb(sd_event_source *src, int fd, uint32_t revents, void *userdata)
{
	struct lradio_server *s = userdata;

	server_ref(s);
	for (int i = 0; i < 16 && s->listen_fd >= 0; i++) {
		int cfd = accept4(s->listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
		if (cfd < 0)
			break; /* EAGAIN, or a central that gave up before we accepted */
		if (s->fd >= 0) {
			refuse(cfd); /* one central per pen */
			continue;
		}
		(void)link_start(s, cfd);
	}
	server_unref(s);
	return 0;
}

static int write_adv(struct lradio_server *s)
{
	char text[256];
	int n = lradio_adv_format(text, sizeof(text), &s->adv);
	if (n < 0)
		return n;
	int fd = open(s->adv_tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return -errno;
	ssize_t w = write(fd, text, (size_t)n);
	int r = w == n ? 0 : (w < 0 ? -errno : -EIO);
	if (close(fd) < 0 && r == 0)
		r = -errno;
	if (r == 0 && rename(s->adv_tmp, s->adv_path) < 0)
		r = -errno;
	if (r < 0)
		(void)unlink(s->adv_tmp);
	return r;
}

/* true when a live server already listens at path (another simulator with
 * the same serial). A Unix connect never blocks: it succeeds, or fails with
 * ENOENT / ECONNREFUSED (stale file) at once, or EAGAIN (alive, backlog full). */
static bool sock_alive(const char *path)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return false;
	memcpy(sa.sun_path, path, strlen(path) + 1);
	bool alive = connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 || errno == EAGAIN;
	close(fd);
	return alive;
}

/* .adv first, then the socket appears under its final name already
 * listening (bound under a temporary name, then renamed). */
static int go_in_range(struct lradio_server *s)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int fd = -1, r;

	if (sock_alive(s->sock_path))
		return -EADDRINUSE;
	r = write_adv(s);
	if (r < 0)
		return r;
	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0) {
		r = -errno;
		goto fail;
	}
	memcpy(sa.sun_path, s->sock_tmp, strlen(s->sock_tmp) + 1);
	(void)unlink(s->sock_tmp);
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 4) < 0 ||
	    rename(s->sock_tmp, s->sock_path) < 0) {
		r = -errno;
		(void)unlink(s->sock_tmp);
		goto fail;
	}
	r = sd_event_add_io(s->ev, &s->listen_src, fd, EPOLLIN, listen_io_cb, s);
	if (r < 0) {
		(void)unlink(s->sock_path);
		goto fail;
	}
	s->listen_fd = fd;
	s->in_range = true;
	return 0;
fail:
	if (fd >= 0)
		close(fd);
	(void)unlink(s->adv_path);
	return r;
}

static void go_out_of_range(struct lradio_server *s)
{
	if (s->listen_fd >= 0) {
		(void)unlink(s->sock_path);
		s->listen_src = sd_event_source_disable_unref(s->listen_src);
		close(s->listen_fd);
		s->listen_fd = -1;
	}
	link_drop(s, false, LRADIO_REASON_USER); /* a link loss, not a goodbye */
	(void)unlink(s->adv_path);
	s->in_range = false;
}

static char *path_join(const char *dir, const char *pre, const char *name, const char *suf)
{
	char *p = NULL;
	if (asprintf(&p, "%s/%s%s%s", dir, pre, name, suf) < 0)
		return NULL;
	return p;
}

static int set_sock_path(char *out, size_t size, const char *dir, const char *pre,
                         const char *serial, const char *suf)
{
	int n = snprintf(out, size, "%s/%s%s%s", dir, pre, serial, suf);
	if (n < 0 || (size_t)n >= size)
		return -ENAMETOOLONG;
	return 0;
}

int lradio_server_new(sd_event *ev, const char *dir, const struct lradio_adv *adv,
                      const struct sim_gatt_server_ops *ops, void *pen,
                      struct lradio_server **ret)
{
	struct lradio_server *s;
	int r;

	if (!ev || !dir || !dir[0] || !ops || !ops->read || !ops->write || !ret ||
	    lradio_adv_check(adv) < 0)
		return -EINVAL;
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->n_ref = 1;
	s->ev = sd_event_ref(ev);
	s->adv = *adv;
	s->ops = ops;
	s->pen = pen;
	s->secure = true;
	s->txq_max = LRADIO_SERVER_TXQ_MAX;
	s->confirm_timeout = LRADIO_SERVER_CONFIRM_TIMEOUT_USEC;
	s->listen_fd = -1;
	s->fd = -1;
	s->mtu = LRADIO_MTU_DEFAULT;

	r = -ENOMEM;
	s->dir = strdup(dir);
	s->adv_path = path_join(dir, "", adv->serial, ".adv");
	s->adv_tmp = path_join(dir, ".", adv->serial, ".adv.tmp");
	if (!s->dir || !s->adv_path || !s->adv_tmp)
		goto fail;
	r = set_sock_path(s->sock_path, sizeof(s->sock_path), dir, "", adv->serial, ".sock");
	if (r < 0)
		goto fail;
	r = set_sock_path(s->sock_tmp, sizeof(s->sock_tmp), dir, ".", adv->serial, ".sock.tmp");
	if (r < 0)
		goto fail;
	if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
		r = -errno;
		goto fail;
	}
	r = sd_event_add_defer(ev, &s->defer_src, defer_cb, s);
	if (r < 0)
		goto fail;
	(void)sd_event_source_set_enabled(s->defer_src, SD_EVENT_OFF);
	r = go_in_range(s);
	if (r < 0)
		goto fail;
	*ret = s;
	return 0;
fail:
	s->dead = true;
	server_unref(s);
	return r;
}

static void server_release(struct lradio_server *s)
{
	s->dead = true;
	if (s->in_range)
		go_out_of_range(s);
	link_drop(s, false, LRADIO_REASON_USER);
	s->defer_src = sd_event_source_disable_unref(s->defer_src);
	sd_event_unref(s->ev);
	free(s->dir);
	free(s->adv_path);
	free(s->adv_tmp);
	free(s->rx);
	free(s);
}

void lradio_server_free(struct lradio_server *s)
{
	if (!s)
		return;
	assert(!s->dead);
	s->dead = true; /* no pen callbacks from here on */
	if (s->in_range)
		go_out_of_range(s);
	s->owe_disconnected = false;
	server_unref(s);
}

int lradio_server_set_in_range(struct lradio_server *s, bool in_range)
{
	if (in_range == s->in_range)
		return 0;
	if (!in_range) {
		go_out_of_range(s);
		return 0;
	}
	return go_in_range(s);
}

bool lradio_server_in_range(const struct lradio_server *s)
{
	return s->in_range;
}

void lradio_server_set_secure(struct lradio_server *s, bool secure)
{
	s->secure = secure;
}

int lradio_server_set_rssi(struct lradio_server *s, int8_t rssi)
{
	s->adv.rssi = rssi;
	return s->in_range ? write_adv(s) : 0;
}

bool lradio_server_connected(const struct lradio_server *s)
{
	return s->fd >= 0;
}

uint16_t lradio_server_mtu(const struct lradio_server *s)
{
	return s->mtu;
}

const char *lradio_server_path(const struct lradio_server *s)
{
	return s->sock_path;
}

void lradio_server_set_txq_max(struct lradio_server *s, size_t frames)
{
	s->txq_max = frames > 0 ? frames : 1;
}

void lradio_server_set_confirm_timeout(struct lradio_server *s, uint64_t usec)
{
	s->confirm_timeout = usec;
}

void lradio_server_set_silent(struct lradio_server *s, bool silent)
{
	s->silent = silent;
}

int lradio_server_send_raw(struct lradio_server *s, const void *frame, size_t len)
{
	if (s->fd < 0)
		return -ENOTCONN;
	if (len > LRADIO_FRAME_MAX)
		return -EMSGSIZE;
	return tx_push(s, frame, len);
}

int lradio_server_notify_raw(struct lradio_server *s, enum sim_chr chr, const uint8_t *val,
                             size_t len)
{
	uint8_t buf[LRADIO_FRAME_MAX];

	if (s->fd < 0)
		return -ENOTCONN;
	if (!chr_valid(chr))
		return -EINVAL;
	if (len > LRADIO_FRAME_MAX - LRADIO_HDR_LEN)
		return -EMSGSIZE;
	int n = lradio_enc_value(buf, sizeof(buf), LRADIO_T_NOTIFY, lradio_server_handle(chr), val,
	                         len);
	assert(n > 0);
	return tx_push(s, buf, (size_t)n);
}
