/* SPDX-License-Identifier: MIT */
/*
 * End to end against a real mosquitto, started here on a random loopback
 * port with a generated config, and the nlgw-test-publisher helper (the real
 * config, journal and mqtt modules). A Paho subscriber in this process
 * checks what arrives.
 *
 *   test-mqtt PUBLISHER basic           all messages, in id order, with
 *                                       nl-msg-id; request/response; state
 *   test-mqtt PUBLISHER basic-311       the same with the gateway on MQTT
 *                                       3.1.1 (no properties: the reply goes
 *                                       to BASE/pens/SERIAL/response/NAME)
 *   test-mqtt PUBLISHER basic-tls       the same with the gateway on TLS with a
 *                                       client certificate (CA and certs
 *                                       made here with the openssl tool)
 *   test-mqtt PUBLISHER broker-restart  broker stopped mid-stream and
 *                                       restarted on the same port
 *   test-mqtt PUBLISHER publisher-kill  publisher SIGKILLed mid-stream,
 *                                       restarted: nothing lost, same ids
 *   test-mqtt PUBLISHER busy-loop       the publisher's loop never idles (a
 *                                       source always pending) and rows come
 *                                       faster than the window drains: the
 *                                       outbox falls behind, pen input goes
 *                                       first, and it still drains, in order
 *   test-mqtt PUBLISHER refused-retry   the broker's ACL refuses the stream
 *                                       (MQTT 5 PUBACK "not authorized")
 *                                       until the test allows it (SIGHUP):
 *                                       the refused rows go out on the same
 *                                       connection, each refusal logged once
 *
 * In every scenario each gateway state message (online on connect, offline
 * on a clean stop, the will after SIGKILL) is kept and, at the end, checked
 * against docs/schemas/gateway-state.json by tests/gateway-payload/validate.py.
 *
 * Deadlines are sd-event timers; phases advance on events (message counts,
 * process exits), never on sleeps.
 */
#include <MQTTAsync.h>
#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "queue.h"

#define MOSQUITTO "/usr/sbin/mosquitto"
#define BASE "nltest"
#define GW "gw-test"
#define RESP_TOPIC "nltest-client/resp/1"
#define FALLBACK_RESP_TOPIC BASE "/pens/NL-7/response/ping"

enum scenario {
	SC_BASIC,
	SC_BASIC_311,
	SC_BASIC_TLS,
	SC_BROKER_RESTART,
	SC_PUBLISHER_KILL,
	SC_REFUSED_RETRY,
	SC_BUSY_LOOP,
};

enum sub_ev_kind {
	SUB_CONNECTED,
	SUB_CONNECT_FAILED,
	SUB_SUBSCRIBED,
	SUB_MESSAGE,
	LATE_CONNECTED, /* the late subscriber, which reads the retained state */
	LATE_FAILED,
};

struct sub_ev {
	enum sub_ev_kind kind;
	char *topic;
	char *payload;
	int retained;
	long long prop_id; /* nl-msg-id user property, -1 if absent */
	char *correlation;
};

struct test {
	enum scenario sc;
	sd_event *e;
	const char *publisher;
	char dir[64];
	char broker_conf[128];
	char pub_conf[128];
	int port;
	int tls_port;
	uint64_t count;
	const char *rows;
	const char *busy; /* publisher's 4th argument, or NULL */

	pid_t broker_pid;
	sd_event_source *broker_src;
	unsigned broker_starts;
	bool broker_stopping;

	pid_t pub_pid;
	sd_event_source *pub_src;
	unsigned pub_starts;
	int pub_status;
	bool pub_done;

	MQTTAsync sub;
	struct queue *q;
	bool sub_ready;
	sd_event_source *retry;

	long long *id_of_n; /* 0: not seen yet */
	uint64_t distinct, total, last_first_id;
	bool in_order;
	uint64_t fault_at;
	bool fault_done;
	unsigned online_after_fault, offline_after_fault;
	char last_state[16]; /* "online", "offline" (clean), "will", "" */
	unsigned n_states, n_online, n_offline, n_will;
	const char *top; /* source tree: schemas, validator, docs */
	char acl[128];
	sd_event_source *log_poll;
	bool acl_opened;
	MQTTAsync late;
	bool retained_ok;
	bool request_sent, reply_ok;
	bool finished;
};

static struct test T;

/* ---------- processes ---------- */

static pid_t spawn(const char *path, char *const argv[], const char *log_name)
{
	char log_path[256];
	sigset_t none;
	pid_t pid;

	snprintf(log_path, sizeof(log_path), "%s/%s", T.dir, log_name);
	pid = fork();
	CHECK(pid >= 0);
	if (pid == 0) {
		int fd = open(log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
		if (fd >= 0) {
			dup2(fd, STDOUT_FILENO);
			dup2(fd, STDERR_FILENO);
		}
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		/* Never outlive the test, even when ctest kills it. */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		execv(path, argv);
		_exit(127);
	}
	return pid;
}

static void dump_log(const char *name)
{
	char cmd[300];
	snprintf(cmd, sizeof(cmd), "echo '--- %s'; tail -n 60 '%s/%s'", name, T.dir, name);
	(void)system(cmd);
}

static void fail(const char *why)
{
	fprintf(stderr, "FAIL: %s (distinct %llu of %llu, total %llu)\n", why,
		(unsigned long long)T.distinct, (unsigned long long)T.count,
		(unsigned long long)T.total);
	dump_log("mosquitto.log");
	dump_log("publisher.log");
	if (T.pub_pid > 0)
		kill(T.pub_pid, SIGKILL);
	if (T.broker_pid > 0)
		kill(T.broker_pid, SIGKILL);
	abort();
}

static void start_broker(void);
static void start_publisher(void);
static void check_finished(void);

static int on_broker_exit(sd_event_source *s, const siginfo_t *si, void *userdata)
{
	sd_event_source_disable_unref(T.broker_src);
	T.broker_src = NULL;
	T.broker_pid = 0;
	if (!T.broker_stopping)
		fail("mosquitto exited on its own");
	T.broker_stopping = false;
	if (T.sc == SC_BROKER_RESTART && !T.finished) {
		fprintf(stderr, "test: broker stopped, restarting it on port %d\n", T.port);
		start_broker();
	}
	return 0;
}

static void start_broker(void)
{
	char *argv[] = { (char *)"mosquitto", (char *)"-c", T.broker_conf, NULL };

	T.broker_pid = spawn(MOSQUITTO, argv, "mosquitto.log");
	T.broker_starts++;
	CHECK(sd_event_add_child(T.e, &T.broker_src, T.broker_pid, WEXITED, on_broker_exit, NULL) >= 0);
}

static int on_pub_exit(sd_event_source *s, const siginfo_t *si, void *userdata)
{
	sd_event_source_disable_unref(T.pub_src);
	T.pub_src = NULL;
	T.pub_pid = 0;
	if (si->si_code == CLD_KILLED && si->si_status == SIGKILL && T.sc == SC_PUBLISHER_KILL &&
	    T.pub_starts == 1) {
		fprintf(stderr, "test: publisher killed, waiting for its will\n");
		/* restarted once the will ("offline") has arrived */
		if (!strcmp(T.last_state, "will"))
			start_publisher();
		return 0;
	}
	if (si->si_code != CLD_EXITED || si->si_status != 0)
		fail("publisher failed");
	T.pub_done = true;
	check_finished();
	return 0;
}

static void start_publisher(void)
{
	char count[32];
	char *argv[] = { (char *)"nlgw-test-publisher", T.pub_conf, count, (char *)T.rows,
			 (char *)T.busy, NULL };

	snprintf(count, sizeof(count), "%llu", (unsigned long long)T.count);
	T.pub_pid = spawn(T.publisher, argv, "publisher.log");
	T.pub_starts++;
	CHECK(sd_event_add_child(T.e, &T.pub_src, T.pub_pid, WEXITED, on_pub_exit, NULL) >= 0);
}

/* ---------- subscriber (Paho threads: copy and queue) ---------- */

static void sub_ev_free(void *p)
{
	struct sub_ev *ev = p;
	free(ev->topic);
	free(ev->payload);
	free(ev->correlation);
	free(ev);
}

static void post(enum sub_ev_kind kind)
{
	struct sub_ev *ev = calloc(1, sizeof(*ev));
	CHECK(ev);
	ev->kind = kind;
	CHECK(queue_push(T.q, ev) == 0);
}

static void sub_connected(void *ctx, MQTTAsync_successData5 *r) { post(SUB_CONNECTED); }
static void sub_connect_failed(void *ctx, MQTTAsync_failureData5 *r) { post(SUB_CONNECT_FAILED); }
static void sub_subscribed(void *ctx, MQTTAsync_successData5 *r) { post(SUB_SUBSCRIBED); }
static void sub_subscribe_failed(void *ctx, MQTTAsync_failureData5 *r) { post(SUB_CONNECT_FAILED); }
static void sub_lost(void *ctx, char *cause) { }
static void late_connected(void *ctx, MQTTAsync_successData5 *r) { post(LATE_CONNECTED); }
static void late_failed(void *ctx, MQTTAsync_failureData5 *r) { post(LATE_FAILED); }

static char *strndup0(const void *p, size_t n)
{
	char *s = malloc(n + 1);
	CHECK(s);
	memcpy(s, p, n);
	s[n] = '\0';
	return s;
}

static int sub_message(void *ctx, char *topic, int topic_len, MQTTAsync_message *msg)
{
	struct sub_ev *ev = calloc(1, sizeof(*ev));
	MQTTProperty *p;

	CHECK(ev);
	ev->kind = SUB_MESSAGE;
	ev->topic = strndup0(topic, topic_len > 0 ? (size_t)topic_len : strlen(topic));
	ev->payload = strndup0(msg->payload, (size_t)msg->payloadlen);
	ev->retained = msg->retained;
	ev->prop_id = -1;
	for (int i = 0; i < msg->properties.count; i++) {
		p = &msg->properties.array[i];
		if (p->identifier == MQTTPROPERTY_CODE_USER_PROPERTY && p->value.data.len == 9 &&
		    !memcmp(p->value.data.data, "nl-msg-id", 9)) {
			char *v = strndup0(p->value.value.data, (size_t)p->value.value.len);
			ev->prop_id = atoll(v);
			free(v);
		}
	}
	p = MQTTProperties_getProperty(&msg->properties, MQTTPROPERTY_CODE_CORRELATION_DATA);
	if (p)
		ev->correlation = strndup0(p->value.data.data, (size_t)p->value.data.len);
	CHECK(queue_push(T.q, ev) == 0);
	MQTTAsync_freeMessage(&msg);
	MQTTAsync_free(topic);
	return 1;
}

static void sub_connect(void)
{
	MQTTAsync_connectOptions o = MQTTAsync_connectOptions_initializer5;
	MQTTProperties props = MQTTProperties_initializer;
	MQTTProperty p = { .identifier = MQTTPROPERTY_CODE_SESSION_EXPIRY_INTERVAL };

	/* A persistent session (cleanstart 0, expiry 1 h), so messages queued
	 * for us survive our reconnects and the broker's restart. */
	p.value.integer4 = 3600;
	MQTTProperties_add(&props, &p);
	o.connectProperties = &props;
	o.cleanstart = 0;
	o.keepAliveInterval = 10;
	o.connectTimeout = 5;
	o.automaticReconnect = 1;
	o.minRetryInterval = 1;
	o.maxRetryInterval = 2;
	o.onSuccess5 = sub_connected;
	o.onFailure5 = sub_connect_failed;
	CHECK(MQTTAsync_connect(T.sub, &o) == MQTTASYNC_SUCCESS);
	MQTTProperties_free(&props);
}

static int on_retry(sd_event_source *s, uint64_t usec, void *userdata)
{
	sub_connect();
	return 0;
}

static void sub_subscribe(void)
{
	char *topics[] = { (char *)BASE "/test/#", (char *)BASE "/gateways/+/state",
			   (char *)RESP_TOPIC, (char *)FALLBACK_RESP_TOPIC };
	int qos[] = { 1, 1, 1, 1 };
	MQTTAsync_responseOptions ro = MQTTAsync_responseOptions_initializer;

	ro.onSuccess5 = sub_subscribed;
	ro.onFailure5 = sub_subscribe_failed;
	CHECK(MQTTAsync_subscribeMany(T.sub, 4, topics, qos, &ro) == MQTTASYNC_SUCCESS);
}

static void send_request(void)
{
	MQTTAsync_message msg = MQTTAsync_message_initializer;
	MQTTAsync_responseOptions ro = MQTTAsync_responseOptions_initializer;
	MQTTProperty p = { .identifier = MQTTPROPERTY_CODE_RESPONSE_TOPIC };

	p.value.data.data = (char *)RESP_TOPIC;
	p.value.data.len = (int)strlen(RESP_TOPIC);
	MQTTProperties_add(&msg.properties, &p);
	p = (MQTTProperty){ .identifier = MQTTPROPERTY_CODE_CORRELATION_DATA };
	p.value.data.data = (char *)"corr-42";
	p.value.data.len = 7;
	MQTTProperties_add(&msg.properties, &p);
	msg.payload = (void *)"hello";
	msg.payloadlen = 5;
	msg.qos = 1;
	/* Paho takes a message's properties through the response options:
	 * without them they are silently dropped. */
	CHECK(MQTTAsync_sendMessage(T.sub, BASE "/pens/NL-7/request/ping", &msg, &ro) ==
	      MQTTASYNC_SUCCESS);
	MQTTProperties_free(&msg.properties);
	T.request_sent = true;
}

static void check_finished(void)
{
	if (T.finished || T.distinct < T.count || !T.pub_done)
		return;
	if ((T.sc == SC_BASIC || T.sc == SC_BASIC_311 || T.sc == SC_BASIC_TLS) && !T.reply_ok)
		return;
	/* The graceful stop says offline last (not the will). */
	if (strcmp(T.last_state, "offline") != 0)
		return;
	T.finished = true;
}

static void fault(void)
{
	T.fault_done = true;
	T.online_after_fault = 0;
	T.offline_after_fault = 0;
	if (T.sc == SC_BROKER_RESTART) {
		fprintf(stderr, "test: stopping the broker after %llu messages\n",
			(unsigned long long)T.distinct);
		T.broker_stopping = true;
		CHECK(kill(T.broker_pid, SIGTERM) == 0);
	} else if (T.sc == SC_PUBLISHER_KILL) {
		fprintf(stderr, "test: killing the publisher after %llu messages\n",
			(unsigned long long)T.distinct);
		CHECK(kill(T.pub_pid, SIGKILL) == 0);
	}
}

static void on_stream(struct sub_ev *ev)
{
	unsigned long long n = 0;
	long long id = -1;

	if (sscanf(ev->payload, "{\"n\":%llu,\"nl-msg-id\":%lld}", &n, &id) != 2 || n == 0 ||
	    n > T.count)
		fail("malformed stream payload");
	/* The id travels twice: user property (MQTT 5) and payload. */
	if (T.sc == SC_BASIC_311 ? ev->prop_id != -1 : ev->prop_id != id)
		fail("nl-msg-id user property differs from the payload's");
	T.total++;
	if (T.id_of_n[n] == 0) {
		T.id_of_n[n] = id;
		T.distinct++;
		if ((uint64_t)id <= T.last_first_id)
			T.in_order = false;
		T.last_first_id = (uint64_t)id;
	} else if (T.id_of_n[n] != id) {
		/* A replay must carry the same id, or consumers cannot dedupe. */
		fail("message replayed under another id");
	}
	if (!T.fault_done && T.sc != SC_BASIC && T.distinct >= T.fault_at)
		fault();
}

/* Keeps a state message for the schema check at the end and classifies it
 * into T.last_state. */
static void on_state(struct sub_ev *ev)
{
	char path[128];
	cJSON *j = cJSON_Parse(ev->payload);
	const cJSON *state = cJSON_GetObjectItemCaseSensitive(j, "state");
	const cJSON *will = cJSON_GetObjectItemCaseSensitive(j, "will");
	FILE *f;

	snprintf(path, sizeof(path), "%s/states/gateway-state--%u.json", T.dir, ++T.n_states);
	f = fopen(path, "w");
	CHECK(f);
	fputs(ev->payload, f);
	CHECK(fclose(f) == 0);
	if (!cJSON_IsString(state))
		fail("state message without a state");
	if (!strcmp(state->valuestring, "online")) {
		snprintf(T.last_state, sizeof(T.last_state), "online");
		T.n_online++;
	} else if (cJSON_IsTrue(will)) {
		snprintf(T.last_state, sizeof(T.last_state), "will");
		T.n_will++;
	} else {
		snprintf(T.last_state, sizeof(T.last_state), "offline");
		T.n_offline++;
	}
	cJSON_Delete(j);
}

/* Every state message seen, against the published schema, with the
 * validator of tests/gateway-payload (which also wants a payload it must
 * refuse: the bare state mqtt.c once sent). */
static void validate_states(void)
{
	char cmd[1024];
	FILE *f;

	snprintf(cmd, sizeof(cmd), "%s/states/reject--gateway-state--bare.json", T.dir);
	f = fopen(cmd, "w");
	CHECK(f);
	fputs("{\"state\":\"offline\"}", f);
	CHECK(fclose(f) == 0);
	snprintf(cmd, sizeof(cmd),
		 "/usr/bin/python3 '%s/tests/gateway-payload/validate.py' --partial '%s/docs/schemas' "
		 "'%s/states' '%s/docs/mqtt-api.md'",
		 T.top, T.top, T.dir, T.top);
	if (system(cmd) != 0)
		fail("a gateway state message violates docs/schemas/gateway-state.json");
}

/* refused-retry: the first refusal shows in the publisher's log; then the
 * ACL lets the stream through and mosquitto reloads it (SIGHUP) without
 * dropping the connection. Polled: a regular file cannot be watched with
 * epoll. */
static unsigned count_in_log(const char *needle, long long *ret_first_id)
{
	char path[128], line[1024];
	unsigned n = 0;
	FILE *f;

	snprintf(path, sizeof(path), "%s/publisher.log", T.dir);
	f = fopen(path, "re");
	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f))
		if (strstr(line, needle)) {
			if (n == 0 && ret_first_id)
				*ret_first_id = atoll(strstr(line, "outbox message ") ?
						      strstr(line, "outbox message ") + 15 : "0");
			n++;
		}
	fclose(f);
	return n;
}

static void write_acl(bool stream_allowed)
{
	FILE *f = fopen(T.acl, "w");

	CHECK(f);
	fprintf(f,
		"topic readwrite " BASE "/gateways/#\n"
		"topic readwrite " BASE "/pens/#\n"
		"topic readwrite nltest-client/#\n"
		"topic %s " BASE "/test/#\n",
		stream_allowed ? "readwrite" : "read");
	CHECK(fclose(f) == 0);
}

static int on_log_poll(sd_event_source *s, uint64_t usec, void *userdata)
{
	if (count_in_log(" refused: ", NULL) > 0) {
		fprintf(stderr, "test: the broker refused the stream; allowing it now\n");
		write_acl(true);
		CHECK(kill(T.broker_pid, SIGHUP) == 0);
		T.acl_opened = true;
		return 0;
	}
	CHECK(sd_event_source_set_time_relative(s, 100000) >= 0);
	CHECK(sd_event_source_set_enabled(s, SD_EVENT_ONESHOT) >= 0);
	return 0;
}

/* Each refused row is logged once, however often it is retried. */
static void check_refusals_logged_once(void)
{
	char path[128], line[1024];
	long long ids[4096];
	unsigned n = 0;
	FILE *f;

	snprintf(path, sizeof(path), "%s/publisher.log", T.dir);
	f = fopen(path, "re");
	CHECK(f);
	while (fgets(line, sizeof(line), f)) {
		const char *p = strstr(line, "outbox message ");
		long long id;

		if (!p || !strstr(line, " refused: "))
			continue;
		id = atoll(p + 15);
		for (unsigned i = 0; i < n; i++)
			if (ids[i] == id)
				fail("a refused row was logged twice");
		CHECK(n < sizeof(ids) / sizeof(ids[0]));
		ids[n++] = id;
	}
	fclose(f);
	fprintf(stderr, "test: %u rows refused\n", n);
	CHECK(n >= 1);
}

/* After the clean stop: what a subscriber arriving now gets, retained. */
static void late_subscribe(void)
{
	MQTTAsync_responseOptions ro = MQTTAsync_responseOptions_initializer;

	ro.onFailure5 = late_failed;
	CHECK(MQTTAsync_subscribe(T.late, BASE "/gateways/" GW "/state", 1, &ro) ==
	      MQTTASYNC_SUCCESS);
}

static void late_connect(void)
{
	MQTTAsync_createOptions co = MQTTAsync_createOptions_initializer5;
	MQTTAsync_connectOptions o = MQTTAsync_connectOptions_initializer5;
	char uri[64];

	snprintf(uri, sizeof(uri), "tcp://127.0.0.1:%d", T.port);
	CHECK(MQTTAsync_createWithOptions(&T.late, uri, "nltest-late", MQTTCLIENT_PERSISTENCE_NONE,
					  NULL, &co) == MQTTASYNC_SUCCESS);
	CHECK(MQTTAsync_setCallbacks(T.late, NULL, sub_lost, sub_message, NULL) ==
	      MQTTASYNC_SUCCESS);
	o.cleanstart = 1;
	o.connectTimeout = 5;
	o.onSuccess5 = late_connected;
	o.onFailure5 = late_failed;
	CHECK(MQTTAsync_connect(T.late, &o) == MQTTASYNC_SUCCESS);
}

static void handle(void *msg, void *userdata)
{
	struct sub_ev *ev = msg;

	if (T.late && ev->kind == SUB_MESSAGE && ev->retained &&
	    !strcmp(ev->topic, BASE "/gateways/" GW "/state")) {
		on_state(ev);
		fprintf(stderr, "test: retained state %s\n", ev->payload);
		if (strcmp(T.last_state, "offline") != 0)
			fail("the retained state after a clean stop is not offline");
		T.retained_ok = true;
		sub_ev_free(ev);
		return;
	}
	switch (ev->kind) {
	case LATE_CONNECTED:
		late_subscribe();
		break;
	case LATE_FAILED:
		fail("the late subscriber could not connect or subscribe");
		break;
	case SUB_CONNECT_FAILED:
		if (!T.sub_ready) {
			/* broker not listening yet: try again shortly */
			CHECK(sd_event_source_set_time_relative(T.retry, 100000) >= 0);
			CHECK(sd_event_source_set_enabled(T.retry, SD_EVENT_ONESHOT) >= 0);
		}
		break;
	case SUB_CONNECTED:
		if (!T.sub_ready)
			sub_subscribe();
		break;
	case SUB_SUBSCRIBED:
		if (!T.sub_ready) {
			T.sub_ready = true;
			start_publisher();
		}
		break;
	case SUB_MESSAGE:
		if (!strcmp(ev->topic, BASE "/test/stream")) {
			on_stream(ev);
		} else if (!strcmp(ev->topic, BASE "/gateways/" GW "/state")) {
			on_state(ev);
			fprintf(stderr, "test: state %s%s\n", ev->payload,
				ev->retained ? " (retained)" : "");
			if (!strcmp(T.last_state, "online")) {
				T.online_after_fault += T.fault_done;
				if ((T.sc == SC_BASIC || T.sc == SC_BASIC_311 || T.sc == SC_BASIC_TLS) && !T.request_sent)
					send_request();
			} else {
				T.offline_after_fault += T.fault_done;
				if (T.sc == SC_PUBLISHER_KILL && T.fault_done && T.pub_starts == 1 &&
				    T.pub_pid == 0)
					start_publisher();
			}
		} else if (!strcmp(ev->topic, T.sc == SC_BASIC_311 ? FALLBACK_RESP_TOPIC : RESP_TOPIC)) {
			/* MQTT 5: to the response topic, with the correlation data;
			 * 3.1.1 has neither: the reply goes to the fixed topic. */
			if (strcmp(ev->payload, "pong:hello") != 0 ||
			    (T.sc == SC_BASIC_311 ? ev->correlation != NULL
						  : !ev->correlation || strcmp(ev->correlation, "corr-42") != 0))
				fail("bad reply to the request");
			T.reply_ok = true;
		} else {
			fprintf(stderr, "test: unexpected message on %s\n", ev->topic);
		}
		check_finished();
		break;
	}
	sub_ev_free(ev);
}

static int on_deadline(sd_event_source *s, uint64_t usec, void *userdata)
{
	fprintf(stderr, "reply_ok %d, publisher done %d, last state %s\n", T.reply_ok, T.pub_done,
		T.last_state);
	fail("deadline reached");
	return 0;
}

/* ---------- setup ---------- */

static int free_port(void)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	CHECK(fd >= 0);
	CHECK(bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0);
	CHECK(getsockname(fd, (struct sockaddr *)&a, &len) == 0);
	close(fd);
	return ntohs(a.sin_port);
}

/* A CA, a server certificate for 127.0.0.1 and a client certificate. */
static void make_certs(void)
{
	char cmd[2048];

	snprintf(cmd, sizeof(cmd),
		 "set -e; cd '%s'; exec 2>openssl.log; "
		 "key='-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes'; "
		 "openssl req -x509 $key -keyout ca.key -out ca.pem -days 2 -subj /CN=nltest-ca; "
		 "openssl req $key -keyout server.key -out server.csr -subj /CN=localhost; "
		 "printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\\n' > san.ext; "
		 "openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial "
		 "  -out server.pem -days 2 -extfile san.ext; "
		 "openssl req $key -keyout client.key -out client.csr -subj /CN=" GW "; "
		 "openssl x509 -req -in client.csr -CA ca.pem -CAkey ca.key -CAcreateserial "
		 "  -out client.pem -days 2",
		 T.dir);
	if (system(cmd) != 0) {
		dump_log("openssl.log");
		fail("cannot make test certificates with openssl");
	}
}

static void write_configs(void)
{
	FILE *f;

	snprintf(T.broker_conf, sizeof(T.broker_conf), "%s/mosquitto.conf", T.dir);
	f = fopen(T.broker_conf, "w");
	CHECK(f);
	fprintf(f,
		"allow_anonymous true\n"
		"persistence true\n"
		"persistence_location %s/\n"
		/* 0 (no limit) makes mosquitto 2.0.11 drop a client whose
		 * publish its ACL denied: a bound then, far above the count */
		"max_queued_messages %s\n"
		"log_dest stderr\n"
		"log_type error\n"
		"log_type warning\n"
		"log_type notice\n"
		"listener %d 127.0.0.1\n",
		T.dir, T.sc == SC_REFUSED_RETRY ? "100000" : "0", T.port);
	if (T.sc == SC_BASIC_TLS)
		fprintf(f,
			"listener %d 127.0.0.1\n"
			"cafile %s/ca.pem\n"
			"certfile %s/server.pem\n"
			"keyfile %s/server.key\n"
			"require_certificate true\n",
			T.tls_port, T.dir, T.dir, T.dir);
	if (T.sc == SC_REFUSED_RETRY) {
		snprintf(T.acl, sizeof(T.acl), "%s/acl", T.dir);
		write_acl(false);
		fprintf(f, "acl_file %s\n", T.acl);
	}
	if (geteuid() == 0)
		fprintf(f, "user root\n");
	fclose(f);

	snprintf(T.pub_conf, sizeof(T.pub_conf), "%s/needlelinkd.conf", T.dir);
	f = fopen(T.pub_conf, "w");
	CHECK(f);
	fprintf(f,
		"[gateway]\n"
		"id = " GW "\n"
		"base_topic = " BASE "\n"
		"journal = %s/journal.db\n"
		"log_level = info\n"
		"[mqtt]\n"
		"host = 127.0.0.1\n"
		"port = %d\n"
		"protocol = %s\n"
		"keepalive_s = 10\n"
		"timeout = 5\n"
		"max_inflight = 64\n",
		T.dir, T.sc == SC_BASIC_TLS ? T.tls_port : T.port,
		T.sc == SC_BASIC_311 ? "3.1.1" : "5");
	if (T.sc == SC_BASIC_TLS)
		fprintf(f,
			"tls_ca = %s/ca.pem\n"
			"tls_cert = %s/client.pem\n"
			"tls_key = %s/client.key\n",
			T.dir, T.dir, T.dir);
	fclose(f);
}

int main(int argc, char **argv)
{
	MQTTAsync_createOptions co = MQTTAsync_createOptions_initializer5;
	sigset_t mask;
	char uri[64];

	if (argc != 4) {
		fprintf(stderr,
			"usage: %s PUBLISHER basic|basic-311|basic-tls|broker-restart|publisher-kill|"
			"refused-retry|busy-loop SOURCE_DIR\n",
			argv[0]);
		return 2;
	}
	T.top = argv[3];
	/* Fail, never skip, when the broker is missing. */
	if (access(MOSQUITTO, X_OK) != 0) {
		fprintf(stderr, "FAIL: %s not found or not executable: install mosquitto\n", MOSQUITTO);
		return 1;
	}
	T.publisher = argv[1];
	if (!strcmp(argv[2], "basic")) {
		T.sc = SC_BASIC;
		T.count = 3000;
		T.rows = "20";
	} else if (!strcmp(argv[2], "basic-311")) {
		T.sc = SC_BASIC_311;
		T.count = 3000;
		T.rows = "20";
	} else if (!strcmp(argv[2], "basic-tls")) {
		T.sc = SC_BASIC_TLS;
		T.count = 2000;
		T.rows = "20";
	} else if (!strcmp(argv[2], "broker-restart")) {
		T.sc = SC_BROKER_RESTART;
		T.count = 6000;
		T.rows = "2";
	} else if (!strcmp(argv[2], "publisher-kill")) {
		T.sc = SC_PUBLISHER_KILL;
		T.count = 6000;
		T.rows = "2";
	} else if (!strcmp(argv[2], "refused-retry")) {
		T.sc = SC_REFUSED_RETRY;
		T.count = 1000;
		T.rows = "20";
	} else if (!strcmp(argv[2], "busy-loop")) {
		T.sc = SC_BUSY_LOOP;
		T.count = 2000;
		T.rows = "500";
		T.busy = "busy";
	} else {
		return 2;
	}
	T.fault_at = T.count / 3;
	T.in_order = true;
	T.id_of_n = calloc(T.count + 1, sizeof(*T.id_of_n));
	CHECK(T.id_of_n);

	/* sd-event child sources need SIGCHLD blocked in every thread: block
	 * it before Paho starts any. */
	sigemptyset(&mask);
	sigaddset(&mask, SIGCHLD);
	CHECK(sigprocmask(SIG_BLOCK, &mask, NULL) == 0);

	snprintf(T.dir, sizeof(T.dir), "/tmp/nlgw-mqtt-XXXXXX");
	CHECK(mkdtemp(T.dir));
	{
		char states[128];
		snprintf(states, sizeof(states), "%s/states", T.dir);
		CHECK(mkdir(states, 0755) == 0);
	}
	T.port = free_port();
	if (T.sc == SC_BASIC_TLS) {
		do
			T.tls_port = free_port();
		while (T.tls_port == T.port);
		make_certs();
	}
	write_configs();
	CHECK(sd_event_new(&T.e) >= 0);
	CHECK(queue_new(T.e, handle, sub_ev_free, NULL, &T.q) == 0);
	CHECK(sd_event_add_time_relative(T.e, &T.retry, CLOCK_MONOTONIC, 100000, 0, on_retry, NULL) >= 0);
	CHECK(sd_event_source_set_enabled(T.retry, SD_EVENT_OFF) >= 0);
	if (T.sc == SC_REFUSED_RETRY)
		CHECK(sd_event_add_time_relative(T.e, &T.log_poll, CLOCK_MONOTONIC, 100000, 0,
						 on_log_poll, NULL) >= 0);

	start_broker();
	snprintf(uri, sizeof(uri), "tcp://127.0.0.1:%d", T.port);
	CHECK(MQTTAsync_createWithOptions(&T.sub, uri, "nltest-client", MQTTCLIENT_PERSISTENCE_NONE,
					  NULL, &co) == MQTTASYNC_SUCCESS);
	CHECK(MQTTAsync_setCallbacks(T.sub, NULL, sub_lost, sub_message, NULL) == MQTTASYNC_SUCCESS);
	sub_connect();

	/* A hang fails with the state of things and the logs. */
	CHECK(sd_event_add_time_relative(T.e, NULL, CLOCK_MONOTONIC, 240ull * 1000000, 0,
					 on_deadline, NULL) >= 0);
	run_until(T.e, &T.finished, 300, argv[2]);

	fprintf(stderr, "test: %llu distinct messages, %llu received, %u broker starts, %u publisher starts\n",
		(unsigned long long)T.distinct, (unsigned long long)T.total, T.broker_starts,
		T.pub_starts);
	for (uint64_t n = 1; n <= T.count; n++)
		CHECK(T.id_of_n[n] > 0);
	switch (T.sc) {
	case SC_BASIC:
	case SC_BASIC_311:
	case SC_BASIC_TLS:
		/* no fault: exactly once and in outbox order */
		CHECK_INT(T.total, T.count);
		CHECK(T.in_order);
		CHECK(T.reply_ok);
		break;
	case SC_BROKER_RESTART:
		CHECK_INT(T.broker_starts, 2);
		/* the publisher said "online" again on the new broker */
		CHECK(T.online_after_fault >= 1);
		break;
	case SC_PUBLISHER_KILL:
		CHECK_INT(T.pub_starts, 2);
		CHECK(T.offline_after_fault >= 1); /* the will */
		CHECK(T.online_after_fault >= 1);
		CHECK(T.n_will >= 1);
		break;
	case SC_BUSY_LOOP:
		CHECK_INT(T.total, T.count);
		CHECK(T.in_order);
		CHECK(count_in_log("outbox fell a window behind 0 times", NULL) == 0);
		CHECK_INT(count_in_log("outbox fell a window behind", NULL), 1);
		break;
	case SC_REFUSED_RETRY:
		CHECK(T.acl_opened);
		/* retried and delivered on the one connection, no reconnect */
		CHECK_INT(count_in_log("mqtt: connected to", NULL), 1);
		CHECK(count_in_log("delivered after a refusal", NULL) >= 1);
		check_refusals_logged_once();
		CHECK_INT(T.total, T.count);
		break;
	}
	/* online on connect, offline on the clean stop, all valid; and the
	 * offline is what the broker retained */
	CHECK(T.n_online >= 1);
	CHECK(T.n_offline >= 1);
	late_connect();
	run_until(T.e, &T.retained_ok, 60, "retained state");
	validate_states();
	sd_event_source_disable_unref(T.log_poll);

	MQTTAsync_destroy(&T.late);
	MQTTAsync_destroy(&T.sub);
	queue_free(T.q);
	T.broker_stopping = true;
	kill(T.broker_pid, SIGTERM);
	waitpid(T.broker_pid, NULL, 0);
	{
		char cmd[128];
		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", T.dir);
		CHECK(system(cmd) == 0);
	}
	printf("test-mqtt %s: ok\n", argv[2]);
	return 0;
}
