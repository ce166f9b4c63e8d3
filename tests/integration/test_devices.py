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
import hashlib
import os
import subprocess
import time
import unittest
import urllib.parse

from harness import (LEGACY_SESSION_COOKIE, PG_DUMP, PSQL, SESSION_COOKIE, TEST_REDIRECT_URI,
                     CookieSigner, DeviceBrowser, HarnessError, Nginx, TwoInstancesTestCase, b64url,
                     ipv6_loopback_available, sessions_rows, wait_until)

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


if __name__ == "__main__":
    unittest.main()
