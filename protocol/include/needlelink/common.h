/* SPDX-License-Identifier: MIT */
/*
 * NeedleLink pen protocol v1: constants shared by every PDU.
 *
 * Pure C11. Nothing in protocol/ does I/O, allocates, logs or keeps globals.
 * Every decoder returns 0 (or a byte count) on success and a negative errno
 * on failure; the errno names which way the input was malformed:
 *
 *   -ENODATA   truncated: fewer bytes than the layout needs
 *   -EBADMSG   the E2E-CRC does not match
 *   -ENOMSG    unknown record type, opcode or PDU kind
 *   -ERANGE    a field holds a value outside its documented range
 *   -EILSEQ    segmentation: a rolling counter was skipped (gap)
 *   -EALREADY  segmentation: a segment was received twice (duplicate)
 *   -EPROTO    segmentation: a segment out of place (continuation with
 *              no first segment, first while one is open)
 *   -E2BIG     reassembled record larger than NL_RECORD_MAX
 *   -ENOBUFS   encoders: the output buffer is too small
 *
 * Out-parameters (ret_*) are written only on success.
 */
#ifndef NEEDLELINK_COMMON_H
#define NEEDLELINK_COMMON_H

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define NL_PROTO_MAJOR 1
#define NL_PROTO_MINOR 0

/* 128-bit UUIDs of the NeedleLink Pen Service and its characteristics:
 * 4e4c0000-7a1d-4c3b-9f6e-5d2b8a0c1e37 with the 16-bit part below. */
#define NL_UUID_BASE_FMT "4e4c%04x-7a1d-4c3b-9f6e-5d2b8a0c1e37"
#define NL_UUID_SERVICE "4e4c0001-7a1d-4c3b-9f6e-5d2b8a0c1e37"
#define NL_UUID_FEATURE "4e4c0002-7a1d-4c3b-9f6e-5d2b8a0c1e37"
#define NL_UUID_LIVE_STATUS "4e4c0003-7a1d-4c3b-9f6e-5d2b8a0c1e37"
#define NL_UUID_RECORD "4e4c0004-7a1d-4c3b-9f6e-5d2b8a0c1e37"
#define NL_UUID_RACP "4e4c0005-7a1d-4c3b-9f6e-5d2b8a0c1e37"
#define NL_UUID_PEN_CP "4e4c0006-7a1d-4c3b-9f6e-5d2b8a0c1e37"
#define NL_UUID_ACTIVE_LIMITS "4e4c0007-7a1d-4c3b-9f6e-5d2b8a0c1e37"
#define NL_UUID_PEN_STATUS "4e4c0008-7a1d-4c3b-9f6e-5d2b8a0c1e37"
#define NL_UUID_CARTRIDGE "4e4c0009-7a1d-4c3b-9f6e-5d2b8a0c1e37"

/* Standard services and characteristics the pen also exposes. */
#define NL_UUID_DIS "0000180a-0000-1000-8000-00805f9b34fb"
#define NL_UUID_DIS_MODEL "00002a24-0000-1000-8000-00805f9b34fb"
#define NL_UUID_DIS_SERIAL "00002a25-0000-1000-8000-00805f9b34fb"
#define NL_UUID_DIS_FIRMWARE "00002a26-0000-1000-8000-00805f9b34fb"
#define NL_UUID_DIS_MANUFACTURER "00002a29-0000-1000-8000-00805f9b34fb"
#define NL_UUID_BATTERY "0000180f-0000-1000-8000-00805f9b34fb"
#define NL_UUID_BATTERY_LEVEL "00002a19-0000-1000-8000-00805f9b34fb"

/* ATT application errors a pen returns on a write (common profile range). */
enum nl_att_error {
	NL_ATT_WRITE_REJECTED = 0xFC,
	NL_ATT_CCCD_IMPROPER = 0xFD,
	NL_ATT_PROC_IN_PROGRESS = 0xFE,
	NL_ATT_OUT_OF_RANGE = 0xFF,
};

/* Pen time: seconds since 2000-01-01T00:00:00Z by the pen's own clock. */
#define NL_PEN_EPOCH_UNIX 946684800LL

/* Ranges every decoder enforces. */
#define NL_DEPTH_MAX_UM 3000u      /* no pen may go beyond 3.0 mm */
#define NL_DEPTH_UNKNOWN 0xFFFFu   /* "not measured" */
#define NL_SPEED_MAX_HZ 500u
#define NL_BATTERY_MAX_PCT 100u
#define NL_LIFETIME_MAX_S 86400u   /* a session authorisation lasts <= 24 h */
#define NL_LIVE_RATE_MIN_HZ 1u
#define NL_LIVE_RATE_MAX_HZ 20u
#define NL_FALLBACK_CAP_UM 1000u   /* factory limits capped at 1.0 mm */
#define NL_CARTRIDGE_UID_LEN 8
#define NL_LOT_LEN 8
#define NL_SERIAL_MAX 32

/* Largest characteristic value or reassembled record, in bytes. */
#define NL_PDU_MAX 256
#define NL_RECORD_MAX 512

/* Pen states, as reported in Live Status and Pen Status. */
enum nl_pen_state {
	NL_PEN_STATE_OFF = 0,
	NL_PEN_STATE_IDLE = 1,
	NL_PEN_STATE_ARMED = 2,   /* session authorised, motor off */
	NL_PEN_STATE_RUNNING = 3, /* motor on */
	NL_PEN_STATE_PAUSED = 4,  /* session open, motor stopped by operator */
	NL_PEN_STATE_LOCKED = 5,
	NL_PEN_STATE_FAULT = 6,
	NL_PEN_STATE_COUNT
};

/* Name of an errno returned by this library ("truncated", "bad-crc", ...). */
const char *nl_strerror(int err);
const char *nl_pen_state_name(enum nl_pen_state s);

#endif
