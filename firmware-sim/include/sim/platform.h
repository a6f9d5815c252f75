/* SPDX-License-Identifier: MIT */
/*
 * What the pen's firmware core needs from the board it runs on.
 *
 * The core makes no OS call: time, flash, randomness and logging come
 * through this table. The Linux host (firmware-sim/src/platform-linux.c)
 * backs it with CLOCK_MONOTONIC and files; unit tests back it with RAM and
 * a storage double that can cut the power at any byte.
 *
 * Storage is SIM_STORAGE_REGIONS append-only regions (think: two flash
 * banks). A region can be read at any offset, appended to, synced (all
 * appended bytes durable when it returns 0) and erased (empty, durably).
 * Bytes past the end of a region read as nothing (short read).
 */
#ifndef SIM_PLATFORM_H
#define SIM_PLATFORM_H

#include <stddef.h>
#include <stdint.h>

struct nl_record;

#define SIM_STORAGE_REGIONS 2

enum sim_log_level {
	SIM_LOG_ERR = 3,
	SIM_LOG_WARNING = 4,
	SIM_LOG_NOTICE = 5,
	SIM_LOG_INFO = 6,
	SIM_LOG_DEBUG = 7,
};

struct sim_platform {
	void *ctx;
	/* Monotonic milliseconds (the host may scale it: scenario time). */
	uint64_t (*now_ms)(void *ctx);
	/* Bytes read (short or 0 at the end of the region), or -errno. */
	int (*storage_read)(void *ctx, unsigned region, uint32_t off, uint8_t *buf, size_t len);
	/* 0 when all len bytes were appended, or -errno (some may have been). */
	int (*storage_append)(void *ctx, unsigned region, const uint8_t *buf, size_t len);
	int (*storage_sync)(void *ctx, unsigned region);
	/* Empties the region durably. */
	int (*storage_erase)(void *ctx, unsigned region);
	uint32_t (*random_u32)(void *ctx);
	/* One finished line, no newline. May be NULL. */
	void (*log)(void *ctx, enum sim_log_level level, const char *line);
	/* A record was stored (statistics, traces). May be NULL. */
	void (*record)(void *ctx, const struct nl_record *r);
};

#endif
