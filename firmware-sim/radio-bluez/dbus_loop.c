/* SPDX-License-Identifier: MIT */
/*
 * libdbus on sd-event (dbus_loop.h).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dbus_loop.h"

#define FD_WATCHES_MAX 4 /* libdbus uses 2 per fd (read, write) */

/* One record per fd: epoll takes an fd once, libdbus watches it twice. */
struct fd_rec {
	struct nl_dbus_loop *loop;
	struct fd_rec *next;
	int fd;
	unsigned n_ref;
	sd_event_source *src;
	DBusWatch *w[FD_WATCHES_MAX];
};

struct nl_dbus_loop {
	DBusConnection *conn;
	sd_event *ev;
	struct fd_rec *fds;
	sd_event_source *dispatch; /* defer source, enabled while data remains */
};

struct call {
	struct nl_dbus *bus;
	struct call *next;
	uint64_t id;
	DBusPendingCall *pending;
	nl_dbus_reply_fn reply;
	void *user_data;
	nl_dbus_destroy_fn destroy;
};

struct name_watch {
	struct nl_dbus *bus;
	struct name_watch *next;
	uint64_t id;
	char *name;
	char *rule;
	bool known; /* reported at least once */
	char *owner; /* unique name of the owner, NULL: none */
	uint64_t query; /* NameHasOwner / GetNameOwner call id */
	nl_dbus_name_fn cb;
	void *user_data;
	nl_dbus_destroy_fn destroy;
};

struct nl_dbus {
	DBusConnection *conn;
	struct nl_dbus_loop *loop;
	bool connected;
	bool filter_added;
	char *unique_name;
	uint64_t next_id;
	uint64_t hello;
	struct call *calls;
	struct name_watch *names;
	nl_dbus_ready_fn ready;
	nl_dbus_disconnected_fn disconnected;
	void *user_data;
};

/* ---- loop integration ---------------------------------------------- */

static uint32_t watch_events(const struct fd_rec *r)
{
	uint32_t ev = 0;

	for (size_t i = 0; i < FD_WATCHES_MAX; i++) {
		if (!r->w[i] || !dbus_watch_get_enabled(r->w[i]))
			continue;
		unsigned f = dbus_watch_get_flags(r->w[i]);
		if (f & DBUS_WATCH_READABLE)
			ev |= EPOLLIN;
		if (f & DBUS_WATCH_WRITABLE)
			ev |= EPOLLOUT;
	}
	return ev;
}

static void fd_rec_update(struct fd_rec *r)
{
	uint32_t ev = watch_events(r);

	if (!r->src)
		return;
	if (ev) {
		(void)sd_event_source_set_io_events(r->src, ev);
		(void)sd_event_source_set_enabled(r->src, SD_EVENT_ON);
	} else {
		(void)sd_event_source_set_enabled(r->src, SD_EVENT_OFF);
	}
}

static bool fd_rec_empty(const struct fd_rec *r)
{
	for (size_t i = 0; i < FD_WATCHES_MAX; i++)
		if (r->w[i])
			return false;
	return true;
}

static void fd_rec_unlink(struct fd_rec *r)
{
	struct fd_rec **pp = &r->loop->fds;

	while (*pp && *pp != r)
		pp = &(*pp)->next;
	if (*pp)
		*pp = r->next;
	r->next = NULL;
}

static void fd_rec_unref(struct fd_rec *r)
{
	if (--r->n_ref > 0)
		return;
	sd_event_source_disable_unref(r->src);
	free(r);
}

static void schedule_dispatch(struct nl_dbus_loop *l)
{
	if (l->dispatch &&
	    dbus_connection_get_dispatch_status(l->conn) == DBUS_DISPATCH_DATA_REMAINS)
		(void)sd_event_source_set_enabled(l->dispatch, SD_EVENT_ONESHOT);
}

static int on_io(sd_event_source *s, int fd, uint32_t revents, void *userdata)
{
	struct fd_rec *r = userdata;
	struct nl_dbus_loop *l = r->loop;

	/* A handled watch may remove watches of this record (on disconnect):
	 * the reference keeps the record alive, each slot is re-read. */
	r->n_ref++;
	for (size_t i = 0; i < FD_WATCHES_MAX; i++) {
		DBusWatch *w = r->w[i];
		if (!w || !dbus_watch_get_enabled(w))
			continue;
		unsigned f = dbus_watch_get_flags(w), h = 0;
		if ((f & DBUS_WATCH_READABLE) && (revents & EPOLLIN))
			h |= DBUS_WATCH_READABLE;
		if ((f & DBUS_WATCH_WRITABLE) && (revents & EPOLLOUT))
			h |= DBUS_WATCH_WRITABLE;
		if (revents & EPOLLERR)
			h |= DBUS_WATCH_ERROR;
		if (revents & EPOLLHUP)
			h |= DBUS_WATCH_HANGUP;
		if (h)
			(void)dbus_watch_handle(w, h);
	}
	fd_rec_unref(r);
	schedule_dispatch(l);
	return 0;
}

static dbus_bool_t add_watch(DBusWatch *w, void *data)
{
	struct nl_dbus_loop *l = data;
	int fd = dbus_watch_get_unix_fd(w);
	struct fd_rec *r;

	for (r = l->fds; r; r = r->next)
		if (r->fd == fd)
			break;
	if (!r) {
		r = calloc(1, sizeof(*r));
		if (!r)
			return FALSE;
		r->loop = l;
		r->fd = fd;
		r->n_ref = 1;
		if (sd_event_add_io(l->ev, &r->src, fd, 0, on_io, r) < 0) {
			free(r);
			return FALSE;
		}
		(void)sd_event_source_set_description(r->src, "dbus-io");
		r->next = l->fds;
		l->fds = r;
	}
	for (size_t i = 0; i < FD_WATCHES_MAX; i++) {
		if (!r->w[i]) {
			r->w[i] = w;
			dbus_watch_set_data(w, r, NULL);
			fd_rec_update(r);
			return TRUE;
		}
	}
	if (fd_rec_empty(r)) {
		fd_rec_unlink(r);
		fd_rec_unref(r);
	}
	return FALSE;
}

static void remove_watch(DBusWatch *w, void *data)
{
	struct fd_rec *r = dbus_watch_get_data(w);

	if (!r)
		return;
	dbus_watch_set_data(w, NULL, NULL);
	for (size_t i = 0; i < FD_WATCHES_MAX; i++)
		if (r->w[i] == w)
			r->w[i] = NULL;
	if (fd_rec_empty(r)) {
		/* Stop polling now (libdbus may close the fd next) and forget
		 * the record: a new watch on a reused fd gets a new one. */
		sd_event_source_disable_unref(r->src);
		r->src = NULL;
		fd_rec_unlink(r);
		fd_rec_unref(r);
	} else {
		fd_rec_update(r);
	}
}

static void toggle_watch(DBusWatch *w, void *data)
{
	struct fd_rec *r = dbus_watch_get_data(w);

	if (r)
		fd_rec_update(r);
}

static uint64_t now_usec(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static void timeout_arm(DBusTimeout *t, sd_event_source *s)
{
	if (!dbus_timeout_get_enabled(t)) {
		(void)sd_event_source_set_enabled(s, SD_EVENT_OFF);
		return;
	}
	uint64_t ms =
		(uint64_t)(dbus_timeout_get_interval(t) > 0 ? dbus_timeout_get_interval(t) : 0);
	(void)sd_event_source_set_time(s, now_usec() + ms * 1000u);
	(void)sd_event_source_set_enabled(s, SD_EVENT_ONESHOT);
}

static int on_timeout(sd_event_source *s, uint64_t usec, void *userdata)
{
	DBusTimeout *t = userdata;

	/* libdbus timeouts repeat until removed: re-arm first, since handling
	 * may remove the timeout (and free s with it). */
	timeout_arm(t, s);
	(void)dbus_timeout_handle(t);
	return 0;
}

static void timeout_src_free(void *p)
{
	sd_event_source_disable_unref(p);
}

static dbus_bool_t add_timeout(DBusTimeout *t, void *data)
{
	struct nl_dbus_loop *l = data;
	sd_event_source *s = NULL;

	if (sd_event_add_time(l->ev, &s, CLOCK_MONOTONIC, UINT64_MAX, 1000, on_timeout, t) < 0)
		return FALSE;
	(void)sd_event_source_set_description(s, "dbus-timeout");
	dbus_timeout_set_data(t, s, timeout_src_free);
	timeout_arm(t, s);
	return TRUE;
}

static void remove_timeout(DBusTimeout *t, void *data)
{
	/* The source goes with the data (timeout_src_free). */
	dbus_timeout_set_data(t, NULL, NULL);
}

static void toggle_timeout(DBusTimeout *t, void *data)
{
	sd_event_source *s = dbus_timeout_get_data(t);

	if (s)
		timeout_arm(t, s);
}

static int on_dispatch(sd_event_source *s, void *userdata)
{
	struct nl_dbus_loop *l = userdata;

	/* One message per loop iteration: other sources get their turn. */
	dbus_connection_ref(l->conn);
	if (dbus_connection_dispatch(l->conn) == DBUS_DISPATCH_DATA_REMAINS && l->dispatch)
		(void)sd_event_source_set_enabled(l->dispatch, SD_EVENT_ONESHOT);
	dbus_connection_unref(l->conn);
	return 0;
}

static void dispatch_status(DBusConnection *c, DBusDispatchStatus st, void *data)
{
	struct nl_dbus_loop *l = data;

	/* Never dispatch from here (libdbus holds its lock): just schedule. */
	if (st == DBUS_DISPATCH_DATA_REMAINS && l->dispatch)
		(void)sd_event_source_set_enabled(l->dispatch, SD_EVENT_ONESHOT);
}

int nl_dbus_loop_attach(DBusConnection *c, sd_event *ev, struct nl_dbus_loop **ret)
{
	struct nl_dbus_loop *l;
	int r;

	if (!c || !ev || !ret)
		return -EINVAL;
	l = calloc(1, sizeof(*l));
	if (!l)
		return -ENOMEM;
	l->conn = c;
	l->ev = sd_event_ref(ev);
	r = sd_event_add_defer(ev, &l->dispatch, on_dispatch, l);
	if (r < 0)
		goto fail;
	(void)sd_event_source_set_enabled(l->dispatch, SD_EVENT_OFF);
	(void)sd_event_source_set_description(l->dispatch, "dbus-dispatch");
	dbus_connection_set_exit_on_disconnect(c, FALSE);
	if (!dbus_connection_set_watch_functions(c, add_watch, remove_watch, toggle_watch, l,
						 NULL) ||
	    !dbus_connection_set_timeout_functions(c, add_timeout, remove_timeout, toggle_timeout,
						   l, NULL)) {
		r = -ENOMEM;
		goto fail;
	}
	dbus_connection_set_dispatch_status_function(c, dispatch_status, l, NULL);
	schedule_dispatch(l);
	*ret = l;
	return 0;
fail:
	nl_dbus_loop_detach(l);
	return r;
}

void nl_dbus_loop_detach(struct nl_dbus_loop *l)
{
	if (!l)
		return;
	if (l->conn) {
		dbus_connection_set_dispatch_status_function(l->conn, NULL, NULL, NULL);
		/* Removing the functions calls remove_watch/remove_timeout for
		 * every current one. */
		(void)dbus_connection_set_watch_functions(l->conn, NULL, NULL, NULL, NULL, NULL);
		(void)dbus_connection_set_timeout_functions(l->conn, NULL, NULL, NULL, NULL, NULL);
	}
	while (l->fds) {
		struct fd_rec *r = l->fds;
		l->fds = r->next;
		sd_event_source_disable_unref(r->src);
		free(r);
	}
	sd_event_source_disable_unref(l->dispatch);
	sd_event_unref(l->ev);
	free(l);
}

/* ---- errors ---------------------------------------------------------- */

int nl_dbus_errno(const char *n)
{
	static const struct {
		const char *name;
		int err;
	} map[] = {
		{DBUS_ERROR_NO_REPLY, -ETIMEDOUT},
		{DBUS_ERROR_TIMEOUT, -ETIMEDOUT},
		{DBUS_ERROR_TIMED_OUT, -ETIMEDOUT},
		{DBUS_ERROR_SERVICE_UNKNOWN, -EHOSTUNREACH},
		{DBUS_ERROR_NAME_HAS_NO_OWNER, -EHOSTUNREACH},
		{DBUS_ERROR_ACCESS_DENIED, -EACCES},
		{DBUS_ERROR_NO_MEMORY, -ENOMEM},
		{DBUS_ERROR_DISCONNECTED, -ENOTCONN},
		{DBUS_ERROR_NO_SERVER, -ECONNREFUSED},
		{DBUS_ERROR_UNKNOWN_METHOD, -EOPNOTSUPP},
		{DBUS_ERROR_UNKNOWN_OBJECT, -EOPNOTSUPP},
		{DBUS_ERROR_UNKNOWN_INTERFACE, -EOPNOTSUPP},
		{DBUS_ERROR_INVALID_ARGS, -EINVAL},
		{"org.bluez.Error.AlreadyExists", -EEXIST},
		{"org.bluez.Error.DoesNotExist", -ENOENT},
		{"org.bluez.Error.InvalidArguments", -EINVAL},
		{"org.bluez.Error.NotReady", -EAGAIN},
		{"org.bluez.Error.InProgress", -EINPROGRESS},
		{"org.bluez.Error.NotPermitted", -EPERM},
		{"org.bluez.Error.NotSupported", -EOPNOTSUPP},
	};

	if (!n)
		return -EIO;
	for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++)
		if (strcmp(map[i].name, n) == 0)
			return map[i].err;
	return -EIO;
}

int nl_dbus_reply_result(DBusMessage *reply)
{
	if (!reply)
		return -EIO;
	if (dbus_message_get_type(reply) == DBUS_MESSAGE_TYPE_ERROR)
		return nl_dbus_errno(dbus_message_get_error_name(reply));
	return 0;
}

const char *nl_dbus_error_name(DBusMessage *reply)
{
	const char *n = NULL;

	if (reply && dbus_message_get_type(reply) == DBUS_MESSAGE_TYPE_ERROR)
		n = dbus_message_get_error_name(reply);
	return n ? n : "";
}

/* ---- calls ------------------------------------------------------------- */

static void call_unlink(struct call *c)
{
	struct call **pp = &c->bus->calls;

	while (*pp && *pp != c)
		pp = &(*pp)->next;
	if (*pp)
		*pp = c->next;
}

static void call_free(void *p)
{
	struct call *c = p;

	if (c->destroy)
		c->destroy(c->user_data);
	free(c);
}

static void call_notify(DBusPendingCall *pending, void *data)
{
	struct call *c = data;
	DBusMessage *reply = dbus_pending_call_steal_reply(pending);

	call_unlink(c);
	if (c->reply && reply)
		c->reply(reply, c->user_data);
	if (reply)
		dbus_message_unref(reply);
	/* The pending call's data (c) is freed with the pending call. */
	dbus_pending_call_unref(pending);
}

uint64_t nl_dbus_call(struct nl_dbus *b, DBusMessage *msg, int timeout_ms, nl_dbus_reply_fn reply,
		      void *user_data, nl_dbus_destroy_fn destroy)
{
	DBusPendingCall *pending = NULL;
	struct call *c;

	if (!b || !msg || timeout_ms <= 0 || !b->connected)
		return 0;
	c = calloc(1, sizeof(*c));
	if (!c)
		return 0;
	if (!dbus_connection_send_with_reply(b->conn, msg, &pending, timeout_ms) || !pending) {
		free(c);
		return 0;
	}
	c->bus = b;
	c->id = ++b->next_id;
	c->pending = pending;
	c->reply = reply;
	c->user_data = user_data;
	c->destroy = destroy;
	if (!dbus_pending_call_set_notify(pending, call_notify, c, call_free)) {
		dbus_pending_call_cancel(pending);
		dbus_pending_call_unref(pending);
		free(c);
		return 0;
	}
	/* Single-threaded and not dispatching: the reply cannot have come
	 * yet, so notify is sure to run (or cancel to free c). */
	c->next = b->calls;
	b->calls = c;
	return c->id;
}

bool nl_dbus_cancel(struct nl_dbus *b, uint64_t id)
{
	if (!b || id == 0)
		return false;
	for (struct call *c = b->calls; c; c = c->next) {
		if (c->id != id)
			continue;
		DBusPendingCall *p = c->pending;
		call_unlink(c);
		dbus_pending_call_cancel(p);
		dbus_pending_call_unref(p); /* frees c through call_free */
		return true;
	}
	return false;
}

int nl_dbus_send(struct nl_dbus *b, DBusMessage *msg)
{
	if (!b || !msg)
		return -EINVAL;
	if (!b->connected)
		return -ENOTCONN;
	return dbus_connection_send(b->conn, msg, NULL) ? 0 : -ENOMEM;
}

int nl_dbus_add_match(struct nl_dbus *b, const char *rule)
{
	if (!b || !rule)
		return -EINVAL;
	if (!b->connected)
		return -ENOTCONN;
	/* A NULL error makes libdbus send AddMatch without waiting. */
	dbus_bus_add_match(b->conn, rule, NULL);
	return 0;
}

int nl_dbus_remove_match(struct nl_dbus *b, const char *rule)
{
	if (!b || !rule)
		return -EINVAL;
	if (!b->connected)
		return -ENOTCONN;
	dbus_bus_remove_match(b->conn, rule, NULL);
	return 0;
}

/* ---- name watching ----------------------------------------------------- */

static bool name_differs(const struct name_watch *w, const char *owner)
{
	if (!w->known)
		return true;
	if (!w->owner || !owner)
		return w->owner != owner;
	return strcmp(w->owner, owner) != 0;
}

/* false only when the new state could not be recorded (ENOMEM). The
 * callback may free w. */
static bool name_report(struct name_watch *w, const char *owner)
{
	char *copy = NULL;

	if (!name_differs(w, owner))
		return true;
	if (owner && !(copy = strdup(owner)))
		return false; /* keep the old state; a later change reports again */
	free(w->owner);
	w->owner = copy;
	w->known = true;
	w->cb(w->name, w->owner, w->user_data);
	return true;
}

static void get_name_owner_reply(DBusMessage *reply, void *user_data)
{
	struct name_watch *w = user_data;
	const char *owner = NULL;

	w->query = 0;
	/* An error means the name went away meanwhile: NameOwnerChanged
	 * reports that. */
	if (nl_dbus_reply_result(reply) < 0 ||
	    !dbus_message_get_args(reply, NULL, DBUS_TYPE_STRING, &owner, DBUS_TYPE_INVALID))
		return;
	(void)name_report(w, owner);
}

static void name_has_owner_reply(DBusMessage *reply, void *user_data)
{
	struct name_watch *w = user_data;
	dbus_bool_t has = FALSE;
	DBusMessage *m;

	w->query = 0;
	if (nl_dbus_reply_result(reply) < 0 ||
	    !dbus_message_get_args(reply, NULL, DBUS_TYPE_BOOLEAN, &has, DBUS_TYPE_INVALID))
		return; /* NameOwnerChanged still reports later changes */
	if (!has) {
		(void)name_report(w, NULL);
		return;
	}
	/* Which connection owns it (to check who calls us): GetNameOwner is
	 * answered by the bus itself, so it cannot start activation either. */
	m = dbus_message_new_method_call(DBUS_SERVICE_DBUS, DBUS_PATH_DBUS, DBUS_INTERFACE_DBUS,
					 "GetNameOwner");
	if (m && dbus_message_append_args(m, DBUS_TYPE_STRING, &w->name, DBUS_TYPE_INVALID))
		w->query = nl_dbus_call(w->bus, m, NL_DBUS_CALL_TIMEOUT_MS, get_name_owner_reply, w,
					NULL);
	if (m)
		dbus_message_unref(m);
}

static void name_watch_free(struct name_watch *w)
{
	if (!w)
		return;
	if (w->query)
		nl_dbus_cancel(w->bus, w->query);
	if (w->rule && w->bus->connected)
		nl_dbus_remove_match(w->bus, w->rule);
	if (w->destroy)
		w->destroy(w->user_data);
	free(w->rule);
	free(w->name);
	free(w->owner);
	free(w);
}

uint64_t nl_dbus_watch_name(struct nl_dbus *b, const char *name, nl_dbus_name_fn cb,
			    void *user_data, nl_dbus_destroy_fn destroy)
{
	struct name_watch *w;
	DBusMessage *m = NULL;

	if (!b || !name || !cb || !b->connected || !dbus_validate_bus_name(name, NULL))
		return 0;
	w = calloc(1, sizeof(*w));
	if (!w)
		return 0;
	w->bus = b;
	w->cb = cb;
	w->user_data = user_data;
	w->name = strdup(name);
	if (!w->name ||
	    asprintf(&w->rule,
		     "type='signal',sender='" DBUS_SERVICE_DBUS "',path='" DBUS_PATH_DBUS
		     "',interface='" DBUS_INTERFACE_DBUS "',member='NameOwnerChanged',arg0='%s'",
		     name) < 0) {
		w->rule = NULL;
		goto fail;
	}
	/* AddMatch goes out before NameHasOwner and the bus handles them in
	 * order, so no change between the two is missed. */
	if (nl_dbus_add_match(b, w->rule) < 0)
		goto fail;
	m = dbus_message_new_method_call(DBUS_SERVICE_DBUS, DBUS_PATH_DBUS, DBUS_INTERFACE_DBUS,
					 "NameHasOwner");
	if (!m || !dbus_message_append_args(m, DBUS_TYPE_STRING, &w->name, DBUS_TYPE_INVALID))
		goto fail;
	w->query = nl_dbus_call(b, m, NL_DBUS_CALL_TIMEOUT_MS, name_has_owner_reply, w, NULL);
	dbus_message_unref(m);
	m = NULL;
	if (!w->query)
		goto fail;
	w->id = ++b->next_id;
	w->next = b->names;
	b->names = w;
	w->destroy = destroy;
	return w->id;
fail:
	if (m)
		dbus_message_unref(m);
	name_watch_free(w);
	return 0;
}

bool nl_dbus_unwatch_name(struct nl_dbus *b, uint64_t id)
{
	if (!b || id == 0)
		return false;
	for (struct name_watch **pp = &b->names; *pp; pp = &(*pp)->next) {
		struct name_watch *w = *pp;
		if (w->id != id)
			continue;
		*pp = w->next;
		name_watch_free(w);
		return true;
	}
	return false;
}

static void on_name_owner_changed(struct nl_dbus *b, DBusMessage *m)
{
	const char *name, *old_owner, *new_owner;

	if (!dbus_message_get_args(m, NULL, DBUS_TYPE_STRING, &name, DBUS_TYPE_STRING, &old_owner,
				   DBUS_TYPE_STRING, &new_owner, DBUS_TYPE_INVALID))
		return;
	/* A callback may unwatch any watch: restart the scan after each. */
	for (;;) {
		struct name_watch *w;
		const char *owner = new_owner[0] ? new_owner : NULL;
		for (w = b->names; w; w = w->next)
			if (strcmp(w->name, name) == 0 && name_differs(w, owner))
				break;
		if (!w)
			break;
		if (!name_report(w, owner))
			break; /* could not record it (ENOMEM): do not spin */
	}
}

/* ---- connection ---------------------------------------------------------- */

/* libdbus drops the pending calls of a closed connection without calling
 * their notify functions: answer each with a Disconnected error. */
static void fail_all_calls(struct nl_dbus *b)
{
	DBusMessage *err = dbus_message_new(DBUS_MESSAGE_TYPE_ERROR);

	if (err && !dbus_message_set_error_name(err, DBUS_ERROR_DISCONNECTED)) {
		dbus_message_unref(err);
		err = NULL;
	}
	while (b->calls) {
		struct call *c = b->calls;
		DBusPendingCall *p = c->pending;
		b->calls = c->next;
		if (c->reply && err)
			c->reply(err, c->user_data);
		dbus_pending_call_cancel(p);
		dbus_pending_call_unref(p); /* frees c through call_free */
	}
	if (err)
		dbus_message_unref(err);
}

static DBusHandlerResult filter(DBusConnection *c, DBusMessage *m, void *data)
{
	struct nl_dbus *b = data;

	if (dbus_message_is_signal(m, DBUS_INTERFACE_LOCAL, "Disconnected") &&
	    dbus_message_has_path(m, DBUS_PATH_LOCAL)) {
		if (b->connected) {
			b->connected = false;
			fail_all_calls(b);
			if (b->disconnected)
				b->disconnected(b, b->user_data);
		}
		return DBUS_HANDLER_RESULT_HANDLED;
	}
	if (dbus_message_is_signal(m, DBUS_INTERFACE_DBUS, "NameOwnerChanged") &&
	    dbus_message_has_sender(m, DBUS_SERVICE_DBUS))
		on_name_owner_changed(b, m);
	return DBUS_HANDLER_RESULT_NOT_YET_HANDLED;
}

static void hello_reply(DBusMessage *reply, void *user_data)
{
	struct nl_dbus *b = user_data;
	const char *name = NULL;
	int r;

	b->hello = 0;
	r = nl_dbus_reply_result(reply);
	if (r == 0 &&
	    (!dbus_message_get_args(reply, NULL, DBUS_TYPE_STRING, &name, DBUS_TYPE_INVALID) ||
	     !(b->unique_name = strdup(name)) || !dbus_bus_set_unique_name(b->conn, name)))
		r = -ENOMEM;
	if (b->ready)
		b->ready(b, r, b->user_data);
}

int nl_dbus_open(sd_event *ev, const char *address, nl_dbus_ready_fn ready,
		 nl_dbus_disconnected_fn disconnected, void *user_data, struct nl_dbus **ret)
{
	struct nl_dbus *b;
	DBusError err;
	DBusMessage *m = NULL;
	int r;

	if (!ev || !ret)
		return -EINVAL;
	if (!address || !*address) {
		address = getenv("DBUS_SYSTEM_BUS_ADDRESS");
		if (!address || !*address)
			address = "unix:path=/var/run/dbus/system_bus_socket";
	}
	b = calloc(1, sizeof(*b));
	if (!b)
		return -ENOMEM;
	b->ready = ready;
	b->disconnected = disconnected;
	b->user_data = user_data;
	dbus_error_init(&err);
	/* Connecting a local socket does not block; authentication then runs
	 * inside the loop with the first I/O. */
	b->conn = dbus_connection_open_private(address, &err);
	if (!b->conn) {
		r = dbus_error_has_name(&err, DBUS_ERROR_NO_MEMORY)	   ? -ENOMEM
		    : dbus_error_has_name(&err, DBUS_ERROR_FILE_NOT_FOUND) ? -ENOENT
									   : -ECONNREFUSED;
		dbus_error_free(&err);
		goto fail;
	}
	b->connected = true;
	r = nl_dbus_loop_attach(b->conn, ev, &b->loop);
	if (r < 0)
		goto fail;
	if (!dbus_connection_add_filter(b->conn, filter, b, NULL)) {
		r = -ENOMEM;
		goto fail;
	}
	b->filter_added = true;
	/* dbus_bus_register() would block: send Hello ourselves. */
	m = dbus_message_new_method_call(DBUS_SERVICE_DBUS, DBUS_PATH_DBUS, DBUS_INTERFACE_DBUS,
					 "Hello");
	if (!m) {
		r = -ENOMEM;
		goto fail;
	}
	b->hello = nl_dbus_call(b, m, NL_DBUS_CALL_TIMEOUT_MS, hello_reply, b, NULL);
	dbus_message_unref(m);
	if (!b->hello) {
		r = -ENOMEM;
		goto fail;
	}
	*ret = b;
	return 0;
fail:
	nl_dbus_free(b);
	return r;
}

void nl_dbus_free(struct nl_dbus *b)
{
	if (!b)
		return;
	b->ready = NULL;
	b->disconnected = NULL;
	while (b->names) {
		struct name_watch *w = b->names;
		b->names = w->next;
		name_watch_free(w);
	}
	while (b->calls)
		nl_dbus_cancel(b, b->calls->id);
	if (b->conn) {
		if (b->filter_added)
			dbus_connection_remove_filter(b->conn, filter, b);
		nl_dbus_loop_detach(b->loop);
		dbus_connection_close(b->conn);
		dbus_connection_unref(b->conn);
	} else {
		nl_dbus_loop_detach(b->loop);
	}
	free(b->unique_name);
	free(b);
}

DBusConnection *nl_dbus_connection(struct nl_dbus *b)
{
	return b ? b->conn : NULL;
}

const char *nl_dbus_unique_name(struct nl_dbus *b)
{
	return b ? b->unique_name : NULL;
}

bool nl_dbus_is_connected(struct nl_dbus *b)
{
	return b && b->connected;
}
