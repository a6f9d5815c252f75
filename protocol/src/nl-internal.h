/* SPDX-License-Identifier: MIT */
/* Private to protocol/: helpers several modules share. */
#ifndef NL_INTERNAL_H
#define NL_INTERNAL_H

#include "needlelink/pdu.h"
#include "wire.h"

#define NL_NEEDLE_COUNT_MAX 64u

/* Value bytes before the CRC; the rest is checked by nl_pdu_check_crc. */
int nl_pdu_open(const uint8_t *buf, size_t len, struct nl_rd *ret_rd);
/* Appends the CRC after what w wrote: total length, or -ENOBUFS. */
int nl_pdu_close(struct nl_wr *w);

/* Lot: printable ASCII, NUL padded to NL_LOT_LEN. */
int nl_lot_check(const char *lot); /* struct form, NUL terminated within 9 */
void nl_lot_put(struct nl_wr *w, const char *lot);
int nl_lot_get(struct nl_rd *r, char *ret_lot); /* 9 bytes out; -ERANGE */

/* Limit set on a cursor. check: 0 or -ERANGE; get: reads
 * NL_LIMIT_SET_HDR_LEN + 5 * zone_count bytes, -ENODATA or -ERANGE. */
int nl_limit_set_check(const struct nl_limit_set *l);
size_t nl_limit_set_len(const struct nl_limit_set *l);
void nl_limit_set_put(struct nl_wr *w, const struct nl_limit_set *l);
int nl_limit_set_get(struct nl_rd *r, struct nl_limit_set *ret);

#endif
