/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <inttypes.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <systemd/sd-daemon.h>
#include <systemd/sd-event.h>

#include "config.h"
#include "daemon-internal.h"
#include "daemon.h"
#include "helper-sched.h"
#include "journal.h"
#include "log.h"
#include "mqtt.h"
#include "payload.h"
#include "penmgr.h"
#include "transport.h"

#include "needlelink/common.h"
#include "needlelink/cp.h"
#include "needlelink/record.h"

#define OUTBOX_KEEP_MS (3600LL * 1000) /* sent outbox rows kept one hour */
#define SYNC_WATCH_US 1000000ULL         /* the journal's sync checked each second */
#define SYNC_STALL_US (10ULL * 1000000)  /* a sync this long is journal_sync_stalled */



#define PROBE_SLOTS 8192u /* power of two; more unpublished records are not sampled */

struct pub_probe {
	int64_t id;
	uint64_t arrived_us;
};

/* A record handed to the journal, waiting for its commit. */
struct pending_commit {
	penmgr_commit_fn done;
	void *commit_data;
	struct daemon *d;
	uint64_t arrived_us; /* CLOCK_MONOTONIC, for --stats */
};

static uint64_t mono_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000ULL + (uint64_t)ts.tv_nsec / 1000;
}


/* ---- helpers ------------------------------------------------------------- */

struct dpen *dpen_get(struct daemon *d, const char *serial)
{
	struct dpen *p;

	for (p = d->pens; p; p = p->next)
		if (strcmp(p->serial, serial) == 0)
			return p;
	p = calloc(1, sizeof(*p));
	if (!p)
		return NULL;
	snprintf(p->serial, sizeof(p->serial), "%s", serial);
	p->since_ms = journal_now_ms();
	p->next = d->pens;
	d->pens = p;
	return p;
}

int pen_topic(const struct daemon *d, const char *serial, const char *leaf, char *buf,
		     size_t size)
{
	int n = snprintf(buf, size, "%s/pens/%s/%s", d->base, serial, leaf);

	return n < 0 || (size_t)n >= size ? -ENAMETOOLONG : 0;
}

static int gw_topic(const struct daemon *d, const char *leaf, char *buf, size_t size)
{
	int n = snprintf(buf, size, "%s/gateways/%s/%s", d->base, d->gw_id, leaf);

	return n < 0 || (size_t)n >= size ? -ENAMETOOLONG : 0;
}

/* Publishes a payload directly (retained state, live): dropped when the
 * broker is away, since every connect republishes the retained state. */
void publish_json(struct daemon *d, const char *topic, cJSON *json, int qos, bool retain)
{
	char *text;
	int r;

	if (!json)
		return;
	text = nl_payload_print(json);
	cJSON_Delete(json);
	if (!text) {
		log_err("out of memory printing %s", topic);
		return;
	}
	if (mqtt_is_connected(d->m)) {
		r = mqtt_publish(d->m, &(struct mqtt_message){ .topic = topic,
							       .payload = text,
							       .payload_len = strlen(text),
							       .qos = qos,
							       .retain = retain });
		if (r < 0 && r != -ENOTCONN)
			log_warning("publish to %s failed: %s", topic, strerror(-r));
	}
	free(text);
}

void kick_cb(int result, void *userdata)
{
	struct daemon *d = userdata;

	if (result < 0)
		log_err("journal: commit failed: %s", strerror(-result));
	else
		mqtt_kick(d->m);
}

/* Adds a JSON payload to the outbox (in the open batch). */
int outbox_json(struct daemon *d, const char *topic, cJSON *json, int64_t *ret_id)
{
	char *text = nl_payload_print(json);
	int r;

	cJSON_Delete(json);
	if (!text)
		return -ENOMEM;
	r = journal_add_outbox(d->j, topic, text, strlen(text), 1, false, ret_id);
	free(text);
	return r;
}

/* ---- alerts -------------------------------------------------------------- */


void raise_gw_alert(struct daemon *d, const char *rule, enum nl_payload_severity sev,
		    const char *msg)
{
	char topic[TOPIC_MAX], id[128];
	cJSON *json;

	if (gw_topic(d, "alerts", topic, sizeof(topic)) < 0)
		return;
	snprintf(id, sizeof(id), "%s:gw:%" PRId64 ":%" PRIu32, d->gw_id, d->started_ms,
		 ++d->gw_alerts);
	if (nl_payload_alert(&(struct nl_payload_alert){ .serial = d->gw_id,
							 .at_ms = journal_now_ms(),
							 .alert_id = id,
							 .rule = rule,
							 .severity = sev,
							 .action = NL_PAYLOAD_ACTION_WARN,
							 .result = NL_PAYLOAD_RESULT_APPLIED,
							 .unit = NL_PAYLOAD_UNIT_NONE,
							 .message = msg },
			     &json) < 0)
		return;
	if (outbox_json(d, topic, json, NULL) < 0) {
		log_err("alert %s: journal failed", rule);
		return;
	}
	if (journal_commit(d->j, kick_cb, d) < 0)
		log_err("journal: commit request failed");
}

/* Journals an alert for the outbox and asks for a commit (then a kick). */
void raise_alert(struct daemon *d, const char *serial, const struct alert_in *in)
{
	char topic[TOPIC_MAX], idbuf[128];
	cJSON *json;
	int r;

	if (!in->alert_id) {
		snprintf(idbuf, sizeof(idbuf), "%s:gw:%" PRId64 ":%" PRIu32, serial, d->started_ms,
			 ++d->gw_alerts);
	}
	r = nl_payload_alert(&(struct nl_payload_alert){
				     .serial = serial,
				     .at_ms = journal_now_ms(),
				     .alert_id = in->alert_id ? in->alert_id : idbuf,
				     .rule = in->rule,
				     .severity = in->severity,
				     .action = in->action,
				     .result = in->result,
				     .unit = in->unit,
				     .measured = in->measured,
				     .threshold = in->threshold,
				     .zone = in->zone,
				     .session_id = in->session_id,
				     .record_id = in->record_id,
				     .message = in->message,
			     },
			     &json);
	if (r < 0) {
		log_pen_err(serial, "alert %s: payload failed: %s", in->rule, strerror(-r));
		return;
	}
	if (pen_topic(d, serial, "alerts", topic, sizeof(topic)) < 0) {
		cJSON_Delete(json);
		return;
	}
	r = outbox_json(d, topic, json, NULL);
	if (r < 0) {
		log_pen_err(serial, "alert %s: journal failed: %s", in->rule, strerror(-r));
		return;
	}
	if (journal_commit(d->j, kick_cb, d) < 0)
		log_err("journal: commit request failed");
}

/* Alerts from the pen's own limit records, for sessions the limits engine
 * does not supervise (docs/limits.md 10): the record does not say which
 * rule bound a cap, so a CLAMP is reported as zone_depth_cap. */
static void limit_record_alert(struct daemon *d, const char *serial, const struct nl_record *rec,
			       const char *record_id)
{
	const struct nl_rec_limit *l = &rec->u.limit;
	struct alert_in a = { .zone = l->zone, .session_id = rec->hdr.session_id,
			      .record_id = record_id };
	char id[128], msg[160];

	switch ((enum nl_limit_event)l->event) {
	case NL_LIMIT_EVENT_CLAMP:
		a.rule = "zone_depth_cap";
		a.severity = NL_PAYLOAD_SEVERITY_WARNING;
		a.action = NL_PAYLOAD_ACTION_CLAMP;
		a.unit = NL_PAYLOAD_UNIT_UM;
		a.measured = l->value;
		a.threshold = l->threshold;
		snprintf(msg, sizeof(msg), "depth %u um clamped to %u um", l->value, l->threshold);
		break;
	case NL_LIMIT_EVENT_LOCK:
		a.severity = NL_PAYLOAD_SEVERITY_CRITICAL;
		a.action = NL_PAYLOAD_ACTION_LOCK;
		switch (l->reason) {
		case NL_LOCK_REASON_PASSES:
			a.rule = "passes_per_zone";
			break;
		case NL_LOCK_REASON_NEEDLE_ON:
			a.rule = "needle_on_time";
			break;
		case NL_LOCK_REASON_CARTRIDGE:
			a.rule = "cartridge_reused";
			break;
		default:
			a.rule = "pen_lock";
			break;
		}
		snprintf(msg, sizeof(msg), "pen locked (%s)", nl_lock_reason_name(l->reason));
		break;
	case NL_LIMIT_EVENT_PASS_WARN:
		a.rule = "passes_per_zone";
		a.severity = NL_PAYLOAD_SEVERITY_WARNING;
		a.action = NL_PAYLOAD_ACTION_WARN;
		a.unit = NL_PAYLOAD_UNIT_PASSES;
		a.measured = l->value;
		a.threshold = l->threshold;
		snprintf(msg, sizeof(msg), "pass %u in zone, warning at %u", l->value, l->threshold);
		break;
	case NL_LIMIT_EVENT_TIME_WARN:
		a.rule = "needle_on_time";
		a.severity = NL_PAYLOAD_SEVERITY_WARNING;
		a.action = NL_PAYLOAD_ACTION_WARN;
		a.unit = NL_PAYLOAD_UNIT_S;
		a.measured = l->value;
		a.threshold = l->threshold;
		snprintf(msg, sizeof(msg), "needle-on %u s, warning at %u s", l->value, l->threshold);
		break;
	case NL_LIMIT_EVENT_FALLBACK:
		a.rule = "authorisation_expired";
		a.severity = NL_PAYLOAD_SEVERITY_WARNING;
		a.action = NL_PAYLOAD_ACTION_CLAMP;
		snprintf(msg, sizeof(msg), "authorisation expired: factory limits capped at 1.0 mm");
		break;
	case NL_LIMIT_EVENT_APPLIED:
	case NL_LIMIT_EVENT_UNLOCK:
	case NL_LIMIT_EVENT_OVERRIDE:
	case NL_LIMIT_EVENT_END:
	default:
		return;
	}
	/* Stable across replays of the same record. */
	snprintf(id, sizeof(id), "%s:0", record_id);
	a.alert_id = id;
	a.message = msg;
	raise_alert(d, serial, &a);
}

/* ---- pen state publication ----------------------------------------------- */

static void publish_availability(struct daemon *d, struct dpen *p, const char *reason)
{
	char topic[TOPIC_MAX];
	cJSON *json;

	if (pen_topic(d, p->serial, "availability", topic, sizeof(topic)) < 0)
		return;
	if (nl_payload_availability(&(struct nl_payload_availability){
					    .serial = p->serial,
					    .online = p->online,
					    .gateway_id = d->gw_id,
					    .since_ms = p->since_ms,
					    .reason = p->online ? NULL : reason,
				    },
				    &json) < 0)
		return;
	publish_json(d, topic, json, 1, true);
}

cJSON *pen_state_json(const struct penmgr_snapshot *s)
{
	cJSON *json;

	if (nl_payload_pen_state(&(struct nl_payload_pen_state_in){
					 .serial = s->serial,
					 .updated_ms = journal_now_ms(),
					 .model = s->model[0] ? s->model : NULL,
					 .manufacturer = s->manufacturer[0] ? s->manufacturer : NULL,
					 .firmware = s->firmware[0] ? s->firmware : NULL,
					 .battery_pct = s->battery_pct,
					 .feature = s->has_feature ? &s->feature : NULL,
					 .status = s->has_status ? &s->status : NULL,
					 .cartridge = s->has_cartridge ? &s->cartridge : NULL,
					 .limits = s->has_limits ? &s->limits : NULL,
					 .catchup_received = s->catchup_received,
					 .catchup_expected = s->catchup_expected,
				 },
				 &json) < 0)
		return NULL;
	return json;
}

/* force: on (re)connect, every retained topic again. */
void publish_pen_state(struct daemon *d, const char *serial, bool force)
{
	struct penmgr_snapshot s;
	struct dpen *p = dpen_get(d, serial);
	char topic[TOPIC_MAX];
	cJSON *json;

	if (!p || penmgr_get_snapshot(d->pm, serial, &s) < 0)
		return;
	p->state_dirty = false;
	p->state_pub_us = mono_us();
	if (pen_topic(d, serial, "state", topic, sizeof(topic)) == 0)
		publish_json(d, topic, pen_state_json(&s), 1, true);
	/* Limits only when the pen's Active Limits changed. */
	if (!s.has_limits ||
	    (!force && p->limits_published &&
	     memcmp(&p->last_limits, &s.limits, sizeof(s.limits)) == 0))
		return;
	if (pen_topic(d, serial, "limits", topic, sizeof(topic)) == 0 &&
	    nl_payload_limits(serial, journal_now_ms(), &s.limits, &json) == 0) {
		publish_json(d, topic, json, 1, true);
		p->last_limits = s.limits;
		p->limits_published = mqtt_is_connected(d->m);
	}
}

static void publish_gateway_state(struct daemon *d, bool online)
{
	char topic[TOPIC_MAX];
	cJSON *json;

	if (gw_topic(d, "state", topic, sizeof(topic)) < 0)
		return;
	if (nl_payload_gateway_state(&(struct nl_payload_gateway_state){
					     .gateway_id = d->gw_id,
					     .online = online,
					     .since_ms = journal_now_ms(), /* connect or stop time */
				     },
				     &json) == 0)
		publish_json(d, topic, json, 1, true);
}

static void publish_gateway_info(struct daemon *d)
{
	char topic[TOPIC_MAX], hash[17];
	cJSON *json;
	bool sim = config_transport_kind(d->cfg) == CONFIG_TRANSPORT_SIM;

	if (gw_topic(d, "info", topic, sizeof(topic)) < 0)
		return;
	config_hash(d->cfg, hash);
	if (nl_payload_gateway_info(&(struct nl_payload_gateway_info){
					    .gateway_id = d->gw_id,
					    .version = d->opts->version,
					    .adapter = sim ? NULL : config_str(d->cfg,
									      CONFIG_TRANSPORT_ADAPTER),
					    .transport = sim ? NL_PAYLOAD_TRANSPORT_SIM
							     : NL_PAYLOAD_TRANSPORT_BLUEZ,
					    .config_hash = (uint32_t)strtoull(hash + 8, NULL, 16),
					    .base_topic = d->base,
					    .started_ms = d->started_ms,
				    },
				    &json) == 0)
		publish_json(d, topic, json, 1, true);
}

#define STATE_COALESCE_US 1000000ULL

static int on_state_timer(sd_event_source *s, uint64_t usec, void *userdata)
{
	struct daemon *d = userdata;

	for (struct dpen *p = d->pens; p; p = p->next)
		if (p->state_dirty) {
			p->state_dirty = false;
			publish_pen_state(d, p->serial, false);
		}
	return 0;
}

/* Fires delay_us from now, unless already armed (it then fires within
 * STATE_COALESCE_US anyway). */
static void arm_state_timer(struct daemon *d, uint64_t delay_us)
{
	uint64_t now = 0;
	int enabled = SD_EVENT_OFF;

	if (d->state_timer && sd_event_source_get_enabled(d->state_timer, &enabled) >= 0 &&
	    enabled != SD_EVENT_OFF)
		return;
	(void)sd_event_now(d->e, CLOCK_MONOTONIC, &now);
	if (!d->state_timer) {
		if (sd_event_add_time(d->e, &d->state_timer, CLOCK_MONOTONIC, now + delay_us, 0,
				      on_state_timer, d) < 0)
			return;
	} else {
		(void)sd_event_source_set_time(d->state_timer, now + delay_us);
	}
	(void)sd_event_source_set_enabled(d->state_timer, SD_EVENT_ONESHOT);
}

static int oldest_fn(const struct journal_outbox_row *row, void *userdata)
{
	*(int64_t *)userdata = row->created_ms;
	return 1;
}

static uint64_t rss_bytes(void)
{
	unsigned long size = 0, resident = 0;
	FILE *f = fopen("/proc/self/statm", "re");

	if (!f)
		return 0;
	if (fscanf(f, "%lu %lu", &size, &resident) != 2)
		resident = 0;
	fclose(f);
	return (uint64_t)resident * (uint64_t)sysconf(_SC_PAGESIZE);
}

static void publish_health(struct daemon *d)
{
	const char *serials[128];
	struct nl_payload_pen_health ph[128];
	size_t n = penmgr_list(d->pm, serials, 128), k = 0;
	uint64_t unsent = 0, total = 0;
	int64_t oldest = 0, now = journal_now_ms();
	char topic[TOPIC_MAX];
	cJSON *json;

	if (n > 128)
		n = 128;
	for (size_t i = 0; i < n; i++) {
		struct penmgr_counters c;
		struct penmgr_snapshot s;
		struct dpen *p = dpen_get(d, serials[i]);

		if (penmgr_get_counters(d->pm, serials[i], &c) < 0 ||
		    penmgr_get_snapshot(d->pm, serials[i], &s) < 0)
			continue;
		ph[k] = (struct nl_payload_pen_health){
			.serial = serials[i],
			.connected = s.connected,
			.connects = c.connects,
			.records = c.records,
			.rssi_known = c.rssi != TRANSPORT_RSSI_UNKNOWN && c.rssi >= -127 && c.rssi <= 20,
			.rssi_dbm = c.rssi,
			.last_seen_ms = p ? p->last_seen_ms : 0,
		};
		for (int e = 0; e < PENMGR_ERR_COUNT && e < NL_PAYLOAD_ERR_CLASS_COUNT; e++)
			ph[k].errors[e] = c.errors[e];
		k++;
	}
	(void)journal_outbox_count(d->j, &unsent, &total);
	if (unsent)
		(void)journal_outbox_unsent(d->j, 0, 1, oldest_fn, &oldest);
	if (gw_topic(d, "health", topic, sizeof(topic)) < 0)
		return;
	if (nl_payload_gateway_health(&(struct nl_payload_gateway_health){
					      .gateway_id = d->gw_id,
					      .now_ms = now,
					      .uptime_s = (uint64_t)(now - d->started_ms) / 1000,
					      .rss_bytes = rss_bytes(),
					      .outbox_depth = unsent,
					      .outbox_oldest_ms = oldest,
					      .pen_count = k,
					      .pens = ph,
				      },
				      &json) == 0)
		publish_json(d, topic, json, 0, true);
}

static int on_health_timer(sd_event_source *s, uint64_t usec, void *userdata)
{
	struct daemon *d = userdata;
	uint64_t iv = d->opts->health_interval_us ? d->opts->health_interval_us : 30000000ULL;
	int r;

	publish_health(d);
	/* Sent outbox rows are kept a while for inspection, then dropped. */
	r = journal_outbox_prune(d->j, journal_now_ms() - OUTBOX_KEEP_MS);
	if (r > 0) {
		log_debug("journal: pruned %d sent outbox rows", r);
		(void)journal_commit(d->j, kick_cb, d);
	}
	(void)sd_event_source_set_time(s, usec + iv);
	(void)sd_event_source_set_enabled(s, SD_EVENT_ON);
	return 0;
}

/* A disk that stops completing syncs (a failing SD card) stops every pen's
 * acknowledgement while records still flow to MQTT: the loop and the
 * systemd watchdog are fine, so nothing else would tell. Checked each
 * second; raised once, and once more when syncs complete again. */
static int on_sync_watch(sd_event_source *s, uint64_t usec, void *userdata)
{
	struct daemon *d = userdata;
	uint64_t w = journal_sync_wait_us(d->j);
	char msg[200];

	if (!d->sync_stalled && w >= SYNC_STALL_US) {
		d->sync_stalled = true;
		snprintf(msg, sizeof(msg),
			 "the journal's disk has not finished a sync for %" PRIu64
			 " s: records are not acknowledged to pens, whose stores fill up",
			 w / 1000000);
		log_crit("journal: %s", msg);
		raise_gw_alert(d, "journal_sync_stalled", NL_PAYLOAD_SEVERITY_CRITICAL, msg);
	} else if (d->sync_stalled && w < SYNC_STALL_US) {
		d->sync_stalled = false;
		snprintf(msg, sizeof(msg), "the journal's disk completes syncs again");
		log_notice("journal: %s", msg);
		raise_gw_alert(d, "journal_sync_back", NL_PAYLOAD_SEVERITY_INFO, msg);
	}
	(void)sd_event_source_set_time(s, usec + SYNC_WATCH_US);
	(void)sd_event_source_set_enabled(s, SD_EVENT_ON);
	return 0;
}

/* MQTT (re)connected: the retained picture, complete. */
static void on_mqtt_connected(struct mqtt *m, void *userdata)
{
	struct daemon *d = userdata;
	const char *serials[256];
	size_t n = penmgr_list(d->pm, serials, 256);
	const char *const *allow;
	size_t n_allow = 0;
	bool any = false;

	publish_gateway_state(d, true);
	publish_gateway_info(d);
	if (n > 256)
		n = 256;
	for (size_t i = 0; i < n; i++) {
		struct dpen *p = dpen_get(d, serials[i]);

		if (p)
			publish_availability(d, p, "disconnected");
		publish_pen_state(d, serials[i], true);
	}
	/* Configured pens never seen since start. */
	allow = config_pens_allow(d->cfg, &n_allow, &any);
	for (size_t i = 0; i < n_allow; i++) {
		struct penmgr_snapshot s;

		if (strcmp(allow[i], "*") == 0 || penmgr_get_snapshot(d->pm, allow[i], &s) == 0)
			continue;
		struct dpen *p = dpen_get(d, allow[i]);
		if (p && !p->online)
			publish_availability(d, p, "not_found");
	}
	publish_health(d);
}

/* ---- pen manager callbacks ---------------------------------------------- */

static void lat_push(uint32_t **v, size_t *n, size_t *cap, uint64_t dt)
{
	if (*n == *cap) {
		size_t c = *cap ? *cap * 2 : 4096;
		uint32_t *nv = realloc(*v, c * sizeof(*nv));

		if (!nv)
			return;
		*v = nv;
		*cap = c;
	}
	(*v)[(*n)++] = dt > UINT32_MAX ? UINT32_MAX : (uint32_t)dt;
}

static void pub_visit(int64_t id, void *userdata)
{
	struct daemon *d = userdata;
	struct pub_probe *pp = &d->probe[(uint64_t)id & (PROBE_SLOTS - 1)];

	if (pp->id != id)
		return;
	pp->id = 0; /* the first PUBLISH only */
	lat_push(&d->lat_pub, &d->n_lat_pub, &d->cap_lat_pub, mono_us() - pp->arrived_us);
}

static void commit_cb(int result, void *userdata)
{
	struct pending_commit *pc = userdata;

	struct daemon *d = pc->d;

	pc->done(result, pc->commit_data);
	if (result == 0)
		mqtt_kick(d->m);
	if (d->opts->stats && pc->arrived_us) {
		uint64_t now = mono_us();

		lat_push(&d->lat, &d->n_lat, &d->cap_lat, now - pc->arrived_us);
		if (result == 0)
			lat_push(&d->durable, &d->n_durable, &d->cap_durable, now - d->stats_t0_us);
	}
	free(pc);
}

/* ---- session summaries ----------------------------------------------------
 *
 * Built from the journal when the session's records are all there, whatever
 * order they came in (a gap asked for again comes late; the gateway may have
 * restarted meanwhile): see docs/mqtt-api.md "Session summaries". */

struct summary_ctx {
	const char *serial;
	bool has_end, has_start, has_cartridge;
	struct nl_record end, start;
	struct nl_rec_cartridge cartridge;
	int64_t end_gw_time_ms;
	struct nl_record *limits; /* newest first, as the journal visits them */
	size_t n_limits, cap_limits;
};

static int summary_visit(const struct journal_record *r, void *userdata)
{
	struct summary_ctx *c = userdata;
	struct nl_record rec;
	int err;

	err = nl_record_decode(r->raw, r->raw_len, &rec);
	if (err < 0) {
		log_pen_warning(c->serial, "record %" PRIu32 ": journaled copy does not decode: %s",
				r->seq, strerror(-err));
		return 0;
	}
	switch ((enum nl_record_type)rec.hdr.type) {
	case NL_RECORD_SESSION_END:
		c->end = rec;
		c->has_end = true;
		c->end_gw_time_ms = r->gw_time_ms;
		break;
	case NL_RECORD_SESSION_START:
		c->start = rec;
		c->has_start = true;
		break;
	case NL_RECORD_CARTRIDGE:
		c->cartridge = rec.u.cartridge;
		c->has_cartridge = true;
		break;
	case NL_RECORD_LIMIT:
		if (c->n_limits == c->cap_limits) {
			size_t cap = c->cap_limits ? 2 * c->cap_limits : 16;
			struct nl_record *v = reallocarray(c->limits, cap, sizeof(*v));

			if (!v)
				return -ENOMEM;
			c->limits = v;
			c->cap_limits = cap;
		}
		c->limits[c->n_limits++] = rec;
		break;
	case NL_RECORD_SEGMENT:
	case NL_RECORD_FAULT:
	case NL_RECORD_TIME_CHANGE:
	case NL_RECORD_TYPE_END:
	default:
		break;
	}
	return 0;
}

static bool seq_lost(const struct dpen *p, uint32_t store_epoch, uint32_t seq)
{
	size_t n = p->n_lost < LOST_RANGES_MAX ? p->n_lost : LOST_RANGES_MAX;

	for (size_t i = 0; i < n; i++)
		if (p->lost[i].store_epoch == store_epoch && seq >= p->lost[i].first &&
		    seq <= p->lost[i].last)
			return true;
	return false;
}

static bool session_partial(const struct dpen *p, uint32_t store_epoch, uint32_t session_id)
{
	size_t n = p->n_partial < LOST_RANGES_MAX ? p->n_partial : LOST_RANGES_MAX;

	for (size_t i = 0; i < n; i++)
		if (p->partial[i].store_epoch == store_epoch &&
		    p->partial[i].session_id == session_id)
			return true;
	return false;
}

/* Publishes the summary of the session that ended at end_seq when the
 * journal holds every record of its span, or when the highest one missing
 * was reported missing by the pen manager. With lost (a range just
 * reported), only when a record at or above its start holds the summary
 * back: otherwise it went out already. */
static void session_summary(struct daemon *d, struct dpen *p, const char *serial,
			    uint32_t store_epoch, uint32_t session_id, uint32_t end_seq,
			    const struct lost_range *lost)
{
	struct summary_ctx c = { .serial = serial };
	struct journal_session_info info;
	char topic[TOPIC_MAX];
	cJSON *json;
	int r;

	r = journal_session_context(d->j, serial, store_epoch, session_id, end_seq, summary_visit,
				    &c, &info);
	if (r < 0) {
		log_pen_err(serial, "session %" PRIu32 ": reading its records failed: %s",
			    session_id, strerror(-r));
		goto out;
	}
	if (lost) {
		if (info.missing_max < lost->first)
			goto out;
	} else if (info.missing_max && !seq_lost(p, store_epoch, info.missing_max)) {
		log_pen_info(serial, "session %" PRIu32 " ended; summary waits for record %" PRIu32,
			     session_id, info.missing_max);
		goto out;
	}
	if (!c.has_end) {
		log_pen_err(serial, "session %" PRIu32 ": its end record does not decode",
			    session_id);
		goto out;
	}
	/* The journal visits newest first: the summary lists them in order. */
	for (size_t i = 0; i < c.n_limits / 2; i++) {
		struct nl_record t = c.limits[i];

		c.limits[i] = c.limits[c.n_limits - 1 - i];
		c.limits[c.n_limits - 1 - i] = t;
	}
	r = nl_payload_session(
		&(struct nl_payload_session_ctx){
			.rec = { .serial = serial,
				 .msg_id = (uint64_t)journal_outbox_next_id(d->j),
				 .received_ms = c.end_gw_time_ms },
			.start = c.has_start ? &c.start : NULL,
			.cartridge = c.has_cartridge ? &c.cartridge : NULL,
			.limit_events = c.limits,
			.limit_event_count = c.n_limits,
		},
		&c.end, &json);
	if (r == 0 && pen_topic(d, serial, "sessions", topic, sizeof(topic)) == 0)
		r = outbox_json(d, topic, json, NULL);
	else if (r == 0)
		cJSON_Delete(json);
	if (r == 0 && (info.missing_max || !c.has_start))
		p->partial[p->n_partial++ % LOST_RANGES_MAX] = (struct lost_session){
			.store_epoch = store_epoch,
			.session_id = session_id,
		};
	if (r < 0)
		log_pen_err(serial, "session %" PRIu32 ": summary failed: %s", session_id,
			    strerror(-r));
	else
		log_pen_info(serial, "session %" PRIu32 " ended (%s)%s", session_id,
			     nl_session_end_reason_name(c.end.u.session_end.reason),
			     info.missing_max ? "; summary without the records lost" : "");
out:
	free(c.limits);
}

/* A record newly journaled: a SESSION_END, or a record of a gap asked for
 * again that may complete a session whose end came first. */
static void session_record(struct daemon *d, struct dpen *p, const char *serial,
			   const struct nl_record *rec)
{
	const struct nl_record_header *h = &rec->hdr;
	bool late = p->has_hi && p->hi_epoch == h->store_epoch && h->seq < p->hi_seq;
	uint32_t end_seq, session_id;

	if (!late) {
		p->has_hi = true;
		p->hi_epoch = h->store_epoch;
		p->hi_seq = h->seq;
	}
	if (!h->session_id)
		return;
	if (h->type == NL_RECORD_SESSION_END) {
		session_summary(d, p, serial, h->store_epoch, h->session_id, h->seq, NULL);
		return;
	}
	/* Once out without some records, a summary is not published again
	 * when they come: subscribers keep the first per record_id. */
	if (late && !session_partial(p, h->store_epoch, h->session_id) &&
	    journal_next_session_end(d->j, serial, h->store_epoch, h->seq, &end_seq,
				     &session_id) == 0 &&
	    session_id == h->session_id)
		session_summary(d, p, serial, h->store_epoch, session_id, end_seq, NULL);
}

/* The pen manager reported count records from first missing (not stored on
 * the pen, or not delivered after repeated requests): a summary held back
 * by a record at or above first goes out without them. */
static void session_lost(struct daemon *d, struct dpen *p, const char *serial, int64_t first,
			 uint32_t count)
{
	struct penmgr_snapshot s;
	struct lost_range l;
	uint32_t end_seq, session_id;

	if (first < 1 || first > UINT32_MAX || !count || count - 1 > UINT32_MAX - first ||
	    penmgr_get_snapshot(d->pm, serial, &s) < 0)
		return;
	l = (struct lost_range){ .store_epoch = s.store_epoch,
				 .first = (uint32_t)first,
				 .last = (uint32_t)first + count - 1 };
	p->lost[p->n_lost++ % LOST_RANGES_MAX] = l;
	if (journal_next_session_end(d->j, serial, l.store_epoch, l.first - 1, &end_seq,
				     &session_id) == 0 &&
	    session_id && !session_partial(p, l.store_epoch, session_id))
		session_summary(d, p, serial, l.store_epoch, session_id, end_seq, &l);
}

/* Builds the records payload with msg_id = the outbox id it will get. */
static int record_payload(struct daemon *d, const char *serial, const struct nl_record *rec,
			  int64_t now, int64_t msg_id, char **ret)
{
	cJSON *json;
	char *text;
	int r;

	r = nl_payload_record(&(struct nl_payload_record_ctx){ .serial = serial,
							       .msg_id = (uint64_t)msg_id,
							       .received_ms = now },
			      rec, &json);
	if (r < 0)
		return r;
	text = nl_payload_print(json);
	cJSON_Delete(json);
	if (!text)
		return -ENOMEM;
	*ret = text;
	return 0;
}

static int pm_record(void *user_data, const char *serial, const struct nl_record *rec,
		     const uint8_t *raw, size_t len, penmgr_commit_fn done, void *commit_data)
{
	struct daemon *d = user_data;
	uint64_t arrived_us = d->opts->stats ? mono_us() : 0;
	struct dpen *p = dpen_get(d, serial);
	struct pending_commit *pc;
	char topic[TOPIC_MAX], record_id[96];
	char *text = NULL;
	int64_t now = journal_now_ms(), id, got;
	int r, added;

	if (!p)
		return -ENOMEM;
	p->last_seen_ms = now;
	r = pen_topic(d, serial, "records", topic, sizeof(topic));
	if (r < 0)
		return r;
	(void)nl_payload_record_id(serial, rec->hdr.store_epoch, rec->hdr.seq, record_id,
				   sizeof(record_id));
	id = journal_outbox_next_id(d->j);
	r = record_payload(d, serial, rec, now, id, &text);
	if (r < 0) {
		log_pen_err(serial, "record %" PRIu32 ": payload failed: %s", rec->hdr.seq,
			    strerror(-r));
		return r;
	}
	/* The record and its outbox message commit together. */
	journal_hold(d->j);
	added = journal_add_record(d->j, &(struct journal_record){
						 .pen_serial = serial,
						 .store_epoch = rec->hdr.store_epoch,
						 .seq = rec->hdr.seq,
						 .type = rec->hdr.type,
						 .session_id = rec->hdr.session_id,
						 .pen_time = rec->hdr.pen_time,
						 .gw_time_ms = now,
						 .raw = raw,
						 .raw_len = len,
						 .decoded = text,
					 });
	if (added < 0) {
		log_pen_err(serial, "record %" PRIu32 ": journal failed: %s", rec->hdr.seq,
			    strerror(-added));
		r = added;
		goto fail;
	}
	if (added == JOURNAL_ADDED) {
		/* The probe first: the row may be published from inside the add. */
		if (d->probe)
			d->probe[(uint64_t)id & (PROBE_SLOTS - 1)] =
				(struct pub_probe){ .id = id, .arrived_us = arrived_us };
		/* The payload is the record's decoded text, stored once. */
		r = journal_add_outbox_record(d->j, topic, text, &got);
		if (r < 0) {
			log_pen_err(serial, "record %" PRIu32 ": outbox failed: %s", rec->hdr.seq,
				    strerror(-r));
			goto fail;
		}
		if (got != id)
			log_pen_warning(serial, "record %" PRIu32 ": outbox id %" PRId64
					" but payload says %" PRId64, rec->hdr.seq, got, id);
		if (rec->hdr.type == NL_RECORD_LIMIT &&
		    !dlimits_reports_limit_record(d, serial, rec))
			limit_record_alert(d, serial, rec, record_id);
		dlimits_record(d, serial, rec, record_id);
		session_record(d, p, serial, rec);
	} else if (added == JOURNAL_CONFLICT) {
		char msg[160];

		snprintf(msg, sizeof(msg), "record %" PRIu32 " differs from the stored copy; first kept",
			 rec->hdr.seq);
		log_pen_err(serial, "%s", msg);
		raise_alert(d, serial, &(struct alert_in){ .rule = "record_conflict",
							   .severity = NL_PAYLOAD_SEVERITY_WARNING,
							   .action = NL_PAYLOAD_ACTION_WARN,
							   .record_id = record_id,
							   .session_id = rec->hdr.session_id,
							   .message = msg });
	} else {
		log_pen_debug(serial, "record %" PRIu32 " already journaled", rec->hdr.seq);
	}
	free(text);
	text = NULL;
	r = journal_release(d->j);
	if (r < 0)
		return r;

	pc = calloc(1, sizeof(*pc));
	if (!pc)
		return -ENOMEM;
	pc->done = done;
	pc->commit_data = commit_data;
	pc->d = d;
	pc->arrived_us = d->opts->stats ? arrived_us : 0;
	r = journal_commit(d->j, commit_cb, pc);
	if (r < 0) {
		free(pc);
		return r;
	}
	return 0;

fail:
	free(text);
	(void)journal_release(d->j);
	return r;
}

static int pm_cursor(void *user_data, const char *serial, uint32_t *ret_epoch, uint32_t *ret_seq)
{
	struct daemon *d = user_data;
	struct penmgr_snapshot s;
	uint32_t seq;
	int r;

	/* The pen manager asks once it has read Pen Status: catch up from what
	 * the journal holds for the pen's current store epoch. */
	r = penmgr_get_snapshot(d->pm, serial, &s);
	if (r < 0 || !s.has_status)
		return -ENOENT;
	r = journal_last_seq(d->j, serial, s.status.store_epoch, &seq);
	if (r < 0)
		return r;
	log_pen_info(serial, "journal has records up to %" PRIu32 " of epoch %08" PRIx32, seq,
		     s.status.store_epoch);
	*ret_epoch = s.status.store_epoch;
	*ret_seq = seq;
	return 0;
}

static int pm_gaps(void *user_data, const char *serial, uint32_t epoch, uint32_t after_seq,
		   uint32_t *ret_a, uint32_t *ret_b, size_t max)
{
	struct daemon *d = user_data;

	return journal_missing(d->j, serial, epoch, after_seq, ret_a, ret_b, max);
}

/* The pen manager's alert names are already rule ids ([a-z0-9_]+). */
static const char *alert_rule(enum penmgr_alert a, enum nl_payload_severity *sev)
{
	*sev = NL_PAYLOAD_SEVERITY_WARNING;
	if (a == PENMGR_ALERT_PROTO_MISMATCH || a == PENMGR_ALERT_SERIAL_MISMATCH ||
	    a == PENMGR_ALERT_COMMIT_FAILED)
		*sev = NL_PAYLOAD_SEVERITY_CRITICAL;
	else if (a == PENMGR_ALERT_CLOCK_SET)
		*sev = NL_PAYLOAD_SEVERITY_INFO;
	return penmgr_alert_name(a);
}

static void pm_event(void *user_data, const struct penmgr_event *ev)
{
	struct daemon *d = user_data;
	struct dpen *p = dpen_get(d, ev->serial);
	char topic[TOPIC_MAX];
	cJSON *json;

	if (!p)
		return;
	p->last_seen_ms = journal_now_ms();
	switch (ev->type) {
	case PENMGR_EVENT_STATE: {
		bool up = ev->u.state.to == PENMGR_STATE_RESOLVING ||
			  ev->u.state.to == PENMGR_STATE_SUBSCRIBING ||
			  ev->u.state.to == PENMGR_STATE_CATCHING_UP ||
			  ev->u.state.to == PENMGR_STATE_READY;

		if (up != p->online) {
			p->online = up;
			p->since_ms = journal_now_ms();
			publish_availability(d, p, "disconnected");
		}
		dlimits_link(d, ev->serial, ev->u.state.from, ev->u.state.to);
		if (ev->u.state.to == PENMGR_STATE_READY) {
			struct penmgr_snapshot s;

			if (penmgr_get_snapshot(d->pm, ev->serial, &s) == 0) {
				int r = journal_pen_seen(d->j, ev->serial,
							 s.model[0] ? s.model : NULL,
							 s.firmware[0] ? s.firmware : NULL,
							 s.store_epoch, journal_now_ms());
				if (r < 0)
					log_pen_warning(ev->serial, "journal: pen row: %s",
							strerror(-r));
			}
			publish_pen_state(d, ev->serial, false);
		}
		break;
	}
	case PENMGR_EVENT_SNAPSHOT: {
		/* Pen Status changes many times a second while the motor runs.
		 * The first change after a quiet second goes out at once (a
		 * short-lived state such as ARMED is not missed); the changes
		 * that follow within STATE_COALESCE_US are merged into one
		 * publish at the end of that second. */
		uint64_t since = mono_us() - p->state_pub_us;

		if (!p->state_dirty && since >= STATE_COALESCE_US) {
			publish_pen_state(d, ev->serial, false);
		} else {
			p->state_dirty = true;
			arm_state_timer(d, since < STATE_COALESCE_US ? STATE_COALESCE_US - since : 0);
		}
		break;
	}
	case PENMGR_EVENT_LIVE:
		dlimits_live(d, ev->serial, ev->u.live);
		if (pen_topic(d, ev->serial, "live", topic, sizeof(topic)) == 0 &&
		    nl_payload_live(ev->serial, journal_now_ms(), ev->u.live, &json) == 0)
			publish_json(d, topic, json, 0, false);
		break;
	case PENMGR_EVENT_ALERT: {
		enum nl_payload_severity sev;
		const char *rule = alert_rule(ev->u.alert.alert, &sev);

		if (ev->u.alert.alert == PENMGR_ALERT_RECORD_GAP)
			session_lost(d, p, ev->serial, ev->u.alert.value, ev->u.alert.count);
		raise_alert(d, ev->serial,
			    &(struct alert_in){ .rule = rule,
						.severity = sev,
						.action = NL_PAYLOAD_ACTION_WARN,
						.message = ev->u.alert.message && ev->u.alert.message[0]
								   ? ev->u.alert.message
								   : rule });
		break;
	}
	}
}

/* ---- requests ------------------------------------------------------------- */

void pending_req_free(void *userdata)
{
	struct pending_req *pr = userdata;

	if (!pr)
		return;
	free(pr->response_topic);
	free(pr->correlation);
	free(pr);
}

void reply(struct daemon *d, const struct pending_req *pr, const struct nl_payload_response *resp)
{
	struct mqtt_request req = {
		.topic = pr->topic,
		.pen_serial = pr->serial,
		.name = pr->name,
		.response_topic = pr->response_topic,
		.correlation = pr->correlation,
		.correlation_len = pr->correlation_len,
	};
	cJSON *json;
	char *text;
	int r;

	r = nl_payload_response(resp, &json);
	if (r < 0) {
		log_pen_err(pr->serial, "response to %s: payload failed: %s", pr->name, strerror(-r));
		return;
	}
	text = nl_payload_print(json);
	cJSON_Delete(json);
	if (!text)
		return;
	r = mqtt_reply(d->m, &req, text, strlen(text));
	if (r < 0)
		log_pen_warning(pr->serial, "response to %s not sent: %s", pr->name, strerror(-r));
	free(text);
}

void reply_failed(struct daemon *d, const struct pending_req *pr, const char *code,
			 const char *step, const char *message)
{
	reply(d, pr, &(struct nl_payload_response){ .serial = pr->serial,
						    .op = pr->name,
						    .transaction = pr->req.transaction,
						    .status = NL_PAYLOAD_STATUS_FAILED,
						    .at_ms = journal_now_ms(),
						    .error_code = code,
						    .error_message = message,
						    .failed_step = step });
	log_pen_notice(pr->serial, "request %s (%s) failed: %s", pr->name, pr->req.transaction,
		       message);
}

void reply_ok(struct daemon *d, const struct pending_req *pr, cJSON *result)
{
	reply(d, pr, &(struct nl_payload_response){ .serial = pr->serial,
						    .op = pr->name,
						    .transaction = pr->req.transaction,
						    .status = NL_PAYLOAD_STATUS_OK,
						    .at_ms = journal_now_ms(),
						    .result = result });
	log_pen_info(pr->serial, "request %s (%s) done", pr->name, pr->req.transaction);
}

static void cp_done(int err, const struct nl_cp_rsp *rsp, void *user_data)
{
	struct pending_req *pr = user_data;
	struct daemon *d = pr->d;
	struct penmgr_snapshot s;
	cJSON *result = NULL;
	char msg[128];
	int r = 0;

	if (err == -ETIMEDOUT) {
		reply_failed(d, pr, "timeout", "command", "the pen did not answer in time");
		return;
	}
	if (err == -ENOTCONN || err == -ECANCELED) {
		reply_failed(d, pr, "pen_offline", "connect", "the pen went offline");
		return;
	}
	if (err < 0) {
		snprintf(msg, sizeof(msg), "control point failed: %s", strerror(-err));
		reply_failed(d, pr, "pen_rejected", "command", msg);
		return;
	}
	if (rsp->result != NL_CP_SUCCESS) {
		snprintf(msg, sizeof(msg), "the pen answered %s", nl_cp_result_name(rsp->result));
		reply_failed(d, pr, "pen_rejected", "command", msg);
		return;
	}
	switch ((enum nl_payload_op)pr->req.op) {
	case NL_PAYLOAD_OP_SET_TIME: {
		uint32_t pen_s = 0;
		int64_t ms = pr->req.u.set_time.has_time ? pr->req.u.set_time.unix_ms
							 : journal_now_ms();

		pen_s = (uint32_t)(ms / 1000 - NL_PEN_EPOCH_UNIX);
		r = nl_payload_result_set_time(rsp->value,
					       ((int64_t)pen_s + NL_PEN_EPOCH_UNIX) * 1000, &result);
		break;
	}
	case NL_PAYLOAD_OP_LOCK:
		r = nl_payload_result_locked(true, &result);
		break;
	case NL_PAYLOAD_OP_UNLOCK:
		r = nl_payload_result_locked(false, &result);
		break;
	case NL_PAYLOAD_OP_SET_ZONE:
		r = nl_payload_result_zone(rsp->value ? rsp->value : pr->req.u.set_zone.zone, &result);
		break;
	case NL_PAYLOAD_OP_STOP_SESSION:
		r = nl_payload_result_session(rsp->value, &result);
		break;
	case NL_PAYLOAD_OP_READ_STATE:
	case NL_PAYLOAD_OP_AUTHORISE:
	case NL_PAYLOAD_OP_PAIR:
	case NL_PAYLOAD_OP_RELEASE:
	case NL_PAYLOAD_OP_COUNT:
	default:
		r = -EINVAL;
		break;
	}
	if (r < 0) {
		snprintf(msg, sizeof(msg), "result could not be built: %s", strerror(-r));
		reply_failed(d, pr, "pen_rejected", "verify", msg);
		return;
	}
	reply_ok(d, pr, result);
	/* The pen indicates its new status; republish what we have now too. */
	if (penmgr_get_snapshot(d->pm, pr->serial, &s) == 0)
		publish_pen_state(d, pr->serial, false);
}

/* release: a quarantined pen (pen_quarantined) may be connected again, once
 * an operator has looked at it. Needs no link: a quarantined pen has none. */
static void release_request(struct daemon *d, struct pending_req *pr)
{
	struct penmgr_snapshot s;
	cJSON *result = NULL;
	bool was;

	if (!config_pen_allowed(d->cfg, pr->serial) ||
	    penmgr_get_snapshot(d->pm, pr->serial, &s) < 0) {
		reply_failed(d, pr, "pen_offline", "connect", "the gateway has not seen this pen");
		return;
	}
	was = s.quarantined;
	if (penmgr_release(d->pm, pr->serial) < 0 || nl_payload_result_released(was, &result) < 0) {
		reply_failed(d, pr, "pen_rejected", "command", "the pen could not be released");
		return;
	}
	log_pen_notice(pr->serial, "release (%s): %s", pr->req.transaction,
		       was ? "quarantine lifted, connecting again" : "was not quarantined");
	reply_ok(d, pr, result);
	publish_pen_state(d, pr->serial, false);
}

static void on_request(struct mqtt *m, const struct mqtt_request *in, void *userdata)
{
	struct daemon *d = userdata;
	struct nl_payload_parse_error perr;
	struct penmgr_snapshot s;
	struct nl_cp_req cp = { 0 };
	struct pending_req *pr;
	int r;

	pr = calloc(1, sizeof(*pr));
	if (!pr)
		return;
	pr->d = d;
	snprintf(pr->serial, sizeof(pr->serial), "%s", in->pen_serial);
	snprintf(pr->name, sizeof(pr->name), "%s", in->name);
	snprintf(pr->topic, sizeof(pr->topic), "%s", in->topic);
	if (in->response_topic && !(pr->response_topic = strdup(in->response_topic)))
		goto out;
	if (in->correlation && in->correlation_len) {
		pr->correlation = malloc(in->correlation_len);
		if (!pr->correlation)
			goto out;
		memcpy(pr->correlation, in->correlation, in->correlation_len);
		pr->correlation_len = in->correlation_len;
	}

	r = nl_payload_parse_request_ex(in->name, in->payload, in->payload_len, &pr->req, &perr);
	if (r < 0) {
		log_pen_notice(pr->serial, "request %s refused: %s (%s)", pr->name,
			       nl_payload_req_error_name(perr.code), perr.message);
		reply(d, pr, &(struct nl_payload_response){
				     .serial = pr->serial,
				     .op = pr->name,
				     .transaction = perr.transaction,
				     .status = NL_PAYLOAD_STATUS_ERROR,
				     .at_ms = journal_now_ms(),
				     .error_code = nl_payload_req_error_name(perr.code),
				     .error_message = perr.message[0] ? perr.message : "malformed",
				     .error_field = perr.field,
			     });
		goto out;
	}
	log_pen_info(pr->serial, "request %s (%s)", pr->name, pr->req.transaction);

	if (dlimits_request(d, pr) || dpair_request(d, pr))
		return;
	if (pr->req.op == NL_PAYLOAD_OP_RELEASE) {
		release_request(d, pr);
		goto out;
	}
	if (!config_pen_allowed(d->cfg, pr->serial) ||
	    penmgr_get_snapshot(d->pm, pr->serial, &s) < 0 || s.state != PENMGR_STATE_READY) {
		reply_failed(d, pr, "pen_offline", "connect", "the pen is not connected");
		goto out;
	}
	switch ((enum nl_payload_op)pr->req.op) {
	case NL_PAYLOAD_OP_READ_STATE: {
		cJSON *st = pen_state_json(&s), *result = NULL;

		if (!st || nl_payload_result_state(st, &result) < 0) {
			reply_failed(d, pr, "pen_rejected", "read", "pen state could not be built");
			goto out;
		}
		reply_ok(d, pr, result);
		publish_pen_state(d, pr->serial, false);
		goto out;
	}
	case NL_PAYLOAD_OP_SET_TIME: {
		int64_t ms = pr->req.u.set_time.has_time ? pr->req.u.set_time.unix_ms
							 : journal_now_ms();

		cp.op = NL_CP_SET_TIME;
		cp.u.pen_time = (uint32_t)(ms / 1000 - NL_PEN_EPOCH_UNIX);
		break;
	}
	case NL_PAYLOAD_OP_LOCK:
		cp.op = NL_CP_LOCK;
		cp.u.reason = pr->req.u.lock.reason;
		break;
	case NL_PAYLOAD_OP_UNLOCK:
		cp.op = NL_CP_UNLOCK;
		cp.u.reason = pr->req.u.unlock.reason;
		break;
	case NL_PAYLOAD_OP_SET_ZONE:
		cp.op = NL_CP_SET_ZONE;
		cp.u.zone = pr->req.u.set_zone.zone;
		break;
	case NL_PAYLOAD_OP_STOP_SESSION: {
		uint32_t want = pr->req.u.stop_session.session_id;

		if (want && s.has_live && s.live.session_id != want) {
			char msg[96];

			snprintf(msg, sizeof(msg), "session %" PRIu32 " is not the open session", want);
			reply_failed(d, pr, "pen_rejected", "command", msg);
			goto out;
		}
		cp.op = NL_CP_STOP_SESSION;
		break;
	}
	case NL_PAYLOAD_OP_AUTHORISE:
	case NL_PAYLOAD_OP_PAIR:
	case NL_PAYLOAD_OP_RELEASE:
	case NL_PAYLOAD_OP_COUNT:
	default:
		reply_failed(d, pr, "not_implemented", "evaluate", "op not implemented");
		goto out;
	}
	if (penmgr_cp_request(d->pm, pr->serial, &cp, cp_done, pr, pending_req_free) == 0) {
		reply_failed(d, pr, "busy", "command", "the pen manager refused the command");
		goto out;
	}
	return;
out:
	pending_req_free(pr);
}

/* ---- lifecycle ------------------------------------------------------------ */

static void on_mqtt_stopped(struct mqtt *m, void *userdata)
{
	struct daemon *d = userdata;

	log_info("disconnected from the broker");
	sd_event_exit(d->e, d->exit_code);
}

static int on_exit_timer(sd_event_source *s, uint64_t usec, void *userdata)
{
	struct daemon *d = userdata;

	log_warning("shutdown took too long, exiting");
	sd_event_exit(d->e, d->exit_code);
	return 0;
}

static void begin_shutdown(struct daemon *d, int code)
{
	uint64_t now = 0;

	if (d->stopping) {
		/* A second SIGINT or SIGTERM: no more waiting. */
		log_notice("stopping now");
		sd_event_exit(d->e, d->exit_code);
		return;
	}
	d->stopping = true;
	d->exit_code = code;
	(void)sd_notify(0, "STOPPING=1");
	log_notice("shutting down");
	penmgr_stop(d->pm);
	for (struct dpen *p = d->pens; p; p = p->next) {
		p->online = false;
		p->since_ms = journal_now_ms();
		publish_availability(d, p, "gateway_offline");
	}
	publish_gateway_state(d, false);
	(void)journal_flush(d->j);
	(void)sd_event_now(d->e, CLOCK_MONOTONIC, &now);
	/* mqtt_stop() gives up after at most 2 s: this is only a backstop. */
	(void)sd_event_add_time(d->e, &d->exit_timer, CLOCK_MONOTONIC, now + 3000000ULL, 0,
				on_exit_timer, d);
	if (mqtt_stop(d->m, on_mqtt_stopped, d) < 0)
		sd_event_exit(d->e, code);
}

static int on_signal(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata)
{
	struct daemon *d = userdata;

	log_notice("signal %s received", strsignal((int)si->ssi_signo));
	begin_shutdown(d, 0);
	return 0;
}

static const char **make_allow(const struct config *cfg)
{
	size_t n = 0;
	bool any = false;
	const char *const *list = config_pens_allow(cfg, &n, &any);
	const char **a = calloc(n + 2, sizeof(*a));
	size_t k = 0;

	if (!a)
		return NULL;
	if (any)
		a[k++] = "*";
	for (size_t i = 0; i < n; i++)
		if (strcmp(list[i], "*") != 0)
			a[k++] = list[i];
	a[k] = NULL;
	return a;
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

static void log_stats(struct daemon *d)
{
	struct rusage ru;

	if (!d->opts->stats)
		return;
	if (getrusage(RUSAGE_SELF, &ru) == 0)
		log_notice("stats: cpu user %ld.%06ld s system %ld.%06ld s, max rss %ld kB",
			   (long)ru.ru_utime.tv_sec, (long)ru.ru_utime.tv_usec,
			   (long)ru.ru_stime.tv_sec, (long)ru.ru_stime.tv_usec, ru.ru_maxrss);
	if (d->j) {
		struct journal_stats js;

		journal_get_stats(d->j, &js);
		log_notice("stats: journal %" PRIu64 " commits, %" PRIu64 " writes, commit us"
			   " mean %" PRIu64 " max %" PRIu64 " total %" PRIu64,
			   js.commits, js.writes, js.commits ? js.commit_us / js.commits : 0,
			   js.commit_us_max, js.commit_us);
		log_notice("stats: journal batches committed by the loop going idle %" PRIu64
			   ", by the delay timer %" PRIu64 ", full or flushed %" PRIu64,
			   js.by_idle, js.by_timer, js.commits - js.by_idle - js.by_timer);
		log_notice("stats: journal %" PRIu64 " syncs, sync us mean %" PRIu64 " max %" PRIu64
			   ", %" PRIu64 " checkpoints, %" PRIu64 " us",
			   js.syncs, js.syncs ? js.sync_us / js.syncs : 0, js.sync_us_max,
			   js.checkpoints, js.checkpoint_us);
	}
	if (d->m) {
		struct mqtt_stats ms;

		mqtt_get_stats(d->m, &ms);
		log_notice("stats: mqtt %" PRIu64 " outbox publishes, %" PRIu64
			   " before their commit, %" PRIu64 " acknowledged; the outbox fell"
			   " a window behind %" PRIu64 " times",
			   ms.published, ms.early, ms.acked, ms.lazy);
	}
	if (d->n_lat_pub) {
		uint32_t *v = d->lat_pub;
		size_t n = d->n_lat_pub;

		qsort(v, n, sizeof(*v), cmp_u32);
		log_notice("stats: %zu records, arrival->publish latency us p50 %u p90 %u p99 %u"
			   " max %u", n, v[n / 2], v[n * 9 / 10], v[n * 99 / 100], v[n - 1]);
	}
	if (d->n_durable > 1) {
		/* Commit callbacks run in time order: the busiest second is a
		 * sliding window over the sorted times. */
		const uint32_t *t = d->durable;
		size_t n = d->n_durable, best = 0;
		double span = (double)(t[n - 1] - t[0]) / 1e6;

		for (size_t lo = 0, hi = 0; hi < n; hi++) {
			while (t[hi] - t[lo] >= 1000000)
				lo++;
			if (hi - lo + 1 > best)
				best = hi - lo + 1;
		}
		size_t n90 = n * 9 / 10;
		double span90 = (double)(t[n90] - t[0]) / 1e6;

		log_notice("stats: durable records %zu, per second: busiest second %zu,"
			   " mean %.0f over %.2f s from first to last, first 90%% in %.2f s"
			   " = %.0f", n, best, span > 0 ? (double)n / span : 0.0, span, span90,
			   span90 > 0 ? (double)n90 / span90 : 0.0);
	}
	if (!d->n_lat) {
		log_notice("stats: no record latency samples");
		return;
	}
	qsort(d->lat, d->n_lat, sizeof(*d->lat), cmp_u32);
	log_notice("stats: %zu records, arrival->commit latency us p50 %u p90 %u p99 %u max %u",
		   d->n_lat, d->lat[d->n_lat / 2], d->lat[d->n_lat * 9 / 10],
		   d->lat[d->n_lat * 99 / 100], d->lat[d->n_lat - 1]);
}

int daemon_check_cpu(const struct config *cfg, int *ret_cpu)
{
	const char *spec = config_str(cfg, CONFIG_GATEWAY_CPU);
	int r = helper_sched_resolve(spec, ret_cpu);

	if (r == -ENXIO)
		log_err("[gateway] cpu = %s: this process may not run on that CPU (see"
			" /proc/self/status, Cpus_allowed_list)", spec);
	else if (r < 0)
		log_err("[gateway] cpu = %s: %s", spec, strerror(-r));
	return r;
}

int daemon_run(const struct config *cfg, const struct daemon_options *opts)
{
	struct daemon d = { .cfg = cfg, .opts = opts, .exit_code = 1 };
	sigset_t mask;
	uint64_t now = 0;
	int r, code = 1;

	d.gw_id = config_str(cfg, CONFIG_GATEWAY_ID);
	d.base = config_str(cfg, CONFIG_GATEWAY_BASE_TOPIC);
	d.started_ms = journal_now_ms();
	/* Before Paho starts its threads: glibc would give each thread that
	 * allocates its own arena (heap pages of its own, mostly idle). Paho's
	 * threads allocate little; two shared arenas keep RSS down (with the
	 * journal's smaller page cache: 12.9 -> 11.6 MB peak in bench/). */
	(void)mallopt(M_ARENA_MAX, 2);

	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGPIPE);
	sigprocmask(SIG_BLOCK, &mask, NULL);

	/* Before any thread starts: Paho's threads inherit the loop's CPU,
	 * the syncer gives it back (helper-sched.h). */
	{
		int cpu = -1;

		r = daemon_check_cpu(cfg, &cpu);
		if (r < 0)
			return 2;
		if (cpu >= 0) {
			r = helper_sched_bind(cpu);
			if (r < 0)
				log_warning("cannot bind the loop thread to CPU %d: %s; threads stay"
					    " where the scheduler puts them", cpu, strerror(-r));
			else
				log_info("loop and MQTT threads on CPU %d", cpu);
		}
	}

	r = sd_event_default(&d.e);
	if (r < 0) {
		log_err("sd-event: %s", strerror(-r));
		return 1;
	}
	(void)sd_event_add_signal(d.e, NULL, SIGTERM, on_signal, &d);
	(void)sd_event_add_signal(d.e, NULL, SIGINT, on_signal, &d);
	/* WATCHDOG=1 pings when systemd asked for them (WATCHDOG_USEC). */
	(void)sd_event_set_watchdog(d.e, true);

	r = journal_open(d.e, config_str(cfg, CONFIG_GATEWAY_JOURNAL), NULL, &d.j);
	if (r < 0) {
		log_err("journal %s: %s", config_str(cfg, CONFIG_GATEWAY_JOURNAL), strerror(-r));
		goto out;
	}
	if (opts->stats) {
		d.stats_t0_us = mono_us();
		d.probe = calloc(PROBE_SLOTS, sizeof(*d.probe));
		if (d.probe)
			journal_set_visit_hook(d.j, pub_visit, &d);
	}
	r = mqtt_new(d.e, cfg, d.j, &d.m);
	if (r < 0) {
		log_err("mqtt: %s", strerror(-r));
		goto out;
	}
	mqtt_set_request_handler(d.m, on_request, &d);
	r = dlimits_new(&d);
	if (r < 0)
		goto out;
	mqtt_set_connected_handler(d.m, on_mqtt_connected, &d);

	{
		const char *sim_dir = config_str(cfg, CONFIG_TRANSPORT_SIM_DIR);
		struct transport_config tc = {
			.sim_dir = sim_dir[0] ? sim_dir : NULL,
			.adapter = config_str(cfg, CONFIG_TRANSPORT_ADAPTER),
		};
		const char *kind = config_transport_kind(cfg) == CONFIG_TRANSPORT_SIM ? "sim" : "bluez";

		r = transport_new(d.e, kind, &tc, &d.t);
		if (r < 0) {
			log_err("transport %s: %s", kind,
				r == -ENOENT ? "backend not built in" : strerror(-r));
			goto out;
		}
	}
	/* After the transport: pairing.c hooks into the BlueZ backend. */
	r = dpair_new(&d);
	if (r < 0)
		goto out;
	d.allow = make_allow(cfg);
	if (!d.allow)
		goto out;
	r = penmgr_new(d.e, d.t,
		       &(struct penmgr_config){
			       .allow = d.allow,
			       .max_connections =
				       (unsigned)config_int(cfg, CONFIG_GATEWAY_MAX_CONNECTIONS),
		       },
		       &(struct penmgr_callbacks){
			       .record = pm_record, .cursor = pm_cursor, .gaps = pm_gaps,
			       .event = pm_event },
		       &d, &d.pm);
	if (r < 0) {
		log_err("pen manager: %s", strerror(-r));
		goto out;
	}

	r = mqtt_start(d.m);
	if (r < 0) {
		log_err("mqtt start: %s", strerror(-r));
		goto out;
	}
	r = penmgr_start(d.pm);
	if (r < 0) {
		log_err("pen manager start: %s", strerror(-r));
		goto out;
	}
	(void)sd_event_now(d.e, CLOCK_MONOTONIC, &now);
	r = sd_event_add_time(d.e, &d.health_timer, CLOCK_MONOTONIC,
			      now + (opts->health_interval_us ? opts->health_interval_us
							      : 30000000ULL),
			      0, on_health_timer, &d);
	if (r < 0)
		goto out;
	r = sd_event_add_time(d.e, &d.sync_watch, CLOCK_MONOTONIC, now + SYNC_WATCH_US, 0,
			      on_sync_watch, &d);
	if (r < 0)
		goto out;

	log_notice("needlelinkd %s started: gateway %s, base topic %s, journal %s, transport %s",
		   opts->version, d.gw_id, d.base, config_str(cfg, CONFIG_GATEWAY_JOURNAL),
		   transport_name(d.t));
	(void)sd_notify(0, "READY=1");
	code = sd_event_loop(d.e);
	if (code < 0)
		code = 1;
	log_stats(&d);
out:
	sd_event_source_unref(d.health_timer);
	sd_event_source_unref(d.sync_watch);
	sd_event_source_unref(d.exit_timer);
	sd_event_source_unref(d.state_timer);
	penmgr_free(d.pm); /* pending CP callbacks run (-ECANCELED) */
	d.pm = NULL;
	dpair_free(&d);
	dlimits_free(&d);
	mqtt_free(d.m);
	d.m = NULL; /* journal_close() runs commit callbacks that kick */
	journal_close(d.j);
	transport_free(d.t);
	free(d.allow);
	free(d.lat);
	free(d.lat_pub);
	free(d.durable);
	free(d.probe);
	while (d.pens) {
		struct dpen *p = d.pens;

		d.pens = p->next;
		free(p);
	}
	sd_event_unref(d.e);
	return code;
}
