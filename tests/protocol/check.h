/* SPDX-License-Identifier: MIT */
/*
 * Tiny assertion helper and generic malformed-input checks for the protocol
 * tests. Every CHECK counts; main() returns check_summary().
 */
#ifndef NL_TEST_CHECK_H
#define NL_TEST_CHECK_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "needlelink/common.h"
#include "needlelink/crc.h"

struct check_stats {
	unsigned run;
	unsigned failed;
};
static struct check_stats check_stats;

#define CHECK(cond)                                                                  \
	do {                                                                         \
		check_stats.run++;                                                   \
		if (!(cond)) {                                                       \
			check_stats.failed++;                                        \
			fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__,       \
				__LINE__, #cond);                                    \
		}                                                                    \
	} while (0)

#define CHECK_INT(got, want)                                                         \
	do {                                                                         \
		long long g_ = (long long)(got), w_ = (long long)(want);             \
		check_stats.run++;                                                   \
		if (g_ != w_) {                                                      \
			check_stats.failed++;                                        \
			fprintf(stderr, "%s:%d: %s == %lld, want %lld\n", __FILE__,  \
				__LINE__, #got, g_, w_);                             \
		}                                                                    \
	} while (0)

#define CHECK_STR(got, want)                                                         \
	do {                                                                         \
		const char *g_ = (got), *w_ = (want);                                \
		check_stats.run++;                                                   \
		if (!((g_ == NULL && w_ == NULL) ||                                  \
		      (g_ != NULL && w_ != NULL && strcmp(g_, w_) == 0))) {          \
			check_stats.failed++;                                        \
			fprintf(stderr, "%s:%d: %s == \"%s\", want \"%s\"\n",        \
				__FILE__, __LINE__, #got, g_ ? g_ : "(null)",        \
				w_ ? w_ : "(null)");                                 \
		}                                                                    \
	} while (0)

static inline void check_mem_at(const char *file, int line, const char *what,
				const uint8_t *got, size_t got_len, const uint8_t *want,
				size_t want_len)
{
	check_stats.run++;
	if (got_len == want_len && memcmp(got, want, want_len) == 0)
		return;
	check_stats.failed++;
	fprintf(stderr, "%s:%d: %s bytes differ (len %zu, want %zu)\n  got: ", file, line,
		what, got_len, want_len);
	for (size_t i = 0; i < got_len; i++)
		fprintf(stderr, "%02X ", got[i]);
	fprintf(stderr, "\n want: ");
	for (size_t i = 0; i < want_len; i++)
		fprintf(stderr, "%02X ", want[i]);
	fprintf(stderr, "\n");
}
#define CHECK_MEM(got, got_len, want, want_len)                                      \
	check_mem_at(__FILE__, __LINE__, #got, (got), (size_t)(got_len), (want),     \
		     (size_t)(want_len))

static inline int check_summary(const char *name)
{
	fprintf(stderr, "%s: %u checks, %u failed\n", name, check_stats.run,
		check_stats.failed);
	return check_stats.failed ? 1 : 0;
}

/* ---- Generic checks over a golden value -------------------------------- */

typedef int (*check_decode_fn)(const uint8_t *buf, size_t len, void *out);
typedef int (*check_encode_fn)(const void *in, uint8_t *buf, size_t size);

#define CHECK_BUF 1024
#define CHECK_OUT 4096 /* larger than any decoded struct */

/* Appends the CRC the independent way the tests trust: nl_crc16 is itself
 * checked against the published check value in test-crc. */
static inline size_t check_with_crc(uint8_t *buf, size_t body_len)
{
	uint16_t c = nl_crc16(buf, body_len);

	buf[body_len] = (uint8_t)c;
	buf[body_len + 1] = (uint8_t)(c >> 8);
	return body_len + 2;
}

/* Re-encodes what dec made of buf and compares with want. */
static inline void check_reencode(const char *what, const uint8_t *buf, size_t len,
				  check_decode_fn dec, check_encode_fn enc, const uint8_t *want,
				  size_t want_len)
{
	static _Alignas(16) uint8_t out[CHECK_OUT];
	uint8_t re[CHECK_BUF];
	int n;

	memset(out, 0, sizeof(out));
	CHECK_INT(dec(buf, len, out), 0);
	n = enc(out, re, sizeof(re));
	CHECK(n > 0);
	if (n > 0)
		check_mem_at(__FILE__, __LINE__, what, re, (size_t)n, want, want_len);
}

enum check_flags {
	CHECK_HAS_CRC = 1u << 0,
	CHECK_EXTENSIBLE = 1u << 1, /* bytes before the CRC beyond v1 are ignored */
};

/*
 * For a valid golden value: truncation at every length, truncation with a
 * valid CRC (must be -ENODATA), every single-bit flip, trailing bytes, and
 * that a failed decode leaves the output untouched. An encoder given every
 * buffer size below the value's length must return -ENOBUFS.
 */
static inline void check_malformed(const char *what, const uint8_t *gold, size_t len,
				   check_decode_fn dec, check_encode_fn enc, unsigned flags)
{
	static _Alignas(16) uint8_t out[CHECK_OUT], good[CHECK_OUT];
	uint8_t buf[CHECK_BUF];
	size_t body = (flags & CHECK_HAS_CRC) ? len - 2 : len;
	unsigned bad = 0;

	memset(good, 0, sizeof(good));
	CHECK_INT(dec(gold, len, good), 0);

	/* Raw truncation: the CRC no longer matches, or too short to hold one. */
	for (size_t k = 0; k < len; k++) {
		int r;

		memcpy(buf, gold, k);
		memset(out, 0xA5, sizeof(out));
		r = dec(buf, k, out);
		if (!(r == -ENODATA || r == -EBADMSG || (!(flags & CHECK_HAS_CRC) && r == -ERANGE)))
			bad++;
		for (size_t i = 0; i < 64; i++)
			if (out[i] != 0xA5)
				bad++;
	}
	if (bad)
		fprintf(stderr, "%s: raw truncation: %u problems\n", what, bad);
	CHECK_INT(bad, 0);

	/* Truncated body with a correct CRC: the layout itself is short. */
	bad = 0;
	for (size_t k = 0; k < body; k++) {
		size_t n = k;

		memcpy(buf, gold, k);
		if (flags & CHECK_HAS_CRC)
			n = check_with_crc(buf, k);
		memset(out, 0xA5, sizeof(out));
		if (dec(buf, n, out) != -ENODATA) {
			fprintf(stderr, "%s: body truncated to %zu: %d\n", what, k, dec(buf, n, out));
			bad++;
		}
		if (out[0] != 0xA5 || out[1] != 0xA5)
			bad++;
	}
	CHECK_INT(bad, 0);

	/* Every single-bit flip is caught. With a CRC it must be the CRC. */
	bad = 0;
	for (size_t i = 0; i < len; i++) {
		for (unsigned b = 0; b < 8; b++) {
			int r;

			memcpy(buf, gold, len);
			buf[i] ^= (uint8_t)(1u << b);
			memset(out, 0xA5, sizeof(out));
			r = dec(buf, len, out);
			if (flags & CHECK_HAS_CRC) {
				if (r != -EBADMSG)
					bad++;
			} else if (r >= 0 && enc) {
				/* No CRC: a flip may make another valid set, which
				 * must then re-encode to exactly the flipped bytes. */
				uint8_t re[CHECK_BUF];
				int n = enc(out, re, sizeof(re));

				if (n != (int)len || memcmp(re, buf, len) != 0)
					bad++;
			}
			if (r < 0 && out[0] != 0xA5)
				bad++;
		}
	}
	if (bad)
		fprintf(stderr, "%s: bit flips: %u problems\n", what, bad);
	CHECK_INT(bad, 0);

	/* Trailing bytes (a newer minor version's fields). */
	memcpy(buf, gold, body);
	buf[body] = 0xEE;
	buf[body + 1] = 0x00;
	buf[body + 2] = 0x7F;
	{
		size_t n = body + 3;

		if (flags & CHECK_HAS_CRC)
			n = check_with_crc(buf, body + 3);
		if (flags & CHECK_EXTENSIBLE) {
			if (enc)
				check_reencode(what, buf, n, dec, enc, gold, len);
			else
				CHECK_INT(dec(buf, n, out), 0);
		} else {
			CHECK_INT(dec(buf, n, out), -ERANGE);
		}
	}

	/* Encoder: every short buffer is -ENOBUFS, the exact size works. */
	if (enc) {
		bad = 0;
		for (size_t k = 0; k < len; k++) {
			uint8_t small[CHECK_BUF];

			if (enc(good, small, k) != -ENOBUFS)
				bad++;
		}
		CHECK_INT(bad, 0);
		CHECK_INT(enc(good, buf, len), (int)len);
		CHECK_MEM(buf, len, gold, len);
	}
}

/* Copies gold, overwrites n bytes at off (little endian value), fixes the
 * CRC when the value has one, and decodes. */
static inline int check_decode_patched(const uint8_t *gold, size_t len, size_t off,
				       uint32_t value, size_t n, check_decode_fn dec,
				       bool has_crc)
{
	static _Alignas(16) uint8_t out[CHECK_OUT];
	uint8_t buf[CHECK_BUF];

	memcpy(buf, gold, len);
	for (size_t i = 0; i < n; i++)
		buf[off + i] = (uint8_t)(value >> (8 * i));
	if (has_crc)
		check_with_crc(buf, len - 2);
	return dec(buf, len, out);
}

#endif
