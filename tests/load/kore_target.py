#!/usr/bin/python3
"""Kore 4.1 answering baa's GET /me, for tests/load/bench.py to measure
beside baa on the same PostgreSQL cluster and database (issue 13).

The application is tests/load/kore/ (src/me.c: the cookie, the session
check with the profile columns through Kore's asynchronous pgsql, the same
JSON), built with the Debian package's kodev into build/tests/load/kore/
(or a temp dir when there is no build/), and started here as a plain-HTTP
server on a loopback port with as many workers as baa gets:

    from kore_target import kore_available, start_kore
    if kore_available():
        port, pids = start_kore(harness, pg, db, directory, workers)
        # wrk -s me.lua http://127.0.0.1:<port>/me, CPU of pids

pids are Kore's parent and its workers (for CPU accounting, as bench.py's
tree() of baa); everything is registered with the harness, which kills it
at exit. The cookie is verified as baa verifies it (MAC, key id, expiry),
with the harness's BAA_SECRET_KEY unless another is given.

    python3 tests/load/kore_target.py --selftest [--workers N] [--seconds 3]
        [--connections 16,64] [--pgsql-conn-max N] [--statements prepared|unnamed]

starts a cluster, resets a database with baa, mints a session, checks
that Kore's /me answers 200 with baa's own body (read through nginx from
a baa serving the same database) and 401 without a cookie, with a forged
one and with one of no session; runs wrk -t2 at 16 and 64 connections and
prints req/s, p50, p99 and Kore's and PostgreSQL's CPU per request; then
terminates Kore's backends (503, then 200 again) and stops Kore (its
connections gone). Exit status 1 on any failure.
"""

import argparse
import http.client
import os
import re
import shutil
import signal
import string
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
APP = os.path.join(HERE, "kore")
KORE = shutil.which("kore") or "/usr/bin/kore"
KODEV = shutil.which("kodev") or "/usr/bin/kodev"
# What kodev reads: a change to any of them rebuilds the module.
APP_SOURCES = [os.path.join(APP, "src", "me.c"), os.path.join(APP, "conf", "build.conf")]
# PostgreSQL connections of all Kore's workers together, split evenly
# (kore.conf's pgsql_conn_max, per worker) and opened as each worker starts
# (src/me.c open_connections). Not Kore's default (2 per worker, opened on
# demand): a request that finds none free sleeps in Kore's queue, and Kore
# 4.1 runs new requests before woken ones (http_request_new puts them at
# the head of the run list), so the next request of a kept-alive connection
# takes the connection a queued one was woken for and the queued ones
# starve (16 kept-alive clients, 2 workers, 1 connection each: 14 clients
# got 1 or 2 answers in 4 s, the other two 2877 and 3832; with Kore's
# defaults, wrk's p99 at 64 connections was 0.4 s). With a connection for
# every request a worker has in flight (wrk's 64 connections over the
# workers, with room for an uneven split) nothing queues. 80 of the
# cluster's 100 leaves baa its own: stop_kore before another client needs
# many (pgbench -c 64).
PG_CONNECTIONS = 80


def conn_max_per_worker(workers):
    return max(1, PG_CONNECTIONS // workers)


def kore_available():
    """True when the Debian package's kore and kodev (4.1, with pgsql) are here."""
    if not (os.access(KORE, os.X_OK) and os.access(KODEV, os.X_OK)):
        return False
    out = subprocess.run([KORE, "-v"], capture_output=True, text=True).stdout
    return out.startswith("4.1") and "pgsql" in out.split()


def build_dir():
    """build/tests/load/kore under an in-tree build, else a temp dir of the run's."""
    if os.path.isdir(os.path.join(REPO, "build")):
        return os.path.join(REPO, "build", "tests", "load", "kore")
    return os.path.join(tempfile.gettempdir(), "baa-kore-build-%d" % os.getuid())


def build_module():
    """The path of kore.so, built by kodev if it is missing or older than its sources."""
    out = build_dir()
    so = os.path.join(out, "kore.so")
    newest = max(os.path.getmtime(p) for p in APP_SOURCES)
    if os.path.exists(so) and os.path.getmtime(so) >= newest:
        return so
    os.makedirs(os.path.join(out, "objs"), exist_ok=True)
    # kodev builds the application in its working directory; KORE_OBJDIR and
    # KODEV_OUTPUT keep objects and the module out of the tree.
    env = dict(os.environ, KORE_OBJDIR=os.path.join(out, "objs"), KODEV_OUTPUT=out)
    res = subprocess.run([KODEV, "build"], cwd=APP, env=env, capture_output=True, text=True,
                         timeout=300)
    if res.returncode != 0 or not os.path.exists(so):
        raise RuntimeError("kodev build failed (%d):\n%s%s" % (res.returncode, res.stdout,
                                                               res.stderr))
    # kodev relinks only when an object changed: the module's time says it is current.
    os.utime(so)
    return so


def conninfo(pg, db):
    """What baa gets (harness env.db_env): TCP to the cluster, its superuser."""
    def quote(v):
        return "'%s'" % str(v).replace("\\", "\\\\").replace("'", "\\'")
    return " ".join("%s=%s" % (k, quote(v)) for k, v in (
        ("host", "127.0.0.1"), ("port", pg.port), ("user", pg.superuser),
        ("password", pg.password), ("dbname", db), ("application_name", "kore")))


def write_config(directory, module, port, workers, pgsql_conn_max):
    with open(os.path.join(APP, "conf", "kore.conf")) as f:
        template = string.Template(f.read())
    text = template.safe_substitute(port=port, module=module, workers=workers, dir=directory,
                                    pgsql_conn_max=pgsql_conn_max)
    if re.search(r"\$\{\w+\}", text):
        raise RuntimeError("kore.conf has a field start_kore does not fill: %s" % text)
    path = os.path.join(directory, "kore.conf")
    with open(path, "w") as f:
        f.write(text)
    return path


def answers(port):
    """Kore's /me answers (401 without a cookie): its workers serve."""
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
        conn.request("GET", "/me")
        status = conn.getresponse().status
        conn.close()
        return status == 401
    except OSError:
        return False


def start_kore(harness, pg, db, directory, workers, pgsql_conn_max=None,
               statements="prepared", secret_key=None, timeout=15):
    """Kore serving GET /me over database db of cluster pg, with `workers`
    workers, its config and log in directory -> (port, pids of the parent
    and its workers). pgsql_conn_max: connections per worker (default: see
    PG_CONNECTIONS), all open before this returns. statements: "prepared"
    (once per connection, as baa prepares them) or "unnamed"
    (kore_pgsql_query_params as Kore ships it: parsed and planned per
    request, as baa's are with BAA_DB_POOLER=transaction)."""
    module = build_module()
    port = harness.free_port()
    if pgsql_conn_max is None:
        pgsql_conn_max = conn_max_per_worker(workers)
    conf = write_config(directory, module, port, workers, pgsql_conn_max)
    env = dict(harness.clean_env(), KORE_ME_DB=conninfo(pg, db),
               KORE_ME_SECRET=secret_key or harness.SECRET_KEY, KORE_ME_STATEMENTS=statements)
    # -f foreground (its log on stdout), -n no chroot (libpq reads files as
    # it connects); as root the workers become nobody, else -r keeps the user.
    argv = [KORE, "-f", "-n", "-c", conf]
    if harness.IS_ROOT:
        with open(conf, "a") as f:
            f.write("runas\t\t\t%s\nroot\t\t\t%s\n" % (harness.UNPRIVILEGED_USER, directory))
    else:
        argv.insert(1, "-r")
    # Kore prints its log in the foreground: line by line, so that a worker
    # killed loses none of it.
    if shutil.which("stdbuf"):
        argv = ["stdbuf", "-oL"] + argv
    log = open(os.path.join(directory, "kore.log"), "wb")
    proc = harness.register_process(subprocess.Popen(
        argv, env=env, cwd=directory, stdin=subprocess.DEVNULL, stdout=log,
        stderr=subprocess.STDOUT, start_new_session=True))
    log.close()

    def up():
        if proc.poll() is not None:
            raise RuntimeError("kore exited with %s:\n%s" % (
                proc.returncode, harness.read_text(os.path.join(directory, "kore.log"))))
        return answers(port) and len(harness.child_pids(proc.pid)) >= workers
    harness.wait_until(up, timeout, message="kore did not answer on port %d" % port)
    # Every worker opens its connections before it serves; one answering
    # says nothing of the others.
    want = str(workers * pgsql_conn_max)
    harness.wait_until(lambda: kore_connections(pg, db) == want, timeout, interval=0.2,
                       message="kore did not open %s connections" % want)
    return port, [proc.pid] + harness.child_pids(proc.pid)


def kore_connections(pg, db):
    return pg.psql_value("SELECT count(*) FROM pg_stat_activity"
                         " WHERE application_name = 'kore' AND datname = '%s'" % db)


def stop_kore(pid, timeout=10):
    """Stops the Kore started as pid (start_kore's pids[0]) and its workers,
    which close their PostgreSQL connections."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if os.waitpid(pid, os.WNOHANG)[0] == pid:
                return
        except ChildProcessError:
            if not os.path.exists("/proc/%d" % pid):
                return
        time.sleep(0.05)
    os.killpg(pid, signal.SIGKILL)


# -- --selftest ---------------------------------------------------------------

def selftest(args):
    sys.path.insert(0, os.path.join(REPO, "tests", "integration"))
    import harness
    import bench

    if not kore_available():
        raise SystemExit("kore 4.1 with pgsql is not installed (scripts/setup-debian)")
    pg = harness.cluster()
    db = "baa_kore_selftest"
    directory = harness.make_temp_dir("baa-kore-")
    env = harness.base_env(db, workers=args.workers, BAA_SESSION_TTL=bench.SESSION_TTL)
    res = harness.Baa(directory).run(["resetdb"], env=env)
    if res.returncode != 0:
        raise SystemExit("resetdb failed: " + res.stderr)
    user_id = int(pg.psql_value(
        "INSERT INTO users (spotify_id, display_name, spotify_token, refresh_token,"
        " token_expires_at, scope, authorized_at) VALUES ('bench-user', 'Bench \"User\"',"
        " 'T', 'R', now() + interval '1 day', 'user-read-private', now()) RETURNING id", db=db))
    cookie = harness.mint_session(pg, db, user_id, ttl=bench.SESSION_TTL)
    header = {"Cookie": "%s=%s" % (harness.SESSION_COOKIE, cookie)}

    # baa's own answer, through nginx as it is served, to compare bodies.
    baa = harness.Baa(directory).serve(env)
    nginx = harness.Nginx(env["BAA_LISTEN"]).start()
    status, _, baa_body = nginx.get("/me", headers=header)
    if status != 200:
        raise SystemExit("baa /me answered %d: %r" % (status, baa_body))
    nginx.stop()
    baa.stop()

    port, pids = start_kore(harness, pg, db, directory, args.workers,
                            pgsql_conn_max=args.pgsql_conn_max, statements=args.statements)
    failures = []
    status, _, kore_body = harness.http_request(port, "GET", "/me", headers=header)
    if status != 200 or kore_body != baa_body:
        failures.append("with the cookie: %d %r, baa answers %r" % (status, kore_body, baa_body))
    for name, value in (("none", None), ("forged MAC", cookie[:-2] + "AA"),
                        ("other session", harness.CookieSigner().sign_session(
                            os.urandom(32), int(time.time()) + 3600))):
        h = {"Cookie": "%s=%s" % (harness.SESSION_COOKIE, value)} if value else {}
        status, _, body = harness.http_request(port, "GET", "/me", headers=h)
        if status != 401:
            failures.append("%s: %d %r, not 401" % (name, status, body))
    print("kore /me: %d bytes, %s; baa's: %d bytes" % (
        len(kore_body), "baa's body" if not failures else "FAILED", len(baa_body)))
    for f in failures:
        print("  " + f)

    for c in args.connections:
        wrk_env = dict(os.environ, BAA_SESSION=cookie, BAA_COOKIE_NAME=harness.SESSION_COOKIE)
        url = "http://127.0.0.1:%d/me" % port
        subprocess.run(["wrk", "-t2", "-c%d" % c, "-d1s", "-s", os.path.join(HERE, "me.lua"), url],
                       capture_output=True, env=wrk_env)
        postgres = bench.postgres_pids(pg.datadir)
        before, pg_before = bench.cpu_ticks(pids), bench.cpu_ticks(postgres)
        out = subprocess.run(["wrk", "-t2", "-c%d" % c, "-d%ds" % args.seconds, "--latency",
                              "-s", os.path.join(HERE, "me.lua"), url],
                             capture_output=True, text=True, env=wrk_env,
                             timeout=args.seconds + 30).stdout
        r = bench.parse_wrk(out)
        spent = bench.ticks_spent(before, bench.cpu_ticks(pids))
        pg_spent = bench.ticks_spent(pg_before, bench.cpu_ticks(postgres))
        per_request = bench.CLK_TCK * max(r["requests"], 1) / 1e6
        unexpected = re.search(r"lua: not \d+: (\d+)", out)
        bad = int(unexpected.group(1)) if unexpected else 0
        print("kore-me    c=%-3d %9.0f req/s  p50 %.2f ms  p99 %.2f ms  kore %.1f us/req"
              "  postgres %.1f us/req  errors %s non200 %d" % (
                  c, r["rps"], r["p50"], r["p99"], spent / per_request, pg_spent / per_request,
                  r["errors"] or "0", bad), flush=True)
        if bad or r["errors"]:
            failures.append("wrk at %d connections: errors %r, non-200 %d" % (c, r["errors"], bad))
    # The server gone from under Kore: 503, then answers again.
    held = kore_connections(pg, db)
    pg.psql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE application_name = 'kore' AND datname = '%s'" % db)
    seen = [harness.http_request(port, "GET", "/me", headers=header)[0] for _ in range(3)]
    seen += [harness.http_request(port, "GET", "/me", headers=header)[0]
             for _ in range(2 * int(held))]
    if seen[0] != 503 or seen[-1] != 200:
        failures.append("backends terminated: answers %s, not 503 first and 200 at last" % seen)
    print("kore /me with its backends terminated: %d answers 503, the last %d"
          % (seen.count(503), seen[-1]))
    stop_kore(pids[0])
    left = harness.wait_until(lambda: kore_connections(pg, db) == "0", 10)
    print("- %d kore workers, pgsql_conn_max %d, %s statements, %s PostgreSQL connections held,"
          " none after stop_kore; %d CPUs, load average %.1f" % (
              args.workers, args.pgsql_conn_max, args.statements, held, os.cpu_count(),
              os.getloadavg()[0]))
    return 1 if failures or not left else 0


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--selftest", action="store_true", required=True)
    parser.add_argument("--workers", type=int, default=os.cpu_count())
    parser.add_argument("--seconds", type=int, default=3)
    parser.add_argument("--connections", default="16,64")
    parser.add_argument("--pgsql-conn-max", type=int,
                        help="Kore's PostgreSQL connections per worker (default %d / workers;"
                             " Kore's own: 2)" % PG_CONNECTIONS)
    parser.add_argument("--statements", choices=("prepared", "unnamed"), default="prepared")
    args = parser.parse_args()
    args.connections = [int(c) for c in args.connections.split(",")]
    args.pgsql_conn_max = args.pgsql_conn_max or conn_max_per_worker(args.workers)
    sys.path.insert(0, os.path.join(REPO, "tests", "integration"))
    import harness
    try:
        sys.exit(selftest(args))
    finally:
        harness.cleanup_all()


if __name__ == "__main__":
    main()
