"""The baa_session cookie: who it lets in (/me, /me/token), logout and
account deletion, several baa instances sharing a database, bad cookies."""

import time
import unittest

from harness import (OAUTH_COOKIE, SESSION_COOKIE, CookieSigner, SpotifyTestCase,
                     TwoInstancesTestCase, run_concurrently,
                     wait_until)

OTHER_KEY = "a-different-secret-key-for-instance-c-0123456789"


def flip(s, i):
    return s[:i] + ("A" if s[i] != "A" else "B") + s[i + 1:]


class SessionTestCase(SpotifyTestCase):
    def me(self, cookie_value, nginx=None, path="/me", method="GET"):
        return self.browser(nginx).request(method, path, cookies={SESSION_COOKIE: cookie_value})

    def assertUnauthorized(self, resp, what, clears=None):
        self.assertJsonError(resp, 401, what)
        body = resp.body.decode()
        self.assertNotIn("spotify_id", body, what)
        self.assertNotIn("access_token", body, what)
        if clears is not None:
            c = resp.set_cookies.get(SESSION_COOKIE)
            self.assertIsNotNone(c, "%s: the session cookie must be cleared: %r" % (what, resp))
            self.assertTrue(c.clears and c.max_age == 0, c)


class SessionCookieTest(SessionTestCase):
    """Only an authentic, unexpired cookie of an existing user's current
    generation lets anyone in."""

    def test_no_cookie_is_401(self):
        for path in ("/me", "/me/token"):
            with self.subTest(path):
                self.assertUnauthorized(self.browser().get(path), path)

    def test_python_signed_session_cookie_is_accepted_and_expired_one_is_not(self):
        b, r = self.login()
        u = self.user()
        f = CookieSigner.parse_session(r.session_cookie)
        self.assertEqual(self.signer.sign_session(f["user_id"], f["generation"], f["expires"]),
                         r.session_cookie, "the test's signer does not make baa's cookies")
        now = int(time.time())
        expired = self.signer.sign_session(u["id"], u["session_generation"], now - 5)
        fresh = self.signer.sign_session(u["id"], u["session_generation"], now + 300)
        for path in ("/me", "/me/token"):
            with self.subTest(path):
                self.assertUnauthorized(self.me(expired, path=path), "expired cookie " + path)
                ok = self.me(fresh, path=path)
                self.assertEqual(ok.status, 200, ok)
        self.assertEqual(self.me(fresh).json()["id"], u["id"])

    def test_tampered_or_forged_session_cookie_is_401(self):
        b1, r1 = self.login()
        self.fake.configure(user={"id": "victim", "display_name": "Victim"})
        b2, r2 = self.login()
        victim = self.user("victim")
        mine = CookieSigner.parse_session(r1.session_cookie)
        mac = mine["mac"]
        now = int(time.time())
        other_key = CookieSigner(OTHER_KEY)
        body = r1.session_cookie.rpartition(".")[0]
        variants = {
            "victim's id, my mac": "v1.%d.%d.%d.%s" % (victim["id"], mine["generation"], mine["expires"], mac),
            "generation changed, same mac": "v1.%d.%d.%d.%s" % (mine["user_id"], mine["generation"] + 1,
                                                               mine["expires"], mac),
            "expiry pushed back, same mac": "v1.%d.%d.%d.%s" % (mine["user_id"], mine["generation"],
                                                               mine["expires"] + 86400, mac),
            "mac flipped": body + "." + flip(mac, 3),
            "mac missing": body,
            "victim's id, signed with another key": other_key.sign_session(
                victim["id"], victim["session_generation"], now + 300),
            "signed with the login cookie's key": body + "." + self.signer.oauth_mac(body),
            "well signed, no such user": self.signer.sign_session(victim["id"] + 1000, 1, now + 300),
            "well signed, stale generation": self.signer.sign_session(
                victim["id"], victim["session_generation"] + 1, now + 300),
            "leading zero id": "v1.0%d.%d.%d.%s" % (mine["user_id"], mine["generation"], mine["expires"], mac),
            "login cookie as session": r1.oauth_cookie,
            "v2": "v2" + r1.session_cookie[2:],
            "empty": "",
            "garbage": "garbage",
        }
        for what, value in variants.items():
            for path in ("/me", "/me/token"):
                with self.subTest(what, path=path):
                    self.assertUnauthorized(self.me(value, path=path), what)
        # control: the real cookies still work, each for its own user
        self.assertEqual(self.me(r1.session_cookie).json()["spotify_id"], "demo-user")
        self.assertEqual(self.me(r2.session_cookie).json()["spotify_id"], "victim")
        # and a cookie that this test signs correctly for the victim does get in:
        # the refusals above were for the forgery, not for the signer
        self.assertEqual(self.me(self.signer.sign_session(
            victim["id"], victim["session_generation"], now + 300)).json()["spotify_id"], "victim")

    def test_session_cookie_among_other_cookies(self):
        b, r = self.login()
        resp = self.browser().get("/me", headers={
            "Cookie": "theme=dark; %s=%s; lang=sv" % (SESSION_COOKIE, r.session_cookie)})
        self.assertEqual(resp.status, 200, resp)
        # a stale duplicate before the good one does not hide it
        resp = self.browser().get("/me", headers={
            "Cookie": "%s=stale; %s=%s" % (SESSION_COOKIE, SESSION_COOKIE, r.session_cookie)})
        self.assertEqual(resp.status, 200, resp)

    def test_user_deleted_in_the_database_is_401_and_cookie_cleared(self):
        b, r = self.login()
        self.pg.psql("DELETE FROM users", db=self.db)
        for path in ("/me", "/me/token"):
            with self.subTest(path):
                self.assertUnauthorized(self.me(r.session_cookie, path=path), path, clears=True)

    def test_garbage_cookie_headers_are_401(self):
        b, r = self.login()
        for header in ("garbage", ";;;", "=", "=x", "baa_session", "baa_session=", "baa_session=;",
                       "baa_session==", "baa_session=v1....", "baa_session=v1.1.1.99999999999.!!!!",
                       "baa_session=%s%%00" % r.session_cookie,
                       "a=1; =2; baa_session", "baa_session=v1.-1.1.9999999999.AAAA",
                       "baa_session=v1.99999999999999999999999.1.9999999999.AAAA"):
            with self.subTest(header=header[:60]):
                self.assertUnauthorized(self.browser().get("/me", headers={"Cookie": header}), header[:60])
        self.assertEqual(self.me(r.session_cookie).status, 200)

    def test_oversized_cookies_are_refused_and_no_worker_dies(self):
        b, r = self.login()
        workers = self.baa.workers()
        self.assertEqual(len(workers), self.workers)
        for size in (5000, 8100):
            for header in ("%s=%s" % (SESSION_COOKIE, "A" * size),
                           "%s=%s" % (SESSION_COOKIE, r.session_cookie[:-1] + "A" * size),
                           "%s=%s" % (OAUTH_COOKIE, "v1." + "C" * size)):
                for path in ("/me", "/me/token", "/callback?code=abc&state=def"):
                    with self.subTest(size=size, path=path, header=header[:20]):
                        resp = self.browser().get(path, headers={"Cookie": header})
                        self.assertTrue(400 <= resp.status < 500, resp)
        self.assertEqual(self.baa.workers(), workers, "a worker died or was replaced")
        self.assertEqual(self.me(r.session_cookie).status, 200)
        self.assertEqual(self.baa.workers(), workers)


class LogoutAndDeleteTest(SessionTestCase):
    def test_logout_clears_cookie_and_revokes_the_session(self):
        b, r = self.login()
        old = r.session_cookie
        gen = self.user()["session_generation"]
        self.assertEqual(b.get("/me").status, 200)
        resp = b.post("/logout")
        self.assertEqual(resp.status, 200, resp)
        self.assertNoStore(resp, "/logout")
        self.assertEqual(resp.json(), {"status": "logged out"})
        c = resp.set_cookies.get(SESSION_COOKIE)
        self.assertIsNotNone(c, resp)
        self.assertEqual(c.value, "")
        self.assertCookieAttributes(c, 0)
        self.assertNotIn(SESSION_COOKIE, b.jar)
        self.assertEqual(self.user()["session_generation"], gen + 1)
        # the old cookie, replayed, is dead: 401 and cleared
        for path in ("/me", "/me/token"):
            with self.subTest(path):
                self.assertUnauthorized(self.me(old, path=path), "old cookie " + path, clears=True)
        self.assertUnauthorized(self.me(old, path="/me", method="DELETE"), "old cookie DELETE /me")
        self.assertEqual(len(self.users()), 1, "logout must not delete the user")
        # logging in again works, for the same row
        b2, r2 = self.login()
        self.assertEqual(self.me(r2.session_cookie).json()["id"], self.user()["id"])
        self.assertUnauthorized(self.me(old), "old cookie after a new login")

    def test_logout_on_the_worker_that_cached_the_profile_revokes_it_at_once(self):
        # One worker on kept connections (as shipped, and the harness's
        # default): it caches the profile, serves the logout (whose own
        # NOTIFY comes back with the UPDATE's answer, inside libpq, not on
        # the socket its epoll watches) and must not answer the old cookie
        # from its cache.
        baa, nginx = self.start_stack(self.login_env(BAA_WORKERS="1"))
        for round_ in range(3):
            with self.subTest(round=round_):
                b, r = self.login(nginx=nginx)
                old = r.session_cookie
                for _ in range(3):
                    self.assertEqual(self.me(old, nginx=nginx).status, 200)
                self.assertEqual(self.browser(nginx).post(
                    "/logout", cookies={SESSION_COOKIE: old}).status, 200)
                self.assertUnauthorized(self.me(old, nginx=nginx), "old cookie, same worker")

    def test_logout_only_ends_sessions_of_that_user(self):
        b1, r1 = self.login()
        self.fake.configure(user={"id": "someone-else"})
        b2, r2 = self.login()
        self.assertEqual(b1.post("/logout").status, 200)
        self.assertEqual(self.me(r2.session_cookie).status, 200)
        self.assertUnauthorized(self.me(r1.session_cookie), "logged out")

    def test_logout_without_session_is_200_and_changes_nothing(self):
        b, r = self.login()
        gen = self.user()["session_generation"]
        for cookies in ({}, {SESSION_COOKIE: "garbage"}):
            resp = self.browser().post("/logout", cookies=cookies)
            self.assertEqual(resp.status, 200, resp)
            self.assertEqual(resp.json(), {"status": "logged out"})
        self.assertEqual(self.user()["session_generation"], gen)
        self.assertEqual(self.me(r.session_cookie).status, 200)

    def test_delete_me_removes_the_row_and_clears_cookie(self):
        b, r = self.login()
        self.fake.configure(user={"id": "bystander"})
        b2, r2 = self.login()
        resp = b.delete("/me")
        self.assertEqual(resp.status, 200, resp)
        self.assertNoStore(resp, "DELETE /me")
        doc = resp.json()
        # baa cannot revoke its grant at Spotify: it says where the user does
        self.assertEqual(set(doc), {"status", "revoke_url", "message"}, doc)
        self.assertEqual(doc["status"], "deleted")
        self.assertEqual(doc["revoke_url"], "https://www.spotify.com/account/apps/")
        self.assertIn("revoke_url", doc["message"])
        c = resp.set_cookies.get(SESSION_COOKIE)
        self.assertIsNotNone(c, resp)
        self.assertTrue(c.clears and c.max_age == 0, c)
        self.assertEqual([u["spotify_id"] for u in self.users()], ["bystander"])
        for path, method in (("/me", "GET"), ("/me/token", "GET"), ("/me", "DELETE")):
            with self.subTest(path=path, method=method):
                self.assertUnauthorized(self.me(r.session_cookie, path=path, method=method),
                                        "deleted user %s %s" % (method, path))
        self.assertEqual(self.me(r2.session_cookie).status, 200)

    def test_delete_without_session_is_401_and_deletes_nothing(self):
        b, r = self.login()
        now = int(time.time())
        u = self.user()
        for what, cookies in (("no cookie", {}), ("garbage", {SESSION_COOKIE: "garbage"}),
                              ("expired", {SESSION_COOKIE: self.signer.sign_session(
                                  u["id"], u["session_generation"], now - 5)}),
                              ("forged", {SESSION_COOKIE: CookieSigner(OTHER_KEY).sign_session(
                                  u["id"], u["session_generation"], now + 300)})):
            with self.subTest(what):
                self.assertUnauthorized(self.browser().delete("/me", cookies=cookies), what)
        self.assertEqual(len(self.users()), 1)


class MultiInstanceTest(TwoInstancesTestCase, SessionTestCase):
    """Instances A and B: two `baa serve` on one database and BAA_SECRET_KEY,
    each behind its own nginx. A third, C, has another BAA_SECRET_KEY."""

    def test_session_from_one_instance_works_on_the_other(self):
        b, r = self.login(nginx=self.nginx_a)
        for name, nginx in (("A", self.nginx_a), ("B", self.nginx_b)):
            with self.subTest(instance=name):
                resp = self.me(r.session_cookie, nginx=nginx)
                self.assertEqual(resp.status, 200, resp)
                self.assertEqual(resp.json()["spotify_id"], "demo-user")
                tok = self.me(r.session_cookie, nginx=nginx, path="/me/token")
                self.assertEqual(tok.status, 200, tok)

    def test_login_started_on_one_instance_can_finish_on_the_other(self):
        b = self.browser(self.nginx_a)
        resp = b.start_login()
        auth, params = b.authorize_at(self.fake, resp.location)
        other = self.browser(self.nginx_b)
        other.jar = dict(b.jar)
        done = other.callback(params)
        self.assertEqual(done.status, 302, "%r%s" % (done, self.stack_context()))
        self.assertEqual(self.me(other.jar[SESSION_COOKIE], nginx=self.nginx_a).status, 200)

    def test_concurrent_token_requests_on_both_instances_refresh_once(self):
        self.fake.configure(expires_in=30)
        b, r = self.login(nginx=self.nginx_a)
        self.fake.configure(expires_in=3600)
        old = self.user()["spotify_token"]
        self.fake.set_fault("token", delay_ms=300, grant_type="refresh_token")
        cookie = r.session_cookie
        funcs = [lambda n=n: self.me(cookie, nginx=n, path="/me/token")
                 for n in [self.nginx_a, self.nginx_b] * 10]
        results = run_concurrently(funcs)
        self.assertEqual([x for x in results if isinstance(x, Exception)], [])
        for resp in results:
            self.assertEqual(resp.status, 200, "%r%s" % (resp, self.stack_context()))
        tokens = {resp.json()["access_token"] for resp in results}
        self.assertEqual(len(tokens), 1, "instances handed out %d different tokens" % len(tokens))
        self.assertNotEqual(tokens, {old})
        self.assertEqual(self.fake.stats()["token_refresh_token"], 1,
                         "expected exactly one refresh across both instances" + self.stack_context())
        self.assertEqual(self.user()["spotify_token"], tokens.pop())

    def test_logout_on_one_instance_revokes_the_session_on_both(self):
        b, r = self.login(nginx=self.nginx_a)
        old = r.session_cookie
        for n in (self.nginx_a, self.nginx_b):
            self.assertEqual(self.me(old, nginx=n).status, 200)
        resp = self.browser(self.nginx_b).post("/logout", cookies={SESSION_COOKIE: old})
        self.assertEqual(resp.status, 200, resp)
        # Other workers and instances hear of it by PostgreSQL's NOTIFY, sent
        # at commit and delivered when their backends get the CPU: on a busy
        # machine that can be a few milliseconds after the logout's answer.
        for name, nginx in (("A", self.nginx_a), ("B", self.nginx_b)):
            for path in ("/me", "/me/token"):
                with self.subTest(instance=name, path=path):
                    seen = []
                    wait_until(lambda: seen.append(self.me(old, nginx=nginx, path=path).status)
                               or seen[-1] == 401, 0.5, interval=0.01,
                               message="after logout on B: %s on %s: %r" % (path, name, seen))
                    self.assertUnauthorized(self.me(old, nginx=nginx, path=path),
                                            "after logout on B: %s on %s" % (path, name))

    def test_instance_with_another_secret_key_rejects_the_cookie(self):
        b, r = self.login(nginx=self.nginx_a)
        baa_c, nginx_c = self.start_stack(self.login_env(BAA_SECRET_KEY=OTHER_KEY))
        self.assertEqual(self.me(r.session_cookie, nginx=self.nginx_b).status, 200)
        for path in ("/me", "/me/token"):
            with self.subTest(path):
                self.assertUnauthorized(self.me(r.session_cookie, nginx=nginx_c, path=path),
                                        "instance C with another key " + path)
        # and C's own logins work, while A does not take C's cookies
        bc, rc = self.login(nginx=nginx_c)
        self.assertEqual(self.me(rc.session_cookie, nginx=nginx_c).status, 200)
        self.assertUnauthorized(self.me(rc.session_cookie, nginx=self.nginx_a), "C's cookie on A")
        # C's login cookie is no good at A's callback either
        b2 = self.browser(nginx_c)
        resp = b2.start_login()
        auth, params = b2.authorize_at(self.fake, resp.location)
        calls = self.fake.stats()["token"]
        moved = self.browser(self.nginx_a).callback(params, cookies=dict(b2.jar))
        self.assertJsonError(moved, 400, "C's login cookie at A")
        self.assertEqual(self.fake.stats()["token"], calls)


if __name__ == "__main__":
    unittest.main()
