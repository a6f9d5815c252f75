/* SPDX-License-Identifier: MIT */
/*
 * A fleet's ticks are spread over the tick period: needlelink-sim runs four
 * pens on the local radio at 20 live samples per second; this test connects
 * to each, subscribes to Live Status and notes when each notification
 * arrives. A pen notifies only from its tick, so the arrival times of one
 * pen, modulo the 20 ms tick, gather around that pen's phase. With four pens
 * the phases must lie a quarter of the period apart (pen k at k x 5 ms after
 * pen 0), as a central's connection events would: all four at once fails.
 * The phases are circular means over 40 samples each, so one late sample on
 * a loaded machine does not decide the result.
 *
 * usage: test-phases NEEDLELINK_SIM
 */
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "lradio.h"
#include "sim-test.h"

#define PENS 4
#define SAMPLES 40
#define TICK_US 20000.0 /* needlelink-sim's default --tick-ms */
#define TOLERANCE_US 2000.0
#define GUARD_USEC (120ULL * 1000000ULL) /* a hang fails, it is not a timing check */

struct pen {
	struct fleet *f;
	unsigned index;
	struct lradio_client *c;
	char sock[256];
	uint16_t live;
	bool connecting;
	unsigned n;
	double sum_cos, sum_sin;
};

struct fleet {
	sd_event *ev;
	pid_t pid;
	struct pen pens[PENS];
	unsigned done;
};

static const char scenario[] =
	"{\"name\": \"phases\",\n"
	" \"pen\": {\"serial\": \"PH\", \"kind\": \"motorised\", \"live_rate_hz\": 20},\n"
	" \"cartridges\": {\"c\": {\"uid\": \"auto\", \"lot\": \"PH\"}},\n"
	" \"timeline\": [{\"do\": \"insert\", \"cartridge\": \"c\"}]}\n";

static uint64_t now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static void fail_now(const struct pen *p, const char *what, int err)
{
	fprintf(stderr, "test-phases: pen %u: %s: %s\n", p->index, what, strerror(-err));
	kill(p->f->pid, SIGTERM);
	exit(1);
}

static void on_value(struct lradio_client *c, uint16_t handle, bool ind, const uint8_t *val,
		     size_t len, void *ud)
{
	struct pen *p = ud;
	double a;

	if (handle != p->live || p->n >= SAMPLES)
		return;
	a = 2.0 * M_PI * (double)(now_us() % (uint64_t)TICK_US) / TICK_US;
	p->sum_cos += cos(a);
	p->sum_sin += sin(a);
	if (++p->n == SAMPLES && ++p->f->done == PENS)
		sd_event_exit(p->f->ev, 0);
}

static void on_cccd(struct lradio_client *c, int err, uint8_t att_err, void *ud)
{
	if (err < 0 || att_err)
		fail_now(ud, "subscribe", err < 0 ? err : -EPROTO);
}

static void on_discover(struct lradio_client *c, int err, const struct lradio_attr *a, size_t n,
			void *ud)
{
	struct pen *p = ud;

	if (err < 0)
		fail_now(p, "discover", err);
	CHECK_EQ(lradio_client_find_handle(c, sim_chr_table()[SIM_CHR_LIVE_STATUS].uuid, &p->live),
		 0);
	CHECK(lradio_client_write_cccd(c, p->live, SIM_CCCD_NOTIFY, on_cccd, p, NULL) > 0);
}

static void on_mtu(struct lradio_client *c, int err, uint16_t mtu, void *ud)
{
	if (err < 0)
		fail_now(ud, "mtu", err);
	CHECK(lradio_client_discover(c, on_discover, ud, NULL) > 0);
}

static void on_connect(struct lradio_client *c, int err, const struct lradio_hello *h, void *ud)
{
	if (err < 0)
		fail_now(ud, "connect", err);
	CHECK(lradio_client_exchange_mtu(c, 64, on_mtu, ud, NULL) > 0);
}

static void on_disconnect(struct lradio_client *c, int reason, void *ud)
{
	fail_now(ud, "link dropped", reason);
}

/* Connects each pen once its socket is there. */
static int on_poll(sd_event_source *s, uint64_t usec, void *ud)
{
	struct fleet *f = ud;
	struct stat st;

	for (unsigned i = 0; i < PENS; i++) {
		struct pen *p = &f->pens[i];

		if (p->connecting || stat(p->sock, &st) != 0)
			continue;
		p->connecting = true;
		CHECK_EQ(lradio_client_connect(p->c, p->sock, on_connect, p, NULL), 0);
	}
	return sd_event_source_set_time(s, usec + 50000) < 0
		       ? -1
		       : sd_event_source_set_enabled(s, SD_EVENT_ONESHOT);
}

static int on_guard(sd_event_source *s, uint64_t usec, void *ud)
{
	struct fleet *f = ud;

	fprintf(stderr, "test-phases: stuck with %u of %u pens sampled\n", f->done, PENS);
	kill(f->pid, SIGTERM);
	exit(1);
}

/* The pen's phase in the tick period, us in [0, TICK_US). */
static double phase_us(const struct pen *p)
{
	double a = atan2(p->sum_sin, p->sum_cos);

	if (a < 0)
		a += 2.0 * M_PI;
	return a / (2.0 * M_PI) * TICK_US;
}

int main(int argc, char **argv)
{
	static struct fleet f;
	char dir[] = "/tmp/nl-phases-XXXXXX", scn[64], state[64], radio[64], log[64];
	const char *args[20];
	sd_event_source *poll;
	int st, n = 0;
	double p0;
	bool ok = true;
	FILE *file;

	if (argc != 2) {
		fprintf(stderr, "usage: %s NEEDLELINK_SIM\n", argv[0]);
		return 2;
	}
	CHECK(mkdtemp(dir));
	snprintf(scn, sizeof(scn), "%s/phases.json", dir);
	snprintf(state, sizeof(state), "%s/state", dir);
	snprintf(radio, sizeof(radio), "%s/radio", dir);
	snprintf(log, sizeof(log), "%s/sim.log", dir);
	file = fopen(scn, "we");
	CHECK(file);
	fputs(scenario, file);
	fclose(file);
	args[n++] = argv[1];
	args[n++] = "--scenario";
	args[n++] = scn;
	args[n++] = "--fleet";
	args[n++] = "4";
	args[n++] = "--linger";
	args[n++] = "--state-dir";
	args[n++] = state;
	args[n++] = "--radio-dir";
	args[n++] = radio;
	args[n++] = "--wipe";
	args[n] = NULL;
	f.pid = sim_test_spawn(args, log);

	CHECK(sd_event_default(&f.ev) >= 0);
	for (unsigned i = 0; i < PENS; i++) {
		struct pen *p = &f.pens[i];

		p->f = &f;
		p->index = i;
		snprintf(p->sock, sizeof(p->sock), "%s/PH-%03u.sock", radio, i + 1);
		CHECK_EQ(lradio_client_new(f.ev, &p->c), 0);
		lradio_client_set_value_handler(p->c, on_value, p);
		lradio_client_set_disconnect_handler(p->c, on_disconnect, p);
	}
	CHECK(sd_event_add_time_relative(f.ev, &poll, CLOCK_MONOTONIC, 50000, 1000, on_poll, &f) >=
	      0);
	CHECK(sd_event_add_time_relative(f.ev, NULL, CLOCK_MONOTONIC, GUARD_USEC, 0, on_guard,
					 &f) >= 0);
	CHECK(sd_event_loop(f.ev) >= 0);

	p0 = phase_us(&f.pens[0]);
	for (unsigned i = 0; i < PENS; i++) {
		const struct pen *p = &f.pens[i];
		double rel = fmod(phase_us(p) - p0 + TICK_US, TICK_US);
		double want = TICK_US * i / PENS;
		double off = fabs(rel - want);
		/* how tightly the samples gather: 1 all at one phase, ~0 spread out */
		double r = sqrt(p->sum_cos * p->sum_cos + p->sum_sin * p->sum_sin) / p->n;

		if (off > TICK_US / 2)
			off = TICK_US - off;
		fprintf(stderr, "test-phases: pen %u: phase %.0f us after pen 0 (want %.0f), %u samples, concentration %.2f\n",
			i, rel, want, p->n, r);
		if (off > TOLERANCE_US || r < 0.5)
			ok = false;
	}
	for (unsigned i = 0; i < PENS; i++)
		lradio_client_free(f.pens[i].c);
	kill(f.pid, SIGTERM);
	CHECK_EQ(waitpid(f.pid, &st, 0), f.pid);
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	sd_event_source_unref(poll);
	sd_event_unref(f.ev);
	CHECK(ok);
	sim_test_rm_rf(dir);
	fprintf(stderr, "test-phases: ok\n");
	return 0;
}
