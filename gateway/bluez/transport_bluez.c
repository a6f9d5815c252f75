/* SPDX-License-Identifier: MIT */
/*
 * BlueZ backend: see transport_bluez.h. One struct bz per transport; the
 * object cache (bluez_cache.c) mirrors bluetoothd's objects; links and
 * requests follow the simulator backend's semantics (transport_sim.c).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "bluez-internal.h"
#include "dbus_loop.h"
#include "needlelink/common.h"
#include "transport_bluez.h"

/* Every NeedleLink characteristic must exist before a pen is resolved. */
static const char *const nl_chr_uuids[] = {
	NL_UUID_FEATURE, NL_UUID_LIVE_STATUS,   NL_UUID_RECORD,
	NL_UUID_RACP,    NL_UUID_PEN_CP,        NL_UUID_ACTIVE_LIMITS,
	NL_UUID_PEN_STATUS, NL_UUID_CARTRIDGE,
};

enum bz_link_state {
	BZ_LINK_PAIRING,
	BZ_LINK_CONNECTING,
	BZ_LINK_RESOLVING,
	BZ_LINK_UP,
};

enum bz_req_kind {
	BZ_REQ_CONNECT,
	BZ_REQ_MTU,
	BZ_REQ_DISCOVER,
	BZ_REQ_READ,
	BZ_REQ_WRITE,
	BZ_REQ_SUBSCRIBE,
};

enum bz_agent_kind {
	BZ_AGENT_PASSKEY,
	BZ_AGENT_CONFIRM,
};

struct bz;
struct bz_link;

struct bz_req {
	struct bz_req *next;
	struct bz *bz;
	struct bz_link *link;
	unsigned id;
	enum bz_req_kind kind;
	union {
		transport_status_fn status;
		transport_mtu_fn mtu;
		transport_discover_fn discover;
		transport_read_fn read;
	} cb;
	void *user_data;
	transport_destroy_fn destroy;
	uint64_t call;          /* pending D-Bus call */
	sd_event_source *defer; /* deferred completion or start */
	bool done;              /* callback running: not cancellable */
	char chr[TRANSPORT_ADDR_MAX];
	uint16_t handle, value;
	bool acquire; /* subscribe: AcquireNotify tried first */
};

struct bz_sub {
	struct bz_sub *next;
	struct bz_link *link;
	char chr[TRANSPORT_ADDR_MAX];
	uint16_t handle;
	bool indication;
	int fd; /* AcquireNotify, else -1 (StartNotify) */
	sd_event_source *io;
};

struct bz_link {
	struct bz_link *next;
	struct bz *bz;
	char addr[TRANSPORT_ADDR_MAX];
	enum bz_link_state state;
	struct bz_req *conn;
	sd_event_source *timer;
	bool we_connected;
	struct bz_sub *subs;
};

struct bz_seen {
	struct bz_seen *next;
	char addr[TRANSPORT_ADDR_MAX];
};

/* The local name a device advertised while not connected: its serial.
 * BlueZ's Device1.Name also takes the GAP Device Name read once connected,
 * which need not be the serial (a pen on a stock BlueZ peripheral shows the
 * host's name); so the advertised one is kept, per device object. */
struct bz_advname {
	struct bz_advname *next;
	char path[TRANSPORT_ADDR_MAX];
	char serial[TRANSPORT_SERIAL_MAX];
};

struct bz_agent_req {
	struct bz_agent_req *next;
	struct bz *bz;
	enum bz_agent_kind kind;
	DBusMessage *msg;
	char dev[TRANSPORT_ADDR_MAX];
	char serial[TRANSPORT_SERIAL_MAX];
	sd_event_source *timer;
};

struct bz_armed {
	struct bz_armed *next;
	char serial[TRANSPORT_SERIAL_MAX];
	uint32_t passkey;
	uint64_t expires;
};

struct bz {
	struct bz *next_instance;
	struct transport *t;
	sd_event *ev;
	struct nl_dbus *bus;
	bool bus_ready, filter_added, path_registered;
	uint64_t name_watch;
	bool bluez_up;
	char owner[256]; /* unique name of org.bluez's owner, "" none */
	char cfg_adapter[32];
	char adapter[TRANSPORT_ADDR_MAX]; /* chosen Adapter1 path, "" none */
	bool adapter_powered;
	struct bz_cache cache;
	uint64_t gmo_call, agent_call, scan_call;
	bool agent_ok, want_scan, scan_active;
	sd_event_source *retry, *reopen;
	struct bz_link *links;
	struct bz_req *reqs;
	unsigned next_id;
	int req_timeout_ms;
	struct bz_seen *seen;
	struct bz_agent_req *agent_reqs;
	struct bz_armed *armed;
	bool just_works;
	transport_bluez_notice_fn notice_fn;
	void *notice_data;
	transport_bluez_gate_fn gate_fn;
	void *gate_data;
	struct bz_advname *advnames;
};

static struct bz *instances;

static void bluez_down(struct bz *bz);
static void connect_step(struct bz_link *l);
static void check_resolve(struct bz_link *l);
static void scan_begin(struct bz *bz);
static void retry_arm(struct bz *bz);

/* ---- small helpers -------------------------------------------------- */

static uint64_t now_usec(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static void notice(struct bz *bz, enum transport_bluez_notice_type type, const char *addr,
		   const char *serial, const char *detail, uint32_t passkey, int err)
{
	struct transport_bluez_notice n = {
		.type = type,
		.addr = addr ? addr : "",
		.serial = serial ? serial : "",
		.detail = detail ? detail : "",
		.passkey = passkey,
		.err = err,
	};

	if (bz->notice_fn)
		bz->notice_fn(&n, bz->notice_data);
}

static const char *dev_serial(const struct bz_obj *d)
{
	if (d && d->name && d->name[0])
		return d->name;
	return "";
}

static bool is_bonded(const struct bz_obj *d);

/* The serial a device advertised (see struct bz_advname), learnt from its
 * name while it advertises unconnected; else its name as BlueZ has it. */
static const char *adv_serial(struct bz *bz, const struct bz_obj *d)
{
	struct bz_advname *a;

	for (a = bz->advnames; a; a = a->next)
		if (strcmp(a->path, d->path) == 0)
			break;
	if (d->has_rssi && !d->connected && d->name && d->name[0] &&
	    strlen(d->name) < TRANSPORT_SERIAL_MAX && strlen(d->path) < TRANSPORT_ADDR_MAX) {
		if (!a && (a = calloc(1, sizeof(*a)))) {
			snprintf(a->path, sizeof(a->path), "%s", d->path);
			a->next = bz->advnames;
			bz->advnames = a;
		}
		if (a)
			snprintf(a->serial, sizeof(a->serial), "%s", d->name);
	}
	return a ? a->serial : dev_serial(d);
}

/* The owner's identity gate: true when the device may be used. */
static bool gate_ok(struct bz *bz, const struct bz_obj *d, bool bonded)
{
	if (!bz->gate_fn)
		return true;
	return bz->gate_fn(adv_serial(bz, d), d->address, bonded, bz->gate_data) == 0;
}

static DBusMessage *bz_method(const char *path, const char *iface, const char *member)
{
	return dbus_message_new_method_call(BZ_SERVICE, path, iface, member);
}

/* Sends m (unreferenced here) with reply; 0 on failure. */
static uint64_t bz_send(struct bz *bz, DBusMessage *m, int timeout_ms, nl_dbus_reply_fn fn,
			void *ud)
{
	uint64_t id;

	if (!m)
		return 0;
	id = nl_dbus_call(bz->bus, m, timeout_ms, fn, ud, NULL);
	dbus_message_unref(m);
	return id;
}

static bool append_empty_dict(DBusMessageIter *it)
{
	DBusMessageIter d;

	return dbus_message_iter_open_container(it, DBUS_TYPE_ARRAY, "{sv}", &d) &&
	       dbus_message_iter_close_container(it, &d);
}

static bool append_dict_str(DBusMessageIter *d, const char *key, const char *val)
{
	DBusMessageIter e, v;

	return dbus_message_iter_open_container(d, DBUS_TYPE_DICT_ENTRY, NULL, &e) &&
	       dbus_message_iter_append_basic(&e, DBUS_TYPE_STRING, &key) &&
	       dbus_message_iter_open_container(&e, DBUS_TYPE_VARIANT, "s", &v) &&
	       dbus_message_iter_append_basic(&v, DBUS_TYPE_STRING, &val) &&
	       dbus_message_iter_close_container(&e, &v) &&
	       dbus_message_iter_close_container(d, &e);
}

/* ---- requests -------------------------------------------------------- */

static struct bz_req *req_new(struct bz *bz, struct bz_link *l, enum bz_req_kind kind,
			      void *user_data, transport_destroy_fn destroy)
{
	struct bz_req *q = calloc(1, sizeof(*q));

	if (!q)
		return NULL;
	q->bz = bz;
	q->link = l;
	q->kind = kind;
	q->user_data = user_data;
	q->destroy = destroy;
	do
		q->id = ++bz->next_id;
	while (q->id == 0);
	q->next = bz->reqs;
	bz->reqs = q;
	return q;
}

/* Unlinks and frees q; destroy runs when run_destroy. */
static void req_free(struct bz_req *q, bool run_destroy)
{
	struct bz *bz = q->bz;

	for (struct bz_req **pp = &bz->reqs; *pp; pp = &(*pp)->next)
		if (*pp == q) {
			*pp = q->next;
			break;
		}
	if (q->call)
		(void)nl_dbus_cancel(bz->bus, q->call);
	q->defer = sd_event_source_disable_unref(q->defer);
	if (q->link && q->link->conn == q)
		q->link->conn = NULL;
	if (run_destroy && q->destroy)
		q->destroy(q->user_data);
	free(q);
}

/* A request never handed out: no callback, no destroy. */
static unsigned req_fail(struct bz_req *q)
{
	req_free(q, false);
	return 0;
}

static struct bz_req *req_find(struct bz *bz, unsigned id)
{
	for (struct bz_req *q = bz->reqs; q; q = q->next)
		if (q->id == id && !q->done)
			return q;
	return NULL;
}

/* Marks q as completing: the callback may drop links or cancel freely. */
static void req_begin_done(struct bz_req *q)
{
	q->done = true;
	q->call = 0;
	if (q->link && q->link->conn == q)
		q->link->conn = NULL;
	q->link = NULL;
}

static void finish_status(struct bz_req *q, int err, uint8_t att)
{
	req_begin_done(q);
	q->cb.status(err, err == -EREMOTEIO ? att : 0, q->user_data);
	req_free(q, true);
}

static int defer_arm(struct bz_req *q, sd_event_handler_t fn)
{
	int r = sd_event_add_defer(q->bz->ev, &q->defer, fn, q);

	if (r < 0)
		return r;
	return sd_event_source_set_enabled(q->defer, SD_EVENT_ONESHOT);
}

/* ---- links ------------------------------------------------------------- */

static struct bz_link *link_find(struct bz *bz, const char *addr)
{
	for (struct bz_link *l = bz->links; l; l = l->next)
		if (strcmp(l->addr, addr) == 0)
			return l;
	return NULL;
}

static struct bz_link *link_of_path(struct bz *bz, const char *path)
{
	for (struct bz_link *l = bz->links; l; l = l->next)
		if (strcmp(l->addr, path) == 0 || bz_path_under(path, l->addr))
			return l;
	return NULL;
}

static void sub_free(struct bz_sub *s)
{
	s->io = sd_event_source_disable_unref(s->io);
	if (s->fd >= 0)
		close(s->fd);
	free(s);
}

static void sub_remove(struct bz_link *l, struct bz_sub *s)
{
	for (struct bz_sub **pp = &l->subs; *pp; pp = &(*pp)->next)
		if (*pp == s) {
			*pp = s->next;
			break;
		}
	sub_free(s);
}

static struct bz_sub *sub_find(struct bz_link *l, const char *chr)
{
	for (struct bz_sub *s = l->subs; s; s = s->next)
		if (strcmp(s->chr, chr) == 0)
			return s;
	return NULL;
}

/* Cancels the link's requests (destroy only), closes notification fds and
 * frees the link; asks bluetoothd to disconnect when disconnect is set. */
static void link_drop(struct bz_link *l, bool disconnect)
{
	struct bz *bz = l->bz;

	for (struct bz_req *q = bz->reqs, *next; q; q = next) {
		next = q->next;
		if (q->link == l && !q->done)
			req_free(q, true);
	}
	while (l->subs) {
		struct bz_sub *s = l->subs;

		l->subs = s->next;
		sub_free(s);
	}
	l->timer = sd_event_source_disable_unref(l->timer);
	if (disconnect && bz->bluez_up) {
		/* Fire and forget, with a timeout all the same. */
		(void)bz_send(bz, bz_method(l->addr, BZ_IFACE_DEVICE, "Disconnect"),
			      TRANSPORT_BLUEZ_REQUEST_TIMEOUT_MS, NULL, NULL);
	}
	for (struct bz_link **pp = &bz->links; *pp; pp = &(*pp)->next)
		if (*pp == l) {
			*pp = l->next;
			break;
		}
	free(l);
}

/* A pending connect failed: its callback runs with err. */
static void link_fail(struct bz_link *l, int err)
{
	struct bz_req *q = l->conn;
	bool disc = l->we_connected;

	if (q)
		req_begin_done(q);
	link_drop(l, disc);
	if (q) {
		q->cb.status(err, 0, q->user_data);
		req_free(q, true);
	}
}

/* The link went away under us. */
static void link_lost(struct bz_link *l, int reason)
{
	struct transport_event ev = { .type = TRANSPORT_EVENT_DISCONNECTED };
	char addr[TRANSPORT_ADDR_MAX];
	struct bz *bz = l->bz;

	if (l->state != BZ_LINK_UP) {
		link_fail(l, reason);
		return;
	}
	snprintf(addr, sizeof(addr), "%s", l->addr);
	link_drop(l, false);
	ev.addr = addr;
	ev.u.disconnected.reason = reason;
	ev.u.disconnected.cls = transport_err_class(reason);
	transport_emit(bz->t, &ev);
}

static void all_links_lost(struct bz *bz, int reason)
{
	while (bz->links)
		link_lost(bz->links, reason);
}

/* ---- found / lost -------------------------------------------------------- */

static bool seen_has(struct bz *bz, const char *addr)
{
	for (struct bz_seen *s = bz->seen; s; s = s->next)
		if (strcmp(s->addr, addr) == 0)
			return true;
	return false;
}

static void emit_found(struct bz *bz, const struct bz_obj *d)
{
	const char *uuids[TRANSPORT_UUIDS_MAX];
	size_t n = 0;
	struct transport_event ev = { .type = TRANSPORT_EVENT_DEVICE_FOUND, .addr = d->path };

	/* The pen service first: only TRANSPORT_UUIDS_MAX fit. */
	uuids[n++] = NL_UUID_SERVICE;
	for (size_t i = 0; i < d->n_uuids && n < TRANSPORT_UUIDS_MAX; i++)
		if (strcmp(d->uuids[i], NL_UUID_SERVICE) != 0)
			uuids[n++] = d->uuids[i];
	/* The serial is the advertised local name; a bonded pen reported
	 * without an advertisement may carry a stale GAP name: none then (the
	 * pen manager reads the serial from Device Information). */
	ev.u.found.serial = d->has_rssi ? adv_serial(bz, d) : "";
	ev.u.found.name = d->alias ? d->alias : dev_serial(d);
	ev.u.found.rssi = d->has_rssi ? d->rssi : TRANSPORT_RSSI_UNKNOWN;
	ev.u.found.n_uuids = n;
	ev.u.found.uuids = uuids;
	if (!gate_ok(bz, d, is_bonded(d)))
		return;
	if (!seen_has(bz, d->path)) {
		struct bz_seen *s = calloc(1, sizeof(*s));

		if (!s)
			return;
		snprintf(s->addr, sizeof(s->addr), "%s", d->path);
		s->next = bz->seen;
		bz->seen = s;
	}
	transport_emit(bz->t, &ev);
}

static void emit_lost(struct bz *bz, const char *addr)
{
	struct transport_event ev = { .type = TRANSPORT_EVENT_DEVICE_LOST };
	char copy[TRANSPORT_ADDR_MAX];

	for (struct bz_seen **pp = &bz->seen; *pp; pp = &(*pp)->next)
		if (strcmp((*pp)->addr, addr) == 0) {
			struct bz_seen *s = *pp;

			*pp = s->next;
			snprintf(copy, sizeof(copy), "%s", s->addr);
			free(s);
			ev.addr = copy;
			transport_emit(bz->t, &ev);
			return;
		}
}

static void all_lost(struct bz *bz)
{
	while (bz->seen) {
		char addr[TRANSPORT_ADDR_MAX];

		snprintf(addr, sizeof(addr), "%s", bz->seen->addr);
		emit_lost(bz, addr);
	}
}

static bool is_pen(const struct bz *bz, const struct bz_obj *d)
{
	return (d->ifaces & BZ_DEVICE) && d->adapter && strcmp(d->adapter, bz->adapter) == 0 &&
	       bz_obj_has_uuid(d, NL_UUID_SERVICE);
}

static bool is_bonded(const struct bz_obj *d)
{
	return d->paired && (d->bonded || !d->bonded_known);
}

/* An advertisement (or a bonded pen) worth telling the pen manager. */
static void maybe_found(struct bz *bz, const struct bz_obj *d)
{
	if (!bz->want_scan || !bz->adapter_powered || !is_pen(bz, d))
		return;
	/* Bonded pens need no advertisement; others only while seen. */
	if (is_bonded(d) || d->has_rssi)
		emit_found(bz, d);
}

static void report_bonded(struct bz *bz)
{
	for (struct bz_obj *o = bz->cache.objs; o; o = o->next)
		if (is_pen(bz, o) && is_bonded(o) && bz->want_scan && bz->adapter_powered)
			emit_found(bz, o);
}

/* ---- adapter and discovery -------------------------------------------- */

static void start_discovery_reply(DBusMessage *reply, void *ud)
{
	struct bz *bz = ud;
	int r = bz_reply_errno(reply, false, NULL);
	struct bz_obj *a;

	bz->scan_call = 0;
	if (r == -EBUSY)
		r = 0; /* InProgress: already discovering for us */
	if (r < 0) {
		notice(bz, TRANSPORT_BLUEZ_NOTICE_DISCOVERING, bz->adapter, NULL, "failed", 0, r);
		retry_arm(bz);
		return;
	}
	bz->scan_active = true;
	a = bz_cache_find(&bz->cache, bz->adapter);
	if (a && a->discovering)
		notice(bz, TRANSPORT_BLUEZ_NOTICE_DISCOVERING, bz->adapter, NULL, "on", 0, 0);
}

static void filter_reply(DBusMessage *reply, void *ud)
{
	struct bz *bz = ud;
	int r = bz_reply_errno(reply, false, NULL);

	bz->scan_call = 0;
	if (r < 0) {
		notice(bz, TRANSPORT_BLUEZ_NOTICE_DISCOVERING, bz->adapter, NULL,
		       "SetDiscoveryFilter failed", 0, r);
		retry_arm(bz);
		return;
	}
	bz->scan_call = bz_send(bz, bz_method(bz->adapter, BZ_IFACE_ADAPTER, "StartDiscovery"),
				TRANSPORT_BLUEZ_REQUEST_TIMEOUT_MS, start_discovery_reply, bz);
	if (!bz->scan_call)
		retry_arm(bz);
}

static void scan_begin(struct bz *bz)
{
	DBusMessage *m;
	DBusMessageIter it, d, e, v, a;
	const char *k_uuids = "UUIDs", *svc = NL_UUID_SERVICE;

	if (!bz->want_scan || !bz->bluez_up || !bz->adapter[0] || !bz->adapter_powered ||
	    bz->scan_call || bz->scan_active)
		return;
	m = bz_method(bz->adapter, BZ_IFACE_ADAPTER, "SetDiscoveryFilter");
	if (!m)
		goto fail;
	dbus_message_iter_init_append(m, &it);
	if (!dbus_message_iter_open_container(&it, DBUS_TYPE_ARRAY, "{sv}", &d) ||
	    !dbus_message_iter_open_container(&d, DBUS_TYPE_DICT_ENTRY, NULL, &e) ||
	    !dbus_message_iter_append_basic(&e, DBUS_TYPE_STRING, &k_uuids) ||
	    !dbus_message_iter_open_container(&e, DBUS_TYPE_VARIANT, "as", &v) ||
	    !dbus_message_iter_open_container(&v, DBUS_TYPE_ARRAY, "s", &a) ||
	    !dbus_message_iter_append_basic(&a, DBUS_TYPE_STRING, &svc) ||
	    !dbus_message_iter_close_container(&v, &a) ||
	    !dbus_message_iter_close_container(&e, &v) ||
	    !dbus_message_iter_close_container(&d, &e) ||
	    !append_dict_str(&d, "Transport", "le") || !dbus_message_iter_close_container(&it, &d)) {
		dbus_message_unref(m);
		goto fail;
	}
	bz->scan_call = bz_send(bz, m, TRANSPORT_BLUEZ_REQUEST_TIMEOUT_MS, filter_reply, bz);
	if (bz->scan_call)
		return;
fail:
	retry_arm(bz);
}

static void adapter_down(struct bz *bz, int reason)
{
	bz->adapter_powered = false;
	if (bz->scan_call) {
		(void)nl_dbus_cancel(bz->bus, bz->scan_call);
		bz->scan_call = 0;
	}
	bz->scan_active = false;
	all_links_lost(bz, reason);
	all_lost(bz);
}

static void adapter_up(struct bz *bz)
{
	bz->adapter_powered = true;
	report_bonded(bz);
	scan_begin(bz);
}

/* Picks the configured adapter, else the first powered one (by path), else
 * the first one; keeps the current one while it exists. */
static void choose_adapter(struct bz *bz)
{
	struct bz_obj *cur = bz->adapter[0] ? bz_cache_find(&bz->cache, bz->adapter) : NULL;
	struct bz_obj *best = NULL;
	char want[TRANSPORT_ADDR_MAX] = "";

	if (cur && (cur->ifaces & BZ_ADAPTER)) {
		if (cur->powered && !bz->adapter_powered) {
			notice(bz, TRANSPORT_BLUEZ_NOTICE_ADAPTER_POWER, bz->adapter, NULL, "on", 0, 0);
			adapter_up(bz);
		}
		return;
	}
	if (bz->cfg_adapter[0])
		snprintf(want, sizeof(want), "/org/bluez/%s", bz->cfg_adapter);
	for (struct bz_obj *o = bz->cache.objs; o; o = o->next) {
		if (!(o->ifaces & BZ_ADAPTER))
			continue;
		if (want[0]) {
			if (strcmp(o->path, want) == 0)
				best = o;
			continue;
		}
		if (!best || (o->powered && !best->powered) ||
		    (o->powered == best->powered && strcmp(o->path, best->path) < 0))
			best = o;
	}
	if (!best) {
		if (bz->adapter[0]) {
			bz->adapter[0] = '\0';
			notice(bz, TRANSPORT_BLUEZ_NOTICE_ADAPTER_GONE, NULL, NULL, want, 0, -ENODEV);
		}
		return;
	}
	snprintf(bz->adapter, sizeof(bz->adapter), "%s", best->path);
	bz->adapter_powered = false;
	bz->scan_active = false;
	notice(bz, TRANSPORT_BLUEZ_NOTICE_ADAPTER, bz->adapter, NULL,
	       best->powered ? "powered" : "not powered", 0, 0);
	if (best->powered)
		adapter_up(bz);
}

/* ---- agent registration ------------------------------------------------ */

static void default_agent_reply(DBusMessage *reply, void *ud)
{
	struct bz *bz = ud;
	int r = bz_reply_errno(reply, false, NULL);

	bz->agent_call = 0;
	bz->agent_ok = r == 0;
	notice(bz, TRANSPORT_BLUEZ_NOTICE_AGENT, NULL, NULL,
	       r == 0 ? "registered as default" : "RequestDefaultAgent failed", 0, r);
	if (r < 0)
		retry_arm(bz);
}

static void register_agent_reply(DBusMessage *reply, void *ud)
{
	struct bz *bz = ud;
	const char *path = TRANSPORT_BLUEZ_AGENT_PATH;
	DBusMessage *m;
	int r = bz_reply_errno(reply, false, NULL);

	bz->agent_call = 0;
	if (r < 0 && r != -EEXIST) {
		notice(bz, TRANSPORT_BLUEZ_NOTICE_AGENT, NULL, NULL, "RegisterAgent failed", 0, r);
		retry_arm(bz);
		return;
	}
	m = bz_method("/org/bluez", BZ_IFACE_AGENT_MANAGER, "RequestDefaultAgent");
	if (m && !dbus_message_append_args(m, DBUS_TYPE_OBJECT_PATH, &path, DBUS_TYPE_INVALID)) {
		dbus_message_unref(m);
		m = NULL;
	}
	bz->agent_call = bz_send(bz, m, TRANSPORT_BLUEZ_REQUEST_TIMEOUT_MS, default_agent_reply, bz);
	if (!bz->agent_call)
		retry_arm(bz);
}

static void register_agent(struct bz *bz)
{
	const char *path = TRANSPORT_BLUEZ_AGENT_PATH, *cap = "KeyboardDisplay";
	DBusMessage *m;

	if (!bz->bluez_up || bz->agent_ok || bz->agent_call)
		return;
	m = bz_method("/org/bluez", BZ_IFACE_AGENT_MANAGER, "RegisterAgent");
	if (m && !dbus_message_append_args(m, DBUS_TYPE_OBJECT_PATH, &path, DBUS_TYPE_STRING, &cap,
					   DBUS_TYPE_INVALID)) {
		dbus_message_unref(m);
		m = NULL;
	}
	bz->agent_call = bz_send(bz, m, TRANSPORT_BLUEZ_REQUEST_TIMEOUT_MS, register_agent_reply, bz);
	if (!bz->agent_call)
		retry_arm(bz);
}

/* ---- agent requests ---------------------------------------------------- */

static void agent_req_free(struct bz_agent_req *a)
{
	struct bz *bz = a->bz;

	for (struct bz_agent_req **pp = &bz->agent_reqs; *pp; pp = &(*pp)->next)
		if (*pp == a) {
			*pp = a->next;
			break;
		}
	a->timer = sd_event_source_disable_unref(a->timer);
	if (a->msg)
		dbus_message_unref(a->msg);
	free(a);
}

static void agent_reply_error(struct bz *bz, DBusMessage *msg, const char *name, const char *text)
{
	DBusMessage *r = dbus_message_new_error(msg, name, text);

	if (r) {
		(void)nl_dbus_send(bz->bus, r);
		dbus_message_unref(r);
	}
}

static void agent_reply_passkey(struct bz *bz, DBusMessage *msg, uint32_t passkey)
{
	DBusMessage *r = dbus_message_new_method_return(msg);
	dbus_uint32_t v = passkey;

	if (r && dbus_message_append_args(r, DBUS_TYPE_UINT32, &v, DBUS_TYPE_INVALID))
		(void)nl_dbus_send(bz->bus, r);
	if (r)
		dbus_message_unref(r);
}

static void agent_reply_empty(struct bz *bz, DBusMessage *msg)
{
	DBusMessage *r = dbus_message_new_method_return(msg);

	if (r) {
		(void)nl_dbus_send(bz->bus, r);
		dbus_message_unref(r);
	}
}

static int agent_timeout_cb(sd_event_source *s, uint64_t usec, void *ud)
{
	struct bz_agent_req *a = ud;
	struct bz *bz = a->bz;
	char serial[TRANSPORT_SERIAL_MAX], dev[TRANSPORT_ADDR_MAX];

	snprintf(serial, sizeof(serial), "%s", a->serial);
	snprintf(dev, sizeof(dev), "%s", a->dev);
	agent_reply_error(bz, a->msg, "org.bluez.Error.Canceled", "no operator input in time");
	agent_req_free(a);
	notice(bz, TRANSPORT_BLUEZ_NOTICE_PAIRING_DONE, dev, serial, "operator input timed out", 0,
	       -ETIMEDOUT);
	return 0;
}

static struct bz_armed *armed_take(struct bz *bz, const char *serial)
{
	uint64_t now = now_usec();

	for (struct bz_armed **pp = &bz->armed; *pp;) {
		struct bz_armed *a = *pp;

		if (a->expires < now) {
			*pp = a->next;
			free(a);
			continue;
		}
		if (serial[0] && strcmp(a->serial, serial) == 0) {
			*pp = a->next;
			return a;
		}
		pp = &a->next;
	}
	return NULL;
}

static DBusHandlerResult agent_pending(struct bz *bz, DBusMessage *msg, enum bz_agent_kind kind,
				       const char *dev, const char *serial, uint32_t passkey)
{
	struct bz_agent_req *a = calloc(1, sizeof(*a));

	if (!a)
		return DBUS_HANDLER_RESULT_NEED_MEMORY;
	a->bz = bz;
	a->kind = kind;
	a->msg = dbus_message_ref(msg);
	snprintf(a->dev, sizeof(a->dev), "%s", dev);
	snprintf(a->serial, sizeof(a->serial), "%s", serial);
	if (sd_event_add_time_relative(bz->ev, &a->timer, CLOCK_MONOTONIC,
				       TRANSPORT_BLUEZ_AGENT_TIMEOUT_USEC, 0, agent_timeout_cb,
				       a) < 0) {
		dbus_message_unref(a->msg);
		free(a);
		agent_reply_error(bz, msg, "org.bluez.Error.Canceled", "out of resources");
		return DBUS_HANDLER_RESULT_HANDLED;
	}
	a->next = bz->agent_reqs;
	bz->agent_reqs = a;
	notice(bz,
	       kind == BZ_AGENT_PASSKEY ? TRANSPORT_BLUEZ_NOTICE_PASSKEY_WANTED
					: TRANSPORT_BLUEZ_NOTICE_CONFIRM_WANTED,
	       dev, serial, NULL, passkey, 0);
	return DBUS_HANDLER_RESULT_HANDLED;
}

static DBusHandlerResult agent_message(DBusConnection *c, DBusMessage *msg, void *ud)
{
	struct bz *bz = ud;
	const char *member = dbus_message_get_member(msg), *dev = NULL, *uuid = NULL;
	const struct bz_obj *d = NULL;
	dbus_uint32_t passkey = 0;
	dbus_uint16_t entered = 0;

	if (dbus_message_get_type(msg) != DBUS_MESSAGE_TYPE_METHOD_CALL || !member ||
	    !dbus_message_has_interface(msg, BZ_IFACE_AGENT))
		return DBUS_HANDLER_RESULT_NOT_YET_HANDLED;
	/* Only bluetoothd may drive the agent. */
	if (!dbus_message_get_sender(msg) || strcmp(dbus_message_get_sender(msg), bz->owner) != 0) {
		agent_reply_error(bz, msg, DBUS_ERROR_ACCESS_DENIED, "not bluetoothd");
		return DBUS_HANDLER_RESULT_HANDLED;
	}
	(void)dbus_message_get_args(msg, NULL, DBUS_TYPE_OBJECT_PATH, &dev, DBUS_TYPE_INVALID);
	if (dev)
		d = bz_cache_find(&bz->cache, dev);

	if (strcmp(member, "Release") == 0) {
		bz->agent_ok = false;
		agent_reply_empty(bz, msg);
		retry_arm(bz);
	} else if (strcmp(member, "RequestPasskey") == 0 && dev) {
		struct bz_armed *a = armed_take(bz, dev_serial(d));

		if (a) {
			agent_reply_passkey(bz, msg, a->passkey);
			notice(bz, TRANSPORT_BLUEZ_NOTICE_PAIRING_DONE, dev, dev_serial(d),
			       "passkey entered", 0, 0);
			free(a);
			return DBUS_HANDLER_RESULT_HANDLED;
		}
		return agent_pending(bz, msg, BZ_AGENT_PASSKEY, dev, dev_serial(d), 0);
	} else if (strcmp(member, "RequestConfirmation") == 0 && dev &&
		   dbus_message_get_args(msg, NULL, DBUS_TYPE_OBJECT_PATH, &dev, DBUS_TYPE_UINT32,
					 &passkey, DBUS_TYPE_INVALID)) {
		return agent_pending(bz, msg, BZ_AGENT_CONFIRM, dev, dev_serial(d), passkey);
	} else if (strcmp(member, "DisplayPasskey") == 0 && dev &&
		   dbus_message_get_args(msg, NULL, DBUS_TYPE_OBJECT_PATH, &dev, DBUS_TYPE_UINT32,
					 &passkey, DBUS_TYPE_UINT16, &entered, DBUS_TYPE_INVALID)) {
		/* The pen types what we show: tell the operator. */
		notice(bz, TRANSPORT_BLUEZ_NOTICE_CONFIRM_WANTED, dev, dev_serial(d), "display",
		       passkey, 0);
		agent_reply_empty(bz, msg);
	} else if (strcmp(member, "RequestAuthorization") == 0 && dev) {
		/* Just Works: only for pens without a display, by config. */
		if (bz->just_works) {
			agent_reply_empty(bz, msg);
		} else {
			agent_reply_error(bz, msg, "org.bluez.Error.Rejected",
					  "Just Works pairing not allowed");
		}
		notice(bz, TRANSPORT_BLUEZ_NOTICE_PAIRING_DONE, dev, dev_serial(d), "just works", 0,
		       bz->just_works ? 0 : -EPERM);
	} else if (strcmp(member, "AuthorizeService") == 0 && dev &&
		   dbus_message_get_args(msg, NULL, DBUS_TYPE_OBJECT_PATH, &dev, DBUS_TYPE_STRING,
					 &uuid, DBUS_TYPE_INVALID)) {
		if (d && is_bonded(d))
			agent_reply_empty(bz, msg);
		else
			agent_reply_error(bz, msg, "org.bluez.Error.Rejected", "not bonded");
	} else if (strcmp(member, "Cancel") == 0) {
		/* bluetoothd gave up on its request (one at a time per agent). */
		while (bz->agent_reqs) {
			char serial[TRANSPORT_SERIAL_MAX], path[TRANSPORT_ADDR_MAX];

			snprintf(serial, sizeof(serial), "%s", bz->agent_reqs->serial);
			snprintf(path, sizeof(path), "%s", bz->agent_reqs->dev);
			agent_req_free(bz->agent_reqs);
			notice(bz, TRANSPORT_BLUEZ_NOTICE_PAIRING_DONE, path, serial,
			       "cancelled by bluetoothd", 0, -ECANCELED);
		}
		agent_reply_empty(bz, msg);
	} else {
		/* RequestPinCode, DisplayPinCode (BR/EDR legacy) and the rest. */
		agent_reply_error(bz, msg, "org.bluez.Error.Rejected", "not supported");
	}
	return DBUS_HANDLER_RESULT_HANDLED;
}

static const DBusObjectPathVTable agent_vtable = {
	.message_function = agent_message,
};

/* ---- GATT value delivery ------------------------------------------------ */

static bool read_pending(struct bz *bz, const char *chr)
{
	for (struct bz_req *q = bz->reqs; q; q = q->next)
		if (q->kind == BZ_REQ_READ && !q->done && strcmp(q->chr, chr) == 0)
			return true;
	return false;
}

static void emit_value(struct bz_link *l, const struct bz_sub *s, const uint8_t *val, size_t len)
{
	struct transport_event ev = {
		.type = TRANSPORT_EVENT_VALUE,
		.addr = l->addr,
		.u.value = { .handle = s->handle, .indication = s->indication, .val = val, .len = len },
	};

	transport_emit(l->bz->t, &ev);
}

/* Takes one datagram from an acquired notify fd: 1 delivered (the sink may
 * have dropped the link, and s with it), 0 none pending, -errno the socket is
 * closed or failed (left for notify_io_cb). */
static int sub_recv_one(struct bz_link *l, struct bz_sub *s)
{
	uint8_t buf[520];
	ssize_t n;

	do
		n = recv(s->fd, buf, sizeof(buf), MSG_DONTWAIT);
	while (n < 0 && errno == EINTR);
	if (n > 0) {
		emit_value(l, s, buf, (size_t)n);
		return 1;
	}
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
		return 0;
	return n < 0 ? -errno : -ECONNRESET;
}

/* Delivers every notification bluetoothd has already written to the link's
 * acquired fds. bluetoothd writes a notification to the fd before it handles
 * the next PDU of the same ATT bearer, so a value that comes by D-Bus (an
 * indication: RACP's end of a REPORT) is then never taken before the
 * notifications the pen sent ahead of it. False: the link is gone. */
static bool link_drain(struct bz *bz, const char *addr)
{
	for (unsigned budget = 4096; budget > 0; budget--) {
		struct bz_link *l = link_find(bz, addr);
		bool any = false;

		if (!l || l->state != BZ_LINK_UP)
			return false;
		for (struct bz_sub *s = l->subs; s; s = s->next) {
			if (s->fd < 0)
				continue;
			if (sub_recv_one(l, s) > 0) {
				any = true;
				break; /* l and s may be gone: look them up again */
			}
		}
		if (!any)
			return true;
	}
	return true;
}

static void on_value_changed(struct bz *bz, const struct bz_obj *chr, const uint8_t *val,
			     size_t len)
{
	struct bz_link *l = link_of_path(bz, chr->path);
	char addr[TRANSPORT_ADDR_MAX], path[TRANSPORT_ADDR_MAX];
	struct bz_sub *s;

	if (!l || l->state != BZ_LINK_UP)
		return;
	s = sub_find(l, chr->path);
	if (!s || s->fd >= 0)
		return;
	/* BlueZ also reports the value a ReadValue fetched this way; it
	 * cannot be told from a notification, so none is taken meanwhile
	 * (AcquireNotify, used where possible, has no such ambiguity). */
	if (read_pending(bz, chr->path))
		return;
	snprintf(addr, sizeof(addr), "%s", l->addr);
	snprintf(path, sizeof(path), "%s", chr->path);
	if (!link_drain(bz, addr))
		return;
	l = link_find(bz, addr);
	s = l ? sub_find(l, path) : NULL;
	if (!s || s->fd >= 0)
		return;
	emit_value(l, s, val, len);
}

static int notify_io_cb(sd_event_source *src, int fd, uint32_t revents, void *ud)
{
	struct bz_sub *s = ud;
	struct bz_link *l = s->link;
	struct bz *bz = l->bz;
	char addr[TRANSPORT_ADDR_MAX], chr[TRANSPORT_ADDR_MAX];
	int r = 0;

	(void)src;
	(void)fd;
	(void)revents;
	snprintf(addr, sizeof(addr), "%s", l->addr);
	snprintf(chr, sizeof(chr), "%s", s->chr);
	/* All that is pending, a bounded number per wakeup: bluetoothd drops a
	 * notification it cannot write to a full socket. */
	for (unsigned budget = 64; budget > 0; budget--) {
		r = sub_recv_one(l, s);
		if (r <= 0)
			break;
		/* The sink may have dropped the link (and s with it). */
		l = link_find(bz, addr);
		s = l ? sub_find(l, chr) : NULL;
		if (!s || s->fd < 0)
			return 0;
	}
	if (r >= 0)
		return 0;
	/* Closed by bluetoothd: notifications stopped (link loss follows). */
	s->io = sd_event_source_disable_unref(s->io);
	close(s->fd);
	s->fd = -1;
	sub_remove(l, s);
	return 0;
}

/* ---- ops: connect ------------------------------------------------------- */

static void pair_reply(DBusMessage *reply, void *ud)
{
	struct bz_req *q = ud;
	struct bz_link *l = q->link;
	int r = bz_reply_errno(reply, false, NULL);

	q->call = 0;
	if (r < 0 && r != -EEXIST) {
		link_fail(l, r);
		return;
	}
	l->state = BZ_LINK_CONNECTING;
	connect_step(l);
}

static void connect_reply(DBusMessage *reply, void *ud)
{
	struct bz_req *q = ud;
	struct bz_link *l = q->link;
	struct bz_obj *d;
	int r = bz_reply_errno(reply, false, NULL);

	q->call = 0;
	if (r < 0 && r != -EISCONN) {
		link_fail(l, r);
		return;
	}
	/* Connect() answered: the device is connected, even where bluetoothd
	 * 5.66 did not signal Connected (it says "already connected" when a
	 * reconnecting bonded device's ATT channel came first). */
	d = bz_cache_find(&l->bz->cache, l->addr);
	if (d)
		d->connected = true;
	l->state = BZ_LINK_RESOLVING;
	connect_step(l);
}

static int resolve_timeout_cb(sd_event_source *s, uint64_t usec, void *ud)
{
	struct bz_link *l = ud;

	l->timer = sd_event_source_disable_unref(l->timer);
	link_fail(l, -ETIMEDOUT);
	return 0;
}

static void connect_step(struct bz_link *l)
{
	struct bz *bz = l->bz;
	struct bz_obj *d = bz_cache_find(&bz->cache, l->addr);
	struct bz_req *q = l->conn;

	if (!q)
		return;
	if (!d || !(d->ifaces & BZ_DEVICE)) {
		link_fail(l, -ENOENT);
		return;
	}
	switch (l->state) {
	case BZ_LINK_PAIRING:
		if (!gate_ok(bz, d, is_bonded(d))) {
			link_fail(l, -EACCES);
			return;
		}
		if (!d->paired) {
			q->call = bz_send(bz, bz_method(l->addr, BZ_IFACE_DEVICE, "Pair"),
					  TRANSPORT_BLUEZ_PAIR_TIMEOUT_MS, pair_reply, q);
			if (!q->call)
				link_fail(l, -ENOMEM);
			return;
		}
		l->state = BZ_LINK_CONNECTING;
		/* fall through */
	case BZ_LINK_CONNECTING:
		if (!d->connected) {
			l->we_connected = true;
			q->call = bz_send(bz, bz_method(l->addr, BZ_IFACE_DEVICE, "Connect"),
					  TRANSPORT_BLUEZ_CONNECT_TIMEOUT_MS, connect_reply, q);
			if (!q->call)
				link_fail(l, -ENOMEM);
			return;
		}
		l->state = BZ_LINK_RESOLVING;
		/* fall through */
	case BZ_LINK_RESOLVING:
		if (!l->timer &&
		    sd_event_add_time_relative(bz->ev, &l->timer, CLOCK_MONOTONIC,
					       TRANSPORT_BLUEZ_RESOLVE_TIMEOUT_USEC, 0,
					       resolve_timeout_cb, l) < 0) {
			link_fail(l, -ENOMEM);
			return;
		}
		check_resolve(l);
		return;
	case BZ_LINK_UP:
		return;
	}
}

static bool chr_present(struct bz *bz, const char *dev, const char *uuid)
{
	for (struct bz_obj *o = bz->cache.objs; o; o = o->next)
		if ((o->ifaces & BZ_GATT_CHR) && bz_path_under(o->path, dev) &&
		    strcmp(o->uuid, uuid) == 0)
			return true;
	return false;
}

static void check_resolve(struct bz_link *l)
{
	struct bz *bz = l->bz;
	struct bz_obj *d = bz_cache_find(&bz->cache, l->addr);
	struct transport_event ev = { .type = TRANSPORT_EVENT_CONNECTED };
	struct bz_req *q = l->conn;

	/* CONNECTING too: bluetoothd 5.66 may leave Connect() unanswered
	 * when the link came up through another path (an auto-connect of a
	 * bonded device racing ours); the objects tell the truth anyway. */
	if ((l->state != BZ_LINK_RESOLVING && l->state != BZ_LINK_CONNECTING) || !q || !d)
		return;
	if (!d->connected || !d->resolved)
		return;
	/* ServicesResolved alone is not trusted: every characteristic. */
	for (size_t i = 0; i < sizeof(nl_chr_uuids) / sizeof(nl_chr_uuids[0]); i++)
		if (!chr_present(bz, l->addr, nl_chr_uuids[i]))
			return;
	if (!is_bonded(d) || !gate_ok(bz, d, true)) {
		/* Only bonded pens are used, and only under their bonded identity. */
		link_fail(l, -EACCES);
		return;
	}
	if (q->call) {
		(void)nl_dbus_cancel(bz->bus, q->call);
		q->call = 0;
	}
	l->timer = sd_event_source_disable_unref(l->timer);
	l->state = BZ_LINK_UP;
	ev.addr = l->addr;
	transport_emit(bz->t, &ev);
	/* The sink may have dropped the link; the request stands regardless. */
	if (req_find(bz, q->id) == q)
		finish_status(q, 0, 0);
}

static int connect_kick(sd_event_source *s, void *ud)
{
	struct bz_req *q = ud;

	q->defer = sd_event_source_disable_unref(q->defer);
	if (q->link)
		connect_step(q->link);
	return 0;
}

static unsigned bz_connect(void *priv, const char *addr, transport_status_fn cb, void *user_data,
			   transport_destroy_fn destroy)
{
	struct bz *bz = priv;
	struct bz_obj *d;
	struct bz_link *l;
	struct bz_req *q;

	if (!cb || !bz->bluez_up || link_find(bz, addr) || strlen(addr) >= TRANSPORT_ADDR_MAX)
		return 0;
	d = bz_cache_find(&bz->cache, addr);
	if (!d || !(d->ifaces & BZ_DEVICE) || !d->adapter || strcmp(d->adapter, bz->adapter) != 0 ||
	    !bz->adapter_powered)
		return 0;
	l = calloc(1, sizeof(*l));
	if (!l)
		return 0;
	l->bz = bz;
	l->state = BZ_LINK_PAIRING;
	snprintf(l->addr, sizeof(l->addr), "%s", addr);
	l->next = bz->links;
	bz->links = l;
	q = req_new(bz, l, BZ_REQ_CONNECT, user_data, destroy);
	if (!q) {
		link_drop(l, false);
		return 0;
	}
	q->cb.status = cb;
	l->conn = q;
	if (defer_arm(q, connect_kick) < 0) {
		req_fail(q);
		link_drop(l, false);
		return 0;
	}
	return q->id;
}

static void bz_disconnect(void *priv, const char *addr)
{
	struct bz_link *l = link_find(priv, addr);

	if (l)
		link_drop(l, true);
}

/* ---- ops: MTU, discovery ------------------------------------------------- */

static struct bz_link *up_link(struct bz *bz, const char *addr)
{
	struct bz_link *l = link_find(bz, addr);

	return l && l->state == BZ_LINK_UP ? l : NULL;
}

static uint16_t link_mtu(struct bz *bz, const struct bz_link *l)
{
	uint16_t mtu = 0;

	for (struct bz_obj *o = bz->cache.objs; o; o = o->next)
		if ((o->ifaces & BZ_GATT_CHR) && bz_path_under(o->path, l->addr) && o->mtu > mtu)
			mtu = o->mtu;
	return mtu ? mtu : 23;
}

static int mtu_kick(sd_event_source *s, void *ud)
{
	struct bz_req *q = ud;
	struct bz *bz = q->bz;
	struct bz_link *l = q->link;
	uint16_t mtu = l ? link_mtu(bz, l) : 0;

	req_begin_done(q);
	q->cb.mtu(l ? 0 : -ENOTCONN, mtu, q->user_data);
	req_free(q, true);
	return 0;
}

static unsigned bz_exchange_mtu(void *priv, const char *addr, uint16_t mtu, transport_mtu_fn cb,
				void *user_data, transport_destroy_fn destroy)
{
	struct bz *bz = priv;
	struct bz_link *l = up_link(bz, addr);
	struct bz_req *q;

	/* bluetoothd exchanges the MTU itself on connection; we report it. */
	if (!l || !cb)
		return 0;
	q = req_new(bz, l, BZ_REQ_MTU, user_data, destroy);
	if (!q)
		return 0;
	q->cb.mtu = cb;
	if (defer_arm(q, mtu_kick) < 0)
		return req_fail(q);
	return q->id;
}

static uint8_t props_of(unsigned flags)
{
	return (uint8_t)(((flags & BZ_CHR_READ) ? TRANSPORT_PROP_READ : 0) |
			 ((flags & BZ_CHR_WRITE) ? TRANSPORT_PROP_WRITE : 0) |
			 ((flags & BZ_CHR_NOTIFY) ? TRANSPORT_PROP_NOTIFY : 0) |
			 ((flags & BZ_CHR_INDICATE) ? TRANSPORT_PROP_INDICATE : 0));
}

static int discover_kick(sd_event_source *s, void *ud)
{
	struct bz_req *q = ud;
	struct bz *bz = q->bz;
	struct bz_link *l = q->link;
	struct transport_chr *chrs = NULL;
	size_t n = 0, k = 0;
	int err = 0;

	if (!l) {
		err = -ENOTCONN;
		goto done;
	}
	for (struct bz_obj *o = bz->cache.objs; o; o = o->next)
		if ((o->ifaces & BZ_GATT_CHR) && bz_path_under(o->path, l->addr))
			n++;
	chrs = calloc(n ? n : 1, sizeof(*chrs));
	if (!chrs) {
		err = -ENOMEM;
		goto done;
	}
	for (struct bz_obj *o = bz->cache.objs; o && k < n; o = o->next) {
		struct bz_obj *svc;

		if (!(o->ifaces & BZ_GATT_CHR) || !bz_path_under(o->path, l->addr) || !o->handle)
			continue;
		svc = o->service ? bz_cache_find(&bz->cache, o->service) : NULL;
		chrs[k].handle = o->handle;
		chrs[k].props = props_of(o->flags);
		memcpy(chrs[k].uuid, o->uuid, sizeof(chrs[k].uuid));
		if (svc)
			memcpy(chrs[k].service_uuid, svc->uuid, sizeof(chrs[k].service_uuid));
		k++;
	}
done:
	req_begin_done(q);
	q->cb.discover(err, err < 0 ? NULL : chrs, err < 0 ? 0 : k, q->user_data);
	free(chrs);
	req_free(q, true);
	return 0;
}

static unsigned bz_discover(void *priv, const char *addr, transport_discover_fn cb,
			    void *user_data, transport_destroy_fn destroy)
{
	struct bz *bz = priv;
	struct bz_link *l = up_link(bz, addr);
	struct bz_req *q;

	if (!l || !cb)
		return 0;
	q = req_new(bz, l, BZ_REQ_DISCOVER, user_data, destroy);
	if (!q)
		return 0;
	q->cb.discover = cb;
	if (defer_arm(q, discover_kick) < 0)
		return req_fail(q);
	return q->id;
}

/* ---- ops: read, write, subscribe --------------------------------------- */

static struct bz_obj *chr_by_handle(struct bz *bz, const struct bz_link *l, uint16_t handle)
{
	for (struct bz_obj *o = bz->cache.objs; o; o = o->next)
		if ((o->ifaces & BZ_GATT_CHR) && o->handle == handle &&
		    bz_path_under(o->path, l->addr))
			return o;
	return NULL;
}

static int req_timeout_ms(const struct bz *bz)
{
	return bz->req_timeout_ms;
}

static void read_reply(DBusMessage *reply, void *ud)
{
	struct bz_req *q = ud;
	uint8_t att = 0;
	int r = bz_reply_errno(reply, false, &att);
	const uint8_t *val = NULL;
	int n = 0;

	if (r == 0) {
		DBusMessageIter it, a;

		if (!dbus_message_iter_init(reply, &it) ||
		    dbus_message_iter_get_arg_type(&it) != DBUS_TYPE_ARRAY ||
		    dbus_message_iter_get_element_type(&it) != DBUS_TYPE_BYTE) {
			r = -EPROTO;
		} else {
			dbus_message_iter_recurse(&it, &a);
			dbus_message_iter_get_fixed_array(&a, &val, &n);
		}
	}
	req_begin_done(q);
	q->cb.read(r, r == -EREMOTEIO ? att : 0, r < 0 ? NULL : val,
		   r < 0 || n < 0 ? 0 : (size_t)n, q->user_data);
	req_free(q, true);
}

static unsigned bz_read(void *priv, const char *addr, uint16_t handle, transport_read_fn cb,
			void *user_data, transport_destroy_fn destroy)
{
	struct bz *bz = priv;
	struct bz_link *l = up_link(bz, addr);
	struct bz_obj *c;
	struct bz_req *q;
	DBusMessage *m;
	DBusMessageIter it;

	if (!l || !cb || !(c = chr_by_handle(bz, l, handle)))
		return 0;
	q = req_new(bz, l, BZ_REQ_READ, user_data, destroy);
	if (!q)
		return 0;
	q->cb.read = cb;
	snprintf(q->chr, sizeof(q->chr), "%s", c->path);
	m = bz_method(c->path, BZ_IFACE_CHR, "ReadValue");
	if (!m)
		return req_fail(q);
	dbus_message_iter_init_append(m, &it);
	if (!append_empty_dict(&it)) {
		dbus_message_unref(m);
		return req_fail(q);
	}
	q->call = bz_send(bz, m, req_timeout_ms(bz), read_reply, q);
	if (!q->call)
		return req_fail(q);
	return q->id;
}

static void write_reply(DBusMessage *reply, void *ud)
{
	struct bz_req *q = ud;
	uint8_t att = 0;
	int r = bz_reply_errno(reply, true, &att);

	finish_status(q, r, att);
}

static unsigned bz_write(void *priv, const char *addr, uint16_t handle, const uint8_t *val,
			 size_t len, transport_status_fn cb, void *user_data,
			 transport_destroy_fn destroy)
{
	struct bz *bz = priv;
	struct bz_link *l = up_link(bz, addr);
	DBusMessageIter it, a, d;
	struct bz_obj *c;
	struct bz_req *q;
	DBusMessage *m;

	if (!l || !cb || (!val && len) || len > 512 || !(c = chr_by_handle(bz, l, handle)))
		return 0;
	q = req_new(bz, l, BZ_REQ_WRITE, user_data, destroy);
	if (!q)
		return 0;
	q->cb.status = cb;
	snprintf(q->chr, sizeof(q->chr), "%s", c->path);
	m = bz_method(c->path, BZ_IFACE_CHR, "WriteValue");
	if (!m)
		return req_fail(q);
	dbus_message_iter_init_append(m, &it);
	/* A control point is written with response, whatever else it allows. */
	if (!dbus_message_iter_open_container(&it, DBUS_TYPE_ARRAY, "y", &a) ||
	    !dbus_message_iter_append_fixed_array(&a, DBUS_TYPE_BYTE, &val, (int)len) ||
	    !dbus_message_iter_close_container(&it, &a) ||
	    !dbus_message_iter_open_container(&it, DBUS_TYPE_ARRAY, "{sv}", &d) ||
	    !append_dict_str(&d, "type", "request") || !dbus_message_iter_close_container(&it, &d)) {
		dbus_message_unref(m);
		return req_fail(q);
	}
	q->call = bz_send(bz, m, req_timeout_ms(bz), write_reply, q);
	if (!q->call)
		return req_fail(q);
	return q->id;
}

static int status_ok_kick(sd_event_source *s, void *ud)
{
	struct bz_req *q = ud;

	finish_status(q, q->link ? 0 : -ENOTCONN, 0);
	return 0;
}

static void start_notify(struct bz_req *q);

static void acquire_reply(DBusMessage *reply, void *ud)
{
	struct bz_req *q = ud;
	struct bz_link *l = q->link;
	struct bz_obj *c;
	struct bz_sub *s;
	uint8_t att = 0;
	int r = bz_reply_errno(reply, false, &att), fd = -1;
	dbus_uint16_t mtu = 0;

	q->call = 0;
	if (r == -ENOTCONN || r == -ENOENT || r == -ETIMEDOUT || r == -EHOSTUNREACH) {
		finish_status(q, r, att);
		return;
	}
	if (r < 0) {
		/* Not possible here (an indicate characteristic, an old
		 * bluetoothd, a notify session of someone else): StartNotify. */
		start_notify(q);
		return;
	}
	if (!dbus_message_get_args(reply, NULL, DBUS_TYPE_UNIX_FD, &fd, DBUS_TYPE_UINT16, &mtu,
				   DBUS_TYPE_INVALID) ||
	    fd < 0) {
		finish_status(q, -EPROTO, 0);
		return;
	}
	(void)fcntl(fd, F_SETFD, FD_CLOEXEC);
	c = bz_cache_find(&q->bz->cache, q->chr);
	s = calloc(1, sizeof(*s));
	if (!s || !c) {
		free(s);
		close(fd);
		finish_status(q, s ? -ENOENT : -ENOMEM, 0);
		return;
	}
	s->link = l;
	s->fd = fd;
	s->handle = q->handle;
	snprintf(s->chr, sizeof(s->chr), "%s", q->chr);
	if (sd_event_add_io(q->bz->ev, &s->io, fd, EPOLLIN, notify_io_cb, s) < 0) {
		sub_free(s);
		finish_status(q, -ENOMEM, 0);
		return;
	}
	s->next = l->subs;
	l->subs = s;
	finish_status(q, 0, 0);
}

static void notify_reply(DBusMessage *reply, void *ud)
{
	struct bz_req *q = ud;
	struct bz_link *l = q->link;
	struct bz_obj *c;
	struct bz_sub *s;
	uint8_t att = 0;
	int r = bz_reply_errno(reply, false, &att);

	q->call = 0;
	if (q->value == 0) {
		/* Stopped, or the link is gone anyway. */
		s = sub_find(l, q->chr);
		if (s)
			sub_remove(l, s);
		finish_status(q, r == -ENOTCONN ? 0 : r, att);
		return;
	}
	if (r < 0) {
		finish_status(q, r, att);
		return;
	}
	c = bz_cache_find(&q->bz->cache, q->chr);
	s = calloc(1, sizeof(*s));
	if (!s) {
		finish_status(q, -ENOMEM, 0);
		return;
	}
	s->link = l;
	s->fd = -1;
	s->handle = q->handle;
	/* D-Bus does not say which it was: an indicate-only one indicates. */
	s->indication = c && (c->flags & BZ_CHR_INDICATE) && !(c->flags & BZ_CHR_NOTIFY);
	snprintf(s->chr, sizeof(s->chr), "%s", q->chr);
	s->next = l->subs;
	l->subs = s;
	finish_status(q, 0, 0);
}

static void start_notify(struct bz_req *q)
{
	q->call = bz_send(q->bz,
			  bz_method(q->chr, BZ_IFACE_CHR, q->value ? "StartNotify" : "StopNotify"),
			  req_timeout_ms(q->bz), notify_reply, q);
	/* Only called from a reply: calling back at once is fine. */
	if (!q->call)
		finish_status(q, -ENOMEM, 0);
}

static unsigned bz_subscribe(void *priv, const char *addr, uint16_t handle, uint16_t value,
			     transport_status_fn cb, void *user_data, transport_destroy_fn destroy)
{
	struct bz *bz = priv;
	struct bz_link *l = up_link(bz, addr);
	struct bz_obj *c;
	struct bz_sub *s;
	struct bz_req *q;

	if (!l || !cb || value > 2 || !(c = chr_by_handle(bz, l, handle)))
		return 0;
	if ((value == 1 && !(c->flags & BZ_CHR_NOTIFY)) ||
	    (value == 2 && !(c->flags & BZ_CHR_INDICATE)))
		return 0;
	q = req_new(bz, l, BZ_REQ_SUBSCRIBE, user_data, destroy);
	if (!q)
		return 0;
	q->cb.status = cb;
	q->handle = handle;
	q->value = value;
	snprintf(q->chr, sizeof(q->chr), "%s", c->path);
	s = sub_find(l, c->path);
	if ((value && s) || (!value && !s) || (!value && s->fd >= 0)) {
		/* Nothing to ask bluetoothd: already on, already off, or an
		 * acquired fd, whose closing stops the notifications. */
		if (!value && s)
			sub_remove(l, s);
		if (defer_arm(q, status_ok_kick) < 0)
			return req_fail(q);
		return q->id;
	}
	if (value == 1 && !(c->flags & BZ_CHR_INDICATE)) {
		DBusMessage *m = bz_method(c->path, BZ_IFACE_CHR, "AcquireNotify");
		DBusMessageIter it;

		q->acquire = true;
		if (m) {
			dbus_message_iter_init_append(m, &it);
			if (!append_empty_dict(&it)) {
				dbus_message_unref(m);
				m = NULL;
			}
		}
		q->call = bz_send(bz, m, req_timeout_ms(bz), acquire_reply, q);
		if (!q->call)
			return req_fail(q);
		return q->id;
	}
	q->call = bz_send(bz, bz_method(c->path, BZ_IFACE_CHR, value ? "StartNotify" : "StopNotify"),
			  req_timeout_ms(bz), notify_reply, q);
	if (!q->call)
		return req_fail(q);
	return q->id;
}

static int bz_cancel(void *priv, unsigned id)
{
	struct bz *bz = priv;
	struct bz_req *q = req_find(bz, id);

	if (!q)
		return -ENOENT;
	if (q->kind == BZ_REQ_CONNECT && q->link) {
		/* A half-open link is of no use to anyone. */
		link_drop(q->link, true);
		return 0;
	}
	req_free(q, true);
	return 0;
}

static uint16_t bz_mtu(void *priv, const char *addr)
{
	struct bz *bz = priv;
	struct bz_link *l = up_link(bz, addr);

	return l ? link_mtu(bz, l) : 0;
}

/* ---- scanning -------------------------------------------------------------- */

static int bz_scan_start(void *priv)
{
	struct bz *bz = priv;

	if (bz->want_scan)
		return 0;
	bz->want_scan = true;
	if (bz->bluez_up && bz->adapter_powered) {
		report_bonded(bz);
		for (struct bz_obj *o = bz->cache.objs; o; o = o->next)
			if (is_pen(bz, o) && !is_bonded(o) && o->has_rssi)
				emit_found(bz, o);
	}
	scan_begin(bz);
	return 0;
}

static void bz_scan_stop(void *priv)
{
	struct bz *bz = priv;

	bz->want_scan = false;
	if (bz->scan_call) {
		(void)nl_dbus_cancel(bz->bus, bz->scan_call);
		bz->scan_call = 0;
	}
	if (bz->scan_active && bz->bluez_up && bz->adapter[0])
		(void)bz_send(bz, bz_method(bz->adapter, BZ_IFACE_ADAPTER, "StopDiscovery"),
			      TRANSPORT_BLUEZ_REQUEST_TIMEOUT_MS, NULL, NULL);
	bz->scan_active = false;
	while (bz->seen) {
		struct bz_seen *s = bz->seen;

		bz->seen = s->next;
		free(s);
	}
}

/* ---- signals --------------------------------------------------------------- */

static void on_added(struct bz *bz, DBusMessage *m)
{
	struct bz_obj *o = NULL;
	unsigned added = 0;
	struct bz_link *l;

	if (bz_cache_added(&bz->cache, m, &o, &added) < 0 || !o)
		return;
	if (added & BZ_ADAPTER)
		choose_adapter(bz);
	if (added & BZ_DEVICE)
		maybe_found(bz, o);
	if (added & (BZ_GATT_SERVICE | BZ_GATT_CHR | BZ_DEVICE)) {
		l = link_of_path(bz, o->path);
		if (l)
			check_resolve(l);
	}
}

static void on_removed(struct bz *bz, DBusMessage *m)
{
	char path[TRANSPORT_ADDR_MAX];
	unsigned removed = 0;
	struct bz_link *l;

	if (bz_cache_removed(&bz->cache, m, path, sizeof(path), &removed) < 0)
		return;
	if (removed & BZ_DEVICE) {
		l = link_find(bz, path);
		if (l)
			link_lost(l, -ECONNRESET);
		if (seen_has(bz, path))
			emit_lost(bz, path);
		notice(bz, TRANSPORT_BLUEZ_NOTICE_DEVICE_REMOVED, path, NULL, NULL, 0, 0);
	}
	if ((removed & BZ_ADAPTER) && strcmp(path, bz->adapter) == 0) {
		adapter_down(bz, -ECONNRESET);
		bz->adapter[0] = '\0';
		notice(bz, TRANSPORT_BLUEZ_NOTICE_ADAPTER_GONE, path, NULL, NULL, 0, -ENODEV);
		choose_adapter(bz);
	}
}

static void on_changed(struct bz *bz, DBusMessage *m)
{
	struct bz_obj *o = NULL;
	unsigned chg = 0;
	const uint8_t *val = NULL;
	size_t len = 0;
	struct bz_link *l;

	if (bz_cache_changed(&bz->cache, m, &o, &chg, &val, &len) < 0)
		return;
	if ((o->ifaces & BZ_ADAPTER) && strcmp(o->path, bz->adapter) == 0) {
		if ((chg & BZ_CHG_POWERED) && o->powered != bz->adapter_powered) {
			notice(bz, TRANSPORT_BLUEZ_NOTICE_ADAPTER_POWER, o->path, NULL,
			       o->powered ? "on" : "off", 0, 0);
			if (o->powered)
				adapter_up(bz);
			else
				adapter_down(bz, -ECONNRESET);
		}
		if (chg & BZ_CHG_DISCOVERING) {
			notice(bz, TRANSPORT_BLUEZ_NOTICE_DISCOVERING, o->path, NULL,
			       o->discovering ? "on" : "off", 0, 0);
			if (!o->discovering && bz->scan_active) {
				/* Someone (a power cycle) ended our session. */
				bz->scan_active = false;
				retry_arm(bz);
			}
		}
	} else if (o->ifaces & BZ_ADAPTER) {
		if (!bz->adapter[0] || !bz->cfg_adapter[0])
			choose_adapter(bz);
	}
	if (o->ifaces & BZ_DEVICE) {
		l = link_find(bz, o->path);
		if (l && (chg & BZ_CHG_CONNECTED) && !o->connected &&
		    (l->state == BZ_LINK_RESOLVING || l->state == BZ_LINK_UP))
			link_lost(l, -ECONNRESET);
		else if (l && (chg & (BZ_CHG_CONNECTED | BZ_CHG_RESOLVED | BZ_CHG_PAIRED)))
			check_resolve(l);
		if (chg & BZ_CHG_ADV)
			maybe_found(bz, o);
	}
	if ((o->ifaces & BZ_GATT_CHR) && (chg & BZ_CHG_VALUE))
		on_value_changed(bz, o, val, len);
}

static DBusHandlerResult on_signal(DBusConnection *c, DBusMessage *m, void *ud)
{
	struct bz *bz = ud;

	/* While GetManagedObjects is pending, signals are already part of
	 * its answer (one sender's messages arrive in order). */
	if (dbus_message_get_type(m) != DBUS_MESSAGE_TYPE_SIGNAL || !bz->bluez_up || bz->gmo_call)
		return DBUS_HANDLER_RESULT_NOT_YET_HANDLED;
	/* Only bluetoothd's: anyone may send us a unicast signal. */
	if (!dbus_message_get_sender(m) || strcmp(dbus_message_get_sender(m), bz->owner) != 0)
		return DBUS_HANDLER_RESULT_NOT_YET_HANDLED;
	if (dbus_message_is_signal(m, BZ_IFACE_OM, "InterfacesAdded"))
		on_added(bz, m);
	else if (dbus_message_is_signal(m, BZ_IFACE_OM, "InterfacesRemoved"))
		on_removed(bz, m);
	else if (dbus_message_is_signal(m, BZ_IFACE_PROPS, "PropertiesChanged") &&
		 dbus_message_get_path(m) &&
		 strncmp(dbus_message_get_path(m), "/org/bluez", 10) == 0)
		on_changed(bz, m);
	return DBUS_HANDLER_RESULT_NOT_YET_HANDLED;
}

/* ---- bluetoothd coming and going ------------------------------------------ */

static void gmo_reply(DBusMessage *reply, void *ud)
{
	struct bz *bz = ud;
	int r = bz_reply_errno(reply, false, NULL);

	bz->gmo_call = 0;
	if (r == 0)
		r = bz_cache_load(&bz->cache, reply);
	if (r < 0) {
		notice(bz, TRANSPORT_BLUEZ_NOTICE_BLUEZ_UP, NULL, NULL, "GetManagedObjects failed", 0,
		       r);
		bz->bluez_up = false;
		retry_arm(bz);
		return;
	}
	notice(bz, TRANSPORT_BLUEZ_NOTICE_BLUEZ_UP, NULL, NULL, NULL, 0, 0);
	register_agent(bz);
	choose_adapter(bz);
}

static void read_objects(struct bz *bz)
{
	if (bz->gmo_call)
		return;
	/* Signals count from now on: the cache gets them after the load. */
	bz->bluez_up = true;
	bz->gmo_call = bz_send(bz, bz_method("/", BZ_IFACE_OM, "GetManagedObjects"),
			       TRANSPORT_BLUEZ_REQUEST_TIMEOUT_MS, gmo_reply, bz);
	if (!bz->gmo_call) {
		bz->bluez_up = false;
		retry_arm(bz);
	}
}

static void bluez_down(struct bz *bz)
{
	bool was_up = bz->bluez_up;

	if (bz->gmo_call)
		(void)nl_dbus_cancel(bz->bus, bz->gmo_call);
	if (bz->agent_call)
		(void)nl_dbus_cancel(bz->bus, bz->agent_call);
	bz->gmo_call = bz->agent_call = 0;
	bz->agent_ok = false;
	adapter_down(bz, -ECONNRESET);
	while (bz->agent_reqs)
		agent_req_free(bz->agent_reqs);
	bz_cache_clear(&bz->cache);
	bz->adapter[0] = '\0';
	bz->bluez_up = false;
	if (was_up)
		notice(bz, TRANSPORT_BLUEZ_NOTICE_BLUEZ_GONE, NULL, NULL, NULL, 0, -EHOSTUNREACH);
}

static void on_bluez_name(const char *name, const char *owner, void *ud)
{
	struct bz *bz = ud;

	if (bz->owner[0] && (!owner || strcmp(owner, bz->owner) != 0))
		bluez_down(bz);
	if (!owner) {
		bz->owner[0] = '\0';
		return;
	}
	snprintf(bz->owner, sizeof(bz->owner), "%s", owner);
	read_objects(bz);
}

static int retry_cb(sd_event_source *s, uint64_t usec, void *ud)
{
	struct bz *bz = ud;

	(void)sd_event_source_set_enabled(s, SD_EVENT_OFF);
	if (!bz->bus_ready)
		return 0;
	if (bz->name_watch && !bz->bluez_up && !bz->gmo_call) {
		/* A failed object read: the name is still there. */
		read_objects(bz);
		return 0;
	}
	register_agent(bz);
	choose_adapter(bz);
	scan_begin(bz);
	return 0;
}

static void retry_arm(struct bz *bz)
{
	if (!bz->retry)
		return;
	if (sd_event_source_set_time_relative(bz->retry, TRANSPORT_BLUEZ_RETRY_USEC) >= 0)
		(void)sd_event_source_set_enabled(bz->retry, SD_EVENT_ONESHOT);
}

/* ---- the bus --------------------------------------------------------------- */

static void bus_close(struct bz *bz)
{
	DBusConnection *c;

	if (!bz->bus)
		return;
	c = nl_dbus_connection(bz->bus);
	if (bz->path_registered)
		dbus_connection_unregister_object_path(c, TRANSPORT_BLUEZ_AGENT_PATH);
	if (bz->filter_added)
		dbus_connection_remove_filter(c, on_signal, bz);
	bz->path_registered = bz->filter_added = false;
	nl_dbus_free(bz->bus);
	bz->bus = NULL;
	bz->bus_ready = false;
	bz->name_watch = 0;
	bz->owner[0] = '\0';
}

static void reopen_arm(struct bz *bz)
{
	if (sd_event_source_set_time_relative(bz->reopen, TRANSPORT_BLUEZ_RETRY_USEC) >= 0)
		(void)sd_event_source_set_enabled(bz->reopen, SD_EVENT_ONESHOT);
}

static void bus_ready(struct nl_dbus *b, int err, void *ud)
{
	struct bz *bz = ud;
	DBusConnection *c = nl_dbus_connection(b);

	if (err < 0) {
		notice(bz, TRANSPORT_BLUEZ_NOTICE_BUS_LOST, NULL, NULL, "Hello failed", 0, err);
		reopen_arm(bz);
		return;
	}
	bz->bus_ready = true;
	if (nl_dbus_add_match(b, "type='signal',sender='org.bluez',"
				 "interface='org.freedesktop.DBus.ObjectManager'") < 0 ||
	    nl_dbus_add_match(b, "type='signal',sender='org.bluez',"
				 "interface='org.freedesktop.DBus.Properties',"
				 "member='PropertiesChanged'") < 0)
		goto fail;
	if (!dbus_connection_register_object_path(c, TRANSPORT_BLUEZ_AGENT_PATH, &agent_vtable, bz))
		goto fail;
	bz->path_registered = true;
	bz->name_watch = nl_dbus_watch_name(b, BZ_SERVICE, on_bluez_name, bz, NULL);
	if (!bz->name_watch)
		goto fail;
	return;
fail:
	notice(bz, TRANSPORT_BLUEZ_NOTICE_BUS_LOST, NULL, NULL, "bus set-up failed", 0, -ENOMEM);
	reopen_arm(bz);
}

static void bus_disconnected(struct nl_dbus *b, void *ud)
{
	struct bz *bz = ud;

	bluez_down(bz);
	notice(bz, TRANSPORT_BLUEZ_NOTICE_BUS_LOST, NULL, NULL, "system bus connection lost", 0,
	       -ENOTCONN);
	/* Not freed from inside its own callback: the reopen timer does. */
	reopen_arm(bz);
}

static int bus_open(struct bz *bz)
{
	int r = nl_dbus_open(bz->ev, NULL, bus_ready, bus_disconnected, bz, &bz->bus);

	if (r < 0)
		return r;
	if (!dbus_connection_add_filter(nl_dbus_connection(bz->bus), on_signal, bz, NULL)) {
		nl_dbus_free(bz->bus);
		bz->bus = NULL;
		return -ENOMEM;
	}
	bz->filter_added = true;
	return 0;
}

static int reopen_cb(sd_event_source *s, uint64_t usec, void *ud)
{
	struct bz *bz = ud;

	(void)sd_event_source_set_enabled(s, SD_EVENT_OFF);
	bluez_down(bz);
	bus_close(bz);
	if (bus_open(bz) < 0)
		reopen_arm(bz);
	return 0;
}

/* ---- lifecycle ----------------------------------------------------------- */

static void bz_deinit(void *priv)
{
	struct bz *bz = priv;

	if (!bz)
		return;
	for (struct bz **pp = &instances; *pp; pp = &(*pp)->next_instance)
		if (*pp == bz) {
			*pp = bz->next_instance;
			break;
		}
	bz_scan_stop(bz);
	while (bz->links)
		link_drop(bz->links, true);
	while (bz->reqs)
		req_free(bz->reqs, true);
	while (bz->agent_reqs) {
		if (bz->bus)
			agent_reply_error(bz, bz->agent_reqs->msg, "org.bluez.Error.Canceled",
					  "gateway stopping");
		agent_req_free(bz->agent_reqs);
	}
	while (bz->armed) {
		struct bz_armed *a = bz->armed;

		bz->armed = a->next;
		free(a);
	}
	if (bz->bus && bz->agent_ok) {
		const char *path = TRANSPORT_BLUEZ_AGENT_PATH;
		DBusMessage *m = bz_method("/org/bluez", BZ_IFACE_AGENT_MANAGER, "UnregisterAgent");

		if (m && dbus_message_append_args(m, DBUS_TYPE_OBJECT_PATH, &path, DBUS_TYPE_INVALID))
			(void)nl_dbus_send(bz->bus, m);
		if (m)
			dbus_message_unref(m);
	}
	if (bz->bus)
		dbus_connection_flush(nl_dbus_connection(bz->bus));
	bus_close(bz);
	bz_cache_clear(&bz->cache);
	while (bz->advnames) {
		struct bz_advname *a = bz->advnames;

		bz->advnames = a->next;
		free(a);
	}
	bz->retry = sd_event_source_disable_unref(bz->retry);
	bz->reopen = sd_event_source_disable_unref(bz->reopen);
	sd_event_unref(bz->ev);
	free(bz);
}

static int bz_init(struct transport *t, sd_event *ev, const struct transport_config *cfg,
		   void **ret_priv)
{
	struct bz *bz = calloc(1, sizeof(*bz));
	int r;

	if (!bz)
		return -ENOMEM;
	bz->t = t;
	bz->ev = sd_event_ref(ev);
	bz->req_timeout_ms = TRANSPORT_BLUEZ_REQUEST_TIMEOUT_MS;
	if (cfg->request_timeout_usec)
		bz->req_timeout_ms = cfg->request_timeout_usec / 1000 > 0x7fffffff
					     ? 0x7fffffff
					     : (int)(cfg->request_timeout_usec / 1000) + 1;
	if (cfg->adapter && cfg->adapter[0]) {
		if (strlen(cfg->adapter) >= sizeof(bz->cfg_adapter) || strchr(cfg->adapter, '/')) {
			r = -EINVAL;
			goto fail;
		}
		snprintf(bz->cfg_adapter, sizeof(bz->cfg_adapter), "%s", cfg->adapter);
	}
	r = sd_event_add_time_relative(ev, &bz->retry, CLOCK_MONOTONIC, TRANSPORT_BLUEZ_RETRY_USEC, 0,
				       retry_cb, bz);
	if (r < 0)
		goto fail;
	(void)sd_event_source_set_enabled(bz->retry, SD_EVENT_OFF);
	r = sd_event_add_time_relative(ev, &bz->reopen, CLOCK_MONOTONIC, TRANSPORT_BLUEZ_RETRY_USEC,
				       0, reopen_cb, bz);
	if (r < 0)
		goto fail;
	(void)sd_event_source_set_enabled(bz->reopen, SD_EVENT_OFF);
	r = bus_open(bz);
	if (r < 0)
		goto fail;
	bz->next_instance = instances;
	instances = bz;
	*ret_priv = bz;
	return 0;
fail:
	bz_deinit(bz);
	return r;
}

/* ---- operator API ------------------------------------------------------- */

static struct bz *bz_of(struct transport *t)
{
	for (struct bz *bz = instances; bz; bz = bz->next_instance)
		if (bz->t == t)
			return bz;
	return NULL;
}

int transport_bluez_set_gate(struct transport *t, transport_bluez_gate_fn fn, void *user_data)
{
	struct bz *bz = t ? bz_of(t) : NULL;

	if (!bz)
		return -EINVAL;
	bz->gate_fn = fn;
	bz->gate_data = user_data;
	return 0;
}

int transport_bluez_set_notice(struct transport *t, transport_bluez_notice_fn fn, void *user_data)
{
	struct bz *bz = t ? bz_of(t) : NULL;

	if (!bz)
		return -EINVAL;
	bz->notice_fn = fn;
	bz->notice_data = user_data;
	return 0;
}

int transport_bluez_allow_just_works(struct transport *t, bool allow)
{
	struct bz *bz = t ? bz_of(t) : NULL;

	if (!bz)
		return -EINVAL;
	bz->just_works = allow;
	return 0;
}

int transport_bluez_pair(struct transport *t, const char *serial, uint32_t passkey)
{
	struct bz *bz = t ? bz_of(t) : NULL;
	struct bz_armed *a;

	if (!bz || !serial || !serial[0] || strlen(serial) >= TRANSPORT_SERIAL_MAX)
		return -EINVAL;
	if (passkey > 999999)
		return -ERANGE;
	for (struct bz_agent_req *q = bz->agent_reqs; q; q = q->next)
		if (q->kind == BZ_AGENT_PASSKEY && strcmp(q->serial, serial) == 0) {
			char dev[TRANSPORT_ADDR_MAX];

			snprintf(dev, sizeof(dev), "%s", q->dev);
			agent_reply_passkey(bz, q->msg, passkey);
			agent_req_free(q);
			notice(bz, TRANSPORT_BLUEZ_NOTICE_PAIRING_DONE, dev, serial, "passkey entered",
			       0, 0);
			return 0;
		}
	/* Typed before bluetoothd asked: kept for the next request. */
	a = armed_take(bz, serial);
	if (!a)
		a = calloc(1, sizeof(*a));
	if (!a)
		return -ENOMEM;
	snprintf(a->serial, sizeof(a->serial), "%s", serial);
	a->passkey = passkey;
	a->expires = now_usec() + TRANSPORT_BLUEZ_AGENT_TIMEOUT_USEC;
	a->next = bz->armed;
	bz->armed = a;
	return 0;
}

int transport_bluez_confirm(struct transport *t, const char *serial, bool accept)
{
	struct bz *bz = t ? bz_of(t) : NULL;

	if (!bz || !serial)
		return -EINVAL;
	for (struct bz_agent_req *q = bz->agent_reqs; q; q = q->next)
		if (q->kind == BZ_AGENT_CONFIRM && strcmp(q->serial, serial) == 0) {
			char dev[TRANSPORT_ADDR_MAX];

			snprintf(dev, sizeof(dev), "%s", q->dev);
			if (accept)
				agent_reply_empty(bz, q->msg);
			else
				agent_reply_error(bz, q->msg, "org.bluez.Error.Rejected",
						  "operator rejected the comparison");
			agent_req_free(q);
			notice(bz, TRANSPORT_BLUEZ_NOTICE_PAIRING_DONE, dev, serial,
			       accept ? "comparison confirmed" : "comparison rejected", 0,
			       accept ? 0 : -EACCES);
			return 0;
		}
	return -ENOENT;
}

const struct transport_ops transport_bluez_ops = {
	.name = "bluez",
	.desc = "BlueZ 5.66 over D-Bus (bluetoothd)",
	.init = bz_init,
	.deinit = bz_deinit,
	.scan_start = bz_scan_start,
	.scan_stop = bz_scan_stop,
	.connect = bz_connect,
	.disconnect = bz_disconnect,
	.exchange_mtu = bz_exchange_mtu,
	.discover = bz_discover,
	.read = bz_read,
	.write = bz_write,
	.subscribe = bz_subscribe,
	.cancel = bz_cancel,
	.mtu = bz_mtu,
};
