/* SPDX-License-Identifier: MIT */
/*
 * struct sim_platform on Linux: scenario time from CLOCK_MONOTONIC scaled by
 * the time factor, flash regions as files in a state directory (fsync'd),
 * randomness from getrandom(), log lines to stderr.
 */
#ifndef SIM_HOST_PLATFORM_H
#define SIM_HOST_PLATFORM_H

#include <stdbool.h>
#include <stdint.h>

#include "sim/platform.h"

/* Scenario time shared by every pen of a run. */
struct host_clock {
	uint64_t start_us; /* CLOCK_MONOTONIC at start */
	double factor; /* scenario seconds per wall second */
};

void host_clock_init(struct host_clock *c, double factor);
uint64_t host_clock_now_ms(const struct host_clock *c);
/* Wall microseconds until scenario time ms (0 if passed). */
uint64_t host_clock_wall_us_until(const struct host_clock *c, uint64_t ms);

struct host_platform {
	struct sim_platform plat;
	const struct host_clock *clock;
	char serial[40];
	int fd[SIM_STORAGE_REGIONS];
	int min_level; /* lines above this level are dropped */
	/* The pen's time: set by its runner at every tick and to each event's
	 * exact time while it runs, so the pen never sees time go backwards
	 * and radio callbacks between ticks see the last tick's time. */
	bool fixed;
	uint64_t fixed_ms;
	void *record_ctx; /* passed to record_fn */
	void (*record_fn)(void *ctx, const struct nl_record *r);
};

/* Opens (creating) DIR/SERIAL.flash0 and .flash1; wipe empties them first.
 * Returns 0 or -errno. */
int host_platform_init(struct host_platform *h, const struct host_clock *clock, const char *dir,
		       const char *serial, bool wipe);
void host_platform_done(struct host_platform *h);

/* mkdir -p with mode 0700. */
int host_mkdir_p(const char *path);

/* One log line to stderr: "[  12.345] line" (scenario seconds). */
void host_log(const struct host_clock *c, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* The same at scenario time ms. */
void host_log_at(uint64_t ms, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The platform's current time (the event's time while one runs). */
uint64_t host_platform_now_ms(const struct host_platform *h);

#endif
