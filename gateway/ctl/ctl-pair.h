/* SPDX-License-Identifier: MIT */
/*
 * needlelinkctl pair SERIAL --passkey N | --confirm yes|no (ctl-pair.c): the
 * MQTT "pair" request, answering the Bluetooth pairing bluetoothd waits on
 * for the pen (transport bluez). ctl.c hands over the whole command line.
 */
#ifndef NLCTL_PAIR_H
#define NLCTL_PAIR_H

/* "pair" when it is argv's command word, else NULL. */
const char *ctl_pair_command(int argc, char **argv);
/* Runs it; returns the exit status (0 ok, 3 failed or no response in time,
 * 1 usage or connection error), or -1 for --help. */
int ctl_pair_main(int argc, char **argv);

#endif
