/* SPDX-License-Identifier: MIT */
/* LD_PRELOAD shim for e2e-sync-stall: while the file named by
 * NL_STALL_SYNC_FILE exists, fdatasync() and fsync() wait, as on a disk that
 * stops completing writes (a failing SD card); then they do their work. */
#include <dlfcn.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

int fdatasync(int fd);
int fsync(int fd);

static void stall(void)
{
	const char *f = getenv("NL_STALL_SYNC_FILE");
	struct timespec ts = { .tv_sec = 0, .tv_nsec = 20 * 1000 * 1000 };

	while (f && access(f, F_OK) == 0)
		nanosleep(&ts, NULL);
}

int fdatasync(int fd)
{
	int (*real)(int) = (int (*)(int))dlsym(RTLD_NEXT, "fdatasync");

	stall();
	return real(fd);
}

int fsync(int fd)
{
	int (*real)(int) = (int (*)(int))dlsym(RTLD_NEXT, "fsync");

	stall();
	return real(fd);
}
