"""Secrets as systemd credentials: with LoadCredential=, systemd puts each
secret in a file of $CREDENTIALS_DIRECTORY named after the variable, and
baa reads POSTGRES_PW, SPOTIFY_CLIENT_SECRET, BAA_SECRET_KEY, BAA_TOKEN_KEY
and BAA_SERVICE_KEYS from there when the environment does not set them.
The secrets then never enter baa's environment (/proc/PID/environ), and a
secret set both ways is refused rather than one of them silently winning.
Here the test makes the directory as systemd would.
"""

import os

from harness import SpotifyTestCase, make_temp_dir

SECRETS = ("POSTGRES_PW", "SPOTIFY_CLIENT_SECRET", "BAA_SECRET_KEY")


class CredentialsTest(SpotifyTestCase):
    class_stack = False
    workers = 1

    def credentials_env(self, **extra):
        """login_env with SECRETS moved from the environment into files."""
        env = self.login_env(**extra)
        folder = make_temp_dir("baa-it-credentials-")
        for name in SECRETS:
            with open(os.path.join(folder, name), "w") as f:
                f.write(env.pop(name) + "\n")
        env["CREDENTIALS_DIRECTORY"] = folder
        return env, folder

    def test_serve_and_migrate_take_their_secrets_from_credentials(self):
        env, folder = self.credentials_env()
        res = self.run_baa(["migrate"], env)
        self.assertEqual(res.returncode, 0, self.describe(res))
        baa, nginx = self.start_stack(env)
        self.login(nginx=nginx)
        self.assertEqual(len(self.users()), 1)
        # Not in any process's environment, nor in the log.
        values = [open(os.path.join(folder, n)).read().strip() for n in SECRETS]
        for pid in [baa.pid] + baa.workers():
            with open("/proc/%d/environ" % pid, "rb") as f:
                environ = f.read().decode("utf-8", "replace")
            for value in values:
                self.assertNotIn(value, environ)
        for value in values:
            self.assertNotIn(value, baa.log())

    def test_a_secret_set_both_ways_is_refused_by_name(self):
        env, folder = self.credentials_env()
        with open(os.path.join(folder, "POSTGRES_PW")) as f:
            password = f.read().strip()
        env["POSTGRES_PW"] = password
        res = self.run_baa(["migrate"], env)
        self.assertEqual(res.returncode, 78, self.describe(res))
        self.assertIn("'POSTGRES_PW' is both an environment variable and a credential: "
                      "keep one.", res.stderr)

    def test_a_wrong_credential_is_named_and_nothing_starts(self):
        env, folder = self.credentials_env()
        with open(os.path.join(folder, "POSTGRES_PW"), "w") as f:
            f.write("not-the-password\n")
        res = self.run_baa(["migrate"], env)
        self.assertNotEqual(res.returncode, 0, self.describe(res))
        self.assertNotIn("not-the-password", res.stdout + res.stderr)
        with open(os.path.join(folder, "BAA_SECRET_KEY"), "w") as f:
            f.write("too-short\n")
        res = self.run_baa(["serve"], env)
        self.assertEqual(res.returncode, 78, self.describe(res))
        self.assertIn("Credential 'BAA_SECRET_KEY' ", res.stderr)
        self.assertNotIn("too-short", res.stdout + res.stderr)
