/* SPDX-License-Identifier: MIT */
/* Tiny assertion helpers for the local radio tests. */
#ifndef LRADIO_THARNESS_H
#define LRADIO_THARNESS_H

#include <stdio.h>
#include <stdlib.h>

#define CHECK(cond)                                                                  \
	do {                                                                         \
		if (!(cond)) {                                                       \
			fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, \
			        #cond);                                              \
			exit(1);                                                     \
		}                                                                    \
	} while (0)

#define CHECK_EQ(a, b)                                                               \
	do {                                                                         \
		long long a_ = (long long)(a), b_ = (long long)(b);                  \
		if (a_ != b_) {                                                      \
			fprintf(stderr, "%s:%d: %s == %lld, expected %s == %lld\n",   \
			        __FILE__, __LINE__, #a, a_, #b, b_);                 \
			exit(1);                                                     \
		}                                                                    \
	} while (0)

#endif
