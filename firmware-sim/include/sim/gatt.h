/* SPDX-License-Identifier: MIT */
/*
 * The boundary between the pen's firmware core and a radio.
 *
 * The core exposes its GATT server as an ops table that a radio calls
 * (connected, read, write, CCCD, confirmation, disconnected), and it sends
 * notifications and indications through the radio's ops table. Two radios
 * implement it: the local radio (Unix sockets, firmware-sim/radio-local) and
 * the BlueZ peripheral (GattManager1). Neither knows the core's internals.
 */
#ifndef SIM_GATT_H
#define SIM_GATT_H

#include <stddef.h>
#include <stdint.h>

enum sim_chr {
	SIM_CHR_FEATURE = 0,
	SIM_CHR_LIVE_STATUS,
	SIM_CHR_RECORD,
	SIM_CHR_RACP,
	SIM_CHR_PEN_CP,
	SIM_CHR_ACTIVE_LIMITS,
	SIM_CHR_PEN_STATUS,
	SIM_CHR_CARTRIDGE,
	SIM_CHR_DIS_MODEL,
	SIM_CHR_DIS_SERIAL,
	SIM_CHR_DIS_FIRMWARE,
	SIM_CHR_DIS_MANUFACTURER,
	SIM_CHR_BATTERY_LEVEL,
	SIM_CHR_COUNT
};

enum sim_chr_prop {
	SIM_PROP_READ = 1u << 0,
	SIM_PROP_WRITE = 1u << 1,    /* write with response */
	SIM_PROP_NOTIFY = 1u << 2,
	SIM_PROP_INDICATE = 1u << 3,
	SIM_PROP_SECURE = 1u << 4,   /* LE Secure Connections, encrypted + authenticated */
};

struct sim_chr_desc {
	enum sim_chr id;
	const char *service_uuid;
	const char *uuid;
	unsigned props; /* enum sim_chr_prop */
};

/* The pen's attribute table, SIM_CHR_COUNT entries in enum order. */
const struct sim_chr_desc *sim_chr_table(void);
/* The entry whose characteristic UUID is uuid (lower case), or NULL. */
const struct sim_chr_desc *sim_chr_by_uuid(const char *uuid);

/* CCCD values. */
#define SIM_CCCD_NOTIFY 0x0001u
#define SIM_CCCD_INDICATE 0x0002u

/* Implemented by the pen core, called by a radio (from the pen's loop). */
struct sim_gatt_server_ops {
	/* A central connected with this ATT MTU (>= 23). */
	void (*connected)(void *pen, uint16_t mtu);
	void (*disconnected)(void *pen);
	/* Returns the value length, or -(ATT error code). */
	int (*read)(void *pen, enum sim_chr chr, uint8_t *buf, size_t size);
	/* Returns 0, or -(ATT error code) (e.g. -NL_ATT_PROC_IN_PROGRESS). */
	int (*write)(void *pen, enum sim_chr chr, const uint8_t *val, size_t len);
	void (*cccd)(void *pen, enum sim_chr chr, uint16_t value);
	/* The central confirmed an indication on chr. */
	void (*confirmed)(void *pen, enum sim_chr chr);
};

/* Implemented by a radio, called by the pen core. */
struct sim_radio_ops {
	/* 0 when queued for sending; -ENOTCONN with no central; -EINVAL when the
	 * CCCD does not allow it. An indication waits for its confirmation
	 * before the radio sends the next one on the same characteristic. */
	int (*notify)(void *radio, enum sim_chr chr, const uint8_t *val, size_t len);
	int (*indicate)(void *radio, enum sim_chr chr, const uint8_t *val, size_t len);
	/* Drops the link (the pen's side of a link loss). */
	void (*disconnect)(void *radio);
	/* Optional: frames queued towards the central that it has not taken
	 * yet. A pen holds back bulk notifications (a catch-up) while there
	 * are SIM_TX_BACKLOG_MAX or more. */
	size_t (*tx_backlog)(void *radio);
};

#define SIM_TX_BACKLOG_MAX 64

#endif
