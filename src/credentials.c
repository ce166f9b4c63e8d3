/*
 * systemd credentials: $CREDENTIALS_DIRECTORY/NAME, read once at start.
 */
#include "credentials.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/*
 * The values read, reachable for the life of the process (the
 * configuration points into them). Slots fill in order and are never
 * emptied, so a name's slot is its own or the first unused one; a name
 * read again replaces its value.
 */
static struct {
	const char *name;
	char *value;
} held[8];

static int
hold(const char *name, char *value)
{
	for (size_t i = 0; i < sizeof(held) / sizeof(held[0]); i++) {
		if (held[i].name == NULL || strcmp(held[i].name, name) == 0) {
			free(held[i].value);
			held[i].name = name;
			held[i].value = value;
			return 0;
		}
	}
	return -1;
}

int
credential_read(const char *name, const char **value, char *err, size_t errlen)
{
	const char *dir = getenv("CREDENTIALS_DIRECTORY");
	/* One byte more than allowed tells a file that is too large. */
	char path[4096], buf[CREDENTIAL_MAX_BYTES + 2], *copy;
	int status = -1, read_errno;
	size_t len;
	FILE *f;

	if (dir == NULL || dir[0] == '\0')
		return 0;
	if ((size_t)snprintf(path, sizeof(path), "%s/%s", dir, name) >= sizeof(path)) {
		snprintf(err, errlen, "has a path longer than %zu characters",
			 sizeof(path) - 1);
		return -1;
	}
	f = fopen(path, "rbe");
	if (f == NULL && errno == ENOENT)
		return 0;
	if (f == NULL) {
		snprintf(err, errlen, "cannot be read (%s)", strerror(errno));
		return -1;
	}
	/* Unbuffered: stdio's own buffer would keep a copy of the secret
	 * that fclose frees without wiping. */
	setvbuf(f, NULL, _IONBF, 0);
	len = fread(buf, 1, CREDENTIAL_MAX_BYTES + 1, f);
	read_errno = ferror(f) ? errno : 0;
	fclose(f);
	if (read_errno != 0) {
		snprintf(err, errlen, "cannot be read (%s)", strerror(read_errno));
		goto out;
	}
	if (len > CREDENTIAL_MAX_BYTES) {
		snprintf(err, errlen, "is larger than %d bytes", CREDENTIAL_MAX_BYTES);
		goto out;
	}
	/* Files written with echo or an editor end in a newline; the secret does not. */
	if (len > 0 && buf[len - 1] == '\n') {
		len--;
		if (len > 0 && buf[len - 1] == '\r')
			len--;
	}
	buf[len] = '\0';
	if (memchr(buf, '\0', len) != NULL) {
		snprintf(err, errlen, "holds a NUL byte");
		goto out;
	}
	copy = strdup(buf);
	if (copy == NULL || hold(name, copy) < 0) {
		free(copy);
		snprintf(err, errlen, "cannot be kept (out of memory)");
		goto out;
	}
	*value = copy;
	status = 1;
out:
	explicit_bzero(buf, sizeof(buf));
	return status;
}
