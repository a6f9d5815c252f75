/* SPDX-License-Identifier: MIT */
/*
 * Local radio wire codec: the frames a simulated pen (GATT server) and a
 * central exchange over a Unix SOCK_SEQPACKET socket. One datagram = one
 * frame:
 *
 *   u8 type | u16 id (little endian) | payload
 *
 * id is the request id for requests and their responses (echoed by the
 * server), the characteristic value handle for NOTIFY, INDICATE and CONFIRM,
 * and 0 otherwise. Every byte is described in docs/local-radio.md.
 *
 * Pure C11: no I/O, no allocation, no globals. Decoders bounds-check every
 * read and return -EBADMSG on a malformed frame; encoders return the frame
 * length or -ENOBUFS when the buffer is too small. Out-parameters (ret_*)
 * are written only on success. Values and strings returned by decoders
 * point into the caller's buffer unless copied into a struct.
 */
#ifndef LRADIO_WIRE_H
#define LRADIO_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define LRADIO_WIRE_VERSION 1
#define LRADIO_HDR_LEN 3
/* Largest frame either side sends or accepts. */
#define LRADIO_FRAME_MAX 1024

/* ATT MTU bounds (Core spec: default 23, max 517). */
#define LRADIO_MTU_DEFAULT 23
#define LRADIO_MTU_MAX 517
/* Longest characteristic value carried by READ_RSP / WRITE_REQ (ATT max). */
#define LRADIO_VALUE_MAX 512

#define LRADIO_NAME_MAX 29   /* a BLE advertising name fits in 29 bytes */
#define LRADIO_SERIAL_MAX 32 /* = NL_SERIAL_MAX */
#define LRADIO_KIND_MAX 16
#define LRADIO_UUID_STR_LEN 36

enum lradio_type {
	LRADIO_T_HELLO = 0x01, /* server -> central, first frame of a link */
	LRADIO_T_MTU_REQ = 0x02,
	LRADIO_T_MTU_RSP = 0x03,
	LRADIO_T_DISCOVER_REQ = 0x04,
	LRADIO_T_DISCOVER_RSP = 0x05,
	LRADIO_T_READ_REQ = 0x06,
	LRADIO_T_READ_RSP = 0x07,
	LRADIO_T_WRITE_REQ = 0x08,
	LRADIO_T_WRITE_RSP = 0x09,
	LRADIO_T_CCCD_WRITE_REQ = 0x0A,
	LRADIO_T_CCCD_WRITE_RSP = 0x0B,
	LRADIO_T_NOTIFY = 0x0C,
	LRADIO_T_INDICATE = 0x0D,
	LRADIO_T_CONFIRM = 0x0E,
	LRADIO_T_DISCONNECT = 0x0F,
};

/* HELLO flags. */
#define LRADIO_HELLO_SECURE 0x01u /* link is encrypted + authenticated */

/* DISCONNECT reasons (u8). */
enum lradio_reason {
	LRADIO_REASON_USER = 0x00,     /* the sender chose to disconnect */
	LRADIO_REASON_BUSY = 0x01,     /* the pen already has a central */
	LRADIO_REASON_PROTOCOL = 0x02, /* the peer sent a malformed/unexpected frame */
	LRADIO_REASON_TIMEOUT = 0x03,  /* ATT transaction timeout (no confirm) */
	LRADIO_REASON_OVERFLOW = 0x04, /* the peer stopped reading */
};

/* ATT error codes used by the local radio (Core spec Vol 3 Part F 3.4.1.1,
 * plus the common-profile range from needlelink/common.h). */
enum lradio_att {
	LRADIO_ATT_OK = 0x00,
	LRADIO_ATT_INVALID_HANDLE = 0x01,
	LRADIO_ATT_READ_NOT_PERMITTED = 0x02,
	LRADIO_ATT_WRITE_NOT_PERMITTED = 0x03,
	LRADIO_ATT_REQUEST_NOT_SUPPORTED = 0x06,
	LRADIO_ATT_INSUFFICIENT_AUTHENTICATION = 0x05,
	LRADIO_ATT_INVALID_ATTRIBUTE_LENGTH = 0x0D,
	LRADIO_ATT_UNLIKELY_ERROR = 0x0E,
	LRADIO_ATT_CCCD_IMPROPER = 0xFD,
	LRADIO_ATT_OUT_OF_RANGE = 0xFF,
};

/* Attribute properties on the wire: same bits as enum sim_chr_prop. */
#define LRADIO_PROP_READ 0x01u
#define LRADIO_PROP_WRITE 0x02u
#define LRADIO_PROP_NOTIFY 0x04u
#define LRADIO_PROP_INDICATE 0x08u
#define LRADIO_PROP_SECURE 0x10u
#define LRADIO_PROP_ALL 0x1Fu

enum lradio_attr_kind {
	LRADIO_ATTR_SERVICE = 1,
	LRADIO_ATTR_CHARACTERISTIC = 2,
};

/* One DISCOVER_RSP entry (20 bytes on the wire). A characteristic belongs
 * to the service entry before it. handle: the service declaration handle or
 * the characteristic value handle. */
struct lradio_attr {
	enum lradio_attr_kind kind;
	uint16_t handle;
	uint8_t props; /* LRADIO_PROP_*, 0 for a service */
	uint8_t uuid[16]; /* big endian, as written in the string form */
};
#define LRADIO_ATTR_WIRE_LEN 20
/* Entries in one DISCOVER_RSP frame at most. */
#define LRADIO_DISCOVER_MAX_PER_FRAME 12
/* Entries in a whole discovery at most (a client's buffer). */
#define LRADIO_DISCOVER_MAX 64
#define LRADIO_DISCOVER_MORE 0x01u

/* What a pen advertises; carried in HELLO and in DIR/<serial>.adv. Strings
 * are NUL-terminated printable ASCII. */
struct lradio_adv {
	char name[LRADIO_NAME_MAX + 1];
	char serial[LRADIO_SERIAL_MAX + 1]; /* [A-Za-z0-9_-], non-empty */
	char service_uuid[LRADIO_UUID_STR_LEN + 1]; /* lower case */
	char kind[LRADIO_KIND_MAX + 1]; /* "pen" */
	int8_t rssi; /* dBm */
};

struct lradio_hello {
	uint8_t version; /* LRADIO_WIRE_VERSION */
	uint8_t flags;   /* LRADIO_HELLO_* */
	uint16_t max_mtu;
	struct lradio_adv adv;
};

/* A frame split into header and payload; payload points into the buffer. */
struct lradio_frame {
	enum lradio_type type;
	uint16_t id;
	const uint8_t *payload;
	size_t len;
};

/* Splits a received datagram. -EBADMSG when shorter than the header, longer
 * than LRADIO_FRAME_MAX or of an unknown type. */
int lradio_frame_parse(const uint8_t *buf, size_t len, struct lradio_frame *ret);

/* Encoders: write one frame into buf, return its length or -ENOBUFS. */
int lradio_enc_hello(uint8_t *buf, size_t size, const struct lradio_hello *h);
int lradio_enc_mtu(uint8_t *buf, size_t size, enum lradio_type type, uint16_t id, uint16_t mtu);
int lradio_enc_discover_req(uint8_t *buf, size_t size, uint16_t id);
int lradio_enc_discover_rsp(uint8_t *buf, size_t size, uint16_t id, bool more,
                            const struct lradio_attr *attrs, size_t n);
int lradio_enc_read_req(uint8_t *buf, size_t size, uint16_t id, uint16_t handle);
/* READ_RSP: att_err 0 with a value, or an ATT error and no value. */
int lradio_enc_read_rsp(uint8_t *buf, size_t size, uint16_t id, uint8_t att_err,
                        const uint8_t *val, size_t len);
int lradio_enc_write_req(uint8_t *buf, size_t size, uint16_t id, uint16_t handle,
                         const uint8_t *val, size_t len);
/* WRITE_RSP or CCCD_WRITE_RSP. */
int lradio_enc_status_rsp(uint8_t *buf, size_t size, enum lradio_type type, uint16_t id,
                          uint8_t att_err);
int lradio_enc_cccd_req(uint8_t *buf, size_t size, uint16_t id, uint16_t handle,
                        uint16_t value);
/* NOTIFY or INDICATE. */
int lradio_enc_value(uint8_t *buf, size_t size, enum lradio_type type, uint16_t handle,
                     const uint8_t *val, size_t len);
int lradio_enc_confirm(uint8_t *buf, size_t size, uint16_t handle);
int lradio_enc_disconnect(uint8_t *buf, size_t size, enum lradio_reason reason);

/* Decoders: f comes from lradio_frame_parse; -EBADMSG when f has another
 * type or a malformed payload. */
int lradio_dec_hello(const struct lradio_frame *f, struct lradio_hello *ret);
int lradio_dec_mtu(const struct lradio_frame *f, uint16_t *ret_mtu);
int lradio_dec_discover_req(const struct lradio_frame *f);
/* Decodes up to max entries into attrs; -EBADMSG if the frame holds more. */
int lradio_dec_discover_rsp(const struct lradio_frame *f, bool *ret_more,
                            struct lradio_attr *attrs, size_t max, size_t *ret_n);
int lradio_dec_read_req(const struct lradio_frame *f, uint16_t *ret_handle);
int lradio_dec_read_rsp(const struct lradio_frame *f, uint8_t *ret_att_err,
                        const uint8_t **ret_val, size_t *ret_len);
int lradio_dec_write_req(const struct lradio_frame *f, uint16_t *ret_handle,
                         const uint8_t **ret_val, size_t *ret_len);
int lradio_dec_status_rsp(const struct lradio_frame *f, uint8_t *ret_att_err);
int lradio_dec_cccd_req(const struct lradio_frame *f, uint16_t *ret_handle, uint16_t *ret_value);
/* NOTIFY or INDICATE: the handle is f->id. */
int lradio_dec_value(const struct lradio_frame *f, const uint8_t **ret_val, size_t *ret_len);
int lradio_dec_confirm(const struct lradio_frame *f);
int lradio_dec_disconnect(const struct lradio_frame *f, enum lradio_reason *ret_reason);

/* UUID string (36 chars, any case) <-> 16 bytes. parse: -EINVAL if malformed. */
int lradio_uuid_parse(const char *s, uint8_t ret_uuid[16]);
void lradio_uuid_format(const uint8_t uuid[16], char out[LRADIO_UUID_STR_LEN + 1]);

/* true when s is a valid serial (1..LRADIO_SERIAL_MAX of [A-Za-z0-9_-]). */
bool lradio_serial_valid(const char *s);
/* -EINVAL unless every string of adv is well formed (see struct lradio_adv). */
int lradio_adv_check(const struct lradio_adv *adv);

/* The DIR/<serial>.adv file: "key=value\n" lines (name, serial, service,
 * rssi, kind). format returns the text length or -ENOBUFS; parse returns
 * -EBADMSG when a key is missing, repeated, unknown or malformed. */
int lradio_adv_format(char *buf, size_t size, const struct lradio_adv *adv);
int lradio_adv_parse(const char *text, size_t len, struct lradio_adv *ret);

const char *lradio_type_name(enum lradio_type t);
const char *lradio_reason_name(enum lradio_reason r);

#endif
