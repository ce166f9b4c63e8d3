/*
 * The worker's loop: wait -> accept -> parse -> route -> handle -> respond
 * -> log. Stop signals stay blocked except while the worker waits for a
 * connection, so a request that has started always finishes, and the
 * wait itself (epoll_pwait with the signals unblocked) cannot miss a stop
 * that arrives at any moment.
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

#include <fcgiapp.h>

#include "db.h"
#include "log.h"
#include "metrics.h"
#include "request.h"
#include "response.h"
#include "router.h"
#include "spotify.h"

/* More request body than nginx lets through (client_max_body_size). */
#define DRAIN_MAX (1 << 20)

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
 * One FastCGI connection per worker, kept open when the web server asks
 * for it (fastcgi_keep_conn): requests on it then skip connect, accept and
 * close. The trap of kept connections is a worker sitting idle on one while
 * the web server opens another that nobody accepts. So an idle worker
 * holding a connection also watches the listening socket, and when a new
 * connection is waiting it lets its idle one go and takes the new one: no
 * connection ever waits while a worker is idle.
 */
struct connection {
	FCGX_Request fcgi;
	int listen_fd;
	int epoll_fd;
	int watched_fd;	  /* the kept connection registered in epoll_fd, or -1 */
	int tcp;	  /* the listening socket is TCP (not a unix socket) */
	int accept_first; /* just served one: another may already be waiting */
	int streak;	  /* accepts in a row without waiting */
};

/*
 * Under load the next connection is usually queued by the time a request
 * is done: accepting it straight away saves a wait and a wake-up. Every
 * ACCEPT_STREAK_MAX requests the worker waits anyway, which is where stop
 * signals get in.
 */
#define ACCEPT_STREAK_MAX 32

enum work { WORK_KEPT, WORK_NEW, WORK_STOP };

/*
 * Waits for a request on the kept connection or a new connection.
 * Stop signals are let in only here, atomically with the wait.
 */
static enum work
wait_for_work(struct connection *c)
{
	if (!stop_requested && c->accept_first && c->fcgi.ipcFd < 0 &&
	    c->streak < ACCEPT_STREAK_MAX) {
		c->streak++;
		return WORK_NEW;
	}
	c->streak = 0;
	for (;;) {
		struct epoll_event events[2];
		int kept_ready = 0, new_waiting = 0, n;

		if (stop_requested)
			return WORK_STOP;
		if (c->fcgi.ipcFd >= 0 && c->watched_fd != c->fcgi.ipcFd) {
			struct epoll_event ev = {.events = EPOLLIN,
						 .data.fd = c->fcgi.ipcFd};
			if (epoll_ctl(c->epoll_fd, EPOLL_CTL_ADD, c->fcgi.ipcFd, &ev) ==
			    0)
				c->watched_fd = c->fcgi.ipcFd;
		}
		/* Buffered log lines wait at most LOG_FLUSH_MS for an idle worker. */
		n = epoll_pwait(c->epoll_fd, events, 2, log_pending() ? LOG_FLUSH_MS : -1,
				&waiting_mask);
		if (n == 0)
			log_flush();
		if (n < 0 && errno != EINTR)
			return WORK_STOP;
		for (int i = 0; i < n; i++) {
			if (events[i].data.fd == c->listen_fd)
				new_waiting = 1;
			else if (events[i].data.fd == c->fcgi.ipcFd)
				kept_ready = 1;
		}
		if (kept_ready)
			return WORK_KEPT;
		if (new_waiting) {
			if (c->fcgi.ipcFd >= 0) {
				/* Closing also drops it from the epoll set. */
				FCGX_Free(&c->fcgi, 1);
				c->watched_fd = -1;
			}
			return WORK_NEW;
		}
	}
}

/*
 * Reads the next request: from the kept connection, or from a connection
 * accepted now. baa accepts itself and hands the descriptor to libfcgi,
 * which then only reads: libfcgi's own accept would add a poll per
 * connection. The hand-over sets two fields libfcgi's header calls
 * internal (ipcFd, keepConnection), unchanged since libfcgi 2.4 (2002);
 * listen_sock stays -1, so libfcgi never accepts by itself.
 */
static int
next_request(struct connection *c, enum work work)
{
	int rc;

	if (work == WORK_NEW) {
		int fd = accept4(c->listen_fd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0)
			return -errno;
		if (c->tcp) {
			/* Kept connections carry several small responses. */
			int one = 1;
			setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		}
		c->fcgi.ipcFd = fd;
		/* Else FCGX_Accept_r's opening "finish" would close it. */
		c->fcgi.keepConnection = 1;
		c->watched_fd = -1;
	}
	rc = FCGX_Accept_r(&c->fcgi);
	if (c->fcgi.ipcFd < 0)
		c->watched_fd = -1; /* closed: epoll forgot it with the descriptor */
	return rc;
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

/* Answers one request, then finishes it: the response leaves in one write. */
static void
serve_one(FCGX_Request *fcgi, struct db *db, const struct config *cfg)
{
	static char out[RESPONSE_HEADERS_MAX + RESPONSE_BODY_MAX + 256];
	static struct response res;
	char path[LOG_PATH_MAX + 1];
	int status, sent;
	struct timespec start;
	struct request req;
	enum request_error parse_error;
	const struct route *route = NULL;
	size_t len;

	clock_gettime(CLOCK_MONOTONIC, &start);
	response_init(&res);
	parse_error = request_parse(fcgi->envp, &req);
	req.db = db;
	req.cfg = cfg;
	if (parse_error != REQUEST_OK) {
		response_error(&res, (int)parse_error,
			       parse_error == REQUEST_URI_TOO_LONG ? "path too long"
								   : "bad request");
	} else {
		route = router_match(app_routes, app_route_count, &req, &res);
		if (route)
			route->handler(&req, &res);
	}

	len = response_render(&res, req.method == HTTP_HEAD, out, sizeof(out));
	sent = len > 0 && FCGX_PutStr(out, (int)len, fcgi->out) >= 0;
	/* The path lives in libfcgi's parameters, which finishing frees. */
	snprintf(path, sizeof(path), "%s", req.path ? req.path : "-");
	if (drain_input(fcgi->in) == 0)
		FCGX_Detach(fcgi); /* close without the graceful wait */
	FCGX_Finish_r(fcgi);

	status = res.overflow ? 500 : res.status;
	metrics_request(route ? (size_t)(route - app_routes) : app_route_count, status,
			elapsed_ms(&start));
	if (!sent)
		log_event(LOG_WARN, "response_not_sent", LOG_STR("path", path));
	log_event(LOG_INFO, "request",
		  LOG_STR("method", req.method_name ? req.method_name : "-"),
		  LOG_STR("path", path), LOG_STR("route", route ? route->name : "-"),
		  LOG_INT("status", status), LOG_MS("duration_ms", elapsed_ms(&start)),
		  LOG_INT("pid", worker_pid));
}

int
worker_run(const struct config *cfg, int listen_fd)
{
	struct epoll_event ev = {.events = EPOLLIN | EPOLLEXCLUSIVE};
	struct connection conn;
	enum work work;
	struct db db;
	int epoll_fd = -1, status = 1;

	worker_pid = getpid();
	/* FCGX_Init installs its own SIGTERM/SIGPIPE handlers; ours come after. */
	if (FCGX_Init() != 0 || install_signals() < 0 || spotify_init(cfg) < 0) {
		log_event(LOG_ERROR, "worker_init_failed",
			  LOG_STR("reason", strerror(errno)));
		return 1;
	}
	/* EPOLLEXCLUSIVE: a new connection wakes one idle worker, not all. */
	epoll_fd = epoll_create1(EPOLL_CLOEXEC);
	ev.data.fd = listen_fd;
	if (epoll_fd < 0 || epoll_ctl(epoll_fd, EPOLL_CTL_ADD, listen_fd, &ev) < 0) {
		log_event(LOG_ERROR, "worker_init_failed",
			  LOG_STR("reason", strerror(errno)));
		goto out;
	}
	log_buffered(1);
	FCGX_InitRequest(&conn.fcgi, -1, 0);
	conn.listen_fd = listen_fd;
	conn.epoll_fd = epoll_fd;
	conn.watched_fd = -1;
	conn.accept_first = 0;
	conn.streak = 0;
	conn.tcp = !cfg->listen.is_unix;
	db_init(&db, cfg);

	while ((work = wait_for_work(&conn)) != WORK_STOP) {
		int rc = next_request(&conn, work);
		conn.accept_first = 0;
		if (rc == -EAGAIN || rc == -EWOULDBLOCK || rc == -EINTR)
			continue; /* nothing waiting, or another worker took it */
		if (rc < 0) {
			if (work == WORK_NEW) {
				/* Out of descriptors or memory: do not spin on it. */
				struct timespec pause = {0, 10 * 1000 * 1000};
				log_event(LOG_ERROR, "accept_failed",
					  LOG_STR("reason", strerror(-rc)));
				nanosleep(&pause, NULL);
			}
			continue; /* a kept connection closed: nothing lost */
		}
		serve_one(&conn.fcgi, &db, cfg);
		conn.accept_first = 1;
	}
	status = 0;
	FCGX_Free(&conn.fcgi, 1);
	db_close(&db);
	spotify_cleanup();
out:
	if (epoll_fd >= 0)
		close(epoll_fd);
	close(listen_fd);
	log_flush();
	return status;
}
