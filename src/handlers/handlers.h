/*
 * Route handlers, one file per group of routes.
 */
#ifndef BAA_HANDLERS_H
#define BAA_HANDLERS_H

#include "../router.h"

/* health.c */
route_handler health_live, health_ready;

#endif
