/* SPDX-License-Identifier: MIT */
/* Shared by lradio_server.c and lradio_client.c: a queue of frames waiting
 * for a non-blocking socket to accept them. */
#ifndef LRADIO_INTERNAL_H
#define LRADIO_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

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

#endif
