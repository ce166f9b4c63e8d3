#!/usr/bin/python3
"""One benchmark run: baa's GET /me beside the machine's ceilings.

In one run, on one PostgreSQL cluster, with the same wrk threads and
connections, through the same nginx:
  baa-me      baa GET /me (cookie check, the session and profile from the
              worker's cache, JSON), with kept FastCGI connections as shipped
  baa-me-1cpr the same with one connection per request (--keepalive 0 makes
              baa-me that too)
  baa-auth    baa GET /auth (nginx's auth_request asks it: the same session
              and profile path, a 204 with the user in headers), sent
              straight to a bench-only location with the site's parameters,
              so that it is baa's cost beside baa-me's
  auth-request  a location nginx protects with auth_request /auth, serving a
              static file: the whole cost of a protected request
  bare-fcgi   a do-nothing libfcgi responder, one connection per request
  nginx-200   nginx `return 200` with a body of the same size
  pgbench     `pgbench -M prepared` running baa's session check, the SELECT
              of a cache miss (no HTTP at all)
  baa-me-before  with --before BIN: another baa binary (an earlier build)
              serving the same database beside it, measured in the same run
              right after baa-me, so that a change's cost is a ratio of one run.
              It gets baa-me's cookie if it takes it, else one of the first
              format (baa_session: user id and generation), which a build
              from before issue 10 reads.
The measured user has one session (a row minted as a login makes it); the
tables hold --sessions users with a session each in all.
and reports req/s, p50/p99, CPU per request of baa, nginx and PostgreSQL,
the RSS of each baa worker, and the ratios, as a markdown table.

usage: tests/load/bench.py [--seconds 5] [--connections 16,64] [--workers 2]
                           [--sessions 1000] [--before OTHER_BAA_BINARY]
                           [--profile-cache on|off] [--sandbox on|off] [--out FILE.md]
Run it on a quiet machine: wrk, nginx, baa and PostgreSQL share its cores.
"""

import argparse
import os
import re
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(REPO, "tests", "integration"))

import harness  # noqa: E402

BARE = os.path.join(REPO, "build", "tests", "load", "bare-responder")
# BAA_SESSION_TTL, and how long the measured cookie lives: more than half of
# it left, so that no request renews it (a renewal writes the row).
SESSION_TTL = 30 * 86400
PGBENCH = os.path.join(harness.PG_BIN, "pgbench")
CLK_TCK = os.sysconf("SC_CLK_TCK")

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
    """{pid: utime + stime} of the pids still alive."""
    ticks = {}
    for pid in pids:
        try:
            with open("/proc/%d/stat" % pid) as f:
                fields = f.read().rsplit(")", 1)[1].split()
            ticks[pid] = int(fields[11]) + int(fields[12])
        except (OSError, IndexError, ValueError):
            pass
    return ticks


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
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open("/proc/%s/cmdline" % entry, "rb") as f:
                    cmd = f.read()
            except OSError:
                continue
            if b"postgres" in cmd.split(b"\0")[0]:
                pids.append(int(entry))
    return pids


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
    requests = int(re.search(r"(\d+) requests in", text).group(1))
    p50 = re.search(r"50%\s+([\d.]+)(us|ms|s)", text)
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)", text)
    errors = re.search(r"Socket errors: (.*)", text)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    return {"rps": rps, "requests": requests, "p50": ms(*p50.groups()), "p99": ms(*p99.groups()),
            "errors": errors.group(1) if errors else "", "non2xx": int(non2xx.group(1)) if non2xx else 0}


class Bench:
    def __init__(self, args):
        self.args = args
        self.rows = []
        self.rss = []

    def setup(self):
        self.pg = harness.cluster()
        self.db = "baa_bench"
        env = harness.base_env(self.db, workers=self.args.workers, BAA_SESSION_TTL=SESSION_TTL,
                               BAA_PROFILE_CACHE=self.args.profile_cache,
                               BAA_SANDBOX=self.args.sandbox)
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
        self.ports = {k: harness.free_port() for k in ("baa", "fresh", "bare", "return", "before")}
        keep = self.args.keepalive > 0
        conf = NGINX_CONF.format(d=self.dir, baa_port=self.ports["baa"],
                                 baa_keepalive="keepalive %d; keepalive_timeout 2s; keepalive_time 2s;" % self.args.keepalive if keep else "",
                                 baa_keep_conn="fastcgi_keep_conn on;" if keep else "",
                                 fresh_port=self.ports["fresh"], before_port=self.ports["before"],
                                 bare_port=self.ports["bare"], return_port=self.ports["return"],
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
        targets = [("baa-me", "baa")] + ([("baa-me-before", "before")] if self.before else [])
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

    def measure(self, name, port, connections, script=None, path="/me"):
        baa = self.before if name == "baa-me-before" else self.baa
        groups = {"baa": tree(baa.pid), "nginx": tree(self.nginx.pid),
                  "postgres": postgres_pids(self.pg.datadir)}
        argv = ["wrk", "-t2", "-c%d" % connections, "-d%ds" % self.args.seconds, "--latency"]
        if script:
            argv += ["-s", os.path.join(HERE, script)]
        argv.append("http://127.0.0.1:%d%s" % (port, path))
        cookie_name, cookie = self.cookie_for(name)
        before = {k: cpu_ticks(v) for k, v in groups.items()}
        out = subprocess.run(argv, capture_output=True, text=True,
                             env=dict(os.environ, BAA_SESSION=cookie, BAA_COOKIE_NAME=cookie_name,
                                      BAA_PATH=path, BAA_STATUS="204" if path == "/auth" else "200"),
                             timeout=self.args.seconds + 30).stdout
        after = {k: cpu_ticks(v) for k, v in groups.items()}
        r = parse_wrk(out)
        unexpected = re.search(r"lua: not \d+: (\d+)", out)
        r["non2xx"] += int(unexpected.group(1)) if unexpected else 0
        r.update(name=name, connections=connections)
        for k in groups:
            r["cpu_" + k] = ticks_spent(before[k], after[k]) / CLK_TCK / max(r["requests"], 1) * 1e6
        self.rows.append(r)
        print("%-10s c=%-3d %9.0f req/s  p50 %.2f ms  p99 %.2f ms  baa %.1f us/req  errors %s non2xx %d"
              % (name, connections, r["rps"], r["p50"], r["p99"], r["cpu_baa"], r["errors"] or "0",
                 r["non2xx"]), flush=True)

    def measure_ab(self, connections):
        """baa-me and baa-me-before in turn, --ab-rounds times each (the
        machine's speed drifts within a run): the round with the median
        req/s of each stays in the table."""
        kept = len(self.rows)
        for _ in range(self.args.ab_rounds):
            self.measure("baa-me", self.ports["baa"], connections, "me.lua")
            self.measure("baa-me-before", self.ports["before"], connections, "me.lua")
        rounds = self.rows[kept:]
        del self.rows[kept:]
        for name in ("baa-me", "baa-me-before"):
            mine = sorted((r for r in rounds if r["name"] == name), key=lambda r: r["rps"])
            self.rows.append(mine[len(mine) // 2])

    def pgbench(self, connections):
        script = os.path.join(self.dir, "me.sql")
        epoch = "floor(extract(epoch FROM %s))::bigint"
        with open(script, "w") as f:
            # src/sessions.c's sessions_check, the SELECT of a cache miss,
            # but token_expires_at as it is stored: pgbench would take the
            # colons of to_char's 'HH24:MI:SS' for its own variables
            f.write("SELECT s.id, s.user_id, %s, %s, %s, %s, u.id, u.spotify_id,"
                    " coalesce(u.display_name, ''), u.token_expires_at, coalesce(u.account_id, ''),"
                    " coalesce(%s, 0), u.needs_reauth_at IS NOT NULL"
                    " FROM sessions s JOIN users u ON u.id = s.user_id"
                    " WHERE s.token_hash = '\\x%s' AND s.expires_at > now();\n"
                    % (epoch % "s.created_at", epoch % "s.last_seen_at", epoch % "s.expires_at",
                       epoch % "s.max_expires_at", epoch % "u.authorized_at", self.token_hash))
        os.chmod(script, 0o644)
        with open(script) as f:
            rows = self.pg.psql_rows(f.read(), db=self.db)
        if len(rows) != 1:
            raise SystemExit("the session check finds %d rows, not the measured session" % len(rows))
        env = dict(harness.clean_env(), PGPASSWORD=self.pg.password)
        out = subprocess.run(
            [PGBENCH, "-n", "-M", "prepared", "-T", str(self.args.seconds), "-c", str(connections),
             "-j", "2", "-f", script, "-h", self.pg.sockdir, "-p", str(self.pg.port),
             "-U", self.pg.superuser, self.db],
            capture_output=True, text=True, env=env, timeout=self.args.seconds + 30).stdout
        tps = float(re.search(r"tps = ([\d.]+)", out).group(1))
        lat = float(re.search(r"latency average = ([\d.]+) ms", out).group(1))
        self.rows.append({"name": "pgbench", "connections": connections, "rps": tps,
                          "p50": lat, "p99": None, "errors": "", "non2xx": 0})
        print("%-10s c=%-3d %9.0f tps     avg %.2f ms" % ("pgbench", connections, tps, lat), flush=True)

    def run(self):
        for c in self.args.connections:
            # A short warm-up so every worker has its connection and statements.
            subprocess.run(["wrk", "-t2", "-c%d" % c, "-d1s", "-s", os.path.join(HERE, "me.lua"),
                            "http://127.0.0.1:%d/me" % self.ports["baa"]],
                           capture_output=True, env=dict(os.environ, BAA_SESSION=self.cookie,
                                                         BAA_COOKIE_NAME=harness.SESSION_COOKIE))
            if self.before:
                self.measure_ab(c)
            else:
                self.measure("baa-me", self.ports["baa"], c, "me.lua")
            self.measure("baa-auth", self.ports["baa"], c, "me.lua", path="/auth")
            self.measure("auth-request", self.ports["baa"], c, "me.lua", path="/protected")
            self.measure("baa-me-1cpr", self.ports["fresh"], c, "me.lua")
            self.measure("bare-fcgi", self.ports["bare"], c)
            self.measure("nginx-200", self.ports["return"], c)
            self.pgbench(c)
        self.rss = [rss_kib(p) for p in harness.child_pids(self.baa.pid)]

    def report(self):
        lines = ["| target | conns | req/s | p50 ms | p99 ms | baa CPU µs/req | nginx CPU µs/req "
                 "| PostgreSQL CPU µs/req | errors |",
                 "|---|---|---|---|---|---|---|---|---|"]
        for r in self.rows:
            def f(key, fmt="%.1f"):
                return fmt % r[key] if r.get(key) is not None else "–"
            lines.append("| %s | %d | %.0f | %s | %s | %s | %s | %s | %s |" % (
                r["name"], r["connections"], r["rps"], f("p50", "%.2f"), f("p99", "%.2f"),
                f("cpu_baa") if r["name"].startswith(("baa-", "auth-")) else "–", f("cpu_nginx"),
                f("cpu_postgres"), (r["errors"] or "0") + ("; non-2xx %d" % r["non2xx"] if r["non2xx"] else "")))
        lines.append("")
        for c in self.args.connections:
            by = {r["name"]: r for r in self.rows if r["connections"] == c}
            lines.append("- %d connections: baa-me / bare-fcgi = **%.2f** (one connection per request: "
                         "%.2f), baa-me / nginx-200 = %.2f, baa-me / pgbench = %.2f"
                         % (c, by["baa-me"]["rps"] / by["bare-fcgi"]["rps"],
                            by["baa-me-1cpr"]["rps"] / by["bare-fcgi"]["rps"],
                            by["baa-me"]["rps"] / by["nginx-200"]["rps"],
                            by["baa-me"]["rps"] / by["pgbench"]["rps"]))
            lines.append("- %d connections: baa-auth / baa-me = **%.2f** (baa CPU %.1f against %.1f"
                         " µs/req, p99 %.2f against %.2f ms); auth-request / baa-me = %.2f"
                         % (c, by["baa-auth"]["rps"] / by["baa-me"]["rps"], by["baa-auth"]["cpu_baa"],
                            by["baa-me"]["cpu_baa"], by["baa-auth"]["p99"], by["baa-me"]["p99"],
                            by["auth-request"]["rps"] / by["baa-me"]["rps"]))
            if "baa-me-before" in by:
                lines.append("- %d connections: baa-me / baa-me-before (%s) = **%.3f**, p99 %.2f "
                             "against %.2f ms" % (c, self.args.before, by["baa-me"]["rps"] / by["baa-me-before"]["rps"],
                                                  by["baa-me"]["p99"], by["baa-me-before"]["p99"]))
        lines.append("- baa worker RSS: %s KiB (%d workers)" % (", ".join(map(str, self.rss)), len(self.rss)))
        lines.append("- %d s per measurement, wrk -t2, %d baa workers, nginx worker_processes 1 "
                     "with keepalive %d to baa, %d CPUs, %d users with a session each, "
                     "BAA_PROFILE_CACHE=%s, BAA_SANDBOX=%s"
                     % (self.args.seconds, self.args.workers, self.args.keepalive, os.cpu_count(),
                        max(self.args.sessions, 1), self.args.profile_cache, self.args.sandbox))
        text = "\n".join(lines) + "\n"
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
    parser.add_argument("--out")
    args = parser.parse_args()
    args.connections = [int(c) for c in args.connections.split(",")]
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
