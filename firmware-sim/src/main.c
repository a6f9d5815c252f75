/* SPDX-License-Identifier: MIT */
/*
 * needlelink-sim: simulated NeedleLink pens on the local radio or, one pen
 * per adapter, on the BlueZ radio, driven by scenario files. See firmware-sim/README.md.
 */
#include <cjson/cJSON.h>
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-event.h>
#include <unistd.h>

#include "host-platform.h"
#include "lradio.h"
#include "runner.h"
#include "scenario.h"

#define TICK_USEC 20000ull /* wall time between pen ticks */

struct app {
	sd_event *ev;
	struct host_clock clock;
	struct runner **pens;
	unsigned npens;
	double duration_s; /* 0: until every timeline ends */
	bool linger; /* keep running after every timeline ended */
	uint64_t tick_us; /* wall time between pen ticks */
	struct tick_phase *phases;
	unsigned nphases;
};

/* The pens tick in up to TICK_PHASES phases spread evenly over the tick
 * period (pen i in phase i % TICK_PHASES), as a central's controller spreads
 * its links' connection events over the connection interval: a fleet's
 * notifications then do not all reach the central in the same instant. */
#define TICK_PHASES 16u

struct tick_phase {
	struct app *a;
	unsigned phase;
	sd_event_source *timer;
};

static void usage(FILE *f)
{
	fputs("Usage: needlelink-sim [OPTION]...\n"
	      "Simulated NeedleLink pens: the pen firmware core on the local radio\n"
	      "(Unix sockets) or on a Bluetooth adapter through BlueZ, driven by a\n"
	      "scenario timeline.\n"
	      "\n"
	      "  -s, --scenario FILE    run the scenario in FILE (JSON, see README.md);\n"
	      "                         default: the built-in demo (waits for the gateway\n"
	      "                         to authorise a session, treats, loops)\n"
	      "  -n, --fleet N          run N pens (1..1000) with generated identities\n"
	      "                         (serial SERIAL-001.. or NLSIM-0001..)\n"
	      "  -t, --time-factor F    scenario seconds per wall second (default 1;\n"
	      "                         60 runs a 30-minute treatment in 30 s)\n"
	      "  -d, --duration S       stop after S scenario seconds (default: when every\n"
	      "                         timeline has ended; never for looping scenarios)\n"
	      "      --linger           keep the pens up after every timeline has ended,\n"
	      "                         until --duration, SIGINT or SIGTERM (a central\n"
	      "                         collects the records)\n"
	      "      --tick-ms N        wall ms between a pen's ticks, 1..50 (default 20;\n"
	      "                         a fleet ticks in up to 16 phases spread over it);\n"
	      "                         a pen streams at most its notify_burst (16) RACP\n"
	      "                         record segments per tick\n"
	      "      --serial S         serial of the (first) pen, overriding the scenario\n"
	      "      --kind K           motorised or dial, overriding the scenario\n"
	      "      --state-dir DIR    where each pen keeps its flash files SERIAL.flash0/1\n"
	      "                         (default $XDG_STATE_HOME/needlelink-sim, else\n"
	      "                         ~/.local/state/needlelink-sim)\n"
	      "      --wipe             erase the pens' flash first (new store epoch)\n"
	      "      --radio-dir DIR    local radio directory (default $NEEDLELINK_SIM_DIR,\n"
	      "                         else $XDG_RUNTIME_DIR/needlelink-sim, else\n"
	      "                         /tmp/needlelink-sim-UID)\n"
	      "      --no-radio         run without a radio (scenario checks, benches)\n"
	      "      --radio KIND       local (default) or bluez: the pen is a BLE\n"
	      "                         peripheral on --adapter through bluetoothd (system\n"
	      "                         bus); one pen only (--fleet 1), since every pen on\n"
	      "                         an adapter would share its one GATT database\n"
	      "      --adapter hciN     adapter of --radio bluez (default hci0)\n"
	      "      --summary FILE     write a JSON summary of every pen at exit\n"
	      "                         (\"-\" for stdout)\n"
	      "      --validate         check the scenario file and exit\n"
	      "  -v, --verbose          also log debug lines\n"
	      "  -q, --quiet            log warnings and errors only (and the BlueZ\n"
	      "                         radio's notices, such as its passkey)\n"
	      "  -h, --help             show this help\n"
	      "\n"
	      "Logs go to stderr, one line per event: [scenario seconds] SERIAL: event.\n"
	      "Exit status: 0 when the run ended, 1 on a usage or scenario error,\n"
	      "2 when a pen could not start.\n",
	      f);
}

/* "hci" and a decimal number: the adapter's name under /org/bluez. */
static bool valid_adapter(const char *s)
{
	if (strncmp(s, "hci", 3) != 0 || !s[3] || strlen(s) > 8)
		return false;
	for (s += 3; *s; s++)
		if (*s < '0' || *s > '9')
			return false;
	return true;
}

static bool all_finished(const struct app *a)
{
	for (unsigned i = 0; i < a->npens; i++)
		if (!runner_finished(a->pens[i]))
			return false;
	return true;
}

static int on_tick(sd_event_source *s, uint64_t usec, void *userdata)
{
	struct tick_phase *t = userdata;
	struct app *a = t->a;

	for (unsigned i = t->phase; i < a->npens; i += a->nphases)
		runner_tick(a->pens[i]);
	if (t->phase != 0)
		return sd_event_source_set_time(s, usec + a->tick_us);
	if ((!a->linger && all_finished(a)) ||
	    (a->duration_s > 0 && host_clock_now_ms(&a->clock) >= (uint64_t)(a->duration_s * 1000)))
		return sd_event_exit(a->ev, 0);
	return sd_event_source_set_time(s, usec + a->tick_us);
}

static int write_summary(const struct app *a, const char *path, const char *scenario)
{
	cJSON *root = cJSON_CreateObject(), *arr;
	char *text;
	FILE *f;
	int r = 0;

	if (!root)
		return -ENOMEM;
	cJSON_AddStringToObject(root, "scenario", scenario);
	cJSON_AddNumberToObject(root, "scenario_seconds",
				(double)host_clock_now_ms(&a->clock) / 1000.0);
	arr = cJSON_AddArrayToObject(root, "pens");
	for (unsigned i = 0; i < a->npens; i++)
		cJSON_AddItemToArray(arr, runner_summary(a->pens[i]));
	text = cJSON_Print(root);
	cJSON_Delete(root);
	if (!text)
		return -ENOMEM;
	if (strcmp(path, "-") == 0) {
		puts(text);
	} else {
		f = fopen(path, "we");
		if (!f) {
			r = -errno;
		} else {
			if (fputs(text, f) < 0 || fputc('\n', f) < 0)
				r = -EIO;
			if (fclose(f) != 0 && r == 0)
				r = -errno;
		}
	}
	free(text);
	return r;
}

static void default_state_dir(char *buf, size_t size)
{
	const char *x = getenv("XDG_STATE_HOME"), *home = getenv("HOME");

	if (x && *x)
		snprintf(buf, size, "%s/needlelink-sim", x);
	else if (home && *home)
		snprintf(buf, size, "%s/.local/state/needlelink-sim", home);
	else
		snprintf(buf, size, "/tmp/needlelink-sim-state-%u", (unsigned)getuid());
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"scenario", required_argument, NULL, 's'},
		{"fleet", required_argument, NULL, 'n'},
		{"time-factor", required_argument, NULL, 't'},
		{"duration", required_argument, NULL, 'd'},
		{"serial", required_argument, NULL, 'S'},
		{"kind", required_argument, NULL, 'K'},
		{"state-dir", required_argument, NULL, 'D'},
		{"wipe", no_argument, NULL, 'W'},
		{"radio-dir", required_argument, NULL, 'R'},
		{"no-radio", no_argument, NULL, 'N'},
		{"radio", required_argument, NULL, 'B'},
		{"adapter", required_argument, NULL, 'A'},
		{"linger", no_argument, NULL, 'L'},
		{"tick-ms", required_argument, NULL, 'T'},
		{"summary", required_argument, NULL, 'O'},
		{"validate", no_argument, NULL, 'V'},
		{"verbose", no_argument, NULL, 'v'},
		{"quiet", no_argument, NULL, 'q'},
		{"help", no_argument, NULL, 'h'},
		{0},
	};
	const char *scenario_path = NULL, *serial = NULL, *summary = NULL, *radio_dir = NULL;
	const char *adapter = NULL, *radio_what = ", radio in ", *radio_where;
	bool bluez = false;
	char state_dir[1024], radio_buf[1024], err[512], serial_buf[64];
	bool wipe = false, no_radio = false, validate = false;
	int log_level = SIM_LOG_INFO, kind = -1, c, r, exit_code = 0;
	unsigned fleet = 1;
	double factor = 1.0;
	struct scenario *scn = NULL;
	struct app a;
	sigset_t ss;
	char *end;

	memset(&a, 0, sizeof(a));
	a.tick_us = TICK_USEC;
	default_state_dir(state_dir, sizeof(state_dir));
	while ((c = getopt_long(argc, argv, "s:n:t:d:vqh", opts, NULL)) != -1) {
		switch (c) {
		case 's':
			scenario_path = optarg;
			break;
		case 'n':
			fleet = (unsigned)strtoul(optarg, &end, 10);
			if (*end || fleet < 1 || fleet > 1000) {
				fprintf(stderr,
					"needlelink-sim: --fleet: 1..1000 expected, got \"%s\"\n",
					optarg);
				return 1;
			}
			break;
		case 't':
			factor = strtod(optarg, &end);
			if (*end || !(factor > 0) || factor > 100000) {
				fprintf(stderr, "needlelink-sim: --time-factor: a number in (0, "
						"100000] expected\n");
				return 1;
			}
			break;
		case 'd':
			a.duration_s = strtod(optarg, &end);
			if (*end || !(a.duration_s > 0)) {
				fprintf(stderr,
					"needlelink-sim: --duration: seconds > 0 expected\n");
				return 1;
			}
			break;
		case 'S':
			serial = optarg;
			break;
		case 'K':
			if (strcmp(optarg, "motorised") == 0)
				kind = SIM_PEN_MOTORISED;
			else if (strcmp(optarg, "dial") == 0)
				kind = SIM_PEN_DIAL;
			else {
				fprintf(stderr, "needlelink-sim: --kind: motorised or dial\n");
				return 1;
			}
			break;
		case 'D':
			snprintf(state_dir, sizeof(state_dir), "%s", optarg);
			break;
		case 'W':
			wipe = true;
			break;
		case 'R':
			radio_dir = optarg;
			break;
		case 'N':
			no_radio = true;
			break;
		case 'B':
			if (strcmp(optarg, "local") == 0)
				bluez = false;
			else if (strcmp(optarg, "bluez") == 0)
				bluez = true;
			else {
				fprintf(stderr, "needlelink-sim: --radio: local or bluez\n");
				return 1;
			}
			break;
		case 'A':
			if (!valid_adapter(optarg)) {
				fprintf(stderr,
					"needlelink-sim: --adapter: hciN expected, got \"%s\"\n",
					optarg);
				return 1;
			}
			adapter = optarg;
			break;
		case 'L':
			a.linger = true;
			break;
		case 'T': {
			unsigned long ms = strtoul(optarg, &end, 10);

			if (*end || ms < 1 || ms > 50) {
				fprintf(stderr, "needlelink-sim: --tick-ms: 1..50 expected\n");
				return 1;
			}
			a.tick_us = ms * 1000u;
			break;
		}
		case 'O':
			summary = optarg;
			break;
		case 'V':
			validate = true;
			break;
		case 'v':
			log_level = SIM_LOG_DEBUG;
			break;
		case 'q':
			log_level = SIM_LOG_WARNING;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 1;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "needlelink-sim: unexpected argument \"%s\"\n", argv[optind]);
		usage(stderr);
		return 1;
	}

	if (bluez && (no_radio || radio_dir)) {
		fprintf(stderr, "needlelink-sim: --radio bluez excludes --no-radio and "
				"--radio-dir\n");
		return 1;
	}
	if (adapter && !bluez) {
		fprintf(stderr, "needlelink-sim: --adapter needs --radio bluez\n");
		return 1;
	}
	if (bluez && fleet > 1) {
		fprintf(stderr,
			"needlelink-sim: --radio bluez runs one pen per adapter, not %u: every "
			"pen on an adapter lands in its one GATT database, so the pens would "
			"merge into one peripheral\n",
			fleet);
		return 1;
	}
	if (bluez && !adapter)
		adapter = "hci0";

	if (scenario_path) {
		r = scenario_load(scenario_path, &scn, err, sizeof(err));
		if (r < 0) {
			fprintf(stderr, "needlelink-sim: %s\n", err);
			return 1;
		}
	} else {
		r = scenario_demo(&scn);
		if (r < 0) {
			fprintf(stderr, "needlelink-sim: built-in demo: %s\n", strerror(-r));
			return 2;
		}
	}
	if (validate) {
		printf("%s: ok (%zu events, %zu cartridges%s)\n", scn->path, scn->nevents,
		       scn->ncarts, scn->loop ? ", loops" : "");
		scenario_free(scn);
		return 0;
	}
	if (!no_radio && !bluez && !radio_dir) {
		r = lradio_default_dir(radio_buf, sizeof(radio_buf));
		if (r < 0) {
			fprintf(stderr, "needlelink-sim: radio directory: %s\n", strerror(-r));
			scenario_free(scn);
			return 1;
		}
		radio_dir = radio_buf;
	}
	radio_where = radio_dir;

	host_clock_init(&a.clock, factor);
	sigemptyset(&ss);
	sigaddset(&ss, SIGINT);
	sigaddset(&ss, SIGTERM);
	sigprocmask(SIG_BLOCK, &ss, NULL);
	signal(SIGPIPE, SIG_IGN);
	r = sd_event_default(&a.ev);
	if (r < 0) {
		fprintf(stderr, "needlelink-sim: sd_event: %s\n", strerror(-r));
		scenario_free(scn);
		return 2;
	}
	sd_event_add_signal(a.ev, NULL, SIGINT, NULL, NULL);
	sd_event_add_signal(a.ev, NULL, SIGTERM, NULL, NULL);

	a.pens = calloc(fleet, sizeof(*a.pens));
	if (!a.pens) {
		exit_code = 2;
		goto out;
	}
	if (bluez) {
		radio_what = ", BlueZ radio on ";
		radio_where = adapter;
	} else if (no_radio) {
		radio_what = ", no radio";
		radio_where = "";
	}
	host_log(&a.clock,
		 "needlelink-sim: %u pen(s), scenario %s, time factor %g, flash in %s%s%s", fleet,
		 scn->path, factor, state_dir, radio_what, radio_where);
	for (unsigned i = 0; i < fleet; i++) {
		struct runner_opts o = {
			.ev = a.ev,
			.clock = &a.clock,
			.state_dir = state_dir,
			.radio_dir = no_radio || bluez ? NULL : radio_dir,
			.bluez_adapter = bluez ? adapter : NULL,
			.wipe = wipe,
			.log_level = log_level,
			.index = i,
			.serial = serial,
			.kind = kind,
		};

		if (fleet > 1) {
			const char *base = serial ? serial : scenario_path ? scn->pen.serial : NULL;

			if (base)
				snprintf(serial_buf, sizeof(serial_buf), "%.28s-%03u", base, i + 1);
			else
				snprintf(serial_buf, sizeof(serial_buf), "NLSIM-%04u", i + 1);
			o.serial = serial_buf;
			/* A mixed fleet when nothing says otherwise: every 4th pen has a dial. */
			if (kind < 0 && !scenario_path)
				o.kind = i % 4 == 3 ? SIM_PEN_DIAL : SIM_PEN_MOTORISED;
		}
		r = runner_new(&o, scn, &a.pens[i]);
		if (r < 0) {
			exit_code = 2;
			goto out;
		}
		a.npens++;
	}
	a.nphases = a.npens < TICK_PHASES ? a.npens : TICK_PHASES;
	a.phases = calloc(a.nphases, sizeof(*a.phases));
	if (!a.phases) {
		exit_code = 2;
		goto out;
	}
	for (unsigned i = 0; i < a.nphases; i++) {
		a.phases[i] = (struct tick_phase){ .a = &a, .phase = i };
		/* 1 us accuracy: sd-event would otherwise align the phases to
		 * the same instants again. */
		r = sd_event_add_time_relative(a.ev, &a.phases[i].timer, CLOCK_MONOTONIC,
					       a.tick_us * i / a.nphases, 1, on_tick, &a.phases[i]);
		if (r >= 0)
			r = sd_event_source_set_enabled(a.phases[i].timer, SD_EVENT_ON);
		if (r < 0) {
			fprintf(stderr, "needlelink-sim: timer: %s\n", strerror(-r));
			exit_code = 2;
			goto out;
		}
	}
	r = sd_event_loop(a.ev);
	if (r < 0) {
		fprintf(stderr, "needlelink-sim: event loop: %s\n", strerror(-r));
		exit_code = 2;
	}
	host_log(&a.clock, "needlelink-sim: stopping");
	if (summary) {
		r = write_summary(&a, summary, scn->path);
		if (r < 0) {
			fprintf(stderr, "needlelink-sim: summary %s: %s\n", summary, strerror(-r));
			exit_code = 2;
		}
	}
out:
	for (unsigned i = 0; i < a.npens; i++)
		runner_free(a.pens[i]);
	free(a.pens);
	for (unsigned i = 0; a.phases && i < a.nphases; i++)
		sd_event_source_unref(a.phases[i].timer);
	free(a.phases);
	sd_event_unref(a.ev);
	scenario_free(scn);
	return exit_code;
}
