/* SPDX-License-Identifier: MIT */
/* BlueZ pairing requests: not wired yet (issue #6). */
#include <stdbool.h>

#include "daemon-internal.h"

int dpair_new(struct daemon *d)
{
	(void)d;
	return 0;
}

void dpair_free(struct daemon *d)
{
	(void)d;
}

bool dpair_request(struct daemon *d, struct pending_req *pr)
{
	(void)d, (void)pr;
	return false;
}
