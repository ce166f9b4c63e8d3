/*
 * Supervision without asynchronous signal handlers: the master keeps its
 * signals blocked and takes them one at a time from sigtimedwait, so its
 * state changes happen in one place, in order. Workers are forked with
 * the signals still blocked; a stop sent to a worker the instant it is
 * born stays pending until the worker waits for work, where it is seen.
 */
#include "master.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <systemd/sd-daemon.h>

#include "clock.h"
#include "listener.h"
#include "log.h"
#include "metrics.h"
#include "spread.h"
#include "worker.h"

/* A worker that dies sooner than this after its start counts as a crash. */
#define YOUNG_DEATH_MS 2000
#define RESPAWN_DELAY_MIN_MS 100
#define RESPAWN_DELAY_MAX_MS 10000
/* sysexits.h: a configuration error, as main.c's checks exit with. */
#define EXIT_CONFIG 78

struct worker_slot {
	pid_t pid;	     /* 0: free slot */
	unsigned generation; /* the master's generation when forked */
	int retiring;	     /* sent SIGTERM; its exit is expected */
	long long started_ms;
	long long kill_at_ms; /* when retiring: SIGKILL if still alive */
};

struct master {
	const struct config *cfg;
	pid_t pid;
	int listen_fd;
	int internal_fd; /* BAA_INTERNAL_LISTEN's socket, or -1 */
	struct worker_slot *slots;
	int nslots;
	unsigned generation; /* bumped by SIGHUP */
	int reloading;	     /* workers of an older generation still serve */
	int stopping;
	int forced; /* a worker had to be killed to stop */
	int crash_streak;
	long long respawn_at_ms;
};

static int
spawn_worker(struct master *m)
{
	struct worker_slot *slot = NULL;
	pid_t pid;

	for (int i = 0; i < m->nslots && slot == NULL; i++)
		if (m->slots[i].pid == 0)
			slot = &m->slots[i];
	if (slot == NULL)
		return -1;

	pid = fork();
	if (pid < 0) {
		log_event(LOG_ERROR, "fork_failed", LOG_STR("reason", strerror(errno)));
		return -1;
	}
	if (pid == 0) {
		/* A worker outliving a killed master would hold the socket open. */
		if (prctl(PR_SET_PDEATHSIG, SIGTERM) < 0 || getppid() != m->pid)
			_exit(1);
		/* The child never returns into the master's loop. */
		free(m->slots);
		_exit(worker_run(m->cfg, m->listen_fd, m->internal_fd,
				 (int)(slot - m->slots)));
	}
	*slot = (struct worker_slot){
		.pid = pid, .generation = m->generation, .started_ms = clock_now_ms()};
	log_event(LOG_INFO, "worker_started", LOG_INT("pid", (long long)pid),
		  LOG_INT("generation", (long long)m->generation));
	return 0;
}

static void
retire(struct worker_slot *w, int timeout_s)
{
	w->retiring = 1;
	w->kill_at_ms = clock_now_ms() + (long long)timeout_s * 1000;
	kill(w->pid, SIGTERM);
}

static void
count_workers(const struct master *m, int *fresh, int *old_active, int *old_retiring)
{
	*fresh = *old_active = *old_retiring = 0;
	for (int i = 0; i < m->nslots; i++) {
		const struct worker_slot *w = &m->slots[i];
		if (w->pid == 0)
			continue;
		if (w->generation == m->generation && !w->retiring)
			(*fresh)++;
		else if (w->retiring)
			(*old_retiring)++;
		else
			(*old_active)++;
	}
}

/*
 * Brings the worker set towards BAA_WORKERS workers of the current
 * generation. During a reload one extra worker is started before an old
 * one is told to stop, so capacity never drops below BAA_WORKERS.
 */
static void
reconcile(struct master *m)
{
	int want = m->cfg->workers, fresh, old_active, old_retiring;

	if (m->stopping || clock_now_ms() < m->respawn_at_ms)
		return;
	count_workers(m, &fresh, &old_active, &old_retiring);
	while (fresh + old_active < want) {
		if (spawn_worker(m) < 0)
			return;
		fresh++;
	}
	if (old_active > 0 && old_retiring == 0) {
		if (fresh + old_active <= want && spawn_worker(m) < 0)
			return;
		for (int i = 0; i < m->nslots; i++) {
			struct worker_slot *w = &m->slots[i];
			if (w->pid && !w->retiring && w->generation != m->generation) {
				retire(w, m->cfg->shutdown_timeout);
				break;
			}
		}
	}
}

static void
note_exit(struct master *m, struct worker_slot *w, int wstatus)
{
	long long lived = clock_now_ms() - w->started_ms;
	int crashed = !w->retiring;

	if (WIFSIGNALED(wstatus) && WTERMSIG(wstatus) == SIGSYS)
		/* The sandbox's verdict (sandbox.c), even in a stopping worker:
		 * the worker's own line before this one names the call. */
		log_event(LOG_ERROR, "worker_exited", LOG_INT("pid", (long long)w->pid),
			  LOG_INT("signal", (long long)SIGSYS),
			  LOG_STR("cause", "sandbox_violation"),
			  LOG_INT("lived_ms", lived));
	else if (WIFSIGNALED(wstatus))
		log_event(crashed ? LOG_ERROR : LOG_INFO, "worker_exited",
			  LOG_INT("pid", (long long)w->pid),
			  LOG_INT("signal", (long long)WTERMSIG(wstatus)),
			  LOG_INT("lived_ms", lived));
	else
		log_event(crashed ? LOG_ERROR : LOG_INFO, "worker_exited",
			  LOG_INT("pid", (long long)w->pid),
			  LOG_INT("status", (long long)WEXITSTATUS(wstatus)),
			  LOG_INT("lived_ms", lived));

	if (crashed && !m->stopping) {
		metrics_worker_restart();
		if (lived < YOUNG_DEATH_MS) {
			long long delay = RESPAWN_DELAY_MIN_MS;
			for (int i = 0;
			     i < m->crash_streak && delay < RESPAWN_DELAY_MAX_MS; i++)
				delay *= 2;
			if (delay > RESPAWN_DELAY_MAX_MS)
				delay = RESPAWN_DELAY_MAX_MS;
			m->crash_streak++;
			m->respawn_at_ms = clock_now_ms() + delay;
			log_event(LOG_WARN, "respawn_delayed", LOG_INT("delay_ms", delay),
				  LOG_INT("crash_streak", (long long)m->crash_streak));
		} else {
			m->crash_streak = 0;
		}
	}
	w->pid = 0;
	spread_clear((int)(w - m->slots));
}

static void
reap(struct master *m)
{
	int wstatus;
	pid_t pid;

	while ((pid = waitpid(-1, &wstatus, WNOHANG)) > 0) {
		for (int i = 0; i < m->nslots; i++) {
			if (m->slots[i].pid == pid) {
				note_exit(m, &m->slots[i], wstatus);
				break;
			}
		}
	}
}

static int
live_workers(const struct master *m)
{
	int n = 0;

	for (int i = 0; i < m->nslots; i++)
		n += m->slots[i].pid != 0;
	return n;
}

/* Closes the sockets (a unix socket's file removed), so new connects fail fast. */
static void
close_listeners(struct master *m)
{
	if (m->listen_fd >= 0)
		listener_close(m->listen_fd, &m->cfg->listen);
	if (m->internal_fd >= 0)
		listener_close(m->internal_fd, &m->cfg->internal_listen);
	m->listen_fd = m->internal_fd = -1;
}

static void
begin_stop(struct master *m, int signo)
{
	if (m->stopping)
		return;
	m->stopping = 1;
	sd_notify(0, "STOPPING=1");
	log_event(LOG_INFO, "stopping", LOG_STR("signal", strsignal(signo)),
		  LOG_INT("workers", (long long)live_workers(m)));
	/* Workers keep their copies of the socket until their last request. */
	close_listeners(m);
	for (int i = 0; i < m->nslots; i++)
		if (m->slots[i].pid)
			retire(&m->slots[i], m->cfg->shutdown_timeout);
}

/* Tells systemd a reload is over once only new workers are left. */
static void
notify_reloaded(struct master *m)
{
	int fresh, old_active, old_retiring;

	if (!m->reloading || m->stopping)
		return;
	count_workers(m, &fresh, &old_active, &old_retiring);
	if (old_active + old_retiring > 0)
		return;
	m->reloading = 0;
	sd_notify(0, "READY=1");
}

/* SIGKILLs workers that overran their time to finish. */
static void
kill_overdue(struct master *m)
{
	long long now = clock_now_ms();

	for (int i = 0; i < m->nslots; i++) {
		struct worker_slot *w = &m->slots[i];
		if (w->pid && w->retiring && now >= w->kill_at_ms) {
			log_event(LOG_WARN, "worker_killed",
				  LOG_INT("pid", (long long)w->pid));
			kill(w->pid, SIGKILL);
			m->forced |= m->stopping;
			w->kill_at_ms = now + 1000;
		}
	}
}

/*
 * Becomes BAA_USER once the socket is bound, before any worker exists.
 * What the master does later needs no root: it forks from the socket it
 * holds, writes its log to stderr, and removes a unix socket's file, which
 * it is given here for that.
 */
static int
drop_privileges(const struct master *m, const struct privileges *privs)
{
	char err[512];

	if (listener_set_owner(&m->cfg->listen, privs->uid, privs->gid, err,
			       sizeof(err)) < 0 ||
	    (m->internal_fd >= 0 &&
	     listener_set_owner(&m->cfg->internal_listen, privs->uid, privs->gid, err,
				sizeof(err)) < 0) ||
	    privileges_drop(privs, err, sizeof(err)) < 0) {
		log_event(LOG_ERROR, "privilege_drop_failed", LOG_STR("reason", err));
		return -1;
	}
	log_event(LOG_INFO, "privileges_dropped", LOG_STR("user", privs->user),
		  LOG_INT("uid", (long long)privs->uid),
		  LOG_INT("gid", (long long)privs->gid));
	return 0;
}

/* 0 when path is unset or the user we now are can read it. */
static int
check_readable(const char *variable, const char *path, const struct privileges *privs)
{
	if (path == NULL || access(path, R_OK) == 0)
		return 0;
	fprintf(stderr,
		"Environment variable '%s' names a file that BAA_USER (%s) "
		"cannot read (%s).\n",
		variable, privs->user, strerror(errno));
	return -1;
}

/*
 * Files the workers open later, checked as the user they run as: what root
 * could read when the configuration was checked, BAA_USER may not. libcurl
 * reads SPOTIFY_CA_FILE at each new connection to Spotify, libpq
 * POSTGRES_SSLROOTCERT at each connection to PostgreSQL; unreadable, every
 * login or every request would fail, so baa does not start.
 */
static int
check_files_after_drop(const struct config *cfg, const struct privileges *privs)
{
	int spotify = check_readable("SPOTIFY_CA_FILE", cfg->spotify_ca_file, privs);
	int postgres =
		check_readable("POSTGRES_SSLROOTCERT", cfg->postgres_sslrootcert, privs);

	return spotify < 0 || postgres < 0 ? -1 : 0;
}

int
master_run(const struct config *cfg, const struct privileges *privs)
{
	struct master m = {.cfg = cfg, .pid = getpid(), .internal_fd = -1};
	char err[512], where[300];
	sigset_t signals;

	sigemptyset(&signals);
	sigaddset(&signals, SIGCHLD);
	sigaddset(&signals, SIGTERM);
	sigaddset(&signals, SIGINT);
	sigaddset(&signals, SIGHUP);
	if (sigprocmask(SIG_BLOCK, &signals, NULL) < 0)
		return 1;

	m.listen_fd = listener_open(&cfg->listen, cfg->io_timeout, err, sizeof(err));
	if (m.listen_fd < 0) {
		log_event(LOG_ERROR, "listen_failed", LOG_STR("reason", err));
		return 1;
	}
	if (CONFIG_HAS_INTERNAL(cfg)) {
		m.internal_fd = listener_open(&cfg->internal_listen, cfg->io_timeout, err,
					      sizeof(err));
		if (m.internal_fd < 0) {
			log_event(LOG_ERROR, "listen_failed",
				  LOG_STR("listener", "internal"),
				  LOG_STR("reason", err));
			close_listeners(&m);
			return 1;
		}
	}
	if (privs->drop && drop_privileges(&m, privs) < 0) {
		close_listeners(&m);
		return 1;
	}
	if (privs->drop && check_files_after_drop(cfg, privs) < 0) {
		close_listeners(&m);
		return EXIT_CONFIG;
	}
	/* Room for a full set plus the extra worker of a reload. */
	m.nslots = cfg->workers * 2 + 1;
	m.slots = calloc((size_t)m.nslots, sizeof(*m.slots));
	if (m.slots == NULL || spread_init(m.nslots) < 0) {
		free(m.slots);
		close_listeners(&m);
		return 1;
	}

	reconcile(&m);
	/* The socket is bound and the workers forked: a connection made now
	 * is served. Without NOTIFY_SOCKET (not a Type=notify unit) a no-op. */
	sd_notify(0, "READY=1");
	address_format(&cfg->listen, where, sizeof(where));
	log_event(LOG_INFO, "listening", LOG_STR("address", where),
		  LOG_INT("workers", (long long)cfg->workers),
		  LOG_INT("pid", (long long)getpid()));
	if (m.internal_fd >= 0) {
		address_format(&cfg->internal_listen, where, sizeof(where));
		log_event(LOG_INFO, "listening_internal", LOG_STR("address", where),
			  LOG_INT("services", (long long)cfg->service_keys.count));
	}
	/* Once, here: every worker would say it at each start. */
	if (!cfg->sandbox)
		log_event(LOG_WARN, "sandbox_off",
			  LOG_STR("reason",
				  "BAA_SANDBOX=off: workers may make any system call"));

	while (!m.stopping || live_workers(&m) > 0) {
		struct timespec tick = {.tv_sec = 0, .tv_nsec = 100 * 1000 * 1000};
		siginfo_t info;
		int sig = sigtimedwait(&signals, &info, &tick);

		switch (sig) {
		case SIGTERM:
		case SIGINT: begin_stop(&m, sig); break;
		case SIGHUP:
			if (!m.stopping) {
				m.generation++;
				m.reloading = 1;
				sd_notify(0, "RELOADING=1");
				log_event(LOG_INFO, "reloading",
					  LOG_INT("generation", (long long)m.generation));
			}
			break;
		default: break; /* the tick: timers below */
		}
		/* SIGCHLD or not: exits are cheap to look for, and never missed. */
		reap(&m);
		kill_overdue(&m);
		reconcile(&m);
		notify_reloaded(&m);
	}

	free(m.slots);
	log_event(LOG_INFO, "stopped", LOG_INT("forced", (long long)m.forced));
	return m.forced ? 1 : 0;
}
