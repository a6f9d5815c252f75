/* SPDX-License-Identifier: MIT */
/*
 * Pen manager: one state machine per allow-listed pen on top of a
 * transport (transport.h). It connects, checks identity and protocol
 * version, reads the pen's state, subscribes, sets the clock, catches up
 * stored records with RACP, hands each record upward and acknowledges it on
 * the pen only after the upper layer reports it durably committed, and keeps
 * the link healthy (watchdog, backoff by error class, corrupt-traffic limit).
 *
 * It knows nothing of MQTT or SQLite: it talks upward through the callbacks
 * of struct penmgr_callbacks. Everything runs on the sd-event loop thread.
 * Pens whose serial is not on the allow-list are never connected to (when
 * the advertisement names them) or are dropped right after the DIS read,
 * and are never reported upward (only counted, see penmgr_ignored()).
 *
 * States, every transition logged with the serial:
 *
 *   DISCOVERED -> CONNECTING -> RESOLVING -> SUBSCRIBING -> CATCHING_UP -> READY
 *        ^            |            |             |              |           |
 *        |            +------------+-------------+--------------+-----------+
 *        |                         v (error, drop, watchdog)
 *        +------ BACKOFF <---- DISCONNECTING
 *   LOST: out of range (no reconnection until found again).
 */
#ifndef NLGW_PENMGR_H
#define NLGW_PENMGR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <systemd/sd-event.h>

#include "needlelink/cp.h"
#include "needlelink/pdu.h"
#include "needlelink/record.h"
#include "transport.h"

enum penmgr_state {
	PENMGR_STATE_DISCOVERED,  /* in range, waiting for a connection slot */
	PENMGR_STATE_CONNECTING,
	PENMGR_STATE_RESOLVING,   /* MTU, discovery, DIS/Feature/status reads */
	PENMGR_STATE_SUBSCRIBING, /* CCCDs in spec order */
	PENMGR_STATE_CATCHING_UP, /* SET_TIME if needed, RACP REPORT >= cursor */
	PENMGR_STATE_READY,
	PENMGR_STATE_DISCONNECTING,
	PENMGR_STATE_BACKOFF,
	PENMGR_STATE_LOST,
	PENMGR_STATE_COUNT
};

/* Error counters per pen (same classes as the health payload). */
enum penmgr_err {
	PENMGR_ERR_CONNECT = 0,  /* connect or service discovery failed */
	PENMGR_ERR_GATT = 1,     /* GATT read/write/subscribe errors, link loss */
	PENMGR_ERR_DECODE = 2,   /* PDU or record did not decode, corrupt traffic */
	PENMGR_ERR_SEQUENCE = 3, /* record gaps and duplicates */
	PENMGR_ERR_COMMAND = 4,  /* Pen CP answered anything but success */
	PENMGR_ERR_TIMEOUT = 5,  /* an operation timed out, silent link */
	PENMGR_ERR_COUNT
};

enum penmgr_alert {
	/* Records the pen skipped and did not deliver when asked again with
	 * REPORT RANGE (10.4 step 8); value: first seq of the gap, count: how
	 * many are missing. The upper layer stores it as a gap entry. */
	PENMGR_ALERT_RECORD_GAP,
	PENMGR_ALERT_EPOCH_CHANGED,    /* the pen's store was wiped: restart at seq 1 */
	PENMGR_ALERT_PROTO_MISMATCH,   /* value: the pen's major version; refused */
	PENMGR_ALERT_SERIAL_MISMATCH,  /* DIS serial differs from the advertisement */
	PENMGR_ALERT_MTU_TOO_SMALL,    /* value: negotiated MTU; refused */
	PENMGR_ALERT_CORRUPT,          /* value: corrupt count on this link */
	PENMGR_ALERT_CORRUPT_LIMIT,    /* too many corrupt values: disconnected */
	PENMGR_ALERT_WATCHDOG,         /* no Live Status: disconnected */
	PENMGR_ALERT_CLOCK_SET,        /* value: drift in seconds (signed) */
	PENMGR_ALERT_COMMIT_FAILED,    /* value: seq the sink failed to commit */
	PENMGR_ALERT_CATCHUP_FAILED,   /* value: RACP response code */
	PENMGR_ALERT_ACK_FAILED,       /* value: Pen CP result */
	PENMGR_ALERT_QUARANTINED,      /* 3 links in a row ended for malformed data:
					* not used until penmgr_release() */
	PENMGR_ALERT_COUNT
};

struct penmgr_counters {
	uint32_t connects;        /* links that reached READY */
	uint32_t connect_attempts;
	uint32_t disconnects;
	uint32_t errors[PENMGR_ERR_COUNT];
	uint32_t records;         /* records handed to the sink */
	uint32_t committed;       /* of which committed */
	uint32_t duplicates;      /* records dropped as already seen */
	uint32_t gaps;            /* sequence numbers the pen skipped */
	uint32_t corrupt;         /* corrupt or oversized values, all links */
	uint32_t acks;            /* ACK_RECORDS that succeeded */
	uint32_t live;            /* Live Status values received */
	int rssi;                 /* last advertised, TRANSPORT_RSSI_UNKNOWN */
};

/* What the gateway publishes as the pen's state. has_* say which members
 * were read on this or an earlier link. */
struct penmgr_snapshot {
	char serial[NL_SERIAL_MAX + 1];
	char model[33], manufacturer[33], firmware[33];
	enum penmgr_state state;
	bool connected; /* READY or on the way there */
	uint16_t mtu;
	int battery_pct; /* Battery Service level, -1 unknown */
	bool has_feature, has_status, has_cartridge, has_limits, has_live;
	struct nl_feature feature;
	struct nl_pen_status status;
	struct nl_cartridge_info cartridge;
	struct nl_active_limits limits;
	struct nl_live live;
	uint32_t store_epoch;
	uint32_t committed_seq; /* highest contiguous committed seq */
	uint32_t acked_seq;     /* highest seq the pen acknowledged */
	bool quarantined;       /* see PENMGR_ALERT_QUARANTINED */
	/* A long catch-up in progress (PENMGR_CATCHUP_PROGRESS_MIN records or
	 * more asked for): records received so far and expected (from the
	 * pen's last_seq when it started); both 0 otherwise. Updated with a
	 * PENMGR_EVENT_SNAPSHOT at most once a second, and logged. */
	uint32_t catchup_received, catchup_expected;
};

#define PENMGR_CATCHUP_PROGRESS_MIN 200u

enum penmgr_event_type {
	PENMGR_EVENT_STATE,    /* u.state: the pen's link state changed */
	PENMGR_EVENT_SNAPSHOT, /* status/cartridge/limits/feature/DIS updated */
	PENMGR_EVENT_LIVE,     /* u.live */
	PENMGR_EVENT_ALERT,    /* u.alert */
};

struct penmgr_event {
	enum penmgr_event_type type;
	const char *serial;
	union {
		struct {
			enum penmgr_state from, to;
			enum transport_err_class cls; /* why the link went down */
		} state;
		const struct nl_live *live;
		struct {
			enum penmgr_alert alert;
			int64_t value;
			uint32_t count;
			const char *message;
		} alert;
	} u;
};

/* Called exactly once per record by the upper layer, err 0 when the record
 * is durably stored. May be called after penmgr_free() (it is then a no-op
 * that only frees commit_data). */
typedef void (*penmgr_commit_fn)(int err, void *commit_data);

struct penmgr_callbacks {
	/* A decoded record (raw: its encoding with CRC; rec and raw are valid
	 * during the call only). Records come in sequence order, except
	 * those of a gap asked for again, which come late. Return 0 and call
	 * done(err, commit_data) later (possibly from inside this call), or
	 * return -errno: done must then not be called. */
	int (*record)(void *user_data, const char *serial, const struct nl_record *rec,
		      const uint8_t *raw, size_t len, penmgr_commit_fn done, void *commit_data);
	/* Where catch-up starts the first time a pen is seen: the store epoch
	 * and seq of the last committed record. -ENOENT: none (start at 1). */
	int (*cursor)(void *user_data, const char *serial, uint32_t *ret_epoch,
		      uint32_t *ret_seq);
	/* Optional, asked with the cursor: seq ranges [a, b] of store epoch
	 * epoch missing from what was committed, after after_seq and before
	 * the cursor's seq (gaps left open by an earlier run: the pen may still
	 * hold them). Fills at most max ranges into ret_a[i]..ret_b[i] and
	 * returns how many, or -errno (then none are kept open). */
	int (*gaps)(void *user_data, const char *serial, uint32_t epoch, uint32_t after_seq,
		    uint32_t *ret_a, uint32_t *ret_b, size_t max);
	/* Optional. */
	void (*event)(void *user_data, const struct penmgr_event *ev);
};

struct penmgr_config {
	const char *const *allow; /* NULL-terminated serials; "*" allows any */
	unsigned max_connections; /* 0: 4 */
	uint16_t mtu;             /* requested ATT MTU, 0: 247 */
	uint64_t watchdog_usec;   /* no Live Status while subscribed, 0: 10 s */
	uint64_t cp_timeout_usec; /* Pen CP response, 0: 10 s */
	uint64_t racp_timeout_usec; /* silence during catch-up, 0: 15 s */
	uint64_t backoff_min_usec;  /* 0: 1 s */
	uint64_t backoff_max_usec;  /* 0: 5 min */
	unsigned corrupt_limit;     /* corrupt values per link before dropping, 0: 5 */
	int64_t clock_drift_max_s;  /* SET_TIME above this drift, 0: 2 */
	/* Unix time in seconds for SET_TIME; NULL: CLOCK_REALTIME. Return -1
	 * when the clock is not synchronised: the pen's clock is then left
	 * alone (10.3 step 2). */
	int64_t (*now_unix)(void *user_data);
};

struct penmgr;

/* Takes over the transport's event sink. t must outlive the manager. */
int penmgr_new(sd_event *ev, struct transport *t, const struct penmgr_config *cfg,
	       const struct penmgr_callbacks *cb, void *user_data, struct penmgr **ret);
/* Drops every link; pending CP callbacks complete with -ECANCELED. NULL ok.
 * Not from inside one of the manager's callbacks. Record commits still
 * with the upper layer may complete afterwards (a no-op then). */
void penmgr_free(struct penmgr *pm);

/* Starts scanning; pens are connected as they are found. */
int penmgr_start(struct penmgr *pm);
void penmgr_stop(struct penmgr *pm);

/* Snapshot and counters of a known, allow-listed pen: 0 or -ENOENT. */
int penmgr_get_snapshot(struct penmgr *pm, const char *serial, struct penmgr_snapshot *ret);
int penmgr_get_counters(struct penmgr *pm, const char *serial, struct penmgr_counters *ret);
/* Serials of known pens: writes up to max pointers (valid until the next
 * loop iteration), returns how many pens are known. */
size_t penmgr_list(struct penmgr *pm, const char **serials, size_t max);
/* Lets a quarantined pen (PENMGR_ALERT_QUARANTINED) be used again, after
 * an operator cleared the alert. 0 (also when it was not quarantined) or
 * -ENOENT. */
int penmgr_release(struct penmgr *pm, const char *serial);
/* Advertisements ignored because the serial is not allowed. */
uint32_t penmgr_ignored(const struct penmgr *pm);

/* Pen CP command (SET_TIME, LOCK, UNLOCK, CLAMP, SET_LIMITS, AUTHORISE,
 * STOP_SESSION, SET_ZONE, SET_LIVE_RATE; ACK_RECORDS is the manager's own).
 * Requests are sent one at a time per pen; each waits for the pen's
 * response indication with a timeout. cb gets 0 and the response (check
 * rsp->result), or -ETIMEDOUT (the link is then dropped), -ENOTCONN
 * (the link went down first), -ECANCELED (penmgr_free/stop), -EREMOTEIO
 * (the write got an ATT error), -EPROTO (malformed or mismatched
 * response). Returns an id, 0 on failure: pen unknown, not subscribed yet
 * (before CATCHING_UP), a request that does not encode, or ACK_RECORDS. */
typedef void (*penmgr_cp_fn)(int err, const struct nl_cp_rsp *rsp, void *user_data);
unsigned penmgr_cp_request(struct penmgr *pm, const char *serial, const struct nl_cp_req *req,
			   penmgr_cp_fn cb, void *user_data, transport_destroy_fn destroy);
/* The callback does not run, destroy does. 0 or -ENOENT. A request already
 * written still occupies the pen's Pen CP until its response. */
int penmgr_cp_cancel(struct penmgr *pm, unsigned id);

/* Reads Active Limits now (protocol 10.5 step 3: the read-back after
 * SET_LIMITS), queued behind the pen's other GATT operations. cb gets 0 and
 * the decoded value (the snapshot is updated too), -EBADMSG (malformed:
 * counted as corrupt), -ENOTCONN (the link went down first, or penmgr_free),
 * or the GATT error (the link is then dropped). Returns 0 (cb will run
 * exactly once; from inside this call only when the transport refuses the
 * read at once) or -errno (cb will not run): -ENOENT unknown pen,
 * -ENOTCONN not subscribed. */
typedef void (*penmgr_limits_fn)(int err, const struct nl_active_limits *al, void *user_data);
int penmgr_read_limits(struct penmgr *pm, const char *serial, penmgr_limits_fn cb,
		       void *user_data);

const char *penmgr_state_name(enum penmgr_state s);
const char *penmgr_err_name(enum penmgr_err e);
const char *penmgr_alert_name(enum penmgr_alert a);

#endif
