"""Tests of the fake Spotify server itself.

    /usr/bin/python3 -m unittest discover -s tests/fake_spotify -p 'test_*.py'

Each check the fake makes (as Spotify does) is tested both ways: bad input
is refused, good input accepted. Each fault mode and control call is tested.
"""

import base64
import hashlib
import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from client import (QUOTA_EXCEEDED, FakeSpotify, basic_auth,  # noqa: E402
                    code_from_location, default_account_id, location_params, pkce_pair)
import server  # noqa: E402

CLIENT_ID = "0123456789abcdef0123456789abcdef"
CLIENT_SECRET = "fedcba9876543210fedcba9876543210"
REDIRECT = "https://127.0.0.1:8443/callback"
REDIRECT2 = "http://127.0.0.1:9999/auth/callback?x=1"
SCOPE = "user-read-email user-read-private"
URLSAFE = re.compile(r"[A-Za-z0-9_-]+")


def expected_account_id(user_id):
    """The spec's rule, written out again so that a wrong rule in the fake fails."""
    return "acct-" + hashlib.sha256(user_id.encode("utf-8")).hexdigest()[:16]


class FakeTestCase(unittest.TestCase):
    """One fake per test class, reset before every test."""

    fake = None

    @classmethod
    def setUpClass(cls):
        cls.fake = FakeSpotify.start(CLIENT_ID, CLIENT_SECRET, [REDIRECT, REDIRECT2])

    @classmethod
    def tearDownClass(cls):
        cls.fake.stop()

    def setUp(self):
        self.fake.reset()

    # helpers

    def get_code(self, challenge=None, redirect_uri=REDIRECT, scope=SCOPE, state="s"):
        """Authorize; returns (code, verifier)."""
        verifier = None
        if challenge is None:
            verifier, challenge = pkce_pair()
        resp = self.fake.authorize(challenge, redirect_uri=redirect_uri, scope=scope, state=state)
        self.assertEqual(resp.status, 302, resp)
        return code_from_location(resp.headers["Location"]), verifier

    def exchange(self, code, verifier, redirect_uri=REDIRECT, **kw):
        form = {"grant_type": "authorization_code", "code": code,
                "redirect_uri": redirect_uri, "code_verifier": verifier}
        return self.fake.token(form, **kw)

    def refresh(self, refresh_token, **kw):
        form = {"grant_type": "refresh_token", "refresh_token": refresh_token}
        return self.fake.token(form, **kw)

    def assert_oauth_error(self, resp, status, error, description=None):
        self.assertEqual(resp.status, status, resp)
        self.assertEqual(resp.headers.get_content_type(), "application/json")
        body = resp.json()
        self.assertEqual(body["error"], error, body)
        if description is not None:
            self.assertEqual(body["error_description"], description)

    def assert_api_error(self, resp, status, message):
        self.assertEqual(resp.status, status, resp)
        self.assertEqual(resp.json(), {"error": {"status": status, "message": message}})

    def run_parallel(self, calls):
        results = [None] * len(calls)
        barrier = threading.Barrier(len(calls))

        def run(i):
            barrier.wait(5)
            try:
                results[i] = calls[i]()
            except Exception as e:  # noqa: BLE001 - reported through results
                results[i] = e

        threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        return results

    def assert_page_error(self, resp, text):
        self.assertEqual(resp.status, 400, resp)
        self.assertIsNone(resp.headers.get("Location"))
        self.assertEqual(resp.headers.get_content_type(), "text/html")
        self.assertIn(text, resp.text)


# ---------------------------------------------------------------------------


class AuthorizeTests(FakeTestCase):

    def test_valid_request_redirects_with_code_and_state(self):
        verifier, challenge = pkce_pair()
        state = "a b&c=d/é+%"
        resp = self.fake.authorize(challenge, scope=SCOPE, state=state)
        self.assertEqual(resp.status, 302)
        location = resp.headers["Location"]
        self.assertTrue(location.startswith(REDIRECT + "?code="), location)
        params = location_params(location)
        self.assertEqual(set(params), {"code", "state"})
        self.assertEqual(params["state"], state)
        self.assertGreater(len(params["code"]), 100)
        self.assertRegex(params["code"], URLSAFE)

    def test_codes_are_random(self):
        codes = {self.get_code()[0] for _ in range(5)}
        self.assertEqual(len(codes), 5)

    def test_no_state_means_no_state_in_redirect(self):
        _, challenge = pkce_pair()
        resp = self.fake.authorize(challenge)
        self.assertEqual(set(location_params(resp.headers["Location"])), {"code"})

    def test_second_redirect_uri_with_query_is_accepted_and_extended(self):
        _, challenge = pkce_pair()
        resp = self.fake.authorize(challenge, redirect_uri=REDIRECT2, state="z")
        self.assertEqual(resp.status, 302)
        location = resp.headers["Location"]
        self.assertTrue(location.startswith(REDIRECT2 + "&code="), location)
        self.assertEqual(location_params(location)["x"], "1")

    def test_unknown_or_missing_client_id(self):
        _, challenge = pkce_pair()
        self.assert_page_error(self.fake.authorize(challenge, client_id="nope"),
                               "INVALID_CLIENT: Invalid client")
        resp = self.fake.request("GET", "/authorize?response_type=code&redirect_uri="
                                 + urllib.parse.quote(REDIRECT))
        self.assert_page_error(resp, "Invalid client")

    def test_redirect_uri_must_match_exactly(self):
        _, challenge = pkce_pair()
        for bad in (REDIRECT + "/", REDIRECT.upper(), "https://127.0.0.1:8443/callback?x",
                    "https://evil.example/callback", "", None):
            with self.subTest(redirect_uri=bad):
                params = {"client_id": CLIENT_ID, "response_type": "code",
                          "code_challenge_method": "S256", "code_challenge": challenge}
                if bad is not None:
                    params["redirect_uri"] = bad
                resp = self.fake.request("GET", "/authorize?" + urllib.parse.urlencode(params))
                self.assert_page_error(resp, "INVALID_CLIENT: Invalid redirect URI")

    def test_response_type_must_be_code(self):
        _, challenge = pkce_pair()
        for bad in ("token", "", "CODE"):
            with self.subTest(response_type=bad):
                self.assert_page_error(self.fake.authorize(challenge, response_type=bad),
                                       "response_type must be code")

    def test_code_challenge_method_must_be_s256(self):
        _, challenge = pkce_pair()
        for bad in ("plain", "s256", "", None):
            with self.subTest(method=bad):
                resp = self.fake.authorize(challenge, code_challenge_method=bad)
                self.assert_page_error(resp, "code_challenge_method must be S256")

    def test_code_challenge_must_be_43_base64url_characters(self):
        _, good = pkce_pair()
        for bad in (good[:42], good + "A", good[:42] + "=", good[:42] + "+", good[:42] + "/"):
            with self.subTest(challenge=bad):
                self.assert_page_error(self.fake.authorize(bad), "code_challenge must be 43")
        self.assert_page_error(self.fake.authorize(None), "code_challenge required")
        self.assertEqual(self.fake.authorize(good).status, 302)

    def test_illegal_scope(self):
        _, challenge = pkce_pair()
        self.assert_page_error(self.fake.authorize(challenge, scope="user-read-email bogus"),
                               "Illegal scope")
        self.assertEqual(self.fake.authorize(challenge, scope="playlist-read-private").status, 302)

    def test_duplicate_parameter_is_refused(self):
        _, challenge = pkce_pair()
        query = urllib.parse.urlencode({
            "client_id": CLIENT_ID, "response_type": "code", "redirect_uri": REDIRECT,
            "code_challenge_method": "S256", "code_challenge": challenge, "state": "a"})
        resp = self.fake.request("GET", "/authorize?" + query + "&state=b")
        self.assert_page_error(resp, "Duplicate parameter: state")

    def test_deny_redirects_with_access_denied(self):
        self.fake.configure(deny=True)
        _, challenge = pkce_pair()
        resp = self.fake.authorize(challenge, state="st8")
        self.assertEqual(resp.status, 302)
        self.assertEqual(location_params(resp.headers["Location"]),
                         {"error": "access_denied", "state": "st8"})
        self.assertEqual(self.fake.tokens()["codes"], [])

    def test_distinct_users_logs_in_a_new_account_each_time(self):
        self.fake.configure(distinct_users=True)
        ids = [self.fake.me(self.fake.login()["access_token"]).json()["id"] for _ in range(2)]
        self.assertEqual(ids, ["demo-user-1", "demo-user-2"])
        self.assertEqual(self.fake.config()["user"]["id"], "demo-user")
        self.fake.reset()
        self.fake.configure(distinct_users=True)
        token = self.fake.login()["access_token"]
        self.assertEqual(self.fake.me(token).json()["id"], "demo-user-1")

    def test_deny_still_validates_first(self):
        self.fake.configure(deny=True)
        _, challenge = pkce_pair()
        self.assert_page_error(self.fake.authorize(challenge, client_id="x"), "Invalid client")

    def test_post_is_not_allowed(self):
        resp = self.fake.request("POST", "/authorize", body="", headers={})
        self.assertEqual(resp.status, 405)
        self.assertEqual(resp.headers["Allow"], "GET")


# ---------------------------------------------------------------------------


class TokenClientAuthTests(FakeTestCase):

    def test_basic_auth_accepted(self):
        code, verifier = self.get_code()
        self.assertEqual(self.exchange(code, verifier).status, 200)

    def test_form_credentials_accepted(self):
        code, verifier = self.get_code()
        resp = self.fake.token({"grant_type": "authorization_code", "code": code,
                                "redirect_uri": REDIRECT, "code_verifier": verifier,
                                "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET},
                               auth=False)
        self.assertEqual(resp.status, 200, resp)

    def test_missing_credentials_is_400_invalid_client(self):
        code, verifier = self.get_code()
        resp = self.exchange(code, verifier, auth=False)
        self.assert_oauth_error(resp, 400, "invalid_client", "Invalid client")
        self.assertIsNone(resp.headers.get("WWW-Authenticate"))

    def test_client_id_without_secret_is_refused_unless_public_clients_allowed(self):
        code, verifier = self.get_code()
        form = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT,
                "code_verifier": verifier, "client_id": CLIENT_ID}
        self.assert_oauth_error(self.fake.token(form, auth=False), 400, "invalid_client")
        self.fake.configure(allow_public_clients=True)
        self.assertEqual(self.fake.token(form, auth=False).status, 200)

    def test_wrong_secret_in_header_is_401(self):
        code, verifier = self.get_code()
        resp = self.exchange(code, verifier,
                             headers={"Authorization": basic_auth(CLIENT_ID, "wrong")})
        self.assert_oauth_error(resp, 401, "invalid_client", "Invalid client secret")
        self.assertTrue(resp.headers["WWW-Authenticate"].startswith("Basic "))
        # the failed attempt did not use up the code
        self.assertEqual(self.exchange(code, verifier).status, 200)

    def test_unknown_client_in_header_is_401(self):
        code, verifier = self.get_code()
        resp = self.exchange(code, verifier,
                             headers={"Authorization": basic_auth("other", CLIENT_SECRET)})
        self.assert_oauth_error(resp, 401, "invalid_client", "Invalid client")

    def test_malformed_authorization_header_is_401(self):
        code, verifier = self.get_code()
        good = basic_auth(CLIENT_ID, CLIENT_SECRET)
        no_colon = "Basic " + base64.b64encode(CLIENT_ID.encode()).decode()
        for bad in ("Bearer xyz", "Basic", "Basic !!!notbase64", no_colon, good[6:]):
            with self.subTest(header=bad):
                resp = self.exchange(code, verifier, headers={"Authorization": bad})
                self.assert_oauth_error(resp, 401, "invalid_client")

    def test_wrong_secret_in_form_is_400(self):
        code, verifier = self.get_code()
        resp = self.fake.token({"grant_type": "authorization_code", "code": code,
                                "redirect_uri": REDIRECT, "code_verifier": verifier,
                                "client_id": CLIENT_ID, "client_secret": "wrong"}, auth=False)
        self.assert_oauth_error(resp, 400, "invalid_client", "Invalid client secret")

    def test_header_and_form_credentials_must_agree(self):
        code, verifier = self.get_code()
        resp = self.fake.token({"grant_type": "authorization_code", "code": code,
                                "redirect_uri": REDIRECT, "code_verifier": verifier,
                                "client_id": "someone-else"})
        self.assert_oauth_error(resp, 401, "invalid_client")

    def test_refresh_needs_client_auth_too(self):
        tokens = self.fake.login()
        self.assert_oauth_error(self.refresh(tokens["refresh_token"], auth=False),
                                400, "invalid_client")
        resp = self.refresh(tokens["refresh_token"],
                            headers={"Authorization": basic_auth(CLIENT_ID, "x")})
        self.assert_oauth_error(resp, 401, "invalid_client")


class TokenRequestFormTests(FakeTestCase):

    def test_content_type_must_be_form(self):
        code, verifier = self.get_code()
        body = urllib.parse.urlencode({"grant_type": "authorization_code", "code": code,
                                       "redirect_uri": REDIRECT, "code_verifier": verifier})
        auth = basic_auth(CLIENT_ID, CLIENT_SECRET)
        for ctype in ("application/json", "text/plain", None):
            with self.subTest(content_type=ctype):
                headers = {"Authorization": auth}
                if ctype:
                    headers["Content-Type"] = ctype
                resp = self.fake.request("POST", "/api/token", body=body, headers=headers)
                self.assert_oauth_error(resp, 400, "invalid_request")
        headers = {"Authorization": auth,
                   "Content-Type": "application/x-www-form-urlencoded; charset=UTF-8"}
        self.assertEqual(self.fake.request("POST", "/api/token", body=body,
                                           headers=headers).status, 200)

    def test_grant_type_missing_or_unsupported(self):
        self.assert_oauth_error(self.fake.token({"code": "x"}), 400, "unsupported_grant_type",
                                "grant_type parameter is missing")
        for grant in ("client_credentials", "password", "implicit"):
            with self.subTest(grant_type=grant):
                self.assert_oauth_error(self.fake.token({"grant_type": grant}), 400,
                                        "unsupported_grant_type")

    def test_duplicate_parameter_is_refused(self):
        code, verifier = self.get_code()
        body = urllib.parse.urlencode([("grant_type", "authorization_code"), ("code", code),
                                       ("redirect_uri", REDIRECT), ("code_verifier", verifier),
                                       ("code", "other")])
        resp = self.fake.request("POST", "/api/token", body=body, headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "Authorization": basic_auth(CLIENT_ID, CLIENT_SECRET)})
        self.assert_oauth_error(resp, 400, "invalid_request", "Duplicate parameter: code")

    def test_get_is_not_allowed(self):
        resp = self.fake.request("GET", "/api/token")
        self.assertEqual(resp.status, 405)
        self.assertEqual(resp.headers["Allow"], "POST")

    def test_body_over_64_kib_is_413(self):
        auth = basic_auth(CLIENT_ID, CLIENT_SECRET)
        headers = {"Content-Type": "application/x-www-form-urlencoded", "Authorization": auth}
        resp = self.fake.request("POST", "/api/token", body="a=" + "x" * (64 * 1024 - 1),
                                 headers=headers)
        self.assertEqual(resp.status, 413)
        # exactly 64 KiB is read and judged normally
        resp = self.fake.request("POST", "/api/token", body="a=" + "x" * (64 * 1024 - 2),
                                 headers=headers)
        self.assert_oauth_error(resp, 400, "unsupported_grant_type")

    def test_chunked_body_is_refused(self):
        # One write for the whole request: http.client sends the chunks
        # separately, and a server answering before they arrive may close on
        # unread bytes, which resets the connection under the client's feet.
        body = b"c\r\ngrant_type=x\r\n0\r\n\r\n"
        request = (b"POST /api/token HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                   b"Content-Type: application/x-www-form-urlencoded\r\n"
                   b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n" + body)
        with socket.create_connection(("127.0.0.1", self.fake.port), timeout=5) as sock:
            sock.sendall(request)
            status_line = sock.makefile("rb").readline()
        self.assertEqual(status_line.split()[1], b"411", status_line)


class AuthorizationCodeGrantTests(FakeTestCase):

    def test_success_answer_has_spotify_shape(self):
        scope = "user-read-email  user-read-email playlist-read-private"
        code, verifier = self.get_code(scope=scope)
        resp = self.exchange(code, verifier)
        self.assertEqual(resp.status, 200, resp)
        self.assertEqual(resp.headers.get_content_type(), "application/json")
        self.assertEqual(resp.headers["Cache-Control"], "no-store")
        body = resp.json()
        self.assertEqual(set(body), {"access_token", "token_type", "scope", "expires_in",
                                     "refresh_token"})
        self.assertEqual(body["token_type"], "Bearer")
        self.assertEqual(body["expires_in"], 3600)
        self.assertEqual(body["scope"], "user-read-email playlist-read-private")
        self.assertEqual(len(body["access_token"]), 300)
        self.assertRegex(body["access_token"], URLSAFE)
        self.assertGreaterEqual(len(body["refresh_token"]), 131)
        self.assertRegex(body["refresh_token"], URLSAFE)

    def test_no_scope_gives_empty_scope(self):
        code, verifier = self.get_code(scope=None)
        self.assertEqual(self.exchange(code, verifier).json()["scope"], "")

    def test_dropped_scopes_are_not_granted(self):
        """Spotify may grant less than asked: the code, the token answers
        (refresh too) and /v1/me's fields follow what was granted."""
        self.fake.grant_fewer("user-read-email", "streaming")
        code, verifier = self.get_code(scope="user-read-email user-read-private "
                                             "playlist-read-private")
        body = self.exchange(code, verifier).json()
        self.assertEqual(body["scope"], "user-read-private playlist-read-private")
        me = self.fake.me(body["access_token"]).json()
        self.assertNotIn("email", me)
        refreshed = self.fake.token({"grant_type": "refresh_token",
                                     "refresh_token": body["refresh_token"]}).json()
        self.assertEqual(refreshed["scope"], "user-read-private playlist-read-private")
        self.fake.grant_fewer()
        code, verifier = self.get_code(scope="user-read-email")
        self.assertEqual(self.exchange(code, verifier).json()["scope"], "user-read-email")

    def test_drop_scopes_takes_only_spotify_scope_names(self):
        for bad in ("streaming", ["bogus"], [1], None):
            with self.assertRaises(Exception, msg=repr(bad)):
                self.fake.configure(drop_scopes=bad)
        self.assertEqual(self.fake.config()["drop_scopes"], [])
        self.fake.reset()
        self.assertEqual(self.fake.config()["drop_scopes"], [])

    def test_access_token_length_is_configurable(self):
        self.fake.configure(access_token_length=517)
        code, verifier = self.get_code()
        self.assertEqual(len(self.exchange(code, verifier).json()["access_token"]), 517)

    def test_unknown_or_missing_code(self):
        verifier, _ = pkce_pair()
        for code in ("AQnot-a-code", ""):
            with self.subTest(code=code):
                self.assert_oauth_error(self.exchange(code, verifier), 400, "invalid_grant",
                                        "Invalid authorization code")

    def test_code_is_single_use(self):
        code, verifier = self.get_code()
        first = self.exchange(code, verifier)
        self.assertEqual(first.status, 200)
        self.assert_oauth_error(self.exchange(code, verifier), 400, "invalid_grant",
                                "Invalid authorization code")
        # by default the tokens from the first use keep working
        self.assertEqual(self.fake.me(first.json()["access_token"]).status, 200)

    def test_code_reuse_revokes_its_tokens_when_configured(self):
        self.fake.configure(revoke_on_code_reuse=True, rotate_refresh_tokens=True)
        code, verifier = self.get_code()
        first = self.exchange(code, verifier).json()
        rotated = self.refresh(first["refresh_token"]).json()
        self.assert_oauth_error(self.exchange(code, verifier), 400, "invalid_grant")
        self.assert_api_error(self.fake.me(first["access_token"]), 401, "Invalid access token")
        self.assert_api_error(self.fake.me(rotated["access_token"]), 401, "Invalid access token")
        self.assert_oauth_error(self.refresh(rotated["refresh_token"]), 400, "invalid_grant",
                                "Refresh token revoked")

    def test_code_expires(self):
        self.fake.configure(code_lifetime=1)
        code, verifier = self.get_code()
        time.sleep(1.1)
        self.assert_oauth_error(self.exchange(code, verifier), 400, "invalid_grant",
                                "Authorization code expired")

    def test_default_code_lifetime_is_ten_minutes(self):
        self.assertEqual(self.fake.config()["code_lifetime"], 600)

    def test_redirect_uri_must_equal_the_authorize_one(self):
        code, verifier = self.get_code(redirect_uri=REDIRECT)
        for bad in (REDIRECT2, REDIRECT + "/", None):
            with self.subTest(redirect_uri=bad):
                form = {"grant_type": "authorization_code", "code": code,
                        "code_verifier": verifier}
                if bad is not None:
                    form["redirect_uri"] = bad
                self.assert_oauth_error(self.fake.token(form), 400, "invalid_grant",
                                        "Invalid redirect URI")
        self.assertEqual(self.exchange(code, verifier, redirect_uri=REDIRECT).status, 200)

    def test_second_redirect_uri_works_end_to_end(self):
        code, verifier = self.get_code(redirect_uri=REDIRECT2)
        self.assertEqual(self.exchange(code, verifier, redirect_uri=REDIRECT2).status, 200)

    def test_code_verifier_must_match_challenge(self):
        code, verifier = self.get_code()
        other, _ = pkce_pair()
        for bad in (other, verifier[:-1], verifier + "a", None):
            with self.subTest(verifier=bad):
                form = {"grant_type": "authorization_code", "code": code,
                        "redirect_uri": REDIRECT}
                if bad is not None:
                    form["code_verifier"] = bad
                self.assert_oauth_error(self.fake.token(form), 400, "invalid_grant",
                                        "code_verifier was incorrect")
        self.assertEqual(self.exchange(code, verifier).status, 200)

    def test_code_verifier_length_and_alphabet(self):
        """A verifier whose hash matches is still refused outside RFC 7636's rules."""
        for verifier, ok in (("a" * 42, False), ("a" * 43, True), ("A1-._~" * 21 + "xy", True),
                             ("b" * 129, False), ("c" * 50 + "+", False),
                             ("d" * 50 + "=", False), ("e" * 50 + " ", False)):
            with self.subTest(verifier=verifier, ok=ok):
                code, _ = self.get_code(challenge=server.s256(verifier))
                resp = self.exchange(code, verifier)
                if ok:
                    self.assertEqual(resp.status, 200, resp)
                else:
                    self.assert_oauth_error(resp, 400, "invalid_grant",
                                            "code_verifier was incorrect")

    def test_failed_exchange_does_not_use_up_the_code(self):
        code, verifier = self.get_code()
        self.assertEqual(self.exchange(code, "x" * 43).status, 400)
        self.assertEqual(self.exchange(code, verifier, redirect_uri=REDIRECT2).status, 400)
        self.assertEqual(self.exchange(code, verifier).status, 200)


class RefreshTokenGrantTests(FakeTestCase):

    def test_refresh_without_rotation(self):
        tokens = self.fake.login()
        resp = self.refresh(tokens["refresh_token"])
        self.assertEqual(resp.status, 200)
        body = resp.json()
        self.assertEqual(set(body), {"access_token", "token_type", "scope", "expires_in"})
        self.assertEqual(body["token_type"], "Bearer")
        self.assertEqual(body["expires_in"], 3600)
        self.assertEqual(body["scope"], tokens["scope"])
        self.assertNotEqual(body["access_token"], tokens["access_token"])
        self.assertEqual(len(body["access_token"]), 300)
        # the new and the old access token both work; the refresh token stays valid
        self.assertEqual(self.fake.me(body["access_token"]).status, 200)
        self.assertEqual(self.fake.me(tokens["access_token"]).status, 200)
        self.assertEqual(self.refresh(tokens["refresh_token"]).status, 200)

    def test_refresh_with_rotation(self):
        self.fake.configure(rotate_refresh_tokens=True)
        tokens = self.fake.login()
        body = self.refresh(tokens["refresh_token"]).json()
        self.assertIn("refresh_token", body)
        self.assertNotEqual(body["refresh_token"], tokens["refresh_token"])
        self.assertGreaterEqual(len(body["refresh_token"]), 131)
        self.assert_oauth_error(self.refresh(tokens["refresh_token"]), 400, "invalid_grant",
                                "Refresh token revoked")
        self.assertEqual(self.refresh(body["refresh_token"]).status, 200)

    def test_unknown_and_missing_refresh_token(self):
        self.assert_oauth_error(self.refresh("AQunknown"), 400, "invalid_grant",
                                "Invalid refresh token")
        self.assert_oauth_error(self.fake.token({"grant_type": "refresh_token"}), 400,
                                "invalid_request", "refresh_token must be supplied")

    def test_access_token_is_not_a_refresh_token(self):
        tokens = self.fake.login()
        self.assert_oauth_error(self.refresh(tokens["access_token"]), 400, "invalid_grant")

    def test_revoke_refresh_tokens(self):
        tokens = self.fake.login()
        self.assertEqual(self.fake.revoke_refresh_tokens()["revoked"], 1)
        self.assert_oauth_error(self.refresh(tokens["refresh_token"]), 400, "invalid_grant",
                                "Refresh token revoked")
        # access tokens keep working until they expire
        self.assertEqual(self.fake.me(tokens["access_token"]).status, 200)
        # a new login gets a working refresh token
        self.assertEqual(self.refresh(self.fake.login()["refresh_token"]).status, 200)

    def test_invalid_grant_on_refresh(self):
        tokens = self.fake.login()
        self.fake.configure(invalid_grant_on_refresh=True)
        self.assert_oauth_error(self.refresh(tokens["refresh_token"]), 400, "invalid_grant",
                                "Refresh token revoked")
        # the code exchange is not affected
        code, verifier = self.get_code()
        self.assertEqual(self.exchange(code, verifier).status, 200)
        self.fake.configure(invalid_grant_on_refresh=False)
        self.assertEqual(self.refresh(tokens["refresh_token"]).status, 200)

    def test_invalid_grant_on_the_next_n_refreshes(self):
        tokens = self.fake.login()
        self.fake.fail_refreshes(2)
        self.assert_oauth_error(self.refresh(tokens["refresh_token"]), 400, "invalid_grant",
                                "Refresh token revoked")
        self.assertEqual(self.fake.config()["invalid_grant_on_refresh"], 1)
        self.assert_oauth_error(self.refresh(tokens["refresh_token"]), 400, "invalid_grant")
        self.assertIs(self.fake.config()["invalid_grant_on_refresh"], False)
        # then normal again: the refresh token was never revoked
        self.assertEqual(self.refresh(tokens["refresh_token"]).status, 200)
        self.assertEqual(self.refresh(tokens["refresh_token"]).status, 200)

    def test_invalid_grant_on_refresh_true_lasts_and_zero_is_false(self):
        tokens = self.fake.login()
        self.fake.fail_refreshes(True)
        for _ in range(3):
            self.assertEqual(self.refresh(tokens["refresh_token"]).status, 400)
        self.assertIs(self.fake.config()["invalid_grant_on_refresh"], True)
        self.fake.fail_refreshes(0)
        self.assertIs(self.fake.config()["invalid_grant_on_refresh"], False)
        self.assertEqual(self.refresh(tokens["refresh_token"]).status, 200)

    def test_invalid_grant_on_refresh_validation(self):
        for bad in (-1, "2", 1.5, None, 10 ** 7):
            with self.subTest(value=bad):
                resp = self.fake.request("POST", "/_fake/config",
                                         body=json.dumps({"invalid_grant_on_refresh": bad}))
                self.assertEqual(resp.status, 400, resp)
        self.assertIs(self.fake.config()["invalid_grant_on_refresh"], False)

    def test_expires_in_is_configurable(self):
        self.fake.configure(expires_in=2)
        tokens = self.fake.login()
        self.assertEqual(tokens["expires_in"], 2)
        self.assertEqual(self.refresh(tokens["refresh_token"]).json()["expires_in"], 2)


class GrantLifetimeTests(FakeTestCase):
    """Refresh tokens live 6 months from the authorization; a refresh does not extend it."""

    SIX_MONTHS = 15552000

    def assert_expired(self, refresh_token):
        self.assert_oauth_error(self.refresh(refresh_token), 400, "invalid_grant",
                                "Refresh token expired")

    def test_default_lifetime_is_180_days(self):
        self.assertEqual(self.fake.config()["refresh_token_lifetime"], self.SIX_MONTHS)
        tokens = self.fake.login()
        self.fake.age_grants(self.SIX_MONTHS - 60)
        self.assertEqual(self.refresh(tokens["refresh_token"]).status, 200)
        self.fake.age_grants(60)
        self.assert_expired(tokens["refresh_token"])

    def test_refreshing_does_not_extend_the_grant(self):
        self.fake.configure(rotate_refresh_tokens=True, refresh_token_lifetime=1000)
        refresh_token = self.fake.login()["refresh_token"]
        for _ in range(3):
            self.fake.age_grants(300)
            body = self.refresh(refresh_token).json()
            refresh_token = body["refresh_token"]
        self.fake.age_grants(100)  # 1000 s after the login, 100 after the last rotation
        self.assert_expired(refresh_token)

    def test_access_tokens_are_not_cut_short_by_the_grant(self):
        tokens = self.fake.login()
        self.fake.age_grants(self.SIX_MONTHS)
        self.assert_expired(tokens["refresh_token"])
        self.assertEqual(self.fake.me(tokens["access_token"]).status, 200)

    def test_a_new_authorization_starts_a_new_grant(self):
        self.fake.configure(refresh_token_lifetime=1000)
        old = self.fake.login()["refresh_token"]
        self.fake.age_grants(990)
        new = self.fake.login()["refresh_token"]
        self.fake.age_grants(20)
        self.assert_expired(old)
        self.assertEqual(self.refresh(new).status, 200)

    def test_the_grant_starts_at_the_code_exchange_not_at_authorize(self):
        self.fake.configure(refresh_token_lifetime=1)
        code, verifier = self.get_code()
        time.sleep(1.1)
        refresh_token = self.exchange(code, verifier).json()["refresh_token"]
        self.assertEqual(self.refresh(refresh_token).status, 200)

    def test_a_shorter_lifetime_applies_to_grants_already_made(self):
        tokens = self.fake.login()
        self.fake.age_grants(100)
        self.fake.configure(refresh_token_lifetime=100)
        self.assert_expired(tokens["refresh_token"])
        self.fake.configure(refresh_token_lifetime=101)
        self.assertEqual(self.refresh(tokens["refresh_token"]).status, 200)

    def test_tokens_snapshot_shows_the_grant(self):
        self.fake.configure(refresh_token_lifetime=1000)
        self.fake.login()
        self.fake.age_grants(400)
        entry = self.fake.tokens()["refresh_tokens"][0]
        self.assertIn(entry["grant_expires_in"], (599, 600))
        self.assertFalse(entry["expired"])
        self.fake.age_grants(600)
        entry = self.fake.tokens()["refresh_tokens"][0]
        self.assertEqual((entry["grant_expires_in"], entry["expired"]), (0, True))

    def test_age_grants_counts_grants_not_tokens(self):
        self.fake.configure(rotate_refresh_tokens=True)
        first = self.fake.login()
        self.refresh(first["refresh_token"])
        self.fake.login()
        self.assertEqual(self.fake.age_grants(0), {"ok": True, "aged": 2})

    def test_age_grants_validation(self):
        for bad in ({"seconds": -1}, {"seconds": "5"}, {}, {"seconds": 1, "x": 2}, [5],
                    {"seconds": 10 ** 11}):
            with self.subTest(body=bad):
                resp = self.fake.request("POST", "/_fake/age_grants", body=json.dumps(bad))
                self.assertEqual(resp.status, 400, resp)
        self.assertEqual(self.fake.request("GET", "/_fake/age_grants").status, 405)
        for bad in (-1, "5", 10 ** 11):
            with self.subTest(refresh_token_lifetime=bad):
                resp = self.fake.request("POST", "/_fake/config",
                                         body=json.dumps({"refresh_token_lifetime": bad}))
                self.assertEqual(resp.status, 400, resp)


# ---------------------------------------------------------------------------


class MeTests(FakeTestCase):

    def test_profile(self):
        tokens = self.fake.login(scope="user-read-email user-read-private")
        resp = self.fake.me(tokens["access_token"])
        self.assertEqual(resp.status, 200)
        self.assertEqual(resp.json(), {
            "account_id": expected_account_id("demo-user"),
            "country": "SE", "display_name": "Demo User", "email": "demo-user@example.com",
            "explicit_content": {"filter_enabled": False, "filter_locked": False},
            "external_urls": {"spotify": "https://open.spotify.com/user/demo-user"},
            "followers": {"href": None, "total": 0},
            "href": "https://api.spotify.com/v1/users/demo-user", "id": "demo-user",
            "images": [], "product": "premium", "type": "user", "uri": "spotify:user:demo-user",
        })

    def test_email_and_private_fields_need_their_scopes(self):
        body = self.fake.me(self.fake.login(scope="")["access_token"]).json()
        self.assertEqual(body["id"], "demo-user")
        for field in ("email", "country", "product", "explicit_content"):
            self.assertNotIn(field, body)
        body = self.fake.me(self.fake.login(scope="user-read-email")["access_token"]).json()
        self.assertIn("email", body)
        self.assertNotIn("country", body)

    def test_missing_token(self):
        resp = self.fake.request("GET", "/v1/me")
        self.assert_api_error(resp, 401, "No token provided")
        self.assertTrue(resp.headers["WWW-Authenticate"].startswith("Bearer"))

    def test_unknown_token(self):
        self.assert_api_error(self.fake.me("BQ" + "x" * 298), 401, "Invalid access token")
        tokens = self.fake.login()
        self.assert_api_error(self.fake.me(tokens["refresh_token"]), 401, "Invalid access token")
        self.assert_api_error(self.fake.me(tokens["access_token"][:-1]), 401,
                              "Invalid access token")

    def test_not_bearer(self):
        resp = self.fake.request("GET", "/v1/me", headers={
            "Authorization": basic_auth(CLIENT_ID, CLIENT_SECRET)})
        self.assert_api_error(resp, 400, "Only valid bearer authentication supported")

    def test_token_expires(self):
        self.fake.configure(expires_in=1)
        tokens = self.fake.login()
        self.assertEqual(self.fake.me(tokens["access_token"]).status, 200)
        time.sleep(1.1)
        self.assert_api_error(self.fake.me(tokens["access_token"]), 401,
                              "The access token expired")
        # refreshing gives a working token again
        fresh = self.refresh(tokens["refresh_token"]).json()["access_token"]
        self.assertEqual(self.fake.me(fresh).status, 200)

    def test_zero_expires_in_is_expired_at_once(self):
        self.fake.configure(expires_in=0)
        tokens = self.fake.login()
        self.assert_api_error(self.fake.me(tokens["access_token"]), 401,
                              "The access token expired")

    def test_expire_access_tokens(self):
        tokens = self.fake.login()
        self.assertEqual(self.fake.expire_access_tokens()["expired"], 1)
        self.assert_api_error(self.fake.me(tokens["access_token"]), 401,
                              "The access token expired")
        # tokens issued afterwards are fine
        self.assertEqual(self.fake.me(self.fake.login()["access_token"]).status, 200)

    def test_set_user_changes_who_the_next_login_is(self):
        first = self.fake.login()["access_token"]
        self.fake.set_user("alice", "Alice Andersson", email="alice@example.org")
        second = self.fake.login()["access_token"]
        body = self.fake.me(second).json()
        self.assertEqual((body["id"], body["display_name"], body["email"], body["uri"]),
                         ("alice", "Alice Andersson", "alice@example.org", "spotify:user:alice"))
        self.assertEqual(self.fake.me(first).json()["id"], "demo-user")
        self.fake.set_user("bob")
        self.assertEqual(self.fake.me(self.fake.login()["access_token"]).json()["display_name"],
                         "bob")

    def test_post_is_not_allowed_and_unknown_paths_are_404(self):
        resp = self.fake.request("POST", "/v1/me", body="")
        self.assert_api_error(resp, 405, "Method not allowed")
        self.assert_api_error(self.fake.request("GET", "/v1/nothing"), 404, "Service not found")


# ---------------------------------------------------------------------------


class AccountTests(FakeTestCase):
    """account_id: public, immutable; id may change (Spotify's May 2026 changelog)."""

    def me_of(self, access_token):
        resp = self.fake.me(access_token)
        self.assertEqual(resp.status, 200, resp)
        return resp.json()

    def test_default_account_id_is_derived_from_id(self):
        self.assertEqual(default_account_id("alice"), expected_account_id("alice"))
        self.assertEqual(self.fake.config()["user"]["account_id"], expected_account_id("demo-user"))
        self.fake.set_user("alice")
        body = self.me_of(self.fake.login()["access_token"])
        self.assertEqual((body["id"], body["account_id"]), ("alice", expected_account_id("alice")))

    def test_account_id_is_shown_without_any_scope(self):
        body = self.me_of(self.fake.login(scope="")["access_token"])
        self.assertEqual(body["account_id"], expected_account_id("demo-user"))

    def test_switching_id_alone_is_another_account(self):
        self.fake.set_user("alice")
        alice = self.fake.login()["access_token"]
        self.fake.set_user("bob")
        bob = self.fake.login()["access_token"]
        self.assertNotEqual(self.me_of(alice)["account_id"], self.me_of(bob)["account_id"])
        self.assertEqual(sorted(a["id"] for a in self.fake.accounts()),
                         ["alice", "bob", "demo-user"])

    def test_explicit_account_id(self):
        self.fake.set_user("alice", account_id="acct-explicit")
        body = self.me_of(self.fake.login()["access_token"])
        self.assertEqual((body["id"], body["account_id"]), ("alice", "acct-explicit"))
        self.assertEqual(self.fake.config()["user"]["account_id"], "acct-explicit")

    def test_configuring_an_existing_account_id_with_a_new_id_renames_it(self):
        self.fake.set_user("alice", "Alice", email="alice@example.org")
        account_id = expected_account_id("alice")
        before = self.fake.login()["access_token"]
        self.fake.configure(user={"account_id": account_id, "id": "alice-2"})
        after = self.fake.login()["access_token"]
        for token in (before, after):
            body = self.me_of(token)
            self.assertEqual((body["id"], body["account_id"], body["uri"]),
                             ("alice-2", account_id, "spotify:user:alice-2"))
            # a rename changes the id only: the fields not given are kept
            self.assertEqual((body["display_name"], body["email"]), ("Alice", "alice@example.org"))
        self.assertEqual(sorted(a["id"] for a in self.fake.accounts()), ["alice-2", "demo-user"])
        self.assertEqual(self.fake.tokens()["access_tokens"][0]["user_id"], "alice-2")

    def test_rename_user_does_not_change_who_logs_in_next(self):
        self.fake.set_user("alice")
        alice = self.fake.login()["access_token"]
        self.fake.set_user("bob")
        record = self.fake.rename_user(expected_account_id("alice"), "alice-new")
        self.assertEqual((record["id"], record["account_id"]),
                         ("alice-new", expected_account_id("alice")))
        self.assertEqual(self.me_of(alice)["id"], "alice-new")
        self.assertEqual(self.fake.config()["user"]["id"], "bob")
        self.assertEqual(self.me_of(self.fake.login()["access_token"])["id"], "bob")

    def test_renaming_the_current_account_shows_in_config(self):
        self.fake.rename_user(expected_account_id("demo-user"), "demo-renamed")
        self.assertEqual(self.fake.config()["user"]["id"], "demo-renamed")
        self.assertEqual(self.me_of(self.fake.login()["access_token"])["account_id"],
                         expected_account_id("demo-user"))

    def test_rename_user_of_an_unknown_account_creates_it(self):
        record = self.fake.rename_user("acct-new", "newcomer", display_name="N")
        self.assertEqual(record, {"account_id": "acct-new", "id": "newcomer", "display_name": "N",
                                  "email": "newcomer@example.com", "country": "SE",
                                  "product": "premium"})

    def test_two_accounts_may_share_an_id(self):
        self.fake.set_user("shared", account_id="acct-one")
        one = self.fake.login()["access_token"]
        self.fake.set_user("shared", account_id="acct-two")
        two = self.fake.login()["access_token"]
        self.assertEqual((self.me_of(one)["account_id"], self.me_of(two)["account_id"]),
                         ("acct-one", "acct-two"))

    def test_setting_the_same_user_again_keeps_its_profile(self):
        self.fake.set_user("alice", email="a@example.org")
        self.fake.set_user("bob")
        self.fake.set_user("alice")
        self.assertEqual(self.fake.config()["user"]["email"], "a@example.org")

    def test_omit_account_id(self):
        tokens = self.fake.login()
        self.fake.configure(omit_account_id=True)
        body = self.me_of(tokens["access_token"])
        self.assertNotIn("account_id", body)
        self.assertEqual(body["id"], "demo-user")
        self.fake.configure(omit_account_id=False)
        self.assertIn("account_id", self.me_of(tokens["access_token"]))

    def test_reset_forgets_accounts(self):
        self.fake.set_user("alice", account_id="acct-a")
        self.fake.reset()
        self.assertEqual([a["id"] for a in self.fake.accounts()], ["demo-user"])
        self.assertEqual(self.fake.config()["user"]["account_id"], expected_account_id("demo-user"))

    def test_bad_accounts_are_refused_and_change_nothing(self):
        for bad in ({"id": "x", "account_id": ""}, {"id": "x", "account_id": 5},
                    {"id": "x", "account_id": "a" * 257}, {"account_id": "acct-x"},
                    {"id": ""}, {"id": "x", "nickname": "y"}, [1]):
            with self.subTest(user=bad):
                for path, body in (("/_fake/config", {"user": bad}), ("/_fake/accounts", bad)):
                    resp = self.fake.request("POST", path, body=json.dumps(body))
                    self.assertEqual(resp.status, 400, resp)
        # a bad setting beside a good user changes neither
        resp = self.fake.request("POST", "/_fake/config",
                                 body=json.dumps({"user": {"id": "x"}, "expires_in": "5"}))
        self.assertEqual(resp.status, 400)
        self.assertEqual(self.fake.config()["user"]["id"], "demo-user")
        self.assertEqual(len(self.fake.accounts()), 1)


# ---------------------------------------------------------------------------


NOT_REGISTERED = {"error": {"status": 403, "message": "Check settings on "
                            "developer.spotify.com/dashboard, the user may not be registered."}}
FULL_SCOPE = "user-read-email user-read-private"


class DevelopmentModeTests(FakeTestCase):
    """Spotify's development mode as of the February 2026 migration guide."""

    def me_as(self, user_id, scope=FULL_SCOPE):
        self.fake.set_user(user_id)
        return self.fake.me(self.fake.login(scope=scope)["access_token"])

    def test_off_by_default(self):
        config = self.fake.config()
        self.assertEqual((config["development_mode"], config["allowed_users"]), (False, None))
        body = self.me_as("alice").json()
        for field in ("country", "email", "explicit_content", "followers", "product"):
            self.assertIn(field, body)

    def test_hides_the_five_fields_whatever_the_scopes(self):
        self.fake.set_development_mode()
        resp = self.me_as("alice")
        self.assertEqual(resp.status, 200, resp)
        self.assertEqual(resp.json(), {
            "account_id": expected_account_id("alice"), "display_name": "alice",
            "external_urls": {"spotify": "https://open.spotify.com/user/alice"},
            "href": "https://api.spotify.com/v1/users/alice", "id": "alice", "images": [],
            "type": "user", "uri": "spotify:user:alice"})

    def test_user_not_on_the_list_passes_consent_then_gets_403(self):
        self.fake.set_development_mode(allowed_users=["someone-else"])
        self.fake.set_user("outsider")
        verifier, challenge = pkce_pair()
        resp = self.fake.authorize(challenge, scope=FULL_SCOPE)
        self.assertEqual(resp.status, 302)
        code = code_from_location(resp.headers["Location"])
        tokens = self.exchange(code, verifier)
        self.assertEqual(tokens.status, 200, tokens)
        resp = self.fake.me(tokens.json()["access_token"])
        self.assertEqual(resp.status, 403)
        self.assertEqual(resp.headers.get_content_type(), "application/json")
        self.assertEqual(resp.json(), NOT_REGISTERED)
        # the refresh token works: only the Web API refuses
        self.assertEqual(self.refresh(tokens.json()["refresh_token"]).status, 200)

    def test_list_names_users_by_id_or_account_id(self):
        self.fake.set_development_mode(allowed_users=["alice", expected_account_id("bob")])
        self.assertEqual(self.me_as("alice").status, 200)
        self.assertEqual(self.me_as("bob").status, 200)
        self.assertEqual(self.me_as("carol").json(), NOT_REGISTERED)

    def test_a_renamed_user_listed_by_id_is_refused_by_account_id_still_admitted(self):
        self.fake.set_user("alice")
        alice = self.fake.login()["access_token"]
        self.fake.set_user("bob")
        bob = self.fake.login()["access_token"]
        self.fake.set_development_mode(allowed_users=["alice", expected_account_id("bob")])
        self.fake.rename_user(expected_account_id("alice"), "alice-2")
        self.fake.rename_user(expected_account_id("bob"), "bob-2")
        self.assertEqual(self.fake.me(alice).status, 403)
        self.assertEqual(self.fake.me(bob).json()["id"], "bob-2")

    def test_null_list_admits_everyone(self):
        self.fake.set_development_mode(allowed_users=None)
        self.assertEqual(self.me_as("anyone").status, 200)

    def test_list_does_not_count_outside_development_mode(self):
        self.fake.configure(allowed_users=["alice"])
        self.assertEqual(self.me_as("carol").status, 200)
        self.fake.configure(development_mode=True)
        self.assertEqual(self.me_as("carol").status, 403)

    def test_a_bad_token_is_401_before_the_list_is_looked_at(self):
        self.fake.set_development_mode(allowed_users=["someone-else"])
        self.assert_api_error(self.fake.me("BQ" + "x" * 50), 401, "Invalid access token")

    def test_bad_allowed_users_are_refused(self):
        for bad in ("alice", [1], [""], ["a" * 257], ["x"] * 101, {"alice": True}):
            with self.subTest(allowed_users=bad):
                resp = self.fake.request("POST", "/_fake/config",
                                         body=json.dumps({"allowed_users": bad}))
                self.assertEqual(resp.status, 400, resp)
        self.assertEqual(self.fake.request("POST", "/_fake/config", body=json.dumps(
            {"development_mode": "yes"})).status, 400)
        self.assertIsNone(self.fake.config()["allowed_users"])


# ---------------------------------------------------------------------------


class FaultTests(FakeTestCase):

    def test_token_status_fault_does_not_consume_the_code(self):
        self.fake.set_fault("token", status=503)
        code, verifier = self.get_code()
        for _ in range(2):
            resp = self.exchange(code, verifier)
            self.assertEqual(resp.status, 503)
            self.assertEqual(resp.json()["error"], "server_error")
        self.fake.set_fault("token")  # off
        self.assertEqual(self.exchange(code, verifier).status, 200)

    def test_token_500(self):
        self.fake.set_fault("token", status=500)
        self.assert_oauth_error(self.fake.token({"grant_type": "refresh_token"}), 500,
                                "server_error")

    def test_times(self):
        self.fake.set_fault("token", status=500, times=2)
        code, verifier = self.get_code()
        self.assertEqual(self.exchange(code, verifier).status, 500)
        self.assertEqual(self.fake.config()["faults"]["token"]["times"], 1)
        self.assertEqual(self.exchange(code, verifier).status, 500)
        self.assertIsNone(self.fake.config()["faults"]["token"])
        self.assertEqual(self.exchange(code, verifier).status, 200)

    def test_grant_type_filter(self):
        self.fake.set_fault("token", status=503, grant_type="refresh_token")
        tokens = self.fake.login()  # authorization_code is not faulted
        self.assertEqual(self.refresh(tokens["refresh_token"]).status, 503)

    def test_429_with_retry_after(self):
        self.fake.set_fault("token", status=429, retry_after=7)
        resp = self.fake.token({"grant_type": "refresh_token", "refresh_token": "x"})
        self.assertEqual(resp.status, 429)
        self.assertEqual(resp.headers["Retry-After"], "7")
        self.fake.set_fault("me", status=429, retry_after=3)
        resp = self.fake.me("x")
        self.assert_api_error(resp, 429, "API rate limit exceeded")
        self.assertEqual(resp.headers["Retry-After"], "3")

    def test_raw_body_and_content_type(self):
        self.fake.set_fault("token", body="not json", content_type="text/plain")
        resp = self.fake.token({"grant_type": "refresh_token", "refresh_token": "x"})
        self.assertEqual((resp.status, resp.body, resp.headers["Content-Type"]),
                         (200, b"not json", "text/plain"))
        self.fake.set_fault("token", body='{"access_token": 5}')
        resp = self.fake.token({"grant_type": "refresh_token", "refresh_token": "x"})
        self.assertEqual((resp.status, resp.json(), resp.headers["Content-Type"]),
                         (200, {"access_token": 5}, "application/json"))
        self.fake.set_fault("me", status=502, body="<html>bad gateway</html>",
                            content_type="text/html")
        resp = self.fake.me("x")
        self.assertEqual((resp.status, resp.body), (502, b"<html>bad gateway</html>"))

    def test_close_without_answer(self):
        self.fake.set_fault("token", close=True, times=1)
        code, verifier = self.get_code()
        with self.assertRaises((http.client.RemoteDisconnected, ConnectionError)):
            self.exchange(code, verifier)
        # not processed: the code still works
        self.assertEqual(self.exchange(code, verifier).status, 200)
        entries = self.fake.requests("token")
        self.assertIsNone(entries[0]["status"])
        self.assertTrue(entries[0]["fault"])
        self.assertEqual(entries[1]["status"], 200)
        self.assertIn("POST /api/token closed", self.fake.log_text())

    def test_process_then_close_loses_the_answer(self):
        """The fake does the work (code used, tokens issued) and then drops the answer."""
        self.fake.set_fault("token", close=True, process=True, times=1)
        code, verifier = self.get_code()
        with self.assertRaises((http.client.RemoteDisconnected, ConnectionError)):
            self.exchange(code, verifier)
        self.assert_oauth_error(self.exchange(code, verifier), 400, "invalid_grant")
        self.assertEqual(len(self.fake.tokens()["access_tokens"]), 1)

    def test_process_with_rotation_and_500(self):
        self.fake.configure(rotate_refresh_tokens=True)
        tokens = self.fake.login()
        self.fake.set_fault("token", status=500, process=True, times=1)
        self.assertEqual(self.refresh(tokens["refresh_token"]).status, 500)
        # the old refresh token was rotated away although baa never saw the new one
        self.assert_oauth_error(self.refresh(tokens["refresh_token"]), 400, "invalid_grant")

    def test_delay_applies_to_normal_answers(self):
        self.fake.set_fault("me", delay_ms=300)
        tokens = self.fake.login()
        start = time.monotonic()
        resp = self.fake.me(tokens["access_token"])
        self.assertGreaterEqual(time.monotonic() - start, 0.29)
        self.assertEqual(resp.status, 200)

    def test_delay_longer_than_client_timeout(self):
        self.fake.set_fault("token", delay_ms=1500, times=1)
        with self.assertRaises(socket.timeout):
            self.fake.request("POST", "/api/token", body="",
                              headers={"Content-Type": "application/x-www-form-urlencoded"},
                              timeout=0.3)

    def test_delay_does_not_block_other_requests(self):
        self.fake.set_fault("authorize", delay_ms=1000, times=1)
        _, challenge = pkce_pair()
        thread = threading.Thread(target=self.fake.authorize, args=(challenge,))
        thread.start()
        time.sleep(0.1)
        start = time.monotonic()
        self.assertEqual(self.fake.stats()["authorize"], 1)
        self.assertEqual(self.fake.me("x").status, 401)
        self.assertLess(time.monotonic() - start, 0.5)
        thread.join(5)

    def test_me_500(self):
        self.fake.set_fault("me", status=500)
        self.assert_api_error(self.fake.me(self.fake.login()["access_token"]), 500,
                              "Internal Server Error")

    def test_authorize_503(self):
        self.fake.set_fault("authorize", status=503, times=1)
        _, challenge = pkce_pair()
        resp = self.fake.authorize(challenge)
        self.assertEqual(resp.status, 503)
        self.assertEqual(resp.headers.get_content_type(), "text/html")
        self.assertIsNone(resp.headers.get("Location"))
        self.assertEqual(self.fake.authorize(challenge).status, 302)

    def test_invalid_fault_configs_are_refused(self):
        for faults in ({"tokens": {"status": 500}}, {"token": {"stauts": 500}},
                       {"token": {"status": "500"}}, {"token": {"status": 999}},
                       {"token": {"times": 0}}, {"token": {"close": 1}},
                       {"me": {"grant_type": "refresh_token"}}, {"token": [500]},
                       {"token": {"delay_ms": -1}}):
            with self.subTest(faults=faults):
                resp = self.fake.request("POST", "/_fake/config",
                                         body=json.dumps({"faults": faults}))
                self.assertEqual(resp.status, 400, resp)
        self.assertEqual(self.fake.config()["faults"],
                         {"authorize": None, "token": None, "me": None})

    def test_faults_merge_per_endpoint(self):
        self.fake.set_fault("token", status=500)
        self.fake.set_fault("me", status=503)
        faults = self.fake.config()["faults"]
        self.assertEqual((faults["token"], faults["me"]), ({"status": 500}, {"status": 503}))
        self.fake.clear_faults()
        self.assertEqual(self.fake.config()["faults"],
                         {"authorize": None, "token": None, "me": None})


QUOTA_BODY = b'{"error":{"status":429,"message":"Too many requests","reason":"QUOTA_EXCEEDED"}}'
SHORT_TERM_BODY = b'{"error":{"status":429,"message":"API rate limit exceeded"}}'


class RateLimitTests(FakeTestCase):
    """429s: the quota (July 2026 changelog), the short-term limit, the rolling window."""

    def some_refresh(self):
        return self.fake.token({"grant_type": "refresh_token", "refresh_token": "x"})

    def assert_429(self, resp, body, retry_after):
        self.assertEqual((resp.status, resp.body), (429, body), resp)
        self.assertEqual(resp.headers.get_content_type(), "application/json")
        self.assertEqual(resp.headers.get("Retry-After"), retry_after)

    def test_quota_fault_body_is_exact_at_every_endpoint(self):
        self.fake.set_quota_exceeded("me", retry_after=5)
        self.assert_429(self.fake.me("x"), QUOTA_BODY, "5")
        self.fake.set_quota_exceeded("token")
        self.assert_429(self.some_refresh(), QUOTA_BODY, None)
        self.fake.set_fault("authorize", reason=QUOTA_EXCEEDED, times=1)
        self.assert_429(self.fake.authorize(pkce_pair()[1]), QUOTA_BODY, None)

    def test_short_term_fault_body_has_no_reason(self):
        self.fake.set_fault("token", status=429, retry_after=2)
        self.assert_429(self.some_refresh(), SHORT_TERM_BODY, "2")
        self.fake.set_fault("me", status=429)
        self.assert_429(self.fake.me("x"), SHORT_TERM_BODY, None)
        # /authorize is a page in a browser, not the API
        self.fake.set_fault("authorize", status=429)
        resp = self.fake.authorize(pkce_pair()[1])
        self.assertEqual((resp.status, resp.headers.get_content_type()), (429, "text/html"))

    def test_a_reason_with_another_status(self):
        self.fake.set_fault("me", status=403, reason="SOMETHING")
        resp = self.fake.me("x")
        self.assertEqual(resp.json(), {"error": {"status": 403, "message": "Forbidden",
                                                 "reason": "SOMETHING"}})

    def test_quota_fault_is_not_processed_and_times_counts(self):
        self.fake.set_quota_exceeded("token", times=1)
        code, verifier = self.get_code()
        self.assertEqual(self.exchange(code, verifier).status, 429)
        self.assertEqual(self.exchange(code, verifier).status, 200)

    def test_bad_reasons_are_refused(self):
        for bad in ("", 5, "R" * 65):
            with self.subTest(reason=bad):
                resp = self.fake.request("POST", "/_fake/config", body=json.dumps(
                    {"faults": {"me": {"reason": bad}}}))
                self.assertEqual(resp.status, 400, resp)

    def test_limit_counts_token_and_api_calls_not_authorize_or_control(self):
        self.fake.set_rate_limit(3, window=60)
        code, verifier = self.get_code()
        for _ in range(5):
            self.get_code()
            self.fake.stats()
        tokens = self.exchange(code, verifier).json()                     # 1
        self.assertEqual(self.fake.me(tokens["access_token"]).status, 200)  # 2
        self.assertEqual(self.fake.request("GET", "/v1/nothing").status, 404)  # 3
        resp = self.fake.me(tokens["access_token"])
        self.assertEqual((resp.status, resp.body), (429, SHORT_TERM_BODY))
        self.assertEqual(resp.headers["Retry-After"], "60")
        self.assert_429(self.refresh(tokens["refresh_token"]), SHORT_TERM_BODY, "60")
        self.assertEqual(self.fake.stats()["rate_limited"], 2)
        self.assertEqual([e["rate_limited"] for e in self.fake.requests("me")], [False, True])
        self.assertEqual(self.fake.authorize(pkce_pair()[1]).status, 302)

    def test_limit_with_quota_reason_and_fixed_retry_after(self):
        self.fake.set_rate_limit(1, retry_after=17, reason=QUOTA_EXCEEDED)
        self.assertEqual(self.fake.me("x").status, 401)
        self.assert_429(self.fake.me("x"), QUOTA_BODY, "17")
        self.assertEqual(self.fake.config()["rate_limit"],
                         {"calls": 1, "window": 30, "retry_after": 17, "reason": QUOTA_EXCEEDED})

    def test_limit_comes_before_faults(self):
        self.fake.set_rate_limit(1, window=60)
        self.fake.me("x")
        self.fake.set_fault("me", status=500, times=1)
        self.assertEqual(self.fake.me("x").status, 429)
        self.assertEqual(self.fake.config()["faults"]["me"], {"status": 500, "times": 1})

    def test_window_rolls(self):
        self.fake.set_rate_limit(2, window=2)
        start = time.monotonic()
        self.assertEqual(self.fake.me("x").status, 401)           # A at 0
        time.sleep(1.0)
        self.assertEqual(self.fake.me("x").status, 401)           # B at 1
        refused = self.fake.me("x")
        self.assertEqual(refused.status, 429)
        self.assertEqual(refused.headers["Retry-After"], "1")     # when A leaves
        time.sleep(max(0.0, start + 2.1 - time.monotonic()))
        self.assertEqual(self.fake.me("x").status, 401)           # A has left
        self.assertEqual(self.fake.me("x").status, 429)           # B has not

    def test_setting_the_limit_starts_an_empty_window_and_null_lifts_it(self):
        self.fake.set_rate_limit(1, window=60)
        self.fake.me("x")
        self.assertEqual(self.fake.me("x").status, 429)
        self.fake.set_rate_limit(1, window=60)
        self.assertEqual(self.fake.me("x").status, 401)
        self.fake.clear_rate_limit()
        self.assertEqual([self.fake.me("x").status for _ in range(3)], [401] * 3)
        self.assertIsNone(self.fake.config()["rate_limit"])

    def test_limit_is_exact_under_concurrency(self):
        self.fake.set_rate_limit(5, window=60)
        results = self.run_parallel([lambda: self.fake.me("x")] * 20)
        statuses = sorted(getattr(r, "status", r) for r in results)
        self.assertEqual(statuses, [401] * 5 + [429] * 15)

    def test_bad_rate_limits_are_refused(self):
        for bad in ({"calls": 0}, {}, {"calls": 1, "window": 0}, {"calls": 1, "x": 1},
                    {"calls": 1, "reason": ""}, {"calls": 1, "retry_after": -1}, 5,
                    {"calls": True}, {"calls": 10 ** 6}):
            with self.subTest(rate_limit=bad):
                resp = self.fake.request("POST", "/_fake/config",
                                         body=json.dumps({"rate_limit": bad}))
                self.assertEqual(resp.status, 400, resp)
        self.assertIsNone(self.fake.config()["rate_limit"])


# ---------------------------------------------------------------------------


class ControlApiTests(FakeTestCase):

    def test_health(self):
        self.assertEqual(self.fake.health(), {"ok": True})

    def test_request_log_has_full_values(self):
        verifier, challenge = pkce_pair()
        resp = self.fake.authorize(challenge, scope=SCOPE, state="xyz")
        code = code_from_location(resp.headers["Location"])
        self.exchange(code, verifier)
        log = self.fake.requests()
        self.assertEqual([e["endpoint"] for e in log], ["authorize", "token"])
        auth, tok = log
        self.assertEqual(auth["method"], "GET")
        self.assertEqual(auth["path"], "/authorize")
        self.assertEqual(auth["query"]["code_challenge"], challenge)
        self.assertEqual(auth["query"]["state"], "xyz")
        self.assertEqual(auth["status"], 302)
        self.assertIsNone(auth["grant_type"])
        self.assertEqual(tok["form"], {"grant_type": "authorization_code", "code": code,
                                       "redirect_uri": REDIRECT, "code_verifier": verifier})
        self.assertEqual(tok["headers"]["Authorization"], basic_auth(CLIENT_ID, CLIENT_SECRET))
        self.assertEqual(tok["headers"]["Content-Type"], "application/x-www-form-urlencoded")
        self.assertEqual(tok["grant_type"], "authorization_code")
        self.assertEqual(tok["status"], 200)
        self.assertFalse(tok["fault"])
        self.assertLessEqual(auth["time"], tok["time"])
        self.assertEqual(self.fake.requests("token"), [tok])
        self.assertEqual(self.fake.requests("me"), [])

    def test_request_log_rejects_unknown_endpoint_filter(self):
        self.assertEqual(self.fake.request("GET", "/_fake/requests?endpoint=nope").status, 400)

    def test_stats(self):
        tokens = self.fake.login()
        self.refresh(tokens["refresh_token"])
        self.refresh(tokens["refresh_token"])
        self.fake.me(tokens["access_token"])
        self.fake.token({"grant_type": "password"})
        stats = self.fake.stats()
        for key in server.TRANSPORT_COUNTERS:  # the connections' counts: test_transport.py
            stats.pop(key)
        self.assertEqual(stats, {"authorize": 1, "token": 4,
                                             "token_authorization_code": 1,
                                             "token_refresh_token": 2, "me": 1,
                                             "rate_limited": 0})

    def test_reset_clears_everything_but_credentials(self):
        self.fake.configure(expires_in=5, deny=True, faults={"me": {"status": 500}})
        self.fake.configure(deny=False)
        tokens = self.fake.login()
        self.fake.set_user("alice")
        self.fake.reset()
        config = self.fake.config()
        self.assertEqual(config["expires_in"], 3600)
        self.assertEqual(config["user"]["id"], "demo-user")
        self.assertIsNone(config["faults"]["me"])
        self.assertEqual(self.fake.requests(), [])
        self.assertEqual(self.fake.stats()["token"], 0)
        self.assertEqual(self.fake.tokens(),
                         {"codes": [], "access_tokens": [], "refresh_tokens": []})
        self.assert_api_error(self.fake.me(tokens["access_token"]), 401, "Invalid access token")
        self.assert_oauth_error(self.refresh(tokens["refresh_token"]), 400, "invalid_grant")
        self.assertEqual(self.fake.login()["token_type"], "Bearer")  # credentials kept

    def test_tokens_snapshot(self):
        tokens = self.fake.login()
        snap = self.fake.tokens()
        self.assertEqual(len(snap["codes"]), 1)
        self.assertTrue(snap["codes"][0]["used"])
        self.assertEqual(snap["access_tokens"][0]["access_token"], tokens["access_token"])
        self.assertFalse(snap["access_tokens"][0]["expired"])
        self.assertEqual(snap["refresh_tokens"][0]["refresh_token"], tokens["refresh_token"])
        self.assertEqual(snap["refresh_tokens"][0]["user_id"], "demo-user")
        self.assertEqual(snap["refresh_tokens"][0]["account_id"], expected_account_id("demo-user"))
        self.assertEqual(snap["access_tokens"][0]["account_id"], expected_account_id("demo-user"))
        self.assertEqual(snap["codes"][0]["account_id"], expected_account_id("demo-user"))

    def test_config_validation(self):
        for bad in ('{"expires_in": "5"}', '{"deny": 1}', '{"nope": true}', "not json", "[1]",
                    '{"user": {"display_name": "x"}}', '{"user": {"id": "a", "age": 3}}',
                    '{"access_token_length": 1}'):
            with self.subTest(body=bad):
                self.assertEqual(self.fake.request("POST", "/_fake/config", body=bad).status, 400)
        self.assertEqual(self.fake.config()["expires_in"], 3600)

    def test_unknown_control_path_and_wrong_method(self):
        self.assertEqual(self.fake.request("GET", "/_fake/nothing").status, 404)
        self.assertEqual(self.fake.request("GET", "/_fake/reset").status, 405)
        self.assertEqual(self.fake.request("POST", "/_fake/stats", body="").status, 405)

    def test_control_requests_are_not_logged_as_spotify_requests(self):
        self.fake.stats()
        self.fake.config()
        self.assertEqual(self.fake.requests(), [])

    def test_keep_alive(self):
        conn = http.client.HTTPConnection("127.0.0.1", self.fake.port, timeout=5)
        try:
            for _ in range(3):
                conn.request("GET", "/_fake/health")
                resp = conn.getresponse()
                self.assertEqual(resp.status, 200)
                resp.read()
            conn.request("GET", "/v1/me")
            resp = conn.getresponse()
            self.assertEqual(resp.status, 401)
            resp.read()
        finally:
            conn.close()


# ---------------------------------------------------------------------------


class ConcurrencyTests(FakeTestCase):

    def test_25_concurrent_code_exchanges(self):
        pairs = [self.get_code() for _ in range(25)]
        results = self.run_parallel([lambda c=c, v=v: self.exchange(c, v) for c, v in pairs])
        self.assertEqual([getattr(r, "status", r) for r in results], [200] * 25)
        self.assertEqual(len({r.json()["access_token"] for r in results}), 25)
        self.assertEqual(self.fake.stats()["token_authorization_code"], 25)

    def test_one_code_used_concurrently_succeeds_once(self):
        code, verifier = self.get_code()
        results = self.run_parallel([lambda: self.exchange(code, verifier)] * 20)
        statuses = sorted(getattr(r, "status", r) for r in results)
        self.assertEqual(statuses, [200] + [400] * 19)

    def test_rotating_refresh_concurrently_succeeds_once(self):
        self.fake.configure(rotate_refresh_tokens=True)
        tokens = self.fake.login()
        results = self.run_parallel([lambda: self.refresh(tokens["refresh_token"])] * 20)
        statuses = sorted(getattr(r, "status", r) for r in results)
        self.assertEqual(statuses, [200] + [400] * 19)

    def test_fault_times_is_exact_under_concurrency(self):
        self.fake.set_fault("me", status=503, times=5)
        results = self.run_parallel([lambda: self.fake.me("x")] * 20)
        statuses = sorted(getattr(r, "status", r) for r in results)
        self.assertEqual(statuses, [401] * 15 + [503] * 5)


# ---------------------------------------------------------------------------


class ProcessTests(unittest.TestCase):
    """The command line, the port file, logging and signals."""

    def start_raw(self, *extra, port_file=None):
        argv = [sys.executable, server.__file__, "--client-id", CLIENT_ID,
                "--client-secret", CLIENT_SECRET, "--redirect-uri", REDIRECT] + list(extra)
        if port_file:
            argv += ["--port", "0", "--port-file", port_file]
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE)
        self.addCleanup(self.kill, proc)
        return proc

    @staticmethod
    def kill(proc):
        if proc.poll() is None:
            proc.kill()
        proc.wait(5)
        proc.stderr.close()

    def wait_port(self, path, proc):
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if os.path.exists(path):
                with open(path) as f:
                    return int(f.read())
            self.assertIsNone(proc.poll(), "server exited")
            time.sleep(0.02)
        self.fail("no port file")

    def test_port_file_and_signals_exit_cleanly(self):
        for sig in (signal.SIGTERM, signal.SIGINT):
            with self.subTest(signal=sig), tempfile.TemporaryDirectory() as tmp:
                port_file = os.path.join(tmp, "port")
                proc = self.start_raw(port_file=port_file)
                port = self.wait_port(port_file, proc)
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                conn.request("GET", "/_fake/health")
                self.assertEqual(conn.getresponse().status, 200)
                conn.close()
                proc.send_signal(sig)
                self.assertEqual(proc.wait(5), 0)
                self.assertIn(b"fake_spotify: stopped", proc.stderr.read())

    def test_signal_with_an_idle_keep_alive_connection(self):
        with tempfile.TemporaryDirectory() as tmp:
            port_file = os.path.join(tmp, "port")
            proc = self.start_raw(port_file=port_file)
            port = self.wait_port(port_file, proc)
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            conn.request("GET", "/_fake/health")
            conn.getresponse().read()
            proc.send_signal(signal.SIGTERM)
            self.assertEqual(proc.wait(5), 0)
            conn.close()

    def test_refuses_non_loopback_host(self):
        for host in ("0.0.0.0", "192.0.2.1", "example.com", "::"):
            with self.subTest(host=host):
                proc = self.start_raw("--host", host, "--port", "0")
                self.assertNotEqual(proc.wait(5), 0)
                self.assertIn(b"loopback", proc.stderr.read())

    def test_requires_client_and_redirect_uri(self):
        proc = subprocess.run([sys.executable, server.__file__, "--client-id", "x"],
                              capture_output=True, timeout=10)
        self.assertEqual(proc.returncode, 2)

    def test_ipv6_loopback(self):
        try:
            with socket.socket(socket.AF_INET6) as s:
                s.bind(("::1", 0))
        except OSError:
            self.skipTest("no IPv6 loopback")
        fake = FakeSpotify.start(CLIENT_ID, CLIENT_SECRET, [REDIRECT], host="::1")
        try:
            self.assertTrue(fake.url.startswith("http://[::1]:"))
            self.assertEqual(fake.login()["token_type"], "Bearer")
        finally:
            fake.stop()

    def test_log_has_one_line_per_request_and_no_secrets(self):
        fake = FakeSpotify.start(CLIENT_ID, CLIENT_SECRET, [REDIRECT])
        try:
            verifier, challenge = pkce_pair()
            state = "STATE-" + "q" * 20
            resp = fake.authorize(challenge, scope=SCOPE, state=state)
            code = code_from_location(resp.headers["Location"])
            tokens = fake.token({"grant_type": "authorization_code", "code": code,
                                 "redirect_uri": REDIRECT, "code_verifier": verifier}).json()
            fake.me(tokens["access_token"])
            fake.token({"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]})
            fake.request("GET", "/authorize?code=" + code)  # a bad request line with a secret
            raw = socket.create_connection(("127.0.0.1", fake.port), timeout=5)
            raw.sendall(b"GET /x?" + code.encode() + b" HTTP/1.1 extra\r\n\r\n")
            raw.recv(4096)
            raw.close()
        finally:
            fake.stop()
        log = fake.log_text()
        for secret in (CLIENT_SECRET, code, verifier, challenge, state, tokens["access_token"],
                       tokens["refresh_token"], basic_auth(CLIENT_ID, CLIENT_SECRET)[6:]):
            self.assertNotIn(secret, log)
        lines = [line for line in log.splitlines() if not line.startswith("fake_spotify: listening")
                 and line != "fake_spotify: stopped"]
        self.assertIn("fake_spotify: GET /authorize 302", lines)
        self.assertIn("fake_spotify: POST /api/token 200", lines)
        self.assertIn("fake_spotify: GET /v1/me 200", lines)
        self.assertIn("fake_spotify: GET /authorize 400", lines)
        self.assertIn("fake_spotify: - - 400", lines)
        for line in lines:
            self.assertRegex(line, r"^fake_spotify: \S+ \S+ (\d{3}|closed)$")

    def test_client_start_reports_a_server_that_cannot_start(self):
        with self.assertRaises(Exception) as ctx:
            FakeSpotify.start(CLIENT_ID, CLIENT_SECRET, [REDIRECT], host="10.0.0.1", timeout=5)
        self.assertIn("loopback", str(ctx.exception))


if __name__ == "__main__":
    unittest.main()
