"""The unittest base classes: BaaTestCase (shared cluster, a database per
class, baa + nginx stacks), SpotifyTestCase (a fake Spotify, a login
stack) and TwoInstancesTestCase; and the rows tests read back."""

import json
import re
import unittest

from .baa import Baa, require_baa
from .base import wait_until
from .browser import Browser
from .cookies import SESSION_COOKIE, CookieSigner
from .env import base_env, login_env
from .fake import start_fake_spotify
from .load import run_concurrently
from .nginx import Nginx
from .postgres import cluster
from .processes import make_temp_dir
from .tokens import TokenOpener

def db_name_for(name):
    return "baa_it_" + re.sub(r"[^a-z0-9_]", "_", name.lower())


class BaaTestCase(unittest.TestCase):
    """Base class: shared cluster, a database per class, stack helpers."""

    workers = 2
    reset_database = True   # run `baa resetdb` for the class database first

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        require_baa()
        cls.pg = cluster()
        cls.db = db_name_for(cls.__name__)
        cls.tmp = make_temp_dir("baa-it-%s-" % cls.__name__.lower()[:20])
        cls.cli = Baa(cls.tmp)
        if cls.reset_database:
            res = cls.cli.run(["resetdb"], env=base_env(cls.db, workers=cls.workers))
            if res.returncode != 0:
                raise AssertionError("setUpClass: baa resetdb failed (%d)\nstdout: %s\nstderr: %s" % (
                    res.returncode, res.stdout, res.stderr))

    def setUp(self):
        self.pg.ensure_running()

    # -- env / commands ---------------------------------------------------
    @classmethod
    def env(cls, db=None, workers=None, **extra):
        return base_env(db or cls.db, workers=workers or cls.workers, **extra)

    def run_baa(self, args, env, timeout=30):
        res = self.cli.run(args, env=env, timeout=timeout)
        self.assertSecretsNotIn(res, env)
        return res

    def assertSecretsNotIn(self, res, env):
        pw = env.get("POSTGRES_PW")
        if pw:
            self.assertNotIn(pw, res.stdout, "password value leaked to stdout")
            self.assertNotIn(pw, res.stderr, "password value leaked to stderr")

    @staticmethod
    def describe(res):
        return "exit=%s\n--- stdout ---\n%s\n--- stderr ---\n%s" % (res.returncode, res.stdout, res.stderr)

    # -- serve + nginx -----------------------------------------------------
    @classmethod
    def _start_stack(cls, env, nginx_user, cleanup, umask=None, kept=True):
        b = Baa(make_temp_dir("baa-it-serve-"))
        cleanup(b.stop)
        b.serve(env, umask=umask)
        listen = env["BAA_LISTEN"]
        upstream = ("unix:" + listen) if listen.startswith("/") else listen
        n = Nginx(upstream, user=nginx_user, kept=kept)
        cleanup(n.stop)
        n.start()
        return b, n

    def start_stack(self, env=None, nginx_user=None, umask=None, kept=True):
        """baa serve + nginx in front of it, stopped after the test."""
        return self._start_stack(env or self.env(), nginx_user, self.addCleanup, umask=umask,
                                 kept=kept)

    @classmethod
    def start_class_stack(cls, env=None, nginx_user=None, kept=True):
        return cls._start_stack(env or cls.env(), nginx_user, cls.addClassCleanup, kept=kept)

    # -- HTTP --------------------------------------------------------------
    def get_json(self, nginx, path, method="GET", headers=None, expect=None, timeout=10):
        status, hdrs, body = nginx.request(method, path, headers=headers, timeout=timeout)
        if expect is not None:
            self.assertEqual(status, expect, "%s %s -> %s %r" % (method, path, status, body[:500]))
        ctype = hdrs.get("Content-Type", "")
        self.assertTrue(ctype.startswith("application/json"),
                        "%s %s: Content-Type %r, body %r" % (method, path, ctype, body[:200]))
        try:
            doc = json.loads(body.decode("utf-8"))
        except ValueError:
            self.fail("%s %s: body is not JSON: %r" % (method, path, body[:500]))
        return status, hdrs, doc

    # -- database ----------------------------------------------------------
    def insert_user(self, db, spotify_id, token="tok", session_generation=0):
        """Insert a users row; supplies id only if the schema has no default for it."""
        col = self.pg.psql_rows(
            "SELECT data_type, coalesce(column_default, ''), is_identity FROM information_schema.columns "
            "WHERE table_schema = 'public' AND table_name = 'users' AND column_name = 'id'", db=db)
        cols = ["spotify_id", "spotify_token", "session_generation"]
        vals = ["'%s'" % spotify_id, "'%s'" % token, str(session_generation)]
        if col and not col[0][1] and col[0][2] != "YES":
            cols.insert(0, "id")
            vals.insert(0, "gen_random_uuid()" if col[0][0] == "uuid" else
                        "(SELECT coalesce(max(id), 0) + 1 FROM users)")
        for ts in ("created_at", "updated_at"):
            cols.append(ts)
            vals.append("now()")
        self.pg.psql("INSERT INTO users (%s) VALUES (%s)" % (", ".join(cols), ", ".join(vals)), db=db)


class SpotifyTestCase(BaaTestCase):
    """A fake Spotify per class (reset before each test), an empty users table
    before each test, and (class_stack = True) one baa + nginx for the class
    configured with login_extra_env."""

    class_stack = True
    login_extra_env = {}

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.fake = start_fake_spotify()
        cls.addClassCleanup(cls.fake.stop)
        cls.signer = CookieSigner()
        if cls.class_stack:
            cls.baa, cls.nginx = cls.start_class_stack(cls.login_env())

    @classmethod
    def login_env(cls, **extra):
        merged = dict(cls.login_extra_env)
        merged.update(extra)
        return login_env(cls.db, cls.fake.url, workers=cls.workers, **merged)

    def setUp(self):
        super().setUp()
        self.fake.reset()
        self.pg.psql("DELETE FROM users", db=self.db)

    # -- browser / login ----------------------------------------------------
    def browser(self, nginx=None):
        return Browser((nginx or self.nginx).port)

    def login(self, browser=None, next_path=None, nginx=None):
        """A successful login (asserted); -> (browser, LoginResult)."""
        b = browser or self.browser(nginx)
        r = b.login(self.fake, next_path)
        self.assertTrue(r.ok, "login failed:\n%s%s" % (r.describe(), self.stack_context()))
        return b, r

    def begin_login(self, nginx=None):
        """/login and the consent at the fake, both 302 (asserted):
        -> (browser, the parameters Spotify sends back to /callback)."""
        b = self.browser(nginx)
        resp = b.start_login()
        self.assertEqual(resp.status, 302, resp)
        auth, params = b.authorize_at(self.fake, resp.location)
        self.assertEqual(auth.status, 302, auth)
        return b, params

    def assertRefreshedOnceForAll(self, request, before, n=20):
        """n concurrent calls of request (a /me/token) while Spotify's
        refresh is slow, so that they all arrive while it is in flight: every
        one 200 with the same new token, and exactly one refresh at Spotify.
        Returns the responses and the new token."""
        self.fake.set_fault("token", delay_ms=300, grant_type="refresh_token")
        results = run_concurrently([request] * n)
        self.assertEqual([x for x in results if isinstance(x, Exception)], [])
        for resp in results:
            self.assertEqual(resp.status, 200, "%r%s" % (resp, self.stack_context()))
        tokens = {resp.json()["access_token"] for resp in results}
        self.assertEqual(len(tokens), 1, "different tokens handed out: %d" % len(tokens))
        new = tokens.pop()
        self.assertNotEqual(new, before["spotify_token"])
        self.assertEqual(self.fake.stats()["token_refresh_token"], 1,
                         "expected exactly one refresh at Spotify%s" % self.stack_context())
        return results, new

    def stack_context(self, baa=None):
        baa = baa or getattr(self, "baa", None)
        text = ""
        if baa is not None:
            text += "\n--- baa log (tail) ---\n%s" % baa.log()[-2500:]
        text += "\n--- fake log (tail) ---\n%s" % self.fake.log_text()[-1500:]
        return text

    # -- database -----------------------------------------------------------
    # The tokens are stored encrypted: users() shows them opened with these.
    token_opener = TokenOpener()

    def raw_users(self):
        """Every users row as stored, as a dict (JSON types), ordered by id."""
        out = self.pg.psql("SELECT row_to_json(u) FROM (SELECT * FROM users ORDER BY id) u", db=self.db)
        return [json.loads(line) for line in out.splitlines() if line.strip()]

    def users(self):
        """raw_users() with spotify_token and refresh_token decrypted (a test
        fails on a value that does not open for its row)."""
        rows = self.raw_users()
        for row in rows:
            for column in ("spotify_token", "refresh_token"):
                if row[column]:
                    plain = self.token_opener.open(row[column], row["id"], column)
                    self.assertIsNotNone(plain, "users.%s of id %s does not open with %s" % (
                        column, row["id"], sorted(self.token_opener.keys)))
                    row[column] = plain
        return rows

    def user(self, spotify_id=None):
        rows = [u for u in self.users() if spotify_id is None or u["spotify_id"] == spotify_id]
        self.assertEqual(len(rows), 1, "expected one users row for %r, have %r" % (spotify_id, rows))
        return rows[0]

    def token_columns(self, spotify_id=None):
        u = self.user(spotify_id)
        return {k: u[k] for k in ("spotify_token", "refresh_token", "token_expires_at")}

    def session_rows(self, user_id=None):
        """sessions_rows(), of one user when user_id is given."""
        return [r for r in sessions_rows(self.pg, self.db) if user_id in (None, r["user_id"])]

    def session_row(self, cookie):
        """The sessions row a __Host-baa_session value names, or None."""
        want = "\\x" + CookieSigner.parse_session(cookie)["token_hash"]
        return next((r for r in sessions_rows(self.pg, self.db) if r["token_hash"] == want), None)

    def auth_events(self, user_id=None):
        """auth_events_rows(), of one user when user_id is given."""
        return [e for e in auth_events_rows(self.pg, self.db) if user_id in (None, e["user_id"])]

    def seconds_until(self, ts_column_value):
        """Seconds from now (database clock) until a timestamptz value."""
        return float(self.pg.psql_value(
            "SELECT extract(epoch FROM ('%s'::timestamptz - now()))" % ts_column_value, db=self.db))

    # -- assertions ---------------------------------------------------------
    def assertNoStore(self, resp, what=""):
        self.assertEqual(resp.headers.get("Cache-Control"), "no-store", "%s %r" % (what, resp))

    def assertJsonError(self, resp, status, what=""):
        self.assertEqual(resp.status, status, "%s %r%s" % (what, resp, self.stack_context()))
        try:
            doc = resp.json()
        except ValueError:
            self.fail("%s: body is not JSON: %r" % (what, resp))
        self.assertIsInstance(doc, dict, what)
        self.assertIn("error", doc, "%s %r" % (what, resp))
        self.assertNoStore(resp, what)
        return doc

    def assertCookieAttributes(self, cookie, max_age):
        self.assertEqual(cookie.max_age, max_age, cookie)
        self.assertEqual(cookie.attrs.get("path"), "/", cookie)
        self.assertIs(cookie.attrs.get("httponly"), True, cookie)
        self.assertIs(cookie.attrs.get("secure"), True, cookie)
        self.assertEqual(str(cookie.attrs.get("samesite", "")).lower(), "lax", cookie)



class TwoInstancesTestCase(SpotifyTestCase):
    """Instances A and B: two `baa serve` (workers each) on one database and
    BAA_SECRET_KEY, each behind its own nginx, so that a test picks the
    instance it talks to. self.baa and self.nginx are A's."""

    class_stack = False
    workers = 2

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.baa_a, cls.nginx_a = cls.start_class_stack(cls.login_env())
        cls.baa_b, cls.nginx_b = cls.start_class_stack(cls.login_env())
        cls.baa, cls.nginx = cls.baa_a, cls.nginx_a

    def stack_context(self, baa=None):
        return "%s\n--- instance B ---\n%s" % (super().stack_context(baa or self.baa_a),
                                               self.baa_b.log()[-2000:])

    def get(self, cookie, nginx=None, path="/me"):
        """GET path with the session cookie, through nginx (A's by default)."""
        return self.browser(nginx).get(path, cookies={SESSION_COOKIE: cookie})

    def me_doc(self, cookie, nginx=None):
        """GET /me, asserted 200; -> its JSON."""
        resp = self.get(cookie, nginx)
        self.assertEqual(resp.status, 200, "%r%s" % (resp, self.stack_context()))
        return resp.json()

    def wait_me(self, cookie, nginx, **expected):
        """/me on nginx shows expected (another instance's cache hears of a
        change by NOTIFY, a moment after the commit); -> the JSON."""
        seen = {}

        def shows():
            seen["doc"] = self.me_doc(cookie, nginx)
            return all(seen["doc"][k] == v for k, v in expected.items())
        wait_until(shows, 5, message="/me never showed %r: %r%s" % (
            expected, seen.get("doc"), self.stack_context()))
        return seen["doc"]


def sessions_rows(pg, db):
    """Every sessions row as stored, as dicts (JSON types; token_hash as
    "\\x<hex>"), ordered by id."""
    out = pg.psql("SELECT row_to_json(s) FROM (SELECT * FROM sessions ORDER BY id) s", db=db)
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def auth_events_rows(pg, db):
    """Every auth_events row as stored, as dicts, ordered by id."""
    out = pg.psql("SELECT row_to_json(e) FROM (SELECT * FROM auth_events ORDER BY id) e", db=db)
    return [json.loads(line) for line in out.splitlines() if line.strip()]
