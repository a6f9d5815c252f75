/* SPDX-License-Identifier: MIT */
/* needlelinkctl's MQTT request client; see ctl-mqtt.h. */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <MQTTAsync.h>

#include "config.h"
#include "ctl-mqtt.h"

struct call {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	/* under lock */
	int connected; /* 0 waiting, 1 yes, -1 failed */
	int subscribed;
	int published;
	int disconnected;
	char *response; /* the matching payload, NUL terminated */
	char fail[160];
	/* set before connecting, read-only afterwards */
	bool v311;
	const char *reply_topic;
	const char *correlation;
	const char *transaction;
};

static void call_set(struct call *c, int *flag, int v, const char *why)
{
	pthread_mutex_lock(&c->lock);
	*flag = v;
	if (why && !c->fail[0])
		snprintf(c->fail, sizeof(c->fail), "%s", why);
	pthread_cond_broadcast(&c->cond);
	pthread_mutex_unlock(&c->lock);
}

/* Waits until *flag is non-zero or the deadline (CLOCK_MONOTONIC) passes. */
static int call_wait(struct call *c, int *flag, const struct timespec *deadline)
{
	int v;

	pthread_mutex_lock(&c->lock);
	while (*flag == 0) {
		if (pthread_cond_timedwait(&c->cond, &c->lock, deadline) == ETIMEDOUT)
			break;
	}
	v = *flag;
	pthread_mutex_unlock(&c->lock);
	return v;
}

static int call_wait_response(struct call *c, const struct timespec *deadline, char **ret)
{
	pthread_mutex_lock(&c->lock);
	while (!c->response) {
		if (pthread_cond_timedwait(&c->cond, &c->lock, deadline) == ETIMEDOUT)
			break;
	}
	*ret = c->response;
	c->response = NULL;
	pthread_mutex_unlock(&c->lock);
	return *ret ? 0 : -ETIMEDOUT;
}

static void deadline_in(struct timespec *ts, int s)
{
	clock_gettime(CLOCK_MONOTONIC, ts);
	ts->tv_sec += s;
}

/* ---- Paho callbacks (Paho's thread) --------------------------------------- */

static void on_conn_lost(void *ctx, char *cause)
{
	struct call *c = ctx;

	call_set(c, &c->connected, -1, cause ? cause : "connection lost");
}

static int on_message(void *ctx, char *topic, int topic_len, MQTTAsync_message *m)
{
	struct call *c = ctx;
	bool match = strlen(c->reply_topic) == (size_t)(topic_len ? topic_len : (int)strlen(topic)) &&
		     strncmp(topic, c->reply_topic, strlen(c->reply_topic)) == 0;
	char *text = NULL;

	if (match && !c->v311) {
		MQTTProperty *p = MQTTProperties_getProperty(&m->properties,
							     MQTTPROPERTY_CODE_CORRELATION_DATA);

		match = p && (size_t)p->value.data.len == strlen(c->correlation) &&
			memcmp(p->value.data.data, c->correlation, strlen(c->correlation)) == 0;
	}
	if (match && m->payloadlen >= 0) {
		text = malloc((size_t)m->payloadlen + 1);
		if (text) {
			memcpy(text, m->payload, (size_t)m->payloadlen);
			text[m->payloadlen] = '\0';
		}
	}
	if (text && c->v311) {
		/* The fallback topic is shared: only our transaction counts. */
		cJSON *o = cJSON_Parse(text);
		const cJSON *t = cJSON_GetObjectItemCaseSensitive(o, "transaction");

		if (!cJSON_IsString(t) || strcmp(t->valuestring, c->transaction) != 0) {
			free(text);
			text = NULL;
		}
		cJSON_Delete(o);
	}
	if (text) {
		pthread_mutex_lock(&c->lock);
		if (!c->response)
			c->response = text;
		else
			free(text);
		pthread_cond_broadcast(&c->cond);
		pthread_mutex_unlock(&c->lock);
	}
	MQTTAsync_freeMessage(&m);
	MQTTAsync_free(topic);
	return 1;
}

static void on_connect_ok(void *ctx, MQTTAsync_successData *d)
{
	struct call *c = ctx;

	(void)d;
	call_set(c, &c->connected, 1, NULL);
}

static void on_connect_fail(void *ctx, MQTTAsync_failureData *d)
{
	struct call *c = ctx;
	char why[128];

	snprintf(why, sizeof(why), "connect failed: %s (%d)", d && d->message ? d->message : "",
		 d ? d->code : 0);
	call_set(c, &c->connected, -1, why);
}

static void on_connect_ok5(void *ctx, MQTTAsync_successData5 *d)
{
	struct call *c = ctx;

	(void)d;
	call_set(c, &c->connected, 1, NULL);
}

static void on_connect_fail5(void *ctx, MQTTAsync_failureData5 *d)
{
	struct call *c = ctx;
	char why[128];

	snprintf(why, sizeof(why), "connect failed: %s%s%s%s",
		 d && d->message ? d->message : "", d && d->reasonCode ? " (" : "",
		 d && d->reasonCode ? MQTTReasonCode_toString(d->reasonCode) : "",
		 d && d->reasonCode ? ")" : "");
	call_set(c, &c->connected, -1, why);
}

static void on_sub_ok(void *ctx, MQTTAsync_successData *d)
{
	struct call *c = ctx;

	call_set(c, &c->subscribed, d && d->alt.qos == 0x80 ? -1 : 1,
		 d && d->alt.qos == 0x80 ? "the broker refused the reply subscription" : NULL);
}

static void on_sub_fail(void *ctx, MQTTAsync_failureData *d)
{
	struct call *c = ctx;

	(void)d;
	call_set(c, &c->subscribed, -1, "subscribing to the reply topic failed");
}

static void on_sub_ok5(void *ctx, MQTTAsync_successData5 *d)
{
	struct call *c = ctx;
	bool bad = d && d->reasonCode >= MQTTREASONCODE_UNSPECIFIED_ERROR;

	call_set(c, &c->subscribed, bad ? -1 : 1,
		 bad ? "the broker refused the reply subscription" : NULL);
}

static void on_sub_fail5(void *ctx, MQTTAsync_failureData5 *d)
{
	struct call *c = ctx;
	char why[128];

	snprintf(why, sizeof(why), "subscribing to the reply topic failed (%s)",
		 d ? MQTTReasonCode_toString(d->reasonCode) : "?");
	call_set(c, &c->subscribed, -1, why);
}

static void on_pub_ok(void *ctx, MQTTAsync_successData *d)
{
	struct call *c = ctx;

	(void)d;
	call_set(c, &c->published, 1, NULL);
}

static void on_pub_fail(void *ctx, MQTTAsync_failureData *d)
{
	struct call *c = ctx;

	(void)d;
	call_set(c, &c->published, -1, "publishing the request failed");
}

static void on_pub_ok5(void *ctx, MQTTAsync_successData5 *d)
{
	struct call *c = ctx;
	char why[128];
	bool bad = d && d->reasonCode >= MQTTREASONCODE_UNSPECIFIED_ERROR;

	snprintf(why, sizeof(why), "the broker refused the request (%s)",
		 d ? MQTTReasonCode_toString(d->reasonCode) : "?");
	call_set(c, &c->published, bad ? -1 : 1, bad ? why : NULL);
}

static void on_pub_fail5(void *ctx, MQTTAsync_failureData5 *d)
{
	struct call *c = ctx;
	char why[128];

	snprintf(why, sizeof(why), "publishing the request failed (%s)",
		 d ? MQTTReasonCode_toString(d->reasonCode) : "?");
	call_set(c, &c->published, -1, why);
}

static void on_disc(void *ctx, MQTTAsync_successData *d)
{
	struct call *c = ctx;

	(void)d;
	call_set(c, &c->disconnected, 1, NULL);
}

static void on_disc5(void *ctx, MQTTAsync_successData5 *d)
{
	struct call *c = ctx;

	(void)d;
	call_set(c, &c->disconnected, 1, NULL);
}

/* ---- the request ---------------------------------------------------------- */

void ctl_mqtt_opts_init(struct ctl_mqtt_opts *o)
{
	*o = (struct ctl_mqtt_opts){
		.host = "localhost",
		.port = 1883,
		.base_topic = "needlelink",
		.connect_timeout_s = 10,
		.timeout_s = 30,
	};
}

static const char *nonempty(const char *s)
{
	return s && *s ? s : NULL;
}

void ctl_mqtt_opts_from_config(struct ctl_mqtt_opts *o, const struct config *c)
{
	o->host = config_str(c, CONFIG_MQTT_HOST);
	o->port = (int)config_int(c, CONFIG_MQTT_PORT);
	o->v311 = config_mqtt_protocol(c) == CONFIG_MQTT_PROTOCOL_311;
	o->base_topic = config_str(c, CONFIG_GATEWAY_BASE_TOPIC);
	o->username = nonempty(config_str(c, CONFIG_MQTT_USERNAME));
	o->password = config_mqtt_password(c);
	o->tls_ca = nonempty(config_str(c, CONFIG_MQTT_TLS_CA));
	o->tls_cert = nonempty(config_str(c, CONFIG_MQTT_TLS_CERT));
	o->tls_key = nonempty(config_str(c, CONFIG_MQTT_TLS_KEY));
	o->connect_timeout_s = (int)config_int(c, CONFIG_MQTT_TIMEOUT);
}

static bool topic_level_ok(const char *s)
{
	if (!s || !*s || strlen(s) > 64)
		return false;
	for (; *s; s++)
		if (*s == '/' || *s == '+' || *s == '#' || (unsigned char)*s <= ' ')
			return false;
	return true;
}

static uint32_t random_u32(void)
{
	struct timespec ts;
	uint64_t x;

	clock_gettime(CLOCK_REALTIME, &ts);
	x = ((uint64_t)ts.tv_nsec << 20) ^ (uint64_t)ts.tv_sec ^ ((uint64_t)getpid() << 40);
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdULL;
	x ^= x >> 33;
	return (uint32_t)x;
}

int ctl_mqtt_request(const struct ctl_mqtt_opts *o, const char *serial, const char *op,
		     cJSON *params, cJSON **ret_response)
{
	MQTTAsync_createOptions co = MQTTAsync_createOptions_initializer;
	MQTTAsync_connectOptions cn = MQTTAsync_connectOptions_initializer;
	MQTTAsync_connectOptions cn5 = MQTTAsync_connectOptions_initializer5;
	MQTTAsync_SSLOptions ssl = MQTTAsync_SSLOptions_initializer;
	MQTTAsync_responseOptions ro = MQTTAsync_responseOptions_initializer;
	MQTTAsync_disconnectOptions dopts = MQTTAsync_disconnectOptions_initializer;
	MQTTAsync_message msg = MQTTAsync_message_initializer;
	MQTTProperties props = MQTTProperties_initializer;
	MQTTAsync_connectOptions *conn = o->v311 ? &cn : &cn5;
	MQTTAsync client = NULL;
	struct call c = {0};
	pthread_condattr_t ca;
	struct timespec deadline;
	char uri[300], client_id[24], tx[64], corr[32], reply[256], topic[256];
	cJSON *req = NULL, *resp = NULL;
	char *payload = NULL, *text = NULL;
	bool tls = o->tls_ca || o->tls_cert;
	int rc, r;

	*ret_response = NULL;
	if (!topic_level_ok(serial)) {
		fprintf(stderr, "needlelinkctl: bad pen serial \"%s\"\n", serial ? serial : "");
		return -EINVAL;
	}
	if (!topic_level_ok(op) || !cJSON_IsObject(params))
		return -EINVAL;

	snprintf(client_id, sizeof(client_id), "nlctl-%u-%08" PRIx32, (unsigned)getpid() % 100000u,
		 random_u32());
	snprintf(tx, sizeof(tx), "ctl-%s-%s-%08" PRIx32, op, serial, random_u32());
	if (strlen(tx) > 64 - 1)
		snprintf(tx, sizeof(tx), "ctl-%08" PRIx32 "%08" PRIx32, random_u32(), random_u32());
	snprintf(corr, sizeof(corr), "%08" PRIx32 "%08" PRIx32, random_u32(), random_u32() ^ 1u);
	snprintf(topic, sizeof(topic), "%s/pens/%s/request/%s", o->base_topic, serial, op);
	if (o->v311)
		snprintf(reply, sizeof(reply), "%s/pens/%s/response/%s", o->base_topic, serial, op);
	else
		snprintf(reply, sizeof(reply), "%s/ctl/%s/response/%s", o->base_topic, client_id, op);
	snprintf(uri, sizeof(uri), "%s://%s%s%s:%d", tls ? "ssl" : "tcp",
		 strchr(o->host, ':') ? "[" : "", o->host, strchr(o->host, ':') ? "]" : "",
		 o->port);

	req = cJSON_CreateObject();
	if (!req || !cJSON_AddStringToObject(req, "schema", "needlelink/request/1") ||
	    !cJSON_AddStringToObject(req, "transaction", tx) ||
	    !cJSON_AddItemReferenceToObject(req, "params", params)) {
		cJSON_Delete(req);
		return -ENOMEM;
	}
	payload = cJSON_PrintUnformatted(req);
	cJSON_Delete(req); /* a reference: params stays the caller's */
	if (!payload)
		return -ENOMEM;

	c.v311 = o->v311;
	c.reply_topic = reply;
	c.correlation = corr;
	c.transaction = tx;
	pthread_mutex_init(&c.lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&c.cond, &ca);
	pthread_condattr_destroy(&ca);

	co.MQTTVersion = o->v311 ? MQTTVERSION_3_1_1 : MQTTVERSION_5;
	co.sendWhileDisconnected = 0;
	rc = MQTTAsync_createWithOptions(&client, uri, client_id, MQTTCLIENT_PERSISTENCE_NONE, NULL,
					 &co);
	if (rc != MQTTASYNC_SUCCESS) {
		fprintf(stderr, "needlelinkctl: MQTT client for %s: %s\n", uri,
			MQTTAsync_strerror(rc));
		r = -EINVAL;
		goto out;
	}
	MQTTAsync_setCallbacks(client, &c, on_conn_lost, on_message, NULL);

	conn->keepAliveInterval = 30;
	conn->connectTimeout = o->connect_timeout_s > 0 ? o->connect_timeout_s : 10;
	conn->automaticReconnect = 0;
	conn->context = &c;
	if (o->v311) {
		conn->cleansession = 1;
		conn->MQTTVersion = MQTTVERSION_3_1_1;
		conn->onSuccess = on_connect_ok;
		conn->onFailure = on_connect_fail;
	} else {
		conn->cleanstart = 1;
		conn->MQTTVersion = MQTTVERSION_5;
		conn->onSuccess5 = on_connect_ok5;
		conn->onFailure5 = on_connect_fail5;
	}
	conn->username = o->username;
	conn->password = o->password;
	if (tls) {
		ssl.trustStore = o->tls_ca;
		if (o->tls_cert) {
			ssl.keyStore = o->tls_cert;
			ssl.privateKey = o->tls_key;
		}
		ssl.enableServerCertAuth = 1;
		ssl.verify = 1;
		conn->ssl = &ssl;
	}
	if (o->verbose)
		fprintf(stderr, "needlelinkctl: connecting to %s as %s\n", uri, client_id);
	rc = MQTTAsync_connect(client, conn);
	deadline_in(&deadline, conn->connectTimeout + 2);
	if (rc != MQTTASYNC_SUCCESS || call_wait(&c, &c.connected, &deadline) != 1) {
		fprintf(stderr, "needlelinkctl: cannot connect to the broker at %s: %s\n", uri,
			rc != MQTTASYNC_SUCCESS ? MQTTAsync_strerror(rc)
			: c.fail[0]		? c.fail
						: "timed out");
		r = -ECONNREFUSED;
		goto out;
	}

	ro.context = &c;
	if (o->v311) {
		ro.onSuccess = on_sub_ok;
		ro.onFailure = on_sub_fail;
	} else {
		ro.onSuccess5 = on_sub_ok5;
		ro.onFailure5 = on_sub_fail5;
	}
	rc = MQTTAsync_subscribe(client, reply, 1, &ro);
	deadline_in(&deadline, conn->connectTimeout);
	if (rc != MQTTASYNC_SUCCESS || call_wait(&c, &c.subscribed, &deadline) != 1) {
		fprintf(stderr, "needlelinkctl: cannot subscribe to %s: %s\n", reply,
			rc != MQTTASYNC_SUCCESS ? MQTTAsync_strerror(rc)
			: c.fail[0]		? c.fail
						: "timed out");
		r = -ECONNREFUSED;
		goto disconnect;
	}

	if (!o->v311) {
		MQTTProperty p = {0};

		p.identifier = MQTTPROPERTY_CODE_RESPONSE_TOPIC;
		p.value.data.data = reply;
		p.value.data.len = (int)strlen(reply);
		if (MQTTProperties_add(&props, &p) != 0) {
			r = -ENOMEM;
			goto disconnect;
		}
		p.identifier = MQTTPROPERTY_CODE_CORRELATION_DATA;
		p.value.data.data = corr;
		p.value.data.len = (int)strlen(corr);
		if (MQTTProperties_add(&props, &p) != 0) {
			r = -ENOMEM;
			goto disconnect;
		}
		msg.properties = props;
	}
	msg.payload = payload;
	msg.payloadlen = (int)strlen(payload);
	msg.qos = 1;
	msg.retained = 0;
	ro = (MQTTAsync_responseOptions)MQTTAsync_responseOptions_initializer;
	ro.context = &c;
	if (o->v311) {
		ro.onSuccess = on_pub_ok;
		ro.onFailure = on_pub_fail;
	} else {
		ro.onSuccess5 = on_pub_ok5;
		ro.onFailure5 = on_pub_fail5;
	}
	if (o->verbose)
		fprintf(stderr, "needlelinkctl: %s %s (reply on %s)\n", topic, payload, reply);
	rc = MQTTAsync_sendMessage(client, topic, &msg, &ro);
	deadline_in(&deadline, conn->connectTimeout);
	if (rc != MQTTASYNC_SUCCESS || call_wait(&c, &c.published, &deadline) != 1) {
		fprintf(stderr, "needlelinkctl: cannot publish to %s: %s\n", topic,
			rc != MQTTASYNC_SUCCESS ? MQTTAsync_strerror(rc)
			: c.fail[0]		? c.fail
						: "timed out");
		r = -ECONNREFUSED;
		goto disconnect;
	}

	deadline_in(&deadline, o->timeout_s > 0 ? o->timeout_s : 30);
	r = call_wait_response(&c, &deadline, &text);
	if (r < 0) {
		fprintf(stderr,
			"needlelinkctl: no response to %s from the gateway within %d s "
			"(is needlelinkd running and connected to this broker?)\n",
			op, o->timeout_s > 0 ? o->timeout_s : 30);
		goto disconnect;
	}
	resp = cJSON_Parse(text);
	if (!resp) {
		fprintf(stderr, "needlelinkctl: the response is not JSON: %.200s\n", text);
		r = -EPROTO;
		goto disconnect;
	}
	*ret_response = resp;
	r = 0;

disconnect:
	dopts.timeout = 1000;
	dopts.context = &c;
	if (o->v311)
		dopts.onSuccess = on_disc;
	else
		dopts.onSuccess5 = on_disc5;
	if (MQTTAsync_disconnect(client, &dopts) == MQTTASYNC_SUCCESS) {
		deadline_in(&deadline, 2);
		(void)call_wait(&c, &c.disconnected, &deadline);
	}
out:
	MQTTProperties_free(&props);
	if (client)
		MQTTAsync_destroy(&client);
	free(text);
	free(c.response);
	free(payload);
	pthread_cond_destroy(&c.cond);
	pthread_mutex_destroy(&c.lock);
	return r;
}

/* ---- output --------------------------------------------------------------- */

static const char *str_of(const cJSON *o, const char *name)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);

	return cJSON_IsString(v) ? v->valuestring : NULL;
}

int ctl_mqtt_exit_code(const cJSON *response)
{
	const char *s = str_of(response, "status");

	if (!s)
		return 3;
	if (strcmp(s, "ok") == 0 || strcmp(s, "applied") == 0)
		return 0;
	if (strcmp(s, "blocked") == 0)
		return 2;
	return 3;
}

static void print_scalar(FILE *f, const cJSON *v)
{
	if (cJSON_IsString(v))
		fputs(v->valuestring, f);
	else if (cJSON_IsBool(v))
		fputs(cJSON_IsTrue(v) ? "true" : "false", f);
	else if (cJSON_IsNull(v))
		fputs("null", f);
	else if (cJSON_IsNumber(v))
		fprintf(f, "%g", v->valuedouble);
	else {
		char *t = cJSON_PrintUnformatted(v);

		fputs(t ? t : "?", f);
		free(t);
	}
}

/* "value_mm"-style members: the number after the unit suffix. */
static const cJSON *unit_member(const cJSON *o, const char *prefix)
{
	const cJSON *v;

	cJSON_ArrayForEach(v, o)
	{
		if (v->string && strncmp(v->string, prefix, strlen(prefix)) == 0)
			return v;
	}
	return NULL;
}

void ctl_mqtt_print_response(const cJSON *response, bool json, FILE *f)
{
	const cJSON *v, *result, *err, *blocked;
	const char *status = str_of(response, "status");

	if (json) {
		char *t = cJSON_Print(response);

		if (t)
			fprintf(f, "%s\n", t);
		free(t);
		return;
	}
	fprintf(f, "%s %s: %s", str_of(response, "op") ? str_of(response, "op") : "?",
		str_of(response, "serial") ? str_of(response, "serial") : "?",
		status ? status : "(no status)");
	if (str_of(response, "transaction"))
		fprintf(f, " (transaction %s)", str_of(response, "transaction"));
	fputc('\n', f);
	result = cJSON_GetObjectItemCaseSensitive(response, "result");
	cJSON_ArrayForEach(v, result)
	{
		const cJSON *z;

		if (strcmp(v->string, "limits") == 0 && cJSON_IsObject(v)) {
			fputs("  limits:", f);
			cJSON_ArrayForEach(z, v)
			{
				if (strcmp(z->string, "zones") == 0)
					continue;
				fprintf(f, " %s=", z->string);
				print_scalar(f, z);
			}
			fputc('\n', f);
			cJSON_ArrayForEach(z, cJSON_GetObjectItemCaseSensitive(v, "zones"))
			{
				const cJSON *m;

				fputs("    zone", f);
				cJSON_ArrayForEach(m, z)
				{
					fprintf(f, " %s=", m->string);
					print_scalar(f, m);
				}
				fputc('\n', f);
			}
			continue;
		}
		fprintf(f, "  %s: ", v->string);
		print_scalar(f, v);
		fputc('\n', f);
	}
	blocked = cJSON_GetObjectItemCaseSensitive(response, "blocked_by");
	cJSON_ArrayForEach(v, blocked)
	{
		const cJSON *val = unit_member(v, "value_"), *thr = unit_member(v, "threshold_");

		fprintf(f, "  blocked by %s", str_of(v, "rule") ? str_of(v, "rule") : "?");
		if (str_of(v, "zone") && strcmp(str_of(v, "zone"), "none") != 0)
			fprintf(f, " (zone %s)", str_of(v, "zone"));
		if (val && thr) {
			fputs(": value ", f);
			print_scalar(f, val);
			fputs(", threshold ", f);
			print_scalar(f, thr);
			if (str_of(v, "unit"))
				fprintf(f, " %s", str_of(v, "unit"));
		}
		if (str_of(v, "message"))
			fprintf(f, " - %s", str_of(v, "message"));
		fputc('\n', f);
	}
	err = cJSON_GetObjectItemCaseSensitive(response, "error");
	if (cJSON_IsObject(err)) {
		fprintf(f, "  error: %s", str_of(err, "code") ? str_of(err, "code") : "?");
		if (str_of(err, "step"))
			fprintf(f, " at step %s", str_of(err, "step"));
		if (str_of(err, "field"))
			fprintf(f, " (field %s)", str_of(err, "field"));
		if (str_of(err, "message"))
			fprintf(f, ": %s", str_of(err, "message"));
		fputc('\n', f);
	}
}

/* ---- connection options --------------------------------------------------- */

static int args_bad(const char *who, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int args_bad(const char *who, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "needlelinkctl: %s%s", who ? who : "", who ? ": " : "");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return -EINVAL;
}

/* The configuration key an option overrides, NULL if none. */
static const char *override_key(int opt)
{
	switch (opt) {
	case CTL_MQTT_OPT_HOST:
		return "mqtt.host";
	case CTL_MQTT_OPT_PORT:
		return "mqtt.port";
	case CTL_MQTT_OPT_PROTOCOL:
		return "mqtt.protocol";
	case CTL_MQTT_OPT_USERNAME:
		return "mqtt.username";
	case CTL_MQTT_OPT_PASSWORD_FILE:
		return "mqtt.password_file";
	case CTL_MQTT_OPT_TLS_CA:
		return "mqtt.tls_ca";
	case CTL_MQTT_OPT_TLS_CERT:
		return "mqtt.tls_cert";
	case CTL_MQTT_OPT_TLS_KEY:
		return "mqtt.tls_key";
	case CTL_MQTT_OPT_BASE_TOPIC:
		return "gateway.base_topic";
	default:
		return NULL;
	}
}

int ctl_mqtt_args_parse(struct ctl_mqtt_args *m, int opt, const char *arg, const char *who)
{
	const char *key = override_key(opt);
	char *end;
	long v;

	if (key) {
		if (m->n_overrides >= sizeof(m->overrides) / sizeof(m->overrides[0]))
			return args_bad(who, "too many options");
		m->overrides[m->n_overrides][0] = key;
		m->overrides[m->n_overrides][1] = arg;
		m->n_overrides++;
		return 1;
	}
	switch (opt) {
	case CTL_MQTT_OPT_TIMEOUT:
		errno = 0;
		v = strtol(arg, &end, 10);
		if (errno || end == arg || *end || v < 1 || v > 3600)
			return args_bad(who, "--timeout: whole seconds 1..3600, not \"%s\"", arg);
		m->timeout_s = (int)v;
		return 1;
	case CTL_MQTT_OPT_JSON:
		m->json = true;
		return 1;
	default:
		return 0;
	}
}

int ctl_mqtt_config_load(const struct ctl_mqtt_args *m, const char *path, bool validate,
			 struct config **ret_config)
{
	struct config *cfg;
	int r;

	if (config_new(&cfg) < 0)
		return -ENOMEM;
	r = config_load(cfg, path ? path : CONFIG_DEFAULT_PATH, path != NULL);
	for (unsigned i = 0; r >= 0 && i < m->n_overrides; i++)
		r = config_set(cfg, m->overrides[i][0], m->overrides[i][1]);
	if (r >= 0 && validate)
		r = config_validate(cfg);
	if (r < 0 || config_n_errors(cfg)) {
		for (size_t i = 0; i < config_n_errors(cfg); i++)
			fprintf(stderr, "needlelinkctl: %s\n", config_error(cfg, i));
		config_free(cfg);
		return r < 0 ? r : -EINVAL;
	}
	*ret_config = cfg;
	return 0;
}

int ctl_mqtt_run(const struct ctl_mqtt_args *m, const struct config *c, bool verbose,
		 const char *serial, const char *op, cJSON *params)
{
	struct ctl_mqtt_opts o;
	cJSON *resp = NULL;
	int r, code;

	ctl_mqtt_opts_init(&o);
	ctl_mqtt_opts_from_config(&o, c);
	if (m->timeout_s)
		o.timeout_s = m->timeout_s;
	o.verbose = verbose;
	r = ctl_mqtt_request(&o, serial, op, params, &resp);
	if (r < 0) {
		/* No answer in time is a failure of the command, not of the call. */
		return r == -ETIMEDOUT ? 3 : 1;
	}
	ctl_mqtt_print_response(resp, m->json, stdout);
	code = ctl_mqtt_exit_code(resp);
	cJSON_Delete(resp);
	return code;
}

static const char *command_in(const char *word, const char *const *names)
{
	for (; *names; names++)
		if (strcmp(word, *names) == 0)
			return word;
	return NULL;
}

const char *ctl_find_command(int argc, char **argv, const struct option *long_opts,
			     const char *const *names)
{
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];

		if (strcmp(a, "--") == 0)
			return i + 1 < argc ? command_in(argv[i + 1], names) : NULL;
		if (strcmp(a, "-j") == 0 || strcmp(a, "-c") == 0) {
			i++;
			continue;
		}
		if (a[0] == '-' && a[1] == '-' && !strchr(a, '=')) {
			for (const struct option *o = long_opts; o->name; o++)
				if (strcmp(a + 2, o->name) == 0 && o->has_arg == required_argument)
					i++;
			continue;
		}
		if (a[0] == '-')
			continue;
		return command_in(a, names);
	}
	return NULL;
}
