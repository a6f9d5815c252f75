/* SPDX-License-Identifier: MIT */
/*
 * Local radio, central side: connects to a simulated pen's socket and carries
 * GATT operations asynchronously on sd-event.
 *
 * One request is outstanding per link; the rest wait in a FIFO. Each request
 * has a timeout (default 5 s): a timed-out request completes with
 * -ETIMEDOUT, the link is considered broken and dropped (queued requests
 * complete with -ECONNABORTED, then the disconnect handler runs).
 *
 * Requests return an id > 0 (cancel with lradio_client_cancel()) or -errno.
 * Completion callbacks get err = 0 on success, -EREMOTEIO with att_err set
 * when the pen answered an ATT error, or another -errno (-ETIMEDOUT,
 * -ECONNABORTED when the link dropped, -ECANCELED by cancel/disconnect).
 * Each callback runs exactly once, then destroy(user_data) if not NULL; on
 * lradio_client_free() only destroy runs. Callbacks may call any client
 * function, including free. A request call never runs callbacks before it
 * returns; lradio_client_cancel() and lradio_client_disconnect() run the
 * affected callbacks (-ECANCELED) before they return.
 */
#ifndef LRADIO_CLIENT_H
#define LRADIO_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <systemd/sd-event.h>

#include "lradio_wire.h"

struct lradio_client;

#define LRADIO_CLIENT_TIMEOUT_USEC (5ULL * 1000000ULL)

typedef void (*lradio_destroy_fn)(void *user_data);
/* err 0: hello holds the pen's advertisement and link flags. -EBUSY: the pen
 * has another central. */
typedef void (*lradio_connect_cb)(struct lradio_client *c, int err,
                                  const struct lradio_hello *hello, void *user_data);
typedef void (*lradio_mtu_cb)(struct lradio_client *c, int err, uint16_t mtu, void *user_data);
/* attrs in server order, valid during the callback only. */
typedef void (*lradio_discover_cb)(struct lradio_client *c, int err,
                                   const struct lradio_attr *attrs, size_t n, void *user_data);
typedef void (*lradio_read_cb)(struct lradio_client *c, int err, uint8_t att_err,
                               const uint8_t *val, size_t len, void *user_data);
/* Write and CCCD write. */
typedef void (*lradio_status_cb)(struct lradio_client *c, int err, uint8_t att_err,
                                 void *user_data);
/* A notification or indication; an indication is confirmed when this returns. */
typedef void (*lradio_value_fn)(struct lradio_client *c, uint16_t handle, bool indication,
                                const uint8_t *val, size_t len, void *user_data);
/* The link dropped without lradio_client_disconnect(): reason is -ECONNRESET
 * (link loss / socket closed), -ETIMEDOUT, -EPROTO (malformed frame) or
 * -ESHUTDOWN (the pen sent DISCONNECT). */
typedef void (*lradio_disconnect_fn)(struct lradio_client *c, int reason, void *user_data);

int lradio_client_new(sd_event *ev, struct lradio_client **ret);
/* Drops the link, runs destroy for every pending request. Accepts NULL. */
void lradio_client_free(struct lradio_client *c);

/* Connects to the socket at path; cb fires once HELLO (or a refusal, or the
 * timeout) arrives. -EISCONN if connected or connecting. */
int lradio_client_connect(struct lradio_client *c, const char *path, lradio_connect_cb cb,
                          void *user_data, lradio_destroy_fn destroy);
/* Sends DISCONNECT and closes; pending requests complete with -ECANCELED.
 * The disconnect handler does not run. Does nothing when idle. */
void lradio_client_disconnect(struct lradio_client *c);
bool lradio_client_connected(const struct lradio_client *c);

void lradio_client_set_value_handler(struct lradio_client *c, lradio_value_fn fn,
                                     void *user_data);
void lradio_client_set_disconnect_handler(struct lradio_client *c, lradio_disconnect_fn fn,
                                          void *user_data);
/* Per-request timeout for requests queued from now on. */
void lradio_client_set_timeout(struct lradio_client *c, uint64_t usec);

/* Once per link (-EALREADY after); mtu in 23..517. The result is the
 * smaller of mtu and the pen's. */
int lradio_client_exchange_mtu(struct lradio_client *c, uint16_t mtu, lradio_mtu_cb cb,
                               void *user_data, lradio_destroy_fn destroy);
int lradio_client_discover(struct lradio_client *c, lradio_discover_cb cb, void *user_data,
                           lradio_destroy_fn destroy);
int lradio_client_read(struct lradio_client *c, uint16_t handle, lradio_read_cb cb,
                       void *user_data, lradio_destroy_fn destroy);
/* len <= LRADIO_VALUE_MAX (-EMSGSIZE otherwise). */
int lradio_client_write(struct lradio_client *c, uint16_t handle, const uint8_t *val,
                        size_t len, lradio_status_cb cb, void *user_data,
                        lradio_destroy_fn destroy);
/* value: 0, SIM_CCCD_NOTIFY (1) or SIM_CCCD_INDICATE (2) on the value handle. */
int lradio_client_write_cccd(struct lradio_client *c, uint16_t handle, uint16_t value,
                             lradio_status_cb cb, void *user_data, lradio_destroy_fn destroy);
/* Completes the request with -ECANCELED (if it was already sent, its
 * response is ignored). -ENOENT if no such request. */
int lradio_client_cancel(struct lradio_client *c, int id);

/* After a completed discovery: the value handle of the characteristic with
 * this UUID (any case). -ENOENT if absent, -ENODATA before discovery. */
int lradio_client_find_handle(const struct lradio_client *c, const char *uuid,
                              uint16_t *ret_handle);
/* Properties (LRADIO_PROP_*) of a discovered value handle, or -ENOENT. */
int lradio_client_props(const struct lradio_client *c, uint16_t handle);
/* The negotiated ATT MTU (23 before an exchange). */
uint16_t lradio_client_mtu(const struct lradio_client *c);

#endif
