/* SPDX-License-Identifier: MIT */
/*
 * Local radio, central side. Requests wait in a FIFO; only the head is on
 * the wire, guarded by one timer. A response must match the head's type and
 * id, anything else is a protocol error that ends the link (as a confused
 * ATT bearer would).
 */
#include <assert.h>
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "lradio-internal.h"
#include "lradio_client.h"

#define RX_PER_WAKEUP 16

enum client_state {
	CLIENT_IDLE,
	CLIENT_CONNECTING,
	CLIENT_CONNECTED,
};

struct req {
	struct req *next;
	int id;
	uint16_t wire_id;
	enum lradio_type type; /* the request type */
	bool sent;
	bool cancelled; /* callback already ran; its response is swallowed */
	uint64_t timeout;
	union {
		lradio_mtu_cb mtu;
		lradio_discover_cb discover;
		lradio_read_cb read;
		lradio_status_cb status;
	} cb;
	void *user_data;
	lradio_destroy_fn destroy;
	uint16_t mtu; /* MTU_REQ: what we asked for */
	size_t len;
	uint8_t frame[];
};

struct lradio_client {
	unsigned n_ref;
	bool dead;
	sd_event *ev;
	enum client_state state;
	int fd;
	sd_event_source *io_src;
	sd_event_source *timer_src;
	sd_event_source *broken_src; /* a send failed: break the link from the loop */
	uint64_t link_gen;
	bool want_out;
	struct lradio_txq tx;
	struct lradio_rxb *rx; /* from the first connect until release */

	lradio_connect_cb connect_cb;
	void *connect_ud;
	lradio_destroy_fn connect_destroy;

	struct req *head, *tail;
	int next_id;
	uint16_t next_wire_id;
	uint64_t timeout;
	uint16_t mtu;
	bool mtu_asked; /* ATT allows one exchange per link */

	struct lradio_attr disc[LRADIO_DISCOVER_MAX];
	size_t disc_n;
	struct lradio_attr attrs[LRADIO_DISCOVER_MAX];
	size_t n_attrs;
	bool discovered;

	lradio_value_fn value_fn;
	void *value_ud;
	lradio_disconnect_fn disc_fn;
	void *disc_ud;
};

static void client_release(struct lradio_client *c);

static void client_ref(struct lradio_client *c)
{
	c->n_ref++;
}

static void client_unref(struct lradio_client *c)
{
	assert(c->n_ref > 0);
	if (--c->n_ref == 0)
		client_release(c);
}

static void req_free(struct req *q)
{
	if (q->destroy)
		q->destroy(q->user_data);
	free(q);
}

/* Runs q's callback with an error. */
static void req_fail(struct lradio_client *c, struct req *q, int err)
{
	if (q->cancelled)
		return;
	q->cancelled = true;
	switch (q->type) {
	case LRADIO_T_MTU_REQ:
		if (q->cb.mtu)
			q->cb.mtu(c, err, 0, q->user_data);
		break;
	case LRADIO_T_DISCOVER_REQ:
		if (q->cb.discover)
			q->cb.discover(c, err, NULL, 0, q->user_data);
		break;
	case LRADIO_T_READ_REQ:
		if (q->cb.read)
			q->cb.read(c, err, 0, NULL, 0, q->user_data);
		break;
	case LRADIO_T_WRITE_REQ:
	case LRADIO_T_CCCD_WRITE_REQ:
		if (q->cb.status)
			q->cb.status(c, err, 0, q->user_data);
		break;
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
		assert(!"not a request");
		break;
	}
}

static struct req *pop_head(struct lradio_client *c)
{
	struct req *q = c->head;
	if (q) {
		c->head = q->next;
		if (!c->head)
			c->tail = NULL;
	}
	return q;
}

/* Closes the socket; no callbacks. */
static void link_close(struct lradio_client *c)
{
	c->io_src = sd_event_source_disable_unref(c->io_src);
	c->timer_src = sd_event_source_disable_unref(c->timer_src);
	c->broken_src = sd_event_source_disable_unref(c->broken_src);
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	c->link_gen++;
	c->state = CLIENT_IDLE;
	c->want_out = false;
	lradio_txq_clear(&c->tx);
	c->mtu = LRADIO_MTU_DEFAULT;
	c->disc_n = 0;
}

/* Fails every queued request with err, one at a time so that a callback
 * queueing more work (on a new link) is not swept away. */
static void fail_all(struct lradio_client *c, struct req *list, int err)
{
	while (list) {
		struct req *q = list;
		list = q->next;
		req_fail(c, q, err);
		req_free(q);
	}
}

static void take_connect_cb(struct lradio_client *c, lradio_connect_cb *cb, void **ud,
                            lradio_destroy_fn *destroy)
{
	*cb = c->connect_cb;
	*ud = c->connect_ud;
	*destroy = c->connect_destroy;
	c->connect_cb = NULL;
	c->connect_ud = NULL;
	c->connect_destroy = NULL;
}

/* The link is gone without the user asking. err: -ECONNRESET, -ETIMEDOUT,
 * -EPROTO, -ESHUTDOWN, or -EBUSY while connecting. */
static void link_broken(struct lradio_client *c, int err)
{
	bool was_connecting = c->state == CLIENT_CONNECTING;
	lradio_connect_cb ccb;
	void *cud;
	lradio_destroy_fn cdestroy;
	struct req *list = c->head;

	if (c->state == CLIENT_IDLE)
		return;
	client_ref(c);
	take_connect_cb(c, &ccb, &cud, &cdestroy);
	c->head = c->tail = NULL;
	link_close(c);
	if (was_connecting) {
		if (ccb)
			ccb(c, err == -ESHUTDOWN ? -ECONNREFUSED : err, NULL, cud);
		if (cdestroy)
			cdestroy(cud);
	}
	fail_all(c, list, -ECONNABORTED);
	if (!was_connecting && !c->dead && c->disc_fn)
		c->disc_fn(c, err, c->disc_ud);
	client_unref(c);
}

static void update_io_events(struct lradio_client *c)
{
	bool want = c->tx.head != NULL;
	if (!c->io_src || want == c->want_out)
		return;
	if (sd_event_source_set_io_events(c->io_src, EPOLLIN | (want ? EPOLLOUT : 0)) >= 0)
		c->want_out = want;
}

static int tx_push(struct lradio_client *c, const uint8_t *frame, size_t len)
{
	int r;
	if (!c->tx.head) {
		r = lradio_send_now(c->fd, frame, len);
		if (r == 0)
			return 0;
		if (r != -EAGAIN)
			return r;
	}
	r = lradio_txq_push(&c->tx, frame, len);
	if (r < 0)
		return r;
	update_io_events(c);
	return 0;
}

static int timer_cb(sd_event_source *src, uint64_t usec, void *userdata);

static int arm_timer(struct lradio_client *c, uint64_t timeout)
{
	uint64_t now;
	int r = sd_event_now(c->ev, CLOCK_MONOTONIC, &now);
	if (r < 0)
		return r;
	uint64_t when = timeout > UINT64_MAX - now ? UINT64_MAX : now + timeout;
	if (c->timer_src) {
		r = sd_event_source_set_time(c->timer_src, when);
		if (r >= 0)
			r = sd_event_source_set_enabled(c->timer_src, SD_EVENT_ONESHOT);
		return r;
	}
	return sd_event_add_time(c->ev, &c->timer_src, CLOCK_MONOTONIC, when, 0, timer_cb, c);
}

static void disarm_timer(struct lradio_client *c)
{
	if (c->timer_src)
		(void)sd_event_source_set_enabled(c->timer_src, SD_EVENT_OFF);
}

static int broken_cb(sd_event_source *src, void *userdata)
{
	struct lradio_client *c = userdata;

	client_ref(c);
	c->broken_src = sd_event_source_disable_unref(c->broken_src);
	link_broken(c, -ECONNRESET);
	client_unref(c);
	return 0;
}

/* pump() runs inside request calls (lradio_client_read...), where
 * completing the caller's request before it even got its id back would
 * surprise it; so the link is broken from the loop instead. */
static void schedule_broken(struct lradio_client *c)
{
	if (!c->broken_src && sd_event_add_defer(c->ev, &c->broken_src, broken_cb, c) < 0)
		c->broken_src = NULL; /* the request's timer will end the link */
}

/* Puts the head request on the wire if none is outstanding. */
static void pump(struct lradio_client *c)
{
	struct req *q = c->head;
	if (c->state != CLIENT_CONNECTED || !q || q->sent)
		return;
	q->sent = true;
	int r = arm_timer(c, q->timeout);
	if (r >= 0)
		r = tx_push(c, q->frame, q->len);
	if (r < 0)
		schedule_broken(c);
}

static int timer_cb(sd_event_source *src, uint64_t usec, void *userdata)
{
	struct lradio_client *c = userdata;

	client_ref(c);
	if (c->state == CLIENT_CONNECTED && c->head) {
		/* ATT: a timed-out transaction leaves the bearer unusable. */
		struct req *q = pop_head(c);
		req_fail(c, q, -ETIMEDOUT);
		req_free(q);
	}
	link_broken(c, -ETIMEDOUT);
	client_unref(c);
	return 0;
}

/* Pops the head (its transaction is over) so that the callback may queue,
 * cancel, disconnect or free; the next request goes out afterwards. */
static struct req *complete_head(struct lradio_client *c)
{
	struct req *q = pop_head(c);
	disarm_timer(c);
	return q;
}

static void on_response(struct lradio_client *c, const struct lradio_frame *f)
{
	struct req *q = c->head;
	uint64_t gen = c->link_gen;
	int r = -EBADMSG;

	if (!q || !q->sent || q->wire_id != f->id || (uint8_t)f->type != (uint8_t)(q->type + 1)) {
		link_broken(c, -EPROTO);
		return;
	}
	switch (f->type) {
	case LRADIO_T_MTU_RSP: {
		uint16_t mtu;
		r = lradio_dec_mtu(f, &mtu);
		if (r < 0)
			break;
		c->mtu = mtu < q->mtu ? mtu : q->mtu;
		q = complete_head(c);
		if (!q->cancelled && q->cb.mtu)
			q->cb.mtu(c, 0, c->mtu, q->user_data);
		break;
	}
	case LRADIO_T_DISCOVER_RSP: {
		bool more;
		size_t n;
		r = lradio_dec_discover_rsp(f, &more, c->disc + c->disc_n,
		                            LRADIO_DISCOVER_MAX - c->disc_n, &n);
		if (r < 0)
			break;
		c->disc_n += n;
		if (more)
			return; /* the same request continues; its timer keeps running */
		memcpy(c->attrs, c->disc, c->disc_n * sizeof(c->disc[0]));
		c->n_attrs = c->disc_n;
		c->discovered = true;
		c->disc_n = 0;
		q = complete_head(c);
		if (!q->cancelled && q->cb.discover)
			q->cb.discover(c, 0, c->attrs, c->n_attrs, q->user_data);
		break;
	}
	case LRADIO_T_READ_RSP: {
		uint8_t att;
		const uint8_t *val;
		size_t len;
		r = lradio_dec_read_rsp(f, &att, &val, &len);
		if (r < 0)
			break;
		q = complete_head(c);
		if (!q->cancelled && q->cb.read)
			q->cb.read(c, att ? -EREMOTEIO : 0, att, att ? NULL : val, len, q->user_data);
		break;
	}
	case LRADIO_T_WRITE_RSP:
	case LRADIO_T_CCCD_WRITE_RSP: {
		uint8_t att;
		r = lradio_dec_status_rsp(f, &att);
		if (r < 0)
			break;
		q = complete_head(c);
		if (!q->cancelled && q->cb.status)
			q->cb.status(c, att ? -EREMOTEIO : 0, att, q->user_data);
		break;
	}
	case LRADIO_T_HELLO:
	case LRADIO_T_MTU_REQ:
	case LRADIO_T_DISCOVER_REQ:
	case LRADIO_T_READ_REQ:
	case LRADIO_T_WRITE_REQ:
	case LRADIO_T_CCCD_WRITE_REQ:
	case LRADIO_T_NOTIFY:
	case LRADIO_T_INDICATE:
	case LRADIO_T_CONFIRM:
	case LRADIO_T_DISCONNECT:
		break;
	}
	if (r < 0) {
		link_broken(c, -EPROTO);
		return;
	}
	req_free(q);
	if (gen == c->link_gen)
		pump(c);
}

static void on_value(struct lradio_client *c, const struct lradio_frame *f)
{
	const uint8_t *val;
	size_t len;
	uint64_t gen = c->link_gen;

	if (c->state != CLIENT_CONNECTED || lradio_dec_value(f, &val, &len) < 0) {
		link_broken(c, -EPROTO);
		return;
	}
	bool ind = f->type == LRADIO_T_INDICATE;
	if (c->value_fn)
		c->value_fn(c, f->id, ind, val, len, c->value_ud);
	if (ind && gen == c->link_gen && c->state == CLIENT_CONNECTED) {
		uint8_t buf[8];
		int n = lradio_enc_confirm(buf, sizeof(buf), f->id);
		if (tx_push(c, buf, (size_t)n) < 0)
			link_broken(c, -ECONNRESET);
	}
}

static void on_hello(struct lradio_client *c, const struct lradio_frame *f)
{
	struct lradio_hello h;
	lradio_connect_cb cb;
	void *ud;
	lradio_destroy_fn destroy;

	if (c->state != CLIENT_CONNECTING || lradio_dec_hello(f, &h) < 0 ||
	    h.version != LRADIO_WIRE_VERSION) {
		link_broken(c, -EPROTO);
		return;
	}
	c->state = CLIENT_CONNECTED;
	disarm_timer(c);
	take_connect_cb(c, &cb, &ud, &destroy);
	uint64_t gen = c->link_gen;
	if (cb)
		cb(c, 0, &h, ud);
	if (destroy)
		destroy(ud);
	if (gen == c->link_gen)
		pump(c);
}

static void handle_frame(struct lradio_client *c, const uint8_t *buf, size_t len)
{
	struct lradio_frame f;

	if (lradio_frame_parse(buf, len, &f) < 0) {
		link_broken(c, -EPROTO);
		return;
	}
	switch (f.type) {
	case LRADIO_T_HELLO:
		on_hello(c, &f);
		return;
	case LRADIO_T_MTU_RSP:
	case LRADIO_T_DISCOVER_RSP:
	case LRADIO_T_READ_RSP:
	case LRADIO_T_WRITE_RSP:
	case LRADIO_T_CCCD_WRITE_RSP:
		if (c->state != CLIENT_CONNECTED)
			break;
		on_response(c, &f);
		return;
	case LRADIO_T_NOTIFY:
	case LRADIO_T_INDICATE:
		on_value(c, &f);
		return;
	case LRADIO_T_DISCONNECT: {
		enum lradio_reason reason;
		if (lradio_dec_disconnect(&f, &reason) < 0)
			break;
		link_broken(c, reason == LRADIO_REASON_BUSY ? -EBUSY : -ESHUTDOWN);
		return;
	}
	case LRADIO_T_MTU_REQ:
	case LRADIO_T_DISCOVER_REQ:
	case LRADIO_T_READ_REQ:
	case LRADIO_T_WRITE_REQ:
	case LRADIO_T_CCCD_WRITE_REQ:
	case LRADIO_T_CONFIRM:
		break;
	}
	link_broken(c, -EPROTO);
}

static int io_cb(sd_event_source *src, int fd, uint32_t revents, void *userdata)
{
	struct lradio_client *c = userdata;
	uint64_t gen = c->link_gen;
	int i = 0;

	client_ref(c);
	if (revents & EPOLLOUT) {
		int r = lradio_txq_flush(&c->tx, c->fd);
		if (r < 0 && r != -EAGAIN)
			link_broken(c, -ECONNRESET);
		else
			update_io_events(c);
	}
	/* At most RX_PER_WAKEUP frames per wakeup (one recvmmsg() when they
	 * come together), so other links and the rest of the loop get their
	 * turn; a frame may end the link, and the rest of its batch is
	 * dropped with it. */
	while (i < RX_PER_WAKEUP && gen == c->link_gen &&
	       (revents & (EPOLLIN | EPOLLHUP | EPOLLERR))) {
		int n = lradio_rxb_recv(c->rx, c->fd, (unsigned)(RX_PER_WAKEUP - i));
		if (n < 0) {
			if (n == -EINTR) {
				i++;
				continue;
			}
			if (n != -EAGAIN)
				link_broken(c, -ECONNRESET);
			break;
		}
		for (int k = 0; k < n && gen == c->link_gen; k++, i++) {
			size_t len = lradio_rxb_len(c->rx, (unsigned)k);
			if (len == 0) {
				link_broken(c, -ECONNRESET);
				goto done;
			}
			if (len > LRADIO_FRAME_MAX) {
				link_broken(c, -EPROTO);
				goto done;
			}
			handle_frame(c, c->rx->frame[k], len);
		}
	}
done:
	client_unref(c);
	return 0;
}

int lradio_client_new(sd_event *ev, struct lradio_client **ret)
{
	struct lradio_client *c;

	if (!ev || !ret)
		return -EINVAL;
	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->n_ref = 1;
	c->ev = sd_event_ref(ev);
	c->fd = -1;
	c->timeout = LRADIO_CLIENT_TIMEOUT_USEC;
	c->mtu = LRADIO_MTU_DEFAULT;
	c->next_id = 1;
	c->next_wire_id = 1;
	*ret = c;
	return 0;
}

static void drop_pending_quietly(struct lradio_client *c)
{
	lradio_connect_cb cb;
	void *ud;
	lradio_destroy_fn destroy;
	struct req *q;

	take_connect_cb(c, &cb, &ud, &destroy);
	if (destroy)
		destroy(ud);
	while ((q = pop_head(c)))
		req_free(q);
}

static void client_release(struct lradio_client *c)
{
	link_close(c);
	drop_pending_quietly(c);
	sd_event_unref(c->ev);
	free(c->rx);
	free(c);
}

void lradio_client_free(struct lradio_client *c)
{
	if (!c)
		return;
	assert(!c->dead);
	c->dead = true;
	if (c->state == CLIENT_CONNECTED && c->fd >= 0) {
		uint8_t buf[8];
		int n = lradio_enc_disconnect(buf, sizeof(buf), LRADIO_REASON_USER);
		(void)lradio_send_now(c->fd, buf, (size_t)n);
	}
	link_close(c);
	drop_pending_quietly(c);
	c->value_fn = NULL;
	c->disc_fn = NULL;
	client_unref(c);
}

int lradio_client_connect(struct lradio_client *c, const char *path, lradio_connect_cb cb,
                          void *user_data, lradio_destroy_fn destroy)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int fd, r;

	if (!path)
		return -EINVAL;
	if (c->state != CLIENT_IDLE)
		return -EISCONN;
	if (strlen(path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	memcpy(sa.sun_path, path, strlen(path) + 1);
	r = lradio_rxb_ensure(&c->rx);
	if (r < 0)
		return r;
	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -errno;
	/* A Unix connect completes at once or fails (EAGAIN: backlog full). */
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		r = -errno;
		close(fd);
		return r;
	}
	r = sd_event_add_io(c->ev, &c->io_src, fd, EPOLLIN, io_cb, c);
	if (r < 0) {
		close(fd);
		return r;
	}
	c->fd = fd;
	c->link_gen++;
	c->state = CLIENT_CONNECTING;
	c->mtu = LRADIO_MTU_DEFAULT;
	c->mtu_asked = false;
	c->discovered = false;
	c->n_attrs = 0;
	c->disc_n = 0;
	r = arm_timer(c, c->timeout);
	if (r < 0) {
		link_close(c);
		return r;
	}
	c->connect_cb = cb;
	c->connect_ud = user_data;
	c->connect_destroy = destroy;
	return 0;
}

void lradio_client_disconnect(struct lradio_client *c)
{
	lradio_connect_cb cb;
	void *ud;
	lradio_destroy_fn destroy;

	if (c->state == CLIENT_IDLE)
		return;
	client_ref(c);
	if (c->fd >= 0) {
		uint8_t buf[8];
		int n = lradio_enc_disconnect(buf, sizeof(buf), LRADIO_REASON_USER);
		(void)lradio_txq_flush(&c->tx, c->fd);
		(void)lradio_send_now(c->fd, buf, (size_t)n);
	}
	struct req *list = c->head;
	c->head = c->tail = NULL;
	bool was_connecting = c->state == CLIENT_CONNECTING;
	take_connect_cb(c, &cb, &ud, &destroy);
	link_close(c);
	if (was_connecting && cb)
		cb(c, -ECANCELED, NULL, ud);
	if (destroy)
		destroy(ud);
	fail_all(c, list, -ECANCELED);
	client_unref(c);
}

bool lradio_client_connected(const struct lradio_client *c)
{
	return c->state == CLIENT_CONNECTED;
}

void lradio_client_set_value_handler(struct lradio_client *c, lradio_value_fn fn,
                                     void *user_data)
{
	c->value_fn = fn;
	c->value_ud = user_data;
}

void lradio_client_set_disconnect_handler(struct lradio_client *c, lradio_disconnect_fn fn,
                                          void *user_data)
{
	c->disc_fn = fn;
	c->disc_ud = user_data;
}

void lradio_client_set_timeout(struct lradio_client *c, uint64_t usec)
{
	c->timeout = usec;
}

static struct req *req_new(struct lradio_client *c, enum lradio_type type, size_t len)
{
	struct req *q = calloc(1, sizeof(*q) + len);
	if (!q)
		return NULL;
	q->type = type;
	q->len = len;
	q->timeout = c->timeout;
	q->id = c->next_id;
	c->next_id = c->next_id == INT_MAX ? 1 : c->next_id + 1;
	q->wire_id = c->next_wire_id;
	c->next_wire_id = c->next_wire_id == UINT16_MAX ? 1 : (uint16_t)(c->next_wire_id + 1);
	return q;
}

static int req_submit(struct lradio_client *c, struct req *q, void *user_data,
                      lradio_destroy_fn destroy)
{
	q->user_data = user_data;
	q->destroy = destroy;
	if (c->tail)
		c->tail->next = q;
	else
		c->head = q;
	c->tail = q;
	int id = q->id;
	pump(c); /* never calls back: a send failure is handled from the loop */
	return id;
}

static int check_state(const struct lradio_client *c)
{
	return c->state == CLIENT_IDLE ? -ENOTCONN : 0;
}

int lradio_client_exchange_mtu(struct lradio_client *c, uint16_t mtu, lradio_mtu_cb cb,
                               void *user_data, lradio_destroy_fn destroy)
{
	int r = check_state(c);
	if (r < 0)
		return r;
	if (mtu < LRADIO_MTU_DEFAULT || mtu > LRADIO_MTU_MAX)
		return -EINVAL;
	if (c->mtu_asked)
		return -EALREADY;
	struct req *q = req_new(c, LRADIO_T_MTU_REQ, LRADIO_HDR_LEN + 2);
	if (!q)
		return -ENOMEM;
	q->mtu = mtu;
	q->cb.mtu = cb;
	c->mtu_asked = true;
	r = lradio_enc_mtu(q->frame, q->len, LRADIO_T_MTU_REQ, q->wire_id, mtu);
	assert(r == (int)q->len);
	return req_submit(c, q, user_data, destroy);
}

int lradio_client_discover(struct lradio_client *c, lradio_discover_cb cb, void *user_data,
                           lradio_destroy_fn destroy)
{
	int r = check_state(c);
	if (r < 0)
		return r;
	struct req *q = req_new(c, LRADIO_T_DISCOVER_REQ, LRADIO_HDR_LEN);
	if (!q)
		return -ENOMEM;
	q->cb.discover = cb;
	r = lradio_enc_discover_req(q->frame, q->len, q->wire_id);
	assert(r == (int)q->len);
	return req_submit(c, q, user_data, destroy);
}

int lradio_client_read(struct lradio_client *c, uint16_t handle, lradio_read_cb cb,
                       void *user_data, lradio_destroy_fn destroy)
{
	int r = check_state(c);
	if (r < 0)
		return r;
	struct req *q = req_new(c, LRADIO_T_READ_REQ, LRADIO_HDR_LEN + 2);
	if (!q)
		return -ENOMEM;
	q->cb.read = cb;
	r = lradio_enc_read_req(q->frame, q->len, q->wire_id, handle);
	assert(r == (int)q->len);
	return req_submit(c, q, user_data, destroy);
}

int lradio_client_write(struct lradio_client *c, uint16_t handle, const uint8_t *val,
                        size_t len, lradio_status_cb cb, void *user_data,
                        lradio_destroy_fn destroy)
{
	int r = check_state(c);
	if (r < 0)
		return r;
	if (len > LRADIO_VALUE_MAX)
		return -EMSGSIZE;
	if (len && !val)
		return -EINVAL;
	struct req *q = req_new(c, LRADIO_T_WRITE_REQ, LRADIO_HDR_LEN + 2 + len);
	if (!q)
		return -ENOMEM;
	q->cb.status = cb;
	r = lradio_enc_write_req(q->frame, q->len, q->wire_id, handle, val, len);
	assert(r == (int)q->len);
	return req_submit(c, q, user_data, destroy);
}

int lradio_client_write_cccd(struct lradio_client *c, uint16_t handle, uint16_t value,
                             lradio_status_cb cb, void *user_data, lradio_destroy_fn destroy)
{
	int r = check_state(c);
	if (r < 0)
		return r;
	struct req *q = req_new(c, LRADIO_T_CCCD_WRITE_REQ, LRADIO_HDR_LEN + 4);
	if (!q)
		return -ENOMEM;
	q->cb.status = cb;
	r = lradio_enc_cccd_req(q->frame, q->len, q->wire_id, handle, value);
	assert(r == (int)q->len);
	return req_submit(c, q, user_data, destroy);
}

int lradio_client_cancel(struct lradio_client *c, int id)
{
	struct req *prev = NULL;
	for (struct req *q = c->head; q; prev = q, q = q->next) {
		if (q->id != id)
			continue;
		if (q->cancelled)
			return -ENOENT;
		client_ref(c);
		if (q->sent) {
			/* Stays at the head until its response (or timeout). */
			req_fail(c, q, -ECANCELED);
		} else {
			if (prev)
				prev->next = q->next;
			else
				c->head = q->next;
			if (c->tail == q)
				c->tail = prev;
			req_fail(c, q, -ECANCELED);
			req_free(q);
		}
		client_unref(c);
		return 0;
	}
	return -ENOENT;
}

int lradio_client_find_handle(const struct lradio_client *c, const char *uuid,
                              uint16_t *ret_handle)
{
	uint8_t u[16];
	if (lradio_uuid_parse(uuid, u) < 0)
		return -EINVAL;
	if (!c->discovered)
		return -ENODATA;
	for (size_t i = 0; i < c->n_attrs; i++)
		if (c->attrs[i].kind == LRADIO_ATTR_CHARACTERISTIC &&
		    memcmp(c->attrs[i].uuid, u, 16) == 0) {
			*ret_handle = c->attrs[i].handle;
			return 0;
		}
	return -ENOENT;
}

int lradio_client_props(const struct lradio_client *c, uint16_t handle)
{
	for (size_t i = 0; i < c->n_attrs; i++)
		if (c->attrs[i].kind == LRADIO_ATTR_CHARACTERISTIC && c->attrs[i].handle == handle)
			return c->attrs[i].props;
	return -ENOENT;
}

uint16_t lradio_client_mtu(const struct lradio_client *c)
{
	return c->mtu;
}
