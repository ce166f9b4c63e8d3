"""Sessions per device (issue 10), through nginx, on two instances A and B
that share one database and BAA_SECRET_KEY.

Each login is its own sessions row (the device's label from its
User-Agent, its network from its address, only a hash of the session id);
POST /logout ends this device, ?everywhere=1 every device, GET
/me/sessions lists them and DELETE /me/sessions/{id} ends one; whichever
instance or worker is asked next refuses what was ended. No cookie
outlives its row: not across `baa resetdb`, a deleted and re-created user
or a restored backup. The cookies are __Host- cookies; one sent twice is
refused, other sites' cookies around it are not in its way; cookies of
the first format are read (never written). POST and DELETE from another
site's page are refused. A cached session costs GET /me no query. Sessions
are renewed in the second half of their life, up to BAA_SESSION_MAX_AGE,
and last_seen_at is written at most once per interval.
"""

import base64
import calendar
import hashlib
import os
import subprocess
import time
import unittest
import urllib.parse

from harness import (LEGACY_OAUTH_COOKIE, LEGACY_SESSION_COOKIE, OAUTH_COOKIE, PG_DUMP, PSQL,
                     SESSION_COOKIE, TEST_REDIRECT_URI, CookieSigner, DeviceBrowser, HarnessError,
                     Nginx, TwoInstancesTestCase, b64url, ipv6_loopback_available,
                     run_concurrently, sessions_rows, wait_until)
from harness.tags import slow

FIREFOX_LINUX = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
CHROME_ANDROID = ("Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 "
                  "(KHTML, like Gecko) Chrome/126.0.0.0 Mobile Safari/537.36")
SAFARI_IPHONE = ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 "
                 "(KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1")
OTHER_KEY = "a-different-secret-key-for-the-forger-0123456789"
# The site's origin, as a browser sends it in Origin (SPOTIFY_REDIRECT_URI's).
SITE_ORIGIN = "%s://%s" % urllib.parse.urlsplit(TEST_REDIRECT_URI)[:2]


class DevicesTestCase(TwoInstancesTestCase):
    """Instances A and B; helpers for devices and their sessions."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.instances = (("A", cls.nginx_a), ("B", cls.nginx_b))

    # -- devices ---------------------------------------------------------------
    def device(self, user_agent=FIREFOX_LINUX, nginx=None, host="127.0.0.1"):
        return DeviceBrowser((nginx or self.nginx_a).port, user_agent, host=host)

    def login_device(self, user_agent=FIREFOX_LINUX, nginx=None, spotify_id=None, host="127.0.0.1"):
        """A device that logged in (asserted) as spotify_id (default the
        fake's demo-user); its cookie is in its jar."""
        if spotify_id is not None:
            self.fake.set_user(spotify_id)
        b = self.device(user_agent, nginx, host)
        r = b.login(self.fake)
        self.assertTrue(r.ok, "login failed:\n%s%s" % (r.describe(), self.stack_context()))
        return b

    @staticmethod
    def cookie(device):
        return device.jar[SESSION_COOKIE]

    # -- what the database holds -----------------------------------------------
    def sessions(self):
        return sessions_rows(self.pg, self.db)

    def session_of(self, cookie):
        """The sessions row of a cookie (by sha256 of its session id), or None."""
        want = "\\x" + CookieSigner.parse_session(cookie)["token_hash"]
        rows = [s for s in self.sessions() if s["token_hash"] == want]
        return rows[0] if rows else None

    def epoch_of(self, sql):
        return float(self.pg.psql_value("SELECT extract(epoch FROM (%s))" % sql, db=self.db))

    def until(self, t):
        """Wait until time.time() >= t (bounded: never more than a minute)."""
        self.assertLess(t - time.time(), 60)
        wait_until(lambda: time.time() >= t, 65, interval=0.02)

    # -- what a user notices -----------------------------------------------------
    def assertWorksEverywhere(self, cookie, spotify_id="demo-user", what=""):
        for name, nginx in self.instances:
            for path in ("/me", "/me/token"):
                resp = self.get(cookie, nginx, path)
                self.assertEqual(resp.status, 200, "%s: %s on %s: %r%s" % (
                    what, path, name, resp, self.stack_context()))
            self.assertEqual(self.get(cookie, nginx).json()["spotify_id"], spotify_id, what)

    def assertRefused(self, resp, what):
        self.assertJsonError(resp, 401, what)
        body = resp.body.decode()
        for leak in ("spotify_id", "access_token", "display_name"):
            self.assertNotIn(leak, body, what)

    def assertRefusedEverywhere(self, cookie, what, times=6):
        """401 on both instances, asked `times` times each for /me,
        /me/token and /me/sessions (so that every worker answers). Other workers and
        instances hear of an ended session by NOTIFY, a moment after the
        commit: the first refusal is waited for, briefly."""
        for name, nginx in self.instances:
            seen = []
            wait_until(lambda: seen.append(self.get(cookie, nginx).status) or seen[-1] == 401,
                       2, interval=0.01, message="%s: still let in on %s: %r%s" % (
                           what, name, seen[-5:], self.stack_context()))
            for _ in range(times):
                for path in ("/me", "/me/token", "/me/sessions"):
                    self.assertRefused(self.get(cookie, nginx, path),
                                       "%s: %s on %s" % (what, path, name))

    def list_sessions(self, cookie, nginx=None):
        resp = self.get(cookie, nginx or self.nginx_a, "/me/sessions")
        self.assertEqual(resp.status, 200, "%r%s" % (resp, self.stack_context()))
        self.assertNoStore(resp, "/me/sessions")
        return resp.json()["sessions"]


def bytes_spellings(raw):
    """Ways a 32-byte secret could be written into a text column."""
    return [b64url(raw), base64.b64encode(raw).decode(), raw.hex(), "\\x" + raw.hex()]


class DeviceSessionsTest(DevicesTestCase):

    def test_each_login_is_its_own_device_stored_only_as_a_hash(self):
        firefox = self.login_device(FIREFOX_LINUX, self.nginx_a)
        android = self.login_device(CHROME_ANDROID, self.nginx_b)
        rows = self.sessions()
        self.assertEqual(len(rows), 2, rows)
        user = self.user()
        self.assertEqual({r["user_id"] for r in rows}, {user["id"]}, "one user, two devices")
        everything = self.pg.psql("SELECT s::text FROM sessions s", db=self.db)
        for device, label in ((firefox, "Firefox on Linux"), (android, "Chrome on Android")):
            cookie = self.cookie(device)
            fields = CookieSigner.parse_session(cookie)
            self.assertEqual(len(fields["session_id"]), 32, "a 256-bit session id: %r" % cookie)
            row = self.session_of(cookie)
            self.assertIsNotNone(row, "no row keyed by sha256 of the cookie's session id")
            self.assertEqual(row["token_hash"], "\\x" + hashlib.sha256(fields["session_id"]).hexdigest())
            self.assertEqual(row["device"], label, row)
            self.assertEqual(row["network"], "127.0.0.0/24", row)
            self.assertGreater(self.epoch_of("'%s'::timestamptz - now()" % row["expires_at"]), 3000,
                               row)
            for spelling in bytes_spellings(fields["session_id"]):
                self.assertNotIn(spelling, everything, "the session id itself is stored")
        self.assertNotEqual(CookieSigner.parse_session(self.cookie(firefox))["session_id"],
                            CookieSigner.parse_session(self.cookie(android))["session_id"])
        for device in (firefox, android):
            self.assertWorksEverywhere(self.cookie(device))

    @unittest.skipUnless(ipv6_loopback_available(), "no IPv6 loopback")
    def test_a_device_on_ipv6_is_recorded_by_its_64(self):
        nginx = Nginx(self.baa_a.env["BAA_LISTEN"])
        with open(nginx.conf) as f:
            conf = f.read()
        listen = "listen 127.0.0.1:%d;" % nginx.port
        self.assertIn(listen, conf)
        with open(nginx.conf, "w") as f:
            f.write(conf.replace(listen, "%s listen [::1]:%d;" % (listen, nginx.port)))
        self.addCleanup(nginx.stop)
        try:
            nginx.start()
        except HarnessError as exc:  # the port is free on 127.0.0.1, not on ::1
            self.skipTest("nginx could not listen on [::1]: %s" % exc)
        phone = self.login_device(SAFARI_IPHONE, nginx, host="::1")
        row = self.session_of(self.cookie(phone))
        self.assertEqual(row["network"], "::/64", row)
        self.assertEqual(row["device"], "Safari on iPhone", row)
        listed = self.list_sessions(self.cookie(phone), self.nginx_b)
        self.assertEqual([(s["network"], s["device"]) for s in listed], [("::/64", "Safari on iPhone")])

    def test_me_sessions_lists_every_device_and_marks_the_callers(self):
        firefox = self.login_device(FIREFOX_LINUX, self.nginx_a)
        android = self.login_device(CHROME_ANDROID, self.nginx_b)
        stranger = self.login_device(FIREFOX_LINUX, self.nginx_a, spotify_id="stranger")
        ids = {label: self.session_of(self.cookie(d))["id"]
               for label, d in (("firefox", firefox), ("android", android))}
        for caller, device in (("firefox", firefox), ("android", android)):
            for name, nginx in self.instances:
                with self.subTest(caller=caller, instance=name):
                    listed = self.list_sessions(self.cookie(device), nginx)
                    self.assertEqual(sorted(s["id"] for s in listed), sorted(ids.values()),
                                     "exactly the user's two devices: %r" % listed)
                    by_id = {s["id"]: s for s in listed}
                    self.assertEqual([s["id"] for s in listed if s["current"]], [ids[caller]])
                    self.assertEqual(by_id[ids["firefox"]]["device"], "Firefox on Linux")
                    self.assertEqual(by_id[ids["android"]]["device"], "Chrome on Android")
                    for s in listed:
                        self.assertEqual(s["network"], "127.0.0.0/24", s)
                        self.assertEqual(set(s), {"id", "created_at", "last_seen_at", "expires_at",
                                                  "device", "network", "current"}, s)
                        for key in ("created_at", "last_seen_at", "expires_at"):
                            self.assertRegex(s[key], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
        mine = self.list_sessions(self.cookie(stranger))
        self.assertEqual(len(mine), 1, mine)
        self.assertTrue(mine[0]["current"])
        self.assertNotIn(mine[0]["id"], ids.values())

    def test_logout_ends_only_this_device_on_every_worker_of_both_instances(self):
        firefox = self.login_device(FIREFOX_LINUX, self.nginx_a)
        android = self.login_device(CHROME_ANDROID, self.nginx_b)
        old = self.cookie(firefox)
        # both instances have both sessions in their caches
        for cookie in (old, self.cookie(android)):
            self.assertWorksEverywhere(cookie)
        resp = firefox.post("/logout")
        self.assertEqual(resp.status, 200, resp)
        self.assertEqual(resp.json(), {"status": "logged out"})
        cleared = resp.set_cookies.get(SESSION_COOKIE)
        self.assertTrue(cleared is not None and cleared.clears, resp)
        self.assertRefusedEverywhere(old, "the device that logged out")
        self.assertWorksEverywhere(self.cookie(android), what="the other device")
        self.assertEqual([r["device"] for r in self.sessions()], ["Chrome on Android"])
        self.assertEqual(len(self.users()), 1, "a logout keeps the user")

    def test_logout_everywhere_ends_every_device_on_both_instances(self):
        firefox = self.login_device(FIREFOX_LINUX, self.nginx_a)
        android = self.login_device(CHROME_ANDROID, self.nginx_b)
        stranger = self.login_device(FIREFOX_LINUX, self.nginx_b, spotify_id="stranger")
        cookies = [self.cookie(firefox), self.cookie(android)]
        for cookie in cookies:
            self.assertWorksEverywhere(cookie)
        resp = android.post("/logout?everywhere=1")
        self.assertEqual(resp.status, 200, resp)
        self.assertEqual(resp.json(), {"status": "logged out"})
        for what, cookie in zip(("firefox", "android"), cookies):
            self.assertRefusedEverywhere(cookie, "logged out everywhere: " + what)
        self.assertWorksEverywhere(self.cookie(stranger), "stranger", "another user")
        self.assertEqual(len(self.sessions()), 1)

    def test_logout_with_everywhere_other_than_1_is_400_and_ends_nothing(self):
        firefox = self.login_device(FIREFOX_LINUX, self.nginx_a)
        android = self.login_device(CHROME_ANDROID, self.nginx_b)
        for query in ("everywhere=2", "everywhere=yes", "everywhere=", "everywhere=true",
                      "everywhere=1&everywhere=1", "everywhere=%31%31"):
            for name, nginx in self.instances:
                with self.subTest(query=query, instance=name):
                    resp = self.browser(nginx).post("/logout?" + query,
                                                    cookies={SESSION_COOKIE: self.cookie(firefox)})
                    self.assertJsonError(resp, 400, query)
                    self.assertNotIn(SESSION_COOKIE, resp.set_cookies, "400 clears nothing")
        self.assertEqual(len(self.sessions()), 2)
        for device in (firefox, android):
            self.assertWorksEverywhere(self.cookie(device))

    def test_ending_another_device_from_the_list_ends_it_on_both_instances(self):
        firefox = self.login_device(FIREFOX_LINUX, self.nginx_a)
        android = self.login_device(CHROME_ANDROID, self.nginx_b)
        lost = self.cookie(android)
        self.assertWorksEverywhere(lost)
        listed = self.list_sessions(self.cookie(firefox))
        other = [s["id"] for s in listed if not s["current"]]
        self.assertEqual(len(other), 1, listed)
        resp = firefox.delete("/me/sessions/%d" % other[0])
        self.assertEqual(resp.status, 200, "%r%s" % (resp, self.stack_context()))
        self.assertNotIn(SESSION_COOKIE, resp.set_cookies, "this device stays logged in")
        self.assertRefusedEverywhere(lost, "the ended device")
        self.assertWorksEverywhere(self.cookie(firefox), what="the device that ended it")
        self.assertEqual([s["device"] for s in self.list_sessions(self.cookie(firefox), self.nginx_b)],
                         ["Firefox on Linux"])
        # ending it again: it is gone
        again = firefox.delete("/me/sessions/%d" % other[0])
        self.assertJsonError(again, 404, "an ended session")

    def test_ending_the_current_session_from_the_list_logs_this_device_out(self):
        firefox = self.login_device(FIREFOX_LINUX, self.nginx_a)
        android = self.login_device(CHROME_ANDROID, self.nginx_b)
        old = self.cookie(firefox)
        own = self.session_of(old)["id"]
        resp = firefox.delete("/me/sessions/%d" % own, headers={"Sec-Fetch-Site": "same-origin"})
        self.assertEqual(resp.status, 200, resp)
        cleared = resp.set_cookies.get(SESSION_COOKIE)
        self.assertTrue(cleared is not None and cleared.clears, resp)
        self.assertRefusedEverywhere(old, "the device that ended its own session")
        self.assertWorksEverywhere(self.cookie(android))

    def test_ending_someone_elses_or_an_unknown_session_is_404_and_ends_nothing(self):
        mine = self.login_device(FIREFOX_LINUX, self.nginx_a)
        victim = self.login_device(CHROME_ANDROID, self.nginx_b, spotify_id="victim")
        theirs = self.session_of(self.cookie(victim))["id"]
        unknown = max(s["id"] for s in self.sessions()) + 1000
        for name, nginx in self.instances:
            for sid in (theirs, unknown):
                with self.subTest(instance=name, id=sid):
                    resp = self.browser(nginx).delete("/me/sessions/%d" % sid,
                                                      cookies={SESSION_COOKIE: self.cookie(mine)})
                    doc = self.assertJsonError(resp, 404, "DELETE /me/sessions/%d" % sid)
                    self.assertNotIn(SESSION_COOKIE, resp.set_cookies)
                    # the answer is the same whether the id is someone's or no one's
                    self.assertEqual(doc, {"error": "no such session"})
        self.assertEqual(len(self.sessions()), 2)
        self.assertWorksEverywhere(self.cookie(victim), "victim", "the other user's session")
        self.assertWorksEverywhere(self.cookie(mine), what="the caller's session")
        # the victim's own list still shows their device
        self.assertEqual([s["id"] for s in self.list_sessions(self.cookie(victim))], [theirs])

    def test_malformed_session_ids_are_404(self):
        device = self.login_device()
        own = self.session_of(self.cookie(device))["id"]
        for raw in ("abc", "0", "-%d" % own, "0%d" % own, "%d.0" % own, "+%d" % own,
                    "%d/" % own, "%d/x" % own, " %d" % own, "%d " % own, "1e3", "0x1",
                    "99999999999999999999", "9" * 400, "%d;%d" % (own, own), "%d,1" % own):
            with self.subTest(id=raw[:40]):
                path = "/me/sessions/" + raw.replace(" ", "%20")
                resp = self.browser().delete(path, cookies={SESSION_COOKIE: self.cookie(device)})
                self.assertIn(resp.status, (404, 414) if len(raw) > 300 else (404,),
                              "DELETE %s -> %r" % (path[:60], resp))
                self.assertNotIn(SESSION_COOKIE, resp.set_cookies)
        self.assertEqual(self.session_of(self.cookie(device))["id"], own, "nothing ended")
        self.assertWorksEverywhere(self.cookie(device))

    def test_session_whose_row_expired_is_refused_though_its_cookie_has_not(self):
        self.login_device()
        user_id = self.user()["id"]
        raw = os.urandom(32)
        self.pg.psql("INSERT INTO sessions (token_hash, user_id, expires_at, max_expires_at, device)"
                     " VALUES ('\\x%s', %d, now() + interval '2 seconds', now() + interval '1 hour',"
                     " 'minted')" % (hashlib.sha256(raw).hexdigest(), user_id), db=self.db)
        expires_at = self.epoch_of("SELECT expires_at FROM sessions WHERE device = 'minted'")
        cookie = self.signer.sign_session(raw, int(time.time()) + 3600)
        for name, nginx in self.instances:  # read, and cached, by both
            for _ in range(4):
                self.assertEqual(self.get(cookie, nginx).status, 200)
        wait_until(lambda: time.time() > expires_at + 0.05, 5)
        for name, nginx in self.instances:
            for _ in range(6):
                resp = self.get(cookie, nginx)
                self.assertRefused(resp, "expired row on %s" % name)
                cleared = resp.set_cookies.get(SESSION_COOKIE)
                self.assertTrue(cleared is not None and cleared.clears, resp)


class OldCookiesTest(DevicesTestCase):
    """No cookie outlives its row, so none becomes someone else's session."""

    def reset_database(self):
        res = self.run_baa(["resetdb"], self.env(), timeout=60)
        self.assertEqual(res.returncode, 0, self.describe(res))

    def assertNotTheirs(self, cookie, spotify_id, what):
        """The cookie is refused on both instances and shows nothing of spotify_id."""
        for name, nginx in self.instances:
            for path in ("/me", "/me/token", "/me/sessions", "/me/activity"):
                resp = self.get(cookie, nginx, path)
                self.assertRefused(resp, "%s: %s on %s" % (what, path, name))
                self.assertNotIn(spotify_id, resp.body.decode(), what)

    def test_cookie_from_before_resetdb_is_not_the_new_user_with_the_same_id(self):
        self.reset_database()  # ids start again at 1
        alice = self.login_device(FIREFOX_LINUX, self.nginx_a, spotify_id="alice")
        old = self.cookie(alice)
        alice_row = self.user("alice")
        self.assertWorksEverywhere(old, "alice")
        # a first-format cookie of alice's, as the release before would have made it
        legacy = self.signer.sign_legacy_session(alice_row["id"], alice_row["session_generation"],
                                                 int(time.time()) + 3600)

        self.reset_database()
        bob = self.login_device(CHROME_ANDROID, self.nginx_b, spotify_id="bob")
        bob_row = self.user("bob")
        self.assertEqual((bob_row["id"], bob_row["session_generation"]),
                         (alice_row["id"], alice_row["session_generation"]),
                         "the test needs bob to get alice's old id and generation")
        self.assertNotTheirs(old, "bob", "alice's cookie from before resetdb")
        for name, nginx in self.instances:
            resp = self.browser(nginx).get("/me", cookies={LEGACY_SESSION_COOKIE: legacy})
            self.assertRefused(resp, "alice's first-format cookie on %s" % name)
            self.assertNotIn(SESSION_COOKIE, resp.set_cookies, "adopted into bob's account")
        self.assertEqual(len(self.sessions()), 1, "only bob's session")
        self.assertWorksEverywhere(self.cookie(bob), "bob")

    def test_cookie_of_a_deleted_and_recreated_user_is_refused(self):
        for how in ("DELETE /me", "a DELETE in SQL"):
            with self.subTest(how):
                laptop = self.login_device(FIREFOX_LINUX, self.nginx_a, spotify_id="alice")
                phone = self.login_device(CHROME_ANDROID, self.nginx_b, spotify_id="alice")
                first = self.user("alice")["id"]
                old = [self.cookie(laptop), self.cookie(phone)]
                for cookie in old:
                    self.assertWorksEverywhere(cookie, "alice")
                if how == "DELETE /me":
                    self.assertEqual(phone.delete("/me").status, 200)
                else:
                    self.pg.psql("DELETE FROM users WHERE id = %d" % first, db=self.db)
                again = self.login_device(SAFARI_IPHONE, self.nginx_a, spotify_id="alice")
                self.assertNotEqual(self.user("alice")["id"], first, "a new row")
                for cookie in old:
                    self.assertRefusedEverywhere(cookie, "a cookie of the deleted alice")
                self.assertWorksEverywhere(self.cookie(again), "alice")
                self.assertEqual([s["device"] for s in self.list_sessions(self.cookie(again))],
                                 ["Safari on iPhone"], "the old devices are not the new user's")
                self.pg.psql("DELETE FROM users", db=self.db)

    def test_cookie_made_after_a_backup_is_refused_once_it_is_restored(self):
        alice = self.login_device(FIREFOX_LINUX, self.nginx_a, spotify_id="alice")
        alice_id = self.user("alice")["id"]
        dump = os.path.join(self.tmp, "backup-%s.sql" % os.urandom(3).hex())
        res = subprocess.run([PG_DUMP, "--no-owner", "-f", dump] + self.pg.client_args(self.db),
                             capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=60,
                             env=self.pg.client_env())
        self.assertEqual(res.returncode, 0, res.stderr)

        bob = self.login_device(CHROME_ANDROID, self.nginx_b, spotify_id="bob")
        bob_id = self.user("bob")["id"]
        self.assertWorksEverywhere(self.cookie(bob), "bob")

        # the backup is restored, with both instances running
        self.pg.drop_database(self.db)
        self.pg.psql('CREATE DATABASE "%s"' % self.db)
        res = subprocess.run([PSQL, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-f", dump]
                             + self.pg.client_args(self.db), capture_output=True, text=True,
                             stdin=subprocess.DEVNULL, timeout=60, env=self.pg.client_env())
        self.assertEqual(res.returncode, 0, res.stderr)
        self.assertEqual([u["spotify_id"] for u in self.users()], ["alice"])

        carol = self.login_device(SAFARI_IPHONE, self.nginx_a, spotify_id="carol")
        self.assertEqual(self.user("carol")["id"], bob_id,
                         "the test needs carol to get the id bob had after the backup")
        self.assertNotTheirs(self.cookie(bob), "carol", "bob's cookie, made after the backup")
        # a session that was in the backup is still its user's, and only theirs
        self.assertWorksEverywhere(self.cookie(alice), "alice")
        self.assertEqual(self.get(self.cookie(alice)).json()["id"], alice_id)
        self.assertWorksEverywhere(self.cookie(carol), "carol")
        self.assertEqual([s["device"] for s in self.list_sessions(self.cookie(carol))],
                         ["Safari on iPhone"])


class CookieNamesTest(DevicesTestCase):
    """__Host- cookies, duplicates refused, others' cookies skipped, the
    first format read but never written."""

    def setUp(self):
        super().setUp()
        at = self.pg.psql_value("SELECT at FROM session_cookie_cutover", db=self.db)
        self.addCleanup(self.pg.psql, "UPDATE session_cookie_cutover SET at = '%s'" % at, db=self.db)

    def assertHostCookie(self, cookie, what):
        """What a browser needs to take a __Host- cookie (or its deletion)."""
        self.assertIs(cookie.attrs.get("secure"), True, "%s: %r" % (what, cookie))
        self.assertEqual(cookie.attrs.get("path"), "/", "%s: %r" % (what, cookie))
        self.assertNotIn("domain", cookie.attrs, "%s: %r" % (what, cookie))
        self.assertIs(cookie.attrs.get("httponly"), True, "%s: %r" % (what, cookie))
        self.assertEqual(str(cookie.attrs.get("samesite", "")).lower(), "lax", "%s: %r" % (what, cookie))

    def assertNoLegacyWritten(self, resp, what):
        for name in (LEGACY_SESSION_COOKIE, LEGACY_OAUTH_COOKIE):
            c = resp.set_cookies.get(name)
            self.assertTrue(c is None or c.clears, "%s writes %s: %r" % (what, name, resp))

    def test_cookies_are_host_only_secure_and_http_only(self):
        b = self.device()
        start = b.start_login()
        self.assertEqual(start.status, 302, start)
        oauth = start.set_cookies.get(OAUTH_COOKIE)
        self.assertIsNotNone(oauth, start)
        self.assertHostCookie(oauth, "the login cookie")
        self.assertEqual(oauth.max_age, 600)
        self.assertEqual(CookieSigner.parse_oauth(oauth.value)["kid"], self.signer.kid)
        self.assertTrue(self.signer.oauth_is_authentic(oauth.value))
        self.assertNoLegacyWritten(start, "/login")
        self.assertEqual([c.name for c in start.set_cookie_list], [OAUTH_COOKIE])

        auth, params = b.authorize_at(self.fake, start.location)
        done = b.callback(params)
        self.assertEqual(done.status, 302, done)
        session = done.set_cookies.get(SESSION_COOKIE)
        self.assertIsNotNone(session, done)
        self.assertHostCookie(session, "the session cookie")
        self.assertTrue(self.signer.session_is_authentic(session.value))
        fields = CookieSigner.parse_session(session.value)
        self.assertEqual(fields["kid"], self.signer.kid)
        self.assertAlmostEqual(session.max_age, 2592000, delta=5)  # BAA_SESSION_TTL's default
        self.assertAlmostEqual(fields["expires"], time.time() + session.max_age, delta=5)
        self.assertHostCookie(done.set_cookies[OAUTH_COOKIE], "the login cookie's deletion")
        self.assertTrue(done.set_cookies[OAUTH_COOKIE].clears)
        self.assertNoLegacyWritten(done, "/callback")

        out = b.post("/logout")
        self.assertEqual(out.status, 200, out)
        self.assertHostCookie(out.set_cookies[SESSION_COOKIE], "the session cookie's deletion")
        self.assertTrue(out.set_cookies[SESSION_COOKIE].clears)
        self.assertNoLegacyWritten(out, "/logout")

    def test_session_cookie_sent_twice_is_refused_even_with_a_valid_one(self):
        laptop = self.login_device(FIREFOX_LINUX)
        phone = self.login_device(CHROME_ANDROID)
        good, other = self.cookie(laptop), self.cookie(phone)
        forged = CookieSigner(OTHER_KEY).sign_session(os.urandom(32), int(time.time()) + 600)
        cases = {
            "the same valid cookie twice": [good, good],
            "valid, then a forged one": [good, forged],
            "a forged one, then valid": [forged, good],
            "garbage, then valid": ["garbage", good],
            "valid, then empty": [good, ""],
            "two devices' valid cookies": [good, other],
        }
        for what, values in cases.items():
            header = "; ".join("%s=%s" % (SESSION_COOKIE, v) for v in values)
            for name, nginx in self.instances:
                for path in ("/me", "/me/token", "/me/sessions"):
                    with self.subTest(what, instance=name, path=path):
                        resp = self.browser(nginx).get(path, headers={"Cookie": header})
                        doc = self.assertJsonError(resp, 401, what)
                        self.assertIn("twice", doc["error"], doc)
                        self.assertNotIn("spotify_id", resp.body.decode())
            with self.subTest(what, method="DELETE /me"):
                resp = self.browser().delete("/me", headers={"Cookie": header})
                self.assertJsonError(resp, 401, what)
        self.assertEqual(len(self.users()), 1, "DELETE /me with a doubled cookie deleted the user")
        for cookie in (good, other):
            self.assertWorksEverywhere(cookie)

    def test_our_cookie_is_found_among_many_foreign_and_malformed_ones(self):
        device = self.login_device()
        ours = "%s=%s" % (SESSION_COOKIE, self.cookie(device))
        foreign = "; ".join("_ga%d=GA1.2.%d.%d" % (i, i, i * 7) for i in range(100))
        cases = {
            "100 other cookies before": foreign + "; " + ours,
            "100 other cookies after": ours + "; " + foreign,
            "100 around": foreign + "; " + ours + "; " + foreign,
            "a nameless pair before": "=nameless; " + ours,
            "a nameless pair after": ours + "; =nameless",
            "a bare word before": "garbage; " + ours,
            "malformed pairs around": "a=b=c; ;;; =; " + ours + "; x; ==; \"q\"=1",
            "an empty value before": "theme=; " + ours,
            "names that only contain ours": "x%s=1; %sx=2; %s" % (SESSION_COOKIE, SESSION_COOKIE, ours),
            "a first-format cookie of garbage": "%s=garbage; %s" % (LEGACY_SESSION_COOKIE, ours),
        }
        for what, header in cases.items():
            for name, nginx in self.instances:
                with self.subTest(what, instance=name):
                    resp = self.browser(nginx).get("/me", headers={"Cookie": header})
                    self.assertEqual(resp.status, 200, "%s: %r%s" % (what, resp, self.stack_context()))
                    self.assertEqual(resp.json()["spotify_id"], "demo-user")

    def test_first_format_session_cookie_of_an_existing_user_is_adopted(self):
        old_device = self.login_device(FIREFOX_LINUX)
        user = self.user()
        # the user existed before the cutover (the release that wrote v2)
        self.pg.psql("UPDATE session_cookie_cutover SET at = now()", db=self.db)
        legacy = self.signer.sign_legacy_session(user["id"], user["session_generation"],
                                                 int(time.time()) + 3600)
        browser = self.device(CHROME_ANDROID, self.nginx_b)
        browser.jar[LEGACY_SESSION_COOKIE] = legacy
        resp = browser.get("/me")
        self.assertEqual(resp.status, 200, "%r%s" % (resp, self.stack_context()))
        self.assertEqual(resp.json()["id"], user["id"])
        new = resp.set_cookies.get(SESSION_COOKIE)
        self.assertIsNotNone(new, "no cookie under the new name: %r" % resp)
        self.assertHostCookie(new, "the adopted session's cookie")
        self.assertTrue(self.signer.session_is_authentic(new.value))
        gone = resp.set_cookies.get(LEGACY_SESSION_COOKIE)
        self.assertTrue(gone is not None and gone.clears, "the first-format cookie stays: %r" % resp)
        self.assertEqual(gone.attrs.get("path"), "/", gone)
        self.assertEqual(browser.jar, {SESSION_COOKIE: new.value})
        row = self.session_of(new.value)
        self.assertIsNotNone(row, "no sessions row for the adopted cookie")
        self.assertEqual((row["user_id"], row["device"]), (user["id"], "Chrome on Android"))
        self.assertEqual(len(self.sessions()), 2)
        # from now on it is an ordinary session: listed, and on both instances
        self.assertWorksEverywhere(new.value)
        listed = self.list_sessions(new.value, self.nginx_a)
        self.assertEqual(sorted(s["device"] for s in listed), ["Chrome on Android", "Firefox on Linux"])
        self.assertEqual([s["id"] for s in listed if s["current"]], [row["id"]])
        self.assertEqual(browser.get("/me").status, 200)
        self.assertEqual(len(self.sessions()), 2, "the browser's next request adopts nothing more")
        self.assertWorksEverywhere(self.cookie(old_device))
        # a client that ignores the new cookie and sends the old one again
        # finds the same session rather than making one per request
        for name, nginx in self.instances:
            again = self.browser(nginx).get("/me", cookies={LEGACY_SESSION_COOKIE: legacy})
            self.assertEqual(again.status, 200, "%s: %r" % (name, again))
            self.assertEqual(self.session_of(again.set_cookies[SESSION_COOKIE].value)["id"],
                             row["id"], "the old cookie sent again on %s" % name)
        self.assertEqual(len(self.sessions()), 2, "the old cookie sent again made a session")
        # once that session is ended the old cookie cannot be adopted again
        # (the other instance hears of the logout by NOTIFY, a moment after
        # its commit: the first refusal is waited for, briefly, as in
        # assertRefusedEverywhere)
        self.assertEqual(browser.post("/logout").status, 200)
        for name, nginx in self.instances:
            def refused():
                resp = self.browser(nginx).get("/me", cookies={LEGACY_SESSION_COOKIE: legacy})
                return resp if resp.status == 401 else None
            resp = wait_until(refused, 2, interval=0.01,
                              message="the old cookie still let in on %s" % name)
            self.assertRefused(resp, "the old cookie after its session's logout, on %s" % name)
        self.assertEqual(len(self.sessions()), 1, "the old cookie was adopted again")
        self.assertWorksEverywhere(self.cookie(old_device))

    def test_first_format_session_cookie_not_from_before_the_cutover_is_refused(self):
        self.login_device()
        user = self.user()
        now = int(time.time())
        fresh = self.signer.sign_legacy_session(user["id"], user["session_generation"], now + 3600)
        cases = [("a user created after the cutover", fresh, None)]
        cases.append(("a stale generation",
                      self.signer.sign_legacy_session(user["id"], user["session_generation"] + 1,
                                                      now + 3600),
                      "UPDATE session_cookie_cutover SET at = now()"))
        cases.append(("signed with another key",
                      CookieSigner(OTHER_KEY).sign_legacy_session(user["id"],
                                                                  user["session_generation"], now + 3600),
                      "UPDATE session_cookie_cutover SET at = now()"))
        cases.append(("expired", self.signer.sign_legacy_session(
            user["id"], user["session_generation"], now - 5),
            "UPDATE session_cookie_cutover SET at = now()"))
        # issued before the cutover, it would have expired by cutover + TTL
        cases.append(("expiring after cutover + BAA_SESSION_TTL", fresh,
                      "UPDATE session_cookie_cutover SET at = now() - interval '40 days';"
                      " UPDATE users SET created_at = now() - interval '50 days'"))
        for what, cookie, sql in cases:
            with self.subTest(what):
                if sql:
                    self.pg.psql(sql, db=self.db)
                for name, nginx in self.instances:
                    resp = self.browser(nginx).get("/me", cookies={LEGACY_SESSION_COOKIE: cookie})
                    self.assertRefused(resp, "%s on %s" % (what, name))
                    self.assertNotIn(SESSION_COOKIE, {c.name for c in resp.set_cookie_list
                                                      if not c.clears}, resp)
                self.assertEqual(len(self.sessions()), 1, "a session was made for it")

    def test_first_format_login_cookie_still_finishes_a_login(self):
        b = self.device(FIREFOX_LINUX, self.nginx_a)
        start = b.start_login()
        self.assertEqual(start.status, 302, start)
        state = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(start.location).query))["state"]
        auth, params = b.authorize_at(self.fake, start.location)
        self.assertEqual(auth.status, 302, auth)
        # the login as the release before would have started it
        legacy = self.signer.sign_legacy_oauth(state, int(time.time()) + 600, "/account")
        other = self.device(FIREFOX_LINUX, self.nginx_b)
        other.jar = {LEGACY_OAUTH_COOKIE: legacy}
        done = other.callback(params)
        self.assertEqual(done.status, 302, "%r%s" % (done, self.stack_context()))
        self.assertEqual(done.location, "/account")
        self.assertIn(SESSION_COOKIE, other.jar, done)
        gone = done.set_cookies.get(LEGACY_OAUTH_COOKIE)
        self.assertTrue(gone is not None and gone.clears, "the first-format login cookie stays: %r" % done)
        self.assertNotIn(LEGACY_OAUTH_COOKIE, other.jar)
        verifiers = [r["form"].get("code_verifier") for r in self.fake.requests("token")]
        self.assertEqual(verifiers[-1], self.signer.pkce_verifier(state))
        self.assertWorksEverywhere(self.cookie(other))
        self.assertEqual(self.session_of(self.cookie(other))["device"], "Firefox on Linux")


class CrossSiteTest(DevicesTestCase):
    """POST and DELETE need Sec-Fetch-Site: same-origin, or an Origin equal
    to the site's; a client that sends neither is not a browser and passes."""

    REFUSED = (
        ("Sec-Fetch-Site: cross-site", {"Sec-Fetch-Site": "cross-site"}),
        ("Sec-Fetch-Site: same-site", {"Sec-Fetch-Site": "same-site"}),
        ("cross-site with the site's Origin", {"Sec-Fetch-Site": "cross-site", "Origin": SITE_ORIGIN}),
        ("Origin: https://evil.example", {"Origin": "https://evil.example"}),
        ("Origin: null", {"Origin": "null"}),
        ("the site's host on another port", {"Origin": SITE_ORIGIN.rsplit(":", 1)[0] + ":8443"}),
        ("the site's host and port over https", {"Origin": SITE_ORIGIN.replace("http:", "https:")}),
        ("a sibling of the site", {"Origin": "http://evil.127.0.0.1:9"}),
        ("the site's origin with a path", {"Origin": SITE_ORIGIN + "/x"}),
    )
    ALLOWED = (
        ("Sec-Fetch-Site: same-origin", {"Sec-Fetch-Site": "same-origin"}),
        ("Origin equal to the site's", {"Origin": SITE_ORIGIN}),
        ("neither header", {}),
    )

    def attempts(self, device, victim_session):
        """Every state-changing request a page could make a browser send."""
        return (("POST /logout", lambda h: device.post("/logout", headers=h)),
                ("POST /logout?everywhere=1", lambda h: device.post("/logout?everywhere=1", headers=h)),
                ("DELETE /me", lambda h: device.delete("/me", headers=h)),
                ("DELETE /me/sessions/{other}",
                 lambda h: device.delete("/me/sessions/%d" % victim_session, headers=h)))

    def test_post_and_delete_from_another_site_are_403_and_change_nothing(self):
        laptop = self.login_device(FIREFOX_LINUX, self.nginx_a)
        phone = self.login_device(CHROME_ANDROID, self.nginx_b)
        cookies = (self.cookie(laptop), self.cookie(phone))
        phone_id = self.session_of(cookies[1])["id"]
        users, sessions = self.users(), self.sessions()
        events = self.pg.psql_value("SELECT count(*) FROM auth_events", db=self.db)
        for what, headers in self.REFUSED:
            for name, nginx in self.instances:
                laptop.port = nginx.port
                for attempt, send in self.attempts(laptop, phone_id):
                    with self.subTest(what, instance=name, request=attempt):
                        resp = send(headers)
                        doc = self.assertJsonError(resp, 403, "%s %s" % (attempt, what))
                        self.assertEqual(doc["error"], "cross_site_request", doc)
                        self.assertEqual(resp.set_cookie_list, [], "a refusal clears nothing")
        self.assertEqual(self.users(), users)
        self.assertEqual(self.sessions(), sessions)
        self.assertEqual(self.pg.psql_value("SELECT count(*) FROM auth_events", db=self.db), events)
        for cookie in cookies:
            self.assertWorksEverywhere(cookie)
        # reading is not refused: a GET changes nothing
        resp = laptop.get("/me", headers={"Sec-Fetch-Site": "cross-site", "Origin": "https://evil.example"})
        self.assertEqual(resp.status, 200, resp)

    def test_same_origin_or_the_sites_origin_or_no_header_is_allowed(self):
        for what, headers in self.ALLOWED:
            for name, nginx in self.instances:
                with self.subTest(what, instance=name):
                    laptop = self.login_device(FIREFOX_LINUX, nginx)
                    phone = self.login_device(CHROME_ANDROID, nginx)
                    phone_cookie = self.cookie(phone)
                    phone_id = self.session_of(phone_cookie)["id"]
                    ended = laptop.delete("/me/sessions/%d" % phone_id, headers=headers)
                    self.assertEqual(ended.status, 200, "%s: %r" % (what, ended))
                    self.assertRefusedEverywhere(phone_cookie, what, times=1)
                    old = self.cookie(laptop)
                    out = laptop.post("/logout", headers=headers)
                    self.assertEqual(out.status, 200, "%s: %r" % (what, out))
                    self.assertRefusedEverywhere(old, what, times=1)
                    again = self.login_device(FIREFOX_LINUX, nginx)
                    gone = again.delete("/me", headers=headers)
                    self.assertEqual(gone.status, 200, "%s: %r" % (what, gone))
                    self.assertEqual(self.users(), [])


class CachedSessionTest(DevicesTestCase):
    """GET /me on a session a worker has checked asks PostgreSQL nothing;
    an ended session is still refused at once, by NOTIFY."""

    # no housekeeping during the test: it would be a query of its own
    login_extra_env = {"BAA_HOUSEKEEPING_INTERVAL": 86400}

    def activity(self):
        """Every baa backend of the database: pid -> (query_start,
        state_change, state, query). The times move with every statement a
        backend runs, and pg_stat_activity shows them at once (no
        statistics delay)."""
        rows = self.pg.psql_rows(
            "SELECT pid, query_start, state_change, state, left(regexp_replace(query, '\\s+', ' ',"
            " 'g'), 60) FROM pg_stat_activity WHERE datname = '%s' AND application_name = 'baa'"
            % self.db)
        return {int(r[0]): tuple(r[1:]) for r in rows}

    def burst(self, cookie, n=8):
        """n GET /me at once on each instance (so that every worker answers)."""
        calls = [lambda nginx=nginx: self.get(cookie, nginx) for _, nginx in self.instances] * n
        results = run_concurrently(calls)
        for resp in results:
            self.assertFalse(isinstance(resp, Exception), resp)
            self.assertEqual(resp.status, 200, "%r%s" % (resp, self.stack_context()))
        return results

    def test_get_me_on_a_cached_session_asks_the_database_nothing(self):
        device = self.login_device(FIREFOX_LINUX, self.nginx_a)
        cookie = self.cookie(device)
        # Rounds of GET /me on both instances, the backends looked at
        # between rounds. Which worker nginx's kept connections reach is
        # not ours to choose: a worker may see the session first in any
        # round, and look it up then, once. After that look it answers
        # from memory: its backend runs nothing more, round after round.
        rounds = [self.activity()]
        for _ in range(8):
            self.burst(cookie)
            rounds.append(self.activity())
        for pid in set().union(*rounds):
            seen = [r.get(pid) for r in rounds]
            changes = [i for i in range(1, len(seen)) if seen[i] != seen[i - 1]]
            self.assertLessEqual(len(changes), 1, "backend %d ran statements in rounds %r of GET"
                                 " /me on one session:\n%s" % (pid, changes, "\n".join(map(str, seen))))
        self.assertGreaterEqual(len(rounds[-1]), 2, "a backend per instance at least: %r" % rounds[-1])
        self.assertTrue(all(r[2] == "idle" for r in rounds[-1].values()), rounds[-1])

    def test_a_logout_on_one_instance_is_refused_at_once_on_the_other(self):
        laptop = self.login_device(FIREFOX_LINUX, self.nginx_a)
        phone = self.login_device(CHROME_ANDROID, self.nginx_a)
        cookie = self.cookie(laptop)
        for _ in range(3):
            self.burst(cookie)
            self.burst(self.cookie(phone), n=2)
        resp = self.browser(self.nginx_b).post("/logout", cookies={SESSION_COOKIE: cookie})
        self.assertEqual(resp.status, 200, resp)
        self.assertRefusedEverywhere(cookie, "logged out on B, cached on A", times=10)
        self.burst(self.cookie(phone))


class LastSeenTest(DevicesTestCase):
    """last_seen_at is written at most once per interval: min(60 s,
    BAA_SESSION_TTL / 4), 10 s here, however many requests there are."""

    login_extra_env = {"BAA_SESSION_TTL": 40}
    INTERVAL = 10

    def setUp(self):
        super().setUp()
        # every write to a sessions row, as it happens
        self.pg.psql(
            "CREATE TABLE it_session_writes (session_id bigint, last_seen_at timestamptz,"
            "  expires_at timestamptz);"
            " CREATE FUNCTION it_session_written() RETURNS trigger LANGUAGE plpgsql AS $$"
            " BEGIN INSERT INTO it_session_writes VALUES (NEW.id, NEW.last_seen_at, NEW.expires_at);"
            " RETURN NULL; END $$;"
            " CREATE TRIGGER it_session_written AFTER UPDATE ON sessions"
            "  FOR EACH ROW EXECUTE FUNCTION it_session_written()", db=self.db)
        self.addCleanup(self.pg.psql, "DROP TABLE it_session_writes;"
                        " DROP TRIGGER it_session_written ON sessions;"
                        " DROP FUNCTION it_session_written()", db=self.db)

    def writes(self):
        return self.pg.psql_rows("SELECT session_id, extract(epoch FROM last_seen_at),"
                                 " extract(epoch FROM expires_at) FROM it_session_writes", db=self.db)

    def use(self, cookie, seconds):
        """GET /me and /me/token on both instances for `seconds`; -> how many."""
        n, end = 0, time.monotonic() + seconds
        while time.monotonic() < end:
            for _, nginx in self.instances:
                for path in ("/me", "/me/token"):
                    resp = self.get(cookie, nginx, path)
                    self.assertEqual(resp.status, 200, resp)
                    n += 1
        return n

    @slow("waits on the wall clock for the interval")
    def test_last_seen_is_written_at_most_once_per_interval(self):
        # logged in half-way through a second, so that whole-second rounding
        # anywhere (in baa or in the test) cannot hide behind the timing
        wait_until(lambda: 0.3 <= time.time() % 1 < 0.4, 2, interval=0.005)
        device = self.login_device()
        cookie = self.cookie(device)
        row = self.session_of(cookie)
        created = self.epoch_of("'%s'::timestamptz" % row["created_at"])
        n = self.use(cookie, 3)
        self.assertGreater(n, 20)
        self.assertLess(time.time() - created, self.INTERVAL - 1, "the machine is too slow for this test")
        self.assertEqual(self.writes(), [], "%d requests within the interval wrote the row" % n)
        self.assertEqual(self.session_of(cookie)["last_seen_at"], row["last_seen_at"])

        # still in use past the interval: the first requests after it write it
        self.until(created + self.INTERVAL - 1)
        written = []
        while not written and time.time() < created + self.INTERVAL + 2:
            for _, nginx in self.instances:
                self.assertEqual(self.get(cookie, nginx).status, 200)
            written = self.writes()
            time.sleep(0.05)
        self.assertTrue(written, "used every 50 ms until %.1f s after the login, last_seen_at was"
                        " not written (interval %d s)" % (time.time() - created, self.INTERVAL))
        n = self.use(cookie, 3)
        writes = self.writes()
        self.assertEqual(len(writes), 1, "%r after %d more requests" % (writes, n))
        sid, seen, expires = int(writes[0][0]), float(writes[0][1]), float(writes[0][2])
        self.assertEqual(sid, row["id"])
        self.assertGreaterEqual(seen - created, self.INTERVAL - 0.01)
        self.assertAlmostEqual(expires - seen, 40, delta=0.01, msg="the idle deadline moves with it")
        listed = self.list_sessions(cookie, self.nginx_b)
        self.assertEqual(len(listed), 1)
        self.assertEqual(calendar.timegm(time.strptime(listed[0]["last_seen_at"], "%Y-%m-%dT%H:%M:%SZ")),
                         int(seen), "/me/sessions shows the written last_seen_at")


class RenewalTest(DevicesTestCase):
    """BAA_SESSION_TTL 20 s of idle time, BAA_SESSION_MAX_AGE 30 s in all."""

    TTL, MAX_AGE = 20, 30
    login_extra_env = {"BAA_SESSION_TTL": TTL, "BAA_SESSION_MAX_AGE": MAX_AGE}

    @slow("waits on the wall clock through a session's life")
    def test_a_used_session_is_renewed_in_its_second_half_until_max_age_ends_it(self):
        used = self.login_device(FIREFOX_LINUX, self.nginx_a)
        idle = self.login_device(CHROME_ANDROID, self.nginx_a)
        first = self.cookie(used)
        row = self.session_of(first)
        created = self.epoch_of("'%s'::timestamptz" % row["created_at"])
        first_fields = CookieSigner.parse_session(first)
        self.assertAlmostEqual(first_fields["expires"], created + self.TTL, delta=1.5)

        # first half: served on the cookie it has
        for _, nginx in self.instances:
            resp = self.browser(nginx).get("/me", cookies={SESSION_COOKIE: first})
            self.assertEqual(resp.status, 200, resp)
            self.assertNotIn(SESSION_COOKIE, resp.set_cookies, "renewed in the first half: %r" % resp)
        self.assertLess(time.time(), created + self.TTL / 2, "the machine is too slow for this test")

        half = first_fields["expires"] - self.TTL / 2
        self.until(half - 1.5)
        for _, nginx in self.instances:
            resp = self.browser(nginx).get("/me", cookies={SESSION_COOKIE: first})
            self.assertEqual(resp.status, 200, resp)
            self.assertNotIn(SESSION_COOKIE, resp.set_cookies, "renewed in the first half: %r" % resp)

        # second half: a request gets a fresh cookie for the same session
        # (the cookie's expiry is in whole seconds: within a second of it)
        self.until(half)
        renewed = None
        while renewed is None and time.time() < half + 2:
            resp = self.browser(self.nginx_b).get("/me", cookies={SESSION_COOKIE: first})
            self.assertEqual(resp.status, 200, resp)
            renewed = resp.set_cookies.get(SESSION_COOKIE)
            time.sleep(0 if renewed else 0.05)
        self.assertIsNotNone(renewed, "not renewed in the second half: %r%s" % (resp, self.stack_context()))
        self.assertFalse(renewed.clears, renewed)
        fields = CookieSigner.parse_session(renewed.value)
        self.assertEqual(fields["session_id"], first_fields["session_id"], "the same session")
        self.assertGreater(fields["expires"], first_fields["expires"], "a later expiry")
        # capped: least(now + TTL, created + MAX_AGE)
        self.assertAlmostEqual(fields["expires"], created + self.MAX_AGE, delta=1.5)
        self.assertAlmostEqual(renewed.max_age, fields["expires"] - time.time(), delta=2)
        self.assertTrue(self.signer.session_is_authentic(renewed.value))
        listed = self.list_sessions(renewed.value, self.nginx_a)
        self.assertEqual([s["id"] for s in listed if s["current"]], [row["id"]])
        self.assertEqual(len(self.sessions()), 2, "renewal made no new row")
        self.assertWorksEverywhere(renewed.value)

        # the idle device's session ends TTL after its login
        idle_row = self.session_of(self.cookie(idle))
        idle_ends = self.epoch_of("'%s'::timestamptz" % idle_row["expires_at"])
        self.assertAlmostEqual(idle_ends, created + self.TTL, delta=2)
        # the used one is kept alive past it, but never renewed past the cap
        idle_refused = False
        while time.time() < created + self.MAX_AGE - 1.5:
            for _, nginx in self.instances:
                resp = self.browser(nginx).get("/me", cookies={SESSION_COOKIE: renewed.value})
                self.assertEqual(resp.status, 200, "%.1f s after the login: %r" % (
                    time.time() - created, resp))
                self.assertNotIn(SESSION_COOKIE, resp.set_cookies, "renewed past the cap: %r" % resp)
            if not idle_refused and time.time() > idle_ends + 0.5:
                self.assertRefusedEverywhere(self.cookie(idle), "idle for BAA_SESSION_TTL", times=1)
                idle_refused = True
            time.sleep(0.5)
        self.assertTrue(idle_refused, "the idle session was never checked")

        # at created + MAX_AGE it ends, used or not
        self.until(created + self.MAX_AGE + 0.5)
        self.assertRefusedEverywhere(renewed.value, "past BAA_SESSION_MAX_AGE", times=2)


if __name__ == "__main__":
    unittest.main()
