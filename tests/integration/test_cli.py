"""The `baa` command line: usage, version, environment validation."""

import os
import re
import unittest

from harness import (BaaTestCase, Baa, base_env, clean_env, configure_version, db_env,
                     free_port, make_temp_dir, require_baa)

PG_VARS = ("POSTGRES_URL", "POSTGRES_USER", "POSTGRES_PW", "POSTGRES_DB")
DB_COMMANDS = ("serve", "resetdb", "migrate")


def _lists_commands(text):
    return all(re.search(r"\b%s\b" % c, text) for c in ("serve", "resetdb", "migrate"))


class UsageTest(unittest.TestCase):
    """Commands that need no database."""

    @classmethod
    def setUpClass(cls):
        require_baa()
        cls.cli = Baa(make_temp_dir("baa-it-usage-"))

    def test_help_prints_usage_listing_commands_on_stdout_and_exits_0(self):
        res = self.cli.run(["--help"], env=clean_env(), timeout=10)
        self.assertEqual(res.returncode, 0, res.stderr)
        self.assertTrue(_lists_commands(res.stdout), "usage must list serve, resetdb, migrate:\n" + res.stdout)

    def test_version_prints_baa_and_configure_version_and_exits_0(self):
        res = self.cli.run(["--version"], env=clean_env(), timeout=10)
        self.assertEqual(res.returncode, 0, res.stderr)
        self.assertEqual(res.stdout.strip(), "baa %s" % configure_version())

    def test_unknown_command_prints_usage_on_stderr_and_exits_2(self):
        res = self.cli.run(["frobnicate"], env=clean_env(), timeout=10)
        self.assertEqual(res.returncode, 2, "stdout=%r stderr=%r" % (res.stdout, res.stderr))
        self.assertTrue(_lists_commands(res.stderr), "usage on stderr must list the commands:\n" + res.stderr)
        self.assertNotIn("resetdb", res.stdout, "usage for an error belongs on stderr")


class EnvironmentValidationTest(BaaTestCase):
    """Missing/empty/invalid variables are rejected before anything happens."""

    reset_database = False

    def env_without(self, *names):
        env = self.env()
        for n in names:
            env.pop(n, None)
        return env

    def test_each_single_missing_postgres_variable_is_reported_alone(self):
        for cmd in DB_COMMANDS:
            for var in PG_VARS:
                with self.subTest(command=cmd, missing=var):
                    env = self.env_without(var)
                    res = self.run_baa([cmd], env, timeout=10)
                    self.assertNotEqual(res.returncode, 0, self.describe(res))
                    self.assertEqual(res.stderr, "Expected environment variable '%s' not set.\n" % var,
                                     self.describe(res))
                    self.assertEqual(res.stdout, "", self.describe(res))

    def test_all_missing_postgres_variables_are_each_reported_on_their_own_line(self):
        for cmd in DB_COMMANDS:
            with self.subTest(command=cmd):
                res = self.run_baa([cmd], self.env_without(*PG_VARS), timeout=10)
                self.assertNotEqual(res.returncode, 0, self.describe(res))
                lines = res.stderr.splitlines()
                for var in PG_VARS:
                    self.assertIn("Expected environment variable '%s' not set." % var, lines,
                                  self.describe(res))

    def test_empty_postgres_variable_is_rejected_naming_it_and_saying_empty(self):
        for cmd in DB_COMMANDS:
            for var in PG_VARS:
                with self.subTest(command=cmd, empty=var):
                    env = self.env()
                    env[var] = ""
                    res = self.run_baa([cmd], env, timeout=10)
                    self.assertNotEqual(res.returncode, 0, self.describe(res))
                    self.assertIn(var, res.stderr, self.describe(res))
                    self.assertIn("empty", res.stderr.lower(), self.describe(res))

    def test_postgres_url_with_bad_port_is_rejected_mentioning_url_and_port(self):
        for cmd in DB_COMMANDS:
            for url in ("127.0.0.1:99999", "127.0.0.1:abc", "127.0.0.1:", "127.0.0.1:0x", "[::1]:"):
                with self.subTest(command=cmd, url=url):
                    res = self.run_baa([cmd], self.env(POSTGRES_URL=url), timeout=10)
                    self.assertNotEqual(res.returncode, 0, self.describe(res))
                    self.assertIn("POSTGRES_URL", res.stderr, self.describe(res))
                    self.assertIn("port", res.stderr.lower(), self.describe(res))
                    self.assertNotIn("Creating", res.stdout, self.describe(res))

    def test_invalid_baa_listen_is_rejected_by_serve_naming_the_variable(self):
        for listen in ("127.0.0.1:0x", "nohostport", "relative/baa.sock", "./baa.sock",
                       "127.0.0.1:70000", "127.0.0.1:"):
            with self.subTest(listen=listen):
                res = self.run_baa(["serve"], self.env(BAA_LISTEN=listen), timeout=10)
                self.assertNotEqual(res.returncode, 0, self.describe(res))
                self.assertIn("BAA_LISTEN", res.stderr, self.describe(res))

    def test_invalid_baa_workers_is_rejected_by_serve_naming_the_variable(self):
        for workers in ("0", "-1", "abc", "100000", "2x"):
            with self.subTest(workers=workers):
                env = self.env()
                env["BAA_WORKERS"] = workers
                res = self.run_baa(["serve"], env, timeout=10)
                self.assertNotEqual(res.returncode, 0, self.describe(res))
                self.assertIn("BAA_WORKERS", res.stderr, self.describe(res))

    def test_serve_requires_each_spotify_variable_with_the_same_message(self):
        for name in ("SPOTIFY_CLIENT_ID", "SPOTIFY_CLIENT_SECRET", "SPOTIFY_REDIRECT_URI",
                     "BAA_SECRET_KEY"):
            with self.subTest(missing=name):
                env = self.env(**{name: None})
                res = self.run_baa(["serve"], env, timeout=10)
                self.assertNotEqual(res.returncode, 0, self.describe(res))
                self.assertEqual(res.stderr, "Expected environment variable '%s' not set.\n" % name)

    def test_serve_refuses_a_short_secret_key_without_printing_it(self):
        # BAA_SECRET_KEY may be a list: the message then says which secret
        long_one = "a-long-enough-secret-0123456789abcdef"
        for value, message in (
                ("short-but-secret-value", "'BAA_SECRET_KEY' must be at least 32 bytes long (it has 22)"),
                ("%s short-but-secret-value" % long_one,
                 "'BAA_SECRET_KEY' must list secrets of at least 32 bytes each (secret 2 has 22)"),
                ("short-but-secret-value %s" % long_one,
                 "'BAA_SECRET_KEY' must list secrets of at least 32 bytes each (secret 1 has 22)")):
            with self.subTest(value=value.replace("short-but-secret-value", "SHORT")):
                env = self.env(BAA_SECRET_KEY=value)
                res = self.run_baa(["serve"], env, timeout=10)
                self.assertNotEqual(res.returncode, 0, self.describe(res))
                self.assertIn(message, res.stderr)
                for secret in value.split():
                    self.assertNotIn(secret, res.stderr + res.stdout)

    def test_serve_refuses_redirect_uris_that_spotify_refuses(self):
        cases = {
            "http://localhost:8080/callback": "'localhost', which Spotify refuses",
            "http://baa.example/callback": "must use https",
            "http://192.168.1.10:8080/callback": "must use https",
        }
        for uri, reason in cases.items():
            with self.subTest(uri=uri):
                res = self.run_baa(["serve"], self.env(SPOTIFY_REDIRECT_URI=uri), timeout=10)
                self.assertNotEqual(res.returncode, 0, self.describe(res))
                self.assertIn("SPOTIFY_REDIRECT_URI", res.stderr)
                self.assertIn(reason, res.stderr)
                self.assertIn("127.0.0.1", res.stderr)

    def test_password_value_never_appears_in_validation_errors(self):
        # run_baa checks every result for the password; make sure that the
        # password is set while other things are wrong.
        cases = [
            {"POSTGRES_URL": "127.0.0.1:abc"},
            {"POSTGRES_DB": ""},
            {"POSTGRES_USER": None},
            {"BAA_LISTEN": "nohostport"},
            {"BAA_WORKERS": "0"},
        ]
        for extra in cases:
            with self.subTest(**{k: str(v) for k, v in extra.items()}):
                env = self.env(**extra)
                self.assertTrue(env["POSTGRES_PW"])
                res = self.run_baa(["serve"], env, timeout=10)
                self.assertNotEqual(res.returncode, 0, self.describe(res))
                self.assertSecretsNotIn(res, env)


if __name__ == "__main__":
    unittest.main()
