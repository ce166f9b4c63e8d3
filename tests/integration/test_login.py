"""The Spotify login through nginx: /login, the fake's /authorize, /callback.

The test plays the browser (a cookie jar per simulated browser, no redirect
following) against baa behind nginx, with the fake Spotify of
tests/fake_spotify standing in for accounts.spotify.com and api.spotify.com.
"""

import base64
import re
import time
import unittest
import urllib.parse

from harness import (DEFAULT_SCOPES, LEGACY_OAUTH_COOKIE, OAUTH_COOKIE, SESSION_COOKIE, SPOTIFY_CLIENT_ID,
                     SPOTIFY_CLIENT_SECRET, TEST_REDIRECT_URI, CookieSigner, SpotifyTestCase, b64url, s256)

STATE_RE = re.compile(r"^[A-Za-z0-9_-]{43}$")
# v2.<kid>.<state>.<expires>.<b64url(next)>.<mac> and v2.<kid>.<session id>.<expires>.<mac>
OAUTH_VALUE_RE = re.compile(r"^v2\.[A-Za-z0-9_-]{8}\.[A-Za-z0-9_-]{43}\.\d+\.[A-Za-z0-9_-]*"
                            r"(\.[A-Za-z0-9_-]*)?\.[A-Za-z0-9_-]{43}$")
SESSION_VALUE_RE = re.compile(r"^v2\.[A-Za-z0-9_-]{8}\.[A-Za-z0-9_-]{43}\.\d+\.[A-Za-z0-9_-]{43}$")
ISO_Z_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
SESSION_TTL = 7200


class LoginFlowTest(SpotifyTestCase):
    """Successful logins, and where they lead."""

    login_extra_env = {"BAA_SESSION_TTL": SESSION_TTL}

    def test_full_login_stores_the_users_tokens_and_sets_a_session_cookie(self):
        b = self.browser()
        t0 = int(time.time())
        r = b.login(self.fake)

        # /login: 302 to the fake's /authorize with every parameter
        self.assertEqual(r.login.status, 302, r.describe())
        self.assertNoStore(r.login, "/login")
        url = urllib.parse.urlsplit(r.authorize_url)
        self.assertEqual("%s://%s%s" % (url.scheme, url.netloc, url.path), self.fake.url + "/authorize")
        q = urllib.parse.parse_qs(url.query, keep_blank_values=True)
        # no scope parameter: baa asks for none by default (SPOTIFY_SCOPES unset)
        self.assertEqual({k: len(v) for k, v in q.items()},
                         {k: 1 for k in ("client_id", "response_type", "redirect_uri", "state",
                                         "code_challenge", "code_challenge_method")}, q)
        p = r.authorize_params
        self.assertEqual(p["client_id"], SPOTIFY_CLIENT_ID)
        self.assertEqual(p["response_type"], "code")
        self.assertEqual(p["redirect_uri"], TEST_REDIRECT_URI)
        self.assertEqual(DEFAULT_SCOPES, "")
        self.assertEqual(p["code_challenge_method"], "S256")
        self.assertRegex(p["state"], STATE_RE)
        self.assertRegex(p["code_challenge"], STATE_RE)

        # the login cookie: attributes, format, signature, state, next
        oauth = r.login.set_cookies.get(OAUTH_COOKIE)
        self.assertIsNotNone(oauth, r.login)
        self.assertCookieAttributes(oauth, 600)
        self.assertRegex(oauth.value, OAUTH_VALUE_RE)
        self.assertTrue(self.signer.oauth_is_authentic(oauth.value), oauth.value)
        fields = CookieSigner.parse_oauth(oauth.value)
        self.assertEqual(fields["kid"], self.signer.kid)
        self.assertEqual(fields["state"], p["state"])
        self.assertEqual(fields["next"], "/")
        self.assertEqual(fields["asked"], "")  # no SPOTIFY_SCOPES: nothing asked for
        self.assertTrue(t0 + 590 <= fields["expires"] <= int(time.time()) + 610, fields)

        # the fake redirected back with a code; /callback: 302 to "/"
        self.assertEqual(r.authorize.status, 302, r.describe())
        self.assertEqual(r.state, p["state"])
        self.assertTrue(r.code)
        self.assertEqual(r.callback.status, 302, r.describe() + self.stack_context())
        self.assertNoStore(r.callback, "/callback")
        self.assertEqual(r.callback.location, "/")
        session = r.callback.set_cookies.get(SESSION_COOKIE)
        self.assertIsNotNone(session, r.callback)
        self.assertCookieAttributes(session, SESSION_TTL)
        self.assertRegex(session.value, SESSION_VALUE_RE)
        self.assertTrue(self.signer.session_is_authentic(session.value), session.value)
        cleared = r.callback.set_cookies.get(OAUTH_COOKIE)
        self.assertIsNotNone(cleared, "the login cookie must be cleared: %r" % r.callback)
        self.assertEqual(cleared.value, "", cleared)
        self.assertCookieAttributes(cleared, 0)
        self.assertNotIn(OAUTH_COOKIE, b.jar)
        # the first format's names are read, never written, nor cleared unasked
        self.assertEqual({c.name for c in r.login.set_cookie_list}, {OAUTH_COOKIE}, r.login)
        self.assertEqual({c.name for c in r.callback.set_cookie_list},
                         {OAUTH_COOKIE, SESSION_COOKIE}, r.callback)
        # __Host-: host-only, so no Domain
        for c in (oauth, session, cleared):
            self.assertNotIn("domain", c.attrs, c)

        # what the fake saw: one code exchange, PKCE, redirect_uri, client auth
        tok_reqs = self.fake.requests("token")
        self.assertEqual(len(tok_reqs), 1, tok_reqs)
        form = tok_reqs[0]["form"]
        self.assertEqual(form.get("grant_type"), "authorization_code")
        self.assertEqual(form.get("code"), r.code)
        self.assertEqual(form.get("redirect_uri"), TEST_REDIRECT_URI)
        self.assertEqual(s256(form.get("code_verifier", "")), p["code_challenge"],
                         "code_verifier does not match the challenge sent to /authorize")
        self.assertEqual(tok_reqs[0]["headers"].get("Authorization"),
                         self.fake_client_basic_auth())
        self.assertEqual(tok_reqs[0]["status"], 200)

        # the row
        issued = self.fake.tokens()
        self.assertEqual(len(issued["access_tokens"]), 1, issued)
        access = issued["access_tokens"][0]["access_token"]
        refresh = issued["refresh_tokens"][0]["refresh_token"]
        me_reqs = self.fake.requests("me")
        self.assertEqual(len(me_reqs), 1, me_reqs)
        self.assertEqual(me_reqs[0]["headers"].get("Authorization"), "Bearer " + access)
        u = self.user("demo-user")
        self.assertGreater(len(u["spotify_token"]), 200)
        self.assertEqual(len(u["spotify_token"]), 300)
        self.assertEqual(u["spotify_token"], access)
        self.assertEqual(u["refresh_token"], refresh)
        self.assertEqual(u["display_name"], "Demo User")
        self.assertEqual(sorted((u["scope"] or "").split()), sorted(DEFAULT_SCOPES.split()))
        self.assertIsNotNone(u["authorized_at"])
        self.assertLess(abs(self.seconds_until(u["authorized_at"])), 60)
        self.assertTrue(3500 <= self.seconds_until(u["token_expires_at"]) <= 3601, u)
        s = CookieSigner.parse_session(session.value)
        self.assertEqual(s["kid"], self.signer.kid)
        self.assertTrue(t0 + SESSION_TTL - 5 <= s["expires"] <= int(time.time()) + SESSION_TTL + 5, s)
        # the session's row: this user's, keyed by the hash of the cookie's id,
        # living as long as the cookie, from the client's /24
        row = self.session_row(session.value)
        self.assertIsNotNone(row, "no sessions row for the cookie")
        self.assertEqual(row["user_id"], u["id"])
        self.assertEqual(self.session_rows(), [row])
        self.assertLess(abs(self.seconds_until(row["expires_at"]) - (s["expires"] - time.time())), 5, row)
        self.assertEqual(row["network"], "127.0.0.0/24")
        # and the login's audit event, for this session
        self.assertEqual([(e["event"], e["session_id"]) for e in self.auth_events(u["id"])],
                         [("login", row["id"])])

        # /me and /me/token with the new session
        me = b.get("/me")
        self.assertEqual(me.status, 200, me)
        self.assertNoStore(me, "/me")
        doc = me.json()
        self.assertEqual(set(doc), {"id", "spotify_id", "account_id", "display_name", "token_expires_at",
                                    "authorized_at", "reauth_due_at", "reauth_recommended",
                                    "needs_reauth", "scope"}, doc)
        self.assertEqual(doc["account_id"], u["account_id"])
        # No SPOTIFY_SCOPES: Spotify granted none, and that is stored.
        self.assertEqual(doc["scope"], "")
        self.assertRegex(doc["authorized_at"], ISO_Z_RE)
        self.assertRegex(doc["reauth_due_at"], ISO_Z_RE)
        self.assertIs(doc["reauth_recommended"], False)
        self.assertIs(doc["needs_reauth"], False)
        self.assertIsInstance(doc["id"], int)
        self.assertEqual(doc["id"], u["id"])
        self.assertEqual(doc["spotify_id"], "demo-user")
        self.assertEqual(doc["display_name"], "Demo User")
        self.assertRegex(doc["token_expires_at"], ISO_Z_RE)
        self.assertNotIn(access, me.body.decode())
        self.assertNotIn(refresh, me.body.decode())

        tok = b.get("/me/token")
        self.assertEqual(tok.status, 200, tok)
        self.assertNoStore(tok, "/me/token")
        doc = tok.json()
        self.assertEqual(doc["access_token"], access)
        self.assertEqual(len(doc["access_token"]), 300)
        self.assertEqual(doc["token_type"], "Bearer")
        self.assertRegex(doc["expires_at"], ISO_Z_RE)
        self.assertIsInstance(doc["expires_in"], int)
        # 3601: baa rounds the stored expiry to whole seconds
        self.assertTrue(3500 <= doc["expires_in"] <= 3601, doc)
        self.assertNotIn(refresh, tok.body.decode())
        self.assertEqual(set(doc), {"access_token", "token_type", "expires_at", "expires_in",
                                    "reauth_due_at", "reauth_recommended"}, doc)
        self.assertEqual(doc["reauth_due_at"], me.json()["reauth_due_at"])
        self.assertIs(doc["reauth_recommended"], False)
        self.assertEqual(self.fake.stats()["token_refresh_token"], 0)

    def fake_client_basic_auth(self):
        raw = ("%s:%s" % (SPOTIFY_CLIENT_ID, SPOTIFY_CLIENT_SECRET)).encode()
        return "Basic " + base64.b64encode(raw).decode()

    def test_second_login_of_the_same_spotify_user_updates_the_same_row(self):
        b1, r1 = self.login()
        first = self.user("demo-user")
        b2, r2 = self.login()
        rows = self.users()
        self.assertEqual(len(rows), 1, rows)
        # a session per login: the first device stays logged in
        self.assertEqual([x["user_id"] for x in self.session_rows()], [first["id"]] * 2)
        self.assertEqual(b1.get("/me").status, 200)
        second = rows[0]
        self.assertEqual(second["id"], first["id"])
        self.assertNotEqual(second["spotify_token"], first["spotify_token"])
        newest = self.fake.tokens()["access_tokens"][-1]["access_token"]
        self.assertEqual(second["spotify_token"], newest)
        self.assertEqual(b2.get("/me/token").json()["access_token"], newest)
        self.assertEqual(b2.get("/me").json()["id"], first["id"])

        # another Spotify user gets a row of their own
        self.fake.configure(user={"id": "other-user", "display_name": None})
        b3, r3 = self.login()
        rows = self.users()
        self.assertEqual(sorted(u["spotify_id"] for u in rows), ["demo-user", "other-user"])
        other = self.user("other-user")
        self.assertNotEqual(other["id"], first["id"])
        me = b3.get("/me")
        self.assertEqual(me.status, 200, me)
        self.assertEqual(me.json()["spotify_id"], "other-user")
        self.assertIsNone(me.json()["display_name"])
        self.assertIsNone(other["display_name"])
        self.assertEqual(b1.get("/me").json()["spotify_id"], "demo-user")

    def test_next_local_path_is_where_the_login_ends(self):
        for next_path in ("/account", "/a/b?x=1&y=2"):
            with self.subTest(next=next_path):
                b, r = self.login(next_path=next_path)
                self.assertEqual(CookieSigner.parse_oauth(r.oauth_cookie)["next"], next_path)
                self.assertEqual(r.callback.location, next_path, r.callback)

    def test_next_that_is_not_a_single_local_path_is_refused_without_cookie(self):
        queries = {
            "absolute https URL": "next=" + urllib.parse.quote("https://evil.example", safe=""),
            "absolute URL unencoded": "next=https://evil.example/",
            "protocol-relative": "next=" + urllib.parse.quote("//evil.example", safe=""),
            "protocol-relative unencoded": "next=//evil.example",
            "backslash": "next=" + urllib.parse.quote("/\\evil.example", safe=""),
            "bare host": "next=evil.example",
            "two next params": "next=%2Faccount&next=%2Fother",
            "two next params, one evil": "next=%2Faccount&next=%2F%2Fevil.example",
        }
        for what, query in queries.items():
            with self.subTest(what, query=query):
                b = self.browser()
                resp = b.get("/login?" + query)
                self.assertJsonError(resp, 400, "/login?" + query)
                self.assertEqual(resp.set_cookie_list, [], resp)
                self.assertIsNone(resp.location, resp)
        self.assertEqual(self.fake.stats()["authorize"], 0)
        # control: a local next is accepted by the same route
        resp = self.browser().get("/login?next=%2Faccount")
        self.assertEqual(resp.status, 302, resp)

    def test_cache_control_no_store_on_every_login_answer(self):
        b = self.browser()
        answers = {}
        answers["/login 302"] = b.start_login()
        answers["/login 400"] = self.browser().get("/login?next=//evil.example")
        answers["/callback 400 (no cookie)"] = self.browser().get("/callback?code=abc&state=def")
        self.fake.configure(deny=True)
        _, params = b.authorize_at(self.fake, answers["/login 302"].location)
        answers["/callback 403"] = b.callback(params)
        self.fake.configure(deny=False)
        b2, r = self.login()
        answers["/callback 302"] = r.callback
        answers["/me 200"] = b2.get("/me")
        answers["/me 401"] = self.browser().get("/me")
        answers["/me/token 200"] = b2.get("/me/token")
        answers["/me/token 401"] = self.browser().get("/me/token")
        answers["/logout 200"] = b2.post("/logout")
        for what, resp in answers.items():
            with self.subTest(what):
                self.assertEqual(str(resp.status), what.split()[1], resp)
                self.assertNoStore(resp, what)
                try:
                    resp.json()
                except ValueError:
                    self.fail("%s: body is not JSON: %r" % (what, resp))


# /callback requests that are not the browser's own pending login, one row
# each: (what, query, Cookie header or None for none). {code} and {state}
# are the pending login's; {cookie} its __Host-baa_oauth value; the other
# fields (CallbackStateTest.forgeries) are cookies and states made from it.
# Every row is refused with a 400 before Spotify is called; adding a case is
# adding a row.
QUERY = "code={code}&state={state}"
COOKIE = "{oauth}={cookie}"
REFUSED_CALLBACKS = [
    # a parameter missing, empty or sent twice
    ("no query", "", COOKIE),
    ("no code", "state={state}", COOKIE),
    ("no state", "code={code}", COOKIE),
    ("empty code", "code=&state={state}", COOKIE),
    ("empty state", "code={code}&state=", COOKIE),
    ("two codes", "code={code}&code={code}&state={state}", COOKIE),
    ("two states", "code={code}&state={state}&state={state}", COOKIE),
    # broken percent-encoding
    ("code %zz", "code=%zz&state={state}", COOKIE),
    ("state %zz", "code={code}&state=%zz", COOKIE),
    ("both bad", "code=%zz&state=x", COOKIE),
    ("state ends in %", "code={code}&state={state}%", COOKIE),
    ("code ends in %0", "code={code}%0&state={state}", COOKIE),
    ("code ends in %00", "code={code}%00&state={state}", COOKIE),
    # the login cookie missing, forged or tampered with
    ("no cookie", QUERY, None),
    ("empty value", QUERY, "{oauth}="),
    ("garbage", QUERY, "{oauth}=garbage"),
    ("mac flipped", QUERY, "{oauth}={mac_flipped}"),
    ("mac missing", QUERY, "{oauth}={mac_missing}"),
    ("mac truncated", QUERY, "{oauth}={mac_truncated}"),
    ("state flipped", QUERY, "{oauth}={state_flipped}"),
    ("expiry pushed back, old mac", QUERY, "{oauth}={expiry_pushed}"),
    ("kid of another key, old mac", QUERY, "{oauth}={other_kid}"),
    ("signed with another key", QUERY, "{oauth}={other_key}"),
    ("signed with the session key", QUERY, "{oauth}={session_key}"),
    ("version v1", QUERY, "{oauth}=v1{cookie_after_version}"),
    ("version v3", QUERY, "{oauth}=v3{cookie_after_version}"),
    ("expired", QUERY, "{oauth}={expired}"),
    ("login cookie named as the session cookie", QUERY, "{session}={cookie}"),
    # the name sent twice refuses both, even when both are the good one
    ("cookie twice", QUERY, "{oauth}={cookie}; {oauth}={cookie}"),
    ("stale one first", QUERY, "{oauth}=stale; {oauth}={cookie}"),
    ("stale one last", QUERY, "{oauth}={cookie}; {oauth}=stale"),
    # the first format (read, never written) when it is not authentic
    ("first format, mac flipped", QUERY, "{legacy}={legacy_mac_flipped}"),
    ("first format, another key", QUERY, "{legacy}={legacy_other_key}"),
    ("first format, expired", QUERY, "{legacy}={legacy_expired}"),
    # state and cookie of different logins
    ("authentic cookie of another login", QUERY, "{oauth}={other_login}"),
    ("cookie signed here for a random state", QUERY, "{oauth}={random_state}"),
    ("state of another login", "code={code}&state={state2}", COOKIE),
    ("state with one char changed", "code={code}&state={state_changed}", COOKIE),
    ("state prefix", "code={code}&state={state_prefix}", COOKIE),
    ("state longer", "code={code}&state={state}A", COOKIE),
]
OTHER_SECRET_KEY = "another-secret-key-0123456789-abcdefgh"


def flip(s, i):
    return s[:i] + ("A" if s[i] != "A" else "B") + s[i + 1:]


class CallbackStateTest(SpotifyTestCase):
    """/callback refuses what is not the browser's own pending login, before
    calling Spotify: zero token requests, nothing stored."""

    def begin(self):
        """/login + the fake's authorize: -> (browser, oauth cookie value, code, state)."""
        b, params = self.begin_login()
        return b, b.jar[OAUTH_COOKIE], params["code"], params["state"]

    def forgeries(self, cookie, code, state):
        """The fields of REFUSED_CALLBACKS' templates, for this pending login."""
        f = CookieSigner.parse_oauth(cookie)
        body, _, mac = cookie.rpartition(".")
        other = CookieSigner(OTHER_SECRET_KEY)
        nxt = b64url(f["next"].encode())
        now = int(time.time())
        legacy = self.signer.sign_legacy_oauth(f["state"], f["expires"], "/account")
        legacy_body, _, legacy_mac = legacy.rpartition(".")
        _, cookie2, _, state2 = self.begin()  # another login (a second tab)
        self.assertNotEqual(state, state2)
        e = urllib.parse.quote
        return {
            "oauth": OAUTH_COOKIE, "session": SESSION_COOKIE, "legacy": LEGACY_OAUTH_COOKIE,
            "code": e(code), "state": e(state), "cookie": cookie,
            "mac_flipped": body + "." + flip(mac, 5),
            "mac_missing": body,
            "mac_truncated": cookie[:-2],
            "state_flipped": "v2.%s.%s.%d.%s.%s" % (f["kid"], flip(f["state"], 0), f["expires"],
                                                    nxt, mac),
            "expiry_pushed": "v2.%s.%s.%d.%s.%s" % (f["kid"], f["state"], f["expires"] + 3600,
                                                    nxt, mac),
            "other_kid": "v2.%s.%s.%d.%s.%s" % (other.kid, f["state"], f["expires"], nxt, mac),
            "other_key": other.sign_oauth(f["state"], f["expires"], f["next"]),
            "session_key": body + "." + self.signer.session_mac(body),
            "cookie_after_version": cookie[2:],
            "expired": self.signer.sign_oauth(f["state"], now - 5, f["next"]),
            "legacy_mac_flipped": legacy_body + "." + legacy_mac[::-1],
            "legacy_other_key": other.sign_legacy_oauth(f["state"], f["expires"], "/account"),
            "legacy_expired": self.signer.sign_legacy_oauth(f["state"], now - 5),
            "other_login": cookie2,
            "random_state": self.signer.sign_oauth(b64url(bytes(range(32))), now + 300),
            "state2": e(state2),
            "state_changed": e(state[:-1] + ("A" if state[-1] != "A" else "B")),
            "state_prefix": e(state[:20]),
        }

    def assertRefusedBeforeSpotify(self, resp, what):
        self.assertJsonError(resp, 400, what)
        self.assertNotIn(SESSION_COOKIE, resp.set_cookies, what)
        self.assertEqual(self.fake.stats()["token"], 0, "%s: baa called the token endpoint" % what)
        self.assertEqual(self.users(), [], what)

    def assertLoginGoesThrough(self, b, code, state, cookie):
        """The control: the same code and state with a good cookie do log in."""
        resp = b.callback({"code": code, "state": state}, cookies={OAUTH_COOKIE: cookie})
        self.assertEqual(resp.status, 302, "%r%s" % (resp, self.stack_context()))
        self.assertIn(SESSION_COOKIE, resp.set_cookies, resp)
        self.assertEqual(len(self.users()), 1)

    def test_every_refused_callback_of_the_table_is_400_before_spotify(self):
        b, cookie, code, state = self.begin()
        fields = self.forgeries(cookie, code, state)
        for what, query, header in REFUSED_CALLBACKS:
            with self.subTest(what):
                query = query.format(**fields)
                if header is None:
                    resp = b.get("/callback" + ("?" + query if query else ""), cookies={})
                else:
                    resp = b.get("/callback" + ("?" + query if query else ""),
                                 headers={"Cookie": header.format(**fields)})
                self.assertRefusedBeforeSpotify(resp, "%s: /callback?%s" % (what, query[:60]))
        # none of them spent the login: with its own cookie it goes through
        self.assertLoginGoesThrough(b, code, state, cookie)

    def test_python_signer_matches_baa(self):
        b, cookie, code, state = self.begin()
        f = CookieSigner.parse_oauth(cookie)
        self.assertEqual(self.signer.sign_oauth(f["state"], f["expires"], f["next"], f["asked"]),
                         cookie)
        # the PKCE verifier is derived from the state: its challenge went to Spotify
        challenge = self.fake.requests("authorize")[-1]["query"]["code_challenge"]
        self.assertEqual(s256(self.signer.pkce_verifier(f["state"])), challenge)
        self.assertFalse(CookieSigner(OTHER_SECRET_KEY).oauth_is_authentic(cookie))

    def test_login_cookie_of_the_first_format_still_finishes_the_login(self):
        # A login started before the upgrade: v1 under the old name. It is
        # read (never written), and cleared under the name it came by. (The
        # table refuses the ones that are not authentic.)
        b, cookie, code, state = self.begin()
        f = CookieSigner.parse_oauth(cookie)
        legacy = self.signer.sign_legacy_oauth(f["state"], f["expires"], "/account")
        resp = b.callback({"code": code, "state": state}, cookies={LEGACY_OAUTH_COOKIE: legacy})
        self.assertEqual(resp.status, 302, "%r%s" % (resp, self.stack_context()))
        self.assertEqual(resp.location, "/account")
        self.assertIn(SESSION_COOKIE, resp.set_cookies, resp)
        self.assertRegex(resp.set_cookies[SESSION_COOKIE].value, SESSION_VALUE_RE)
        self.assertTrue(resp.set_cookies[LEGACY_OAUTH_COOKIE].clears, resp)
        self.assertTrue(resp.set_cookies[OAUTH_COOKIE].clears, resp)
        self.assertEqual(len(self.users()), 1)
        self.assertEqual(b.get("/me").status, 200)

    def test_login_cookie_resigned_here_unexpired_logs_in(self):
        # The same state, signed by this test, not expired: baa accepts it,
        # so the table's "expired" 400 is for the expiry, not the signature.
        # Without what the login asked for, as logins signed before it was
        # carried: still read.
        b, cookie, code, state = self.begin()
        f = CookieSigner.parse_oauth(cookie)
        fresh = self.signer.sign_oauth(f["state"], int(time.time()) + 120, f["next"])
        self.assertNotEqual(fresh, cookie)
        self.assertLoginGoesThrough(b, code, state, fresh)

    def test_login_cookie_is_one_of_several_cookies(self):
        b, cookie, code, state = self.begin()
        resp = b.callback({"code": code, "state": state},
                          headers={"Cookie": "theme=dark; %s=%s; other=1" % (OAUTH_COOKIE, cookie)})
        self.assertEqual(resp.status, 302, resp)


class CallbackSpotifyErrorTest(SpotifyTestCase):
    """Spotify says no during /callback: a clear error, nothing stored.
    Spotify failing (5xx, timeouts, garbage, 429...) is test_faults.py's
    matrix."""

    def begin(self):
        return self.begin_login()

    def assertNothingStored(self, resp, what):
        self.assertNotIn(SESSION_COOKIE, resp.set_cookies, "%s: %r" % (what, resp))
        self.assertEqual(self.users(), [], what)

    def test_access_denied_at_spotify_is_403_and_clears_login_cookie(self):
        self.fake.configure(deny=True)
        b, params = self.begin()
        self.assertEqual(params.get("error"), "access_denied", params)
        self.assertNotIn("code", params)
        resp = b.callback(params)
        self.assertJsonError(resp, 403, "access_denied")
        cleared = resp.set_cookies.get(OAUTH_COOKIE)
        self.assertIsNotNone(cleared, resp)
        self.assertTrue(cleared.clears, cleared)
        self.assertEqual(cleared.max_age, 0, cleared)
        self.assertNothingStored(resp, "access_denied")
        self.assertEqual(self.fake.stats()["token"], 0)

    def test_other_error_from_spotify_is_400(self):
        b, params = self.begin()
        resp = b.callback({"error": "server_error", "state": params["state"]})
        self.assertJsonError(resp, 400, "error=server_error")
        self.assertTrue(resp.set_cookies.get(OAUTH_COOKIE) and resp.set_cookies[OAUTH_COOKIE].clears, resp)
        self.assertNothingStored(resp, "error=server_error")
        self.assertEqual(self.fake.stats()["token"], 0)

    def test_real_invalid_grant_for_an_unknown_code_is_502(self):
        b, params = self.begin()
        params = dict(params, code="AQ" + "x" * 40)
        resp = b.callback(params)
        self.assertJsonError(resp, 502, "unknown code")
        self.assertNothingStored(resp, "unknown code")
        reqs = self.fake.requests("token")
        self.assertEqual(len(reqs), 1, reqs)
        self.assertEqual(reqs[0]["status"], 400)

    def test_replayed_callback_is_refused_and_changes_nothing(self):
        b, params = self.begin()
        oauth = b.jar[OAUTH_COOKIE]
        resp = b.callback(params)
        self.assertEqual(resp.status, 302, resp)
        before = self.users()
        # an attacker replays the same callback with the (captured) login cookie
        replay = self.browser().callback(params, cookies={OAUTH_COOKIE: oauth})
        self.assertIn(replay.status, (400, 502), replay)
        self.assertNotIn(SESSION_COOKIE, replay.set_cookies, replay)
        self.assertEqual(self.users(), before)


class LoginScopesTest(SpotifyTestCase):
    """SPOTIFY_SCOPES, when set, is what /authorize is asked for."""

    workers = 1
    login_extra_env = {"SPOTIFY_SCOPES": "user-read-private user-read-email"}

    def test_configured_scopes_are_asked_for_and_stored(self):
        b, r = self.login()
        self.assertEqual(r.authorize_params.get("scope"), "user-read-private user-read-email",
                         r.authorize_params)
        self.assertEqual(sorted(self.user()["scope"].split()),
                         ["user-read-email", "user-read-private"])


class SessionTtlDefaultTest(SpotifyTestCase):
    """Without BAA_SESSION_TTL the session cookie lasts 30 days."""

    workers = 1

    def test_default_session_max_age_is_30_days(self):
        t0 = int(time.time())
        b, r = self.login()
        c = r.callback.set_cookies[SESSION_COOKIE]
        self.assertCookieAttributes(c, 2592000)
        exp = CookieSigner.parse_session(c.value)["expires"]
        self.assertTrue(t0 + 2592000 - 5 <= exp <= int(time.time()) + 2592000 + 5, exp)


if __name__ == "__main__":
    unittest.main()
