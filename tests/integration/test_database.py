"""`baa resetdb`, `baa migrate` and the schema they create."""

import secrets
import unittest

from harness import (BaaTestCase, free_port, ipv6_loopback_available, mint_session, socket_url_env,
                     wait_until)

RESET_EXISTING = "Deleting database.\nCreating database.\nCreating tables.\n"
RESET_MISSING = "Creating database.\nCreating tables.\n"
SUCCESS_WORDS = ("Deleting database.", "Creating database.", "Creating tables.")


class ResetDbTest(BaaTestCase):

    def resetdb(self, env=None, timeout=60):
        return self.run_baa(["resetdb"], env or self.env(), timeout=timeout)

    def assertNoSuccessClaimed(self, res):
        for word in SUCCESS_WORDS:
            self.assertNotIn(word, res.stdout, self.describe(res))

    def test_resetdb_creates_missing_database_printing_two_lines(self):
        self.pg.drop_database(self.db)
        res = self.resetdb()
        self.assertEqual(res.returncode, 0, self.describe(res))
        self.assertEqual(res.stdout, RESET_MISSING, self.describe(res))
        self.assertTrue(self.pg.database_exists(self.db))
        self.assertTrue(self.pg.table_exists(self.db, "users"))
        self.assertTrue(self.pg.table_exists(self.db, "schema_migrations"))

    def test_resetdb_on_existing_database_prints_three_lines_and_removes_data(self):
        self.assertEqual(self.resetdb().returncode, 0)
        self.insert_user(self.db, "user-before-reset")
        self.assertEqual(self.pg.psql_value("SELECT count(*) FROM users", db=self.db), "1")
        uid = int(self.pg.psql_value("SELECT id FROM users", db=self.db))
        mint_session(self.pg, self.db, uid)
        self.pg.psql("INSERT INTO auth_events (user_id, event) VALUES (%d, 'login')" % uid, db=self.db)
        cutover = self.pg.psql_value("SELECT at FROM session_cookie_cutover", db=self.db)
        res = self.resetdb()
        self.assertEqual(res.returncode, 0, self.describe(res))
        self.assertEqual(res.stdout, RESET_EXISTING, self.describe(res))
        for table in ("users", "sessions", "auth_events"):
            self.assertEqual(self.pg.psql_value("SELECT count(*) FROM %s" % table, db=self.db), "0", table)
        # a new database honours no first-format cookie issued before it
        self.assertEqual(self.pg.psql_value(
            "SELECT count(*) FROM session_cookie_cutover WHERE at > '%s'" % cutover, db=self.db), "1")
        self.assertNotEqual(self.pg.psql_value("SELECT count(*) FROM schema_migrations", db=self.db), "0",
                            "resetdb must record the applied migrations")

    def test_resetdb_succeeds_while_another_session_is_connected(self):
        self.assertEqual(self.resetdb().returncode, 0)
        self.insert_user(self.db, "user-with-session")
        session = self.pg.session(self.db)
        self.addCleanup(session.close)
        self.assertEqual(self.pg.psql_value(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = '%s' AND application_name = '%s'"
            % (self.db, session.app)), "1", "the other session must be connected to the database")
        res = self.resetdb(timeout=30)
        self.assertEqual(res.returncode, 0, self.describe(res))
        self.assertEqual(res.stdout, RESET_EXISTING, self.describe(res))
        self.assertEqual(self.pg.psql_value("SELECT count(*) FROM users", db=self.db), "0")

    def test_resetdb_fails_clearly_when_server_is_unreachable(self):
        self.insert_marker_db()
        env = self.env(POSTGRES_URL="127.0.0.1:%d" % free_port())
        res = self.resetdb(env, timeout=30)
        self.assertNotEqual(res.returncode, 0, self.describe(res))
        self.assertTrue(res.stderr.strip(), "expected an error message on stderr")
        self.assertNoSuccessClaimed(res)
        self.assertMarkerSurvived()

    def test_resetdb_fails_clearly_with_wrong_password_without_printing_it(self):
        self.insert_marker_db()
        wrong = "wrong-" + secrets.token_hex(8)
        env = self.env(POSTGRES_PW=wrong)
        res = self.resetdb(env, timeout=30)
        self.assertNotEqual(res.returncode, 0, self.describe(res))
        self.assertTrue(res.stderr.strip(), "expected an error message on stderr")
        self.assertNotIn(wrong, res.stderr + res.stdout, "wrong password value leaked")
        self.assertNotIn(self.pg.password, res.stderr + res.stdout)
        self.assertNoSuccessClaimed(res)
        self.assertMarkerSurvived()

    def test_resetdb_works_through_unix_socket_directory(self):
        self.assertEqual(self.resetdb().returncode, 0)  # the database exists now
        env = self.env(**socket_url_env(self.pg))
        res = self.resetdb(env)
        self.assertEqual(res.returncode, 0, self.describe(res))
        self.assertEqual(res.stdout, RESET_EXISTING, self.describe(res))
        self.assertTrue(self.pg.table_exists(self.db, "users"))

    # helpers
    def insert_marker_db(self):
        self.assertEqual(self.resetdb().returncode, 0)
        self.insert_user(self.db, "marker-user")

    def assertMarkerSurvived(self):
        self.assertEqual(self.pg.psql_value(
            "SELECT count(*) FROM users WHERE spotify_id = 'marker-user'", db=self.db), "1",
            "a failed resetdb must not have touched the database")


class MigrateTest(BaaTestCase):

    reset_database = False

    def fresh_db(self, suffix):
        name = "%s_%s" % (self.db, suffix)
        self.pg.create_database(name)
        self.addCleanup(self.pg.drop_database, name)
        return name

    def migrate(self, db, timeout=60, **extra):
        return self.run_baa(["migrate"], self.env(db=db, **extra), timeout=timeout)

    def snapshot(self, db):
        return {
            "dump": self.pg.schema_dump(db),
            "migrations": self.pg.psql("SELECT version, name, applied_at FROM schema_migrations ORDER BY version",
                                       db=db),
            "columns": self.pg.psql(
                "SELECT table_name, column_name, data_type, is_nullable, coalesce(column_default, '') "
                "FROM information_schema.columns WHERE table_schema = 'public' "
                "ORDER BY table_name, ordinal_position", db=db),
        }

    def test_migrate_on_fresh_empty_database_creates_tables_and_records_version_1(self):
        db = self.fresh_db("fresh")
        self.assertFalse(self.pg.table_exists(db, "users"))
        res = self.migrate(db)
        self.assertEqual(res.returncode, 0, self.describe(res))
        self.assertTrue(self.pg.table_exists(db, "users"))
        self.assertTrue(self.pg.table_exists(db, "schema_migrations"))
        versions = self.pg.psql("SELECT version FROM schema_migrations ORDER BY version", db=db).split()
        self.assertIn("1", versions)
        self.assertEqual(self.pg.psql_value(
            "SELECT count(*) FROM schema_migrations WHERE applied_at IS NULL", db=db), "0")

    def test_schema_migrations_table_has_version_primary_key_name_and_applied_at(self):
        db = self.fresh_db("smcols")
        self.assertEqual(self.migrate(db).returncode, 0)
        cols = dict((r[0], r[1]) for r in self.pg.psql_rows(
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = 'public' AND table_name = 'schema_migrations'", db=db))
        self.assertEqual(cols.get("version"), "integer", cols)
        self.assertEqual(cols.get("name"), "text", cols)
        self.assertEqual(cols.get("applied_at"), "timestamp with time zone", cols)
        pk = self.pg.psql("SELECT a.attname FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid "
                          "AND a.attnum = ANY(i.indkey) WHERE i.indrelid = 'schema_migrations'::regclass "
                          "AND i.indisprimary", db=db).split()
        self.assertEqual(pk, ["version"])

    def test_migrate_twice_changes_nothing_and_keeps_rows(self):
        db = self.fresh_db("twice")
        res = self.migrate(db)
        self.assertEqual(res.returncode, 0, self.describe(res))
        token = "t" * 500
        self.insert_user(db, "survivor", token=token)
        before = self.snapshot(db)
        res = self.migrate(db)
        self.assertEqual(res.returncode, 0, self.describe(res))
        after = self.snapshot(db)
        self.assertEqual(before["migrations"], after["migrations"], "schema_migrations rows changed")
        self.assertEqual(before["columns"], after["columns"])
        self.assertEqual(before["dump"], after["dump"], "schema changed on the second migrate")
        self.assertEqual(self.pg.psql_value("SELECT spotify_token FROM users WHERE spotify_id = 'survivor'",
                                            db=db), token)

    def test_migrate_after_resetdb_changes_nothing(self):
        db = self.fresh_db("afterreset")
        res = self.run_baa(["resetdb"], self.env(db=db))
        self.assertEqual(res.returncode, 0, self.describe(res))
        self.insert_user(db, "kept")
        before = self.snapshot(db)
        res = self.migrate(db)
        self.assertEqual(res.returncode, 0, self.describe(res))
        self.assertEqual(before, self.snapshot(db))
        self.assertEqual(self.pg.psql_value("SELECT count(*) FROM users", db=db), "1")

    def test_migrate_accepts_every_postgres_url_form(self):
        db = self.fresh_db("urls")
        port = self.pg.port
        forms = {
            "host:port": {"POSTGRES_URL": "127.0.0.1:%d" % port},
            "hostname:port": {"POSTGRES_URL": "localhost:%d" % port},
            # A host alone: libpq's default port, here given through PGPORT.
            "host": {"POSTGRES_URL": "127.0.0.1", "PGPORT": str(port)},
            "socket dir:port": {"POSTGRES_URL": "%s:%d" % (self.pg.sockdir, port)},
            "socket dir": socket_url_env(self.pg),
        }
        if self.pg.listen_ipv6:
            forms["[ipv6]:port"] = {"POSTGRES_URL": "[::1]:%d" % port}
        for label, env in forms.items():
            with self.subTest(form=label):
                res = self.migrate(db, **env)
                self.assertEqual(res.returncode, 0, self.describe(res))
                self.assertTrue(self.pg.table_exists(db, "users"))

    def test_migrate_fails_clearly_with_wrong_password_without_printing_it(self):
        db = self.fresh_db("wrongpw")
        wrong = "wrong-" + secrets.token_hex(8)
        res = self.migrate(db, POSTGRES_PW=wrong, timeout=30)
        self.assertNotEqual(res.returncode, 0, self.describe(res))
        self.assertTrue(res.stderr.strip())
        self.assertNotIn(wrong, res.stderr + res.stdout)
        self.assertFalse(self.pg.table_exists(db, "users"))

    def test_migrate_fails_clearly_when_server_is_unreachable(self):
        res = self.migrate(self.db, POSTGRES_URL="127.0.0.1:%d" % free_port(), timeout=30)
        self.assertNotEqual(res.returncode, 0, self.describe(res))
        self.assertTrue(res.stderr.strip())


class SchemaTest(BaaTestCase):

    EXPECTED_TYPES = {
        "spotify_id": "text",
        "spotify_token": "text",
        "refresh_token": "text",
        "token_expires_at": "timestamp with time zone",
        "display_name": "text",
        "scope": "text",
        "session_generation": "integer",
        "authorized_at": "timestamp with time zone",
        "account_id": "text",
        "needs_reauth_at": "timestamp with time zone",
        "scope_requested": "text",
    }

    def setUp(self):
        super().setUp()
        self.pg.psql("DELETE FROM users; DELETE FROM auth_events", db=self.db)

    def columns(self):
        return {r[0]: (r[1], r[2]) for r in self.pg.psql_rows(
            "SELECT column_name, data_type, is_nullable FROM information_schema.columns "
            "WHERE table_schema = 'public' AND table_name = 'users'", db=self.db)}

    def test_users_table_has_all_expected_columns_and_types(self):
        cols = self.columns()
        for name, typ in self.EXPECTED_TYPES.items():
            with self.subTest(column=name):
                self.assertIn(name, cols)
                self.assertEqual(cols[name][0], typ)
        for name in ("id", "created_at", "updated_at"):
            with self.subTest(column=name):
                self.assertIn(name, cols)
        for name in ("created_at", "updated_at"):
            with self.subTest(column=name, check="timestamp type"):
                self.assertIn("timestamp", cols[name][0])

    def test_users_id_is_the_primary_key(self):
        pk = self.pg.psql("SELECT a.attname FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid "
                          "AND a.attnum = ANY(i.indkey) WHERE i.indrelid = 'users'::regclass "
                          "AND i.indisprimary", db=self.db).split()
        self.assertEqual(pk, ["id"])

    def test_spotify_id_is_not_null_and_unique(self):
        self.assertEqual(self.columns()["spotify_id"][1], "NO")
        self.insert_user(self.db, "dup")
        with self.assertRaises(Exception) as ctx:
            self.insert_user(self.db, "dup")
        self.assertIn("unique", str(ctx.exception).lower())
        self.insert_user(self.db, "x")
        with self.assertRaises(Exception) as ctx:
            self.pg.psql("UPDATE users SET spotify_id = NULL WHERE spotify_id = 'x'", db=self.db)
        self.assertIn("null", str(ctx.exception).lower())

    def test_account_id_is_unique_and_may_be_null(self):
        self.assertEqual(self.columns()["account_id"][1], "YES")
        self.assertEqual(self.columns()["needs_reauth_at"][1], "YES")
        # NULL: the last login is from before baa kept what it asked for
        self.assertEqual(self.columns()["scope_requested"][1], "YES")
        self.insert_user(self.db, "a1")
        self.insert_user(self.db, "a2")  # two rows without account_id
        self.pg.psql("UPDATE users SET account_id = 'acct-1' WHERE spotify_id = 'a1'", db=self.db)
        with self.assertRaises(Exception) as ctx:
            self.pg.psql("UPDATE users SET account_id = 'acct-1' WHERE spotify_id = 'a2'", db=self.db)
        self.assertIn("unique", str(ctx.exception).lower())

    def test_session_generation_is_not_null(self):
        self.assertEqual(self.columns()["session_generation"][1], "NO")
        self.insert_user(self.db, "gen")
        with self.assertRaises(Exception) as ctx:
            self.pg.psql("UPDATE users SET session_generation = NULL WHERE spotify_id = 'gen'", db=self.db)
        self.assertIn("null", str(ctx.exception).lower())

    def user_id(self, spotify_id):
        self.insert_user(self.db, spotify_id)
        return int(self.pg.psql_value("SELECT id FROM users WHERE spotify_id = '%s'" % spotify_id,
                                      db=self.db))

    def test_sessions_table_keys_rows_by_a_unique_32_byte_hash(self):
        cols = {r[0]: (r[1], r[2]) for r in self.pg.psql_rows(
            "SELECT column_name, data_type, is_nullable FROM information_schema.columns "
            "WHERE table_schema = 'public' AND table_name = 'sessions'", db=self.db)}
        expected = {"id": "bigint", "token_hash": "bytea", "user_id": "bigint",
                    "created_at": "timestamp with time zone", "last_seen_at": "timestamp with time zone",
                    "expires_at": "timestamp with time zone", "max_expires_at": "timestamp with time zone",
                    "device": "text", "network": "cidr"}
        self.assertEqual({k: v[0] for k, v in cols.items()}, expected)
        self.assertEqual(cols["network"][1], "YES")
        uid = self.user_id("s")
        insert = ("INSERT INTO sessions (token_hash, user_id, expires_at, max_expires_at)"
                  " VALUES ('\\x%s', %d, now() + interval '1 hour', now() + interval '1 day')")
        self.pg.psql(insert % ("ab" * 32, uid), db=self.db)
        with self.assertRaises(Exception) as ctx:
            self.pg.psql(insert % ("ab" * 32, uid), db=self.db)
        self.assertIn("unique", str(ctx.exception).lower())
        for length in (16, 31, 33):
            with self.subTest(bytes=length), self.assertRaises(Exception) as ctx:
                self.pg.psql(insert % ("cd" * length, uid), db=self.db)
            self.assertIn("check", str(ctx.exception).lower())

    def test_a_users_deletion_takes_its_sessions_and_events_with_it(self):
        gone, kept = self.user_id("gone"), self.user_id("kept")
        for uid in (gone, kept):
            mint_session(self.pg, self.db, uid)
            self.pg.psql("INSERT INTO auth_events (user_id, event) VALUES (%d, 'login')" % uid, db=self.db)
        self.pg.psql("DELETE FROM users WHERE id = %d" % gone, db=self.db)
        for table in ("sessions", "auth_events"):
            self.assertEqual(self.pg.psql_value("SELECT string_agg(user_id::text, ',') FROM %s" % table,
                                                db=self.db), str(kept), table)

    def test_auth_events_take_only_the_documented_events(self):
        uid = self.user_id("ev")
        events = ("login", "logout", "logout_everywhere", "session_revoked", "refresh",
                  "refresh_failed", "reauth_required", "rate_limited", "deleted", "key_rotated")
        for event in events:
            self.pg.psql("INSERT INTO auth_events (user_id, event) VALUES (%d, '%s')" % (uid, event),
                         db=self.db)
        # 'deleted' is recorded without a user: the user is gone
        self.pg.psql("INSERT INTO auth_events (user_id, event) VALUES (NULL, 'deleted')", db=self.db)
        for event in ("session_adopted", "LOGIN", ""):
            with self.subTest(event=event), self.assertRaises(Exception) as ctx:
                self.pg.psql("INSERT INTO auth_events (user_id, event) VALUES (%d, '%s')" % (uid, event),
                             db=self.db)
            self.assertIn("check", str(ctx.exception).lower())
        self.assertEqual(self.pg.psql_value("SELECT count(*) FROM auth_events", db=self.db),
                         str(len(events) + 1))

    def test_spotify_token_holds_500_characters_and_refresh_token_is_stored(self):
        token = ("abcdefghij" * 50)
        self.assertEqual(len(token), 500)
        self.insert_user(self.db, "longtoken", token=token)
        self.pg.psql("UPDATE users SET refresh_token = '%s', display_name = 'Some Body', scope = 'user-read-email',"
                     " token_expires_at = now() + interval '1 hour', authorized_at = now()"
                     " WHERE spotify_id = 'longtoken'" % ("r" * 300), db=self.db)
        self.assertEqual(self.pg.psql_value(
            "SELECT spotify_token FROM users WHERE spotify_id = 'longtoken'", db=self.db), token)
        self.assertEqual(self.pg.psql_value(
            "SELECT length(refresh_token) FROM users WHERE spotify_id = 'longtoken'", db=self.db), "300")


if __name__ == "__main__":
    unittest.main()
