"""Rotating BAA_SECRET_KEY on several instances, by the procedure of
README.md, "Rotating keys": restart every instance with the new secret
added ("OLD NEW"), then with it first ("NEW OLD") and `baa rotate-keys`,
then without the old one ("NEW"), one instance at a time.

The load run: two instances behind the shipped nginx site (one upstream of
both, failing over as in production), browsers logged in before the
rotation keep calling GET /me and /me/token through it while the instances
are restarted step by step. No request of a live session may be answered
401, and no request may fail at all (nginx passes what a stopping instance
cannot take to the other one); afterwards every browser's cookie carries
the new secret's kid and every token is sealed under the new secret's
derived key. Set BAA_IT_VERBOSE=1 to print the run's counts to stderr.

Around it: a cookie not used between "move first" and "drop" is refused
after the drop (the procedure's cost), and with explicit BAA_TOKEN_KEY
keys the secret's rotation leaves the stored tokens as they are.
"""

import collections
import os
import signal
import socket
import sys
import threading
import time

from harness import (SECRET_KEY, SESSION_COOKIE, CookieSigner, SiteNginx, TokenOpener,
                     TwoInstancesTestCase, wait_until, with_extra)
from harness.tags import slow

OLD = SECRET_KEY
NEW = "baa-test-new-secret-key-" + os.urandom(16).hex()
KID_OLD = CookieSigner(OLD).kid
KID_NEW = CookieSigner(NEW).kid
TOKEN_KEY_OLD = TokenOpener.derived_key(OLD)
TOKEN_KEY_NEW = TokenOpener.derived_key(NEW)
EXPLICIT_TOKEN_KEY = os.urandom(32)

# The procedure's steps: BAA_SECRET_KEY of every instance after each.
ADD = "%s %s" % (OLD, NEW)
MOVE_FIRST = "%s %s" % (NEW, OLD)
DROP = NEW

CLIENTS = 6
PAUSE = 0.01          # seconds between one browser's requests
TOKEN_EVERY = 4       # every fourth request of a browser is /me/token
VERBOSE = os.environ.get("BAA_IT_VERBOSE") == "1"


def kid_of(cookie):
    return CookieSigner.parse_session(cookie)["kid"] if cookie else None


class Client(threading.Thread):
    """A browser using its session: GET /me, and now and then /me/token,
    whose answer must be its own token; Set-Cookie applied. Records
    (phase, path, outcome, seconds) per request; the outcome is the status,
    or what went wrong."""

    def __init__(self, browser, token, stop, phase):
        super().__init__(daemon=True)
        self.browser = browser
        self.token = token
        self.stop_event = stop
        self.phase = phase
        self.outcomes = []

    def run(self):
        n = 0
        while not self.stop_event.is_set():
            n += 1
            path = "/me/token" if n % TOKEN_EVERY == 0 else "/me"
            phase = self.phase[0]
            t0 = time.monotonic()
            try:
                resp = self.browser.get(path, timeout=20)
                outcome = resp.status
                if outcome == 200 and path == "/me/token" and \
                        resp.json().get("access_token") != self.token:
                    outcome = "another token"
                elif outcome != 200:
                    outcome = "%d %s" % (outcome, resp.body[:120].decode(errors="replace"))
            except Exception as exc:  # recorded, never raised in a thread
                outcome = "%s: %s" % (type(exc).__name__, exc)
            self.outcomes.append((phase, path, outcome, time.monotonic() - t0))
            self.stop_event.wait(PAUSE)


class KeyRotationTestCase(TwoInstancesTestCase):
    """A and B as the harness starts them (BAA_SECRET_KEY=OLD), restarted
    in place (same address) with the keys a step needs."""

    site = None

    def setUp(self):
        super().setUp()
        self.instances = {"A": self.baa_a, "B": self.baa_b}
        self.serve_all(BAA_SECRET_KEY=OLD, BAA_TOKEN_KEY=None)

    # -- instances ----------------------------------------------------------
    def restart(self, baa, **changes):
        """Stops an instance as an operator does (SIGTERM: it finishes what
        it has) and starts it on the same address with changes to its
        environment (None removes a variable)."""
        if baa.proc.poll() is None:
            baa.signal(signal.SIGTERM)
            baa.wait(20)
        baa.stop()  # reaps it, closes its log
        baa.serve(with_extra(dict(baa.env), changes))

    def serve_all(self, **env):
        """Every instance with env, restarting only those that differ."""
        for baa in self.instances.values():
            if any(baa.env.get(k) != v for k, v in env.items()):
                self.restart(baa, **env)

    def in_rotation(self, baa, since):
        """Whether nginx has sent the instance requests of both upstreams
        (the site's `baa` and `baa_spotify`, which mark failures apart)
        since byte `since` of its access log."""
        addr = baa.env["BAA_LISTEN"]
        answered = {r.uri == "/me/token" for r in self.site.access_records(since)
                    if r.status == 200 and r.upstreams and r.upstreams[-1] == addr}
        return answered == {True, False}

    def roll(self, secret_key, under_load=False):
        """One step of the procedure: every instance restarted with
        BAA_SECRET_KEY=secret_key, one at a time. Under load, an instance
        goes only once nginx sends the one restarted before it requests
        again: nginx avoids an instance that failed (the site's max_fails,
        fail_timeout) and, with every instance avoided, answers 502."""
        for name, baa in self.instances.items():
            t0 = time.monotonic()
            self.restart(baa, BAA_SECRET_KEY=secret_key)
            t1 = time.monotonic()
            if under_load:
                since = self.site.access_log_size()
                try:
                    wait_until(lambda: self.in_rotation(baa, since), 20, interval=0.1)
                except AssertionError:
                    self.fail("nginx sent instance %s no /me and /me/token in 20s after its "
                              "restart with %s%s" % (name, self.key_names(secret_key),
                                                     self.site_context()))
            if VERBOSE:
                print("%s restarted with %s in %.1fs, in nginx's rotation %.1fs later" % (
                    name, self.key_names(secret_key), t1 - t0, time.monotonic() - t1),
                    file=sys.stderr)

    @staticmethod
    def key_names(secret_key):
        return " ".join({OLD: "OLD", NEW: "NEW"}[s] for s in secret_key.split())

    def rotate_keys(self, secret_key, token_key=None):
        """`baa rotate-keys` as the operator runs it; -> its CompletedProcess."""
        env = self.login_env(BAA_SECRET_KEY=secret_key, BAA_TOKEN_KEY=token_key)
        res = self.run_baa(["rotate-keys"], env, timeout=60)
        self.assertEqual(res.returncode, 0, self.describe(res))
        self.assertNotIn(OLD, res.stdout + res.stderr)
        self.assertNotIn(NEW, res.stdout + res.stderr)
        return res

    # -- sessions, tokens, events ---------------------------------------------
    def login_user(self, spotify_id, nginx=None):
        """spotify_id logged in through nginx (A's by default); -> (its
        browser's cookie jar, the access token the fake issued)."""
        self.fake.configure(user={"id": spotify_id})
        b, r = self.login(nginx=nginx)
        return dict(b.jar), self.fake.tokens()["access_tokens"][-1]["access_token"]

    def stored_tokens(self):
        """{users.id: (spotify_token, refresh_token)} as stored (sealed)."""
        return {row["id"]: (row["spotify_token"], row["refresh_token"]) for row in self.raw_users()}

    def token_kids(self):
        return {TokenOpener.parse(row[c])[0] for row in self.raw_users()
                for c in ("spotify_token", "refresh_token") if row[c]}

    def key_rotated_users(self):
        return sorted(int(r[0]) for r in self.pg.psql_rows(
            "SELECT user_id FROM auth_events WHERE event = 'key_rotated'", db=self.db))

    def site_context(self):
        return "\n--- nginx (site) upstream errors ---\n%r\n--- nginx (site) error log (tail) ---\n%s%s" % (
            self.site.upstream_errors(), self.site.error_log()[-2000:], self.stack_context())


@slow("two instances reloaded with new keys under load")
class RotationUnderLoadTest(KeyRotationTestCase):
    """The shipped site over A and B, browsers using it throughout."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        # fail_timeout 1s instead of the site's 5s: nginx takes a restarted
        # instance back sooner, so the run is shorter; nothing else changes.
        cls.site = SiteNginx([cls.baa_a.env["BAA_LISTEN"], cls.baa_b.env["BAA_LISTEN"]],
                             fail_timeout=1)
        cls.addClassCleanup(cls.site.stop)
        cls.site.start()

    def test_rotation_through_nginx_under_load_answers_no_live_session_401(self):
        users = ["rotating-%d" % i for i in range(CLIENTS)]
        logins = [self.login_user(u) for u in users]
        self.assertEqual({kid_of(jar[SESSION_COOKIE]) for jar, _ in logins}, {KID_OLD})
        self.assertEqual(self.token_kids(), {TokenOpener.kid(TOKEN_KEY_OLD)})

        stop, phase = threading.Event(), ["OLD"]
        clients = []
        for jar, token in logins:
            b = self.site.browser()
            b.jar = dict(jar)
            clients.append(Client(b, token, stop, phase))
        started = time.monotonic()
        for c in clients:
            c.start()
        try:
            time.sleep(1)
            phase[0] = "add"
            self.roll(ADD, under_load=True)
            phase[0] = "move first"
            self.roll(MOVE_FIRST, under_load=True)
            phase[0] = "rotate-keys"
            res = self.rotate_keys(MOVE_FIRST)
            # Every live session comes back between "move first" and "drop"
            # (these within milliseconds): its cookie is then NEW's.
            try:
                wait_until(lambda: all(kid_of(c.browser.jar.get(SESSION_COOKIE)) == KID_NEW
                                       for c in clients), 10, interval=0.05)
            except AssertionError:
                self.fail("cookies not re-issued under NEW: %r" % [
                    c.browser.jar.get(SESSION_COOKIE) for c in clients])
            phase[0] = "drop"
            self.roll(DROP, under_load=True)
            phase[0] = "NEW"
            time.sleep(1)
        finally:
            stop.set()
            for c in clients:
                c.join(30)
        elapsed = time.monotonic() - started

        outcomes = [o for c in clients for o in c.outcomes]
        by_phase = collections.OrderedDict()
        slowest = {}
        for p, path, outcome, seconds in outcomes:
            by_phase.setdefault(p, collections.Counter())[outcome] += 1
            slowest[p] = round(max(slowest.get(p, 0), seconds), 2)
        unauthorized = [o for o in outcomes if str(o[2]).startswith("401")]
        failed = [o for o in outcomes if o[2] != 200 and not str(o[2]).startswith("401")]
        summary = "%d requests in %.1fs, %d answered 401, %d other failures; by step: %r; " \
                  "slowest answer by step (s): %r; nginx upstream errors (retried): %r" % (
                      len(outcomes), elapsed, len(unauthorized), len(failed),
                      {p: dict(c) for p, c in by_phase.items()}, slowest,
                      self.site.upstream_errors())
        if VERBOSE:
            print("key rotation under load: " + summary, file=sys.stderr)
        self.assertEqual(unauthorized, [], summary + self.site_context())
        self.assertEqual(failed, [], summary + self.site_context())
        self.assertGreater(len(outcomes), 20 * CLIENTS, summary)
        for c in clients:
            after_drop = [o for o in c.outcomes if o[0] == "NEW" and o[1] == "/me/token"]
            self.assertTrue(after_drop, "a browser made no /me/token after the drop: " + summary)

        # Every cookie NEW's, every token under NEW's key and still the one issued.
        self.assertEqual({kid_of(c.browser.jar[SESSION_COOKIE]) for c in clients}, {KID_NEW})
        for c in clients:
            resp = c.browser.get("/me/token")
            self.assertEqual((resp.status, resp.json().get("access_token")), (200, c.token), resp)
        self.assertIn("Re-encrypted %d tokens of %d users under key %s; 0 could not be decrypted."
                      % (2 * CLIENTS, CLIENTS, TokenOpener.kid(TOKEN_KEY_NEW)),
                      res.stdout)
        self.assertEqual(self.token_kids(), {TokenOpener.kid(TOKEN_KEY_NEW)})
        self.token_opener = TokenOpener([TOKEN_KEY_NEW])
        self.assertEqual({u["spotify_id"]: u["spotify_token"] for u in self.users()
                          if u["spotify_id"] in users},
                         {u: token for u, (_, token) in zip(users, logins)})
        # One key_rotated per user whose tokens moved, shown in its activity.
        self.assertEqual(self.key_rotated_users(), sorted(u["id"] for u in self.raw_users()))
        events = clients[0].browser.get("/me/activity").json()["events"]
        rotated = [e for e in events if e["event"] == "key_rotated"]
        self.assertEqual(len(rotated), 1, events)
        # Written by the command, which names itself, not by an instance.
        self.assertEqual(rotated[0]["instance"], socket.gethostname() + "/rotate-keys")


@slow("two instances reloaded through every step of a rotation")
class RotationStepsTest(KeyRotationTestCase):
    """The procedure without load, through each instance's own nginx."""

    def test_cookie_not_used_from_move_first_to_drop_must_log_in_again(self):
        jar, _ = self.login_user("idle")
        idle = jar[SESSION_COOKIE]
        self.roll(ADD)
        for nginx in (self.nginx_a, self.nginx_b):
            resp = self.get(idle, nginx)
            self.assertEqual(resp.status, 200, resp)
            self.assertNotIn(SESSION_COOKIE, resp.set_cookies, "OLD is still first: %r" % resp)
        self.roll(MOVE_FIRST)
        self.rotate_keys(MOVE_FIRST)
        # Still accepted, and re-issued under NEW at once, on either instance.
        reissued = None
        for name, nginx in (("A", self.nginx_a), ("B", self.nginx_b)):
            resp = self.get(idle, nginx)
            self.assertEqual(resp.status, 200, "%s: %r" % (name, resp))
            reissued = resp.set_cookies[SESSION_COOKIE].value
            self.assertEqual(kid_of(reissued), KID_NEW)
            self.assertEqual(CookieSigner.parse_session(reissued)["session_id"],
                             CookieSigner.parse_session(idle)["session_id"], "the same session")
        self.roll(DROP)
        for name, nginx in (("A", self.nginx_a), ("B", self.nginx_b)):
            with self.subTest(instance=name):
                resp = self.get(idle, nginx)
                doc = self.assertJsonError(resp, 401, "OLD's cookie after the drop on %s" % name)
                self.assertEqual(doc["error"], "not logged in")
                self.assertEqual(self.get(reissued, nginx).status, 200,
                                 "the re-issued cookie on %s" % name)
        # The session itself lives on: only its OLD cookie is lost.
        self.assertEqual(self.pg.psql_value(
            "SELECT count(*) FROM sessions WHERE token_hash = '\\x%s'"
            % CookieSigner.parse_session(idle)["token_hash"], db=self.db), "1")

    def test_explicit_token_keys_leave_tokens_untouched_by_the_rotation(self):
        explicit = EXPLICIT_TOKEN_KEY.hex()
        self.serve_all(BAA_TOKEN_KEY=explicit)
        self.token_opener = TokenOpener([EXPLICIT_TOKEN_KEY])
        logins = {u: self.login_user(u) for u in ("one", "two")}
        stored = self.stored_tokens()
        self.assertEqual(self.token_kids(), {TokenOpener.kid(EXPLICIT_TOKEN_KEY)})
        self.roll(ADD)
        self.roll(MOVE_FIRST)
        browsers = {}
        for u, (jar, token) in logins.items():
            b = browsers[u] = self.browser(self.nginx_b)
            b.jar = dict(jar)
            self.assertEqual(b.get("/me").status, 200)
            self.assertEqual(kid_of(b.jar[SESSION_COOKIE]), KID_NEW, "re-issued under NEW")
        self.roll(DROP)
        self.assertEqual(self.stored_tokens(), stored, "the rotation of the secret touched tokens")
        for u, (_, token) in logins.items():
            for name, nginx in (("A", self.nginx_a), ("B", self.nginx_b)):
                resp = self.get(browsers[u].jar[SESSION_COOKIE], nginx, path="/me/token")
                self.assertEqual((resp.status, resp.json().get("access_token")), (200, token),
                                 "%s's token on %s after the drop: %r" % (u, name, resp))
        self.assertEqual(self.key_rotated_users(), [])
        # Nothing for rotate-keys to do either.
        res = self.rotate_keys(DROP, token_key=explicit)
        self.assertIn("Re-encrypted 0 tokens of 2 users", res.stdout)
        self.assertEqual(self.stored_tokens(), stored)
        self.assertEqual(self.key_rotated_users(), [])
