/* SPDX-License-Identifier: MIT */
/*
 * Private to protocol/: bounds-checked little-endian cursors.
 *
 * Both cursors are sticky: the first read or write that would cross the end
 * sets ->err and every later call is a no-op that yields 0. Callers check
 * ->err once, after a whole layout, instead of after every field; no byte
 * outside [0, len) is ever touched.
 */
#ifndef NL_WIRE_H
#define NL_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

struct nl_rd {
	const uint8_t *p;
	size_t len;
	size_t off;
	bool err;
};

struct nl_wr {
	uint8_t *p;
	size_t size;
	size_t off;
	bool err;
};

static inline struct nl_rd nl_rd_init(const uint8_t *p, size_t len)
{
	return (struct nl_rd){ .p = p, .len = len, .off = 0, .err = false };
}

static inline struct nl_wr nl_wr_init(uint8_t *p, size_t size)
{
	return (struct nl_wr){ .p = p, .size = size, .off = 0, .err = false };
}

static inline size_t nl_rd_left(const struct nl_rd *r)
{
	return r->err ? 0 : r->len - r->off;
}

/* Reserves n bytes; NULL (and err set) when fewer are left. */
static inline const uint8_t *nl_rd_take(struct nl_rd *r, size_t n)
{
	const uint8_t *q;

	if (r->err || r->len - r->off < n) {
		r->err = true;
		return NULL;
	}
	q = r->p + r->off;
	r->off += n;
	return q;
}

static inline uint8_t nl_rd_u8(struct nl_rd *r)
{
	const uint8_t *q = nl_rd_take(r, 1);

	return q ? q[0] : 0;
}

static inline uint16_t nl_rd_u16(struct nl_rd *r)
{
	const uint8_t *q = nl_rd_take(r, 2);

	return q ? (uint16_t)(q[0] | (uint16_t)q[1] << 8) : 0;
}

static inline uint32_t nl_rd_u32(struct nl_rd *r)
{
	const uint8_t *q = nl_rd_take(r, 4);

	if (!q)
		return 0;
	return (uint32_t)q[0] | (uint32_t)q[1] << 8 | (uint32_t)q[2] << 16 |
	       (uint32_t)q[3] << 24;
}

static inline void nl_rd_bytes(struct nl_rd *r, void *dst, size_t n)
{
	const uint8_t *q = nl_rd_take(r, n);

	if (q)
		memcpy(dst, q, n);
	else
		memset(dst, 0, n);
}

static inline uint8_t *nl_wr_take(struct nl_wr *w, size_t n)
{
	uint8_t *q;

	if (w->err || w->size - w->off < n) {
		w->err = true;
		return NULL;
	}
	q = w->p + w->off;
	w->off += n;
	return q;
}

static inline void nl_wr_u8(struct nl_wr *w, uint8_t v)
{
	uint8_t *q = nl_wr_take(w, 1);

	if (q)
		q[0] = v;
}

static inline void nl_wr_u16(struct nl_wr *w, uint16_t v)
{
	uint8_t *q = nl_wr_take(w, 2);

	if (q) {
		q[0] = (uint8_t)v;
		q[1] = (uint8_t)(v >> 8);
	}
}

static inline void nl_wr_u32(struct nl_wr *w, uint32_t v)
{
	uint8_t *q = nl_wr_take(w, 4);

	if (q) {
		q[0] = (uint8_t)v;
		q[1] = (uint8_t)(v >> 8);
		q[2] = (uint8_t)(v >> 16);
		q[3] = (uint8_t)(v >> 24);
	}
}

static inline void nl_wr_bytes(struct nl_wr *w, const void *src, size_t n)
{
	uint8_t *q = nl_wr_take(w, n);

	if (q)
		memcpy(q, src, n);
}

#endif
