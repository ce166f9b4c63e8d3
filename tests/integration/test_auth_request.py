"""Protecting another application with baa's login: the shipped site
(nginx/baa.conf.in, its "#@" block made live by render-nginx's
PROTECT_UPSTREAM) puts the demo application (scripts/demo-upstream.py)
behind /app/, and nginx's auth_request asks GET /auth.

Covered: a browser without a session is sent to the login and comes back
to the page it asked for; a program gets a JSON 401; a logged-in user
reaches the application, which sees who they are (users.id, Spotify id,
account id when known) and only that: headers of those names sent by the
client never arrive; /auth itself is not reachable from outside; the
session's renewal reaches the browser through a protected location, and
so do the clearing of an ended session's cookie and both cookies of a
first-format cookie's adoption; a logout sends the browser to the login
again; a cached session costs /auth no query; with PostgreSQL down the
client gets a JSON 503, never the application or the login.
"""

import json
import time

from harness import (LEGACY_SESSION_COOKIE, SESSION_COOKIE, Baa, DemoUpstream, SiteNginx,
                     SpotifyTestCase, make_temp_dir, mint_session, run_concurrently, wait_until)

NAVIGATE = {"Sec-Fetch-Mode": "navigate", "Sec-Fetch-Site": "none",
            "Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}
FORGED = {"X-Baa-User-Id": "1", "X-Baa-Spotify-Id": "mallory", "X-Baa-Account-Id": "forged",
          "x-baa-user-id": "2"}
SECURITY_HEADERS = ("Strict-Transport-Security", "X-Content-Type-Options", "X-Frame-Options",
                    "Referrer-Policy", "Content-Security-Policy")


class AuthRequestTest(SpotifyTestCase):
    class_stack = False
    # no housekeeping during the tests: it would be a query of its own
    login_extra_env = {"BAA_HOUSEKEEPING_INTERVAL": 86400}

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.demo = DemoUpstream()
        cls.addClassCleanup(cls.demo.stop)
        cls.baa = Baa(make_temp_dir("baa-it-serve-"))
        cls.addClassCleanup(cls.baa.stop)
        env = cls.login_env()
        cls.baa.serve(env)
        cls.site = SiteNginx([env["BAA_LISTEN"]],
                             render_env={"PROTECT_UPSTREAM": cls.demo.url}).start()
        cls.addClassCleanup(cls.site.stop)

    def browser(self, nginx=None):
        return self.site.browser()

    def seen_since(self, n):
        return self.demo.seen()[n:]

    def context(self):
        return "%s\n--- nginx error log (tail) ---\n%s" % (self.stack_context(),
                                                          self.site.error_log()[-1500:])

    def expected_user(self, spotify_id):
        u = self.user(spotify_id)
        want = {"X-Baa-User-Id": str(u["id"]), "X-Baa-Spotify-Id": u["spotify_id"]}
        if u.get("account_id"):
            want["X-Baa-Account-Id"] = u["account_id"]
        return want

    def assertSentToLogin(self, resp, next_encoded):
        self.assertEqual(resp.status, 302, "%r%s" % (resp, self.context()))
        self.assertEqual(resp.location, "/login?next=" + next_encoded, resp)

    # -----------------------------------------------------------------------
    def test_anonymous_login_user_seen_logout_and_sent_to_login_again(self):
        b = self.browser()
        before = len(self.demo.seen())
        first = b.get("/app/report?year=2026&q=a%20b", headers=NAVIGATE)
        self.assertSentToLogin(first, "%2Fapp%2Freport%3Fyear%3D2026%26q%3Da%2520b")
        self.assertEqual(self.seen_since(before), [], "the application was reached without a session")

        # The login the redirect names, through the fake, back to the page.
        self.fake.set_user("protected-alice", display_name="Alice")
        login = b.get(first.location, headers=NAVIGATE)
        self.assertEqual(login.status, 302, login)
        auth, params = b.authorize_at(self.fake, login.location)
        self.assertEqual(auth.status, 302, auth)
        back = b.callback(params)
        self.assertEqual(back.status, 302, "%r%s" % (back, self.context()))
        self.assertEqual(back.location, "/app/report?year=2026&q=a%20b")

        page = b.get(back.location, headers=NAVIGATE)
        self.assertEqual(page.status, 200, "%r%s" % (page, self.context()))
        want = self.expected_user("protected-alice")
        self.assertIn("X-Baa-Account-Id", want, "the fake's users have an account id")
        seen, = self.seen_since(before)
        self.assertEqual(seen["path"], "/app/report?year=2026&q=a%20b")
        self.assertEqual(seen["user"], want)
        self.assertEqual(json.loads(page.body)["user"], want)

        out = b.post("/logout", headers={"Sec-Fetch-Site": "same-origin"})
        self.assertEqual(out.status, 200, out)
        self.assertNotIn(SESSION_COOKIE, b.jar)
        again = b.get("/app/", headers=NAVIGATE)
        self.assertSentToLogin(again, "%2Fapp%2F")
        self.assertEqual(len(self.seen_since(before)), 1, "reached after the logout")

    def test_a_program_without_a_session_gets_a_json_401(self):
        before = len(self.demo.seen())
        b = self.browser()
        for what, headers in (("no headers", {}),
                              ("JSON client", {"Accept": "application/json"}),
                              ("fetch() from a page", {"Sec-Fetch-Mode": "cors",
                                                       "Accept": "text/html"})):
            with self.subTest(what):
                resp = b.get("/app/data", headers=headers)
                self.assertEqual(resp.status, 401, "%r%s" % (resp, self.context()))
                self.assertIsNone(resp.location)
                self.assertTrue(resp.headers.get("Content-Type", "").startswith("application/json"))
                self.assertEqual(resp.json(), {"error": "not logged in"})
        # an older browser's page load: no Sec-Fetch-Mode, Accept asks for HTML
        resp = b.get("/app/", headers={"Accept": "text/html"})
        self.assertSentToLogin(resp, "%2Fapp%2F")
        # a cookie baa did not sign
        resp = b.get("/app/", headers=NAVIGATE, cookies={SESSION_COOKIE: "v2.forged"})
        self.assertSentToLogin(resp, "%2Fapp%2F")
        self.assertEqual(self.seen_since(before), [])

    def test_headers_forged_by_the_client_never_arrive(self):
        before = len(self.demo.seen())
        anonymous = self.browser()
        for headers in (FORGED, dict(FORGED, **NAVIGATE)):
            resp = anonymous.get("/app/", headers=headers)
            self.assertIn(resp.status, (302, 401), resp)
        self.assertEqual(self.seen_since(before), [], "forged headers alone let a request in")

        self.fake.set_user("protected-bob")
        b, _ = self.login()
        resp = b.get("/app/", headers=FORGED)
        self.assertEqual(resp.status, 200, "%r%s" % (resp, self.context()))
        seen, = self.seen_since(before)
        self.assertEqual(seen["user"], self.expected_user("protected-bob"))

        # A user Spotify has not told an account id: no X-Baa-Account-Id
        # arrives, the client's neither.
        user_id = int(self.pg.psql_value(
            "INSERT INTO users (spotify_id, spotify_token, token_expires_at, authorized_at)"
            " VALUES ('protected-old', 'T', now() + interval '1 hour', now()) RETURNING id",
            db=self.db))
        cookie = mint_session(self.pg, self.db, user_id)
        resp = self.browser().get("/app/", headers=FORGED, cookies={SESSION_COOKIE: cookie})
        self.assertEqual(resp.status, 200, "%r%s" % (resp, self.context()))
        self.assertEqual(self.seen_since(before)[-1]["user"],
                         {"X-Baa-User-Id": str(user_id), "X-Baa-Spotify-Id": "protected-old"})

    def test_auth_is_not_reachable_from_outside(self):
        self.fake.set_user("protected-carol")
        b, _ = self.login()
        for method in ("GET", "HEAD"):
            resp = b.request(method, "/auth")
            self.assertEqual(resp.status, 404, resp)
            self.assertIsNone(resp.headers.get("X-Baa-User-Id"), resp)
        resp = b.request("GET", "/auth?x=1", headers=NAVIGATE)
        self.assertEqual(resp.status, 404, resp)

    def test_the_renewed_cookie_reaches_the_browser_through_a_protected_location(self):
        self.fake.set_user("protected-dave")
        _, r = self.login()
        user_id = self.user("protected-dave")["id"]
        # A session whose cookie has an hour left of 30 days: due a renewal.
        cookie = mint_session(self.pg, self.db, user_id, ttl=3600)
        self.pg.psql("UPDATE sessions SET max_expires_at = now() + interval '60 days'"
                     " WHERE user_id = %d" % user_id, db=self.db)
        b = self.browser()
        b.jar = {SESSION_COOKIE: cookie}
        resp = b.get("/app/", headers=NAVIGATE)
        self.assertEqual(resp.status, 200, "%r%s" % (resp, self.context()))
        renewed = resp.set_cookies.get(SESSION_COOKIE)
        self.assertIsNotNone(renewed, "no renewal through /app/: %r" % resp)
        self.assertNotEqual(renewed.value, cookie)
        self.assertGreater(renewed.max_age, 29 * 86400)
        self.assertCookieAttributes(renewed, renewed.max_age)
        self.assertGreater(self.seconds_until(self.session_row(renewed.value)["expires_at"]),
                           29 * 86400)
        # the renewed cookie is the same session, and not renewed again
        again = b.get("/app/", headers=NAVIGATE)
        self.assertEqual(again.status, 200, again)
        self.assertNotIn(SESSION_COOKIE, again.set_cookies)
        self.assertEqual(self.demo.seen()[-1]["user"]["X-Baa-User-Id"], str(user_id))

    def test_an_ended_sessions_cookie_is_cleared_through_a_protected_location(self):
        self.fake.set_user("protected-gina")
        user_id = self.user_id_after_login("protected-gina")
        before = len(self.demo.seen())
        for what, headers in (("a page load", NAVIGATE), ("a program", {})):
            with self.subTest(what):
                cookie = mint_session(self.pg, self.db, user_id)
                b = self.browser()
                b.jar = {SESSION_COOKIE: cookie}
                self.assertEqual(b.get("/app/", headers=headers).status, 200)
                # ended elsewhere (another device's "log out everywhere")
                self.pg.psql("DELETE FROM sessions WHERE user_id = %d" % user_id, db=self.db)
                b.jar = {SESSION_COOKIE: cookie}
                resp = wait_until(lambda: self.refused(b.get("/app/", headers=headers)), 5,
                                  message="the ended session still let /app/ in")
                if headers:
                    self.assertSentToLogin(resp, "%2Fapp%2F")
                else:
                    self.assertEqual(resp.status, 401, resp)
                    self.assertEqual(resp.json(), {"error": "not logged in"})
                cleared = resp.set_cookies.get(SESSION_COOKIE)
                self.assertTrue(cleared is not None and cleared.clears,
                                "the dead cookie stays in the browser: %r" % resp)
                self.assertEqual(len(resp.set_cookie_list), 1, resp)
                for name in SECURITY_HEADERS:
                    self.assertIn(name, resp.headers, (name, resp))
        self.assertEqual(len(self.seen_since(before)), 2, "reached only while the sessions lived")

    def test_a_first_format_cookie_is_adopted_with_both_cookies_passed_on(self):
        self.fake.set_user("protected-hal")
        self.login()
        user = self.user("protected-hal")
        self.pg.psql("UPDATE session_cookie_cutover SET at = now()", db=self.db)
        legacy = self.signer.sign_legacy_session(user["id"], user["session_generation"],
                                                 int(time.time()) + 3600)
        b = self.browser()
        b.jar = {LEGACY_SESSION_COOKIE: legacy}
        resp = b.get("/app/", headers=NAVIGATE)
        self.assertEqual(resp.status, 200, "%r%s" % (resp, self.context()))
        self.assertEqual(self.demo.seen()[-1]["user"]["X-Baa-User-Id"], str(user["id"]))
        new = resp.set_cookies.get(SESSION_COOKIE)
        self.assertIsNotNone(new, "no cookie under the new name: %r" % resp)
        self.assertTrue(self.signer.session_is_authentic(new.value))
        self.assertCookieAttributes(new, new.max_age)
        gone = resp.set_cookies.get(LEGACY_SESSION_COOKIE)
        self.assertTrue(gone is not None and gone.clears, "the first-format cookie stays: %r" % resp)
        # the browser now holds only the new cookie, which works on its own
        self.assertEqual(set(b.jar), {SESSION_COOKIE})
        again = b.get("/app/", headers=NAVIGATE)
        self.assertEqual(again.status, 200, again)
        self.assertEqual(again.set_cookie_list, [])

    def test_postgres_down_is_a_json_503_not_the_application_or_the_login(self):
        self.fake.set_user("protected-ivy")
        user_id = self.user_id_after_login("protected-ivy")
        # a session no worker has cached: /auth must ask PostgreSQL
        cookie = mint_session(self.pg, self.db, user_id)
        before = len(self.demo.seen())
        self.addCleanup(self.pg.ensure_running)
        self.pg.stop(mode="fast")
        for what, headers in (("a page load", NAVIGATE), ("a program", {})):
            with self.subTest(what):
                for cookies in ({SESSION_COOKIE: cookie}, {}):
                    resp = self.browser().get("/app/", headers=headers, cookies=cookies)
                    if not cookies:
                        # no cookie: nothing to ask PostgreSQL, the login as ever
                        self.assertIn(resp.status, (302, 401), resp)
                        continue
                    self.assertEqual(resp.status, 503, "%r%s" % (resp, self.context()))
                    self.assertIsNone(resp.location, resp)
                    self.assertEqual(resp.json(), {"error": "login service unavailable"})
                    self.assertEqual(resp.set_cookie_list, [], "a cookie cleared for the database's sake")
                    for name in SECURITY_HEADERS:
                        self.assertIn(name, resp.headers, (name, resp))
        self.assertEqual(self.seen_since(before), [])
        self.pg.start()
        wait_until(lambda: self.browser().get("/app/", cookies={SESSION_COOKIE: cookie}).status
                   == 200, 15, message="/app/ did not come back with PostgreSQL")

    def refused(self, resp):
        return resp if resp.status in (302, 401) else None

    def user_id_after_login(self, spotify_id):
        self.login()
        return self.user(spotify_id)["id"]

    def test_protected_answers_carry_the_sites_security_headers(self):
        _, site_headers, _ = self.site.get("/healthz")
        self.fake.set_user("protected-erin")
        b, _ = self.login()
        for path, headers in (("/app/", {}), ("/app/", NAVIGATE)):
            resp = b.get(path, headers=headers)
            anonymous = self.browser().get(path, headers=headers)
            for name in SECURITY_HEADERS:
                self.assertEqual(resp.headers.get(name), site_headers.get(name), (name, resp))
                self.assertEqual(anonymous.headers.get(name), site_headers.get(name),
                                 (name, anonymous))

    def test_a_cached_session_costs_auth_no_query(self):
        self.fake.set_user("protected-frank")
        b, _ = self.login()

        def activity():
            rows = self.pg.psql_rows(
                "SELECT pid, query_start, state_change, state FROM pg_stat_activity"
                " WHERE datname = '%s' AND application_name = 'baa'" % self.db)
            return {int(r[0]): tuple(r[1:]) for r in rows}

        def burst():
            calls = [lambda: self.browser().get("/app/", cookies=dict(b.jar))] * 8
            for resp in run_concurrently(calls):
                self.assertFalse(isinstance(resp, Exception), resp)
                self.assertEqual(resp.status, 200, "%r%s" % (resp, self.context()))

        # As test_devices' CachedSessionTest: a worker may look the session
        # up once, in any round; after that its backend runs nothing.
        rounds = [activity()]
        for _ in range(6):
            burst()
            rounds.append(activity())
        for pid in set().union(*rounds):
            seen = [r.get(pid) for r in rounds]
            changes = [i for i in range(1, len(seen)) if seen[i] != seen[i - 1]]
            self.assertLessEqual(len(changes), 1, "backend %d ran statements in rounds %r of"
                                 " /app/ on one session:\n%s" % (pid, changes, "\n".join(map(str, seen))))
        self.assertTrue(rounds[-1], "no backend of baa's")
