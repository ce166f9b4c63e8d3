/*
 * The worker's allow-list of system calls (libseccomp). The list is what
 * the worker was measured to call after set-up (strace -f on workers
 * through the integration suite: requests, logins and refreshes over
 * HTTPS, PostgreSQL over TLS and its restarts, multi-host names, the
 * housekeeping and a graceful stop; README, "The workers' sandbox"), plus
 * what the same code calls on paths the suite does not reach. Anything
 * else traps: a SIGSYS handler writes one log line naming the call and
 * the worker dies of the signal, which the master logs and answers by
 * starting a new worker.
 */
#include "sandbox.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <seccomp.h>

#include "log.h"

/*
 * Calls allowed with any arguments: what the workers were seen to make
 * (strace -f through the integration suite, README "The workers'
 * sandbox"), and what the same code makes on paths the suite does not
 * reach, marked "unseen" with the path, so that nobody tidies them away.
 * Grouped by purpose, which clang-format would undo.
 */
/* clang-format off */
static const int allowed[] = {
	/* requests: epoll, accept, libfcgi's reads and writes, the log */
	SCMP_SYS(epoll_pwait), SCMP_SYS(epoll_ctl), SCMP_SYS(accept),
	SCMP_SYS(accept4), SCMP_SYS(read), SCMP_SYS(write), SCMP_SYS(close),
	SCMP_SYS(shutdown), SCMP_SYS(fcntl), SCMP_SYS(getpid), SCMP_SYS(poll),
	SCMP_SYS(writev), /* unseen: a vectored log write */
	/* unseen: libfcgi's graceful close waits in select */
	SCMP_SYS(select), SCMP_SYS(pselect6),
	/* unseen: accept failing for want of descriptors pauses (worker.c) */
	SCMP_SYS(nanosleep), SCMP_SYS(clock_nanosleep), SCMP_SYS(restart_syscall),
	/* unseen: the vDSO falls back to them on some clock sources */
	SCMP_SYS(clock_gettime), SCMP_SYS(gettimeofday), SCMP_SYS(time),
	/* PostgreSQL and Spotify: (re)connects, TLS, libcurl's wake-up pair */
	SCMP_SYS(socket), SCMP_SYS(connect), SCMP_SYS(socketpair),
	SCMP_SYS(getsockopt), SCMP_SYS(setsockopt), SCMP_SYS(getsockname),
	SCMP_SYS(getpeername), SCMP_SYS(sendto), SCMP_SYS(recvfrom),
	/* unseen: OpenSSL reseeding its generator (hours apart) */
	SCMP_SYS(getrandom),
	/* unseen: DNS over the network, and getaddrinfo's netlink query */
	SCMP_SYS(sendmsg), SCMP_SYS(sendmmsg), SCMP_SYS(recvmsg), SCMP_SYS(bind),
	/* unseen: newer libcurl's wake-up */
	SCMP_SYS(pipe2), SCMP_SYS(eventfd2),
	/* files read at a connection: CA bundles, libpq's ~/.postgresql
	 * (Kore's Debian build tripped on its stat), /etc/hosts, resolv.conf */
	SCMP_SYS(newfstatat), SCMP_SYS(lseek), SCMP_SYS(uname),
	/* unseen: the same through older calls, and libpq asking who it is */
	SCMP_SYS(fstat), SCMP_SYS(stat), SCMP_SYS(lstat), SCMP_SYS(statx),
	SCMP_SYS(access), SCMP_SYS(faccessat), SCMP_SYS(faccessat2),
	SCMP_SYS(getuid), SCMP_SYS(geteuid), SCMP_SYS(getgid), SCMP_SYS(getegid),
	/* memory: malloc, thread stacks, nss modules getaddrinfo may load */
	SCMP_SYS(brk), SCMP_SYS(mmap), SCMP_SYS(munmap), SCMP_SYS(mprotect),
	SCMP_SYS(madvise), SCMP_SYS(mremap),
	/* libcurl's resolver thread: its start, locks and end */
	SCMP_SYS(futex), SCMP_SYS(set_robust_list), SCMP_SYS(rseq), SCMP_SYS(exit),
	SCMP_SYS(gettid), SCMP_SYS(sched_yield),
	/* signals: the stop signals' wait, and this file's handler */
	SCMP_SYS(rt_sigaction), SCMP_SYS(rt_sigprocmask), SCMP_SYS(rt_sigreturn),
	SCMP_SYS(exit_group),
#ifdef BAA_SANITIZERS
	/*
	 * The sanitizers' runtime, in the --enable-sanitizers build only
	 * (measured as above): it gives each thread an alternate signal
	 * stack, takes it down at exit, and asks a new thread's CPU set.
	 */
	SCMP_SYS(sigaltstack), SCMP_SYS(sched_getaffinity),
	/* and to report a bug: the libraries' names for the stack trace */
	SCMP_SYS(readlink),
#endif
};
/* clang-format on */

/*
 * A comparison of a call's argument, every field named: libseccomp's
 * SCMP_A0..SCMP_A5 leave datum_b out, which clang's
 * -Wmissing-field-initializers (the fuzz build) refuses. For
 * SCMP_CMP_MASKED_EQ, a is the mask and b the value.
 */
static struct scmp_arg_cmp
argument(unsigned int arg, enum scmp_compare op, scmp_datum_t a, scmp_datum_t b)
{
	return (struct scmp_arg_cmp){.arg = arg, .op = op, .datum_a = a, .datum_b = b};
}

/*
 * openat only to read: nothing a worker does writes a file, so a worker
 * taken over cannot plant one either.
 */
static int
allow_reading_files(scmp_filter_ctx ctx)
{
#ifdef BAA_SANITIZERS
	/*
	 * A sanitizer's report goes to a file it creates (log_path) with
	 * open(2) itself, after asking whether the file is a terminal: in
	 * that build only, so that a bug in a worker is reported, not hidden
	 * behind a sandbox_violation (measured with an overflow planted in a
	 * worker through LD_PRELOAD).
	 */
	int rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(open), 0);
	if (rc == 0)
		rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(ioctl), 1,
				      argument(1, SCMP_CMP_EQ, TCGETS, 0));
	return rc < 0 ? rc : seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(openat), 0);
#else
	return seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(openat), 1,
				argument(2, SCMP_CMP_MASKED_EQ,
					 O_WRONLY | O_RDWR | O_CREAT | O_TRUNC, 0));
#endif
}

/*
 * Threads, never processes: glibc starts a thread with clone3, whose
 * flags sit in memory the filter cannot read, so clone3 fails with ENOSYS
 * and glibc falls back to clone, whose flags it can: CLONE_THREAD or
 * nothing. A worker can neither fork nor run another program.
 */
static int
allow_threads_only(scmp_filter_ctx ctx)
{
	int rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(clone3), 0);

	if (rc < 0)
		return rc;
	return seccomp_rule_add(
		ctx, SCMP_ACT_ALLOW, SCMP_SYS(clone), 1,
		argument(0, SCMP_CMP_MASKED_EQ, CLONE_THREAD, CLONE_THREAD));
}

/*
 * Signals to itself only (raise, pthread_kill): the handler below dies by
 * raising SIGSYS; other processes of BAA_USER are out of reach.
 */
static int
allow_signals_to_self(scmp_filter_ctx ctx)
{
	return seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(tgkill), 1,
				argument(0, SCMP_CMP_EQ, (scmp_datum_t)getpid(), 0));
}

/*
 * The handler may only do async-signal-safe work, so the names of the
 * calls are looked up (libseccomp allocates them) before the filter is
 * loaded. Numbers past the table are logged without a name.
 */
#define NAMES_MAX 512
static char *names[NAMES_MAX];

static void
resolve_names(void)
{
	for (int i = 0; i < NAMES_MAX; i++)
		if (names[i] == NULL)
			names[i] = seccomp_syscall_resolve_num_arch(SCMP_ARCH_NATIVE, i);
}

/*
 * One line, straight to stderr: the worker's buffered lines may be lost,
 * but this one says which call it was. SA_RESETHAND has made SIGSYS's
 * action the default again, so raising it ends the worker with SIGSYS.
 */
static void
on_violation(int signo, siginfo_t *info, void *context)
{
	int nr = info->si_syscall;
	const char *name = nr >= 0 && nr < NAMES_MAX && names[nr] ? names[nr] : "";

	log_event_now(LOG_ERROR, "sandbox_violation", LOG_INT("syscall", nr),
		      LOG_STR("name", name), LOG_INT("pid", getpid()));
	raise(SIGSYS);
}

static int
install_handler(void)
{
	struct sigaction sa = {.sa_sigaction = on_violation,
			       .sa_flags = SA_SIGINFO | SA_RESETHAND | SA_NODEFER};

	sigemptyset(&sa.sa_mask);
	return sigaction(SIGSYS, &sa, NULL);
}

/* Each returns as libseccomp does: 0, or a negative errno. */
static int
add_rules(scmp_filter_ctx ctx)
{
	int rc = 0;

	for (size_t i = 0; i < sizeof(allowed) / sizeof(allowed[0]) && rc == 0; i++)
		rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, allowed[i], 0);
	if (rc == 0)
		rc = allow_reading_files(ctx);
	if (rc == 0)
		rc = allow_threads_only(ctx);
	if (rc == 0)
		rc = allow_signals_to_self(ctx);
	return rc;
}

int
sandbox_enter(const struct config *cfg)
{
	scmp_filter_ctx ctx = NULL;
	const char *step;
	int err = 0;

	if (!cfg->sandbox)
		return 0;
	resolve_names();
	step = "sigaction(SIGSYS)";
	if (install_handler() < 0) {
		err = errno;
		goto out;
	}
	/* No set-uid program could gain privileges, even if exec got through. */
	step = "prctl(PR_SET_NO_NEW_PRIVS)";
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) {
		err = errno;
		goto out;
	}
	step = "seccomp_init";
	ctx = seccomp_init(SCMP_ACT_TRAP);
	if (ctx == NULL) {
		err = ENOMEM;
		goto out;
	}
	step = "seccomp_rule_add";
	if ((err = -add_rules(ctx)) != 0)
		goto out;
	/* Any thread a library has started by now is held to the list too. */
	step = "seccomp_load";
	if ((err = -seccomp_attr_set(ctx, SCMP_FLTATR_CTL_TSYNC, 1)) == 0)
		err = -seccomp_load(ctx);
out:
	if (err != 0)
		log_event(LOG_ERROR, "sandbox_failed", LOG_STR("step", step),
			  LOG_STR("reason", strerror(err)));
	seccomp_release(ctx);
	return err != 0 ? -1 : 0;
}
