/* SPDX-License-Identifier: MIT */
/*
 * nlsim-bluez-pen: one simulated pen (the firmware core with default
 * configuration, flash in RAM) on the BlueZ radio. For the bluez-vm tests and
 * for trying a gateway against a real adapter:
 *
 *   nlsim-bluez-pen [--adapter hci0] [--serial SIMBZ1] [--bus ADDRESS]
 *                   [--no-agent] [--cartridge]
 *
 * Logs go to stderr, one line each ("passkey NNNNNN for ..." when pairing).
 * SIGUSR1 power-cycles the pen (a sudden power loss drops the link from the
 * pen's side, then it boots again). SIGINT/SIGTERM end it. Exit 0 after a signal, 1 on a start-up error.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <systemd/sd-event.h>

#include "radio_bluez.h"
#include "sim/pen.h"

#define TICK_USEC 20000u

struct ram_region {
	uint8_t *buf;
	size_t len, cap;
};

struct app {
	struct ram_region region[SIM_STORAGE_REGIONS];
	uint64_t start_ms;
	struct sim_pen *pen;
	struct radio_bluez *radio;
};

static uint64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static uint64_t p_now(void *ctx)
{
	struct app *a = ctx;

	return mono_ms() - a->start_ms;
}

static int p_read(void *ctx, unsigned region, uint32_t off, uint8_t *buf, size_t len)
{
	struct app *a = ctx;
	struct ram_region *r;

	if (region >= SIM_STORAGE_REGIONS)
		return -EINVAL;
	r = &a->region[region];
	if (off >= r->len)
		return 0;
	if (len > r->len - off)
		len = r->len - off;
	memcpy(buf, r->buf + off, len);
	return (int)len;
}

static int p_append(void *ctx, unsigned region, const uint8_t *buf, size_t len)
{
	struct app *a = ctx;
	struct ram_region *r;

	if (region >= SIM_STORAGE_REGIONS)
		return -EINVAL;
	r = &a->region[region];
	if (r->len + len > r->cap) {
		size_t cap = r->cap ? r->cap : 4096;
		while (cap < r->len + len)
			cap *= 2;
		uint8_t *n = realloc(r->buf, cap);
		if (!n)
			return -ENOMEM;
		r->buf = n;
		r->cap = cap;
	}
	memcpy(r->buf + r->len, buf, len);
	r->len += len;
	return 0;
}

static int p_sync(void *ctx, unsigned region)
{
	return region < SIM_STORAGE_REGIONS ? 0 : -EINVAL;
}

static int p_erase(void *ctx, unsigned region)
{
	struct app *a = ctx;

	if (region >= SIM_STORAGE_REGIONS)
		return -EINVAL;
	a->region[region].len = 0;
	return 0;
}

static uint32_t p_random(void *ctx)
{
	static uint32_t x = 2463534242u;

	x ^= (uint32_t)mono_ms();
	x ^= x << 13;
	x ^= x >> 17;
	x ^= x << 5;
	return x;
}

static void p_log(void *ctx, enum sim_log_level level, const char *line)
{
	struct app *a = ctx;

	if (level > SIM_LOG_INFO)
		return;
	fprintf(stderr, "[%9.3f] %s\n", (double)(mono_ms() - a->start_ms) / 1000.0, line);
}

static int on_tick(sd_event_source *s, uint64_t usec, void *userdata)
{
	struct app *a = userdata;

	sim_pen_tick(a->pen);
	(void)sd_event_source_set_time(s, usec + TICK_USEC);
	return 0;
}

static int on_usr1(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata)
{
	struct app *a = userdata;

	fprintf(stderr, "nlsim-bluez-pen: SIGUSR1: power cycle\n");
	sim_pen_power_off(a->pen);
	if (sim_pen_power_on(a->pen) < 0)
		fprintf(stderr, "nlsim-bluez-pen: power on after the cycle failed\n");
	return 0;
}

static void usage(void)
{
	fprintf(stderr, "usage: nlsim-bluez-pen [--adapter hciN] [--serial S] [--bus ADDRESS] "
			"[--no-agent] [--cartridge]\n");
}

int main(int argc, char **argv)
{
	struct app a;
	struct radio_bluez_config rc;
	struct sim_pen_config pc;
	struct sim_platform plat;
	sd_event *ev = NULL;
	sd_event_source *tick = NULL;
	uint64_t now;
	bool cartridge = false;
	int e, rc_exit = 1;

	memset(&a, 0, sizeof(a));
	a.start_ms = mono_ms();
	radio_bluez_config_default(&rc);
	sim_pen_config_default(&pc);
	snprintf(pc.serial, sizeof(pc.serial), "SIMBZ1");
	for (int i = 1; i < argc; i++) {
		const char *arg = argv[i];
		if (strcmp(arg, "--no-agent") == 0) {
			rc.agent = false;
		} else if (strcmp(arg, "--cartridge") == 0) {
			cartridge = true;
		} else if (i + 1 < argc && strcmp(arg, "--adapter") == 0) {
			rc.adapter = argv[++i];
		} else if (i + 1 < argc && strcmp(arg, "--serial") == 0) {
			snprintf(pc.serial, sizeof(pc.serial), "%s", argv[++i]);
		} else if (i + 1 < argc && strcmp(arg, "--bus") == 0) {
			rc.bus_address = argv[++i];
		} else {
			usage();
			return 2;
		}
	}
	setvbuf(stderr, NULL, _IOLBF, 0);
	rc.serial = pc.serial;
	rc.log = p_log;
	rc.log_ctx = &a;
	plat = (struct sim_platform){
		.ctx = &a,
		.now_ms = p_now,
		.storage_read = p_read,
		.storage_append = p_append,
		.storage_sync = p_sync,
		.storage_erase = p_erase,
		.random_u32 = p_random,
		.log = p_log,
	};

	sigset_t ss;
	sigemptyset(&ss);
	sigaddset(&ss, SIGINT);
	sigaddset(&ss, SIGTERM);
	sigaddset(&ss, SIGUSR1);
	sigprocmask(SIG_BLOCK, &ss, NULL);
	e = sd_event_default(&ev);
	if (e < 0)
		goto out;
	(void)sd_event_add_signal(ev, NULL, SIGINT, NULL, NULL);
	(void)sd_event_add_signal(ev, NULL, SIGTERM, NULL, NULL);

	(void)sd_event_add_signal(ev, NULL, SIGUSR1, on_usr1, &a);
	e = sim_pen_new(&a.pen, &pc, &plat);
	if (e < 0) {
		fprintf(stderr, "nlsim-bluez-pen: pen refused: %s\n", strerror(-e));
		goto out;
	}
	e = radio_bluez_new(ev, &rc, sim_pen_gatt_ops(), a.pen, &a.radio);
	if (e < 0) {
		fprintf(stderr, "nlsim-bluez-pen: BlueZ radio: %s\n", strerror(-e));
		goto out;
	}
	sim_pen_set_radio(a.pen, radio_bluez_radio_ops(), a.radio);
	e = sim_pen_power_on(a.pen);
	if (e < 0) {
		fprintf(stderr, "nlsim-bluez-pen: power on: %s\n", strerror(-e));
		goto out;
	}
	if (cartridge) {
		struct sim_cartridge c;
		memset(&c, 0, sizeof(c));
		for (unsigned i = 0; i < sizeof(c.uid); i++)
			c.uid[i] = (uint8_t)(0xB0 + i);
		snprintf(c.lot, sizeof(c.lot), "LOTBZ");
		c.expiry = UINT32_MAX;
		c.needle_count = 12;
		c.needle_length_um = 1500;
		(void)sim_pen_insert_cartridge(a.pen, &c);
	}
	(void)sd_event_now(ev, CLOCK_MONOTONIC, &now);
	e = sd_event_add_time(ev, &tick, CLOCK_MONOTONIC, now + TICK_USEC, 5000, on_tick, &a);
	if (e < 0)
		goto out;
	(void)sd_event_source_set_enabled(tick, SD_EVENT_ON);
	fprintf(stderr, "nlsim-bluez-pen: pen %s on %s, application %s\n", pc.serial, rc.adapter,
		radio_bluez_app_path(a.radio));
	e = sd_event_loop(ev);
	rc_exit = e < 0 ? 1 : 0;
out:
	if (e < 0)
		fprintf(stderr, "nlsim-bluez-pen: %s\n", strerror(-e));
	sd_event_source_disable_unref(tick);
	if (a.pen)
		sim_pen_set_radio(a.pen, NULL, NULL);
	radio_bluez_free(a.radio);
	sim_pen_free(a.pen);
	sd_event_unref(ev);
	for (unsigned i = 0; i < SIM_STORAGE_REGIONS; i++)
		free(a.region[i].buf);
	return rc_exit;
}
