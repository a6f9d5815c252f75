/* SPDX-License-Identifier: MIT */
/*
 * nl-bench-fsync DIR [N]: the floor a synchronous=FULL commit sits on.
 * Appends 4 KiB and fdatasync()s it N times (default 500) in a scratch file
 * in DIR (the journal's disk) and prints latency percentiles in us. Every
 * journal commit waits for at least one such sync, so its p99 bounds how low
 * the gateway's arrival->PUBLISH p99 can go.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static uint64_t mono_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
	static char block[4096];
	char path[4096];
	uint64_t *v;
	long n = argc > 2 ? strtol(argv[2], NULL, 10) : 500;
	int fd;

	if (argc < 2 || n < 1 || n > 1000000) {
		fprintf(stderr, "usage: %s DIR [N]\n", argv[0]);
		return 2;
	}
	snprintf(path, sizeof(path), "%s/nl-bench-fsync.%ld", argv[1], (long)getpid());
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0) {
		fprintf(stderr, "%s: %s\n", path, strerror(errno));
		return 1;
	}
	(void)unlink(path);
	v = calloc((size_t)n, sizeof(*v));
	if (!v)
		return 1;
	for (long i = 0; i < n; i++) {
		uint64_t t = mono_us();

		if (write(fd, block, sizeof(block)) != (ssize_t)sizeof(block) || fdatasync(fd) < 0) {
			fprintf(stderr, "%s: %s\n", path, strerror(errno));
			return 1;
		}
		v[i] = mono_us() - t;
	}
	close(fd);
	qsort(v, (size_t)n, sizeof(*v), cmp_u64);
	printf("fsync floor (4 KiB write + fdatasync, %ld runs) us: p50 %llu p90 %llu p99 %llu"
	       " max %llu\n",
	       n, (unsigned long long)v[n / 2], (unsigned long long)v[n * 9 / 10],
	       (unsigned long long)v[n * 99 / 100], (unsigned long long)v[n - 1]);
	free(v);
	return 0;
}
