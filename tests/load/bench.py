#!/usr/bin/python3
"""One benchmark run: baa's GET /me beside the machine's ceilings, the
database path, logins and token refreshes.

In one run, on one PostgreSQL cluster, with the same wrk threads and
connections, through the same nginx:
  baa-me      baa GET /me (cookie check, the session and profile from the
              worker's cache, JSON), with kept FastCGI connections as shipped
  baa-me-nocache  the same from a second baa serving the same database with
              BAA_PROFILE_CACHE=off (every request reads PostgreSQL), kept
              connections as baa-me
  kore-me     Kore 4.1 (Debian's kore, its asynchronous pgsql) answering
              GET /me with the same cookie check, statement and body, straight
              over HTTP (no nginx), as many workers as baa
              (tests/load/kore_target.py); skipped when kore is missing
  baa-auth    baa GET /auth (nginx's auth_request asks it: the same session
              and profile path, a 204 with the user in headers), sent
              straight to a bench-only location with the site's parameters,
              so that it is baa's cost beside baa-me's
  auth-request  a location nginx protects with auth_request /auth, serving a
              static file: the whole cost of a protected request
  baa-me-1cpr the same with one connection per request (--keepalive 0 makes
              baa-me that too)
  bare-fcgi   a do-nothing libfcgi responder, one connection per request
  nginx-200   nginx `return 200` with a body of the same size
  pgbench     `pgbench -M prepared` running baa's session check, the SELECT
              of a cache miss (no HTTP at all)
  logins      whole logins (GET /login -> the Spotify stand-in's authorize
              page -> GET /callback), wrk with login.lua, one thread per
              connection; nginx passes /authorize on to the stand-in (the
              integration tests' tests/fake_spotify, answering at once and
              approving a new account at each authorize: each login is a
              user of its own). The rate is logins/s, CPU per login.
  baa-me-10k  GET /me over every session those logins made (at least
              --users; unmeasured logins top them up), rotate.lua walking the
              list from a different offset in each wrk thread, so that each
              worker's cache mostly misses; the hit ratio counts the misses
              by the bytes baa's workers sent PostgreSQL meanwhile (ss), over
              what one miss sends (64 requests with unknown sessions)
  baa-10k-nocache  GET /me over the same sessions from the baa with
              BAA_PROFILE_CACHE=off: every request reads its own user's
              rows (baa-me-nocache's requests all carry one session, which
              the requests of one wake-up share); with --before, beside
              baa-10k-nocache-before (the earlier build, also with the
              cache off), in turn as baa-me and baa-me-before
  baa-token   GET /me/token of one logged-in user whose token needs no
              refresh (the Spotify routes not kept, as shipped)
  pgbench-10k the session check under pgbench as baa-me-10k asks it: each
              transaction the session of a random one of those logins (its
              hash looked up by number in a table of them: one more index
              scan than baa's)
  pgbench-token  `pgbench -M prepared` running /me/token's query
  baa-refresh GET /me/token walking the logged-in users after their
              token_expires_at was set in the past: each first call
              refreshes at the stand-in. The rate is refreshes/s (baa's
              /metrics), beside the stand-in's count and the rows whose
              token_expires_at moved.
  baa-me-before  with --before BIN: another baa binary (an earlier build)
              serving the same database beside it, measured in the same run
              right after baa-me, so that a change's cost is a ratio of one run.
              It gets baa-me's cookie if it takes it, else one of the first
              format (baa_session: user id and generation), which a build
              from before issue 10 reads.
The measured user of baa-me has one session (a row minted as a login makes
it); the tables hold --sessions such users with a session each in all.
Reports the rate, p50/p99, CPU per request (or login, refresh, pgbench
transaction) of baa, nginx, PostgreSQL, the stand-in and the driver (wrk or
pgbench), what share of a core each used during logins and refreshes, the
RSS of each baa worker, and the ratios, as a markdown table.

usage: tests/load/bench.py [--seconds 5] [--connections 16,64] [--workers 2]
                           [--sessions 1000] [--users 10000] [--only ROW,...]
                           [--before OTHER_BAA_BINARY] [--profile-cache on|off]
                           [--sandbox on|off] [--durable] [--perf] [--out FILE.md]
--only measures some rows (names as above) quickly during development.
--perf samples every CPU during each wrk row (tests/load/bench_perf.py) and
adds where the time went: each process's share, its kernel part, and baa's
hottest symbols.
The cluster is the integration tests' (fsync, synchronous_commit and
full_page_writes off) unless --durable turns them on, so that logins and
refreshes pay for their commits as in production.
Run it on a quiet machine: wrk, nginx, baa, PostgreSQL and the stand-in
share its cores.
"""

import argparse
import os
import re
import resource
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(REPO, "tests", "integration"))

import harness  # noqa: E402
import bench_perf  # noqa: E402
import bench_report  # noqa: E402
import kore_target  # noqa: E402
from bench_users import Users  # noqa: E402

BARE = os.path.join(REPO, "build", "tests", "load", "bare-responder")
# BAA_SESSION_TTL, and how long the measured cookie lives: more than half of
# it left, so that no request renews it (a renewal writes the row).
SESSION_TTL = 30 * 86400
PGBENCH = os.path.join(harness.PG_BIN, "pgbench")
CLK_TCK = os.sysconf("SC_CLK_TCK")
# The rows, in the order of a run (--only picks some; baa-me-before comes
# with baa-me when --before is given).
ROWS = ("baa-me", "baa-me-nocache", "kore-me", "baa-auth", "auth-request", "baa-me-1cpr", "bare-fcgi",
        "nginx-200", "pgbench", "logins", "baa-me-10k", "baa-10k-nocache", "pgbench-10k", "baa-token",
        "pgbench-token", "baa-refresh")

NGINX_CONF = """worker_processes 1;
daemon off;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
{user}
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {d}/tmp; fastcgi_temp_path {d}/tmp; proxy_temp_path {d}/tmp;
    uwsgi_temp_path {d}/tmp; scgi_temp_path {d}/tmp;
    default_type application/json;

    # baa as shipped (nginx/baa.conf.in): kept connections (--keepalive 0:
    # one connection per request).
    upstream baa {{ server unix:{d}/baa.sock; {baa_keepalive} }}
    # baa as it was first shipped, for comparison: one connection per request.
    upstream baa_fresh {{ server unix:{d}/baa.sock; }}
    # --before: an earlier build of baa, kept connections as baa-me.
    upstream baa_before {{ server unix:{d}/before.sock; {baa_keepalive} }}
    # The ceiling as the issue defines it: one connection per request.
    upstream bare {{ server unix:{d}/bare.sock; }}
    # A second baa on the same database with BAA_PROFILE_CACHE=off, kept
    # connections as baa-me; and the earlier build so (--before).
    upstream baa_nocache {{ server unix:{d}/nocache.sock; {baa_keepalive} }}
    upstream baa_before_nocache {{ server unix:{d}/before-nocache.sock; {baa_keepalive} }}
    # The routes that wait on Spotify, as nginx/baa.conf.in sends them: not kept.
    upstream baa_spotify {{ server unix:{d}/baa.sock; }}
    upstream stand_in {{ server 127.0.0.1:{fake_port}; keepalive 64; }}

    server {{
        listen 127.0.0.1:{baa_port};
        location / {{ include /etc/nginx/fastcgi_params; {baa_keep_conn} fastcgi_pass baa; }}
        # /auth with nginx/baa.conf.in's parameters, but not internal, so
        # that wrk reaches it (baa-auth); and a location it protects.
        location = /auth {{
            fastcgi_pass_request_body off;
            fastcgi_param REQUEST_METHOD GET;
            fastcgi_param DOCUMENT_URI $uri;
            fastcgi_param REQUEST_URI $request_uri;
            fastcgi_param REMOTE_ADDR $remote_addr;
            {baa_keep_conn}
            fastcgi_pass baa;
        }}
        location = /protected {{ auth_request /auth; alias {d}/protected.json; }}
    }}
    server {{
        listen 127.0.0.1:{fresh_port};
        location / {{ include /etc/nginx/fastcgi_params; fastcgi_pass baa_fresh; }}
    }}
    server {{
        listen 127.0.0.1:{before_port};
        location / {{ include /etc/nginx/fastcgi_params; {baa_keep_conn} fastcgi_pass baa_before; }}
    }}
    server {{
        listen 127.0.0.1:{nocache_port};
        location / {{ include /etc/nginx/fastcgi_params; {baa_keep_conn} fastcgi_pass baa_nocache; }}
    }}
    server {{
        listen 127.0.0.1:{before_nocache_port};
        location / {{
            include /etc/nginx/fastcgi_params; {baa_keep_conn} fastcgi_pass baa_before_nocache;
        }}
    }}
    # Logins and tokens (baa's Spotify routes), and the stand-in's authorize
    # page on the same port, since wrk reaches one host.
    server {{
        listen 127.0.0.1:{login_port};
        location / {{ include /etc/nginx/fastcgi_params; {baa_keep_conn} fastcgi_pass baa; }}
        location ~ ^/(login|me/token)$ {{ include /etc/nginx/fastcgi_params; fastcgi_pass baa_spotify; }}
        location = /callback {{
            include /etc/nginx/fastcgi_params;
            fastcgi_pass baa_spotify;
            # wrk's Lua sees only the last Set-Cookie (the oauth cookie's
            # clearing); this is the first, the session's.
            add_header X-Bench-Session $upstream_http_set_cookie;
        }}
        location = /authorize {{
            proxy_pass https://stand_in;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }}
    }}
    server {{
        listen 127.0.0.1:{bare_port};
        location / {{ include /etc/nginx/fastcgi_params; fastcgi_pass bare; }}
    }}
    server {{
        listen 127.0.0.1:{return_port};
        location / {{ return 200 '{body}'; }}
    }}
}}
"""


def cpu_ticks(pids):
    """{pid: utime + stime + its reaped children's} of the pids still alive:
    the children's part counts PostgreSQL backends that came and went
    during a measurement (pgbench's) in the postmaster's time."""
    ticks = {}
    for pid in pids:
        try:
            with open("/proc/%d/stat" % pid) as f:
                fields = f.read().rsplit(")", 1)[1].split()
            ticks[pid] = sum(int(x) for x in fields[11:15])
        except (OSError, IndexError, ValueError):
            pass
    return ticks


def machine_ticks():
    """(busy, stolen, all) CPU ticks of the whole machine, every core, from
    /proc/stat: stolen is the time a virtual machine's host gave others."""
    with open("/proc/stat") as f:
        ticks = [int(x) for x in f.readline().split()[1:9]]
    return sum(ticks) - ticks[3] - ticks[4] - ticks[7], ticks[7], sum(ticks)


def ticks_spent(before, after):
    """CPU ticks spent between two snapshots by the processes in both."""
    return sum(after[p] - before[p] for p in before if p in after)


def tree(pid):
    """pid and all its descendants."""
    out = [pid]
    for child in harness.child_pids(pid):
        out.extend(tree(child))
    return out


def postgres_pids(datadir):
    """The cluster's postmaster and every process it started: only this
    run's cluster, though other clusters may run on the machine (the
    integration tests' own)."""
    with open(os.path.join(datadir, "postmaster.pid")) as f:
        return tree(int(f.readline()))


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def parse_wrk(text):
    def ms(value, unit):
        return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
    done = re.search(r"(\d+) requests in ([\d.]+)(us|ms|s|m)\b", text)
    requests = int(done.group(1))
    seconds = float(done.group(2)) * {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0}[done.group(3)]
    p50 = re.search(r"50%\s+([\d.]+)(us|ms|s)", text)
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)", text)
    errors = re.search(r"Socket errors: (.*)", text)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    return {"rps": rps, "requests": requests, "seconds": seconds, "p50": ms(*p50.groups()), "p99": ms(*p99.groups()),
            "errors": errors.group(1) if errors else "", "non2xx": int(non2xx.group(1)) if non2xx else 0}


class Bench:
    def __init__(self, args):
        self.args = args
        self.rows = []
        self.perf_lines = []
        self.rss = []
        self.users = Users(self)
        self.fake = None

    def want(self, name):
        return self.args.only is None or name in self.args.only

    def setup(self):
        self.pg = harness.cluster()
        if self.args.durable:
            # The harness's cluster runs without them; all three reload.
            for setting in ("fsync", "synchronous_commit", "full_page_writes"):
                self.pg.psql("ALTER SYSTEM SET %s = on" % setting)
            self.pg.psql("SELECT pg_reload_conf()")
        self.db = "baa_bench"
        self.ports = {k: harness.free_port() for k in ("baa", "fresh", "bare", "return", "before",
                                                        "nocache", "before_nocache", "login")}
        self.fake = self.users.start_fake("http://127.0.0.1:%d/callback" % self.ports["login"])
        env = harness.base_env(self.db, workers=self.args.workers, BAA_SESSION_TTL=SESSION_TTL,
                               BAA_PROFILE_CACHE=self.args.profile_cache,
                               BAA_SANDBOX=self.args.sandbox)
        env.update(harness.spotify_env(
            "http://127.0.0.1:%d/callback" % self.ports["login"], self.fake.url))
        self.dir = harness.make_temp_dir("baa-bench-")
        cli = harness.Baa(self.dir)
        res = cli.run(["resetdb"], env=env)
        if res.returncode != 0:
            raise SystemExit("resetdb failed: " + res.stderr)
        token = "T" * 300
        self.user_id = int(self.pg.psql_value(
            "INSERT INTO users (spotify_id, display_name, spotify_token, refresh_token,"
            " token_expires_at, scope, authorized_at) VALUES ('bench-user', 'Bench User',"
            " '%s', 'R', now() + interval '1 day', 'user-read-private', now()) RETURNING id"
            % token, db=self.db))
        self.add_other_sessions(self.args.sessions - 1)
        self.cookie = harness.mint_session(self.pg, self.db, self.user_id, ttl=SESSION_TTL,
                                           device="Firefox on Linux")
        self.token_hash = harness.CookieSigner.parse_session(self.cookie)["token_hash"]
        generation = int(self.pg.psql_value(
            "SELECT session_generation FROM users WHERE id = %d" % self.user_id, db=self.db))
        self.legacy_cookie = harness.CookieSigner().sign_legacy_session(
            self.user_id, generation, int(time.time()) + SESSION_TTL)

        env["BAA_LISTEN"] = os.path.join(self.dir, "baa.sock")
        self.baa = harness.Baa(self.dir)
        self.baa.serve(env)
        self.before = None
        if self.args.before:
            self.before = harness.Baa(harness.make_temp_dir("baa-bench-before-"))
            self.before.bin = self.args.before
            self.before.serve(dict(env, BAA_LISTEN=os.path.join(self.dir, "before.sock")))
        self.nocache = self.before_nocache = None
        if self.want("baa-me-nocache") or self.want("baa-10k-nocache"):
            self.nocache = harness.Baa(harness.make_temp_dir("baa-bench-nocache-"))
            self.nocache.serve(dict(env, BAA_LISTEN=os.path.join(self.dir, "nocache.sock"),
                                    BAA_PROFILE_CACHE="off"))
        if self.args.before and self.want("baa-10k-nocache"):
            self.before_nocache = harness.Baa(harness.make_temp_dir("baa-bench-before-nocache-"))
            self.before_nocache.bin = self.args.before
            self.before_nocache.serve(dict(env, BAA_PROFILE_CACHE="off", BAA_LISTEN=os.path.join(
                self.dir, "before-nocache.sock")))
        # Same body size as baa's /me answer, for the ceilings.
        probe = self.http_me_body()
        self.body_len = len(probe)
        self.bare = harness.register_process(subprocess.Popen(
            [BARE, os.path.join(self.dir, "bare.sock"), str(self.args.workers),
             str(self.body_len)], stdin=subprocess.DEVNULL, start_new_session=True))
        harness.wait_until(lambda: os.path.exists(os.path.join(self.dir, "bare.sock")), 5)
        os.chmod(os.path.join(self.dir, "bare.sock"), 0o666)
        self.start_nginx()

    def add_other_sessions(self, n):
        """n other users with a session each, as logins leave them, in bulk."""
        if n <= 0:
            return
        self.pg.psql(
            "INSERT INTO users (spotify_id, display_name, spotify_token, token_expires_at,"
            " authorized_at) SELECT 'other-' || i, 'Other ' || i, 'T', now() + interval '1 day',"
            " now() FROM generate_series(1, %d) i;"
            " INSERT INTO sessions (token_hash, user_id, expires_at, max_expires_at, device, network)"
            " SELECT sha256(('bench-session-' || id)::bytea), id,"
            " now() + make_interval(secs => %d), now() + make_interval(secs => %d),"
            " 'Chrome on Android', '203.0.113.0/24' FROM users WHERE spotify_id LIKE 'other-%%'"
            % (n, SESSION_TTL, SESSION_TTL), db=self.db)

    def cookie_for(self, name):
        """(cookie name, value) that the binary measured as `name` reads."""
        if name == "baa-me-before" and self.before_legacy:
            return harness.LEGACY_SESSION_COOKIE, self.legacy_cookie
        return harness.SESSION_COOKIE, self.cookie

    def http_me_body(self):
        # Ask baa directly through a throwaway nginx-less path: use the
        # FastCGI socket via nginx once it is up; until then, a fixed guess.
        return '{"id":%d,"spotify_id":"bench-user","display_name":"Bench User",' \
               '"token_expires_at":"2026-01-01T00:00:00Z"}\n' % self.user_id

    def start_nginx(self):
        os.makedirs(os.path.join(self.dir, "tmp"), exist_ok=True)
        os.chmod(os.path.join(self.dir, "tmp"), 0o777)
        keep = self.args.keepalive > 0
        conf = NGINX_CONF.format(d=self.dir, baa_port=self.ports["baa"],
                                 baa_keepalive="keepalive %d; keepalive_timeout 2s; keepalive_time 2s;" % self.args.keepalive if keep else "",
                                 baa_keep_conn="fastcgi_keep_conn on;" if keep else "",
                                 fresh_port=self.ports["fresh"], before_port=self.ports["before"],
                                 bare_port=self.ports["bare"], return_port=self.ports["return"],
                                 nocache_port=self.ports["nocache"], login_port=self.ports["login"],
                                 before_nocache_port=self.ports["before_nocache"],
                                 fake_port=self.fake.port,
                                 body="x" * (self.body_len - 1) + "\\n",
                                 user="user nobody nogroup;" if os.geteuid() == 0 else "")
        path = os.path.join(self.dir, "nginx.conf")
        with open(path, "w") as f:
            f.write(conf)
        argv = [harness.NGINX_BIN, "-p", self.dir, "-c", path, "-e", os.path.join(self.dir, "error.log")]
        subprocess.run(argv + ["-q", "-t"], check=True)
        self.nginx = harness.register_process(subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, start_new_session=True))
        for port in self.ports.values():
            harness.wait_until(lambda: harness.port_answers(port), 10)
        self.before_legacy = False
        if self.before:
            # A build that reads the current cookie gets it: a later build
            # would turn a first-format cookie into a new session per request.
            status, _, _ = harness.http_request(self.ports["before"], "GET", "/me", headers={
                "Cookie": "%s=%s" % (harness.SESSION_COOKIE, self.cookie)})
            self.before_legacy = status != 200
        targets = [("baa-me", "baa")] + ([("baa-me-before", "before")] if self.before else []) \
            + ([("baa-me-nocache", "nocache")] if self.nocache else [])
        for name, port in targets:
            status, headers, body = harness.http_request(
                self.ports[port], "GET", "/me", headers={"Cookie": "%s=%s" % self.cookie_for(name)})
            if status != 200:
                raise SystemExit("%s /me answered %d: %r" % (name, status, body))
            if headers.get("Set-Cookie"):
                raise SystemExit("%s renewed the cookie: every request would write: %r"
                                 % (name, headers.get("Set-Cookie")))
            if name == "baa-me" and len(body) != self.body_len:
                self.body_len = len(body)
        # What the protected location serves: a body of /me's size.
        with open(os.path.join(self.dir, "protected.json"), "w") as f:
            f.write("x" * (self.body_len - 1) + "\n")
        os.chmod(os.path.join(self.dir, "protected.json"), 0o644)
        cookie = {"Cookie": "%s=%s" % (harness.SESSION_COOKIE, self.cookie)}
        for path, want in (("/auth", 204), ("/protected", 200)):
            status, headers, body = harness.http_request(self.ports["baa"], "GET", path,
                                                         headers=cookie)
            if status != want or headers.get("Set-Cookie"):
                raise SystemExit("%s answered %d (not %d) %r: %r" % (
                    path, status, want, headers.get("Set-Cookie"), body))
            if path == "/auth" and headers.get("X-Baa-User-Id") != str(self.user_id):
                raise SystemExit("/auth named user %r" % headers.get("X-Baa-User-Id"))

    def groups(self, name):
        """{group: pids} whose CPU a measurement counts."""
        if name == "kore-me":
            # Kore's own CPU in the baa column: it is the application there,
            # and no nginx stands in front of it.
            return {"baa": list(self.kore_pids), "postgres": postgres_pids(self.pg.datadir)}
        baa = {"baa-me-before": self.before, "baa-me-nocache": self.nocache,
               "baa-10k-nocache": self.nocache,
               "baa-10k-nocache-before": self.before_nocache}.get(name, self.baa)
        groups = {"baa": tree(baa.pid), "nginx": tree(self.nginx.pid),
                  "postgres": postgres_pids(self.pg.datadir)}
        if self.fake:
            groups["fake"] = [self.fake.proc.pid]
        return groups

    def run_driver(self, name, argv, env, seconds, settle=0):
        """Runs wrk or pgbench; -> (its output, CPU seconds of every group,
        the driver's own included), settle seconds after it ended (for the
        postmaster to reap pgbench's backends)."""
        groups = self.groups(name)
        before = {k: cpu_ticks(v) for k, v in groups.items()}
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        machine = machine_ticks()
        out = subprocess.run(argv, capture_output=True, text=True, env=env,
                             timeout=seconds + 30).stdout
        machine = [b - a for a, b in zip(machine, machine_ticks())]
        done = resource.getrusage(resource.RUSAGE_CHILDREN)
        time.sleep(settle)
        after = {k: cpu_ticks(v) for k, v in groups.items()}
        cpu = {k: ticks_spent(before[k], after[k]) / CLK_TCK for k in groups}
        cpu["driver"] = done.ru_utime + done.ru_stime - usage.ru_utime - usage.ru_stime
        # How busy the whole machine was, whoever kept it busy.
        self.machine_busy = [t / max(machine[2], 1) for t in machine[:2]]
        return out, cpu

    def measure(self, name, port, connections, script=None, path="/me", env=None, threads=2,
                seconds=None, keep=True, show=True):
        """One wrk run; -> its row (kept in the table unless keep is false)."""
        seconds = seconds or self.args.seconds
        argv = ["wrk", "-t%d" % threads, "-c%d" % connections, "-d%ds" % seconds, "--latency"]
        if script:
            argv += ["-s", os.path.join(HERE, script)]
        argv.append("http://127.0.0.1:%d%s" % (port, path))
        cookie_name, cookie = self.cookie_for(name)
        wenv = dict(os.environ, BAA_SESSION=cookie, BAA_COOKIE_NAME=cookie_name, BAA_PATH=path,
                    BAA_STATUS="204" if path == "/auth" else "200")
        wenv.update(env or {})
        if self.args.perf and keep:
            groups = self.groups(name)
            with bench_perf.Recording() as recording:
                out, cpu = self.run_driver(name, argv, wenv, seconds)
            self.perf_lines += bench_perf.lines(name, connections, recording.breakdown(groups))
        else:
            out, cpu = self.run_driver(name, argv, wenv, seconds)
        r = parse_wrk(out)
        r["lua"] = {k: int(v) for k, v in re.findall(r"\b(logins|failed) (\d+)", out)}
        unexpected = re.search(r"lua: not \d+: (\d+)", out)
        r["non2xx"] += int(unexpected.group(1)) if unexpected else 0
        r.update(name=name, connections=connections, cpu_s=cpu, machine_busy=self.machine_busy)
        self.per_unit(r, r["requests"], "req")
        if keep:
            self.rows.append(r)
        if show:
            self.show(r)
        return r

    @staticmethod
    def per_unit(r, n, unit):
        """The row's rate and CPU per `unit` (req, login, refresh), n of them."""
        r["units"], r["unit"] = n, unit
        if unit != "req":
            r["rps"] = n / r["seconds"] if r["seconds"] else 0.0
        for k, spent in r["cpu_s"].items():
            r["cpu_" + k] = spent / max(n, 1) * 1e6

    @staticmethod
    def show(r):
        extra = ""
        if "hit_ratio" in r:
            extra = "  cache hits %.1f%%" % (100 * r["hit_ratio"])
        if "refreshes" in r:
            extra = "  refreshes %r" % r["refreshes"]
        print("%-14s c=%-3d %9.0f %s/s  p50 %.2f ms  p99 %s ms  baa %.1f us/%s  errors %s non2xx %d%s"
              % (r["name"], r["connections"], r["rps"], r["unit"], r["p50"],
                 "%.2f" % r["p99"] if r["p99"] is not None else "-", r.get("cpu_baa", 0),
                 r["unit"], r["errors"] or "0", r["non2xx"], extra), flush=True)

    def measure_ab(self, connections):
        """baa-me and baa-me-before in turn (in_turn)."""
        self.in_turn({"baa-me": lambda: self.measure("baa-me", self.ports["baa"], connections,
                                                     "me.lua"),
                      "baa-me-before": lambda: self.measure("baa-me-before", self.ports["before"],
                                                            connections, "me.lua")})

    def in_turn(self, rows):
        """{name: a function measuring that row}, run in turn --ab-rounds
        times each (the machine's speed drifts within a run): the round with
        the median rate of each stays in the table."""
        kept = len(self.rows)
        for _ in range(self.args.ab_rounds):
            for measure in rows.values():
                measure()
        rounds = self.rows[kept:]
        del self.rows[kept:]
        for name in rows:
            mine = sorted((r for r in rounds if r["name"] == name), key=lambda r: r["rps"])
            self.rows.append(mine[len(mine) // 2])

    def session_sql(self, token_hash=None):
        """src/sessions.c's sessions_check, the SELECT of a cache miss, as
        baa sends it (SESSION_COLUMNS, USERS_PROFILE_COLUMNS). token_hash:
        SQL for the hash (default: the measured session's)."""
        token_hash = token_hash or "'\\x%s'" % self.token_hash
        epoch = "floor(extract(epoch FROM %s))::bigint"
        return ("SELECT s.id, s.user_id, %s, %s, %s, %s, u.id, u.spotify_id,"
                " coalesce(u.display_name, ''), %s, coalesce(u.account_id, ''),"
                " coalesce(%s, 0), u.needs_reauth_at IS NOT NULL, u.scope IS NOT NULL,"
                " coalesce(u.scope, ''), u.scope_requested"
                " FROM sessions s JOIN users u ON u.id = s.user_id"
                " WHERE s.token_hash = %s AND s.expires_at > now();\n"
                % (epoch % "s.created_at", epoch % "s.last_seen_at", epoch % "s.expires_at",
                   epoch % "s.max_expires_at", epoch % "u.token_expires_at",
                   epoch % "u.authorized_at", token_hash))

    def pgbench(self, name, connections, sql, check=None, setup=""):
        """pgbench -M prepared running sql (check, default sql, finds one
        row), after setup (pgbench's meta-commands); its row, with
        PostgreSQL's CPU per transaction."""
        script = os.path.join(self.dir, name + ".sql")
        with open(script, "w") as f:
            f.write(setup + sql)
        os.chmod(script, 0o644)
        rows = self.pg.psql_rows(check or sql, db=self.db)
        if len(rows) != 1:
            raise SystemExit("%s: the statement finds %d rows, not 1" % (name, len(rows)))
        env = dict(harness.clean_env(), PGPASSWORD=self.pg.password)
        argv = [PGBENCH, "-n", "-M", "prepared", "-T", str(self.args.seconds), "-c", str(connections),
                "-j", "2", "-f", script, "-h", self.pg.sockdir, "-p", str(self.pg.port),
                "-U", self.pg.superuser, self.db]
        out, cpu = self.run_driver(name, argv, env, self.args.seconds, settle=0.3)
        tps = float(re.search(r"tps = ([\d.]+)", out).group(1))
        lat = float(re.search(r"latency average = ([\d.]+) ms", out).group(1))
        done = int(re.search(r"number of transactions actually processed: (\d+)", out).group(1))
        r = {"name": name, "connections": connections, "rps": tps, "p50": lat, "p99": None,
             "errors": "", "non2xx": 0, "cpu_s": {"postgres": cpu["postgres"], "driver": cpu["driver"]},
             "seconds": self.args.seconds}
        self.per_unit(r, done, "tx")
        r["rps"] = tps
        self.rows.append(r)
        print("%-14s c=%-3d %9.0f tps     avg %.2f ms  PostgreSQL %.1f us/tx"
              % (name, connections, tps, lat, r["cpu_postgres"]), flush=True)

    def run(self):
        users = self.users
        need = self.args.users if any(map(self.want, ("baa-me-10k", "baa-10k-nocache", "pgbench-10k",
                                                      "baa-refresh"))) \
            else \
            1 if self.want("baa-token") else 0
        for c in self.args.connections:
            # A short warm-up so every worker has its connection and statements.
            subprocess.run(["wrk", "-t2", "-c%d" % c, "-d1s", "-s", os.path.join(HERE, "me.lua"),
                            "http://127.0.0.1:%d/me" % self.ports["baa"]],
                           capture_output=True, env=dict(os.environ, BAA_SESSION=self.cookie,
                                                         BAA_COOKIE_NAME=harness.SESSION_COOKIE))
            if self.before and self.want("baa-me"):
                self.measure_ab(c)
            elif self.want("baa-me"):
                self.measure("baa-me", self.ports["baa"], c, "me.lua")
            if self.want("baa-me-nocache"):
                self.measure("baa-me-nocache", self.ports["nocache"], c, "me.lua")
            if self.want("kore-me"):
                self.measure_kore(c)
            if self.want("baa-auth"):
                self.measure("baa-auth", self.ports["baa"], c, "me.lua", path="/auth")
            if self.want("auth-request"):
                self.measure("auth-request", self.ports["baa"], c, "me.lua", path="/protected")
            if self.want("baa-me-1cpr"):
                self.measure("baa-me-1cpr", self.ports["fresh"], c, "me.lua")
            if self.want("bare-fcgi"):
                self.measure("bare-fcgi", self.ports["bare"], c)
            if self.want("nginx-200"):
                self.measure("nginx-200", self.ports["return"], c)
            if self.want("pgbench"):
                self.pgbench("pgbench", c, self.session_sql())
            if self.want("logins"):
                users.logins(c)
            if need:
                users.top_up(need)
            if self.want("baa-me-10k"):
                users.me_many(c)
            if self.want("baa-10k-nocache"):
                users.many_nocache(c)
            if self.want("pgbench-10k"):
                n = users.hashes_table()
                self.pgbench("pgbench-10k", c, self.session_sql("(SELECT h FROM bench_hashes WHERE i = :i)"),
                             check=self.session_sql("(SELECT h FROM bench_hashes WHERE i = 1)"),
                             setup="\\set i random(1, %d)\n" % n)
            if need and users.token_cookie is None:
                users.token_setup()
            if self.want("baa-token"):
                users.token(c)
            if self.want("pgbench-token"):
                if users.token_user is None:
                    users.top_up(1)
                    users.token_setup()
                self.pgbench("pgbench-token", c, users.token_sql())
            if self.want("baa-refresh"):
                users.refresh(c)
        self.rss = [rss_kib(p) for p in harness.child_pids(self.baa.pid)]

    def measure_kore(self, connections):
        """GET /me from Kore 4.1 (tests/load/kore_target.py) on the same
        database and session, with as many workers as baa: started for the
        row and stopped after it, since it holds most of the cluster's
        connections open (which pgbench -c 64 needs)."""
        if not kore_target.kore_available():
            print("kore-me    skipped: Debian's kore 4.1 is not installed", flush=True)
            return
        port, self.kore_pids = kore_target.start_kore(
            harness, self.pg, self.db, harness.make_temp_dir("baa-bench-kore-"), self.args.workers)
        try:
            self.measure("kore-me", port, connections, "me.lua")
        finally:
            kore_target.stop_kore(self.kore_pids[0])

    def report(self):
        text = bench_report.report(self)
        if self.perf_lines:
            text += "\nWhere the CPU went (perf record -a, %d Hz):\n\n%s\n" % (
                bench_perf.FREQUENCY, "\n".join(self.perf_lines))
        print()
        print(text)
        if self.args.out:
            with open(self.args.out, "w") as f:
                f.write(text)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--connections", default="16,64")
    parser.add_argument("--workers", type=int, default=os.cpu_count())
    parser.add_argument("--keepalive", type=int, default=128,
                        help="nginx's idle connections to baa per nginx worker (0: none)")
    parser.add_argument("--sessions", type=int, default=1000,
                        help="users with a session each in the tables, the measured one included")
    parser.add_argument("--before", help="an earlier baa binary to measure beside this one")
    parser.add_argument("--profile-cache", choices=("on", "off"), default="on",
                        help="BAA_PROFILE_CACHE of baa (and --before): off makes every"
                             " GET /me read PostgreSQL")
    parser.add_argument("--sandbox", choices=("on", "off"), default="on",
                        help="BAA_SANDBOX of baa (a build from before issue 11 ignores it)")
    parser.add_argument("--ab-rounds", type=int, default=3,
                        help="with --before: rounds of baa-me and baa-me-before, in turn (median kept)")
    parser.add_argument("--users", type=int, default=10000,
                        help="sessions logged in through the stand-in for baa-me-10k and"
                             " baa-refresh (each a user of its own)")
    parser.add_argument("--durable", action="store_true",
                        help="PostgreSQL with fsync, synchronous_commit and full_page_writes on"
                             " (the test cluster runs without): a commit then waits for its flush")
    parser.add_argument("--only", help="measure only these rows (comma-separated): "
                        + ", ".join(ROWS))
    parser.add_argument("--perf", action="store_true",
                        help="sample every CPU with perf during each wrk row and report where "
                             "the time went (baa, nginx, PostgreSQL, kernel; baa's hottest symbols)")
    parser.add_argument("--out")
    args = parser.parse_args()
    if args.perf and bench_perf.available():
        parser.error("--perf: " + bench_perf.available())
    args.connections = [int(c) for c in args.connections.split(",")]
    if args.only is not None:
        args.only = set(args.only.split(","))
        unknown = args.only - set(ROWS)
        if unknown:
            parser.error("--only: no row %s (rows: %s)" % (", ".join(sorted(unknown)), ", ".join(ROWS)))
    for tool in (BARE, harness.baa_bin(), PGBENCH):
        if not os.path.exists(tool):
            raise SystemExit("missing %s: run scripts/build first" % tool)
    bench = Bench(args)
    try:
        bench.setup()
        bench.run()
        bench.report()
    finally:
        harness.cleanup_all()


if __name__ == "__main__":
    main()
