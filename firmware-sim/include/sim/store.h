/* SPDX-License-Identifier: MIT */
/*
 * The pen's record store: treatment records in flash (sim_platform storage
 * regions), with sequence numbers that are never reused, pruned only by an
 * acknowledgement, plus the list of cartridges that were ever used.
 *
 * Layout: each region is a log of frames
 *     u8 kind, u16 len, len bytes, u16 CRC-16 (nl_crc16 over kind+len+bytes)
 * A region starts with HEADER {generation, epoch, next_seq, ack_seq, open
 * session} and a snapshot (used cartridges, unacknowledged records), then
 * COMMIT {generation}. After COMMIT come appended RECORD, ACK, CARTRIDGE and
 * STATE (the pen's small non-volatile state, newest wins) frames. A region without its COMMIT is ignored; of two committed regions
 * the higher generation wins.
 *
 * Write order and why sequence numbers survive any power cut:
 *   append: the RECORD frame (holding seq) is appended and synced before
 *     sim_store_append() returns. Only then is the seq counted as issued:
 *     last_seq, REPORT and the caller see it. A cut before the sync ends
 *     leaves either the whole frame (CRC good: recovered at boot, seq kept)
 *     or a torn tail (CRC bad or short: discarded). A torn frame's seq was
 *     never visible outside the pen, so issuing it again is not a reuse.
 *   ack: the ACK frame is synced before the Pen CP answers SUCCESS. A cut
 *     before that leaves the records stored; the collector never saw the
 *     ACK succeed and receives them again (no resurrection of acked data).
 *   compaction (when a region fills, or a torn tail must be cut off): the
 *     other region is erased, the snapshot written with next_seq (so seqs of
 *     pruned records stay burnt), COMMIT appended and synced; only then is
 *     the old region erased. A cut anywhere leaves one committed region
 *     with everything that was ever acknowledged as such.
 *   boot: scan both regions, keep the winner, replay its frames; a torn
 *     tail is cut off by compacting into the other region.
 * The epoch is random and changes only when no committed region exists
 * (a new or wiped store), which tells collectors to restart from seq 1.
 *
 * Memory: everything is allocated in sim_store_open(); nothing after.
 */
#ifndef SIM_STORE_H
#define SIM_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "needlelink/record.h"
#include "sim/platform.h"

#define SIM_STORE_CARTRIDGES_MAX 128

struct sim_store;

/* Opens (recovers or creates) the store. capacity: records kept until
 * acknowledged; region_bytes: size of one flash region (0: computed). */
int sim_store_open(struct sim_store **ret, const struct sim_platform *plat, uint16_t capacity,
		   uint32_t region_bytes);
void sim_store_free(struct sim_store *s);
/* Forgets the RAM state and recovers it from flash again, as a reboot
 * does (no allocation). */
int sim_store_reload(struct sim_store *s);
/* Erases both regions and starts a new epoch (factory reset). */
int sim_store_wipe(struct sim_store *s);

uint32_t sim_store_epoch(const struct sim_store *s);
uint32_t sim_store_last_seq(const struct sim_store *s); /* 0: none issued */
uint16_t sim_store_used(const struct sim_store *s); /* records not acknowledged */
uint16_t sim_store_capacity(const struct sim_store *s);
/* Boot found and cut a torn tail. */
bool sim_store_recovered_torn(const struct sim_store *s);

/* Sets r->hdr.seq and r->hdr.store_epoch, writes the record durably.
 * -ENOSPC when capacity records are unacknowledged, -EIO on flash failure. */
int sim_store_append(struct sim_store *s, struct nl_record *r, uint32_t *ret_seq);
/* Prunes records with seq <= seq. Returns the number still stored;
 * -ESTALE for another epoch, -ERANGE for a seq never issued. */
int sim_store_ack(struct sim_store *s, uint32_t epoch, uint32_t seq);

/* Stored records in sequence order: i in [0, sim_store_used()). */
uint32_t sim_store_seq_at(const struct sim_store *s, unsigned i);
/* Reads record i (encoded, with CRC). Returns its length or -errno. */
int sim_store_read_at(struct sim_store *s, unsigned i, uint8_t *buf, size_t size);

bool sim_store_cartridge_used(const struct sim_store *s, const uint8_t uid[NL_CARTRIDGE_UID_LEN]);
int sim_store_mark_cartridge(struct sim_store *s, const uint8_t uid[NL_CARTRIDGE_UID_LEN]);

/* A small blob of the pen's own non-volatile state (lock, limit source),
 * kept across power loss and compaction; the newest write wins. */
#define SIM_STORE_STATE_MAX 16
int sim_store_put_state(struct sim_store *s, const uint8_t *buf, size_t len);
/* Copies the blob into buf (SIM_STORE_STATE_MAX bytes); returns its length, 0 if none. */
size_t sim_store_get_state(const struct sim_store *s, uint8_t *buf);

/* The session left open by the last SESSION_START without SESSION_END
 * (e.g. at a power loss): its id, or 0. */
uint32_t sim_store_open_session(const struct sim_store *s);

#endif
