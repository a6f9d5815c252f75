/* SPDX-License-Identifier: MIT */
/* The pen's record store; the on-flash layout and write order are in
 * sim/store.h. Portable C11: flash comes through struct sim_platform. */
#include "sim/store.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "needlelink/crc.h"

enum frame_kind {
	FRAME_HEADER = 0xA1,
	FRAME_COMMIT = 0xA2,
	FRAME_RECORD = 0xB1,
	FRAME_ACK = 0xB2,
	FRAME_CARTRIDGE = 0xB3,
	FRAME_STATE = 0xB4,
};

#define STORE_MAGIC 0x4E4C5354u /* "NLST" */
#define FRAME_OVERHEAD 5u
#define FRAME_MAX (FRAME_OVERHEAD + NL_RECORD_MAX)
#define HEADER_LEN 24u

struct slot {
	uint32_t seq;
	uint32_t off; /* frame offset in the active region */
	uint16_t len; /* record length */
};

struct sim_store {
	struct sim_platform plat;
	uint16_t capacity;
	uint32_t region_bytes;

	unsigned active;
	uint32_t gen;
	uint32_t end; /* append offset in the active region */
	bool dirty; /* a failed write may have left garbage at end */
	bool torn; /* boot cut a torn tail */

	uint32_t epoch;
	uint32_t next_seq;
	uint32_t ack_seq;
	uint32_t open_session;

	struct slot *slots;
	struct slot *spare; /* compaction target offsets */
	unsigned n;

	uint8_t carts[SIM_STORE_CARTRIDGES_MAX][NL_CARTRIDGE_UID_LEN];
	unsigned ncarts, cart_next; /* ring once full */

	uint8_t state[SIM_STORE_STATE_MAX];
	size_t state_len;

	uint8_t frame[FRAME_MAX];
};

static void put_u32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
	p[2] = (uint8_t)(v >> 16);
	p[3] = (uint8_t)(v >> 24);
}

static uint32_t get_u32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* Builds kind+len+payload+CRC in s->frame (payload may already be at
 * s->frame + 3). Returns the frame length. */
static size_t frame_build(struct sim_store *s, uint8_t kind, const uint8_t *payload, size_t len)
{
	uint16_t crc;

	s->frame[0] = kind;
	s->frame[1] = (uint8_t)len;
	s->frame[2] = (uint8_t)(len >> 8);
	if (payload && payload != s->frame + 3)
		memmove(s->frame + 3, payload, len);
	crc = nl_crc16(s->frame, len + 3);
	s->frame[len + 3] = (uint8_t)crc;
	s->frame[len + 4] = (uint8_t)(crc >> 8);
	return len + FRAME_OVERHEAD;
}

/* Reads the frame at off of region into s->frame. Returns its total length,
 * 0 at a clean end of the region, -EBADMSG for a torn or corrupt frame. */
static int frame_read(struct sim_store *s, unsigned region, uint32_t off)
{
	size_t len;
	uint16_t crc;
	int r;

	r = s->plat.storage_read(s->plat.ctx, region, off, s->frame, 3);
	if (r < 0)
		return r;
	if (r == 0)
		return 0;
	if (r < 3)
		return -EBADMSG;
	len = (size_t)s->frame[1] | (size_t)s->frame[2] << 8;
	if (len > NL_RECORD_MAX)
		return -EBADMSG;
	r = s->plat.storage_read(s->plat.ctx, region, off + 3, s->frame + 3, len + 2);
	if (r < 0)
		return r;
	if ((size_t)r < len + 2)
		return -EBADMSG;
	crc = (uint16_t)(s->frame[len + 3] | s->frame[len + 4] << 8);
	if (nl_crc16(s->frame, len + 3) != crc)
		return -EBADMSG;
	return (int)(len + FRAME_OVERHEAD);
}

static int region_write(struct sim_store *s, unsigned region, uint32_t *off, size_t flen)
{
	int r;

	if (*off + flen > s->region_bytes)
		return -ENOSPC;
	r = s->plat.storage_append(s->plat.ctx, region, s->frame, flen);
	if (r < 0)
		return r;
	*off += (uint32_t)flen;
	return 0;
}

static bool cart_known(const struct sim_store *s, const uint8_t *uid)
{
	for (unsigned i = 0; i < s->ncarts; i++)
		if (memcmp(s->carts[i], uid, NL_CARTRIDGE_UID_LEN) == 0)
			return true;
	return false;
}

static void cart_add(struct sim_store *s, const uint8_t *uid)
{
	if (cart_known(s, uid))
		return;
	memcpy(s->carts[s->cart_next], uid, NL_CARTRIDGE_UID_LEN);
	s->cart_next = (s->cart_next + 1) % SIM_STORE_CARTRIDGES_MAX;
	if (s->ncarts < SIM_STORE_CARTRIDGES_MAX)
		s->ncarts++;
}

static void prune(struct sim_store *s)
{
	unsigned k = 0;

	while (k < s->n && s->slots[k].seq <= s->ack_seq)
		k++;
	if (k) {
		memmove(s->slots, s->slots + k, (s->n - k) * sizeof(*s->slots));
		s->n -= k;
	}
}

static void track_session(struct sim_store *s, const struct nl_record_header *h)
{
	if (h->type == NL_RECORD_SESSION_START)
		s->open_session = h->session_id;
	else if (h->type == NL_RECORD_SESSION_END && h->session_id == s->open_session)
		s->open_session = 0;
}

/* Writes a complete committed region holding the in-RAM state into target. */
static int write_snapshot(struct sim_store *s, unsigned target, uint32_t gen, bool copy_records)
{
	uint8_t hdr[HEADER_LEN];
	uint32_t off = 0;
	size_t flen;
	int r;

	r = s->plat.storage_erase(s->plat.ctx, target);
	if (r < 0)
		return r;
	put_u32(hdr, STORE_MAGIC);
	put_u32(hdr + 4, gen);
	put_u32(hdr + 8, s->epoch);
	put_u32(hdr + 12, s->next_seq);
	put_u32(hdr + 16, s->ack_seq);
	put_u32(hdr + 20, s->open_session);
	flen = frame_build(s, FRAME_HEADER, hdr, sizeof(hdr));
	r = region_write(s, target, &off, flen);
	if (r < 0)
		return r;
	for (unsigned i = 0; i < s->ncarts; i++) {
		flen = frame_build(s, FRAME_CARTRIDGE, s->carts[i], NL_CARTRIDGE_UID_LEN);
		r = region_write(s, target, &off, flen);
		if (r < 0)
			return r;
	}
	if (s->state_len) {
		flen = frame_build(s, FRAME_STATE, s->state, s->state_len);
		r = region_write(s, target, &off, flen);
		if (r < 0)
			return r;
	}
	for (unsigned i = 0; copy_records && i < s->n; i++) {
		r = frame_read(s, s->active, s->slots[i].off);
		if (r <= 0)
			return -EIO;
		s->spare[i] = s->slots[i];
		s->spare[i].off = off;
		r = region_write(s, target, &off, (size_t)r);
		if (r < 0)
			return r;
	}
	put_u32(hdr, gen);
	flen = frame_build(s, FRAME_COMMIT, hdr, 4);
	r = region_write(s, target, &off, flen);
	if (r < 0)
		return r;
	r = s->plat.storage_sync(s->plat.ctx, target);
	if (r < 0)
		return r;
	return (int)off;
}

/* Moves the live state to the other region; the old one is erased only
 * after the new one is committed and synced. */
static int compact(struct sim_store *s)
{
	unsigned target = s->active ^ 1u;
	int r;

	r = write_snapshot(s, target, s->gen + 1, true);
	if (r < 0)
		return r;
	for (unsigned i = 0; i < s->n; i++)
		s->slots[i] = s->spare[i];
	(void)s->plat.storage_erase(s->plat.ctx, s->active);
	s->active = target;
	s->gen++;
	s->end = (uint32_t)r;
	s->dirty = false;
	return 0;
}

/* Committed generation of a region, or 0 when it has none. */
static uint32_t region_generation(struct sim_store *s, unsigned region)
{
	uint32_t off = 0, gen;
	int r;

	r = frame_read(s, region, 0);
	if (r <= 0 || s->frame[0] != FRAME_HEADER || r != (int)(HEADER_LEN + FRAME_OVERHEAD) ||
	    get_u32(s->frame + 3) != STORE_MAGIC)
		return 0;
	gen = get_u32(s->frame + 7);
	for (off = (uint32_t)r;; off += (uint32_t)r) {
		r = frame_read(s, region, off);
		if (r <= 0)
			return 0;
		if (s->frame[0] == FRAME_COMMIT)
			return r == 4 + (int)FRAME_OVERHEAD && get_u32(s->frame + 3) == gen ? gen
											    : 0;
		if (s->frame[0] != FRAME_CARTRIDGE && s->frame[0] != FRAME_RECORD &&
		    s->frame[0] != FRAME_STATE)
			return 0;
	}
}

static int replay(struct sim_store *s, unsigned region)
{
	struct nl_record_header h;
	uint32_t off = 0;
	size_t len;
	int r;

	s->n = 0;
	s->ncarts = s->cart_next = 0;
	s->state_len = 0;
	s->torn = false;
	for (;;) {
		r = frame_read(s, region, off);
		if (r == -EBADMSG) {
			s->torn = true;
			break;
		}
		if (r < 0)
			return r;
		if (r == 0)
			break;
		len = (size_t)r - FRAME_OVERHEAD;
		switch (s->frame[0]) {
		case FRAME_HEADER:
			s->gen = get_u32(s->frame + 7);
			s->epoch = get_u32(s->frame + 11);
			s->next_seq = get_u32(s->frame + 15);
			s->ack_seq = get_u32(s->frame + 19);
			s->open_session = get_u32(s->frame + 23);
			break;
		case FRAME_COMMIT:
			break;
		case FRAME_CARTRIDGE:
			if (len == NL_CARTRIDGE_UID_LEN)
				cart_add(s, s->frame + 3);
			break;
		case FRAME_STATE:
			if (len <= SIM_STORE_STATE_MAX) {
				memcpy(s->state, s->frame + 3, len);
				s->state_len = len;
			}
			break;
		case FRAME_ACK:
			if (len == 8 && get_u32(s->frame + 3) == s->epoch &&
			    get_u32(s->frame + 7) > s->ack_seq) {
				s->ack_seq = get_u32(s->frame + 7);
				prune(s);
			}
			break;
		case FRAME_RECORD:
			if (nl_record_peek_header(s->frame + 3, len, &h) < 0 ||
			    h.store_epoch != s->epoch) {
				/* A frame that checks but holds a bad record: treat like a torn tail. */
				s->torn = true;
				goto done;
			}
			if (h.seq >= s->next_seq)
				s->next_seq = h.seq + 1;
			track_session(s, &h);
			if (h.seq <= s->ack_seq)
				break;
			if (s->n >= s->capacity || (s->n && h.seq <= s->slots[s->n - 1].seq)) {
				s->torn = true;
				goto done;
			}
			s->slots[s->n++] =
				(struct slot){.seq = h.seq, .off = off, .len = (uint16_t)len};
			break;
		default:
			s->torn = true;
			goto done;
		}
		off += (uint32_t)r;
	}
done:
	s->active = region;
	s->end = off;
	return 0;
}

static uint32_t new_epoch(struct sim_store *s, uint32_t old)
{
	uint32_t e;

	do
		e = s->plat.random_u32(s->plat.ctx);
	while (e == 0 || e == old);
	return e;
}

static int create(struct sim_store *s, uint32_t gen)
{
	int r;

	s->epoch = new_epoch(s, s->epoch);
	s->next_seq = 1;
	s->ack_seq = 0;
	s->open_session = 0;
	s->n = 0;
	r = s->plat.storage_erase(s->plat.ctx, 1);
	if (r < 0)
		return r;
	r = write_snapshot(s, 0, gen, false);
	if (r < 0)
		return r;
	s->active = 0;
	s->gen = gen;
	s->end = (uint32_t)r;
	s->dirty = false;
	return 0;
}

int sim_store_open(struct sim_store **ret, const struct sim_platform *plat, uint16_t capacity,
		   uint32_t region_bytes)
{
	struct sim_store *s;
	int r;

	if (!ret || !plat || capacity == 0)
		return -EINVAL;
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->plat = *plat;
	s->capacity = capacity;
	s->region_bytes =
		region_bytes ? region_bytes
			     : 64u + SIM_STORE_CARTRIDGES_MAX * 16u +
				       (uint32_t)capacity * 2u * (FRAME_OVERHEAD + NL_RECORD_MAX);
	s->slots = calloc(capacity, sizeof(*s->slots));
	s->spare = calloc(capacity, sizeof(*s->spare));
	if (!s->slots || !s->spare) {
		r = -ENOMEM;
		goto fail;
	}

	r = sim_store_reload(s);
	if (r < 0)
		goto fail;
	*ret = s;
	return 0;
fail:
	sim_store_free(s);
	return r;
}

int sim_store_reload(struct sim_store *s)
{
	uint32_t g0, g1;
	int r;

	s->dirty = false;
	g0 = region_generation(s, 0);
	g1 = region_generation(s, 1);
	if (g0 == 0 && g1 == 0)
		return create(s, 1);
	r = replay(s, g1 > g0 ? 1 : 0);
	if (r >= 0 && s->torn)
		r = compact(s);
	return r;
}

void sim_store_free(struct sim_store *s)
{
	if (!s)
		return;
	free(s->slots);
	free(s->spare);
	free(s);
}

int sim_store_wipe(struct sim_store *s)
{
	int r;

	r = s->plat.storage_erase(s->plat.ctx, s->active ^ 1u);
	if (r < 0)
		return r;
	r = s->plat.storage_erase(s->plat.ctx, s->active);
	if (r < 0)
		return r;
	return create(s, s->gen + 1);
}

uint32_t sim_store_epoch(const struct sim_store *s)
{
	return s->epoch;
}

uint32_t sim_store_last_seq(const struct sim_store *s)
{
	return s->next_seq - 1;
}

uint16_t sim_store_used(const struct sim_store *s)
{
	return (uint16_t)s->n;
}

uint16_t sim_store_capacity(const struct sim_store *s)
{
	return s->capacity;
}

bool sim_store_recovered_torn(const struct sim_store *s)
{
	return s->torn;
}

uint32_t sim_store_open_session(const struct sim_store *s)
{
	return s->open_session;
}

/* Appends the frame in s->frame durably, compacting first when the region
 * is full or a failed write may have left garbage. */
static int append_frame(struct sim_store *s, size_t flen, uint32_t *ret_off)
{
	uint8_t save[FRAME_MAX];
	uint32_t off;
	int r;

	if (s->dirty || s->end + flen > s->region_bytes) {
		/* compaction reuses s->frame */
		memcpy(save, s->frame, flen);
		r = compact(s);
		if (r < 0)
			return r;
		memcpy(s->frame, save, flen);
		if (s->end + flen > s->region_bytes)
			return -ENOSPC;
	}
	off = s->end;
	r = region_write(s, s->active, &off, flen);
	if (r >= 0)
		r = s->plat.storage_sync(s->plat.ctx, s->active);
	if (r < 0) {
		s->dirty = true;
		return r == -ENOSPC ? -EIO : r;
	}
	*ret_off = s->end;
	s->end = off;
	return 0;
}

int sim_store_append(struct sim_store *s, struct nl_record *rec, uint32_t *ret_seq)
{
	struct nl_record_header h;
	uint32_t off;
	int len, r;

	if (s->n >= s->capacity)
		return -ENOSPC;
	rec->hdr.seq = s->next_seq;
	rec->hdr.store_epoch = s->epoch;
	len = nl_record_encode(rec, s->frame + 3, NL_RECORD_MAX);
	if (len < 0)
		return len;
	h = rec->hdr;
	r = append_frame(s, frame_build(s, FRAME_RECORD, NULL, (size_t)len), &off);
	if (r < 0)
		return r;
	/* Durable: from here the seq is issued. */
	s->slots[s->n++] = (struct slot){.seq = h.seq, .off = off, .len = (uint16_t)len};
	s->next_seq++;
	track_session(s, &h);
	if (ret_seq)
		*ret_seq = h.seq;
	return 0;
}

int sim_store_ack(struct sim_store *s, uint32_t epoch, uint32_t seq)
{
	uint8_t p[8];
	uint32_t off;
	int r;

	if (epoch != s->epoch)
		return -ESTALE;
	if (seq >= s->next_seq)
		return -ERANGE;
	if (seq <= s->ack_seq)
		return (int)s->n;
	put_u32(p, epoch);
	put_u32(p + 4, seq);
	r = append_frame(s, frame_build(s, FRAME_ACK, p, sizeof(p)), &off);
	if (r < 0)
		return r;
	s->ack_seq = seq;
	prune(s);
	/* Give the space back early when most of the region is dead. */
	if (s->end > s->region_bytes / 2)
		(void)compact(s);
	return (int)s->n;
}

uint32_t sim_store_seq_at(const struct sim_store *s, unsigned i)
{
	return i < s->n ? s->slots[i].seq : 0;
}

int sim_store_read_at(struct sim_store *s, unsigned i, uint8_t *buf, size_t size)
{
	int r;

	if (i >= s->n)
		return -ENOENT;
	if (size < s->slots[i].len)
		return -ENOBUFS;
	r = s->plat.storage_read(s->plat.ctx, s->active, s->slots[i].off + 3, buf, s->slots[i].len);
	if (r < 0)
		return r;
	if (r != s->slots[i].len)
		return -EIO;
	return r;
}

bool sim_store_cartridge_used(const struct sim_store *s, const uint8_t uid[NL_CARTRIDGE_UID_LEN])
{
	return cart_known(s, uid);
}

int sim_store_mark_cartridge(struct sim_store *s, const uint8_t uid[NL_CARTRIDGE_UID_LEN])
{
	uint32_t off;
	int r;

	if (cart_known(s, uid))
		return 0;
	r = append_frame(s, frame_build(s, FRAME_CARTRIDGE, uid, NL_CARTRIDGE_UID_LEN), &off);
	if (r < 0)
		return r;
	cart_add(s, uid);
	return 0;
}

int sim_store_put_state(struct sim_store *s, const uint8_t *buf, size_t len)
{
	uint32_t off;
	int r;

	if (len > SIM_STORE_STATE_MAX)
		return -EINVAL;
	if (len == s->state_len && memcmp(buf, s->state, len) == 0)
		return 0;
	r = append_frame(s, frame_build(s, FRAME_STATE, buf, len), &off);
	if (r < 0)
		return r;
	memcpy(s->state, buf, len);
	s->state_len = len;
	return 0;
}

size_t sim_store_get_state(const struct sim_store *s, uint8_t *buf)
{
	memcpy(buf, s->state, s->state_len);
	return s->state_len;
}
