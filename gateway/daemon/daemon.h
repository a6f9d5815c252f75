/* SPDX-License-Identifier: MIT */
/*
 * needlelinkd's core: one sd-event loop on the calling thread owning the
 * journal, the MQTT client, the transport and the pen manager.
 *
 * Data path: pen manager record -> journal (record row + records-topic
 * outbox row in the same batch, msg_id = outbox id) -> journal commit
 * callback -> the pen manager may acknowledge the record -> MQTT drains the
 * outbox. Live status goes straight to MQTT at QoS 0.
 */
#ifndef NLGW_DAEMON_H
#define NLGW_DAEMON_H

#include <stdbool.h>
#include <stdint.h>

struct config;

struct daemon_options {
	const char *version;         /* "0.1.0" */
	uint64_t health_interval_us; /* 0: 30 s */
	bool stats; /* log record latency percentiles at exit (bench) */
};

/* Runs until SIGTERM/SIGINT (clean shutdown) or a fatal error. cfg must be
 * loaded and validated. Returns the process exit status. */
int daemon_run(const struct config *cfg, const struct daemon_options *opts);

/* Resolves [gateway] cpu on this machine (helper-sched.h): *ret_cpu is the
 * CPU for the loop and Paho's threads, or -1. Logs and returns -errno for a
 * CPU the process may not use. */
int daemon_check_cpu(const struct config *cfg, int *ret_cpu);

/* --check-config: loads the limits policy ([limits] policy). 0 (valid, or
 * absent: built-in defaults; one line on stdout), or -errno with every
 * error printed to stderr as FILE:LINE: message. */
int daemon_check_policy(const struct config *cfg);

#endif
