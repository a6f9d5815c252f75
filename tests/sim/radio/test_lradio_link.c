/* SPDX-License-Identifier: MIT */
/*
 * Local radio end to end inside one process: the real server with a tiny
 * fake pen, the real client (or a raw socket playing a misbehaving central),
 * real Unix sockets, one sd-event loop. Every wait runs the loop until a
 * condition holds; a 10 s sd-event timer fails the test otherwise.
 *
 * Usage: test-lradio-link <scenario>
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "lradio.h"
#include "needlelink/common.h"
#include "tharness.h"

#define DEADLINE_USEC (10ULL * 1000000ULL)

static sd_event *ev;
static bool deadline_hit;
static char dir[PATH_MAX - 128];
static int order_counter;

#define RUN_UNTIL(cond)                                                                  \
	do {                                                                             \
		while (!(cond)) {                                                        \
			if (deadline_hit) {                                              \
				fprintf(stderr, "%s:%d: deadline waiting for %s\n",     \
				        __FILE__, __LINE__, #cond);                      \
				exit(1);                                                 \
			}                                                                \
			CHECK(sd_event_run(ev, UINT64_MAX) >= 0);                        \
		}                                                                        \
	} while (0)

/* ---- fake pen ---------------------------------------------------------- */

struct fpen {
	struct lradio_server *srv;
	const struct sim_radio_ops *rops;
	int n_connected, n_disconnected;
	uint16_t conn_mtu;
	uint8_t val[SIM_CHR_COUNT][LRADIO_VALUE_MAX];
	size_t len[SIM_CHR_COUNT];
	int read_err[SIM_CHR_COUNT];
	int write_err[SIM_CHR_COUNT];
	uint8_t wval[LRADIO_VALUE_MAX];
	size_t wlen;
	int wchr;
	int n_writes;
	uint16_t cccd[SIM_CHR_COUNT];
	int n_cccd;
	int n_confirms[SIM_CHR_COUNT];
	bool ind_on_write; /* a Pen CP write answers with an indication at once */
	int ind_on_write_ret;
};

static void fp_connected(void *pen, uint16_t mtu)
{
	struct fpen *p = pen;
	CHECK_EQ(p->n_connected, p->n_disconnected); /* strictly paired */
	p->n_connected++;
	p->conn_mtu = mtu;
}

static void fp_disconnected(void *pen)
{
	struct fpen *p = pen;
	p->n_disconnected++;
	CHECK_EQ(p->n_connected, p->n_disconnected);
}

static int fp_read(void *pen, enum sim_chr chr, uint8_t *buf, size_t size)
{
	struct fpen *p = pen;
	if (p->read_err[chr])
		return p->read_err[chr];
	CHECK(p->len[chr] <= size);
	memcpy(buf, p->val[chr], p->len[chr]);
	return (int)p->len[chr];
}

static int fp_write(void *pen, enum sim_chr chr, const uint8_t *val, size_t len)
{
	struct fpen *p = pen;
	if (p->write_err[chr])
		return p->write_err[chr];
	p->n_writes++;
	p->wchr = (int)chr;
	memcpy(p->wval, val, len);
	p->wlen = len;
	if (p->ind_on_write && chr == SIM_CHR_PEN_CP) {
		const uint8_t rsp[] = {0x80, val[0], 0x01};
		p->ind_on_write_ret = p->rops->indicate(p->srv, SIM_CHR_PEN_CP, rsp, sizeof(rsp));
	}
	return 0;
}

static void fp_cccd(void *pen, enum sim_chr chr, uint16_t value)
{
	struct fpen *p = pen;
	p->cccd[chr] = value;
	p->n_cccd++;
}

static void fp_confirmed(void *pen, enum sim_chr chr)
{
	struct fpen *p = pen;
	p->n_confirms[chr]++;
}

static const struct sim_gatt_server_ops fp_ops = {
	.connected = fp_connected,
	.disconnected = fp_disconnected,
	.read = fp_read,
	.write = fp_write,
	.cccd = fp_cccd,
	.confirmed = fp_confirmed,
};

static struct fpen *pen_new(const char *serial)
{
	struct fpen *p = calloc(1, sizeof(*p));
	struct lradio_adv adv;
	CHECK(p);
	memset(&adv, 0, sizeof(adv));
	snprintf(adv.name, sizeof(adv.name), "NL Pen %s", serial);
	snprintf(adv.serial, sizeof(adv.serial), "%s", serial);
	snprintf(adv.service_uuid, sizeof(adv.service_uuid), "%s", NL_UUID_SERVICE);
	snprintf(adv.kind, sizeof(adv.kind), "pen");
	adv.rssi = -58;
	CHECK_EQ(lradio_server_new(ev, dir, &adv, &fp_ops, p, &p->srv), 0);
	p->rops = lradio_server_radio_ops();
	memcpy(p->val[SIM_CHR_FEATURE], "\x01\x02\x03\x04", 4);
	p->len[SIM_CHR_FEATURE] = 4;
	memcpy(p->val[SIM_CHR_DIS_MODEL], "SIM-1", 5);
	p->len[SIM_CHR_DIS_MODEL] = 5;
	p->val[SIM_CHR_BATTERY_LEVEL][0] = 87;
	p->len[SIM_CHR_BATTERY_LEVEL] = 1;
	return p;
}

static void pen_free(struct fpen *p)
{
	lradio_server_free(p->srv);
	free(p);
}

static uint16_t H(enum sim_chr chr)
{
	uint16_t h = lradio_server_handle(chr);
	CHECK(h != 0);
	return h;
}

/* ---- client helpers ---------------------------------------------------- */

struct result {
	bool done;
	int calls;
	int err;
	uint8_t att;
	uint8_t val[LRADIO_VALUE_MAX];
	size_t len;
	uint16_t mtu;
	int order;
	struct lradio_hello hello;
	size_t n_services, n_chars;
};

struct vevent {
	uint16_t handle;
	bool ind;
	size_t len;
	uint8_t val[LRADIO_FRAME_MAX];
	int confirms_at_rx; /* pen's confirmations on that chr when it arrived */
	int order;
};

static struct {
	int n;
	struct vevent ev[64];
	struct fpen *pen; /* to sample n_confirms */
} vrec;

static struct {
	int count;
	int reason;
} drec;

static int n_destroyed;

static void on_destroy(void *ud)
{
	n_destroyed++;
}

static void on_value(struct lradio_client *c, uint16_t handle, bool ind, const uint8_t *val,
                     size_t len, void *ud)
{
	CHECK(vrec.n < 64);
	struct vevent *e = &vrec.ev[vrec.n++];
	e->handle = handle;
	e->ind = ind;
	e->len = len;
	memcpy(e->val, val, len);
	e->order = ++order_counter;
	e->confirms_at_rx = -1;
	if (vrec.pen)
		for (int i = 0; i < SIM_CHR_COUNT; i++)
			if (lradio_server_handle((enum sim_chr)i) == handle)
				e->confirms_at_rx = vrec.pen->n_confirms[i];
}

static void on_disconnect(struct lradio_client *c, int reason, void *ud)
{
	drec.count++;
	drec.reason = reason;
}

static void connect_cb(struct lradio_client *c, int err, const struct lradio_hello *h, void *ud)
{
	struct result *r = ud;
	r->done = true;
	r->calls++;
	r->err = err;
	if (err == 0)
		r->hello = *h;
	else
		CHECK(h == NULL);
}

static void mtu_cb(struct lradio_client *c, int err, uint16_t mtu, void *ud)
{
	struct result *r = ud;
	r->done = true;
	r->calls++;
	r->err = err;
	r->mtu = mtu;
	r->order = ++order_counter;
}

static void read_cb(struct lradio_client *c, int err, uint8_t att, const uint8_t *val,
                    size_t len, void *ud)
{
	struct result *r = ud;
	r->done = true;
	r->calls++;
	r->err = err;
	r->att = att;
	r->len = len;
	if (len)
		memcpy(r->val, val, len);
	r->order = ++order_counter;
}

static void status_cb(struct lradio_client *c, int err, uint8_t att, void *ud)
{
	struct result *r = ud;
	r->done = true;
	r->calls++;
	r->err = err;
	r->att = att;
	r->order = ++order_counter;
}

static void discover_cb(struct lradio_client *c, int err, const struct lradio_attr *a, size_t n,
                        void *ud)
{
	struct result *r = ud;
	r->done = true;
	r->calls++;
	r->err = err;
	for (size_t i = 0; i < n; i++) {
		if (a[i].kind == LRADIO_ATTR_SERVICE)
			r->n_services++;
		else
			r->n_chars++;
	}
}

static struct lradio_client *client_new(void)
{
	struct lradio_client *c;
	CHECK_EQ(lradio_client_new(ev, &c), 0);
	lradio_client_set_value_handler(c, on_value, NULL);
	lradio_client_set_disconnect_handler(c, on_disconnect, NULL);
	return c;
}

static int try_connect(struct lradio_client *c, struct fpen *p, struct result *r)
{
	memset(r, 0, sizeof(*r));
	int ret = lradio_client_connect(c, lradio_server_path(p->srv), connect_cb, r, on_destroy);
	if (ret < 0)
		return ret;
	RUN_UNTIL(r->done);
	CHECK_EQ(r->calls, 1);
	return r->err;
}

static struct lradio_client *connect_client(struct fpen *p, struct lradio_hello *ret_hello)
{
	struct lradio_client *c = client_new();
	struct result r;
	CHECK_EQ(try_connect(c, p, &r), 0);
	CHECK(lradio_client_connected(c));
	if (ret_hello)
		*ret_hello = r.hello;
	return c;
}

static void do_mtu(struct lradio_client *c, uint16_t mtu, struct result *r)
{
	memset(r, 0, sizeof(*r));
	CHECK(lradio_client_exchange_mtu(c, mtu, mtu_cb, r, NULL) > 0);
	RUN_UNTIL(r->done);
}

static void do_read(struct lradio_client *c, uint16_t handle, struct result *r)
{
	memset(r, 0, sizeof(*r));
	CHECK(lradio_client_read(c, handle, read_cb, r, NULL) > 0);
	RUN_UNTIL(r->done);
}

static void do_write(struct lradio_client *c, uint16_t handle, const void *val, size_t len,
                     struct result *r)
{
	memset(r, 0, sizeof(*r));
	CHECK(lradio_client_write(c, handle, val, len, status_cb, r, NULL) > 0);
	RUN_UNTIL(r->done);
}

static void do_cccd(struct lradio_client *c, uint16_t handle, uint16_t value, struct result *r)
{
	memset(r, 0, sizeof(*r));
	CHECK(lradio_client_write_cccd(c, handle, value, status_cb, r, NULL) > 0);
	RUN_UNTIL(r->done);
}

static void do_discover(struct lradio_client *c, struct result *r)
{
	memset(r, 0, sizeof(*r));
	CHECK(lradio_client_discover(c, discover_cb, r, NULL) > 0);
	RUN_UNTIL(r->done);
}

/* ---- raw central ------------------------------------------------------- */

static int raw_connect(struct fpen *p)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	CHECK(fd >= 0);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", lradio_server_path(p->srv));
	CHECK(connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0);
	return fd;
}

static int readable_cb(sd_event_source *s, int fd, uint32_t revents, void *ud)
{
	*(bool *)ud = true;
	return 0;
}

/* Waits (on the loop) for one datagram; returns its length, 0 on EOF. */
static size_t raw_recv(int fd, uint8_t *buf, size_t size)
{
	sd_event_source *src = NULL;
	bool readable = false;
	CHECK(sd_event_add_io(ev, &src, fd, EPOLLIN, readable_cb, &readable) >= 0);
	RUN_UNTIL(readable);
	sd_event_source_disable_unref(src);
	ssize_t n = recv(fd, buf, size, MSG_DONTWAIT);
	if (n < 0 && errno == ECONNRESET)
		return 0;
	CHECK(n >= 0);
	return (size_t)n;
}

static void raw_send(int fd, const uint8_t *buf, int n)
{
	CHECK(n > 0);
	CHECK(send(fd, buf, (size_t)n, MSG_DONTWAIT | MSG_NOSIGNAL) == n);
}

/* Receives one frame and checks its type. */
static struct lradio_frame raw_expect(int fd, uint8_t *buf, size_t size, enum lradio_type type)
{
	struct lradio_frame f;
	size_t n = raw_recv(fd, buf, size);
	CHECK(n > 0);
	CHECK_EQ(lradio_frame_parse(buf, n, &f), 0);
	if (f.type != type)
		fprintf(stderr, "got %s, expected %s\n", lradio_type_name(f.type),
		        lradio_type_name(type));
	CHECK_EQ(f.type, type);
	return f;
}

static int raw_central(struct fpen *p, uint16_t cccd_handle, uint16_t cccd_value)
{
	uint8_t buf[LRADIO_FRAME_MAX];
	int fd = raw_connect(p);
	(void)raw_expect(fd, buf, sizeof(buf), LRADIO_T_HELLO);
	if (cccd_handle) {
		raw_send(fd, buf, lradio_enc_cccd_req(buf, sizeof(buf), 1, cccd_handle, cccd_value));
		struct lradio_frame f = raw_expect(fd, buf, sizeof(buf), LRADIO_T_CCCD_WRITE_RSP);
		uint8_t att = 0xAA;
		CHECK_EQ(f.id, 1);
		CHECK_EQ(lradio_dec_status_rsp(&f, &att), 0);
		CHECK_EQ(att, 0);
	}
	return fd;
}

static void raw_expect_disconnect(int fd, enum lradio_reason want)
{
	uint8_t buf[LRADIO_FRAME_MAX];
	enum lradio_reason reason;
	struct lradio_frame f = raw_expect(fd, buf, sizeof(buf), LRADIO_T_DISCONNECT);
	CHECK_EQ(lradio_dec_disconnect(&f, &reason), 0);
	CHECK_EQ(reason, want);
	CHECK_EQ(raw_recv(fd, buf, sizeof(buf)), 0); /* then the socket closes */
}

/* ---- scenarios --------------------------------------------------------- */

static void t_discover(void)
{
	struct fpen *p = pen_new("SIM001");
	struct lradio_hello h;
	struct result r;
	struct lradio_client *c = connect_client(p, &h);

	CHECK_EQ(h.version, LRADIO_WIRE_VERSION);
	CHECK_EQ(h.flags, LRADIO_HELLO_SECURE);
	CHECK_EQ(h.max_mtu, LRADIO_MTU_MAX);
	CHECK(strcmp(h.adv.serial, "SIM001") == 0);
	CHECK(strcmp(h.adv.name, "NL Pen SIM001") == 0);
	CHECK(strcmp(h.adv.service_uuid, NL_UUID_SERVICE) == 0);
	CHECK_EQ(h.adv.rssi, -58);
	CHECK_EQ(n_destroyed, 1); /* connect's user data released */
	CHECK_EQ(p->n_connected, 0); /* the pen hears of the link with its first request */
	CHECK_EQ(lradio_client_find_handle(c, NL_UUID_FEATURE, &(uint16_t){0}), -ENODATA);

	do_mtu(c, 247, &r);
	CHECK_EQ(r.err, 0);
	CHECK_EQ(r.mtu, 247);
	CHECK_EQ(lradio_client_mtu(c), 247);
	CHECK_EQ(lradio_server_mtu(p->srv), 247);
	CHECK_EQ(p->n_connected, 1);
	CHECK_EQ(p->conn_mtu, 247);
	CHECK_EQ(lradio_client_exchange_mtu(c, 100, mtu_cb, &r, NULL), -EALREADY);

	do_discover(c, &r);
	CHECK_EQ(r.err, 0);
	CHECK_EQ(r.n_services, 3);
	CHECK_EQ(r.n_chars, SIM_CHR_COUNT); /* 16 entries: more than one frame */
	const struct sim_chr_desc *t = sim_chr_table();
	for (int i = 0; i < SIM_CHR_COUNT; i++) {
		uint16_t handle = 0;
		CHECK_EQ(lradio_client_find_handle(c, t[i].uuid, &handle), 0);
		CHECK_EQ(handle, lradio_server_handle((enum sim_chr)i));
		CHECK_EQ(lradio_client_props(c, handle), t[i].props);
		for (int k = 0; k < i; k++)
			CHECK(lradio_server_handle((enum sim_chr)k) != handle);
	}
	uint16_t handle = 0;
	CHECK_EQ(lradio_client_find_handle(c, NL_UUID_SERVICE, &handle), -ENOENT);
	CHECK_EQ(lradio_client_find_handle(c, "4E4C0003-7A1D-4C3B-9F6E-5D2B8A0C1E37", &handle), 0);
	CHECK_EQ(handle, H(SIM_CHR_LIVE_STATUS));

	lradio_client_free(c);
	RUN_UNTIL(p->n_disconnected == 1);
	CHECK(!lradio_server_connected(p->srv));
	CHECK_EQ(drec.count, 0);
	pen_free(p);
}

static void t_read_write(void)
{
	struct fpen *p = pen_new("SIM002");
	struct lradio_client *c = connect_client(p, NULL);
	struct result r[8];
	const uint8_t cp[] = {0x10, 0x20, 0x30};

	memset(r, 0, sizeof(r));
	p->read_err[SIM_CHR_BATTERY_LEVEL] = -NL_ATT_OUT_OF_RANGE;
	p->write_err[SIM_CHR_RACP] = -NL_ATT_PROC_IN_PROGRESS;
	/* All queued at once: one outstanding at a time, answered in order. */
	CHECK(lradio_client_read(c, H(SIM_CHR_FEATURE), read_cb, &r[0], NULL) > 0);
	CHECK(lradio_client_write(c, H(SIM_CHR_PEN_CP), cp, sizeof(cp), status_cb, &r[1], NULL) > 0);
	CHECK(lradio_client_read(c, 0x7777, read_cb, &r[2], NULL) > 0);
	CHECK(lradio_client_write(c, H(SIM_CHR_FEATURE), cp, 1, status_cb, &r[3], NULL) > 0);
	CHECK(lradio_client_read(c, H(SIM_CHR_PEN_CP), read_cb, &r[4], NULL) > 0);
	CHECK(lradio_client_read(c, H(SIM_CHR_BATTERY_LEVEL), read_cb, &r[5], NULL) > 0);
	CHECK(lradio_client_write(c, H(SIM_CHR_RACP), cp, 2, status_cb, &r[6], NULL) > 0);
	CHECK(lradio_client_read(c, H(SIM_CHR_DIS_MODEL), read_cb, &r[7], NULL) > 0);
	RUN_UNTIL(r[7].done);
	for (int i = 0; i < 8; i++) {
		CHECK_EQ(r[i].calls, 1);
		if (i > 0)
			CHECK(r[i].order > r[i - 1].order);
	}
	CHECK_EQ(r[0].err, 0);
	CHECK_EQ(r[0].len, 4);
	CHECK(memcmp(r[0].val, "\x01\x02\x03\x04", 4) == 0);
	CHECK_EQ(r[1].err, 0);
	CHECK_EQ(r[2].err, -EREMOTEIO);
	CHECK_EQ(r[2].att, LRADIO_ATT_INVALID_HANDLE);
	CHECK_EQ(r[3].err, -EREMOTEIO);
	CHECK_EQ(r[3].att, LRADIO_ATT_WRITE_NOT_PERMITTED);
	CHECK_EQ(r[4].err, -EREMOTEIO);
	CHECK_EQ(r[4].att, LRADIO_ATT_READ_NOT_PERMITTED);
	CHECK_EQ(r[5].err, -EREMOTEIO);
	CHECK_EQ(r[5].att, NL_ATT_OUT_OF_RANGE);
	CHECK_EQ(r[6].err, -EREMOTEIO);
	CHECK_EQ(r[6].att, NL_ATT_PROC_IN_PROGRESS);
	CHECK_EQ(r[7].err, 0);
	CHECK_EQ(r[7].len, 5);
	CHECK(memcmp(r[7].val, "SIM-1", 5) == 0);
	CHECK_EQ(p->n_writes, 1); /* only the Pen CP write reached the pen as a success */
	CHECK_EQ(p->wchr, SIM_CHR_PEN_CP);
	CHECK_EQ(p->wlen, sizeof(cp));
	CHECK(memcmp(p->wval, cp, sizeof(cp)) == 0);
	CHECK_EQ(p->conn_mtu, LRADIO_MTU_DEFAULT); /* no exchange: connected with 23 */

	/* Long values are carried whole by read and write (as BlueZ's
	 * ReadValue/WriteValue do with blob reads and prepared writes). */
	for (size_t i = 0; i < 300; i++)
		p->val[SIM_CHR_FEATURE][i] = (uint8_t)(i ^ 0x5A);
	p->len[SIM_CHR_FEATURE] = 300;
	do_read(c, H(SIM_CHR_FEATURE), &r[0]);
	CHECK_EQ(r[0].err, 0);
	CHECK_EQ(r[0].len, 300);
	CHECK(memcmp(r[0].val, p->val[SIM_CHR_FEATURE], 300) == 0);
	uint8_t big[LRADIO_VALUE_MAX + 1];
	memset(big, 0xEE, sizeof(big));
	do_write(c, H(SIM_CHR_PEN_CP), big, LRADIO_VALUE_MAX, &r[0]);
	CHECK_EQ(r[0].err, 0);
	CHECK_EQ(p->wlen, LRADIO_VALUE_MAX);
	CHECK_EQ(lradio_client_write(c, H(SIM_CHR_PEN_CP), big, sizeof(big), status_cb, &r[0], NULL),
	         -EMSGSIZE);
	lradio_client_free(c);
	RUN_UNTIL(p->n_disconnected == 1);
	pen_free(p);
}

static void t_cccd_notify(void)
{
	struct fpen *p = pen_new("SIM003");
	struct result r;
	uint8_t v[8] = {0};

	CHECK_EQ(p->rops->notify(p->srv, SIM_CHR_LIVE_STATUS, v, 5), -ENOTCONN);
	struct lradio_client *c = connect_client(p, NULL);
	CHECK_EQ(p->rops->notify(p->srv, SIM_CHR_LIVE_STATUS, v, 5), -EINVAL);

	do_cccd(c, H(SIM_CHR_LIVE_STATUS), SIM_CCCD_INDICATE, &r); /* notify-only */
	CHECK_EQ(r.err, -EREMOTEIO);
	CHECK_EQ(r.att, NL_ATT_OUT_OF_RANGE); /* protocol.md 2.4 */
	do_cccd(c, H(SIM_CHR_FEATURE), SIM_CCCD_NOTIFY, &r); /* no CCCD there */
	CHECK_EQ(r.att, LRADIO_ATT_INVALID_HANDLE);
	do_cccd(c, 0x7777, SIM_CCCD_NOTIFY, &r);
	CHECK_EQ(r.att, LRADIO_ATT_INVALID_HANDLE);
	CHECK_EQ(p->n_cccd, 0);

	do_cccd(c, H(SIM_CHR_LIVE_STATUS), SIM_CCCD_NOTIFY, &r);
	CHECK_EQ(r.err, 0);
	CHECK_EQ(p->cccd[SIM_CHR_LIVE_STATUS], SIM_CCCD_NOTIFY);
	CHECK_EQ(p->n_cccd, 1);
	for (int i = 0; i < 20; i++) {
		v[0] = (uint8_t)i;
		CHECK_EQ(p->rops->notify(p->srv, SIM_CHR_LIVE_STATUS, v, 5), 0);
	}
	/* Indications on a notify characteristic, notifications on one whose
	 * CCCD is off: refused. */
	CHECK_EQ(p->rops->indicate(p->srv, SIM_CHR_LIVE_STATUS, v, 5), -EINVAL);
	CHECK_EQ(p->rops->notify(p->srv, SIM_CHR_RECORD, v, 5), -EINVAL);
	CHECK_EQ(p->rops->notify(p->srv, SIM_CHR_COUNT, v, 5), -EINVAL);
	RUN_UNTIL(vrec.n == 20);
	for (int i = 0; i < 20; i++) {
		CHECK_EQ(vrec.ev[i].handle, H(SIM_CHR_LIVE_STATUS));
		CHECK(!vrec.ev[i].ind);
		CHECK_EQ(vrec.ev[i].len, 5);
		CHECK_EQ(vrec.ev[i].val[0], i);
	}
	do_cccd(c, H(SIM_CHR_LIVE_STATUS), 0, &r);
	CHECK_EQ(r.err, 0);
	CHECK_EQ(p->cccd[SIM_CHR_LIVE_STATUS], 0);
	CHECK_EQ(p->rops->notify(p->srv, SIM_CHR_LIVE_STATUS, v, 5), -EINVAL);

	/* CCCDs do not survive the link. */
	do_cccd(c, H(SIM_CHR_BATTERY_LEVEL), SIM_CCCD_NOTIFY, &r);
	CHECK_EQ(r.err, 0);
	lradio_client_free(c);
	RUN_UNTIL(p->n_disconnected == 1);
	c = connect_client(p, NULL);
	CHECK_EQ(p->rops->notify(p->srv, SIM_CHR_BATTERY_LEVEL, v, 1), -EINVAL);
	lradio_client_free(c);
	pen_free(p);
}

/* protocol.md 2.4: a CCCD takes 0 or the one bit its characteristic
 * supports; any other value is ATT 0xFF (Out of Range), is not stored and
 * never reaches the pen's cccd() op. */
static void t_cccd_values(void)
{
	static const uint16_t bad[] = {0x0003, 0x0004, 0x0100, 0x8000, 0xFFFF};
	struct fpen *p = pen_new("SIM020");
	struct lradio_client *c = connect_client(p, NULL);
	struct result r;
	uint8_t v[4] = {0};

	for (int chr = 0; chr < SIM_CHR_COUNT; chr++) {
		unsigned props = sim_chr_table()[chr].props;
		uint16_t ok_bit, wrong_bit;

		if (!(props & (SIM_PROP_NOTIFY | SIM_PROP_INDICATE)))
			continue;
		/* every characteristic in the table has exactly one of the two */
		CHECK(!((props & SIM_PROP_NOTIFY) && (props & SIM_PROP_INDICATE)));
		ok_bit = (props & SIM_PROP_NOTIFY) ? SIM_CCCD_NOTIFY : SIM_CCCD_INDICATE;
		wrong_bit = ok_bit == SIM_CCCD_NOTIFY ? SIM_CCCD_INDICATE : SIM_CCCD_NOTIFY;

		int before = p->n_cccd;
		do_cccd(c, H(chr), wrong_bit, &r);
		CHECK_EQ(r.err, -EREMOTEIO);
		CHECK_EQ(r.att, NL_ATT_OUT_OF_RANGE);
		for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
			do_cccd(c, H(chr), bad[i], &r);
			CHECK_EQ(r.err, -EREMOTEIO);
			CHECK_EQ(r.att, NL_ATT_OUT_OF_RANGE);
		}
		CHECK_EQ(p->n_cccd, before); /* the pen saw none of them */

		do_cccd(c, H(chr), ok_bit, &r);
		CHECK_EQ(r.err, 0);
		CHECK_EQ(p->n_cccd, before + 1);
		CHECK_EQ(p->cccd[chr], ok_bit);
		/* a refused write leaves the enabled CCCD as it was */
		do_cccd(c, H(chr), (uint16_t)(ok_bit | wrong_bit), &r);
		CHECK_EQ(r.att, NL_ATT_OUT_OF_RANGE);
		CHECK_EQ(p->cccd[chr], ok_bit);
		if (ok_bit == SIM_CCCD_NOTIFY)
			CHECK_EQ(p->rops->notify(p->srv, (enum sim_chr)chr, v, 1), 0);
		else
			CHECK_EQ(p->rops->indicate(p->srv, (enum sim_chr)chr, v, 1), 0);
		/* 0 is always accepted */
		do_cccd(c, H(chr), 0, &r);
		CHECK_EQ(r.err, 0);
		CHECK_EQ(p->n_cccd, before + 2);
		CHECK_EQ(p->cccd[chr], 0);
	}
	lradio_client_free(c);
	RUN_UNTIL(p->n_disconnected == 1);
	pen_free(p);
}

static void t_indicate_flow(void)
{
	struct fpen *p = pen_new("SIM004");
	struct lradio_client *c = connect_client(p, NULL);
	struct result r;
	uint8_t v[4] = {0};

	vrec.pen = p;
	do_cccd(c, H(SIM_CHR_RACP), SIM_CCCD_INDICATE, &r);
	CHECK_EQ(r.err, 0);
	do_cccd(c, H(SIM_CHR_PEN_CP), SIM_CCCD_INDICATE, &r);
	CHECK_EQ(r.err, 0);
	CHECK_EQ(p->rops->notify(p->srv, SIM_CHR_RACP, v, 1), -EINVAL);
	for (int i = 0; i < 3; i++) {
		v[0] = (uint8_t)(0x40 + i);
		CHECK_EQ(p->rops->indicate(p->srv, SIM_CHR_RACP, v, 2), 0);
	}
	v[0] = 0x77;
	CHECK_EQ(p->rops->indicate(p->srv, SIM_CHR_PEN_CP, v, 2), 0);
	RUN_UNTIL(vrec.n == 4);
	RUN_UNTIL(p->n_confirms[SIM_CHR_RACP] == 3 && p->n_confirms[SIM_CHR_PEN_CP] == 1);
	int k = 0;
	for (int i = 0; i < 4; i++) {
		struct vevent *e = &vrec.ev[i];
		CHECK(e->ind);
		if (e->handle == H(SIM_CHR_PEN_CP)) {
			/* Another characteristic does not wait for RACP's confirms. */
			CHECK(i < 2);
			CHECK_EQ(e->val[0], 0x77);
			continue;
		}
		CHECK_EQ(e->handle, H(SIM_CHR_RACP));
		CHECK_EQ(e->val[0], 0x40 + k);
		/* The k-th indication left only after the pen saw k confirms. */
		CHECK_EQ(e->confirms_at_rx, k);
		k++;
	}
	CHECK_EQ(k, 3);

	/* A write answered by an indication from inside the write handler: the
	 * write response reaches the central first. */
	p->ind_on_write = true;
	const uint8_t op[] = {0x05};
	do_write(c, H(SIM_CHR_PEN_CP), op, 1, &r);
	CHECK_EQ(r.err, 0);
	CHECK_EQ(p->ind_on_write_ret, 0);
	RUN_UNTIL(vrec.n == 5);
	CHECK(vrec.ev[4].order > r.order);
	CHECK_EQ(vrec.ev[4].len, 3);
	CHECK_EQ(vrec.ev[4].val[0], 0x80);
	CHECK_EQ(vrec.ev[4].val[1], 0x05);
	RUN_UNTIL(p->n_confirms[SIM_CHR_PEN_CP] == 2);
	vrec.pen = NULL;
	lradio_client_free(c);
	pen_free(p);
}

static void t_indicate_raw(void)
{
	struct fpen *p = pen_new("SIM005");
	uint8_t buf[LRADIO_FRAME_MAX];
	struct lradio_frame f;
	const uint8_t *val;
	size_t len;
	int fd = raw_central(p, H(SIM_CHR_RACP), SIM_CCCD_INDICATE);

	CHECK_EQ(p->rops->indicate(p->srv, SIM_CHR_RACP, (const uint8_t *)"A", 1), 0);
	CHECK_EQ(p->rops->indicate(p->srv, SIM_CHR_RACP, (const uint8_t *)"B", 1), 0);
	f = raw_expect(fd, buf, sizeof(buf), LRADIO_T_INDICATE);
	CHECK_EQ(f.id, H(SIM_CHR_RACP));
	CHECK_EQ(lradio_dec_value(&f, &val, &len), 0);
	CHECK(len == 1 && val[0] == 'A');
	/* B must not have been sent: the next frame answers a later request. */
	raw_send(fd, buf, lradio_enc_read_req(buf, sizeof(buf), 2, H(SIM_CHR_BATTERY_LEVEL)));
	f = raw_expect(fd, buf, sizeof(buf), LRADIO_T_READ_RSP);
	CHECK_EQ(f.id, 2);
	CHECK_EQ(p->n_confirms[SIM_CHR_RACP], 0);
	raw_send(fd, buf, lradio_enc_confirm(buf, sizeof(buf), H(SIM_CHR_RACP)));
	f = raw_expect(fd, buf, sizeof(buf), LRADIO_T_INDICATE);
	CHECK_EQ(lradio_dec_value(&f, &val, &len), 0);
	CHECK(len == 1 && val[0] == 'B');
	CHECK_EQ(p->n_confirms[SIM_CHR_RACP], 1);
	raw_send(fd, buf, lradio_enc_confirm(buf, sizeof(buf), H(SIM_CHR_RACP)));
	/* One confirmation too many is a protocol violation. */
	raw_send(fd, buf, lradio_enc_confirm(buf, sizeof(buf), H(SIM_CHR_RACP)));
	raw_expect_disconnect(fd, LRADIO_REASON_PROTOCOL);
	CHECK_EQ(p->n_confirms[SIM_CHR_RACP], 2);
	close(fd);
	RUN_UNTIL(p->n_disconnected == 1);

	/* A central that never confirms loses the link (ATT transaction timeout). */
	lradio_server_set_confirm_timeout(p->srv, 200 * 1000);
	fd = raw_central(p, H(SIM_CHR_ACTIVE_LIMITS), SIM_CCCD_INDICATE);
	CHECK_EQ(p->rops->indicate(p->srv, SIM_CHR_ACTIVE_LIMITS, (const uint8_t *)"L", 1), 0);
	(void)raw_expect(fd, buf, sizeof(buf), LRADIO_T_INDICATE);
	raw_expect_disconnect(fd, LRADIO_REASON_TIMEOUT);
	RUN_UNTIL(p->n_disconnected == 2);
	CHECK_EQ(p->n_confirms[SIM_CHR_ACTIVE_LIMITS], 0);
	close(fd);
	pen_free(p);
}

static void t_mtu_truncation(void)
{
	struct fpen *p = pen_new("SIM006");
	struct lradio_client *c = connect_client(p, NULL);
	struct result r;
	uint8_t v[400];

	for (size_t i = 0; i < sizeof(v); i++)
		v[i] = (uint8_t)i;
	do_cccd(c, H(SIM_CHR_RECORD), SIM_CCCD_NOTIFY, &r);
	CHECK_EQ(r.err, 0);
	do_cccd(c, H(SIM_CHR_PEN_CP), SIM_CCCD_INDICATE, &r);
	CHECK_EQ(r.err, 0);
	CHECK_EQ(p->rops->notify(p->srv, SIM_CHR_RECORD, v, 40), 0);
	CHECK_EQ(p->rops->indicate(p->srv, SIM_CHR_PEN_CP, v, 40), 0);
	/* Fault injection: an oversized notification passes untouched. */
	CHECK_EQ(lradio_server_notify_raw(p->srv, SIM_CHR_RECORD, v, 300), 0);
	RUN_UNTIL(vrec.n == 3);
	CHECK_EQ(vrec.ev[0].len, LRADIO_MTU_DEFAULT - 3);
	CHECK(memcmp(vrec.ev[0].val, v, 20) == 0);
	CHECK_EQ(vrec.ev[1].len, LRADIO_MTU_DEFAULT - 3);
	CHECK(vrec.ev[1].ind);
	CHECK_EQ(vrec.ev[2].len, 300);
	CHECK(memcmp(vrec.ev[2].val, v, 300) == 0);
	lradio_client_free(c);
	RUN_UNTIL(p->n_disconnected == 1);

	c = connect_client(p, NULL);
	do_mtu(c, 100, &r);
	CHECK_EQ(r.mtu, 100);
	CHECK_EQ(p->conn_mtu, 100);
	do_cccd(c, H(SIM_CHR_RECORD), SIM_CCCD_NOTIFY, &r);
	CHECK_EQ(p->rops->notify(p->srv, SIM_CHR_RECORD, v, 200), 0);
	CHECK_EQ(p->rops->notify(p->srv, SIM_CHR_RECORD, v, 97), 0);
	RUN_UNTIL(vrec.n == 5);
	CHECK_EQ(vrec.ev[3].len, 97);
	CHECK_EQ(vrec.ev[4].len, 97);

	/* A corrupt frame from the pen breaks the link on the central's side. */
	CHECK_EQ(lradio_server_send_raw(p->srv, v, LRADIO_FRAME_MAX + 1), -EMSGSIZE);
	const uint8_t junk[] = {0x77, 0x01, 0x00, 0xFF};
	CHECK_EQ(lradio_server_send_raw(p->srv, junk, sizeof(junk)), 0);
	RUN_UNTIL(drec.count == 1);
	CHECK_EQ(drec.reason, -EPROTO);
	CHECK(!lradio_client_connected(c));
	RUN_UNTIL(p->n_disconnected == 2);
	lradio_client_free(c);
	pen_free(p);
}

static void t_timeout(void)
{
	struct fpen *p = pen_new("SIM007");
	struct lradio_client *c = connect_client(p, NULL);
	struct result r, r1, r2;

	do_mtu(c, 64, &r);
	CHECK_EQ(p->n_connected, 1);
	lradio_client_set_timeout(c, 200 * 1000);
	lradio_server_set_silent(p->srv, true);
	memset(&r1, 0, sizeof(r1));
	memset(&r2, 0, sizeof(r2));
	CHECK(lradio_client_read(c, H(SIM_CHR_FEATURE), read_cb, &r1, on_destroy) > 0);
	CHECK(lradio_client_read(c, H(SIM_CHR_FEATURE), read_cb, &r2, on_destroy) > 0);
	RUN_UNTIL(r2.done);
	CHECK_EQ(r1.calls, 1);
	CHECK_EQ(r1.err, -ETIMEDOUT);
	CHECK_EQ(r2.calls, 1);
	CHECK_EQ(r2.err, -ECONNABORTED);
	CHECK(r1.order < r2.order);
	CHECK_EQ(drec.count, 1);
	CHECK_EQ(drec.reason, -ETIMEDOUT);
	CHECK(!lradio_client_connected(c));
	CHECK_EQ(n_destroyed, 3); /* connect + both reads */
	CHECK_EQ(lradio_client_read(c, H(SIM_CHR_FEATURE), read_cb, &r1, NULL), -ENOTCONN);
	RUN_UNTIL(p->n_disconnected == 1); /* the pen sees the central go */

	/* The same client object reconnects. */
	lradio_server_set_silent(p->srv, false);
	CHECK_EQ(try_connect(c, p, &r), 0);
	do_read(c, H(SIM_CHR_BATTERY_LEVEL), &r);
	CHECK_EQ(r.err, 0);
	CHECK_EQ(r.val[0], 87);
	lradio_client_free(c);
	pen_free(p);
}

static bool file_exists(const char *path, mode_t type)
{
	struct stat st;
	if (stat(path, &st) < 0) {
		CHECK_EQ(errno, ENOENT);
		return false;
	}
	CHECK_EQ(st.st_mode & S_IFMT, type);
	return true;
}

static void read_adv(const char *serial, struct lradio_adv *ret)
{
	char path[PATH_MAX + 64], text[512];
	snprintf(path, sizeof(path), "%s/%s.adv", dir, serial);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	CHECK(fd >= 0);
	ssize_t n = read(fd, text, sizeof(text));
	close(fd);
	CHECK(n > 0);
	CHECK_EQ(lradio_adv_parse(text, (size_t)n, ret), 0);
}

static void t_range(void)
{
	struct fpen *p = pen_new("SIM008");
	struct lradio_client *c = connect_client(p, NULL);
	struct lradio_adv adv;
	struct result r;
	char adv_path[PATH_MAX + 64];

	snprintf(adv_path, sizeof(adv_path), "%s/SIM008.adv", dir);
	do_mtu(c, 185, &r);
	CHECK(file_exists(lradio_server_path(p->srv), S_IFSOCK));
	read_adv("SIM008", &adv);
	CHECK(strcmp(adv.serial, "SIM008") == 0);
	CHECK_EQ(adv.rssi, -58);
	CHECK_EQ(lradio_server_set_rssi(p->srv, -40), 0);
	read_adv("SIM008", &adv);
	CHECK_EQ(adv.rssi, -40);

	/* Out of range: a link loss, the files vanish. */
	CHECK_EQ(lradio_server_set_in_range(p->srv, false), 0);
	CHECK(!lradio_server_in_range(p->srv));
	CHECK(!file_exists(lradio_server_path(p->srv), S_IFSOCK));
	CHECK(!file_exists(adv_path, S_IFREG));
	CHECK_EQ(p->rops->notify(p->srv, SIM_CHR_LIVE_STATUS, (const uint8_t *)"x", 1), -ENOTCONN);
	/* The client has not noticed yet: its send fails, but the request call
	 * itself never calls back; the loop ends the link. */
	memset(&r, 0, sizeof(r));
	CHECK(lradio_client_read(c, H(SIM_CHR_DIS_MODEL), read_cb, &r, NULL) > 0);
	CHECK(!r.done);
	RUN_UNTIL(drec.count == 1);
	CHECK_EQ(drec.reason, -ECONNRESET);
	CHECK(r.done);
	CHECK_EQ(r.err, -ECONNABORTED);
	RUN_UNTIL(p->n_disconnected == 1);
	CHECK_EQ(try_connect(c, p, &r), -ENOENT);

	/* Back in range. */
	CHECK_EQ(lradio_server_set_in_range(p->srv, true), 0);
	CHECK(file_exists(lradio_server_path(p->srv), S_IFSOCK));
	read_adv("SIM008", &adv);
	CHECK_EQ(adv.rssi, -40);
	CHECK_EQ(try_connect(c, p, &r), 0);
	do_read(c, H(SIM_CHR_DIS_MODEL), &r);
	CHECK_EQ(r.err, 0);
	CHECK_EQ(p->n_connected, 2);

	/* The pen drops the link: the central is told; the pen's own
	 * disconnected() comes from the loop, not from inside its call. */
	p->rops->disconnect(p->srv);
	CHECK_EQ(p->n_disconnected, 1);
	RUN_UNTIL(drec.count == 2);
	CHECK_EQ(drec.reason, -ESHUTDOWN);
	RUN_UNTIL(p->n_disconnected == 2);

	/* The central disconnects: no disconnect notice to itself. */
	CHECK_EQ(try_connect(c, p, &r), 0);
	do_read(c, H(SIM_CHR_DIS_MODEL), &r);
	CHECK_EQ(p->n_connected, 3);
	memset(&r, 0, sizeof(r));
	CHECK(lradio_client_read(c, H(SIM_CHR_DIS_MODEL), read_cb, &r, NULL) > 0);
	lradio_client_disconnect(c);
	CHECK(r.done);
	CHECK_EQ(r.err, -ECANCELED);
	RUN_UNTIL(p->n_disconnected == 3);
	CHECK_EQ(drec.count, 2);
	lradio_client_free(c);
	pen_free(p);
	CHECK(!file_exists(adv_path, S_IFREG));
}

static void t_second_central(void)
{
	struct fpen *p = pen_new("SIM009");
	struct lradio_client *a = connect_client(p, NULL);
	struct lradio_client *b = client_new();
	struct result r;

	do_read(a, H(SIM_CHR_BATTERY_LEVEL), &r);
	CHECK_EQ(try_connect(b, p, &r), -EBUSY);
	/* A second simulated pen with the same serial cannot take the socket. */
	struct lradio_server *dup = NULL;
	struct fpen other;
	struct lradio_adv adv;
	memset(&other, 0, sizeof(other));
	memset(&adv, 0, sizeof(adv));
	snprintf(adv.serial, sizeof(adv.serial), "SIM009");
	snprintf(adv.service_uuid, sizeof(adv.service_uuid), "%s", NL_UUID_SERVICE);
	snprintf(adv.kind, sizeof(adv.kind), "pen");
	CHECK_EQ(lradio_server_new(ev, dir, &adv, &fp_ops, &other, &dup), -EADDRINUSE);
	CHECK(dup == NULL);
	char adv_path[PATH_MAX + 64];
	snprintf(adv_path, sizeof(adv_path), "%s/SIM009.adv", dir);
	CHECK(file_exists(adv_path, S_IFREG)); /* the live pen's files untouched */
	CHECK(file_exists(lradio_server_path(p->srv), S_IFSOCK));
	CHECK(!lradio_client_connected(b));
	do_read(a, H(SIM_CHR_BATTERY_LEVEL), &r);
	CHECK_EQ(r.err, 0);
	CHECK_EQ(p->n_connected, 1);
	CHECK_EQ(drec.count, 0);
	lradio_client_disconnect(a);
	RUN_UNTIL(p->n_disconnected == 1);
	CHECK_EQ(try_connect(b, p, &r), 0);
	do_read(b, H(SIM_CHR_BATTERY_LEVEL), &r);
	CHECK_EQ(r.err, 0);
	CHECK_EQ(p->n_connected, 2);
	lradio_client_free(a);
	lradio_client_free(b);
	pen_free(p);
}

static void t_overflow(void)
{
	struct fpen *p = pen_new("SIM010");
	int fd = raw_central(p, H(SIM_CHR_LIVE_STATUS), SIM_CCCD_NOTIFY);
	uint8_t v[20] = {0};
	int r = 0;
	long i;

	lradio_server_set_txq_max(p->srv, 16);
	/* The central never reads: the pen is never blocked, the link drops. */
	for (i = 0; i < 1000000 && r == 0; i++)
		r = p->rops->notify(p->srv, SIM_CHR_LIVE_STATUS, v, sizeof(v));
	CHECK_EQ(r, -ENOBUFS);
	CHECK(i > 16);
	CHECK(!lradio_server_connected(p->srv));
	CHECK_EQ(p->rops->notify(p->srv, SIM_CHR_LIVE_STATUS, v, sizeof(v)), -ENOTCONN);
	CHECK_EQ(p->n_disconnected, 0); /* deferred to the loop */
	RUN_UNTIL(p->n_disconnected == 1);
	close(fd);
	/* The pen is still reachable afterwards. */
	struct lradio_client *c = connect_client(p, NULL);
	struct result res;
	do_read(c, H(SIM_CHR_BATTERY_LEVEL), &res);
	CHECK_EQ(res.err, 0);
	lradio_client_free(c);
	pen_free(p);
}

static void t_protocol_errors(void)
{
	struct fpen *p = pen_new("SIM011");
	uint8_t buf[LRADIO_FRAME_MAX + 100];
	int fd;

	fd = raw_central(p, 0, 0);
	buf[0] = 0x55;
	raw_send(fd, buf, 1);
	raw_expect_disconnect(fd, LRADIO_REASON_PROTOCOL);
	close(fd);

	fd = raw_central(p, 0, 0);
	raw_send(fd, buf, lradio_enc_status_rsp(buf, sizeof(buf), LRADIO_T_WRITE_RSP, 1, 0));
	raw_expect_disconnect(fd, LRADIO_REASON_PROTOCOL);
	close(fd);

	fd = raw_central(p, 0, 0);
	memset(buf, 0, sizeof(buf));
	buf[0] = LRADIO_T_WRITE_REQ;
	raw_send(fd, buf, LRADIO_FRAME_MAX + 50);
	raw_expect_disconnect(fd, LRADIO_REASON_PROTOCOL);
	close(fd);

	fd = raw_central(p, 0, 0);
	raw_send(fd, buf, lradio_enc_read_req(buf, sizeof(buf), 1, H(SIM_CHR_FEATURE)) - 1);
	raw_expect_disconnect(fd, LRADIO_REASON_PROTOCOL);
	close(fd);

	CHECK_EQ(p->n_connected, 0); /* no valid request ever reached the pen */
	/* A central that says goodbye properly. */
	fd = raw_central(p, H(SIM_CHR_RECORD), SIM_CCCD_NOTIFY);
	CHECK_EQ(p->n_connected, 1);
	raw_send(fd, buf, lradio_enc_disconnect(buf, sizeof(buf), LRADIO_REASON_USER));
	CHECK_EQ(raw_recv(fd, buf, sizeof(buf)), 0);
	RUN_UNTIL(p->n_disconnected == 1);
	close(fd);
	pen_free(p);
}

static void t_insecure(void)
{
	struct fpen *p = pen_new("SIM012");
	struct lradio_hello h;
	struct result r;

	lradio_server_set_secure(p->srv, false);
	struct lradio_client *c = connect_client(p, &h);
	CHECK_EQ(h.flags & LRADIO_HELLO_SECURE, 0);
	do_read(c, H(SIM_CHR_FEATURE), &r);
	CHECK_EQ(r.err, -EREMOTEIO);
	CHECK_EQ(r.att, LRADIO_ATT_INSUFFICIENT_AUTHENTICATION);
	do_write(c, H(SIM_CHR_PEN_CP), "\x01", 1, &r);
	CHECK_EQ(r.att, LRADIO_ATT_INSUFFICIENT_AUTHENTICATION);
	do_cccd(c, H(SIM_CHR_LIVE_STATUS), SIM_CCCD_NOTIFY, &r);
	CHECK_EQ(r.att, LRADIO_ATT_INSUFFICIENT_AUTHENTICATION);
	do_read(c, H(SIM_CHR_DIS_MODEL), &r);
	CHECK_EQ(r.err, 0);
	do_cccd(c, H(SIM_CHR_BATTERY_LEVEL), SIM_CCCD_NOTIFY, &r);
	CHECK_EQ(r.err, 0);
	CHECK_EQ(p->n_writes, 0);
	CHECK_EQ(p->n_cccd, 1);
	lradio_client_free(c);
	pen_free(p);
}

static struct lradio_client *reentrant_client;

static void free_in_cb(struct lradio_client *c, int err, uint8_t att, const uint8_t *val,
                       size_t len, void *ud)
{
	read_cb(c, err, att, val, len, ud);
	lradio_client_free(reentrant_client); /* allowed from a callback */
	reentrant_client = NULL;
}

static void t_cancel(void)
{
	struct fpen *p = pen_new("SIM013");
	struct lradio_client *c = connect_client(p, NULL);
	struct result r1, r2, r3, r4;
	int id1, id2;

	n_destroyed = 0;
	memset(&r1, 0, sizeof(r1));
	memset(&r2, 0, sizeof(r2));
	memset(&r3, 0, sizeof(r3));
	memset(&r4, 0, sizeof(r4));
	id1 = lradio_client_read(c, H(SIM_CHR_FEATURE), read_cb, &r1, on_destroy);
	id2 = lradio_client_read(c, H(SIM_CHR_FEATURE), read_cb, &r2, on_destroy);
	CHECK(lradio_client_read(c, H(SIM_CHR_BATTERY_LEVEL), read_cb, &r3, on_destroy) > 0);
	CHECK(id1 > 0 && id2 > 0 && id1 != id2);
	CHECK_EQ(lradio_client_cancel(c, id2), 0); /* queued */
	CHECK(r2.done);
	CHECK_EQ(r2.err, -ECANCELED);
	CHECK_EQ(n_destroyed, 1);
	CHECK_EQ(lradio_client_cancel(c, id1), 0); /* already on the wire */
	CHECK_EQ(r1.err, -ECANCELED);
	CHECK_EQ(lradio_client_cancel(c, id1), -ENOENT);
	CHECK_EQ(lradio_client_cancel(c, 99999), -ENOENT);
	RUN_UNTIL(r3.done);
	CHECK_EQ(r3.err, 0);
	CHECK_EQ(r3.val[0], 87);
	CHECK_EQ(r1.calls, 1); /* its late response was swallowed */
	CHECK_EQ(r2.calls, 1);
	CHECK_EQ(n_destroyed, 3);

	/* Freeing the client from inside its own callback, with work queued. */
	reentrant_client = c;
	CHECK(lradio_client_read(c, H(SIM_CHR_FEATURE), free_in_cb, &r4, on_destroy) > 0);
	CHECK(lradio_client_read(c, H(SIM_CHR_FEATURE), read_cb, &r1, on_destroy) > 0);
	RUN_UNTIL(r4.done);
	CHECK(reentrant_client == NULL);
	CHECK_EQ(r4.err, 0);
	CHECK_EQ(n_destroyed, 5); /* the queued read: destroy only, no callback */
	CHECK_EQ(r1.calls, 1);
	RUN_UNTIL(p->n_disconnected == 1);
	pen_free(p);
}

static void t_default_dir(void)
{
	char buf[PATH_MAX], want[PATH_MAX];

	setenv("NEEDLELINK_SIM_DIR", "/x/sim", 1);
	setenv("XDG_RUNTIME_DIR", "/run/user/7", 1);
	CHECK_EQ(lradio_default_dir(buf, sizeof(buf)), 6);
	CHECK(strcmp(buf, "/x/sim") == 0);
	setenv("NEEDLELINK_SIM_DIR", "", 1);
	CHECK(lradio_default_dir(buf, sizeof(buf)) > 0);
	CHECK(strcmp(buf, "/run/user/7/needlelink-sim") == 0);
	unsetenv("NEEDLELINK_SIM_DIR");
	unsetenv("XDG_RUNTIME_DIR");
	CHECK(lradio_default_dir(buf, sizeof(buf)) > 0);
	snprintf(want, sizeof(want), "/tmp/needlelink-sim-%u", (unsigned)getuid());
	CHECK(strcmp(buf, want) == 0);
	CHECK_EQ(lradio_default_dir(buf, 5), -ENAMETOOLONG);

	/* A serial that could escape the directory is refused. */
	struct lradio_adv adv;
	struct lradio_server *s = NULL;
	memset(&adv, 0, sizeof(adv));
	snprintf(adv.serial, sizeof(adv.serial), "../evil");
	snprintf(adv.service_uuid, sizeof(adv.service_uuid), "%s", NL_UUID_SERVICE);
	snprintf(adv.kind, sizeof(adv.kind), "pen");
	CHECK_EQ(lradio_server_new(ev, dir, &adv, &fp_ops, NULL, &s), -EINVAL);
	CHECK(s == NULL);
}

/* A raw pen: the test plays the server to check the client's side. */
static int raw_listen(char *path, size_t size)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	CHECK(fd >= 0);
	snprintf(path, size, "%s/RAW.sock", dir);
	CHECK(strlen(path) < sizeof(sa.sun_path));
	memcpy(sa.sun_path, path, strlen(path) + 1);
	CHECK(bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0);
	CHECK(listen(fd, 4) == 0);
	return fd;
}

static int raw_accept(int lfd)
{
	sd_event_source *src = NULL;
	bool readable = false;
	CHECK(sd_event_add_io(ev, &src, lfd, EPOLLIN, readable_cb, &readable) >= 0);
	RUN_UNTIL(readable);
	sd_event_source_disable_unref(src);
	int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
	CHECK(fd >= 0);
	return fd;
}

static int raw_pen_hello(int lfd, struct lradio_client *c, const char *path, uint8_t version)
{
	uint8_t buf[LRADIO_FRAME_MAX];
	struct lradio_hello h = {.version = 1, .max_mtu = 517};
	snprintf(h.adv.serial, sizeof(h.adv.serial), "RAW");
	snprintf(h.adv.service_uuid, sizeof(h.adv.service_uuid), "%s", NL_UUID_SERVICE);
	snprintf(h.adv.kind, sizeof(h.adv.kind), "pen");
	struct result r;
	memset(&r, 0, sizeof(r));
	CHECK_EQ(lradio_client_connect(c, path, connect_cb, &r, NULL), 0);
	int fd = raw_accept(lfd);
	int n = lradio_enc_hello(buf, sizeof(buf), &h);
	buf[LRADIO_HDR_LEN] = version;
	raw_send(fd, buf, n);
	RUN_UNTIL(r.done);
	CHECK_EQ(r.err, version == LRADIO_WIRE_VERSION ? 0 : -EPROTO);
	return fd;
}

static void t_client_protocol(void)
{
	char path[PATH_MAX + 64];
	uint8_t buf[LRADIO_FRAME_MAX + 16];
	struct lradio_frame f;
	struct result r;
	int lfd = raw_listen(path, sizeof(path));
	struct lradio_client *c = client_new();
	int fd;

	/* No HELLO: the connect times out. */
	lradio_client_set_timeout(c, 200 * 1000);
	memset(&r, 0, sizeof(r));
	CHECK_EQ(lradio_client_connect(c, path, connect_cb, &r, NULL), 0);
	CHECK_EQ(lradio_client_connect(c, path, connect_cb, &r, NULL), -EISCONN);
	fd = raw_accept(lfd);
	RUN_UNTIL(r.done);
	CHECK_EQ(r.err, -ETIMEDOUT);
	CHECK_EQ(drec.count, 0); /* a failed connect is not a disconnect */
	close(fd);
	lradio_client_set_timeout(c, LRADIO_CLIENT_TIMEOUT_USEC);

	/* Giving up while connecting: the connect completes with -ECANCELED. */
	memset(&r, 0, sizeof(r));
	n_destroyed = 0;
	CHECK_EQ(lradio_client_connect(c, path, connect_cb, &r, on_destroy), 0);
	fd = raw_accept(lfd);
	lradio_client_disconnect(c);
	CHECK(r.done);
	CHECK_EQ(r.err, -ECANCELED);
	CHECK_EQ(n_destroyed, 1);
	raw_expect_disconnect(fd, LRADIO_REASON_USER);
	close(fd);

	/* An unknown wire version is refused. */
	fd = raw_pen_hello(lfd, c, path, 9);
	CHECK(!lradio_client_connected(c));
	close(fd);

	/* A response with another id than the outstanding request's. */
	fd = raw_pen_hello(lfd, c, path, LRADIO_WIRE_VERSION);
	memset(&r, 0, sizeof(r));
	CHECK(lradio_client_read(c, 0x0003, read_cb, &r, NULL) > 0);
	f = raw_expect(fd, buf, sizeof(buf), LRADIO_T_READ_REQ);
	raw_send(fd, buf, lradio_enc_read_rsp(buf, sizeof(buf), (uint16_t)(f.id + 1), 0, NULL, 0));
	RUN_UNTIL(r.done);
	CHECK_EQ(r.err, -ECONNABORTED);
	CHECK_EQ(drec.count, 1);
	CHECK_EQ(drec.reason, -EPROTO);
	close(fd);

	/* The right id but another type of response. */
	fd = raw_pen_hello(lfd, c, path, LRADIO_WIRE_VERSION);
	memset(&r, 0, sizeof(r));
	CHECK(lradio_client_read(c, 0x0003, read_cb, &r, NULL) > 0);
	f = raw_expect(fd, buf, sizeof(buf), LRADIO_T_READ_REQ);
	raw_send(fd, buf, lradio_enc_status_rsp(buf, sizeof(buf), LRADIO_T_WRITE_RSP, f.id, 0));
	RUN_UNTIL(drec.count == 2);
	CHECK_EQ(drec.reason, -EPROTO);
	CHECK_EQ(r.err, -ECONNABORTED);
	close(fd);

	/* Indications are confirmed with their handle after the handler; a
	 * response nobody asked for breaks the link. */
	fd = raw_pen_hello(lfd, c, path, LRADIO_WIRE_VERSION);
	raw_send(fd, buf, lradio_enc_value(buf, sizeof(buf), LRADIO_T_INDICATE, 0x0B,
	                                   (const uint8_t *)"i", 1));
	f = raw_expect(fd, buf, sizeof(buf), LRADIO_T_CONFIRM);
	CHECK_EQ(f.id, 0x0B);
	CHECK_EQ(vrec.n, 1);
	CHECK(vrec.ev[0].ind);
	raw_send(fd, buf, lradio_enc_mtu(buf, sizeof(buf), LRADIO_T_MTU_RSP, 1, 100));
	RUN_UNTIL(drec.count == 3);
	CHECK_EQ(drec.reason, -EPROTO);
	close(fd);

	/* An oversized datagram breaks the link. */
	fd = raw_pen_hello(lfd, c, path, LRADIO_WIRE_VERSION);
	memset(buf, 0, sizeof(buf));
	buf[0] = LRADIO_T_NOTIFY;
	buf[1] = 3;
	raw_send(fd, buf, LRADIO_FRAME_MAX + 1);
	RUN_UNTIL(drec.count == 4);
	CHECK_EQ(drec.reason, -EPROTO);
	CHECK_EQ(vrec.n, 1);
	close(fd);

	/* A discovery spread over frames, then DISCONNECT from the pen. */
	fd = raw_pen_hello(lfd, c, path, LRADIO_WIRE_VERSION);
	memset(&r, 0, sizeof(r));
	CHECK(lradio_client_discover(c, discover_cb, &r, NULL) > 0);
	f = raw_expect(fd, buf, sizeof(buf), LRADIO_T_DISCOVER_REQ);
	uint16_t id = f.id;
	struct lradio_attr a = {.kind = LRADIO_ATTR_SERVICE, .handle = 1};
	CHECK_EQ(lradio_uuid_parse(NL_UUID_SERVICE, a.uuid), 0);
	raw_send(fd, buf, lradio_enc_discover_rsp(buf, sizeof(buf), id, true, &a, 1));
	a.kind = LRADIO_ATTR_CHARACTERISTIC;
	a.handle = 3;
	a.props = LRADIO_PROP_READ;
	CHECK_EQ(lradio_uuid_parse(NL_UUID_FEATURE, a.uuid), 0);
	raw_send(fd, buf, lradio_enc_discover_rsp(buf, sizeof(buf), id, true, &a, 1));
	raw_send(fd, buf, lradio_enc_discover_rsp(buf, sizeof(buf), id, false, NULL, 0));
	RUN_UNTIL(r.done);
	CHECK_EQ(r.err, 0);
	CHECK_EQ(r.n_services, 1);
	CHECK_EQ(r.n_chars, 1);
	uint16_t handle = 0;
	CHECK_EQ(lradio_client_find_handle(c, NL_UUID_FEATURE, &handle), 0);
	CHECK_EQ(handle, 3);
	raw_send(fd, buf, lradio_enc_disconnect(buf, sizeof(buf), LRADIO_REASON_USER));
	RUN_UNTIL(drec.count == 5);
	CHECK_EQ(drec.reason, -ESHUTDOWN);
	close(fd);

	lradio_client_free(c);
	close(lfd);
	unlink(path);
}

/* ---- main -------------------------------------------------------------- */

static int deadline_cb(sd_event_source *s, uint64_t usec, void *ud)
{
	deadline_hit = true;
	return 0;
}

static void rm_dir(void)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int left = 0;
	if (!d)
		return;
	while ((e = readdir(d))) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		fprintf(stderr, "left behind: %s\n", e->d_name);
		left++;
		char path[PATH_MAX * 2];
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		unlink(path);
	}
	closedir(d);
	rmdir(dir);
	CHECK_EQ(left, 0); /* every server removed its files */
}

static const struct {
	const char *name;
	void (*fn)(void);
} scenarios[] = {
	{"discover", t_discover},
	{"read-write", t_read_write},
	{"cccd-notify", t_cccd_notify},
	{"cccd-values", t_cccd_values},
	{"indicate-flow", t_indicate_flow},
	{"indicate-raw", t_indicate_raw},
	{"mtu-truncation", t_mtu_truncation},
	{"timeout", t_timeout},
	{"range", t_range},
	{"second-central", t_second_central},
	{"overflow", t_overflow},
	{"protocol-errors", t_protocol_errors},
	{"insecure", t_insecure},
	{"cancel", t_cancel},
	{"default-dir", t_default_dir},
	{"client-protocol", t_client_protocol},
};

int main(int argc, char **argv)
{
	sd_event_source *deadline = NULL;
	uint64_t now;
	const char *tmp = getenv("TMPDIR");

	if (argc != 2) {
		fprintf(stderr, "usage: %s <scenario>\n", argv[0]);
		return 2;
	}
	for (size_t i = 0; i < sizeof(scenarios) / sizeof(scenarios[0]); i++) {
		if (strcmp(argv[1], scenarios[i].name) != 0)
			continue;
		snprintf(dir, sizeof(dir), "%s/lradio-XXXXXX", tmp && tmp[0] ? tmp : "/tmp");
		CHECK(mkdtemp(dir) != NULL);
		CHECK(sd_event_new(&ev) >= 0);
		CHECK(sd_event_now(ev, CLOCK_MONOTONIC, &now) >= 0);
		CHECK(sd_event_add_time(ev, &deadline, CLOCK_MONOTONIC, now + DEADLINE_USEC, 0,
		                        deadline_cb, NULL) >= 0);
		scenarios[i].fn();
		sd_event_source_disable_unref(deadline);
		sd_event_unref(ev);
		rm_dir();
		printf("lradio link %s: ok\n", argv[1]);
		return 0;
	}
	fprintf(stderr, "unknown scenario %s\n", argv[1]);
	return 2;
}
