/*
 * Socket set-up for `baa serve`. A unix socket file left by a crashed
 * instance is replaced; one that a live instance answers on is not.
 */
#include "listener.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#define LISTEN_BACKLOG 4096

static int
open_unix(const struct address *a, char *err, size_t errlen)
{
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	struct stat st;
	mode_t old_mask;
	int fd, bound;

	/* address_parse bounded the path to sun_path already. */
	if (strlen(a->host) >= sizeof(sun.sun_path)) {
		snprintf(err, errlen, "socket path too long");
		return -1;
	}
	memcpy(sun.sun_path, a->host, strlen(a->host) + 1);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		goto fail;
	if (lstat(a->host, &st) == 0) {
		if (!S_ISSOCK(st.st_mode)) {
			snprintf(err, errlen, "%s exists and is not a socket", a->host);
			close(fd);
			return -1;
		}
		if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == 0) {
			snprintf(err, errlen, "%s: another server is listening there",
				 a->host);
			close(fd);
			return -1;
		}
		close(fd);
		unlink(a->host);
		fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd < 0)
			goto fail;
	}
	/*
	 * Who may connect is decided by the permissions of the socket's
	 * directory, as for any unix-socket service behind a web server: the
	 * file itself is 0666. It gets that mode as bind creates it (the
	 * process is single-threaded here), rather than from a chmod of the
	 * path afterwards, which could follow a symlink swapped in meanwhile.
	 */
	old_mask = umask(0111);
	bound = bind(fd, (struct sockaddr *)&sun, sizeof(sun));
	umask(old_mask);
	if (bound < 0 || listen(fd, LISTEN_BACKLOG) < 0)
		goto fail;
	return fd;
fail:
	snprintf(err, errlen, "%s: %s", a->host, strerror(errno));
	if (fd >= 0)
		close(fd);
	return -1;
}

static int
open_tcp(const struct address *a, char *err, size_t errlen)
{
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE};
	struct addrinfo *list = NULL;
	int fd = -1, one = 1, rc;

	rc = getaddrinfo(a->host, a->port, &hints, &list);
	if (rc != 0) {
		snprintf(err, errlen, "%s: %s", a->host, gai_strerror(rc));
		return -1;
	}
	fd = socket(list->ai_family, list->ai_socktype | SOCK_CLOEXEC, list->ai_protocol);
	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    bind(fd, list->ai_addr, list->ai_addrlen) < 0 ||
	    listen(fd, LISTEN_BACKLOG) < 0) {
		char where[300];
		address_format(a, where, sizeof(where));
		snprintf(err, errlen, "%s: %s", where, strerror(errno));
		if (fd >= 0)
			close(fd);
		fd = -1;
	}
	freeaddrinfo(list);
	return fd;
}

/*
 * Bounds every read and write on a connection: accepted TCP connections
 * inherit these from the listening socket, unix-socket ones get them from
 * the worker. A worker reads a request only once all of it has arrived,
 * so these bound the writes: a peer that stops reading its responses
 * (a lost host, or a hostile one) must not hold a worker forever.
 */
int
listener_bound_io(int fd, int seconds)
{
	struct timeval limit = {.tv_sec = seconds};

	if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof(limit)) < 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &limit, sizeof(limit)) < 0)
		return -1;
	return 0;
}

int
listener_open(const struct address *a, int io_timeout, char *err, size_t errlen)
{
	int fd = a->is_unix ? open_unix(a, err, errlen) : open_tcp(a, err, errlen);

	if (fd >= 0 && (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) < 0 ||
			listener_bound_io(fd, io_timeout) < 0)) {
		snprintf(err, errlen, "socket options: %s", strerror(errno));
		listener_close(fd, a);
		return -1;
	}
	return fd;
}

int
listener_set_owner(const struct address *a, uid_t uid, gid_t gid, char *err,
		   size_t errlen)
{
	/* lchown: never follow a symlink put in the socket's place. */
	if (a->is_unix && lchown(a->host, uid, gid) < 0) {
		snprintf(err, errlen, "%s: %s", a->host, strerror(errno));
		return -1;
	}
	return 0;
}

void
listener_close(int fd, const struct address *a)
{
	if (a->is_unix)
		unlink(a->host);
	close(fd);
}
