/* SPDX-License-Identifier: MIT */
/*
 * Fuzz target: the segment reassembler (nl_seg_rx_feed) driven by a stream
 * of notifications, and nl_record_decode on every record it completes.
 *
 * Input: a sequence of chunks. A chunk starts with a byte L: L == 0xFF
 * resets the receiver (re-subscription); otherwise the next L bytes (fewer
 * at the end of the input) are one notification, header byte first.
 *
 * Alongside the receiver runs a small model written from seg.h: it knows
 * which segments must be accepted, which error each refusal may carry, and
 * the bytes of every record that must come out. Each completed record is
 * decoded (as received, and with its CRC fixed up so the fields get parsed)
 * and split again with nl_seg_tx and fed to a second receiver, which must
 * give back the same bytes.
 */
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"
#include "needlelink/seg.h"

#define CHUNK_RESET 0xFF

#if defined(__SANITIZE_ADDRESS__)
#define FUZZ_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define FUZZ_ASAN 1
#endif
#endif

#ifdef FUZZ_ASAN
#include <sanitizer/asan_interface.h>

/* ASan parks freed blocks in a quarantine (256 MB by default), so every
 * allocation touches fresh pages; this target makes dozens of exact-size
 * copies per input, and the page faults were half of its time. Any use
 * after free it can provoke happens within one input, far inside 16 MB.
 * ASAN_OPTIONS still overrides this. */
const char *__asan_default_options(void)
{
	return "quarantine_size_mb=16";
}
#endif

struct model {
	bool started;
	bool open;
	uint8_t last;
	size_t len;
	uint8_t buf[NL_RECORD_MAX];
};

struct echo {
	struct nl_seg_tx tx;
	struct nl_seg_rx rx;
};

static const uint16_t echo_mtus[] = {NL_ATT_MTU_MIN, 24, 64, 185, 247, 517};

static void check_record_void(const uint8_t *buf, size_t len)
{
	fuzz_check_record(buf, len);
}

static bool is_seg_error(int rc)
{
	return rc == -ENODATA || rc == -EILSEQ || rc == -EALREADY || rc == -EPROTO ||
	       rc == -E2BIG;
}

/* Splits rec with the sender and reassembles it with a second receiver
 * whose counter follows the sender's across records. */
static void echo_record(struct echo *e, const uint8_t *rec, size_t len)
{
	uint16_t mtu = echo_mtus[len % (sizeof(echo_mtus) / sizeof(echo_mtus[0]))];
	size_t seg_size = (size_t)mtu - 3, got = 0;
	uint8_t *seg = malloc(seg_size);
	unsigned count = 0;
	int n, rc = 0;

	FUZZ_CHECK(seg != NULL);
	FUZZ_CHECK(nl_seg_tx_start(&e->tx, rec, len, mtu) == 0);
	/* A buffer one byte short of a full segment is refused. */
	if (len > seg_size - 1)
		FUZZ_CHECK(nl_seg_tx_next(&e->tx, seg, seg_size - 1) == -ENOBUFS);
	while ((n = nl_seg_tx_next(&e->tx, seg, seg_size)) > 0) {
		const uint8_t *out = (const uint8_t *)&count;
		uint8_t *copy = fuzz_dup(seg, (size_t)n);
		bool last;

		FUZZ_CHECK((size_t)n <= seg_size && n >= 2);
		FUZZ_CHECK(((seg[0] & NL_SEG_FIRST) != 0) == (count == 0));
		last = got + (size_t)n - 1 == len;
		FUZZ_CHECK(((seg[0] & NL_SEG_LAST) != 0) == last);
		FUZZ_CHECK(rc == 0); /* nothing completed before the last segment */
		rc = nl_seg_rx_feed(&e->rx, copy, (size_t)n, &out);
		free(copy);
		got += (size_t)n - 1;
		if (last) {
			FUZZ_CHECK(rc == (int)len);
			FUZZ_CHECK(memcmp(out, rec, len) == 0);
		} else {
			FUZZ_CHECK(rc == 0);
			FUZZ_CHECK(out == (const uint8_t *)&count);
		}
		count++;
		FUZZ_CHECK(count <= len);
	}
	FUZZ_CHECK(n == 0);
	FUZZ_CHECK(got == len);
	FUZZ_CHECK(nl_seg_tx_next(&e->tx, seg, seg_size) == 0);
	free(seg);
}

static void feed_one(struct nl_seg_rx *rx, struct model *m, struct echo *e,
		     const uint8_t *seg, size_t len)
{
	static const uint8_t marker;
	const uint8_t *rec = &marker;
	uint8_t hdr = len ? seg[0] : 0;
	uint8_t counter = (uint8_t)(hdr >> 2);
	bool first = hdr & NL_SEG_FIRST, last = hdr & NL_SEG_LAST;
	bool in_order = !m->started || counter == (m->last + 1) % NL_SEG_COUNTER_MOD;
	bool in_place = first ? !m->open : m->open;
	size_t payload = len ? len - 1 : 0;
	size_t total = (first ? 0 : m->len) + payload;
	int rc;

	rc = nl_seg_rx_feed(rx, seg, len, &rec);
	if (rc < 0) {
		FUZZ_CHECK(is_seg_error(rc));
		FUZZ_CHECK(nl_strerror(rc) != NULL);
		FUZZ_CHECK(rec == &marker);
		switch (-rc) {
		case ENODATA:
			FUZZ_CHECK(len <= 1);
			break;
		case EILSEQ:
			FUZZ_CHECK(m->started && !in_order && counter != m->last);
			break;
		case EALREADY:
			FUZZ_CHECK(m->started && counter == m->last);
			break;
		case EPROTO:
			FUZZ_CHECK(!in_place);
			break;
		case E2BIG:
			FUZZ_CHECK(total > NL_RECORD_MAX);
			break;
		default:
			break;
		}
		/* The partial record is dropped; the counter re-synchronises. */
		m->open = false;
		m->len = 0;
		if (len) {
			m->started = true;
			m->last = counter;
		}
		FUZZ_CHECK(!rx->open);
		return;
	}

	/* Accepted: the segment was in order and in place. */
	FUZZ_CHECK(len >= 1);
	FUZZ_CHECK(in_order);
	FUZZ_CHECK(in_place);
	FUZZ_CHECK(total <= NL_RECORD_MAX);
	m->started = true;
	m->last = counter;
	if (first)
		m->len = 0;
	memcpy(m->buf + m->len, seg + 1, payload);
	m->len = total;

	if (rc == 0) {
		FUZZ_CHECK(!last);
		FUZZ_CHECK(rec == &marker);
		m->open = true;
		FUZZ_CHECK(rx->open && rx->started);
		return;
	}

	FUZZ_CHECK(last);
	FUZZ_CHECK((size_t)rc == m->len);
	FUZZ_CHECK(rec >= rx->buf && rec + rc <= rx->buf + sizeof(rx->buf));
	FUZZ_CHECK(memcmp(rec, m->buf, m->len) == 0);
	m->open = false;
	m->len = 0;
	FUZZ_CHECK(!rx->open && rx->started);

	/* The record goes to the decoder on an exact-size copy. */
	{
		uint8_t *copy = fuzz_dup(rec, (size_t)rc);

		fuzz_run_with_fixed_crc(check_record_void, copy, (size_t)rc);
		echo_record(e, copy, (size_t)rc);
		free(copy);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct nl_seg_rx *rx = malloc(sizeof(*rx));
	struct echo *e = malloc(sizeof(*e));
	struct model m;
	size_t off = 0;

	FUZZ_CHECK(rx != NULL && e != NULL);
	memset(&m, 0, sizeof(m));
	nl_seg_rx_reset(rx);
	FUZZ_CHECK(!rx->started && !rx->open);
	nl_seg_tx_init(&e->tx);
	FUZZ_CHECK(e->tx.counter == 0);
	nl_seg_rx_reset(&e->rx);

	while (off < size) {
		size_t len = data[off++];
		uint8_t *seg;

		if (len == CHUNK_RESET) {
			nl_seg_rx_reset(rx);
			FUZZ_CHECK(!rx->started && !rx->open);
			m.started = false;
			m.open = false;
			m.len = 0;
			continue;
		}
		if (len > size - off)
			len = size - off;
		seg = fuzz_dup(data + off, len);
		off += len;
		feed_one(rx, &m, e, seg, len);
		free(seg);
	}
	free(e);
	free(rx);
	return 0;
}
