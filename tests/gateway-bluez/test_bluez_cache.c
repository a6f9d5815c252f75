/* SPDX-License-Identifier: MIT */
/*
 * The BlueZ transport's object cache and error mapping, with D-Bus messages
 * built in memory the way bluetoothd 5.66 sends them (no bus involved).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bluez-internal.h"
#include "transport.h"

static int failures;

#define CHECK(c)                                                                      \
	do {                                                                          \
		if (!(c)) {                                                           \
			fprintf(stderr, "%s:%d: CHECK(%s) failed\n", __FILE__, __LINE__, #c); \
			failures++;                                                   \
		}                                                                     \
	} while (0)

#define ADAPTER "/org/bluez/hci1"
#define DEV ADAPTER "/dev_00_AA_01_00_00_01"
#define SVC DEV "/service000a"
#define CHR_LIVE SVC "/char000e"
#define NL_SVC "4e4c0001-7a1d-4c3b-9f6e-5d2b8a0c1e37"
#define NL_LIVE "4E4C0003-7A1D-4C3B-9F6E-5D2B8A0C1E37"

/* ---- message building ----------------------------------------------------- */

static void entry_begin(DBusMessageIter *d, DBusMessageIter *e, DBusMessageIter *v,
			const char *key, const char *sig)
{
	dbus_message_iter_open_container(d, DBUS_TYPE_DICT_ENTRY, NULL, e);
	dbus_message_iter_append_basic(e, DBUS_TYPE_STRING, &key);
	dbus_message_iter_open_container(e, DBUS_TYPE_VARIANT, sig, v);
}

static void entry_end(DBusMessageIter *d, DBusMessageIter *e, DBusMessageIter *v)
{
	dbus_message_iter_close_container(e, v);
	dbus_message_iter_close_container(d, e);
}

static void put_basic(DBusMessageIter *d, const char *key, int type, const void *val)
{
	char sig[2] = { (char)type, 0 };
	DBusMessageIter e, v;

	entry_begin(d, &e, &v, key, sig);
	dbus_message_iter_append_basic(&v, type, val);
	entry_end(d, &e, &v);
}

static void put_bool(DBusMessageIter *d, const char *key, bool b)
{
	dbus_bool_t v = b;

	put_basic(d, key, DBUS_TYPE_BOOLEAN, &v);
}

static void put_str(DBusMessageIter *d, const char *key, const char *s)
{
	put_basic(d, key, DBUS_TYPE_STRING, &s);
}

static void put_path(DBusMessageIter *d, const char *key, const char *s)
{
	put_basic(d, key, DBUS_TYPE_OBJECT_PATH, &s);
}

static void put_strv(DBusMessageIter *d, const char *key, const char *const *sv, size_t n)
{
	DBusMessageIter e, v, a;

	entry_begin(d, &e, &v, key, "as");
	dbus_message_iter_open_container(&v, DBUS_TYPE_ARRAY, "s", &a);
	for (size_t i = 0; i < n; i++)
		dbus_message_iter_append_basic(&a, DBUS_TYPE_STRING, &sv[i]);
	dbus_message_iter_close_container(&v, &a);
	entry_end(d, &e, &v);
}

static void put_bytes(DBusMessageIter *d, const char *key, const uint8_t *b, int n)
{
	DBusMessageIter e, v, a;

	entry_begin(d, &e, &v, key, "ay");
	dbus_message_iter_open_container(&v, DBUS_TYPE_ARRAY, "y", &a);
	dbus_message_iter_append_fixed_array(&a, DBUS_TYPE_BYTE, &b, n);
	dbus_message_iter_close_container(&v, &a);
	entry_end(d, &e, &v);
}

/* iface -> a{sv} inside an a{sa{sv}} under construction. */
static void iface_begin(DBusMessageIter *ifs, DBusMessageIter *e, DBusMessageIter *props,
			const char *name)
{
	dbus_message_iter_open_container(ifs, DBUS_TYPE_DICT_ENTRY, NULL, e);
	dbus_message_iter_append_basic(e, DBUS_TYPE_STRING, &name);
	dbus_message_iter_open_container(e, DBUS_TYPE_ARRAY, "{sv}", props);
}

static void iface_end(DBusMessageIter *ifs, DBusMessageIter *e, DBusMessageIter *props)
{
	dbus_message_iter_close_container(e, props);
	dbus_message_iter_close_container(ifs, e);
}

static void adapter_ifaces(DBusMessageIter *ifs, bool powered)
{
	DBusMessageIter e, p;

	iface_begin(ifs, &e, &p, BZ_IFACE_ADAPTER);
	put_str(&p, "Address", "00:AA:01:01:00:02");
	put_bool(&p, "Powered", powered);
	put_bool(&p, "Discovering", false);
	iface_end(ifs, &e, &p);
	/* An interface the cache does not know is skipped. */
	iface_begin(ifs, &e, &p, "org.bluez.LEAdvertisingManager1");
	put_bool(&p, "Whatever", true);
	iface_end(ifs, &e, &p);
}

static void device_ifaces(DBusMessageIter *ifs)
{
	static const char *const uuids[] = { "00001800-0000-1000-8000-00805f9b34fb",
					     "4E4C0001-7A1D-4C3B-9F6E-5D2B8A0C1E37" };
	DBusMessageIter e, p;
	int16_t rssi = -42;

	iface_begin(ifs, &e, &p, BZ_IFACE_DEVICE);
	put_path(&p, "Adapter", ADAPTER);
	put_str(&p, "Address", "00:AA:01:00:00:01");
	put_str(&p, "Name", "SIMBZ1");
	put_str(&p, "Alias", "SIMBZ1");
	put_basic(&p, "RSSI", DBUS_TYPE_INT16, &rssi);
	put_strv(&p, "UUIDs", uuids, 2);
	put_bool(&p, "Paired", true);
	put_bool(&p, "Bonded", true);
	put_bool(&p, "Connected", false);
	put_bool(&p, "ServicesResolved", false);
	iface_end(ifs, &e, &p);
}

static void object(DBusMessageIter *a, const char *path, void (*fill)(DBusMessageIter *))
{
	DBusMessageIter e, ifs;

	dbus_message_iter_open_container(a, DBUS_TYPE_DICT_ENTRY, NULL, &e);
	dbus_message_iter_append_basic(&e, DBUS_TYPE_OBJECT_PATH, &path);
	dbus_message_iter_open_container(&e, DBUS_TYPE_ARRAY, "{sa{sv}}", &ifs);
	fill(&ifs);
	dbus_message_iter_close_container(&e, &ifs);
	dbus_message_iter_close_container(a, &e);
}

static void fill_adapter(DBusMessageIter *ifs)
{
	adapter_ifaces(ifs, true);
}

static void fill_service(DBusMessageIter *ifs)
{
	DBusMessageIter e, p;

	iface_begin(ifs, &e, &p, BZ_IFACE_SERVICE);
	put_str(&p, "UUID", NL_SVC);
	put_path(&p, "Device", DEV);
	put_bool(&p, "Primary", true);
	iface_end(ifs, &e, &p);
}

static void fill_live(DBusMessageIter *ifs)
{
	static const char *const flags[] = { "notify", "encrypt-authenticated-read" };
	DBusMessageIter e, p;
	uint16_t mtu = 247;

	iface_begin(ifs, &e, &p, BZ_IFACE_CHR);
	put_str(&p, "UUID", NL_LIVE);
	put_path(&p, "Service", SVC);
	put_strv(&p, "Flags", flags, 2);
	put_basic(&p, "MTU", DBUS_TYPE_UINT16, &mtu);
	put_bool(&p, "Notifying", false);
	iface_end(ifs, &e, &p);
}

static DBusMessage *managed_objects(void)
{
	DBusMessage *m = dbus_message_new_method_call(BZ_SERVICE, "/", BZ_IFACE_OM, "X");
	DBusMessageIter it, a;

	dbus_message_iter_init_append(m, &it);
	dbus_message_iter_open_container(&it, DBUS_TYPE_ARRAY, "{oa{sa{sv}}}", &a);
	object(&a, ADAPTER, fill_adapter);
	object(&a, DEV, device_ifaces);
	object(&a, SVC, fill_service);
	dbus_message_iter_close_container(&it, &a);
	return m;
}

static DBusMessage *props_changed(const char *path, const char *iface,
				  void (*fill)(DBusMessageIter *), const char *invalidated)
{
	DBusMessage *m = dbus_message_new_signal(path, BZ_IFACE_PROPS, "PropertiesChanged");
	DBusMessageIter it, d, a;

	dbus_message_iter_init_append(m, &it);
	dbus_message_iter_append_basic(&it, DBUS_TYPE_STRING, &iface);
	dbus_message_iter_open_container(&it, DBUS_TYPE_ARRAY, "{sv}", &d);
	if (fill)
		fill(&d);
	dbus_message_iter_close_container(&it, &d);
	dbus_message_iter_open_container(&it, DBUS_TYPE_ARRAY, "s", &a);
	if (invalidated)
		dbus_message_iter_append_basic(&a, DBUS_TYPE_STRING, &invalidated);
	dbus_message_iter_close_container(&it, &a);
	return m;
}

static void fill_connected(DBusMessageIter *d)
{
	put_bool(d, "Connected", true);
	put_bool(d, "ServicesResolved", true);
}

static void fill_value(DBusMessageIter *d)
{
	static const uint8_t v[] = { 1, 2, 3, 4 };

	put_bytes(d, "Value", v, 4);
}

static void fill_bad_type(DBusMessageIter *d)
{
	put_str(d, "Connected", "yes"); /* a string where a boolean belongs */
	put_bool(d, "ServicesResolved", false);
}

/* ---- tests --------------------------------------------------------------- */

static void test_load_and_signals(void)
{
	struct bz_cache c = { 0 };
	struct bz_obj *o, *dev;
	DBusMessage *m;
	unsigned bits = 0;
	const uint8_t *val = NULL;
	size_t len = 0;
	char path[128];

	m = managed_objects();
	CHECK(bz_cache_load(&c, m) == 0);
	dbus_message_unref(m);

	o = bz_cache_find(&c, ADAPTER);
	CHECK(o && o->ifaces == BZ_ADAPTER && o->powered && !o->discovering);
	dev = bz_cache_find(&c, DEV);
	CHECK(dev && dev->ifaces == BZ_DEVICE);
	CHECK(dev && strcmp(dev->adapter, ADAPTER) == 0 && strcmp(dev->name, "SIMBZ1") == 0);
	CHECK(dev && dev->has_rssi && dev->rssi == -42);
	CHECK(dev && dev->n_uuids == 2 && bz_obj_has_uuid(dev, NL_SVC));
	/* UUIDs are kept lower case. */
	CHECK(dev && strcmp(dev->uuids[1], NL_SVC) == 0);
	CHECK(dev && dev->paired && dev->bonded && dev->bonded_known && !dev->connected);
	CHECK(bz_cache_find(&c, "/org/bluez/hci1/dev_nope") == NULL);
	CHECK(bz_path_under(CHR_LIVE, DEV) && !bz_path_under(DEV "X", DEV) &&
	      !bz_path_under(DEV, DEV));

	/* InterfacesAdded: a characteristic; its handle from the path. */
	m = dbus_message_new_signal("/", BZ_IFACE_OM, "InterfacesAdded");
	{
		DBusMessageIter it, ifs;
		const char *p = CHR_LIVE;

		dbus_message_iter_init_append(m, &it);
		dbus_message_iter_append_basic(&it, DBUS_TYPE_OBJECT_PATH, &p);
		dbus_message_iter_open_container(&it, DBUS_TYPE_ARRAY, "{sa{sv}}", &ifs);
		fill_live(&ifs);
		dbus_message_iter_close_container(&it, &ifs);
	}
	o = NULL;
	CHECK(bz_cache_added(&c, m, &o, &bits) == 0);
	dbus_message_unref(m);
	CHECK(o && bits == BZ_GATT_CHR);
	CHECK(o && o->handle == 0x000f && o->mtu == 247 && o->flags == BZ_CHR_NOTIFY);
	CHECK(o && strcmp(o->uuid, "4e4c0003-7a1d-4c3b-9f6e-5d2b8a0c1e37") == 0);
	CHECK(o && bz_cache_chr_device(&c, o) == dev);

	/* PropertiesChanged on the device. */
	m = props_changed(DEV, BZ_IFACE_DEVICE, fill_connected, "RSSI");
	CHECK(bz_cache_changed(&c, m, &o, &bits, NULL, NULL) == 0);
	dbus_message_unref(m);
	CHECK(o == dev && (bits & BZ_CHG_CONNECTED) && (bits & BZ_CHG_RESOLVED) &&
	      (bits & BZ_CHG_ADV));
	CHECK(dev->connected && dev->resolved && !dev->has_rssi);

	/* A notification: Value on the characteristic, borrowed bytes. */
	m = props_changed(CHR_LIVE, BZ_IFACE_CHR, fill_value, NULL);
	CHECK(bz_cache_changed(&c, m, &o, &bits, &val, &len) == 0);
	CHECK((bits & BZ_CHG_VALUE) && len == 4 && val && val[0] == 1 && val[3] == 4);
	dbus_message_unref(m);

	/* Unknown object or interface: -ENOENT; wrong variant type: -EBADMSG. */
	m = props_changed(DEV "/nothing", BZ_IFACE_DEVICE, fill_connected, NULL);
	CHECK(bz_cache_changed(&c, m, &o, &bits, NULL, NULL) == -ENOENT);
	dbus_message_unref(m);
	m = props_changed(DEV, BZ_IFACE_ADAPTER, fill_connected, NULL);
	CHECK(bz_cache_changed(&c, m, &o, &bits, NULL, NULL) == -ENOENT);
	dbus_message_unref(m);
	/* A badly typed property is skipped; its siblings still apply. */
	m = props_changed(DEV, BZ_IFACE_DEVICE, fill_bad_type, NULL);
	CHECK(bz_cache_changed(&c, m, &o, &bits, NULL, NULL) == 0);
	CHECK(dev->connected && !dev->resolved && (bits & BZ_CHG_RESOLVED));
	dbus_message_unref(m);

	/* InterfacesRemoved: the device goes, then a stray removal. */
	m = dbus_message_new_signal("/", BZ_IFACE_OM, "InterfacesRemoved");
	{
		const char *p = DEV, *i1 = BZ_IFACE_DEVICE, *i2 = "org.freedesktop.DBus.Properties";
		const char *ifs[] = { i1, i2 };
		const char **pi = ifs;

		dbus_message_append_args(m, DBUS_TYPE_OBJECT_PATH, &p, DBUS_TYPE_ARRAY,
					 DBUS_TYPE_STRING, &pi, 2, DBUS_TYPE_INVALID);
	}
	CHECK(bz_cache_removed(&c, m, path, sizeof(path), &bits) == 0);
	CHECK(bits == BZ_DEVICE && strcmp(path, DEV) == 0 && !bz_cache_find(&c, DEV));
	CHECK(bz_cache_removed(&c, m, path, sizeof(path), &bits) == 0 && bits == 0);
	dbus_message_unref(m);

	bz_cache_clear(&c);
	CHECK(c.objs == NULL);
}

static void test_malformed(void)
{
	struct bz_cache c = { 0 };
	DBusMessage *m = dbus_message_new_method_call(BZ_SERVICE, "/", BZ_IFACE_OM, "X");
	const char *s = "not a dict";
	struct bz_obj *o = NULL;
	unsigned bits = 0;

	/* Wrong shape of a GetManagedObjects reply. */
	dbus_message_append_args(m, DBUS_TYPE_STRING, &s, DBUS_TYPE_INVALID);
	CHECK(bz_cache_load(&c, m) == -EBADMSG && c.objs == NULL);
	CHECK(bz_cache_added(&c, m, &o, &bits) == -EBADMSG);
	dbus_message_unref(m);
	/* Empty message. */
	m = dbus_message_new_method_call(BZ_SERVICE, "/", BZ_IFACE_OM, "X");
	CHECK(bz_cache_load(&c, m) == -EBADMSG);
	dbus_message_unref(m);
	/* A good load, then a bad one: the cache is emptied, not half-kept. */
	m = managed_objects();
	CHECK(bz_cache_load(&c, m) == 0 && c.objs != NULL);
	dbus_message_unref(m);
	m = dbus_message_new_method_call(BZ_SERVICE, "/", BZ_IFACE_OM, "X");
	dbus_message_append_args(m, DBUS_TYPE_STRING, &s, DBUS_TYPE_INVALID);
	CHECK(bz_cache_load(&c, m) == -EBADMSG && c.objs == NULL);
	dbus_message_unref(m);
	bz_cache_clear(&c);
}

static void test_errors(void)
{
	static const struct {
		const char *name, *msg;
		bool write;
		int err;
		uint8_t att;
		enum transport_err_class cls;
	} tab[] = {
		{ "org.bluez.Error.InProgress", "Operation already in progress", false, -EBUSY, 0,
		  TRANSPORT_ERR_REFUSED },
		{ "org.bluez.Error.NotConnected", "Not Connected", false, -ENOTCONN, 0,
		  TRANSPORT_ERR_LINK_LOSS },
		{ "org.bluez.Error.Failed", "Operation failed with ATT error: 0x80", true, -EREMOTEIO,
		  0x80, TRANSPORT_ERR_ATT },
		{ "org.bluez.Error.Failed", "0xfe", false, -EREMOTEIO, 0xfe, TRANSPORT_ERR_ATT },
		{ "org.bluez.Error.Failed", "le-connection-abort-by-local", false, -ECONNABORTED, 0,
		  TRANSPORT_ERR_LINK_LOSS },
		{ "org.bluez.Error.Failed", "Connection timed out", false, -ETIMEDOUT, 0,
		  TRANSPORT_ERR_TIMEOUT },
		{ "org.bluez.Error.Failed", "br-connection-page-timeout", false, -EHOSTUNREACH, 0,
		  TRANSPORT_ERR_REFUSED },
		{ "org.bluez.Error.Failed", "Host is down", false, -EHOSTUNREACH, 0,
		  TRANSPORT_ERR_REFUSED },
		{ "org.bluez.Error.Failed", "Something else", false, -EIO, 0, TRANSPORT_ERR_LOCAL },
		{ "org.bluez.Error.Failed", NULL, false, -EIO, 0, TRANSPORT_ERR_LOCAL },
		{ "org.bluez.Error.AuthenticationFailed", "Authentication Failed", false, -EACCES, 0,
		  TRANSPORT_ERR_LOCAL },
		{ "org.bluez.Error.AuthenticationCanceled", "", false, -ECANCELED, 0,
		  TRANSPORT_ERR_LOCAL },
		{ "org.bluez.Error.AuthenticationTimeout", "", false, -ETIMEDOUT, 0,
		  TRANSPORT_ERR_TIMEOUT },
		{ "org.bluez.Error.ConnectionAttemptFailed", "", false, -ECONNREFUSED, 0,
		  TRANSPORT_ERR_REFUSED },
		{ "org.bluez.Error.NotPermitted", "Write not permitted", true, -EREMOTEIO, 0x03,
		  TRANSPORT_ERR_ATT },
		{ "org.bluez.Error.NotPermitted", "Read not permitted", false, -EREMOTEIO, 0x02,
		  TRANSPORT_ERR_ATT },
		{ "org.bluez.Error.NotAuthorized", "", false, -EREMOTEIO, 0x08, TRANSPORT_ERR_ATT },
		{ "org.bluez.Error.InvalidValueLength", "", true, -EREMOTEIO, 0x0d,
		  TRANSPORT_ERR_ATT },
		{ "org.bluez.Error.DoesNotExist", "", false, -ENOENT, 0, TRANSPORT_ERR_REFUSED },
		{ "org.bluez.Error.AlreadyExists", "", false, -EEXIST, 0, TRANSPORT_ERR_LOCAL },
		{ DBUS_ERROR_NO_REPLY, "", false, -ETIMEDOUT, 0, TRANSPORT_ERR_TIMEOUT },
		{ DBUS_ERROR_SERVICE_UNKNOWN, "", false, -EHOSTUNREACH, 0, TRANSPORT_ERR_REFUSED },
		{ DBUS_ERROR_UNKNOWN_OBJECT, "", false, -ENOENT, 0, TRANSPORT_ERR_REFUSED },
		{ DBUS_ERROR_DISCONNECTED, "", false, -ENOTCONN, 0, TRANSPORT_ERR_LINK_LOSS },
	};

	for (size_t i = 0; i < sizeof(tab) / sizeof(tab[0]); i++) {
		uint8_t att = 0xee;
		int r = bz_error_errno(tab[i].name, tab[i].msg, tab[i].write, &att);

		if (r != tab[i].err || (r == -EREMOTEIO && att != tab[i].att) ||
		    transport_err_class(r) != tab[i].cls) {
			fprintf(stderr, "error %s '%s': got %d att 0x%02x, want %d att 0x%02x\n",
				tab[i].name, tab[i].msg ? tab[i].msg : "(null)", r, att, tab[i].err,
				tab[i].att);
			failures++;
		}
	}
	CHECK(bz_error_errno(NULL, NULL, false, NULL) == -EIO);

	/* Through a real error message, and a method return. */
	{
		DBusMessage *call = dbus_message_new_method_call(BZ_SERVICE, DEV, BZ_IFACE_CHR, "R");
		DBusMessage *err, *ok;
		uint8_t att = 0;

		dbus_message_set_serial(call, 7);
		err = dbus_message_new_error(call, "org.bluez.Error.Failed",
					     "Operation failed with ATT error: 0x81");
		ok = dbus_message_new_method_return(call);
		CHECK(bz_reply_errno(err, true, &att) == -EREMOTEIO && att == 0x81);
		CHECK(bz_reply_errno(ok, false, NULL) == 0);
		dbus_message_unref(err);
		dbus_message_unref(ok);
		dbus_message_unref(call);
	}
}

static void test_registry(void)
{
	CHECK(transport_find("bluez") != NULL);
	CHECK(transport_find("bluez") && transport_find("bluez")->connect != NULL);
}

int main(void)
{
	test_load_and_signals();
	test_malformed();
	test_errors();
	test_registry();
	if (failures) {
		fprintf(stderr, "%d check(s) failed\n", failures);
		return 1;
	}
	printf("gateway-bluez-cache: all checks passed\n");
	return 0;
}
