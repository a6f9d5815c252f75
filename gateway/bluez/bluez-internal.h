/* SPDX-License-Identifier: MIT */
/*
 * What the BlueZ transport's files share: a cache of bluetoothd's objects
 * (Adapter1, Device1, GattService1, GattCharacteristic1), fed from
 * ObjectManager.GetManagedObjects, InterfacesAdded, InterfacesRemoved and
 * Properties.PropertiesChanged, and the mapping of org.bluez.Error.* to
 * -errno. No I/O here: messages in, cache out (unit-tested alone).
 */
#ifndef NLGW_BLUEZ_INTERNAL_H
#define NLGW_BLUEZ_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <dbus/dbus.h>

#define BZ_SERVICE "org.bluez"
#define BZ_IFACE_ADAPTER "org.bluez.Adapter1"
#define BZ_IFACE_DEVICE "org.bluez.Device1"
#define BZ_IFACE_SERVICE "org.bluez.GattService1"
#define BZ_IFACE_CHR "org.bluez.GattCharacteristic1"
#define BZ_IFACE_AGENT "org.bluez.Agent1"
#define BZ_IFACE_AGENT_MANAGER "org.bluez.AgentManager1"
#define BZ_IFACE_OM "org.freedesktop.DBus.ObjectManager"
#define BZ_IFACE_PROPS "org.freedesktop.DBus.Properties"

#define BZ_UUIDS_MAX 16
#define BZ_UUID_LEN 36

enum bz_iface {
	BZ_ADAPTER = 1u << 0,
	BZ_DEVICE = 1u << 1,
	BZ_GATT_SERVICE = 1u << 2,
	BZ_GATT_CHR = 1u << 3,
};

/* What a property update touched. */
enum bz_change {
	BZ_CHG_POWERED = 1u << 0,
	BZ_CHG_DISCOVERING = 1u << 1,
	BZ_CHG_CONNECTED = 1u << 2,
	BZ_CHG_RESOLVED = 1u << 3,
	BZ_CHG_PAIRED = 1u << 4, /* Paired or Bonded */
	BZ_CHG_ADV = 1u << 5,    /* Name, Alias, RSSI, UUIDs */
	BZ_CHG_VALUE = 1u << 6,
	BZ_CHG_NOTIFYING = 1u << 7,
	BZ_CHG_MTU = 1u << 8,
	BZ_CHG_OTHER = 1u << 9,
};

/* GattCharacteristic1.Flags we care about. */
enum bz_chr_flag {
	BZ_CHR_READ = 1u << 0,
	BZ_CHR_WRITE = 1u << 1, /* "write" (with response) */
	BZ_CHR_NOTIFY = 1u << 2,
	BZ_CHR_INDICATE = 1u << 3,
};

/* One object path; the fields of every interface it has. */
struct bz_obj {
	struct bz_obj *next;
	char *path;
	unsigned ifaces; /* enum bz_iface */
	/* Adapter1 */
	bool powered, discovering;
	/* Device1 */
	char *adapter; /* object path */
	char address[18];
	char *name, *alias;
	bool has_rssi;
	int16_t rssi;
	size_t n_uuids;
	char uuids[BZ_UUIDS_MAX][BZ_UUID_LEN + 1]; /* lower case */
	bool paired, bonded, bonded_known, connected, resolved;
	/* GattService1 */
	char *device; /* object path */
	/* GattService1 and GattCharacteristic1 */
	char uuid[BZ_UUID_LEN + 1];
	/* GattCharacteristic1 */
	char *service; /* object path */
	unsigned flags; /* enum bz_chr_flag */
	uint16_t mtu;
	bool notifying;
	uint16_t handle; /* value handle: from the "charXXXX" path, plus one */
};

struct bz_cache {
	struct bz_obj *objs;
};

void bz_cache_clear(struct bz_cache *c);
struct bz_obj *bz_cache_find(const struct bz_cache *c, const char *path);

/* Replaces the cache with a GetManagedObjects reply (a{oa{sa{sv}}}).
 * 0 or -EBADMSG (the cache is then empty). */
int bz_cache_load(struct bz_cache *c, DBusMessage *reply);
/* InterfacesAdded (oa{sa{sv}}). *ret_obj: the object, *ret_added the
 * interfaces it gained. 0 or -EBADMSG. */
int bz_cache_added(struct bz_cache *c, DBusMessage *sig, struct bz_obj **ret_obj,
		   unsigned *ret_added);
/* InterfacesRemoved (oas). Writes the path (copied into path_buf) and the
 * removed interfaces; the object is freed when it has none left. */
int bz_cache_removed(struct bz_cache *c, DBusMessage *sig, char *path_buf, size_t size,
		     unsigned *ret_removed);
/* A property of an unexpected type is skipped (the others of the same
 * message still apply); a malformed message structure is -EBADMSG. */
/* PropertiesChanged (sa{sv}as) of the object at the signal's path.
 * *ret_changed: enum bz_change; a changed Value is returned in
 * *ret_val / *ret_len (borrowed from sig). -ENOENT for an unknown object,
 * -EBADMSG. */
int bz_cache_changed(struct bz_cache *c, DBusMessage *sig, struct bz_obj **ret_obj,
		     unsigned *ret_changed, const uint8_t **ret_val, size_t *ret_len);

/* Device of a characteristic (through its service), or NULL. */
struct bz_obj *bz_cache_chr_device(const struct bz_cache *c, const struct bz_obj *chr);
bool bz_obj_has_uuid(const struct bz_obj *dev, const char *uuid);
/* True when path lies below parent ("parent/..."). */
bool bz_path_under(const char *path, const char *parent);

/* -errno for an error reply of bluetoothd, *ret_att (may be NULL) the ATT
 * code when -EREMOTEIO:
 *   InProgress -EBUSY, NotConnected -ENOTCONN, NotReady -ENETDOWN,
 *   AlreadyConnected -EISCONN, DoesNotExist -ENOENT, AlreadyExists -EEXIST,
 *   AuthenticationFailed/Rejected -EACCES, AuthenticationCanceled -ECANCELED,
 *   AuthenticationTimeout -ETIMEDOUT, ConnectionAttemptFailed -ECONNREFUSED,
 *   NotPermitted -EREMOTEIO 0x03 (write) / 0x02 (read), NotAuthorized
 *   -EREMOTEIO 0x08, NotSupported -EREMOTEIO 0x06, InvalidValueLength
 *   -EREMOTEIO 0x0d, InvalidOffset -EREMOTEIO 0x07, Failed with "0xNN" in
 *   the message -EREMOTEIO NN, Failed naming a timeout -ETIMEDOUT, an abort
 *   -ECONNABORTED, "Host is down"/page timeout -EHOSTUNREACH, other Failed
 *   -EIO; D-Bus NoReply/Timeout -ETIMEDOUT, ServiceUnknown -EHOSTUNREACH,
 *   UnknownObject -ENOENT, Disconnected -ENOTCONN, else -EIO. */
int bz_error_errno(const char *name, const char *message, bool write, uint8_t *ret_att);
/* bz_error_errno of a reply; 0 for a METHOD_RETURN. */
int bz_reply_errno(DBusMessage *reply, bool write, uint8_t *ret_att);

#endif
