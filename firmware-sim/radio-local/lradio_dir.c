/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "lradio.h"

int lradio_default_dir(char *buf, size_t size)
{
	const char *e = getenv("NEEDLELINK_SIM_DIR");
	int n;

	if (e && e[0])
		n = snprintf(buf, size, "%s", e);
	else if ((e = getenv("XDG_RUNTIME_DIR")) && e[0])
		n = snprintf(buf, size, "%s/needlelink-sim", e);
	else
		n = snprintf(buf, size, "/tmp/needlelink-sim-%u", (unsigned)getuid());
	if (n < 0 || (size_t)n >= size)
		return -ENAMETOOLONG;
	return n;
}
