/*
 * What a Spotify client holds between calls: the configuration, the libcurl
 * easy handle (its connections and TLS sessions are kept from call to call)
 * and the buffers of the answer being read. A worker has one, made by
 * spotify_init; a test may make its own and spotify_use it. Apart from
 * spotify.h so that the callers of the calls need no libcurl header.
 */
#ifndef BAA_SPOTIFY_CLIENT_H
#define BAA_SPOTIFY_CLIENT_H

#include <stddef.h>

#include <curl/curl.h>

#include "config.h"
#include "spotify.h"

#define SPOTIFY_BODY_MAX 65536

struct spotify_client {
	const struct config *cfg;
	CURL *curl;
	char body[SPOTIFY_BODY_MAX + 1];
	size_t body_len;
	/* libcurl's words on the last failure (CURLOPT_ERRORBUFFER): no secrets. */
	char error_text[CURL_ERROR_SIZE];
};

/* 0, or -1 when libcurl could not make a handle; cleanup is then safe. */
int spotify_client_init(struct spotify_client *client, const struct config *cfg);
void spotify_client_cleanup(struct spotify_client *client);

/*
 * Makes client the one the calls of spotify.h use, until the next
 * spotify_use or spotify_init; returns the one used before.
 */
struct spotify_client *spotify_use(struct spotify_client *client);

#endif
