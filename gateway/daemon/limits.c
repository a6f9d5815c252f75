/* SPDX-License-Identifier: MIT */
/* Session authorisation and enforcement: not wired yet (issue #5). */
#include <stdbool.h>

#include "daemon-internal.h"

int dlimits_new(struct daemon *d)
{
	(void)d;
	return 0;
}

void dlimits_free(struct daemon *d)
{
	(void)d;
}

bool dlimits_request(struct daemon *d, struct pending_req *pr)
{
	if (pr->req.op != NL_PAYLOAD_OP_AUTHORISE)
		return false;
	reply_failed(d, pr, "not_implemented", "evaluate",
		     "authorise is not implemented yet: it comes with the limits engine");
	pending_req_free(pr);
	return true;
}

void dlimits_record(struct daemon *d, const char *serial, const struct nl_record *rec,
		    const char *record_id)
{
	(void)d, (void)serial, (void)rec, (void)record_id;
}

void dlimits_live(struct daemon *d, const char *serial, const struct nl_live *live)
{
	(void)d, (void)serial, (void)live;
}

void dlimits_link(struct daemon *d, const char *serial, enum penmgr_state from,
		  enum penmgr_state to)
{
	(void)d, (void)serial, (void)from, (void)to;
}
