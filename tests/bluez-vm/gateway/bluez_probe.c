/* SPDX-License-Identifier: MIT */
/*
 * nlgw-bluez-probe: the gateway's BlueZ transport driven directly, inside the
 * bluez-vm guest (real bluetoothd, two btvirt controllers). The simulated pen
 * (nlsim-bluez-pen) runs on the pen adapter, the transport on the other:
 *
 *   1. scan: discovery on (wait for Discovering), then start the pen; found
 *      by the NeedleLink service UUID with its serial (discovery restarted
 *      when nothing came: btvirt reports once per enable);
 *   2. connect: pairing with passkey entry through the transport's agent
 *      (the passkey the pen's DisplayOnly agent logged, handed over with
 *      transport_bluez_pair()), Connect, resolution of every characteristic;
 *   3. MTU, discover, read Feature (CRC and protocol major checked);
 *   4. Live Status notifications on, one sample received and checked;
 *   5. Pen CP indications on, SET_LIVE_RATE written, its response indication
 *      received and checked;
 *   6. with --restart BLUETOOTHD: bluetoothd is killed (SIGKILL; the pen's
 *      link must be reported lost, org.bluez gone) and started again; with
 *      --power-cycle the transport's adapter is powered off and on instead.
 *      Then the bonded pen must be reported at once (no advertisement
 *      needed), and once it advertises again be connected without pairing,
 *      resolved, and its Feature read.
 *
 * Usage: nlgw-bluez-probe --pen BIN --pen-adapter hci0 --adapter hci1
 *                         --log DIR [--serial SIMBZ1]
 *                         [--restart BLUETOOTHD | --power-cycle]
 * Exit 0 when every step passed; 1 with "FAIL: reason" otherwise. Every step
 * waits for an event; the guest harness bounds the whole run.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <systemd/sd-event.h>

#include "needlelink/common.h"
#include "needlelink/cp.h"
#include "needlelink/crc.h"
#include "transport.h"
#include "transport_bluez.h"

#define SCAN_RETRY_TICKS 20 /* 1 s ticks before discovery is restarted */

enum step {
	STEP_WAIT_ADAPTER,
	STEP_SCANNING,
	STEP_CONNECTING,
	STEP_MTU,
	STEP_DISCOVER,
	STEP_FEATURE,
	STEP_LIVE_SUB,
	STEP_LIVE_WAIT,
	STEP_CP_SUB,
	STEP_CP_WRITE,
	STEP_CP_WAIT,
	STEP_KILLED,
	STEP_RESCAN,
	STEP_RECONNECTING,
	STEP_REREAD,
	STEP_DONE,
};

struct probe {
	sd_event *ev;
	struct transport *t;
	const char *pen_bin, *pen_adapter, *adapter, *serial, *logdir, *bluetoothd;
	enum step step;
	pid_t pen_pid, btd_pid;
	char pen_log[512];
	char addr[TRANSPORT_ADDR_MAX];
	bool agent_ok, adapter_on, discovering, passkey_wanted, passkey_sent;
	bool connected_event, cp_response, bonded_found, power_cycle, adapter_off, lost_event, bluez_gone, bluez_back, second_round;
	unsigned scan_ticks, pair_requests, reconnect_tries;
	uint16_t h_feature, h_live, h_cp, mtu;
	int rc;
};

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...)
{
	va_list ap;

	struct timespec ts;

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
	if (rc)
		say("FAIL: %s", why);
	else
		say("PASS: %s", why);
	p->rc = rc;
	p->step = STEP_DONE;
	sd_event_exit(p->ev, rc);
}

static bool crc_ok(const uint8_t *v, size_t len)
{
	if (len < 3)
		return false;
	return nl_crc16(v, len - 2) == (uint16_t)(v[len - 2] | (v[len - 1] << 8));
}

static pid_t spawn(const char *const argv[], const char *log)
{
	pid_t pid = fork();

	if (pid == 0) {
		int fd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);

		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
		}
		execv(argv[0], (char *const *)argv);
		_exit(127);
	}
	return pid;
}

static void start_pen(struct probe *p)
{
	const char *argv[] = { p->pen_bin, "--adapter", p->pen_adapter, "--serial", p->serial,
			       NULL };

	if (p->pen_pid > 0)
		return;
	p->pen_pid = spawn(argv, p->pen_log);
	say("started pen pid %d (log %s)", (int)p->pen_pid, p->pen_log);
}

/* The passkey the pen displayed last, -1 if none yet. */
static long pen_passkey(struct probe *p)
{
	char buf[65536];
	long key = -1;
	ssize_t n;
	int fd = open(p->pen_log, O_RDONLY | O_CLOEXEC);

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

static pid_t find_bluetoothd(void)
{
	DIR *d = opendir("/proc");
	struct dirent *de;
	pid_t found = 0;

	if (!d)
		return 0;
	while ((de = readdir(d))) {
		char path[300], comm[64] = "";
		FILE *f;

		if (de->d_name[0] < '1' || de->d_name[0] > '9')
			continue;
		snprintf(path, sizeof(path), "/proc/%s/comm", de->d_name);
		f = fopen(path, "re");
		if (!f)
			continue;
		if (fgets(comm, sizeof(comm), f) && strcmp(comm, "bluetoothd\n") == 0)
			found = (pid_t)atoi(de->d_name);
		fclose(f);
	}
	closedir(d);
	return found;
}

static void do_connect(struct probe *p);

/* Adapter1.Powered through dbus-send (a test program may block). */
static void set_powered(struct probe *p, bool on)
{
	char path[64], log[600];
	const char *argv[] = { "/usr/bin/dbus-send", "--system", "--print-reply",
			       "--reply-timeout=10000", "--dest=org.bluez", path,
			       "org.freedesktop.DBus.Properties.Set", "string:org.bluez.Adapter1",
			       "string:Powered", on ? "variant:boolean:true" : "variant:boolean:false",
			       NULL };
	pid_t pid;

	snprintf(path, sizeof(path), "/org/bluez/%s", p->adapter);
	snprintf(log, sizeof(log), "%s/dbus-send.log", p->logdir);
	pid = spawn(argv, log);
	if (pid > 0)
		waitpid(pid, NULL, 0);
}
static void after_cp(struct probe *p);

/* ---- GATT steps ---------------------------------------------------------- */

static void cp_write_cb(int err, uint8_t att, void *ud)
{
	struct probe *p = ud;

	if (err < 0) {
		char why[96];

		snprintf(why, sizeof(why), "Pen CP write: %s (att 0x%02x)", strerror(-err), att);
		finish(p, 1, why);
		return;
	}
	say("Pen CP write acknowledged");
	p->step = STEP_CP_WAIT;
	if (p->cp_response)
		after_cp(p);
}

static void cp_sub_cb(int err, uint8_t att, void *ud)
{
	struct probe *p = ud;
	uint8_t req[4] = { NL_CP_SET_LIVE_RATE, 4, 0, 0 };
	uint16_t crc = nl_crc16(req, 2);

	if (err < 0) {
		finish(p, 1, "Pen CP indications could not be enabled");
		return;
	}
	say("Pen CP indications enabled");
	req[2] = (uint8_t)crc;
	req[3] = (uint8_t)(crc >> 8);
	p->step = STEP_CP_WRITE;
	if (!transport_write(p->t, p->addr, p->h_cp, req, sizeof(req), cp_write_cb, p, NULL))
		finish(p, 1, "Pen CP write not started");
}

static void live_sub_cb(int err, uint8_t att, void *ud)
{
	struct probe *p = ud;

	if (err < 0) {
		finish(p, 1, "Live Status notifications could not be enabled");
		return;
	}
	say("Live Status notifications enabled");
	p->step = STEP_LIVE_WAIT;
}

static void feature_cb(int err, uint8_t att, const uint8_t *val, size_t len, void *ud)
{
	struct probe *p = ud;

	if (err < 0) {
		char why[96];

		snprintf(why, sizeof(why), "Feature read: %s (att 0x%02x)", strerror(-err), att);
		finish(p, 1, why);
		return;
	}
	if (len < 23 || !crc_ok(val, len) || val[0] != 1) {
		finish(p, 1, "Feature malformed (length, CRC or protocol major)");
		return;
	}
	say("Feature read: %zu bytes, protocol %u.%u, CRC ok", len, val[0], val[1]);
	if (p->second_round) {
		finish(p, 0, p->power_cycle ? "recovered after the adapter power cycle: bonded pen "
					      "reconnected without pairing, Feature read"
					    : "recovered after the bluetoothd restart: bonded pen "
					      "reconnected without pairing, Feature read");
		return;
	}
	p->step = STEP_LIVE_SUB;
	if (!transport_subscribe(p->t, p->addr, p->h_live, 1, live_sub_cb, p, NULL))
		finish(p, 1, "Live Status subscribe not started");
}

static void discover_cb(int err, const struct transport_chr *chrs, size_t n, void *ud)
{
	struct probe *p = ud;

	if (err < 0) {
		finish(p, 1, "discovery failed");
		return;
	}
	p->h_feature = p->h_live = p->h_cp = 0;
	for (size_t i = 0; i < n; i++) {
		if (strcmp(chrs[i].uuid, NL_UUID_FEATURE) == 0 && (chrs[i].props & TRANSPORT_PROP_READ))
			p->h_feature = chrs[i].handle;
		if (strcmp(chrs[i].uuid, NL_UUID_LIVE_STATUS) == 0 &&
		    (chrs[i].props & TRANSPORT_PROP_NOTIFY))
			p->h_live = chrs[i].handle;
		if (strcmp(chrs[i].uuid, NL_UUID_PEN_CP) == 0 &&
		    (chrs[i].props & (TRANSPORT_PROP_WRITE | TRANSPORT_PROP_INDICATE)) ==
			    (TRANSPORT_PROP_WRITE | TRANSPORT_PROP_INDICATE) &&
		    strcmp(chrs[i].service_uuid, NL_UUID_SERVICE) == 0)
			p->h_cp = chrs[i].handle;
	}
	say("discovered %zu characteristics: Feature 0x%04x, Live 0x%04x, Pen CP 0x%04x", n,
	    p->h_feature, p->h_live, p->h_cp);
	if (!p->h_feature || !p->h_live || !p->h_cp) {
		finish(p, 1, "a NeedleLink characteristic is missing from discovery");
		return;
	}
	p->step = p->second_round ? STEP_REREAD : STEP_FEATURE;
	if (!transport_read(p->t, p->addr, p->h_feature, feature_cb, p, NULL))
		finish(p, 1, "Feature read not started");
}

static void mtu_cb(int err, uint16_t mtu, void *ud)
{
	struct probe *p = ud;

	if (err < 0 || mtu < 23) {
		finish(p, 1, "MTU exchange failed");
		return;
	}
	p->mtu = mtu;
	say("ATT MTU %u (transport_mtu %u)", mtu, transport_mtu(p->t, p->addr));
	p->step = STEP_DISCOVER;
	if (!transport_discover(p->t, p->addr, discover_cb, p, NULL))
		finish(p, 1, "discover not started");
}

static int retry_connect_cb(sd_event_source *s, uint64_t usec, void *ud)
{
	struct probe *p = ud;

	/* A floating one-shot source: the loop owns and frees it. */
	do_connect(p);
	return 0;
}

static void connect_cb(int err, uint8_t att, void *ud)
{
	struct probe *p = ud;

	/* Right after bluetoothd restarts, the pen (whose bluetoothd is the
	 * same one) may not be advertising its re-registered application
	 * yet, and the first connection can drop: retry a link loss as the
	 * pen manager's backoff would, a bounded number of times. */
	if (err < 0 && p->second_round && transport_err_class(err) == TRANSPORT_ERR_LINK_LOSS &&
	    p->reconnect_tries < 5) {
		p->reconnect_tries++;
		say("reconnect attempt %u failed: %s; again in 1 s", p->reconnect_tries,
		    strerror(-err));
		if (sd_event_add_time_relative(p->ev, NULL, CLOCK_MONOTONIC, 1000000, 0,
					       retry_connect_cb, p) < 0)
			finish(p, 1, "cannot arm the reconnect timer");
		return;
	}
	if (err < 0) {
		char why[128];

		snprintf(why, sizeof(why), "connect failed: %s (class %s)", strerror(-err),
			 transport_err_class_name(transport_err_class(err)));
		{
			/* What bluetoothd thought of the device, for the log. */
			char log[600];
			const char *argv[] = { "/usr/bin/dbus-send", "--system", "--print-reply",
					       "--reply-timeout=5000", "--dest=org.bluez", "/",
					       "org.freedesktop.DBus.ObjectManager.GetManagedObjects",
					       NULL };
			pid_t pid;

			snprintf(log, sizeof(log), "%s/objects-at-failure.txt", p->logdir);
			pid = spawn(argv, log);
			if (pid > 0)
				waitpid(pid, NULL, 0);
		}
		finish(p, 1, why);
		return;
	}
	if (!p->connected_event) {
		finish(p, 1, "connect succeeded without a CONNECTED event");
		return;
	}
	say("connected and resolved (%s)", p->second_round ? "bonded, no pairing" : "paired");
	if (p->second_round && !p->bonded_found) {
		finish(p, 1, "the bonded pen was not reported before its advertisement");
		return;
	}
	if (p->second_round && p->pair_requests != 1) {
		finish(p, 1, "bonded pen asked for pairing again");
		return;
	}
	p->step = STEP_MTU;
	if (!transport_exchange_mtu(p->t, p->addr, 247, mtu_cb, p, NULL))
		finish(p, 1, "MTU exchange not started");
}

static void do_connect(struct probe *p)
{
	p->connected_event = false;
	p->step = p->second_round ? STEP_RECONNECTING : STEP_CONNECTING;
	/* Discovery stays on, as with the pen manager. A StopDiscovery sent
	 * right before Connect made the guest kernel hand bluetoothd the
	 * central's own new link as an "incoming" ATT connection, whose
	 * security it then failed to raise (README). */
	say("connecting %s", p->addr);
	if (!transport_connect(p->t, p->addr, connect_cb, p, NULL))
		finish(p, 1, "connect not started");
}

/* ---- events ----------------------------------------------------------------- */

static void on_event(const struct transport_event *ev, void *ud)
{
	struct probe *p = ud;

	switch (ev->type) {
	case TRANSPORT_EVENT_DEVICE_FOUND: {
		bool svc = false;

		for (size_t i = 0; i < ev->u.found.n_uuids; i++)
			if (strcmp(ev->u.found.uuids[i], NL_UUID_SERVICE) == 0)
				svc = true;
		say("event device-found %s serial '%s' name '%s' rssi %d uuids %zu", ev->addr,
		    ev->u.found.serial, ev->u.found.name, ev->u.found.rssi, ev->u.found.n_uuids);
		/* After the restart the bonded pen is known by its address
		 * and comes without an advertisement (no serial). */
		if (!svc || (strcmp(ev->u.found.serial, p->serial) != 0 &&
			     !(p->step == STEP_RESCAN && strcmp(ev->addr, p->addr) == 0)))
			return;
		if (p->step == STEP_RESCAN && !ev->u.found.serial[0]) {
			/* Reported at once, without an advertisement: the
			 * recovery works. Connecting waits for the pen to
			 * advertise again (its bluetoothd restarted too). */
			say("bonded pen reported without a scan");
			p->bonded_found = true;
			return;
		}
		if (p->step == STEP_SCANNING || p->step == STEP_RESCAN) {
			snprintf(p->addr, sizeof(p->addr), "%s", ev->addr);
			do_connect(p);
		}
		return;
	}
	case TRANSPORT_EVENT_DEVICE_LOST:
		say("event device-lost %s", ev->addr);
		return;
	case TRANSPORT_EVENT_CONNECTED:
		say("event connected %s", ev->addr);
		p->connected_event = true;
		return;
	case TRANSPORT_EVENT_DISCONNECTED:
		say("event disconnected %s reason %s class %s", ev->addr,
		    strerror(-ev->u.disconnected.reason),
		    transport_err_class_name(ev->u.disconnected.cls));
		if (p->step == STEP_KILLED) {
			p->lost_event = true;
			return;
		}
		finish(p, 1, "unexpected disconnect");
		return;
	case TRANSPORT_EVENT_VALUE:
		if (p->step == STEP_LIVE_WAIT && ev->u.value.handle == p->h_live) {
			if (ev->u.value.len < 26 || !crc_ok(ev->u.value.val, ev->u.value.len)) {
				finish(p, 1, "Live Status sample malformed");
				return;
			}
			say("Live Status notification: %zu bytes, CRC ok", ev->u.value.len);
			p->step = STEP_CP_SUB;
			if (!transport_subscribe(p->t, p->addr, p->h_cp, 2, cp_sub_cb, p, NULL))
				finish(p, 1, "Pen CP subscribe not started");
			return;
		}
		/* bluetoothd may pass the indication on before the write's
		 * reply: both orders are fine. */
		if ((p->step == STEP_CP_WAIT || p->step == STEP_CP_WRITE) &&
		    ev->u.value.handle == p->h_cp && !p->cp_response) {
			const uint8_t *v = ev->u.value.val;

			if (ev->u.value.len < 9 || !crc_ok(v, ev->u.value.len) ||
			    v[0] != NL_CP_RESPONSE || v[1] != NL_CP_SET_LIVE_RATE || v[2] != 0x01 ||
			    v[3] != 4) {
				finish(p, 1, "Pen CP response malformed or not success");
				return;
			}
			say("Pen CP response indication: success, rate 4 Hz (indication flag %d)",
			    ev->u.value.indication);
			p->cp_response = true;
			if (p->step == STEP_CP_WRITE)
				return; /* cp_write_cb goes on */
			after_cp(p);
			return;
		}
		return;
	}
}

static void after_cp(struct probe *p)
{
	if (p->power_cycle) {
		say("powering %s off", p->adapter);
		p->step = STEP_KILLED;
		set_powered(p, false);
		return;
	}
	if (!p->bluetoothd) {
		finish(p, 0, "discover, pair, connect, read, notify, indicate");
		return;
	}
	p->btd_pid = find_bluetoothd();
	if (p->btd_pid <= 0) {
		finish(p, 1, "bluetoothd not found in /proc");
		return;
	}
	say("killing bluetoothd pid %d (SIGKILL)", (int)p->btd_pid);
	p->step = STEP_KILLED;
	kill(p->btd_pid, SIGKILL);
}

static void on_notice(const struct transport_bluez_notice *n, void *ud)
{
	struct probe *p = ud;
	static const char *const names[] = {
		[TRANSPORT_BLUEZ_NOTICE_BUS_LOST] = "bus-lost",
		[TRANSPORT_BLUEZ_NOTICE_BLUEZ_UP] = "bluez-up",
		[TRANSPORT_BLUEZ_NOTICE_BLUEZ_GONE] = "bluez-gone",
		[TRANSPORT_BLUEZ_NOTICE_ADAPTER] = "adapter",
		[TRANSPORT_BLUEZ_NOTICE_ADAPTER_GONE] = "adapter-gone",
		[TRANSPORT_BLUEZ_NOTICE_ADAPTER_POWER] = "adapter-power",
		[TRANSPORT_BLUEZ_NOTICE_AGENT] = "agent",
		[TRANSPORT_BLUEZ_NOTICE_DISCOVERING] = "discovering",
		[TRANSPORT_BLUEZ_NOTICE_PASSKEY_WANTED] = "passkey-wanted",
		[TRANSPORT_BLUEZ_NOTICE_CONFIRM_WANTED] = "confirm-wanted",
		[TRANSPORT_BLUEZ_NOTICE_PAIRING_DONE] = "pairing-done",
		[TRANSPORT_BLUEZ_NOTICE_DEVICE_REMOVED] = "device-removed",
	};

	say("notice %s addr '%s' serial '%s' detail '%s' passkey %u err %d", names[n->type],
	    n->addr, n->serial, n->detail, n->passkey, n->err);
	switch (n->type) {
	case TRANSPORT_BLUEZ_NOTICE_AGENT:
		p->agent_ok = n->err == 0;
		break;
	case TRANSPORT_BLUEZ_NOTICE_ADAPTER:
		p->adapter_on = strcmp(n->detail, "powered") == 0;
		break;
	case TRANSPORT_BLUEZ_NOTICE_ADAPTER_POWER:
		p->adapter_on = strcmp(n->detail, "on") == 0;
		p->adapter_off = !p->adapter_on;
		break;
	case TRANSPORT_BLUEZ_NOTICE_DISCOVERING:
		p->discovering = strcmp(n->detail, "on") == 0;
		if (p->discovering && p->step == STEP_SCANNING)
			start_pen(p);
		break;
	case TRANSPORT_BLUEZ_NOTICE_PASSKEY_WANTED:
		p->passkey_wanted = true;
		p->passkey_sent = false;
		p->pair_requests++;
		break;
	case TRANSPORT_BLUEZ_NOTICE_BLUEZ_GONE:
		p->bluez_gone = true;
		break;
	case TRANSPORT_BLUEZ_NOTICE_BLUEZ_UP:
		if (p->bluez_gone && n->err == 0)
			p->bluez_back = true;
		break;
	case TRANSPORT_BLUEZ_NOTICE_BUS_LOST:
	case TRANSPORT_BLUEZ_NOTICE_ADAPTER_GONE:
	case TRANSPORT_BLUEZ_NOTICE_CONFIRM_WANTED:
	case TRANSPORT_BLUEZ_NOTICE_PAIRING_DONE:
	case TRANSPORT_BLUEZ_NOTICE_DEVICE_REMOVED:
		break;
	}
}

/* Once a second: things that are polled (the pen's log, child processes). */
static int tick(sd_event_source *s, uint64_t usec, void *ud)
{
	struct probe *p = ud;

	(void)sd_event_source_set_time_relative(s, 1000000);
	if (p->pen_pid > 0 && waitpid(p->pen_pid, NULL, WNOHANG) == p->pen_pid) {
		p->pen_pid = 0;
		finish(p, 1, "the pen exited");
		return 0;
	}
	if (p->btd_pid > 0)
		(void)waitpid(p->btd_pid, NULL, WNOHANG);
	switch (p->step) {
	case STEP_WAIT_ADAPTER:
		if (p->agent_ok && p->adapter_on) {
			say("agent registered, adapter powered: scanning");
			p->step = STEP_SCANNING;
			if (transport_scan_start(p->t) < 0)
				finish(p, 1, "scan_start failed");
		}
		break;
	case STEP_SCANNING:
		if (p->pen_pid > 0 && ++p->scan_ticks >= SCAN_RETRY_TICKS) {
			/* btvirt reports an advertisement once per scan enable. */
			say("pen not found yet: restarting discovery");
			p->scan_ticks = 0;
			transport_scan_stop(p->t);
			(void)transport_scan_start(p->t);
		}
		break;
	case STEP_CONNECTING:
		if (p->passkey_wanted && !p->passkey_sent) {
			long key = pen_passkey(p);

			if (key >= 0) {
				say("operator types passkey %06ld for %s", key, p->serial);
				p->passkey_sent = true;
				if (transport_bluez_pair(p->t, p->serial, (uint32_t)key) < 0)
					finish(p, 1, "transport_bluez_pair failed");
			}
		}
		break;
	case STEP_KILLED:
		if (p->power_cycle && p->lost_event && p->adapter_off) {
			say("link loss and adapter off reported; powering %s on", p->adapter);
			p->second_round = true;
			p->step = STEP_RESCAN;
			(void)transport_scan_start(p->t);
			set_powered(p, true);
			break;
		}
		if (!p->power_cycle && p->lost_event && p->bluez_gone) {
			char log[600];
			const char *argv[] = { p->bluetoothd, "-n", "-d", NULL };

			snprintf(log, sizeof(log), "%s/bluetoothd-restarted.log", p->logdir);
			say("link loss and bluez-gone reported; starting %s again", p->bluetoothd);
			p->btd_pid = spawn(argv, log);
			p->second_round = true;
			p->step = STEP_RESCAN;
			p->agent_ok = false;
			(void)transport_scan_start(p->t);
		}
		break;
	case STEP_RESCAN:
	case STEP_MTU:
	case STEP_DISCOVER:
	case STEP_FEATURE:
	case STEP_LIVE_SUB:
	case STEP_LIVE_WAIT:
	case STEP_CP_SUB:
	case STEP_CP_WRITE:
	case STEP_CP_WAIT:
	case STEP_RECONNECTING:
	case STEP_REREAD:
	case STEP_DONE:
		break;
	}
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "pen", required_argument, NULL, 'p' },
		{ "pen-adapter", required_argument, NULL, 'P' },
		{ "adapter", required_argument, NULL, 'a' },
		{ "serial", required_argument, NULL, 's' },
		{ "log", required_argument, NULL, 'l' },
		{ "restart", required_argument, NULL, 'r' },
		{ "power-cycle", no_argument, NULL, 'c' },
		{ 0 },
	};
	struct probe p = { .serial = "SIMBZ1", .pen_adapter = "hci0", .logdir = "/tmp", .rc = 1 };
	struct transport_config cfg = { .adapter = "hci1" };
	sd_event_source *timer = NULL;
	int c, r;

	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'p': p.pen_bin = optarg; break;
		case 'P': p.pen_adapter = optarg; break;
		case 'a': cfg.adapter = optarg; break;
		case 's': p.serial = optarg; break;
		case 'l': p.logdir = optarg; break;
		case 'r': p.bluetoothd = optarg; break;
		case 'c': p.power_cycle = true; break;
		default: return 2;
		}
	}
	if (!p.pen_bin) {
		fprintf(stderr, "usage: %s --pen BIN [--pen-adapter hci0] [--adapter hci1] "
				"[--serial S] [--log DIR] [--restart BLUETOOTHD]\n", argv[0]);
		return 2;
	}
	p.adapter = cfg.adapter;
	snprintf(p.pen_log, sizeof(p.pen_log), "%s/pen-%s.log", p.logdir, p.serial);
	unlink(p.pen_log);
	signal(SIGPIPE, SIG_IGN);
	if (sd_event_default(&p.ev) < 0)
		return 1;
	r = transport_new(p.ev, "bluez", &cfg, &p.t);
	if (r < 0) {
		say("FAIL: transport_new(bluez): %s", strerror(-r));
		return 1;
	}
	transport_set_sink(p.t, on_event, &p);
	transport_bluez_set_notice(p.t, on_notice, &p);
	if (sd_event_add_time_relative(p.ev, &timer, CLOCK_MONOTONIC, 1000000, 0, tick, &p) < 0 ||
	    sd_event_source_set_enabled(timer, SD_EVENT_ON) < 0)
		return 1;
	(void)sd_event_loop(p.ev);
	transport_free(p.t);
	sd_event_source_disable_unref(timer);
	if (p.pen_pid > 0) {
		kill(p.pen_pid, SIGTERM);
		waitpid(p.pen_pid, NULL, 0);
	}
	sd_event_unref(p.ev);
	return p.rc;
}
