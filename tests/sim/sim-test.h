/* SPDX-License-Identifier: MIT */
/* Test doubles for the pen core: a RAM platform whose flash can lose power
 * at any byte, and a radio that records what the pen sends. */
#ifndef SIM_TEST_H
#define SIM_TEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "sim/gatt.h"
#include "sim/pen.h"
#include "sim/platform.h"

#define CHECK(cond)                                                                              \
	do {                                                                                     \
		if (!(cond)) {                                                                   \
			fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
			exit(1);                                                                 \
		}                                                                                \
	} while (0)
#define CHECK_EQ(a, b)                                                                    \
	do {                                                                              \
		long long a_ = (long long)(a), b_ = (long long)(b);                       \
		if (a_ != b_) {                                                           \
			fprintf(stderr, "%s:%d: CHECK failed: %s == %s (%lld != %lld)\n", \
				__FILE__, __LINE__, #a, #b, a_, b_);                      \
			exit(1);                                                          \
		}                                                                         \
	} while (0)

#define MEM_REGION_MAX (1u << 20)

struct mem_platform {
	struct sim_platform plat;
	uint64_t now;
	uint8_t *region[SIM_STORAGE_REGIONS];
	size_t region_max;
	size_t len[SIM_STORAGE_REGIONS];
	long long budget; /* bytes (an erase counts 1) until the power cut; < 0: none */
	bool cut;
	unsigned long long spent;
	unsigned erases;
	uint32_t rnd;
	bool verbose;
};

void mem_platform_init(struct mem_platform *m);
/* With regions of region_max bytes (mem_platform_init: MEM_REGION_MAX). */
void mem_platform_init_size(struct mem_platform *m, size_t region_max);
void mem_platform_free(struct mem_platform *m);
/* Power is back: the flash works again, nothing cut. */
void mem_platform_restore(struct mem_platform *m);

#define FAKE_MSG_MAX 4096

struct fake_msg {
	enum sim_chr chr;
	bool indication;
	uint16_t len;
	uint8_t val[520];
};

struct fake_radio {
	struct sim_pen *pen;
	struct fake_msg *msgs;
	unsigned n;
	unsigned pending[SIM_CHR_COUNT]; /* unconfirmed indications */
	bool full; /* notify answers -ENOBUFS */
	size_t backlog; /* what tx_backlog reports */
	unsigned disconnects;
};

void fake_radio_init(struct fake_radio *r, struct sim_pen *pen);
void fake_radio_free(struct fake_radio *r);
/* Connects with mtu and enables every CCCD (notify or indicate). */
void fake_radio_connect(struct fake_radio *r, uint16_t mtu);
/* Confirms every pending indication (repeats while the pen sends more). */
void fake_radio_confirm_all(struct fake_radio *r);
void fake_radio_clear(struct fake_radio *r);
/* Index of the last message on chr at or after from, or -1. */
int fake_radio_last(const struct fake_radio *r, enum sim_chr chr, unsigned from);
const struct sim_radio_ops *fake_radio_ops(void);

/* Removes a directory tree (test work files, on success). */
void sim_test_rm_rf(const char *path);

/* Starts argv[0] with argv, its stderr into errpath (created or truncated);
 * returns its pid. Fails the test when it cannot. */
int sim_test_spawn(const char *const *argv, const char *errpath);

/* Writes a Pen CP request and returns the result of the indicated response
 * (confirming it); -1 when no response came. ret_value may be NULL. */
int pen_cp(struct fake_radio *r, const void *req, uint32_t *ret_value);

#endif
