/* SPDX-License-Identifier: MIT */
/* Checksums of the NeedleLink protocol. */
#ifndef NEEDLELINK_CRC_H
#define NEEDLELINK_CRC_H

#include <stddef.h>
#include <stdint.h>

/* E2E-CRC: CRC-16/MCRF4XX (poly 0x1021 reflected = 0x8408, init 0xFFFF,
 * reflected in and out, no final XOR). Check value of "123456789": 0x6F91.
 * Appended little endian after the bytes it covers. */
uint16_t nl_crc16(const uint8_t *buf, size_t len);

/* Limit-set hash: 32-bit FNV-1a (offset 0x811C9DC5, prime 0x01000193)
 * over the canonical encoding of a limit set. */
uint32_t nl_fnv1a32(const uint8_t *buf, size_t len);

#endif
