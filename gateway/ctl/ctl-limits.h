/* SPDX-License-Identifier: MIT */
/*
 * needlelinkctl's treatment-limits commands (ctl-limits.c):
 *   authorise SERIAL ...   the MQTT `authorise` request (ctl-mqtt.h)
 *   unlock SERIAL ...      the MQTT `unlock` request
 *   audit [...]            the journal's audit table, as csv or json
 * ctl.c hands over the whole command line when the command is one of them.
 */
#ifndef NLCTL_LIMITS_H
#define NLCTL_LIMITS_H

/* The command word of argv when it is one of this module's (the first word
 * that is neither an option nor an option's value), else NULL. */
const char *ctl_limits_command(int argc, char **argv);
/* Parses argv (global options included; cmd is the command word ctl.c found
 * in it) and runs the command; returns the process exit status (see
 * `needlelinkctl --help`), or -1 for --help. */
int ctl_limits_main(int argc, char **argv, const char *cmd);

#endif
