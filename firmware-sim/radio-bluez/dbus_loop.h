/* SPDX-License-Identifier: MIT */
/*
 * libdbus on sd-event, with nothing that blocks.
 *
 * nl_dbus_open() connects to a bus (the system bus by default), attaches the
 * connection to an sd-event loop and registers with the bus by sending Hello
 * asynchronously; the ready callback reports the result. Loop integration:
 * one record per file descriptor holding all of libdbus' watches on it (it
 * makes a read and a write watch on the same fd, and epoll accepts an fd
 * once), libdbus timeouts as sd-event timers, and dispatching from a defer
 * source that the dispatch-status callback only enables (never dispatching
 * from inside that callback). Exit-on-disconnect is off: a lost bus is
 * reported through the disconnected callback.
 *
 * Method calls always carry an explicit timeout and complete through a
 * callback (dbus_connection_send_with_reply + pending-call notify); there is
 * no blocking call in here. Name watching subscribes to NameOwnerChanged and
 * asks NameHasOwner (never the watched name itself, which could trigger D-Bus
 * activation).
 *
 * All callbacks run from the sd-event loop thread. Nothing here is
 * thread-safe.
 */
#ifndef NL_DBUS_LOOP_H
#define NL_DBUS_LOOP_H

#include <stdbool.h>
#include <stdint.h>

#include <dbus/dbus.h>
#include <systemd/sd-event.h>

struct nl_dbus;

/* Default method call timeout. */
#define NL_DBUS_CALL_TIMEOUT_MS 10000

typedef void (*nl_dbus_destroy_fn)(void *user_data);
/* The bus is registered (err 0; the unique name is known) or could not be
 * (err < 0). Called once. */
typedef void (*nl_dbus_ready_fn)(struct nl_dbus *b, int err, void *user_data);
/* The connection to the bus was lost. The struct nl_dbus stays valid (calls
 * fail with -ENOTCONN) until freed. */
typedef void (*nl_dbus_disconnected_fn)(struct nl_dbus *b, void *user_data);
/* reply is a METHOD_RETURN or an ERROR message (a timeout is the error
 * org.freedesktop.DBus.Error.NoReply made by libdbus); borrowed. */
typedef void (*nl_dbus_reply_fn)(DBusMessage *reply, void *user_data);
/* owner: the unique name owning name now, NULL when it has none (both
 * borrowed). Called with the initial state once the bus answered, then on
 * every change. */
typedef void (*nl_dbus_name_fn)(const char *name, const char *owner, void *user_data);

/* Opens a private connection to address (NULL: the system bus, from
 * $DBUS_SYSTEM_BUS_ADDRESS or the standard socket) and attaches it to ev.
 * ready is called from the loop once Hello was answered (within
 * NL_DBUS_CALL_TIMEOUT_MS). Returns 0 or -errno (-ECONNREFUSED, -ENOENT when
 * the bus socket is absent, -ENOMEM). */
int nl_dbus_open(sd_event *ev, const char *address, nl_dbus_ready_fn ready,
		 nl_dbus_disconnected_fn disconnected, void *user_data, struct nl_dbus **ret);
/* Cancels every pending call and name watch (their destroy functions run),
 * closes and frees the connection. Accepts NULL. Not from inside one of this
 * connection's callbacks. */
void nl_dbus_free(struct nl_dbus *b);

/* The attached connection (borrowed; valid while b lives). Use it to send
 * signals and replies and to register object paths. */
DBusConnection *nl_dbus_connection(struct nl_dbus *b);
/* The unique name, or NULL before ready. */
const char *nl_dbus_unique_name(struct nl_dbus *b);
bool nl_dbus_is_connected(struct nl_dbus *b);

/* Sends msg (its reference is not taken over) and calls reply when the answer
 * or the timeout (timeout_ms > 0) comes. destroy(user_data) runs once after
 * the reply or cancellation. Returns a call id > 0, or 0 on failure (destroy
 * is then NOT called). reply may be NULL: the answer is dropped. */
uint64_t nl_dbus_call(struct nl_dbus *b, DBusMessage *msg, int timeout_ms, nl_dbus_reply_fn reply,
		      void *user_data, nl_dbus_destroy_fn destroy);
/* Cancels a pending call: reply is not called, destroy is. Returns true
 * when id was pending. */
bool nl_dbus_cancel(struct nl_dbus *b, uint64_t id);

/* Sends msg without waiting for a reply (signals, replies). 0 or -errno. */
int nl_dbus_send(struct nl_dbus *b, DBusMessage *msg);

/* Adds a match rule without waiting for the bus' answer. 0 or -errno. */
int nl_dbus_add_match(struct nl_dbus *b, const char *rule);
int nl_dbus_remove_match(struct nl_dbus *b, const char *rule);

/* Watches a bus name: subscribes to NameOwnerChanged for it, then asks
 * NameHasOwner (and GetNameOwner when it has one). cb reports the initial state and each change (only
 * changes: never the same state twice in a row). Returns an id > 0, 0 on
 * failure (destroy not called). */
uint64_t nl_dbus_watch_name(struct nl_dbus *b, const char *name, nl_dbus_name_fn cb,
			    void *user_data, nl_dbus_destroy_fn destroy);
/* Stops a watch (destroy runs). True when id existed. */
bool nl_dbus_unwatch_name(struct nl_dbus *b, uint64_t id);

/* Attaches an existing connection to ev (the building block of
 * nl_dbus_open, for code that opens its own connection). Disables
 * exit-on-disconnect. Detach before the connection is closed. 0 or -errno. */
struct nl_dbus_loop;
int nl_dbus_loop_attach(DBusConnection *c, sd_event *ev, struct nl_dbus_loop **ret);
/* Removes the watch, timeout and dispatch functions and frees the record.
 * Accepts NULL. */
void nl_dbus_loop_detach(struct nl_dbus_loop *l);

/* -errno for a D-Bus error name (NoReply/Timeout -> -ETIMEDOUT, ServiceUnknown
 * -> -EHOSTUNREACH, AccessDenied -> -EACCES, NoMemory -> -ENOMEM,
 * Disconnected -> -ENOTCONN, UnknownMethod/UnknownObject -> -EOPNOTSUPP,
 * org.bluez.Error.AlreadyExists -> -EEXIST, DoesNotExist -> -ENOENT, anything
 * else -> -EIO). */
int nl_dbus_errno(const char *error_name);
/* 0 for a METHOD_RETURN, else nl_dbus_errno of the error. */
int nl_dbus_reply_result(DBusMessage *reply);
/* The error name of an ERROR message (borrowed from reply), else "". */
const char *nl_dbus_error_name(DBusMessage *reply);

#endif
