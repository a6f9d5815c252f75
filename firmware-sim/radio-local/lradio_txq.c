/* SPDX-License-Identifier: MIT */
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

int lradio_txq_flush(struct lradio_txq *q, int fd)
{
	while (q->head) {
		struct lradio_txf *f = q->head;
		int r = lradio_send_now(fd, f->data, f->len);
		if (r < 0)
			return r;
		q->head = f->next;
		if (!q->head)
			q->tail = NULL;
		q->n--;
		free(f);
	}
	return 0;
}
