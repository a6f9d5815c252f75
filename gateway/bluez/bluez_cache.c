/* SPDX-License-Identifier: MIT */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bluez-internal.h"

static void obj_free(struct bz_obj *o)
{
	if (!o)
		return;
	free(o->path);
	free(o->adapter);
	free(o->name);
	free(o->alias);
	free(o->device);
	free(o->service);
	free(o);
}

void bz_cache_clear(struct bz_cache *c)
{
	while (c->objs) {
		struct bz_obj *o = c->objs;

		c->objs = o->next;
		obj_free(o);
	}
}

struct bz_obj *bz_cache_find(const struct bz_cache *c, const char *path)
{
	for (struct bz_obj *o = c->objs; o; o = o->next)
		if (strcmp(o->path, path) == 0)
			return o;
	return NULL;
}

bool bz_path_under(const char *path, const char *parent)
{
	size_t n = strlen(parent);

	return strncmp(path, parent, n) == 0 && path[n] == '/';
}

bool bz_obj_has_uuid(const struct bz_obj *dev, const char *uuid)
{
	for (size_t i = 0; i < dev->n_uuids; i++)
		if (strcasecmp(dev->uuids[i], uuid) == 0)
			return true;
	return false;
}

struct bz_obj *bz_cache_chr_device(const struct bz_cache *c, const struct bz_obj *chr)
{
	struct bz_obj *svc;

	if (!chr->service)
		return NULL;
	svc = bz_cache_find(c, chr->service);
	if (!svc || !svc->device)
		return NULL;
	return bz_cache_find(c, svc->device);
}

static unsigned iface_bit(const char *name)
{
	if (strcmp(name, BZ_IFACE_ADAPTER) == 0)
		return BZ_ADAPTER;
	if (strcmp(name, BZ_IFACE_DEVICE) == 0)
		return BZ_DEVICE;
	if (strcmp(name, BZ_IFACE_SERVICE) == 0)
		return BZ_GATT_SERVICE;
	if (strcmp(name, BZ_IFACE_CHR) == 0)
		return BZ_GATT_CHR;
	return 0;
}

/* ---- variants ---------------------------------------------------------- */

static int var_bool(DBusMessageIter *v, bool *out)
{
	dbus_bool_t b;

	if (dbus_message_iter_get_arg_type(v) != DBUS_TYPE_BOOLEAN)
		return -EBADMSG;
	dbus_message_iter_get_basic(v, &b);
	*out = b;
	return 0;
}

static int var_str(DBusMessageIter *v, int type, const char **out)
{
	if (dbus_message_iter_get_arg_type(v) != type)
		return -EBADMSG;
	dbus_message_iter_get_basic(v, out);
	return 0;
}

static int set_str(char **dst, const char *s)
{
	char *c = strdup(s);

	if (!c)
		return -ENOMEM;
	free(*dst);
	*dst = c;
	return 0;
}

static int copy_uuid(char out[BZ_UUID_LEN + 1], const char *s)
{
	size_t n = strlen(s);

	if (n != BZ_UUID_LEN)
		return -EBADMSG;
	for (size_t i = 0; i < n; i++)
		out[i] = (char)tolower((unsigned char)s[i]);
	out[n] = '\0';
	return 0;
}

static int var_uuids(DBusMessageIter *v, struct bz_obj *o)
{
	DBusMessageIter a;

	if (dbus_message_iter_get_arg_type(v) != DBUS_TYPE_ARRAY ||
	    dbus_message_iter_get_element_type(v) != DBUS_TYPE_STRING)
		return -EBADMSG;
	o->n_uuids = 0;
	dbus_message_iter_recurse(v, &a);
	for (; dbus_message_iter_get_arg_type(&a) == DBUS_TYPE_STRING; dbus_message_iter_next(&a)) {
		const char *s;

		dbus_message_iter_get_basic(&a, &s);
		/* More than we keep, or not a 128-bit string: skipped. */
		if (o->n_uuids < BZ_UUIDS_MAX && copy_uuid(o->uuids[o->n_uuids], s) == 0)
			o->n_uuids++;
	}
	return 0;
}

static int var_flags(DBusMessageIter *v, unsigned *out)
{
	DBusMessageIter a;
	unsigned f = 0;

	if (dbus_message_iter_get_arg_type(v) != DBUS_TYPE_ARRAY ||
	    dbus_message_iter_get_element_type(v) != DBUS_TYPE_STRING)
		return -EBADMSG;
	dbus_message_iter_recurse(v, &a);
	for (; dbus_message_iter_get_arg_type(&a) == DBUS_TYPE_STRING; dbus_message_iter_next(&a)) {
		const char *s;

		dbus_message_iter_get_basic(&a, &s);
		/* "encrypt-authenticated-read" etc. are server-side flags; the
		 * client sees the plain ATT properties. */
		if (strcmp(s, "read") == 0)
			f |= BZ_CHR_READ;
		else if (strcmp(s, "write") == 0)
			f |= BZ_CHR_WRITE;
		else if (strcmp(s, "notify") == 0)
			f |= BZ_CHR_NOTIFY;
		else if (strcmp(s, "indicate") == 0)
			f |= BZ_CHR_INDICATE;
	}
	*out = f;
	return 0;
}

static int var_bytes(DBusMessageIter *v, const uint8_t **ret_val, size_t *ret_len)
{
	DBusMessageIter a;
	const uint8_t *p = NULL;
	int n = 0;

	if (dbus_message_iter_get_arg_type(v) != DBUS_TYPE_ARRAY ||
	    dbus_message_iter_get_element_type(v) != DBUS_TYPE_BYTE)
		return -EBADMSG;
	dbus_message_iter_recurse(v, &a);
	dbus_message_iter_get_fixed_array(&a, &p, &n);
	*ret_val = p;
	*ret_len = n > 0 ? (size_t)n : 0;
	return 0;
}

/* "/org/bluez/hci0/dev_X/service000a/char000b": declaration handle 0x000b. */
static uint16_t handle_of_path(const char *path)
{
	const char *s = strrchr(path, '/');
	unsigned long h;
	char *end;

	if (!s || strncmp(s + 1, "char", 4) != 0)
		return 0;
	h = strtoul(s + 5, &end, 16);
	if (*end || end == s + 5 || h == 0 || h >= 0xffff)
		return 0;
	return (uint16_t)(h + 1);
}

/* One property of interface bit; unknown names are ignored. */
static int apply_prop(struct bz_obj *o, unsigned iface, const char *name, DBusMessageIter *v,
		      unsigned *chg, const uint8_t **ret_val, size_t *ret_len)
{
	const char *s;
	bool b;
	int r = 0;

	switch (iface) {
	case BZ_ADAPTER:
		if (strcmp(name, "Powered") == 0) {
			r = var_bool(v, &o->powered);
			*chg |= BZ_CHG_POWERED;
		} else if (strcmp(name, "Discovering") == 0) {
			r = var_bool(v, &o->discovering);
			*chg |= BZ_CHG_DISCOVERING;
		}
		break;
	case BZ_DEVICE:
		if (strcmp(name, "Adapter") == 0) {
			r = var_str(v, DBUS_TYPE_OBJECT_PATH, &s);
			if (r == 0)
				r = set_str(&o->adapter, s);
		} else if (strcmp(name, "Address") == 0) {
			r = var_str(v, DBUS_TYPE_STRING, &s);
			if (r == 0)
				snprintf(o->address, sizeof(o->address), "%s", s);
		} else if (strcmp(name, "Name") == 0 || strcmp(name, "Alias") == 0) {
			r = var_str(v, DBUS_TYPE_STRING, &s);
			if (r == 0)
				r = set_str(name[0] == 'N' ? &o->name : &o->alias, s);
			*chg |= BZ_CHG_ADV;
		} else if (strcmp(name, "RSSI") == 0) {
			if (dbus_message_iter_get_arg_type(v) != DBUS_TYPE_INT16)
				return -EBADMSG;
			dbus_message_iter_get_basic(v, &o->rssi);
			o->has_rssi = true;
			*chg |= BZ_CHG_ADV;
		} else if (strcmp(name, "UUIDs") == 0) {
			r = var_uuids(v, o);
			*chg |= BZ_CHG_ADV;
		} else if (strcmp(name, "Paired") == 0) {
			r = var_bool(v, &o->paired);
			*chg |= BZ_CHG_PAIRED;
		} else if (strcmp(name, "Bonded") == 0) {
			r = var_bool(v, &o->bonded);
			o->bonded_known = r == 0;
			*chg |= BZ_CHG_PAIRED;
		} else if (strcmp(name, "Connected") == 0) {
			r = var_bool(v, &o->connected);
			*chg |= BZ_CHG_CONNECTED;
		} else if (strcmp(name, "ServicesResolved") == 0) {
			r = var_bool(v, &o->resolved);
			*chg |= BZ_CHG_RESOLVED;
		}
		break;
	case BZ_GATT_SERVICE:
		if (strcmp(name, "UUID") == 0) {
			r = var_str(v, DBUS_TYPE_STRING, &s);
			if (r == 0)
				r = copy_uuid(o->uuid, s);
		} else if (strcmp(name, "Device") == 0) {
			r = var_str(v, DBUS_TYPE_OBJECT_PATH, &s);
			if (r == 0)
				r = set_str(&o->device, s);
		}
		break;
	case BZ_GATT_CHR:
		if (strcmp(name, "UUID") == 0) {
			r = var_str(v, DBUS_TYPE_STRING, &s);
			if (r == 0)
				r = copy_uuid(o->uuid, s);
		} else if (strcmp(name, "Service") == 0) {
			r = var_str(v, DBUS_TYPE_OBJECT_PATH, &s);
			if (r == 0)
				r = set_str(&o->service, s);
		} else if (strcmp(name, "Flags") == 0) {
			r = var_flags(v, &o->flags);
		} else if (strcmp(name, "MTU") == 0) {
			if (dbus_message_iter_get_arg_type(v) != DBUS_TYPE_UINT16)
				return -EBADMSG;
			dbus_message_iter_get_basic(v, &o->mtu);
			*chg |= BZ_CHG_MTU;
		} else if (strcmp(name, "Notifying") == 0) {
			r = var_bool(v, &b);
			if (r == 0)
				o->notifying = b;
			*chg |= BZ_CHG_NOTIFYING;
		} else if (strcmp(name, "Value") == 0) {
			const uint8_t *val;
			size_t len;

			r = var_bytes(v, &val, &len);
			if (r == 0 && ret_val) {
				*ret_val = val;
				*ret_len = len;
				*chg |= BZ_CHG_VALUE;
			}
		}
		break;
	default:
		break;
	}
	return r;
}

/* a{sv} of one interface. */
static int apply_props(struct bz_obj *o, unsigned iface, DBusMessageIter *dict, unsigned *chg,
		       const uint8_t **ret_val, size_t *ret_len)
{
	DBusMessageIter a;

	if (dbus_message_iter_get_arg_type(dict) != DBUS_TYPE_ARRAY ||
	    dbus_message_iter_get_element_type(dict) != DBUS_TYPE_DICT_ENTRY)
		return -EBADMSG;
	dbus_message_iter_recurse(dict, &a);
	for (; dbus_message_iter_get_arg_type(&a) == DBUS_TYPE_DICT_ENTRY;
	     dbus_message_iter_next(&a)) {
		DBusMessageIter e, v;
		const char *name;
		int r;

		dbus_message_iter_recurse(&a, &e);
		if (dbus_message_iter_get_arg_type(&e) != DBUS_TYPE_STRING)
			return -EBADMSG;
		dbus_message_iter_get_basic(&e, &name);
		if (!dbus_message_iter_next(&e) ||
		    dbus_message_iter_get_arg_type(&e) != DBUS_TYPE_VARIANT)
			return -EBADMSG;
		dbus_message_iter_recurse(&e, &v);
		r = apply_prop(o, iface, name, &v, chg, ret_val, ret_len);
		if (r == -EBADMSG) {
			/* One property of an unexpected type must not hide the
			 * others of the same signal (bluetoothd batches them). */
			continue;
		}
		if (r < 0)
			return r;
	}
	return 0;
}

static struct bz_obj *obj_get(struct bz_cache *c, const char *path)
{
	struct bz_obj *o = bz_cache_find(c, path);

	if (o)
		return o;
	o = calloc(1, sizeof(*o));
	if (!o)
		return NULL;
	o->path = strdup(path);
	if (!o->path) {
		free(o);
		return NULL;
	}
	o->handle = handle_of_path(path);
	o->next = c->objs;
	c->objs = o;
	return o;
}

static void obj_remove(struct bz_cache *c, struct bz_obj *o)
{
	for (struct bz_obj **pp = &c->objs; *pp; pp = &(*pp)->next)
		if (*pp == o) {
			*pp = o->next;
			obj_free(o);
			return;
		}
}

/* The object's a{sa{sv}}; *ret_added gets the known interfaces. */
static int apply_ifaces(struct bz_cache *c, const char *path, DBusMessageIter *ifs,
			struct bz_obj **ret_obj, unsigned *ret_added)
{
	DBusMessageIter a;
	struct bz_obj *o = NULL;
	unsigned added = 0, chg = 0;

	if (dbus_message_iter_get_arg_type(ifs) != DBUS_TYPE_ARRAY ||
	    dbus_message_iter_get_element_type(ifs) != DBUS_TYPE_DICT_ENTRY)
		return -EBADMSG;
	dbus_message_iter_recurse(ifs, &a);
	for (; dbus_message_iter_get_arg_type(&a) == DBUS_TYPE_DICT_ENTRY;
	     dbus_message_iter_next(&a)) {
		DBusMessageIter e;
		const char *iname;
		unsigned bit;
		int r;

		dbus_message_iter_recurse(&a, &e);
		if (dbus_message_iter_get_arg_type(&e) != DBUS_TYPE_STRING)
			return -EBADMSG;
		dbus_message_iter_get_basic(&e, &iname);
		if (!dbus_message_iter_next(&e))
			return -EBADMSG;
		bit = iface_bit(iname);
		if (!bit)
			continue;
		if (!o) {
			o = obj_get(c, path);
			if (!o)
				return -ENOMEM;
		}
		r = apply_props(o, bit, &e, &chg, NULL, NULL);
		if (r < 0)
			return r;
		o->ifaces |= bit;
		added |= bit;
	}
	if (ret_obj)
		*ret_obj = o;
	if (ret_added)
		*ret_added = added;
	return 0;
}

int bz_cache_load(struct bz_cache *c, DBusMessage *reply)
{
	DBusMessageIter it, a;
	int r;

	bz_cache_clear(c);
	if (!dbus_message_iter_init(reply, &it) ||
	    dbus_message_iter_get_arg_type(&it) != DBUS_TYPE_ARRAY ||
	    dbus_message_iter_get_element_type(&it) != DBUS_TYPE_DICT_ENTRY)
		return -EBADMSG;
	dbus_message_iter_recurse(&it, &a);
	for (; dbus_message_iter_get_arg_type(&a) == DBUS_TYPE_DICT_ENTRY;
	     dbus_message_iter_next(&a)) {
		DBusMessageIter e;
		const char *path;

		dbus_message_iter_recurse(&a, &e);
		if (dbus_message_iter_get_arg_type(&e) != DBUS_TYPE_OBJECT_PATH)
			goto bad;
		dbus_message_iter_get_basic(&e, &path);
		if (!dbus_message_iter_next(&e))
			goto bad;
		r = apply_ifaces(c, path, &e, NULL, NULL);
		if (r < 0) {
			bz_cache_clear(c);
			return r;
		}
	}
	return 0;
bad:
	bz_cache_clear(c);
	return -EBADMSG;
}

int bz_cache_added(struct bz_cache *c, DBusMessage *sig, struct bz_obj **ret_obj,
		   unsigned *ret_added)
{
	DBusMessageIter it;
	const char *path;
	struct bz_obj *o = NULL;
	unsigned added = 0;
	int r;

	if (!dbus_message_iter_init(sig, &it) ||
	    dbus_message_iter_get_arg_type(&it) != DBUS_TYPE_OBJECT_PATH)
		return -EBADMSG;
	dbus_message_iter_get_basic(&it, &path);
	if (!dbus_message_iter_next(&it))
		return -EBADMSG;
	r = apply_ifaces(c, path, &it, &o, &added);
	if (r < 0)
		return r;
	*ret_obj = o;
	*ret_added = added;
	return 0;
}

int bz_cache_removed(struct bz_cache *c, DBusMessage *sig, char *path_buf, size_t size,
		     unsigned *ret_removed)
{
	DBusMessageIter it, a;
	const char *path;
	struct bz_obj *o;
	unsigned removed = 0;

	if (!dbus_message_iter_init(sig, &it) ||
	    dbus_message_iter_get_arg_type(&it) != DBUS_TYPE_OBJECT_PATH)
		return -EBADMSG;
	dbus_message_iter_get_basic(&it, &path);
	if (!dbus_message_iter_next(&it) || dbus_message_iter_get_arg_type(&it) != DBUS_TYPE_ARRAY ||
	    dbus_message_iter_get_element_type(&it) != DBUS_TYPE_STRING)
		return -EBADMSG;
	if ((size_t)snprintf(path_buf, size, "%s", path) >= size)
		return -ENAMETOOLONG;
	dbus_message_iter_recurse(&it, &a);
	for (; dbus_message_iter_get_arg_type(&a) == DBUS_TYPE_STRING; dbus_message_iter_next(&a)) {
		const char *iname;

		dbus_message_iter_get_basic(&a, &iname);
		removed |= iface_bit(iname);
	}
	o = bz_cache_find(c, path);
	if (o) {
		removed &= o->ifaces;
		o->ifaces &= ~removed;
		if (!o->ifaces)
			obj_remove(c, o);
	} else {
		removed = 0;
	}
	*ret_removed = removed;
	return 0;
}

int bz_cache_changed(struct bz_cache *c, DBusMessage *sig, struct bz_obj **ret_obj,
		     unsigned *ret_changed, const uint8_t **ret_val, size_t *ret_len)
{
	DBusMessageIter it, a;
	const char *iname, *path = dbus_message_get_path(sig);
	const uint8_t *val = NULL;
	size_t len = 0;
	struct bz_obj *o;
	unsigned bit, chg = 0;
	int r;

	if (!path || !dbus_message_iter_init(sig, &it) ||
	    dbus_message_iter_get_arg_type(&it) != DBUS_TYPE_STRING)
		return -EBADMSG;
	dbus_message_iter_get_basic(&it, &iname);
	if (!dbus_message_iter_next(&it))
		return -EBADMSG;
	bit = iface_bit(iname);
	o = bz_cache_find(c, path);
	if (!bit || !o || !(o->ifaces & bit))
		return -ENOENT;
	r = apply_props(o, bit, &it, &chg, &val, &len);
	if (r < 0)
		return r;
	/* Invalidated properties: only RSSI matters (out of range). */
	if (dbus_message_iter_next(&it) && dbus_message_iter_get_arg_type(&it) == DBUS_TYPE_ARRAY &&
	    dbus_message_iter_get_element_type(&it) == DBUS_TYPE_STRING) {
		dbus_message_iter_recurse(&it, &a);
		for (; dbus_message_iter_get_arg_type(&a) == DBUS_TYPE_STRING;
		     dbus_message_iter_next(&a)) {
			const char *pname;

			dbus_message_iter_get_basic(&a, &pname);
			if (bit == BZ_DEVICE && strcmp(pname, "RSSI") == 0) {
				o->has_rssi = false;
				chg |= BZ_CHG_ADV;
			}
		}
	}
	*ret_obj = o;
	*ret_changed = chg ? chg : BZ_CHG_OTHER;
	if (ret_val) {
		*ret_val = val;
		*ret_len = len;
	}
	return 0;
}

/* ---- errors -------------------------------------------------------------- */

static int att_in_message(const char *m, uint8_t *ret_att)
{
	const char *p = m ? strstr(m, "0x") : NULL;
	unsigned long v;
	char *end;

	if (!p)
		return -ENOENT;
	v = strtoul(p + 2, &end, 16);
	if (end == p + 2 || v == 0 || v > 0xff)
		return -ENOENT;
	*ret_att = (uint8_t)v;
	return 0;
}

int bz_error_errno(const char *name, const char *message, bool write, uint8_t *ret_att)
{
	static const struct {
		const char *suffix;
		int err;
		uint8_t att;
	} tab[] = {
		{ "InProgress", -EBUSY, 0 },
		{ "NotConnected", -ENOTCONN, 0 },
		{ "NotReady", -ENETDOWN, 0 },
		{ "AlreadyConnected", -EISCONN, 0 },
		{ "DoesNotExist", -ENOENT, 0 },
		{ "AlreadyExists", -EEXIST, 0 },
		{ "AuthenticationFailed", -EACCES, 0 },
		{ "AuthenticationRejected", -EACCES, 0 },
		{ "AuthenticationCanceled", -ECANCELED, 0 },
		{ "AuthenticationTimeout", -ETIMEDOUT, 0 },
		{ "ConnectionAttemptFailed", -ECONNREFUSED, 0 },
		{ "NotAuthorized", -EREMOTEIO, 0x08 },
		{ "NotSupported", -EREMOTEIO, 0x06 },
		{ "InvalidValueLength", -EREMOTEIO, 0x0d },
		{ "InvalidOffset", -EREMOTEIO, 0x07 },
		{ "InvalidArguments", -EINVAL, 0 },
		{ "NotAvailable", -EOPNOTSUPP, 0 },
	};
	uint8_t att = 0;

	if (!name)
		return -EIO;
	if (strncmp(name, "org.bluez.Error.", 16) == 0) {
		const char *s = name + 16;

		for (size_t i = 0; i < sizeof(tab) / sizeof(tab[0]); i++)
			if (strcmp(s, tab[i].suffix) == 0) {
				if (tab[i].err == -EREMOTEIO && ret_att)
					*ret_att = tab[i].att;
				return tab[i].err;
			}
		if (strcmp(s, "NotPermitted") == 0) {
			if (ret_att)
				*ret_att = write ? 0x03 : 0x02;
			return -EREMOTEIO;
		}
		if (strcmp(s, "Failed") == 0) {
			if (att_in_message(message, &att) == 0) {
				if (ret_att)
					*ret_att = att;
				return -EREMOTEIO;
			}
			if (message && (strcasestr(message, "timeout") || strcasestr(message, "timed out")))
				return strcasestr(message, "page") ? -EHOSTUNREACH : -ETIMEDOUT;
			if (message && strcasestr(message, "abort"))
				return -ECONNABORTED;
			if (message && strcasestr(message, "host is down"))
				return -EHOSTUNREACH;
			if (message && strcasestr(message, "refused"))
				return -ECONNREFUSED;
			return -EIO;
		}
		return -EIO;
	}
	if (strcmp(name, DBUS_ERROR_NO_REPLY) == 0 || strcmp(name, DBUS_ERROR_TIMEOUT) == 0 ||
	    strcmp(name, DBUS_ERROR_TIMED_OUT) == 0)
		return -ETIMEDOUT;
	if (strcmp(name, DBUS_ERROR_SERVICE_UNKNOWN) == 0 ||
	    strcmp(name, DBUS_ERROR_NAME_HAS_NO_OWNER) == 0)
		return -EHOSTUNREACH;
	if (strcmp(name, DBUS_ERROR_UNKNOWN_OBJECT) == 0 ||
	    strcmp(name, DBUS_ERROR_UNKNOWN_INTERFACE) == 0)
		return -ENOENT;
	if (strcmp(name, DBUS_ERROR_DISCONNECTED) == 0)
		return -ENOTCONN;
	if (strcmp(name, DBUS_ERROR_NO_MEMORY) == 0)
		return -ENOMEM;
	if (strcmp(name, DBUS_ERROR_ACCESS_DENIED) == 0)
		return -EACCES;
	return -EIO;
}

int bz_reply_errno(DBusMessage *reply, bool write, uint8_t *ret_att)
{
	const char *msg = NULL;

	if (!reply)
		return -EIO;
	if (dbus_message_get_type(reply) != DBUS_MESSAGE_TYPE_ERROR)
		return 0;
	(void)dbus_message_get_args(reply, NULL, DBUS_TYPE_STRING, &msg, DBUS_TYPE_INVALID);
	return bz_error_errno(dbus_message_get_error_name(reply), msg, write, ret_att);
}
