"""The internal API for backend services (BAA_INTERNAL_LISTEN,
BAA_SERVICE_KEYS): a user's token and profile for a service with its key,
through nginx's internal server (plain HTTP -> FastCGI), and never through
the public site. One instance serves both listeners; the harness nginx in
front of the public listener forwards everything, so a 404 there is
baa's own, not nginx's."""

import itertools
import os
import pwd
import signal
import threading

from harness import IS_ROOT, SESSION_COOKIE, UNPRIVILEGED_USER, Browser, Nginx, SiteNginx, \
    SpotifyTestCase, free_port, make_temp_dir, parse_metrics, parse_logfmt, serve_env, wait_until

BILLING_KEY = "billing-service-key-0123456789abcdef-XYZ"
PLAYLISTS_KEY = "playlists-service-key-0123456789abcdef-XY"
WRONG_KEY = "wrong-service-key-0123456789abcdef-XYZ!!"


def bearer(key):
    return {"Authorization": "Bearer " + key}


class InternalApiTest(SpotifyTestCase):
    workers = 4
    class_stack = False

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.internal_address = "127.0.0.1:%d" % free_port()
        env = cls.login_env(BAA_INTERNAL_LISTEN=cls.internal_address,
                            SPOTIFY_SCOPES="user-read-email",
                            SPOTIFY_SCOPES_ALLOWED="user-read-email streaming",
                            BAA_SERVICE_KEYS="billing:%s playlists:%s" % (BILLING_KEY, PLAYLISTS_KEY),
                            BAA_SPOTIFY_TIMEOUT_MS=1000)
        cls.baa, cls.nginx = cls.start_class_stack(env)
        # The services' side: plain HTTP in, FastCGI to the internal listener.
        cls.internal = Nginx(cls.internal_address)
        cls.addClassCleanup(cls.internal.stop)
        cls.internal.start()

    # -- calls ---------------------------------------------------------------
    def service(self, path, key=BILLING_KEY, nginx=None):
        headers = bearer(key) if key else {}
        return Browser((nginx or self.internal).port).get(path, headers=headers)

    def me_token(self, cookie):
        return self.browser().get("/me/token", cookies={SESSION_COOKIE: cookie})

    def login_user(self, expires_in=3600):
        """A logged-in user (its token expiring in expires_in) -> (cookie, row)."""
        self.fake.configure(expires_in=expires_in)
        b, r = self.login()
        self.fake.configure(expires_in=3600)
        return r.session_cookie, self.user()

    def internal_calls(self):
        """The internal_call log lines so far, as dicts."""
        return [parse_logfmt(l) for l in self.baa.log_lines() if "event=internal_call" in l]

    def metric(self, service, outcome):
        status, _, body = self.nginx.get("/metrics")
        self.assertEqual(status, 200)
        return parse_metrics(body.decode()).get(
            'baa_internal_calls_total{service="%s",outcome="%s"}' % (service, outcome), 0.0)

    def assertNotFound(self, resp, what):
        self.assertEqual(resp.status, 404, "%s: %r%s" % (what, resp, self.stack_context()))
        self.assertEqual(resp.json(), {"error": "not found"}, what)

    # -- which listener --------------------------------------------------------
    def test_public_listener_answers_404_for_internal_paths_even_with_a_key(self):
        cookie, row = self.login_user()
        for path in ("/internal/users/%d/token" % row["id"], "/internal/users/%d" % row["id"],
                     "/internal/users/lookup/token?spotify_id=" + row["spotify_id"]):
            self.assertNotFound(self.service(path, nginx=self.nginx), "public " + path)
            self.assertNotFound(self.service(path, key=None, nginx=self.nginx), "public " + path)
        # the calls above would be this user's (ids are never reused)
        served = [c for c in self.internal_calls() if c.get("user_id") == str(row["id"])]
        self.assertEqual(served, [], "the public listener served an internal call")
        self.assertNotIn(row["spotify_token"], self.baa.log())

    def test_internal_listener_answers_404_for_public_routes(self):
        cookie, row = self.login_user()
        for path in ("/me", "/me/token", "/healthz", "/metrics", "/login"):
            resp = Browser(self.internal.port).get(path, headers=bearer(BILLING_KEY),
                                                   cookies={SESSION_COOKIE: cookie})
            self.assertNotFound(resp, "internal " + path)

    def test_shipped_site_hides_internal_and_internal_server_serves_it(self):
        """nginx/baa.conf.in answers 404 for /internal/; baa-internal.conf.in,
        rendered by render-nginx local with INTERNAL_UPSTREAMS, serves it."""
        cookie, row = self.login_user()
        listen = self.baa.env["BAA_LISTEN"]
        internal_port = free_port()
        site = SiteNginx([listen], render_env={
            "INTERNAL_UPSTREAMS": self.internal_address,
            "INTERNAL_HTTP_LISTEN": "127.0.0.1:%d" % internal_port})
        self.addCleanup(site.stop)
        site.start()
        status, _, _ = site.get("/internal/users/%d/token" % row["id"], headers=bearer(BILLING_KEY))
        self.assertEqual(status, 404)
        resp = Browser(internal_port).get("/internal/users/%d/token" % row["id"],
                                          headers=bearer(BILLING_KEY))
        self.assertEqual(resp.status, 200, "%r%s" % (resp, self.stack_context()))
        self.assertEqual(resp.json()["access_token"], row["spotify_token"])
        self.assertEqual(Browser(internal_port).get("/me").status, 404)

    # -- the service's key -------------------------------------------------------
    def test_wrong_or_missing_key_is_401_and_logged_without_the_key(self):
        cookie, row = self.login_user()
        unauthorized = self.metric("none", "unauthorized")
        path = "/internal/users/%d/token" % row["id"]
        for key, reason in ((WRONG_KEY, "wrong_key"), (None, "missing"),
                            (BILLING_KEY[:-1], "wrong_key")):
            resp = self.service(path, key=key)
            doc = self.assertJsonError(resp, 401, "key %r" % key)
            self.assertEqual(doc["error"], "unauthorized", doc)
            self.assertTrue(resp.headers.get("WWW-Authenticate", "").startswith("Bearer"), resp)
            self.assertNotIn(row["spotify_token"], resp.body.decode())
            wait_until(lambda: "reason=%s" % reason in self.baa.log(), 5,
                       message="no service_auth_failed reason=%s" % reason)
        resp = Browser(self.internal.port).get(path, headers={"Authorization": "Basic " + BILLING_KEY})
        self.assertEqual(resp.status, 401)
        log = self.baa.log()
        self.assertIn("event=service_auth_failed", log)
        for secret in (WRONG_KEY, BILLING_KEY, BILLING_KEY[:-1], row["spotify_token"]):
            self.assertNotIn(secret, log)
        self.assertEqual(self.metric("none", "unauthorized"), unauthorized + 4)

    # -- what a service gets -------------------------------------------------------
    def test_service_gets_token_and_profile_by_id_spotify_id_and_account_id(self):
        cookie, row = self.login_user()
        token = row["spotify_token"]
        ok = self.metric("billing", "ok")
        paths = ["/internal/users/%d/token" % row["id"],
                 "/internal/users/lookup/token?spotify_id=" + row["spotify_id"]]
        if row["account_id"]:
            paths.append("/internal/users/lookup/token?account_id=" + row["account_id"])
        for path in paths:
            resp = self.service(path)
            self.assertEqual(resp.status, 200, "%s %r%s" % (path, resp, self.stack_context()))
            self.assertNoStore(resp, path)
            doc = resp.json()
            self.assertEqual(doc["access_token"], token, path)
            self.assertEqual(doc["token_type"], "Bearer")
            # the same answer as the browser's /me/token
            self.assertEqual(set(doc), set(self.me_token(cookie).json()), path)
        profile = self.service("/internal/users/%d" % row["id"], key=PLAYLISTS_KEY)
        self.assertEqual(profile.status, 200, profile)
        doc = profile.json()
        me = self.browser().get("/me", cookies={SESSION_COOKIE: cookie}).json()
        # what /me shows, the grant's scope included
        self.assertEqual(doc, me)
        self.assertEqual(doc["scope"], row["scope"])
        self.assertIs(doc["needs_reauth"], False)
        self.assertIn("reauth_due_at", doc)
        self.assertNotIn(token, profile.body.decode())
        # unknown users, and lookups that name no one
        self.assertEqual(self.assertJsonError(self.service("/internal/users/999999/token"), 404,
                                              "unknown id")["error"], "user_not_found")
        self.assertEqual(self.service("/internal/users/lookup/token?spotify_id=nobody-here").status, 404)
        self.assertEqual(self.service("/internal/users/lookup/token").status, 400)
        # logged with the service and the user, never the token; counted
        # (a worker's lines reach the log within 50 ms of its going idle)
        wait_until(lambda: any(c["service"] == "playlists" and c["user_id"] == str(row["id"])
                               for c in self.internal_calls()), 5,
                   message="no internal_call line of playlists")
        calls = self.internal_calls()
        self.assertIn({"service": "billing", "user_id": str(row["id"]), "route": "token", "outcome": "ok"},
                      [{k: c.get(k) for k in ("service", "user_id", "route", "outcome")} for c in calls])
        self.assertTrue(any(c["service"] == "playlists" and c["route"] == "profile"
                            and c["user_id"] == str(row["id"]) for c in calls), calls)
        self.assertNotIn(token, self.baa.log())
        self.assertEqual(self.metric("billing", "ok"), ok + len(paths))
        self.assertGreaterEqual(self.metric("playlists", "ok"), 1)
        self.assertGreaterEqual(self.metric("billing", "not_found"), 2)

    def test_twenty_concurrent_service_and_browser_calls_cause_one_refresh(self):
        cookie, before = self.login_user(expires_in=30)
        self.assertLessEqual(self.seconds_until(before["token_expires_at"]), 60, before)
        kinds, lock, turn = [], threading.Lock(), itertools.count()
        path = "/internal/users/%d/token" % before["id"]

        def request():
            with lock:
                service = next(turn) % 2 == 0
                kinds.append("service" if service else "browser")
            return self.service(path) if service else self.me_token(cookie)
        results, new = self.assertRefreshedOnceForAll(request, before, n=20)
        self.assertEqual(sorted(kinds), ["browser"] * 10 + ["service"] * 10)
        self.assertEqual(self.user()["spotify_token"], new)
        # and now both are served the new token without another refresh
        self.assertEqual(self.service(path).json()["access_token"], new)
        self.assertEqual(self.me_token(cookie).json()["access_token"], new)
        self.assertEqual(self.fake.stats()["token_refresh_token"], 1)

    def test_require_is_checked_as_me_token_checks_it(self):
        cookie, row = self.login_user(expires_in=30)  # due: a refresh would be needed
        path = "/internal/users/%d/token" % row["id"]
        before = self.fake.stats()["token"]
        resp = self.service(path + "?require=streaming+user-read-email&next=%2Flists")
        doc = self.assertJsonError(resp, 403, "require lacking")
        self.assertEqual(doc["error"], "insufficient_scope", doc)
        self.assertEqual(doc["missing"], ["streaming"])
        self.assertEqual(doc["login"], "/login?scope=streaming%20user-read-email&next=%2Flists")
        self.assertEqual(self.fake.stats()["token"], before, "Spotify was called")
        # a scope outside SPOTIFY_SCOPES_ALLOWED, or none named: the caller's bug
        for query, code in (("require=user-top-read", "scope_not_allowed"),
                            ("require=", "invalid_scope")):
            doc = self.assertJsonError(self.service(path + "?" + query), 400, query)
            self.assertEqual(doc["error"], code, doc)
        self.assertEqual(self.service(path + "?require=user-read-email").status, 200)

    def test_needs_reauth_is_answered_as_me_token_does(self):
        cookie, row = self.login_user(expires_in=30)
        self.fake.configure(invalid_grant_on_refresh=True)
        reauth = self.metric("billing", "reauth_required")
        path = "/internal/users/%d/token" % row["id"]
        service = self.assertJsonError(self.service(path), 401, "service after invalid_grant")
        self.assertEqual(service["error"], "reauth_required", service)
        self.assertEqual(self.fake.stats()["token_refresh_token"], 1)
        browser = self.me_token(cookie)
        self.assertEqual(self.assertJsonError(browser, 401, "browser")["error"], "reauth_required")
        self.assertEqual(browser.json(), service)
        # no further call to Spotify while the confirmation waits, whoever asks
        self.assertEqual(self.service(path).status, 401)
        self.assertEqual(self.fake.stats()["token_refresh_token"], 1)
        profile = self.service("/internal/users/%d" % row["id"]).json()
        self.assertIs(profile["needs_reauth"], True)
        self.assertIs(profile["reauth_recommended"], True)
        self.assertEqual(self.metric("billing", "reauth_required"), reauth + 2)
        # the service's call took no session of the user's
        self.assertEqual(self.browser().get("/me", cookies={SESSION_COOKIE: cookie}).status, 200)


class InternalConfigTest(SpotifyTestCase):
    class_stack = False
    workers = 1

    def test_public_internal_listen_is_refused_at_start(self):
        for address in ("0.0.0.0:%d" % free_port(), "203.0.113.9:9100", "[2001:db8::1]:9100"):
            env = serve_env(self.login_env(BAA_INTERNAL_LISTEN=address,
                                           BAA_SERVICE_KEYS="billing:" + BILLING_KEY))
            res = self.run_baa(["serve"], env, timeout=15)
            self.assertEqual(res.returncode, 78, self.describe(res))
            self.assertIn("Environment variable 'BAA_INTERNAL_LISTEN' must be a unix-socket path, "
                          "a loopback address or a private network's", res.stderr)
            self.assertNotIn(BILLING_KEY, res.stderr + res.stdout)

    def test_bad_service_keys_are_refused_at_start_without_the_key(self):
        env = serve_env(self.login_env(BAA_INTERNAL_LISTEN="127.0.0.1:%d" % free_port(),
                                       BAA_SERVICE_KEYS="billing:short-secret-key " + BILLING_KEY))
        res = self.run_baa(["serve"], env, timeout=15)
        self.assertEqual(res.returncode, 78, self.describe(res))
        self.assertIn("'BAA_SERVICE_KEYS' has a bad entry 1 (billing)", res.stderr)
        self.assertIn("entry 2: must be name:key", res.stderr)
        for secret in ("short-secret-key", BILLING_KEY):
            self.assertNotIn(secret, res.stderr + res.stdout)


class InternalSocketTest(SpotifyTestCase):
    """BAA_INTERNAL_LISTEN on a unix socket, as scripts/run-local and the
    README's deployment have it: served through nginx, given to BAA_USER
    when baa starts as root (so that the dropped master can remove it),
    and removed at exit."""

    class_stack = False
    workers = 2

    def test_unix_internal_socket_serves_and_is_removed_at_exit(self):
        sock = os.path.join(make_temp_dir("baa-it-internal-"), "internal.sock")
        env = self.login_env(BAA_INTERNAL_LISTEN=sock,
                             BAA_SERVICE_KEYS="billing:" + BILLING_KEY)
        baa, nginx = self.start_stack(env)
        internal = Nginx("unix:" + sock)
        self.addCleanup(internal.stop)
        internal.start()
        cookie = self.login(nginx=nginx)[1].session_cookie
        row = self.user()
        resp = Browser(internal.port).get("/internal/users/%d/token" % row["id"],
                                          headers=bearer(BILLING_KEY))
        self.assertEqual(resp.status, 200, "%r%s" % (resp, self.stack_context(baa)))
        self.assertEqual(resp.json()["access_token"], row["spotify_token"])
        if IS_ROOT:
            self.assertEqual(os.stat(sock).st_uid, pwd.getpwnam(UNPRIVILEGED_USER).pw_uid)
        self.assertEqual(Browser(nginx.port).get("/me", cookies={SESSION_COOKIE: cookie}).status, 200)
        baa.signal(signal.SIGTERM)
        self.assertEqual(baa.wait(10), 0, baa.log()[-2000:])
        self.assertFalse(os.path.exists(sock), "internal socket file left behind")
        self.assertIn("event=listening_internal", baa.log())
