/*
 * The listening socket the master binds and its workers share.
 */
#ifndef BAA_LISTENER_H
#define BAA_LISTENER_H

#include <stddef.h>

#include "address.h"

/*
 * Binds and listens on a (TCP or unix socket), non-blocking so that a
 * worker that loses the race for a connection goes back to waiting.
 * io_timeout (seconds, 0 for none) bounds each read and write on accepted
 * TCP connections.
 * Returns the descriptor, or -1 with the reason in err.
 */
int listener_open(const struct address *a, int io_timeout, char *err, size_t errlen);

/* Closes fd and removes a unix socket's file, so new connects fail fast. */
void listener_close(int fd, const struct address *a);

#endif
