/* SPDX-License-Identifier: MIT */
/*
 * Named test cases for the limits engine. Each case name starts with the
 * rule id it covers ("NL-R02 ..."), so that `test-limits-x NL-R02` runs the
 * cases of one rule; ctest registers one test per rule id. A filter that
 * matches no case fails (no quiet skips).
 */
#ifndef NL_TEST_LIMITS_HARNESS_H
#define NL_TEST_LIMITS_HARNESS_H

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

struct tcase {
	const char *name;
	void (*fn)(void);
};

static unsigned t_failed_checks;

#define CHECK(cond)                                                                                \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			t_failed_checks++;                                                         \
			fprintf(stderr, "  %s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
		}                                                                                  \
	} while (0)

#define CHECK_INT(got, want)                                                                    \
	do {                                                                                    \
		long long g_ = (long long)(got), w_ = (long long)(want);                        \
		if (g_ != w_) {                                                                 \
			t_failed_checks++;                                                      \
			fprintf(stderr, "  %s:%d: %s == %lld, want %lld\n", __FILE__, __LINE__, \
				#got, g_, w_);                                                  \
		}                                                                               \
	} while (0)

#define CHECK_STR(got, want)                                                              \
	do {                                                                              \
		const char *g_ = (got), *w_ = (want);                                     \
		if (!g_ || !w_ || strcmp(g_, w_) != 0) {                                  \
			t_failed_checks++;                                                \
			fprintf(stderr, "  %s:%d: %s == \"%s\", want \"%s\"\n", __FILE__, \
				__LINE__, #got, g_ ? g_ : "(null)", w_ ? w_ : "(null)");  \
		}                                                                         \
	} while (0)

static inline int run_cases(const struct tcase *cases, size_t n, int argc, char **argv)
{
	unsigned ran = 0, failed = 0;

	for (size_t i = 0; i < n; i++) {
		unsigned before = t_failed_checks;
		bool match = argc < 2;

		for (int a = 1; a < argc; a++)
			match |= strstr(cases[i].name, argv[a]) != NULL;
		if (!match)
			continue;
		cases[i].fn();
		ran++;
		if (t_failed_checks != before) {
			failed++;
			printf("FAIL %s\n", cases[i].name);
		} else {
			printf("ok   %s\n", cases[i].name);
		}
	}
	printf("%u cases, %u failed\n", ran, failed);
	if (ran == 0) {
		fprintf(stderr, "no case matches the filter\n");
		return 1;
	}
	return failed ? 1 : 0;
}

#endif
