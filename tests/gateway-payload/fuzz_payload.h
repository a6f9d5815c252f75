/* SPDX-License-Identifier: MIT */
/* Shared by the payload fuzz targets and their corpus replay driver. */
#ifndef NL_FUZZ_PAYLOAD_H
#define NL_FUZZ_PAYLOAD_H

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
/* Inputs the target accepted (parsed / decoded and built). */
extern unsigned long fuzz_payload_ok;

#endif
