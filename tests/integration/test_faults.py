"""Faults under way: PostgreSQL stopped and restarted under load, and
Spotify failing in every way it can during logins and token refreshes.

PostgreSQL: the shipped nginx site in front of two baa instances, wrk on
GET /me, a probe sending GET /me every 20 ms, and a thread logging in new
users one after the other, while PostgreSQL is stopped (pg_ctl stop -m
fast) for about two seconds and started again. During the outage the
answers are fast 503s; within a second of PostgreSQL being back they are
200 again; every login that was answered with its 302 is in the table.

Spotify: one matrix, every fault x every call baa makes to Spotify (the
code exchange and the profile read of /callback, the refresh of
/me/token), each answered with the documented status in bounded time,
with nothing stored or changed, no worker lost, and no code or token in
baa's log.
"""

import threading
import time
import unittest

from harness import (SESSION_COOKIE, BaaTestCase, start_fake_spotify, wait_until)
from test_deploy import DeployStack, https_request


class Probe:
    """GET /me every `interval` seconds in a thread: (start, end, status)."""

    def __init__(self, stack, cookie, interval=0.02, timeout=5):
        self.stack = stack
        self.headers = {"Cookie": "%s=%s" % (SESSION_COOKIE, cookie)}
        self.interval = interval
        self.timeout = timeout
        self.results = []
        self.stop_event = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self):
        while not self.stop_event.is_set():
            t0 = time.monotonic()
            try:
                status = https_request(self.stack.https_port, "GET", "/me", headers=self.headers,
                                       timeout=self.timeout)[0]
            except Exception as exc:  # recorded, never raised in a thread
                status = repr(exc)
            self.results.append((t0, time.monotonic(), status))
            self.stop_event.wait(self.interval)

    def start(self):
        self.thread.start()
        return self

    def stop(self):
        self.stop_event.set()
        self.thread.join(10)
        return self.results


class LoginLoop:
    """Logs in a new Spotify user after the other, in a thread.

    The fake approves the user set before each /authorize, so every login
    has its own Spotify id. Records (spotify id, callback status) and which
    ids were acknowledged (the callback's 302 with a session cookie)."""

    def __init__(self, stack, fake):
        self.stack = stack
        self.fake = fake
        self.outcomes = []
        self.acknowledged = []
        self.stop_event = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self):
        n = 0
        while not self.stop_event.is_set():
            n += 1
            spotify_id = "outage-login-%d" % n
            try:
                self.fake.set_user(spotify_id)
                r = self.stack.browser().login(self.fake)
                status = r.callback.status if r.callback else ("no callback", r.describe())
            except Exception as exc:
                r, status = None, repr(exc)
            self.outcomes.append((spotify_id, status))
            if r is not None and r.ok:
                self.acknowledged.append(spotify_id)

    def start(self):
        self.thread.start()
        return self

    def stop(self):
        self.stop_event.set()
        self.thread.join(15)
        return self.outcomes


class PostgresOutageUnderLoadTest(BaaTestCase):
    """PostgreSQL goes away for ~2 s under load and comes back."""

    LOAD_SECONDS = 8
    OUTAGE_SECONDS = 2
    # Far below nginx's fastcgi timeouts (10 s): a 503 that is not a hang.
    ANSWER_BOUND = 1.0
    RECOVERY_BOUND = 1.0

    def test_outage_answers_fast_503s_recovers_within_a_second_and_loses_no_login(self):
        stack = DeployStack(self.db, instances=2, workers=2,
                            render_env={"LOGIN_RATE": "1000r/s", "LOGIN_BURST": "1000"})
        self.addCleanup(stack.stop)
        fake = start_fake_spotify(redirect_uri=stack.redirect_uri)
        self.addCleanup(fake.stop)
        stack.start(fake_url=fake.url)
        self.addCleanup(self.pg.ensure_running)  # whatever happens, later tests get a server

        fake.set_user("outage-watcher")
        r = stack.browser().login(fake)
        self.assertTrue(r.ok, r.describe() + stack.context())
        cookie = r.session_cookie

        wrk = stack.wrk("/me", duration=self.LOAD_SECONDS, connections=4, threads=1,
                        headers=["Cookie: %s=%s" % (SESSION_COOKIE, cookie)])
        probe = Probe(stack, cookie).start()
        logins = LoginLoop(stack, fake).start()
        try:
            time.sleep(2)
            t_stop = time.monotonic()
            self.pg.stop(mode="fast")
            time.sleep(self.OUTAGE_SECONDS)
            self.pg.start()
            t_ready = time.monotonic()
            self.assertTrue(self.pg.ready(), "PostgreSQL not ready after pg_ctl start -w")
            stats = wrk.result()
        finally:
            probes = probe.stop()
            outcomes = logins.stop()
        context = "%s%s" % (wrk.describe(), stack.context())

        # the probe: only 200 and 503, every answer fast
        self.assertTrue(probes, "the probe sent nothing")
        slow_or_wrong = [(round(s - t_stop, 3), round(e - s, 3), st) for s, e, st in probes
                         if st not in (200, 503) or e - s >= self.ANSWER_BOUND]
        self.assertEqual(slow_or_wrong, [], "probes (since stop, latency, status) that were neither "
                         "200 nor 503 or took %.1f s or more\n%s" % (self.ANSWER_BOUND, context))
        during = [st for s, e, st in probes if t_stop <= s and e <= t_ready]
        self.assertIn(503, during, "no 503 while PostgreSQL was stopped: the outage was not seen")

        # recovery: the first 200 within a second of PostgreSQL's return, then only 200s
        after = [(s, e, st) for s, e, st in probes if s >= t_ready]
        first_ok = next(((s, e) for s, e, st in after if st == 200), None)
        self.assertIsNotNone(first_ok, "no 200 after PostgreSQL came back\n" + context)
        self.assertLess(first_ok[1] - t_ready, self.RECOVERY_BOUND,
                        "first 200 only %.2f s after PostgreSQL was ready\n%s"
                        % (first_ok[1] - t_ready, context))
        later = [(round(s - t_ready, 3), st) for s, e, st in after if s >= first_ok[1] and st != 200]
        self.assertEqual(later, [], "answers other than 200 after the first 200 (s after ready, status)")
        self.assertGreater(len([1 for s, e, st in after if s >= first_ok[1]]), 10,
                           "too few probes after the recovery to say anything")

        # wrk: no socket error, no timeout, and its only non-200 answers are 503s
        for k in ("connect", "read", "write", "timeout"):
            self.assertEqual(stats[k], 0, "wrk %s errors\n%s" % (k, context))
        self.assertGreater(stats["requests"], 100, "hardly any load was made\n" + context)
        self.assertIn(stats["seen"], ("", "[503]"), "wrk saw statuses other than 200 and 503\n" + context)
        self.assertGreater(stats["non200"], 0, "wrk saw no 503 during the outage\n" + context)

        # logins: 302 or 503, never lost once acknowledged
        wrong = [(sid, st) for sid, st in outcomes if st not in (302, 503)]
        self.assertEqual(wrong, [], "logins answered other than 302 or 503\n" + context)
        self.assertIn(503, [st for sid, st in outcomes], "no login met the outage")
        acknowledged = set(logins.acknowledged)
        self.assertGreater(len(acknowledged), 5, "too few logins went through")
        stored = set(self.pg.psql(
            "SELECT spotify_id FROM users WHERE spotify_id LIKE 'outage-login-%'", db=self.db).split())
        self.assertEqual(acknowledged - stored, set(), "acknowledged logins missing from users")

        for inst in stack.instances:
            self.assertTrue(inst.running(), "instance %d stopped\n%s" % (inst.index, context))


if __name__ == "__main__":
    unittest.main()
