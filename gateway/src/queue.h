/* SPDX-License-Identifier: MIT */
/*
 * Cross-thread message queue into the sd-event loop.
 *
 * Foreign threads (Paho's) push owned messages; the loop thread drains them
 * in FIFO order and hands each to the handler. Pushing takes a mutex, appends
 * and writes an eventfd; the loop's IO source on that eventfd swaps the whole
 * list out under the mutex and runs the handler on each message with the
 * mutex released, so a handler may push again.
 *
 * Ownership: queue_push() takes the message; the handler owns it afterwards
 * (it must free it, typically with the same function given as free_msg).
 * Messages still queued when the queue is freed are passed to free_msg.
 */
#ifndef NLGW_QUEUE_H
#define NLGW_QUEUE_H

#include <stddef.h>
#include <systemd/sd-event.h>

struct queue;

typedef void (*queue_handler_t)(void *msg, void *userdata);
typedef void (*queue_free_t)(void *msg);

/* Creates a queue attached to loop e (reference taken). handler runs on the
 * loop thread. free_msg may be NULL (messages are then leaked at free: only
 * for messages that own nothing). Returns 0 or -errno. */
int queue_new(sd_event *e, queue_handler_t handler, queue_free_t free_msg,
	      void *userdata, struct queue **ret);

/* Any thread. Appends msg (not NULL) and wakes the loop. On failure
 * (-ENOMEM, or -ESHUTDOWN once queue_close() ran) the caller keeps msg. */
int queue_push(struct queue *q, void *msg);

/* Loop thread. Runs the handler on everything queued so far now, without
 * waiting for the loop. Returns the number of messages handled. */
int queue_drain(struct queue *q);

/* Messages waiting (any thread; a snapshot). */
size_t queue_length(struct queue *q);

/* Loop thread. Refuses further pushes, frees queued messages. */
void queue_close(struct queue *q);

/* Loop thread. The caller guarantees no thread pushes any more (for Paho:
 * after MQTTAsync_destroy). Accepts NULL. */
void queue_free(struct queue *q);

#endif
