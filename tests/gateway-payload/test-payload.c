/* SPDX-License-Identifier: MIT */
/*
 * Unit test of gateway/src/payload.c.
 *
 *   test-payload GOLDEN_DIR SAMPLE_DIR API_DOC
 *
 * Builds every payload kind from protocol structs (records pass through
 * nl_record_encode/nl_record_decode first, so they are what the decoder
 * really hands the gateway), compares some records with golden JSON, runs
 * the request parser over valid and malformed commands and over the request
 * examples of API_DOC (docs/mqtt-api.md), and writes every payload to
 * SAMPLE_DIR for validate.py to check against docs/schemas.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <dirent.h>
#include <unistd.h>

#include "payload.h"

static int failures;
static const char *golden_dir;
static const char *sample_dir;

#define CHECK(cond)                                                                 \
	do {                                                                        \
		if (!(cond)) {                                                      \
			fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, \
				#cond);                                             \
			failures++;                                                 \
		}                                                                   \
	} while (0)

#define CHECK_EQ_INT(a, b)                                                            \
	do {                                                                          \
		long long a_ = (long long)(a), b_ = (long long)(b);                   \
		if (a_ != b_) {                                                       \
			fprintf(stderr, "%s:%d: %s == %lld, expected %lld\n", __FILE__,  \
				__LINE__, #a, a_, b_);                                \
			failures++;                                                   \
		}                                                                     \
	} while (0)

#define CHECK_EQ_STR(a, b)                                                            \
	do {                                                                          \
		const char *a_ = (a), *b_ = (b);                                      \
		if (!a_ || !b_ || strcmp(a_, b_) != 0) {                              \
			fprintf(stderr, "%s:%d: %s == \"%s\", expected \"%s\"\n", __FILE__, \
				__LINE__, #a, a_ ? a_ : "(null)", b_ ? b_ : "(null)");  \
			failures++;                                                   \
		}                                                                     \
	} while (0)

#define T_PEN 848829600u          /* 2026-11-24T10:00:00Z in pen time */
#define T_UNIX_MS 1795514400000LL /* the same in Unix ms */

static char *read_file(const char *path)
{
	FILE *f = fopen(path, "rb");
	char *buf;
	long n;

	if (!f)
		return NULL;
	if (fseek(f, 0, SEEK_END) != 0 || (n = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) != 0) {
		fclose(f);
		return NULL;
	}
	buf = malloc((size_t)n + 1);
	if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
		free(buf);
		buf = NULL;
	}
	if (buf)
		buf[n] = '\0';
	fclose(f);
	return buf;
}

static void write_text(const char *name, const char *text)
{
	char path[512];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s.json", sample_dir, name);
	f = fopen(path, "w");
	if (!f || fputs(text, f) < 0 || fputc('\n', f) < 0) {
		fprintf(stderr, "cannot write %s: %s\n", path, strerror(errno));
		failures++;
	}
	if (f)
		fclose(f);
}

/* Writes a payload as a sample for the schema check; takes ownership. */
static void sample(const char *name, cJSON *j)
{
	char *s = nl_payload_print(j);

	CHECK(s != NULL);
	if (s)
		write_text(name, s);
	free(s);
	cJSON_Delete(j);
}

/* Compares a payload with golden/<name>.json as JSON values. */
static void golden(const char *name, const cJSON *j)
{
	char path[512];
	char *text, *got;
	cJSON *want;

	snprintf(path, sizeof(path), "%s/%s.json", golden_dir, name);
	text = read_file(path);
	if (!text) {
		fprintf(stderr, "golden %s: cannot read\n", path);
		failures++;
		return;
	}
	want = cJSON_Parse(text);
	CHECK(want != NULL);
	if (want && !cJSON_Compare(want, j, true)) {
		got = nl_payload_print(j);
		fprintf(stderr, "golden %s differs; got:\n%s\n", name, got ? got : "(null)");
		free(got);
		failures++;
	}
	cJSON_Delete(want);
	free(text);
}

/* Record struct -> bytes -> struct, as the gateway receives it. */
static struct nl_record roundtrip(const struct nl_record *in)
{
	uint8_t buf[NL_RECORD_MAX];
	struct nl_record out;
	int n = nl_record_encode(in, buf, sizeof(buf));

	memset(&out, 0, sizeof(out));
	if (n < 0) {
		fprintf(stderr, "nl_record_encode(type %u): %s\n", in->hdr.type, nl_strerror(n));
		failures++;
		return *in;
	}
	n = nl_record_decode(buf, (size_t)n, &out);
	if (n < 0) {
		fprintf(stderr, "nl_record_decode(type %u): %s\n", in->hdr.type, nl_strerror(n));
		failures++;
		return *in;
	}
	return out;
}

static const uint8_t uid1[NL_CARTRIDGE_UID_LEN] = { 0x01, 0x02, 0x03, 0x04,
						    0x05, 0x06, 0x07, 0x08 };

static const struct nl_payload_record_ctx rctx = {
	.serial = "NL-0001",
	.msg_id = 1001,
	.received_ms = T_UNIX_MS + 250,
};

static struct nl_record rec_hdr(uint8_t type, uint8_t flags, uint32_t seq, uint32_t pen_time)
{
	struct nl_record r;

	memset(&r, 0, sizeof(r));
	r.hdr.type = type;
	r.hdr.flags = flags;
	r.hdr.seq = seq;
	r.hdr.store_epoch = 7;
	r.hdr.session_id = 3;
	r.hdr.pen_time = pen_time;
	return r;
}

static struct nl_record make_segment(void)
{
	struct nl_record r = rec_hdr(NL_RECORD_SEGMENT, NL_REC_CLOCK_SET | NL_REC_AUTHORISED, 42,
				     T_PEN);

	r.u.segment.zone = NL_ZONE_CHEEKS;
	r.u.segment.pass = 2;
	r.u.segment.depth_set_um = 1250;
	r.u.segment.depth_cap_um = 1500;
	r.u.segment.depth_measured_um = 1230;
	r.u.segment.speed_hz = 120;
	r.u.segment.run_ms = 12345;
	r.u.segment.strokes = 1481;
	memcpy(r.u.segment.cartridge_uid, uid1, sizeof(uid1));
	r.u.segment.status = NL_SEG_CLAMPED | NL_SEG_PASS_WARN;
	r.u.segment.end_reason = NL_SEGMENT_END_OPERATOR;
	return r;
}

static struct nl_record make_session_start(void)
{
	struct nl_record r = rec_hdr(NL_RECORD_SESSION_START, NL_REC_CLOCK_SET | NL_REC_AUTHORISED,
				     40, T_PEN - 1500);

	r.u.session_start.limits_hash = 0x1a2b3c4d;
	r.u.session_start.limit_source = NL_LIMIT_SOURCE_SESSION;
	r.u.session_start.lifetime_s = 43200;
	memcpy(r.u.session_start.cartridge_uid, uid1, sizeof(uid1));
	r.u.session_start.zone = NL_ZONE_FOREHEAD;
	return r;
}

/* Clock not set: pen_time counts seconds since power-on. */
static struct nl_record make_session_end(uint8_t flags, uint32_t pen_time)
{
	struct nl_record r = rec_hdr(NL_RECORD_SESSION_END, flags, 45, pen_time);
	struct nl_rec_session_end *e = &r.u.session_end;

	e->reason = NL_SESSION_END_STOPPED;
	e->duration_ms = 1500000;
	e->needle_on_ms = 600500;
	e->strokes = 72000;
	e->zone_count = 2;
	e->zones[0] = (struct nl_rec_zone_total){ NL_ZONE_FOREHEAD, 3, 500, 450, 200500, 24000 };
	e->zones[1] = (struct nl_rec_zone_total){ NL_ZONE_CHEEKS, 4, 1500, 1200, 400000, 48000 };
	return r;
}

static struct nl_record make_limit(uint8_t event, uint8_t reason, uint16_t value,
				   uint16_t threshold, uint32_t seq)
{
	struct nl_record r = rec_hdr(NL_RECORD_LIMIT, NL_REC_CLOCK_SET | NL_REC_AUTHORISED, seq,
				     T_PEN - 600);

	r.u.limit.event = event;
	r.u.limit.origin = NL_LIMIT_ORIGIN_FIRMWARE;
	r.u.limit.zone = NL_ZONE_PERIORBITAL;
	r.u.limit.limits_hash = 0x1a2b3c4d;
	r.u.limit.value = value;
	r.u.limit.threshold = threshold;
	r.u.limit.reason = reason;
	r.u.limit.remaining_s = 3600;
	return r;
}

static struct nl_record make_cartridge(void)
{
	struct nl_record r = rec_hdr(NL_RECORD_CARTRIDGE, NL_REC_CLOCK_SET, 39, T_PEN - 1600);

	r.hdr.session_id = 0;
	r.u.cartridge.event = NL_CARTRIDGE_INSERTED;
	r.u.cartridge.reject_reason = NL_REJECT_NONE;
	memcpy(r.u.cartridge.uid, uid1, sizeof(uid1));
	strcpy(r.u.cartridge.lot, "L2026A");
	r.u.cartridge.expiry = 870000000;
	r.u.cartridge.needle_count = 12;
	r.u.cartridge.needle_length_um = 1500;
	return r;
}

static struct nl_record make_fault(void)
{
	struct nl_record r = rec_hdr(NL_RECORD_FAULT, NL_REC_CLOCK_SET, 46, T_PEN + 10);

	r.u.fault.code = NL_FAULT_OVERHEAT;
	r.u.fault.severity = NL_FAULT_CRITICAL;
	r.u.fault.detail = 71;
	return r;
}

static struct nl_record make_time_change(void)
{
	struct nl_record r = rec_hdr(NL_RECORD_TIME_CHANGE, NL_REC_CLOCK_SET, 12, T_PEN);

	r.hdr.session_id = 0;
	r.u.time_change.old_time = 100;
	r.u.time_change.new_time = T_PEN;
	r.u.time_change.source = NL_TIME_SOURCE_GATEWAY;
	return r;
}

static void test_time(void)
{
	char buf[NL_PAYLOAD_TIME_LEN];

	CHECK_EQ_INT(nl_payload_format_time(0, buf, sizeof(buf)), 24);
	CHECK_EQ_STR(buf, "1970-01-01T00:00:00.000Z");
	CHECK_EQ_INT(nl_payload_format_time(T_UNIX_MS + 7, buf, sizeof(buf)), 24);
	CHECK_EQ_STR(buf, "2026-11-24T10:00:00.007Z");
	CHECK_EQ_INT(nl_payload_pen_time_ms(0), 946684800000LL);
	CHECK_EQ_INT(nl_payload_pen_time_ms(T_PEN), T_UNIX_MS);
	CHECK_EQ_INT(nl_payload_format_time(-1, buf, sizeof(buf)), -ERANGE);
	CHECK_EQ_INT(nl_payload_format_time(253402300800000LL, buf, sizeof(buf)), -ERANGE);
	CHECK_EQ_INT(nl_payload_format_time(0, buf, sizeof(buf) - 1), -ENOBUFS);
}

static void test_records(void)
{
	struct nl_record r;
	cJSON *j;
	char id[64];

	CHECK_EQ_INT(nl_payload_record_id("NL-0001", 7, 42, id, sizeof(id)), 12);
	CHECK_EQ_STR(id, "NL-0001:7:42");
	CHECK_EQ_INT(nl_payload_record_id("NL-0001", 7, 42, id, 12), -ENOBUFS);
	CHECK_EQ_INT(nl_payload_record_id("NL/0001", 7, 42, id, sizeof(id)), -EINVAL);

	/* Golden: one of each shape a subscriber must get exactly right. */
	r = make_segment();
	r = roundtrip(&r);
	j = NULL;
	CHECK_EQ_INT(nl_payload_record(&rctx, &r, &j), 0);
	golden("record-segment", j);
	sample("record--segment", j);

	r = make_session_end(0, 3600);
	r = roundtrip(&r);
	CHECK_EQ_INT(nl_payload_record(&rctx, &r, &j), 0);
	golden("record-session_end-noclock", j);
	sample("record--session_end", j);

	r = make_limit(NL_LIMIT_EVENT_CLAMP, NL_LOCK_REASON_NONE, 1000, 500, 43);
	r = roundtrip(&r);
	CHECK_EQ_INT(nl_payload_record(&rctx, &r, &j), 0);
	golden("record-limit-clamp", j);
	sample("record--limit_clamp", j);

	r = make_cartridge();
	r = roundtrip(&r);
	CHECK_EQ_INT(nl_payload_record(&rctx, &r, &j), 0);
	golden("record-cartridge", j);
	sample("record--cartridge", j);

	/* The rest: schema-checked only. */
	r = make_session_start();
	r = roundtrip(&r);
	CHECK_EQ_INT(nl_payload_record(&rctx, &r, &j), 0);
	sample("record--session_start", j);

	r = make_limit(NL_LIMIT_EVENT_LOCK, NL_LOCK_REASON_PASSES, 5, 5, 44);
	r = roundtrip(&r);
	CHECK_EQ_INT(nl_payload_record(&rctx, &r, &j), 0);
	CHECK_EQ_INT(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "data"), "value_passes")->valueint,
		     5);
	sample("record--limit_lock", j);

	r = make_limit(NL_LIMIT_EVENT_TIME_WARN, NL_LOCK_REASON_NONE, 1500, 1500, 47);
	r = roundtrip(&r);
	CHECK_EQ_INT(nl_payload_record(&rctx, &r, &j), 0);
	sample("record--limit_time_warn", j);

	r = make_limit(NL_LIMIT_EVENT_APPLIED, NL_LOCK_REASON_NONE, 0, 0, 38);
	r = roundtrip(&r);
	CHECK_EQ_INT(nl_payload_record(&rctx, &r, &j), 0);
	sample("record--limit_applied", j);

	r = make_fault();
	r = roundtrip(&r);
	CHECK_EQ_INT(nl_payload_record(&rctx, &r, &j), 0);
	sample("record--fault", j);

	r = make_time_change();
	r = roundtrip(&r);
	CHECK_EQ_INT(nl_payload_record(&rctx, &r, &j), 0);
	sample("record--time_change", j);

	/* Depth sensing absent: measured depth is null, not 65.535. */
	r = make_segment();
	r.u.segment.depth_measured_um = NL_DEPTH_UNKNOWN;
	r = roundtrip(&r);
	CHECK_EQ_INT(nl_payload_record(&rctx, &r, &j), 0);
	CHECK(cJSON_IsNull(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "data"),
					       "depth_measured_mm")));
	sample("record--segment_nodepth", j);

	/* Failures leave *ret alone. */
	j = (cJSON *)&failures; /* sentinel, never dereferenced */
	r = make_segment();
	r.u.segment.end_reason = 0; /* no name */
	CHECK_EQ_INT(nl_payload_record(&rctx, &r, &j), -ERANGE);
	r = make_segment();
	r.hdr.type = NL_RECORD_TYPE_END;
	CHECK_EQ_INT(nl_payload_record(&rctx, &r, &j), -ERANGE);
	r = make_segment();
	r.u.segment.status = 0x80; /* undefined bit */
	CHECK_EQ_INT(nl_payload_record(&rctx, &r, &j), -ERANGE);
	r = make_segment();
	CHECK_EQ_INT(nl_payload_record(&(struct nl_payload_record_ctx){ .serial = "a/b" }, &r, &j),
		     -EINVAL);
	CHECK_EQ_INT(nl_payload_record(&(struct nl_payload_record_ctx){ .serial = "NL-1",
									 .msg_id = 1ULL << 53 },
				       &r, &j),
		     -ERANGE);
	CHECK_EQ_INT(nl_payload_record(&(struct nl_payload_record_ctx){ .serial = "NL-1",
									 .received_ms = -5 },
				       &r, &j),
		     -ERANGE);
	CHECK(j == (cJSON *)&failures);
}

static struct nl_active_limits make_active_limits(void)
{
	struct nl_active_limits a;
	uint32_t h = 0;

	memset(&a, 0, sizeof(a));
	a.source = NL_LIMIT_SOURCE_SESSION;
	a.remaining_s = 40000;
	a.set.format = 1;
	a.set.lifetime_s = 43200;
	a.set.depth_cap_um = 1000;
	a.set.needle_on_warn_s = 1500;
	a.set.needle_on_lock_s = 2400;
	a.set.pass_warn = 3;
	a.set.pass_lock = 5;
	a.set.zone_count = 2;
	a.set.zones[0] = (struct nl_zone_limit){ NL_ZONE_PERIORBITAL, 500, 0, 0 };
	a.set.zones[1] = (struct nl_zone_limit){ NL_ZONE_CHEEKS, 1500, 4, 6 };
	CHECK_EQ_INT(nl_limit_set_hash(&a.set, &h), 0);
	a.limits_hash = h;
	return a;
}

static void test_state(void)
{
	struct nl_feature f = {
		.proto_major = 1, .proto_minor = 0,
		.flags = NL_FEAT_MOTORISED_DEPTH | NL_FEAT_DEPTH_SENSING | NL_FEAT_CARTRIDGE_READER |
			 NL_FEAT_RTC,
		.depth_min_um = 0, .depth_max_um = 2500, .depth_step_um = 250,
		.speed_min_hz = 100, .speed_max_hz = 150, .store_capacity = 2000,
		.store_epoch = 7, .live_rate_hz = 5,
	};
	struct nl_pen_status st = {
		.flags = NL_STATUS_CARTRIDGE_PRESENT | NL_STATUS_SESSION_ACTIVE,
		.state = NL_PEN_STATE_ARMED, .store_used = 45, .store_capacity = 2000,
		.store_epoch = 7, .last_seq = 45, .pen_time = T_PEN, .battery_pct = 81,
	};
	struct nl_cartridge_info c = {
		.state = NL_CARTRIDGE_IN_USE, .expiry = 870000000, .needle_count = 12,
		.needle_length_um = 1500, .first_use = T_PEN - 1500, .run_ms = 600500,
	};
	struct nl_active_limits a = make_active_limits();
	struct nl_live l = {
		.state = NL_PEN_STATE_RUNNING, .flags = NL_LIVE_MOTOR_ON | NL_LIVE_CARTRIDGE,
		.zone = NL_ZONE_CHEEKS, .depth_set_um = 1250, .depth_measured_um = 1230,
		.depth_cap_um = 1500, .speed_hz = 120, .pass = 2, .needle_on_ms = 61250,
		.session_id = 3, .battery_pct = 81, .sample = 977,
	};
	struct nl_payload_pen_state_in in = {
		.serial = "NL-0001", .updated_ms = T_UNIX_MS, .model = "NL-Pen 2",
		.manufacturer = "NeedleLink", .firmware = "1.4.2", .battery_pct = -1,
		.feature = &f, .status = &st, .cartridge = &c, .limits = &a,
	};
	struct nl_payload_pen_state_in empty = { .serial = "NL-0002", .updated_ms = T_UNIX_MS,
						 .battery_pct = -1 };
	cJSON *j;

	memcpy(c.uid, uid1, sizeof(uid1));
	strcpy(c.lot, "L2026A");

	CHECK_EQ_INT(nl_payload_pen_state(&in, &j), 0);
	CHECK_EQ_INT(cJSON_GetObjectItem(j, "battery_pct")->valueint, 81);
	CHECK_EQ_STR(cJSON_GetObjectItem(j, "state")->valuestring, "armed");
	CHECK(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "store"), "fill_pct")->valuedouble ==
	      2.2);
	sample("pen-state--full", j);
	in.model = "NL\xff\x01Pen";
	CHECK_EQ_INT(nl_payload_pen_state(&in, &j), 0);
	CHECK_EQ_STR(cJSON_GetObjectItem(j, "model")->valuestring, "NL??Pen");
	cJSON_Delete(j);
	in.model = "NL-Pen 2";
	CHECK_EQ_INT(nl_payload_pen_state(&empty, &j), 0);
	CHECK(cJSON_IsNull(cJSON_GetObjectItem(j, "features")));
	CHECK(cJSON_IsNull(cJSON_GetObjectItem(j, "catch_up")));
	sample("pen-state--empty", j);
	in.catchup_received = 1200;
	in.catchup_expected = 4100;
	CHECK_EQ_INT(nl_payload_pen_state(&in, &j), 0);
	CHECK_EQ_INT(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "catch_up"), "received")->valueint,
		     1200);
	CHECK_EQ_INT(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "catch_up"), "expected")->valueint,
		     4100);
	sample("pen-state--catch-up", j);
	in.catchup_received = in.catchup_expected = 0;
	in.battery_pct = 101;
	CHECK_EQ_INT(nl_payload_pen_state(&in, &j), -ERANGE);

	CHECK_EQ_INT(nl_payload_limits("NL-0001", T_UNIX_MS, &a, &j), 0);
	sample("limits--session", j);

	CHECK_EQ_INT(nl_payload_live("NL-0001", T_UNIX_MS + 200, &l, &j), 0);
	CHECK(cJSON_GetObjectItem(j, "needle_on_s")->valuedouble == 61.25);
	sample("live--running", j);
	l.depth_measured_um = NL_DEPTH_UNKNOWN;
	l.session_id = 0;
	l.state = NL_PEN_STATE_IDLE;
	l.flags = 0;
	l.zone = NL_ZONE_NONE;
	CHECK_EQ_INT(nl_payload_live("NL-0001", T_UNIX_MS + 400, &l, &j), 0);
	CHECK(cJSON_IsNull(cJSON_GetObjectItem(j, "session_id")));
	sample("live--idle", j);
	l.state = NL_PEN_STATE_COUNT;
	CHECK_EQ_INT(nl_payload_live("NL-0001", T_UNIX_MS, &l, &j), -ERANGE);
}

static void test_gateway(void)
{
	struct nl_payload_availability av = { .serial = "NL-0001", .online = true,
					      .gateway_id = "clinic-a-gw1", .since_ms = T_UNIX_MS };
	struct nl_payload_gateway_state gs = { .gateway_id = "clinic-a-gw1", .online = true,
					       .since_ms = T_UNIX_MS };
	struct nl_payload_gateway_info gi = {
		.gateway_id = "clinic-a-gw1", .version = "0.1.0", .bluez_version = "5.66",
		.adapter = "hci0", .adapter_address = "00:1A:7D:DA:71:13",
		.transport = NL_PAYLOAD_TRANSPORT_BLUEZ, .config_hash = 0xdeadbeef,
		.base_topic = "needlelink", .started_ms = T_UNIX_MS - 3600000,
	};
	struct nl_payload_pen_health ph[2] = {
		{ .serial = "NL-0001", .connected = true, .connects = 3,
		  .errors = { 1, 0, 2, 0, 1, 0 }, .records = 45, .rssi_known = true,
		  .rssi_dbm = -61, .last_seen_ms = T_UNIX_MS },
		{ .serial = "NL-0002", .connects = 0 },
	};
	struct nl_payload_gateway_health gh = {
		.gateway_id = "clinic-a-gw1", .now_ms = T_UNIX_MS, .uptime_s = 3600,
		.rss_bytes = 5u << 20, .outbox_depth = 2, .outbox_oldest_ms = T_UNIX_MS - 1500,
		.pen_count = 2, .pens = ph,
	};
	cJSON *j;

	CHECK_EQ_INT(nl_payload_availability(&av, &j), 0);
	sample("availability--online", j);
	av.online = false;
	av.reason = "disconnected";
	CHECK_EQ_INT(nl_payload_availability(&av, &j), 0);
	CHECK_EQ_STR(cJSON_GetObjectItem(j, "reason")->valuestring, "disconnected");
	sample("availability--offline", j);
	av.gateway_id = "bad/gw";
	CHECK_EQ_INT(nl_payload_availability(&av, &j), -EINVAL);

	CHECK_EQ_INT(nl_payload_gateway_state(&gs, &j), 0);
	sample("gateway-state--online", j);
	gs.online = false;
	gs.will = true;
	CHECK_EQ_INT(nl_payload_gateway_state(&gs, &j), 0);
	sample("gateway-state--will", j);
	gs.online = true;
	CHECK_EQ_INT(nl_payload_gateway_state(&gs, &j), -EINVAL);

	CHECK_EQ_INT(nl_payload_gateway_info(&gi, &j), 0);
	CHECK_EQ_STR(cJSON_GetObjectItem(j, "config_hash")->valuestring, "deadbeef");
	sample("gateway-info--bluez", j);
	gi.adapter_address = "00:1a:7d:da:71:13";
	CHECK_EQ_INT(nl_payload_gateway_info(&gi, &j), -EINVAL);
	gi.transport = NL_PAYLOAD_TRANSPORT_SIM;
	gi.bluez_version = gi.adapter = gi.adapter_address = NULL;
	CHECK_EQ_INT(nl_payload_gateway_info(&gi, &j), 0);
	sample("gateway-info--sim", j);

	CHECK_EQ_INT(nl_payload_gateway_health(&gh, &j), 0);
	sample("gateway-health--two", j);
	ph[0].rssi_dbm = 50;
	CHECK_EQ_INT(nl_payload_gateway_health(&gh, &j), -ERANGE);
}

static void test_session_alert(void)
{
	struct nl_record start = make_session_start();
	struct nl_record end = make_session_end(NL_REC_CLOCK_SET | NL_REC_AUTHORISED, T_PEN);
	struct nl_record cart = make_cartridge();
	struct nl_record ev[2] = {
		make_limit(NL_LIMIT_EVENT_CLAMP, NL_LOCK_REASON_NONE, 1000, 500, 43),
		make_limit(NL_LIMIT_EVENT_PASS_WARN, NL_LOCK_REASON_NONE, 3, 3, 44),
	};
	struct nl_payload_session_ctx ctx = {
		.rec = rctx, .start = &start, .cartridge = &cart.u.cartridge,
		.limit_events = ev, .limit_event_count = 2,
	};
	struct nl_payload_alert al = {
		.serial = "NL-0001", .at_ms = T_UNIX_MS, .alert_id = "NL-0001:7:43:1",
		.rule = "zone_depth_cap", .severity = NL_PAYLOAD_SEVERITY_WARNING,
		.action = NL_PAYLOAD_ACTION_CLAMP, .result = NL_PAYLOAD_RESULT_APPLIED,
		.unit = NL_PAYLOAD_UNIT_UM, .measured = 1000, .threshold = 500,
		.zone = NL_ZONE_PERIORBITAL, .session_id = 3, .record_id = "NL-0001:7:43",
		.message = "depth 1.0 mm clamped to the periorbital cap 0.5 mm",
	};
	cJSON *j, *x;

	start = roundtrip(&start);
	end = roundtrip(&end);
	CHECK_EQ_INT(nl_payload_session(&ctx, &end, &j), 0);
	CHECK_EQ_STR(cJSON_GetObjectItem(j, "started_at")->valuestring,
		     "2026-11-24T09:35:00.000Z");
	x = cJSON_GetObjectItem(cJSON_GetObjectItem(j, "enforcement"), "counts");
	CHECK_EQ_INT(cJSON_GetObjectItem(x, "clamp")->valueint, 1);
	CHECK_EQ_INT(cJSON_GetObjectItem(x, "pass_warn")->valueint, 1);
	CHECK_EQ_INT(cJSON_GetObjectItem(x, "lock")->valueint, 0);
	sample("session--full", j);

	/* Nothing but the end record, clock not set. */
	ctx = (struct nl_payload_session_ctx){ .rec = rctx };
	end = make_session_end(0, 3600);
	CHECK_EQ_INT(nl_payload_session(&ctx, &end, &j), 0);
	CHECK(cJSON_IsNull(cJSON_GetObjectItem(j, "started_at")));
	CHECK(cJSON_IsNull(cJSON_GetObjectItem(j, "cartridge")));
	sample("session--bare", j);
	CHECK_EQ_INT(nl_payload_session(&ctx, &start, &j), -EINVAL);

	CHECK_EQ_INT(nl_payload_alert(&al, &j), 0);
	CHECK(cJSON_GetObjectItem(j, "measured_mm")->valuedouble == 1.0);
	CHECK(cJSON_GetObjectItem(j, "threshold_mm")->valuedouble == 0.5);
	sample("alert--clamp", j);
	al.unit = NL_PAYLOAD_UNIT_PASSES;
	al.measured = al.threshold = 5;
	al.action = NL_PAYLOAD_ACTION_LOCK;
	al.severity = NL_PAYLOAD_SEVERITY_CRITICAL;
	al.result = NL_PAYLOAD_RESULT_PENDING;
	al.rule = "passes_per_zone";
	al.message = "5 passes on periorbital: zone locked";
	CHECK_EQ_INT(nl_payload_alert(&al, &j), 0);
	sample("alert--passes", j);
	al.unit = NL_PAYLOAD_UNIT_NONE;
	al.rule = "cartridge_reused";
	al.zone = NL_ZONE_NONE;
	al.record_id = NULL;
	al.session_id = 0;
	CHECK_EQ_INT(nl_payload_alert(&al, &j), 0);
	CHECK(cJSON_GetObjectItem(j, "measured_passes") == NULL);
	sample("alert--none", j);
	al.rule = "Bad Rule";
	CHECK_EQ_INT(nl_payload_alert(&al, &j), -EINVAL);
}

static void test_responses(void)
{
	struct nl_active_limits a = make_active_limits();
	struct nl_payload_block blocks[2] = {
		{ .rule = "interval_same_zone", .unit = NL_PAYLOAD_UNIT_DAYS, .value = 14,
		  .threshold = 28, .zone = NL_ZONE_CHEEKS,
		  .message = "last session on cheeks 14 days ago, minimum 28" },
		{ .rule = "contraindication", .unit = NL_PAYLOAD_UNIT_NONE,
		  .zone = NL_ZONE_NONE, .message = "contraindication declared: pregnancy" },
	};
	struct nl_payload_response r = { .serial = "NL-0001", .op = "set_time",
					 .transaction = "t-1", .at_ms = T_UNIX_MS };
	cJSON *j, *res;
	char hash[9];

	CHECK_EQ_INT(nl_payload_result_set_time(100, T_UNIX_MS, &res), 0);
	r.result = res;
	CHECK_EQ_INT(nl_payload_response(&r, &j), 0);
	sample("response--ok", j);

	/* Every op's ok result against the schema. */
	r.op = "lock";
	CHECK_EQ_INT(nl_payload_result_locked(true, &r.result), 0);
	CHECK_EQ_INT(nl_payload_response(&r, &j), 0);
	sample("response--ok_lock", j);
	r.op = "unlock";
	CHECK_EQ_INT(nl_payload_result_locked(false, &r.result), 0);
	CHECK_EQ_INT(nl_payload_response(&r, &j), 0);
	sample("response--ok_unlock", j);
	r.op = "set_zone";
	CHECK_EQ_INT(nl_payload_result_zone(NL_ZONE_NONE, &r.result), -ERANGE);
	CHECK_EQ_INT(nl_payload_result_zone(NL_ZONE_NOSE, &r.result), 0);
	CHECK_EQ_INT(nl_payload_response(&r, &j), 0);
	sample("response--ok_set_zone", j);
	r.op = "stop_session";
	CHECK_EQ_INT(nl_payload_result_session(0, &r.result), -ERANGE);
	CHECK_EQ_INT(nl_payload_result_session(3, &r.result), 0);
	CHECK_EQ_INT(nl_payload_response(&r, &j), 0);
	sample("response--ok_stop_session", j);
	r.op = "read_state";
	{
		struct nl_payload_pen_state_in in = { .serial = "NL-0001", .updated_ms = T_UNIX_MS,
						      .battery_pct = 50 };
		cJSON *st;

		CHECK_EQ_INT(nl_payload_pen_state(&in, &st), 0);
		CHECK_EQ_INT(nl_payload_result_state(st, &r.result), 0);
	}
	CHECK_EQ_INT(nl_payload_response(&r, &j), 0);
	sample("response--ok_read_state", j);
	r.op = "release";
	CHECK_EQ_INT(nl_payload_result_released(true, &r.result), 0);
	CHECK_EQ_INT(cJSON_IsTrue(cJSON_GetObjectItem(r.result, "released")), 1);
	CHECK_EQ_INT(nl_payload_response(&r, &j), 0);
	sample("response--ok_release", j);
	/* A result that does not fit its op is caught by the schema. */
	r.op = "set_zone";
	CHECK_EQ_INT(nl_payload_result_locked(true, &r.result), 0);
	CHECK_EQ_INT(nl_payload_response(&r, &j), 0);
	sample("reject--response--set_zone_result", j);

	r.op = "authorise";
	r.status = NL_PAYLOAD_STATUS_APPLIED;
	CHECK_EQ_INT(nl_payload_result_authorise(4, a.limits_hash, &a.set, &res), 0);
	snprintf(hash, sizeof(hash), "%08x", a.limits_hash);
	CHECK_EQ_STR(cJSON_GetObjectItem(res, "limits_hash")->valuestring, hash);
	r.result = res;
	CHECK_EQ_INT(nl_payload_response(&r, &j), 0);
	sample("response--applied", j);

	r.status = NL_PAYLOAD_STATUS_BLOCKED;
	r.result = NULL;
	r.blocks = blocks;
	r.block_count = 2;
	CHECK_EQ_INT(nl_payload_response(&r, &j), 0);
	CHECK_EQ_INT(cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(j, "blocked_by"),
							    0),
					 "value_days")->valueint,
		     14);
	sample("response--blocked", j);

	r.status = NL_PAYLOAD_STATUS_FAILED;
	r.error_code = "hash_mismatch";
	r.error_message = "the pen reports limits 00000000 after set_limits";
	r.failed_step = "authorise";
	CHECK_EQ_INT(nl_payload_response(&r, &j), 0);
	sample("response--failed", j);
	r.failed_step = NULL;
	CHECK_EQ_INT(nl_payload_response(&r, &j), -EINVAL);
}

/* ---- request parser ---- */

#define HDR "\"schema\":\"needlelink/request/1\",\"transaction\":\"t-1\","

struct bad_case {
	const char *op;
	const char *json;
	int rc;
	const char *field;
	bool schema_rejects; /* expressible in JSON Schema, so the schema refuses it too */
};

/* 257 bytes of text: one more than an unlock reason_text may have. */
#define TEXT16 "abcdefghijklmnop"
#define TEXT256 TEXT16 TEXT16 TEXT16 TEXT16 TEXT16 TEXT16 TEXT16 TEXT16 \
	TEXT16 TEXT16 TEXT16 TEXT16 TEXT16 TEXT16 TEXT16 TEXT16
#define TEXT257 TEXT256 "q"

static const struct bad_case bad_cases[] = {
	{ "read_state", "{", -EBADMSG, "", false },
	{ "read_state", "[]", -EBADMSG, "", false },
	{ "read_state", "{" HDR "\"params\":{}} x", -EBADMSG, "", false },
	{ "read_state", "{" HDR "\"schema\":\"needlelink/request/1\",\"params\":{}}", -EBADMSG,
	  "schema", false },
	{ "explode", "{" HDR "\"params\":{}}", -EOPNOTSUPP, "op", false },
	{ "read_state", "{\"transaction\":\"t-1\",\"params\":{}}", -ENOENT, "schema", true },
	{ "read_state", "{\"schema\":\"needlelink/request/2\",\"transaction\":\"t-1\",\"params\":{}}",
	  -EPROTO, "schema", true },
	{ "read_state", "{\"schema\":\"needlelink/request/1\",\"params\":{}}", -ENOENT,
	  "transaction", true },
	{ "read_state", "{\"schema\":\"needlelink/request/1\",\"transaction\":7,\"params\":{}}",
	  -EINVAL, "transaction", true },
	{ "read_state",
	  "{\"schema\":\"needlelink/request/1\",\"transaction\":"
	  "\"0123456789012345678901234567890123456789012345678901234567890123X\",\"params\":{}}",
	  -ERANGE, "transaction", true },
	{ "read_state", "{\"schema\":\"needlelink/request/1\",\"transaction\":\"a b\",\"params\":{}}",
	  -ERANGE, "transaction", true },
	{ "read_state", "{" HDR "\"params\":{},\"foo\":1}", -E2BIG, "foo", true },
	{ "read_state", "{" HDR "\"parms\":{}}", -E2BIG, "parms", true },
	{ "read_state", "{\"schema\":\"needlelink/request/1\",\"transaction\":\"t-1\"}", -ENOENT,
	  "params", true },
	{ "read_state", "{" HDR "\"params\":[]}", -EINVAL, "params", true },
	{ "read_state", "{" HDR "\"params\":{\"x\":1}}", -E2BIG, "params.x", true },
	{ "release", "{" HDR "\"params\":{\"serial\":\"PEN-1\"}}", -E2BIG, "params.serial", true },
	{ "set_zone", "{" HDR "\"params\":{}}", -ENOENT, "params.zone", true },
	{ "set_zone", "{" HDR "\"params\":{\"zone\":5}}", -EINVAL, "params.zone", true },
	{ "set_zone", "{" HDR "\"params\":{\"zone\":null}}", -EINVAL, "params.zone", true },
	{ "set_zone", "{" HDR "\"params\":{\"zone\":\"none\"}}", -ERANGE, "params.zone", true },
	{ "set_zone", "{" HDR "\"params\":{\"zone\":\"elbow\"}}", -ERANGE, "params.zone", true },
	{ "set_zone", "{" HDR "\"params\":{\"zone\":\"cheeks\",\"depth_mm\":1}}", -E2BIG,
	  "params.depth_mm", true },
	{ "stop_session", "{" HDR "\"params\":{\"session_id\":1.5}}", -EINVAL, "params.session_id",
	  true },
	{ "stop_session", "{" HDR "\"params\":{\"session_id\":0}}", -ERANGE, "params.session_id",
	  true },
	{ "stop_session", "{" HDR "\"params\":{\"session_id\":4294967296}}", -ERANGE,
	  "params.session_id", true },
	{ "stop_session", "{" HDR "\"params\":{\"session_id\":1e300}}", -ERANGE,
	  "params.session_id", true },
	{ "stop_session", "{" HDR "\"params\":{\"session_id\":\"3\"}}", -EINVAL,
	  "params.session_id", true },
	{ "set_time", "{" HDR "\"params\":{\"time\":\"yesterday\"}}", -ERANGE, "params.time", true },
	{ "set_time", "{" HDR "\"params\":{\"time\":\"2026-02-30T10:00:00Z\"}}", -ERANGE,
	  "params.time", false },
	{ "set_time", "{" HDR "\"params\":{\"time\":\"1999-12-31T23:59:59.999Z\"}}", -ERANGE,
	  "params.time", false },
	{ "set_time", "{" HDR "\"params\":{\"time\":1795514400}}", -EINVAL, "params.time", true },
	{ "lock", "{" HDR "\"params\":{\"reason\":\"none\"}}", -ERANGE, "params.reason", true },
	{ "lock", "{" HDR "\"params\":{\"zone\":\"cheeks\"}}", -E2BIG, "params.zone", true },
	{ "unlock", "{" HDR "\"params\":{}}", -ENOENT, "params.operator", true },
	{ "unlock", "{" HDR "\"params\":{\"operator\":{\"id\":\"op-1\",\"role\":\"boss\"}}}",
	  -ERANGE, "params.operator.role", true },
	{ "unlock", "{" HDR "\"params\":{\"operator\":{\"id\":\"op-1\"}}}", -ENOENT,
	  "params.operator.role", true },
	{ "unlock",
	  "{" HDR "\"params\":{\"operator\":{\"id\":\"op-1\",\"role\":\"nurse\",\"name\":\"Ann\"}}}",
	  -E2BIG, "params.operator.name", true },
	{ "unlock", "{" HDR "\"params\":{\"operator\":\"op-1\"}}", -EINVAL, "params.operator", true },
	{ "unlock",
	  "{" HDR "\"params\":{\"operator\":{\"id\":\"dr-1\",\"role\":\"physician\"},"
	  "\"reason_text\":\"\"}}",
	  -ERANGE, "params.reason_text", true },
	{ "unlock",
	  "{" HDR "\"params\":{\"operator\":{\"id\":\"dr-1\",\"role\":\"physician\"},"
	  "\"reason_text\":\"line\\nbreak\"}}",
	  -ERANGE, "params.reason_text", true },
	{ "unlock",
	  "{" HDR "\"params\":{\"operator\":{\"id\":\"dr-1\",\"role\":\"physician\"},"
	  "\"reason_text\":42}}",
	  -EINVAL, "params.reason_text", true },
	{ "unlock",
	  "{" HDR "\"params\":{\"operator\":{\"id\":\"dr-1\",\"role\":\"physician\"},"
	  "\"reason_text\":null}}",
	  -EINVAL, "params.reason_text", true },
	{ "unlock",
	  "{" HDR "\"params\":{\"operator\":{\"id\":\"dr-1\",\"role\":\"physician\"},"
	  "\"reason_text\":\"" TEXT257 "\"}}",
	  -ERANGE, "params.reason_text", true },
	{ "unlock",
	  "{" HDR "\"params\":{\"operator\":{\"id\":\"dr-1\",\"role\":\"physician\"},"
	  "\"note\":\"x\"}}",
	  -E2BIG, "params.note", true },
};

#define AUTH_OK                                                                      \
	"\"patient\":\"p-8f3a\",\"operator\":{\"id\":\"op-17\",\"role\":\"physician\"}," \
	"\"skin_type\":\"V\",\"contraindications\":[],\"zones\":[\"forehead\",\"cheeks\"]," \
	"\"protocol\":{\"scar\":false,\"body\":false}"

static const struct bad_case bad_auth[] = {
	{ "authorise", "{" HDR "\"params\":{" AUTH_OK ",\"skin_type\":\"VII\"}}", -EBADMSG,
	  "params.skin_type", false }, /* duplicate member */
	{ "authorise",
	  "{" HDR "\"params\":{\"patient\":\"p-1\",\"operator\":{\"id\":\"op-17\",\"role\":"
	  "\"physician\"},\"skin_type\":\"VII\",\"contraindications\":[],\"zones\":[\"cheeks\"],"
	  "\"protocol\":{\"scar\":false,\"body\":false}}}",
	  -ERANGE, "params.skin_type", true },
	{ "authorise",
	  "{" HDR "\"params\":{\"patient\":\"p-1\",\"operator\":{\"id\":\"op-17\",\"role\":"
	  "\"physician\"},\"skin_type\":\"II\",\"contraindications\":[],\"zones\":[],"
	  "\"protocol\":{\"scar\":false,\"body\":false}}}",
	  -ERANGE, "params.zones", true },
	{ "authorise",
	  "{" HDR "\"params\":{\"patient\":\"p-1\",\"operator\":{\"id\":\"op-17\",\"role\":"
	  "\"physician\"},\"skin_type\":\"II\",\"contraindications\":[],\"zones\":[\"cheeks\","
	  "\"cheeks\"],\"protocol\":{\"scar\":false,\"body\":false}}}",
	  -ERANGE, "params.zones[1]", true },
	{ "authorise",
	  "{" HDR "\"params\":{\"patient\":\"p-1\",\"operator\":{\"id\":\"op-17\",\"role\":"
	  "\"physician\"},\"skin_type\":\"II\",\"contraindications\":[\"pregnancy\",3],"
	  "\"zones\":[\"cheeks\"],\"protocol\":{\"scar\":false,\"body\":false}}}",
	  -EINVAL, "params.contraindications[1]", true },
	{ "authorise",
	  "{" HDR "\"params\":{\"patient\":\"p-1\",\"operator\":{\"id\":\"op-17\",\"role\":"
	  "\"physician\"},\"skin_type\":\"II\",\"contraindications\":[\"flu\"],"
	  "\"zones\":[\"cheeks\"],\"protocol\":{\"scar\":false,\"body\":false}}}",
	  -ERANGE, "params.contraindications[0]", true },
	{ "authorise",
	  "{" HDR "\"params\":{\"patient\":\"p-1\",\"operator\":{\"id\":\"op-17\",\"role\":"
	  "\"physician\"},\"skin_type\":\"II\",\"contraindications\":[],\"zones\":[\"cheeks\"]}}",
	  -ENOENT, "params.protocol", true },
	{ "authorise",
	  "{" HDR "\"params\":{\"patient\":\"p-1\",\"operator\":{\"id\":\"op-17\",\"role\":"
	  "\"physician\"},\"skin_type\":\"II\",\"contraindications\":[],\"zones\":[\"cheeks\"],"
	  "\"protocol\":{\"scar\":\"yes\",\"body\":false}}}",
	  -EINVAL, "params.protocol.scar", true },
	{ "authorise", "{" HDR "\"params\":{" AUTH_OK ",\"override\":{\"physician_id\":\"dr-2\"}}}",
	  -ENOENT, "params.override.reason", true },
	{ "authorise", "{" HDR "\"params\":{" AUTH_OK ",\"override\":{\"physician_id\":\"dr-2\","
		       "\"reason\":\"\"}}}",
	  -ERANGE, "params.override.reason", true },
	{ "authorise", "{" HDR "\"params\":{" AUTH_OK ",\"override\":{\"physician_id\":\"dr-2\","
		       "\"reason\":\"bad \xc3\x28 byte\"}}}",
	  -ERANGE, "params.override.reason", false },
	{ "authorise", "{" HDR "\"params\":{" AUTH_OK ",\"depth_mm\":2.0}}", -E2BIG,
	  "params.depth_mm", true },
	{ "authorise",
	  "{" HDR "\"params\":{\"patient\":null,\"operator\":{\"id\":\"op-17\",\"role\":"
	  "\"physician\"},\"skin_type\":\"II\",\"contraindications\":[],\"zones\":[\"cheeks\"],"
	  "\"protocol\":{\"scar\":false,\"body\":false}}}",
	  -EINVAL, "params.patient", true },
	{ "authorise", "{" HDR "\"params\":{\"operator\":{\"id\":\"op-17\",\"role\":\"physician\"}}}",
	  -ENOENT, "params.patient", true },
};

static const struct bad_case bad_pair[] = {
	{ "pair", "{" HDR "\"params\":{}}", -ENOENT, "params.passkey", true },
	{ "pair", "{" HDR "\"params\":{\"passkey\":1000000}}", -ERANGE, "params.passkey", true },
	{ "pair", "{" HDR "\"params\":{\"passkey\":-1}}", -ERANGE, "params.passkey", true },
	{ "pair", "{" HDR "\"params\":{\"passkey\":\"123456\"}}", -EINVAL, "params.passkey", true },
	{ "pair", "{" HDR "\"params\":{\"confirm\":\"yes\"}}", -EINVAL, "params.confirm", true },
	{ "pair", "{" HDR "\"params\":{\"passkey\":1,\"confirm\":true}}", -ERANGE,
	  "params.confirm", true },
	{ "pair", "{" HDR "\"params\":{\"pin\":1}}", -E2BIG, "params.pin", true },
};

static void check_bad(const struct bad_case *c, unsigned idx)
{
	struct nl_payload_request r, before;
	struct nl_payload_parse_error e;
	char err[256] = "";
	char name[96];
	int rc;

	memset(&r, 0xA5, sizeof(r));
	before = r;
	rc = nl_payload_parse_request_ex(c->op, c->json, strlen(c->json), &r, &e);
	if (rc != c->rc || strcmp(e.field, c->field) != 0) {
		fprintf(stderr, "bad case %u (%s %s): rc %d field \"%s\" (%s), expected %d \"%s\"\n",
			idx, c->op, c->json, rc, rc < 0 ? e.field : "", rc < 0 ? e.message : "",
			c->rc, c->field);
		failures++;
	}
	CHECK(memcmp(&r, &before, sizeof(r)) == 0); /* ret untouched */
	/* The plain API names the field in its message. */
	rc = nl_payload_parse_request(c->op, c->json, strlen(c->json), &r, err, sizeof(err));
	CHECK_EQ_INT(rc, c->rc);
	if (c->field[0] && strncmp(err, c->field, strlen(c->field)) != 0) {
		fprintf(stderr, "bad case %u: message \"%s\" does not start with \"%s\"\n", idx, err,
			c->field);
		failures++;
	}
	if (c->schema_rejects) {
		snprintf(name, sizeof(name), "reject--request-%s--%u", c->op, idx);
		write_text(name, c->json);
	}
}

static void test_parser(void)
{
	static const char *const ok_set_time =
		"{" HDR "\"params\":{\"time\":\"2026-11-24T10:00:00.123Z\"}}";
	static const char *const ok_unlock_text =
		"{" HDR "\"params\":{\"operator\":{\"id\":\"dr-1\",\"role\":\"physician\"},"
		"\"reason\":\"policy\",\"reason_text\":\"pen checked, cap re-read \xc3\xa9\"}}";
	static const char *const ok_auth =
		"{" HDR "\"params\":{\"patient\":\"p-8f3a\",\"operator\":{\"id\":\"op-17\","
		"\"role\":\"physician\"},\"skin_type\":\"V\",\"contraindications\":[\"keloid\","
		"\"rosacea\"],\"zones\":[\"forehead\",\"cheeks\"],\"protocol\":{\"scar\":true,"
		"\"body\":false},\"override\":{\"physician_id\":\"dr-2\",\"reason\":"
		"\"scar protocol, reviewed \xc3\xa9\"}}}";
	struct nl_payload_request r;
	struct nl_payload_parse_error e;
	struct {
		const char *op, *json;
	} ok[] = {
		{ "set_time", ok_set_time },
		{ "set_time", "{" HDR "\"params\":{}}" },
		{ "lock", "{" HDR "\"params\":{\"reason\":\"policy\"}}" },
		{ "unlock", "{" HDR "\"params\":{\"operator\":{\"id\":\"op-17\",\"role\":"
			    "\"physician\"},\"reason\":\"operator\"}}" },
		{ "unlock", ok_unlock_text },
		{ "unlock", "{" HDR "\"params\":{\"operator\":{\"id\":\"dr-1\",\"role\":"
			    "\"physician\"},\"reason_text\":\"" TEXT256 "\"}}" },
		{ "set_zone", "{" HDR "\"params\":{\"zone\":\"upper_lip\"}}" },
		{ "stop_session", "{" HDR "\"params\":{\"session_id\":4294967295}}" },
		{ "read_state", "{" HDR "\"params\":{}}" },
		{ "authorise", "{" HDR "\"params\":{" AUTH_OK "}}" },
		{ "pair", "{" HDR "\"params\":{\"passkey\":999999}}" },
		{ "pair", "{" HDR "\"params\":{\"confirm\":false}}" },
		{ "release", "{" HDR "\"params\":{}}" },
	};
	char name[64];
	int rc;

	for (unsigned i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		rc = nl_payload_parse_request_ex(ok[i].op, ok[i].json, strlen(ok[i].json), &r, &e);
		if (rc != 0) {
			fprintf(stderr, "ok case %u (%s): %d %s\n", i, ok[i].op, rc, e.message);
			failures++;
			continue;
		}
		CHECK_EQ_INT(r.op, nl_payload_op_from_name(ok[i].op));
		CHECK_EQ_STR(r.transaction, "t-1");
		snprintf(name, sizeof(name), "request-%s--%u", ok[i].op, i);
		write_text(name, ok[i].json);
		/* And against the envelope schema alone. */
		snprintf(name, sizeof(name), "request--%u", i);
		write_text(name, ok[i].json);
	}
	/* A JSON text with a trailing NUL inside len, and white space, is fine. */
	CHECK_EQ_INT(nl_payload_parse_request("read_state", "{" HDR "\"params\":{}} \n",
					      sizeof("{" HDR "\"params\":{}} \n"), &r, NULL, 0),
		     0);

	CHECK_EQ_INT(nl_payload_parse_request_ex("set_time", ok_set_time, strlen(ok_set_time), &r,
						 &e),
		     0);
	CHECK(r.u.set_time.has_time);
	CHECK_EQ_INT(r.u.set_time.unix_ms, T_UNIX_MS + 123);

	CHECK_EQ_INT(nl_payload_parse_request_ex("unlock", ok_unlock_text, strlen(ok_unlock_text), &r,
						 &e),
		     0);
	CHECK_EQ_STR(r.u.unlock.operator_id, "dr-1");
	CHECK_EQ_INT(r.u.unlock.operator_role, NL_PAYLOAD_ROLE_PHYSICIAN);
	CHECK_EQ_INT(r.u.unlock.reason, NL_LOCK_REASON_POLICY);
	CHECK_EQ_STR(r.u.unlock.reason_text, "pen checked, cap re-read \xc3\xa9");
	CHECK_EQ_INT(nl_payload_parse_request_ex("unlock", "{" HDR "\"params\":{\"operator\":{"
						 "\"id\":\"dr-1\",\"role\":\"nurse\"}}}",
						 strlen("{" HDR "\"params\":{\"operator\":{"
							"\"id\":\"dr-1\",\"role\":\"nurse\"}}}"),
						 &r, &e),
		     0);
	CHECK_EQ_STR(r.u.unlock.reason_text, ""); /* absent */

	CHECK_EQ_INT(nl_payload_parse_request_ex("authorise", ok_auth, strlen(ok_auth), &r, &e), 0);
	CHECK_EQ_STR(r.u.authorise.patient, "p-8f3a");
	CHECK_EQ_STR(r.u.authorise.operator_id, "op-17");
	CHECK_EQ_INT(r.u.authorise.operator_role, NL_PAYLOAD_ROLE_PHYSICIAN);
	CHECK_EQ_INT(r.u.authorise.skin_type, 5);
	CHECK_EQ_INT(r.u.authorise.contraindications, NL_PAYLOAD_CI_KELOID | NL_PAYLOAD_CI_ROSACEA);
	CHECK_EQ_INT(r.u.authorise.zone_count, 2);
	CHECK_EQ_INT(r.u.authorise.zones[0], NL_ZONE_FOREHEAD);
	CHECK_EQ_INT(r.u.authorise.zones[1], NL_ZONE_CHEEKS);
	CHECK(r.u.authorise.has_override);
	CHECK_EQ_STR(r.u.authorise.override_reason, "scar protocol, reviewed \xc3\xa9");
	write_text("request-authorise--override", ok_auth);

	rc = nl_payload_parse_request_ex("set_zone", "{" HDR "\"params\":{\"zone\":\"chin\"}}",
					 strlen("{" HDR "\"params\":{\"zone\":\"chin\"}}"), &r, &e);
	CHECK_EQ_INT(rc, 0);
	CHECK_EQ_INT(r.u.set_zone.zone, NL_ZONE_CHIN);

	for (unsigned i = 0; i < sizeof(bad_cases) / sizeof(bad_cases[0]); i++)
		check_bad(&bad_cases[i], i);
	for (unsigned i = 0; i < sizeof(bad_auth) / sizeof(bad_auth[0]); i++)
		check_bad(&bad_auth[i], 100 + i);
	for (unsigned i = 0; i < sizeof(bad_pair) / sizeof(bad_pair[0]); i++)
		check_bad(&bad_pair[i], 200 + i);
	{
		const char *j = "{" HDR "\"params\":{\"passkey\":12}}";

		CHECK_EQ_INT(nl_payload_parse_request_ex("pair", j, strlen(j), &r, &e), 0);
		CHECK(r.u.pair.has_passkey);
		CHECK_EQ_INT(r.u.pair.passkey, 12);
		j = "{" HDR "\"params\":{\"confirm\":true}}";
		CHECK_EQ_INT(nl_payload_parse_request_ex("pair", j, strlen(j), &r, &e), 0);
		CHECK(!r.u.pair.has_passkey);
		CHECK(r.u.pair.confirm);
	}

	/* The error response echoes the transaction even when the request is
	 * refused, and names the field. */
	{
		const char *j = "{" HDR "\"params\":{\"zone\":\"elbow\"}}";
		struct nl_payload_response resp = { .serial = "NL-0001", .op = "set_zone",
						    .status = NL_PAYLOAD_STATUS_ERROR,
						    .at_ms = T_UNIX_MS };
		cJSON *out, *err;

		CHECK_EQ_INT(nl_payload_parse_request_ex("set_zone", j, strlen(j), &r, &e), -ERANGE);
		CHECK_EQ_STR(e.transaction, "t-1");
		CHECK_EQ_STR(nl_payload_req_error_name(e.code), "out_of_range");
		resp.transaction = e.transaction;
		resp.error_code = nl_payload_req_error_name(e.code);
		resp.error_message = e.message;
		resp.error_field = e.field;
		CHECK_EQ_INT(nl_payload_response(&resp, &out), 0);
		err = cJSON_GetObjectItem(out, "error");
		CHECK_EQ_STR(cJSON_GetObjectItem(err, "field")->valuestring, "params.zone");
		CHECK_EQ_STR(cJSON_GetObjectItem(out, "transaction")->valuestring, "t-1");
		sample("response--error", out);

		/* Not JSON at all: no transaction to echo. */
		CHECK_EQ_INT(nl_payload_parse_request_ex("set_zone", "nope", 4, &r, &e), -EBADMSG);
		CHECK_EQ_STR(e.transaction, "");
		CHECK_EQ_STR(nl_payload_req_error_name(e.code), "malformed");
		resp.transaction = e.transaction; /* "" goes out as null */
		resp.error_code = nl_payload_req_error_name(e.code);
		resp.error_message = e.message;
		resp.error_field = e.field;
		CHECK_EQ_INT(nl_payload_response(&resp, &out), 0);
		CHECK(cJSON_IsNull(cJSON_GetObjectItem(out, "transaction")));
		CHECK(cJSON_IsNull(cJSON_GetObjectItem(cJSON_GetObjectItem(out, "error"), "field")));
		sample("response--malformed", out);
	}
}

/* Every request example in the API document must be accepted by the
 * parser for the op its "<!-- schema: request-OP -->" line names. */
static void test_doc_requests(const char *doc_path)
{
	static const char tag[] = "<!-- schema: request-";
	char *doc = read_file(doc_path);
	unsigned n = 0;

	if (!doc) {
		fprintf(stderr, "cannot read %s\n", doc_path);
		failures++;
		return;
	}
	for (char *p = strstr(doc, tag); p; p = strstr(p + 1, tag)) {
		char op[32], err[200];
		char *start, *end;
		struct nl_payload_request r;
		int rc;

		if (sscanf(p + sizeof(tag) - 1, "%31[a-z_] -->", op) != 1)
			continue;
		start = strstr(p, "```json\n");
		end = start ? strstr(start + 8, "\n```") : NULL;
		if (!end) {
			fprintf(stderr, "%s: request-%s example has no json block\n", doc_path, op);
			failures++;
			break;
		}
		start += 8;
		rc = nl_payload_parse_request(op, start, (size_t)(end - start), &r, err, sizeof(err));
		if (rc != 0) {
			fprintf(stderr, "%s: request-%s example refused: %s\n", doc_path, op, err);
			failures++;
		}
		n++;
	}
	if (n == 0) {
		fprintf(stderr, "%s: no request examples found\n", doc_path);
		failures++;
	}
	free(doc);
}

int main(int argc, char **argv)
{
	if (argc != 4) {
		fprintf(stderr, "usage: %s GOLDEN_DIR SAMPLE_DIR API_DOC\n", argv[0]);
		return 2;
	}
	golden_dir = argv[1];
	sample_dir = argv[2];
	if (mkdir(sample_dir, 0755) < 0 && errno != EEXIST) {
		fprintf(stderr, "mkdir %s: %s\n", sample_dir, strerror(errno));
		return 1;
	}
	/* Stale samples from an earlier run must not be validated again. */
	{
		DIR *d = opendir(sample_dir);
		struct dirent *de;
		char path[512];

		while (d && (de = readdir(d))) {
			size_t n = strlen(de->d_name);

			if (n > 5 && strcmp(de->d_name + n - 5, ".json") == 0) {
				snprintf(path, sizeof(path), "%s/%s", sample_dir, de->d_name);
				unlink(path);
			}
		}
		if (d)
			closedir(d);
	}
	test_time();
	test_records();
	test_state();
	test_gateway();
	test_session_alert();
	test_responses();
	test_parser();
	test_doc_requests(argv[3]);
	if (failures) {
		fprintf(stderr, "test-payload: %d failure(s)\n", failures);
		return 1;
	}
	printf("test-payload: all passed\n");
	return 0;
}
