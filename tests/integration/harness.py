"""Reusable pieces for the baa integration tests (Python 3 standard library only).

Everything started here is registered in a process registry and killed at
interpreter exit (atexit) or by ``cleanup_all()``, so a failing or interrupted
run never leaves PostgreSQL, nginx or baa processes behind.

Environment knobs:
  BAA_BIN            path of the baa binary (default <repo>/build/src/baa)
  SANITIZER_LOG_DIR  when set, baa gets ASAN_OPTIONS/UBSAN_OPTIONS writing there
  BAA_IT_PG_BIN      PostgreSQL server bin dir (default /usr/lib/postgresql/15/bin)
  BAA_IT_NGINX       nginx binary (default /usr/sbin/nginx)
"""

import atexit
import collections
import errno
import http.client
import os
import pwd
import re
import secrets
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
PG_BIN = os.environ.get("BAA_IT_PG_BIN", "/usr/lib/postgresql/15/bin")
NGINX_BIN = os.environ.get("BAA_IT_NGINX", "/usr/sbin/nginx")
FASTCGI_PARAMS = "/etc/nginx/fastcgi_params"
PSQL = os.path.join(PG_BIN, "psql") if os.path.exists(os.path.join(PG_BIN, "psql")) else "psql"
PG_DUMP = os.path.join(PG_BIN, "pg_dump") if os.path.exists(os.path.join(PG_BIN, "pg_dump")) else "pg_dump"

IS_ROOT = os.geteuid() == 0
UNPRIVILEGED_USER = "nobody"


class HarnessError(Exception):
    """Set-up of the environment (not the code under test) went wrong."""


# ---------------------------------------------------------------------------
# generic helpers


def wait_until(predicate, timeout, interval=0.02, message=None):
    """Poll predicate() until it returns a truthy value; return that value.

    Raises AssertionError (so tests report a failure, not an error) after
    `timeout` seconds. Exceptions from predicate propagate.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(message or "condition not met within %.1fs" % timeout)
        time.sleep(interval)


def free_port(host="127.0.0.1"):
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def port_is_free(port, host="127.0.0.1"):
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        # As baa binds: TIME_WAIT leftovers of earlier tests do not count.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
        return True


def port_answers(port, host="127.0.0.1", timeout=0.5):
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def ipv6_loopback_available():
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


def _nobody_ids():
    pw = pwd.getpwnam(UNPRIVILEGED_USER)
    return pw.pw_uid, pw.pw_gid


def make_temp_dir(prefix="baa-it-"):
    """A temp dir that the unprivileged user can traverse and write to."""
    path = tempfile.mkdtemp(prefix=prefix, dir="/tmp")
    os.chmod(path, 0o777)
    _TEMP_DIRS.append(path)
    return path


def give_to_nobody(path):
    if IS_ROOT:
        uid, gid = _nobody_ids()
        os.chown(path, uid, gid)


def as_unprivileged(argv):
    """PostgreSQL refuses to run as root: prefix with runuser when we are root."""
    if IS_ROOT:
        return ["runuser", "-u", UNPRIVILEGED_USER, "--"] + list(argv)
    return list(argv)


def read_text(path):
    try:
        with open(path, "r", errors="replace") as f:
            return f.read()
    except FileNotFoundError:
        return ""


# ---------------------------------------------------------------------------
# process registry / cleanup

_LOCK = threading.RLock()
_PROCS = []          # Popen objects started in their own session (pgid == pid)
_EXTRA_PIDS = set()  # e.g. worker pids seen, killed on cleanup if still there
_CLEANUPS = []       # callables run at cleanup (e.g. pg_ctl stop)
_TEMP_DIRS = []


def register_process(proc):
    with _LOCK:
        _PROCS.append(proc)
    return proc


def register_pid(pid):
    with _LOCK:
        _EXTRA_PIDS.add(pid)


def register_cleanup(fn):
    with _LOCK:
        _CLEANUPS.append(fn)


def _pids_in_group(pgid):
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        st = proc_stat(int(entry))
        if st and st["pgrp"] == pgid and st["state"] not in ("Z", "X"):
            out.append(int(entry))
    return out


def kill_process_tree(proc, sig=signal.SIGKILL):
    """Kill a process started with start_new_session=True and its whole group."""
    pgid = proc.pid
    first = [proc.pid] if proc.poll() is None else []
    for pid in first + _pids_in_group(pgid):
        try:
            os.kill(pid, sig)
        except (ProcessLookupError, PermissionError):
            pass
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        pass


def cleanup_all():
    with _LOCK:
        procs = list(_PROCS)
        _PROCS.clear()
        extra = set(_EXTRA_PIDS)
        _EXTRA_PIDS.clear()
        cleanups = list(_CLEANUPS)
        _CLEANUPS.clear()
    for proc in procs:
        if proc.poll() is None or _pids_in_group(proc.pid):
            kill_process_tree(proc)
    for pid in extra:
        if pid_alive(pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
    for fn in reversed(cleanups):
        try:
            fn()
        except Exception as exc:  # pragma: no cover - best effort
            print("harness cleanup error: %r" % (exc,), file=sys.stderr)
    if not os.environ.get("BAA_IT_KEEP_TMP"):
        for path in _TEMP_DIRS:
            shutil.rmtree(path, ignore_errors=True)
        _TEMP_DIRS.clear()


atexit.register(cleanup_all)


# ---------------------------------------------------------------------------
# /proc helpers


def proc_stat(pid):
    """Parse /proc/<pid>/stat -> dict(state, ppid, pgrp) or None if gone."""
    try:
        with open("/proc/%d/stat" % pid, "r") as f:
            data = f.read()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    # comm may contain spaces/parens: split after the last ')'
    rest = data[data.rindex(")") + 2:].split()
    return {"state": rest[0], "ppid": int(rest[1]), "pgrp": int(rest[2])}


def pid_alive(pid):
    """True if the process exists and is not a zombie."""
    st = proc_stat(pid)
    return st is not None and st["state"] not in ("Z", "X")


def child_pids(pid, include_zombies=False):
    """Children of pid (from /proc/<pid>/task/<pid>/children, fallback scan)."""
    path = "/proc/%d/task/%d/children" % (pid, pid)
    pids = None
    try:
        with open(path) as f:
            pids = [int(x) for x in f.read().split()]
    except FileNotFoundError:
        if os.path.exists("/proc/%d" % pid):
            pids = []
            for entry in os.listdir("/proc"):
                if entry.isdigit():
                    st = proc_stat(int(entry))
                    if st and st["ppid"] == pid:
                        pids.append(int(entry))
        else:
            return []
    if include_zombies:
        return sorted(pids)
    return sorted(p for p in pids if pid_alive(p))


# ---------------------------------------------------------------------------
# PostgreSQL


class PostgresCluster:
    """A throw-away PostgreSQL cluster in a temp dir, run as `nobody`."""

    def __init__(self, superuser="baa", password=None):
        self.superuser = superuser
        # distinctive so that tests can grep output for leaks of it
        self.password = password or ("pw-" + secrets.token_hex(12))
        self.base = None
        self.datadir = None
        self.sockdir = None
        self.logfile = None
        self.port = None
        self.listen_ipv6 = ipv6_loopback_available()
        self.running = False
        self._started_once = False
        self._lock = threading.RLock()

    # -- lifecycle ---------------------------------------------------------
    def init(self):
        self.base = make_temp_dir("baa-it-pg-")
        give_to_nobody(self.base)
        self.datadir = os.path.join(self.base, "data")
        self.sockdir = os.path.join(self.base, "sock")
        os.mkdir(self.sockdir)
        os.chmod(self.sockdir, 0o755)
        give_to_nobody(self.sockdir)
        self.logfile = os.path.join(self.base, "postgres.log")
        pwfile = os.path.join(self.base, "pwfile")
        with open(pwfile, "w") as f:
            f.write(self.password + "\n")
        os.chmod(pwfile, 0o600)
        give_to_nobody(pwfile)
        # A free port, never a fixed one: runs side by side must not collide.
        # Clients given only the socket directory get PGPORT (see socket_url_env).
        self.port = free_port()
        cmd = [os.path.join(PG_BIN, "initdb"), "-D", self.datadir, "-U", self.superuser,
               "--pwfile=" + pwfile, "--auth=scram-sha-256", "-E", "UTF8",
               "--locale=C", "--no-sync"]
        res = subprocess.run(as_unprivileged(cmd), capture_output=True, text=True, stdin=subprocess.DEVNULL,
                             timeout=120, cwd=self.base)
        os.unlink(pwfile)
        if res.returncode != 0:
            raise HarnessError("initdb failed (%d):\n%s\n%s" % (res.returncode, res.stdout, res.stderr))
        with open(os.path.join(self.datadir, "postgresql.conf"), "a") as f:
            addrs = "127.0.0.1,::1" if self.listen_ipv6 else "127.0.0.1"
            f.write("\n# baa integration tests\n")
            f.write("listen_addresses = '%s'\n" % addrs)
            f.write("include_if_exists = 'port.conf'\n")
            f.write("unix_socket_directories = '%s'\n" % self.sockdir)
            f.write("fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n")
            f.write("max_connections = 100\n")
            f.write("log_min_messages = warning\n")
        self._write_port()
        register_cleanup(self._cleanup)

    def _write_port(self):
        path = os.path.join(self.datadir, "port.conf")
        with open(path, "w") as f:
            f.write("port = %d\n" % self.port)
        give_to_nobody(path)

    def use_certificate(self, cert_file, key_file):
        """TLS on (ssl = on) with this certificate and key, copied into the
        data directory: the server, run as nobody, must own a key only it can
        read. Takes effect at the next start. pg_hba's `host` lines accept
        connections with and without TLS, so the harness's psql (libpq's
        default, prefer) goes on working."""
        if self.datadir is None:
            self.init()
        for src, name, mode in ((cert_file, "server.crt", 0o644), (key_file, "server.key", 0o600)):
            dst = os.path.join(self.datadir, name)
            shutil.copyfile(src, dst)
            os.chmod(dst, mode)
            give_to_nobody(dst)
        with open(os.path.join(self.datadir, "postgresql.conf"), "a") as f:
            f.write("ssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\n")

    def start(self, timeout=60):
        with self._lock:
            if self.datadir is None:
                self.init()
            cmd = [os.path.join(PG_BIN, "pg_ctl"), "-D", self.datadir, "-l", self.logfile,
                   "-w", "-t", str(int(timeout)), "start"]
            for attempt in range(3):
                res = subprocess.run(as_unprivileged(cmd), capture_output=True, text=True,
                                     stdin=subprocess.DEVNULL, timeout=timeout + 10, cwd=self.base)
                # Another process took the port between free_port() and the
                # server's bind: only a first start may move to another port.
                if (res.returncode == 0 or self._started_once
                        or "already in use" not in read_text(self.logfile)):
                    break
                self.port = free_port()
                self._write_port()
                open(self.logfile, "w").close()
            if res.returncode != 0:
                raise HarnessError("pg_ctl start failed (%d):\n%s\n%s\n--- log ---\n%s" % (
                    res.returncode, res.stdout, res.stderr, read_text(self.logfile)[-4000:]))
            self.running = True
            self._started_once = True

    def stop(self, mode="fast", timeout=60):
        with self._lock:
            if self.datadir is None:
                return
            cmd = [os.path.join(PG_BIN, "pg_ctl"), "-D", self.datadir, "-m", mode,
                   "-w", "-t", str(int(timeout)), "stop"]
            res = subprocess.run(as_unprivileged(cmd), capture_output=True, text=True, stdin=subprocess.DEVNULL,
                                 timeout=timeout + 10, cwd=self.base)
            self.running = False
            if res.returncode != 0 and "Is server running?" not in res.stderr:
                raise HarnessError("pg_ctl stop failed (%d): %s %s" % (res.returncode, res.stdout, res.stderr))

    def ensure_running(self):
        if not self.running:
            self.start()

    def _cleanup(self):
        if self.datadir and os.path.exists(os.path.join(self.datadir, "postmaster.pid")):
            try:
                self.stop(mode="immediate", timeout=30)
            except Exception:
                # last resort: kill the postmaster recorded in postmaster.pid
                try:
                    with open(os.path.join(self.datadir, "postmaster.pid")) as f:
                        os.kill(int(f.readline().strip()), signal.SIGQUIT)
                except Exception:
                    pass

    # -- client helpers ----------------------------------------------------
    def client_env(self):
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env["PGPASSWORD"] = self.password
        env["PGCONNECT_TIMEOUT"] = "10"
        return env

    def client_args(self, db="postgres"):
        return ["-h", "127.0.0.1", "-p", str(self.port), "-U", self.superuser, "-d", db]

    def psql(self, sql, db="postgres", timeout=30, check=True):
        """Run sql with psql; return stdout (unaligned, tuples only)."""
        cmd = [PSQL, "-X", "-A", "-t", "-q", "-v", "ON_ERROR_STOP=1"] + self.client_args(db) + ["-c", sql]
        res = subprocess.run(cmd, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=timeout, env=self.client_env())
        if check and res.returncode != 0:
            raise HarnessError("psql failed (%d) on %r in db %s:\n%s" % (res.returncode, sql, db, res.stderr))
        if not check:
            return res
        return res.stdout

    def psql_rows(self, sql, db="postgres"):
        out = self.psql(sql, db=db)
        return [line.split("|") for line in out.splitlines() if line != ""]

    def psql_value(self, sql, db="postgres"):
        return self.psql(sql, db=db).strip()

    def database_exists(self, name):
        return self.psql_value("SELECT count(*) FROM pg_database WHERE datname = '%s'" % name) == "1"

    def drop_database(self, name):
        self.psql('DROP DATABASE IF EXISTS "%s" WITH (FORCE)' % name)

    def create_database(self, name):
        self.drop_database(name)
        self.psql('CREATE DATABASE "%s"' % name)

    def table_exists(self, db, table):
        return self.psql_value("SELECT to_regclass('public.%s') IS NOT NULL" % table, db=db) == "t"

    def schema_dump(self, db):
        cmd = [PG_DUMP, "--schema-only", "--no-owner", "--no-privileges"] + self.client_args(db)
        res = subprocess.run(cmd, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=60, env=self.client_env())
        if res.returncode != 0:
            raise HarnessError("pg_dump failed: %s" % res.stderr)
        # drop comments, blank lines and pg_dump's per-run random \restrict keys
        return "\n".join(l for l in res.stdout.splitlines()
                         if l and not l.startswith("--") and not l.startswith(("\\restrict", "\\unrestrict")))

    def session(self, db):
        return PsqlSession(self, db)

    def ready(self):
        res = self.psql("SELECT 1", check=False, timeout=10)
        return res.returncode == 0


class PsqlSession:
    """A long-lived psql process fed through stdin: holds a connection open.

    Used to keep sessions connected to a database and to hold locks inside an
    open transaction. Whether a statement took effect is verified from another
    connection (pg_stat_activity / pg_locks), so no reliance on psql's stdout
    buffering.
    """

    def __init__(self, cluster, db):
        self.cluster = cluster
        self.db = db
        self.app = "baa-it-%s" % secrets.token_hex(4)
        env = cluster.client_env()
        env["PGAPPNAME"] = self.app
        cmd = [PSQL, "-X", "-A", "-t", "-q", "-v", "ON_ERROR_STOP=1"] + cluster.client_args(db)
        self.proc = register_process(subprocess.Popen(
            cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            env=env, text=True, start_new_session=True))
        self.send("SELECT 1;")
        wait_until(lambda: self.backend_pid() is not None or self.proc.poll() is not None, 15,
                   message="psql session did not connect")
        if self.proc.poll() is not None:
            raise HarnessError("psql session exited: %s" % self.proc.stderr.read())

    def send(self, sql):
        self.proc.stdin.write(sql + "\n")
        self.proc.stdin.flush()

    def backend_pid(self):
        out = self.cluster.psql_value(
            "SELECT pid FROM pg_stat_activity WHERE application_name = '%s'" % self.app)
        return int(out) if out else None

    def hold_lock(self, table="schema_migrations", mode="ACCESS EXCLUSIVE", timeout=15):
        self.send("BEGIN; LOCK TABLE %s IN %s MODE;" % (table, mode))
        wait_until(lambda: self.lock_granted(table) or self.proc.poll() is not None, timeout,
                   message="lock on %s was not granted" % table)
        if self.proc.poll() is not None:
            raise HarnessError("psql session exited: %s" % self.proc.stderr.read())

    def lock_granted(self, table):
        pid = self.backend_pid()
        if pid is None:
            return False
        return self.cluster.psql_value(
            "SELECT count(*) FROM pg_locks WHERE pid = %d AND granted AND mode = 'AccessExclusiveLock' "
            "AND relation = to_regclass('public.%s')" % (pid, table), db=self.db) == "1"

    def waiting_lockers(self, table="schema_migrations"):
        """Number of other backends waiting for a lock on table."""
        return int(self.cluster.psql_value(
            "SELECT count(*) FROM pg_locks WHERE NOT granted AND relation = to_regclass('public.%s')" % table,
            db=self.db))

    def commit(self):
        self.send("COMMIT;")

    def close(self, timeout=10):
        if self.proc.poll() is None:
            try:
                self.send("COMMIT;")
                self.send("\\q")
                self.proc.stdin.close()
            except (BrokenPipeError, ValueError, OSError):
                pass
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                kill_process_tree(self.proc)
        for stream in (self.proc.stdout, self.proc.stderr):
            try:
                stream.close()
            except Exception:
                pass


_CLUSTER = None
_CLUSTER_LOCK = threading.Lock()


def cluster():
    """The one PostgreSQL cluster shared by the whole run (started lazily)."""
    global _CLUSTER
    with _CLUSTER_LOCK:
        if _CLUSTER is None:
            c = PostgresCluster()
            c.start()
            _CLUSTER = c
        elif not _CLUSTER.running:
            _CLUSTER.start()
        return _CLUSTER


PGBOUNCER_BIN = os.environ.get("BAA_IT_PGBOUNCER", "/usr/sbin/pgbouncer")


class PgBouncer:
    """A PgBouncer in front of a PostgresCluster, run as `nobody` on a free
    loopback port, stopped at cleanup.

    Any database name reaches the same-named database of the cluster (a
    `*` entry); clients log in as the cluster's superuser with SCRAM, and
    PgBouncer logs in to the server with the same password. pool_size is
    the most server connections it opens per database and user;
    ignore_startup_parameters lets clients send what PgBouncer would
    otherwise refuse them for (libpq's `options`). The connect_query sets
    the statement_timeout that baa's `options` set on a direct connection
    (README, "Database connections"). The admin console (database
    `pgbouncer`) is open to the same user.
    """

    def __init__(self, pg, pool_mode="transaction", pool_size=2, ignore_startup_parameters=""):
        self.pg = pg
        self.pool_mode = pool_mode
        self.pool_size = pool_size
        self.ignore_startup_parameters = ignore_startup_parameters
        self.base = make_temp_dir("baa-it-pgb-")
        give_to_nobody(self.base)
        self.port = None
        self.proc = None
        self.logfile = os.path.join(self.base, "pgbouncer.log")
        self.ini = os.path.join(self.base, "pgbouncer.ini")

    def _write_config(self):
        userlist = os.path.join(self.base, "userlist.txt")
        with open(userlist, "w") as f:
            f.write('"%s" "%s"\n' % (self.pg.superuser, self.pg.password))
        os.chmod(userlist, 0o600)
        give_to_nobody(userlist)
        with open(self.ini, "w") as f:
            f.write(
                "[databases]\n"
                "* = host=127.0.0.1 port=%(pgport)d connect_query='SET statement_timeout = 5000'\n"
                "[pgbouncer]\n"
                "listen_addr = 127.0.0.1\n"
                "listen_port = %(port)d\n"
                "unix_socket_dir =\n"
                "auth_type = scram-sha-256\n"
                "auth_file = %(userlist)s\n"
                "admin_users = %(user)s\n"
                "pool_mode = %(mode)s\n"
                "default_pool_size = %(size)d\n"
                "min_pool_size = 0\n"
                "reserve_pool_size = 0\n"
                "max_client_conn = 200\n"
                "logfile = %(log)s\n"
                "pidfile = %(base)s/pgbouncer.pid\n"
                "ignore_startup_parameters = %(ignore)s\n"
                % {"pgport": self.pg.port, "port": self.port, "userlist": userlist,
                   "ignore": self.ignore_startup_parameters, "user": self.pg.superuser,
                   "mode": self.pool_mode, "size": self.pool_size, "log": self.logfile,
                   "base": self.base})
        give_to_nobody(self.ini)

    def start(self, timeout=15):
        if not os.access(PGBOUNCER_BIN, os.X_OK):
            raise HarnessError("%s not found: run scripts/setup-debian" % PGBOUNCER_BIN)
        self.port = free_port()
        self._write_config()
        # In the foreground (no -d), so that the registry can kill it.
        self.proc = register_process(subprocess.Popen(
            as_unprivileged([PGBOUNCER_BIN, self.ini]), stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=self.base,
            start_new_session=True))
        register_cleanup(self.stop)

        def up():
            if self.proc.poll() is not None:
                raise HarnessError("pgbouncer exited with %s:\n%s" % (
                    self.proc.returncode, read_text(self.logfile)[-3000:]))
            return port_answers(self.port)
        wait_until(up, timeout, message="pgbouncer did not listen within %ss" % timeout)
        return self

    def stop(self, timeout=10):
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)  # immediate shutdown
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            kill_process_tree(self.proc)

    def log(self):
        return read_text(self.logfile)

    def db_env(self, db):
        """The POSTGRES_* variables of db through the bouncer."""
        return db_env(db, url="127.0.0.1:%d" % self.port, pg=self.pg)

    def admin(self, command):
        """A SHOW command on the admin console -> list of dicts by column name."""
        cmd = [PSQL, "-X", "-A", "-q", "-h", "127.0.0.1", "-p", str(self.port),
               "-U", self.pg.superuser, "-d", "pgbouncer", "-c", command]
        res = subprocess.run(cmd, capture_output=True, text=True, stdin=subprocess.DEVNULL,
                             timeout=15, env=self.pg.client_env())
        if res.returncode != 0:
            raise HarnessError("pgbouncer %s failed: %s" % (command, res.stderr))
        lines = [l for l in res.stdout.splitlines() if l and not l.startswith("(")]
        header = lines[0].split("|")
        return [dict(zip(header, l.split("|"))) for l in lines[1:]]


# ---------------------------------------------------------------------------
# environment for baa

_SCRUB_PREFIXES = ("POSTGRES_", "BAA_", "PG", "SPOTIFY_")
# libcurl's proxy variables: a proxy of the machine running the tests must
# not carry baa's calls to the loopback stand-in (tests that want one set it).
_SCRUB_PROXY = ("http_proxy", "https_proxy", "all_proxy", "no_proxy")


def sanitizer_env(env):
    log_dir = os.environ.get("SANITIZER_LOG_DIR")
    if not log_dir:
        return env
    os.makedirs(log_dir, exist_ok=True)
    asan = "log_path=%s:detect_leaks=1:abort_on_error=0" % os.path.join(log_dir, "asan")
    ubsan = "log_path=%s:print_stacktrace=1:halt_on_error=1" % os.path.join(log_dir, "ubsan")
    if os.environ.get("ASAN_OPTIONS"):
        asan += ":" + os.environ["ASAN_OPTIONS"]
    if os.environ.get("UBSAN_OPTIONS"):
        ubsan += ":" + os.environ["UBSAN_OPTIONS"]
    env["ASAN_OPTIONS"] = asan
    env["UBSAN_OPTIONS"] = ubsan
    return env


def clean_env():
    """os.environ without anything that could configure baa or libpq."""
    env = {k: v for k, v in os.environ.items()
           if (not k.startswith(_SCRUB_PREFIXES) or k == "BAA_BIN")
           and k.lower() not in _SCRUB_PROXY}
    env.pop("BAA_BIN", None)
    return sanitizer_env(env)


def db_env(db, url=None, pg=None):
    """The four POSTGRES_* variables for database `db` (TCP by default)."""
    pg = pg or cluster()
    return {
        "POSTGRES_URL": url if url is not None else "127.0.0.1:%d" % pg.port,
        "POSTGRES_USER": pg.superuser,
        "POSTGRES_PW": pg.password,
        "POSTGRES_DB": db,
    }


def socket_url_env(pg=None):
    """Extra env for POSTGRES_URL=<socket dir>. PGPORT covers a non-5432 port."""
    pg = pg or cluster()
    env = {"POSTGRES_URL": pg.sockdir}
    if pg.port != 5432:
        env["PGPORT"] = str(pg.port)
    return env


# What `baa serve` needs besides the database. Tests of the login replace the
# Spotify URLs with a running fake; the others never reach Spotify.
SPOTIFY_CLIENT_ID = "baa-test-client-id"
SPOTIFY_CLIENT_SECRET = "baa-test-client-secret-0123456789"
SECRET_KEY = "baa-test-secret-key-0123456789abcdef-xyz"


def spotify_env(redirect_uri="http://127.0.0.1:9/callback", fake_url=None, ca_file=None):
    """The Spotify variables; with a fake's URL, baa calls it, and trusts
    ca_file (default: the run's test CA) when the URL is https."""
    env = {
        "SPOTIFY_CLIENT_ID": SPOTIFY_CLIENT_ID,
        "SPOTIFY_CLIENT_SECRET": SPOTIFY_CLIENT_SECRET,
        "SPOTIFY_REDIRECT_URI": redirect_uri,
        "BAA_SECRET_KEY": SECRET_KEY,
    }
    if fake_url:
        env["SPOTIFY_ACCOUNTS_URL"] = fake_url
        env["SPOTIFY_API_URL"] = fake_url
    if fake_url and fake_url.startswith("https://"):
        env["SPOTIFY_CA_FILE"] = ca_file or fake_spotify_certificates().ca_file
    return env


def base_env(db, listen=None, workers=2, **extra):
    env = clean_env()
    env.update(db_env(db))
    env.update(spotify_env())
    env["BAA_LISTEN"] = listen or "127.0.0.1:%d" % free_port()
    env["BAA_WORKERS"] = str(workers)
    return with_extra(env, extra)


def with_extra(env, extra):
    """env with extra's variables set (as text), and those given as None removed."""
    for k, v in extra.items():
        if v is None:
            env.pop(k, None)
        else:
            env[k] = str(v)
    return env


# ---------------------------------------------------------------------------
# baa


def baa_bin():
    return os.environ.get("BAA_BIN") or os.path.join(REPO, "build", "src", "baa")


_BINARIES_NOBODY_CAN_READ = set()


def require_baa():
    path = baa_bin()
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        raise AssertionError("baa binary not found or not executable at %s "
                             "(build it with scripts/build, or set BAA_BIN)" % path)
    if IS_ROOT and path not in _BINARIES_NOBODY_CAN_READ:
        # baa serve runs as nobody once bound; the sanitizers' symbolizer
        # then reads the binary as nobody.
        res = subprocess.run(as_unprivileged(["test", "-r", path, "-a", "-x", path]),
                             stdin=subprocess.DEVNULL, timeout=30)
        if res.returncode != 0:
            raise HarnessError("%s must be readable and executable by %s (baa serve "
                               "runs as %s when the tests run as root): build in a "
                               "directory %s can reach" % (path, UNPRIVILEGED_USER,
                                                          UNPRIVILEGED_USER, UNPRIVILEGED_USER))
        _BINARIES_NOBODY_CAN_READ.add(path)
    return path


def serve_env(env):
    """env for `baa serve`: started as root, baa refuses to serve unless
    BAA_USER names the user to become, so the tests give it nobody (unless
    the test chose a BAA_USER itself)."""
    if IS_ROOT and "BAA_USER" not in env:
        env = dict(env, BAA_USER=UNPRIVILEGED_USER)
    return env


class Baa:
    """Runs baa subcommands and `baa serve` in the background."""

    def __init__(self, tmpdir=None):
        self.tmpdir = tmpdir or make_temp_dir("baa-it-baa-")
        self.bin = require_baa()
        self.proc = None
        self.logpath = None
        self._logf = None
        self.env = None

    def run(self, args, env, timeout=30, cwd=None):
        """Run `baa args...` and return CompletedProcess (text)."""
        argv = [self.bin] + list(args)
        proc = register_process(subprocess.Popen(
            argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            cwd=cwd or self.tmpdir, stdin=subprocess.DEVNULL, start_new_session=True))
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            kill_process_tree(proc)  # the whole group: a wrongly started server has workers
            out, err = proc.communicate()
            raise AssertionError("baa %s did not finish within %ss (killed)\nstdout=%r\nstderr=%r" % (
                " ".join(args), timeout, out, err))
        finally:
            if _pids_in_group(proc.pid):
                kill_process_tree(proc)
            with _LOCK:
                if proc in _PROCS:
                    _PROCS.remove(proc)
        return subprocess.CompletedProcess(argv, proc.returncode, out, err)

    # -- serve -----------------------------------------------------------
    def serve(self, env, wait_listening=True, timeout=15, umask=None):
        env = serve_env(env)
        self.env = env
        self.logpath = os.path.join(self.tmpdir, "baa-serve-%s.log" % secrets.token_hex(3))
        self._logf = open(self.logpath, "wb")
        kwargs = {}
        if umask is not None:
            kwargs["umask"] = umask
        self.proc = register_process(subprocess.Popen(
            [self.bin, "serve"], env=env, stdin=subprocess.DEVNULL, stdout=self._logf,
            stderr=subprocess.STDOUT, cwd=self.tmpdir, start_new_session=True, **kwargs))
        if wait_listening:
            self.wait_listening(timeout)
        return self

    @property
    def pid(self):
        return self.proc.pid

    def log(self):
        return read_text(self.logpath) if self.logpath else ""

    def log_lines(self):
        return [l for l in self.log().splitlines() if l.strip()]

    def log_records(self):
        return [parse_logfmt(l) for l in self.log_lines()]

    def wait_listening(self, timeout=15):
        def ready():
            if self.proc.poll() is not None:
                raise AssertionError("baa serve exited early with %s; log:\n%s" % (
                    self.proc.returncode, self.log()))
            return "event=listening" in self.log()
        try:
            wait_until(ready, timeout)
        except AssertionError as exc:
            if "exited early" in str(exc):
                raise
            raise AssertionError("baa serve did not log event=listening within %ss; log:\n%s"
                                 % (timeout, self.log()[-3000:]))
        expected = int(self.env.get("BAA_WORKERS", "0") or 0)
        if expected:
            wait_until(lambda: len(self.workers()) == expected, min(timeout, 5),
                       message="expected %d workers, have %r" % (expected, self.workers()))

    def workers(self):
        if self.proc is None or self.proc.poll() is not None:
            return []
        pids = child_pids(self.proc.pid)
        for p in pids:
            register_pid(p)
        return pids

    def signal(self, sig):
        os.kill(self.proc.pid, sig)

    def wait(self, timeout):
        """Wait for the master to exit; returns exit status or raises AssertionError."""
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError("baa serve (pid %d) did not exit within %ss; log:\n%s" % (
                self.proc.pid, timeout, self.log()[-3000:]))

    def stop(self):
        """Forceful cleanup (tests that check graceful exit do it themselves)."""
        if self.proc is not None:
            if self.proc.poll() is None:
                try:
                    self.proc.send_signal(signal.SIGTERM)
                    self.proc.wait(timeout=5)
                except (subprocess.TimeoutExpired, ProcessLookupError):
                    pass
            kill_process_tree(self.proc)
        if self._logf:
            self._logf.close()
            self._logf = None


_LOGFMT_RE = re.compile(r'\s*([^\s=]+)=("(?:[^"\\]|\\.)*"|[^\s"]*)')


def parse_logfmt(line):
    """Parse one logfmt line into a dict; raises ValueError if malformed."""
    out = {}
    pos = 0
    line = line.rstrip("\n")
    while pos < len(line):
        if line[pos:].strip() == "":
            break
        m = _LOGFMT_RE.match(line, pos)
        if not m or m.end() == pos:
            raise ValueError("not logfmt at column %d: %r" % (pos, line))
        key, val = m.group(1), m.group(2)
        if val.startswith('"'):
            val = re.sub(r'\\(.)', lambda mm: {"n": "\n", "t": "\t"}.get(mm.group(1), mm.group(1)), val[1:-1])
        out[key] = val
        pos = m.end()
        if pos < len(line) and not line[pos].isspace():
            raise ValueError("garbage after value at column %d: %r" % (pos, line))
    return out


# ---------------------------------------------------------------------------
# nginx


NGINX_CONF = """\
daemon off;
master_process on;
worker_processes 1;
{user_line}pid {dir}/nginx.pid;
error_log {dir}/error.log info;
events {{ worker_connections 512; }}
http {{
    access_log {dir}/access.log;
    client_body_temp_path {dir}/client_body_temp;
    proxy_temp_path {dir}/proxy_temp;
    fastcgi_temp_path {dir}/fastcgi_temp;
    uwsgi_temp_path {dir}/uwsgi_temp;
    scgi_temp_path {dir}/scgi_temp;
    upstream baa {{ server {upstream}; {keepalive} }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            include {fastcgi_params};
            {keep_conn}
            fastcgi_pass baa;
        }}
    }}
}}
"""


class Nginx:
    def __init__(self, upstream, user=None, kept=True):
        """upstream: '127.0.0.1:PORT' or 'unix:/path'.

        user: nginx worker user; default nobody (root only if asked for, e.g.
        to reach a unix socket whose permissions are not part of the contract).
        kept: kept FastCGI connections, as nginx/baa.conf.in has them (so
        the tests run the path production runs); False: one connection per
        request.
        """
        self.upstream = upstream
        self.dir = make_temp_dir("baa-it-nginx-")
        self.port = free_port()
        self.proc = None
        if user is None:
            user = "%s %s" % (UNPRIVILEGED_USER, _group_name(_nobody_ids()[1])) if IS_ROOT else None
        self.user = user
        for sub in ("client_body_temp", "proxy_temp", "fastcgi_temp", "uwsgi_temp", "scgi_temp"):
            p = os.path.join(self.dir, sub)
            os.mkdir(p)
            os.chmod(p, 0o777)
            give_to_nobody(p)
        conf = NGINX_CONF.format(dir=self.dir, port=self.port, upstream=upstream,
                                 fastcgi_params=FASTCGI_PARAMS,
                                 keepalive="keepalive 16; keepalive_timeout 2s; keepalive_time 2s;"
                                 if kept else "",
                                 keep_conn="fastcgi_keep_conn on;" if kept else "",
                                 user_line=("user %s;\n" % user) if user else "")
        self.conf = os.path.join(self.dir, "nginx.conf")
        with open(self.conf, "w") as f:
            f.write(conf)

    def _argv(self, *extra):
        return [NGINX_BIN, "-p", self.dir + "/", "-c", self.conf, "-e", os.path.join(self.dir, "error.log")] + list(extra)

    def start(self, timeout=10):
        res = subprocess.run(self._argv("-t"), capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=30)
        if res.returncode != 0:
            raise HarnessError("nginx -t rejected %s:\n%s%s\n--- conf ---\n%s" % (
                self.conf, res.stdout, res.stderr, read_text(self.conf)))
        self.proc = register_process(subprocess.Popen(
            self._argv(), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            start_new_session=True))

        def up():
            if self.proc.poll() is not None:
                raise HarnessError("nginx exited with %s: %s\n%s" % (
                    self.proc.returncode, self.proc.stderr.read().decode(errors="replace"), self.error_log()))
            return port_answers(self.port)
        wait_until(up, timeout, message="nginx did not answer on port %d" % self.port)
        return self

    def error_log(self):
        return read_text(os.path.join(self.dir, "error.log"))

    def stop(self, timeout=10):
        if self.proc is None:
            return
        if self.proc.poll() is None:
            try:
                self.proc.send_signal(signal.SIGQUIT)
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.send_signal(signal.SIGTERM)
                try:
                    self.proc.wait(timeout=timeout)
                except subprocess.TimeoutExpired:
                    pass
        kill_process_tree(self.proc)
        try:
            self.proc.stderr.close()
        except Exception:
            pass

    # -- HTTP ---------------------------------------------------------------
    def request(self, method, path, headers=None, body=None, timeout=10):
        return http_request(self.port, method, path, headers=headers, body=body, timeout=timeout)

    def get(self, path, **kw):
        return self.request("GET", path, **kw)


def _group_name(gid):
    import grp
    return grp.getgrgid(gid).gr_name


def http_request(port, method, path, headers=None, body=None, timeout=10, host="127.0.0.1"):
    """One HTTP request on a fresh connection -> (status, headers, body bytes)."""
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        data = resp.read()
        return resp.status, resp.headers, data
    finally:
        conn.close()


def parse_metrics(text):
    """{'name{labels}': value} of every sample line of a /metrics answer."""
    samples = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            key, value = line.rsplit(" ", 1)
            samples[key] = float(value)
    return samples


# ---------------------------------------------------------------------------
# the shipped site: one nginx over several instances

import ssl  # noqa: E402

SITE_SSL = ssl.create_default_context()
SITE_SSL.check_hostname = False
SITE_SSL.verify_mode = ssl.CERT_NONE  # render-nginx local's self-signed certificate
# What scripts/render-nginx reads besides its arguments: none leaks in from outside.
_SITE_RENDER_VARIABLES = ("METRICS_ALLOW", "UPSTREAM_KEEPALIVE", "UPSTREAM_KEEPALIVE_TIMEOUT",
                          "SPOTIFY_UPSTREAMS", "LOGIN_RATE", "LOGIN_BURST", "SERVER_NAME",
                          "TLS_CERT", "TLS_KEY", "STATIC_ROOT", "LOG_DIR", "HTTP_LISTEN",
                          "HTTPS_LISTEN")


def https_request(port, method, path, headers=None, body=None, timeout=10):
    """One HTTPS request on a fresh connection (certificate not verified)
    -> (status, headers, body bytes)."""
    conn = http.client.HTTPSConnection("127.0.0.1", port, context=SITE_SSL, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, resp.headers, resp.read()
    finally:
        conn.close()


# One line of the site's access log (log_format baa in nginx/baa.conf.in):
# seconds is $request_time; upstreams, the addresses tried in order, the
# last one the one that answered.
AccessRecord = collections.namedtuple("AccessRecord", "method uri status seconds upstreams")


class SiteNginx:
    """nginx with the shipped site (nginx/baa.conf.in, `scripts/render-nginx
    local`) in front of several instances (upstreams: "HOST:PORT" or
    "unix:/path"): one upstream of them all, failing over as production
    does (fastcgi_next_upstream, max_fails, fail_timeout). HTTPS on
    https_port; the caller stops it (stop() as a cleanup).
    """

    def __init__(self, upstreams, render_env=None, fail_timeout=None):
        """fail_timeout: seconds instead of the site's, for tests that wait
        for nginx to take a restarted instance back (nothing else changes)."""
        self.upstreams = list(upstreams)
        self.state = make_temp_dir("baa-it-site-")
        self.http_port = free_port()
        self.https_port = free_port()
        while self.https_port == self.http_port:
            self.https_port = free_port()
        env = {k: v for k, v in os.environ.items() if k not in _SITE_RENDER_VARIABLES}
        env.update(render_env or {})
        res = subprocess.run([os.path.join(REPO, "scripts", "render-nginx"), "local", self.state,
                              str(self.http_port), str(self.https_port)] + self.upstreams,
                             env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL,
                             timeout=60)
        if res.returncode != 0:
            raise HarnessError("render-nginx local failed (%d):\n%s%s" % (
                res.returncode, res.stdout, res.stderr))
        conf = os.path.join(self.state, "nginx", "baa.conf")
        self.site = read_text(conf)
        if fail_timeout is not None:
            self.site, n = re.subn(r"\bfail_timeout=\w+", "fail_timeout=%ds" % fail_timeout, self.site)
            if n == 0:
                raise HarnessError("the rendered site sets no fail_timeout to change")
            with open(conf, "w") as f:
                f.write(self.site)
        self.proc = None

    def _argv(self, *extra):
        return [NGINX_BIN, "-p", os.path.join(self.state, "nginx") + "/",
                "-c", os.path.join(self.state, "nginx", "nginx.conf"),
                "-e", os.path.join(self.state, "log", "nginx-error.log")] + list(extra)

    def start(self, timeout=10):
        res = subprocess.run(self._argv("-t"), capture_output=True, text=True,
                             stdin=subprocess.DEVNULL, timeout=30)
        if res.returncode != 0:
            raise HarnessError("nginx -t rejected the rendered site:\n%s%s" % (res.stdout, res.stderr))
        self.proc = register_process(subprocess.Popen(
            self._argv(), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL, start_new_session=True))

        def up():
            if self.proc.poll() is not None:
                raise HarnessError("nginx exited with %s:\n%s" % (self.proc.returncode, self.error_log()))
            try:
                return self.request("GET", "/healthz", timeout=2)[0] == 200
            except OSError:
                return False
        wait_until(up, timeout, interval=0.05, message="nginx did not answer /healthz with 200")
        return self

    def stop(self):
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGQUIT)
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        kill_process_tree(self.proc)

    def request(self, method, path, headers=None, body=None, timeout=10):
        return https_request(self.https_port, method, path, headers=headers, body=body,
                             timeout=timeout)

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def setting(self, name, default=None):
        """A duration directive (or server parameter) of the rendered site, in seconds."""
        m = re.search(r"\b%s[ =](\d+)(ms|s)?\b" % re.escape(name), self.site)
        if not m:
            return default
        return int(m.group(1)) / (1000.0 if m.group(2) == "ms" else 1.0)

    def counter(self, i, route="me", status=200, timeout=5):
        """baa_requests_total of instance i (/metrics/i), or None if it did not answer."""
        try:
            code, _, body = self.get("/metrics/%d" % i, timeout=timeout)
        except OSError:
            return None
        if code != 200:
            return None
        return parse_metrics(body.decode()).get(
            'baa_requests_total{route="%s",status="%d"}' % (route, status), 0.0)

    def browser(self):
        """A harness Browser (its own cookie jar) talking HTTPS to this site."""
        b = Browser(self.https_port)
        b.transport = https_request
        return b

    def error_log(self):
        return read_text(os.path.join(self.state, "log", "nginx-error.log"))

    def upstream_errors(self):
        """{"<error> while <doing what>": count} of nginx's [error] lines (errno dropped)."""
        counts = {}
        for line in self.error_log().splitlines():
            m = re.search(r"\[error\] \d+#\d+: \*\d+ (.*?)(?: \(\d+: [^)]*\))?(?: while (.*?))?, client:",
                          line)
            if m:
                key = m.group(1) + (" while " + m.group(2) if m.group(2) else "")
                counts[key] = counts.get(key, 0) + 1
        return counts

    def access_log_path(self):
        return os.path.join(self.state, "log", "nginx-access.log")

    def access_log_size(self):
        """Where the access log ends now: pass it to access_records(since=...)."""
        try:
            return os.path.getsize(self.access_log_path())
        except FileNotFoundError:
            return 0

    def access_records(self, since=0, uri=None):
        """An AccessRecord of each request logged from byte `since` of the
        access log on (of those for `uri` only, when given)."""
        try:
            with open(self.access_log_path(), "r", errors="replace") as f:
                f.seek(since)
                text = f.read()
        except FileNotFoundError:
            return []
        out = []
        for line in text.splitlines():
            m = re.search(r'"(\w+) (\S+) [^"]*" (\d{3}) \d+ ([\d.]+) (.*)$', line)
            if m and uri in (None, m.group(2)):
                ups = [u.strip() for u in m.group(5).replace(" : ", ", ").split(",")
                       if u.strip() not in ("", "-")]
                out.append(AccessRecord(m.group(1), m.group(2), int(m.group(3)),
                                        float(m.group(4)), ups))
        return out


class Hammer:
    """Threads sending requests in a loop until stopped; records every outcome."""

    def __init__(self, port, paths, threads=3, timeout=10, max_requests=100000):
        self.port = port
        self.paths = list(paths)
        self.nthreads = threads
        self.timeout = timeout
        self.max_requests = max_requests
        self.stop_event = threading.Event()
        self.results = []  # (path, status or exception repr)
        self._lock = threading.Lock()
        self._threads = []

    def _loop(self, idx):
        i = idx
        while not self.stop_event.is_set():
            path = self.paths[i % len(self.paths)]
            i += 1
            try:
                status, _, _ = http_request(self.port, "GET", path, timeout=self.timeout)
                outcome = status
            except Exception as exc:  # record, never raise in a thread
                outcome = repr(exc)
            with self._lock:
                self.results.append((path, outcome))
                if len(self.results) >= self.max_requests:
                    self.stop_event.set()

    def start(self):
        for i in range(self.nthreads):
            t = threading.Thread(target=self._loop, args=(i,), daemon=True)
            t.start()
            self._threads.append(t)
        return self

    def count(self):
        with self._lock:
            return len(self.results)

    def stop(self, timeout=30):
        self.stop_event.set()
        for t in self._threads:
            t.join(timeout)
        with self._lock:
            return list(self.results)

    def failures(self):
        with self._lock:
            return [r for r in self.results if r[1] != 200]


class BackgroundRequest:
    """A single HTTP request running in a thread (for 'in flight' tests)."""

    def __init__(self, port, method, path, timeout=30):
        self.result = None
        self.error = None
        self.done = threading.Event()

        def run():
            try:
                self.result = http_request(port, method, path, timeout=timeout)
            except Exception as exc:
                self.error = exc
            finally:
                self.done.set()
        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()

    def wait(self, timeout):
        self.done.wait(timeout)
        return self.done.is_set()


# ---------------------------------------------------------------------------
# unittest base class

import json  # noqa: E402
import unittest  # noqa: E402


def configure_version():
    """Version from configure.ac's AC_INIT (the contract: `baa --version`)."""
    text = read_text(os.path.join(REPO, "configure.ac"))
    m = re.search(r"AC_INIT\(\s*\[?[^,\]]+\]?\s*,\s*\[?([^,\]\)]+)\]?", text)
    return m.group(1).strip() if m else "0.1.0"


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
    def start_class_stack(cls, env=None, nginx_user=None):
        return cls._start_stack(env or cls.env(), nginx_user, cls.addClassCleanup)

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


# ---------------------------------------------------------------------------
# Spotify login: the fake Spotify, a tiny browser, baa's signed cookies
#
# Used by test_login.py, test_tokens.py and test_sessions.py. Nothing above
# depends on it.

import base64  # noqa: E402
import hashlib  # noqa: E402
import hmac  # noqa: E402
import importlib.util  # noqa: E402
import urllib.parse  # noqa: E402

FAKE_SPOTIFY_DIR = os.path.join(REPO, "tests", "fake_spotify")
# Only has to be the same at baa and at the fake: the tests play the browser
# and never follow the redirect to it.
TEST_REDIRECT_URI = "http://127.0.0.1:9/callback"
# baa asks for no scope unless SPOTIFY_SCOPES names some: id, display_name
# and account_id of /v1/me need none, and development mode grants no more.
DEFAULT_SCOPES = ""
OAUTH_COOKIE = "__Host-baa_oauth"
SESSION_COOKIE = "__Host-baa_session"
# The names of the first cookie format: still read by baa, never written.
LEGACY_OAUTH_COOKIE = "baa_oauth"
LEGACY_SESSION_COOKIE = "baa_session"
_FAKE_MODULES = {}
_CERTIFICATES = None


def _fake_spotify_module(name):
    """tests/fake_spotify/NAME.py as a module (loaded once, under its own name)."""
    with _LOCK:
        if name not in _FAKE_MODULES:
            spec = importlib.util.spec_from_file_location(
                "baa_fake_spotify_" + name, os.path.join(FAKE_SPOTIFY_DIR, name + ".py"))
            mod = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(mod)
            _FAKE_MODULES[name] = mod
        return _FAKE_MODULES[name]


def fake_spotify_client():
    """tests/fake_spotify/client.py as a module."""
    return _fake_spotify_module("client")


def fake_spotify_certs():
    """tests/fake_spotify/certs.py as a module (throwaway CAs and certificates)."""
    return _fake_spotify_module("certs")


def fake_spotify_certificates():
    """The run's throwaway CA and the stand-in's certificate for 127.0.0.1 and
    ::1 (certs.ServerCertificates: ca_file, cert_file, key_file), made once
    per run with the openssl command, in a temp dir baa (nobody) can read."""
    global _CERTIFICATES
    with _LOCK:
        if _CERTIFICATES is None or not os.path.exists(_CERTIFICATES.ca_file):
            _CERTIFICATES = fake_spotify_certs().ServerCertificates(make_temp_dir("baa-it-certs-"))
        return _CERTIFICATES


def start_fake_spotify(redirect_uri=TEST_REDIRECT_URI, tls=True, **kw):
    """A running fake Spotify that knows baa's test client id, secret and
    redirect URI; over HTTPS with fake_spotify_certificates() unless tls=False (or
    other tls_cert/tls_key/ca_file are given)."""
    client = fake_spotify_client()
    if tls and "tls_cert" not in kw:
        certs = fake_spotify_certificates()
        kw.update(tls_cert=certs.cert_file, tls_key=certs.key_file, ca_file=certs.ca_file)
    fake = client.FakeSpotify.start(SPOTIFY_CLIENT_ID, SPOTIFY_CLIENT_SECRET, [redirect_uri],
                                    python=sys.executable or "/usr/bin/python3", **kw)
    register_cleanup(fake.stop)
    return fake


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text):
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def hkdf_sha256(ikm, info, length=32, salt=None):
    """RFC 5869 HKDF with SHA-256; no salt means HashLen zero bytes."""
    if salt is None:
        salt = b"\x00" * 32
    prk = hmac.new(salt, ikm, hashlib.sha256).digest()
    out, block, counter = b"", b"", 1
    while len(out) < length:
        block = hmac.new(prk, block + info + bytes([counter]), hashlib.sha256).digest()
        out += block
        counter += 1
    return out[:length]


def s256(verifier):
    """PKCE S256 challenge of a verifier (RFC 7636 4.2)."""
    return b64url(hashlib.sha256(verifier.encode("ascii")).digest())


class CookieSigner:
    """Makes and reads baa's signed cookies, from the documented format
    (README, "Sessions and cookies"):

    __Host-baa_oauth:   v2.<kid>.<state>.<expires>.<b64url(next)>.<mac>
    __Host-baa_session: v2.<kid>.<b64url(session id, 32 bytes)>.<expires>.<mac>
    mac = b64url(HMAC-SHA256(K, b"<purpose>|" + everything before the last "."))
      purpose "baa_oauth" or "baa_session" (the cookies' first names)
    K = HKDF-SHA256(secret, info=b"baa <purpose> cookie v1", L=32)
    kid = b64url(HMAC-SHA256(K_session, b"baa cookie key id")[:6])
    The first format (read only, under the names baa_oauth and baa_session):
      v1.<state>.<expires>.<b64url(next)>.<mac>, v1.<user id>.<generation>.<expires>.<mac>
    The session's row is keyed by sha256(session id) (sessions.token_hash).
    """

    def __init__(self, secret_key=SECRET_KEY):
        if isinstance(secret_key, str):
            secret_key = secret_key.split()[0].encode("utf-8")
        self.oauth_key = hkdf_sha256(secret_key, b"baa oauth cookie v1")
        self.session_key = hkdf_sha256(secret_key, b"baa session cookie v1")
        self.pkce_key = hkdf_sha256(secret_key, b"baa pkce verifier v1")
        self.kid = b64url(hmac.new(self.session_key, b"baa cookie key id",
                                   hashlib.sha256).digest()[:6])

    @staticmethod
    def _mac(key, name, body):
        return b64url(hmac.new(key, name.encode("ascii") + b"|" + body.encode("ascii"),
                               hashlib.sha256).digest())

    def oauth_mac(self, body):
        return self._mac(self.oauth_key, "baa_oauth", body)

    def session_mac(self, body):
        return self._mac(self.session_key, "baa_session", body)

    def sign_oauth(self, state, expires, next_path="/"):
        body = "v2.%s.%s.%d.%s" % (self.kid, state, int(expires),
                                   b64url(next_path.encode("utf-8")))
        return body + "." + self.oauth_mac(body)

    def sign_legacy_oauth(self, state, expires, next_path="/"):
        body = "v1.%s.%d.%s" % (state, int(expires), b64url(next_path.encode("utf-8")))
        return body + "." + self.oauth_mac(body)

    def pkce_verifier(self, state):
        return b64url(hmac.new(self.pkce_key, state.encode("ascii"), hashlib.sha256).digest())

    def sign_session(self, session_id, expires):
        """session_id: 32 bytes (or its b64url text)."""
        if isinstance(session_id, bytes):
            session_id = b64url(session_id)
        body = "v2.%s.%s.%d" % (self.kid, session_id, int(expires))
        return body + "." + self.session_mac(body)

    def sign_legacy_session(self, user_id, generation, expires):
        body = "v1.%d.%d.%d" % (int(user_id), int(generation), int(expires))
        return body + "." + self.session_mac(body)

    @staticmethod
    def parse_oauth(value):
        """-> dict(kid, state, expires, next, mac) (no verification)."""
        version, kid, state, expires, nxt, mac = value.split(".")
        if version != "v2":
            raise ValueError("not a v2 cookie: %r" % value)
        return {"kid": kid, "state": state, "expires": int(expires),
                "next": b64url_decode(nxt).decode("utf-8"), "mac": mac}

    @staticmethod
    def parse_session(value):
        """-> dict(kid, session_id (bytes), token_hash (hex), expires, mac)."""
        version, kid, sid, expires, mac = value.split(".")
        if version != "v2":
            raise ValueError("not a v2 cookie: %r" % value)
        raw = b64url_decode(sid)
        return {"kid": kid, "session_id": raw, "token_hash": hashlib.sha256(raw).hexdigest(),
                "expires": int(expires), "mac": mac}

    def oauth_is_authentic(self, value):
        body, _, mac = value.rpartition(".")
        return hmac.compare_digest(mac, self.oauth_mac(body))

    def session_is_authentic(self, value):
        body, _, mac = value.rpartition(".")
        return hmac.compare_digest(mac, self.session_mac(body))


def mint_session(pg, db, user_id, secret_key=SECRET_KEY, ttl=3600, device="test",
                 signer=None):
    """A session row for user_id written straight into the database, and its
    cookie value, as a login would have made them (for tests and benchmarks
    that need many sessions without as many logins)."""
    raw = os.urandom(32)
    pg.psql("INSERT INTO sessions (token_hash, user_id, expires_at, max_expires_at, device)"
            " VALUES ('\\x%s', %d, now() + interval '%d seconds',"
            " now() + interval '%d seconds', '%s')"
            % (hashlib.sha256(raw).hexdigest(), int(user_id), ttl, ttl, device), db=db)
    return (signer or CookieSigner(secret_key)).sign_session(raw, int(time.time()) + ttl)


class TokenOpener:
    """Opens the tokens baa stores, from the documented format (README,
    "Tokens at rest"), with libcrypto through ctypes:

    v1.<kid>.<b64url(nonce[12] || AES-256-GCM ciphertext || tag[16])>
    associated data = b"v1|<users.id>|access" or b"v1|<users.id>|refresh"
    kid = b64url(HMAC-SHA256(key, b"baa token key id")[:6])
    the default key = HKDF-SHA256(BAA_SECRET_KEY, info=b"baa token encryption v1")
    """

    DERIVED_INFO = b"baa token encryption v1"
    _lib = None

    def __init__(self, keys=None, secret_key=SECRET_KEY):
        """keys: raw 32-byte keys; none means the one derived from secret_key."""
        if not keys:
            keys = [self.derived_key(secret_key)]
        self.keys = {self.kid(k): k for k in keys}

    @classmethod
    def derived_key(cls, secret_key=SECRET_KEY):
        return hkdf_sha256(secret_key.encode("utf-8"), cls.DERIVED_INFO)

    @staticmethod
    def kid(key):
        return b64url(hmac.new(key, b"baa token key id", hashlib.sha256).digest()[:6])

    @classmethod
    def _libcrypto(cls):
        if cls._lib is None:
            import ctypes
            import ctypes.util
            lib = ctypes.CDLL(ctypes.util.find_library("crypto") or "libcrypto.so.3")
            vp, ip = ctypes.c_void_p, ctypes.POINTER(ctypes.c_int)
            lib.EVP_CIPHER_CTX_new.restype = vp
            lib.EVP_CIPHER_CTX_free.argtypes = [vp]
            lib.EVP_aes_256_gcm.restype = vp
            lib.EVP_DecryptInit_ex.argtypes = [vp, vp, vp, ctypes.c_char_p, ctypes.c_char_p]
            lib.EVP_DecryptUpdate.argtypes = [vp, vp, ip, ctypes.c_char_p, ctypes.c_int]
            lib.EVP_CIPHER_CTX_ctrl.argtypes = [vp, ctypes.c_int, ctypes.c_int, ctypes.c_char_p]
            lib.EVP_DecryptFinal_ex.argtypes = [vp, vp, ip]
            cls._lib = (ctypes, lib)
        return cls._lib

    @classmethod
    def aes_gcm_open(cls, key, nonce, ciphertext, tag, aad):
        """The plaintext bytes, or None when the tag does not match."""
        ctypes, lib = cls._libcrypto()
        EVP_CTRL_AEAD_SET_TAG = 0x11
        ctx = lib.EVP_CIPHER_CTX_new()
        out = ctypes.create_string_buffer(len(ciphertext) + 16)
        n, m = ctypes.c_int(0), ctypes.c_int(0)
        try:
            ok = (lib.EVP_DecryptInit_ex(ctx, lib.EVP_aes_256_gcm(), None, key, nonce) == 1
                  and lib.EVP_DecryptUpdate(ctx, None, ctypes.byref(n), aad, len(aad)) == 1
                  and lib.EVP_DecryptUpdate(ctx, out, ctypes.byref(n), ciphertext,
                                            len(ciphertext)) == 1
                  and lib.EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_SET_TAG, 16, tag) == 1
                  and lib.EVP_DecryptFinal_ex(ctx, ctypes.addressof(out) + n.value,
                                              ctypes.byref(m)) == 1)
        finally:
            lib.EVP_CIPHER_CTX_free(ctx)
        return out.raw[:n.value + m.value] if ok else None

    @staticmethod
    def parse(value):
        """-> (kid, nonce, ciphertext, tag); ValueError when not a sealed value."""
        version, kid, body = value.split(".")
        raw = b64url_decode(body)
        if version != "v1" or len(raw) < 28:
            raise ValueError("not a sealed token")
        return kid, raw[:12], raw[12:-16], raw[-16:]

    def open(self, value, user_id, column):
        """The token text, or None when it does not open for this row and column
        (column: "spotify_token" or "refresh_token")."""
        try:
            kid, nonce, ciphertext, tag = self.parse(value)
        except ValueError:
            return None
        if kid not in self.keys:
            return None
        role = {"spotify_token": b"access", "refresh_token": b"refresh"}[column]
        aad = b"v1|%d|%s" % (int(user_id), role)
        plain = self.aes_gcm_open(self.keys[kid], nonce, ciphertext, tag, aad)
        return plain.decode("utf-8") if plain is not None else None


class SetCookie:
    """One Set-Cookie header: name, value, attributes (lower-case names)."""

    def __init__(self, raw):
        self.raw = raw
        parts = [p.strip() for p in raw.split(";")]
        self.name, _, self.value = parts[0].partition("=")
        self.attrs = {}
        for p in parts[1:]:
            if not p:
                continue
            k, eq, v = p.partition("=")
            self.attrs[k.strip().lower()] = v.strip() if eq else True

    @property
    def max_age(self):
        v = self.attrs.get("max-age")
        return int(v) if isinstance(v, str) and re.fullmatch(r"-?\d+", v) else None

    @property
    def clears(self):
        return self.value == "" or (self.max_age is not None and self.max_age <= 0)

    def __repr__(self):
        return "SetCookie(%r)" % self.raw


class BrowserResponse:
    def __init__(self, status, headers, body, elapsed):
        self.status = status
        self.headers = headers
        self.body = body
        self.elapsed = elapsed
        self.set_cookies = {}
        self.set_cookie_list = [SetCookie(h) for h in (headers.get_all("Set-Cookie") or [])]
        for c in self.set_cookie_list:
            self.set_cookies[c.name] = c

    @property
    def location(self):
        return self.headers.get("Location")

    def json(self):
        return json.loads(self.body.decode("utf-8"))

    def __repr__(self):
        return "<%d %s set-cookie=%r body=%r>" % (self.status, dict(self.headers.items()),
                                                   [c.raw for c in self.set_cookie_list],
                                                   self.body[:300])


class Browser:
    """A browser with its own cookie jar, talking to nginx on loopback.

    Follows no redirects. Set-Cookie is applied as a browser would (an empty
    value or Max-Age <= 0 deletes), so tests that replay an old cookie must
    pass it explicitly (cookies=... or headers={"Cookie": ...}).
    """

    # How a request travels; a subclass may swap it (HTTPS).
    transport = staticmethod(http_request)

    def __init__(self, port):
        self.port = port
        self.jar = {}

    def cookie_header(self, cookies=None):
        jar = self.jar if cookies is None else cookies
        return "; ".join("%s=%s" % kv for kv in jar.items())

    def request(self, method, path, headers=None, cookies=None, timeout=15):
        """cookies: None = the jar; a dict = exactly these; headers["Cookie"] wins."""
        hdrs = dict(headers or {})
        if "Cookie" not in hdrs:
            value = self.cookie_header(cookies)
            if value:
                hdrs["Cookie"] = value
        t0 = time.monotonic()
        status, rh, body = self.transport(self.port, method, path, headers=hdrs, timeout=timeout)
        resp = BrowserResponse(status, rh, body, time.monotonic() - t0)
        for c in resp.set_cookie_list:
            if c.clears:
                self.jar.pop(c.name, None)
            else:
                self.jar[c.name] = c.value
        return resp

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def post(self, path, **kw):
        return self.request("POST", path, **kw)

    def delete(self, path, **kw):
        return self.request("DELETE", path, **kw)

    # -- the login, step by step -----------------------------------------
    def start_login(self, next_path=None, query=None):
        """GET /login[?next=...] (query: a raw query string instead)."""
        if query is None and next_path is not None:
            query = urllib.parse.urlencode({"next": next_path})
        return self.get("/login" + ("?" + query if query else ""))

    @staticmethod
    def authorize_at(fake, location):
        """The browser at Spotify: GET the authorize URL on the fake, no redirects.

        Returns (response, params of the redirect Location back to baa)."""
        parts = urllib.parse.urlsplit(location)
        resp = fake.request("GET", parts.path + "?" + parts.query)
        params = {}
        if resp.headers.get("Location"):
            params = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(
                resp.headers["Location"]).query, keep_blank_values=True))
        return resp, params

    def callback(self, params, **kw):
        """GET /callback with params (a dict or a raw query string)."""
        query = params if isinstance(params, str) else urllib.parse.urlencode(params)
        return self.get("/callback?" + query, **kw)

    def login(self, fake, next_path=None):
        """The whole login; returns a LoginResult (assert on it in the test)."""
        r = LoginResult()
        r.login = self.start_login(next_path)
        r.oauth_cookie = self.jar.get(OAUTH_COOKIE)
        if r.login.status != 302 or not r.login.location:
            return r
        r.authorize_url = r.login.location
        r.authorize_params = dict(urllib.parse.parse_qsl(
            urllib.parse.urlsplit(r.authorize_url).query, keep_blank_values=True))
        r.authorize, r.redirect_params = self.authorize_at(fake, r.authorize_url)
        if r.authorize.status != 302:
            return r
        r.code = r.redirect_params.get("code")
        r.state = r.redirect_params.get("state")
        r.callback = self.callback(r.redirect_params)
        r.session_cookie = self.jar.get(SESSION_COOKIE)
        return r


class LoginResult:
    """Every step of one login (None where the flow stopped early)."""
    login = authorize = callback = None
    authorize_url = oauth_cookie = session_cookie = code = state = None
    authorize_params = redirect_params = None

    @property
    def ok(self):
        return self.callback is not None and self.callback.status == 302 and \
            self.session_cookie is not None

    def describe(self):
        return "login=%r\nauthorize=%r\ncallback=%r" % (self.login, self.authorize, self.callback)


def run_concurrently(funcs, timeout=30):
    """Call every function in its own thread, released together; -> results in order.

    A raised exception is returned in place of the result."""
    results = [None] * len(funcs)
    barrier = threading.Barrier(len(funcs))

    def run(i, fn):
        try:
            barrier.wait(timeout)
            results[i] = fn()
        except Exception as exc:  # returned, never raised in a thread
            results[i] = exc
    threads = [threading.Thread(target=run, args=(i, fn), daemon=True) for i, fn in enumerate(funcs)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + timeout
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()))
    if any(t.is_alive() for t in threads):
        raise AssertionError("concurrent requests did not finish within %ss" % timeout)
    return results


def login_env(db, fake_url, workers=2, redirect_uri=TEST_REDIRECT_URI, **extra):
    """base_env + the Spotify variables pointing at a fake; extra as in base_env."""
    env = base_env(db, workers=workers)
    env.update(spotify_env(redirect_uri, fake_url))
    return with_extra(env, extra)


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

# wrk with tests/load/count.lua: non-200 answers and socket errors in one line.
WRK_COUNT_LUA = os.path.join(REPO, "tests", "load", "count.lua")


def parse_wrk_count(out):
    """The BAA-WRK line's fields ({"requests": n, "non200": n, ...}), or None."""
    m = re.search(r"BAA-WRK (.*)", out or "")
    if not m:
        return None
    stats = {}
    for kv in m.group(1).split():
        k, _, v = kv.partition("=")
        stats[k] = int(v) if re.fullmatch(r"\d+", v) else v
    return stats


# ---------------------------------------------------------------------------
# Devices: browsers that say what they are, and where they come from


class DeviceBrowser(Browser):
    """A Browser that is one device: it sends its User-Agent (and any other
    headers given) with every request, and reaches nginx at host (e.g. "::1"
    when that nginx listens there too), so that baa sees its label and its
    network as it would a real device's."""

    def __init__(self, port, user_agent=None, headers=None, host="127.0.0.1"):
        super().__init__(port)
        self.host = host
        self.headers = dict(headers or {})
        if user_agent is not None:
            self.headers["User-Agent"] = user_agent

    def transport(self, port, method, path, headers=None, timeout=15):
        return http_request(port, method, path, headers=headers, timeout=timeout, host=self.host)

    def request(self, method, path, headers=None, cookies=None, timeout=15):
        merged = dict(self.headers)
        merged.update(headers or {})
        return super().request(method, path, headers=merged, cookies=cookies, timeout=timeout)


def sessions_rows(pg, db):
    """Every sessions row as stored, as dicts (JSON types; token_hash as
    "\\x<hex>"), ordered by id."""
    out = pg.psql("SELECT row_to_json(s) FROM (SELECT * FROM sessions ORDER BY id) s", db=db)
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def auth_events_rows(pg, db):
    """Every auth_events row as stored, as dicts, ordered by id."""
    out = pg.psql("SELECT row_to_json(e) FROM (SELECT * FROM auth_events ORDER BY id) e", db=db)
    return [json.loads(line) for line in out.splitlines() if line.strip()]
