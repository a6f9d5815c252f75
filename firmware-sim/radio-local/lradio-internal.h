/* SPDX-License-Identifier: MIT */
/* Shared by lradio_server.c and lradio_client.c: a queue of frames waiting
 * for a non-blocking socket to accept them, and a batch of received ones. */
#ifndef LRADIO_INTERNAL_H
#define LRADIO_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "lradio_wire.h"

struct lradio_txf {
	struct lradio_txf *next;
	size_t len;
	uint8_t data[];
};

struct lradio_txq {
	struct lradio_txf *head, *tail;
	size_t n;
};

/* Copies the frame to the tail. 0 or -ENOMEM. */
int lradio_txq_push(struct lradio_txq *q, const void *data, size_t len);
/* Moves every frame of src to the tail of dst. */
void lradio_txq_splice(struct lradio_txq *dst, struct lradio_txq *src);
void lradio_txq_clear(struct lradio_txq *q);
/* Sends frames from the head without blocking: 0 when the queue is empty,
 * -EAGAIN when the socket is full, another -errno when the link is gone. */
int lradio_txq_flush(struct lradio_txq *q, int fd);
/* One datagram, MSG_DONTWAIT | MSG_NOSIGNAL: 0 or -errno. */
int lradio_send_now(int fd, const void *data, size_t len);

/* Frames read by one recvmmsg(). About 17 KiB: one per link, allocated
 * when the link starts, kept until the object goes. */
#define LRADIO_RX_BATCH 16

struct lradio_rxb {
	struct mmsghdr msg[LRADIO_RX_BATCH];
	struct iovec iov[LRADIO_RX_BATCH];
	uint8_t frame[LRADIO_RX_BATCH][LRADIO_FRAME_MAX];
};

/* Allocates *b unless it is already there: 0 or -ENOMEM. */
int lradio_rxb_ensure(struct lradio_rxb **b);
/* Reads up to max (1..LRADIO_RX_BATCH) frames without blocking: how many
 * (> 0), -EAGAIN when none is waiting, another -errno (-EINTR included).
 * An end of file reads as a frame of length 0. */
int lradio_rxb_recv(struct lradio_rxb *b, int fd, unsigned max);
/* Length of frame i of the last batch as sent: more than LRADIO_FRAME_MAX
 * when it did not fit (its data then is cut short). */
static inline size_t lradio_rxb_len(const struct lradio_rxb *b, unsigned i)
{
	if (b->msg[i].msg_hdr.msg_flags & MSG_TRUNC)
		return b->msg[i].msg_len > LRADIO_FRAME_MAX ? b->msg[i].msg_len
		                                            : LRADIO_FRAME_MAX + 1;
	return b->msg[i].msg_len;
}

#endif
