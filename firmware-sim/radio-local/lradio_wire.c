/* SPDX-License-Identifier: MIT */
/* Local radio frame codec: see lradio_wire.h and docs/local-radio.md. */
#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lradio_wire.h"

static void put_u16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v & 0xFF);
	p[1] = (uint8_t)(v >> 8);
}

static uint16_t get_u16(const uint8_t *p)
{
	return (uint16_t)(p[0] | (p[1] << 8));
}

static bool type_known(uint8_t t)
{
	return t >= LRADIO_T_HELLO && t <= LRADIO_T_DISCONNECT;
}

int lradio_frame_parse(const uint8_t *buf, size_t len, struct lradio_frame *ret)
{
	if (!buf || len < LRADIO_HDR_LEN || len > LRADIO_FRAME_MAX)
		return -EBADMSG;
	if (!type_known(buf[0]))
		return -EBADMSG;
	ret->type = (enum lradio_type)buf[0];
	ret->id = get_u16(buf + 1);
	ret->payload = buf + LRADIO_HDR_LEN;
	ret->len = len - LRADIO_HDR_LEN;
	return 0;
}

/* Writes the header; returns the header length or -ENOBUFS when the whole
 * frame (header + payload_len) does not fit. */
static int put_hdr(uint8_t *buf, size_t size, enum lradio_type type, uint16_t id,
                   size_t payload_len)
{
	if (payload_len > LRADIO_FRAME_MAX - LRADIO_HDR_LEN || size < LRADIO_HDR_LEN + payload_len)
		return -ENOBUFS;
	buf[0] = (uint8_t)type;
	put_u16(buf + 1, id);
	return LRADIO_HDR_LEN;
}

static bool str_printable(const char *s, size_t max)
{
	size_t n = strnlen(s, max + 1);
	if (n > max)
		return false;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] > 0x7E)
			return false;
	return true;
}

bool lradio_serial_valid(const char *s)
{
	if (!s)
		return false;
	size_t n = strnlen(s, LRADIO_SERIAL_MAX + 1);
	if (n == 0 || n > LRADIO_SERIAL_MAX)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		          (c >= '0' && c <= '9') || c == '_' || c == '-';
		if (!ok)
			return false;
	}
	return true;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int lradio_uuid_parse(const char *s, uint8_t ret_uuid[16])
{
	uint8_t out[16];
	size_t o = 0;

	if (!s || strnlen(s, LRADIO_UUID_STR_LEN + 1) != LRADIO_UUID_STR_LEN)
		return -EINVAL;
	for (size_t i = 0; i < LRADIO_UUID_STR_LEN;) {
		if (i == 8 || i == 13 || i == 18 || i == 23) {
			if (s[i] != '-')
				return -EINVAL;
			i++;
			continue;
		}
		int hi = hexval(s[i]), lo = hexval(s[i + 1]);
		if (hi < 0 || lo < 0)
			return -EINVAL;
		out[o++] = (uint8_t)(hi << 4 | lo);
		i += 2;
	}
	assert(o == 16);
	memcpy(ret_uuid, out, 16);
	return 0;
}

void lradio_uuid_format(const uint8_t uuid[16], char out[LRADIO_UUID_STR_LEN + 1])
{
	static const char hex[] = "0123456789abcdef";
	size_t o = 0;
	for (size_t i = 0; i < 16; i++) {
		if (i == 4 || i == 6 || i == 8 || i == 10)
			out[o++] = '-';
		out[o++] = hex[uuid[i] >> 4];
		out[o++] = hex[uuid[i] & 0xF];
	}
	out[o] = '\0';
}

static bool uuid_str_lower_valid(const char *s)
{
	uint8_t u[16];
	char back[LRADIO_UUID_STR_LEN + 1];
	if (strnlen(s, LRADIO_UUID_STR_LEN + 1) != LRADIO_UUID_STR_LEN)
		return false;
	if (lradio_uuid_parse(s, u) < 0)
		return false;
	lradio_uuid_format(u, back);
	return strcmp(back, s) == 0;
}

int lradio_adv_check(const struct lradio_adv *adv)
{
	if (!adv)
		return -EINVAL;
	if (!str_printable(adv->name, LRADIO_NAME_MAX) || !lradio_serial_valid(adv->serial) ||
	    !str_printable(adv->kind, LRADIO_KIND_MAX) || adv->kind[0] == '\0' ||
	    !uuid_str_lower_valid(adv->service_uuid))
		return -EINVAL;
	return 0;
}

/* HELLO payload: u8 version, u8 flags, u16 max_mtu, s8 rssi, uuid[16],
 * then name, serial, kind as u8 length + bytes. */
int lradio_enc_hello(uint8_t *buf, size_t size, const struct lradio_hello *h)
{
	uint8_t uuid[16];
	size_t ln, ls, lk, plen;
	int r;

	assert(h);
	assert(lradio_adv_check(&h->adv) == 0);
	r = lradio_uuid_parse(h->adv.service_uuid, uuid);
	assert(r == 0);
	ln = strlen(h->adv.name);
	ls = strlen(h->adv.serial);
	lk = strlen(h->adv.kind);
	plen = 5 + 16 + 3 + ln + ls + lk;
	r = put_hdr(buf, size, LRADIO_T_HELLO, 0, plen);
	if (r < 0)
		return r;
	uint8_t *p = buf + LRADIO_HDR_LEN;
	*p++ = h->version;
	*p++ = h->flags;
	put_u16(p, h->max_mtu);
	p += 2;
	*p++ = (uint8_t)h->adv.rssi;
	memcpy(p, uuid, 16);
	p += 16;
	*p++ = (uint8_t)ln;
	memcpy(p, h->adv.name, ln);
	p += ln;
	*p++ = (uint8_t)ls;
	memcpy(p, h->adv.serial, ls);
	p += ls;
	*p++ = (uint8_t)lk;
	memcpy(p, h->adv.kind, lk);
	p += lk;
	return (int)(p - buf);
}

/* Reads a u8-length-prefixed string into out (max chars + NUL). */
static int get_str(const uint8_t **pp, const uint8_t *end, char *out, size_t max)
{
	const uint8_t *p = *pp;
	if (p >= end)
		return -EBADMSG;
	size_t n = *p++;
	if (n > max || (size_t)(end - p) < n)
		return -EBADMSG;
	for (size_t i = 0; i < n; i++)
		if (p[i] < 0x20 || p[i] > 0x7E)
			return -EBADMSG;
	memcpy(out, p, n);
	out[n] = '\0';
	*pp = p + n;
	return 0;
}

int lradio_dec_hello(const struct lradio_frame *f, struct lradio_hello *ret)
{
	struct lradio_hello h;
	const uint8_t *p, *end;

	if (f->type != LRADIO_T_HELLO || f->id != 0 || f->len < 5 + 16)
		return -EBADMSG;
	memset(&h, 0, sizeof(h));
	p = f->payload;
	end = p + f->len;
	h.version = p[0];
	h.flags = p[1];
	h.max_mtu = get_u16(p + 2);
	h.adv.rssi = (int8_t)p[4];
	lradio_uuid_format(p + 5, h.adv.service_uuid);
	p += 5 + 16;
	if (get_str(&p, end, h.adv.name, LRADIO_NAME_MAX) < 0 ||
	    get_str(&p, end, h.adv.serial, LRADIO_SERIAL_MAX) < 0 ||
	    get_str(&p, end, h.adv.kind, LRADIO_KIND_MAX) < 0)
		return -EBADMSG;
	if (p != end)
		return -EBADMSG;
	if (h.max_mtu < LRADIO_MTU_DEFAULT || lradio_adv_check(&h.adv) < 0)
		return -EBADMSG;
	*ret = h;
	return 0;
}

int lradio_enc_mtu(uint8_t *buf, size_t size, enum lradio_type type, uint16_t id, uint16_t mtu)
{
	assert(type == LRADIO_T_MTU_REQ || type == LRADIO_T_MTU_RSP);
	int r = put_hdr(buf, size, type, id, 2);
	if (r < 0)
		return r;
	put_u16(buf + r, mtu);
	return r + 2;
}

int lradio_dec_mtu(const struct lradio_frame *f, uint16_t *ret_mtu)
{
	if ((f->type != LRADIO_T_MTU_REQ && f->type != LRADIO_T_MTU_RSP) || f->len != 2)
		return -EBADMSG;
	uint16_t mtu = get_u16(f->payload);
	if (mtu < LRADIO_MTU_DEFAULT)
		return -EBADMSG;
	*ret_mtu = mtu;
	return 0;
}

int lradio_enc_discover_req(uint8_t *buf, size_t size, uint16_t id)
{
	return put_hdr(buf, size, LRADIO_T_DISCOVER_REQ, id, 0);
}

int lradio_dec_discover_req(const struct lradio_frame *f)
{
	if (f->type != LRADIO_T_DISCOVER_REQ || f->len != 0)
		return -EBADMSG;
	return 0;
}

/* DISCOVER_RSP payload: u8 flags, u8 count, count * (u8 kind, u16 handle,
 * u8 props, uuid[16]). */
int lradio_enc_discover_rsp(uint8_t *buf, size_t size, uint16_t id, bool more,
                            const struct lradio_attr *attrs, size_t n)
{
	assert(n <= LRADIO_DISCOVER_MAX_PER_FRAME);
	assert(n == 0 || attrs);
	int r = put_hdr(buf, size, LRADIO_T_DISCOVER_RSP, id, 2 + n * LRADIO_ATTR_WIRE_LEN);
	if (r < 0)
		return r;
	uint8_t *p = buf + r;
	*p++ = more ? LRADIO_DISCOVER_MORE : 0;
	*p++ = (uint8_t)n;
	for (size_t i = 0; i < n; i++) {
		assert(attrs[i].kind == LRADIO_ATTR_SERVICE ||
		       attrs[i].kind == LRADIO_ATTR_CHARACTERISTIC);
		assert(attrs[i].handle != 0);
		*p++ = (uint8_t)attrs[i].kind;
		put_u16(p, attrs[i].handle);
		p += 2;
		*p++ = attrs[i].props;
		memcpy(p, attrs[i].uuid, 16);
		p += 16;
	}
	return (int)(p - buf);
}

int lradio_dec_discover_rsp(const struct lradio_frame *f, bool *ret_more,
                            struct lradio_attr *attrs, size_t max, size_t *ret_n)
{
	const uint8_t *p = f->payload;

	if (f->type != LRADIO_T_DISCOVER_RSP || f->len < 2)
		return -EBADMSG;
	uint8_t flags = p[0];
	size_t n = p[1];
	if ((flags & ~LRADIO_DISCOVER_MORE) != 0 || n > max || n > LRADIO_DISCOVER_MAX_PER_FRAME ||
	    f->len != 2 + n * LRADIO_ATTR_WIRE_LEN)
		return -EBADMSG;
	p += 2;
	/* Validate everything before writing into attrs. */
	for (size_t i = 0; i < n; i++) {
		const uint8_t *e = p + i * LRADIO_ATTR_WIRE_LEN;
		uint16_t handle = get_u16(e + 1);
		if (handle == 0)
			return -EBADMSG;
		if (e[0] == LRADIO_ATTR_SERVICE) {
			if (e[3] != 0)
				return -EBADMSG;
		} else if (e[0] == LRADIO_ATTR_CHARACTERISTIC) {
			if ((e[3] & ~LRADIO_PROP_ALL) != 0)
				return -EBADMSG;
		} else {
			return -EBADMSG;
		}
	}
	for (size_t i = 0; i < n; i++) {
		const uint8_t *e = p + i * LRADIO_ATTR_WIRE_LEN;
		attrs[i].kind = (enum lradio_attr_kind)e[0];
		attrs[i].handle = get_u16(e + 1);
		attrs[i].props = e[3];
		memcpy(attrs[i].uuid, e + 4, 16);
	}
	*ret_more = (flags & LRADIO_DISCOVER_MORE) != 0;
	*ret_n = n;
	return 0;
}

int lradio_enc_read_req(uint8_t *buf, size_t size, uint16_t id, uint16_t handle)
{
	int r = put_hdr(buf, size, LRADIO_T_READ_REQ, id, 2);
	if (r < 0)
		return r;
	put_u16(buf + r, handle);
	return r + 2;
}

int lradio_dec_read_req(const struct lradio_frame *f, uint16_t *ret_handle)
{
	if (f->type != LRADIO_T_READ_REQ || f->len != 2)
		return -EBADMSG;
	*ret_handle = get_u16(f->payload);
	return 0;
}

/* READ_RSP payload: u8 att_err, then the value when att_err == 0. */
int lradio_enc_read_rsp(uint8_t *buf, size_t size, uint16_t id, uint8_t att_err,
                        const uint8_t *val, size_t len)
{
	assert(att_err == 0 || len == 0);
	assert(len <= LRADIO_VALUE_MAX);
	int r = put_hdr(buf, size, LRADIO_T_READ_RSP, id, 1 + len);
	if (r < 0)
		return r;
	buf[r] = att_err;
	if (len)
		memcpy(buf + r + 1, val, len);
	return r + 1 + (int)len;
}

int lradio_dec_read_rsp(const struct lradio_frame *f, uint8_t *ret_att_err,
                        const uint8_t **ret_val, size_t *ret_len)
{
	if (f->type != LRADIO_T_READ_RSP || f->len < 1 || f->len > 1 + LRADIO_VALUE_MAX)
		return -EBADMSG;
	if (f->payload[0] != 0 && f->len != 1)
		return -EBADMSG;
	*ret_att_err = f->payload[0];
	*ret_val = f->payload + 1;
	*ret_len = f->len - 1;
	return 0;
}

/* WRITE_REQ payload: u16 handle, value. */
int lradio_enc_write_req(uint8_t *buf, size_t size, uint16_t id, uint16_t handle,
                         const uint8_t *val, size_t len)
{
	assert(len <= LRADIO_VALUE_MAX);
	int r = put_hdr(buf, size, LRADIO_T_WRITE_REQ, id, 2 + len);
	if (r < 0)
		return r;
	put_u16(buf + r, handle);
	if (len)
		memcpy(buf + r + 2, val, len);
	return r + 2 + (int)len;
}

int lradio_dec_write_req(const struct lradio_frame *f, uint16_t *ret_handle,
                         const uint8_t **ret_val, size_t *ret_len)
{
	if (f->type != LRADIO_T_WRITE_REQ || f->len < 2 || f->len > 2 + LRADIO_VALUE_MAX)
		return -EBADMSG;
	*ret_handle = get_u16(f->payload);
	*ret_val = f->payload + 2;
	*ret_len = f->len - 2;
	return 0;
}

int lradio_enc_status_rsp(uint8_t *buf, size_t size, enum lradio_type type, uint16_t id,
                          uint8_t att_err)
{
	assert(type == LRADIO_T_WRITE_RSP || type == LRADIO_T_CCCD_WRITE_RSP);
	int r = put_hdr(buf, size, type, id, 1);
	if (r < 0)
		return r;
	buf[r] = att_err;
	return r + 1;
}

int lradio_dec_status_rsp(const struct lradio_frame *f, uint8_t *ret_att_err)
{
	if ((f->type != LRADIO_T_WRITE_RSP && f->type != LRADIO_T_CCCD_WRITE_RSP) || f->len != 1)
		return -EBADMSG;
	*ret_att_err = f->payload[0];
	return 0;
}

/* CCCD_WRITE_REQ payload: u16 value handle, u16 CCCD value. */
int lradio_enc_cccd_req(uint8_t *buf, size_t size, uint16_t id, uint16_t handle,
                        uint16_t value)
{
	int r = put_hdr(buf, size, LRADIO_T_CCCD_WRITE_REQ, id, 4);
	if (r < 0)
		return r;
	put_u16(buf + r, handle);
	put_u16(buf + r + 2, value);
	return r + 4;
}

int lradio_dec_cccd_req(const struct lradio_frame *f, uint16_t *ret_handle, uint16_t *ret_value)
{
	if (f->type != LRADIO_T_CCCD_WRITE_REQ || f->len != 4)
		return -EBADMSG;
	*ret_handle = get_u16(f->payload);
	*ret_value = get_u16(f->payload + 2);
	return 0;
}

int lradio_enc_value(uint8_t *buf, size_t size, enum lradio_type type, uint16_t handle,
                     const uint8_t *val, size_t len)
{
	assert(type == LRADIO_T_NOTIFY || type == LRADIO_T_INDICATE);
	int r = put_hdr(buf, size, type, handle, len);
	if (r < 0)
		return r;
	if (len)
		memcpy(buf + r, val, len);
	return r + (int)len;
}

int lradio_dec_value(const struct lradio_frame *f, const uint8_t **ret_val, size_t *ret_len)
{
	if ((f->type != LRADIO_T_NOTIFY && f->type != LRADIO_T_INDICATE) || f->id == 0)
		return -EBADMSG;
	*ret_val = f->payload;
	*ret_len = f->len;
	return 0;
}

int lradio_enc_confirm(uint8_t *buf, size_t size, uint16_t handle)
{
	return put_hdr(buf, size, LRADIO_T_CONFIRM, handle, 0);
}

int lradio_dec_confirm(const struct lradio_frame *f)
{
	if (f->type != LRADIO_T_CONFIRM || f->len != 0 || f->id == 0)
		return -EBADMSG;
	return 0;
}

static bool reason_known(uint8_t r)
{
	return r <= LRADIO_REASON_OVERFLOW;
}

int lradio_enc_disconnect(uint8_t *buf, size_t size, enum lradio_reason reason)
{
	assert(reason_known((uint8_t)reason));
	int r = put_hdr(buf, size, LRADIO_T_DISCONNECT, 0, 1);
	if (r < 0)
		return r;
	buf[r] = (uint8_t)reason;
	return r + 1;
}

int lradio_dec_disconnect(const struct lradio_frame *f, enum lradio_reason *ret_reason)
{
	if (f->type != LRADIO_T_DISCONNECT || f->id != 0 || f->len != 1 ||
	    !reason_known(f->payload[0]))
		return -EBADMSG;
	*ret_reason = (enum lradio_reason)f->payload[0];
	return 0;
}

/* .adv file: fixed key order on output; any order on input. */
int lradio_adv_format(char *buf, size_t size, const struct lradio_adv *adv)
{
	assert(lradio_adv_check(adv) == 0);
	int n = snprintf(buf, size, "name=%s\nserial=%s\nservice=%s\nrssi=%d\nkind=%s\n",
	                 adv->name, adv->serial, adv->service_uuid, (int)adv->rssi, adv->kind);
	if (n < 0 || (size_t)n >= size)
		return -ENOBUFS;
	return n;
}

enum { ADV_NAME, ADV_SERIAL, ADV_SERVICE, ADV_RSSI, ADV_KIND, ADV_KEYS };

static int adv_set(struct lradio_adv *a, int key, const char *v, size_t n)
{
	char tmp[64];
	switch (key) {
	case ADV_NAME:
		if (n > LRADIO_NAME_MAX)
			return -EBADMSG;
		memcpy(a->name, v, n);
		a->name[n] = '\0';
		return 0;
	case ADV_SERIAL:
		if (n > LRADIO_SERIAL_MAX)
			return -EBADMSG;
		memcpy(a->serial, v, n);
		a->serial[n] = '\0';
		return 0;
	case ADV_SERVICE:
		if (n != LRADIO_UUID_STR_LEN)
			return -EBADMSG;
		memcpy(a->service_uuid, v, n);
		a->service_uuid[n] = '\0';
		return 0;
	case ADV_KIND:
		if (n > LRADIO_KIND_MAX)
			return -EBADMSG;
		memcpy(a->kind, v, n);
		a->kind[n] = '\0';
		return 0;
	case ADV_RSSI: {
		if (n == 0 || n >= sizeof(tmp))
			return -EBADMSG;
		memcpy(tmp, v, n);
		tmp[n] = '\0';
		char *endp;
		errno = 0;
		long r = strtol(tmp, &endp, 10);
		if (errno || *endp != '\0' || r < -128 || r > 127 || tmp[0] == ' ' || tmp[0] == '+')
			return -EBADMSG;
		a->rssi = (int8_t)r;
		return 0;
	}
	default:
		return -EBADMSG;
	}
}

int lradio_adv_parse(const char *text, size_t len, struct lradio_adv *ret)
{
	static const char *const keys[ADV_KEYS] = {"name", "serial", "service", "rssi", "kind"};
	struct lradio_adv a;
	bool seen[ADV_KEYS] = {false};
	size_t i = 0;

	if (!text)
		return -EBADMSG;
	memset(&a, 0, sizeof(a));
	while (i < len) {
		const char *line = text + i;
		const char *nl = memchr(line, '\n', len - i);
		if (!nl)
			return -EBADMSG; /* every line ends with \n: a torn file is refused */
		size_t ll = (size_t)(nl - line);
		const char *eq = memchr(line, '=', ll);
		if (!eq)
			return -EBADMSG;
		size_t kl = (size_t)(eq - line);
		int key = -1;
		for (int k = 0; k < ADV_KEYS; k++)
			if (strlen(keys[k]) == kl && memcmp(keys[k], line, kl) == 0)
				key = k;
		if (key < 0 || seen[key])
			return -EBADMSG;
		seen[key] = true;
		if (memchr(eq + 1, '\0', ll - kl - 1))
			return -EBADMSG;
		int r = adv_set(&a, key, eq + 1, ll - kl - 1);
		if (r < 0)
			return r;
		i += ll + 1;
	}
	for (int k = 0; k < ADV_KEYS; k++)
		if (!seen[k])
			return -EBADMSG;
	if (lradio_adv_check(&a) < 0)
		return -EBADMSG;
	*ret = a;
	return 0;
}

const char *lradio_type_name(enum lradio_type t)
{
	switch (t) {
	case LRADIO_T_HELLO: return "hello";
	case LRADIO_T_MTU_REQ: return "mtu-req";
	case LRADIO_T_MTU_RSP: return "mtu-rsp";
	case LRADIO_T_DISCOVER_REQ: return "discover-req";
	case LRADIO_T_DISCOVER_RSP: return "discover-rsp";
	case LRADIO_T_READ_REQ: return "read-req";
	case LRADIO_T_READ_RSP: return "read-rsp";
	case LRADIO_T_WRITE_REQ: return "write-req";
	case LRADIO_T_WRITE_RSP: return "write-rsp";
	case LRADIO_T_CCCD_WRITE_REQ: return "cccd-write-req";
	case LRADIO_T_CCCD_WRITE_RSP: return "cccd-write-rsp";
	case LRADIO_T_NOTIFY: return "notify";
	case LRADIO_T_INDICATE: return "indicate";
	case LRADIO_T_CONFIRM: return "confirm";
	case LRADIO_T_DISCONNECT: return "disconnect";
	}
	return "unknown";
}

const char *lradio_reason_name(enum lradio_reason r)
{
	switch (r) {
	case LRADIO_REASON_USER: return "user";
	case LRADIO_REASON_BUSY: return "busy";
	case LRADIO_REASON_PROTOCOL: return "protocol";
	case LRADIO_REASON_TIMEOUT: return "timeout";
	case LRADIO_REASON_OVERFLOW: return "overflow";
	}
	return "unknown";
}
