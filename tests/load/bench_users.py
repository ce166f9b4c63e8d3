"""The rows of tests/load/bench.py that need real logins: the Spotify
stand-in, logins per second, GET /me over many users, GET /me/token, and
token refreshes per second.

Every session here comes from the whole login (GET /login -> the
stand-in's authorize page -> GET /callback), driven by wrk and login.lua
through the bench's nginx, with the stand-in approving a new account at
each authorize (its distinct_users setting): each session is a user of
its own, as when many people log in.
"""

import glob
import os
import re
import subprocess
import threading
import time

import harness


def bench_tree(pid):
    """pid and all its descendants."""
    out = [pid]
    for child in harness.child_pids(pid):
        out.extend(bench_tree(child))
    return out

# What the stand-in calls the accounts it makes (distinct_users): "<id>-<n>".
FAKE_USER = "demo-user"
# Seconds of the first top-up login run, before any rate was measured.
FIRST_TOP_UP = 2
# Requests with sessions that exist nowhere: what one cache miss sends
# PostgreSQL (see probe).
PROBES = 64
# Seconds of a top-up login run at most, so that it stops near --users.
TOP_UP_CHUNK = 10


class Users:
    def __init__(self, bench):
        self.bench = bench
        self.sessions = []
        self.runs = 0
        self.rate = None
        self.token_cookie = None
        self.token_user = None

    # -- set-up ------------------------------------------------------------
    def start_fake(self, redirect_uri):
        """The stand-in the integration tests use, answering at once, a new
        account at every authorize."""
        self.fake = harness.start_fake_spotify(redirect_uri=redirect_uri)
        self.fake.configure(distinct_users=True)
        return self.fake

    @property
    def files_prefix(self):
        return os.path.join(self.bench.dir, "sessions-run%d" % self.runs)

    def collect(self):
        """The session cookies the last login run wrote, added to self.sessions."""
        for path in sorted(glob.glob(self.files_prefix + ".*")):
            with open(path) as f:
                self.sessions.extend(line.strip() for line in f if line.strip())
        with open(os.path.join(self.bench.dir, "sessions.txt"), "w") as f:
            f.write("\n".join(self.sessions) + "\n")

    # -- logins ------------------------------------------------------------
    def logins(self, connections, seconds=None, measured=True):
        """wrk -tN -cN running whole logins; the row (unit: a login)."""
        self.runs += 1
        env = {"BAA_SESSIONS_OUT": self.files_prefix}
        before = len(self.sessions)
        r = self.bench.measure("logins", self.bench.ports["login"], connections, "login.lua",
                               path="/login", env=env, threads=connections, seconds=seconds,
                               keep=measured, show=False)
        self.collect()
        if measured:
            self.vacuum()
        self.bench.per_unit(r, len(self.sessions) - before, "login")
        if r["units"] and r["seconds"]:
            self.rate = r["units"] / r["seconds"]
        r["failed"] = r["lua"].get("failed", 0)
        if measured:
            self.bench.show(r)
        return r

    def top_up(self, want):
        """Unmeasured logins (16 at a time) until `want` sessions exist."""
        if len(self.sessions) >= want:
            return
        for _ in range(30):
            missing = want - len(self.sessions)
            if missing <= 0:
                break
            seconds = min(int(missing / self.rate * 1.05) + 1, TOP_UP_CHUNK) if self.rate \
                else FIRST_TOP_UP
            print("logging in %d more users (%d s)" % (missing, seconds), flush=True)
            self.logins(16, seconds=seconds, measured=False)
        if len(self.sessions) < want:
            raise SystemExit("only %d sessions after the logins, not %d" % (len(self.sessions), want))
        self.vacuum()

    def vacuum(self):
        """After many rows were written: VACUUM ANALYZE now, so that
        autovacuum does not do it during the next measurement."""
        self.bench.pg.psql("VACUUM ANALYZE", db=self.bench.db, timeout=120)

    # -- GET /me over many users --------------------------------------------
    def bytes_to_postgres(self):
        """Bytes baa's workers (the measured instance's) have sent to
        PostgreSQL over their TCP connections, from the kernel (ss): every
        session check that misses the cache sends one query, a hit none."""
        pids = set(bench_tree(self.bench.baa.pid))
        out = subprocess.run(["ss", "-tinpH", "state", "established",
                              "( dport = :%d )" % self.bench.pg.port],
                             capture_output=True, text=True, check=True).stdout
        total, owner = 0, None
        for line in out.splitlines():
            pid = re.search(r"pid=(\d+)", line)
            if pid:
                owner = int(pid.group(1))
                continue
            sent = re.search(r"bytes_sent:(\d+)", line)
            if sent and owner in pids:
                total += int(sent.group(1))
        return total

    def probe(self):
        """PROBES requests with sessions that exist nowhere, 16 at a time:
        each misses the cache and sends the session check. -> bytes a
        check sends to PostgreSQL."""
        signer = harness.CookieSigner()
        port = self.bench.ports["baa"]
        errors = []

        def run(n):
            for _ in range(n):
                cookie = signer.sign_session(os.urandom(32), int(time.time()) + 3600)
                status, _, _ = harness.http_request(port, "GET", "/me", headers={
                    "Cookie": "%s=%s" % (harness.SESSION_COOKIE, cookie)})
                if status != 401:
                    errors.append(status)
        before = self.bytes_to_postgres()
        threads = [threading.Thread(target=run, args=(PROBES // 16,)) for _ in range(16)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        if errors:
            raise SystemExit("an unknown session answered %r, not 401" % errors[:3])
        return (self.bytes_to_postgres() - before) / PROBES

    def seen_now(self):
        """Every logged-in session seen now: baa touches a session (an
        UPDATE) at its first request once it was last seen more than a
        minute ago (src/sessions.c, touch_interval), which would make a
        row measure that write for sessions logged in long enough ago and
        not for the others. The rows measure the read path; each is
        shorter than that minute."""
        self.bench.pg.psql(
            "UPDATE sessions SET last_seen_at = now() WHERE user_id IN"
            " (SELECT id FROM users WHERE spotify_id LIKE '%s-%%')" % FAKE_USER,
            db=self.bench.db)
        self.vacuum()

    def lookups(self):
        """{source: count} of baa_session_lookups_total in baa's /metrics
        (cache, batch, alone), {} from a build without that counter."""
        metrics = harness.parse_metrics(harness.http_request(
            self.bench.ports["baa"], "GET", "/metrics")[2].decode())
        prefix = 'baa_session_lookups_total{source="'
        return {k[len(prefix):-2]: v for k, v in metrics.items() if k.startswith(prefix)}

    def me_many(self, connections):
        """baa-me-10k: GET /me rotating over every session. The cache's hit
        ratio: from baa's own counter when the build has it, and from the
        bytes the workers sent PostgreSQL meanwhile over the bytes of one
        check (measured by probe()), which needs no counter."""
        self.seen_now()
        per_check = self.probe()
        if per_check <= 0:
            raise SystemExit("the probes sent PostgreSQL nothing: is baa connected over TCP?")
        sent, counted = self.bytes_to_postgres(), self.lookups()
        r = self.rotate("baa-me-10k", connections, "/me")
        r["misses"] = round((self.bytes_to_postgres() - sent) / per_check)
        r["per_check"] = per_check
        r["hit_ratio"] = 1 - r["misses"] / max(r["requests"], 1)
        after = self.lookups()
        if counted and after:
            looked = {k: after[k] - counted.get(k, 0) for k in after}
            r["counted_hits"] = looked.get("cache", 0) / max(sum(looked.values()), 1)
        r["distinct"] = len(self.sessions)
        self.bench.show(r)
        return r

    def hashes_table(self):
        """bench_hashes (i, h): every logged-in session's token_hash by
        number from 1, for pgbench-10k; -> how many."""
        path = os.path.join(self.bench.dir, "hashes.copy")
        with open(path, "w") as f:
            for i, cookie in enumerate(self.sessions, 1):
                f.write("%d\t\\\\x%s\n" % (i, harness.CookieSigner.parse_session(cookie)["token_hash"]))
        db = self.bench.db
        self.bench.pg.psql("DROP TABLE IF EXISTS bench_hashes;"
                           " CREATE TABLE bench_hashes (i int PRIMARY KEY, h bytea NOT NULL)", db=db)
        self.bench.pg.psql("\\copy bench_hashes FROM '%s'" % path, db=db)
        self.bench.pg.psql("ANALYZE bench_hashes", db=db)
        return len(self.sessions)

    def many_nocache(self, connections):
        """baa-10k-nocache: GET /me over every session, from the baa with the
        cache off (and, with --before, the earlier build so, in turn)."""
        def measure(name, port):
            self.seen_now()
            return self.rotate(name, connections, "/me", port=port, show=True)

        rows = {"baa-10k-nocache": lambda: measure("baa-10k-nocache", "nocache")}
        if self.bench.before_nocache:
            rows["baa-10k-nocache-before"] = lambda: measure("baa-10k-nocache-before",
                                                             "before_nocache")
            self.bench.in_turn(rows)
        else:
            rows["baa-10k-nocache"]()

    def rotate(self, name, connections, path, port=None, show=False):
        env = {"BAA_SESSIONS_FILE": os.path.join(self.bench.dir, "sessions.txt"),
               "BAA_THREADS": "2", "BAA_PATH": path}
        port = self.bench.ports[port or ("login" if path == "/me/token" else "baa")]
        return self.bench.measure(name, port, connections, "rotate.lua", path=path, env=env,
                                  show=show)

    # -- GET /me/token ------------------------------------------------------
    def token_setup(self):
        """The first login's user serves baa-token: its token stays fresh."""
        self.token_cookie = self.sessions[0]
        token_hash = harness.CookieSigner.parse_session(self.token_cookie)["token_hash"]
        self.token_user = int(self.bench.pg.psql_value(
            "SELECT user_id FROM sessions WHERE token_hash = '\\x%s'" % token_hash,
            db=self.bench.db))
        status, _, body = harness.http_request(self.bench.ports["login"], "GET", "/me/token",
                                               headers={"Cookie": "%s=%s" % (
                                                   harness.SESSION_COOKIE, self.token_cookie)})
        if status != 200:
            raise SystemExit("/me/token answered %d: %r" % (status, body[:200]))

    def token(self, connections):
        return self.bench.measure("baa-token", self.bench.ports["login"], connections,
                                  "me.lua", path="/me/token",
                                  env={"BAA_SESSION": self.token_cookie})

    def token_sql(self):
        """src/users.c's users_token, the query of every GET /me/token."""
        epoch = "coalesce(floor(extract(epoch FROM %s))::bigint, 0)"
        return ("SELECT coalesce(spotify_token, ''), %s, %s, %s, coalesce(scope, '')"
                " FROM users WHERE id = %d;\n"
                % (epoch % "token_expires_at", epoch % "authorized_at",
                   epoch % "needs_reauth_at", self.token_user))

    # -- refreshes ----------------------------------------------------------
    def expire_tokens(self):
        """Every logged-in user's access token expired (but baa-token's)."""
        return int(self.bench.pg.psql_value(
            "WITH e AS (UPDATE users SET token_expires_at = now() - interval '1 hour'"
            " WHERE spotify_id LIKE '%s-%%' AND id <> %d RETURNING 1) SELECT count(*) FROM e"
            % (FAKE_USER, self.token_user), db=self.bench.db))

    def counts(self):
        """Refreshes so far: baa's, the stand-in's, and the rows whose token is fresh."""
        metrics = harness.parse_metrics(harness.http_request(
            self.bench.ports["baa"], "GET", "/metrics")[2].decode())
        fresh = int(self.bench.pg.psql_value(
            "SELECT count(*) FROM users WHERE spotify_id LIKE '%s-%%' AND id <> %d"
            " AND token_expires_at > now()" % (FAKE_USER, self.token_user), db=self.bench.db))
        return {"baa": metrics.get('baa_spotify_calls_total{endpoint="refresh_token",'
                                   'outcome="ok"}', 0),
                "stand-in": self.fake.stats()["token_refresh_token"], "database": fresh}

    def refresh(self, connections):
        """baa-refresh: GET /me/token walking users whose tokens expired;
        the row's unit is a refresh (counted by baa's /metrics)."""
        expired = self.expire_tokens()
        self.seen_now()  # VACUUM: also time for the workers to hear of every changed user
        before = self.counts()
        r = self.rotate("baa-refresh", connections, "/me/token")
        after = self.counts()
        r["refreshes"] = {k: after[k] - before[k] for k in after}
        r["expired"] = expired
        r["req_rps"] = r["rps"]
        self.bench.per_unit(r, int(r["refreshes"]["baa"]), "refresh")
        self.bench.show(r)
        return r
