/* SPDX-License-Identifier: MIT */
/*
 * Local radio: simulated pens on the same machine, reached over Unix
 * SOCK_SEQPACKET sockets in one directory. See docs/local-radio.md.
 *
 *   lradio_wire.h    the frame codec (pure, also linked by the gateway)
 *   lradio_server.h  the pen side, implements struct sim_radio_ops
 *   lradio_client.h  the central side (gateway simulator transport, tests)
 */
#ifndef LRADIO_H
#define LRADIO_H

#include "lradio_client.h"
#include "lradio_server.h"
#include "lradio_wire.h"

/* Default directory: $NEEDLELINK_SIM_DIR, else $XDG_RUNTIME_DIR/needlelink-sim,
 * else /tmp/needlelink-sim-<uid>. Writes at most size bytes including NUL;
 * returns the length or -ENAMETOOLONG. */
int lradio_default_dir(char *buf, size_t size);

#endif
