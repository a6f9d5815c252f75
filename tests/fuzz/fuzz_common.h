/* SPDX-License-Identifier: MIT */
/*
 * Shared by every fuzz target: the libFuzzer entry point prototype, the
 * invariant check that aborts, and field-by-field comparisons (structs are
 * compared per field because decoders need not clear padding).
 */
#ifndef NL_FUZZ_COMMON_H
#define NL_FUZZ_COMMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "needlelink/cp.h"
#include "needlelink/pdu.h"
#include "needlelink/racp.h"
#include "needlelink/record.h"

/* Entry point called by libFuzzer or by replay_main.c. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Counts inputs that decoded successfully; replay_main.c can require a
 * minimum so a corpus that no longer decodes does not pass silently. */
extern unsigned long fuzz_decoded_ok;

/* Prints the failed invariant and aborts (a crash for libFuzzer). */
_Noreturn void fuzz_fail(const char *file, int line, const char *what);

#define FUZZ_CHECK(cond)                                                   \
	do {                                                               \
		if (!(cond))                                               \
			fuzz_fail(__FILE__, __LINE__, #cond);              \
	} while (0)

/* Byte used to fill out-parameters before a decode, to prove that a
 * failing decode leaves them untouched. */
#define FUZZ_POISON 0xA5

/* True when every byte of p[0..n) is FUZZ_POISON. */
bool fuzz_is_poisoned(const void *p, size_t n);

/* Decoder errors documented in common.h for value/record decoders. */
bool fuzz_is_decode_error(int rc);

/*
 * Runs fn on the input as given, then (when it has >= 3 bytes) on a copy
 * whose last two bytes are replaced by the right E2E-CRC, so mutations get
 * past the CRC check to the field parsers. Both copies are exact-size heap
 * blocks.
 */
typedef void (*fuzz_check_fn)(const uint8_t *data, size_t size);
void fuzz_run_with_fixed_crc(fuzz_check_fn fn, const uint8_t *data, size_t size);

/* Copies buf into a heap block of exactly len bytes (so ASan sees any read
 * past the end) and returns it; never NULL (aborts). */
uint8_t *fuzz_dup(const uint8_t *buf, size_t len);

/*
 * Encodes obj twice more after a first encoding of n bytes: into a heap
 * buffer of exactly n bytes (must give n, the same bytes, no write past the
 * end) and into n - 1 bytes (must give -ENOBUFS). enc is a small wrapper
 * around one nl_*_encode.
 */
typedef int (*fuzz_encode_fn)(const void *obj, uint8_t *buf, size_t size);
void fuzz_check_encode_sizes(fuzz_encode_fn enc, const void *obj, const uint8_t *first,
			     size_t n);

/*
 * Byte identity of a re-encoding with its v1-length input, up to what the
 * decoders drop on purpose: clear_reserved (may be NULL) zeroes, in a copy
 * of data, the reserved flag bits and reserved bytes that the decoder
 * ignores (protocol/src/pdu.c, record.c); with has_crc the copy's CRC is
 * then recomputed.
 */
bool fuzz_same_bytes(const uint8_t *enc, const uint8_t *data, size_t len,
		     void (*clear_reserved)(uint8_t *buf, size_t len), bool has_crc);

bool fuzz_feature_eq(const struct nl_feature *a, const struct nl_feature *b);
bool fuzz_live_eq(const struct nl_live *a, const struct nl_live *b);
bool fuzz_pen_status_eq(const struct nl_pen_status *a, const struct nl_pen_status *b);
bool fuzz_cartridge_info_eq(const struct nl_cartridge_info *a,
			    const struct nl_cartridge_info *b);
bool fuzz_limit_set_eq(const struct nl_limit_set *a, const struct nl_limit_set *b);
bool fuzz_active_limits_eq(const struct nl_active_limits *a,
			   const struct nl_active_limits *b);
bool fuzz_record_eq(const struct nl_record *a, const struct nl_record *b);
bool fuzz_cp_req_eq(const struct nl_cp_req *a, const struct nl_cp_req *b);
bool fuzz_cp_rsp_eq(const struct nl_cp_rsp *a, const struct nl_cp_rsp *b);
bool fuzz_racp_req_eq(const struct nl_racp_req *a, const struct nl_racp_req *b);
bool fuzz_racp_rsp_eq(const struct nl_racp_rsp *a, const struct nl_racp_rsp *b);

/* Invariants of a successfully decoded limit set (documented ranges,
 * canonical order, hash computable and equal to FNV-1a of its encoding).
 * Returns the canonical length. */
size_t fuzz_check_limit_set(const struct nl_limit_set *l);

/* v1 length of a record body for a decoded record (without header/CRC). */
size_t fuzz_record_body_len(const struct nl_record *r);

/* Everything checked on a whole record buffer: decode; on success names,
 * ranges, peek_header, encode/decode round trip and, for v1-length input,
 * byte identity. Returns the decoder's result. */
int fuzz_check_record(const uint8_t *buf, size_t len);

#endif
