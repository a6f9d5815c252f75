/* SPDX-License-Identifier: MIT */
/*
 * Fuzz target: record bytes -> nl_record_decode -> nl_payload_record.
 *
 * Whatever the protocol decoder accepts, the builder must turn into JSON
 * (the decoder never lets through a value without a name), and that JSON
 * must print and parse back to the same tree.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_payload.h"
#include "payload.h"

unsigned long fuzz_payload_ok;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const struct nl_payload_record_ctx ctx = {
		.serial = "FZ-1", .msg_id = 1, .received_ms = 1795514400000LL,
	};
	struct nl_record rec;
	uint8_t *buf;
	cJSON *j = NULL, *back;
	char *text;
	int rc;

	buf = malloc(size ? size : 1);
	if (!buf)
		abort();
	memcpy(buf, data, size);
	rc = nl_record_decode(buf, size, &rec);
	free(buf);
	if (rc < 0)
		return 0;
	rc = nl_payload_record(&ctx, &rec, &j);
	if (rc < 0) {
		fprintf(stderr, "fuzz_record: decoded record (type %u) has no payload: %d\n",
			rec.hdr.type, rc);
		abort();
	}
	text = nl_payload_print(j);
	back = text ? cJSON_Parse(text) : NULL;
	if (!back || !cJSON_Compare(j, back, true)) {
		fprintf(stderr, "fuzz_record: payload does not survive print/parse\n");
		abort();
	}
	fuzz_payload_ok++;
	cJSON_Delete(back);
	free(text);
	cJSON_Delete(j);
	return 0;
}
