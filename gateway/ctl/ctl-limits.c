/* SPDX-License-Identifier: MIT */
/*
 * needlelinkctl authorise | unlock | audit: the treatment-limits commands
 * (docs/limits.md, docs/mqtt-api.md "authorise" and "unlock").
 */
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>
#include <sqlite3.h>

#include "config.h"
#include "ctl-limits.h"
#include "ctl-mqtt.h"
#include "needlelink/zone.h"

/* Exit status: authorise and unlock 1 for a usage or connection error (0 ok
 * or applied, 2 blocked, 3 failed); audit 2 for a usage error, 1 for a
 * journal error, as the other journal commands. */
static int usage_status = 1;

static const char *const roles[] = { "physician", "nurse", "aesthetician", "technician" };
static const char *const contraindications[] = {
	"active_infection", "cold_sores",    "active_acne", "rosacea",
	"keloid",	    "isotretinoin",  "anticoagulants", "pregnancy",
	"skin_cancer",	    "chemo_radiotherapy", "immunosuppression",
};
static const char *const skin_types[] = { "I", "II", "III", "IV", "V", "VI" };

static int in_list(const char *s, const char *const *list, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(s, list[i]) == 0)
			return (int)i;
	return -1;
}

static void list_names(const char *const *list, size_t n)
{
	for (size_t i = 0; i < n; i++)
		fprintf(stderr, "%s%s", i ? ", " : "", list[i]);
	fputc('\n', stderr);
}

/* An identifier as the API defines it: 1..64 of A-Z a-z 0-9 . _ : @ - */
static bool identifier_ok(const char *s)
{
	size_t n = strlen(s);

	if (n < 1 || n > 64)
		return false;
	for (; *s; s++)
		if (!isalnum((unsigned char)*s) && !strchr("._:@-", *s))
			return false;
	return true;
}

static bool text_ok(const char *s)
{
	size_t n = strlen(s);
	bool blank = true;

	if (n < 1 || n > 256)
		return false;
	for (; *s; s++) {
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return false;
		if (*s != ' ')
			blank = false;
	}
	return !blank;
}

static int bad(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int bad(const char *fmt, ...)
{
	va_list ap;

	fputs("needlelinkctl: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return usage_status;
}

/* ---- options ---------------------------------------------------------------- */

enum {
	OPT_PATIENT = CTL_MQTT_OPT_END,
	OPT_OPERATOR,
	OPT_ROLE,
	OPT_SKIN,
	OPT_ZONES,
	OPT_CI,
	OPT_SCAR,
	OPT_BODY,
	OPT_OVR_PHYS,
	OPT_OVR_REASON,
	OPT_REASON,
	OPT_PEN,
	OPT_SINCE,
	OPT_FORMAT,
};

struct args {
	const char *cmd, *serial;
	const char *journal, *config;
	struct ctl_mqtt_args mqtt; /* connection options */
	bool verbose;
	/* authorise, unlock */
	const char *patient, *operator_id, *role, *skin, *zones, *ovr_phys, *ovr_reason, *reason;
	const char *ci[16];
	unsigned n_ci;
	bool scar, body;
	/* audit */
	const char *pen, *since, *format;
	bool mqtt_flags, auth_flags, unlock_flags, audit_flags;
};

static const struct option long_opts[] = {
	{ "journal", required_argument, NULL, 'j' },
	{ "config", required_argument, NULL, 'c' },
	{ "help", no_argument, NULL, 'h' },
	{ "verbose", no_argument, NULL, 'v' },
	CTL_MQTT_LONG_OPTS,
	{ "patient", required_argument, NULL, OPT_PATIENT },
	{ "operator", required_argument, NULL, OPT_OPERATOR },
	{ "role", required_argument, NULL, OPT_ROLE },
	{ "skin-type", required_argument, NULL, OPT_SKIN },
	{ "zones", required_argument, NULL, OPT_ZONES },
	{ "contraindication", required_argument, NULL, OPT_CI },
	{ "scar", no_argument, NULL, OPT_SCAR },
	{ "body", no_argument, NULL, OPT_BODY },
	{ "override-physician", required_argument, NULL, OPT_OVR_PHYS },
	{ "override-reason", required_argument, NULL, OPT_OVR_REASON },
	{ "reason", required_argument, NULL, OPT_REASON },
	{ "pen", required_argument, NULL, OPT_PEN },
	{ "since", required_argument, NULL, OPT_SINCE },
	{ "format", required_argument, NULL, OPT_FORMAT },
	{}
};

const char *ctl_limits_command(int argc, char **argv)
{
	static const char *const names[] = { "authorise", "unlock", "audit", NULL };

	return ctl_find_command(argc, argv, long_opts, names);
}

static int parse_args(int argc, char **argv, struct args *a)
{
	int opt, r;

	optind = 1;
	while ((opt = getopt_long(argc, argv, "j:c:hv", long_opts, NULL)) != -1) {
		r = ctl_mqtt_args_parse(&a->mqtt, opt, optarg, NULL);
		if (r < 0)
			return usage_status;
		if (r > 0) {
			a->mqtt_flags = true;
			continue;
		}
		switch (opt) {
		case 'j':
			a->journal = optarg;
			break;
		case 'c':
			a->config = optarg;
			break;
		case 'h':
			return -1;
		case 'v':
			a->verbose = true;
			break;
		case OPT_PATIENT:
			a->patient = optarg;
			a->auth_flags = true;
			break;
		case OPT_OPERATOR:
			a->operator_id = optarg;
			break;
		case OPT_ROLE:
			a->role = optarg;
			break;
		case OPT_SKIN:
			a->skin = optarg;
			a->auth_flags = true;
			break;
		case OPT_ZONES:
			a->zones = optarg;
			a->auth_flags = true;
			break;
		case OPT_CI:
			if (a->n_ci >= sizeof(a->ci) / sizeof(a->ci[0]))
				return bad("too many --contraindication options");
			a->ci[a->n_ci++] = optarg;
			a->auth_flags = true;
			break;
		case OPT_SCAR:
			a->scar = true;
			a->auth_flags = true;
			break;
		case OPT_BODY:
			a->body = true;
			a->auth_flags = true;
			break;
		case OPT_OVR_PHYS:
			a->ovr_phys = optarg;
			a->auth_flags = true;
			break;
		case OPT_OVR_REASON:
			a->ovr_reason = optarg;
			a->auth_flags = true;
			break;
		case OPT_REASON:
			a->reason = optarg;
			a->unlock_flags = true;
			break;
		case OPT_PEN:
			a->pen = optarg;
			a->audit_flags = true;
			break;
		case OPT_SINCE:
			a->since = optarg;
			a->audit_flags = true;
			break;
		case OPT_FORMAT:
			a->format = optarg;
			a->audit_flags = true;
			break;
		default:
			return usage_status;
		}
	}
	if (optind >= argc)
		return bad("no command");
	a->cmd = argv[optind++];
	if (strcmp(a->cmd, "audit") != 0) {
		if (optind >= argc)
			return bad("%s: the pen's serial is missing (needlelinkctl %s SERIAL ...)",
				   a->cmd, a->cmd);
		a->serial = argv[optind++];
	}
	if (optind < argc)
		return bad("unexpected argument \"%s\"", argv[optind]);
	return 0;
}

/* ---- requests --------------------------------------------------------------- */

static int run_request(const struct args *a, const char *op, cJSON *params)
{
	struct config *cfg = NULL;
	int code;

	if (ctl_mqtt_config_load(&a->mqtt, a->config, true, &cfg) < 0)
		return usage_status;
	code = ctl_mqtt_run(&a->mqtt, cfg, a->verbose, a->serial, op, params);
	config_free(cfg);
	return code;
}

static cJSON *operator_obj(const struct args *a)
{
	cJSON *op = cJSON_CreateObject();

	if (!op || !cJSON_AddStringToObject(op, "id", a->operator_id) ||
	    !cJSON_AddStringToObject(op, "role", a->role)) {
		cJSON_Delete(op);
		return NULL;
	}
	return op;
}

static int check_operator(const struct args *a)
{
	if (!a->operator_id)
		return bad("%s: --operator ID is required", a->cmd);
	if (!identifier_ok(a->operator_id))
		return bad("--operator: 1..64 characters of A-Z a-z 0-9 . _ : @ -, not \"%s\"",
			   a->operator_id);
	if (!a->role)
		return bad("%s: --role ROLE is required (physician, nurse, aesthetician, "
			   "technician)",
			   a->cmd);
	if (in_list(a->role, roles, 4) < 0) {
		fprintf(stderr, "needlelinkctl: --role: unknown role \"%s\"; one of: ", a->role);
		list_names(roles, 4);
		return usage_status;
	}
	return 0;
}

/* ---- authorise -------------------------------------------------------------- */

static int cmd_authorise(const struct args *a)
{
	cJSON *params, *arr, *proto, *ovr;
	char zones[512], *save = NULL, *tok;
	char skin[4];
	int r, code;

	if (a->unlock_flags || a->audit_flags)
		return bad("authorise: --reason, --pen, --since and --format belong to other "
			   "commands");
	if (!a->patient)
		return bad("authorise: --patient PSEUDONYM is required");
	if (!identifier_ok(a->patient))
		return bad("--patient: an opaque pseudonym, 1..64 characters of A-Z a-z 0-9 . _ "
			   ": @ -, not \"%s\"",
			   a->patient);
	r = check_operator(a);
	if (r)
		return r;
	if (!a->skin)
		return bad("authorise: --skin-type I..VI is required");
	snprintf(skin, sizeof(skin), "%s", a->skin);
	if (strlen(a->skin) == 1 && a->skin[0] >= '1' && a->skin[0] <= '6')
		snprintf(skin, sizeof(skin), "%s", skin_types[a->skin[0] - '1']);
	for (char *p = skin; *p; p++)
		*p = (char)toupper((unsigned char)*p);
	if (strlen(a->skin) > 3 || in_list(skin, skin_types, 6) < 0)
		return bad("--skin-type: Fitzpatrick I, II, III, IV, V or VI (or 1..6), not \"%s\"",
			   a->skin);
	if (!a->zones || !a->zones[0])
		return bad("authorise: --zones ZONE[,ZONE]... is required");
	if (strlen(a->zones) >= sizeof(zones))
		return bad("--zones: too long");
	if ((a->ovr_phys != NULL) != (a->ovr_reason != NULL))
		return bad("authorise: an override needs both --override-physician and "
			   "--override-reason");
	if (a->ovr_phys && !identifier_ok(a->ovr_phys))
		return bad("--override-physician: 1..64 characters of A-Z a-z 0-9 . _ : @ -, not "
			   "\"%s\"",
			   a->ovr_phys);
	if (a->ovr_reason && !text_ok(a->ovr_reason))
		return bad("--override-reason: 1..256 bytes of text without control characters");

	params = cJSON_CreateObject();
	if (!params)
		return usage_status;
	code = usage_status;
	cJSON_AddStringToObject(params, "patient", a->patient);
	cJSON_AddItemToObject(params, "operator", operator_obj(a));
	cJSON_AddStringToObject(params, "skin_type", skin);
	arr = cJSON_AddArrayToObject(params, "contraindications");
	for (unsigned i = 0; arr && i < a->n_ci; i++) {
		char list[256];

		snprintf(list, sizeof(list), "%s", a->ci[i]);
		for (tok = strtok_r(list, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
			const cJSON *e;

			if (in_list(tok, contraindications, 11) < 0) {
				fprintf(stderr,
					"needlelinkctl: --contraindication: unknown \"%s\"; one of: ",
					tok);
				list_names(contraindications, 11);
				goto out;
			}
			cJSON_ArrayForEach(e, arr)
			{
				if (strcmp(e->valuestring, tok) == 0) {
					bad("--contraindication: \"%s\" given twice", tok);
					goto out;
				}
			}
			cJSON_AddItemToArray(arr, cJSON_CreateString(tok));
		}
	}
	arr = cJSON_AddArrayToObject(params, "zones");
	snprintf(zones, sizeof(zones), "%s", a->zones);
	for (tok = strtok_r(zones, ",", &save); arr && tok; tok = strtok_r(NULL, ",", &save)) {
		const cJSON *e;
		int z = nl_zone_from_name(tok);

		if (z < 0 || !nl_zone_valid((unsigned)z)) {
			fprintf(stderr, "needlelinkctl: --zones: unknown zone \"%s\"; zones:", tok);
			for (unsigned i = 0; i < NL_ZONE_COUNT; i++)
				if (nl_zone_valid(i))
					fprintf(stderr, " %s", nl_zone_name(i));
			fputc('\n', stderr);
			goto out;
		}
		cJSON_ArrayForEach(e, arr)
		{
			if (strcmp(e->valuestring, tok) == 0) {
				bad("--zones: \"%s\" given twice", tok);
				goto out;
			}
		}
		cJSON_AddItemToArray(arr, cJSON_CreateString(tok));
	}
	if (cJSON_GetArraySize(arr) < 1 || cJSON_GetArraySize(arr) > 16) {
		bad("--zones: 1..16 zones");
		goto out;
	}
	proto = cJSON_AddObjectToObject(params, "protocol");
	cJSON_AddBoolToObject(proto, "scar", a->scar);
	cJSON_AddBoolToObject(proto, "body", a->body);
	if (a->ovr_phys) {
		ovr = cJSON_AddObjectToObject(params, "override");
		cJSON_AddStringToObject(ovr, "physician_id", a->ovr_phys);
		cJSON_AddStringToObject(ovr, "reason", a->ovr_reason);
	}
	code = run_request(a, "authorise", params);
out:
	cJSON_Delete(params);
	return code;
}

/* ---- unlock ----------------------------------------------------------------- */

static int cmd_unlock(const struct args *a)
{
	cJSON *params;
	int r;

	if (a->auth_flags || a->audit_flags || a->patient)
		return bad("unlock: takes --operator, --role and --reason only (plus connection "
			   "options)");
	r = check_operator(a);
	if (r)
		return r;
	if (!a->reason)
		return bad("unlock: --reason TEXT is required (why the pen may run again; it "
			   "goes to the audit trail)");
	if (!text_ok(a->reason))
		return bad("--reason: 1..256 bytes of text without control characters, not "
			   "blank");
	params = cJSON_CreateObject();
	if (!params)
		return usage_status;
	cJSON_AddItemToObject(params, "operator", operator_obj(a));
	cJSON_AddStringToObject(params, "reason_text", a->reason);
	r = run_request(a, "unlock", params);
	cJSON_Delete(params);
	return r;
}

/* ---- audit ------------------------------------------------------------------ */

static void fmt_ms(int64_t ms, char *buf, size_t size)
{
	time_t t = (time_t)(ms / 1000);
	struct tm tm;

	if (ms <= 0 || !gmtime_r(&t, &tm)) {
		snprintf(buf, size, "-");
		return;
	}
	snprintf(buf, size, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
		 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(ms % 1000));
}

/* --since: "2026-11-24", "2026-11-24T10:00:00Z" (.mmm optional), or an age:
 * "90m", "12h", "30d" ago. Unix ms into *ret. */
static int parse_since(const char *s, int64_t *ret)
{
	struct tm tm = {0};
	char *end;
	int ms = 0, n = 0;
	long long v;
	struct timespec now;

	errno = 0;
	v = strtoll(s, &end, 10);
	if (!errno && end != s && v >= 0 && end[0] && !end[1] && strchr("smhd", end[0]) &&
	    s[0] != '-' && (end - s) < 8) {
		static const int unit[] = { ['s'] = 1, ['m'] = 60, ['h'] = 3600, ['d'] = 86400 };

		clock_gettime(CLOCK_REALTIME, &now);
		*ret = (int64_t)now.tv_sec * 1000 - v * unit[(unsigned char)end[0]] * 1000LL;
		return 0;
	}
	if (sscanf(s, "%4d-%2d-%2d%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &n) != 3)
		return -EINVAL;
	if (s[n] == 'T') {
		int m = 0;

		if (sscanf(s + n, "T%2d:%2d:%2d%n", &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &m) != 3)
			return -EINVAL;
		n += m;
		if (s[n] == '.') {
			m = 0;
			if (sscanf(s + n, ".%3d%n", &ms, &m) != 1 || m != 4)
				return -EINVAL;
			n += m;
		}
		if (s[n] == 'Z')
			n++;
		else
			return -EINVAL;
	}
	if (s[n] || tm.tm_mon < 1 || tm.tm_mon > 12 || tm.tm_mday < 1 || tm.tm_mday > 31 ||
	    tm.tm_hour > 23 || tm.tm_min > 59 || tm.tm_sec > 60)
		return -EINVAL;
	tm.tm_year -= 1900;
	tm.tm_mon -= 1;
	*ret = (int64_t)timegm(&tm) * 1000 + ms;
	return 0;
}

static void csv_field(const char *s)
{
	if (!strpbrk(s, ",\"\n\r")) {
		fputs(s, stdout);
		return;
	}
	putchar('"');
	for (; *s; s++) {
		if (*s == '"')
			putchar('"');
		putchar(*s);
	}
	putchar('"');
}

#define AUDIT_COLS                                                                          \
	"id, at_ms, pen_serial, session_id, kind, actor_id, actor_role, patient, rule, action," \
	" result, measured, threshold, unit, limits_hash, policy_hash, detail"

static const char *const audit_names[] = { "id",	 "at",	      "pen",	 "session_id",
					   "kind",	 "actor_id",  "actor_role", "patient",
					   "rule",	 "action",    "result",	 "measured",
					   "threshold", "unit",	      "limits_hash", "policy_hash",
					   "detail" };

static int cmd_audit(const struct args *a)
{
	struct config *cfg = NULL;
	const char *journal = a->journal;
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	cJSON *out = NULL;
	int64_t since = 0;
	bool json;
	int rc, code = 1;

	if (a->auth_flags || a->unlock_flags || a->operator_id || a->role || a->mqtt_flags)
		return bad("audit: takes --pen, --since and --format only (and --journal, "
			   "--config)");
	if (a->format && strcmp(a->format, "csv") && strcmp(a->format, "json"))
		return bad("--format: csv or json, not \"%s\"", a->format);
	json = a->format && strcmp(a->format, "json") == 0;
	if (a->since && parse_since(a->since, &since) < 0)
		return bad("--since: YYYY-MM-DD, YYYY-MM-DDTHH:MM:SS[.mmm]Z, or an age such as "
			   "30d, 12h, 90m, not \"%s\"",
			   a->since);
	if (!journal) {
		if (ctl_mqtt_config_load(&a->mqtt, a->config, false, &cfg) < 0)
			return 1;
		journal = config_str(cfg, CONFIG_GATEWAY_JOURNAL);
	}
	rc = sqlite3_open_v2(journal, &db, SQLITE_OPEN_READONLY, NULL);
	if (rc != SQLITE_OK) {
		fprintf(stderr, "needlelinkctl: %s: %s\n", journal,
			db ? sqlite3_errmsg(db) : "cannot open");
		code = 1;
		goto done;
	}
	sqlite3_busy_timeout(db, 5000);
	if (sqlite3_prepare_v2(db,
			       "SELECT " AUDIT_COLS " FROM audit"
			       " WHERE (?1 IS NULL OR pen_serial = ?1) AND at_ms >= ?2"
			       " ORDER BY id",
			       -1, &st, NULL) != SQLITE_OK) {
		fprintf(stderr, "needlelinkctl: %s: no audit trail: %s\n", journal,
			sqlite3_errmsg(db));
		code = 1;
		goto done;
	}
	if (a->pen)
		sqlite3_bind_text(st, 1, a->pen, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, since);
	if (json)
		out = cJSON_CreateArray();
	else {
		for (unsigned i = 0; i < 17; i++)
			printf("%s%s", i ? "," : "", audit_names[i]);
		putchar('\n');
	}
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		cJSON *row = json ? cJSON_CreateObject() : NULL;

		if (json && !row)
			break;
		if (row)
			cJSON_AddItemToArray(out, row);
		for (int i = 0; i < 17; i++) {
			int type = sqlite3_column_type(st, i);
			const char *t = (const char *)sqlite3_column_text(st, i);
			cJSON *detail;
			char at[64];

			if (i == 1) {
				fmt_ms(sqlite3_column_int64(st, 1), at, sizeof(at));
				t = at;
				type = SQLITE_TEXT;
			}
			if (!json) {
				if (i)
					putchar(',');
				if (type != SQLITE_NULL && t)
					csv_field(t);
				continue;
			}
			if (type == SQLITE_NULL || !t)
				cJSON_AddNullToObject(row, audit_names[i]);
			else if (type == SQLITE_INTEGER)
				cJSON_AddNumberToObject(row, audit_names[i],
							(double)sqlite3_column_int64(st, i));
			else if (type == SQLITE_FLOAT)
				cJSON_AddNumberToObject(row, audit_names[i],
							sqlite3_column_double(st, i));
			else if (i == 16 && (detail = cJSON_Parse(t)) != NULL)
				cJSON_AddItemToObject(row, audit_names[i], detail); /* JSON text */
			else
				cJSON_AddStringToObject(row, audit_names[i], t);
		}
		if (!json)
			putchar('\n');
	}
	if (rc != SQLITE_DONE) {
		fprintf(stderr, "needlelinkctl: query failed: %s\n", sqlite3_errmsg(db));
		code = 1;
		goto done;
	}
	if (json) {
		char *text = cJSON_Print(out);

		if (!text) {
			code = 1;
			goto done;
		}
		puts(text);
		free(text);
	}
	code = 0;
done:
	cJSON_Delete(out);
	sqlite3_finalize(st);
	sqlite3_close(db);
	config_free(cfg);
	return code;
}

int ctl_limits_main(int argc, char **argv, const char *cmd)
{
	struct args a = {0};
	int r;

	usage_status = strcmp(cmd, "audit") == 0 ? 2 : 1;
	r = parse_args(argc, argv, &a);

	if (r < 0) {
		/* --help: the whole program's help is in ctl.c */
		return -1;
	}
	if (r)
		return r;
	if (strcmp(a.cmd, "authorise") == 0)
		return cmd_authorise(&a);
	if (strcmp(a.cmd, "unlock") == 0)
		return cmd_unlock(&a);
	if (strcmp(a.cmd, "audit") == 0)
		return cmd_audit(&a);
	return bad("unknown command \"%s\"", a.cmd);
}
