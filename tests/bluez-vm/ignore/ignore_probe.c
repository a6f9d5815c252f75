/* SPDX-License-Identifier: MIT */
/*
 * nlgw-bluez-ignore-probe: the gateway's pen manager on the BlueZ transport,
 * inside the bluez-vm guest, with an allow-list of one serial. Driven by
 * test_ignore.py, which starts the peripherals (a pen that is not allowed,
 * a device of another kind, then the allowed pen) and checks bluetoothd's
 * side. This program:
 *
 *   1. creates the "bluez" transport on --adapter and a pen manager with
 *      allow-list { --allow }, starts it (discovery), and writes
 *      DIR/probe-discovering once bluetoothd reports Discovering;
 *   2. answers a passkey request of the allowed pen with the passkey the pen
 *      logged (--pen-log); a pairing request for anything else fails the
 *      run;
 *   3. writes DIR/probe-ignored (the count) each time penmgr_ignored()
 *      grows;
 *   4. passes when the allowed pen is READY and at least --want-ignored
 *      advertisements were ignored; penmgr_list() must then hold the
 *      allowed serial only, and no state event may name another serial.
 *
 * Usage: nlgw-bluez-ignore-probe --adapter hci1 --allow SERIAL
 *        --pen-log FILE --dir DIR [--want-ignored N]
 * Exit 0 when every check passed, 1 with "FAIL: reason" otherwise. Every
 * step waits for an event; the guest harness bounds the whole run.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <systemd/sd-event.h>

#include "penmgr.h"
#include "transport.h"
#include "transport_bluez.h"

struct probe {
	sd_event *ev;
	struct transport *t;
	struct penmgr *pm;
	const char *allow, *pen_log, *dir;
	unsigned want_ignored, ignored_written;
	bool discovering_written, passkey_wanted, passkey_sent, ready;
	int rc;
};

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...)
{
	struct timespec ts;
	va_list ap;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	printf("[%5lld.%03ld] ", (long long)ts.tv_sec, ts.tv_nsec / 1000000);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
	fflush(stdout);
}

static void finish(struct probe *p, int rc, const char *why)
{
	say("%s: %s", rc ? "FAIL" : "PASS", why);
	p->rc = rc;
	sd_event_exit(p->ev, rc);
}

/* DIR/name holds text, written whole (rename) so a reader never sees half. */
static int put_file(struct probe *p, const char *name, const char *text)
{
	char path[600], tmp[620];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", p->dir, name);
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	f = fopen(tmp, "we");
	if (!f)
		return -errno;
	fputs(text, f);
	if (fclose(f) != 0 || rename(tmp, path) < 0)
		return -errno;
	return 0;
}

/* The passkey the pen displayed last, -1 if none yet. */
static long pen_passkey(const char *log)
{
	char buf[65536];
	long key = -1;
	ssize_t n;
	int fd = open(log, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return -1;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return -1;
	buf[n] = '\0';
	for (char *s = buf; (s = strstr(s, "passkey ")); s += 8) {
		char *end;
		long v = strtol(s + 8, &end, 10);

		if (end == s + 14 && strncmp(end, " for", 4) == 0)
			key = v;
	}
	return key;
}

static int pm_record(void *ud, const char *serial, const struct nl_record *rec,
		     const uint8_t *raw, size_t len, penmgr_commit_fn done, void *commit_data)
{
	(void)ud;
	(void)rec;
	(void)raw;
	say("record %zu bytes from %s: committed", len, serial);
	done(0, commit_data);
	return 0;
}

static int pm_cursor(void *ud, const char *serial, uint32_t *ret_epoch, uint32_t *ret_seq)
{
	(void)ud;
	(void)serial;
	(void)ret_epoch;
	(void)ret_seq;
	return -ENOENT;
}

static void check_done(struct probe *p)
{
	const char *serials[8];
	size_t n;

	if (!p->ready || penmgr_ignored(p->pm) < p->want_ignored)
		return;
	n = penmgr_list(p->pm, serials, 8);
	for (size_t i = 0; i < n && i < 8; i++)
		say("pen manager knows %s", serials[i]);
	if (n != 1 || strcmp(serials[0], p->allow) != 0) {
		finish(p, 1, "the pen manager lists a pen other than the allowed one");
		return;
	}
	{
		char why[160];

		snprintf(why, sizeof(why),
			 "%s READY; %u advertisement(s) ignored, no other pen listed or paired",
			 p->allow, penmgr_ignored(p->pm));
		finish(p, 0, why);
	}
}

static void pm_event(void *ud, const struct penmgr_event *ev)
{
	struct probe *p = ud;

	switch (ev->type) {
	case PENMGR_EVENT_STATE:
		say("pen %s: %s -> %s", ev->serial, penmgr_state_name(ev->u.state.from),
		    penmgr_state_name(ev->u.state.to));
		if (strcmp(ev->serial, p->allow) != 0) {
			finish(p, 1, "a state event for a pen that is not allowed");
			return;
		}
		if (ev->u.state.to == PENMGR_STATE_READY) {
			p->ready = true;
			check_done(p);
		}
		return;
	case PENMGR_EVENT_ALERT:
		say("pen %s: alert %s: %s", ev->serial, penmgr_alert_name(ev->u.alert.alert),
		    ev->u.alert.message ? ev->u.alert.message : "");
		if (strcmp(ev->serial, p->allow) != 0)
			finish(p, 1, "an alert for a pen that is not allowed");
		return;
	case PENMGR_EVENT_SNAPSHOT:
	case PENMGR_EVENT_LIVE:
		if (strcmp(ev->serial, p->allow) != 0)
			finish(p, 1, "an event for a pen that is not allowed");
		return;
	}
}

static void on_notice(const struct transport_bluez_notice *n, void *ud)
{
	struct probe *p = ud;

	say("notice %d addr '%s' serial '%s' detail '%s' err %d", (int)n->type, n->addr,
	    n->serial, n->detail, n->err);
	switch (n->type) {
	case TRANSPORT_BLUEZ_NOTICE_DISCOVERING:
		if (strcmp(n->detail, "on") == 0 && !p->discovering_written) {
			if (put_file(p, "probe-discovering", "on\n") < 0) {
				finish(p, 1, "cannot write probe-discovering");
				return;
			}
			p->discovering_written = true;
		}
		return;
	case TRANSPORT_BLUEZ_NOTICE_PASSKEY_WANTED:
	case TRANSPORT_BLUEZ_NOTICE_CONFIRM_WANTED:
		if (strcmp(n->serial, p->allow) != 0) {
			finish(p, 1, "bluetoothd asked to pair a device that is not allowed");
			return;
		}
		p->passkey_wanted = true;
		p->passkey_sent = false;
		return;
	case TRANSPORT_BLUEZ_NOTICE_BUS_LOST:
	case TRANSPORT_BLUEZ_NOTICE_BLUEZ_UP:
	case TRANSPORT_BLUEZ_NOTICE_BLUEZ_GONE:
	case TRANSPORT_BLUEZ_NOTICE_ADAPTER:
	case TRANSPORT_BLUEZ_NOTICE_ADAPTER_GONE:
	case TRANSPORT_BLUEZ_NOTICE_ADAPTER_POWER:
	case TRANSPORT_BLUEZ_NOTICE_AGENT:
	case TRANSPORT_BLUEZ_NOTICE_PAIRING_DONE:
	case TRANSPORT_BLUEZ_NOTICE_DEVICE_REMOVED:
		return;
	}
}

/* Polled once a second: the pen's log (passkey) and the ignored counter. */
static int tick(sd_event_source *s, uint64_t usec, void *ud)
{
	struct probe *p = ud;
	unsigned ign;

	(void)usec;
	(void)sd_event_source_set_time_relative(s, 1000000);
	if (p->passkey_wanted && !p->passkey_sent) {
		long key = pen_passkey(p->pen_log);

		if (key >= 0) {
			say("operator types passkey %06ld for %s", key, p->allow);
			p->passkey_sent = true;
			if (transport_bluez_pair(p->t, p->allow, (uint32_t)key) < 0) {
				finish(p, 1, "transport_bluez_pair failed");
				return 0;
			}
		}
	}
	ign = penmgr_ignored(p->pm);
	if (ign != p->ignored_written) {
		char text[32];

		snprintf(text, sizeof(text), "%u\n", ign);
		say("penmgr_ignored() = %u", ign);
		if (put_file(p, "probe-ignored", text) < 0) {
			finish(p, 1, "cannot write probe-ignored");
			return 0;
		}
		p->ignored_written = ign;
		check_done(p);
	}
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "adapter", required_argument, NULL, 'a' },
		{ "allow", required_argument, NULL, 's' },
		{ "pen-log", required_argument, NULL, 'l' },
		{ "dir", required_argument, NULL, 'd' },
		{ "want-ignored", required_argument, NULL, 'w' },
		{ 0 },
	};
	struct probe p = { .want_ignored = 1, .rc = 1 };
	struct transport_config cfg = { .adapter = "hci1" };
	const char *allow[2] = { NULL, NULL };
	struct penmgr_config pc = { .allow = allow };
	struct penmgr_callbacks cb = { .record = pm_record, .cursor = pm_cursor,
				       .event = pm_event };
	sd_event_source *timer = NULL;
	int c, r;

	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'a': cfg.adapter = optarg; break;
		case 's': p.allow = optarg; break;
		case 'l': p.pen_log = optarg; break;
		case 'd': p.dir = optarg; break;
		case 'w': p.want_ignored = (unsigned)atoi(optarg); break;
		default: return 2;
		}
	}
	if (!p.allow || !p.pen_log || !p.dir) {
		fprintf(stderr, "usage: %s [--adapter hci1] --allow SERIAL --pen-log FILE "
				"--dir DIR [--want-ignored N]\n", argv[0]);
		return 2;
	}
	allow[0] = p.allow;
	signal(SIGPIPE, SIG_IGN);
	if (sd_event_default(&p.ev) < 0)
		return 1;
	r = transport_new(p.ev, "bluez", &cfg, &p.t);
	if (r < 0) {
		say("FAIL: transport_new(bluez): %s", strerror(-r));
		return 1;
	}
	transport_bluez_set_notice(p.t, on_notice, &p);
	r = penmgr_new(p.ev, p.t, &pc, &cb, &p, &p.pm);
	if (r < 0) {
		say("FAIL: penmgr_new: %s", strerror(-r));
		return 1;
	}
	r = penmgr_start(p.pm);
	if (r < 0) {
		say("FAIL: penmgr_start: %s", strerror(-r));
		return 1;
	}
	say("pen manager started on %s, allow-list { %s }", cfg.adapter, p.allow);
	if (sd_event_add_time_relative(p.ev, &timer, CLOCK_MONOTONIC, 1000000, 0, tick, &p) < 0 ||
	    sd_event_source_set_enabled(timer, SD_EVENT_ON) < 0)
		return 1;
	(void)sd_event_loop(p.ev);
	sd_event_source_disable_unref(timer);
	penmgr_free(p.pm);
	transport_free(p.t);
	sd_event_unref(p.ev);
	return p.rc;
}
