/* SPDX-License-Identifier: MIT */
#include "needlelink/common.h"

const char *nl_strerror(int err)
{
	switch (err) {
	case -ENODATA:
		return "truncated";
	case -EBADMSG:
		return "bad-crc";
	case -ENOMSG:
		return "unknown-type";
	case -ERANGE:
		return "out-of-range";
	case -EILSEQ:
		return "segment-gap";
	case -EALREADY:
		return "segment-duplicate";
	case -EPROTO:
		return "segment-out-of-place";
	case -E2BIG:
		return "too-big";
	case -ENOBUFS:
		return "no-buffer";
	default:
		return "error";
	}
}

const char *nl_pen_state_name(enum nl_pen_state s)
{
	switch (s) {
	case NL_PEN_STATE_OFF:
		return "off";
	case NL_PEN_STATE_IDLE:
		return "idle";
	case NL_PEN_STATE_ARMED:
		return "armed";
	case NL_PEN_STATE_RUNNING:
		return "running";
	case NL_PEN_STATE_PAUSED:
		return "paused";
	case NL_PEN_STATE_LOCKED:
		return "locked";
	case NL_PEN_STATE_FAULT:
		return "fault";
	case NL_PEN_STATE_COUNT:
		break;
	}
	return NULL;
}
