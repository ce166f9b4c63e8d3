/*
 * `baa rotate-keys`: every stored token sealed again under the current
 * token key, so that an old key can be dropped from BAA_TOKEN_KEY.
 */
#ifndef BAA_ROTATE_H
#define BAA_ROTATE_H

#include <stdio.h>

#include "config.h"

/*
 * Walks the users table in batches, each its own transaction. Prints the
 * counts on out. Returns 0 when every token is now under the current key,
 * 1 when some could not be decrypted (their rows are left as they were),
 * -1 when the database failed (err says so; batches done stay done).
 */
int rotate_keys(const struct config *cfg, FILE *out, char *err, size_t errlen);

#endif
