/* SPDX-License-Identifier: MIT */
/*
 * needlelinkctl pair SERIAL --passkey N | --confirm yes|no: answers the
 * Bluetooth pairing bluetoothd waits on for a pen, through the MQTT "pair"
 * request (docs/mqtt-api.md, "pair"; ctl-mqtt.h).
 * needlelinkctl release SERIAL: lets the gateway connect again to a pen it
 * quarantined, through the MQTT "release" request.
 */
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "config.h"
#include "ctl-mqtt.h"
#include "ctl-pair.h"

/* Exit status of a usage or connection error (as authorise and unlock). */
#define USAGE_STATUS 1

enum {
	OPT_PASSKEY = CTL_MQTT_OPT_END,
	OPT_CONFIRM,
};

static const struct option long_opts[] = {
	{ "journal", required_argument, NULL, 'j' },
	{ "config", required_argument, NULL, 'c' },
	{ "help", no_argument, NULL, 'h' },
	{ "verbose", no_argument, NULL, 'v' },
	CTL_MQTT_LONG_OPTS,
	{ "passkey", required_argument, NULL, OPT_PASSKEY },
	{ "confirm", required_argument, NULL, OPT_CONFIRM },
	{}
};

struct pair_args {
	const char *cmd; /* "pair" or "release" */
	const char *config, *serial;
	struct ctl_mqtt_args mqtt; /* connection options */
	bool verbose;
	bool has_passkey, has_confirm, confirm;
	long passkey;
};

static int bad(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int bad(const char *fmt, ...)
{
	va_list ap;

	fputs("needlelinkctl: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return USAGE_STATUS;
}

const char *ctl_pair_command(int argc, char **argv)
{
	static const char *const names[] = { "pair", "release", NULL };

	return ctl_find_command(argc, argv, long_opts, names);
}

static int parse_args(int argc, char **argv, struct pair_args *a)
{
	int opt, r;
	char *end;
	long v;

	optind = 1;
	while ((opt = getopt_long(argc, argv, "j:c:hv", long_opts, NULL)) != -1) {
		r = ctl_mqtt_args_parse(&a->mqtt, opt, optarg, a->cmd);
		if (r < 0)
			return USAGE_STATUS;
		if (r > 0)
			continue;
		switch (opt) {
		case 'j':
			break; /* the journal is not used here */
		case 'c':
			a->config = optarg;
			break;
		case 'h':
			return -1;
		case 'v':
			a->verbose = true;
			break;
		case OPT_PASSKEY:
			errno = 0;
			v = strtol(optarg, &end, 10);
			if (errno || end == optarg || *end || v < 0 || v > 999999)
				return bad("pair: --passkey: the 6 digits the pen shows (0..999999), not"
					   " \"%s\"", optarg);
			a->passkey = v;
			a->has_passkey = true;
			break;
		case OPT_CONFIRM:
			if (strcmp(optarg, "yes") == 0)
				a->confirm = true;
			else if (strcmp(optarg, "no") == 0)
				a->confirm = false;
			else
				return bad("pair: --confirm: yes or no, not \"%s\"", optarg);
			a->has_confirm = true;
			break;
		default:
			return USAGE_STATUS;
		}
	}
	if (optind >= argc ||
	    (strcmp(argv[optind], "pair") != 0 && strcmp(argv[optind], "release") != 0))
		return bad("no command");
	a->cmd = argv[optind++];
	if (optind >= argc)
		return strcmp(a->cmd, "pair") == 0
			       ? bad("pair: the pen's serial is missing (needlelinkctl pair SERIAL"
				     " --passkey N)")
			       : bad("release: the pen's serial is missing (needlelinkctl release"
				     " SERIAL)");
	a->serial = argv[optind++];
	if (optind < argc)
		return bad("%s: unexpected argument \"%s\"", a->cmd, argv[optind]);
	if (strcmp(a->cmd, "release") == 0)
		return a->has_passkey || a->has_confirm
			       ? bad("release: --passkey and --confirm are for pair")
			       : 0;
	if (a->has_passkey == a->has_confirm)
		return bad("pair: give exactly one of --passkey N and --confirm yes|no");
	return 0;
}

int ctl_pair_main(int argc, char **argv)
{
	struct pair_args a = { .cmd = ctl_pair_command(argc, argv) };
	struct config *cfg = NULL;
	cJSON *params = NULL;
	int r, code = USAGE_STATUS;

	r = parse_args(argc, argv, &a);
	if (r)
		return r;
	if (ctl_mqtt_config_load(&a.mqtt, a.config, true, &cfg) < 0)
		return USAGE_STATUS;
	params = cJSON_CreateObject();
	if (!params)
		goto out;
	if (strcmp(a.cmd, "pair") == 0 &&
	    !(a.has_passkey ? cJSON_AddNumberToObject(params, "passkey", (double)a.passkey)
			    : cJSON_AddBoolToObject(params, "confirm", a.confirm)))
		goto out;
	code = ctl_mqtt_run(&a.mqtt, cfg, a.verbose, a.serial, a.cmd, params);
out:
	cJSON_Delete(params);
	config_free(cfg);
	return code;
}
