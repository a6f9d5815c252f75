/* SPDX-License-Identifier: MIT */
/*
 * Local radio, pen side: a GATT server reachable over a Unix SOCK_SEQPACKET
 * socket at DIR/<serial>.sock, driven by sd-event.
 *
 * The server accepts one central at a time (a second one receives
 * DISCONNECT(busy) and is closed), maps value handles to enum sim_chr, calls
 * the pen's struct sim_gatt_server_ops and implements struct sim_radio_ops
 * for the pen. Nothing in here blocks: frames that cannot be sent at once
 * are queued (bounded); a central that stops reading loses its link.
 *
 * Pen callbacks: connected(pen, mtu) fires on the central's first request
 * (normally MTU_REQ, so mtu is the negotiated one; 23 otherwise; a later
 * exchange is visible through lradio_server_mtu()) and disconnected(pen)
 * once per connected(), always from the event loop, never from inside a
 * radio op the pen called. Notifications or indications the pen sends from
 * inside read/write/cccd go out after that request's response.
 * A pen must not call lradio_server_free() from inside a callback.
 */
#ifndef LRADIO_SERVER_H
#define LRADIO_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <systemd/sd-event.h>

#include "lradio_wire.h"
#include "sim/gatt.h"

struct lradio_server;

/* Defaults. */
#define LRADIO_SERVER_TXQ_MAX 256        /* frames queued towards the central */
#define LRADIO_SERVER_INDQ_MAX 32        /* indications queued per characteristic */
#define LRADIO_SERVER_CONFIRM_TIMEOUT_USEC (30ULL * 1000000ULL) /* ATT: 30 s */

/* Creates DIR (mode 0700) if missing, writes DIR/<serial>.adv atomically and
 * listens on DIR/<serial>.sock (a stale socket file is replaced). The server
 * starts in range. adv is copied; adv->serial names the files. ops and pen
 * must outlive the server. Returns 0, -EINVAL (bad adv), -EADDRINUSE (a live
 * server already listens there), or -errno. */
int lradio_server_new(sd_event *ev, const char *dir, const struct lradio_adv *adv,
                      const struct sim_gatt_server_ops *ops, void *pen,
                      struct lradio_server **ret);
/* Drops the link, removes the socket and .adv files. Calls no pen callback
 * (disconnected() is not called: the pen is going away). Accepts NULL. */
void lradio_server_free(struct lradio_server *s);

/* The radio ops the pen calls; their void *radio argument is the server.
 * Besides the codes of sim/gatt.h, notify/indicate return -ENOBUFS when the
 * queue is full: for notify the link is then dropped (the central stopped
 * reading); for indicate, LRADIO_SERVER_INDQ_MAX wait on that characteristic. */
const struct sim_radio_ops *lradio_server_radio_ops(void);

/* In range: the socket and .adv exist. Out of range: the link drops as a
 * link loss (no DISCONNECT frame; the central sees the socket close), the
 * .sock and .adv files are removed. Back in range re-creates them. */
int lradio_server_set_in_range(struct lradio_server *s, bool in_range);
bool lradio_server_in_range(const struct lradio_server *s);

/* Security: the local radio counts as an encrypted, authenticated link
 * (default true). When false, SIM_PROP_SECURE characteristics answer ATT
 * 0x05 (insufficient authentication) to read, write and CCCD write. Applies
 * from the next connection on (HELLO carries it). */
void lradio_server_set_secure(struct lradio_server *s, bool secure);
/* Updates the advertised RSSI: .adv is rewritten atomically. */
int lradio_server_set_rssi(struct lradio_server *s, int8_t rssi);

bool lradio_server_connected(const struct lradio_server *s);
/* ATT MTU of the current link (23 until exchanged). */
uint16_t lradio_server_mtu(const struct lradio_server *s);
/* Absolute path of the listening socket (valid while the server lives). */
const char *lradio_server_path(const struct lradio_server *s);

/* Tuning (tests, fault injection). */
void lradio_server_set_txq_max(struct lradio_server *s, size_t frames);
void lradio_server_set_confirm_timeout(struct lradio_server *s, uint64_t usec);

/* Fault injection. */
/* Silent: requests are read and dropped, never answered (a hung peer). */
void lradio_server_set_silent(struct lradio_server *s, bool silent);
/* Sends len arbitrary bytes as one datagram (corrupt frames).
 * 0, -ENOTCONN, -EMSGSIZE (len > LRADIO_FRAME_MAX) or -ENOBUFS. */
int lradio_server_send_raw(struct lradio_server *s, const void *frame, size_t len);
/* A notification with no CCCD check and no MTU truncation (oversized or
 * garbage values). 0, -ENOTCONN, -EMSGSIZE or -ENOBUFS. */
int lradio_server_notify_raw(struct lradio_server *s, enum sim_chr chr, const uint8_t *val,
                             size_t len);

/* Handle of chr's value in this server's database (stable, see docs). */
uint16_t lradio_server_handle(enum sim_chr chr);

#endif
