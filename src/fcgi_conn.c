/*
 * libfcgi behind one seam: a connection baa accepted, handed to libfcgi
 * one whole request at a time (fcgi_conn.h says why and how).
 */
#include "fcgi_conn.h"

#include <errno.h>
#include <limits.h>
#include <sys/socket.h>

#include <fastcgi.h>

/* More request body than nginx lets through (client_max_body_size). */
#define DRAIN_MAX (1 << 20)

int
fcgi_conn_library_init(void)
{
	return FCGX_Init();
}

void
fcgi_conn_init(struct fcgi_conn *c)
{
	FCGX_InitRequest(&c->fcgi, -1, 0);
}

/*
 * listen_sock stays -1: libfcgi never accepts. keepConnection set, else
 * FCGX_Accept_r's opening "finish" of the previous request would close
 * the connection before reading the first one.
 */
void
fcgi_conn_adopt(struct fcgi_conn *c, int fd)
{
	FCGX_InitRequest(&c->fcgi, -1, 0);
	c->fcgi.ipcFd = fd;
	c->fcgi.keepConnection = 1;
}

int
fcgi_conn_fd(const struct fcgi_conn *c)
{
	return c->fcgi.ipcFd;
}

/*
 * A request's records end with an empty STDIN record (the end of its
 * body); libfcgi reads no further for it. A record of an unknown version
 * is where libfcgi gives up at once, so it need not wait for more either.
 */
enum fcgi_conn_arrival
fcgi_conn_scan(const unsigned char *buf, size_t len)
{
	size_t at = 0;

	while (len - at >= FCGI_HEADER_LEN) {
		const unsigned char *h = buf + at;
		size_t content = (size_t)h[4] << 8 | h[5];

		if (h[0] != FCGI_VERSION_1)
			return FCGI_CONN_WHOLE;
		if (h[1] == FCGI_STDIN && content == 0)
			return FCGI_CONN_WHOLE;
		at += FCGI_HEADER_LEN + content + h[6];
		if (at > len)
			break;
	}
	return len >= FCGI_CONN_REQUEST_MAX ? FCGI_CONN_TOO_LARGE : FCGI_CONN_PARTIAL;
}

enum fcgi_conn_arrival
fcgi_conn_arrival(const struct fcgi_conn *c)
{
	static unsigned char waiting[FCGI_CONN_REQUEST_MAX];
	ssize_t n;

	n = recv(c->fcgi.ipcFd, waiting, sizeof(waiting), MSG_PEEK | MSG_DONTWAIT);
	if (n == 0)
		return FCGI_CONN_CLOSED;
	if (n < 0)
		return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR
			       ? FCGI_CONN_PARTIAL
			       : FCGI_CONN_CLOSED;
	return fcgi_conn_scan(waiting, (size_t)n);
}

char **
fcgi_conn_begin(struct fcgi_conn *c)
{
	if (FCGX_Accept_r(&c->fcgi) < 0)
		return NULL;
	return c->fcgi.envp;
}

int
fcgi_conn_respond(struct fcgi_conn *c, const char *bytes, size_t len)
{
	if (len > INT_MAX)
		return -1;
	return FCGX_PutStr(bytes, (int)len, c->fcgi.out) >= 0 ? 0 : -1;
}

/*
 * Reads what is left of the request body. With nothing unread, closing the
 * connection sends a plain FIN, so libfcgi's graceful close (shutdown, then
 * wait up to two seconds for the web server to hang up) can be skipped: an
 * unread byte would have turned close into a reset that can destroy the
 * response on its way. Returns 0 when the input was read to its end.
 */
static int
drain_input(FCGX_Stream *in)
{
	char buf[4096];
	size_t total = 0;
	int n;

	while ((n = FCGX_GetStr(buf, sizeof(buf), in)) > 0)
		if ((total += (size_t)n) > DRAIN_MAX)
			return -1;
	return 0;
}

void
fcgi_conn_finish(struct fcgi_conn *c)
{
	if (drain_input(c->fcgi.in) == 0)
		FCGX_Detach(&c->fcgi); /* if it closes: without the graceful wait */
	else
		c->fcgi.keepConnection = 0; /* the next request would start mid-body */
	FCGX_Finish_r(&c->fcgi);
}

/*
 * Detached first: libfcgi's graceful close reads until the peer is quiet
 * for two seconds, which a peer trickling bytes would make last forever.
 */
void
fcgi_conn_close(struct fcgi_conn *c)
{
	FCGX_Detach(&c->fcgi);
	FCGX_Free(&c->fcgi, 1);
}
