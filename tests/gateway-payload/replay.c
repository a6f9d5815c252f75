/* SPDX-License-Identifier: MIT */
/*
 * Replays a fuzz corpus through a target without libFuzzer:
 *   replay-payload-X --min-ok N DIR
 * Fails when a file cannot be read, when the target aborts (an invariant),
 * or when fewer than N inputs were accepted: a corpus the code stopped
 * accepting would otherwise only exercise error paths.
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_payload.h"

static int replay_file(const char *path)
{
	FILE *f = fopen(path, "rb");
	uint8_t *buf = NULL;
	size_t n = 0, cap = 0;

	if (!f)
		return -errno;
	for (;;) {
		if (n == cap) {
			uint8_t *nb;

			cap = cap ? 2 * cap : 4096;
			nb = realloc(buf, cap);
			if (!nb) {
				free(buf);
				fclose(f);
				return -ENOMEM;
			}
			buf = nb;
		}
		size_t got = fread(buf + n, 1, cap - n, f);

		n += got;
		if (got == 0)
			break;
	}
	fclose(f);
	LLVMFuzzerTestOneInput(buf, n);
	free(buf);
	return 0;
}

int main(int argc, char **argv)
{
	unsigned long min_ok, files = 0;
	struct dirent *de;
	char path[4096];
	DIR *d;

	if (argc != 4 || strcmp(argv[1], "--min-ok") != 0) {
		fprintf(stderr, "usage: %s --min-ok N DIR\n", argv[0]);
		return 2;
	}
	min_ok = strtoul(argv[2], NULL, 10);
	d = opendir(argv[3]);
	if (!d) {
		fprintf(stderr, "%s: %s\n", argv[3], strerror(errno));
		return 1;
	}
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", argv[3], de->d_name);
		if (replay_file(path) < 0) {
			fprintf(stderr, "%s: cannot read\n", path);
			closedir(d);
			return 1;
		}
		files++;
	}
	closedir(d);
	printf("replayed %lu inputs, %lu accepted (need %lu)\n", files, fuzz_payload_ok, min_ok);
	return files > 0 && fuzz_payload_ok >= min_ok ? 0 : 1;
}
