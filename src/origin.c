/*
 * Origin parsing and the same-origin check for state-changing requests.
 * Pure: no lookups. Hosts are compared as text, after the normalisation
 * browsers apply before they send Origin (lowercase, default port
 * dropped, IPv6 in canonical form), so baa's configured URL and a
 * browser's header meet in the same spelling.
 */
#include "origin.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

struct origin_scheme {
	const char *prefix;
	const char *name;
	unsigned long default_port;
};

static const struct origin_scheme schemes[] = {
	{"http://", "http", 80},
	{"https://", "https", 443},
};

/* A host name's bytes: letters, digits, '-', '.', '_' (some DNS names). */
static int
is_host_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_';
}

/* "[v6]" into host (canonical, bracketed); returns the length read, or 0. */
static size_t
parse_ipv6_host(const char *s, size_t len, char *host, size_t size)
{
	const char *close = memchr(s, ']', len);
	char text[INET6_ADDRSTRLEN];
	struct in6_addr addr;
	size_t inner;

	if (close == NULL)
		return 0;
	inner = (size_t)(close - s) - 1;
	if (inner == 0 || inner >= sizeof(text))
		return 0;
	memcpy(text, s + 1, inner);
	text[inner] = '\0';
	/* inet_pton refuses zone ids ("fe80::1%25eth0"), which origins never have. */
	if (inet_pton(AF_INET6, text, &addr) != 1 ||
	    inet_ntop(AF_INET6, &addr, text, sizeof(text)) == NULL)
		return 0;
	snprintf(host, size, "[%s]", text);
	return inner + 2;
}

/* A name into host, lowercased; returns the length read, or 0. */
static size_t
parse_name_host(const char *s, size_t len, char *host)
{
	size_t n = 0;

	while (n < len && s[n] != ':') {
		if (!is_host_char(s[n]) || n == ORIGIN_HOST_MAX)
			return 0;
		host[n] = (char)(s[n] >= 'A' && s[n] <= 'Z' ? s[n] - 'A' + 'a' : s[n]);
		n++;
	}
	host[n] = '\0';
	return n;
}

/* ":digits" (1-65535) into *port; s[0..len) is all that follows the host. */
static int
parse_port(const char *s, size_t len, unsigned long *port)
{
	*port = 0;
	if (len == 0)
		return 0;
	if (s[0] != ':' || len < 2 || len > 6)
		return -1;
	for (size_t i = 1; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		*port = *port * 10 + (unsigned long)(s[i] - '0');
	}
	return *port >= 1 && *port <= 65535 ? 0 : -1;
}

static const struct origin_scheme *
find_scheme(const char *url)
{
	for (size_t i = 0; url && i < sizeof(schemes) / sizeof(schemes[0]); i++)
		if (strncasecmp(url, schemes[i].prefix, strlen(schemes[i].prefix)) == 0)
			return &schemes[i];
	return NULL;
}

/* origin_of_url, and in *rest what follows the authority. */
static int
parse_origin(const char *url, char *out, size_t size, const char **rest)
{
	const struct origin_scheme *scheme = find_scheme(url);
	char host[ORIGIN_HOST_MAX + 1];
	const char *authority;
	size_t len, host_len;
	unsigned long port;
	char port_text[8] = "";
	int n;

	if (size > 0)
		out[0] = '\0';
	if (scheme == NULL)
		return -1;
	authority = url + strlen(scheme->prefix);
	len = strcspn(authority, "/?#");
	host_len = authority[0] == '['
			   ? parse_ipv6_host(authority, len, host, sizeof(host))
			   : parse_name_host(authority, len, host);
	/* No host, or userinfo ("user@host"), or anything but a port after it. */
	if (host_len == 0 || parse_port(authority + host_len, len - host_len, &port) < 0)
		return -1;
	if (port != 0 && port != scheme->default_port)
		snprintf(port_text, sizeof(port_text), ":%lu", port);
	n = snprintf(out, size, "%s://%s%s", scheme->name, host, port_text);
	if (n < 0 || (size_t)n >= size) {
		if (size > 0)
			out[0] = '\0';
		return -1;
	}
	*rest = authority + len;
	return 0;
}

int
origin_of_url(const char *url, char *out, size_t size)
{
	const char *rest;

	return parse_origin(url, out, size, &rest);
}

int
origin_allows(const char *sec_fetch_site, const char *origin, const char *site_origin)
{
	char got[ORIGIN_MAX], want[ORIGIN_MAX];
	const char *rest;

	if (sec_fetch_site != NULL)
		return strcmp(sec_fetch_site, "same-origin") == 0 ||
		       strcmp(sec_fetch_site, "none") == 0;
	if (origin == NULL)
		return 1;
	/* "null" (a sandboxed frame, a file: page, some redirects) has no scheme. */
	if (parse_origin(origin, got, sizeof(got), &rest) < 0 || *rest != '\0')
		return 0;
	if (origin_of_url(site_origin, want, sizeof(want)) < 0)
		return 0;
	return strcmp(got, want) == 0;
}
