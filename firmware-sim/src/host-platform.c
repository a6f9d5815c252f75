/* SPDX-License-Identifier: MIT */
#include "host-platform.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static uint64_t mono_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

void host_clock_init(struct host_clock *c, double factor)
{
	c->start_us = mono_us();
	c->factor = factor > 0 ? factor : 1.0;
}

uint64_t host_clock_now_ms(const struct host_clock *c)
{
	return (uint64_t)((double)(mono_us() - c->start_us) * c->factor / 1000.0);
}

uint64_t host_clock_wall_us_until(const struct host_clock *c, uint64_t ms)
{
	uint64_t now = host_clock_now_ms(c);

	if (ms <= now)
		return 0;
	return (uint64_t)((double)(ms - now) * 1000.0 / c->factor);
}

void host_log(const struct host_clock *c, const char *fmt, ...)
{
	char line[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	fprintf(stderr, "[%9.3f] %s\n", c ? (double)host_clock_now_ms(c) / 1000.0 : 0.0, line);
}

void host_log_at(uint64_t ms, const char *fmt, ...)
{
	char line[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	fprintf(stderr, "[%9.3f] %s\n", (double)ms / 1000.0, line);
}

uint64_t host_platform_now_ms(const struct host_platform *h)
{
	return h->fixed ? h->fixed_ms : host_clock_now_ms(h->clock);
}

static uint64_t h_now(void *ctx)
{
	struct host_platform *h = ctx;

	return h->fixed ? h->fixed_ms : host_clock_now_ms(h->clock);
}

static int h_read(void *ctx, unsigned region, uint32_t off, uint8_t *buf, size_t len)
{
	struct host_platform *h = ctx;
	ssize_t n;

	if (region >= SIM_STORAGE_REGIONS)
		return -EINVAL;
	do
		n = pread(h->fd[region], buf, len, off);
	while (n < 0 && errno == EINTR);
	return n < 0 ? -errno : (int)n;
}

static int h_append(void *ctx, unsigned region, const uint8_t *buf, size_t len)
{
	struct host_platform *h = ctx;

	if (region >= SIM_STORAGE_REGIONS)
		return -EINVAL;
	while (len) {
		ssize_t n = write(h->fd[region], buf, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -EIO;
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

static int h_sync(void *ctx, unsigned region)
{
	struct host_platform *h = ctx;

	if (region >= SIM_STORAGE_REGIONS)
		return -EINVAL;
	return fdatasync(h->fd[region]) < 0 ? -errno : 0;
}

static int h_erase(void *ctx, unsigned region)
{
	struct host_platform *h = ctx;

	if (region >= SIM_STORAGE_REGIONS)
		return -EINVAL;
	if (ftruncate(h->fd[region], 0) < 0)
		return -errno;
	return fsync(h->fd[region]) < 0 ? -errno : 0;
}

static uint32_t h_random(void *ctx)
{
	uint32_t v = 0;

	if (getrandom(&v, sizeof(v), GRND_NONBLOCK) != sizeof(v))
		v = (uint32_t)mono_us() * 2654435761u;
	return v;
}

static void h_log(void *ctx, enum sim_log_level level, const char *line)
{
	struct host_platform *h = ctx;

	if ((int)level > h->min_level)
		return;
	host_log_at(host_platform_now_ms(h), "%s", line);
}

static void h_record(void *ctx, const struct nl_record *r)
{
	struct host_platform *h = ctx;

	if (h->record_fn)
		h->record_fn(h->record_ctx, r);
}

int host_mkdir_p(const char *path)
{
	char buf[4096];
	size_t len = strlen(path);

	if (len == 0 || len >= sizeof(buf))
		return -ENAMETOOLONG;
	memcpy(buf, path, len + 1);
	for (char *p = buf + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(buf, 0700) < 0 && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	if (mkdir(buf, 0700) < 0 && errno != EEXIST)
		return -errno;
	return 0;
}

int host_platform_init(struct host_platform *h, const struct host_clock *clock, const char *dir,
		       const char *serial, bool wipe)
{
	char path[4200];
	int r;

	memset(h, 0, sizeof(*h));
	h->fd[0] = h->fd[1] = -1;
	h->clock = clock;
	h->min_level = SIM_LOG_INFO;
	snprintf(h->serial, sizeof(h->serial), "%s", serial);
	r = host_mkdir_p(dir);
	if (r < 0)
		return r;
	for (unsigned i = 0; i < SIM_STORAGE_REGIONS; i++) {
		snprintf(path, sizeof(path), "%s/%s.flash%u", dir, serial, i);
		h->fd[i] = open(
			path, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC | (wipe ? O_TRUNC : 0), 0600);
		if (h->fd[i] < 0) {
			r = -errno;
			host_platform_done(h);
			return r;
		}
	}
	h->plat = (struct sim_platform){
		.ctx = h,
		.now_ms = h_now,
		.storage_read = h_read,
		.storage_append = h_append,
		.storage_sync = h_sync,
		.storage_erase = h_erase,
		.random_u32 = h_random,
		.log = h_log,
		.record = h_record,
	};
	return 0;
}

void host_platform_done(struct host_platform *h)
{
	for (unsigned i = 0; i < SIM_STORAGE_REGIONS; i++) {
		if (h->fd[i] >= 0)
			close(h->fd[i]);
		h->fd[i] = -1;
	}
}
