/* SPDX-License-Identifier: MIT */
/*
 * Transport layer without pens: the backend registry, error classes, and
 * the sim backend's discovery of pen files through inotify (socket and
 * advertisement appear, change, vanish).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <systemd/sd-event.h>

#include "lradio_wire.h"
#include "needlelink/common.h"
#include "transport.h"

#define CHECK(cond)                                                                          \
	do {                                                                                 \
		if (!(cond)) {                                                               \
			fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
			exit(1);                                                             \
		}                                                                            \
	} while (0)

struct seen {
	unsigned found, lost, other;
	char addr[TRANSPORT_ADDR_MAX];
	char serial[TRANSPORT_SERIAL_MAX + 1];
	char uuid[TRANSPORT_UUID_STR_LEN + 1];
	int rssi;
};

static void sink(const struct transport_event *ev, void *user_data)
{
	struct seen *s = user_data;

	switch (ev->type) {
	case TRANSPORT_EVENT_DEVICE_FOUND:
		s->found++;
		snprintf(s->addr, sizeof(s->addr), "%s", ev->addr);
		snprintf(s->serial, sizeof(s->serial), "%s", ev->u.found.serial);
		CHECK(ev->u.found.n_uuids == 1);
		snprintf(s->uuid, sizeof(s->uuid), "%s", ev->u.found.uuids[0]);
		s->rssi = ev->u.found.rssi;
		break;
	case TRANSPORT_EVENT_DEVICE_LOST:
		s->lost++;
		CHECK(strcmp(ev->addr, s->addr) == 0);
		break;
	case TRANSPORT_EVENT_CONNECTED:
	case TRANSPORT_EVENT_DISCONNECTED:
	case TRANSPORT_EVENT_VALUE:
		s->other++;
		break;
	}
}

static bool deadline_hit;

static int deadline_cb(sd_event_source *src, uint64_t usec, void *userdata)
{
	deadline_hit = true;
	return 0;
}

/* Runs the loop until *counter reaches want; a deadline fails the test. */
static void wait_for(sd_event *ev, const unsigned *counter, unsigned want, const char *what)
{
	sd_event_source *dl = NULL;
	uint64_t now;

	CHECK(sd_event_now(ev, CLOCK_MONOTONIC, &now) >= 0);
	deadline_hit = false;
	CHECK(sd_event_add_time(ev, &dl, CLOCK_MONOTONIC, now + 10000000, 0, deadline_cb, NULL) >=
	      0);
	while (*counter < want) {
		CHECK(sd_event_run(ev, UINT64_MAX) >= 0);
		if (deadline_hit) {
			fprintf(stderr, "deadline waiting for %s\n", what);
			exit(1);
		}
	}
	sd_event_source_disable_unref(dl);
}

static void write_adv(const char *dir, const char *serial, int rssi)
{
	struct lradio_adv adv = { .rssi = (int8_t)rssi };
	char path[512], tmp[512], text[512];
	int n, fd;

	snprintf(adv.name, sizeof(adv.name), "Pen %s", serial);
	snprintf(adv.serial, sizeof(adv.serial), "%s", serial);
	snprintf(adv.service_uuid, sizeof(adv.service_uuid), "%s", NL_UUID_SERVICE);
	snprintf(adv.kind, sizeof(adv.kind), "pen");
	n = lradio_adv_format(text, sizeof(text), &adv);
	CHECK(n > 0);
	snprintf(tmp, sizeof(tmp), "%s/.%s.adv.tmp", dir, serial);
	snprintf(path, sizeof(path), "%s/%s.adv", dir, serial);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	CHECK(fd >= 0);
	CHECK(write(fd, text, (size_t)n) == n);
	CHECK(close(fd) == 0);
	CHECK(rename(tmp, path) == 0);
}

static int bind_sock(const char *dir, const char *serial)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);

	CHECK(fd >= 0);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/%s.sock", dir, serial);
	CHECK(bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0);
	CHECK(listen(fd, 1) == 0);
	return fd;
}

static void test_registry(void)
{
	sd_event *ev = NULL;
	struct transport *t = NULL;

	CHECK(transport_backends[0] != NULL);
	CHECK(transport_find("sim") == &transport_sim_ops);
	CHECK(transport_find("nope") == NULL);
	CHECK(transport_find(NULL) == NULL);
	for (size_t i = 0; transport_backends[i]; i++)
		CHECK(transport_find(transport_backends[i]->name) == transport_backends[i]);
	CHECK(sd_event_new(&ev) >= 0);
	CHECK(transport_new(ev, "nope", NULL, &t) == -ENOENT);
	CHECK(t == NULL);
	CHECK(transport_new(ev, "sim", NULL, &t) == 0);
	CHECK(strcmp(transport_name(t), "sim") == 0);
	/* Not connected: requests are refused with id 0. */
	CHECK(transport_read(t, "NOPE", 1, NULL, NULL, NULL) == 0);
	CHECK(transport_mtu(t, "NOPE") == 0);
	CHECK(transport_cancel(t, 12345) == -ENOENT);
	transport_free(t);
	sd_event_unref(ev);

	CHECK(transport_err_class(0) == TRANSPORT_ERR_NONE);
	CHECK(transport_err_class(-ETIMEDOUT) == TRANSPORT_ERR_TIMEOUT);
	CHECK(transport_err_class(-ECONNREFUSED) == TRANSPORT_ERR_REFUSED);
	CHECK(transport_err_class(-ECONNRESET) == TRANSPORT_ERR_LINK_LOSS);
	CHECK(transport_err_class(-EPROTO) == TRANSPORT_ERR_PROTOCOL);
	CHECK(transport_err_class(-EREMOTEIO) == TRANSPORT_ERR_ATT);
	CHECK(transport_err_class(-ENOMEM) == TRANSPORT_ERR_LOCAL);
	for (int c = 0; c < TRANSPORT_ERR_CLASS_COUNT; c++)
		CHECK(strcmp(transport_err_class_name((enum transport_err_class)c), "?") != 0);
}

static void test_discovery(void)
{
	struct transport_config cfg = { 0 };
	struct transport *t = NULL;
	struct seen s = { 0 };
	char dir[256], path[512];
	sd_event *ev = NULL;
	int fd1, fd2;

	snprintf(dir, sizeof(dir), "%s/gwlink-tp-XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
	CHECK(mkdtemp(dir));
	CHECK(sd_event_new(&ev) >= 0);
	/* A pen already there before scanning starts. */
	fd1 = bind_sock(dir, "TP-1");
	write_adv(dir, "TP-1", -40);
	/* Half a pen (advertisement without socket) is not in range. */
	write_adv(dir, "TP-HALF", -40);
	cfg.sim_dir = dir;
	CHECK(transport_new(ev, "sim", &cfg, &t) == 0);
	transport_set_sink(t, sink, &s);
	CHECK(transport_scan_start(t) == 0);
	CHECK(s.found == 1);
	CHECK(strcmp(s.addr, "TP-1") == 0 && strcmp(s.serial, "TP-1") == 0);
	CHECK(strcmp(s.uuid, NL_UUID_SERVICE) == 0);
	CHECK(s.rssi == -40);

	/* A new pen: socket first, then its advertisement. */
	fd2 = bind_sock(dir, "TP-2");
	write_adv(dir, "TP-2", -70);
	wait_for(ev, &s.found, 2, "TP-2 found");
	CHECK(strcmp(s.addr, "TP-2") == 0 && s.rssi == -70);
	/* RSSI change: found again with the new value. */
	write_adv(dir, "TP-2", -60);
	wait_for(ev, &s.found, 3, "TP-2 rssi update");
	CHECK(s.rssi == -60);
	/* Out of range: the socket goes. */
	snprintf(path, sizeof(path), "%s/TP-2.sock", dir);
	CHECK(unlink(path) == 0);
	wait_for(ev, &s.lost, 1, "TP-2 lost");
	CHECK(s.found == 3);
	CHECK(s.other == 0);

	/* A connect to a pen whose socket does not accept HELLO is a request,
	 * cancellable, and ids are never 0. */
	transport_free(t);
	close(fd1);
	close(fd2);
	snprintf(path, sizeof(path), "%s/TP-1.sock", dir);
	unlink(path);
	snprintf(path, sizeof(path), "%s/TP-1.adv", dir);
	unlink(path);
	snprintf(path, sizeof(path), "%s/TP-2.adv", dir);
	unlink(path);
	snprintf(path, sizeof(path), "%s/TP-HALF.adv", dir);
	unlink(path);
	CHECK(rmdir(dir) == 0);
	sd_event_unref(ev);
}

int main(int argc, char **argv)
{
	test_registry();
	test_discovery();
	printf("transport: ok\n");
	return 0;
}
