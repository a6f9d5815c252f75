/* SPDX-License-Identifier: MIT */
/* needlelinkd: command line, configuration, then the loop (daemon.c). */
#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "daemon.h"
#include "log.h"

#ifndef NLGW_VERSION
#define NLGW_VERSION "0.0.0"
#endif

enum {
	OPT_CHECK = 0x100,
	OPT_ID,
	OPT_BASE,
	OPT_JOURNAL,
	OPT_LOG_LEVEL,
	OPT_HOST,
	OPT_PORT,
	OPT_PROTOCOL,
	OPT_ALLOW,
	OPT_TRANSPORT,
	OPT_SIM_DIR,
	OPT_MAX_CONN,
	OPT_HEALTH,
	OPT_STATS,
};

static void usage(FILE *f)
{
	fputs("Usage: needlelinkd [OPTION]...\n"
	      "NeedleLink gateway: connects allow-listed pens through the configured\n"
	      "transport (transport.kind: \"sim\", the simulator's local radio, or\n"
	      "\"bluez\" when that backend is built in), stores every record in a SQLite\n"
	      "journal, acknowledges a record to its pen only once it is committed, and\n"
	      "publishes records, session summaries, alerts, live status, pen and\n"
	      "gateway state and health to an MQTT broker (docs/mqtt-api.md); answers\n"
	      "requests on BASE/pens/SERIAL/request/OP. Runs in the foreground; logs to\n"
	      "stderr with syslog priorities; notifies systemd (READY, WATCHDOG,\n"
	      "STOPPING) when run by it. SIGTERM or SIGINT: publish offline state, flush\n"
	      "the journal, disconnect, exit 0.\n"
	      "\n"
	      "  -c, --config FILE        configuration file (default\n"
	      "                           " CONFIG_DEFAULT_PATH ";\n"
	      "                           when that default file is missing the built-in\n"
	      "                           defaults apply; a FILE given here must exist)\n"
	      "      --check-config       validate the configuration (file and flags),\n"
	      "                           print FILE:LINE errors, exit 0 if valid, else 2\n"
	      "  -s, --set SECTION.KEY=VALUE\n"
	      "                           override any configuration key (repeatable)\n"
	      "      --id ID              gateway.id\n"
	      "      --base-topic TOPIC   gateway.base_topic\n"
	      "      --journal PATH       gateway.journal\n"
	      "      --log-level LEVEL    gateway.log_level (err, warning, notice, info, debug)\n"
	      "      --max-connections N  gateway.max_connections\n"
	      "      --host HOST          mqtt.host\n"
	      "      --port PORT          mqtt.port\n"
	      "      --protocol 5|3.1.1   mqtt.protocol\n"
	      "      --allow SERIALS      pens.allow (comma separated, \"*\" for any pen)\n"
	      "      --transport sim|bluez  transport.kind\n"
	      "      --sim-dir DIR        transport.sim_dir\n"
	      "      --health-interval S  seconds between health messages (default 30)\n"
	      "      --stats              at exit, log CPU time and peak RSS; journal\n"
	      "                           commits, WAL syncs and what closed each batch;\n"
	      "                           outbox publishes and how often the outbox fell\n"
	      "                           a window behind; durable records per second\n"
	      "                           (busiest second and mean); percentiles of the\n"
	      "                           time from a record's arrival to its PUBLISH\n"
	      "                           handed to Paho and to its being durable\n"
	      "  -h, --help               show this help and exit\n"
	      "  -V, --version            show the version and exit\n"
	      "\n"
	      "Flags override the file. Exit status: 0 after a clean shutdown, 1 on a\n"
	      "runtime failure, 2 on a usage or configuration error.\n",
	      f);
}

static int set_key(struct config *c, const char *key, const char *value)
{
	return config_set(c, key, value);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "check-config", no_argument, NULL, OPT_CHECK },
		{ "set", required_argument, NULL, 's' },
		{ "id", required_argument, NULL, OPT_ID },
		{ "base-topic", required_argument, NULL, OPT_BASE },
		{ "journal", required_argument, NULL, OPT_JOURNAL },
		{ "log-level", required_argument, NULL, OPT_LOG_LEVEL },
		{ "max-connections", required_argument, NULL, OPT_MAX_CONN },
		{ "host", required_argument, NULL, OPT_HOST },
		{ "port", required_argument, NULL, OPT_PORT },
		{ "protocol", required_argument, NULL, OPT_PROTOCOL },
		{ "allow", required_argument, NULL, OPT_ALLOW },
		{ "transport", required_argument, NULL, OPT_TRANSPORT },
		{ "sim-dir", required_argument, NULL, OPT_SIM_DIR },
		{ "health-interval", required_argument, NULL, OPT_HEALTH },
		{ "stats", no_argument, NULL, OPT_STATS },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{}
	};
	/* Overrides are applied after the file, in command-line order. */
	struct override {
		const char *key;
		char *value;
	} *ov = NULL;
	size_t n_ov = 0;
	const char *path = NULL;
	bool check = false;
	struct daemon_options dopts = { .version = NLGW_VERSION };
	struct config *cfg = NULL;
	int opt, r, code = 2;

	while ((opt = getopt_long(argc, argv, "c:s:hV", opts, NULL)) != -1) {
		const char *key = NULL;
		char *value = optarg;

		switch (opt) {
		case 'c':
			path = optarg;
			continue;
		case OPT_CHECK:
			check = true;
			continue;
		case OPT_STATS:
			dopts.stats = true;
			continue;
		case 'h':
			usage(stdout);
			free(ov);
			return 0;
		case 'V':
			printf("needlelinkd %s\n", NLGW_VERSION);
			free(ov);
			return 0;
		case OPT_HEALTH: {
			char *end;
			double s = strtod(optarg, &end);

			if (*end || !(s >= 0.1 && s <= 86400)) {
				fprintf(stderr, "needlelinkd: --health-interval: 0.1..86400 seconds\n");
				free(ov);
				return 2;
			}
			dopts.health_interval_us = (uint64_t)(s * 1e6);
			continue;
		}
		case 's': {
			char *eq = strchr(optarg, '=');

			if (!eq || eq == optarg) {
				fprintf(stderr, "needlelinkd: --set: SECTION.KEY=VALUE expected, got \"%s\"\n",
					optarg);
				free(ov);
				return 2;
			}
			*eq = '\0';
			key = optarg;
			value = eq + 1;
			break;
		}
		case OPT_ID: key = "gateway.id"; break;
		case OPT_BASE: key = "gateway.base_topic"; break;
		case OPT_JOURNAL: key = "gateway.journal"; break;
		case OPT_LOG_LEVEL: key = "gateway.log_level"; break;
		case OPT_MAX_CONN: key = "gateway.max_connections"; break;
		case OPT_HOST: key = "mqtt.host"; break;
		case OPT_PORT: key = "mqtt.port"; break;
		case OPT_PROTOCOL: key = "mqtt.protocol"; break;
		case OPT_ALLOW: key = "pens.allow"; break;
		case OPT_TRANSPORT: key = "transport.kind"; break;
		case OPT_SIM_DIR: key = "transport.sim_dir"; break;
		default:
			usage(stderr);
			free(ov);
			return 2;
		}
		struct override *n = realloc(ov, (n_ov + 1) * sizeof(*ov));
		if (!n) {
			free(ov);
			return 1;
		}
		ov = n;
		ov[n_ov++] = (struct override){ key, value };
	}
	if (optind < argc) {
		fprintf(stderr, "needlelinkd: unexpected argument \"%s\"\n", argv[optind]);
		usage(stderr);
		free(ov);
		return 2;
	}

	r = config_new(&cfg);
	if (r < 0) {
		fprintf(stderr, "needlelinkd: %s\n", strerror(-r));
		free(ov);
		return 1;
	}
	(void)config_load(cfg, path ? path : CONFIG_DEFAULT_PATH, path != NULL);
	for (size_t i = 0; i < n_ov; i++)
		(void)set_key(cfg, ov[i].key, ov[i].value);
	free(ov);
	if (config_n_errors(cfg) == 0)
		(void)config_validate(cfg);
	if (config_n_errors(cfg) > 0) {
		for (size_t i = 0; i < config_n_errors(cfg); i++)
			fprintf(stderr, "%s\n", config_error(cfg, i));
		fprintf(stderr, "needlelinkd: configuration invalid (%zu error%s)\n",
			config_n_errors(cfg), config_n_errors(cfg) == 1 ? "" : "s");
		config_free(cfg);
		return 2;
	}
	if (check) {
		char hash[17];

		int cpu;

		if (daemon_check_policy(cfg) < 0 || daemon_check_cpu(cfg, &cpu) < 0) {
			config_free(cfg);
			return 2;
		}

		config_hash(cfg, hash);
		printf("configuration valid (%s), hash %s\n",
		       path ? path : CONFIG_DEFAULT_PATH, hash);
		config_free(cfg);
		return 0;
	}
	log_set_max_level(config_log_level(cfg));
	code = daemon_run(cfg, &dopts);
	config_free(cfg);
	return code;
}
