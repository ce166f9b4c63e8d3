/*
 * Dropping root for good. The plan is made before anything is opened, so
 * that a wrong BAA_USER is a configuration error; the drop itself happens
 * in the master between binding the socket and forking the workers.
 */
#include "privileges.h"

#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

int
privileges_plan(const char *user, struct privileges *p, char *err, size_t errlen)
{
	uid_t euid = geteuid();
	const struct passwd *pw;

	*p = (struct privileges){.uid = euid, .gid = getegid()};
	if (user == NULL) {
		if (euid == 0) {
			snprintf(err, errlen,
				 "refusing to run as root; set BAA_USER to the "
				 "unprivileged user to run as.");
			return -1;
		}
		return 0;
	}
	/* cppcheck-suppress getpwnamCalled ; at start-up, with no threads */
	pw = getpwnam(user);
	if (pw == NULL) {
		snprintf(err, errlen, "BAA_USER '%s' is not a user on this system.",
			 user);
		return -1;
	}
	if (pw->pw_uid == 0) {
		snprintf(err, errlen,
			 "BAA_USER '%s' has uid 0; set it to an unprivileged user.",
			 user);
		return -1;
	}
	if (euid != 0) {
		/* Only root can switch users; naming oneself is harmless. */
		if (pw->pw_uid == euid)
			return 0;
		snprintf(err, errlen,
			 "cannot become BAA_USER '%s' when started as uid %ld: start "
			 "as root, or as that user, or unset BAA_USER.",
			 user, (long)euid);
		return -1;
	}
	if (strlen(pw->pw_dir) >= sizeof(p->home)) {
		snprintf(err, errlen,
			 "BAA_USER '%s' has a home directory longer than %zu "
			 "characters.",
			 user, sizeof(p->home) - 1);
		return -1;
	}
	p->drop = 1;
	p->uid = pw->pw_uid;
	p->gid = pw->pw_gid;
	snprintf(p->user, sizeof(p->user), "%s", user);
	snprintf(p->home, sizeof(p->home), "%s", pw->pw_dir);
	return 0;
}

int
privileges_forbid_dumps(void)
{
	return prctl(PR_SET_DUMPABLE, 0) < 0 ? -1 : 0;
}

/* Every one of the real, effective and saved ids is the target's. */
static int
ids_are(uid_t uid, gid_t gid)
{
	uid_t ru, eu, su;
	gid_t rg, eg, sg;

	if (getresuid(&ru, &eu, &su) < 0 || getresgid(&rg, &eg, &sg) < 0)
		return 0;
	return ru == uid && eu == uid && su == uid && rg == gid && eg == gid && sg == gid;
}

int
privileges_drop(const struct privileges *p, char *err, size_t errlen)
{
	const char *step;

	step = "initgroups";
	if (initgroups(p->user, p->gid) < 0)
		goto fail;
	step = "setresgid";
	if (setresgid(p->gid, p->gid, p->gid) < 0)
		goto fail;
	step = "setresuid";
	if (setresuid(p->uid, p->uid, p->uid) < 0)
		goto fail;
	/* A drop that could be undone is no drop: prove it cannot. */
	if (setuid(0) == 0 || seteuid(0) == 0 || setgid(0) == 0 ||
	    !ids_are(p->uid, p->gid)) {
		snprintf(err, errlen, "root could be regained after becoming '%s'",
			 p->user);
		return -1;
	}
	/*
	 * Changing the uid set the dumpable flag to fs.suid_dumpable, which a
	 * host may have at 1: clear it again, now that no credential changes
	 * any more. Forked workers inherit it.
	 */
	step = "prctl(PR_SET_DUMPABLE)";
	if (privileges_forbid_dumps() < 0)
		goto fail;
	/*
	 * libpq looks in $HOME/.postgresql for a client certificate whenever
	 * it speaks TLS, and fails on a directory it may not search: root's
	 * HOME, kept, broke every TLS connection (and made prefer fall back to
	 * plain text). The user we became looks in its own home, as after su -l.
	 */
	step = "setenv(HOME)";
	if (setenv("HOME", p->home, 1) < 0)
		goto fail;
	return 0;
fail:
	snprintf(err, errlen, "%s for '%s': %s", step, p->user, strerror(errno));
	return -1;
}
