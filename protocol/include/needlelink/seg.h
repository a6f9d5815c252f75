/* SPDX-License-Identifier: MIT */
/*
 * Segmentation of records on the Treatment Record characteristic, after the
 * Generic Health Sensor segmentation header:
 *
 *   u8 header: bit 0 FIRST, bit 1 LAST, bits 2..7 rolling counter (0..63)
 *   then up to (ATT_MTU - 3 - 1) bytes of the record.
 *
 * A record that fits in one notification is sent with FIRST|LAST. The
 * counter increments by one for every segment sent on the characteristic
 * and wraps from 63 to 0; it starts at 0 when the collector enables
 * notifications. The record's own CRC is checked after reassembly.
 */
#ifndef NEEDLELINK_SEG_H
#define NEEDLELINK_SEG_H

#include "needlelink/common.h"

#define NL_SEG_FIRST 0x01u
#define NL_SEG_LAST 0x02u
#define NL_SEG_COUNTER_MOD 64u
#define NL_ATT_MTU_MIN 23u

/* Sender: splits one record into segments. */
struct nl_seg_tx {
	uint8_t counter;     /* next counter to send */
	const uint8_t *rec;  /* borrowed */
	size_t len, off;
	size_t chunk;        /* payload bytes per segment */
};
void nl_seg_tx_init(struct nl_seg_tx *t); /* counter 0 */
/* Starts a record (>= 1 byte); mtu >= NL_ATT_MTU_MIN. -EINVAL otherwise. */
int nl_seg_tx_start(struct nl_seg_tx *t, const uint8_t *rec, size_t len, uint16_t mtu);
/* Writes the next segment; returns its length, 0 when the record is done,
 * -ENOBUFS when size < chunk + 1. */
int nl_seg_tx_next(struct nl_seg_tx *t, uint8_t *buf, size_t size);

/* Receiver: reassembles records; no allocation. */
struct nl_seg_rx {
	bool started;     /* a segment was seen since reset */
	bool open;        /* a record is being reassembled */
	uint8_t last_counter;
	size_t len;
	uint8_t buf[NL_RECORD_MAX];
};
void nl_seg_rx_reset(struct nl_seg_rx *r); /* on (re)subscription */
/* Feeds one notification. Returns 0 when more segments are needed, a
 * positive length when a record is complete (*ret_rec points into r and
 * stays valid until the next feed), or an error: -ENODATA (empty), -EILSEQ
 * (counter gap), -EALREADY (duplicate counter), -EPROTO (segment out of
 * place), -E2BIG (over NL_RECORD_MAX). After an error the partial record is
 * dropped and the next FIRST segment starts afresh; the counter is
 * re-synchronised to the erroneous segment's. */
int nl_seg_rx_feed(struct nl_seg_rx *r, const uint8_t *seg, size_t len,
		   const uint8_t **ret_rec);

#endif
