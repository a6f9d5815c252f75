/* SPDX-License-Identifier: MIT */
/*
 * BlueZ radio, pen side: the pen as a real BLE peripheral through
 * bluetoothd's D-Bus API (GattManager1, LEAdvertisingManager1, AgentManager1),
 * libdbus on sd-event (dbus_loop.h), nothing blocking.
 *
 * The radio exports a GATT application built from sim_chr_table() under
 * /org/needlelink/pen/<serial> (ObjectManager at that root, one GattService1
 * per service, one GattCharacteristic1 per entry), registers it on the
 * configured adapter, advertises the NeedleLink service UUID with the serial
 * as local name (type peripheral), and registers a DisplayOnly agent as the
 * default agent: pairing shows a passkey through the log hook, to be typed on
 * the central. Everything is registered again when bluetoothd restarts
 * (org.bluez vanishes and comes back), when the adapter comes back, and the
 * advertisement when the adapter is powered on again. Failed registrations
 * are retried every RADIO_BLUEZ_RETRY_USEC, and a lost bus connection is
 * opened again at that pace.
 *
 * Characteristic flags: SIM_PROP_SECURE entries use
 * encrypt-authenticated-read/-write/-notify/-indicate; the others (Device
 * Information, Battery) encrypt-read and plain notify. BlueZ enforces them
 * before the pen sees a request.
 *
 * Pen callbacks, as with the local radio: connected(pen, mtu) fires with the
 * central's first GATT request (ReadValue, WriteValue, StartNotify; mtu from
 * the request's "mtu" option, 23 without it; a central that connects while
 * BlueZ holds CCCs for it (a bonded central) and makes no request within
 * RADIO_BLUEZ_LINK_IDLE_USEC connects the pen with 23), disconnected(pen) once per
 * connected(), from a deferred source, when the central's Device1 reports
 * Connected=false, its object goes, the adapter goes or powers off, or
 * bluetoothd leaves the bus. StartNotify/StopNotify map to cccd(); BlueZ
 * keeps CCCs of bonded centrals across links, so on connected() the radio
 * replays cccd() for every characteristic BlueZ has notifying. Indications
 * are PropertiesChanged on Value of an "indicate" characteristic; BlueZ calls
 * Confirm() when the central confirms, which becomes confirmed(pen, chr).
 * Notifications or indications the pen sends from inside read/write/cccd go
 * out after that request's reply.
 *
 * When the pen drops its link (disconnect op, an unconfirmed indication), the
 * radio calls Device1.Disconnect and disconnected() follows at once; until
 * bluetoothd reports that central disconnected (5.66 holds the link about
 * 2 s), its ReadValue/WriteValue get org.bluez.Error.NotPermitted and its
 * StartNotify connects nothing, so the pen never sees a new link the central
 * does not know of (with its segment counter restarted, docs/protocol.md 6.1).
 *
 * ATT errors the pen returns (-(code)) map to D-Bus errors as bluetoothd
 * maps them back (src/gatt-database.c, BlueZ 5.66):
 *   0x02/0x03 NotPermitted, 0x05/0x08 NotAuthorized, 0x06 NotSupported,
 *   0x07 InvalidOffset, 0x0D InvalidValueLength, 0xFE InProgress,
 *   0x80-0x9F and any other code: org.bluez.Error.Failed with message
 *   "0xNN" (BlueZ >= 5.75 answers that exact code when it is 0x80-0x9F;
 *   5.66 answers 0x80 for every Failed), 0xFD ImproperlyConfigured (newer
 *   BlueZ: 0xFD; 5.66: 0x0E unlikely error).
 */
#ifndef RADIO_BLUEZ_H
#define RADIO_BLUEZ_H

#include <stdbool.h>
#include <stdint.h>

#include <systemd/sd-event.h>

#include "sim/gatt.h"
#include "sim/platform.h"

struct radio_bluez;

#define RADIO_BLUEZ_RETRY_USEC (3ULL * 1000000ULL)
#define RADIO_BLUEZ_CONFIRM_TIMEOUT_USEC (30ULL * 1000000ULL) /* ATT: 30 s */
#define RADIO_BLUEZ_LINK_IDLE_USEC (2ULL * 1000000ULL)
#define RADIO_BLUEZ_INDQ_MAX 32 /* indications queued per characteristic */
#define RADIO_BLUEZ_ADV_NAME_MAX 8 /* flags + 128-bit UUID + name fit 31 bytes */

struct radio_bluez_config {
	const char *adapter; /* "hci0" */
	const char *serial; /* 1-32 of [A-Za-z0-9_-]; names the D-Bus paths */
	const char *local_name; /* advertised name; NULL: the serial (cut to
	                          * RADIO_BLUEZ_ADV_NAME_MAX) */
	const char *bus_address; /* NULL: the system bus */
	bool agent; /* register the DisplayOnly default agent */
	/* Log hook (may be NULL): one line, no newline. The passkey is logged
	 * at SIM_LOG_NOTICE as "passkey NNNNNN for <device path>". */
	void (*log)(void *ctx, enum sim_log_level level, const char *line);
	void *log_ctx;
};

/* adapter "hci0", agent true, everything else NULL. */
void radio_bluez_config_default(struct radio_bluez_config *c);

/* Connects to the bus and starts registering (asynchronously). cfg's
 * strings are copied; ops and pen must outlive the radio. Returns 0,
 * -EINVAL (bad config), or -errno from connecting to the bus. */
int radio_bluez_new(sd_event *ev, const struct radio_bluez_config *cfg,
		    const struct sim_gatt_server_ops *ops, void *pen, struct radio_bluez **ret);
/* Unregisters (best effort, without waiting), closes the connection. Calls no
 * pen callback. Accepts NULL. Not from inside a pen callback. */
void radio_bluez_free(struct radio_bluez *r);

/* The radio ops the pen calls; their void *radio argument is the radio.
 * Besides the codes of sim/gatt.h: -ENOBUFS when RADIO_BLUEZ_INDQ_MAX
 * indications wait on that characteristic, -ENOMEM. disconnect() asks
 * bluetoothd to drop the central (Device1.Disconnect). */
const struct sim_radio_ops *radio_bluez_radio_ops(void);

/* The pen has a central (connected() was called, disconnected() not yet). */
bool radio_bluez_connected(const struct radio_bluez *r);
uint16_t radio_bluez_mtu(const struct radio_bluez *r);
/* The GATT application and the advertisement are registered. */
bool radio_bluez_registered(const struct radio_bluez *r);
bool radio_bluez_advertising(const struct radio_bluez *r);
/* The application's D-Bus root path (valid while the radio lives). */
const char *radio_bluez_app_path(const struct radio_bluez *r);

#endif
