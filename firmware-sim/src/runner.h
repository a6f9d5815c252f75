/* SPDX-License-Identifier: MIT */
/*
 * One simulated pen of a needlelink-sim run: the firmware core on the Linux
 * platform, its radio (the local radio, the BlueZ radio, or none) and the
 * scenario timeline that drives it, with counters for the run summary.
 */
#ifndef SIM_RUNNER_H
#define SIM_RUNNER_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <systemd/sd-event.h>

#include "host-platform.h"
#include "scenario.h"

struct runner_opts {
	sd_event *ev;
	const struct host_clock *clock;
	const char *state_dir;
	const char *radio_dir; /* local radio directory; NULL: no local radio */
	/* BlueZ radio on this adapter ("hci0"); NULL: none. Exclusive with
	 * radio_dir, and one pen per adapter (one GATT database each). */
	const char *bluez_adapter;
	bool wipe;
	int log_level; /* enum sim_log_level */
	unsigned index; /* in the fleet, from 0 */
	const char *serial; /* NULL: the scenario's */
	int kind; /* -1: the scenario's, else enum sim_pen_kind */
};

struct runner;

int runner_new(const struct runner_opts *o, const struct scenario *scn, struct runner **ret);
void runner_free(struct runner *r);
/* Runs the events that are due, then the pen's tick. */
void runner_tick(struct runner *r);
/* The timeline ended (never for a looping scenario). */
bool runner_finished(const struct runner *r);
const char *runner_serial(const struct runner *r);
/* A JSON object describing the pen after the run (caller owns it). */
cJSON *runner_summary(const struct runner *r);

#endif
