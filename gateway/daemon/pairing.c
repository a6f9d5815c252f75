/* SPDX-License-Identifier: MIT */
/*
 * BlueZ pairing and the pens' bonded identities (README.md, "Bluetooth:
 * pairing and bonded pens"; docs/mqtt-api.md, the pair op).
 *
 * With transport "bluez" this module
 *   - hears the transport's notices (transport_bluez.h), logs each once and
 *     tells MQTT: pairing wanted (passkey entry or comparison, with the
 *     number to show) and its outcome as alerts of the pen; bluetoothd gone
 *     and back, the adapter off, on or gone, the system bus lost as alerts of
 *     the gateway (BASE/gateways/GW/alerts);
 *   - answers the MQTT "pair" request (passkey or confirm) through
 *     transport_bluez_pair() / transport_bluez_confirm();
 *   - is the transport's identity gate: a serial, once its pen bonded, is
 *     bound to the pen's identity address in the bonds file
 *     ([bluetooth] bonds); a device that advertises that serial from another
 *     address is refused and alerted as a spoofed serial.
 * With transport "sim" the "pair" request fails with wrong_transport.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <ini.h>

#include "config.h"
#include "daemon-internal.h"
#include "journal.h"
#include "log.h"
#include "transport.h"
#include "transport_bluez.h"

#define BOND_ADDR_MAX 18 /* "AA:BB:CC:DD:EE:FF" */
#define REFUSED_MAX 64

struct bond {
	struct bond *next;
	char serial[NL_SERIAL_MAX + 1];
	char address[BOND_ADDR_MAX];
};

/* An agent request waiting for the operator. */
struct pend {
	struct pend *next;
	char serial[NL_SERIAL_MAX + 1];
	bool confirm; /* else passkey entry */
	uint32_t passkey;
};

/* A refused (serial, address) pair already alerted. */
struct refused {
	struct refused *next;
	char serial[NL_SERIAL_MAX + 1];
	char address[BOND_ADDR_MAX];
};

struct dpair {
	struct daemon *d;
	bool bluez;
	char *path; /* bonds file */
	struct bond *bonds;
	struct pend *pend;
	struct refused *refused;
	unsigned n_refused;
	bool bluez_gone, adapter_off, adapter_gone;
};

/* ---- bonds file ------------------------------------------------------------ */

static bool valid_address(const char *a)
{
	if (strlen(a) != 17)
		return false;
	for (int i = 0; i < 17; i++) {
		if (i % 3 == 2 ? a[i] != ':' : !strchr("0123456789abcdefABCDEF", a[i]))
			return false;
	}
	return true;
}

static bool valid_serial(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > NL_SERIAL_MAX)
		return false;
	for (; *s; s++)
		if ((unsigned char)*s <= 0x20 || (unsigned char)*s >= 0x7f || strchr("/+#", *s))
			return false;
	return true;
}

static struct bond *bond_by_serial(struct dpair *p, const char *serial)
{
	for (struct bond *b = p->bonds; b; b = b->next)
		if (strcmp(b->serial, serial) == 0)
			return b;
	return NULL;
}

static struct bond *bond_by_address(struct dpair *p, const char *address)
{
	for (struct bond *b = p->bonds; b; b = b->next)
		if (strcasecmp(b->address, address) == 0)
			return b;
	return NULL;
}

static int bond_add(struct dpair *p, const char *serial, const char *address)
{
	struct bond *b = calloc(1, sizeof(*b));

	if (!b)
		return -ENOMEM;
	snprintf(b->serial, sizeof(b->serial), "%s", serial);
	snprintf(b->address, sizeof(b->address), "%s", address);
	for (char *c = b->address; *c; c++)
		if (*c >= 'a' && *c <= 'f')
			*c = (char)(*c - 'a' + 'A');
	b->next = p->bonds;
	p->bonds = b;
	return 0;
}

/* "SERIAL ADDRESS" per line; '#' comments. A line that does not parse is
 * logged as FILE:LINE and skipped. */
static int bonds_load(struct dpair *p)
{
	char line[256], serial[128], address[64], extra[8];
	unsigned n = 0, kept = 0;
	FILE *f = fopen(p->path, "re");

	if (!f) {
		if (errno == ENOENT) {
			log_info("bluetooth: no bonds file %s yet", p->path);
			return 0;
		}
		log_err("bluetooth: bonds file %s: %s", p->path, strerror(errno));
		return -errno;
	}
	while (fgets(line, sizeof(line), f)) {
		char *s = line + strspn(line, " \t");

		n++;
		if (*s == '#' || *s == '\n' || *s == '\0')
			continue;
		if (sscanf(s, "%127s %63s %7s", serial, address, extra) != 2 ||
		    !valid_serial(serial) || !valid_address(address)) {
			log_warning("%s:%u: expected \"SERIAL AA:BB:CC:DD:EE:FF\", line ignored",
				    p->path, n);
			continue;
		}
		if (bond_by_serial(p, serial) || bond_by_address(p, address)) {
			log_warning("%s:%u: %s or %s bound twice, line ignored", p->path, n,
				    serial, address);
			continue;
		}
		if (bond_add(p, serial, address) < 0) {
			fclose(f);
			return -ENOMEM;
		}
		kept++;
	}
	fclose(f);
	log_info("bluetooth: %u bonded pen identities from %s", kept, p->path);
	return 0;
}

/* Rewrites the file (temporary file, fsync, rename): a handful of lines,
 * once per newly bonded pen. */
static int bonds_save(struct dpair *p)
{
	char tmp[4200];
	FILE *f;
	int r = 0;

	if (snprintf(tmp, sizeof(tmp), "%s.tmp", p->path) >= (int)sizeof(tmp))
		return -ENAMETOOLONG;
	f = fopen(tmp, "we");
	if (!f)
		return -errno;
	fprintf(f, "# needlelinkd: pen serial and the identity address it bonded with\n");
	for (struct bond *b = p->bonds; b; b = b->next)
		fprintf(f, "%s %s\n", b->serial, b->address);
	if (fflush(f) != 0 || fsync(fileno(f)) < 0)
		r = -errno;
	if (fclose(f) != 0 && r == 0)
		r = -errno;
	if (r == 0 && rename(tmp, p->path) < 0)
		r = -errno;
	if (r < 0)
		(void)unlink(tmp);
	return r;
}

/* ---- MQTT ---------------------------------------------------------------------- */

static void pen_alert(struct dpair *p, const char *serial, const char *rule,
		      enum nl_payload_severity sev, enum nl_payload_action_result result,
		      const char *msg)
{
	if (!valid_serial(serial))
		return;
	raise_alert(p->d, serial,
		    &(struct alert_in){ .rule = rule,
					.severity = sev,
					.action = NL_PAYLOAD_ACTION_WARN,
					.result = result,
					.message = msg });
}

static void gw_alert(struct dpair *p, const char *rule, enum nl_payload_severity sev,
		     const char *msg)
{
	raise_gw_alert(p->d, rule, sev, msg);
}

/* ---- identity gate --------------------------------------------------------- */

static bool refused_before(struct dpair *p, const char *serial, const char *address)
{
	struct refused *r;

	for (r = p->refused; r; r = r->next)
		if (strcmp(r->serial, serial) == 0 && strcasecmp(r->address, address) == 0)
			return true;
	/* Beyond REFUSED_MAX pairs (a device cycling addresses), refused
	 * silently: the log and alerts already said what goes on. */
	if (p->n_refused >= REFUSED_MAX)
		return true;
	r = calloc(1, sizeof(*r));
	if (!r)
		return true; /* no memory: no alert rather than a flood */
	p->n_refused++;
	snprintf(r->serial, sizeof(r->serial), "%s", serial);
	snprintf(r->address, sizeof(r->address), "%s", address);
	r->next = p->refused;
	p->refused = r;
	return false;
}

static int gate(const char *serial, const char *address, bool bonded, void *user_data)
{
	struct dpair *p = user_data;
	struct bond *bs = serial[0] ? bond_by_serial(p, serial) : NULL;
	struct bond *ba = bond_by_address(p, address);
	char msg[256];
	int r;

	if (bs && strcasecmp(bs->address, address) == 0)
		return 0;
	if (bs) {
		/* The serial is bound to another pen: a spoofed serial. */
		if (!refused_before(p, serial, address)) {
			snprintf(msg, sizeof(msg),
				 "a device at %s advertises serial %s, which bonded as %s: refused",
				 address, serial, bs->address);
			log_pen_err(serial, "bluetooth: %s", msg);
			pen_alert(p, serial, "spoofed_serial", NL_PAYLOAD_SEVERITY_CRITICAL,
				  NL_PAYLOAD_RESULT_APPLIED, msg);
		}
		return -EPERM;
	}
	/* A bound address under another name passes: its Device Information
	 * serial is checked by the pen manager against what it advertised. */
	if (ba || !bonded || !serial[0] || !valid_serial(serial) || !valid_address(address) ||
	    !config_pen_allowed(p->d->cfg, serial))
		return 0;
	/* First bond of an allow-listed serial: bind it to this identity. */
	r = bond_add(p, serial, address);
	if (r < 0) {
		log_pen_err(serial, "bluetooth: cannot bind the identity: %s", strerror(-r));
		return 0;
	}
	r = bonds_save(p);
	if (r < 0) {
		log_pen_err(serial, "bluetooth: bonds file %s: %s (the binding holds until restart)",
			    p->path, strerror(-r));
	} else {
		log_pen_notice(serial, "bluetooth: bonded, identity address %s recorded in %s",
			       address, p->path);
	}
	snprintf(msg, sizeof(msg), "bonded; identity address %s bound to the serial", address);
	pen_alert(p, serial, "pen_bonded", NL_PAYLOAD_SEVERITY_INFO, NL_PAYLOAD_RESULT_APPLIED,
		  msg);
	return 0;
}

/* ---- notices --------------------------------------------------------------- */

static void pend_drop(struct dpair *p, const char *serial)
{
	for (struct pend **pp = &p->pend; *pp;) {
		struct pend *q = *pp;

		if (strcmp(q->serial, serial) == 0) {
			*pp = q->next;
			free(q);
		} else {
			pp = &q->next;
		}
	}
}

static struct pend *pend_find(struct dpair *p, const char *serial, bool confirm)
{
	for (struct pend *q = p->pend; q; q = q->next)
		if (strcmp(q->serial, serial) == 0 && q->confirm == confirm)
			return q;
	return NULL;
}

static void pend_add(struct dpair *p, const char *serial, bool confirm, uint32_t passkey)
{
	struct pend *q;

	pend_drop(p, serial);
	q = calloc(1, sizeof(*q));
	if (!q)
		return;
	snprintf(q->serial, sizeof(q->serial), "%s", serial);
	q->confirm = confirm;
	q->passkey = passkey;
	q->next = p->pend;
	p->pend = q;
}

/* The bonded serial of a removed device object ("/org/bluez/hciN/dev_AA_..."). */
static struct bond *bond_of_path(struct dpair *p, const char *path)
{
	const char *dev = strstr(path, "/dev_");
	char address[BOND_ADDR_MAX];

	if (!dev || strlen(dev + 5) < 17)
		return NULL;
	snprintf(address, sizeof(address), "%.17s", dev + 5);
	for (char *c = address; *c; c++)
		if (*c == '_')
			*c = ':';
	return bond_by_address(p, address);
}

static void on_notice(const struct transport_bluez_notice *n, void *user_data)
{
	struct dpair *p = user_data;
	const char *s = n->serial;
	char msg[256];

	switch (n->type) {
	case TRANSPORT_BLUEZ_NOTICE_BUS_LOST:
		log_err("bluetooth: system bus lost (%s): %s", n->detail, strerror(-n->err));
		snprintf(msg, sizeof(msg), "system D-Bus connection lost (%s); reconnecting",
			 n->detail);
		gw_alert(p, "bluetooth_bus_lost", NL_PAYLOAD_SEVERITY_CRITICAL, msg);
		break;
	case TRANSPORT_BLUEZ_NOTICE_BLUEZ_UP:
		if (n->err < 0) {
			log_warning("bluetooth: bluetoothd is up but its objects could not be read"
				    " (%s): %s", n->detail, strerror(-n->err));
			break;
		}
		log_notice("bluetooth: bluetoothd is up");
		if (p->bluez_gone)
			gw_alert(p, "bluetoothd_back", NL_PAYLOAD_SEVERITY_INFO,
				 "bluetoothd is back; pens reconnect by themselves");
		p->bluez_gone = false;
		break;
	case TRANSPORT_BLUEZ_NOTICE_BLUEZ_GONE:
		log_warning("bluetooth: bluetoothd left the bus; every pen link is lost");
		if (!p->bluez_gone)
			gw_alert(p, "bluetoothd_gone", NL_PAYLOAD_SEVERITY_CRITICAL,
				 "bluetoothd is gone: no pen can be reached until it is back");
		p->bluez_gone = true;
		/* Its agent requests went with it. */
		while (p->pend) {
			struct pend *q = p->pend;

			p->pend = q->next;
			free(q);
		}
		break;
	case TRANSPORT_BLUEZ_NOTICE_ADAPTER:
		log_notice("bluetooth: adapter %s%s%s", n->addr, n->detail[0] ? ": " : "",
			   n->detail);
		if (p->adapter_gone)
			gw_alert(p, "bluetooth_adapter_back", NL_PAYLOAD_SEVERITY_INFO,
				 "the Bluetooth adapter is back");
		p->adapter_gone = false;
		break;
	case TRANSPORT_BLUEZ_NOTICE_ADAPTER_GONE:
		log_warning("bluetooth: no usable adapter %s%s%s", n->addr,
			    n->detail[0] ? " " : "", n->detail);
		if (!p->adapter_gone) {
			snprintf(msg, sizeof(msg), "the Bluetooth adapter %s is gone",
				 n->detail[0] ? n->detail : n->addr);
			gw_alert(p, "bluetooth_adapter_gone", NL_PAYLOAD_SEVERITY_CRITICAL, msg);
		}
		p->adapter_gone = true;
		break;
	case TRANSPORT_BLUEZ_NOTICE_ADAPTER_POWER: {
		bool off = strcmp(n->detail, "off") == 0;

		log_notice("bluetooth: adapter %s powered %s", n->addr, n->detail);
		if (off && !p->adapter_off)
			gw_alert(p, "bluetooth_adapter_off", NL_PAYLOAD_SEVERITY_CRITICAL,
				 "the Bluetooth adapter was powered off");
		else if (!off && p->adapter_off)
			gw_alert(p, "bluetooth_adapter_on", NL_PAYLOAD_SEVERITY_INFO,
				 "the Bluetooth adapter is powered on again");
		p->adapter_off = off;
		break;
	}
	case TRANSPORT_BLUEZ_NOTICE_AGENT:
		if (n->err < 0)
			log_warning("bluetooth: pairing agent not registered (%s): %s; retrying",
				    n->detail, strerror(-n->err));
		else
			log_info("bluetooth: pairing agent registered");
		break;
	case TRANSPORT_BLUEZ_NOTICE_DISCOVERING:
		if (n->err < 0)
			log_warning("bluetooth: discovery %s: %s", n->detail, strerror(-n->err));
		else
			log_info("bluetooth: discovery %s", n->detail);
		break;
	case TRANSPORT_BLUEZ_NOTICE_PASSKEY_WANTED:
		log_pen_notice(s, "bluetooth: pairing %s: enter the passkey the pen shows"
			       " (needlelinkctl pair %s --passkey NNNNNN)", n->addr, s[0] ? s : "?");
		pend_add(p, s, false, 0);
		snprintf(msg, sizeof(msg), "pairing: enter the 6-digit passkey the pen shows"
			 " (request pair with params.passkey)");
		pen_alert(p, s, "pairing_passkey_wanted", NL_PAYLOAD_SEVERITY_WARNING,
			  NL_PAYLOAD_RESULT_PENDING, msg);
		break;
	case TRANSPORT_BLUEZ_NOTICE_CONFIRM_WANTED:
		if (strcmp(n->detail, "display") == 0) {
			/* The pen types the passkey we show. */
			log_pen_notice(s, "bluetooth: pairing %s: type %06" PRIu32 " on the pen",
				       n->addr, n->passkey);
			snprintf(msg, sizeof(msg), "pairing: type passkey %06" PRIu32 " on the pen",
				 n->passkey);
			pen_alert(p, s, "pairing_passkey_shown", NL_PAYLOAD_SEVERITY_WARNING,
				  NL_PAYLOAD_RESULT_PENDING, msg);
			break;
		}
		log_pen_notice(s, "bluetooth: pairing %s: does the pen show %06" PRIu32 "?"
			       " (needlelinkctl pair %s --confirm yes|no)", n->addr, n->passkey,
			       s[0] ? s : "?");
		pend_add(p, s, true, n->passkey);
		snprintf(msg, sizeof(msg), "pairing: confirm that the pen shows %06" PRIu32
			 " (request pair with params.confirm)", n->passkey);
		pen_alert(p, s, "pairing_confirm_wanted", NL_PAYLOAD_SEVERITY_WARNING,
			  NL_PAYLOAD_RESULT_PENDING, msg);
		break;
	case TRANSPORT_BLUEZ_NOTICE_PAIRING_DONE:
		pend_drop(p, s);
		if (n->err < 0) {
			log_pen_warning(s, "bluetooth: pairing %s failed: %s (%s)", n->addr,
					n->detail, strerror(-n->err));
			snprintf(msg, sizeof(msg), "pairing failed: %s", n->detail);
			pen_alert(p, s, "pairing_failed", NL_PAYLOAD_SEVERITY_WARNING,
				  NL_PAYLOAD_RESULT_FAILED, msg);
		} else {
			log_pen_notice(s, "bluetooth: pairing %s: %s", n->addr, n->detail);
			snprintf(msg, sizeof(msg), "pairing: %s; bonding", n->detail);
			pen_alert(p, s, "pairing_answered", NL_PAYLOAD_SEVERITY_INFO,
				  NL_PAYLOAD_RESULT_APPLIED, msg);
		}
		break;
	case TRANSPORT_BLUEZ_NOTICE_DEVICE_REMOVED: {
		struct bond *b = bond_of_path(p, n->addr);

		if (!b) {
			log_debug("bluetooth: device %s removed", n->addr);
			break;
		}
		/* The binding stays: the same pen may bond again, no other. */
		log_pen_warning(b->serial, "bluetooth: device %s of the bonded pen removed from"
				" bluetoothd; it must pair again", n->addr);
		pen_alert(p, b->serial, "pen_bond_removed", NL_PAYLOAD_SEVERITY_WARNING,
			  NL_PAYLOAD_RESULT_APPLIED,
			  "bluetoothd removed the bonded pen's device: it must pair again");
		break;
	}
	}
}

/* ---- module -------------------------------------------------------------- */

#define BLUEZ_MAIN_CONF "/etc/bluetooth/main.conf"

static int gatt_channels_cb(void *user, const char *section, const char *name,
			    const char *value)
{
	if (strcasecmp(section, "GATT") == 0 && strcasecmp(name, "Channels") == 0)
		*(long *)user = strtol(value, NULL, 10);
	return 1;
}

/* The pen's records are segmented over notifications that must arrive in
 * order; bluetoothd 5.66 with Enhanced ATT (its default: Channels = 3) hands
 * notifications of different bearers on in any order (protocol.md 6.1,
 * README "One ATT bearer"). Warn once at start when bluetoothd's
 * configuration does not say [GATT] Channels = 1. */
static void check_att_bearers(const char *path)
{
	long channels = 0; /* not set: bluetoothd's default, 3 */
	int r = ini_parse(path, gatt_channels_cb, &channels);

	if (r < 0) {
		log_warning("bluez: %s not readable: cannot check [GATT] Channels = 1 (one ATT"
			    " bearer keeps the pens' notifications in order)", path);
		return;
	}
	if (channels != 1)
		log_warning("bluez: %s does not set [GATT] Channels = 1: with Enhanced ATT"
			    " bearers bluetoothd may reorder the pens' notifications, and"
			    " records are then asked for again (README, \"One ATT bearer\")",
			    path);
	else
		log_info("bluez: %s: one ATT bearer ([GATT] Channels = 1)", path);
}

int dpair_new(struct daemon *d)
{
	struct dpair *p;
	const char *bonds;
	int r;

	p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	p->d = d;
	d->pair = p;
	if (!d->t || strcmp(transport_name(d->t), "bluez") != 0)
		return 0;
	p->bluez = true;
	check_att_bearers(BLUEZ_MAIN_CONF);
	bonds = config_str(d->cfg, CONFIG_BLUETOOTH_BONDS);
	if (bonds[0])
		p->path = strdup(bonds);
	else if (asprintf(&p->path, "%s.bonds", config_str(d->cfg, CONFIG_GATEWAY_JOURNAL)) < 0)
		p->path = NULL;
	if (!p->path)
		return -ENOMEM;
	r = bonds_load(p);
	if (r < 0)
		return r;
	r = transport_bluez_set_notice(d->t, on_notice, p);
	if (r == 0)
		r = transport_bluez_set_gate(d->t, gate, p);
	if (r == 0)
		r = transport_bluez_allow_just_works(d->t, config_bool(d->cfg,
								       CONFIG_BLUETOOTH_JUST_WORKS));
	if (r < 0) {
		log_err("bluetooth: transport hooks: %s", strerror(-r));
		return r;
	}
	log_info("bluetooth: Just Works pairing %s",
		 config_bool(d->cfg, CONFIG_BLUETOOTH_JUST_WORKS) ? "allowed (pens without a display)"
								  : "refused");
	return 0;
}

void dpair_free(struct daemon *d)
{
	struct dpair *p = d->pair;

	if (!p)
		return;
	if (p->bluez && d->t) {
		(void)transport_bluez_set_notice(d->t, NULL, NULL);
		(void)transport_bluez_set_gate(d->t, NULL, NULL);
	}
	while (p->bonds) {
		struct bond *b = p->bonds;

		p->bonds = b->next;
		free(b);
	}
	while (p->pend) {
		struct pend *q = p->pend;

		p->pend = q->next;
		free(q);
	}
	while (p->refused) {
		struct refused *r = p->refused;

		p->refused = r->next;
		free(r);
	}
	free(p->path);
	free(p);
	d->pair = NULL;
}

bool dpair_request(struct daemon *d, struct pending_req *pr)
{
	struct dpair *p = d->pair;
	cJSON *result;
	int r;

	if (pr->req.op != NL_PAYLOAD_OP_PAIR)
		return false;
	if (!p || !p->bluez) {
		reply_failed(d, pr, "wrong_transport", "pair",
			     "pairing needs the bluez transport; this gateway uses the simulator");
		goto out;
	}
	if (!config_pen_allowed(d->cfg, pr->serial)) {
		reply_failed(d, pr, "not_allowed", "pair", "the pen is not on the allow-list");
		goto out;
	}
	if (pr->req.u.pair.has_passkey) {
		if (!pend_find(p, pr->serial, false)) {
			reply_failed(d, pr, "nothing_pending", "pair",
				     "no passkey entry is pending for this pen");
			goto out;
		}
		r = transport_bluez_pair(d->t, pr->serial, pr->req.u.pair.passkey);
	} else {
		if (!pend_find(p, pr->serial, true)) {
			reply_failed(d, pr, "nothing_pending", "pair",
				     "no number comparison is pending for this pen");
			goto out;
		}
		r = transport_bluez_confirm(d->t, pr->serial, pr->req.u.pair.confirm);
	}
	if (r == -ENOENT) {
		reply_failed(d, pr, "nothing_pending", "pair",
			     "bluetoothd no longer waits for this pen");
		goto out;
	}
	if (r < 0) {
		char msg[96];

		snprintf(msg, sizeof(msg), "the transport refused it: %s", strerror(-r));
		reply_failed(d, pr, "pen_rejected", "pair", msg);
		goto out;
	}
	result = cJSON_CreateObject();
	if (!result || !cJSON_AddStringToObject(result, "answered",
						pr->req.u.pair.has_passkey ? "passkey" : "confirm")) {
		cJSON_Delete(result);
		reply_failed(d, pr, "pen_rejected", "pair", "out of memory");
		goto out;
	}
	reply_ok(d, pr, result);
out:
	pending_req_free(pr);
	return true;
}
