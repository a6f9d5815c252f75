/* SPDX-License-Identifier: MIT */
/*
 * needlelinkctl: reads needlelinkd's journal (SQLite, opened read-only, so
 * it is safe while the daemon runs) and renders MQTT traffic for people.
 */
#include <errno.h>
#include <getopt.h>
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
#include "ctl-pair.h"

#ifndef NLGW_VERSION
#define NLGW_VERSION "0.0.0"
#endif

static void usage(FILE *f)
{
	fputs("Usage: needlelinkctl [OPTION]... COMMAND [ARG]...\n"
	      "Reads the needlelinkd journal (read-only; safe while the daemon runs), and\n"
	      "sends treatment-limits requests to needlelinkd over MQTT.\n"
	      "\n"
	      "Commands:\n"
	      "  pens                      pens seen: model, firmware, store epoch, last\n"
	      "                            committed seq, records journaled, last seen\n"
	      "  sessions [--pen S]        sessions found in the journaled records: pen,\n"
	      "                            session id, start/end by the pen's clock, end\n"
	      "                            reason, record count\n"
	      "  records [--pen S] [--format csv|json]\n"
	      "                            every journaled record in (pen, epoch, seq) order;\n"
	      "                            csv (default): one line per record with a header;\n"
	      "                            json: a JSON array of the records as published\n"
	      "  export                    everything as one JSON object: pens and records\n"
	      "  format [--live-every N]   reads \"TOPIC PAYLOAD\" lines (mosquitto_sub -v) on\n"
	      "                            stdin and prints one readable line per message;\n"
	      "                            with N > 1 only every Nth live message per pen\n"
	      "  audit [--pen S] [--since TIME] [--format csv|json]\n"
	      "                            the audit trail: authorisations, enforcement\n"
	      "                            actions, unlocks, overrides, oldest first; TIME is\n"
	      "                            YYYY-MM-DD, YYYY-MM-DDTHH:MM:SS[.mmm]Z or an age\n"
	      "                            (30d, 12h, 90m)\n"
	      "\n"
	      "Requests to the gateway over MQTT (broker from the configuration file):\n"
	      "  authorise SERIAL --patient P --operator ID --role ROLE --skin-type I..VI\n"
	      "            --zones ZONE[,ZONE]... [--contraindication C]... [--scar] [--body]\n"
	      "            [--override-physician ID --override-reason TEXT]\n"
	      "                            evaluate the clinic's rules for a planned session\n"
	      "                            and, unless a rule blocks it, write the limits to\n"
	      "                            the pen and authorise the session. ROLE: physician,\n"
	      "                            nurse, aesthetician, technician; P: an opaque\n"
	      "                            patient pseudonym, never a name\n"
	      "  unlock SERIAL --operator ID --role ROLE --reason TEXT\n"
	      "                            unlock a locked pen (the gateway accepts only the\n"
	      "                            physician role, with a reason)\n"
	      "  pair SERIAL --passkey N | --confirm yes|no\n"
	      "                            answer the Bluetooth pairing of a pen (transport\n"
	      "                            bluez): the passkey the pen shows, or whether it\n"
	      "                            shows the number in the pairing_confirm_wanted alert\n"
	      "  release SERIAL            let the gateway connect again to a pen it quarantined\n"
	      "                            (alert pen_quarantined), once it has been checked\n"
	      "  Request options: --host H, --port N, --protocol 5|3.1.1, --username U,\n"
	      "  --password-file F, --tls-ca F, --tls-cert F, --tls-key F, --base-topic T\n"
	      "  (override the [mqtt] and [gateway] keys of the configuration file),\n"
	      "  --timeout S (response deadline, default 30), --json (print the response\n"
	      "  as received), -v (log the request)\n"
	      "\n"
	      "Options:\n"
	      "  -j, --journal PATH        the journal (default: gateway.journal of the\n"
	      "                            configuration file)\n"
	      "  -c, --config FILE         configuration file to read gateway.journal from\n"
	      "                            (default " CONFIG_DEFAULT_PATH ", if present)\n"
	      "  -h, --help                show this help\n"
	      "  -V, --version             show the version\n"
	      "\n"
	      "Exit status: 0 on success, 1 on an error (no journal, bad database),\n"
	      "2 on a usage error. authorise, unlock, pair and release: 0 ok or applied,\n"
	      "2 blocked, 3 failed, refused or no response in time, 1 usage or\n"
	      "connection error.\n",
	      f);
}

/* ---- journal queries ------------------------------------------------------ */

static int open_journal(const char *path, sqlite3 **ret)
{
	sqlite3 *db = NULL;
	int rc = sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL);

	if (rc != SQLITE_OK) {
		fprintf(stderr, "needlelinkctl: %s: %s\n", path, db ? sqlite3_errmsg(db) : "cannot open");
		sqlite3_close(db);
		return -EIO;
	}
	sqlite3_busy_timeout(db, 5000);
	*ret = db;
	return 0;
}

static int prepare(sqlite3 *db, const char *sql, sqlite3_stmt **ret)
{
	if (sqlite3_prepare_v2(db, sql, -1, ret, NULL) != SQLITE_OK) {
		fprintf(stderr, "needlelinkctl: query failed: %s\n", sqlite3_errmsg(db));
		return -EIO;
	}
	return 0;
}

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

static const char *col_text(sqlite3_stmt *st, int i)
{
	const unsigned char *t = sqlite3_column_text(st, i);

	return t ? (const char *)t : "";
}

static int step_done(sqlite3 *db, int rc)
{
	if (rc != SQLITE_DONE) {
		fprintf(stderr, "needlelinkctl: query failed: %s\n", sqlite3_errmsg(db));
		return -EIO;
	}
	return 0;
}

static int cmd_pens(sqlite3 *db)
{
	sqlite3_stmt *st;
	int rc;

	if (prepare(db,
		    "SELECT p.serial, p.model, p.firmware, p.store_epoch, p.last_committed_seq,"
		    " p.last_seen, (SELECT COUNT(*) FROM records r WHERE r.pen_serial = p.serial)"
		    " FROM pens p ORDER BY p.serial",
		    &st) < 0)
		return -EIO;
	printf("%-20s %-14s %-10s %10s %8s %8s  %s\n", "SERIAL", "MODEL", "FIRMWARE", "EPOCH",
	       "LAST_SEQ", "RECORDS", "LAST_SEEN");
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		char seen[64];

		fmt_ms(sqlite3_column_int64(st, 5), seen, sizeof(seen));
		printf("%-20s %-14s %-10s %10lld %8lld %8lld  %s\n", col_text(st, 0),
		       col_text(st, 1)[0] ? col_text(st, 1) : "-",
		       col_text(st, 2)[0] ? col_text(st, 2) : "-",
		       (long long)sqlite3_column_int64(st, 3), (long long)sqlite3_column_int64(st, 4),
		       (long long)sqlite3_column_int64(st, 6), seen);
	}
	rc = step_done(db, rc);
	sqlite3_finalize(st);
	return rc;
}

static int cmd_sessions(sqlite3 *db, const char *pen)
{
	sqlite3_stmt *st;
	int rc;

	/* Sessions are rebuilt from the records: the journal's record rows carry
	 * the session id; the session_end record's decoded body the reason. */
	if (prepare(db,
		    "SELECT pen_serial, store_epoch, session_id,"
		    " MIN(CASE WHEN type = 1 THEN json_extract(decoded, '$.pen_time') END),"
		    " MAX(CASE WHEN type = 2 THEN json_extract(decoded, '$.pen_time') END),"
		    " MAX(CASE WHEN type = 2 THEN json_extract(decoded, '$.data.reason') END),"
		    " MAX(CASE WHEN type = 2 THEN json_extract(decoded, '$.data.needle_on_s') END),"
		    " COUNT(*), MIN(seq), MAX(seq)"
		    " FROM records WHERE session_id != 0 AND (?1 IS NULL OR pen_serial = ?1)"
		    " GROUP BY pen_serial, store_epoch, session_id ORDER BY pen_serial, MIN(seq)",
		    &st) < 0)
		return -EIO;
	if (pen)
		sqlite3_bind_text(st, 1, pen, -1, SQLITE_STATIC);
	printf("%-20s %10s %-24s %-24s %-10s %11s %7s %s\n", "SERIAL", "SESSION", "STARTED",
	       "ENDED", "END", "NEEDLE_ON_S", "RECORDS", "SEQS");
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		printf("%-20s %10lld %-24s %-24s %-10s %11s %7lld %lld..%lld\n", col_text(st, 0),
		       (long long)sqlite3_column_int64(st, 2),
		       col_text(st, 3)[0] ? col_text(st, 3) : "-",
		       col_text(st, 4)[0] ? col_text(st, 4) : "-",
		       col_text(st, 5)[0] ? col_text(st, 5) : "(open)",
		       col_text(st, 6)[0] ? col_text(st, 6) : "-",
		       (long long)sqlite3_column_int64(st, 7), (long long)sqlite3_column_int64(st, 8),
		       (long long)sqlite3_column_int64(st, 9));
	}
	rc = step_done(db, rc);
	sqlite3_finalize(st);
	return rc;
}

static const char *type_name(int t)
{
	static const char *const names[] = { "?", "session_start", "session_end", "segment",
					     "cartridge", "limit", "fault", "time_change" };

	return t > 0 && t < 8 ? names[t] : "?";
}

static int records_query(sqlite3 *db, const char *pen, sqlite3_stmt **st)
{
	if (prepare(db,
		    "SELECT pen_serial, store_epoch, seq, type, session_id, pen_time, gw_time,"
		    " decoded FROM records WHERE (?1 IS NULL OR pen_serial = ?1)"
		    " ORDER BY pen_serial, store_epoch, seq",
		    st) < 0)
		return -EIO;
	if (pen)
		sqlite3_bind_text(*st, 1, pen, -1, SQLITE_STATIC);
	return 0;
}

/* Writes the decoded payloads as a JSON array (each already is JSON). */
static int records_json(sqlite3 *db, const char *pen, FILE *out)
{
	sqlite3_stmt *st;
	bool first = true;
	int rc;

	if (records_query(db, pen, &st) < 0)
		return -EIO;
	fputc('[', out);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *dec = col_text(st, 7);

		fputs(first ? "\n" : ",\n", out);
		first = false;
		if (dec[0])
			fputs(dec, out);
		else
			fprintf(out, "{\"serial\":\"%s\",\"store_epoch\":%lld,\"seq\":%lld}",
				col_text(st, 0), (long long)sqlite3_column_int64(st, 1),
				(long long)sqlite3_column_int64(st, 2));
	}
	fputs(first ? "]" : "\n]", out);
	rc = step_done(db, rc);
	sqlite3_finalize(st);
	return rc;
}

static void csv_field(const char *s)
{
	bool quote = strpbrk(s, ",\"\n") != NULL;

	if (!quote) {
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

static int cmd_records(sqlite3 *db, const char *pen, const char *format)
{
	sqlite3_stmt *st;
	int rc;

	if (strcmp(format, "json") == 0) {
		rc = records_json(db, pen, stdout);
		putchar('\n');
		return rc;
	}
	if (records_query(db, pen, &st) < 0)
		return -EIO;
	puts("serial,store_epoch,seq,record_id,type,session_id,pen_time,received_at");
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		char rid[128], gw[64];

		snprintf(rid, sizeof(rid), "%s:%lld:%lld", col_text(st, 0),
			 (long long)sqlite3_column_int64(st, 1), (long long)sqlite3_column_int64(st, 2));
		fmt_ms(sqlite3_column_int64(st, 6), gw, sizeof(gw));
		csv_field(col_text(st, 0));
		printf(",%lld,%lld,", (long long)sqlite3_column_int64(st, 1),
		       (long long)sqlite3_column_int64(st, 2));
		csv_field(rid);
		printf(",%s,%lld,%lld,%s\n", type_name(sqlite3_column_int(st, 3)),
		       (long long)sqlite3_column_int64(st, 4), (long long)sqlite3_column_int64(st, 5),
		       gw);
	}
	rc = step_done(db, rc);
	sqlite3_finalize(st);
	return rc;
}

static int cmd_export(sqlite3 *db)
{
	sqlite3_stmt *st;
	cJSON *pens = cJSON_CreateArray();
	char *text;
	int rc;

	if (!pens)
		return -ENOMEM;
	if (prepare(db,
		    "SELECT serial, model, firmware, store_epoch, last_committed_seq, first_seen,"
		    " last_seen FROM pens ORDER BY serial",
		    &st) < 0) {
		cJSON_Delete(pens);
		return -EIO;
	}
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		cJSON *p = cJSON_CreateObject();
		char t[64];

		if (!p)
			break;
		cJSON_AddItemToArray(pens, p);
		cJSON_AddStringToObject(p, "serial", col_text(st, 0));
		if (sqlite3_column_type(st, 1) == SQLITE_NULL)
			cJSON_AddNullToObject(p, "model");
		else
			cJSON_AddStringToObject(p, "model", col_text(st, 1));
		if (sqlite3_column_type(st, 2) == SQLITE_NULL)
			cJSON_AddNullToObject(p, "firmware");
		else
			cJSON_AddStringToObject(p, "firmware", col_text(st, 2));
		cJSON_AddNumberToObject(p, "store_epoch", (double)sqlite3_column_int64(st, 3));
		cJSON_AddNumberToObject(p, "last_committed_seq", (double)sqlite3_column_int64(st, 4));
		fmt_ms(sqlite3_column_int64(st, 5), t, sizeof(t));
		cJSON_AddStringToObject(p, "first_seen", t);
		fmt_ms(sqlite3_column_int64(st, 6), t, sizeof(t));
		cJSON_AddStringToObject(p, "last_seen", t);
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE) {
		cJSON_Delete(pens);
		return step_done(db, rc);
	}
	text = cJSON_PrintUnformatted(pens);
	cJSON_Delete(pens);
	if (!text)
		return -ENOMEM;
	printf("{\"schema\":\"needlelink/export/1\",\"pens\":%s,\"records\":", text);
	free(text);
	rc = records_json(db, NULL, stdout);
	puts("}");
	return rc;
}

/* ---- format: one readable line per MQTT message ------------------------- */

static const cJSON *path(const cJSON *o, const char *p)
{
	char buf[128], *save = NULL, *tok;

	snprintf(buf, sizeof(buf), "%s", p);
	for (tok = strtok_r(buf, ".", &save); tok && o; tok = strtok_r(NULL, ".", &save))
		o = cJSON_GetObjectItemCaseSensitive(o, tok);
	return o;
}

/* Appends " label=value" for a member that exists and is not null. */
static void add(char *line, size_t size, const cJSON *o, const char *p, const char *label)
{
	const cJSON *v = path(o, p);
	size_t n = strlen(line);

	if (!v || cJSON_IsNull(v) || n >= size - 1)
		return;
	const char *eq = label[0] ? "=" : "";

	if (cJSON_IsString(v))
		snprintf(line + n, size - n, " %s%s%s", label, eq, v->valuestring);
	else if (cJSON_IsBool(v))
		snprintf(line + n, size - n, " %s%s%s", label, eq, cJSON_IsTrue(v) ? "yes" : "no");
	else if (cJSON_IsNumber(v) && v->valuedouble == (double)(long long)v->valuedouble &&
		 v->valuedouble > -1e15 && v->valuedouble < 1e15)
		snprintf(line + n, size - n, " %s%s%lld", label, eq, (long long)v->valuedouble);
	else if (cJSON_IsNumber(v))
		snprintf(line + n, size - n, " %s%s%g", label, eq, v->valuedouble);
}

static void add_scalars(char *line, size_t size, const cJSON *o)
{
	const cJSON *v;

	cJSON_ArrayForEach(v, o)
	{
		if (cJSON_IsString(v) || cJSON_IsNumber(v) || cJSON_IsBool(v))
			add(line, size, o, v->string, v->string);
	}
}

struct live_count {
	char serial[40];
	unsigned long n;
};

static int cmd_format(unsigned live_every)
{
	static struct live_count lc[256];
	char *buf = NULL;
	size_t cap = 0;
	ssize_t len;

	setvbuf(stdout, NULL, _IOLBF, 0);
	while ((len = getline(&buf, &cap, stdin)) > 0) {
		char line[1024] = "", now[64], *sp, *payload;
		const char *kind, *who = "";
		cJSON *o;
		struct timespec ts;
		struct tm tm;

		if (buf[len - 1] == '\n')
			buf[--len] = '\0';
		sp = strchr(buf, ' ');
		payload = sp ? sp + 1 : (char *)"";
		if (sp)
			*sp = '\0';
		kind = strrchr(buf, '/') ? strrchr(buf, '/') + 1 : buf;
		clock_gettime(CLOCK_REALTIME, &ts);
		localtime_r(&ts.tv_sec, &tm);
		snprintf(now, sizeof(now), "%02d:%02d:%02d", tm.tm_hour, tm.tm_min, tm.tm_sec);
		o = cJSON_Parse(payload);
		if (!o) {
			printf("%s %-12s %s %s\n", now, "", buf,
			       payload[0] ? "(not JSON)" : "(cleared)");
			continue;
		}
		if (path(o, "serial") && cJSON_IsString(path(o, "serial")))
			who = path(o, "serial")->valuestring;
		else if (path(o, "gateway") && cJSON_IsString(path(o, "gateway")))
			who = path(o, "gateway")->valuestring;
		if (strstr(buf, "/gateways/")) {
			if (strcmp(kind, "state") == 0) {
				add(line, sizeof(line), o, "state", "state");
				add(line, sizeof(line), o, "will", "will");
			} else if (strcmp(kind, "info") == 0) {
				add(line, sizeof(line), o, "version", "version");
				add(line, sizeof(line), o, "transport", "transport");
				add(line, sizeof(line), o, "config_hash", "config");
			} else if (strcmp(kind, "health") == 0) {
				const cJSON *pens = path(o, "pens"), *p;

				add(line, sizeof(line), o, "uptime_s", "up_s");
				add(line, sizeof(line), o, "memory.rss_bytes", "rss");
				add(line, sizeof(line), o, "outbox.depth", "outbox");
				cJSON_ArrayForEach(p, pens)
				{
					size_t n = strlen(line);
					const cJSON *s = path(p, "serial"), *r = path(p, "records");

					if (cJSON_IsString(s) && cJSON_IsNumber(r) && n < sizeof(line) - 1)
						snprintf(line + n, sizeof(line) - n, " %s:%g%s",
							 s->valuestring, r->valuedouble,
							 cJSON_IsTrue(path(p, "connected")) ? "" : "(off)");
				}
			} else {
				add_scalars(line, sizeof(line), o);
			}
			kind = strcmp(kind, "state") == 0 ? "gateway" : kind;
		} else if (strcmp(kind, "live") == 0) {
			unsigned i;

			for (i = 0; i < 256 && lc[i].serial[0] && strcmp(lc[i].serial, who); i++)
				;
			if (i < 256) {
				if (!lc[i].serial[0])
					snprintf(lc[i].serial, sizeof(lc[i].serial), "%s", who);
				if (live_every > 1 && lc[i].n++ % live_every) {
					cJSON_Delete(o);
					continue;
				}
			}
			add(line, sizeof(line), o, "state", "state");
			add(line, sizeof(line), o, "zone", "zone");
			add(line, sizeof(line), o, "pass", "pass");
			add(line, sizeof(line), o, "depth_set_mm", "depth");
			add(line, sizeof(line), o, "depth_cap_mm", "cap");
			add(line, sizeof(line), o, "speed_hz", "hz");
			add(line, sizeof(line), o, "needle_on_s", "needle_on_s");
			add(line, sizeof(line), o, "battery_pct", "batt%");
		} else if (strcmp(kind, "records") == 0) {
			add(line, sizeof(line), o, "seq", "seq");
			add(line, sizeof(line), o, "type", "type");
			add(line, sizeof(line), o, "session_id", "session");
			add_scalars(line, sizeof(line), path(o, "data"));
		} else if (strcmp(kind, "sessions") == 0) {
			add(line, sizeof(line), o, "session_id", "session");
			add(line, sizeof(line), o, "reason", "end");
			add(line, sizeof(line), o, "duration_s", "duration_s");
			add(line, sizeof(line), o, "needle_on_s", "needle_on_s");
			add(line, sizeof(line), o, "strokes", "strokes");
			add(line, sizeof(line), o, "authorised", "authorised");
		} else if (strcmp(kind, "alerts") == 0) {
			add(line, sizeof(line), o, "severity", "");
			add(line, sizeof(line), o, "rule", "rule");
			add(line, sizeof(line), o, "action", "action");
			add(line, sizeof(line), o, "message", "msg");
		} else if (strcmp(kind, "availability") == 0) {
			add(line, sizeof(line), o, "state", "state");
			add(line, sizeof(line), o, "reason", "reason");
		} else if (strcmp(kind, "state") == 0) {
			add(line, sizeof(line), o, "state", "state");
			add(line, sizeof(line), o, "locked", "locked");
			add(line, sizeof(line), o, "battery_pct", "batt%");
			add(line, sizeof(line), o, "cartridge.state", "cartridge");
			add(line, sizeof(line), o, "limits.source", "limits");
			add(line, sizeof(line), o, "store.used", "store_used");
		} else if (strcmp(kind, "limits") == 0) {
			add(line, sizeof(line), o, "source", "source");
			add(line, sizeof(line), o, "limits_hash", "hash");
			add(line, sizeof(line), o, "set.depth_cap_mm", "cap");
			add(line, sizeof(line), o, "remaining_s", "remaining_s");
		} else if (strstr(buf, "/response/")) {
			add(line, sizeof(line), o, "op", "op");
			add(line, sizeof(line), o, "status", "status");
			add(line, sizeof(line), o, "transaction", "tx");
			add(line, sizeof(line), o, "error.code", "error");
			add(line, sizeof(line), o, "error.message", "msg");
			kind = "response";
		} else {
			add_scalars(line, sizeof(line), o);
		}
		printf("%s %-12s %-12s%s\n", now, who, kind, line);
		cJSON_Delete(o);
	}
	free(buf);
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "journal", required_argument, NULL, 'j' },
		{ "config", required_argument, NULL, 'c' },
		{ "pen", required_argument, NULL, 'p' },
		{ "format", required_argument, NULL, 'f' },
		{ "live-every", required_argument, NULL, 'l' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{}
	};
	const char *journal = NULL, *cfg_path = NULL, *pen = NULL, *format = "csv", *cmd;
	unsigned live_every = 1;
	struct config *cfg = NULL;
	sqlite3 *db = NULL;
	int opt, r;

	/* pair and release have options of their own (ctl-pair.c). */
	if (ctl_pair_command(argc, argv)) {
		r = ctl_pair_main(argc, argv);
		if (r >= 0)
			return r;
		usage(stdout);
		return 0;
	}
	/* authorise, unlock, audit have options of their own (ctl-limits.c). */
	cmd = ctl_limits_command(argc, argv);
	if (cmd) {
		r = ctl_limits_main(argc, argv, cmd);
		if (r >= 0)
			return r;
		usage(stdout);
		return 0;
	}

	while ((opt = getopt_long(argc, argv, "j:c:hV", opts, NULL)) != -1) {
		switch (opt) {
		case 'j':
			journal = optarg;
			break;
		case 'c':
			cfg_path = optarg;
			break;
		case 'p':
			pen = optarg;
			break;
		case 'f':
			format = optarg;
			if (strcmp(format, "csv") && strcmp(format, "json")) {
				fprintf(stderr, "needlelinkctl: --format: csv or json\n");
				return 2;
			}
			break;
		case 'l':
			live_every = (unsigned)strtoul(optarg, NULL, 10);
			break;
		case 'h':
			usage(stdout);
			return 0;
		case 'V':
			printf("needlelinkctl %s\n", NLGW_VERSION);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind >= argc) {
		usage(stderr);
		return 2;
	}
	cmd = argv[optind];
	if (optind + 1 < argc) {
		fprintf(stderr, "needlelinkctl: unexpected argument \"%s\"\n", argv[optind + 1]);
		return 2;
	}
	if (strcmp(cmd, "format") == 0)
		return cmd_format(live_every) < 0;
	if (strcmp(cmd, "pens") && strcmp(cmd, "sessions") && strcmp(cmd, "records") &&
	    strcmp(cmd, "export")) {
		fprintf(stderr, "needlelinkctl: unknown command \"%s\"\n", cmd);
		usage(stderr);
		return 2;
	}
	if (!journal) {
		if (config_new(&cfg) < 0)
			return 1;
		if (config_load(cfg, cfg_path ? cfg_path : CONFIG_DEFAULT_PATH, cfg_path != NULL) < 0) {
			for (size_t i = 0; i < config_n_errors(cfg); i++)
				fprintf(stderr, "%s\n", config_error(cfg, i));
			config_free(cfg);
			return 1;
		}
		journal = config_str(cfg, CONFIG_GATEWAY_JOURNAL);
	}
	r = open_journal(journal, &db);
	if (r == 0) {
		if (strcmp(cmd, "pens") == 0)
			r = cmd_pens(db);
		else if (strcmp(cmd, "sessions") == 0)
			r = cmd_sessions(db, pen);
		else if (strcmp(cmd, "records") == 0)
			r = cmd_records(db, pen, format);
		else
			r = cmd_export(db);
	}
	sqlite3_close(db);
	config_free(cfg);
	return r < 0 ? 1 : 0;
}
