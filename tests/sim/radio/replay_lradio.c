/* SPDX-License-Identifier: MIT */
/*
 * Replays a corpus directory through the local radio fuzz target, each input
 * in a heap block of exactly its size (so ASan sees any read past it).
 *   replay-lradio-wire MIN_OK DIR
 * Fails when DIR holds no input or fewer than MIN_OK inputs decode.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fuzz_lradio.h"

static int replay(const char *path)
{
	struct stat st;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) < 0) {
		fprintf(stderr, "%s: %s\n", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	size_t len = (size_t)st.st_size;
	uint8_t *buf = malloc(len ? len : 1);
	if (!buf || read(fd, buf, len) != (ssize_t)len) {
		fprintf(stderr, "%s: short read\n", path);
		free(buf);
		close(fd);
		return -1;
	}
	close(fd);
	LLVMFuzzerTestOneInput(buf, len);
	free(buf);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc != 3) {
		fprintf(stderr, "usage: %s MIN_OK DIR\n", argv[0]);
		return 2;
	}
	unsigned long min_ok = strtoul(argv[1], NULL, 10);
	DIR *d = opendir(argv[2]);
	if (!d) {
		fprintf(stderr, "%s: %s\n", argv[2], strerror(errno));
		return 1;
	}
	unsigned long n = 0;
	struct dirent *e;
	while ((e = readdir(d))) {
		char path[4096];
		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", argv[2], e->d_name);
		if (replay(path) < 0) {
			closedir(d);
			return 1;
		}
		n++;
	}
	closedir(d);
	printf("%lu inputs, %lu decoded\n", n, fuzz_lradio_ok);
	if (n == 0 || fuzz_lradio_ok < min_ok) {
		fprintf(stderr, "corpus empty or decoding fewer than %lu\n", min_ok);
		return 1;
	}
	return 0;
}
