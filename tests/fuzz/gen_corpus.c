/* SPDX-License-Identifier: MIT */
/*
 * Writes the seed corpora of the fuzz targets: valid encodings made with the
 * library's own encoders, and a few malformed ones derived from them.
 *
 *   fuzz-gen-corpus OUTDIR      (usually tests/fuzz/corpus)
 *
 * Creates OUTDIR/<target>/<seed>. Each valid seed is decoded back before it
 * is written, so a seed that the decoder refuses stops the generator.
 * Not run by ctest: the output is committed.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "needlelink/cp.h"
#include "needlelink/crc.h"
#include "needlelink/pdu.h"
#include "needlelink/racp.h"
#include "needlelink/record.h"
#include "needlelink/seg.h"

static const char *out_dir;
static unsigned written;

static _Noreturn void die(const char *what, const char *name, int err)
{
	fprintf(stderr, "gen_corpus: %s %s: %d (%s)\n", what, name, err,
		err < 0 ? nl_strerror(err) : "");
	exit(1);
}

static void make_dir(const char *path)
{
	if (mkdir(path, 0755) < 0 && errno != EEXIST)
		die("mkdir", path, -errno);
}

static void put(const char *target, const char *name, const uint8_t *buf, size_t len)
{
	char path[4096];
	int fd;

	snprintf(path, sizeof(path), "%s/%s", out_dir, target);
	make_dir(path);
	snprintf(path, sizeof(path), "%s/%s/%s", out_dir, target, name);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		die("open", path, -errno);
	if (len && write(fd, buf, len) != (ssize_t)len)
		die("write", path, -errno);
	close(fd);
	written++;
}

static size_t check_len(const char *name, int n)
{
	if (n < 0)
		die("encode", name, n);
	return (size_t)n;
}

static void check_ok(const char *name, int rc)
{
	if (rc < 0)
		die("decode of valid seed", name, rc);
}

static void le16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

static void le32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

/* Recomputes the trailing CRC of a value of len bytes. */
static void fix_crc(uint8_t *buf, size_t len)
{
	if (nl_pdu_put_crc(buf, len - 2, len) < 0)
		die("put_crc", "", -EINVAL);
}

/*
 * The malformed variants every CRC-protected value gets: a flipped CRC, one
 * byte short, the CRC alone, and (valid) a newer minor version's longer
 * value. buf must have room for len + 4 bytes.
 */
static void put_variants(const char *target, const char *stem, uint8_t *buf, size_t len)
{
	uint8_t tmp[NL_RECORD_MAX + 8];
	char name[128];

	memcpy(tmp, buf, len);
	tmp[len - 1] ^= 0x5a;
	snprintf(name, sizeof(name), "bad-crc-%s", stem);
	put(target, name, tmp, len);

	snprintf(name, sizeof(name), "truncated-%s", stem);
	put(target, name, buf, len - 1);

	snprintf(name, sizeof(name), "crc-only-%s", stem);
	put(target, name, buf + len - 2, 2);

	/* Three extra bytes between the v1 layout and the CRC. */
	memcpy(tmp, buf, len - 2);
	tmp[len - 2] = 0x01;
	tmp[len - 1] = 0x02;
	tmp[len] = 0x03;
	fix_crc(tmp, len + 3);
	snprintf(name, sizeof(name), "longer-%s", stem);
	put(target, name, tmp, len + 3);
}

/* ---- Feature ---------------------------------------------------------- */

static void gen_feature(void)
{
	static const struct nl_feature seeds[] = {
		/* Motorised pen like SkinPen: 0-2.5 mm in 0.25 mm, fixed speed. */
		{1, 0, NL_FEAT_MOTORISED_DEPTH | NL_FEAT_CARTRIDGE_READER | NL_FEAT_RTC, 0, 2500,
		 250, 117, 117, 2000, 0x11223344, 10},
		/* Dial pen like Exceed: 0-1.9 mm dial, 100-150 Hz. */
		{1, 0, NL_FEAT_VARIABLE_SPEED, 0, 1900, 100, 100, 150, 500, 7, 5},
		/* Everything on, 3.0 mm in 0.1 mm steps. */
		{1, 0, NL_FEAT_ALL, 100, 3000, 100, 20, 500, 65535, 0xFFFFFFFF, 20},
	};
	uint8_t buf[NL_FEATURE_LEN + 8];
	struct nl_feature f;
	char name[64];
	size_t n = 0;

	for (size_t i = 0; i < sizeof(seeds) / sizeof(seeds[0]); i++) {
		snprintf(name, sizeof(name), "valid-%zu", i);
		n = check_len(name, nl_feature_encode(&seeds[i], buf, sizeof(buf)));
		check_ok(name, nl_feature_decode(buf, n, &f));
		put("feature", name, buf, n);
	}
	put_variants("feature", "last", buf, n);
	/* Out of range: depth_max 3001, live rate 0, min above max. */
	le16(buf + 6, 3001);
	fix_crc(buf, n);
	put("feature", "range-depth-max", buf, n);
	n = check_len("f", nl_feature_encode(&seeds[0], buf, sizeof(buf)));
	buf[20] = 0;
	fix_crc(buf, n);
	put("feature", "range-live-rate", buf, n);
	n = check_len("f", nl_feature_encode(&seeds[0], buf, sizeof(buf)));
	le16(buf + 4, 2600);
	fix_crc(buf, n);
	put("feature", "range-depth-min", buf, n);
	put("feature", "empty", buf, 0);
}

/* ---- Live Status ------------------------------------------------------ */

static void gen_live(void)
{
	static const struct nl_live seeds[] = {
		{NL_PEN_STATE_RUNNING, NL_LIVE_MOTOR_ON | NL_LIVE_CARTRIDGE, NL_ZONE_CHEEKS, 1000,
		 985, 1500, 117, 2, 61000, 42, 80, 1234},
		{NL_PEN_STATE_IDLE, NL_LIVE_CHARGING, NL_ZONE_NONE, 0, NL_DEPTH_UNKNOWN, 2500, 0, 0,
		 0, 0, 100, 0},
		{NL_PEN_STATE_ARMED, NL_LIVE_CLAMPED | NL_LIVE_DIAL_OVER_CAP | NL_LIVE_CARTRIDGE,
		 NL_ZONE_PERIORBITAL, 500, 750, 500, 0, 4, 120000, 7, 15, 65535},
		{NL_PEN_STATE_FAULT, 0, NL_ZONE_UPPER_LIP, 3000, 3000, 3000, 500, 65535,
		 0xFFFFFFFF, 0xFFFFFFFF, 0, 1},
	};
	uint8_t buf[NL_LIVE_LEN + 8];
	struct nl_live l;
	char name[64];
	size_t n = 0;

	for (size_t i = 0; i < sizeof(seeds) / sizeof(seeds[0]); i++) {
		snprintf(name, sizeof(name), "valid-%zu", i);
		n = check_len(name, nl_live_encode(&seeds[i], buf, sizeof(buf)));
		check_ok(name, nl_live_decode(buf, n, &l));
		put("live", name, buf, n);
	}
	put_variants("live", "last", buf, n);
	buf[0] = NL_PEN_STATE_COUNT;
	fix_crc(buf, n);
	put("live", "range-state", buf, n);
	n = check_len("l", nl_live_encode(&seeds[0], buf, sizeof(buf)));
	buf[21] = 101;
	fix_crc(buf, n);
	put("live", "range-battery", buf, n);
}

/* ---- Pen Status ------------------------------------------------------- */

static void gen_pen_status(void)
{
	static const struct nl_pen_status seeds[] = {
		{NL_STATUS_CARTRIDGE_PRESENT | NL_STATUS_SESSION_ACTIVE, NL_PEN_STATE_RUNNING, 0,
		 12, 2000, 0x11223344, 981, 800000000, 77},
		{NL_STATUS_LOCKED | NL_STATUS_LIMIT_REACHED | NL_STATUS_FAULT, NL_PEN_STATE_LOCKED,
		 3, 1800, 2000, 1, 99999, 12345, 9},
		{NL_STATUS_CLOCK_NOT_SET | NL_STATUS_FACTORY_LIMITS, NL_PEN_STATE_IDLE, 0, 0, 1, 0,
		 0, 0, 100},
		{NL_STATUS_ALL, NL_PEN_STATE_FAULT, NL_FAULT_WATCHDOG, 65535, 65535, 0xFFFFFFFF,
		 0xFFFFFFFF, 0xFFFFFFFF, 0},
	};
	uint8_t buf[NL_PEN_STATUS_LEN + 8];
	struct nl_pen_status s;
	char name[64];
	size_t n = 0;

	for (size_t i = 0; i < sizeof(seeds) / sizeof(seeds[0]); i++) {
		snprintf(name, sizeof(name), "valid-%zu", i);
		n = check_len(name, nl_pen_status_encode(&seeds[i], buf, sizeof(buf)));
		check_ok(name, nl_pen_status_decode(buf, n, &s));
		put("pen_status", name, buf, n);
	}
	put_variants("pen_status", "last", buf, n);
	n = check_len("s", nl_pen_status_encode(&seeds[0], buf, sizeof(buf)));
	le16(buf + 7, 2001); /* store_used above store_capacity */
	fix_crc(buf, n);
	put("pen_status", "range-store-used", buf, n);
}

/* ---- Cartridge Info --------------------------------------------------- */

static void gen_cartridge_info(void)
{
	static const struct nl_cartridge_info seeds[] = {
		{NL_CARTRIDGE_NEW, {1, 2, 3, 4, 5, 6, 7, 8}, "LOT2611", 900000000, 14, 2500, 0, 0},
		{NL_CARTRIDGE_IN_USE, {0xde, 0xad, 0xbe, 0xef, 0, 1, 2, 3}, "A1B2C3D4", 800000000,
		 12, 1500, 799990000, 61000},
		{NL_CARTRIDGE_NONE, {0}, "", 0, 0, 0, 0, 0},
		{NL_CARTRIDGE_REJECTED, {9, 9, 9, 9, 9, 9, 9, 9}, "X", 1, 64, 3000, 5, 0xFFFFFFFF},
	};
	uint8_t buf[NL_CARTRIDGE_INFO_LEN + 8];
	struct nl_cartridge_info c;
	char name[64];
	size_t n = 0;

	for (size_t i = 0; i < sizeof(seeds) / sizeof(seeds[0]); i++) {
		snprintf(name, sizeof(name), "valid-%zu", i);
		n = check_len(name, nl_cartridge_info_encode(&seeds[i], buf, sizeof(buf)));
		check_ok(name, nl_cartridge_info_decode(buf, n, &c));
		put("cartridge_info", name, buf, n);
	}
	put_variants("cartridge_info", "last", buf, n);
	n = check_len("c", nl_cartridge_info_encode(&seeds[0], buf, sizeof(buf)));
	buf[9 + 2] = 0x07; /* control character in the lot */
	fix_crc(buf, n);
	put("cartridge_info", "range-lot", buf, n);
	n = check_len("c", nl_cartridge_info_encode(&seeds[0], buf, sizeof(buf)));
	buf[21] = 65; /* needle_count */
	fix_crc(buf, n);
	put("cartridge_info", "range-needles", buf, n);
}

/* ---- Limit sets ------------------------------------------------------- */

static const struct nl_limit_set limit_seeds[] = {
	/* Clinic defaults: per-zone caps from DOMAIN.md. */
	{1, 0, 43200, 1000, 1500, 2400, 3, 5, 6,
	 {{NL_ZONE_FOREHEAD, 750, 3, 5},
	  {NL_ZONE_PERIORBITAL, 500, 3, 5},
	  {NL_ZONE_NOSE, 500, 2, 4},
	  {NL_ZONE_CHEEKS, 1500, 3, 5},
	  {NL_ZONE_NECK, 1000, 3, 5},
	  {NL_ZONE_SCAR, 2000, 0, 0}}},
	/* No zones, no pass or time limits. */
	{1, 0, 1, 3000, 0, 0, 0, 0, 0, {{0, 0, 0, 0}}},
	/* Every zone listed. */
	{1, 0, 86400, 250, 0, 60, 1, 0, 15,
	 {{1, 750, 3, 5},   {2, 750, 3, 5},   {3, 500, 3, 5},  {4, 500, 3, 5},
	  {5, 1500, 3, 5},  {6, 750, 3, 5},   {7, 1500, 3, 5}, {8, 1000, 3, 5},
	  {9, 750, 3, 5},   {10, 1500, 3, 5}, {11, 2000, 3, 5}, {12, 2000, 3, 5},
	  {13, 2000, 3, 5}, {14, 1000, 3, 5}, {15, 750, 3, 5}}},
};
#define LIMIT_SEEDS (sizeof(limit_seeds) / sizeof(limit_seeds[0]))

static void gen_limit_set(void)
{
	uint8_t buf[NL_LIMIT_SET_MAX + 8];
	struct nl_limit_set l;
	char name[64];
	size_t n;

	for (size_t i = 0; i < LIMIT_SEEDS; i++) {
		snprintf(name, sizeof(name), "valid-%zu", i);
		n = check_len(name, nl_limit_set_encode(&limit_seeds[i], buf, sizeof(buf)));
		check_ok(name, nl_limit_set_decode(buf, n, &l));
		put("limit_set", name, buf, n);
	}
	n = check_len("l", nl_limit_set_encode(&limit_seeds[0], buf, sizeof(buf)));
	put("limit_set", "truncated", buf, n - 1);
	buf[n] = 0;
	put("limit_set", "trailing-byte", buf, n + 1);
	put("limit_set", "header-only-short", buf, NL_LIMIT_SET_HDR_LEN - 1);
	/* Swap the first two zones: unsorted. */
	{
		uint8_t tmp[5];

		memcpy(tmp, buf + 15, 5);
		memcpy(buf + 15, buf + 20, 5);
		memcpy(buf + 20, tmp, 5);
		put("limit_set", "unsorted-zones", buf, n);
	}
	n = check_len("l", nl_limit_set_encode(&limit_seeds[0], buf, sizeof(buf)));
	buf[20] = buf[15]; /* duplicate zone */
	put("limit_set", "duplicate-zone", buf, n);
	n = check_len("l", nl_limit_set_encode(&limit_seeds[0], buf, sizeof(buf)));
	buf[0] = 2; /* format */
	put("limit_set", "format-2", buf, n);
	n = check_len("l", nl_limit_set_encode(&limit_seeds[0], buf, sizeof(buf)));
	le16(buf + 8, 3000); /* warn above lock */
	put("limit_set", "warn-above-lock", buf, n);
	n = check_len("l", nl_limit_set_encode(&limit_seeds[1], buf, sizeof(buf)));
	buf[14] = NL_LIMIT_ZONES_MAX + 1;
	put("limit_set", "zone-count-17", buf, n);
}

/* ---- Active Limits ---------------------------------------------------- */

static void gen_active_limits(void)
{
	uint8_t buf[9 + NL_LIMIT_SET_MAX + 2 + 8];
	struct nl_active_limits a;
	char name[64];
	size_t n = 0;

	for (size_t i = 0; i < LIMIT_SEEDS; i++) {
		memset(&a, 0, sizeof(a));
		a.source = (uint8_t)(i % NL_LIMIT_SOURCE_COUNT);
		a.set = limit_seeds[i];
		a.remaining_s = a.source == NL_LIMIT_SOURCE_SESSION ? a.set.lifetime_s - 1 : 0;
		if (nl_limit_set_hash(&a.set, &a.limits_hash) < 0)
			die("hash", "active", -EINVAL);
		snprintf(name, sizeof(name), "valid-%zu", i);
		n = check_len(name, nl_active_limits_encode(&a, buf, sizeof(buf)));
		check_ok(name, nl_active_limits_decode(buf, n, &a));
		put("active_limits", name, buf, n);
	}
	put_variants("active_limits", "last", buf, n);
	buf[1] ^= 0x01; /* limits_hash no longer matches the set */
	fix_crc(buf, n);
	put("active_limits", "hash-mismatch", buf, n);
	buf[1] ^= 0x01;
	buf[0] = NL_LIMIT_SOURCE_COUNT;
	fix_crc(buf, n);
	put("active_limits", "range-source", buf, n);
}

/* ---- Records ---------------------------------------------------------- */

#define NREC 9

static void make_records(struct nl_record rec[NREC])
{
	static const uint8_t uid[NL_CARTRIDGE_UID_LEN] = {1, 2, 3, 4, 5, 6, 7, 8};
	uint32_t hash = 0;

	if (nl_limit_set_hash(&limit_seeds[0], &hash) < 0)
		die("hash", "record", -EINVAL);
	memset(rec, 0, NREC * sizeof(rec[0]));
	for (unsigned i = 0; i < NREC; i++) {
		rec[i].hdr.flags = NL_REC_CLOCK_SET | NL_REC_AUTHORISED;
		rec[i].hdr.seq = 100 + i;
		rec[i].hdr.store_epoch = 0x11223344;
		rec[i].hdr.session_id = 42;
		rec[i].hdr.pen_time = 800000000 + 60 * i;
	}

	rec[0].hdr.type = NL_RECORD_SESSION_START;
	rec[0].u.session_start = (struct nl_rec_session_start){
		hash, NL_LIMIT_SOURCE_SESSION, 43200, {1, 2, 3, 4, 5, 6, 7, 8}, NL_ZONE_CHEEKS};

	rec[1].hdr.type = NL_RECORD_SEGMENT;
	rec[1].u.segment = (struct nl_rec_segment){NL_ZONE_CHEEKS, 1, 1200, 1500, 1190, 117,
						   45000, 5265, {0}, NL_SEG_PASS_WARN,
						   NL_SEGMENT_END_OPERATOR};
	memcpy(rec[1].u.segment.cartridge_uid, uid, sizeof(uid));

	rec[2].hdr.type = NL_RECORD_SEGMENT;
	rec[2].u.segment = (struct nl_rec_segment){NL_ZONE_PERIORBITAL, 5, 750, 500,
						   NL_DEPTH_UNKNOWN, 100, 3000, 300, {0},
						   NL_SEG_CLAMPED | NL_SEG_STOPPED_BY_LIMIT,
						   NL_SEGMENT_END_LIMIT};

	rec[3].hdr.type = NL_RECORD_CARTRIDGE;
	rec[3].u.cartridge = (struct nl_rec_cartridge){NL_CARTRIDGE_EVENT_REJECTED,
						       NL_REJECT_REUSED, {0}, "LOT2611", 900000000,
						       14, 2500, 799000000, 61000};
	memcpy(rec[3].u.cartridge.uid, uid, sizeof(uid));

	rec[4].hdr.type = NL_RECORD_LIMIT;
	rec[4].u.limit = (struct nl_rec_limit){NL_LIMIT_EVENT_LOCK, NL_LIMIT_ORIGIN_FIRMWARE,
					       NL_ZONE_FOREHEAD, hash, 5, 5, NL_LOCK_REASON_PASSES,
					       1200};

	rec[5].hdr.type = NL_RECORD_FAULT;
	rec[5].hdr.flags = 0;
	rec[5].hdr.session_id = 0;
	rec[5].u.fault = (struct nl_rec_fault){NL_FAULT_OVERHEAT, NL_FAULT_CRITICAL, 0xdeadbeef};

	rec[6].hdr.type = NL_RECORD_TIME_CHANGE;
	rec[6].hdr.session_id = 0;
	rec[6].u.time_change = (struct nl_rec_time_change){3600, 800000000,
							   NL_TIME_SOURCE_GATEWAY};

	/* SESSION_END with three zones, and one with the maximum sixteen. */
	rec[7].hdr.type = NL_RECORD_SESSION_END;
	rec[7].u.session_end.reason = NL_SESSION_END_STOPPED;
	rec[7].u.session_end.duration_ms = 1500000;
	rec[7].u.session_end.needle_on_ms = 600000;
	rec[7].u.session_end.strokes = 70000;
	rec[7].u.session_end.zone_count = 3;
	for (unsigned z = 0; z < 3; z++)
		rec[7].u.session_end.zones[z] = (struct nl_rec_zone_total){
			(uint8_t)(NL_ZONE_FOREHEAD + 2 * z), (uint16_t)(3 + z), 750, 700,
			200000, 23000};

	rec[8].hdr.type = NL_RECORD_SESSION_END;
	rec[8].u.session_end.reason = NL_SESSION_END_POWER_LOSS;
	/* As many zones as exist (1..NL_ZONE_COUNT-1), strictly ascending. */
	rec[8].u.session_end.zone_count = NL_ZONE_COUNT - 1;
	for (unsigned z = 0; z < NL_ZONE_COUNT - 1; z++)
		rec[8].u.session_end.zones[z] = (struct nl_rec_zone_total){
			(uint8_t)(z + 1), 1, 500, 400, 1000, 100};
}

static void gen_record(void)
{
	struct nl_record rec[NREC], r;
	uint8_t buf[NL_RECORD_MAX + 8];
	char name[64];
	size_t n;

	make_records(rec);
	for (unsigned i = 0; i < NREC; i++) {
		snprintf(name, sizeof(name), "valid-%u-%s", i, nl_record_type_name(rec[i].hdr.type));
		n = check_len(name, nl_record_encode(&rec[i], buf, sizeof(buf)));
		check_ok(name, nl_record_decode(buf, n, &r));
		put("record", name, buf, n);
		if (i == 1 || i == 7)
			put_variants("record", name + 6, buf, n);
	}
	/* OVERRIDE carries the reason of the UNLOCK that wrote it. */
	r = rec[4];
	r.u.limit.event = NL_LIMIT_EVENT_OVERRIDE;
	r.u.limit.reason = NL_LOCK_REASON_OPERATOR;
	n = check_len("r", nl_record_encode(&r, buf, sizeof(buf)));
	check_ok("valid-9-limit-override", nl_record_decode(buf, n, &r));
	put("record", "valid-9-limit-override", buf, n);
	n = check_len("r", nl_record_encode(&rec[0], buf, sizeof(buf)));
	buf[0] = NL_RECORD_TYPE_END;
	fix_crc(buf, n);
	put("record", "unknown-type", buf, n);
	n = check_len("r", nl_record_encode(&rec[7], buf, sizeof(buf)));
	buf[NL_RECORD_HDR_LEN + 13] = 4; /* zone_count beyond the body */
	fix_crc(buf, n);
	put("record", "zone-count-beyond-body", buf, n);
	n = check_len("r", nl_record_encode(&rec[7], buf, sizeof(buf)));
	buf[NL_RECORD_HDR_LEN + 14 + 15] = buf[NL_RECORD_HDR_LEN + 14]; /* duplicate zone */
	fix_crc(buf, n);
	put("record", "session-end-dup-zone", buf, n);
	put("record", "header-only", buf, NL_RECORD_HDR_LEN);
}

/* ---- Pen CP ----------------------------------------------------------- */

static void gen_cp_req(void)
{
	struct nl_cp_req reqs[12], r;
	uint8_t buf[1 + NL_LIMIT_SET_MAX + 2 + 8];
	unsigned k = 0;
	char name[64];
	size_t n = 0;

	memset(reqs, 0, sizeof(reqs));
	reqs[k].op = NL_CP_SET_LIMITS;
	reqs[k++].u.limits = limit_seeds[0];
	reqs[k].op = NL_CP_SET_LIMITS;
	reqs[k++].u.limits = limit_seeds[1];
	reqs[k].op = NL_CP_AUTHORISE;
	reqs[k].u.authorise.session_id = 42;
	if (nl_limit_set_hash(&limit_seeds[0], &reqs[k].u.authorise.limits_hash) < 0)
		die("hash", "cp", -EINVAL);
	reqs[k++].u.authorise.lifetime_s = 43200;
	reqs[k++].op = NL_CP_STOP_SESSION;
	reqs[k].op = NL_CP_SET_ZONE;
	reqs[k++].u.zone = NL_ZONE_NOSE;
	reqs[k].op = NL_CP_LOCK;
	reqs[k++].u.reason = NL_LOCK_REASON_POLICY;
	reqs[k].op = NL_CP_UNLOCK;
	reqs[k++].u.reason = NL_LOCK_REASON_OPERATOR;
	reqs[k].op = NL_CP_ACK_RECORDS;
	reqs[k].u.ack.store_epoch = 0x11223344;
	reqs[k++].u.ack.seq = 981;
	reqs[k].op = NL_CP_SET_TIME;
	reqs[k++].u.pen_time = 800000000;
	reqs[k].op = NL_CP_CLAMP;
	reqs[k].u.clamp.zone = NL_ZONE_NONE;
	reqs[k++].u.clamp.cap_um = 1000;
	reqs[k].op = NL_CP_CLAMP;
	reqs[k].u.clamp.zone = NL_ZONE_CHIN;
	reqs[k++].u.clamp.cap_um = 750;
	reqs[k].op = NL_CP_SET_LIVE_RATE;
	reqs[k++].u.live_rate_hz = 20;

	for (unsigned i = 0; i < k; i++) {
		snprintf(name, sizeof(name), "valid-%02u-%s", i, nl_cp_op_name(reqs[i].op));
		n = check_len(name, nl_cp_req_encode(&reqs[i], buf, sizeof(buf)));
		check_ok(name, nl_cp_req_decode(buf, n, &r));
		put("cp_req", name, buf, n);
	}
	put_variants("cp_req", "live-rate", buf, n);
	buf[1] = 21;
	fix_crc(buf, n);
	put("cp_req", "range-live-rate", buf, n);
	buf[0] = NL_CP_OP_END;
	fix_crc(buf, n);
	put("cp_req", "unknown-op", buf, n);
	n = check_len("a", nl_cp_req_encode(&reqs[2], buf, sizeof(buf)));
	le32(buf + 1, 0); /* AUTHORISE session 0 */
	fix_crc(buf, n);
	put("cp_req", "range-session-0", buf, n);
	n = check_len("z", nl_cp_req_encode(&reqs[4], buf, sizeof(buf)));
	buf[1] = NL_ZONE_COUNT;
	fix_crc(buf, n);
	put("cp_req", "range-zone", buf, n);
}

static void gen_cp_rsp(void)
{
	static const struct nl_cp_rsp seeds[] = {
		{NL_CP_SET_LIMITS, NL_CP_SUCCESS, 0x9abcdef0},
		{NL_CP_AUTHORISE, NL_CP_HASH_MISMATCH, 0},
		{NL_CP_ACK_RECORDS, NL_CP_EPOCH_MISMATCH, 0},
		{NL_CP_CLAMP, NL_CP_ABOVE_FACTORY, 0},
		{NL_CP_SET_ZONE, NL_CP_LOCKED, 0},
	};
	uint8_t buf[16];
	struct nl_cp_rsp r;
	char name[64];
	size_t n = 0;

	for (size_t i = 0; i < sizeof(seeds) / sizeof(seeds[0]); i++) {
		snprintf(name, sizeof(name), "valid-%zu", i);
		n = check_len(name, nl_cp_rsp_encode(&seeds[i], buf, sizeof(buf)));
		check_ok(name, nl_cp_rsp_decode(buf, n, &r));
		put("cp_rsp", name, buf, n);
	}
	put_variants("cp_rsp", "last", buf, n);
	buf[0] = NL_CP_SET_LIMITS; /* not a response opcode */
	fix_crc(buf, n);
	put("cp_rsp", "not-response", buf, n);
	buf[0] = NL_CP_RESPONSE;
	buf[2] = NL_CP_RESULT_END;
	fix_crc(buf, n);
	put("cp_rsp", "range-result", buf, n);
}

/* ---- RACP ------------------------------------------------------------- */

static void gen_racp_req(void)
{
	static const struct nl_racp_req seeds[] = {
		{NL_RACP_REPORT, NL_RACP_ALL, 0, 0},
		{NL_RACP_REPORT, NL_RACP_GE, 982, 0},
		{NL_RACP_REPORT, NL_RACP_LE, 50, 0},
		{NL_RACP_REPORT, NL_RACP_RANGE, 10, 20},
		{NL_RACP_REPORT, NL_RACP_FIRST, 0, 0},
		{NL_RACP_REPORT, NL_RACP_LAST, 0, 0},
		{NL_RACP_REPORT_NUMBER, NL_RACP_ALL, 0, 0},
		{NL_RACP_REPORT_NUMBER, NL_RACP_GE, 1, 0},
		{NL_RACP_ABORT, NL_RACP_NULL, 0, 0},
		{NL_RACP_DELETE, NL_RACP_ALL, 0, 0},
	};
	uint8_t buf[24];
	struct nl_racp_req r;
	char name[64];
	size_t n = 0;

	for (size_t i = 0; i < sizeof(seeds) / sizeof(seeds[0]); i++) {
		snprintf(name, sizeof(name), "valid-%zu-%s-%s", i, nl_racp_op_name(seeds[i].op),
			 nl_racp_operator_name(seeds[i].oper));
		n = check_len(name, nl_racp_req_encode(&seeds[i], buf, sizeof(buf)));
		check_ok(name, nl_racp_req_decode(buf, n, &r));
		put("racp_req", name, buf, n);
	}
	n = check_len("r", nl_racp_req_encode(&seeds[3], buf, sizeof(buf)));
	put_variants("racp_req", "range", buf, n);
	le32(buf + 3, 30); /* a > b */
	fix_crc(buf, n);
	put("racp_req", "range-reversed", buf, n);
	buf[2] = 0x02; /* unknown filter type */
	le32(buf + 3, 10);
	fix_crc(buf, n);
	put("racp_req", "bad-filter-type", buf, n);
	buf[0] = NL_RACP_NUMBER_RESPONSE; /* a response opcode in a request */
	buf[2] = NL_RACP_FILTER_SEQ;
	fix_crc(buf, n);
	put("racp_req", "response-op", buf, n);
	n = check_len("r", nl_racp_req_encode(&seeds[0], buf, sizeof(buf)));
	buf[1] = NL_RACP_OPERATOR_END;
	fix_crc(buf, n);
	put("racp_req", "bad-operator", buf, n);
}

static void gen_racp_rsp(void)
{
	static const struct nl_racp_rsp seeds[] = {
		{NL_RACP_NUMBER_RESPONSE, 0, 0, 0},
		{NL_RACP_NUMBER_RESPONSE, 1800, 0, 0},
		{NL_RACP_RESPONSE_CODE, 0, NL_RACP_REPORT, NL_RACP_SUCCESS},
		{NL_RACP_RESPONSE_CODE, 0, NL_RACP_REPORT, NL_RACP_NO_RECORDS},
		{NL_RACP_RESPONSE_CODE, 0, NL_RACP_DELETE, NL_RACP_OP_NOT_SUPPORTED},
		{NL_RACP_RESPONSE_CODE, 0, NL_RACP_ABORT, NL_RACP_ABORT_FAILED},
	};
	uint8_t buf[24];
	struct nl_racp_rsp r;
	char name[64];
	size_t n = 0;

	for (size_t i = 0; i < sizeof(seeds) / sizeof(seeds[0]); i++) {
		snprintf(name, sizeof(name), "valid-%zu", i);
		n = check_len(name, nl_racp_rsp_encode(&seeds[i], buf, sizeof(buf)));
		check_ok(name, nl_racp_rsp_decode(buf, n, &r));
		put("racp_rsp", name, buf, n);
	}
	put_variants("racp_rsp", "code", buf, n);
	buf[3] = NL_RACP_CODE_END;
	fix_crc(buf, n);
	put("racp_rsp", "range-code", buf, n);
	n = check_len("r", nl_racp_rsp_encode(&seeds[1], buf, sizeof(buf)));
	put_variants("racp_rsp", "number", buf, n);
}

/* ---- Segment streams -------------------------------------------------- */

struct stream {
	uint8_t buf[8192];
	size_t len;
};

/* Appends the segments of one record as length-prefixed chunks; skip_at
 * drops that segment index, dup_at sends that one twice (-1: none). */
static void stream_record(struct stream *s, struct nl_seg_tx *tx, const uint8_t *rec,
			  size_t len, uint16_t mtu, int skip_at, int dup_at)
{
	uint8_t seg[600];
	int n, i = 0;

	if (nl_seg_tx_start(tx, rec, len, mtu) < 0)
		die("seg_tx_start", "", -EINVAL);
	while ((n = nl_seg_tx_next(tx, seg, sizeof(seg))) > 0) {
		for (int copies = (i == dup_at) ? 2 : 1; copies > 0; copies--) {
			if (i == skip_at)
				break;
			if (n >= 0xFF || s->len + 1 + (size_t)n > sizeof(s->buf))
				die("stream", "too long", -E2BIG);
			s->buf[s->len++] = (uint8_t)n;
			memcpy(s->buf + s->len, seg, (size_t)n);
			s->len += (size_t)n;
		}
		i++;
	}
	if (n < 0)
		die("seg_tx_next", "", n);
}

static void gen_seg_rx(void)
{
	struct nl_record rec[NREC];
	uint8_t enc[NREC][NL_RECORD_MAX];
	size_t len[NREC];
	struct nl_seg_tx tx;
	struct stream s;

	make_records(rec);
	for (unsigned i = 0; i < NREC; i++)
		len[i] = check_len("seg", nl_record_encode(&rec[i], enc[i], sizeof(enc[i])));

	/* Each record alone at the minimum MTU (several segments each). */
	for (unsigned i = 0; i < NREC; i++) {
		char name[64];

		s.len = 0;
		nl_seg_tx_init(&tx);
		stream_record(&s, &tx, enc[i], len[i], NL_ATT_MTU_MIN, -1, -1);
		snprintf(name, sizeof(name), "valid-mtu23-%u", i);
		put("seg_rx", name, s.buf, s.len);
	}
	/* All records back to back, one segment each at a large MTU. */
	s.len = 0;
	nl_seg_tx_init(&tx);
	for (unsigned i = 0; i < NREC; i++)
		stream_record(&s, &tx, enc[i], len[i], 185, -1, -1);
	put("seg_rx", "valid-all-mtu185", s.buf, s.len);

	/* Counter wrap: 70 single-segment records. */
	s.len = 0;
	nl_seg_tx_init(&tx);
	for (unsigned i = 0; i < 70; i++)
		stream_record(&s, &tx, enc[5], len[5], 185, -1, -1);
	put("seg_rx", "valid-counter-wrap", s.buf, s.len);

	/* A lost segment, then a clean record. */
	s.len = 0;
	nl_seg_tx_init(&tx);
	stream_record(&s, &tx, enc[7], len[7], NL_ATT_MTU_MIN, 1, -1);
	stream_record(&s, &tx, enc[0], len[0], NL_ATT_MTU_MIN, -1, -1);
	put("seg_rx", "gap-then-valid", s.buf, s.len);

	/* A duplicated segment, then a clean record. */
	s.len = 0;
	nl_seg_tx_init(&tx);
	stream_record(&s, &tx, enc[1], len[1], NL_ATT_MTU_MIN, -1, 1);
	stream_record(&s, &tx, enc[3], len[3], NL_ATT_MTU_MIN, -1, -1);
	put("seg_rx", "dup-then-valid", s.buf, s.len);

	/* The first segment lost: continuations with nothing open. */
	s.len = 0;
	nl_seg_tx_init(&tx);
	stream_record(&s, &tx, enc[8], len[8], NL_ATT_MTU_MIN, 0, -1);
	put("seg_rx", "no-first", s.buf, s.len);

	/* Re-subscription half way: reset, counter back to 0. */
	s.len = 0;
	nl_seg_tx_init(&tx);
	stream_record(&s, &tx, enc[2], len[2], NL_ATT_MTU_MIN, -1, -1);
	s.buf[s.len++] = 0xFF;
	nl_seg_tx_init(&tx);
	stream_record(&s, &tx, enc[4], len[4], NL_ATT_MTU_MIN, -1, -1);
	put("seg_rx", "resubscribe", s.buf, s.len);

	/* Empty and header-only notifications. */
	{
		static const uint8_t odd[] = {0x00, 0x01, 0x03, 0x01, 0x07};

		put("seg_rx", "empty-segments", odd, sizeof(odd));
	}
	/* Over NL_RECORD_MAX: a FIRST and continuations that never end. */
	s.len = 0;
	for (unsigned i = 0; i < 4; i++) {
		s.buf[s.len++] = 200;
		s.buf[s.len] = (uint8_t)((i << 2) | (i == 0 ? NL_SEG_FIRST : 0));
		memset(s.buf + s.len + 1, 0x55, 199);
		s.len += 200;
	}
	put("seg_rx", "too-big", s.buf, s.len);
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: %s OUTDIR\n", argv[0]);
		return 2;
	}
	out_dir = argv[1];
	make_dir(out_dir);
	gen_feature();
	gen_live();
	gen_pen_status();
	gen_cartridge_info();
	gen_limit_set();
	gen_active_limits();
	gen_record();
	gen_cp_req();
	gen_cp_rsp();
	gen_racp_req();
	gen_racp_rsp();
	gen_seg_rx();
	printf("wrote %u files under %s\n", written, out_dir);
	return 0;
}
