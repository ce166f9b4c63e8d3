"""PostgreSQL: a throw-away cluster run as nobody (one shared by the whole
run, started lazily by cluster()), a hot standby of one, and long-lived
psql sessions that hold connections and locks."""

import os
import secrets
import shutil
import signal
import subprocess
import threading

from .base import HarnessError, as_unprivileged, free_port, give_to_nobody, \
    ipv6_loopback_available, read_text, wait_until
from .processes import kill_process_tree, make_temp_dir, register_cleanup, register_process

PG_BIN = os.environ.get("BAA_IT_PG_BIN", "/usr/lib/postgresql/15/bin")
PSQL = os.path.join(PG_BIN, "psql") if os.path.exists(os.path.join(PG_BIN, "psql")) else "psql"
PG_DUMP = os.path.join(PG_BIN, "pg_dump") if os.path.exists(os.path.join(PG_BIN, "pg_dump")) else "pg_dump"


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

    def start_standby(self, timeout=60):
        """A hot standby of this running cluster, started: pg_basebackup -R
        (streaming replication from this one, read-only), its own temp dir,
        port and socket directory, the same role and password. Nothing
        promotes it: stopping this cluster leaves it a standby."""
        s = PostgresCluster(superuser=self.superuser, password=self.password)
        s.base = make_temp_dir("baa-it-pg-")
        give_to_nobody(s.base)
        s.datadir = os.path.join(s.base, "data")
        s.sockdir = os.path.join(s.base, "sock")
        os.mkdir(s.sockdir)
        give_to_nobody(s.sockdir)
        s.logfile = os.path.join(s.base, "postgres.log")
        s.port = free_port()
        cmd = [os.path.join(PG_BIN, "pg_basebackup"), "-h", "127.0.0.1", "-p", str(self.port),
               "-U", self.superuser, "-D", s.datadir, "-R", "-X", "stream", "--no-sync"]
        res = subprocess.run(as_unprivileged(["env", "PGPASSWORD=" + self.password] + cmd),
                             capture_output=True, text=True, stdin=subprocess.DEVNULL,
                             timeout=timeout, cwd=s.base)
        if res.returncode != 0:
            raise HarnessError("pg_basebackup failed (%d):\n%s%s" % (res.returncode, res.stdout, res.stderr))
        register_cleanup(s._cleanup)
        with open(os.path.join(s.datadir, "postgresql.conf"), "a") as f:
            f.write("unix_socket_directories = '%s'\n" % s.sockdir)
        s._write_port()  # port.conf came with the copy: the primary's
        s.start(timeout)
        return s

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
