/* SPDX-License-Identifier: MIT */
/*
 * dbus_loop against a private dbus-daemon started by the test (config in a
 * fresh temporary directory): registration, method calls with replies, with
 * a timeout and cancelled, a 1 MiB round trip (write watches), a bus name
 * appearing, vanishing on release and on disconnect, and the bus going away.
 * No timing is asserted: a watchdog only turns a hang into a failure.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "dbus_loop.h"

#define TEST_NAME "org.needlelink.Test"
#define WATCHDOG_USEC (60ULL * 1000000ULL)

static int failures;

#define CHECK(cond)                                                                              \
	do {                                                                                     \
		if (!(cond)) {                                                                   \
			fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
			failures++;                                                              \
		}                                                                                \
	} while (0)

static sd_event *ev;
static pid_t daemon_pid;
static char tmpdir[] = "/tmp/nl-dbus-test-XXXXXX";

/* ---- running the loop until a condition holds ----------------------------- */

static bool watchdog_fired;

static int on_watchdog(sd_event_source *s, uint64_t usec, void *userdata)
{
	watchdog_fired = true;
	return 0;
}

static bool run_until(bool (*cond)(void *), void *arg)
{
	sd_event_source *wd = NULL;
	uint64_t now;

	watchdog_fired = false;
	sd_event_now(ev, CLOCK_MONOTONIC, &now);
	sd_event_add_time(ev, &wd, CLOCK_MONOTONIC, now + WATCHDOG_USEC, 0, on_watchdog, NULL);
	while (!cond(arg) && !watchdog_fired)
		if (sd_event_run(ev, UINT64_MAX) < 0)
			break;
	sd_event_source_disable_unref(wd);
	return cond(arg);
}

static bool flag_set(void *arg)
{
	return *(bool *)arg;
}

static bool int_nonneg(void *arg)
{
	return *(int *)arg >= 0;
}

/* ---- the private bus ---------------------------------------------------- */

static int start_daemon(char *addr, size_t size)
{
	char conf[256];
	int pfd[2];
	FILE *f;

	if (!mkdtemp(tmpdir))
		return -errno;
	snprintf(conf, sizeof(conf), "%s/bus.conf", tmpdir);
	f = fopen(conf, "w");
	if (!f)
		return -errno;
	fprintf(f,
		"<!DOCTYPE busconfig PUBLIC \"-//freedesktop//DTD D-Bus Bus Configuration "
		"1.0//EN\"\n"
		" \"http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd\">\n"
		"<busconfig>\n"
		"  <type>session</type>\n"
		"  <listen>unix:path=%s/bus</listen>\n"
		"  <auth>EXTERNAL</auth>\n"
		"  <policy context=\"default\">\n"
		"    <allow send_destination=\"*\" eavesdrop=\"true\"/>\n"
		"    <allow eavesdrop=\"true\"/>\n"
		"    <allow own=\"*\"/>\n"
		"  </policy>\n"
		"</busconfig>\n",
		tmpdir);
	fclose(f);
	if (pipe(pfd) < 0)
		return -errno;
	daemon_pid = fork();
	if (daemon_pid < 0)
		return -errno;
	if (daemon_pid == 0) {
		char arg[300];
		dup2(pfd[1], 1);
		close(pfd[0]);
		snprintf(arg, sizeof(arg), "--config-file=%s", conf);
		execlp("dbus-daemon", "dbus-daemon", arg, "--nofork", "--print-address=1",
		       (char *)NULL);
		_exit(127);
	}
	close(pfd[1]);
	f = fdopen(pfd[0], "r");
	if (!f || !fgets(addr, (int)size, f)) {
		if (f)
			fclose(f);
		return -EIO;
	}
	fclose(f);
	addr[strcspn(addr, "\n")] = '\0';
	return addr[0] ? 0 : -EIO;
}

static void stop_daemon(void)
{
	char path[300];

	if (daemon_pid > 0) {
		kill(daemon_pid, SIGTERM);
		waitpid(daemon_pid, NULL, 0);
		daemon_pid = 0;
	}
	snprintf(path, sizeof(path), "%s/bus.conf", tmpdir);
	unlink(path);
	snprintf(path, sizeof(path), "%s/bus", tmpdir);
	unlink(path);
	rmdir(tmpdir);
}

/* ---- a connection with its state ------------------------------------------- */

struct peer {
	struct nl_dbus *bus;
	int ready; /* -1 until the ready callback */
	bool lost;
	DBusMessage *held; /* a "Never" call, never answered */
};

static void on_ready(struct nl_dbus *b, int err, void *user_data)
{
	struct peer *p = user_data;

	p->ready = err < 0 ? 0 : 1;
	if (err < 0)
		fprintf(stderr, "ready failed: %s\n", strerror(-err));
}

static void on_lost(struct nl_dbus *b, void *user_data)
{
	struct peer *p = user_data;

	p->lost = true;
}

static DBusHandlerResult on_method(DBusConnection *c, DBusMessage *m, void *data)
{
	struct peer *p = data;

	if (dbus_message_is_method_call(m, "org.needlelink.Test", "Echo")) {
		DBusMessage *r = dbus_message_copy(m);
		DBusMessage *reply = dbus_message_new_method_return(m);
		DBusMessageIter in, out;
		/* Copy every argument back. */
		dbus_message_iter_init(m, &in);
		dbus_message_iter_init_append(reply, &out);
		if (dbus_message_iter_get_arg_type(&in) == DBUS_TYPE_ARRAY) {
			DBusMessageIter a, oa;
			const uint8_t *v;
			int n;
			dbus_message_iter_recurse(&in, &a);
			dbus_message_iter_get_fixed_array(&a, &v, &n);
			dbus_message_iter_open_container(&out, DBUS_TYPE_ARRAY, "y", &oa);
			dbus_message_iter_append_fixed_array(&oa, DBUS_TYPE_BYTE, &v, n);
			dbus_message_iter_close_container(&out, &oa);
		} else if (dbus_message_iter_get_arg_type(&in) == DBUS_TYPE_STRING) {
			const char *s;
			dbus_message_iter_get_basic(&in, &s);
			dbus_message_iter_append_basic(&out, DBUS_TYPE_STRING, &s);
		}
		dbus_message_unref(r);
		nl_dbus_send(p->bus, reply);
		dbus_message_unref(reply);
		return DBUS_HANDLER_RESULT_HANDLED;
	}
	if (dbus_message_is_method_call(m, "org.needlelink.Test", "Never")) {
		if (p->held)
			dbus_message_unref(p->held);
		p->held = dbus_message_ref(m);
		return DBUS_HANDLER_RESULT_HANDLED;
	}
	return DBUS_HANDLER_RESULT_NOT_YET_HANDLED;
}

static const DBusObjectPathVTable vtable = {.message_function = on_method};

static int peer_open(struct peer *p, const char *addr)
{
	int r;

	memset(p, 0, sizeof(*p));
	p->ready = -1;
	r = nl_dbus_open(ev, addr, on_ready, on_lost, p, &p->bus);
	if (r < 0)
		return r;
	if (!run_until(int_nonneg, &p->ready) || p->ready != 1)
		return -EIO;
	if (!dbus_connection_register_object_path(nl_dbus_connection(p->bus), "/t", &vtable, p))
		return -ENOMEM;
	return 0;
}

static void peer_close(struct peer *p)
{
	if (p->held)
		dbus_message_unref(p->held);
	p->held = NULL;
	nl_dbus_free(p->bus);
	p->bus = NULL;
}

/* ---- calls -------------------------------------------------------------------- */

struct reply_state {
	bool done;
	bool destroyed;
	int result;
	char *str;
	size_t bytes;
	bool bytes_ok;
};

static void on_reply(DBusMessage *reply, void *user_data)
{
	struct reply_state *s = user_data;
	DBusMessageIter it;

	s->done = true;
	s->result = nl_dbus_reply_result(reply);
	if (s->result < 0 || !dbus_message_iter_init(reply, &it))
		return;
	if (dbus_message_iter_get_arg_type(&it) == DBUS_TYPE_STRING) {
		const char *str;
		dbus_message_iter_get_basic(&it, &str);
		s->str = strdup(str);
	} else if (dbus_message_iter_get_arg_type(&it) == DBUS_TYPE_ARRAY) {
		DBusMessageIter a;
		const uint8_t *v;
		int n;
		dbus_message_iter_recurse(&it, &a);
		dbus_message_iter_get_fixed_array(&a, &v, &n);
		s->bytes = (size_t)n;
		s->bytes_ok = true;
		for (int i = 0; i < n; i++)
			if (v[i] != (uint8_t)(i * 7 + 3))
				s->bytes_ok = false;
	}
}

static void on_destroy(void *user_data)
{
	struct reply_state *s = user_data;

	s->destroyed = true;
}

static DBusMessage *test_call(const char *dest, const char *method)
{
	return dbus_message_new_method_call(dest, "/t", "org.needlelink.Test", method);
}

static bool all_done(void *arg)
{
	struct reply_state *s = arg;

	return s->done && s->destroyed;
}

static void test_calls(struct peer *a, struct peer *b)
{
	const char *dest = nl_dbus_unique_name(b->bus);
	struct reply_state s;
	DBusMessage *m;
	const char *hello = "hello over sd-event";
	uint64_t id;

	/* A reply. */
	memset(&s, 0, sizeof(s));
	m = test_call(dest, "Echo");
	dbus_message_append_args(m, DBUS_TYPE_STRING, &hello, DBUS_TYPE_INVALID);
	id = nl_dbus_call(a->bus, m, 5000, on_reply, &s, on_destroy);
	dbus_message_unref(m);
	CHECK(id > 0);
	CHECK(run_until(all_done, &s));
	CHECK(s.result == 0);
	CHECK(s.str && strcmp(s.str, hello) == 0);
	free(s.str);

	/* No reply: libdbus' timeout, on an sd-event timer, ends the call. */
	memset(&s, 0, sizeof(s));
	m = test_call(dest, "Never");
	id = nl_dbus_call(a->bus, m, 200, on_reply, &s, on_destroy);
	dbus_message_unref(m);
	CHECK(id > 0);
	CHECK(run_until(all_done, &s));
	CHECK(s.result == -ETIMEDOUT);
	CHECK(b->held != NULL);

	/* Cancelled: destroy runs, reply never. */
	memset(&s, 0, sizeof(s));
	m = test_call(dest, "Never");
	id = nl_dbus_call(a->bus, m, 60000, on_reply, &s, on_destroy);
	dbus_message_unref(m);
	CHECK(id > 0);
	CHECK(nl_dbus_cancel(a->bus, id));
	CHECK(s.destroyed && !s.done);
	CHECK(!nl_dbus_cancel(a->bus, id));

	/* 1 MiB each way: the socket fills, so write watches are exercised. */
	size_t n = 1u << 20;
	uint8_t *big = malloc(n);
	for (size_t i = 0; i < n; i++)
		big[i] = (uint8_t)(i * 7 + 3);
	memset(&s, 0, sizeof(s));
	m = test_call(dest, "Echo");
	DBusMessageIter it, arr;
	const uint8_t *p = big;
	dbus_message_iter_init_append(m, &it);
	dbus_message_iter_open_container(&it, DBUS_TYPE_ARRAY, "y", &arr);
	dbus_message_iter_append_fixed_array(&arr, DBUS_TYPE_BYTE, &p, (int)n);
	dbus_message_iter_close_container(&it, &arr);
	id = nl_dbus_call(a->bus, m, 30000, on_reply, &s, on_destroy);
	dbus_message_unref(m);
	free(big);
	CHECK(id > 0);
	CHECK(run_until(all_done, &s));
	CHECK(s.result == 0);
	CHECK(s.bytes == n && s.bytes_ok);

	/* Unknown destination: an error, not a hang. */
	memset(&s, 0, sizeof(s));
	m = test_call("org.needlelink.Nobody", "Echo");
	id = nl_dbus_call(a->bus, m, 5000, on_reply, &s, on_destroy);
	dbus_message_unref(m);
	CHECK(id > 0);
	CHECK(run_until(all_done, &s));
	CHECK(s.result == -EHOSTUNREACH);

	/* Invalid arguments are refused up front. */
	m = test_call(dest, "Echo");
	CHECK(nl_dbus_call(a->bus, m, 0, on_reply, &s, on_destroy) == 0);
	dbus_message_unref(m);
}

/* ---- name watching ------------------------------------------------------------- */

struct name_state {
	int events;
	int present; /* last reported */
	char owner[64];
	int want_events;
};

static void on_name(const char *name, const char *owner, void *user_data)
{
	struct name_state *n = user_data;

	n->events++;
	n->present = owner != NULL;
	snprintf(n->owner, sizeof(n->owner), "%s", owner ? owner : "");
}

static bool name_events(void *arg)
{
	struct name_state *n = arg;

	return n->events >= n->want_events;
}

static void call_bus(struct peer *p, const char *method)
{
	struct reply_state s;
	const char *name = TEST_NAME;
	uint32_t flags = 0;
	DBusMessage *m = dbus_message_new_method_call(DBUS_SERVICE_DBUS, DBUS_PATH_DBUS,
						      DBUS_INTERFACE_DBUS, method);

	if (strcmp(method, "RequestName") == 0)
		dbus_message_append_args(m, DBUS_TYPE_STRING, &name, DBUS_TYPE_UINT32, &flags,
					 DBUS_TYPE_INVALID);
	else
		dbus_message_append_args(m, DBUS_TYPE_STRING, &name, DBUS_TYPE_INVALID);
	memset(&s, 0, sizeof(s));
	CHECK(nl_dbus_call(p->bus, m, 5000, on_reply, &s, on_destroy) > 0);
	dbus_message_unref(m);
	CHECK(run_until(all_done, &s));
	CHECK(s.result == 0);
}

static void test_names(struct peer *a, const char *addr)
{
	struct name_state n = {.present = -1, .want_events = 1};
	struct peer b2;
	uint64_t id;

	id = nl_dbus_watch_name(a->bus, TEST_NAME, on_name, &n, NULL);
	CHECK(id > 0);
	CHECK(run_until(name_events, &n));
	CHECK(n.events == 1 && n.present == 0);

	CHECK(peer_open(&b2, addr) == 0);
	call_bus(&b2, "RequestName");
	n.want_events = 2;
	CHECK(run_until(name_events, &n));
	CHECK(n.present == 1);
	CHECK(strcmp(n.owner, nl_dbus_unique_name(b2.bus)) == 0);

	call_bus(&b2, "ReleaseName");
	n.want_events = 3;
	CHECK(run_until(name_events, &n));
	CHECK(n.present == 0);

	/* The owner's connection closing makes the name vanish too. */
	call_bus(&b2, "RequestName");
	n.want_events = 4;
	CHECK(run_until(name_events, &n));
	CHECK(n.present == 1);
	peer_close(&b2);
	n.want_events = 5;
	CHECK(run_until(name_events, &n));
	CHECK(n.present == 0);
	CHECK(n.events == 5);

	/* A watch on a name that already has an owner starts "present". */
	struct name_state n2 = {.present = -1, .want_events = 1};
	const char *own = nl_dbus_unique_name(a->bus);
	uint64_t id2 = nl_dbus_watch_name(a->bus, own, on_name, &n2, NULL);
	CHECK(id2 > 0);
	CHECK(run_until(name_events, &n2));
	CHECK(n2.present == 1);
	CHECK(strcmp(n2.owner, own) == 0);
	CHECK(n2.events == 1);

	CHECK(nl_dbus_unwatch_name(a->bus, id));
	CHECK(nl_dbus_unwatch_name(a->bus, id2));
	CHECK(!nl_dbus_unwatch_name(a->bus, id));
	CHECK(nl_dbus_watch_name(a->bus, "not a bus name", on_name, &n, NULL) == 0);
}

int main(void)
{
	char addr[512];
	struct peer a, b;

	signal(SIGPIPE, SIG_IGN);
	if (sd_event_new(&ev) < 0) {
		fprintf(stderr, "sd_event_new failed\n");
		return 1;
	}
	if (start_daemon(addr, sizeof(addr)) < 0) {
		fprintf(stderr, "cannot start dbus-daemon (Debian package dbus-daemon)\n");
		stop_daemon();
		return 1;
	}
	CHECK(nl_dbus_open(ev, "unix:path=/nonexistent/socket", on_ready, on_lost, &a, &a.bus) < 0);
	if (peer_open(&a, addr) < 0 || peer_open(&b, addr) < 0) {
		fprintf(stderr, "cannot connect to %s\n", addr);
		stop_daemon();
		return 1;
	}
	CHECK(nl_dbus_unique_name(a.bus) && nl_dbus_unique_name(b.bus));
	CHECK(strcmp(nl_dbus_unique_name(a.bus), nl_dbus_unique_name(b.bus)) != 0);

	test_calls(&a, &b);
	test_names(&a, addr);

	/* The bus goes away: reported, and calls fail instead of hanging. */
	struct reply_state s;
	memset(&s, 0, sizeof(s));
	DBusMessage *m = test_call(nl_dbus_unique_name(b.bus), "Never");
	uint64_t id = nl_dbus_call(a.bus, m, 60000, on_reply, &s, on_destroy);
	dbus_message_unref(m);
	CHECK(id > 0);
	kill(daemon_pid, SIGTERM);
	waitpid(daemon_pid, NULL, 0);
	daemon_pid = 0;
	CHECK(run_until(flag_set, &a.lost));
	CHECK(run_until(all_done, &s));
	CHECK(s.result < 0);
	CHECK(!nl_dbus_is_connected(a.bus));
	m = test_call(":1.1", "Echo");
	CHECK(nl_dbus_call(a.bus, m, 1000, on_reply, &s, on_destroy) == 0);
	dbus_message_unref(m);

	peer_close(&a);
	peer_close(&b);
	stop_daemon();
	sd_event_unref(ev);
	dbus_shutdown();
	if (failures) {
		fprintf(stderr, "%d check(s) failed\n", failures);
		return 1;
	}
	printf("test-dbus-loop: all checks passed\n");
	return 0;
}
