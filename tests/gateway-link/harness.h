/* SPDX-License-Identifier: MIT */
/*
 * Shared by the gateway-link tests: simulated pens (the real firmware core
 * behind the real local radio server) running on the test's sd-event loop,
 * and a gateway side (transport + pen manager) with a record sink whose
 * commits the test releases when it wants.
 *
 * Waits are sd-event loop runs bounded by an sd-event timer (the deadline
 * fails the test); nothing sleeps.
 */
#ifndef GWLINK_HARNESS_H
#define GWLINK_HARNESS_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <systemd/sd-event.h>

#include "lradio.h"
#include "penmgr.h"
#include "sim/pen.h"
#include "transport.h"

#define CHECK(cond)                                                                          \
	do {                                                                                 \
		if (!(cond)) {                                                               \
			fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
			exit(1);                                                             \
		}                                                                            \
	} while (0)

#define CHECK_EQ(a, b)                                                                       \
	do {                                                                                 \
		long long a_ = (long long)(a), b_ = (long long)(b);                          \
		if (a_ != b_) {                                                              \
			fprintf(stderr, "%s:%d: check failed: %s == %s (%lld != %lld)\n",    \
				__FILE__, __LINE__, #a, #b, a_, b_);                         \
			exit(1);                                                             \
		}                                                                            \
	} while (0)

#define H_SEQ_MAX 1024
#define H_PENS_MAX 8

struct h_region {
	uint8_t *buf;
	size_t len, cap;
};

/* A simulated pen on the test's loop. */
struct tpen {
	struct harness *h;
	char serial[NL_SERIAL_MAX + 1];
	struct h_region reg[2];
	struct sim_platform plat;
	struct sim_pen *pen;
	struct lradio_server *srv;
	sd_event_source *tick;
	bool ticking;
	unsigned carts;
	uint32_t rng;
};

/* What the gateway side saw of one serial. */
struct h_seen {
	char serial[NL_SERIAL_MAX + 1];
	uint32_t seqs[H_SEQ_MAX];
	size_t n_seqs;
	unsigned delivered[H_SEQ_MAX + 1]; /* times each seq reached the sink */
	unsigned alerts[PENMGR_ALERT_COUNT];
	unsigned events;
	enum penmgr_state state;
	unsigned ready_count; /* transitions into READY */
};

struct h_commit {
	char serial[NL_SERIAL_MAX + 1];
	uint32_t seq;
	penmgr_commit_fn done;
	void *data;
};

enum h_commit_mode {
	H_COMMIT_DEFERRED, /* committed from a deferred event source */
	H_COMMIT_HOLD,     /* held until h_release() */
};

struct harness {
	sd_event *ev;
	char dir[256];
	struct transport *t;
	struct penmgr *pm;
	struct penmgr_config cfg;
	const char *allow[H_PENS_MAX + 1];
	enum h_commit_mode mode;
	struct h_commit *held;
	size_t n_held, cap_held;
	sd_event_source *release_src;
	struct h_seen seen[H_PENS_MAX];
	size_t n_seen;
	struct tpen *pens[H_PENS_MAX];
	size_t n_pens;
	bool deadline_hit;
	sd_event_source *deadline;
	/* Like the daemon's journal: the cursor is the highest seq the sink
	 * got, and the gaps below it are reported (default: no memory). */
	bool remember;
	int gaps_err; /* < 0: the gaps callback fails with it (journal unreadable) */
};

void h_init(struct harness *h);
void h_fini(struct harness *h);
/* Creates the transport and pen manager (allow: NULL-terminated). */
void h_gateway_start(struct harness *h, const char *const *allow);
void h_gateway_stop(struct harness *h);

/* clock_start 0: the pen's clock is not set; else pen time now. */
struct tpen *h_pen_new(struct harness *h, const char *serial, bool clock_set);
void h_pen_free(struct tpen *tp);
/* Makes n (even) records on the pen: cartridge inserted/removed pairs. */
void h_pen_records(struct tpen *tp, unsigned n);
void h_pen_info(struct tpen *tp, struct sim_pen_info *ret);

struct h_seen *h_seen(struct harness *h, const char *serial);
size_t h_held(struct harness *h);
/* Commits the held record (serial, seq); false if it is not held. */
bool h_release(struct harness *h, const char *serial, uint32_t seq, int err);
void h_release_all(struct harness *h);

/* Runs the loop until cond(h, data) holds; fails the test after
 * timeout_ms with what in the message. */
typedef bool (*h_cond_fn)(struct harness *h, void *data);
void h_wait(struct harness *h, h_cond_fn cond, void *data, uint64_t timeout_ms, const char *what);

/* Common conditions. data: the serial. */
bool h_cond_ready(struct harness *h, void *serial);
enum penmgr_state h_state(struct harness *h, const char *serial);
struct penmgr_counters h_counters(struct harness *h, const char *serial);

#endif
