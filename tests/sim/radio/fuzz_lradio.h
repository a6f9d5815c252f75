/* SPDX-License-Identifier: MIT */
#ifndef FUZZ_LRADIO_H
#define FUZZ_LRADIO_H

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
/* Inputs that decoded (frame or .adv) since start. */
extern unsigned long fuzz_lradio_ok;

#endif
