"""`make install`: where the files go, and that what is installed works.

From the build tree of the binary under test (BAA_BIN's, build/ by
default), `make install DESTDIR=...` with its configured prefix puts the
binary in sbindir, baa(8) in man8, systemd's units in lib/systemd/system,
and under share/baa the nginx site's templates, the script that renders
them, the static page and an example environment file. The installed
binary answers --version; the installed render-nginx renders a site whose
static root is the installed page, and nginx accepts it; every variable
the example environment file sets is one baa reads; systemd-analyze
verifies the units with nothing to say, and they run the installed
binary. `make distcheck` itself runs in scripts/test (not --quick).
"""

import os
import re
import subprocess
import unittest

from harness import (NGINX_BIN, REPO, baa_bin, clean_env, configure_version, make_temp_dir,
                     require_baa, slow)



def config_variables():
    with open(os.path.join(REPO, "src", "config.h")) as f:
        return re.findall(r"\bX\((\w+),", f.read())


@slow("builds and installs a copy of the tree")
class InstallTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        require_baa()
        cls.build = os.path.dirname(os.path.dirname(os.path.abspath(baa_bin())))
        with open(os.path.join(cls.build, "Makefile")) as f:
            cls.prefix = re.search(r"^prefix = (.*)$", f.read(), re.M).group(1)
        cls.root = make_temp_dir("baa-it-install-")
        res = subprocess.run(["make", "-s", "-C", cls.build, "install", "DESTDIR=" + cls.root],
                             capture_output=True, text=True, stdin=subprocess.DEVNULL,
                             timeout=600)
        if res.returncode != 0:
            raise AssertionError("make install failed:\n" + res.stdout + res.stderr)

    def path(self, *parts):
        return os.path.join(self.root, self.prefix.lstrip("/"), *parts)

    def test_each_file_goes_where_autotools_users_expect(self):
        expected = ["sbin/baa", "share/man/man8/baa.8",
                    "share/baa/nginx/baa.conf.in", "share/baa/nginx/baa-internal.conf.in",
                    "share/baa/static/index.html", "share/baa/scripts/render-nginx",
                    "share/baa/baa.env.example", "share/baa/prometheus/baa-rules.yml",
                    "share/baa/grafana/baa-dashboard.json",
                    "lib/systemd/system/baa@.service",
                    "lib/systemd/system/baa-migrate.service"]
        missing = [p for p in expected if not os.path.isfile(self.path(p))]
        self.assertEqual(missing, [], "not installed")
        self.assertFalse(os.path.exists(self.path("bin", "baa")), "baa is a daemon: sbin, not bin")
        for p in ("sbin/baa", "share/baa/scripts/render-nginx"):
            self.assertTrue(os.access(self.path(p), os.X_OK), p + " is not executable")

    def test_the_installed_binary_runs(self):
        res = subprocess.run([self.path("sbin", "baa"), "--version"], capture_output=True,
                             text=True, env=clean_env(), timeout=10)
        self.assertEqual(res.returncode, 0, res.stderr)
        self.assertEqual(res.stdout.strip(), "baa %s" % configure_version())

    def test_the_installed_script_renders_a_site_nginx_accepts(self):
        work = make_temp_dir("baa-it-install-site-")
        cert, key = os.path.join(work, "cert.pem"), os.path.join(work, "key.pem")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                        "-subj", "/CN=baa.test", "-keyout", key, "-out", cert],
                       check=True, capture_output=True, timeout=60)
        site = os.path.join(work, "baa.conf")
        env = dict(clean_env(), SERVER_NAME="baa.test", TLS_CERT=cert, TLS_KEY=key,
                   LOG_DIR=work, HTTP_LISTEN="127.0.0.1:8080", HTTPS_LISTEN="127.0.0.1:8443")
        env.pop("STATIC_ROOT", None)
        res = subprocess.run([self.path("share", "baa", "scripts", "render-nginx"), "site", site,
                              "unix:/run/baa/baa.sock"], capture_output=True, text=True,
                             env=env, timeout=60)
        self.assertEqual(res.returncode, 0, res.stdout + res.stderr)
        with open(site) as f:
            text = f.read()
        # The installed page, not the checkout's and not a package's path.
        self.assertIn("root %s;" % self.path("share", "baa", "static"), text)
        self.assertNotIn(REPO, text)
        main = os.path.join(work, "nginx.conf")
        with open(main, "w") as f:
            f.write("pid %s/nginx.pid;\nerror_log %s/error.log;\nevents {}\n"
                    "http { include /etc/nginx/mime.types; include %s; }\n" % (work, work, site))
        res = subprocess.run([NGINX_BIN, "-t", "-q", "-p", work, "-c", main, "-e",
                              os.path.join(work, "error.log")], capture_output=True, text=True,
                             timeout=30)
        self.assertEqual(res.returncode, 0, res.stderr)

    def test_the_example_environment_sets_only_what_baa_reads(self):
        with open(self.path("share", "baa", "baa.env.example")) as f:
            names = re.findall(r"^#?([A-Z][A-Z0-9_]+)=", f.read(), re.M)
        known = set(config_variables())
        self.assertTrue(names, "the example sets nothing")
        self.assertEqual([n for n in names if n not in known], [], "not a variable of baa")
        for required in ("POSTGRES_URL", "POSTGRES_USER", "POSTGRES_PW", "POSTGRES_DB",
                         "SPOTIFY_CLIENT_ID", "SPOTIFY_CLIENT_SECRET", "SPOTIFY_REDIRECT_URI",
                         "BAA_SECRET_KEY"):
            self.assertIn(required, names)


    def test_systemd_verifies_the_units_and_they_run_the_installed_binary(self):
        units = self.path("lib", "systemd", "system")
        work = make_temp_dir("baa-it-install-units-")
        for name in ("baa@.service", "baa-migrate.service"):
            with open(os.path.join(units, name)) as f:
                text = f.read()
            exec_start = re.findall(r"^ExecStart=(\S+)", text, re.M)
            self.assertEqual(exec_start, [os.path.join(self.prefix, "sbin", "baa")], name)
            self.assertIn("EnvironmentFile=", text)
            # verify checks that the binary is there: the one in DESTDIR.
            with open(os.path.join(work, name), "w") as f:
                f.write(text.replace("ExecStart=" + self.prefix, "ExecStart=" + self.path()))
        with open(os.path.join(work, "baa@.service")) as f:
            template = f.read()
        with open(os.path.join(work, "baa@1.service"), "w") as f:
            f.write(template)
        res = subprocess.run(["systemd-analyze", "verify", "--man=no", "./baa@1.service",
                              "./baa-migrate.service"], cwd=work, capture_output=True,
                             text=True, timeout=60)
        self.assertEqual((res.returncode, res.stdout + res.stderr), (0, ""),
                         "systemd-analyze verify has something to say")
        res = subprocess.run(["systemd-analyze", "security", "--offline=true", "./baa@1.service"],
                             cwd=work, capture_output=True, text=True, timeout=60)
        level = re.search(r"Overall exposure level for baa@1.service: ([\d.]+)", res.stdout)
        self.assertIsNotNone(level, res.stdout[-500:] + res.stderr)
        # README, "systemd": 1.5 ("OK"), out of 10 for a service with no sandbox.
        self.assertLessEqual(float(level.group(1)), 2.0, res.stdout[-2000:])


if __name__ == "__main__":
    unittest.main()
