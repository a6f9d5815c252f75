/* SPDX-License-Identifier: MIT */
#include "sim-test.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <spawn.h>
#include <stdio.h>
#include <string.h>

#include "needlelink/cp.h"

extern char **environ;

static uint64_t m_now(void *ctx)
{
	return ((struct mem_platform *)ctx)->now;
}

static int m_read(void *ctx, unsigned region, uint32_t off, uint8_t *buf, size_t len)
{
	struct mem_platform *m = ctx;

	if (region >= SIM_STORAGE_REGIONS)
		return -EINVAL;
	if (off >= m->len[region])
		return 0;
	if (len > m->len[region] - off)
		len = m->len[region] - off;
	memcpy(buf, m->region[region] + off, len);
	return (int)len;
}

static int m_append(void *ctx, unsigned region, const uint8_t *buf, size_t len)
{
	struct mem_platform *m = ctx;
	size_t n = len;

	if (m->cut)
		return -EIO;
	if (m->len[region] + len > m->region_max)
		return -ENOSPC;
	if (m->budget >= 0 && (long long)len > m->budget) {
		n = (size_t)m->budget;
		m->cut = true;
	}
	memcpy(m->region[region] + m->len[region], buf, n);
	m->len[region] += n;
	m->spent += n;
	if (m->budget >= 0)
		m->budget -= (long long)n;
	return m->cut ? -EIO : 0;
}

static int m_sync(void *ctx, unsigned region)
{
	struct mem_platform *m = ctx;

	return m->cut ? -EIO : 0;
}

static int m_erase(void *ctx, unsigned region)
{
	struct mem_platform *m = ctx;

	if (m->cut)
		return -EIO;
	if (m->budget == 0) {
		m->cut = true;
		return -EIO;
	}
	if (m->budget > 0)
		m->budget--;
	m->spent++;
	m->erases++;
	m->len[region] = 0;
	return 0;
}

static uint32_t m_random(void *ctx)
{
	struct mem_platform *m = ctx;

	m->rnd = m->rnd * 1103515245u + 12345u;
	return m->rnd;
}

static void m_log(void *ctx, enum sim_log_level level, const char *line)
{
	struct mem_platform *m = ctx;

	if (m->verbose)
		fprintf(stderr, "[%8.3f] %s\n", (double)m->now / 1000.0, line);
}

void mem_platform_init(struct mem_platform *m)
{
	mem_platform_init_size(m, MEM_REGION_MAX);
}

void mem_platform_init_size(struct mem_platform *m, size_t region_max)
{
	memset(m, 0, sizeof(*m));
	m->region_max = region_max;
	for (unsigned i = 0; i < SIM_STORAGE_REGIONS; i++) {
		m->region[i] = calloc(1, region_max);
		CHECK(m->region[i]);
	}
	m->budget = -1;
	m->rnd = 0x5EED;
	m->now = 1000;
	m->verbose = getenv("SIM_TEST_VERBOSE") != NULL;
	m->plat = (struct sim_platform){
		.ctx = m,
		.now_ms = m_now,
		.storage_read = m_read,
		.storage_append = m_append,
		.storage_sync = m_sync,
		.storage_erase = m_erase,
		.random_u32 = m_random,
		.log = m_log,
	};
}

void mem_platform_free(struct mem_platform *m)
{
	for (unsigned i = 0; i < SIM_STORAGE_REGIONS; i++)
		free(m->region[i]);
}

void mem_platform_restore(struct mem_platform *m)
{
	m->cut = false;
	m->budget = -1;
}

/* ---- fake radio -------------------------------------------------------- */

static int fr_send(void *radio, enum sim_chr chr, const uint8_t *val, size_t len, bool ind)
{
	struct fake_radio *r = radio;
	struct fake_msg *m;

	if (!ind && r->full)
		return -ENOBUFS;
	CHECK(len <= sizeof(m->val));
	CHECK(r->n < FAKE_MSG_MAX);
	m = &r->msgs[r->n++];
	m->chr = chr;
	m->indication = ind;
	m->len = (uint16_t)len;
	memcpy(m->val, val, len);
	if (ind)
		r->pending[chr]++;
	return 0;
}

static int fr_notify(void *radio, enum sim_chr chr, const uint8_t *val, size_t len)
{
	return fr_send(radio, chr, val, len, false);
}

static int fr_indicate(void *radio, enum sim_chr chr, const uint8_t *val, size_t len)
{
	return fr_send(radio, chr, val, len, true);
}

static void fr_disconnect(void *radio)
{
	struct fake_radio *r = radio;

	r->disconnects++;
	memset(r->pending, 0, sizeof(r->pending));
	sim_pen_gatt_ops()->disconnected(r->pen);
}

static size_t fr_tx_backlog(void *radio)
{
	const struct fake_radio *r = radio;

	return r->backlog;
}

static const struct sim_radio_ops fr_ops = {
	.notify = fr_notify,
	.indicate = fr_indicate,
	.disconnect = fr_disconnect,
	.tx_backlog = fr_tx_backlog,
};

const struct sim_radio_ops *fake_radio_ops(void)
{
	return &fr_ops;
}

void fake_radio_init(struct fake_radio *r, struct sim_pen *pen)
{
	memset(r, 0, sizeof(*r));
	r->pen = pen;
	r->msgs = calloc(FAKE_MSG_MAX, sizeof(*r->msgs));
	CHECK(r->msgs);
	sim_pen_set_radio(pen, &fr_ops, r);
}

void fake_radio_free(struct fake_radio *r)
{
	free(r->msgs);
}

void fake_radio_clear(struct fake_radio *r)
{
	r->n = 0;
}

void fake_radio_connect(struct fake_radio *r, uint16_t mtu)
{
	const struct sim_gatt_server_ops *ops = sim_pen_gatt_ops();

	memset(r->pending, 0, sizeof(r->pending));
	ops->connected(r->pen, mtu);
	ops->cccd(r->pen, SIM_CHR_LIVE_STATUS, SIM_CCCD_NOTIFY);
	ops->cccd(r->pen, SIM_CHR_RECORD, SIM_CCCD_NOTIFY);
	ops->cccd(r->pen, SIM_CHR_RACP, SIM_CCCD_INDICATE);
	ops->cccd(r->pen, SIM_CHR_PEN_CP, SIM_CCCD_INDICATE);
	ops->cccd(r->pen, SIM_CHR_ACTIVE_LIMITS, SIM_CCCD_INDICATE);
	ops->cccd(r->pen, SIM_CHR_PEN_STATUS, SIM_CCCD_INDICATE);
	ops->cccd(r->pen, SIM_CHR_CARTRIDGE, SIM_CCCD_INDICATE);
}

void fake_radio_confirm_all(struct fake_radio *r)
{
	bool again = true;

	while (again) {
		again = false;
		for (unsigned c = 0; c < SIM_CHR_COUNT; c++) {
			if (r->pending[c]) {
				r->pending[c]--;
				sim_pen_gatt_ops()->confirmed(r->pen, (enum sim_chr)c);
				again = true;
			}
		}
	}
}

int fake_radio_last(const struct fake_radio *r, enum sim_chr chr, unsigned from)
{
	for (unsigned i = r->n; i-- > from;)
		if (r->msgs[i].chr == chr)
			return (int)i;
	return -1;
}

int pen_cp(struct fake_radio *r, const void *reqp, uint32_t *ret_value)
{
	const struct nl_cp_req *req = reqp;
	uint8_t buf[NL_PDU_MAX];
	struct nl_cp_rsp rsp;
	unsigned from = r->n;
	int n, i, w;

	n = nl_cp_req_encode(req, buf, sizeof(buf));
	CHECK(n > 0);
	w = sim_pen_gatt_ops()->write(r->pen, SIM_CHR_PEN_CP, buf, (size_t)n);
	CHECK_EQ(w, 0);
	i = fake_radio_last(r, SIM_CHR_PEN_CP, from);
	if (i < 0)
		return -1;
	CHECK(r->msgs[i].indication);
	CHECK_EQ(nl_cp_rsp_decode(r->msgs[i].val, r->msgs[i].len, &rsp), 0);
	CHECK_EQ(rsp.req_op, req->op);
	fake_radio_confirm_all(r);
	if (ret_value)
		*ret_value = rsp.value;
	return rsp.result;
}

static int rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	return remove(path);
}

void sim_test_rm_rf(const char *path)
{
	(void)nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

int sim_test_spawn(const char *const *argv, const char *errpath)
{
	posix_spawn_file_actions_t fa;
	pid_t pid;

	CHECK_EQ(posix_spawn_file_actions_init(&fa), 0);
	CHECK_EQ(posix_spawn_file_actions_addopen(&fa, 2, errpath, O_WRONLY | O_CREAT | O_TRUNC,
						  0600), 0);
	CHECK_EQ(posix_spawn(&pid, argv[0], &fa, NULL, (char *const *)argv, environ), 0);
	posix_spawn_file_actions_destroy(&fa);
	return pid;
}
