/* SPDX-License-Identifier: MIT */
/*
 * Characteristic values of pdu.h. Every decoder parses into a local struct,
 * validates it with the same check the encoder uses, and only then copies
 * it out, so ret_* is untouched on failure and encode(decode(x)) == x for
 * every accepted x (reserved flag bits are dropped on decode).
 */
#include <limits.h>
#include <string.h>

#include "needlelink/crc.h"
#include "needlelink/pdu.h"
#include "needlelink/record.h"
#include "nl-internal.h"

/* ---- CRC framing ------------------------------------------------------- */

int nl_pdu_check_crc(const uint8_t *buf, size_t len)
{
	uint16_t want;

	if (!buf || len < 3)
		return -ENODATA;
	want = (uint16_t)(buf[len - 2] | (uint16_t)buf[len - 1] << 8);
	return nl_crc16(buf, len - 2) == want ? 0 : -EBADMSG;
}

int nl_pdu_put_crc(uint8_t *buf, size_t len, size_t size)
{
	uint16_t crc;

	if (len > (size_t)INT_MAX - 2 || size < len + 2)
		return -ENOBUFS;
	crc = nl_crc16(buf, len);
	buf[len] = (uint8_t)crc;
	buf[len + 1] = (uint8_t)(crc >> 8);
	return (int)len + 2;
}

int nl_pdu_open(const uint8_t *buf, size_t len, struct nl_rd *ret_rd)
{
	int r = nl_pdu_check_crc(buf, len);

	if (r < 0)
		return r;
	*ret_rd = nl_rd_init(buf, len - 2);
	return 0;
}

int nl_pdu_close(struct nl_wr *w)
{
	if (w->err)
		return -ENOBUFS;
	return nl_pdu_put_crc(w->p, w->off, w->size);
}

/* ---- Lot --------------------------------------------------------------- */

static bool lot_char_ok(char c)
{
	return c >= 0x20 && c <= 0x7E;
}

int nl_lot_check(const char *lot)
{
	size_t n = 0;

	while (n <= NL_LOT_LEN && lot[n] != '\0')
		n++;
	if (n > NL_LOT_LEN)
		return -ERANGE; /* no terminator within the array */
	for (size_t i = 0; i < n; i++)
		if (!lot_char_ok(lot[i]))
			return -ERANGE;
	return 0;
}

void nl_lot_put(struct nl_wr *w, const char *lot)
{
	uint8_t raw[NL_LOT_LEN] = { 0 };

	for (size_t i = 0; i < NL_LOT_LEN && lot[i] != '\0'; i++)
		raw[i] = (uint8_t)lot[i];
	nl_wr_bytes(w, raw, sizeof(raw));
}

int nl_lot_get(struct nl_rd *r, char *ret_lot)
{
	uint8_t raw[NL_LOT_LEN];
	size_t n = 0;

	nl_rd_bytes(r, raw, sizeof(raw));
	if (r->err)
		return -ENODATA;
	while (n < NL_LOT_LEN && raw[n] != 0)
		n++;
	for (size_t i = 0; i < n; i++)
		if (!lot_char_ok((char)raw[i]))
			return -ERANGE;
	/* NUL padding: once the string ends, every byte is NUL. */
	for (size_t i = n; i < NL_LOT_LEN; i++)
		if (raw[i] != 0)
			return -ERANGE;
	memset(ret_lot, 0, NL_LOT_LEN + 1);
	memcpy(ret_lot, raw, n);
	return 0;
}

/* ---- Feature ----------------------------------------------------------- */

static int feature_check(const struct nl_feature *f)
{
	if (f->proto_major != NL_PROTO_MAJOR)
		return -ERANGE;
	if (f->depth_max_um < 1 || f->depth_max_um > NL_DEPTH_MAX_UM)
		return -ERANGE;
	if (f->depth_min_um > f->depth_max_um)
		return -ERANGE;
	if (f->depth_step_um < 1 || f->depth_step_um > f->depth_max_um)
		return -ERANGE;
	if (f->speed_max_hz < 1 || f->speed_max_hz > NL_SPEED_MAX_HZ)
		return -ERANGE;
	if (f->speed_min_hz > f->speed_max_hz)
		return -ERANGE;
	if (f->store_capacity < 1)
		return -ERANGE;
	if (f->live_rate_hz < NL_LIVE_RATE_MIN_HZ || f->live_rate_hz > NL_LIVE_RATE_MAX_HZ)
		return -ERANGE;
	return 0;
}

int nl_feature_encode(const struct nl_feature *f, uint8_t *buf, size_t size)
{
	struct nl_wr w = nl_wr_init(buf, size);

	if (f->flags & ~NL_FEAT_ALL)
		return -ERANGE;
	if (feature_check(f) < 0)
		return -ERANGE;
	nl_wr_u8(&w, f->proto_major);
	nl_wr_u8(&w, f->proto_minor);
	nl_wr_u16(&w, f->flags);
	nl_wr_u16(&w, f->depth_min_um);
	nl_wr_u16(&w, f->depth_max_um);
	nl_wr_u16(&w, f->depth_step_um);
	nl_wr_u16(&w, f->speed_min_hz);
	nl_wr_u16(&w, f->speed_max_hz);
	nl_wr_u16(&w, f->store_capacity);
	nl_wr_u32(&w, f->store_epoch);
	nl_wr_u8(&w, f->live_rate_hz);
	return nl_pdu_close(&w);
}

int nl_feature_decode(const uint8_t *buf, size_t len, struct nl_feature *ret)
{
	struct nl_feature f;
	struct nl_rd r;
	int e = nl_pdu_open(buf, len, &r);

	if (e < 0)
		return e;
	f.proto_major = nl_rd_u8(&r);
	f.proto_minor = nl_rd_u8(&r);
	f.flags = nl_rd_u16(&r) & NL_FEAT_ALL;
	f.depth_min_um = nl_rd_u16(&r);
	f.depth_max_um = nl_rd_u16(&r);
	f.depth_step_um = nl_rd_u16(&r);
	f.speed_min_hz = nl_rd_u16(&r);
	f.speed_max_hz = nl_rd_u16(&r);
	f.store_capacity = nl_rd_u16(&r);
	f.store_epoch = nl_rd_u32(&r);
	f.live_rate_hz = nl_rd_u8(&r);
	if (r.err)
		return -ENODATA;
	e = feature_check(&f);
	if (e < 0)
		return e;
	*ret = f;
	return 0;
}

/* ---- Live Status ------------------------------------------------------- */

static bool depth_ok(uint16_t um)
{
	return um <= NL_DEPTH_MAX_UM;
}

static bool depth_or_unknown_ok(uint16_t um)
{
	return um <= NL_DEPTH_MAX_UM || um == NL_DEPTH_UNKNOWN;
}

static int live_check(const struct nl_live *l)
{
	if (l->state >= NL_PEN_STATE_COUNT)
		return -ERANGE;
	if (l->zone >= NL_ZONE_COUNT)
		return -ERANGE;
	if (!depth_ok(l->depth_set_um) || !depth_or_unknown_ok(l->depth_measured_um) ||
	    !depth_ok(l->depth_cap_um))
		return -ERANGE;
	if (l->speed_hz > NL_SPEED_MAX_HZ)
		return -ERANGE;
	if (l->battery_pct > NL_BATTERY_MAX_PCT)
		return -ERANGE;
	return 0;
}

int nl_live_encode(const struct nl_live *l, uint8_t *buf, size_t size)
{
	struct nl_wr w = nl_wr_init(buf, size);

	if ((l->flags & ~NL_LIVE_ALL) || live_check(l) < 0)
		return -ERANGE;
	nl_wr_u8(&w, l->state);
	nl_wr_u8(&w, l->flags);
	nl_wr_u8(&w, l->zone);
	nl_wr_u16(&w, l->depth_set_um);
	nl_wr_u16(&w, l->depth_measured_um);
	nl_wr_u16(&w, l->depth_cap_um);
	nl_wr_u16(&w, l->speed_hz);
	nl_wr_u16(&w, l->pass);
	nl_wr_u32(&w, l->needle_on_ms);
	nl_wr_u32(&w, l->session_id);
	nl_wr_u8(&w, l->battery_pct);
	nl_wr_u16(&w, l->sample);
	return nl_pdu_close(&w);
}

int nl_live_decode(const uint8_t *buf, size_t len, struct nl_live *ret)
{
	struct nl_live l;
	struct nl_rd r;
	int e = nl_pdu_open(buf, len, &r);

	if (e < 0)
		return e;
	l.state = nl_rd_u8(&r);
	l.flags = nl_rd_u8(&r) & NL_LIVE_ALL;
	l.zone = nl_rd_u8(&r);
	l.depth_set_um = nl_rd_u16(&r);
	l.depth_measured_um = nl_rd_u16(&r);
	l.depth_cap_um = nl_rd_u16(&r);
	l.speed_hz = nl_rd_u16(&r);
	l.pass = nl_rd_u16(&r);
	l.needle_on_ms = nl_rd_u32(&r);
	l.session_id = nl_rd_u32(&r);
	l.battery_pct = nl_rd_u8(&r);
	l.sample = nl_rd_u16(&r);
	if (r.err)
		return -ENODATA;
	e = live_check(&l);
	if (e < 0)
		return e;
	*ret = l;
	return 0;
}

/* ---- Pen Status -------------------------------------------------------- */

static int pen_status_check(const struct nl_pen_status *s)
{
	if (s->state >= NL_PEN_STATE_COUNT)
		return -ERANGE;
	if (s->fault_code >= NL_FAULT_CODE_END) /* 0: none, else a fault code */
		return -ERANGE;
	if (s->store_capacity < 1 || s->store_used > s->store_capacity)
		return -ERANGE;
	if (s->battery_pct > NL_BATTERY_MAX_PCT)
		return -ERANGE;
	return 0;
}

int nl_pen_status_encode(const struct nl_pen_status *s, uint8_t *buf, size_t size)
{
	struct nl_wr w = nl_wr_init(buf, size);

	if ((s->flags & ~(uint32_t)NL_STATUS_ALL) || pen_status_check(s) < 0)
		return -ERANGE;
	nl_wr_u32(&w, s->flags);
	nl_wr_u8(&w, s->state);
	nl_wr_u16(&w, s->fault_code);
	nl_wr_u16(&w, s->store_used);
	nl_wr_u16(&w, s->store_capacity);
	nl_wr_u32(&w, s->store_epoch);
	nl_wr_u32(&w, s->last_seq);
	nl_wr_u32(&w, s->pen_time);
	nl_wr_u8(&w, s->battery_pct);
	return nl_pdu_close(&w);
}

int nl_pen_status_decode(const uint8_t *buf, size_t len, struct nl_pen_status *ret)
{
	struct nl_pen_status s;
	struct nl_rd r;
	int e = nl_pdu_open(buf, len, &r);

	if (e < 0)
		return e;
	s.flags = nl_rd_u32(&r) & NL_STATUS_ALL;
	s.state = nl_rd_u8(&r);
	s.fault_code = nl_rd_u16(&r);
	s.store_used = nl_rd_u16(&r);
	s.store_capacity = nl_rd_u16(&r);
	s.store_epoch = nl_rd_u32(&r);
	s.last_seq = nl_rd_u32(&r);
	s.pen_time = nl_rd_u32(&r);
	s.battery_pct = nl_rd_u8(&r);
	if (r.err)
		return -ENODATA;
	e = pen_status_check(&s);
	if (e < 0)
		return e;
	*ret = s;
	return 0;
}

/* ---- Cartridge Info ---------------------------------------------------- */

static int cartridge_info_check(const struct nl_cartridge_info *c)
{
	static const uint8_t zero_uid[NL_CARTRIDGE_UID_LEN];

	if (c->state >= NL_CARTRIDGE_STATE_COUNT)
		return -ERANGE;
	if (nl_lot_check(c->lot) < 0)
		return -ERANGE;
	if (c->needle_length_um > NL_DEPTH_MAX_UM)
		return -ERANGE;
	if (c->state == NL_CARTRIDGE_NONE) {
		/* docs/protocol.md 3.4: with no cartridge every other field is 0. */
		if (memcmp(c->uid, zero_uid, sizeof(zero_uid)) != 0 || c->needle_count != 0 ||
		    c->lot[0] != '\0' || c->expiry != 0 || c->needle_length_um != 0 ||
		    c->first_use != 0 || c->run_ms != 0)
			return -ERANGE;
	} else if (c->needle_count < 1 || c->needle_count > NL_NEEDLE_COUNT_MAX) {
		return -ERANGE;
	}
	return 0;
}

int nl_cartridge_info_encode(const struct nl_cartridge_info *c, uint8_t *buf, size_t size)
{
	struct nl_wr w = nl_wr_init(buf, size);

	if (cartridge_info_check(c) < 0)
		return -ERANGE;
	nl_wr_u8(&w, c->state);
	nl_wr_bytes(&w, c->uid, NL_CARTRIDGE_UID_LEN);
	nl_lot_put(&w, c->lot);
	nl_wr_u32(&w, c->expiry);
	nl_wr_u8(&w, c->needle_count);
	nl_wr_u16(&w, c->needle_length_um);
	nl_wr_u32(&w, c->first_use);
	nl_wr_u32(&w, c->run_ms);
	return nl_pdu_close(&w);
}

int nl_cartridge_info_decode(const uint8_t *buf, size_t len, struct nl_cartridge_info *ret)
{
	struct nl_cartridge_info c;
	struct nl_rd r;
	int e = nl_pdu_open(buf, len, &r);
	int lot_err;

	if (e < 0)
		return e;
	c.state = nl_rd_u8(&r);
	nl_rd_bytes(&r, c.uid, NL_CARTRIDGE_UID_LEN);
	lot_err = nl_lot_get(&r, c.lot);
	c.expiry = nl_rd_u32(&r);
	c.needle_count = nl_rd_u8(&r);
	c.needle_length_um = nl_rd_u16(&r);
	c.first_use = nl_rd_u32(&r);
	c.run_ms = nl_rd_u32(&r);
	if (r.err)
		return -ENODATA; /* truncation wins over a bad lot */
	if (lot_err < 0)
		return lot_err;
	e = cartridge_info_check(&c);
	if (e < 0)
		return e;
	*ret = c;
	return 0;
}

/* ---- Limit set --------------------------------------------------------- */

static bool pass_pair_ok(uint8_t warn, uint8_t lock)
{
	return !(warn && lock && lock < warn);
}

int nl_limit_set_check(const struct nl_limit_set *l)
{
	unsigned prev = NL_ZONE_NONE;

	if (l->format != 1 || l->flags != 0)
		return -ERANGE;
	if (l->lifetime_s < 1 || l->lifetime_s > NL_LIFETIME_MAX_S)
		return -ERANGE;
	if (l->depth_cap_um < 1 || l->depth_cap_um > NL_DEPTH_MAX_UM)
		return -ERANGE;
	if (l->needle_on_warn_s && l->needle_on_lock_s &&
	    l->needle_on_warn_s > l->needle_on_lock_s)
		return -ERANGE;
	if (!pass_pair_ok(l->pass_warn, l->pass_lock))
		return -ERANGE;
	if (l->zone_count > NL_LIMIT_ZONES_MAX)
		return -ERANGE;
	for (unsigned i = 0; i < l->zone_count; i++) {
		const struct nl_zone_limit *z = &l->zones[i];

		/* Strictly ascending from NONE also rules out zone 0. */
		if (!nl_zone_valid(z->zone) || z->zone <= prev)
			return -ERANGE;
		if (z->depth_cap_um < 1 || z->depth_cap_um > NL_DEPTH_MAX_UM)
			return -ERANGE;
		if (!pass_pair_ok(z->pass_warn, z->pass_lock))
			return -ERANGE;
		prev = z->zone;
	}
	return 0;
}

size_t nl_limit_set_len(const struct nl_limit_set *l)
{
	return NL_LIMIT_SET_HDR_LEN + 5u * l->zone_count;
}

void nl_limit_set_put(struct nl_wr *w, const struct nl_limit_set *l)
{
	nl_wr_u8(w, l->format);
	nl_wr_u8(w, l->flags);
	nl_wr_u32(w, l->lifetime_s);
	nl_wr_u16(w, l->depth_cap_um);
	nl_wr_u16(w, l->needle_on_warn_s);
	nl_wr_u16(w, l->needle_on_lock_s);
	nl_wr_u8(w, l->pass_warn);
	nl_wr_u8(w, l->pass_lock);
	nl_wr_u8(w, l->zone_count);
	for (unsigned i = 0; i < l->zone_count && i < NL_LIMIT_ZONES_MAX; i++) {
		nl_wr_u8(w, l->zones[i].zone);
		nl_wr_u16(w, l->zones[i].depth_cap_um);
		nl_wr_u8(w, l->zones[i].pass_warn);
		nl_wr_u8(w, l->zones[i].pass_lock);
	}
}

int nl_limit_set_get(struct nl_rd *r, struct nl_limit_set *ret)
{
	struct nl_limit_set l;

	memset(&l, 0, sizeof(l));
	l.format = nl_rd_u8(r);
	l.flags = nl_rd_u8(r);
	l.lifetime_s = nl_rd_u32(r);
	l.depth_cap_um = nl_rd_u16(r);
	l.needle_on_warn_s = nl_rd_u16(r);
	l.needle_on_lock_s = nl_rd_u16(r);
	l.pass_warn = nl_rd_u8(r);
	l.pass_lock = nl_rd_u8(r);
	l.zone_count = nl_rd_u8(r);
	if (r->err)
		return -ENODATA;
	if (l.zone_count > NL_LIMIT_ZONES_MAX)
		return -ERANGE;
	for (unsigned i = 0; i < l.zone_count; i++) {
		l.zones[i].zone = nl_rd_u8(r);
		l.zones[i].depth_cap_um = nl_rd_u16(r);
		l.zones[i].pass_warn = nl_rd_u8(r);
		l.zones[i].pass_lock = nl_rd_u8(r);
	}
	if (r->err)
		return -ENODATA;
	if (nl_limit_set_check(&l) < 0)
		return -ERANGE;
	*ret = l;
	return 0;
}

int nl_limit_set_encode(const struct nl_limit_set *l, uint8_t *buf, size_t size)
{
	struct nl_wr w = nl_wr_init(buf, size);

	if (nl_limit_set_check(l) < 0)
		return -ERANGE;
	nl_limit_set_put(&w, l);
	return w.err ? -ENOBUFS : (int)w.off;
}

int nl_limit_set_decode(const uint8_t *buf, size_t len, struct nl_limit_set *ret)
{
	struct nl_limit_set l;
	struct nl_rd r;
	int e;

	if (!buf)
		return -ENODATA;
	r = nl_rd_init(buf, len);
	e = nl_limit_set_get(&r, &l);
	if (e < 0)
		return e;
	if (nl_rd_left(&r) != 0)
		return -ERANGE; /* not canonical: trailing bytes */
	*ret = l;
	return 0;
}

int nl_limit_set_hash(const struct nl_limit_set *l, uint32_t *ret_hash)
{
	uint8_t raw[NL_LIMIT_SET_MAX];
	int n = nl_limit_set_encode(l, raw, sizeof(raw));

	if (n < 0)
		return n;
	*ret_hash = nl_fnv1a32(raw, (size_t)n);
	return 0;
}

const struct nl_zone_limit *nl_limit_set_find(const struct nl_limit_set *l, unsigned zone)
{
	if (zone == NL_ZONE_NONE)
		return NULL;
	for (unsigned i = 0; i < l->zone_count && i < NL_LIMIT_ZONES_MAX; i++)
		if (l->zones[i].zone == zone)
			return &l->zones[i];
	return NULL;
}

uint16_t nl_limit_set_zone_cap(const struct nl_limit_set *l, unsigned zone)
{
	const struct nl_zone_limit *z = nl_limit_set_find(l, zone);

	return z ? z->depth_cap_um : l->depth_cap_um;
}

/* ---- Active Limits ----------------------------------------------------- */

static int active_limits_check(const struct nl_active_limits *a)
{
	uint32_t h;

	if (a->source >= NL_LIMIT_SOURCE_COUNT)
		return -ERANGE;
	if (nl_limit_set_hash(&a->set, &h) < 0)
		return -ERANGE;
	/* Only a session set has a lifetime left. AUTHORISE restarts it with
	 * its own lifetime_s, so it is bounded by the maximum, not by the set. */
	if (a->source == NL_LIMIT_SOURCE_SESSION) {
		if (a->remaining_s > NL_LIFETIME_MAX_S)
			return -ERANGE;
	} else if (a->remaining_s != 0) {
		return -ERANGE;
	}
	return 0;
}

int nl_active_limits_encode(const struct nl_active_limits *a, uint8_t *buf, size_t size)
{
	struct nl_wr w = nl_wr_init(buf, size);
	uint32_t h;

	if (active_limits_check(a) < 0)
		return -ERANGE;
	/* The hash is part of the value: refuse to write one the peer would
	 * reject, rather than silently replacing the caller's. */
	if (nl_limit_set_hash(&a->set, &h) < 0 || h != a->limits_hash)
		return -ERANGE;
	nl_wr_u8(&w, a->source);
	nl_wr_u32(&w, a->limits_hash);
	nl_wr_u32(&w, a->remaining_s);
	nl_limit_set_put(&w, &a->set);
	return nl_pdu_close(&w);
}

int nl_active_limits_decode(const uint8_t *buf, size_t len, struct nl_active_limits *ret)
{
	struct nl_active_limits a;
	struct nl_rd r;
	size_t set_off;
	int e = nl_pdu_open(buf, len, &r);

	if (e < 0)
		return e;
	memset(&a, 0, sizeof(a));
	a.source = nl_rd_u8(&r);
	a.limits_hash = nl_rd_u32(&r);
	a.remaining_s = nl_rd_u32(&r);
	if (r.err)
		return -ENODATA;
	set_off = r.off;
	e = nl_limit_set_get(&r, &a.set);
	if (e < 0)
		return e;
	/* Hash the bytes as received: they are canonical once decoded. */
	if (nl_fnv1a32(buf + set_off, r.off - set_off) != a.limits_hash)
		return -EBADMSG;
	e = active_limits_check(&a);
	if (e < 0)
		return e;
	*ret = a;
	return 0;
}
