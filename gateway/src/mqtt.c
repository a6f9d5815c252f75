/* SPDX-License-Identifier: MIT */
#include "mqtt.h"

#include <MQTTAsync.h>
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "config.h"
#include "journal.h"
#include "helper-sched.h"
#include "log.h"
#include "payload.h"
#include "queue.h"

#define BACKOFF_MIN_US (500ull * 1000)
#define BACKOFF_MAX_US (30ull * 1000 * 1000)
#define PAGE_MAX 256u /* outbox rows read per query */
#define MSG_ID_PROPERTY "nl-msg-id"
#define REFUSED_MAX 256u /* refused rows remembered, so each is logged once */
/* A graceful stop (offline state, DISCONNECT) waits at most this long, and
 * no longer than the configured timeout: with the broker unreachable the
 * will says offline anyway, and a service stop must not hang. */
#define STOP_MAX_MS 2000u
/* When more committed rows wait than one window holds, the broker is the
 * bottleneck: pen input and commits go first, so pens are acknowledged (and
 * free their stores) at the journal's pace, not the broker's; the outbox
 * still drains whenever the loop has nothing else, and at least every
 * PUMP_LAZY_MAX_US. */
#define PUMP_LAZY_MAX_US 250000u

enum conn_state {
	CONN_IDLE,         /* not started, or stopped */
	CONN_WAITING,      /* backoff timer armed */
	CONN_CONNECTING,   /* MQTTAsync_connect issued */
	CONN_CONNECTED,
	CONN_STOPPING,     /* offline published / disconnect issued */
};

/* What a Paho callback hands to the loop. */
enum ev_kind {
	EV_CONNECTED,
	EV_CONNECT_FAILED,
	EV_LOST,
	EV_SERVER_DISCONNECT,
	EV_MESSAGE,
	EV_PUB_OK,
	EV_PUB_FAILED,
	EV_SUB_OK,
	EV_SUB_FAILED,
	EV_DIRECT_FAILED,
	EV_OFFLINE_DONE,
	EV_DISCONNECT_DONE,
};

struct ev {
	enum ev_kind kind;
	int code;        /* MQTTASYNC_* or reason code */
	unsigned slot;   /* EV_PUB_* */
	char *text;      /* error message / cause, may be NULL */
	char *topic;     /* EV_MESSAGE */
	void *payload;
	size_t payload_len;
	char *response_topic;
	void *correlation;
	size_t correlation_len;
};

/* Context of an in-flight outbox publish. Immutable once allocated, so a
 * Paho thread may read it at any time; the loop keeps the mutable part in
 * struct slot. A slot is reused only after its callback was handled on the
 * loop, so a late callback can never be taken for another message's. */
struct slot_ctx {
	struct mqtt *m;
	unsigned index;
};

struct slot {
	bool busy;
	int64_t outbox_id;
	uint64_t generation; /* connection it was published on */
};

/* Paho, loaded at run time: libpaho-mqtt3a when the configuration has no
 * TLS, libpaho-mqtt3as (which brings OpenSSL, some 3 MB of resident memory)
 * only when it has. The two are the same API (one header). */
#define PAHO_FUNCS(X)                                                                       \
	X(MQTTAsync_connect)                                                                \
	X(MQTTAsync_createWithOptions)                                                      \
	X(MQTTAsync_destroy)                                                                \
	X(MQTTAsync_disconnect)                                                             \
	X(MQTTAsync_freeMessage)                                                            \
	X(MQTTAsync_free)                                                                   \
	X(MQTTAsync_sendMessage)                                                            \
	X(MQTTAsync_setCallbacks)                                                           \
	X(MQTTAsync_setDisconnected)                                                        \
	X(MQTTAsync_strerror)                                                               \
	X(MQTTAsync_subscribe)                                                              \
	X(MQTTProperties_add)                                                               \
	X(MQTTProperties_free)                                                              \
	X(MQTTProperties_getProperty)                                                       \
	X(MQTTReasonCode_toString)

struct paho_api {
#define PAHO_MEMBER(f) __typeof__(f) *f;
	PAHO_FUNCS(PAHO_MEMBER)
#undef PAHO_MEMBER
};

#define PAHO_LIB_PLAIN "libpaho-mqtt3a.so.1"
#define PAHO_LIB_TLS "libpaho-mqtt3as.so.1"

static struct paho_api paho_apis[2]; /* [tls] */
static bool paho_loaded[2];
static pthread_mutex_t paho_lock = PTHREAD_MUTEX_INITIALIZER;

/* Loads one of the two libraries, once per process (never unloaded: Paho
 * keeps global state and threads). RTLD_LOCAL: each resolves to itself. */
static const struct paho_api *paho_load(bool tls)
{
	const char *name = tls ? PAHO_LIB_TLS : PAHO_LIB_PLAIN;
	const struct paho_api *api = NULL;
	struct paho_api a;
	void *h;

	pthread_mutex_lock(&paho_lock);
	if (paho_loaded[tls]) {
		api = &paho_apis[tls];
		goto out;
	}
	h = dlopen(name, RTLD_NOW | RTLD_LOCAL);
	if (!h) {
		log_err("mqtt: cannot load %s: %s", name, dlerror());
		goto out;
	}
#define PAHO_SYM(f)                                                                         \
	*(void **)&a.f = dlsym(h, #f);                                                      \
	if (!a.f) {                                                                         \
		log_err("mqtt: %s lacks %s", name, #f);                                     \
		goto out;                                                                   \
	}
	PAHO_FUNCS(PAHO_SYM)
#undef PAHO_SYM
	paho_apis[tls] = a;
	paho_loaded[tls] = true;
	api = &paho_apis[tls];
	log_debug("mqtt: using %s", name);
out:
	pthread_mutex_unlock(&paho_lock);
	return api;
}

struct mqtt {
	const struct paho_api *paho;
	sd_event *event;
	const struct config *config;
	struct journal *journal;
	struct queue *queue;
	MQTTAsync client;
	bool v5;
	enum conn_state state;
	char *uri;
	char *state_topic;
	char *request_filter;
	char *pens_prefix; /* BASE/pens/ */
	char *base;
	sd_event_source *reconnect_timer;
	sd_event_source *pump_defer;
	sd_event_source *pump_timer; /* bounds the wait of a lazy pump */
	bool pump_lazy;
	sd_event_source *stop_timer;
	unsigned attempts;
	uint64_t rng;
	int64_t connect_ms; /* wall clock of the current connection's attempt */
	char *will_payload; /* kept for as long as Paho may read it */

	struct slot_ctx *slot_ctx;
	struct slot *slots;
	unsigned n_slots;
	unsigned busy;
	uint64_t generation; /* counts successful connects */
	sd_event_source *quarantine_timer;
	int64_t cursor; /* highest outbox id handed to Paho on this connection */
	bool send_blocked;
	int64_t *qos0_sent; /* ids to mark after a page was read */
	unsigned n_qos0;

	/* Rows refused while connected: retried from retry_from on, after a
	 * backoff, without waiting for a reconnect. */
	sd_event_source *retry_timer;
	unsigned retry_attempts;
	int64_t retry_from; /* lowest refused id awaiting its retry; 0: none */
	int64_t *refused;   /* ids already logged as refused, oldest first */
	unsigned n_refused;

	mqtt_request_fn request_fn;
	void *request_ud;
	mqtt_connected_fn connected_fn;
	void *connected_ud;
	mqtt_stopped_fn stopped_fn;
	bool stop_quiet;
	void *stopped_ud;

	struct mqtt_stats stats;
};

/* ---------------- Paho threads: copy and queue, nothing else ---------------- */

static void ev_free(void *p)
{
	struct ev *ev = p;

	if (!ev)
		return;
	free(ev->text);
	free(ev->topic);
	free(ev->payload);
	free(ev->response_topic);
	free(ev->correlation);
	free(ev);
}

static void post(struct mqtt *m, enum ev_kind kind, int code, unsigned slot, const char *text)
{
	struct ev *ev = calloc(1, sizeof(*ev));

	if (!ev)
		return; /* out of memory on a Paho thread: nothing better to do */
	ev->kind = kind;
	ev->code = code;
	ev->slot = slot;
	if (text)
		ev->text = strdup(text);
	if (queue_push(m->queue, ev) < 0)
		ev_free(ev);
}

static void on_connect_ok(void *context, MQTTAsync_successData *response)
{
	post(context, EV_CONNECTED, 0, 0, NULL);
}

static void on_connect_ok5(void *context, MQTTAsync_successData5 *response)
{
	post(context, EV_CONNECTED, 0, 0, NULL);
}

static void on_connect_fail(void *context, MQTTAsync_failureData *response)
{
	post(context, EV_CONNECT_FAILED, response ? response->code : MQTTASYNC_FAILURE, 0,
	     response ? response->message : NULL);
}

static void on_connect_fail5(void *context, MQTTAsync_failureData5 *response)
{
	post(context, EV_CONNECT_FAILED, response ? (response->reasonCode ? (int)response->reasonCode : response->code) : MQTTASYNC_FAILURE,
	     0, response ? response->message : NULL);
}

static void on_connection_lost(void *context, char *cause)
{
	post(context, EV_LOST, 0, 0, cause);
}

static void on_disconnected(void *context, MQTTProperties *props, enum MQTTReasonCodes reason)
{
	post(context, EV_SERVER_DISCONNECT, (int)reason, 0, NULL);
}

static void *dup_bytes(const void *p, size_t n)
{
	void *d = malloc(n ? n : 1);

	if (d && n)
		memcpy(d, p, n);
	return d;
}

static int on_message(void *context, char *topic, int topic_len, MQTTAsync_message *msg)
{
	struct mqtt *m = context;
	struct ev *ev = calloc(1, sizeof(*ev));
	size_t tlen = topic_len > 0 ? (size_t)topic_len : strlen(topic);
	MQTTProperty *p;

	if (!ev)
		goto out;
	ev->kind = EV_MESSAGE;
	ev->topic = malloc(tlen + 1);
	ev->payload = dup_bytes(msg->payload, (size_t)msg->payloadlen);
	ev->payload_len = (size_t)msg->payloadlen;
	if (!ev->topic || !ev->payload)
		goto drop;
	memcpy(ev->topic, topic, tlen);
	ev->topic[tlen] = '\0';
	p = m->paho->MQTTProperties_getProperty(&msg->properties, MQTTPROPERTY_CODE_RESPONSE_TOPIC);
	if (p) {
		ev->response_topic = malloc((size_t)p->value.data.len + 1);
		if (!ev->response_topic)
			goto drop;
		memcpy(ev->response_topic, p->value.data.data, (size_t)p->value.data.len);
		ev->response_topic[p->value.data.len] = '\0';
	}
	p = m->paho->MQTTProperties_getProperty(&msg->properties, MQTTPROPERTY_CODE_CORRELATION_DATA);
	if (p) {
		ev->correlation = dup_bytes(p->value.data.data, (size_t)p->value.data.len);
		ev->correlation_len = (size_t)p->value.data.len;
		if (!ev->correlation)
			goto drop;
	}
	if (queue_push(m->queue, ev) == 0)
		goto out;
drop:
	ev_free(ev);
out:
	/* The message and topic belong to Paho: hand them back. Returning 1
	 * tells Paho we took delivery. */
	m->paho->MQTTAsync_freeMessage(&msg);
	m->paho->MQTTAsync_free(topic);
	return 1;
}

static void on_pub_ok(void *context, MQTTAsync_successData *response)
{
	struct slot_ctx *s = context;
	post(s->m, EV_PUB_OK, 0, s->index, NULL);
}

static void on_pub_ok5(void *context, MQTTAsync_successData5 *response)
{
	struct slot_ctx *s = context;
	post(s->m, EV_PUB_OK, 0, s->index, NULL);
}

static void on_pub_fail(void *context, MQTTAsync_failureData *response)
{
	struct slot_ctx *s = context;
	post(s->m, EV_PUB_FAILED, response ? response->code : MQTTASYNC_FAILURE, s->index,
	     response ? response->message : NULL);
}

static void on_pub_fail5(void *context, MQTTAsync_failureData5 *response)
{
	struct slot_ctx *s = context;
	post(s->m, EV_PUB_FAILED,
	     response ? (response->reasonCode ? (int)response->reasonCode : response->code) : MQTTASYNC_FAILURE,
	     s->index, response ? response->message : NULL);
}

static void on_sub_ok(void *context, MQTTAsync_successData *response)
{
	post(context, EV_SUB_OK, 0, 0, NULL);
}

static void on_sub_ok5(void *context, MQTTAsync_successData5 *response)
{
	int code = 0;

	/* A SUBACK may carry a refusal (reason >= 0x80) and still be a
	 * "success" for Paho. For one topic Paho reports it in reasonCode;
	 * alt.sub.reasonCodes is only filled for several. */
	if (response && response->reasonCode >= 0x80)
		code = (int)response->reasonCode;
	post(context, code ? EV_SUB_FAILED : EV_SUB_OK, code, 0, NULL);
}

static void on_sub_fail(void *context, MQTTAsync_failureData *response)
{
	post(context, EV_SUB_FAILED, response ? response->code : MQTTASYNC_FAILURE, 0,
	     response ? response->message : NULL);
}

static void on_sub_fail5(void *context, MQTTAsync_failureData5 *response)
{
	post(context, EV_SUB_FAILED,
	     response ? (response->reasonCode ? (int)response->reasonCode : response->code) : MQTTASYNC_FAILURE,
	     0, response ? response->message : NULL);
}

static void on_direct_fail(void *context, MQTTAsync_failureData *response)
{
	post(context, EV_DIRECT_FAILED, response ? response->code : MQTTASYNC_FAILURE, 0,
	     response ? response->message : NULL);
}

static void on_direct_fail5(void *context, MQTTAsync_failureData5 *response)
{
	post(context, EV_DIRECT_FAILED,
	     response ? (response->reasonCode ? (int)response->reasonCode : response->code) : MQTTASYNC_FAILURE,
	     0, response ? response->message : NULL);
}

static void on_offline_done(void *context, MQTTAsync_successData *response)
{
	post(context, EV_OFFLINE_DONE, 0, 0, NULL);
}

static void on_offline_done5(void *context, MQTTAsync_successData5 *response)
{
	post(context, EV_OFFLINE_DONE, 0, 0, NULL);
}

static void on_offline_fail(void *context, MQTTAsync_failureData *response)
{
	post(context, EV_OFFLINE_DONE, response ? response->code : MQTTASYNC_FAILURE, 0, NULL);
}

static void on_offline_fail5(void *context, MQTTAsync_failureData5 *response)
{
	post(context, EV_OFFLINE_DONE, response ? response->code : MQTTASYNC_FAILURE, 0, NULL);
}

static void on_disconnect_ok(void *context, MQTTAsync_successData *response)
{
	post(context, EV_DISCONNECT_DONE, 0, 0, NULL);
}

static void on_disconnect_ok5(void *context, MQTTAsync_successData5 *response)
{
	post(context, EV_DISCONNECT_DONE, 0, 0, NULL);
}

static void on_disconnect_fail(void *context, MQTTAsync_failureData *response)
{
	post(context, EV_DISCONNECT_DONE, response ? response->code : MQTTASYNC_FAILURE, 0, NULL);
}

static void on_disconnect_fail5(void *context, MQTTAsync_failureData5 *response)
{
	post(context, EV_DISCONNECT_DONE, response ? response->code : MQTTASYNC_FAILURE, 0, NULL);
}

/* ---------------- loop thread ---------------- */

static const char *paho_error(const struct mqtt *m, int code)
{
	const char *s = m->paho->MQTTAsync_strerror(code);
	return s ? s : "unknown error";
}

/* Reason codes (>= 0x80) and MQTTASYNC_* codes (< 0) share an int. */
static const char *code_name(const struct mqtt *m, int code)
{
	if (code > 0)
		return m->paho->MQTTReasonCode_toString((enum MQTTReasonCodes)code);
	return paho_error(m, code);
}

static uint64_t next_random(struct mqtt *m)
{
	/* xorshift64*: jitter only, no need for quality. */
	m->rng ^= m->rng >> 12;
	m->rng ^= m->rng << 25;
	m->rng ^= m->rng >> 27;
	return m->rng * 2685821657736338717ULL;
}

static uint64_t backoff_us(struct mqtt *m, unsigned attempts)
{
	uint64_t delay = BACKOFF_MIN_US;

	for (unsigned i = 0; i < attempts && delay < BACKOFF_MAX_US; i++)
		delay *= 2;
	if (delay > BACKOFF_MAX_US)
		delay = BACKOFF_MAX_US;
	/* +-25 % so that gateways restarted together do not stampede. */
	return delay * 3 / 4 + next_random(m) % (delay / 2 + 1);
}

static void schedule_reconnect(struct mqtt *m)
{
	uint64_t delay = backoff_us(m, m->attempts);
	int r;

	m->attempts++;
	m->state = CONN_WAITING;
	r = sd_event_source_set_time_relative(m->reconnect_timer, delay);
	if (r >= 0)
		r = sd_event_source_set_enabled(m->reconnect_timer, SD_EVENT_ONESHOT);
	if (r < 0)
		log_err("mqtt: cannot arm the reconnect timer: %s", strerror(-r));
	else
		log_info("mqtt: reconnecting in %llu ms", (unsigned long long)(delay / 1000));
}

static void schedule_pump(struct mqtt *m)
{
	bool lazy;

	if (m->state != CONN_CONNECTED || !m->journal)
		return;
	lazy = journal_outbox_visible_max(m->journal) - m->cursor > (int64_t)m->n_slots;
	if (lazy != m->pump_lazy) {
		/* Before the next pen's notifications, unless the broker is behind
		 * (PUMP_LAZY_MAX_US): then after the journal's idle commit. */
		(void)sd_event_source_set_priority(m->pump_defer,
						   lazy ? SD_EVENT_PRIORITY_IDLE + 1
							: SD_EVENT_PRIORITY_IMPORTANT);
		m->pump_lazy = lazy;
		if (lazy)
			m->stats.lazy++;
	}
	(void)sd_event_source_set_enabled(m->pump_defer, SD_EVENT_ONESHOT);
	if (lazy && sd_event_source_get_enabled(m->pump_timer, NULL) == 0 &&
	    sd_event_source_set_time_relative(m->pump_timer, PUMP_LAZY_MAX_US) >= 0)
		(void)sd_event_source_set_enabled(m->pump_timer, SD_EVENT_ONESHOT);
}

/* BASE/gateways/ID/state as docs/schemas/gateway-state.json has it, printed;
 * NULL (logged) on failure. */
static char *state_payload(const struct mqtt *m, bool online, bool will, int64_t since_ms)
{
	cJSON *json = NULL;
	char *text;
	int r;

	r = nl_payload_gateway_state(&(struct nl_payload_gateway_state){
					     .gateway_id = config_str(m->config, CONFIG_GATEWAY_ID),
					     .online = online,
					     .will = will,
					     .since_ms = since_ms,
				     },
				     &json);
	if (r < 0) {
		log_err("mqtt: cannot build the gateway state payload: %s", strerror(-r));
		return NULL;
	}
	text = nl_payload_print(json);
	cJSON_Delete(json);
	if (!text)
		log_err("mqtt: cannot print the gateway state payload: %s", strerror(ENOMEM));
	return text;
}

static int do_connect(struct mqtt *m)
{
	MQTTAsync_connectOptions opts = MQTTAsync_connectOptions_initializer;
	MQTTAsync_connectOptions opts5 = MQTTAsync_connectOptions_initializer5;
	MQTTAsync_connectOptions *o = m->v5 ? &opts5 : &opts;
	MQTTAsync_willOptions will = MQTTAsync_willOptions_initializer;
	MQTTAsync_SSLOptions ssl = MQTTAsync_SSLOptions_initializer;
	const struct config *c = m->config;
	const char *user = config_str(c, CONFIG_MQTT_USERNAME);
	const char *ca = config_str(c, CONFIG_MQTT_TLS_CA);
	const char *cert = config_str(c, CONFIG_MQTT_TLS_CERT);
	bool batch;
	int rc;

	o->keepAliveInterval = (int)config_int(c, CONFIG_MQTT_KEEPALIVE_S);
	o->connectTimeout = (int)config_int(c, CONFIG_MQTT_TIMEOUT);
	o->maxInflight = (int)m->n_slots + 16; /* our window plus state and replies */
	o->automaticReconnect = 0;
	if (m->v5) {
		o->cleanstart = 1;
		o->MQTTVersion = MQTTVERSION_5;
		o->onSuccess5 = on_connect_ok5;
		o->onFailure5 = on_connect_fail5;
	} else {
		o->cleansession = 1;
		o->MQTTVersion = MQTTVERSION_3_1_1;
		o->onSuccess = on_connect_ok;
		o->onFailure = on_connect_fail;
	}
	o->context = m;
	if (*user)
		o->username = user;
	if (config_mqtt_password(c))
		o->password = config_mqtt_password(c);
	/* The will and the "online" of this connection carry the same since:
	 * the time of this attempt, which is when the broker took the will. */
	m->connect_ms = journal_now_ms();
	free(m->will_payload);
	m->will_payload = state_payload(m, false, true, m->connect_ms);
	if (!m->will_payload) {
		schedule_reconnect(m);
		return -ENOMEM;
	}
	will.topicName = m->state_topic;
	will.message = m->will_payload;
	will.retained = 1;
	will.qos = 1;
	o->will = &will;
	if (*ca || *cert) {
		if (*ca)
			ssl.trustStore = ca;
		if (*cert) {
			ssl.keyStore = cert;
			ssl.privateKey = config_str(c, CONFIG_MQTT_TLS_KEY);
		}
		ssl.enableServerCertAuth = 1;
		ssl.verify = 1; /* host name check as well */
		o->ssl = &ssl;
	}
	m->state = CONN_CONNECTING;
	/* Paho starts its send and receive threads in here when they are not
	 * running, and they inherit this thread's policy: they are helpers,
	 * and must not preempt the loop (helper-sched.h). */
	batch = helper_sched_begin();
	rc = m->paho->MQTTAsync_connect(m->client, o);
	helper_sched_end(batch);
	if (rc != MQTTASYNC_SUCCESS) {
		log_err("mqtt: connect to %s failed at once: %s", m->uri, paho_error(m, rc));
		schedule_reconnect(m);
		return -EIO;
	}
	log_debug("mqtt: connecting to %s", m->uri);
	return 0;
}

static int on_reconnect_timer(sd_event_source *s, uint64_t usec, void *userdata)
{
	struct mqtt *m = userdata;

	if (m->state == CONN_WAITING)
		(void)do_connect(m);
	return 0;
}

static int send_message(struct mqtt *m, const char *topic, const void *payload, size_t len,
			int qos, bool retain, MQTTProperties *props, MQTTAsync_responseOptions *ro)
{
	MQTTAsync_message msg = MQTTAsync_message_initializer;

	if (len > INT32_MAX)
		return -EINVAL;
	msg.payload = (void *)payload;
	msg.payloadlen = (int)len;
	msg.qos = qos;
	msg.retained = retain;
	if (props)
		msg.properties = *props;
	return m->paho->MQTTAsync_sendMessage(m->client, topic, &msg, ro);
}

int mqtt_publish(struct mqtt *m, const struct mqtt_message *msg)
{
	MQTTAsync_responseOptions ro = MQTTAsync_responseOptions_initializer;
	MQTTProperties props = MQTTProperties_initializer;
	int rc;

	if (!m || !msg || !msg->topic || (msg->qos != 0 && msg->qos != 1))
		return -EINVAL;
	if (m->state != CONN_CONNECTED && m->state != CONN_STOPPING)
		return -ENOTCONN;
	ro.context = m;
	if (m->v5) {
		ro.onFailure5 = on_direct_fail5;
		if (msg->correlation && msg->correlation_len) {
			MQTTProperty p = { .identifier = MQTTPROPERTY_CODE_CORRELATION_DATA };
			p.value.data.data = (char *)msg->correlation;
			p.value.data.len = (int)msg->correlation_len;
			m->paho->MQTTProperties_add(&props, &p);
		}
	} else {
		ro.onFailure = on_direct_fail;
	}
	rc = send_message(m, msg->topic, msg->payload, msg->payload_len, msg->qos, msg->retain,
			  m->v5 ? &props : NULL, &ro);
	m->paho->MQTTProperties_free(&props);
	if (rc != MQTTASYNC_SUCCESS) {
		log_warning("mqtt: publish to %s refused: %s", msg->topic, paho_error(m, rc));
		return rc == MQTTASYNC_DISCONNECTED ? -ENOTCONN : -EIO;
	}
	return 0;
}

int mqtt_reply(struct mqtt *m, const struct mqtt_request *req, const void *payload, size_t len)
{
	char *fallback = NULL;
	int r;

	if (!m || !req)
		return -EINVAL;
	if (!req->response_topic &&
	    asprintf(&fallback, "%s%s/response/%s", m->pens_prefix, req->pen_serial, req->name) < 0)
		return -ENOMEM;
	r = mqtt_publish(m, &(struct mqtt_message){
				    .topic = req->response_topic ? req->response_topic : fallback,
				    .payload = payload,
				    .payload_len = len,
				    .qos = 1,
				    .correlation = req->correlation,
				    .correlation_len = req->correlation_len,
			    });
	free(fallback);
	return r;
}

static int refused_find(const struct mqtt *m, int64_t id)
{
	for (unsigned i = 0; i < m->n_refused; i++)
		if (m->refused[i] == id)
			return (int)i;
	return -1;
}

/* Forgets a refused row; returns whether it was one. */
static bool refused_forget(struct mqtt *m, int64_t id)
{
	int i = refused_find(m, id);

	if (i < 0)
		return false;
	memmove(&m->refused[i], &m->refused[i + 1],
		(m->n_refused - (unsigned)i - 1) * sizeof(*m->refused));
	m->n_refused--;
	return true;
}

/* The broker (or Paho) refused an outbox row while connected. It stays
 * unsent; the retry timer rewinds the drain to it after a backoff, so it goes
 * out again on this connection. Logged the first time only: a row the broker
 * refuses for good (an ACL) is retried every BACKOFF_MAX_US at worst, quietly. */
static void row_refused(struct mqtt *m, int64_t id, const char *topic, const char *why)
{
	int r;

	m->stats.failed++;
	if (refused_find(m, id) < 0) {
		log_warning("mqtt: outbox message %lld%s%s refused: %s; retrying", (long long)id,
			    topic ? " to " : "", topic ? topic : "", why);
		if (m->n_refused == REFUSED_MAX) /* forget the oldest */
			(void)refused_forget(m, m->refused[0]);
		m->refused[m->n_refused++] = id;
	} else {
		log_debug("mqtt: outbox message %lld refused again: %s", (long long)id, why);
	}
	if (!m->retry_from || id < m->retry_from)
		m->retry_from = id;
	r = sd_event_source_get_enabled(m->retry_timer, NULL);
	if (r > 0)
		return; /* a retry is already due: it covers this row too */
	r = sd_event_source_set_time_relative(m->retry_timer, backoff_us(m, m->retry_attempts));
	if (r >= 0)
		r = sd_event_source_set_enabled(m->retry_timer, SD_EVENT_ONESHOT);
	if (r < 0)
		log_err("mqtt: cannot arm the retry timer: %s", strerror(-r));
	else
		m->retry_attempts++;
}

static int on_retry_timer(sd_event_source *s, uint64_t usec, void *userdata)
{
	struct mqtt *m = userdata;

	if (m->state != CONN_CONNECTED || !m->retry_from)
		return 0;
	/* Rows between retry_from and the cursor that are still in flight are
	 * skipped by publish_row(); those already acknowledged are no longer
	 * unsent. */
	if (m->cursor >= m->retry_from)
		m->cursor = m->retry_from - 1;
	m->retry_from = 0;
	schedule_pump(m);
	return 0;
}

static bool in_flight(const struct mqtt *m, int64_t id)
{
	for (unsigned i = 0; i < m->n_slots; i++)
		if (m->slots[i].busy && m->slots[i].generation == m->generation &&
		    m->slots[i].outbox_id == id)
			return true;
	return false;
}

/* journal_outbox_unsent() callback: hand one row to Paho. */
static int publish_row(const struct journal_outbox_row *row, void *userdata)
{
	struct mqtt *m = userdata;
	MQTTAsync_responseOptions ro = MQTTAsync_responseOptions_initializer;
	MQTTProperties props = MQTTProperties_initializer;
	MQTTProperty prop;
	char idstr[24];
	unsigned slot = 0;
	int rc;

	if (m->busy && in_flight(m, row->id)) {
		/* Met again after a retry rewound the cursor: already on its
		 * way on this connection. */
		m->cursor = row->id;
		return 0;
	}
	if (row->qos == 1) {
		while (slot < m->n_slots && m->slots[slot].busy)
			slot++;
		if (slot == m->n_slots)
			return 1; /* window full: stop here, cursor stays before this row */
		ro.context = &m->slot_ctx[slot];
		if (m->v5) {
			ro.onSuccess5 = on_pub_ok5;
			ro.onFailure5 = on_pub_fail5;
		} else {
			ro.onSuccess = on_pub_ok;
			ro.onFailure = on_pub_fail;
		}
	}
	if (m->v5) {
		/* One property in a caller-owned array, not MQTTProperties_add()
		 * (two allocations and a free per message): Paho copies the
		 * message's properties into its command before returning. */
		int n = snprintf(idstr, sizeof(idstr), "%lld", (long long)row->id);

		prop = (MQTTProperty){ .identifier = MQTTPROPERTY_CODE_USER_PROPERTY };
		prop.value.data.data = (char *)MSG_ID_PROPERTY;
		prop.value.data.len = (int)strlen(MSG_ID_PROPERTY);
		prop.value.value.data = idstr;
		prop.value.value.len = n;
		props.count = props.max_count = 1;
		props.array = &prop;
		/* identifier, then two length-prefixed strings */
		props.length = 1 + 2 + prop.value.data.len + 2 + n;
	}
	rc = send_message(m, row->topic, row->payload, row->payload_len, row->qos, row->retain,
			  m->v5 ? &props : NULL, &ro);
	if (rc != MQTTASYNC_SUCCESS) {
		if (rc == MQTTASYNC_DISCONNECTED || rc == MQTTASYNC_MAX_MESSAGES_INFLIGHT ||
		    rc == MQTTASYNC_MAX_BUFFERED_MESSAGES || rc == MQTTASYNC_NO_MORE_MSGIDS) {
			/* Try again later (or after reconnect) from this row on. */
			m->send_blocked = true;
			return 1;
		}
		/* Paho refused this row (bad topic...): skip it for now; it
		 * stays unsent and is retried after a backoff. */
		row_refused(m, row->id, row->topic, paho_error(m, rc));
		m->cursor = row->id;
		return 0;
	}
	m->cursor = row->id;
	m->stats.published++;
	if (row->qos == 1) {
		m->slots[slot].busy = true;
		m->slots[slot].outbox_id = row->id;
		m->slots[slot].generation = m->generation;
		m->busy++;
	} else if (m->n_qos0 < PAGE_MAX) {
		m->qos0_sent[m->n_qos0++] = row->id;
	}
	return 0;
}

static void pump(struct mqtt *m)
{
	(void)sd_event_source_set_enabled(m->pump_timer, SD_EVENT_OFF);
	if (!m->journal || m->state != CONN_CONNECTED)
		return;
	m->send_blocked = false;
	while (m->busy < m->n_slots && !m->send_blocked) {
		unsigned want = m->n_slots - m->busy;
		int n;

		if (want > PAGE_MAX)
			want = PAGE_MAX;
		m->n_qos0 = 0;
		n = journal_outbox_unsent(m->journal, m->cursor, want, publish_row, m);
		/* Marked after the read: no writes while the query is open. */
		for (unsigned i = 0; i < m->n_qos0; i++)
			if (journal_outbox_mark_sent(m->journal, m->qos0_sent[i], 0) >= 0)
				m->stats.acked++;
		if (n < 0) {
			log_err("mqtt: reading the outbox failed: %s", strerror(-n));
			break;
		}
		if ((unsigned)n < want) {
			/* Caught up: every visible row past the cursor was handed
			 * to Paho (or refused, and retry_from has it) or is sent. */
			int64_t vis = journal_outbox_visible_max(m->journal);

			if (!m->send_blocked && m->cursor < vis)
				m->cursor = vis;
			break;
		}
	}
}

static int on_pump(sd_event_source *s, void *userdata)
{
	pump(userdata);
	return 0;
}

static int on_pump_timer(sd_event_source *s, uint64_t usec, void *userdata)
{
	pump(userdata);
	return 0;
}

void mqtt_kick(struct mqtt *m)
{
	if (m)
		schedule_pump(m);
}

static void on_outbox_committed(void *userdata)
{
	mqtt_kick(userdata);
}

/* journal add hook: a QoS 1 row just added to the open batch goes out now,
 * before its commit, if nothing before it is still waiting: every row with
 * a lower id was handed to Paho on this connection (the cursor is right
 * behind it and the drain caught up with the committed rows), none awaits
 * a retry, and the window has room. Order is then still id order. */
static int on_outbox_added(const struct journal_outbox_row *row, void *userdata)
{
	struct mqtt *m = userdata;

	if (m->state != CONN_CONNECTED || row->qos != 1 || m->retry_from || m->send_blocked ||
	    m->busy >= m->n_slots || m->cursor != row->id - 1 ||
	    m->cursor < journal_outbox_visible_max(m->journal))
		return 1;
	if (publish_row(row, m) != 0 || m->cursor != row->id || m->retry_from)
		return 1;
	m->stats.early++;
	return 0;
}

static void subscribe(struct mqtt *m)
{
	MQTTAsync_responseOptions ro = MQTTAsync_responseOptions_initializer;
	int rc;

	ro.context = m;
	if (m->v5) {
		ro.onSuccess5 = on_sub_ok5;
		ro.onFailure5 = on_sub_fail5;
	} else {
		ro.onSuccess = on_sub_ok;
		ro.onFailure = on_sub_fail;
	}
	rc = m->paho->MQTTAsync_subscribe(m->client, m->request_filter, 1, &ro);
	if (rc != MQTTASYNC_SUCCESS)
		log_err("mqtt: subscribe to %s refused: %s", m->request_filter, paho_error(m, rc));
}

/* Slots still busy from an earlier connection. Paho fails every publish
 * awaiting its PUBACK before it reports the connection lost, so these are
 * rare (a publish still queued inside Paho when the link dropped), and their
 * callback may yet come: until it does, or until the quarantine ends, the
 * slot is not reused, so that callback cannot be taken for another
 * message's. Their rows are still unsent and go out again meanwhile. */
static unsigned release_old_slots(struct mqtt *m, bool log_each)
{
	unsigned n = 0;

	for (unsigned i = 0; i < m->n_slots; i++) {
		struct slot *s = &m->slots[i];
		if (s->busy && s->generation < m->generation) {
			if (log_each)
				log_warning("mqtt: outbox message %lld: no answer from an old connection, giving up on it",
					    (long long)s->outbox_id);
			s->busy = false;
			m->busy--;
			n++;
		}
	}
	return n;
}

static unsigned count_old_slots(const struct mqtt *m)
{
	unsigned n = 0;

	for (unsigned i = 0; i < m->n_slots; i++)
		if (m->slots[i].busy && m->slots[i].generation < m->generation)
			n++;
	return n;
}

static int on_quarantine_end(sd_event_source *s, uint64_t usec, void *userdata)
{
	struct mqtt *m = userdata;

	if (release_old_slots(m, true))
		schedule_pump(m);
	return 0;
}

static void handle_connected(struct mqtt *m)
{
	char *online;

	if (m->state != CONN_CONNECTING)
		return;
	m->state = CONN_CONNECTED;
	m->attempts = 0;
	m->cursor = 0;
	m->stats.connects++;
	m->generation++;
	/* The drain starts from the first unsent row anyway. */
	m->retry_from = 0;
	m->retry_attempts = 0;
	(void)sd_event_source_set_enabled(m->retry_timer, SD_EVENT_OFF);
	if (count_old_slots(m)) {
		uint64_t t = (uint64_t)config_int(m->config, CONFIG_MQTT_TIMEOUT) * 4000000u;
		log_notice("mqtt: %u publishes of the last connection still unanswered", m->busy);
		if (sd_event_source_set_time_relative(m->quarantine_timer, t) < 0 ||
		    sd_event_source_set_enabled(m->quarantine_timer, SD_EVENT_ONESHOT) < 0)
			(void)release_old_slots(m, true);
	}
	log_notice("mqtt: connected to %s (MQTT %s)", m->uri, m->v5 ? "5" : "3.1.1");
	online = state_payload(m, true, false, m->connect_ms);
	if (online)
		(void)mqtt_publish(m, &(struct mqtt_message){ .topic = m->state_topic,
							      .payload = online,
							      .payload_len = strlen(online),
							      .qos = 1,
							      .retain = true });
	free(online);
	if (m->connected_fn)
		m->connected_fn(m, m->connected_ud);
	if (m->state != CONN_CONNECTED)
		return; /* the handler stopped us */
	subscribe(m);
	schedule_pump(m);
}

static void handle_down(struct mqtt *m, const char *what, const char *detail)
{
	if (m->state != CONN_CONNECTED)
		return;
	log_warning("mqtt: %s%s%s; %u messages in flight will be sent again", what,
		    detail ? ": " : "", detail ? detail : "", m->busy);
	schedule_reconnect(m);
}

static void request_arrived(struct mqtt *m, struct ev *ev)
{
	struct mqtt_request req = { 0 };
	size_t plen = strlen(m->pens_prefix);
	char *serial, *slash, *name;

	if (!m->request_fn)
		return;
	/* BASE/pens/SERIAL/request/NAME; the filter guarantees the shape, but
	 * check: a broker is outside our trust boundary. */
	if (strncmp(ev->topic, m->pens_prefix, plen) != 0)
		goto bad;
	serial = ev->topic + plen;
	slash = strchr(serial, '/');
	if (!slash || slash == serial || strncmp(slash, "/request/", 9) != 0)
		goto bad;
	name = slash + 9;
	if (!*name || strchr(name, '/'))
		goto bad;
	*slash = '\0';
	req.pen_serial = serial;
	req.name = name;
	{
		char *topic = NULL;
		if (asprintf(&topic, "%s%s/request/%s", m->pens_prefix, serial, name) < 0)
			return;
		req.topic = topic;
		req.payload = ev->payload;
		req.payload_len = ev->payload_len;
		req.response_topic = ev->response_topic;
		req.correlation = ev->correlation;
		req.correlation_len = ev->correlation_len;
		m->request_fn(m, &req, m->request_ud);
		free(topic);
	}
	return;
bad:
	log_warning("mqtt: ignoring message on unexpected topic %s", ev->topic);
}

static void finish_stop(struct mqtt *m)
{
	mqtt_stopped_fn cb = m->stopped_fn;

	if (m->state == CONN_IDLE)
		return;
	m->state = CONN_IDLE;
	m->stopped_fn = NULL;
	(void)sd_event_source_set_enabled(m->stop_timer, SD_EVENT_OFF);
	log_info("mqtt: stopped");
	if (cb)
		cb(m, m->stopped_ud);
}

static unsigned stop_ms(const struct mqtt *m)
{
	uint64_t t = (uint64_t)config_int(m->config, CONFIG_MQTT_TIMEOUT) * 1000u;

	return t < STOP_MAX_MS ? (unsigned)t : STOP_MAX_MS;
}

static void disconnect(struct mqtt *m)
{
	MQTTAsync_disconnectOptions o = MQTTAsync_disconnectOptions_initializer;
	int rc;

	o.timeout = (int)stop_ms(m) / 2;
	o.context = m;
	if (m->v5) {
		o.onSuccess5 = on_disconnect_ok5;
		o.onFailure5 = on_disconnect_fail5;
	} else {
		o.onSuccess = on_disconnect_ok;
		o.onFailure = on_disconnect_fail;
	}
	rc = m->paho->MQTTAsync_disconnect(m->client, &o);
	if (rc != MQTTASYNC_SUCCESS)
		finish_stop(m);
}

static void handle_event(void *msg, void *userdata)
{
	struct mqtt *m = userdata;
	struct ev *ev = msg;

	switch (ev->kind) {
	case EV_CONNECTED:
		handle_connected(m);
		break;
	case EV_CONNECT_FAILED:
		if (m->state == CONN_CONNECTING) {
			log_warning("mqtt: connect to %s failed: %s%s%s", m->uri, code_name(m, ev->code),
				    ev->text ? ": " : "", ev->text ? ev->text : "");
			schedule_reconnect(m);
		}
		break;
	case EV_LOST:
		handle_down(m, "connection lost", ev->text);
		break;
	case EV_SERVER_DISCONNECT:
		handle_down(m, "broker disconnected us", code_name(m, ev->code));
		break;
	case EV_MESSAGE:
		if (m->state == CONN_CONNECTED)
			request_arrived(m, ev);
		break;
	case EV_PUB_OK:
	case EV_PUB_FAILED:
		if (ev->slot < m->n_slots && m->slots[ev->slot].busy) {
			struct slot *s = &m->slots[ev->slot];
			if (ev->kind == EV_PUB_OK) {
				if (journal_outbox_mark_sent(m->journal, s->outbox_id, 0) >= 0)
					m->stats.acked++;
				if (refused_forget(m, s->outbox_id)) {
					log_info("mqtt: outbox message %lld delivered after a refusal",
						 (long long)s->outbox_id);
					m->retry_attempts = 0;
				}
			} else if (m->state == CONN_CONNECTED && s->generation == m->generation &&
				   ev->code != MQTTASYNC_DISCONNECTED &&
				   ev->code != MQTTASYNC_OPERATION_INCOMPLETE) {
				/* Refused on a live connection (MQTT 5 PUBACK
				 * reason >= 0x80: quota, ACL...): retried on it. */
				row_refused(m, s->outbox_id, NULL, code_name(m, ev->code));
			} else {
				/* Lost with its connection: unsent in the journal,
				 * it goes out again on the next one. */
				m->stats.failed++;
				log_debug("mqtt: outbox message %lld not acknowledged: %s",
					  (long long)s->outbox_id, code_name(m, ev->code));
			}
			s->busy = false;
			m->busy--;
			schedule_pump(m);
		}
		break;
	case EV_SUB_OK:
		log_debug("mqtt: subscribed to %s", m->request_filter);
		break;
	case EV_SUB_FAILED:
		log_err("mqtt: subscription to %s refused: %s", m->request_filter,
			code_name(m, ev->code));
		break;
	case EV_DIRECT_FAILED:
		log_warning("mqtt: publish failed: %s", code_name(m, ev->code));
		break;
	case EV_OFFLINE_DONE:
		if (m->state == CONN_STOPPING)
			disconnect(m);
		break;
	case EV_DISCONNECT_DONE:
		if (m->state == CONN_STOPPING)
			finish_stop(m);
		break;
	}
	ev_free(ev);
}

static int on_stop_timeout(sd_event_source *s, uint64_t usec, void *userdata)
{
	struct mqtt *m = userdata;

	if (!m->stop_quiet)
		log_warning("mqtt: graceful stop timed out");
	finish_stop(m);
	return 0;
}

int mqtt_stop(struct mqtt *m, mqtt_stopped_fn cb, void *userdata)
{
	MQTTAsync_responseOptions ro = MQTTAsync_responseOptions_initializer;
	enum conn_state was = m->state;
	char *offline;
	int r, rc;

	if (was == CONN_STOPPING || was == CONN_IDLE)
		return -EALREADY;
	m->stopped_fn = cb;
	m->stopped_ud = userdata;
	m->stop_quiet = false;
	m->state = CONN_STOPPING;
	(void)sd_event_source_set_enabled(m->reconnect_timer, SD_EVENT_OFF);
	(void)sd_event_source_set_enabled(m->retry_timer, SD_EVENT_OFF);
	r = sd_event_source_set_time_relative(m->stop_timer, (uint64_t)stop_ms(m) * 1000u);
	if (r >= 0)
		r = sd_event_source_set_enabled(m->stop_timer, SD_EVENT_ONESHOT);
	if (r < 0)
		return r;
	if (was != CONN_CONNECTED) {
		/* Not connected (or mid-connect): nothing to say; the will covers
		 * a connect still in progress once the client is destroyed.
		 * Finish from the loop, never from inside this call. */
		m->stop_quiet = true;
		r = sd_event_source_set_time_relative(m->stop_timer, 0);
		return r < 0 ? r : 0;
	}
	ro.context = m;
	if (m->v5) {
		ro.onSuccess5 = on_offline_done5;
		ro.onFailure5 = on_offline_fail5;
	} else {
		ro.onSuccess = on_offline_done;
		ro.onFailure = on_offline_fail;
	}
	/* Paho copies the payload: it is ours again once this returns. */
	offline = state_payload(m, false, false, journal_now_ms());
	rc = offline ? send_message(m, m->state_topic, offline, strlen(offline), 1, true, NULL, &ro)
		     : MQTTASYNC_FAILURE;
	free(offline);
	if (rc != MQTTASYNC_SUCCESS)
		disconnect(m);
	return 0;
}

int mqtt_start(struct mqtt *m)
{
	if (m->state != CONN_IDLE)
		return -EALREADY;
	m->attempts = 0;
	return do_connect(m);
}

bool mqtt_is_connected(const struct mqtt *m)
{
	return m && m->state == CONN_CONNECTED;
}

const char *mqtt_state_topic(const struct mqtt *m)
{
	return m->state_topic;
}

void mqtt_get_stats(const struct mqtt *m, struct mqtt_stats *ret)
{
	*ret = m->stats;
	ret->inflight = m->busy;
}

void mqtt_set_request_handler(struct mqtt *m, mqtt_request_fn fn, void *userdata)
{
	m->request_fn = fn;
	m->request_ud = userdata;
}

void mqtt_set_connected_handler(struct mqtt *m, mqtt_connected_fn fn, void *userdata)
{
	m->connected_fn = fn;
	m->connected_ud = userdata;
}

int mqtt_new(sd_event *e, const struct config *c, struct journal *j, struct mqtt **ret)
{
	MQTTAsync_createOptions co = MQTTAsync_createOptions_initializer;
	MQTTAsync_createOptions co5 = MQTTAsync_createOptions_initializer5;
	const char *host = config_str(c, CONFIG_MQTT_HOST);
	const char *base = config_str(c, CONFIG_GATEWAY_BASE_TOPIC);
	const char *gw = config_str(c, CONFIG_GATEWAY_ID);
	bool tls = *config_str(c, CONFIG_MQTT_TLS_CA) || *config_str(c, CONFIG_MQTT_TLS_CERT);
	bool v6 = strchr(host, ':') != NULL;
	struct timespec ts;
	struct mqtt *m;
	int r, rc;

	if (!e || !c || !ret)
		return -EINVAL;
	m = calloc(1, sizeof(*m));
	if (!m)
		return -ENOMEM;
	m->event = sd_event_ref(e);
	m->config = c;
	m->journal = j;
	m->v5 = config_mqtt_protocol(c) == CONFIG_MQTT_PROTOCOL_5;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	m->rng = ((uint64_t)ts.tv_nsec << 20) ^ (uint64_t)ts.tv_sec ^ (uintptr_t)m;
	if (!m->rng)
		m->rng = 1;
	m->paho = paho_load(tls);
	if (!m->paho) {
		r = -ELIBACC;
		goto fail;
	}
	r = -ENOMEM;
	if (asprintf(&m->uri, "%s://%s%s%s:%lld", tls ? "ssl" : "tcp", v6 ? "[" : "", host,
		     v6 ? "]" : "", (long long)config_int(c, CONFIG_MQTT_PORT)) < 0) {
		m->uri = NULL;
		goto fail;
	}
	if (asprintf(&m->state_topic, "%s/gateways/%s/state", base, gw) < 0) {
		m->state_topic = NULL;
		goto fail;
	}
	if (asprintf(&m->pens_prefix, "%s/pens/", base) < 0) {
		m->pens_prefix = NULL;
		goto fail;
	}
	if (asprintf(&m->request_filter, "%s+/request/+", m->pens_prefix) < 0) {
		m->request_filter = NULL;
		goto fail;
	}
	m->n_slots = (unsigned)config_int(c, CONFIG_MQTT_MAX_INFLIGHT);
	m->slots = calloc(m->n_slots, sizeof(*m->slots));
	m->slot_ctx = calloc(m->n_slots, sizeof(*m->slot_ctx));
	m->qos0_sent = calloc(PAGE_MAX, sizeof(*m->qos0_sent));
	m->refused = calloc(REFUSED_MAX, sizeof(*m->refused));
	if (!m->slots || !m->slot_ctx || !m->qos0_sent || !m->refused)
		goto fail;
	/* Refuse a gateway id the state payload cannot carry now, not at the
	 * first connect. */
	{
		char *probe = state_payload(m, true, false, journal_now_ms());

		if (!probe) {
			r = -EINVAL;
			goto fail;
		}
		free(probe);
	}
	for (unsigned i = 0; i < m->n_slots; i++)
		m->slot_ctx[i] = (struct slot_ctx){ m, i };

	r = queue_new(e, handle_event, ev_free, m, &m->queue);
	if (r < 0)
		goto fail;
	r = sd_event_add_time_relative(e, &m->reconnect_timer, CLOCK_MONOTONIC, BACKOFF_MIN_US,
				       10000, on_reconnect_timer, m);
	if (r < 0)
		goto fail;
	(void)sd_event_source_set_enabled(m->reconnect_timer, SD_EVENT_OFF);
	r = sd_event_add_time_relative(e, &m->stop_timer, CLOCK_MONOTONIC, 1000000, 10000,
				       on_stop_timeout, m);
	if (r < 0)
		goto fail;
	(void)sd_event_source_set_enabled(m->stop_timer, SD_EVENT_OFF);
	r = sd_event_add_time_relative(e, &m->quarantine_timer, CLOCK_MONOTONIC, 1000000, 100000,
				       on_quarantine_end, m);
	if (r < 0)
		goto fail;
	(void)sd_event_source_set_enabled(m->quarantine_timer, SD_EVENT_OFF);
	r = sd_event_add_time_relative(e, &m->retry_timer, CLOCK_MONOTONIC, BACKOFF_MIN_US, 10000,
				       on_retry_timer, m);
	if (r < 0)
		goto fail;
	(void)sd_event_source_set_enabled(m->retry_timer, SD_EVENT_OFF);
	r = sd_event_add_defer(e, &m->pump_defer, on_pump, m);
	if (r < 0)
		goto fail;
	(void)sd_event_source_set_enabled(m->pump_defer, SD_EVENT_OFF);
	/* Before the next pen's notifications: a committed row goes out
	 * without waiting behind reads that were already pending (unless the
	 * broker is behind, see PUMP_LAZY_MAX_US). */
	(void)sd_event_source_set_priority(m->pump_defer, SD_EVENT_PRIORITY_IMPORTANT);
	r = sd_event_add_time_relative(e, &m->pump_timer, CLOCK_MONOTONIC, PUMP_LAZY_MAX_US, 1000,
				       on_pump_timer, m);
	if (r < 0)
		goto fail;
	(void)sd_event_source_set_enabled(m->pump_timer, SD_EVENT_OFF);

	/* No Paho persistence: the journal is the store. No offline buffering:
	 * while disconnected we publish nothing. */
	co.sendWhileDisconnected = 0;
	co5.sendWhileDisconnected = 0;
	/* Paho counts every publish not yet written against this limit, even
	 * while connected: leave room for the window plus state and replies. */
	co.maxBufferedMessages = (int)m->n_slots + 256;
	co5.maxBufferedMessages = (int)m->n_slots + 256;
	rc = m->paho->MQTTAsync_createWithOptions(&m->client, m->uri, config_str(c, CONFIG_MQTT_CLIENT_ID),
					 MQTTCLIENT_PERSISTENCE_NONE, NULL, m->v5 ? &co5 : &co);
	if (rc != MQTTASYNC_SUCCESS) {
		log_err("mqtt: cannot create a client for %s: %s", m->uri, paho_error(m, rc));
		m->client = NULL;
		r = -EINVAL;
		goto fail;
	}
	rc = m->paho->MQTTAsync_setCallbacks(m->client, m, on_connection_lost, on_message, NULL);
	if (rc == MQTTASYNC_SUCCESS && m->v5)
		rc = m->paho->MQTTAsync_setDisconnected(m->client, m, on_disconnected);
	if (rc != MQTTASYNC_SUCCESS) {
		log_err("mqtt: cannot set callbacks: %s", paho_error(m, rc));
		r = -EIO;
		goto fail;
	}
	if (j) {
		journal_set_outbox_hook(j, on_outbox_committed, m);
		/* Off by default: a message published before its commit and
		 * lost with a crash comes back under another msg_id (a record
		 * keeps its record_id). docs/mqtt-api.md, "Delivery". */
		if (config_bool(c, CONFIG_MQTT_PUBLISH_BEFORE_COMMIT))
			journal_set_add_hook(j, on_outbox_added, m);
	}
	*ret = m;
	return 0;
fail:
	mqtt_free(m);
	return r;
}

void mqtt_free(struct mqtt *m)
{
	if (!m)
		return;
	if (m->journal) {
		journal_set_outbox_hook(m->journal, NULL, NULL);
		journal_set_add_hook(m->journal, NULL, NULL);
	}
	/* Refuse further events first; then no Paho thread is left holding
	 * our context once the client is destroyed. */
	if (m->queue)
		queue_close(m->queue);
	if (m->client)
		m->paho->MQTTAsync_destroy(&m->client);
	queue_free(m->queue);
	sd_event_source_disable_unref(m->reconnect_timer);
	sd_event_source_disable_unref(m->stop_timer);
	sd_event_source_disable_unref(m->pump_defer);
	sd_event_source_disable_unref(m->pump_timer);
	sd_event_source_disable_unref(m->quarantine_timer);
	sd_event_source_disable_unref(m->retry_timer);
	free(m->refused);
	free(m->will_payload);
	free(m->slots);
	free(m->slot_ctx);
	free(m->qos0_sent);
	free(m->uri);
	free(m->state_topic);
	free(m->pens_prefix);
	free(m->request_filter);
	sd_event_unref(m->event);
	free(m);
}
