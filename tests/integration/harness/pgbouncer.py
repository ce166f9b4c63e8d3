"""PgBouncer in front of the test cluster."""

import os
import signal
import subprocess

from .base import HarnessError, as_unprivileged, free_port, give_to_nobody, port_answers, \
    read_text, wait_until
from .env import db_env
from .postgres import PSQL
from .processes import kill_process_tree, make_temp_dir, register_cleanup, register_process


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
