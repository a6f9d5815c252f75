/* SPDX-License-Identifier: MIT */
#include "needlelink/crc.h"

/* Bitwise rather than table driven: values are at most a few hundred bytes
 * and a table would be the only non-trivial constant in the library. */
uint16_t nl_crc16(const uint8_t *buf, size_t len)
{
	uint16_t crc = 0xFFFF;

	for (size_t i = 0; i < len; i++) {
		crc ^= buf[i];
		for (int b = 0; b < 8; b++)
			crc = (crc & 1u) ? (uint16_t)((crc >> 1) ^ 0x8408u) : (uint16_t)(crc >> 1);
	}
	return crc;
}

uint32_t nl_fnv1a32(const uint8_t *buf, size_t len)
{
	uint32_t h = 0x811C9DC5u;

	for (size_t i = 0; i < len; i++) {
		h ^= buf[i];
		h *= 0x01000193u;
	}
	return h;
}
