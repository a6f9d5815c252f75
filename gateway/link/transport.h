/* SPDX-License-Identifier: MIT */
/*
 * The gateway's radio interface: one ops table per backend ("sim" over the
 * simulator's local radio, later "bluez"), a NULL-terminated registry of
 * backends looked up by name, and ONE upward event sink.
 *
 * Everything runs on the sd-event loop thread the transport was created on.
 * Transports never log: they return -errno and report events.
 *
 * Devices are named by an address string chosen by the backend (the sim
 * backend uses the pen's socket name, i.e. its serial; BlueZ will use the
 * device object path). Characteristics are named by the value handle that
 * discovery returned.
 *
 * Asynchronous calls take (callback, user_data, destroy) and return an id
 * > 0 that transport_cancel() accepts, or 0 on failure (nothing is called
 * then, not even destroy). The callback runs exactly once, never from inside
 * the call that queued it, then destroy(user_data) if not NULL. A cancelled
 * request's callback does not run; only destroy does.
 *
 * Error values in callbacks and events: 0, -EREMOTEIO with att_err set (the
 * pen answered an ATT error), -ETIMEDOUT, -ECONNREFUSED (the pen refused or
 * has another central), -ECONNRESET (link loss), -EPROTO (malformed
 * traffic), -ESHUTDOWN (the pen disconnected), -ECONNABORTED (the link went
 * away while the request was queued), -ENOTCONN, or another -errno.
 * transport_err_class() sorts them for reconnection policy.
 */
#ifndef NLGW_TRANSPORT_H
#define NLGW_TRANSPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <systemd/sd-event.h>

#define TRANSPORT_ADDR_MAX 128
#define TRANSPORT_NAME_MAX 32
#define TRANSPORT_SERIAL_MAX 32
#define TRANSPORT_UUID_STR_LEN 36
#define TRANSPORT_UUIDS_MAX 4
#define TRANSPORT_RSSI_UNKNOWN 127

/* Characteristic properties, as returned by discovery. */
enum transport_prop {
	TRANSPORT_PROP_READ = 1u << 0,
	TRANSPORT_PROP_WRITE = 1u << 1, /* write with response */
	TRANSPORT_PROP_NOTIFY = 1u << 2,
	TRANSPORT_PROP_INDICATE = 1u << 3,
};

/* How an error should be treated by whoever reconnects. */
enum transport_err_class {
	TRANSPORT_ERR_NONE = 0,
	TRANSPORT_ERR_TIMEOUT,   /* no answer in time, or a silent link */
	TRANSPORT_ERR_REFUSED,   /* the pen refused, is busy or gone */
	TRANSPORT_ERR_LINK_LOSS, /* the link dropped (range, power) */
	TRANSPORT_ERR_PROTOCOL,  /* malformed traffic, protocol violation */
	TRANSPORT_ERR_ATT,       /* the pen answered an ATT error */
	TRANSPORT_ERR_LOCAL,     /* our side failed (memory, fds) */
	TRANSPORT_ERR_CLASS_COUNT
};

/* One discovered characteristic; service_uuid is that of its service. */
struct transport_chr {
	uint16_t handle; /* value handle */
	uint8_t props;   /* enum transport_prop */
	char uuid[TRANSPORT_UUID_STR_LEN + 1];         /* lower case */
	char service_uuid[TRANSPORT_UUID_STR_LEN + 1]; /* lower case */
};

enum transport_event_type {
	TRANSPORT_EVENT_DEVICE_FOUND,  /* new, or its advertisement changed */
	TRANSPORT_EVENT_DEVICE_LOST,   /* out of range */
	TRANSPORT_EVENT_CONNECTED,
	TRANSPORT_EVENT_DISCONNECTED,  /* not after transport_disconnect() */
	TRANSPORT_EVENT_VALUE,         /* a notification or indication */
};

struct transport_event {
	enum transport_event_type type;
	const char *addr;
	union {
		struct {
			const char *serial; /* "" when the advertisement has none */
			const char *name;   /* "" when unknown */
			int rssi;           /* dBm, TRANSPORT_RSSI_UNKNOWN */
			size_t n_uuids;
			const char *const *uuids; /* service UUIDs, lower case */
		} found;
		struct {
			int reason; /* -errno, see above */
			enum transport_err_class cls;
		} disconnected;
		struct {
			uint16_t handle;
			bool indication; /* confirmed when the sink returns */
			const uint8_t *val;
			size_t len;
		} value;
	} u;
};

/* Strings and buffers in ev are valid during the call only. */
typedef void (*transport_event_fn)(const struct transport_event *ev, void *user_data);

typedef void (*transport_destroy_fn)(void *user_data);
/* connect, write, subscribe: err 0 or -errno; att_err when -EREMOTEIO. */
typedef void (*transport_status_fn)(int err, uint8_t att_err, void *user_data);
typedef void (*transport_mtu_fn)(int err, uint16_t mtu, void *user_data);
/* chrs valid during the call only. */
typedef void (*transport_discover_fn)(int err, const struct transport_chr *chrs, size_t n,
				      void *user_data);
typedef void (*transport_read_fn)(int err, uint8_t att_err, const uint8_t *val, size_t len,
				  void *user_data);

struct transport_config {
	const char *sim_dir; /* sim: directory of pen sockets; NULL: default */
	const char *adapter; /* bluez: "hci0" */
	uint64_t request_timeout_usec; /* 0: backend default */
};

struct transport;

/* A backend. priv is what init returned. Ops a backend lacks are NULL
 * (the wrappers then fail with -EOPNOTSUPP / 0). */
struct transport_ops {
	const char *name;
	const char *desc;
	int (*init)(struct transport *t, sd_event *ev, const struct transport_config *cfg,
		    void **ret_priv);
	void (*deinit)(void *priv);
	int (*scan_start)(void *priv);
	void (*scan_stop)(void *priv);
	unsigned (*connect)(void *priv, const char *addr, transport_status_fn cb,
			    void *user_data, transport_destroy_fn destroy);
	/* Drops the link now. Pending requests are cancelled (callbacks do
	 * not run, destroy does); no DISCONNECTED event follows. */
	void (*disconnect)(void *priv, const char *addr);
	unsigned (*exchange_mtu)(void *priv, const char *addr, uint16_t mtu,
				 transport_mtu_fn cb, void *user_data,
				 transport_destroy_fn destroy);
	unsigned (*discover)(void *priv, const char *addr, transport_discover_fn cb,
			     void *user_data, transport_destroy_fn destroy);
	unsigned (*read)(void *priv, const char *addr, uint16_t handle, transport_read_fn cb,
			 void *user_data, transport_destroy_fn destroy);
	unsigned (*write)(void *priv, const char *addr, uint16_t handle, const uint8_t *val,
			  size_t len, transport_status_fn cb, void *user_data,
			  transport_destroy_fn destroy);
	/* value: 0, 1 (notify) or 2 (indicate), written to the CCCD. */
	unsigned (*subscribe)(void *priv, const char *addr, uint16_t handle, uint16_t value,
			      transport_status_fn cb, void *user_data,
			      transport_destroy_fn destroy);
	int (*cancel)(void *priv, unsigned id);
	/* The negotiated ATT MTU, 0 when not connected. */
	uint16_t (*mtu)(void *priv, const char *addr);
};

/* NULL-terminated, in order of preference. */
extern const struct transport_ops *const transport_backends[];
extern const struct transport_ops transport_sim_ops;

/* The backend called name, or NULL. */
const struct transport_ops *transport_find(const char *name);

/* Creates a transport on backend name. Returns 0, -ENOENT (no such
 * backend), or what the backend's init returns. */
int transport_new(sd_event *ev, const char *name, const struct transport_config *cfg,
		  struct transport **ret);
/* Drops every link (no events), runs destroy of pending requests. NULL ok. */
void transport_free(struct transport *t);
const char *transport_name(const struct transport *t);

/* The single upward sink; replaces the previous one. fn may be NULL. */
void transport_set_sink(struct transport *t, transport_event_fn fn, void *user_data);
/* Backends report through this. */
void transport_emit(struct transport *t, const struct transport_event *ev);

int transport_scan_start(struct transport *t);
void transport_scan_stop(struct transport *t);
unsigned transport_connect(struct transport *t, const char *addr, transport_status_fn cb,
			   void *user_data, transport_destroy_fn destroy);
void transport_disconnect(struct transport *t, const char *addr);
unsigned transport_exchange_mtu(struct transport *t, const char *addr, uint16_t mtu,
				transport_mtu_fn cb, void *user_data,
				transport_destroy_fn destroy);
unsigned transport_discover(struct transport *t, const char *addr, transport_discover_fn cb,
			    void *user_data, transport_destroy_fn destroy);
unsigned transport_read(struct transport *t, const char *addr, uint16_t handle,
			transport_read_fn cb, void *user_data, transport_destroy_fn destroy);
unsigned transport_write(struct transport *t, const char *addr, uint16_t handle,
			 const uint8_t *val, size_t len, transport_status_fn cb, void *user_data,
			 transport_destroy_fn destroy);
unsigned transport_subscribe(struct transport *t, const char *addr, uint16_t handle,
			     uint16_t value, transport_status_fn cb, void *user_data,
			     transport_destroy_fn destroy);
/* 0, or -ENOENT when id is not pending. */
int transport_cancel(struct transport *t, unsigned id);
uint16_t transport_mtu(struct transport *t, const char *addr);

enum transport_err_class transport_err_class(int err);
const char *transport_err_class_name(enum transport_err_class c);
const char *transport_event_type_name(enum transport_event_type t);

#endif
