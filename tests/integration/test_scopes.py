"""Scopes asked for when needed (issue 12, part 3).

/login?scope=a+b asks Spotify for SPOTIFY_SCOPES, the session user's
stored grant and the requested scopes, each of which must be in
SPOTIFY_SCOPES_ALLOWED; /login?switch=1 asks Spotify to show its dialog.
/me/token?require=a+b answers 403 insufficient_scope (missing, login)
before any refresh when the stored grant lacks one; /me shows the grant.
What is stored is what Spotify's token answer granted, not what was
asked. A grown SPOTIFY_SCOPES makes reauth_recommended true, and the
next login asks for what is missing; a scope that the last login asked
for and Spotify dropped all the same does not.
"""

import urllib.parse

from harness import SESSION_COOKIE, SpotifyTestCase
from harness.cookies import OAUTH_COOKIE

ASKED = "user-read-email"
ALLOWED = "user-read-email playlist-read-private streaming"


def query_of(url):
    return dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(url).query,
                                       keep_blank_values=True))


class ScopesTestCase(SpotifyTestCase):
    login_extra_env = {"SPOTIFY_SCOPES": ASKED, "SPOTIFY_SCOPES_ALLOWED": ALLOWED}

    def start(self, browser, query, nginx=None):
        """GET /login?query in browser: -> (response, authorize parameters)."""
        resp = browser.get("/login" + ("?" + query if query else ""))
        self.assertEqual(resp.status, 302, "%r%s" % (resp, self.stack_context()))
        return resp, query_of(resp.location)

    def finish(self, browser, resp):
        """The consent at the fake and /callback; asserted to log in."""
        auth, params = browser.authorize_at(self.fake, resp.location)
        self.assertEqual(auth.status, 302, auth)
        done = browser.callback(params)
        self.assertEqual(done.status, 302, "%r%s" % (done, self.stack_context()))
        self.assertIn(SESSION_COOKIE, browser.jar)
        return done

    def log_in(self, query="", nginx=None):
        """A whole login through /login?query; -> the browser."""
        b = self.browser(nginx)
        resp, _ = self.start(b, query)
        self.finish(b, resp)
        return b

    def me(self, browser):
        resp = browser.get("/me")
        self.assertEqual(resp.status, 200, "%r%s" % (resp, self.stack_context()))
        return resp.json()

    def token(self, browser, query):
        return browser.get("/me/token?" + query)


class LoginScopeTest(ScopesTestCase):

    def test_login_without_a_session_asks_for_the_configured_and_requested_scopes(self):
        b = self.browser()
        _, params = self.start(b, "scope=playlist-read-private+user-read-email")
        self.assertEqual(params["scope"], "user-read-email playlist-read-private")
        self.assertNotIn("show_dialog", params)
        _, params = self.start(b, "")
        self.assertEqual(params["scope"], ASKED)

    def test_login_with_a_session_keeps_what_the_user_granted(self):
        b = self.log_in("scope=streaming")
        self.assertEqual(self.user()["scope"], "user-read-email streaming")
        _, params = self.start(b, "scope=playlist-read-private")
        self.assertEqual(params["scope"],
                         "user-read-email streaming playlist-read-private")

    def test_login_asking_for_a_scope_not_allowed_is_400_and_starts_nothing(self):
        cases = {
            "scope=user-top-read": "scope_not_allowed",
            "scope=user-read-email+user-top-read": "scope_not_allowed",
            "scope=User-Read-Email": "invalid_scope",
            "scope=a%2Cb": "invalid_scope",
            "scope=streaming&scope=streaming": "invalid_scope",
            "scope=" + "a" * 1100: "invalid_scope",
        }
        for query, code in cases.items():
            b = self.browser()
            resp = b.get("/login?" + query)
            doc = self.assertJsonError(resp, 400, query[:40])
            self.assertEqual(doc["error"], code, doc)
            self.assertTrue(doc["message"], doc)
            self.assertNotIn(OAUTH_COOKIE, resp.set_cookies, query[:40])
        self.assertIn("user-top-read", self.browser().get(
            "/login?scope=user-top-read").json()["message"])

    def test_switch_asks_spotify_for_its_dialog(self):
        b = self.log_in("scope=streaming")
        _, params = self.start(b, "switch=1")
        self.assertEqual(params["show_dialog"], "true")
        # Another account may log in: the first one's grant is not asked for.
        self.assertEqual(params["scope"], ASKED)
        _, params = self.start(b, "switch=0")
        self.assertNotIn("show_dialog", params)
        for bad in ("switch=2", "switch=true", "switch=1&switch=1"):
            self.assertJsonError(b.get("/login?" + bad), 400, bad)

    def test_stored_grant_is_what_spotify_granted_not_what_was_asked(self):
        self.fake.grant_fewer("playlist-read-private")
        b = self.log_in("scope=playlist-read-private+streaming")
        self.assertEqual(self.user()["scope"], "user-read-email streaming")
        self.assertEqual(self.me(b)["scope"], "user-read-email streaming")
        doc = self.assertJsonError(self.token(b, "require=playlist-read-private"), 403)
        self.assertEqual(doc["missing"], ["playlist-read-private"])


class RequireScopeTest(ScopesTestCase):

    def test_me_shows_the_granted_scope(self):
        b = self.log_in()
        doc = self.me(b)
        self.assertEqual(doc["scope"], ASKED)
        self.assertIs(doc["reauth_recommended"], False)

    def test_require_met_serves_the_token(self):
        b = self.log_in("scope=streaming")
        resp = self.token(b, "require=streaming+user-read-email")
        self.assertEqual(resp.status, 200, resp)
        self.assertEqual(resp.json()["access_token"], self.user()["spotify_token"])

    def test_require_lacking_is_403_with_the_login_and_no_refresh(self):
        self.fake.configure(expires_in=30)  # due: /me/token would refresh
        b = self.log_in()
        self.fake.configure(expires_in=3600)
        before = self.fake.stats()["token"]
        resp = self.token(b, "require=playlist-read-private+user-read-email&next=%2Flists")
        doc = self.assertJsonError(resp, 403)
        self.assertEqual(doc["error"], "insufficient_scope")
        self.assertEqual(doc["missing"], ["playlist-read-private"])
        self.assertEqual(
            doc["login"],
            "/login?scope=playlist-read-private%20user-read-email&next=%2Flists")
        self.assertEqual(self.fake.stats()["token"], before, "Spotify was called")
        self.assertNotIn(SESSION_COOKIE, resp.set_cookies)
        # The login it names asks for the scope, and afterwards the token comes.
        resp, params = self.start(b, doc["login"].split("?", 1)[1])
        self.assertEqual(params["scope"], "user-read-email playlist-read-private")
        done = self.finish(b, resp)
        self.assertEqual(done.location, "/lists")
        self.assertEqual(self.token(b, "require=playlist-read-private").status, 200)

    def test_malformed_require_is_400(self):
        b = self.log_in()
        for query in ("require=Streaming", "require=a&require=b",
                      "require=streaming&next=https%3A%2F%2Fevil.example%2F"):
            self.assertJsonError(self.token(b, query), 400, query)

    def test_require_of_a_scope_not_allowed_is_400_as_at_login(self):
        b = self.log_in("scope=streaming")
        before = self.fake.stats()["token"]
        for names in ("user-top-read", "streaming+user-top-read"):
            resp = self.token(b, "require=" + names)
            doc = self.assertJsonError(resp, 400, names)
            self.assertEqual(doc["error"], "scope_not_allowed", doc)
            # the very answer the login it would have named gets
            self.assertEqual(doc, self.browser().get("/login?scope=" + names).json())
        self.assertEqual(self.fake.stats()["token"], before, "Spotify was called")

    def test_require_naming_no_scope_is_400(self):
        b = self.log_in()
        for query in ("require=", "require=+", "require=++&next=%2Flists"):
            doc = self.assertJsonError(self.token(b, query), 400, query)
            self.assertEqual(doc["error"], "invalid_scope", doc)

    def test_refresh_answer_with_a_narrower_scope_is_stored(self):
        """Spotify's refresh answer says what the grant is now: a scope
        dropped there is gone from /me and from what require= accepts."""
        self.fake.configure(expires_in=30)
        b = self.log_in("scope=streaming")
        self.assertEqual(self.me(b)["scope"], "user-read-email streaming")
        self.fake.set_fault("token", grant_type="refresh_token", status=200, times=1,
                            body='{"access_token":"AT-narrower","token_type":"Bearer",'
                                 '"expires_in":3600,"scope":"user-read-email"}',
                            content_type="application/json")
        resp = self.token(b, "")
        self.assertEqual(resp.status, 200, "%r%s" % (resp, self.stack_context()))
        self.assertEqual(resp.json()["access_token"], "AT-narrower")
        self.assertEqual(self.user()["scope"], "user-read-email")
        self.assertEqual(self.me(b)["scope"], "user-read-email")
        doc = self.assertJsonError(self.token(b, "require=streaming"), 403)
        self.assertEqual(doc["missing"], ["streaming"])

    def test_refresh_answer_without_scope_keeps_the_stored_grant(self):
        self.fake.configure(expires_in=30)
        b = self.log_in("scope=streaming")
        self.fake.set_fault("token", grant_type="refresh_token", status=200, times=1,
                            body='{"access_token":"AT-refreshed","token_type":"Bearer",'
                                 '"expires_in":3600}',
                            content_type="application/json")
        resp = self.token(b, "require=streaming")
        self.assertEqual(resp.status, 200, "%r%s" % (resp, self.stack_context()))
        self.assertEqual(resp.json()["access_token"], "AT-refreshed")
        self.assertEqual(self.user()["scope"], "user-read-email streaming")
        self.assertEqual(self.me(b)["scope"], "user-read-email streaming")


class GrownScopesTest(ScopesTestCase):
    """A second stack on the same database with one more scope configured."""

    def test_a_grant_without_a_newly_configured_scope_is_asked_again(self):
        b = self.log_in()
        grown = self.login_env(SPOTIFY_SCOPES=ASKED + " streaming")
        _, nginx2 = self.start_stack(grown)
        b2 = self.browser(nginx2)
        b2.jar = dict(b.jar)
        self.assertIs(self.me(b)["reauth_recommended"], False)
        self.assertIs(self.me(b2)["reauth_recommended"], True)
        self.assertIs(self.token(b2, "").json()["reauth_recommended"], True)
        resp, params = self.start(b2, "")
        self.assertEqual(params["scope"], "user-read-email streaming")
        self.finish(b2, resp)
        self.assertEqual(self.user()["scope"], "user-read-email streaming")
        self.assertIs(self.me(b2)["reauth_recommended"], False)

    def test_a_scope_spotify_keeps_dropping_is_not_asked_for_again(self):
        """Each login asks for SPOTIFY_SCOPES; when Spotify drops one at
        every consent, asking again would bring nothing: only a configured
        scope that the last login did not ask for is worth a login."""
        everything = ASKED + " streaming"
        _, nginx2 = self.start_stack(self.login_env(SPOTIFY_SCOPES=everything))
        self.fake.grant_fewer("streaming")
        b2 = self.log_in(nginx=nginx2)
        row = self.user()
        self.assertEqual(row["scope"], ASKED)
        self.assertEqual(row["scope_requested"], everything)
        self.assertIs(self.me(b2)["reauth_recommended"], False)
        self.assertIs(self.token(b2, "").json()["reauth_recommended"], False)
        # SPOTIFY_SCOPES grows beyond what that login asked for
        _, nginx3 = self.start_stack(self.login_env(
            SPOTIFY_SCOPES=everything + " playlist-read-private"))
        b3 = self.browser(nginx3)
        b3.jar = dict(b2.jar)
        self.assertIs(self.me(b3)["reauth_recommended"], True)
        self.assertIs(self.token(b3, "").json()["reauth_recommended"], True)
        # A row whose last login is not known (from before baa kept it): as before.
        self.pg.psql("UPDATE users SET scope_requested = NULL", db=self.db)
        self.assertIs(self.me(b2)["reauth_recommended"], True)

    def test_scopes_asked_for_must_be_allowed_at_start(self):
        env = self.login_env(SPOTIFY_SCOPES="user-read-email user-top-read")
        res = self.run_baa(["serve"], env)
        self.assertEqual(res.returncode, 78, self.describe(res))
        self.assertIn("'SPOTIFY_SCOPES_ALLOWED' must include every scope of "
                      "SPOTIFY_SCOPES; it lacks: user-top-read.", res.stderr)
