"""Spotify's six-month grant and invalid_grant, on two instances.

A refresh token dies BAA_GRANT_LIFETIME after the login that started the
grant; GET /me and /me/token say when (reauth_due_at) and, inside
BAA_REAUTH_WINDOW of it, that the user should renew (reauth_recommended).
One invalid_grant is not proof: the user is flagged (needs_reauth), the
tokens and the session kept, no refresh is tried for
BAA_INVALID_GRANT_CONFIRM; one that fails again after that clears the
tokens (the session still stays). A successful refresh or a login clears
the flag. The refresh stays single-flight throughout.
"""

import calendar
import time
import unittest

from harness import SESSION_COOKIE, TwoInstancesTestCase, run_concurrently

LIFETIME = 180 * 86400
WINDOW = 14 * 86400
CONFIRM = 3  # BAA_INVALID_GRANT_CONFIRM here: long enough to act inside it


def epoch(iso):
    return calendar.timegm(time.strptime(iso, "%Y-%m-%dT%H:%M:%SZ"))


class GrantTestCase(TwoInstancesTestCase):
    """Instances A and B on one database."""

    login_extra_env = {"BAA_INVALID_GRANT_CONFIRM": CONFIRM}

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.both = (cls.nginx_a, cls.nginx_b)

    def token(self, cookie, nginx=None):
        return self.get(cookie, nginx or self.nginx_a, "/me/token")

    def assertReauthRequired(self, resp, what):
        doc = self.assertJsonError(resp, 401, what)
        self.assertEqual(doc["error"], "reauth_required", doc)
        self.assertEqual(doc["login"], "/login?next=%2F", doc)
        self.assertTrue(doc["message"], doc)
        self.assertNotIn(SESSION_COOKIE, resp.set_cookies,
                         "%s: the session cookie must stay: %r" % (what, resp))

    def login_expiring(self, nginx=None):
        """A login whose access token is within baa's 60 s margin."""
        self.fake.configure(expires_in=30)
        b, r = self.login(nginx=nginx)
        self.fake.configure(expires_in=3600)
        return r.session_cookie

    def backdate(self, seconds):
        """As if the login had been `seconds` earlier, in baa and at the fake."""
        self.pg.psql("UPDATE users SET authorized_at = authorized_at - make_interval(secs => %d)"
                     % seconds, db=self.db)
        self.fake.age_grants(seconds)

    def refreshes(self):
        return self.fake.stats()["token_refresh_token"]


class SixMonthGrantTest(GrantTestCase):

    def test_reauth_is_due_180_days_after_the_login(self):
        b, r = self.login()
        u = self.user()
        for nginx in self.both:
            doc = self.me_doc(r.session_cookie, nginx)
            self.assertEqual(abs(epoch(doc["authorized_at"]) - time.time()) < 60, True, doc)
            self.assertEqual(epoch(doc["reauth_due_at"]) - epoch(doc["authorized_at"]), LIFETIME)
            self.assertIs(doc["reauth_recommended"], False)
            self.assertIs(doc["needs_reauth"], False)
            tok = self.token(r.session_cookie, nginx).json()
            self.assertEqual(tok["reauth_due_at"], doc["reauth_due_at"])
            self.assertIs(tok["reauth_recommended"], False)
        self.assertLess(abs(self.seconds_until(u["authorized_at"])), 60)

    def test_inside_the_window_both_instances_recommend_renewal_and_a_login_renews(self):
        b, r = self.login(nginx=self.nginx_a)
        first = self.me_doc(r.session_cookie, self.nginx_b)  # cached on B
        self.backdate(LIFETIME - WINDOW + 3600)  # 13 days and 23 hours left
        for nginx in self.both:
            doc = self.wait_me(r.session_cookie, nginx, reauth_recommended=True)
            self.assertIs(doc["needs_reauth"], False)
            self.assertEqual(epoch(first["reauth_due_at"]) - epoch(doc["reauth_due_at"]),
                             LIFETIME - WINDOW + 3600)
            tok = self.token(r.session_cookie, nginx)
            self.assertEqual(tok.status, 200, tok)
            self.assertIs(tok.json()["reauth_recommended"], True)
        # just outside the window: not yet
        self.pg.psql("UPDATE users SET authorized_at = now() - make_interval(secs => %d)"
                     % (LIFETIME - WINDOW - 3600), db=self.db)
        for nginx in self.both:
            self.wait_me(r.session_cookie, nginx, reauth_recommended=False)
        self.backdate(7200)
        # the renewal: a login through the consent screen starts a new grant
        b2, r2 = self.login(nginx=self.nginx_b)
        for nginx in self.both:
            doc = self.wait_me(r.session_cookie, nginx, reauth_recommended=False)
            self.assertLess(abs(epoch(doc["authorized_at"]) - time.time()), 60, doc)
        self.assertEqual(len(self.users()), 1)

    def test_grant_past_its_lifetime_flags_the_user_on_both_instances(self):
        cookie = self.login_expiring(self.nginx_a)
        before = self.user()
        self.backdate(LIFETIME + 86400)
        resp = self.token(cookie)
        self.assertReauthRequired(resp, "expired grant")
        self.assertEqual(self.refreshes(), 1)
        refused = [q for q in self.fake.requests("token") if q["status"] == 400]
        self.assertEqual(len(refused), 1, refused)
        after = self.user()
        self.assertIsNotNone(after["needs_reauth_at"])
        self.assertEqual(after["refresh_token"], before["refresh_token"], "tokens kept")
        self.assertIsNotNone(self.session_row(cookie), "the session is kept")
        self.assertEqual([e["event"] for e in self.auth_events(after["id"])],
                         ["login", "reauth_required"])
        for nginx in self.both:
            doc = self.wait_me(cookie, nginx, needs_reauth=True)
            self.assertIs(doc["reauth_recommended"], True)
            self.assertReauthRequired(self.token(cookie, nginx), "flagged")
        self.assertEqual(self.refreshes(), 1, "Spotify called during the wait")
        # renewing: the login clears the flag and starts the grant again
        b, r = self.login(nginx=self.nginx_b)
        self.assertIsNone(self.user()["needs_reauth_at"])
        for nginx in self.both:
            doc = self.wait_me(cookie, nginx, needs_reauth=False, reauth_recommended=False)
            tok = self.token(cookie, nginx)
            self.assertEqual(tok.status, 200, tok)
            self.assertEqual(tok.json()["access_token"], self.user()["spotify_token"])


class InvalidGrantTest(GrantTestCase):

    def flag(self, nginx=None, times=True):
        """A user whose refresh just met invalid_grant -> (cookie, row)."""
        cookie = self.login_expiring(nginx)
        self.fake.fail_refreshes(times)
        self.assertReauthRequired(self.token(cookie, nginx), "first invalid_grant")
        row = self.user()
        self.assertIsNotNone(row["needs_reauth_at"])
        return cookie, row

    def wait_confirm(self, row):
        """Until BAA_INVALID_GRANT_CONFIRM has passed since the flag."""
        left = CONFIRM - (-self.seconds_until(row["needs_reauth_at"]))
        time.sleep(max(0.0, left) + 0.3)

    def test_invalid_grant_confirmed_after_the_wait_clears_the_tokens_not_the_session(self):
        cookie, row = self.flag()
        self.assertIsNotNone(row["spotify_token"])
        self.assertEqual(self.refreshes(), 1)
        # during the wait: no refresh, on either instance
        for nginx in self.both:
            self.assertReauthRequired(self.token(cookie, nginx), "during the wait")
        self.assertEqual(self.refreshes(), 1)
        self.wait_confirm(row)
        # after it: one more refresh, invalid_grant again: the tokens go
        self.assertReauthRequired(self.token(cookie, self.nginx_b), "confirmed")
        self.assertEqual(self.refreshes(), 2)
        after = self.user()
        self.assertEqual({k: after[k] for k in ("spotify_token", "refresh_token", "token_expires_at")},
                         {"spotify_token": None, "refresh_token": None, "token_expires_at": None})
        self.assertEqual(after["needs_reauth_at"], row["needs_reauth_at"], "the flag keeps its time")
        self.assertIsNotNone(self.session_row(cookie), "the session is kept")
        self.assertEqual([e["event"] for e in self.auth_events(after["id"])],
                         ["login", "reauth_required", "reauth_required"])
        # the session stays valid everywhere; nothing left to refresh with
        for nginx in self.both:
            doc = self.wait_me(cookie, nginx, token_expires_at=None)
            self.assertIs(doc["needs_reauth"], True)
            self.assertIs(doc["reauth_recommended"], True)
            self.assertReauthRequired(self.token(cookie, nginx), "tokens cleared")
        self.assertEqual(self.refreshes(), 2)
        # a login brings the tokens back and clears the flag
        self.fake.fail_refreshes(False)
        self.login(nginx=self.nginx_b)
        for nginx in self.both:
            self.wait_me(cookie, nginx, needs_reauth=False)
            self.assertEqual(self.token(cookie, nginx).status, 200)

    def test_one_invalid_grant_then_success_clears_the_flag(self):
        cookie, row = self.flag(self.nginx_b, times=1)
        self.wait_confirm(row)
        resp = self.token(cookie, self.nginx_a)
        self.assertEqual(resp.status, 200, "%r%s" % (resp, self.stack_context()))
        after = self.user()
        self.assertIsNone(after["needs_reauth_at"])
        self.assertEqual(after["spotify_token"], resp.json()["access_token"])
        self.assertEqual(after["refresh_token"], row["refresh_token"])
        self.assertEqual(self.refreshes(), 2)
        for nginx in self.both:
            doc = self.wait_me(cookie, nginx, needs_reauth=False)
            self.assertIs(doc["reauth_recommended"], False)

    def test_first_invalid_grant_is_single_flight(self):
        """Many requests while the refresh that meets invalid_grant is in
        flight: one call to Spotify, every answer 401 reauth_required."""
        cookie = self.login_expiring()
        self.fake.fail_refreshes(True)
        self.fake.set_fault("token", delay_ms=300, grant_type="refresh_token")
        results = run_concurrently([lambda n=n: self.token(cookie, n) for n in self.both * 6])
        self.assertEqual([x for x in results if isinstance(x, Exception)], [])
        for resp in results:
            self.assertReauthRequired(resp, "concurrent")
        self.assertEqual(self.refreshes(), 1, "expected one refresh" + self.stack_context())
        self.assertIsNotNone(self.user()["spotify_token"])

    def test_confirming_refresh_is_single_flight(self):
        """After the wait, many requests at once: one refresh at Spotify.
        Spotify is back: all get the same new token, the flag is cleared."""
        cookie, row = self.flag()
        self.fake.fail_refreshes(False)
        self.wait_confirm(row)
        self.fake.set_fault("token", delay_ms=300, grant_type="refresh_token")
        results = run_concurrently([lambda n=n: self.token(cookie, n) for n in self.both * 6])
        self.assertEqual([x for x in results if isinstance(x, Exception)], [])
        for resp in results:
            self.assertEqual(resp.status, 200, "%r%s" % (resp, self.stack_context()))
        self.assertEqual(len({resp.json()["access_token"] for resp in results}), 1)
        self.assertEqual(self.refreshes(), 2, "expected one refresh after the flag")
        self.assertIsNone(self.user()["needs_reauth_at"])

    def test_confirming_refresh_that_fails_again_is_single_flight(self):
        cookie, row = self.flag()
        self.wait_confirm(row)
        self.fake.set_fault("token", delay_ms=300, grant_type="refresh_token")
        results = run_concurrently([lambda n=n: self.token(cookie, n) for n in self.both * 6])
        self.assertEqual([x for x in results if isinstance(x, Exception)], [])
        for resp in results:
            self.assertReauthRequired(resp, "concurrent confirmation")
        self.assertEqual(self.refreshes(), 2, "expected one refresh after the flag")
        self.assertIsNone(self.user()["spotify_token"])

    def test_spotify_failing_during_the_confirmation_keeps_everything(self):
        cookie, row = self.flag()
        self.wait_confirm(row)
        self.fake.set_fault("token", status=503, grant_type="refresh_token", times=1)
        resp = self.token(cookie)
        self.assertJsonError(resp, 502, "503 during the confirmation")
        after = self.user()
        self.assertEqual(after["needs_reauth_at"], row["needs_reauth_at"])
        self.assertEqual(after["refresh_token"], row["refresh_token"])
        # the next one confirms
        self.assertReauthRequired(self.token(cookie, self.nginx_b), "confirmed")
        self.assertIsNone(self.user()["refresh_token"])


class DefaultConfirmTest(GrantTestCase):
    """BAA_INVALID_GRANT_CONFIRM unset: 600 s, and /me shows the defaults."""

    login_extra_env = {}

    def test_default_wait_is_ten_minutes(self):
        cookie = self.login_expiring()
        self.fake.fail_refreshes(1)  # Spotify would answer the next one
        self.assertReauthRequired(self.token(cookie), "first")
        self.pg.psql("UPDATE users SET needs_reauth_at = now() - interval '590 seconds'",
                     db=self.db)
        self.assertReauthRequired(self.token(cookie, self.nginx_b), "at 590 s")
        self.assertEqual(self.refreshes(), 1)
        self.pg.psql("UPDATE users SET needs_reauth_at = now() - interval '601 seconds'",
                     db=self.db)
        resp = self.token(cookie)
        self.assertEqual(resp.status, 200, resp)
        self.assertEqual(self.refreshes(), 2)


class ConfiguredGrantTest(GrantTestCase):
    """BAA_GRANT_LIFETIME and BAA_REAUTH_WINDOW, for when Spotify changes them."""

    login_extra_env = {"BAA_GRANT_LIFETIME": 86400, "BAA_REAUTH_WINDOW": 3600}

    def test_lifetime_and_window_are_configurable(self):
        b, r = self.login()
        doc = self.me_doc(r.session_cookie, self.nginx_b)
        self.assertEqual(epoch(doc["reauth_due_at"]) - epoch(doc["authorized_at"]), 86400)
        self.assertIs(doc["reauth_recommended"], False)
        self.pg.psql("UPDATE users SET authorized_at = now() - interval '82900 seconds'",
                     db=self.db)
        for nginx in self.both:
            self.wait_me(r.session_cookie, nginx, reauth_recommended=True)


if __name__ == "__main__":
    unittest.main()
