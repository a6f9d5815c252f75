/* SPDX-License-Identifier: MIT */
/*
 * Simulator backend: pens are the simulator's local radio (Unix
 * SOCK_SEQPACKET sockets DIR/<serial>.sock with their advertisement in
 * DIR/<serial>.adv). A pen is in range while both files exist; the directory
 * is watched with inotify, so appearing and vanishing pens are reported
 * without polling. The device address is the file stem (the serial).
 */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lradio.h"
#include "transport.h"

enum sim_req_kind {
	SIM_REQ_CONNECT,
	SIM_REQ_MTU,
	SIM_REQ_DISCOVER,
	SIM_REQ_READ,
	SIM_REQ_STATUS,
};

struct sim_tp;
struct sim_link;

struct sim_req {
	struct sim_req *next, **pprev;
	struct sim_tp *tp;
	struct sim_link *link;
	unsigned id;
	int lid; /* lradio's id, 0 before it was queued */
	enum sim_req_kind kind;
	union {
		transport_status_fn status;
		transport_mtu_fn mtu;
		transport_discover_fn discover;
		transport_read_fn read;
	} cb;
	void *user_data;
	transport_destroy_fn destroy;
	bool cancelled;
};

struct sim_link {
	struct sim_link *next;
	struct sim_tp *tp;
	struct lradio_client *c;
	bool connected;
	char addr[TRANSPORT_ADDR_MAX];
};

struct sim_dev {
	struct sim_dev *next;
	struct lradio_adv adv;
	char addr[TRANSPORT_ADDR_MAX];
};

struct sim_tp {
	struct transport *t;
	sd_event *ev;
	char dir[PATH_MAX];
	int ifd;
	sd_event_source *io;
	sd_event_source *reaper; /* frees dropped clients outside their callbacks */
	struct lradio_client **graveyard;
	size_t n_graveyard, cap_graveyard;
	struct sim_dev *devs;
	struct sim_link *links;
	struct sim_req *reqs;
	unsigned next_id;
	uint64_t timeout_usec;
};

/* ---- requests -------------------------------------------------------- */

static struct sim_req *req_new(struct sim_tp *tp, struct sim_link *link, enum sim_req_kind kind,
			       void *user_data, transport_destroy_fn destroy)
{
	struct sim_req *q = calloc(1, sizeof(*q));

	if (!q)
		return NULL;
	q->tp = tp;
	q->link = link;
	q->kind = kind;
	q->user_data = user_data;
	q->destroy = destroy;
	do
		q->id = ++tp->next_id;
	while (q->id == 0);
	q->next = tp->reqs;
	if (tp->reqs)
		tp->reqs->pprev = &q->next;
	q->pprev = &tp->reqs;
	tp->reqs = q;
	return q;
}

static void req_unlink(struct sim_req *q)
{
	if (!q->pprev)
		return;
	*q->pprev = q->next;
	if (q->next)
		q->next->pprev = q->pprev;
	q->pprev = NULL;
	q->next = NULL;
}

/* lradio's destroy: the request is finished, whatever happened. */
static void req_destroy(void *user_data)
{
	struct sim_req *q = user_data;

	req_unlink(q);
	if (q->destroy)
		q->destroy(q->user_data);
	free(q);
}

/* A request lradio never accepted: release it without calling back. */
static unsigned req_fail(struct sim_req *q)
{
	q->destroy = NULL;
	req_destroy(q);
	return 0;
}

static struct sim_req *req_find(struct sim_tp *tp, unsigned id)
{
	for (struct sim_req *q = tp->reqs; q; q = q->next)
		if (q->id == id)
			return q;
	return NULL;
}

/* ---- links ----------------------------------------------------------- */

static int reaper_cb(sd_event_source *s, void *userdata)
{
	struct sim_tp *tp = userdata;

	while (tp->n_graveyard > 0)
		lradio_client_free(tp->graveyard[--tp->n_graveyard]);
	return sd_event_source_set_enabled(s, SD_EVENT_OFF);
}

static struct sim_link *link_find(struct sim_tp *tp, const char *addr)
{
	for (struct sim_link *l = tp->links; l; l = l->next)
		if (strcmp(l->addr, addr) == 0)
			return l;
	return NULL;
}

/* Cancels the link's requests (no callbacks) and retires its client. The
 * client is freed from a deferred source: we may be inside its callback. */
static void link_drop(struct sim_link *l)
{
	struct sim_tp *tp = l->tp;
	struct sim_link **pp;

	for (struct sim_req *q = tp->reqs; q; q = q->next)
		if (q->link == l) {
			q->cancelled = true;
			q->link = NULL;
		}
	if (l->c) {
		lradio_client_set_value_handler(l->c, NULL, NULL);
		lradio_client_set_disconnect_handler(l->c, NULL, NULL);
		if (l->connected || lradio_client_connected(l->c))
			lradio_client_disconnect(l->c);
		if (tp->n_graveyard == tp->cap_graveyard) {
			size_t cap = tp->cap_graveyard ? tp->cap_graveyard * 2 : 8;
			struct lradio_client **g = realloc(tp->graveyard, cap * sizeof(*g));

			if (!g) {
				/* Out of memory: leak rather than free under a callback. */
				l->c = NULL;
				goto unlink;
			}
			tp->graveyard = g;
			tp->cap_graveyard = cap;
		}
		tp->graveyard[tp->n_graveyard++] = l->c;
		l->c = NULL;
		(void)sd_event_source_set_enabled(tp->reaper, SD_EVENT_ONESHOT);
	}
unlink:
	for (pp = &tp->links; *pp; pp = &(*pp)->next)
		if (*pp == l) {
			*pp = l->next;
			break;
		}
	free(l);
}

static void on_value(struct lradio_client *c, uint16_t handle, bool indication,
		     const uint8_t *val, size_t len, void *user_data)
{
	struct sim_link *l = user_data;
	struct transport_event ev = {
		.type = TRANSPORT_EVENT_VALUE,
		.addr = l->addr,
		.u.value = { .handle = handle, .indication = indication, .val = val, .len = len },
	};

	transport_emit(l->tp->t, &ev);
}

static void on_disconnect(struct lradio_client *c, int reason, void *user_data)
{
	struct sim_link *l = user_data;
	struct sim_tp *tp = l->tp;
	char addr[TRANSPORT_ADDR_MAX];
	struct transport_event ev = { .type = TRANSPORT_EVENT_DISCONNECTED };

	snprintf(addr, sizeof(addr), "%s", l->addr);
	link_drop(l);
	ev.addr = addr;
	ev.u.disconnected.reason = reason;
	ev.u.disconnected.cls = transport_err_class(reason);
	transport_emit(tp->t, &ev);
}

/* ---- lradio trampolines ---------------------------------------------- */

static void connect_done(struct lradio_client *c, int err, const struct lradio_hello *hello,
			 void *user_data)
{
	struct sim_req *q = user_data;
	struct sim_link *l = q->link;
	struct sim_tp *tp = q->tp;

	if (q->cancelled)
		return;
	if (err == -EBUSY)
		err = -ECONNREFUSED;
	if (err < 0) {
		if (l)
			link_drop(l);
		q->cb.status(err, 0, q->user_data);
		return;
	}
	l->connected = true;
	{
		struct transport_event ev = { .type = TRANSPORT_EVENT_CONNECTED, .addr = l->addr };

		transport_emit(tp->t, &ev);
	}
	/* The sink may have dropped the link; the request stands regardless. */
	if (!q->cancelled)
		q->cb.status(0, 0, q->user_data);
}

static void mtu_done(struct lradio_client *c, int err, uint16_t mtu, void *user_data)
{
	struct sim_req *q = user_data;

	if (!q->cancelled)
		q->cb.mtu(err, err < 0 ? 0 : mtu, q->user_data);
}

static void lower(char *s)
{
	for (; *s; s++)
		*s = (char)tolower((unsigned char)*s);
}

static void discover_done(struct lradio_client *c, int err, const struct lradio_attr *attrs,
			  size_t n, void *user_data)
{
	struct sim_req *q = user_data;
	struct transport_chr *chrs = NULL;
	char svc[TRANSPORT_UUID_STR_LEN + 1] = "";
	size_t k = 0;

	if (q->cancelled)
		return;
	if (err < 0) {
		q->cb.discover(err, NULL, 0, q->user_data);
		return;
	}
	chrs = calloc(n ? n : 1, sizeof(*chrs));
	if (!chrs) {
		q->cb.discover(-ENOMEM, NULL, 0, q->user_data);
		return;
	}
	for (size_t i = 0; i < n; i++) {
		if (attrs[i].kind == LRADIO_ATTR_SERVICE) {
			lradio_uuid_format(attrs[i].uuid, svc);
			lower(svc);
			continue;
		}
		if (attrs[i].kind != LRADIO_ATTR_CHARACTERISTIC)
			continue;
		chrs[k].handle = attrs[i].handle;
		chrs[k].props = (uint8_t)(((attrs[i].props & LRADIO_PROP_READ) ? TRANSPORT_PROP_READ : 0) |
					  ((attrs[i].props & LRADIO_PROP_WRITE) ? TRANSPORT_PROP_WRITE : 0) |
					  ((attrs[i].props & LRADIO_PROP_NOTIFY) ? TRANSPORT_PROP_NOTIFY : 0) |
					  ((attrs[i].props & LRADIO_PROP_INDICATE) ? TRANSPORT_PROP_INDICATE
										   : 0));
		lradio_uuid_format(attrs[i].uuid, chrs[k].uuid);
		lower(chrs[k].uuid);
		memcpy(chrs[k].service_uuid, svc, sizeof(svc));
		k++;
	}
	q->cb.discover(0, chrs, k, q->user_data);
	free(chrs);
}

static void read_done(struct lradio_client *c, int err, uint8_t att_err, const uint8_t *val,
		      size_t len, void *user_data)
{
	struct sim_req *q = user_data;

	if (!q->cancelled)
		q->cb.read(err, att_err, err < 0 ? NULL : val, err < 0 ? 0 : len, q->user_data);
}

static void status_done(struct lradio_client *c, int err, uint8_t att_err, void *user_data)
{
	struct sim_req *q = user_data;

	if (!q->cancelled)
		q->cb.status(err, att_err, q->user_data);
}

/* ---- ops ------------------------------------------------------------- */

static struct lradio_client *connected_client(struct sim_tp *tp, const char *addr,
					      struct sim_link **ret_link)
{
	struct sim_link *l = link_find(tp, addr);

	if (!l || !l->connected || !l->c)
		return NULL;
	*ret_link = l;
	return l->c;
}

static unsigned sim_connect(void *priv, const char *addr, transport_status_fn cb, void *user_data,
			    transport_destroy_fn destroy)
{
	struct sim_tp *tp = priv;
	char path[PATH_MAX + 8];
	struct sim_link *l;
	struct sim_req *q;
	int r;

	if (!cb || !lradio_serial_valid(addr) || link_find(tp, addr))
		return 0;
	r = snprintf(path, sizeof(path), "%s/%s.sock", tp->dir, addr);
	if (r < 0 || (size_t)r >= sizeof(path))
		return 0;
	l = calloc(1, sizeof(*l));
	if (!l)
		return 0;
	l->tp = tp;
	snprintf(l->addr, sizeof(l->addr), "%s", addr);
	if (lradio_client_new(tp->ev, &l->c) < 0) {
		free(l);
		return 0;
	}
	l->next = tp->links;
	tp->links = l;
	if (tp->timeout_usec)
		lradio_client_set_timeout(l->c, tp->timeout_usec);
	lradio_client_set_value_handler(l->c, on_value, l);
	lradio_client_set_disconnect_handler(l->c, on_disconnect, l);

	q = req_new(tp, l, SIM_REQ_CONNECT, user_data, destroy);
	if (!q) {
		link_drop(l);
		return 0;
	}
	q->cb.status = cb;
	r = lradio_client_connect(l->c, path, connect_done, q, req_destroy);
	if (r < 0) {
		link_drop(l);
		return req_fail(q);
	}
	q->lid = r;
	return q->id;
}

static void sim_disconnect(void *priv, const char *addr)
{
	struct sim_link *l = link_find(priv, addr);

	if (l)
		link_drop(l);
}

static unsigned sim_exchange_mtu(void *priv, const char *addr, uint16_t mtu, transport_mtu_fn cb,
				 void *user_data, transport_destroy_fn destroy)
{
	struct sim_tp *tp = priv;
	struct sim_link *l;
	struct lradio_client *c = connected_client(tp, addr, &l);
	struct sim_req *q;
	int r;

	if (!c || !cb)
		return 0;
	q = req_new(tp, l, SIM_REQ_MTU, user_data, destroy);
	if (!q)
		return 0;
	q->cb.mtu = cb;
	r = lradio_client_exchange_mtu(c, mtu, mtu_done, q, req_destroy);
	if (r < 0)
		return req_fail(q);
	q->lid = r;
	return q->id;
}

static unsigned sim_discover(void *priv, const char *addr, transport_discover_fn cb,
			     void *user_data, transport_destroy_fn destroy)
{
	struct sim_tp *tp = priv;
	struct sim_link *l;
	struct lradio_client *c = connected_client(tp, addr, &l);
	struct sim_req *q;
	int r;

	if (!c || !cb)
		return 0;
	q = req_new(tp, l, SIM_REQ_DISCOVER, user_data, destroy);
	if (!q)
		return 0;
	q->cb.discover = cb;
	r = lradio_client_discover(c, discover_done, q, req_destroy);
	if (r < 0)
		return req_fail(q);
	q->lid = r;
	return q->id;
}

static unsigned sim_read(void *priv, const char *addr, uint16_t handle, transport_read_fn cb,
			 void *user_data, transport_destroy_fn destroy)
{
	struct sim_tp *tp = priv;
	struct sim_link *l;
	struct lradio_client *c = connected_client(tp, addr, &l);
	struct sim_req *q;
	int r;

	if (!c || !cb)
		return 0;
	q = req_new(tp, l, SIM_REQ_READ, user_data, destroy);
	if (!q)
		return 0;
	q->cb.read = cb;
	r = lradio_client_read(c, handle, read_done, q, req_destroy);
	if (r < 0)
		return req_fail(q);
	q->lid = r;
	return q->id;
}

static unsigned sim_write(void *priv, const char *addr, uint16_t handle, const uint8_t *val,
			  size_t len, transport_status_fn cb, void *user_data,
			  transport_destroy_fn destroy)
{
	struct sim_tp *tp = priv;
	struct sim_link *l;
	struct lradio_client *c = connected_client(tp, addr, &l);
	struct sim_req *q;
	int r;

	if (!c || !cb)
		return 0;
	q = req_new(tp, l, SIM_REQ_STATUS, user_data, destroy);
	if (!q)
		return 0;
	q->cb.status = cb;
	r = lradio_client_write(c, handle, val, len, status_done, q, req_destroy);
	if (r < 0)
		return req_fail(q);
	q->lid = r;
	return q->id;
}

static unsigned sim_subscribe(void *priv, const char *addr, uint16_t handle, uint16_t value,
			      transport_status_fn cb, void *user_data, transport_destroy_fn destroy)
{
	struct sim_tp *tp = priv;
	struct sim_link *l;
	struct lradio_client *c = connected_client(tp, addr, &l);
	struct sim_req *q;
	int r;

	if (!c || !cb)
		return 0;
	q = req_new(tp, l, SIM_REQ_STATUS, user_data, destroy);
	if (!q)
		return 0;
	q->cb.status = cb;
	r = lradio_client_write_cccd(c, handle, value, status_done, q, req_destroy);
	if (r < 0)
		return req_fail(q);
	q->lid = r;
	return q->id;
}

static int sim_cancel(void *priv, unsigned id)
{
	struct sim_req *q = req_find(priv, id);

	if (!q || q->cancelled)
		return -ENOENT;
	q->cancelled = true;
	if (q->kind == SIM_REQ_CONNECT && q->link) {
		/* A half-open link is of no use to anyone. */
		link_drop(q->link);
		return 0;
	}
	if (q->link && q->link->c && q->lid > 0)
		(void)lradio_client_cancel(q->link->c, q->lid);
	return 0;
}

static uint16_t sim_mtu(void *priv, const char *addr)
{
	struct sim_link *l;
	struct lradio_client *c = connected_client(priv, addr, &l);

	return c ? lradio_client_mtu(c) : 0;
}

/* ---- discovery ------------------------------------------------------- */

static struct sim_dev *dev_find(struct sim_tp *tp, const char *addr)
{
	for (struct sim_dev *d = tp->devs; d; d = d->next)
		if (strcmp(d->addr, addr) == 0)
			return d;
	return NULL;
}

static int read_adv(struct sim_tp *tp, const char *addr, struct lradio_adv *ret)
{
	char path[PATH_MAX + 8], text[1024];
	struct stat st;
	ssize_t n;
	int fd, r;

	r = snprintf(path, sizeof(path), "%s/%s.sock", tp->dir, addr);
	if (r < 0 || (size_t)r >= sizeof(path))
		return -ENAMETOOLONG;
	if (stat(path, &st) < 0)
		return -errno;
	if (!S_ISSOCK(st.st_mode))
		return -ENOTSOCK;
	snprintf(path, sizeof(path), "%s/%s.adv", tp->dir, addr);
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0)
		return -errno;
	n = read(fd, text, sizeof(text));
	r = n < 0 ? -errno : 0;
	close(fd);
	if (r < 0)
		return r;
	if ((size_t)n >= sizeof(text))
		return -EMSGSIZE;
	return lradio_adv_parse(text, (size_t)n, ret);
}

static void emit_found(struct sim_tp *tp, const struct sim_dev *d)
{
	const char *uuids[1] = { d->adv.service_uuid };
	struct transport_event ev = {
		.type = TRANSPORT_EVENT_DEVICE_FOUND,
		.addr = d->addr,
		.u.found = {
			.serial = d->adv.serial,
			.name = d->adv.name,
			.rssi = d->adv.rssi,
			.n_uuids = d->adv.service_uuid[0] ? 1 : 0,
			.uuids = uuids,
		},
	};

	transport_emit(tp->t, &ev);
}

/* Re-examines one pen's files and reports what changed. */
static void refresh(struct sim_tp *tp, const char *addr)
{
	struct sim_dev *d = dev_find(tp, addr);
	struct lradio_adv adv;
	int r;

	if (!lradio_serial_valid(addr))
		return;
	r = read_adv(tp, addr, &adv);
	if (r < 0) {
		struct transport_event ev = { .type = TRANSPORT_EVENT_DEVICE_LOST };
		char copy[TRANSPORT_ADDR_MAX];
		struct sim_dev **pp;

		if (!d)
			return;
		for (pp = &tp->devs; *pp != d; pp = &(*pp)->next)
			;
		*pp = d->next;
		snprintf(copy, sizeof(copy), "%s", d->addr);
		free(d);
		ev.addr = copy;
		transport_emit(tp->t, &ev);
		return;
	}
	lower(adv.service_uuid);
	if (d && memcmp(&d->adv, &adv, sizeof(adv)) == 0)
		return;
	if (!d) {
		d = calloc(1, sizeof(*d));
		if (!d)
			return;
		snprintf(d->addr, sizeof(d->addr), "%s", addr);
		d->next = tp->devs;
		tp->devs = d;
	}
	d->adv = adv;
	emit_found(tp, d);
}

/* "SERIAL.sock" or "SERIAL.adv" -> "SERIAL"; false for anything else. */
static bool stem_of(const char *name, char *out, size_t size)
{
	size_t n = strlen(name);
	const char *ext;

	if (n > 5 && (strcmp(name + n - 5, ".sock") == 0))
		ext = name + n - 5;
	else if (n > 4 && strcmp(name + n - 4, ".adv") == 0)
		ext = name + n - 4;
	else
		return false;
	if ((size_t)(ext - name) >= size)
		return false;
	memcpy(out, name, (size_t)(ext - name));
	out[ext - name] = '\0';
	return true;
}

static void rescan(struct sim_tp *tp)
{
	char stem[TRANSPORT_ADDR_MAX];
	struct dirent *de;
	DIR *dir = opendir(tp->dir);

	if (dir) {
		while ((de = readdir(dir)))
			if (stem_of(de->d_name, stem, sizeof(stem)))
				refresh(tp, stem);
		closedir(dir);
	}
	/* Pens whose files went while we were not looking. */
	for (struct sim_dev *d = tp->devs, *next; d; d = next) {
		next = d->next;
		snprintf(stem, sizeof(stem), "%s", d->addr);
		refresh(tp, stem);
	}
}

static int inotify_cb(sd_event_source *s, int fd, uint32_t revents, void *userdata)
{
	struct sim_tp *tp = userdata;
	char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
	char stem[TRANSPORT_ADDR_MAX];
	bool overflow = false;

	for (;;) {
		ssize_t n = read(fd, buf, sizeof(buf));

		if (n < 0) {
			if (errno == EINTR)
				continue;
			break; /* EAGAIN: drained */
		}
		if (n == 0)
			break;
		for (char *p = buf; p < buf + n;) {
			const struct inotify_event *ie = (const struct inotify_event *)p;

			if (ie->mask & (IN_Q_OVERFLOW | IN_IGNORED | IN_DELETE_SELF | IN_MOVE_SELF))
				overflow = true;
			else if (ie->len > 0 && stem_of(ie->name, stem, sizeof(stem)))
				refresh(tp, stem);
			p += sizeof(*ie) + ie->len;
		}
	}
	if (overflow)
		rescan(tp);
	return 0;
}

static int sim_scan_start(void *priv)
{
	struct sim_tp *tp = priv;
	int r;

	if (tp->io)
		return 0;
	if (mkdir(tp->dir, 0700) < 0 && errno != EEXIST)
		return -errno;
	tp->ifd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	if (tp->ifd < 0)
		return -errno;
	if (inotify_add_watch(tp->ifd, tp->dir,
			      IN_CREATE | IN_DELETE | IN_MOVED_TO | IN_MOVED_FROM | IN_CLOSE_WRITE |
				      IN_ATTRIB | IN_DELETE_SELF | IN_MOVE_SELF) < 0) {
		r = -errno;
		goto fail;
	}
	r = sd_event_add_io(tp->ev, &tp->io, tp->ifd, EPOLLIN, inotify_cb, tp);
	if (r < 0)
		goto fail;
	rescan(tp);
	return 0;
fail:
	close(tp->ifd);
	tp->ifd = -1;
	return r;
}

static void sim_scan_stop(void *priv)
{
	struct sim_tp *tp = priv;

	tp->io = sd_event_source_disable_unref(tp->io);
	if (tp->ifd >= 0)
		close(tp->ifd);
	tp->ifd = -1;
	while (tp->devs) {
		struct sim_dev *d = tp->devs;

		tp->devs = d->next;
		free(d);
	}
}

/* ---- lifecycle ------------------------------------------------------- */

static void sim_deinit(void *priv)
{
	struct sim_tp *tp = priv;

	if (!tp)
		return;
	sim_scan_stop(tp);
	while (tp->links)
		link_drop(tp->links);
	/* Requests of dropped links finish when their clients are freed. */
	while (tp->n_graveyard > 0)
		lradio_client_free(tp->graveyard[--tp->n_graveyard]);
	free(tp->graveyard);
	tp->reaper = sd_event_source_disable_unref(tp->reaper);
	sd_event_unref(tp->ev);
	free(tp);
}

static int sim_init(struct transport *t, sd_event *ev, const struct transport_config *cfg,
		    void **ret_priv)
{
	struct sim_tp *tp = calloc(1, sizeof(*tp));
	int r;

	if (!tp)
		return -ENOMEM;
	tp->t = t;
	tp->ifd = -1;
	tp->ev = sd_event_ref(ev);
	tp->timeout_usec = cfg->request_timeout_usec;
	if (cfg->sim_dir && cfg->sim_dir[0]) {
		r = snprintf(tp->dir, sizeof(tp->dir), "%s", cfg->sim_dir);
		r = r < 0 || (size_t)r >= sizeof(tp->dir) ? -ENAMETOOLONG : 0;
	} else {
		r = lradio_default_dir(tp->dir, sizeof(tp->dir));
	}
	if (r < 0)
		goto fail;
	r = sd_event_add_defer(ev, &tp->reaper, reaper_cb, tp);
	if (r < 0)
		goto fail;
	r = sd_event_source_set_enabled(tp->reaper, SD_EVENT_OFF);
	if (r < 0)
		goto fail;
	*ret_priv = tp;
	return 0;
fail:
	sim_deinit(tp);
	return r;
}

const struct transport_ops transport_sim_ops = {
	.name = "sim",
	.desc = "simulated pens over the local radio (Unix sockets)",
	.init = sim_init,
	.deinit = sim_deinit,
	.scan_start = sim_scan_start,
	.scan_stop = sim_scan_stop,
	.connect = sim_connect,
	.disconnect = sim_disconnect,
	.exchange_mtu = sim_exchange_mtu,
	.discover = sim_discover,
	.read = sim_read,
	.write = sim_write,
	.subscribe = sim_subscribe,
	.cancel = sim_cancel,
	.mtu = sim_mtu,
};
