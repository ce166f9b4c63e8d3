"""Spotify's rate limit is the app's, not a worker's (issue 9, points 5 and 6).

Two baa instances on one database, each behind its own nginx, one fake
Spotify. A 429 met by one instance stops every call to Spotify from every
worker of both until Retry-After has passed (counted at the fake), and then
calls resume; an instance started during the pause reads it from the
database. QUOTA_EXCEEDED is its own outcome: status, body, Retry-After, log
line and /metrics differ from a short-term limit, and /readyz stays ready.
A login state is taken to Spotify once, whichever instance gets it and
however often it is replayed, and the table of used states cleans itself.
The shipped nginx site counts the login per IPv6 /64 and per IPv4 address,
tried with real client addresses in a network namespace. Behind PgBouncer
(no LISTEN) the pause still crosses instances.
"""

import json
import os
import re
import shutil
import socket
import ssl
import subprocess
import sys
import time
import unittest
import urllib.parse

from harness import (BaaTestCase, HarnessError, PgBouncer, SESSION_COOKIE, OAUTH_COOKIE,
                     TwoInstancesTestCase,
                     parse_metrics, register_cleanup, register_process, kill_process_tree,
                     run_concurrently, wait_until)
from harness.tags import slow
from test_deploy import DeployStack
from test_pgbouncer import BouncerTestCase

# The fake answers a fault with this reason with Spotify's body for a used-up
# quota (July 2026 changelog) byte for byte; without one, the short-term body.
QUOTA = dict(reason="QUOTA_EXCEEDED")
RETRY_AFTER = 3


class PauseHelpers:
    """What the tests of two instances share (mixed into a SpotifyTestCase)."""

    # -- the pause as /metrics shows it ---------------------------------------
    @staticmethod
    def metrics(nginx):
        status, _, body = nginx.get("/metrics")
        if status != 200:
            raise AssertionError("/metrics answered %d: %r" % (status, body[:300]))
        return parse_metrics(body.decode())

    def pause_of(self, nginx):
        """-> (seconds left, reason or None) of the instance behind nginx."""
        m = self.metrics(nginx)
        reasons = [r for r in ("short_term", "quota_exceeded")
                   if m['baa_spotify_paused{reason="%s"}' % r] == 1]
        self.assertLessEqual(len(reasons), 1, m)
        return m["baa_spotify_pause_remaining_seconds"], (reasons[0] if reasons else None)

    def wait_unpaused(self, nginxes, timeout=RETRY_AFTER + 5):
        wait_until(lambda: all(self.pause_of(n)[0] == 0 for n in nginxes), timeout,
                   interval=0.1, message="calls to Spotify still paused")

    def wait_paused(self, nginx, reason, timeout=2):
        return wait_until(lambda: self.pause_of(nginx)[1] == reason, timeout, interval=0.02,
                          message="not paused (%s) within %ss: %r" % (
                              reason, timeout, self.pause_of(nginx)))

    # -- logins ----------------------------------------------------------------
    def calls(self):
        """Calls Spotify has seen from baa (the token endpoint and /v1/me)."""
        s = self.fake.stats()
        return s["token"] + s["me"]

    def records(self, baa, event):
        return [r for r in baa.log_records() if r.get("event") == event]

    def wait_records(self, baa, event, count=1, timeout=2):
        """The log's records of event once there are count of them (lines
        are written in batches, at most 50 ms late)."""
        return wait_until(lambda: len(self.records(baa, event)) >= count and self.records(baa, event),
                          timeout, message="fewer than %d %s lines in the log" % (count, event))

    def assertRateLimitedAnswer(self, resp, code, max_retry_after, what=""):
        doc = self.assertJsonError(resp, 503, what)
        self.assertEqual(doc["error"], code, "%s %r" % (what, resp))
        self.assertTrue(doc.get("message"), "%s %r" % (what, resp))
        retry = resp.headers.get("Retry-After")
        self.assertIsNotNone(retry, "%s %r" % (what, resp))
        self.assertTrue(1 <= int(retry) <= max_retry_after, "%s Retry-After %r" % (what, retry))
        self.assertNotIn(SESSION_COOKIE, resp.set_cookies, what)
        return doc


class PauseTestCase(PauseHelpers, TwoInstancesTestCase):
    """Instances A and B (2 workers each) on the class database, each
    behind its own nginx (harness.TwoInstancesTestCase), with short names."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.a_baa, cls.a = cls.baa_a, cls.nginx_a
        cls.b_baa, cls.b = cls.baa_b, cls.nginx_b

    def setUp(self):
        super().setUp()
        # A pause is never shortened: the last test's has to be over.
        self.wait_unpaused([self.a, self.b])
        # A worker opens its database connection, and listens, at its first
        # request that needs it: one of each instance's is enough for the
        # instance to hear of a pause (its workers share what one hears).
        for nginx in (self.a, self.b):
            self.assertEqual(nginx.get("/readyz")[0], 200)


class AppWidePauseTest(PauseTestCase):

    def test_a_429_at_one_instance_stops_every_worker_of_both_until_retry_after(self):
        self.fake.set_fault("token", status=429, retry_after=RETRY_AFTER, times=1,
                            grant_type="authorization_code")
        b, params = self.begin_login(self.a)
        resp = b.callback(params)
        paused_at = time.monotonic()
        self.assertRateLimitedAnswer(resp, "spotify_rate_limited", RETRY_AFTER, "the 429 itself")
        self.assertEqual(resp.headers.get("Retry-After"), str(RETRY_AFTER))
        self.assertEqual(self.calls(), 1)

        # B hears of it from PostgreSQL, without a request of its own
        self.wait_paused(self.b, "short_term", timeout=1)
        before = self.calls()
        logins = [self.begin_login(n) for n in [self.a, self.b] * 6]
        answers = run_concurrently([lambda b=b, p=p: b.callback(p) for b, p in logins])
        self.assertLess(time.monotonic() - paused_at, RETRY_AFTER - 0.5,
                        "the machine is too slow for this test: the pause was nearly over")
        for resp in answers:
            self.assertRateLimitedAnswer(resp, "spotify_rate_limited", RETRY_AFTER, "while paused")
        self.assertEqual(self.calls(), before, "a worker called Spotify during the pause")
        # B's refusals were counted as calls not made; A met the 429 once
        mb, ma = self.metrics(self.b), self.metrics(self.a)
        self.assertEqual(mb['baa_spotify_calls_total{endpoint="authorization_code",outcome="paused"}'], 0,
                         "refused before the state was spent, not at the call")
        self.assertEqual(ma['baa_spotify_rate_limited_total{reason="short_term"}'], 1)
        self.assertEqual(mb['baa_spotify_rate_limited_total{reason="short_term"}'], 0)
        heard = self.wait_records(self.b_baa, "spotify_paused")
        self.assertEqual(heard[-1]["source"], "notification", heard)
        self.assertEqual(heard[-1]["reason"], "short_term")

        # over: calls resume on both, and a callback refused during the
        # pause still works (its state was not spent)
        self.wait_unpaused([self.a, self.b])
        self.assertGreaterEqual(time.monotonic() - paused_at, RETRY_AFTER - 1)
        for (browser, params), resp in zip(logins[:2], answers[:2]):
            again = browser.callback(params)
            self.assertEqual(again.status, 302, "%r%s" % (again, self.stack_context()))
            self.assertIn(SESSION_COOKIE, again.set_cookies)
        self.assertEqual(self.calls(), before + 4, "two logins: a token call and /v1/me each")

    def test_a_refresh_waits_too_and_get_me_never_notices(self):
        self.fake.configure(expires_in=30)
        browser, r = self.login(nginx=self.b)
        self.fake.configure(expires_in=3600)
        self.fake.set_fault("me", status=429, retry_after=RETRY_AFTER, times=1)
        b, params = self.begin_login(self.a)
        self.assertRateLimitedAnswer(b.callback(params), "spotify_rate_limited", RETRY_AFTER)
        self.wait_paused(self.b, "short_term", timeout=1)
        before = self.fake.stats()
        events = self.auth_events()
        token = browser.get("/me/token")
        self.assertRateLimitedAnswer(token, "spotify_rate_limited", RETRY_AFTER, "/me/token")
        self.assertEqual(self.fake.stats()["token_refresh_token"], before["token_refresh_token"])
        # rate_limited records a 429 Spotify sent, not baa's own pause
        self.assertEqual(self.auth_events(), events)
        for nginx in (self.a, self.b):
            me = self.browser(nginx).get("/me", cookies={SESSION_COOKIE: r.session_cookie})
            self.assertEqual(me.status, 200, me)
            self.assertEqual(nginx.get("/readyz")[0], 200, "/readyz while paused")
        mb = self.metrics(self.b)
        self.assertEqual(mb['baa_spotify_calls_total{endpoint="refresh_token",outcome="paused"}'], 1)
        self.wait_unpaused([self.a, self.b])
        self.assertEqual(browser.get("/me/token").status, 200)
        self.assertEqual(self.fake.stats()["token_refresh_token"], before["token_refresh_token"] + 1)

    @slow("waits out Retry-After")
    def test_quota_exceeded_is_told_apart_from_a_short_term_limit(self):
        cases = (("quota_exceeded", "spotify_quota_exceeded", QUOTA, "error"),
                 ("short_term", "spotify_rate_limited", {}, "warn"))
        for reason, code, extra, level in cases:
            with self.subTest(reason=reason):
                self.wait_unpaused([self.a, self.b])
                ma0, mb0 = self.metrics(self.a), self.metrics(self.b)
                lines = len(self.records(self.a_baa, "spotify_rate_limited"))
                self.fake.set_fault("token", status=429, retry_after=RETRY_AFTER, times=1,
                                    grant_type="authorization_code", **extra)
                b, params = self.begin_login(self.a)
                resp = b.callback(params)
                doc = self.assertRateLimitedAnswer(resp, code, RETRY_AFTER, reason)
                self.assertEqual(resp.headers.get("Retry-After"), str(RETRY_AFTER))
                if reason == "quota_exceeded":
                    self.assertIn("quota", doc["message"])
                    self.assertIn("extended quota", doc["message"])
                else:
                    self.assertNotIn("quota", doc["message"].lower())
                # the other instance answers the same, without calling
                self.wait_paused(self.b, reason, timeout=1)
                before = self.calls()
                b2, params2 = self.begin_login(self.b)
                self.assertRateLimitedAnswer(b2.callback(params2), code, RETRY_AFTER, reason + " at B")
                self.assertEqual(self.calls(), before)
                # both ready: the database is fine
                for nginx in (self.a, self.b):
                    status, _, body = nginx.get("/readyz")
                    self.assertEqual(status, 200, body)
                # the log line, with its own reason and level
                line = self.wait_records(self.a_baa, "spotify_rate_limited", lines + 1)[-1]
                self.assertEqual((line["reason"], line["level"], line["endpoint"], line["retry_after"]),
                                 (reason, level, "authorization_code", str(RETRY_AFTER)), line)
                # /metrics: the 429 by reason at A, the outcome of the call
                ma, mb = self.metrics(self.a), self.metrics(self.b)
                for r in ("short_term", "quota_exceeded"):
                    key = 'baa_spotify_rate_limited_total{reason="%s"}' % r
                    self.assertEqual(ma[key] - ma0[key], 1 if r == reason else 0, key)
                    self.assertEqual(mb[key] - mb0[key], 0, key)
                outcome = "quota_exceeded" if reason == "quota_exceeded" else "rate_limited"
                key = 'baa_spotify_calls_total{endpoint="authorization_code",outcome="%s"}' % outcome
                self.assertEqual(ma[key] - ma0[key], 1, key)
                remaining, shown = self.pause_of(self.a)
                self.assertEqual(shown, reason)
                self.assertTrue(0 < remaining <= RETRY_AFTER, remaining)

    def test_the_apps_rolling_limit_costs_one_refused_call(self):
        # Spotify's own limit (the fake's): 5 calls in a rolling window. A
        # login is two calls (token, /v1/me): the third login's /v1/me is the
        # sixth call, refused; every login after it, at either instance,
        # waits without calling.
        self.fake.set_rate_limit(5, window=30, retry_after=RETRY_AFTER)
        statuses = []
        for i in range(8):
            b, params = self.begin_login((self.a, self.b)[i % 2])
            statuses.append(b.callback(params).status)
            if statuses == [302, 302, 503]:
                self.wait_paused(self.b, "short_term", timeout=1)
        self.assertEqual(statuses, [302, 302] + [503] * 6, self.stack_context())
        stats = self.fake.stats()
        self.assertEqual((stats["token"], stats["me"], stats["rate_limited"]), (3, 3, 1), stats)
        refused = [e for e in self.fake.requests() if e["rate_limited"]]
        self.assertEqual([e["endpoint"] for e in refused], ["me"])

    def test_an_instance_started_during_a_pause_reads_it_from_the_database(self):
        self.fake.set_fault("token", status=429, retry_after=RETRY_AFTER, times=1,
                            grant_type="authorization_code", **QUOTA)
        b, params = self.begin_login(self.a)
        self.assertRateLimitedAnswer(b.callback(params), "spotify_quota_exceeded", RETRY_AFTER)
        c_baa, c = self.start_stack(self.login_env(BAA_WORKERS=1))
        before = self.calls()
        b, params = self.begin_login(c)
        self.assertRateLimitedAnswer(b.callback(params), "spotify_quota_exceeded", RETRY_AFTER, "at C")
        self.assertEqual(self.calls(), before, "the new instance called Spotify during the pause")
        self.assertEqual(self.pause_of(c)[1], "quota_exceeded")
        self.assertEqual(self.wait_records(c_baa, "spotify_paused")[0]["source"], "database")


class PauseBehindPgBouncerTest(PauseHelpers, BouncerTestCase):
    """Both instances through PgBouncer in transaction mode: no LISTEN, so
    a worker reads the row before it calls Spotify."""

    workers = 2

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.a_baa, cls.a = cls.start_class_stack(cls.bouncer_env(BAA_DB_POOLER="transaction"))
        cls.b_baa, cls.b = cls.start_class_stack(cls.bouncer_env(BAA_DB_POOLER="transaction"))
        cls.baa = cls.a_baa

    def row_left(self):
        return float(self.pg.psql_value(
            "SELECT greatest(0, extract(epoch FROM until - now())) FROM spotify_pause", db=self.db))

    def test_a_429_at_one_instance_stops_the_other_through_the_pooler(self):
        self.fake.configure(expires_in=30)
        browser, r = self.login(nginx=self.b)
        self.fake.configure(expires_in=3600)
        self.fake.set_fault("token", status=429, retry_after=RETRY_AFTER, times=1,
                            grant_type="authorization_code", **QUOTA)
        b, params = self.begin_login(self.a)
        self.assertRateLimitedAnswer(b.callback(params), "spotify_quota_exceeded", RETRY_AFTER)
        # written once the 503 is answered, through the pooler
        wait_until(lambda: self.row_left() > 0, 2, message="the pause never reached the row")
        before = self.fake.stats()
        for _ in range(4):
            b2, params2 = self.begin_login(self.b)
            self.assertRateLimitedAnswer(b2.callback(params2), "spotify_quota_exceeded",
                                         RETRY_AFTER, "callback at B")
        self.assertRateLimitedAnswer(browser.get("/me/token"), "spotify_quota_exceeded",
                                     RETRY_AFTER, "refresh at B")
        self.assertEqual(browser.get("/me").status, 200)
        after = self.fake.stats()
        self.assertEqual((after["token"], after["me"]), (before["token"], before["me"]),
                         "B called Spotify during the pause")
        self.assertEqual(self.b.get("/readyz")[0], 200)
        wait_until(lambda: self.row_left() == 0, RETRY_AFTER + 2, interval=0.1)
        # over: B calls again (its own word of the pause may end a little later)
        wait_until(lambda: browser.get("/me/token").status == 200, 3, interval=0.2)
        self.assertEqual(self.fake.stats()["token_refresh_token"], before["token_refresh_token"] + 1)
        self.assertNotIn("db_listen_failed", self.b_baa.log())


class OneStatePerLoginTest(PauseTestCase):

    def test_a_state_replayed_50_times_across_both_instances_reaches_spotify_once(self):
        b, params = self.begin_login(self.a)
        cookie = {OAUTH_COOKIE: b.jar[OAUTH_COOKIE]}
        nginxes = [self.a, self.b] * 25
        answers = run_concurrently([lambda n=n: self.browser(n).callback(params, cookies=cookie)
                                    for n in nginxes])
        statuses = sorted(r.status for r in answers)
        self.assertEqual(statuses, [302] + [400] * 49, "%r%s" % (answers, self.stack_context()))
        self.assertEqual(len(self.fake.requests("token")), 1, "token calls at Spotify")
        for resp in answers:
            if resp.status == 400:
                doc = self.assertJsonError(resp, 400)
                self.assertEqual(doc["error"], "login_expired", resp)
                self.assertIn("already used", doc["message"])
        self.assertEqual(len(self.users()), 1)
        self.assertEqual(len(self.session_rows()), 1, "one login, one session")
        # kept as a hash, never the state itself
        stored = self.pg.psql_rows("SELECT encode(state_hash, 'hex') FROM redeemed_states", db=self.db)
        self.assertIn([hashlib_sha256(params["state"])], stored)
        self.assertNotIn(params["state"], json.dumps(stored))
        wait_until(lambda: len(self.records(self.a_baa, "login_state_reused")) +
                   len(self.records(self.b_baa, "login_state_reused")) == 49, 2,
                   message="not one login_state_reused line per refused replay")

    def test_junk_codes_with_one_valid_state_cost_one_call(self):
        # The attack: one free login cookie, then /callback?code=junk&state=S
        # again and again, each a token call with the app's credentials.
        b, params = self.begin_login(self.b)
        statuses = []
        for i in range(50):
            nginx = (self.a, self.b)[i % 2]
            resp = self.browser(nginx).callback({"code": "junk%d" % i, "state": params["state"]},
                                                cookies={OAUTH_COOKIE: b.jar[OAUTH_COOKIE]})
            statuses.append(resp.status)
        self.assertEqual(statuses[0], 502, "Spotify refuses the junk code")
        self.assertEqual(statuses[1:], [400] * 49)
        self.assertEqual(len(self.fake.requests("token")), 1)

    def test_used_states_are_swept_by_later_logins(self):
        self.pg.psql("DELETE FROM redeemed_states; INSERT INTO redeemed_states "
                     "SELECT sha256(i::text::bytea), now() - interval '1 minute' "
                     "FROM generate_series(1, 20) i", db=self.db)
        expired = "SELECT count(*) FROM redeemed_states WHERE expires_at < now()"
        for n, left in ((1, 12), (2, 4), (3, 0)):
            self.login(nginx=(self.a, self.b)[n % 2])
            self.assertEqual(int(self.pg.psql_value(expired, db=self.db)), left)
        live = int(self.pg.psql_value("SELECT count(*) FROM redeemed_states WHERE expires_at > "
                                      "now() + interval '10 minutes'", db=self.db))
        self.assertEqual(live, 3, "a login's state outlives its cookie (10 min) by the margin")
        plan = self.pg.psql("SET enable_seqscan = off; EXPLAIN SELECT state_hash FROM redeemed_states "
                            "WHERE expires_at < now() ORDER BY expires_at LIMIT 8", db=self.db)
        self.assertIn("redeemed_states_expires_at", plan)


# ---------------------------------------------------------------------------
# the login limit of the shipped site, per IPv6 /64 and per IPv4 address

IP = shutil.which("ip") or next((p for p in ("/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip")
                                 if os.path.exists(p)), None)
PYTHON = sys.executable or "/usr/bin/python3"

# Run inside the namespace: GET path over TLS from each (source address,
# destination, port), in order; prints the statuses as JSON.
CLIENT = r"""
import http.client, json, ssl, sys
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
out = []
for src, host, port, path in json.loads(sys.argv[1]):
    try:
        c = http.client.HTTPSConnection(host, port, context=ctx, timeout=10, source_address=(src, 0))
        c.request("GET", path)
        r = c.getresponse()
        r.read()
        c.close()
        out.append(r.status)
    except Exception as e:
        out.append(repr(e))
print(json.dumps(out))
"""

# Clients on the namespace's loopback: two hosts of one /64, one of another.
SAME_64 = ("2001:db8:1:1::1", "2001:db8:1:1::ffff:2")
OTHER_64 = "2001:db8:1:2::1"


def run(argv, timeout=30, check=True):
    res = subprocess.run(argv, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=timeout)
    if check and res.returncode != 0:
        raise HarnessError("%s failed (%d): %s%s" % (" ".join(argv), res.returncode, res.stdout, res.stderr))
    return res


class NamespacedSite(DeployStack):
    """The shipped site with nginx in a network namespace of its own, whose
    loopback has the IPv6 client addresses above (any address can be given
    to a namespace's loopback without touching the machine's), listening
    as rendered (IPv4) and on a dual-stack [::] port (IPv6, and IPv4 as
    ::ffff:a.b.c.d). baa stays outside: its unix sockets are files, which
    namespaces share."""

    def __init__(self, db, **kw):
        super().__init__(db, **kw)
        self.ns = "baa-it-%d-rl" % os.getpid()
        self.dual_port = None

    def make_namespace(self):
        res = run([IP, "netns", "add", self.ns], check=False)
        if res.returncode != 0:
            raise unittest.SkipTest("`ip netns add` refused: %s" % (res.stderr.strip() or res.returncode))
        register_cleanup(lambda: run([IP, "netns", "del", self.ns], check=False))
        run([IP, "-n", self.ns, "link", "set", "lo", "up"])
        for addr in SAME_64 + (OTHER_64,):
            run([IP, "-n", self.ns, "addr", "add", addr + "/128", "dev", "lo", "nodad"])

    def in_ns(self, argv):
        return [IP, "netns", "exec", self.ns] + list(argv)

    def start_nginx(self, timeout=10):
        self.dual_port = self.https_port + 1 if self.https_port < 65535 else self.https_port - 1
        site = open(self.site_conf).read()
        listen = "listen 127.0.0.1:%d ssl http2;" % self.https_port
        if listen not in site:
            raise HarnessError("no %r in the rendered site" % listen)
        with open(self.site_conf, "w") as f:
            f.write(site.replace(listen, listen + "\n    listen [::]:%d ssl http2 ipv6only=off;"
                                 % self.dual_port))
        res = run(self.in_ns(self.nginx_argv("-t")), check=False)
        if res.returncode != 0:
            raise AssertionError("nginx -t rejected the site:\n%s%s" % (res.stdout, res.stderr))
        self.nginx = register_process(subprocess.Popen(
            self.in_ns(self.nginx_argv()), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE, start_new_session=True))
        wait_until(lambda: self.requests([("127.0.0.1", "127.0.0.1", self.https_port, "/healthz")])
                   == [200], timeout, interval=0.1, message="nginx in the namespace did not answer")

    def requests(self, plan):
        """[(source, destination, port, path)] -> their statuses, in order."""
        res = run(self.in_ns([PYTHON, "-c", CLIENT, json.dumps(plan)]), timeout=120)
        return json.loads(res.stdout)


class LoginLimitPerNetworkTest(BaaTestCase):
    """/login and /callback limited per IPv6 /64 and per IPv4 address (the
    shipped nginx site), with real client addresses of both families."""

    workers = 1

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        if os.geteuid() != 0 or IP is None:
            raise unittest.SkipTest("needs root and iproute2 for a network namespace")

    def test_login_limit_counts_ipv6_per_64_and_ipv4_per_address(self):
        # 3 logins per client (burst 2), then one a minute: the test sees the burst.
        stack = NamespacedSite(self.db, instances=2, workers=1,
                               render_env={"LOGIN_RATE": "1r/m", "LOGIN_BURST": "2"})
        self.addCleanup(stack.stop)
        stack.make_namespace()
        stack.start()
        v4, v6 = stack.https_port, stack.dual_port
        plan = [
            # IPv6: a /64 is one client, whichever of its addresses asks
            (SAME_64[0], "::1", v6, "/login"), (SAME_64[0], "::1", v6, "/login"),
            (SAME_64[0], "::1", v6, "/login"),
            (SAME_64[1], "::1", v6, "/login"),
            (OTHER_64, "::1", v6, "/login"),
            (SAME_64[1], "::1", v6, "/callback?code=x&state=y"),
            # IPv4: per address, as before
            ("127.0.0.2", "127.0.0.1", v4, "/login"), ("127.0.0.2", "127.0.0.1", v4, "/login"),
            ("127.0.0.2", "127.0.0.1", v4, "/login"), ("127.0.0.2", "127.0.0.1", v4, "/login"),
            ("127.0.0.3", "127.0.0.1", v4, "/login"),
            # IPv4 through the dual-stack listener (::ffff:127.0.0.4): still
            # per address, not every IPv4 client in the /64 ::ffff:0:0/64
            ("127.0.0.4", "127.0.0.1", v6, "/login"), ("127.0.0.4", "127.0.0.1", v6, "/login"),
            ("127.0.0.4", "127.0.0.1", v6, "/login"),
            ("127.0.0.5", "127.0.0.1", v6, "/login"),
            ("127.0.0.4", "127.0.0.1", v4, "/login"),  # the same client by the other door
            ("127.0.0.4", "127.0.0.1", v6, "/healthz"),  # only the login is limited
        ]
        expected = [302, 302, 302, 429, 302, 429,
                    302, 302, 302, 429, 302,
                    302, 302, 302, 302, 429, 200]
        statuses = stack.requests(plan)
        self.assertEqual(statuses, expected, "\n".join(
            "%-22s -> %-9s :%d %-26s %s (expected %s)" % (p[0], p[1], p[2], p[3], st, ex)
            for p, st, ex in zip(plan, statuses, expected)) + "\n" + stack.error_log()[-2000:])
        # nginx names who it limited, by their own address
        self.assertIn("client: %s," % SAME_64[1], stack.error_log())
        # the dual-stack door really gave 16-byte addresses (::ffff:a.b.c.d,
        # whose first 8 bytes every IPv4 client shares): without the map's
        # first line 127.0.0.5 would have been limited as 127.0.0.4's /64
        self.assertRegex(stack.access_log(), r"(?m)^::ffff:127\.0\.0\.5 ")


def hashlib_sha256(text):
    import hashlib
    return hashlib.sha256(text.encode("ascii")).hexdigest()


if __name__ == "__main__":
    unittest.main()
