/* SPDX-License-Identifier: MIT */
#include "helper-sched.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
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

/* Written by the loop thread before it starts the threads that read it. */
static cpu_set_t allowed_before;
static bool bound;

int helper_sched_resolve(const char *spec, int *ret_cpu)
{
	cpu_set_t set;
	int cpu = -1;

	if (!spec || !ret_cpu)
		return -EINVAL;
	if (strcmp(spec, "none") != 0 && strcmp(spec, "auto") != 0) {
		char *end = NULL;
		long v;

		if (spec[0] < '0' || spec[0] > '9') /* no sign, no blank */
			return -EINVAL;
		errno = 0;
		v = strtol(spec, &end, 10);
		if (errno || *end || v >= CPU_SETSIZE)
			return -EINVAL;
		cpu = (int)v;
	}
	*ret_cpu = -1;
	if (strcmp(spec, "none") == 0)
		return 0;
	if (sched_getaffinity(0, sizeof(set), &set) < 0)
		return -errno;
	if (cpu >= 0 && !CPU_ISSET(cpu, &set))
		return -ENXIO;
	if (CPU_COUNT(&set) < 2)
		return 0;
	if (cpu < 0)
		for (int i = CPU_SETSIZE - 1; i >= 0 && cpu < 0; i--)
			if (CPU_ISSET(i, &set))
				cpu = i;
	*ret_cpu = cpu;
	return 0;
}

int helper_sched_bind(int cpu)
{
	cpu_set_t one;
	int r;

	if (cpu < 0 || cpu >= CPU_SETSIZE)
		return -EINVAL;
	r = pthread_getaffinity_np(pthread_self(), sizeof(allowed_before), &allowed_before);
	if (r != 0)
		return -r;
	CPU_ZERO(&one);
	CPU_SET(cpu, &one);
	r = pthread_setaffinity_np(pthread_self(), sizeof(one), &one);
	if (r != 0)
		return -r;
	bound = true;
	return 0;
}

void helper_sched_unbind(void)
{
	int r;

	if (!bound)
		return;
	r = pthread_setaffinity_np(pthread_self(), sizeof(allowed_before), &allowed_before);
	if (r != 0)
		log_debug("sched: cannot give a helper thread its CPUs back: %s", strerror(r));
}
