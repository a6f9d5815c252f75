/* SPDX-License-Identifier: MIT */
/*
 * needlelinkd configuration: an INI file (parsed with inih) plus command-line
 * overrides, validated as a whole.
 *
 *   config_new()      every key at its default: enough for a bare start
 *                     against a broker on localhost:1883 with the simulator
 *   config_load()     reads a file; every problem is recorded as
 *                     "FILE:LINE: message" and parsing goes on
 *   config_set()      overrides one key, "section.name" (e.g. "mqtt.port"),
 *                     for the daemon's getopt; errors as "command line: ..."
 *   config_validate() cross-key and file checks (TLS files readable, cert
 *                     and key together, password xor password_file ...)
 *
 * Each of them returns 0 when it added no error, -EINVAL when it did (all
 * errors are kept: config_error()), or another -errno (-ENOENT, -ENOMEM).
 *
 * Keys ([section] name: type, default):
 *   [gateway] id: topic level, host name | base_topic: "needlelink" |
 *             journal: path, "/var/lib/needlelink/journal.db" |
 *             log_level: err..debug, "info" | max_connections: 1..64, 4
 *   [mqtt]    host: "localhost" | port: 1..65535, 1883 |
 *             protocol: "5" or "3.1.1", "5" | client_id: "needlelinkd-<id>" |
 *             username | password | password_file | tls_ca | tls_cert |
 *             tls_key | keepalive_s: 5..3600, 30 | timeout: seconds,
 *             1..300, 10 | max_inflight: 1..1000, 256
 *   [pens]    allow: serials separated by commas or blanks, "*" for any;
 *             empty (the default) allows no pen
 *   [transport] kind: "sim" or "bluez", "sim" | sim_dir: "" (the simulator's
 *             default directory) | adapter: "hci0"
 *   [bluetooth] just_works: boolean (true/false, yes/no, on/off, 1/0), false:
 *             accept Just Works pairing (pens without a display) |
 *             bonds: path of the serial -> identity address bindings, ""
 *             (the journal's path with ".bonds" appended)
 *   [limits] policy: clinic policy file (docs/limits.md section 8),
 *             "/etc/needlelink/policy.conf"; a missing file means the
 *             built-in defaults
 */
#ifndef NLGW_CONFIG_H
#define NLGW_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CONFIG_DEFAULT_PATH "/etc/needlelink/needlelinkd.conf"

enum config_key {
	CONFIG_GATEWAY_ID,
	CONFIG_GATEWAY_BASE_TOPIC,
	CONFIG_GATEWAY_JOURNAL,
	CONFIG_GATEWAY_LOG_LEVEL,
	CONFIG_GATEWAY_MAX_CONNECTIONS,
	CONFIG_GATEWAY_CPU,
	CONFIG_MQTT_HOST,
	CONFIG_MQTT_PORT,
	CONFIG_MQTT_PROTOCOL,
	CONFIG_MQTT_CLIENT_ID,
	CONFIG_MQTT_USERNAME,
	CONFIG_MQTT_PASSWORD,
	CONFIG_MQTT_PASSWORD_FILE,
	CONFIG_MQTT_TLS_CA,
	CONFIG_MQTT_TLS_CERT,
	CONFIG_MQTT_TLS_KEY,
	CONFIG_MQTT_KEEPALIVE_S,
	CONFIG_MQTT_TIMEOUT,
	CONFIG_MQTT_MAX_INFLIGHT,
	CONFIG_MQTT_PUBLISH_BEFORE_COMMIT,
	CONFIG_PENS_ALLOW,
	CONFIG_TRANSPORT_KIND,
	CONFIG_TRANSPORT_SIM_DIR,
	CONFIG_TRANSPORT_ADAPTER,
	CONFIG_BLUETOOTH_JUST_WORKS,
	CONFIG_BLUETOOTH_BONDS,
	CONFIG_LIMITS_POLICY,
	CONFIG_KEY_COUNT
};

enum config_mqtt_protocol {
	CONFIG_MQTT_PROTOCOL_5 = 5,
	CONFIG_MQTT_PROTOCOL_311 = 4, /* the protocol level byte of 3.1.1 */
};

enum config_transport_kind {
	CONFIG_TRANSPORT_SIM,
	CONFIG_TRANSPORT_BLUEZ,
};

struct config;

int config_new(struct config **ret);
void config_free(struct config *c);

/* Reads path. A missing file is an error (-ENOENT, recorded) unless
 * !must_exist, in which case it returns 0 and the defaults stand. */
int config_load(struct config *c, const char *path, bool must_exist);

/* key is "section.name". value is parsed as the file would parse it. */
int config_set(struct config *c, const char *key, const char *value);

/* Checks that need every key: run once after load and overrides. Also reads
 * password_file. */
int config_validate(struct config *c);

/* Recorded errors, in the order found. */
size_t config_n_errors(const struct config *c);
const char *config_error(const struct config *c, size_t i);
/* Logs each recorded error at LOG_ERR. */
void config_log_errors(const struct config *c);

/* Typed access. Strings are never NULL ("" when unset) and live as long as
 * c; config_int() is defined for integer and enum keys. */
const char *config_str(const struct config *c, enum config_key k);
/* Boolean keys. */
bool config_bool(const struct config *c, enum config_key k);
int64_t config_int(const struct config *c, enum config_key k);
/* "section.name" of a key. */
const char *config_key_name(enum config_key k);
/* Where a key's value came from: "FILE:LINE", "command line" or "default". */
const char *config_origin(const struct config *c, enum config_key k);

enum config_mqtt_protocol config_mqtt_protocol(const struct config *c);
enum config_transport_kind config_transport_kind(const struct config *c);
int config_log_level(const struct config *c);
/* The password (from password or password_file after config_validate()),
 * or NULL when none. */
const char *config_mqtt_password(const struct config *c);

/* Allowed pen serials; *ret_any is set when "*" was given. */
const char *const *config_pens_allow(const struct config *c, size_t *ret_n, bool *ret_any);
bool config_pen_allowed(const struct config *c, const char *serial);

/* FNV-1a 64 over the normalized "section.name=value\n" lines of every key
 * in table order (secrets excluded: only whether a password is set counts),
 * as 16 lower-case hex digits plus NUL into buf. */
void config_hash(const struct config *c, char buf[17]);

#endif
