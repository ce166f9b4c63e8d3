"""TLS between baa and PostgreSQL: POSTGRES_SSLMODE and POSTGRES_SSLROOTCERT.

A cluster of the class's own with ssl = on and a certificate from a
throwaway CA for 127.0.0.1 and ::1 only (not "localhost", so that the
same server, reached by that name, shows a certificate for another name):

- verify-full with the CA that signed it: /readyz is 200 and the server
  sees baa's connection encrypted (pg_stat_ssl); POSTGRES_SSLROOTCERT alone
  makes verify-full the default; resetdb, migrate and rotate-keys connect
  the same way;
- verify-full with another CA, or to a name the certificate does not
  carry: /readyz is 503, db_connect_failed gives libpq's reason, the
  password appears nowhere; migrate and rotate-keys fail the same way;
- require without a CA: encrypted, not verified (another CA's certificate
  would do as well);
- at start: a POSTGRES_SSLROOTCERT that cannot be read, a verifying mode
  without it, and a network address with neither variable stop baa with
  exit status 78 naming the variable, before any connection;
- the default on loopback (prefer) goes on working with the shared cluster,
  which has no TLS, and the log says tls=off.
"""

import os
import unittest

from harness import (UNPRIVILEGED_USER, Baa, BaaTestCase, PostgresCluster, base_env,
                     db_env, fake_spotify_certs, make_temp_dir, serve_env, wait_until,
                     with_extra)
from harness.tags import root_only, slow

EXIT_CONFIG = 78
BACKENDS_SQL = ("SELECT s.ssl FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) "
                "WHERE a.application_name = 'baa' AND a.datname = '%s'")


@slow("a PostgreSQL cluster of its own, with TLS")
class PostgresTlsTest(BaaTestCase):

    workers = 1

    @classmethod
    def setUpClass(cls):
        super().setUpClass()  # the class database on the shared cluster, for the default
        certs = fake_spotify_certs()
        cls.certdir = make_temp_dir("baa-it-pgtls-")
        ca = certs.CertificateAuthority(cls.certdir, "pg")
        cls.ca_file = ca.ca_file
        cls.other_ca_file = certs.CertificateAuthority(cls.certdir, "other").ca_file
        cert, key = ca.issue("pgserver", names=["IP:127.0.0.1", "IP:::1"])
        cls.tls_pg = PostgresCluster()
        cls.tls_pg.use_certificate(cert, key)
        cls.tls_pg.start()
        cls.addClassCleanup(cls.tls_pg.stop)
        res = cls.cli.run(["resetdb"], env=cls.tls_env(POSTGRES_SSLMODE="verify-full",
                                                       POSTGRES_SSLROOTCERT=cls.ca_file))
        if res.returncode != 0:
            raise AssertionError("setUpClass: resetdb over verify-full failed (%d)\n%s\n%s"
                                 % (res.returncode, res.stdout, res.stderr))

    def setUp(self):
        super().setUp()
        self.tls_pg.ensure_running()

    @classmethod
    def tls_env(cls, host="127.0.0.1", **extra):
        """baa's environment for the class database on the TLS cluster."""
        env = base_env(cls.db, workers=cls.workers)
        env.update(db_env(cls.db, url="%s:%d" % (host, cls.tls_pg.port), pg=cls.tls_pg))
        return with_extra(env, extra)

    def backends_ssl(self, pg):
        """pg_stat_ssl's ssl column for each of baa's connections to the class database."""
        return [row[0] for row in pg.psql_rows(BACKENDS_SQL % self.db)]

    def connected_tls(self, baa):
        """The tls field of baa's first db_connected record (the log is written in batches)."""
        def record():
            return [r for r in baa.log_records() if r.get("event") == "db_connected"]
        wait_until(record, 2, message="no db_connected in the log:\n" + baa.log())
        return record()[0].get("tls")

    def assertServes(self, env, pg):
        baa, nginx = self.start_stack(env)
        for _ in range(3):
            self.get_json(nginx, "/readyz", expect=200)
        wait_until(lambda: self.backends_ssl(pg), 5, message="no baa backend on the server")
        return baa

    def assertRefused(self, env, reason):
        baa, nginx = self.start_stack(env)
        for _ in range(3):
            status, _, doc = self.get_json(nginx, "/readyz", expect=503)
        wait_until(lambda: any(r.get("event") == "db_connect_failed" for r in baa.log_records()),
                   2, message="no db_connect_failed in the log:\n" + baa.log())
        reasons = {r["reason"] for r in baa.log_records() if r.get("event") == "db_connect_failed"}
        self.assertTrue(all(reason in r for r in reasons), reasons)
        self.assertNotIn(env["POSTGRES_PW"], baa.log())
        self.assertEqual(self.backends_ssl(self.tls_pg), [], "baa reached the server")
        for command in ("migrate", "rotate-keys"):
            res = self.run_baa([command], env)  # run_baa: no password on stdout or stderr
            self.assertEqual(res.returncode, 1, self.describe(res))
            self.assertIn(reason, res.stderr, self.describe(res))

    # (a)
    def test_verify_full_with_the_servers_ca_serves_over_tls(self):
        for env in ({"POSTGRES_SSLMODE": "verify-full", "POSTGRES_SSLROOTCERT": self.ca_file},
                    {"POSTGRES_SSLROOTCERT": self.ca_file}):  # verify-full by default
            with self.subTest(**env):
                baa = self.assertServes(self.tls_env(**env), self.tls_pg)
                self.assertEqual(set(self.backends_ssl(self.tls_pg)), {"t"})
                self.assertEqual(self.connected_tls(baa), "on")
                baa.stop()
                wait_until(lambda: not self.backends_ssl(self.tls_pg), 5)

    def test_migrate_and_rotate_keys_connect_with_verify_full(self):
        env = self.tls_env(POSTGRES_SSLMODE="verify-full", POSTGRES_SSLROOTCERT=self.ca_file)
        for command in ("migrate", "rotate-keys"):
            res = self.run_baa([command], env)
            self.assertEqual(res.returncode, 0, self.describe(res))

    # (b)
    def test_verify_full_with_another_ca_is_refused(self):
        self.assertRefused(self.tls_env(POSTGRES_SSLMODE="verify-full",
                                        POSTGRES_SSLROOTCERT=self.other_ca_file),
                           "certificate verify failed")

    # (c)
    def test_verify_full_to_a_name_the_certificate_lacks_is_refused(self):
        self.assertRefused(self.tls_env(host="localhost", POSTGRES_SSLMODE="verify-full",
                                        POSTGRES_SSLROOTCERT=self.ca_file),
                           "does not match host name")

    def test_verify_ca_checks_the_ca_but_not_the_name(self):
        self.assertServes(self.tls_env(host="localhost", POSTGRES_SSLMODE="verify-ca",
                                       POSTGRES_SSLROOTCERT=self.ca_file), self.tls_pg)
        self.assertEqual(set(self.backends_ssl(self.tls_pg)), {"t"})

    # (d)
    def test_require_without_a_ca_is_encrypted_but_not_verified(self):
        # the name is wrong for the certificate, and no CA is given: require takes it
        self.assertServes(self.tls_env(host="localhost", POSTGRES_SSLMODE="require"),
                          self.tls_pg)
        self.assertEqual(set(self.backends_ssl(self.tls_pg)), {"t"})

    # (f)
    def test_default_on_loopback_works_without_tls_and_says_so(self):
        baa = self.assertServes(self.env(), self.pg)  # the shared cluster: no ssl
        self.assertEqual(set(self.backends_ssl(self.pg)), {"f"})
        self.assertEqual(self.connected_tls(baa), "off")

    def test_default_on_loopback_uses_tls_when_the_server_offers_it(self):
        self.assertServes(self.tls_env(), self.tls_pg)
        self.assertEqual(set(self.backends_ssl(self.tls_pg)), {"t"})


class PostgresTlsConfigurationTest(BaaTestCase):
    """What baa refuses at start, before any connection."""

    workers = 1
    reset_database = False

    def fails(self, command, **extra):
        env = self.env(**extra)
        if command == "serve":
            env = serve_env(env)
        res = Baa(make_temp_dir("baa-it-pgtlsconf-")).run([command], env, timeout=15)
        self.assertEqual(res.returncode, EXIT_CONFIG, self.describe(res))
        self.assertSecretsNotIn(res, env)
        self.assertNotIn("Creating", res.stdout)
        return res.stderr

    # (e)
    def test_a_root_certificate_that_cannot_be_read_stops_every_command(self):
        for command in ("serve", "resetdb", "migrate"):
            with self.subTest(command=command):
                err = self.fails(command, POSTGRES_SSLMODE="verify-full",
                                 POSTGRES_SSLROOTCERT="/nonexistent/root.crt")
                self.assertIn("Environment variable 'POSTGRES_SSLROOTCERT' names a file that "
                              "cannot be read (No such file or directory).", err)

    @root_only("the file is readable at the check, not after the drop")
    def test_a_root_certificate_baa_user_cannot_read_stops_serve(self):
        path = os.path.join(make_temp_dir("baa-it-pgtlsconf-"), "root-only.pem")
        certs = fake_spotify_certs().CertificateAuthority(os.path.dirname(path), "root-only")
        os.chmod(certs.ca_file, 0o600)
        err = self.fails("serve", POSTGRES_SSLROOTCERT=certs.ca_file)
        self.assertIn("'POSTGRES_SSLROOTCERT' names a file that BAA_USER (%s) cannot read "
                      "(Permission denied)." % UNPRIVILEGED_USER, err)

    def test_a_verifying_mode_without_a_root_certificate_is_refused(self):
        for mode in ("verify-ca", "verify-full"):
            with self.subTest(mode=mode):
                err = self.fails("migrate", POSTGRES_SSLMODE=mode)
                self.assertIn("'POSTGRES_SSLMODE' is '%s', which needs POSTGRES_SSLROOTCERT"
                              % mode, err)

    def test_a_network_address_without_tls_settings_is_refused(self):
        for command in ("serve", "resetdb", "migrate"):
            with self.subTest(command=command):
                err = self.fails(command, POSTGRES_URL="db.invalid:5432")
                self.assertIn("Environment variable 'POSTGRES_SSLROOTCERT' is not set, and "
                              "POSTGRES_URL is not on this machine", err)

    def test_an_unknown_sslmode_is_refused(self):
        err = self.fails("migrate", POSTGRES_SSLMODE="on")
        self.assertIn("Environment variable 'POSTGRES_SSLMODE' must be one of disable, allow, "
                      "prefer, require, verify-ca, verify-full.", err)


if __name__ == "__main__":
    unittest.main()
