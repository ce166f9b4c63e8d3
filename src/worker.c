/*
 * The worker's loop: wait -> accept -> parse -> route -> handle -> respond
 * -> log. Stop signals stay blocked except while the worker waits for a
 * connection, so a request that has started always finishes, and the
 * wait itself (epoll_pwait with the signals unblocked) cannot miss a stop
 * that arrives at any moment.
 */
#include "worker.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/epoll.h>
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

static volatile sig_atomic_t stop_requested;

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
 * Waits until fd is readable. Returns 0 when it is, -1 when a stop
 * signal arrived (or is already pending) instead.
 */
static int
wait_readable(int epoll_fd, int kept_fd)
{
	for (;;) {
		int n;

		if (stop_requested)
			return -1;
		if (kept_fd >= 0) {
			/* The web server kept the connection open for its next request.
			 */
			struct pollfd p = {.fd = kept_fd, .events = POLLIN};
			n = ppoll(&p, 1, NULL, &waiting_mask);
		} else {
			struct epoll_event ev;
			n = epoll_pwait(epoll_fd, &ev, 1, -1, &waiting_mask);
		}
		if (n > 0)
			return 0;
		if (n < 0 && errno != EINTR)
			return -1;
	}
}

static void
serve_one(FCGX_Request *fcgi, struct db *db, const struct config *cfg)
{
	static char out[RESPONSE_HEADERS_MAX + RESPONSE_BODY_MAX + 256];
	static struct response res;
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
	if (len == 0 || FCGX_PutStr(out, (int)len, fcgi->out) < 0 ||
	    FCGX_FFlush(fcgi->out) < 0)
		log_event(LOG_WARN, "response_not_sent", LOG_STR("path", req.path));

	metrics_request(route ? (size_t)(route - app_routes) : app_route_count,
			res.overflow ? 500 : res.status, elapsed_ms(&start));
	log_event(LOG_INFO, "request",
		  LOG_STR("method", req.method_name ? req.method_name : "-"),
		  LOG_STR("path", req.path ? req.path : "-"),
		  LOG_STR("route", route ? route->name : "-"),
		  LOG_INT("status", res.overflow ? 500 : res.status),
		  LOG_MS("duration_ms", elapsed_ms(&start)),
		  LOG_INT("pid", (long long)getpid()));
}

int
worker_run(const struct config *cfg, int listen_fd)
{
	struct epoll_event ev = {.events = EPOLLIN | EPOLLEXCLUSIVE};
	FCGX_Request fcgi;
	struct db db;
	int epoll_fd = -1, status = 1;

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
	FCGX_InitRequest(&fcgi, listen_fd, 0);
	db_init(&db, cfg);

	while (wait_readable(epoll_fd, fcgi.ipcFd) == 0) {
		int rc = FCGX_Accept_r(&fcgi);
		if (rc == -EAGAIN || rc == -EWOULDBLOCK || rc == -EINTR)
			continue; /* another worker took the connection */
		if (rc < 0) {
			log_event(LOG_ERROR, "accept_failed",
				  LOG_STR("reason", strerror(-rc)));
			continue;
		}
		serve_one(&fcgi, &db, cfg);
		FCGX_Finish_r(&fcgi);
	}
	status = 0;
	FCGX_Free(&fcgi, 1);
	db_close(&db);
	spotify_cleanup();
out:
	if (epoll_fd >= 0)
		close(epoll_fd);
	close(listen_fd);
	return status;
}
