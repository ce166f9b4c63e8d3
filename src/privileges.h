/*
 * Who `baa serve` runs as. Started as root, the master binds its socket
 * and then becomes BAA_USER for good, before the first worker is forked:
 * no request is ever served by a process that could become root again.
 */
#ifndef BAA_PRIVILEGES_H
#define BAA_PRIVILEGES_H

#include <stddef.h>
#include <sys/types.h>

struct privileges {
	int drop; /* started as root: become uid/gid after binding */
	uid_t uid;
	gid_t gid;
	char user[33];	/* BAA_USER, bounded by its parser */
	char home[256]; /* its home directory, HOME after the drop */
};

/*
 * Decides from the effective uid and BAA_USER (NULL when unset) whether
 * and to whom to drop. Refuses (-1, with a message in err) to serve as
 * root, to become an unknown user or a user with uid 0, and, when not
 * started as root, to run as anyone but the current user.
 */
int privileges_plan(const char *user, struct privileges *p, char *err, size_t errlen);

/*
 * Makes the process non-dumpable: no core file, and no other process of
 * the same user may ptrace it or read its /proc/PID/mem or environ. The
 * service user (nobody, often) is shared by other services, and these
 * processes hold the client secret, the keys and users' tokens. Returns
 * 0, or -1 with errno set.
 */
int privileges_forbid_dumps(void);

/*
 * Becomes p's user for good: its supplementary groups, then its group, then
 * its uid, in that order (once the uid is gone, the groups can no longer be
 * changed). Checks that root cannot be regained, makes the process
 * non-dumpable again (the uid change reset the flag) and sets HOME to the
 * user's home. Returns 0, or -1 with the reason in err.
 */
int privileges_drop(const struct privileges *p, char *err, size_t errlen);

#endif
