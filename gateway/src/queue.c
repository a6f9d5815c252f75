/* SPDX-License-Identifier: MIT */
#include "queue.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <unistd.h>

struct queue_node {
	struct queue_node *next;
	void *msg;
};

struct queue {
	pthread_mutex_t lock;
	struct queue_node *head, *tail; /* under lock */
	size_t length;                  /* under lock */
	bool closed;                    /* under lock */
	int efd;
	sd_event *event;
	sd_event_source *source;
	queue_handler_t handler;
	queue_free_t free_msg;
	void *userdata;
};

static void free_list(struct queue *q, struct queue_node *n)
{
	while (n) {
		struct queue_node *next = n->next;
		if (q->free_msg)
			q->free_msg(n->msg);
		free(n);
		n = next;
	}
}

static struct queue_node *take_all(struct queue *q)
{
	struct queue_node *list;

	pthread_mutex_lock(&q->lock);
	list = q->head;
	q->head = q->tail = NULL;
	q->length = 0;
	pthread_mutex_unlock(&q->lock);
	return list;
}

int queue_drain(struct queue *q)
{
	uint64_t count;
	int handled = 0;

	/* Reset the eventfd first: a push after this read wakes us again, so
	 * nothing pushed after take_all() can be stranded. */
	while (read(q->efd, &count, sizeof(count)) < 0 && errno == EINTR)
		;
	for (struct queue_node *n = take_all(q); n;) {
		struct queue_node *next = n->next;
		void *msg = n->msg;
		free(n);
		q->handler(msg, q->userdata);
		handled++;
		n = next;
	}
	return handled;
}

static int on_eventfd(sd_event_source *s, int fd, uint32_t revents, void *userdata)
{
	queue_drain(userdata);
	return 0;
}

int queue_new(sd_event *e, queue_handler_t handler, queue_free_t free_msg,
	      void *userdata, struct queue **ret)
{
	struct queue *q;
	int r;

	if (!e || !handler || !ret)
		return -EINVAL;
	q = calloc(1, sizeof(*q));
	if (!q)
		return -ENOMEM;
	q->efd = -1;
	r = pthread_mutex_init(&q->lock, NULL);
	if (r != 0) {
		free(q);
		return -r;
	}
	q->handler = handler;
	q->free_msg = free_msg;
	q->userdata = userdata;
	q->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (q->efd < 0) {
		r = -errno;
		goto fail;
	}
	r = sd_event_add_io(e, &q->source, q->efd, EPOLLIN, on_eventfd, q);
	if (r < 0)
		goto fail;
	(void)sd_event_source_set_description(q->source, "queue");
	q->event = sd_event_ref(e);
	*ret = q;
	return 0;
fail:
	queue_free(q);
	return r;
}

int queue_push(struct queue *q, void *msg)
{
	struct queue_node *n;
	uint64_t one = 1;
	bool wake;

	if (!q || !msg)
		return -EINVAL;
	n = malloc(sizeof(*n));
	if (!n)
		return -ENOMEM;
	n->next = NULL;
	n->msg = msg;

	pthread_mutex_lock(&q->lock);
	if (q->closed) {
		pthread_mutex_unlock(&q->lock);
		free(n);
		return -ESHUTDOWN;
	}
	if (q->tail)
		q->tail->next = n;
	else
		q->head = n;
	q->tail = n;
	/* Only the push that makes the list non-empty needs to wake the loop. */
	wake = (q->length++ == 0);
	pthread_mutex_unlock(&q->lock);

	if (wake) {
		/* Cannot fail short of EAGAIN at 2^64-2, which still leaves the
		 * fd readable. */
		while (write(q->efd, &one, sizeof(one)) < 0 && errno == EINTR)
			;
	}
	return 0;
}

size_t queue_length(struct queue *q)
{
	size_t n;

	pthread_mutex_lock(&q->lock);
	n = q->length;
	pthread_mutex_unlock(&q->lock);
	return n;
}

void queue_close(struct queue *q)
{
	if (!q)
		return;
	pthread_mutex_lock(&q->lock);
	q->closed = true;
	pthread_mutex_unlock(&q->lock);
	free_list(q, take_all(q));
}

void queue_free(struct queue *q)
{
	if (!q)
		return;
	free_list(q, take_all(q));
	sd_event_source_disable_unref(q->source);
	if (q->efd >= 0)
		close(q->efd);
	sd_event_unref(q->event);
	pthread_mutex_destroy(&q->lock);
	free(q);
}
