/* SPDX-License-Identifier: MIT */
/* config: defaults, a valid file, every error as FILE:LINE, overrides. */
#include <errno.h>
#include <stdio.h>
#include <unistd.h>

#include "check.h"
#include "config.h"

static char dir[] = "/tmp/nlgw-config-XXXXXX";

static char *write_file(const char *name, const char *text)
{
	static char path[4][512];
	static int slot;
	char *p = path[slot++ % 4];
	FILE *f;

	snprintf(p, 512, "%s/%s", dir, name);
	f = fopen(p, "w");
	CHECK(f);
	fputs(text, f);
	fclose(f);
	return p;
}

/* An error whose text starts with prefix and contains needle. */
static bool has_error(const struct config *c, const char *prefix, const char *needle)
{
	for (size_t i = 0; i < config_n_errors(c); i++) {
		const char *e = config_error(c, i);
		if (!strncmp(e, prefix, strlen(prefix)) && strstr(e, needle))
			return true;
	}
	return false;
}

static void dump_errors(const struct config *c)
{
	for (size_t i = 0; i < config_n_errors(c); i++)
		fprintf(stderr, "  error: %s\n", config_error(c, i));
}

static void test_defaults(void)
{
	struct config *c;
	char id[128];

	CHECK_INT(config_new(&c), 0);
	CHECK_INT(config_validate(c), 0);
	CHECK_INT(config_n_errors(c), 0);
	CHECK_STR(config_str(c, CONFIG_MQTT_HOST), "localhost");
	CHECK_INT(config_int(c, CONFIG_MQTT_PORT), 1883);
	CHECK_INT(config_mqtt_protocol(c), CONFIG_MQTT_PROTOCOL_5);
	CHECK_INT(config_transport_kind(c), CONFIG_TRANSPORT_SIM);
	CHECK_STR(config_str(c, CONFIG_GATEWAY_BASE_TOPIC), "needlelink");
	CHECK_INT(config_int(c, CONFIG_MQTT_KEEPALIVE_S), 30);
	CHECK_INT(config_int(c, CONFIG_MQTT_MAX_INFLIGHT), 256);
	CHECK_INT(config_log_level(c), 6);
	CHECK(config_mqtt_password(c) == NULL);
	/* The id defaults to a topic-safe host name; the client id follows. */
	CHECK(config_str(c, CONFIG_GATEWAY_ID)[0] != '\0');
	CHECK(!strpbrk(config_str(c, CONFIG_GATEWAY_ID), "/+# "));
	snprintf(id, sizeof(id), "needlelinkd-%s", config_str(c, CONFIG_GATEWAY_ID));
	CHECK_STR(config_str(c, CONFIG_MQTT_CLIENT_ID), id);
	CHECK(!config_pen_allowed(c, "NL-1"));
	CHECK_STR(config_origin(c, CONFIG_MQTT_PORT), "default");
	/* A missing default file is fine, a missing named file is not. */
	CHECK_INT(config_load(c, "/nonexistent/needlelinkd.conf", false), 0);
	CHECK_INT(config_n_errors(c), 0);
	CHECK_INT(config_load(c, "/nonexistent/needlelinkd.conf", true), -ENOENT);
	CHECK(has_error(c, "/nonexistent/needlelinkd.conf: ", "cannot open"));
	config_free(c);
}

static void test_good_file(void)
{
	struct config *c, *d;
	char hash1[17], hash2[17], hash3[17];
	size_t n;
	bool any;
	const char *path = write_file("good.conf",
				      "; comment\n"
				      "# another comment\n"
				      "\n"
				      "[gateway]\n"
				      "id = room-7   ; inline comment\n"
				      "base_topic = clinic/a\n"
				      "log_level = debug\n"
				      "max_connections = 8\n"
				      "cpu = none\n"
				      "[mqtt]\n"
				      "host = broker.example\n"
				      "port = 8883\n"
				      "protocol = 3.1.1\n"
				      "username = gw\n"
				      "password = s3cret\n"
				      "[pens]\n"
				      "allow = NL-2, NL-1\n"
				      "   NL-3 NL-1\n"
				      "[transport]\n"
				      "kind = bluez\n");

	CHECK_INT(config_new(&c), 0);
	CHECK_INT(config_load(c, path, true), 0);
	CHECK_INT(config_validate(c), 0);
	dump_errors(c);
	CHECK_INT(config_n_errors(c), 0);
	CHECK_STR(config_str(c, CONFIG_GATEWAY_ID), "room-7");
	CHECK_STR(config_str(c, CONFIG_MQTT_CLIENT_ID), "needlelinkd-room-7");
	CHECK_STR(config_str(c, CONFIG_GATEWAY_BASE_TOPIC), "clinic/a");
	CHECK_INT(config_log_level(c), 7);
	CHECK_INT(config_int(c, CONFIG_GATEWAY_MAX_CONNECTIONS), 8);
	CHECK_STR(config_str(c, CONFIG_GATEWAY_CPU), "none");
	CHECK_STR(config_str(c, CONFIG_MQTT_HOST), "broker.example");
	CHECK_INT(config_int(c, CONFIG_MQTT_PORT), 8883);
	CHECK_INT(config_mqtt_protocol(c), CONFIG_MQTT_PROTOCOL_311);
	CHECK_STR(config_mqtt_password(c), "s3cret");
	CHECK_INT(config_transport_kind(c), CONFIG_TRANSPORT_BLUEZ);
	config_pens_allow(c, &n, &any);
	CHECK_INT(n, 3);
	CHECK(!any);
	CHECK_STR(config_str(c, CONFIG_PENS_ALLOW), "NL-1,NL-2,NL-3");
	CHECK(config_pen_allowed(c, "NL-3"));
	CHECK(!config_pen_allowed(c, "NL-4"));
	{
		char want[600];
		snprintf(want, sizeof(want), "%s:12", path);
		CHECK_STR(config_origin(c, CONFIG_MQTT_PORT), want);
	}

	/* The hash covers values, not how they were written; the password
	 * text is not part of it. */
	config_hash(c, hash1);
	CHECK_INT(strlen(hash1), 16);
	CHECK_INT(config_set(c, "mqtt.port", "1884"), 0);
	config_hash(c, hash2);
	CHECK(strcmp(hash1, hash2) != 0);
	CHECK_INT(config_set(c, "mqtt.port", "8883"), 0);
	CHECK_INT(config_set(c, "mqtt.password", "other"), 0);
	config_hash(c, hash2);
	CHECK_STR(hash1, hash2);
	CHECK_INT(config_set(c, "pens.allow", "NL-3,NL-2 NL-1"), 0);
	config_hash(c, hash2);
	CHECK_STR(hash1, hash2);

	/* Command-line override wins and is reported as such. */
	CHECK_INT(config_set(c, "mqtt.host", "127.0.0.1"), 0);
	CHECK_STR(config_str(c, CONFIG_MQTT_HOST), "127.0.0.1");
	CHECK_STR(config_origin(c, CONFIG_MQTT_HOST), "command line");
	CHECK_INT(config_set(c, "mqtt.port", "http"), -EINVAL);
	CHECK(has_error(c, "command line: ", "[mqtt] port"));
	CHECK_INT(config_int(c, CONFIG_MQTT_PORT), 8883);
	CHECK_INT(config_set(c, "mqtt.nope", "1"), -EINVAL);
	CHECK(has_error(c, "command line: ", "unknown key 'mqtt.nope'"));
	CHECK_INT(config_set(c, "pens.allow", "*"), 0);
	CHECK(config_pen_allowed(c, "anything"));

	/* Two configs with equal values hash equal. */
	CHECK_INT(config_new(&d), 0);
	config_hash(d, hash3);
	CHECK(strcmp(hash3, hash1) != 0);
	config_free(d);
	config_free(c);
}

static void test_errors(void)
{
	struct config *c;
	char p[600];
	const char *path = write_file("bad.conf",
				      "[gateway]\n"                        /* 1 */
				      "idd = x\n"                          /* 2 unknown key */
				      "max_connections = 0\n"              /* 3 range */
				      "log_level = loud\n"                 /* 4 bad level */
				      "[mqtt]\n"                           /* 5 */
				      "port = 70000\n"                     /* 6 range */
				      "protocol = 4.0\n"                   /* 7 bad enum */
				      "this line has no equals sign\n"     /* 8 syntax */
				      "host = a\n"                         /* 9 */
				      "host = b\n"                         /* 10 duplicate */
				      "tls_ca = /nonexistent/ca.pem\n"     /* 11 missing file */
				      "tls_cert = /nonexistent/c.pem\n"    /* 12 missing, no key */
				      "[broker]\n"                         /* 13 unknown section */
				      "x = 1\n"                            /* 14 (not reported) */
				      "[pens]\n"                           /* 15 */
				      "allow = THIS-SERIAL-IS-FAR-TOO-LONG-FOR-A-PEN-0123\n" /* 16 */
				      "[gateway]\n"                        /* 17 */
				      "id = a/b\n"                         /* 18 bad topic level */
				      "cpu = 1.5\n"                        /* 19 bad cpu */
				      "[transport]\n"                      /* 20 */
				      "kind = usb\n"                       /* 21 */
				      "[mqtt\n");                          /* 22 syntax */

	CHECK_INT(config_new(&c), 0);
	CHECK_INT(config_load(c, path, true), -EINVAL);
	CHECK_INT(config_validate(c), -EINVAL);
	dump_errors(c);

#define AT(line, needle)                                   \
	do {                                               \
		snprintf(p, sizeof(p), "%s:%d: ", path, line); \
		CHECK(has_error(c, p, needle));             \
	} while (0)
	AT(2, "unknown key 'idd' in [gateway]");
	AT(3, "max_connections");
	AT(4, "log_level");
	AT(6, "port: expected an integer in 1..65535, got '70000'");
	AT(7, "protocol");
	AT(8, "syntax error");
	AT(10, "duplicate key 'host'");
	AT(11, "tls_ca: cannot read '/nonexistent/ca.pem'");
	AT(12, "tls_cert: cannot read");
	AT(12, "tls_cert and tls_key go together");
	AT(13, "unknown section [broker]");
	AT(16, "allow");
	AT(18, "id");
	AT(19, "cpu: expected auto, none or a CPU number (0, 1, ...), got '1.5'");
	AT(21, "kind");
	AT(22, "section header without ']'");
#undef AT
	/* Exactly those: nothing reported twice, nothing for line 14. */
	CHECK_INT(config_n_errors(c), 16);
	/* Bad values leave the previous (default) value in place. */
	CHECK_INT(config_int(c, CONFIG_MQTT_PORT), 1883);
	CHECK_STR(config_str(c, CONFIG_MQTT_HOST), "a");
	config_free(c);
}

static void test_secrets(void)
{
	struct config *c;
	char p[600];
	const char *pw = write_file("pw", "from-file\nsecond line ignored\n");
	const char *key = write_file("key.pem", "not really a key\n");
	char text[2048];
	const char *path;

	snprintf(text, sizeof(text),
		 "[mqtt]\n"
		 "username = u\n"
		 "password = inline\n"
		 "password_file = %s\n"
		 "tls_key = %s\n",
		 pw, key);
	path = write_file("secrets.conf", text);
	CHECK_INT(config_new(&c), 0);
	CHECK_INT(config_load(c, path, true), 0);
	CHECK_INT(config_validate(c), -EINVAL);
	dump_errors(c);
	snprintf(p, sizeof(p), "%s:4: ", path);
	CHECK(has_error(c, p, "password is also set"));
	snprintf(p, sizeof(p), "%s:5: ", path);
	CHECK(has_error(c, p, "tls_cert and tls_key go together"));
	CHECK_INT(config_n_errors(c), 2);
	config_free(c);

	/* password_file alone: its first line is the password. */
	CHECK_INT(config_new(&c), 0);
	CHECK_INT(config_set(c, "mqtt.username", "u"), 0);
	CHECK_INT(config_set(c, "mqtt.password_file", pw), 0);
	CHECK_INT(config_validate(c), 0);
	CHECK_STR(config_mqtt_password(c), "from-file");
	/* and a password without a user is refused */
	CHECK_INT(config_set(c, "mqtt.username", ""), 0);
	CHECK_INT(config_validate(c), -EINVAL);
	CHECK(has_error(c, "command line: ", "needs a username"));
	config_free(c);
}

static void test_example(const char *example)
{
	struct config *c;

	CHECK_INT(config_new(&c), 0);
	CHECK_INT(config_load(c, example, true), 0);
	CHECK_INT(config_validate(c), 0);
	dump_errors(c);
	CHECK_INT(config_n_errors(c), 0);
	config_free(c);
}

/* [bluetooth]: just_works is a boolean (default false), bonds a path. */
static void test_bluetooth(void)
{
	struct config *c;
	char p[600];
	const char *path = write_file("bt.conf",
				      "[bluetooth]\n"          /* 1 */
				      "just_works = maybe\n"   /* 2 not a boolean */
				      "bonds = /var/lib/x\n"); /* 3 */

	CHECK_INT(config_new(&c), 0);
	CHECK(!config_bool(c, CONFIG_BLUETOOTH_JUST_WORKS));
	CHECK_STR(config_str(c, CONFIG_BLUETOOTH_BONDS), "");
	CHECK_INT(config_load(c, path, true), -EINVAL);
	snprintf(p, sizeof(p), "%s:2: ", path);
	CHECK(has_error(c, p, "[bluetooth] just_works: expected true or false, got 'maybe'"));
	CHECK_INT(config_n_errors(c), 1);
	CHECK(!config_bool(c, CONFIG_BLUETOOTH_JUST_WORKS));
	CHECK_STR(config_str(c, CONFIG_BLUETOOTH_BONDS), "/var/lib/x");
	CHECK_INT(config_set(c, "bluetooth.just_works", "yes"), 0);
	CHECK(config_bool(c, CONFIG_BLUETOOTH_JUST_WORKS));
	CHECK_INT(config_set(c, "bluetooth.just_works", "off"), 0);
	CHECK(!config_bool(c, CONFIG_BLUETOOTH_JUST_WORKS));
	config_free(c);
}

int main(int argc, char **argv)
{
	CHECK(mkdtemp(dir));
	test_defaults();
	test_good_file();
	test_errors();
	test_secrets();
	test_bluetooth();
	if (argc > 1)
		test_example(argv[1]);
	else
		CHECK(!"usage: test-config EXAMPLE_CONF");
	/* Leave nothing behind. */
	{
		char cmd[600];
		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
		CHECK_INT(system(cmd), 0);
	}
	printf("test-config: ok\n");
	return 0;
}
