/*
 * Network addresses as operators write them in the environment:
 * "host:port", "[ipv6]:port" or an absolute unix-socket path; and a
 * client's address reduced to its network, for the sessions list.
 */
#ifndef BAA_ADDRESS_H
#define BAA_ADDRESS_H

#include <stddef.h>
#include <sys/un.h>

#define ADDRESS_HOST_MAX 256
#define ADDRESS_PATH_MAX sizeof(((struct sockaddr_un *)0)->sun_path)

struct address {
	int is_unix;
	char host[ADDRESS_HOST_MAX]; /* unbracketed; the socket path when is_unix */
	char port[6];		     /* digits, 1-65535; empty when absent */
};

/*
 * Parses s into out. port_required: "host" alone is an error. Returns 0, or
 * -1 with a message that completes "Environment variable 'X' ..." in err.
 */
int address_parse(const char *s, int port_required, struct address *out, char *err,
		  size_t errlen);

/* A database's hosts, as libpq takes them: the first that answers as asked. */
#define ADDRESS_LIST_MAX 8

struct address_list {
	int count;
	struct address items[ADDRESS_LIST_MAX];
};

/*
 * Parses "host1:5432,host2:5432" (each item as address_parse with the port
 * optional) into out. Returns 0, or -1 with a message that completes
 * "Environment variable 'X' ..." in err.
 */
int address_list_parse(const char *s, struct address_list *out, char *err, size_t errlen);

/* 1 when every address of l is on this machine (address_is_local). */
int address_list_is_local(const struct address_list *l);

/*
 * 1 when a is on this machine without crossing a network: a unix socket,
 * "localhost", an IPv4 address of 127.0.0.0/8, ::1 or an IPv4-mapped
 * 127.0.0.0/8. Any other name is 0: what it resolves to is not known here.
 */
int address_is_local(const struct address *a);

/*
 * 1 when a is local (address_is_local) or a private network's address:
 * IPv4 10/8, 172.16/12, 192.168/16 (IPv4-mapped too) or IPv6 fc00::/7.
 * Names other than "localhost" are 0.
 */
int address_is_private(const struct address *a);

/* Formats an address back for logs: "127.0.0.1:9000", "[::1]:9000", "/run/x.sock". */
void address_format(const struct address *a, char *buf, size_t size);

/* Room for a network prefix: "ffff:ffff:ffff:ffff::/64" is the longest. */
#define ADDRESS_NETWORK_MAX 32

/*
 * The network a client's address belongs to, as PostgreSQL's cidr reads
 * it: an IPv4 address's /24 ("203.0.113.0/24"), an IPv6 address's /64 in
 * canonical text ("2001:db8:1:2::/64"), an IPv4-mapped IPv6 address's IPv4
 * /24. Anything else (NULL, "", "unix:", a zone id, a port, blanks) is -1
 * with out set to "", as is an out smaller than the text; 0 otherwise.
 */
int address_network_prefix(const char *remote_addr, char *out, size_t size);

#endif
