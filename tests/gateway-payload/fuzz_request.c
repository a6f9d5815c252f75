/* SPDX-License-Identifier: MIT */
/*
 * Fuzz target: the MQTT request parser (nl_payload_parse_request_ex).
 *
 * Input: byte 0 picks the op (one past the last op is an unknown one), the
 * rest is the payload. Invariants: a failure leaves *ret untouched, names a
 * known error code whose errno matches, and carries a message; a success
 * yields values inside their documented ranges; the parse is repeatable.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_payload.h"
#include "payload.h"

unsigned long fuzz_payload_ok;

static void check(int cond, const char *what)
{
	if (!cond) {
		fprintf(stderr, "fuzz_request: invariant failed: %s\n", what);
		abort();
	}
}

static void check_success(const struct nl_payload_request *r)
{
	size_t tl = strlen(r->transaction);

	check(tl >= 1 && tl <= NL_PAYLOAD_ID_MAX, "transaction length");
	check(r->op < NL_PAYLOAD_OP_COUNT, "op");
	switch ((enum nl_payload_op)r->op) {
	case NL_PAYLOAD_OP_SET_TIME:
		if (r->u.set_time.has_time)
			check(r->u.set_time.unix_ms >= NL_PEN_EPOCH_UNIX * 1000, "set_time range");
		break;
	case NL_PAYLOAD_OP_LOCK:
		check(r->u.lock.reason >= 1 && nl_lock_reason_name(r->u.lock.reason), "lock reason");
		break;
	case NL_PAYLOAD_OP_UNLOCK:
		check(r->u.unlock.operator_role < NL_PAYLOAD_ROLE_COUNT, "unlock role");
		check(r->u.unlock.operator_id[0] != '\0', "unlock operator");
		break;
	case NL_PAYLOAD_OP_SET_ZONE:
		check(nl_zone_valid(r->u.set_zone.zone), "set_zone zone");
		break;
	case NL_PAYLOAD_OP_STOP_SESSION:
	case NL_PAYLOAD_OP_READ_STATE:
	case NL_PAYLOAD_OP_RELEASE:
		break;
	case NL_PAYLOAD_OP_AUTHORISE: {
		const struct nl_payload_authorise *a = &r->u.authorise;

		check(a->skin_type >= 1 && a->skin_type <= 6, "skin type");
		check(a->operator_role < NL_PAYLOAD_ROLE_COUNT, "role");
		check(a->contraindications < (1u << NL_PAYLOAD_CI_COUNT), "contraindications");
		check(a->zone_count >= 1 && a->zone_count <= NL_LIMIT_ZONES_MAX, "zone count");
		for (unsigned i = 0; i < a->zone_count; i++) {
			check(nl_zone_valid(a->zones[i]), "zone");
			for (unsigned k = 0; k < i; k++)
				check(a->zones[k] != a->zones[i], "unique zones");
		}
		check(a->patient[0] && a->operator_id[0], "ids");
		if (a->has_override)
			check(a->override_physician_id[0] && a->override_reason[0], "override");
		break;
	}
	case NL_PAYLOAD_OP_PAIR:
		check(!r->u.pair.has_passkey || r->u.pair.passkey <= 999999, "passkey");
		break;
	case NL_PAYLOAD_OP_COUNT:
		check(0, "op count");
		break;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const int rcs[NL_PAYLOAD_REQ_ERROR_COUNT] = {
		-EBADMSG, -EOPNOTSUPP, -EPROTO, -ENOENT, -EINVAL, -ERANGE, -E2BIG,
	};
	struct nl_payload_request r, r2, before;
	struct nl_payload_parse_error e, e2;
	const char *op;
	char *json;
	int rc, rc2;

	if (size < 1)
		return 0;
	op = data[0] % (NL_PAYLOAD_OP_COUNT + 1) < NL_PAYLOAD_OP_COUNT
		     ? nl_payload_op_name((enum nl_payload_op)(data[0] % (NL_PAYLOAD_OP_COUNT + 1)))
		     : "no_such_op";
	/* Exact-size copy, not NUL terminated: ASan sees any read past len. */
	json = malloc(size - 1 ? size - 1 : 1);
	check(json != NULL, "malloc");
	memcpy(json, data + 1, size - 1);

	memset(&r, 0xA5, sizeof(r));
	before = r;
	rc = nl_payload_parse_request_ex(op, json, size - 1, &r, &e);
	if (rc == 0) {
		check_success(&r);
		fuzz_payload_ok++;
	} else {
		check(memcmp(&r, &before, sizeof(r)) == 0, "ret untouched on failure");
		check(e.code < NL_PAYLOAD_REQ_ERROR_COUNT, "error code");
		check(rcs[e.code] == rc, "errno matches code");
		check(e.message[0] != '\0', "message");
		check(memchr(e.field, '\0', sizeof(e.field)) != NULL, "field terminated");
	}
	memset(&r2, 0xA5, sizeof(r2));
	rc2 = nl_payload_parse_request_ex(op, json, size - 1, &r2, &e2);
	check(rc2 == rc, "repeatable");
	if (rc == 0)
		check(memcmp(&r, &r2, sizeof(r)) == 0, "same result");
	free(json);
	return 0;
}
