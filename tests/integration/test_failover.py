"""A real failover under load: pg_auto_failover (Debian's
postgresql-15-auto-failover) with a monitor and two PostgreSQL 15 nodes in
synchronous replication, two baa instances with both nodes in POSTGRES_URL
behind the shipped nginx site, wrk on GET /me and a login storm through the
site and the fake Spotify; then the primary goes.

Why pg_auto_failover rather than Patroni with etcd: one Debian package, no
consensus store to run beside it (its monitor is a PostgreSQL database), and
it is made for exactly two nodes with a quorum-synchronous standby, with
`pg_autoctl perform switchover` for the clean case. Patroni needs etcd
(three members to survive one's loss) and its REST API on every node, and
gives two nodes nothing more.

Three cases on one formation (it settles again between them, the roles
swapped or not: each case finds the primary it stops):
  - kill -9 of the primary's postmaster with the node's keeper (`pg_autoctl
    run`) paused from just before the kill until the standby takes writes,
    as when the whole node dies and comes back: the monitor fails over;
  - kill -9 of the primary's postmaster alone: its keeper starts postgres
    again within seconds and races the monitor's health checks (see
    harness/autofailover.py), so either the same node is the primary again
    or the other one is; both pass, and the test says which;
  - a clean switchover (`pg_autoctl perform switchover`).
In each, wrk (tests/load/seconds.lua: per-second counts) sends GET /me with
a session made by a login through the site, and STORM_CLIENTS threads log
in through the site and the fake again and again (each login a new Spotify
account), from STOP_AFTER seconds before the stop to LOAD_SECONDS in all.
The test prints how long requests failed (from the first failure to the
last), how many failed and succeeded, and how many logins were acknowledged
with a 302 and a session cookie; then asserts that the service recovered
within RECOVERY_BOUND seconds of the stop and nothing failed in the last
CLEAN_TAIL seconds, that every acknowledged login's session and user rows
are on the new primary, that the new primary is the other node (but in the
race above), and that /readyz answers 200 again.

Then, cheaper: a cluster and its hot standby (pg_basebackup -R, nothing to
promote it), both in POSTGRES_URL; the primary stopped cleanly: /readyz
answers 503 while no host takes writes, and 200 once the primary is back.

BAA_IT_VERBOSE=1 prints the per-second counts as well.
"""

import collections
import os
import shutil
import subprocess
import sys
import threading
import time
import unittest

from harness import (TEST_REDIRECT_URI, AutoFailoverFormation, Baa, CookieSigner,
                     Nginx, PostgresCluster, SiteNginx, clean_env, db_env, free_port,
                     make_temp_dir, register_process, kill_process_tree, require_baa,
                     spotify_env, start_fake_spotify, wait_until)
from harness.base import REPO
from harness.tags import slow

WRK = shutil.which("wrk") or "/usr/bin/wrk"
SECONDS_LUA = os.path.join(REPO, "tests", "load", "seconds.lua")
VERBOSE = os.environ.get("BAA_IT_VERBOSE") == "1"

WORKERS = 2            # per instance
STORM_CLIENTS = 4      # threads logging in again and again
STOP_AFTER = 5         # seconds of load before the primary goes
LOAD_SECONDS = 40      # wrk's -d: load from the start to the end
RECOVERY_BOUND = 30    # seconds after the stop by which requests must succeed again
CLEAN_TAIL = 8         # the load's last seconds, in which nothing may fail


class Storm:
    """STORM_CLIENTS threads doing whole logins through the site and the
    fake until stopped. Each login: (start, end, ok, what failed, session
    cookie) with wall-clock times (time.time(), as wrk's os.time())."""

    def __init__(self, site, fake, clients=STORM_CLIENTS):
        self.site = site
        self.fake = fake
        self.stop_event = threading.Event()
        self.logins = []
        self._lock = threading.Lock()
        self.threads = [threading.Thread(target=self._loop, daemon=True) for _ in range(clients)]

    def _loop(self):
        while not self.stop_event.is_set():
            t0 = time.time()
            try:
                r = self.site.browser().login(self.fake)
                ok = r.ok
                failed = None if ok else "login %s, authorize %s, callback %s" % tuple(
                    getattr(x, "status", None) for x in (r.login, r.authorize, r.callback))
                cookie = r.session_cookie if ok else None
            except Exception as exc:  # recorded, never raised in a thread
                ok, failed, cookie = False, "%s: %s" % (type(exc).__name__, exc), None
            with self._lock:
                self.logins.append((t0, time.time(), ok, failed, cookie))

    def start(self):
        for t in self.threads:
            t.start()
        return self

    def stop(self):
        self.stop_event.set()
        for t in self.threads:
            t.join(30)
        with self._lock:
            return list(self.logins)


class Wrk:
    """wrk with tests/load/seconds.lua on GET /me with a session, in the
    background for `seconds`."""

    def __init__(self, site, cookie, seconds):
        self.out = os.path.join(make_temp_dir("baa-it-wrk-"), "seconds")
        env = dict(os.environ, BAA_SESSION=cookie, BAA_SECONDS_OUT=self.out)
        self.proc = register_process(subprocess.Popen(
            [WRK, "-t2", "-c4", "-d%ds" % seconds, "--timeout", "15s", "-s", SECONDS_LUA,
             "https://127.0.0.1:%d/me" % site.https_port],
            env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True, start_new_session=True))

    def finish(self, timeout):
        try:
            out, _ = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            kill_process_tree(self.proc)
            out, _ = self.proc.communicate()
            raise AssertionError("wrk did not finish within %ss:\n%s" % (timeout, out))
        summary = {}
        for line in out.splitlines():
            if line.startswith("BAA-WRK "):
                summary = {k: int(v) for k, v in (kv.split("=") for kv in line.split()[1:])}
        if not summary:
            raise AssertionError("wrk printed no BAA-WRK line:\n%s" % out)
        return summary, self.per_second()

    def per_second(self):
        """{unix second: [ok, failed, statuses]} over every thread's file."""
        seconds = {}
        for name in os.listdir(os.path.dirname(self.out)):
            with open(os.path.join(os.path.dirname(self.out), name)) as f:
                for line in f:
                    parts = line.split()
                    if len(parts) < 3:
                        continue
                    s = seconds.setdefault(int(parts[0]), [0, 0, ""])
                    s[0] += int(parts[1])
                    s[1] += int(parts[2])
                    if len(parts) > 3 and parts[3] not in s[2]:
                        s[2] += parts[3]
        return seconds


class Watch(threading.Thread):
    """Asks the formation every 0.1 s which node takes writes, from the
    stop to the end of the load: seen, [(time.time(), "127.0.0.1:PORT" or
    None)]; and, for a failure's report, timeline: each change of what
    the nodes say of themselves and of the monitor's states, [(time,
    {node name: node_view}, states)]."""

    def __init__(self, formation):
        super().__init__(daemon=True)
        self.formation = formation
        self.seen = []
        self.timeline = []
        self.stop_event = threading.Event()
        self.stop_error = None

    def record_stop(self, stop):
        try:
            stop()
        except Exception as exc:  # reported by the test, never raised in a thread
            self.stop_error = exc

    def run(self):
        while not self.stop_event.is_set():
            try:
                self.seen.append((time.time(), self.formation.primary()))
                self.note_change()
            except Exception:  # a node between states: ask again
                pass
            self.stop_event.wait(0.1)

    def note_change(self):
        f = self.formation
        views = {n.name: f.node_view(n) for n in f.nodes}
        states = f.states()
        if not self.timeline or self.timeline[-1][1:] != (views, states):
            self.timeline.append((time.time(), views, states))

    def report(self, stopped_at):
        """The timeline and the monitor's events, in time order, relative to the stop."""
        lines = [(t, "  %+6.1f s  %s  monitor %s" % (t - stopped_at, "; ".join(
            "%s %s" % kv for kv in sorted(views.items())), sorted(states.items())))
            for t, views, states in self.timeline]
        lines += [(e[0], "  %+6.1f s  event %s %s/%s: %s" % (e[0] - stopped_at, e[1], e[2], e[3], e[4][:160]))
                  for e in self.formation.events(stopped_at - 2)]
        return "\n".join(text for _, text in sorted(lines))

    def stop(self):
        self.stop_event.set()
        if self.is_alive():
            self.join(10)

    def back_at(self, old):
        """When a node was first seen taking writes after the stop: another
        than old, or old after a moment with none."""
        gap = False
        for t, p in list(self.seen):
            if p is None:
                gap = True
            elif p != old or gap:
                return t
        return None


class Outcome:
    """The figures of one case, relative to the moment of the stop."""

    def __init__(self, label, stopped_at, promoted_at, summary, seconds, logins):
        self.label = label
        self.stopped_at = stopped_at
        self.promoted_after = promoted_at - stopped_at
        self.summary = summary
        self.seconds = seconds
        self.logins = logins
        self.me_ok = sum(v[0] for v in seconds.values())
        self.me_failed = sum(v[1] for v in seconds.values())
        self.socket_errors = sum(summary[k] for k in ("connect", "read", "write", "timeout"))
        self.me_bad_seconds = sorted(s for s, v in seconds.items() if v[1])
        self.login_ok = [l for l in logins if l[2]]
        self.login_failed = [l for l in logins if not l[2]]
        # Failure times: a wrk second with a failure counts from its start
        # to its end (os.time() says no more); a failed login at its end.
        # The second the stop fell in counts from the stop.
        starts = [max(s, stopped_at) if s <= stopped_at < s + 1 else s for s in self.me_bad_seconds] + \
            [l[1] for l in self.login_failed]
        ends = [s + 1 for s in self.me_bad_seconds] + [l[1] for l in self.login_failed]
        self.first_failure = min(starts) - stopped_at if starts else None
        self.last_failure = max(ends) - stopped_at if ends else None
        self.window = (self.last_failure - self.first_failure) if starts else 0.0
        login_fail_times = [l[1] - stopped_at for l in self.login_failed]
        self.login_window = (max(login_fail_times) - min(login_fail_times)) if login_fail_times else 0.0

    def line(self):
        when = ("from %+.1f s to %+.1f s of the stop" % (self.first_failure, self.last_failure)
                if self.first_failure is not None else "never")
        reasons = collections.Counter(l[3] for l in self.login_failed)
        return ("%s: requests failed %s (window %.1f s); GET /me (wrk): %d succeeded, %d failed "
                "(%s), %d socket errors, slowest %.1f s; logins: %d acknowledged (302 + session), "
                "%d failed (%s; their window %.1f s); the new primary took writes %.1f s after "
                "the stop" % (
                    self.label, when, self.window, self.me_ok, self.me_failed,
                    ", ".join(sorted({v[2] for v in self.seconds.values() if v[2]})) or "-",
                    self.socket_errors, self.summary["max_us"] / 1e6, len(self.login_ok),
                    len(self.login_failed), ", ".join("%d: %s" % (n, r) for r, n in reasons.most_common())
                    or "-", self.login_window, self.promoted_after))

    def per_second_table(self):
        return "\n".join("  %+4d s  ok %5d  failed %4d %s" % (s - int(self.stopped_at), v[0], v[1], v[2])
                         for s, v in sorted(self.seconds.items()))


@slow("a pg_auto_failover formation failed over and switched over under load (~3 min)")
class FailoverUnderLoadTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        require_baa()
        cls.formation = AutoFailoverFormation()
        cls.addClassCleanup(cls.formation.stop)
        cls.formation.start()
        cls.fake = start_fake_spotify()
        cls.addClassCleanup(cls.fake.stop)
        cls.cli = Baa(make_temp_dir("baa-it-failover-"))
        res = cls.cli.run(["migrate"], env=cls.env())
        if res.returncode != 0:
            raise AssertionError("baa migrate failed (%d):\n%s%s" % (res.returncode, res.stdout, res.stderr))
        cls.instances = []
        for _ in range(2):
            b = Baa(make_temp_dir("baa-it-serve-"))
            cls.addClassCleanup(b.stop)
            b.serve(cls.env())
            cls.instances.append(b)
        # The storm comes from one address: the site's per-client limit on
        # /login and /callback (5r/s) would answer most of it 503.
        cls.site = SiteNginx([b.env["BAA_LISTEN"] for b in cls.instances],
                             render_env={"LOGIN_RATE": "1000r/s", "LOGIN_BURST": "1000"})
        cls.addClassCleanup(cls.site.stop)
        cls.site.start()

    @classmethod
    def env(cls):
        env = clean_env()
        env.update(cls.formation.db_env())
        env.update(spotify_env(TEST_REDIRECT_URI, cls.fake.url))
        env["BAA_LISTEN"] = "127.0.0.1:%d" % free_port()
        env["BAA_WORKERS"] = str(WORKERS)
        return env

    def setUp(self):
        self.formation.wait_ready(120)
        self.fake.reset()
        self.fake.configure(distinct_users=True)

    def context(self):
        return "\n--- monitor: %r\n%s%s" % (
            self.formation.states_or_error(), self.formation.logs_tail(1200),
            "".join("--- baa %d (tail) ---\n%s\n" % (i, b.log()[-1500:])
                    for i, b in enumerate(self.instances)))

    def ready_statuses(self, n=12):
        out = []
        for _ in range(n):
            try:
                out.append(self.site.get("/readyz", timeout=15)[0])
            except OSError as exc:
                out.append(repr(exc))
        return out

    def settled_sync_names(self, node):
        try:
            self.formation.wait_ready(60)
        except AssertionError:
            return "(not settled within 60 s)"
        return self.formation.setting(node, "synchronous_standby_names")

    def run_case(self, label, stop, failover=True, after_new_primary=None):
        """stop(the primary's address) makes the primary go; see the module's
        comment. failover: the other node must take over (else whichever
        node takes writes again is checked, and the test says which);
        after_new_primary(the old primary's address) runs once it has."""
        old = self.formation.primary()
        self.assertIsNotNone(old, self.context())
        self.assertEqual(self.ready_statuses(), [200] * 12, self.context())
        r = self.site.browser().login(self.fake)
        self.assertTrue(r.ok, "the session for wrk: %s%s" % (r.describe(), self.context()))

        wrk = Wrk(self.site, r.session_cookie, LOAD_SECONDS)
        started = time.time()
        storm = Storm(self.site, self.fake).start()
        watch = Watch(self.formation)
        self.formation.both_writable.clear()
        try:
            time.sleep(STOP_AFTER)
            stopped_at = time.time()
            watch.start()
            # In a thread: a switchover returns only once the monitor has
            # seen it through, seconds after the new primary takes writes.
            stopper = threading.Thread(target=lambda: watch.record_stop(lambda: stop(old)), daemon=True)
            stopper.start()

            def stop_failed():
                if watch.stop_error is not None:
                    raise AssertionError("%s failed: %s" % (label, watch.stop_error))
            if failover:
                new = self.formation.wait_for_new_primary(old, 60, check=stop_failed)
            else:  # whichever node takes writes once the keeper or the monitor has acted
                stopper.join(90)
                new = wait_until(lambda: watch.back_at(old) and self.formation.primary(), 60,
                                 interval=0.1, message="no primary again within 60 s" + self.context())
            alone = self.formation.setting(new, "synchronous_standby_names")
            if after_new_primary is not None:
                after_new_primary(old)
            stopper.join(90)
            stop_failed()
            summary, seconds = wrk.finish(LOAD_SECONDS + 30)
        finally:
            logins = storm.stop()
            watch.stop()
        ended = time.time()
        promoted_at = watch.back_at(old) or time.time()
        print("\n%s: the new primary's synchronous_standby_names as it took over: %r; once "
              "settled: %r" % (label, alone, self.settled_sync_names(new)), file=sys.stderr)
        both = self.formation.both_writable
        if both:
            print("\n%s: both nodes took writes (the old primary restarted by its keeper, not yet "
                  "demoted by the monitor) from %+.1f s to %+.1f s of the stop" % (
                      label, min(both) - stopped_at, max(both) - stopped_at), file=sys.stderr)

        o = Outcome(label, stopped_at, promoted_at, summary, seconds, logins)
        print("\n" + o.line(), file=sys.stderr)
        if VERBOSE:
            print(o.per_second_table(), file=sys.stderr)
        context = "\n" + o.line() + "\n--- the nodes and the monitor:\n" + watch.report(stopped_at) + \
            "\n--- GET /me a second:\n" + o.per_second_table() + self.context()

        # (iii) the other node took over
        if failover:
            self.assertNotEqual(new, old, context)
        else:
            # The keeper may restart the old primary first and the monitor
            # fail it over all the same a moment later: the primary is the
            # one the formation settles on.
            self.formation.wait_ready(60)
            final = self.formation.primary()
            print("%s: the first primary back was the %s node; the formation settled with the %s "
                  "node as primary" % (label, "same" if new == old else "other",
                                       "same" if final == old else "other"), file=sys.stderr)
            new = final
        self.assertEqual(self.formation.primary(), new, context)
        # (i) requests succeed again within the bound, and nothing fails at the end
        if o.last_failure is not None:
            self.assertLessEqual(o.last_failure, RECOVERY_BOUND, context)
        tail = [s for s in o.me_bad_seconds if s >= ended - CLEAN_TAIL]
        self.assertEqual(tail, [], "GET /me failed in the last %d s%s" % (CLEAN_TAIL, context))
        late_logins = [l for l in o.login_failed if l[1] >= ended - CLEAN_TAIL]
        self.assertEqual(late_logins, [], "logins failed in the last %d s%s" % (CLEAN_TAIL, context))
        self.assertEqual(o.socket_errors, 0, context)
        self.assertGreater(sum(v[0] for s, v in seconds.items() if s >= ended - CLEAN_TAIL), 0, context)
        self.assertGreater(len([l for l in o.login_ok if l[0] > stopped_at + o.promoted_after]), 0,
                           "no login succeeded after the failover" + context)
        # (ii) every acknowledged login is on the new primary: its session and its user
        rows = self.formation.psql(new, "SELECT encode(s.token_hash, 'hex') || '|' || u.spotify_id "
                                        "FROM sessions s JOIN users u ON u.id = s.user_id")
        stored = dict(line.split("|", 1) for line in rows.splitlines() if line)
        acked_at = {CookieSigner.parse_session(l[4])["token_hash"]: l[1] - stopped_at for l in o.login_ok}
        acknowledged = list(acked_at)
        missing = [h for h in acknowledged if h not in stored]
        lost_at = sorted(acked_at[h] for h in missing)
        self.assertEqual(len(missing), 0, "%d of %d acknowledged logins are not on the new primary %s "
                         "(acknowledged from %+.1f s to %+.1f s of the stop)%s" % (
                             len(missing), len(acknowledged), new, lost_at[0] if lost_at else 0,
                             lost_at[-1] if lost_at else 0, context))
        print("%s: %d of %d acknowledged logins found on the new primary %s (session and user rows); "
              "load %.0f s" % (label, len(acknowledged) - len(missing), len(acknowledged), new,
                               ended - started), file=sys.stderr)
        # (iv) ready again, every worker of both instances
        statuses = self.ready_statuses()
        self.assertEqual(statuses, [200] * len(statuses), context)
        return o

    def test_kill_9_of_the_primary_postmaster_node_down(self):
        """The node's keeper paused from just before the kill until the other
        node takes writes: the whole node gone, then back."""
        self.run_case("kill -9 of the primary's postmaster, its keeper paused",
                      lambda old: self.formation.kill_primary_postmaster(old, pause_keeper=True),
                      after_new_primary=self.formation.resume_keeper)

    def test_kill_9_of_the_primary_postmaster_keeper_running(self):
        """Only the postmaster killed: its keeper starts it again within
        seconds, before or after the monitor fails it over (either passes;
        the test says which happened)."""
        self.run_case("kill -9 of the primary's postmaster, its keeper running",
                      self.formation.kill_primary_postmaster, failover=False)

    def test_clean_switchover(self):
        self.run_case("pg_autoctl perform switchover", lambda old: self.formation.switchover())


@slow("a cluster and its hot standby, the primary stopped and started again")
class ReadyWithoutPrimaryTest(unittest.TestCase):
    """Both hosts in POSTGRES_URL, the second a real hot standby that
    nothing promotes: with the primary stopped cleanly no host takes
    writes, and /readyz says so."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        require_baa()
        cls.primary = PostgresCluster()
        cls.primary.start()
        cls.addClassCleanup(cls.primary._cleanup)
        cls.standby = cls.primary.start_standby()
        cls.addClassCleanup(cls.standby._cleanup)
        cls.cli = Baa(make_temp_dir("baa-it-ready-"))
        env = cls.env()
        res = cls.cli.run(["resetdb"], env=dict(env, POSTGRES_URL="127.0.0.1:%d" % cls.primary.port))
        if res.returncode != 0:
            raise AssertionError("baa resetdb failed (%d):\n%s%s" % (res.returncode, res.stdout, res.stderr))
        cls.baa = Baa(make_temp_dir("baa-it-serve-"))
        cls.addClassCleanup(cls.baa.stop)
        cls.baa.serve(env)
        cls.nginx = Nginx(env["BAA_LISTEN"])
        cls.addClassCleanup(cls.nginx.stop)
        cls.nginx.start()

    @classmethod
    def env(cls):
        env = clean_env()
        env.update(db_env("baa_it_ready", url="127.0.0.1:%d,127.0.0.1:%d" % (
            cls.primary.port, cls.standby.port), pg=cls.primary))
        env.update(spotify_env())
        env["BAA_LISTEN"] = "127.0.0.1:%d" % free_port()
        env["BAA_WORKERS"] = str(WORKERS)
        return env

    def readyz(self, n=3 * WORKERS):
        return [self.nginx.get("/readyz", timeout=15)[0] for _ in range(n)]

    def test_readyz_503_while_no_host_takes_writes_and_200_once_one_does(self):
        self.assertEqual(self.readyz(), [200] * 3 * WORKERS, self.baa.log()[-2000:])
        wait_until(lambda: self.standby.psql_value(
            "SELECT count(*) FROM pg_stat_wal_receiver WHERE status = 'streaming'") == "1", 30,
            message="the standby does not stream from the primary")
        self.addCleanup(self.primary.ensure_running)
        self.primary.stop(mode="fast")
        self.assertEqual(self.standby.psql_value("SELECT pg_is_in_recovery()"), "t")
        self.assertEqual(self.readyz(), [503] * 3 * WORKERS, self.baa.log()[-2000:])
        self.primary.start()
        wait_until(lambda: self.readyz() == [200] * 3 * WORKERS, 20, interval=0.2,
                   message="/readyz not 200 again after the primary came back:\n" + self.baa.log()[-2000:])
        self.assertEqual(self.standby.psql_value("SELECT pg_is_in_recovery()"), "t")


if __name__ == "__main__":
    unittest.main()
