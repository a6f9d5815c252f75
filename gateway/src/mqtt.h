/* SPDX-License-Identifier: MIT */
/*
 * MQTT side of needlelinkd: Paho MQTTAsync driven from the sd-event loop.
 *
 * Threads: every Paho call is made on the loop thread. Paho's callbacks run
 * on Paho's threads and only copy what they carry into a queue (queue.h),
 * which wakes the loop; all state lives on the loop thread. Nothing here
 * waits (no MQTTAsync_waitForCompletion): every Paho operation reports
 * through a callback, and Paho's own connect and disconnect timeouts bound
 * them.
 *
 * Reconnect: our own backoff timer on the loop (0.5 s doubling to 30 s,
 * +-25 % jitter), not Paho's automaticReconnect: the loop decides when to
 * connect, and every (re)connect goes through one path that republishes
 * retained state, resubscribes and restarts the outbox drain. Sessions are
 * clean and Paho keeps no persistence: the journal's outbox is the only
 * store of unsent messages.
 *
 * Outbox drain: once connected, committed unsent outbox rows are published
 * in id order, at most max_inflight QoS 1 messages awaiting PUBACK at once.
 * A QoS 1 row added while the drain has caught up (every lower id handed to
 * Paho, none awaiting a retry, room in the window) is published at once,
 * from the open batch, before its commit (journal add hook): the order is
 * still id order. A row is marked sent on its PUBACK (QoS 1; in whatever
 * batch is open, so a PUBACK before the commit marks it in the same
 * transaction) or when handed to Paho (QoS 0).
 *
 * Paho is loaded at run time: libpaho-mqtt3a without TLS, libpaho-mqtt3as
 * (and with it OpenSSL, about 3 MB of RSS) only when TLS is configured.
 * After a broker outage or a crash, unsent rows go out again with the same
 * id: with MQTT 5 the id travels in the user property "nl-msg-id" (producers
 * put it in the payload too: journal_outbox_next_id()), so consumers dedupe.
 *
 * Refusals: an outbox row the broker refuses while connected (MQTT 5 PUBACK
 * reason >= 0x80: ACL, quota...) or that Paho refuses to send stays unsent
 * and is retried on the same connection after a backoff (0.5 s doubling to
 * 30 s, reset once a refused row gets through); each row's refusal is logged
 * once. Rows after it are not held back meanwhile.
 *
 * Stop: mqtt_stop() waits at most 2 s (or the configured timeout, if
 * shorter) for the offline state and the DISCONNECT; an unreachable broker
 * must not hold up a service stop, and the will covers it.
 *
 * State: BASE/gateways/ID/state carries docs/schemas/gateway-state.json
 * (nl_payload_gateway_state()). The will says offline with "will": true and
 * "since" the time of the connect attempt it was given with; the same time is
 * the "since" of the "online" published (retained, QoS 1) on every connect,
 * after which the connected handler runs so the gateway can republish its
 * retained state. A clean stop publishes offline, "will": false, "since" now.
 *
 * Requests: BASE/pens/+/request/+ is subscribed (QoS 1); each message reaches
 * the request handler on the loop thread, with its MQTT 5 response topic and
 * correlation data copied out.
 */
#ifndef NLGW_MQTT_H
#define NLGW_MQTT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <systemd/sd-event.h>

struct config;
struct journal;
struct mqtt;

struct mqtt_request {
	const char *topic;
	const char *pen_serial; /* the level after BASE/pens/ */
	const char *name;       /* the level after request/ */
	const void *payload;
	size_t payload_len;
	const char *response_topic; /* MQTT 5 response topic, or NULL */
	const void *correlation;    /* MQTT 5 correlation data, or NULL */
	size_t correlation_len;
};

/* All pointers in req are valid during the call only. */
typedef void (*mqtt_request_fn)(struct mqtt *m, const struct mqtt_request *req, void *userdata);
/* Runs on every successful (re)connect, after "online" was published and
 * before the outbox drain starts: publish retained state from here. */
typedef void (*mqtt_connected_fn)(struct mqtt *m, void *userdata);
typedef void (*mqtt_stopped_fn)(struct mqtt *m, void *userdata);

/* A message published directly (not through the outbox): state, replies. */
struct mqtt_message {
	const char *topic;
	const void *payload;
	size_t payload_len;
	int qos; /* 0 or 1 */
	bool retain;
	const void *correlation; /* MQTT 5 correlation data, may be NULL */
	size_t correlation_len;
};

/* Reads host, port, protocol, client id, credentials, TLS, keepalive,
 * timeout, max_inflight, gateway id and base topic from c (which must stay
 * alive and validated). j may be NULL (no outbox); otherwise it must outlive
 * the mqtt object, whose journal outbox hook this installs. Does not
 * connect. -EINVAL if the gateway id cannot go into the state payload. */
int mqtt_new(sd_event *e, const struct config *c, struct journal *j, struct mqtt **ret);

/* Destroys the Paho client at once (the broker then publishes the will) and
 * frees everything. Accepts NULL. */
void mqtt_free(struct mqtt *m);

void mqtt_set_request_handler(struct mqtt *m, mqtt_request_fn fn, void *userdata);
void mqtt_set_connected_handler(struct mqtt *m, mqtt_connected_fn fn, void *userdata);

/* Starts connecting (and reconnecting until stopped). */
int mqtt_start(struct mqtt *m);

/* Graceful stop: publishes the offline state (retained), disconnects, then
 * calls cb from the loop. Bounded by 2 s or the configured timeout. */
int mqtt_stop(struct mqtt *m, mqtt_stopped_fn cb, void *userdata);

/* New outbox rows were committed: publish them soon. Cheap. mqtt_new()
 * installs a journal outbox hook that calls this after every commit that
 * added outbox rows, so callers need it only for rows from elsewhere. */
void mqtt_kick(struct mqtt *m);

/* Publishes now. Returns 0, -ENOTCONN when not connected, -EINVAL, or -EIO
 * if Paho refused. Delivery failures are only logged. */
int mqtt_publish(struct mqtt *m, const struct mqtt_message *msg);

/* Answers a request: to its response topic (or, without one, to
 * BASE/pens/SERIAL/response/NAME) with its correlation data. */
int mqtt_reply(struct mqtt *m, const struct mqtt_request *req, const void *payload, size_t len);

bool mqtt_is_connected(const struct mqtt *m);

/* BASE/gateways/ID/state */
const char *mqtt_state_topic(const struct mqtt *m);

struct mqtt_stats {
	uint64_t connects;   /* successful connects */
	uint64_t published;  /* outbox rows handed to Paho */
	uint64_t acked;      /* outbox rows marked sent */
	uint64_t failed;     /* outbox publishes that failed or were refused (retried) */
	uint64_t early;      /* of published, handed to Paho before their commit */
	uint64_t lazy;       /* times the outbox fell a window behind and pen input went first */
	unsigned inflight;   /* QoS 1 rows awaiting PUBACK */
};
void mqtt_get_stats(const struct mqtt *m, struct mqtt_stats *ret);

#endif
