/* SPDX-License-Identifier: MIT */
/*
 * BlueZ radio, pen side (radio_bluez.h).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dbus_loop.h"
#include "radio_bluez.h"

#define BLUEZ "org.bluez"
#define IFACE_ADAPTER "org.bluez.Adapter1"
#define IFACE_DEVICE "org.bluez.Device1"
#define IFACE_GATT_MANAGER "org.bluez.GattManager1"
#define IFACE_ADV_MANAGER "org.bluez.LEAdvertisingManager1"
#define IFACE_AGENT_MANAGER "org.bluez.AgentManager1"
#define IFACE_SERVICE "org.bluez.GattService1"
#define IFACE_CHRC "org.bluez.GattCharacteristic1"
#define IFACE_ADV "org.bluez.LEAdvertisement1"
#define IFACE_AGENT "org.bluez.Agent1"
#define IFACE_PROPS "org.freedesktop.DBus.Properties"
#define IFACE_OM "org.freedesktop.DBus.ObjectManager"
#define ERR_BLUEZ "org.bluez.Error."

#define VALUE_MAX 512 /* ATT maximum attribute value */
#define ATT_MTU_MIN 23
#define REGISTER_TIMEOUT_MS 25000 /* bluetoothd calls back into us first */

enum { SVC_NL = 0, SVC_DIS, SVC_BAS, SVC_COUNT };

static const char *const svc_uuid[SVC_COUNT] = {
	"4e4c0001-7a1d-4c3b-9f6e-5d2b8a0c1e37",
	"0000180a-0000-1000-8000-00805f9b34fb",
	"0000180f-0000-1000-8000-00805f9b34fb",
};

struct ind_item {
	struct ind_item *next;
	size_t len;
	uint8_t val[];
};

struct chr_state {
	bool notifying;
	bool inflight;
	struct ind_item *head, *tail;
	size_t queued;
	sd_event_source *confirm_timer;
};

struct out_msg {
	struct out_msg *next;
	DBusMessage *m;
};

struct radio_bluez {
	sd_event *ev;
	struct nl_dbus *bus;
	const struct sim_gatt_server_ops *ops;
	void *pen;
	void (*log)(void *ctx, enum sim_log_level level, const char *line);
	void *log_ctx;

	char *serial;
	char *local_name;
	char adapter_path[64];
	char app_path[96];
	char adv_path[128];
	char agent_path[128];
	char svc_path[SVC_COUNT][112];
	char chr_path[SIM_CHR_COUNT][128];
	bool want_agent;
	bool filter_added;
	bool path_registered;
	bool bus_lost; /* the connection died: reopened from the retry timer */
	char *bus_address;

	bool bus_ready;
	bool bluez_present;
	char *bluez_owner; /* unique name of bluetoothd: the only caller we serve */
	bool adapter_present;
	bool powered;
	bool app_registered, adv_registered, agent_registered;
	uint64_t name_watch;
	uint64_t call_objects, call_app, call_adv, call_agent;
	sd_event_source *retry;
	sd_event_source *link_down;
	sd_event_source *link_idle; /* connected() without a request, see device_connected */

	/* The link as the pen sees it. */
	bool pen_connected;
	uint16_t mtu;
	char *central; /* device path of the pen's link ("" when unknown) */
	char *link_dev; /* last Device1 under the adapter with Connected=true */
	/* The central the pen dropped, until bluetoothd reports it disconnected
	 * (5.66 holds the link ~2 s after Device1.Disconnect): its requests in
	 * between are refused, not taken as a new link. */
	char *dropped;
	bool in_request;
	struct out_msg *out_head, *out_tail;
	struct chr_state chr[SIM_CHR_COUNT];
};

/* ---- helpers ------------------------------------------------------------ */

__attribute__((format(printf, 3, 4))) static void
rlog(struct radio_bluez *r, enum sim_log_level level, const char *fmt, ...)
{
	char line[512];
	int n;
	va_list ap;

	if (!r->log)
		return;
	n = snprintf(line, sizeof(line), "bluez radio %s: ", r->serial);
	if (n < 0 || (size_t)n >= sizeof(line))
		return;
	va_start(ap, fmt);
	vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
	va_end(ap);
	r->log(r->log_ctx, level, line);
}

static uint64_t now_usec(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static int svc_index(const char *uuid)
{
	for (int i = 0; i < SVC_COUNT; i++)
		if (strcmp(svc_uuid[i], uuid) == 0)
			return i;
	return -1;
}

static bool valid_serial(const char *s)
{
	size_t n = s ? strlen(s) : 0;

	if (n < 1 || n > 32)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '_' || c == '-'))
			return false;
	}
	return true;
}

static bool valid_adapter(const char *s)
{
	size_t n = s ? strlen(s) : 0;

	if (n < 1 || n > 16)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '_'))
			return false;
	}
	return true;
}

/* A device object directly below our adapter. */
static bool is_our_device(const struct radio_bluez *r, const char *path)
{
	size_t n = strlen(r->adapter_path);

	return strncmp(path, r->adapter_path, n) == 0 && strncmp(path + n, "/dev_", 5) == 0 &&
	       !strchr(path + n + 1, '/');
}

static void set_str(char **dst, const char *src)
{
	char *c = src ? strdup(src) : NULL;

	if (src && !c)
		return; /* keep the old value on ENOMEM */
	free(*dst);
	*dst = c;
}

/* ---- D-Bus message building ---------------------------------------------- */

static bool append_variant(DBusMessageIter *it, int type, const void *val)
{
	DBusMessageIter v;
	char sig[2] = {(char)type, 0};

	return dbus_message_iter_open_container(it, DBUS_TYPE_VARIANT, sig, &v) &&
	       dbus_message_iter_append_basic(&v, type, val) &&
	       dbus_message_iter_close_container(it, &v);
}

static bool append_entry(DBusMessageIter *dict, const char *key, int type, const void *val)
{
	DBusMessageIter e;

	return dbus_message_iter_open_container(dict, DBUS_TYPE_DICT_ENTRY, NULL, &e) &&
	       dbus_message_iter_append_basic(&e, DBUS_TYPE_STRING, &key) &&
	       append_variant(&e, type, val) && dbus_message_iter_close_container(dict, &e);
}

static bool append_entry_strv(DBusMessageIter *dict, const char *key, const char *const *v,
			      size_t n)
{
	DBusMessageIter e, var, arr;

	if (!dbus_message_iter_open_container(dict, DBUS_TYPE_DICT_ENTRY, NULL, &e) ||
	    !dbus_message_iter_append_basic(&e, DBUS_TYPE_STRING, &key) ||
	    !dbus_message_iter_open_container(&e, DBUS_TYPE_VARIANT, "as", &var) ||
	    !dbus_message_iter_open_container(&var, DBUS_TYPE_ARRAY, "s", &arr))
		return false;
	for (size_t i = 0; i < n; i++)
		if (!dbus_message_iter_append_basic(&arr, DBUS_TYPE_STRING, &v[i]))
			return false;
	return dbus_message_iter_close_container(&var, &arr) &&
	       dbus_message_iter_close_container(&e, &var) &&
	       dbus_message_iter_close_container(dict, &e);
}

static bool append_entry_bytes(DBusMessageIter *dict, const char *key, const uint8_t *val,
			       size_t len)
{
	DBusMessageIter e, var, arr;

	return dbus_message_iter_open_container(dict, DBUS_TYPE_DICT_ENTRY, NULL, &e) &&
	       dbus_message_iter_append_basic(&e, DBUS_TYPE_STRING, &key) &&
	       dbus_message_iter_open_container(&e, DBUS_TYPE_VARIANT, "ay", &var) &&
	       dbus_message_iter_open_container(&var, DBUS_TYPE_ARRAY, "y", &arr) &&
	       dbus_message_iter_append_fixed_array(&arr, DBUS_TYPE_BYTE, &val, (int)len) &&
	       dbus_message_iter_close_container(&var, &arr) &&
	       dbus_message_iter_close_container(&e, &var) &&
	       dbus_message_iter_close_container(dict, &e);
}

static size_t chr_flags(const struct sim_chr_desc *d, const char **f)
{
	bool sec = d->props & SIM_PROP_SECURE;
	size_t n = 0;

	if (d->props & SIM_PROP_READ)
		f[n++] = sec ? "encrypt-authenticated-read" : "encrypt-read";
	if (d->props & SIM_PROP_WRITE)
		f[n++] = sec ? "encrypt-authenticated-write" : "encrypt-write";
	if (d->props & SIM_PROP_NOTIFY) {
		f[n++] = "notify";
		if (sec)
			f[n++] = "encrypt-authenticated-notify";
	}
	if (d->props & SIM_PROP_INDICATE) {
		f[n++] = "indicate";
		if (sec)
			f[n++] = "encrypt-authenticated-indicate";
	}
	return n;
}

static bool append_chr_props(struct radio_bluez *r, DBusMessageIter *dict, enum sim_chr c)
{
	const struct sim_chr_desc *d = &sim_chr_table()[c];
	const char *flags[8];
	size_t nf = chr_flags(d, flags);
	const char *svc = r->svc_path[svc_index(d->service_uuid)];
	dbus_bool_t notifying = r->chr[c].notifying;

	if (!append_entry(dict, "UUID", DBUS_TYPE_STRING, &d->uuid) ||
	    !append_entry(dict, "Service", DBUS_TYPE_OBJECT_PATH, &svc) ||
	    !append_entry_strv(dict, "Flags", flags, nf))
		return false;
	if (d->props & (SIM_PROP_NOTIFY | SIM_PROP_INDICATE))
		return append_entry(dict, "Notifying", DBUS_TYPE_BOOLEAN, &notifying);
	return true;
}

static bool append_svc_props(DBusMessageIter *dict, int s)
{
	dbus_bool_t primary = TRUE;
	const char *uuid = svc_uuid[s];

	return append_entry(dict, "UUID", DBUS_TYPE_STRING, &uuid) &&
	       append_entry(dict, "Primary", DBUS_TYPE_BOOLEAN, &primary);
}

static bool append_adv_props(struct radio_bluez *r, DBusMessageIter *dict)
{
	const char *type = "peripheral";
	const char *uuids[1] = {svc_uuid[SVC_NL]};
	dbus_bool_t disc = TRUE;

	return append_entry(dict, "Type", DBUS_TYPE_STRING, &type) &&
	       append_entry_strv(dict, "ServiceUUIDs", uuids, 1) &&
	       append_entry(dict, "LocalName", DBUS_TYPE_STRING, &r->local_name) &&
	       append_entry(dict, "Discoverable", DBUS_TYPE_BOOLEAN, &disc);
}

/* One object path with one interface and its properties. */
static bool append_object(struct radio_bluez *r, DBusMessageIter *objs, const char *path,
			  const char *iface, int svc, int chr)
{
	DBusMessageIter oe, ifaces, ie, props;

	if (!dbus_message_iter_open_container(objs, DBUS_TYPE_DICT_ENTRY, NULL, &oe) ||
	    !dbus_message_iter_append_basic(&oe, DBUS_TYPE_OBJECT_PATH, &path) ||
	    !dbus_message_iter_open_container(&oe, DBUS_TYPE_ARRAY, "{sa{sv}}", &ifaces) ||
	    !dbus_message_iter_open_container(&ifaces, DBUS_TYPE_DICT_ENTRY, NULL, &ie) ||
	    !dbus_message_iter_append_basic(&ie, DBUS_TYPE_STRING, &iface) ||
	    !dbus_message_iter_open_container(&ie, DBUS_TYPE_ARRAY, "{sv}", &props))
		return false;
	if (chr >= 0 ? !append_chr_props(r, &props, (enum sim_chr)chr)
		     : !append_svc_props(&props, svc))
		return false;
	return dbus_message_iter_close_container(&ie, &props) &&
	       dbus_message_iter_close_container(&ifaces, &ie) &&
	       dbus_message_iter_close_container(&oe, &ifaces) &&
	       dbus_message_iter_close_container(objs, &oe);
}

/* ---- sending ---------------------------------------------------------------- */

static void send_or_queue(struct radio_bluez *r, DBusMessage *m)
{
	struct out_msg *o;

	if (!r->in_request) {
		(void)nl_dbus_send(r->bus, m);
		dbus_message_unref(m);
		return;
	}
	o = calloc(1, sizeof(*o));
	if (!o) {
		(void)nl_dbus_send(r->bus, m);
		dbus_message_unref(m);
		return;
	}
	o->m = m;
	if (r->out_tail)
		r->out_tail->next = o;
	else
		r->out_head = o;
	r->out_tail = o;
}

static void flush_out(struct radio_bluez *r)
{
	while (r->out_head) {
		struct out_msg *o = r->out_head;
		r->out_head = o->next;
		(void)nl_dbus_send(r->bus, o->m);
		dbus_message_unref(o->m);
		free(o);
	}
	r->out_tail = NULL;
}

/* Sends the reply, then what the pen sent while handling the request. */
static void reply_and_flush(struct radio_bluez *r, DBusMessage *reply)
{
	r->in_request = false;
	if (reply) {
		(void)nl_dbus_send(r->bus, reply);
		dbus_message_unref(reply);
	}
	flush_out(r);
}

static DBusMessage *value_changed(struct radio_bluez *r, enum sim_chr c, const uint8_t *val,
				  size_t len)
{
	DBusMessage *m = dbus_message_new_signal(r->chr_path[c], IFACE_PROPS, "PropertiesChanged");
	DBusMessageIter it, dict, inv;
	const char *iface = IFACE_CHRC;

	if (!m)
		return NULL;
	dbus_message_iter_init_append(m, &it);
	if (!dbus_message_iter_append_basic(&it, DBUS_TYPE_STRING, &iface) ||
	    !dbus_message_iter_open_container(&it, DBUS_TYPE_ARRAY, "{sv}", &dict) ||
	    !append_entry_bytes(&dict, "Value", val, len) ||
	    !dbus_message_iter_close_container(&it, &dict) ||
	    !dbus_message_iter_open_container(&it, DBUS_TYPE_ARRAY, "s", &inv) ||
	    !dbus_message_iter_close_container(&it, &inv)) {
		dbus_message_unref(m);
		return NULL;
	}
	return m;
}

/* ---- indications ------------------------------------------------------------ */

static void ind_clear(struct chr_state *cs)
{
	while (cs->head) {
		struct ind_item *i = cs->head;
		cs->head = i->next;
		free(i);
	}
	cs->tail = NULL;
	cs->queued = 0;
	cs->inflight = false;
	cs->confirm_timer = sd_event_source_disable_unref(cs->confirm_timer);
}

static void request_disconnect(struct radio_bluez *r);

static int on_confirm_timeout(sd_event_source *s, uint64_t usec, void *userdata)
{
	struct radio_bluez *r = userdata;

	for (unsigned c = 0; c < SIM_CHR_COUNT; c++)
		if (r->chr[c].confirm_timer == s) {
			rlog(r, SIM_LOG_WARNING,
			     "indication on %s not confirmed in time: dropping the link",
			     sim_chr_table()[c].uuid);
			r->chr[c].confirm_timer = sd_event_source_disable_unref(s);
		}
	request_disconnect(r);
	return 0;
}

static int ind_send(struct radio_bluez *r, enum sim_chr c, const uint8_t *val, size_t len)
{
	struct chr_state *cs = &r->chr[c];
	DBusMessage *m = value_changed(r, c, val, len);

	if (!m)
		return -ENOMEM;
	if (!cs->confirm_timer && sd_event_add_time(r->ev, &cs->confirm_timer, CLOCK_MONOTONIC,
						    now_usec() + RADIO_BLUEZ_CONFIRM_TIMEOUT_USEC,
						    0, on_confirm_timeout, r) < 0) {
		dbus_message_unref(m);
		return -ENOMEM;
	}
	(void)sd_event_source_set_time(cs->confirm_timer,
				       now_usec() + RADIO_BLUEZ_CONFIRM_TIMEOUT_USEC);
	(void)sd_event_source_set_enabled(cs->confirm_timer, SD_EVENT_ONESHOT);
	cs->inflight = true;
	send_or_queue(r, m);
	return 0;
}

/* ---- the pen's link ------------------------------------------------------------ */

static void link_up(struct radio_bluez *r, const char *dev, uint16_t mtu)
{
	if (r->pen_connected)
		return;
	if (mtu < ATT_MTU_MIN)
		mtu = ATT_MTU_MIN;
	r->pen_connected = true;
	r->mtu = mtu;
	set_str(&r->central, dev ? dev : r->link_dev ? r->link_dev : "");
	rlog(r, SIM_LOG_INFO, "central %s: link up (MTU %u)", r->central ? r->central : "?", mtu);
	r->ops->connected(r->pen, mtu);
	/* BlueZ keeps a bonded central's CCCs across links without calling
	 * StartNotify again: tell the pen what is enabled. */
	for (unsigned c = 0; c < SIM_CHR_COUNT && r->pen_connected; c++)
		if (r->chr[c].notifying)
			r->ops->cccd(r->pen, (enum sim_chr)c,
				     (sim_chr_table()[c].props & SIM_PROP_INDICATE)
					     ? SIM_CCCD_INDICATE
					     : SIM_CCCD_NOTIFY);
}

static void schedule_link_down(struct radio_bluez *r)
{
	if (r->pen_connected && r->link_down)
		(void)sd_event_source_set_enabled(r->link_down, SD_EVENT_ONESHOT);
}

static int on_link_down(sd_event_source *s, void *userdata)
{
	struct radio_bluez *r = userdata;

	if (!r->pen_connected)
		return 0;
	r->pen_connected = false;
	for (unsigned c = 0; c < SIM_CHR_COUNT; c++)
		ind_clear(&r->chr[c]);
	rlog(r, SIM_LOG_INFO, "central %s: link down", r->central ? r->central : "?");
	set_str(&r->central, NULL);
	r->ops->disconnected(r->pen);
	return 0;
}

static void disconnect_reply(DBusMessage *reply, void *user_data)
{
	struct radio_bluez *r = user_data;

	if (nl_dbus_reply_result(reply) < 0) {
		rlog(r, SIM_LOG_WARNING, "Device1.Disconnect failed: %s",
		     nl_dbus_error_name(reply));
		/* The link stays: its requests bring the pen's side back. */
		set_str(&r->dropped, NULL);
	}
}

static void request_disconnect(struct radio_bluez *r)
{
	const char *dev = r->central && r->central[0] ? r->central : r->link_dev;

	if (dev && r->bluez_present) {
		/* A request still under way on the dropped link must not
		 * connect the pen again: the central, which never saw the link
		 * go, would not subscribe again, and the pen restarts its
		 * segment counter on a new link (docs/protocol.md 6.1). */
		set_str(&r->dropped, dev);
		DBusMessage *m =
			dbus_message_new_method_call(BLUEZ, dev, IFACE_DEVICE, "Disconnect");
		if (m) {
			(void)nl_dbus_call(r->bus, m, NL_DBUS_CALL_TIMEOUT_MS, disconnect_reply, r,
					   NULL);
			dbus_message_unref(m);
		}
	}
	/* The pen's side of the link ends now, whatever bluetoothd does. */
	schedule_link_down(r);
}

/* ---- radio ops ------------------------------------------------------------------- */

static int op_notify(void *radio, enum sim_chr c, const uint8_t *val, size_t len)
{
	struct radio_bluez *r = radio;
	DBusMessage *m;

	if ((unsigned)c >= SIM_CHR_COUNT || !(sim_chr_table()[c].props & SIM_PROP_NOTIFY) ||
	    (len && !val))
		return -EINVAL;
	if (!r->pen_connected)
		return -ENOTCONN;
	if (!r->chr[c].notifying)
		return -EINVAL;
	if (len > VALUE_MAX)
		len = VALUE_MAX;
	m = value_changed(r, c, val, len);
	if (!m)
		return -ENOMEM;
	send_or_queue(r, m);
	return 0;
}

static int op_indicate(void *radio, enum sim_chr c, const uint8_t *val, size_t len)
{
	struct radio_bluez *r = radio;
	struct chr_state *cs;
	struct ind_item *i;

	if ((unsigned)c >= SIM_CHR_COUNT || !(sim_chr_table()[c].props & SIM_PROP_INDICATE) ||
	    (len && !val))
		return -EINVAL;
	if (!r->pen_connected)
		return -ENOTCONN;
	cs = &r->chr[c];
	if (!cs->notifying)
		return -EINVAL;
	if (len > VALUE_MAX)
		len = VALUE_MAX;
	if (!cs->inflight)
		return ind_send(r, c, val, len);
	if (cs->queued >= RADIO_BLUEZ_INDQ_MAX)
		return -ENOBUFS;
	i = malloc(sizeof(*i) + len);
	if (!i)
		return -ENOMEM;
	i->next = NULL;
	i->len = len;
	if (len)
		memcpy(i->val, val, len);
	if (cs->tail)
		cs->tail->next = i;
	else
		cs->head = i;
	cs->tail = i;
	cs->queued++;
	return 0;
}

static void op_disconnect(void *radio)
{
	struct radio_bluez *r = radio;

	if (r->pen_connected)
		request_disconnect(r);
}

static const struct sim_radio_ops radio_ops = {
	.notify = op_notify,
	.indicate = op_indicate,
	.disconnect = op_disconnect,
};

const struct sim_radio_ops *radio_bluez_radio_ops(void)
{
	return &radio_ops;
}

/* ---- incoming method calls ------------------------------------------------------ */

static DBusMessage *error_reply(DBusMessage *m, const char *name, const char *msg)
{
	return dbus_message_new_error(m, name, msg);
}

static DBusMessage *att_error_reply(DBusMessage *m, int code)
{
	char msg[8];

	switch (code) {
	case 0x02:
	case 0x03:
		return error_reply(m, ERR_BLUEZ "NotPermitted", "not permitted");
	case 0x05:
	case 0x08:
		return error_reply(m, ERR_BLUEZ "NotAuthorized", "not authorized");
	case 0x06:
		return error_reply(m, ERR_BLUEZ "NotSupported", "not supported");
	case 0x07:
		return error_reply(m, ERR_BLUEZ "InvalidOffset", "invalid offset");
	case 0x0D:
		return error_reply(m, ERR_BLUEZ "InvalidValueLength", "invalid value length");
	case 0xFE:
		return error_reply(m, ERR_BLUEZ "InProgress", "procedure already in progress");
	case 0xFD:
		return error_reply(m, ERR_BLUEZ "ImproperlyConfigured",
				   "CCCD improperly configured");
	default:
		/* BlueZ reads an application error 0x80-0x9F from the message. */
		snprintf(msg, sizeof(msg), "0x%02x", (unsigned)code & 0xFFu);
		return error_reply(m, ERR_BLUEZ "Failed", msg);
	}
}

struct req_opts {
	uint16_t offset;
	uint16_t mtu;
	const char *device; /* borrowed from the message */
	bool prepare_authorize;
};

/* Parses an a{sv} of ReadValue/WriteValue options; unknown keys ignored. */
static int parse_opts(DBusMessageIter *it, struct req_opts *o)
{
	DBusMessageIter dict;

	memset(o, 0, sizeof(*o));
	if (dbus_message_iter_get_arg_type(it) != DBUS_TYPE_ARRAY ||
	    dbus_message_iter_get_element_type(it) != DBUS_TYPE_DICT_ENTRY)
		return -EINVAL;
	dbus_message_iter_recurse(it, &dict);
	while (dbus_message_iter_get_arg_type(&dict) == DBUS_TYPE_DICT_ENTRY) {
		DBusMessageIter e, v;
		const char *key;
		dbus_message_iter_recurse(&dict, &e);
		if (dbus_message_iter_get_arg_type(&e) != DBUS_TYPE_STRING)
			return -EINVAL;
		dbus_message_iter_get_basic(&e, &key);
		dbus_message_iter_next(&e);
		if (dbus_message_iter_get_arg_type(&e) != DBUS_TYPE_VARIANT)
			return -EINVAL;
		dbus_message_iter_recurse(&e, &v);
		int t = dbus_message_iter_get_arg_type(&v);
		if (strcmp(key, "offset") == 0 && t == DBUS_TYPE_UINT16)
			dbus_message_iter_get_basic(&v, &o->offset);
		else if (strcmp(key, "mtu") == 0 && t == DBUS_TYPE_UINT16)
			dbus_message_iter_get_basic(&v, &o->mtu);
		else if (strcmp(key, "device") == 0 && t == DBUS_TYPE_OBJECT_PATH)
			dbus_message_iter_get_basic(&v, &o->device);
		else if (strcmp(key, "prepare-authorize") == 0 && t == DBUS_TYPE_BOOLEAN) {
			dbus_bool_t b;
			dbus_message_iter_get_basic(&v, &b);
			o->prepare_authorize = b;
		}
		dbus_message_iter_next(&dict);
	}
	return 0;
}

/* True while the pen is not connected and the request comes over the link
 * it dropped (device NULL: a bluetoothd that does not say, taken as that). */
static bool link_dropped(const struct radio_bluez *r, const char *device)
{
	return !r->pen_connected && r->dropped && (!device || strcmp(device, r->dropped) == 0);
}

static void ensure_link(struct radio_bluez *r, const char *device, uint16_t mtu)
{
	if (!r->pen_connected)
		link_up(r, device, mtu ? mtu : ATT_MTU_MIN);
	else if (device && r->central && !r->central[0])
		set_str(&r->central, device);
}

static DBusMessage *chr_read(struct radio_bluez *r, DBusMessage *m, enum sim_chr c)
{
	DBusMessageIter it, arr;
	struct req_opts o;
	uint8_t buf[VALUE_MAX];
	const uint8_t *p = buf;
	DBusMessage *reply;
	int n;

	if (!dbus_message_iter_init(m, &it) || parse_opts(&it, &o) < 0)
		return error_reply(m, ERR_BLUEZ "InvalidArguments", "expected a{sv}");
	if (link_dropped(r, o.device))
		return error_reply(m, ERR_BLUEZ "NotPermitted", "the pen dropped this link");
	ensure_link(r, o.device, o.mtu);
	n = r->ops->read(r->pen, c, buf, sizeof(buf));
	if (n < 0)
		return att_error_reply(m, -n);
	if (n > (int)sizeof(buf))
		n = (int)sizeof(buf);
	if (o.offset > n)
		return att_error_reply(m, 0x07);
	p += o.offset;
	n -= o.offset;
	reply = dbus_message_new_method_return(m);
	if (!reply)
		return NULL;
	dbus_message_iter_init_append(reply, &it);
	if (!dbus_message_iter_open_container(&it, DBUS_TYPE_ARRAY, "y", &arr) ||
	    !dbus_message_iter_append_fixed_array(&arr, DBUS_TYPE_BYTE, &p, n) ||
	    !dbus_message_iter_close_container(&it, &arr)) {
		dbus_message_unref(reply);
		return NULL;
	}
	return reply;
}

static DBusMessage *chr_write(struct radio_bluez *r, DBusMessage *m, enum sim_chr c)
{
	DBusMessageIter it, arr;
	struct req_opts o;
	const uint8_t *val = NULL;
	int len = 0, n;

	if (!dbus_message_iter_init(m, &it) ||
	    dbus_message_iter_get_arg_type(&it) != DBUS_TYPE_ARRAY ||
	    dbus_message_iter_get_element_type(&it) != DBUS_TYPE_BYTE)
		return error_reply(m, ERR_BLUEZ "InvalidArguments", "expected ay, a{sv}");
	dbus_message_iter_recurse(&it, &arr);
	dbus_message_iter_get_fixed_array(&arr, &val, &len);
	dbus_message_iter_next(&it);
	if (parse_opts(&it, &o) < 0)
		return error_reply(m, ERR_BLUEZ "InvalidArguments", "expected ay, a{sv}");
	if (o.prepare_authorize)
		return dbus_message_new_method_return(m); /* a prepared write is fine */
	if (o.offset != 0)
		return att_error_reply(m, 0x07);
	if (len > VALUE_MAX)
		return att_error_reply(m, 0x0D);
	if (link_dropped(r, o.device))
		return error_reply(m, ERR_BLUEZ "NotPermitted", "the pen dropped this link");
	ensure_link(r, o.device, o.mtu);
	n = r->ops->write(r->pen, c, val, (size_t)len);
	if (n < 0)
		return att_error_reply(m, -n);
	return dbus_message_new_method_return(m);
}

static DBusMessage *chr_notify(struct radio_bluez *r, DBusMessage *m, enum sim_chr c, bool start)
{
	const struct sim_chr_desc *d = &sim_chr_table()[c];
	uint16_t v = (d->props & SIM_PROP_INDICATE) ? SIM_CCCD_INDICATE : SIM_CCCD_NOTIFY;

	if (!(d->props & (SIM_PROP_NOTIFY | SIM_PROP_INDICATE)))
		return error_reply(m, ERR_BLUEZ "NotSupported", "no notifications");
	if (start) {
		if (!link_dropped(r, NULL))
			ensure_link(r, NULL, 0);
		if (r->chr[c].notifying)
			return dbus_message_new_method_return(m);
		r->chr[c].notifying = true;
		if (r->pen_connected)
			r->ops->cccd(r->pen, c, v);
	} else {
		if (!r->chr[c].notifying)
			return dbus_message_new_method_return(m);
		r->chr[c].notifying = false;
		ind_clear(&r->chr[c]);
		if (r->pen_connected)
			r->ops->cccd(r->pen, c, 0);
	}
	return dbus_message_new_method_return(m);
}

static void chr_confirm(struct radio_bluez *r, enum sim_chr c)
{
	struct chr_state *cs = &r->chr[c];

	if (!cs->inflight)
		return;
	cs->inflight = false;
	if (cs->confirm_timer)
		(void)sd_event_source_set_enabled(cs->confirm_timer, SD_EVENT_OFF);
	if (cs->head) {
		struct ind_item *i = cs->head;
		cs->head = i->next;
		if (!cs->head)
			cs->tail = NULL;
		cs->queued--;
		if (ind_send(r, c, i->val, i->len) < 0)
			rlog(r, SIM_LOG_WARNING, "cannot send a queued indication");
		free(i);
	}
	if (r->pen_connected)
		r->ops->confirmed(r->pen, c);
}

/* Properties.Get / GetAll for one of our objects. */
static DBusMessage *props_reply(struct radio_bluez *r, DBusMessage *m, const char *iface, int svc,
				int chr, bool adv)
{
	const char *want = NULL, *prop = NULL;
	DBusMessage *reply, *all;
	DBusMessageIter it, dict;
	bool ok;

	if (dbus_message_is_method_call(m, IFACE_PROPS, "GetAll")) {
		if (!dbus_message_get_args(m, NULL, DBUS_TYPE_STRING, &want, DBUS_TYPE_INVALID))
			return error_reply(m, DBUS_ERROR_INVALID_ARGS, "expected s");
	} else if (dbus_message_is_method_call(m, IFACE_PROPS, "Get")) {
		if (!dbus_message_get_args(m, NULL, DBUS_TYPE_STRING, &want, DBUS_TYPE_STRING,
					   &prop, DBUS_TYPE_INVALID))
			return error_reply(m, DBUS_ERROR_INVALID_ARGS, "expected ss");
	} else {
		return error_reply(m, DBUS_ERROR_UNKNOWN_METHOD, "unknown method");
	}
	if (strcmp(want, iface) != 0)
		return error_reply(m, DBUS_ERROR_INVALID_ARGS, "no such interface");
	/* Build GetAll; Get picks one entry out of it. */
	all = dbus_message_new_method_return(m);
	if (!all)
		return NULL;
	dbus_message_iter_init_append(all, &it);
	ok = dbus_message_iter_open_container(&it, DBUS_TYPE_ARRAY, "{sv}", &dict);
	if (ok)
		ok = adv	? append_adv_props(r, &dict)
		     : chr >= 0 ? append_chr_props(r, &dict, (enum sim_chr)chr)
				: append_svc_props(&dict, svc);
	if (!ok || !dbus_message_iter_close_container(&it, &dict)) {
		dbus_message_unref(all);
		return NULL;
	}
	if (!prop)
		return all;
	/* Get: find the entry and copy its variant. */
	DBusMessageIter ai, ad;
	dbus_message_iter_init(all, &ai);
	dbus_message_iter_recurse(&ai, &ad);
	while (dbus_message_iter_get_arg_type(&ad) == DBUS_TYPE_DICT_ENTRY) {
		DBusMessageIter e, v, out;
		const char *key;
		dbus_message_iter_recurse(&ad, &e);
		dbus_message_iter_get_basic(&e, &key);
		dbus_message_iter_next(&e);
		if (strcmp(key, prop) == 0) {
			char *sig;
			dbus_message_iter_recurse(&e, &v);
			sig = dbus_message_iter_get_signature(&v);
			reply = dbus_message_new_method_return(m);
			if (!reply || !sig) {
				dbus_free(sig);
				if (reply)
					dbus_message_unref(reply);
				dbus_message_unref(all);
				return NULL;
			}
			dbus_message_iter_init_append(reply, &it);
			/* Only basic values and arrays of strings live here. */
			ok = dbus_message_iter_open_container(&it, DBUS_TYPE_VARIANT, sig, &out);
			if (ok && dbus_message_iter_get_arg_type(&v) == DBUS_TYPE_ARRAY) {
				DBusMessageIter a, oa;
				dbus_message_iter_recurse(&v, &a);
				ok = dbus_message_iter_open_container(&out, DBUS_TYPE_ARRAY,
								      sig + 1, &oa);
				while (ok &&
				       dbus_message_iter_get_arg_type(&a) == DBUS_TYPE_STRING) {
					const char *s;
					dbus_message_iter_get_basic(&a, &s);
					ok = dbus_message_iter_append_basic(&oa, DBUS_TYPE_STRING,
									    &s);
					dbus_message_iter_next(&a);
				}
				ok = ok && dbus_message_iter_close_container(&out, &oa);
			} else if (ok) {
				DBusBasicValue bv;
				dbus_message_iter_get_basic(&v, &bv);
				ok = dbus_message_iter_append_basic(
					&out, dbus_message_iter_get_arg_type(&v), &bv);
			}
			ok = ok && dbus_message_iter_close_container(&it, &out);
			dbus_free(sig);
			dbus_message_unref(all);
			if (!ok) {
				dbus_message_unref(reply);
				return NULL;
			}
			return reply;
		}
		dbus_message_iter_next(&ad);
	}
	dbus_message_unref(all);
	return error_reply(m, DBUS_ERROR_INVALID_ARGS, "no such property");
}

static DBusMessage *managed_objects(struct radio_bluez *r, DBusMessage *m)
{
	DBusMessage *reply = dbus_message_new_method_return(m);
	DBusMessageIter it, objs;
	bool ok;

	if (!reply)
		return NULL;
	dbus_message_iter_init_append(reply, &it);
	ok = dbus_message_iter_open_container(&it, DBUS_TYPE_ARRAY, "{oa{sa{sv}}}", &objs);
	for (int s = 0; ok && s < SVC_COUNT; s++)
		ok = append_object(r, &objs, r->svc_path[s], IFACE_SERVICE, s, -1);
	for (int c = 0; ok && c < SIM_CHR_COUNT; c++)
		ok = append_object(r, &objs, r->chr_path[c], IFACE_CHRC, -1, c);
	if (!ok || !dbus_message_iter_close_container(&it, &objs)) {
		dbus_message_unref(reply);
		return NULL;
	}
	return reply;
}

static DBusMessage *agent_call(struct radio_bluez *r, DBusMessage *m)
{
	const char *member = dbus_message_get_member(m);
	const char *dev = "?", *s = NULL;
	uint32_t passkey = 0;
	uint16_t entered = 0;

	if (!dbus_message_has_interface(m, IFACE_AGENT))
		return error_reply(m, DBUS_ERROR_UNKNOWN_METHOD, "unknown method");
	if (strcmp(member, "DisplayPasskey") == 0) {
		if (!dbus_message_get_args(m, NULL, DBUS_TYPE_OBJECT_PATH, &dev, DBUS_TYPE_UINT32,
					   &passkey, DBUS_TYPE_UINT16, &entered, DBUS_TYPE_INVALID))
			return error_reply(m, ERR_BLUEZ "Rejected", "bad arguments");
		rlog(r, SIM_LOG_NOTICE, "passkey %06u for %s (entered %u)", passkey, dev, entered);
		return dbus_message_new_method_return(m);
	}
	if (strcmp(member, "DisplayPinCode") == 0) {
		if (!dbus_message_get_args(m, NULL, DBUS_TYPE_OBJECT_PATH, &dev, DBUS_TYPE_STRING,
					   &s, DBUS_TYPE_INVALID))
			return error_reply(m, ERR_BLUEZ "Rejected", "bad arguments");
		rlog(r, SIM_LOG_NOTICE, "PIN code %s for %s", s, dev);
		return dbus_message_new_method_return(m);
	}
	if (strcmp(member, "AuthorizeService") == 0)
		return dbus_message_new_method_return(m);
	if (strcmp(member, "Release") == 0) {
		rlog(r, SIM_LOG_INFO, "agent released by bluetoothd");
		r->agent_registered = false;
		return dbus_message_new_method_return(m);
	}
	if (strcmp(member, "Cancel") == 0) {
		rlog(r, SIM_LOG_NOTICE, "pairing cancelled");
		return dbus_message_new_method_return(m);
	}
	/* DisplayOnly: nothing to type in, nothing to confirm; just-works
	 * pairing would give no authenticated key. */
	(void)dbus_message_get_args(m, NULL, DBUS_TYPE_OBJECT_PATH, &dev, DBUS_TYPE_INVALID);
	rlog(r, SIM_LOG_NOTICE, "agent %s for %s rejected (display only)", member, dev);
	return error_reply(m, ERR_BLUEZ "Rejected", "display only");
}

static DBusHandlerResult on_object(DBusConnection *conn, DBusMessage *m, void *data)
{
	struct radio_bluez *r = data;
	const char *path = dbus_message_get_path(m);
	DBusMessage *reply = NULL;

	if (dbus_message_get_type(m) != DBUS_MESSAGE_TYPE_METHOD_CALL || !path)
		return DBUS_HANDLER_RESULT_NOT_YET_HANDLED;
	/* bluetoothd enforces the characteristics' security before it calls
	 * us: nobody else may read or write the pen around it. */
	if (!r->bluez_owner || !dbus_message_has_sender(m, r->bluez_owner)) {
		if (!dbus_message_get_no_reply(m))
			reply_and_flush(r, error_reply(m, DBUS_ERROR_ACCESS_DENIED,
						       "only bluetoothd may call the pen"));
		return DBUS_HANDLER_RESULT_HANDLED;
	}
	r->in_request = true;
	if (strcmp(path, r->app_path) == 0) {
		reply = dbus_message_is_method_call(m, IFACE_OM, "GetManagedObjects")
				? managed_objects(r, m)
				: error_reply(m, DBUS_ERROR_UNKNOWN_METHOD, "unknown method");
	} else if (strcmp(path, r->adv_path) == 0) {
		if (dbus_message_is_method_call(m, IFACE_ADV, "Release")) {
			rlog(r, SIM_LOG_INFO, "advertisement released by bluetoothd");
			r->adv_registered = false;
			reply = dbus_message_new_method_return(m);
		} else {
			reply = props_reply(r, m, IFACE_ADV, -1, -1, true);
		}
	} else if (strcmp(path, r->agent_path) == 0) {
		reply = agent_call(r, m);
	} else {
		int svc = -1, chr = -1;
		for (int s = 0; s < SVC_COUNT; s++)
			if (strcmp(path, r->svc_path[s]) == 0)
				svc = s;
		for (int c = 0; c < SIM_CHR_COUNT; c++)
			if (strcmp(path, r->chr_path[c]) == 0)
				chr = c;
		if (svc >= 0) {
			reply = props_reply(r, m, IFACE_SERVICE, svc, -1, false);
		} else if (chr < 0) {
			reply = error_reply(m, DBUS_ERROR_UNKNOWN_OBJECT, "no such object");
		} else if (dbus_message_is_method_call(m, IFACE_CHRC, "ReadValue")) {
			reply = chr_read(r, m, (enum sim_chr)chr);
		} else if (dbus_message_is_method_call(m, IFACE_CHRC, "WriteValue")) {
			reply = chr_write(r, m, (enum sim_chr)chr);
		} else if (dbus_message_is_method_call(m, IFACE_CHRC, "StartNotify")) {
			reply = chr_notify(r, m, (enum sim_chr)chr, true);
		} else if (dbus_message_is_method_call(m, IFACE_CHRC, "StopNotify")) {
			reply = chr_notify(r, m, (enum sim_chr)chr, false);
		} else if (dbus_message_is_method_call(m, IFACE_CHRC, "Confirm")) {
			chr_confirm(r, (enum sim_chr)chr);
			reply = dbus_message_get_no_reply(m) ? NULL
							     : dbus_message_new_method_return(m);
		} else {
			reply = props_reply(r, m, IFACE_CHRC, -1, chr, false);
		}
	}
	if (!reply && !dbus_message_get_no_reply(m) &&
	    !dbus_message_is_method_call(m, IFACE_CHRC, "Confirm"))
		reply = error_reply(m, DBUS_ERROR_NO_MEMORY, "out of memory");
	if (reply && dbus_message_get_no_reply(m)) {
		dbus_message_unref(reply);
		reply = NULL;
	}
	reply_and_flush(r, reply);
	return DBUS_HANDLER_RESULT_HANDLED;
}

static const DBusObjectPathVTable object_vtable = {
	.message_function = on_object,
};

/* ---- registration with bluetoothd ------------------------------------------------- */

static void bringup(struct radio_bluez *r);

static void schedule_retry(struct radio_bluez *r);
static int bus_open(struct radio_bluez *r);
static void bus_close(struct radio_bluez *r);

static int on_retry(sd_event_source *s, uint64_t usec, void *userdata)
{
	struct radio_bluez *r = userdata;

	if (r->bus_lost) {
		/* Not from inside the dead connection's callbacks: here. */
		bus_close(r);
		int e = bus_open(r);
		if (e < 0) {
			rlog(r, SIM_LOG_WARNING, "cannot reconnect to the bus: %s", strerror(-e));
			bus_close(r);
			schedule_retry(r);
			return 0;
		}
		r->bus_lost = false;
		rlog(r, SIM_LOG_INFO, "reconnected to the bus");
		return 0;
	}
	bringup(r);
	return 0;
}

static void schedule_retry(struct radio_bluez *r)
{
	if (!r->retry)
		return;
	(void)sd_event_source_set_time(r->retry, now_usec() + RADIO_BLUEZ_RETRY_USEC);
	(void)sd_event_source_set_enabled(r->retry, SD_EVENT_ONESHOT);
}

static void app_reply(DBusMessage *reply, void *user_data)
{
	struct radio_bluez *r = user_data;
	int e = nl_dbus_reply_result(reply);

	r->call_app = 0;
	if (e == 0 || e == -EEXIST) {
		r->app_registered = true;
		rlog(r, SIM_LOG_INFO, "GATT application registered on %s", r->adapter_path);
		return;
	}
	rlog(r, SIM_LOG_WARNING, "RegisterApplication on %s failed: %s", r->adapter_path,
	     nl_dbus_error_name(reply));
	schedule_retry(r);
}

static void adv_reply(DBusMessage *reply, void *user_data)
{
	struct radio_bluez *r = user_data;
	int e = nl_dbus_reply_result(reply);

	r->call_adv = 0;
	if (e == 0 || e == -EEXIST) {
		r->adv_registered = true;
		rlog(r, SIM_LOG_INFO, "advertising %s as \"%s\" on %s", svc_uuid[SVC_NL],
		     r->local_name, r->adapter_path);
		return;
	}
	rlog(r, SIM_LOG_WARNING, "RegisterAdvertisement on %s failed: %s", r->adapter_path,
	     nl_dbus_error_name(reply));
	schedule_retry(r);
}

static void default_agent_reply(DBusMessage *reply, void *user_data)
{
	struct radio_bluez *r = user_data;

	r->call_agent = 0;
	if (nl_dbus_reply_result(reply) < 0) {
		rlog(r, SIM_LOG_WARNING, "RequestDefaultAgent failed: %s",
		     nl_dbus_error_name(reply));
		schedule_retry(r);
		return;
	}
	r->agent_registered = true;
	rlog(r, SIM_LOG_INFO, "DisplayOnly agent registered as default");
}

static void agent_reply(DBusMessage *reply, void *user_data)
{
	struct radio_bluez *r = user_data;
	int e = nl_dbus_reply_result(reply);
	DBusMessage *m;

	r->call_agent = 0;
	if (e < 0 && e != -EEXIST) {
		rlog(r, SIM_LOG_WARNING, "RegisterAgent failed: %s", nl_dbus_error_name(reply));
		schedule_retry(r);
		return;
	}
	m = dbus_message_new_method_call(BLUEZ, "/org/bluez", IFACE_AGENT_MANAGER,
					 "RequestDefaultAgent");
	if (!m ||
	    !dbus_message_append_args(m, DBUS_TYPE_OBJECT_PATH, &(const char *){r->agent_path},
				      DBUS_TYPE_INVALID) ||
	    !(r->call_agent = nl_dbus_call(r->bus, m, NL_DBUS_CALL_TIMEOUT_MS, default_agent_reply,
					   r, NULL)))
		schedule_retry(r);
	if (m)
		dbus_message_unref(m);
}

static uint64_t call_register(struct radio_bluez *r, const char *iface, const char *method,
			      const char *obj, nl_dbus_reply_fn cb)
{
	DBusMessage *m = dbus_message_new_method_call(BLUEZ, r->adapter_path, iface, method);
	DBusMessageIter it, dict;
	uint64_t id = 0;

	if (!m)
		return 0;
	dbus_message_iter_init_append(m, &it);
	if (dbus_message_iter_append_basic(&it, DBUS_TYPE_OBJECT_PATH, &obj) &&
	    dbus_message_iter_open_container(&it, DBUS_TYPE_ARRAY, "{sv}", &dict) &&
	    dbus_message_iter_close_container(&it, &dict))
		id = nl_dbus_call(r->bus, m, REGISTER_TIMEOUT_MS, cb, r, NULL);
	dbus_message_unref(m);
	return id;
}

static void register_all(struct radio_bluez *r)
{
	bool failed = false;

	if (!r->bluez_present || !r->adapter_present)
		return;
	if (!r->app_registered && !r->call_app) {
		r->call_app = call_register(r, IFACE_GATT_MANAGER, "RegisterApplication",
					    r->app_path, app_reply);
		failed |= !r->call_app;
	}
	if (r->powered && !r->adv_registered && !r->call_adv) {
		r->call_adv = call_register(r, IFACE_ADV_MANAGER, "RegisterAdvertisement",
					    r->adv_path, adv_reply);
		failed |= !r->call_adv;
	}
	if (r->want_agent && !r->agent_registered && !r->call_agent) {
		DBusMessage *m = dbus_message_new_method_call(BLUEZ, "/org/bluez",
							      IFACE_AGENT_MANAGER, "RegisterAgent");
		const char *cap = "DisplayOnly";
		if (m && dbus_message_append_args(m, DBUS_TYPE_OBJECT_PATH,
						  &(const char *){r->agent_path}, DBUS_TYPE_STRING,
						  &cap, DBUS_TYPE_INVALID))
			r->call_agent = nl_dbus_call(r->bus, m, NL_DBUS_CALL_TIMEOUT_MS,
						     agent_reply, r, NULL);
		if (m)
			dbus_message_unref(m);
		failed |= !r->call_agent;
	}
	if (failed)
		schedule_retry(r);
}

/* Reads Adapter1.Powered out of an a{sv}. */
static void parse_adapter_props(struct radio_bluez *r, DBusMessageIter *props)
{
	DBusMessageIter e, v;

	while (dbus_message_iter_get_arg_type(props) == DBUS_TYPE_DICT_ENTRY) {
		const char *key;
		dbus_message_iter_recurse(props, &e);
		dbus_message_iter_get_basic(&e, &key);
		dbus_message_iter_next(&e);
		dbus_message_iter_recurse(&e, &v);
		if (strcmp(key, "Powered") == 0 &&
		    dbus_message_iter_get_arg_type(&v) == DBUS_TYPE_BOOLEAN) {
			dbus_bool_t b;
			dbus_message_iter_get_basic(&v, &b);
			r->powered = b;
		}
		dbus_message_iter_next(props);
	}
}

/* Device1.Connected out of an a{sv}: 1, 0, or -1 when absent. */
static int parse_connected(DBusMessageIter *props)
{
	DBusMessageIter e, v;
	int res = -1;

	while (dbus_message_iter_get_arg_type(props) == DBUS_TYPE_DICT_ENTRY) {
		const char *key;
		dbus_message_iter_recurse(props, &e);
		dbus_message_iter_get_basic(&e, &key);
		dbus_message_iter_next(&e);
		dbus_message_iter_recurse(&e, &v);
		if (strcmp(key, "Connected") == 0 &&
		    dbus_message_iter_get_arg_type(&v) == DBUS_TYPE_BOOLEAN) {
			dbus_bool_t b;
			dbus_message_iter_get_basic(&v, &b);
			res = b ? 1 : 0;
		}
		dbus_message_iter_next(props);
	}
	return res;
}

static int on_link_idle(sd_event_source *s, uint64_t usec, void *userdata)
{
	struct radio_bluez *r = userdata;

	if (!r->pen_connected && r->link_dev && !link_dropped(r, r->link_dev)) {
		rlog(r, SIM_LOG_INFO, "central %s made no request: connecting the pen (MTU %u)",
		     r->link_dev, ATT_MTU_MIN);
		link_up(r, r->link_dev, ATT_MTU_MIN);
	}
	return 0;
}

static void device_connected(struct radio_bluez *r, const char *path, bool connected)
{
	if (connected) {
		rlog(r, SIM_LOG_INFO, "central %s connected", path);
		set_str(&r->link_dev, path);
		/* A bonded central keeps its CCCs and may just wait for
		 * notifications: give it RADIO_BLUEZ_LINK_IDLE_USEC to make a
		 * request (which carries the MTU), then connect the pen anyway. */
		bool any = false;
		for (unsigned c = 0; c < SIM_CHR_COUNT; c++)
			any |= r->chr[c].notifying;
		if (any && !r->pen_connected && r->link_idle) {
			(void)sd_event_source_set_time(r->link_idle,
						       now_usec() + RADIO_BLUEZ_LINK_IDLE_USEC);
			(void)sd_event_source_set_enabled(r->link_idle, SD_EVENT_ONESHOT);
		}
		return;
	}
	if (r->link_dev && strcmp(r->link_dev, path) == 0) {
		set_str(&r->link_dev, NULL);
		(void)sd_event_source_set_enabled(r->link_idle, SD_EVENT_OFF);
	}
	if (r->dropped && strcmp(r->dropped, path) == 0)
		set_str(&r->dropped, NULL);
	if (r->pen_connected && (!r->central || !r->central[0] || strcmp(r->central, path) == 0)) {
		rlog(r, SIM_LOG_INFO, "central %s disconnected", path);
		schedule_link_down(r);
	}
}

/* One object of InterfacesAdded or GetManagedObjects: path, a{sa{sv}}. */
static void object_added(struct radio_bluez *r, const char *path, DBusMessageIter *ifaces)
{
	bool adapter = strcmp(path, r->adapter_path) == 0, dev = is_our_device(r, path);

	if (!adapter && !dev)
		return;
	while (dbus_message_iter_get_arg_type(ifaces) == DBUS_TYPE_DICT_ENTRY) {
		DBusMessageIter e, props;
		const char *iface;
		dbus_message_iter_recurse(ifaces, &e);
		dbus_message_iter_get_basic(&e, &iface);
		dbus_message_iter_next(&e);
		dbus_message_iter_recurse(&e, &props);
		if (adapter && strcmp(iface, IFACE_ADAPTER) == 0) {
			if (!r->adapter_present)
				rlog(r, SIM_LOG_INFO, "adapter %s present", r->adapter_path);
			r->adapter_present = true;
			parse_adapter_props(r, &props);
		} else if (dev && strcmp(iface, IFACE_DEVICE) == 0 &&
			   parse_connected(&props) == 1) {
			device_connected(r, path, true);
		}
		dbus_message_iter_next(ifaces);
	}
}

static void adapter_gone(struct radio_bluez *r, const char *why)
{
	if (r->adapter_present)
		rlog(r, SIM_LOG_WARNING, "adapter %s %s", r->adapter_path, why);
	r->adapter_present = false;
	r->powered = false;
	r->app_registered = r->adv_registered = false;
	set_str(&r->link_dev, NULL);
	set_str(&r->dropped, NULL);
	schedule_link_down(r);
}

static void objects_reply(DBusMessage *reply, void *user_data)
{
	struct radio_bluez *r = user_data;
	DBusMessageIter it, objs;

	r->call_objects = 0;
	if (nl_dbus_reply_result(reply) < 0) {
		rlog(r, SIM_LOG_WARNING, "GetManagedObjects of org.bluez failed: %s",
		     nl_dbus_error_name(reply));
		schedule_retry(r);
		return;
	}
	if (!dbus_message_iter_init(reply, &it) ||
	    dbus_message_iter_get_arg_type(&it) != DBUS_TYPE_ARRAY) {
		schedule_retry(r);
		return;
	}
	dbus_message_iter_recurse(&it, &objs);
	while (dbus_message_iter_get_arg_type(&objs) == DBUS_TYPE_DICT_ENTRY) {
		DBusMessageIter e, ifaces;
		const char *path;
		dbus_message_iter_recurse(&objs, &e);
		dbus_message_iter_get_basic(&e, &path);
		dbus_message_iter_next(&e);
		dbus_message_iter_recurse(&e, &ifaces);
		object_added(r, path, &ifaces);
		dbus_message_iter_next(&objs);
	}
	if (!r->adapter_present) {
		rlog(r, SIM_LOG_WARNING, "adapter %s not found: waiting for it", r->adapter_path);
		return; /* InterfacesAdded brings it */
	}
	register_all(r);
}

static void bringup(struct radio_bluez *r)
{
	DBusMessage *m;

	if (!r->bus_ready || !r->bluez_present || r->call_objects)
		return;
	if (r->adapter_present) {
		register_all(r);
		return;
	}
	m = dbus_message_new_method_call(BLUEZ, "/", IFACE_OM, "GetManagedObjects");
	if (m) {
		r->call_objects =
			nl_dbus_call(r->bus, m, NL_DBUS_CALL_TIMEOUT_MS, objects_reply, r, NULL);
		dbus_message_unref(m);
	}
	if (!r->call_objects)
		schedule_retry(r);
}

static void bluez_lost(struct radio_bluez *r)
{
	nl_dbus_cancel(r->bus, r->call_objects);
	nl_dbus_cancel(r->bus, r->call_app);
	nl_dbus_cancel(r->bus, r->call_adv);
	nl_dbus_cancel(r->bus, r->call_agent);
	r->call_objects = r->call_app = r->call_adv = r->call_agent = 0;
	r->agent_registered = false;
	/* A new bluetoothd starts with no CCC state. */
	for (unsigned c = 0; c < SIM_CHR_COUNT; c++)
		r->chr[c].notifying = false;
	adapter_gone(r, "gone with bluetoothd");
}

static void on_bluez_name(const char *name, const char *owner, void *user_data)
{
	struct radio_bluez *r = user_data;

	/* Any change of owner means the bluetoothd we registered with is gone
	 * (a new one may already own the name). */
	if (r->bluez_present) {
		rlog(r, SIM_LOG_WARNING, "%s left the bus (%s)", name,
		     r->bluez_owner ? r->bluez_owner : "?");
		r->bluez_present = false;
		bluez_lost(r);
	} else if (!owner) {
		rlog(r, SIM_LOG_WARNING, "%s is not on the bus: waiting for it", name);
	}
	set_str(&r->bluez_owner, owner);
	if (owner && !r->bluez_owner)
		return; /* ENOMEM: the next change tries again */
	r->bluez_present = owner != NULL;
	if (owner) {
		rlog(r, SIM_LOG_INFO, "%s is on the bus (%s)", name, owner);
		bringup(r);
	}
}

/* Signals from bluetoothd. */
static DBusHandlerResult on_signal(DBusConnection *conn, DBusMessage *m, void *data)
{
	struct radio_bluez *r = data;
	const char *path = dbus_message_get_path(m);
	DBusMessageIter it, sub;

	if (dbus_message_get_type(m) != DBUS_MESSAGE_TYPE_SIGNAL || !path || !r->bluez_present ||
	    !r->bluez_owner || !dbus_message_has_sender(m, r->bluez_owner))
		return DBUS_HANDLER_RESULT_NOT_YET_HANDLED;
	if (dbus_message_is_signal(m, IFACE_PROPS, "PropertiesChanged")) {
		const char *iface;
		if (!dbus_message_iter_init(m, &it) ||
		    dbus_message_iter_get_arg_type(&it) != DBUS_TYPE_STRING)
			return DBUS_HANDLER_RESULT_NOT_YET_HANDLED;
		dbus_message_iter_get_basic(&it, &iface);
		dbus_message_iter_next(&it);
		if (dbus_message_iter_get_arg_type(&it) != DBUS_TYPE_ARRAY)
			return DBUS_HANDLER_RESULT_NOT_YET_HANDLED;
		dbus_message_iter_recurse(&it, &sub);
		if (strcmp(path, r->adapter_path) == 0 && strcmp(iface, IFACE_ADAPTER) == 0) {
			bool was = r->powered;
			parse_adapter_props(r, &sub);
			if (was != r->powered) {
				rlog(r, SIM_LOG_INFO, "adapter %s powered %s", r->adapter_path,
				     r->powered ? "on" : "off");
				if (r->powered) {
					register_all(r);
				} else {
					/* Re-register on power-on; AlreadyExists counts as done. */
					r->adv_registered = false;
					set_str(&r->link_dev, NULL);
					set_str(&r->dropped, NULL);
					schedule_link_down(r);
				}
			}
		} else if (is_our_device(r, path) && strcmp(iface, IFACE_DEVICE) == 0) {
			int c = parse_connected(&sub);
			if (c >= 0)
				device_connected(r, path, c == 1);
		}
	} else if (dbus_message_is_signal(m, IFACE_OM, "InterfacesAdded")) {
		const char *opath;
		if (!dbus_message_iter_init(m, &it) ||
		    dbus_message_iter_get_arg_type(&it) != DBUS_TYPE_OBJECT_PATH)
			return DBUS_HANDLER_RESULT_NOT_YET_HANDLED;
		dbus_message_iter_get_basic(&it, &opath);
		dbus_message_iter_next(&it);
		if (dbus_message_iter_get_arg_type(&it) != DBUS_TYPE_ARRAY)
			return DBUS_HANDLER_RESULT_NOT_YET_HANDLED;
		dbus_message_iter_recurse(&it, &sub);
		bool had = r->adapter_present;
		object_added(r, opath, &sub);
		if (!had && r->adapter_present)
			register_all(r);
	} else if (dbus_message_is_signal(m, IFACE_OM, "InterfacesRemoved")) {
		const char *opath;
		if (!dbus_message_iter_init(m, &it) ||
		    dbus_message_iter_get_arg_type(&it) != DBUS_TYPE_OBJECT_PATH)
			return DBUS_HANDLER_RESULT_NOT_YET_HANDLED;
		dbus_message_iter_get_basic(&it, &opath);
		dbus_message_iter_next(&it);
		if (dbus_message_iter_get_arg_type(&it) != DBUS_TYPE_ARRAY)
			return DBUS_HANDLER_RESULT_NOT_YET_HANDLED;
		dbus_message_iter_recurse(&it, &sub);
		while (dbus_message_iter_get_arg_type(&sub) == DBUS_TYPE_STRING) {
			const char *iface;
			dbus_message_iter_get_basic(&sub, &iface);
			if (strcmp(opath, r->adapter_path) == 0 &&
			    strcmp(iface, IFACE_ADAPTER) == 0)
				adapter_gone(r, "removed");
			else if (is_our_device(r, opath) && strcmp(iface, IFACE_DEVICE) == 0)
				device_connected(r, opath, false);
			dbus_message_iter_next(&sub);
		}
	}
	return DBUS_HANDLER_RESULT_NOT_YET_HANDLED;
}

static void on_bus_ready(struct nl_dbus *b, int err, void *user_data)
{
	struct radio_bluez *r = user_data;
	char rule[256];

	if (err < 0) {
		rlog(r, SIM_LOG_ERR, "cannot register on the bus: %s", strerror(-err));
		r->bus_lost = true;
		schedule_retry(r);
		return;
	}
	r->bus_ready = true;
	snprintf(rule, sizeof(rule),
		 "type='signal',sender='" BLUEZ "',interface='" IFACE_PROPS
		 "',member='PropertiesChanged',path_namespace='%s'",
		 r->adapter_path);
	(void)nl_dbus_add_match(b, rule);
	(void)nl_dbus_add_match(b, "type='signal',sender='" BLUEZ "',interface='" IFACE_OM
				   "',path='/'");
	/* Only the bus is asked whether org.bluez is there: a call to
	 * org.bluez itself would start D-Bus activation. */
	r->name_watch = nl_dbus_watch_name(b, BLUEZ, on_bluez_name, r, NULL);
	if (!r->name_watch)
		rlog(r, SIM_LOG_ERR, "cannot watch %s", BLUEZ);
}

static void on_bus_lost(struct nl_dbus *b, void *user_data)
{
	struct radio_bluez *r = user_data;

	rlog(r, SIM_LOG_ERR, "lost the bus: reconnecting every %llu s",
	     (unsigned long long)(RADIO_BLUEZ_RETRY_USEC / 1000000u));
	r->bus_ready = false;
	if (r->bluez_present) {
		r->bluez_present = false;
		bluez_lost(r);
	}
	set_str(&r->bluez_owner, NULL);
	r->name_watch = 0;
	r->bus_lost = true;
	schedule_retry(r);
}

/* ---- lifetime ------------------------------------------------------------------- */

void radio_bluez_config_default(struct radio_bluez_config *c)
{
	memset(c, 0, sizeof(*c));
	c->adapter = "hci0";
	c->agent = true;
}

int radio_bluez_new(sd_event *ev, const struct radio_bluez_config *cfg,
		    const struct sim_gatt_server_ops *ops, void *pen, struct radio_bluez **ret)
{
	struct radio_bluez *r;
	char safe[40];
	int e;

	if (!ev || !cfg || !ops || !ret || !valid_serial(cfg->serial) ||
	    !valid_adapter(cfg->adapter) || !ops->connected || !ops->disconnected || !ops->read ||
	    !ops->write || !ops->cccd || !ops->confirmed)
		return -EINVAL;
	r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	r->ev = sd_event_ref(ev);
	r->ops = ops;
	r->pen = pen;
	r->log = cfg->log;
	r->log_ctx = cfg->log_ctx;
	r->want_agent = cfg->agent;
	r->mtu = ATT_MTU_MIN;
	r->serial = strdup(cfg->serial);
	r->local_name =
		strndup(cfg->local_name ? cfg->local_name : cfg->serial, RADIO_BLUEZ_ADV_NAME_MAX);
	if (!r->serial || !r->local_name) {
		e = -ENOMEM;
		goto fail;
	}
	/* '-' is not allowed in an object path element. */
	snprintf(safe, sizeof(safe), "%s", cfg->serial);
	for (char *p = safe; *p; p++)
		if (*p == '-')
			*p = '_';
	snprintf(r->adapter_path, sizeof(r->adapter_path), "/org/bluez/%s", cfg->adapter);
	snprintf(r->app_path, sizeof(r->app_path), "/org/needlelink/pen/%s", safe);
	snprintf(r->adv_path, sizeof(r->adv_path), "%s/advertisement0", r->app_path);
	snprintf(r->agent_path, sizeof(r->agent_path), "%s/agent", r->app_path);
	for (int s = 0; s < SVC_COUNT; s++)
		snprintf(r->svc_path[s], sizeof(r->svc_path[s]), "%s/service%d", r->app_path, s);
	for (int c = 0; c < SIM_CHR_COUNT; c++) {
		int s = svc_index(sim_chr_table()[c].service_uuid);
		if (s < 0) {
			e = -EINVAL;
			goto fail;
		}
		snprintf(r->chr_path[c], sizeof(r->chr_path[c]), "%s/char%02d", r->svc_path[s], c);
	}
	e = sd_event_add_time(ev, &r->retry, CLOCK_MONOTONIC, UINT64_MAX, 100000, on_retry, r);
	if (e < 0)
		goto fail;
	(void)sd_event_source_set_enabled(r->retry, SD_EVENT_OFF);
	e = sd_event_add_time(ev, &r->link_idle, CLOCK_MONOTONIC, UINT64_MAX, 10000, on_link_idle,
			      r);
	if (e < 0)
		goto fail;
	(void)sd_event_source_set_enabled(r->link_idle, SD_EVENT_OFF);
	e = sd_event_add_defer(ev, &r->link_down, on_link_down, r);
	if (e < 0)
		goto fail;
	(void)sd_event_source_set_enabled(r->link_down, SD_EVENT_OFF);
	if (cfg->bus_address && !(r->bus_address = strdup(cfg->bus_address))) {
		e = -ENOMEM;
		goto fail;
	}
	e = bus_open(r);
	if (e < 0)
		goto fail;
	*ret = r;
	return 0;
fail:
	radio_bluez_free(r);
	return e;
}

static int bus_open(struct radio_bluez *r)
{
	int e = nl_dbus_open(r->ev, r->bus_address, on_bus_ready, on_bus_lost, r, &r->bus);

	if (e < 0)
		return e;
	if (!dbus_connection_add_filter(nl_dbus_connection(r->bus), on_signal, r, NULL))
		return -ENOMEM;
	r->filter_added = true;
	if (!dbus_connection_register_fallback(nl_dbus_connection(r->bus), r->app_path,
					       &object_vtable, r))
		return -ENOMEM;
	r->path_registered = true;
	return 0;
}

/* Drops the connection and everything queued on it. */
static void bus_close(struct radio_bluez *r)
{
	if (r->bus) {
		DBusConnection *c = nl_dbus_connection(r->bus);
		if (r->path_registered)
			dbus_connection_unregister_object_path(c, r->app_path);
		if (r->filter_added)
			dbus_connection_remove_filter(c, on_signal, r);
		nl_dbus_free(r->bus);
	}
	r->bus = NULL;
	r->path_registered = r->filter_added = false;
	r->bus_ready = false;
	r->call_objects = r->call_app = r->call_adv = r->call_agent = 0;
	r->name_watch = 0;
	while (r->out_head) {
		struct out_msg *o = r->out_head;
		r->out_head = o->next;
		dbus_message_unref(o->m);
		free(o);
	}
	r->out_tail = NULL;
}

void radio_bluez_free(struct radio_bluez *r)
{
	if (!r)
		return;
	/* No Unregister* calls: bluetoothd drops the application, the
	 * advertisement and the agent of a connection that closes. */
	bus_close(r);
	for (unsigned c = 0; c < SIM_CHR_COUNT; c++)
		ind_clear(&r->chr[c]);
	sd_event_source_disable_unref(r->retry);
	sd_event_source_disable_unref(r->link_down);
	sd_event_source_disable_unref(r->link_idle);
	sd_event_unref(r->ev);
	free(r->central);
	free(r->link_dev);
	free(r->dropped);
	free(r->bluez_owner);
	free(r->bus_address);
	free(r->serial);
	free(r->local_name);
	free(r);
}

bool radio_bluez_connected(const struct radio_bluez *r)
{
	return r && r->pen_connected;
}

uint16_t radio_bluez_mtu(const struct radio_bluez *r)
{
	return r ? r->mtu : ATT_MTU_MIN;
}

bool radio_bluez_registered(const struct radio_bluez *r)
{
	return r && r->app_registered && r->adv_registered;
}

bool radio_bluez_advertising(const struct radio_bluez *r)
{
	return r && r->adv_registered;
}

const char *radio_bluez_app_path(const struct radio_bluez *r)
{
	return r ? r->app_path : NULL;
}
