/*
 * The libfcgi seam over a socketpair: the test plays the web server on one
 * end, fcgi_conn serves on the other. A libfcgi whose private fields
 * (ipcFd, keepConnection) change meaning fails here.
 */
#include <errno.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>
#include <fastcgi.h>

#include "../../src/fcgi_conn.h"

struct bytes {
	unsigned char data[3 * FCGI_CONN_REQUEST_MAX];
	size_t len;
};

static void
add_record(struct bytes *b, int type, const void *content, size_t len, int padding)
{
	unsigned char *h = b->data + b->len;

	assert_true(b->len + 8 + len + (size_t)padding <= sizeof(b->data));
	h[0] = FCGI_VERSION_1;
	h[1] = (unsigned char)type;
	h[2] = 0;
	h[3] = 1; /* request id 1 */
	h[4] = (unsigned char)(len >> 8);
	h[5] = (unsigned char)len;
	h[6] = (unsigned char)padding;
	h[7] = 0;
	memcpy(h + 8, content, len);
	memset(h + 8 + len, 0, (size_t)padding);
	b->len += 8 + len + (size_t)padding;
}

/* One short name-value pair, FastCGI's one-byte lengths. */
static size_t
add_pair(unsigned char *out, const char *name, const char *value)
{
	size_t n = strlen(name), v = strlen(value);

	out[0] = (unsigned char)n;
	out[1] = (unsigned char)v;
	memcpy(out + 2, name, n);
	memcpy(out + 2 + n, value, v);
	return 2 + n + v;
}

/* A whole GET request for uri, as nginx sends it. */
static void
add_request(struct bytes *b, const char *uri, int keep, const char *body)
{
	unsigned char begin[8] = {0, FCGI_RESPONDER, keep ? FCGI_KEEP_CONN : 0};
	unsigned char params[512];
	size_t n = 0;

	add_record(b, FCGI_BEGIN_REQUEST, begin, sizeof(begin), 0);
	n += add_pair(params + n, "REQUEST_METHOD", body ? "POST" : "GET");
	n += add_pair(params + n, "REQUEST_URI", uri);
	add_record(b, FCGI_PARAMS, params, n, 3);
	add_record(b, FCGI_PARAMS, "", 0, 0);
	if (body)
		add_record(b, FCGI_STDIN, body, strlen(body), 0);
	add_record(b, FCGI_STDIN, "", 0, 0);
}

static void
send_all(int fd, const void *data, size_t len)
{
	assert_int_equal(write(fd, data, len), (ssize_t)len);
}

/* What came back: the STDOUT content, and whether END_REQUEST came. */
struct answer {
	char out[4096];
	size_t out_len;
	int ended;
};

static void
read_answer(int fd, struct answer *a)
{
	static unsigned char buf[65536];
	size_t len = 0, at = 0;

	memset(a, 0, sizeof(*a));
	while (!a->ended) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		ssize_t n;

		assert_int_equal(poll(&p, 1, 2000), 1);
		n = read(fd, buf + len, sizeof(buf) - len);
		assert_true(n > 0);
		len += (size_t)n;
		while (len - at >= 8) {
			unsigned char *h = buf + at;
			size_t content = (size_t)h[4] << 8 | h[5];

			if (len - at < 8 + content + h[6])
				break;
			if (h[1] == FCGI_STDOUT) {
				memcpy(a->out + a->out_len, h + 8, content);
				a->out_len += content;
			} else if (h[1] == FCGI_END_REQUEST) {
				a->ended = 1;
			}
			at += 8 + content + h[6];
		}
	}
}

static const char *
param(char **params, const char *name)
{
	size_t n = strlen(name);

	for (; *params; params++)
		if (strncmp(*params, name, n) == 0 && (*params)[n] == '=')
			return *params + n + 1;
	return NULL;
}

struct pair {
	int web; /* the web server's end */
	struct fcgi_conn conn;
};

static int
setup(void **state)
{
	static struct pair p;
	int fds[2];

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) < 0)
		return -1;
	p.web = fds[0];
	fcgi_conn_adopt(&p.conn, fds[1]);
	*state = &p;
	return 0;
}

static int
teardown(void **state)
{
	struct pair *p = *state;

	if (fcgi_conn_fd(&p->conn) >= 0)
		fcgi_conn_close(&p->conn);
	close(p->web);
	return 0;
}

/* Serves one request on p, answering "seen <uri>"; the request must be whole. */
static void
serve(struct pair *p)
{
	char **params, reply[256];
	int n;

	assert_int_equal(fcgi_conn_arrival(&p->conn), FCGI_CONN_WHOLE);
	params = fcgi_conn_begin(&p->conn);
	assert_non_null(params);
	n = snprintf(reply, sizeof(reply), "Status: 200\r\n\r\nseen %s",
		     param(params, "REQUEST_URI"));
	assert_int_equal(fcgi_conn_respond(&p->conn, reply, (size_t)n), 0);
	fcgi_conn_finish(&p->conn);
}

static void
test_whole_request_is_answered_and_connection_kept(void **state)
{
	struct pair *p = *state;
	struct bytes req = {0};
	struct answer a;

	add_request(&req, "/me", 1, NULL);
	send_all(p->web, req.data, req.len);
	serve(p);
	read_answer(p->web, &a);
	assert_true(a.ended);
	assert_memory_equal(a.out, "Status: 200\r\n\r\nseen /me", a.out_len);
	assert_true(fcgi_conn_fd(&p->conn) >= 0);
}

static void
test_kept_connection_serves_the_next_request(void **state)
{
	struct pair *p = *state;
	struct answer a;

	for (int i = 0; i < 3; i++) {
		struct bytes req = {0};
		char uri[32];

		snprintf(uri, sizeof(uri), "/n/%d", i);
		add_request(&req, uri, 1, i == 1 ? "a=b" : NULL);
		send_all(p->web, req.data, req.len);
		/* Nothing more is waiting once it is answered. */
		serve(p);
		read_answer(p->web, &a);
		assert_non_null(memmem(a.out, a.out_len, uri, strlen(uri)));
		assert_int_equal(fcgi_conn_arrival(&p->conn), FCGI_CONN_PARTIAL);
	}
}

static void
test_connection_not_kept_is_closed_after_its_answer(void **state)
{
	struct pair *p = *state;
	struct bytes req = {0};
	struct answer a;
	char c;

	add_request(&req, "/once", 0, NULL);
	send_all(p->web, req.data, req.len);
	serve(p);
	assert_int_equal(fcgi_conn_fd(&p->conn), -1);
	read_answer(p->web, &a);
	assert_true(a.ended);
	assert_int_equal(read(p->web, &c, 1), 0); /* end of file: closed */
}

static void
test_request_arriving_in_pieces_waits_for_its_end(void **state)
{
	struct pair *p = *state;
	struct bytes req = {0};
	struct answer a;

	add_request(&req, "/slow", 1, "body");
	for (size_t i = 0; i < req.len; i++) {
		assert_int_equal(fcgi_conn_arrival(&p->conn), FCGI_CONN_PARTIAL);
		send_all(p->web, req.data + i, 1);
	}
	serve(p);
	read_answer(p->web, &a);
	assert_non_null(memmem(a.out, a.out_len, "seen /slow", 10));
}

static void
test_peer_that_hung_up_reads_as_closed(void **state)
{
	struct pair *p = *state;

	shutdown(p->web, SHUT_WR);
	assert_int_equal(fcgi_conn_arrival(&p->conn), FCGI_CONN_CLOSED);
}

static void
test_request_without_end_within_the_limit_is_too_large(void **state)
{
	struct pair *p = *state;
	static char chunk[32768];
	struct bytes req = {0};

	add_request(&req, "/big", 1, NULL);
	req.len -= 8; /* no empty STDIN record: the body goes on */
	memset(chunk, 'x', sizeof(chunk) - 1);
	while (req.len < FCGI_CONN_REQUEST_MAX)
		add_record(&req, FCGI_STDIN, chunk, sizeof(chunk) - 1, 1);
	send_all(p->web, req.data, req.len);
	assert_int_equal(fcgi_conn_arrival(&p->conn), FCGI_CONN_TOO_LARGE);
}

static void
test_garbage_goes_to_libfcgi_which_refuses_it(void **state)
{
	struct pair *p = *state;

	send_all(p->web, "GET / HTTP/1.1\r\n\r\n", 18);
	assert_int_equal(fcgi_conn_arrival(&p->conn), FCGI_CONN_WHOLE);
	assert_null(fcgi_conn_begin(&p->conn));
}

static void
on_alarm(int signo)
{
	fail_msg("closing waited for a peer that keeps sending");
}

/*
 * libfcgi's graceful close reads until the peer is quiet for two seconds;
 * a trickling peer would hold it forever. Closing must not wait at all.
 */
static void
test_close_does_not_wait_for_a_trickling_peer(void **state)
{
	struct pair *p = *state;
	struct bytes req = {0};
	char c;

	add_request(&req, "/trickle", 1, NULL);
	send_all(p->web, req.data, 10);
	assert_int_equal(fcgi_conn_arrival(&p->conn), FCGI_CONN_PARTIAL);
	signal(SIGALRM, on_alarm);
	alarm(1);
	fcgi_conn_close(&p->conn);
	alarm(0);
	assert_int_equal(fcgi_conn_fd(&p->conn), -1);
	assert_true(read(p->web, &c, 1) <= 0);
}

/* Every prefix of a request is partial; only the whole is whole. */
static void
test_scan_finds_the_end_at_every_split(void **state)
{
	struct bytes req = {0};

	add_request(&req, "/split", 1, "x=1&y=2");
	for (size_t i = 0; i < req.len; i++)
		assert_int_equal(fcgi_conn_scan(req.data, i), FCGI_CONN_PARTIAL);
	assert_int_equal(fcgi_conn_scan(req.data, req.len), FCGI_CONN_WHOLE);
}

/* A record's padding is skipped, not taken for the next header. */
static void
test_scan_skips_padding(void **state)
{
	struct bytes req = {0};
	unsigned char fake_end[8] = {FCGI_VERSION_1, FCGI_STDIN, 0, 1, 0, 0, 0, 0};

	add_record(&req, FCGI_PARAMS, "ab", 2, 8);
	/* The padding holds what would read as an empty STDIN record. */
	memcpy(req.data + 8 + 2, fake_end, sizeof(fake_end));
	assert_int_equal(fcgi_conn_scan(req.data, req.len), FCGI_CONN_PARTIAL);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(
			test_whole_request_is_answered_and_connection_kept, setup,
			teardown),
		cmocka_unit_test_setup_teardown(
			test_kept_connection_serves_the_next_request, setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_connection_not_kept_is_closed_after_its_answer, setup,
			teardown),
		cmocka_unit_test_setup_teardown(
			test_request_arriving_in_pieces_waits_for_its_end, setup,
			teardown),
		cmocka_unit_test_setup_teardown(test_peer_that_hung_up_reads_as_closed,
						setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_request_without_end_within_the_limit_is_too_large, setup,
			teardown),
		cmocka_unit_test_setup_teardown(
			test_garbage_goes_to_libfcgi_which_refuses_it, setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_close_does_not_wait_for_a_trickling_peer, setup, teardown),
		cmocka_unit_test(test_scan_finds_the_end_at_every_split),
		cmocka_unit_test(test_scan_skips_padding),
	};

	if (fcgi_conn_library_init() != 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
