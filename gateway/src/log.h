/* SPDX-License-Identifier: MIT */
/*
 * Daemon logging: one line per event on stderr, prefixed with "<N>" (the
 * syslog priority) so journald, reading a service's stderr, files each line
 * at its priority (the sd-daemon convention).
 *
 *   log_info("connected to %s:%d", host, port);
 *   log_pen_warning(serial, "record %u: bad CRC", seq);
 *     -> "<4>pen=SN0042: record 17: bad CRC"
 *
 * Lines above the runtime level are dropped before formatting. A line is
 * written with a single write(2), so lines from several threads never
 * interleave; embedded newlines and control characters are replaced, so one
 * event is always one line. Safe to call from any thread.
 */
#ifndef NLGW_LOG_H
#define NLGW_LOG_H

#include <stdarg.h>
#include <syslog.h>

/* Highest priority value (LOG_EMERG=0 .. LOG_DEBUG=7) still written.
 * Default LOG_INFO. Values outside 0..7 are clamped. */
void log_set_max_level(int level);
int log_get_max_level(void);

/* "emerg", "alert", "crit", "err"/"error", "warning"/"warn", "notice",
 * "info", "debug", or a digit 0..7. Returns the level or -EINVAL. */
int log_level_from_string(const char *s);
/* Canonical name of a level ("err", "info", ...), "?" if out of range. */
const char *log_level_to_string(int level);

/* Write "<"level">" always (default), or never: a tty reader may prefer
 * the bare text. */
void log_set_show_priority(int show);

/* Formats and writes one line. pen may be NULL. Returns the number of bytes
 * written (0 when filtered out) or -errno. */
int log_internal(int level, const char *pen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
int log_internalv(int level, const char *pen, const char *fmt, va_list ap)
	__attribute__((format(printf, 3, 0)));

#define log_full(level, pen, ...) log_internal((level), (pen), __VA_ARGS__)

#define log_emerg(...) log_internal(LOG_EMERG, NULL, __VA_ARGS__)
#define log_alert(...) log_internal(LOG_ALERT, NULL, __VA_ARGS__)
#define log_crit(...) log_internal(LOG_CRIT, NULL, __VA_ARGS__)
#define log_err(...) log_internal(LOG_ERR, NULL, __VA_ARGS__)
#define log_warning(...) log_internal(LOG_WARNING, NULL, __VA_ARGS__)
#define log_notice(...) log_internal(LOG_NOTICE, NULL, __VA_ARGS__)
#define log_info(...) log_internal(LOG_INFO, NULL, __VA_ARGS__)
#define log_debug(...) log_internal(LOG_DEBUG, NULL, __VA_ARGS__)

#define log_pen_err(pen, ...) log_internal(LOG_ERR, (pen), __VA_ARGS__)
#define log_pen_warning(pen, ...) log_internal(LOG_WARNING, (pen), __VA_ARGS__)
#define log_pen_notice(pen, ...) log_internal(LOG_NOTICE, (pen), __VA_ARGS__)
#define log_pen_info(pen, ...) log_internal(LOG_INFO, (pen), __VA_ARGS__)
#define log_pen_debug(pen, ...) log_internal(LOG_DEBUG, (pen), __VA_ARGS__)

#endif
