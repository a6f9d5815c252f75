/* SPDX-License-Identifier: MIT */
/* log: "<N>" prefix, pen field, one line per event, runtime level. */
#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

#include "check.h"
#include "log.h"

static char captured[8192];

/* Runs the logging calls with stderr sent to a file, returns what came. */
static const char *capture(void (*fn)(void))
{
	char path[] = "/tmp/nlgw-log-XXXXXX";
	int fd = mkstemp(path), saved = dup(STDERR_FILENO);
	ssize_t n;

	CHECK(fd >= 0 && saved >= 0);
	unlink(path);
	CHECK(dup2(fd, STDERR_FILENO) == STDERR_FILENO);
	fn();
	CHECK(dup2(saved, STDERR_FILENO) == STDERR_FILENO);
	close(saved);
	CHECK(lseek(fd, 0, SEEK_SET) == 0);
	n = read(fd, captured, sizeof(captured) - 1);
	CHECK(n >= 0);
	captured[n] = '\0';
	close(fd);
	return captured;
}

static void basic(void)
{
	log_set_max_level(LOG_INFO);
	log_err("disk %s is %d%% full", "sda", 97);
	log_pen_warning("NL-42", "record %u: bad CRC", 17u);
	log_debug("not shown at info");
	log_info("two\nlines");
	errno = ENOENT;
	log_notice("errno kept: %m");
}

static void debug_level(void)
{
	log_set_max_level(LOG_DEBUG);
	log_debug("shown now");
	log_set_max_level(LOG_ERR);
	log_warning("hidden");
	log_crit("shown");
}

int main(void)
{
	CHECK_STR(capture(basic), "<3>disk sda is 97% full\n"
				  "<4>pen=NL-42: record 17: bad CRC\n"
				  "<6>two?lines\n"
				  "<5>errno kept: No such file or directory\n");
	CHECK_STR(capture(debug_level), "<7>shown now\n<2>shown\n");
	CHECK_INT(log_level_from_string("debug"), LOG_DEBUG);
	CHECK_INT(log_level_from_string("warn"), LOG_WARNING);
	CHECK_INT(log_level_from_string("3"), LOG_ERR);
	CHECK_INT(log_level_from_string("loud"), -EINVAL);
	CHECK_INT(log_level_from_string("8"), -EINVAL);
	CHECK_STR(log_level_to_string(LOG_NOTICE), "notice");
	log_set_show_priority(0);
	log_set_max_level(LOG_INFO);
	CHECK_STR(capture(basic), "disk sda is 97% full\n"
				  "pen=NL-42: record 17: bad CRC\n"
				  "two?lines\n"
				  "errno kept: No such file or directory\n");
	printf("test-log: ok\n");
	return 0;
}
