/* SPDX-License-Identifier: MIT */
#include "harness.h"

#include <errno.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* ---- pen platform: RAM flash, monotonic clock ------------------------ */

static uint64_t plat_now_ms(void *ctx)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static int plat_read(void *ctx, unsigned region, uint32_t off, uint8_t *buf, size_t len)
{
	struct tpen *tp = ctx;
	struct h_region *r = &tp->reg[region];

	if (region >= 2)
		return -EINVAL;
	if (off >= r->len)
		return 0;
	if (len > r->len - off)
		len = r->len - off;
	memcpy(buf, r->buf + off, len);
	return (int)len;
}

static int plat_append(void *ctx, unsigned region, const uint8_t *buf, size_t len)
{
	struct tpen *tp = ctx;
	struct h_region *r = &tp->reg[region];

	if (region >= 2)
		return -EINVAL;
	if (r->len + len > r->cap) {
		size_t cap = r->cap ? r->cap : 4096;
		uint8_t *n;

		while (cap < r->len + len)
			cap *= 2;
		n = realloc(r->buf, cap);
		if (!n)
			return -ENOMEM;
		r->buf = n;
		r->cap = cap;
	}
	memcpy(r->buf + r->len, buf, len);
	r->len += len;
	return 0;
}

static int plat_sync(void *ctx, unsigned region)
{
	return region < 2 ? 0 : -EINVAL;
}

static int plat_erase(void *ctx, unsigned region)
{
	struct tpen *tp = ctx;

	if (region >= 2)
		return -EINVAL;
	tp->reg[region].len = 0;
	return 0;
}

static uint32_t plat_random(void *ctx)
{
	struct tpen *tp = ctx;

	/* xorshift32: the store epoch only has to differ between pens. */
	tp->rng ^= tp->rng << 13;
	tp->rng ^= tp->rng >> 17;
	tp->rng ^= tp->rng << 5;
	return tp->rng;
}

static void plat_log(void *ctx, enum sim_log_level level, const char *line)
{
	if (getenv("GWLINK_TEST_VERBOSE"))
		fprintf(stderr, "pen: %s\n", line);
}

static int tick_cb(sd_event_source *s, uint64_t usec, void *userdata)
{
	struct tpen *tp = userdata;

	if (tp->ticking)
		sim_pen_tick(tp->pen);
	(void)sd_event_source_set_time(s, usec + 20000);
	return 0;
}

struct tpen *h_pen_new(struct harness *h, const char *serial, bool clock_set)
{
	struct tpen *tp = calloc(1, sizeof(*tp));
	struct sim_pen_config cfg;
	struct lradio_adv adv = { .rssi = -55 };
	uint64_t now;

	CHECK(tp);
	CHECK(h->n_pens < H_PENS_MAX);
	tp->h = h;
	snprintf(tp->serial, sizeof(tp->serial), "%s", serial);
	tp->rng = 0x9e3779b9u;
	for (const char *c = serial; *c; c++)
		tp->rng = tp->rng * 31u + (uint8_t)*c;
	tp->plat = (struct sim_platform){
		.ctx = tp,
		.now_ms = plat_now_ms,
		.storage_read = plat_read,
		.storage_append = plat_append,
		.storage_sync = plat_sync,
		.storage_erase = plat_erase,
		.random_u32 = plat_random,
		.log = plat_log,
	};
	sim_pen_config_default(&cfg);
	snprintf(cfg.serial, sizeof(cfg.serial), "%s", serial);
	cfg.clock_start = clock_set ? (uint32_t)(time(NULL) - NL_PEN_EPOCH_UNIX) : 0;
	cfg.live_rate_hz = 10;
	CHECK(sim_pen_new(&tp->pen, &cfg, &tp->plat) == 0);

	snprintf(adv.name, sizeof(adv.name), "NeedleLink %s", serial);
	snprintf(adv.serial, sizeof(adv.serial), "%s", serial);
	snprintf(adv.service_uuid, sizeof(adv.service_uuid), "%s", NL_UUID_SERVICE);
	snprintf(adv.kind, sizeof(adv.kind), "pen");
	CHECK(lradio_server_new(h->ev, h->dir, &adv, sim_pen_gatt_ops(), tp->pen, &tp->srv) == 0);
	sim_pen_set_radio(tp->pen, lradio_server_radio_ops(), tp->srv);
	CHECK(sim_pen_power_on(tp->pen) == 0);
	tp->ticking = true;
	CHECK(sd_event_now(h->ev, CLOCK_MONOTONIC, &now) >= 0);
	CHECK(sd_event_add_time(h->ev, &tp->tick, CLOCK_MONOTONIC, now + 20000, 0, tick_cb, tp) >=
	      0);
	CHECK(sd_event_source_set_enabled(tp->tick, SD_EVENT_ON) >= 0);
	h->pens[h->n_pens++] = tp;
	return tp;
}

void h_pen_free(struct tpen *tp)
{
	struct harness *h;

	if (!tp)
		return;
	h = tp->h;
	for (size_t i = 0; i < h->n_pens; i++)
		if (h->pens[i] == tp) {
			h->pens[i] = h->pens[--h->n_pens];
			break;
		}
	sd_event_source_disable_unref(tp->tick);
	lradio_server_free(tp->srv);
	sim_pen_set_radio(tp->pen, NULL, NULL);
	sim_pen_free(tp->pen);
	free(tp->reg[0].buf);
	free(tp->reg[1].buf);
	free(tp);
}

void h_pen_records(struct tpen *tp, unsigned n)
{
	CHECK(n % 2 == 0);
	for (unsigned i = 0; i < n / 2; i++) {
		struct sim_cartridge c = {
			.expiry = 0xFFFFFF00u,
			.needle_count = 12,
			.needle_length_um = 1500,
		};

		tp->carts++;
		memcpy(c.uid, &tp->carts, sizeof(tp->carts));
		c.uid[7] = 0xA5;
		snprintf(c.lot, sizeof(c.lot), "L%05u", tp->carts);
		CHECK(sim_pen_insert_cartridge(tp->pen, &c) == 0);
		CHECK(sim_pen_remove_cartridge(tp->pen) == 0);
	}
}

void h_pen_info(struct tpen *tp, struct sim_pen_info *ret)
{
	sim_pen_get_info(tp->pen, ret);
}

/* ---- gateway side ----------------------------------------------------- */

struct h_seen *h_seen(struct harness *h, const char *serial)
{
	for (size_t i = 0; i < h->n_seen; i++)
		if (strcmp(h->seen[i].serial, serial) == 0)
			return &h->seen[i];
	CHECK(h->n_seen < H_PENS_MAX);
	snprintf(h->seen[h->n_seen].serial, sizeof(h->seen[0].serial), "%s", serial);
	h->seen[h->n_seen].state = PENMGR_STATE_LOST;
	return &h->seen[h->n_seen++];
}

static int release_cb(sd_event_source *s, void *userdata)
{
	struct harness *h = userdata;

	if (h->mode == H_COMMIT_DEFERRED)
		h_release_all(h);
	return sd_event_source_set_enabled(s, SD_EVENT_OFF);
}

static int sink_record(void *user_data, const char *serial, const struct nl_record *rec,
		       const uint8_t *raw, size_t len, penmgr_commit_fn done, void *commit_data)
{
	struct harness *h = user_data;
	struct h_seen *s = h_seen(h, serial);
	struct nl_record again;

	/* The raw bytes must be the record itself. */
	CHECK(nl_record_decode(raw, len, &again) == 0);
	CHECK_EQ(again.hdr.seq, rec->hdr.seq);
	CHECK(rec->hdr.seq > 0 && rec->hdr.seq <= H_SEQ_MAX);
	CHECK(s->n_seqs < H_SEQ_MAX);
	s->seqs[s->n_seqs++] = rec->hdr.seq;
	s->delivered[rec->hdr.seq]++;
	if (h->n_held == h->cap_held) {
		h->cap_held = h->cap_held ? h->cap_held * 2 : 64;
		h->held = realloc(h->held, h->cap_held * sizeof(*h->held));
		CHECK(h->held);
	}
	snprintf(h->held[h->n_held].serial, sizeof(h->held[0].serial), "%s", serial);
	h->held[h->n_held].seq = rec->hdr.seq;
	h->held[h->n_held].done = done;
	h->held[h->n_held].data = commit_data;
	h->n_held++;
	if (h->mode == H_COMMIT_DEFERRED)
		CHECK(sd_event_source_set_enabled(h->release_src, SD_EVENT_ONESHOT) >= 0);
	return 0;
}

static int sink_cursor(void *user_data, const char *serial, uint32_t *ret_epoch,
		       uint32_t *ret_seq)
{
	struct harness *h = user_data;
	struct h_seen *s = h_seen(h, serial);
	struct penmgr_snapshot snap;
	uint32_t hi = 0;

	if (!h->remember || penmgr_get_snapshot(h->pm, serial, &snap) < 0 || !snap.has_status)
		return -ENOENT;
	for (uint32_t q = 1; q <= H_SEQ_MAX; q++)
		if (s->delivered[q])
			hi = q;
	if (!hi)
		return -ENOENT;
	*ret_epoch = snap.status.store_epoch;
	*ret_seq = hi;
	return 0;
}

static int sink_gaps(void *user_data, const char *serial, uint32_t epoch, uint32_t after_seq,
		     uint32_t *ret_a, uint32_t *ret_b, size_t max)
{
	struct harness *h = user_data;
	struct h_seen *s = h_seen(h, serial);
	uint32_t q = after_seq + 1;
	int n = 0;

	CHECK(h->remember);
	if (h->gaps_err < 0)
		return h->gaps_err;
	while (q <= H_SEQ_MAX && (size_t)n < max) {
		uint32_t a;

		while (q <= H_SEQ_MAX && s->delivered[q])
			q++;
		a = q;
		while (q <= H_SEQ_MAX && !s->delivered[q])
			q++;
		if (q > H_SEQ_MAX)
			break; /* past the last one received: not a gap */
		ret_a[n] = a;
		ret_b[n] = q - 1;
		n++;
	}
	return n;
}

static void sink_event(void *user_data, const struct penmgr_event *ev)
{
	struct harness *h = user_data;
	struct h_seen *s = h_seen(h, ev->serial);

	s->events++;
	switch (ev->type) {
	case PENMGR_EVENT_STATE:
		s->state = ev->u.state.to;
		if (ev->u.state.to == PENMGR_STATE_READY)
			s->ready_count++;
		break;
	case PENMGR_EVENT_ALERT:
		CHECK(ev->u.alert.alert < PENMGR_ALERT_COUNT);
		s->alerts[ev->u.alert.alert]++;
		break;
	case PENMGR_EVENT_SNAPSHOT:
	case PENMGR_EVENT_LIVE:
		break;
	}
}

size_t h_held(struct harness *h)
{
	return h->n_held;
}

bool h_release(struct harness *h, const char *serial, uint32_t seq, int err)
{
	for (size_t i = 0; i < h->n_held; i++) {
		struct h_commit c = h->held[i];

		if (c.seq != seq || strcmp(c.serial, serial) != 0)
			continue;
		memmove(h->held + i, h->held + i + 1, (h->n_held - i - 1) * sizeof(*h->held));
		h->n_held--;
		c.done(err, c.data);
		return true;
	}
	return false;
}

void h_release_all(struct harness *h)
{
	while (h->n_held > 0) {
		struct h_commit c = h->held[0];

		memmove(h->held, h->held + 1, (h->n_held - 1) * sizeof(*h->held));
		h->n_held--;
		c.done(0, c.data);
	}
}

void h_init(struct harness *h)
{
	const char *tmp = getenv("TMPDIR");

	memset(h, 0, sizeof(*h));
	CHECK(sd_event_new(&h->ev) >= 0);
	snprintf(h->dir, sizeof(h->dir), "%s/gwlink-XXXXXX", tmp && tmp[0] ? tmp : "/tmp");
	CHECK(mkdtemp(h->dir));
	CHECK(sd_event_add_defer(h->ev, &h->release_src, release_cb, h) >= 0);
	CHECK(sd_event_source_set_enabled(h->release_src, SD_EVENT_OFF) >= 0);
	/* Fast reconnection and short watchdogs keep the tests quick. */
	h->cfg.backoff_min_usec = 20000;
	h->cfg.backoff_max_usec = 500000;
	h->cfg.watchdog_usec = 3000000;
	h->cfg.cp_timeout_usec = 5000000;
	h->cfg.racp_timeout_usec = 10000000;
	h->mode = H_COMMIT_DEFERRED;
}

void h_gateway_start(struct harness *h, const char *const *allow)
{
	struct transport_config tcfg = { .sim_dir = h->dir };
	struct penmgr_callbacks cb = {
		.record = sink_record,
		.cursor = sink_cursor,
		.gaps = sink_gaps,
		.event = sink_event,
	};

	CHECK(transport_new(h->ev, "sim", &tcfg, &h->t) == 0);
	h->cfg.allow = allow;
	CHECK(penmgr_new(h->ev, h->t, &h->cfg, &cb, h, &h->pm) == 0);
	CHECK(penmgr_start(h->pm) == 0);
}

void h_gateway_stop(struct harness *h)
{
	penmgr_free(h->pm);
	h->pm = NULL;
	transport_free(h->t);
	h->t = NULL;
	/* Commits still held complete into the freed manager: a no-op. */
	h_release_all(h);
}

void h_fini(struct harness *h)
{
	h_gateway_stop(h);
	while (h->n_pens > 0)
		h_pen_free(h->pens[0]);
	free(h->held);
	sd_event_source_disable_unref(h->release_src);
	sd_event_source_disable_unref(h->deadline);
	sd_event_unref(h->ev);
	CHECK(rmdir(h->dir) == 0);
}

static int deadline_cb(sd_event_source *s, uint64_t usec, void *userdata)
{
	struct harness *h = userdata;

	h->deadline_hit = true;
	return 0;
}

void h_wait(struct harness *h, h_cond_fn cond, void *data, uint64_t timeout_ms, const char *what)
{
	uint64_t now;

	CHECK(sd_event_now(h->ev, CLOCK_MONOTONIC, &now) >= 0);
	h->deadline_hit = false;
	if (h->deadline) {
		CHECK(sd_event_source_set_time(h->deadline, now + timeout_ms * 1000) >= 0);
		CHECK(sd_event_source_set_enabled(h->deadline, SD_EVENT_ONESHOT) >= 0);
	} else {
		CHECK(sd_event_add_time(h->ev, &h->deadline, CLOCK_MONOTONIC,
					now + timeout_ms * 1000, 0, deadline_cb, h) >= 0);
	}
	while (!cond(h, data)) {
		CHECK(sd_event_run(h->ev, UINT64_MAX) >= 0);
		if (h->deadline_hit) {
			fprintf(stderr, "deadline: still waiting for %s after %llu ms\n", what,
				(unsigned long long)timeout_ms);
			exit(1);
		}
	}
	CHECK(sd_event_source_set_enabled(h->deadline, SD_EVENT_OFF) >= 0);
}

enum penmgr_state h_state(struct harness *h, const char *serial)
{
	struct penmgr_snapshot snap;

	if (penmgr_get_snapshot(h->pm, serial, &snap) < 0)
		return PENMGR_STATE_COUNT;
	return snap.state;
}

bool h_cond_ready(struct harness *h, void *serial)
{
	return h_state(h, serial) == PENMGR_STATE_READY;
}

struct penmgr_counters h_counters(struct harness *h, const char *serial)
{
	struct penmgr_counters c;

	CHECK(penmgr_get_counters(h->pm, serial, &c) == 0);
	return c;
}
