/*
 * A worker process: accepts FastCGI requests on the shared socket and
 * answers them one at a time until told to stop.
 */
#ifndef BAA_WORKER_H
#define BAA_WORKER_H

#include "config.h"

/*
 * Runs the accept loop on listen_fd and, unless it is -1, internal_fd
 * (BAA_INTERNAL_LISTEN: backend services' connections, which get the
 * internal routes only). Called in a freshly forked child
 * with SIGTERM, SIGINT and SIGHUP blocked (as the master forks); slot is
 * the worker's entry in the spread table (spread.h). Returns the process
 * exit status.
 */
int worker_run(const struct config *cfg, int listen_fd, int internal_fd, int slot);

#endif
