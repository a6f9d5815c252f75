/* SPDX-License-Identifier: MIT */
/* queue: messages pushed by several threads all reach the loop thread, in
 * each thread's order; close refuses pushes; free releases what is left. */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>

#include "check.h"
#include "queue.h"

#define THREADS 4
#define PER_THREAD 20000

struct msg {
	int thread;
	int seq;
};

static struct queue *q;
static pthread_t loop_thread;
static int next_seq[THREADS];
static int received;
static bool done;
static atomic_int freed;

static void handler(void *p, void *userdata)
{
	struct msg *m = p;

	/* Handlers run on the loop thread only. */
	CHECK(pthread_equal(pthread_self(), loop_thread));
	CHECK(m->thread >= 0 && m->thread < THREADS);
	CHECK_INT(m->seq, next_seq[m->thread]);
	next_seq[m->thread]++;
	received++;
	if (received == THREADS * PER_THREAD)
		done = true;
	free(m);
}

static void count_free(void *p)
{
	atomic_fetch_add(&freed, 1);
	free(p);
}

static void *producer(void *arg)
{
	int t = (int)(intptr_t)arg;

	for (int i = 0; i < PER_THREAD; i++) {
		struct msg *m = malloc(sizeof(*m));
		CHECK(m);
		m->thread = t;
		m->seq = i;
		CHECK_INT(queue_push(q, m), 0);
	}
	return NULL;
}

int main(void)
{
	pthread_t th[THREADS];
	sd_event *e;

	loop_thread = pthread_self();
	CHECK(sd_event_new(&e) >= 0);
	CHECK_INT(queue_new(e, handler, count_free, NULL, &q), 0);
	CHECK_INT(queue_push(q, NULL), -EINVAL);
	for (int t = 0; t < THREADS; t++)
		CHECK(pthread_create(&th[t], NULL, producer, (void *)(intptr_t)t) == 0);
	run_until(e, &done, 120, "queue drain");
	for (int t = 0; t < THREADS; t++)
		CHECK(pthread_join(th[t], NULL) == 0);
	CHECK_INT(received, THREADS * PER_THREAD);
	for (int t = 0; t < THREADS; t++)
		CHECK_INT(next_seq[t], PER_THREAD);
	CHECK_INT(queue_length(q), 0);
	CHECK_INT(atomic_load(&freed), 0);

	/* Left in the queue at free: released through free_msg. */
	for (int i = 0; i < 3; i++) {
		struct msg *m = calloc(1, sizeof(*m));
		CHECK(m);
		CHECK_INT(queue_push(q, m), 0);
	}
	CHECK_INT(queue_length(q), 3);
	queue_close(q);
	CHECK_INT(atomic_load(&freed), 3);
	{
		struct msg m = { 0 };
		CHECK_INT(queue_push(q, &m), -ESHUTDOWN);
	}
	queue_free(q);

	/* queue_drain() runs queued messages without the loop. */
	CHECK_INT(queue_new(e, handler, count_free, NULL, &q), 0);
	{
		struct msg *m = calloc(1, sizeof(*m));
		CHECK(m);
		m->thread = 0;
		m->seq = next_seq[0];
		CHECK_INT(queue_push(q, m), 0);
		CHECK_INT(queue_drain(q), 1);
		CHECK_INT(next_seq[0], PER_THREAD + 1);
	}
	queue_free(q);
	sd_event_unref(e);
	printf("test-queue: ok\n");
	return 0;
}
