/* SPDX-License-Identifier: MIT */
#include "helper-sched.h"

#include <pthread.h>
#include <sched.h>
#include <string.h>

#include "log.h"

static bool set_policy(int from, int to)
{
	struct sched_param p = { .sched_priority = 0 };
	int policy, r;

	r = pthread_getschedparam(pthread_self(), &policy, &p);
	if (r != 0 || policy != from)
		return false;
	p.sched_priority = 0;
	r = pthread_setschedparam(pthread_self(), to, &p);
	if (r != 0) {
		/* Not fatal: the thread only keeps preempting the loop. */
		log_debug("sched: cannot switch a thread to %s: %s",
			  to == SCHED_BATCH ? "SCHED_BATCH" : "SCHED_OTHER", strerror(r));
		return false;
	}
	return true;
}

bool helper_sched_begin(void)
{
	return set_policy(SCHED_OTHER, SCHED_BATCH);
}

void helper_sched_end(bool switched)
{
	if (switched)
		(void)set_policy(SCHED_BATCH, SCHED_OTHER);
}
