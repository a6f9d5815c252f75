/* SPDX-License-Identifier: MIT */
/*
 * BlueZ backend of the gateway transport ("bluez"): bluetoothd's D-Bus API
 * (BlueZ 5.66) through libdbus on the transport's sd-event loop
 * (nl_dbus_loop), nothing blocking, every method call with a timeout.
 *
 * Addresses are Device1 object paths ("/org/bluez/hci1/dev_XX_..."); a
 * characteristic's handle is its value handle (declaration handle from the
 * "charXXXX" object path, plus one). DEVICE_FOUND carries the advertised
 * local name as serial and name (a NeedleLink pen advertises its serial as
 * local name). Bonded pens are reported found as soon as the adapter is up
 * and scanning is wanted, without an advertisement.
 *
 * connect() pairs first when the device is not paired (LE Secure
 * Connections through the gateway's Agent1: passkey entry or numeric
 * comparison answered by the operator through transport_bluez_pair() /
 * transport_bluez_confirm()), then Device1.Connect, then waits until
 * ServicesResolved is true AND every NeedleLink characteristic exists as a
 * GattCharacteristic1 object. Only paired and bonded devices are reported
 * connected. Live links are lost (DISCONNECTED, -ECONNRESET) when the
 * device disconnects, its object goes, the adapter powers off or goes, or
 * bluetoothd leaves the bus; the backend then re-reads the objects,
 * re-registers its agent and restarts discovery by itself.
 *
 * What happened beyond the transport events (bluetoothd gone, agent
 * registered, passkey wanted, ...) is told through a notice hook.
 */
#ifndef NLGW_TRANSPORT_BLUEZ_H
#define NLGW_TRANSPORT_BLUEZ_H

#include <stdbool.h>
#include <stdint.h>

#include "transport.h"

extern const struct transport_ops transport_bluez_ops;

/* Object path of the gateway's Agent1. */
#define TRANSPORT_BLUEZ_AGENT_PATH "/org/needlelink/gateway/agent"
/* How long an agent request waits for the operator. */
#define TRANSPORT_BLUEZ_AGENT_TIMEOUT_USEC (55ULL * 1000000ULL)
/* Pairing (includes the operator's input), connecting, resolving. */
#define TRANSPORT_BLUEZ_PAIR_TIMEOUT_MS 70000
#define TRANSPORT_BLUEZ_CONNECT_TIMEOUT_MS 30000
#define TRANSPORT_BLUEZ_RESOLVE_TIMEOUT_USEC (30ULL * 1000000ULL)
/* GATT requests, when the config gives no request_timeout_usec. */
#define TRANSPORT_BLUEZ_REQUEST_TIMEOUT_MS 15000
/* Retry of failed registrations and of discovery. */
#define TRANSPORT_BLUEZ_RETRY_USEC (3ULL * 1000000ULL)

enum transport_bluez_notice_type {
	TRANSPORT_BLUEZ_NOTICE_BUS_LOST,          /* the system bus went away */
	TRANSPORT_BLUEZ_NOTICE_BLUEZ_UP,          /* org.bluez appeared, objects read */
	TRANSPORT_BLUEZ_NOTICE_BLUEZ_GONE,        /* org.bluez vanished */
	TRANSPORT_BLUEZ_NOTICE_ADAPTER,           /* adapter chosen (detail: path) */
	TRANSPORT_BLUEZ_NOTICE_ADAPTER_GONE,      /* no usable adapter */
	TRANSPORT_BLUEZ_NOTICE_ADAPTER_POWER,     /* detail "on" / "off" */
	TRANSPORT_BLUEZ_NOTICE_AGENT,             /* registered (err 0) or failed */
	TRANSPORT_BLUEZ_NOTICE_DISCOVERING,       /* detail "on" / "off"; err on failure */
	TRANSPORT_BLUEZ_NOTICE_PASSKEY_WANTED,    /* RequestPasskey pending for serial */
	TRANSPORT_BLUEZ_NOTICE_CONFIRM_WANTED,    /* RequestConfirmation: passkey shown */
	TRANSPORT_BLUEZ_NOTICE_PAIRING_DONE,      /* agent answered (err 0) or refused */
	TRANSPORT_BLUEZ_NOTICE_DEVICE_REMOVED,    /* a device object went */
};

struct transport_bluez_notice {
	enum transport_bluez_notice_type type;
	const char *addr;   /* device path or "" */
	const char *serial; /* "" when none */
	const char *detail; /* "" when none */
	uint32_t passkey;
	int err;
};

/* Strings valid during the call only. */
typedef void (*transport_bluez_notice_fn)(const struct transport_bluez_notice *n,
					  void *user_data);

/* Identity gate: asked before a pen's device is reported found, before it
 * is paired or connected, and when its link is about to be reported
 * connected (bonded is then true). serial: the local name the device last
 * advertised while not connected (BlueZ's Name turns into the GAP Device
 * Name once connected), else its name as BlueZ has it, "" when none; the
 * same serial DEVICE_FOUND carries. address: Device1.Address,
 * the identity address once bonded (BlueZ resolves private addresses with
 * the IRK exchanged at bonding). Return 0 to let the device through, or
 * -EPERM: it is then not reported found, not paired, and a link in progress
 * fails with -EACCES. Called on the loop thread; must not block. */
typedef int (*transport_bluez_gate_fn)(const char *serial, const char *address, bool bonded,
				       void *user_data);

/* t must be a "bluez" transport (else -EINVAL). */
int transport_bluez_set_gate(struct transport *t, transport_bluez_gate_fn fn, void *user_data);
int transport_bluez_set_notice(struct transport *t, transport_bluez_notice_fn fn,
			       void *user_data);
/* Pairing without passkey or comparison (RequestAuthorization, Just Works):
 * refused unless allowed here (pens without a display). Default: refused. */
int transport_bluez_allow_just_works(struct transport *t, bool allow);
/* The operator typed passkey (0..999999) for the pen with this serial:
 * answers its pending RequestPasskey, or is kept for the next one within
 * the agent timeout. 0, -EINVAL, -ERANGE. */
int transport_bluez_pair(struct transport *t, const char *serial, uint32_t passkey);
/* The operator compared the numbers shown for serial: answers its pending
 * RequestConfirmation (accept or reject). 0, -ENOENT when none pending. */
int transport_bluez_confirm(struct transport *t, const char *serial, bool accept);

#endif
