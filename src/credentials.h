/*
 * Secrets handed over as systemd credentials (LoadCredential=,
 * LoadCredentialEncrypted=): a file per variable in $CREDENTIALS_DIRECTORY,
 * readable by the service alone. Unlike the environment, they are not in
 * /proc/PID/environ for the service's user to read, nor inherited by
 * anything it starts.
 */
#ifndef BAA_CREDENTIALS_H
#define BAA_CREDENTIALS_H

#include <stddef.h>

/* A credential's largest size: a secret, not a document. */
#define CREDENTIAL_MAX_BYTES 4096

/*
 * Reads the credential called name, without one trailing newline, into
 * *value (allocated, kept for the life of the process). Returns 1 when it
 * was read; 0 when there is none (no CREDENTIALS_DIRECTORY, or no such file
 * in it); -1 with a message that completes "Credential 'NAME' ..." in err.
 * The value is never part of a message. name is kept: a string that lives
 * as long as the process (config.c passes its table's literals).
 */
int credential_read(const char *name, const char **value, char *err, size_t errlen);

#endif
