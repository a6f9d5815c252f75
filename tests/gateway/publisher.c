/* SPDX-License-Identifier: MIT */
/*
 * Test helper: a tiny gateway made of the real modules (config, journal,
 * mqtt). It produces COUNT outbox messages on BASE/test/stream, ROWS per
 * millisecond, each payload {"n":N,"nl-msg-id":ID}, and exits 0 once all are
 * produced and acknowledged by the broker (after a graceful MQTT stop).
 * Restarted after a SIGKILL it resumes from what its journal committed.
 * It answers requests on BASE/pens/+/request/+ with "pong:" + payload.
 * With "busy", a source at normal priority is always pending, as a pen
 * streaming without pause would be: the loop never goes idle.
 *
 * usage: nlgw-test-publisher CONFIG COUNT [ROWS [busy]]
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>

#include "config.h"
#include "journal.h"
#include "log.h"
#include "mqtt.h"

struct app {
	sd_event *event;
	struct config *config;
	struct journal *journal;
	struct mqtt *mqtt;
	char topic[256];
	char info_topic[256];
	uint64_t count;
	uint64_t rows_per_tick;
	uint64_t produced; /* rows in the journal (committed at start) */
	bool stopping;
	int exit_code;
};

static void on_committed(int result, void *userdata)
{
	struct app *a = userdata;

	if (result < 0) {
		log_err("publisher: commit failed: %s", strerror(-result));
		a->exit_code = 3;
		sd_event_exit(a->event, 3);
	}
	/* No mqtt_kick() here: the journal's outbox hook (installed by
	 * mqtt_new()) wakes the drain, and these tests depend on it. */
}

static void on_stopped(struct mqtt *m, void *userdata)
{
	struct app *a = userdata;
	sd_event_exit(a->event, a->exit_code);
}

static void stop(struct app *a)
{
	if (a->stopping)
		return;
	a->stopping = true;
	(void)journal_flush(a->journal);
	if (mqtt_stop(a->mqtt, on_stopped, a) < 0)
		sd_event_exit(a->event, a->exit_code);
}

static int on_tick(sd_event_source *s, uint64_t usec, void *userdata)
{
	struct app *a = userdata;
	uint64_t unsent = 0;
	bool added = false;

	for (uint64_t i = 0; i < a->rows_per_tick && a->produced < a->count; i++) {
		char payload[96];
		int64_t id = journal_outbox_next_id(a->journal);
		int r;

		snprintf(payload, sizeof(payload), "{\"n\":%llu,\"nl-msg-id\":%lld}",
			 (unsigned long long)a->produced + 1, (long long)id);
		r = journal_add_outbox(a->journal, a->topic, payload, strlen(payload), 1, false, NULL);
		if (r < 0) {
			log_err("publisher: journal_add_outbox: %s", strerror(-r));
			a->exit_code = 3;
			stop(a);
			return 0;
		}
		a->produced++;
		added = true;
	}
	if (added)
		(void)journal_commit(a->journal, on_committed, a);
	if (a->produced == a->count && !a->stopping &&
	    journal_outbox_count(a->journal, &unsent, NULL) >= 0 && unsent == 0) {
		log_info("publisher: all %llu messages acknowledged",
			 (unsigned long long)a->count);
		stop(a);
		return 0;
	}
	(void)sd_event_source_set_time_relative(s, 1000);
	(void)sd_event_source_set_enabled(s, SD_EVENT_ONESHOT);
	return 0;
}

static void on_request(struct mqtt *m, const struct mqtt_request *req, void *userdata)
{
	char reply[512];
	int n = snprintf(reply, sizeof(reply), "pong:%.*s", (int)req->payload_len,
			 (const char *)req->payload);
	log_pen_info(req->pen_serial, "request %s", req->name);
	(void)mqtt_reply(m, req, reply, (size_t)n);
}

static void on_connected(struct mqtt *m, void *userdata)
{
	struct app *a = userdata;
	char hash[17], payload[64];

	/* The gateway's retained state goes out again on every connect. */
	config_hash(a->config, hash);
	snprintf(payload, sizeof(payload), "{\"config_hash\":\"%s\"}", hash);
	(void)mqtt_publish(m, &(struct mqtt_message){ .topic = a->info_topic,
						      .payload = payload,
						      .payload_len = strlen(payload),
						      .qos = 1,
						      .retain = true });
}

/* Always readable, never read: pending again after each dispatch, like a
 * pen's radio socket under a stream that does not pause. */
static int on_busy(sd_event_source *s, int fd, uint32_t revents, void *userdata)
{
	return 0;
}

static int on_signal(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata)
{
	stop(userdata);
	return 0;
}

int main(int argc, char **argv)
{
	struct app a = { 0 };
	sd_event_source *tick = NULL, *busy = NULL;
	struct mqtt_stats ms;
	sigset_t mask;
	uint64_t total = 0;
	int r;

	if (argc < 3) {
		fprintf(stderr, "usage: %s CONFIG COUNT [ROWS [busy]]\n", argv[0]);
		return 2;
	}
	a.count = strtoull(argv[2], NULL, 10);
	a.rows_per_tick = argc > 3 ? strtoull(argv[3], NULL, 10) : 20;
	if (!a.count || !a.rows_per_tick)
		return 2;
	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigprocmask(SIG_BLOCK, &mask, NULL);

	if (config_new(&a.config) < 0)
		return 1;
	r = config_load(a.config, argv[1], true);
	if (r >= 0)
		r = config_validate(a.config);
	if (r < 0) {
		config_log_errors(a.config);
		return 1;
	}
	log_set_max_level(config_log_level(a.config));
	snprintf(a.topic, sizeof(a.topic), "%s/test/stream",
		 config_str(a.config, CONFIG_GATEWAY_BASE_TOPIC));
	snprintf(a.info_topic, sizeof(a.info_topic), "%s/gateways/%s/info",
		 config_str(a.config, CONFIG_GATEWAY_BASE_TOPIC),
		 config_str(a.config, CONFIG_GATEWAY_ID));

	r = sd_event_default(&a.event);
	if (r < 0)
		return 1;
	r = journal_open(a.event, config_str(a.config, CONFIG_GATEWAY_JOURNAL), NULL, &a.journal);
	if (r < 0)
		return 1;
	r = journal_outbox_count(a.journal, NULL, &total);
	if (r < 0)
		return 1;
	a.produced = total;
	log_info("publisher: %llu of %llu messages already journaled",
		 (unsigned long long)total, (unsigned long long)a.count);
	r = mqtt_new(a.event, a.config, a.journal, &a.mqtt);
	if (r < 0)
		return 1;
	mqtt_set_request_handler(a.mqtt, on_request, &a);
	mqtt_set_connected_handler(a.mqtt, on_connected, &a);
	(void)sd_event_add_signal(a.event, NULL, SIGTERM, on_signal, &a);
	(void)sd_event_add_signal(a.event, NULL, SIGINT, on_signal, &a);
	r = sd_event_add_time_relative(a.event, &tick, CLOCK_MONOTONIC, 0, 1, on_tick, &a);
	if (r < 0)
		return 1;
	if (argc > 4 && strcmp(argv[4], "busy") == 0) {
		int efd = eventfd(1, EFD_CLOEXEC | EFD_NONBLOCK);

		if (efd < 0 || sd_event_add_io(a.event, &busy, efd, EPOLLIN, on_busy, &a) < 0 ||
		    sd_event_source_set_io_fd_own(busy, true) < 0)
			return 1;
	}
	r = mqtt_start(a.mqtt);
	if (r < 0)
		return 1;
	r = sd_event_loop(a.event);

	mqtt_get_stats(a.mqtt, &ms);
	log_info("publisher: the outbox fell a window behind %llu times",
		 (unsigned long long)ms.lazy);
	sd_event_source_disable_unref(busy);
	sd_event_source_disable_unref(tick);
	mqtt_free(a.mqtt);
	journal_close(a.journal);
	config_free(a.config);
	sd_event_unref(a.event);
	return r;
}
