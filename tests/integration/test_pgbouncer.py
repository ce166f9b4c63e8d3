"""baa behind a real PgBouncer in transaction pooling mode (Debian's 1.18,
which does not carry protocol-level prepared statements there), with
BAA_DB_POOLER=transaction and more workers than server connections: the
login, /me, token refresh, logout and deletion work, PostgreSQL sees no
more connections than the pool, and without the setting baa does not
work through the bouncer."""

import threading
import time

from harness import (SESSION_COOKIE, PgBouncer, SpotifyTestCase, base_env, mint_session,
                     parse_logfmt, parse_metrics, run_concurrently, wait_until)
from harness.tags import slow

POOL_SIZE = 2
WORKERS = 4  # more than POOL_SIZE: server connections really are shared


class BouncerTestCase(SpotifyTestCase):
    """A PgBouncer for the class; baa reaches the class database through it.
    resetdb (in setUpClass) and the tests' own psql go to PostgreSQL directly."""

    workers = WORKERS
    class_stack = False
    bouncer_options = {}

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.bouncer = PgBouncer(cls.pg, pool_size=POOL_SIZE, **cls.bouncer_options).start()
        cls.addClassCleanup(cls.bouncer.stop)

    @classmethod
    def bouncer_env(cls, **extra):
        env = cls.login_env(**extra)
        env.update(cls.bouncer.db_env(cls.db))
        return env

    def server_connections(self):
        """PostgreSQL backends on the class database, other than this query's own."""
        return int(self.pg.psql_value(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = '%s' "
            "AND pid <> pg_backend_pid()" % self.db))

    def bouncer_clients(self):
        """Client connections PgBouncer holds for the class database: baa's workers."""
        return [c for c in self.bouncer.admin("SHOW CLIENTS") if c["database"] == self.db]

    def failed_statements(self, baa, since=0):
        """db_statement_failed records of baa's log, from character `since` on."""
        return [r for r in map(parse_logfmt, baa.log()[since:].splitlines())
                if r.get("event") == "db_statement_failed"]


@slow("a PgBouncer per class, statement timeouts")
class TransactionPoolingTest(BouncerTestCase):
    """BAA_DB_POOLER=transaction: every flow works through the bouncer."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.baa, cls.nginx = cls.start_class_stack(cls.bouncer_env(
            BAA_DB_POOLER="transaction", BAA_SPOTIFY_TIMEOUT_MS=1000))

    def setUp(self):
        super().setUp()
        # the class's baa: this test's part of its log, from a whole line on
        self.log_start = self.baa.log().rfind("\n") + 1

    def failed_statements(self, baa, since=None):
        return super().failed_statements(baa, self.log_start if since is None else since)

    def me(self, cookie, method="GET", path="/me"):
        return self.browser().request(method, path, cookies={SESSION_COOKIE: cookie})

    def test_login_stores_the_user_and_me_answers(self):
        b, r = self.login()
        row = self.user()
        self.assertTrue(row["spotify_token"] and row["refresh_token"], row)
        for _ in range(10):
            resp = b.get("/me")
            self.assertEqual(resp.status, 200, "%r%s" % (resp, self.stack_context()))
            self.assertEqual(resp.json()["id"], row["id"])
            self.assertEqual(resp.json()["spotify_id"], row["spotify_id"])
        self.assertEqual(self.nginx.get("/readyz")[0], 200)
        self.assertEqual(self.failed_statements(self.baa), [])

    def test_expiring_token_is_refreshed_exactly_once_under_concurrent_requests(self):
        # As in test_tokens: the refresh holds the row lock (and so one of the
        # two server connections) while Spotify answers slowly.
        self.fake.configure(expires_in=30)
        b, r = self.login()
        self.fake.configure(expires_in=3600)
        before = self.user()
        results, new = self.assertRefreshedOnceForAll(
            lambda: self.me(r.session_cookie, path="/me/token"), before)
        self.assertEqual(self.user()["spotify_token"], new)
        self.assertEqual(self.user()["refresh_token"], before["refresh_token"])
        # and the refreshed token is served from now on, without another refresh
        again = self.me(r.session_cookie, path="/me/token")
        self.assertEqual(again.json()["access_token"], new)
        self.assertEqual(self.fake.stats()["token_refresh_token"], 1)

    def test_logout_revokes_the_session_at_once_on_every_worker(self):
        b, r = self.login()
        old = r.session_cookie
        # every worker serves the profile before the logout: none may keep it
        for resp in run_concurrently([lambda: self.me(old)] * 16):
            self.assertEqual(resp.status, 200, resp)
        self.assertEqual(b.post("/logout").status, 200)
        for resp in run_concurrently([lambda: self.me(old)] * 16):
            self.assertEqual(resp.status, 401, "a revoked session was served: %r" % resp)
        self.assertEqual(len(self.users()), 1, "logout must not delete the user")

    def test_session_checks_batched_through_the_bouncer_each_get_their_own(self):
        # The statement that checks one wake-up's sessions goes through the
        # bouncer unnamed, as every statement does here.
        users = []
        for i in range(24):
            user_id = int(self.pg.psql_value(
                "INSERT INTO users (spotify_id, spotify_token, token_expires_at, authorized_at)"
                " VALUES ('bounced-%02d', 'T', now() + interval '1 hour', now()) RETURNING id"
                % i, db=self.db))
            users.append((user_id, mint_session(self.pg, self.db, user_id)))

        def batched():
            body = self.nginx.get("/metrics")[2].decode()
            return parse_metrics(body).get('baa_session_lookups_total{source="batch"}', 0)

        before = batched()
        for _ in range(10):
            results = run_concurrently([lambda c=c: self.me(c) for _, c in users])
            for (user_id, _), resp in zip(users, results):
                self.assertEqual(resp.status, 200, "%r%s" % (resp, self.stack_context()))
                self.assertEqual(resp.json()["id"], user_id, "another user's profile")
            if batched() > before:
                break
        self.assertGreater(batched(), before, "no session check was batched")
        self.assertEqual(self.failed_statements(self.baa), [])

    def test_delete_me_removes_the_row(self):
        b, r = self.login()
        self.assertEqual(b.get("/me").status, 200)
        resp = b.delete("/me")
        self.assertEqual(resp.status, 200, resp)
        self.assertEqual(self.users(), [])
        for resp in run_concurrently([lambda: self.me(r.session_cookie)] * 8):
            self.assertEqual(resp.status, 401, resp)

    def test_server_connections_stay_within_the_pool_while_every_worker_is_connected(self):
        b, r = self.login()
        statuses, peak = [], [0]
        stop = threading.Event()

        def load():
            while not stop.is_set():
                try:
                    statuses.append(self.me(r.session_cookie).status)
                except Exception as exc:  # recorded, never raised in a thread
                    statuses.append(repr(exc))

        def watch():
            while not stop.is_set():
                peak[0] = max(peak[0], self.server_connections())
                time.sleep(0.02)

        threads = [threading.Thread(target=load, daemon=True) for _ in range(8)]
        threads.append(threading.Thread(target=watch, daemon=True))
        for t in threads:
            t.start()
        try:
            # every worker has its own client connection to the bouncer...
            wait_until(lambda: len(self.bouncer_clients()) == WORKERS, 15,
                       message="not every worker connected: %r" % self.bouncer_clients())
            time.sleep(0.5)
        finally:
            stop.set()
            for t in threads:
                t.join(15)
        self.assertTrue(statuses)
        self.assertEqual([s for s in statuses if s != 200], [])
        # ...while PostgreSQL saw at most the pool's connections
        self.assertGreaterEqual(peak[0], 1)
        self.assertLessEqual(peak[0], POOL_SIZE, "more server connections than the pool")
        servers = [s for s in self.bouncer.admin("SHOW SERVERS") if s["database"] == self.db]
        self.assertLessEqual(len(servers), POOL_SIZE, servers)
        self.assertEqual(self.failed_statements(self.baa), [])

    def test_statements_are_bounded_by_the_pools_statement_timeout(self):
        # baa cannot send its 5 s statement_timeout through PgBouncer; the
        # pool's connect_query (as the README configures it) sets it instead.
        b, r = self.login()
        locker = self.pg.session(self.db)
        self.addCleanup(locker.close)
        locker.hold_lock(table="users")
        resp = b.get("/me", timeout=30)
        self.assertJsonError(resp, 503, "GET /me behind a lock")
        # 57014: query_canceled, which is what statement_timeout does
        wait_until(lambda: "57014" in [x.get("sqlstate") for x in self.failed_statements(self.baa)],
                   5, message="not cancelled by statement_timeout" + self.stack_context())
        locker.close()
        self.assertEqual(b.get("/me").status, 200)

    def test_migrate_works_through_the_bouncer_and_resetdb_is_refused(self):
        db = self.db + "_migrate"
        self.pg.create_database(db)
        self.addCleanup(self.pg.drop_database, db)
        env = base_env(db, BAA_DB_POOLER="transaction")
        env.update(self.bouncer.db_env(db))
        first = self.run_baa(["migrate"], env)
        self.assertEqual(first.returncode, 0, self.describe(first))
        self.assertTrue(self.pg.table_exists(db, "users"))
        second = self.run_baa(["migrate"], env)
        self.assertEqual(second.returncode, 0, self.describe(second))
        self.assertIn("(0 migrations applied)", second.stdout)
        # resetdb drops the database: only over a direct connection
        self.pg.psql("INSERT INTO users (spotify_id) VALUES ('kept')", db=db)
        res = self.run_baa(["resetdb"], env)
        self.assertEqual(res.returncode, 78, self.describe(res))
        self.assertIn("direct connection", res.stderr)
        self.assertEqual(res.stdout, "")
        self.assertEqual(self.pg.psql_value("SELECT spotify_id FROM users", db=db), "kept")

    def test_profile_cache_on_is_refused_with_a_transaction_pooler(self):
        env = self.bouncer_env(BAA_DB_POOLER="transaction", BAA_PROFILE_CACHE="on")
        res = self.run_baa(["serve"], env, timeout=15)
        self.assertEqual(res.returncode, 78, self.describe(res))
        self.assertIn("BAA_PROFILE_CACHE", res.stderr)
        self.assertIn("BAA_DB_POOLER=transaction", res.stderr)


@slow("a PgBouncer per class")
class WithoutTheSettingTest(BouncerTestCase):
    """The default (named prepared statements, statement_timeout as a
    startup option) behind transaction pooling fails, visibly."""

    def test_the_bouncer_refuses_the_default_connection(self):
        baa, nginx = self.start_stack(self.bouncer_env())
        status, _, body = nginx.get("/readyz")
        self.assertEqual(status, 503, body)
        wait_until(lambda: "unsupported startup parameter" in baa.log(), 5,
                   message="no connect failure logged:\n%s" % baa.log()[-2000:])
        migrate = self.run_baa(["migrate"], base_env(self.db) | self.bouncer.db_env(self.db))
        self.assertEqual(migrate.returncode, 1, self.describe(migrate))
        self.assertIn("unsupported startup parameter", migrate.stderr)


@slow("a PgBouncer per class")
class NamedStatementsBehindTransactionPoolingTest(BouncerTestCase):
    """Even with the bouncer told to ignore `options`, named statements
    prepared on one server connection are missing, or already there, on
    the next: with more workers than server connections some workers can
    never prepare theirs."""

    bouncer_options = {"ignore_startup_parameters": "options"}

    def test_named_statements_fail_where_unnamed_ones_work(self):
        baa, nginx = self.start_stack(self.bouncer_env())
        statuses = []
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            results = run_concurrently([lambda: nginx.get("/readyz")] * 16)
            statuses += [x[0] for x in results if not isinstance(x, Exception)]
            if 503 in statuses and self.failed_statements(baa):
                break
        self.assertIn(503, statuses, "named statements behind transaction pooling never failed")
        states = {r.get("sqlstate") for r in self.failed_statements(baa)}
        # 42P05: duplicate_prepared_statement, 26000: invalid_sql_statement_name
        self.assertTrue(states and states <= {"42P05", "26000"}, states)

        # the same bouncer, the same load, with the setting: nothing fails
        fixed, fixed_nginx = self.start_stack(self.bouncer_env(BAA_DB_POOLER="transaction"))
        for _ in range(5):
            results = run_concurrently([lambda: fixed_nginx.get("/readyz")] * 16)
            self.assertEqual([x[0] if not isinstance(x, Exception) else x for x in results],
                             [200] * 16)
        self.assertEqual(self.failed_statements(fixed), [])
