/* SPDX-License-Identifier: MIT */
/*
 * Plain driver for a fuzz target: replays every regular file of the
 * directories (or the files) named on the command line through
 * LLVMFuzzerTestOneInput, each in a heap buffer of exactly its size so the
 * sanitizers see reads past the end. An invariant violation aborts.
 *
 *   replay-<name> [--min-ok N] PATH...
 *
 * Fails when a directory holds no file, and with --min-ok when fewer than
 * N inputs decoded successfully (a corpus the decoder no longer accepts
 * would otherwise only test error paths).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fuzz_common.h"

static int read_file(const char *path, uint8_t **ret_buf, size_t *ret_len)
{
	uint8_t *buf = NULL;
	size_t len = 0, cap = 0;
	int fd, r = 0;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	for (;;) {
		ssize_t n;

		if (len == cap) {
			uint8_t *nb;

			cap = cap ? cap * 2 : 4096;
			nb = realloc(buf, cap);
			if (!nb) {
				r = -ENOMEM;
				goto fail;
			}
			buf = nb;
		}
		n = read(fd, buf + len, cap - len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			r = -errno;
			goto fail;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	close(fd);
	*ret_buf = buf;
	*ret_len = len;
	return 0;
fail:
	free(buf);
	close(fd);
	return r;
}

static int run_file(const char *path)
{
	uint8_t *buf = NULL, *exact;
	size_t len = 0;
	int r;

	r = read_file(path, &buf, &len);
	if (r < 0) {
		fprintf(stderr, "%s: %s\n", path, strerror(-r));
		return r;
	}
	/* An exact-size block: the read buffer has slack after the data. */
	exact = fuzz_dup(buf, len);
	free(buf);
	LLVMFuzzerTestOneInput(exact, len);
	free(exact);
	return 0;
}

static int skip_entry(const struct dirent *d)
{
	return d->d_name[0] != '.';
}

static int run_dir(const char *dir, unsigned long *count)
{
	struct dirent **names;
	unsigned long files = 0;
	int n, r = 0;

	n = scandir(dir, &names, skip_entry, alphasort);
	if (n < 0) {
		fprintf(stderr, "%s: %s\n", dir, strerror(errno));
		return -errno;
	}
	for (int i = 0; i < n; i++) {
		char path[4096];
		struct stat st;

		if (r == 0) {
			if (snprintf(path, sizeof(path), "%s/%s", dir, names[i]->d_name) >=
			    (int)sizeof(path))
				r = -ENAMETOOLONG;
			else if (stat(path, &st) < 0)
				r = -errno;
			else if (S_ISREG(st.st_mode)) {
				r = run_file(path);
				files++;
			}
		}
		free(names[i]);
	}
	free(names);
	if (r == 0 && files == 0) {
		fprintf(stderr, "%s: no input files\n", dir);
		r = -ENOENT;
	}
	*count += files;
	return r;
}

int main(int argc, char **argv)
{
	unsigned long files = 0, min_ok = 0;
	int i = 1;

	if (argc > 2 && strcmp(argv[1], "--min-ok") == 0) {
		char *end;

		min_ok = strtoul(argv[2], &end, 10);
		if (*argv[2] == '\0' || *end != '\0') {
			fprintf(stderr, "--min-ok: not a number: %s\n", argv[2]);
			return 2;
		}
		i = 3;
	}
	if (i >= argc) {
		fprintf(stderr, "usage: %s [--min-ok N] DIR|FILE...\n", argv[0]);
		return 2;
	}
	for (; i < argc; i++) {
		struct stat st;
		int r;

		if (stat(argv[i], &st) < 0) {
			fprintf(stderr, "%s: %s\n", argv[i], strerror(errno));
			return 1;
		}
		if (S_ISDIR(st.st_mode)) {
			r = run_dir(argv[i], &files);
		} else {
			r = run_file(argv[i]);
			files++;
		}
		if (r < 0)
			return 1;
	}
	printf("replayed %lu inputs, %lu decoded\n", files, fuzz_decoded_ok);
	if (fuzz_decoded_ok < min_ok) {
		fprintf(stderr, "only %lu inputs decoded, want at least %lu\n", fuzz_decoded_ok,
			min_ok);
		return 1;
	}
	return 0;
}
