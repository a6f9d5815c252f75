/* SPDX-License-Identifier: MIT */
/*
 * Scheduling of the daemon's helper threads.
 *
 * One thread owns the state and runs the event loop; the helpers (the
 * journal's WAL syncer, Paho's send and receive threads) only hand work to
 * it or take work from it. Each of them wakes thousands of times a second
 * (a sync done, a packet written, a PUBACK read), and under the default
 * policy a thread that wakes on the loop's CPU preempts the loop there, in
 * the middle of a pen's records or an outbox pump. Helpers therefore run
 * SCHED_BATCH: the same share of CPU, and the same place in the queue, but
 * a wakeup never preempts a running thread (sched(7)).
 *
 * Only a thread running SCHED_OTHER is switched: a policy an administrator
 * set on the whole daemon (a real-time one, say, in the unit) is left to
 * every thread as it is.
 */
#ifndef NLGW_HELPER_SCHED_H
#define NLGW_HELPER_SCHED_H

#include <stdbool.h>

/* Switches the calling thread to SCHED_BATCH if it runs SCHED_OTHER.
 * Threads it creates afterwards inherit the policy. Returns true if it
 * switched (pass that to helper_sched_end()). */
bool helper_sched_begin(void);

/* Switches the calling thread back to SCHED_OTHER if begin switched it. */
void helper_sched_end(bool switched);

#endif
