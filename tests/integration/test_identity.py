"""Who a login is: users linked on Spotify's account_id (its id may change),
development mode's 403 said plainly, and what a browser's navigation to a
failed /callback gets (303 to the page with ?login_error=<code>).

The fake Spotify keeps accounts by account_id: set_user(id) alone is
another account (account_id derived from the id), set_user(new_id,
account_id=K) or rename_user(K, new_id) is account K under a new id.
"""

import re
import threading
import time
import unittest

from harness import (OAUTH_COOKIE, SESSION_COOKIE, TwoInstancesTestCase, fake_spotify_client,
                     mint_session, parse_logfmt, run_concurrently, wait_until)

default_account_id = fake_spotify_client().default_account_id
DEMO_ACCOUNT = default_account_id("demo-user")
ACCESS_DENIED = "spotify_access_denied"


class IdentityTestCase(TwoInstancesTestCase):
    """Instances A and B on one database, each behind its own nginx."""

    def setUp(self):
        super().setUp()
        # each test reads only its own log lines (baa writes them in batches,
        # at most 50 ms late: the last test's are out by now)
        time.sleep(0.1)
        self.log_start = {id(b): len(b.log()) for b in (self.baa_a, self.baa_b)}

    def log_events(self, event, count=None, timeout=3):
        """This test's log lines of event on both instances, parsed, in the
        order they happened. Lines are written in batches: with count, wait
        until there are that many."""
        def read():
            records = []
            for b in (self.baa_a, self.baa_b):
                for line in b.log()[self.log_start[id(b)]:].splitlines():
                    if ("event=%s " % event) in line + " ":
                        records.append(parse_logfmt(line))
            # ISO 8601 UTC with milliseconds: the text sorts as the time.
            return sorted(records, key=lambda r: r["ts"])
        if count is not None:
            wait_until(lambda: len(read()) >= count, timeout,
                       message="expected %d event=%s lines%s" % (count, event, self.stack_context()))
            time.sleep(0.1)  # and no more than that
        return read()

    def login_events(self, user_id, count):
        self.log_events("login", count)
        return [r for r in self.log_events("login") if r.get("user_id") == str(user_id)]

    def insert_row(self, spotify_id, account_id=None):
        """A users row as an earlier baa (or another account) left it -> its id."""
        return int(self.pg.psql_value(
            "INSERT INTO users (spotify_id, account_id, display_name, authorized_at)"
            " VALUES ('%s', %s, 'Old Row', now()) RETURNING id"
            % (spotify_id, "'%s'" % account_id if account_id else "NULL"), db=self.db).split()[0])

    def session_for(self, user_id):
        """A live session of user_id (a row as a login makes) -> its cookie."""
        return mint_session(self.pg, self.db, user_id, ttl=600)


class AccountIdTest(IdentityTestCase):

    def test_login_stores_account_id_and_me_shows_it(self):
        b, r = self.login()
        u = self.user("demo-user")
        self.assertEqual(u["account_id"], DEMO_ACCOUNT)
        self.assertIsNone(u["needs_reauth_at"])
        for nginx in (self.nginx_a, self.nginx_b):
            doc = self.me_doc(r.session_cookie, nginx)
            self.assertEqual(doc["account_id"], DEMO_ACCOUNT)
            self.assertEqual(doc["spotify_id"], "demo-user")
        self.assertEqual([e.get("identity") for e in self.login_events(u["id"], 1)], ["new"])
        # the next login finds the row by account_id
        self.login(nginx=self.nginx_b)
        self.assertEqual(len(self.users()), 1)
        self.assertEqual(sorted(e.get("identity") for e in self.login_events(u["id"], 2)),
                         ["account_id", "new"])

    def test_renamed_user_is_the_same_user_with_the_same_sessions(self):
        """Spotify changes the id, account_id stays: same users.id, the old
        session still valid on the other instance, spotify_id updated."""
        b1, r1 = self.login(nginx=self.nginx_a)
        before = self.user("demo-user")
        # instance B has the profile in its cache
        self.assertEqual(self.me_doc(r1.session_cookie, self.nginx_b)["spotify_id"], "demo-user")

        self.fake.rename_user(DEMO_ACCOUNT, "demo-renamed")
        self.fake.set_user("demo-renamed", account_id=DEMO_ACCOUNT)
        b2, r2 = self.login(nginx=self.nginx_a)

        rows = self.users()
        self.assertEqual(len(rows), 1, rows)
        after = rows[0]
        self.assertEqual(after["id"], before["id"])
        self.assertEqual(after["spotify_id"], "demo-renamed")
        self.assertEqual(after["account_id"], DEMO_ACCOUNT)
        # the first session is still a session of the same users row
        self.assertEqual(self.session_row(r1.session_cookie)["user_id"], before["id"])
        self.assertNotEqual(after["spotify_token"], before["spotify_token"])
        # the first session, on the other instance, sees the new id (its cache was told)
        doc = self.wait_me(r1.session_cookie, self.nginx_b, spotify_id="demo-renamed")
        self.assertEqual(doc["id"], before["id"])
        self.assertEqual(doc["account_id"], DEMO_ACCOUNT)
        for cookie in (r1.session_cookie, r2.session_cookie):
            for nginx in (self.nginx_a, self.nginx_b):
                tok = self.get(cookie, nginx, "/me/token")
                self.assertEqual(tok.status, 200, tok)
                self.assertEqual(tok.json()["access_token"], after["spotify_token"])
        self.assertEqual([e.get("identity") for e in self.login_events(before["id"], 2)],
                         ["new", "account_id"])

    def test_row_from_before_account_id_is_linked_at_the_next_login(self):
        b, r = self.login()
        self.pg.psql("UPDATE users SET account_id = NULL", db=self.db)
        old = self.user("demo-user")
        b2, r2 = self.login(nginx=self.nginx_b)
        rows = self.users()
        self.assertEqual(len(rows), 1, rows)
        self.assertEqual(rows[0]["id"], old["id"])
        self.assertEqual(rows[0]["account_id"], DEMO_ACCOUNT)
        self.assertEqual(self.get(r.session_cookie).status, 200)
        self.assertEqual([e.get("identity") for e in self.login_events(old["id"], 2)],
                         ["new", "linked"])
        # linked: a later rename finds it by account_id
        self.fake.set_user("demo-renamed", account_id=DEMO_ACCOUNT)
        self.login()
        self.assertEqual([(u["id"], u["spotify_id"]) for u in self.users()],
                         [(old["id"], "demo-renamed")])

    def test_profile_without_account_id_works_by_spotify_id(self):
        self.fake.configure(omit_account_id=True)
        b, r = self.login()
        u = self.user("demo-user")
        self.assertIsNone(u["account_id"])
        doc = self.me_doc(r.session_cookie, self.nginx_b)
        self.assertIn("account_id", doc)
        self.assertIsNone(doc["account_id"])
        self.login(nginx=self.nginx_b)
        self.assertEqual([x["id"] for x in self.users()], [u["id"]])
        self.assertEqual(sorted(e.get("identity") for e in self.login_events(u["id"], 2)),
                         ["new", "spotify_id"])
        # and when Spotify starts sending it, the row is linked
        self.fake.configure(omit_account_id=False)
        self.login()
        self.assertEqual([(x["id"], x["account_id"]) for x in self.users()],
                         [(u["id"], DEMO_ACCOUNT)])

    def test_account_wins_a_collision_and_the_other_row_is_detached_not_merged(self):
        """Row X holds id x-user with no account_id (from before); row K holds
        account acct-K under id y-user. Spotify now says acct-K is x-user:
        the login is K's; X gives the id up and keeps its row and session."""
        self.fake.set_user("y-user", account_id="acct-K")
        bk, rk = self.login()
        k = self.user("y-user")
        x_id = self.insert_row("x-user")
        x_cookie = self.session_for(x_id)
        self.assertEqual(self.me_doc(x_cookie, self.nginx_b)["spotify_id"], "x-user")

        self.fake.set_user("x-user", account_id="acct-K")
        bk2, rk2 = self.login(nginx=self.nginx_b)

        rows = {u["id"]: u for u in self.users()}
        self.assertEqual(sorted(rows), sorted([k["id"], x_id]), rows)
        self.assertEqual(rows[k["id"]]["spotify_id"], "x-user")
        self.assertEqual(rows[k["id"]]["account_id"], "acct-K")
        self.assertEqual(rows[x_id]["spotify_id"], "detached:%d" % x_id)
        self.assertIsNone(rows[x_id]["account_id"])
        self.assertEqual(rows[x_id]["display_name"], "Old Row")
        # both sessions of K are one user; X's session is still X
        for cookie in (rk.session_cookie, rk2.session_cookie):
            self.assertEqual(self.me_doc(cookie)["id"], k["id"])
        doc = self.wait_me(x_cookie, self.nginx_b, spotify_id="detached:%d" % x_id)
        self.assertEqual(doc["id"], x_id)
        detached = self.log_events("identity_detached", 1)
        self.assertEqual([e.get("user_id") for e in detached], [str(x_id)], detached)
        # the placeholder is nobody's id: a profile claiming it gets no row
        self.fake.set_user("detached:%d" % x_id, account_id="acct-claimer")
        claim = self.browser().login(self.fake)
        self.assertNotEqual(claim.callback.status, 302, claim.describe())
        self.assertIsNone(claim.session_cookie)
        self.assertEqual({u["id"]: (u["spotify_id"], u["account_id"]) for u in self.users()},
                         {k["id"]: ("x-user", "acct-K"), x_id: ("detached:%d" % x_id, None)})

    def test_id_taken_over_by_another_account_is_a_new_user(self):
        """Row O holds id x-user under account acct-OLD; Spotify now gives
        x-user to acct-NEW: a new users row, O detached, not handed over."""
        o_id = self.insert_row("x-user", account_id="acct-OLD")
        self.fake.set_user("x-user", account_id="acct-NEW")
        b, r = self.login()
        rows = {u["spotify_id"]: u for u in self.users()}
        self.assertEqual(sorted(rows), ["detached:%d" % o_id, "x-user"], rows)
        new = rows["x-user"]
        self.assertNotEqual(new["id"], o_id)
        self.assertEqual(new["account_id"], "acct-NEW")
        self.assertEqual(rows["detached:%d" % o_id]["account_id"], "acct-OLD")
        self.assertEqual(self.me_doc(r.session_cookie)["id"], new["id"])
        # acct-OLD, under its new id, finds its old row again
        self.fake.set_user("old-renamed", account_id="acct-OLD")
        b2, r2 = self.login(nginx=self.nginx_b)
        self.assertEqual(self.me_doc(r2.session_cookie)["id"], o_id)
        self.assertEqual(self.user("old-renamed")["id"], o_id)

    def test_concurrent_first_logins_of_one_account_make_one_row(self):
        """The same new account finishing logins on both instances at once:
        one row, every login a session of it (a UNIQUE race is retried)."""
        for round_ in range(4):
            self.pg.psql("DELETE FROM users", db=self.db)
            self.fake.set_user("racer-%d" % round_)
            pending = []
            for i in range(6):
                nginx = (self.nginx_a, self.nginx_b)[i % 2]
                b = self.browser(nginx)
                resp = b.start_login()
                auth, params = b.authorize_at(self.fake, resp.location)
                self.assertEqual(auth.status, 302, auth)
                pending.append((b, params))
            results = run_concurrently([lambda b=b, p=p: b.callback(p) for b, p in pending])
            self.assertEqual([x for x in results if isinstance(x, Exception)], [])
            for resp in results:
                self.assertEqual(resp.status, 302, "%r%s" % (resp, self.stack_context()))
            rows = self.users()
            self.assertEqual(len(rows), 1, rows)
            self.assertEqual(rows[0]["account_id"], default_account_id("racer-%d" % round_))
            ids = {self.me_doc(b.jar[SESSION_COOKIE])["id"] for b, p in pending}
            self.assertEqual(ids, {rows[0]["id"]})

    def test_login_racing_another_insert_of_the_account_is_retried_onto_its_row(self):
        """Deterministic form of the race: another transaction inserts the
        account's row after baa looked and before baa inserts. baa's insert
        waits on the UNIQUE index, fails (23505) at the other's commit, and
        the retried transaction finds and updates that row."""
        account = default_account_id("racer")
        self.fake.set_user("racer")
        b, params = self.begin_login()
        other = self.pg.session(self.db)
        self.addCleanup(other.close)
        other.send("BEGIN; INSERT INTO users (spotify_id, account_id) VALUES ('racer', '%s');"
                   % account)
        pid = other.backend_pid()

        def holds_row_lock():
            return self.pg.psql_value(
                "SELECT count(*) FROM pg_locks WHERE pid = %d AND locktype = 'transactionid'"
                % pid, db=self.db) == "1"
        wait_until(holds_row_lock, 10, message="the other transaction did not insert")
        done = {}
        call = threading.Thread(target=lambda: done.update(resp=b.callback(params)), daemon=True)
        call.start()

        def baa_waits():
            return self.pg.psql_value(
                "SELECT count(*) FROM pg_locks WHERE NOT granted AND locktype = 'transactionid'",
                db=self.db) != "0"
        wait_until(baa_waits, 10, message="baa's insert never waited on the other's row")
        other.commit()
        call.join(15)
        self.assertIn("resp", done, "the callback did not finish")
        self.assertEqual(done["resp"].status, 302, "%r%s" % (done["resp"], self.stack_context()))
        rows = self.users()
        self.assertEqual(len(rows), 1, rows)
        self.assertEqual(rows[0]["account_id"], account)
        self.assertIsNotNone(rows[0]["spotify_token"])
        failed = self.log_events("db_statement_failed", 1)
        self.assertEqual([(e.get("statement"), e.get("sqlstate")) for e in failed],
                         [("users_login_insert", "23505")])
        self.assertEqual([e.get("identity") for e in self.login_events(rows[0]["id"], 1)],
                         ["account_id"])


class DevelopmentModeTest(IdentityTestCase):
    """Development mode: at most 5 users the owner added; anybody else passes
    Spotify's consent screen and is then refused by the Web API (403)."""

    def metric(self, nginx, name):
        status, hdrs, body = nginx.request("GET", "/metrics")
        self.assertEqual(status, 200)
        m = re.search(r"^%s (\d+)$" % re.escape(name), body.decode(), re.M)
        return int(m.group(1)) if m else 0

    def test_user_not_added_by_the_owner_gets_403_and_nothing_is_stored(self):
        self.fake.set_development_mode(True, allowed_users=["someone-else"])
        forbidden = 'baa_spotify_calls_total{endpoint="me",outcome="forbidden"}'
        before = self.metric(self.nginx_a, forbidden)
        b = self.browser()
        r = b.login(self.fake)
        self.assertEqual(r.authorize.status, 302, r.describe())  # consent passed
        doc = self.assertJsonError(r.callback, 403, "development mode")
        self.assertEqual(set(doc), {"error", "message"}, doc)
        self.assertEqual(doc["error"], ACCESS_DENIED)
        for words in ("not allowed", "development mode", "5 users", "Developer Dashboard",
                      "log in again"):
            self.assertIn(words, doc["message"])
        self.assertNotIn(SESSION_COOKIE, r.callback.set_cookies, r.callback)
        self.assertTrue(r.callback.set_cookies[OAUTH_COOKIE].clears, r.callback)
        self.assertNotIn(OAUTH_COOKIE, b.jar)
        self.assertEqual(self.users(), [])
        self.assertEqual(self.fake.stats()["me"], 1)
        events = self.log_events(ACCESS_DENIED, 1)
        self.assertEqual(len(events), 1, events)
        self.assertEqual(events[0].get("at"), "login")
        self.assertEqual(self.metric(self.nginx_a, forbidden), before + 1)
        # the owner adds the user: the same person logs in
        self.fake.set_development_mode(True, allowed_users=["demo-user"])
        b2, r2 = self.login()
        self.assertEqual(self.user()["spotify_id"], "demo-user")

    def test_added_user_logs_in_without_email_country_or_product(self):
        self.fake.set_development_mode(True, allowed_users=[DEMO_ACCOUNT])
        b, r = self.login()
        body = self.fake.me(self.fake.tokens()["access_tokens"][-1]["access_token"]).json()
        for field in ("email", "country", "product", "followers", "explicit_content"):
            self.assertNotIn(field, body)
        doc = self.me_doc(r.session_cookie)
        self.assertEqual(doc["spotify_id"], "demo-user")
        self.assertEqual(doc["account_id"], DEMO_ACCOUNT)
        self.assertEqual(self.get(r.session_cookie, path="/me/token").status, 200)

    def test_403_on_refresh_keeps_the_tokens_and_the_session(self):
        self.fake.configure(expires_in=30)
        b, r = self.login()
        self.fake.configure(expires_in=3600)
        before = self.user()
        self.fake.set_fault("token", status=403, grant_type="refresh_token", times=1,
                            body='{"error":{"status":403,"message":"Forbidden"}}')
        resp = self.get(r.session_cookie, path="/me/token")
        doc = self.assertJsonError(resp, 403, "403 on refresh")
        self.assertEqual(doc["error"], ACCESS_DENIED)
        self.assertNotIn(SESSION_COOKIE, resp.set_cookies, resp)
        after = self.user()
        self.assertEqual(after, before, "the row changed on a 403")
        self.assertIsNone(after["needs_reauth_at"])
        self.assertEqual([e.get("at") for e in self.log_events(ACCESS_DENIED, 1)], ["refresh"])
        self.assertIs(self.me_doc(r.session_cookie)["needs_reauth"], False)
        # Spotify lets the user in again: the next request refreshes
        tok = self.get(r.session_cookie, self.nginx_b, "/me/token")
        self.assertEqual(tok.status, 200, tok)
        self.assertEqual(self.fake.stats()["token_refresh_token"], 2)


class NavigationTest(IdentityTestCase):
    """A failed /callback that the browser navigated to: 303 to the page
    with the code (the page explains it); the same failure without
    Sec-Fetch-Mode: navigate keeps its JSON answer."""

    NAVIGATE = {"Sec-Fetch-Mode": "navigate"}

    def assertSeeOther(self, resp, code):
        self.assertEqual(resp.status, 303, "%r%s" % (resp, self.stack_context()))
        self.assertEqual(resp.location, "/?login_error=" + code, resp)
        self.assertNoStore(resp, code)
        self.assertNotIn(SESSION_COOKIE, resp.set_cookies, resp)

    def test_development_mode_refusal_is_303_to_the_page(self):
        self.fake.set_development_mode(True, allowed_users=[])
        b, params = self.begin_login()
        resp = b.callback(params, headers=dict(self.NAVIGATE, Cookie=b.cookie_header()))
        self.assertSeeOther(resp, ACCESS_DENIED)
        self.assertTrue(resp.set_cookies[OAUTH_COOKIE].clears, resp)
        self.assertEqual(self.users(), [])
        self.assertEqual(len(self.log_events(ACCESS_DENIED, 1)), 1)
        # control: the same refusal for a script is the JSON
        b, params = self.begin_login(self.nginx_b)
        resp = b.callback(params, headers={"Sec-Fetch-Mode": "cors", "Cookie": b.cookie_header()})
        self.assertEqual(self.assertJsonError(resp, 403, "cors")["error"], ACCESS_DENIED)

    def test_cancelled_expired_and_failed_logins_have_their_codes(self):
        cases = []
        # declined at Spotify's consent screen
        self.fake.configure(deny=True)
        b, params = self.begin_login()
        cases.append(("login_cancelled", b, params))
        self.fake.configure(deny=False)
        # no login cookie (expired, or another browser)
        b, params = self.begin_login()
        b.jar.pop(OAUTH_COOKIE)
        cases.append(("login_expired", b, params))
        # Spotify failing the code exchange
        b, params = self.begin_login()
        cases.append(("spotify_failed", b, dict(params, code="AQ" + "x" * 40)))
        for code, b, params in cases:
            with self.subTest(code):
                hdrs = dict(self.NAVIGATE)
                if b.jar:
                    hdrs["Cookie"] = b.cookie_header()
                self.assertSeeOther(b.callback(params, headers=hdrs), code)
        self.assertEqual(self.users(), [])
        # a successful login is the usual 302 to next, navigation or not
        b, params = self.begin_login()
        resp = b.callback(params, headers=dict(self.NAVIGATE, Cookie=b.cookie_header()))
        self.assertEqual(resp.status, 302, resp)
        self.assertEqual(resp.location, "/")

    def test_rate_limited_login_is_303_with_retry_after(self):
        b, params = self.begin_login(self.nginx_b)
        self.fake.set_fault("me", status=429, retry_after=1, times=1)
        resp = b.callback(params, headers=dict(self.NAVIGATE, Cookie=b.cookie_header()))
        self.assertSeeOther(resp, "spotify_rate_limited")
        self.assertEqual(resp.headers.get("Retry-After"), "1", resp)
        time.sleep(1.1)  # the worker that met the 429 waits it out


if __name__ == "__main__":
    unittest.main()
