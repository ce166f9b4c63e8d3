/*
 * The master process of `baa serve`: binds, preforks and supervises.
 */
#ifndef BAA_MASTER_H
#define BAA_MASTER_H

#include "config.h"
#include "privileges.h"

/*
 * Serves until SIGTERM or SIGINT. Returns the process exit status.
 * Binds first, then drops privileges as planned in privs, then forks.
 * SIGHUP replaces the workers one by one; a worker that dies is replaced,
 * with a growing delay when workers keep dying young.
 */
int master_run(const struct config *cfg, const struct privileges *privs);

#endif
