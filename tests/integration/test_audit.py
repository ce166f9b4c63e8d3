"""The audit trail (issue 10), through nginx, on two instances A and B
that share one database.

auth_events records who logged in when, from which device and network,
on which instance; logouts, ended devices, refreshes and their failures,
key rotations and deletions. An event is written in the transaction of
what it records: a login whose event cannot be written is no login. GET
/me/activity shows a user their last 50 events, newest first. Old events,
and sessions long expired, are deleted now and then; DELETE /me leaves
one line without a user. No token, cookie or code is ever written to the
trail or to the log.
"""

import os
import re
import socket
import time
import unittest
import urllib.parse

from harness import (SESSION_COOKIE, CookieSigner, DeviceBrowser, TokenOpener, TwoInstancesTestCase,
                     auth_events_rows, b64url, sessions_rows, wait_until)

FIREFOX_LINUX = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
CHROME_ANDROID = ("Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 "
                  "(KHTML, like Gecko) Chrome/126.0.0.0 Mobile Safari/537.36")
EVENT_FIELDS = {"at", "event", "session_id", "device", "network", "instance"}


def instance_name(baa):
    """What an instance writes into the trail when BAA_INSTANCE is unset."""
    return "%s/%s" % (socket.gethostname()[:63], baa.env["BAA_LISTEN"])


class AuditTestCase(TwoInstancesTestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.instances = (("A", cls.nginx_a), ("B", cls.nginx_b))

    def setUp(self):
        super().setUp()  # the users go, and their events with them
        self.pg.psql("DELETE FROM auth_events", db=self.db)

    def login_device(self, user_agent=FIREFOX_LINUX, nginx=None, spotify_id=None, expires_in=None):
        """A device logged in (asserted) as spotify_id; its cookie is in its jar."""
        if spotify_id is not None:
            self.fake.set_user(spotify_id)
        if expires_in is not None:
            self.fake.configure(expires_in=expires_in)
        b = DeviceBrowser((nginx or self.nginx_a).port, user_agent)
        r = b.login(self.fake)
        self.fake.configure(expires_in=3600)
        self.assertTrue(r.ok, "login failed:\n%s%s" % (r.describe(), self.stack_context()))
        return b

    def session_id(self, device):
        want = "\\x" + CookieSigner.parse_session(device.jar[SESSION_COOKIE])["token_hash"]
        return [s["id"] for s in sessions_rows(self.pg, self.db) if s["token_hash"] == want][0]

    def events(self, **match):
        """auth_events rows (oldest first) whose columns equal match."""
        return [e for e in auth_events_rows(self.pg, self.db)
                if all(e[k] == v for k, v in match.items())]

    def names(self, **match):
        return [e["event"] for e in self.events(**match)]

    def activity(self, device, nginx=None):
        """GET /me/activity (asserted 200) -> its events."""
        resp = device.get("/me/activity") if nginx is None else \
            self.browser(nginx).get("/me/activity", cookies={SESSION_COOKIE: device.jar[SESSION_COOKIE]})
        self.assertEqual(resp.status, 200, "%r%s" % (resp, self.stack_context()))
        self.assertNoStore(resp, "/me/activity")
        events = resp.json()["events"]
        for e in events:
            self.assertEqual(set(e), EVENT_FIELDS, e)
            self.assertRegex(e["at"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
        return events

    def token(self, device):
        return device.get("/me/token")

    def expire_token(self):
        """The stored access token within baa's refresh margin."""
        self.pg.psql("UPDATE users SET token_expires_at = now()", db=self.db)

    def wait_unpaused(self):
        """Until neither instance pauses its calls to Spotify any more."""
        def over():
            for _, nginx in self.instances:
                status, _, body = nginx.get("/metrics")
                m = re.search(rb"^baa_spotify_pause_remaining_seconds (\S+)$", body, re.M)
                if status != 200 or m is None or float(m.group(1)) > 0:
                    return False
            return True
        wait_until(over, 15, interval=0.1, message="the pause never ended")


class LoginEventTest(AuditTestCase):

    def test_each_login_is_recorded_with_its_session_device_network_and_instance(self):
        laptop = self.login_device(FIREFOX_LINUX, self.nginx_a)
        phone = self.login_device(CHROME_ANDROID, self.nginx_b)
        user = self.user()
        rows = self.events()
        self.assertEqual([e["event"] for e in rows], ["login", "login"], rows)
        a, b = rows
        self.assertEqual((a["user_id"], a["session_id"], a["device"], a["network"]),
                         (user["id"], self.session_id(laptop), "Firefox on Linux", "127.0.0.0/24"))
        self.assertEqual((b["user_id"], b["session_id"], b["device"], b["network"]),
                         (user["id"], self.session_id(phone), "Chrome on Android", "127.0.0.0/24"))
        self.assertEqual(a["instance"], instance_name(self.baa_a))
        self.assertEqual(b["instance"], instance_name(self.baa_b))
        self.assertNotEqual(a["instance"], b["instance"])
        for device in (laptop, phone):
            for name, nginx in self.instances:
                with self.subTest(instance=name):
                    shown = self.activity(device, nginx)
                    self.assertEqual([(e["event"], e["session_id"], e["device"], e["instance"])
                                      for e in shown],
                                     [("login", b["session_id"], "Chrome on Android", b["instance"]),
                                      ("login", a["session_id"], "Firefox on Linux", a["instance"])],
                                     "newest first")
                    self.assertEqual({e["network"] for e in shown}, {"127.0.0.0/24"})

    def test_a_login_whose_event_cannot_be_written_is_no_login(self):
        self.pg.psql(
            "CREATE FUNCTION it_refuse_event() RETURNS trigger LANGUAGE plpgsql AS $$"
            " BEGIN RAISE EXCEPTION 'audit trail refuses writes'; END $$;"
            " CREATE TRIGGER it_refuse_event BEFORE INSERT ON auth_events"
            "  FOR EACH ROW EXECUTE FUNCTION it_refuse_event()", db=self.db)
        dropped = []

        def drop():
            if not dropped:
                self.pg.psql("DROP TRIGGER it_refuse_event ON auth_events;"
                             " DROP FUNCTION it_refuse_event()", db=self.db)
                dropped.append(True)
        self.addCleanup(drop)
        for name, nginx in self.instances:
            with self.subTest(instance=name):
                b, params = self.begin_login(nginx)
                resp = b.callback(params)
                self.assertJsonError(resp, 503, "a login whose event fails")
                self.assertNotIn(SESSION_COOKIE, b.jar, "a session cookie for a failed login")
                self.assertEqual(self.raw_users(), [], "the user was stored")
                self.assertEqual(sessions_rows(self.pg, self.db), [], "a session was stored")
                self.assertEqual(self.events(), [])
        drop()
        device = self.login_device()
        self.assertEqual(self.names(user_id=self.user()["id"]), ["login"])
        self.assertEqual(self.activity(device)[0]["event"], "login")


class SessionEventsTest(AuditTestCase):

    def test_logouts_and_ended_devices_are_recorded(self):
        laptop = self.login_device(FIREFOX_LINUX, self.nginx_a)
        phone = self.login_device(CHROME_ANDROID, self.nginx_b)
        tablet = self.login_device(CHROME_ANDROID, self.nginx_a)
        user_id = self.user()["id"]
        ids = {n: self.session_id(d) for n, d in (("laptop", laptop), ("phone", phone),
                                                    ("tablet", tablet))}
        # the laptop ends the tablet, on A
        self.assertEqual(laptop.delete("/me/sessions/%d" % ids["tablet"]).status, 200)
        # the phone logs out, on B
        self.assertEqual(phone.post("/logout").status, 200)
        # the laptop logs out everywhere, on B
        laptop.port = self.nginx_b.port
        self.assertEqual(laptop.post("/logout?everywhere=1").status, 200)
        rows = self.events(user_id=user_id)
        self.assertEqual([e["event"] for e in rows],
                         ["login", "login", "login", "session_revoked", "logout", "logout_everywhere"])
        revoked, logout, everywhere = rows[3:]
        self.assertEqual((revoked["session_id"], revoked["device"], revoked["instance"]),
                         (ids["tablet"], "Firefox on Linux", instance_name(self.baa_a)),
                         "the ended session, by the device that ended it")
        self.assertEqual((logout["session_id"], logout["device"], logout["instance"]),
                         (ids["phone"], "Chrome on Android", instance_name(self.baa_b)))
        self.assertEqual((everywhere["session_id"], everywhere["device"], everywhere["instance"]),
                         (ids["laptop"], "Firefox on Linux", instance_name(self.baa_b)))
        for e in rows:
            self.assertEqual(e["network"], "127.0.0.0/24", e)
        # a refused request records nothing
        before = len(self.events())
        self.assertEqual(laptop.post("/logout").status, 200)  # no session left: nothing ended
        self.assertEqual(self.browser().post("/logout", headers={"Sec-Fetch-Site": "cross-site"}).status,
                         403)
        self.assertEqual(len(self.events()), before)
        again = self.login_device(FIREFOX_LINUX, self.nginx_b)
        self.assertEqual([e["event"] for e in self.activity(again)],
                         ["login", "logout_everywhere", "logout", "session_revoked",
                          "login", "login", "login"])


class RefreshEventsTest(AuditTestCase):

    def test_a_refresh_and_its_failures_are_recorded(self):
        device = self.login_device(FIREFOX_LINUX, self.nginx_a, expires_in=30)
        user_id = self.user()["id"]
        sid = self.session_id(device)
        self.assertEqual(self.token(device).status, 200)
        self.assertEqual(self.names(user_id=user_id), ["login", "refresh"])

        steps = (
            ("Spotify answers 500", "refresh_failed", 502,
             dict(status=500)),
            ("Spotify answers garbage", "refresh_failed", 502,
             dict(status=200, body="<html>not json</html>", content_type="text/html")),
            ("invalid_grant", "reauth_required", 401, None),
        )
        for what, event, status, fault in steps:
            with self.subTest(what):
                self.expire_token()
                if fault is None:
                    self.fake.fail_refreshes(1)
                else:
                    self.fake.set_fault("token", grant_type="refresh_token", times=1, **fault)
                resp = device.get("/me/token")
                self.assertJsonError(resp, status, what)
                last = self.events(user_id=user_id)[-1]
                self.assertEqual((last["event"], last["session_id"], last["device"], last["instance"]),
                                 (event, sid, "Firefox on Linux", instance_name(self.baa_a)), what)
        self.assertEqual([e["event"] for e in self.activity(device, self.nginx_b)],
                         ["reauth_required", "refresh_failed", "refresh_failed", "refresh", "login"])
        # a token served from the row is no event
        self.pg.psql("UPDATE users SET needs_reauth_at = NULL, token_expires_at = now() + interval '1 hour'",
                     db=self.db)
        self.assertEqual(device.get("/me/token").status, 200)
        self.assertEqual(len(self.events(user_id=user_id)), 5)

    def test_a_rate_limit_from_spotify_is_recorded_and_the_pause_it_starts_is_not(self):
        self.addCleanup(self.wait_unpaused)
        device = self.login_device(CHROME_ANDROID, self.nginx_b)
        user_id = self.user()["id"]
        self.expire_token()
        self.fake.set_fault("token", status=429, retry_after=3, times=1, grant_type="refresh_token")
        resp = device.get("/me/token")
        limited_at = time.monotonic()
        self.assertJsonError(resp, 503, "Spotify's 429")
        self.assertEqual(self.names(user_id=user_id), ["login", "rate_limited"])
        last = self.events(user_id=user_id)[-1]
        self.assertEqual((last["session_id"], last["device"], last["instance"]),
                         (self.session_id(device), "Chrome on Android", instance_name(self.baa_b)))
        # refused by baa's own pause, on either instance, without a call: no
        # limit of Spotify's, no event
        calls = self.fake.stats()["token_refresh_token"]
        for name, nginx in self.instances:
            paused = self.browser(nginx).get("/me/token",
                                             cookies={SESSION_COOKIE: device.jar[SESSION_COOKIE]})
            self.assertJsonError(paused, 503, "paused on %s" % name)
        self.assertLess(time.monotonic() - limited_at, 2.5, "the machine is too slow for this test")
        self.assertEqual(self.fake.stats()["token_refresh_token"], calls)
        self.assertEqual(self.names(user_id=user_id), ["login", "rate_limited"])
        self.wait_unpaused()
        self.assertEqual(device.get("/me/token").status, 200)
        self.assertEqual(self.names(user_id=user_id), ["login", "rate_limited", "refresh"])


class KeyRotationEventTest(AuditTestCase):

    def rotate(self, token_keys):
        res = self.run_baa(["rotate-keys"], self.login_env(BAA_TOKEN_KEY=token_keys), timeout=60)
        self.assertEqual(res.returncode, 0, self.describe(res))
        return res

    def test_rotate_keys_records_each_user_whose_tokens_it_resealed(self):
        alice = self.login_device(FIREFOX_LINUX, self.nginx_a, spotify_id="alice")
        bob = self.login_device(CHROME_ANDROID, self.nginx_b, spotify_id="bob")
        carol = self.login_device(CHROME_ANDROID, self.nginx_b, spotify_id="carol")
        ids = {u["spotify_id"]: u["id"] for u in self.raw_users()}
        carol_id = ids["carol"]
        self.pg.psql("UPDATE users SET spotify_token = NULL, refresh_token = NULL WHERE id = %d"
                     % carol_id, db=self.db)
        new_key = os.urandom(32).hex()
        self.addCleanup(self.rotate, "derived %s" % new_key)  # back, whatever happens
        res = self.rotate("%s derived" % new_key)
        self.assertIn("Re-encrypted 4 tokens", res.stdout)
        rotated = self.events(event="key_rotated")
        self.assertEqual(sorted(e["user_id"] for e in rotated),
                         sorted([ids["alice"], ids["bob"]]),
                         "one event per user whose tokens were resealed: %r" % rotated)
        for e in rotated:
            self.assertIsNone(e["session_id"], e)
            self.assertIsNone(e["network"], e)
            self.assertEqual(e["device"], "", e)
        for device in (alice, bob):
            self.assertEqual(self.activity(device)[0]["event"], "key_rotated")
        self.assertEqual(self.activity(carol)[0]["event"], "login", "carol had nothing to reseal")
        # nothing to do: nothing recorded
        self.rotate("%s derived" % new_key)
        self.assertEqual(len(self.events(event="key_rotated")), 2)
        self.rotate("derived %s" % new_key)
        self.assertEqual(len(self.events(event="key_rotated")), 4)
        opener = TokenOpener()
        for spotify_id in ("alice", "bob"):
            row = [u for u in self.raw_users() if u["spotify_id"] == spotify_id][0]
            self.assertIsNotNone(opener.open(row["spotify_token"], row["id"], "spotify_token"))
        self.assertEqual(alice.get("/me/token").status, 200)


class DeletionEventTest(AuditTestCase):

    def test_delete_me_leaves_one_anonymous_line_and_none_of_the_users(self):
        alice = self.login_device(FIREFOX_LINUX, self.nginx_a, spotify_id="alice", expires_in=30)
        self.assertEqual(alice.get("/me/token").status, 200)  # a refresh
        phone = self.login_device(CHROME_ANDROID, self.nginx_b, spotify_id="alice")
        self.assertEqual(phone.post("/logout").status, 200)
        bob = self.login_device(CHROME_ANDROID, self.nginx_b, spotify_id="bob")
        alice_id, bob_id = self.user("alice")["id"], self.user("bob")["id"]
        bobs = self.events(user_id=bob_id)
        self.assertEqual(self.names(user_id=alice_id), ["login", "refresh", "login", "logout"])

        resp = alice.delete("/me")
        self.assertEqual(resp.status, 200, resp)
        rows = self.events()
        self.assertEqual(self.events(user_id=alice_id), [], "alice's events stay")
        deleted = self.events(event="deleted")
        self.assertEqual(len(deleted), 1, rows)
        line = deleted[0]
        self.assertEqual((line["user_id"], line["session_id"], line["network"], line["device"]),
                         (None, None, None, ""), "the deletion line says who: %r" % line)
        self.assertEqual(self.events(user_id=bob_id), bobs, "another user's events changed")
        self.assertEqual(len(rows), len(bobs) + 1, rows)
        self.assertEqual([e["event"] for e in self.activity(bob)], ["login"])


class ActivityTest(AuditTestCase):

    def test_activity_shows_the_users_last_50_events_newest_first(self):
        device = self.login_device(FIREFOX_LINUX, self.nginx_a)
        other = self.login_device(CHROME_ANDROID, self.nginx_b, spotify_id="other")
        user_id = self.user("demo-user")["id"]
        # 60 older events of the user's, one a minute, the oldest first
        self.pg.psql(
            "INSERT INTO auth_events (at, user_id, session_id, event, network, device, instance)"
            " SELECT now() - make_interval(mins => 61 - i), %d, NULL,"
            "  (ARRAY['refresh', 'logout', 'session_revoked'])[1 + i %% 3], '198.51.100.0/24',"
            "  'Safari on macOS', 'old-instance-' || i FROM generate_series(1, 60) i" % user_id,
            db=self.db)
        for name, nginx in self.instances:
            with self.subTest(instance=name):
                shown = self.activity(device, nginx)
                self.assertEqual(len(shown), 50)
                self.assertEqual(shown[0]["event"], "login", "the login just now comes first")
                self.assertEqual(shown[0]["instance"], instance_name(self.baa_a))
                self.assertEqual(shown[0]["session_id"], self.session_id(device))
                self.assertEqual([e["instance"] for e in shown[1:]],
                                 ["old-instance-%d" % i for i in range(60, 11, -1)],
                                 "then the newest 49 of the 60, newest first")
                self.assertEqual(shown[1], {"at": shown[1]["at"], "event": "refresh", "session_id": None,
                                            "device": "Safari on macOS", "network": "198.51.100.0/24",
                                            "instance": "old-instance-60"})
                ats = [e["at"] for e in shown]
                self.assertEqual(ats, sorted(ats, reverse=True))
        self.assertEqual([e["event"] for e in self.activity(other)], ["login"], "only the user's own")


class RetentionTest(AuditTestCase):

    def test_old_events_and_long_expired_sessions_are_deleted_now_and_then(self):
        device = self.login_device(FIREFOX_LINUX, self.nginx_a)
        user_id = self.user()["id"]
        self.pg.psql(
            "INSERT INTO auth_events (at, user_id, event, instance)"
            " SELECT now() - interval '100 days' - make_interval(secs => i), %(u)d, 'refresh', 'old'"
            "  FROM generate_series(1, 1200) i;"
            " INSERT INTO auth_events (at, user_id, event, instance)"
            " SELECT now() - interval '100 days', NULL, 'deleted', 'old' FROM generate_series(1, 10);"
            " INSERT INTO auth_events (at, user_id, event, instance)"
            " SELECT now() - interval '80 days', %(u)d, 'refresh', 'kept' FROM generate_series(1, 5);"
            " INSERT INTO sessions (token_hash, user_id, expires_at, max_expires_at, device)"
            " SELECT sha256(('long expired ' || i)::bytea), %(u)d, now() - interval '2 days',"
            "  now() - interval '2 days', 'long expired' FROM generate_series(1, 3) i;"
            " INSERT INTO sessions (token_hash, user_id, expires_at, max_expires_at, device)"
            " VALUES (sha256('just expired'::bytea), %(u)d, now() - interval '1 hour',"
            "  now() - interval '1 hour', 'just expired')" % {"u": user_id}, db=self.db)
        # an instance that keeps house every second (BAA_AUDIT_RETENTION_DAYS: 90)
        baa_c, nginx_c = self.start_stack(self.login_env(BAA_HOUSEKEEPING_INTERVAL=1))
        self.assertEqual(nginx_c.get("/readyz")[0], 200)

        def old():
            return int(self.pg.psql_value(
                "SELECT count(*) FROM auth_events WHERE instance = 'old'", db=self.db))
        wait_until(lambda: old() == 0, 20, interval=0.2,
                   message="old events still there: %d%s" % (old(), self.stack_context(baa_c)))
        wait_until(lambda: "long expired" not in [s["device"] for s in sessions_rows(self.pg, self.db)],
                   5, interval=0.2, message="long-expired sessions still there")
        self.assertEqual(sorted(s["device"] for s in sessions_rows(self.pg, self.db)),
                         ["Firefox on Linux", "just expired"])
        self.assertEqual(self.names(instance="kept"), ["refresh"] * 5, "events within retention went")
        self.assertEqual(self.names(user_id=user_id, event="login"), ["login"])
        self.assertEqual(device.get("/me").status, 200)
        def housekeeping():
            return [r for b in (baa_c, self.baa_a, self.baa_b) for r in b.log_records()
                    if r.get("event") == "housekeeping"]
        wait_until(lambda: sum(int(r["audit_events_deleted"]) for r in housekeeping()) == 1210, 3,
                   message="housekeeping lines: %r" % housekeeping())
        for r in housekeeping():
            self.assertLessEqual(int(r["audit_events_deleted"]), 500, "a delete is bounded: %r" % r)


class NoSecretsTest(AuditTestCase):

    def test_no_token_cookie_or_code_is_in_the_audit_trail_or_the_log(self):
        laptop = self.login_device(FIREFOX_LINUX, self.nginx_a, expires_in=30)
        self.assertEqual(laptop.get("/me/token").status, 200)  # a refresh
        phone = self.login_device(CHROME_ANDROID, self.nginx_b)
        oauth_values = []
        b = DeviceBrowser(self.nginx_b.port, FIREFOX_LINUX)
        start = b.start_login()
        oauth_values.append(b.jar.get("__Host-baa_oauth"))
        state = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(start.location).query))["state"]
        auth, params = b.authorize_at(self.fake, start.location)
        self.assertEqual(b.callback(params).status, 302)
        self.assertEqual(b.callback(params).status, 400)  # the state again: refused, and logged
        self.expire_token()
        self.fake.set_fault("token", status=500, grant_type="refresh_token", times=1)
        self.assertEqual(laptop.get("/me/token").status, 502)
        self.fake.fail_refreshes(1)
        self.assertEqual(laptop.get("/me/token").status, 401)
        cookies = [laptop.jar[SESSION_COOKIE], phone.jar[SESSION_COOKIE], b.jar[SESSION_COOKIE]]
        self.assertEqual(phone.delete("/me/sessions/%d" % self.session_id(b)).status, 200)
        self.assertEqual(phone.post("/logout").status, 200)
        trail = self.pg.psql("SELECT e::text FROM auth_events e", db=self.db)
        self.assertEqual(len(trail.splitlines()), 8, trail)
        self.assertEqual(laptop.delete("/me").status, 200)
        trail += self.pg.psql("SELECT e::text FROM auth_events e", db=self.db)

        secrets = {"state": state}
        for i, value in enumerate(cookies):
            fields = CookieSigner.parse_session(value)
            secrets["session cookie %d" % i] = value
            secrets["session id %d" % i] = b64url(fields["session_id"])
            secrets["session id %d (hex)" % i] = fields["session_id"].hex()
            secrets["session cookie mac %d" % i] = fields["mac"]
        for i, value in enumerate(oauth_values):
            secrets["login cookie %d" % i] = value
        issued = self.fake.tokens()
        for i, t in enumerate(issued["access_tokens"]):
            secrets["access token %d" % i] = t["access_token"]
        for i, t in enumerate(issued["refresh_tokens"]):
            secrets["refresh token %d" % i] = t["refresh_token"]
        for i, req in enumerate(self.fake.requests("token")):
            for key in ("code", "code_verifier", "refresh_token"):
                if req["form"].get(key):
                    secrets["%s sent to Spotify %d" % (key, i)] = req["form"][key]
        self.assertGreater(len(secrets), 15)
        time.sleep(0.1)  # the workers' last log lines, written in batches
        logs = {"A": self.baa_a.log(), "B": self.baa_b.log()}
        for what, value in secrets.items():
            self.assertTrue(value and len(value) >= 16, what)
            self.assertNotIn(value, trail, "%s is in auth_events" % what)
            for name, text in logs.items():
                self.assertNotIn(value, text, "%s is in instance %s's log" % (what, name))

if __name__ == "__main__":
    unittest.main()
