/* SPDX-License-Identifier: MIT */
#include "policy.h"

#include <errno.h>
#include <ini.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "limits-internal.h"
#include "needlelink/crc.h"
#include "needlelink/zone.h"

enum key_type {
	KEY_STR, /* name */
	KEY_MM, /* u16 um, written as mm with up to 3 decimals */
	KEY_U8,
	KEY_U16,
	KEY_U32,
	KEY_ACTION, /* action mask of the section's rule */
	KEY_CI, /* list of contraindication names */
};

struct key {
	const char *section;
	const char *name;
	enum key_type type;
	size_t off; /* in struct limits_values */
	uint32_t min, max;
	enum limits_rule rule;
};

#define OFF(f) offsetof(struct limits_values, f)
#define ZONE(z, n)                                                                               \
	{                                                                                        \
		"NL-R02", n "_mm", KEY_MM, OFF(zone_cap_um) + (z) * sizeof(uint16_t), 100, 2500, \
			LIMITS_R02_ZONE_DEPTH_CAP                                                \
	}
#define ACTION(sec, r)                                \
	{                                             \
		sec, "action", KEY_ACTION, 0, 0, 0, r \
	}

/* Hard bounds: what no clinic policy can go beyond (docs/limits.md). */
static const struct key keys[] = {
	{"policy", "name", KEY_STR, OFF(name), 0, 64, LIMITS_RULE_NONE},
	ACTION("NL-R01", LIMITS_R01_DEVICE_MAX_DEPTH),
	{"NL-R01", "max_mm", KEY_MM, OFF(max_depth_um), 250, 2500, LIMITS_R01_DEVICE_MAX_DEPTH},
	ACTION("NL-R02", LIMITS_R02_ZONE_DEPTH_CAP),
	{"NL-R02", "default_mm", KEY_MM, OFF(zone_cap_um), 100, 2500, LIMITS_R02_ZONE_DEPTH_CAP},
	ZONE(NL_ZONE_FOREHEAD, "forehead"),
	ZONE(NL_ZONE_GLABELLA, "glabella"),
	ZONE(NL_ZONE_PERIORBITAL, "periorbital"),
	ZONE(NL_ZONE_NOSE, "nose"),
	ZONE(NL_ZONE_CHEEKS, "cheeks"),
	ZONE(NL_ZONE_PERIORAL, "perioral"),
	ZONE(NL_ZONE_CHIN, "chin"),
	ZONE(NL_ZONE_NECK, "neck"),
	ZONE(NL_ZONE_CHEST, "chest"),
	ZONE(NL_ZONE_SCALP, "scalp"),
	ZONE(NL_ZONE_SCAR, "scar"),
	ZONE(NL_ZONE_STRETCH_MARKS, "stretch_marks"),
	ZONE(NL_ZONE_BODY, "body"),
	ZONE(NL_ZONE_CHEEKBONES, "cheekbones"),
	ZONE(NL_ZONE_UPPER_LIP, "upper_lip"),
	ACTION("NL-R04", LIMITS_R04_SKIN_TYPE),
	{"NL-R04", "reduction_mm", KEY_MM, OFF(skin_reduction_um), 250, 1000, LIMITS_R04_SKIN_TYPE},
	ACTION("NL-R05", LIMITS_R05_OPERATOR_ROLE),
	{"NL-R05", "cap_mm", KEY_MM, OFF(non_physician_cap_um), 250, 1500,
	 LIMITS_R05_OPERATOR_ROLE},
	ACTION("NL-R06", LIMITS_R06_PASSES),
	{"NL-R06", "warn_passes", KEY_U8, OFF(pass_warn), 1, 20, LIMITS_R06_PASSES},
	{"NL-R06", "lock_passes", KEY_U8, OFF(pass_lock), 1, 20, LIMITS_R06_PASSES},
	ACTION("NL-R07", LIMITS_R07_NEEDLE_ON),
	{"NL-R07", "warn_s", KEY_U16, OFF(needle_on_warn_s), 60, 7200, LIMITS_R07_NEEDLE_ON},
	{"NL-R07", "lock_s", KEY_U16, OFF(needle_on_lock_s), 60, 7200, LIMITS_R07_NEEDLE_ON},
	ACTION("NL-R08", LIMITS_R08_INTERVAL),
	{"NL-R08", "min_days", KEY_U16, OFF(interval_days), 21, 180, LIMITS_R08_INTERVAL},
	{"NL-R08", "override_min_days", KEY_U16, OFF(override_min_days), 21, 180,
	 LIMITS_R08_INTERVAL},
	ACTION("NL-R09", LIMITS_R09_COURSE),
	{"NL-R09", "warn_sessions", KEY_U16, OFF(course_warn), 1, 20, LIMITS_R09_COURSE},
	{"NL-R09", "block_sessions", KEY_U16, OFF(course_block), 1, 20, LIMITS_R09_COURSE},
	{"NL-R09", "course_days", KEY_U16, OFF(course_days), 30, 1095, LIMITS_R09_COURSE},
	ACTION("NL-R12", LIMITS_R12_CONTRAINDICATION),
	{"NL-R12", "warn_only", KEY_CI, OFF(ci_warn_only), 0, 0, LIMITS_R12_CONTRAINDICATION},
	{"NL-R14", "lifetime_s", KEY_U32, OFF(lifetime_s), 600, 86400, LIMITS_R14_LIFETIME},
	{"enforcement", "depth_tolerance_mm", KEY_MM, OFF(depth_tolerance_um), 0, 250,
	 LIMITS_RULE_NONE},
	{"enforcement", "confirm_timeout_s", KEY_U32, OFF(confirm_timeout_s), 5, 3600,
	 LIMITS_RULE_NONE},
};
#define N_KEYS (sizeof(keys) / sizeof(keys[0]))

_Static_assert(N_KEYS <= 128, "struct limits_policy.lines too small");

static uint32_t compute_hash(const struct limits_policy *p);

static void set_defaults(struct limits_values *v)
{
	memset(v, 0, sizeof(*v));
	for (unsigned r = 1; r < LIMITS_RULE_COUNT; r++)
		v->action[r] = limits_rule_info((enum limits_rule)r)->actions;
	v->max_depth_um = 2500;
	/* DOMAIN defaults. Cheekbones is not in that list: 1.0 mm is the top of
	 * the clinical range for thick skin. [0] covers zones not planned and
	 * "no zone chosen": the shallowest clinical depth. */
	v->zone_cap_um[NL_ZONE_NONE] = 500;
	v->zone_cap_um[NL_ZONE_PERIORBITAL] = 500;
	v->zone_cap_um[NL_ZONE_NOSE] = 500;
	v->zone_cap_um[NL_ZONE_UPPER_LIP] = 750;
	v->zone_cap_um[NL_ZONE_PERIORAL] = 750;
	v->zone_cap_um[NL_ZONE_FOREHEAD] = 750;
	v->zone_cap_um[NL_ZONE_GLABELLA] = 750;
	v->zone_cap_um[NL_ZONE_CHEEKS] = 1500;
	v->zone_cap_um[NL_ZONE_CHIN] = 1500;
	v->zone_cap_um[NL_ZONE_NECK] = 1000;
	v->zone_cap_um[NL_ZONE_CHEST] = 750;
	v->zone_cap_um[NL_ZONE_SCAR] = 2000;
	v->zone_cap_um[NL_ZONE_STRETCH_MARKS] = 2000;
	v->zone_cap_um[NL_ZONE_BODY] = 2000;
	v->zone_cap_um[NL_ZONE_SCALP] = 1500;
	v->zone_cap_um[NL_ZONE_CHEEKBONES] = 1000;
	v->skin_reduction_um = 250;
	v->non_physician_cap_um = 1000;
	v->pass_warn = 3;
	v->pass_lock = 5;
	v->needle_on_warn_s = 25 * 60;
	v->needle_on_lock_s = 40 * 60;
	v->interval_days = 28;
	v->override_min_days = 21;
	v->course_warn = 6;
	v->course_block = 8;
	v->course_days = 365;
	v->ci_warn_only = 0;
	v->lifetime_s = 12 * 3600;
	v->depth_tolerance_um = 100;
	v->confirm_timeout_s = 60;
}

int limits_policy_new(struct limits_policy **ret)
{
	struct limits_policy *p = calloc(1, sizeof(*p));

	if (!p)
		return -ENOMEM;
	set_defaults(&p->v);
	p->hash = compute_hash(p);
	*ret = p;
	return 0;
}

void limits_policy_free(struct limits_policy *p)
{
	if (!p)
		return;
	for (size_t i = 0; i < p->n_errors; i++)
		free(p->errors[i]);
	free(p->errors);
	free(p);
}

size_t limits_policy_n_errors(const struct limits_policy *p)
{
	return p->n_errors;
}

const char *limits_policy_error(const struct limits_policy *p, size_t i)
{
	return i < p->n_errors ? p->errors[i] : NULL;
}

int limits_policy_key_info(size_t i, struct limits_policy_key *ret)
{
	if (i >= N_KEYS)
		return -ENOENT;
	*ret = (struct limits_policy_key){keys[i].section, keys[i].name, keys[i].rule, keys[i].min,
					  keys[i].max};
	return 0;
}

unsigned limits_policy_action(const struct limits_policy *p, enum limits_rule rule)
{
	return limits_rule_info(rule) ? p->v.action[rule] : 0;
}

const char *limits_policy_name(const struct limits_policy *p)
{
	return p->v.name;
}

/* ---- parsing ------------------------------------------------------------ */

struct parse_ctx {
	struct limits_policy *p;
	const char *file;
	FILE *f; /* file, or NULL when reading text */
	const char *text;
	unsigned line;
	bool at_line_start;
	bool line_bad; /* this line already has an error */
	bool continuation; /* the line starts with a blank */
	bool section_skip; /* keys of a bad section are not reported */
	int failed; /* -ENOMEM */
};

static int add_error(struct parse_ctx *c, unsigned line, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int add_error(struct parse_ctx *c, unsigned line, const char *fmt, ...)
{
	struct limits_policy *p = c->p;
	char msg[512], *s, **n;
	va_list ap;
	int r;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (line)
		r = asprintf(&s, "%s:%u: %s", c->file, line, msg);
	else
		r = asprintf(&s, "%s: %s", c->file, msg);
	if (r < 0)
		goto oom;
	n = realloc(p->errors, (p->n_errors + 1) * sizeof(*n));
	if (!n) {
		free(s);
		goto oom;
	}
	p->errors = n;
	p->errors[p->n_errors++] = s;
	return 0;
oom:
	c->failed = -ENOMEM;
	return -ENOMEM;
}

static bool section_known(const char *s)
{
	for (size_t i = 0; i < N_KEYS; i++)
		if (strcmp(keys[i].section, s) == 0)
			return true;
	return false;
}

/* inih reports no line numbers in Debian's build and only its first
 * syntax error: the reader counts lines and checks each one's shape. */
static void check_line(struct parse_ctx *c, const char *s)
{
	if (c->line == 1 && (unsigned char)s[0] == 0xEF && (unsigned char)s[1] == 0xBB &&
	    (unsigned char)s[2] == 0xBF)
		s += 3;
	c->continuation = (*s == ' ' || *s == '\t');
	while (*s == ' ' || *s == '\t' || *s == '\r' || *s == '\n')
		s++;
	if (!*s || *s == ';' || *s == '#')
		return;
	if (*s == '[') {
		const char *close = strchr(s, ']');
		char name[64];
		size_t n;
		int r;

		if (!close) {
			c->line_bad = true;
			c->section_skip = true;
			add_error(c, c->line, "syntax error: section header without ']'");
			return;
		}
		n = (size_t)(close - s - 1);
		if (n >= sizeof(name))
			n = sizeof(name) - 1;
		memcpy(name, s + 1, n);
		name[n] = '\0';
		c->section_skip = !section_known(name);
		if (!c->section_skip)
			return;
		r = limits_rule_from_string(name);
		if (r > 0 && !limits_rule_info((enum limits_rule)r)->configurable)
			add_error(c, c->line, "[%s] %s is fixed by the gateway: not configurable",
				  name, limits_rule_name((enum limits_rule)r));
		else if (r > 0)
			add_error(c, c->line, "unknown section [%s]: use [%s]", name,
				  limits_rule_id((enum limits_rule)r));
		else
			add_error(c, c->line, "unknown section [%s]", name);
		return;
	}
	if (!c->continuation && !strpbrk(s, "=:")) {
		c->line_bad = true;
		add_error(c, c->line, "syntax error: expected 'name = value'");
	}
}

static char *reader(char *str, int num, void *stream)
{
	struct parse_ctx *c = stream;
	size_t len;
	bool eof;

	if (c->f) {
		if (!fgets(str, num, c->f))
			return NULL;
		len = strlen(str);
		eof = feof(c->f);
	} else {
		size_t n;
		if (!*c->text)
			return NULL;
		n = strcspn(c->text, "\n");
		if (c->text[n] == '\n')
			n++;
		if (n > (size_t)num - 1)
			n = (size_t)num - 1;
		memcpy(str, c->text, n);
		str[n] = '\0';
		c->text += n;
		len = n;
		eof = !*c->text;
	}
	if (c->at_line_start) {
		c->line++;
		c->line_bad = false;
		check_line(c, str);
	}
	c->at_line_start = (len > 0 && str[len - 1] == '\n') || eof;
	if (!c->at_line_start && !c->line_bad) {
		add_error(c, c->line, "line too long (at most %d characters)", num - 2);
		c->line_bad = true;
	}
	return str;
}

/* Decimal millimetres with at most 3 decimals, exactly, into um. */
static int parse_mm(const char *s, uint32_t *ret_um)
{
	uint32_t whole = 0, frac = 0;
	unsigned digits = 0, fdigits = 0;

	for (; *s >= '0' && *s <= '9'; s++, digits++) {
		whole = whole * 10 + (uint32_t)(*s - '0');
		if (whole > 100)
			return -ERANGE;
	}
	if (*s == '.') {
		s++;
		for (; *s >= '0' && *s <= '9'; s++, fdigits++) {
			if (fdigits == 3)
				return -EINVAL;
			frac = frac * 10 + (uint32_t)(*s - '0');
		}
	}
	if (*s || (digits == 0 && fdigits == 0))
		return -EINVAL;
	while (fdigits++ < 3)
		frac *= 10;
	*ret_um = whole * 1000 + frac;
	return 0;
}

static int parse_uint(const char *s, uint32_t *ret)
{
	uint64_t v = 0;

	if (!*s)
		return -EINVAL;
	for (; *s; s++) {
		if (*s < '0' || *s > '9')
			return -EINVAL;
		v = v * 10 + (uint64_t)(*s - '0');
		if (v > UINT32_MAX)
			return -ERANGE;
	}
	*ret = (uint32_t)v;
	return 0;
}

static void store(struct limits_values *v, const struct key *k, uint32_t x)
{
	char *base = (char *)v + k->off;

	switch (k->type) {
	case KEY_MM:
	case KEY_U16: {
		uint16_t u = (uint16_t)x;
		memcpy(base, &u, sizeof(u));
		break;
	}
	case KEY_U8: {
		uint8_t u = (uint8_t)x;
		memcpy(base, &u, sizeof(u));
		break;
	}
	case KEY_U32:
	case KEY_CI:
		memcpy(base, &x, sizeof(x));
		break;
	case KEY_STR:
	case KEY_ACTION:
		break;
	}
}

static void fmt_mm(char *buf, size_t size, uint32_t um)
{
	snprintf(buf, size, "%u.%03u", um / 1000, um % 1000);
}

static void set_key(struct parse_ctx *c, const struct key *k, const char *value)
{
	struct limits_values *v = &c->p->v;
	uint32_t x = 0;
	int r;

	switch (k->type) {
	case KEY_STR:
		if (strlen(value) > k->max) {
			add_error(c, c->line, "[%s] %s: longer than %u characters", k->section,
				  k->name, k->max);
			return;
		}
		snprintf(v->name, sizeof(v->name), "%s", value);
		return;
	case KEY_ACTION: {
		const struct limits_rule_info *ri = limits_rule_info(k->rule);
		char allowed[64], required[64];
		unsigned mask;

		limits_action_format(ri->actions_allowed, allowed, sizeof(allowed));
		if (limits_action_parse(value, &mask) < 0) {
			add_error(c, c->line,
				  "[%s] action: '%s' is not a list of warn, clamp, lock, block",
				  k->section, value);
			return;
		}
		if (mask & ~ri->actions_allowed) {
			add_error(c, c->line, "[%s] action: '%s' not allowed for %s (allowed: %s)",
				  k->section, value, ri->name, allowed);
			return;
		}
		if ((mask & ri->actions_required) != ri->actions_required) {
			limits_action_format(ri->actions_required, required, sizeof(required));
			add_error(c, c->line, "[%s] action: %s must include %s", k->section,
				  ri->name, required);
			return;
		}
		v->action[k->rule] = mask;
		return;
	}
	case KEY_CI: {
		const char *s = value;
		uint32_t mask = 0;
		while (*s) {
			char name[64];
			size_t n;
			uint32_t bit;

			s += strspn(s, ", \t");
			n = strcspn(s, ", \t");
			if (!n)
				break;
			if (n >= sizeof(name) || (snprintf(name, sizeof(name), "%.*s", (int)n, s),
						  limits_ci_from_name(name, &bit) < 0)) {
				add_error(c, c->line, "[%s] %s: unknown contraindication '%.*s'",
					  k->section, k->name, (int)n, s);
				return;
			}
			mask |= bit;
			s += n;
		}
		store(v, k, mask);
		return;
	}
	case KEY_MM:
		r = parse_mm(value, &x);
		if (r == -EINVAL) {
			add_error(c, c->line,
				  "[%s] %s: '%s' is not a depth in mm (at most 3 decimals)",
				  k->section, k->name, value);
			return;
		}
		if (r < 0 || x < k->min || x > k->max) {
			char lo[16], hi[16];
			fmt_mm(lo, sizeof(lo), k->min);
			fmt_mm(hi, sizeof(hi), k->max);
			add_error(c, c->line, "[%s] %s: %s mm out of range %s..%s", k->section,
				  k->name, value, lo, hi);
			return;
		}
		break;
	case KEY_U8:
	case KEY_U16:
	case KEY_U32:
		r = parse_uint(value, &x);
		if (r == -EINVAL) {
			add_error(c, c->line, "[%s] %s: '%s' is not a whole number", k->section,
				  k->name, value);
			return;
		}
		if (r < 0 || x < k->min || x > k->max) {
			add_error(c, c->line, "[%s] %s: %s out of range %u..%u", k->section,
				  k->name, value, k->min, k->max);
			return;
		}
		break;
	}
	store(v, k, x);
}

static int handler(void *user, const char *section, const char *name, const char *value)
{
	struct parse_ctx *c = user;
	size_t i;

	if (!name || c->line_bad || c->section_skip)
		return 1;
	if (!section || !*section) {
		add_error(c, c->line, "'%s' outside any section", name);
		return 1;
	}
	for (i = 0; i < N_KEYS; i++)
		if (strcmp(keys[i].section, section) == 0 && strcmp(keys[i].name, name) == 0)
			break;
	if (i == N_KEYS) {
		add_error(c, c->line, "unknown key '%s' in [%s]", name, section);
		return 1;
	}
	if (c->p->lines[i]) {
		if (c->continuation)
			add_error(c, c->line, "[%s] %s: value continues on an indented line",
				  section, name);
		else
			add_error(c, c->line, "duplicate key '%s' in [%s] (first set on line %u)",
				  name, section, c->p->lines[i]);
		return 1;
	}
	c->p->lines[i] = c->line;
	set_key(c, &keys[i], value);
	return c->failed ? 0 : 1;
}

static size_t key_index(const char *section, const char *name)
{
	for (size_t i = 0; i < N_KEYS; i++)
		if (strcmp(keys[i].section, section) == 0 && strcmp(keys[i].name, name) == 0)
			return i;
	return N_KEYS; /* not reached for the names used below */
}

/* Line for a cross-key error: the later of the two keys set in the file. */
static unsigned pair_line(const struct limits_policy *p, const char *section, const char *a,
			  const char *b)
{
	unsigned la = p->lines[key_index(section, a)], lb = p->lines[key_index(section, b)];
	return la > lb ? la : lb;
}

static void cross_check(struct parse_ctx *c)
{
	struct limits_policy *p = c->p;
	struct limits_values *v = &p->v;
	char a[16], b[16];

	if (v->pass_warn > v->pass_lock)
		add_error(c, pair_line(p, "NL-R06", "warn_passes", "lock_passes"),
			  "[NL-R06] warn_passes %u above lock_passes %u", v->pass_warn,
			  v->pass_lock);
	if (v->needle_on_warn_s > v->needle_on_lock_s)
		add_error(c, pair_line(p, "NL-R07", "warn_s", "lock_s"),
			  "[NL-R07] warn_s %u above lock_s %u", v->needle_on_warn_s,
			  v->needle_on_lock_s);
	if (v->override_min_days > v->interval_days)
		add_error(c, pair_line(p, "NL-R08", "min_days", "override_min_days"),
			  "[NL-R08] override_min_days %u above min_days %u", v->override_min_days,
			  v->interval_days);
	if (v->course_warn > v->course_block)
		add_error(c, pair_line(p, "NL-R09", "warn_sessions", "block_sessions"),
			  "[NL-R09] warn_sessions %u above block_sessions %u", v->course_warn,
			  v->course_block);
	for (size_t i = 0; i < N_KEYS; i++) {
		uint16_t cap;
		if (strcmp(keys[i].section, "NL-R02") != 0 || keys[i].type != KEY_MM)
			continue;
		memcpy(&cap, (const char *)v + keys[i].off, sizeof(cap));
		if (cap <= v->max_depth_um)
			continue;
		fmt_mm(a, sizeof(a), cap);
		fmt_mm(b, sizeof(b), v->max_depth_um);
		add_error(c,
			  p->lines[i] > p->lines[key_index("NL-R01", "max_mm")]
				  ? p->lines[i]
				  : p->lines[key_index("NL-R01", "max_mm")],
			  "[NL-R02] %s %s mm above [NL-R01] max_mm %s mm", keys[i].name, a, b);
	}
}

static int load(struct limits_policy *p, struct parse_ctx *c)
{
	size_t before = p->n_errors;
	int r;

	r = ini_parse_stream(reader, c, handler, c);
	if (c->failed)
		return c->failed;
	if (r == -2)
		return -ENOMEM;
	if (r == -1)
		return -EIO;
	if (r > 0 && p->n_errors == before)
		add_error(c, (unsigned)r, "syntax error");
	cross_check(c);
	p->hash = compute_hash(p);
	if (c->failed)
		return c->failed;
	return p->n_errors > before ? -EINVAL : 0;
}

int limits_policy_load(struct limits_policy *p, const char *path)
{
	struct parse_ctx c = {.p = p, .file = path, .at_line_start = true};
	int r;

	c.f = fopen(path, "re");
	if (!c.f) {
		r = -errno;
		add_error(&c, 0, "cannot open: %s", strerror(-r));
		return c.failed ? c.failed : r;
	}
	memset(p->lines, 0, sizeof(p->lines));
	r = load(p, &c);
	fclose(c.f);
	return r;
}

int limits_policy_load_string(struct limits_policy *p, const char *name, const char *text)
{
	struct parse_ctx c = {.p = p, .file = name, .text = text, .at_line_start = true};

	memset(p->lines, 0, sizeof(p->lines));
	return load(p, &c);
}

/* ---- canonical text and hash --------------------------------------------- */

int limits_policy_dump(const struct limits_policy *p, char *buf, size_t size)
{
	const struct limits_values *v = &p->v;
	size_t len = 0;

	if (size == 0)
		return -ENOBUFS;
	buf[0] = '\0';
	for (size_t i = 0; i < N_KEYS; i++) {
		const struct key *k = &keys[i];
		const char *base = (const char *)v + k->off;
		char val[256];
		int n;

		switch (k->type) {
		case KEY_STR:
			snprintf(val, sizeof(val), "%s", v->name);
			break;
		case KEY_ACTION:
			limits_action_format(v->action[k->rule], val, sizeof(val));
			break;
		case KEY_MM: {
			uint16_t u;
			memcpy(&u, base, sizeof(u));
			fmt_mm(val, sizeof(val), u);
			break;
		}
		case KEY_U8:
			snprintf(val, sizeof(val), "%u", (unsigned)*(const uint8_t *)base);
			break;
		case KEY_U16: {
			uint16_t u;
			memcpy(&u, base, sizeof(u));
			snprintf(val, sizeof(val), "%u", u);
			break;
		}
		case KEY_U32: {
			uint32_t u;
			memcpy(&u, base, sizeof(u));
			snprintf(val, sizeof(val), "%u", u);
			break;
		}
		case KEY_CI: {
			uint32_t u;
			size_t vl = 0;
			memcpy(&u, base, sizeof(u));
			val[0] = '\0';
			for (unsigned b = 0; b < LIMITS_CI_COUNT; b++)
				if (u & (1u << b))
					vl += (size_t)snprintf(val + vl, sizeof(val) - vl, "%s%s",
							       vl ? "," : "",
							       limits_ci_name(1u << b));
			break;
		}
		}
		n = snprintf(buf + len, size - len, "%s.%s=%s\n", k->section, k->name, val);
		if (n < 0 || (size_t)n >= size - len)
			return -ENOBUFS;
		len += (size_t)n;
	}
	return (int)len;
}

static uint32_t compute_hash(const struct limits_policy *p)
{
	char buf[4096];
	int n = limits_policy_dump(p, buf, sizeof(buf));

	/* 4 KiB holds every key at its longest; a failure would be a bug. */
	if (n < 0)
		return 0;
	return nl_fnv1a32((const uint8_t *)buf, (size_t)n);
}

uint32_t limits_policy_hash(const struct limits_policy *p)
{
	return p->hash;
}
