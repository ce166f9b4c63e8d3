/*
 * Web origins (scheme, host, port), and the rule that keeps other sites
 * from making a user's browser POST or DELETE to baa (cross-site request
 * forgery): Sec-Fetch-Site or Origin must say the request came from baa's
 * own pages.
 */
#ifndef BAA_ORIGIN_H
#define BAA_ORIGIN_H

#include <stddef.h>

/* A host name's longest, in DNS. */
#define ORIGIN_HOST_MAX 253

/* Room for any origin: "https://" + host + ":65535" + NUL. */
#define ORIGIN_MAX (sizeof("https://") - 1 + ORIGIN_HOST_MAX + sizeof(":65535"))

/*
 * The origin of an absolute http or https URL, serialised as browsers send
 * it in Origin: "scheme://host[:port]", scheme and host lowercased, the
 * scheme's default port (80, 443) left out, an IPv6 literal in brackets
 * in canonical text. Path, query and fragment are dropped. Anything else
 * (another scheme, a relative URL, userinfo, an empty or invalid host or
 * port, a zone id, non-ASCII) is -1 with out set to "", as is an out too
 * small for the origin; 0 otherwise.
 */
int origin_of_url(const char *url, char *out, size_t size);

/*
 * Whether a POST or DELETE may proceed: 1 allow, 0 refuse. With a
 * Sec-Fetch-Site header (non-NULL), only "same-origin" and "none" (the
 * user's own navigation) are allowed; "same-site" is refused, a sibling
 * subdomain being another origin. Without one, an Origin header must be
 * site_origin's origin (both normalised as origin_of_url does; nothing
 * may follow the port; "null" is refused). Without either, the client is
 * no browser, which no other site can drive: allowed.
 */
int origin_allows(const char *sec_fetch_site, const char *origin,
		  const char *site_origin);

#endif
