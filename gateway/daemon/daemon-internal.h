/* SPDX-License-Identifier: MIT */
/*
 * What daemon.c shares with the daemon's other modules: limits.c (session
 * authorisation and enforcement) and pairing.c (BlueZ pairing requests).
 * Everything here runs on the loop thread.
 */
#ifndef NLGW_DAEMON_INTERNAL_H
#define NLGW_DAEMON_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>
#include <systemd/sd-event.h>

#include "payload.h"
#include "penmgr.h"

#include "needlelink/common.h"
#include "needlelink/record.h"

struct config;
struct daemon_options;
struct journal;
struct mqtt;
struct transport;
struct pub_probe;
struct dlimits;
struct dpair;

#define TOPIC_MAX 512
#define LOST_RANGES_MAX 8

/* Records a pen reported missing (PENMGR_ALERT_RECORD_GAP), inclusive. */
struct lost_range {
	uint32_t store_epoch, first, last;
};

/* A session whose summary went out without some of its records (or
 * without its SESSION_START): not published again when they come late. */
struct lost_session {
	uint32_t store_epoch, session_id;
};

/* What the daemon remembers of one pen beyond the pen manager's snapshot:
 * availability, and for session summaries (built from the journal) the
 * highest seq journaled since start and the latest lost record ranges. */
struct dpen {
	struct dpen *next;
	char serial[NL_SERIAL_MAX + 1];
	bool online;
	int64_t since_ms;
	int64_t last_seen_ms;
	uint32_t alerts;
	bool has_hi;
	uint32_t hi_epoch, hi_seq;
	size_t n_lost, n_partial; /* rings of LOST_RANGES_MAX: written so far */
	struct lost_range lost[LOST_RANGES_MAX];
	struct lost_session partial[LOST_RANGES_MAX];
	bool state_dirty;      /* snapshot changed since the last state publish */
	uint64_t state_pub_us; /* CLOCK_MONOTONIC of the last state publish */
	bool limits_published; /* last_limits went out on this connection */
	struct nl_active_limits last_limits;
};

struct daemon {
	sd_event *e;
	const struct config *cfg;
	const struct daemon_options *opts;
	struct journal *j;
	struct mqtt *m;
	struct transport *t;
	struct penmgr *pm;
	sd_event_source *health_timer, *exit_timer, *sync_watch;
	bool sync_stalled; /* journal_sync_stalled raised, not yet journal_sync_back */
	sd_event_source *state_timer; /* coalesces pen state publishes */
	const char *gw_id, *base;
	int64_t started_ms;
	uint32_t gw_alerts;
	bool stopping;
	int exit_code;
	struct dpen *pens;
	const char **allow; /* NULL-terminated, for the pen manager */
	/* --stats: microseconds from a record's arrival to its commit callback
	 * (the outbox drain then publishes it; see lat_pub). */
	uint32_t *lat;
	size_t n_lat, cap_lat;
	/* --stats: when each record became durable, microseconds since start
	 * (durable records per second, peak and mean; see log_stats). */
	uint64_t stats_t0_us;
	uint32_t *durable;
	size_t n_durable, cap_durable;
	/* --stats: microseconds from a record's arrival (its last notification
	 * was read) to its outbox row being handed to Paho (PUBLISH queued). */
	struct pub_probe *probe; /* PROBE_SLOTS, indexed by outbox id */
	uint32_t *lat_pub;
	size_t n_lat_pub, cap_lat_pub;
	struct dlimits *lim; /* limits.c */
	struct dpair *pair;  /* pairing.c */
};

/* A request waiting for the pen's control-point answer. */
struct pending_req {
	struct daemon *d;
	char serial[NL_SERIAL_MAX + 1];
	char name[32];
	char topic[TOPIC_MAX];
	char *response_topic;
	void *correlation;
	size_t correlation_len;
	struct nl_payload_request req;
};

struct alert_in {
	const char *rule;
	enum nl_payload_severity severity;
	enum nl_payload_action action;
	enum nl_payload_unit unit;
	int64_t measured, threshold;
	unsigned zone;
	uint32_t session_id;
	const char *record_id;
	const char *alert_id; /* NULL: generated */
	enum nl_payload_action_result result; /* 0: applied */
	const char *message;
};

/* ---- daemon.c helpers ---------------------------------------------------- */

struct dpen *dpen_get(struct daemon *d, const char *serial);
int pen_topic(const struct daemon *d, const char *serial, const char *leaf, char *buf,
	      size_t size);
/* Publishes directly (QoS as given); dropped when the broker is away. */
void publish_json(struct daemon *d, const char *topic, cJSON *json, int qos, bool retain);
/* Journal commit callback that kicks the MQTT outbox drain. */
void kick_cb(int result, void *userdata);
/* Adds a JSON payload (consumed) to the outbox, in the open batch. */
int outbox_json(struct daemon *d, const char *topic, cJSON *json, int64_t *ret_id);
/* Journals an alert for the outbox and asks for a commit. */
void raise_alert(struct daemon *d, const char *serial, const struct alert_in *in);
/* An alert of the gateway itself (action warn, no zone, no unit) on
 * BASE/gateways/GW/alerts, with the gateway id as serial; journaled too. */
void raise_gw_alert(struct daemon *d, const char *rule, enum nl_payload_severity sev,
		    const char *msg);
cJSON *pen_state_json(const struct penmgr_snapshot *s);
void publish_pen_state(struct daemon *d, const char *serial, bool force);
void pending_req_free(void *userdata);
void reply(struct daemon *d, const struct pending_req *pr, const struct nl_payload_response *resp);
void reply_failed(struct daemon *d, const struct pending_req *pr, const char *code,
		  const char *step, const char *message);
void reply_ok(struct daemon *d, const struct pending_req *pr, cJSON *result);

/* ---- limits.c: authorisation and enforcement (docs/limits.md) ------------ */

int dlimits_new(struct daemon *d);
void dlimits_free(struct daemon *d);
/* Requests the limits module owns (authorise, unlock): returns true when it
 * took pr (it answers and frees it), false to let daemon.c handle it. */
bool dlimits_request(struct daemon *d, struct pending_req *pr);
/* A record newly added to the journal (not a replayed duplicate). */
void dlimits_record(struct daemon *d, const char *serial, const struct nl_record *rec,
		    const char *record_id);
void dlimits_live(struct daemon *d, const char *serial, const struct nl_live *live);
/* True when the limits engine supervises the session of this LIMIT record
 * and publishes the alert for it (naming the binding rule): daemon.c then
 * publishes no alert of its own for the record. */
bool dlimits_reports_limit_record(struct daemon *d, const char *serial,
				  const struct nl_record *rec);
void dlimits_link(struct daemon *d, const char *serial, enum penmgr_state from,
		  enum penmgr_state to);

/* ---- pairing.c: BlueZ pairing requests ----------------------------------- */

int dpair_new(struct daemon *d);
void dpair_free(struct daemon *d);
/* Requests the pairing module owns: as dlimits_request(). */
bool dpair_request(struct daemon *d, struct pending_req *pr);

#endif
