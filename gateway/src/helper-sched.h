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
 *
 * Placement ([gateway] cpu): the loop and Paho's two threads hand every
 * publish and every PUBACK to each other through Paho's mutexes and
 * condition variables. On different CPUs each handoff is a cross-CPU wakeup
 * and the loop's pump runs alongside the send thread's socket writes,
 * contending for Paho's client mutex; on one CPU neither happens. So the
 * loop thread is bound to one CPU before any thread starts, Paho's threads
 * inherit that, and the syncer, which mostly waits for the disk, takes back
 * every CPU the daemon had.
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

/* Which CPU spec ("auto", "none" or a CPU number) names among the CPUs the
 * process may use: -1 for none (also "auto" or that CPU when only one is
 * allowed: nothing to bind). "auto" is the highest-numbered allowed CPU
 * (CPU 0 takes most device interrupts). Returns 0, -EINVAL for a spec that
 * is none of these, -ENXIO for a CPU the process may not use. */
int helper_sched_resolve(const char *spec, int *ret_cpu);

/* Loop thread, before any other thread starts: binds the calling thread to
 * cpu (>= 0; from helper_sched_resolve()), remembering the CPUs it had for
 * helper_sched_unbind(). Returns 0 or -errno. */
int helper_sched_bind(int cpu);

/* A helper thread started after helper_sched_bind() that should not stay
 * on the loop's CPU: gives it back the CPUs the process had. */
void helper_sched_unbind(void);

#endif
