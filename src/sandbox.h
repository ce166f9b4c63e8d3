/*
 * The worker's seccomp sandbox. Once a worker has set up (its libcurl
 * handle, its epoll set, its database subscriptions), it may only make the
 * system calls it needs to serve requests, reconnect to PostgreSQL, reach
 * Spotify and log. A call outside the list kills the worker with SIGSYS,
 * after one line event=sandbox_violation; the master replaces it.
 */
#ifndef BAA_SANDBOX_H
#define BAA_SANDBOX_H

#include "config.h"

/*
 * Sets no_new_privs and installs the allow-list, unless BAA_SANDBOX is
 * off. Returns 0, or -1 (and logs why) when the filter could not be
 * installed: the caller must not serve without it.
 */
int sandbox_enter(const struct config *cfg);

#endif
