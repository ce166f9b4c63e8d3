"""The Debian package: built from the tree, lintian-clean, and installed
into a throwaway Debian 12 root where its maintainer scripts really run.

A copy of the tree (the files git knows, as they are in the checkout: the
checkout itself is left alone) is built with `dpkg-buildpackage -us -uc
-b` (DEB_BUILD_OPTIONS=nocheck: the unit tests have their own run), and
lintian checks the .changes at the level Debian requires (no error, no
warning). debootstrap makes a minimal bookworm root (kept under
BAA_IT_CACHE, /var/tmp/baa-it-cache by default, for the rest of the day,
and copied from there: the cache saves half a minute, nothing more), and
apt-get installs the .deb into it, its dependencies from Debian's mirror.
Each command in the root runs through chroot inside a mount namespace of
its own with /proc mounted there, so no mount outlives the command, even
when it fails or is killed.

Then the package's life as an operator lives it: install, an operator's
edit of /etc/baa/baa.env, a reinstall (the postinst again), a purge, a
second install. The tests check what each left: the system user, the
environment file (0600, root's, keys generated at install, never
overwritten, gone at purge), the units shipped and not enabled, no nginx
site enabled, `baa --version`, and `baa migrate` and `baa rotate-keys`
from the root, with the generated file plus the database settings the
operator adds, against the run's PostgreSQL on loopback (the root shares
the machine's network).
"""

import glob
import os
import re
import shutil
import unittest

from harness import (REPO, HarnessError, built_package, cluster, configure_version,
                     debootstrapped_root, in_root, make_temp_dir, package_deb, root_only,
                     run_checked, slow)

TOOLS = ("dpkg-buildpackage", "lintian", "debootstrap", "unshare", "chroot")
ENV_FILE = "etc/baa/baa.env"
DB = "baa_package"


def env_values(text):
    return dict(re.findall(r"^([A-Z][A-Z0-9_]*)=(.*)$", text, re.M))


def stat_of(path):
    st = os.stat(path)
    return st.st_mode & 0o7777, st.st_uid, st.st_gid


@slow("builds the package, debootstraps Debian 12 (or copies today's), installs it: "
      "0.5-1 min, 1.5 from nothing")
@root_only("debootstrap, chroot and the package's maintainer scripts need root")
@unittest.skipIf(os.environ.get("SANITIZER_LOG_DIR"),
                 "the package is built from the tree, not from the binary under test: "
                 "the normal round covers it")
class PackageTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        missing = [t for t in TOOLS if shutil.which(t) is None]
        if missing:
            raise HarnessError("missing %s: scripts/setup-debian installs them" % " ".join(missing))
        cls.work = make_temp_dir("baa-it-package-")
        os.chmod(cls.work, 0o755)
        cls.changes = built_package()
        cls.deb = package_deb(cls.changes)
        cls.root = os.path.join(cls.work, "root")
        debootstrapped_root(cls.root)
        shutil.copy(cls.deb, os.path.join(cls.root, "tmp", "baa.deb"))
        cls.env_path = os.path.join(cls.root, ENV_FILE)
        cls.live_the_package_life()

    @classmethod
    def live_the_package_life(cls):
        """Install, edit, reinstall, purge, install again: what each left."""
        in_root(cls.root, "apt-get update -q && "
                "apt-get install -y -q --no-install-recommends /tmp/baa.deb", timeout=600)
        cls.first = {"text": open(cls.env_path).read(), "stat": stat_of(cls.env_path),
                     "dir": stat_of(os.path.dirname(cls.env_path))}
        with open(cls.env_path, "a") as f:
            f.write("# the operator's line\n")
        in_root(cls.root, "dpkg -i /tmp/baa.deb")
        cls.after_reinstall = open(cls.env_path).read()
        in_root(cls.root, "dpkg --purge baa")
        cls.after_purge = {"env": os.path.lexists(cls.env_path),
                           "passwd": open(os.path.join(cls.root, "etc", "passwd")).read()}
        in_root(cls.root, "dpkg -i /tmp/baa.deb")
        cls.second = open(cls.env_path).read()

    def root_path(self, *parts):
        return os.path.join(self.root, *parts)

    def test_lintian_finds_no_error_and_no_warning(self):
        res = run_checked(["lintian", "--fail-on", "error,warning", "--tag-display-limit", "0",
                   self.changes], 300, "lintian", check=False)
        self.assertEqual(res.returncode, 0, res.stdout + res.stderr)
        self.assertNotRegex(res.stdout, r"(?m)^[EW]: ")

    def test_the_package_carries_no_configuration_and_no_secret(self):
        listing = run_checked(["dpkg-deb", "-c", self.deb], 60, "dpkg-deb -c").stdout
        self.assertNotRegex(listing, r" \./etc/", "the .deb ships files in /etc")
        unpacked = os.path.join(self.work, "unpacked")
        run_checked(["dpkg-deb", "-x", self.deb, unpacked], 60, "dpkg-deb -x")
        with open(os.path.join(unpacked, "usr", "share", "baa", "baa.env.example")) as f:
            example = env_values(f.read())
        self.assertEqual(example.get("BAA_SECRET_KEY"), "", "the example holds a secret")
        self.assertNotIn("BAA_TOKEN_KEY", example)

    def test_baa_is_a_system_user_without_a_login(self):
        for passwd in (open(self.root_path("etc", "passwd")).read(), self.after_purge["passwd"]):
            entry = re.search(r"^baa:x:(\d+):(\d+):[^:]*:([^:]*):([^:\n]*)$", passwd, re.M)
            self.assertIsNotNone(entry, "no user baa (after a purge too: policy keeps it)")
            uid, gid, home, shell = int(entry[1]), int(entry[2]), entry[3], entry[4]
            self.assertLess(uid, 1000, "not a system user")
            self.assertEqual((home, shell), ("/nonexistent", "/usr/sbin/nologin"))
        with open(self.root_path("etc", "group")) as f:
            self.assertRegex(f.read(), r"(?m)^baa:x:%d:" % gid)

    def test_the_environment_file_is_root_s_only_with_keys_made_at_install(self):
        self.assertEqual(self.first["stat"], (0o600, 0, 0))
        with open(self.root_path("etc", "group")) as f:
            baa_gid = int(re.search(r"(?m)^baa:x:(\d+):", f.read())[1])
        self.assertEqual(self.first["dir"], (0o750, 0, baa_gid))
        first, second = env_values(self.first["text"]), env_values(self.second)
        for values in (first, second):
            self.assertRegex(values.get("BAA_SECRET_KEY", ""), r"^[A-Za-z0-9+/]{64}$")
            self.assertRegex(values.get("BAA_TOKEN_KEY", ""), r"^[0-9a-f]{64}$")
        self.assertNotEqual(first["BAA_SECRET_KEY"], second["BAA_SECRET_KEY"],
                            "two installs, one secret")
        self.assertNotEqual(first["BAA_TOKEN_KEY"], second["BAA_TOKEN_KEY"])
        self.assertNotEqual(first["BAA_SECRET_KEY"], first["BAA_TOKEN_KEY"])

    def test_a_reinstall_keeps_the_operator_s_file_and_a_purge_removes_it(self):
        self.assertEqual(self.after_reinstall, self.first["text"] + "# the operator's line\n")
        self.assertFalse(self.after_purge["env"], "baa.env left after dpkg --purge")

    def test_the_units_are_shipped_and_not_enabled(self):
        for name in ("baa@.service", "baa-migrate.service"):
            with open(self.root_path("usr", "lib", "systemd", "system", name)) as f:
                text = f.read()
            self.assertIn("ExecStart=/usr/sbin/baa ", text)
            self.assertIn("EnvironmentFile=/etc/baa/baa.env", text)
        # The .wants links, and deb-systemd-helper's record of what it enabled.
        enabled = [os.path.join(d, n)
                   for top in (self.root_path("etc", "systemd"),
                               self.root_path("var", "lib", "systemd",
                                              "deb-systemd-helper-enabled"))
                   for d, _, files in os.walk(top) for n in files if n.startswith("baa")]
        self.assertEqual(enabled, [], "a unit of baa is enabled")

    def test_no_nginx_site_is_enabled_and_the_templates_render(self):
        self.assertEqual(glob.glob(self.root_path("etc", "nginx", "sites-enabled", "*")), [])
        self.assertTrue(os.path.isfile(self.root_path("usr", "share", "baa", "nginx",
                                                      "baa.conf.in")))
        in_root(self.root, "SERVER_NAME=baa.test TLS_CERT=/etc/ssl/baa.pem "
                "TLS_KEY=/etc/ssl/baa.key /usr/share/baa/scripts/render-nginx site "
                "/tmp/baa.conf unix:/run/baa/1/baa.sock")
        with open(self.root_path("tmp", "baa.conf")) as f:
            self.assertIn("root /usr/share/baa/static;", f.read())

    def test_baa_version_runs_from_the_root(self):
        res = in_root(self.root, "baa --version")
        self.assertEqual(res.stdout.strip(), "baa %s" % configure_version())

    def test_baa_migrate_and_rotate_keys_run_from_the_root_with_the_generated_file(self):
        pg = cluster()
        pg.ensure_running()
        pg.create_database(DB)
        # What README.Debian's first step has the operator do.
        settings = {"POSTGRES_URL": "127.0.0.1:%d" % pg.port, "POSTGRES_USER": pg.superuser,
                    "POSTGRES_PW": pg.password, "POSTGRES_DB": DB}
        with open(self.env_path) as f:
            text = f.read()
        for name, value in settings.items():
            text = re.sub(r"(?m)^%s=.*$" % name, "%s=%s" % (name, value), text)
        with open(self.env_path, "w") as f:
            f.write(text)
        # As systemd runs baa-migrate.service: the file read as root, baa as baa.
        as_baa = ("set -a && . /etc/baa/baa.env && set +a && "
                  "exec setpriv --reuid=baa --regid=baa --clear-groups /usr/sbin/baa ")
        res = in_root(self.root, as_baa + "migrate", timeout=120, check=False)
        self.assertEqual(res.returncode, 0, res.stdout + res.stderr)
        self.assertRegex(res.stdout, r"Schema is at version \d+ \(\d+ migrations applied\)")
        migrations = len(glob.glob(os.path.join(REPO, "sql", "*.sql")))
        self.assertEqual(pg.psql_value("SELECT count(*) FROM schema_migrations", db=DB),
                         str(migrations))
        for table in ("users", "sessions", "auth_events"):
            self.assertTrue(pg.table_exists(DB, table), table)
        # rotate-keys loads BAA_SECRET_KEY and BAA_TOKEN_KEY by baa's own rules.
        res = in_root(self.root, as_baa + "rotate-keys", timeout=120, check=False)
        self.assertEqual(res.returncode, 0, res.stdout + res.stderr)


if __name__ == "__main__":
    unittest.main()
