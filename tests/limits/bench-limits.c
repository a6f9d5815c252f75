/* SPDX-License-Identifier: MIT */
/*
 * Per-sample cost of session supervision: feeds N live samples (a compliant
 * stream, then a stream that violates every second sample after the first
 * CLAMP, i.e. the de-duplication path) and prints ns per sample. Also times
 * limits_authorise(). Prints figures only; asserts nothing about time.
 *
 *   bench-limits [samples]   (default 1000000)
 */
#include <stdio.h>
#include <time.h>

#include "fake.h"

static double now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

int main(int argc, char **argv)
{
	long n = argc > 1 ? atol(argv[1]) : 1000000;
	struct limits_policy *policy = policy_from(NULL);
	struct limits_pen_facts pen = pen_default();
	struct limits_request req = req_default();
	struct fake_history hist = {0};
	static struct limits_decision d;
	struct limits_session *s;
	struct limits_action out[LIMITS_ACTIONS_MAX];
	struct nl_live l;
	unsigned long actions = 0;
	double t0, t1;
	long auth_n = n / 100 > 10 ? n / 100 : 10;

	if (n < 1)
		return 2;
	for (int i = 0; i < 40; i++)
		fake_add(&hist, i % 8 ? "p-other" : "p-8f3a91", T0 - DAYS(400 - 9 * i),
			 Z(NL_ZONE_FOREHEAD), (uint8_t)i);
	req.n_zones = 4;
	req.zones[0] = NL_ZONE_CHEEKS;
	req.zones[1] = NL_ZONE_CHIN;
	req.zones[2] = NL_ZONE_NECK;
	req.zones[3] = NL_ZONE_PERIORBITAL;

	t0 = now_ns();
	for (long i = 0; i < auth_n; i++)
		if (limits_authorise(policy, &req, &pen, &fake_ops, &hist, T0, &d) < 0)
			return 1;
	t1 = now_ns();
	printf("authorise: %ld runs, %.0f ns per request (4 zones, 40 sessions of history)\n",
	       auth_n, (t1 - t0) / (double)auth_n);
	if (d.verdict != LIMITS_VERDICT_AUTHORISE)
		return 1;
	if (limits_session_new(policy, &d, &req, &pen.feature, &fake_ops, &hist, 7, 0, &s) < 0)
		return 1;

	memset(&l, 0, sizeof(l));
	l.state = NL_PEN_STATE_RUNNING;
	l.flags = NL_LIVE_MOTOR_ON;
	l.zone = NL_ZONE_CHEEKS;
	l.depth_set_um = l.depth_measured_um = 1200;
	l.depth_cap_um = 1500;
	l.pass = 1;
	l.session_id = 7;
	t0 = now_ns();
	for (long i = 0; i < n; i++) {
		l.sample = (uint16_t)i;
		l.needle_on_ms = (uint32_t)(i % 1000000);
		l.depth_measured_um = (uint16_t)(1100 + (i & 255));
		int r = limits_session_live(s, &l, i, out, LIMITS_ACTIONS_MAX);
		if (r < 0)
			return 1;
		actions += (unsigned long)r;
	}
	t1 = now_ns();
	printf("live, compliant: %ld samples, %.1f ns per sample, %lu actions\n", n,
	       (t1 - t0) / (double)n, actions);

	actions = 0;
	l.zone = NL_ZONE_CHIN;
	t0 = now_ns();
	for (long i = 0; i < n; i++) {
		l.depth_measured_um = (uint16_t)(i & 1 ? 1900 : 1200);
		int r = limits_session_live(s, &l, n + i, out, LIMITS_ACTIONS_MAX);
		if (r < 0)
			return 1;
		actions += (unsigned long)r;
	}
	t1 = now_ns();
	printf("live, violating (de-duplicated): %ld samples, %.1f ns per sample, %lu actions\n", n,
	       (t1 - t0) / (double)n, actions);
	limits_session_free(s);
	limits_policy_free(policy);
	return 0;
}
