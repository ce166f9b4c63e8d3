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

from harness import (SESSION_COOKIE, BaaTestCase, SpotifyTestCase, free_port, https_request,
                     parse_metrics, start_fake_spotify, wait_until)
from harness.tags import slow
from test_deploy import DeployStack
from test_tokens import pieces


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


@slow("PostgreSQL stopped and started under load")
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


# ---------------------------------------------------------------------------
# Spotify failing

TIMEOUT_MS = 1000
# What an answer may take beyond BAA_SPOTIFY_TIMEOUT_MS: nginx, loopback,
# the database, a machine shared with other work.
ANSWER_MARGIN = 1.0

# A 429's Retry-After: the whole app (every instance on the database)
# then leaves Spotify alone that long, so each 429 cell waits it out.
RETRY_AFTER = 3

# The calls baa makes to Spotify: the fake's endpoint and grant type.
CALLS = {
    "code exchange": ("token", "authorization_code"),  # /callback, first call
    "profile": ("me", None),                           # /callback, second call
    "refresh": ("token", "refresh_token"),             # /me/token, token about to expire
}

REFUSED = "refused"  # not a fake's fault: baa points at a port nobody listens on


def token_body(access_token='"BQaccess"', expires_in="3600"):
    return ('{"access_token": %s, "token_type": "Bearer", "expires_in": %s,'
            ' "refresh_token": "AQrefresh", "scope": "user-read-email"}' % (access_token, expires_in))


# fault -> (at the accounts service's /api/token, at the Web API's /v1/me).
# A fault is the fake's (tests/fake_spotify/server.py); times=1 is added
# except to close, which must catch libcurl's one resend on a dead kept
# connection too.
FAULTS = {
    "500": (dict(status=500), dict(status=500)),
    "502 html": (dict(status=502, body="<html>bad gateway</html>", content_type="text/html"),) * 2,
    "503": (dict(status=503), dict(status=503)),
    "504": (dict(status=504), dict(status=504)),
    "401 (client or token refused)": (dict(status=401), dict(status=401)),
    "timeout": (dict(delay_ms=TIMEOUT_MS * 5 // 2),) * 2,
    "connection closed": (dict(close=True),) * 2,
    "connection refused": (REFUSED, REFUSED),
    "not json": (dict(status=200, body="not json"),) * 2,
    "json array": (dict(status=200, body="[]"),) * 2,
    "missing fields": (dict(status=200, body='{"token_type": "Bearer", "expires_in": 3600}'),
                       dict(status=200, body='{"display_name": "x"}')),
    "wrong type (token / id a number)": (dict(status=200, body=token_body(access_token="5")),
                                         dict(status=200, body='{"id": 7, "display_name": "x"}')),
    "wrong type (expires_in a string)": (dict(status=200, body=token_body(expires_in='"3600"')), None),
    "429 with Retry-After": (dict(status=429, retry_after=RETRY_AFTER),
                             dict(status=429, retry_after=RETRY_AFTER)),
}


@slow("every fault at every call to Spotify")
class SpotifyFaultMatrixTest(SpotifyTestCase):
    """Every fault x every call to Spotify: the documented answer (502, or
    503 with Spotify's Retry-After for a 429) within BAA_SPOTIFY_TIMEOUT_MS
    and a margin, with a short message; no user row created, a refreshing
    user's row byte-identical; the refresh works once Spotify is back; no
    worker lost; no code or token in baa's log."""

    workers = 2
    login_extra_env = {"BAA_SPOTIFY_TIMEOUT_MS": TIMEOUT_MS}

    def setUp(self):
        super().setUp()
        self.logins = 0
        self.refused_stacks = {}
        self.stacks = [self.baa]

    # -- where a fault is played -------------------------------------------
    def stack_for(self, fault, call):
        """(baa, nginx): the class's; one pointing a Spotify URL at a closed
        port; or, for a 429 (a worker remembers Retry-After), a fresh one
        with a single worker."""
        if fault == "connection refused":
            variable = "SPOTIFY_API_URL" if call == "profile" else "SPOTIFY_ACCOUNTS_URL"
            if variable not in self.refused_stacks:
                self.refused_stacks[variable] = self.start_extra_stack(
                    **{variable: "https://127.0.0.1:%d" % free_port()})
            return self.refused_stacks[variable]
        if fault.startswith("429"):
            return self.start_extra_stack(BAA_WORKERS=1)
        return self.baa, self.nginx

    def start_extra_stack(self, **extra):
        baa, nginx = self.start_stack(self.login_env(**extra))
        self.stacks.append(baa)
        return baa, nginx

    # -- the requests --------------------------------------------------------
    def next_user(self, what):
        self.logins += 1
        return "fault-%d-%s" % (self.logins, "".join(c if c.isalnum() else "-" for c in what))[:60]

    def begin_new_user_login(self, nginx, what):
        """/login and Spotify's consent for a new user: -> (browser, callback params)."""
        self.fake.set_user(self.next_user(what))
        return self.begin_login(nginx)

    def login_expiring(self, what):
        """A new user whose access token expires within baa's 60 s margin
        -> (session cookie, that access token)."""
        self.fake.set_user(self.next_user(what))
        self.fake.configure(expires_in=30)
        b, r = self.login()
        self.fake.configure(expires_in=3600)
        return r.session_cookie, self.fake.tokens()["access_tokens"][-1]["access_token"]

    def get_token(self, nginx, cookie):
        return self.browser(nginx).get("/me/token", cookies={SESSION_COOKIE: cookie})

    def prepare(self, call, nginx, what):
        """A new user at the step before the call: -> (send the request, the
        access token the user holds, for a refresh)."""
        if call == "refresh":
            cookie, old_token = self.login_expiring(what)
            return (lambda: self.get_token(nginx, cookie)), cookie, old_token
        b, params = self.begin_new_user_login(nginx, what)
        return (lambda: b.callback(params)), None, None

    # -- one cell --------------------------------------------------------------
    def check(self, fault, call, spec):
        what = "%s at %s" % (fault, call)
        baa, nginx = self.stack_for(fault, call)
        endpoint, grant_type = CALLS[call]
        counter = "token_" + grant_type if grant_type else endpoint
        request, cookie, old_token = self.prepare(call, nginx, what)
        rate_limited = fault.startswith("429")
        if rate_limited:  # the next one, made ready while Spotify answers
            again = self.prepare(call, nginx, what + ", again")[0]
        rows, stats = self.users(), self.fake.stats()
        sessions, events = self.session_rows(), self.auth_events()

        if spec is not REFUSED:
            fault_spec = dict(spec, grant_type=grant_type) if grant_type else dict(spec)
            if not spec.get("close"):
                fault_spec["times"] = 1
            self.fake.set_fault(endpoint, **fault_spec)
        started = time.monotonic()
        if spec is not REFUSED and "delay_ms" in spec:
            resp = self.while_outstanding(request, nginx, counter, stats[counter], what)
        else:
            resp = request()
        elapsed = time.monotonic() - started
        self.fake.clear_faults()

        # the answer: documented status, short message, in time
        doc = self.assertJsonError(resp, 503 if rate_limited else 502, what)
        self.assertIsInstance(doc["error"], str, what)
        self.assertTrue(0 < len(doc["error"]) <= 80 and "<" not in doc["error"],
                        "%s: not a short message: %r" % (what, doc))
        if rate_limited:
            self.assertEqual(resp.headers.get("Retry-After"), str(RETRY_AFTER),
                             "%s: %r" % (what, resp))
        self.assertLess(elapsed, TIMEOUT_MS / 1000 + ANSWER_MARGIN,
                        "%s: answered after %.2f s (BAA_SPOTIFY_TIMEOUT_MS=%d)" % (what, elapsed, TIMEOUT_MS))
        # nothing stored: no session, every row (tokens, expiry) as it was
        self.assertNotIn(SESSION_COOKIE, resp.set_cookies, "%s: %r" % (what, resp))
        self.assertEqual(self.users(), rows, "%s: the users table changed" % what)
        self.assertEqual([x["id"] for x in self.session_rows()], [x["id"] for x in sessions],
                         "%s: the sessions table changed" % what)
        # and the audit trail has the failed refresh (a 429 as rate_limited), no login
        new = [(e["event"], e["user_id"]) for e in self.auth_events()[len(events):]]
        if call == "refresh":
            self.assertEqual(new, [("rate_limited" if rate_limited else "refresh_failed",
                                    self.session_row(cookie)["user_id"])], what)
        else:
            self.assertEqual(new, [], what)

        # Spotify asked once (twice for a dropped connection: libcurl's one resend)
        calls = self.fake.stats()
        if spec is REFUSED:
            self.assertEqual(calls[counter], stats[counter], what)
        elif spec.get("close"):
            self.assertIn(calls[counter] - stats[counter], (1, 2), what)
        else:
            self.assertEqual(calls[counter] - stats[counter], 1, "%s: no retry loop" % what)
        if call == "profile":  # the code exchange before it went through, once
            self.assertEqual(calls["token"] - stats["token"], 1, what)

        if rate_limited:
            self.check_rate_limit_remembered(again, nginx, what)
        elif call == "refresh":
            # Spotify is back: the stored refresh token still works
            ok = self.get_token(self.nginx, cookie)
            self.assertEqual(ok.status, 200, "%s, then a refresh: %r%s" % (what, ok, self.stack_context()))
            self.assertNotEqual(ok.json()["access_token"], old_token, what)

    def while_outstanding(self, request, nginx, counter, before, what):
        """Sends request in a thread; while Spotify sits on it, /healthz of
        the same instance answers (another worker is free). -> its answer."""
        result = {}
        worker = threading.Thread(target=lambda: result.update(resp=request()), daemon=True)
        worker.start()
        wait_until(lambda: self.fake.stats()[counter] > before, 5,
                   message="%s: the slow call never reached Spotify" % what)
        status, _, body = nginx.get("/healthz", timeout=5)
        outstanding = worker.is_alive()
        worker.join(15)
        self.assertEqual(status, 200, "%s: /healthz during a slow Spotify call: %r" % (what, body))
        self.assertTrue(outstanding, "%s: the slow call was over before /healthz answered" % what)
        self.assertIn("resp", result, "%s: no answer" % what)
        return result["resp"]

    def check_rate_limit_remembered(self, request, nginx, what):
        """The app waits out Retry-After without calling Spotify, then calls
        again: every instance on the database (src/pause.c), the class's
        included, so the next cell starts after it."""
        stats = self.fake.stats()
        resp = request()
        self.assertJsonError(resp, 503, what + ", again")
        self.assertIn(resp.headers.get("Retry-After"), [str(s) for s in range(1, RETRY_AFTER + 1)],
                      resp)
        after = self.fake.stats()
        self.assertEqual((after["token"], after["me"]), (stats["token"], stats["me"]),
                         "%s: Spotify called again before Retry-After passed" % what)
        for n in (nginx, self.nginx):
            wait_until(lambda: self.pause_left(n) == 0, RETRY_AFTER + 3, interval=0.1,
                       message="%s: still paused after Retry-After" % what)
        # refused before anything was spent: the same request now goes through
        resp = request()
        self.assertIn(resp.status, (200, 302), "%s, after the pause: %r" % (what, resp))

    @staticmethod
    def pause_left(nginx):
        status, _, body = nginx.get("/metrics")
        return parse_metrics(body.decode())["baa_spotify_pause_remaining_seconds"]

    # -- the matrix ------------------------------------------------------------
    def test_every_fault_at_every_call_to_spotify(self):
        workers = self.baa.workers()
        for fault, (at_token, at_me) in FAULTS.items():
            for call in CALLS:
                spec = at_me if call == "profile" else at_token
                if spec is None:
                    continue
                with self.subTest(fault=fault, call=call):
                    self.check(fault, call, spec)
        self.assertEqual(self.baa.workers(), workers, "a worker died or was replaced")
        self.assertNoSecretInLogs()

    def assertNoSecretInLogs(self):
        issued = self.fake.tokens()
        secrets_ = [c["code"] for c in issued["codes"]]
        secrets_ += [t["access_token"] for t in issued["access_tokens"]]
        secrets_ += [t["refresh_token"] for t in issued["refresh_tokens"]]
        self.assertGreater(len(secrets_), 3 * len(FAULTS))
        logs = "".join(baa.log() for baa in self.stacks)
        self.assertIn("event=spotify_call", logs)
        for value in secrets_:
            for part in [value] + pieces(value):
                self.assertNotIn(part, logs, "a code or token from Spotify is in baa's log")


if __name__ == "__main__":
    unittest.main()
