/* SPDX-License-Identifier: MIT */
#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "lradio-internal.h"

int lradio_txq_push(struct lradio_txq *q, const void *data, size_t len)
{
	struct lradio_txf *f = malloc(sizeof(*f) + len);
	if (!f)
		return -ENOMEM;
	f->next = NULL;
	f->len = len;
	if (len)
		memcpy(f->data, data, len);
	if (q->tail)
		q->tail->next = f;
	else
		q->head = f;
	q->tail = f;
	q->n++;
	return 0;
}

void lradio_txq_splice(struct lradio_txq *dst, struct lradio_txq *src)
{
	if (!src->head)
		return;
	if (dst->tail)
		dst->tail->next = src->head;
	else
		dst->head = src->head;
	dst->tail = src->tail;
	dst->n += src->n;
	src->head = src->tail = NULL;
	src->n = 0;
}

void lradio_txq_clear(struct lradio_txq *q)
{
	struct lradio_txf *f = q->head;
	while (f) {
		struct lradio_txf *next = f->next;
		free(f);
		f = next;
	}
	q->head = q->tail = NULL;
	q->n = 0;
}

int lradio_send_now(int fd, const void *data, size_t len)
{
	for (;;) {
		ssize_t w = send(fd, data, len, MSG_DONTWAIT | MSG_NOSIGNAL);
		if (w >= 0)
			return 0; /* SOCK_SEQPACKET: all or nothing */
		if (errno == EINTR)
			continue;
		return errno == EWOULDBLOCK ? -EAGAIN : -errno;
	}
}

/* Frames handed to one sendmmsg(). */
#define TX_BATCH 16

int lradio_txq_flush(struct lradio_txq *q, int fd)
{
	struct mmsghdr msg[TX_BATCH];
	struct iovec iov[TX_BATCH];

	while (q->head) {
		unsigned n = 0;
		for (struct lradio_txf *f = q->head; f && n < TX_BATCH; f = f->next, n++) {
			iov[n] = (struct iovec){.iov_base = f->data, .iov_len = f->len};
			msg[n] = (struct mmsghdr){.msg_hdr = {.msg_iov = &iov[n], .msg_iovlen = 1}};
		}
		/* Sends a prefix of the batch; an error after the first frame is
		 * dropped by the kernel and comes back on the next call. */
		int r = sendmmsg(fd, msg, n, MSG_DONTWAIT | MSG_NOSIGNAL);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return errno == EWOULDBLOCK ? -EAGAIN : -errno;
		}
		for (int i = 0; i < r; i++) { /* SOCK_SEQPACKET: all or nothing */
			struct lradio_txf *f = q->head;
			q->head = f->next;
			if (!q->head)
				q->tail = NULL;
			q->n--;
			free(f);
		}
	}
	return 0;
}

int lradio_rxb_ensure(struct lradio_rxb **b)
{
	if (*b)
		return 0;
	/* malloc, not calloc: pages are touched only as frames fill them. */
	*b = malloc(sizeof(**b));
	return *b ? 0 : -ENOMEM;
}

int lradio_rxb_recv(struct lradio_rxb *b, int fd, unsigned max)
{
	assert(max > 0);
	if (max > LRADIO_RX_BATCH)
		max = LRADIO_RX_BATCH;
	for (unsigned i = 0; i < max; i++) {
		b->iov[i] = (struct iovec){.iov_base = b->frame[i], .iov_len = sizeof(b->frame[i])};
		b->msg[i] = (struct mmsghdr){.msg_hdr = {.msg_iov = &b->iov[i], .msg_iovlen = 1}};
	}
	/* MSG_TRUNC: msg_len is the frame's real length even when cut short. */
	int n = recvmmsg(fd, b->msg, max, MSG_DONTWAIT | MSG_TRUNC, NULL);
	if (n < 0)
		return errno == EWOULDBLOCK ? -EAGAIN : -errno;
	return n;
}
