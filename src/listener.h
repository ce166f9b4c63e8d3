/*
 * The listening socket the master binds and its workers share.
 */
#ifndef BAA_LISTENER_H
#define BAA_LISTENER_H

#include <stddef.h>
#include <sys/types.h>

#include "address.h"

/*
 * Binds and listens on a (TCP or unix socket), non-blocking so that a
 * worker that loses the race for a connection goes back to waiting.
 * io_timeout (seconds, 0 for none) bounds each read and write on accepted
 * TCP connections.
 * Returns the descriptor, or -1 with the reason in err.
 */
int listener_open(const struct address *a, int io_timeout, char *err, size_t errlen);

/* SO_RCVTIMEO and SO_SNDTIMEO of seconds on fd (0: unbounded); 0 or -1. */
int listener_bound_io(int fd, int seconds);

/*
 * Gives a unix socket's file to the user the server is about to become,
 * so that it can still remove the file at exit (in a sticky directory such
 * as /tmp only the owner may; elsewhere the directory must be writable by
 * that user). Nothing to do for TCP. Returns 0, or -1 with the reason.
 */
int listener_set_owner(const struct address *a, uid_t uid, gid_t gid, char *err,
		       size_t errlen);

/* Closes fd and removes a unix socket's file, so new connects fail fast. */
void listener_close(int fd, const struct address *a);

#endif
