/* SPDX-License-Identifier: MIT */
/* Checksums against published check values, error and state names, zones. */
#include "check.h"
#include "needlelink/crc.h"
#include "needlelink/zone.h"

static const uint8_t *s8(const char *s)
{
	return (const uint8_t *)s;
}

static void test_crc(void)
{
	/* CRC-16/MCRF4XX catalogue check value; 0x0F87 for one NUL byte was
	 * computed separately (Python, bitwise). */
	CHECK_INT(nl_crc16(s8("123456789"), 9), 0x6F91);
	CHECK_INT(nl_crc16(s8(""), 0), 0xFFFF); /* init, no final XOR */
	CHECK_INT(nl_crc16(s8("\x00"), 1), 0x0F87);
	/* FNV-1a 32 published vectors (Fowler/Noll/Vo test suite). */
	CHECK_INT(nl_fnv1a32(s8(""), 0), 0x811C9DC5u);
	CHECK_INT(nl_fnv1a32(s8("a"), 1), 0xE40C292Cu);
	CHECK_INT(nl_fnv1a32(s8("foobar"), 6), 0xBF9CF968u);
}

static void test_strerror(void)
{
	CHECK_STR(nl_strerror(-ENODATA), "truncated");
	CHECK_STR(nl_strerror(-EBADMSG), "bad-crc");
	CHECK_STR(nl_strerror(-ENOMSG), "unknown-type");
	CHECK_STR(nl_strerror(-ERANGE), "out-of-range");
	CHECK_STR(nl_strerror(-EILSEQ), "segment-gap");
	CHECK_STR(nl_strerror(-EALREADY), "segment-duplicate");
	CHECK_STR(nl_strerror(-EPROTO), "segment-out-of-place");
	CHECK_STR(nl_strerror(-E2BIG), "too-big");
	CHECK_STR(nl_strerror(-ENOBUFS), "no-buffer");
	CHECK_STR(nl_strerror(-EINVAL), "error");
	CHECK_STR(nl_strerror(0), "error");
	CHECK_STR(nl_strerror(ENODATA), "error");
}

static void test_states(void)
{
	static const char *const want[] = { "off", "idle", "armed", "running",
					    "paused", "locked", "fault" };

	for (unsigned s = 0; s < NL_PEN_STATE_COUNT; s++)
		CHECK_STR(nl_pen_state_name((enum nl_pen_state)s), want[s]);
	CHECK_STR(nl_pen_state_name(NL_PEN_STATE_COUNT), NULL);
}

static void test_zones(void)
{
	static const char *const want[NL_ZONE_COUNT] = {
		"none", "forehead", "glabella", "periorbital", "nose", "cheeks", "perioral",
		"chin", "neck", "chest", "scalp", "scar", "stretch_marks", "body",
		"cheekbones", "upper_lip",
	};

	for (unsigned z = 0; z < NL_ZONE_COUNT; z++) {
		CHECK_STR(nl_zone_name(z), want[z]);
		CHECK_INT(nl_zone_from_name(want[z]), (int)z);
		CHECK(nl_zone_valid(z) == (z != NL_ZONE_NONE));
	}
	CHECK_STR(nl_zone_name(NL_ZONE_COUNT), NULL);
	CHECK_STR(nl_zone_name(0xFFFFFFFFu), NULL);
	CHECK(!nl_zone_valid(NL_ZONE_COUNT));
	CHECK_INT(nl_zone_from_name("Forehead"), -ENOENT);
	CHECK_INT(nl_zone_from_name("stretch-marks"), -ENOENT);
	CHECK_INT(nl_zone_from_name(""), -ENOENT);
	CHECK_INT(nl_zone_from_name(NULL), -ENOENT);
}

int main(void)
{
	test_crc();
	test_strerror();
	test_states();
	test_zones();
	return check_summary("test-crc");
}
