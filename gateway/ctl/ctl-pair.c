/* SPDX-License-Identifier: MIT */
/*
 * needlelinkctl pair SERIAL --passkey N | --confirm yes|no: answers the
 * Bluetooth pairing bluetoothd waits on for a pen, through the MQTT "pair"
 * request (docs/mqtt-api.md, "pair"; ctl-mqtt.h).
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
	OPT_HOST = 1000,
	OPT_PORT,
	OPT_PROTOCOL,
	OPT_USERNAME,
	OPT_PASSWORD_FILE,
	OPT_TLS_CA,
	OPT_TLS_CERT,
	OPT_TLS_KEY,
	OPT_BASE_TOPIC,
	OPT_TIMEOUT,
	OPT_JSON,
	OPT_PASSKEY,
	OPT_CONFIRM,
};

static const struct option long_opts[] = {
	{ "journal", required_argument, NULL, 'j' },
	{ "config", required_argument, NULL, 'c' },
	{ "help", no_argument, NULL, 'h' },
	{ "verbose", no_argument, NULL, 'v' },
	{ "host", required_argument, NULL, OPT_HOST },
	{ "port", required_argument, NULL, OPT_PORT },
	{ "protocol", required_argument, NULL, OPT_PROTOCOL },
	{ "username", required_argument, NULL, OPT_USERNAME },
	{ "password-file", required_argument, NULL, OPT_PASSWORD_FILE },
	{ "tls-ca", required_argument, NULL, OPT_TLS_CA },
	{ "tls-cert", required_argument, NULL, OPT_TLS_CERT },
	{ "tls-key", required_argument, NULL, OPT_TLS_KEY },
	{ "base-topic", required_argument, NULL, OPT_BASE_TOPIC },
	{ "timeout", required_argument, NULL, OPT_TIMEOUT },
	{ "json", no_argument, NULL, OPT_JSON },
	{ "passkey", required_argument, NULL, OPT_PASSKEY },
	{ "confirm", required_argument, NULL, OPT_CONFIRM },
	{}
};

struct pair_args {
	const char *config, *serial;
	const char *overrides[12][2]; /* config key, value */
	unsigned n_overrides;
	int timeout_s;
	bool json, verbose;
	bool has_passkey, has_confirm, confirm;
	long passkey;
};

static int bad(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int bad(const char *fmt, ...)
{
	va_list ap;

	fputs("needlelinkctl: pair: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return USAGE_STATUS;
}

const char *ctl_pair_command(int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];

		if (strcmp(a, "--") == 0)
			return i + 1 < argc && strcmp(argv[i + 1], "pair") == 0 ? argv[i + 1] : NULL;
		if (strcmp(a, "-j") == 0 || strcmp(a, "-c") == 0) {
			i++;
			continue;
		}
		if (a[0] == '-' && a[1] == '-' && !strchr(a, '=')) {
			for (const struct option *o = long_opts; o->name; o++)
				if (strcmp(a + 2, o->name) == 0 && o->has_arg == required_argument)
					i++;
			continue;
		}
		if (a[0] == '-')
			continue;
		return strcmp(a, "pair") == 0 ? a : NULL;
	}
	return NULL;
}

static int add_override(struct pair_args *a, const char *key, const char *value)
{
	if (a->n_overrides >= sizeof(a->overrides) / sizeof(a->overrides[0]))
		return bad("too many options");
	a->overrides[a->n_overrides][0] = key;
	a->overrides[a->n_overrides][1] = value;
	a->n_overrides++;
	return 0;
}

static int parse_args(int argc, char **argv, struct pair_args *a)
{
	static const struct {
		int opt;
		const char *key;
	} keys[] = {
		{ OPT_HOST, "mqtt.host" },	   { OPT_PORT, "mqtt.port" },
		{ OPT_PROTOCOL, "mqtt.protocol" }, { OPT_USERNAME, "mqtt.username" },
		{ OPT_PASSWORD_FILE, "mqtt.password_file" },
		{ OPT_TLS_CA, "mqtt.tls_ca" },	   { OPT_TLS_CERT, "mqtt.tls_cert" },
		{ OPT_TLS_KEY, "mqtt.tls_key" },   { OPT_BASE_TOPIC, "gateway.base_topic" },
	};
	int opt, r = 0;
	char *end;
	long v;

	optind = 1;
	while ((opt = getopt_long(argc, argv, "j:c:hv", long_opts, NULL)) != -1) {
		for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
			if (keys[i].opt == opt) {
				r = add_override(a, keys[i].key, optarg);
				if (r)
					return r;
				goto next;
			}
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
		case OPT_TIMEOUT:
			errno = 0;
			v = strtol(optarg, &end, 10);
			if (errno || end == optarg || *end || v < 1 || v > 3600)
				return bad("--timeout: whole seconds 1..3600, not \"%s\"", optarg);
			a->timeout_s = (int)v;
			break;
		case OPT_JSON:
			a->json = true;
			break;
		case OPT_PASSKEY:
			errno = 0;
			v = strtol(optarg, &end, 10);
			if (errno || end == optarg || *end || v < 0 || v > 999999)
				return bad("--passkey: the 6 digits the pen shows (0..999999), not \"%s\"",
					   optarg);
			a->passkey = v;
			a->has_passkey = true;
			break;
		case OPT_CONFIRM:
			if (strcmp(optarg, "yes") == 0)
				a->confirm = true;
			else if (strcmp(optarg, "no") == 0)
				a->confirm = false;
			else
				return bad("--confirm: yes or no, not \"%s\"", optarg);
			a->has_confirm = true;
			break;
		default:
			return USAGE_STATUS;
		}
next:;
	}
	if (optind >= argc || strcmp(argv[optind], "pair") != 0)
		return bad("no command");
	optind++;
	if (optind >= argc)
		return bad("the pen's serial is missing (needlelinkctl pair SERIAL --passkey N)");
	a->serial = argv[optind++];
	if (optind < argc)
		return bad("unexpected argument \"%s\"", argv[optind]);
	if (a->has_passkey == a->has_confirm)
		return bad("give exactly one of --passkey N and --confirm yes|no");
	return 0;
}

int ctl_pair_main(int argc, char **argv)
{
	struct pair_args a = { 0 };
	struct ctl_mqtt_opts o;
	struct config *cfg = NULL;
	cJSON *params = NULL, *resp = NULL;
	int r, code = USAGE_STATUS;

	r = parse_args(argc, argv, &a);
	if (r)
		return r;
	if (config_new(&cfg) < 0)
		return USAGE_STATUS;
	r = config_load(cfg, a.config ? a.config : CONFIG_DEFAULT_PATH, a.config != NULL);
	for (unsigned i = 0; r >= 0 && i < a.n_overrides; i++)
		r = config_set(cfg, a.overrides[i][0], a.overrides[i][1]);
	if (r >= 0)
		r = config_validate(cfg);
	if (r < 0 || config_n_errors(cfg)) {
		for (size_t i = 0; i < config_n_errors(cfg); i++)
			fprintf(stderr, "needlelinkctl: %s\n", config_error(cfg, i));
		goto out;
	}
	params = cJSON_CreateObject();
	if (!params ||
	    !(a.has_passkey ? cJSON_AddNumberToObject(params, "passkey", (double)a.passkey)
			    : cJSON_AddBoolToObject(params, "confirm", a.confirm)))
		goto out;
	ctl_mqtt_opts_init(&o);
	ctl_mqtt_opts_from_config(&o, cfg);
	if (a.timeout_s)
		o.timeout_s = a.timeout_s;
	o.verbose = a.verbose;
	r = ctl_mqtt_request(&o, a.serial, "pair", params, &resp);
	if (r < 0) {
		/* No answer in time is a failure of the command, not of the call. */
		code = r == -ETIMEDOUT ? 3 : USAGE_STATUS;
		goto out;
	}
	ctl_mqtt_print_response(resp, a.json, stdout);
	code = ctl_mqtt_exit_code(resp);
out:
	cJSON_Delete(resp);
	cJSON_Delete(params);
	config_free(cfg);
	return code;
}
