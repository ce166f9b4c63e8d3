/*
 * The one place baa touches libfcgi. baa accepts connections itself and
 * waits for requests in its own epoll loop; libfcgi only decodes a request
 * and encodes the response. Handing libfcgi a connection it did not accept
 * takes two fields its header calls internal (ipcFd, keepConnection): they
 * are set and read here and nowhere else, and tests/unit/test_fcgi_conn.c
 * drives this file over a socketpair, so a libfcgi that changes them fails
 * `make check`.
 *
 * libfcgi's reads block. baa hands it a request only once every byte of
 * it is in the socket's receive buffer (fcgi_conn_arrival peeks without
 * consuming), so those reads return at once, and a client that trickles a
 * request holds a connection slot until its deadline, never a worker.
 */
#ifndef BAA_FCGI_CONN_H
#define BAA_FCGI_CONN_H

#include <stddef.h>

#include <fcgiapp.h>

/*
 * The most a request (its records up to the end of its body) may take.
 * nginx's header buffers and baa.conf's client_max_body_size (16k) keep a
 * request well below it; and it fits in a loopback TCP or unix socket's
 * receive buffer, which it must, since it is read there before libfcgi
 * consumes it.
 */
#define FCGI_CONN_REQUEST_MAX (64 * 1024)

struct fcgi_conn {
	FCGX_Request fcgi;
};

enum fcgi_conn_arrival {
	FCGI_CONN_WHOLE,     /* all of a request is there: serving it will not wait */
	FCGI_CONN_PARTIAL,   /* part of one, or nothing yet: wait for more */
	FCGI_CONN_CLOSED,    /* the peer hung up, or the connection failed */
	FCGI_CONN_TOO_LARGE, /* FCGI_CONN_REQUEST_MAX bytes without the request's end */
};

/* Once per process, before anything else here. */
int fcgi_conn_library_init(void);

/* A free slot: no connection. */
void fcgi_conn_init(struct fcgi_conn *c);

/* Takes fd, accepted by baa, as the slot's connection. */
void fcgi_conn_adopt(struct fcgi_conn *c, int fd);

/* The connection's descriptor, or -1 once it is closed. */
int fcgi_conn_fd(const struct fcgi_conn *c);

/*
 * Whether a whole request has arrived, judged from the records in buf,
 * the first len bytes waiting on a connection (pure; fuzzed).
 */
enum fcgi_conn_arrival fcgi_conn_scan(const unsigned char *buf, size_t len);

/* fcgi_conn_scan over what waits on the connection, without reading it. */
enum fcgi_conn_arrival fcgi_conn_arrival(const struct fcgi_conn *c);

/*
 * Reads the request (call only after FCGI_CONN_WHOLE) and returns its
 * parameters, "NAME=value" strings ending in NULL, valid until
 * fcgi_conn_finish. NULL: the peer sent something libfcgi refuses, or hung
 * up; the connection may then be closed already (fcgi_conn_fd < 0).
 */
char **fcgi_conn_begin(struct fcgi_conn *c);

/* Sends the response (status line, headers and body); 0 or -1. */
int fcgi_conn_respond(struct fcgi_conn *c, const char *bytes, size_t len);

/*
 * Ends the request: reads what is left of its body, and closes the
 * connection unless the web server asked to keep it and the body was read
 * to its end (else the next request would start mid-body).
 */
void fcgi_conn_finish(struct fcgi_conn *c);

/* Closes the connection at once, whatever it was doing. */
void fcgi_conn_close(struct fcgi_conn *c);

#endif
