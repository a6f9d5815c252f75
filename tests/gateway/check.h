/* SPDX-License-Identifier: MIT */
/* Minimal checks for the gateway tests: active under NDEBUG too, print where
 * and what, abort. Plus a "run the loop until" helper whose deadline is an
 * sd-event timer, so a hung test fails instead of hanging. */
#ifndef NLGW_TEST_CHECK_H
#define NLGW_TEST_CHECK_H

#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-event.h>

#define CHECK(cond)                                                                  \
	do {                                                                         \
		if (!(cond)) {                                                       \
			fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, \
				#cond);                                              \
			abort();                                                     \
		}                                                                    \
	} while (0)

#define CHECK_INT(a, b)                                                                  \
	do {                                                                             \
		long long a_ = (long long)(a), b_ = (long long)(b);                      \
		if (a_ != b_) {                                                          \
			fprintf(stderr, "%s:%d: CHECK failed: %s == %s (%lld != %lld)\n", \
				__FILE__, __LINE__, #a, #b, a_, b_);                     \
			abort();                                                         \
		}                                                                        \
	} while (0)

#define CHECK_STR(a, b)                                                                 \
	do {                                                                            \
		const char *a_ = (a), *b_ = (b);                                        \
		if (!a_ || !b_ || strcmp(a_, b_) != 0) {                                \
			fprintf(stderr, "%s:%d: CHECK failed: %s == %s ('%s' != '%s')\n", \
				__FILE__, __LINE__, #a, #b, a_ ? a_ : "(null)",          \
				b_ ? b_ : "(null)");                                     \
			abort();                                                        \
		}                                                                       \
	} while (0)

static inline int check_deadline_cb(sd_event_source *s, uint64_t usec, void *userdata)
{
	fprintf(stderr, "test deadline reached: %s\n", (const char *)userdata);
	abort();
	return 0;
}

/* Runs e until *flag is true; aborts after timeout_s (a generous guard, not a
 * timed assertion: it only turns a hang into a failure). */
static inline void run_until(sd_event *e, const bool *flag, unsigned timeout_s, const char *what)
{
	sd_event_source *deadline = NULL;
	int r = sd_event_add_time_relative(e, &deadline, CLOCK_MONOTONIC,
					   (uint64_t)timeout_s * 1000000u, 0, check_deadline_cb,
					   (void *)what);
	CHECK(r >= 0);
	while (!*flag) {
		r = sd_event_run(e, UINT64_MAX);
		CHECK(r >= 0);
	}
	sd_event_source_disable_unref(deadline);
}

#endif
