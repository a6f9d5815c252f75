/* SPDX-License-Identifier: MIT */
/* helper-sched: the policy of helper threads and the placement of the loop
 * ([gateway] cpu), checked on the threads of this process. */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>

#include "check.h"
#include "helper-sched.h"

static cpu_set_t thread_cpus(void)
{
	cpu_set_t s;

	CHECK_INT(pthread_getaffinity_np(pthread_self(), sizeof(s), &s), 0);
	return s;
}

static int policy(void)
{
	struct sched_param p;
	int pol;

	CHECK_INT(pthread_getschedparam(pthread_self(), &pol, &p), 0);
	return pol;
}

static void test_policy(void)
{
	bool switched;

	CHECK_INT(policy(), SCHED_OTHER);
	switched = helper_sched_begin();
	CHECK(switched);
	CHECK_INT(policy(), SCHED_BATCH);
	/* Already not SCHED_OTHER: left alone, and end() leaves it too. */
	CHECK(!helper_sched_begin());
	helper_sched_end(false);
	CHECK_INT(policy(), SCHED_BATCH);
	helper_sched_end(switched);
	CHECK_INT(policy(), SCHED_OTHER);
}

static void test_resolve(const cpu_set_t *all)
{
	int cpu = 42, highest = -1, absent = -1;
	char spec[16];

	for (int i = 0; i < CPU_SETSIZE; i++) {
		if (CPU_ISSET(i, all))
			highest = i;
		else if (absent < 0)
			absent = i;
	}
	CHECK_INT(helper_sched_resolve("none", &cpu), 0);
	CHECK_INT(cpu, -1);
	cpu = 42;
	CHECK_INT(helper_sched_resolve("auto", &cpu), 0);
	/* One CPU allowed: nothing to bind. */
	CHECK_INT(cpu, CPU_COUNT(all) > 1 ? highest : -1);
	snprintf(spec, sizeof(spec), "%d", highest);
	CHECK_INT(helper_sched_resolve(spec, &cpu), 0);
	CHECK_INT(cpu, CPU_COUNT(all) > 1 ? highest : -1);
	snprintf(spec, sizeof(spec), "%d", absent);
	CHECK_INT(helper_sched_resolve(spec, &cpu), -ENXIO);
	const char *bad[] = { "", "-1", "1.5", "x", "2x", "99999", "AUTO", " 1", "+1" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++)
		CHECK_INT(helper_sched_resolve(bad[i], &cpu), -EINVAL);
}

struct seen {
	cpu_set_t inherited, unbound;
};

static void *helper_main(void *userdata)
{
	struct seen *s = userdata;

	s->inherited = thread_cpus();
	helper_sched_unbind();
	s->unbound = thread_cpus();
	return NULL;
}

static void test_bind(const cpu_set_t *all)
{
	struct seen s;
	pthread_t t;
	cpu_set_t one;
	int cpu = -1;

	for (int i = CPU_SETSIZE - 1; i >= 0 && cpu < 0; i--)
		if (CPU_ISSET(i, all))
			cpu = i;
	CHECK(cpu >= 0);
	CHECK_INT(helper_sched_bind(-1), -EINVAL);
	CHECK_INT(helper_sched_bind(cpu), 0);
	CPU_ZERO(&one);
	CPU_SET(cpu, &one);
	cpu_set_t now = thread_cpus();
	CHECK(CPU_EQUAL(&now, &one));
	/* A thread started now inherits the loop's CPU; unbound, it gets back
	 * every CPU the process had. */
	CHECK_INT(pthread_create(&t, NULL, helper_main, &s), 0);
	CHECK_INT(pthread_join(t, NULL), 0);
	CHECK(CPU_EQUAL(&s.inherited, &one));
	CHECK(CPU_EQUAL(&s.unbound, all));
	now = thread_cpus();
	CHECK(CPU_EQUAL(&now, &one));
}

int main(void)
{
	cpu_set_t all = thread_cpus();

	printf("test-helper-sched: %d CPUs allowed\n", CPU_COUNT(&all));
	test_policy();
	test_resolve(&all);
	test_bind(&all);
	printf("test-helper-sched: ok\n");
	return 0;
}
