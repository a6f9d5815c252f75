/* SPDX-License-Identifier: MIT */
#include "log.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

/* Atomics: Paho's threads may log through us while the loop changes the
 * level (SIGHUP, config). */
static atomic_int max_level = LOG_INFO;
static atomic_int show_priority = 1;

static const char *const level_names[8] = {
	"emerg", "alert", "crit", "err", "warning", "notice", "info", "debug",
};

void log_set_max_level(int level)
{
	if (level < LOG_EMERG)
		level = LOG_EMERG;
	if (level > LOG_DEBUG)
		level = LOG_DEBUG;
	atomic_store(&max_level, level);
}

int log_get_max_level(void)
{
	return atomic_load(&max_level);
}

void log_set_show_priority(int show)
{
	atomic_store(&show_priority, show ? 1 : 0);
}

int log_level_from_string(const char *s)
{
	if (!s || !*s)
		return -EINVAL;
	if (s[0] >= '0' && s[0] <= '7' && s[1] == '\0')
		return s[0] - '0';
	for (int i = 0; i < 8; i++)
		if (strcasecmp(s, level_names[i]) == 0)
			return i;
	if (strcasecmp(s, "error") == 0)
		return LOG_ERR;
	if (strcasecmp(s, "warn") == 0)
		return LOG_WARNING;
	return -EINVAL;
}

const char *log_level_to_string(int level)
{
	if (level < 0 || level > 7)
		return "?";
	return level_names[level];
}

/* Replace what would break "one event = one line" or confuse a terminal. */
static void sanitize(char *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c < 0x20 || c == 0x7f)
			s[i] = (c == '\t') ? ' ' : '?';
	}
}

int log_internalv(int level, const char *pen, const char *fmt, va_list ap)
{
	char line[2048];
	size_t len = 0;
	int saved_errno = errno;
	int r;

	if (level < LOG_EMERG)
		level = LOG_EMERG;
	if (level > LOG_DEBUG)
		level = LOG_DEBUG;
	if (level > atomic_load(&max_level))
		return 0;

	if (atomic_load(&show_priority)) {
		r = snprintf(line, sizeof(line), "<%d>", level);
		len = (size_t)r;
	}
	if (pen) {
		size_t start = len;
		r = snprintf(line + len, sizeof(line) - len, "pen=%s: ", pen);
		if (r > 0)
			len += (size_t)r < sizeof(line) - len ? (size_t)r : sizeof(line) - len - 1;
		sanitize(line + start, len - start);
	}
	/* The message may use %m: restore errno for vsnprintf. */
	errno = saved_errno;
	r = vsnprintf(line + len, sizeof(line) - len - 1, fmt, ap);
	if (r < 0)
		r = 0;
	{
		size_t start = len;
		size_t room = sizeof(line) - len - 1;
		len += (size_t)r < room ? (size_t)r : room - 1;
		sanitize(line + start, len - start);
	}
	line[len++] = '\n';

	for (size_t off = 0; off < len;) {
		ssize_t w = write(STDERR_FILENO, line + off, len - off);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			r = -errno;
			errno = saved_errno;
			return r;
		}
		off += (size_t)w;
	}
	errno = saved_errno;
	return (int)len;
}

int log_internal(int level, const char *pen, const char *fmt, ...)
{
	va_list ap;
	int r;

	va_start(ap, fmt);
	r = log_internalv(level, pen, fmt, ap);
	va_end(ap);
	return r;
}
