"""POSTGRES_URL with several hosts (`host1:5432,host2:5432`): baa hands
libpq the list with target_session_attrs=read-write, so it works on the
first host that takes writes, skips one that refuses connections or is
read-only (a standby), says not ready while none takes writes, and finds
the new primary by itself when the roles change.

Two clusters of the test's own stand for a primary and its standby: a
standby is a server whose sessions are read-only, which is what libpq asks
(default_transaction_read_only, reported at connect), so turning that
setting on and off stands for a promotion without a replication setup.
The real failover, with pg_auto_failover and synchronous replication, is
test_failover.py's.
"""

from harness import (PostgresCluster, SpotifyTestCase, base_env, cluster, free_port,
                     wait_until)


def set_read_only(node, on):
    node.psql("ALTER SYSTEM SET default_transaction_read_only = %s" % ("on" if on else "off"))
    node.psql("SELECT pg_reload_conf()")


class SeveralDatabaseHostsTest(SpotifyTestCase):
    class_stack = False
    workers = 1

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        shared = cluster()
        cls.nodes = []
        for _ in range(2):
            # The same role and password as the shared cluster's: one
            # POSTGRES_USER and POSTGRES_PW for every host, as in production.
            node = PostgresCluster(password=shared.password)
            node.start()
            cls.addClassCleanup(node._cleanup)
            res = cls.cli.run(["resetdb"], env=base_env(cls.db, POSTGRES_URL=cls.url(node)))
            if res.returncode != 0:
                raise AssertionError("resetdb on a node failed:\n%s" % cls.describe(res))
            cls.nodes.append(node)
        cls.a, cls.b = cls.nodes

    @staticmethod
    def url(*nodes):
        return ",".join(n if isinstance(n, str) else "127.0.0.1:%d" % n.port for n in nodes)

    def setUp(self):
        super().setUp()
        for node in self.nodes:
            set_read_only(node, False)
            node.psql("DELETE FROM users", db=self.db)
        # A port nothing listens on: a host that is down.
        self.closed = "127.0.0.1:%d" % free_port()

    def stack(self, *nodes):
        baa, nginx = self.start_stack(self.login_env(POSTGRES_URL=self.url(*nodes)))
        return baa, nginx

    def users_on(self, node):
        return [r[0] for r in node.psql_rows("SELECT spotify_id FROM users ORDER BY 1", db=self.db)]

    def readyz(self, nginx):
        status, _, body = nginx.request("GET", "/readyz")
        return status, body

    def connected_ports(self, baa, expected):
        """The ports of the log's db_(re)connected records once `expected`
        is among them (the log is written in batches)."""
        def ports():
            found = [r.get("port") for r in baa.log_records()
                     if r.get("event") in ("db_connected", "db_reconnected")]
            return found if str(expected) in found else None
        wait_until(ports, 3, message="no connect to %s in the log:\n%s" % (expected, baa.log()))
        return ports()

    def test_logins_land_on_the_first_host_that_takes_writes(self):
        set_read_only(self.b, True)
        baa, nginx = self.stack(self.closed, self.b, self.a)
        self.assertEqual(self.readyz(nginx)[0], 200)
        self.login(nginx=nginx)
        self.assertEqual(len(self.users_on(self.a)), 1)
        self.assertEqual(self.users_on(self.b), [])
        # The log says where it went; never the password.
        self.assertEqual(set(self.connected_ports(baa, self.a.port)), {str(self.a.port)})
        self.assertNotIn(self.pg.password, baa.log())

    def test_not_ready_while_no_host_takes_writes(self):
        set_read_only(self.b, True)
        baa, nginx = self.stack(self.closed, self.b)
        status, body = self.readyz(nginx)
        self.assertEqual(status, 503, body)
        self.assertIn(b"database unavailable", body)
        # A login's callback cannot store its user: refused, nothing written.
        browser, params = self.begin_login(nginx=nginx)
        resp = browser.callback(params)
        self.assertEqual(resp.status, 503, resp)
        self.assertEqual(self.users_on(self.b), [])
        # The standby is promoted: baa sees it at its next connect, unrestarted.
        set_read_only(self.b, False)
        wait_until(lambda: self.readyz(nginx)[0] == 200, timeout=15,
                   message="/readyz once a host takes writes")
        self.login(nginx=nginx)
        self.assertEqual(len(self.users_on(self.b)), 1)

    def test_finds_the_new_primary_when_the_roles_change(self):
        set_read_only(self.b, True)
        baa, nginx = self.stack(self.a, self.b)
        self.login(nginx=nginx)
        on_a = self.users_on(self.a)
        self.assertEqual(len(on_a), 1)
        # A switchover: the primary becomes read-only and its sessions end
        # (a demoted server restarts), the standby takes writes.
        set_read_only(self.a, True)
        self.a.psql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE application_name = 'baa'")
        set_read_only(self.b, False)
        wait_until(lambda: self.readyz(nginx)[0] == 200, timeout=15,
                   message="/readyz on the new primary")
        self.fake.reset()
        self.login(nginx=nginx)
        self.assertEqual(self.users_on(self.b), on_a)
        self.assertEqual(self.users_on(self.a), on_a)
        self.connected_ports(baa, self.b.port)
