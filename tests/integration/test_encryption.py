"""Spotify tokens at rest: sealed with AES-256-GCM, bound to their row and
column, under keys that `baa rotate-keys` lets an operator replace."""

import base64
import os
import re
import unittest

from harness import (SECRET_KEY, SESSION_COOKIE, Baa, SpotifyTestCase, TokenOpener, b64url,
                     make_temp_dir, wait_until)
from harness.tags import slow

KEY_A = os.urandom(32)
KEY_B = os.urandom(32)
KEY_A_TEXT = KEY_A.hex()     # the two spellings BAA_TOKEN_KEY accepts
KEY_B_TEXT = b64url(KEY_B)
KID_A = TokenOpener.kid(KEY_A)
KID_B = TokenOpener.kid(KEY_B)
KID_DERIVED = TokenOpener.kid(TokenOpener.derived_key(SECRET_KEY))
REPORT = re.compile(r"^Re-encrypted (\d+) tokens of (\d+) users under key (\S+); "
                    r"(\d+) could not be decrypted\.$", re.M)


def spellings(token):
    """A token as it could hide in a column: plain, base64, base64url, hex."""
    raw = token.encode()
    return [token, base64.b64encode(raw).decode(), b64url(raw), raw.hex()]


class EncryptionTestCase(SpotifyTestCase):
    workers = 2

    def login_as(self, spotify_id, expires_in=3600, nginx=None):
        """Logs spotify_id in; -> (session cookie, access token, refresh token)
        as the fake issued them."""
        self.fake.configure(user={"id": spotify_id}, expires_in=expires_in)
        b, r = self.login(nginx=nginx)
        self.fake.configure(expires_in=3600)
        issued = self.fake.tokens()
        return (r.session_cookie, issued["access_tokens"][-1]["access_token"],
                issued["refresh_tokens"][-1]["refresh_token"])

    def token_of(self, cookie, nginx=None):
        return self.browser(nginx).get("/me/token", cookies={SESSION_COOKIE: cookie})

    def assertToken(self, resp, token=None):
        self.assertEqual(resp.status, 200, "%r%s" % (resp, self.stack_context()))
        if token is not None:
            self.assertEqual(resp.json()["access_token"], token)
        return resp.json()["access_token"]

    def wait_log(self, pattern):
        """baa's log once it has a line matching pattern (workers write in batches)."""
        wait_until(lambda: re.search(pattern, self.baa.log()), 5,
                   message="no log line like %r%s" % (pattern, self.stack_context()))
        return self.baa.log()

    def raw_row(self, spotify_id):
        rows = [u for u in self.raw_users() if u["spotify_id"] == spotify_id]
        self.assertEqual(len(rows), 1, rows)
        return rows[0]

    def kids(self):
        """The kid of every stored token value, by (spotify_id, column)."""
        out = {}
        for row in self.raw_users():
            for column in ("spotify_token", "refresh_token"):
                if row[column]:
                    out[(row["spotify_id"], column)] = TokenOpener.parse(row[column])[0]
        return out

    def assertNoPlaintextStored(self):
        """No column of any users row holds a token the fake ever issued, in
        any spelling (the whole row as PostgreSQL prints it is searched)."""
        issued = self.fake.tokens()
        tokens = [t["access_token"] for t in issued["access_tokens"]] + \
                 [t["refresh_token"] for t in issued["refresh_tokens"]]
        self.assertTrue(tokens)
        rows = self.pg.psql("SELECT u::text FROM users u", db=self.db)
        self.assertTrue(rows.strip())
        for token in tokens:
            for spelling in spellings(token):
                self.assertNotIn(spelling, rows)
                # and no long piece of it either
                for i in range(0, len(spelling) - 24, 12):
                    self.assertNotIn(spelling[i:i + 24], rows)

    def assertNoTokenIn(self, text, tokens, what):
        for token in tokens:
            self.assertNotIn(token, text, what)

    def rotate_keys(self, token_keys):
        env = self.login_env(BAA_TOKEN_KEY=token_keys)
        res = self.run_baa(["rotate-keys"], env, timeout=60)
        m = REPORT.search(res.stdout)
        self.assertIsNotNone(m, self.describe(res))
        for key in (KEY_A_TEXT, KEY_B_TEXT, SECRET_KEY):
            self.assertNotIn(key, res.stdout + res.stderr)
        return res, tuple(int(m.group(i)) for i in (1, 2, 4)), m.group(3)


class TokensAtRestTest(EncryptionTestCase):
    """One instance with the default key, derived from BAA_SECRET_KEY."""

    def test_database_holds_no_plaintext_token_after_login_and_refresh(self):
        self.fake.configure(rotate_refresh_tokens=True)
        cookie, access, refresh = self.login_as("alice", expires_in=30)
        self.assertNoPlaintextStored()
        row = self.raw_row("alice")
        for column in ("spotify_token", "refresh_token"):
            self.assertRegex(row[column], r"^v1\.%s\.[A-Za-z0-9_-]+$" % re.escape(KID_DERIVED))
        # the stored values are those tokens, sealed for alice's row
        self.assertEqual(self.user("alice")["spotify_token"], access)
        self.assertEqual(self.user("alice")["refresh_token"], refresh)

        # the token expires within the margin: refreshed, with a rotated refresh token
        fresh = self.assertToken(self.token_of(cookie))
        self.assertNotEqual(fresh, access)
        self.assertEqual(self.fake.stats()["token_refresh_token"], 1)
        self.assertNoPlaintextStored()
        after = self.user("alice")
        self.assertEqual(after["spotify_token"], fresh)
        self.assertEqual(after["refresh_token"], self.fake.tokens()["refresh_tokens"][-1]["refresh_token"])
        self.assertNotEqual(after["refresh_token"], refresh)
        # a second login seals again: a new nonce, even for the same row
        before = self.raw_row("alice")
        self.login_as("alice")
        self.assertNotEqual(self.raw_row("alice")["spotify_token"], before["spotify_token"])
        self.assertNoPlaintextStored()

    def test_value_moved_to_another_users_row_does_not_open(self):
        cookie_a, access_a, refresh_a = self.login_as("alice")
        cookie_b, access_b, refresh_b = self.login_as("bob")
        workers = sorted(self.baa.workers())
        tokens = [access_a, refresh_a, access_b, refresh_b]
        moves = {
            "alice's access token in bob's row":
                "UPDATE users SET spotify_token = (SELECT spotify_token FROM users"
                " WHERE spotify_id = 'alice') WHERE spotify_id = 'bob'",
            "bob's refresh token in bob's access column":
                "UPDATE users SET spotify_token = refresh_token WHERE spotify_id = 'bob'",
        }
        for what, sql in moves.items():
            with self.subTest(what):
                _, access_b, refresh_b = self.login_as("bob")
                tokens += [access_b, refresh_b]
                self.pg.psql(sql, db=self.db)
                stored = self.raw_row("bob")
                resp = self.token_of(cookie_b)
                doc = self.assertJsonError(resp, 401, what)
                self.assertIn("log in again", doc["error"])
                self.assertTrue(resp.set_cookies[SESSION_COOKIE].clears, resp)
                self.assertNoTokenIn(resp.body.decode(), tokens, what)
                self.assertEqual(self.raw_row("bob"), stored, "a failed open changed the row")
                # alice is not affected
                self.assertToken(self.token_of(cookie_a), access_a)

        self.assertEqual(sorted(self.baa.workers()), workers, "a worker died")
        self.assertEqual(self.fake.stats()["token_refresh_token"], 0)
        log = self.wait_log(r"event=token_unreadable user_id=%d column=access reason=forged"
                            % self.raw_row("bob")["id"])
        self.assertNoTokenIn(log, tokens, "baa's log")

    def test_moved_refresh_token_is_never_sent_to_spotify(self):
        cookie_a, access_a, refresh_a = self.login_as("alice")
        cookie_b, access_b, refresh_b = self.login_as("bob", expires_in=30)
        self.pg.psql("UPDATE users SET refresh_token = (SELECT refresh_token FROM users"
                     " WHERE spotify_id = 'alice') WHERE spotify_id = 'bob'", db=self.db)
        stored = self.raw_row("bob")
        self.assertJsonError(self.token_of(cookie_b), 401, "refresh with a moved refresh token")
        self.assertEqual(self.fake.stats()["token_refresh_token"], 0, "Spotify was called")
        self.assertEqual(self.raw_row("bob"), stored)
        self.wait_log(r"event=token_unreadable user_id=%d column=refresh reason=forged"
                      % stored["id"])
        self.assertToken(self.token_of(cookie_a), access_a)


class KeyRotationTest(EncryptionTestCase):
    """Each test starts its own instances, with the keys it needs."""

    class_stack = False

    def serve(self, token_keys, listen=None):
        """baa serve with BAA_TOKEN_KEY=token_keys (on listen, to keep nginx
        in front of a restarted instance)."""
        extra = {"BAA_TOKEN_KEY": token_keys}
        if listen:
            extra["BAA_LISTEN"] = listen
        env = self.login_env(**extra)
        b = Baa(make_temp_dir("baa-it-rotate-"))
        self.addCleanup(b.stop)
        b.serve(env)
        return b

    def restart(self, token_keys):
        self.baa.stop()
        self.baa = self.serve(token_keys, listen=self.baa.env["BAA_LISTEN"])

    def start(self, token_keys):
        self.baa, self.nginx = self.start_stack(self.login_env(BAA_TOKEN_KEY=token_keys))

    @slow("restarts baa through a key rotation")
    def test_rotation_from_key_a_to_key_b(self):
        self.start(KEY_A_TEXT)
        cookie_1, access_1, refresh_1 = self.login_as("one")
        cookie_2, access_2, refresh_2 = self.login_as("two", expires_in=30)
        self.assertEqual(set(self.kids().values()), {KID_A})

        # B first, A still accepted
        self.restart("%s %s" % (KEY_B_TEXT, KEY_A_TEXT))
        self.token_opener = TokenOpener([KEY_A, KEY_B])
        self.assertToken(self.token_of(cookie_1), access_1)
        fresh_2 = self.assertToken(self.token_of(cookie_2))  # a refresh, sealed under B
        self.assertNotEqual(fresh_2, access_2)
        self.assertEqual(self.fake.stats()["token_refresh_token"], 1)
        self.assertEqual(self.kids(), {("one", "spotify_token"): KID_A,
                                       ("one", "refresh_token"): KID_A,
                                       ("two", "spotify_token"): KID_B,
                                       ("two", "refresh_token"): KID_A})
        self.assertEqual(self.user("two")["spotify_token"], fresh_2)

        res, counts, kid = self.rotate_keys("%s %s" % (KEY_B_TEXT, KEY_A_TEXT))
        self.assertEqual(res.returncode, 0, self.describe(res))
        self.assertEqual(counts, (3, 2, 0))
        self.assertEqual(kid, KID_B)
        self.assertEqual(set(self.kids().values()), {KID_B})
        self.assertEqual(self.user("one")["refresh_token"], refresh_1)
        self.assertEqual(self.user("two")["refresh_token"], refresh_2)
        # nothing left to do
        res, counts, kid = self.rotate_keys("%s %s" % (KEY_B_TEXT, KEY_A_TEXT))
        self.assertEqual((res.returncode, counts), (0, (0, 2, 0)), self.describe(res))

        # A dropped: everything still works, refreshes included
        self.restart(KEY_B_TEXT)
        self.token_opener = TokenOpener([KEY_B])
        self.assertToken(self.token_of(cookie_1), access_1)
        self.assertToken(self.token_of(cookie_2), fresh_2)
        self.pg.psql("UPDATE users SET token_expires_at = now() WHERE spotify_id = 'one'", db=self.db)
        renewed = self.assertToken(self.token_of(cookie_1))
        self.assertNotEqual(renewed, access_1)
        self.assertEqual(self.fake.requests("token")[-1]["form"].get("refresh_token"), refresh_1)
        self.assertEqual(self.user("one")["spotify_token"], renewed)
        self.assertNoPlaintextStored()

    def test_rotate_keys_without_the_old_key_reports_and_changes_nothing(self):
        self.start(KEY_A_TEXT)
        cookie_1, access_1, _ = self.login_as("one")
        self.login_as("two")
        before = self.raw_users()

        res, counts, kid = self.rotate_keys(KEY_B_TEXT)
        self.assertNotEqual(res.returncode, 0, self.describe(res))
        self.assertEqual(counts, (0, 2, 4))
        self.assertIn("could not be decrypted", res.stdout)
        self.assertEqual(self.raw_users(), before)
        self.assertIn("reason=unknown_key", res.stderr)

        # one value moved to another row: that row is left alone, the rest rotates
        self.pg.psql("UPDATE users SET refresh_token = (SELECT refresh_token FROM users"
                     " WHERE spotify_id = 'one') WHERE spotify_id = 'two'", db=self.db)
        moved = self.raw_row("two")
        res, counts, kid = self.rotate_keys("%s %s" % (KEY_B_TEXT, KEY_A_TEXT))
        self.assertNotEqual(res.returncode, 0, self.describe(res))
        self.assertEqual(counts, (2, 2, 1))
        self.assertEqual(self.raw_row("two"), moved)
        self.assertEqual(set(TokenOpener.parse(v)[0] for k, v in self.raw_row("one").items()
                             if k in ("spotify_token", "refresh_token")), {KID_B})
        self.assertIn("reason=forged", res.stderr)

    def test_rotate_keys_seals_tokens_stored_before_encryption(self):
        self.start(KEY_A_TEXT)
        cookie, access, refresh = self.login_as("legacy")
        self.login_as("empty")
        # as an older baa stored them: in the clear; and a user without tokens
        self.pg.psql("UPDATE users SET spotify_token = '%s', refresh_token = '%s'"
                     " WHERE spotify_id = 'legacy'" % (access, refresh), db=self.db)
        self.pg.psql("UPDATE users SET spotify_token = NULL, refresh_token = ''"
                     " WHERE spotify_id = 'empty'", db=self.db)
        # not accepted as it is: the user would log in again
        self.assertJsonError(self.token_of(cookie), 401, "plaintext token")
        self.wait_log(r"event=token_unreadable user_id=\d+ column=access reason=plaintext")

        res, counts, kid = self.rotate_keys(KEY_A_TEXT)
        self.assertEqual(res.returncode, 0, self.describe(res))
        self.assertEqual(counts, (2, 2, 0))
        self.assertEqual(self.kids(), {("legacy", "spotify_token"): KID_A,
                                       ("legacy", "refresh_token"): KID_A})
        empty = self.raw_row("empty")
        self.assertEqual((empty["spotify_token"], empty["refresh_token"]), (None, ""))
        self.token_opener = TokenOpener([KEY_A])
        self.assertEqual(self.user("legacy")["refresh_token"], refresh)
        self.assertToken(self.token_of(cookie), access)
        self.assertNoPlaintextStored()

    def test_malformed_token_key_is_refused_with_a_message_that_does_not_show_it(self):
        bad = {
            "63 hex digits": KEY_A_TEXT[:-1],
            "a base64 '+'": "+" + KEY_B_TEXT[1:],
            "a good key, then a short one": "%s %s" % (KEY_B_TEXT, KEY_A_TEXT[:40]),
            "a separator other than a space": "%s,%s" % (KEY_B_TEXT, KEY_A_TEXT),
        }
        for what, value in bad.items():
            for command in ("serve", "rotate-keys"):
                with self.subTest(what, command=command):
                    res = self.run_baa([command], self.login_env(BAA_TOKEN_KEY=value), timeout=20)
                    self.assertEqual(res.returncode, 78, self.describe(res))
                    self.assertIn("Environment variable 'BAA_TOKEN_KEY' has a malformed key",
                                  res.stderr)
                    for piece in value.split(" ") + value.split(","):
                        self.assertNotIn(piece[:16], res.stderr + res.stdout)
        res = self.run_baa(["serve"], self.login_env(BAA_TOKEN_KEY=""), timeout=20)
        self.assertEqual(res.returncode, 78, self.describe(res))
        self.assertIn("'BAA_TOKEN_KEY' is empty", res.stderr)


if __name__ == "__main__":
    unittest.main()
