/*
 * systemd credentials: $CREDENTIALS_DIRECTORY/NAME, read once at start.
 */
#include "credentials.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Reads all of fd into buf (size bytes at most); returns the length or -1. */
static ssize_t
read_all(int fd, char *buf, size_t size)
{
	size_t len = 0;

	while (len < size) {
		ssize_t n = read(fd, buf + len, size - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		if (n == 0)
			break;
		len += (size_t)n;
	}
	return (ssize_t)len;
}

/*
 * The values read, reachable for the life of the process (the
 * configuration points into them); a name read again replaces its value.
 */
static struct {
	char name[32];
	char *value;
} held[8];

static int
hold(const char *name, char *value)
{
	size_t free_slot = sizeof(held) / sizeof(held[0]);

	for (size_t i = 0; i < sizeof(held) / sizeof(held[0]); i++) {
		if (strcmp(held[i].name, name) == 0) {
			free(held[i].value);
			held[i].value = value;
			return 0;
		}
		if (held[i].name[0] == '\0' &&
		    free_slot == sizeof(held) / sizeof(held[0]))
			free_slot = i;
	}
	if (free_slot == sizeof(held) / sizeof(held[0]) ||
	    strlen(name) >= sizeof(held[0].name))
		return -1;
	snprintf(held[free_slot].name, sizeof(held[0].name), "%s", name);
	held[free_slot].value = value;
	return 0;
}

int
credential_read(const char *name, const char **value, char *err, size_t errlen)
{
	const char *dir = getenv("CREDENTIALS_DIRECTORY");
	char path[4096], *buf, *value_copy;
	ssize_t len;
	int fd;

	if (dir == NULL || dir[0] == '\0')
		return 0;
	if ((size_t)snprintf(path, sizeof(path), "%s/%s", dir, name) >= sizeof(path)) {
		snprintf(err, errlen, "has a path longer than %zu characters",
			 sizeof(path) - 1);
		return -1;
	}
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 && errno == ENOENT)
		return 0;
	if (fd < 0) {
		snprintf(err, errlen, "cannot be read (%s)", strerror(errno));
		return -1;
	}
	/* One byte more than allowed tells a file that is too large. */
	buf = malloc(CREDENTIAL_MAX_BYTES + 2);
	if (buf == NULL) {
		close(fd);
		snprintf(err, errlen, "cannot be read (out of memory)");
		return -1;
	}
	len = read_all(fd, buf, CREDENTIAL_MAX_BYTES + 1);
	close(fd);
	if (len < 0 || len > CREDENTIAL_MAX_BYTES) {
		if (len < 0)
			snprintf(err, errlen, "cannot be read (%s)", strerror(errno));
		else
			snprintf(err, errlen, "is larger than %d bytes",
				 CREDENTIAL_MAX_BYTES);
		free(buf);
		return -1;
	}
	/* Files written with echo or an editor end in a newline; the secret does not. */
	if (len > 0 && buf[len - 1] == '\n') {
		len--;
		if (len > 0 && buf[len - 1] == '\r')
			len--;
	}
	buf[len] = '\0';
	if (memchr(buf, '\0', (size_t)len) != NULL) {
		snprintf(err, errlen, "holds a NUL byte");
		free(buf);
		return -1;
	}
	value_copy = strdup(buf);
	explicit_bzero(buf, (size_t)len);
	free(buf);
	if (value_copy == NULL || hold(name, value_copy) < 0) {
		free(value_copy);
		snprintf(err, errlen, "cannot be kept (out of memory)");
		return -1;
	}
	*value = value_copy;
	return 1;
}
