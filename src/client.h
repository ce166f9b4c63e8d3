/*
 * Where a request came from, as baa records it with a session or an audit
 * event: a device label from a fixed vocabulary (device.c) and the
 * client's network, a /24 or /64 (address.c), never the User-Agent or the
 * address themselves.
 */
#ifndef BAA_CLIENT_H
#define BAA_CLIENT_H

#define CLIENT_DEVICE_MAX 47
#define CLIENT_NETWORK_MAX 49 /* "ffff:ffff:ffff:ffff::/64", and room */

struct client {
	char device[CLIENT_DEVICE_MAX + 1];
	char network[CLIENT_NETWORK_MAX + 1]; /* "" when unknown */
};

#endif
