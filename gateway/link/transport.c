/* SPDX-License-Identifier: MIT */
#include "transport.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

struct transport {
	const struct transport_ops *ops;
	void *priv;
	transport_event_fn sink;
	void *sink_data;
};

extern const struct transport_ops transport_bluez_ops;

const struct transport_ops *const transport_backends[] = {
	&transport_sim_ops,
	&transport_bluez_ops,
	NULL,
};

const struct transport_ops *transport_find(const char *name)
{
	if (!name)
		return NULL;
	for (size_t i = 0; transport_backends[i]; i++)
		if (strcmp(transport_backends[i]->name, name) == 0)
			return transport_backends[i];
	return NULL;
}

int transport_new(sd_event *ev, const char *name, const struct transport_config *cfg,
		  struct transport **ret)
{
	const struct transport_ops *ops = transport_find(name);
	struct transport_config empty = { 0 };
	struct transport *t;
	int r;

	if (!ev || !ret)
		return -EINVAL;
	if (!ops)
		return -ENOENT;
	t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	t->ops = ops;
	r = ops->init(t, ev, cfg ? cfg : &empty, &t->priv);
	if (r < 0) {
		free(t);
		return r;
	}
	*ret = t;
	return 0;
}

void transport_free(struct transport *t)
{
	if (!t)
		return;
	/* No events while the backend tears its links down. */
	t->sink = NULL;
	if (t->ops->deinit)
		t->ops->deinit(t->priv);
	free(t);
}

const char *transport_name(const struct transport *t)
{
	return t->ops->name;
}

void transport_set_sink(struct transport *t, transport_event_fn fn, void *user_data)
{
	t->sink = fn;
	t->sink_data = user_data;
}

void transport_emit(struct transport *t, const struct transport_event *ev)
{
	if (t->sink)
		t->sink(ev, t->sink_data);
}

int transport_scan_start(struct transport *t)
{
	if (!t->ops->scan_start)
		return -EOPNOTSUPP;
	return t->ops->scan_start(t->priv);
}

void transport_scan_stop(struct transport *t)
{
	if (t->ops->scan_stop)
		t->ops->scan_stop(t->priv);
}

unsigned transport_connect(struct transport *t, const char *addr, transport_status_fn cb,
			   void *user_data, transport_destroy_fn destroy)
{
	if (!t->ops->connect || !addr)
		return 0;
	return t->ops->connect(t->priv, addr, cb, user_data, destroy);
}

void transport_disconnect(struct transport *t, const char *addr)
{
	if (t->ops->disconnect && addr)
		t->ops->disconnect(t->priv, addr);
}

unsigned transport_exchange_mtu(struct transport *t, const char *addr, uint16_t mtu,
				transport_mtu_fn cb, void *user_data, transport_destroy_fn destroy)
{
	if (!t->ops->exchange_mtu || !addr)
		return 0;
	return t->ops->exchange_mtu(t->priv, addr, mtu, cb, user_data, destroy);
}

unsigned transport_discover(struct transport *t, const char *addr, transport_discover_fn cb,
			    void *user_data, transport_destroy_fn destroy)
{
	if (!t->ops->discover || !addr)
		return 0;
	return t->ops->discover(t->priv, addr, cb, user_data, destroy);
}

unsigned transport_read(struct transport *t, const char *addr, uint16_t handle,
			transport_read_fn cb, void *user_data, transport_destroy_fn destroy)
{
	if (!t->ops->read || !addr)
		return 0;
	return t->ops->read(t->priv, addr, handle, cb, user_data, destroy);
}

unsigned transport_write(struct transport *t, const char *addr, uint16_t handle,
			 const uint8_t *val, size_t len, transport_status_fn cb, void *user_data,
			 transport_destroy_fn destroy)
{
	if (!t->ops->write || !addr)
		return 0;
	return t->ops->write(t->priv, addr, handle, val, len, cb, user_data, destroy);
}

unsigned transport_subscribe(struct transport *t, const char *addr, uint16_t handle,
			     uint16_t value, transport_status_fn cb, void *user_data,
			     transport_destroy_fn destroy)
{
	if (!t->ops->subscribe || !addr)
		return 0;
	return t->ops->subscribe(t->priv, addr, handle, value, cb, user_data, destroy);
}

int transport_cancel(struct transport *t, unsigned id)
{
	if (!t->ops->cancel || id == 0)
		return -ENOENT;
	return t->ops->cancel(t->priv, id);
}

uint16_t transport_mtu(struct transport *t, const char *addr)
{
	if (!t->ops->mtu || !addr)
		return 0;
	return t->ops->mtu(t->priv, addr);
}

enum transport_err_class transport_err_class(int err)
{
	switch (err) {
	case 0:
		return TRANSPORT_ERR_NONE;
	case -ETIMEDOUT:
		return TRANSPORT_ERR_TIMEOUT;
	case -ECONNREFUSED:
	case -EBUSY:
	case -ENOENT:
	case -EHOSTUNREACH:
	case -ESHUTDOWN:
		return TRANSPORT_ERR_REFUSED;
	case -ECONNRESET:
	case -ECONNABORTED:
	case -ENOTCONN:
	case -EPIPE:
		return TRANSPORT_ERR_LINK_LOSS;
	case -EPROTO:
	case -EBADMSG:
	case -EMSGSIZE:
	case -ERANGE:
		return TRANSPORT_ERR_PROTOCOL;
	case -EREMOTEIO:
		return TRANSPORT_ERR_ATT;
	default:
		return TRANSPORT_ERR_LOCAL;
	}
}

const char *transport_err_class_name(enum transport_err_class c)
{
	switch (c) {
	case TRANSPORT_ERR_NONE:
		return "none";
	case TRANSPORT_ERR_TIMEOUT:
		return "timeout";
	case TRANSPORT_ERR_REFUSED:
		return "refused";
	case TRANSPORT_ERR_LINK_LOSS:
		return "link-loss";
	case TRANSPORT_ERR_PROTOCOL:
		return "protocol";
	case TRANSPORT_ERR_ATT:
		return "att";
	case TRANSPORT_ERR_LOCAL:
		return "local";
	case TRANSPORT_ERR_CLASS_COUNT:
		break;
	}
	return "?";
}

const char *transport_event_type_name(enum transport_event_type t)
{
	switch (t) {
	case TRANSPORT_EVENT_DEVICE_FOUND:
		return "device-found";
	case TRANSPORT_EVENT_DEVICE_LOST:
		return "device-lost";
	case TRANSPORT_EVENT_CONNECTED:
		return "connected";
	case TRANSPORT_EVENT_DISCONNECTED:
		return "disconnected";
	case TRANSPORT_EVENT_VALUE:
		return "value";
	}
	return "?";
}
