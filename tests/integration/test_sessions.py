"""The __Host-baa_session cookie: who it lets in (/me, /me/token), logout
of one session or of all, account deletion, several baa instances sharing
a database, bad cookies."""

import os
import time
import unittest

from harness import (LEGACY_SESSION_COOKIE, OAUTH_COOKIE, SESSION_COOKIE, CookieSigner,
                     SpotifyTestCase, TwoInstancesTestCase, b64url, mint_session,
                     run_concurrently, wait_until)
from harness.tags import slow

OTHER_KEY = "a-different-secret-key-for-instance-c-0123456789"


def flip(s, i):
    return s[:i] + ("A" if s[i] != "A" else "B") + s[i + 1:]


TWICE = "the session cookie was sent twice: log in again"

# Cookie headers that let no one in, one row each: (what, Cookie header,
# paths, the error text or None for any). {name} is __Host-baa_session,
# {legacy} the first format's name; {mine} and {theirs} are two users' live
# session cookies, {mine2} a second one of the first user, the other fields (SessionCookieTest.forgeries) are made
# from them. Adding a case is adding a row.
BOTH = ("/me", "/me/token")
ME = ("/me",)
REFUSED_SESSION_COOKIES = [
    # tampered with or forged
    ("victim's session id, my mac", "{name}={victim_id_my_mac}", BOTH, None),
    ("expiry pushed back, same mac", "{name}={expiry_pushed}", BOTH, None),
    ("kid of another key, same mac", "{name}={other_kid}", BOTH, None),
    ("leading zero expiry, same mac", "{name}={leading_zero}", BOTH, None),
    ("mac flipped", "{name}={mac_flipped}", BOTH, None),
    ("mac missing", "{name}={mac_missing}", BOTH, None),
    ("victim's session, signed with another key", "{name}={other_key}", BOTH, None),
    ("signed with the login cookie's key", "{name}={oauth_key}", BOTH, None),
    ("well signed, no such session", "{name}={no_such_session}", BOTH, None),
    # what the database holds is no cookie: a copy of it logs no one in
    ("well signed, the stored hash as session id", "{name}={stored_hash}", BOTH, None),
    ("well signed, session id of 16 bytes", "{name}={short_id}", BOTH, None),
    ("the first format under the new name", "{name}={legacy_format}", BOTH, None),
    ("login cookie as session", "{name}={login_cookie}", BOTH, None),
    ("v3", "{name}={v3}", BOTH, None),
    ("empty", "{name}=", BOTH, None),
    ("garbage", "{name}=garbage", BOTH, None),
    # sent twice: a sibling site can add a cookie of the same name but not
    # remove baa's; which of two is baa's own cannot be told, so neither
    # counts (and the sessions are not ended by it)
    ("stale one first", "{name}=stale; {name}={mine}", BOTH, TWICE),
    ("stale one last", "{name}={mine}; {name}=stale", BOTH, TWICE),
    ("the same one twice", "{name}={mine}; {name}={mine}", BOTH, TWICE),
    ("two live sessions of one user", "{name}={mine}; {name}={mine2}", BOTH, TWICE),
    ("two live sessions of two users", "{name}={mine}; {name}={theirs}", BOTH, TWICE),
    ("twice among others", "a=1; {name}={mine}; b=2; {name}={mine}; c=3", BOTH, TWICE),
    # garbage headers
    ("garbage header", "garbage", ME, None),
    (";;;", ";;;", ME, None),
    ("=", "=", ME, None),
    ("=x", "=x", ME, None),
    ("live cookie with %00", "{name}={mine}%00", ME, None),
] + [("garbage under " + name, header.replace("NAME", name), ME, None)
     for name in ("{name}", "{legacy}")
     for header in ("NAME", "NAME=", "NAME=;", "NAME==", "a=1; =2; NAME",
                    "NAME=v1....", "NAME=v2.....", "NAME=v1.1.1.99999999999.!!!!",
                    "NAME=v2.AAAAAAAA.AAAA.99999999999.!!!!",
                    "NAME=v1.-1.1.9999999999.AAAA",
                    "NAME=v1.99999999999999999999999.1.9999999999.AAAA",
                    "NAME=v2.{kid}.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA.99999999999999999999999.AAAA")]


class SessionTestCase(SpotifyTestCase):
    def me(self, cookie_value, nginx=None, path="/me", method="GET"):
        return self.browser(nginx).request(method, path, cookies={SESSION_COOKIE: cookie_value})

    def session_ids(self, user_id=None):
        return [row["id"] for row in self.session_rows(user_id)]

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
    """Only an authentic, unexpired cookie naming a live sessions row lets
    anyone in."""

    def test_no_cookie_is_401(self):
        for path in ("/me", "/me/token"):
            with self.subTest(path):
                self.assertUnauthorized(self.browser().get(path), path)

    def test_python_signed_session_cookie_is_accepted_and_expired_one_is_not(self):
        b, r = self.login()
        u = self.user()
        f = CookieSigner.parse_session(r.session_cookie)
        self.assertEqual(f["kid"], self.signer.kid)
        self.assertEqual(self.signer.sign_session(f["session_id"], f["expires"]),
                         r.session_cookie, "the test's signer does not make baa's cookies")
        self.assertEqual(self.session_row(r.session_cookie)["user_id"], u["id"])
        now = int(time.time())
        expired = self.signer.sign_session(f["session_id"], now - 5)
        fresh = self.signer.sign_session(f["session_id"], now + 300)
        for path in ("/me", "/me/token"):
            with self.subTest(path):
                self.assertUnauthorized(self.me(expired, path=path), "expired cookie " + path)
                ok = self.me(fresh, path=path)
                self.assertEqual(ok.status, 200, ok)
        self.assertEqual(self.me(fresh).json()["id"], u["id"])
        # a row written by the test, with a cookie signed by the test, is a
        # session as good as a login's
        minted = mint_session(self.pg, self.db, u["id"])
        self.assertEqual(self.me(minted).json()["id"], u["id"])
        self.assertEqual(self.me(minted, path="/me/token").status, 200)

    def forgeries(self, r1, r2):
        """The fields of REFUSED_SESSION_COOKIES' templates: {mine} is r1's
        session cookie, {theirs} r2's (the victim's), the others made from
        them."""
        victim = self.user("victim")
        mine = CookieSigner.parse_session(r1.session_cookie)
        theirs = CookieSigner.parse_session(r2.session_cookie)
        mac, kid = mine["mac"], mine["kid"]
        sid = b64url(mine["session_id"])
        now = int(time.time())
        other_key = CookieSigner(OTHER_KEY)
        body = r1.session_cookie.rpartition(".")[0]
        short = "v2.%s.%s.%d" % (kid, b64url(theirs["session_id"][:16]), now + 300)
        return {
            "name": SESSION_COOKIE, "legacy": LEGACY_SESSION_COOKIE, "kid": self.signer.kid,
            "mine": r1.session_cookie, "theirs": r2.session_cookie,
            "victim_id_my_mac": "v2.%s.%s.%d.%s" % (kid, b64url(theirs["session_id"]),
                                                   mine["expires"], mac),
            "expiry_pushed": "v2.%s.%s.%d.%s" % (kid, sid, mine["expires"] + 86400, mac),
            "other_kid": "v2.%s.%s.%d.%s" % (other_key.kid, sid, mine["expires"], mac),
            "leading_zero": "v2.%s.%s.0%d.%s" % (kid, sid, mine["expires"], mac),
            "mac_flipped": body + "." + flip(mac, 3),
            "mac_missing": body,
            "other_key": other_key.sign_session(theirs["session_id"], now + 300),
            "oauth_key": body + "." + self.signer.oauth_mac(body),
            "no_such_session": self.signer.sign_session(os.urandom(32), now + 300),
            "stored_hash": self.signer.sign_session(bytes.fromhex(theirs["token_hash"]), now + 300),
            "short_id": short + "." + self.signer.session_mac(short),
            "legacy_format": self.signer.sign_legacy_session(
                victim["id"], victim["session_generation"], now + 300),
            "login_cookie": r1.oauth_cookie,
            "v3": "v3" + r1.session_cookie[2:],
        }

    def test_every_refused_cookie_of_the_table_is_401(self):
        b1, r1 = self.login()
        b3, r3 = self.login()  # a second session of the same user
        self.fake.configure(user={"id": "victim", "display_name": "Victim"})
        b2, r2 = self.login()
        fields = dict(self.forgeries(r1, r2), mine2=r3.session_cookie)
        for what, header, paths, error in REFUSED_SESSION_COOKIES:
            header = header.format(**fields)
            for path in paths:
                with self.subTest(what, path=path):
                    resp = self.browser().get(path, headers={"Cookie": header})
                    self.assertUnauthorized(resp, "%s (%s)" % (what, header[:60]))
                    if error is not None:
                        self.assertEqual(resp.json()["error"], error, resp)
        # control: the real cookies still work, each for its own user (none
        # of the rows ended a session)
        self.assertEqual(self.me(r1.session_cookie).json()["spotify_id"], "demo-user")
        self.assertEqual(self.me(r3.session_cookie).json()["spotify_id"], "demo-user")
        self.assertEqual(self.me(r2.session_cookie).json()["spotify_id"], "victim")
        # and a cookie that this test signs correctly for the victim's session
        # does get in: the refusals above were for the forgery, not the signer
        theirs = CookieSigner.parse_session(r2.session_cookie)
        self.assertEqual(self.me(self.signer.sign_session(
            theirs["session_id"], int(time.time()) + 300)).json()["spotify_id"], "victim")

    def test_session_cookie_among_other_cookies(self):
        b, r = self.login()
        good = "%s=%s" % (SESSION_COOKIE, r.session_cookie)
        others = "; ".join("c%d=%d" % (i, i) for i in range(40))
        for what, header in (
                ("among two others", "theme=dark; %s; lang=sv" % good),
                # one malformed pair, or many cookies of other applications,
                # does not hide baa's own
                ("after a nameless pair", "=x; theme=dark; %s" % good),
                ("after a pair without =", "junk; %s" % good),
                ("after 40 others", "%s; %s" % (others, good)),
                ("before 40 others", "%s; %s" % (good, others)),
                # the first format's name is another cookie: only read when
                # the new one is absent
                ("beside a stale first-format cookie",
                 "%s=stale; %s" % (LEGACY_SESSION_COOKIE, good))):
            with self.subTest(what):
                resp = self.browser().get("/me", headers={"Cookie": header})
                self.assertEqual(resp.status, 200, resp)
                self.assertEqual(resp.json()["spotify_id"], "demo-user")

    def test_user_deleted_in_the_database_is_401_and_cookie_cleared(self):
        b, r = self.login()
        self.pg.psql("DELETE FROM users", db=self.db)
        for path in ("/me", "/me/token"):
            with self.subTest(path):
                self.assertUnauthorized(self.me(r.session_cookie, path=path), path, clears=True)

    def test_oversized_cookies_are_refused_and_no_worker_dies(self):
        b, r = self.login()
        workers = self.baa.workers()
        self.assertEqual(len(workers), self.workers)
        for size in (5000, 8100):
            for header in ("%s=%s" % (SESSION_COOKIE, "A" * size),
                           "%s=%s" % (SESSION_COOKIE, r.session_cookie[:-1] + "A" * size),
                           "%s=%s" % (OAUTH_COOKIE, "v2." + "C" * size)):
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
        row = self.session_row(old)
        self.assertIsNotNone(row, "a login makes a sessions row")
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
        # no first-format cookie was sent: none is cleared
        self.assertNotIn(LEGACY_SESSION_COOKIE, resp.set_cookies, resp)
        self.assertIsNone(self.session_row(old), "logout must delete the session's row")
        events = [(e["event"], e["session_id"]) for e in self.auth_events(row["user_id"])]
        self.assertEqual(events[-1], ("logout", row["id"]), events)
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
        for query in ("", "?everywhere=1"):
            with self.subTest(query=query):
                self.fake.set_user("demo-user")
                b1, r1 = self.login()
                self.fake.set_user("someone-else")
                b2, r2 = self.login()
                self.assertEqual(b1.post("/logout" + query).status, 200)
                self.assertEqual(self.me(r2.session_cookie).json()["spotify_id"], "someone-else")
                self.assertUnauthorized(self.me(r1.session_cookie), "logged out")

    def test_logout_ends_this_session_only(self):
        # The same user on three devices: a logout ends the device's own.
        b1, r1 = self.login()
        b2, r2 = self.login()
        b3, r3 = self.login()
        uid = self.user()["id"]
        self.assertEqual(len(self.session_ids(uid)), 3)
        for b, query in ((b1, ""), (b2, "?everywhere=0")):
            with self.subTest(query=query):
                resp = b.post("/logout" + query)
                self.assertEqual(resp.status, 200, resp)
                self.assertTrue(resp.set_cookies[SESSION_COOKIE].clears, resp)
        self.assertUnauthorized(self.me(r1.session_cookie), "logged out device 1", clears=True)
        self.assertUnauthorized(self.me(r2.session_cookie), "logged out device 2", clears=True)
        self.assertEqual(b3.get("/me").status, 200)
        self.assertEqual(b3.get("/me/token").status, 200)
        self.assertEqual([self.session_row(r3.session_cookie)["id"]], self.session_ids(uid))
        self.assertEqual([e["event"] for e in self.auth_events(uid)][-2:], ["logout", "logout"])

    def test_logout_everywhere_ends_every_session_of_the_user(self):
        b1, r1 = self.login()
        b2, r2 = self.login()
        b3, r3 = self.login()
        self.fake.configure(user={"id": "someone-else"})
        bo, ro = self.login()
        uid = self.user("demo-user")["id"]
        here = self.session_row(r2.session_cookie)["id"]
        for b in (b1, b2, b3):
            self.assertEqual(b.get("/me").status, 200)  # each one cached by a worker
        resp = b2.post("/logout?everywhere=1")
        self.assertEqual(resp.status, 200, resp)
        self.assertEqual(resp.json(), {"status": "logged out"})
        self.assertTrue(resp.set_cookies[SESSION_COOKIE].clears, resp)
        for what, r in (("device 1", r1), ("device 2", r2), ("device 3", r3)):
            for path in ("/me", "/me/token"):
                with self.subTest(what, path=path):
                    self.assertUnauthorized(self.me(r.session_cookie, path=path), what, clears=True)
        self.assertEqual(self.session_ids(uid), [])
        self.assertEqual([(e["event"], e["session_id"]) for e in self.auth_events(uid)][-1],
                         ("logout_everywhere", here))
        self.assertEqual(self.me(ro.session_cookie).json()["spotify_id"], "someone-else")
        self.assertEqual(len(self.users()), 2, "logout must not delete the user")

    def test_logout_everywhere_other_than_1_or_0_is_400_and_ends_nothing(self):
        b, r = self.login()
        b2, r2 = self.login()
        before = self.session_ids()
        for query in ("everywhere=2", "everywhere=yes", "everywhere=true", "everywhere=",
                      "everywhere", "everywhere=1&everywhere=1", "everywhere=0&everywhere=1",
                      "everywhere=%zz"):
            with self.subTest(query=query):
                resp = b.post("/logout?" + query)
                self.assertJsonError(resp, 400, "/logout?" + query)
                self.assertNotIn(SESSION_COOKIE, resp.set_cookies, resp)
        self.assertEqual(self.session_ids(), before)
        self.assertEqual(b.get("/me").status, 200)
        self.assertEqual(b2.get("/me").status, 200)

    def test_logout_without_session_is_200_clears_and_changes_nothing(self):
        b, r = self.login()
        before = self.session_ids()
        events = self.auth_events()
        f = CookieSigner.parse_session(r.session_cookie)
        now = int(time.time())
        for what, cookies in (("no cookie", {}), ("garbage", {SESSION_COOKIE: "garbage"}),
                              ("expired", {SESSION_COOKIE: self.signer.sign_session(
                                  f["session_id"], now - 5)}),
                              ("forged", {SESSION_COOKIE: CookieSigner(OTHER_KEY).sign_session(
                                  f["session_id"], now + 300)}),
                              ("no such session", {SESSION_COOKIE: self.signer.sign_session(
                                  os.urandom(32), now + 300)})):
            for query in ("", "?everywhere=1"):
                with self.subTest(what, query=query):
                    resp = self.browser().post("/logout" + query, cookies=cookies)
                    self.assertEqual(resp.status, 200, resp)
                    self.assertEqual(resp.json(), {"status": "logged out"})
                    c = resp.set_cookies.get(SESSION_COOKIE)
                    self.assertTrue(c is not None and c.clears, resp)
        # the cookie sent twice names no session either
        resp = self.browser().post("/logout?everywhere=1", headers={"Cookie": "%s=%s; %s=%s" % (
            SESSION_COOKIE, r.session_cookie, SESSION_COOKIE, r.session_cookie)})
        self.assertEqual(resp.status, 200, resp)
        self.assertEqual(self.session_ids(), before)
        self.assertEqual(self.auth_events(), events, "nothing ended, nothing recorded")
        self.assertEqual(self.me(r.session_cookie).status, 200)

    def test_delete_me_removes_the_row_and_clears_cookie(self):
        b, r = self.login()
        self.fake.configure(user={"id": "bystander"})
        b2, r2 = self.login()
        anonymous = [e for e in self.auth_events() if e["user_id"] is None]
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
        self.assertEqual([row["user_id"] for row in self.session_rows()],
                         [self.user("bystander")["id"]], "the user's sessions go with the row")
        # and their audit trail, but for one line without a user or a client
        # saying that a deletion happened
        events = self.auth_events()
        self.assertEqual({e["user_id"] for e in events} - {None}, {self.user("bystander")["id"]})
        added = [e for e in events if e["user_id"] is None][len(anonymous):]
        self.assertEqual([(e["event"], e["device"], e["network"]) for e in added],
                         [("deleted", "", None)], added)
        for path, method in (("/me", "GET"), ("/me/token", "GET"), ("/me", "DELETE")):
            with self.subTest(path=path, method=method):
                self.assertUnauthorized(self.me(r.session_cookie, path=path, method=method),
                                        "deleted user %s %s" % (method, path))
        self.assertEqual(self.me(r2.session_cookie).status, 200)

    def test_delete_without_session_is_401_and_deletes_nothing(self):
        b, r = self.login()
        now = int(time.time())
        f = CookieSigner.parse_session(r.session_cookie)
        for what, cookies in (("no cookie", {}), ("garbage", {SESSION_COOKIE: "garbage"}),
                              ("expired", {SESSION_COOKIE: self.signer.sign_session(
                                  f["session_id"], now - 5)}),
                              ("forged", {SESSION_COOKIE: CookieSigner(OTHER_KEY).sign_session(
                                  f["session_id"], now + 300)})):
            with self.subTest(what):
                self.assertUnauthorized(self.browser().delete("/me", cookies=cookies), what)
        resp = self.browser().delete("/me", headers={"Cookie": "%s=%s; %s=%s" % (
            SESSION_COOKIE, r.session_cookie, SESSION_COOKIE, r.session_cookie)})
        self.assertUnauthorized(resp, "the cookie sent twice")
        self.assertEqual(len(self.users()), 1)
        self.assertEqual(len(self.session_rows()), 1)


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

    def assertRevokedOnBoth(self, cookie, what):
        # Other workers and instances hear of it by PostgreSQL's NOTIFY, sent
        # at commit and delivered when their backends get the CPU: on a busy
        # machine that can be a few milliseconds after the logout's answer.
        for name, nginx in (("A", self.nginx_a), ("B", self.nginx_b)):
            for path in ("/me", "/me/token"):
                with self.subTest(what, instance=name, path=path):
                    seen = []
                    wait_until(lambda: seen.append(self.me(cookie, nginx=nginx, path=path).status)
                               or seen[-1] == 401, 0.5, interval=0.01,
                               message="%s: %s on %s: %r" % (what, path, name, seen))
                    self.assertUnauthorized(self.me(cookie, nginx=nginx, path=path),
                                            "%s: %s on %s" % (what, path, name))

    def test_logout_on_one_instance_revokes_the_session_on_both(self):
        b, r = self.login(nginx=self.nginx_a)
        b2, r2 = self.login(nginx=self.nginx_b)  # the same user on another device
        old = r.session_cookie
        for n in (self.nginx_a, self.nginx_b):
            self.assertEqual(self.me(old, nginx=n).status, 200)
            self.assertEqual(self.me(r2.session_cookie, nginx=n).status, 200)
        resp = self.browser(self.nginx_b).post("/logout", cookies={SESSION_COOKIE: old})
        self.assertEqual(resp.status, 200, resp)
        self.assertRevokedOnBoth(old, "after logout on B")
        # the other device's session is not this one: it stays, everywhere
        for n in (self.nginx_a, self.nginx_b):
            self.assertEqual(self.me(r2.session_cookie, nginx=n).status, 200)

    def test_logout_everywhere_on_one_instance_revokes_every_session_on_both(self):
        b, r = self.login(nginx=self.nginx_a)
        b2, r2 = self.login(nginx=self.nginx_b)
        for n in (self.nginx_a, self.nginx_b):
            for cookie in (r.session_cookie, r2.session_cookie):
                self.assertEqual(self.me(cookie, nginx=n).status, 200)
        resp = self.browser(self.nginx_a).post("/logout?everywhere=1",
                                               cookies={SESSION_COOKIE: r.session_cookie})
        self.assertEqual(resp.status, 200, resp)
        self.assertRevokedOnBoth(r.session_cookie, "this device, after logout everywhere on A")
        self.assertRevokedOnBoth(r2.session_cookie, "other device, after logout everywhere on A")

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


FAKETIME = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1"


@unittest.skipUnless(os.path.exists(FAKETIME), "libfaketime is not installed")
@slow("steps the wall clock (libfaketime)")
class WallClockStepTest(SessionTestCase):
    """The workers' caches are bounded in time by the monotonic clock: a step
    of the wall clock (NTP, an operator's `date`) cannot keep what they hold
    past its ten seconds when a notification was lost."""

    def test_a_cached_profile_is_read_again_after_the_wall_clock_steps_back(self):
        clock = os.path.join(self.tmp, "faketime")
        with open(clock, "w") as f:
            f.write("+0\n")
        os.chmod(clock, 0o644)
        env = self.login_env(LD_PRELOAD=FAKETIME, FAKETIME_TIMESTAMP_FILE=clock,
                             FAKETIME_NO_CACHE="1", FAKETIME_DONT_FAKE_MONOTONIC="1")
        if "ASAN_OPTIONS" in env:
            # the sanitizer round: ASan wants to be the first library loaded,
            # and libfaketime comes first here; they get along otherwise
            env["ASAN_OPTIONS"] += ":verify_asan_link_order=0"
        baa, nginx = self.start_stack(env)
        _, r = self.login(nginx=nginx)
        user = self.user()
        for _ in range(10):  # every worker caches the session and the profile
            self.assertEqual(self.me(r.session_cookie, nginx=nginx).json()["display_name"],
                             user["display_name"])
        # An hour back, then a change whose notification never comes (the
        # trigger is off for this statement, as for a lost notification).
        with open(clock, "w") as f:
            f.write("-3600\n")
        self.pg.psql("SET session_replication_role = replica;"
                     " UPDATE users SET display_name = 'Renamed' WHERE id = %d" % user["id"],
                     db=self.db)
        renamed = [0]

        def all_renamed():
            resp = self.me(r.session_cookie, nginx=nginx)
            self.assertEqual(resp.status, 200, resp)
            renamed[0] = renamed[0] + 1 if resp.json()["display_name"] == "Renamed" else 0
            return renamed[0] >= 6
        # Ten seconds of cache, measured on a clock that did not step back.
        wait_until(all_renamed, 16, interval=0.2,
                   message="the old profile was still served 16 s later")
