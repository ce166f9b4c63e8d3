/*
 * The worker's loop: wait -> accept -> wait until the request is whole ->
 * parse -> (the wake-up's session checks, together) -> route -> handle ->
 * respond -> log. Stop signals stay blocked
 * except while the worker waits for a connection, so a request that has
 * started always finishes, and the wait itself (epoll_pwait with the
 * signals unblocked) cannot miss a stop that arrives at any moment.
 */
#include "worker.h"

#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/epoll.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "db.h"
#include "fcgi_conn.h"
#include "handlers/handlers.h"
#include "housekeeping.h"
#include "listener.h"
#include "log.h"
#include "metrics.h"
#include "origin.h"
#include "pause.h"
#include "request.h"
#include "response.h"
#include "router.h"
#include "sandbox.h"
#include "sessions.h"
#include "spotify.h"
#include "spread.h"
#include "users.h"

/* Longer paths are cut in the log line anyway. */
#define LOG_PATH_MAX 256

static volatile sig_atomic_t stop_requested;
static long long worker_pid; /* getpid() is a system call; the pid never changes */

static void
on_stop(int signo)
{
	stop_requested = 1;
}

static double
elapsed_ms(const struct timespec *start)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (double)(now.tv_sec - start->tv_sec) * 1e3 +
	       (double)(now.tv_nsec - start->tv_nsec) / 1e6;
}

/* The signal mask of a waiting worker: everything but the stop signals. */
static sigset_t waiting_mask;

static int
install_signals(void)
{
	struct sigaction stop = {.sa_handler = on_stop}; /* no SA_RESTART */
	struct sigaction ignore = {.sa_handler = SIG_IGN};
	sigset_t blocked;

	sigemptyset(&stop.sa_mask);
	if (sigaction(SIGTERM, &stop, NULL) < 0 || sigaction(SIGINT, &stop, NULL) < 0 ||
	    sigaction(SIGHUP, &ignore, NULL) < 0 || sigaction(SIGPIPE, &ignore, NULL) < 0)
		return -1;

	sigemptyset(&blocked);
	sigaddset(&blocked, SIGTERM);
	sigaddset(&blocked, SIGINT);
	if (sigprocmask(SIG_SETMASK, &blocked, NULL) < 0)
		return -1;
	sigemptyset(&waiting_mask);
	return 0;
}

/*
 * The web server's connections to this worker. A connection kept open
 * (nginx's keepalive + fastcgi_keep_conn) carries request after request,
 * skipping connect, accept and close; the worker holds many and serves
 * whichever has a request, so an idle one never stands in the way of
 * another (the keep-alive trap of one connection per process). Each is in
 * the epoll set between requests; the listening socket is too, so a new
 * connection is taken as soon as the worker is free.
 */
#define CONNECTIONS_MAX 256
#define EVENTS_MAX 64

/* The peer's end came with this wake-up (or the connection failed). */
#define HUNG_UP (EPOLLRDHUP | EPOLLHUP | EPOLLERR)

struct connection {
	struct fcgi_conn fcgi;	  /* fcgi_conn_fd < 0: a free slot */
	unsigned long used;	  /* the worker's request count when last served */
	long long arriving_since; /* ms: a request began to arrive; 0: none */
	int watched;		  /* registered in the epoll set */
	int internal;		  /* accepted on BAA_INTERNAL_LISTEN */
};

/*
 * A listening socket: the public one (BAA_LISTEN) and, when set, the
 * internal one for backend services (BAA_INTERNAL_LISTEN). Each is in the
 * epoll set with its own struct as data.ptr, which tells it from a
 * connection (and the database); a connection remembers which it came
 * from, and its requests see only that listener's routes (router.h).
 */
struct listening {
	int fd;	       /* -1: none, or let go of */
	int tcp;       /* TCP, not a unix socket */
	int internal;  /* BAA_INTERNAL_LISTEN */
	int accepting; /* in the epoll set */
};

struct worker {
	struct listening public_listener, internal_listener;
	int epoll_fd;
	int slot; /* in the spread table */
	int open;
	int arriving;		     /* connections with arriving_since set */
	long long arrival_limit_ms;  /* BAA_IO_TIMEOUT; 0: no limit */
	int db_watched;		     /* the database socket in the epoll set, or -1 */
	unsigned long db_epoch_seen; /* the connection db_watched belongs to */
	unsigned long served;
	struct connection conns[CONNECTIONS_MAX];
	struct db db;
	struct housekeeping housekeeping;
	const struct config *cfg;
};

/*
 * Under load several connections are queued at once: taking them all
 * before answering saves waits and wake-ups, and lets their session
 * checks go together. At most ACCEPT_STREAK_MAX at a time, after which
 * the worker answers them and waits anyway, which is where the kept
 * connections' requests and stop signals get in.
 */
#define ACCEPT_STREAK_MAX 32

/* The site's origin (of SPOTIFY_REDIRECT_URI), for the cross-site check. */
static char site_origin[300];

/*
 * A browser sends Sec-Fetch-Site or Origin with a request another site's
 * page made it send; such a request must not change anything (log out,
 * end a session, delete the user). GET and HEAD change nothing.
 */
static int
refused_cross_site(const struct request *req, struct response *res)
{
	if (req->method == HTTP_GET || req->method == HTTP_HEAD ||
	    origin_allows(req->sec_fetch_site, req->origin, site_origin))
		return 0;
	response_problem(res, 403, "cross_site_request",
			 "This request came from another site's page; baa refuses it.");
	return 1;
}

/* A request taken from its connection, parsed, waiting for its answer. */
struct taken {
	struct connection *conn;
	char **params; /* libfcgi's, until the request is finished */
	int hung_up;   /* the peer's end came with this wake-up */
	struct request req;
	enum request_error parse_error;
	const struct route *route;	/* NULL: none (or not parsed) */
	struct current_key session_key; /* when req.session_key points here */
};

/* The path for the log line, cut to size (snprintf's cost, per request). */
static void
copy_path(char *out, size_t size, const char *path)
{
	size_t n = strnlen(path, size - 1);

	memcpy(out, path, n);
	out[n] = '\0';
}

/* Answers one request, then finishes it: the response leaves in one write. */
static void
serve_one(struct taken *t, struct db *db, const struct config *cfg)
{
	static char out[RESPONSE_HEADERS_MAX + RESPONSE_BODY_MAX + 256];
	static struct response res;
	struct fcgi_conn *fcgi = &t->conn->fcgi;
	struct request *req = &t->req;
	char path[LOG_PATH_MAX + 1];
	int status, sent;
	double took_ms;
	struct timespec start;
	const struct route *route = NULL;
	size_t len;

	clock_gettime(CLOCK_MONOTONIC, &start);
	response_init(&res);
	req->db = db;
	req->cfg = cfg;
	if (t->parse_error != REQUEST_OK) {
		response_error(&res, (int)t->parse_error,
			       t->parse_error == REQUEST_URI_TOO_LONG ? "path too long"
								      : "bad request");
	} else {
		/* Routed when taken; again only to write the 404 or 405. */
		route = t->route ? t->route
				 : router_match(app_routes, app_route_count, req, &res);
		if (route && !refused_cross_site(req, &res))
			route->handler(req, &res);
	}

	len = response_render(&res, req->method == HTTP_HEAD, out, sizeof(out));
	sent = len > 0 && fcgi_conn_respond(fcgi, out, len) == 0;
	/* The path lives in libfcgi's parameters, which finishing frees. */
	copy_path(path, sizeof(path), req->path ? req->path : "-");
	fcgi_conn_finish(fcgi);

	status = res.overflow ? 500 : res.status;
	took_ms = elapsed_ms(&start);
	metrics_request(route ? (size_t)(route - app_routes) : app_route_count, status,
			took_ms);
	if (!sent)
		log_event(LOG_WARN, "response_not_sent", LOG_STR("path", path));
	log_event(LOG_INFO, "request",
		  LOG_STR("method", req->method_name ? req->method_name : "-"),
		  LOG_STR("path", path), LOG_STR("route", route ? route->name : "-"),
		  LOG_INT("status", status), LOG_MS("duration_ms", took_ms),
		  LOG_INT("pid", worker_pid));
	/* Answered: telling the other instances of a 429 costs it no time. */
	pause_after_request();
}

static void
stop_arrival_clock(struct worker *w, struct connection *c)
{
	if (c->arriving_since) {
		c->arriving_since = 0;
		w->arriving--;
	}
}

/* libfcgi closed it (or we just did): closing dropped it from epoll too. */
static void
forget_connection(struct worker *w, struct connection *c)
{
	stop_arrival_clock(w, c);
	c->watched = 0;
	w->open--;
}

static void
close_connection(struct worker *w, struct connection *c)
{
	fcgi_conn_close(&c->fcgi);
	forget_connection(w, c);
}

/*
 * Edge-triggered: a connection holding part of a request stays readable,
 * and must wake the worker only when more of it comes. Adding it reports
 * what is already there, so nothing that came before is missed; a hang-up
 * that came with the request's last bytes is reported with them
 * (EPOLLRDHUP), since no later edge would tell of it.
 */
static int
watch_connection(struct worker *w, struct connection *c)
{
	struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP | EPOLLET, .data.ptr = c};

	if (c->watched)
		return 0;
	if (epoll_ctl(w->epoll_fd, EPOLL_CTL_ADD, fcgi_conn_fd(&c->fcgi), &ev) < 0)
		return -1;
	c->watched = 1;
	return 0;
}

/*
 * Part of a request is there, or none yet on a new connection: the rest
 * must come within BAA_IO_TIMEOUT of the first byte (of the accept, for
 * a new connection), or the connection is closed (expire_arrivals). The
 * web server writes a request whole, so only a lost or hostile peer ever
 * comes near that.
 */
static void
wait_for_rest(struct worker *w, struct connection *c, long long now_ms)
{
	if (!c->arriving_since) {
		c->arriving_since = now_ms;
		w->arriving++;
	}
	if (watch_connection(w, c) < 0)
		close_connection(w, c);
}

/*
 * Takes the request waiting on c into t, once all of it has arrived
 * (libfcgi's blocking reads then find it in the socket's buffer), and
 * parses it: 1, or 0 when there is none to serve yet, or c was closed. A
 * connection the peer closed (hung_up: its end came with this wake-up)
 * will get no more.
 */
static int
take_request(struct worker *w, struct connection *c, int hung_up, struct taken *t)
{
	switch (fcgi_conn_arrival(&c->fcgi)) {
	case FCGI_CONN_PARTIAL:
		if (hung_up) /* the rest will never come */
			close_connection(w, c);
		else
			wait_for_rest(w, c, clock_now_ms());
		return 0;
	case FCGI_CONN_TOO_LARGE:
		log_event(LOG_WARN, "request_too_large",
			  LOG_INT("limit_bytes", FCGI_CONN_REQUEST_MAX));
		close_connection(w, c);
		return 0;
	case FCGI_CONN_CLOSED: close_connection(w, c); return 0;
	case FCGI_CONN_WHOLE: break;
	}
	stop_arrival_clock(w, c);
	t->params = fcgi_conn_begin(&c->fcgi);
	if (!t->params) {
		/* The web server hung up (libfcgi closed it) or sent garbage. */
		if (fcgi_conn_fd(&c->fcgi) >= 0)
			close_connection(w, c);
		else
			forget_connection(w, c);
		return 0;
	}
	t->conn = c;
	t->hung_up = hung_up;
	t->parse_error = request_parse(t->params, &t->req);
	t->req.internal = c->internal;
	t->req.session_key = NULL;
	t->route = t->parse_error == REQUEST_OK
			   ? router_match(app_routes, app_route_count, &t->req, NULL)
			   : NULL;
	return 1;
}

/*
 * Answers a taken request. A connection the peer closed, or that the web
 * server did not ask to keep, is closed; a kept one goes (back) into the
 * epoll set.
 */
static void
answer(struct worker *w, struct taken *t)
{
	struct connection *c = t->conn;

	serve_one(t, &w->db, w->cfg);
	c->used = ++w->served;
	if (fcgi_conn_fd(&c->fcgi) < 0)
		forget_connection(w, c);
	else if (t->hung_up || watch_connection(w, c) < 0)
		close_connection(w, c);
}

/*
 * The sessions that the wake-up's requests are about to check, looked up
 * in one round trip to PostgreSQL (sessions_prefetch) rather than one
 * each: what a cache miss costs, and with BAA_PROFILE_CACHE=off every
 * request, is then shared by all the requests that came together. Each
 * request still reads its own answer, fresh from this wake-up, and keeps
 * its verified cookie, which its handler then need not verify again.
 */
static void
prefetch_sessions(struct worker *w, struct taken *taken, int n)
{
	static unsigned char hashes[SESSIONS_PREFETCH_MAX][32];
	int nhashes = 0;

	for (int i = 0; i < n && nhashes < SESSIONS_PREFETCH_MAX; i++) {
		struct taken *t = &taken[i];

		if (!t->route || !t->route->session ||
		    current_session_key(&t->req, &t->session_key) < 0)
			continue;
		t->req.session_key = &t->session_key;
		memcpy(hashes[nhashes++], t->session_key.hash, 32);
	}
	if (nhashes > 1)
		sessions_prefetch(&w->db, (const unsigned char(*)[32])hashes, nhashes);
}

/* Answers the taken requests in turn, their sessions looked up together. */
static void
answer_taken(struct worker *w, struct taken *taken, int n)
{
	if (n > 1)
		prefetch_sessions(w, taken, n);
	for (int i = 0; i < n; i++)
		answer(w, &taken[i]);
	sessions_prefetch_end();
}

/*
 * Serves the requests of the kept connections this wake-up reported:
 * takes every whole one first, so that their sessions are looked up
 * together, then answers them in turn.
 */
static void
serve_ready(struct worker *w, const struct epoll_event *events, int n)
{
	static struct taken taken[EVENTS_MAX];
	int ntaken = 0;

	for (int i = 0; i < n; i++) {
		void *p = events[i].data.ptr;

		if (p == &w->db || p == &w->public_listener || p == &w->internal_listener)
			continue;
		ntaken += take_request(w, p, (events[i].events & HUNG_UP) != 0,
				       &taken[ntaken]);
	}
	answer_taken(w, taken, ntaken);
}

/*
 * Closes the connections whose request did not arrive in time, and
 * returns how long until the next one's time is up (-1: none is waiting).
 */
static long long
expire_arrivals(struct worker *w, long long now_ms)
{
	long long next = -1;

	if (w->arriving == 0 || w->arrival_limit_ms == 0)
		return -1;
	for (int i = 0; i < CONNECTIONS_MAX && w->arriving > 0; i++) {
		struct connection *c = &w->conns[i];
		long long left;

		if (!c->arriving_since)
			continue;
		left = c->arriving_since + w->arrival_limit_ms - now_ms;
		if (left <= 0) {
			log_event(LOG_WARN, "request_timeout",
				  LOG_INT("waited_ms", now_ms - c->arriving_since));
			metrics_request_timeout();
			close_connection(w, c);
		} else if (next < 0 || left < next) {
			next = left;
		}
	}
	return next;
}

/*
 * A slot for a new connection. When every slot is taken, the connection
 * served longest ago gives way: the web server holds more connections
 * than it needs (nginx's keepalive is too high for CONNECTIONS_MAX), and
 * a new connection must never wait for an idle one.
 */
static struct connection *
free_slot(struct worker *w)
{
	struct connection *oldest = &w->conns[0];

	for (int i = 0; i < CONNECTIONS_MAX; i++) {
		if (fcgi_conn_fd(&w->conns[i].fcgi) < 0)
			return &w->conns[i];
		if (w->conns[i].used < oldest->used)
			oldest = &w->conns[i];
	}
	close_connection(w, oldest);
	return oldest;
}

/*
 * Takes the connections waiting on the listening socket and the first
 * request of each (the web server sends it with the connection, so it is
 * usually there), then answers those together, as serve_ready does: a
 * connection per request (the routes that wait on Spotify, nginx's
 * auth_request) gets its session checks looked up together too. baa
 * accepts itself and hands the descriptor to libfcgi (fcgi_conn.h).
 */
static void
accept_connections(struct worker *w, const struct listening *l)
{
	static struct taken taken[ACCEPT_STREAK_MAX];
	int ntaken = 0;

	for (int streak = 0;
	     streak < ACCEPT_STREAK_MAX && spread_may_accept(w->slot, w->open);
	     streak++) {
		struct connection *c;
		int fd;

		/* A full table would make way by closing one: not one whose
		 * request is taken and not yet answered. */
		if (w->open >= CONNECTIONS_MAX && ntaken > 0)
			break;
		/* cppcheck-suppress nullPointer ; accept(2): both may be NULL */
		fd = accept4(l->fd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR &&
			    errno != ECONNABORTED) {
				/* Out of descriptors or memory: do not spin on it. */
				struct timespec pause = {0, 10 * 1000 * 1000};
				log_event(LOG_ERROR, "accept_failed",
					  LOG_STR("reason", strerror(errno)));
				nanosleep(&pause, NULL);
			}
			break;
		}
		if (l->tcp) {
			/* Kept connections carry several small responses. */
			int one = 1;
			setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		} else {
			/* A TCP connection inherits it from the listening socket. */
			listener_bound_io(fd, w->cfg->io_timeout);
		}
		c = free_slot(w);
		fcgi_conn_adopt(&c->fcgi, fd);
		c->used = w->served;
		c->watched = 0;
		c->internal = l->internal;
		w->open++;
		/* It may have come after a notification the epoll wait missed. */
		w->db.socket_quiet = 0;
		ntaken += take_request(w, c, 0, &taken[ntaken]);
	}
	answer_taken(w, taken, ntaken);
}

/*
 * PostgreSQL notifies changed users (the profile cache must forget them)
 * on the database connection's socket, which sits in the epoll set: while
 * the wait reports nothing there, requests skip looking for notifications
 * (a read(2) each). Requests seen by one wait arrived before it returned,
 * so a notification arriving later is, for them, still to come.
 */
static void
watch_database(struct worker *w)
{
	struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &w->db};
	int fd = db_socket(&w->db);

	if (fd < 0) {
		w->db_watched = -1; /* closed, so out of the set: forget its number */
		return;
	}
	if (w->db.epoch == w->db_epoch_seen)
		return;
	/* A new connection: the old socket left the set when it was closed. */
	w->db_epoch_seen = w->db.epoch;
	w->db_watched = -1;
	if (w->db.listening && epoll_ctl(w->epoll_fd, EPOLL_CTL_ADD, fd, &ev) == 0)
		w->db_watched = fd;
}

static void
take_notifications(struct worker *w)
{
	w->db.socket_quiet = 0;
	if (db_notifications(&w->db) < 0) {
		/* Broken: its end-of-file would wake every wait until the
		 * next request reconnects. Still open, so the number is ours. */
		epoll_ctl(w->epoll_fd, EPOLL_CTL_DEL, w->db_watched, NULL);
		w->db_watched = -1;
	}
}

/* Takes new connections on l, or leaves them to the other workers. */
static void
watch_one(struct worker *w, struct listening *l, int on)
{
	struct epoll_event ev = {.events = EPOLLIN | EPOLLEXCLUSIVE, .data.ptr = l};

	if (l->fd < 0 || on == l->accepting)
		return;
	/* EPOLLEXCLUSIVE: a new connection wakes one idle worker, not all. */
	if (epoll_ctl(w->epoll_fd, on ? EPOLL_CTL_ADD : EPOLL_CTL_DEL, l->fd, &ev) == 0)
		l->accepting = on;
}

static void
watch_listener(struct worker *w, int on)
{
	watch_one(w, &w->public_listener, on);
	watch_one(w, &w->internal_listener, on);
}

static void
close_listener(struct listening *l)
{
	if (l->fd >= 0)
		close(l->fd); /* out of the epoll set too, if it was still in */
	l->fd = -1;
	l->accepting = 0;
}

/*
 * A stopping worker lets go of its copy of the listening socket at once.
 * On a reload the master keeps its own, and the new workers take over;
 * when the whole instance stops, the master has closed its copy, and once
 * the workers have too, the kernel refuses new connections instead of
 * completing them into a backlog nobody accepts: the web server then
 * tries another instance at once, even with a POST, which it could not
 * safely send again after a reset.
 */
static void
stop_listening(struct worker *w)
{
	watch_listener(w, 0);
	close_listener(&w->public_listener);
	close_listener(&w->internal_listener);
}

/*
 * A stopping worker takes no new connection but keeps answering on its
 * kept ones until the web server closes them, which nginx does after
 * keepalive_time (nginx/baa.conf.in: 2s) or sooner when one is idle.
 * Closing one from this side could cross a request nginx has just sent on
 * it, which nginx retries elsewhere only when it is safe to and counts as
 * the instance failing. After DRAIN_MAX_MS the rest are closed anyway.
 */
#define DRAIN_MAX_MS 3000

/*
 * Waits for work and does it: requests on kept connections first, then
 * new connections. Stop signals are let in only during the wait, so a
 * request that has started always finishes.
 */
static int
run_loop(struct worker *w)
{
	struct epoll_event events[EVENTS_MAX];
	long long drain_until = -1;

	for (;;) {
		/* First: closing a connection logs, and frees a slot. */
		long long arrival_due = expire_arrivals(w, clock_now_ms());
		int public_ready = 0, internal_ready = 0;
		int timeout = log_pending() ? LOG_FLUSH_MS : -1, n;

		if (arrival_due >= 0 && (timeout < 0 || arrival_due < timeout))
			timeout = (int)arrival_due;
		if (stop_requested && drain_until < 0) {
			drain_until = clock_now_ms() + DRAIN_MAX_MS;
			stop_listening(w);
		}
		watch_listener(w, drain_until < 0 && spread_may_accept(w->slot, w->open));
		spread_publish(w->slot, w->open, w->public_listener.accepting);
		if (drain_until >= 0) {
			long long left = drain_until - clock_now_ms();
			if (w->open == 0 || left <= 0)
				return 0;
			if (timeout < 0 || left < timeout)
				timeout = (int)left;
		}
		watch_database(w);
		if (drain_until < 0) {
			long long due = housekeeping_wait_ms(&w->housekeeping, &w->db,
							     clock_now_ms());
			if (timeout < 0 || due < timeout)
				timeout = (int)due;
		}
		/* Buffered log lines wait at most LOG_FLUSH_MS for an idle worker. */
		n = epoll_pwait(w->epoll_fd, events, EVENTS_MAX, timeout, &waiting_mask);
		if (n == 0)
			log_flush();
		if (n < 0 && errno != EINTR)
			return -1;
		w->db.socket_quiet = w->db_watched >= 0;
		for (int i = 0; i < n; i++)
			if (events[i].data.ptr == &w->db)
				take_notifications(w);
		for (int i = 0; i < n; i++) {
			public_ready |= events[i].data.ptr == &w->public_listener;
			internal_ready |= events[i].data.ptr == &w->internal_listener;
		}
		serve_ready(w, events, n);
		/* After the kept connections: taking a slot may close one. */
		if (public_ready && drain_until < 0)
			accept_connections(w, &w->public_listener);
		if (internal_ready && drain_until < 0)
			accept_connections(w, &w->internal_listener);
		if (drain_until < 0)
			housekeeping_run(&w->housekeeping, &w->db, clock_now_ms());
	}
}

int
worker_run(const struct config *cfg, int listen_fd, int internal_fd, int slot)
{
	static struct worker w;
	int status = 1;

	worker_pid = getpid();
	/* FCGX_Init installs its own SIGTERM/SIGPIPE handlers; ours come after. */
	if (fcgi_conn_library_init() != 0 || install_signals() < 0 ||
	    spotify_init(cfg) < 0) {
		log_event(LOG_ERROR, "worker_init_failed",
			  LOG_STR("reason", strerror(errno)));
		return 1;
	}
	w.cfg = cfg;
	w.public_listener =
		(struct listening){.fd = listen_fd, .tcp = !cfg->listen.is_unix};
	w.internal_listener = (struct listening){
		.fd = internal_fd, .tcp = !cfg->internal_listen.is_unix, .internal = 1};
	w.slot = slot;
	w.arrival_limit_ms = (long long)cfg->io_timeout * 1000;
	w.db_watched = -1;
	for (int i = 0; i < CONNECTIONS_MAX; i++)
		fcgi_conn_init(&w.conns[i].fcgi);
	w.epoll_fd = epoll_create1(EPOLL_CLOEXEC);
	if (w.epoll_fd < 0) {
		log_event(LOG_ERROR, "worker_init_failed",
			  LOG_STR("reason", strerror(errno)));
		goto out;
	}
	log_buffered(1);
	db_init(&w.db, cfg);
	if (users_attach(&w.db) < 0)
		log_event(LOG_ERROR, "db_subscribe_failed", LOG_STR("channel", "users"));
	if (sessions_attach(&w.db) < 0)
		log_event(LOG_ERROR, "db_subscribe_failed",
			  LOG_STR("channel", "sessions"));
	if (origin_of_url(cfg->spotify_redirect_uri, site_origin, sizeof(site_origin)) <
	    0)
		site_origin[0] = '\0';
	pause_attach(&w.db);

	/* Set up: from here on only the system calls sandbox.c allows. */
	if (sandbox_enter(cfg) == 0 && run_loop(&w) == 0)
		status = 0;
	for (int i = 0; i < CONNECTIONS_MAX; i++)
		if (fcgi_conn_fd(&w.conns[i].fcgi) >= 0)
			close_connection(&w, &w.conns[i]);
	db_close(&w.db);
	spotify_cleanup();
out:
	if (w.epoll_fd >= 0)
		close(w.epoll_fd);
	close_listener(&w.public_listener);
	close_listener(&w.internal_listener);
	log_flush();
	return status;
}
