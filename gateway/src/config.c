/* SPDX-License-Identifier: MIT */
#include "config.h"

#include <errno.h>
#include <ini.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "helper-sched.h"
#include "log.h"

#define SERIAL_MAX 32 /* NL_SERIAL_MAX in protocol/include/needlelink/common.h */
#define ID_MAX 64
#define CLIENT_ID_MAX 128

enum key_type {
	KEY_STR,
	KEY_INT,
	KEY_PROTOCOL,
	KEY_KIND,
	KEY_LEVEL,
	KEY_LIST,
	KEY_BOOL,
};

enum str_check {
	CHECK_NONE,
	CHECK_NONEMPTY,
	CHECK_TOPIC_LEVEL,
	CHECK_TOPIC_PREFIX,
	CHECK_CLIENT_ID,
	CHECK_CPU,
};

struct key_desc {
	const char *section;
	const char *name;
	enum key_type type;
	enum str_check check;
	int64_t min, max;
	const char *def;
	bool secret;
};

static const struct key_desc keys[CONFIG_KEY_COUNT] = {
	[CONFIG_GATEWAY_ID] = { "gateway", "id", KEY_STR, CHECK_TOPIC_LEVEL, 0, 0, NULL, false },
	[CONFIG_GATEWAY_BASE_TOPIC] = { "gateway", "base_topic", KEY_STR, CHECK_TOPIC_PREFIX, 0, 0, "needlelink", false },
	[CONFIG_GATEWAY_JOURNAL] = { "gateway", "journal", KEY_STR, CHECK_NONEMPTY, 0, 0, "/var/lib/needlelink/journal.db", false },
	[CONFIG_GATEWAY_LOG_LEVEL] = { "gateway", "log_level", KEY_LEVEL, CHECK_NONE, 0, 0, "info", false },
	[CONFIG_GATEWAY_MAX_CONNECTIONS] = { "gateway", "max_connections", KEY_INT, CHECK_NONE, 1, 64, "4", false },
	[CONFIG_GATEWAY_CPU] = { "gateway", "cpu", KEY_STR, CHECK_CPU, 0, 0, "auto", false },
	[CONFIG_MQTT_HOST] = { "mqtt", "host", KEY_STR, CHECK_NONEMPTY, 0, 0, "localhost", false },
	[CONFIG_MQTT_PORT] = { "mqtt", "port", KEY_INT, CHECK_NONE, 1, 65535, "1883", false },
	[CONFIG_MQTT_PROTOCOL] = { "mqtt", "protocol", KEY_PROTOCOL, CHECK_NONE, 0, 0, "5", false },
	[CONFIG_MQTT_CLIENT_ID] = { "mqtt", "client_id", KEY_STR, CHECK_CLIENT_ID, 0, 0, "", false },
	[CONFIG_MQTT_USERNAME] = { "mqtt", "username", KEY_STR, CHECK_NONE, 0, 0, "", false },
	[CONFIG_MQTT_PASSWORD] = { "mqtt", "password", KEY_STR, CHECK_NONE, 0, 0, "", true },
	[CONFIG_MQTT_PASSWORD_FILE] = { "mqtt", "password_file", KEY_STR, CHECK_NONE, 0, 0, "", false },
	[CONFIG_MQTT_TLS_CA] = { "mqtt", "tls_ca", KEY_STR, CHECK_NONE, 0, 0, "", false },
	[CONFIG_MQTT_TLS_CERT] = { "mqtt", "tls_cert", KEY_STR, CHECK_NONE, 0, 0, "", false },
	[CONFIG_MQTT_TLS_KEY] = { "mqtt", "tls_key", KEY_STR, CHECK_NONE, 0, 0, "", false },
	[CONFIG_MQTT_KEEPALIVE_S] = { "mqtt", "keepalive_s", KEY_INT, CHECK_NONE, 5, 3600, "30", false },
	[CONFIG_MQTT_TIMEOUT] = { "mqtt", "timeout", KEY_INT, CHECK_NONE, 1, 300, "10", false },
	[CONFIG_MQTT_MAX_INFLIGHT] = { "mqtt", "max_inflight", KEY_INT, CHECK_NONE, 1, 1000, "256", false },
	[CONFIG_MQTT_PUBLISH_BEFORE_COMMIT] = { "mqtt", "publish_before_commit", KEY_BOOL, CHECK_NONE, 0, 0, "false", false },
	[CONFIG_PENS_ALLOW] = { "pens", "allow", KEY_LIST, CHECK_NONE, 0, 0, "", false },
	[CONFIG_TRANSPORT_KIND] = { "transport", "kind", KEY_KIND, CHECK_NONE, 0, 0, "sim", false },
	[CONFIG_TRANSPORT_SIM_DIR] = { "transport", "sim_dir", KEY_STR, CHECK_NONE, 0, 0, "", false },
	[CONFIG_TRANSPORT_ADAPTER] = { "transport", "adapter", KEY_STR, CHECK_NONEMPTY, 0, 0, "hci0", false },
	[CONFIG_BLUETOOTH_JUST_WORKS] = { "bluetooth", "just_works", KEY_BOOL, CHECK_NONE, 0, 0, "false", false },
	[CONFIG_BLUETOOTH_BONDS] = { "bluetooth", "bonds", KEY_STR, CHECK_NONE, 0, 0, "", false },
	[CONFIG_LIMITS_POLICY] = { "limits", "policy", KEY_STR, CHECK_NONEMPTY, 0, 0, "/etc/needlelink/policy.conf", false },
};

struct value {
	char *str;      /* normalized text; for KEY_LIST the joined list */
	int64_t num;    /* KEY_INT and the enums */
	char *origin;   /* NULL: default */
	unsigned line;  /* line in the file being loaded, 0 otherwise */
	unsigned load;  /* which config_load() set it (duplicate detection) */
};

struct config {
	struct value v[CONFIG_KEY_COUNT];
	char **allow;
	size_t n_allow;
	bool allow_any;
	char *password; /* resolved by config_validate() */
	char *client_id_derived;
	char **errors;
	size_t n_errors;
	unsigned load_counter;
};

/* ---- errors ---- */

static int add_error(struct config *c, const char *origin, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int add_error(struct config *c, const char *origin, const char *fmt, ...)
{
	char msg[1024];
	char *full = NULL;
	char **errs;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (asprintf(&full, "%s: %s", origin, msg) < 0)
		return -ENOMEM;
	errs = realloc(c->errors, (c->n_errors + 1) * sizeof(*errs));
	if (!errs) {
		free(full);
		return -ENOMEM;
	}
	c->errors = errs;
	c->errors[c->n_errors++] = full;
	return -EINVAL;
}

size_t config_n_errors(const struct config *c)
{
	return c->n_errors;
}

const char *config_error(const struct config *c, size_t i)
{
	return i < c->n_errors ? c->errors[i] : NULL;
}

void config_log_errors(const struct config *c)
{
	for (size_t i = 0; i < c->n_errors; i++)
		log_err("%s", c->errors[i]);
}

/* ---- values ---- */

static void free_allow(struct config *c)
{
	for (size_t i = 0; i < c->n_allow; i++)
		free(c->allow[i]);
	free(c->allow);
	c->allow = NULL;
	c->n_allow = 0;
	c->allow_any = false;
}

static bool is_printable(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x21 || (unsigned char)*s == 0x7f)
			return false;
	return true;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Parses a serial list into a sorted, de-duplicated array and its joined
 * text. Returns NULL error text on success. */
static const char *parse_list(const char *value, char ***ret_items, size_t *ret_n, bool *ret_any,
			      char **ret_joined)
{
	char *copy = strdup(value), *save = NULL, *tok;
	char **items = NULL;
	size_t n = 0, len = 1;
	bool any = false;
	char *joined;
	const char *err = NULL;

	if (!copy)
		return "out of memory";
	for (tok = strtok_r(copy, ", \t", &save); tok; tok = strtok_r(NULL, ", \t", &save)) {
		char **grown;
		if (strcmp(tok, "*") == 0) {
			any = true;
			continue;
		}
		if (strlen(tok) > SERIAL_MAX || !is_printable(tok)) {
			err = "a serial is 1..32 printable characters";
			goto out;
		}
		grown = realloc(items, (n + 1) * sizeof(*items));
		if (!grown) {
			err = "out of memory";
			goto out;
		}
		items = grown;
		items[n] = strdup(tok);
		if (!items[n]) {
			err = "out of memory";
			goto out;
		}
		n++;
	}
	if (n > 1)
		qsort(items, n, sizeof(*items), cmp_str);
	/* De-duplicate the sorted list in place. */
	for (size_t i = 1; i < n;) {
		if (strcmp(items[i], items[i - 1]) == 0) {
			free(items[i]);
			memmove(&items[i], &items[i + 1], (n - i - 1) * sizeof(*items));
			n--;
		} else {
			i++;
		}
	}
	for (size_t i = 0; i < n; i++)
		len += strlen(items[i]) + 1;
	len += any ? 2 : 0;
	joined = malloc(len);
	if (!joined) {
		err = "out of memory";
		goto out;
	}
	joined[0] = '\0';
	if (any)
		strcat(joined, n ? "*," : "*");
	for (size_t i = 0; i < n; i++) {
		strcat(joined, items[i]);
		if (i + 1 < n)
			strcat(joined, ",");
	}
	*ret_items = items;
	*ret_n = n;
	*ret_any = any;
	*ret_joined = joined;
	items = NULL;
	n = 0;
out:
	for (size_t i = 0; i < n; i++)
		free(items[i]);
	free(items);
	free(copy);
	return err;
}

static const char *check_string(enum str_check check, const char *s)
{
	switch (check) {
	case CHECK_NONE:
		return NULL;
	case CHECK_NONEMPTY:
		return *s ? NULL : "must not be empty";
	case CHECK_TOPIC_LEVEL:
		if (!*s || strlen(s) > ID_MAX || !is_printable(s) || strpbrk(s, "/+#"))
			return "expected 1..64 printable characters without '/', '+' or '#'";
		return NULL;
	case CHECK_TOPIC_PREFIX:
		if (!*s || !is_printable(s) || strpbrk(s, "+#") || s[0] == '/' ||
		    s[strlen(s) - 1] == '/' || strstr(s, "//"))
			return "expected a topic prefix without '+', '#', blanks, or empty levels";
		return NULL;
	case CHECK_CLIENT_ID:
		if (strlen(s) > CLIENT_ID_MAX || !is_printable(s))
			return "expected at most 128 printable characters";
		return NULL;
	case CHECK_CPU: {
		int cpu;

		/* Whether the CPU exists is the daemon's check, at start. */
		if (helper_sched_resolve(s, &cpu) == -EINVAL)
			return "expected auto, none or a CPU number (0, 1, ...)";
		return NULL;
	}
	}
	return NULL;
}

static int parse_int(const char *s, int64_t *ret)
{
	char *end = NULL;
	long long v;

	if (!*s)
		return -EINVAL;
	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno || !end || *end)
		return -EINVAL;
	*ret = v;
	return 0;
}

static void refresh_client_id(struct config *c)
{
	char *d = NULL;

	if (asprintf(&d, "needlelinkd-%s", c->v[CONFIG_GATEWAY_ID].str) < 0)
		return;
	free(c->client_id_derived);
	c->client_id_derived = d;
}

/* Parses value for key k and stores it, with origin. Returns 0, or -EINVAL
 * after recording an error against origin. */
static int set_value(struct config *c, enum config_key k, const char *value, const char *origin,
		     unsigned line)
{
	const struct key_desc *d = &keys[k];
	struct value *v = &c->v[k];
	char *str = NULL, *orig = NULL;
	int64_t num = 0;
	const char *err = NULL;
	char **items = NULL;
	size_t n_items = 0;
	bool any = false;

	switch (d->type) {
	case KEY_STR:
		err = check_string(d->check, value);
		if (!err)
			str = strdup(value);
		break;
	case KEY_INT:
		if (parse_int(value, &num) < 0 || num < d->min || num > d->max) {
			return add_error(c, origin, "[%s] %s: expected an integer in %lld..%lld, got '%s'",
					 d->section, d->name, (long long)d->min, (long long)d->max,
					 value);
		}
		if (asprintf(&str, "%lld", (long long)num) < 0)
			str = NULL;
		break;
	case KEY_PROTOCOL:
		if (!strcmp(value, "5") || !strcmp(value, "5.0") || !strcmp(value, "v5")) {
			num = CONFIG_MQTT_PROTOCOL_5;
			str = strdup("5");
		} else if (!strcmp(value, "3.1.1") || !strcmp(value, "311") ||
			   !strcmp(value, "v3.1.1")) {
			num = CONFIG_MQTT_PROTOCOL_311;
			str = strdup("3.1.1");
		} else {
			err = "expected 5 or 3.1.1";
		}
		break;
	case KEY_KIND:
		if (!strcmp(value, "sim")) {
			num = CONFIG_TRANSPORT_SIM;
			str = strdup("sim");
		} else if (!strcmp(value, "bluez")) {
			num = CONFIG_TRANSPORT_BLUEZ;
			str = strdup("bluez");
		} else {
			err = "expected sim or bluez";
		}
		break;
	case KEY_LEVEL: {
		int l = log_level_from_string(value);
		if (l < 0) {
			err = "expected one of err, warning, notice, info, debug (or 0..7)";
		} else {
			num = l;
			str = strdup(log_level_to_string(l));
		}
		break;
	}
	case KEY_LIST:
		err = parse_list(value, &items, &n_items, &any, &str);
		break;
	case KEY_BOOL:
		if (!strcmp(value, "true") || !strcmp(value, "yes") || !strcmp(value, "on") ||
		    !strcmp(value, "1")) {
			num = 1;
			str = strdup("true");
		} else if (!strcmp(value, "false") || !strcmp(value, "no") ||
			   !strcmp(value, "off") || !strcmp(value, "0")) {
			num = 0;
			str = strdup("false");
		} else {
			err = "expected true or false";
		}
		break;
	}
	if (err)
		return add_error(c, origin, "[%s] %s: %s, got '%s'", d->section, d->name, err, value);
	if (!str)
		return -ENOMEM;
	if (origin) {
		orig = strdup(origin);
		if (!orig) {
			free(str);
			for (size_t i = 0; i < n_items; i++)
				free(items[i]);
			free(items);
			return -ENOMEM;
		}
	}
	free(v->str);
	free(v->origin);
	v->str = str;
	v->num = num;
	v->origin = orig;
	v->line = line;
	if (d->type == KEY_LIST) {
		free_allow(c);
		c->allow = items;
		c->n_allow = n_items;
		c->allow_any = any;
	}
	if (k == CONFIG_GATEWAY_ID)
		refresh_client_id(c);
	return 0;
}

static int find_key(const char *section, const char *name)
{
	for (int k = 0; k < CONFIG_KEY_COUNT; k++)
		if (!strcmp(keys[k].section, section) && !strcmp(keys[k].name, name))
			return k;
	return -ENOENT;
}

static bool known_section(const char *section)
{
	for (int k = 0; k < CONFIG_KEY_COUNT; k++)
		if (!strcmp(keys[k].section, section))
			return true;
	return false;
}

static void default_id(char *buf, size_t size)
{
	char host[256] = "";

	if (gethostname(host, sizeof(host) - 1) < 0 || !host[0])
		strcpy(host, "gateway");
	/* Keep the first label and make it a valid topic level. */
	host[strcspn(host, ".")] = '\0';
	for (char *p = host; *p; p++)
		if ((unsigned char)*p < 0x21 || (unsigned char)*p > 0x7e || strchr("/+#", *p))
			*p = '-';
	snprintf(buf, size, "%.*s", ID_MAX, host[0] ? host : "gateway");
}

int config_new(struct config **ret)
{
	struct config *c;
	char id[ID_MAX + 1];

	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	default_id(id, sizeof(id));
	for (int k = 0; k < CONFIG_KEY_COUNT; k++) {
		const char *def = keys[k].def ? keys[k].def : id;
		if (set_value(c, (enum config_key)k, def, NULL, 0) < 0) {
			config_free(c);
			return -ENOMEM;
		}
	}
	*ret = c;
	return 0;
}

void config_free(struct config *c)
{
	if (!c)
		return;
	for (int k = 0; k < CONFIG_KEY_COUNT; k++) {
		free(c->v[k].str);
		free(c->v[k].origin);
	}
	free_allow(c);
	if (c->password) {
		explicit_bzero(c->password, strlen(c->password));
		free(c->password);
	}
	free(c->client_id_derived);
	for (size_t i = 0; i < c->n_errors; i++)
		free(c->errors[i]);
	free(c->errors);
	free(c);
}

/* ---- file parsing ---- */

struct parse_ctx {
	struct config *c;
	const char *path;
	FILE *f;
	unsigned line;        /* line of the chunk the reader returned last */
	bool at_line_start;   /* the previous chunk ended a line */
	bool line_bad;        /* this line already has an error: ignore it */
	bool continuation;    /* the line starts with a blank */
	bool section_unknown; /* keys under an unknown section are not reported */
	int failed;           /* first non-EINVAL error */
};

static void origin_of(const struct parse_ctx *p, char *buf, size_t size)
{
	snprintf(buf, size, "%s:%u", p->path, p->line);
}

/* inih hands us no line numbers (INI_HANDLER_LINENO is off in Debian's
 * build), so the reader counts them, and checks each line's shape itself:
 * inih only reports the first syntax error, we want all of them. */
static void check_line(struct parse_ctx *p, char *s)
{
	char origin[4200];
	char *end;

	if (p->line == 1 && (unsigned char)s[0] == 0xEF && (unsigned char)s[1] == 0xBB &&
	    (unsigned char)s[2] == 0xBF)
		s += 3;
	p->continuation = (*s == ' ' || *s == '\t');
	while (*s == ' ' || *s == '\t' || *s == '\r' || *s == '\n')
		s++;
	if (!*s || *s == ';' || *s == '#')
		return;
	origin_of(p, origin, sizeof(origin));
	if (*s == '[') {
		char *close = strchr(s, ']');
		if (!close) {
			p->line_bad = true;
			add_error(p->c, origin, "syntax error: section header without ']'");
			return;
		}
		*close = '\0';
		p->section_unknown = !known_section(s + 1);
		if (p->section_unknown)
			add_error(p->c, origin, "unknown section [%s]", s + 1);
		*close = ']';
		return;
	}
	if (p->continuation)
		return;
	end = strpbrk(s, "=:");
	if (!end) {
		p->line_bad = true;
		add_error(p->c, origin, "syntax error: expected 'name = value'");
	}
}

static char *reader(char *str, int num, void *stream)
{
	struct parse_ctx *p = stream;
	char *r = fgets(str, num, p->f);
	size_t len;

	if (!r)
		return NULL;
	len = strlen(str);
	if (p->at_line_start) {
		p->line++;
		p->line_bad = false;
		check_line(p, str);
	}
	p->at_line_start = (len > 0 && str[len - 1] == '\n') || feof(p->f);
	if (!p->at_line_start && !p->line_bad) {
		char origin[4200];
		origin_of(p, origin, sizeof(origin));
		add_error(p->c, origin, "line too long (at most %d characters)", num - 2);
		p->line_bad = true;
	}
	return r;
}

static int handler(void *user, const char *section, const char *name, const char *value)
{
	struct parse_ctx *p = user;
	struct config *c = p->c;
	char origin[4200];
	int k, r;

	if (!name || p->line_bad || p->section_unknown)
		return 1;
	origin_of(p, origin, sizeof(origin));
	if (!section || !*section) {
		add_error(c, origin, "'%s' outside any section", name);
		return 1;
	}
	k = find_key(section, name);
	if (k < 0) {
		add_error(c, origin, "unknown key '%s' in [%s]", name, section);
		return 1;
	}
	if (c->v[k].load == c->load_counter && c->v[k].line && c->v[k].line != p->line) {
		if (p->continuation && keys[k].type == KEY_LIST) {
			/* A list may go on over indented lines: append. */
			char *joined = NULL;
			if (asprintf(&joined, "%s,%s", c->v[k].str, value) < 0) {
				p->failed = -ENOMEM;
				return 0;
			}
			r = set_value(c, (enum config_key)k, joined, origin, p->line);
			free(joined);
		} else if (p->continuation) {
			add_error(c, origin, "[%s] %s: value continues on an indented line", section,
				  name);
			return 1;
		} else {
			add_error(c, origin, "duplicate key '%s' in [%s] (first set on line %u)", name,
				  section, c->v[k].line);
			return 1;
		}
	} else {
		r = set_value(c, (enum config_key)k, value, origin, p->line);
	}
	if (r == -ENOMEM) {
		p->failed = r;
		return 0;
	}
	if (r == 0)
		c->v[k].load = c->load_counter;
	return 1;
}

int config_load(struct config *c, const char *path, bool must_exist)
{
	struct parse_ctx p = { .c = c, .path = path, .at_line_start = true };
	size_t errors_before = c->n_errors;
	int r;

	p.f = fopen(path, "re");
	if (!p.f) {
		r = -errno;
		if (r == -ENOENT && !must_exist)
			return 0;
		add_error(c, path, "cannot open: %s", strerror(-r));
		return r;
	}
	c->load_counter++;
	r = ini_parse_stream(reader, &p, handler, &p);
	fclose(p.f);
	if (p.failed)
		return p.failed;
	if (r == -2)
		return -ENOMEM;
	if (r == -1)
		return -EIO;
	/* r > 0: inih saw a malformed line; check_line() has recorded it. Lines
	 * inih and we disagree on still count as errors. */
	if (r > 0 && c->n_errors == errors_before) {
		char origin[4200];
		snprintf(origin, sizeof(origin), "%s:%d", path, r);
		add_error(c, origin, "syntax error");
	}
	return c->n_errors > errors_before ? -EINVAL : 0;
}

int config_set(struct config *c, const char *key, const char *value)
{
	const char *dot = key ? strchr(key, '.') : NULL;
	char section[64];
	int k;

	if (!dot || (size_t)(dot - key) >= sizeof(section) || !value)
		return add_error(c, "command line", "expected section.name=value, got '%s'",
				 key ? key : "(null)");
	memcpy(section, key, (size_t)(dot - key));
	section[dot - key] = '\0';
	k = find_key(section, dot + 1);
	if (k < 0)
		return add_error(c, "command line", "unknown key '%s'", key);
	return set_value(c, (enum config_key)k, value, "command line", 0);
}

/* ---- validation ---- */

const char *config_origin(const struct config *c, enum config_key k)
{
	return c->v[k].origin ? c->v[k].origin : "default";
}

static bool is_set(const struct config *c, enum config_key k)
{
	return c->v[k].str[0] != '\0';
}

static void check_readable(struct config *c, enum config_key k)
{
	const char *path = c->v[k].str;

	if (!is_set(c, k))
		return;
	if (access(path, R_OK) < 0)
		add_error(c, config_origin(c, k), "[%s] %s: cannot read '%s': %s", keys[k].section,
			  keys[k].name, path, strerror(errno));
}

static int read_password_file(struct config *c)
{
	const char *path = c->v[CONFIG_MQTT_PASSWORD_FILE].str;
	const char *origin = config_origin(c, CONFIG_MQTT_PASSWORD_FILE);
	char buf[1024];
	FILE *f;
	size_t n;

	f = fopen(path, "re");
	if (!f)
		return add_error(c, origin, "[mqtt] password_file: cannot read '%s': %s", path,
				 strerror(errno));
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	buf[strcspn(buf, "\r\n")] = '\0';
	if (!buf[0]) {
		explicit_bzero(buf, sizeof(buf));
		return add_error(c, origin, "[mqtt] password_file: '%s' is empty", path);
	}
	free(c->password);
	c->password = strdup(buf);
	explicit_bzero(buf, sizeof(buf));
	return c->password ? 0 : -ENOMEM;
}

int config_validate(struct config *c)
{
	size_t errors_before = c->n_errors;

	if (is_set(c, CONFIG_MQTT_TLS_CERT) != is_set(c, CONFIG_MQTT_TLS_KEY)) {
		enum config_key k = is_set(c, CONFIG_MQTT_TLS_CERT) ? CONFIG_MQTT_TLS_CERT
								     : CONFIG_MQTT_TLS_KEY;
		add_error(c, config_origin(c, k), "[mqtt] tls_cert and tls_key go together: %s is set alone",
			  keys[k].name);
	}
	check_readable(c, CONFIG_MQTT_TLS_CA);
	check_readable(c, CONFIG_MQTT_TLS_CERT);
	check_readable(c, CONFIG_MQTT_TLS_KEY);

	free(c->password);
	c->password = NULL;
	if (is_set(c, CONFIG_MQTT_PASSWORD) && is_set(c, CONFIG_MQTT_PASSWORD_FILE)) {
		add_error(c, config_origin(c, CONFIG_MQTT_PASSWORD_FILE),
			  "[mqtt] password_file: password is also set (at %s); keep one",
			  config_origin(c, CONFIG_MQTT_PASSWORD));
	} else if (is_set(c, CONFIG_MQTT_PASSWORD_FILE)) {
		int r = read_password_file(c);
		if (r == -ENOMEM)
			return r;
	} else if (is_set(c, CONFIG_MQTT_PASSWORD)) {
		c->password = strdup(c->v[CONFIG_MQTT_PASSWORD].str);
		if (!c->password)
			return -ENOMEM;
	}
	if ((c->password || is_set(c, CONFIG_MQTT_PASSWORD_FILE)) && !is_set(c, CONFIG_MQTT_USERNAME)) {
		enum config_key k = is_set(c, CONFIG_MQTT_PASSWORD) ? CONFIG_MQTT_PASSWORD
								     : CONFIG_MQTT_PASSWORD_FILE;
		add_error(c, config_origin(c, k), "[mqtt] %s: a password needs a username",
			  keys[k].name);
	}
	return c->n_errors > errors_before ? -EINVAL : 0;
}

/* ---- access ---- */

const char *config_str(const struct config *c, enum config_key k)
{
	if ((unsigned)k >= CONFIG_KEY_COUNT)
		return "";
	if (k == CONFIG_MQTT_CLIENT_ID && !c->v[k].str[0] && c->client_id_derived)
		return c->client_id_derived;
	return c->v[k].str;
}

int64_t config_int(const struct config *c, enum config_key k)
{
	if ((unsigned)k >= CONFIG_KEY_COUNT)
		return 0;
	return c->v[k].num;
}

const char *config_key_name(enum config_key k)
{
	static const char *const names[CONFIG_KEY_COUNT] = {
		[CONFIG_GATEWAY_ID] = "gateway.id",
		[CONFIG_GATEWAY_BASE_TOPIC] = "gateway.base_topic",
		[CONFIG_GATEWAY_JOURNAL] = "gateway.journal",
		[CONFIG_GATEWAY_LOG_LEVEL] = "gateway.log_level",
		[CONFIG_GATEWAY_MAX_CONNECTIONS] = "gateway.max_connections",
		[CONFIG_GATEWAY_CPU] = "gateway.cpu",
		[CONFIG_MQTT_HOST] = "mqtt.host",
		[CONFIG_MQTT_PORT] = "mqtt.port",
		[CONFIG_MQTT_PROTOCOL] = "mqtt.protocol",
		[CONFIG_MQTT_CLIENT_ID] = "mqtt.client_id",
		[CONFIG_MQTT_USERNAME] = "mqtt.username",
		[CONFIG_MQTT_PASSWORD] = "mqtt.password",
		[CONFIG_MQTT_PASSWORD_FILE] = "mqtt.password_file",
		[CONFIG_MQTT_TLS_CA] = "mqtt.tls_ca",
		[CONFIG_MQTT_TLS_CERT] = "mqtt.tls_cert",
		[CONFIG_MQTT_TLS_KEY] = "mqtt.tls_key",
		[CONFIG_MQTT_KEEPALIVE_S] = "mqtt.keepalive_s",
		[CONFIG_MQTT_TIMEOUT] = "mqtt.timeout",
		[CONFIG_MQTT_MAX_INFLIGHT] = "mqtt.max_inflight",
		[CONFIG_MQTT_PUBLISH_BEFORE_COMMIT] = "mqtt.publish_before_commit",
		[CONFIG_PENS_ALLOW] = "pens.allow",
		[CONFIG_TRANSPORT_KIND] = "transport.kind",
		[CONFIG_TRANSPORT_SIM_DIR] = "transport.sim_dir",
		[CONFIG_TRANSPORT_ADAPTER] = "transport.adapter",
		[CONFIG_BLUETOOTH_JUST_WORKS] = "bluetooth.just_works",
		[CONFIG_BLUETOOTH_BONDS] = "bluetooth.bonds",
		[CONFIG_LIMITS_POLICY] = "limits.policy",
	};

	if ((unsigned)k >= CONFIG_KEY_COUNT)
		return "?";
	return names[k];
}

enum config_mqtt_protocol config_mqtt_protocol(const struct config *c)
{
	return (enum config_mqtt_protocol)c->v[CONFIG_MQTT_PROTOCOL].num;
}

bool config_bool(const struct config *c, enum config_key k)
{
	return c->v[k].num != 0;
}

enum config_transport_kind config_transport_kind(const struct config *c)
{
	return (enum config_transport_kind)c->v[CONFIG_TRANSPORT_KIND].num;
}

int config_log_level(const struct config *c)
{
	return (int)c->v[CONFIG_GATEWAY_LOG_LEVEL].num;
}

const char *config_mqtt_password(const struct config *c)
{
	return c->password;
}

const char *const *config_pens_allow(const struct config *c, size_t *ret_n, bool *ret_any)
{
	if (ret_n)
		*ret_n = c->n_allow;
	if (ret_any)
		*ret_any = c->allow_any;
	return (const char *const *)c->allow;
}

bool config_pen_allowed(const struct config *c, const char *serial)
{
	if (!serial || !*serial)
		return false;
	if (c->allow_any)
		return true;
	for (size_t i = 0; i < c->n_allow; i++)
		if (!strcmp(c->allow[i], serial))
			return true;
	return false;
}

static uint64_t fnv1a(uint64_t h, const char *s)
{
	for (; *s; s++) {
		h ^= (unsigned char)*s;
		h *= 0x100000001b3ULL;
	}
	return h;
}

void config_hash(const struct config *c, char buf[17])
{
	uint64_t h = 0xcbf29ce484222325ULL;

	for (int k = 0; k < CONFIG_KEY_COUNT; k++) {
		h = fnv1a(h, config_key_name((enum config_key)k));
		h = fnv1a(h, "=");
		if (keys[k].secret)
			h = fnv1a(h, c->v[k].str[0] ? "(set)" : "");
		else
			h = fnv1a(h, config_str(c, (enum config_key)k));
		h = fnv1a(h, "\n");
	}
	snprintf(buf, 17, "%016llx", (unsigned long long)h);
}
