"""GET /me/token: the stored Spotify access token, refreshed at the fake
Spotify when it is about to expire, and what baa does when Spotify says the
grant is dead. Spotify failing during a refresh (5xx, timeouts, garbage,
429...) is test_faults.py's matrix."""

import base64
import unittest

from harness import (SECRET_KEY, SESSION_COOKIE, SPOTIFY_CLIENT_ID,
                     SPOTIFY_CLIENT_SECRET, SpotifyTestCase, run_concurrently, wait_until)


def pieces(value, size=20):
    """Overlapping pieces of a long secret that cover all of it."""
    if len(value) < 2 * size:
        return []
    return [value[i:i + size] for i in range(0, len(value) - size + 1, size // 2)] + [value[-size:]]


class TokenTestCase(SpotifyTestCase):
    def login_expiring(self, expires_in=30, nginx=None):
        """Log in with a token that expires within baa's 60 s margin; the fake
        then issues hour-long tokens. -> (browser, session cookie, row)."""
        self.fake.configure(expires_in=expires_in)
        b, r = self.login(nginx=nginx)
        self.fake.configure(expires_in=3600)
        row = self.user()
        self.assertLessEqual(self.seconds_until(row["token_expires_at"]), 60, row)
        return b, r.session_cookie, row

    def get_token(self, nginx, cookie, timeout=15):
        b = self.browser(nginx)
        return b.get("/me/token", cookies={SESSION_COOKIE: cookie}, timeout=timeout)

    def newest(self, kind):
        issued = self.fake.tokens()[kind]
        self.assertTrue(issued, kind)
        return issued[-1]["access_token" if kind == "access_tokens" else "refresh_token"]

    def assertTokenAnswer(self, resp, token=None):
        self.assertEqual(resp.status, 200, "%r%s" % (resp, self.stack_context()))
        self.assertNoStore(resp, "/me/token")
        doc = resp.json()
        self.assertEqual(doc["token_type"], "Bearer", doc)
        self.assertIsInstance(doc["expires_in"], int, doc)
        self.assertRegex(doc["expires_at"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
        if token is not None:
            self.assertEqual(doc["access_token"], token)
        return doc


class TokenRefreshTest(TokenTestCase):
    workers = 4
    login_extra_env = {"BAA_SPOTIFY_TIMEOUT_MS": 1000}

    def test_fresh_token_is_returned_without_calling_spotify(self):
        b, r = self.login()
        stored = self.user()["spotify_token"]
        for i in range(5):
            self.assertTokenAnswer(b.get("/me/token"), stored)
        self.assertEqual(self.fake.stats()["token_refresh_token"], 0)
        self.assertEqual(self.user()["spotify_token"], stored)

    def test_concurrent_requests_for_an_expiring_token_refresh_it_exactly_once(self):
        b, cookie, before = self.login_expiring()
        results, new = self.assertRefreshedOnceForAll(
            lambda: self.get_token(self.nginx, cookie), before)
        self.assertEqual(new, self.newest("access_tokens"))
        for resp in results:
            self.assertTrue(3500 <= resp.json()["expires_in"] <= 3601, resp.json())
        after = self.user()
        self.assertEqual(after["spotify_token"], new)
        self.assertEqual(after["refresh_token"], before["refresh_token"])
        self.assertTrue(3500 <= self.seconds_until(after["token_expires_at"]) <= 3601, after)
        req = self.fake.requests("token")[-1]
        self.assertEqual(req["form"].get("grant_type"), "refresh_token")
        self.assertEqual(req["form"].get("refresh_token"), before["refresh_token"])
        raw = ("%s:%s" % (SPOTIFY_CLIENT_ID, SPOTIFY_CLIENT_SECRET)).encode()
        self.assertEqual(req["headers"].get("Authorization"), "Basic " + base64.b64encode(raw).decode())
        # and from now on the refreshed token is served without another refresh
        self.assertTokenAnswer(self.get_token(self.nginx, cookie), new)
        self.assertEqual(self.fake.stats()["token_refresh_token"], 1)

    def test_rotated_refresh_token_is_stored_and_used_next_time(self):
        b, cookie, before = self.login_expiring()
        self.fake.configure(rotate_refresh_tokens=True, expires_in=30)
        first = self.assertTokenAnswer(self.get_token(self.nginx, cookie))
        row = self.user()
        rotated = self.newest("refresh_tokens")
        self.assertNotEqual(rotated, before["refresh_token"])
        self.assertEqual(row["refresh_token"], rotated)
        self.assertEqual(row["spotify_token"], first["access_token"])
        state = {t["refresh_token"]: t["revoked"] for t in self.fake.tokens()["refresh_tokens"]}
        self.assertTrue(state[before["refresh_token"]], "the old refresh token must be dead at the fake")
        self.assertFalse(state[rotated])
        # the token again expires within the margin: the next refresh uses the rotated token
        second = self.assertTokenAnswer(self.get_token(self.nginx, cookie))
        self.assertNotEqual(second["access_token"], first["access_token"])
        self.assertEqual(self.fake.stats()["token_refresh_token"], 2)
        self.assertEqual(self.fake.requests("token")[-1]["form"].get("refresh_token"), rotated)
        self.assertEqual(self.user()["refresh_token"], self.newest("refresh_tokens"))

    def test_refresh_without_rotation_keeps_the_refresh_token(self):
        b, cookie, before = self.login_expiring()
        doc = self.assertTokenAnswer(self.get_token(self.nginx, cookie))
        after = self.user()
        self.assertEqual(after["refresh_token"], before["refresh_token"])
        self.assertEqual(after["spotify_token"], doc["access_token"])
        self.assertNotEqual(after["spotify_token"], before["spotify_token"])
        self.assertEqual(self.fake.stats()["token_refresh_token"], 1)

    def check_invalid_grant(self, kill_grant):
        """One invalid_grant is not proof: 401 reauth_required, the tokens
        and the session kept, and no other call to Spotify while baa waits
        BAA_INVALID_GRANT_CONFIRM (600 s here; test_grant.py goes past it)."""
        b, cookie, before = self.login_expiring()
        kill_grant()
        resp = self.get_token(self.nginx, cookie)
        doc = self.assertJsonError(resp, 401, "refresh invalid_grant")
        self.assertEqual(doc["error"], "reauth_required", doc)
        self.assertEqual(doc["login"], "/login?next=%2F", doc)
        self.assertNotIn(SESSION_COOKIE, resp.set_cookies, "the session cookie must stay: %r" % resp)
        self.assertEqual(self.fake.stats()["token_refresh_token"], 1)
        self.assertEqual(self.token_columns(), {k: before[k] for k in
                                                ("spotify_token", "refresh_token", "token_expires_at")})
        self.assertIsNotNone(self.user()["needs_reauth_at"])
        # Spotify would work again; baa waits for the confirmation and does not call it
        self.fake.configure(invalid_grant_on_refresh=False)
        calls = self.fake.stats()["token"]
        for i in range(3):
            again = self.get_token(self.nginx, cookie)
            self.assertEqual(self.assertJsonError(again, 401, "during the wait")["error"],
                             "reauth_required")
        self.assertEqual(self.fake.stats()["token"], calls)
        # the session is still valid: the page can offer the renewal
        me = self.browser().get("/me", cookies={SESSION_COOKIE: cookie})
        self.assertEqual(me.status, 200, me)
        self.assertIs(me.json()["needs_reauth"], True)
        self.assertIs(me.json()["reauth_recommended"], True)

    def test_invalid_grant_on_refresh_is_401_reauth_required_and_keeps_the_tokens(self):
        self.check_invalid_grant(lambda: self.fake.configure(invalid_grant_on_refresh=True))

    def test_revoked_refresh_token_is_401_reauth_required_and_keeps_the_tokens(self):
        self.check_invalid_grant(self.fake.revoke_refresh_tokens)


class LogSecrecyTest(TokenTestCase):
    """baa's log never holds a code, token, cookie value or secret."""

    workers = 2

    def test_login_refresh_and_logout_leave_no_secret_in_the_log(self):
        # login 1 with a token about to expire, refreshed with rotation
        self.fake.configure(expires_in=30, rotate_refresh_tokens=True)
        b1, r1 = self.login()
        self.fake.configure(expires_in=3600)
        self.assertTokenAnswer(b1.get("/me/token"))
        self.assertEqual(self.fake.stats()["token_refresh_token"], 1)
        # login 2 of another user, then both log out
        self.fake.configure(user={"id": "second-user"})
        b2, r2 = self.login()
        self.assertTokenAnswer(b2.get("/me/token"))
        for b, path in ((b1, "/logout"), (b2, "/logout?everywhere=1")):
            out = b.post(path)
            self.assertEqual(out.status, 200, out)
        wait_until(lambda: self.baa.log().count("path=/logout") >= 2, 5,
                   message="logout requests not logged" + self.stack_context())

        issued = self.fake.tokens()
        self.assertEqual(len(issued["codes"]), 2, issued["codes"])
        self.assertEqual(len(issued["access_tokens"]), 3)
        self.assertEqual(len(issued["refresh_tokens"]), 3)  # two logins + one rotation
        secrets_ = {
            "client secret": SPOTIFY_CLIENT_SECRET,
            "BAA_SECRET_KEY": SECRET_KEY,
            "client credentials (Basic)": base64.b64encode(
                ("%s:%s" % (SPOTIFY_CLIENT_ID, SPOTIFY_CLIENT_SECRET)).encode()).decode(),
        }
        for i, c in enumerate(issued["codes"]):
            secrets_["code %d" % i] = c["code"]
        for i, t in enumerate(issued["access_tokens"]):
            secrets_["access token %d" % i] = t["access_token"]
        for i, t in enumerate(issued["refresh_tokens"]):
            secrets_["refresh token %d" % i] = t["refresh_token"]
        cookies = {"oauth cookie 1": r1.oauth_cookie, "oauth cookie 2": r2.oauth_cookie,
                   "session cookie 1": r1.session_cookie, "session cookie 2": r2.session_cookie}
        log = self.baa.log()
        self.assertIn("path=/callback", log)
        self.assertIn("event=token_refreshed", log)
        for what, value in secrets_.items():
            with self.subTest(what):
                self.assertTrue(value)
                self.assertNotIn(value, log, "%s leaked into baa's log" % what)
                for part in pieces(value):  # a truncated copy is a leak too
                    self.assertNotIn(part, log, "part of %s leaked into baa's log: %r" % (what, part))
        for what, value in cookies.items():
            with self.subTest(what):
                self.assertTrue(value)
                self.assertNotIn(value, log, "%s leaked into baa's log" % what)
                self.assertNotIn(value.rpartition(".")[2], log, "the MAC of %s is in baa's log" % what)
                if what.startswith("session"):
                    # the session id is what the cookie's bearer holds
                    self.assertNotIn(value.split(".")[2], log, "the session id of %s is in baa's log"
                                     % what)


if __name__ == "__main__":
    unittest.main()
