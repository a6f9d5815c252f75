/* SPDX-License-Identifier: MIT */
/* A fake journal history, pen facts and requests for the engine tests. */
#ifndef NL_TEST_LIMITS_FAKE_H
#define NL_TEST_LIMITS_FAKE_H

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "engine.h"
#include "limits-internal.h"
#include "needlelink/cp.h"

/* 2026-11-24T10:00:00Z */
#define T0 1795514400LL
#define DAYS(n) ((int64_t)(n)*86400)

struct fake_session {
	char patient[16];
	int64_t start;
	uint32_t zones; /* bit per zone */
	uint8_t uid[NL_CARTRIDGE_UID_LEN];
};

struct fake_history {
	struct fake_session s[64];
	unsigned n;
	int fail; /* when set, every call returns it */
	unsigned calls;
};

static inline void fake_add(struct fake_history *h, const char *patient, int64_t start,
			    uint32_t zones, uint8_t uid0)
{
	struct fake_session *s = &h->s[h->n++];
	memset(s, 0, sizeof(*s));
	snprintf(s->patient, sizeof(s->patient), "%s", patient);
	s->start = start;
	s->zones = zones;
	s->uid[0] = uid0;
	s->uid[7] = 0xA5;
}

static inline int fake_last_session(void *ud, const char *patient, unsigned zone, int64_t *ret_time)
{
	struct fake_history *h = ud;
	int64_t best = 0;
	bool found = false;

	h->calls++;
	if (h->fail)
		return h->fail;
	for (unsigned i = 0; i < h->n; i++)
		if (strcmp(h->s[i].patient, patient) == 0 && (h->s[i].zones & (1u << zone)) &&
		    (!found || h->s[i].start > best)) {
			best = h->s[i].start;
			found = true;
		}
	if (!found)
		return -ENOENT;
	*ret_time = best;
	return 0;
}

static inline int fake_count_sessions(void *ud, const char *patient, int64_t since, unsigned *ret_n)
{
	struct fake_history *h = ud;
	unsigned n = 0;

	h->calls++;
	if (h->fail)
		return h->fail;
	for (unsigned i = 0; i < h->n; i++)
		n += strcmp(h->s[i].patient, patient) == 0 && h->s[i].start >= since;
	*ret_n = n;
	return 0;
}

static inline int fake_cartridge_uses(void *ud, const uint8_t uid[NL_CARTRIDGE_UID_LEN],
				      const char *patient, struct limits_cartridge_use *ret)
{
	struct fake_history *h = ud;
	struct limits_cartridge_use u = {0};

	h->calls++;
	if (h->fail)
		return h->fail;
	for (unsigned i = 0; i < h->n; i++)
		if (memcmp(h->s[i].uid, uid, NL_CARTRIDGE_UID_LEN) == 0) {
			u.sessions++;
			u.other_patient |= strcmp(h->s[i].patient, patient) != 0;
		}
	*ret = u;
	return 0;
}

static const struct limits_history_ops fake_ops = {
	.last_session = fake_last_session,
	.count_sessions = fake_count_sessions,
	.cartridge_uses = fake_cartridge_uses,
};

#define Z(z) (1u << (z))

static inline struct limits_pen_facts pen_default(void)
{
	struct limits_pen_facts p;

	memset(&p, 0, sizeof(p));
	p.feature.proto_major = 1;
	p.feature.flags = NL_FEAT_MOTORISED_DEPTH | NL_FEAT_DEPTH_SENSING |
			  NL_FEAT_CARTRIDGE_READER | NL_FEAT_RTC;
	p.feature.depth_min_um = 0;
	p.feature.depth_max_um = 2500;
	p.feature.depth_step_um = 250;
	p.feature.speed_max_hz = 150;
	p.feature.store_capacity = 1000;
	p.feature.live_rate_hz = 10;
	p.status.state = NL_PEN_STATE_IDLE;
	p.status.flags = NL_STATUS_CARTRIDGE_PRESENT | NL_STATUS_FACTORY_LIMITS;
	p.status.store_capacity = 1000;
	p.status.pen_time = (uint32_t)(T0 - NL_PEN_EPOCH_UNIX);
	p.have_cartridge = true;
	p.cartridge.state = NL_CARTRIDGE_NEW;
	p.cartridge.uid[0] = 0x77; /* never in a fake history unless put there */
	p.cartridge.uid[7] = 0xA5;
	memcpy(p.cartridge.lot, "LOT2611", 8);
	p.cartridge.expiry = p.status.pen_time + 365u * 86400u;
	p.cartridge.needle_count = 12;
	p.cartridge.needle_length_um = 2500;
	return p;
}

static inline struct limits_request req_default(void)
{
	struct limits_request r;

	memset(&r, 0, sizeof(r));
	snprintf(r.pen_serial, sizeof(r.pen_serial), "NL-0001");
	snprintf(r.patient, sizeof(r.patient), "p-8f3a91");
	snprintf(r.operator_id, sizeof(r.operator_id), "op-17");
	r.operator_role = LIMITS_ROLE_PHYSICIAN;
	r.skin_type = 3;
	r.n_zones = 1;
	r.zones[0] = NL_ZONE_CHEEKS;
	return r;
}

static inline struct limits_policy *policy_from(const char *text)
{
	struct limits_policy *p = NULL;

	if (limits_policy_new(&p) < 0 ||
	    limits_policy_load_string(p, "t.conf", text ? text : "") < 0) {
		fprintf(stderr, "bad test policy\n");
		abort();
	}
	return p;
}

/* Finds a finding of rule (and zone, unless zone < 0) in a list. */
static inline const struct limits_finding *find(const struct limits_finding *list, size_t n,
						enum limits_rule rule, int zone)
{
	for (size_t i = 0; i < n; i++)
		if (list[i].rule == rule && (zone < 0 || list[i].zone == zone))
			return &list[i];
	return NULL;
}

#endif
