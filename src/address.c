/*
 * Parsing of listen and database addresses, and the network a client's
 * address belongs to. Pure: no lookups, no sockets; names are resolved
 * when they are used.
 */
#include "address.h"

#include <arpa/inet.h>
#include <stdint.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

static int
parse_port(const char *s, char *out, char *err, size_t errlen)
{
	unsigned long value = 0;
	size_t len = strlen(s);

	if (len == 0 || len > 5 || strspn(s, "0123456789") != len)
		goto bad;
	for (const char *p = s; *p; p++)
		value = value * 10 + (unsigned long)(*p - '0');
	if (value < 1 || value > 65535)
		goto bad;
	snprintf(out, 6, "%lu", value);
	return 0;
bad:
	/* Echo at most a few characters: enough to spot the typo. */
	snprintf(err, errlen,
		 "has an invalid port '%.8s': expected a number from 1 to 65535", s);
	return -1;
}

static int
set_host(struct address *out, const char *host, size_t len, char *err, size_t errlen)
{
	if (len == 0) {
		snprintf(err, errlen, "has no host before the port");
		return -1;
	}
	if (len >= sizeof(out->host)) {
		snprintf(err, errlen, "has a host longer than %zu characters",
			 sizeof(out->host) - 1);
		return -1;
	}
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)host[i];
		if (c <= ' ' || c >= 0x7f || c == '/' || c == '[' || c == ']') {
			snprintf(err, errlen, "has an invalid character in its host");
			return -1;
		}
	}
	memcpy(out->host, host, len);
	out->host[len] = '\0';
	return 0;
}

int
address_parse(const char *s, int port_required, struct address *out, char *err,
	      size_t errlen)
{
	const char *colon;
	size_t host_len;

	memset(out, 0, sizeof(*out));

	if (s[0] == '/') {
		/* "/run/postgresql:5433": libpq names its socket after the port. */
		size_t path_len = strlen(s);
		colon = strrchr(s, ':');
		if (colon && colon[1] != '\0' &&
		    strspn(colon + 1, "0123456789") == strlen(colon + 1)) {
			if (parse_port(colon + 1, out->port, err, errlen) < 0)
				return -1;
			path_len = (size_t)(colon - s);
		}
		if (path_len >= ADDRESS_PATH_MAX) {
			snprintf(err, errlen,
				 "is a socket path longer than %zu characters",
				 ADDRESS_PATH_MAX - 1);
			return -1;
		}
		out->is_unix = 1;
		memcpy(out->host, s, path_len);
		out->host[path_len] = '\0';
		return 0;
	}

	if (s[0] == '[') {
		const char *close = strchr(s, ']');
		const char *host = s + 1;
		if (close == NULL) {
			snprintf(err, errlen, "has an unterminated '[' in its IPv6 host");
			return -1;
		}
		host_len = (size_t)(close - host);
		if (close[1] != '\0' && close[1] != ':') {
			snprintf(err, errlen, "has text after ']' that is not ':port'");
			return -1;
		}
		colon = close[1] == ':' ? close + 1 : NULL;
		/* An IPv6 literal is the one host that may hold colons. */
		if (host_len == 0 ||
		    strspn(host, "0123456789abcdefABCDEF:.") < host_len) {
			snprintf(err, errlen, "has an invalid IPv6 address");
			return -1;
		}
		if (host_len >= sizeof(out->host)) {
			snprintf(err, errlen, "has an invalid IPv6 address");
			return -1;
		}
		memcpy(out->host, host, host_len);
		out->host[host_len] = '\0';
	} else {
		colon = strchr(s, ':');
		if (colon && strchr(colon + 1, ':')) {
			snprintf(
				err, errlen,
				"has more than one ':': write IPv6 hosts as [addr]:port");
			return -1;
		}
		host_len = colon ? (size_t)(colon - s) : strlen(s);
		if (set_host(out, s, host_len, err, errlen) < 0)
			return -1;
	}

	if (colon == NULL) {
		if (port_required) {
			snprintf(err, errlen,
				 "must be HOST:PORT or an absolute unix-socket path");
			return -1;
		}
		return 0;
	}
	return parse_port(colon + 1, out->port, err, errlen);
}

int
address_list_parse(const char *s, struct address_list *out, char *err, size_t errlen)
{
	/* An item: a socket path, or "[ipv6]:port", plus the NUL. */
	char item[ADDRESS_HOST_MAX + sizeof(":65535[]")];

	memset(out, 0, sizeof(*out));
	for (;;) {
		size_t len = strcspn(s, ",");

		if (len == 0) {
			snprintf(err, errlen, "has an empty host in its list");
			return -1;
		}
		if (out->count == ADDRESS_LIST_MAX) {
			snprintf(err, errlen, "lists more than %d hosts",
				 ADDRESS_LIST_MAX);
			return -1;
		}
		if (len >= sizeof(item)) {
			snprintf(err, errlen, "has a host longer than %zu characters",
				 (size_t)ADDRESS_HOST_MAX - 1);
			return -1;
		}
		memcpy(item, s, len);
		item[len] = '\0';
		if (address_parse(item, 0, &out->items[out->count], err, errlen) < 0)
			return -1;
		out->count++;
		if (s[len] == '\0')
			return 0;
		s += len + 1;
	}
}

int
address_list_is_local(const struct address_list *l)
{
	for (int i = 0; i < l->count; i++)
		if (!address_is_local(&l->items[i]))
			return 0;
	return l->count > 0;
}

int
address_is_local(const struct address *a)
{
	struct in_addr v4;
	struct in6_addr v6;

	if (a->is_unix || strcmp(a->host, "localhost") == 0)
		return 1;
	if (inet_pton(AF_INET, a->host, &v4) == 1)
		return (ntohl(v4.s_addr) >> 24) == 127;
	if (inet_pton(AF_INET6, a->host, &v6) != 1)
		return 0;
	if (IN6_IS_ADDR_LOOPBACK(&v6))
		return 1;
	return IN6_IS_ADDR_V4MAPPED(&v6) && v6.s6_addr[12] == 127;
}

static int
ipv4_private(uint32_t ip)
{
	return (ip >> 24) == 10 || (ip >> 20) == (172u << 4 | 1) ||
	       (ip >> 16) == (192u << 8 | 168);
}

int
address_is_private(const struct address *a)
{
	struct in_addr v4;
	struct in6_addr v6;

	if (address_is_local(a))
		return 1;
	if (inet_pton(AF_INET, a->host, &v4) == 1)
		return ipv4_private(ntohl(v4.s_addr));
	if (inet_pton(AF_INET6, a->host, &v6) != 1)
		return 0;
	if (IN6_IS_ADDR_V4MAPPED(&v6))
		return ipv4_private((uint32_t)v6.s6_addr[12] << 24 |
				    (uint32_t)v6.s6_addr[13] << 16 |
				    (uint32_t)v6.s6_addr[14] << 8 | v6.s6_addr[15]);
	return (v6.s6_addr[0] & 0xfe) == 0xfc; /* fc00::/7, unique local */
}

void
address_format(const struct address *a, char *buf, size_t size)
{
	if (a->port[0] == '\0')
		snprintf(buf, size, "%s", a->host);
	else if (a->is_unix)
		snprintf(buf, size, "%s:%s", a->host, a->port);
	else if (strchr(a->host, ':'))
		snprintf(buf, size, "[%s]:%s", a->host, a->port);
	else
		snprintf(buf, size, "%s:%s", a->host, a->port);
}

/* n is what snprintf into out returned: -1 and out "" when it did not fit. */
static int
set_network(char *out, size_t size, int n)
{
	if (n < 0 || (size_t)n >= size) {
		if (size > 0)
			out[0] = '\0';
		return -1;
	}
	return 0;
}

static int
format_ipv4_network(const unsigned char *a, char *out, size_t size)
{
	return set_network(out, size,
			   snprintf(out, size, "%u.%u.%u.0/24", a[0], a[1], a[2]));
}

int
address_network_prefix(const char *remote_addr, char *out, size_t size)
{
	struct in_addr v4;
	struct in6_addr v6;
	char text[INET6_ADDRSTRLEN];

	if (size > 0)
		out[0] = '\0';
	if (remote_addr == NULL)
		return -1;
	/* inet_pton takes only plain dotted quads and IPv6 text: no zone, no port. */
	if (inet_pton(AF_INET, remote_addr, &v4) == 1)
		return format_ipv4_network((const unsigned char *)&v4.s_addr, out, size);
	if (inet_pton(AF_INET6, remote_addr, &v6) != 1)
		return -1;
	/* A dual-stack socket's IPv4 client is the IPv4 network, not ::ffff:0:0/64. */
	if (IN6_IS_ADDR_V4MAPPED(&v6))
		return format_ipv4_network(v6.s6_addr + 12, out, size);
	memset(v6.s6_addr + 8, 0, 8);
	if (inet_ntop(AF_INET6, &v6, text, sizeof(text)) == NULL)
		return set_network(out, size, -1);
	return set_network(out, size, snprintf(out, size, "%s/64", text));
}
