/*
 * GET /auth: nginx's auth_request asks, before serving another
 * application's location, who the request's session is. 204 with the user
 * in X-Baa-User-Id, X-Baa-Spotify-Id and (once Spotify has told it)
 * X-Baa-Account-Id, which nginx hands to that application (percent-encoded
 * where a byte could not go in a header); 401 otherwise.
 * It takes GET /me's path: the session and profile from the worker's
 * cache, no query when both are cached, nothing allocated.
 *
 * The session slides here as on any other route, and a session that
 * ended has its cookie cleared: a user who only ever visits protected
 * locations would otherwise find the cookie expired after BAA_SESSION_TTL
 * while its row had been kept alive all along, or keep sending a dead one.
 * The shipped site passes those cookies to the browser (auth_request_set +
 * add_header), which takes one header name per cookie: nginx 1.22 hands on
 * only the first of several Set-Cookie lines, later releases join them
 * with "; " into one line that a browser reads as one cookie (whose
 * Max-Age=0 would then clear the session just issued). So /auth numbers
 * them, X-Baa-Set-Cookie-1 and -2 (a session's cookie, and the first
 * format's cleared when the request still sent it); never more.
 *
 * A 401 for a browser's navigation also says where to log in, in
 * X-Baa-Login: /login?next=<the protected URI>, encoded here with the
 * rules /login checks next by, so nginx only has to redirect to it.
 */
#include "handlers.h"

#include <stdio.h>
#include <string.h>

/* "/login?next=" and a next of SESSION_NEXT_MAX bytes, each encoded. */
#define LOGIN_URL_MAX (sizeof("/login?next=") + 3 * SESSION_NEXT_MAX)

/*
 * A browser loading a page, which is better sent to the login than shown
 * a 401: Sec-Fetch-Mode says so where browsers send it (as /callback
 * decides); without it (older browsers), an Accept that asks for HTML.
 * fetch() and other programs keep the 401.
 */
static int
is_navigation(const struct request *req)
{
	if (req->sec_fetch_mode != NULL)
		return strcmp(req->sec_fetch_mode, "navigate") == 0;
	return req->accept != NULL && strstr(req->accept, "text/html") != NULL;
}

/* RFC 3986's unreserved bytes: what a query parameter carries as it is. */
static int
is_unreserved(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
	       (c >= '0' && c <= '9') || (c != '\0' && strchr("-._~", c) != NULL);
}

/* Visible ASCII but '%': what a header value carries as it is. */
static int
is_plain_header_byte(unsigned char c)
{
	return c > ' ' && c < 0x7f && c != '%';
}

/* in with every byte keep refuses as %XX; out holds 3 * strlen(in) + 1. */
static size_t
percent_encode(const char *in, int (*keep)(unsigned char), char *out)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t n = 0;

	for (const unsigned char *c = (const unsigned char *)in; *c; c++) {
		if (keep(*c)) {
			out[n++] = (char)*c;
			continue;
		}
		out[n++] = '%';
		out[n++] = hex[*c >> 4];
		out[n++] = hex[*c & 15];
	}
	out[n] = '\0';
	return n;
}

/*
 * /login?next=<uri> with uri percent-encoded (all but RFC 3986's
 * unreserved bytes), or plain /login when uri is not a path /login would
 * take back (not local, too long, absent).
 */
static void
login_url(const char *uri, char *out, size_t size)
{
	size_t n = (size_t)snprintf(out, size, "/login");

	if (uri == NULL || !session_is_local_path(uri) || size < LOGIN_URL_MAX)
		return;
	n += (size_t)snprintf(out + n, size - n, "?next=");
	percent_encode(uri, is_unreserved, out + n);
}

/*
 * value as a header may carry it: every byte outside visible ASCII
 * (0x21-0x7e), and '%' itself so that the application can decode it back,
 * as %XX. Spotify's ids are plain, so they pass unchanged; a stored byte
 * could otherwise end the header or start another (CR, LF) at the
 * application behind nginx. out holds 3 * strlen(value) + 1 bytes.
 */
static void
header_encode(const char *value, char *out)
{
	percent_encode(value, is_plain_header_byte, out);
}

static void
refused(const struct request *req, struct response *res)
{
	char url[LOGIN_URL_MAX];

	if (!is_navigation(req))
		return;
	login_url(req->request_uri, url, sizeof(url));
	response_header(res, "X-Baa-Login", url);
}

void
auth_request_check(const struct request *req, struct response *res)
{
	static struct current cur;
	const struct user_profile *profile = &cur.profile;
	char id[24], encoded[3 * SPOTIFY_ID_MAX + 1];

	res->cookie_header_prefix = "X-Baa-Set-Cookie-";
	if (current_require(req, res, &cur, 1) < 0) {
		if (res->status == 401)
			refused(req, res);
		return;
	}
	snprintf(id, sizeof(id), "%lld", profile->id);
	response_no_content(res);
	response_header(res, "X-Baa-User-Id", id);
	header_encode(profile->spotify_id, encoded);
	response_header(res, "X-Baa-Spotify-Id", encoded);
	if (profile->account_id[0] != '\0') {
		header_encode(profile->account_id, encoded);
		response_header(res, "X-Baa-Account-Id", encoded);
	}
}
