"""`baa serve` started as root: it binds, then becomes BAA_USER for good
before forking workers; without BAA_USER (or with root, or an unknown user)
it refuses to start."""

import os
import pwd
import signal
import socket
import subprocess
import unittest

from harness import (SECRET_KEY, UNPRIVILEGED_USER, BaaTestCase, as_unprivileged,
                     child_pids, free_port, make_temp_dir, pid_alive, port_is_free,
                     read_text, register_process, kill_process_tree, wait_until)
from harness.tags import root_only

EXIT_CONFIG = 78
REFUSE_ROOT = ("baa serve: refusing to run as root; set BAA_USER to the unprivileged "
               "user to run as.\n")


def status_ids(pid):
    """{'Uid': [real, effective, saved, fs], 'Gid': [...], 'Groups': [...]}."""
    out = {}
    for line in read_text("/proc/%d/status" % pid).splitlines():
        key, _, value = line.partition(":")
        if key in ("Uid", "Gid", "Groups"):
            out[key] = [int(v) for v in value.split()]
    return out


def environ_as_nobody(pid):
    """cat /proc/<pid>/environ as the unprivileged user. For a non-dumpable
    process the kernel makes that file root's, so even its own user is
    refused; a dumpable one of the same user is readable."""
    return subprocess.run(as_unprivileged(["cat", "/proc/%d/environ" % pid]),
                          capture_output=True, timeout=30, stdin=subprocess.DEVNULL)


@root_only("dropping privileges")
class DropToBaaUserTest(BaaTestCase):

    workers = 2

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        pw = pwd.getpwnam(UNPRIVILEGED_USER)
        cls.uid, cls.gid = pw.pw_uid, pw.pw_gid
        cls.groups = sorted(set(os.getgrouplist(UNPRIVILEGED_USER, pw.pw_gid)))

    def start_on_socket(self, **extra):
        self.sock = os.path.join(make_temp_dir("baa-it-priv-"), "baa.sock")
        # nginx's workers run as nobody too (the harness's default): the
        # socket must be reachable the way a front-end reaches it.
        return self.start_stack(self.env(BAA_LISTEN=self.sock, BAA_USER=UNPRIVILEGED_USER, **extra))

    def assertRunsAsNobody(self, pid, what):
        ids = status_ids(pid)
        self.assertEqual(ids["Uid"], [self.uid] * 4, "%s %d: real/effective/saved/fs uid" % (what, pid))
        self.assertEqual(ids["Gid"], [self.gid] * 4, "%s %d: real/effective/saved/fs gid" % (what, pid))
        self.assertEqual(sorted(ids["Groups"]), self.groups, "%s %d: supplementary groups" % (what, pid))

    def assertAllRunAsNobody(self, baa):
        self.assertRunsAsNobody(baa.pid, "master")
        workers = baa.workers()
        self.assertEqual(len(workers), self.workers)
        for pid in workers:
            self.assertRunsAsNobody(pid, "worker")

    def test_master_and_every_worker_run_as_baa_user_and_serve_through_nginx(self):
        baa, nginx = self.start_on_socket()
        self.assertAllRunAsNobody(baa)
        self.get_json(nginx, "/healthz", expect=200)
        self.get_json(nginx, "/readyz", expect=200)
        dropped = [r for r in baa.log_records() if r.get("event") == "privileges_dropped"]
        self.assertEqual(len(dropped), 1, baa.log())
        self.assertEqual(dropped[0]["user"], UNPRIVILEGED_USER)
        # The dropped master owns its socket's file, so that it can remove it.
        self.assertEqual(os.stat(self.sock).st_uid, self.uid)

    def test_other_processes_of_the_same_user_cannot_read_a_worker(self):
        # nobody is shared by many services: a worker holds the cookie key
        # and users' tokens, so it is non-dumpable, and another process of
        # the same user can neither read its memory nor its environment.
        baa, nginx = self.start_on_socket()
        worker = baa.workers()[0]
        res = subprocess.run(as_unprivileged(["cat", "/proc/%d/environ" % worker]),
                             capture_output=True, timeout=30, stdin=subprocess.DEVNULL)
        self.assertNotEqual(res.returncode, 0, "nobody could read a worker's environment")
        self.assertNotIn(SECRET_KEY.encode(), res.stdout)
        self.assertIn(b"Permission denied", res.stderr)

    def test_sighup_roll_replaces_workers_with_baa_user_workers(self):
        baa, nginx = self.start_on_socket()
        before = set(baa.workers())
        baa.signal(signal.SIGHUP)

        def replaced():
            now = set(baa.workers())
            return len(now) == self.workers and not (now & before)
        wait_until(replaced, 15, message="workers not replaced after SIGHUP: before=%r now=%r"
                   % (sorted(before), baa.workers()))
        self.assertAllRunAsNobody(baa)
        self.get_json(nginx, "/healthz", expect=200)

    def test_a_worker_killed_with_sigkill_is_replaced_by_a_baa_user_worker(self):
        baa, nginx = self.start_on_socket()
        victim = baa.workers()[0]
        os.kill(victim, signal.SIGKILL)

        def replaced():
            now = baa.workers()
            return len(now) == self.workers and victim not in now
        wait_until(replaced, 10, message="worker %d not replaced: %r" % (victim, baa.workers()))
        self.assertAllRunAsNobody(baa)
        self.get_json(nginx, "/healthz", expect=200)

    def test_sigterm_exits_0_and_the_dropped_master_removes_its_socket(self):
        baa, nginx = self.start_on_socket()
        self.get_json(nginx, "/healthz", expect=200)
        workers = baa.workers()
        baa.signal(signal.SIGTERM)
        self.assertEqual(baa.wait(10), 0, baa.log()[-2000:])
        wait_until(lambda: not [p for p in workers if pid_alive(p)], 3,
                   message="workers outlived the master")
        self.assertFalse(os.path.exists(self.sock), "unix socket file left behind")


@root_only("the refusals to serve as root")
class RefuseRootTest(BaaTestCase):
    """Refusals happen before anything is bound: nothing listens afterwards."""

    def serve_refused(self, **extra):
        port = free_port()
        res = self.run_baa(["serve"], self.env(BAA_LISTEN="127.0.0.1:%d" % port, **extra),
                           timeout=10)
        self.assertEqual(res.returncode, EXIT_CONFIG, self.describe(res))
        self.assertEqual(res.stdout, "")
        self.assertTrue(port_is_free(port), "a refused baa serve left its port bound")
        return res.stderr

    def test_root_without_baa_user_is_refused_with_exit_78(self):
        self.assertEqual(self.serve_refused(BAA_USER=None), REFUSE_ROOT)

    def test_baa_user_root_is_refused(self):
        self.assertEqual(self.serve_refused(BAA_USER="root"),
                         "baa serve: BAA_USER 'root' has uid 0; set it to an unprivileged user.\n")

    def test_unknown_baa_user_is_refused(self):
        self.assertEqual(self.serve_refused(BAA_USER="no-such-user"),
                         "baa serve: BAA_USER 'no-such-user' is not a user on this system.\n")

    def test_an_empty_or_malformed_baa_user_is_a_configuration_error(self):
        self.assertEqual(self.serve_refused(BAA_USER=""), "Environment variable 'BAA_USER' is empty.\n")
        self.assertIn("'BAA_USER' must be a user name", self.serve_refused(BAA_USER="no body"))

    def test_migrate_as_root_needs_no_baa_user(self):
        # The database commands listen on nothing and run once: root is allowed.
        res = self.run_baa(["migrate"], self.env(BAA_USER=None), timeout=30)
        self.assertEqual(res.returncode, 0, self.describe(res))


@root_only("starting baa as another user")
class StartedUnprivilegedTest(BaaTestCase):
    """Started as a user other than root, baa cannot switch users."""

    def run_as_nobody(self, args, env):
        log = os.path.join(make_temp_dir("baa-it-priv-"), "baa.log")
        with open(log, "wb") as out:
            pw = pwd.getpwnam(UNPRIVILEGED_USER)
            proc = register_process(subprocess.Popen(
                [self.cli.bin] + args, env=env, stdin=subprocess.DEVNULL, stdout=out,
                stderr=subprocess.STDOUT, cwd=self.tmp, start_new_session=True,
                user=pw.pw_uid, group=pw.pw_gid, extra_groups=[]))
        self.addCleanup(kill_process_tree, proc)
        return proc, log

    def serve_as_nobody(self, baa_user):
        env = self.env(BAA_LISTEN="127.0.0.1:%d" % free_port(), BAA_USER=baa_user)
        return self.run_as_nobody(["serve"], env)

    def assertNotDumpable(self, pid, what):
        res = environ_as_nobody(pid)
        self.assertNotEqual(res.returncode, 0, "%s %d: %s could read its environment"
                            % (what, pid, UNPRIVILEGED_USER))
        self.assertNotIn(SECRET_KEY.encode(), res.stdout)
        self.assertIn(b"Permission denied", res.stderr, "%s %d" % (what, pid))

    def test_naming_another_user_is_refused(self):
        proc, log = self.serve_as_nobody("root")
        self.assertEqual(proc.wait(timeout=10), EXIT_CONFIG, read_text(log))
        self.assertIn("BAA_USER 'root' has uid 0", read_text(log))
        other = next(name for name in ("daemon", "bin", "sys") if _user_exists(name))
        proc, log = self.serve_as_nobody(other)
        self.assertEqual(proc.wait(timeout=10), EXIT_CONFIG, read_text(log))
        self.assertIn("cannot become BAA_USER '%s' when started as uid %d" % (
            other, pwd.getpwnam(UNPRIVILEGED_USER).pw_uid), read_text(log))

    def test_naming_the_current_user_serves_without_dropping(self):
        proc, log = self.serve_as_nobody(UNPRIVILEGED_USER)
        wait_until(lambda: "event=listening" in read_text(log) or proc.poll() is not None, 15)
        self.assertIsNone(proc.poll(), read_text(log))
        self.assertNotIn("privileges_dropped", read_text(log))
        proc.send_signal(signal.SIGTERM)
        self.assertEqual(proc.wait(timeout=10), 0, read_text(log))

    def test_the_check_reads_a_dumpable_process_of_the_same_user(self):
        # The control for the two tests below: refusal comes from the
        # dumpable flag, not from /proc being closed to nobody.
        sleeper = register_process(subprocess.Popen(
            as_unprivileged(["sleep", "30"]), stdin=subprocess.DEVNULL,
            start_new_session=True))
        self.addCleanup(kill_process_tree, sleeper)
        sleep = wait_until(lambda: [p for p in [sleeper.pid] + child_pids(sleeper.pid)
                                    if read_text("/proc/%d/comm" % p).strip() == "sleep"], 5)
        res = environ_as_nobody(sleep[0])
        self.assertEqual(res.returncode, 0, res.stderr)

    def test_started_as_the_service_user_master_and_workers_are_not_dumpable(self):
        # No uid change, so nothing but baa itself clears the flag: nobody
        # is shared by many services, and these processes hold the cookie
        # key, the client secret and users' tokens.
        proc, log = self.serve_as_nobody(UNPRIVILEGED_USER)
        wait_until(lambda: "event=listening" in read_text(log) or proc.poll() is not None, 15)
        self.assertIsNone(proc.poll(), read_text(log))
        workers = wait_until(lambda: child_pids(proc.pid) if len(child_pids(proc.pid)) ==
                             self.workers else None, 5, message="workers not started")
        self.assertNotDumpable(proc.pid, "master")
        for pid in workers:
            self.assertNotDumpable(pid, "worker")

    def test_rotate_keys_started_as_the_service_user_is_not_dumpable(self):
        # rotate-keys holds every token key. It is caught alive by giving it
        # a PostgreSQL that accepts the connection and never answers: while
        # libpq waits (connect_timeout), its environment is checked.
        silent = socket.socket()
        self.addCleanup(silent.close)
        silent.bind(("127.0.0.1", 0))
        silent.listen(4)
        silent.settimeout(15)
        env = self.env(POSTGRES_URL="127.0.0.1:%d" % silent.getsockname()[1])
        proc, log = self.run_as_nobody(["rotate-keys"], env)
        conn, _ = silent.accept()
        self.addCleanup(conn.close)
        self.assertIsNone(proc.poll(), read_text(log))
        self.assertNotDumpable(proc.pid, "rotate-keys")


def _user_exists(name):
    try:
        pwd.getpwnam(name)
        return True
    except KeyError:
        return False


if __name__ == "__main__":
    unittest.main()
