/*
 * Network addresses as operators write them in the environment:
 * "host:port", "[ipv6]:port" or an absolute unix-socket path.
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

/* Formats an address back for logs: "127.0.0.1:9000", "[::1]:9000", "/run/x.sock". */
void address_format(const struct address *a, char *buf, size_t size);

#endif
