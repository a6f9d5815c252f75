/* SPDX-License-Identifier: MIT */
/*
 * A small, generic MQTT request client for needlelinkctl: one request to a
 * pen's command topic, one response back (docs/mqtt-api.md, "Commands").
 *
 * Any needlelinkctl command that asks the gateway to do something (authorise,
 * unlock, pair, ...) uses it the same way:
 *
 *	struct ctl_mqtt_opts o;
 *	cJSON *params = cJSON_CreateObject(), *resp = NULL;
 *
 *	ctl_mqtt_opts_init(&o);
 *	r = ctl_mqtt_opts_from_config(&o, cfg);   // [gateway] base_topic, [mqtt] ...
 *	o.timeout_s = 10;                         // flags override
 *	... fill params ...
 *	r = ctl_mqtt_request(&o, "PEN-001", "unlock", params, &resp);
 *	if (r == 0) {
 *		ctl_mqtt_print_response(resp, json, stdout);
 *		exit_code = ctl_mqtt_exit_code(resp);
 *	}
 *
 * What ctl_mqtt_request() does, blocking (needlelinkctl is a one-shot CLI,
 * not an event loop): connects with a fresh client id and a clean session,
 * subscribes to a reply topic, publishes {"schema": "needlelink/request/1",
 * "transaction": <fresh>, "params": params} at QoS 1 to
 * BASE/pens/SERIAL/request/OP and waits for the one response:
 *   - MQTT 5 (the default): the reply topic is unique to the call
 *     (BASE/ctl/CLIENT_ID/response/OP) and is sent as the request's Response
 *     Topic, with Correlation Data; the response must carry both back;
 *   - MQTT 3.1.1 (protocol = 3.1.1 in the configuration): the reply topic is
 *     the gateway's fallback, BASE/pens/SERIAL/response/OP, and the response
 *     is matched by its transaction.
 * Every step has a deadline: connect within the configured mqtt.timeout,
 * the response within o->timeout_s.
 *
 * Returns 0 with *ret_response (the parsed response, any status; free with
 * cJSON_Delete()), or -errno: -EINVAL (bad serial or op, params not an
 * object), -ECONNREFUSED (the broker refused or could not be reached),
 * -ETIMEDOUT (no response in time), -EPROTO (a response that is not JSON),
 * -ENOMEM. Messages explaining a failure go to stderr, prefixed
 * "needlelinkctl: ". params is not consumed.
 */
#ifndef NLCTL_MQTT_H
#define NLCTL_MQTT_H

#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>

#include <cjson/cJSON.h>

struct config;

struct ctl_mqtt_opts {
	const char *host; /* "localhost" */
	int port; /* 1883 */
	bool v311; /* MQTT 3.1.1 instead of 5 */
	const char *base_topic; /* "needlelink" */
	const char *username; /* NULL: none */
	const char *password; /* NULL: none */
	const char *tls_ca; /* any TLS file set: ssl:// */
	const char *tls_cert;
	const char *tls_key;
	int connect_timeout_s; /* 10 */
	int timeout_s; /* response deadline, 30 */
	bool verbose; /* log the request and the reply topic to stderr */
};

void ctl_mqtt_opts_init(struct ctl_mqtt_opts *o);
/* Takes the broker settings of a loaded and validated configuration (the
 * daemon's file: [gateway] base_topic, [mqtt] host, port, protocol,
 * username, password or password_file, tls_*, timeout). The strings stay
 * owned by c. */
void ctl_mqtt_opts_from_config(struct ctl_mqtt_opts *o, const struct config *c);

int ctl_mqtt_request(const struct ctl_mqtt_opts *o, const char *serial, const char *op,
		     cJSON *params, cJSON **ret_response);

/* needlelinkctl's exit status for a response: 0 for "ok" and "applied", 2 for
 * "blocked", 3 for "failed", "error" or anything else. */
int ctl_mqtt_exit_code(const cJSON *response);

/* Prints a response: with json the payload as received (pretty), else a
 * short summary for people (status, result members, blocked_by rules with
 * value and threshold, error code, step and message). */
void ctl_mqtt_print_response(const cJSON *response, bool json, FILE *f);

/* ---- connection options ------------------------------------------------------
 *
 * The options every request command takes, the same for each: the broker
 * (overriding the configuration file's keys), the response deadline and the
 * output. A command puts CTL_MQTT_LONG_OPTS in its getopt_long() table, numbers
 * its own options from CTL_MQTT_OPT_END on, and hands every option it gets to
 * ctl_mqtt_args_parse() first:
 *
 *	r = ctl_mqtt_args_parse(&a->mqtt, opt, optarg, "pair");
 *	if (r < 0)
 *		return usage_status;
 *	if (r > 0)
 *		continue;
 *	switch (opt) { ... the command's own ... }
 *
 * then loads the configuration with ctl_mqtt_config_load() and sends its
 * request with ctl_mqtt_run().
 */
enum ctl_mqtt_opt {
	CTL_MQTT_OPT_HOST = 1000,
	CTL_MQTT_OPT_PORT,
	CTL_MQTT_OPT_PROTOCOL,
	CTL_MQTT_OPT_USERNAME,
	CTL_MQTT_OPT_PASSWORD_FILE,
	CTL_MQTT_OPT_TLS_CA,
	CTL_MQTT_OPT_TLS_CERT,
	CTL_MQTT_OPT_TLS_KEY,
	CTL_MQTT_OPT_BASE_TOPIC,
	CTL_MQTT_OPT_TIMEOUT,
	CTL_MQTT_OPT_JSON,
	CTL_MQTT_OPT_END, /* the first value free for a command's own options */
};

/* clang-format off */
#define CTL_MQTT_LONG_OPTS                                                        \
	{ "host", required_argument, NULL, CTL_MQTT_OPT_HOST },                   \
	{ "port", required_argument, NULL, CTL_MQTT_OPT_PORT },                   \
	{ "protocol", required_argument, NULL, CTL_MQTT_OPT_PROTOCOL },           \
	{ "username", required_argument, NULL, CTL_MQTT_OPT_USERNAME },           \
	{ "password-file", required_argument, NULL, CTL_MQTT_OPT_PASSWORD_FILE }, \
	{ "tls-ca", required_argument, NULL, CTL_MQTT_OPT_TLS_CA },               \
	{ "tls-cert", required_argument, NULL, CTL_MQTT_OPT_TLS_CERT },           \
	{ "tls-key", required_argument, NULL, CTL_MQTT_OPT_TLS_KEY },             \
	{ "base-topic", required_argument, NULL, CTL_MQTT_OPT_BASE_TOPIC },       \
	{ "timeout", required_argument, NULL, CTL_MQTT_OPT_TIMEOUT },             \
	{ "json", no_argument, NULL, CTL_MQTT_OPT_JSON }
/* clang-format on */

struct ctl_mqtt_args {
	const char *overrides[16][2]; /* config key, value, in the order given */
	unsigned n_overrides;
	int timeout_s; /* --timeout, 0: not given */
	bool json; /* --json */
};

/* Takes one option getopt_long() returned (opt, its argument arg). Returns 1
 * if it is a connection option, now in *m; 0 if it is not; -EINVAL if its
 * value is bad or the options are too many, with a message on stderr
 * prefixed "needlelinkctl: " and, if who is not NULL, who and ": ". */
int ctl_mqtt_args_parse(struct ctl_mqtt_args *m, int opt, const char *arg, const char *who);
/* Loads the configuration file path (NULL: CONFIG_DEFAULT_PATH, which may be
 * missing), sets the keys the options override, in the order given, and with
 * validate checks the result (config_validate()). Returns 0 with *ret_config
 * (free with config_free()), or -errno with each recorded error on stderr,
 * prefixed "needlelinkctl: ". */
int ctl_mqtt_config_load(const struct ctl_mqtt_args *m, const char *path, bool validate,
			 struct config **ret_config);
/* Sends one request with the broker settings of the validated configuration
 * c and the options m (ctl_mqtt_request()), prints the response
 * (ctl_mqtt_print_response(), to stdout) and returns needlelinkctl's exit
 * status: ctl_mqtt_exit_code() of the response, 3 if none came in time, 1 if
 * the request failed otherwise. */
int ctl_mqtt_run(const struct ctl_mqtt_args *m, const struct config *c, bool verbose,
		 const char *serial, const char *op, cJSON *params);

/* The command word of argv (one of names, NULL-terminated), found past the
 * options the way getopt would skip them: -j and -c and the long options of
 * long_opts that take an argument consume the next word; "--" ends the
 * options. NULL when the first word that is no option is not in names. */
const char *ctl_find_command(int argc, char **argv, const struct option *long_opts,
			     const char *const *names);

#endif
